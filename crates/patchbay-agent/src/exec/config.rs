//! The agent's local configuration file (`/etc/patchbay-agent/agent.toml`).
//!
//! Health checks and hooks are defined **only** here, on the host: a server can
//! ask the agent to run a check by name, never send a command. Example:
//!
//! ```toml
//! [preflight]
//! min_free_mb = 100        # kept free on every file system a change writes to
//! repair = true            # run `dpkg --configure -a` on an interrupted database
//!
//! [timeouts]
//! query_secs = 300         # listing, simulation, metadata refresh
//! apply_secs = 1800        # the transaction itself
//!
//! [hooks]
//! snapshot = ["/usr/local/sbin/snapshot", "create"]          # exit 0 = taken
//! snapshot_restore = ["/usr/local/sbin/snapshot", "restore"] # `rollback --method snapshot`
//! snapshot_verify = ["/usr/local/sbin/snapshot", "verify"]   # restore to $PATCHBAY_SCRATCH, check; exit 0 = verified
//! timeout_secs = 600
//!
//! [jobs]
//! enabled = false          # run server-signed jobs from the check-in (default: no)
//! reboot_command = ["systemctl", "reboot"]  # argv of a `reboot` job, when one is required
//! critical_checks = ["web"] # reported critical: failing after a change fails the ring
//!
//! [unmanaged]              # software outside the package manager (crate::collect::unmanaged)
//! virtualenvs = ["/srv/venvs"]
//! binaries = ["/usr/local/bin", "/usr/local/sbin", "/opt"]
//!
//! [[check]]
//! name = "web"
//! kind = "http"
//! url = "http://127.0.0.1:8080/health"
//! status = 200
//! body_contains = "ok"
//!
//! [[check]]
//! name = "ssh"
//! kind = "systemd"
//! unit = "ssh.service"
//!
//! [[check]]
//! name = "db-port"
//! kind = "tcp"
//! address = "127.0.0.1:5432"
//!
//! [[check]]
//! name = "app-version"
//! kind = "command"
//! command = ["/usr/local/bin/app", "--self-test"]
//! timeout_secs = 10
//! rehearse = true          # also run in rehearsals, chrooted in the overlay (default: no)
//!
//! [[check]]
//! name = "p99-ms"          # a measurement: stdout is the value (higher is worse)
//! kind = "command"
//! command = ["/usr/local/bin/p99-latency-ms"]
//! metric = true
//! ```
//!
//! A `command` check with `metric = true` measures a number: its standard
//! output, trimmed, must be one plain decimal number (`42`, `-0.5`, `1.5e3`;
//! at most 64 characters, finite). The number is the check's value in job
//! results' baseline and after samples, which the server's canary judge
//! compares (Mann-Whitney, higher is worse, 25 % tolerance). Output that is
//! not such a number (empty, `nan`, `inf`, `12 ms`, two lines) gives the sample
//! no value, and the check's detail says why; pass or fail is still the exit
//! status.
//!
//! Hooks run with `PATCHBAY_JOB_KEY` and `PATCHBAY_ROOT` in their environment.
//! `[jobs] enabled` is the host's consent to server-driven change: without it
//! the check-in loop refuses every job it receives (`jobs_disabled`) and stays
//! read-only; the local commands are not affected.
//! Unknown keys are errors, so a typo never silently disables a check.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/patchbay-agent/agent.toml";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Pre-flight limits.
    #[serde(default)]
    pub preflight: Preflight,
    /// Command timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Snapshot hooks.
    #[serde(default)]
    pub hooks: Hooks,
    /// Server-signed jobs.
    #[serde(default)]
    pub jobs: Jobs,
    /// Health checks, in order.
    #[serde(default, rename = "check")]
    pub checks: Vec<Check>,
    /// Where to look for software installed outside the package manager
    /// (`[unmanaged]`; `crate::collect::unmanaged`).
    #[serde(default)]
    pub unmanaged: crate::collect::unmanaged::Settings,
}

/// `[jobs]`: whether the check-in loop runs server-signed jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    /// Run jobs received over the check-in (default `false`: every job is
    /// refused with `jobs_disabled`).
    #[serde(default)]
    pub enabled: bool,
    /// The command (argv, no shell) a `reboot` job runs when a reboot is
    /// required.
    #[serde(default = "default_reboot_command")]
    pub reboot_command: Vec<String>,
    /// Checks (by name) reported as critical in job results: a failure after
    /// a change fails the deployment's ring outright.
    #[serde(default)]
    pub critical_checks: Vec<String>,
}

