//! Agent jobs: typed, never shell, and signed by the server.
//!
//! A job is one of a closed set of kinds ([`JobKind`]); it names exact package
//! versions or a check defined in the agent's *local* configuration, never a
//! command. The server signs a job's canonical encoding ([`encode`], marked
//! "do not change: signed") with its ed25519 key; the agent pinned that key at
//! enrolment and decides with [`admit`] whether to run a job it received. A
//! compromised transport or a forged check-in answer can therefore make an
//! agent do nothing but refuse.
//!
//! Pure: the agent passes its pinned key, its local check names, whether jobs
//! are enabled in its configuration, and `now`.

use crate::audit::{Signer, public_key, verify_bytes};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One exact package version a job installs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackagePin {
    /// Package name (validated by the ecosystem's rules before signing).
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Install exactly these versions (pre-flight, apply, verify, report).
    Apply {
        /// The packages and versions.
        packages: Vec<PackagePin>,
    },
    /// Roll back the job with this idempotency key to the versions its
    /// journal recorded before it ran.
    Rollback {
        /// The job rolled back.
        of: String,
    },
    /// Reboot, if the host reports one is required and the window allows it.
    Reboot,
    /// Run one health check of the agent's local configuration.
    RunCheck {
        /// The check's name.
        name: String,
    },
    /// Send a full inventory now.
    Inventory,
    /// Rehearse installing exactly these versions in a throwaway overlay of
    /// the host's root (package scripts run, services not started) and report
    /// what would happen; the real root is never changed (ADR 0018).
    Rehearse {
        /// The packages and versions, as an apply job would name them.
        packages: Vec<PackagePin>,
    },
    /// Verify a snapshot an apply took: the agent runs its own
    /// `hooks.snapshot_verify` (restore to a scratch directory and check)
    /// with the snapshot's identity; exit 0 = verified (ADR 0020).
    VerifySnapshot {
        /// The snapshot's identity, as the apply's `hooks.snapshot` printed it.
        snapshot: String,
    },
    /// A kind this agent does not know (a newer server's): decoded so the
    /// job list still reads, and refused by [`admit`] naming the kind's
    /// absence (`unsupported_kind`), never run.
    #[serde(other)]
    Unsupported,
}

impl JobKind {
    /// The kind's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Apply { .. } => "apply",
            JobKind::Rollback { .. } => "rollback",
            JobKind::Reboot => "reboot",
            JobKind::RunCheck { .. } => "run_check",
            JobKind::Inventory => "inventory",
            JobKind::Rehearse { .. } => "rehearse",
            JobKind::VerifySnapshot { .. } => "verify_snapshot",
            JobKind::Unsupported => "unsupported",
        }
    }
}

/// A job as the server issues it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The deployment (`DEP-…`).
    pub deployment: String,
    /// Idempotency key (`DEP-…/asset[/rollback]`): run at most once.
    pub key: String,
    /// The asset it is for (an agent refuses another asset's job).
    pub asset: String,
    /// Not before this instant.
    pub not_before: Timestamp,
    /// Not after this instant (a job past it is refused, not run late).
    pub deadline: Timestamp,
    /// What to do.
    pub kind: JobKind,
    /// Health checks (names in the agent's local configuration) to run before
    /// and after.
    pub checks: Vec<String>,
}

/// A job with the server's signature (hex) over [`encode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedJob {
    /// The job.
    pub job: Job,
    /// ed25519 signature, hex.
    pub signature: String,
}

fn put(out: &mut Vec<u8>, s: &[u8]) {
    let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
}

