//! Running external tools (package managers, `ip`) with a hard timeout.
//!
//! Every command runs non-interactively: stdin is `/dev/null`, `LC_ALL=C` and
//! `DEBIAN_FRONTEND=noninteractive` are set, and the child is the leader of its own
//! process group. On timeout the whole group is killed with `killpg(PGID, SIGKILL)`
//! (through the safe `nix` wrapper), then the child itself is killed as a fallback.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Why [`run_command`] could not produce an [`Output`].
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program does not exist (not installed, or not on `PATH`).
    #[error("{program}: not found")]
    NotFound {
        /// The program that was run.
        program: String,
    },
    /// The program did not finish in time; its process group was killed.
    #[error("{program}: timed out after {timeout:?} (process group killed)")]
    TimedOut {
        /// The program that was run.
        program: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// Spawning or waiting for the program failed.
    #[error("{program}: {source}")]
    Io {
        /// The program that was run.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Runs `cmd` to completion and captures its output, killing its whole process
/// group if it runs longer than `timeout`.
///
/// The command's stdin, stdout, stderr, process group and the `LC_ALL` and
/// `DEBIAN_FRONTEND` environment variables are overridden. A non-zero exit status
/// is not an error: callers look at [`Output::status`].
pub fn run_command(cmd: &mut Command, timeout: Duration) -> Result<Output, CommandError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .process_group(0);
    let deadline = Instant::now() + timeout;
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CommandError::NotFound {
                program: program.clone(),
            }
        } else {
            CommandError::Io {
                program: program.clone(),
                source,
            }
        }
    })?;
    let pgid = child.id();

    // Drain both pipes on their own threads so a chatty child never blocks on a
    // full pipe while we poll for its exit.
    let (tx, rx) = mpsc::channel::<(bool, io::Result<Vec<u8>>)>();
    if let Some(mut out) = child.stdout.take() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let r = out.read_to_end(&mut buf).map(|_| buf);
            let _ = tx.send((true, r));
        });
    }
    if let Some(mut err) = child.stderr.take() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let r = err.read_to_end(&mut buf).map(|_| buf);
            let _ = tx.send((false, r));
        });
    }
    drop(tx);

    let timed_out = || CommandError::TimedOut {
        program: program.clone(),
        timeout,
    };

    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(pgid, &mut child);
            return Err(timed_out());
        }
        Err(source) => {
            kill_group(pgid, &mut child);
            return Err(CommandError::Io {
                program: program.clone(),
                source,
            });
        }
    };

    // The child has exited; its output arrives once every writer (including any
    // grandchild that inherited the pipes) is gone.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((is_stdout, Ok(buf))) => {
                if is_stdout {
                    stdout = buf;
                } else {
                    stderr = buf;
                }
            }
            Ok((_, Err(source))) => {
                return Err(CommandError::Io {
                    program: program.clone(),
                    source,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A leftover member of the group still holds a pipe open.
                kill_group_by_id(pgid);
                return Err(timed_out());
            }
        }
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Polls `child` until it exits (`Some`) or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the process group led by the (not yet reaped) `child`, then the child
/// itself, and reaps it. The child is unreaped until this point, so its pid (the
/// group id) cannot have been reused.
fn kill_group(pgid: u32, child: &mut Child) {
    kill_group_by_id(pgid);
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGKILL to process group `pgid`.
pub(crate) fn kill_group_by_id(pgid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Ok(id) = i32::try_from(pgid) else {
        return;
    };
    match killpg(Pid::from_raw(id), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, error = %e, "could not kill process group"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn captures_output_and_status() {
        let out = run_command(
            Command::new("sh").args(["-c", "echo out; echo err >&2; echo $LC_ALL; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nC\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    }

    #[test]
    fn stdin_is_null() {
        let out = run_command(&mut Command::new("cat"), Duration::from_secs(10)).unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn large_output_does_not_deadlock() {
        let out = run_command(
            Command::new("sh").args(["-c", "head -c 1000000 /dev/zero"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 1_000_000);
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = run_command(
            &mut Command::new("patchbay-no-such-program-xyz"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, CommandError::NotFound { .. }), "{err}");
    }

    #[test]
    fn timeout_kills_quickly() {
        let start = Instant::now();
        let err =
            run_command(Command::new("sleep").arg("10"), Duration::from_millis(200)).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(took >= Duration::from_millis(200), "took {took:?}");
    }

    /// The whole process group dies, including a grandchild that would keep the
    /// output pipes open.
    #[test]
    fn timeout_kills_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let err = run_command(
            Command::new("sh").args(["-c", &script]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let proc_dir = format!("/proc/{}", pid.trim());
        // Once killed, the orphan is reaped by init (or left a zombie briefly).
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(Path::new(&proc_dir).join("stat"));
            match stat {
                Err(_) => gone = true,
                Ok(s) => {
                    gone = s
                        .rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                }
            }
            if gone {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(gone, "grandchild {} survived", pid.trim());
    }
}
