//! Package-manager lock probes.
//!
//! dpkg, apt, rpm and apk take POSIX `fcntl` record locks on their lock files;
//! zypper writes its pid into `/run/zypp.pid`. A probe never takes a lock: for
//! `fcntl` files it asks the kernel with `F_GETLK` who would block a write lock
//! (this sees both classic POSIX and open-file-description locks held by other
//! processes, and names the holder's pid for the former); for pid files it checks
//! that the recorded process is alive.

use super::LockHeld;
use anyhow::Context;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// How a lock file is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKind {
    /// A POSIX `fcntl` write lock on the file.
    Fcntl,
    /// A file holding the pid of the owner (`/run/zypp.pid`).
    PidFile,
}

/// A lock file to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFile {
    /// Host path.
    pub path: PathBuf,
    /// How it is held.
    pub kind: LockKind,
}

/// Whether `lock` is held by another process; `None` when free or absent.
pub fn probe(lock: &LockFile) -> anyhow::Result<Option<LockHeld>> {
    match lock.kind {
        LockKind::Fcntl => probe_fcntl(lock),
        LockKind::PidFile => Ok(probe_pidfile(lock)),
    }
}

fn probe_fcntl(lock: &LockFile) -> anyhow::Result<Option<LockHeld>> {
    let file = match std::fs::File::open(&lock.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening lock {}", lock.path.display())),
    };
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut fl))
        .with_context(|| format!("querying lock {}", lock.path.display()))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(LockHeld {
        path: lock.path.clone(),
        pid: (fl.l_pid > 0).then_some(fl.l_pid),
    }))
}

fn probe_pidfile(lock: &LockFile) -> Option<LockHeld> {
    let text = std::fs::read_to_string(&lock.path).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    if pid <= 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(LockHeld {
        path: lock.path.clone(),
        pid: Some(pid),
    })
}

/// The rpm database lock of `root`: `ROOT/<%_dbpath>/.rpm.lock`, where the
/// database path comes from the host's rpm macros (`rpm --eval %_dbpath`), as dnf
/// and zypper (librpm) resolve it; plus the two standard locations.
pub fn rpm_locks(root: &std::path::Path) -> Vec<LockFile> {
    let mut dirs = vec!["var/lib/rpm".to_owned(), "usr/lib/sysimage/rpm".to_owned()];
    if let Ok(out) = crate::collect::run_command(
        std::process::Command::new("rpm").args(["--eval", "%_dbpath"]),
        std::time::Duration::from_secs(10),
    ) && out.status.success()
    {
        let p = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches('/')
            .to_owned();
        if !p.is_empty() && !p.starts_with('%') && !dirs.contains(&p) {
            dirs.insert(0, p);
        }
    }
    dirs.into_iter()
        .map(|d| LockFile {
            path: root.join(d).join(".rpm.lock"),
            kind: LockKind::Fcntl,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn absent_and_free_locks_are_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let l = LockFile {
            path: path.clone(),
            kind: LockKind::Fcntl,
        };
        assert_eq!(probe(&l).unwrap(), None);
        std::fs::write(&path, "").unwrap();
        assert_eq!(probe(&l).unwrap(), None);
    }

    /// A POSIX write lock taken by another process, as dpkg takes it, is seen
    /// with the holder's pid. (`flock(1)` would not do: flock(2) locks and fcntl
    /// locks are independent on Linux.)
    #[test]
    fn lock_held_by_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, "").unwrap();
        // python3's fcntl.lockf takes a POSIX record lock, as dpkg does.
        let py = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("-c")
                    .arg("")
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("python3 is needed for this test");
        let mut child = Command::new(py)
            .arg("-c")
            .arg("import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(60)")
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let held = probe(&LockFile {
            path: path.clone(),
            kind: LockKind::Fcntl,
        })
        .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let held = held.expect("lock should be held");
        assert_eq!(held.pid, Some(child.id() as i32));
    }

    #[test]
    fn pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zypp.pid");
        let l = LockFile {
            path: path.clone(),
            kind: LockKind::PidFile,
        };
        assert_eq!(probe(&l).unwrap(), None);
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(
            probe(&l).unwrap().unwrap().pid,
            Some(std::process::id() as i32)
        );
        std::fs::write(&path, "999999999\n").unwrap();
        assert_eq!(probe(&l).unwrap(), None);
    }
}
