//! Apply, rollback and recovery, journalled step by step.
//!
//! Every job runs under an exclusive lock on `STATE/agent.lock` (two agents never
//! run jobs on one state directory at once) and in this order:
//!
//! 1. **Replay.** A job key the journal already holds a final result for returns
//!    that result (`"replayed": true`) without running anything.
//! 2. **Recovery.** Every job that started and never finished (the agent was
//!    killed) is reported as `interrupted`: the package database of its root is
//!    checked (`dpkg --audit`, dpkg's update journal; apk: `apk fix --simulate`
//!    and scripts left in `lib/apk/exec`) and, when the configuration allows
//!    (`preflight.repair`, default on), repaired (`dpkg --configure -a`; apk:
//!    `apk fix --reinstall` of the interrupted packages);
//!    the finding is journalled as that job's final result.
//! 3. **Steps.** Each step's result is appended to the journal (fsynced) before
//!    the next begins, and the final result before it is printed. Apply: lock →
//!    refresh → consistency → simulate → scope → **plan** (the rollback plan is
//!    durable before anything changes) → space → snapshot → health baseline →
//!    apply → verify (versions, scope, health) → reboot/services.
//!
//! Outcomes: `succeeded`; `refused` (a pre-flight step failed, nothing was
//! changed); `failed` (the transaction or a verification failed after changes
//! began); `interrupted` (recorded by recovery).
//!
//! Every command returns a typed [`JobOutput`] ([`super::report`]); a job's final
//! journal record is that value, so a replay decodes it back (a final record that
//! is not a job result is an error, and the job is still not run again).

use super::config::Config;
use super::health::{self, CheckResult};
use super::journal::{Event, JobKind, Journal, ReadReport, Record};
use super::plan::{self, PlanEntry};
use super::report::{
    CheckReport, DbCheck, DbRepair, InterruptedJob, JobOutput, JobReport, Outcome, RecoverReport,
    Repaired, StepError, StepSummary, UpdatesReport,
};
use super::{Backend, BackendKind, Change, Installed, Runner, SpaceNeed, Wanted};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where and how jobs run.
#[derive(Debug, Clone)]
pub struct JobEnv {
    /// State directory (journal, logs, lock).
    pub state_dir: PathBuf,
    /// Root file system the job acts on.
    pub root: PathBuf,
    /// Backend (detected from the root when `None`).
    pub backend: Option<BackendKind>,
    /// Local configuration.
    pub config: Config,
    /// Refresh repository metadata before simulating.
    pub refresh: bool,
}

/// How a rollback restores the earlier state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RollbackMethod {
    /// Install the recorded versions, remove packages that were absent.
    Packages,
    /// Run the configured `hooks.snapshot_restore`.
    Snapshot,
}

/// A failed step (the report's `error`).
type Fail = StepError;

fn fail(step: &str, message: impl Into<String>) -> Fail {
    StepError::new(step, message)
}

/// The exclusive state-directory lock, held for a job's lifetime.
#[derive(Debug)]
pub struct StateLock(#[allow(dead_code)] File);

/// Takes the state-directory lock or fails naming it.
pub fn lock_state(dir: &Path) -> anyhow::Result<StateLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("agent.lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(StateLock(f)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another patchbay-agent is running a job on this state directory ({} is locked)",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// A job in progress: journals steps, collects the result.
struct Run<'a> {
    journal: &'a mut Journal,
    key: String,
    kind: JobKind,
    res: JobReport,
    changing: bool,
}

impl Run<'_> {
    /// Journals one step; a journal write failure fails the job.
    fn step(&mut self, name: &str, ok: bool, started: Instant, data: Value) -> Result<(), Fail> {
        let ms = started.elapsed().as_millis() as u64;
        self.journal
            .append(Record::new(
                &self.key,
                self.kind,
                Event::Step,
                Some(name),
                Some(ok),
                data,
            ))
            .map_err(|e| fail("journal", format!("{e:#}")))?;
        self.res.steps.push(StepSummary {
            step: name.to_owned(),
            ok,
            duration_ms: ms,
        });
        Ok(())
    }

    /// Journals the final result and returns it.
    fn finish(mut self, outcome: Result<(), Fail>) -> anyhow::Result<JobOutput> {
        self.res.finish(outcome.err(), self.changing);
        let ok = self.res.ok;
        let out = JobOutput::Job(Box::new(self.res));
        let data = serde_json::to_value(&out).context("encoding the job's result")?;
        self.journal.append(Record::new(
            &self.key,
            self.kind,
            Event::Finished,
            None,
            Some(ok),
            data,
        ))?;
        Ok(out)
    }
}

