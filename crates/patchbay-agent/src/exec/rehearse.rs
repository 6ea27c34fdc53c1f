//! Rehearsal: run a job's exact transaction in a throwaway overlay of the
//! host's own root, and report what would happen (ADR 0018,
//! `docs/rehearsal.md`).
//!
//! # Overlay mode
//! 1. Leftovers of an interrupted rehearsal (`STATE/rehearse/`) are unmounted
//!    and deleted.
//! 2. An overlayfs is mounted on `STATE/rehearse/merged`: lower = the root
//!    (`/`, or `--root`), which overlayfs never writes; upper and work under
//!    `STATE/rehearse/`.
//! 3. `usr/sbin/policy-rc.d` answering 101 is written into the merged tree (the
//!    upper layer), so `invoke-rc.d`/`deb-systemd-invoke` start or restart no
//!    service; every tool runs as `chroot MERGED …`, where systemd's
//!    `systemctl` acts offline (it detects the chroot) and nothing is mounted
//!    (no `/proc`, `/sys` or `/dev` from the host).
//! 4. Held packages, the `Conflicts`/`Breaks` of the named versions against
//!    what is installed, the simulation and its scope check (a transaction that
//!    would remove or change a package the job does not name is refused, and
//!    the rehearsal says which and why), then the exact transaction of an
//!    apply (`apt-get install PKG=VER…`, maintainer scripts included), its
//!    exit status and every failing script with the end of its output.
//! 5. The package diff, the privilege check (every entry of the upper layer is
//!    compared with the same path in the root: new setuid/setgid files, changed
//!    modes and owners, attributed to the package whose file list names the
//!    path), `dpkg --verify` of the packages touched, and the local checks
//!    marked `rehearse = true`, run as `chroot MERGED COMMAND…`.
//! 6. The overlay is unmounted and `STATE/rehearse/` deleted (`cleaned_up`).
//!
//! # Simulation mode
//! When an overlay is impossible the rehearsal falls back to the package
//! manager's simulation (`apt-get -s`, `dnf --assumeno`, …) on the root itself,
//! with the same scope and conflict checks, and says why (`mode_reason`): the
//! agent is not root; the backend is not apt (overlay rehearsal of dnf, zypper
//! and apk roots is not implemented yet); `/usr`, `/var`, `/etc`, … is a separate
//! file system an overlay of the root would not include; or mounting failed
//! (the kernel's message).
//!
//! Rehearsals are not journalled: they change nothing on the root. A
//! server-sent rehearsal is still run at most once per key (the outbox).

