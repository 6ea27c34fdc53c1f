//! `patchbay changes list|show|runbook|lessons`.

use crate::Format;
use crate::conn::enc;
use crate::output::{clean, clean_text, json, table};
use anyhow::Context;
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{ChangeRecordOut, ChangeSummaryOut, LessonIn, LessonOut, List};
use std::path::PathBuf;

/// `patchbay changes …`
#[derive(Debug, Subcommand)]
pub enum ChangesCmd {
    /// Change records (one per deployment), newest first.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One change record: scope, risk, windows, back-out plan, approvals,
    /// outcome, lessons learned.
    Show {
        /// `CHG-…` (or the deployment id).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The change's runbook: roles, timeline by window, steps, gates,
    /// escalation chain, back-out steps.
    Runbook {
        /// `CHG-…`
        id: String,
        /// `md` or `html`.
        #[arg(long, default_value = "md")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The lessons-learned log.
    #[command(subcommand)]
    Lessons(LessonsCmd),
}

/// `patchbay changes lessons …`
#[derive(Debug, Subcommand)]
pub enum LessonsCmd {
    /// Record a lesson for a change (admin, operator).
    Add {
        /// `CHG-…`
        id: String,
        /// The lesson.
        #[arg(long)]
        text: String,
    },
    /// Lessons containing every word given (all of them without words).
    Search {
        /// Words to look for.
        words: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Runs a `changes` command.
pub fn run(c: &Client, cmd: ChangesCmd) -> anyhow::Result<()> {
    match cmd {
        ChangesCmd::List { format } => {
            let l: List<ChangeSummaryOut> = c.get("/api/v1/changes")?;
            match format {
                Format::Json => json(&l.items),
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|x| {
                            vec![
                                x.id.clone(),
                                x.deployment.clone(),
                                x.kind.clone(),
                                x.status.clone(),
                                x.highest_tier.clone(),
                                x.assets.to_string(),
                                x.patches.to_string(),
                                x.created_at.clone(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "ID",
                                "DEPLOYMENT",
                                "KIND",
                                "STATUS",
                                "TIER",
                                "ASSETS",
                                "PATCHES",
                                "CREATED"
                            ],
                            &rows
                        )
                    );
                    Ok(())
                }
            }
        }
        ChangesCmd::Show { id, format } => {
            let r: ChangeRecordOut = c.get(&format!("/api/v1/changes/{}", enc(&id)))?;
            match format {
                Format::Json => json(&r),
                Format::Table => {
                    // Every line is built first and printed through `clean`, so
                    // a reason, note or lesson cannot add lines or escapes.
                    let mut lines = vec![
                        format!("{} — {} ({}, {})", r.id, r.deployment, r.kind, r.outcome),
                        format!("risk: {}", r.risk),
                        format!("why: {}", r.reason),
                        format!("assets: {}", r.assets.join(", ")),
                    ];
                    for p in &r.patches {
                        lines.push(format!(
                            "patch: {} ({} -> {}, {})",
                            p.name, p.package, p.fixed_version, p.highest_tier
                        ));
                    }
                    for h in &r.hosts {
                        if h.not_remediated {
                            lines.push(format!(
                                "NOT REMEDIATED: {} reported success, a targeted CVE is still open",
                                h.host
                            ));
                        }
                        for v in &h.retest {
                            lines.push(format!(
                                "re-test: {} {} ({}) {}",
                                h.host,
                                v.cve,
                                v.packages.join(", "),
                                if v.closed {
                                    format!("closed {}", v.closed_at.as_deref().unwrap_or(""))
                                } else {
                                    "OPEN".into()
                                }
                            ));
                        }
                    }
                    for w in &r.windows {
                        lines.push(format!(
                            "window: {} {} {}",
                            w.asset,
                            w.window.as_deref().unwrap_or("-"),
                            w.planned.as_deref().unwrap_or("not planned")
                        ));
                    }
                    for b in &r.back_out {
                        lines.push(format!(
                            "back-out: {} {} {} -> {}",
                            b.asset, b.package, b.target_version, b.installed_version
                        ));
                    }
                    for a in &r.approvals {
                        lines.push(format!(
                            "approval: {} by {} at {}",
                            a.subject, a.approver, a.at
                        ));
                    }
                    for l in &r.lessons {
                        lines.push(format!("lesson: {} ({}): {}", l.at, l.author, l.text));
                    }
                    for l in lines {
                        println!("{}", clean(&l));
                    }
                    Ok(())
                }
            }
        }
        ChangesCmd::Runbook { id, format, out } => {
            let body = c.get_text(&format!(
                "/api/v1/changes/{}/runbook?format={}",
                enc(&id),
                enc(&format)
            ))?;
            match out {
                Some(p) => {
                    std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                None => print!("{}", clean_text(&body)),
            }
            Ok(())
        }
        ChangesCmd::Lessons(LessonsCmd::Add { id, text }) => {
            let l: LessonOut = c.send(
                "POST",
                &format!("/api/v1/changes/{}/lessons", enc(&id)),
                &LessonIn { text },
            )?;
            println!("recorded lesson {} on {}", l.id, l.change_id);
            Ok(())
        }
        ChangesCmd::Lessons(LessonsCmd::Search { words, format }) => {
            let l: List<LessonOut> =
                c.get(&format!("/api/v1/lessons?q={}", enc(&words.join(" "))))?;
            match format {
                Format::Json => json(&l.items),
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|x| {
                            vec![
                                x.change_id.clone(),
                                x.at.clone(),
                                x.author.clone(),
                                x.text.clone(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["CHANGE", "AT", "AUTHOR", "LESSON"], &rows));
                    Ok(())
                }
            }
        }
    }
}
