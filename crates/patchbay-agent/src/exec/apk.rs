//! The apk backend (Alpine).
//!
//! Runs the **host's** `apk` with `--root ROOT`. Installed packages are read
//! directly from `ROOT/lib/apk/db/installed` (the parser is
//! `patchbay_core::inventory::apk`). Exact versions are `apk add NAME=VERSION…`
//! (apk records the `=VERSION` constraint in `/etc/apk/world`, which is what keeps
//! a pinned version from being upgraded later); removals are `apk del NAME…`. The
//! simulation is the same command with `--simulate`, whose progress lines are
//! parsed ([`parse::apk_simulation`]).

use super::{
    Action, Backend, Change, CmdLog, Consistency, Installed, Runner, SpaceNeed, is_host,
    lock::{LockFile, LockKind},
    parse,
};
use anyhow::{Context, anyhow};
use patchbay_core::inventory::PendingUpdate;
use std::path::{Path, PathBuf};
use std::process::Command;

/// apk on one root.
#[derive(Debug, Clone)]
pub struct Apk {
    root: PathBuf,
}

impl Apk {
    /// The backend for `root`.
    pub fn new(root: PathBuf) -> Self {
        Apk { root }
    }

    fn apk(&self) -> Command {
        let mut c = Command::new("apk");
        if !is_host(&self.root) {
            c.arg("--root").arg(&self.root);
        }
        c.arg("--no-progress");
        c
    }

    fn split(changes: &[Change]) -> (Vec<String>, Vec<String>) {
        let mut add = Vec::new();
        let mut del = Vec::new();
        for c in changes {
            match c {
                Change::Install { name, version } => add.push(format!("{name}={version}")),
                Change::Remove { name } => del.push(name.clone()),
            }
        }
        (add, del)
    }
}

impl Backend for Apk {
    fn name(&self) -> &'static str {
        "apk"
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn installed(&self, _r: &Runner) -> anyhow::Result<Vec<Installed>> {
        let path = self.root.join("lib/apk/db/installed");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let pkgs = patchbay_core::inventory::apk::parse_installed(&text)
            .map_err(|e| anyhow!("{}: line {}: {}", path.display(), e.line, e.message))?;
        let mut out: Vec<Installed> = pkgs
            .into_iter()
            .map(|p| Installed {
                name: p.name,
                arch: p.arch,
                version: p.version,
                status: "installed".into(),
                installed_kib: None,
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(out)
    }

    fn refresh(&self, r: &Runner) -> anyhow::Result<CmdLog> {
        let (_, log) = r.run("apk-update", self.apk().arg("update"), r.change_timeout)?;
        Ok(log)
    }

    fn updates(&self, r: &Runner) -> anyhow::Result<Vec<PendingUpdate>> {
        let (out, _) = r.run_ok(
            "apk-version",
            self.apk().args(["version", "-l", "<"]),
            r.query_timeout,
        )?;
        Ok(crate::collect::parse::apk_version(
            &String::from_utf8_lossy(&out.stdout),
        ))
    }

    fn simulate(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<(Vec<Action>, CmdLog)> {
        let (add, del) = Self::split(changes);
        let mut actions = Vec::new();
        let mut last = None;
        for (verb, pkgs) in [("add", add), ("del", del)] {
            if pkgs.is_empty() {
                continue;
            }
            let (out, log) = r.run_ok(
                &format!("apk-{verb}-simulate"),
                self.apk().args([verb, "--simulate"]).args(&pkgs),
                r.query_timeout,
            )?;
            actions.extend(parse::apk_simulation(&String::from_utf8_lossy(&out.stdout)));
            last = Some(log);
        }
        Ok((actions, last.ok_or_else(|| anyhow!("nothing to simulate"))?))
    }

    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        let (add, del) = Self::split(changes);
        let mut last = None;
        for (verb, pkgs) in [("add", add), ("del", del)] {
            if pkgs.is_empty() {
                continue;
            }
            let (_, log) = r.run_ok(
                &format!("apk-{verb}"),
                self.apk().arg(verb).args(&pkgs),
                r.change_timeout,
            )?;
            last = Some(log);
        }
        last.ok_or_else(|| anyhow!("nothing to apply"))
    }

    fn locks(&self) -> Vec<LockFile> {
        vec![LockFile {
            path: self.root.join("lib/apk/db/lock"),
            kind: LockKind::Fcntl,
        }]
    }

    fn space_needed(
        &self,
        _r: &Runner,
        actions: &[Action],
        installed: &[Installed],
    ) -> anyhow::Result<Vec<SpaceNeed>> {
        Ok(super::plan::space_needed(
            &self.root.join("var/cache/apk"),
            &self.root.join("usr"),
            actions,
            installed,
            &[],
        ))
    }

    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency> {
        let (out, log) = r.run(
            "apk-fix-simulate",
            self.apk().args(["fix", "--simulate"]),
            r.query_timeout,
        )?;
        let actions = parse::apk_simulation(&String::from_utf8_lossy(&out.stdout));
        let ok = out.status.success() && actions.is_empty();
        Ok(Consistency {
            ok,
            issues: actions
                .iter()
                .map(|a| super::AuditIssue {
                    package: a.name.clone(),
                    problem: "apk fix would reinstall it".into(),
                })
                .chain((!out.status.success()).then(|| super::AuditIssue {
                    package: String::new(),
                    problem: log.tail.clone(),
                }))
                .collect(),
            interrupted: false,
        })
    }

    fn repair(&self, r: &Runner) -> anyhow::Result<Option<CmdLog>> {
        let (_, log) = r.run("apk-fix", self.apk().arg("fix"), r.change_timeout)?;
        Ok(Some(log))
    }

    fn reboot_required(&self, _r: &Runner) -> bool {
        false
    }
}
