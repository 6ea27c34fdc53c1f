//! dpkg status: real files, damaged real files, round trips, and dpkg-query itself.

use crate::common::{cut, fixture, mutation, noisy_text};
use crate::machine::{as_query_rows, dpkg_query_on_text};
use patchbay_core::inventory::dpkg::{package_status_is_present, parse_status};
use patchbay_core::inventory::{Package, PackageDelta};
use proptest::prelude::*;
use std::collections::BTreeMap;

const HOST: &str = "debian12/host-ci-image.dpkg-status";
const BEFORE: &str = "debian12/debootstrap-minbase-before-security-upgrade.dpkg-status";
const AFTER: &str = "debian12/debootstrap-minbase-after-security-upgrade.dpkg-status";
const NOBLE: &str = "ubuntu2404/debootstrap-noble.dpkg-status";
const BIONIC: &str = "ubuntu1804/trivy-valid-txtar.dpkg-status";
const ALL: [&str; 5] = [HOST, BEFORE, AFTER, NOBLE, BIONIC];

fn parse_fixture(rel: &str) -> Vec<Package> {
    parse_status(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn find<'a>(ps: &'a [Package], name: &str) -> &'a Package {
    ps.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

#[test]
fn host_ci_image_has_707_packages() {
    let ps = parse_fixture(HOST);
    assert_eq!(ps.len(), 707);
    assert_eq!(ps.iter().filter(|p| p.arch == "all").count(), 146);
    assert_eq!(ps.iter().filter(|p| p.arch == "amd64").count(), 561);
    let libc = find(&ps, "libc6");
    assert_eq!(libc.version, "2.36-9+deb12u14");
    assert_eq!(libc.source.as_deref(), Some("glibc"));
    assert_eq!(libc.source_version, None);
    let openssl = find(&ps, "openssl");
    assert_eq!(openssl.version, "3.0.19-1~deb12u2");
    assert_eq!(
        (openssl.source.as_deref(), openssl.source_version.as_deref()),
        (None, None)
    );
    let libcap2 = find(&ps, "libcap2");
    assert_eq!(libcap2.version, "1:2.66-4+deb12u2+b2");
    assert_eq!(libcap2.source.as_deref(), Some("libcap2"));
    assert_eq!(libcap2.source_version.as_deref(), Some("1:2.66-4+deb12u2"));
    assert_eq!(ps.iter().filter(|p| p.source_version.is_some()).count(), 64);
}

#[test]
fn debootstrap_before_and_after_differ_by_the_six_security_upgrades() {
    let before = parse_fixture(BEFORE);
    let after = parse_fixture(AFTER);
    assert_eq!(before.len(), 88);
    assert_eq!(after.len(), 88);

    let bsdutils = find(&before, "bsdutils");
    assert_eq!(bsdutils.version, "1:2.38.1-5+deb12u3");
    assert_eq!(bsdutils.source.as_deref(), Some("util-linux"));
    assert_eq!(bsdutils.source_version.as_deref(), Some("2.38.1-5+deb12u3"));
    let libcap2 = find(&before, "libcap2");
    assert_eq!(libcap2.version, "1:2.66-4+deb12u3+b1");
    assert_eq!(libcap2.source_version.as_deref(), Some("1:2.66-4+deb12u3"));

    let delta = PackageDelta::between(&before, &after);
    let names = |ps: &[Package]| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let six = [
        "apt",
        "libapt-pkg6.0",
        "liblzma5",
        "libpcre2-8-0",
        "perl-base",
        "tzdata",
    ];
    assert_eq!(names(&delta.removed), six);
    assert_eq!(names(&delta.added), six);
    assert_eq!(delta.apply(&before).unwrap(), {
        let mut a = after.clone();
        a.sort();
        a
    });

    let v = |ps: &[Package], n: &str| find(ps, n).version.clone();
    assert_eq!(
        (v(&before, "apt"), v(&after, "apt")),
        ("2.6.1".into(), "2.6.2".into())
    );
    assert_eq!(
        (v(&before, "libpcre2-8-0"), v(&after, "libpcre2-8-0")),
        ("10.42-1".into(), "10.42-1+deb12u2".into())
    );
    assert_eq!(
        (v(&before, "tzdata"), v(&after, "tzdata")),
        ("2026b-0+deb12u1".into(), "2026f-0+deb12u1".into())
    );
    assert_eq!(find(&after, "tzdata").arch, "all");
}

/// `apt list --upgradable` before the upgrade names exactly the upgraded packages,
/// with the versions of the before and after status files.
#[test]
fn apt_list_upgradable_matches_the_status_difference() {
    let before = parse_fixture(BEFORE);
    let after = parse_fixture(AFTER);
    let text = fixture("debian12/debootstrap-minbase.apt-list-upgradable.txt");
    let mut rows = 0;
    for line in text.lines().filter(|l| l.contains("[upgradable from: ")) {
        // apt/oldstable-security 2.6.2 amd64 [upgradable from: 2.6.1]
        let w: Vec<&str> = line.split_whitespace().collect();
        let name = w[0].split('/').next().unwrap();
        let old = w[5].trim_end_matches(']');
        assert_eq!(find(&before, name).version, old, "{line}");
        assert_eq!(find(&after, name).version, w[1], "{line}");
        assert_eq!(find(&after, name).arch, w[2], "{line}");
        rows += 1;
    }
    assert_eq!(rows, 6);
}

#[test]
fn ubuntu_noble_has_90_packages() {
    let ps = parse_fixture(NOBLE);
    assert_eq!(ps.len(), 90);
    let libc = find(&ps, "libc6");
    assert_eq!(
        (
            libc.version.as_str(),
            libc.arch.as_str(),
            libc.source.as_deref()
        ),
        ("2.39-0ubuntu8", "amd64", Some("glibc"))
    );
    assert_eq!(find(&ps, "libssl3t64").version, "3.0.13-0ubuntu3");
    let bsdutils = find(&ps, "bsdutils");
    assert_eq!(bsdutils.source.as_deref(), Some("util-linux"));
    assert_eq!(bsdutils.source_version.as_deref(), Some("2.39.3-9ubuntu6"));
}

#[test]
fn ubuntu_bionic_skips_the_config_files_stanza() {
    let text = fixture(BIONIC);
    assert_eq!(text.matches("\nPackage: ").count() + 1, 91);
    let ps = parse_status(&text).unwrap();
    assert_eq!(ps.len(), 90);
    assert!(ps.iter().all(|p| p.name != "git"));
}

#[test]
fn truncated_host_status_is_an_error_naming_the_stanza() {
    let text = fixture(HOST);
    // Cut right after a `Package:` line in the middle of the file.
    let middle = text.len() / 2;
    let at = middle + text[middle..].find("\nPackage: ").unwrap() + 1;
    let line_end = at + text[at..].find('\n').unwrap() + 1;
    let truncated = &text[..line_end];
    let stanza_line = truncated.matches('\n').count();
    let err = parse_status(truncated).unwrap_err();
    assert_eq!(err.line, stanza_line);
    assert!(err.message.contains("has no Status field"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("line {stanza_line}: "))
    );

    // Cut after the Status line: now Version is missing, same stanza line.
    let status_end = line_end + text[line_end..].find('\n').unwrap() + 1;
    assert!(text[line_end..status_end].starts_with("Status: "));
    let err = parse_status(&text[..status_end]).unwrap_err();
    assert_eq!(err.line, stanza_line);

    // Cut in the middle of a line (here, of the Package name): the last line.
    let err = parse_status(&text[..at + 12]).unwrap_err();
    assert_eq!(err.line, stanza_line);
    assert!(err.message.contains("truncated"), "{err}");
}

/// dpkg-query (dpkg's own parser) on the real files gives the same packages,
/// including the source name and version it derives.
#[test]
fn real_files_match_dpkg_query() {
    for rel in ALL {
        let text = fixture(rel);
        let expected = dpkg_query_on_text(&text)
            .expect("dpkg-query (the oracle) must be installed: install dpkg");
        let ours = parse_status(&text).unwrap();
        assert_eq!(as_query_rows(&ours), expected, "{rel}");
        assert_eq!(ours.len(), expected.len(), "{rel}");
    }
}

// ---------------------------------------------------------------------------
// Properties.

const FRAGMENTS: &[&str] = &[
    "Package: ",
    "Package: a",
    "package:b",
    "Status: install ok installed",
    "Status: deinstall ok config-files",
    "Status: install ok",
    "Version: 1.0-1",
    "Version:",
    "Architecture: amd64",
    "Source: src (1.0)",
    "Source: src (",
    "Source:",
    "Description: x",
    " continuation",
    "\t.",
    " ",
    ":",
    "Package",
    "#",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in noisy_text(FRAGMENTS)) {
        let _ = parse_status(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Damaged real files never make the parser panic.
    #[test]
    fn damaged_real_files_never_panic(file in prop::sample::select(&ALL[..]), m in mutation()) {
        let _ = parse_status(&m.apply(&fixture(file)));
    }

    /// A truncated real file either is an error or yields exactly the first
    /// packages of the whole file: never a wrong or partial package.
    #[test]
    fn truncation_never_yields_a_wrong_package(
        file in prop::sample::select(&ALL[..]),
        at in any::<prop::sample::Index>(),
    ) {
        let text = fixture(file);
        let full = parse_status(&text).unwrap();
        let part = cut(&text, at.index(text.len() + 1));
        if let Ok(ps) = parse_status(part) {
            prop_assert!(ps.len() <= full.len());
            prop_assert_eq!(&ps[..], &full[..ps.len()]);
        }
        if !part.ends_with('\n') && !part.rsplit('\n').next().unwrap_or("").trim().is_empty() {
            prop_assert!(parse_status(part).is_err(), "a cut inside a line is an error");
        }
    }

    /// Deleting lines of a real file either is an error or yields packages of
    /// the whole file (at most without their Source, if that line was deleted).
    #[test]
    fn line_deletion_never_invents_a_package(
        file in prop::sample::select(&ALL[..]),
        lines in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let text = fixture(file);
        let full = parse_status(&text).unwrap();
        let by_key: BTreeMap<_, _> = full.iter().map(|p| (p.key(), p)).collect();
        if let Ok(ps) = parse_status(&crate::common::delete_lines(&text, &lines)) {
            for p in &ps {
                let q = by_key.get(&p.key());
                prop_assert!(q.is_some(), "invented {:?}", p);
                let q = q.unwrap();
                prop_assert!(
                    (p.source == q.source && p.source_version == q.source_version)
                        || (p.source.is_none() && p.source_version.is_none()),
                    "{:?} vs {:?}", p, q
                );
            }
        }
    }
}

/// One generated stanza.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    version: String,
    arch: String,
    source: Option<(String, Option<String>)>,
    want: &'static str,
    flag: &'static str,
    state: &'static str,
    /// For absent packages: whether Version and Architecture are written.
    absent_has_fields: bool,
    extra: Vec<String>,
    case: u8,
    sep: &'static str,
}

const STATES: [&str; 8] = [
    "installed",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "not-installed",
    "config-files",
];

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9+.-]{1,20}"
}