/// Opens the journal under the state lock and handles replay and recovery.
/// Returns `Err(output)` when the job must not run (already recorded).
fn prologue(
    env: &JobEnv,
    journal: &mut Journal,
    report: &ReadReport,
    kind: JobKind,
    key: &str,
) -> anyhow::Result<Result<Vec<InterruptedJob>, JobOutput>> {
    if let Some(rec) = journal.finished(kind, key) {
        return Ok(Err(replay(rec, report)?));
    }
    let recovered = recover_unfinished(env, journal)?;
    if let Some(rec) = journal.finished(kind, key) {
        let out = match replay(rec, report)? {
            JobOutput::Job(mut r) => {
                r.replayed = false;
                r.recovered = recovered;
                JobOutput::Job(r)
            }
            JobOutput::Interrupted(mut r) => {
                r.replayed = Some(false);
                r.recovered = Some(recovered);
                JobOutput::Interrupted(r)
            }
            other => other,
        };
        return Ok(Err(out));
    }
    Ok(Ok(recovered))
}

/// The recorded result of a finished job, marked as replayed. A final record
/// that is not a job result is an error: the job is still not run again.
fn replay(rec: &Record, report: &ReadReport) -> anyhow::Result<JobOutput> {
    let unreadable = |why: String| {
        anyhow!(
            "job {:?} ({}) has a final record in the journal that is not a job result ({why}); it is not run again",
            rec.job_key,
            rec.kind.as_str()
        )
    };
    match serde_json::from_value::<JobOutput>(rec.data.clone()) {
        Ok(JobOutput::Job(mut r)) => {
            r.replayed = true;
            r.journal = report.clone();
            Ok(JobOutput::Job(r))
        }
        Ok(JobOutput::Interrupted(mut r)) => {
            r.replayed = Some(true);
            r.journal = Some(report.clone());
            Ok(JobOutput::Interrupted(r))
        }
        Ok(_) => Err(unreadable("another command's output".into())),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// Finalizes every interrupted job as `interrupted`, checking and (if allowed)
/// repairing the package database of its root.
fn recover_unfinished(env: &JobEnv, journal: &mut Journal) -> anyhow::Result<Vec<InterruptedJob>> {
    let mut out = Vec::new();
    for (kind, key) in journal.unfinished() {
        let started = journal
            .job(kind, &key)
            .find(|r| r.event == Event::Started)
            .map(|r| r.data.clone())
            .unwrap_or(Value::Null);
        let last_step = journal
            .job(kind, &key)
            .filter(|r| r.event == Event::Step)
            .last()
            .and_then(|r| r.step.clone());
        let root = started["root"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| env.root.clone());
        let backend_kind = started["backend"]
            .as_str()
            .and_then(|b| <BackendKind as clap::ValueEnum>::from_str(b, true).ok());
        let checked = check_and_repair(
            &root,
            backend_kind,
            &env.config,
            &env.state_dir,
            &format!("recover-{}-{key}", kind.as_str()),
        );
        let job = InterruptedJob {
            job_key: key.clone(),
            kind,
            outcome: Outcome::Interrupted,
            ok: false,
            error: StepError::new(
                last_step.as_deref().unwrap_or("started"),
                "the agent stopped before this job finished (killed or crashed)",
            ),
            root,
            last_step,
            recovery_error: checked.as_ref().err().map(|e| format!("{e:#}")),
            check: checked.ok(),
            replayed: None,
            journal: None,
            recovered: None,
        };
        tracing::warn!(job_key = %key, kind = kind.as_str(), "recorded an interrupted job");
        let data = serde_json::to_value(&job).context("encoding an interrupted job")?;
        journal.append(Record::new(
            &key,
            kind,
            Event::Finished,
            None,
            Some(false),
            data,
        ))?;
        out.push(job);
    }
    Ok(out)
}

/// Checks the package database of `root` and repairs it when allowed.
fn check_and_repair(
    root: &Path,
    kind: Option<BackendKind>,
    config: &Config,
    state_dir: &Path,
    log_name: &str,
) -> anyhow::Result<DbCheck> {
    let backend = super::open(kind, root)?;
    let runner = runner(config, state_dir, log_name);
    let before = backend.consistency(&runner)?;
    let mut check = DbCheck {
        consistency_before: before,
        lock_held: None,
        repaired: None,
    };
    if check.consistency_before.ok {
        return Ok(check);
    }
    if let Some(h) = backend.lock_held()? {
        // The package manager is still running (an orphan of the killed agent,
        // or someone else): repairing now would race it.
        check.lock_held = Some(h);
        return Ok(check);
    }
    if config.preflight.repair {
        let repair = backend.repair(&runner)?;
        let consistency_after = backend.consistency(&runner)?;
        check.repaired = Some(DbRepair {
            repair,
            consistency_after,
        });
    }
    Ok(check)
}

pub(super) fn runner(config: &Config, state_dir: &Path, name: &str) -> Runner {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp = jiff::Timestamp::now().as_millisecond();
    Runner::new(
        Some(state_dir.join("logs").join(format!("{stamp}-{safe}"))),
        Duration::from_secs(config.timeouts.query_secs),
        Duration::from_secs(config.timeouts.apply_secs),
    )
}

/// Runs the recovery alone (`patchbay-agent recover`).
pub fn recover(env: &JobEnv) -> anyhow::Result<JobOutput> {
    let _lock = lock_state(&env.state_dir)?;
    let (mut journal, report) = Journal::open(&env.state_dir)?;
    let recovered = recover_unfinished(env, &mut journal)?;
    let check = check_and_repair(
        &env.root,
        env.backend,
        &env.config,
        &env.state_dir,
        "recover",
    )?;
    Ok(JobOutput::Recover(RecoverReport {
        ok: check.ok(),
        recovered,
        journal: report,
        check,
    }))
}

/// Applies exact versions (`patchbay-agent apply`).
pub fn apply(env: &JobEnv, key: &str, wanted: &[Wanted]) -> anyhow::Result<JobOutput> {
    validate_key(key)?;
    if wanted.is_empty() {
        bail!("nothing to apply: name at least one PKG=VERSION");
    }
    let _lock = lock_state(&env.state_dir)?;
    let (mut journal, report) = Journal::open(&env.state_dir)?;
    let recovered = match prologue(env, &mut journal, &report, JobKind::Apply, key)? {
        Ok(r) => r,
        Err(out) => return Ok(out),
    };
    let backend = super::open(env.backend, &env.root)?;
    let changes: Vec<Change> = wanted
        .iter()
        .map(|w| Change::Install {
            name: w.name.clone(),
            version: w.version.clone(),
        })
        .collect();
    journal.append(Record::new(
        key,
        JobKind::Apply,
        Event::Started,
        None,
        None,
        json!({"root": backend.root(), "backend": backend.name(), "packages": wanted}),
    ))?;
    let mut res = JobReport::start(
        key,
        JobKind::Apply,
        backend.root().to_owned(),
        backend.name(),
    );
    res.requested = Some(wanted.to_vec());
    res.recovered = recovered;
    res.journal = report;
    let mut run = Run {
        journal: &mut journal,
        key: key.to_owned(),
        kind: JobKind::Apply,
        res,
        changing: false,
    };
    let r = runner(&env.config, &env.state_dir, &format!("apply-{key}"));
    let outcome = apply_steps(env, &mut run, backend.as_ref(), &r, &changes);
    run.finish(outcome)
}

pub(super) fn validate_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control()) {
        bail!("invalid job key {key:?}: 1-200 printable characters");
    }
    Ok(())
}

