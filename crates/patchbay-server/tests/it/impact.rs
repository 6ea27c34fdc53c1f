//! Expected-impact notices and summaries (issue 18, item 8), against real
//! receivers on loopback: aiosmtpd (the SMTP server of the email tests,
//! messages decoded by Python's `email` package) and an HTTP receiver that
//! keeps every body it is sent (a Slack-template and a generic
//! subscription). Four hosts: h1, h2 owned by `web` (a Saturday-night window
//! in Europe/Berlin; h2 also gets a kernel package), h3 owned by a hostile
//! name, h4 by nobody (no window: any time). Time is the injected clock.
//!
//! Hand-computed fixture: `web` — h1 pb-demo 1.0 → 1.1, no reboot, 0 s;
//! h2 pb-demo 1.0 → 1.1 and linux-image-amd64 6.1.1 → 6.1.2, reboot (kernel
//! package), 300 s (the default reboot estimate); first window 2026-12-12
//! 23:00 Berlin = 22:00 UTC, so its notice is due 24 h before, 2026-12-11
//! 22:00 UTC. h3 and h4 may run at once: their notices go out at creation.

use crate::deploy::token;
use crate::email::{Sink, one, plain};
use crate::support::{Host, InProcess, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchbay_app::duties::Runner;
use patchbay_app::email::Mailer;
use patchbay_app::webhooks::Sender;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOSTILE: &str = "db <script>alert(1)</script> & co";

/// A decoded email: headers, text part, HTML part.
type Mail = (
    std::collections::BTreeMap<String, Vec<String>>,
    String,
    String,
);

type Bodies = Arc<Mutex<Vec<(String, Value)>>>;

/// An HTTP receiver on loopback that keeps every body, by path.
async fn receiver() -> (String, Bodies) {
    async fn keep(State(b): State<Bodies>, Path(p): Path<String>, body: Bytes) -> StatusCode {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        b.lock().unwrap().push((p, v));
        StatusCode::OK
    }
    let bodies: Bodies = Arc::default();
    let app = axum::Router::new()
        .route("/hook/{path}", axum::routing::post(keep))
        .with_state(bodies.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), bodies)
}

fn inventory(h: &Host, pb: &str, kernel: Option<&str>) -> patchbay_core::inventory::Inventory {
    let mut inv = pb_demo_inventory(&h.name, &h.mid, pb);
    if let Some(k) = kernel {
        inv.packages.push(patchbay_core::inventory::Package {
            name: "linux-image-amd64".into(),
            version: k.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
        });
    }
    inv.normalize();
    inv
}

async fn set_owner(s: &InProcess, host: &str, owner: &str) -> StatusCode {
    let body = json!({ "owner": owner }).to_string();
    let (st, text) = s
        .call(
            "PATCH",
            &format!("/api/v1/assets/{host}"),
            Some(&s.admin),
            Some(&body),
        )
        .await;
    assert!(
        st == StatusCode::OK || st == StatusCode::BAD_REQUEST,
        "{st} {text}"
    );
    st
}

/// Answers every job the hosts are handed (success; h2 reports a reboot
/// needed after its apply) with the new inventory, ticking the runner
/// until the deployment is `completed`.
async fn drive(s: &InProcess, runner: &mut Runner, hosts: &[Host], id: &str, until: &str) {
    for _ in 0..40 {
        runner.tick().await;
        let d = s
            .ok_json(
                "GET",
                &format!("/api/v1/deployments/{id}"),
                &s.admin,
                json!(null),
            )
            .await;
        if d["rollout"]["state"] == until {
            return;
        }
        for h in hosts {
            let (jobs, _) = crate::deploy::checkin(s, h, json!([])).await;
            for j in jobs {
                let key = j.job.key.clone();
                let reboot = key == format!("{id}/h2");
                let mut r = crate::deploy::result(&key, &h.name, true);
                r["reboot_required"] = json!(reboot);
                if key.ends_with("/reboot") {
                    r["changed"] = json!([]);
                    // The reboot takes 90 s (measured: lease to result).
                    s.clock.advance(SignedDuration::from_secs(90));
                }
                let kernel = (h.name == "h2").then_some("6.1.2");
                s.ok_json(
                    "POST",
                    "/agent/v1/checkin",
                    &h.secret,
                    full_checkin(inventory(h, "1.1", kernel), json!([r])),
                )
                .await;
            }
        }
        s.clock.advance(SignedDuration::from_mins(2));
    }
    panic!("{id} never reached {until}");
}

