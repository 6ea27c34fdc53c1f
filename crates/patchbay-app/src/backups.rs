//! Backup verification on the server side (issue 18, item 6;
//! docs/backup-verification.md, ADR 0020).
//!
//! A deployment's ring may ask for its snapshots to be verified
//! (`verify_snapshots`: `N` hosts or `N%` of those whose snapshot was taken;
//! default off). When every job of such a ring has ended, the rollout
//! driver — in its step's transaction — picks a **deterministic sample**:
//! the ring's succeeded hosts whose apply reported a snapshot identity
//! (`JobResult.snapshot`, the last line of the agent's own `hooks.snapshot`),
//! ordered by SHA-256 of `DEPLOYMENT/HOST` (stable across runs and
//! replicas, not the ring's order, so the same hosts are not always the ones
//! checked across deployments), the first `N` (a percentage rounds up: 10%
//! of 3 is 1). Each gets a signed `verify_snapshot` job naming its snapshot
//! (`DEP/verify/HOST`) and a `pending` row in `backup_verifications`. The
//! agent runs the `hooks.snapshot_verify` configured on the host — the
//! server sends an identity, never a command — and its result (exit 0 =
//! verified; the hook's output excerpt in the message) is taken in when the
//! check-in stores it ([`take_result`]).

use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::rollout::{JobState, Share};
use patchbay_proto::agent::{JobOutcome, JobResult};
use patchbay_store::BackupVerificationRow;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A deployment's backup verification policy, kept in its stored rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Per ring name: `N` or `N%` of its hosts with a snapshot.
    #[serde(default)]
    pub rings: BTreeMap<String, String>,
    /// Rings already sampled.
    #[serde(default)]
    pub sampled: BTreeSet<String>,
}

/// The `verify_snapshot` job key of `host` in `deployment`.
pub fn verify_key(deployment: &str, host: &str) -> String {
    format!("{deployment}/verify/{host}")
}

/// Whether `key` is a backup verification's.
pub fn is_verification(key: &str) -> bool {
    key.contains("/verify/")
}

/// The policy of a deployment request: each ring's `verify_snapshots`,
/// checked (`N` or `N%`, at most 100%).
pub fn policy_of(spec: &patchbay_proto::api::DeploymentSpec) -> Result<Policy, AppError> {
    let mut p = Policy::default();
    for r in &spec.rings {
        if let Some(v) = &r.verify_snapshots {
            Share::parse(v).map_err(|e| {
                AppError::invalid(format!(
                    "rings: {}: verify_snapshots: {v:?} is not N or N% ({e:?})",
                    r.name
                ))
            })?;
            p.rings.insert(r.name.clone(), v.trim().to_owned());
        }
    }
    Ok(p)
}

/// The sample: of `candidates` (hosts), the first `n` by SHA-256 of
/// `DEPLOYMENT/HOST`.
pub fn sample(deployment: &str, candidates: &[String], share: Share) -> Vec<String> {
    let n = share.of(candidates.len(), true).min(candidates.len());
    let mut keyed: Vec<(String, &String)> = candidates
        .iter()
        .map(|h| {
            (
                hex::encode(Sha256::digest(format!("{deployment}/{h}").as_bytes())),
                h,
            )
        })
        .collect();
    keyed.sort();
    let mut out: Vec<String> = keyed.into_iter().take(n).map(|(_, h)| h.clone()).collect();
    out.sort();
    out
}

/// A verification the driver's step must ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The ring.
    pub ring: String,
    /// The host.
    pub host: String,
    /// Its snapshot.
    pub snapshot: String,
    /// Its job's run timeout (the verification's deadline from now).
    pub timeout: jiff::SignedDuration,
}

