//! Schedule planning benchmark: 100,000 assets in 4 rings placed into their
//! maintenance windows over 90 days, with blackouts, soak times and three
//! findings per asset checked for SLA risk (goal: < 1 s).
//!
//! The windows are a realistic mix (nightly, weekend, Patch Tuesday + N,
//! last Friday of the month) in eight time zones; each asset has one or two of
//! them (staging and pilot hosts: nightly) and the blackouts of its group. Reported next to a baseline measured in
//! the same run: the naive planner that expands each asset's windows itself
//! (no shared expansion), run on a 5,000-asset sample and scaled per asset.
//!
//! It lives next to the planner it measures (`patchbay_core::plan`; it uses
//! nothing outside patchbay-core but `jiff` and `rand`).
//!
//! Run: `cargo bench -p patchbay-core --bench plan` (PATCHBAY_BENCH_SCALE=0.1 for a
//! quick run).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use patchbay_core::plan::{Blackout, PlanAsset, PlanFinding, PlanOptions, RingSpec, plan};
use patchbay_core::window::{Recurrence, Window};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn window(rule: &str, dtstart: &str, tz: &str, hours: i64, offset: i32) -> Window {
    let r: Recurrence = rule.parse().unwrap();
    let dt: DateTime = dtstart.parse().unwrap();
    Window::new(
        r,
        dt,
        TimeZone::get(tz).unwrap(),
        SignedDuration::from_hours(hours),
    )
    .unwrap()
    .with_offset_days(offset)
    .unwrap()
    .with_cutoff(SignedDuration::from_mins(30))
    .unwrap()
}

/// The naive baseline: expand this asset's windows, take the earliest
/// occurrence whose job start clears the blackouts (no rings, no sharing).
fn naive_one(
    a: &PlanAsset,
    windows: &[Window],
    blackouts: &[Blackout],
    o: &PlanOptions,
) -> Option<Timestamp> {
    let mut best: Option<Timestamp> = None;
    for &w in &a.windows {
        for occ in windows[w].occurrences_between(o.now, o.until) {
            let t = occ.start.max(o.now);
            let frozen = a
                .blackouts
                .iter()
                .any(|&b| blackouts[b].start <= t && t < blackouts[b].end);
            if !frozen && windows[w].accepts_job_at(&occ, t) {
                best = Some(best.map_or(t, |b: Timestamp| b.min(t)));
                break;
            }
        }
    }
    best
}

fn main() {
    let scale: f64 = std::env::var("PATCHBAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((100_000.0 * scale) as usize).max(100);
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
    let opts = PlanOptions {
        now,
        until: now + SignedDuration::from_hours(90 * 24),
        job_estimate: SignedDuration::from_mins(30),
        out_of_band: false,
    };
    let zones = [
        "UTC",
        "America/New_York",
        "America/Los_Angeles",
        "Europe/Berlin",
        "Europe/London",
        "Asia/Kolkata",
        "Asia/Tokyo",
        "Australia/Sydney",
    ];
    let mut windows = Vec::new();
    for tz in zones {
        windows.push(window("FREQ=DAILY", "2026-01-01T02:00", tz, 3, 0));
        windows.push(window(
            "FREQ=WEEKLY;BYDAY=SA,SU",
            "2026-01-03T22:00",
            tz,
            6,
            0,
        ));
        windows.push(window(
            "FREQ=MONTHLY;BYDAY=2TU",
            "2026-01-01T20:00",
            tz,
            4,
            2,
        ));
        windows.push(window(
            "FREQ=MONTHLY;BYDAY=-1FR",
            "2026-01-01T23:00",
            tz,
            5,
            0,
        ));
        windows.push(window(
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
            "2026-01-07T01:30",
            tz,
            2,
            0,
        ));
    }
    let blackouts: Vec<Blackout> = [
        ("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z"),
        ("2026-11-26T00:00:00Z", "2026-11-28T00:00:00Z"),
        ("2027-01-28T00:00:00Z", "2027-02-02T00:00:00Z"),
        ("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (s, e))| Blackout {
        id: format!("B{i}"),
        start: s.parse().unwrap(),
        end: e.parse().unwrap(),
        reason: "freeze".into(),
        owner: "cab".into(),
        approved_by: None,
    })
    .collect();
    let rings: Vec<RingSpec> = [
        ("ring0-staging", 24),
        ("ring1-pilot", 48),
        ("ring2-broad", 24),
        ("ring3-critical", 0),
    ]
    .iter()
    .map(|(name, h)| RingSpec {
        name: name.to_string(),
        soak: SignedDuration::from_hours(*h),
    })
    .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let assets: Vec<PlanAsset> = (0..n)
        .map(|i| {
            let r: f64 = rng.random();
            let ring = if r < 0.01 {
                0
            } else if r < 0.11 {
                1
            } else if r < 0.7 {
                2
            } else {
                3
            };
            let zone = rng.random_range(0..zones.len());
            // Staging and pilot hosts have nightly windows; the others any mix.
            let mut ws = if ring <= 1 {
                vec![zone * 5]
            } else {
                vec![zone * 5 + rng.random_range(0..5)]
            };
            if ring > 1 && rng.random_bool(0.3) {
                ws.push(zone * 5 + rng.random_range(0..5));
            }
            let mut bs = vec![0];
            if rng.random_bool(0.3) {
                bs.push(rng.random_range(1..blackouts.len()));
            }
            PlanAsset {
                name: format!("host-{i:06}"),
                ring: Some(ring),
                windows: ws,
                blackouts: bs,
                findings: (0..3)
                    .map(|k| PlanFinding {
                        id: format!("F{k}"),
                        due: now + SignedDuration::from_hours(rng.random_range(-48..60 * 24)),
                    })
                    .collect(),
            }
        })
        .collect();

    // Warm up once, then time.
    let p = plan(&rings, &windows, &blackouts, &assets, &opts);
    let planned = p.assets.iter().filter(|a| a.planned.is_ok()).count();
    let runs = 5;
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let p = plan(&rings, &windows, &blackouts, &assets, &opts);
            std::hint::black_box(&p);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let ms = median(times);

    let sample = 5_000.min(n);
    let t = Instant::now();
    let mut naive_planned = 0;
    for a in &assets[..sample] {
        naive_planned += naive_one(a, &windows, &blackouts, &opts).is_some() as usize;
    }
    let naive_ms_per_asset = t.elapsed().as_secs_f64() * 1000.0 / sample as f64;
    let naive_ms = naive_ms_per_asset * n as f64;
    std::hint::black_box(naive_planned);

    println!(
        "plan: {n} assets, 4 rings, {} windows in {} zones, {} blackouts, 90 days",
        windows.len(),
        zones.len(),
        blackouts.len()
    );
    println!(
        "  planned {planned} / {n}, {} findings at risk of {}",
        p.at_risk.len(),
        n * 3
    );
    for r in &p.rings {
        println!(
            "  {:<15} assets {:>6}  earliest {}  last {}",
            rings[r.ring].name,
            r.assets,
            r.earliest,
            r.last.map(|t| t.to_string()).unwrap_or_default()
        );
    }
    println!("  planner (median of {runs}):          {ms:>9.1} ms  (goal < 1000 ms)");
    println!(
        "  naive per-asset expansion (baseline): {naive_ms:>9.1} ms  (measured on {sample} assets, {:.4} ms/asset, no rings)",
        naive_ms_per_asset
    );
    println!(
        "  ratio planner / baseline:           {:>9.3}",
        ms / naive_ms
    );
}