async fn impact_notices_and_summaries(backend: &str) {
    let s = InProcess::on(backend).await;
    let ops = token(&s, "operator").await;
    let hosts = crate::deploy::fleet(&s, 4).await;
    // h2 has a kernel package too.
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[1].secret,
        full_checkin(inventory(&hosts[1], "1.0", Some("6.1.1")), json!([])),
    )
    .await;
    import_pb_demo_advisory(&s).await;
    for (h, o) in [("h1", "web"), ("h2", "web"), ("h3", HOSTILE)] {
        assert_eq!(set_owner(&s, h, o).await, StatusCode::OK);
    }
    // A line break in an owner is refused (no value reaches a header).
    assert_eq!(
        set_owner(&s, "h4", "web\r\nBcc: victim@example.org").await,
        StatusCode::BAD_REQUEST
    );
    s.ok_json(
        "POST",
        "/api/v1/windows",
        &ops,
        json!({"name": "maint-sat", "rrule": "FREQ=WEEKLY;BYDAY=SA", "dtstart": "2026-12-05T23:00",
               "tz": "Europe/Berlin", "duration": "4h", "assets": ["h1", "h2"]}),
    )
    .await;
    for (name, events) in [
        ("web", json!([])),
        ("unowned", json!([])),
        ("ops", json!(["deployment.impact_notice"])),
        ("bystander", json!(["deployment.completed"])),
    ] {
        s.ok_json(
            "POST",
            "/api/v1/contacts",
            &ops,
            json!({"name": name, "email": format!("{name}@example.net"), "events": events}),
        )
        .await;
    }
    let (hook, bodies) = receiver().await;
    for (name, template) in [("chat", "slack"), ("plain", "generic")] {
        s.ok_json(
            "POST",
            "/api/v1/webhooks",
            &s.admin,
            json!({"name": name, "url": format!("{hook}/{name}"), "template": template,
                   "events": ["deployment.impact_notice", "deployment.impact_summary"]}),
        )
        .await;
    }
    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &ops,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"},
                                {"name": "linux-image-amd64", "version": "6.1.2"}],
                   "window": "168h",
                   "rings": [{"name": "all", "max_concurrent": "100%"}]}),
        )
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();

    // The impact, checked against the hand-computed fixture.
    let imp = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}/impact"),
            &ops,
            json!(null),
        )
        .await;
    let owners: Vec<&str> = imp["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, [HOSTILE, "web", "(unowned)"], "{imp:#}");
    let web = &imp["owners"][1];
    assert_eq!(web["first_window"], "2026-12-12T22:00:00Z");
    assert_eq!(
        (
            web["reboots"].as_u64(),
            web["interruption_seconds"].as_i64()
        ),
        (Some(1), Some(300))
    );
    let (h1, h2) = (&web["assets"][0], &web["assets"][1]);
    assert_eq!(
        (h1["asset"].as_str(), h2["asset"].as_str()),
        (Some("h1"), Some("h2"))
    );
    assert_eq!(
        h1["packages"],
        json!([{"name": "pb-demo", "from": "1.0", "to": "1.1"}])
    );
    let mut h2p: Vec<Value> = h2["packages"].as_array().unwrap().clone();
    h2p.sort_by_key(|p| p["name"].as_str().unwrap().to_string());
    assert_eq!(
        h2p,
        [
            json!({"name": "linux-image-amd64", "from": "6.1.1", "to": "6.1.2"}),
            json!({"name": "pb-demo", "from": "1.0", "to": "1.1"})
        ]
    );
    assert_eq!(h1["reboot"]["needed"], false);
    assert_eq!(h2["reboot"]["needed"], true);
    assert!(
        h2["reboot"]["source"]
            .as_str()
            .unwrap()
            .contains("linux-image-amd64"),
        "{h2}"
    );
    assert_eq!(
        (
            h1["interruption"]["seconds"].as_i64(),
            h2["interruption"]["seconds"].as_i64()
        ),
        (Some(0), Some(300))
    );
    assert_eq!(h2["interruption"]["estimate"], true);
    assert_eq!(h2["services"]["known"], false);
    assert_eq!(h2["services"]["source"], "unknown until rehearsed");
    assert_eq!(h2["window"]["name"], "maint-sat");
    assert_eq!(h2["window"]["zone"], "Europe/Berlin");
    assert_eq!(h2["window"]["opens_utc"], "2026-12-12T22:00:00Z");
    assert!(
        h2["window"]["opens_local"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-12T23:00:00+01:00[Europe/Berlin]"),
        "{h2}"
    );
    let h4 = &imp["owners"][2]["assets"][0];
    assert_eq!(
        (h4["asset"].as_str(), h4["window"]["name"].as_str()),
        (Some("h4"), None)
    );
    assert_eq!(h4["window"]["opens_utc"], "2026-12-08T22:00:00Z");
    assert_eq!(imp["notices"], json!([]));

    // At creation: the owners whose hosts may run at once (h3's, h4's).
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 2);
    assert_eq!(
        s.app.run_impact_notices().await.unwrap(),
        0,
        "nothing twice"
    );
    // The duties runner runs the same duty: still nothing new.
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    runner.tick().await;
    assert_eq!(
        crate::escalations::events(&s, "deployment.impact_notice")
            .await
            .len(),
        2
    );
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    // h3 and h4 run now; web's hosts wait for Saturday.
    for _ in 0..6 {
        drive_once(&s, &mut runner, &hosts).await;
    }
    // One second before the lead time: nothing for web.
    s.clock
        .set("2026-12-11T21:59:59Z".parse::<Timestamp>().unwrap());
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 0);
    s.clock
        .set("2026-12-11T22:00:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 1);
    // A restarted server (a new service over the same database) sends
    // nothing again.
    let again = s.reopen().await;
    assert_eq!(again.run_impact_notices().await.unwrap(), 0);
    // An owner that appears later (h1 handed to web2) gets its own notice;
    // web, notified already, gets nothing new. h1 goes back to web before
    // the rollout, so web2 has no host left to summarise.
    assert_eq!(set_owner(&s, "h1", "web2").await, StatusCode::OK);
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 1);
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 0);
    assert_eq!(set_owner(&s, "h1", "web").await, StatusCode::OK);
    assert_eq!(s.app.run_impact_notices().await.unwrap(), 0);

    // The dashboard: the board's per-owner lines and the owner-facing page,
    // with when each notice was sent; the hostile owner escaped.
    crate::dashboard::add_user(&s, "viewer", "auditor").await;
    let cookie = crate::dashboard::sign_in(&s, "viewer").await;
    let (st, _, board) = crate::dashboard::browse(
        &s,
        "GET",
        &format!("/ui/deployments/{id}"),
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{board}");
    assert!(board.contains("Expected impact per owner"), "{board}");
    assert!(
        board.contains("2 host(s), first window 2026-12-12T22:00:00Z, 1 reboot(s), ≈300 s interruption (estimate); notice: sent 2026-12-11T22:00:00Z (contact web); summary: not yet"),
        "{board}"
    );
    let (st, _, page) = crate::dashboard::browse(
        &s,
        "GET",
        &format!("/ui/deployments/{id}/impact"),
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    for want in [
        "Owner web — notice sent 2026-12-11T22:00:00Z (contact web); summary not yet",
        "maint-sat: 2026-12-12T23:00:00+01:00[Europe/Berlin]",
        "linux-image-amd64 6.1.1 → 6.1.2",
        "yes: kernel/microcode package linux-image-amd64 changes (plan)",
        "unknown until rehearsed",
    ] {
        assert!(page.contains(want), "{want:?} not on the page:\n{page}");
    }
    assert!(!page.contains("<script>alert") && !board.contains("<script>alert"));
    assert!(page.contains("&#60;script&#62;alert(1)"), "{page}");

    let notices = crate::escalations::events(&s, "deployment.impact_notice").await;
    let by: Vec<&str> = notices
        .iter()
        .map(|n| n["owner"].as_str().unwrap())
        .collect();
    assert_eq!(by, [HOSTILE, "(unowned)", "web", "web2"]);
    assert_eq!(
        notices[3]["assets"].as_array().map(|a| a.len()),
        Some(1),
        "web2's notice covers h1 only"
    );
    let imp = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}/impact"),
            &ops,
            json!(null),
        )
        .await;
    let sent: Vec<(String, String, String)> = imp["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["owner"].as_str().unwrap().to_string(),
                n["kind"].as_str().unwrap().to_string(),
                n["contact"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        sent.contains(&("web".into(), "notice".into(), "web".into())),
        "{sent:?}"
    );
    assert!(sent.contains(&("(unowned)".into(), "notice".into(), "unowned".into())));

    // Saturday night: web's hosts run; the deployment completes; each owner
    // gets one summary.
    s.clock
        .set("2026-12-12T22:00:30Z".parse::<Timestamp>().unwrap());
    drive(&s, &mut runner, &hosts, &id, "completed").await;
    runner.tick().await;
    s.clock.advance(SignedDuration::from_mins(2));
    runner.tick().await;
    assert_eq!(
        s.app.run_impact_notices().await.unwrap(),
        0,
        "nothing twice"
    );
    let summaries = crate::escalations::events(&s, "deployment.impact_summary").await;
    assert_eq!(summaries.len(), 3, "{summaries:#?}");
    let web_sum = summaries.iter().find(|e| e["owner"] == "web").unwrap();
    assert_eq!(web_sum["outcome"], "completed");
    let h2s = web_sum["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset"] == "h2")
        .unwrap();
    assert_eq!(h2s["state"], "succeeded");
    assert_eq!(h2s["rebooted"], true, "{h2s}");
    assert_eq!(h2s["closed"], json!(["CVE-2026-99999"]), "{h2s}");
    let h1s = web_sum["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset"] == "h1")
        .unwrap();
    assert_eq!(h1s["rebooted"], false);
    assert_eq!(
        h1s["changed"],
        json!([{"name": "pb-demo", "from": "1.0", "to": "1.1"}])
    );

    // Email: web gets its notice and its summary, unowned the same for h4,
    // ops (listing the notice kind) every owner's notice, the bystander
    // nothing of this — each once.
    let sink = Sink::start(&[]);
    let mailer = Mailer::new(&plain(sink.port), Duration::from_secs(10)).unwrap();
    s.app.emails_fan_out().await.unwrap();
    s.app.emails_deliver(&mailer).await.unwrap();
    assert_eq!(s.app.emails_fan_out().await.unwrap(), 0);
    assert_eq!(s.app.emails_deliver(&mailer).await.unwrap().sent, 0);
    let got = sink.decoded();
    let to = |who: &str| -> Vec<&Mail> {
        got.iter()
            .filter(|(h, _, _)| one(h, "x-rcptto") == format!("{who}@example.net"))
            .filter(|(h, _, _)| {
                one(h, "subject").contains("impact") || one(h, "subject").contains("summary")
            })
            .collect()
    };
    assert_eq!(to("bystander").len(), 0);
    assert_eq!(to("ops").len(), 4);
    let web_mail = to("web");
    assert_eq!(web_mail.len(), 2, "one notice, one summary");
    let (h, text, _) = web_mail
        .iter()
        .find(|(h, _, _)| one(h, "subject").contains("expected impact"))
        .unwrap();
    assert_eq!(
        one(h, "subject"),
        format!(
            "[Patchbay] {id}: expected impact on web's 2 host(s), first window 2026-12-12T22:00:00Z"
        )
    );
    for want in [
        "h1 (ring all)",
        "h2 (ring all)",
        "pb-demo 1.0 → 1.1",
        "linux-image-amd64 6.1.1 → 6.1.2",
        "Window: maint-sat 2026-12-12T23:00:00+01:00[Europe/Berlin]",
        "Reboot: yes (kernel/microcode package linux-image-amd64 changes (plan))",
        "Reboot: no (no kernel or microcode package changes (plan))",
        "Services restarting: unknown until rehearsed",
        "Expected interruption: about 300 s (estimate:",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    let (_, sum_text, _) = web_mail
        .iter()
        .find(|(h, _, _)| one(h, "subject").contains("summary"))
        .unwrap();
    assert!(sum_text.contains("Rebooted: yes"), "{sum_text}");
    assert!(
        sum_text.contains("Findings closed: CVE-2026-99999"),
        "{sum_text}"
    );
    assert_eq!(to("unowned").len(), 2);
    // The hostile owner: one header line each, escaped in the HTML part.
    let (h, _, html) = to("ops")
        .into_iter()
        .find(|(h, _, _)| one(h, "subject").contains("<script>"))
        .expect("the hostile owner's notice reached ops");
    assert!(!h.contains_key("bcc"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );

    // Chat: the Slack template renders each host; the generic receiver gets
    // the envelope.
    s.app.webhooks_fan_out().await.unwrap();
    let sender = Sender::new(Duration::from_secs(5));
    for _ in 0..8 {
        for id in s.app.webhook_ids().await.unwrap() {
            s.app.webhooks_deliver(id, &sender).await.unwrap();
        }
        s.clock.advance(SignedDuration::from_secs(1));
    }
    let got = bodies.lock().unwrap().clone();
    let chat: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "chat")
        .map(|(_, v)| v)
        .collect();
    let plain_: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "plain")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        (chat.len(), plain_.len()),
        (7, 7),
        "4 notices + 3 summaries each"
    );
    let web_chat = chat
        .iter()
        .find(|v| {
            v["text"]
                .as_str()
                .unwrap()
                .contains("on web's 2 host(s), first window")
        })
        .unwrap();
    let sections: Vec<&str> = web_chat["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert!(
        sections.iter().any(|t| t
            .starts_with("h2: 2026-12-12T23:00:00+01:00[Europe/Berlin] (Europe/Berlin)")
            && t.contains("linux-image-amd64 6.1.1 → 6.1.2")
            && t.contains("reboot: yes")),
        "{sections:#?}"
    );
    let hostile_chat = chat
        .iter()
        .find(|v| v["blocks"].to_string().contains("alert(1)"))
        .unwrap();
    assert!(
        !hostile_chat["blocks"].to_string().contains("<script>"),
        "{hostile_chat}"
    );
    let env = plain_
        .iter()
        .find(|v| v["kind"] == "deployment.impact_notice" && v["data"]["owner"] == "web")
        .unwrap();
    assert_eq!(env["deployment"], id.as_str());
    assert_eq!(env["data"]["contact"], "web");
    assert_eq!(env["data"]["assets"].as_array().unwrap().len(), 2);

    // A later kernel update of h2: its reboot is now estimated at the 90 s
    // its last reboot job took (lease to result), not the default; the
    // packages already at their pins are not listed as changing.
    let d2 = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &ops,
            json!({"packages": [{"name": "linux-image-amd64", "version": "6.1.3"},
                                {"name": "pb-demo", "version": "1.1"}],
                   "assets": ["h2"], "window": "168h"}),
        )
        .await;
    let id2 = d2["deployment"]["id"].as_str().unwrap().to_string();
    let imp2 = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id2}/impact"),
            &ops,
            json!(null),
        )
        .await;
    let a = &imp2["owners"][0]["assets"][0];
    assert_eq!(a["asset"], "h2", "{imp2:#}");
    assert_eq!(
        a["packages"],
        json!([{"name": "linux-image-amd64", "from": "6.1.2", "to": "6.1.3"}])
    );
    assert_eq!(a["interruption"]["seconds"], 90, "{a}");
    assert!(
        a["interruption"]["basis"]
            .as_str()
            .unwrap()
            .contains("reboot ≈ 90 s (this host's measured reboot)"),
        "{a}"
    );
    assert_eq!(a["services"]["known"], false);

    // A rehearsal in an overlay: its own diff (with a new dependency) and
    // the services its package scripts asked to restart replace the plan.
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id2}/rehearsals"),
        &ops,
        json!({}),
    )
    .await;
    let (jobs, _) = crate::deploy::checkin(&s, &hosts[1], json!([])).await;
    let key = jobs
        .iter()
        .find(|j| j.job.key.contains("/rehearse/"))
        .expect("a rehearse job for h2")
        .job
        .key
        .clone();
    let res = json!({"key": key, "outcome": "succeeded", "finished_at": "2026-12-12T23:00:00Z",
        "rehearsal": {"mode": "overlay",
            "changed": [{"name": "linux-image-amd64", "before": "6.1.2", "after": "6.1.3"},
                        {"name": "linux-image-6.1.3-amd64", "after": "6.1.3"}],
            "services": ["nginx", "ssh"]}});
    crate::deploy::checkin(&s, &hosts[1], json!([res])).await;
    let imp3 = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id2}/impact"),
            &ops,
            json!(null),
        )
        .await;
    let a = &imp3["owners"][0]["assets"][0];
    assert_eq!(a["packages_source"], "rehearsal", "{a}");
    assert_eq!(
        a["packages"],
        json!([{"name": "linux-image-amd64", "from": "6.1.2", "to": "6.1.3"},
               {"name": "linux-image-6.1.3-amd64", "from": null, "to": "6.1.3"}])
    );
    assert_eq!(a["services"]["known"], true);
    assert_eq!(a["services"]["names"], json!(["nginx", "ssh"]));
    assert!(
        a["reboot"]["source"]
            .as_str()
            .unwrap()
            .ends_with("changes (rehearsal)"),
        "{a}"
    );
    // 2 restarts × 10 s + the measured 90 s reboot.
    assert_eq!(a["interruption"]["seconds"], 110, "{a}");
}

async fn drive_once(s: &InProcess, runner: &mut Runner, hosts: &[Host]) {
    runner.tick().await;
    for h in hosts {
        let (jobs, _) = crate::deploy::checkin(s, h, json!([])).await;
        for j in jobs {
            let r = crate::deploy::result(&j.job.key, &h.name, true);
            s.ok_json(
                "POST",
                "/agent/v1/checkin",
                &h.secret,
                full_checkin(inventory(h, "1.1", None), json!([r])),
            )
            .await;
        }
    }
    s.clock.advance(SignedDuration::from_mins(2));
}

#[tokio::test]
async fn impact_notices_and_summaries_reach_each_owner_once_sqlite() {
    impact_notices_and_summaries("sqlite").await;
}

#[tokio::test]
async fn impact_notices_and_summaries_reach_each_owner_once_postgres() {
    impact_notices_and_summaries("postgres").await;
}
