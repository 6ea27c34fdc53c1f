//! Compliance report benchmark: 10,000 assets × 200 findings (2,000,000
//! findings) with 200 exceptions, as of a date (goal: < 1 s).
//!
//! Measures `patchbay_core::report::compliance` (per asset, owner and group)
//! and, in the same run, SLA adherence and time to patch over the same
//! history, against a baseline: the same compliance computation with a
//! linear scan of all exceptions per finding instead of the per-asset index.
//! Then the rollout-outcomes report (`deployments`) over the same findings
//! with 2,000 deployments × 50 jobs (100,000 jobs), a third of them fixing a
//! package with findings on their host.
//!
//! Pure core (`patchbay_core::{report, exception}`), so it lives in patchbay-core.
//!
//! Run: `cargo bench -p patchbay-core --bench report` (PATCHBAY_BENCH_SCALE=0.1 for
//! a quick run).

use jiff::{SignedDuration, Timestamp};
use patchbay_core::exception::{Exception, FindingFacts, Scope, excepting};
use patchbay_core::report::{
    AssetRecord, DeploymentRecord, FindingRecord, History, JobRecord, compliance, deployments,
    sla_adherence, time_to_patch,
};
use patchbay_core::risk::Tier;
use patchbay_core::rollout::JobState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let scale: f64 = std::env::var("PATCHBAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n_assets = ((10_000.0 * scale) as usize).max(10);
    let per = 200;
    let as_of: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let owners = ["web-team", "data", "platform", "payments", "edge", ""];
    let groups = ["web-prod", "db", "staging", "crown-jewels", "pilot", "edge"];
    let assets: Vec<AssetRecord> = (0..n_assets)
        .map(|i| AssetRecord {
            name: format!("host-{i:05}"),
            owner: owners[i % owners.len()].into(),
            groups: vec![
                groups[i % groups.len()].into(),
                groups[(i / 7) % groups.len()].into(),
            ],
            managed: i % 10 != 0,
            created_at: as_of - SignedDuration::from_hours(24 * 400),
            last_seen: Some(as_of - SignedDuration::from_hours(rng.random_range(0..72))),
        })
        .collect();
    let mut findings = Vec::with_capacity(n_assets * per);
    for a in 0..n_assets {
        for k in 0..per {
            let first = as_of - SignedDuration::from_hours(rng.random_range(0..24 * 300));
            let tier = Tier::ALL[rng.random_range(0..5)];
            let resolved = rng
                .random_bool(0.6)
                .then(|| first + SignedDuration::from_hours(rng.random_range(1..24 * 60)));
            findings.push(FindingRecord {
                asset: a,
                advisory: format!("DSA-{}", k % 500),
                cves: vec![format!("CVE-2026-{}", k % 500)],
                package: format!("pkg{}", k % 300),
                source_package: format!("src{}", k % 250),
                tier,
                first_seen: first,
                resolved_at: resolved,
                due: first + SignedDuration::from_hours(24 * [3, 7, 14, 30, 90][tier.index()]),
                fixable: true,
            });
        }
    }
    let exceptions: Vec<Exception> = (0..200)
        .map(|i| Exception {
            id: format!("EXC-2026-{i:04}"),
            advisory: format!("CVE-2026-{}", i % 500),
            package: String::new(),
            scope: if i % 4 == 0 {
                Scope::Group(groups[i % groups.len()].into())
            } else {
                Scope::Asset(format!("host-{:05}", (i * 37) % n_assets))
            },
            created_at: as_of - SignedDuration::from_hours(24 * 30),
            expires_at: as_of + SignedDuration::from_hours(24 * 30),
            revoked_at: None,
        })
        .collect();
    let n_deps = ((2_000.0 * scale) as usize).max(10);
    let deps: Vec<DeploymentRecord> = (0..n_deps)
        .map(|d| {
            let created = as_of - SignedDuration::from_hours(rng.random_range(24..24 * 300));
            DeploymentRecord {
                id: format!("DEP-{d:05}"),
                kind: "oob".into(),
                state: "completed".into(),
                created_at: created,
                state_at: Some(created + SignedDuration::from_hours(20)),
                jobs: (0..50)
                    .map(|k| {
                        let leased = created + SignedDuration::from_mins(rng.random_range(1..600));
                        let result = leased + SignedDuration::from_secs(rng.random_range(30..3600));
                        let roll = rng.random_range(0..100);
                        let (state, failed) = match roll {
                            0..80 => (JobState::Succeeded, false),
                            80..90 => (JobState::RolledBack, true),
                            90..95 => (JobState::Failed, true),
                            _ => (JobState::Skipped, false),
                        };
                        JobRecord {
                            host: format!("host-{:05}", (d * 50 + k) % n_assets),
                            packages: vec![format!("pkg{}", rng.random_range(0..900))],
                            state,
                            failed,
                            leased_at: (state != JobState::Skipped).then_some(leased),
                            result_at: (state != JobState::Skipped).then_some(result),
                            finished_at: Some(result + SignedDuration::from_secs(5)),
                            rollback_at: (state == JobState::RolledBack)
                                .then(|| result + SignedDuration::from_mins(10)),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let h = History {
        assets,
        findings,
        exceptions,
        deployments: deps,
    };
    let total = h.findings.len();

    let r = compliance(&h, as_of);
    let time = |f: &dyn Fn()| -> f64 {
        median(
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect(),
        )
    };
    let c_ms = time(&|| {
        std::hint::black_box(compliance(&h, as_of));
    });
    let s_ms = time(&|| {
        std::hint::black_box(sla_adherence(&h, as_of));
    });
    let t_ms = time(&|| {
        std::hint::black_box(time_to_patch(&h, as_of));
    });
    let d = deployments(&h, as_of);
    let d_ms = time(&|| {
        std::hint::black_box(deployments(&h, as_of));
    });
    // Baseline: per finding, scan every exception.
    let b_ms = time(&|| {
        let mut excepted = 0u64;
        let mut overdue = 0u64;
        for f in &h.findings {
            if f.first_seen > as_of || f.resolved_at.is_some_and(|r| r <= as_of) {
                continue;
            }
            let a = &h.assets[f.asset];
            let facts = FindingFacts {
                asset: &a.name,
                groups: &a.groups,
                advisory: &f.advisory,
                cves: &f.cves,
                package: &f.package,
                source_package: &f.source_package,
            };
            if excepting(&h.exceptions, &facts, as_of).is_some() {
                excepted += 1;
            } else if f.due < as_of {
                overdue += 1;
            }
        }
        std::hint::black_box((excepted, overdue));
    });
    println!(
        "reports: {n_assets} assets × {per} findings = {total} findings, {} exceptions",
        h.exceptions.len()
    );
    println!(
        "  fleet: {} of {} assets compliant; findings: {} within SLA, {} overdue, {} excepted, {} patched",
        r.total.compliant_assets,
        r.total.assets,
        r.total.findings.within_sla,
        r.total.findings.overdue,
        r.total.findings.excepted,
        r.total.findings.patched
    );
    println!("  compliance (asset, owner, group), median of 5: {c_ms:>8.1} ms  (goal < 1000 ms)");
    println!("  SLA adherence:                                 {s_ms:>8.1} ms");
    println!("  time to patch:                                 {t_ms:>8.1} ms");
    println!(
        "  baseline: states with a linear exception scan:  {b_ms:>8.1} ms  (ratio compliance / baseline {:.2})",
        c_ms / b_ms
    );
    println!(
        "  rollout outcomes: {} deployments, {} jobs ({} weeks), success {:?} %, rollback {:?} %, {} findings patched through jobs",
        d.deployments.len(),
        d.all.jobs,
        d.by_week.len(),
        d.all.success_pct,
        d.all.rollback_pct,
        d.time_to_patch.count
    );
    println!("  deployments report, median of 5:               {d_ms:>8.1} ms");
}