use super::config::Check;
use super::health;
use super::job::{JobEnv, lock_state, runner, validate_key};
use super::plan;
use super::report::{JobOutput, StepError, StepSummary};
use super::{Action, Backend, Change, CmdLog, Installed, Runner, Wanted, apt::Apt};
use anyhow::{Context, bail};
use patchbay_proto::agent::{
    CheckSample, Conflict, PrivilegeFinding, Rehearsal, RehearsalMode, ScriptFailure, VersionChange,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The most privilege findings reported (a huge upgrade must not make an
/// unbounded result; the count beyond is noted).
pub const MAX_FINDINGS: usize = 200;

/// The most bytes of a script's output kept.
pub const MAX_OUTPUT: usize = 4096;

/// The top-level directories whose being a separate file system makes an
/// overlay of the root incomplete (a package writes there).
const MUST_BE_ON_ROOT: &[&str] = &["usr", "var", "etc", "opt", "lib", "lib64", "bin", "sbin"];

/// The result of `patchbay-agent rehearse` (and of a `rehearse` job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RehearsalReport {
    /// The job's key.
    pub job_key: String,
    /// Every check passed: the transaction would succeed.
    pub ok: bool,
    /// The failed step (absent on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// Root file system rehearsed (never changed).
    pub root: PathBuf,
    /// Backend name.
    pub backend: String,
    /// The packages named.
    pub requested: Vec<Wanted>,
    /// Steps run.
    pub steps: Vec<StepSummary>,
    /// The simulated transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    /// The transaction's command (overlay mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<CmdLog>,
    /// What was found (mode, diff, scripts, conflicts, privileges, checks).
    pub rehearsal: Rehearsal,
    /// The overlay was unmounted and its layers deleted (overlay mode).
    pub cleaned_up: bool,
}

struct Run {
    rep: RehearsalReport,
}

impl Run {
    fn step(&mut self, name: &str, ok: bool, t: Instant) {
        self.rep.steps.push(StepSummary {
            step: name.to_owned(),
            ok,
            duration_ms: t.elapsed().as_millis() as u64,
        });
    }
}

fn fail(step: &str, message: impl Into<String>) -> StepError {
    StepError::new(step, message)
}

/// Rehearses installing `wanted` on `env.root` (`patchbay-agent rehearse`);
/// `host` names the check samples.
pub fn rehearse(
    env: &JobEnv,
    key: &str,
    wanted: &[Wanted],
    host: &str,
) -> anyhow::Result<JobOutput> {
    validate_key(key)?;
    if wanted.is_empty() {
        bail!("nothing to rehearse: name at least one PKG=VERSION");
    }
    let _lock = lock_state(&env.state_dir)?;
    let backend = super::open(env.backend, &env.root)?;
    let dir = env.state_dir.join("rehearse");
    cleanup(&dir).with_context(|| format!("removing an earlier rehearsal in {}", dir.display()))?;
    let r = runner(&env.config, &env.state_dir, &format!("rehearse-{key}"));
    let changes: Vec<Change> = wanted
        .iter()
        .map(|w| Change::Install {
            name: w.name.clone(),
            version: w.version.clone(),
        })
        .collect();
    let mut run = Run {
        rep: RehearsalReport {
            job_key: key.to_owned(),
            ok: false,
            error: None,
            root: backend.root().to_owned(),
            backend: backend.name().to_owned(),
            requested: wanted.to_vec(),
            steps: Vec::new(),
            actions: None,
            log: None,
            rehearsal: Rehearsal {
                mode: RehearsalMode::Simulation,
                mode_reason: None,
                changed: Vec::new(),
                exit: None,
                scripts: Vec::new(),
                conflicts: Vec::new(),
                held: Vec::new(),
                refused: Vec::new(),
                privilege: Vec::new(),
                verify: Vec::new(),
                checks: Vec::new(),
                services: None,
            },
            cleaned_up: false,
        },
    };
    let t = Instant::now();
    let obstacle = overlay_obstacle(backend.as_ref(), backend.root());
    let mounted = match obstacle {
        Some(why) => Err(why),
        None => mount_overlay(backend.root(), &dir),
    };
    run.step("mode", true, t);
    let outcome = match mounted {
        Ok(merged) => {
            run.rep.rehearsal.mode = RehearsalMode::Overlay;
            let res = overlay_steps(env, &mut run, backend.root(), &merged, &r, &changes, host);
            let t = Instant::now();
            let cleaned = unmount(&merged).and_then(|()| {
                std::fs::remove_dir_all(&dir).with_context(|| format!("deleting {}", dir.display()))
            });
            run.rep.cleaned_up = cleaned.is_ok();
            run.step("cleanup", cleaned.is_ok(), t);
            match (res, cleaned) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(fail("cleanup", format!("{e:#}"))),
                (Ok(()), Ok(())) => Ok(()),
            }
        }
        Err(why) => {
            tracing::info!(reason = %why, "rehearsal falls back to the package manager's simulation");
            run.rep.rehearsal.mode_reason = Some(why);
            let _ = std::fs::remove_dir_all(&dir);
            simulation_steps(env, &mut run, backend.as_ref(), &r, &changes)
        }
    };
    run.rep.ok = outcome.is_ok();
    run.rep.error = outcome.err();
    Ok(JobOutput::Rehearsal(Box::new(run.rep)))
}

/// Why an overlay of `root` is impossible here, or `None`.
fn overlay_obstacle(b: &dyn Backend, root: &Path) -> Option<String> {
    if b.name() != "apt" {
        return Some(format!(
            "overlay rehearsal is implemented for apt roots only; this root uses {}, so its simulation is used",
            b.name()
        ));
    }
    let uid = effective_uid();
    if uid != Some(0) {
        let uid = uid.map_or("unknown".to_owned(), |u| u.to_string());
        return Some(format!(
            "the agent runs as uid {uid}, not root: it cannot mount an overlay or chroot"
        ));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(p) = separate_mounts(&mountinfo, root).into_iter().next() {
        return Some(format!(
            "{p} is a separate file system: an overlay of {} would not include it",
            root.display()
        ));
    }
    None
}

/// The effective uid (`/proc/self/status`).
fn effective_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Mount points (from `/proc/self/mountinfo`) at or below one of
/// [`MUST_BE_ON_ROOT`] under `root`.
pub fn separate_mounts(mountinfo: &str, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options …
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = mp.replace("\\040", " ");
        let Ok(rel) = Path::new(&mp).strip_prefix(root) else {
            continue;
        };
        let first = rel.components().next();
        if let Some(std::path::Component::Normal(c)) = first
            && MUST_BE_ON_ROOT.iter().any(|d| c == *d)
            && !out.contains(&mp)
        {
            out.push(mp);
        }
    }
    out
}

/// Mounts the overlay; returns the merged directory, or why it failed.
fn mount_overlay(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    for p in [root, &upper, &work] {
        let s = p.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(format!(
                "{s} contains ',' or ':', which overlayfs mount options cannot express"
            ));
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        root.display(),
        upper.display(),
        work.display()
    );
    let out = Command::new("mount")
        .args(["-t", "overlay", "patchbay-rehearsal", "-o", &opts])
        .arg(&merged)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(merged),
        Ok(o) => Err(format!(
            "mounting an overlay of {} failed: {}",
            root.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run mount: {e}")),
    }
}

/// Unmounts `merged` (lazily when busy: a process left inside must not keep
/// the overlay, or its upper layer, alive under the state directory).
fn unmount(merged: &Path) -> anyhow::Result<()> {
    let st = Command::new("umount")
        .arg(merged)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running umount")?;
    if st.success() {
        return Ok(());
    }
    let st = Command::new("umount")
        .arg("-l")
        .arg(merged)
        .stdin(Stdio::null())
        .status()
        .context("running umount -l")?;
    if !st.success() {
        bail!("umount -l {} failed ({st})", merged.display());
    }
    Ok(())
}

fn is_mountpoint(p: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let s = p.to_string_lossy().replace(' ', "\\040");
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(&s))
}

