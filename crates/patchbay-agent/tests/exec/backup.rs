//! Backup verification (issue 18, item 6; ADR 0020) with a real snapshot
//! tool on a real tree: a debootstrap root's `/etc` and `/var/lib/dpkg`
//! archived by GNU tar in `hooks.snapshot` before a real apply, with a
//! SHA-256 manifest of every file; `hooks.snapshot_verify` restores the
//! archive into the agent's scratch directory and checks every file against
//! the manifest with `sha256sum -c`. The shipped `patchbay-agent
//! verify-snapshot` reports it verified; the same archive truncated reports
//! `failed` with tar's own error; the scratch directory is gone either way.

use crate::support::debian_root;
use std::path::Path;

/// The tests of this module.
pub const TESTS: &[(&str, fn())] = &[
    (
        "backup::a_tar_snapshot_verifies_and_a_truncated_one_fails_with_the_tool_error",
        a_tar_snapshot_verifies_and_a_truncated_one_fails_with_the_tool_error,
    ),
    (
        "backup::signed_jobs_take_a_snapshot_and_verify_it_through_the_check_in",
        signed_jobs_take_a_snapshot_and_verify_it_through_the_check_in,
    ),
];

const SNAPSHOT: &str = r#"set -eu
dir="$1"
id="$dir/$PATCHBAY_JOB_KEY.tar"
mkdir -p "$(dirname "$id")"
cd "$PATCHBAY_ROOT"
find etc var/lib/dpkg -type f -print0 | sort -z | xargs -0 sha256sum > "$id.sha256"
tar -cf "$id" etc var/lib/dpkg
echo "snapshot of $(wc -l < "$id.sha256") files taken"
echo "$id"
"#;

const VERIFY: &str = r#"set -eu
cd "$PATCHBAY_SCRATCH"
tar -xf "$PATCHBAY_SNAPSHOT_ID"
sha256sum --quiet --strict -c "$PATCHBAY_SNAPSHOT_ID.sha256"
echo "verified $(wc -l < "$PATCHBAY_SNAPSHOT_ID.sha256") files in $PATCHBAY_SCRATCH"
"#;

fn a_tar_snapshot_verifies_and_a_truncated_one_fails_with_the_tool_error() {
    let root = debian_root(&["pb-demo=1.0"]);
    let snaps = root.scratch.join("snapshots");
    std::fs::write(root.scratch.join("snapshot.sh"), SNAPSHOT).unwrap();
    std::fs::write(root.scratch.join("verify.sh"), VERIFY).unwrap();
    let cfg = root.config(&format!(
        "[hooks]\nsnapshot = [\"sh\", {}, {}]\nsnapshot_verify = [\"sh\", {}]\ntimeout_secs = 300\n",
        toml(&root.scratch.join("snapshot.sh")),
        toml(&snaps),
        toml(&root.scratch.join("verify.sh")),
    ));

    // A real apply takes the snapshot first; its identity is the hook's last line.
    let a = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "bk-1", "pb-demo=1.1"],
    );
    assert_eq!(a.code, 0, "{:#}\n{}", a.json, a.stderr);
    let id = a.json["snapshot"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{:#}", a.json));
    assert_eq!(Path::new(id), snaps.join("bk-1.tar"));
    let manifest = std::fs::read_to_string(format!("{id}.sha256")).unwrap();
    let files = manifest.lines().count();
    assert!(files > 100, "a real tree: {files} files");
    assert!(
        manifest.contains("var/lib/dpkg/status"),
        "the dpkg database is in it"
    );
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));

    // Verified: restored to scratch, every file's SHA-256 as it was.
    let v = root.agent(
        "verify-snapshot",
        &["--config", &cfg, "--job-key", "v-1", "--snapshot", id],
    );
    assert_eq!(v.code, 0, "{:#}\n{}", v.json, v.stderr);
    assert_eq!(v.json["verified"], true, "{:#}", v.json);
    assert_eq!(v.json["exit"], 0);
    assert_eq!(v.json["snapshot"], id);
    let excerpt = v.json["excerpt"].as_str().unwrap();
    assert!(
        excerpt.contains(&format!("verified {files} files in ")),
        "{excerpt}"
    );
    assert_eq!(v.json["scratch_cleaned"], true);
    assert!(
        !root.state.join("verify-snapshot").exists(),
        "scratch deleted"
    );

    // A tampered file in the archive: sha256sum names it.
    // (Rewrite one member through tar itself: extract, change, re-archive.)
    let work = root.scratch.join("tamper");
    std::fs::create_dir_all(&work).unwrap();
    let tampered = root.scratch.join("tampered.tar");
    run(std::process::Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-xf")
        .arg(id));
    std::fs::write(work.join("etc/hostname"), "not-the-host\n").unwrap();
    run(std::process::Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(&tampered)
        .args(["etc", "var/lib/dpkg"]));
    std::fs::copy(
        format!("{id}.sha256"),
        format!("{}.sha256", tampered.display()),
    )
    .unwrap();
    let t = root.agent(
        "verify-snapshot",
        &[
            "--config",
            &cfg,
            "--job-key",
            "v-2",
            "--snapshot",
            tampered.to_str().unwrap(),
        ],
    );
    assert_eq!(t.code, 1, "{:#}", t.json);
    assert_eq!(t.json["verified"], false);
    let excerpt = t.json["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("etc/hostname: FAILED"), "{excerpt}");

    // Truncated: tar's own error, reported failed.
    let len = std::fs::metadata(id).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(id).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let c = root.agent(
        "verify-snapshot",
        &["--config", &cfg, "--job-key", "v-3", "--snapshot", id],
    );
    assert_eq!(c.code, 1, "{:#}", c.json);
    assert_eq!(c.json["verified"], false, "{:#}", c.json);
    assert_ne!(c.json["exit"], 0);
    let excerpt = c.json["excerpt"].as_str().unwrap();
    assert!(
        excerpt.contains("tar: Unexpected EOF in archive"),
        "the tool's error: {excerpt}"
    );
    assert_eq!(c.json["scratch_cleaned"], true);
    assert!(
        !root.state.join("verify-snapshot").exists(),
        "scratch deleted"
    );

    // Without the hook: not verified, saying why.
    let bare = root.config("");
    let n = root.agent(
        "verify-snapshot",
        &["--config", &bare, "--job-key", "v-4", "--snapshot", id],
    );
    assert_eq!(n.code, 1);
    assert_eq!(
        n.json["error"],
        "no hooks.snapshot_verify in this agent's configuration"
    );
}

