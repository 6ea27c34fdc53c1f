//! The real end-to-end rollout (issue 13, acceptance), once per engine: a
//! real `patchbay serve` (SQLite; PostgreSQL on a fresh database of
//! `PATCHBAY_TEST_PG_URL`'s server, failing rather than skipping without it)
//! and five hosts, each a copy of the debootstrapped Debian 12 root
//! with `pb-demo` 1.0 installed and its own `patchbay-agent` process in loop
//! mode with server jobs enabled and a long poll, each in **its own network
//! namespace** joined to this one by a veth pair on a private /30 created
//! here (in a 10.231.B.0/24 no interface uses: .4N+1 this side, .4N+2
//! inside). The server and the local apt repository listen on 127.0.0.1; per
//! host, a TCP relay on the host-side veth address is the only way in, so
//! cutting that link cuts the host off from both.
//!
//! Rings: one pinned canary, two pilot, two broad; the health check `web` of
//! every host fails when pb-demo 1.2 is installed in its root.
//! - Rolling out 1.1 completes every ring, ring by ring, with the gate
//!   verdicts recorded, and every root has 1.1. Meanwhile one broad host's
//!   link is cut while its job runs (after the package is installed, before
//!   its result can be sent) and brought back: the result arrives after the
//!   link returns, is stored once (one `job.result` audit entry) and the job
//!   key was executed once (the agent's journal).
//! - Rolling out 1.2 then halts in the canary ring within its budget, the
//!   canary is rolled back to 1.1 (dpkg shows it, `web` passes again), and no
//!   job of that deployment is ever leased to a later ring.
//! - Rolling out 1.2.1 (its postinst fails) with rings that require a
//!   rehearsal halts on the canary's failed rehearsal: no host is ever leased
//!   the apply; an on-demand rehearsal of every host fails the same way and
//!   changes nothing (issue 18).

use crate::support::{
    AGENT, Root, deb_repo, debian_root, drop_in_parallel, ensure_tools, in_parallel, journal, run,
    wait_for,
};
use patchbay_client::Client;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "rollout::sqlite_five_hosts_in_namespaces_good_then_bad_with_a_cut_link",
        sqlite_five_hosts_in_namespaces_good_then_bad_with_a_cut_link,
    ),
    (
        "rollout::postgres_five_hosts_in_namespaces_good_then_bad_with_a_cut_link",
        postgres_five_hosts_in_namespaces_good_then_bad_with_a_cut_link,
    ),
];

pub(crate) const HOSTS: usize = 5;

/// The server's database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    /// Where this run's hosts start among the links (both runs may share a
    /// process and its /24).
    pub(crate) fn first_slot(self) -> u8 {
        match self {
            Engine::Sqlite => 1,
            Engine::Postgres => 1 + HOSTS as u8,
        }
    }
}

pub(crate) fn sqlite_five_hosts_in_namespaces_good_then_bad_with_a_cut_link() {
    five_hosts_in_namespaces_good_then_bad_with_a_cut_link(Engine::Sqlite);
}

pub(crate) fn postgres_five_hosts_in_namespaces_good_then_bad_with_a_cut_link() {
    five_hosts_in_namespaces_good_then_bad_with_a_cut_link(Engine::Postgres);
}

/// Phase timings, printed as they happen.
pub(crate) struct Clock(Instant, Engine);

impl Clock {
    pub(crate) fn phase(&self, what: &str) {
        println!(
            "  [rollout e2e {} {:>6.1}s] {what}",
            self.1.name(),
            self.0.elapsed().as_secs_f64()
        );
    }
}

/// Runs `ip ARGS`, failing with the reason when the machine does not allow it.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "this test needs network namespaces and veth pairs (root, CAP_NET_ADMIN): `ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip ARGS`, ignoring failure (clean-up of what may not exist).
pub(crate) fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A network namespace with a veth pair on a private /30 of its own: the
/// host side `…h` has the first address, the inside `…n` the second. Names
/// carry this process's id, and the /24 the pairs take is one no interface
/// of this machine uses yet, so parallel runs never meet. Deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) host_if: String,
    pub(crate) host_ip: Ipv4Addr,
}

/// A `10.231.B.0/24` no interface uses, chosen once per process.
pub(crate) fn subnet() -> u8 {
    static B: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show"])
            .output()
            .expect("running ip -4 addr show");
        let used = String::from_utf8_lossy(&out.stdout).into_owned();
        let first = (std::process::id() % 250) as u8;
        (0..250u16)
            .map(|i| ((u16::from(first) + i) % 250) as u8 + 1)
            .find(|b| !used.contains(&format!("inet 10.231.{b}.")))
            .expect("a free 10.231.B.0/24 for the test links")
    })
}

