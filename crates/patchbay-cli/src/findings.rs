//! `patchbay findings`, `patchbay feeds list`, `patchbay vercmp`.

use crate::Format;
use crate::conn::enc;
use crate::output::{json, table};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{FeedOut, FindingOut, List};

/// `patchbay findings …`
#[derive(Debug, Subcommand)]
pub enum FindingsCmd {
    /// List findings (open ones unless --all), with CVEs, CVSS, EPSS, KEV and due dates.
    List {
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
        /// Include resolved findings.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Runs a `findings` command.
pub fn findings(c: &Client, cmd: FindingsCmd) -> anyhow::Result<()> {
    match cmd {
        FindingsCmd::List { asset, all, format } => {
            let mut path = format!("/api/v1/findings?all={all}");
            if let Some(a) = &asset {
                path.push_str(&format!("&asset={}", enc(a)));
            }
            let l: List<FindingOut> = c.get(&path)?;
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => print_findings(&l.items),
            }
        }
    }
    Ok(())
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn print_findings(items: &[FindingOut]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|f| {
            vec![
                f.asset.clone(),
                crate::output::package_cell(&f.package, f.unmanaged_path.as_deref()),
                f.installed_version.clone(),
                f.fixed_version.clone().unwrap_or_else(|| "-".into()),
                f.advisory.clone(),
                f.cves.len().to_string(),
                opt_f(f.cvss, 1),
                opt_f(f.epss, 3),
                if f.kev { "KEV".into() } else { String::new() },
                f.due_date.clone().unwrap_or_default(),
                if f.resolved_at.is_some() {
                    "resolved".into()
                } else {
                    "open".into()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ASSET",
                "PACKAGE",
                "INSTALLED",
                "FIXED",
                "ADVISORY",
                "CVES",
                "CVSS",
                "EPSS",
                "KEV",
                "DUE",
                "STATUS"
            ],
            &rows
        )
    );
}

/// Prints recorded feeds.
pub fn feeds_list(c: &Client, format: Format) -> anyhow::Result<()> {
    let l: List<FeedOut> = c.get("/api/v1/feeds")?;
    match format {
        Format::Json => json(&l.items)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = l
                .items
                .iter()
                .map(|f| {
                    vec![
                        f.kind.clone(),
                        f.version.clone(),
                        f.records.to_string(),
                        f.skipped.to_string(),
                        f.imported_at.clone(),
                        f.source.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "KIND", "VERSION", "RECORDS", "SKIPPED", "IMPORTED", "SOURCE"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// `patchbay vercmp SCHEME A B`: prints `<`, `=` or `>`.
pub fn vercmp(scheme: &str, a: &str, b: &str) -> anyhow::Result<()> {
    let scheme: patchbay_version::Scheme = scheme.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let ord = patchbay_version::compare(scheme, a, b)?;
    println!(
        "{}",
        match ord {
            std::cmp::Ordering::Less => "<",
            std::cmp::Ordering::Equal => "=",
            std::cmp::Ordering::Greater => ">",
        }
    );
    Ok(())
}
