//! The unmanaged-software scan (issue 20, item 5) on this machine's own `/`:
//! the default places, then with `/usr/bin` and `/usr/lib/go-*/bin` added to the
//! binaries searched (hundreds of ELF files, some Go), to show what reading
//! ELF section headers costs. Prints medians of `PATCHBAY_BENCH_RUNS` (default
//! 7) runs, the entries visited and the items found.
//!
//! ```text
//! cargo bench -p patchbay-agent --bench unmanaged_scan
//! ```
//!
//! The latest figures are in `docs/benchmarks.md`.

use patchbay_agent::collect::unmanaged::{Settings, scan};
use std::path::Path;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("PATCHBAY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let root = Path::new("/");
    let resolve = |rel: &Path| root.join(rel);
    let mut wide = Settings::default();
    wide.binaries.push("/usr/bin".into());
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("go-") {
                wide.binaries.push(e.path().join("bin"));
            }
        }
    }
    for (what, settings) in [
        ("defaults", Settings::default()),
        ("defaults + /usr/bin + Go", wide),
    ] {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let r = scan(root, &resolve, &settings);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Some(r);
        }
        let (items, stats) = last.unwrap();
        let by_eco = |e: &str| items.iter().filter(|u| u.ecosystem.osv() == e).count();
        println!(
            "{what:>26}: median {:.1} ms over {runs} runs; {} entries visited, {} skipped; items: PyPI {}, npm {}, Go {}, crates.io {}",
            median(times),
            stats.entries,
            stats.skipped,
            by_eco("PyPI"),
            by_eco("npm"),
            by_eco("Go"),
            by_eco("crates.io"),
        );
    }
}
