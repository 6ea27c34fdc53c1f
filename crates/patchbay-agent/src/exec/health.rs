//! Health checks from the local configuration, and hooks.
//!
//! Checks run on the host (not inside `--root`): a check that should look at a
//! root's files names them by their host path. Each check has its own time limit;
//! a command check's whole process group is killed when it runs over.

use super::config::Check;
use crate::collect::{CommandError, run_command};
use serde::{Deserialize, Serialize};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `systemd`, `tcp`, `http` or `command`.
    pub kind: String,
    /// Passed.
    pub ok: bool,
    /// What was seen (status, exit code, error, output tail).
    pub detail: String,
    /// Wall time.
    pub duration_ms: u64,
}

/// Runs every check in order.
pub fn run_all(checks: &[Check]) -> Vec<CheckResult> {
    checks.iter().map(run).collect()
}

/// Runs one check.
pub fn run(check: &Check) -> CheckResult {
    let start = Instant::now();
    let timeout = check.timeout();
    let (ok, detail) = match check {
        Check::Systemd { unit, .. } => systemd(unit, timeout),
        Check::Tcp { address, .. } => tcp(address, timeout),
        Check::Http {
            url,
            status,
            body_contains,
            ..
        } => http(url, *status, body_contains.as_deref(), timeout),
        Check::Command { command, .. } => command_check(command, timeout),
    };
    CheckResult {
        name: check.name().to_owned(),
        kind: check.kind().to_owned(),
        ok,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

fn systemd(unit: &str, timeout: Duration) -> (bool, String) {
    match run_command(
        Command::new("systemctl").args(["is-active", "--", unit]),
        timeout,
    ) {
        Ok(out) => {
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (
                out.status.success() && state == "active",
                format!("{unit}: {state}"),
            )
        }
        Err(e) => (false, e.to_string()),
    }
}

fn tcp(address: &str, timeout: Duration) -> (bool, String) {
    let addrs = match address.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return (false, format!("{address}: {e}")),
    };
    let mut last = format!("{address}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return (true, format!("connected to {a}")),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    (false, last)
}

fn http(url: &str, want: u16, contains: Option<&str>, timeout: Duration) -> (bool, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build(),
    );
    let mut resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => return (false, format!("{url}: {e}")),
    };
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    if status != want {
        return (false, format!("{url}: status {status}, expected {want}"));
    }
    if let Some(c) = contains
        && !body.contains(c)
    {
        return (
            false,
            format!("{url}: status {status}, body does not contain {c:?}"),
        );
    }
    (true, format!("{url}: status {status}"))
}

fn command_check(argv: &[String], timeout: Duration) -> (bool, String) {
    let Some((prog, args)) = argv.split_first() else {
        return (false, "empty command".into());
    };
    match run_command(Command::new(prog).args(args), timeout) {
        Ok(out) => {
            let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
                &out.stderr
            } else {
                &out.stdout
            };
            let tail: String = String::from_utf8_lossy(text)
                .trim()
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let exit = match out.status.code() {
                Some(c) => format!("exit {c}"),
                None => format!("{}", out.status),
            };
            (
                out.status.success(),
                if tail.is_empty() {
                    exit
                } else {
                    format!("{exit}: {tail}")
                },
            )
        }
        Err(e @ CommandError::TimedOut { .. }) => (false, e.to_string()),
        Err(e) => (false, e.to_string()),
    }
}

/// What a hook did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookResult {
    /// The command line.
    pub command: String,
    /// Exit code 0 within the limit.
    pub ok: bool,
    /// Exit status or error, and output tail.
    pub detail: String,
    /// Wall time.
    pub duration_ms: u64,
}

/// Runs a hook with `PATCHBAY_JOB_KEY` and `PATCHBAY_ROOT` set; success is exit 0.
pub fn run_hook(
    argv: &[String],
    job_key: &str,
    root: &std::path::Path,
    timeout: Duration,
) -> HookResult {
    let start = Instant::now();
    let (ok, detail) = match argv.split_first() {
        None => (false, "empty hook".to_owned()),
        Some((prog, args)) => {
            let mut cmd = Command::new(prog);
            cmd.args(args)
                .env("PATCHBAY_JOB_KEY", job_key)
                .env("PATCHBAY_ROOT", root);
            match run_command(&mut cmd, timeout) {
                Ok(out) => {
                    let mut d = match out.status.code() {
                        Some(c) => format!("exit {c}"),
                        None => format!("{}", out.status),
                    };
                    let err = String::from_utf8_lossy(&out.stderr);
                    if !err.trim().is_empty() {
                        d.push_str(": ");
                        d.push_str(err.trim());
                    }
                    (out.status.success(), d)
                }
                Err(e) => (false, e.to_string()),
            }
        }
    };
    HookResult {
        command: argv.join(" "),
        ok,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn cmd(name: &str, argv: &[&str], t: Option<u64>) -> Check {
        Check::Command {
            name: name.into(),
            command: argv.iter().map(|s| s.to_string()).collect(),
            timeout_secs: t,
        }
    }

    #[test]
    fn command_checks() {
        let r = run(&cmd("t", &["true"], None));
        assert!(r.ok && r.kind == "command" && r.name == "t");
        let r = run(&cmd("f", &["sh", "-c", "echo broken >&2; exit 3"], None));
        assert!(!r.ok);
        assert_eq!(r.detail, "exit 3: broken");
        let start = Instant::now();
        let r = run(&cmd("slow", &["sleep", "30"], Some(1)));
        assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let r = run(&cmd("missing", &["/nonexistent/x"], None));
        assert!(!r.ok && r.detail.contains("not found"));
    }

    #[test]
    fn tcp_and_http_checks() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for (status, body) in [("200 OK", "all good"), ("503 Service Unavailable", "down")] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let http = |body: Option<&str>| Check::Http {
            name: "web".into(),
            url: format!("http://{addr}/health"),
            status: 200,
            body_contains: body.map(Into::into),
            timeout_secs: Some(5),
        };
        let r = run(&http(Some("good")));
        assert!(r.ok, "{r:?}");
        let r = run(&http(None));
        assert!(!r.ok && r.detail.contains("status 503"), "{r:?}");
        server.join().unwrap();
        // The listener is gone: connecting fails.
        let r = run(&Check::Tcp {
            name: "port".into(),
            address: addr.to_string(),
            timeout_secs: Some(2),
        });
        assert!(!r.ok, "{r:?}");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = run(&Check::Tcp {
            name: "port".into(),
            address: l.local_addr().unwrap().to_string(),
            timeout_secs: Some(2),
        });
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn systemd_check_reports_failure_without_systemd() {
        let r = run(&Check::Systemd {
            name: "x".into(),
            unit: "patchbay-no-such-unit.service".into(),
            timeout_secs: Some(5),
        });
        assert!(!r.ok);
        assert_eq!(r.kind, "systemd");
    }

    #[test]
    fn hooks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let argv: Vec<String> = [
            "sh",
            "-c",
            &format!(
                "echo \"$PATCHBAY_JOB_KEY $PATCHBAY_ROOT\" > {}",
                out.display()
            ),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let h = run_hook(
            &argv,
            "job-1",
            std::path::Path::new("/r"),
            Duration::from_secs(5),
        );
        assert!(h.ok, "{h:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "job-1 /r\n");
        let h = run_hook(
            &["false".into()],
            "k",
            std::path::Path::new("/"),
            Duration::from_secs(5),
        );
        assert!(!h.ok && h.detail == "exit 1");
    }
}
