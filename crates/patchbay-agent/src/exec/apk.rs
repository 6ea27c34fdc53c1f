//! The apk backend (Alpine).
//!
//! For a root other than `/`, apk runs as `chroot ROOT /sbin/apk …`: the
//! **root's own** apk-tools on its own database, `/etc/apk/repositories`, keys and
//! cache, with package scripts running inside the root, as the apt backend does
//! with the root's apt-get/dpkg. Why not the host's `apk --root ROOT`: a host that
//! manages Alpine roots is often not Alpine (no `apk` at all, as on the Debian CI
//! machine), and where it is, its apk-tools may be older or newer than the one
//! that wrote the root's database (apk-tools 2 vs 3). Why not the root's own
//! binary through its musl loader (`ROOT/lib/ld-musl-ARCH.so.1 --library-path …
//! ROOT/sbin/apk --root ROOT`): it needs the loader's per-architecture name, and
//! apk chroots into the root for package scripts anyway, so it needs the same
//! privilege as `chroot`. Nothing is mounted: apk-tools 3 and busybox scripts run
//! without `/proc` (checked against Alpine 3.23, apk-tools 3.0.8). A root without
//! `sbin/apk` falls back to the host's `apk --root ROOT`.
//!
//! Installed packages are read directly from `ROOT/lib/apk/db/installed` (the
//! parser is `patchbay_core::inventory::apk`). Exact versions are `apk add
//! NAME=VERSION…` (apk records the `=VERSION` constraint in `/etc/apk/world`, which
//! is what keeps a pinned version from being upgraded later; a rollback's
//! `apk add NAME=OLD` re-pins to the old version); removals are `apk del NAME…`,
//! run after the `add` (apk purges a dependency no longer needed by the world in
//! the `add` transaction itself; a `del` of a package that is no longer installed
//! changes nothing). The simulation is the same commands with `--simulate`,
//! whose progress lines are parsed ([`parse::apk_simulation`]).
//!
//! apk has no "keep orphans" mode: a change that leaves a dependency unneeded by
//! the world purges it in the same transaction. So a job that downgrades a
//! package below the version that pulled a dependency in is refused by the scope
//! check (it would remove an unnamed package); the rollback of the job that
//! installed the dependency, whose plan records it as absent, is the way back.
//!
//! apk-tools 3 takes a BSD `flock(2)` lock on `lib/apk/db/lock` (not an `fcntl`
//! lock), probed through `/proc/locks` ([`LockKind::Flock`]).
//!
//! Reboot: Alpine has no `reboot-required` marker; see
//! [`super::plan::apk_reboot_required`] for the kernel rule.

