//! The `patchbay` command: server (`serve`), the all-in-one `dev` mode, client
//! commands over the REST API, and the fleet simulator.
//!
//! # Layout
//! - this file: flags ([`Cli`]) and dispatch ([`run`]).
//! - [`server`]: `serve` and `dev`.
//! - [`advisory_index`]: the compiled advisory index `scan` keeps on disk (key, cache path, rebuild).
//! - [`changes`]: change records, runbooks, lessons learned.
//! - [`client`]: `assets`, `tokens`, `enroll-token`, `audit` (REST API clients).
//! - [`evidence`]: offline `audit verify`, `evidence export|verify`.
//! - [`deploy`]: `deploy preview|create|list|show|start|…|approve|reject` (rollouts).
//! - [`exceptions`]: the exception register.
//! - [`escalations`]: notification contacts and escalation chains.
//! - [`webhooks`]: webhook subscriptions, deliveries, replays.
//! - [`reports`]: `report compliance|ttp|sla|coverage|deployments`.
//! - [`output`]: table and JSON rendering.
//! - [`sim`]: the fleet simulator (virtual agents with real inventories).
//! - [`schedule`]: `windows`, `blackouts`, `plan preview`, `calendar`.
#![forbid(unsafe_code)]

// Everything the CLI prints for people goes through `output::clean_text`, so a
// value from the server or a feed (a host name, a token name, a reason, an
// advisory summary) cannot carry terminal escape sequences or other control
// characters to the screen (security issue, hole 7). These shadow the std
// macros in every module below; machine output (JSON, JSON Lines, iCalendar,
// CSV/HTML reports) is written with `std::print!` and stays byte-exact.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&$crate::output::clean_text(&::std::format!($($arg)*)))
    };
}
macro_rules! println {
    () => {
        $crate::output::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&::std::format!(
            "{}\n",
            $crate::output::clean_text(&::std::format!($($arg)*))
        ))
    };
}

pub mod advisory_index;
pub mod backup;
pub mod changes;
pub mod client;
pub mod conn;
pub mod csaf;
pub mod deploy;
pub mod discovery;
pub mod drift;
pub mod escalations;
pub mod evidence;
pub mod exceptions;
pub mod feeds;
pub mod findings;
pub mod manual;
pub mod output;
pub mod prioritise;
pub mod reports;
pub mod schedule;
pub mod server;
pub mod sim;
pub mod users;
pub mod webhooks;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Patchbay: a patch-management control plane.
///
/// Client commands talk to a server given by --url / PATCHBAY_URL with the API
/// token from --token / PATCHBAY_TOKEN (falling back to ./patchbay-data/admin.token,
/// which `patchbay dev` and a first `patchbay serve` write).
#[derive(Debug, Parser)]
#[command(
    name = "patchbay",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 an error (stderr names what and where) or a check that failed \
