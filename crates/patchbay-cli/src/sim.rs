//! The fleet simulator: enrols N virtual agents whose inventories are built from
//! real package databases (see `fixtures/inventories`), then checks each in once,
//! with a progress bar. For demos and benchmarks. `patchbay sim load` ([`load`])
//! keeps a simulated fleet checking in at an interval and measures the server.

pub mod fleet;
pub mod load;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use patchbay_client::Client;
use patchbay_core::inventory::{
    HostFacts, Inventory, OsRelease, PackageFormat, apk, dpkg, os_release, rules,
};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryPayload,
};
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `patchbay sim` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// A load test instead of a one-off enrolment.
    #[command(subcommand)]
    pub mode: Option<SimMode>,
    /// Number of virtual agents.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Name prefix of the virtual hosts.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Random seed (the same seed gives the same fleet).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `patchbay sim` modes.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimMode {
    /// Load test: N simulated agents enrol, send their first inventory, then
    /// check in unchanged every --interval for --duration (async client);
    /// reports p50/p99 latency, errors, and the server's CPU and RSS
    /// (--server-pid).
    Load(load::LoadArgs),
}

/// The real inventories the fleet is built from.
pub struct Templates(Vec<Inventory>);

const DEB12_HOST: &str =
    include_str!("../../../fixtures/inventories/debian12/host-ci-image.dpkg-status");
const DEB12_MINBASE: &str = include_str!(
    "../../../fixtures/inventories/debian12/debootstrap-minbase-before-security-upgrade.dpkg-status"
);
const UBUNTU2404: &str =
    include_str!("../../../fixtures/inventories/ubuntu2404/debootstrap-noble.dpkg-status");
const UBUNTU2404_OS: &str = include_str!("../../../fixtures/inventories/ubuntu2404/os-release");
const ALPINE323: &str =
    include_str!("../../../fixtures/inventories/alpine323/lib-apk-db-installed");
const ALPINE323_OS: &str = include_str!("../../../fixtures/inventories/alpine323/os-release");

impl Templates {
    /// Parses the bundled real inventories.
    pub fn load() -> anyhow::Result<Self> {
        let deb12 = OsRelease {
            id: "debian".into(),
            version_id: "12".into(),
            version_codename: "bookworm".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            id_like: String::new(),
        };
        let mk = |os: OsRelease, format, packages| {
            let mut inv = Inventory {
                facts: HostFacts {
                    os,
                    arch: "x86_64".into(),
                    kernel: "6.1.0-28-amd64".into(),
                    ..Default::default()
                },
                format: Some(format),
                packages,
                pending_updates: vec![],
            };
            inv.normalize();
            inv
        };
        Ok(Self(vec![
            mk(
                deb12.clone(),
                PackageFormat::Deb,
                dpkg::parse_status(DEB12_HOST).context("debian 12 host fixture")?,
            ),
            mk(
                deb12,
                PackageFormat::Deb,
                dpkg::parse_status(DEB12_MINBASE).context("debian 12 minbase fixture")?,
            ),
            mk(
                os_release::parse(UBUNTU2404_OS).context("ubuntu os-release")?,
                PackageFormat::Deb,
                dpkg::parse_status(UBUNTU2404).context("ubuntu 24.04 fixture")?,
            ),
            mk(
                os_release::parse(ALPINE323_OS).context("alpine os-release")?,
                PackageFormat::Apk,
                apk::parse_installed(ALPINE323).context("alpine 3.23 fixture")?,
            ),
        ]))
    }

