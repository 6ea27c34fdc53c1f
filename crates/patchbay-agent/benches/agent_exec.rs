//! The agent's execution layer: time and memory of an inventory and of an exact
//! apply in a real Debian 12 root, next to the same work done by plain apt/dpkg
//! commands in the same run; the agent's idle memory in its check-in loop; the
//! stripped size of the release binary.
//!
//! Run it (release build; needs root, debootstrap and apt-utils, as the
//! `patchbay-agent` exec tests do, and reuses their cached debootstrap base).
//! The idle measurement enrols the agent with a real `patchbay serve`, so build
//! the release `patchbay` binary first:
//!
//! ```text
//! cargo build --release -p patchbay && cargo bench -p patchbay-agent --bench agent_exec
//! ```
//!
//! `PATCHBAY_BENCH_RUNS` (default 7) sets the number of timed repetitions; the
//! medians are printed. The latest figures are in `docs/benchmarks.md`.
//!
//! The agent measured is this package's own release binary
//! (`CARGO_BIN_EXE_patchbay-agent`); the server is found next to it. The test
//! support (debootstrap cache, local apt repository over HTTP) is the exec
//! tests' own module.

#[allow(dead_code)]
#[path = "../tests/exec/support.rs"]
mod support;

use patchbay_agent::collect::{CollectOptions, collect};
use patchbay_client::Client;
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_patchbay-agent");

/// The `patchbay` binary of the same profile, next to the agent (another
/// package's binary: cargo does not build it for this bench).
fn patchbay() -> PathBuf {
    let p = Path::new(AGENT).with_file_name("patchbay");
    assert!(
        p.is_file(),
        "{} is missing: the idle measurement needs the server; build it: cargo build --release -p patchbay",
        p.display()
    );
    p
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    patchbay_agent::exec::parse::proc_status_kib(&s, key)
}

