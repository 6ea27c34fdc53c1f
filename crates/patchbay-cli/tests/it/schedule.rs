//! Windows, blackouts, the plan preview and the calendar end to end, on both
//! backends: stored windows equal the offline preview; a blackout pushes the
//! plan past it and puts exactly the findings due before the planned time at
//! risk, naming the blackout; an out-of-band deployment enters a blackout only
//! after an approver's recorded approval; the `.ics` parses with python's
//! `icalendar` and its events equal python-dateutil's expansion of the same
//! definitions (fixtures/oracles/rrule_reference.py).

use crate::support::{Server, minbase_before, ok};
use jiff::{SignedDuration, Timestamp};
use patchbay_client::HttpError;
use patchbay_proto::api::{
    BlackoutApprovalIn, BlackoutOut, List, OccurrenceOut, PlanOut, PlanRequest, WindowOut, WorkItem,
};
use std::process::Command;

const POLICY: &str = r#"version = 1
[[groups]]
name = "web"
[groups.match]
name = ["chroot-*"]

[[groups]]
name = "db"
[groups.match]
tags_any = ["db"]

[[rings]]
name = "ring0-staging"
order = 0
groups = ["web"]
soak = "24h"
"#;

fn host(s: &Server, extra_status: &str) -> tempfile::TempDir {
    let mut status = minbase_before();
    status.push_str(extra_status);
    s.host_with(&status)
}

fn apply_policy(s: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, POLICY).unwrap();
    ok(&s.cli(&["policy", "apply", p.to_str().unwrap()]));
}

