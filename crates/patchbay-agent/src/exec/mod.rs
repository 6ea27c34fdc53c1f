//! The execution layer: apply exact package versions, pre-flight, health checks,
//! rollback and a crash-safe local journal.
//!
//! # Backends
//! One trait, [`Backend`], with one implementation per package manager:
//!
//! | backend | OS family | installed packages | changes | `--root DIR` |
//! |---|---|---|---|---|
//! | [`apt::Apt`] | Debian, Ubuntu | `dpkg-query -W -f` | `apt-get install -y --allow-downgrades PKG=VER… [PKG-…]` | `chroot DIR` around the root's **own** apt-get/dpkg (the root's tools match its database); nothing is mounted, so `/proc` is absent inside |
//! | [`dnf::Dnf`] | RHEL, Fedora, Alma, Rocky | `rpm -qa --qf` | `dnf -y install NAME-VER…` (upgrades or downgrades to that version); a `dnf shell` script when packages are also removed | the **host's** dnf/rpm with `--installroot DIR` (rpm: `--root DIR`) |
//! | [`zypper::Zypper`] | SUSE | `rpm -qa --qf` | `zypper --non-interactive install --oldpackage NAME=VER…` | the **host's** zypper with `--root DIR` |
//! | [`apk::Apk`] | Alpine | `lib/apk/db/installed` read directly | `apk add NAME=VER…`, then `apk del NAME…` | `chroot DIR /sbin/apk`: the root's **own** apk-tools (the host's `apk --root DIR` only when the root has none) |
//!
//! With the default root `/` every tool runs directly. All commands are
//! non-interactive (stdin is `/dev/null`; `DEBIAN_FRONTEND=noninteractive`,
//! `-o Dpkg::Options::=--force-confold --force-confdef` so a changed configuration
//! file keeps the local version without a prompt; `-y`/`--non-interactive`), run
//! with a timeout that kills the whole process group, and every run's output is
//! kept in a log file under the state directory ([`Runner`]).
//!
//! # What a job may change
//! A job names packages with exact versions (and a rollback may name packages to
//! remove). Before acting, the backend **simulates** the transaction and
//! [`plan::check_scope`] refuses it when it would upgrade, downgrade, reinstall
//! or remove any package the job does not name. The one thing allowed beyond the
//! named packages is **installing new packages** (dependencies of a new version):
//! refusing those would make most security updates impossible, and they are
//! recorded as "absent" in the rollback plan, so a rollback removes them again.
//! After the change the agent compares the whole package database with the one
//! before and reports any unnamed change it finds as a failed `verify.scope`
//! step (a defence against a repository that changed between simulation and
//! apply).
//!
//! # Modules
//! - [`parse`]: pure parsers of tool output (property-tested).
//! - [`plan`]: pure decisions: scope check, rollback plan, health comparison.
//! - [`config`]: the agent's local configuration (`agent.toml`): `[jobs]`, health checks,
//!   hooks, pre-flight limits.
//! - [`health`]: running health checks.
//! - [`lock`]: package-manager lock probes (`fcntl` locks, pid files).
//! - [`journal`]: the crash-safe JSON-lines journal.
//! - [`job`]: apply, rollback and recovery, journalled step by step.
//! - [`rehearse`]: a job's exact transaction in a throwaway overlay of the
//!   root (scripts run, services not started), or the package manager's
//!   simulation where an overlay is impossible; conflict and privilege checks.
//! - [`report`]: the typed results the local commands print (and the journal
//!   keeps as a job's final record).

pub mod apk;
pub mod apt;
pub mod config;
pub mod dnf;
pub mod health;
pub mod job;
pub mod journal;
pub mod lock;
pub mod parse;
pub mod plan;
pub mod rehearse;
pub mod report;
pub mod verify_snapshot;
pub mod zypper;

use crate::collect::{CommandError, run_command};
use anyhow::{Context, bail};
use patchbay_core::inventory::PendingUpdate;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A package a job names, with the exact version to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// Package name (may carry `:arch` for dpkg).
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// One change a transaction must make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Install exactly this version (upgrade, downgrade or new install).
    Install {
        /// Package name.
        name: String,
        /// Exact version.
        version: String,
    },
    /// Remove the package.
    Remove {
        /// Package name.
        name: String,
    },
}

impl Change {
    /// The package name.
    pub fn name(&self) -> &str {
        match self {
            Change::Install { name, .. } | Change::Remove { name } => name,
        }
    }
}

/// An installed package as the package database reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Version.
    pub version: String,
    /// Database state (`installed`, `half-configured`, `unpacked`, …).
    pub status: String,
    /// Unpacked size in KiB, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_kib: Option<u64>,
}