/// Removes what an interrupted rehearsal left (its mount first).
fn cleanup(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let merged = dir.join("merged");
    if is_mountpoint(&merged) {
        unmount(&merged)?;
    }
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn overlay_steps(
    env: &JobEnv,
    run: &mut Run,
    root: &Path,
    merged: &Path,
    r: &Runner,
    changes: &[Change],
    host: &str,
) -> Result<(), StepError> {
    let t = Instant::now();
    let policy = merged.join("usr/sbin/policy-rc.d");
    let wrote = write_policy(&policy);
    run.step("services.disabled", wrote.is_ok(), t);
    wrote.map_err(|e| fail("services.disabled", format!("{e:#}")))?;
    let apt = Apt::new(merged.to_owned());
    if env.refresh {
        // In the overlay: the fresh lists land in the upper layer.
        refresh(run, &apt, r);
    }
    let before = installed(run, &apt, r, "inventory.before")?;
    checks_before(run, &apt, r, changes, &before)?;
    let actions = simulate(run, &apt, r, changes, &before)?;

    let t = Instant::now();
    let cmd = &mut apt.install_merged_output(changes);
    let (out, log) = r
        .run("rehearse-install", cmd, r.change_timeout)
        .map_err(|e| fail("rehearse.apply", format!("{e:#}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    run.rep.rehearsal.exit = log.exit;
    run.rep.rehearsal.scripts = script_failures(&text);
    if !log.success() && run.rep.rehearsal.scripts.is_empty() {
        run.rep.rehearsal.scripts.push(ScriptFailure {
            package: "-".into(),
            script: "apt-get".into(),
            exit: log.exit,
            output: tail_bytes(&text, MAX_OUTPUT),
        });
    }
    let applied = log.success();
    run.rep.log = Some(log);
    run.rep.rehearsal.services = Some(requested_services(
        &std::fs::read_to_string(merged.join(SERVICES_LOG)).unwrap_or_default(),
    ));
    run.step("rehearse.apply", applied, t);

    let after = installed(run, &apt, r, "inventory.after")?;
    let changed = plan::diff(&before, &after);
    run.rep.rehearsal.changed = changed
        .iter()
        .map(|d| VersionChange {
            name: d.name.clone(),
            before: d.before.clone(),
            after: d.after.clone(),
        })
        .collect();

    let t = Instant::now();
    let touched: Vec<String> = changed
        .iter()
        .filter(|d| d.after.is_some())
        .map(|d| d.name.clone())
        .collect();
    let owners = file_owners(merged, &touched);
    let upper = merged.parent().map(|d| d.join("upper")).unwrap_or_default();
    let (mut findings, more) = privilege_scan(&upper, root, &owners);
    findings.retain(|f| {
        f.path != "/usr/sbin/policy-rc.d" && f.path != "/run/patchbay-rehearsal-services"
    });
    if more > 0 {
        tracing::warn!(
            more,
            "more privilege findings than reported (limit {MAX_FINDINGS})"
        );
    }
    run.rep.rehearsal.privilege = findings;
    run.rep.rehearsal.verify = apt
        .verify(r, &touched)
        .unwrap_or_else(|e| vec![format!("dpkg --verify could not run: {e:#}")]);
    run.step("privilege", true, t);

    let t = Instant::now();
    let samples: Vec<CheckSample> = env
        .config
        .checks
        .iter()
        .filter(|c| c.rehearse())
        .map(|c| chrooted(c, merged))
        .map(|c| {
            let res = health::run(&c);
            CheckSample {
                host: host.to_owned(),
                check: res.name,
                pass: res.ok,
                value: res.value,
                critical: env
                    .config
                    .jobs
                    .critical_checks
                    .contains(&c.name().to_owned()),
            }
        })
        .collect();
    let checks_ok = samples.iter().all(|s| s.pass);
    run.rep.rehearsal.checks = samples;
    run.step("rehearse.checks", checks_ok, t);

    if let Some(s) = run.rep.rehearsal.scripts.first() {
        return Err(fail(
            "rehearse.apply",
            format!(
                "{} {} exited with {}: {}",
                s.package,
                s.script,
                s.exit.map_or("a signal".to_owned(), |c| c.to_string()),
                said(&s.output)
            ),
        ));
    }
    let unreached = plan::unreached(changes, &actions, &after);
    if !unreached.is_empty() {
        let list: Vec<String> = unreached.iter().map(|(n, v)| format!("{n}={v}")).collect();
        return Err(fail(
            "rehearse.verify",
            format!("not installed after the transaction: {}", list.join(", ")),
        ));
    }
    if !checks_ok {
        let names: Vec<&str> = run
            .rep
            .rehearsal
            .checks
            .iter()
            .filter(|s| !s.pass)
            .map(|s| s.check.as_str())
            .collect();
        return Err(fail(
            "rehearse.checks",
            format!("checks failed in the overlay: {}", names.join(", ")),
        ));
    }
    Ok(())
}

/// The last line a script printed itself (not dpkg's own report lines).
fn said(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("dpkg:")
                && !l.starts_with("Setting up ")
                && !l.contains("subprocess returned error exit status")
        })
        .unwrap_or("")
}

/// Where the rehearsal's `policy-rc.d` records the calls it refused
/// (relative to the merged tree).
const SERVICES_LOG: &str = "run/patchbay-rehearsal-services";

/// The services a rehearsal's package scripts asked to start, restart or
/// reload: one `policy-rc.d [--quiet] [--list] ID ACTIONS [RUNLEVEL]` call
/// per line (invoke-rc.d, deb-systemd-invoke; an action may be in
/// parentheses); `stop`-only calls are not a restart. Sorted, each once; `.service` suffixes dropped.
pub fn requested_services(log: &str) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in log.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some((id, rest)) = words.split_first() else {
            continue;
        };
        let actions = rest.first().copied().unwrap_or("");
        // invoke-rc.d puts an action in parentheses when the service has no
        // start link in the current runlevel — which a chroot does not know:
        // counted too (the host may well run it).
        let restarts = actions
            .split([' ', ','])
            .map(|a| a.trim_matches(['(', ')']))
            .any(|a| {
                matches!(
                    a,
                    "start"
                        | "restart"
                        | "try-restart"
                        | "reload"
                        | "force-reload"
                        | "reload-or-restart"
                )
            });
        if restarts && !id.is_empty() && id.len() <= 128 {
            out.insert(id.trim_end_matches(".service").to_string());
        }
    }
    out.into_iter().collect()
}

