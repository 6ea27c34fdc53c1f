//! `patchbay deploy preview|create|list|show|start|pause|resume|abort|rollback|approve|reject`:
//! ring-by-ring deployments of exact package versions over the REST API
//! (`/api/v1/deployments…`).

use crate::Format;
use crate::conn::enc;
use crate::output::{json, table};
use anyhow::bail;
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_core::job::PackagePin;
use patchbay_core::rollout::{Job, Ring, Rollout};
use patchbay_proto::api::{
    DeployApprovalIn, DeploymentDetail, DeploymentPreview, DeploymentSpec, RehearsalsOut, RingIn,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of start, pause, resume, abort and rollback.
#[derive(Debug, Serialize, Deserialize)]
struct CommentIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

const RULES_HELP: &str = "\
Rules:
- Rings run in order. A ring starts only after the previous one passed: its gates \
(success rate at least the threshold, health checks no worse than before and than \
unpatched hosts, budget kept), its soak time, and its approval when it needs one.
- Hard error-budget cap: a job is leased only while the ring's failures plus its \
jobs in flight stay within budget+1, so in-flight jobs can never overshoot the \
budget (budget 0 means one host at a time). One failure more than the budget halts \
the whole deployment: nothing new is leased in any ring, and the ring's rollback \
policy runs (failed-hosts by default).
- A failure is a failed pre-flight, install or post-check, or no report within \
--job-timeout of the lease. A host offline before its job is leased is skipped: \
reported, not counted against the budget.
- No job starts after the window (--window from the start) has closed.
- Four eyes: a ring is approved or rejected by an approver or admin who neither \
created nor started the deployment; rejecting aborts it.
- Jobs are signed by the server, name exact versions and carry an idempotency key: \
each agent runs a job at most once, and refuses one it cannot verify.";

const RING_HELP: &str = "\
--ring NAME[:KEY=VALUE,…] (repeatable, in order; default: one ring `all`, one host \
at a time). Keys:
  assets=A+B       these hosts (canaries pinned by name)
  size=N|N%        or this many of the remaining targets (chosen by a stable hash; \
the last ring takes the rest)
  max=N|N%         jobs in flight at most (default 1)
  budget=N|N%      failures tolerated (default 0); one more halts the deployment
  threshold=F      share of jobs that must succeed, 0-1 (default 0.95)
  soak=DURATION    wait after the ring's last job before the next ring (30m, 24h, 1h30m)
  approval         a human must approve the ring (four eyes)
  rollback=failed-hosts|ring|none   what a failed ring rolls back (default failed-hosts)
  rehearse         every host rehearses its job first, in an overlay of its own root; no
                   apply before all reported, and a host whose rehearsal fails never gets
                   its apply (its job fails, counted against the budget)
  verify=N|N%      once the ring's jobs ended, N (or N%) of its hosts whose snapshot was
                   taken verify it with their own hooks.snapshot_verify (restore to
                   scratch, check); deterministic sample; default none

Example:
  patchbay deploy create --package openssl=3.0.15-1~deb12u1 --group web-prod \\
    --ring canary:assets=web-1 --ring pilot:size=10%,budget=1,soak=1h,approval \\
    --ring broad:max=20%,budget=2% --check http-ok --window 24h --job-timeout 30m
";

/// What to deploy where, shared by `preview` and `create`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Exact version to install: NAME=VERSION (repeatable).
    #[arg(long = "package", value_name = "NAME=VERSION", num_args = 1.., required_unless_present_any = ["patches", "tier", "converge"])]
    pub packages: Vec<String>,
    /// A patch of the catalog (`patchbay patches`), approved by the policy:
    /// each asset with an open finding it fixes gets the finding's package at
    /// the patch's version (repeatable).
    #[arg(long = "patch", value_name = "PB-…", num_args = 1..)]
    pub patches: Vec<String>,
    /// Every approved patch of the catalog whose most urgent finding is of
    /// this tier or a more urgent one (P0…P4).
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
    /// Converge this policy group to its modal baseline (`patchbay drift
    /// GROUP`): each member's older packages pinned to the baseline's
    /// versions; newer, missing and extra packages are never touched.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["patches", "tier"])]
    pub converge: Option<String>,
    /// Target asset (repeatable; with neither --asset nor --group: every managed
    /// asset that has one of the packages installed).
    #[arg(long = "asset", value_name = "ASSET", num_args = 1..)]
    pub assets: Vec<String>,
    /// Target policy group (repeatable).
    #[arg(long = "group", value_name = "GROUP", num_args = 1..)]
    pub groups: Vec<String>,
    /// A ring, NAME[:KEY=VALUE,…], in order (repeatable; see the keys below).
    #[arg(long = "ring", value_name = "SPEC", num_args = 1..)]
    pub rings: Vec<String>,
    /// Health check run before and after each job: a name in the agents'
    /// agent.toml (repeatable).
    #[arg(long = "check", value_name = "NAME", num_args = 1..)]
    pub checks: Vec<String>,
    /// Jobs may start for this long after the deployment starts (default 24h).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// How long an agent has to report a job; silence after that counts as a
    /// failure (default 30m).
    #[arg(long, value_name = "DURATION")]
    pub job_timeout: Option<String>,
    /// How maintenance windows apply: planner (default: hosts covered by
    /// windows run only in their occurrences, to each one's cutoff; others any
    /// time before the deadline), required (hosts no window covers are left
    /// alone) or ignore. Blackouts always apply.
    #[arg(long, value_enum, value_name = "MODE")]
    pub windows: Option<WindowsMode>,
    /// Whether a host that needs a reboot after its job gets one (while its
    /// window is open; its job succeeds once the reboot reports): if-required
    /// (default) or never (the need is noted on the job).
    #[arg(long, value_enum, value_name = "WHEN")]
    pub reboot: Option<RebootMode>,
}

/// `--reboot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RebootMode {
    /// Reboot when the host reports it is required and its window is open.
    IfRequired,
    /// Never reboot.
    Never,
}

impl RebootMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::IfRequired => "if-required",
            Self::Never => "never",
        }
    }
}

/// `--windows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WindowsMode {
    /// Windows where defined, any time elsewhere.
    Planner,
    /// Only hosts with a window.
    Required,
    /// Any time before the deadline.
    Ignore,
}

impl WindowsMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Planner => "planner",
            Self::Required => "required",
            Self::Ignore => "ignore",
        }
    }
}