/// One package change announced by a simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Package name (without `:arch`).
    pub name: String,
    /// Architecture, when printed.
    pub arch: String,
    /// Installed version before (`None`: newly installed; `"?"`: changed, old
    /// version not printed by the tool).
    pub from: Option<String>,
    /// Version after (`None`: removed).
    pub to: Option<String>,
    /// Where the new version comes from (apt release, dnf/zypper repository).
    pub origin: String,
}

/// One problem `dpkg --audit` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditIssue {
    /// Package.
    pub package: String,
    /// What dpkg says about it.
    pub problem: String,
}

/// Download and unpacked size of one package version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSize {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Archive size in bytes.
    pub size_bytes: u64,
    /// Unpacked size in KiB.
    pub installed_kib: u64,
}

/// Consistency of the package database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    /// Nothing to repair.
    pub ok: bool,
    /// Packages in an unfinished state.
    pub issues: Vec<AuditIssue>,
    /// The package manager's own journal holds an unfinished run
    /// (`/var/lib/dpkg/updates`; apk: a package script left in `lib/apk/exec`).
    pub interrupted: bool,
}

/// Space a transaction needs below a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceNeed {
    /// Directory (on the host) the bytes go to.
    pub path: PathBuf,
    /// Bytes needed.
    pub bytes: u64,
    /// What for (`download`, `install`).
    pub what: String,
}

/// What one external command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdLog {
    /// The command line, for people.
    pub command: String,
    /// Exit code (`None`: killed by a signal or timed out).
    pub exit: Option<i32>,
    /// Wall time.
    pub duration_ms: u64,
    /// Full stdout and stderr, when a log directory was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// The last lines of stderr (or stdout), for reports.
    pub tail: String,
}

impl CmdLog {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }
}

/// Runs commands for a backend: timeouts that kill the process group, full logs
/// written to numbered files in `log_dir`.
#[derive(Debug)]
pub struct Runner {
    /// Directory for full command logs (`None`: no files).
    pub log_dir: Option<PathBuf>,
    /// Timeout of queries (listing, simulation).
    pub query_timeout: Duration,
    /// Timeout of changes (apply, repair).
    pub change_timeout: Duration,
    seq: Cell<u32>,
}

impl Runner {
    /// A runner that keeps logs in `log_dir`.
    pub fn new(
        log_dir: Option<PathBuf>,
        query_timeout: Duration,
        change_timeout: Duration,
    ) -> Self {
        Runner {
            log_dir,
            query_timeout,
            change_timeout,
            seq: Cell::new(0),
        }
    }

    /// Runs `cmd` with `timeout`; the output is returned whatever the exit code.
    /// A timeout (process group killed) or a missing program is an error.
    pub fn run(
        &self,
        label: &str,
        cmd: &mut Command,
        timeout: Duration,
    ) -> anyhow::Result<(Output, CmdLog)> {
        let command = describe(cmd);
        let start = Instant::now();
        let res = run_command(cmd, timeout);
        let duration_ms = start.elapsed().as_millis() as u64;
        let out = match res {
            Ok(o) => o,
            Err(e @ CommandError::TimedOut { .. }) => {
                self.write_log(label, &command, None, b"", format!("{e}").as_bytes());
                return Err(e).with_context(|| format!("{label}: {command}"));
            }
            Err(e) => return Err(e).with_context(|| format!("{label}: {command}")),
        };
        let log_file = self.write_log(label, &command, out.status.code(), &out.stdout, &out.stderr);
        let tail = tail_of(if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &out.stderr
        } else {
            &out.stdout
        });
        let log = CmdLog {
            command,
            exit: out.status.code(),
            duration_ms,
            log_file,
            tail,
        };
        Ok((out, log))
    }

    /// Like [`Runner::run`], but a non-zero exit is an error naming the command
    /// and the end of its output.
    pub fn run_ok(
        &self,
        label: &str,
        cmd: &mut Command,
        timeout: Duration,
    ) -> anyhow::Result<(Output, CmdLog)> {
        let (out, log) = self.run(label, cmd, timeout)?;
        if !out.status.success() {
            bail!(
                "{label}: `{}` failed ({}): {}",
                log.command,
                out.status,
                log.tail
            );
        }
        Ok((out, log))
    }

    fn write_log(
        &self,
        label: &str,
        command: &str,
        exit: Option<i32>,
        stdout: &[u8],
        stderr: &[u8],
    ) -> Option<PathBuf> {
        let dir = self.log_dir.as_ref()?;
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{n:02}-{safe}.log"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::File::create(&path)?;
            writeln!(f, "$ {command}\n# exit: {exit:?}\n# --- stdout")?;
            f.write_all(stdout)?;
            writeln!(f, "\n# --- stderr")?;
            f.write_all(stderr)?;
            f.sync_all()
        };
        match write() {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write command log");
                None
            }
        }
    }
}

