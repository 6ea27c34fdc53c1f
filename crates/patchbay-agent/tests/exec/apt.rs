//! The apt/dpkg backend on real Debian 12 roots.

use crate::support::{agent, agent_command, debian_root, journal, kill_tree, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

pub const TESTS: &[crate::Test] = &[
    (
        "apt::apply_upgrades_exactly_and_never_touches_unnamed_packages",
        apply_upgrades_exactly_and_never_touches_unnamed_packages,
    ),
    (
        "apt::apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package",
        apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package,
    ),
    (
        "apt::failing_health_check_then_rollback_restores_version_and_health",
        failing_health_check_then_rollback_restores_version_and_health,
    ),
    (
        "apt::held_dpkg_lock_makes_preflight_refuse_naming_the_lock",
        held_dpkg_lock_makes_preflight_refuse_naming_the_lock,
    ),
    (
        "apt::sigkill_during_apply_is_detected_and_repaired_on_the_next_run",
        sigkill_during_apply_is_detected_and_repaired_on_the_next_run,
    ),
    (
        "apt::same_job_key_twice_applies_once",
        same_job_key_twice_applies_once,
    ),
    (
        "apt::updates_lists_versions_and_origin",
        updates_lists_versions_and_origin,
    ),
    (
        "apt::preflight_space_and_snapshot_hook",
        preflight_space_and_snapshot_hook,
    ),
    (
        "apt::check_command_runs_local_checks",
        check_command_runs_local_checks,
    ),
];

/// Entries of `after` that differ from `before` (added, removed or changed).
fn changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, (Option<String>, Option<String>)> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| (k.clone(), (before.get(k).cloned(), after.get(k).cloned())))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// pb-demo 1.0 → 1.1 upgrades it and newly installs its new dependency pb-extra;
/// the full `dpkg-query -W` shows no other difference (pb-lib 2.0 is available
/// and stays at 1.0).
fn apply_upgrades_exactly_and_never_touches_unnamed_packages() {
    let root = debian_root(&["pb-demo=1.0", "pb-lib=1.0"]);
    let before = root.packages();
    assert!(
        before.len() > 80,
        "a real minbase root: {} packages",
        before.len()
    );
    let r = root.agent("apply", &["--job-key", "up-1", "pb-demo=1.1"]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert_eq!(s(&r.json["outcome"]), "succeeded");
    assert_eq!(
        std::fs::read_to_string(root.path.join("usr/share/pb-demo/version")).unwrap(),
        "1.1\n"
    );
    let after = root.packages();
    let diff = changes(&before, &after);
    let expect: BTreeMap<String, (Option<String>, Option<String>)> = [
        (
            "pb-demo:all".to_string(),
            (Some("1.0 ii".to_string()), Some("1.1 ii".to_string())),
        ),
        (
            "pb-extra:all".to_string(),
            (None, Some("1.0 ii".to_string())),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        diff, expect,
        "only the named package and its new dependency change"
    );
    // The rollback plan recorded both: pb-demo at 1.0, pb-extra absent.
    let plan = r.json["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert_eq!(plan[0]["name"], "pb-demo");
    assert_eq!(plan[0]["before"], "1.0");
    assert_eq!(plan[1]["name"], "pb-extra");
    assert!(plan[1]["before"].is_null());
    // The origin is the "security pocket" of the local repository.
    let demo = r.json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pb-demo")
        .unwrap();
    assert_eq!(demo["origin"], "Patchbay-Security:bookworm-security");
    // The journal holds the plan before the apply step, and the final result.
    let j = journal(&root.state);
    let steps: Vec<&str> = j.iter().filter_map(|r| r["step"].as_str()).collect();
    let plan_at = steps.iter().position(|s| *s == "plan").unwrap();
    let apply_at = steps.iter().position(|s| *s == "apply.begin").unwrap();
    assert!(plan_at < apply_at, "{steps:?}");
    assert_eq!(j.last().unwrap()["event"], "finished");
    assert_eq!(r.json["reboot_required"], false);
}

/// pb-tool needs pb-lib ≥ 2.0: the simulation would upgrade pb-lib, which the job
/// does not name, so the agent refuses before changing anything.
fn apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package() {
    let root = debian_root(&["pb-demo=1.0", "pb-lib=1.0"]);
    let before = root.packages();
    let r = root.agent("apply", &["--job-key", "tool-1", "pb-tool=1.0"]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "refused");
    assert_eq!(s(&r.json["error"]["step"]), "scope");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("pb-lib (1.0 -> 2.0)"), "{msg}");
    assert_eq!(root.packages(), before, "nothing changed");
    // Naming pb-lib too makes the same change acceptable.
    let r = root.agent(
        "apply",
        &["--job-key", "tool-2", "pb-tool=1.0", "pb-lib=2.0"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(root.version("pb-lib").as_deref(), Some("2.0"));
    assert_eq!(root.version("pb-tool").as_deref(), Some("1.0"));
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.0"));
}

/// 1.1 is healthy; 1.2 fails the health check (it reads the version file inside
/// the root from the host); `rollback` restores 1.1 and health; rolling back the
/// first job restores 1.0 and removes pb-extra, which that job had added.
fn failing_health_check_then_rollback_restores_version_and_health() {
    let root = debian_root(&["pb-demo=1.0"]);
    let version_file = root.path.join("usr/share/pb-demo/version");
    let cfg = root.config(&format!(
        "[[check]]\nname = \"pb-demo-is-1.1\"\nkind = \"command\"\ncommand = [\"grep\", \"-qx\", \"1.1\", \"{}\"]\ntimeout_secs = 5\n",
        version_file.display()
    ));
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "h-1", "pb-demo=1.1"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(
        r.json["health_baseline"][0]["ok"], false,
        "1.0 fails the check"
    );
    assert_eq!(r.json["health_after"][0]["ok"], true);

    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "h-2", "pb-demo=1.2"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "failed");
    assert_eq!(s(&r.json["error"]["step"]), "verify.health");
    assert!(s(&r.json["error"]["message"]).contains("pb-demo-is-1.1"));
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.2"));

    let rb = root.agent("rollback", &["--config", &cfg, "--job-key", "h-2"]);
    assert_eq!(rb.code, 0, "{:#}\n{}", rb.json, rb.stderr);
    assert_eq!(s(&rb.json["outcome"]), "succeeded");
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    assert_eq!(std::fs::read_to_string(&version_file).unwrap(), "1.1\n");
    assert!(
        rb.json["health_after"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{:#}",
        rb.json
    );
    // The plain `check` command agrees.
    let c = agent(&["--config", &cfg, "check"]);
    assert_eq!(c.code, 0, "{:#}", c.json);

    // Rolling back the first job: pb-demo back to 1.0 and pb-extra (absent before
    // h-1) removed. The check fails again, as it did before h-1: not a regression.
    let rb1 = root.agent("rollback", &["--config", &cfg, "--job-key", "h-1"]);
    assert_eq!(rb1.code, 0, "{:#}", rb1.json);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.0"));
    assert_eq!(root.version("pb-extra"), None);
    let changes = rb1.json["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["op"] == "remove" && c["name"] == "pb-extra"),
        "{changes:?}"
    );
}

/// Another process holds dpkg's frontend lock (a POSIX fcntl lock, as apt takes
/// it): pre-flight refuses and names the lock and its holder.
fn held_dpkg_lock_makes_preflight_refuse_naming_the_lock() {
    let root = debian_root(&["pb-demo=1.0"]);
    let before = root.packages();
    let lock = root.path.join("var/lib/dpkg/lock-frontend");
    let py = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("-c")
                .arg("")
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("python3 is needed to hold a POSIX lock from another process");
    let mut holder = std::process::Command::new(py)
        .arg("-c")
        .arg("import fcntl,sys,time\nf=open(sys.argv[1],'a+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(120)")
        .arg(&lock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let r = root.agent("apply", &["--job-key", "locked-1", "pb-demo=1.1"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "refused");
    assert_eq!(s(&r.json["error"]["step"]), "preflight.lock");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("var/lib/dpkg/lock-frontend"), "{msg}");
    assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
    assert_eq!(root.packages(), before);
    // Released, a new job goes through.
    let r = root.agent("apply", &["--job-key", "locked-2", "pb-demo=1.1"]);
    assert_eq!(r.code, 0, "{:#}", r.json);
}

/// SIGKILL of the agent and everything it started while dpkg runs pb-demo 1.3's
/// postinst leaves dpkg half-configured and the journal with a started job and
/// no result. The next run reports the job as interrupted, with the `dpkg
/// --audit` finding, repairs with `dpkg --configure -a`, and reports a torn
/// journal tail; the same key then returns that recorded result.
fn sigkill_during_apply_is_detected_and_repaired_on_the_next_run() {
    let root = debian_root(&["pb-demo=1.1"]);
    let marker = root.path.join("var/lib/pb-demo-slept");
    let mut child = agent_command()
        .args(["apply", "--root"])
        .arg(&root.path)
        .arg("--state-dir")
        .arg(&root.state)
        .args(["--job-key", "slow-1", "pb-demo=1.3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "pb-demo 1.3's postinst to start",
        Duration::from_secs(120),
        || marker.exists() || child.try_wait().unwrap().is_some(),
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent ended before the postinst ran"
    );
    let killed = kill_tree(child.id());
    child.wait().unwrap();
    assert!(
        killed.len() >= 3,
        "agent, apt-get, dpkg, postinst, sleep: {killed:?}"
    );

    // The crash is real: dpkg says so, and the journal has no result.
    let audit = root.audit();
    assert!(
        audit.contains("pb-demo") && audit.contains("half configured"),
        "{audit}"
    );
    let j = journal(&root.state);
    assert!(
        j.iter()
            .any(|r| r["job_key"] == "slow-1" && r["event"] == "started")
    );
    assert!(
        !j.iter()
            .any(|r| r["job_key"] == "slow-1" && r["event"] == "finished")
    );
    assert_eq!(j.last().unwrap()["step"], "apply.begin");
    // A crash in the middle of a journal write: a torn last line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(root.state.join("journal.jsonl"))
        .and_then(|mut f| {
            std::io::Write::write_all(
                &mut f,
                br#"{"ts":"2026-11-24T00:00:00Z","job_key":"slow-1","ki"#,
            )
        })
        .unwrap();

    let r = root.agent("apply", &["--job-key", "next-1", "pb-demo=1.1"]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert!(
        r.json["journal"]["torn_tail_bytes"].as_u64().unwrap() > 0,
        "{:#}",
        r.json["journal"]
    );
    let rec = &r.json["recovered"][0];
    assert_eq!(rec["job_key"], "slow-1");
    assert_eq!(rec["outcome"], "interrupted");
    assert_eq!(rec["last_step"], "apply.begin");
    assert_eq!(rec["consistency_before"]["ok"], false);
    assert_eq!(rec["consistency_before"]["issues"][0]["package"], "pb-demo");
    assert_eq!(rec["repair"]["exit"], 0, "{rec:#}");
    assert_eq!(rec["consistency_after"]["ok"], true);
    assert_eq!(root.audit().trim(), "", "dpkg is consistent again");
    assert_eq!(
        root.version("pb-demo").as_deref(),
        Some("1.1"),
        "and the new job ran"
    );

    // `recover` finds nothing more to do.
    let rec = root.agent("recover", &[]);
    assert_eq!(rec.code, 0, "{:#}", rec.json);
    assert_eq!(rec.json["recovered"], serde_json::json!([]));
    assert_eq!(rec.json["consistency_before"]["ok"], true);

    // The interrupted key now has a recorded result and is not run again.
    let again = root.agent("apply", &["--job-key", "slow-1", "pb-demo=1.3"]);
    assert_eq!(again.code, 1);
    assert_eq!(again.json["outcome"], "interrupted");
    assert_eq!(again.json["replayed"], true);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
}

/// The second run of a job key returns the journalled result and runs nothing:
/// no new command log, dpkg's log and status and apt's lists untouched.
fn same_job_key_twice_applies_once() {
    let root = debian_root(&["pb-demo=1.0"]);
    let first = root.agent("apply", &["--job-key", "once-1", "pb-demo=1.1"]);
    assert_eq!(first.code, 0, "{:#}", first.json);
    let stat = |rel: &str| {
        let m = std::fs::metadata(root.path.join(rel)).unwrap();
        (m.len(), m.modified().unwrap())
    };
    let watched = [
        "var/log/dpkg.log",
        "var/lib/dpkg/status",
        "var/log/apt/history.log",
        "var/lib/apt/lists",
    ];
    let before: Vec<_> = watched.iter().map(|p| stat(p)).collect();
    let logs_before = std::fs::read_dir(root.state.join("logs")).unwrap().count();
    std::thread::sleep(Duration::from_millis(20));

    let second = root.agent("apply", &["--job-key", "once-1", "pb-demo=1.1"]);
    assert_eq!(second.code, 0);
    assert_eq!(second.json["replayed"], true);
    let strip = |v: &Value| {
        let mut v = v.clone();
        for k in ["replayed", "journal"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(
        strip(&second.json),
        strip(&first.json),
        "the recorded result"
    );
    let after: Vec<_> = watched.iter().map(|p| stat(p)).collect();
    assert_eq!(before, after, "dpkg and apt were not invoked");
    assert_eq!(
        std::fs::read_dir(root.state.join("logs")).unwrap().count(),
        logs_before,
        "no command ran"
    );
    // Even a different package list under the same key is not acted on.
    let third = root.agent("apply", &["--job-key", "once-1", "pb-demo=1.2"]);
    assert_eq!(third.json["replayed"], true);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    let starts = journal(&root.state)
        .iter()
        .filter(|r| r["event"] == "started")
        .count();
    assert_eq!(starts, 1);
}

/// `updates` lists what the repository offers over the installed versions, with
/// the release it comes from.
fn updates_lists_versions_and_origin() {
    let root = debian_root(&["pb-demo=1.0", "pb-lib=1.0"]);
    let r = root.agent("updates", &[]);
    assert_eq!(r.code, 0, "{:#}", r.json);
    let ups = r.json["updates"].as_array().unwrap();
    let find = |n: &str| {
        ups.iter()
            .find(|u| u["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {ups:?}"))
    };
    assert_eq!(find("pb-demo")["current_version"], "1.0");
    assert_eq!(find("pb-demo")["available_version"], "1.3");
    assert_eq!(find("pb-lib")["available_version"], "2.0");
    assert_eq!(
        find("pb-lib")["origin"],
        "Patchbay-Security:bookworm-security"
    );
    assert_eq!(r.json["backend"], "apt");
}

/// Pre-flight refuses when the configured reserve cannot be kept free, and when
/// the snapshot hook fails; a succeeding hook runs with the job key and root.
fn preflight_space_and_snapshot_hook() {
    let root = debian_root(&["pb-demo=1.0"]);
    let before = root.packages();
    let cfg = root.config("[preflight]\nmin_free_mb = 1000000000\n");
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "space-1", "pb-demo=1.1"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["error"]["step"]), "preflight.space");
    assert!(s(&r.json["error"]["message"]).contains("not enough free space"));

    let cfg =
        root.config("[hooks]\nsnapshot = [\"sh\", \"-c\", \"echo no snapshot >&2; exit 7\"]\n");
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "snap-1", "pb-demo=1.1"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["error"]["step"]), "preflight.snapshot");
    assert!(s(&r.json["error"]["message"]).contains("exit 7: no snapshot"));
    assert_eq!(root.packages(), before);

    let out = root.scratch.join("snapshot-taken");
    let cfg = root.config(&format!(
        "[hooks]\nsnapshot = [\"sh\", \"-c\", \"echo $PATCHBAY_JOB_KEY $PATCHBAY_ROOT > {}\"]\n",
        out.display()
    ));
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "snap-2", "pb-demo=1.1"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        format!("snap-2 {}", root.path.canonicalize().unwrap().display())
    );

    // Rollback by snapshot: without a restore hook it fails naming the step; with
    // one, the hook runs with the job key and its exit code decides.
    let r = root.agent(
        "rollback",
        &[
            "--config",
            &cfg,
            "--job-key",
            "snap-2",
            "--method",
            "snapshot",
        ],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["error"]["step"]), "snapshot_restore");
    let restored = root.scratch.join("restored");
    let cfg = root.config(&format!(
        "[hooks]\nsnapshot_restore = [\"sh\", \"-c\", \"echo $PATCHBAY_JOB_KEY > {}\"]\n",
        restored.display()
    ));
    // A failed rollback is final for its key too: a new apply key is needed to retry.
    let again = root.agent(
        "rollback",
        &[
            "--config",
            &cfg,
            "--job-key",
            "snap-2",
            "--method",
            "snapshot",
        ],
    );
    assert_eq!(again.json["replayed"], true);
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "snap-3", "pb-demo=1.0"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    let r = root.agent(
        "rollback",
        &[
            "--config",
            &cfg,
            "--job-key",
            "snap-3",
            "--method",
            "snapshot",
        ],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(std::fs::read_to_string(&restored).unwrap().trim(), "snap-3");
}

/// `check` runs the configured checks (and only configured ones).
fn check_command_runs_local_checks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[[check]]\nname = \"ok\"\nkind = \"command\"\ncommand = [\"true\"]\n\n[[check]]\nname = \"closed-port\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let r = agent(&["--config", cfg, "check"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json["checks"][0]["ok"], true);
    assert_eq!(r.json["checks"][1]["ok"], false);
    assert_eq!(r.json["checks"][1]["kind"], "tcp");
    let r = agent(&["--config", cfg, "check", "--name", "ok"]);
    assert_eq!(r.code, 0);
    let r = agent(&["--config", cfg, "check", "--name", "rm-rf"]);
    assert_eq!(r.code, 3);
    assert_eq!(r.json["error"]["step"], "check");
    assert!(s(&r.json["error"]["message"]).contains("unknown check"));
}