fn fails(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

fn plan(s: &Server, req: &PlanRequest) -> PlanOut {
    s.admin().send("POST", "/api/v1/plan/preview", req).unwrap()
}

/// Noon UTC today on the server's clock: plans and calendars start here.
fn noon(s: &Server) -> Timestamp {
    let now = patchbay_app::Clock::now(&*s.clock);
    now.to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_datetime(jiff::civil::time(12, 0, 0, 0))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
}

fn windows_blackouts_and_the_plan(backend: &str) {
    let s = Server::start(backend);
    let _root = host(&s, "");
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    apply_policy(&s);

    // Bad definitions are refused, naming the field; nothing is stored.
    let add = |extra: &[&str]| {
        let mut args = vec!["windows", "add"];
        args.extend_from_slice(extra);
        s.cli(&args)
    };
    let good = [
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--tz",
        "UTC",
        "--duration",
        "2h",
        "--cutoff",
        "30m",
    ];
    let with = |name: &str, over: &[(&str, &str)], group: &str| -> Vec<String> {
        let mut v = vec![name.to_string()];
        let mut g = good.to_vec();
        for (k, val) in over {
            let i = g.iter().position(|x| x == k).unwrap();
            g[i + 1] = val;
        }
        v.extend(g.iter().map(|x| x.to_string()));
        v.extend(["--group".to_string(), group.to_string()]);
        v
    };
    let run = |v: Vec<String>| add(&v.iter().map(String::as_str).collect::<Vec<_>>());
    fails(
        &run(with("bad", &[("--rrule", "FREQ=DAILY;BYSETPOS=1")], "web")),
        "rrule: RRULE BYSETPOS",
    );
    fails(
        &run(with("bad", &[("--tz", "Mars/Olympus")], "web")),
        "tz: unknown time zone \"Mars/Olympus\"",
    );
    fails(
        &run(with("bad", &[("--duration", "forever")], "web")),
        "duration: invalid duration",
    );
    fails(&run(with("bad", &[("--cutoff", "3h")], "web")), "cutoff");
    fails(
        &run(with("bad", &[], "nosuchgroup")),
        "groups[0]: unknown group \"nosuchgroup\" (groups of the policy in force: web, db)",
    );
    let l: List<WindowOut> = s.admin().get("/api/v1/windows").unwrap();
    assert!(l.items.is_empty());

    ok(&run(with("nightly", &[], "web")));
    fails(&run(with("nightly", &[], "web")), "exists");
    // A window for another group does not apply to the host.
    ok(&run(with(
        "db-weekly",
        &[
            ("--rrule", "FREQ=WEEKLY;BYDAY=SA"),
            ("--dtstart", "2026-01-03T01:00"),
        ],
        "db",
    )));

    // Stored windows show the same next occurrences as the offline preview.
    let now = patchbay_app::Clock::now(&*s.clock);
    let l: List<WindowOut> = s.admin().get("/api/v1/windows").unwrap();
    let nightly = l.items.iter().find(|w| w.spec.name == "nightly").unwrap();
    let preview: Vec<OccurrenceOut> = serde_json::from_str(&ok(&s.cli(&[
        "windows",
        "preview",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--tz",
        "UTC",
        "--duration",
        "2h",
        "--count",
        "3",
        "--from",
        &now.to_string(),
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(nightly.next, preview);
    assert_eq!(nightly.spec.cutoff.as_deref(), Some("30m"));

    // The plan: the host is in ring0 and in group web, so the next nightly
    // window after noon (tomorrow 02:00Z) is its slot; nothing is at risk.
    let from = noon(&s);
    let tomorrow_2am = from + SignedDuration::from_hours(14);
    let req = PlanRequest {
        from: Some(from.to_string()),
        days: Some(60),
        ..PlanRequest::default()
    };
    let p = plan(&s, &req);
    assert_eq!(p.assets.len(), 1, "{p:?}");
    let a = &p.assets[0];
    assert_eq!(a.asset, "chroot-host");
    assert_eq!(a.ring.as_deref(), Some("ring0-staging"));
    assert_eq!(a.window.as_deref(), Some("nightly"));
    assert_eq!(
        a.planned.as_deref(),
        Some(tomorrow_2am.to_string().as_str())
    );
    let findings: List<WorkItem> = s.admin().get("/api/v1/worklist?limit=10000").unwrap();
    assert_eq!(a.findings, findings.items.len());
    assert!(p.at_risk.is_empty(), "{:?}", p.at_risk);
    assert_eq!(p.rings[0].soak, "24h");

    // A freeze of 20 days pushes the slot to the first window after it, and
    // exactly the findings due before that are at risk, naming the blackout.
    fails(
        &s.cli(&[
            "blackouts",
            "add",
            "freeze",
            "--start",
            "2026-01-02",
            "--end",
            "2026-01-01",
            "--reason",
            "x",
            "--owner",
            "cab",
        ]),
        "end: 2026-01-01T00:00:00Z is not after start",
    );
    fails(
        &s.cli(&[
            "blackouts",
            "add",
            "freeze",
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-02",
            "--reason",
            " ",
            "--owner",
            "cab",
        ]),
        "reason: a blackout needs a reason",
    );
    let b_start = from - SignedDuration::from_hours(1);
    let b_end = from + SignedDuration::from_hours(20 * 24);
    let out = ok(&s.cli(&[
        "blackouts",
        "add",
        "freeze",
        "--start",
        &b_start.to_string(),
        "--end",
        &b_end.to_string(),
        "--reason",
        "quarter-end close",
        "--owner",
        "finance-cab",
        "--format",
        "json",
    ]));
    let b: BlackoutOut = serde_json::from_str(&out).unwrap();
    assert_eq!(b.start, b_start.to_string());
    let p = plan(&s, &req);
    let planned = b_end + SignedDuration::from_hours(14);
    assert_eq!(
        p.assets[0].planned.as_deref(),
        Some(planned.to_string().as_str())
    );
    let expected: std::collections::BTreeSet<(String, String)> = findings
        .items
        .iter()
        .filter(|w| w.due.parse::<Timestamp>().unwrap() < planned)
        .map(|w| (w.finding.advisory.clone(), w.finding.package.clone()))
        .collect();
    let got: std::collections::BTreeSet<(String, String)> = p
        .at_risk
        .iter()
        .map(|r| (r.cve.clone(), r.package.clone()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    assert!(p.at_risk.iter().all(|r| {
        r.planned.as_deref() == Some(planned.to_string().as_str())
            && r.reasons
                .iter()
                .any(|x| x.starts_with("blackout: freeze (quarter-end close; owner finance-cab"))
    }));
    // The table form says the same.
    let table = ok(&s.cli(&[
        "plan",
        "preview",
        "--from",
        &from.to_string(),
        "--days",
        "60",
    ]));
    assert!(table.contains("SLA at risk:"), "{table}");
    assert!(table.contains("blackout: freeze"), "{table}");

    // A horizon that ends inside the freeze leaves the host unplanned.
    let short = PlanRequest {
        days: Some(10),
        ..req.clone()
    };
    let p = plan(&s, &short);
    assert!(p.assets[0].planned.is_none());
    assert!(
        p.assets[0]
            .unplanned
            .as_deref()
            .unwrap()
            .contains("no eligible window time")
    );

    // Only members of the filtered group are planned.
    let p = plan(
        &s,
        &PlanRequest {
            group: Some("db".into()),
            ..req.clone()
        },
    );
    assert!(p.assets.is_empty());

    // Removing things: audited, and gone from the plan.
    ok(&s.cli(&["blackouts", "rm", "freeze"]));
    fails(&s.cli(&["blackouts", "rm", "freeze"]), "no blackout named");
    ok(&s.cli(&["windows", "rm", "nightly"]));
    let p = plan(&s, &req);
    assert_eq!(
        p.assets[0].unplanned.as_deref(),
        Some("no maintenance window applies to it")
    );
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    for action in [
        "window.add",
        "window.remove",
        "blackout.add",
        "blackout.remove",
    ] {
        assert!(audit.contains(action), "{action} not audited");
    }
}

fn out_of_band_enters_a_blackout_only_with_approval(backend: &str) {
    let s = Server::start(backend);
    // A Debian 12 host with packages that 2025-08..2026-08 KEV additions touch.
    let _root = host(
        &s,
        "Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 139.0.7258.154-1~deb12u1\n\n",
    );
    s.import_feeds(&[
        "feeds/osv/Debian-12-derived.osv.zip",
        "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
    ]);
    apply_policy(&s);
    s.import_feeds(&["feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"]);
    let deps: List<patchbay_proto::api::DeploymentOut> =
        s.admin().get("/api/v1/deployments").unwrap();
    let dep = deps.items[0].id.clone();
    assert!(dep.starts_with("DEP-OOB-"));

    ok(&s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--duration",
        "2h",
    ]));
    let from = noon(&s);
    let b_end = from + SignedDuration::from_hours(10 * 24);
    ok(&s.cli(&[
        "blackouts",
        "add",
        "year-end",
        "--start",
        &(from - SignedDuration::from_hours(1)).to_string(),
        "--end",
        &b_end.to_string(),
        "--reason",
        "year-end freeze",
        "--owner",
        "cab",
    ]));
    let req = PlanRequest {
        deployment: Some(dep.clone()),
        from: Some(from.to_string()),
        days: Some(30),
        ..PlanRequest::default()
    };
    // Without an approval the out-of-band deployment waits for the freeze.
    let p = plan(&s, &req);
    assert!(p.out_of_band);
    assert_eq!(
        p.assets[0].planned.as_deref(),
        Some(
            (b_end + SignedDuration::from_hours(14))
                .to_string()
                .as_str()
        )
    );
    assert!(p.assets[0].enters_blackouts.is_empty());

    // Approvals: not by an auditor, not without a reason, not for unknown things.
    let auditor: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &patchbay_proto::api::CreateToken {
                name: "aud".into(),
                role: patchbay_core::auth::Role::Auditor,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let approve = |c: &patchbay_client::Client, blackout: &str, dep: &str, note: &str| {
        c.send::<_, serde_json::Value>(
            "POST",
            &format!("/api/v1/blackouts/{blackout}/approvals"),
            &BlackoutApprovalIn {
                deployment: dep.into(),
                note: note.into(),
            },
        )
    };
    let code = |r: Result<serde_json::Value, HttpError>| match r {
        Err(HttpError::Api { status, .. }) => status,
        other => panic!("expected an API error, got {other:?}"),
    };
    assert_eq!(
        code(approve(
            &s.client(Some(&auditor.token)),
            "year-end",
            &dep,
            "x"
        )),
        403
    );
    assert_eq!(code(approve(&s.admin(), "year-end", &dep, " ")), 400);
    assert_eq!(code(approve(&s.admin(), "nope", &dep, "x")), 404);
    assert_eq!(
        code(approve(&s.admin(), "year-end", "DEP-OOB-1999-01-001", "x")),
        404
    );
    let p = plan(&s, &req);
    assert!(
        p.assets[0].enters_blackouts.is_empty(),
        "nothing was recorded"
    );

    ok(&s.cli(&[
        "blackouts",
        "approve",
        "year-end",
        "--deployment",
        &dep,
        "--note",
        "actively exploited chromium",
    ]));
    fails(
        &s.cli(&[
            "blackouts",
            "approve",
            "year-end",
            "--deployment",
            &dep,
            "--note",
            "again",
        ]),
        "already approved",
    );
    let p = plan(&s, &req);
    assert_eq!(
        p.assets[0].planned.as_deref(),
        Some((from + SignedDuration::from_hours(14)).to_string().as_str())
    );
    assert_eq!(p.assets[0].enters_blackouts, vec!["year-end".to_string()]);
    // The same plan without the deployment (not out-of-band) still waits.
    let p2 = plan(
        &s,
        &PlanRequest {
            deployment: None,
            ..req.clone()
        },
    );
    assert!(!p2.out_of_band);
    assert_eq!(
        p2.assets[0].planned.as_deref(),
        Some(
            (b_end + SignedDuration::from_hours(14))
                .to_string()
                .as_str()
        )
    );
    let l: List<BlackoutOut> = s.admin().get("/api/v1/blackouts").unwrap();
    assert_eq!(l.items[0].approvals.len(), 1);
    assert_eq!(l.items[0].approvals[0].deployment, dep);
    assert!(l.items[0].approvals[0].approver.starts_with("token:"));
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    assert!(audit.contains("blackout.approve"));
}

/// Python's `icalendar` reads the feed: (category, start, end) per event.
const ICS_READER: &str = r#"
import sys, json
try:
    import icalendar
except ImportError:
    print("NO_ICALENDAR"); sys.exit(3)
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
out = []
for ev in cal.walk('VEVENT'):
    cats = ev.get('CATEGORIES')
    cat = cats.cats[0] if hasattr(cats, 'cats') else str(cats)
    out.append({
        "category": str(cat),
        "uid": str(ev.get('UID')),
        "summary": str(ev.get('SUMMARY')),
        "start": ev.decoded('DTSTART').strftime('%Y-%m-%dT%H:%M:%SZ'),
        "end": ev.decoded('DTEND').strftime('%Y-%m-%dT%H:%M:%SZ'),
        "utc": ev.decoded('DTSTART').utcoffset().total_seconds() == 0,
    })
print(json.dumps(out))
"#;

fn read_ics(path: &std::path::Path) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(ICS_READER)
        .arg(path)
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("NO_ICALENDAR") {
        panic!("python icalendar is not importable: pip install icalendar (scripts/test does)");
    }
    assert!(
        out.status.success(),
        "icalendar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// The independent recurrence reference (python-dateutil + zoneinfo with the
/// RFC 5545 DST rules), as (start, end) instants.
fn rrule_reference(
    rrule: &str,
    dtstart: &str,
    tz: &str,
    dur_secs: i64,
    off: i32,
    from: Timestamp,
    limit: usize,
) -> Vec<(Timestamp, Timestamp)> {
    const REFERENCE: &str = include_str!("../../../../fixtures/oracles/rrule_reference.py");
    let out = Command::new("python3")
        .arg("-c")
        .arg(REFERENCE)
        .args([
            rrule,
            dtstart,
            tz,
            &dur_secs.to_string(),
            &off.to_string(),
            &from.as_second().to_string(),
            &limit.to_string(),
        ])
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("NO_DATEUTIL") {
        panic!(
            "python-dateutil is not importable: pip install python-dateutil (scripts/test does)"
        );
    }
    assert!(
        out.status.success(),
        "reference failed for {rrule}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let (s, e) = l.split_once(' ').unwrap();
            (
                Timestamp::from_second(s.parse().unwrap()).unwrap(),
                Timestamp::from_second(e.parse().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// An instant as the calendar reader prints it.
fn utc_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn calendar_feed_equals_an_independent_expansion(backend: &str) {
    let s = Server::start(backend);
    let _root = host(&s, "");
    apply_policy(&s);
    // Sundays 02:30 in New York, across the spring-forward day (2026-03-08,
    // where 02:30 does not exist) and the fall-back day (2026-11-01, where it
    // happens twice); and Patch Tuesday + 2 in Berlin for group db.
    // (name, rrule, local dtstart, zone, duration in seconds, offset days, group)
    let defs: [(&str, &str, &str, &str, i64, i32, &str); 2] = [
        (
            "ny-sunday",
            "FREQ=WEEKLY;BYDAY=SU",
            "2026-01-04T02:30:00",
            "America/New_York",
            3 * 3600,
            0,
            "web",
        ),
        (
            "pt-plus-2",
            "FREQ=MONTHLY;BYDAY=2TU",
            "2026-01-01T22:00:00",
            "Europe/Berlin",
            4 * 3600,
            2,
            "db",
        ),
    ];
    for (name, rrule, dtstart, tz, dur, off, group) in defs {
        let (dur, off) = (format!("{}h", dur / 3600), off.to_string());
        ok(&s.cli(&[
            "windows",
            "add",
            name,
            "--rrule",
            rrule,
            "--dtstart",
            &dtstart[..16],
            "--tz",
            tz,
            "--duration",
            &dur,
            "--offset-days",
            &off,
            "--group",
            group,
        ]));
    }
    ok(&s.cli(&[
        "blackouts",
        "add",
        "xmas",
        "--start",
        "2026-12-20",
        "--end",
        "2027-01-04",
        "--tz",
        "Europe/Berlin",
        "--reason",
        "holiday freeze",
        "--owner",
        "cab",
    ]));
    let (from, to) = ("2026-02-01T00:00:00Z", "2027-01-31T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ics");
    ok(&s.cli(&[
        "calendar",
        "--from",
        from,
        "--to",
        to,
        "--out",
        file.to_str().unwrap(),
    ]));
    let events = read_ics(&file);
    assert!(events.iter().all(|e| e["utc"] == true));
    let to_ts: Timestamp = to.parse().unwrap();
    let from_ts: Timestamp = from.parse().unwrap();
    for (name, rrule, dtstart, tz, dur, off, _) in defs {
        // The expectation comes from python-dateutil + zoneinfo expanding the
        // same definition (fixtures/oracles/rrule_reference.py), not from
        // Patchbay's own preview.
        let expected: Vec<(String, String)> =
            rrule_reference(rrule, dtstart, tz, dur, off, from_ts, 200)
                .into_iter()
                .filter(|(s, _)| *s < to_ts)
                .map(|(s, e)| (utc_text(s), utc_text(e)))
                .collect();
        let got: Vec<(String, String)> = events
            .iter()
            .filter(|e| e["summary"] == format!("Maintenance window: {name}"))
            .map(|e| {
                (
                    e["start"].as_str().unwrap().to_string(),
                    e["end"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(expected.len() >= 11, "{name}: {}", expected.len());
        assert_eq!(got, expected, "{name}");
    }
    // The DST days: 02:30 EST (07:30Z) on spring-forward day, the first
    // 01:30-like fold rule does not apply to 02:30, so fall-back day is 07:30Z.
    let ny: Vec<&str> = events
        .iter()
        .filter(|e| e["summary"] == "Maintenance window: ny-sunday")
        .map(|e| e["start"].as_str().unwrap())
        .collect();
    assert!(ny.contains(&"2026-03-01T07:30:00Z"));
    assert!(
        ny.contains(&"2026-03-08T07:30:00Z"),
        "gap: offset from before"
    );
    assert!(ny.contains(&"2026-03-15T06:30:00Z"));
    assert!(ny.contains(&"2026-11-01T07:30:00Z"));
    let blackouts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["category"] == "BLACKOUT")
        .collect();
    assert_eq!(blackouts.len(), 1);
    assert_eq!(blackouts[0]["start"], "2026-12-19T23:00:00Z");
    assert_eq!(blackouts[0]["end"], "2027-01-03T23:00:00Z");

    // The subscribable feed, per group, with a calendar token in the query.
    let cal: patchbay_proto::api::TokenCreated = serde_json::from_str(&ok(&s.cli(&[
        "tokens", "create", "--name", "cal", "--role", "calendar", "--format", "json",
    ])))
    .unwrap();
    let url = format!(
        "{}/calendar.ics?group=db&from={from}&to={to}&token={}",
        s.url, cal.token
    );
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let f2 = dir.path().join("db.ics");
    std::fs::write(&f2, &body).unwrap();
    let db_events = read_ics(&f2);
    assert!(
        db_events
            .iter()
            .all(|e| e["summary"] != "Maintenance window: ny-sunday")
    );
    assert!(
        db_events
            .iter()
            .any(|e| e["summary"] == "Maintenance window: pt-plus-2")
    );
    assert!(db_events.iter().any(|e| e["category"] == "BLACKOUT"));
    // No token, no calendar.
    let r = ureq::get(&format!("{}/calendar.ics", s.url)).call();
    match r {
        Err(ureq::Error::StatusCode(401)) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

crate::both_backends!(
    windows_blackouts_and_the_plan,
    out_of_band_enters_a_blackout_only_with_approval,
    calendar_feed_equals_an_independent_expansion,
);
