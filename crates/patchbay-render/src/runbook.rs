//! A change's runbook, from its change record ([`Runbook`]): Markdown
//! ([`markdown`]: roles, timeline by window, steps, gates, escalation chain,
//! back-out, approvals, the rollout's outcome per ring and per host — job
//! state, versions before and after, error —, lessons learned) and HTML ([`html`]: that Markdown
//! through pulldown-cmark, in `templates/runbook.html`).
//!
//! Every value of someone else's making (a reason, an owner, a token name, a
//! package, a note, a lesson) goes in through [`md_text`] or [`md_lesson`], so
//! it stays text: it cannot add a heading, a table row, a list item or HTML.
//! Back-out commands are shell-quoted by the service layer and shown in code
//! spans ([`md_code`]).

use crate::markdown::{md_code, md_lesson, md_text, to_html};
use askama::Template;
use patchbay_proto::api::ChangeRecordOut;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What a runbook shows: the change record, the owners of its assets and the
/// tokens that may approve it.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// The change record.
    pub change: ChangeRecordOut,
    /// The owners of the change's assets (none recorded: empty).
    pub owners: BTreeSet<String>,
    /// The active approver and admin tokens (`token:<id>:<name>`).
    pub approvers: BTreeSet<String>,
}

/// The runbook page (`templates/runbook.html`).
#[derive(Template)]
#[template(path = "runbook.html")]
struct Page<'a> {
    title: String,
    created_at: &'a str,
    /// HTML from [`to_html`] (shown unescaped).
    body: String,
}

/// The runbook as a printable, self-contained HTML page.
pub fn html(r: &Runbook) -> Result<String, crate::Error> {
    Ok(Page {
        title: format!("Runbook {} — {}", r.change.id, r.change.deployment),
        created_at: &r.change.created_at,
        body: to_html(&markdown(r)),
    }
    .render()?)
}

fn join_or(items: impl IntoIterator<Item = String>, none: &str) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(", ")
    }
}

