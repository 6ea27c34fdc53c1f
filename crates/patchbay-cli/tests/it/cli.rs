//! The `patchbay` client commands, run as a user would.

use crate::support::{PATCHBAY, Server, ok};
use std::process::Command;

#[test]
fn client_commands_work_end_to_end() {
    let s = Server::start("sqlite");
    // Enrolment token from the CLI; the printed token enrols an agent.
    let out = s.cli(&[
        "enroll-token",
        "create",
        "--uses",
        "2",
        "--ttl",
        "1h",
        "--format",
        "json",
    ]);
    let t: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(t["uses"], 2);
    let root = crate::support::deb_root(&crate::support::minbase_before());
    let state = tempfile::tempdir().unwrap();
    ok(&s.agent_once(
        state.path(),
        t["token"].as_str(),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));

    // assets list / show / set.
    let list = ok(&s.cli(&["assets", "list"]));
    assert!(list.starts_with("NAME"), "{list}");
    assert!(
        list.contains("chroot-host") && list.contains("debian:12") && list.contains("managed"),
        "{list}"
    );
    let out = ok(&s.cli(&[
        "assets",
        "set",
        "chroot-host",
        "--owner",
        "platform",
        "--business-impact",
        "critical",
        "--exposure",
        "internet-facing",
        "--environment",
        "prod",
        "--tags",
        "web,pci",
    ]));
    assert!(out.contains("updated chroot-host"));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&s.cli(&["assets", "list", "--format", "json"]))).unwrap();
    assert_eq!(j[0]["owner"], "platform");
    assert_eq!(j[0]["tags"], serde_json::json!(["pci", "web"]));
    let show = ok(&s.cli(&["assets", "show", "chroot-host"]));
    assert!(
        show.contains("critical") && show.contains("88 (deb)"),
        "{show}"
    );

    // A bad value is refused with a message naming the field; exit code non-zero.
    let out = s.cli(&["assets", "set", "chroot-host", "--exposure", "dmz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exposure") && err.contains("internet-facing"),
        "{err}"
    );
    let out = s.cli(&["assets", "show", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no asset named"));

    // Import from a JSON file.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("assets.json");
    std::fs::write(&f, r#"[{"name": "erp-app", "kind": "application", "packages": [{"name": "sap-kernel", "version": "7.93"}]}]"#)
        .unwrap();
    let out = ok(&s.cli(&["assets", "import", f.to_str().unwrap()]));
    assert!(out.contains("1 created"), "{out}");

    // Tokens: create, list, revoke.
    let created: serde_json::Value = serde_json::from_str(&ok(&s.cli(&[
        "tokens", "create", "--name", "ci", "--role", "auditor", "--format", "json",
    ])))
    .unwrap();
    let id = created["id"].as_i64().unwrap().to_string();
    let list = ok(&s.cli(&["tokens", "list"]));
    assert!(list.contains("ci") && list.contains("auditor"), "{list}");
    assert!(
        !list.contains(created["token"].as_str().unwrap()),
        "secrets are never listed"
    );
    ok(&s.cli(&["tokens", "revoke", &id]));
    let out = s.cli(&["tokens", "revoke", &id]);
    assert!(!out.status.success(), "revoking twice is a conflict");
    let out = s.cli(&["tokens", "create", "--name", "x", "--role", "root"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));

    // The audit log shows the writes.
    let audit = ok(&s.cli(&["audit", "list", "--limit", "100"]));
    for action in [
        "enroll_token.create",
        "agent.enroll",
        "inventory.update",
        "asset.update",
        "asset.import",
        "token.revoke",
    ] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
}

#[test]
fn client_without_a_token_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PATCHBAY)
        .args(["assets", "list"])
        .current_dir(dir.path())
        .env_remove("PATCHBAY_TOKEN")
        .env("PATCHBAY_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token") && err.contains("PATCHBAY_TOKEN"),
        "{err}"
    );
}

