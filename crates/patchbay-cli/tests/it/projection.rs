//! The worklist's ranked projection of open findings (issue 14, item 6; ADR
//! 0023) gives exactly the reference worklist (`App::worklist_reference`:
//! every open finding read and ranked), in process on a real store (SQLite and
//! PostgreSQL), after random sequences of changes:
//!
//! - findings opened by a feed update and its delta re-assessment (the real
//!   write path), resolved and reopened through the store's batched
//!   statements, new findings inserted;
//! - an exception added, another revoked; a KEV and an EPSS import;
//! - an asset's business impact, exposure, owner and tags changed;
//! - a policy applied (groups by tag, a package exclusion, other SLAs);
//!
//! - an asset added with findings first seen days ago (some overdue, one
//!   resolved since): unmanaged (imported) or managed but never checked in
//!   (stale), known since then;
//!
//! each compared on the `App` that made the change and on a second `App` on
//! the same database (another replica, whose projection learns the changes
//! only from the database), for every filter and several limits. The
//! compliance report as of now, counted from the same projection
//! (`App::report`), is compared likewise with the one computed from a full
//! history (`App::compliance_reference`) after every step: exceptions,
//! policy exclusions and groups, resolved findings, unmanaged and stale
//! assets and overdue findings included.

use crate::delta::{fleet, pool};
use patchbay_app::prioritise::WorkFilter;
use patchbay_app::{App, Caller, RequestCtx};
use patchbay_core::report::{ComplianceLine, Report};
use patchbay_core::risk::Tier;
use patchbay_proto::api::{AssetPatch, ExceptionSpec, WorkItem};
use patchbay_store::NewFinding;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
enum Step {
    /// Import advisories of the pool not imported yet, assess the delta.
    Feed(prop::sample::Index),
    /// Resolve up to n open findings (store, batched statement).
    Resolve(prop::sample::Index, usize),
    /// Reopen up to n resolved findings (store, batched refresh).
    Reopen(prop::sample::Index, usize),
    /// Insert new findings on an asset (store, batched insert).
    Insert(prop::sample::Index),
    /// An exception on an open finding's advisory (asset or group scope).
    Except(prop::sample::Index, bool),
    /// Revoke the oldest active exception added here.
    Revoke,
    /// KEV for an open finding's CVE.
    Kev(prop::sample::Index),
    /// EPSS for an open finding's CVE.
    Epss(prop::sample::Index, u8),
    /// Change an asset's impact, exposure, owner and tags.
    Asset(prop::sample::Index, u8, u8, bool),
    /// Apply one of the policies.
    Policy(u8),
    /// A new asset (unmanaged, or managed and never seen: stale) known for
    /// `days`, with findings first seen then, one or all of them resolved
    /// since — or with none (never assessed).
    Past(prop::sample::Index, bool, u8),
}

fn step() -> impl Strategy<Value = Step> {
    let ix = any::<prop::sample::Index>;
    prop_oneof![
        1 => ix().prop_map(Step::Feed),
        1 => (ix(), 1usize..400).prop_map(|(i, n)| Step::Resolve(i, n)),
        1 => (ix(), 1usize..400).prop_map(|(i, n)| Step::Reopen(i, n)),
        1 => ix().prop_map(Step::Insert),
        1 => (ix(), any::<bool>()).prop_map(|(i, g)| Step::Except(i, g)),
        1 => Just(Step::Revoke),
        1 => ix().prop_map(Step::Kev),
        1 => (ix(), any::<u8>()).prop_map(|(i, e)| Step::Epss(i, e)),
        1 => (ix(), 0u8..4, 0u8..4, any::<bool>()).prop_map(|(i, a, b, t)| Step::Asset(i, a, b, t)),
        1 => (0u8..3).prop_map(Step::Policy),
        3 => (ix(), any::<bool>(), 1u8..120).prop_map(|(i, m, d)| Step::Past(i, m, d)),
    ]
}

