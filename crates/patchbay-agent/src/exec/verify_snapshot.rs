//! Backup verification (issue 18, item 6; docs/backup-verification.md,
//! ADR 0020): the agent runs its own `hooks.snapshot_verify` — an argv from
//! the host's configuration, never from the server — with the identity of a
//! snapshot an apply's `hooks.snapshot` took and a fresh scratch directory,
//! in environment variables:
//!
//! | variable | value |
//! |---|---|
//! | `PATCHBAY_SNAPSHOT_ID` | the snapshot's identity (the last line `hooks.snapshot` printed) |
//! | `PATCHBAY_SCRATCH` | an empty directory under the state directory (`STATE/verify-snapshot/scratch`), deleted afterwards |
//! | `PATCHBAY_ROOT` | the root the agent manages |
//! | `PATCHBAY_JOB_KEY` | the job's key |
//!
//! The hook restores the snapshot into the scratch directory and checks it;
//! exit 0 within `hooks.timeout_secs` = verified. Its output (stdout then
//! stderr) is kept as an excerpt of at most [`EXCERPT`] bytes (its end). The
//! hook gets no secret of the agent: its environment is the agent's minus
//! nothing it did not already have, plus the four variables above, and the
//! agent logs only the verdict, never the output.

use super::config::Config;
use crate::collect::run_command;
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The excerpt's limit, bytes.
pub const EXCERPT: usize = 2000;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The job's key.
    pub job_key: String,
    /// The snapshot verified.
    pub snapshot: String,
    /// Exit 0 within the limit.
    pub verified: bool,
    /// The hook's exit code (none: killed, timed out or not started).
    pub exit: Option<i32>,
    /// Why it could not run, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of its output (stdout, then stderr).
    pub excerpt: String,
    /// Wall time.
    pub duration_ms: u64,
    /// Whether the scratch directory was deleted afterwards.
    pub scratch_cleaned: bool,
}

/// The last `n` bytes of `s`, on a character boundary.
fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("…{}", &s[i..])
}

/// Whether this agent's own journal records `snapshot` as the identity its
/// `hooks.snapshot` printed in a pre-flight step that succeeded. A
/// server-sent `verify_snapshot` job runs only for such a snapshot: the
/// identity is a claim of the server's, proven against what this host did
/// (`patchbay-agent verify-snapshot`, run by a person on the host, may
/// name any).
pub fn taken_here(state_dir: &Path, snapshot: &str) -> anyhow::Result<bool> {
    let (journal, _) = super::journal::Journal::open(state_dir)?;
    Ok(journal.records().iter().any(|r| {
        r.step.as_deref() == Some("preflight.snapshot")
            && r.ok == Some(true)
            && r.data.get("id").and_then(|v| v.as_str()) == Some(snapshot)
    }))
}

/// Runs `hooks.snapshot_verify` for `snapshot`.
pub fn verify(
    config: &Config,
    state_dir: &Path,
    root: &Path,
    job_key: &str,
    snapshot: &str,
) -> Verification {
    let start = Instant::now();
    let mut v = Verification {
        job_key: job_key.to_owned(),
        snapshot: snapshot.to_owned(),
        verified: false,
        exit: None,
        error: None,
        excerpt: String::new(),
        duration_ms: 0,
        scratch_cleaned: false,
    };
    let Some((prog, args)) = config
        .hooks
        .snapshot_verify
        .as_deref()
        .and_then(|h| h.split_first())
    else {
        v.error = Some("no hooks.snapshot_verify in this agent's configuration".into());
        return v;
    };
    let base = state_dir.join("verify-snapshot");
    let scratch = base.join("scratch");
    // A leftover of an interrupted verification goes first.
    let _ = std::fs::remove_dir_all(&scratch);
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        v.error = Some(format!("creating {}: {e}", scratch.display()));
        return v;
    }
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("PATCHBAY_SNAPSHOT_ID", snapshot)
        .env("PATCHBAY_SCRATCH", &scratch)
        .env("PATCHBAY_ROOT", root)
        .env("PATCHBAY_JOB_KEY", job_key);
    match run_command(&mut cmd, Duration::from_secs(config.hooks.timeout_secs)) {
        Ok(out) => {
            v.exit = out.status.code();
            v.verified = out.status.success();
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.trim().is_empty() {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&err);
            }
            v.excerpt = tail(text.trim_end(), EXCERPT);
            if out.status.code().is_none() {
                v.error = Some(format!("the hook ended with {}", out.status));
            }
        }
        Err(e) => v.error = Some(e.to_string()),
    }
    v.scratch_cleaned = std::fs::remove_dir_all(&base).is_ok();
    v.duration_ms = start.elapsed().as_millis() as u64;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abc", 5), "abc");
        let t = tail("ééééé", 3);
        assert!(t.ends_with('é') && t.starts_with('…'), "{t}");
    }
}
