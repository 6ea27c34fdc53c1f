//! os-release: real files, damage, round trips with every quoting style, and
//! `/bin/sh` as the reference for what the assignments mean.

use crate::common::{fixture, mutation, noisy_text};
use crate::machine::sh_os_release;
use patchbay_core::inventory::os_release::{OsRelease, parse};
use proptest::prelude::*;

const FILES: [&str; 3] = [
    "ubuntu2404/os-release",
    "alpine323/os-release",
    "alpine310/os-release",
];

fn os(id: &str, version_id: &str, codename: &str, pretty: &str, id_like: &str) -> OsRelease {
    OsRelease {
        id: id.into(),
        version_id: version_id.into(),
        version_codename: codename.into(),
        pretty_name: pretty.into(),
        id_like: id_like.into(),
    }
}

#[test]
fn real_files() {
    assert_eq!(
        parse(&fixture("ubuntu2404/os-release")).unwrap(),
        os("ubuntu", "24.04", "noble", "Ubuntu 24.04 LTS", "debian")
    );
    assert_eq!(
        parse(&fixture("alpine323/os-release")).unwrap(),
        os("alpine", "3.23.6", "", "Alpine Linux v3.23", "")
    );
    assert_eq!(
        parse(&fixture("alpine310/os-release")).unwrap(),
        os("alpine", "3.10.9", "", "Alpine Linux v3.10", "")
    );
}

#[test]
fn real_files_agree_with_sh() {
    for f in FILES {
        let text = fixture(f);
        let expected = sh_os_release(&text).expect("/bin/sh (the oracle) must be installed");
        assert_eq!(parse(&text).unwrap(), expected, "{f}");
    }
}

#[test]
fn last_assignment_wins_and_errors_name_the_line() {
    let o = parse("ID=a\nID='b'\n").unwrap();
    assert_eq!(o.id, "b");
    let e = parse(&format!(
        "{}\nVERSION_ID=\"24.04\n",
        fixture("ubuntu2404/os-release")
    ))
    .unwrap_err();
    assert_eq!(e.line, 15);
    assert!(e.to_string().starts_with("line 15: unterminated"), "{e}");
}

const FRAGMENTS: &[&str] = &[
    "ID=",
    "ID=\"",
    "ID='",
    "#",
    "A_B=\"x\\\"",
    "\\",
    "=",
    "ID=a\"b",
    "X=\"\\$\\`\"",
    "'",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in noisy_text(FRAGMENTS)) {
        let _ = parse(&text);
    }

    #[test]
    fn damaged_real_files_never_panic(file in prop::sample::select(&FILES[..]), m in mutation()) {
        let _ = parse(&m.apply(&fixture(file)));
    }
}

/// How to write one value.
#[derive(Debug, Clone, Copy)]
enum Quote {
    Double,
    Single,
    Bare,
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{0,12}",
        "[ -~]{0,20}",
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\''),
                Just('\\'),
                Just('$'),
                Just('`'),
                Just(' '),
                Just('#'),
                Just('='),
                Just('é'),
                Just('🦀'),
                "[a-z]".prop_map(|s| s.chars().next().unwrap()),
            ],
            0..16,
        )
        .prop_map(|v| v.into_iter().collect()),
        "\\PC{0,12}",
    ]
}

fn write(key: &str, v: &str, q: Quote) -> String {
    let bare_ok = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match q {
        Quote::Single if !v.contains('\'') => format!("{key}='{v}'"),
        Quote::Bare if bare_ok => format!("{key}={v}"),
        _ => {
            let mut s = format!("{key}=\"");
            for c in v.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
            s
        }
    }
}

fn quote() -> impl Strategy<Value = Quote> {
    prop_oneof![Just(Quote::Double), Just(Quote::Single), Just(Quote::Bare)]
}

fn document() -> impl Strategy<Value = (String, OsRelease)> {
    let field = || prop::option::of((value(), quote()));
    (
        [field(), field(), field(), field(), field()],
        prop::collection::vec(
            prop_oneof![
                "# [ -~]{0,20}".boxed(),
                Just(String::new()).boxed(),
                ("X_[A-Z0-9_]{0,8}", value(), quote())
                    .prop_map(|(k, v, q)| write(&k, &v, q))
                    .boxed(),
            ],
            0..6,
        ),
        prop::collection::vec(any::<usize>(), 0..12),
        prop::sample::select(&["", " ", "\t"][..]),
    )
        .prop_map(|(fields, extra, order, indent)| {
            let keys = [
                "ID",
                "VERSION_ID",
                "VERSION_CODENAME",
                "PRETTY_NAME",
                "ID_LIKE",
            ];
            let mut lines = extra;
            let mut got: [String; 5] = Default::default();
            for (i, f) in fields.iter().enumerate() {
                if let Some((v, q)) = f {
                    lines.push(format!("{indent}{}", write(keys[i], v, *q)));
                    got[i] = v.clone();
                }
            }
            let mut ordered = Vec::new();
            for i in order {
                if lines.is_empty() {
                    break;
                }
                ordered.push(lines.remove(i % lines.len()));
            }
            ordered.extend(lines);
            let [id, version_id, version_codename, pretty_name, id_like] = got;
            let id = if id.is_empty() {
                "linux".to_owned()
            } else {
                id
            };
            let mut text = ordered.join("\n");
            text.push('\n');
            (
                text,
                OsRelease {
                    id,
                    version_id,
                    version_codename,
                    pretty_name,
                    id_like,
                },
            )
        })
}

proptest! {
    /// Render → parse, with each value unquoted, single- or double-quoted.
    #[test]
    fn round_trip((text, expected) in document()) {
        prop_assert_eq!(parse(&text), Ok(expected));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `/bin/sh` reads the generated files the same way.
    #[test]
    fn round_trip_agrees_with_sh((text, expected) in document()) {
        if let Some(theirs) = sh_os_release(&text) {
            prop_assert_eq!(theirs, expected);
        }
    }
}
