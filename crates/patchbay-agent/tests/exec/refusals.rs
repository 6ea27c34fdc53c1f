//! Agent refusals end to end through the real server (issue 13, acceptance:
//! "Refusals tested: bad signature, key not the pinned one, unknown check,
//! expired deadline, package not in the job, jobs disabled in config — each
//! refused by the agent, reported, and shown in `deploy show`"), once per
//! engine: a real `patchbay serve` (SQLite; PostgreSQL on a fresh database of
//! `PATCHBAY_TEST_PG_URL`'s server) and three hosts built as in `rollout.rs`
//! (a copy of the debootstrapped Debian 12 root with `pb-demo` 1.0, its own
//! network namespace, the local apt repository and the server reachable only
//! through relays on its link, a real `patchbay-agent` in loop mode). Here the
//! relay to the server is one the test controls: it passes bytes, alters them
//! (a tampering middle box) or holds the server's answers back (a stalled link).
//!
//! Each refusal is provoked by a realistic route, through a deployment created
//! and started over the API (one ring of one host, budget 0, rollback `none`):
//!
//! | refusal | route | reported |
//! |---|---|---|
//! | bad signature | the relay rewrites the job's `"version":"1.1"` to `1.2` in the check-in answer | `refused`, `bad_signature` |
//! | unknown check | the deployment names a check (`disk`) the agent's configuration does not define | `refused`, `unknown_check` |
//! | expired deadline | `job_timeout` 4 s; the relay holds the server's answers until the server has failed the job for its deadline, then lets them through | `refused`, `expired` (after the server's own deadline failure) |
//! | package not in the job | the host has a local package `pb-plugin` that depends on `pb-demo (= 1.0)`: installing 1.1 would remove it | `failed`, step `scope` (the execution layer's pre-flight: admitted, declined before dpkg ran) |
//! | jobs disabled | a host whose configuration says `[jobs] enabled = false` | `refused`, `jobs_disabled` |
//! | key not the pinned one | the relay replaces the job's signature with a valid one over the same job by another real ed25519 key (an impostor's) | `refused`, `bad_signature` |
//!
//! The route of a server restarted with a new `DATA_DIR/server-signing.key`
//! after the agents enrolled cannot produce such a job: the restarted server
//! refuses every audited change on top of an audit log its key did not sign
//! (a key is replaced with `patchbay keys rotate` instead, ADR 0007), so it creates no
//! deployment and signs no job. The test restarts it so and asserts exactly
//! that, after the six cases.
//!
//! For each: (a) the agent ran nothing — its root's dpkg database is unchanged
//! and its journal has no record of the job key (for `scope`: the journal shows
//! the pre-flight stopping at the scope step, no apply step); (b) the result
//! reached the server and is stored — the job's stored result (outcome, code,
//! message), the rollout job's state and error, one `job.result` audit entry
//! with the code; (c) `patchbay deploy show DEP` — the real CLI binary — shows
//! it on the host's row, as text and as `--format json`.

use crate::rollout::{Engine, Host, Server, job_of, toml_str};
use crate::support::{AGENT, deb_repo, drop_in_parallel, ensure_tools, in_parallel, run, wait_for};
use patchbay_core::audit::Signer;
use patchbay_core::job::{SignedJob, sign};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "refusals::sqlite_six_refusals_through_the_real_server",
        sqlite_six_refusals_through_the_real_server,
    ),
    (
        "refusals::postgres_six_refusals_through_the_real_server",
        postgres_six_refusals_through_the_real_server,
    ),
];

fn sqlite_six_refusals_through_the_real_server() {
    six_refusals(Engine::Sqlite);
}

fn postgres_six_refusals_through_the_real_server() {
    six_refusals(Engine::Postgres);
}

/// What the controlled relay does with the server's bytes.
const PASS: u8 = 0;
/// Rewrites [`FROM`] to [`TO`] (same length: no header changes).
const TAMPER: u8 = 1;
/// Keeps the server's bytes until the mode changes.
const HOLD: u8 = 2;
/// Replaces each job's signature with one by [`impostor`]'s key over the
/// same job (same length: no header changes).
const RESIGN: u8 = 3;
const FROM: &[u8] = br#""version":"1.1""#;
const TO: &[u8] = br#""version":"1.2""#;

/// A relay from an agent to the server that the test steers.
#[derive(Clone)]
struct Link {
    mode: Arc<AtomicU8>,
    /// How many times the tampering rewrote the job.
    tampered: Arc<AtomicUsize>,
}

