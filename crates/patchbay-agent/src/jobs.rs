//! Server-signed jobs received over the check-in (agent protocol v1).
//!
//! The server answers a check-in with leased [`SignedJob`]s. For each one the
//! agent decides with [`patchbay_core::job::admit`] — jobs enabled in the local
//! configuration (`[jobs] enabled`, default off), the server key pinned at
//! enrolment, the signature under that key, this agent's asset, the deadline,
//! check names of the local configuration — and either records a `refused`
//! result with the refusal's code or queues the job. A queued job runs when
//! its `not_before` has come (the deadline is checked again then) through the
//! execution layer:
//!
//! | kind | what runs |
//! |---|---|
//! | `apply` | [`crate::exec::job::apply`] with the job key as the journal key and the job's packages as exact versions |
//! | `rollback` | [`crate::exec::job::rollback`] of the `of` key (recorded versions) |
//! | `rehearse` | [`crate::exec::rehearse::rehearse`]: the packages' exact transaction in a throwaway overlay of the root (or the package manager's simulation), findings in the result's `rehearsal` |
//! | `run_check` | the named check of the local configuration |
//! | `inventory` | forgets the acknowledged inventory: the next check-in sends it whole |
//! | `reboot` | the configured `[jobs] reboot_command`, only when the root reports a reboot is required; otherwise succeeds with a message |
//!
//! The job's `checks` give the result's `baseline` and `after` samples (pass or
//! fail; `critical` when `[jobs] critical_checks` names the check; the measured
//! `value` of a `metric = true` command check, for the server's numeric
//! canary judge): for
//! `apply` and `rollback` they are the execution layer's own health results
//! (journalled, so a replay reports what was measured then), for the other
//! kinds they are run before and after.
//!
//! # Durability: the outbox
//! `STATE/outbox.json` (written to a temporary file, fsynced, renamed) holds the
//! jobs admitted but not finished (`pending`) and the results not yet
//! acknowledged (`results`). A job is written to `pending` before it runs and
//! moves to `results` in one write when it has finished; results are sent with
//! every check-in until the server lists their key in `acked`, then moved to
//! `done` (the last [`DONE_KEPT`] acknowledged results): a job delivered again
//! later is answered with its recorded result and not run.
//! An agent killed at any point therefore either still holds the job — and
//! runs it again through the execution layer, whose journal returns the
//! recorded result of a finished key, or records an interrupted one, instead
//! of acting twice — or holds its result. A job delivered again after its
//! result was acknowledged is answered from `done` (and, for apply and
//! rollback, beyond that by the journal's replay). A reboot
//! job's result is stored *before* the reboot command runs, so a reboot
//! is never repeated.
//!
//! An apply or rollback that finds the state directory locked (a local
//! `patchbay-agent apply` is running) stays pending and is tried again at the
//! next check-in. A failure of the execution layer before a job's result exists (for example
//! the package manager could not be found) is reported as `failed` with step
//! `agent`. The execution layer's own pre-flight refusals (a simulation that
//! would touch a package the job does not name: step `scope`; a held package
//! lock: `preflight.lock`) are reported as `failed` with that step: the agent
//! admitted the job and its pre-flight declined it, nothing was changed.

use crate::collect::{CollectOptions, collect};
use crate::exec::Wanted;
use crate::exec::config::Config;
use crate::exec::health::{self, CheckResult};
use crate::exec::job::{self as exec_job, JobEnv, RollbackMethod};
use crate::exec::report::{JobOutput, Outcome};
use crate::state::StateDir;
use anyhow::Context;
use jiff::Timestamp;
use patchbay_core::job::{AgentView, JobKind, SignedJob, admit};
use patchbay_proto::agent::{CheckSample, JobOutcome, JobResult, VersionChange};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The outbox file in the state directory.
pub const OUTBOX_FILE: &str = "outbox.json";

/// Jobs admitted and not finished, results not acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    /// Admitted jobs waiting for their `not_before` or interrupted while
    /// running.
    #[serde(default)]
    pub pending: Vec<SignedJob>,
    /// Results sent with every check-in until acknowledged.
    #[serde(default)]
    pub results: Vec<JobResult>,
    /// Acknowledged results, newest last (at most [`DONE_KEPT`]): a job
    /// delivered again is answered with its result instead of running again,
    /// whatever its kind (apply and rollback are also protected by the
    /// journal; reboot, run_check and inventory only by this).
    #[serde(default)]
    pub done: Vec<JobResult>,
}

