//! Store conformance suite: the same stories run unchanged against SQLite and
//! PostgreSQL. PostgreSQL needs PATCHBAY_TEST_PG_URL (scripts/test sets it).

use jiff::{SignedDuration, Timestamp};
use patchbay_core::inventory::{HostFacts, OsRelease, Package, PackageDelta};
use patchbay_store::testing::fresh_url;
use patchbay_store::{
    AdvisoryRow, AssetAttrs, AuditRecord, DeploymentRow, EpssRow, FeedRow, HostState, KevRow,
    NewApiToken, NewEnrollToken, NewFinding, OobEventRow, PolicyRow, Store, StoreError,
};
use patchbay_store::{
    AgentJobRow, AssetListPage, AssetListQuery, AssetListRow, CvssScoreRow, ListLiveness,
    RolloutRow,
};
use patchbay_store::{BlackoutApprovalRow, BlackoutRow, ExceptionRow, LeaseOutcome, WindowRow};
use std::sync::Arc;

mod flips;
mod seen;

fn t0() -> Timestamp {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

fn pkg(name: &str, version: &str, arch: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        arch: arch.into(),
        source: Some(format!("{name}-src")),
        source_version: None,
    }
}

async fn open(backend: &str) -> Arc<dyn Store> {
    let url = fresh_url(backend).await;
    let s = patchbay_store::open(&url).await.unwrap();
    assert_eq!(s.backend(), backend);
    s
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::open("sqlite").await).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::open("postgres").await).await } )* }
    };
}

both!(
    assets_story,
    packages_story,
    tokens_story,
    enroll_tokens_story,
    agents_story,
    audit_story,
    uncommitted_transactions_leave_nothing,
    feeds_story,
    advisory_pages_walk_every_row_once,
    cvss_scores_are_replaced_per_cve,
    findings_story,
    plan_story,
    schedule_story,
    failed_write_leaves_no_audit,
    exceptions_story,
    signed_append_refuses_an_unsigned_head,
    leases_story,
    rollouts_story,
    rollout_rows_are_claimed_by_one_writer,
    delta_assessment_story,
    impact_notices_story,
);