fn default_reboot_command() -> Vec<String> {
    vec!["systemctl".into(), "reboot".into()]
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            enabled: false,
            reboot_command: default_reboot_command(),
            critical_checks: Vec::new(),
        }
    }
}

/// `[preflight]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preflight {
    /// MiB that must stay free on each file system after the change.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// Repair an interrupted package database (`dpkg --configure -a`) instead of
    /// refusing.
    #[serde(default = "yes")]
    pub repair: bool,
}

fn default_min_free_mb() -> u64 {
    100
}
fn yes() -> bool {
    true
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            min_free_mb: default_min_free_mb(),
            repair: true,
        }
    }
}

/// `[timeouts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Queries and simulations, seconds.
    #[serde(default = "default_query_secs")]
    pub query_secs: u64,
    /// Transactions and repairs, seconds.
    #[serde(default = "default_apply_secs")]
    pub apply_secs: u64,
}

fn default_query_secs() -> u64 {
    300
}
fn default_apply_secs() -> u64 {
    1800
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            query_secs: default_query_secs(),
            apply_secs: default_apply_secs(),
        }
    }
}

/// `[hooks]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Taken before every apply; a non-zero exit refuses the job.
    #[serde(default)]
    pub snapshot: Option<Vec<String>>,
    /// Run by `rollback --method snapshot`.
    #[serde(default)]
    pub snapshot_restore: Option<Vec<String>>,
    /// Run by a `verify_snapshot` job (and `patchbay-agent verify-snapshot`):
    /// restores the snapshot `PATCHBAY_SNAPSHOT_ID` into the empty directory
    /// `PATCHBAY_SCRATCH` and checks it; exit 0 = verified.
    #[serde(default)]
    pub snapshot_verify: Option<Vec<String>>,
    /// Limit for each hook, seconds.
    #[serde(default = "default_hook_secs")]
    pub timeout_secs: u64,
}

fn default_hook_secs() -> u64 {
    600
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            snapshot: None,
            snapshot_restore: None,
            snapshot_verify: None,
            timeout_secs: default_hook_secs(),
        }
    }
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// `systemctl is-active UNIT` says `active`.
    Systemd {
        /// Name.
        name: String,
        /// Unit, e.g. `ssh.service`.
        unit: String,
        /// Seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// A TCP connection to `address` (`host:port`) succeeds.
    Tcp {
        /// Name.
        name: String,
        /// `host:port`.
        address: String,
        /// Seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// A GET of `url` answers `status` and, if given, a body containing
    /// `body_contains`.
    Http {
        /// Name.
        name: String,
        /// URL.
        url: String,
        /// Expected status (default 200).
        #[serde(default = "default_status")]
        status: u16,
        /// Text the body must contain.
        #[serde(default)]
        body_contains: Option<String>,
        /// Seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// A command (argv, no shell) exits 0 within its timeout.
    Command {
        /// Name.
        name: String,
        /// Program and arguments.
        command: Vec<String>,
        /// Seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// The command measures a number: its whole standard output, trimmed,
        /// is the check's value (a plain decimal such as `12`, `-0.5` or
        /// `1.5e3`; higher is worse), sent with job results for the numeric
        /// canary judge. Anything else (empty, two numbers, `nan`, `inf`,
        /// text, out of range) gives no value and the detail says why; the
        /// pass/fail verdict is still the exit status.
        #[serde(default)]
        metric: bool,
        /// Safe to run in a rehearsal (default `false`): the command is run
        /// inside the chroot of the rehearsal's overlay (`chroot MERGED
        /// COMMAND…`), so it must only read files and must not need running
        /// services (none are started there). Only command checks can be
        /// marked: systemd, TCP and HTTP checks would probe the real host.
        #[serde(default)]
        rehearse: bool,
    },
}

fn default_status() -> u16 {
    200
}

impl Check {
    /// Marked safe for rehearsal (`rehearse = true`, command checks only).
    pub fn rehearse(&self) -> bool {
        matches!(self, Check::Command { rehearse: true, .. })
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        match self {
            Check::Systemd { name, .. }
            | Check::Tcp { name, .. }
            | Check::Http { name, .. }
            | Check::Command { name, .. } => name,
        }
    }

    /// `systemd`, `tcp`, `http` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Systemd { .. } => "systemd",
            Check::Tcp { .. } => "tcp",
            Check::Http { .. } => "http",
            Check::Command { .. } => "command",
        }
    }

    /// The check's time limit (default 10 s).
    pub fn timeout(&self) -> Duration {
        let t = match self {
            Check::Systemd { timeout_secs, .. }
            | Check::Tcp { timeout_secs, .. }
            | Check::Http { timeout_secs, .. }
            | Check::Command { timeout_secs, .. } => *timeout_secs,
        };
        Duration::from_secs(t.unwrap_or(10).max(1))
    }
}