/// How many acknowledged results the outbox keeps.
pub const DONE_KEPT: usize = 1000;

impl Outbox {
    /// Reads the outbox (empty when absent). An unreadable outbox is an error,
    /// never silently emptied: it may hold results the server has not seen.
    pub fn load(state: &StateDir) -> anyhow::Result<Outbox> {
        Ok(state.read(OUTBOX_FILE)?.unwrap_or_default())
    }

    /// Writes the outbox durably (temporary file, fsync, rename, directory fsync).
    pub fn save(&self, state: &StateDir) -> anyhow::Result<()> {
        state.write(OUTBOX_FILE, self)
    }

    /// Drops the results the server acknowledged; whether any was dropped.
    pub fn ack(&mut self, keys: &[String]) -> bool {
        let (acked, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.results)
            .into_iter()
            .partition(|r| keys.contains(&r.key));
        self.results = kept;
        if acked.is_empty() {
            return false;
        }
        self.done.retain(|d| !acked.iter().any(|a| a.key == d.key));
        self.done.extend(acked);
        let extra = self.done.len().saturating_sub(DONE_KEPT);
        self.done.drain(..extra);
        true
    }

    /// The earliest `not_before` still ahead among the pending jobs (a job
    /// already due but postponed is tried at the next check-in).
    pub fn next_due(&self) -> Option<Timestamp> {
        let now = server_now();
        self.pending
            .iter()
            .map(|j| j.job.not_before)
            .filter(|t| *t > now)
            .min()
    }

    fn record(&mut self, result: JobResult) {
        self.pending.retain(|j| j.job.key != result.key);
        self.results.retain(|r| r.key != result.key);
        self.results.push(result);
    }
}

/// What jobs need from the agent.
#[derive(Debug, Clone)]
pub struct JobContext<'a> {
    /// The state directory (outbox, journal, logs).
    pub state: &'a StateDir,
    /// The root the agent reports for and changes.
    pub root: PathBuf,
    /// The local configuration.
    pub config: &'a Config,
    /// This agent's asset name.
    pub asset: &'a str,
    /// The server key pinned at enrolment (hex).
    pub pinned_key: Option<&'a str>,
}

impl JobContext<'_> {
    fn check_names(&self) -> Vec<String> {
        self.config
            .checks
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    fn view<'b>(&'b self, names: &'b [String]) -> AgentView<'b> {
        AgentView {
            jobs_enabled: self.config.jobs.enabled,
            pinned_key: self.pinned_key,
            asset: self.asset,
            checks: names,
        }
    }
}

/// The server's clock minus this host's, in milliseconds, as last measured
/// from a check-in answer's `Date` header ([`note_server_date`]); 0 until then.
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Differences below this are the `Date` header's one-second resolution and
/// the answer's travel time, not a skewed clock: they are not corrected.
const CLOCK_SLACK_MS: i64 = 2_000;

/// Takes the server's clock from a check-in answer's `Date` header (RFC
/// 2822, to the second), received at `local`: job times (`not_before`,
/// `deadline`) are the server's, so they are judged on the server's clock —
/// a host whose clock is an hour behind would otherwise hold every job an
/// hour, and one an hour ahead refuse jobs as expired an hour early. A
/// difference of more than [`CLOCK_SLACK_MS`] is logged. Returns the
/// difference applied (server minus local).
///
/// A delayed answer (a slow link, or someone holding it on purpose) carries
/// an old `Date` and so makes the server's clock look *behind*; delays never
/// make it look ahead. So the correction is the largest of the last
/// [`CLOCK_SAMPLES`] measurements (a held answer cannot lower it, so cannot
/// make a job past its deadline look current), and a correction that would
/// move this host's clock back is trusted only once two answers agree.
pub fn note_server_date(date: Option<&str>, local: Timestamp) -> jiff::SignedDuration {
    use std::sync::atomic::Ordering;
    let Some(sample) = date.and_then(|d| raw_offset_ms(d, local)) else {
        return jiff::SignedDuration::from_millis(CLOCK_OFFSET_MS.load(Ordering::Relaxed));
    };
    let applied = correction(
        &mut RECENT_OFFSETS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        sample,
    );
    let before = CLOCK_OFFSET_MS.swap(applied, Ordering::Relaxed);
    if applied != 0 && (applied - before).abs() > CLOCK_SLACK_MS {
        let secs = (applied as f64 / 1000.0).round() as i64;
        tracing::warn!(
            server_minus_local_secs = secs,
            "this host's clock differs from the server's by {secs} s; job times are judged on the server's clock",
        );
    }
    jiff::SignedDuration::from_millis(applied)
}

