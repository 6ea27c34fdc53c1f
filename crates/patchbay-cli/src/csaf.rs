//! `patchbay csaf matches ASSET`: what the stored CSAF documents say about an
//! asset's products — CVEs, the fixed release, the vendor fix (URL),
//! workaround or mitigation — and the CISA KEV entries of its products that
//! no imported advisory assesses (docs/csaf.md).

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, table};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{CsafMatchOut, List};

/// `patchbay csaf …`
#[derive(Debug, Subcommand)]
pub enum CsafCmd {
    /// The asset's products under every stored CSAF document, with their
    /// remediations (vendor fix and URL, workaround, mitigation).
    Matches {
        /// The asset's name.
        asset: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn rows(items: &[CsafMatchOut]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .flat_map(|m| {
            let head = vec![
                m.document.clone(),
                m.package.clone(),
                m.installed.clone(),
                m.fixed.clone().unwrap_or_else(|| "-".into()),
                m.cves.join(" "),
            ];
            let rems: Vec<String> = m
                .remediations
                .iter()
                .map(|r| {
                    let text: String = r.details.chars().take(200).collect();
                    match &r.url {
                        Some(u) => format!("{}: {text} <{u}>", r.category),
                        None => format!("{}: {text}", r.category),
                    }
                })
                .collect();
            if rems.is_empty() {
                vec![[head, vec!["-".into()]].concat()]
            } else {
                rems.into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        if i == 0 {
                            [head.clone(), vec![r]].concat()
                        } else {
                            vec![String::new(); 5].into_iter().chain([r]).collect()
                        }
                    })
                    .collect()
            }
        })
        .collect();
    table(
        &[
            "DOCUMENT",
            "PRODUCT",
            "INSTALLED",
            "FIXED",
            "CVES",
            "REMEDIATION",
        ],
        &rows,
    )
}

/// Runs a `csaf` command.
pub fn run(c: &Client, cmd: CsafCmd) -> anyhow::Result<()> {
    match cmd {
        CsafCmd::Matches { asset, format } => {
            let l: List<CsafMatchOut> = c.get(&format!("/api/v1/csaf/matches/{}", enc(&asset)))?;
            emit(format, &l.items, |v| rows(v))
        }
    }
}