/// Pre-flight steps shared by apply and rollback: lock, refresh, consistency.
fn preflight_common(env: &JobEnv, run: &mut Run, b: &dyn Backend, r: &Runner) -> Result<(), Fail> {
    let t = Instant::now();
    match b.lock_held() {
        Ok(None) => run.step("preflight.lock", true, t, Value::Null)?,
        Ok(Some(h)) => {
            let who = h.pid.map(|p| format!(" by pid {p}")).unwrap_or_default();
            let msg = format!("package-manager lock {} is held{who}", h.path.display());
            run.step("preflight.lock", false, t, json!({"held": h}))?;
            return Err(fail("preflight.lock", msg));
        }
        Err(e) => {
            run.step(
                "preflight.lock",
                false,
                t,
                json!({"error": format!("{e:#}")}),
            )?;
            return Err(fail("preflight.lock", format!("{e:#}")));
        }
    }
    if env.refresh {
        let t = Instant::now();
        match b.refresh(r) {
            Ok(log) => {
                let ok = log.success();
                run.step("refresh", ok, t, json!(log))?;
                if !ok {
                    tracing::warn!(tail = %log.tail, "metadata refresh failed; continuing with cached metadata");
                }
            }
            Err(e) => {
                run.step("refresh", false, t, json!({"error": format!("{e:#}")}))?;
                return Err(fail("refresh", format!("{e:#}")));
            }
        }
    }
    let t = Instant::now();
    let before = b
        .consistency(r)
        .map_err(|e| fail("preflight.consistency", format!("{e:#}")))?;
    if before.ok {
        run.step("preflight.consistency", true, t, json!(before))?;
        return Ok(());
    }
    if !env.config.preflight.repair {
        run.step("preflight.consistency", false, t, json!(before))?;
        return Err(fail(
            "preflight.consistency",
            format!(
                "the package database is inconsistent ({}) and repair is disabled",
                describe_issues(&before)
            ),
        ));
    }
    let repair = b
        .repair(r)
        .map_err(|e| fail("preflight.consistency", format!("{e:#}")))?;
    let after = b
        .consistency(r)
        .map_err(|e| fail("preflight.consistency", format!("{e:#}")))?;
    run.step(
        "preflight.consistency",
        after.ok,
        t,
        json!({"before": before, "repair": repair, "after": after}),
    )?;
    let still = (!after.ok).then(|| describe_issues(&after));
    run.res.repaired = Some(Repaired {
        before,
        repair,
        after,
    });
    if let Some(issues) = still {
        return Err(fail(
            "preflight.consistency",
            format!("the package database is inconsistent ({issues}) and repair did not fix it"),
        ));
    }
    Ok(())
}