/// The runbook as Markdown.
pub fn markdown(r: &Runbook) -> String {
    let (c, owners, approvers) = (&r.change, &r.owners, &r.approvers);
    let mut s = String::new();
    let _ = writeln!(s, "# Runbook {} — {}\n", c.id, c.deployment);
    let _ = writeln!(s, "**Risk:** {}.  ", c.risk);
    let _ = writeln!(s, "**Why:** {}.  ", md_text(&c.reason));
    let _ = writeln!(s, "**Status:** {}.\n", c.outcome);

    s.push_str("## Roles\n\n| Role | Who | Does |\n|---|---|---|\n");
    let _ = writeln!(
        s,
        "| Change approver | {} | approves the change, each ring that needs approval and any blackout entry; never the change's creator ({}) |",
        join_or(approvers.iter().map(|a| md_text(a)), "(an approver token)"),
        md_text(&c.created_by)
    );
    s.push_str("| NOC operator | the operator on shift | starts the rollout, watches the gates, pauses, aborts or rolls back (`patchbay deployments`, `patchbay plan preview`) |\n");
    let _ = writeln!(
        s,
        "| Asset owners | {} | confirm their services after their window; receive escalations for their assets |",
        join_or(
            owners.iter().map(|o| md_text(o)),
            "(no owner recorded: set one with `patchbay assets set`)"
        )
    );
    let _ = writeln!(
        s,
        "| Security | the vulnerability lead | owns the risk ({}); signs the change off |\n",
        if c.kev_cves.is_empty() {
            "no KEV CVE".to_string()
        } else {
            format!("KEV: {}", c.kev_cves.join(", "))
        }
    );

    s.push_str("## Timeline by window\n\n| Asset | Ring | Window | Planned start | Note |\n|---|---|---|---|---|\n");
    for w in &c.windows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            md_text(&w.asset),
            md_text(w.ring.as_deref().unwrap_or("-")),
            md_text(w.window.as_deref().unwrap_or("-")),
            md_text(w.planned.as_deref().unwrap_or("not planned")),
            md_text(
                &w.unplanned
                    .clone()
                    .or_else(|| (!w.enters_blackouts.is_empty()).then(|| format!(
                        "enters blackout {} (approved)",
                        w.enters_blackouts.join(", ")
                    )))
                    .unwrap_or_default()
            )
        );
    }
    s.push('\n');

    s.push_str("## Steps\n\n");
    s.push_str("1. Before the first window: confirm the approvals below, check that the agents are checking in (`patchbay assets list`), and that each asset's snapshot hook and health checks are configured.\n");
    let mut n = 2;
    for r in &c.rings {
        let _ = writeln!(
            s,
            "{n}. Ring **{}** ({} asset(s)) from {}: the agents record the rollback plan and the health baseline, apply the exact versions, run the health checks; then soak {} before the next ring.",
            md_text(&r.ring),
            r.assets,
            r.earliest,
            r.soak
        );
        n += 1;
    }
    let _ = writeln!(
        s,
        "{n}. After the last ring: confirm the findings are closed (`patchbay findings list`), record the outcome and the lessons learned (`patchbay changes lessons add {}`).\n",
        c.id
    );

    s.push_str("## Gates\n\n");
    s.push_str("- Success rate of the ring's jobs at least 95 %.\n");
    s.push_str("- Health not worse than the baseline taken before the change (canary analysis); too little data pauses for a human.\n");
    s.push_str("- The ring's soak time has passed since its last job.\n");
    s.push_str("- Approval recorded where the ring needs one (before `ring3-critical`, and before an out-of-band change leaves ring 1), never by the change's creator.\n\n");

    s.push_str("## Escalation chain\n\n");
    s.push_str("1. NOC operator on shift: pause the deployment.\n");
    let _ = writeln!(
        s,
        "2. Asset owners: {}.",
        join_or(owners.iter().map(|o| md_text(o)), "(none recorded)")
    );
    let _ = writeln!(
        s,
        "3. Change approver: {}.",
        join_or(approvers.iter().map(|a| md_text(a)), "(none)")
    );
    s.push_str(
        "4. Security lead: decides on abort versus exception (`patchbay exceptions add`).\n\n",
    );

    s.push_str("## Back-out\n\n");
    s.push_str("The agent records each package's installed version before applying; `patchbay-agent rollback --job-key KEY` restores them (or runs the snapshot-restore hook). By hand:\n\n");
    s.push_str("| Asset | Package | Back to | From | Command |\n|---|---|---|---|---|\n");
    for b in &c.back_out {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | `{}` |",
            md_text(&b.asset),
            md_text(&b.package),
            md_text(&b.installed_version),
            md_text(&b.target_version),
            md_code(&b.command)
        );
    }
    s.push('\n');

    s.push_str("## Approvals\n\n");
    if c.approvals.is_empty() {
        s.push_str("None recorded yet.\n\n");
    }
    for a in &c.approvals {
        let _ = writeln!(
            s,
            "- {} by {} at {}: {}",
            md_text(&a.subject),
            md_text(&a.approver),
            a.at,
            md_text(&a.note)
        );
    }
    if !c.approvals.is_empty() {
        s.push('\n');
    }

    rollout_outcome(&mut s, c);

    if let Some(t) = &c.test_report {
        s.push_str(
            "## Test report

",
        );
        let _ = writeln!(
            s,
            "{} test(s): {} passed, {} failed, {} not run. JUnit XML: `{}?format=junit`; page: {}.\n",
            t.tests,
            t.passed,
            t.failures,
            t.skipped,
            md_code(&t.api),
            md_text(&t.page)
        );
        for f in &t.failed {
            let _ = writeln!(s, "- failed: {}", md_text(f));
        }
        if !t.failed.is_empty() {
            s.push('\n');
        }
    }

    s.push_str("## Lessons learned\n\n");
    if c.lessons.is_empty() {
        s.push_str("None yet.\n");
    }
    for l in &c.lessons {
        let _ = writeln!(
            s,
            "- {} ({}): {}",
            l.at,
            md_text(&l.author),
            md_lesson(&l.text)
        );
    }
    s
}

