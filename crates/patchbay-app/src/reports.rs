//! Reports as of a date (`patchbay_core::report`), rendered as JSON, CSV
//! (formula-injection safe) or a self-contained printable HTML page with SVG
//! charts; each names the controls it evidences.

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::report::{self, AssetRecord, Control, FindingRecord, History};
use serde_json::json;
use std::fmt::Write as _;

/// The report kinds.
pub const KINDS: [&str; 4] = ["compliance", "ttp", "sla", "coverage"];

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// CSV.
    Csv,
    /// HTML with SVG charts.
    Html,
}

impl std::str::FromStr for Format {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(AppError::invalid(format!(
                "format: unknown format {other:?} (json, csv or html)"
            ))),
        }
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
    /// File extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

/// A CSV cell that spreadsheets will not run as a formula: cells starting with
/// `=`, `+`, `-`, `@`, tab or carriage return get a leading `'`.
pub fn csv_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn csv(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(r.iter().map(|c| csv_safe(c)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG: (label, value, max).
fn bars(title: &str, unit: &str, items: &[(String, f64)], max: f64) -> String {
    let row = 22;
    let h = 30 + row * items.len().max(1);
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"0\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(title),
        esc(title)
    );
    let max = if max > 0.0 { max } else { 1.0 };
    if items.is_empty() {
        s.push_str("<text x=\"0\" y=\"41\" font-size=\"12\" fill=\"#666\">(none)</text>");
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 28 + i * row;
        let w = (v / max * 380.0).clamp(0.0, 380.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"170\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"#3b6ea8\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{v} {}</text>",
            y + 13,
            esc(&truncate(label, 24)),
            175.0 + w,
            y + 13,
            esc(unit)
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn html_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn controls_html(cs: &[Control]) -> String {
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| vec![c.framework.into(), c.id.into(), c.title.into()])
        .collect();
    format!(
        "<h3>Controls evidenced</h3>{}",
        html_table(&["Framework", "Control", "Requirement"], &rows)
    )
}

/// Wraps sections into a printable, self-contained page.
pub fn page(title: &str, as_of: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #bbb;padding:3px 8px;font-size:12px;text-align:left}}\
         th{{background:#eee}}h1{{font-size:20px}}h2{{font-size:16px;margin-top:2em}}h3{{font-size:14px}}\
         @media print{{body{{margin:0}}h2{{page-break-before:auto}}figure{{page-break-inside:avoid}}}}</style></head>\
         <body><h1>{t}</h1><p>As of {a}. Generated by Patchbay.</p>{body}</body></html>\n",
        t = esc(title),
        a = esc(as_of)
    )
}

/// Renders one report.
pub fn render(
    kind: &str,
    h: &History,
    as_of: Timestamp,
    format: Format,
) -> Result<String, AppError> {
    let cs = report::controls(kind);
    let with_controls = |v: serde_json::Value| {
        let mut v = v;
        v["controls"] = json!(cs);
        serde_json::to_string_pretty(&v).unwrap_or_default()
    };
    Ok(match kind {
        "compliance" => {
            let r = report::compliance(h, as_of);
            let line = |scope: &str, l: &report::ComplianceLine| {
                vec![
                    scope.to_string(),
                    l.name.clone(),
                    l.assets.to_string(),
                    l.compliant_assets.to_string(),
                    format!("{}", l.compliant_pct),
                    l.findings.within_sla.to_string(),
                    l.findings.overdue.to_string(),
                    l.findings.excepted.to_string(),
                    l.findings.patched.to_string(),
                ]
            };
            let mut rows = vec![line("fleet", &r.total)];
            rows.extend(r.by_owner.iter().map(|l| line("owner", l)));
            rows.extend(r.by_group.iter().map(|l| line("group", l)));
            rows.extend(r.by_asset.iter().map(|l| line("asset", l)));
            let header = [
                "scope",
                "name",
                "assets",
                "compliant_assets",
                "compliant_pct",
                "within_sla",
                "overdue",
                "excepted",
                "patched",
            ];
            match format {
                Format::Json => with_controls(json!(r)),
                Format::Csv => csv(&header, rows),
                Format::Html => {
                    let chart = |title: &str, ls: &[report::ComplianceLine]| {
                        bars(
                            title,
                            "%",
                            &ls.iter()
                                .map(|l| (l.name.clone(), l.compliant_pct))
                                .collect::<Vec<_>>(),
                            100.0,
                        )
                    };
                    page(
                        "Patch compliance",
                        &r.as_of,
                        &format!(
                            "<h2>Compliance</h2><p>{} of {} assets compliant ({} %): no overdue finding outside an exception.</p>{}{}{}{}",
                            r.total.compliant_assets,
                            r.total.assets,
                            r.total.compliant_pct,
                            chart("Compliant assets by owner", &r.by_owner),
                            chart("Compliant assets by group", &r.by_group),
                            html_table(&header, &rows),
                            controls_html(cs)
                        ),
                    )
                }
            }
        }
        "ttp" => {
            let r = report::time_to_patch(h, as_of);
            let mut rows: Vec<Vec<String>> = r
                .by_tier
                .iter()
                .map(|(t, s)| {
                    vec![
                        t.clone(),
                        s.count.to_string(),
                        s.mean_hours.to_string(),
                        s.median_hours.to_string(),
                        s.p90_hours.to_string(),
                    ]
                })
                .collect();
            rows.push(vec![
                "all".into(),
                r.all.count.to_string(),
                r.all.mean_hours.to_string(),
                r.all.median_hours.to_string(),
                r.all.p90_hours.to_string(),
            ]);
            let header = ["tier", "patched", "mean_hours", "median_hours", "p90_hours"];
            match format {
                Format::Json => with_controls(json!(r)),
                Format::Csv => csv(&header, rows),
                Format::Html => {
                    let max = r.by_tier.values().map(|s| s.p90_hours).fold(0.0, f64::max);
                    let med: Vec<(String, f64)> = r
                        .by_tier
                        .iter()
                        .map(|(t, s)| (t.clone(), s.median_hours))
                        .collect();
                    let p90: Vec<(String, f64)> = r
                        .by_tier
                        .iter()
                        .map(|(t, s)| (t.clone(), s.p90_hours))
                        .collect();
                    page(
                        "Time to patch",
                        &r.as_of,
                        &format!(
                            "<h2>Time to patch</h2><p>From first detection to resolution, findings patched by the date.</p>{}{}{}{}",
                            bars("Median hours by tier", "h", &med, max),
                            bars("p90 hours by tier", "h", &p90, max),
                            html_table(&header, &rows),
                            controls_html(cs)
                        ),
                    )
                }
            }
        }
        "sla" => {
            let r = report::sla_adherence(h, as_of);
            let line = |t: &str, a: &report::Adherence| {
                vec![
                    t.to_string(),
                    a.resolved.to_string(),
                    a.resolved_in_sla.to_string(),
                    a.resolved_in_sla_pct.to_string(),
                    a.open.to_string(),
                    a.open_overdue.to_string(),
                    a.excepted.to_string(),
                ]
            };
            let mut rows: Vec<Vec<String>> = r.by_tier.iter().map(|(t, a)| line(t, a)).collect();
            rows.push(line("all", &r.all));
            let header = [
                "tier",
                "resolved",
                "resolved_in_sla",
                "resolved_in_sla_pct",
                "open",
                "open_overdue",
                "excepted",
            ];
            match format {
                Format::Json => with_controls(json!(r)),
                Format::Csv => csv(&header, rows),
                Format::Html => page(
                    "SLA adherence",
                    &r.as_of,
                    &format!(
                        "<h2>SLA adherence</h2><p>{} % of {} patched findings were patched by their due date; {} of {} open findings are overdue.</p>{}{}{}",
                        r.all.resolved_in_sla_pct,
                        r.all.resolved,
                        r.all.open_overdue,
                        r.all.open,
                        bars(
                            "Patched within SLA by tier",
                            "%",
                            &r.by_tier
                                .iter()
                                .map(|(t, a)| (t.clone(), a.resolved_in_sla_pct))
                                .collect::<Vec<_>>(),
                            100.0
                        ),
                        html_table(&header, &rows),
                        controls_html(cs)
                    ),
                ),
            }
        }
        "coverage" => {
            let r = report::coverage(h, as_of);
            let header = [
                "known",
                "managed",
                "unmanaged",
                "seen_24h",
                "seen_24h_pct",
                "stale",
            ];
            let rows = vec![vec![
                r.known.to_string(),
                r.managed.to_string(),
                r.unmanaged.to_string(),
                r.seen_24h.to_string(),
                r.seen_24h_pct.to_string(),
                r.stale.join(" "),
            ]];
            match format {
                Format::Json => with_controls(json!(r)),
                Format::Csv => csv(&header, rows),
                Format::Html => page(
                    "Inventory coverage",
                    &r.as_of,
                    &format!(
                        "<h2>Coverage</h2><p>{} of {} known assets ({} %) were seen in the 24 hours before the date.</p>{}{}{}",
                        r.seen_24h,
                        r.known,
                        r.seen_24h_pct,
                        bars(
                            "Assets",
                            "",
                            &[
                                ("known".into(), r.known as f64),
                                ("managed".into(), r.managed as f64),
                                ("unmanaged".into(), r.unmanaged as f64),
                                ("seen in 24 h".into(), r.seen_24h as f64),
                            ],
                            r.known as f64
                        ),
                        html_table(&header, &rows),
                        controls_html(cs)
                    ),
                ),
            }
        }
        other => {
            return Err(AppError::invalid(format!(
                "kind: unknown report {other:?} (compliance, ttp, sla or coverage)"
            )));
        }
    })
}

impl App {
    /// The history the reports recompute from.
    pub async fn history(&self, caller: &Caller, ctx: &RequestCtx) -> Result<History, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let rows = snap.assets().await?;
        let mut index = std::collections::HashMap::new();
        let assets: Vec<AssetRecord> = rows
            .iter()
            .enumerate()
            .map(|(i, a)| {
                index.insert(a.name.clone(), i);
                AssetRecord {
                    name: a.name.clone(),
                    owner: a.attrs.owner.clone(),
                    groups: crate::ranking::groups_of(&policy, a),
                    managed: a.has_agent,
                    created_at: a.created_at,
                    last_seen: if a.has_agent {
                        a.last_seen_at
                    } else {
                        Some(a.last_seen_at.unwrap_or(a.updated_at))
                    },
                }
            })
            .collect();
        let all = snap.findings(None, true).await?;
        let ranked = snap.rank(&policy, all).await?;
        let findings = ranked
            .into_iter()
            .filter(|r| !r.excluded)
            .filter_map(|r| {
                let f = &r.item.finding;
                Some(FindingRecord {
                    asset: *index.get(&f.asset)?,
                    advisory: f.advisory.clone(),
                    cves: f.cves.clone(),
                    package: f.package.clone(),
                    source_package: f.source_package.clone(),
                    tier: r.tier,
                    first_seen: f.first_seen.parse().ok()?,
                    resolved_at: f.resolved_at.as_deref().and_then(|t| t.parse().ok()),
                    due: r.due,
                })
            })
            .collect();
        let exceptions = snap.exceptions().await?;
        Ok(History {
            assets,
            findings,
            exceptions,
        })
    }

    /// One report as of a date, rendered.
    pub async fn report(
        &self,
        caller: &Caller,
        kind: &str,
        as_of: Option<Timestamp>,
        format: Format,
        ctx: &RequestCtx,
    ) -> Result<String, AppError> {
        if !KINDS.contains(&kind) {
            return Err(AppError::invalid(format!(
                "kind: unknown report {kind:?} (compliance, ttp, sla or coverage)"
            )));
        }
        let h = self.history(caller, ctx).await?;
        let as_of = as_of.unwrap_or_else(|| self.now());
        render(
            kind,
            &h,
            as_of.round(jiff::Unit::Second).unwrap_or(as_of),
            format,
        )
    }
}
