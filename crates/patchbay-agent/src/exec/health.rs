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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `systemd`, `tcp`, `http` or `command`.
    pub kind: String,
    /// Passed.
    pub ok: bool,
    /// What was seen (status, exit code, error, output tail; for a metric,
    /// the value or why there is none).
    pub detail: String,
    /// Wall time.
    pub duration_ms: u64,
    /// The measured value of a `metric = true` command check (always finite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

// A value is only ever set from [`parse_metric`], which admits finite numbers
// alone, so equality is reflexive (no NaN) and `Eq` holds.
impl Eq for CheckResult {}

/// The longest metric output taken (characters, after trimming).
pub const METRIC_MAX_CHARS: usize = 64;

/// Parses a metric check's standard output: one plain decimal number
/// (optional sign, digits, optional fraction, optional exponent), finite.
/// The error says why the output is not one.
pub fn parse_metric(stdout: &[u8]) -> Result<f64, String> {
    let Ok(text) = std::str::from_utf8(stdout) else {
        return Err("the output is not UTF-8".into());
    };
    let t = text.trim();
    if t.is_empty() {
        return Err("the output is empty".into());
    }
    if t.chars().count() > METRIC_MAX_CHARS {
        return Err(format!(
            "the output is longer than {METRIC_MAX_CHARS} characters"
        ));
    }
    let shown = || format!("{t:?}");
    if !plain_decimal(t) {
        return Err(format!(
            "{} is not a plain decimal number (e.g. 12, -0.5, 1.5e3)",
            shown()
        ));
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("{} is out of range", shown())),
        Err(e) => Err(format!("{}: {e}", shown())),
    }
}

/// `[+-]? digits ('.' digits?)? ([eE] [+-]? digits)?` or `[+-]? '.' digits …`.
fn plain_decimal(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    let mut frac = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac;
    }
    if int + frac == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// Runs every check in order.
pub fn run_all(checks: &[Check]) -> Vec<CheckResult> {
    checks.iter().map(run).collect()
}