/// The "Rollout outcome" section: per ring its jobs by outcome, per host
/// its job's state, versions and error.
fn rollout_outcome(s: &mut String, c: &ChangeRecordOut) {
    s.push_str("## Rollout outcome\n\n");
    let Some(r) = &c.rollout else {
        s.push_str("Not started: no job has run.\n\n");
        return;
    };
    let _ = writeln!(
        s,
        "**Rollout:** {}{}.\n",
        md_text(&r.status),
        r.reason
            .as_deref()
            .map(|w| format!(" — {}", md_text(w)))
            .unwrap_or_default()
    );
    s.push_str("| Ring | State | Succeeded | Failed | Rolled back | Skipped | Approved by |\n|---|---|---|---|---|---|---|\n");
    for g in &r.rings {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md_text(&g.name),
            md_text(&g.state),
            g.succeeded,
            g.failed,
            g.rolled_back,
            g.skipped,
            md_text(g.approved_by.as_deref().unwrap_or("-"))
        );
    }
    s.push('\n');
    if c.hosts.is_empty() {
        return;
    }
    s.push_str("| Host | Ring | Job | Package | Target | Before | After | Finished | Error | Rollback |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let dash = |v: Option<&str>| md_text(v.unwrap_or("-"));
    for h in &c.hosts {
        let empty = [patchbay_proto::api::PackageOutcome {
            name: "-".into(),
            target: None,
            before: None,
            after: None,
        }];
        let pkgs = if h.packages.is_empty() {
            &empty[..]
        } else {
            &h.packages[..]
        };
        for p in pkgs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_text(&h.host),
                md_text(&h.ring),
                md_text(&h.state),
                md_text(&p.name),
                dash(p.target.as_deref()),
                dash(p.before.as_deref()),
                dash(p.after.as_deref()),
                dash(h.finished_at.as_deref()),
                dash(h.error.as_deref()),
                dash(h.rollback.as_deref()),
            );
        }
    }
    s.push('\n');
    // Re-test: per host and targeted CVE, closed or still open.
    let lines: Vec<_> = c
        .hosts
        .iter()
        .flat_map(|h| h.retest.iter().map(move |v| (h, v)))
        .collect();
    if lines.is_empty() {
        return;
    }
    s.push_str(
        "### Re-test

",
    );
    for h in c.hosts.iter().filter(|h| h.not_remediated) {
        let _ = writeln!(
            s,
            "**Not remediated:** {} reported success, but a targeted CVE is still open.\n",
            md_text(&h.host)
        );
    }
    s.push_str("| Host | CVE | Packages | Advisories | Closed |\n|---|---|---|---|---|\n");
    for (h, v) in lines {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            md_text(&h.host),
            md_text(&v.cve),
            md_text(&v.packages.join(", ")),
            md_text(&v.advisories.join(", ")),
            match &v.closed_at {
                Some(at) if v.closed => format!("closed {}", md_text(at)),
                _ => "**open**".into(),
            }
        );
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_proto::api::{
        AssetPlanOut, BackOutStep, ChangeApproval, ChangePatch, LessonOut, RingPlanOut,
    };

    const HOSTILE: &str =
        "<script>alert(1)</script>\n# heading\n| row | forged |\n|---|---|\n- item\n1. step";

    fn runbook() -> Runbook {
        Runbook {
            change: ChangeRecordOut {
                rollout: None,
                hosts: vec![],
                test_report: None,
                id: "CHG-0001".into(),
                deployment: "DEP-0001".into(),
                kind: "oob".into(),
                reason: "KEV <b>CVE</b> | now".into(),
                created_at: "2026-11-24T10:00:00Z".into(),
                created_by: "token:1:ops".into(),
                assets: vec!["web-1".into()],
                patches: vec![ChangePatch {
                    name: "PB-1".into(),
                    package: "chromium".into(),
                    fixed_version: "140.0-1".into(),
                    highest_tier: "P0".into(),
                    cves: vec!["CVE-2026-1".into()],
                }],
                highest_tier: "P0".into(),
                kev_cves: vec!["CVE-2026-1".into()],
                findings: 1,
                risk: "P0 out-of-band change".into(),
                rings: vec![RingPlanOut {
                    ring: "ring1".into(),
                    soak: "1h".into(),
                    earliest: "2026-11-24T12:00:00Z".into(),
                    first: None,
                    last: None,
                    assets: 1,
                    unplanned: 0,
                }],
                windows: vec![AssetPlanOut {
                    asset: "web-1".into(),
                    ring: Some("ring1".into()),
                    planned: Some("2026-11-24T12:00:00Z".into()),
                    window: Some("nightly".into()),
                    occurrence: None,
                    enters_blackouts: vec![],
                    unplanned: None,
                    findings: 1,
                }],
                back_out: vec![BackOutStep {
                    asset: "web-1".into(),
                    package: "chromium".into(),
                    installed_version: "139.0-1".into(),
                    target_version: "140.0-1".into(),
                    command: "apt-get install -y 'chromium=139.0-1|x'".into(),
                }],
                approvals: vec![ChangeApproval {
                    subject: "blackout:freeze".into(),
                    approver: "token:2:cab".into(),
                    at: "2026-11-24T11:00:00Z".into(),
                    note: "ok".into(),
                }],
                outcome: "proposed".into(),
                lessons: vec![LessonOut {
                    id: 1,
                    change_id: "CHG-0001".into(),
                    at: "2026-11-25T09:00:00Z".into(),
                    author: "token:1:ops".into(),
                    text: format!("Restarted the kiosks.\n## Approvals\n{HOSTILE}"),
                }],
            },
            owners: ["web-team".to_string(), format!("evil {HOSTILE}")].into(),
            approvers: ["token:2:cab".to_string()].into(),
        }
    }

    #[test]
    fn markdown_has_every_section_once_and_values_stay_text() {
        let md = markdown(&runbook());
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headings,
            [
                "# Runbook CHG-0001 — DEP-0001",
                "## Roles",
                "## Timeline by window",
                "## Steps",
                "## Gates",
                "## Escalation chain",
                "## Back-out",
                "## Approvals",
                "## Rollout outcome",
                "## Lessons learned",
            ],
            "{md}"
        );
        assert!(md.contains("## Rollout outcome\n\nNot started: no job has run.\n"));
        assert!(md.contains("| web-1 | ring1 | nightly | 2026-11-24T12:00:00Z |  |"));
        assert!(
            md.contains("`apt-get install -y 'chromium=139.0-1\\|x'`"),
            "{md}"
        );
        assert!(
            md.contains("**Why:** KEV \\<b\\>CVE\\</b\\> \\| now."),
            "{md}"
        );
        // The hostile owner and lesson start no line, and every table row
        // keeps its own cells: its unescaped `|` are the column borders.
        assert!(
            !md.lines()
                .any(|l| l.starts_with("| row") || l.starts_with("# heading"))
        );
        let unescaped = |l: &str| {
            let b = l.as_bytes();
            (0..b.len())
                .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
                .count()
        };
        let roles = md.lines().skip_while(|l| *l != "## Roles").skip(2);
        for row in roles.take_while(|l| l.starts_with('|')) {
            assert_eq!(unescaped(row), 4, "{row}");
        }
    }

    #[test]
    fn html_page_is_self_contained_and_hostile_values_are_text() {
        let html = html(&runbook()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("<title>Runbook CHG-0001 — DEP-0001</title>"));
        assert_eq!(html.matches("<h1>").count(), 1, "{html}");
        for section in [
            "Roles",
            "Timeline by window",
            "Steps",
            "Gates",
            "Escalation chain",
            "Back-out",
            "Approvals",
            "Rollout outcome",
            "Lessons learned",
        ] {
            assert_eq!(
                html.matches(&format!("<h2>{section}</h2>")).count(),
                1,
                "{section}: {html}"
            );
        }
        // Structure the runbook makes: tables, numbered steps, bullets.
        assert_eq!(html.matches("<table>").count(), 3, "{html}");
        assert_eq!(html.matches("<ol>").count(), 2, "{html}");
        assert!(html.contains("<code>apt-get install -y 'chromium=139.0-1|x'</code>"));
        // Structure the hostile values would have made: none.
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(!html.contains("<td>forged") && !html.contains("<h1>heading"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("## Approvals") && html.contains("# heading"));
        // The lesson is one list item: its lines are breaks inside it.
        let lessons = &html[html.find("<h2>Lessons learned</h2>").unwrap()..];
        assert_eq!(lessons.matches("<li>").count(), 1, "{lessons}");
        assert!(!lessons.contains("<ol>"), "{lessons}");
        // No external reference.
        assert!(!html.contains("src=") && !html.contains("href="));
    }

    #[test]
    fn rollout_outcome_shows_each_host_and_values_stay_text() {
        use patchbay_proto::api::{HostOutcome, PackageOutcome, RingSummary, RolloutSummary};
        let mut r = runbook();
        r.change.rollout = Some(RolloutSummary {
            status: "halted".into(),
            reason: Some("ring ring1: error budget".into()),
            rings: vec![RingSummary {
                name: "ring1".into(),
                state: "failed".into(),
                succeeded: 1,
                failed: 0,
                rolled_back: 1,
                skipped: 0,
                approved_by: None,
                gates: vec![],
            }],
        });
        r.change.hosts = vec![
            HostOutcome {
                host: "web-1".into(),
                ring: "ring1".into(),
                state: "succeeded".into(),
                leased_at: Some("2026-11-24T12:00:00Z".into()),
                finished_at: Some("2026-11-24T12:05:00Z".into()),
                error: None,
                packages: vec![PackageOutcome {
                    name: "chromium".into(),
                    target: Some("140.0-1".into()),
                    before: Some("139.0-1".into()),
                    after: Some("140.0-1".into()),
                }],
                rollback: None,
                retest: vec![patchbay_proto::api::RetestOut {
                    cve: "CVE-2026-1".into(),
                    advisories: vec!["DSA-1".into()],
                    packages: vec!["chromium".into()],
                    closed: false,
                    closed_at: None,
                }],
                not_remediated: true,
            },
            HostOutcome {
                host: format!("evil {HOSTILE}"),
                ring: "ring1".into(),
                state: "rolled_back".into(),
                leased_at: None,
                finished_at: Some("2026-11-24T12:06:00Z".into()),
                error: Some("verify.health: <b>500</b> | boom".into()),
                packages: vec![],
                rollback: Some("rolled_back".into()),
                retest: vec![],
                not_remediated: false,
            },
        ];
        let md = markdown(&r);
        assert!(
            md.contains("**Rollout:** halted — ring ring1: error budget."),
            "{md}"
        );
        assert!(
            md.contains("| ring1 | failed | 1 | 0 | 1 | 0 | - |"),
            "{md}"
        );
        assert!(
            md.contains("| web-1 | ring1 | succeeded | chromium | 140.0-1 | 139.0-1 | 140.0-1 | 2026-11-24T12:05:00Z | - | - |"),
            "{md}"
        );
        assert!(
            md.contains("verify.health: \\<b\\>500\\</b\\> \\| boom"),
            "{md}"
        );
        // Every host row has its 11 borders: the hostile name adds no cell,
        // no row and no heading.
        let unescaped = |l: &str| {
            let b = l.as_bytes();
            (0..b.len())
                .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
                .count()
        };
        let rows: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("| Host |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(rows.len(), 2, "{md}");
        for row in rows {
            assert_eq!(unescaped(row), 11, "{row}");
        }
        assert!(
            md.contains("**Not remediated:** web-1 reported success"),
            "{md}"
        );
        assert!(
            md.contains("| web-1 | CVE-2026-1 | chromium | DSA-1 | **open** |"),
            "{md}"
        );
        let html = html(&r).unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("<b>500"),
            "{html}"
        );
        assert!(html.contains("<td>140.0-1</td>"), "{html}");
    }
}