impl Netns {
    /// The link of `slot` (1–60): addresses .4·slot+1 and .4·slot+2.
    pub(crate) fn create(slot: u8) -> Netns {
        let n = slot;
        let tag = format!("pb{}x{n}", std::process::id());
        let name = format!("{tag}-ns");
        let host_if = format!("{tag}h");
        let ns_if = format!("{tag}n");
        let b = subnet();
        let host_ip = Ipv4Addr::new(10, 231, b, 4 * n + 1);
        let ns_ip = Ipv4Addr::new(10, 231, b, 4 * n + 2);
        ip(&["netns", "add", &name]);
        let net = Netns {
            name,
            host_if,
            host_ip,
        };
        ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &net.name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &net.host_if]);
        ip(&["link", "set", &net.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", net.name.as_str(), "ip"];
            all.extend(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        net
    }

    /// A command run inside the namespace.
    pub(crate) fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Brings the host-side end of the link down or up.
    pub(crate) fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it ours.
        ip_quiet(&["netns", "del", &self.name]);
        ip_quiet(&["link", "del", &self.host_if]);
    }
}

/// Relays TCP connections to `bind` (port 0: any) to `to`; returns the port.
/// The relay lives as long as the process; it accepts nothing once its
/// address is gone with its namespace's link.
pub(crate) fn relay(bind: Ipv4Addr, to: SocketAddr) -> u16 {
    let listener =
        TcpListener::bind((bind, 0)).unwrap_or_else(|e| panic!("binding a relay on {bind}: {e}"));
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            std::thread::spawn(move || {
                if let Ok(outbound) = TcpStream::connect(to) {
                    pipe(inbound, outbound);
                }
            });
        }
    });
    port
}

pub(crate) fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || copy_then_close(a2, b2));
    copy_then_close(b, a);
    let _ = t.join();
}

pub(crate) fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `patchbay serve` on 127.0.0.1 with a fresh SQLite data directory.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) api: Client,
    pub(crate) dir: tempfile::TempDir,
}

/// The `patchbay` binary beside the agent under test (`cargo build -p
/// patchbay` puts it there; `cargo test --workspace` builds it).
pub(crate) fn patchbay_bin() -> PathBuf {
    let bin = Path::new(AGENT).with_file_name("patchbay");
    assert!(
        bin.is_file(),
        "{} is missing; build it: cargo build -p patchbay",
        bin.display()
    );
    bin
}

/// A port on 127.0.0.1 free at the moment.
pub(crate) fn free_addr() -> SocketAddr {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The database of a server whose files live in `dir`: a SQLite file there,
/// or a fresh PostgreSQL database.
pub(crate) fn db_url(engine: Engine, dir: &Path) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.join("patchbay.db").display()),
        Engine::Postgres => fresh_postgres(),
    }
}