impl Config {
    /// Parses and validates a configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = toml::from_str(text)?;
        let mut seen = std::collections::BTreeSet::new();
        for ch in &c.checks {
            if ch.name().trim().is_empty() {
                bail!("a [[check]] has an empty name");
            }
            if !seen.insert(ch.name()) {
                bail!("check name {:?} is defined twice", ch.name());
            }
            if let Check::Command { command, .. } = ch
                && command.is_empty()
            {
                bail!("check {:?}: command is empty", ch.name());
            }
        }
        if c.jobs.reboot_command.is_empty() {
            bail!("jobs.reboot_command is empty");
        }
        if let Some(n) = c.jobs.critical_checks.iter().find(|n| c.check(n).is_none()) {
            bail!("jobs.critical_checks names {n:?}, which is not a [[check]]");
        }
        for (what, h) in [
            ("snapshot", &c.hooks.snapshot),
            ("snapshot_restore", &c.hooks.snapshot_restore),
            ("snapshot_verify", &c.hooks.snapshot_verify),
        ] {
            if h.as_ref().is_some_and(Vec::is_empty) {
                bail!("hooks.{what} is empty");
            }
        }
        Ok(c)
    }

    /// Loads `path`; when `path` is `None`, the default file if it exists, else
    /// an empty configuration.
    pub fn load(path: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
        let (p, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(&p) {
            Ok(text) => Ok((
                Config::parse(&text).with_context(|| format!("configuration {}", p.display()))?,
                Some(p),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok((Config::default(), None))
            }
            Err(e) => Err(e).with_context(|| format!("reading configuration {}", p.display())),
        }
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_example_parses() {
        let src = include_str!("config.rs");
        let start = src.find("//! ```toml\n").unwrap() + 12;
        let end = start + src[start..].find("//! ```").unwrap();
        let text: String = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .or_else(|| l.strip_prefix("//!"))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.checks.len(), 5);
        assert!(matches!(&c.checks[3], Check::Command { metric: false, .. }));
        assert!(matches!(&c.checks[4], Check::Command { metric: true, .. }));
        assert!(c.checks[3].rehearse() && !c.checks[4].rehearse() && !c.checks[0].rehearse());
        assert_eq!(c.preflight.min_free_mb, 100);
        assert_eq!(c.checks[0].kind(), "http");
        assert!(matches!(&c.checks[0], Check::Http { status: 200, .. }));
        assert_eq!(c.checks[3].timeout(), Duration::from_secs(10));
        assert!(c.hooks.snapshot.is_some());
        assert!(!c.jobs.enabled);
        assert_eq!(c.unmanaged.virtualenvs, vec![PathBuf::from("/srv/venvs")]);
        assert_eq!(c.jobs.reboot_command, ["systemctl", "reboot"]);
        assert!(!Config::default().jobs.enabled, "jobs are off by default");
        let c = Config::parse("[jobs]\nenabled = true\n").unwrap();
        assert!(c.jobs.enabled);
        assert!(Config::parse("[jobs]\nreboot_command = []\n").is_err());
        assert!(Config::parse("[jobs]\nenable = true\n").is_err(), "typo");
        assert!(Config::parse("[jobs]\ncritical_checks = [\"nope\"]\n").is_err());
    }

    #[test]
    fn errors() {
        assert!(
            Config::parse("[[check]]\nname='a'\nkind='tcp'\naddress='x:1'\nbogus=1\n").is_err()
        );
        assert!(Config::parse("[[check]]\nname='a'\nkind='nope'\n").is_err());
        assert!(Config::parse("[[check]]\nname='a'\nkind='command'\ncommand=[]\n").is_err());
        // Only a command measures a value; `metric` is a boolean.
        assert!(
            Config::parse("[[check]]\nname='a'\nkind='tcp'\naddress='x:1'\nmetric=true\n").is_err()
        );
        assert!(
            Config::parse("[[check]]\nname='a'\nkind='command'\ncommand=['x']\nmetric='stdout'\n")
                .is_err()
        );
        assert!(
            Config::parse("[[check]]\nname='a'\nkind='tcp'\naddress='x:1'\n[[check]]\nname='a'\nkind='tcp'\naddress='x:2'\n").is_err()
        );
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::load(Some(Path::new("/nonexistent/agent.toml"))).is_err());
    }
}