fn write_policy(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    // Replace whatever is there (a symlink would be followed otherwise).
    let _ = std::fs::remove_file(path);
    std::fs::write(
        path,
        "#!/bin/sh\n# patchbay rehearsal: no service is started, stopped or restarted;\n# what the package scripts asked for is recorded for the impact notice\necho \"$*\" >> /run/patchbay-rehearsal-services 2>/dev/null\nexit 101\n",
    )
    .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The check run inside the chroot of the overlay.
fn chrooted(c: &Check, merged: &Path) -> Check {
    match c {
        Check::Command {
            name,
            command,
            timeout_secs,
            metric,
            rehearse,
        } => {
            let mut argv = vec!["chroot".to_owned(), merged.to_string_lossy().into_owned()];
            argv.extend(command.iter().cloned());
            Check::Command {
                name: name.clone(),
                command: argv,
                timeout_secs: *timeout_secs,
                metric: *metric,
                rehearse: *rehearse,
            }
        }
        other => other.clone(),
    }
}

fn installed(
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    step: &str,
) -> Result<Vec<Installed>, StepError> {
    let t = Instant::now();
    let res = b.installed(r);
    run.step(step, res.is_ok(), t);
    res.map_err(|e| fail(step, format!("{e:#}")))
}

/// Held packages and declared conflicts (apt).
fn checks_before(
    run: &mut Run,
    apt: &Apt,
    r: &Runner,
    changes: &[Change],
    before: &[Installed],
) -> Result<(), StepError> {
    let t = Instant::now();
    let named: Vec<(String, String)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Install { name, version } => Some((name.clone(), version.clone())),
            Change::Remove { .. } => None,
        })
        .collect();
    let held = apt.held(r).unwrap_or_default();
    run.rep.rehearsal.held = held
        .into_iter()
        .filter(|h| {
            named
                .iter()
                .any(|(n, _)| n == h || h.starts_with(&format!("{n}:")))
        })
        .collect();
    if let Ok(rel) = apt.relations(r, &named) {
        run.rep.rehearsal.conflicts = conflicts(&rel, before);
    }
    run.step("conflicts", run.rep.rehearsal.conflicts.is_empty(), t);
    if !run.rep.rehearsal.held.is_empty() {
        return Err(fail(
            "held",
            format!(
                "held packages would change: {}",
                run.rep.rehearsal.held.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Simulates and checks the scope; records actions, refusals, conflicts.
fn simulate(
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
    before: &[Installed],
) -> Result<Vec<Action>, StepError> {
    let t = Instant::now();
    let (actions, _log) = match b.simulate(r, changes) {
        Ok(x) => x,
        Err(e) => {
            let msg = format!("{e:#}");
            for c in apt_unmet(&msg) {
                if !run.rep.rehearsal.conflicts.contains(&c) {
                    run.rep.rehearsal.conflicts.push(c);
                }
            }
            run.step("simulate", false, t);
            return Err(fail("simulate", msg));
        }
    };
    let actions: Vec<Action> = actions
        .into_iter()
        .map(|mut a| {
            if a.from.as_deref() == Some("?") {
                a.from = before
                    .iter()
                    .find(|p| p.name == a.name)
                    .map(|p| p.version.clone())
                    .or(a.from);
            }
            a
        })
        .collect();
    run.rep.actions = Some(actions.clone());
    run.step("simulate", true, t);
    let t = Instant::now();
    let violations = plan::check_scope(changes, &actions);
    run.rep.rehearsal.refused = violations
        .iter()
        .map(|v| {
            let why = run
                .rep
                .rehearsal
                .conflicts
                .iter()
                .find(|c| c.with == v.package)
                .map(|c| format!("; it {} {}", c.relation_phrase_rev(), c.package))
                .unwrap_or_default();
            format!(
                "{} ({} -> {}): {}{why}",
                v.package,
                v.from.as_deref().unwrap_or("absent"),
                v.to.as_deref().unwrap_or("absent"),
                v.reason
            )
        })
        .collect();
    run.step("scope", violations.is_empty(), t);
    if !violations.is_empty() {
        return Err(fail(
            "scope",
            format!(
                "refusing: the transaction would touch packages the job does not allow: {}",
                run.rep.rehearsal.refused.join("; ")
            ),
        ));
    }
    Ok(actions)
}

trait Phrase {
    fn relation_phrase_rev(&self) -> String;
}

impl Phrase for Conflict {
    fn relation_phrase_rev(&self) -> String {
        match self.relation.as_str() {
            "conflicts" => "conflicts with".into(),
            "breaks" => "is broken by".into(),
            other => other.to_owned(),
        }
    }
}

/// Refreshes metadata; a failure is noted, the cached metadata is used.
fn refresh(run: &mut Run, b: &dyn Backend, r: &Runner) {
    let t = Instant::now();
    let ok = b.refresh(r).is_ok_and(|l| l.success());
    run.step("refresh", ok, t);
}

fn simulation_steps(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
) -> Result<(), StepError> {
    if env.refresh {
        // Metadata only (the package manager's cache), as `updates` does.
        refresh(run, b, r);
    }
    let before = installed(run, b, r, "inventory.before")?;
    if b.name() == "apt" {
        let apt = Apt::new(b.root().to_owned());
        checks_before(run, &apt, r, changes, &before)?;
    }
    let actions = simulate(run, b, r, changes, &before)?;
    run.rep.rehearsal.changed = actions
        .iter()
        .map(|a| VersionChange {
            name: a.name.clone(),
            before: a.from.clone(),
            after: a.to.clone(),
        })
        .collect();
    let unreached = plan::unreached(changes, &actions, &before);
    if !unreached.is_empty() {
        let list: Vec<String> = unreached.iter().map(|(n, v)| format!("{n}={v}")).collect();
        return Err(fail(
            "scope",
            format!("the package manager would not install {}", list.join(", ")),
        ));
    }
    Ok(())
}

/// `(package, field, value)` of `Conflicts` and `Breaks` in `apt-cache show`
/// output.
pub fn deb822_relations(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut rels = Vec::new();
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "Package" => name = Some(v.trim().to_owned()),
                "Conflicts" => rels.push(("conflicts".to_owned(), v.trim().to_owned())),
                "Breaks" => rels.push(("breaks".to_owned(), v.trim().to_owned())),
                _ => {}
            }
        }
        if let Some(n) = name {
            out.extend(rels.into_iter().map(|(f, v)| (n.clone(), f, v)));
        }
    }
    out
}

/// The declared conflicts that hit an installed package (name, and the
/// version constraint when there is one).
pub fn conflicts(relations: &[(String, String, String)], installed: &[Installed]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for (pkg, field, value) in relations {
        for alt in value.split([',', '|']) {
            let alt = alt.trim();
            let (name, constraint) = match alt.split_once('(') {
                Some((n, c)) => (n.trim(), Some(c.trim_end_matches(')').trim())),
                None => (alt, None),
            };
            let name = name.split(':').next().unwrap_or(name);
            if name.is_empty() || name == pkg {
                continue;
            }
            let hit = installed.iter().any(|p| {
                p.name == name
                    && p.status == "installed"
                    && constraint.is_none_or(|c| satisfies(&p.version, c))
            });
            let c = Conflict {
                package: pkg.clone(),
                with: name.to_owned(),
                relation: field.clone(),
            };
            if hit && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out.sort();
    out
}

/// Whether `version` satisfies a Debian constraint such as `<< 2.0`.
fn satisfies(version: &str, constraint: &str) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let (op, v) = constraint
        .find(|c: char| c.is_ascii_alphanumeric())
        .map(|i| (constraint[..i].trim(), constraint[i..].trim()))
        .unwrap_or(("", constraint));
    let Ok(ord) = patchbay_version::compare(patchbay_version::Scheme::Deb, version, v) else {
        // An unreadable version: assume it applies (report, never hide).
        return true;
    };
    match op {
        "<<" | "<" => ord == Less,
        "<=" => ord != Greater,
        "=" => ord == Equal,
        ">=" => ord != Less,
        ">>" | ">" => ord == Greater,
        _ => true,
    }
}

/// Conflicts and unmet dependencies apt names when it cannot resolve
/// (` pkg : Conflicts: other but 1.0 is to be installed`).
pub fn apt_unmet(message: &str) -> Vec<Conflict> {
    let mut out: Vec<Conflict> = Vec::new();
    let mut last: Option<String> = None;
    for line in message.lines() {
        let l = line.trim();
        let (pkg, rest) = match l.split_once(" : ") {
            Some((p, r)) if !p.contains(' ') => {
                last = Some(p.to_owned());
                (p.to_owned(), r.trim())
            }
            _ => match &last {
                Some(p) if line.starts_with(' ') => (p.clone(), l),
                _ => continue,
            },
        };
        let (relation, what) = if let Some(w) = rest.strip_prefix("Conflicts:") {
            ("conflicts", w)
        } else if let Some(w) = rest.strip_prefix("Breaks:") {
            ("breaks", w)
        } else if let Some(w) = rest
            .strip_prefix("Depends:")
            .or_else(|| rest.strip_prefix("PreDepends:"))
        {
            ("unmet", w)
        } else {
            continue;
        };
        let Some(other) = what.split_whitespace().next() else {
            continue;
        };
        let c = Conflict {
            package: pkg.split(':').next().unwrap_or(&pkg).to_owned(),
            with: other.split(':').next().unwrap_or(other).to_owned(),
            relation: relation.to_owned(),
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Failing package scripts in apt-get/dpkg output (stderr merged into
/// stdout), each with the output printed since its package's last
/// `Setting up`/`Unpacking`/`Preparing`/`Removing` line.
pub fn script_failures(text: &str) -> Vec<ScriptFailure> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut since = 0;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if [
            "Setting up ",
            "Unpacking ",
            "Preparing to unpack ",
            "Removing ",
            "Selecting previously",
        ]
        .iter()
        .any(|p| l.starts_with(p))
        {
            since = i;
        }
        if let Some(rest) = l.strip_prefix("dpkg: error processing ") {
            let package = if let Some(p) = rest.strip_prefix("package ") {
                p.split([' ', ':']).next().unwrap_or("").to_owned()
            } else if let Some(a) = rest.strip_prefix("archive ") {
                let path = a.split(" (").next().unwrap_or(a);
                Path::new(path)
                    .file_name()
                    .map(|f| {
                        f.to_string_lossy()
                            .split('_')
                            .next()
                            .unwrap_or("")
                            .to_owned()
                    })
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let detail = lines.get(i + 1).copied().unwrap_or("");
            let script = if detail.contains("post-installation") {
                "postinst"
            } else if detail.contains("pre-installation") {
                "preinst"
            } else if detail.contains("pre-removal") {
                "prerm"
            } else if detail.contains("post-removal") {
                "postrm"
            } else {
                "dpkg"
            };
            let exit = detail
                .rsplit_once("exit status ")
                .and_then(|(_, n)| n.trim().parse().ok());
            let output = tail_bytes(
                &lines[since..=(i + 1).min(lines.len() - 1)].join("\n"),
                MAX_OUTPUT,
            );
            out.push(ScriptFailure {
                package,
                script: script.to_owned(),
                exit,
                output,
            });
            since = i + 2;
            i += 2;
            continue;
        }
        i += 1;
    }
    out
}

/// The last `max` bytes of `s` (on a character boundary).
fn tail_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s[cut..].to_owned()
}

/// Path → package for the file lists of `packages` in the merged tree.
fn file_owners(merged: &Path, packages: &[String]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let info = merged.join("var/lib/dpkg/info");
    for p in packages {
        let base = p.split(':').next().unwrap_or(p);
        let text = std::fs::read_to_string(info.join(format!("{base}.list")))
            .or_else(|_| {
                std::fs::read_dir(&info)
                    .ok()
                    .and_then(|rd| {
                        rd.flatten().find(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.starts_with(&format!("{base}:")) && n.ends_with(".list")
                        })
                    })
                    .map(|e| std::fs::read_to_string(e.path()))
                    .unwrap_or_else(|| Err(std::io::ErrorKind::NotFound.into()))
            })
            .unwrap_or_default();
        for line in text.lines() {
            map.entry(line.to_owned())
                .or_insert_with(|| base.to_owned());
        }
    }
    map
}

/// Mode, uid and gid of one path.
type Meta = (u32, u32, u32);

/// Mode and owner of every path in the file lists of `packages` installed in
/// `root` now (before an apply), by path.
pub fn snapshot(root: &Path, packages: &[String]) -> BTreeMap<String, Meta> {
    file_owners(root, packages)
        .into_keys()
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(root.join(p.trim_start_matches('/'))).ok()?;
            (!m.file_type().is_symlink()).then(|| (p, (m.mode() & 0o7777, m.uid(), m.gid())))
        })
        .collect()
}

/// After an apply: every path of the touched packages' file lists compared
/// with [`snapshot`]: new setuid/setgid files (also new paths), changed modes
/// and owners of paths that were there. At most [`MAX_FINDINGS`]; returns
/// how many more there were.
pub fn compare_snapshot(
    root: &Path,
    before: &BTreeMap<String, Meta>,
    packages: &[String],
) -> (Vec<PrivilegeFinding>, usize) {
    let show = |(mode, uid, gid): Meta| format!("{mode:04o} {uid}:{gid}");
    let mut out = Vec::new();
    let mut more = 0;
    for (path, package) in file_owners(root, packages) {
        let Ok(m) = std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))) else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        let now: Meta = (m.mode() & 0o7777, m.uid(), m.gid());
        let old = before.get(&path).copied();
        let had = |bit: u32| old.is_some_and(|o| o.0 & bit != 0);
        let finding = if now.0 & 0o4000 != 0 && !had(0o4000) {
            "new_setuid"
        } else if now.0 & 0o2000 != 0 && !had(0o2000) && !m.is_dir() {
            "new_setgid"
        } else if old.is_some_and(|o| o.0 != now.0) {
            "mode_changed"
        } else if old.is_some_and(|o| (o.1, o.2) != (now.1, now.2)) {
            "owner_changed"
        } else {
            continue;
        };
        if out.len() >= MAX_FINDINGS {
            more += 1;
            continue;
        }
        out.push(PrivilegeFinding {
            path,
            package: Some(package),
            finding: finding.to_owned(),
            before: old.map(show),
            after: show(now),
        });
    }
    out.sort();
    (out, more)
}

