//! The typed results of the local commands: what `apply`, `rollback`, `recover`,
//! `updates` and `check` print on stdout (one JSON object), and what the journal
//! keeps as a job's final record.
//!
//! The JSON is the agent's interface (README, "Agent local commands"): the field
//! names and nesting here are that contract, e.g. `"error": {"step", "message"}`
//! on every refusal or failure. Fields that only some runs reach (`plan`,
//! `actions`, `changed`, …) are absent until a step sets them; fields that are
//! always there but may be empty (`last_step`, `refresh`, `repair`) are `null`.
//!
//! [`JobOutput::to_json`] prints every object with its keys in sorted order, as
//! the agent always has, so the bytes do not depend on the order fields are
//! declared in. [`JobOutput`] deserializes from that output (a round trip gives
//! the same value back): the variants have distinct required fields.

use super::health::{CheckResult, HookResult};
use super::job::RollbackMethod;
use super::journal::{JobKind, ReadReport};
use super::plan::{PackageDiff, PlanEntry};
use super::{Action, Change, CmdLog, Consistency, LockHeld, Wanted};
use patchbay_core::inventory::PendingUpdate;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a local command printed, one variant per shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobOutput {
    /// `apply` or `rollback` (run now, or replayed from the journal).
    Job(Box<JobReport>),
    /// A job recovery recorded as interrupted, replayed for its key.
    Interrupted(Box<InterruptedJob>),
    /// `rehearse` (`super::rehearse`).
    Rehearsal(Box<super::rehearse::RehearsalReport>),
    /// `recover`.
    Recover(RecoverReport),
    /// `updates`.
    Updates(UpdatesReport),
    /// `check`.
    Check(CheckReport),
    /// The command could not run at all (exit code 3).
    Error(CommandError),
}

impl JobOutput {
    /// Success (exit code 0); the `ok` field of the output.
    pub fn ok(&self) -> bool {
        match self {
            JobOutput::Job(r) => r.ok,
            JobOutput::Interrupted(r) => r.ok,
            JobOutput::Rehearsal(r) => r.ok,
            JobOutput::Recover(r) => r.ok,
            JobOutput::Updates(r) => r.ok,
            JobOutput::Check(r) => r.ok,
            JobOutput::Error(r) => r.ok,
        }
    }

    /// The JSON line printed on stdout: compact, keys sorted. Fails only when a
    /// path is not UTF-8.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        // Through `Value`, whose maps are sorted: the order the agent has always
        // printed, independent of field declaration order.
        Ok(serde_json::to_value(self)?.to_string())
    }

    /// The output of a command that could not run (`"ok": false` and the error).
    pub fn error(step: &str, message: impl Into<String>) -> Self {
        JobOutput::Error(CommandError {
            ok: false,
            error: StepError::new(step, message),
        })
    }
}

/// A failed step: `"error": {"step", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// The step that failed (`scope`, `verify.health`, … or the command's name).
    pub step: String,
    /// What went wrong, for people.
    pub message: String,
}

impl StepError {
    /// A failed `step`.
    pub fn new(step: &str, message: impl Into<String>) -> Self {
        StepError {
            step: step.to_owned(),
            message: message.into(),
        }
    }
}

/// One entry of a job's `steps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    /// Step name.
    pub step: String,
    /// Whether it passed.
    pub ok: bool,
    /// Wall time.
    pub duration_ms: u64,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step passed.
    Succeeded,
    /// A pre-flight step failed; nothing was changed.
    Refused,
    /// The transaction or a verification failed after changes began.
    Failed,
    /// The agent stopped before the job finished (recorded by recovery).
    Interrupted,
}

/// A pre-flight repair of the package database: `"repaired"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repaired {
    /// Consistency found.
    pub before: Consistency,
    /// The repair command (`null`: the backend has none).
    pub repair: Option<CmdLog>,
    /// Consistency after the repair.
    pub after: Consistency,
}

