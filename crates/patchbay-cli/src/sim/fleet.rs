//! A simulated fleet that runs its jobs (`patchbay dev --sim N`): each
//! virtual host keeps checking in, admits the jobs it is leased exactly as a
//! real agent does ([`patchbay_core::job::admit`]: the signature under the
//! key it pinned at enrolment, its own asset, the deadline, known checks),
//! "runs" them on its in-memory inventory and reports the result at its next
//! check-in, with its new inventory. Nothing is installed anywhere: it exists
//! so that a deployment started on the dashboard visibly moves through its
//! rings, ring by ring, with live counts, gates and approvals.
//!
//! What a virtual host does with each kind of job:
//! - `apply`: sets each package to its pinned version (installs it when
//!   absent) and reports `succeeded` with what changed; a package whose
//!   pinned version ends in `~simfail` fails at `apply.install` instead (a
//!   way to show a halt on a simulated fleet);
//! - `rollback`: puts back the versions recorded before the job it undoes;
//! - `rehearse`: reports a simulation (a virtual host has no root to
//!   overlay) with what would change; `~simfail` fails it;
//! - `reboot`, `run_check`: succeed; `inventory`: sends the full inventory.
//!
//! The virtual hosts' credentials live in `sim-fleet.json` in the data
//! directory (mode 0600), so a restarted `patchbay dev` drives the same fleet.

use anyhow::Context;
use patchbay_client::Client;
use patchbay_core::inventory::Inventory;
use patchbay_core::job::{AgentView, JobKind, SignedJob, admit};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, InventoryPayload, JobOutcome, JobResult, VersionChange,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The health checks a virtual host knows (all pass).
pub const SIM_CHECKS: [&str; 3] = ["web", "ssh", "db"];

/// One virtual host: its credential, the server key it pinned, its inventory
/// and what it still has to report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimHost {
    /// Asset name.
    pub name: String,
    /// The agent credential the server issued at enrolment.
    pub secret: String,
    /// The server key pinned at enrolment (hex).
    pub server_key: Option<String>,
    /// The current inventory.
    pub inventory: Inventory,
    /// Results not yet acknowledged.
    #[serde(default)]
    pub results: Vec<JobResult>,
    /// Jobs leased and not yet run (their `not_before` lies ahead).
    #[serde(default)]
    pub waiting: Vec<SignedJob>,
    /// Versions each applied job replaced, by job key (for rollbacks).
    #[serde(default)]
    pub journal: BTreeMap<String, Vec<VersionChange>>,
    /// Whether the server holds the current inventory.
    #[serde(default)]
    pub synced: bool,
}

/// Saves the fleet (mode 0600: it holds agent credentials).
pub fn save(path: &Path, hosts: &[SimHost]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(hosts)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&body)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Loads a saved fleet.
pub fn load(path: &Path) -> anyhow::Result<Vec<SimHost>> {
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&body)
        .with_context(|| format!("{} is not a simulated fleet", path.display()))
}

