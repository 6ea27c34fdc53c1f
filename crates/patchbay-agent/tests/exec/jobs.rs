//! Server-signed jobs over the check-in, end to end: the real `patchbay-agent`
//! in check-in mode against a scripted HTTP peer that plays the server
//! (enrolment pins a key the test holds; check-in answers carry jobs signed
//! with it and acknowledge results when the script says), on a real Debian 12
//! root with the local apt repository. The peer can also announce key
//! rotations (ADR 0007) in its check-in answers.

use crate::support::{Root, agent_command, debian_root, journal, kill_tree, wait_for};
use jiff::Timestamp;
use patchbay_core::audit::{KeyAnnouncement, Signer};
use patchbay_core::job::{Job, JobKind, PackagePin, SignedJob, sign};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TESTS: &[crate::Test] = &[
    (
        "jobs::apply_job_is_reported_until_acked_and_never_run_twice",
        apply_job_is_reported_until_acked_and_never_run_twice,
    ),
    (
        "jobs::refusals_are_reported_with_their_code_and_nothing_runs",
        refusals_are_reported_with_their_code_and_nothing_runs,
    ),
    (
        "jobs::killed_before_ack_resends_the_result_without_running_again",
        killed_before_ack_resends_the_result_without_running_again,
    ),
    (
        "jobs::rollback_run_check_inventory_and_reboot_jobs",
        rollback_run_check_inventory_and_reboot_jobs,
    ),
    (
        "jobs::a_key_rotation_is_followed_and_the_retired_key_refused",
        a_key_rotation_is_followed_and_the_retired_key_refused,
    ),
];

const ASSET: &str = "web-1";

/// What the scripted server answers to the n-th check-in (0-based): the jobs
/// and the acknowledged keys; `None` holds the request open (never answers).
pub(crate) type Script =
    Box<dyn FnMut(usize, &Value) -> Option<(Vec<SignedJob>, Vec<String>)> + Send>;

struct PeerState {
    checkins: Vec<Value>,
    script: Script,
    /// Key announcements every check-in answer carries.
    announcements: Vec<KeyAnnouncement>,
}

/// A tiny HTTP/1.1 peer playing the Patchbay server's agent API.
pub(crate) struct Peer {
    url: String,
    state: Arc<Mutex<PeerState>>,
}

impl Peer {
    pub(crate) fn start(public_key: String, script: Script) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(PeerState {
            checkins: Vec::new(),
            script,
            announcements: Vec::new(),
        }));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                let key = public_key.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &st, &key);
                });
            }
        });
        Peer { url, state }
    }

    pub(crate) fn checkins(&self) -> Vec<Value> {
        self.state.lock().unwrap().checkins.clone()
    }

    fn announce(&self, a: Vec<KeyAnnouncement>) {
        self.state.lock().unwrap().announcements = a;
    }
}

