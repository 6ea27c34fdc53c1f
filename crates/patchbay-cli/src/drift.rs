//! `patchbay drift [GROUP|ASSET]`: configuration drift per policy group
//! (docs/drift.md).

use crate::Format;
use crate::conn::enc;
use crate::output::{json, table};
use patchbay_client::Client;
use patchbay_proto::api::DriftOut;

/// `patchbay drift` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DriftArgs {
    /// A policy group, or an asset (its groups, its own line only); none:
    /// every group.
    #[arg(value_name = "GROUP|ASSET")]
    pub target: Option<String>,
    /// Compare with this golden host's packages instead of the modal
    /// version per package.
    #[arg(long, value_name = "ASSET")]
    pub golden: Option<String>,
    /// Pin this asset as GROUP's golden host (stored and audited; its
    /// packages become the group's baseline for drift, the metric and
    /// --converge), then show the drift.
    #[arg(long, value_name = "ASSET", conflicts_with_all = ["unpin_golden", "golden"])]
    pub pin_golden: Option<String>,
    /// Unpin GROUP's golden host (back to the modal baseline), then show the
    /// drift.
    #[arg(long, conflicts_with = "golden")]
    pub unpin_golden: bool,
    /// Print the JSON answer (baselines and every difference).
    #[arg(long)]
    pub json: bool,
    /// Output format (`--json` is `--format json`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs `patchbay drift`.
pub fn drift(c: &Client, a: DriftArgs) -> anyhow::Result<()> {
    if a.pin_golden.is_some() || a.unpin_golden {
        let Some(group) = &a.target else {
            anyhow::bail!("--pin-golden / --unpin-golden need the GROUP");
        };
        let path = format!("/api/v1/drift/{}/golden", enc(group));
        match &a.pin_golden {
            Some(asset) => {
                let _: serde_json::Value = c.send(
                    "PUT",
                    &path,
                    &patchbay_proto::api::GoldenIn {
                        asset: asset.clone(),
                    },
                )?;
            }
            None => c.delete(&path)?,
        }
    }
    let mut q = Vec::new();
    if let Some(t) = &a.target {
        q.push(format!("target={}", enc(t)));
    }
    if let Some(g) = &a.golden {
        q.push(format!("golden={}", enc(g)));
    }
    let path = if q.is_empty() {
        "/api/v1/drift".to_owned()
    } else {
        format!("/api/v1/drift?{}", q.join("&"))
    };
    let d: DriftOut = c.get(&path)?;
    if a.json || matches!(a.format, Format::Json) {
        return json(&d);
    }
    print!("{}", render(&d));
    Ok(())
}

/// The table: per group a summary line, then one row per difference.
pub fn render(d: &DriftOut) -> String {
    let mut out = String::new();
    let summary: Vec<Vec<String>> = d
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                match &g.golden {
                    Some(h) => format!("golden {h}"),
                    None => "modal".into(),
                },
                g.format.clone(),
                g.hosts.to_string(),
                g.baseline.len().to_string(),
                g.drifted_packages.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "GROUP", "BASELINE", "FORMAT", "HOSTS", "PACKAGES", "DRIFTED",
        ],
        &summary,
    ));
    let rows: Vec<Vec<String>> = d
        .groups
        .iter()
        .flat_map(|g| {
            g.assets.iter().flat_map(move |h| {
                h.differences.iter().map(move |x| {
                    vec![
                        g.group.clone(),
                        h.asset.clone(),
                        x.name.clone(),
                        x.arch.clone(),
                        x.kind.clone(),
                        x.installed.clone().unwrap_or_else(|| "-".into()),
                        x.baseline.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "GROUP",
                "ASSET",
                "PACKAGE",
                "ARCH",
                "DRIFT",
                "INSTALLED",
                "BASELINE",
            ],
            &rows,
        ));
    }
    for g in &d.groups {
        for s in &g.skipped {
            out.push_str(&format!(
                "{}: {} left out: {}\n",
                crate::output::clean(&g.group),
                crate::output::clean(&s.asset),
                crate::output::clean(&s.reason)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_proto::api::{DriftDifferenceOut, GroupDriftOut, HostDriftOut, PreviewSkip};

    #[test]
    fn the_table_names_each_difference_and_escapes_what_it_did_not_write() {
        let d = DriftOut {
            groups: vec![GroupDriftOut {
                group: "web".into(),
                baseline_source: "modal".into(),
                golden: None,
                format: "deb".into(),
                hosts: 2,
                baseline: vec![],
                drifted_packages: 1,
                assets: vec![HostDriftOut {
                    asset: "h\u{1b}[31m1".into(),
                    newer: 0,
                    older: 1,
                    differs: 0,
                    missing: 0,
                    extra: 0,
                    differences: vec![DriftDifferenceOut {
                        name: "curl".into(),
                        arch: "amd64".into(),
                        kind: "older".into(),
                        baseline: Some("7.88.1-10".into()),
                        installed: Some("7.88.1-9".into()),
                    }],
                }],
                skipped: vec![PreviewSkip {
                    asset: "x\u{202e}y".into(),
                    reason: "no agent".into(),
                }],
            }],
        };
        let t = render(&d);
        assert!(t.contains("older"), "{t}");
        assert!(t.contains("7.88.1-9") && t.contains("7.88.1-10"), "{t}");
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202e}'), "{t:?}");
    }
}