/// A command line for logs.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last 20 lines (at most 4 KB) of some output.
fn tail_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(20);
    let mut t = lines[start..].join("\n");
    if t.len() > 4096 {
        let mut cut = t.len() - 4096;
        while !t.is_char_boundary(cut) {
            cut += 1;
        }
        t = t[cut..].to_owned();
    }
    t
}

/// A held package-manager lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHeld {
    /// The lock file (on the host).
    pub path: PathBuf,
    /// The process holding it, when the kernel or the pid file says.
    pub pid: Option<i32>,
}

/// A package manager, operating on one root file system.
pub trait Backend {
    /// `apt`, `dnf`, `zypper` or `apk`.
    fn name(&self) -> &'static str;
    /// The root file system.
    fn root(&self) -> &Path;
    /// Every installed (or half-installed) package.
    fn installed(&self, r: &Runner) -> anyhow::Result<Vec<Installed>>;
    /// Refreshes repository metadata (`apt-get update`, `dnf makecache`, …).
    fn refresh(&self, r: &Runner) -> anyhow::Result<CmdLog>;
    /// Available updates with versions and origin (repository, pocket).
    fn updates(&self, r: &Runner) -> anyhow::Result<Vec<PendingUpdate>>;
    /// Simulates `changes`; returns the announced transaction.
    fn simulate(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<(Vec<Action>, CmdLog)>;
    /// Makes exactly `changes` (downgrades allowed). Fails on a non-zero exit.
    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog>;
    /// Lock files to probe, as host paths, with how each is held.
    fn locks(&self) -> Vec<lock::LockFile>;
    /// Space the announced transaction needs, per directory.
    fn space_needed(
        &self,
        r: &Runner,
        actions: &[Action],
        installed: &[Installed],
    ) -> anyhow::Result<Vec<SpaceNeed>>;
    /// Consistency of the package database (an interrupted earlier run).
    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency>;
    /// Finishes an interrupted run where the package manager can
    /// (`dpkg --configure -a`); `None` when there is nothing such to run.
    fn repair(&self, r: &Runner) -> anyhow::Result<Option<CmdLog>>;
    /// Whether the root waits for a reboot, after a transaction that left `after`
    /// installed and changed `changed` (see each backend for its rule).
    fn reboot_required(
        &self,
        r: &Runner,
        after: &[Installed],
        changed: &[plan::PackageDiff],
    ) -> bool;

    /// Downgrades (or re-installs) the recorded versions: the same transaction as
    /// [`Backend::apply`], named for the rollback path.
    fn downgrade(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        self.apply(r, changes)
    }

    /// The first held lock, if any.
    fn lock_held(&self) -> anyhow::Result<Option<LockHeld>> {
        for l in self.locks() {
            if let Some(h) = lock::probe(&l)? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    /// Services that still map deleted libraries (only for the running host).
    fn services_needing_restart(&self) -> Vec<String> {
        if self.root() == Path::new("/") {
            crate::collect::services_needing_restart(Path::new("/proc"))
        } else {
            Vec::new()
        }
    }
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// apt/dpkg.
    Apt,
    /// dnf/rpm.
    Dnf,
    /// zypper/rpm.
    Zypper,
    /// apk.
    Apk,
}

/// Picks the backend for `root`: a dpkg database means apt, an apk database apk;
/// an rpm root is zypper when its os-release says SUSE, dnf otherwise.
pub fn detect(root: &Path) -> anyhow::Result<BackendKind> {
    if root.join("var/lib/dpkg/status").is_file() {
        return Ok(BackendKind::Apt);
    }
    if root.join("lib/apk/db/installed").is_file() {
        return Ok(BackendKind::Apk);
    }
    let os = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .unwrap_or_default();
    let suse = os.lines().any(|l| {
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && l.to_ascii_lowercase().contains("suse")
    });
    if suse {
        return Ok(BackendKind::Zypper);
    }
    if root.join("var/lib/rpm").is_dir() || root.join("usr/lib/sysimage/rpm").is_dir() {
        return Ok(BackendKind::Dnf);
    }
    bail!(
        "no package database found under {} (looked for dpkg, apk and rpm); pass --backend",
        root.display()
    )
}

/// Opens a backend of `kind` on `root` (detected when `None`).
pub fn open(kind: Option<BackendKind>, root: &Path) -> anyhow::Result<Box<dyn Backend>> {
    let root = std::fs::canonicalize(root).with_context(|| format!("root {}", root.display()))?;
    let kind = match kind {
        Some(k) => k,
        None => detect(&root)?,
    };
    Ok(match kind {
        BackendKind::Apt => Box::new(apt::Apt::new(root)),
        BackendKind::Dnf => Box::new(dnf::Dnf::new(root)),
        BackendKind::Zypper => Box::new(zypper::Zypper::new(root)),
        BackendKind::Apk => Box::new(apk::Apk::new(root)),
    })
}

/// Whether `root` is the running system.
pub(crate) fn is_host(root: &Path) -> bool {
    root == Path::new("/")
}