fn read_request(stream: &TcpStream) -> std::io::Result<(String, Value)> {
    let mut r = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    Ok((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn serve(mut stream: TcpStream, st: &Mutex<PeerState>, key: &str) -> std::io::Result<()> {
    let (path, body) = read_request(&stream)?;
    let answer = if path == "/agent/v1/enroll" {
        json!({
            "agent_id": "agt-1",
            "asset_name": ASSET,
            "agent_secret": "pba_test",
            "checkin_interval_secs": 60,
            "server_public_key": key,
        })
    } else {
        let (reply, announcements) = {
            let mut s = st.lock().unwrap();
            let n = s.checkins.len();
            s.checkins.push(body.clone());
            ((s.script)(n, &body), s.announcements.clone())
        };
        let Some((jobs, acked)) = reply else {
            // Hold the request open, as a server that went away mid-answer.
            std::thread::sleep(Duration::from_secs(600));
            return Ok(());
        };
        json!({
            "stored_hash": body["inventory_hash"],
            "package_rows_written": 0,
            "next_checkin_secs": 60,
            "jobs": jobs,
            "acked": acked,
            "key_announcements": announcements,
        })
    };
    let data = answer.to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{data}",
        data.len()
    )?;
    stream.flush()
}

pub(crate) fn server_key() -> Signer {
    Signer::from_seed(&[42; 32])
}

pub(crate) fn job(key: &str, kind: JobKind, checks: &[&str]) -> Job {
    let now = Timestamp::now();
    Job {
        deployment: "DEP-2026-12-001".into(),
        key: key.into(),
        asset: ASSET.into(),
        not_before: now - jiff::SignedDuration::from_secs(60),
        deadline: now + jiff::SignedDuration::from_secs(3600),
        kind,
        checks: checks.iter().map(|c| c.to_string()).collect(),
    }
}

pub(crate) fn apply_kind(pins: &[(&str, &str)]) -> JobKind {
    JobKind::Apply {
        packages: pins
            .iter()
            .map(|(n, v)| PackagePin {
                name: n.to_string(),
                version: v.to_string(),
            })
            .collect(),
    }
}

fn enabled_with_reboot(marker: &std::path::Path) -> String {
    format!(
        "[jobs]\nenabled = true\ncritical_checks = [\"alive\"]\nreboot_command = [\"touch\", \"{}\"]\n\n[[check]]\nname = \"alive\"\nkind = \"command\"\ncommand = [\"true\"]\n",
        marker.display()
    )
}

pub(crate) const ENABLED: &str = "[jobs]\nenabled = true\nreboot_command = [\"/bin/false\"]\n\n[[check]]\nname = \"alive\"\nkind = \"command\"\ncommand = [\"true\"]\n";

/// One `--once` check-in of the real agent against `peer` (`--long-poll 0`
/// unless `extra` gives one).
pub(crate) fn once(root: &Root, peer: &Peer, config: &str, extra: &[&str]) -> Output {
    let poll: &[&str] = if extra.contains(&"--long-poll") {
        &[]
    } else {
        &["--long-poll", "0"]
    };
    let out = agent_command()
        .args([
            "--server",
            &peer.url,
            "--enroll-token",
            "pbe_test",
            "--once",
        ])
        .args(["--root", root.path.to_str().unwrap()])
        .args(["--state-dir", root.state.to_str().unwrap()])
        .args(["--config", config, "--no-pending-updates"])
        .args(poll)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agent --once failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn results(checkin: &Value) -> Vec<Value> {
    checkin["results"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn result_for<'a>(checkin: &'a Value, key: &str) -> &'a Value {
    checkin["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["key"] == key))
        .unwrap_or_else(|| panic!("no result for {key} in {:#}", checkin["results"]))
}

/// Journal records of `key` with `event`.
fn events(root: &Root, key: &str, event: &str) -> usize {
    if !root.state.join("journal.jsonl").exists() {
        return 0;
    }
    journal(&root.state)
        .iter()
        .filter(|r| r["job_key"] == key && r["event"] == event)
        .count()
}

/// (a) A good apply job installs the exact version, its result (succeeded,
/// baseline and after checks, changed versions) is sent with every check-in
/// until acknowledged and then no more; (b) the same job delivered again is
/// not run again: the journal replays it and the result is reported again.
fn apply_job_is_reported_until_acked_and_never_run_twice() {
    let root = debian_root(&["pb-demo=1.0", "pb-lib=1.0"]);
    let config = root.config(ENABLED);
    let signer = server_key();
    let j = sign(
        job("DEP-1/web-1", apply_kind(&[("pb-demo", "1.1")]), &["alive"]),
        &signer,
    );
    let again = j.clone();
    let next = sign(
        job("DEP-1b/web-1", apply_kind(&[("pb-demo", "1.2")]), &[]),
        &signer,
    );
    let peer = Peer::start(
        signer.public_hex(),
        Box::new(move |n, _| match n {
            0 => Some((vec![j.clone()], vec![])),
            1 => Some((vec![], vec![])),
            2 => Some((vec![], vec!["DEP-1/web-1".into()])),
            4 => Some((vec![again.clone()], vec![])),
            6 => Some((vec![], vec!["DEP-1/web-1".into()])),
            8 => Some((vec![next.clone()], vec![])),
            _ => Some((vec![], vec![])),
        }),
    );
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    assert_eq!(
        root.version("pb-lib").as_deref(),
        Some("1.0"),
        "unnamed: untouched"
    );
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &["--long-poll", "7"]);
    let c = peer.checkins();
    assert!(results(&c[0]).is_empty());
    let r = result_for(&c[1], "DEP-1/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(
        r["baseline"],
        json!([{"host": ASSET, "check": "alive", "pass": true, "critical": false}])
    );
    assert_eq!(r["after"], r["baseline"]);
    let changed = r["changed"].as_array().unwrap();
    assert!(
        changed.contains(&json!({"name": "pb-demo", "before": "1.0", "after": "1.1"})),
        "{changed:?}"
    );
    assert!(
        changed.contains(&json!({"name": "pb-extra", "before": null, "after": "1.0"})),
        "{changed:?}"
    );
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(r["reboot_required"], false);
    assert!(
        r["finished_at"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .is_ok()
    );
    // Re-inventory: the check-in after the job carries the changed packages.
    assert_eq!(
        c[1]["inventory"]["kind"], "delta",
        "{:#}",
        c[1]["inventory"]["kind"]
    );
    // Not acknowledged at the 2nd check-in: sent again at the 3rd, the same.
    assert_eq!(result_for(&c[2], "DEP-1/web-1"), r);
    // Acknowledged at the 3rd: not sent at the 4th.
    assert!(results(&c[3]).is_empty(), "{:#}", c[3]);
    assert_eq!(c[3]["wait_secs"], 7, "--long-poll sends wait_secs");
    assert!(c[2].get("wait_secs").is_none(), "--long-poll 0 sends none");
    assert_eq!(events(&root, "DEP-1/web-1", "started"), 1);

    // (b) Delivered again after its result was acknowledged: the same result
    // is reported again, nothing runs.
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &[]);
    let c = peer.checkins();
    assert_eq!(result_for(&c[5], "DEP-1/web-1"), r, "the recorded result");
    assert_eq!(
        events(&root, "DEP-1/web-1", "started"),
        1,
        "the journal shows one execution"
    );
    assert_eq!(results(&c[6]).len(), 1);
    let out = String::from_utf8_lossy(&once(&root, &peer, &config, &[]).stdout).into_owned();
    assert!(out.contains("results sent 0"), "{out}");
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));

    // A local `patchbay-agent apply` holds the state directory: the next job
    // is postponed (no result, nothing run), then runs once it is free.
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.state.join("agent.lock"))
        .unwrap();
    lock.lock().unwrap();
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    let ob: Value =
        serde_json::from_slice(&std::fs::read(root.state.join("outbox.json")).unwrap()).unwrap();
    assert_eq!(ob["pending"][0]["job"]["key"], "DEP-1b/web-1", "{ob:#}");
    assert!(ob["results"].as_array().unwrap().is_empty(), "{ob:#}");
    drop(lock);
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.2"));
    let c = peer.checkins();
    assert_eq!(result_for(&c[9], "DEP-1b/web-1")["outcome"], "succeeded");
    // It ran before the inventory was collected: the same check-in carries
    // the changed packages.
    assert_eq!(c[9]["inventory"]["kind"], "delta");
    let added = c[9]["inventory"]["added"].as_array().unwrap();
    assert!(
        added
            .iter()
            .any(|p| p["name"] == "pb-demo" && p["version"] == "1.2"),
        "{added:?}"
    );
}

