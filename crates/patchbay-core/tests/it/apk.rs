//! apk installed database: real files, damaged real files, round trips.

use crate::common::{cut, delete_lines, fixture, mutation, noisy_text};
use patchbay_core::inventory::Package;
use patchbay_core::inventory::apk::parse_installed;
use proptest::prelude::*;
use std::collections::BTreeSet;

const A323: &str = "alpine323/lib-apk-db-installed";
const A310: &str = "alpine310/lib-apk-db-installed";
const SCALIBR: &str = "alpine-older/osv-scalibr-testdata.lib-apk-db-installed";
const SYFT: &str = "alpine-older/syft-multiple-2.lib-apk-db-installed";
const ALL: [&str; 4] = [A323, A310, SCALIBR, SYFT];

fn parse_fixture(rel: &str) -> Vec<Package> {
    parse_installed(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn find<'a>(ps: &'a [Package], name: &str) -> &'a Package {
    ps.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

#[test]
fn alpine_323_has_59_packages() {
    let ps = parse_fixture(A323);
    assert_eq!(ps.len(), 59);
    assert!(ps.iter().all(|p| p.arch == "x86_64" && p.source.is_some()));
    assert!(ps.iter().all(|p| p.source_version.is_none()));
    let apk = find(&ps, "apk-tools");
    assert_eq!(
        (
            apk.version.as_str(),
            apk.arch.as_str(),
            apk.source.as_deref()
        ),
        ("3.0.8-r0", "x86_64", Some("apk-tools"))
    );
    let binsh = find(&ps, "busybox-binsh");
    assert_eq!(binsh.version, "1.37.0-r30");
    assert_eq!(binsh.source.as_deref(), Some("busybox"));
    assert_eq!(
        find(&ps, "device-mapper-libs").source.as_deref(),
        Some("lvm2")
    );
    assert_eq!(find(&ps, "alpine-release").version, "3.23.6-r0");
    // The release file and the alpine-release package agree.
    assert_eq!(fixture("alpine323/alpine-release").trim(), "3.23.6");
}

#[test]
fn older_alpine_databases() {
    let scalibr = parse_fixture(SCALIBR);
    assert_eq!(scalibr.len(), 15);
    assert_eq!(find(&scalibr, "apk-tools").version, "2.14.0-r0");
    assert_eq!(
        find(&scalibr, "alpine-baselayout-data").source.as_deref(),
        Some("alpine-baselayout")
    );
    let syft = parse_fixture(SYFT);
    assert_eq!(syft.len(), 14);
    let crypto = find(&syft, "libcrypto1.1");
    assert_eq!(crypto.version, "1.1.1q-r0");
    assert_eq!(crypto.source.as_deref(), Some("openssl"));
    let a310 = parse_fixture(A310);
    assert_eq!(a310.len(), 14);
    assert_eq!(
        find(&a310, "libc-utils").source.as_deref(),
        Some("libc-dev")
    );
}

#[test]
fn truncated_database_is_an_error() {
    let text = fixture(A323);
    let at = text.find("\nP:apk-tools\n").unwrap() + 1;
    let p_line = text[..at].matches('\n').count() + 1;
    // The stanza starts one line earlier, with its `C:` checksum.
    let start = text[..at].rfind("\n\n").unwrap() + 2;
    assert!(text[start..].starts_with("C:"));
    let stanza_line = text[..start].matches('\n').count() + 1;
    assert_eq!(stanza_line, p_line - 1);
    // Only up to the P: line of the stanza: no V:.
    let err = parse_installed(&text[..at + "P:apk-tools\n".len()]).unwrap_err();
    assert_eq!(err.line, stanza_line);
    assert!(err.message.contains("no V:"), "{err}");
    // Cut inside the version line.
    let err = parse_installed(&text[..at + "P:apk-tools\nV:3.0".len()]).unwrap_err();
    assert_eq!(err.line, p_line + 1);
}

const FRAGMENTS: &[&str] = &[
    "P:",
    "P:a",
    "V:1.0-r0",
    "V:",
    "A:x86_64",
    "o:a",
    "F:usr",
    "R:x",
    "Z:Q1=",
    "a:0:0:755",
    ":",
    "P",
    "PP:x",
    " P:a",
    "é:",
    "",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in noisy_text(FRAGMENTS)) {
        let _ = parse_installed(&text);
    }

    #[test]
    fn damaged_real_files_never_panic(file in prop::sample::select(&ALL[..]), m in mutation()) {
        let _ = parse_installed(&m.apply(&fixture(file)));
    }

    /// A truncated real file either is an error or yields the first packages of
    /// the whole file; only the last one may lack its architecture or origin
    /// (apk writes `A:` and `o:` after `P:` and `V:`, so a cut at a line boundary
    /// between them is undetectable).
    #[test]
    fn truncation_never_yields_a_wrong_package(
        file in prop::sample::select(&ALL[..]),
        at in any::<prop::sample::Index>(),
    ) {
        let text = fixture(file);
        let full = parse_installed(&text).unwrap();
        if let Ok(ps) = parse_installed(cut(&text, at.index(text.len() + 1))) {
            prop_assert!(ps.len() <= full.len());
            if let Some((last, init)) = ps.split_last() {
                prop_assert_eq!(init, &full[..init.len()]);
                let q = &full[init.len()];
                prop_assert_eq!((&last.name, &last.version), (&q.name, &q.version));
                prop_assert!(last.arch == q.arch || last.arch.is_empty());
                prop_assert!(last.source == q.source || last.source.is_none());
            }
        }
    }

    /// Deleting lines never invents a name/version pair.
    #[test]
    fn line_deletion_never_invents_a_package(
        file in prop::sample::select(&ALL[..]),
        lines in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let text = fixture(file);
        let full: BTreeSet<(String, String)> = parse_installed(&text)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect();
        if let Ok(ps) = parse_installed(&delete_lines(&text, &lines)) {
            for p in ps {
                prop_assert!(full.contains(&(p.name.clone(), p.version.clone())), "{:?}", p);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    version: String,
    arch: Option<String>,
    origin: Option<String>,
    extra: Vec<String>,
    order: Vec<usize>,
    sep: &'static str,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[a-z0-9][a-z0-9+._-]{0,20}",
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}[a-z]?(_(alpha|beta|pre|rc|p)[0-9]{0,2})?-r[0-9]{1,2}",
        prop::option::of(prop::sample::select(
            &["x86_64", "aarch64", "noarch", "armv7"][..],
        )),
        prop::option::of("[a-z0-9][a-z0-9+._-]{0,20}"),
        prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        'C', 'S', 'I', 'T', 'U', 'L', 'm', 't', 'c', 'D', 'p', 'F', 'R', 'Z', 'a',
                        'M', 'q', 'r', 'i', 'k',
                    ][..],
                ),
                "[ -~]{0,30}",
            )
                .prop_map(|(k, v)| format!("{k}:{v}")),
            0..8,
        ),
        prop::collection::vec(any::<usize>(), 0..12),
        prop::sample::select(&["\n\n", "\n  \n", "\n\n\n"][..]),
    )
        .prop_map(|(name, version, arch, origin, extra, order, sep)| Entry {
            name,
            version,
            arch: arch.map(str::to_owned),
            origin,
            extra,
            order,
            sep,
        })
}

