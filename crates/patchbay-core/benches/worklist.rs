//! Worklist ranking benchmark: 10,000 assets × 200 findings (2,000,000 findings)
//! assessed by the risk model and ranked (overdue first, then tier, due, score).
//!
//! Measures the pure core of `GET /api/v1/worklist` as the service runs it: every
//! finding classified (tier, score, due), the top 1,000 selected and sorted, and
//! reasons built for those lines only. Reported next to two baselines measured in
//! the same run: the full sort alone over precomputed keys, and the naive path
//! (full assessment with reasons for every finding, then a full sort).
//!
//! Pure core (`patchbay_core::risk`), so it lives in patchbay-core.
//!
//! Run: `cargo bench -p patchbay-core --bench worklist` (PATCHBAY_BENCH_SCALE=0.1 for a
//! quick run).

use jiff::{SignedDuration, Timestamp};
use patchbay_core::asset::{BusinessImpact, Exposure};
use patchbay_core::risk::{KevInfo, RiskInput, RiskModel};
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
    let assets = ((10_000.0 * scale) as usize).max(10);
    let per_asset = 200;
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let impacts = [
        BusinessImpact::Critical,
        BusinessImpact::High,
        BusinessImpact::Medium,
        BusinessImpact::Low,
    ];
    let exposures = [
        Exposure::InternetFacing,
        Exposure::PrivilegedData,
        Exposure::Internal,
        Exposure::Isolated,
    ];
    let kev_due: jiff::civil::Date = "2026-12-01".parse().unwrap();
    let mut inputs = Vec::with_capacity(assets * per_asset);
    for _ in 0..assets {
        let impact = impacts[rng.random_range(0..4)];
        let exposure = exposures[rng.random_range(0..4)];
        for _ in 0..per_asset {
            inputs.push(RiskInput {
                cvss: rng
                    .random_bool(0.8)
                    .then(|| (rng.random_range(0..=100) as f64) / 10.0),
                cvss_source: None,
                severity_hint: rng.random_bool(0.1).then(|| "high".to_string()),
                severity_source: None,
                epss: rng.random_bool(0.7).then(|| rng.random::<f64>()),
                kev: rng
                    .random_bool(0.01)
                    .then_some(KevInfo { due_date: kev_due }),
                business_impact: impact,
                exposure,
                first_seen: now - SignedDuration::from_hours(rng.random_range(0..24 * 120)),
                published: None,
            });
        }
    }
    let model = RiskModel::default();
    let n = inputs.len();
    let runs = 5;
    let limit = 1000;
    let mut ours = Vec::new();
    let mut naive = Vec::new();
    let mut keys_only = Vec::new();
    type Key = (bool, patchbay_core::risk::Tier, Timestamp, f64, usize);
    let order = |x: &Key, y: &Key| {
        (x.0, x.1, x.2)
            .cmp(&(y.0, y.1, y.2))
            .then(y.3.total_cmp(&x.3))
            .then(x.4.cmp(&y.4))
    };
    for run in 0..runs {
        let t = Instant::now();
        let mut keys: Vec<Key> = inputs
            .iter()
            .enumerate()
            .map(|(i, inp)| {
                let c = model.classify(inp);
                (c.due >= now, c.tier, c.due, c.score, i)
            })
            .collect();
        keys.select_nth_unstable_by(limit - 1, order);
        keys.truncate(limit);
        keys.sort_by(order);
        let lines: Vec<_> = keys.iter().map(|k| model.assess(&inputs[k.4])).collect();
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&lines);

        if run < 2 {
            let t = Instant::now();
            let mut all: Vec<_> = inputs
                .iter()
                .enumerate()
                .map(|(i, inp)| {
                    let a = model.assess(inp);
                    ((!a.is_overdue(now), a.tier, a.due, a.score, i), a)
                })
                .collect();
            all.sort_by(|x, y| order(&x.0, &y.0));
            naive.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(&all);
        }

        let mut keys: Vec<Key> = inputs
            .iter()
            .enumerate()
            .map(|(i, inp)| {
                let c = model.classify(inp);
                (c.due >= now, c.tier, c.due, c.score, i)
            })
            .collect();
        keys.reverse();
        let t = Instant::now();
        keys.sort_by(order);
        keys_only.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&keys);
    }
    let f = median(ours);
    let nv = median(naive);
    let k = median(keys_only);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.to_string())
        })
        .unwrap_or_default();
    println!(
        "worklist ranking: {assets} assets x {per_asset} findings = {n} findings, top {limit} returned"
    );
    println!(
        "  classify all + top {limit} + reasons: {f:8.1} ms (median of {runs})  goal < 200 ms: {}",
        if f < 200.0 { "met" } else { "NOT met" }
    );
    println!(
        "  baseline: full sort of precomputed keys: {k:8.1} ms  (ratio {:.2})",
        f / k
    );
    println!(
        "  baseline: naive (reasons for all, full sort): {nv:8.1} ms  (ours is {:.1}x faster)",
        nv / f
    );
    println!("  per finding: {:.0} ns", f * 1e6 / n as f64);
    println!("  peak memory: {rss}");
}
