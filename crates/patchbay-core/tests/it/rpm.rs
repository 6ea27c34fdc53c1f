//! rpm query lists: the lists derived from trivy's goldens, damage, round trips.

use crate::common::{cut, delete_lines, fixture, mutation, noisy_text};
use patchbay_core::inventory::Package;
use patchbay_core::inventory::rpm::parse_query_list;
use proptest::prelude::*;

const OL8: &str = "rhel-family/oraclelinux-8-slim.rpm-qa.txt";
const UBI7: &str = "rhel-family/ubi-7.rpm-qa.txt";
const ALL: [&str; 2] = [OL8, UBI7];

fn parse_fixture(rel: &str) -> Vec<Package> {
    parse_query_list(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn find<'a>(ps: &'a [Package], name: &str) -> &'a Package {
    ps.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

fn pkg(name: &str, version: &str, arch: &str, src: Option<(&str, &str)>) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        arch: arch.into(),
        source: src.map(|(n, _)| n.into()),
        source_version: src.map(|(_, v)| v.into()),
    }
}

#[test]
fn oraclelinux_8_slim_has_99_packages() {
    let ps = parse_fixture(OL8);
    assert_eq!(ps.len(), 99);
    assert_eq!(
        find(&ps, "openssl-libs"),
        &pkg(
            "openssl-libs",
            "1:1.1.1-8.0.1.el8",
            "x86_64",
            Some(("openssl", "1.1.1-8.0.1.el8"))
        )
    );
    assert_eq!(
        find(&ps, "oraclelinux-release"),
        &pkg(
            "oraclelinux-release",
            "8:8.0-1.0.14.el8",
            "x86_64",
            Some(("oraclelinux-release", "8.0-1.0.14.el8"))
        )
    );
    assert_eq!(
        find(&ps, "bash"),
        &pkg(
            "bash",
            "4.4.19-8.el8_0",
            "x86_64",
            Some(("bash", "4.4.19-8.el8_0"))
        )
    );
    assert_eq!(
        find(&ps, "libmodulemd1"),
        &pkg(
            "libmodulemd1",
            "1.8.0-5.el8",
            "x86_64",
            Some(("libmodulemd", "2.0.0-5.el8"))
        )
    );
    assert_eq!(
        find(&ps, "ncurses-base"),
        &pkg(
            "ncurses-base",
            "6.1-7.20180224.el8",
            "noarch",
            Some(("ncurses", "6.1-7.20180224.el8"))
        )
    );
    assert_eq!(
        find(&ps, "gpg-pubkey"),
        &pkg("gpg-pubkey", "ad986da3-5cabf60d", "", None)
    );
    assert_eq!(ps.iter().filter(|p| p.version.contains(':')).count(), 4);
}

/// The derived list agrees with the trivy JSON it came from, field by field (a
/// small scan of the JSON, which has one `"Key": value` per line).
#[test]
fn query_lists_agree_with_trivy_json() {
    for (list, json, count) in [
        (
            OL8,
            "rhel-family/trivy-golden-oraclelinux-8-slim.packages.json",
            99,
        ),
        (UBI7, "rhel-family/trivy-golden-ubi-7.packages.json", 162),
    ] {
        let ps = parse_fixture(list);
        let text = fixture(json);
        let mut objects: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('{') {
                objects.push(Default::default());
            }
            if let Some((k, v)) = line.split_once(':')
                && k.starts_with('"')
                && let Some(o) = objects.last_mut()
            {
                let v = v.trim().trim_end_matches(',').trim_matches('"');
                // The first occurrence is the package's own key; later ones
                // (such as `BuildInfo.Arch`) belong to nested objects.
                o.entry(k.trim_matches('"').to_owned())
                    .or_insert(v.to_owned());
            }
        }
        assert_eq!(objects.len(), count, "{json}");
        assert_eq!(ps.len(), count, "{list}");
        for (p, o) in ps.iter().zip(&objects) {
            let epoch = o.get("Epoch").map(String::as_str).unwrap_or("0");
            let vr = format!("{}-{}", o["Version"], o["Release"]);
            let version = if epoch == "0" {
                vr
            } else {
                format!("{epoch}:{vr}")
            };
            assert_eq!(p.name, o["Name"]);
            assert_eq!(p.version, version, "{}", p.name);
            assert_eq!(p.arch, o["Arch"].replace("(none)", ""), "{}", p.name);
            if o["SrcName"].is_empty() {
                assert_eq!(p.source, None);
            } else {
                assert_eq!(p.source.as_deref(), Some(o["SrcName"].as_str()));
                assert_eq!(
                    p.source_version,
                    Some(format!("{}-{}", o["SrcVersion"], o["SrcRelease"]))
                );
            }
        }
    }
}