/// Impact notices (migration 0120): one per deployment, owner and kind; a
/// second insert of the same is refused whatever its other fields; a
/// deployment's notices read back by time, then owner; a rolled-back insert
/// leaves nothing.
async fn impact_notices_story(s: Arc<dyn Store>) {
    use patchbay_store::ImpactNoticeRow;
    let row = |owner: &str, kind: &str, secs: i64| ImpactNoticeRow {
        deployment: "DEP-1".into(),
        owner: owner.into(),
        kind: kind.into(),
        at: t0() + SignedDuration::from_secs(secs),
        contact: owner.into(),
        assets: vec!["h1".into(), "h2".into()],
    };
    let mut tx = s.write().await.unwrap();
    assert!(tx.note_impact(&row("web", "notice", 5)).await.unwrap());
    assert!(tx.note_impact(&row("db", "notice", 5)).await.unwrap());
    assert!(tx.note_impact(&row("web", "summary", 9)).await.unwrap());
    assert!(
        !tx.note_impact(&row("web", "notice", 7)).await.unwrap(),
        "once"
    );
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    assert!(tx.note_impact(&row("ops", "notice", 1)).await.unwrap());
    drop(tx);
    let mut r = s.read().await.unwrap();
    let got = r.impact_notices("DEP-1").await.unwrap();
    let keys: Vec<(&str, &str, i64)> = got
        .iter()
        .map(|n| {
            (
                n.owner.as_str(),
                n.kind.as_str(),
                n.at.as_second() - t0().as_second(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("db", "notice", 5),
            ("web", "notice", 5),
            ("web", "summary", 9)
        ]
    );
    assert_eq!(got[0].assets, ["h1", "h2"]);
    assert!(r.impact_notices("DEP-2").await.unwrap().is_empty());
}

/// The store side of delta re-assessment: the queue keeps what was queued after
/// a read, packages are found by binary or source name (of all assets or some),
/// and findings by (asset, package, arch), optionally of some advisories only.
async fn delta_assessment_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.pending_reassessment().await.unwrap(), (None, vec![]));
    let e = |p: &str, a: &str| ("Debian:12".to_string(), p.to_string(), a.to_string());
    tx.queue_reassessment(&[e("glibc", "DSA-1"), e("glibc", "DSA-1"), e("zlib", "DSA-2")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (upto, read) = s
        .read()
        .await
        .unwrap()
        .pending_reassessment()
        .await
        .unwrap();
    assert_eq!(
        read,
        vec![e("glibc", "DSA-1"), e("zlib", "DSA-2")],
        "distinct, sorted"
    );
    // An import after the read stays queued when the read entries are cleared.
    let mut tx = s.write().await.unwrap();
    tx.queue_reassessment(&[e("openssl", "DSA-3")])
        .await
        .unwrap();
    tx.clear_reassessment(upto.unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    let (upto2, left) = s
        .read()
        .await
        .unwrap()
        .pending_reassessment()
        .await
        .unwrap();
    assert_eq!(left, vec![e("openssl", "DSA-3")]);
    assert!(upto2 > upto);

    let mut tx = s.write().await.unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let id = tx
            .insert_asset(name, &AssetAttrs::default(), true, t0())
            .await
            .unwrap();
        // pkg() gives each package the source `<name>-src`.
        let ps = vec![
            pkg("libc6", "2.36-9", "amd64"),
            pkg(&format!("only-{name}"), "1", "all"),
        ];
        tx.apply_package_delta(id, &PackageDelta::between(&[], &ps))
            .await
            .unwrap();
        ids.push(id);
    }
    let by_binary = tx.packages_named(&["only-b".into()], None).await.unwrap();
    assert_eq!(by_binary.len(), 1);
    assert_eq!(
        (by_binary[0].0, by_binary[0].1.name.as_str()),
        (ids[1], "only-b")
    );
    let by_source = tx
        .packages_named(&["libc6-src".into()], None)
        .await
        .unwrap();
    assert_eq!(
        by_source.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids,
        "every asset with a package of that source"
    );
    let some = tx
        .packages_named(&["libc6-src".into(), "only-a".into()], Some(&ids[..1]))
        .await
        .unwrap();
    assert_eq!(some.len(), 2, "{some:?}");
    assert!(some.iter().all(|(id, _)| *id == ids[0]));
    assert_eq!(tx.packages_of_assets(&ids[1..]).await.unwrap().len(), 4);

    let f = |adv: &str, p: &str| NewFinding {
        advisory_id: adv.into(),
        package: p.into(),
        arch: "amd64".into(),
        source_package: format!("{p}-src"),
        installed_version: "2.36-9".into(),
        fixed_version: Some("2.36-10".into()),
    };
    tx.insert_findings_of_assets(
        &[
            (ids[0], f("DSA-1", "libc6")),
            (ids[0], f("DSA-2", "libc6")),
            (ids[1], f("DSA-1", "libc6")),
            (ids[2], f("DSA-1", "libc6")),
        ],
        t0(),
    )
    .await
    .unwrap();
    let keys = vec![
        (ids[0], "libc6".to_string(), "amd64".to_string()),
        (ids[1], "libc6".to_string(), "amd64".to_string()),
    ];
    assert_eq!(
        tx.findings_of_asset_packages(&keys, &[])
            .await
            .unwrap()
            .len(),
        3
    );
    let only = tx
        .findings_of_asset_packages(&keys, &["DSA-2".into()])
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(
        (only[0].asset_id, only[0].finding.advisory_id.as_str()),
        (ids[0], "DSA-2")
    );
    assert_eq!(tx.findings_of_assets(&ids[1..]).await.unwrap().len(), 2);
    tx.commit().await.unwrap();
}

async fn assets_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let attrs = AssetAttrs {
        owner: "web-team".into(),
        tags: vec!["dc1".into()],
        ..AssetAttrs::default()
    };
    let id = tx
        .insert_asset("prod-web-01", &attrs, true, t0())
        .await
        .unwrap();
    let err = tx
        .insert_asset("prod-web-01", &attrs, false, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("prod-web-01")),
        "{err:?}"
    );
    tx.commit().await.unwrap();

    let mut tx = s.write().await.unwrap();
    tx.insert_asset("core-sw-01", &AssetAttrs::default(), false, t0())
        .await
        .unwrap();
    let facts = HostFacts {
        hostname: "web01".into(),
        machine_id: "abc123".into(),
        os: OsRelease {
            id: "debian".into(),
            version_id: "12".into(),
            ..Default::default()
        },
        ip_addresses: vec!["10.0.0.1".into()],
        reboot_required: true,
        ..Default::default()
    };
    tx.set_host_state(
        id,
        &HostState {
            facts: &facts,
            package_format: Some("deb"),
            pending_updates: &[],
            inventory_hash: "h1",
            seen_at: Some(t0()),
            now: t0(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    let a = tx.asset_by_name("prod-web-01").await.unwrap().unwrap();
    assert_eq!(a.attrs, attrs);
    assert!(a.has_agent);
    assert_eq!(a.facts, facts);
    assert_eq!(a.inventory_hash.as_deref(), Some("h1"));
    assert_eq!(a.last_seen_at, Some(t0()));
    assert_eq!(
        tx.asset_by_machine_id("abc123").await.unwrap().unwrap().id,
        id
    );
    assert!(tx.asset_by_machine_id("").await.unwrap().is_none());
    let names: Vec<String> = tx
        .list_assets()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec!["core-sw-01", "prod-web-01"]);
    // The narrow read of the rollout driver agrees.
    assert_eq!(
        tx.asset_last_seen().await.unwrap(),
        vec![
            ("core-sw-01".to_string(), None),
            ("prod-web-01".to_string(), Some(t0()))
        ]
    );
    // So does the list read: exactly the full rows' listed columns.
    let full = tx.list_assets().await.unwrap();
    let listed = tx.list_asset_rows().await.unwrap();
    assert_eq!(
        listed,
        full.iter().map(AssetListRow::from).collect::<Vec<_>>()
    );
    assert_eq!(listed[1].attrs.tags, vec!["dc1"]);
    // A list page filtered and limited in the database.
    let page = |text: &str, liveness: Option<ListLiveness>, limit: usize| AssetListQuery {
        text: text.into(),
        liveness,
        limit,
    };
    let names = |p: &AssetListPage| p.rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let all = tx.asset_list_page(&page("", None, 10)).await.unwrap();
    assert_eq!((all.matching, all.total), (2, 2));
    assert_eq!(all.rows, listed);
    let first = tx.asset_list_page(&page("", None, 1)).await.unwrap();
    assert_eq!(
        (names(&first), first.matching),
        (vec!["core-sw-01".to_string()], 2)
    );
    for (text, want) in [
        ("WEB-TEAM", vec!["prod-web-01"]), // owner, any case
        ("dc1", vec!["prod-web-01"]),      // a tag
        ("debian:12", vec!["prod-web-01"]),
        ("server", vec!["core-sw-01", "prod-web-01"]), // kind
        ("sw-", vec!["core-sw-01"]),
        ("%", vec![]), // LIKE's wildcards are literal
        ("_", vec![]),
        ("nothing", vec![]),
    ] {
        let p = tx.asset_list_page(&page(text, None, 10)).await.unwrap();
        assert_eq!(names(&p), want, "{text}");
        assert_eq!(p.matching as usize, want.len(), "{text}");
        assert_eq!(p.total, 2);
    }
    let cut_before = t0() - jiff::SignedDuration::from_secs(1);
    let cut_after = t0() + jiff::SignedDuration::from_secs(1);
    for (liveness, want) in [
        (ListLiveness::Unmanaged, vec!["core-sw-01"]),
        (ListLiveness::Managed(cut_before), vec!["prod-web-01"]),
        (ListLiveness::Managed(t0()), vec!["prod-web-01"]),
        (ListLiveness::Managed(cut_after), vec![]),
        (ListLiveness::Stale(cut_after), vec!["prod-web-01"]),
        (ListLiveness::Stale(t0()), vec![]),
    ] {
        let p = tx
            .asset_list_page(&page("", Some(liveness), 10))
            .await
            .unwrap();
        assert_eq!(names(&p), want, "{liveness:?}");
    }
    assert_eq!(
        (listed[1].os_id.as_str(), listed[1].os_version_id.as_str()),
        ("debian", "12")
    );
    drop(tx);

    // Attribute edits; a host-state write without a check-in keeps last_seen.
    let mut tx = s.write().await.unwrap();
    let new_attrs = AssetAttrs {
        business_impact: "critical".into(),
        ..attrs.clone()
    };
    tx.update_asset_attrs(id, &new_attrs, t0() + SignedDuration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(
        tx.update_asset_attrs(9999, &new_attrs, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    tx.set_host_state(
        id,
        &HostState {
            facts: &facts,
            package_format: Some("deb"),
            pending_updates: &[],
            inventory_hash: "h2",
            seen_at: None,
            now: t0() + SignedDuration::from_secs(9),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let a = s
        .read()
        .await
        .unwrap()
        .asset_by_name("prod-web-01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.attrs.business_impact, "critical");
    assert_eq!(a.last_seen_at, Some(t0()));
    assert_eq!(a.inventory_hash.as_deref(), Some("h2"));
}

async fn packages_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let id = tx
        .insert_asset("h1", &AssetAttrs::default(), true, t0())
        .await
        .unwrap();
    // More than one batch, with multiarch duplicates of a name.
    let mut v1: Vec<Package> = (0..1203)
        .map(|i| pkg(&format!("p{i:04}"), "1.0-1", "amd64"))
        .collect();
    v1.push(pkg("libc6", "2.36-9", "i386"));
    v1.push(pkg("libc6", "2.36-9", "amd64"));
    v1.sort();
    let d = PackageDelta::between(&[], &v1);
    assert_eq!(tx.apply_package_delta(id, &d).await.unwrap(), 1205);
    tx.commit().await.unwrap();

    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.packages(id).await.unwrap(), v1);
    // An empty delta writes nothing.
    assert_eq!(
        tx.apply_package_delta(id, &PackageDelta::default())
            .await
            .unwrap(),
        0
    );
    // A change: one upgrade, one removal, one new package = 2 deletes + 2 inserts.
    let mut v2 = v1.clone();
    v2.retain(|p| p.name != "p0007");
    for p in v2.iter_mut().filter(|p| p.name == "p0001") {
        p.version = "1.0-2".into();
    }
    v2.push(pkg("newpkg", "3", "all"));
    v2.sort();
    let d = PackageDelta::between(&v1, &v2);
    assert_eq!(tx.apply_package_delta(id, &d).await.unwrap(), 4);
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.packages(id).await.unwrap(), v2);
    assert_eq!(
        tx.asset_by_name("h1").await.unwrap().unwrap().package_count,
        v2.len() as i64
    );
}

async fn tokens_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let t = tx
        .insert_api_token(&NewApiToken {
            name: "ops".into(),
            role: "operator".into(),
            token_hash: "hash-1".into(),
            prefix: "pbt_1234".into(),
            created_at: t0(),
            created_by: "system".into(),
            expires_at: None,
            scopes: None,
        })
        .await
        .unwrap();
    assert_eq!(t.role, "operator");
    assert!(t.last_used_at.is_none() && t.revoked_at.is_none());
    assert!(t.expires_at.is_none() && t.scopes.is_none());
    // Expiry and scopes are stored and read back as given.
    let scoped = tx
        .insert_api_token(&NewApiToken {
            name: "ci".into(),
            role: "admin".into(),
            token_hash: "hash-2".into(),
            prefix: "pbt_5678".into(),
            created_at: t0(),
            created_by: "system".into(),
            expires_at: Some(t0() + SignedDuration::from_hours(24 * 90)),
            scopes: Some("read,approve".into()),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let back = s
        .read()
        .await
        .unwrap()
        .api_token_by_hash("hash-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, scoped);
    assert_eq!(
        back.expires_at,
        Some(t0() + SignedDuration::from_hours(24 * 90))
    );
    assert_eq!(back.scopes.as_deref(), Some("read,approve"));

    let mut tx = s.write().await.unwrap();
    assert_eq!(
        tx.api_token_by_hash("hash-1").await.unwrap().unwrap().id,
        t.id
    );
    assert!(tx.api_token_by_hash("nope").await.unwrap().is_none());
    tx.touch_api_token(t.id, t0() + SignedDuration::from_secs(60))
        .await
        .unwrap();
    tx.revoke_api_token(t.id, t0() + SignedDuration::from_secs(120))
        .await
        .unwrap();
    assert!(matches!(
        tx.revoke_api_token(t.id, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        tx.revoke_api_token(4242, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    let l = s.read().await.unwrap().list_api_tokens().await.unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[1].scopes.as_deref(), Some("read,approve"));
    assert_eq!(
        l[0].last_used_at,
        Some(t0() + SignedDuration::from_secs(60))
    );
    assert_eq!(l[0].revoked_at, Some(t0() + SignedDuration::from_secs(120)));
}

async fn enroll_tokens_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let mk = |hash: &str, uses| NewEnrollToken {
        name: "e".into(),
        token_hash: hash.into(),
        prefix: "pbe_".into(),
        uses,
        expires_at: t0() + SignedDuration::from_hours(1),
        created_at: t0(),
        created_by: "system".into(),
    };
    tx.insert_enroll_token(&mk("two-uses", 2)).await.unwrap();
    tx.insert_enroll_token(&mk("one-use", 1)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let now = t0() + SignedDuration::from_mins(1);
    assert_eq!(
        tx.consume_enroll_token("two-uses", now)
            .await
            .unwrap()
            .unwrap()
            .uses_left,
        1
    );
    assert_eq!(
        tx.consume_enroll_token("two-uses", now)
            .await
            .unwrap()
            .unwrap()
            .uses_left,
        0
    );
    assert!(
        tx.consume_enroll_token("two-uses", now)
            .await
            .unwrap()
            .is_none(),
        "used up"
    );
    assert!(
        tx.consume_enroll_token("unknown", now)
            .await
            .unwrap()
            .is_none()
    );
    let late = t0() + SignedDuration::from_hours(1);
    assert!(
        tx.consume_enroll_token("one-use", late)
            .await
            .unwrap()
            .is_none(),
        "expired at expires_at"
    );
    assert!(
        tx.consume_enroll_token("one-use", now)
            .await
            .unwrap()
            .is_some()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.read()
            .await
            .unwrap()
            .list_enroll_tokens()
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn agents_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let id = tx
        .insert_asset("h", &AssetAttrs::default(), true, t0())
        .await
        .unwrap();
    tx.set_machine(id, "h.example", "feed01", t0())
        .await
        .unwrap();
    assert_eq!(
        tx.asset_by_machine_id("feed01")
            .await
            .unwrap()
            .unwrap()
            .facts
            .hostname,
        "h.example"
    );
    tx.insert_agent("agt_1", id, "secret-hash", None, t0())
        .await
        .unwrap();
    tx.touch_agent("agt_1", t0() + SignedDuration::from_secs(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let a = tx
        .agent_by_secret_hash("secret-hash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.id.as_str(), a.asset_id, a.asset_name.as_str()),
        ("agt_1", id, "h")
    );
    assert_eq!(a.last_checkin_at, Some(t0() + SignedDuration::from_secs(3)));
    assert_eq!(tx.revoke_agents_of_asset(id, t0()).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let a = s
        .read()
        .await
        .unwrap()
        .agent_by_secret_hash("secret-hash")
        .await
        .unwrap()
        .unwrap();
    assert!(a.revoked_at.is_some());

    // Active agents and enrolment approvals: one use, unexpired only, oldest first.
    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.active_agents_of_asset(id).await.unwrap(), 0);
    tx.insert_agent("agt_2", id, "secret-hash-2", None, t0())
        .await
        .unwrap();
    assert_eq!(tx.active_agents_of_asset(id).await.unwrap(), 1);
    assert_eq!(tx.take_enrollment_approval(id, t0()).await.unwrap(), None);
    let early = t0() + SignedDuration::from_secs(60);
    let late = t0() + SignedDuration::from_secs(3600);
    let a1 = tx
        .insert_enrollment_approval(id, "token:1:ops", "reinstalled", t0(), early)
        .await
        .unwrap();
    let a2 = tx
        .insert_enrollment_approval(id, "token:2:noc", "", t0(), late)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    assert_eq!(
        tx.take_enrollment_approval(id, t0()).await.unwrap(),
        Some((a1, "token:1:ops".to_string()))
    );
    // a1 is used up; at its expiry only a2 is left, then nothing.
    assert_eq!(
        tx.take_enrollment_approval(id, early).await.unwrap(),
        Some((a2, "token:2:noc".to_string()))
    );
    assert_eq!(tx.take_enrollment_approval(id, t0()).await.unwrap(), None);
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let a3 = tx
        .insert_enrollment_approval(id, "token:1:ops", "", t0(), early)
        .await
        .unwrap();
    assert!(a3 > a2);
    assert_eq!(
        tx.take_enrollment_approval(id, early).await.unwrap(),
        None,
        "expired"
    );
    tx.commit().await.unwrap();
}

async fn audit_story(s: Arc<dyn Store>) {
    let signer = patchbay_core::audit::Signer::from_seed(&[3; 32]);
    let mut seqs = vec![];
    for i in 0..5 {
        let mut tx = s.write().await.unwrap();
        let seq = tx
            .append_audit(
                &AuditRecord {
                    at: t0() + SignedDuration::from_secs(i),
                    actor: "token:1:ops".into(),
                    action: "asset.update".into(),
                    target: format!("asset:h{i}"),
                    outcome: "ok".into(),
                    detail: serde_json::json!({"i": i, "text": "naïve ✓"}),
                },
                Some(&signer),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        seqs.push(seq);
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "dense sequence numbers");
    let mut tx = s.read().await.unwrap();
    let all = tx.list_audit(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[4].record.detail["text"], "naïve ✓");
    let tail = tx.list_audit(seqs[2], 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, seqs[3]);
    // The stored chain verifies, signatures included, and the head is its end.
    let entries = tx.audit_entries(0, 100).await.unwrap();
    let key = patchbay_core::audit::public_key(&signer.public_hex()).unwrap();
    let mut v = patchbay_core::audit::Verifier::new(Some(key), 1);
    for e in &entries {
        v.push(e).unwrap();
    }
    let summary = v.finish().unwrap();
    assert_eq!(summary.signatures_checked, 5);
    assert_eq!(tx.audit_head().await.unwrap(), (5, summary.last_hash));
    drop(tx);

    // Concurrent writers still build one dense, valid chain.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = s.clone();
        let signer = signer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let mut tx = s.write().await.unwrap();
                tx.append_audit(
                    &AuditRecord {
                        at: t0(),
                        actor: format!("w{w}"),
                        action: "x".into(),
                        target: format!("{i}"),
                        outcome: "ok".into(),
                        detail: serde_json::json!({}),
                    },
                    Some(&signer),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut tx = s.read().await.unwrap();
    let entries = tx.audit_entries(0, 1000).await.unwrap();
    assert_eq!(entries.len(), 125);
    let mut v = patchbay_core::audit::Verifier::new(Some(key), 1);
    for e in &entries {
        v.push(e).unwrap();
    }
    assert_eq!(v.finish().unwrap().last_seq, 125);
    drop(tx);
    let mut tx = s.write().await.unwrap();
    tx.register_server_key(&signer.public_hex(), t0())
        .await
        .unwrap();
    tx.register_server_key(&signer.public_hex(), t0())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.server_keys().await.unwrap(), vec![signer.public_hex()]);
}

async fn uncommitted_transactions_leave_nothing(s: Arc<dyn Store>) {
    {
        let mut tx = s.write().await.unwrap();
        tx.insert_asset("ghost", &AssetAttrs::default(), false, t0())
            .await
            .unwrap();
        tx.append_audit(
            &AuditRecord {
                at: t0(),
                actor: "x".into(),
                action: "y".into(),
                target: "z".into(),
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
            None,
        )
        .await
        .unwrap();
        // dropped without commit
    }
    let mut tx = s.read().await.unwrap();
    assert!(tx.asset_by_name("ghost").await.unwrap().is_none());
    assert!(tx.list_audit(0, 10).await.unwrap().is_empty());
    // The rolled-back append did not move the head: no gap in the sequence.
    assert_eq!(tx.audit_head().await.unwrap().0, 0);
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    for backend in ["sqlite", "postgres"] {
        let url = fresh_url(backend).await;
        let s = patchbay_store::open(&url).await.unwrap();
        let mut tx = s.write().await.unwrap();
        tx.insert_asset("kept", &AssetAttrs::default(), false, t0())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        s.close().await;
        let s = patchbay_store::open(&url).await.unwrap();
        assert!(
            s.read()
                .await
                .unwrap()
                .asset_by_name("kept")
                .await
                .unwrap()
                .is_some(),
            "{backend}"
        );
    }
}

async fn feeds_story(s: Arc<dyn Store>) {
    let g0 = s.read().await.unwrap().feeds_generation().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let feed = FeedRow {
        id: 0,
        kind: "kev".into(),
        source: "/feeds/kev.json".into(),
        version: "2025.08.25".into(),
        records: 2,
        skipped: 0,
        imported_at: t0(),
        imported_by: "cli".into(),
    };
    tx.record_feed(&feed).await.unwrap();
    let kev = |cve: &str, due: &str| KevRow {
        cve: cve.into(),
        vendor: "GNU".into(),
        product: "glibc".into(),
        name: "n".into(),
        date_added: "2023-11-21".into(),
        due_date: due.into(),
        ransomware: false,
        catalog_version: "2025.08.25".into(),
    };
    assert_eq!(
        tx.upsert_kev(&[
            kev("CVE-2023-4911", "2023-12-12"),
            kev("CVE-2024-1", "2024-02-01")
        ])
        .await
        .unwrap()
        .len(),
        2
    );
    tx.commit().await.unwrap();
    let g1 = s.read().await.unwrap().feeds_generation().await.unwrap();
    assert_ne!(g0, g1, "recording a feed changes the generation");

    // Re-import: same source updates its row; only new CVEs are reported as added.
    let mut tx = s.write().await.unwrap();
    tx.record_feed(&FeedRow {
        version: "2026.08.07".into(),
        records: 3,
        imported_at: t0() + SignedDuration::from_secs(60),
        ..feed.clone()
    })
    .await
    .unwrap();
    let added = tx
        .upsert_kev(&[
            kev("CVE-2023-4911", "2023-12-12"),
            kev("CVE-2024-1", "2024-02-02"),
            kev("CVE-2026-9", "2026-09-01"),
        ])
        .await
        .unwrap();
    assert_eq!(added, vec!["CVE-2026-9".to_string()]);
    let adv = AdvisoryRow {
        id: "DSA-1".into(),
        summary: "glibc".into(),
        cves: vec!["CVE-2023-4911".into()],
        cvss_score: Some(7.8),
        cvss_vector: Some("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H".into()),
        published: Some(t0()),
        modified: None,
        affected: serde_json::json!([{"ecosystem": "Debian:12", "package": "glibc"}]),
        ecosystems: "Debian:12".into(),
        severity: Some("high".into()),
        severity_source: Some("Debian urgency".into()),
    };
    tx.upsert_advisories(std::slice::from_ref(&adv))
        .await
        .unwrap();
    tx.upsert_advisories(&[AdvisoryRow {
        summary: "glibc (updated)".into(),
        ..adv.clone()
    }])
    .await
    .unwrap();
    let scores: Vec<EpssRow> = (0..2500)
        .map(|i| EpssRow {
            cve: format!("CVE-2025-{i:05}"),
            epss: i as f64 / 2500.0,
            percentile: 0.5,
            score_date: "2026-09-29".into(),
        })
        .collect();
    assert_eq!(tx.upsert_epss(&scores).await.unwrap(), 2500);
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    let feeds = tx.list_feeds().await.unwrap();
    assert_eq!(feeds.len(), 1);
    assert_eq!(
        (feeds[0].version.as_str(), feeds[0].records),
        ("2026.08.07", 3)
    );
    let all = tx.all_advisories().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].summary, "glibc (updated)");
    assert_eq!(all[0].affected, adv.affected);
    assert_eq!(all[0].cvss_score, Some(7.8));
    assert_eq!(
        (
            all[0].severity.as_deref(),
            all[0].severity_source.as_deref()
        ),
        (Some("high"), Some("Debian urgency"))
    );
    assert_eq!(
        tx.all_kev()
            .await
            .unwrap()
            .iter()
            .find(|k| k.cve == "CVE-2024-1")
            .unwrap()
            .due_date,
        "2024-02-02"
    );
    let e = tx
        .epss_for(&["CVE-2025-01250".into(), "CVE-1999-0001".into()])
        .await
        .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].epss, 0.5);
}

/// An import of CVSS scores replaces every stored score of the CVEs it
/// carries (a score withdrawn upstream goes away) and leaves other CVEs' alone.
async fn cvss_scores_are_replaced_per_cve(s: Arc<dyn Store>) {
    let row = |cve: &str, kind: &str, version: &str, base: f64| CvssScoreRow {
        cve: cve.into(),
        source_kind: kind.into(),
        source: if kind == "nvd" {
            "nvd@nist.gov"
        } else {
            "CISA-ADP"
        }
        .into(),
        version: version.into(),
        vector: format!("CVSS:{version}/…"),
        base_score: base,
        modified: "2026-01-01T00:00:00.000".into(),
    };
    let mut tx = s.write().await.unwrap();
    let first = [
        row("CVE-2024-1", "nvd", "3.1", 9.8),
        row("CVE-2024-1", "adp", "3.1", 7.5),
        row("CVE-2024-2", "nvd", "3.1", 5.5),
    ];
    let cves = ["CVE-2024-1".to_string(), "CVE-2024-2".to_string()];
    assert_eq!(tx.replace_cvss_scores(&cves, &first).await.unwrap(), 3);
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let second = [row("CVE-2024-1", "nvd", "4.0", 8.7)];
    tx.replace_cvss_scores(&cves[..1], &second).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let got = tx
        .cvss_for(&[cves[0].clone(), cves[1].clone(), "CVE-1999-1".into()])
        .await
        .unwrap();
    assert_eq!(got, vec![second[0].clone(), first[2].clone()]);
}

/// `advisories_after` pages through every advisory once, in id order, whatever
/// the page size (the server builds its index this way).
async fn advisory_pages_walk_every_row_once(s: Arc<dyn Store>) {
    let rows: Vec<AdvisoryRow> = (0..23)
        .map(|i| AdvisoryRow {
            id: format!("DSA-{i:03}"),
            summary: format!("advisory {i}"),
            cves: vec![format!("CVE-2024-{i}")],
            cvss_score: None,
            cvss_vector: None,
            published: None,
            modified: None,
            affected: serde_json::json!([{"ecosystem": "Debian:12", "package": format!("p{i}")}]),
            ecosystems: "Debian:12".into(),
            severity: None,
            severity_source: None,
        })
        .collect();
    let mut tx = s.write().await.unwrap();
    // Stored out of order: the walk orders them.
    let mut shuffled = rows.clone();
    shuffled.reverse();
    tx.upsert_advisories(&shuffled).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    for limit in [1, 5, 23, 100] {
        let mut got = Vec::new();
        let mut after = String::new();
        loop {
            let page = tx.advisories_after(&after, limit).await.unwrap();
            assert!(page.len() <= limit as usize);
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            got.extend(page);
        }
        assert_eq!(got, rows, "page size {limit}");
    }
    assert!(tx.advisories_after("DSA-022", 10).await.unwrap().is_empty());
    assert_eq!(tx.advisories_after("DSA-020", 10).await.unwrap().len(), 2);
}

async fn findings_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let id = tx
        .insert_asset("h", &AssetAttrs::default(), true, t0())
        .await
        .unwrap();
    let f = |adv: &str, v: &str| NewFinding {
        advisory_id: adv.into(),
        package: "libc6".into(),
        arch: "amd64".into(),
        source_package: "glibc".into(),
        installed_version: v.into(),
        fixed_version: Some("2.36-9+deb12u3".into()),
    };
    tx.insert_findings(id, &[f("DSA-1", "2.36-9"), f("DSA-2", "2.36-9")], t0())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let rows = tx.findings_of_asset(id).await.unwrap();
    assert_eq!(rows.len(), 2);
    let later = t0() + SignedDuration::from_hours(2);
    tx.resolve_findings(&[rows[0].id], later).await.unwrap();
    tx.refresh_findings(&[(rows[1].id, f("DSA-2", "2.36-9+deb12u1"))], later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let open = tx.list_findings(Some(id), false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].finding.installed_version, "2.36-9+deb12u1");
    assert_eq!((open[0].first_seen, open[0].last_seen), (t0(), later));
    let all = tx.list_findings(None, true).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].resolved_at, Some(later));
    assert_eq!(all[0].asset_name, "h");
    // Reopen (a downgrade): resolved_at clears, first_seen stays.
    tx.refresh_findings(
        &[(all[0].id, f("DSA-1", "2.36-9"))],
        later + SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let all = s
        .read()
        .await
        .unwrap()
        .list_findings(None, false)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].first_seen, t0());

    // Batched inserts and lookups by (package, arch).
    let mut tx = s.write().await.unwrap();
    let many: Vec<NewFinding> = (0..1200)
        .map(|i| NewFinding {
            advisory_id: format!("DSA-{i}"),
            package: format!("p{}", i % 7),
            arch: if i % 2 == 0 {
                "amd64".into()
            } else {
                "all".into()
            },
            source_package: "src".into(),
            installed_version: "1".into(),
            fixed_version: None,
        })
        .collect();
    tx.insert_findings(id, &many, later).await.unwrap();
    tx.commit().await.unwrap();
    // A batched refresh of 1,200 findings in mixed groups (and with resolved
    // ones among them) equals refreshing each row: every row gets its own values.
    {
        let mut tx = s.write().await.unwrap();
        let rows = tx.findings_of_asset(id).await.unwrap();
        let ours: Vec<_> = rows
            .iter()
            .filter(|r| r.finding.source_package == "src")
            .collect();
        let half: Vec<i64> = ours.iter().step_by(2).map(|r| r.id).collect();
        tx.resolve_findings(&half, later).await.unwrap();
        let batch: Vec<(i64, NewFinding)> = ours
            .iter()
            .map(|r| {
                let mut nf = r.finding.clone();
                nf.installed_version = format!("2.{}", r.id % 3);
                nf.fixed_version = (r.id % 5 != 0).then(|| format!("3.{}", r.id % 4));
                (r.id, nf)
            })
            .collect();
        let at = later + SignedDuration::from_hours(5);
        tx.refresh_findings(&batch, at).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = s.read().await.unwrap();
        let after = tx.findings_of_asset(id).await.unwrap();
        for (rid, nf) in &batch {
            let r = after.iter().find(|x| x.id == *rid).unwrap();
            assert_eq!(&r.finding, nf);
            assert_eq!((r.resolved_at, r.last_seen), (None, at));
        }
        // Put them back as they were for the checks below.
        drop(tx);
        let mut tx = s.write().await.unwrap();
        let restore: Vec<(i64, NewFinding)> =
            ours.iter().map(|r| (r.id, r.finding.clone())).collect();
        tx.refresh_findings(&restore, later).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.findings_of_asset(id).await.unwrap().len(), 1202);
    let some = tx
        .findings_of_packages(
            id,
            &[
                ("p3".into(), "amd64".into()),
                ("libc6".into(), "amd64".into()),
            ],
        )
        .await
        .unwrap();
    let expected = many
        .iter()
        .filter(|f| f.package == "p3" && f.arch == "amd64")
        .count()
        + 2;
    assert_eq!(some.len(), expected);
    assert!(some.iter().all(|r| r.asset_name == "h"));
}

async fn plan_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    assert!(tx.current_policy().await.unwrap().is_none());
    let p = PolicyRow {
        id: 0,
        fingerprint: "fp1".into(),
        text: "version = 1\n".into(),
        applied_by: "token:1:admin".into(),
        applied_at: t0(),
        effect: serde_json::json!({"findings_changing_tier": 3}),
    };
    let id1 = tx.insert_policy(&p).await.unwrap();
    let id2 = tx
        .insert_policy(&PolicyRow {
            fingerprint: "fp2".into(),
            ..p.clone()
        })
        .await
        .unwrap();
    assert!(id2 > id1);
    let cur = tx.current_policy().await.unwrap().unwrap();
    assert_eq!((cur.id, cur.fingerprint.as_str()), (id2, "fp2"));
    assert_eq!(cur.effect, p.effect);
    let e = OobEventRow {
        id: 0,
        at: t0(),
        source: "feed:kev:x".into(),
        cves: vec!["CVE-2026-1".into()],
        findings: 4,
        deployment: Some("DEP-OOB-2026-11-001".into()),
    };
    tx.insert_oob_event(&e).await.unwrap();
    let d = DeploymentRow {
        id: "DEP-OOB-2026-11-001".into(),
        kind: "oob".into(),
        status: "proposed".into(),
        reason: "KEV".into(),
        patches: vec!["PB-2026-11-debian12-glibc-2.36-9+deb12u3".into()],
        assets: vec!["h1".into()],
        created_at: t0(),
        created_by: "system".into(),
    };
    tx.insert_deployment(&d).await.unwrap();
    assert!(matches!(
        tx.insert_deployment(&d).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    let mut tx = s.write().await.unwrap();
    tx.insert_oob_event(&e).await.unwrap();
    tx.insert_deployment(&d).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let ev = tx.list_oob_events().await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].cves, e.cves);
    assert_eq!(tx.list_deployments().await.unwrap(), vec![d]);
    assert!(
        tx.current_policy().await.unwrap().is_none(),
        "the dropped transaction left nothing"
    );
}

async fn schedule_story(s: Arc<dyn Store>) {
    let w = WindowRow {
        name: "patch-tuesday".into(),
        rrule: "FREQ=MONTHLY;BYDAY=2TU".into(),
        dtstart: "2026-01-01T22:00:00".into(),
        tz: "Europe/Berlin".into(),
        duration_secs: 4 * 3600,
        offset_days: 2,
        cutoff_secs: 1800,
        groups: vec!["web-prod".into()],
        assets: vec!["db-1".into()],
        description: "monthly baseline".into(),
        created_at: t0(),
        created_by: "admin".into(),
    };
    let b = BlackoutRow {
        name: "year-end".into(),
        starts_at: "2026-12-20T00:00:00Z".parse().unwrap(),
        ends_at: "2027-01-05T00:00:00Z".parse().unwrap(),
        reason: "year-end freeze".into(),
        owner: "cab".into(),
        groups: vec![],
        assets: vec![],
        created_at: t0(),
        created_by: "admin".into(),
    };
    let a = BlackoutApprovalRow {
        blackout: "year-end".into(),
        deployment: "DEP-OOB-2026-12-001".into(),
        approver: "ciso".into(),
        note: "actively exploited".into(),
        approved_at: t0(),
    };
    let mut tx = s.write().await.unwrap();
    assert!(tx.insert_window(&w).await.unwrap());
    assert!(!tx.insert_window(&w).await.unwrap(), "the name is taken");
    assert!(tx.insert_blackout(&b).await.unwrap());
    assert!(!tx.insert_blackout(&b).await.unwrap());
    assert!(tx.insert_blackout_approval(&a).await.unwrap());
    assert!(!tx.insert_blackout_approval(&a).await.unwrap());
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.list_windows().await.unwrap(), vec![w.clone()]);
    assert_eq!(tx.list_blackouts().await.unwrap(), vec![b.clone()]);
    assert_eq!(tx.list_blackout_approvals().await.unwrap(), vec![a]);
    drop(tx);

    // An end before the start is refused by the database itself.
    let mut bad = b.clone();
    bad.name = "backwards".into();
    bad.ends_at = bad.starts_at;
    let mut tx = s.write().await.unwrap();
    assert!(tx.insert_blackout(&bad).await.is_err());
    drop(tx);

    let mut tx = s.write().await.unwrap();
    assert!(tx.delete_window("patch-tuesday").await.unwrap());
    assert!(!tx.delete_window("patch-tuesday").await.unwrap());
    assert!(tx.delete_blackout("year-end").await.unwrap());
    assert!(!tx.delete_blackout("year-end").await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    assert!(tx.list_windows().await.unwrap().is_empty());
    assert!(tx.list_blackouts().await.unwrap().is_empty());
    assert!(tx.list_blackout_approvals().await.unwrap().is_empty());
}

/// A write whose transaction fails after its audit entry was appended leaves
/// neither the write nor the entry, and the chain continues densely.
async fn failed_write_leaves_no_audit(s: Arc<dyn Store>) {
    {
        let mut tx = s.write().await.unwrap();
        tx.insert_asset("ghost", &AssetAttrs::default(), false, t0())
            .await
            .unwrap();
        tx.append_audit(
            &AuditRecord {
                at: t0(),
                actor: "x".into(),
                action: "asset.add".into(),
                target: "asset:ghost".into(),
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
            None,
        )
        .await
        .unwrap();
        // The database refuses the next statement (end before start).
        let bad = BlackoutRow {
            name: "b".into(),
            starts_at: t0(),
            ends_at: t0(),
            reason: "r".into(),
            owner: "o".into(),
            groups: vec![],
            assets: vec![],
            created_at: t0(),
            created_by: "x".into(),
        };
        assert!(tx.insert_blackout(&bad).await.is_err());
        // The service returns the error and drops the transaction.
    }
    let mut tx = s.read().await.unwrap();
    assert!(tx.asset_by_name("ghost").await.unwrap().is_none());
    assert!(tx.audit_entries(0, 10).await.unwrap().is_empty());
    assert_eq!(tx.audit_head().await.unwrap().0, 0);
    drop(tx);
    let mut tx = s.write().await.unwrap();
    let seq = tx
        .append_audit(
            &AuditRecord {
                at: t0(),
                actor: "x".into(),
                action: "y".into(),
                target: "z".into(),
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
            None,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seq, 1);
}

async fn exceptions_story(s: Arc<dyn Store>) {
    let e = ExceptionRow {
        id: "EXC-2026-0001".into(),
        advisory: "CVE-2024-2961".into(),
        package: "".into(),
        asset: "web-1".into(),
        group: "".into(),
        owner: "web-team".into(),
        reason: "vendor build pending".into(),
        compensating_control: "WAF rule 942100".into(),
        approver: "token:1:ciso".into(),
        created_at: t0(),
        created_by: "token:2:ops".into(),
        expires_at: t0() + SignedDuration::from_hours(24 * 30),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        expired_noted_at: None,
        // Migration 0076: a VEX statement's kind, justification and origin
        // round-trip.
        kind: "not_affected".into(),
        justification: "component_not_present".into(),
        origin: "csaf:EX-1".into(),
    };
    let mut tx = s.write().await.unwrap();
    assert!(tx.insert_exception(&e).await.unwrap());
    assert!(!tx.insert_exception(&e).await.unwrap());
    tx.commit().await.unwrap();
    // The database itself refuses an exception for both an asset and a group,
    // for neither an advisory nor a package, or ending before it starts.
    for bad in [
        ExceptionRow {
            id: "X1".into(),
            group: "g".into(),
            ..e.clone()
        },
        ExceptionRow {
            id: "X2".into(),
            advisory: "".into(),
            ..e.clone()
        },
        ExceptionRow {
            id: "X3".into(),
            expires_at: t0(),
            ..e.clone()
        },
    ] {
        let mut tx = s.write().await.unwrap();
        assert!(tx.insert_exception(&bad).await.is_err(), "{}", bad.id);
    }
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.list_exceptions().await.unwrap(), vec![e.clone()]);
    drop(tx);
    let mut tx = s.write().await.unwrap();
    let at = t0() + SignedDuration::from_hours(1);
    assert!(
        tx.revoke_exception(&e.id, at, "token:1:ciso", "patched")
            .await
            .unwrap()
    );
    assert!(
        !tx.revoke_exception(&e.id, at, "token:1:ciso", "again")
            .await
            .unwrap()
    );
    assert!(!tx.revoke_exception("EXC-none", at, "x", "y").await.unwrap());
    assert!(tx.note_exception_expired(&e.id, at).await.unwrap());
    assert!(!tx.note_exception_expired(&e.id, at).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let got = tx.list_exceptions().await.unwrap();
    assert_eq!(got[0].revoked_at, Some(at));
    assert_eq!(got[0].revoke_reason.as_deref(), Some("patched"));
    assert_eq!(got[0].expired_noted_at, Some(at));
}

/// The server never signs on top of a head its key did not sign: after an
/// entry written without the key (or a head whose signature was dropped), a
/// signed append fails with an integrity error and leaves nothing behind.
async fn signed_append_refuses_an_unsigned_head(s: Arc<dyn Store>) {
    let ours = patchbay_core::audit::Signer::from_seed(&[3; 32]);
    let other = patchbay_core::audit::Signer::from_seed(&[4; 32]);
    let append = |i: i64, key: Option<&patchbay_core::audit::Signer>| {
        let s = s.clone();
        let key = key.cloned();
        async move {
            let rec = AuditRecord {
                at: t0() + SignedDuration::from_secs(i),
                actor: "token:1:ops".into(),
                action: "asset.update".into(),
                target: format!("asset:h{i}"),
                outcome: "ok".into(),
                detail: serde_json::json!({"i": i}),
            };
            let mut tx = s.write().await.unwrap();
            let r = tx.append_audit(&rec, key.as_ref()).await;
            if r.is_ok() {
                tx.commit().await.unwrap();
            }
            r
        }
    };
    let integrity = |r: patchbay_store::Result<i64>, needle: &str| match r {
        Err(StoreError::Integrity(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected an integrity refusal, got {other:?}"),
    };
    assert_eq!(append(1, Some(&ours)).await.unwrap(), 1);
    assert_eq!(append(2, Some(&ours)).await.unwrap(), 2);
    // Another key does not sign on top of our head.
    integrity(
        append(3, Some(&other)).await,
        "last entry (2) is not signed",
    );
    // Written without a key: nobody signs on top of it.
    assert_eq!(append(3, None).await.unwrap(), 3);
    integrity(append(4, Some(&ours)).await, "last entry (3) is not signed");
    integrity(
        append(4, Some(&other)).await,
        "last entry (3) is not signed",
    );
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.audit_head().await.unwrap().0, 3, "nothing appended");
    assert_eq!(tx.audit_entries(0, 10).await.unwrap().len(), 3);
}

/// Leader leases: one holder at a time until expiry; renewals keep the
/// acquisition time; an expired lease goes to exactly one of many racers.
async fn leases_story(s: Arc<dyn Store>) {
    let secs = |n: i64| t0() + SignedDuration::from_secs(n);
    let take = |holder: &'static str, now: i64, ttl: i64| {
        let s = s.clone();
        async move {
            let mut tx = s.write().await.unwrap();
            let r = tx
                .try_lease("duties", holder, secs(now), secs(now + ttl))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            r
        }
    };
    assert_eq!(take("a", 0, 10).await, LeaseOutcome::Acquired);
    assert_eq!(take("a", 3, 10).await, LeaseOutcome::Renewed);
    assert_eq!(
        take("b", 12, 10).await,
        LeaseOutcome::HeldByOther,
        "renewed until 13"
    );
    let mut tx = s.read().await.unwrap();
    let l = tx.lease("duties").await.unwrap().unwrap();
    assert_eq!(
        (l.holder.as_str(), l.acquired_at, l.expires_at),
        ("a", secs(0), secs(13))
    );
    drop(tx);
    assert_eq!(
        take("b", 13, 10).await,
        LeaseOutcome::Acquired,
        "expired at 13"
    );
    assert_eq!(take("a", 14, 10).await, LeaseOutcome::HeldByOther);
    let mut tx = s.write().await.unwrap();
    assert!(
        !tx.release_lease("duties", "a").await.unwrap(),
        "not a's to release"
    );
    assert!(tx.release_lease("duties", "b").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(take("a", 15, 10).await, LeaseOutcome::Acquired);
    // Many racers for the lease once it has expired: exactly one wins.
    let mut tasks = Vec::new();
    for h in ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"] {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = s.write().await.unwrap();
            let r = tx.try_lease("duties", h, secs(30), secs(40)).await.unwrap();
            tx.commit().await.unwrap();
            r
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() == LeaseOutcome::Acquired {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

async fn rollouts_story(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    let r = RolloutRow {
        deployment: "DEP-2026-12-001".into(),
        state: serde_json::json!({"state": "running"}),
        status: "running".into(),
        updated_at: t0(),
    };
    tx.put_rollout(&r).await.unwrap();
    let mut r2 = r.clone();
    r2.status = "completed".into();
    r2.deployment = "DEP-2026-12-002".into();
    tx.put_rollout(&r2).await.unwrap();
    let job = |key: &str, asset: &str| AgentJobRow {
        key: key.into(),
        deployment: "DEP-2026-12-001".into(),
        asset: asset.into(),
        job: serde_json::json!({"job": {"key": key}, "signature": "00"}),
        leased_at: t0(),
        delivered_at: None,
        result: None,
        result_at: None,
        consumed_at: None,
    };
    assert!(
        tx.insert_agent_job(&job("DEP-2026-12-001/a", "a"))
            .await
            .unwrap()
    );
    assert!(
        tx.insert_agent_job(&job("DEP-2026-12-001/b", "b"))
            .await
            .unwrap()
    );
    // A key is leased once.
    assert!(
        !tx.insert_agent_job(&job("DEP-2026-12-001/a", "a"))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.rollout("DEP-2026-12-001").await.unwrap().unwrap(), r);
    let running = tx
        .rollouts_with_status(&["running", "paused"])
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(tx.list_rollouts().await.unwrap().len(), 2);
    let open = tx.open_jobs_for("a", 10).await.unwrap();
    assert_eq!(open.len(), 1);
    tx.mark_delivered(&[open[0].key.clone()], t0() + SignedDuration::from_secs(1))
        .await
        .unwrap();
    tx.mark_delivered(&[open[0].key.clone()], t0() + SignedDuration::from_secs(9))
        .await
        .unwrap();
    // Another asset cannot answer a's job; the result is stored once.
    let res = serde_json::json!({"outcome": "succeeded"});
    assert_eq!(
        tx.store_job_result("b", "DEP-2026-12-001/a", &res, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tx.store_job_result(
            "a",
            "DEP-2026-12-001/a",
            &res,
            t0() + SignedDuration::from_secs(5)
        )
        .await
        .unwrap(),
        Some(true)
    );
    let other = serde_json::json!({"outcome": "failed"});
    assert_eq!(
        tx.store_job_result("a", "DEP-2026-12-001/a", &other, t0())
            .await
            .unwrap(),
        Some(false)
    );
    assert!(tx.open_jobs_for("a", 10).await.unwrap().is_empty());
    let un = tx.unconsumed_results("DEP-2026-12-001").await.unwrap();
    assert_eq!(un.len(), 1);
    assert_eq!(
        un[0].result.as_ref().unwrap(),
        &res,
        "the first result stands"
    );
    assert_eq!(
        un[0].delivered_at,
        Some(t0() + SignedDuration::from_secs(1))
    );
    tx.mark_consumed(&[un[0].key.clone()], t0()).await.unwrap();
    assert!(
        tx.unconsumed_results("DEP-2026-12-001")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(tx.jobs_of("DEP-2026-12-001").await.unwrap().len(), 2);
    // The times of every job: a's lease and result, b's lease only.
    let times: Vec<_> = tx
        .agent_job_times()
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.key, j.deployment, j.leased_at, j.result_at))
        .collect();
    assert_eq!(
        times,
        [
            (
                "DEP-2026-12-001/a".to_string(),
                "DEP-2026-12-001".to_string(),
                t0(),
                Some(t0() + SignedDuration::from_secs(5))
            ),
            (
                "DEP-2026-12-001/b".to_string(),
                "DEP-2026-12-001".to_string(),
                t0(),
                None
            ),
        ]
    );
    tx.commit().await.unwrap();
}

/// A rollout row read to be changed (`lock_rollout`) is one writer's until it
/// commits: on PostgreSQL another claimer skips it (`FOR UPDATE SKIP LOCKED`,
/// the rollout driver) while an unclaimed one is still handed out, and a
/// waiting claimer (`FOR UPDATE`, an operator's action) gets the state the
/// first one wrote, never the one before it (no lost update). SQLite's single
/// writer gives the same guarantee by running write transactions one at a time.
async fn rollout_rows_are_claimed_by_one_writer(s: Arc<dyn Store>) {
    let row = |dep: &str, status: &str| RolloutRow {
        deployment: dep.into(),
        state: serde_json::json!({"state": status}),
        status: status.into(),
        updated_at: t0(),
    };
    let mut tx = s.write().await.unwrap();
    tx.put_rollout(&row("DEP-1", "running")).await.unwrap();
    tx.put_rollout(&row("DEP-2", "running")).await.unwrap();
    tx.commit().await.unwrap();

    // The driver claims DEP-1.
    let mut first = s.write().await.unwrap();
    assert_eq!(
        first.lock_rollout("DEP-1", true).await.unwrap(),
        Some(row("DEP-1", "running"))
    );
    if s.backend() == "postgres" {
        // Another driver (an old leader overlapping its successor) skips it,
        // without waiting.
        let mut other = s.write().await.unwrap();
        let skipped = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            other.lock_rollout("DEP-1", true),
        )
        .await
        .expect("a claimer with skip_locked waited for a claimed rollout");
        assert_eq!(skipped.unwrap(), None, "a claimed rollout is skipped");
        assert_eq!(
            other.lock_rollout("DEP-2", true).await.unwrap(),
            Some(row("DEP-2", "running")),
            "an unclaimed one is not"
        );
        other.commit().await.unwrap();
    }
    // An operator's action on DEP-1 waits for the driver's step.
    let waiter = tokio::spawn({
        let s = s.clone();
        async move {
            let mut tx = s.write().await.unwrap();
            let r = tx.lock_rollout("DEP-1", false).await.unwrap();
            tx.commit().await.unwrap();
            r
        }
    });
    // Let the waiter reach its lock (or, on SQLite, the writer queue) before
    // the first writer commits: what it reads must be the new state anyway.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "the second claimer waits");
    first.put_rollout(&row("DEP-1", "paused")).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(waiter.await.unwrap(), Some(row("DEP-1", "paused")));
}
