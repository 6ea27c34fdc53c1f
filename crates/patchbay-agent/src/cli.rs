//! `patchbay-agent` command-line flags and the binary's entry point.
//!
//! Without a subcommand the agent enrols and checks in (`--server` is then
//! required). The subcommands act locally and print one JSON object on stdout.

use crate::exec::config::Config;
use crate::exec::job::{self, JobEnv, RollbackMethod};
use crate::exec::report::JobOutput;
use crate::exec::{BackendKind, Wanted};
use crate::run::{AgentOptions, checkin_once, run_loop};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Patchbay agent: enrols with a Patchbay server and reports this host's
/// inventory (OS, packages with exact versions, pending updates, reboot state);
/// locally, applies exact package versions with pre-flight checks, health checks,
/// rollback and a crash-safe journal.
#[derive(Debug, Parser)]
#[command(
    name = "patchbay-agent",
    version,
    subcommand_negates_reqs = true,
    after_help = "Without a subcommand the agent checks in with --server (every --interval, or --once).\n\n\
Local commands print one JSON object on stdout. Exit codes: 0 success; 1 the job was refused\n\
or failed (the JSON names the step in \"error\"); 2 bad usage; 3 the command could not run\n\
(JSON {\"ok\": false, \"error\": {\"step\", \"message\"}})."
)]
pub struct Args {
    /// Local command; without one, enrol and check in with --server.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server base URL, e.g. http://patchbay.example:8080 (required without a subcommand).
    #[arg(long, env = "PATCHBAY_SERVER", required = true)]
    pub server: Option<String>,
    /// Enrolment token (pbe_…), needed for the first run only.
    #[arg(long, env = "PATCHBAY_ENROLL_TOKEN")]
    pub enroll_token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// server (a private CA or the
    /// server's self-signed certificate); default: the public web roots.
    #[arg(long, env = "PATCHBAY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// State directory: identity, last acknowledged inventory, job journal and logs.
    #[arg(long, default_value = "/var/lib/patchbay-agent", global = true)]
    pub state_dir: PathBuf,
    /// Check in once and exit (exit code 0 on success).
    #[arg(long)]
    pub once: bool,
    /// Enrol again with --enroll-token although the state directory holds an
    /// identity, presenting the current credential as proof that this is the
    /// asset's agent; the server issues a new credential and revokes the old.
    #[arg(long, requires = "enroll_token", requires = "once")]
    pub re_enroll: bool,
    /// Check-in interval, e.g. 15m, 1h, 30s (±10 % jitter is added).
    #[arg(long, default_value = "15m", value_parser = patchbay_core::when::flag_interval)]
    pub interval: Duration,
    /// Operate on another root file system (a chroot or mounted image) instead of /.
    #[arg(long, default_value = "/", global = true)]
    pub root: PathBuf,
    /// Do not run the package manager's update simulation.
    #[arg(long)]
    pub no_pending_updates: bool,
    /// With --root: still report this network namespace's addresses, MACs
    /// and neighbour table (an agent in a container or namespace with its
    /// own root). Without --root they are always reported.
    #[arg(long)]
    pub host_network: bool,
    /// Long-poll: ask the server to hold each check-in up to SECS seconds until
    /// it has a job for this agent (0: no long-poll; check in every --interval)
    /// [default: 25; with --once: 0].
    #[arg(long, value_name = "SECS")]
    pub long_poll: Option<u32>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Local configuration (health checks, hooks, pre-flight limits, where to
    /// look for software installed outside the package manager: [unmanaged])
    /// [default: /etc/patchbay-agent/agent.toml when it exists].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// Local commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply exact package versions (journalled, idempotent per job key).
    ///
    /// Pre-flight (lock, database consistency, free space, snapshot hook, health
    /// baseline), a simulation that must touch nothing but the named packages and
    /// new dependencies, the change, then verification (versions, unnamed packages
    /// unchanged, health). Every step is journalled; a job key already in the
    /// journal returns its recorded result without acting again.
    #[command(
        after_help = "Example: patchbay-agent apply --root /srv/chroot --job-key deploy-42/host-7 openssl=3.0.15-1~deb12u1 libssl3=3.0.15-1~deb12u1"
    )]
    Apply {
        /// Idempotency key of the job.
        #[arg(long)]
        job_key: String,
        /// Packages with exact versions: PKG=VERSION.
        #[arg(required = true, value_name = "PKG=VERSION", value_parser = parse_wanted)]
        packages: Vec<Wanted>,
        /// Do not refresh repository metadata first.
        #[arg(long)]
        no_refresh: bool,
        /// Package manager (detected from the root by default).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
    },
    /// Roll back an applied job to its recorded versions (or a snapshot).
    ///
    /// Installs the versions the job's rollback plan recorded (downgrading) and
    /// removes the packages it newly installed, or runs the configured
    /// snapshot-restore hook; then verifies versions and that health is not worse
    /// than before the job.
    Rollback {
        /// Idempotency key of the apply job to roll back.
        #[arg(long)]
        job_key: String,
        /// How to restore.
        #[arg(long, value_enum, default_value = "packages")]
        method: RollbackMethod,
        /// Do not refresh repository metadata first.
        #[arg(long)]
        no_refresh: bool,
        /// Package manager (detected from the root by default).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
    },
    /// Rehearse installing exact versions in a throwaway overlay of the root.
    ///
    /// Mounts an overlay (lower = the root, read-only; upper and work under the
    /// state directory), runs the exact transaction of an apply in a chroot of
    /// it with package scripts run and services not started (policy-rc.d 101),
    /// reports the package diff, failing scripts with their output, conflicts,
    /// held packages, privilege changes (new setuid/setgid files, changed modes
    /// and owners) and the checks marked `rehearse = true`, then unmounts and
    /// deletes the overlay. The root is never changed. Where an overlay is
    /// impossible it uses the package manager's simulation and says why
    /// (`"mode": "simulation"`, `"mode_reason"`).
    #[command(
        after_help = "Example: patchbay-agent rehearse --job-key deploy-42/host-7/rehearse openssl=3.0.15-1~deb12u1"
    )]
    Rehearse {
        /// Key of the rehearsal (names its logs).
        #[arg(long)]
        job_key: String,
        /// Packages with exact versions: PKG=VERSION.
        #[arg(required = true, value_name = "PKG=VERSION", value_parser = parse_wanted)]
        packages: Vec<Wanted>,
        /// Do not refresh repository metadata first.
        #[arg(long)]
        no_refresh: bool,
        /// Package manager (detected from the root by default).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
    },
    /// Verify a snapshot: run `hooks.snapshot_verify` of the local
    /// configuration with PATCHBAY_SNAPSHOT_ID and an empty scratch directory
    /// (PATCHBAY_SCRATCH, deleted afterwards); the hook restores the snapshot
    /// there and checks it. Prints one JSON object; exit 0 = verified, 1 = not.
    #[command(
        name = "verify-snapshot",
        after_help = "Example: patchbay-agent verify-snapshot --job-key try-1 --snapshot /var/backups/pb/DEP-1-h1.tar"
    )]
    VerifySnapshot {
        /// Key of the verification (names it in the hook's environment).
        #[arg(long)]
        job_key: String,
        /// The snapshot's identity, as `hooks.snapshot` printed it.
        #[arg(long)]
        snapshot: String,
    },
    /// Run the health checks of the local configuration (all, or one by name).
    Check {
        /// Run only this check.
        #[arg(long)]
        name: Option<String>,
    },
    /// List available updates with versions and origin (repository, pocket).
    Updates {
        /// Do not refresh repository metadata first.
        #[arg(long)]
        no_refresh: bool,
        /// Package manager (detected from the root by default).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
    },
    /// Record interrupted jobs and check (and repair) the package database.
    Recover {
        /// Package manager (detected from the root by default).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
    },
}