/// The canonical encoding that is signed. Do not change: signed (agents in the
/// field verify it). Every field, length-prefixed, in a fixed order, behind a
/// domain-separation tag so a job signature can never be mistaken for an audit
/// or evidence signature.
pub fn encode(job: &Job) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put(&mut out, b"patchbay-job-v1");
    put(&mut out, job.deployment.as_bytes());
    put(&mut out, job.key.as_bytes());
    put(&mut out, job.asset.as_bytes());
    out.extend_from_slice(&job.not_before.as_millisecond().to_be_bytes());
    out.extend_from_slice(&job.deadline.as_millisecond().to_be_bytes());
    put(&mut out, job.kind.name().as_bytes());
    match &job.kind {
        // A rehearsal encodes its packages like an apply; the kind name
        // (written above) keeps the two apart.
        JobKind::Apply { packages } | JobKind::Rehearse { packages } => {
            out.extend_from_slice(&(packages.len() as u32).to_be_bytes());
            for p in packages {
                put(&mut out, p.name.as_bytes());
                put(&mut out, p.version.as_bytes());
            }
        }
        JobKind::Rollback { of } => put(&mut out, of.as_bytes()),
        JobKind::RunCheck { name } => put(&mut out, name.as_bytes()),
        JobKind::VerifySnapshot { snapshot } => put(&mut out, snapshot.as_bytes()),
        // Never signed by this version; refused before its signature is read.
        JobKind::Reboot | JobKind::Inventory | JobKind::Unsupported => {}
    }
    out.extend_from_slice(&(job.checks.len() as u32).to_be_bytes());
    for c in &job.checks {
        put(&mut out, c.as_bytes());
    }
    out
}

/// Signs a job with the server's key.
pub fn sign(job: Job, signer: &Signer) -> SignedJob {
    let signature = signer.sign_bytes(&encode(&job));
    SignedJob { job, signature }
}

/// Why an agent refuses a job. Each is reported to the server with its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "message", rename_all = "snake_case")]
pub enum Refusal {
    /// The agent's configuration does not allow jobs (`[jobs] enabled`).
    #[error("jobs are disabled in this agent's configuration ([jobs] enabled = false)")]
    JobsDisabled,
    /// The agent has no pinned server key (enrolled before keys were pinned).
    #[error("no server key is pinned: enrol again to pin one")]
    NoPinnedKey,
    /// The signature does not verify under the pinned key.
    #[error("{0}")]
    BadSignature(String),
    /// The job is for another asset.
    #[error("{0}")]
    WrongAsset(String),
    /// The job names a check the local configuration does not define.
    #[error("{0}")]
    UnknownCheck(String),
    /// The job's deadline has passed.
    #[error("{0}")]
    Expired(String),
    /// An apply job with nothing in it, or a package named twice.
    #[error("{0}")]
    Malformed(String),
    /// A job kind this agent version does not know.
    #[error("{0}")]
    UnsupportedKind(String),
}

impl Refusal {
    /// The stable code reported to the server.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::JobsDisabled => "jobs_disabled",
            Refusal::NoPinnedKey => "no_pinned_key",
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::WrongAsset(_) => "wrong_asset",
            Refusal::UnknownCheck(_) => "unknown_check",
            Refusal::Expired(_) => "expired",
            Refusal::Malformed(_) => "malformed",
            Refusal::UnsupportedKind(_) => "unsupported_kind",
        }
    }
}

/// What the agent knows when it decides.
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    /// `[jobs] enabled` in the local configuration.
    pub jobs_enabled: bool,
    /// The server key pinned at enrolment (hex).
    pub pinned_key: Option<&'a str>,
    /// The asset this agent reports for.
    pub asset: &'a str,
    /// The names of the checks in the local configuration.
    pub checks: &'a [String],
}