/// `patchbay deploy …`
#[derive(Debug, Subcommand)]
pub enum DeployCmd {
    /// What a deployment would do, changing nothing: each host's ring and
    /// package versions (installed → new), the targets left alone and why, and
    /// the rules as they will apply.
    #[command(after_long_help = format!("{RING_HELP}\n{RULES_HELP}"))]
    Preview {
        /// What, where, how.
        #[command(flatten)]
        spec: SpecArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Create a deployment (a draft: nothing runs until `deploy start`).
    /// Prints its id and its rings and hosts.
    #[command(after_long_help = format!("{RING_HELP}\n{RULES_HELP}"))]
    Create {
        /// What, where, how.
        #[command(flatten)]
        spec: SpecArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List deployments.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A deployment's state and reason, each ring's state and last gate
    /// verdict, and each host's job: state, error, versions before → after.
    #[command(after_long_help = RULES_HELP)]
    Show {
        /// The deployment, DEP-….
        id: String,
        /// Output format (json: the deployment, its rollout and the agents'
        /// results as the server holds them).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Start a draft deployment: its first ring runs in its window.
    #[command(after_long_help = RULES_HELP)]
    Start(ActionArgs),
    /// Pause: nothing new is leased; jobs in flight finish and report.
    Pause(ActionArgs),
    /// Resume a paused deployment.
    Resume(ActionArgs),
    /// Abort: nothing new is leased, pending jobs are skipped; nothing is
    /// rolled back.
    Abort(RequiredCommentArgs),
    /// Halt and roll back: nothing new is leased and each ring's rollback
    /// policy runs on the hosts whose jobs ran.
    Rollback(RequiredCommentArgs),
    /// Approve a ring waiting for approval (approver or admin; four eyes: not
    /// the deployment's creator or starter).
    Approve(ApprovalArgs),
    /// Reject a ring waiting for approval, which aborts the deployment
    /// (approver or admin; not the creator or starter).
    Reject(ApprovalArgs),
    /// Rehearse the deployment now on each of its hosts: the agent runs the
    /// exact transaction in a throwaway overlay of the host's own root
    /// (package scripts run, services not started) and reports failing
    /// scripts, conflicts, privilege changes and the version diff; the host
    /// is never changed. Waits for the results (`--wait`), then shows them.
    #[command(
        after_long_help = "Example:\n  patchbay deploy rehearse DEP-2026-12-004 --wait 10m\n\nEach row: host, run (gate: a ring's own rehearsal; N: on demand), status (pending, passed, failed), mode (overlay, or simulation when an overlay was impossible: then no script ran, and why is shown), and what was found. `--no-run` only shows the rehearsals so far."
    )]
    Rehearse {
        /// The deployment, DEP-….
        id: String,
        /// How long to wait for every host's result (0: do not wait).
        #[arg(long, default_value = "5m", value_parser = parse_wait)]
        wait: std::time::Duration,
        /// Do not start a rehearsal; show the ones so far.
        #[arg(long)]
        no_run: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The expected impact per owner: per asset its window (local and UTC),
    /// the packages that change, which services restart (known only from a
    /// rehearsal in an overlay), whether a reboot is needed and why, and the
    /// expected interruption (an estimate, with its basis); then the notices
    /// and summaries sent to the owners so far.
    #[command(
        after_long_help = "Example:\n  patchbay deploy impact DEP-2026-12-004\n  patchbay deploy impact DEP-2026-12-004 --json\n\nOwners are the assets' `owner` attribute; hosts without one are listed as (unowned). Each owner's notice is emailed to the contact of the same name (`unowned` for hosts without owner) and sent to webhooks as `deployment.impact_notice`, a lead time before the owner's first window (`patchbay serve --impact-lead`, default 24h); a summary follows the deployment's end (`deployment.impact_summary`). docs/impact-notices.md."
    )]
    Impact {
        /// The deployment, DEP-….
        id: String,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// The deployment's test report: each ring's gate verdicts, each host's
    /// rehearsal, apply, privilege check after the apply, re-test of the
    /// targeted CVEs and backup verifications, as test cases.
    #[command(
        name = "test-report",
        after_long_help = "Examples:\n  patchbay deploy test-report DEP-2026-12-004 --format junit -o dep-004.xml\n  patchbay deploy test-report DEP-2026-12-004 --format html -o dep-004.html\n\nJUnit XML: one testsuite per kind of check (gates, rehearsal, apply, privilege, retest, backup), one testcase per host (or ring x gate); a failure carries its message and the failing tool's output, a skipped case did not run. docs/test-results.md."
    )]
    TestReport {
        /// The deployment, DEP-….
        id: String,
        /// junit (JUnit XML), html or json.
        #[arg(long, value_enum, default_value_t = TestReportFormat::Json)]
        format: TestReportFormat,
        /// Write here instead of standard output.
        #[arg(short = 'o', long = "out")]
        out: Option<std::path::PathBuf>,
    },
}

/// The test report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestReportFormat {
    /// JUnit XML.
    Junit,
    /// A printable HTML page.
    Html,
    /// JSON.
    Json,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let d = patchbay_core::when::span("--wait", s).map_err(|e| e.to_string())?;
    Ok(std::time::Duration::from_secs(d.as_secs().max(0) as u64))
}

/// `start`, `pause`, `resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ActionArgs {
    /// The deployment, DEP-….
    pub id: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub comment: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `abort`, `rollback`.
