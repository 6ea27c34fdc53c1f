//! `patchbay report compliance|ttp|sla|coverage|deployments`, and
//! `patchbay report governance --from --to`.

use crate::conn::enc;
use anyhow::Context;
use patchbay_client::Client;
use std::path::PathBuf;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Per asset, owner and group: within SLA, overdue, excepted, patched.
    Compliance,
    /// Time to patch per tier: mean, median, p90.
    Ttp,
    /// SLA adherence per tier.
    Sla,
    /// Assets seen in the last 24 h over all known assets.
    Coverage,
    /// Rollout outcomes per deployment and per ISO week: jobs succeeded,
    /// failed, rolled back; success and rollback rates; job durations; time
    /// to patch through jobs.
    Deployments,
    /// Governance review over --from/--to: findings closed by tier and
    /// exposure-days avoided against their SLA, against window hours, jobs,
    /// rollbacks and approvals (with their wait), per group and owner, and
    /// the period's wins (docs/governance.md).
    Governance,
    /// Snapshot verifications asked in --from/--to (both optional): host,
    /// snapshot, when, verdict, the hook's excerpt
    /// (docs/backup-verification.md). JSON only.
    BackupVerifications,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Compliance => "compliance",
            Kind::Ttp => "ttp",
            Kind::Sla => "sla",
            Kind::Coverage => "coverage",
            Kind::Deployments => "deployments",
            Kind::Governance => "governance",
            Kind::BackupVerifications => "backup-verifications",
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// JSON (with the controls evidenced).
    Json,
    /// CSV (formula-injection safe).
    Csv,
    /// Self-contained printable HTML with SVG charts.
    Html,
}

/// `patchbay report` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The report.
    #[arg(value_enum)]
    pub kind: Kind,
    /// As of: a date (YYYY-MM-DD: the end of that day, UTC) or RFC 3339; default now.
    #[arg(long)]
    pub as_of: Option<String>,
    /// governance: period start (a date: its midnight, UTC; or RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// governance: period end, excluded (a date: the end of that day, UTC;
    /// or RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
    pub format: ReportFormat,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `patchbay report`.
pub fn run(c: &Client, a: ReportArgs) -> anyhow::Result<()> {
    let format = match a.format {
        ReportFormat::Json => "json",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    };
    let path = if a.kind == Kind::BackupVerifications {
        if a.format != ReportFormat::Json {
            anyhow::bail!("report backup-verifications is JSON only (--format json)");
        }
        if a.as_of.is_some() {
            anyhow::bail!("report backup-verifications takes --from and --to, not --as-of");
        }
        let mut q = Vec::new();
        if let Some(f) = &a.from {
            q.push(format!("from={}", enc(f)));
        }
        if let Some(t) = &a.to {
            q.push(format!("to={}", enc(t)));
        }
        format!("/api/v1/backup-verifications?{}", q.join("&"))
    } else if a.kind == Kind::Governance {
        let (Some(from), Some(to)) = (&a.from, &a.to) else {
            anyhow::bail!("report governance needs --from and --to (the period)");
        };
        if a.as_of.is_some() {
            anyhow::bail!("report governance takes --from and --to, not --as-of");
        }
        format!(
            "/api/v1/governance?from={}&to={}&format={format}",
            enc(from),
            enc(to)
        )
    } else {
        if a.from.is_some() || a.to.is_some() {
            anyhow::bail!(
                "--from and --to are for `report governance`; other reports take --as-of"
            );
        }
        let mut path = format!("/api/v1/reports/{}?format={format}", a.kind.as_str());
        if let Some(t) = &a.as_of {
            path.push_str(&format!("&as_of={}", enc(t)));
        }
        path
    };
    let body = c.get_text(&path)?;
    match a.out {
        Some(p) => {
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        // CSV, HTML or JSON for machines and browsers: exact.
        None => std::print!("{body}"),
    }
    Ok(())
}