/// The stanzas, each followed by its separator (a blank line at least); with
/// `single_final_newline` the file ends in just one newline.
fn render(entries: &[Entry], single_final_newline: bool) -> String {
    let mut out = String::new();
    for e in entries {
        let mut lines = vec![format!("P:{}", e.name), format!("V:{}", e.version)];
        if let Some(a) = &e.arch {
            lines.push(format!("A:{a}"));
        }
        if let Some(o) = &e.origin {
            lines.push(format!("o:{o}"));
        }
        lines.extend(e.extra.iter().cloned());
        let mut ordered = Vec::new();
        for &i in &e.order {
            if lines.is_empty() {
                break;
            }
            ordered.push(lines.remove(i % lines.len()));
        }
        ordered.extend(lines);
        out.push_str(&ordered.join("\n"));
        out.push_str(e.sep);
    }
    if single_final_newline {
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

proptest! {
    /// Render → parse gives back the packages, in any line order and with any
    /// other keys mixed in.
    #[test]
    fn round_trip(entries in prop::collection::vec(entry(), 0..12), single in any::<bool>()) {
        let expected: Vec<Package> = entries
            .iter()
            .map(|e| Package {
                name: e.name.clone(),
                version: e.version.clone(),
                arch: e.arch.clone().unwrap_or_default(),
                source: e.origin.clone(),
                source_version: None,
            })
            .collect();
        prop_assert_eq!(parse_installed(&render(&entries, single)), Ok(expected));
    }
}
