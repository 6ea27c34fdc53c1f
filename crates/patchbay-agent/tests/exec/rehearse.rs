//! Rehearsals on real debootstrap roots (issue 18, ADR 0018): the shipped
//! `patchbay-agent rehearse` mounts an overlay of the root, runs the exact
//! transaction with package scripts in a chroot of it, and reports; the root
//! itself — its dpkg status and a hash of every file's content, mode and
//! owner — is unchanged afterwards, and nothing stays mounted.

use crate::support::{Root, debian_root};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// The tests of this module.
pub const TESTS: &[(&str, fn())] = &[
    (
        "rehearse::a_failing_postinst_is_reported_and_the_root_is_untouched",
        a_failing_postinst_is_reported_and_the_root_is_untouched,
    ),
    (
        "rehearse::conflicts_and_privilege_changes_are_named",
        conflicts_and_privilege_changes_are_named,
    ),
    (
        "rehearse::a_separate_file_system_falls_back_to_simulation",
        a_separate_file_system_falls_back_to_simulation,
    ),
    (
        "rehearse::a_real_apply_reports_a_new_setuid_file",
        a_real_apply_reports_a_new_setuid_file,
    ),
    (
        "rehearse::the_services_the_scripts_restart_are_reported",
        the_services_the_scripts_restart_are_reported,
    ),
];

/// pb-svc 1.1's postinst restarts its service through invoke-rc.d: the
/// rehearsal's policy-rc.d refuses (the service never runs: its init script
/// would write /var/log/pb-svc.log) and records it, and the result names it
/// (`rehearsal.services`, the expected-impact notices' source); a package
/// whose scripts restart nothing reports an empty list; the root is
/// unchanged.
fn the_services_the_scripts_restart_are_reported() {
    let root = debian_root(&["pb-svc=1.0", "pb-demo=1.0"]);
    let cfg = root.config("");
    let hashes = tree_hash(&root.path);
    let r = root.agent(
        "rehearse",
        &["--config", &cfg, "--job-key", "r-svc", "pb-svc=1.1"],
    );
    let j = &r.json;
    assert_eq!(r.code, 0, "{j:#}\n{}", r.stderr);
    assert_eq!(j["rehearsal"]["mode"], "overlay", "{j:#}");
    assert_eq!(
        j["rehearsal"]["services"],
        serde_json::json!(["pb-svc"]),
        "{j:#}"
    );
    let quiet = root.agent(
        "rehearse",
        &["--config", &cfg, "--job-key", "r-quiet", "pb-demo=1.1"],
    );
    assert_eq!(quiet.code, 0, "{:#}\n{}", quiet.json, quiet.stderr);
    assert_eq!(
        quiet.json["rehearsal"]["services"],
        serde_json::json!([]),
        "{:#}",
        quiet.json
    );
    assert!(
        !root.path.join("var/log/pb-svc.log").exists(),
        "the service ran"
    );
    let d = differences(&hashes, &tree_hash(&root.path));
    assert!(d.is_empty(), "the root changed: {d:?}");
}

/// Every path below `root` → sha256 of (type, mode, uid, gid, content or link
/// target). Directories are walked without following links.
pub fn tree_hash(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mut h = Sha256::new();
            h.update(format!(
                "{:o} {} {} {}\n",
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev()
            ));
            let ft = m.file_type();
            if ft.is_symlink() {
                h.update(
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
            } else if ft.is_file() {
                h.update(std::fs::read(&p).unwrap());
            } else if ft.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, format!("{:x}", h.finalize()));
        }
    }
    out
}

/// The paths whose hash differs between two [`tree_hash`]es.
fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut d: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    d.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    d
}

fn dpkg_status(root: &Root) -> String {
    std::fs::read_to_string(root.path.join("var/lib/dpkg/status")).unwrap()
}

