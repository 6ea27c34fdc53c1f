//! Test support: an in-process server on a fresh database, binaries, oracles.

use jiff::Timestamp;
use patchbay_app::{AppConfig, ManualClock};
use patchbay_client::Client;
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use patchbay_server::Settings;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

pub const PATCHBAY: &str = env!("CARGO_BIN_EXE_patchbay");

/// The `patchbay-agent` binary. It belongs to the `patchbay-agent` package, so
/// cargo does not build it for this package's tests; it is looked up next to
/// the `patchbay` binary, in the same target directory and profile
/// (`cargo test --workspace` builds every binary before running tests).
pub fn agent() -> &'static Path {
    static AGENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let p = Path::new(PATCHBAY)
            .with_file_name(format!("patchbay-agent{}", std::env::consts::EXE_SUFFIX));
        assert!(
            p.is_file(),
            "the patchbay-agent binary is missing at {}: build it: cargo build -p patchbay-agent \
             (cargo test --workspace builds it too)",
            p.display()
        );
        p
    })
}

/// The repository's fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A server running in this process on its own runtime thread.
pub struct Server {
    pub url: String,
    pub admin: String,
    pub db_url: String,
    pub clock: Arc<ManualClock>,
    /// The server's data directory (admin token, signing key).
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    /// Ticks this server's duties runner (it has no background runner: tests
    /// drive it with [`Server::run_duties`]).
    duties: tokio::sync::mpsc::UnboundedSender<
        tokio::sync::oneshot::Sender<patchbay_app::duties::TickReport>,
    >,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(backend: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        // Whole seconds: the store keeps milliseconds, and tests compare exact periods.
        let clock = Arc::new(ManualClock::new(
            Timestamp::now().round(jiff::Unit::Second).unwrap(),
        ));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (duties_tx, mut duties_rx) = tokio::sync::mpsc::unbounded_channel::<
            tokio::sync::oneshot::Sender<patchbay_app::duties::TickReport>,
        >();
        let backend = backend.to_string();
        let clk = clock.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let db_url = patchbay_store::testing::fresh_url(&backend).await;
                let settings = Settings {
                    db_url: Some(db_url.clone()),
                    data_dir,
                    app: AppConfig::default(),
                };
                let mut prepared = patchbay_server::setup::prepare_with_clock(&settings, clk)
                    .await
                    .unwrap();
                prepared.run_duties = false;
                let mut runner =
                    patchbay_app::duties::Runner::new(prepared.app.clone(), "test-replica");
                tokio::spawn(async move {
                    while let Some(reply) = duties_rx.recv().await {
                        let _ = reply.send(runner.tick().await);
                    }
                });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let admin = std::fs::read_to_string(&prepared.admin_token_path).unwrap();
                ready_tx
                    .send((addr, admin.trim().to_string(), db_url.clone()))
                    .unwrap();
                patchbay_server::serve(&prepared, listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let (addr, admin, db_url) = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server start");
        Server {
            url: format!("http://{addr}"),
            admin,
            db_url,
            clock,
            data_dir: dir.path().to_path_buf(),
            _dir: dir,
            duties: duties_tx,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `patchbay feeds import` run next to this server's database (a tool,
    /// signing with the server's key from its data directory) on fixture
    /// files; returns its output and fails the test if it fails.
    pub fn import_feeds(&self, fixture_files: &[&str]) -> String {
        let mut c = Command::new(PATCHBAY);
        c.args(["feeds", "import", "--db", &self.db_url])
            .arg("--data-dir")
            .arg(&self.data_dir);
        for f in fixture_files {
            c.arg(fixtures().join(f));
        }
        ok(&c.output().unwrap())
    }

    /// Enrols a read-only agent on a Debian root with this dpkg `status` and
    /// runs one check-in; returns the root.
    pub fn host_with(&self, status: &str) -> tempfile::TempDir {
        let root = deb_root(status);
        let state = tempfile::tempdir().unwrap();
        ok(&self.agent_once(
            state.path(),
            Some(&self.enroll_token(1)),
            &[
                "--root",
                root.path().to_str().unwrap(),
                "--no-pending-updates",
            ],
        ));
        root
    }

    /// One tick of the server's duties runner, at the server's (manual) clock.
    pub fn run_duties(&self) -> patchbay_app::duties::TickReport {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.duties.send(tx).unwrap();
        rx.blocking_recv().unwrap()
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(
            &self.url,
            token.map(str::to_string),
            Duration::from_secs(60),
        )
    }

    pub fn admin(&self) -> Client {
        self.client(Some(&self.admin))
    }

    pub fn enroll_token(&self, uses: u32) -> String {
        let t: EnrollTokenCreated = self
            .admin()
            .send(
                "POST",
                "/api/v1/enroll-tokens",
                &CreateEnrollToken {
                    name: Some("test".into()),
                    uses: Some(uses),
                    ttl_secs: None,
                },
            )
            .unwrap();
        t.token
    }

    /// Runs `patchbay` with this server's URL and admin token.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(PATCHBAY)
            .args(args)
            .env("PATCHBAY_URL", &self.url)
            .env("PATCHBAY_TOKEN", &self.admin)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs `patchbay-agent --once` against this server.
    pub fn agent_once(
        &self,
        state_dir: &Path,
        enroll_token: Option<&str>,
        extra: &[&str],
    ) -> Output {
        let mut c = Command::new(agent());
        c.arg("--server")
            .arg(&self.url)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--once")
            .args(extra);
        if let Some(t) = enroll_token {
            c.arg("--enroll-token").arg(t);
        }
        c.env_remove("PATCHBAY_ENROLL_TOKEN").output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asserts a command succeeded and returns its stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The packages present on this machine per `dpkg-query -W` (the oracle):
/// (name, version, arch), excluding packages whose status is not-installed or
/// config-files (dpkg-query -W lists config-files packages, which are not installed).
pub fn dpkg_query() -> Vec<(String, String, String)> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f=${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n",
        ])
        .output()
        .expect("dpkg-query must exist on the Debian test machine");
    assert!(out.status.success());
    let mut v: Vec<(String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 4 && f[3] != "not-installed" && f[3] != "config-files")
                .then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect();
    v.sort();
    v
}

/// Makes a root file system with an os-release and a dpkg status file.
pub fn deb_root(status: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.path().join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    std::fs::write(root.path().join("etc/hostname"), "chroot-host\n").unwrap();
    std::fs::write(
        root.path().join("etc/machine-id"),
        format!("{:032x}\n", rand::random::<u128>()),
    )
    .unwrap();
    std::fs::write(root.path().join("var/lib/dpkg/status"), status).unwrap();
    root
}

pub fn minbase_before() -> String {
    std::fs::read_to_string(
        fixtures()
            .join("inventories/debian12/debootstrap-minbase-before-security-upgrade.dpkg-status"),
    )
    .unwrap()
}

pub fn minbase_after() -> String {
    std::fs::read_to_string(
        fixtures()
            .join("inventories/debian12/debootstrap-minbase-after-security-upgrade.dpkg-status"),
    )
    .unwrap()
}

/// Reads a counter from /metrics (sum over label sets whose line contains `filter`).
pub fn metric(server: &Server, name: &str, filter: &str) -> f64 {
    let body = ureq::get(format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A `patchbay serve` process on port 0 whose JSON log lines are kept.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub url: String,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `patchbay serve --log-format json --listen 127.0.0.1:0
    /// --data-dir DIR EXTRA…` (SQLite in DIR unless EXTRA has `--db`) with
    /// `RUST_LOG=rust_log`; returns once it has announced its address.
    pub fn start(data_dir: &Path, extra: &[&str], rust_log: &str) -> Self {
        Self::start_env(data_dir, extra, rust_log, &[])
    }

    /// [`ServeProcess::start`] with extra environment variables.
    pub fn start_env(
        data_dir: &Path,
        extra: &[&str],
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_in(None, "127.0.0.1:0", data_dir, extra, rust_log, env)
    }

    /// [`ServeProcess::start_env`] inside network namespace `netns` (when
    /// given), listening on `listen`.
    pub fn start_in(
        netns: Option<&str>,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::BufRead;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, PATCHBAY]);
                c
            }
            None => Command::new(PATCHBAY),
        };
        let mut child = cmd
            .args([
                "serve",
                "--log-format",
                "json",
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", rust_log)
            .env_remove("PATCHBAY_DB")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let _ = tx.send(addr.to_string());
                }
                keep.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server announces its address");
        Self {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    /// The log lines so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs one `patchbay_store::testing` call on a throwaway runtime: the tests
/// read and tamper with the database directly, bypassing the server.
fn blocking<T>(f: impl std::future::Future<Output = Result<T, String>>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
        .unwrap_or_else(|e| panic!("database: {e}"))
}

/// Raw SQL against `db` (tampering as an attacker with database access would);
/// the rows affected.
pub fn db_exec(db: &str, sql: &str) -> u64 {
    blocking(patchbay_store::testing::execute_raw(db, sql))
}

/// Rows of `(text, integer)` read from `db` directly.
pub fn db_pairs(db: &str, sql: &str) -> Vec<(String, i64)> {
    blocking(patchbay_store::testing::query_pairs(db, sql))
}

/// The first column of every row, as text, read from `db` directly.
pub fn db_text(db: &str, sql: &str) -> Vec<String> {
    blocking(patchbay_store::testing::query_text(db, sql))
}

/// Every table of `db` with all its rows.
pub fn db_dump(db: &str) -> std::collections::BTreeMap<String, String> {
    blocking(patchbay_store::testing::dump_all(db))
}

/// A full check-in of `inv` with an agent's client.
pub fn full_checkin(
    agent: &Client,
    inv: &patchbay_core::inventory::Inventory,
) -> Result<patchbay_proto::agent::CheckinResponse, patchbay_client::HttpError> {
    agent.send(
        "POST",
        "/agent/v1/checkin",
        &patchbay_proto::agent::CheckinRequest {
            results: vec![],
            wait_secs: None,
            key_refusals: Vec::new(),
            protocol: 1,
            inventory_hash: inv.content_hash(),
            inventory: patchbay_proto::agent::InventoryPayload::Full {
                inventory: inv.clone(),
            },
        },
    )
}

/// Starts `patchbay dev --listen 127.0.0.1:0 --data-dir DATA EXTRA…` and
/// reads its banner up to "Press Ctrl-C"; returns the process, the banner
/// and the server's base URL (from the "API:" line).
pub fn start_dev(data: &Path, extra: &[&str]) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = Command::new(PATCHBAY)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let url = banner_value(&banner, "API:")
        .map(|u| u.trim_end_matches("/api/v1").to_string())
        .unwrap_or_else(|| panic!("no API line in:\n{banner}"));
    (child, banner, url)
}

/// The first word after `prefix` on a (trimmed) banner line.
pub fn banner_value(banner: &str, prefix: &str) -> Option<String> {
    banner.lines().find_map(|l| {
        l.trim()
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

/// A KEV catalog of one entry: `cve`, added and due on 2026-01-05, with
/// catalog version `version` (tests that put a CVE into KEV).
pub fn kev_catalog(version: &str, cve: String) -> patchbay_feeds::kev::Catalog {
    let day = jiff::civil::date(2026, 1, 5);
    patchbay_feeds::kev::Catalog {
        version: version.into(),
        released: "2026-01-05T00:00:00Z".parse().unwrap(),
        title: None,
        entries: vec![patchbay_feeds::kev::KevEntry {
            cve,
            vendor: "v".into(),
            product: "p".into(),
            name: "n".into(),
            date_added: day,
            due_date: day,
            known_ransomware: false,
            description: String::new(),
            required_action: String::new(),
            notes: String::new(),
            cwes: vec![],
        }],
    }
}