/// Whether the agent may run `signed` now. Checks, in order: jobs enabled, a
/// pinned key, the signature under *that* key (a job signed by any other key
/// is refused, whatever key it claims), the asset, the deadline, the checks,
/// the shape. A job whose `not_before` lies ahead is admitted (the agent waits
/// for it).
pub fn admit(signed: &SignedJob, view: AgentView<'_>, now: Timestamp) -> Result<(), Refusal> {
    if !view.jobs_enabled {
        return Err(Refusal::JobsDisabled);
    }
    if signed.job.kind == JobKind::Unsupported {
        // Before the signature: the job cannot be re-encoded as signed, and
        // it is never run whoever signed it.
        return Err(Refusal::UnsupportedKind(format!(
            "job {}: its kind is not one this agent version knows; upgrade the agent",
            signed.job.key
        )));
    }
    let key_hex = view.pinned_key.ok_or(Refusal::NoPinnedKey)?;
    let key = public_key(key_hex)
        .map_err(|e| Refusal::BadSignature(format!("the pinned server key is unusable: {e}")))?;
    if !verify_bytes(&key, &encode(&signed.job), &signed.signature) {
        return Err(Refusal::BadSignature(format!(
            "job {}: the signature does not verify under the pinned server key",
            signed.job.key
        )));
    }
    let job = &signed.job;
    if job.asset != view.asset {
        return Err(Refusal::WrongAsset(format!(
            "job {} is for asset {}, this agent reports for {}",
            job.key, job.asset, view.asset
        )));
    }
    if now >= job.deadline {
        return Err(Refusal::Expired(format!(
            "job {}: its deadline {} has passed",
            job.key, job.deadline
        )));
    }
    let mut names: Vec<&String> = job.checks.iter().collect();
    if let JobKind::RunCheck { name } = &job.kind {
        names.push(name);
    }
    if let Some(unknown) = names.iter().find(|n| !view.checks.contains(n)) {
        return Err(Refusal::UnknownCheck(format!(
            "job {}: check {unknown:?} is not defined in this agent's configuration",
            job.key
        )));
    }
    if let JobKind::VerifySnapshot { snapshot } = &job.kind
        && (snapshot.trim().is_empty() || snapshot.len() > 512 || snapshot.contains(['\n', '\0']))
    {
        return Err(Refusal::Malformed(format!(
            "job {}: a verify_snapshot job needs one snapshot identity (one line, at most 512 bytes)",
            job.key
        )));
    }
    if let JobKind::Apply { packages } | JobKind::Rehearse { packages } = &job.kind {
        if packages.is_empty() {
            return Err(Refusal::Malformed(format!(
                "job {}: {} {} job names no package",
                job.key,
                if job.kind.name() == "apply" {
                    "an"
                } else {
                    "a"
                },
                job.kind.name()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(p) = packages.iter().find(|p| !seen.insert(&p.name)) {
            return Err(Refusal::Malformed(format!(
                "job {}: package {} is named twice",
                job.key, p.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            deployment: "DEP-2026-12-001".into(),
            key: "DEP-2026-12-001/web-1".into(),
            asset: "web-1".into(),
            not_before: "2026-12-08T22:00:00Z".parse().unwrap(),
            deadline: "2026-12-08T23:00:00Z".parse().unwrap(),
            kind: JobKind::Apply {
                packages: vec![PackagePin {
                    name: "pb-demo".into(),
                    version: "1.1".into(),
                }],
            },
            checks: vec!["web".into()],
        }
    }

    fn view<'a>(key: &'a str, checks: &'a [String]) -> AgentView<'a> {
        AgentView {
            jobs_enabled: true,
            pinned_key: Some(key),
            asset: "web-1",
            checks,
        }
    }

    /// A kind this version does not know (a newer server's) still decodes,
    /// so the rest of the job list reads, and is refused naming why — never
    /// run; a verify_snapshot job is signed over its snapshot and admitted.
    #[test]
    fn an_unknown_kind_is_refused_clearly_and_verify_snapshot_is_signed() {
        let server = Signer::from_seed(&[7; 32]);
        let key = server.public_hex();
        let checks = vec!["web".to_string()];
        let now: Timestamp = "2026-12-08T22:30:00Z".parse().unwrap();
        let mut v = serde_json::to_value(sign(job(), &server)).unwrap();
        v["job"]["kind"] = serde_json::json!({"type": "launch_rockets", "count": 3});
        let list: Vec<SignedJob> =
            serde_json::from_value(serde_json::json!([v, sign(job(), &server)])).unwrap();
        assert_eq!(list[0].job.kind, JobKind::Unsupported);
        let r = admit(&list[0], view(&key, &checks), now).unwrap_err();
        assert_eq!(r.code(), "unsupported_kind");
        assert!(r.to_string().contains("upgrade the agent"), "{r}");
        assert_eq!(admit(&list[1], view(&key, &checks), now), Ok(()));

        let mut j = job();
        j.kind = JobKind::VerifySnapshot {
            snapshot: "/var/backups/a.tar".into(),
        };
        let s = sign(j.clone(), &server);
        assert_eq!(admit(&s, view(&key, &checks), now), Ok(()));
        // The snapshot is signed: another one under the same signature fails.
        let mut forged = s.clone();
        forged.job.kind = JobKind::VerifySnapshot {
            snapshot: "/etc/shadow".into(),
        };
        assert_eq!(
            admit(&forged, view(&key, &checks), now).unwrap_err().code(),
            "bad_signature"
        );
        j.kind = JobKind::VerifySnapshot {
            snapshot: "a\nb".into(),
        };
        assert_eq!(
            admit(&sign(j, &server), view(&key, &checks), now)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn a_signed_job_is_admitted_and_every_refusal_names_itself() {
        let server = Signer::from_seed(&[7; 32]);
        let other = Signer::from_seed(&[8; 32]);
        let key = server.public_hex();
        let checks = vec!["web".to_string()];
        let now: Timestamp = "2026-12-08T22:30:00Z".parse().unwrap();
        let s = sign(job(), &server);
        assert_eq!(admit(&s, view(&key, &checks), now), Ok(()));
        // Jobs disabled.
        let mut v = view(&key, &checks);
        v.jobs_enabled = false;
        assert_eq!(admit(&s, v, now), Err(Refusal::JobsDisabled));
        // Signed by another key (which the job cannot name: there is nowhere to).
        let forged = sign(job(), &other);
        assert_eq!(
            admit(&forged, view(&key, &checks), now).unwrap_err().code(),
            "bad_signature"
        );
        // Any field changed after signing.
        let mut t = s.clone();
        t.job.kind = JobKind::Apply {
            packages: vec![PackagePin {
                name: "pb-demo".into(),
                version: "1.2".into(),
            }],
        };
        assert_eq!(
            admit(&t, view(&key, &checks), now).unwrap_err().code(),
            "bad_signature"
        );
        let mut t = s.clone();
        t.job.deadline = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            admit(&t, view(&key, &checks), now).unwrap_err().code(),
            "bad_signature"
        );
        // Past its deadline.
        let late: Timestamp = "2026-12-08T23:00:00Z".parse().unwrap();
        assert_eq!(
            admit(&s, view(&key, &checks), late).unwrap_err().code(),
            "expired"
        );
        // Unknown check.
        let none: Vec<String> = vec![];
        assert_eq!(
            admit(&s, view(&key, &none), now).unwrap_err().code(),
            "unknown_check"
        );
        // Another asset's job.
        let mut j = job();
        j.asset = "db-1".into();
        let s2 = sign(j, &server);
        assert_eq!(
            admit(&s2, view(&key, &checks), now).unwrap_err().code(),
            "wrong_asset"
        );
        // No pinned key.
        let mut v = view(&key, &checks);
        v.pinned_key = None;
        assert_eq!(admit(&s, v, now), Err(Refusal::NoPinnedKey));
    }

    #[test]
    fn the_encoding_separates_fields_and_kinds() {
        let a = job();
        let mut b = job();
        b.deployment = "DEP-2026-12-00".into();
        b.key = "1/DEP-2026-12-001/web-1".into();
        assert_ne!(encode(&a), encode(&b));
        let mut c = job();
        c.kind = JobKind::Rollback {
            of: "DEP-2026-12-001/web-1".into(),
        };
        assert_ne!(encode(&a), encode(&c));
        assert!(encode(&a).starts_with(&[0, 0, 0, 15]));
        // A rehearsal of the same packages is not the apply: the signature of
        // one can never be replayed as the other.
        let mut d = job();
        d.kind = JobKind::Rehearse {
            packages: vec![PackagePin {
                name: "pb-demo".into(),
                version: "1.1".into(),
            }],
        };
        assert_ne!(encode(&a), encode(&d));
        let signer = Signer::from_seed(&[7; 32]);
        let mut forged = sign(a.clone(), &signer);
        forged.job.kind = d.kind.clone();
        let checks = vec!["web".to_string()];
        let key = signer.public_hex();
        let now: Timestamp = "2026-12-08T22:30:00Z".parse().unwrap();
        assert_eq!(
            admit(&forged, view(&key, &checks), now).unwrap_err().code(),
            "bad_signature"
        );
        assert_eq!(admit(&sign(d, &signer), view(&key, &checks), now), Ok(()));
        let mut empty = job();
        empty.kind = JobKind::Rehearse { packages: vec![] };
        assert_eq!(
            admit(&sign(empty, &signer), view(&key, &checks), now)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }
}
