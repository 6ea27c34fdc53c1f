//! Client commands over the REST API.

use crate::Format;
use crate::conn::enc;
use crate::output::{clean, json, table};
use anyhow::Context;
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_core::auth::Role;
use patchbay_proto::api::{
    AssetDetail, AssetPatch, AssetSummary, AuditEventOut, CreateEnrollToken, CreateToken,
    EnrollTokenCreated, EnrollmentApprovalIn, EnrollmentApprovalOut, ImportAsset, ImportResult,
    List, TokenCreated, TokenInfo,
};
use std::path::PathBuf;
use std::time::Duration;

/// `assets list --liveness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LivenessFilter {
    /// An agent checks in.
    Managed,
    /// An agent missed its check-ins.
    Stale,
    /// Imported, no agent.
    Unmanaged,
    /// Nothing attested it (no check-in, no discovery source) for the ghost threshold.
    Ghost,
    /// Another record claims the same machine (MAC, machine id, cloud id).
    Duplicate,
    /// Seen by discovery, no record (not an asset: the candidates are listed).
    Shadow,
}

/// `patchbay assets …`
#[derive(Debug, Subcommand)]
pub enum AssetsCmd {
    /// List assets with liveness (managed, stale, unmanaged).
    List {
        /// Only these: `managed`, `stale`, `unmanaged`; `ghost` or
        /// `duplicate` (from discovery's reconciliation); `shadow` lists the
        /// machines discovery saw that no asset stands for.
        #[arg(long, value_enum)]
        liveness: Option<LivenessFilter>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one asset; JSON includes its packages.
    Show {
        /// Asset name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Change an asset's attributes.
    Set {
        /// Asset name.
        name: String,
        /// Kind: server, desktop, cloud-instance, network-device, appliance, application.
        #[arg(long)]
        kind: Option<String>,
        /// Owner (team or person).
        #[arg(long)]
        owner: Option<String>,
        /// Business impact: critical, high, medium, low.
        #[arg(long)]
        business_impact: Option<String>,
        /// Exposure: internet-facing, privileged-data, internal, isolated.
        #[arg(long)]
        exposure: Option<String>,
        /// Environment, e.g. prod, staging.
        #[arg(long)]
        environment: Option<String>,
        /// Tags, comma-separated (replaces the existing set).
        #[arg(long, value_delimiter = ',')]
        tags: Option<Vec<String>>,
    },
    /// Let the next agent enrolment take over (or adopt) an asset.
    ///
    /// Needed when a host enrols again without its old agent credential (a
    /// reinstalled host, a lost state directory) while the asset's agent is
    /// still active, and when a new host's name matches an imported asset.
    /// One use, and only until it expires.
    ApproveEnrollment {
        /// Asset name.
        name: String,
        /// How long the approval stays usable, e.g. 30m, 1h (at most 24h).
        #[arg(long, default_value = "1h", value_parser = patchbay_core::when::flag_interval)]
        ttl: Duration,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        note: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Import agentless assets from a CSV or JSON file (by extension, or --csv/--json).
    ///
    /// CSV columns: name (required), kind, owner, business_impact, exposure,
    /// environment, tags (a;b), os (id:version), packages (name=version;name=version).
    /// JSON: a list of objects with the same fields (packages as [{name, version}]).
    Import {
        /// The file.
        file: PathBuf,
        /// Treat the file as CSV.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Treat the file as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `patchbay keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Rotate the server's signing key on the running server: a new key is
    /// generated in its data directory, its public key is announced in the
    /// audit log signed by the old key, and from then on the new key signs
    /// audit entries, jobs and evidence. Agents re-pin from the announcement
    /// at their next check-in; `audit verify --public-key OLD` follows it.
    /// Other replicas sharing the database must be given the new key file
    /// (DATA_DIR/server-signing.key) and restarted: until then they refuse
    /// changes. Prints the announcement.
    Rotate {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Runs a `keys` command.
pub fn keys(c: &Client, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Rotate { format } => {
            let r: patchbay_app::keys::KeyRotated =
                c.send("POST", "/api/v1/keys/rotate", &serde_json::json!({}))?;
            match format {
                Format::Json => json(&r)?,
                Format::Table => {
                    println!("old public key: {}", r.announcement.old_public_key);
                    println!("new public key: {}", r.announcement.new_public_key);
                    println!(
                        "announced in the audit log under the old key; `audit verify --public-key {}` follows it",
                        r.announcement.old_public_key
                    );
                }
            }
            Ok(())
        }
    }
}

/// `patchbay tokens …`
#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create an API token; its secret is printed once.
    Create {
        /// Label: who or what uses the token.
        #[arg(long)]
        name: String,
        /// Role: admin, operator, approver, auditor, or calendar (only the
        /// subscribable calendar feed, /calendar.ics?token=…).
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 90d, 12h (at most 366d). Without it the token never
        /// expires (a warning is printed); an expired token is refused with
        /// 401 token_expired.
        #[arg(long, value_parser = patchbay_core::when::flag_interval)]
        ttl: Option<Duration>,
        /// Restrict the token below its role to these scopes (repeat the flag
        /// or separate with commas): read, write, enrol, approve, tokens. The
        /// token may then do only what its role permits *and* a scope covers.
        /// Without it: everything the role permits.
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<patchbay_core::auth::Scope>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List API tokens (never their secrets), with expiry and scopes.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke an API token by id.
    Revoke {
        /// Token id.
        id: i64,
    },
}

/// `patchbay enroll-token …`
#[derive(Debug, Subcommand)]
pub enum EnrollTokenCmd {
    /// Create an agent enrolment token.
    Create {
        /// How many agents may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = patchbay_core::when::flag_interval)]
        ttl: Duration,
        /// Label.
        #[arg(long)]
        name: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `patchbay audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit events, oldest first.
    List {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Verify the hash chain offline, straight from the database (no server).
    ///
    /// Checks that sequence numbers are dense, every entry's hash matches its
    /// content and the previous entry's hash, the server's signatures (every
    /// --every-th signed entry and the last one), and that the chain's head is
    /// its last entry. Exits 0 when intact; otherwise exits 1 naming the first
    /// bad entry (edited, deleted, inserted or reordered).
    Verify(crate::evidence::VerifyArgs),
    /// Export audit entries with at in [--from, --to) as JSON Lines, with
    /// hashes and signatures so the segment can be re-checked.
    Export {
        /// From (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        from: String,
        /// To, exclusive.
        #[arg(long)]
        to: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs an `assets` command.
pub fn assets(c: &Client, cmd: AssetsCmd) -> anyhow::Result<()> {
    match cmd {
        AssetsCmd::List { liveness, format } => {
            let mut l: List<AssetSummary> = c.get("/api/v1/assets")?;
            if let Some(f) = liveness {
                let keep: Option<std::collections::BTreeSet<String>> = match f {
                    LivenessFilter::Managed | LivenessFilter::Stale | LivenessFilter::Unmanaged => {
                        None
                    }
                    LivenessFilter::Ghost | LivenessFilter::Duplicate | LivenessFilter::Shadow => {
                        let v: patchbay_proto::discovery::DiscoveryOut =
                            c.get("/api/v1/discovery")?;
                        match f {
                            LivenessFilter::Shadow => {
                                return crate::output::emit(format, &v.shadows, |s| {
                                    crate::output::table(
                                        &["KEY", "ADDRESSES", "NAMES", "SOURCES", "LAST SEEN"],
                                        &s.iter()
                                            .map(|x| {
                                                vec![
                                                    x.key.clone(),
                                                    x.ips.join(","),
                                                    x.host_names.join(","),
                                                    x.sources.join(","),
                                                    x.last_seen.clone(),
                                                ]
                                            })
                                            .collect::<Vec<_>>(),
                                    )
                                });
                            }
                            LivenessFilter::Ghost => {
                                Some(v.ghosts.into_iter().map(|g| g.asset).collect())
                            }
                            _ => Some(v.duplicates.into_iter().flat_map(|d| d.assets).collect()),
                        }
                    }
                };
                let want = match f {
                    LivenessFilter::Managed => "managed",
                    LivenessFilter::Stale => "stale",
                    LivenessFilter::Unmanaged => "unmanaged",
                    _ => "",
                };
                l.items.retain(|a| match &keep {
                    Some(names) => names.contains(&a.name),
                    None => a.liveness == want,
                });
            }
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|a| {
                            vec![
                                a.name.clone(),
                                a.kind.clone(),
                                a.liveness.clone(),
                                a.os.clone(),
                                a.package_count.to_string(),
                                a.owner.clone(),
                                a.environment.clone(),
                                a.business_impact.clone(),
                                a.exposure.clone(),
                                a.last_seen.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "NAME",
                                "KIND",
                                "LIVENESS",
                                "OS",
                                "PACKAGES",
                                "OWNER",
                                "ENV",
                                "IMPACT",
                                "EXPOSURE",
                                "LAST SEEN"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        AssetsCmd::Show { name, format } => {
            let a: AssetDetail = c.get(&format!("/api/v1/assets/{}", enc(&name)))?;
            match format {
                Format::Json => json(&a)?,
                Format::Table => print_asset(&a),
            }
        }
        AssetsCmd::Set {
            name,
            kind,
            owner,
            business_impact,
            exposure,
            environment,
            tags,
        } => {
            let patch = AssetPatch {
                kind,
                owner,
                business_impact,
                exposure,
                environment,
                tags,
            };
            let a: AssetDetail =
                c.send("PATCH", &format!("/api/v1/assets/{}", enc(&name)), &patch)?;
            println!("updated {}", clean(&a.summary.name));
        }
        AssetsCmd::ApproveEnrollment {
            name,
            ttl,
            note,
            format,
        } => {
            let a: EnrollmentApprovalOut = c.send(
                "POST",
                &format!("/api/v1/assets/{}/enrollment-approvals", enc(&name)),
                &EnrollmentApprovalIn {
                    ttl_secs: Some(ttl.as_secs()),
                    note,
                },
            )?;
            match format {
                Format::Json => json(&a)?,
                Format::Table => println!(
                    "approved the next enrolment ({}) of {} until {} (approval {})",
                    a.kind,
                    clean(&a.asset),
                    a.expires_at,
                    a.id
                ),
            }
        }
        AssetsCmd::Import {
            file,
            csv,
            json: as_json,
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let is_csv = csv
                || (!as_json
                    && file
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("csv")));
            let r: ImportResult = if is_csv {
                c.post_raw("/api/v1/assets/import", "text/csv", &data)?
            } else {
                let items: Vec<ImportAsset> = serde_json::from_slice(&data)
                    .with_context(|| format!("{} is not a JSON list of assets", file.display()))?;
                c.send("POST", "/api/v1/assets/import", &items)?
            };
            println!(
                "imported {}: {} created, {} updated",
                file.display(),
                r.created,
                r.updated
            );
        }
    }
    Ok(())
}

fn print_asset(a: &AssetDetail) {
    let s = &a.summary;
    let kv = [
        ("name", s.name.clone()),
        ("kind", s.kind.clone()),
        ("liveness", s.liveness.clone()),
        (
            "last seen",
            s.last_seen.clone().unwrap_or_else(|| "-".into()),
        ),
        ("owner", s.owner.clone()),
        ("environment", s.environment.clone()),
        ("business impact", s.business_impact.clone()),
        ("exposure", s.exposure.clone()),
        ("tags", s.tags.join(", ")),
        ("hostname", a.hostname.clone()),
        ("os", format!("{} ({})", s.os, a.os_pretty_name)),
        ("kernel", a.kernel.clone()),
        ("arch", a.arch.clone()),
        ("ip addresses", a.ip_addresses.join(", ")),
        ("reboot required", a.reboot_required.to_string()),
        ("needs restart", a.services_needing_restart.join(", ")),
        (
            "packages",
            format!(
                "{} ({})",
                s.package_count,
                a.package_format.clone().unwrap_or_default()
            ),
        ),
        ("pending updates", a.pending_updates.len().to_string()),
    ];
    for (k, v) in kv {
        println!("{k:>16}: {}", clean(&v));
    }
    if !a.pending_updates.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = a
            .pending_updates
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.current_version.clone(),
                    u.available_version.clone(),
                    u.origin.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["PENDING", "INSTALLED", "AVAILABLE", "ORIGIN"], &rows)
        );
    }
    if !a.unmanaged.is_empty() {
        // Software installed outside the package manager (pip, npm -g, Go
        // and cargo-auditable binaries), with where it is.
        println!();
        let rows: Vec<Vec<String>> = a
            .unmanaged
            .iter()
            .map(|u| {
                vec![
                    u.ecosystem.osv().to_owned(),
                    u.name.clone(),
                    u.version.clone(),
                    u.path.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["UNMANAGED", "NAME", "VERSION", "PATH"], &rows)
        );
    }
}

/// Runs a `tokens` command.
pub fn tokens(c: &Client, cmd: TokensCmd) -> anyhow::Result<()> {
    match cmd {
        TokensCmd::Create {
            name,
            role,
            ttl,
            scopes,
            format,
        } => {
            if ttl.is_none() {
                eprintln!(
                    "warning: this token never expires; pass --ttl (e.g. --ttl 90d) to limit its lifetime"
                );
            }
            let t: TokenCreated = c.send(
                "POST",
                "/api/v1/tokens",
                &CreateToken {
                    name,
                    role,
                    ttl_secs: ttl.map(|d| d.as_secs()),
                    scopes: (!scopes.is_empty()).then_some(scopes),
                },
            )?;
            match format {
                Format::Json => json(&t)?,
                Format::Table => {
                    println!(
                        "created token {} ({}, role {})",
                        t.info.id,
                        clean(&t.info.name),
                        t.info.role
                    );
                    println!("{}", t.token);
                    eprintln!("store this secret now: it is not shown again");
                }
            }
        }
        TokensCmd::List { format } => {
            let l: List<TokenInfo> = c.get("/api/v1/tokens")?;
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.name.clone(),
                                t.role.to_string(),
                                t.prefix.clone(),
                                t.created_at.clone(),
                                t.last_used_at.clone().unwrap_or_else(|| "-".into()),
                                t.revoked_at.clone().unwrap_or_else(|| "-".into()),
                                t.expires_at.clone().unwrap_or_else(|| "never".into()),
                                t.scopes
                                    .as_ref()
                                    .map(|l| {
                                        l.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                                    })
                                    .unwrap_or_else(|| "(role)".into()),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "ID",
                                "NAME",
                                "ROLE",
                                "PREFIX",
                                "CREATED",
                                "LAST USED",
                                "REVOKED",
                                "EXPIRES",
                                "SCOPES"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        TokensCmd::Revoke { id } => {
            c.delete(&format!("/api/v1/tokens/{id}"))?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// Runs an `enroll-token` command.
pub fn enroll_token(c: &Client, cmd: EnrollTokenCmd) -> anyhow::Result<()> {
    match cmd {
        EnrollTokenCmd::Create {
            uses,
            ttl,
            name,
            format,
        } => {
            let t: EnrollTokenCreated = c.send(
                "POST",
                "/api/v1/enroll-tokens",
                &CreateEnrollToken {
                    name,
                    uses: Some(uses),
                    ttl_secs: Some(ttl.as_secs()),
                },
            )?;
            match format {
                Format::Json => json(&t)?,
                Format::Table => {
                    println!("{}", t.token);
                    eprintln!(
                        "enrolment token {}: {} use(s), expires {}",
                        t.id, t.uses, t.expires_at
                    );
                    eprintln!(
                        "enrol a host: patchbay-agent --server {} --enroll-token {} --state-dir /var/lib/patchbay-agent",
                        c.base(),
                        t.token
                    );
                }
            }
        }
    }
    Ok(())
}

/// Runs an `audit` command.
pub fn audit(c: &Client, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify(_) => unreachable!("verify runs offline"),
        AuditCmd::Export { from, to, out } => {
            let text = c.get_text(&format!(
                "/api/v1/audit/export?from={}&to={}",
                enc(&from),
                enc(&to)
            ))?;
            match out {
                Some(p) => {
                    std::fs::write(&p, &text)
                        .with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote {} entries to {}", text.lines().count(), p.display());
                }
                // JSON Lines for machines: exact.
                None => std::print!("{text}"),
            }
        }
        AuditCmd::List {
            after,
            limit,
            format,
        } => {
            let l: List<AuditEventOut> =
                c.get(&format!("/api/v1/audit?after={after}&limit={limit}"))?;
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|e| {
                            vec![
                                e.seq.to_string(),
                                e.at.clone(),
                                e.actor.clone(),
                                e.action.clone(),
                                e.target.clone(),
                                e.outcome.clone(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME"],
                            &rows
                        )
                    );
                }
            }
        }
    }
    Ok(())
}