#[derive(Debug, Clone, clap::Args)]
pub struct RequiredCommentArgs {
    /// The deployment, DEP-….
    pub id: String,
    /// Why (required; recorded in the audit log).
    #[arg(long)]
    pub comment: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `approve`, `reject`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApprovalArgs {
    /// The deployment, DEP-….
    pub id: String,
    /// The ring (default: the ring waiting for approval).
    #[arg(long)]
    pub ring: Option<String>,
    /// Why (required; recorded in the audit log).
    #[arg(long)]
    pub comment: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Parses `NAME=VERSION`.
pub fn parse_package(s: &str) -> anyhow::Result<PackagePin> {
    let Some((name, version)) = s.split_once('=') else {
        bail!("--package {s}: expected NAME=VERSION");
    };
    let (name, version) = (name.trim(), version.trim());
    if name.is_empty() {
        bail!("--package {s}: the package name is empty");
    }
    if version.is_empty() {
        bail!("--package {s}: the version is empty (exact versions only)");
    }
    Ok(PackagePin {
        name: name.to_string(),
        version: version.to_string(),
    })
}

/// `N` or `N%` (a percentage may have decimals, `2.5%`, and is at most 100),
/// at least `min` (for a percentage: above 0 when `min` is positive).
fn count_or_percent(key: &str, v: &str, min: u64) -> Result<String, String> {
    use patchbay_core::rollout::{Share, ShareError};
    match Share::parse(v) {
        Err(ShareError::Malformed) => Err(format!("{key} must be N or N%")),
        Err(ShareError::Over100) => Err(format!("{key} must be at most 100%")),
        Ok(Share::Percent(x)) if min > 0 && x == 0.0 => Err(format!("{key} must be more than 0%")),
        Ok(Share::Count(n)) if n < min => Err(format!("{key} must be at least {min}")),
        Ok(_) => Ok(v.to_string()),
    }
}

/// A duration as the server reads it (`30m`, `4h`, `1h30m`, `PT4H`), not negative.
/// Checked by `patchbay_core::when::span`, the server's own reader.
fn duration(key: &str, v: &str) -> Result<String, String> {
    patchbay_core::when::span(key, v)
        .map_err(|_| format!("{key} must be a duration such as 30m, 4h or 1h30m"))?;
    Ok(v.trim().to_string())
}

/// Parses a `--ring` spec, `NAME[:KEY=VALUE,…]` (keys in [`RING_HELP`]).
/// Errors name the spec and the bad part:
/// `--ring ring0:size=ten: size must be N or N%`.
pub fn parse_ring(spec: &str) -> anyhow::Result<RingIn> {
    parse_ring_parts(spec)
        .map_err(|e| anyhow::anyhow!("--ring {}: {e}", crate::output::clean(spec)))
}

fn parse_ring_parts(spec: &str) -> Result<RingIn, String> {
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (n.trim(), Some(r)),
        None => (spec.trim(), None),
    };
    if name.is_empty() {
        return Err("the ring name is empty (NAME[:KEY=VALUE,…])".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!(
            "ring name {:?}: {c:?} is not allowed (letters, digits, - _ .)",
            crate::output::clean(name)
        ));
    }
    let mut ring = RingIn {
        name: name.to_string(),
        assets: vec![],
        size: None,
        max_concurrent: None,
        error_budget: None,
        success_threshold: None,
        soak: None,
        approval: false,
        stands_for: None,
        drift_tolerance: None,
        rollback: None,
        require_rehearsal: false,
        verify_snapshots: None,
    };
    let Some(rest) = rest else {
        return Ok(ring);
    };
    if rest.trim().is_empty() {
        return Err("nothing after ':' (KEY=VALUE,… or drop the ':')".into());
    }
    let mut seen: Vec<&str> = vec![];
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("an empty KEY=VALUE (two commas in a row?)".into());
        }
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (part, None),
        };
        if seen.contains(&key) {
            return Err(format!("{key} given twice"));
        }
        let need = || value.ok_or_else(|| format!("{key} needs a value ({key}=…)"));
        match key {
            "assets" => {
                let v = need()?;
                let assets: Vec<String> = v.split('+').map(|a| a.trim().to_string()).collect();
                if assets.iter().any(String::is_empty) {
                    return Err("assets must be A or A+B+… (no empty names)".into());
                }
                ring.assets = assets;
            }
            "size" => ring.size = Some(count_or_percent(key, need()?, 1)?),
            "max" => ring.max_concurrent = Some(count_or_percent(key, need()?, 1)?),
            "budget" => ring.error_budget = Some(count_or_percent(key, need()?, 0)?),
            "threshold" => {
                let v = need()?;
                let t: f64 = v
                    .parse()
                    .ok()
                    .filter(|t: &f64| (0.0..=1.0).contains(t))
                    .ok_or_else(|| {
                        "threshold must be a number from 0 to 1, e.g. 0.95".to_string()
                    })?;
                ring.success_threshold = Some(t);
            }
            "soak" => ring.soak = Some(duration(key, need()?)?),
            "approval" => match value {
                None | Some("true" | "yes") => ring.approval = true,
                Some("false" | "no") => ring.approval = false,
                Some(_) => return Err("approval is a flag (approval, or approval=false)".into()),
            },
            "rehearse" => match value {
                None | Some("true" | "yes") => ring.require_rehearsal = true,
                Some("false" | "no") => ring.require_rehearsal = false,
                Some(_) => return Err("rehearse is a flag (rehearse, or rehearse=false)".into()),
            },
            "rollback" => {
                let v = need()?;
                if !["failed-hosts", "ring", "none"].contains(&v) {
                    return Err("rollback must be failed-hosts, ring or none".into());
                }
                ring.rollback = Some(v.to_string());
            }
            "verify" => ring.verify_snapshots = Some(count_or_percent(key, need()?, 0)?),
            "stands-for" => ring.stands_for = Some(need()?.to_string()),
            "tolerance" => {
                let v = need()?;
                ring.drift_tolerance = Some(v.parse().map_err(|_| {
                    format!(
                        "tolerance must be a number of packages, not {:?}",
                        crate::output::clean(v)
                    )
                })?);
            }
            other => {
                return Err(format!(
                    "unknown key {:?} (known: assets, size, max, budget, threshold, soak, \
                     approval, rehearse, rollback, verify, stands-for, tolerance)",
                    crate::output::clean(other)
                ));
            }
        }
        seen.push(key);
    }
    if !ring.assets.is_empty() && ring.size.is_some() {
        return Err(
            "assets and size exclude each other (pinned hosts, or a share of the rest)".into(),
        );
    }
    Ok(ring)
}