fn parse_wanted(s: &str) -> Result<Wanted, String> {
    crate::exec::parse::wanted(s)
}

impl Args {
    /// Agent options from flags (check-in mode).
    pub fn options(&self) -> AgentOptions {
        AgentOptions {
            server: self.server.clone().unwrap_or_default(),
            enroll_token: self.enroll_token.clone(),
            state_dir: self.state_dir.clone(),
            root: self.root.clone(),
            interval: self.interval,
            pending_updates: !self.no_pending_updates,
            host_network: self.host_network,
            timeout: Duration::from_secs(120),
            ca_cert: self.ca_cert.clone(),
            re_enroll: self.re_enroll,
            config: Config::default(),
            wait_secs: self.long_poll.unwrap_or(if self.once { 0 } else { 25 }),
        }
    }
}

/// The binary's entry point; returns the process exit code.
pub fn main_entry(args: Args) -> i32 {
    match &args.command {
        Some(Command::VerifySnapshot { job_key, snapshot }) => {
            verify_snapshot_command(&args, job_key, snapshot)
        }
        Some(cmd) => local_command(&args, cmd),
        None => checkin_mode(&args),
    }
}

fn checkin_mode(args: &Args) -> i32 {
    let mut opts = args.options();
    match Config::load(args.config.as_deref()) {
        Ok((config, _)) => opts.config = config,
        Err(e) => {
            eprintln!("patchbay-agent: {e:#}");
            return 1;
        }
    }
    if args.once {
        match checkin_once(&opts) {
            Ok(o) => {
                println!(
                    "checked in as {}: sent {} inventory ({} packages, {} rows written); results sent {}, acknowledged {}; jobs received {}, run {}; results waiting {}",
                    o.asset_name,
                    o.sent,
                    o.packages,
                    o.rows_written,
                    o.results_sent,
                    o.acked,
                    o.jobs_received,
                    o.jobs_run,
                    o.unacked
                );
                for r in &o.key_refusals {
                    println!("refused a server key announcement: {r}");
                }
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

/// `verify-snapshot`: prints the verification's JSON; 0 verified, 1 not, 3
/// when the configuration cannot be read.
fn verify_snapshot_command(args: &Args, job_key: &str, snapshot: &str) -> i32 {
    let config = match Config::load(args.config.as_deref()) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("patchbay-agent verify-snapshot: {e:#}");
            return 3;
        }
    };
    let v = crate::exec::verify_snapshot::verify(
        &config,
        &args.state_dir,
        &args.root,
        job_key,
        snapshot,
    );
    println!("{}", serde_json::to_string(&v).unwrap_or_default());
    if v.verified { 0 } else { 1 }
}

/// Runs a local command and prints its JSON; returns the exit code.
fn local_command(args: &Args, cmd: &Command) -> i32 {
    let name = match cmd {
        Command::Apply { .. } => "apply",
        Command::Rollback { .. } => "rollback",
        Command::Check { .. } => "check",
        Command::VerifySnapshot { .. } => "verify-snapshot",
        Command::Rehearse { .. } => "rehearse",
        Command::Updates { .. } => "updates",
        Command::Recover { .. } => "recover",
    };
    let printed = run_local(args, cmd).and_then(|out| {
        let line = out.to_json()?;
        Ok((line, out.ok()))
    });
    match printed {
        Ok((line, ok)) => {
            println!("{line}");
            if ok { 0 } else { 1 }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("patchbay-agent {name}: {msg}");
            let out = JobOutput::error(name, msg);
            // Strings only: encoding cannot fail.
            println!("{}", out.to_json().unwrap_or_default());
            3
        }
    }
}

fn run_local(args: &Args, cmd: &Command) -> anyhow::Result<JobOutput> {
    let (config, _) = Config::load(args.config.as_deref())?;
    let env = |backend: Option<BackendKind>, refresh: bool| JobEnv {
        state_dir: args.state_dir.clone(),
        root: args.root.clone(),
        backend,
        config: config.clone(),
        refresh,
    };
    match cmd {
        Command::Apply {
            job_key,
            packages,
            no_refresh,
            backend,
        } => job::apply(&env(*backend, !no_refresh), job_key, packages),
        Command::Rollback {
            job_key,
            method,
            no_refresh,
            backend,
        } => job::rollback(&env(*backend, !no_refresh), job_key, *method),
        Command::Rehearse {
            job_key,
            packages,
            no_refresh,
            backend,
        } => {
            crate::exec::rehearse::rehearse(&env(*backend, !no_refresh), job_key, packages, "local")
        }
        Command::Check { name } => job::check(&config, name.as_deref()),
        Command::VerifySnapshot { .. } => {
            anyhow::bail!("verify-snapshot prints its own result (main_entry runs it)")
        }
        Command::Updates {
            no_refresh,
            backend,
        } => job::updates(&env(*backend, !no_refresh)),
        Command::Recover { backend } => job::recover(&env(*backend, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_required_only_without_a_subcommand() {
        let parse = |a: &[&str]| Args::try_parse_from(a.iter().copied());
        // Only meaningful when the environment does not supply a server.
        if std::env::var_os("PATCHBAY_SERVER").is_none() {
            assert!(parse(&["patchbay-agent", "--once"]).is_err());
        }
        let a = parse(&[
            "patchbay-agent",
            "--server",
            "http://x",
            "--once",
            "--root",
            "/r",
        ])
        .unwrap();
        assert!(a.command.is_none() && a.once);
        let a = parse(&[
            "patchbay-agent",
            "apply",
            "--root",
            "/r",
            "--state-dir",
            "/s",
            "--job-key",
            "k",
            "a=1",
            "b=2",
        ])
        .unwrap();
        assert_eq!(a.root, PathBuf::from("/r"));
        assert_eq!(a.state_dir, PathBuf::from("/s"));
        match a.command {
            Some(Command::Apply {
                job_key, packages, ..
            }) => {
                assert_eq!(job_key, "k");
                assert_eq!(packages.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["patchbay-agent", "apply", "--job-key", "k"]).is_err(),
            "packages required"
        );
        assert!(
            parse(&["patchbay-agent", "apply", "--job-key", "k", "pkg"]).is_err(),
            "PKG=VER only"
        );
        let a = parse(&[
            "patchbay-agent",
            "--config",
            "/c.toml",
            "check",
            "--name",
            "web",
        ])
        .unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/c.toml")));
        assert!(
            parse(&[
                "patchbay-agent",
                "rollback",
                "--job-key",
                "k",
                "--method",
                "snapshot"
            ])
            .is_ok()
        );
    }

    #[test]
    fn long_poll_defaults_to_25_in_the_loop_and_off_with_once() {
        let parse = |a: &[&str]| Args::try_parse_from(a.iter().copied()).unwrap();
        assert_eq!(
            parse(&["a", "--server", "http://x"]).options().wait_secs,
            25
        );
        assert_eq!(
            parse(&["a", "--server", "http://x", "--once"])
                .options()
                .wait_secs,
            0
        );
        let a = parse(&["a", "--server", "http://x", "--once", "--long-poll", "5"]);
        assert_eq!(a.options().wait_secs, 5);
        let a = parse(&["a", "--server", "http://x", "--long-poll", "0"]);
        assert_eq!(a.options().wait_secs, 0);
        assert!(
            !a.options().config.jobs.enabled,
            "jobs off until the config says"
        );
    }

    #[test]
    fn interval_flag() {
        let parse = |a: &[&str]| Args::try_parse_from(a.iter().copied());
        // The grammar is `patchbay_core::when::interval`'s; this checks the wiring.
        let a = parse(&["patchbay-agent", "--server", "http://s", "--interval", "1d"]).unwrap();
        assert_eq!(a.interval, Duration::from_secs(86400));
        let e = parse(&["patchbay-agent", "--server", "http://s", "--interval", "5y"]).unwrap_err();
        assert!(e.to_string().contains("use s, m, h or d"), "{e}");
    }
}

/// Whether log lines on stderr may carry ANSI colours: only on a terminal,
/// and never when `NO_COLOR` is set to a non-empty value (no-color.org).
/// Shared by both binaries (`patchbay` too).
pub fn log_colors(no_color: Option<&std::ffi::OsStr>, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod color_tests {
    use super::log_colors;
    use std::ffi::OsStr;

    #[test]
    fn no_color_and_pipes_turn_colours_off() {
        assert!(log_colors(None, true));
        assert!(!log_colors(Some(OsStr::new("1")), true));
        assert!(
            log_colors(Some(OsStr::new("")), true),
            "an empty NO_COLOR is unset"
        );
        assert!(!log_colors(None, false), "not on a pipe or a file");
    }
}
