//! Package-manager lock probes.
//!
//! dpkg, apt and rpm take POSIX `fcntl` record locks on their lock files; apk
//! (apk-tools 3, `lib/apk/db/lock`) takes a BSD `flock(2)` lock, which on Linux is
//! independent of `fcntl` locks and invisible to `F_GETLK`; zypper writes its pid
//! into `/run/zypp.pid`. A probe never takes a lock: for `fcntl` files it asks the
//! kernel with `F_GETLK` who would block a write lock (this sees both classic
//! POSIX and open-file-description locks held by other processes, and names the
//! holder's pid for the former); for `flock` files it looks the file's device and
//! inode up in `/proc/locks` (which names the pid that took the lock); for pid
//! files it checks that the recorded process is alive.

use super::LockHeld;
use anyhow::Context;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// How a lock file is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKind {
    /// A POSIX `fcntl` write lock on the file.
    Fcntl,
    /// A BSD `flock(2)` lock on the file (apk).
    Flock,
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
        LockKind::Flock => probe_flock(lock),
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

fn probe_flock(lock: &LockFile) -> anyhow::Result<Option<LockHeld>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(&lock.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading lock {}", lock.path.display())),
    };
    let table = std::fs::read_to_string("/proc/locks").with_context(|| {
        format!(
            "reading /proc/locks to probe the flock lock {}",
            lock.path.display()
        )
    })?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Ok(
        flock_holder(&table, major as u64, minor as u64, meta.ino()).map(|pid| LockHeld {
            path: lock.path.clone(),
            pid: (pid > 0).then_some(pid),
        }),
    )
}

/// The pid holding a `FLOCK` lock on the file `(major, minor, inode)` according
/// to a `/proc/locks` table, whose lines read
///
/// ```text
/// 1: FLOCK  ADVISORY  WRITE 11001 fe:00:10019901 0 EOF
/// 2: POSIX  ADVISORY  WRITE 7787 00:1f:5309037 0 EOF
/// 3: -> FLOCK  ADVISORY  WRITE 11002 fe:00:10019901 0 EOF
/// ```
///
/// (device major and minor in hex, inode in decimal; `->` marks a waiter, which
/// does not hold the lock). `Some(0)`: held, pid not known.
pub fn flock_holder(table: &str, major: u64, minor: u64, inode: u64) -> Option<i32> {
    table.lines().find_map(|line| {
        let mut w = line.split_whitespace();
        w.next()?; // "N:"
        if w.next()? != "FLOCK" {
            return None;
        }
        let _mode = w.next()?;
        let _rw = w.next()?;
        let pid: i32 = w.next()?.parse().unwrap_or(0);
        let mut id = w.next()?.split(':');
        let ma = u64::from_str_radix(id.next()?, 16).ok()?;
        let mi = u64::from_str_radix(id.next()?, 16).ok()?;
        let ino: u64 = id.next()?.parse().ok()?;
        (ma == major && mi == minor && ino == inode).then_some(pid.max(0))
    })
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

    /// A real `/proc/locks` line seen while apk-tools 3.0.8 ran `apk add` in an
    /// Alpine 3.23 root (its `lib/apk/db/lock` had inode 10019901 on `fe:00`), a
    /// POSIX lock and a waiter.
    #[test]
    fn flock_holder_reads_proc_locks() {
        let table = "1: FLOCK  ADVISORY  WRITE 11001 fe:00:10019901 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 11005 fe:00:10019901 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 7787 fe:00:5309037 0 EOF\n\
                     3: FLOCK  ADVISORY  READ 7787 fe:00:10133507 0 EOF\n";
        assert_eq!(flock_holder(table, 0xfe, 0, 10019901), Some(11001));
        assert_eq!(flock_holder(table, 0xfe, 0, 10133507), Some(7787));
        assert_eq!(flock_holder(table, 0xfe, 0, 5309037), None, "a POSIX lock");
        assert_eq!(flock_holder(table, 0xfe, 1, 10019901), None);
        assert_eq!(flock_holder("", 0, 0, 1), None);
    }

    /// An flock(2) lock taken by another process (`flock(1)`, as apk takes it) is
    /// seen with the holder's pid; the fcntl probe does not see it.
    #[test]
    fn flock_held_by_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, "").unwrap();
        let l = LockFile {
            path: path.clone(),
            kind: LockKind::Flock,
        };
        assert_eq!(probe(&l).unwrap(), None);
        // `-o`: the shell does not inherit the locked descriptor; it waits for
        // its stdin to close.
        let mut child = Command::new("flock")
            .args(["-x", "-o"])
            .arg(&path)
            .args(["sh", "-c", "echo locked; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock(1) from util-linux");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let held = probe(&l).unwrap();
        let fcntl = probe(&LockFile {
            path: path.clone(),
            kind: LockKind::Fcntl,
        })
        .unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(
            held.and_then(|h| h.pid),
            Some(child.id() as i32),
            "the flock is seen"
        );
        assert_eq!(probe(&l).unwrap(), None, "released");
        assert_eq!(fcntl, None, "flock and fcntl locks are independent");
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
