//! The apt/dpkg backend (Debian, Ubuntu).
//!
//! For a root other than `/`, every tool runs as `chroot ROOT TOOL …`, so the
//! root's own apt-get, dpkg and maintainer scripts act on the root's own
//! database, configuration and sources; nothing is mounted (no `/proc` inside),
//! which apt and dpkg do not need for ordinary packages. `PATH` is set to the
//! Debian default so dpkg finds `ldconfig` and `start-stop-daemon` in the root.
//!
//! Transactions are `apt-get install -y -q --allow-downgrades --no-install-recommends
//! -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef
//! -o Dpkg::Use-Pty=0 PKG=VER… [PKG-…]` (a trailing `-` removes a package in the same
//! transaction); the simulation is the same command with `-s`, so the two resolve
//! alike. Recommends are not installed: a job installs what it names and what that
//! strictly depends on.

use super::{
    Action, Backend, Change, CmdLog, Consistency, Installed, Runner, SpaceNeed, is_host,
    lock::{LockFile, LockKind},
    parse,
};
use anyhow::{Context, bail};
use patchbay_core::inventory::PendingUpdate;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `PATH` inside a chroot.
const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// apt/dpkg on one root.
#[derive(Debug, Clone)]
pub struct Apt {
    root: PathBuf,
}

impl Apt {
    /// The backend for `root` (canonical path; `/` for this host).
    pub fn new(root: PathBuf) -> Self {
        Apt { root }
    }

    /// A command running `prog` in the root.
    fn cmd(&self, prog: &str) -> Command {
        if is_host(&self.root) {
            Command::new(prog)
        } else {
            let mut c = Command::new("chroot");
            c.arg(&self.root).arg(prog).env("PATH", CHROOT_PATH);
            c
        }
    }

    fn apt_get(&self) -> Command {
        let mut c = self.cmd("apt-get");
        c.env("APT_LISTCHANGES_FRONTEND", "none")
            .env("NEEDRESTART_SUSPEND", "1")
            .args(["-q", "-y", "--allow-downgrades", "--no-install-recommends"])
            .args(["-o", "Dpkg::Options::=--force-confold"])
            .args(["-o", "Dpkg::Options::=--force-confdef"])
            .args(["-o", "Dpkg::Use-Pty=0"]);
        c
    }

    /// `install` arguments for `changes`.
    fn install_args(changes: &[Change]) -> Vec<String> {
        let mut args = vec!["install".to_owned()];
        for c in changes {
            match c {
                Change::Install { name, version } => args.push(format!("{name}={version}")),
                Change::Remove { name } => args.push(format!("{name}-")),
            }
        }
        args
    }
}