/// The verifications due now: for every ring with a policy, not sampled
/// yet, whose jobs have all ended, its sample among its succeeded hosts
/// whose apply result (`results`, by job key) named a snapshot; the ring is
/// marked sampled.
pub fn due(
    rollout: &patchbay_core::rollout::Rollout,
    policy: &mut Policy,
    results: &BTreeMap<String, JobResult>,
) -> Vec<Due> {
    let mut out = Vec::new();
    for ring in &rollout.rings {
        let name = &ring.spec.name;
        let Some(share) = policy.rings.get(name).cloned() else {
            continue;
        };
        if policy.sampled.contains(name) || !ring.jobs.iter().all(|j| j.state.is_terminal()) {
            continue;
        }
        policy.sampled.insert(name.clone());
        let Ok(share) = Share::parse(&share) else {
            continue;
        };
        let mut snapshots = BTreeMap::new();
        for j in &ring.jobs {
            if j.state != JobState::Succeeded {
                continue;
            }
            if let Some(s) = results.get(&j.spec.key).and_then(|r| r.snapshot.clone()) {
                snapshots.insert(j.spec.host.clone(), (s, j.spec.run_timeout));
            }
        }
        let candidates: Vec<String> = snapshots.keys().cloned().collect();
        for host in sample(&rollout.id, &candidates, share) {
            let (snapshot, timeout) = snapshots[&host].clone();
            out.push(Due {
                ring: name.clone(),
                host,
                snapshot,
                timeout,
            });
        }
    }
    out
}

/// The pending row of a verification asked at `now`.
pub fn pending_row(deployment: &str, d: &Due, now: Timestamp) -> BackupVerificationRow {
    BackupVerificationRow {
        key: verify_key(deployment, &d.host),
        deployment: deployment.to_owned(),
        ring: d.ring.clone(),
        host: d.host.clone(),
        snapshot: d.snapshot.clone(),
        requested_at: now,
        verdict: "pending".into(),
        excerpt: String::new(),
        result_at: None,
    }
}

impl App {
    /// Backup verifications asked in `[from, to)` (any role).
    pub async fn backup_verifications(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::BackupVerificationOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        if from >= to {
            return Err(AppError::invalid(format!(
                "from: the period's start ({from}) must be before its end ({to})"
            )));
        }
        let mut tx = self.store.read().await?;
        Ok(tx
            .backup_verifications_between(from, to)
            .await?
            .into_iter()
            .map(out)
            .collect())
    }
}

/// A stored verification as the API shows it.
pub fn out(r: BackupVerificationRow) -> patchbay_proto::api::BackupVerificationOut {
    patchbay_proto::api::BackupVerificationOut {
        deployment: r.deployment,
        ring: r.ring,
        host: r.host,
        snapshot: r.snapshot,
        requested_at: fmt_ts(r.requested_at),
        verdict: r.verdict,
        excerpt: r.excerpt,
        result_at: r.result_at.map(fmt_ts),
    }
}

/// In the check-in's transaction, when a result is stored for the first
/// time: a verification's verdict (`verified` when the agent's hook exited
/// 0, else `failed`, its message — exit status and the hook's output
/// excerpt — kept, at most 4,000 characters).
pub(crate) async fn take_result(
    tx: &mut crate::change::Change<'_>,
    r: &JobResult,
    now: Timestamp,
) -> Result<(), AppError> {
    if !is_verification(&r.key) {
        return Ok(());
    }
    let verdict = if r.outcome == JobOutcome::Succeeded {
        "verified"
    } else {
        "failed"
    };
    let mut excerpt: String = r.message.clone().unwrap_or_default();
    if let Some(code) = &r.refusal {
        excerpt = format!("refused ({code}): {excerpt}");
    }
    if excerpt.chars().count() > 4000 {
        excerpt = excerpt.chars().take(4000).collect();
    }
    tx.set_backup_verdict(&r.key, verdict, &excerpt, now)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_deterministic_sized_and_independent_of_order() {
        let hosts: Vec<String> = (1..=10).map(|i| format!("h{i}")).collect();
        let a = sample("DEP-1", &hosts, Share::Count(3));
        assert_eq!(a.len(), 3);
        let mut rev = hosts.clone();
        rev.reverse();
        assert_eq!(sample("DEP-1", &rev, Share::Count(3)), a);
        assert_eq!(sample("DEP-1", &hosts, Share::Percent(25.0)).len(), 3);
        assert_eq!(sample("DEP-1", &hosts, Share::Count(50)).len(), 10);
        assert!(sample("DEP-1", &hosts, Share::Count(0)).is_empty());
        // Another deployment samples otherwise (the same hosts are not
        // always the checked ones).
        let others: BTreeSet<Vec<String>> = (1..=8)
            .map(|d| sample(&format!("DEP-{d}"), &hosts, Share::Count(3)))
            .collect();
        assert!(others.len() > 1, "{others:?}");
    }
}
