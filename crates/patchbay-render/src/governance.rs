//! The governance review report (`patchbay_core::report::governance`) as
//! JSON (with its controls), CSV (one row for the whole, one per group and
//! per owner; formula-injection safe) and a printable HTML page with SVG
//! charts (`templates/governance.html`, every value escaped).

use crate::report::{Chart, Format, chart, csv_safe};
use askama::Template;
use patchbay_core::report::Control;
use patchbay_core::report::governance::{Closure, Governance, Line, Risk};

/// The controls a governance review evidences.
pub fn controls() -> &'static [Control] {
    patchbay_core::report::controls("governance")
}

/// CSV header; the HTML table is the same.
pub const HEADER: [&str; 19] = [
    "scope",
    "name",
    "closed",
    "closed_p0",
    "closed_p1",
    "closed_p2",
    "closed_p3",
    "closed_p4",
    "closed_in_sla",
    "closed_late",
    "exposure_days_avoided",
    "exposure_days_over_sla",
    "jobs",
    "rollbacks",
    "deployments",
    "window_hours",
    "approvals",
    "approval_wait_median_hours",
    "approval_wait_max_hours",
];

fn risk_cells(r: &Risk) -> Vec<String> {
    let tier = |t: &str| r.closed_by_tier.get(t).copied().unwrap_or(0).to_string();
    vec![
        r.closed.to_string(),
        tier("P0"),
        tier("P1"),
        tier("P2"),
        tier("P3"),
        tier("P4"),
        r.closed_in_sla.to_string(),
        r.closed_late.to_string(),
        r.exposure_days_avoided.to_string(),
        r.exposure_days_over_sla.to_string(),
    ]
}

/// The table: the whole, then each group, then each owner.
pub fn rows(g: &Governance) -> Vec<Vec<String>> {
    let e = &g.effort;
    let mut whole = vec!["all".to_string(), "all".to_string()];
    whole.extend(risk_cells(&g.risk));
    whole.extend([
        e.jobs.to_string(),
        e.rollbacks.to_string(),
        e.deployments.to_string(),
        e.window_hours.to_string(),
        e.approvals.to_string(),
        e.approval_wait.median_hours.to_string(),
        e.approval_wait.max_hours.to_string(),
    ]);
    let mut out = vec![whole];
    let line = |scope: &str, l: &Line| {
        let mut v = vec![scope.to_string(), l.name.clone()];
        v.extend(risk_cells(&l.risk));
        v.extend([l.jobs.to_string(), l.rollbacks.to_string()]);
        // Window hours and approvals belong to deployments, not groups.
        v.extend(std::iter::repeat_n(String::new(), 5));
        v
    };
    out.extend(g.by_group.iter().map(|l| line("group", l)));
    out.extend(g.by_owner.iter().map(|l| line("owner", l)));
    out
}

/// CSV.
pub fn csv_text(g: &Governance) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(HEADER);
    for r in rows(g) {
        let _ = w.write_record(r.iter().map(|c| csv_safe(c)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Pretty JSON: the report and its `controls`.
pub fn json(g: &Governance) -> String {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    v["controls"] = serde_json::json!(controls());
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "governance.html")]
struct Page<'a> {
    title: &'a str,
    from: &'a str,
    to: &'a str,
    summary: String,
    wins: String,
    charts: Vec<Chart>,
    header: &'a [&'a str],
    rows: &'a [Vec<String>],
    fastest: &'a [Closure],
    controls: &'static [Control],
}