/// Adds `sample` (server minus local, ms) to the `recent` measurements and
/// returns the correction to apply: the largest of the last
/// [`CLOCK_SAMPLES`], a negative one only once two answers were measured, 0
/// within [`CLOCK_SLACK_MS`].
fn correction(recent: &mut Vec<i64>, sample: i64) -> i64 {
    if recent.len() == CLOCK_SAMPLES {
        recent.remove(0);
    }
    recent.push(sample);
    let best = recent.iter().copied().max().unwrap_or(0);
    let best = if best < 0 && recent.len() < 2 {
        0
    } else {
        best
    };
    if best.abs() > CLOCK_SLACK_MS { best } else { 0 }
}

/// Measurements the correction is the largest of (one per check-in answer).
const CLOCK_SAMPLES: usize = 8;

/// The last [`CLOCK_SAMPLES`] measured differences (server minus local, ms).
static RECENT_OFFSETS: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

/// The server's clock minus this host's (ms) that a `Date` header received
/// at `local` shows; `None` when unreadable.
fn raw_offset_ms(date: &str, local: Timestamp) -> Option<i64> {
    let server = jiff::fmt::rfc2822::parse(date).ok()?;
    // The header is truncated to the second: the server's clock was half a
    // second past it on average.
    let diff = server.timestamp().duration_since(local) + jiff::SignedDuration::from_millis(500);
    i64::try_from(diff.as_millis()).ok()
}

/// The correction (server minus local, ms) one `Date` header received at
/// `local` calls for on its own: 0 within [`CLOCK_SLACK_MS`]; `None` when
/// unreadable.
#[cfg(test)]
fn clock_offset_ms(date: &str, local: Timestamp) -> Option<i64> {
    let ms = raw_offset_ms(date, local)?;
    Some(if ms.abs() > CLOCK_SLACK_MS { ms } else { 0 })
}

/// Now on the server's clock: this host's clock corrected by the last
/// measured difference ([`note_server_date`]).
pub fn server_now() -> Timestamp {
    let ms = CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed);
    Timestamp::now()
        .checked_add(jiff::SignedDuration::from_millis(ms))
        .unwrap_or_else(|_| Timestamp::now())
}

/// A refusal's message, naming the clock correction when one applies (a
/// deadline judged on the server's clock, not this host's).
fn with_clock(message: String) -> String {
    let ms = CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms == 0 {
        return message;
    }
    format!(
        "{message} (judged on the server's clock; this host's clock differs from it by {:+} s)",
        (-ms as f64 / 1000.0).round() as i64
    )
}

fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

fn refused(key: &str, code: &str, message: String) -> JobResult {
    JobResult {
        key: key.to_owned(),
        outcome: JobOutcome::Refused,
        step: None,
        message: Some(message),
        refusal: Some(code.to_owned()),
        baseline: Vec::new(),
        after: Vec::new(),
        changed: Vec::new(),
        reboot_required: false,
        finished_at: now_rfc3339(),
        rehearsal: None,
        privilege: vec![],
        snapshot: None,
    }
}

fn result(key: &str, outcome: JobOutcome) -> JobResult {
    JobResult {
        key: key.to_owned(),
        outcome,
        step: None,
        message: None,
        refusal: None,
        baseline: Vec::new(),
        after: Vec::new(),
        changed: Vec::new(),
        reboot_required: false,
        finished_at: now_rfc3339(),
        rehearsal: None,
        privilege: vec![],
        snapshot: None,
    }
}