(audit verify, evidence verify, config check, restore); 2 bad usage (an unknown flag, a missing argument).\n\
Log lines go to stderr, coloured only on a terminal and never with NO_COLOR set; results go to stdout \
(--format json on listings)."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is and how to reach it: the flags of the commands that
/// talk to a server (and only of those).
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Server URL (default http://127.0.0.1:8080).
    #[arg(long, global = true, env = "PATCHBAY_URL")]
    pub url: Option<String>,
    /// API token (default: ./patchbay-data/admin.token, which `patchbay dev`
    /// and a first `patchbay serve` write).
    #[arg(long, global = true, env = "PATCHBAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// server (a private CA or the
    /// server's self-signed certificate); default: the public web roots.
    #[arg(long, global = true, env = "PATCHBAY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// The server URL when none is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

impl Remote {
    /// The server URL.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }

    /// A client for the server, with the token and the CA.
    pub fn connect(&self) -> anyhow::Result<patchbay_client::Client> {
        conn::connect(self.url(), self.token.clone())
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output formats of read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

/// `--agent-mtls` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentMtlsArg {
    /// No client certificates.
    Off,
    /// Issue them; check them when presented.
    Optional,
    /// Refuse agent requests without the agent's own certificate.
    Required,
}

impl From<AgentMtlsArg> for patchbay_app::agent_ca::MtlsMode {
    fn from(a: AgentMtlsArg) -> Self {
        match a {
            AgentMtlsArg::Off => Self::Off,
            AgentMtlsArg::Optional => Self::Optional,
            AgentMtlsArg::Required => Self::Required,
        }
    }
}

/// Server options shared by `serve` and `dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Log format: one human-readable line, or one JSON object, per event
    /// (on stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The server configuration file (TOML): the SIEM sink (`[syslog]`) and
    /// the mail relay (`[smtp]`); see docs/configuration.md. Each key can
    /// also be set, or overridden, by PATCHBAY_<SECTION>_<KEY> (e.g.
    /// PATCHBAY_SMTP_PASSWORD). Precedence: flags > environment > file.
    #[arg(long, env = "PATCHBAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: postgres://user:pass@host/db, or sqlite://PATH.
    /// Default: SQLite at DATA_DIR/patchbay.db.
    #[arg(long, env = "PATCHBAY_DB")]
    pub db: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory (SQLite database, admin.token).
    #[arg(long, default_value = "./patchbay-data")]
    pub data_dir: PathBuf,
    /// A managed asset without a check-in for this long is stale (e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = patchbay_core::when::flag_interval)]
    pub stale_after: std::time::Duration,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS for agents (needs --tls-cert). `optional`: each agent gets a
    /// client certificate from Patchbay's own agent CA (DATA_DIR/agent-ca.pem
    /// and agent-ca.key, created on first start; copy both to every replica)
    /// at enrolment or its next check-in, and a certificate it presents must
    /// be its own. `required`: agent requests without the agent's own
    /// certificate are refused too. Go from off to optional to required, so
    /// agents enrolled before pick theirs up. Needs TLS to end at this server
    /// (a load balancer in TCP mode, not one that terminates TLS).
    #[arg(long, value_enum, default_value_t = AgentMtlsArg::Off)]
    pub agent_mtls: AgentMtlsArg,
    /// Validity of agents' client certificates, e.g. 90d, 30d (agents renew
    /// in the last third).
    #[arg(long, default_value = "90d", value_parser = patchbay_core::when::flag_interval)]
    pub agent_cert_validity: std::time::Duration,
    /// Background duties (exception expiry; later feed sync and rollouts) run
    /// on one replica at a time, the holder of a leader lease in the database.
    /// A dead leader's duties resume on another replica at most this much
    /// (plus one --duty-tick) later.
    #[arg(long, default_value = "30s", value_parser = patchbay_core::when::flag_interval)]
    pub lease_ttl: std::time::Duration,
    /// How often each replica renews or tries to take the lease and runs the
    /// duties that are due, e.g. 5s or 250ms. Must be shorter than
    /// --lease-ttl. (A stored job result wakes the leader's rollout driver
    /// at once; the tick bounds the rest.)
    #[arg(long, default_value = "5s", value_parser = patchbay_core::when::flag_fine_interval)]
    pub duty_tick: std::time::Duration,
    /// How often the check-in times of unchanged check-ins, kept in memory,
    /// are stored (e.g. 5s, 500ms). An unchanged check-in opens no write
    /// transaction; a crash (SIGKILL) loses at most this much of them
    /// (docs/resilience.md). Must be shorter than --stale-after.
    #[arg(long, default_value = "5s", value_parser = patchbay_core::when::flag_fine_interval)]
    pub heartbeat_flush: std::time::Duration,
    /// How long before an owner's first maintenance window of a deployment
    /// its expected-impact notice is sent (email to the contact named like
    /// the owner, webhooks: `deployment.impact_notice`; at once when the
    /// window is sooner). docs/impact-notices.md.
    #[arg(long, default_value = "24h", value_parser = patchbay_core::when::flag_interval)]
    pub impact_lead: std::time::Duration,
    /// The interruption a reboot is estimated at in impact notices when the
    /// host has no measured reboot time (its last reboot job).
    #[arg(long, default_value = "5m", value_parser = patchbay_core::when::flag_interval)]
    pub impact_reboot_estimate: std::time::Duration,
    /// The interruption one service restart is estimated at in impact
    /// notices.
    #[arg(long, default_value = "10s", value_parser = patchbay_core::when::flag_interval)]
    pub impact_restart_estimate: std::time::Duration,
    /// How often the leader raises the expiry events of exceptions that ran out.
    #[arg(long, default_value = "60s", value_parser = patchbay_core::when::flag_interval)]
    pub exception_sweep_every: std::time::Duration,
    /// How long a client connection may take to send a complete request head,
    /// from connecting or from the end of its previous response (so it also
    /// closes idle keep-alive connections), e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = patchbay_core::when::flag_interval)]
    pub header_read_timeout: std::time::Duration,
    /// The SMTP server notification emails go through:
    /// smtp://[USER[:PASS]@]HOST[:PORT] (STARTTLS required, port 587),
    /// smtps://… (implicit TLS, 465) or smtp+plain://… (no TLS: loopback
    /// hosts only). USER and PASS percent-encoded. Without it, emails wait in
    /// the outbox (docs/notifications.md).
    /// To keep a password off the command line, use the configuration file's
    /// [smtp] section and PATCHBAY_SMTP_PASSWORD instead (docs/configuration.md);
    /// this flag wins over the file.
    #[arg(long, requires = "smtp_from")]
    pub smtp_url: Option<String>,
    /// The From: address of notification emails (with --smtp-url).
    #[arg(long)]
    pub smtp_from: Option<String>,
    /// Extra CA certificates (PEM) to trust for the SMTP server's
    /// certificate (a private CA), beside the web PKI roots.
    #[arg(long)]
    pub smtp_ca_file: Option<std::path::PathBuf>,
}

/// `patchbay config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Check a configuration file as `serve --config` would read it (with
    /// the PATCHBAY_SYSLOG_* / PATCHBAY_SMTP_* overrides of this
    /// environment): prints what it sets, never a secret, or the first error
    /// naming file, line and key; exit 1 on an error.
    Check {
        /// The file (default: PATCHBAY_CONFIG, else /etc/patchbay/server.toml).
        #[arg(env = "PATCHBAY_CONFIG")]
        file: Option<PathBuf>,
        /// Extra CA certificates (PEM) for the SMTP server's certificate, as
        /// `serve --smtp-ca-file`.
        #[arg(long)]
        smtp_ca_file: Option<PathBuf>,
    },
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: REST API, agent endpoints, /metrics, /healthz.
    Serve(ServeArgs),
    /// All-in-one local demo: server on SQLite in ./patchbay-data plus a read-only
    /// agent for this machine.
    Dev(server::DevArgs),
    /// Manage assets.
    Assets {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: client::AssetsCmd,
    },
    /// Manage API tokens (admin).
    Tokens {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: client::TokensCmd,
    },
    /// Manage the people who sign in to the dashboard, and their sessions
    /// (admin; listing: any reader).
    Users {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: users::UsersCmd,
    },
    /// Manage agent enrolment tokens.
    #[command(name = "enroll-token")]
    EnrollToken {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: client::EnrollTokenCmd,
    },
    /// Read the audit log.
    Audit {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: client::AuditCmd,
    },
    /// The server's signing key (admin).
    Keys {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: client::KeysCmd,
    },
    /// Who the token is (name, role), and the server's public signing key to
    /// pin in `audit verify --public-key` and `evidence verify --public-key`.
    Whoami {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The server configuration file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Write manual pages (roff) for patchbay and patchbay-agent, one per
    /// command and subcommand, into a directory.
    Man(manual::ManArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell),
    /// e.g. `patchbay completions bash > /etc/bash_completion.d/patchbay`.
    Completions(manual::CompletionsArgs),
    /// Back up the server: the database (an online, consistent copy; for
    /// PostgreSQL through pg_dump) and the data directory's keys, in one
    /// .tar.gz with a manifest of SHA-256s (docs/operations.md).
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory (and database), check every
    /// file against the manifest, migrate forward and verify the audit log.
    /// Stop the server first.
    Restore(backup::RestoreArgs),
    /// Fleet simulator: enrol N virtual agents with realistic inventories.
    Sim {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The command's own flags.
        #[command(flatten)]
        args: sim::SimArgs,
    },
    /// Advisory feeds: import (uploaded to the server, or next to the database), air-gap mirrors, list.
    Feeds {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: FeedsCmd,
    },
    /// Findings: vulnerable packages per asset.
    Findings {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: findings::FindingsCmd,
    },
    /// Configuration drift: per policy group its baseline (modal version per
    /// package, or --golden ASSET) and each host's newer, older, missing and
    /// extra packages.
    Drift {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The command's own flags.
        #[command(flatten)]
        args: drift::DriftArgs,
    },
    /// Offline scan of one host's package list against feed files (no server).
    Scan(feeds::ScanArgs),
    /// What to patch next: ranked findings, overdue first, with due dates and reasons.
    Worklist {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The command's own flags.
        #[command(flatten)]
        args: prioritise::WorklistArgs,
    },
    /// Policy as code: check (locally), preview and apply.
    Policy {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: prioritise::PolicyCmd,
    },
    /// The patch catalog: findings grouped into patches with standard names.
    Patches {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Ring-by-ring deployments of exact package versions: preview, create,
    /// list, show, start, pause, resume, abort, rollback, approve, reject.
    ///
    /// Each ring has a concurrency limit and an error budget with a hard cap
    /// (failures plus jobs in flight never exceed the budget plus one; one
    /// failure over the budget halts everything and rolls back per the ring's
    /// policy). Hosts offline before their job is leased are skipped, not
    /// counted. Approvals need four eyes: not the creator or the starter.
    Deploy {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: deploy::DeployCmd,
    },
    /// Deployments, including out-of-band ones proposed by the zero-day lane.
    Deployments {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One screen on one CVE: affected assets, versions, fixes, due dates.
    Triage {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The CVE id.
        cve: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// What CSAF advisories say about an asset's products (fixed release,
    /// vendor fix, workaround; docs/csaf.md).
    Csaf {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: csaf::CsafCmd,
    },
    /// Change records (CHG-…), runbooks and the lessons-learned log.
    Changes {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: changes::ChangesCmd,
    },
    /// The signed evidence bundle: export (from the server) and verify (offline).
    Evidence {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: evidence::EvidenceCmd,
    },
    /// Reports as of a date: compliance, time to patch, SLA adherence, coverage.
    Report {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The command's own flags.
        #[command(flatten)]
        args: reports::ReportArgs,
    },
    /// Discovery: machines seen by scans, DHCP leases and cloud inventories —
    /// shadow, ghost, duplicate and conflicting records.
    Discovery {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: discovery::DiscoveryCmd,
    },
    /// The exception register: defer findings with owner, reason, control, expiry.
    Exceptions {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: exceptions::ExceptionsCmd,
    },
    /// Webhooks: signed event deliveries to receivers (Slack, Teams, PagerDuty, …).
    Webhooks {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: webhooks::WebhooksCmd,
    },
    /// Notification contacts: email addresses and the events emailed to them.
    Contacts {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: escalations::ContactsCmd,
    },
    /// Escalation chains: who is told, how and when, until someone
    /// acknowledges a pending approval or an SLA finding.
    Escalations {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: escalations::EscalationsCmd,
    },
    /// Maintenance windows: preview a definition (no server), add, list, remove.
    Windows {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: schedule::WindowsCmd,
    },
    /// Blackouts (change freezes): add, list, remove, approve out-of-band entry.
    Blackouts {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: schedule::BlackoutsCmd,
    },
    /// Schedule planning: when will each asset be patched, which SLAs are at risk.
    Plan {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The subcommand.
        #[command(subcommand)]
        cmd: schedule::PlanCmd,
    },
    /// The maintenance calendar (windows and blackouts) as iCalendar (.ics).
    ///
    /// Calendar applications can subscribe to GET /calendar.ics?token=… on the
    /// server with a calendar token (`patchbay tokens create --name NAME --role
    /// calendar`; it opens nothing else), optionally with &group=NAME.
    Calendar {
        /// The server to talk to.
        #[command(flatten)]
        remote: Remote,
        /// The command's own flags.
        #[command(flatten)]
        args: schedule::CalendarArgs,
    },
    /// Compare two versions: prints <, = or >.
    Vercmp {
        /// Scheme: deb, rpm, apk, semver (also npm and crates.io), pypi (PEP 440) or go
        /// (module versions v1.2.3 and toolchains go1.21.3).
        scheme: String,
        /// First version.
        a: String,
        /// Second version.
        b: String,
    },
}

/// `patchbay feeds …`
#[derive(Debug, Subcommand)]
pub enum FeedsCmd {
    /// Import feed files into the server and re-assess the fleet.
    ///
    /// Uploads each file to the server at --url / PATCHBAY_URL (an operator or
    /// admin token; a progress bar on a terminal). With --db or --data-dir it
    /// writes into that server's database directly instead (files and
    /// directories; the database must have been initialised by a server). With
    /// neither it fails. Malformed records are reported with file and record id
    /// and skipped alone; re-importing the same files changes nothing.
    Import(feeds::ImportArgs),
    /// Write an air-gap mirror of the configured feed sources into DIR.
    ///
    /// Fetches each [[feed_source]] with a url or path of --config into DIR,
    /// with a manifest (file, size, SHA-256, fetched-at, source) signed with
    /// the Ed25519 key --key (created if missing). Copy DIR to the air-gapped server and configure its
    /// sources with `mirror = "DIR"` and the printed `mirror_key`.
    Mirror(feeds::MirrorArgs),
    /// List imported feeds (source, version/date, records) via the API.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

impl Command {
    /// The server flags of a command that talks to a server.
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            Command::Assets { remote, .. }
            | Command::Tokens { remote, .. }
            | Command::Users { remote, .. }
            | Command::EnrollToken { remote, .. }
            | Command::Audit { remote, .. }
            | Command::Keys { remote, .. }
            | Command::Feeds { remote, .. }
            | Command::Findings { remote, .. }
            | Command::Drift { remote, .. }
            | Command::Policy { remote, .. }
            | Command::Deploy { remote, .. }
            | Command::Changes { remote, .. }
            | Command::Csaf { remote, .. }
            | Command::Evidence { remote, .. }
            | Command::Exceptions { remote, .. }
            | Command::Discovery { remote, .. }
            | Command::Webhooks { remote, .. }
            | Command::Contacts { remote, .. }
            | Command::Escalations { remote, .. }
            | Command::Windows { remote, .. }
            | Command::Blackouts { remote, .. }
            | Command::Plan { remote, .. }
            | Command::Sim { remote, .. }
            | Command::Worklist { remote, .. }
            | Command::Report { remote, .. }
            | Command::Calendar { remote, .. }
            | Command::Whoami { remote, .. }
            | Command::Patches { remote, .. }
            | Command::Deployments { remote, .. }
            | Command::Triage { remote, .. } => Some(remote),
            _ => None,
        }
    }
}

impl Cli {
    /// Parses the process's arguments (and environment).
    pub fn parse_env() -> Self {
        <Self as clap::Parser>::parse()
    }
}

/// Sets up tracing: server commands log at info, client commands only warnings.
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Serve(_) | Command::Dev(_) => "info,tower_http=warn,sqlx=warn",
        Command::Feeds {
            cmd: FeedsCmd::Import(_),
            ..
        } => "warn",
        _ => "warn",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let log_format = match &cli.command {
        Command::Serve(a) => a.log_format,
        Command::Dev(a) => a.log_format,
        _ => LogFormat::Text,
    };
    match log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b
            .with_ansi(patchbay_agent::cli::log_colors(
                std::env::var_os("NO_COLOR").as_deref(),
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ))
            .init(),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(ca) = cli.command.remote().and_then(|r| r.ca_cert.clone()) {
        let _ = conn::CA_CERT.set(ca);
    }
    match cli.command {
        Command::Serve(a) => server::serve(a),
        Command::Dev(a) => server::dev(a),
        Command::Assets { remote, cmd: c } => client::assets(&remote.connect()?, c),
        Command::Tokens { remote, cmd: c } => client::tokens(&remote.connect()?, c),
        Command::EnrollToken { remote, cmd: c } => client::enroll_token(&remote.connect()?, c),
        Command::Audit {
            cmd: client::AuditCmd::Verify(a),
            ..
        } => evidence::verify(a),
        Command::Audit { remote, cmd: c } => client::audit(&remote.connect()?, c),
        Command::Keys { remote, cmd: c } => client::keys(&remote.connect()?, c),
        Command::Config(ConfigCmd::Check { file, smtp_ca_file }) => {
            server::config_check(file, smtp_ca_file)
        }
        Command::Man(a) => manual::man(a),
        Command::Completions(a) => manual::completions(a),
        Command::Backup(a) => backup::backup(a),
        Command::Restore(a) => backup::restore(a),
        Command::Sim { remote, args: a } => sim::run(remote.url(), remote.token.clone(), a),
        Command::Feeds {
            remote,
            cmd: FeedsCmd::Import(a),
        } => feeds::import(a, remote.url.as_deref(), remote.token),
        Command::Feeds {
            cmd: FeedsCmd::Mirror(a),
            ..
        } => feeds::mirror(a),
        Command::Feeds {
            remote,
            cmd: FeedsCmd::List { format },
        } => findings::feeds_list(&remote.connect()?, format),
        Command::Findings { remote, cmd: c } => findings::findings(&remote.connect()?, c),
        Command::Drift { remote, args: a } => drift::drift(&remote.connect()?, a),
        Command::Scan(a) => feeds::scan(a),
        Command::Worklist { remote, args: a } => prioritise::worklist(&remote.connect()?, a),
        Command::Policy { remote, cmd: c } => {
            prioritise::policy(remote.url(), remote.token.clone(), c)
        }
        Command::Whoami { remote, format } => {
            let who: serde_json::Value = remote.connect()?.get("/api/v1/whoami")?;
            match format {
                Format::Json => output::json(&who),
                Format::Table => {
                    let field = |k: &str| who[k].as_str().unwrap_or("-").to_string();
                    println!("name:              {}", field("name"));
                    println!("role:              {}", field("role"));
                    println!("server public key: {}", field("server_public_key"));
                    Ok(())
                }
            }
        }
        Command::Patches { remote, format } => prioritise::patches(&remote.connect()?, format),
        Command::Deployments { remote, format } => {
            prioritise::deployments(&remote.connect()?, format)
        }
        Command::Deploy { remote, cmd: c } => deploy::run(remote.url(), remote.token.clone(), c),
        Command::Triage {
            remote,
            cve,
            format,
        } => prioritise::triage(&remote.connect()?, &cve, format),
        Command::Changes { remote, cmd: c } => changes::run(&remote.connect()?, c),
        Command::Csaf { remote, cmd: c } => csaf::run(&remote.connect()?, c),
        Command::Evidence { remote, cmd: c } => {
            evidence::evidence(remote.url(), remote.token.clone(), c)
        }
        Command::Report { remote, args: a } => reports::run(&remote.connect()?, a),
        Command::Exceptions { remote, cmd: c } => exceptions::run(&remote.connect()?, c),
        Command::Discovery { remote, cmd: c } => discovery::run(&remote.connect()?, c),
        Command::Users { remote, cmd: c } => users::run(&remote.connect()?, c),
        Command::Webhooks { remote, cmd: c } => webhooks::run(&remote.connect()?, c),
        Command::Contacts { remote, cmd: c } => escalations::run_contacts(&remote.connect()?, c),
        Command::Escalations { remote, cmd: c } => escalations::run(&remote.connect()?, c),
        Command::Windows { remote, cmd: c } => {
            schedule::windows(remote.url(), remote.token.clone(), c)
        }
        Command::Blackouts { remote, cmd: c } => schedule::blackouts(&remote.connect()?, c),
        Command::Plan { remote, cmd: c } => schedule::plan(&remote.connect()?, c),
        Command::Calendar { remote, args: a } => schedule::calendar(&remote.connect()?, a),
        Command::Vercmp { scheme, a, b } => findings::vercmp(&scheme, &a, &b),
    }
}

#[cfg(test)]
mod flag_tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Commands that never talk to a server.
    const LOCAL: &[&str] = &[
        "serve",
        "dev",
        "scan",
        "backup",
        "restore",
        "config",
        "man",
        "completions",
        "vercmp",
    ];

    fn has(c: &clap::Command, id: &str) -> bool {
        c.get_arguments().any(|a| a.get_id() == id)
    }

    /// Client flags (--url, --token, --ca-cert) are on every command that
    /// talks to a server, and on no other; --log-format only on the two
    /// server commands.
    #[test]
    fn client_flags_only_where_a_server_is_talked_to() {
        let root = Cli::command();
        root.clone().debug_assert();
        for id in ["url", "token", "ca_cert", "log_format"] {
            assert!(!has(&root, id), "--{id} is a flag of patchbay itself");
        }
        let mut clients = 0;
        for c in root.get_subcommands() {
            let name = c.get_name();
            if name == "help" {
                continue;
            }
            let local = LOCAL.contains(&name);
            for id in ["url", "token", "ca_cert"] {
                assert_eq!(has(c, id), !local, "patchbay {name}: --{id}");
            }
            clients += usize::from(!local);
            assert_eq!(
                has(c, "log_format"),
                matches!(name, "serve" | "dev"),
                "patchbay {name}: --log-format"
            );
        }
        assert!(clients > 20, "{clients}");
        // Given after the subcommand's name, and deeper.
        let cli = Cli::try_parse_from([
            "patchbay",
            "assets",
            "list",
            "--url",
            "http://x:1",
            "--token",
            "t",
        ])
        .unwrap();
        let r = cli.command.remote().unwrap();
        assert_eq!((r.url(), r.token.as_deref()), ("http://x:1", Some("t")));
        assert!(
            Cli::try_parse_from(["patchbay", "--url", "http://x:1", "assets", "list"]).is_err()
        );
        assert!(Cli::try_parse_from(["patchbay", "backup", "--out", "f", "--url", "u"]).is_err());
    }

    /// Every listing (and every `show`) has `--format json`.
    #[test]
    fn every_listing_has_format_json() {
        fn walk(c: &clap::Command, path: &str, found: &mut usize) {
            let path = format!("{path} {}", c.get_name());
            let mut subs = c
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .peekable();
            if subs.peek().is_none() {
                let name = c.get_name();
                let listing = name.contains("list")
                    || matches!(
                        name,
                        "show"
                            | "deliveries"
                            | "review"
                            | "worklist"
                            | "patches"
                            | "deployments"
                            | "whoami"
                            | "triage"
                            | "feeds"
                    );
                if listing {
                    *found += 1;
                    let format = c.get_arguments().find(|a| a.get_id() == "format");
                    let values: Vec<String> = format
                        .map(|a| {
                            a.get_possible_values()
                                .iter()
                                .map(|v| v.get_name().to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    assert!(
                        values.iter().any(|v| v == "json"),
                        "{path}: no --format json"
                    );
                }
            }
            for s in subs {
                walk(s, &path, found);
            }
        }
        let mut found = 0;
        walk(&Cli::command(), "", &mut found);
        assert!(found > 20, "{found} listings");
    }
}
