//! Numeric health values end to end (issue 13): real agents measure a number
//! with a `metric = true` command check, send it in their job results, and
//! the real server's canary judge decides the ring's health gate on it.
//!
//! A real `patchbay serve` (SQLite; PostgreSQL on a fresh database of
//! `PATCHBAY_TEST_PG_URL`'s server) and four hosts built as in `rollout.rs`
//! (Debian 12 root with `pb-demo` 1.0, own network namespace, agent in loop
//! mode). Each host's `p99` check prints `100 + n` while pb-demo 1.0 is
//! installed in its root and `200 + n` once 1.1 is (every check exits 0: only
//! the numbers can fail the ring); its `junk` check, also a metric, prints
//! `12 ms`, which is not a number. Rolling out 1.1 to the four hosts in one
//! ring: every job succeeds (dpkg shows 1.1), the stored results carry each
//! host's measured values before and after (and no value for `junk`, with the
//! reason in the agent's journal), and the health gate fails on `p99` —
//! higher than the baseline at 98 % confidence by more than the 25 %
//! tolerance — so the deployment halts. `patchbay deploy show --format json`
//! shows the same numbers.

use crate::rollout::{Engine, Host, Server, job_of, toml_str};
use crate::support::{AGENT, deb_repo, drop_in_parallel, ensure_tools, in_parallel, wait_for};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "numeric::sqlite_measured_values_reach_the_health_gate",
        sqlite_measured_values_reach_the_health_gate,
    ),
    (
        "numeric::postgres_measured_values_reach_the_health_gate",
        postgres_measured_values_reach_the_health_gate,
    ),
];

const HOSTS: u8 = 4;

fn sqlite_measured_values_reach_the_health_gate() {
    measured_values_reach_the_health_gate(Engine::Sqlite);
}

fn postgres_measured_values_reach_the_health_gate() {
    measured_values_reach_the_health_gate(Engine::Postgres);
}

/// Host `n`'s agent configuration: `p99` measures 100+n on 1.0, 200+n on 1.1.
fn config(h: &Host, n: u8) -> String {
    let script = format!(
        "if grep -qx 1.1 {root}/usr/share/pb-demo/version; then echo {hi}; else echo {lo}; fi",
        root = h.root.path.display(),
        hi = 200 + u32::from(n),
        lo = 100 + u32::from(n)
    );
    format!(
        "[jobs]\nenabled = true\nreboot_command = [\"/bin/false\"]\n\n\
         [[check]]\nname = \"p99\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {}]\nmetric = true\n\n\
         [[check]]\nname = \"junk\"\nkind = \"command\"\ncommand = [\"echo\", \"12 ms\"]\nmetric = true\n",
        toml_str(&script)
    )
}

/// The `value` of `check` among a result's samples.
fn value_of(samples: &Value, check: &str) -> Option<f64> {
    samples
        .as_array()?
        .iter()
        .find(|s| s["check"] == check)
        .and_then(|s| s["value"].as_f64())
}