/// Takes the jobs of one check-in answer: each is admitted into `pending` or
/// refused into `results`, and the outbox is saved before anything runs.
/// A job whose key is already pending, or already has a result that is not a
/// refusal, is not taken again. Returns how many were admitted.
pub fn receive(
    outbox: &mut Outbox,
    jobs: &[SignedJob],
    ctx: &JobContext<'_>,
    now: Timestamp,
) -> anyhow::Result<usize> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let names = ctx.check_names();
    let mut admitted = 0;
    for signed in jobs {
        let key = &signed.job.key;
        let known = outbox.pending.iter().any(|j| &j.job.key == key)
            || outbox
                .results
                .iter()
                .any(|r| &r.key == key && r.outcome != JobOutcome::Refused);
        if known {
            tracing::debug!(job = %key, "job already taken");
            continue;
        }
        if let Some(d) = outbox
            .done
            .iter()
            .find(|d| &d.key == key && d.outcome != JobOutcome::Refused)
        {
            // Delivered again after its result was acknowledged: report the
            // same result again, never run it twice.
            tracing::info!(job = %key, "job already done; its result is sent again");
            let d = d.clone();
            outbox.results.push(d);
            continue;
        }
        match admit(signed, ctx.view(&names), now) {
            Ok(()) => {
                tracing::info!(job = %key, kind = signed.job.kind.name(), not_before = %signed.job.not_before, "job admitted");
                outbox.results.retain(|r| &r.key != key);
                outbox.pending.push(signed.clone());
                admitted += 1;
            }
            Err(refusal) => {
                tracing::warn!(job = %key, code = refusal.code(), "job refused: {refusal}");
                outbox.record(refused(
                    key,
                    refusal.code(),
                    with_clock(refusal.to_string()),
                ));
            }
        }
    }
    outbox.save(ctx.state)?;
    Ok(admitted)
}

/// Runs every pending job whose `not_before` has come, in the order received;
/// each result is saved before the next job starts. Returns how many ran.
pub fn run_due(outbox: &mut Outbox, ctx: &JobContext<'_>) -> anyhow::Result<usize> {
    let names = ctx.check_names();
    let mut ran = 0;
    loop {
        let now = server_now();
        let Some(signed) = outbox
            .pending
            .iter()
            .find(|j| j.job.not_before <= now)
            .cloned()
        else {
            return Ok(ran);
        };
        // Admitted when received; the deadline (and the configuration, which
        // may have changed across a restart) are checked again now.
        let res = match admit(&signed, ctx.view(&names), now) {
            Err(refusal) => refused(
                &signed.job.key,
                refusal.code(),
                with_clock(refusal.to_string()),
            ),
            Ok(()) => {
                // A probe: the lock is released at once (`err()` drops it);
                // the execution layer takes it for the job.
                let busy = match signed.job.kind {
                    JobKind::Apply { .. } | JobKind::Rollback { .. } | JobKind::Rehearse { .. } => {
                        exec_job::lock_state(ctx.state.path()).err()
                    }
                    _ => None,
                };
                if let Some(e) = busy {
                    // A local `patchbay-agent apply` (or another agent) holds
                    // the state directory: not a failure of this job; it stays
                    // pending and is tried again at the next check-in.
                    tracing::warn!(job = %signed.job.key, error = format!("{e:#}"), "job postponed");
                    return Ok(ran);
                }
                if signed.job.kind == JobKind::Reboot {
                    run_reboot(outbox, ctx, &signed)?;
                    ran += 1;
                    continue;
                }
                run_one(ctx, &signed)
            }
        };
        tracing::info!(job = %res.key, outcome = ?res.outcome, step = res.step.as_deref().unwrap_or(""), "job finished");
        outbox.record(res);
        outbox.save(ctx.state)?;
        ran += 1;
    }
}

fn env(ctx: &JobContext<'_>) -> JobEnv {
    JobEnv {
        state_dir: ctx.state.path().to_path_buf(),
        root: ctx.root.clone(),
        backend: None,
        config: ctx.config.clone(),
        refresh: true,
    }
}

