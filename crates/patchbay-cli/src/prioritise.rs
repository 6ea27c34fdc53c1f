//! `patchbay worklist`, `patchbay policy check|preview|apply`, `patchbay triage`.

use crate::conn::enc;
use crate::output::{json, table};
use anyhow::{Context, bail};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{List, PolicyEffect, Triage, WorkItem};
use std::path::PathBuf;

/// Output formats of the worklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
    /// CSV (formula-injection safe).
    Csv,
}

/// `patchbay worklist` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WorklistArgs {
    /// Only this asset.
    #[arg(long)]
    pub asset: Option<String>,
    /// Only assets of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only assets in this policy group.
    #[arg(long)]
    pub group: Option<String>,
    /// Only this tier (P0 … P4).
    #[arg(long)]
    pub tier: Option<String>,
    /// At most this many lines (the ranking covers every finding).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

pub use patchbay_render::csv_safe;

/// `patchbay worklist`
pub fn worklist(c: &Client, a: WorklistArgs) -> anyhow::Result<()> {
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [
        ("asset", &a.asset),
        ("owner", &a.owner),
        ("group", &a.group),
        ("tier", &a.tier),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    let l: List<WorkItem> = c.get(&format!("/api/v1/worklist?{}", q.join("&")))?;
    let header = [
        "TIER",
        "DUE",
        "OVERDUE",
        "ASSET",
        "OWNER",
        "PACKAGE",
        "INSTALLED",
        "FIXED",
        "ADVISORY",
        "SCORE",
        "WHY",
    ];
    let row = |w: &WorkItem| -> Vec<String> {
        let f = &w.finding;
        vec![
            w.tier.clone(),
            w.due.clone(),
            if w.overdue {
                "yes".into()
            } else {
                String::new()
            },
            f.asset.clone(),
            w.owner.clone(),
            crate::output::package_cell(&f.package, f.unmanaged_path.as_deref()),
            f.installed_version.clone(),
            f.fixed_version.clone().unwrap_or_else(|| "-".into()),
            f.advisory.clone(),
            format!("{:.1}", w.score),
            w.summary.clone(),
        ]
    };
    match a.format {
        ListFormat::Json => json(&l.items)?,
        ListFormat::Table => print!(
            "{}",
            table(&header, &l.items.iter().map(row).collect::<Vec<_>>())
        ),
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(header.iter().map(|h| h.to_ascii_lowercase()))?;
            for item in &l.items {
                w.write_record(row(item).iter().map(|c| csv_safe(c)))?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// `patchbay policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate a policy file locally; errors name the line and field.
    Check {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Show what applying a policy would change (nothing is changed).
    Preview {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Apply a policy: shows its effect and records who applied it.
    Apply {
        /// The policy (TOML).
        file: PathBuf,
    },
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

/// Validates a policy locally; returns the error lines.
pub fn check_text(text: &str) -> Result<String, Vec<String>> {
    match patchbay_core::policy::parse(text) {
        Ok(p) => Ok(p.fingerprint()),
        Err(errs) => Err(errs.iter().map(|e| e.to_string()).collect()),
    }
}

/// Runs a `policy` command (`check` needs no server).
pub fn policy(url: &str, token: Option<String>, cmd: PolicyCmd) -> anyhow::Result<()> {
    match cmd {
        PolicyCmd::Check { file } => match check_text(&read(&file)?) {
            Ok(fp) => println!("{}: valid (fingerprint {fp})", file.display()),
            Err(errs) => {
                for e in &errs {
                    eprintln!("{}: {e}", file.display());
                }
                bail!("{}: {} error(s)", file.display(), errs.len());
            }
        },
        PolicyCmd::Preview { file } => {
            let c = crate::conn::connect(url, token)?;
            let e: PolicyEffect = c.post_raw(
                "/api/v1/policy/preview",
                "application/toml",
                read(&file)?.as_bytes(),
            )?;
            println!("preview: {}", e.summary);
        }
        PolicyCmd::Apply { file } => {
            let c = crate::conn::connect(url, token)?;
            let text = read(&file)?;
            let e: PolicyEffect =
                c.post_raw("/api/v1/policy", "application/toml", text.as_bytes())?;
            if e.no_op {
                println!("{}: already in force; nothing changed", file.display());
            } else {
                println!(
                    "applied {} (fingerprint {}): {}",
                    file.display(),
                    e.fingerprint,
                    e.summary
                );
            }
        }
    }
    Ok(())
}

/// `patchbay triage CVE`
pub fn triage(c: &Client, cve: &str, format: crate::Format) -> anyhow::Result<()> {
    let t: Triage = c.get(&format!("/api/v1/triage/{}", enc(cve)))?;
    if format == crate::Format::Json {
        return json(&t);
    }
    println!(
        "{}: {}",
        t.cve,
        if t.affected {
            "AFFECTED"
        } else {
            "not affected (no open finding)"
        }
    );
    println!(
        "  advisories: {}",
        if t.advisories.is_empty() {
            "none in the imported feeds".into()
        } else {
            t.advisories.join(", ")
        }
    );
    println!(
        "  CISA KEV:   {}",
        t.kev_due_date
            .as_deref()
            .map(|d| format!("yes, due {d}"))
            .unwrap_or_else(|| "no".into())
    );
    println!(
        "  EPSS:       {}",
        t.epss
            .map(|e| format!("{e:.5}"))
            .unwrap_or_else(|| "no score".into())
    );
    if !t.fixes.is_empty() {
        println!("  fixes:");
        for f in &t.fixes {
            println!("    {f}");
        }
    }
    if !t.items.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = t
            .items
            .iter()
            .map(|w| {
                vec![
                    w.tier.clone(),
                    w.due.clone(),
                    w.finding.asset.clone(),
                    w.owner.clone(),
                    w.finding.package.clone(),
                    w.finding.installed_version.clone(),
                    w.finding
                        .fixed_version
                        .clone()
                        .unwrap_or_else(|| "-".into()),
                    // A VEX statement shows why the finding does not apply.
                    w.vex.clone().unwrap_or_else(|| w.summary.clone()),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "TIER",
                    "DUE",
                    "ASSET",
                    "OWNER",
                    "PACKAGE",
                    "INSTALLED",
                    "FIXED",
                    "WHY"
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// `patchbay patches`: the patch catalog.
pub fn patches(c: &Client, format: crate::Format) -> anyhow::Result<()> {
    let l: List<patchbay_proto::api::PatchOut> = c.get("/api/v1/patches")?;
    if format == crate::Format::Json {
        return json(&l.items);
    }
    let rows: Vec<Vec<String>> = l
        .items
        .iter()
        .map(|p| {
            vec![
                p.highest_tier.clone(),
                p.name.clone(),
                p.findings.to_string(),
                p.assets.len().to_string(),
                p.cves.len().to_string(),
                if p.approved {
                    "approved".into()
                } else {
                    String::new()
                },
                p.approval_reason.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TIER", "PATCH", "FINDINGS", "ASSETS", "CVES", "APPROVED", "WHY"
            ],
            &rows
        )
    );
    Ok(())
}

/// `patchbay deployments`: deployments, including proposed out-of-band ones.
pub fn deployments(c: &Client, format: crate::Format) -> anyhow::Result<()> {
    let l: List<patchbay_proto::api::DeploymentOut> = c.get("/api/v1/deployments")?;
    if format == crate::Format::Json {
        return json(&l.items);
    }
    let rows: Vec<Vec<String>> = l
        .items
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.kind.clone(),
                d.status.clone(),
                d.patches.len().to_string(),
                d.assets.len().to_string(),
                d.created_at.clone(),
                d.reason.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID", "KIND", "STATUS", "PATCHES", "ASSETS", "CREATED", "REASON"
            ],
            &rows
        )
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_cannot_be_formulas() {
        assert_eq!(super::csv_safe("=1+1"), "'=1+1");
        assert_eq!(super::csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::csv_safe("-2"), "'-2");
        assert_eq!(super::csv_safe("openssl"), "openssl");
    }
}