fn deb_version() -> impl Strategy<Value = String> {
    "([1-9][0-9]?:)?[0-9][A-Za-z0-9.+~]{0,10}(-[A-Za-z0-9.+~]{1,8})?"
}

fn extra_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Priority: optional".to_owned()),
        Just("Multi-Arch: foreign".to_owned()),
        "Depends: [a-z0-9][a-z0-9+.-]{1,10}( \\(>= [0-9][0-9.]{0,5}\\))?(, [a-z0-9][a-z0-9+.-]{1,10}){0,3}",
        "Description: [ -~]{0,20}(\n [ -~]{0,30}){0,3}\n \\.\n [ -~]{1,10}",
        "Conffiles:(\n /etc/[a-z]{1,8} [0-9a-f]{32}){1,3}",
        "X-[A-Z][a-z]{0,8}:[ \t]?[ -~]{0,20}",
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        (
            name(),
            deb_version(),
            prop::sample::select(&["amd64", "all", "arm64", "i386"][..]),
        ),
        prop::option::of((name(), prop::option::of(deb_version()))),
        (
            prop::sample::select(&["install", "hold", "deinstall", "purge", "unknown"][..]),
            prop::sample::select(&["ok", "reinstreq"][..]),
            prop::sample::select(&STATES[..]),
        ),
        any::<bool>(),
        prop::collection::vec(extra_field(), 0..4),
        any::<u8>(),
        prop::sample::select(&["\n\n", "\n\n\n", "\n\n\n\n"][..]),
    )
        .prop_map(
            |(
                (name, version, arch),
                source,
                (want, flag, state),
                absent_has_fields,
                extra,
                case,
                sep,
            )| Entry {
                name,
                version,
                arch: arch.to_owned(),
                source,
                want,
                flag,
                state,
                absent_has_fields,
                extra,
                case,
                sep,
            },
        )
}