impl SpecArgs {
    /// The request body, with every flag checked.
    pub fn spec(&self) -> anyhow::Result<DeploymentSpec> {
        let packages = self
            .packages
            .iter()
            .map(|p| parse_package(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, p) in packages.iter().enumerate() {
            if packages[..i].iter().any(|q| q.name == p.name) {
                bail!("--package {}: given twice", p.name);
            }
        }
        let rings = self
            .rings
            .iter()
            .map(|r| parse_ring(r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, r) in rings.iter().enumerate() {
            if rings[..i].iter().any(|q| q.name == r.name) {
                bail!("--ring {}: a ring of that name is given twice", r.name);
            }
        }
        let window = self
            .window
            .as_deref()
            .map(|w| duration("window", w))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--window: {e}"))?;
        let job_timeout = self
            .job_timeout
            .as_deref()
            .map(|w| duration("job timeout", w))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--job-timeout: {e}"))?;
        if let Some(c) = self.checks.iter().find(|c| c.trim().is_empty()) {
            bail!("--check {c:?}: empty check name");
        }
        Ok(DeploymentSpec {
            packages,
            patches: self.patches.clone(),
            tier: self.tier.clone(),
            assets: self.assets.clone(),
            groups: self.groups.clone(),
            rings,
            checks: self.checks.clone(),
            window,
            job_timeout,
            windows: self.windows.map(|m| m.as_str().to_string()),
            reboot: self.reboot.map(|m| m.as_str().to_string()),
            converge: self.converge.clone(),
        })
    }
}

/// A serde enum's wire name (`running`, `awaiting_approval`, `pass`).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Renders a preview: hosts, skipped targets, rules.
fn preview_text(p: &DeploymentPreview) -> String {
    let mut out = String::new();
    if p.hosts.is_empty() {
        out.push_str("No host would be changed.\n");
    } else {
        let rows: Vec<Vec<String>> = p
            .hosts
            .iter()
            .flat_map(|h| {
                h.packages.iter().map(move |pk| {
                    vec![
                        h.asset.clone(),
                        h.ring.clone(),
                        pk.name.clone(),
                        pk.from.clone().unwrap_or_else(|| "(not installed)".into()),
                        pk.to.clone(),
                    ]
                })
            })
            .collect();
        let windows: Vec<Vec<String>> = p
            .hosts
            .iter()
            .filter(|h| !h.window.is_empty())
            .map(|h| vec![h.asset.clone(), h.window.clone()])
            .collect();
        let hosts = p.hosts.len();
        out.push_str(&format!(
            "{hosts} host{} would be changed:\n",
            if hosts == 1 { "" } else { "s" }
        ));
        out.push_str(&table(&["HOST", "RING", "PACKAGE", "FROM", "TO"], &rows));
        if !windows.is_empty() {
            out.push_str("\nWhen each host's job may start:\n");
            out.push_str(&table(&["HOST", "WINDOW"], &windows));
        }
    }
    if !p.skipped.is_empty() {
        out.push_str(&format!("\nSkipped ({}):\n", p.skipped.len()));
        let rows: Vec<Vec<String>> = p
            .skipped
            .iter()
            .map(|s| vec![s.asset.clone(), s.reason.clone()])
            .collect();
        out.push_str(&table(&["ASSET", "REASON"], &rows));
    }
    if !p.warnings.is_empty() {
        out.push_str(&format!(
            "\nWarnings: known failure signatures ({}):\n",
            p.warnings.len()
        ));
        for w in &p.warnings {
            out.push_str(&format!("! {}\n", crate::output::clean_text(w)));
        }
    }
    if !p.rules.is_empty() {
        out.push_str("\nRules:\n");
        for r in &p.rules {
            out.push_str(&format!("- {}\n", crate::output::clean(r)));
        }
    }
    out
}

/// One line of a ring's rules.
fn ring_rules(r: &Ring) -> String {
    let s = &r.spec;
    let mut parts = vec![
        format!("max {} in flight", s.max_concurrent),
        format!("budget {}", s.error_budget),
        format!("threshold {}", s.success_threshold),
    ];
    if !s.soak.is_zero() {
        parts.push(format!("soak {:#}", s.soak));
    }
    if s.approval {
        parts.push("approval".into());
    }
    parts.push(format!("rollback {}", name(&s.rollback)));
    parts.join(", ")
}

/// Renders the id and the rings/hosts summary of a new deployment.
fn created_text(d: &DeploymentDetail) -> String {
    let mut out = format!(
        "created {} ({})\n",
        crate::output::clean(&d.deployment.id),
        crate::output::clean(&d.deployment.status)
    );
    match &d.rollout {
        None => out.push_str(&format!("{} assets\n", d.deployment.assets.len())),
        Some(r) => {
            let rows: Vec<Vec<String>> = r
                .rings
                .iter()
                .map(|ring| {
                    vec![
                        ring.spec.name.clone(),
                        ring.jobs.len().to_string(),
                        ring.jobs
                            .iter()
                            .map(|j| j.spec.host.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                        ring_rules(ring),
                    ]
                })
                .collect();
            out.push_str(&table(&["RING", "HOSTS", "NAMES", "RULES"], &rows));
        }
    }
    out.push_str(&format!(
        "start it with: patchbay deploy start {}\n",
        crate::output::clean(&d.deployment.id)
    ));
    out
}

/// The agent's last result for `job`: its `JobResult` (possibly wrapped as
/// `{"result": …}`), matched by idempotency key.
fn result_for<'a>(results: &'a [Value], job: &Job) -> Option<&'a Value> {
    results
        .iter()
        .rev()
        .map(|v| match v.get("result") {
            Some(r) if r.is_object() => r,
            _ => v,
        })
        .find(|r| r.get("key").and_then(Value::as_str) == Some(job.spec.key.as_str()))
}

/// `name before→after` for each package a result changed.
fn versions(result: Option<&Value>, which: &str) -> String {
    let Some(changed) = result
        .and_then(|r| r.get("changed"))
        .and_then(Value::as_array)
    else {
        return String::new();
    };
    changed
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let v = c.get(which).and_then(Value::as_str).unwrap_or("-");
            if changed.len() == 1 {
                v.to_string()
            } else {
                format!("{name}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The job's error, or its note (a reboot required but not done), or the
/// agent's (refusal code, failing step, message).
/// A refusal that arrived after the server had already failed the job (for
/// example a job delivered past its deadline, refused `expired`) is added to
/// the server's error with its code and the agent's message.
fn job_error(job: &Job, result: Option<&Value>) -> String {
    let field = |k: &str| {
        result
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(e) = job.error.as_deref().filter(|e| !e.is_empty()) {
        return match (field("refusal"), field("message")) {
            (Some(code), Some(m)) if !e.contains(code) => format!("{e} (refused: {code}: {m})"),
            (Some(code), None) if !e.contains(code) => format!("{e} (refused: {code})"),
            _ => e.to_string(),
        };
    }
    if let Some(n) = job.note.as_deref().filter(|n| !n.is_empty()) {
        // A job that did not fail but needs attention (a reboot not done).
        return n.to_string();
    }
    let mut parts = vec![];
    if let Some(code) = field("refusal") {
        parts.push(format!("refused: {code}"));
    }
    if let Some(step) = field("step") {
        parts.push(step.to_string());
    }
    if let Some(m) = field("message") {
        parts.push(m.to_string());
    }
    parts.join(": ")
}

/// Renders `deploy show`.
fn detail_text(d: &DeploymentDetail) -> String {
    let dep = &d.deployment;
    let mut out = String::new();
    let (state, reason) = match &d.rollout {
        Some(r) => (name(&r.state), r.reason.clone().unwrap_or_default()),
        None => (dep.status.clone(), String::new()),
    };
    out.push_str(&format!("deployment: {}\n", crate::output::clean(&dep.id)));
    out.push_str(&format!("state:      {}\n", crate::output::clean(&state)));
    if !reason.is_empty() {
        out.push_str(&format!("reason:     {}\n", crate::output::clean(&reason)));
    }
    out.push_str(&format!(
        "created:    {} by {}\n",
        crate::output::clean(&dep.created_at),
        crate::output::clean(&dep.created_by)
    ));
    let Some(r) = &d.rollout else {
        if !dep.reason.is_empty() {
            out.push_str(&format!(
                "why:        {}\n",
                crate::output::clean(&dep.reason)
            ));
        }
        out.push_str(&format!("assets:     {}\n", dep.assets.len()));
        return out;
    };
    if let Some(by) = &r.started_by {
        out.push_str(&format!("started by: {}\n", crate::output::clean(by)));
    }
    for f in &d.fidelity {
        out.push_str(&format!(
            "staging:    ring {} stands for {}: {} package(s) differ (tolerance {}){}\n",
            crate::output::clean(&f.ring),
            crate::output::clean(&f.stands_for),
            f.differing_packages,
            f.tolerance,
            f.note
                .as_deref()
                .map(|n| format!(" — {}", crate::output::clean(n)))
                .unwrap_or_default()
        ));
    }
    out.push_str(&rings_text(r, &d.results));
    if !d.backup_verifications.is_empty() {
        out.push_str("\nbackup verifications:\n");
        for b in &d.backup_verifications {
            let first = b.excerpt.lines().last().unwrap_or("");
            out.push_str(&format!(
                "  {} {} {}: {}{}\n",
                crate::output::clean(&b.ring),
                crate::output::clean(&b.host),
                crate::output::clean(&b.snapshot),
                crate::output::clean(&b.verdict),
                if first.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", crate::output::clean(first))
                }
            ));
        }
    }
    out
}

fn rings_text(r: &Rollout, results: &[Value]) -> String {
    let mut out = String::new();
    for ring in &r.rings {
        out.push('\n');
        out.push_str(&format!(
            "ring {}: {} ({} failed of budget {}, {} in flight; {})\n",
            crate::output::clean(&ring.spec.name),
            name(&ring.state),
            ring.failures(),
            ring.spec.error_budget,
            ring.in_flight(),
            ring_rules(ring)
        ));
        if let Some(g) = ring.gates.last() {
            out.push_str(&format!(
                "  last gate: {} {}: {}\n",
                crate::output::clean(&g.gate),
                name(&g.verdict),
                crate::output::clean(&g.reason)
            ));
        }
        if let Some(by) = &ring.approved_by {
            out.push_str(&format!("  approved by {}\n", crate::output::clean(by)));
        }
        if ring.jobs.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = ring
            .jobs
            .iter()
            .map(|j| {
                let res = result_for(results, j);
                vec![
                    j.spec.host.clone(),
                    name(&j.state),
                    if j.online { "yes" } else { "no" }.to_string(),
                    versions(res, "before"),
                    versions(res, "after"),
                    job_error(j, res),
                ]
            })
            .collect();
        for line in table(
            &["HOST", "JOB", "ONLINE", "BEFORE", "AFTER", "ERROR"],
            &rows,
        )
        .lines()
        {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Prints a deployment after an action: a line, then `show`'s view.
fn after_action(verb: &str, d: &DeploymentDetail, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => json(d),
        Format::Table => {
            println!("{verb} {}", d.deployment.id);
            print!("{}", detail_text(d));
            Ok(())
        }
    }
}

fn action(
    c: &Client,
    id: &str,
    verb: &str,
    comment: Option<String>,
) -> anyhow::Result<DeploymentDetail> {
    Ok(c.send(
        "POST",
        &format!("/api/v1/deployments/{}/{verb}", enc(id)),
        &CommentIn { comment },
    )?)
}

fn approval(
    connect: &dyn Fn() -> anyhow::Result<Client>,
    a: &ApprovalArgs,
    approve: bool,
) -> anyhow::Result<DeploymentDetail> {
    if a.comment.trim().is_empty() {
        bail!("--comment: say why (it is recorded)");
    }
    Ok(connect()?.send(
        "POST",
        &format!("/api/v1/deployments/{}/approvals", enc(&a.id)),
        &DeployApprovalIn {
            ring: a.ring.clone(),
            approve,
            comment: a.comment.clone(),
        },
    )?)
}

fn required(a: &RequiredCommentArgs) -> anyhow::Result<Option<String>> {
    if a.comment.trim().is_empty() {
        bail!("--comment: say why (it is recorded)");
    }
    Ok(Some(a.comment.clone()))
}

/// Runs a `deploy` command. The flags are checked before the server is
/// contacted, so a bad `--ring` or `--package` is reported even offline.
pub fn run(url: &str, token: Option<String>, cmd: DeployCmd) -> anyhow::Result<()> {
    // Connects only once the flags are known to be good.
    let connect = || crate::conn::connect(url, token.clone());
    match cmd {
        DeployCmd::Preview { spec, format } => {
            let body = spec.spec()?;
            let p: DeploymentPreview =
                connect()?.send("POST", "/api/v1/deployments/preview", &body)?;
            match format {
                Format::Json => json(&p),
                Format::Table => {
                    print!("{}", preview_text(&p));
                    Ok(())
                }
            }
        }
        DeployCmd::Create { spec, format } => {
            let body = spec.spec()?;
            let d: DeploymentDetail = connect()?.send("POST", "/api/v1/deployments", &body)?;
            match format {
                Format::Json => json(&d),
                Format::Table => {
                    print!("{}", created_text(&d));
                    Ok(())
                }
            }
        }
        DeployCmd::List { format } => crate::prioritise::deployments(&connect()?, format),
        DeployCmd::Show { id, format } => {
            let d: DeploymentDetail =
                connect()?.get(&format!("/api/v1/deployments/{}", enc(&id)))?;
            match format {
                Format::Json => json(&d),
                Format::Table => {
                    print!("{}", detail_text(&d));
                    Ok(())
                }
            }
        }
        DeployCmd::Start(a) => after_action(
            "started",
            &action(&connect()?, &a.id, "start", a.comment)?,
            a.format,
        ),
        DeployCmd::Pause(a) => after_action(
            "paused",
            &action(&connect()?, &a.id, "pause", a.comment)?,
            a.format,
        ),
        DeployCmd::Resume(a) => after_action(
            "resumed",
            &action(&connect()?, &a.id, "resume", a.comment)?,
            a.format,
        ),
        DeployCmd::Abort(a) => {
            let comment = required(&a)?;
            after_action(
                "aborted",
                &action(&connect()?, &a.id, "abort", comment)?,
                a.format,
            )
        }
        DeployCmd::Rollback(a) => {
            let comment = required(&a)?;
            after_action(
                "rolling back",
                &action(&connect()?, &a.id, "rollback", comment)?,
                a.format,
            )
        }
        DeployCmd::Approve(a) => after_action("approved", &approval(&connect, &a, true)?, a.format),
        DeployCmd::Reject(a) => after_action("rejected", &approval(&connect, &a, false)?, a.format),
        DeployCmd::Impact { id, json: as_json } => {
            let o: patchbay_proto::api::DeploymentImpactOut =
                connect()?.get(&format!("/api/v1/deployments/{}/impact", enc(&id)))?;
            if as_json {
                json(&o)
            } else {
                print!("{}", impact_text(&o));
                Ok(())
            }
        }
        DeployCmd::Rehearse {
            id,
            wait,
            no_run,
            format,
        } => {
            let c = connect()?;
            let path = format!("/api/v1/deployments/{}/rehearsals", enc(&id));
            let mut out: RehearsalsOut = if no_run {
                c.get(&path)?
            } else {
                c.send("POST", &path, &serde_json::json!({}))?
            };
            let run = out.run.map(|n| n.to_string());
            let until = std::time::Instant::now() + wait;
            let pending = |o: &RehearsalsOut| {
                o.rehearsals
                    .iter()
                    .any(|r| Some(&r.run) == run.as_ref() && r.status == "pending")
            };
            while run.is_some() && pending(&out) && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_secs(1));
                out = c.get(&path)?;
                out.run = run.as_deref().and_then(|r| r.parse().ok());
            }
            match format {
                Format::Json => json(&out),
                Format::Table => {
                    print!("{}", rehearsals_text(&out));
                    Ok(())
                }
            }
        }
        DeployCmd::TestReport { id, format, out } => {
            let f = match format {
                TestReportFormat::Junit => "junit",
                TestReportFormat::Html => "html",
                TestReportFormat::Json => "json",
            };
            let body = connect()?.get_text(&format!(
                "/api/v1/deployments/{}/test-report?format={f}",
                enc(&id)
            ))?;
            match out {
                Some(p) => {
                    std::fs::write(&p, body)
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                // XML, HTML or JSON for machines and browsers: exact.
                None => print!("{body}"),
            }
            Ok(())
        }
    }
}

/// The impact per owner as text, then the notices raised.
pub fn impact_text(o: &patchbay_proto::api::DeploymentImpactOut) -> String {
    use crate::output::clean_text as c;
    let mut s = format!(
        "{} ({}): expected impact as of {}\n",
        c(&o.deployment),
        c(&o.status),
        c(&o.computed_at)
    );
    if o.owners.is_empty() {
        s.push_str("no hosts\n");
    }
    for w in &o.owners {
        s.push_str(&format!(
            "\nOwner {}: {} host(s), first window {}, {} reboot(s), ≈{} s interruption (estimate)\n",
            c(&w.owner),
            w.assets.len(),
            c(&w.first_window),
            w.reboots,
            w.interruption_seconds
        ));
        for a in &w.assets {
            let pk: Vec<String> = a
                .packages
                .iter()
                .map(|p| {
                    format!(
                        "{} {} → {}",
                        c(&p.name),
                        c(p.from.as_deref().unwrap_or("(none)")),
                        c(p.to.as_deref().unwrap_or("(removed)"))
                    )
                })
                .collect();
            s.push_str(&format!(
                "  {} (ring {})\n    window:   {} {} – {} ({}; UTC {} – {})\n    packages: {} [{}]\n    services: {}\n    reboot:   {} ({})\n    interruption: ≈{} s (estimate: {})\n",
                c(&a.asset),
                c(&a.ring),
                c(a.window.name.as_deref().unwrap_or("any time")),
                c(&a.window.opens_local),
                c(&a.window.closes_local),
                c(&a.window.zone),
                c(&a.window.opens_utc),
                c(&a.window.closes_utc),
                pk.join(", "),
                c(&a.packages_source),
                if a.services.known {
                    if a.services.names.is_empty() {
                        "none".to_string()
                    } else {
                        c(&a.services.names.join(", "))
                    }
                } else {
                    c(&a.services.source)
                },
                if a.reboot.needed { "yes" } else { "no" },
                c(&a.reboot.source),
                a.interruption.seconds,
                c(&a.interruption.basis),
            ));
        }
    }
    s.push_str("\nNotices:\n");
    if o.notices.is_empty() {
        s.push_str("  none yet\n");
    }
    for n in &o.notices {
        s.push_str(&format!(
            "  {} {} to contact {} at {} ({})\n",
            c(&n.kind),
            c(&n.owner),
            c(&n.contact),
            c(&n.at),
            c(&n.assets.join(", "))
        ));
    }
    s
}

/// The rehearsals as a table, then each failure's findings.
pub fn rehearsals_text(o: &RehearsalsOut) -> String {
    use crate::output::clean_text as c;
    let mut s = String::new();
    if let Some(n) = o.run {
        s.push_str(&format!("{}: rehearsal run {n}\n", c(&o.deployment)));
    }
    if o.rehearsals.is_empty() {
        s.push_str("no rehearsals yet\n");
        return s;
    }
    let rows: Vec<Vec<String>> = o
        .rehearsals
        .iter()
        .map(|r| {
            let mode = r
                .rehearsal
                .as_ref()
                .map_or("-".to_string(), |x| x.mode.as_str().to_string());
            let found = r.rehearsal.as_ref().map_or(String::new(), |x| {
                let mut f = Vec::new();
                if !x.scripts.is_empty() {
                    f.push(format!("{} script(s) failed", x.scripts.len()));
                }
                if !x.conflicts.is_empty() {
                    f.push(format!("{} conflict(s)", x.conflicts.len()));
                }
                if !x.privilege.is_empty() {
                    f.push(format!("{} privilege change(s)", x.privilege.len()));
                }
                if !x.refused.is_empty() {
                    f.push(format!("{} refused change(s)", x.refused.len()));
                }
                f.join(", ")
            });
            vec![
                c(&r.host),
                c(&r.run),
                c(&r.status),
                mode,
                match (&r.step, &r.message) {
                    (Some(st), Some(m)) => c(&format!("{st}: {m}")),
                    (None, Some(m)) => c(m),
                    _ => String::new(),
                },
                found,
            ]
        })
        .collect();
    s.push_str(&crate::output::table(
        &["HOST", "RUN", "STATUS", "MODE", "RESULT", "FOUND"],
        &rows,
    ));
    for r in &o.rehearsals {
        let Some(x) = &r.rehearsal else { continue };
        let head = format!("{} (run {})", c(&r.host), c(&r.run));
        if let Some(why) = &x.mode_reason {
            s.push_str(&format!(
                "{head}: simulation only, no script ran: {}\n",
                c(why)
            ));
        }
        for f in &x.scripts {
            s.push_str(&format!(
                "{head}: {} {} exited {}:\n",
                c(&f.package),
                c(&f.script),
                f.exit.map_or("by a signal".into(), |e| e.to_string())
            ));
            for l in f.output.lines() {
                s.push_str(&format!("    {}\n", c(l)));
            }
        }
        for k in &x.conflicts {
            s.push_str(&format!(
                "{head}: {} {} {}\n",
                c(&k.package),
                c(&k.relation),
                c(&k.with)
            ));
        }
        for p in &x.refused {
            s.push_str(&format!("{head}: refused: {}\n", c(p)));
        }
        for p in &x.privilege {
            s.push_str(&format!(
                "{head}: {} {}{}: {} -> {}\n",
                c(&p.finding),
                c(&p.path),
                p.package
                    .as_deref()
                    .map(|k| format!(" ({})", c(k)))
                    .unwrap_or_default(),
                p.before.as_deref().map(c).unwrap_or_else(|| "new".into()),
                c(&p.after)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The impact text prints every value the server sent through
    /// `clean_text` (an owner or a service name is someone else's word).
    #[test]
    fn impact_text_escapes_terminal_controls_and_labels_estimates() {
        use patchbay_core::impact::{Estimates, HostIn, PackageChange, SlotIn, impact};
        let t: jiff::Timestamp = "2026-12-12T22:00:00Z".parse().unwrap();
        let owners = impact(
            &[HostIn {
                asset: "h1".into(),
                owner: "web\u{1b}[31m".into(),
                ring: "all".into(),
                planned: vec![PackageChange {
                    name: "linux-image-amd64".into(),
                    from: Some("6.1.1".into()),
                    to: Some("6.1.2".into()),
                }],
                slot: SlotIn {
                    window: Some("sat".into()),
                    zone: Some("Europe/Berlin".into()),
                    opens: t,
                    closes: t,
                },
                rehearsal: None,
                reboot_pending: false,
                ring_reboots: true,
                measured_reboot: None,
            }],
            &Estimates::default(),
        );
        let o = patchbay_proto::api::DeploymentImpactOut {
            deployment: "DEP-1".into(),
            status: "draft".into(),
            computed_at: "2026-12-08T22:00:00Z".into(),
            lead_secs: 86400,
            owners,
            notices: vec![],
        };
        let text = impact_text(&o);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("Owner web\\x1b[31m: 1 host(s)"), "{text}");
        assert!(
            text.contains("linux-image-amd64 6.1.1 → 6.1.2 [plan]"),
            "{text}"
        );
        assert!(
            text.contains("reboot:   yes (kernel/microcode package linux-image-amd64"),
            "{text}"
        );
        assert!(text.contains("interruption: ≈300 s (estimate:"), "{text}");
        assert!(text.contains("services: unknown until rehearsed"), "{text}");
        assert!(
            text.contains("window:   sat 2026-12-12T23:00:00+01:00[Europe/Berlin]"),
            "{text}"
        );
        assert!(text.contains("none yet"), "{text}");
    }

    fn err(spec: &str) -> String {
        parse_ring(spec).unwrap_err().to_string()
    }

    #[test]
    fn ring_name_only() {
        let r = parse_ring("ring0-canary").unwrap();
        assert_eq!(r.name, "ring0-canary");
        assert!(r.assets.is_empty() && r.size.is_none() && !r.approval);
        assert_eq!(r.max_concurrent, None);
        assert_eq!(r.rollback, None);
    }

    #[test]
    fn ring_every_key() {
        let r = parse_ring(
            "pilot:size=10%,max=2,budget=1,threshold=0.9,soak=1h30m,approval,rollback=ring",
        )
        .unwrap();
        assert_eq!(
            r,
            RingIn {
                name: "pilot".into(),
                assets: vec![],
                size: Some("10%".into()),
                max_concurrent: Some("2".into()),
                error_budget: Some("1".into()),
                success_threshold: Some(0.9),
                soak: Some("1h30m".into()),
                approval: true,
                rollback: Some("ring".into()),
                stands_for: None,
                drift_tolerance: None,
                require_rehearsal: false,
                verify_snapshots: None,
            }
        );
        assert!(parse_ring("canary:rehearse").unwrap().require_rehearsal);
        assert!(!parse_ring("canary:rehearse=no").unwrap().require_rehearsal);
        assert!(parse_ring("canary:rehearse=maybe").is_err());
        let r = parse_ring("canary:assets=web-1+web-2, budget=0%, rollback=none").unwrap();
        assert_eq!(r.assets, vec!["web-1", "web-2"]);
        assert_eq!(r.error_budget.as_deref(), Some("0%"));
        assert_eq!(r.rollback.as_deref(), Some("none"));
        assert!(parse_ring("x:approval=false").is_ok_and(|r| !r.approval));
        assert_eq!(
            parse_ring("x:soak=24h").unwrap().soak.as_deref(),
            Some("24h")
        );
    }

    #[test]
    fn ring_errors_name_the_bad_part() {
        assert_eq!(
            err("ring0:size=ten"),
            "--ring ring0:size=ten: size must be N or N%"
        );
        assert_eq!(err("r:size=0"), "--ring r:size=0: size must be at least 1");
        assert_eq!(err("r:max=0%"), "--ring r:max=0%: max must be more than 0%");
        assert_eq!(
            parse_ring("r:budget=2.5%").unwrap().error_budget.as_deref(),
            Some("2.5%")
        );
        assert_eq!(
            err("r:budget=2.5"),
            "--ring r:budget=2.5: budget must be N or N%"
        );
        assert_eq!(
            err("r:size=1.2.3%"),
            "--ring r:size=1.2.3%: size must be N or N%"
        );
        assert_eq!(err("r:size=%"), "--ring r:size=%: size must be N or N%");
        assert_eq!(
            err("r:budget=101%"),
            "--ring r:budget=101%: budget must be at most 100%"
        );
        assert_eq!(
            err("r:budget=-1"),
            "--ring r:budget=-1: budget must be N or N%"
        );
        assert_eq!(err("r:max=1.5"), "--ring r:max=1.5: max must be N or N%");
        assert_eq!(
            err("r:threshold=1.5"),
            "--ring r:threshold=1.5: threshold must be a number from 0 to 1, e.g. 0.95"
        );
        assert_eq!(
            err("r:soak=soon"),
            "--ring r:soak=soon: soak must be a duration such as 30m, 4h or 1h30m"
        );
        assert_eq!(
            err("r:rollback=all"),
            "--ring r:rollback=all: rollback must be failed-hosts, ring or none"
        );
        assert_eq!(
            err("r:colour=red"),
            "--ring r:colour=red: unknown key \"colour\" (known: assets, size, max, budget, \
             threshold, soak, approval, rehearse, rollback, verify, stands-for, tolerance)"
        );
        let r = parse_ring("staging:assets=s1,stands-for=web,tolerance=3").unwrap();
        assert_eq!(
            (r.stands_for.as_deref(), r.drift_tolerance),
            (Some("web"), Some(3))
        );
        assert_eq!(
            err("r:tolerance=many"),
            "--ring r:tolerance=many: tolerance must be a number of packages, not \"many\""
        );
        assert_eq!(err("r:size"), "--ring r:size: size needs a value (size=…)");
        assert_eq!(
            err("r:max=1,max=2"),
            "--ring r:max=1,max=2: max given twice"
        );
        assert_eq!(
            err("r:max=1,,budget=1"),
            "--ring r:max=1,,budget=1: an empty KEY=VALUE (two commas in a row?)"
        );
        assert_eq!(
            err(":max=1"),
            "--ring :max=1: the ring name is empty (NAME[:KEY=VALUE,…])"
        );
        assert!(err("r:").contains("nothing after ':'"));
        assert!(err("a b").contains("' ' is not allowed"));
        assert!(err("r:assets=a++b").contains("no empty names"));
        assert!(err("r:assets=a,size=2").contains("exclude each other"));
        assert!(err("r:approval=maybe").contains("approval is a flag"));
        // Control characters in what is echoed are escaped.
        let e = err("r:\u{1b}[2J=1");
        assert!(e.contains("\\x1b") && !e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn packages_and_spec() {
        let p = parse_package("openssl=3.0.15-1~deb12u1").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("openssl", "3.0.15-1~deb12u1")
        );
        // Only the first '=' splits (epochs and odd versions pass through).
        assert_eq!(parse_package("a=1:2=3").unwrap().version, "1:2=3");
        assert_eq!(
            parse_package("openssl").unwrap_err().to_string(),
            "--package openssl: expected NAME=VERSION"
        );
        assert!(
            parse_package("=1")
                .unwrap_err()
                .to_string()
                .contains("name is empty")
        );
        assert!(
            parse_package("a=")
                .unwrap_err()
                .to_string()
                .contains("version is empty")
        );

        let args = SpecArgs {
            packages: vec!["pb-demo=1.1".into()],
            patches: vec![],
            tier: Some("P1".into()),
            converge: None,
            assets: vec![],
            groups: vec!["web".into()],
            rings: vec!["canary:assets=h1".into(), "rest:budget=10%".into()],
            checks: vec!["health".into()],
            window: Some("4h".into()),
            job_timeout: None,
            windows: Some(WindowsMode::Required),
            reboot: Some(RebootMode::Never),
        };
        let s = args.spec().unwrap();
        assert_eq!(s.windows.as_deref(), Some("required"));
        assert_eq!(s.reboot.as_deref(), Some("never"));
        assert_eq!(s.tier.as_deref(), Some("P1"));
        assert_eq!(s.rings.len(), 2);
        assert_eq!(s.window.as_deref(), Some("4h"));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["packages"][0]["name"], "pb-demo");
        assert_eq!(v["rings"][1]["error_budget"], "10%");
        assert_eq!(v["rings"][0]["assets"][0], "h1");

        let mut dup = args.clone();
        dup.packages.push("pb-demo=1.2".into());
        assert!(dup.spec().unwrap_err().to_string().contains("given twice"));
        let mut dup = args.clone();
        dup.rings.push("canary".into());
        assert!(dup.spec().unwrap_err().to_string().contains("given twice"));
        let mut bad = args;
        bad.job_timeout = Some("-5m".into());
        assert!(
            bad.spec()
                .unwrap_err()
                .to_string()
                .starts_with("--job-timeout:")
        );
    }

    #[test]
    fn bodies_match_the_contract() {
        let none = serde_json::to_string(&CommentIn { comment: None }).unwrap();
        assert_eq!(none, "{}");
        let a = serde_json::to_value(DeployApprovalIn {
            ring: None,
            approve: false,
            comment: "no".into(),
        })
        .unwrap();
        assert_eq!(
            a,
            serde_json::json!({"ring": null, "approve": false, "comment": "no"})
        );
    }

    fn detail() -> DeploymentDetail {
        let d = serde_json::json!({
            "deployment": {
                "id": "DEP-2026-12-001", "kind": "baseline", "status": "halted",
                "reason": "", "patches": [], "assets": ["h1", "h2"],
                "created_at": "2026-12-06T10:00:00Z", "created_by": "alice"
            },
            "rollout": {
                "id": "DEP-2026-12-001", "created_by": "alice", "started_by": "bob",
                "state": "halted", "reason": "ring canary: 1 failure > budget 0",
                "rings": [{
                    "spec": {"name": "canary", "max_concurrent": 1, "error_budget": 0,
                             "success_threshold": 0.95, "soak": "PT30M", "approval": false,
                             "rollback": "failed-hosts"},
                    "state": "failed",
                    "jobs": [
                        {"spec": {"host": "h1", "key": "DEP-2026-12-001/h1",
                                  "not_before": "2026-12-06T10:00:00Z",
                                  "cutoff": "2026-12-07T10:00:00Z", "run_timeout": "PT30M"},
                         "state": "rolled_back", "online": true,
                         "leased_at": "2026-12-06T10:01:00Z", "finished_at": null,
                         "error": "verify.health: http-ok failed\u{1b}[31m",
                         "baseline": [], "after": [], "ran": true, "failed": true},
                        {"spec": {"host": "h2", "key": "DEP-2026-12-001/h2",
                                  "not_before": "2026-12-06T10:00:00Z",
                                  "cutoff": "2026-12-07T10:00:00Z", "run_timeout": "PT30M"},
                         "state": "skipped", "online": false, "leased_at": null,
                         "finished_at": null, "error": null,
                         "baseline": [], "after": [], "ran": false, "failed": false}
                    ],
                    "done_at": null, "approved_by": null,
                    "gates": [{"at": "2026-12-06T10:05:00Z", "gate": "budget",
                               "verdict": "fail", "reason": "1 failure, budget 0"}],
                    "control": []
                }]
            },
            "results": [{"key": "DEP-2026-12-001/h1", "outcome": "failed",
                         "step": "verify.health", "message": "http-ok failed",
                         "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.2"}],
                         "finished_at": "2026-12-06T10:04:00Z"}]
        });
        serde_json::from_value(d).unwrap()
    }

    #[test]
    fn show_renders_states_gates_jobs_and_versions() {
        let t = detail_text(&detail());
        assert!(t.contains("state:      halted\n"), "{t}");
        assert!(
            t.contains("reason:     ring canary: 1 failure > budget 0\n"),
            "{t}"
        );
        assert!(
            t.contains("ring canary: failed (1 failed of budget 0, 0 in flight;"),
            "{t}"
        );
        assert!(t.contains("soak 30m"), "{t}");
        assert!(
            t.contains("  last gate: budget fail: 1 failure, budget 0\n"),
            "{t}"
        );
        let h1 = t
            .lines()
            .find(|l| l.trim_start().starts_with("h1"))
            .unwrap();
        assert!(h1.contains("rolled_back"), "{h1}");
        assert!(h1.contains("1.0") && h1.contains("1.2"), "{h1}");
        assert!(h1.contains("\\x1b[31m") && !h1.contains('\u{1b}'), "{h1}");
        let h2 = t
            .lines()
            .find(|l| l.trim_start().starts_with("h2"))
            .unwrap();
        assert!(h2.contains("skipped") && h2.contains("no"), "{h2}");
        let c = created_text(&detail());
        assert!(c.starts_with("created DEP-2026-12-001 (halted)\n"), "{c}");
        assert!(c.contains("canary  2      h1 h2"), "{c}");
    }

    #[test]
    fn a_reboot_not_done_shows_its_note() {
        let mut d = detail();
        let job = &mut d.rollout.as_mut().unwrap().rings[0].jobs[0];
        job.error = None;
        job.note = Some(
            "a reboot is required but was not done: the host's window had closed\u{1b}[2J".into(),
        );
        d.results = vec![];
        let t = detail_text(&d);
        let row = t
            .lines()
            .find(|l| l.trim_start().starts_with("h1"))
            .unwrap();
        assert!(
            row.ends_with(
                "a reboot is required but was not done: the host's window had closed\\x1b[2J"
            ),
            "{row}"
        );
    }

    #[test]
    fn a_refusal_shows_its_code_and_message_beside_the_servers_error() {
        let mut d = detail();
        let job = &mut d.rollout.as_mut().unwrap().rings[0].jobs[0];
        job.error = Some("no report from the agent by the job's deadline".into());
        let late = serde_json::json!({"key": "DEP-2026-12-001/h1", "outcome": "refused",
            "refusal": "expired", "message": "job DEP-2026-12-001/h1: its deadline has passed",
            "finished_at": "2026-12-06T10:40:00Z"});
        d.results = vec![late.clone()];
        let row = |d: &DeploymentDetail| {
            detail_text(d)
                .lines()
                .find(|l| l.trim_start().starts_with("h1"))
                .unwrap()
                .to_owned()
        };
        assert!(
            row(&d).ends_with(
                "no report from the agent by the job's deadline (refused: expired: job DEP-2026-12-001/h1: its deadline has passed)"
            ),
            "{}",
            row(&d)
        );
        // Without a message: the code alone.
        let mut bare = late.clone();
        bare.as_object_mut().unwrap().remove("message");
        d.results = vec![bare];
        assert!(
            row(&d).ends_with("deadline (refused: expired)"),
            "{}",
            row(&d)
        );
        // A refusal the server's error already names is not repeated.
        let job = &mut d.rollout.as_mut().unwrap().rings[0].jobs[0];
        job.error =
            Some("refused (expired): job DEP-2026-12-001/h1: its deadline has passed".into());
        d.results = vec![late];
        assert!(
            row(&d).ends_with("refused (expired): job DEP-2026-12-001/h1: its deadline has passed"),
            "{}",
            row(&d)
        );
    }

    #[test]
    fn preview_renders_hosts_skips_rules() {
        let p: DeploymentPreview = serde_json::from_value(serde_json::json!({
            "hosts": [{"asset": "h1", "ring": "canary",
                       "packages": [{"name": "pb-demo", "from": "1.0", "to": "1.1"}]}],
            "skipped": [{"asset": "h9", "reason": "no agent\u{7}"}],
            "rules": ["budget 0: one host at a time"]
        }))
        .unwrap();
        let t = preview_text(&p);
        assert_eq!(
            t,
            "1 host would be changed:\n\
             HOST  RING    PACKAGE  FROM  TO\n\
             h1    canary  pb-demo  1.0   1.1\n\
             \nSkipped (1):\n\
             ASSET  REASON\n\
             h9     no agent\\x07\n\
             \nRules:\n\
             - budget 0: one host at a time\n"
        );
    }

    #[test]
    fn help_parses() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
        let cli = <crate::Cli as clap::Parser>::try_parse_from([
            "patchbay",
            "deploy",
            "create",
            "--package",
            "a=1",
            "b=2",
            "--ring",
            "r0",
            "--ring",
            "r1:max=2",
            "--group",
            "g",
        ])
        .unwrap();
        match cli.command {
            crate::Command::Deploy {
                cmd: DeployCmd::Create { spec, .. },
                ..
            } => {
                assert_eq!(spec.packages, vec!["a=1", "b=2"]);
                assert_eq!(spec.rings, vec!["r0", "r1:max=2"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            <crate::Cli as clap::Parser>::try_parse_from(["patchbay", "deploy", "abort", "D"])
                .is_err()
        );
    }
}