/// Runs one job on a virtual host's inventory: the result it reports.
pub fn run_job(host: &mut SimHost, job: &SignedJob, now: jiff::Timestamp) -> JobResult {
    let checks: Vec<String> = SIM_CHECKS.iter().map(|s| s.to_string()).collect();
    let mut result = JobResult {
        key: job.job.key.clone(),
        outcome: JobOutcome::Succeeded,
        step: None,
        message: None,
        refusal: None,
        baseline: vec![],
        after: vec![],
        changed: vec![],
        reboot_required: false,
        finished_at: now.to_string(),
        privilege: vec![],
        snapshot: None,
        rehearsal: None,
    };
    if let Err(r) = admit(
        job,
        AgentView {
            jobs_enabled: true,
            pinned_key: host.server_key.as_deref(),
            asset: &host.name,
            checks: &checks,
        },
        now,
    ) {
        result.outcome = JobOutcome::Refused;
        result.refusal = Some(r.code().to_string());
        result.message = Some(r.to_string());
        return result;
    }
    match &job.job.kind {
        JobKind::Apply { packages } => {
            if let Some(p) = packages.iter().find(|p| p.version.ends_with("~simfail")) {
                result.outcome = JobOutcome::Failed;
                result.step = Some("apply.install".into());
                result.message = Some(format!(
                    "simulated failure installing {} {}",
                    p.name, p.version
                ));
                return result;
            }
            let mut changed = Vec::new();
            for pin in packages {
                let before = set_version(&mut host.inventory, &pin.name, Some(&pin.version));
                if before.as_deref() != Some(pin.version.as_str()) {
                    changed.push(VersionChange {
                        name: pin.name.clone(),
                        before,
                        after: Some(pin.version.clone()),
                    });
                }
            }
            host.journal.insert(job.job.key.clone(), changed.clone());
            result.changed = changed;
        }
        JobKind::Rollback { of } => {
            let undo = host.journal.remove(of).unwrap_or_default();
            for c in undo.iter().rev() {
                let now_at = set_version(&mut host.inventory, &c.name, c.before.as_deref());
                result.changed.push(VersionChange {
                    name: c.name.clone(),
                    before: now_at,
                    after: c.before.clone(),
                });
            }
            result.outcome = JobOutcome::RolledBack;
        }
        JobKind::Rehearse { packages } => {
            // A virtual host has no root to overlay: it says so, and what
            // the transaction would change (a `~simfail` pin fails it).
            let failing = packages.iter().find(|p| p.version.ends_with("~simfail"));
            let changed = packages
                .iter()
                .map(|p| VersionChange {
                    name: p.name.clone(),
                    before: host
                        .inventory
                        .packages
                        .iter()
                        .find(|x| x.name == p.name)
                        .map(|x| x.version.clone()),
                    after: Some(p.version.clone()),
                })
                .filter(|c| c.before != c.after)
                .collect();
            if let Some(p) = failing {
                result.outcome = JobOutcome::Failed;
                result.step = Some("rehearse.transaction".into());
                result.message = Some(format!(
                    "simulated failure installing {} {}",
                    p.name, p.version
                ));
            }
            result.rehearsal = Some(patchbay_proto::agent::Rehearsal {
                mode: patchbay_proto::agent::RehearsalMode::Simulation,
                mode_reason: Some("a simulated host (patchbay dev --sim) has no root".into()),
                changed,
                exit: Some(i32::from(failing.is_some())),
                scripts: vec![],
                conflicts: vec![],
                held: vec![],
                refused: vec![],
                privilege: vec![],
                verify: vec![],
                checks: vec![],
                services: None,
            });
        }
        JobKind::Reboot
        | JobKind::RunCheck { .. }
        | JobKind::VerifySnapshot { .. }
        | JobKind::Unsupported => {}
        JobKind::Inventory => host.synced = false,
    }
    if !result.changed.is_empty() {
        host.inventory.normalize();
        host.synced = false;
    }
    result
}

/// Sets (or, with `None`, removes) a package's version; returns the version
/// it had.
fn set_version(inv: &mut Inventory, name: &str, version: Option<&str>) -> Option<String> {
    let at = inv.packages.iter().position(|p| p.name == name);
    let before = at.map(|i| inv.packages[i].version.clone());
    match (at, version) {
        (Some(i), Some(v)) => inv.packages[i].version = v.to_string(),
        (Some(i), None) => {
            inv.packages.remove(i);
        }
        (None, Some(v)) => inv.packages.push(patchbay_core::inventory::Package {
            name: name.to_string(),
            version: v.to_string(),
            arch: "all".into(),
            source: None,
            source_version: None,
        }),
        (None, None) => {}
    }
    before
}

/// One check-in of a virtual host: sends its inventory when the server does
/// not hold it and its pending results, takes the acknowledgements, and
/// runs the jobs it was leased (their results go out at the next check-in).
/// Returns whether the host's saved state changed (a job leased or run, a
/// result acknowledged, the inventory stored).
pub fn checkin(url: &str, host: &mut SimHost) -> anyhow::Result<bool> {
    let c = Client::new(url, Some(host.secret.clone()), Duration::from_secs(30));
    let inventory = if host.synced {
        InventoryPayload::Unchanged
    } else {
        InventoryPayload::Full {
            inventory: host.inventory.clone(),
        }
    };
    let r: CheckinResponse = c.send(
        "POST",
        "/agent/v1/checkin",
        &CheckinRequest {
            protocol: AGENT_PROTOCOL_VERSION,
            inventory_hash: host.inventory.content_hash(),
            inventory,
            results: host.results.clone(),
            wait_secs: None,
            key_refusals: vec![],
        },
    )?;
    let synced = r.stored_hash == host.inventory.content_hash();
    let results_before = host.results.len();
    let mut changed = synced != host.synced || !r.jobs.is_empty();
    host.synced = synced;
    host.results.retain(|res| !r.acked.contains(&res.key));
    changed |= host.results.len() != results_before;
    host.waiting.extend(r.jobs);
    let now = jiff::Timestamp::now();
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut host.waiting)
        .into_iter()
        .partition(|j| j.job.not_before <= now);
    host.waiting = later;
    changed |= !due.is_empty();
    for job in due {
        let res = run_job(host, &job, now);
        host.results.push(res);
    }
    Ok(changed)
}

