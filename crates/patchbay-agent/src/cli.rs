//! `patchbay-agent` command-line flags.

use crate::run::{AgentOptions, checkin_once, run_loop};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Patchbay agent: enrols with a Patchbay server and reports this host's
/// inventory (OS, packages with exact versions, pending updates, reboot state).
///
/// The agent is read-only: it never installs or removes packages in this release.
#[derive(Debug, Parser)]
#[command(name = "patchbay-agent", version)]
pub struct Args {
    /// Server base URL, e.g. http://patchbay.example:8080
    #[arg(long, env = "PATCHBAY_SERVER")]
    pub server: String,
    /// Enrolment token (pbe_…), needed for the first run only.
    #[arg(long, env = "PATCHBAY_ENROLL_TOKEN")]
    pub enroll_token: Option<String>,
    /// State directory: identity and last acknowledged inventory.
    #[arg(long, default_value = "/var/lib/patchbay-agent")]
    pub state_dir: PathBuf,
    /// Check in once and exit (exit code 0 on success).
    #[arg(long)]
    pub once: bool,
    /// Check-in interval, e.g. 15m, 1h, 30s (±10 % jitter is added).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Inventory another root file system (a chroot or mounted image) instead of /.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Do not run the package manager's update simulation.
    #[arg(long)]
    pub no_pending_updates: bool,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// Parses `90s`, `15m`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 2h, 1d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid duration unit in {s:?}: use s, m, h or d")),
    };
    if secs == 0 {
        return Err("duration must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

impl Args {
    /// Agent options from flags.
    pub fn options(&self) -> AgentOptions {
        AgentOptions {
            server: self.server.clone(),
            enroll_token: self.enroll_token.clone(),
            state_dir: self.state_dir.clone(),
            root: self.root.clone(),
            interval: self.interval,
            pending_updates: !self.no_pending_updates,
            timeout: Duration::from_secs(120),
        }
    }
}

/// The binary's entry point; returns the process exit code.
pub fn main_entry(args: Args) -> i32 {
    let opts = args.options();
    if args.once {
        match checkin_once(&opts) {
            Ok(o) => {
                println!(
                    "checked in as {}: sent {} inventory ({} packages, {} rows written)",
                    o.asset_name, o.sent, o.packages, o.rows_written
                );
                0
            }
            Err(e) => {
                eprintln!("patchbay-agent: {e:#}");
                1
            }
        }
    } else {
        let stop = std::sync::atomic::AtomicBool::new(false);
        run_loop(&opts, &stop);
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("m").is_err());
    }
}