impl Link {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Listens on `bind` (any port) and relays each connection to `to`; the
/// server-to-agent direction obeys the link's mode. Returns the port.
fn steered_relay(bind: Ipv4Addr, to: SocketAddr, link: Link) -> u16 {
    let listener =
        TcpListener::bind((bind, 0)).unwrap_or_else(|e| panic!("binding a relay on {bind}: {e}"));
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let link = link.clone();
            std::thread::spawn(move || {
                let Ok(outbound) = TcpStream::connect(to) else {
                    return;
                };
                let (Ok(in2), Ok(out2)) = (inbound.try_clone(), outbound.try_clone()) else {
                    return;
                };
                let up = std::thread::spawn(move || crate::rollout::copy_then_close(in2, out2));
                steer(outbound, inbound, &link);
                let _ = up.join();
            });
        }
    });
    port
}

/// The key of an impostor: a real ed25519 key, not the one the agents pinned.
fn impostor() -> Signer {
    Signer::from_seed(&[0x5a; 32])
}

/// Copies the server's bytes to the agent: held while the mode is [`HOLD`],
/// rewritten while it is [`TAMPER`] or [`RESIGN`].
fn steer(mut from: TcpStream, mut to: TcpStream, link: &Link) {
    let mut buf = [0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while link.mode.load(Ordering::SeqCst) == HOLD {
            std::thread::sleep(Duration::from_millis(50));
        }
        let out: Vec<u8> = match link.mode.load(Ordering::SeqCst) {
            TAMPER => {
                let mut data = std::mem::take(&mut pending);
                let mut i = 0;
                while i + FROM.len() <= data.len() {
                    if &data[i..i + FROM.len()] == FROM {
                        data[i..i + FROM.len()].copy_from_slice(TO);
                        link.tampered.fetch_add(1, Ordering::SeqCst);
                        i += FROM.len();
                    } else {
                        i += 1;
                    }
                }
                data
            }
            RESIGN => {
                // Whole responses only: the signatures are in the JSON body.
                let mut data = Vec::new();
                while let Some(len) = response_len(&pending) {
                    let mut resp: Vec<u8> = pending.drain(..len).collect();
                    link.tampered.fetch_add(resign(&mut resp), Ordering::SeqCst);
                    data.extend(resp);
                }
                data
            }
            _ => std::mem::take(&mut pending),
        };
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.write_all(&pending);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The length of the first complete HTTP response in `b` (headers and a
/// `Content-Length` body); without a `Content-Length`, everything there is.
fn response_len(b: &[u8]) -> Option<usize> {
    let end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&b[..end]).to_ascii_lowercase();
    let Some(cl) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    else {
        return Some(b.len());
    };
    (b.len() >= end + cl).then_some(end + cl)
}

/// Signs every job of a check-in answer again with the impostor's key, in
/// place; returns how many.
fn resign(resp: &mut [u8]) -> usize {
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return 0;
    };
    let Ok(body) = serde_json::from_slice::<Value>(&resp[end + 4..]) else {
        return 0;
    };
    let mut n = 0;
    for j in body["jobs"].as_array().into_iter().flatten() {
        let Ok(signed) = serde_json::from_value::<SignedJob>(j.clone()) else {
            continue;
        };
        let forged = sign(signed.job.clone(), &impostor());
        let (old, new) = (signed.signature.as_bytes(), forged.signature.as_bytes());
        assert_eq!(old.len(), new.len(), "signatures have one length");
        if let Some(at) = resp.windows(old.len()).position(|w| w == old) {
            resp[at..at + old.len()].copy_from_slice(new);
            n += 1;
        }
    }
    n
}

/// A host of this test: the rollout test's host with its server link replaced
/// by a steered relay.
struct Steered {
    host: Host,
    link: Link,
}

fn prepare(n: u8, slot: u8, repo: SocketAddr, server: SocketAddr) -> Steered {
    let mut host = Host::prepare(n, slot, repo, server);
    let link = Link {
        mode: Arc::new(AtomicU8::new(PASS)),
        tampered: Arc::new(AtomicUsize::new(0)),
    };
    host.server_port = steered_relay(host.net.host_ip, server, link.clone());
    Steered { host, link }
}

/// The agent configuration of every host but the disabled one: jobs enabled,
/// one check `web` (always passes here: no job may run anyway).
fn enabled_config() -> String {
    format!(
        "[jobs]\nenabled = true\nreboot_command = [\"/bin/false\"]\n\n[[check]]\nname = \"web\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {}]\ntimeout_secs = 30\n",
        toml_str("true")
    )
}

/// Installs a local package `pb-plugin` 1.0 that depends on exactly
/// `pb-demo (= 1.0)` (an in-house package pinned to its host's version).
fn install_pinned_plugin(h: &Host) {
    let b = h.root.scratch.join("pb-plugin");
    std::fs::create_dir_all(b.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(b.join("usr/share/pb-plugin")).unwrap();
    std::fs::write(b.join("usr/share/pb-plugin/version"), "1.0\n").unwrap();
    std::fs::write(
        b.join("DEBIAN/control"),
        "Package: pb-plugin\nVersion: 1.0\nArchitecture: all\nMaintainer: Patchbay Tests <tests@example.invalid>\nDepends: pb-demo (= 1.0)\nDescription: in-house plugin pinned to pb-demo 1.0\n",
    )
    .unwrap();
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&b)
        .arg(h.root.path.join("tmp/pb-plugin_1.0_all.deb")));
    h.root.chroot(&["dpkg", "-i", "/tmp/pb-plugin_1.0_all.deb"]);
    std::fs::remove_file(h.root.path.join("tmp/pb-plugin_1.0_all.deb")).unwrap();
    assert_eq!(h.root.version("pb-plugin").as_deref(), Some("1.0"));
}