const POLICIES: [&str; 3] = [
    "version = 1\n",
    "version = 1\n[[groups]]\nname = \"web\"\nmatch = { tags_any = [\"web\"] }\n\
     [[exclusions]]\npackage = \"perl\"\ngroup = \"web\"\nreason = \"vendor\"\n",
    "version = 1\n[sla]\nP0 = \"1d\"\nP1 = \"2d\"\nP2 = \"9d\"\n[[groups]]\nname = \"web\"\n\
     match = { tags_any = [\"web\"] }\n[[exclusions]]\npackage = \"linux\"\nreason = \"kernel team\"\n",
];

const IMPACTS: [&str; 4] = ["critical", "high", "medium", "low"];
const EXPOSURES: [&str; 4] = ["internet-facing", "privileged-data", "internal", "isolated"];

/// The filters compared after each step.
fn filters(asset: &str) -> Vec<WorkFilter> {
    let f = |limit: Option<usize>| WorkFilter {
        limit,
        ..Default::default()
    };
    vec![
        f(None),
        f(Some(1)),
        f(Some(7)),
        f(Some(10_000)),
        WorkFilter {
            tier: Some(Tier::P2),
            limit: Some(500),
            ..Default::default()
        },
        WorkFilter {
            owner: Some("team-a".into()),
            ..Default::default()
        },
        WorkFilter {
            group: Some("web".into()),
            limit: Some(300),
            ..Default::default()
        },
        WorkFilter {
            // Any case: the store keeps names lower-case.
            asset: Some(asset.to_ascii_uppercase()),
            limit: Some(10_000),
            ..Default::default()
        },
    ]
}