#[test]
fn ubi_7_has_162_packages() {
    let ps = parse_fixture(UBI7);
    assert_eq!(ps.len(), 162);
    assert_eq!(
        find(&ps, "device-mapper-libs"),
        &pkg(
            "device-mapper-libs",
            "7:1.02.158-2.el7",
            "x86_64",
            Some(("lvm2", "2.02.185-2.el7"))
        )
    );
    assert_eq!(find(&ps, "vim-minimal").source.as_deref(), Some("vim"));
}

const FRAGMENTS: &[&str] = &[
    "a\t0:1-1\tx86_64\ta-1-1.src.rpm",
    "a\t1:1-1\t(none)\t(none)",
    "a\t",
    "\t",
    "0:",
    "-",
    ".src.rpm",
    "(none)",
    "a\t0:1\tx\ty",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in noisy_text(FRAGMENTS)) {
        let _ = parse_query_list(&text);
    }

    #[test]
    fn damaged_real_files_never_panic(file in prop::sample::select(&ALL[..]), m in mutation()) {
        let _ = parse_query_list(&m.apply(&fixture(file)));
    }

    /// A truncated list either is an error or yields exactly its first packages.
    #[test]
    fn truncation_never_yields_a_wrong_package(
        file in prop::sample::select(&ALL[..]),
        at in any::<prop::sample::Index>(),
    ) {
        let text = fixture(file);
        let full = parse_query_list(&text).unwrap();
        if let Ok(ps) = parse_query_list(cut(&text, at.index(text.len() + 1))) {
            prop_assert_eq!(&ps[..], &full[..ps.len()]);
        }
    }

    /// Deleting lines yields a sub-sequence of the packages.
    #[test]
    fn line_deletion_yields_a_subsequence(
        file in prop::sample::select(&ALL[..]),
        lines in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let text = fixture(file);
        let full = parse_query_list(&text).unwrap();
        let ps = parse_query_list(&delete_lines(&text, &lines)).unwrap();
        let mut rest = full.iter();
        for p in &ps {
            prop_assert!(rest.any(|q| q == p), "{:?} out of order or invented", p);
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    epoch: u32,
    version: String,
    release: String,
    arch: Option<&'static str>,
    srpm: Option<(String, String, String, bool)>,
}

fn vr_part() -> impl Strategy<Value = String> {
    "[0-9A-Za-z][0-9A-Za-z._+~^]{0,12}"
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[A-Za-z0-9][A-Za-z0-9._+-]{0,24}",
        prop_oneof![3 => Just(0u32), 2 => 1u32..100, 1 => any::<u32>()],
        vr_part(),
        vr_part(),
        prop::option::of(prop::sample::select(
            &["x86_64", "noarch", "aarch64", "i686", "s390x"][..],
        )),
        prop::option::of((
            "[A-Za-z0-9][A-Za-z0-9._+-]{0,24}",
            vr_part(),
            vr_part(),
            any::<bool>(),
        )),
    )
        .prop_map(|(name, epoch, version, release, arch, srpm)| Entry {
            name,
            epoch,
            version,
            release,
            arch,
            srpm,
        })
}

proptest! {
    /// Render → parse: epochs 0 and non-zero, `(none)` arch and source, `.nosrc.rpm`,
    /// blank lines, with or without a final newline.
    #[test]
    fn round_trip(
        entries in prop::collection::vec((entry(), any::<bool>()), 0..20),
        final_newline in any::<bool>(),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (e, blank_after) in &entries {
            let srpm = match &e.srpm {
                None => "(none)".to_owned(),
                Some((n, v, r, nosrc)) => {
                    format!("{n}-{v}-{r}.{}", if *nosrc { "nosrc.rpm" } else { "src.rpm" })
                }
            };
            text.push_str(&format!(
                "{}\t{}:{}-{}\t{}\t{srpm}\n",
                e.name,
                e.epoch,
                e.version,
                e.release,
                e.arch.unwrap_or("(none)")
            ));
            if *blank_after {
                text.push('\n');
            }
            expected.push(Package {
                name: e.name.clone(),
                version: if e.epoch == 0 {
                    format!("{}-{}", e.version, e.release)
                } else {
                    format!("{}:{}-{}", e.epoch, e.version, e.release)
                },
                arch: e.arch.unwrap_or("").to_owned(),
                source: e.srpm.as_ref().map(|(n, ..)| n.clone()),
                source_version: e.srpm.as_ref().map(|(_, v, r, _)| format!("{v}-{r}")),
            });
        }
        if !final_newline {
            text.pop();
        }
        prop_assert_eq!(parse_query_list(&text), Ok(expected));
    }
}