fn describe_issues(c: &super::Consistency) -> String {
    let mut parts: Vec<String> = c
        .issues
        .iter()
        .map(|i| format!("{}: {}", i.package, i.problem))
        .collect();
    if c.interrupted {
        parts.push("dpkg was interrupted (unfinished update journal)".into());
    }
    parts.join("; ")
}

fn installed(
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    step: &str,
) -> Result<Vec<Installed>, Fail> {
    let t = Instant::now();
    match b.installed(r) {
        Ok(p) => {
            run.step(step, true, t, json!({"packages": p.len()}))?;
            Ok(p)
        }
        Err(e) => {
            run.step(step, false, t, json!({"error": format!("{e:#}")}))?;
            Err(fail(step, format!("{e:#}")))
        }
    }
}

/// Simulates and checks the scope; returns the announced actions.
fn simulate_and_scope(
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
    before: &[Installed],
) -> Result<Vec<super::Action>, Fail> {
    let t = Instant::now();
    let (actions, log) = match b.simulate(r, changes) {
        Ok(x) => x,
        Err(e) => {
            run.step("simulate", false, t, json!({"error": format!("{e:#}")}))?;
            return Err(fail("simulate", format!("{e:#}")));
        }
    };
    // Fill versions the tool did not print ("?") from the package database.
    let actions: Vec<_> = actions
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
    run.step("simulate", true, t, json!({"actions": actions, "log": log}))?;
    run.res.actions = Some(actions.clone());
    let t = Instant::now();
    let violations = plan::check_scope(changes, &actions);
    let unreached = plan::unreached(changes, &actions, before);
    let ok = violations.is_empty() && unreached.is_empty();
    run.step(
        "scope",
        ok,
        t,
        json!({"violations": violations, "unreached": unreached}),
    )?;
    if !violations.is_empty() {
        let list: Vec<String> = violations
            .iter()
            .map(|v| {
                format!(
                    "{} ({} -> {}): {}",
                    v.package,
                    v.from.as_deref().unwrap_or("absent"),
                    v.to.as_deref().unwrap_or("absent"),
                    v.reason
                )
            })
            .collect();
        return Err(fail(
            "scope",
            format!(
                "refusing: the transaction would touch packages the job does not allow: {}",
                list.join("; ")
            ),
        ));
    }
    if !unreached.is_empty() {
        let list: Vec<String> = unreached.iter().map(|(n, v)| format!("{n}={v}")).collect();
        return Err(fail(
            "scope",
            format!("the package manager would not install {}", list.join(", ")),
        ));
    }
    Ok(actions)
}