impl Apt {
    /// The transaction of [`Backend::apply`] with stderr merged into stdout
    /// (`sh -c 'exec "$@" 2>&1'` on the host around the same command), so a
    /// rehearsal can tell which package script printed what before it failed.
    pub(crate) fn install_merged_output(&self, changes: &[Change]) -> Command {
        let inner = {
            let mut c = self.apt_get();
            c.args(Self::install_args(changes));
            c
        };
        let mut c = Command::new("sh");
        c.args(["-c", "exec \"$@\" 2>&1", "sh"])
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Packages marked held (`apt-mark showhold`).
    pub(crate) fn held(&self, r: &Runner) -> anyhow::Result<Vec<String>> {
        let (out, _) = r.run_ok(
            "apt-mark-showhold",
            self.cmd("apt-mark").arg("showhold"),
            r.query_timeout,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The `Conflicts` and `Breaks` fields of exact versions
    /// (`apt-cache show PKG=VER…`): `(package, relation, field value)`.
    pub(crate) fn relations(
        &self,
        r: &Runner,
        wanted: &[(String, String)],
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let args: Vec<String> = wanted.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let (out, _) = r.run_ok(
            "apt-cache-show-relations",
            self.cmd("apt-cache")
                .args(["show", "--no-all-versions"])
                .args(&args),
            r.query_timeout,
        )?;
        Ok(super::rehearse::deb822_relations(&String::from_utf8_lossy(
            &out.stdout,
        )))
    }

    /// `dpkg --verify PKG…` lines (problems only; empty when all verify).
    pub(crate) fn verify(&self, r: &Runner, packages: &[String]) -> anyhow::Result<Vec<String>> {
        if packages.is_empty() {
            return Ok(Vec::new());
        }
        let (out, _) = r.run(
            "dpkg-verify",
            self.cmd("dpkg").arg("--verify").args(packages),
            r.query_timeout,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

impl Backend for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn installed(&self, r: &Runner) -> anyhow::Result<Vec<Installed>> {
        let (out, _) = r.run_ok(
            "dpkg-query",
            self.cmd("dpkg-query")
                .args(["-W", "-f", parse::DPKG_QUERY_FORMAT]),
            r.query_timeout,
        )?;
        let mut pkgs = parse::dpkg_query(&String::from_utf8_lossy(&out.stdout));
        pkgs.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(pkgs)
    }

    fn refresh(&self, r: &Runner) -> anyhow::Result<CmdLog> {
        let (_, log) = r.run(
            "apt-get-update",
            self.cmd("apt-get").args(["-q", "update"]),
            r.change_timeout,
        )?;
        Ok(log)
    }

    fn updates(&self, r: &Runner) -> anyhow::Result<Vec<PendingUpdate>> {
        let (out, _) = r.run_ok(
            "apt-get-s-dist-upgrade",
            self.cmd("apt-get")
                .args(["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"]),
            r.query_timeout,
        )?;
        Ok(crate::collect::parse::apt_simulation(
            &String::from_utf8_lossy(&out.stdout),
        ))
    }

    fn simulate(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<(Vec<Action>, CmdLog)> {
        let mut c = self.apt_get();
        c.args(["-s", "-o", "Debug::NoLocking=1"])
            .args(Self::install_args(changes));
        let (out, log) = r.run_ok("apt-get-simulate", &mut c, r.query_timeout)?;
        Ok((
            parse::apt_actions(&String::from_utf8_lossy(&out.stdout)),
            log,
        ))
    }

    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        let mut c = self.apt_get();
        c.args(Self::install_args(changes));
        let (out, log) = r.run("apt-get-install", &mut c, r.change_timeout)?;
        if !out.status.success() {
            bail!("`{}` failed ({}): {}", log.command, out.status, log.tail);
        }
        Ok(log)
    }

    fn locks(&self) -> Vec<LockFile> {
        [
            "var/lib/dpkg/lock-frontend",
            "var/lib/dpkg/lock",
            "var/cache/apt/archives/lock",
            "var/lib/apt/lists/lock",
        ]
        .into_iter()
        .map(|p| LockFile {
            path: self.root.join(p),
            kind: LockKind::Fcntl,
        })
        .collect()
    }

    fn space_needed(
        &self,
        r: &Runner,
        actions: &[Action],
        installed: &[Installed],
    ) -> anyhow::Result<Vec<SpaceNeed>> {
        let targets: Vec<String> = actions
            .iter()
            .filter_map(|a| a.to.as_ref().map(|v| format!("{}={v}", a.name)))
            .collect();
        let sizes = if targets.is_empty() {
            Vec::new()
        } else {
            let (out, _) = r.run_ok(
                "apt-cache-show",
                self.cmd("apt-cache")
                    .args(["show", "--no-all-versions"])
                    .args(&targets),
                r.query_timeout,
            )?;
            parse::deb822_sizes(&String::from_utf8_lossy(&out.stdout))
        };
        Ok(super::plan::space_needed(
            &self.root.join("var/cache/apt/archives"),
            &self.root.join("usr"),
            actions,
            installed,
            &sizes,
        ))
    }

    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency> {
        let (out, _) = r.run_ok(
            "dpkg-audit",
            self.cmd("dpkg").arg("--audit"),
            r.query_timeout,
        )?;
        let issues = parse::dpkg_audit(&String::from_utf8_lossy(&out.stdout));
        let updates = self.root.join("var/lib/dpkg/updates");
        let names: Vec<String> = match std::fs::read_dir(&updates) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("listing {}", updates.display())),
        };
        let interrupted = parse::dpkg_updates_pending(&names);
        Ok(Consistency {
            ok: issues.is_empty() && !interrupted,
            issues,
            interrupted,
        })
    }

    fn repair(&self, r: &Runner) -> anyhow::Result<Option<CmdLog>> {
        let mut c = self.cmd("dpkg");
        c.args(["--force-confold", "--force-confdef", "--configure", "-a"]);
        let (_, log) = r.run("dpkg-configure-a", &mut c, r.change_timeout)?;
        Ok(Some(log))
    }

    fn reboot_required(
        &self,
        _r: &Runner,
        _after: &[Installed],
        _changed: &[super::plan::PackageDiff],
    ) -> bool {
        // In a chroot `var/run` is usually a link to the *host's* `/run`: only
        // follow it when it is a real directory.
        let var_run = self.root.join("var/run");
        self.root.join("run/reboot-required").exists()
            || (!std::fs::symlink_metadata(&var_run).is_ok_and(|m| m.file_type().is_symlink())
                && var_run.join("reboot-required").exists())
    }
}