fn measured_values_reach_the_health_gate(engine: Engine) {
    let t0 = Instant::now();
    let phase = |what: &str| {
        println!(
            "  [numeric e2e {} {:>6.1}s] {what}",
            engine.name(),
            t0.elapsed().as_secs_f64()
        )
    };
    ensure_tools(&[("ip", "iproute2")]);
    let repo = deb_repo();
    let repo_addr: SocketAddr = repo
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let server = Server::start(engine);
    // Slots apart from the rollout (1–10) and refusal (21–26) tests'.
    let first = match engine {
        Engine::Sqlite => 31,
        Engine::Postgres => 31 + HOSTS,
    };
    let addr = server.addr;
    let mut hosts: Vec<Host> =
        in_parallel(HOSTS, |n| Host::prepare(n, first + n - 1, repo_addr, addr));
    for (i, h) in hosts.iter().enumerate() {
        h.root.config(&config(h, i as u8 + 1));
    }
    let et = server.post(
        "/api/v1/enroll-tokens",
        json!({"uses": HOSTS, "ttl_secs": 3600}),
    );
    let et = et["token"].as_str().unwrap().to_owned();
    for h in &mut hosts {
        h.start_agent(&et);
    }
    for h in &hosts {
        let path = format!("/api/v1/assets/{}", h.name);
        wait_for(
            &format!("{} to enrol and report its inventory", h.name),
            Duration::from_secs(60),
            || {
                server
                    .api
                    .get::<Value>(&path)
                    .is_ok_and(|a| a["inventory_hash"].is_string())
            },
        );
    }
    phase("4 agents enrolled, each with a p99 metric check");

    let d = server.post(
        "/api/v1/deployments",
        json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
               "checks": ["p99", "junk"],
               "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "0", "rollback": "none"}]}),
    );
    let id = d["deployment"]["id"].as_str().unwrap().to_owned();
    server.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
    let start = Instant::now();
    let d = loop {
        let d = server.get(&format!("/api/v1/deployments/{id}"));
        if d["deployment"]["status"] != "running" {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{id} still running: {:#}\n{}",
            d["rollout"],
            hosts[0].agent_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let gate = d["rollout"]["rings"][0]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "health")
        .cloned()
        .unwrap_or_else(|| panic!("no health gate: {:#}", d["rollout"]));
    println!("    health gate: {}", gate["reason"]);
    phase(&format!("{id}: {}", d["deployment"]["status"]));
    assert_eq!(gate["verdict"], "fail", "{gate:#}");
    let reason = gate["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("p99: values higher than baseline at 98 % confidence")
            && reason.contains("more than the 25 % tolerance"),
        "{reason}"
    );
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    for (i, h) in hosts.iter().enumerate() {
        let n = i as f64 + 1.0;
        // The jobs succeeded: only the numbers failed the ring.
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}",
            h.name
        );
        let j = job_of(&d, &h.name);
        assert_eq!(j["state"], "succeeded", "{j:#}");
        // The values the agent measured, as stored and as the judge saw them.
        let key = format!("{id}/{}", h.name);
        let r = d["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no result for {key}"));
        assert_eq!(value_of(&r["baseline"], "p99"), Some(100.0 + n), "{r:#}");
        assert_eq!(value_of(&r["after"], "p99"), Some(200.0 + n), "{r:#}");
        assert_eq!(value_of(&j["after"], "p99"), Some(200.0 + n), "{j:#}");
        // `12 ms` is no number: the sample arrives, passing, without a value.
        let junk = r["after"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["check"] == "junk")
            .unwrap_or_else(|| panic!("no junk sample: {r:#}"));
        assert_eq!(junk["pass"], true, "{junk:#}");
        assert!(junk.get("value").is_none(), "{junk:#}");
        // Why, in the agent's journal of the apply.
        let detail = h
            .journal_of(&key)
            .iter()
            .filter(|rec| rec["event"] == "step")
            .flat_map(|rec| rec["data"].as_array().cloned().unwrap_or_default())
            .find(|c| c["name"] == "junk")
            .map(|c| c["detail"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(
            detail.contains("no value: \"12 ms\" is not a plain decimal number"),
            "{}: junk's detail {detail:?} in {:#?}",
            h.name,
            h.journal_of(&key)
        );
    }
    // The CLI shows the same numbers.
    let bin = Path::new(AGENT).with_file_name("patchbay");
    let token = std::fs::read_to_string(server.dir.path().join("data/admin.token")).unwrap();
    let out = Command::new(&bin)
        .args(["deploy", "show", &id, "--format", "json"])
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--token", token.trim()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["rollout"], d["rollout"]);
    phase(&format!(
        "{id} halted on p99: measured values stored, judged, shown; junk sent without a value"
    ));
    drop_in_parallel(hosts);
}