fn toml(p: &Path) -> String {
    crate::rollout::toml_str(p.to_str().unwrap())
}

fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same hooks driven by signed jobs through the agent's check-in (a
/// scripted peer plays the server): the apply's result names the snapshot
/// its hook took; a `verify_snapshot` job naming it is verified; one naming
/// a truncated copy fails with tar's error in the result's message.
fn signed_jobs_take_a_snapshot_and_verify_it_through_the_check_in() {
    use crate::jobs::{ENABLED, Peer, apply_kind, job, once, result_for, server_key};
    use patchbay_core::job::{JobKind, sign};
    let root = debian_root(&["pb-demo=1.0"]);
    let snaps = root.scratch.join("snapshots");
    std::fs::write(root.scratch.join("snapshot.sh"), SNAPSHOT).unwrap();
    std::fs::write(root.scratch.join("verify.sh"), VERIFY).unwrap();
    let config = root.config(&format!(
        "{ENABLED}\n[hooks]\nsnapshot = [\"sh\", {}, {}]\nsnapshot_verify = [\"sh\", {}]\n",
        toml(&root.scratch.join("snapshot.sh")),
        toml(&snaps),
        toml(&root.scratch.join("verify.sh")),
    ));
    let id = snaps.join("A/web-1.tar");
    let stranger = root.scratch.join("not-mine.tar");
    let signer = server_key();
    let apply = sign(
        job("A/web-1", apply_kind(&[("pb-demo", "1.1")]), &[]),
        &signer,
    );
    let verify = |key: &str, snapshot: &Path| {
        sign(
            job(
                key,
                JobKind::VerifySnapshot {
                    snapshot: snapshot.display().to_string(),
                },
                &[],
            ),
            &signer,
        )
    };
    let good = verify("A/verify/web-1", &id);
    let cut = verify("B/verify/web-1", &id);
    // A snapshot this host never took: refused, the hook never runs.
    let not_mine = verify("C/verify/web-1", &stranger);
    let peer = Peer::start(
        signer.public_hex(),
        Box::new(move |n, body| {
            let acked: Vec<String> = crate::jobs::results(body)
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_owned())
                .collect();
            let jobs = match n {
                0 => vec![apply.clone()],
                1 => vec![good.clone()],
                2 => vec![cut.clone()],
                3 => vec![not_mine.clone()],
                _ => vec![],
            };
            Some((jobs, acked))
        }),
    );
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    once(&root, &peer, &config, &[]);
    // The snapshot truncated (damaged in storage) for the third job.
    let bytes = std::fs::read(&id).unwrap();
    std::fs::write(&id, &bytes[..bytes.len() / 2]).unwrap();
    once(&root, &peer, &config, &[]);
    // The fourth: an archive that verifies, but this host never took it.
    std::fs::write(&stranger, &bytes).unwrap();
    std::fs::copy(
        format!("{}.sha256", id.display()),
        format!("{}.sha256", stranger.display()),
    )
    .unwrap();
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &[]);
    let c = peer.checkins();
    let r = result_for(&c[1], "A/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(r["snapshot"], id.display().to_string(), "{r:#}");
    let r = result_for(&c[2], "A/verify/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("exit 0\nverified "),
        "{r:#}"
    );
    let r = result_for(&c[3], "B/verify/web-1");
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["step"], "verify_snapshot");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("tar: Unexpected EOF in archive"),
        "{r:#}"
    );
    let r = result_for(&c[4], "C/verify/web-1");
    assert_eq!(r["outcome"], "refused", "{r:#}");
    assert_eq!(r["refusal"], "snapshot_not_taken_here", "{r:#}");
    assert!(
        !root.state.join("verify-snapshot").exists(),
        "scratch deleted"
    );
}