/// The result of `apply` or `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job's idempotency key.
    pub job_key: String,
    /// `apply` or `rollback`.
    pub kind: JobKind,
    /// How it ended.
    pub outcome: Outcome,
    /// `outcome` is `succeeded`.
    pub ok: bool,
    /// The failed step (absent on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// Returned from the journal without running anything.
    pub replayed: bool,
    /// Root file system.
    pub root: PathBuf,
    /// Backend name (`apt`, `dnf`, `zypper`, `apk`).
    pub backend: String,
    /// The packages an apply named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<Vec<Wanted>>,
    /// How a rollback restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RollbackMethod>,
    /// Jobs this run found interrupted and recorded first.
    pub recovered: Vec<InterruptedJob>,
    /// What reading the journal found (torn tail, corrupt lines).
    pub journal: ReadReport,
    /// Every step that ran, in order.
    pub steps: Vec<StepSummary>,
    /// A pre-flight repair of the package database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Repaired>,
    /// The simulated transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    /// The rollback plan (recorded before anything changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanEntry>>,
    /// The changes a rollback makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
    /// The snapshot hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<HookResult>,
    /// The snapshot-restore hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_restore: Option<HookResult>,
    /// Health before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_baseline: Option<Vec<CheckResult>>,
    /// The transaction's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<CmdLog>,
    /// Every package whose version or state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<PackageDiff>>,
    /// The root waits for a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_required: Option<bool>,
    /// Services that still map deleted libraries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_needing_restart: Option<Vec<String>>,
    /// Health after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_after: Option<Vec<CheckResult>>,
    /// Privilege changes of an apply (apt): new setuid/setgid files, changed
    /// modes and owners among the touched packages' files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege: Option<Vec<patchbay_proto::agent::PrivilegeFinding>>,
    /// `dpkg --verify` lines of the touched packages after an apply (apt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<String>>,
    /// A rollback with nothing to do (`true` only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noop: bool,
    /// An explanation for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JobReport {
    /// A report for a job that is about to run: no steps, no outcome yet
    /// (`ok: false`, `failed` until [`JobReport::finish`]).
    pub fn start(job_key: &str, kind: JobKind, root: PathBuf, backend: &str) -> Self {
        JobReport {
            job_key: job_key.to_owned(),
            kind,
            outcome: Outcome::Failed,
            ok: false,
            error: None,
            replayed: false,
            root,
            backend: backend.to_owned(),
            requested: None,
            method: None,
            recovered: Vec::new(),
            journal: ReadReport::default(),
            steps: Vec::new(),
            repaired: None,
            actions: None,
            plan: None,
            changes: None,
            snapshot: None,
            snapshot_restore: None,
            health_baseline: None,
            log: None,
            changed: None,
            reboot_required: None,
            services_needing_restart: None,
            health_after: None,
            privilege: None,
            verify: None,
            noop: false,
            note: None,
        }
    }

    /// Sets the outcome: `succeeded` without an error; with one, `refused` when
    /// nothing was changed yet and `failed` when changes began.
    pub fn finish(&mut self, error: Option<StepError>, changing: bool) {
        self.outcome = match (&error, changing) {
            (None, _) => Outcome::Succeeded,
            (Some(_), false) => Outcome::Refused,
            (Some(_), true) => Outcome::Failed,
        };
        self.ok = error.is_none();
        self.error = error;
    }
}

/// The package-database check (and repair) of recovery, flattened into
/// [`InterruptedJob`] and [`RecoverReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCheck {
    /// Consistency found.
    pub consistency_before: Consistency,
    /// The package manager still holds its lock: nothing was repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_held: Option<LockHeld>,
    /// The repair, when the database needed one and the configuration allows it.
    #[serde(flatten)]
    pub repaired: Option<DbRepair>,
}