impl Server {
    pub(crate) fn start(engine: Engine) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("pb-e2e-server-")
            .tempdir()
            .unwrap();
        let db = db_url(engine, dir.path());
        let data = dir.path().join("data");
        Server::serve(&db, &data, dir, &[])
    }

    /// `patchbay serve` on `db` with `data_dir` (and `extra` flags) on a free
    /// port of 127.0.0.1, logging to `dir/server.log`; returns once it
    /// answers `/healthz`, its API client holding the admin token.
    pub(crate) fn serve(
        db: &str,
        data_dir: &Path,
        dir: tempfile::TempDir,
        extra: &[&str],
    ) -> Server {
        let bin = patchbay_bin();
        let addr = free_addr();
        let log = File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .args(["--db", db])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &addr.to_string()])
            // The rollout driver steps every second (and at once when a
            // result arrives).
            .args(["--duty-tick", "1s"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("PATCHBAY_DB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let url = format!("http://{addr}");
        let mut server = Server {
            child,
            addr,
            api: Client::new(&url, None, Duration::from_secs(30)),
            dir,
        };
        let probe = Client::new(&url, None, Duration::from_secs(2));
        let start = Instant::now();
        while probe.get_text("/healthz").is_err() {
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("patchbay serve exited ({st}):\n{}", server.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "patchbay serve did not answer /healthz within 60 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let token =
            std::fs::read_to_string(data_dir.join("admin.token")).expect("DATA_DIR/admin.token");
        server.api = Client::new(&url, Some(token.trim().to_owned()), Duration::from_secs(30));
        server
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        self.api
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> Value {
        self.api
            .send("POST", path, &body)
            .unwrap_or_else(|e| panic!("POST {path} {body}: {e}"))
    }

    /// The audit entries with `action`.
    pub(crate) fn audit(&self, action: &str) -> Vec<Value> {
        self.get("/api/v1/audit?limit=10000")["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database on the test PostgreSQL server (`PATCHBAY_TEST_PG_URL`,
/// set by `scripts/with-postgres`, which `scripts/test` uses), made with
/// `psql`. Without the variable this fails rather than skips: a skipped
/// backend is not a passed one.
pub(crate) fn fresh_postgres() -> String {
    let admin = std::env::var("PATCHBAY_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "PATCHBAY_TEST_PG_URL is not set: run the tests with scripts/test (or scripts/with-postgres cargo test), \
             which starts a throwaway PostgreSQL. PostgreSQL tests never skip."
        )
    });
    ensure_tools(&[("psql", "postgresql-client")]);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("pbe2e_{}_{nanos}", std::process::id());
    run(Command::new("psql")
        .args(["-v", "ON_ERROR_STOP=1", "-q", &admin, "-c"])
        .arg(format!("CREATE DATABASE {name}")));
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database path");
    format!("{base}/{name}")
}

/// One test host: its root, namespace and agent process.
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) root: Root,
    pub(crate) net: Netns,
    /// While this file exists, the `web` check takes 4 s (a slow job).
    pub(crate) slow: PathBuf,
    /// The relay to the server on this host's link.
    pub(crate) server_port: u16,
    pub(crate) agent: Option<Child>,
}

impl Host {
    /// A root with pb-demo 1.0, its namespace, relays to the repository and
    /// the server on its link, and the agent's configuration.
    pub(crate) fn prepare(n: u8, slot: u8, repo: SocketAddr, server: SocketAddr) -> Host {
        let name = format!("e2e-h{n}");
        let root = debian_root(&["pb-demo=1.0"]);
        std::fs::write(root.path.join("etc/hostname"), format!("{name}\n")).unwrap();
        std::fs::write(root.path.join("etc/machine-id"), format!("e2e{n:029x}\n")).unwrap();
        let net = Netns::create(slot);
        let repo_port = relay(net.host_ip, repo);
        let server_port = relay(net.host_ip, server);
        std::fs::write(
            root.path.join("etc/apt/sources.list"),
            format!("deb [trusted=yes] http://{}:{repo_port}/ ./\n", net.host_ip),
        )
        .unwrap();
        // The repository is reachable from inside the namespace.
        run(net
            .exec("chroot")
            .arg(&root.path)
            .args(["apt-get", "-q", "update"])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
        let slow = root.scratch.join("slow");
        let check = format!(
            "if [ -e {slow} ]; then sleep 4; fi; ! grep -qx 1.2 {root}/usr/share/pb-demo/version",
            slow = slow.display(),
            root = root.path.display()
        );
        root.config(&format!(
            "[jobs]\nenabled = true\nreboot_command = [\"/bin/false\"]\n\n[[check]]\nname = \"web\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {}]\ntimeout_secs = 30\n",
            toml_str(&check)
        ));
        Host {
            name,
            root,
            net,
            slow,
            server_port,
            agent: None,
        }
    }

    /// Starts the agent in loop mode inside the namespace.
    pub(crate) fn start_agent(&mut self, enroll_token: &str) {
        let log = File::create(self.root.scratch.join("agent.log")).unwrap();
        let url = format!("http://{}:{}", self.net.host_ip, self.server_port);
        let child = self
            .net
            .exec(AGENT)
            .args(["--server", &url, "--enroll-token", enroll_token])
            .arg("--root")
            .arg(&self.root.path)
            .arg("--state-dir")
            .arg(&self.root.state)
            .arg("--config")
            .arg(self.root.scratch.join("agent.toml"))
            .args([
                "--interval",
                "1s",
                "--long-poll",
                "10",
                "--no-pending-updates",
            ])
            .env_remove("PATCHBAY_SERVER")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    pub(crate) fn agent_log(&self) -> String {
        std::fs::read_to_string(self.root.scratch.join("agent.log")).unwrap_or_default()
    }

    /// Whether the `web` check (run as the agent runs it) passes.
    pub(crate) fn web_passes(&self) -> bool {
        let text = std::fs::read_to_string(self.root.path.join("usr/share/pb-demo/version"))
            .unwrap_or_default();
        let check = format!(
            "! grep -qx 1.2 {}/usr/share/pb-demo/version",
            self.root.path.display()
        );
        let ok = Command::new("sh")
            .args(["-c", &check])
            .status()
            .unwrap()
            .success();
        assert_eq!(ok, text.trim() != "1.2");
        ok
    }

    /// The journal records of `key`.
    pub(crate) fn journal_of(&self, key: &str) -> Vec<Value> {
        if !self.root.state.join("journal.jsonl").exists() {
            return vec![];
        }
        journal(&self.root.state)
            .into_iter()
            .filter(|r| r["job_key"] == key)
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            crate::support::kill_tree(c.id());
            let _ = c.wait();
        }
    }
}

/// A TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn spec(version: &str, canary: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [
        {"name": "ring0-canary", "assets": [canary]},
        {"name": "ring1-pilot", "size": "2", "max_concurrent": "2", "error_budget": "1"},
        {"name": "ring2-broad", "max_concurrent": "100%", "error_budget": "1"}
    ]})
}

