//! The reports ([`Report`], computed by `patchbay_core::report`) as JSON,
//! CSV or a printable HTML page with SVG charts; each names the controls it
//! evidences.
//!
//! One table per report feeds both the CSV and the HTML table, so the two
//! cannot disagree. Every CSV cell goes through [`csv_safe`]; every HTML
//! value is escaped by the template.

use askama::Template;
use patchbay_core::report::deployments::Outcomes;
use patchbay_core::report::{
    Adherence, ComplianceLine, Control, Deployments, Report, SlaAdherence, TimeToPatch,
};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (the report with its `controls`).
    Json,
    /// CSV.
    Csv,
    /// HTML with SVG charts.
    Html,
}

impl Format {
    /// Every format, in the order the evidence bundle lists them.
    pub const ALL: [Format; 3] = [Format::Json, Format::Csv, Format::Html];

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

impl std::str::FromStr for Format {
    /// The message for people (`format: unknown format …`).
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "format: unknown format {other:?} (json, csv or html)"
            )),
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

fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(r.iter().map(|c| csv_safe(c)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A horizontal bar chart, drawn by `templates/chart.html`.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) height: usize,
    pub(crate) bars: Vec<Bar>,
}

/// One bar, its geometry worked out here so the template only places it.
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) y: usize,
    pub(crate) text_y: usize,
    pub(crate) width: String,
    pub(crate) value_x: String,
    pub(crate) value: String,
}

const ROW: usize = 22;
const BAR_MAX: f64 = 380.0;