fn space_check(env: &JobEnv, run: &mut Run, needs: &[SpaceNeed]) -> Result<(), Fail> {
    let t = Instant::now();
    let reserve = env.config.preflight.min_free_mb.saturating_mul(1024 * 1024);
    // Sum needs per file system.
    let mut per_fs: BTreeMap<u64, (PathBuf, u64, u64)> = BTreeMap::new();
    for n in needs {
        let mut p = n.path.clone();
        while !p.exists() {
            if !p.pop() {
                break;
            }
        }
        let st = nix::sys::statvfs::statvfs(&p)
            .map_err(|e| fail("preflight.space", format!("statvfs {}: {e}", p.display())))?;
        let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
        let e = per_fs
            .entry(st.filesystem_id() as u64)
            .or_insert((p.clone(), avail, 0));
        e.2 = e.2.saturating_add(n.bytes);
    }
    let report: Vec<Value> = per_fs
        .values()
        .map(|(p, avail, need)| json!({"path": p, "available_bytes": avail, "needed_bytes": need, "reserve_bytes": reserve}))
        .collect();
    let short: Vec<String> = per_fs
        .values()
        .filter(|(_, avail, need)| need.saturating_add(reserve) > *avail)
        .map(|(p, avail, need)| {
            format!(
                "{}: {} MiB free, {} MiB needed + {} MiB reserve",
                p.display(),
                avail / (1 << 20),
                need.div_ceil(1 << 20),
                reserve / (1 << 20)
            )
        })
        .collect();
    run.step(
        "preflight.space",
        short.is_empty(),
        t,
        json!({"filesystems": report, "needs": needs}),
    )?;
    if !short.is_empty() {
        return Err(fail(
            "preflight.space",
            format!("not enough free space: {}", short.join("; ")),
        ));
    }
    Ok(())
}

fn baseline(env: &JobEnv, run: &mut Run) -> Result<Vec<CheckResult>, Fail> {
    let t = Instant::now();
    let results = health::run_all(&env.config.checks);
    run.step("health.baseline", true, t, json!(results))?;
    run.res.health_baseline = Some(results.clone());
    Ok(results)
}

fn apply_steps(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
) -> Result<(), Fail> {
    preflight_common(env, run, b, r)?;
    let before = installed(run, b, r, "inventory.before")?;
    let actions = simulate_and_scope(run, b, r, changes, &before)?;

    let t = Instant::now();
    let rollback_plan = plan::rollback_plan(changes, &actions, &before);
    run.step("plan", true, t, json!(rollback_plan))?;
    run.res.plan = Some(rollback_plan);

    let t = Instant::now();
    let needs = b
        .space_needed(r, &actions, &before)
        .map_err(|e| fail("preflight.space", format!("{e:#}")));
    let needs = match needs {
        Ok(n) => n,
        Err(f) => {
            run.step("preflight.space", false, t, json!({"error": f.message}))?;
            return Err(f);
        }
    };
    space_check(env, run, &needs)?;

    if let Some(hook) = &env.config.hooks.snapshot {
        hook_step(env, run, b, hook, "preflight.snapshot", Hook::Snapshot)?;
    }
    let base = baseline(env, run)?;

    if actions.is_empty() {
        // Everything is already at the named versions.
        run.res.changed = Some(Vec::new());
        return verify_after(env, run, b, r, changes, &before, &base);
    }
    // The privilege check after a real apply (apt): modes and owners of the
    // touched packages' files before, compared after.
    let touched: Vec<String> = actions
        .iter()
        .filter(|a| a.to.is_some())
        .map(|a| a.name.clone())
        .collect();
    let snap = (b.name() == "apt").then(|| super::rehearse::snapshot(b.root(), &touched));
    transact(run, b, r, changes, "apply")?;
    if let Some(snap) = snap {
        let t = Instant::now();
        let (found, more) = super::rehearse::compare_snapshot(b.root(), &snap, &touched);
        let verify = super::apt::Apt::new(b.root().to_owned())
            .verify(r, &touched)
            .unwrap_or_else(|e| vec![format!("dpkg --verify could not run: {e:#}")]);
        run.step(
            "verify.privilege",
            true,
            t,
            json!({"privilege": found, "more": more, "verify": verify}),
        )?;
        run.res.privilege = Some(found);
        run.res.verify = Some(verify);
    }
    verify_after(env, run, b, r, changes, &before, &base)
}