impl DbCheck {
    /// The database is consistent (after the repair, if one ran).
    pub fn ok(&self) -> bool {
        self.repaired
            .as_ref()
            .map_or(&self.consistency_before, |r| &r.consistency_after)
            .ok
    }
}

/// A repair run by recovery: `"repair"` and `"consistency_after"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRepair {
    /// The repair command (`null`: the backend has none).
    pub repair: Option<CmdLog>,
    /// Consistency after the repair.
    pub consistency_after: Consistency,
}

/// A job the agent found started and never finished, recorded as interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptedJob {
    /// The job's idempotency key.
    pub job_key: String,
    /// `apply` or `rollback`.
    pub kind: JobKind,
    /// Always `interrupted`.
    pub outcome: Outcome,
    /// Always `false`.
    pub ok: bool,
    /// Root file system of the job.
    pub root: PathBuf,
    /// The last step journalled (`null`: none).
    pub last_step: Option<String>,
    /// The last step (or `started`) and what happened.
    pub error: StepError,
    /// The check of the root's package database.
    #[serde(flatten)]
    pub check: Option<DbCheck>,
    /// Why the check could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_error: Option<String>,
    /// Set when printed as the replayed result of its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    /// Set when printed as the replayed result of its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<ReadReport>,
    /// Set when this run recovered it (with everything else it recovered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Vec<InterruptedJob>>,
}

/// The result of `recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverReport {
    /// The root's package database is consistent.
    pub ok: bool,
    /// Jobs found interrupted and recorded.
    pub recovered: Vec<InterruptedJob>,
    /// What reading the journal found.
    pub journal: ReadReport,
    /// The check of the root's package database.
    #[serde(flatten)]
    pub check: DbCheck,
}

/// The result of `updates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatesReport {
    /// Always `true` (a failure is a [`CommandError`]).
    pub ok: bool,
    /// Root file system.
    pub root: PathBuf,
    /// Backend name.
    pub backend: String,
    /// The metadata refresh (`null` with `--no-refresh`).
    pub refresh: Option<CmdLog>,
    /// Available updates.
    pub updates: Vec<PendingUpdate>,
}

/// The result of `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Every check passed.
    pub ok: bool,
    /// The checks' results.
    pub checks: Vec<CheckResult>,
}

