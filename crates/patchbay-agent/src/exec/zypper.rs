//! The zypper backend (SLES, openSUSE).
//!
//! Runs the **host's** `zypper` with `--root ROOT` (zypper then uses the root's
//! repositories, database and lock) and `rpm --root ROOT`. Every call is
//! `--non-interactive` and, where there is something to read, `--xmlout`:
//! updates come from `list-updates` ([`parse::zypper_updates`]), the simulation
//! from `install --dry-run` ([`parse::zypper_summary`]). Exact versions are
//! `NAME=VERSION` with `--oldpackage` (downgrades allowed); packages to remove are
//! `!NAME` in the same transaction. Recommends are not installed. The space check
//! uses the summary's `download-size` and `space-usage-diff`. rpm resolves the
//! database path with the host's macros, as for [`super::dnf`].

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

/// zypper on one root.
#[derive(Debug)]
pub struct Zypper {
    root: PathBuf,
    last_sizes: Cell<(u64, i64)>,
}

impl Zypper {
    /// The backend for `root`.
    pub fn new(root: PathBuf) -> Self {
        Zypper {
            root,
            last_sizes: Cell::new((0, 0)),
        }
    }

    fn zypper(&self, xml: bool) -> Command {
        let mut c = Command::new("zypper");
        if !is_host(&self.root) {
            c.arg("--root").arg(&self.root);
        }
        c.arg("--non-interactive");
        if xml {
            c.arg("--xmlout");
        }
        c
    }

    fn args(changes: &[Change]) -> Vec<String> {
        let mut v = vec![
            "install".to_owned(),
            "--oldpackage".to_owned(),
            "--no-recommends".to_owned(),
            "--".to_owned(),
        ];
        for c in changes {
            v.push(match c {
                Change::Install { name, version } => format!("{name}={version}"),
                Change::Remove { name } => format!("!{name}"),
            });
        }
        v
    }
}

impl Backend for Zypper {
    fn name(&self) -> &'static str {
        "zypper"
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn installed(&self, r: &Runner) -> anyhow::Result<Vec<Installed>> {
        let mut c = Command::new("rpm");
        if !is_host(&self.root) {
            c.arg("--root").arg(&self.root);
        }
        let (out, _) = r.run_ok(
            "rpm-qa",
            c.args(["-qa", "--qf", parse::RPM_QUERY_FORMAT]),
            r.query_timeout,
        )?;
        let mut p = parse::rpm_query(&String::from_utf8_lossy(&out.stdout));
        p.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(p)
    }

    fn refresh(&self, r: &Runner) -> anyhow::Result<CmdLog> {
        let (_, log) = r.run(
            "zypper-refresh",
            self.zypper(false).arg("refresh"),
            r.change_timeout,
        )?;
        Ok(log)
    }

    fn updates(&self, r: &Runner) -> anyhow::Result<Vec<PendingUpdate>> {
        let (out, _) = r.run_ok(
            "zypper-list-updates",
            self.zypper(true).arg("list-updates"),
            r.query_timeout,
        )?;
        let installed = self.installed(r)?;
        Ok(parse::zypper_updates(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .map(|(name, arch, old, new, alias)| {
                let current = if old.is_empty() {
                    installed
                        .iter()
                        .find(|p| p.name == name)
                        .map(|p| p.version.clone())
                        .unwrap_or_default()
                } else {
                    old
                };
                PendingUpdate {
                    name,
                    arch,
                    current_version: current,
                    available_version: new,
                    origin: alias,
                }
            })
            .collect())
    }

    fn simulate(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<(Vec<Action>, CmdLog)> {
        let mut args = Self::args(changes);
        args.insert(1, "--dry-run".into());
        let (out, log) = r.run(
            "zypper-install-dry-run",
            self.zypper(true).args(&args),
            r.query_timeout,
        )?;
        if !out.status.success() {
            bail!("`{}` failed ({}): {}", log.command, out.status, log.tail);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        self.last_sizes
            .set(parse::zypper_sizes(&text).unwrap_or((0, 0)));
        Ok((parse::zypper_summary(&text), log))
    }

    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        let (_, log) = r.run_ok(
            "zypper-install",
            self.zypper(false).args(Self::args(changes)),
            r.change_timeout,
        )?;
        Ok(log)
    }

    fn locks(&self) -> Vec<LockFile> {
        let mut l = vec![LockFile {
            path: self.root.join("run/zypp.pid"),
            kind: LockKind::PidFile,
        }];
        l.extend(super::lock::rpm_locks(&self.root));
        l
    }

    fn space_needed(
        &self,
        _r: &Runner,
        _actions: &[Action],
        _installed: &[Installed],
    ) -> anyhow::Result<Vec<SpaceNeed>> {
        // zypper's own summary of the last simulation.
        let (download, diff) = self.last_sizes.get();
        Ok(vec![
            SpaceNeed {
                path: self.root.join("var/cache/zypp"),
                bytes: download,
                what: "download".into(),
            },
            SpaceNeed {
                path: self.root.join("usr"),
                bytes: diff.max(0) as u64,
                what: "install".into(),
            },
        ])
    }

    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency> {
        let (out, log) = r.run(
            "zypper-verify",
            self.zypper(false).args(["verify", "--dry-run"]),
            r.query_timeout,
        )?;
        let ok = out.status.success();
        Ok(Consistency {
            ok,
            issues: if ok {
                Vec::new()
            } else {
                vec![super::AuditIssue {
                    package: String::new(),
                    problem: log.tail,
                }]
            },
            interrupted: false,
        })
    }

    fn repair(&self, _r: &Runner) -> anyhow::Result<Option<CmdLog>> {
        Ok(None)
    }

    /// zypper's own marker `run/reboot-needed` (written for packages flagged
    /// reboot-needed); for a root other than `/` also a change of a package of
    /// [`super::plan::RPM_REBOOT_PACKAGES`].
    fn reboot_required(
        &self,
        _r: &Runner,
        _after: &[Installed],
        changed: &[super::plan::PackageDiff],
    ) -> bool {
        self.root.join("run/reboot-needed").exists()
            || (!super::is_host(&self.root) && super::plan::rpm_reboot_required(changed))
    }
}
