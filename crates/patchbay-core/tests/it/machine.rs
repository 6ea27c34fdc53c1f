//! Checks against the real tools of this machine: `dpkg-query` and `/bin/sh`.
//! Each test is skipped (with a message) where the tool or file does not exist.

use crate::common::{have, scratch_dir};
use patchbay_core::inventory::dpkg::package_status_is_present;
use patchbay_core::inventory::{Package, dpkg, os_release};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// A package as `dpkg-query` shows it: name, version, arch, source name, source
/// version (dpkg fills the last two in from the binary when `Source` lacks them).
pub type QueryRow = (String, String, String, String, String);

const QUERY_FORMAT: &str = "-f=${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}\\n";

/// Runs `dpkg-query -W` (optionally on another admin dir) and keeps the packages
/// in a present state. `None` when dpkg-query is not installed.
pub fn dpkg_query(admindir: Option<&Path>) -> Option<BTreeSet<QueryRow>> {
    if !have("dpkg-query") {
        return None;
    }
    let mut cmd = Command::new("dpkg-query");
    if let Some(dir) = admindir {
        cmd.arg(format!("--admindir={}", dir.display()));
    }
    let out = cmd
        .args(["-W", QUERY_FORMAT])
        .output()
        .expect("running dpkg-query");
    assert!(
        out.status.success(),
        "dpkg-query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("dpkg-query output is UTF-8");
    Some(
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 6, "unexpected dpkg-query line {l:?}");
                package_status_is_present(f[0]).then(|| {
                    (
                        f[1].to_owned(),
                        f[2].to_owned(),
                        f[3].to_owned(),
                        f[4].to_owned(),
                        f[5].to_owned(),
                    )
                })
            })
            .collect(),
    )
}

/// Writes `status_text` as `<dir>/status` and runs `dpkg-query --admindir=<dir>`.
pub fn dpkg_query_on_text(status_text: &str) -> Option<BTreeSet<QueryRow>> {
    if !have("dpkg-query") {
        return None;
    }
    let dir = scratch_dir();
    std::fs::write(dir.join("status"), status_text).expect("writing status");
    let rows = dpkg_query(Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

/// Our packages in dpkg-query's terms.
pub fn as_query_rows(packages: &[Package]) -> BTreeSet<QueryRow> {
    packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                p.source.clone().unwrap_or_else(|| p.name.clone()),
                p.source_version
                    .clone()
                    .unwrap_or_else(|| p.version.clone()),
            )
        })
        .collect()
}

#[test]
fn dpkg_status_matches_dpkg_query_on_this_machine() {
    let path = Path::new("/var/lib/dpkg/status");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the suite runs on a Debian machine)",
            path.display()
        )
    });
    let expected =
        dpkg_query(None).expect("dpkg-query (the oracle) must be installed: install dpkg");
    let parsed = dpkg::parse_status(&text).expect("this machine's dpkg status parses");
    assert_eq!(parsed.len(), expected.len(), "no duplicates, same count");
    assert_eq!(as_query_rows(&parsed), expected);
    // The plain three-column listing the brief asks for, for the record.
    let plain: BTreeSet<(String, String, String)> = expected
        .into_iter()
        .map(|(n, v, a, _, _)| (n, v, a))
        .collect();
    let ours: BTreeSet<(String, String, String)> = parsed
        .into_iter()
        .map(|p| (p.name, p.version, p.arch))
        .collect();
    assert_eq!(ours, plain);
}

/// What `/bin/sh` makes of an os-release text: ID (with the spec's default),
/// VERSION_ID, VERSION_CODENAME, PRETTY_NAME, ID_LIKE.
pub fn sh_os_release(text: &str) -> Option<os_release::OsRelease> {
    if !Path::new("/bin/sh").exists() {
        return None;
    }
    let dir = scratch_dir();
    let file = dir.join("os-release");
    std::fs::write(&file, text).expect("writing os-release");
    let out = Command::new("/bin/sh")
        .env_clear()
        .arg("-c")
        .arg(
            "set -e; . \"$1\"; printf '%s\\037%s\\037%s\\037%s\\037%s' \
             \"${ID:-linux}\" \"$VERSION_ID\" \"$VERSION_CODENAME\" \"$PRETTY_NAME\" \"$ID_LIKE\"",
        )
        .arg("sh")
        .arg(&file)
        .output()
        .expect("running /bin/sh");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "sh failed on {text:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).expect("UTF-8 from sh");
    let f: Vec<&str> = s.split('\u{1f}').collect();
    assert_eq!(f.len(), 5, "sh output {s:?}");
    Some(os_release::OsRelease {
        id: f[0].to_owned(),
        version_id: f[1].to_owned(),
        version_codename: f[2].to_owned(),
        pretty_name: f[3].to_owned(),
        id_like: f[4].to_owned(),
    })
}

#[test]
fn os_release_matches_sh_on_this_machine() {
    // os-release(5): /etc/os-release, falling back to /usr/lib/os-release;
    // every file that exists is checked, and at least one must.
    let mut checked = 0;
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let expected = sh_os_release(&text).expect("/bin/sh (the oracle) must be installed");
        let parsed = os_release::parse(&text).expect("this machine's os-release parses");
        assert_eq!(parsed, expected, "{path}");
        checked += 1;
    }
    assert!(
        checked > 0,
        "neither /etc/os-release nor /usr/lib/os-release is readable"
    );
}