/// Journals the start of the transaction, runs it, journals the result.
fn transact(
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
    step: &str,
) -> Result<(), Fail> {
    let t = Instant::now();
    run.journal
        .append(Record::new(
            &run.key,
            run.kind,
            Event::Step,
            Some(&format!("{step}.begin")),
            None,
            json!(changes),
        ))
        .map_err(|e| fail("journal", format!("{e:#}")))?;
    run.changing = true;
    let res = if step == "rollback" {
        b.downgrade(r, changes)
    } else {
        b.apply(r, changes)
    };
    match res {
        Ok(log) => {
            run.step(step, true, t, json!(log))?;
            run.res.log = Some(log);
            Ok(())
        }
        Err(e) => {
            run.step(step, false, t, json!({"error": format!("{e:#}")}))?;
            Err(fail(step, format!("{e:#}")))
        }
    }
}

/// After a change: versions, scope, health, reboot and services.
fn verify_after(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    changes: &[Change],
    before: &[Installed],
    base: &[CheckResult],
) -> Result<(), Fail> {
    let after = installed(run, b, r, "inventory.after")?;
    let changed = plan::diff(before, &after);
    run.res.changed = Some(changed.clone());

    let t = Instant::now();
    let mut wrong = Vec::new();
    for c in changes {
        let name = plan::base_name(c.name());
        let now = after.iter().find(|p| p.name == name);
        match (c, now) {
            (Change::Install { version, .. }, Some(p))
                if &p.version == version && p.status == "installed" => {}
            (Change::Remove { .. }, None) => {}
            (Change::Install { version, .. }, now) => wrong.push(format!(
                "{name}: expected {version}, found {}",
                now.map_or("absent".to_owned(), |p| format!(
                    "{} ({})",
                    p.version, p.status
                ))
            )),
            (Change::Remove { .. }, Some(p)) => {
                wrong.push(format!("{name}: expected absent, found {}", p.version))
            }
        }
    }
    run.step(
        "verify.versions",
        wrong.is_empty(),
        t,
        json!({"wrong": wrong}),
    )?;
    if !wrong.is_empty() {
        return Err(fail("verify.versions", wrong.join("; ")));
    }

    let t = Instant::now();
    let names: Vec<&str> = changes.iter().map(Change::name).collect();
    let unnamed = plan::unnamed_changes(before, &after, &names);
    run.step(
        "verify.scope",
        unnamed.is_empty(),
        t,
        json!({"unnamed_changes": unnamed}),
    )?;
    if !unnamed.is_empty() {
        let list: Vec<String> = unnamed
            .iter()
            .map(|d| {
                format!(
                    "{} {} -> {}",
                    d.name,
                    d.before.as_deref().unwrap_or("absent"),
                    d.after.as_deref().unwrap_or("absent")
                )
            })
            .collect();
        return Err(fail(
            "verify.scope",
            format!("packages the job did not name changed: {}", list.join(", ")),
        ));
    }

    let t = Instant::now();
    let reboot = b.reboot_required(r, &after, &changed);
    let services = b.services_needing_restart();
    run.step(
        "verify.reboot",
        true,
        t,
        json!({"reboot_required": reboot, "services_needing_restart": services}),
    )?;
    run.res.reboot_required = Some(reboot);
    run.res.services_needing_restart = Some(services);

    let t = Instant::now();
    let health_after = health::run_all(&env.config.checks);
    let regressions = plan::health_regressions(base, &health_after);
    run.step(
        "verify.health",
        regressions.is_empty(),
        t,
        json!({"results": health_after, "regressions": regressions}),
    )?;
    run.res.health_after = Some(health_after.clone());
    if !regressions.is_empty() {
        let details: Vec<String> = health_after
            .iter()
            .filter(|h| regressions.contains(&h.name))
            .map(|h| format!("{} ({})", h.name, h.detail))
            .collect();
        return Err(fail(
            "verify.health",
            format!(
                "health checks failed after the change: {}",
                details.join("; ")
            ),
        ));
    }
    Ok(())
}