/// A chart of `(label, value)` scaled to `max`; labels are cut to 24
/// characters.
pub(crate) fn chart(title: &str, unit: &str, items: &[(String, f64)], max: f64) -> Chart {
    let max = if max > 0.0 { max } else { 1.0 };
    Chart {
        title: title.to_string(),
        height: 30 + ROW * items.len().max(1),
        bars: items
            .iter()
            .enumerate()
            .map(|(i, (label, v))| {
                let y = 28 + i * ROW;
                let w = (v / max * BAR_MAX).clamp(0.0, BAR_MAX);
                Bar {
                    label: truncate(label, 24),
                    y,
                    text_y: y + 13,
                    width: format!("{w:.1}"),
                    value_x: format!("{:.1}", 175.0 + w),
                    value: format!("{v} {unit}").trim_end().to_string(),
                }
            })
            .collect(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// A report page (`templates/report.html`).
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    title: &'a str,
    as_of: &'a str,
    heading: &'a str,
    summary: String,
    charts: Vec<Chart>,
    header: &'a [&'a str],
    rows: &'a [Vec<String>],
    controls: &'static [Control],
}

const COMPLIANCE_HEADER: [&str; 15] = [
    "scope",
    "name",
    "assets",
    "compliant_assets",
    "compliant_pct",
    "within_sla",
    "overdue",
    "excepted",
    "patched",
    "assets_fully_patched",
    "assets_missing_within_sla",
    "assets_overdue",
    "assets_excepted",
    "assets_unknown",
    "fully_patched_pct",
];
const TTP_HEADER: [&str; 5] = ["tier", "patched", "mean_hours", "median_hours", "p90_hours"];
const SLA_HEADER: [&str; 7] = [
    "tier",
    "resolved",
    "resolved_in_sla",
    "resolved_in_sla_pct",
    "open",
    "open_overdue",
    "excepted",
];
const COVERAGE_HEADER: [&str; 9] = [
    "known",
    "managed",
    "unmanaged",
    "seen_24h",
    "seen_24h_pct",
    "stale",
    "shadows",
    "ghosts",
    "seen_24h_pct_of_all",
];

const DEPLOYMENTS_HEADER: [&str; 24] = [
    "scope",
    "name",
    "kind",
    "state",
    "created_at",
    "started_at",
    "finished_at",
    "jobs",
    "ran",
    "succeeded",
    "failed",
    "rolled_back",
    "rollback_failed",
    "skipped",
    "in_progress",
    "success_pct",
    "rollback_pct",
    "failures_rolled_back_pct",
    "job_median_secs",
    "job_p90_secs",
    "patched_findings",
    "ttp_median_hours",
    "ttp_p90_hours",
    "not_remediated",
];

/// A rate as a cell: empty when there was nothing to divide by.
fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The deployments report's rows: the whole, each deployment, each week.
fn deployment_rows(r: &Deployments) -> Vec<Vec<String>> {
    let outcomes = |o: &Outcomes| {
        vec![
            o.jobs.to_string(),
            o.ran.to_string(),
            o.succeeded.to_string(),
            o.failed.to_string(),
            o.rolled_back.to_string(),
            o.rollback_failed.to_string(),
            o.skipped.to_string(),
            o.in_progress.to_string(),
            opt(o.success_pct),
            opt(o.rollback_pct),
            opt(o.failures_rolled_back_pct),
            o.duration.median_secs.to_string(),
            o.duration.p90_secs.to_string(),
        ]
    };
    let row =
        |head: [String; 7], o: &Outcomes, ttp: Option<(u64, &patchbay_core::report::Stats)>| {
            let mut v: Vec<String> = head.into();
            v.extend(outcomes(o));
            match ttp {
                Some((n, s)) => v.extend([
                    n.to_string(),
                    s.median_hours.to_string(),
                    s.p90_hours.to_string(),
                ]),
                None => v.extend([String::new(), String::new(), String::new()]),
            }
            // Last: added after the other columns (issue 18), so readers
            // of the earlier columns by position are unaffected.
            v.push(o.not_remediated.to_string());
            v
        };
    let blank = String::new;
    let mut rows = vec![row(
        [
            "all".into(),
            "all".into(),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
        ],
        &r.all,
        Some((r.time_to_patch.count, &r.time_to_patch)),
    )];
    for d in &r.deployments {
        rows.push(row(
            [
                "deployment".into(),
                d.id.clone(),
                d.kind.clone(),
                d.state.clone(),
                d.created_at.clone(),
                d.started_at.clone().unwrap_or_default(),
                d.finished_at.clone().unwrap_or_default(),
            ],
            &d.outcomes,
            Some((d.patched_findings, &d.time_to_patch)),
        ));
    }
    for w in &r.by_week {
        rows.push(row(
            [
                "week".into(),
                w.week.clone(),
                blank(),
                blank(),
                blank(),
                blank(),
                blank(),
            ],
            &w.outcomes,
            None,
        ));
    }
    rows
}

/// The report's table: its header and rows (shared by CSV and HTML).
fn table(r: &Report) -> (&'static [&'static str], Vec<Vec<String>>) {
    match r {
        Report::Compliance(r) => {
            let line = |scope: &str, l: &ComplianceLine| {
                vec![
                    scope.to_string(),
                    l.name.clone(),
                    l.assets.to_string(),
                    l.compliant_assets.to_string(),
                    l.compliant_pct.to_string(),
                    l.findings.within_sla.to_string(),
                    l.findings.overdue.to_string(),
                    l.findings.excepted.to_string(),
                    l.findings.patched.to_string(),
                    l.status.fully_patched.to_string(),
                    l.status.missing_within_sla.to_string(),
                    l.status.overdue.to_string(),
                    l.status.excepted.to_string(),
                    l.status.unknown.to_string(),
                    l.fully_patched_pct.to_string(),
                ]
            };
            let mut rows = vec![line("fleet", &r.total)];
            rows.extend(r.by_owner.iter().map(|l| line("owner", l)));
            rows.extend(r.by_group.iter().map(|l| line("group", l)));
            rows.extend(r.by_asset.iter().map(|l| line("asset", l)));
            (&COMPLIANCE_HEADER, rows)
        }
        Report::TimeToPatch(r) => {
            let line = |t: &str, s: &patchbay_core::report::Stats| {
                vec![
                    t.to_string(),
                    s.count.to_string(),
                    s.mean_hours.to_string(),
                    s.median_hours.to_string(),
                    s.p90_hours.to_string(),
                ]
            };
            let mut rows: Vec<Vec<String>> = r.by_tier.iter().map(|(t, s)| line(t, s)).collect();
            rows.push(line("all", &r.all));
            (&TTP_HEADER, rows)
        }
        Report::SlaAdherence(r) => {
            let line = |t: &str, a: &Adherence| {
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
            (&SLA_HEADER, rows)
        }
        Report::Coverage(r) => (
            &COVERAGE_HEADER,
            vec![vec![
                r.known.to_string(),
                r.managed.to_string(),
                r.unmanaged.to_string(),
                r.seen_24h.to_string(),
                r.seen_24h_pct.to_string(),
                r.stale.join(" "),
                r.shadows.map(|n| n.to_string()).unwrap_or_default(),
                r.ghosts.as_ref().map(|g| g.join(" ")).unwrap_or_default(),
                r.seen_24h_pct_of_all
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ]],
        ),
        Report::Deployments(r) => (&DEPLOYMENTS_HEADER, deployment_rows(r)),
    }
}

fn deployment_charts(r: &Deployments) -> Vec<Chart> {
    let rates = |items: Vec<(String, Option<f64>)>| -> Vec<(String, f64)> {
        items
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    };
    vec![
        chart(
            "Job success rate by deployment",
            "%",
            &rates(
                r.deployments
                    .iter()
                    .map(|d| (d.id.clone(), d.outcomes.success_pct))
                    .collect(),
            ),
            100.0,
        ),
        chart(
            "Job success rate by week",
            "%",
            &rates(
                r.by_week
                    .iter()
                    .map(|w| (w.week.clone(), w.outcomes.success_pct))
                    .collect(),
            ),
            100.0,
        ),
        chart(
            "Rollback rate by week",
            "%",
            &rates(
                r.by_week
                    .iter()
                    .map(|w| (w.week.clone(), w.outcomes.rollback_pct))
                    .collect(),
            ),
            100.0,
        ),
    ]
}

fn ttp_charts(r: &TimeToPatch) -> Vec<Chart> {
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
    vec![
        chart("Median hours by tier", "h", &med, max),
        chart("p90 hours by tier", "h", &p90, max),
    ]
}

fn sla_charts(r: &SlaAdherence) -> Vec<Chart> {
    let items: Vec<(String, f64)> = r
        .by_tier
        .iter()
        .map(|(t, a)| (t.clone(), a.resolved_in_sla_pct))
        .collect();
    vec![chart("Patched within SLA by tier", "%", &items, 100.0)]
}

/// The report as a printable, self-contained HTML page.
pub fn html(r: &Report) -> Result<String, crate::Error> {
    let (header, rows) = table(r);
    let by_name = |title: &str, ls: &[ComplianceLine]| {
        let items: Vec<(String, f64)> = ls
            .iter()
            .map(|l| (l.name.clone(), l.compliant_pct))
            .collect();
        chart(title, "%", &items, 100.0)
    };
    let (title, as_of, heading, summary, charts) = match r {
        Report::Compliance(c) => (
            "Patch compliance",
            &c.as_of,
            "Compliance",
            format!(
                "{} of {} assets fully patched ({} %: fresh data, no open finding). {} % within SLA \
                 ({} assets with no overdue finding outside an exception; {} of them still miss \
                 patches within their SLA). {} overdue, {} covered only by exceptions, {} unknown or \
                 stale (never counted as patched).",
                c.total.status.fully_patched,
                c.total.assets,
                c.total.fully_patched_pct,
                c.total.compliant_pct,
                c.total.compliant_assets,
                c.total.status.missing_within_sla,
                c.total.status.overdue,
                c.total.status.excepted,
                c.total.status.unknown
            ),
            vec![
                by_name("Assets within SLA by owner", &c.by_owner),
                by_name("Assets within SLA by group", &c.by_group),
            ],
        ),
        Report::TimeToPatch(t) => (
            "Time to patch",
            &t.as_of,
            "Time to patch",
            "From first detection to resolution, findings patched by the date.".to_string(),
            ttp_charts(t),
        ),
        Report::SlaAdherence(s) => (
            "SLA adherence",
            &s.as_of,
            "SLA adherence",
            format!(
                "{} % of {} patched findings were patched by their due date; {} of {} open findings are overdue.",
                s.all.resolved_in_sla_pct, s.all.resolved, s.all.open_overdue, s.all.open
            ),
            sla_charts(s),
        ),
        Report::Coverage(c) => (
            "Inventory coverage",
            &c.as_of,
            "Coverage",
            match (c.shadows, &c.ghosts, c.seen_24h_pct_of_all) {
                (Some(shadows), Some(ghosts), Some(all)) => format!(
                    "{} of {} known assets ({} %) were seen in the 24 hours before the date. \
                     Discovery sees {} machine(s) with no record (shadow) and {} record(s) \
                     nothing attests (ghost): {} % of all the machines known or seen.",
                    c.seen_24h,
                    c.known,
                    c.seen_24h_pct,
                    shadows,
                    ghosts.len(),
                    all
                ),
                _ => format!(
                    "{} of {} known assets ({} %) were seen in the 24 hours before the date.",
                    c.seen_24h, c.known, c.seen_24h_pct
                ),
            },
            vec![chart(
                "Assets",
                "",
                &[
                    ("known".into(), c.known as f64),
                    ("managed".into(), c.managed as f64),
                    ("unmanaged".into(), c.unmanaged as f64),
                    ("seen in 24 h".into(), c.seen_24h as f64),
                    ("shadow".into(), c.shadows.unwrap_or(0) as f64),
                    ("ghost".into(), c.ghosts.as_ref().map_or(0, Vec::len) as f64),
                ],
                (c.known + c.shadows.unwrap_or(0)) as f64,
            )],
        ),
        Report::Deployments(d) => (
            "Rollout outcomes",
            &d.as_of,
            "Deployments",
            format!(
                "{} deployment(s), {} job(s), {} ran: {} succeeded ({}), {} not remediated, {} rolled back ({}), {} rollback(s) failed, {} skipped, {} without an outcome yet; {} finding(s) patched through jobs, median {} h from detection to the job's success.",
                d.deployments.len(),
                d.all.jobs,
                d.all.ran,
                d.all.succeeded,
                d.all
                    .success_pct
                    .map(|p| format!("{p} %"))
                    .unwrap_or_else(|| "-".into()),
                d.all.not_remediated,
                d.all.rolled_back,
                d.all
                    .rollback_pct
                    .map(|p| format!("{p} %"))
                    .unwrap_or_else(|| "-".into()),
                d.all.rollback_failed,
                d.all.skipped,
                d.all.in_progress,
                d.time_to_patch.count,
                d.time_to_patch.median_hours
            ),
            deployment_charts(d),
        ),
    };
    Ok(Page {
        title,
        as_of,
        heading,
        summary,
        charts,
        header,
        rows: &rows,
        controls: r.controls(),
    }
    .render()?)
}

/// The report as CSV (one row per line of its table; formula-injection safe).
pub fn csv_text(r: &Report) -> String {
    let (header, rows) = table(r);
    csv(header, &rows)
}

/// The report as pretty JSON: the report's fields and its `controls`.
pub fn json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["controls"] = serde_json::json!(r.controls());
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The report in `format`.
pub fn render(r: &Report, format: Format) -> Result<String, crate::Error> {
    Ok(match format {
        Format::Json => json(r),
        Format::Csv => csv_text(r),
        Format::Html => html(r)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::report::{Compliance, Counts, Coverage};

    fn line(name: &str, assets: u64, compliant: u64) -> ComplianceLine {
        ComplianceLine {
            name: name.into(),
            assets,
            compliant_assets: compliant,
            compliant_pct: (compliant * 100 / assets.max(1)) as f64,
            status: patchbay_core::report::StatusCounts {
                fully_patched: 0,
                missing_within_sla: compliant,
                overdue: assets - compliant,
                excepted: 0,
                unknown: 0,
            },
            fully_patched_pct: 0.0,
            findings: Counts {
                within_sla: 1,
                overdue: assets - compliant,
                excepted: 0,
                patched: 2,
            },
        }
    }

    fn compliance() -> Report {
        Report::Compliance(Compliance {
            as_of: "2026-11-24T00:00:00Z".into(),
            total: line("fleet", 4, 3),
            by_owner: vec![
                line("web-team", 2, 2),
                line("<script>alert(1)</script> # heading | row |", 2, 1),
            ],
            by_group: vec![line("=HYPERLINK(\"x\")", 4, 3)],
            by_asset: vec![],
        })
    }

    fn r_controls() -> usize {
        compliance().controls().len()
    }

    #[test]
    fn html_page_structure_and_escaping() {
        let html = html(&compliance()).unwrap();
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("<title>Patch compliance</title>"));
        assert!(html.contains("<h1>Patch compliance</h1><p>As of 2026-11-24T00:00:00Z."));
        assert!(html.contains(
            "<h2>Compliance</h2><p>0 of 4 assets fully patched (0 %: fresh data, no open finding). 75 % within SLA (3 assets with no overdue finding outside an exception; 3 of them still miss patches within their SLA). 1 overdue, 0 covered only by exceptions, 0 unknown or stale (never counted as patched).</p>"
        ));
        // Two SVG charts, one bar per owner and per group.
        assert_eq!(html.matches("<svg ").count(), 2);
        assert_eq!(html.matches("</svg>").count(), 2);
        assert_eq!(html.matches("<rect ").count(), 3);
        assert!(html.contains("aria-label=\"Assets within SLA by owner\""));
        assert!(html.contains(
            "<rect x=\"170\" y=\"28\" width=\"380.0\" height=\"16\" fill=\"#3b6ea8\"/><text x=\"555.0\" y=\"41\" font-size=\"12\">100 %</text>"
        ), "{html}");
        // Rows: fleet, two owners, one group; then the controls.
        let controls = r_controls();
        assert_eq!(html.matches("<tr>").count(), 1 + 4 + 1 + controls, "{html}");
        assert!(html.contains("<td>fleet</td><td>fleet</td><td>4</td><td>3</td><td>75</td>"));
        assert!(html.contains("<h3>Controls evidenced</h3>"));
        assert!(
            html.contains("PCI DSS v4.0") && html.contains("6.3.3"),
            "{html}"
        );
        // Hostile names are text, in the chart (cut to 24 characters) and the table.
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("<td>&#60;script&#62;alert(1)&#60;/script&#62; # heading | row |</td>")
                || html
                    .contains("<td>&lt;script&gt;alert(1)&lt;/script&gt; # heading | row |</td>"),
            "{html}"
        );
        assert!(
            html.contains("HYPERLINK(&quot;x&quot;)") || html.contains("HYPERLINK(&#34;x&#34;)"),
            "{html}"
        );
        assert!(!html.contains("HYPERLINK(\"x\")"));
        assert!(!html.contains("src=") && !html.contains("href="));
    }

    #[test]
    fn csv_is_formula_safe_and_json_names_controls() {
        let r = compliance();
        let text = csv_text(&r);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "scope,name,assets,compliant_assets,compliant_pct,within_sla,overdue,excepted,patched,assets_fully_patched,assets_missing_within_sla,assets_overdue,assets_excepted,assets_unknown,fully_patched_pct"
            )
        );
        assert!(
            text.contains("group,\"'=HYPERLINK(\"\"x\"\")\",4,3,75,1,1,0,2,0,3,1,0,0,0"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["total"]["compliant_assets"], 3);
        assert!(v["controls"].as_array().is_some_and(|c| !c.is_empty()));
        assert_eq!(csv_safe("-2"), "'-2");
        assert_eq!(csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_safe("openssl"), "openssl");
    }

    #[test]
    fn empty_chart_says_none() {
        let r = Report::Coverage(Coverage::default());
        let html = render(&r, Format::Html).unwrap();
        assert!(
            html.contains("<h2>Coverage</h2><p>0 of 0 known assets (0 %)"),
            "{html}"
        );
        let r = Report::TimeToPatch(TimeToPatch::default());
        assert_eq!(
            render(&r, Format::Html).unwrap().matches("(none)").count(),
            2
        );
        assert_eq!(
            "pdf".parse::<Format>().unwrap_err(),
            "format: unknown format \"pdf\" (json, csv or html)"
        );
    }

    fn deployments() -> Report {
        use patchbay_core::report::deployments::{DeploymentLine, WeekLine};
        let o = Outcomes {
            jobs: 4,
            ran: 3,
            succeeded: 2,
            rolled_back: 1,
            skipped: 1,
            failures: 1,
            failures_rolled_back: 1,
            success_pct: Some(66.7),
            rollback_pct: Some(33.3),
            failures_rolled_back_pct: Some(100.0),
            ..Outcomes::default()
        };
        Report::Deployments(Deployments {
            as_of: "2026-12-08T12:00:00Z".into(),
            all: o.clone(),
            time_to_patch: Default::default(),
            deployments: vec![DeploymentLine {
                id: "=cmd|' /C calc'!A0 <img src=x onerror=alert(1)>".into(),
                kind: "oob".into(),
                state: "halted".into(),
                created_at: "2026-11-30T12:00:00Z".into(),
                outcomes: o.clone(),
                ..DeploymentLine::default()
            }],
            by_week: vec![WeekLine {
                week: "2026-W49".into(),
                outcomes: Outcomes {
                    jobs: 1,
                    skipped: 1,
                    ..Outcomes::default()
                },
            }],
        })
    }

    #[test]
    fn deployments_table_csv_and_html() {
        let r = deployments();
        let text = csv_text(&r);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rd.headers().unwrap().len(), DEPLOYMENTS_HEADER.len());
        let rows: Vec<csv::StringRecord> = rd.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 3, "{text}");
        // all, then the deployment (its id defused), then the week.
        assert_eq!(&rows[0][0], "all");
        assert_eq!(
            &rows[1][1],
            "'=cmd|' /C calc'!A0 <img src=x onerror=alert(1)>"
        );
        assert_eq!(
            (
                &rows[1][7],
                &rows[1][8],
                &rows[1][9],
                &rows[1][15],
                &rows[1][16]
            ),
            ("4", "3", "2", "66.7", "33.3")
        );
        // Nothing ran that week: no rate, an empty cell (not 0 or 100).
        assert_eq!(
            (&rows[2][0], &rows[2][1], &rows[2][15]),
            ("week", "2026-W49", "")
        );
        let html = html(&r).unwrap();
        assert!(html.contains("<title>Rollout outcomes</title>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&#60;img") || html.contains("&lt;img"),
            "{html}"
        );
        // Three charts, one bar: the deployment's success rate; the week
        // without a rate has no bar in either week chart.
        assert_eq!(html.matches("<svg ").count(), 3);
        assert_eq!(html.matches("<rect ").count(), 1, "{html}");
        assert!(html.contains(
            "4 job(s), 3 ran: 2 succeeded (66.7 %), 0 not remediated, 1 rolled back (33.3 %)"
        ));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["deployments"][0]["success_pct"], 66.7);
        assert!(v["by_week"][0]["success_pct"].is_null());
        assert!(v["controls"].as_array().is_some_and(|c| !c.is_empty()));
    }
}