/// A deployment of pb-demo 1.1 to `host` alone: one ring, budget 0, no rollback.
fn one_host_spec(host: &str, checks: &[&str], job_timeout: &str) -> Value {
    json!({
        "packages": [{"name": "pb-demo", "version": "1.1"}],
        "assets": [host],
        "checks": checks,
        "job_timeout": job_timeout,
        "rings": [{"name": "only", "assets": [host], "error_budget": "0", "rollback": "none"}],
    })
}

/// Creates and starts a deployment; returns its id.
fn start(s: &Server, spec: Value) -> String {
    let d = s.post("/api/v1/deployments", spec);
    let id = d["deployment"]["id"].as_str().unwrap().to_owned();
    s.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
    id
}

/// The stored result of `key` in a deployment's detail.
fn stored_result<'a>(d: &'a Value, key: &str) -> Option<&'a Value> {
    d["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["key"] == key))
}

/// Waits until the job of `host` in `id` is terminal and its result stored.
fn wait_result(s: &Server, h: &Host, id: &str) -> Value {
    let key = format!("{id}/{}", h.name);
    let start = Instant::now();
    loop {
        let d = s.get(&format!("/api/v1/deployments/{id}"));
        let state = job_of(&d, &h.name)["state"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let terminal = matches!(
            state.as_str(),
            "failed" | "succeeded" | "rolled_back" | "rollback_failed" | "skipped"
        );
        if terminal && stored_result(&d, &key).is_some() && d["deployment"]["status"] != "running" {
            return d;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let log = h.agent_log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            panic!(
                "{id}: no stored result for {key} within 120 s (job {state}): {:#}\n--- agent log (newest first)\n{}\n--- server log (newest first)\n{}",
                d["rollout"],
                tail.join("\n"),
                s.log()
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `patchbay deploy show ID [--format json]` with the real CLI binary.
fn deploy_show(s: &Server, id: &str, json_out: bool) -> String {
    let bin = Path::new(AGENT).with_file_name("patchbay");
    let token = std::fs::read_to_string(s.dir.path().join("data/admin.token")).unwrap();
    let mut c = Command::new(&bin);
    c.args(["deploy", "show", id])
        .args(["--url", &format!("http://{}", s.addr)])
        .args(["--token", token.trim()])
        .env_remove("PATCHBAY_URL")
        .env_remove("PATCHBAY_TOKEN")
        .stdin(Stdio::null());
    if json_out {
        c.args(["--format", "json"]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "patchbay deploy show {id} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What a case expects the server and the CLI to show.
struct Expect<'a> {
    /// `refused` (with `code`) or `failed` (with `step`).
    outcome: &'a str,
    code: Option<&'a str>,
    step: Option<&'a str>,
    /// A piece of the agent's message.
    message: &'a str,
    /// The rollout job's error starts with this.
    error: &'a str,
}

/// Asserts (a) nothing ran, (b) the result is stored, (c) `deploy show`
/// shows it; returns the text of `deploy show` (printed).
fn check_case(
    s: &Server,
    h: &Host,
    id: &str,
    d: &Value,
    before: &std::collections::BTreeMap<String, String>,
    e: &Expect<'_>,
) {
    let key = format!("{id}/{}", h.name);
    // (a) Nothing changed in the root; no execution in the journal.
    let now = h.root.packages();
    let changed: Vec<String> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| format!("{k} {v}"))
        .chain(
            before
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| format!("{k} removed")),
        )
        .collect();
    assert!(changed.is_empty(), "{}: dpkg changed: {changed:?}", h.name);
    let recs = h.journal_of(&key);
    if e.step == Some("scope") {
        let steps: Vec<&str> = recs
            .iter()
            .filter(|r| r["event"] == "step")
            .map(|r| r["step"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            steps.last(),
            Some(&"scope"),
            "the pre-flight stops at scope: {recs:#?}"
        );
        assert!(
            recs.iter()
                .any(|r| r["event"] == "step" && r["step"] == "scope" && r["ok"] == false),
            "{recs:#?}"
        );
        assert!(
            recs.iter()
                .any(|r| r["event"] == "finished" && r["ok"] == false),
            "{recs:#?}"
        );
    } else {
        assert!(recs.is_empty(), "{key} reached the journal: {recs:#?}");
    }
    // (b) Stored: the job's result, the rollout job, the audit entry.
    let r = stored_result(d, &key).unwrap();
    assert_eq!(r["outcome"], e.outcome, "{r:#}");
    assert_eq!(r["refusal"].as_str(), e.code, "{r:#}");
    if let Some(step) = e.step {
        assert_eq!(r["step"], step, "{r:#}");
    }
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(msg.contains(e.message), "{msg:?} lacks {:?}", e.message);
    let j = job_of(d, &h.name);
    assert_eq!(j["state"], "failed", "{j:#}");
    assert_eq!(j["failed"], true, "{j:#}");
    let err = j["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(e.error),
        "{err:?} does not start with {:?}",
        e.error
    );
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    let audits: Vec<Value> = s
        .audit("job.result")
        .into_iter()
        .filter(|a| a["target"] == format!("job:{key}"))
        .collect();
    assert_eq!(audits.len(), 1, "{audits:#?}");
    assert_eq!(audits[0]["detail"]["outcome"], e.outcome, "{:#}", audits[0]);
    assert_eq!(
        audits[0]["detail"]["refusal"].as_str(),
        e.code,
        "{:#}",
        audits[0]
    );
    // (c) The CLI, as JSON and as text.
    let shown: Value = serde_json::from_str(&deploy_show(s, id, true)).unwrap();
    let sj = job_of(&shown, &h.name);
    assert_eq!(sj["state"], "failed", "{sj:#}");
    assert_eq!(sj["error"], j["error"], "{sj:#}");
    let sr = stored_result(&shown, &key).unwrap();
    assert_eq!(sr["refusal"].as_str(), e.code, "{sr:#}");
    assert_eq!(sr["message"], r["message"], "{sr:#}");
    let text = deploy_show(s, id, false);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{} ", h.name)))
        .unwrap_or_else(|| panic!("no row for {} in deploy show:\n{text}", h.name));
    assert!(row.contains("failed"), "{row}");
    if let Some(code) = e.code {
        assert!(row.contains(code), "the row does not name {code}: {row}");
    }
    if let Some(step) = e.step {
        assert!(row.contains(&format!("{step}: ")), "{row}");
    }
    assert!(
        row.contains(e.message),
        "the row lacks the agent's message {:?}: {row}",
        e.message
    );
    println!(
        "    deploy show {id}:\n{}",
        text.lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Restarts `patchbay serve` with the same arguments and a new signing key
/// in its data directory; returns the new public key.
fn restart_with_new_key(s: &mut Server) -> String {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.child.id())).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let _ = s.child.kill();
    let _ = s.child.wait();
    let key_path = s.dir.path().join("data/server-signing.key");
    let old = std::fs::read_to_string(&key_path).unwrap();
    let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let new = hex_encode(&seed);
    assert_ne!(old.trim(), new);
    std::fs::write(&key_path, &new).unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(s.dir.path().join("server.log"))
        .unwrap();
    let start = Instant::now();
    loop {
        s.child = Command::new(&args[0])
            .args(&args[1..])
            .env("RUST_LOG", "info")
            .env_remove("PATCHBAY_DB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .unwrap();
        let up = Instant::now();
        let mut exited = false;
        while s.api.get_text("/healthz").is_err() {
            if let Ok(Some(_)) = s.child.try_wait() {
                exited = true;
                break;
            }
            assert!(
                up.elapsed() < Duration::from_secs(60),
                "restarted server did not answer:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if !exited {
            break;
        }
        // The port may still be held for a moment: try again.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start again:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let who = s.get("/api/v1/whoami");
    let published = who.to_string();
    let public = patchbay_core::audit::Signer::from_seed(&seed).public_hex();
    assert!(
        published.contains(&public),
        "whoami does not publish the new key: {who:#}"
    );
    public
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn six_refusals(engine: Engine) {
    let t0 = Instant::now();
    let phase = |what: &str| {
        println!(
            "  [refusals e2e {} {:>6.1}s] {what}",
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
    let mut server = Server::start(engine);
    // Slots apart from the rollout test's (1–10).
    let first = match engine {
        Engine::Sqlite => 21,
        Engine::Postgres => 24,
    };
    let addr = server.addr;
    let mut hosts: Vec<Steered> = in_parallel(3, |n| prepare(n, first + n - 1, repo_addr, addr));
    // h1: jobs enabled (signature, check, deadline, key); h2: the pinned
    // plugin (scope); h3: jobs disabled.
    hosts[0].host.root.config(&enabled_config());
    hosts[1].host.root.config(&enabled_config());
    install_pinned_plugin(&hosts[1].host);
    hosts[2].host.root.config(&format!(
        "[jobs]\nenabled = false\n\n[[check]]\nname = \"web\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str("true")
    ));
    phase("3 Debian roots with pb-demo 1.0 in their namespaces, steered relays to the server");
    let et = server.post(
        "/api/v1/enroll-tokens",
        json!({"uses": 3, "ttl_secs": 3600}),
    );
    let et = et["token"].as_str().unwrap().to_owned();
    for h in &mut hosts {
        h.host.start_agent(&et);
    }
    for h in &hosts {
        let path = format!("/api/v1/assets/{}", h.host.name);
        wait_for(
            &format!("{} to enrol and report its inventory", h.host.name),
            Duration::from_secs(60),
            || {
                server
                    .api
                    .get::<Value>(&path)
                    .is_ok_and(|a| a["inventory_hash"].is_string())
            },
        );
    }
    phase("3 agents enrolled (server key pinned)");
    let (h1, h2, h3) = (&hosts[0], &hosts[1], &hosts[2]);

    // 1. Bad signature: the relay rewrites the job's version on its way.
    let before = h1.host.root.packages();
    h1.link.set(TAMPER);
    let id = start(&server, one_host_spec(&h1.host.name, &["web"], "10m"));
    let d = wait_result(&server, &h1.host, &id);
    h1.link.set(PASS);
    assert!(
        h1.link.tampered.load(Ordering::SeqCst) >= 1,
        "the relay never saw the job's version"
    );
    check_case(
        &server,
        &h1.host,
        &id,
        &d,
        &before,
        &Expect {
            outcome: "refused",
            code: Some("bad_signature"),
            step: None,
            message: "the signature does not verify under the pinned server key",
            error: "refused (bad_signature)",
        },
    );
    phase(&format!(
        "{id}: tampered job refused (bad_signature), stored, shown"
    ));

    // 2. Unknown check: the deployment names one the agent does not define.
    let id = start(
        &server,
        one_host_spec(&h1.host.name, &["web", "disk"], "10m"),
    );
    let d = wait_result(&server, &h1.host, &id);
    check_case(
        &server,
        &h1.host,
        &id,
        &d,
        &before,
        &Expect {
            outcome: "refused",
            code: Some("unknown_check"),
            step: None,
            message: "check \"disk\" is not defined in this agent's configuration",
            error: "refused (unknown_check)",
        },
    );
    phase(&format!("{id}: unknown check refused, stored, shown"));

    // 3. Expired: the server's answers are held until the server itself
    // failed the job for its deadline; then the agent gets it, too late.
    h1.link.set(HOLD);
    let id = start(&server, one_host_spec(&h1.host.name, &["web"], "4s"));
    let leased = Instant::now();
    wait_for(
        "the server to fail the held job for its deadline",
        Duration::from_secs(60),
        || {
            let d = server.get(&format!("/api/v1/deployments/{id}"));
            job_of(&d, &h1.host.name)["state"] == "failed"
        },
    );
    let d = server.get(&format!("/api/v1/deployments/{id}"));
    assert!(
        stored_result(&d, &format!("{id}/{}", h1.host.name)).is_none(),
        "a result arrived through a held link"
    );
    h1.link.set(PASS);
    println!(
        "    link held {:.1} s; the server failed the job for its deadline first",
        leased.elapsed().as_secs_f64()
    );
    let d = wait_result(&server, &h1.host, &id);
    check_case(
        &server,
        &h1.host,
        &id,
        &d,
        &before,
        &Expect {
            outcome: "refused",
            code: Some("expired"),
            step: None,
            message: "has passed",
            error: "no report from the agent by the job's deadline",
        },
    );
    phase(&format!(
        "{id}: job delivered past its deadline refused (expired), stored, shown"
    ));

    // 4. Package not in the job: pb-demo 1.1 would remove pb-plugin.
    let before2 = h2.host.root.packages();
    let id = start(&server, one_host_spec(&h2.host.name, &["web"], "10m"));
    let d = wait_result(&server, &h2.host, &id);
    check_case(
        &server,
        &h2.host,
        &id,
        &d,
        &before2,
        &Expect {
            outcome: "failed",
            code: None,
            step: Some("scope"),
            message: "pb-plugin (1.0 -> absent): not named in the job: would be removed",
            error: "scope: refusing: the transaction would touch packages the job does not allow",
        },
    );
    assert_eq!(h2.host.root.version("pb-demo").as_deref(), Some("1.0"));
    phase(&format!(
        "{id}: apply outside its pins declined by the pre-flight (scope), stored, shown"
    ));

    // 5. Jobs disabled in the agent's configuration.
    let before3 = h3.host.root.packages();
    let id = start(&server, one_host_spec(&h3.host.name, &["web"], "10m"));
    let d = wait_result(&server, &h3.host, &id);
    check_case(
        &server,
        &h3.host,
        &id,
        &d,
        &before3,
        &Expect {
            outcome: "refused",
            code: Some("jobs_disabled"),
            step: None,
            message: "[jobs] enabled = false",
            error: "refused (jobs_disabled)",
        },
    );
    phase(&format!(
        "{id}: job to a host with jobs disabled refused, stored, shown"
    ));

    // 6. Key not the pinned one: the job the server issued, signed again by
    // the middle box with a real key of its own (an impostor's).
    h1.link.tampered.store(0, Ordering::SeqCst);
    h1.link.set(RESIGN);
    let id = start(&server, one_host_spec(&h1.host.name, &["web"], "10m"));
    let d = wait_result(&server, &h1.host, &id);
    h1.link.set(PASS);
    assert!(
        h1.link.tampered.load(Ordering::SeqCst) >= 1,
        "the relay never signed a job again"
    );
    let pinned: Value = serde_json::from_str(
        &std::fs::read_to_string(h1.host.root.state.join("identity.json")).unwrap(),
    )
    .unwrap();
    let real = server.get("/api/v1/whoami")["server_public_key"].clone();
    assert_eq!(pinned["server_public_key"], real, "{pinned:#}");
    assert_ne!(real, json!(impostor().public_hex()));
    check_case(
        &server,
        &h1.host,
        &id,
        &d,
        &before,
        &Expect {
            outcome: "refused",
            code: Some("bad_signature"),
            step: None,
            message: "the signature does not verify under the pinned server key",
            error: "refused (bad_signature)",
        },
    );
    phase(&format!(
        "{id}: job signed by a key other than the pinned one refused, stored, shown"
    ));

    // The other route to a foreign key — the server restarted with a new
    // DATA_DIR/server-signing.key — cannot issue a job at all: the server
    // refuses every audited change on top of an audit log its key did not
    // sign (a key is changed by `patchbay keys rotate`, ADR 0007), so no
    // deployment is created and nothing reaches the agent.
    restart_with_new_key(&mut server);
    let refused = server
        .api
        .send::<_, Value>(
            "POST",
            "/api/v1/deployments",
            &one_host_spec(&h1.host.name, &["web"], "10m"),
        )
        .expect_err("a deployment created by a server whose key changed");
    assert!(
        refused
            .to_string()
            .contains("not signed by this server's key"),
        "{refused}"
    );
    let deps = server.get("/api/v1/deployments");
    assert_eq!(
        deps["items"].as_array().map(Vec::len),
        Some(6),
        "no deployment stored after the key change: {deps:#}"
    );
    phase(
        "server restarted with a new signing key: it refuses to create a deployment (no job signed)",
    );

    drop_in_parallel(hosts);
    drop(server);
    phase("agents stopped, namespaces and roots removed");
}