/// Rolls back an applied job (`patchbay-agent rollback`).
pub fn rollback(env: &JobEnv, key: &str, method: RollbackMethod) -> anyhow::Result<JobOutput> {
    validate_key(key)?;
    let _lock = lock_state(&env.state_dir)?;
    let (mut journal, report) = Journal::open(&env.state_dir)?;
    let recovered = match prologue(env, &mut journal, &report, JobKind::Rollback, key)? {
        Ok(r) => r,
        Err(out) => return Ok(out),
    };
    let Some(apply_start) = journal
        .job(JobKind::Apply, key)
        .find(|r| r.event == Event::Started)
        .cloned()
    else {
        bail!("unknown job key {key:?}: the journal holds no apply job with this key");
    };
    let plan_rec = journal.step(JobKind::Apply, key, "plan").cloned();
    let apply_baseline: Vec<CheckResult> = journal
        .step(JobKind::Apply, key, "health.baseline")
        .and_then(|r| serde_json::from_value(r.data.clone()).ok())
        .unwrap_or_default();
    let backend = super::open(env.backend, &env.root)?;
    let recorded_root = apply_start.data["root"].as_str().map(PathBuf::from);
    if recorded_root
        .as_deref()
        .is_some_and(|p| p != backend.root())
    {
        bail!(
            "job {key:?} was applied to {}, not {}",
            recorded_root.unwrap_or_default().display(),
            backend.root().display()
        );
    }
    journal.append(Record::new(
        key,
        JobKind::Rollback,
        Event::Started,
        None,
        None,
        json!({"root": backend.root(), "backend": backend.name(), "method": format!("{method:?}").to_lowercase()}),
    ))?;
    let mut res = JobReport::start(
        key,
        JobKind::Rollback,
        backend.root().to_owned(),
        backend.name(),
    );
    res.method = Some(method);
    res.recovered = recovered;
    res.journal = report;
    let mut run = Run {
        journal: &mut journal,
        key: key.to_owned(),
        kind: JobKind::Rollback,
        res,
        changing: false,
    };
    let r = runner(&env.config, &env.state_dir, &format!("rollback-{key}"));
    let outcome = match (method, plan_rec) {
        (RollbackMethod::Snapshot, _) => {
            rollback_snapshot(env, &mut run, backend.as_ref(), &apply_baseline)
        }
        (RollbackMethod::Packages, None) => {
            run.res.noop = true;
            run.res.note =
                Some("the apply job stopped before it recorded a plan: it changed nothing".into());
            Ok(())
        }
        (RollbackMethod::Packages, Some(p)) => {
            match serde_json::from_value::<Vec<PlanEntry>>(p.data) {
                Ok(plan) => {
                    rollback_packages(env, &mut run, backend.as_ref(), &r, &plan, &apply_baseline)
                }
                Err(e) => Err(fail(
                    "plan",
                    format!("the recorded rollback plan is unreadable: {e}"),
                )),
            }
        }
    };
    run.finish(outcome)
}

fn rollback_packages(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    r: &Runner,
    rollback_plan: &[PlanEntry],
    apply_baseline: &[CheckResult],
) -> Result<(), Fail> {
    run.res.plan = Some(rollback_plan.to_vec());
    preflight_common(env, run, b, r)?;
    let before = installed(run, b, r, "inventory.before")?;
    let changes = plan::rollback_changes(rollback_plan, &before);
    run.res.changes = Some(changes.clone());
    let base = if apply_baseline.is_empty() {
        baseline(env, run)?
    } else {
        run.res.health_baseline = Some(apply_baseline.to_vec());
        apply_baseline.to_vec()
    };
    if changes.is_empty() {
        run.res.note = Some("every package is already in its recorded state".into());
        return verify_after(env, run, b, r, &[], &before, &base);
    }
    simulate_and_scope(run, b, r, &changes, &before)?;
    transact(run, b, r, &changes, "rollback")?;
    verify_after(env, run, b, r, &changes, &before, &base)
}