#[test]
fn help_lists_the_commands() {
    let out = ok(&Command::new(PATCHBAY).arg("--help").output().unwrap());
    for c in [
        "serve",
        "dev",
        "assets",
        "tokens",
        "enroll-token",
        "audit",
        "sim",
        "windows",
        "blackouts",
        "plan",
        "calendar",
        "exceptions",
        "report",
        "changes",
        "evidence",
    ] {
        assert!(out.contains(c), "{c} missing from --help");
    }
    // The RFC 5545 DST rules are documented where windows are defined.
    for sub in [["windows", "preview"], ["windows", "add"]] {
        let out = ok(&Command::new(PATCHBAY)
            .args(sub)
            .arg("--help")
            .output()
            .unwrap());
        for rule in [
            "spring-forward gap",
            "UTC offset from before the gap",
            "first of the two",
            "exact elapsed time",
        ] {
            assert!(out.contains(rule), "{sub:?} --help lacks {rule:?}");
        }
    }
    let out = ok(&Command::new(PATCHBAY)
        .args(["audit", "verify", "--help"])
        .output()
        .unwrap());
    assert!(out.contains("edited, deleted, inserted or reordered"));
    let out = ok(&Command::new(crate::support::agent())
        .arg("--help")
        .output()
        .unwrap());
    assert!(out.contains("--enroll-token") && out.contains("--root") && out.contains("--once"));
}

/// The real `patchbay-agent` binary runs its local commands without `--server`
/// and prints JSON; the execution layer itself is tested in `patchbay-agent`'s
/// `tests/exec` on real Debian and rpm roots.
#[test]
fn agent_binary_local_commands_print_json_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[[check]]\nname = \"true\"\nkind = \"command\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let out = Command::new(crate::support::agent())
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .env_remove("PATCHBAY_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checks"][0]["name"], "true");
    // A rollback of an unknown key fails with a JSON error object and exit code 3.
    let out = Command::new(crate::support::agent())
        .args([
            "rollback",
            "--job-key",
            "nope",
            "--root",
            "/",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&cfg)
        .env_remove("PATCHBAY_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["step"], "rollback");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown job key")
    );
}

#[test]
fn fleet_simulator_enrols_virtual_agents_with_real_inventories() {
    let s = Server::start("sqlite");
    let out = ok(&s.cli(&[
        "sim",
        "--agents",
        "12",
        "--concurrency",
        "3",
        "--prefix",
        "vm",
    ]));
    assert!(out.contains("enrolled 12 virtual agents"), "{out}");
    let l: serde_json::Value =
        serde_json::from_str(&ok(&s.cli(&["assets", "list", "--format", "json"]))).unwrap();
    let items = l.as_array().unwrap();
    assert_eq!(items.len(), 12);
    let oses: std::collections::BTreeSet<&str> =
        items.iter().map(|a| a["os"].as_str().unwrap()).collect();
    assert!(oses.contains("debian:12"), "{oses:?}");
    assert!(
        items
            .iter()
            .all(|a| a["package_count"].as_u64().unwrap() > 50 && a["liveness"] == "managed")
    );
}

/// The binary runs on mimalloc (ADR 0025), for Rust's allocations and, through
/// the override, for the C code's `malloc` too (SQLite's row values, which
/// glibc stalled on). Both halves are checked on the built executable: its
/// allocator announces itself when asked, and the executable itself defines
/// `malloc` (without the override it would come from glibc).
#[test]
fn the_binary_runs_on_mimalloc_for_rust_and_c_allocations() {
    let out = Command::new(PATCHBAY)
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mimalloc: process init"),
        "mimalloc did not start in the patchbay binary; stderr: {err}"
    );
    let nm = Command::new("nm")
        .args(["--defined-only", PATCHBAY])
        .output()
        .expect("nm (binutils) runs");
    assert!(nm.status.success(), "nm failed: {nm:?}");
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let defines = |name: &str| {
        symbols.lines().any(|l| {
            let mut f = l.split_whitespace().rev();
            f.next() == Some(name) && matches!(f.next(), Some("T" | "W" | "i"))
        })
    };
    assert!(
        defines("malloc") && defines("free"),
        "the patchbay executable does not define malloc/free itself: C code would use glibc's"
    );
}
