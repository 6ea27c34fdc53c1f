//! The dnf backend (RHEL, Fedora, AlmaLinux, Rocky).
//!
//! Runs the **host's** `dnf` and `rpm`; a root other than `/` is passed as
//! `dnf --installroot ROOT` (dnf then reads the repositories and releasever of the
//! root) and `rpm --root ROOT`. Exact versions are `dnf install NAME-VERSION…`,
//! which upgrades or downgrades an installed package to that version; packages a
//! rollback must remove go through a second `dnf remove` transaction. Weak
//! dependencies are not installed (`install_weak_deps=False`). The simulation is
//! the same command with `--assumeno`, whose transaction table is parsed
//! ([`parse::dnf_transaction`]); dnf prints no machine-readable transaction in
//! version 4.
//!
//! rpm and dnf resolve the database path with the host's rpm macros
//! (`%_dbpath`): `/var/lib/rpm` on RHEL-family hosts; Debian's rpm package uses
//! `~/.rpmdb`, so on a Debian host the database of a root is `ROOT/root/.rpmdb`
//! for both tools alike. The lock probed is `.rpm.lock` in that directory.

use super::{
    Action, Backend, Change, CmdLog, Consistency, Installed, Runner, SpaceNeed, is_host,
    lock::{LockFile, LockKind},
    parse,
};
use anyhow::bail;
use patchbay_core::inventory::PendingUpdate;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first line of dnf's output that reports a failure, if any.
fn dnf_error(out: &std::process::Output) -> Option<String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    err.lines()
        .chain(stdout.lines())
        .map(str::trim)
        .find(|l| {
            l.starts_with("No match for argument")
                || l.starts_with("No package ")
                || (l.starts_with("Error:") && !l.contains("Operation aborted"))
        })
        .map(str::to_owned)
}

/// dnf on one root.
#[derive(Debug)]
pub struct Dnf {
    root: PathBuf,
    last_sizes: Cell<(u64, u64)>,
}

impl Dnf {
    /// The backend for `root`.
    pub fn new(root: PathBuf) -> Self {
        Dnf {
            root,
            last_sizes: Cell::new((0, 0)),
        }
    }

    fn dnf(&self) -> Command {
        let mut c = Command::new("dnf");
        if !is_host(&self.root) {
            c.arg("--installroot").arg(&self.root);
        }
        c.args([
            "--setopt=install_weak_deps=False",
            "--setopt=keepcache=False",
        ]);
        c
    }

    fn rpm(&self) -> Command {
        let mut c = Command::new("rpm");
        if !is_host(&self.root) {
            c.arg("--root").arg(&self.root);
        }
        c
    }

    /// Runs `changes` as one transaction: `dnf install NAME-VER…` when there is
    /// nothing to remove, otherwise a `dnf shell` script (`install …`, `remove …`,
    /// `run`), the only way dnf 4 downgrades and removes in one transaction.
    /// `simulate` adds `--assumeno`. dnf shell exits 0 even when a package is not
    /// found: callers check the output, and the apply path verifies versions.
    fn transaction(
        &self,
        r: &Runner,
        changes: &[Change],
        simulate: bool,
    ) -> anyhow::Result<(std::process::Output, CmdLog)> {
        let (install, remove) = Self::split(changes);
        let mut c = self.dnf();
        c.arg(if simulate { "--assumeno" } else { "-y" });
        let timeout = if simulate {
            r.query_timeout
        } else {
            r.change_timeout
        };
        let label = if simulate {
            "dnf-simulate"
        } else {
            "dnf-transaction"
        };
        if remove.is_empty() {
            return r.run(label, c.arg("install").args(&install), timeout);
        }
        let mut script = String::new();
        if !install.is_empty() {
            script.push_str(&format!("install {}\n", install.join(" ")));
        }
        script.push_str(&format!("remove {}\nrun\n", remove.join(" ")));
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "patchbay-dnf-{}-{}.txt",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, &script)?;
        let res = r.run(label, c.arg("shell").arg(&path), timeout);
        let _ = std::fs::remove_file(&path);
        res
    }

    fn split(changes: &[Change]) -> (Vec<String>, Vec<String>) {
        let mut install = Vec::new();
        let mut remove = Vec::new();
        for c in changes {
            match c {
                Change::Install { name, version } => install.push(format!("{name}-{version}")),
                Change::Remove { name } => remove.push(name.clone()),
            }
        }
        (install, remove)
    }
}