/// (c) Every refusal is reported with its code and nothing runs: a bad
/// signature, a job signed by a key that is not the pinned one, an unknown
/// check, a deadline in the past, jobs disabled in the configuration; and an
/// apply whose simulation would change a package the job does not name is
/// declined by the execution layer's scope check (reported `failed`, step
/// `scope`, nothing changed).
fn refusals_are_reported_with_their_code_and_nothing_runs() {
    let root = debian_root(&["pb-demo=1.0", "pb-lib=1.0"]);
    let config = root.config(ENABLED);
    let signer = server_key();
    let other = Signer::from_seed(&[7; 32]);
    let demo = || apply_kind(&[("pb-demo", "1.1")]);
    let mut tampered = sign(job("bad-sig", demo(), &[]), &signer);
    tampered.job.kind = apply_kind(&[("pb-demo", "1.2")]);
    let foreign = sign(job("other-key", demo(), &[]), &other);
    let unknown = sign(job("unknown-check", demo(), &["nope"]), &signer);
    let mut late = job("expired", demo(), &[]);
    late.deadline = Timestamp::now() - jiff::SignedDuration::from_secs(1);
    let late = sign(late, &signer);
    let scope = sign(
        job("scope", apply_kind(&[("pb-tool", "1.0")]), &[]),
        &signer,
    );
    let disabled = sign(job("disabled", demo(), &[]), &signer);
    let first = vec![tampered, foreign, unknown, late, scope];
    let peer = Peer::start(
        signer.public_hex(),
        Box::new(move |n, _| match n {
            0 => Some((first.clone(), vec![])),
            1 => Some((vec![disabled.clone()], vec![])),
            _ => Some((vec![], vec![])),
        }),
    );
    let before = root.packages();
    once(&root, &peer, &config, &[]);
    // The same agent with a configuration that does not enable jobs.
    let off =
        root.config("[[check]]\nname = \"alive\"\nkind = \"command\"\ncommand = [\"true\"]\n");
    once(&root, &peer, &off, &[]);
    once(&root, &peer, &off, &[]);
    assert_eq!(root.packages(), before, "nothing changed");
    let c = peer.checkins();
    assert_eq!(results(&c[1]).len(), 5, "{:#}", c[1]["results"]);
    for (key, code) in [
        ("bad-sig", "bad_signature"),
        ("other-key", "bad_signature"),
        ("unknown-check", "unknown_check"),
        ("expired", "expired"),
    ] {
        let r = result_for(&c[1], key);
        assert_eq!(r["outcome"], "refused", "{r:#}");
        assert_eq!(r["refusal"], code, "{r:#}");
        assert!(!r["message"].as_str().unwrap().is_empty());
        assert_eq!(
            events(&root, key, "started"),
            0,
            "{key} never reached the journal"
        );
    }
    let r = result_for(&c[1], "scope");
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["step"], "scope", "{r:#}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("pb-lib (1.0 -> 2.0)"),
        "{r:#}"
    );
    assert!(r.get("changed").is_none(), "{r:#}");
    let r = result_for(&c[2], "disabled");
    assert_eq!(r["outcome"], "refused");
    assert_eq!(r["refusal"], "jobs_disabled");
    assert_eq!(events(&root, "disabled", "started"), 0);
    assert_eq!(root.version("pb-tool"), None);
}

