//! `patchbay exceptions add|list|show|revoke|review`.

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, json, table};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{ExceptionOut, ExceptionReviewOut, ExceptionSpec, List, RevokeIn};

/// `patchbay exceptions …`
#[derive(Debug, Subcommand)]
pub enum ExceptionsCmd {
    /// Defer findings on purpose, or state that they do not apply (VEX
    /// `--kind not-affected`); admin or approver, you are the approver.
    ///
    /// Name what (--advisory and/or --package) and where (--asset or --group).
    /// Excepted findings leave the worklist and the plan but stay in reports as
    /// excepted; when the exception expires or is revoked they come back with
    /// their original SLA clock. A not-affected exception needs
    /// --justification (component_not_present, vulnerable_code_not_present,
    /// vulnerable_code_not_in_execute_path,
    /// vulnerable_code_cannot_be_controlled_by_adversary,
    /// inline_mitigations_already_exist) and no --control.
    Add {
        /// Advisory or CVE id.
        #[arg(long)]
        advisory: Option<String>,
        /// Package (binary or source).
        #[arg(long)]
        package: Option<String>,
        /// One asset.
        #[arg(long, conflicts_with = "group")]
        asset: Option<String>,
        /// One policy group.
        #[arg(long)]
        group: Option<String>,
        /// Who owns the risk.
        #[arg(long)]
        owner: String,
        /// Why it is deferred.
        #[arg(long)]
        reason: String,
        /// What mitigates the risk meanwhile (required for deferred).
        #[arg(long = "control", default_value = "")]
        compensating_control: String,
        /// `deferred` (the risk is accepted for a while) or `not-affected`
        /// (VEX: the finding does not apply).
        #[arg(long, default_value = "deferred")]
        kind: String,
        /// The VEX justification of a not-affected exception.
        #[arg(long)]
        justification: Option<String>,
        /// Expiry: a duration (30d, 72h), a date (YYYY-MM-DD, UTC) or RFC 3339.
        #[arg(long)]
        expires: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List exceptions in force (--all: every one, with expired and revoked).
    List {
        /// Include expired and revoked ones.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one exception and the open findings it covers.
    Show {
        /// `EXC-…`
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke an exception in force (admin or approver).
    Revoke {
        /// `EXC-…`
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Review: expiring within 7 days, expired, and ownerless (the owner owns
    /// none of the assets in scope any more). Raises due expiry events first.
    Review {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn rows(list: &[ExceptionOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.status.clone(),
                if e.asset.is_empty() {
                    format!("group:{}", e.group)
                } else {
                    e.asset.clone()
                },
                [e.advisory.as_str(), e.package.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
                e.owner.clone(),
                e.expires_at.clone(),
                e.covers.len().to_string(),
                e.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STATUS", "WHERE", "WHAT", "OWNER", "EXPIRES", "FINDINGS", "REASON",
        ],
        &rows,
    )
}

fn show(e: &ExceptionOut) {
    use crate::output::clean;
    print!("{}", rows(std::slice::from_ref(e)));
    if e.kind == "not_affected" {
        println!(
            "kind: not affected (VEX), justification {}{}",
            clean(&e.justification),
            if e.origin.is_empty() {
                String::new()
            } else {
                format!(", from {}", clean(&e.origin))
            }
        );
    }
    println!("compensating control: {}", e.compensating_control);
    println!("approved by {} at {}", e.approver, e.created_at);
    if let (Some(at), Some(by)) = (&e.revoked_at, &e.revoked_by) {
        println!(
            "revoked by {by} at {at}: {}",
            e.revoke_reason.as_deref().unwrap_or("")
        );
    }
    for c in &e.covers {
        println!("  covers {c}");
    }
}

/// Runs an `exceptions` command.
pub fn run(c: &Client, cmd: ExceptionsCmd) -> anyhow::Result<()> {
    match cmd {
        ExceptionsCmd::Add {
            advisory,
            package,
            asset,
            group,
            owner,
            reason,
            compensating_control,
            kind,
            justification,
            expires,
            format,
        } => {
            let e: ExceptionOut = c.send(
                "POST",
                "/api/v1/exceptions",
                &ExceptionSpec {
                    advisory,
                    package,
                    asset,
                    group,
                    owner,
                    reason,
                    compensating_control,
                    expires,
                    kind: Some(kind),
                    justification,
                },
            )?;
            match format {
                Format::Json => json(&e),
                Format::Table => {
                    show(&e);
                    Ok(())
                }
            }
        }
        ExceptionsCmd::List { all, format } => {
            let l: List<ExceptionOut> = c.get(&format!("/api/v1/exceptions?all={all}"))?;
            emit(format, &l.items, |v| rows(v))
        }
        ExceptionsCmd::Show { id, format } => {
            let e: ExceptionOut = c.get(&format!("/api/v1/exceptions/{}", enc(&id)))?;
            match format {
                Format::Json => json(&e),
                Format::Table => {
                    show(&e);
                    Ok(())
                }
            }
        }
        ExceptionsCmd::Revoke { id, reason } => {
            let e: ExceptionOut = c.send(
                "POST",
                &format!("/api/v1/exceptions/{}/revoke", enc(&id)),
                &RevokeIn { reason },
            )?;
            println!("revoked {}", e.id);
            Ok(())
        }
        ExceptionsCmd::Review { format } => {
            let r: ExceptionReviewOut = c.get("/api/v1/exceptions/review")?;
            match format {
                Format::Json => json(&r),
                Format::Table => {
                    for (title, list) in [
                        ("Expiring within 7 days", &r.expiring),
                        ("Expired", &r.expired),
                        ("Ownerless", &r.ownerless),
                    ] {
                        println!("{title}: {}", list.len());
                        if !list.is_empty() {
                            print!("{}", rows(list));
                        }
                    }
                    Ok(())
                }
            }
        }
    }
}