async fn same(app: &App, who: &str, asset: &str, step: usize) -> Result<usize, TestCaseError> {
    let admin = Caller::local("test");
    let ctx = RequestCtx::default();
    let mut lines = 0;
    for f in filters(asset) {
        let got: Vec<WorkItem> = app.worklist(&admin, &f, &ctx).await.unwrap();
        let want: Vec<WorkItem> = app.worklist_reference(&admin, &f, &ctx).await.unwrap();
        lines += want.len();
        prop_assert!(
            got == want,
            "{who}, after step {step}, filter {f:?}: {} lines, reference {}; first difference at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
    Ok(lines + same_compliance(app, who, step).await?)
}

thread_local! {
    /// Overdue, excepted and patched findings, unknown (stale or never
    /// assessed) and fully patched assets in the reports compared, per test
    /// thread (one per engine).
    static REPORTED: [std::cell::Cell<u64>; 5] = Default::default();
}

/// The compliance report as of now through the projection equals the one
/// from a full history; returns the findings it counted (open and patched).
async fn same_compliance(app: &App, who: &str, step: usize) -> Result<usize, TestCaseError> {
    let admin = Caller::local("test");
    let ctx = RequestCtx::default();
    // Both as of the same second (the clock is the system's): again when a
    // second boundary fell between them.
    for _ in 0..5 {
        let got = app.report(&admin, "compliance", None, &ctx).await.unwrap();
        let want = app.compliance_reference(&admin, &ctx).await.unwrap();
        let (Report::Compliance(got), Report::Compliance(want)) = (got, want) else {
            panic!("not compliance reports");
        };
        if got.as_of != want.as_of {
            continue;
        }
        let differs = |g: &[ComplianceLine], w: &[ComplianceLine]| {
            (g.len() != w.len()).then_some(usize::MAX).or_else(|| {
                g.iter().zip(w).find(|(a, b)| a != b).map(|(a, b)| {
                    eprintln!("got  {a:?}\nwant {b:?}");
                    0
                })
            })
        };
        prop_assert!(
            got == want,
            "{who}, after step {step}: the compliance report differs (fleet {:?} vs {:?}; by asset {:?}, owner {:?}, group {:?})",
            got.total,
            want.total,
            differs(&got.by_asset, &want.by_asset),
            differs(&got.by_owner, &want.by_owner),
            differs(&got.by_group, &want.by_group),
        );
        let c = want.total.findings;
        let st = want.total.status;
        for (k, n) in [
            c.overdue,
            c.excepted,
            c.patched,
            st.unknown,
            st.fully_patched,
        ]
        .into_iter()
        .enumerate()
        {
            REPORTED.with(|r| r[k].set(r[k].get() + n));
        }
        return Ok((c.open() + c.patched) as usize);
    }
    Err(TestCaseError::fail("no two reports as of the same second"))
}

/// The name of the asset with this id.
async fn asset_name(app: &App, id: i64) -> String {
    let mut tx = app.store().read().await.unwrap();
    tx.list_assets()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap()
        .name
}

/// An exception of an advisory on one asset, or on the group "web".
fn exception_on(advisory: &str, asset: Option<String>, group: bool) -> ExceptionSpec {
    ExceptionSpec {
        advisory: Some(advisory.to_string()),
        asset,
        group: group.then(|| "web".to_string()),
        owner: "team-a".into(),
        reason: "vendor build pending".into(),
        compensating_control: "WAF rule".into(),
        expires: "30d".into(),
        ..Default::default()
    }
}

/// Open (`true`) or resolved findings' (id, asset id, finding), by id.
async fn findings(app: &App, open: bool) -> Vec<(i64, i64, NewFinding)> {
    let mut tx = app.store().read().await.unwrap();
    tx.list_findings(None, true)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.resolved_at.is_none() == open)
        .map(|r| (r.id, r.asset_id, r.finding))
        .collect()
}

fn projection_equals_reference(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let compared = AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        failure_persistence: None,
        // Each case builds a fleet: a failure is reported after a bounded shrink.
        max_shrink_iters: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(step(), 6..14), |steps| {
            rt.block_on(async {
                let (_, pool, n) = pool();
                let n = *n;
                // Half of the advisories that match the hosts first; `Feed`
                // brings more of them.
                let base: Vec<_> = pool[..n / 2].to_vec();
                let mut fed = n / 2;
                let f = fleet(backend, &base).await;
                let app = &f.app;
                let replica = patchbay_server::prepare(&patchbay_server::Settings {
                    db_url: Some(f.url.clone()),
                    data_dir: f._dir.path().to_path_buf(),
                    app: patchbay_app::AppConfig::default(),
                })
                .await
                .unwrap()
                .app;
                let admin = Caller::local("test");
                let ctx = RequestCtx::default();
                app.assess_pending(&|_, _| {}).await.unwrap();
                let assets: Vec<String> = {
                    let mut tx = app.store().read().await.unwrap();
                    tx.list_assets()
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|a| a.name)
                        .collect()
                };
                // Assets of every impact and exposure, several of one impact
                // with different exposures (findings of one advisory fall in
                // different classes).
                for (k, name) in assets.iter().enumerate() {
                    app.update_asset(
                        &admin,
                        name,
                        AssetPatch {
                            business_impact: Some(IMPACTS[k % 4].into()),
                            exposure: Some(EXPOSURES[(k / 2 + k) % 4].into()),
                            owner: Some(if k % 2 == 0 { "team-a" } else { "team-b" }.into()),
                            ..Default::default()
                        },
                        &ctx,
                    )
                    .await
                    .unwrap();
                }
                // Both projections built before the changes (so they are
                // followed incrementally, not rebuilt).
                same(app, "primary", &assets[0], 0).await?;
                same(&replica, "replica", &assets[0], 0).await?;
                let mut exceptions: Vec<String> = Vec::new();
                for (i, s) in steps.iter().enumerate() {
                    let now = jiff::Timestamp::now();
                    match s {
                        Step::Feed(k) => {
                            let take = 1 + k.index(8);
                            let next: Vec<_> = pool[fed..(fed + take).min(n)].to_vec();
                            fed = (fed + take).min(n);
                            app.import_advisories("more", &next, 0, &admin)
                                .await
                                .unwrap();
                            app.assess_pending(&|_, _| {}).await.unwrap();
                        }
                        Step::Resolve(k, m) => {
                            let open = findings(app, true).await;
                            if !open.is_empty() {
                                let start = k.index(open.len());
                                let ids: Vec<i64> =
                                    open.iter().skip(start).take(*m).map(|f| f.0).collect();
                                let mut tx = app.store().write().await.unwrap();
                                tx.resolve_findings(&ids, now).await.unwrap();
                                tx.commit().await.unwrap();
                            }
                        }
                        Step::Reopen(k, m) => {
                            let resolved = findings(app, false).await;
                            if !resolved.is_empty() {
                                let start = k.index(resolved.len());
                                let batch: Vec<(i64, NewFinding)> = resolved
                                    .into_iter()
                                    .skip(start)
                                    .take(*m)
                                    .map(|(id, _, f)| (id, f))
                                    .collect();
                                let mut tx = app.store().write().await.unwrap();
                                tx.refresh_findings(&batch, now).await.unwrap();
                                tx.commit().await.unwrap();
                            }
                        }
                        Step::Insert(k) => {
                            let open = findings(app, true).await;
                            if !open.is_empty() {
                                let (_, asset, proto) = &open[k.index(open.len())];
                                let fs: Vec<NewFinding> = (0..3)
                                    .map(|j| NewFinding {
                                        package: format!("projection-{i}-{j}"),
                                        source_package: format!("projection-src-{i}"),
                                        ..proto.clone()
                                    })
                                    .collect();
                                let mut tx = app.store().write().await.unwrap();
                                tx.insert_findings(*asset, &fs, now).await.unwrap();
                                tx.commit().await.unwrap();
                            }
                        }
                        Step::Except(k, group) => {
                            let open = findings(app, true).await;
                            if !open.is_empty() {
                                let (_, asset_id, fnd) = &open[k.index(open.len())];
                                let spec = exception_on(
                                    &fnd.advisory_id,
                                    (!*group).then_some(asset_name(app, *asset_id).await),
                                    *group,
                                );
                                // A group exception needs the group in the policy.
                                if let Ok(e) = app.add_exception(&admin, &spec, &ctx).await {
                                    exceptions.push(e.id);
                                }
                            }
                        }
                        Step::Revoke => {
                            if !exceptions.is_empty() {
                                let id = exceptions.remove(0);
                                app.revoke_exception(&admin, &id, "fixed upstream", &ctx)
                                    .await
                                    .unwrap();
                            }
                        }
                        Step::Kev(k) | Step::Epss(k, _) => {
                            let open = findings(app, true).await;
                            let cves: Vec<String> = {
                                let ids: Vec<String> =
                                    open.iter().map(|f| f.2.advisory_id.clone()).collect();
                                let mut tx = app.store().read().await.unwrap();
                                let mut ids = ids;
                                ids.sort();
                                ids.dedup();
                                tx.advisories_by_ids(&ids)
                                    .await
                                    .unwrap()
                                    .into_iter()
                                    .flat_map(|a| a.cves)
                                    .collect()
                            };
                            if !cves.is_empty() {
                                let cve = cves[k.index(cves.len())].clone();
                                if let Step::Epss(_, e) = s {
                                    app.import_epss(
                                        "epss",
                                        "2026-12-01",
                                        &[patchbay_feeds::epss::EpssScore {
                                            cve,
                                            epss: *e as f64 / 255.0,
                                            percentile: 0.5,
                                            cvss3: None,
                                        }],
                                        0,
                                        &admin,
                                    )
                                    .await
                                    .unwrap();
                                } else {
                                    app.import_kev(
                                        "kev",
                                        &crate::support::kev_catalog(
                                            &format!("2026.01.{i:02}"),
                                            cve,
                                        ),
                                        0,
                                        &admin,
                                    )
                                    .await
                                    .unwrap();
                                }
                            }
                        }
                        Step::Asset(k, impact, exposure, web) => {
                            let name = &assets[k.index(assets.len())];
                            app.update_asset(
                                &admin,
                                name,
                                AssetPatch {
                                    business_impact: Some(IMPACTS[*impact as usize].into()),
                                    exposure: Some(EXPOSURES[*exposure as usize].into()),
                                    owner: Some(if *web { "team-a" } else { "team-b" }.into()),
                                    tags: Some(if *web { vec!["web".into()] } else { vec![] }),
                                    ..Default::default()
                                },
                                &ctx,
                            )
                            .await
                            .unwrap();
                        }
                        Step::Policy(p) => {
                            app.policy_apply(&admin, POLICIES[*p as usize], &ctx)
                                .await
                                .unwrap();
                        }
                        Step::Past(k, managed, days) => {
                            let open = findings(app, true).await;
                            if !open.is_empty() {
                                // Whole days back and one hour more: with
                                // whole days only, a finding whose SLA is
                                // `days` (14 for P2) fell due at the step's
                                // own instant (± the second it is rounded
                                // to), so the projection's request and the
                                // reference's, a few milliseconds apart,
                                // could see it on either side of its due time
                                // (overdue in one, not yet in the other).
                                let then =
                                    now - jiff::SignedDuration::from_hours(24 * *days as i64 + 1);
                                let mut protos: Vec<NewFinding> = (0..4)
                                    .map(|j| open[(k.index(open.len()) + j) % open.len()].2.clone())
                                    .collect();
                                // One finding per (advisory, package, arch).
                                protos.sort_by(|a, b| {
                                    (&a.advisory_id, &a.package, &a.arch).cmp(&(
                                        &b.advisory_id,
                                        &b.package,
                                        &b.arch,
                                    ))
                                });
                                protos.dedup_by(|a, b| {
                                    (&a.advisory_id, &a.package, &a.arch)
                                        == (&b.advisory_id, &b.package, &b.arch)
                                });
                                let mut tx = app.store().write().await.unwrap();
                                let attrs = patchbay_store::AssetAttrs {
                                    owner: if *managed { "team-a" } else { "" }.into(),
                                    tags: if days % 2 == 0 {
                                        vec!["web".into()]
                                    } else {
                                        vec![]
                                    },
                                    ..Default::default()
                                };
                                let id = tx
                                    .insert_asset(&format!("past-{i}"), &attrs, *managed, then)
                                    .await
                                    .unwrap();
                                // Some never assessed: nothing found on them.
                                if days % 4 == 1 {
                                    protos.clear();
                                }
                                tx.insert_findings(id, &protos, then).await.unwrap();
                                let rows = tx.findings_of_asset(id).await.unwrap();
                                let halfway =
                                    then + jiff::SignedDuration::from_hours(12 * *days as i64);
                                // One resolved since, or all of them (fully patched).
                                let resolved: Vec<i64> = if days % 3 == 0 {
                                    rows.iter().map(|r| r.id).collect()
                                } else {
                                    rows.iter().take(1).map(|r| r.id).collect()
                                };
                                tx.resolve_findings(&resolved, halfway).await.unwrap();
                                tx.commit().await.unwrap();
                            }
                        }
                    }
                    let a = same(app, "primary", &assets[i % assets.len()], i + 1).await?;
                    let b = same(&replica, "replica", &assets[i % assets.len()], i + 1).await?;
                    compared.fetch_add((a + b) as u64, Ordering::Relaxed);
                }
                // Last, an exception in force on an open finding's advisory
                // on its asset (whatever the steps drew): the reports count
                // excepted findings too.
                let open = findings(app, true).await;
                // Not of a package a policy excludes (those are not counted).
                let kept = open.iter().find(|f| {
                    ![&f.2.package, &f.2.source_package]
                        .iter()
                        .any(|p| *p == "perl" || *p == "linux")
                });
                if let Some((_, asset_id, fnd)) = kept {
                    let spec = exception_on(
                        &fnd.advisory_id,
                        Some(asset_name(app, *asset_id).await),
                        false,
                    );
                    // (Refused only when the same one is in force already.)
                    let _ = app.add_exception(&admin, &spec, &ctx).await;
                    let last = steps.len() + 1;
                    same(app, "primary", &assets[0], last).await?;
                    same(&replica, "replica", &assets[0], last).await?;
                }
                replica.store().close().await;
                app.store().close().await;
                Ok(())
            })
        })
        .unwrap();
    // Not vacuous: lines were compared.
    let n = compared.load(Ordering::Relaxed);
    eprintln!("{backend}: {n} worklist lines compared");
    assert!(n > 10_000, "{n} lines compared");
    // Not vacuous either: every state the report counts was compared.
    let r: Vec<u64> = REPORTED.with(|r| r.iter().map(|x| x.get()).collect());
    eprintln!(
        "{backend}: compliance reports compared with {} overdue, {} excepted, {} patched findings, {} unknown and {} fully patched assets",
        r[0], r[1], r[2], r[3], r[4]
    );
    assert!(r.iter().all(|&x| x > 0), "{r:?}");
}

crate::both_backends!(projection_equals_reference);