/// A command that could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandError {
    /// Always `false`.
    pub ok: bool,
    /// `step` is the command's name.
    pub error: StepError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consistency(ok: bool) -> Consistency {
        Consistency {
            ok,
            issues: if ok {
                Vec::new()
            } else {
                vec![super::super::AuditIssue {
                    package: "pb-demo".into(),
                    problem: "half-configured".into(),
                }]
            },
            interrupted: !ok,
        }
    }

    fn log(cmd: &str) -> CmdLog {
        CmdLog {
            command: cmd.into(),
            exit: Some(0),
            duration_ms: 12,
            log_file: Some("/state/logs/1-apply/1.log".into()),
            tail: "done\n".into(),
        }
    }

    fn check(name: &str, ok: bool) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "tcp".into(),
            ok,
            detail: "connected".into(),
            duration_ms: 1,
            value: None,
        }
    }

    fn interrupted(check: bool) -> InterruptedJob {
        InterruptedJob {
            job_key: "k0".into(),
            kind: JobKind::Apply,
            outcome: Outcome::Interrupted,
            ok: false,
            root: "/srv/root".into(),
            last_step: if check {
                Some("apply.begin".into())
            } else {
                None
            },
            error: StepError::new(
                if check { "apply.begin" } else { "started" },
                "the agent stopped before this job finished (killed or crashed)",
            ),
            check: check.then(|| DbCheck {
                consistency_before: consistency(false),
                lock_held: None,
                repaired: Some(DbRepair {
                    repair: Some(log("dpkg --configure -a")),
                    consistency_after: consistency(true),
                }),
            }),
            recovery_error: (!check).then(|| "no backend for /srv/root".into()),
            replayed: None,
            journal: None,
            recovered: None,
        }
    }

    fn applied() -> JobReport {
        let mut r = JobReport::start("k1", JobKind::Apply, "/srv/root".into(), "apt");
        r.requested = Some(vec![Wanted {
            name: "pb-demo".into(),
            version: "1.1".into(),
        }]);
        r.recovered = vec![interrupted(true)];
        r.journal = ReadReport {
            torn_tail_bytes: 7,
            corrupt_lines: vec![3],
        };
        r.steps = vec![StepSummary {
            step: "preflight.lock".into(),
            ok: true,
            duration_ms: 0,
        }];
        r.repaired = Some(Repaired {
            before: consistency(false),
            repair: None,
            after: consistency(true),
        });
        r.actions = Some(vec![Action {
            name: "pb-demo".into(),
            arch: "all".into(),
            from: Some("1.0".into()),
            to: Some("1.1".into()),
            origin: "pbtest".into(),
        }]);
        r.plan = Some(vec![PlanEntry {
            name: "pb-demo".into(),
            arch: "all".into(),
            before: Some("1.0".into()),
        }]);
        r.snapshot = Some(HookResult {
            command: "/bin/true".into(),
            ok: true,
            detail: "exit 0".into(),
            duration_ms: 2,
            id: None,
        });
        r.health_baseline = Some(vec![check("web", true)]);
        r.log = Some(log("apt-get install"));
        r.changed = Some(vec![PackageDiff {
            name: "pb-demo".into(),
            arch: "all".into(),
            before: Some("1.0".into()),
            after: Some("1.1".into()),
        }]);
        r.reboot_required = Some(false);
        r.services_needing_restart = Some(vec![]);
        r.health_after = Some(vec![check("web", false)]);
        r.finish(Some(StepError::new("verify.health", "web (refused)")), true);
        r
    }

    fn rolled_back() -> JobReport {
        let mut r = JobReport::start("k1", JobKind::Rollback, "/srv/root".into(), "dnf");
        r.method = Some(RollbackMethod::Packages);
        r.changes = Some(vec![
            Change::Install {
                name: "pb-demo".into(),
                version: "1.0".into(),
            },
            Change::Remove {
                name: "pb-new".into(),
            },
        ]);
        r.noop = true;
        r.note = Some("every package is already in its recorded state".into());
        r.finish(None, false);
        r
    }

    fn samples() -> Vec<JobOutput> {
        let mut replayed = interrupted(false);
        replayed.replayed = Some(false);
        replayed.journal = Some(ReadReport::default());
        replayed.recovered = Some(vec![interrupted(false), interrupted(true)]);
        vec![
            JobOutput::Job(Box::new(applied())),
            JobOutput::Job(Box::new(rolled_back())),
            JobOutput::Interrupted(Box::new(interrupted(true))),
            JobOutput::Interrupted(Box::new(replayed)),
            JobOutput::Recover(RecoverReport {
                ok: false,
                recovered: vec![],
                journal: ReadReport::default(),
                check: DbCheck {
                    consistency_before: consistency(false),
                    lock_held: Some(LockHeld {
                        path: "/srv/root/var/lib/dpkg/lock".into(),
                        pid: Some(42),
                    }),
                    repaired: None,
                },
            }),
            JobOutput::Updates(UpdatesReport {
                ok: true,
                root: "/".into(),
                backend: "zypper".into(),
                refresh: None,
                updates: vec![PendingUpdate {
                    name: "openssl".into(),
                    arch: "x86_64".into(),
                    current_version: "3.0.1".into(),
                    available_version: "3.0.2".into(),
                    origin: "updates".into(),
                }],
            }),
            JobOutput::Check(CheckReport {
                ok: true,
                checks: vec![check("web", true)],
            }),
            JobOutput::error("apply", "another patchbay-agent is running a job"),
        ]
    }

    #[test]
    fn every_output_round_trips_through_its_json() {
        for out in samples() {
            let line = out.to_json().unwrap();
            let back: JobOutput = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{line} does not parse back: {e}"));
            assert_eq!(back, out, "{line}");
            assert_eq!(back.to_json().unwrap(), line);
            // The journal keeps the value; it reads back the same.
            let v = serde_json::to_value(&out).unwrap();
            assert_eq!(serde_json::from_value::<JobOutput>(v).unwrap(), out);
        }
    }

    #[test]
    fn keys_are_printed_sorted() {
        let line = JobOutput::error("updates", "no backend").to_json().unwrap();
        assert_eq!(
            line,
            r#"{"error":{"message":"no backend","step":"updates"},"ok":false}"#
        );
        let line = JobOutput::Check(CheckReport {
            ok: false,
            checks: vec![check("db", false)],
        })
        .to_json()
        .unwrap();
        assert_eq!(
            line,
            r#"{"checks":[{"detail":"connected","duration_ms":1,"kind":"tcp","name":"db","ok":false}],"ok":false}"#
        );
    }

    /// The typed output is the same bytes as the `json!` objects the agent
    /// printed before it was typed.
    #[test]
    fn the_shape_is_the_one_the_agent_always_printed() {
        let r = rolled_back();
        let legacy = json!({
            "job_key": "k1", "kind": "rollback", "replayed": false, "root": "/srv/root",
            "backend": "dnf", "method": "packages", "recovered": [],
            "journal": {"torn_tail_bytes": 0, "corrupt_lines": []},
            "changes": [{"op": "install", "name": "pb-demo", "version": "1.0"},
                        {"op": "remove", "name": "pb-new"}],
            "noop": true, "note": "every package is already in its recorded state",
            "outcome": "succeeded", "ok": true, "steps": [],
        });
        assert_eq!(
            JobOutput::Job(Box::new(r)).to_json().unwrap(),
            legacy.to_string()
        );

        let i = interrupted(true);
        let mut legacy = json!({
            "job_key": "k0", "kind": "apply", "outcome": "interrupted", "ok": false,
            "root": "/srv/root", "last_step": "apply.begin",
            "error": {"step": "apply.begin",
                      "message": "the agent stopped before this job finished (killed or crashed)"},
        });
        legacy["consistency_before"] = json!(consistency(false));
        legacy["repair"] = json!(log("dpkg --configure -a"));
        legacy["consistency_after"] = json!(consistency(true));
        assert_eq!(
            JobOutput::Interrupted(Box::new(i)).to_json().unwrap(),
            legacy.to_string()
        );

        let i = interrupted(false);
        let out = JobOutput::Interrupted(Box::new(i)).to_json().unwrap();
        assert!(out.contains(r#""last_step":null"#), "{out}");
        assert!(
            out.contains(r#""recovery_error":"no backend for /srv/root""#),
            "{out}"
        );

        let a = applied();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v["error"],
            json!({"step": "verify.health", "message": "web (refused)"})
        );
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["repaired"]["repair"], serde_json::Value::Null);
        assert_eq!(
            v["steps"][0],
            json!({"step": "preflight.lock", "ok": true, "duration_ms": 0})
        );
        assert!(v.get("noop").is_none() && v.get("method").is_none());

        let u = JobOutput::Updates(UpdatesReport {
            ok: true,
            root: "/".into(),
            backend: "apt".into(),
            refresh: None,
            updates: vec![],
        });
        assert_eq!(
            u.to_json().unwrap(),
            json!({"ok": true, "root": "/", "backend": "apt", "refresh": null, "updates": []})
                .to_string()
        );
    }

    #[test]
    fn ok_is_the_ok_field() {
        for out in samples() {
            let v = serde_json::to_value(&out).unwrap();
            assert_eq!(v["ok"].as_bool(), Some(out.ok()));
        }
    }
}