fn spell(field: &str, case: u8, i: usize) -> String {
    match (case >> (i % 4 * 2)) & 3 {
        0 | 3 => field.to_owned(),
        1 => field.to_ascii_lowercase(),
        _ => field.to_ascii_uppercase(),
    }
}

/// The stanzas, each followed by its separator (a blank line at least); with
/// `single_final_newline` the file ends in just one newline.
fn render(entries: &[(Entry, Vec<usize>)], single_final_newline: bool) -> String {
    let mut out = String::new();
    for (e, order) in entries {
        let present = package_status_is_present(e.state);
        let gap = [": ", ":", ":\t", ":  "][(e.case % 4) as usize];
        let mut fields = vec![
            format!("{}{gap}{}", spell("Package", e.case, 0), e.name),
            format!(
                "{}{gap}{} {} {}",
                spell("Status", e.case, 1),
                e.want,
                e.flag,
                e.state
            ),
        ];
        // dpkg itself insists on a Version for config-files (it tolerates a missing
        // one for not-installed); our parser needs neither for absent packages.
        if present || e.absent_has_fields || e.state == "config-files" {
            fields.push(format!("{}{gap}{}", spell("Version", e.case, 2), e.version));
        }
        if present || e.absent_has_fields {
            fields.push(format!("{}: {} ", spell("Architecture", e.case, 3), e.arch));
        }
        // dpkg insists that these states come with their trigger lists.
        match e.state {
            "triggers-awaited" => fields.push("Triggers-Awaited: trig-a".into()),
            "triggers-pending" => fields.push("Triggers-Pending: trig-b".into()),
            _ => {}
        }
        match &e.source {
            None => {}
            Some((n, None)) => fields.push(format!("Source: {n}")),
            Some((n, Some(v))) => fields.push(format!("Source: {n} ({v})")),
        }
        // Extra fields, each name at most once (dpkg refuses repeated fields).
        let mut seen = std::collections::BTreeSet::new();
        for f in &e.extra {
            let name = f.split(':').next().unwrap_or("").to_ascii_lowercase();
            if seen.insert(name) {
                fields.push(f.clone());
            }
        }
        // Permute with the generated order (indices into `fields`, modulo length).
        let mut ordered: Vec<String> = Vec::new();
        let mut left = fields;
        for &i in order {
            if left.is_empty() {
                break;
            }
            ordered.push(left.remove(i % left.len()));
        }
        ordered.extend(left);
        out.push_str(&ordered.join("\n"));
        out.push_str(e.sep);
    }
    if single_final_newline {
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

fn expected(entries: &[(Entry, Vec<usize>)]) -> Vec<Package> {
    entries
        .iter()
        .map(|(e, _)| e)
        .filter(|e| package_status_is_present(e.state))
        .map(|e| Package {
            name: e.name.clone(),
            version: e.version.clone(),
            arch: e.arch.clone(),
            source: e.source.as_ref().map(|(n, _)| n.clone()),
            source_version: e.source.as_ref().and_then(|(_, v)| v.clone()),
        })
        .collect()
}

fn entries() -> impl Strategy<Value = Vec<(Entry, Vec<usize>)>> {
    prop::collection::vec(
        (entry(), prop::collection::vec(any::<usize>(), 0..10)),
        0..12,
    )
}

proptest! {
    /// Render → parse gives back exactly the present packages, whatever the field
    /// order, field-name case, spacing, extra fields and blank-line runs.
    #[test]
    fn round_trip(entries in entries(), leading in "(\n| \n){0,2}", single in any::<bool>()) {
        let text = format!("{leading}{}", render(&entries, single));
        prop_assert_eq!(parse_status(&text), Ok(expected(&entries)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// dpkg-query agrees with us on generated files.
    #[test]
    fn round_trip_agrees_with_dpkg_query(entries in entries()) {
        let text = render(&entries, false);
        let ours = parse_status(&text).unwrap();
        if let Some(theirs) = dpkg_query_on_text(&text) {
            // dpkg keys its database by (name, arch): keep generated files free
            // of such duplicates, which dpkg would merge.
            let keys: std::collections::BTreeSet<_> =
                ours.iter().map(|p| (&p.name, &p.arch)).collect();
            let all_keys: std::collections::BTreeSet<_> =
                entries.iter().map(|(e, _)| (&e.name, &e.arch)).collect();
            prop_assume!(all_keys.len() == entries.len() && keys.len() == ours.len());
            prop_assert_eq!(as_query_rows(&ours), theirs);
        }
    }
}