fn sample(ctx: &JobContext<'_>, r: &CheckResult) -> CheckSample {
    CheckSample {
        host: ctx.asset.to_owned(),
        check: r.name.clone(),
        pass: r.ok,
        value: r.value,
        critical: ctx.config.jobs.critical_checks.contains(&r.name),
    }
}

/// Runs the job's checks now.
fn run_checks(ctx: &JobContext<'_>, names: &[String]) -> Vec<CheckSample> {
    names
        .iter()
        .filter_map(|n| ctx.config.check(n))
        .map(|c| sample(ctx, &health::run(c)))
        .collect()
}

/// The samples of the job's checks among the execution layer's results.
fn pick(
    ctx: &JobContext<'_>,
    names: &[String],
    results: Option<&Vec<CheckResult>>,
) -> Vec<CheckSample> {
    results
        .map(|rs| {
            rs.iter()
                .filter(|r| names.contains(&r.name))
                .map(|r| sample(ctx, r))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one admitted job (not a reboot) and returns its result.
fn run_one(ctx: &JobContext<'_>, signed: &SignedJob) -> JobResult {
    let job = &signed.job;
    tracing::info!(job = %job.key, kind = job.kind.name(), "running job");
    match &job.kind {
        JobKind::Apply { packages } => {
            let wanted: Vec<Wanted> = packages
                .iter()
                .map(|p| Wanted {
                    name: p.name.clone(),
                    version: p.version.clone(),
                })
                .collect();
            let out = exec_job::apply(&env(ctx), &job.key, &wanted);
            from_output(ctx, signed, out, false)
        }
        JobKind::Rollback { of } => {
            let out = exec_job::rollback(&env(ctx), of, RollbackMethod::Packages);
            from_output(ctx, signed, out, true)
        }
        JobKind::Rehearse { packages } => {
            let wanted: Vec<Wanted> = packages
                .iter()
                .map(|p| Wanted {
                    name: p.name.clone(),
                    version: p.version.clone(),
                })
                .collect();
            let out = crate::exec::rehearse::rehearse(&env(ctx), &job.key, &wanted, ctx.asset);
            from_rehearsal(signed, out)
        }
        JobKind::VerifySnapshot { snapshot } => {
            match crate::exec::verify_snapshot::taken_here(ctx.state.path(), snapshot) {
                Ok(true) => {}
                Ok(false) => {
                    return refused(
                        &job.key,
                        "snapshot_not_taken_here",
                        format!(
                            "job {}: this agent's journal has no snapshot {snapshot:?} taken by its hooks.snapshot",
                            job.key
                        ),
                    );
                }
                Err(e) => {
                    return refused(
                        &job.key,
                        "journal_unreadable",
                        format!("job {}: reading the journal: {e:#}", job.key),
                    );
                }
            }
            let v = crate::exec::verify_snapshot::verify(
                ctx.config,
                ctx.state.path(),
                &ctx.root,
                &job.key,
                snapshot,
            );
            tracing::info!(job = %job.key, verified = v.verified, "snapshot verification");
            let mut r = result(
                &job.key,
                if v.verified {
                    JobOutcome::Succeeded
                } else {
                    JobOutcome::Failed
                },
            );
            if !v.verified {
                r.step = Some("verify_snapshot".into());
            }
            // The message carries the verdict and the hook's excerpt.
            r.message = Some(match (&v.error, v.exit) {
                (Some(e), _) => format!("{e}\n{}", v.excerpt),
                (None, Some(c)) => format!("exit {c}\n{}", v.excerpt),
                (None, None) => v.excerpt.clone(),
            });
            r
        }
        JobKind::Unsupported => {
            // admit() refuses it first; never run.
            refused(
                &job.key,
                "unsupported_kind",
                format!(
                    "job {}: its kind is not one this agent version knows",
                    job.key
                ),
            )
        }
        JobKind::RunCheck { name } => {
            let baseline = run_checks(ctx, &job.checks);
            let Some(check) = ctx.config.check(name) else {
                // admit() checked the name; the configuration cannot change
                // under a running agent, but say so rather than panic.
                let mut r = result(&job.key, JobOutcome::Failed);
                r.step = Some("check".into());
                r.message = Some(format!("check {name:?} is not defined"));
                return r;
            };
            let checked = health::run(check);
            let mut after = run_checks(ctx, &job.checks);
            if !job.checks.contains(name) {
                after.push(sample(ctx, &checked));
            }
            let mut r = result(
                &job.key,
                if checked.ok {
                    JobOutcome::Succeeded
                } else {
                    JobOutcome::Failed
                },
            );
            if !checked.ok {
                r.step = Some("check".into());
            }
            r.message = Some(format!("check {name}: {}", checked.detail));
            r.baseline = baseline;
            r.after = after;
            r
        }
        JobKind::Inventory => {
            let baseline = run_checks(ctx, &job.checks);
            let mut r = match ctx.state.clear_acked() {
                Ok(()) => {
                    let mut r = result(&job.key, JobOutcome::Succeeded);
                    r.message = Some("the next check-in sends the full inventory".into());
                    r
                }
                Err(e) => {
                    let mut r = result(&job.key, JobOutcome::Failed);
                    r.step = Some("agent".into());
                    r.message = Some(format!("{e:#}"));
                    r
                }
            };
            r.baseline = baseline;
            r.after = run_checks(ctx, &job.checks);
            r
        }
        JobKind::Reboot => {
            // Handled by run_reboot (its result is stored before acting).
            let mut r = result(&job.key, JobOutcome::Failed);
            r.step = Some("agent".into());
            r.message = Some("internal: reboot handled elsewhere".into());
            r
        }
    }
}

/// A reboot job: reboots only when the root reports a reboot is required. The
/// result is stored durably before the reboot command runs, so the agent that
/// starts after the reboot reports it and never reboots again for it.
fn run_reboot(outbox: &mut Outbox, ctx: &JobContext<'_>, signed: &SignedJob) -> anyhow::Result<()> {
    let job = &signed.job;
    let baseline = run_checks(ctx, &job.checks);
    let required = collect(&CollectOptions {
        root: ctx.root.clone(),
        pending_updates: false,
        ..Default::default()
    })
    .map(|inv| inv.facts.reboot_required);
    let cmd = &ctx.config.jobs.reboot_command;
    let mut r = result(&job.key, JobOutcome::Succeeded);
    r.baseline = baseline;
    match required {
        Err(e) => {
            r.outcome = JobOutcome::Failed;
            r.step = Some("reboot.required".into());
            r.message = Some(format!("cannot tell whether a reboot is required: {e:#}"));
        }
        Ok(false) => {
            r.message = Some("no reboot is required: nothing done".into());
            r.after = run_checks(ctx, &job.checks);
        }
        Ok(true) => {
            r.reboot_required = true;
            r.message = Some(format!("reboot issued: {}", cmd.join(" ")));
        }
    }
    let reboot = r.reboot_required;
    outbox.record(r);
    outbox.save(ctx.state)?;
    if reboot {
        tracing::warn!(job = %job.key, command = ?cmd, "rebooting");
        let status = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running the reboot command {cmd:?}"));
        let failure = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("the reboot command {cmd:?} exited with {s}")),
            Err(e) => Some(format!("{e:#}")),
        };
        if let Some(msg) = failure {
            let mut r = result(&job.key, JobOutcome::Failed);
            r.step = Some("reboot".into());
            r.message = Some(msg);
            r.reboot_required = true;
            outbox.record(r);
            outbox.save(ctx.state)?;
        }
    }
    Ok(())
}

/// The protocol result of a rehearsal: `succeeded` when it passed, `failed`
/// with the failing step otherwise; its findings in `rehearsal`.
fn from_rehearsal(signed: &SignedJob, out: anyhow::Result<JobOutput>) -> JobResult {
    let job = &signed.job;
    match out {
        Ok(JobOutput::Rehearsal(rep)) => {
            let mut r = result(
                &job.key,
                if rep.ok {
                    JobOutcome::Succeeded
                } else {
                    JobOutcome::Failed
                },
            );
            if let Some(e) = &rep.error {
                r.step = Some(e.step.clone());
                r.message = Some(e.message.clone());
            } else {
                r.message = Some(format!(
                    "rehearsal passed ({})",
                    rep.rehearsal.mode.as_str()
                ));
            }
            r.changed = rep.rehearsal.changed.clone();
            r.after = rep.rehearsal.checks.clone();
            r.rehearsal = Some(rep.rehearsal.clone());
            r
        }
        Ok(other) => {
            let mut r = result(&job.key, JobOutcome::Failed);
            r.step = Some("agent".into());
            r.message = Some(format!(
                "unexpected output of a rehearsal: {}",
                other.to_json().unwrap_or_default()
            ));
            r
        }
        Err(e) => {
            let mut r = result(&job.key, JobOutcome::Failed);
            r.step = Some("agent".into());
            r.message = Some(format!("{e:#}"));
            r
        }
    }
}

/// The protocol result of an apply or rollback run by the execution layer.
fn from_output(
    ctx: &JobContext<'_>,
    signed: &SignedJob,
    out: anyhow::Result<JobOutput>,
    rollback: bool,
) -> JobResult {
    let job = &signed.job;
    let (ok, failed) = if rollback {
        (JobOutcome::RolledBack, JobOutcome::RollbackFailed)
    } else {
        (JobOutcome::Succeeded, JobOutcome::Failed)
    };
    match out {
        Ok(JobOutput::Job(rep)) => {
            let mut r = result(
                &job.key,
                if rep.outcome == Outcome::Succeeded {
                    ok
                } else {
                    failed
                },
            );
            r.privilege = rep.privilege.clone().unwrap_or_default();
            r.snapshot = rep
                .snapshot
                .as_ref()
                .filter(|h| h.ok)
                .and_then(|h| h.id.clone());
            if let Some(e) = &rep.error {
                r.step = Some(e.step.clone());
                r.message = Some(e.message.clone());
            } else if rep.replayed {
                r.message = Some("recorded result of this job key (not run again)".into());
            } else if let Some(note) = &rep.note {
                r.message = Some(note.clone());
            }
            r.baseline = pick(ctx, &job.checks, rep.health_baseline.as_ref());
            r.after = pick(ctx, &job.checks, rep.health_after.as_ref());
            r.changed = rep
                .changed
                .iter()
                .flatten()
                .map(|d| VersionChange {
                    name: d.name.clone(),
                    before: d.before.clone(),
                    after: d.after.clone(),
                })
                .collect();
            r.reboot_required = rep.reboot_required.unwrap_or(false);
            r
        }
        Ok(JobOutput::Interrupted(i)) => {
            let mut r = result(&job.key, failed);
            r.step = Some(i.error.step.clone());
            r.message = Some(format!("interrupted: {}", i.error.message));
            r
        }
        Ok(other) => {
            let mut r = result(&job.key, failed);
            r.step = Some("agent".into());
            r.message = Some(format!(
                "unexpected output of the execution layer: {}",
                other.to_json().unwrap_or_default()
            ));
            r
        }
        Err(e) => {
            let mut r = result(&job.key, failed);
            r.step = Some("agent".into());
            r.message = Some(format!("{e:#}"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::audit::Signer;
    use patchbay_core::job::{Job, PackagePin, sign};

    fn job(key: &str, deadline: &str) -> Job {
        Job {
            deployment: "DEP-1".into(),
            key: key.into(),
            asset: "web-1".into(),
            not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
            deadline: deadline.parse().unwrap(),
            kind: JobKind::Apply {
                packages: vec![PackagePin {
                    name: "pb-demo".into(),
                    version: "1.1".into(),
                }],
            },
            checks: vec![],
        }
    }

    #[test]
    fn receive_admits_refuses_and_takes_a_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let server = Signer::from_seed(&[1; 32]);
        let key = server.public_hex();
        let mut config = Config::default();
        config.jobs.enabled = true;
        let ctx = JobContext {
            state: &state,
            root: "/".into(),
            config: &config,
            asset: "web-1",
            pinned_key: Some(&key),
        };
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let good = sign(job("a", "2027-01-01T00:00:00Z"), &server);
        let late = sign(job("b", "2026-02-01T00:00:00Z"), &server);
        let forged = sign(
            job("c", "2027-01-01T00:00:00Z"),
            &Signer::from_seed(&[2; 32]),
        );
        let mut ob = Outbox::default();
        let n = receive(
            &mut ob,
            &[good.clone(), late, forged, good.clone()],
            &ctx,
            now,
        )
        .unwrap();
        assert_eq!(n, 1, "the same key is taken once");
        assert_eq!(ob.pending.len(), 1);
        let codes: Vec<_> = ob
            .results
            .iter()
            .map(|r| r.refusal.clone().unwrap())
            .collect();
        assert_eq!(codes, ["expired", "bad_signature"]);
        assert_eq!(
            Outbox::load(&state).unwrap(),
            ob,
            "saved before anything runs"
        );
        assert!(ob.ack(&["b".into()]));
        assert_eq!(ob.results.len(), 1);
        assert_eq!(ob.done.len(), 1);
        assert!(!ob.ack(&["zzz".into()]));
        // Not due yet: stays pending, nothing runs.
        let mut future = job("later", "2099-01-01T00:00:00Z");
        future.not_before = "2098-01-01T00:00:00Z".parse().unwrap();
        let mut ob2 = Outbox::default();
        receive(&mut ob2, &[sign(future, &server)], &ctx, now).unwrap();
        assert_eq!(run_due(&mut ob2, &ctx).unwrap(), 0);
        assert_eq!(ob2.pending.len(), 1);
        assert_eq!(
            ob2.next_due(),
            Some("2098-01-01T00:00:00Z".parse().unwrap())
        );
        // A done (acknowledged) key delivered again: its result, not a run.
        let mut ob3 = Outbox::default();
        let mut r = result("a", JobOutcome::Succeeded);
        r.message = Some("first".into());
        ob3.results.push(r.clone());
        ob3.ack(&["a".into()]);
        assert!(ob3.results.is_empty());
        assert_eq!(
            receive(&mut ob3, std::slice::from_ref(&good), &ctx, now).unwrap(),
            0
        );
        assert_eq!(ob3.results, [r]);
        assert!(ob3.pending.is_empty());
        // Disabled: refused with its code.
        let off = Config::default();
        let ctx = JobContext {
            config: &off,
            ..ctx
        };
        let mut ob = Outbox::default();
        receive(&mut ob, &[good], &ctx, now).unwrap();
        assert_eq!(ob.results[0].refusal.as_deref(), Some("jobs_disabled"));
        assert!(ob.pending.is_empty());
    }

    /// A held answer (old `Date`) cannot make the server's clock look
    /// behind, so a job past its deadline never looks current; a real skew
    /// is still followed.
    #[test]
    fn a_held_answer_does_not_turn_the_clock_back() {
        // (The pure estimator: the process-wide clock stays untouched, as
        // other tests read it.)
        let mut recent = Vec::new();
        // Answers on time: no correction.
        for _ in 0..3 {
            assert_eq!(correction(&mut recent, 500), 0);
        }
        // An answer held 10 s: its Date looks 10 s old — ignored.
        assert_eq!(correction(&mut recent, -9_500), 0);
        // A server an hour ahead (this host behind): followed at once.
        assert_eq!(correction(&mut recent, 3_600_500), 3_600_500);
        // A host an hour ahead: a lone first answer does not move the clock
        // back; two agreeing answers do.
        let mut fresh = Vec::new();
        assert_eq!(correction(&mut fresh, -3_599_500), 0);
        assert_eq!(correction(&mut fresh, -3_599_400), -3_599_400);
        // Old measurements age out after CLOCK_SAMPLES answers.
        let mut aging = vec![3_600_000];
        for _ in 0..CLOCK_SAMPLES {
            correction(&mut aging, 0);
        }
        assert_eq!(correction(&mut aging, 0), 0);
    }

    #[test]
    fn clock_offset_from_the_date_header() {
        let local: Timestamp = "2026-12-06T14:00:00.200Z".parse().unwrap();
        // An hour behind the server / ahead of it; within the slack: none.
        assert_eq!(
            clock_offset_ms("Sun, 06 Dec 2026 15:00:00 GMT", local),
            Some(3_600_300)
        );
        assert_eq!(
            clock_offset_ms("Sun, 06 Dec 2026 13:00:00 GMT", local),
            Some(-3_599_700)
        );
        assert_eq!(
            clock_offset_ms("Sun, 06 Dec 2026 14:00:01 GMT", local),
            Some(0)
        );
        assert_eq!(clock_offset_ms("yesterday", local), None);
    }
}
