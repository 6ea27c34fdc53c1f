//! Integration tests of the execution layer against real package managers — no
//! mocks: a debootstrapped Debian 12 root, a local apt repository served over
//! HTTP on 127.0.0.1, rpm installroots with dnf and zypper, an Alpine 3.23 root
//! with its own apk-tools 3 and a signed local apk repository (`apk.rs`), a
//! scripted HTTP peer playing the server for check-in jobs (`jobs.rs`), the
//! real server with real agents in network namespaces (`rollout.rs`, and every
//! agent refusal through it in `refusals.rs`, measured health values through it
//! in `numeric.rs`; three server replicas on one PostgreSQL behind HAProxy,
//! restarted and killed under a rollout, in `replicas.rs`), the chaos matrix's
//! rows (`chaos.rs`: PostgreSQL outages, packet loss and partitions, a full
//! disk, skewed clocks), and the
//! agent run as a separate process: the shipped `patchbay-agent` binary of this
//! package (`CARGO_BIN_EXE_patchbay-agent`, built by cargo before these tests), so
//! flag parsing, logging, the printed JSON and the exit codes are tested as they
//! ship.
//!
//! This binary has its own small test runner (`harness = false`): the tests run
//! in parallel threads on per-test roots, each with a wall time printed. The
//! runner understands what `cargo test` passes: name filters, `--exact`,
//! `--list`, `--test-threads=N`, and ignores other flags.
//!
//! Nothing here skips silently: a missing tool is installed with apt-get (we
//! run as root, as CI does) and a failure to get one fails the tests with a
//! message saying what is missing.

mod apk;
mod apt;
mod backup;
mod chaos;
mod crash;
mod jobs;
mod numeric;
mod refusals;
mod rehearse;
mod replicas;
mod rollout;
mod rpm;
mod support;
mod unmanaged;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A test: name and function.
type Test = (&'static str, fn());

fn tests() -> Vec<Test> {
    let mut t: Vec<Test> = Vec::new();
    t.extend(apt::TESTS);
    t.extend(jobs::TESTS);
    t.extend(apk::TESTS);
    t.extend(rpm::TESTS);
    t.extend(rollout::TESTS);
    t.extend(refusals::TESTS);
    t.extend(numeric::TESTS);
    t.extend(crash::TESTS);
    t.extend(replicas::TESTS);
    t.extend(chaos::TESTS);
    t.extend(unmanaged::TESTS);
    t.extend(rehearse::TESTS);
    t.extend(backup::TESTS);
    t
}

fn main() {
    let mut filters = Vec::new();
    let mut exact = false;
    let mut list = false;
    let mut threads: usize = std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--test-threads" => {
                threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(threads);
            }
            s if s.starts_with("--test-threads=") => {
                threads = s["--test-threads=".len()..].parse().unwrap_or(threads);
            }
            "--skip" | "--format" | "--color" | "-Z" | "--logfile" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filters.push(s.to_owned()),
        }
    }
    let selected: Vec<Test> = tests()
        .into_iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    println!("\nrunning {} tests", selected.len());
    let start = Instant::now();
    let queue = Arc::new(Mutex::new(selected.clone()));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let queue = Arc::clone(&queue);
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                loop {
                    let Some((name, f)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let res = catch_unwind(AssertUnwindSafe(f));
                    let secs = t.elapsed().as_secs_f64();
                    let mut out = std::io::stdout().lock();
                    match res {
                        Ok(()) => {
                            let _ = writeln!(out, "test {name} ... ok ({secs:.1}s)");
                        }
                        Err(_) => {
                            let _ = writeln!(out, "test {name} ... FAILED ({secs:.1}s)");
                            failed.lock().unwrap().push(name.to_owned());
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let failed = failed.lock().unwrap().clone();
    let secs = start.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {} passed; 0 failed; finished in {secs:.1}s\n",
            selected.len()
        );
    } else {
        println!("\nfailures:");
        for f in &failed {
            println!("    {f}");
        }
        println!(
            "\ntest result: FAILED. {} passed; {} failed; finished in {secs:.1}s\n",
            selected.len() - failed.len(),
            failed.len()
        );
        std::process::exit(101);
    }
}
