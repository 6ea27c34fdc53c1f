//! Assessment speed — one host, simulated fleets, and the incremental re-assessment
//! of a host that changed — each figure next to a baseline measured in the same run.
//!
//! 1. **Advisories**: everything staged in `fixtures/feeds/osv` (the full
//!    Debian-12-derived zip, its subset, AlmaLinux 9, Alpine v3.10, Ubuntu and
//!    Go samples) is read with [`patchbay_feeds::source::read_path`], turned into
//!    store rows ([`patchbay_app::feeds::advisory_row`] +
//!    [`patchbay_app::feeds::merge_rows`], as an import stores them) and indexed
//!    ([`patchbay_app::assess::build_index`]). Reading and indexing are timed apart.
//! 2. **One host × 2,000 packages**: the real Debian 12 host database
//!    (`fixtures/inventories/debian12/host-ci-image.dpkg-status`, 707 packages)
//!    topped up with packages built from the Debian sources the advisories name
//!    (see [`big_host`]). *Cold* is a new [`Assessor`] (empty cache), *warm* the
//!    same host again with the same one. Baseline: a **naive matcher** that scans
//!    every `Debian:12` entry for each package and calls
//!    [`patchbay_version::osv::evaluate`] on those whose name matches — no index,
//!    no cache. Both must report the same findings. Where `debsecan` (Debian's own
//!    tool) and `python3-apt` are installed, it runs on the same host (written as
//!    a dpkg status file) and the same advisories (written in debsecan's data
//!    format, read through `--source file://…`), in-process (its own functions,
//!    timed by a small Python harness) and as a whole process, next to
//!    `patchbay scan`; both must report the same (advisory, package) pairs.
//! 3. **Fleets** of 10,000 and 50,000 simulated hosts
//!    ([`patchbay_cli::sim::Templates`]) assessed with one shared [`Assessor`]
//!    (the fleet-wide cache of (ecosystem, package, version) results). Baseline:
//!    a fresh [`Assessor`] per host on a 1,000-host sample. Host generation is
//!    not timed.
//! 4. **Incremental**: the real service path. An [`App`] from
//!    [`patchbay_server::prepare`] on a fresh database (SQLite; PostgreSQL when
//!    `PATCHBAY_TEST_PG_URL` is set, as `scripts/with-postgres` does), the
//!    advisories imported with [`App::import_advisories`], 200 simulated hosts
//!    plus the Debian 12 host and the 2,000-package host enrolled and checked in
//!    through [`App::enroll`] / [`App::checkin`]; then the timed check-ins of one
//!    host whose inventory changed by one package version (a `Delta` payload; the
//!    check-in re-assesses the asset inside its transaction) — a package no
//!    advisory names, and the package with the most findings (see [`Change`]) —
//!    and one
//!    [`App::assess_fleet`] after a feed change. Baseline: the same on a
//!    database with **no advisories** (the check-in without matching).
//!
//! Run it (release build; the PostgreSQL server is throwaway):
//!
//! ```text
//! scripts/with-postgres cargo bench -p patchbay --bench assess
//! ```
//!
//! It stays in the CLI package although most of it measures patchbay-core and
//! patchbay-app: scenario 2 times the whole `patchbay scan` process (the binary,
//! `CARGO_BIN_EXE_patchbay`, which Cargo gives only to the package that builds
//! it) next to debsecan's, and the fleets come from the CLI's simulator
//! ([`patchbay_cli::sim::Templates`]).
//!
//! Knobs: `PATCHBAY_BENCH_SCALE` (float, default 1.0) multiplies the host counts
//! (fleets, the fresh-assessor sample, the service-path fleet), e.g. `0.05` for a
//! quick smoke run; `PATCHBAY_BENCH_REQUIRE_PG=1` makes a missing PostgreSQL an
//! error instead of a loud skip. The latest figures are in `docs/benchmarks.md`.

/// The allocator the `patchbay` binary ships with (ADR 0025), so that this
/// measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, anyhow, bail};
use patchbay_app::AgentCaller;
use patchbay_app::assess::{StoredAffected, build_index};
use patchbay_app::feeds::{advisory_row, merge_rows};
use patchbay_app::{App, AppConfig, AppError, RequestCtx};
use patchbay_cli::sim::Templates;
use patchbay_core::assess::{AffectedEntry, Assessor, Index, Target, match_key, target_for};
use patchbay_core::inventory::{
    self, HostFacts, Inventory, OsRelease, Package, PackageDelta, PackageFormat, dpkg,
};
use patchbay_feeds::osv::Advisory;
use patchbay_feeds::source::{Collect, read_path};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{CheckinRequest, EnrollRequest, InventoryPayload};
use patchbay_proto::api::CreateEnrollToken;
use patchbay_server::Settings;
use patchbay_store::AdvisoryRow;
use patchbay_version::Scheme;
use patchbay_version::osv::{Event, evaluate};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Packages of the one-host scenario.
const HOST_PACKAGES: usize = 2_000;
/// Repetitions (medians are reported).
const COLD_REPS: usize = 9;
const WARM_REPS: usize = 31;
const NAIVE_REPS: usize = 5;
const INDEX_REPS: usize = 5;
/// Fleet sizes at scale 1.
const FLEETS: [usize; 2] = [10_000, 50_000];
/// Hosts assessed with a fresh assessor each (the no-dedupe baseline), at scale 1.
const FRESH_SAMPLE: usize = 1_000;
/// Hosts generated, then assessed, per batch (generation is not timed).
const BATCH: usize = 500;
/// Simulated hosts enrolled on the service path, at scale 1.
const SERVICE_HOSTS: usize = 200;
/// Timed one-package check-ins per host, change and backend: the Debian 12
/// host, and the 2,000-package host (whose check-ins take seconds).
const INCR_CHECKINS: usize = 21;
const INCR_CHECKINS_BIG: usize = 5;
/// Whole-process runs of debsecan and `patchbay scan`.
const PROCESS_REPS: usize = 5;
const SEED: u64 = 42;
const DEB12_HOST: &str =
    include_str!("../../../fixtures/inventories/debian12/host-ci-image.dpkg-status");

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("assess bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn app_err(e: AppError) -> anyhow::Error {
    anyhow!("{:?}: {}", e.code, e.message)
}

fn ms(secs: f64) -> f64 {
    secs * 1e3
}

/// Median (and min, max) of seconds.
#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(xs: &[f64]) -> Self {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    fn ms(&self) -> String {
        format!(
            "{:.2} ms (min {:.2}, max {:.2})",
            ms(self.median),
            ms(self.min),
            ms(self.max)
        )
    }
}

fn timed<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

/// `/proc/loadavg`: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn status_kb(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak RSS (VmHWM, cumulative since the process started) and current RSS.
fn peak_rss() -> String {
    let mb =
        |k: Option<u64>| k.map_or_else(|| "?".into(), |k| format!("{:.0} MB", k as f64 / 1024.0));
    format!(
        "{} (VmHWM; now {} VmRSS)",
        mb(status_kb("VmHWM:")),
        mb(status_kb("VmRSS:"))
    )
}

fn print_goals(goals: &[Goal]) {
    println!("\n## Goals");
    println!("| measure | result | goal | met |");
    println!("|---|---:|---|---|");
    for g in goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        println!("| {} | {} | {} | {met} |", g.what, g.value, g.goal);
    }
}

/// One line of the closing goals table.
struct Goal {
    what: String,
    value: String,
    goal: &'static str,
    met: Option<bool>,
}