/// Which configured hook a step runs (and which report field records it).
#[derive(Debug, Clone, Copy)]
enum Hook {
    /// `hooks.snapshot` (pre-flight).
    Snapshot,
    /// `hooks.snapshot_restore` (rollback).
    SnapshotRestore,
}

/// Runs a configured hook as one journalled step; a failing hook fails the step.
fn hook_step(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    hook: &[String],
    step: &str,
    which: Hook,
) -> Result<(), Fail> {
    let t = Instant::now();
    let h = health::run_hook(
        hook,
        &run.key,
        b.root(),
        Duration::from_secs(env.config.hooks.timeout_secs),
    );
    run.step(step, h.ok, t, json!(h))?;
    let slot = match which {
        Hook::Snapshot => &mut run.res.snapshot,
        Hook::SnapshotRestore => &mut run.res.snapshot_restore,
    };
    let h = slot.insert(h);
    if h.ok {
        Ok(())
    } else {
        Err(fail(
            step,
            format!("hook `{}` failed: {}", h.command, h.detail),
        ))
    }
}

fn rollback_snapshot(
    env: &JobEnv,
    run: &mut Run,
    b: &dyn Backend,
    apply_baseline: &[CheckResult],
) -> Result<(), Fail> {
    let Some(hook) = &env.config.hooks.snapshot_restore else {
        return Err(fail(
            "snapshot_restore",
            "no hooks.snapshot_restore in the configuration",
        ));
    };
    run.journal
        .append(Record::new(
            &run.key,
            run.kind,
            Event::Step,
            Some("snapshot_restore.begin"),
            None,
            Value::Null,
        ))
        .map_err(|e| fail("journal", format!("{e:#}")))?;
    run.changing = true;
    hook_step(env, run, b, hook, "snapshot_restore", Hook::SnapshotRestore)?;
    let t = Instant::now();
    let after = health::run_all(&env.config.checks);
    let regressions = plan::health_regressions(apply_baseline, &after);
    run.step(
        "verify.health",
        regressions.is_empty(),
        t,
        json!({"results": after, "regressions": regressions}),
    )?;
    run.res.health_after = Some(after);
    if !regressions.is_empty() {
        return Err(fail(
            "verify.health",
            format!("health checks still failing: {}", regressions.join(", ")),
        ));
    }
    Ok(())
}

/// Lists available updates (`patchbay-agent updates`). Read-only apart from the
/// metadata refresh.
pub fn updates(env: &JobEnv) -> anyhow::Result<JobOutput> {
    let backend = super::open(env.backend, &env.root)?;
    let r = Runner::new(
        None,
        Duration::from_secs(env.config.timeouts.query_secs),
        Duration::from_secs(env.config.timeouts.apply_secs),
    );
    let refresh = if env.refresh {
        if let Some(h) = backend.lock_held()? {
            return Err(anyhow!(
                "package-manager lock {} is held{}",
                h.path.display(),
                h.pid.map(|p| format!(" by pid {p}")).unwrap_or_default()
            ));
        }
        Some(backend.refresh(&r)?)
    } else {
        None
    };
    let updates = backend.updates(&r)?;
    Ok(JobOutput::Updates(UpdatesReport {
        ok: true,
        root: backend.root().to_owned(),
        backend: backend.name().to_owned(),
        refresh,
        updates,
    }))
}

/// Runs the configured health checks (`patchbay-agent check`), or one by name.
pub fn check(config: &Config, name: Option<&str>) -> anyhow::Result<JobOutput> {
    let results = match name {
        Some(n) => {
            let c = config.check(n).ok_or_else(|| {
                anyhow!("unknown check {n:?}: not defined in the local configuration")
            })?;
            vec![health::run(c)]
        }
        None => health::run_all(&config.checks),
    };
    Ok(JobOutput::Check(CheckReport {
        ok: results.iter().all(|r| r.ok),
        checks: results,
    }))
}