/// Runs one check.
pub fn run(check: &Check) -> CheckResult {
    let start = Instant::now();
    let timeout = check.timeout();
    let mut value = None;
    let (ok, detail) = match check {
        Check::Systemd { unit, .. } => systemd(unit, timeout),
        Check::Tcp { address, .. } => tcp(address, timeout),
        Check::Http {
            url,
            status,
            body_contains,
            ..
        } => http(url, *status, body_contains.as_deref(), timeout),
        Check::Command {
            command, metric, ..
        } => {
            let (ok, detail, stdout) = command_check(command, timeout);
            match (metric, stdout) {
                (false, _) => (ok, detail),
                (true, None) => (
                    ok,
                    format!("{detail}; no value: the command did not finish"),
                ),
                (true, Some(out)) => match parse_metric(&out) {
                    Ok(v) => {
                        value = Some(v);
                        (ok, format!("{detail}; value {v}"))
                    }
                    Err(why) => (ok, format!("{detail}; no value: {why}")),
                },
            }
        }
    };
    CheckResult {
        name: check.name().to_owned(),
        kind: check.kind().to_owned(),
        ok,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
        value,
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

/// Runs a command check: pass, detail, and the standard output when the
/// command finished.
fn command_check(argv: &[String], timeout: Duration) -> (bool, String, Option<Vec<u8>>) {
    let Some((prog, args)) = argv.split_first() else {
        return (false, "empty command".into(), None);
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
                Some(out.stdout),
            )
        }
        Err(e @ CommandError::TimedOut { .. }) => (false, e.to_string(), None),
        Err(e) => (false, e.to_string(), None),
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
    /// The last non-empty line it printed on stdout (at most 512 bytes): a
    /// snapshot hook's identity of the snapshot it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Runs a hook with `PATCHBAY_JOB_KEY` and `PATCHBAY_ROOT` set; success is exit 0.
pub fn run_hook(
    argv: &[String],
    job_key: &str,
    root: &std::path::Path,
    timeout: Duration,
) -> HookResult {
    let start = Instant::now();
    let mut id = None;
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
                    id = String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::trim)
                        .rfind(|l| !l.is_empty() && l.len() <= 512 && !l.contains('\0'))
                        .map(str::to_owned);
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
        id,
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
            metric: false,
            rehearse: false,
        }
    }

    fn metric(script: &str) -> CheckResult {
        run(&Check::Command {
            name: "m".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout_secs: Some(5),
            metric: true,
            rehearse: false,
        })
    }

    #[test]
    fn metric_values_are_parsed_strictly() {
        for (text, want) in [
            ("12", 12.0),
            ("  -0.5\n", -0.5),
            ("+3", 3.0),
            ("1.5e3", 1500.0),
            ("2E-2", 0.02),
            (".25", 0.25),
            ("7.", 7.0),
        ] {
            assert_eq!(parse_metric(text.as_bytes()), Ok(want), "{text:?}");
        }
        for (text, why) in [
            ("", "empty"),
            ("   \n", "empty"),
            ("nan", "not a plain decimal"),
            ("NaN", "not a plain decimal"),
            ("inf", "not a plain decimal"),
            ("-Infinity", "not a plain decimal"),
            ("12 ms", "not a plain decimal"),
            ("1\n2", "not a plain decimal"),
            ("0x10", "not a plain decimal"),
            ("1e", "not a plain decimal"),
            ("e5", "not a plain decimal"),
            (".", "not a plain decimal"),
            ("--1", "not a plain decimal"),
            ("1_000", "not a plain decimal"),
            ("1e999", "out of range"),
        ] {
            let e = parse_metric(text.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        assert!(parse_metric(&[0xff, b'1']).unwrap_err().contains("UTF-8"));
        let long = "1".repeat(METRIC_MAX_CHARS + 1);
        assert!(
            parse_metric(long.as_bytes())
                .unwrap_err()
                .contains("longer")
        );
        let ok = "1".repeat(METRIC_MAX_CHARS);
        assert!(parse_metric(ok.as_bytes()).is_ok());
    }

    #[test]
    fn metric_command_checks_carry_their_value() {
        let r = metric("echo 41.5");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.value, Some(41.5));
        assert!(r.detail.ends_with("; value 41.5"), "{r:?}");
        // The exit status still decides pass or fail; the value is kept.
        let r = metric("echo 900; exit 2");
        assert!(!r.ok && r.value == Some(900.0), "{r:?}");
        // Garbage, NaN, inf: no value, and the detail says why.
        let r = metric("echo fast");
        assert!(r.ok && r.value.is_none(), "{r:?}");
        assert!(
            r.detail
                .contains("no value: \"fast\" is not a plain decimal number"),
            "{r:?}"
        );
        let r = metric("echo nan");
        assert!(r.value.is_none() && r.detail.contains("no value"), "{r:?}");
        let r = metric("echo inf");
        assert!(r.value.is_none() && r.detail.contains("no value"), "{r:?}");
        // A command that did not finish has no value.
        let r = run(&Check::Command {
            name: "m".into(),
            command: vec!["sleep".into(), "30".into()],
            timeout_secs: Some(1),
            metric: true,
            rehearse: false,
        });
        assert!(!r.ok && r.value.is_none(), "{r:?}");
        assert!(
            r.detail.contains("no value: the command did not finish"),
            "{r:?}"
        );
        // Not a metric: no value, whatever it prints.
        let r = run(&cmd("n", &["echo", "5"], None));
        assert_eq!(r.value, None);
        // Journalled results without a value still read.
        let old: CheckResult = serde_json::from_str(
            r#"{"name":"web","kind":"command","ok":true,"detail":"exit 0","duration_ms":3}"#,
        )
        .unwrap();
        assert_eq!(old.value, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("value"));
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