fn run() -> anyhow::Result<()> {
    let scale = match std::env::var("PATCHBAY_BENCH_SCALE") {
        Ok(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| anyhow!("PATCHBAY_BENCH_SCALE={s:?} is not a positive number"))?,
        Err(_) => 1.0,
    };
    let scaled = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let require_pg = std::env::var("PATCHBAY_BENCH_REQUIRE_PG").is_ok_and(|v| v.trim() == "1");
    let pg = std::env::var("PATCHBAY_TEST_PG_URL").is_ok_and(|v| !v.trim().is_empty());
    const SKIP: &str =
        "postgres: SKIPPED (PATCHBAY_TEST_PG_URL not set; run via scripts/with-postgres)";
    if !pg {
        eprintln!("\n*** {SKIP} ***\n");
        if require_pg {
            bail!("PATCHBAY_BENCH_REQUIRE_PG=1 but PostgreSQL is not available");
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "assess bench: scale {scale}, {cores} cores (matching runs on one thread); load average {}",
        loadavg()
    );
    let mut goals = Vec::new();

    // ---- 1. advisories -------------------------------------------------------
    let osv_dir = fixtures().join("feeds/osv");
    // Resident memory before and after each step: at the start of the process
    // the heap only grows, so the differences approximate each structure's size.
    let rss0 = status_kb("VmRSS:").unwrap_or(0);
    let (read_secs, (collected, summary)) = timed(|| {
        let mut c = Collect::default();
        let s = read_path(&osv_dir, &mut c);
        (c, s)
    });
    let summary = summary.with_context(|| format!("reading {}", osv_dir.display()))?;
    let rss1 = status_kb("VmRSS:").unwrap_or(0);
    let (rows_secs, rows) = timed(|| merge_rows(collected.advisories.iter().map(advisory_row)));
    let rss2 = status_kb("VmRSS:").unwrap_or(0);
    let (s, mut index) = timed(|| build_index(&rows));
    let rss3 = status_kb("VmRSS:").unwrap_or(0);
    let mut builds = vec![s];
    for _ in 1..INDEX_REPS {
        let (s, i) = timed(|| build_index(&rows));
        builds.push(s);
        index = i;
    }
    let build = Stat::of(&builds);
    let keys = affected_keys(&rows);
    let mut per_eco: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (eco, pkg) in &keys {
        let e = per_eco.entry(eco.as_str()).or_default();
        e.0 += 1;
        e.1 += index.entries(eco, pkg).len();
    }
    println!("\n## Advisories ({})", osv_dir.display());
    println!(
        "read {} OSV records from {} files ({} skipped) in {:.0} ms; {} store rows (merged by id) in {:.0} ms; \
         index of {} advisories built in {} ",
        summary.osv.records,
        summary.osv.files,
        summary.osv.skipped,
        ms(read_secs),
        rows.len(),
        ms(rows_secs),
        index.len(),
        build.ms()
    );
    for (eco, (pkgs, entries)) in &per_eco {
        println!("  {eco:<16} {pkgs:>5} packages {entries:>6} affected entries");
    }
    let mb = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1024.0;
    println!(
        "resident memory added: parsed OSV records {:.0} MB, store rows {:.0} MB, index {:.0} MB",
        mb(rss0, rss1),
        mb(rss1, rss2),
        mb(rss2, rss3)
    );
    println!("peak RSS after loading: {}", peak_rss());

    // ---- 2a. whole processes: scan vs debsecan, and the server's memory ---
    if let Some(s) = scan_processes(&index, &keys)? {
        print_scan_processes(&s, &mut goals);
    }
    let (before, rss, hwm) = server_rss().context("measuring patchbay serve's memory")?;
    println!(
        "\n## patchbay serve with every staged advisory loaded (fixtures/feeds imported, \
         index built by a worklist request): VmRSS {:.0} MB (before the index: {:.0} MB), \
         peak VmHWM {:.0} MB",
        rss as f64 / 1024.0,
        before as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    goals.push(Goal {
        what: "patchbay serve RSS, all staged advisories loaded".into(),
        value: format!(
            "{:.0} MB (peak {:.0} MB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        goal: "≤ 100 MB",
        met: Some(rss <= 100 * 1024),
    });
    if std::env::var("PATCHBAY_BENCH_ONLY").is_ok_and(|v| v.trim() == "scan") {
        print_goals(&goals);
        return Ok(());
    }

    // ---- 2. one host ---------------------------------------------------------
    let host = big_host(&index, &keys)?;
    let target = target_for(&host.inv.facts.os).map_err(|e| anyhow!(e))?;
    let one = one_host(&index, &rows, &keys, &target, &host)?;
    let deb = debsecan(&index, &keys, &target, &host.inv, &one)?;
    print_one_host(&host, &one, deb.as_ref());
    println!("peak RSS after the one-host scenario: {}", peak_rss());
    goals.push(Goal {
        what: format!("one host × {HOST_PACKAGES} pkgs, warm (median)"),
        value: format!("{:.2} ms", ms(one.warm.median)),
        goal: "≤ 20 ms",
        met: Some(one.warm.median <= 0.020),
    });
    goals.push(Goal {
        what: format!("one host × {HOST_PACKAGES} pkgs, cold (new Assessor)"),
        value: format!("{:.1} ms", ms(one.cold.median)),
        goal: "≤ 300 ms",
        met: Some(one.cold.median <= 0.300),
    });
    goals.push(Goal {
        what: format!("one host × {HOST_PACKAGES} pkgs, cold incl. index build"),
        value: format!("{:.1} ms", ms(one.cold_index.median)),
        goal: "≤ 300 ms",
        met: Some(one.cold_index.median <= 0.300),
    });

    // ---- 3. fleets -----------------------------------------------------------
    let templates = Templates::load()?;
    println!("\n## Fleets (one shared Assessor; host generation not timed)");
    let sample = scaled(FRESH_SAMPLE);
    let fresh = fleet(&templates, &index, sample, false)?;
    let mut fleet_rows = Vec::new();
    for n in FLEETS {
        let n = scaled(n);
        let f = fleet(&templates, &index, n, true)?;
        println!("peak RSS after the {n}-host fleet: {}", peak_rss());
        goals.push(Goal {
            what: format!("fleet of {n} hosts, shared Assessor"),
            value: format!("{:.0} hosts/s", f.hosts_per_sec()),
            goal: "≥ 1,000 hosts/s",
            met: Some(f.hosts_per_sec() >= 1_000.0),
        });
        fleet_rows.push(f);
    }
    print_fleets(&fleet_rows, &fresh);

    // ---- 4. incremental, the service path -----------------------------------
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let samples = {
        let mut c = Collect::default();
        read_path(&osv_dir.join("samples"), &mut c)?;
        c.advisories
    };
    let mut backends = vec![Backend::Sqlite];
    if pg {
        backends.push(Backend::Postgres);
    }
    let service_hosts = scaled(SERVICE_HOSTS);
    let mut service_rows = Vec::new();
    for backend in backends {
        for with_advisories in [true, false] {
            let ctx = ServiceCtx {
                backend,
                advisories: if with_advisories {
                    &collected.advisories
                } else {
                    &[]
                },
                skipped: summary.osv.skipped,
                samples: &samples,
                templates: &templates,
                hosts: service_hosts,
                deb12: &host.base,
                big: &host.inv,
                index: &index,
            };
            let r = rt.block_on(service(&ctx)).with_context(|| {
                format!(
                    "{}: service path ({} advisories)",
                    backend.name(),
                    if with_advisories { "with" } else { "no" }
                )
            })?;
            service_rows.push(r);
        }
    }
    print_service(&service_rows, service_hosts);
    for with in service_rows.iter().filter(|r| r.with_advisories) {
        for (label, s) in &with.incr {
            goals.push(Goal {
                what: format!(
                    "{}: one-package check-in incl. re-assessment ({label}, {} findings flip)",
                    with.backend, s.flips
                ),
                value: format!("{:.2} ms", ms(s.stat.median)),
                goal: "≤ 10 ms",
                met: Some(s.stat.median <= 0.010),
            });
        }
    }
    println!("peak RSS after the service path: {}", peak_rss());

    print_goals(&goals);
    if !pg {
        println!("\n*** {SKIP} ***");
    }
    println!("\nload average at the end: {}", loadavg());
    println!(
        "\npeak RSS of the bench process (VmHWM, cumulative over all phases): {}",
        peak_rss()
    );
    Ok(())
}

/// Every (ecosystem, package) the rows name, in first-seen order.
fn affected_keys(rows: &[AdvisoryRow]) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in rows {
        let affected: Vec<StoredAffected> =
            serde_json::from_value(r.affected.clone()).unwrap_or_default();
        for a in affected {
            let k = (a.ecosystem, a.package);
            if seen.insert(k.clone()) {
                out.push(k);
            }
        }
    }
    out
}

fn fixed_versions(entries: &[AffectedEntry]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .flat_map(|e| e.ranges.iter())
        .flat_map(|r| r.events.iter())
        .filter_map(|e| match e {
            Event::Fixed(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| {
        patchbay_version::compare(Scheme::Deb, a, b).unwrap_or(std::cmp::Ordering::Equal)
    });
    v.dedup();
    v
}

/// The one-host scenario's host and how it was made.
struct BigHost {
    /// The real Debian 12 host (707 packages).
    base: Inventory,
    /// The topped-up host.
    inv: Inventory,
    /// Advisory sources (Debian:12).
    sources: usize,
    /// Packages added.
    added: usize,
    /// Packages whose source has advisory entries.
    hit_packages: usize,
    /// Distinct (source, version) pairs.
    distinct: usize,
}

fn deb12_host() -> anyhow::Result<Inventory> {
    let mut inv = Inventory {
        facts: HostFacts {
            hostname: "bench-deb12".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            os: OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                version_codename: "bookworm".into(),
                pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
                id_like: String::new(),
            },
            arch: "x86_64".into(),
            kernel: "6.1.0-28-amd64".into(),
            ..Default::default()
        },
        format: Some(PackageFormat::Deb),
        packages: dpkg::parse_status(DEB12_HOST).context("debian 12 host fixture")?,
        pending_updates: vec![],
    };
    inv.normalize();
    Ok(inv)
}

/// The real Debian 12 host (707 packages) topped up to [`HOST_PACKAGES`] with
/// packages of the Debian sources that the `Debian:12` advisories name, so that
/// every added package meets advisory entries:
///
/// - sources in name order, in passes: first a binary named like the source,
///   then `-common`, `-data`, `-doc`, `-utils`, … (Debian's usual binary names;
///   skipped when the host has that name already), until 2,000 packages;
/// - version: the host's own version of that source when the host has it (binaries
///   of one source share its version), else the **median** of the fixed versions
///   the advisories give for that source — a real bookworm(-security) version, so
///   the host is affected by the advisories fixed later and not by earlier ones,
///   like a host some way behind on its updates.
fn big_host(index: &Index, keys: &[(String, String)]) -> anyhow::Result<BigHost> {
    const ECO: &str = "Debian:12";
    const SUFFIXES: [&str; 8] = [
        "", "-common", "-data", "-doc", "-utils", "-tools", "-dev", "-bin",
    ];
    let base = deb12_host()?;
    let mut sources: Vec<&str> = keys
        .iter()
        .filter(|(e, _)| e == ECO)
        .map(|(_, p)| p.as_str())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let installed: HashMap<&str, &str> = base
        .packages
        .iter()
        .map(|p| match_key(p, patchbay_core::assess::KeyBy::Source))
        .collect();
    let mut names: HashSet<String> = base.packages.iter().map(|p| p.name.clone()).collect();
    let mut inv = base.clone();
    inv.facts.hostname = "bench-big".into();
    inv.facts.machine_id = "0123456789abcdef0123456789abcd02".into();
    let version_of: Vec<(&str, String)> = sources
        .iter()
        .filter_map(|s| {
            let v = match installed.get(s) {
                Some(v) => v.to_string(),
                None => {
                    let fixed = fixed_versions(index.entries(ECO, s));
                    fixed.get(fixed.len() / 2)?.clone()
                }
            };
            Some((*s, v))
        })
        .collect();
    let mut added = 0;
    'fill: for suffix in SUFFIXES {
        for (src, version) in &version_of {
            if inv.packages.len() >= HOST_PACKAGES {
                break 'fill;
            }
            let name = format!("{src}{suffix}");
            if !names.insert(name.clone()) {
                continue;
            }
            let arch = if matches!(suffix, "-common" | "-data" | "-doc") {
                "all"
            } else {
                "amd64"
            };
            inv.packages.push(Package {
                source: (name != *src).then(|| src.to_string()),
                name,
                version: version.clone(),
                arch: arch.into(),
                source_version: None,
            });
            added += 1;
        }
    }
    inv.normalize();
    if inv.packages.len() != HOST_PACKAGES {
        bail!("built {} packages, not {HOST_PACKAGES}", inv.packages.len());
    }
    inventory::validate(&inv).map_err(|m| anyhow!("the built host is invalid: {m}"))?;
    let srcs: HashSet<&str> = sources.iter().copied().collect();
    let keyed: Vec<(&str, &str)> = inv
        .packages
        .iter()
        .map(|p| match_key(p, patchbay_core::assess::KeyBy::Source))
        .collect();
    let hit_packages = keyed.iter().filter(|(s, _)| srcs.contains(s)).count();
    let distinct = keyed.iter().collect::<HashSet<_>>().len();
    Ok(BigHost {
        base,
        sources: sources.len(),
        added,
        hit_packages,
        distinct,
        inv,
    })
}

/// Results of the one-host scenario.
struct OneHost {
    cold: Stat,
    cold_index: Stat,
    warm: Stat,
    naive: Stat,
    findings: usize,
    problems: usize,
    /// (source, version) triples evaluated on a cold run.
    evaluated: u64,
    reused_cold: u64,
    /// `evaluate` calls: ours (cold) and naive.
    evals_ours: u64,
    evals_naive: u64,
    /// Name comparisons of the naive scan.
    scans_naive: u64,
    /// Debian:12 entries the naive matcher scans.
    naive_entries: usize,
    /// (advisory id, package) pairs of our findings.
    pairs: BTreeSet<(String, String)>,
    /// The index of the `Debian:12` rows alone (what debsecan's data holds).
    index_debian: Stat,
    /// The real Debian 12 host alone (707 packages).
    deb12_cold: Stat,
    deb12_warm: Stat,
    deb12_findings: usize,
}

fn one_host(
    index: &Index,
    rows: &[AdvisoryRow],
    keys: &[(String, String)],
    target: &Target,
    host: &BigHost,
) -> anyhow::Result<OneHost> {
    let pkgs = &host.inv.packages;
    let mut cold = Vec::new();
    let mut first = None;
    let mut evaluated = 0;
    let mut reused_cold = 0;
    for _ in 0..COLD_REPS {
        let mut a = Assessor::new();
        let (s, r) = timed(|| a.assess(index, target, black_box(pkgs)));
        cold.push(s);
        evaluated = a.evaluated;
        reused_cold = a.reused;
        first.get_or_insert(r);
    }
    let (findings, problems) = first.ok_or_else(|| anyhow!("no cold run"))?;
    let mut cold_index = Vec::new();
    for _ in 0..INDEX_REPS {
        let (s, n) = timed(|| {
            let idx = build_index(black_box(rows));
            Assessor::new().assess(&idx, target, pkgs).0.len()
        });
        if n != findings.len() {
            bail!("a rebuilt index gave {n} findings, not {}", findings.len());
        }
        cold_index.push(s);
    }
    let mut a = Assessor::new();
    a.assess(index, target, pkgs);
    let mut warm = Vec::new();
    for _ in 0..WARM_REPS {
        let (s, r) = timed(|| a.assess(index, target, black_box(pkgs)));
        if r.0.len() != findings.len() {
            bail!(
                "a warm run gave {} findings, not {}",
                r.0.len(),
                findings.len()
            );
        }
        warm.push(s);
    }
    if a.evaluated != evaluated {
        bail!("warm runs evaluated {} triples", a.evaluated - evaluated);
    }
    // Our evaluate() calls on a cold run: each distinct (source, version) once.
    let distinct: HashSet<(&str, &str)> =
        pkgs.iter().map(|p| match_key(p, target.key_by)).collect();
    let evals_ours = distinct
        .iter()
        .map(|(n, _)| index.entries(&target.ecosystem, n).len() as u64)
        .sum();

    // The naive matcher: every entry of the ecosystem, for every package.
    let flat: Vec<(&str, &AffectedEntry)> = keys
        .iter()
        .filter(|(e, _)| *e == target.ecosystem)
        .flat_map(|(e, p)| index.entries(e, p).iter().map(move |x| (p.as_str(), x)))
        .collect();
    let mut naive = Vec::new();
    let mut naive_out = None;
    for _ in 0..NAIVE_REPS {
        let (s, r) = timed(|| naive_match(black_box(&flat), target, pkgs));
        naive.push(s);
        naive_out.get_or_insert(r);
    }
    let (naive_pairs, evals_naive, scans_naive) =
        naive_out.ok_or_else(|| anyhow!("no naive run"))?;
    let ours: BTreeSet<(String, String, String)> = findings
        .iter()
        .map(|f| (f.package.clone(), f.arch.clone(), f.advisory.clone()))
        .collect();
    let theirs: BTreeSet<(String, String, String)> = naive_pairs
        .into_iter()
        .map(|(p, a, i)| (p, a, index.advisory(i).id.clone()))
        .collect();
    if ours != theirs || ours.len() != findings.len() {
        bail!(
            "the naive matcher disagrees: {} findings here, {} there, {} in common",
            ours.len(),
            theirs.len(),
            ours.intersection(&theirs).count()
        );
    }
    // The index of the Debian:12 rows alone.
    let debian_rows: Vec<AdvisoryRow> = rows
        .iter()
        .filter(|r| {
            r.ecosystems
                .split_whitespace()
                .any(|e| e == target.ecosystem)
        })
        .cloned()
        .collect();
    let index_debian: Vec<f64> = (0..INDEX_REPS)
        .map(|_| timed(|| build_index(black_box(&debian_rows))).0)
        .collect();
    // The real Debian 12 host alone: what a check-in of it re-assesses.
    let base = &host.base.packages;
    let deb12_cold: Vec<f64> = (0..COLD_REPS)
        .map(|_| timed(|| Assessor::new().assess(index, target, black_box(base))).0)
        .collect();
    let mut a = Assessor::new();
    let deb12_findings = a.assess(index, target, base).0.len();
    let deb12_warm: Vec<f64> = (0..WARM_REPS)
        .map(|_| timed(|| a.assess(index, target, black_box(base))).0)
        .collect();
    Ok(OneHost {
        index_debian: Stat::of(&index_debian),
        deb12_cold: Stat::of(&deb12_cold),
        deb12_warm: Stat::of(&deb12_warm),
        deb12_findings,
        cold: Stat::of(&cold),
        cold_index: Stat::of(&cold_index),
        warm: Stat::of(&warm),
        naive: Stat::of(&naive),
        findings: findings.len(),
        problems: problems.len(),
        evaluated,
        reused_cold,
        evals_ours,
        evals_naive,
        scans_naive,
        naive_entries: flat.len(),
        pairs: findings
            .iter()
            .map(|f| (f.advisory.clone(), f.package.clone()))
            .collect(),
    })
}

/// Scans every entry for every package; evaluates those whose name matches.
/// Returns (package, arch, advisory index) findings, evaluate() calls, name
/// comparisons.
#[allow(clippy::type_complexity)]
fn naive_match(
    flat: &[(&str, &AffectedEntry)],
    target: &Target,
    pkgs: &[Package],
) -> (Vec<(String, String, usize)>, u64, u64) {
    let mut out = Vec::new();
    let (mut evals, mut scans) = (0, 0);
    for p in pkgs {
        let (name, version) = match_key(p, target.key_by);
        let mut seen = HashSet::new();
        for (pkg, e) in flat {
            scans += 1;
            if *pkg != name {
                continue;
            }
            evals += 1;
            if let Ok(v) = evaluate(target.scheme, &e.ranges, &e.versions, version)
                && v.affected
                && seen.insert(e.advisory)
            {
                out.push((p.name.clone(), p.arch.clone(), e.advisory));
            }
        }
    }
    (out, evals, scans)
}

/// debsecan on the same host and the same advisories.
struct Debsecan {
    /// Its data: vulnerability lines written, entries not expressible.
    lines: usize,
    inexpressible: usize,
    /// In-process (its own functions): reading its data, first rating after a
    /// read, later ratings.
    load: Stat,
    cold: Stat,
    warm: Stat,
    /// Whole processes.
    process: Stat,
    /// `patchbay scan` processes on the same status file and the Debian zip.
    scan_process: Stat,
    scan_findings: usize,
    /// (advisory, package) pairs it reports.
    pairs: usize,
}

const DEBSECAN_HARNESS: &str = r#"
import importlib.machinery, importlib.util, json, sys, time, zlib
d, reps, exe = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(d + "/bookworm.txt", "rb") as f:
    raw = f.read()
with open(d + "/bookworm", "wb") as f:
    f.write(zlib.compress(raw, 9))
loader = importlib.machinery.SourceFileLoader("debsecan_under_test", exe)
spec = importlib.util.spec_from_loader("debsecan_under_test", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
sys.argv = ["debsecan"] + sys.argv[4:]
options, config, _ = m.parse_cli()
class Sink:
    def __init__(self):
        self.lines = []
    def write(self, line):
        self.lines.append(line)
    def finish(self):
        pass
def rate(vulns):
    s = Sink()
    m.rate_system(s, options, vulns, None)
    return s.lines
load, cold, warm = [], [], []
for _ in range(reps):
    t0 = time.perf_counter()
    vulns = m.fetch_data(options, config)
    t1 = time.perf_counter()
    lines = rate(vulns)
    t2 = time.perf_counter()
    load.append(t1 - t0)
    cold.append(t2 - t1)
for _ in range(reps * 3):
    t0 = time.perf_counter()
    rate(vulns)
    warm.append(time.perf_counter() - t0)
print(json.dumps({"load": load, "cold": cold, "warm": warm, "lines": lines}))
"#;

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A dpkg status file of `packages` (what debsecan and `patchbay scan` read).
fn dpkg_status(packages: &[Package]) -> String {
    let mut s = String::new();
    for p in packages {
        s.push_str(&format!(
            "Package: {}\nStatus: install ok installed\nArchitecture: {}\n",
            p.name, p.arch
        ));
        match (&p.source, &p.source_version) {
            (Some(src), Some(v)) => s.push_str(&format!("Source: {src} ({v})\n")),
            (Some(src), None) => s.push_str(&format!("Source: {src}\n")),
            _ => {}
        }
        s.push_str(&format!("Version: {}\n\n", p.version));
    }
    s
}

/// The `Debian:12` entries in debsecan's data format (`VERSION 1`, then
/// vulnerability names, then `package,vuln,flags,fixed_version,other_versions`
/// lines; see `fetch_data` in `/usr/bin/debsecan`). An `introduced: 0` /
/// `fixed: X` range is exactly debsecan's "source version < X"; other shapes are
/// counted as inexpressible and left out (there are none in the staged data).
fn debsecan_data(
    index: &Index,
    keys: &[(String, String)],
    ecosystem: &str,
) -> (String, usize, usize) {
    let mut names: Vec<usize> = Vec::new();
    let mut vnum: HashMap<usize, usize> = HashMap::new();
    let mut lines = Vec::new();
    let mut inexpressible = 0;
    for (_, pkg) in keys.iter().filter(|(e, _)| e == ecosystem) {
        for e in index.entries(ecosystem, pkg) {
            let fixed = match (e.ranges.as_slice(), e.versions.is_empty()) {
                ([r], true) => match r.events.as_slice() {
                    [Event::Introduced(z)] if z == "0" => Some(None),
                    [Event::Introduced(z), Event::Fixed(f)] if z == "0" => Some(Some(f.clone())),
                    _ => None,
                },
                _ => None,
            };
            let Some(fixed) = fixed else {
                inexpressible += 1;
                continue;
            };
            let n = *vnum.entry(e.advisory).or_insert_with(|| {
                names.push(e.advisory);
                names.len() - 1
            });
            lines.push(match fixed {
                Some(f) => format!("{pkg},{n},S ?F,{f},"),
                None => format!("{pkg},{n},S ? ,,"),
            });
        }
    }
    let mut out = String::from("VERSION 1\n");
    for a in &names {
        let info = index.advisory(*a);
        let desc: String = info
            .summary
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        out.push_str(&format!("{},,{desc}\n", info.id));
    }
    out.push('\n');
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("\n\n");
    (out, lines.len(), inexpressible)
}

fn secs_list(v: &serde_json::Value, k: &str) -> anyhow::Result<Vec<f64>> {
    v[k].as_array()
        .ok_or_else(|| anyhow!("harness output has no {k}"))?
        .iter()
        .map(|x| x.as_f64().ok_or_else(|| anyhow!("{k}: not a number")))
        .collect()
}

/// debsecan and the Python it runs with, or `None` (said loudly) when it or
/// its python3-apt is missing.
fn debsecan_tool() -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    let Some(exe) = which("debsecan") else {
        println!(
            "\n*** debsecan: SKIPPED (not installed: apt-get install debsecan) — no side-by-side ***"
        );
        return Ok(None);
    };
    // The interpreter debsecan runs with (its shebang; a python3 first in PATH,
    // e.g. pyenv's, may lack python3-apt).
    let python = std::fs::read_to_string(&exe)
        .ok()
        .and_then(|s| {
            let first = s.lines().next()?.strip_prefix("#!")?.trim().to_string();
            (!first.contains(' ')).then(|| PathBuf::from(first))
        })
        .or_else(|| which("python3"))
        .ok_or_else(|| anyhow!("no python3 for debsecan"))?;
    let apt = Command::new(&python)
        .args(["-c", "import apt_pkg"])
        .stderr(Stdio::null())
        .status()?;
    if !apt.success() {
        println!("\n*** debsecan: SKIPPED (python3-apt missing) ***");
        return Ok(None);
    }
    Ok(Some((exe, python)))
}

fn debsecan(
    index: &Index,
    keys: &[(String, String)],
    target: &Target,
    host: &Inventory,
    ours: &OneHost,
) -> anyhow::Result<Option<Debsecan>> {
    let Some((exe, python)) = debsecan_tool()? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::write(d.join("status"), dpkg_status(&host.packages))?;
    // The status file must read back as the very same host.
    if dpkg::parse_status(&std::fs::read_to_string(d.join("status"))?)? != host.packages {
        bail!("the written dpkg status does not parse back to the host");
    }
    let (data, lines, inexpressible) = debsecan_data(index, keys, &target.ecosystem);
    std::fs::write(d.join("bookworm.txt"), data)?;
    std::fs::write(d.join("empty.conf"), "")?;
    std::fs::write(d.join("harness.py"), DEBSECAN_HARNESS)?;
    let feeds = d.join("feeds");
    std::fs::create_dir(&feeds)?;
    std::os::unix::fs::symlink(
        fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        feeds.join("Debian-12-derived.osv.zip"),
    )?;
    let ds = d.display().to_string();
    let args: Vec<String> = [
        "--suite",
        "bookworm",
        "--source",
        &format!("file://{ds}/"),
        "--status",
        &format!("{ds}/status"),
        "--format",
        "simple",
        "--config",
        &format!("{ds}/empty.conf"),
        "--whitelist",
        &format!("{ds}/no-whitelist"),
        "--history",
        &format!("{ds}/no-history"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = Command::new(&python)
        .arg(d.join("harness.py"))
        .arg(d)
        .arg(COLD_REPS.to_string())
        .arg(&exe)
        .args(&args)
        .output()
        .context("running the debsecan harness")?;
    if !out.status.success() {
        bail!(
            "the debsecan harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let theirs: BTreeSet<(String, String)> = v["lines"]
        .as_array()
        .ok_or_else(|| anyhow!("harness output has no lines"))?
        .iter()
        .filter_map(|l| l.as_str()?.split_once(' '))
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .collect();
    if theirs != ours.pairs {
        bail!(
            "debsecan disagrees: {} (advisory, package) pairs there, {} here, {} in common",
            theirs.len(),
            ours.pairs.len(),
            theirs.intersection(&ours.pairs).count()
        );
    }
    let mut process = Vec::new();
    let mut scan_process = Vec::new();
    let mut scan_findings = 0;
    let patchbay = env!("CARGO_BIN_EXE_patchbay");
    // The compiled index is built by a first, untimed scan; the timed ones read it.
    let index_file = d.join("advisories.pbidx");
    let built = Command::new(patchbay)
        .args(["scan", "--os", "debian:12", "--format", "json", "--index"])
        .arg(&index_file)
        .arg("--dpkg-status")
        .arg(d.join("status"))
        .arg("--feeds")
        .arg(&feeds)
        .output()?;
    if !built.status.success() {
        bail!("patchbay scan: {}", String::from_utf8_lossy(&built.stderr));
    }
    for _ in 0..PROCESS_REPS {
        let (s, o) = timed(|| Command::new(&exe).args(&args).output());
        let o = o?;
        let n = String::from_utf8_lossy(&o.stdout).lines().count();
        if !o.status.success() || n != theirs.len() {
            bail!(
                "debsecan process: {} lines, status {} ({})",
                n,
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        process.push(s);
        let (s, o) = timed(|| {
            Command::new(patchbay)
                .args(["scan", "--os", "debian:12", "--format", "json", "--index"])
                .arg(&index_file)
                .arg("--dpkg-status")
                .arg(d.join("status"))
                .arg("--feeds")
                .arg(&feeds)
                .output()
        });
        let o = o?;
        if !o.status.success() {
            bail!("patchbay scan: {}", String::from_utf8_lossy(&o.stderr));
        }
        let found: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        scan_findings = found.as_array().map_or(0, Vec::len);
        if scan_findings != ours.findings {
            bail!(
                "patchbay scan found {scan_findings}, the bench {}",
                ours.findings
            );
        }
        scan_process.push(s);
    }
    Ok(Some(Debsecan {
        lines,
        inexpressible,
        load: Stat::of(&secs_list(&v, "load")?),
        cold: Stat::of(&secs_list(&v, "cold")?),
        warm: Stat::of(&secs_list(&v, "warm")?),
        process: Stat::of(&process),
        scan_process: Stat::of(&scan_process),
        scan_findings,
        pairs: theirs.len(),
    }))
}

fn print_one_host(h: &BigHost, o: &OneHost, d: Option<&Debsecan>) {
    println!("\n## One host × {HOST_PACKAGES} packages (Debian 12)");
    println!(
        "host: the real Debian 12 host ({} packages) + {} packages of the {} Debian sources \
         the advisories name; {} of {} packages have a source with advisory entries; \
         {} distinct (source, version) pairs",
        h.base.packages.len(),
        h.added,
        h.sources,
        h.hit_packages,
        h.inv.packages.len(),
        h.distinct
    );
    println!(
        "the real Debian 12 host alone: {} findings",
        o.deb12_findings
    );
    println!(
        "findings: {} ({} problems); cold run: {} triples evaluated, {} answered from the cache \
         within the host",
        o.findings, o.problems, o.evaluated, o.reused_cold
    );
    println!();
    println!("| run | median | min | max | naive ÷ this |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, s: &Stat, ratio: bool| {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            ms(s.median),
            ms(s.min),
            ms(s.max),
            if ratio {
                format!("{:.1}", o.naive.median / s.median)
            } else {
                "-".into()
            }
        );
    };
    row("cold (new Assessor)", &o.cold, true);
    row(
        "cold incl. index build (all ecosystems)",
        &o.cold_index,
        false,
    );
    row("warm (same Assessor)", &o.warm, true);
    row("baseline: naive scan + evaluate", &o.naive, true);
    row(
        "the real Debian 12 host alone (707 pkgs), cold",
        &o.deb12_cold,
        false,
    );
    row(
        "the real Debian 12 host alone (707 pkgs), warm",
        &o.deb12_warm,
        false,
    );
    println!();
    println!(
        "evaluate() calls (each 2 version parses + 1 dpkg comparison for these \
         introduced-0/fixed ranges): cold {} vs naive {}; warm 0; the naive matcher also \
         compares names {} times ({} packages × {} Debian:12 entries)",
        o.evals_ours, o.evals_naive, o.scans_naive, HOST_PACKAGES, o.naive_entries
    );
    match d {
        None => println!("debsecan: not measured (see above)"),
        Some(d) => {
            println!(
                "\n### debsecan side by side (same host as a dpkg status file, same {} Debian:12 \
                 entries in debsecan's format, {} inexpressible)",
                d.lines, d.inexpressible
            );
            println!(
                "both report the same {} (advisory, package) pairs; patchbay scan the same {} findings",
                d.pairs, d.scan_findings
            );
            println!("| step | debsecan | patchbay | debsecan ÷ patchbay |");
            println!("|---|---:|---:|---:|");
            let r = |step: &str, a: &Stat, b: f64| {
                println!(
                    "| {step} | {:.1} ms | {:.1} ms | {:.1} |",
                    ms(a.median),
                    ms(b),
                    a.median / b
                );
            };
            r(
                "load the Debian:12 advisories (its data file → objects; our 10,464 stored rows → index)",
                &d.load,
                o.index_debian.median,
            );
            r("match, cold", &d.cold, o.cold.median);
            r("match, warm", &d.warm, o.warm.median);
            r(
                "whole process (debsecan vs patchbay scan on the Debian zip, warm compiled index)",
                &d.process,
                d.scan_process.median,
            );
        }
    }
}

/// One fleet run.
struct Fleet {
    hosts: usize,
    shared: bool,
    secs: f64,
    packages: u64,
    evaluated: u64,
    reused: u64,
    findings: u64,
    by_os: BTreeMap<String, (u64, u64)>,
}

impl Fleet {
    fn hosts_per_sec(&self) -> f64 {
        self.hosts as f64 / self.secs
    }
}

fn fleet(templates: &Templates, index: &Index, n: usize, shared: bool) -> anyhow::Result<Fleet> {
    let mut a = Assessor::new();
    let mut f = Fleet {
        hosts: n,
        shared,
        secs: 0.0,
        packages: 0,
        evaluated: 0,
        reused: 0,
        findings: 0,
        by_os: BTreeMap::new(),
    };
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let batch: Vec<(Target, Inventory)> = (start..end)
            .map(|i| {
                let inv = templates.host(i, SEED, &format!("sim-{i:06}"));
                let t = target_for(&inv.facts.os).map_err(|e| anyhow!(e))?;
                Ok((t, inv))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut counts = Vec::with_capacity(batch.len());
        let (s, ()) = timed(|| {
            for (t, inv) in &batch {
                let (findings, _) = if shared {
                    a.assess(index, t, &inv.packages)
                } else {
                    let mut fresh = Assessor::new();
                    let r = fresh.assess(index, t, &inv.packages);
                    f.evaluated += fresh.evaluated;
                    f.reused += fresh.reused;
                    r
                };
                counts.push(black_box(findings).len() as u64);
            }
        });
        f.secs += s;
        for ((t, inv), c) in batch.iter().zip(counts) {
            let e = f.by_os.entry(t.ecosystem.clone()).or_default();
            e.0 += 1;
            e.1 += c;
            f.findings += c;
            f.packages += inv.packages.len() as u64;
        }
        start = end;
    }
    if shared {
        f.evaluated = a.evaluated;
        f.reused = a.reused;
    }
    Ok(f)
}

fn print_fleets(rows: &[Fleet], fresh: &Fleet) {
    println!();
    println!(
        "| hosts | assessor | seconds | hosts/s | packages | triples evaluated | reused | findings | findings/s | shared ÷ fresh |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in rows.iter().chain(std::iter::once(fresh)) {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {:.0} | {} |",
            f.hosts,
            if f.shared {
                "one shared"
            } else {
                "baseline: fresh per host"
            },
            f.secs,
            f.hosts_per_sec(),
            f.packages,
            f.evaluated,
            f.reused,
            f.findings,
            f.findings as f64 / f.secs,
            if f.shared {
                format!("{:.1}", f.hosts_per_sec() / fresh.hosts_per_sec())
            } else {
                "1.0".into()
            }
        );
    }
    if let Some(f) = rows.last() {
        println!("\nby ecosystem ({} hosts):", f.hosts);
        for (eco, (hosts, findings)) in &f.by_os {
            println!("  {eco:<18} {hosts:>6} hosts {findings:>9} findings");
        }
        println!(
            "  (the staged feeds hold no Ubuntu 24.04 or Alpine 3.23 entries beyond the \
             Ubuntu samples, so those hosts have few or no findings; they are still matched)"
        );
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

struct ServiceCtx<'a> {
    backend: Backend,
    advisories: &'a [Advisory],
    skipped: u64,
    samples: &'a [Advisory],
    templates: &'a Templates,
    hosts: usize,
    deb12: &'a Inventory,
    big: &'a Inventory,
    index: &'a Index,
}

/// Which one-package change a host makes.
#[derive(Clone, Copy)]
enum Change {
    /// A package no advisory names gets a binNMU-style `+b1` version: no finding
    /// opens or closes (the fixed cost of re-assessing the host).
    NoFlip,
    /// The package with the most findings is upgraded to the highest fixed version
    /// they name (and back): the most findings a one-package change can flip.
    MostFlips,
}

/// Timed one-package check-ins of one host.
struct Incr {
    stat: Stat,
    package: String,
    versions: (String, String),
    /// Findings the change opens or closes.
    flips: usize,
    open_after: usize,
}

struct ServiceRun {
    backend: &'static str,
    with_advisories: bool,
    import_secs: f64,
    first_checkins_secs: f64,
    /// (host and change, timings).
    incr: Vec<(String, Incr)>,
    fleet_secs: f64,
    fleet_hosts: usize,
    fleet_evaluated: u64,
    fleet_reused: u64,
    fleet_open: u64,
}

/// An enrolled host as the service knows it.
struct Enrolled {
    agent: AgentCaller,
    asset: String,
}

async fn enrol_and_check_in(
    app: &App,
    enroll_token: &str,
    inv: &Inventory,
) -> anyhow::Result<(Enrolled, f64)> {
    let ctx = RequestCtx::default();
    let e = app
        .enroll(
            EnrollRequest {
                protocol: AGENT_PROTOCOL_VERSION,
                enroll_token: enroll_token.to_string(),
                hostname: inv.facts.hostname.clone(),
                machine_id: inv.facts.machine_id.clone(),
                agent_secret: None,
                csr: None,
            },
            &ctx,
        )
        .await
        .map_err(app_err)?;
    let agent = app
        .authenticate_agent(Some(&format!("Bearer {}", e.agent_secret)), &ctx)
        .await
        .map_err(app_err)?;
    let req = CheckinRequest {
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
        protocol: AGENT_PROTOCOL_VERSION,
        inventory_hash: inv.content_hash(),
        inventory: InventoryPayload::Full {
            inventory: inv.clone(),
        },
    };
    let t = Instant::now();
    let (r, _) = app.checkin(&agent, req).await.map_err(app_err)?;
    let s = t.elapsed().as_secs_f64();
    if r.package_rows_written != inv.packages.len() as u64 {
        bail!(
            "first check-in wrote {} rows for {} packages",
            r.package_rows_written,
            inv.packages.len()
        );
    }
    Ok((
        Enrolled {
            agent,
            asset: e.asset_name,
        },
        s,
    ))
}

/// The package a [`Change`] changes: (index, old version, new version, findings
/// that flip).
fn pick_change(
    index: &Index,
    target: &Target,
    inv: &Inventory,
    change: Change,
) -> anyhow::Result<(usize, String, String, usize)> {
    let matches = |name: &str, version: &str| {
        index
            .match_version(target.scheme, &target.ecosystem, name, version)
            .0
    };
    let (i, new) = match change {
        Change::NoFlip => {
            let i = inv
                .packages
                .iter()
                .position(|p| {
                    let (name, _) = match_key(p, target.key_by);
                    index.entries(&target.ecosystem, name).is_empty()
                })
                .ok_or_else(|| anyhow!("every package of the host has advisories"))?;
            (i, format!("{}+b1", inv.packages[i].version))
        }
        Change::MostFlips => {
            let mut best: Option<(usize, String, usize)> = None;
            for (i, p) in inv.packages.iter().enumerate() {
                let (name, version) = match_key(p, target.key_by);
                let m = matches(name, version);
                let Some(fixed) = m.iter().filter_map(|x| x.fixed.clone()).max_by(|a, b| {
                    patchbay_version::compare(target.scheme, a, b)
                        .unwrap_or(std::cmp::Ordering::Equal)
                }) else {
                    continue;
                };
                if best.as_ref().is_none_or(|b| m.len() > b.2) {
                    best = Some((i, fixed, m.len()));
                }
            }
            let (i, fixed, _) =
                best.ok_or_else(|| anyhow!("no package of the host has a finding"))?;
            (i, fixed)
        }
    };
    let p = &inv.packages[i];
    let (name, old) = match_key(p, target.key_by);
    let flips = matches(name, old).len().abs_diff(matches(name, &new).len());
    Ok((i, p.version.clone(), new, flips))
}

/// `n` check-ins of a host whose inventory the server holds as `cur`, each
/// changing one package's version (alternately to the new version and back), as
/// `Delta` payloads; returns the timed check-ins and leaves `cur` as stored.
async fn incremental(
    app: &App,
    admin: &patchbay_app::Caller,
    enrolled: &Enrolled,
    cur: &mut Inventory,
    change: Change,
    ctx: &ServiceCtx<'_>,
    n: usize,
) -> anyhow::Result<Incr> {
    let target = target_for(&cur.facts.os).map_err(|e| anyhow!(e))?;
    let (i, old, new, flips) = pick_change(ctx.index, &target, cur, change)?;
    let name = cur.packages[i].name.clone();
    let mut times = Vec::new();
    for k in 0..n {
        let mut next = cur.clone();
        let v = if k % 2 == 0 { &new } else { &old };
        let p = next
            .packages
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("{name} is gone"))?;
        p.version = v.clone();
        if p.source_version.is_some() {
            p.source_version = Some(v.clone());
        }
        next.normalize();
        let delta = PackageDelta::between(&cur.packages, &next.packages);
        let req = CheckinRequest {
            results: vec![],
            wait_secs: None,
            key_refusals: Vec::new(),
            protocol: AGENT_PROTOCOL_VERSION,
            inventory_hash: next.content_hash(),
            inventory: InventoryPayload::Delta {
                base_hash: cur.content_hash(),
                facts: next.facts.clone(),
                format: next.format,
                added: delta.added,
                removed: delta.removed,
                pending_updates: next.pending_updates.clone(),
            },
        };
        let t = Instant::now();
        let (r, kind) = app.checkin(&enrolled.agent, req).await.map_err(app_err)?;
        times.push(t.elapsed().as_secs_f64());
        if kind != patchbay_app::agents::CheckinKind::Delta || r.package_rows_written != 2 {
            bail!(
                "one-package check-in: {kind:?}, {} rows written",
                r.package_rows_written
            );
        }
        *cur = next;
    }
    // The stored findings must be what the matcher says for the final inventory.
    let open = app
        .list_findings(admin, Some(&enrolled.asset), false, &RequestCtx::default())
        .await
        .map_err(app_err)?
        .len();
    let expect = if ctx.advisories.is_empty() {
        0
    } else {
        Assessor::new()
            .assess(ctx.index, &target, &cur.packages)
            .0
            .len()
    };
    if open != expect {
        bail!(
            "{}: {open} open findings stored, {expect} expected",
            enrolled.asset
        );
    }
    Ok(Incr {
        stat: Stat::of(&times),
        package: name,
        versions: (old, new),
        flips: if ctx.advisories.is_empty() { 0 } else { flips },
        open_after: open,
    })
}

async fn admin_caller(app: &App, token: &str) -> anyhow::Result<patchbay_app::Caller> {
    app.authenticate(Some(&format!("Bearer {token}")), &RequestCtx::default())
        .await
        .map_err(app_err)
}

async fn service(ctx: &ServiceCtx<'_>) -> anyhow::Result<ServiceRun> {
    let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
    let (db_url, sqlite_dir) = match ctx.backend {
        Backend::Sqlite => {
            let u = patchbay_store::testing::fresh_sqlite_url();
            let dir = u
                .strip_prefix("sqlite://")
                .and_then(|p| Path::new(p).parent())
                .map(Path::to_path_buf);
            (u, dir)
        }
        Backend::Postgres => (patchbay_store::testing::fresh_postgres_url().await, None),
    };
    let prepared = patchbay_server::prepare(&Settings {
        db_url: Some(db_url),
        data_dir: data_dir.path().to_path_buf(),
        app: AppConfig::default(),
    })
    .await?;
    let app = prepared.app.clone();
    let token = std::fs::read_to_string(&prepared.admin_token_path)
        .with_context(|| format!("reading {}", prepared.admin_token_path.display()))?
        .trim()
        .to_string();
    let admin = admin_caller(&app, &token).await?;
    let rctx = RequestCtx::default();
    let (import_secs, imported) = {
        let t = Instant::now();
        let o = app
            .import_advisories(
                "fixtures/feeds/osv",
                ctx.advisories,
                ctx.skipped,
                &patchbay_app::Caller::local("bench"),
            )
            .await
            .map_err(app_err)?;
        (t.elapsed().as_secs_f64(), o)
    };
    let et = app
        .create_enroll_token(
            &admin,
            CreateEnrollToken {
                name: Some("bench".into()),
                uses: Some(u32::try_from(ctx.hosts + 2)?),
                ttl_secs: Some(3600),
            },
            &rctx,
        )
        .await
        .map_err(app_err)?;
    let mut first_checkins_secs = 0.0;
    for i in 0..ctx.hosts {
        let inv = ctx.templates.host(i, SEED, &format!("bench-assess-{i:05}"));
        let (_, s) = enrol_and_check_in(&app, &et.token, &inv).await?;
        first_checkins_secs += s;
    }
    let (deb12, _) = enrol_and_check_in(&app, &et.token, ctx.deb12).await?;
    let (big, _) = enrol_and_check_in(&app, &et.token, ctx.big).await?;

    let mut incr = Vec::new();
    for (label, enrolled, host, n) in [
        ("Debian 12 host, 707 pkgs", &deb12, ctx.deb12, INCR_CHECKINS),
        ("2,000-pkg host", &big, ctx.big, INCR_CHECKINS_BIG),
    ] {
        let mut cur = host.clone();
        for change in [Change::NoFlip, Change::MostFlips] {
            let r = incremental(&app, &admin, enrolled, &mut cur, change, ctx, n).await?;
            incr.push((label.to_string(), r));
        }
    }

    // A feed change (the Debian/Ubuntu samples, or an empty import for the
    // baseline), then the whole fleet re-assessed as `patchbay feeds import` does.
    let change = if ctx.advisories.is_empty() {
        &[][..]
    } else {
        ctx.samples
    };
    app.import_advisories(
        "fixtures/feeds/osv/samples",
        change,
        0,
        &patchbay_app::Caller::local("bench"),
    )
    .await
    .map_err(app_err)?;
    let t = Instant::now();
    let (stats, fleet_evaluated, fleet_reused) =
        app.assess_fleet(&|_, _| {}).await.map_err(app_err)?;
    let fleet_secs = t.elapsed().as_secs_f64();
    app.store().close().await;
    if let Some(d) = sqlite_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    if imported.records == 0 && !ctx.advisories.is_empty() {
        bail!("the import stored nothing");
    }
    Ok(ServiceRun {
        backend: ctx.backend.name(),
        with_advisories: !ctx.advisories.is_empty(),
        import_secs,
        first_checkins_secs,
        incr,
        fleet_secs,
        fleet_hosts: ctx.hosts + 2,
        fleet_evaluated,
        fleet_reused,
        fleet_open: stats.still_open + stats.opened + stats.reopened,
    })
}

fn print_service(rows: &[ServiceRun], hosts: usize) {
    println!(
        "\n## Incremental re-assessment: the service path ({hosts} simulated hosts + the Debian 12 \
         host + the 2,000-package host)"
    );
    for r in rows {
        if r.with_advisories {
            println!(
                "{}: advisories imported in {:.2} s; first check-ins of the {hosts} simulated hosts \
                 (incl. assessment) {:.2} s, {:.1} ms per host",
                r.backend,
                r.import_secs,
                r.first_checkins_secs,
                ms(r.first_checkins_secs / hosts as f64)
            );
        } else {
            println!(
                "{}: no advisories; first check-ins of the {hosts} simulated hosts {:.2} s, \
                 {:.1} ms per host",
                r.backend,
                r.first_checkins_secs,
                ms(r.first_checkins_secs / hosts as f64)
            );
        }
    }
    println!();
    println!(
        "| backend | host | changed package | findings flipped | open after | with advisories | baseline: no advisories | increment | ratio |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for pair in rows.chunks(2) {
        let [w, b] = pair else { continue };
        for ((label, x), (_, y)) in w.incr.iter().zip(&b.incr) {
            println!(
                "| {} | {label} | {} {} ↔ {} | {} | {} | {:.2} ms | {:.2} ms | {:+.2} ms | {:.2} |",
                w.backend,
                x.package,
                x.versions.0,
                x.versions.1,
                x.flips,
                x.open_after,
                ms(x.stat.median),
                ms(y.stat.median),
                ms(x.stat.median - y.stat.median),
                x.stat.median / y.stat.median
            );
        }
    }
    println!();
    println!("`App::assess_fleet` after a feed change (index rebuilt from the store, cold cache):");
    println!(
        "| backend | advisories | hosts | seconds | hosts/s | triples evaluated | reused | open findings |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} |",
            r.backend,
            if r.with_advisories {
                "all staged"
            } else {
                "baseline: none"
            },
            r.fleet_hosts,
            r.fleet_secs,
            r.fleet_hosts as f64 / r.fleet_secs,
            r.fleet_evaluated,
            r.fleet_reused,
            r.fleet_open
        );
    }
}

// ---- whole processes on the real 707-package host, and the server's memory ----

/// Whole-process runs per figure (medians reported).
const WHOLE_REPS: usize = 7;

/// One whole-process figure: wall time and peak RSS (`/usr/bin/time -v`).
struct Proc {
    wall: Stat,
    rss_kb: Stat,
}

/// Runs `cmd` under `/usr/bin/time -v` `reps` times (`before` runs first each
/// time, untimed); returns the figures and the last run's stdout. Wall time is
/// taken around the `time` process (its own 1 ms start-up included: it prints
/// wall time in hundredths only); peak RSS is its "Maximum resident set size".
fn time_v(
    reps: usize,
    mut before: impl FnMut() -> anyhow::Result<()>,
    program: &Path,
    args: &[std::ffi::OsString],
) -> anyhow::Result<(Proc, Vec<u8>)> {
    let (mut wall, mut rss, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        before()?;
        let (s, out) = timed(|| {
            Command::new("/usr/bin/time")
                .arg("-v")
                .arg(program)
                .args(args)
                .output()
        });
        let out = out.context("running /usr/bin/time (apt-get install time)")?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("{}: {err}", program.display());
        }
        let kb: f64 = err
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("no maximum RSS in /usr/bin/time's output: {err}"))?;
        wall.push(s);
        rss.push(kb);
        last = out.stdout;
    }
    Ok((
        Proc {
            wall: Stat::of(&wall),
            rss_kb: Stat::of(&rss),
        },
        last,
    ))
}

/// `patchbay scan` (cold: building the compiled index; warm: reading it) and
/// debsecan as whole processes on the real 707-package Debian 12 host and the
/// full Debian 12 zip (debsecan: the same entries in its format).
struct ScanProcesses {
    findings: usize,
    pairs: usize,
    index_bytes: u64,
    debsecan: Proc,
    warm: Proc,
    cold: Proc,
}

fn scan_processes(
    index: &Index,
    keys: &[(String, String)],
) -> anyhow::Result<Option<ScanProcesses>> {
    let Some((exe, _)) = debsecan_tool()? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let status = fixtures().join("inventories/debian12/host-ci-image.dpkg-status");
    let (data, _, _) = debsecan_data(index, keys, "Debian:12");
    // debsecan reads its data zlib-compressed, as the security tracker serves it.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, data.as_bytes())?;
    std::fs::write(d.join("bookworm"), z.finish()?)?;
    std::fs::write(d.join("empty.conf"), "")?;
    let feeds = d.join("feeds");
    std::fs::create_dir(&feeds)?;
    std::os::unix::fs::symlink(
        fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        feeds.join("Debian-12-derived.osv.zip"),
    )?;
    let os = |s: &str| std::ffi::OsString::from(s);
    let p = |p: &Path| p.as_os_str().to_owned();
    let ds = d.display().to_string();
    let deb_args: Vec<std::ffi::OsString> = [
        "--suite",
        "bookworm",
        "--source",
        &format!("file://{ds}/"),
        "--status",
        &status.display().to_string(),
        "--format",
        "simple",
        "--config",
        &format!("{ds}/empty.conf"),
        "--whitelist",
        &format!("{ds}/no-whitelist"),
        "--history",
        &format!("{ds}/no-history"),
    ]
    .iter()
    .map(|s| os(s))
    .collect();
    let idx = d.join("advisories.pbidx");
    let scan_args = vec![
        os("scan"),
        os("--index"),
        p(&idx),
        os("--dpkg-status"),
        p(&status),
        os("--os"),
        os("debian:12"),
        os("--feeds"),
        p(&feeds),
        os("--format"),
        os("json"),
    ];
    let patchbay = Path::new(env!("CARGO_BIN_EXE_patchbay"));
    let (debsecan, out) = time_v(WHOLE_REPS, || Ok(()), &exe, &deb_args)?;
    let theirs: BTreeSet<(String, String)> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .collect();
    let remove = || match std::fs::remove_file(&idx) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    };
    let (cold, cold_out) = time_v(WHOLE_REPS, remove, patchbay, &scan_args)?;
    let index_bytes = std::fs::metadata(&idx)?.len();
    let (warm, warm_out) = time_v(WHOLE_REPS, || Ok(()), patchbay, &scan_args)?;
    if cold_out != warm_out {
        bail!("patchbay scan: a warm scan printed other findings than a cold one");
    }
    let found: Vec<serde_json::Value> = serde_json::from_slice(&warm_out)?;
    let ours: BTreeSet<(String, String)> = found
        .iter()
        .map(|f| {
            (
                f["advisory"].as_str().unwrap_or_default().to_string(),
                f["package"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if theirs != ours {
        bail!(
            "debsecan disagrees on the 707-package host: {} (advisory, package) pairs there, {} here, {} in common",
            theirs.len(),
            ours.len(),
            theirs.intersection(&ours).count()
        );
    }
    Ok(Some(ScanProcesses {
        findings: found.len(),
        pairs: ours.len(),
        index_bytes,
        debsecan,
        warm,
        cold,
    }))
}

fn print_scan_processes(s: &ScanProcesses, goals: &mut Vec<Goal>) {
    println!(
        "\n## Whole processes: patchbay scan vs debsecan on the real Debian 12 host \
         (707 packages, {} findings, {} (advisory, package) pairs — the same in both), \
         the full Debian 12 zip; `/usr/bin/time -v`, median of {WHOLE_REPS}",
        s.findings, s.pairs
    );
    println!(
        "compiled index: {:.1} MB on disk",
        s.index_bytes as f64 / 1e6
    );
    println!("| process | wall (median) | min–max | peak RSS (median) | debsecan ÷ this (wall) |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, p: &Proc| {
        println!(
            "| {name} | {:.1} ms | {:.1}–{:.1} ms | {:.1} MiB | {:.1} |",
            ms(p.wall.median),
            ms(p.wall.min),
            ms(p.wall.max),
            p.rss_kb.median / 1024.0,
            s.debsecan.wall.median / p.wall.median
        );
    };
    row("debsecan (baseline)", &s.debsecan);
    row("patchbay scan, warm (compiled index read)", &s.warm);
    row(
        "patchbay scan, cold (OSV zip parsed, index built and written)",
        &s.cold,
    );
    goals.push(Goal {
        what: "patchbay scan, warm, whole process (707-package host)".into(),
        value: format!(
            "{:.1} ms, {:.1} MiB; {:.1}× faster than debsecan",
            ms(s.warm.wall.median),
            s.warm.rss_kb.median / 1024.0,
            s.debsecan.wall.median / s.warm.wall.median
        ),
        goal: "≤ 19 ms, ≤ 40 MiB, ≥ 10×",
        met: Some(
            s.warm.wall.median <= 0.019
                && s.warm.rss_kb.median <= 40.0 * 1024.0
                && s.debsecan.wall.median / s.warm.wall.median >= 10.0,
        ),
    });
    goals.push(Goal {
        what: "patchbay scan, cold (building the index), whole process".into(),
        value: format!("{:.1} ms", ms(s.cold.wall.median)),
        goal: "≤ 300 ms",
        met: Some(s.cold.wall.median <= 0.300),
    });
}

/// `patchbay serve`'s resident memory once it holds every staged advisory:
/// a server on a fresh SQLite data directory, `patchbay feeds import` of
/// `fixtures/feeds` (another process, as an operator runs it), then one
/// worklist request, which makes the server build its advisory index.
fn server_rss() -> anyhow::Result<(u64, u64, u64)> {
    let patchbay = env!("CARGO_BIN_EXE_patchbay");
    let dir = tempfile::tempdir()?;
    let d = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(patchbay)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| {
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while ureq::get(&format!("{url}/healthz")).call().is_err() {
            if Instant::now() > deadline {
                bail!("patchbay serve did not answer /healthz within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let import = Command::new(patchbay)
            .args(["feeds", "import", "--data-dir"])
            .arg(&d)
            .arg(fixtures().join("feeds"))
            .output()?;
        if !import.status.success() {
            bail!("feeds import: {}", String::from_utf8_lossy(&import.stderr));
        }
        let kb = |field: &str| -> anyhow::Result<u64> {
            std::fs::read_to_string(format!("/proc/{}/status", child.id()))?
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| anyhow!("no {field} for the server"))
        };
        let before = kb("VmRSS:")?;
        let token = std::fs::read_to_string(d.join("admin.token"))?;
        ureq::get(&format!("{url}/api/v1/worklist?limit=10"))
            .header("Authorization", &format!("Bearer {}", token.trim()))
            .call()
            .context("GET /api/v1/worklist")?;
        Ok((before, kb("VmRSS:")?, kb("VmHWM:")?))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