/// (d) The agent (loop mode) runs a job, sends its result, and is SIGKILLed
/// while the server has not answered; started again it re-sends the result
/// without running the job again. Then the window between the journal's final
/// record and the outbox write: the job is still pending at the restart; it
/// goes through the execution layer again, which replays the journal.
fn killed_before_ack_resends_the_result_without_running_again() {
    let root = debian_root(&["pb-demo=1.0"]);
    let config = root.config(ENABLED);
    let signer = server_key();
    let j = sign(
        job("DEP-2/web-1", apply_kind(&[("pb-demo", "1.1")]), &["alive"]),
        &signer,
    );
    let peer = Peer::start(
        signer.public_hex(),
        Box::new(move |n, body| {
            match n {
                0 => Some((vec![j.clone()], vec![])),
                // The check-in that carries the result: hold it (never ack).
                _ if !results(body).is_empty() && n < 2 => None,
                _ => Some((vec![], vec![])),
            }
        }),
    );
    let mut child = agent_command()
        .args(["--server", &peer.url, "--enroll-token", "pbe_test"])
        .args(["--root", root.path.to_str().unwrap()])
        .args(["--state-dir", root.state.to_str().unwrap()])
        .args([
            "--config",
            &config,
            "--no-pending-updates",
            "--long-poll",
            "0",
        ])
        .args(["--interval", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the check-in carrying the result",
        Duration::from_secs(300),
        || peer.checkins().iter().any(|c| !results(c).is_empty()),
    );
    kill_tree(child.id());
    let _ = child.wait();
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    let n = peer.checkins().len();
    assert_eq!(n, 2, "the loop reported at once after the job");
    once(&root, &peer, &config, &[]);
    let c = peer.checkins();
    let r = result_for(&c[n], "DEP-2/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(r, result_for(&c[1], "DEP-2/web-1"), "the same result");
    assert_eq!(events(&root, "DEP-2/web-1", "started"), 1, "run once");

    // The crash window between the journal's final record and the outbox
    // write: put the job back as pending and drop its result.
    let ob_path = root.state.join("outbox.json");
    let mut ob: Value = serde_json::from_slice(&std::fs::read(&ob_path).unwrap()).unwrap();
    assert!(ob["pending"].as_array().unwrap().is_empty());
    let signed = sign(
        job("DEP-2/web-1", apply_kind(&[("pb-demo", "1.1")]), &["alive"]),
        &server_key(),
    );
    ob["pending"] = json!([signed]);
    ob["results"] = json!([]);
    std::fs::write(&ob_path, ob.to_string()).unwrap();
    once(&root, &peer, &config, &[]);
    let c = peer.checkins();
    let r = result_for(c.last().unwrap(), "DEP-2/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert!(
        r["message"].as_str().unwrap().contains("not run again"),
        "{r:#}"
    );
    assert_eq!(events(&root, "DEP-2/web-1", "started"), 1, "still run once");
}

/// The other kinds: `rollback` of an applied job restores the recorded
/// versions; `run_check` runs the named local check; `inventory` makes the
/// next check-in send the full inventory; `reboot` with no reboot required
/// succeeds without running the reboot command; with one required (the root's
/// `/run/reboot-required`) it runs the configured command (here: `touch` a
/// marker) once, and not again when delivered again. `[jobs] critical_checks`
/// marks a check's samples critical.
fn rollback_run_check_inventory_and_reboot_jobs() {
    let root = debian_root(&["pb-demo=1.0"]);
    let marker = root.scratch.join("rebooted");
    let config = root.config(&enabled_with_reboot(&marker));
    let signer = server_key();
    let apply = sign(
        job("A/web-1", apply_kind(&[("pb-demo", "1.1")]), &[]),
        &signer,
    );
    let rollback = sign(
        job(
            "A/web-1/rollback",
            JobKind::Rollback {
                of: "A/web-1".into(),
            },
            &["alive"],
        ),
        &signer,
    );
    let check = sign(
        job(
            "C/web-1",
            JobKind::RunCheck {
                name: "alive".into(),
            },
            &[],
        ),
        &signer,
    );
    let inventory = sign(job("I/web-1", JobKind::Inventory, &[]), &signer);
    let reboot = sign(job("R/web-1", JobKind::Reboot, &["alive"]), &signer);
    let reboot2 = sign(job("R2/web-1", JobKind::Reboot, &[]), &signer);
    let peer = Peer::start(
        signer.public_hex(),
        Box::new(move |n, body| {
            let acked: Vec<String> = results(body)
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_owned())
                .collect();
            let jobs = match n {
                0 => vec![apply.clone()],
                1 => vec![rollback.clone()],
                2 => vec![check.clone(), inventory.clone(), reboot.clone()],
                4 | 6 => vec![reboot2.clone()],
                _ => vec![],
            };
            Some((jobs, acked))
        }),
    );
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.1"));
    once(&root, &peer, &config, &[]);
    assert_eq!(root.version("pb-demo").as_deref(), Some("1.0"));
    assert_eq!(
        root.version("pb-extra"),
        None,
        "the rollback removed the new dependency"
    );
    once(&root, &peer, &config, &[]);
    once(&root, &peer, &config, &[]);
    let c = peer.checkins();
    assert_eq!(result_for(&c[1], "A/web-1")["outcome"], "succeeded");
    let r = result_for(&c[2], "A/web-1/rollback");
    assert_eq!(r["outcome"], "rolled_back", "{r:#}");
    assert!(
        r["changed"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "pb-demo", "before": "1.1", "after": "1.0"})),
        "{r:#}"
    );
    assert_eq!(r["after"][0]["check"], "alive");
    let r = result_for(&c[3], "C/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(
        r["after"],
        json!([{"host": ASSET, "check": "alive", "pass": true, "critical": true}])
    );
    let r = result_for(&c[3], "I/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert_eq!(
        c[3]["inventory"]["kind"], "full",
        "the inventory job forces a full inventory"
    );
    let r = result_for(&c[3], "R/web-1");
    assert_eq!(r["outcome"], "succeeded", "{r:#}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("no reboot is required"),
        "{r:#}"
    );
    assert_eq!(r["reboot_required"], false);
}