/// Nothing of the rehearsal is left: no mount under the state directory, no
/// layers.
fn assert_cleaned(root: &Root, out: &Value) {
    assert_eq!(out["cleaned_up"], true, "{out:#}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let state = root.state.to_string_lossy().into_owned();
    assert!(
        !mounts.contains(&state),
        "a mount under {state} is left:\n{mounts}"
    );
    assert!(!root.state.join("rehearse").exists());
}

fn config(root: &Root) -> String {
    // A check safe for rehearsal: it reads the version file of the overlay
    // (the real root keeps 1.0, so it passes only when run in the overlay).
    // And one not marked, which must not run there.
    root.config(
        r#"
[[check]]
name = "demo-is-1.1"
kind = "command"
command = ["/bin/grep", "-qx", "1.1", "/usr/share/pb-demo/version"]
rehearse = true

[[check]]
name = "never-in-rehearsal"
kind = "command"
command = ["/bin/false"]
"#,
    )
}

fn a_failing_postinst_is_reported_and_the_root_is_untouched() {
    let root = debian_root(&["pb-demo=1.0"]);
    let cfg = config(&root);
    let status = dpkg_status(&root);
    let hashes = tree_hash(&root.path);

    let bad = root.agent(
        "rehearse",
        &["--config", &cfg, "--job-key", "r-bad", "pb-demo=1.2.1"],
    );
    let j = &bad.json;
    assert_eq!(bad.code, 1, "{j:#}\n{}", bad.stderr);
    assert_eq!(j["ok"], false);
    assert_eq!(j["rehearsal"]["mode"], "overlay", "{j:#}");
    assert_eq!(j["error"]["step"], "rehearse.apply", "{j:#}");
    assert_eq!(
        j["error"]["message"],
        "pb-demo postinst exited with 7: pb-demo: cannot migrate /var/lib/pb-demo (schema 3 expected)",
        "{j:#}"
    );
    let s = &j["rehearsal"]["scripts"][0];
    assert_eq!(s["package"], "pb-demo", "{j:#}");
    assert_eq!(s["script"], "postinst");
    assert_eq!(s["exit"], 7);
    assert!(
        s["output"]
            .as_str()
            .unwrap()
            .contains("pb-demo: cannot migrate /var/lib/pb-demo (schema 3 expected)"),
        "{s:#}"
    );
    assert_ne!(j["rehearsal"]["exit"], 0);
    // The overlay's dpkg saw the package half-configured: the diff says so.
    assert!(
        j["rehearsal"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "pb-demo" && c["before"] == "1.0" && c["after"] == "1.2.1"),
        "{j:#}"
    );
    assert_cleaned(&root, j);
    assert!(
        dpkg_status(&root) == status,
        "the root's dpkg status changed"
    );
    let after = tree_hash(&root.path);
    assert_eq!(
        differences(&hashes, &after),
        Vec::<String>::new(),
        "the rehearsal changed the real root"
    );
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.0"));

    let good = root.agent(
        "rehearse",
        &["--config", &cfg, "--job-key", "r-good", "pb-demo=1.1"],
    );
    let j = &good.json;
    assert_eq!(good.code, 0, "{j:#}\n{}", good.stderr);
    assert_eq!(j["ok"], true);
    assert_eq!(j["rehearsal"]["mode"], "overlay");
    assert_eq!(j["rehearsal"]["exit"], 0);
    assert!(j["rehearsal"].get("scripts").is_none(), "{j:#}");
    let changed = j["rehearsal"]["changed"].as_array().unwrap();
    let pairs: Vec<(String, Value, Value)> = changed
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("pb-demo".into(), "1.0".into(), "1.1".into()),
            ("pb-extra".into(), Value::Null, "1.0".into()),
        ]
    );
    // The marked check ran in the overlay (1.1 there), the unmarked one not.
    let checks = j["rehearsal"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{j:#}");
    assert_eq!(checks[0]["check"], "demo-is-1.1");
    assert_eq!(checks[0]["pass"], true);
    assert_cleaned(&root, j);
    assert!(
        dpkg_status(&root) == status,
        "the root's dpkg status changed"
    );
    assert_eq!(
        differences(&hashes, &tree_hash(&root.path)),
        Vec::<String>::new()
    );
}

fn conflicts_and_privilege_changes_are_named() {
    let root = debian_root(&["pb-demo=1.1"]);
    let hashes = tree_hash(&root.path);
    let srv_mode = std::fs::metadata(root.path.join("srv")).unwrap().mode() & 0o7777;

    let c = root.agent("rehearse", &["--job-key", "r-conflict", "pb-conflict=1.0"]);
    let j = &c.json;
    assert_eq!(c.code, 1, "{j:#}\n{}", c.stderr);
    assert_eq!(j["rehearsal"]["mode"], "overlay");
    assert_eq!(j["error"]["step"], "scope", "{j:#}");
    assert_eq!(
        j["rehearsal"]["conflicts"],
        serde_json::json!([{"package": "pb-conflict", "with": "pb-extra", "relation": "conflicts"}]),
        "{j:#}"
    );
    let refused = j["rehearsal"]["refused"].as_array().unwrap();
    let extra = refused
        .iter()
        .map(|r| r.as_str().unwrap())
        .find(|r| r.starts_with("pb-extra (1.0 -> absent)"))
        .unwrap_or_else(|| panic!("pb-extra not named as refused: {j:#}"));
    assert!(extra.contains("conflicts with pb-conflict"), "{extra}");
    // Refused before the transaction: nothing ran, nothing is left.
    assert!(j["rehearsal"].get("exit").is_none(), "{j:#}");
    assert_cleaned(&root, j);

    let p = root.agent(
        "rehearse",
        &["--job-key", "r-priv", "pb-suid=1.0", "pb-perms=1.0"],
    );
    let j = &p.json;
    assert_eq!(p.code, 0, "{j:#}\n{}", p.stderr);
    let found: Vec<(String, String, Value)> = j["rehearsal"]["privilege"]
        .as_array()
        .unwrap_or_else(|| panic!("no privilege findings: {j:#}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["finding"].as_str().unwrap().to_owned(),
                f["package"].clone(),
            )
        })
        .collect();
    assert!(
        found.contains(&(
            "/usr/bin/pb-suid-helper".into(),
            "new_setuid".into(),
            "pb-suid".into()
        )),
        "{j:#}"
    );
    assert!(
        found.contains(&("/srv".into(), "mode_changed".into(), "pb-perms".into())),
        "{j:#}"
    );
    let srv = j["rehearsal"]["privilege"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/srv")
        .unwrap();
    assert_eq!(srv["before"], format!("{srv_mode:04o} 0:0"));
    assert_eq!(srv["after"], "0777 0:0");
    // Nothing but these two (the policy-rc.d the rehearsal wrote is its own).
    assert_eq!(found.len(), 2, "{j:#}");
    assert_cleaned(&root, j);
    assert_eq!(
        differences(&hashes, &tree_hash(&root.path)),
        Vec::<String>::new()
    );
    assert!(!root.path.join("usr/bin/pb-suid-helper").exists());
}

fn a_separate_file_system_falls_back_to_simulation() {
    let root = debian_root(&["pb-demo=1.0"]);
    let opt = root.path.join("opt");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&opt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs on {}", opt.display());
    let res = std::panic::catch_unwind(|| {
        let bad = root.agent("rehearse", &["--job-key", "r-sim", "pb-demo=1.2.1"]);
        let j = &bad.json;
        assert_eq!(j["rehearsal"]["mode"], "simulation", "{j:#}");
        let why = j["rehearsal"]["mode_reason"].as_str().unwrap();
        assert!(
            why.contains(&format!("{} is a separate file system", opt.display())),
            "{why}"
        );
        // A simulation runs no script: it cannot see the failing postinst,
        // which is why the result says which mode it ran in.
        assert_eq!(bad.code, 0, "{j:#}");
        assert!(j["rehearsal"].get("scripts").is_none());
        assert!(
            j["rehearsal"]["changed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "pb-demo" && c["before"] == "1.0" && c["after"] == "1.2.1"),
            "{j:#}"
        );
        assert!(!root.state.join("rehearse").exists());
        assert_eq!(root.version("pb-demo").as_deref(), Some("1.0"));
    });
    let _ = Command::new("umount").arg(&opt).status();
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
}

/// Item 3 "after a real apply": the apply's `verify.privilege` step reports
/// the setuid file pb-suid ships, with its package, and `dpkg --verify` of
/// what it touched; an apply of a plain package reports none.
fn a_real_apply_reports_a_new_setuid_file() {
    let root = debian_root(&["pb-demo=1.0"]);
    let a = root.agent("apply", &["--job-key", "a-suid", "pb-suid=1.0"]);
    let j = &a.json;
    assert_eq!(a.code, 0, "{j:#}\n{}", a.stderr);
    assert!(
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "verify.privilege"),
        "{j:#}"
    );
    assert_eq!(
        j["privilege"],
        serde_json::json!([{
            "path": "/usr/bin/pb-suid-helper",
            "package": "pb-suid",
            "finding": "new_setuid",
            "after": "4755 0:0"
        }]),
        "{j:#}"
    );
    assert_eq!(j["verify"], serde_json::json!([]), "{j:#}");
    let mode = std::fs::metadata(root.path.join("usr/bin/pb-suid-helper"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
    // An upgrade of a plain package: nothing to report.
    let b = root.agent("apply", &["--job-key", "a-plain", "pb-demo=1.1"]);
    assert_eq!(b.code, 0, "{:#}", b.json);
    assert_eq!(b.json["privilege"], serde_json::json!([]), "{:#}", b.json);
}