impl Backend for Dnf {
    fn name(&self) -> &'static str {
        "dnf"
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn installed(&self, r: &Runner) -> anyhow::Result<Vec<Installed>> {
        let (out, _) = r.run_ok(
            "rpm-qa",
            self.rpm().args(["-qa", "--qf", parse::RPM_QUERY_FORMAT]),
            r.query_timeout,
        )?;
        let mut p = parse::rpm_query(&String::from_utf8_lossy(&out.stdout));
        p.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(p)
    }

    fn refresh(&self, r: &Runner) -> anyhow::Result<CmdLog> {
        let (_, log) = r.run(
            "dnf-makecache",
            self.dnf().args(["-q", "makecache"]),
            r.change_timeout,
        )?;
        Ok(log)
    }

    fn updates(&self, r: &Runner) -> anyhow::Result<Vec<PendingUpdate>> {
        let (out, log) = r.run(
            "dnf-check-update",
            self.dnf().args(["-q", "check-update"]),
            r.query_timeout,
        )?;
        if !matches!(out.status.code(), Some(0 | 100)) {
            bail!("`{}` failed: {}", log.command, log.tail);
        }
        let mut u = crate::collect::parse::dnf_check_update(&String::from_utf8_lossy(&out.stdout));
        let installed = self.installed(r)?;
        for x in &mut u {
            if let Some(p) = installed
                .iter()
                .find(|p| p.name == x.name && (p.arch == x.arch || x.arch.is_empty()))
            {
                x.current_version = p.version.clone();
            }
        }
        Ok(u)
    }

    fn simulate(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<(Vec<Action>, CmdLog)> {
        let (out, log) = self.transaction(r, changes, true)?;
        let text = String::from_utf8_lossy(&out.stdout);
        // --assumeno ends with "Operation aborted." (exit 1 for install, 0 in a
        // shell); a resolution error prints no table.
        if !text.contains("Transaction Summary") && !text.contains("Nothing to do") {
            bail!("`{}` failed: {}", log.command, log.tail);
        }
        if let Some(e) = dnf_error(&out) {
            bail!("`{}` failed: {e}", log.command);
        }
        self.last_sizes.set(parse::dnf_sizes(&text));
        Ok((parse::dnf_transaction(&text), log))
    }

    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        let (out, log) = self.transaction(r, changes, false)?;
        if !out.status.success() {
            bail!("`{}` failed ({}): {}", log.command, out.status, log.tail);
        }
        if let Some(e) = dnf_error(&out) {
            bail!("`{}` failed: {e}", log.command);
        }
        Ok(log)
    }

    fn locks(&self) -> Vec<LockFile> {
        let mut l = super::lock::rpm_locks(&self.root);
        l.push(LockFile {
            path: self.root.join("var/cache/dnf/rpmdb_lock.pid"),
            kind: LockKind::PidFile,
        });
        l
    }

    fn space_needed(
        &self,
        _r: &Runner,
        _actions: &[Action],
        _installed: &[Installed],
    ) -> anyhow::Result<Vec<SpaceNeed>> {
        // The sizes dnf printed under the last simulation's table.
        let (download, install) = self.last_sizes.get();
        Ok(vec![
            SpaceNeed {
                path: self.root.join("var/cache/dnf"),
                bytes: download,
                what: "download".into(),
            },
            SpaceNeed {
                path: self.root.join("usr"),
                bytes: install,
                what: "install".into(),
            },
        ])
    }

    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency> {
        let (out, _) = r.run(
            "dnf-check",
            self.dnf().args(["-q", "check"]),
            r.query_timeout,
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let issues: Vec<super::AuditIssue> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| super::AuditIssue {
                package: l.split_whitespace().next().unwrap_or("").to_owned(),
                problem: l.trim().to_owned(),
            })
            .collect();
        Ok(Consistency {
            ok: out.status.success() && issues.is_empty(),
            issues,
            interrupted: false,
        })
    }

    fn repair(&self, _r: &Runner) -> anyhow::Result<Option<CmdLog>> {
        // rpm has no half-configured state to finish; dependency problems need a
        // person.
        Ok(None)
    }

    /// The running system: `needs-restarting -r` (exit 1: reboot). Another root:
    /// the transaction changed a package of [`super::plan::RPM_REBOOT_PACKAGES`].
    fn reboot_required(
        &self,
        r: &Runner,
        _after: &[Installed],
        changed: &[super::plan::PackageDiff],
    ) -> bool {
        if !is_host(&self.root) {
            return super::plan::rpm_reboot_required(changed);
        }
        matches!(
            r.run("needs-restarting", Command::new("needs-restarting").arg("-r"), r.query_timeout),
            Ok((out, _)) if out.status.code() == Some(1)
        )
    }
}