fn identity_pin(root: &Root) -> String {
    let id: Value =
        serde_json::from_slice(&std::fs::read(root.state.join("identity.json")).unwrap()).unwrap();
    id["server_public_key"].as_str().unwrap().to_owned()
}

/// (e) Key rotation (ADR 0007): before any announcement a job signed by the
/// new key is refused; an announcement claiming the pinned key but signed by
/// another key is refused, reported with the next check-in, and moves
/// nothing; the real announcement (the new key signed by the pinned one)
/// re-pins the agent, persisted in its state directory, after which a job
/// signed by the new key runs and one signed by the retired key is refused.
fn a_key_rotation_is_followed_and_the_retired_key_refused() {
    let root = debian_root(&[]);
    let config = root.config(ENABLED);
    let old = server_key();
    let new = Signer::from_seed(&[43; 32]);
    let mallory = Signer::from_seed(&[44; 32]);
    let check = |key: &str, by: &Signer| {
        sign(
            job(
                key,
                JobKind::RunCheck {
                    name: "alive".into(),
                },
                &[],
            ),
            by,
        )
    };
    let jobs = [
        vec![check("C/early-new", &new)],
        vec![check("C/mallory", &mallory)],
        vec![check("C/new", &new), check("C/old", &old)],
    ];
    let peer = Peer::start(
        old.public_hex(),
        Box::new(move |n, _| Some((jobs.get(n).cloned().unwrap_or_default(), vec![]))),
    );
    let now = Timestamp::now().as_millisecond();
    let forged = KeyAnnouncement {
        old_public_key: old.public_hex(),
        ..mallory.announce(&mallory, now)
    };
    let real = old.announce(&new, now);

    once(&root, &peer, &config, &[]);
    assert_eq!(identity_pin(&root), old.public_hex());

    peer.announce(vec![forged.clone()]);
    let out = once(&root, &peer, &config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("refused a server key announcement") && stdout.contains("(forged)"),
        "{stdout}"
    );
    assert_eq!(
        identity_pin(&root),
        old.public_hex(),
        "the forgery moved nothing"
    );

    peer.announce(vec![forged, real]);
    once(&root, &peer, &config, &[]);
    assert_eq!(
        identity_pin(&root),
        new.public_hex(),
        "re-pinned, persisted"
    );
    once(&root, &peer, &config, &[]);

    let c = peer.checkins();
    // The forged announcement is reported with the check-in after it.
    assert_eq!(c[1].get("key_refusals"), None, "{:#}", c[1]);
    let reported = c[2]["key_refusals"].as_array().unwrap();
    assert_eq!(reported.len(), 1, "{:#}", c[2]);
    assert!(
        reported[0]
            .as_str()
            .unwrap()
            .contains(&mallory.public_hex()),
        "{reported:?}"
    );
    for (key, outcome) in [
        ("C/early-new", "refused"),
        ("C/mallory", "refused"),
        ("C/new", "succeeded"),
        ("C/old", "refused"),
    ] {
        let r = result_for(&c[3], key);
        assert_eq!(r["outcome"], outcome, "{key}: {r:#}");
        if outcome == "refused" {
            assert_eq!(r["refusal"], "bad_signature", "{key}: {r:#}");
            assert_eq!(events(&root, key, "started"), 0, "{key} never ran");
        }
    }
}
