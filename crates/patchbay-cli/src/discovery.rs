//! `patchbay discovery import|list|adopt|dismiss`: machines seen by network
//! scans, DHCP leases and cloud inventories, reconciled with the registry.

use crate::Format;
use crate::conn::enc;
use crate::output::{clean, json, table};
use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use patchbay_client::Client;
use patchbay_proto::discovery::{
    AcceptExposure, AdoptShadow, DiscoveryImportOut, DiscoveryOut, DismissShadow, ShadowOut,
};
use std::path::PathBuf;

/// The kind of a discovery file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// nmap XML (`nmap -oX FILE …`).
    Nmap,
    /// ISC dhcpd lease file (`/var/lib/dhcp/dhcpd.leases`).
    Dhcpd,
    /// dnsmasq lease file (`/var/lib/misc/dnsmasq.leases`).
    Dnsmasq,
    /// `aws ec2 describe-instances` output.
    Aws,
    /// `az vm list -d` output.
    Azure,
    /// `gcloud compute instances list --format=json` output.
    Gcp,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Nmap => "nmap",
            Kind::Dhcpd => "dhcpd",
            Kind::Dnsmasq => "dnsmasq",
            Kind::Aws => "aws",
            Kind::Azure => "azure",
            Kind::Gcp => "gcp",
        }
    }
}