/// Drives the fleet until `stop`: every `interval`, each host checks in once
/// (errors are printed once per host and retried at the next round). The
/// fleet is saved to `save_to` after a round in which a check-in changed a
/// host (an idle fleet is not re-serialised every round).
pub fn drive(
    url: &str,
    mut hosts: Vec<SimHost>,
    interval: Duration,
    save_to: &Path,
    stop: &Arc<AtomicBool>,
) {
    let mut failing: std::collections::BTreeSet<String> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let mut changed = false;
        for h in hosts.iter_mut() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match checkin(url, h) {
                Ok(c) => {
                    changed |= c;
                    failing.remove(&h.name);
                }
                Err(e) => {
                    if failing.insert(h.name.clone()) {
                        eprintln!("simulated host {}: check-in failed: {e:#}", h.name);
                    }
                }
            }
        }
        if changed && let Err(e) = save(save_to, &hosts) {
            eprintln!("simulated fleet: {e:#}");
        }
        let mut slept = Duration::ZERO;
        while slept < interval && !stop.load(Ordering::Relaxed) {
            let step = Duration::from_millis(100).min(interval - slept);
            std::thread::sleep(step);
            slept += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::audit::Signer;
    use patchbay_core::job::{Job, PackagePin, encode};

    fn host(signer: &Signer) -> SimHost {
        let mut inventory = Inventory::default();
        inventory.packages.push(patchbay_core::inventory::Package {
            name: "curl".into(),
            version: "7.88.1-10+deb12u5".into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
        });
        SimHost {
            name: "sim-00000".into(),
            secret: "s".into(),
            server_key: Some(signer.public_hex()),
            inventory,
            results: vec![],
            waiting: vec![],
            journal: Default::default(),
            synced: true,
        }
    }

    fn signed(signer: &Signer, asset: &str, key: &str, kind: JobKind) -> SignedJob {
        let job = Job {
            deployment: "DEP-2026-12-1".into(),
            key: key.into(),
            asset: asset.into(),
            not_before: jiff::Timestamp::UNIX_EPOCH,
            deadline: jiff::Timestamp::MAX,
            kind,
            checks: vec!["web".into()],
        };
        let signature = signer.sign_bytes(&encode(&job));
        SignedJob { job, signature }
    }

    #[test]
    fn apply_then_rollback_and_refusals() {
        let signer = Signer::from_seed(&[7; 32]);
        let mut h = host(&signer);
        let apply = JobKind::Apply {
            packages: vec![PackagePin {
                name: "curl".into(),
                version: "7.88.1-10+deb12u8".into(),
            }],
        };
        let now = jiff::Timestamp::now();
        let r = run_job(
            &mut h,
            &signed(&signer, "sim-00000", "k1", apply.clone()),
            now,
        );
        assert_eq!(r.outcome, JobOutcome::Succeeded);
        assert_eq!(h.inventory.packages[0].version, "7.88.1-10+deb12u8");
        assert!(!h.synced);
        let r = run_job(
            &mut h,
            &signed(
                &signer,
                "sim-00000",
                "k1/rollback",
                JobKind::Rollback { of: "k1".into() },
            ),
            now,
        );
        assert_eq!(r.outcome, JobOutcome::RolledBack);
        assert_eq!(h.inventory.packages[0].version, "7.88.1-10+deb12u5");
        // Another host's job, and a job signed by another key: refused, nothing changes.
        let r = run_job(
            &mut h,
            &signed(&signer, "sim-00001", "k2", apply.clone()),
            now,
        );
        assert_eq!(r.refusal.as_deref(), Some("wrong_asset"));
        let other = Signer::from_seed(&[9; 32]);
        let r = run_job(&mut h, &signed(&other, "sim-00000", "k3", apply), now);
        assert_eq!(r.refusal.as_deref(), Some("bad_signature"));
        assert_eq!(h.inventory.packages[0].version, "7.88.1-10+deb12u5");
        // A simulated failure.
        let fail = JobKind::Apply {
            packages: vec![PackagePin {
                name: "curl".into(),
                version: "7.88.1-10+deb12u9~simfail".into(),
            }],
        };
        let r = run_job(&mut h, &signed(&signer, "sim-00000", "k4", fail), now);
        assert_eq!(r.outcome, JobOutcome::Failed);
        assert_eq!(h.inventory.packages[0].version, "7.88.1-10+deb12u5");
    }
}