/// Waits for `child`, sampling its VmHWM every 2 ms; returns (wall, peak KiB,
/// exit ok).
fn watch(mut child: Child, start: Instant) -> (Duration, u64, bool) {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(v) = status_kib(pid, "VmHWM") {
            peak = peak.max(v);
        }
        if let Some(st) = child.try_wait().unwrap() {
            return (start.elapsed(), peak, st.success());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn reset(root: &support::Root) {
    root.chroot(&[
        "apt-get",
        "install",
        "-y",
        "-q",
        "--allow-downgrades",
        "pb-demo=1.0",
    ]);
}

fn main() {
    // Checked first: a missing server should not cost the whole run.
    let server_bin = patchbay();
    let runs: usize = std::env::var("PATCHBAY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    let root = support::debian_root(&["pb-demo=1.0", "pb-extra=1.0"]);
    let state = root.state.to_str().unwrap().to_owned();
    let rootp = root.path.to_str().unwrap().to_owned();

    // Inventory: the agent's collect() (dpkg status parse + `apt-get -s
    // dist-upgrade`) in-process, against `dpkg-query -W` + `apt-get -s
    // dist-upgrade` run as plain commands in the chroot.
    let (mut inv_agent, mut inv_base) = (Vec::new(), Vec::new());
    let mut packages = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let inv = collect(&CollectOptions {
            root: root.path.clone(),
            pending_updates: true,
            ..Default::default()
        })
        .unwrap();
        inv_agent.push(t.elapsed().as_secs_f64());
        packages = inv.packages.len();
        let t = Instant::now();
        assert!(
            chroot(&root.path, &["dpkg-query", "-W"])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            chroot(&root.path, &["apt-get", "-s", "-q", "dist-upgrade"])
                .status()
                .unwrap()
                .success()
        );
        inv_base.push(t.elapsed().as_secs_f64());
    }

    // Apply pb-demo=1.1: the agent's whole job (lock, apt-get update, dpkg
    // --audit, dpkg-query, simulation, apt-cache show, statvfs, apt-get install,
    // dpkg-query, journal fsyncs) against `apt-get update && apt-get install
    // pb-demo=1.1` in the chroot. Reset to 1.0 between runs, untimed.
    let (mut ap_agent, mut ap_base) = (Vec::new(), Vec::new());
    let (mut peak_agent, mut peak_apt) = (0u64, 0u64);
    for i in 0..runs {
        reset(&root);
        let t = Instant::now();
        let child = Command::new(AGENT)
            .args(["apply", "--root", &rootp, "--state-dir", &state])
            .args(["--job-key", &format!("bench-{i}"), "pb-demo=1.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (d, peak, ok) = watch(child, t);
        assert!(ok, "agent apply failed");
        assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
        ap_agent.push(d.as_secs_f64());
        peak_agent = peak_agent.max(peak);

        reset(&root);
        let t = Instant::now();
        assert!(
            chroot(&root.path, &["apt-get", "-q", "update"])
                .status()
                .unwrap()
                .success()
        );
        let child = chroot(
            &root.path,
            &["apt-get", "install", "-y", "-q", "pb-demo=1.1"],
        )
        .spawn()
        .unwrap();
        let (_, peak, ok) = watch(child, t);
        assert!(ok, "apt-get install failed");
        ap_base.push(t.elapsed().as_secs_f64());
        peak_apt = peak_apt.max(peak);
    }

    // Idle: the release agent enrolled with a real `patchbay serve`, checked in
    // once, sleeping in its loop (interval 1h).
    let (idle_anon, idle_rss) = idle_memory(&root, &server_bin);

    // Binary size.
    let size = std::fs::metadata(AGENT).unwrap().len();
    let stripped_path = root.scratch.join("patchbay-agent.stripped");
    std::fs::copy(AGENT, &stripped_path).unwrap();
    let strip_ok = Command::new("strip")
        .arg(&stripped_path)
        .status()
        .is_ok_and(|s| s.success());
    let stripped = std::fs::metadata(&stripped_path).unwrap().len();

    let mib = |kib: u64| kib as f64 / 1024.0;
    let (ia, ib, aa, ab) = (
        median(inv_agent),
        median(inv_base),
        median(ap_agent),
        median(ap_base),
    );
    println!(
        "\nAgent execution ({runs} runs each, medians; Debian 12 minbase root, {packages} packages)\n"
    );
    println!("| measurement | agent | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| inventory (collect, with pending updates) vs dpkg-query -W + apt-get -s dist-upgrade | {:.3} s | {:.3} s | {:.2} |",
        ia,
        ib,
        ia / ib
    );
    println!(
        "| apply pb-demo=1.1 (whole job) vs apt-get update + apt-get install | {:.3} s | {:.3} s | {:.2} |",
        aa,
        ab,
        aa / ab
    );
    println!(
        "| peak memory during apply (VmHWM) vs apt-get's own peak | {:.1} MiB | {:.1} MiB | {:.2} |",
        mib(peak_agent),
        mib(peak_apt),
        peak_agent as f64 / peak_apt.max(1) as f64
    );
    println!(
        "| idle in the check-in loop: anonymous RSS (RssAnon), goal ≤ 10 MiB | {:.1} MiB | | |",
        mib(idle_anon)
    );
    println!(
        "| idle in the check-in loop: total RSS (VmRSS) | {:.1} MiB | | |",
        mib(idle_rss)
    );
    println!(
        "| release binary, stripped{}, goal ≤ 15 MiB | {:.1} MiB | {:.1} MiB as built | |",
        if strip_ok { "" } else { " (strip FAILED)" },
        stripped as f64 / 1048576.0,
        size as f64 / 1048576.0
    );
    let ok = idle_anon <= 10 * 1024 && stripped <= 15 * 1024 * 1024;
    println!("\ngoals {}", if ok { "met" } else { "NOT met" });
}

fn idle_memory(root: &support::Root, server_bin: &Path) -> (u64, u64) {
    let data = root.scratch.join("server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(server_bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("PATCHBAY_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_for("the server", Duration::from_secs(60), || {
        ureq::get(format!("{url}/healthz")).call().is_ok()
    });
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token: EnrollTokenCreated =
        Client::new(&url, Some(admin.trim().to_owned()), Duration::from_secs(10))
            .send(
                "POST",
                "/api/v1/enroll-tokens",
                &CreateEnrollToken {
                    name: Some("bench".into()),
                    uses: Some(1),
                    ttl_secs: None,
                },
            )
            .unwrap();
    let state = root.scratch.join("idle-agent");
    let mut agent = Command::new(AGENT)
        .args([
            "--server",
            &url,
            "--enroll-token",
            &token.token,
            "--interval",
            "1h",
            "--state-dir",
        ])
        .arg(&state)
        .arg("--root")
        .arg(&root.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_for(
        "the agent's first check-in",
        Duration::from_secs(120),
        || state.join("last-inventory.json").exists(),
    );
    std::thread::sleep(Duration::from_secs(3));
    let anon = status_kib(agent.id(), "RssAnon").unwrap();
    let rss = status_kib(agent.id(), "VmRSS").unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = server.kill();
    let _ = server.wait();
    (anon, rss)
}