fn mode_owner(m: &std::fs::Metadata) -> String {
    format!("{:04o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
}

/// Compares every entry of the overlay's `upper` layer with the same path in
/// `root`: new setuid/setgid files, changed modes and owners. Returns the
/// findings (at most [`MAX_FINDINGS`]) and how many more there were.
pub fn privilege_scan(
    upper: &Path,
    root: &Path,
    owners: &BTreeMap<String, String>,
) -> (Vec<PrivilegeFinding>, usize) {
    let mut out = Vec::new();
    let mut more = 0;
    let mut stack = vec![upper.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            // A whiteout (a deleted path): nothing to compare.
            if ft.is_char_device() && m.rdev() == 0 {
                continue;
            }
            if ft.is_dir() {
                stack.push(p.clone());
            }
            if ft.is_symlink() {
                continue;
            }
            let Ok(rel) = p.strip_prefix(upper) else {
                continue;
            };
            let shown = format!("/{}", rel.display());
            let lower = std::fs::symlink_metadata(root.join(rel)).ok();
            let mode = m.mode() & 0o7777;
            let mut found = |finding: &str, before: Option<String>| {
                if out.len() >= MAX_FINDINGS {
                    more += 1;
                    return;
                }
                out.push(PrivilegeFinding {
                    path: shown.clone(),
                    package: owners.get(&shown).cloned(),
                    finding: finding.to_owned(),
                    before,
                    after: mode_owner(&m),
                });
            };
            let old_mode = lower.as_ref().map(|l| l.mode() & 0o7777);
            let had = |bit: u32| old_mode.is_some_and(|o| o & bit != 0);
            if mode & 0o4000 != 0 && !had(0o4000) {
                found("new_setuid", lower.as_ref().map(mode_owner));
            } else if mode & 0o2000 != 0 && !had(0o2000) && !ft.is_dir() {
                found("new_setgid", lower.as_ref().map(mode_owner));
            } else if let Some(l) = &lower {
                if old_mode != Some(mode) {
                    found("mode_changed", Some(mode_owner(l)));
                } else if (l.uid(), l.gid()) != (m.uid(), m.gid()) {
                    found("owner_changed", Some(mode_owner(l)));
                }
            }
        }
    }
    out.sort();
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_scripts_asked_to_restart_are_read_from_the_policy_log() {
        let log = "nginx restart\n--quiet php8.2-fpm.service try-restart\nold stop\n\nnginx start\n--quiet pb-svc (restart)\n";
        assert_eq!(requested_services(log), ["nginx", "pb-svc", "php8.2-fpm"]);
        assert!(requested_services("").is_empty());
    }

    #[test]
    fn a_failing_postinst_is_named_with_its_output() {
        let text = "Unpacking pb-extra (1.0) ...\nSetting up pb-extra (1.0) ...\nSetting up pb-demo (1.2.1) ...\npb-demo: cannot migrate /var/lib/pb-demo\ndpkg: error processing package pb-demo (--configure):\n installed pb-demo package post-installation script subprocess returned error exit status 7\nErrors were encountered while processing:\n pb-demo\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n";
        let f = script_failures(text);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].package, "pb-demo");
        assert_eq!(f[0].script, "postinst");
        assert_eq!(f[0].exit, Some(7));
        assert!(
            f[0].output.starts_with("Setting up pb-demo (1.2.1)"),
            "{}",
            f[0].output
        );
        assert!(f[0].output.contains("cannot migrate"));
        assert!(!f[0].output.contains("pb-extra"));
        let pre = "Preparing to unpack .../x_1_all.deb ...\nboom\ndpkg: error processing archive /var/cache/apt/archives/x_1_all.deb (--unpack):\n new x package pre-installation script subprocess returned error exit status 2\n";
        let f = script_failures(pre);
        assert_eq!(
            (f[0].package.as_str(), f[0].script.as_str(), f[0].exit),
            ("x", "preinst", Some(2))
        );
        assert!(script_failures("Setting up a (1) ...\n").is_empty());
        assert_eq!(said(&f[0].output), "boom");
    }

    #[test]
    fn output_is_bounded() {
        let long = format!(
            "Setting up p (1) ...\n{}\ndpkg: error processing package p (--configure):\n installed p package post-installation script subprocess returned error exit status 1\n",
            "x".repeat(20_000)
        );
        let f = script_failures(&long);
        assert!(f[0].output.len() <= MAX_OUTPUT);
        assert!(f[0].output.ends_with("exit status 1"));
    }

    fn inst(name: &str, version: &str) -> Installed {
        Installed {
            name: name.into(),
            arch: "all".into(),
            version: version.into(),
            status: "installed".into(),
            installed_kib: None,
        }
    }

    #[test]
    fn declared_conflicts_name_both_packages_and_respect_versions() {
        let show = "Package: pb-conflict\nVersion: 1.0\nConflicts: pb-extra, pb-none\nBreaks: pb-lib (<< 2.0), pb-tool (>= 9)\nDescription: x\n second line: Conflicts: nope\n\nPackage: other\nVersion: 1\n";
        let rel = deb822_relations(show);
        assert_eq!(rel.len(), 2);
        let got = conflicts(
            &rel,
            &[
                inst("pb-extra", "1.0"),
                inst("pb-lib", "1.0"),
                inst("pb-tool", "1.0"),
            ],
        );
        let pairs: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| (c.package.as_str(), c.with.as_str(), c.relation.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("pb-conflict", "pb-extra", "conflicts"),
                ("pb-conflict", "pb-lib", "breaks")
            ]
        );
        // pb-lib 2.0 is not broken by `<< 2.0`.
        assert_eq!(conflicts(&rel, &[inst("pb-lib", "2.0")]), vec![]);
    }

    #[test]
    fn apt_resolution_errors_name_both_packages() {
        let msg = "apt-get-simulate: `apt-get …` failed (exit status: 100): The following packages have unmet dependencies:\n pb-conflict : Conflicts: pb-extra but 1.0 is to be installed\n               Breaks: pb-lib (< 2.0)\n pb-tool : Depends: pb-lib (>= 2.0) but it is not going to be installed\nE: Unable to correct problems, you have held broken packages.";
        let got = apt_unmet(msg);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            (got[0].package.as_str(), got[0].with.as_str()),
            ("pb-conflict", "pb-extra")
        );
        assert_eq!(
            (got[1].with.as_str(), got[1].relation.as_str()),
            ("pb-lib", "breaks")
        );
        assert_eq!(
            (got[2].package.as_str(), got[2].relation.as_str()),
            ("pb-tool", "unmet")
        );
    }

    #[test]
    fn separate_file_systems_below_the_root_are_found() {
        let mi = "22 1 252:1 / / rw - ext4 /dev/vda rw\n23 22 0:5 / /proc rw - proc proc rw\n24 22 252:2 / /var rw - ext4 /dev/vdb rw\n25 22 252:3 / /srv/root/usr rw - ext4 /dev/vdc rw\n26 22 252:4 / /boot rw - ext4 /dev/vdd rw\n";
        assert_eq!(
            separate_mounts(mi, Path::new("/")),
            vec!["/var".to_string()]
        );
        assert_eq!(
            separate_mounts(mi, Path::new("/srv/root")),
            vec!["/srv/root/usr".to_string()]
        );
        assert!(separate_mounts(mi, Path::new("/srv/other")).is_empty());
    }

    #[test]
    fn the_privilege_scan_reports_new_setuid_and_changed_modes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (root, upper) = (t.path().join("root"), t.path().join("upper"));
        for d in [&root, &upper] {
            std::fs::create_dir_all(d.join("usr/bin")).unwrap();
            std::fs::create_dir_all(d.join("srv")).unwrap();
        }
        let set = |p: PathBuf, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        set(root.join("srv"), 0o755);
        set(upper.join("srv"), 0o777);
        set(root.join("usr/bin"), 0o755);
        set(upper.join("usr/bin"), 0o755);
        std::fs::write(upper.join("usr/bin/pb-suid"), "x").unwrap();
        set(upper.join("usr/bin/pb-suid"), 0o4755);
        std::fs::write(upper.join("usr/bin/plain"), "x").unwrap();
        set(upper.join("usr/bin/plain"), 0o755);
        std::fs::write(root.join("usr/bin/same"), "a").unwrap();
        std::fs::write(upper.join("usr/bin/same"), "b").unwrap();
        set(root.join("usr/bin/same"), 0o755);
        set(upper.join("usr/bin/same"), 0o755);
        let owners: BTreeMap<String, String> =
            [("/usr/bin/pb-suid".to_string(), "pb-suid".to_string())].into();
        let (f, more) = privilege_scan(&upper, &root, &owners);
        assert_eq!(more, 0);
        let got: Vec<(&str, &str, Option<&str>)> = f
            .iter()
            .map(|x| (x.path.as_str(), x.finding.as_str(), x.package.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/srv", "mode_changed", None),
                ("/usr/bin/pb-suid", "new_setuid", Some("pb-suid")),
            ]
        );
        assert!(f[0].before.as_deref().unwrap().starts_with("0755"));
        assert!(f[0].after.starts_with("0777"));
    }
}