use super::plan::PackageDiff;
use super::{
    Action, Backend, Change, CmdLog, Consistency, Installed, Runner, SpaceNeed, is_host,
    lock::{LockFile, LockKind},
    parse,
};
use anyhow::{Context, anyhow};
use patchbay_core::inventory::PendingUpdate;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `PATH` inside a chroot (Alpine's default).
const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `apk` command for `root`: `apk` on the host, `chroot ROOT /sbin/apk` for
/// another root that has apk-tools, else the host's `apk --root ROOT`.
pub fn command(root: &Path) -> Command {
    if is_host(root) {
        Command::new("apk")
    } else if std::fs::symlink_metadata(root.join("sbin/apk")).is_ok() {
        let mut c = Command::new("chroot");
        c.arg(root).arg("/sbin/apk").env("PATH", CHROOT_PATH);
        c
    } else {
        let mut c = Command::new("apk");
        c.arg("--root").arg(root);
        c
    }
}

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
        let mut c = command(&self.root);
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

    /// `apk add`, then `apk del`. apk-tools 3 writes the new constraints to
    /// `/etc/apk/world` even when the transaction fails before changing any
    /// package (seen with 3.0.8 when a package download failed: `1 error`, the
    /// package absent, `NAME=VERSION` in the world), and the next apk run by
    /// anyone would then install it — as a "new package" that a later job's
    /// scope check allows. So when a command fails and the installed database is
    /// byte for byte what it was, the world file is put back as it was.
    fn apply(&self, r: &Runner, changes: &[Change]) -> anyhow::Result<CmdLog> {
        let (add, del) = Self::split(changes);
        let world = self.root.join("etc/apk/world");
        let db = self.root.join("lib/apk/db/installed");
        let world_before = std::fs::read(&world).ok();
        let db_before = std::fs::read(&db).ok();
        let mut last = None;
        for (verb, pkgs) in [("add", add), ("del", del)] {
            if pkgs.is_empty() {
                continue;
            }
            match r.run_ok(
                &format!("apk-{verb}"),
                self.apk().arg(verb).args(&pkgs),
                r.change_timeout,
            ) {
                Ok((_, log)) => last = Some(log),
                Err(e) => {
                    let (Some(w), Some(d)) = (&world_before, &db_before) else {
                        return Err(e);
                    };
                    if std::fs::read(&db).ok().as_ref() != Some(d)
                        || std::fs::read(&world).ok().as_ref() == Some(w)
                    {
                        return Err(e);
                    }
                    return Err(match restore(&world, w) {
                        Ok(()) => e.context(format!(
                            "no package changed; {} restored as it was before",
                            world.display()
                        )),
                        Err(re) => e.context(format!(
                            "no package changed, but restoring {} failed: {re:#}",
                            world.display()
                        )),
                    });
                }
            }
        }
        last.ok_or_else(|| anyhow!("nothing to apply"))
    }

    fn locks(&self) -> Vec<LockFile> {
        vec![LockFile {
            path: self.root.join("lib/apk/db/lock"),
            kind: LockKind::Flock,
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

    /// `apk fix --simulate` (packages apk itself flagged, e.g. a failed script)
    /// and the scripts left in `lib/apk/exec` ([`leftover_scripts`]): apk-tools
    /// 3 writes each package script there, runs it and deletes it, and writes
    /// its database only at the end of the transaction, so a script left behind
    /// means apk was killed after replacing that package's files and before
    /// recording it — seen with apk-tools 3.0.8 after a SIGKILL during a
    /// post-upgrade script: the files were the new version's, the database and
    /// the world still the old ones, and `apk fix --simulate` saw nothing.
    fn consistency(&self, r: &Runner) -> anyhow::Result<Consistency> {
        let (out, log) = r.run(
            "apk-fix-simulate",
            self.apk().args(["fix", "--simulate"]),
            r.query_timeout,
        )?;
        let actions = parse::apk_simulation(&String::from_utf8_lossy(&out.stdout));
        let leftovers = leftover_scripts(&self.root);
        let ok = out.status.success() && actions.is_empty() && leftovers.is_empty();
        Ok(Consistency {
            ok,
            issues: actions
                .iter()
                .map(|a| super::AuditIssue {
                    package: a.name.clone(),
                    problem: "apk fix would reinstall it".into(),
                })
                .chain(leftovers.iter().map(|s| super::AuditIssue {
                    package: s.name.clone(),
                    problem: format!(
                        "apk was stopped in its {} script of {}-{}: the files on disk may not match the database",
                        s.kind, s.name, s.version
                    ),
                }))
                .chain((!out.status.success()).then(|| super::AuditIssue {
                    package: String::new(),
                    problem: log.tail.clone(),
                }))
                .collect(),
            interrupted: !leftovers.is_empty(),
        })
    }

    /// `apk fix --reinstall NAME…` for the packages of left-over scripts that the
    /// database still lists (their recorded version is installed again, so the
    /// files match the database; a package that was being newly installed is not
    /// in the database and a later install overwrites its files), else plain
    /// `apk fix`; on success the left-over scripts are deleted.
    fn repair(&self, r: &Runner) -> anyhow::Result<Option<CmdLog>> {
        let leftovers = leftover_scripts(&self.root);
        let installed = self.installed(r)?;
        let mut names: Vec<&str> = leftovers
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| installed.iter().any(|p| p.name == *n))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut cmd = self.apk();
        cmd.arg("fix");
        if !names.is_empty() {
            cmd.arg("--reinstall").args(&names);
        }
        let (out, log) = r.run("apk-fix", &mut cmd, r.change_timeout)?;
        if out.status.success() {
            for s in &leftovers {
                let path = self.root.join("lib/apk/exec").join(&s.file);
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(Some(log))
    }

    fn reboot_required(&self, _r: &Runner, after: &[Installed], changed: &[PackageDiff]) -> bool {
        let running = if is_host(&self.root) {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned())
        } else {
            None
        };
        let modules = module_dirs(&self.root);
        let installed: Vec<(&str, &str)> = after
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        super::plan::apk_reboot_required(&installed, changed, running.as_deref(), &modules)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// fsynced and renamed over it.
fn restore(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("patchbay-tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The package scripts left in `ROOT/lib/apk/exec` (see [`Apk::consistency`]),
/// sorted by file name; files whose names are not `NAME-VERSION.KIND` are left
/// out.
pub fn leftover_scripts(root: &Path) -> Vec<parse::ApkScript> {
    let mut v: Vec<parse::ApkScript> = std::fs::read_dir(root.join("lib/apk/exec"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| parse::apk_script(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.file.cmp(&b.file));
    v
}

/// The names of the directories in `ROOT/lib/modules` (one per installed kernel).
pub fn module_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("lib/modules"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_chroots_into_a_root_with_apk_tools() {
        let d = tempfile::tempdir().unwrap();
        let c = command(d.path());
        assert_eq!(c.get_program(), "apk", "no sbin/apk: the host's apk");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, [std::ffi::OsStr::new("--root"), d.path().as_os_str()]);
        std::fs::create_dir(d.path().join("sbin")).unwrap();
        std::fs::write(d.path().join("sbin/apk"), "").unwrap();
        let c = command(d.path());
        assert_eq!(c.get_program(), "chroot");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [d.path().as_os_str(), std::ffi::OsStr::new("/sbin/apk")]
        );
        let c = command(Path::new("/"));
        assert_eq!(c.get_program(), "apk");
        assert_eq!(c.get_args().count(), 0);
    }

    #[test]
    fn module_dirs_lists_directories() {
        let d = tempfile::tempdir().unwrap();
        assert!(module_dirs(d.path()).is_empty());
        std::fs::create_dir_all(d.path().join("lib/modules/6.18.56-0-virt")).unwrap();
        std::fs::write(d.path().join("lib/modules/stray"), "").unwrap();
        assert_eq!(module_dirs(d.path()), ["6.18.56-0-virt"]);
    }
}