    /// The inventory of virtual host `i`: a template chosen by weight (most hosts
    /// are Debian servers), with a few packages held back at an older revision so
    /// the fleet is realistically uneven.
    pub fn host(&self, i: usize, seed: u64, name: &str) -> Inventory {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let pick = match rng.random_range(0..10) {
            0..=5 => 0,
            6..=7 => 1,
            8 => 2,
            _ => 3,
        };
        let mut inv = self.0[pick].clone();
        let format = inv.format.unwrap_or(PackageFormat::Deb);
        for p in inv.packages.iter_mut() {
            if rng.random_bool(0.01) {
                // An older version in the ecosystem's own syntax (check-ins are
                // held to it): `~` sorts before anything in dpkg and rpm, an
                // `_rc` suffix before the release in apk.
                let older = match (format, p.version.rsplit_once("-r")) {
                    (PackageFormat::Apk, Some((v, r))) => format!("{v}_rc1-r{r}"),
                    _ => format!("{}~sim1", p.version),
                };
                if rules::valid_version(format, &older) {
                    p.version = older;
                }
            }
        }
        inv.facts.hostname = name.to_string();
        inv.facts.machine_id = format!("{:032x}", rng.random::<u128>());
        inv.facts.ip_addresses = vec![format!(
            "10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )];
        inv.normalize();
        inv
    }
}

/// Enrols and checks in one virtual agent; returns package rows written.
pub fn enrol_and_checkin(server: &str, enroll_token: &str, inv: &Inventory) -> anyhow::Result<u64> {
    enrol(server, enroll_token, inv).map(|(_, rows)| rows)
}

/// Enrols and checks in one virtual agent; returns it as a [`fleet::SimHost`]
/// (its credential and pinned key) and the package rows written.
pub fn enrol(
    server: &str,
    enroll_token: &str,
    inv: &Inventory,
) -> anyhow::Result<(fleet::SimHost, u64)> {
    let c = Client::new(server, None, Duration::from_secs(120));
    let e: EnrollResponse = c.send(
        "POST",
        "/agent/v1/enroll",
        &EnrollRequest {
            protocol: AGENT_PROTOCOL_VERSION,
            enroll_token: enroll_token.to_string(),
            hostname: inv.facts.hostname.clone(),
            machine_id: inv.facts.machine_id.clone(),
            agent_secret: None,
            csr: None,
        },
    )?;
    let c = Client::new(
        server,
        Some(e.agent_secret.clone()),
        Duration::from_secs(120),
    );
    let r: CheckinResponse = c.send(
        "POST",
        "/agent/v1/checkin",
        &CheckinRequest {
            results: vec![],
            wait_secs: None,
            key_refusals: Vec::new(),
            protocol: AGENT_PROTOCOL_VERSION,
            inventory_hash: inv.content_hash(),
            inventory: InventoryPayload::Full {
                inventory: inv.clone(),
            },
        },
    )?;
    let host = fleet::SimHost {
        name: e.asset_name,
        secret: e.agent_secret,
        server_key: e.server_public_key,
        inventory: inv.clone(),
        results: vec![],
        waiting: vec![],
        journal: Default::default(),
        synced: r.stored_hash == inv.content_hash(),
    };
    Ok((host, r.package_rows_written))
}

/// `patchbay sim`
pub fn run(url: &str, token: Option<String>, a: SimArgs) -> anyhow::Result<()> {
    if let Some(SimMode::Load(l)) = a.mode {
        return load::run(url, token, l);
    }
    enrol_fleet(url, token, &a).map(|_| ())
}

/// Enrols `a.agents` virtual agents (each checks in once) with a progress
/// bar; returns them, in name order.
pub fn enrol_fleet(
    url: &str,
    token: Option<String>,
    a: &SimArgs,
) -> anyhow::Result<Vec<fleet::SimHost>> {
    if a.agents == 0 || a.concurrency == 0 {
        bail!("--agents and --concurrency must be positive");
    }
    let templates = Templates::load()?;
    let admin = crate::conn::connect(url, token)?;
    let t: EnrollTokenCreated = admin.send(
        "POST",
        "/api/v1/enroll-tokens",
        &CreateEnrollToken {
            name: Some(format!("sim-{}", a.prefix)),
            uses: Some(u32::try_from(a.agents).context("--agents is too large")?),
            ttl_secs: Some(3600),
        },
    )?;
    let bar = ProgressBar::new(a.agents as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} agents {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let enrolled = std::sync::Mutex::new(Vec::with_capacity(a.agents));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.concurrency {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.agents {
                        break;
                    }
                    let name = format!("{}-{i:05}", a.prefix);
                    let inv = templates.host(i, a.seed, &name);
                    match enrol(url, &t.token, &inv) {
                        Ok((host, _)) => {
                            if let Ok(mut v) = enrolled.lock() {
                                v.push(host);
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            bar.println(format!("{name}: {e:#}"));
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish();
    let failed = failed.into_inner();
    println!(
        "enrolled {} virtual agents in {:.1}s ({} failed)",
        a.agents - failed,
        start.elapsed().as_secs_f64(),
        failed
    );
    if failed > 0 {
        bail!("{failed} virtual agents failed");
    }
    let mut hosts = enrolled.into_inner().unwrap_or_default();
    hosts.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(hosts)
}