pub(crate) fn rings(d: &Value) -> &Vec<Value> {
    d["rollout"]["rings"].as_array().unwrap()
}

pub(crate) fn ring_states(d: &Value) -> Vec<String> {
    rings(d)
        .iter()
        .map(|r| r["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Each ring's hosts.
pub(crate) fn ring_hosts(d: &Value) -> Vec<Vec<String>> {
    rings(d)
        .iter()
        .map(|r| {
            r["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["spec"]["host"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// The job of `host` in a deployment.
pub(crate) fn job_of<'a>(d: &'a Value, host: &str) -> &'a Value {
    rings(d)
        .iter()
        .flat_map(|r| r["jobs"].as_array().unwrap())
        .find(|j| j["spec"]["host"] == host)
        .unwrap_or_else(|| panic!("no job for {host}"))
}

pub(crate) fn ts(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

pub(crate) fn create_and_start(s: &Server, version: &str, canary: &str) -> (String, Value) {
    let d = s.post("/api/v1/deployments", spec(version, canary));
    let id = d["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(d["deployment"]["status"], "draft", "{d:#}");
    let shown = s.get(&format!("/api/v1/deployments/{id}"));
    s.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
    (id, shown)
}

/// Polls the deployment until `done` holds (at most `limit`).
pub(crate) fn wait_deployment(
    s: &Server,
    hosts: &[Host],
    id: &str,
    limit: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let d = s.get(&format!("/api/v1/deployments/{id}"));
        if done(&d) {
            return d;
        }
        if start.elapsed() > limit {
            let logs: Vec<String> = hosts
                .iter()
                .map(|h| {
                    let log = h.agent_log();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    format!(
                        "--- {} agent log (last lines, newest first)\n{}",
                        h.name,
                        tail.join("\n")
                    )
                })
                .collect();
            let slog = s.log();
            let stail: Vec<&str> = slog.lines().rev().take(30).collect();
            panic!(
                "deployment {id} not done after {limit:?}: {:#}\n{}\n--- server log (newest first)\n{}",
                d["rollout"],
                logs.join("\n"),
                stail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn five_hosts_in_namespaces_good_then_bad_with_a_cut_link(engine: Engine) {
    let clock = Clock(Instant::now(), engine);
    ensure_tools(&[("ip", "iproute2")]);
    let repo = deb_repo();
    let repo_addr: SocketAddr = repo
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let server = Server::start(engine);
    clock.phase(&format!("server up on {}", server.addr));

    // Five hosts, prepared in parallel (copy of the base root, pb-demo 1.0,
    // namespace, relays, apt-get update from inside the namespace).
    let addr = server.addr;
    let mut hosts: Vec<Host> = in_parallel(HOSTS as u8, |n| {
        Host::prepare(n, engine.first_slot() + n - 1, repo_addr, addr)
    });
    clock.phase("5 Debian roots with pb-demo 1.0, each in its namespace, repository reachable");

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
        let a = server.get(&path);
        let pb = a["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "pb-demo")
            .cloned();
        assert_eq!(
            pb.map(|p| p["version"].clone()),
            Some(json!("1.0")),
            "{a:#}"
        );
        assert!(h.web_passes());
    }
    clock.phase("5 agents enrolled over their links, each reporting pb-demo 1.0");

    // ---- Scenario A: 1.1, with one broad host's link cut during its job.
    let canary = hosts[0].name.clone();
    // The preview names every host's versions as its agent reported them.
    let p = server.post("/api/v1/deployments/preview", spec("1.1", &canary));
    let mut previewed: Vec<(String, Value)> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["asset"].as_str().unwrap().to_owned(),
                h["packages"].clone(),
            )
        })
        .collect();
    previewed.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, Value)> = hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                json!([{"name": "pb-demo", "from": "1.0", "to": "1.1"}]),
            )
        })
        .collect();
    assert_eq!(previewed, expected, "{p:#}");
    assert_eq!(p["hosts"][0]["ring"], "ring0-canary", "{p:#}");
    let (id, shown) = create_and_start(&server, "1.1", &canary);
    let layout = ring_hosts(&shown);
    assert_eq!(layout[0], vec![canary.clone()]);
    assert_eq!(layout[1].len(), 2, "{layout:?}");
    assert_eq!(layout[2].len(), 2, "{layout:?}");
    let cut_name = layout[2][0].clone();
    let cut = hosts.iter().find(|h| h.name == cut_name).unwrap();
    std::fs::write(&cut.slow, "").unwrap();
    clock.phase(&format!(
        "{id} (1.1) started: rings {layout:?}; {cut_name}'s job will lose its link"
    ));

    // Cut the link as soon as the package is in place (downloaded and
    // unpacked), while the job still verifies: its result cannot be sent.
    let version_file = cut.root.path.join("usr/share/pb-demo/version");
    wait_for(
        &format!("{cut_name} to unpack pb-demo 1.1"),
        Duration::from_secs(120),
        || std::fs::read_to_string(&version_file).is_ok_and(|v| v.trim() == "1.1"),
    );
    cut.net.link(false);
    clock.phase(&format!("{cut_name}: pb-demo 1.1 unpacked, link cut"));
    let key = format!("{id}/{cut_name}");
    // While the link is down the server gets no result, whatever the agent
    // does; it finishes the job and then tries to send for a few seconds.
    let down = Instant::now();
    let mut finished_seen: Option<Instant> = None;
    loop {
        let d = server.get(&format!("/api/v1/deployments/{id}"));
        let j = job_of(&d, &cut_name);
        assert!(
            !j["ran"].as_bool().unwrap_or(false),
            "a result of {cut_name} arrived with its link down: {j:#}"
        );
        if finished_seen.is_none()
            && cut
                .journal_of(&key)
                .iter()
                .any(|r| r["event"] == "finished")
        {
            finished_seen = Some(Instant::now());
        }
        if finished_seen.is_some_and(|t| t.elapsed() >= Duration::from_secs(4)) {
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(90),
            "{cut_name} did not finish its job while cut off: {:#?}\n{}",
            cut.journal_of(&key),
            cut.agent_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    cut.net.link(true);
    let link_back = jiff::Timestamp::now();
    clock.phase(&format!(
        "{cut_name}: job finished while cut off, link back up"
    ));
    let d = wait_deployment(&server, &hosts, &id, Duration::from_secs(120), |d| {
        d["deployment"]["status"] != "running"
    });
    clock.phase(&format!(
        "{id}: {} ({:?})",
        d["deployment"]["status"],
        ring_states(&d)
    ));
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    assert_eq!(ring_states(&d), vec!["passed"; 3]);
    let mut prev_done: Option<jiff::Timestamp> = None;
    for r in rings(&d) {
        let gates: Vec<&str> = r["gates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["gate"].as_str().unwrap())
            .collect();
        for g in ["success_rate", "health", "soak"] {
            assert!(
                gates.contains(&g),
                "{}: no {g} verdict: {gates:?}",
                r["spec"]["name"]
            );
        }
        for g in r["gates"].as_array().unwrap() {
            assert_eq!(g["verdict"], "pass", "{g:#}");
            println!(
                "    {} gate {}: {} — {}",
                r["spec"]["name"].as_str().unwrap_or("?"),
                g["gate"].as_str().unwrap_or("?"),
                g["verdict"].as_str().unwrap_or("?"),
                g["reason"].as_str().unwrap_or("")
            );
        }
        // Ring by ring: no job of a ring leased before the previous ring's jobs ended.
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "succeeded", "{j:#}");
            let leased = ts(&j["leased_at"]).expect("leased_at");
            if let Some(p) = prev_done {
                assert!(
                    leased >= p,
                    "{j:#} leased before the previous ring ended ({p})"
                );
            }
        }
        prev_done = ts(&r["done_at"]);
    }
    for h in &hosts {
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}",
            h.name
        );
        assert!(h.web_passes(), "{}", h.name);
        // Dispatch: from the lease to the agent's journal starting the job.
        let key = format!("{id}/{}", h.name);
        let leased = ts(&job_of(&d, &h.name)["leased_at"]).unwrap();
        let started = h
            .journal_of(&key)
            .iter()
            .find(|r| r["event"] == "started")
            .and_then(|r| ts(&r["ts"]))
            .unwrap_or_else(|| panic!("{key} not started in {}'s journal", h.name));
        // An agent still running a control sample (a health check the
        // server asked of a not-yet-patched host while an earlier ring ran)
        // is not waiting in a long poll: measure from when it was free.
        let busy_until = d["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["key"].as_str().is_some_and(|k| {
                    k.contains("/control/") && k.ends_with(&format!("/{}", h.name))
                })
            })
            .filter_map(|r| ts(&r["finished_at"]))
            .max();
        let from = busy_until.map_or(leased, |b| b.max(leased));
        let latency = started.duration_since(from).as_secs_f64();
        println!(
            "    {}: job started {latency:.2} s after its lease{}",
            h.name,
            if from > leased {
                " (counted from the end of its control sample)"
            } else {
                ""
            }
        );
        // A long-polling agent gets its job at once (generous for loaded CI).
        assert!(latency < 5.0, "{}: {latency} s from lease to start", h.name);
    }
    // The cut host's result: delivered after the link came back, stored once,
    // its key executed once.
    let results: Vec<Value> = server
        .audit("job.result")
        .into_iter()
        .filter(|e| e["target"] == format!("job:{key}"))
        .collect();
    assert_eq!(results.len(), 1, "{results:#?}");
    // Audit times are rounded to the second; the link was down for more than 4 s.
    let stored = ts(&results[0]["at"]).expect("audit time");
    assert!(
        stored >= link_back - jiff::SignedDuration::from_secs(1),
        "{cut_name}'s result stored at {stored}, link back at {link_back}"
    );
    assert_eq!(job_of(&d, &cut_name)["state"], "succeeded");
    let recs = cut.journal_of(&key);
    let started = recs.iter().filter(|r| r["event"] == "started").count();
    let finished = recs.iter().filter(|r| r["event"] == "finished").count();
    assert_eq!((started, finished), (1, 1), "{recs:#?}");
    std::fs::remove_file(&cut.slow).unwrap();
    let failed_sends = cut
        .agent_log()
        .lines()
        .filter(|l| l.contains("check-in failed"))
        .count();
    println!("    {cut_name}: {failed_sends} check-in(s) failed while its link was down");
    clock.phase(&format!(
        "{id} completed: every ring passed its gates, 5 roots on 1.1; {cut_name}'s result arrived after the link returned, stored once, key run once"
    ));

    // ---- Scenario B: 1.2 fails its health check in the canary.
    let (bad, _) = create_and_start(&server, "1.2", &canary);
    let d = wait_deployment(&server, &hosts, &bad, Duration::from_secs(120), |d| {
        d["deployment"]["status"] != "running"
            && matches!(
                rings(d)[0]["jobs"][0]["state"].as_str(),
                Some("rolled_back" | "rollback_failed" | "succeeded" | "skipped")
            )
    });
    clock.phase(&format!(
        "{bad}: {} ({:?}) — {}",
        d["deployment"]["status"],
        ring_states(&d),
        d["rollout"]["reason"].as_str().unwrap_or("")
    ));
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    assert!(
        d["rollout"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("error budget"),
        "{:#}",
        d["rollout"]
    );
    for g in rings(&d)[0]["gates"].as_array().unwrap() {
        println!(
            "    ring0-canary gate {}: {} — {}",
            g["gate"].as_str().unwrap_or("?"),
            g["verdict"].as_str().unwrap_or("?"),
            g["reason"].as_str().unwrap_or("")
        );
    }
    assert!(
        rings(&d)[0]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["gate"] == "budget" && g["verdict"] == "fail"),
        "{:#}",
        rings(&d)[0]
    );
    let canary_job = &rings(&d)[0]["jobs"][0];
    assert_eq!(canary_job["state"], "rolled_back", "{canary_job:#}");
    assert!(canary_job["failed"].as_bool().unwrap(), "{canary_job:#}");
    for r in &rings(&d)[1..] {
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "skipped", "{j:#}");
            assert!(j["leased_at"].is_null(), "{j:#}");
        }
    }
    // The canary is back on 1.1 and healthy; everyone else never moved.
    let c = &hosts[0];
    assert_eq!(c.root.version("pb-demo").as_deref(), Some("1.1"));
    assert!(c.web_passes());
    let canary_key = format!("{bad}/{canary}");
    let rb = c.journal_of(&canary_key);
    assert!(
        rb.iter()
            .any(|r| r["kind"] == "apply" && r["event"] == "finished" && r["ok"] == false),
        "{rb:#?}"
    );
    assert!(
        rb.iter()
            .any(|r| r["kind"] == "rollback" && r["event"] == "finished" && r["ok"] == true),
        "no finished rollback of {canary_key} in the canary's journal: {rb:#?}"
    );
    // Give a later ring every chance to be leased, then look again.
    std::thread::sleep(Duration::from_secs(3));
    let d = server.get(&format!("/api/v1/deployments/{bad}"));
    for h in &hosts[1..] {
        let j = job_of(&d, &h.name);
        assert_eq!(j["state"], "skipped", "{j:#}");
        assert!(j["leased_at"].is_null(), "{j:#}");
        let mine = if h.root.state.join("journal.jsonl").exists() {
            journal(&h.root.state)
                .into_iter()
                .filter(|r| r["job_key"].as_str().unwrap_or("").starts_with(&bad))
                .count()
        } else {
            0
        };
        assert_eq!(mine, 0, "{} journalled a job of {bad}", h.name);
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}",
            h.name
        );
    }
    let results: Vec<Value> = server
        .audit("job.result")
        .into_iter()
        .filter(|e| {
            let t = e["target"].as_str().unwrap_or("");
            // Control samples (read-only health checks of not-yet-patched
            // hosts, `…/control/…`) are the only jobs later rings' hosts get.
            t.starts_with(&format!("job:{bad}/")) && !t.contains("/control/")
        })
        .collect();
    assert_eq!(
        results.len(),
        2,
        "apply + rollback of the canary only: {results:#?}"
    );
    // And their packages are untouched: every later host still has 1.1.
    for h in hosts.iter().filter(|h| h.name != canary) {
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}",
            h.name
        );
    }
    clock.phase(&format!(
        "{bad} halted in the canary: rolled back to 1.1, web passes, nothing leased to later rings"
    ));

    // ---- Scenario C (issue 18): every ring requires a rehearsal; 1.2.1's
    // postinst fails. The canary's rehearsal (in an overlay of its own root)
    // reports the script, its job fails without its apply ever being leased,
    // the deployment halts; no host is ever handed 1.2.1 to install.
    let reh_spec = json!({"packages": [{"name": "pb-demo", "version": "1.2.1"}],
    "checks": ["web"],
    "rings": [
        {"name": "ring0-canary", "assets": [&canary], "require_rehearsal": true},
        {"name": "ring1-rest", "max_concurrent": "100%", "error_budget": "1", "require_rehearsal": true}
    ]});
    let preview = server.post("/api/v1/deployments/preview", reh_spec.clone());
    assert!(
        preview["rules"][0]
            .as_str()
            .unwrap_or("")
            .contains("every host rehearses first"),
        "{preview:#}"
    );
    let d = server.post("/api/v1/deployments", reh_spec);
    let reh = d["deployment"]["id"].as_str().unwrap().to_owned();
    server.post(&format!("/api/v1/deployments/{reh}/start"), json!({}));
    let d = wait_deployment(&server, &hosts, &reh, Duration::from_secs(120), |d| {
        d["deployment"]["status"] != "running"
            && matches!(
                rings(d)[0]["jobs"][0]["state"].as_str(),
                Some("rolled_back" | "rollback_failed" | "failed")
            )
    });
    clock.phase(&format!(
        "{reh}: {} ({:?}) — {}",
        d["deployment"]["status"],
        ring_states(&d),
        d["rollout"]["reason"].as_str().unwrap_or("")
    ));
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    let cj = &rings(&d)[0]["jobs"][0];
    assert!(cj["failed"].as_bool().unwrap(), "{cj:#}");
    let err = cj["error"].as_str().unwrap_or("");
    assert!(
        err.contains("rehearsal failed: rehearse.apply: pb-demo postinst exited with 7"),
        "{cj:#}"
    );
    // Its rollback had nothing to undo and was not sent.
    assert_eq!(cj["state"], "rolled_back", "{cj:#}");
    for j in rings(&d)[1]["jobs"].as_array().unwrap() {
        assert_eq!(j["state"], "skipped", "{j:#}");
    }
    // Never leased: the only jobs of this deployment are the canary's
    // rehearsal (and control samples); every stored result says so.
    let keys: Vec<String> = d["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys.iter()
            .filter(|k| !k.contains("/control/"))
            .cloned()
            .collect::<Vec<_>>(),
        vec![format!("{reh}/rehearse/gate/{canary}")],
        "{keys:#?}"
    );
    let shown = server.get(&format!("/api/v1/deployments/{reh}/rehearsals"));
    let gate = &shown["rehearsals"][0];
    assert_eq!(gate["status"], "failed", "{shown:#}");
    assert_eq!(gate["rehearsal"]["mode"], "overlay", "{shown:#}");
    assert_eq!(gate["rehearsal"]["scripts"][0]["package"], "pb-demo");
    assert_eq!(gate["rehearsal"]["scripts"][0]["exit"], 7);
    assert_eq!(
        server
            .audit("deployment.rehearsal_failed")
            .iter()
            .filter(|e| e["target"] == format!("deployment:{reh}"))
            .count(),
        1
    );
    // Item 5: the failure's signature (versions, step, OS release, arch) is
    // recorded with a lesson naming it, and a later preview of the same
    // version warns about every host that matches it (all five: one OS
    // release, one architecture); 1.2's signature (scenario B) does not match.
    let again = server.post(
        "/api/v1/deployments/preview",
        json!({"packages": [{"name": "pb-demo", "version": "1.2.1"}]}),
    );
    let warnings: Vec<&str> = again["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings: {again:#}"))
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), HOSTS, "{warnings:#?}");
    let sig = format!("SIG-{reh}/{canary}");
    for w in &warnings {
        assert!(
            w.contains(&format!(
                "matches failure signature {sig}: pb-demo=1.2.1 on debian 12"
            )) && w.contains("failed at rehearse.apply"),
            "{w}"
        );
    }
    let ok = server.post(
        "/api/v1/deployments/preview",
        json!({"packages": [{"name": "pb-demo", "version": "1.3"}]}),
    );
    assert!(ok.get("warnings").is_none(), "{ok:#}");
    let lessons = server.get(&format!("/api/v1/lessons?q={sig}"));
    let texts: Vec<&str> = lessons["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{lessons:#}"))
        .iter()
        .map(|l| l["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts.len(), 1, "{lessons:#}");
    assert!(
        texts[0].contains("pb-demo=1.2.1") && texts[0].contains("rehearse.apply"),
        "{}",
        texts[0]
    );
    // On demand: every host rehearses now; all fail the same way, none changes.
    let run = server.post(&format!("/api/v1/deployments/{reh}/rehearsals"), json!({}));
    assert_eq!(run["run"], 1, "{run:#}");
    let all = {
        let start = Instant::now();
        loop {
            let o = server.get(&format!("/api/v1/deployments/{reh}/rehearsals"));
            let mine: Vec<Value> = o["rehearsals"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["run"] == "1")
                .cloned()
                .collect();
            if mine.len() == HOSTS && mine.iter().all(|r| r["status"] != "pending") {
                break mine;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "{o:#}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    for r in &all {
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["rehearsal"]["scripts"][0]["script"], "postinst", "{r:#}");
    }
    for h in &hosts {
        let applied = if h.root.state.join("journal.jsonl").exists() {
            journal(&h.root.state)
                .into_iter()
                .filter(|r| r["job_key"].as_str().unwrap_or("").starts_with(&reh))
                .count()
        } else {
            0
        };
        assert_eq!(applied, 0, "{} journalled an apply of {reh}", h.name);
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}",
            h.name
        );
        assert!(!h.root.state.join("rehearse").exists(), "{}", h.name);
    }
    clock.phase(&format!(
        "{reh} halted on the canary's failed rehearsal: 1.2.1 never leased; on demand all {HOSTS} hosts rehearsed, all failed, none changed"
    ));
    // Removing a fresh root is slow on some disks: all five at once.
    drop_in_parallel(hosts);
    clock.phase("agents stopped, namespaces and roots removed");
}