/// The printable HTML page.
pub fn html(g: &Governance) -> Result<String, crate::Error> {
    let rows = rows(g);
    let tiers: Vec<(String, f64)> = g
        .risk
        .closed_by_tier
        .iter()
        .map(|(t, n)| (t.clone(), *n as f64))
        .collect();
    let max_t = tiers.iter().map(|x| x.1).fold(0.0, f64::max);
    let avoided: Vec<(String, f64)> = g
        .by_group
        .iter()
        .map(|l| (l.name.clone(), l.risk.exposure_days_avoided))
        .collect();
    let max_a = avoided.iter().map(|x| x.1).fold(0.0, f64::max);
    let effort: Vec<(String, f64)> = g
        .by_group
        .iter()
        .map(|l| (l.name.clone(), l.jobs as f64))
        .collect();
    let max_e = effort.iter().map(|x| x.1).fold(0.0, f64::max);
    let e = &g.effort;
    let summary = format!(
        "{} finding(s) closed, {} within SLA and {} late; {} exposure-day(s) avoided against the SLAs, {} day(s) beyond them. Effort: {} deployment(s) over {} window hour(s), {} job(s), {} rollback(s), {} approval(s) (median wait {} h, longest {} h).",
        g.risk.closed,
        g.risk.closed_in_sla,
        g.risk.closed_late,
        g.risk.exposure_days_avoided,
        g.risk.exposure_days_over_sla,
        e.deployments,
        e.window_hours,
        e.jobs,
        e.rollbacks,
        e.approvals,
        e.approval_wait.median_hours,
        e.approval_wait.max_hours,
    );
    let w = &g.wins;
    let wins = format!(
        "{} of {} P0 finding(s) closed inside their SLA; longest run of days with nothing overdue: {}; current run: {}. Fastest closures:",
        w.p0_closed_in_sla, w.p0_closed, w.longest_streak_days, w.current_streak_days
    );
    Ok(Page {
        title: "Governance review",
        from: &g.from,
        to: &g.to,
        summary,
        wins,
        charts: vec![
            chart("Findings closed by tier", "", &tiers, max_t),
            chart("Exposure-days avoided by group", "d", &avoided, max_a),
            chart("Jobs by group", "", &effort, max_e),
        ],
        header: &HEADER,
        rows: &rows,
        fastest: &w.fastest,
        controls: controls(),
    }
    .render()?)
}

/// The report in `format`.
pub fn render(g: &Governance, format: Format) -> Result<String, crate::Error> {
    Ok(match format {
        Format::Json => json(g),
        Format::Csv => csv_text(g),
        Format::Html => html(g)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::report::governance::Wins;

    fn report() -> Governance {
        let mut risk = Risk {
            closed: 2,
            closed_in_sla: 1,
            closed_late: 1,
            exposure_days_avoided: 1.5,
            exposure_days_over_sla: 0.25,
            ..Default::default()
        };
        risk.closed_by_tier.insert("P0".into(), 2);
        Governance {
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-08T00:00:00Z".into(),
            risk: risk.clone(),
            by_group: vec![Line {
                name: "=HYPERLINK(\"x\")<script>".into(),
                risk,
                jobs: 3,
                rollbacks: 1,
            }],
            wins: Wins {
                fastest: vec![Closure {
                    asset: "<b>web</b>".into(),
                    advisory: "DSA-1".into(),
                    package: "openssl".into(),
                    tier: "P0".into(),
                    hours: 6.0,
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn csv_rows_and_cells_are_safe() {
        let text = csv_text(&report());
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("scope,name,closed,closed_p0")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("all,all,2,2,0,0,0,0,1,1,1.5,0.25")
        );
        let group = lines.next().unwrap();
        assert!(group.starts_with("group,\"'=HYPERLINK"), "{group}");
        assert!(group.contains(",3,1,,,,,"), "{group}");
    }

    #[test]
    fn html_escapes_and_draws_charts() {
        let h = html(&report()).unwrap();
        assert!(!h.contains("<script>") && !h.contains("<b>web"), "{h}");
        assert!(h.contains("&#60;b&#62;web&#60;/b&#62;"), "{h}");
        assert_eq!(h.matches("<svg").count(), 3);
        assert!(h.contains("Findings closed by tier"));
        assert!(h.contains("SI-2"));
        let j: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(j["risk"]["closed"], 2);
        assert!(j["controls"].as_array().unwrap().len() >= 5);
    }
}