/// `patchbay discovery …`
#[derive(Debug, Subcommand)]
pub enum DiscoveryCmd {
    /// Import a scan, lease file or cloud inventory (operator or admin).
    ///
    /// The file replaces what its source saw before (re-importing a re-scan
    /// is idempotent); machines no asset stands for become shadow
    /// candidates, raised once each as `asset.shadow_found`.
    Import {
        /// What the file is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The source's name (default: the kind and the file's name); a
        /// later import under the same name replaces this one.
        #[arg(long)]
        source: Option<String>,
        /// The scan was taken from outside the network: the ports it reached
        /// are internet-facing.
        #[arg(long)]
        external: bool,
        /// The file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The reconciliation: shadow candidates, ghosts, duplicates, address
    /// conflicts (--matched: also what matched which asset, and by which rule).
    List {
        /// Also list the matched observations.
        #[arg(long)]
        matched: bool,
        /// Also list dismissed candidates still seen.
        #[arg(long)]
        dismissed: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Adopt a shadow candidate as an agentless asset (operator or admin).
    Adopt {
        /// The candidate's key (`mac:…`, `cloud:…`, `ip:…`; see `list`).
        key: String,
        /// The asset's name (default: the candidate's host name).
        #[arg(long)]
        name: Option<String>,
        /// Kind (default server).
        #[arg(long)]
        kind: Option<String>,
        /// Owner.
        #[arg(long)]
        owner: Option<String>,
        /// Business impact (critical, high, medium, low).
        #[arg(long)]
        business_impact: Option<String>,
        /// Exposure (internet-facing, privileged-data, internal, isolated).
        #[arg(long)]
        exposure: Option<String>,
        /// Environment.
        #[arg(long)]
        environment: Option<String>,
        /// A tag (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Also make it an enrolment task: approve the enrolment of a host
        /// of that name into the new asset (24 h) and create a one-use
        /// enrolment token for it; prints the agent's command line.
        #[arg(long)]
        enroll: bool,
    },
    /// Accept what an external scan found: ASSET becomes internet-facing
    /// (operator or admin; audited with the ports and scans as the reason).
    AcceptExposure {
        /// The asset `list` shows under "Exposure evidence".
        asset: String,
    },
    /// Dismiss a shadow candidate, with why (operator or admin; audited).
    Dismiss {
        /// The candidate's key.
        key: String,
        /// Why it is not to be managed.
        #[arg(long)]
        reason: String,
    },
}

fn shadow_rows(list: &[ShadowOut]) -> Vec<Vec<String>> {
    list.iter()
        .map(|s| {
            vec![
                s.key.clone(),
                s.ips.join(","),
                s.host_names.join(","),
                s.ports
                    .iter()
                    .map(|p| format!("{}/{}", p.port, p.proto))
                    .collect::<Vec<_>>()
                    .join(","),
                s.sources.join(","),
                s.last_seen.clone(),
                s.dismissed.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

fn print_view(v: &DiscoveryOut, matched: bool, dismissed: bool) {
    const SHADOW: &[&str] = &[
        "KEY",
        "ADDRESSES",
        "NAMES",
        "OPEN PORTS",
        "SOURCES",
        "LAST SEEN",
        "DISMISSED",
    ];
    println!("Shadow candidates: {}", v.shadows.len());
    if !v.shadows.is_empty() {
        print!("{}", table(SHADOW, &shadow_rows(&v.shadows)));
    }
    println!("Ghosts: {}", v.ghosts.len());
    if !v.ghosts.is_empty() {
        let rows: Vec<Vec<String>> = v
            .ghosts
            .iter()
            .map(|g| vec![g.asset.clone(), g.last_evidence.clone()])
            .collect();
        print!("{}", table(&["ASSET", "LAST EVIDENCE"], &rows));
    }
    println!("Duplicates: {}", v.duplicates.len());
    for d in &v.duplicates {
        println!("  {} share {}", clean(&d.assets.join(", ")), clean(&d.by));
    }
    println!("Address conflicts: {}", v.conflicts.len());
    for c in &v.conflicts {
        println!(
            "  {} has MACs {} (seen by {})",
            clean(&c.ip),
            clean(&c.macs.join(", ")),
            clean(&c.sources.join(", "))
        );
    }
    println!("Exposure evidence: {}", v.exposure.len());
    for e in &v.exposure {
        println!(
            "  {} is recorded {} but {} reached {} (accept: patchbay discovery accept-exposure {})",
            clean(&e.asset),
            clean(&e.recorded),
            clean(&e.sources.join(", ")),
            clean(&e.ports.join(", ")),
            clean(&e.asset)
        );
    }
    if dismissed {
        println!("Dismissed: {}", v.dismissed.len());
        if !v.dismissed.is_empty() {
            print!("{}", table(SHADOW, &shadow_rows(&v.dismissed)));
        }
    }
    if matched {
        let rows: Vec<Vec<String>> = v
            .matched
            .iter()
            .map(|m| {
                vec![
                    m.asset.clone(),
                    m.rule.clone(),
                    m.ips.join(","),
                    m.source.clone(),
                ]
            })
            .collect();
        println!("Matched: {}", v.matched.len());
        print!(
            "{}",
            table(&["ASSET", "RULE", "ADDRESSES", "SOURCE"], &rows)
        );
    }
}

/// Runs a `discovery` command.
pub fn run(c: &Client, cmd: DiscoveryCmd) -> anyhow::Result<()> {
    match cmd {
        DiscoveryCmd::Import {
            kind,
            source,
            external,
            file,
            format,
        } => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "upload".into());
            let source = source.unwrap_or_else(|| name.clone());
            let meta =
                std::fs::metadata(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut f = std::fs::File::open(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let out: DiscoveryImportOut = c
                .post_stream(
                    &format!(
                        "/api/v1/discovery/import?kind={}&source={}&external={external}&name={}",
                        kind.as_str(),
                        enc(&source),
                        enc(&name)
                    ),
                    "application/octet-stream",
                    &mut f,
                    Some(meta.len()),
                )
                .with_context(|| format!("importing {}", file.display()))?;
            match format {
                Format::Json => json(&out),
                Format::Table => {
                    println!(
                        "{}: {} machines, {} matched to assets, {} shadow candidates ({} new)",
                        clean(&out.source),
                        out.observations,
                        out.matched,
                        out.shadows,
                        out.new_shadows.len()
                    );
                    for k in &out.new_shadows {
                        println!("  new: {}", clean(k));
                    }
                    Ok(())
                }
            }
        }
        DiscoveryCmd::List {
            matched,
            dismissed,
            format,
        } => {
            let v: DiscoveryOut = c.get("/api/v1/discovery")?;
            match format {
                Format::Json => json(&v),
                Format::Table => {
                    print_view(&v, matched, dismissed);
                    Ok(())
                }
            }
        }
        DiscoveryCmd::Adopt {
            key,
            name,
            kind,
            owner,
            business_impact,
            exposure,
            environment,
            tags,
            enroll,
        } => {
            let out: serde_json::Value = c.send(
                "POST",
                "/api/v1/discovery/adopt",
                &AdoptShadow {
                    key: key.clone(),
                    name,
                    kind,
                    owner,
                    business_impact,
                    exposure,
                    environment,
                    tags,
                },
            )?;
            let asset = out["asset"].as_str().unwrap_or("?").to_string();
            println!("adopted {} as asset {}", clean(&key), clean(&asset));
            if enroll {
                let _: serde_json::Value = c.send(
                    "POST",
                    &format!("/api/v1/assets/{}/enrollment-approvals", enc(&asset)),
                    &patchbay_proto::api::EnrollmentApprovalIn {
                        ttl_secs: Some(86_400),
                        note: Some(format!("enrolment task from discovery {key}")),
                    },
                )?;
                let t: patchbay_proto::api::EnrollTokenCreated = c.send(
                    "POST",
                    "/api/v1/enroll-tokens",
                    &patchbay_proto::api::CreateEnrollToken {
                        name: Some(format!("discovery:{asset}")),
                        uses: Some(1),
                        ttl_secs: Some(86_400),
                    },
                )?;
                println!(
                    "enrolment task: on {} (host name {}), within 24 h run:",
                    clean(&asset),
                    clean(&asset)
                );
                println!(
                    "  patchbay-agent --server {} --enroll-token {} --once",
                    clean(c.base()),
                    t.token
                );
            }
            Ok(())
        }
        DiscoveryCmd::AcceptExposure { asset } => {
            let _: serde_json::Value = c.send(
                "POST",
                "/api/v1/discovery/exposure",
                &AcceptExposure {
                    asset: asset.clone(),
                },
            )?;
            println!("{} is now internet-facing", clean(&asset));
            Ok(())
        }
        DiscoveryCmd::Dismiss { key, reason } => {
            let _: serde_json::Value = c.send(
                "POST",
                "/api/v1/discovery/dismiss",
                &DismissShadow {
                    key: key.clone(),
                    reason,
                },
            )?;
            println!("dismissed {}", clean(&key));
            Ok(())
        }
    }
}
