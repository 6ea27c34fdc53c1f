//! Delta re-assessment on feed change (issue 14, deliverable 4), in process on a
//! real store (SQLite and PostgreSQL):
//!
//! - a property test: over random feed changes (new advisories, withdrawals,
//!   moved fixed versions, dropped or re-targeted affected entries, summary-only
//!   edits), the findings `App::assess_pending` stores (re-matching only the
//!   queued (ecosystem, package) pairs on the hosts that have them) are exactly
//!   those of a full re-assessment: the full `App::assess_fleet` that follows
//!   changes nothing, and the open findings equal a fresh matcher's on every
//!   host — with a random number of assets per write transaction, from one
//!   (a transaction per host) to all in one;
//! - a KEV import queues nothing, matches nothing, leaves the findings table as
//!   it was, and still re-tiers (the worklist shows the KEV reason).
//!
//! The hosts are the simulator's realistic inventories (`patchbay_cli::sim`:
//! the real Debian 12 host and minbase, Ubuntu 24.04, Alpine), some with
//! unmanaged software (urllib3 from pip and in a virtualenv, a Go 1.19.8
//! binary), the advisories the real `Debian-12-derived.osv.zip` and the staged
//! PyPA urllib3 and Go standard-library records (`fixtures/feeds/unmanaged/`).

use crate::support::fixtures;
use patchbay_app::{App, AppConfig, Caller, RequestCtx};
use patchbay_cli::sim::Templates;
use patchbay_core::assess::{Assessor, target_for};
use patchbay_core::inventory::Inventory;
use patchbay_core::inventory::unmanaged::{Ecosystem, Unmanaged};
use patchbay_feeds::osv::{Advisory, Event};
use patchbay_feeds::source::{Collect, read_path};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{CheckinRequest, EnrollRequest, InventoryPayload};
use patchbay_proto::api::CreateEnrollToken;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const HOSTS: usize = 6;

/// The test hosts, and the Debian 12 advisories naming a source package one of
/// them has, those that match one of them first (`.2` of them match).
pub(crate) fn pool() -> &'static (Vec<Inventory>, Vec<Advisory>, usize) {
    static POOL: OnceLock<(Vec<Inventory>, Vec<Advisory>, usize)> = OnceLock::new();
    POOL.get_or_init(|| {
        let t = Templates::load().expect("simulator templates");
        let mut hosts: Vec<Inventory> = (0..HOSTS)
            .map(|i| t.host(i, 7, &format!("delta-{i}")))
            .collect();
        // Unmanaged software on some hosts (issue 20, item 5): urllib3 from
        // pip, an old one in a virtualenv (spelled as its METADATA may), and a
        // Go 1.19.8 binary — matched in PyPI and Go, by the same queue.
        for (i, h) in hosts.iter_mut().enumerate() {
            let item = |ecosystem, name: &str, version: &str, path: String| Unmanaged {
                ecosystem,
                name: name.into(),
                version: version.into(),
                path,
            };
            if i % 2 == 0 {
                h.facts.unmanaged.push(item(
                    Ecosystem::Pypi,
                    "urllib3",
                    "1.26.4",
                    "/usr/local/lib/python3.11/dist-packages/urllib3-1.26.4.dist-info".into(),
                ));
            }
            if i % 3 == 0 {
                h.facts.unmanaged.push(item(
                    Ecosystem::Pypi,
                    "URLLib3",
                    "1.24.1",
                    format!("/srv/venv{i}/lib/python3.11/site-packages/URLLib3-1.24.1.dist-info"),
                ));
                h.facts.unmanaged.push(item(
                    Ecosystem::Go,
                    "stdlib",
                    "go1.19.8",
                    format!("/usr/local/bin/tool-{i}"),
                ));
            }
            h.normalize();
        }
        let mut names = BTreeSet::new();
        for h in &hosts {
            for p in &h.packages {
                names.insert(p.source.clone().unwrap_or_else(|| p.name.clone()));
            }
        }
        let mut c = Collect::default();
        read_path(
            &fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
            &mut c,
        )
        .expect("reading the Debian 12 OSV zip");
        let mut advisories: Vec<Advisory> = c
            .advisories
            .into_iter()
            .filter(|a| a.affected.iter().any(|x| names.contains(&x.package)))
            .collect();
        for f in [
            "feeds/unmanaged/pypa-urllib3.osv.jsonl",
            "feeds/unmanaged/go-vulndb-stdlib.osv.jsonl.gz",
        ] {
            let mut c = Collect::default();
            read_path(&fixtures().join(f), &mut c).expect("reading the unmanaged fixtures");
            advisories.extend(c.advisories);
        }
        let rows = patchbay_app::feeds::merge_rows(
            advisories.iter().map(patchbay_app::feeds::advisory_row),
        );
        let index = patchbay_app::assess::build_index(&rows);
        let mut matching = BTreeSet::new();
        for h in &hosts {
            if let Ok(t) = target_for(&h.facts.os) {
                for f in Assessor::new().assess(&index, &t, &h.packages).0 {
                    matching.insert(f.advisory);
                }
            }
            for f in Assessor::new()
                .assess_unmanaged(&index, &h.facts.unmanaged)
                .0
            {
                matching.insert(f.advisory);
            }
        }
        let (mut first, rest): (Vec<Advisory>, Vec<Advisory>) = advisories
            .into_iter()
            .partition(|a| matching.contains(&a.id));
        let n = first.len();
        first.extend(rest);
        (hosts, first, n)
    })
}

pub(crate) struct Fleet {
    pub(crate) app: App,
    hosts: Vec<Inventory>,
    pub(crate) _dir: tempfile::TempDir,
    /// The database's URL (a second `App` on it is another replica).
    pub(crate) url: String,
}

pub(crate) async fn fleet(backend: &str, base: &[Advisory]) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let url = patchbay_store::testing::fresh_url(backend).await;
    let prepared = patchbay_server::prepare(&patchbay_server::Settings {
        db_url: Some(url.clone()),
        data_dir: dir.path().to_path_buf(),
        app: AppConfig::default(),
    })
    .await
    .unwrap();
    let app = prepared.app;
    let admin = Caller::local("test");
    let ctx = RequestCtx::default();
    app.import_advisories("base", base, 0, &admin)
        .await
        .unwrap();
    let et = app
        .create_enroll_token(
            &admin,
            CreateEnrollToken {
                name: Some("delta".into()),
                uses: Some(HOSTS as u32),
                ttl_secs: Some(3600),
            },
            &ctx,
        )
        .await
        .unwrap();
    let hosts = pool().0.clone();
    for inv in &hosts {
        let e = app
            .enroll(
                EnrollRequest {
                    protocol: AGENT_PROTOCOL_VERSION,
                    enroll_token: et.token.clone(),
                    hostname: inv.facts.hostname.clone(),
                    machine_id: inv.facts.machine_id.clone(),
                    agent_secret: None,
                    csr: None,
                },
                &ctx,
            )
            .await
            .unwrap();
        let agent = app
            .authenticate_agent(Some(&format!("Bearer {}", e.agent_secret)), &ctx)
            .await
            .unwrap();
        app.checkin(
            &agent,
            CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: AGENT_PROTOCOL_VERSION,
                inventory_hash: inv.content_hash(),
                inventory: InventoryPayload::Full {
                    inventory: inv.clone(),
                },
            },
        )
        .await
        .unwrap();
    }
    Fleet {
        app,
        hosts,
        _dir: dir,
        url,
    }
}

/// Every stored finding, open and resolved, with every column but the id.
async fn dump(app: &App) -> Vec<String> {
    let mut tx = app.store().read().await.unwrap();
    let mut v: Vec<String> = tx
        .list_findings(None, true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {:?} first={} last={} resolved={:?}",
                r.asset_name,
                r.finding.advisory_id,
                r.finding.package,
                r.finding.arch,
                r.finding.source_package,
                r.finding.installed_version,
                r.finding.fixed_version,
                r.first_seen,
                r.last_seen,
                r.resolved_at
            )
        })
        .collect();
    v.sort();
    v
}

/// Open findings per host as a fresh matcher computes them on the stored index.
async fn expected_open(f: &Fleet) -> BTreeSet<(String, String, String, String)> {
    let index = f.app.index().await.unwrap();
    let mut out = BTreeSet::new();
    for h in &f.hosts {
        for x in Assessor::new()
            .assess_unmanaged(&index, &h.facts.unmanaged)
            .0
        {
            out.insert((h.facts.hostname.clone(), x.advisory, x.package, x.arch));
        }
        let Ok(t) = target_for(&h.facts.os) else {
            continue;
        };
        for x in Assessor::new().assess(&index, &t, &h.packages).0 {
            out.insert((h.facts.hostname.clone(), x.advisory, x.package, x.arch));
        }
    }
    out
}

async fn stored_open(app: &App) -> BTreeSet<(String, String, String, String)> {
    let mut tx = app.store().read().await.unwrap();
    tx.list_findings(None, false)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.asset_name,
                r.finding.advisory_id,
                r.finding.package,
                r.finding.arch,
            )
        })
        .collect()
}

/// The stored open findings equal a fresh matcher's (the difference is shown).
async fn same_open(f: &Fleet) -> Result<(), TestCaseError> {
    let stored = stored_open(&f.app).await;
    let expected = expected_open(f).await;
    let missing: Vec<_> = expected.difference(&stored).take(10).collect();
    let extra: Vec<_> = stored.difference(&expected).take(10).collect();
    prop_assert!(
        missing.is_empty() && extra.is_empty(),
        "stored open findings differ from a full match: missing {:?}, extra {:?}",
        missing,
        extra
    );
    Ok(())
}

/// One random edit of an advisory (or a new one), as a feed update brings.
#[derive(Debug, Clone)]
enum Edit {
    /// Import an advisory of the pool not imported yet (or again).
    Add(usize),
    /// Withdraw it (it stops matching).
    Withdraw(usize),
    /// Move every fixed version of its first affected entry.
    Fixed(usize, &'static str),
    /// Drop its last affected entry.
    DropEntry(usize),
    /// Point its first affected entry at another source package.
    Retarget(usize, usize),
    /// Change its summary only (no finding may change).
    Summary(usize),
    /// Restore an imported advisory to its original (reopens what an earlier
    /// edit resolved).
    Revert(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = || any::<usize>();
    prop_oneof![
        i().prop_map(Edit::Add),
        i().prop_map(Edit::Withdraw),
        (
            i(),
            prop::sample::select(vec!["0.1", "1:0", "99:0", "2.36-9+deb12u1"])
        )
            .prop_map(|(i, v)| Edit::Fixed(i, v)),
        i().prop_map(Edit::DropEntry),
        (i(), i()).prop_map(|(i, j)| Edit::Retarget(i, j)),
        i().prop_map(Edit::Summary),
        i().prop_map(Edit::Revert),
    ]
}

/// Applies edits to the current versions of the advisories (`current`, by pool
/// index) and returns the records to import.
fn apply(edits: &[Edit], current: &mut BTreeMap<usize, Advisory>, round: usize) -> Vec<Advisory> {
    let pool = &pool().1;
    let names: Vec<String> = pool
        .iter()
        .flat_map(|a| a.affected.iter().map(|x| x.package.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut touched = BTreeSet::new();
    for e in edits {
        let pick = |i: usize| i % pool.len();
        let (i, a) = match e {
            Edit::Add(i) => {
                let i = pick(*i);
                (i, pool[i].clone())
            }
            // The other edits change an advisory already imported.
            Edit::Withdraw(i)
            | Edit::Fixed(i, _)
            | Edit::DropEntry(i)
            | Edit::Retarget(i, _)
            | Edit::Summary(i)
            | Edit::Revert(i) => {
                let (k, a) = current
                    .iter()
                    .nth(*i % current.len())
                    .expect("the base import is never empty");
                (*k, a.clone())
            }
        };
        let mut a = a;
        match e {
            Edit::Add(_) => {}
            Edit::Withdraw(_) => a.withdrawn = a.modified.or(a.published),
            Edit::Fixed(_, v) => {
                if let Some(x) = a.affected.first_mut() {
                    for r in &mut x.ranges {
                        for ev in &mut r.events {
                            if let Event::Fixed(f) = ev {
                                *f = (*v).to_string();
                            }
                        }
                    }
                }
            }
            Edit::DropEntry(_) => {
                a.affected.pop();
            }
            Edit::Retarget(_, j) => {
                if let Some(x) = a.affected.first_mut() {
                    x.package = names[j % names.len()].clone();
                }
            }
            Edit::Summary(_) => a.summary = Some(format!("edited in round {round}")),
            Edit::Revert(_) => a = pool[i].clone(),
        }
        current.insert(i, a);
        touched.insert(i);
    }
    touched.iter().map(|i| current[i].clone()).collect()
}

fn delta_equals_full(backend: &str) {
    // Findings opened, resolved and reopened by the delta re-assessments (the
    // test is vacuous if the random changes flip nothing).
    let flips: [AtomicU64; 3] = Default::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Base: advisories that match the hosts and advisories that do not.
    let strategy = (
        prop::collection::vec(any::<prop::sample::Index>(), 10..30),
        prop::collection::vec(any::<prop::sample::Index>(), 10..30),
        prop::collection::vec(prop::collection::vec(edit(), 1..12), 1..4),
        // Assets per write transaction of the rounds' delta re-assessments:
        // from one per transaction to all in one.
        1usize..=HOSTS + 1,
    );
    runner
        .run(&strategy, |(matching, other, rounds, chunk)| {
            rt.block_on(async {
                let (_, pool, n) = pool();
                let mut current: BTreeMap<usize, Advisory> = BTreeMap::new();
                for i in &matching {
                    let i = i.index(*n);
                    current.insert(i, pool[i].clone());
                }
                for i in &other {
                    let i = n + i.index(pool.len() - n);
                    current.insert(i, pool[i].clone());
                }
                let base: Vec<Advisory> = current.values().cloned().collect();
                let f = fleet(backend, &base).await;
                let admin = Caller::local("test");
                // The base import is the first change: delta assesses it all.
                let d = f.app.assess_pending(&|_, _| {}).await.unwrap();
                prop_assert!(d.pairs > 0);
                prop_assert!(!stored_open(&f.app).await.is_empty());
                same_open(&f).await?;
                // The random rounds, then one that reverts every advisory to its
                // original (reopening what the rounds resolved).
                let mut rounds = rounds;
                rounds.push((0..current.len()).map(Edit::Revert).collect());
                for (round, edits) in rounds.iter().enumerate() {
                    let changed = apply(edits, &mut current, round);
                    let out = f
                        .app
                        .import_advisories("update", &changed, 0, &admin)
                        .await
                        .unwrap();
                    let d = f
                        .app
                        .assess_pending_chunked(chunk, &|_, _| {})
                        .await
                        .unwrap();
                    prop_assert_eq!(d.pairs, out.pairs_changed);
                    for (c, n) in
                        flips
                            .iter()
                            .zip([d.stats.opened, d.stats.resolved, d.stats.reopened])
                    {
                        c.fetch_add(n, Ordering::Relaxed);
                    }
                    // The queue is empty afterwards: running it again does nothing.
                    let again = f.app.assess_pending(&|_, _| {}).await.unwrap();
                    prop_assert_eq!(again.pairs, 0);
                    let after_delta = dump(&f.app).await;
                    same_open(&f).await?;
                    // A full re-assessment finds nothing left to do.
                    let (stats, _, _) = f.app.assess_fleet(&|_, _| {}).await.unwrap();
                    prop_assert_eq!(
                        (stats.opened, stats.reopened, stats.resolved),
                        (0, 0, 0),
                        "round {}: {:?}",
                        round,
                        edits
                    );
                    prop_assert_eq!(dump(&f.app).await, after_delta);
                }
                f.app.store().close().await;
                Ok(())
            })
        })
        .unwrap();
    // Not vacuous: the random changes opened, resolved and reopened findings.
    let [opened, resolved, reopened] = flips.each_ref().map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "{backend}: delta re-assessments opened {opened}, resolved {resolved}, reopened {reopened} findings"
    );
    assert!(
        opened > 0 && resolved > 0 && reopened > 0,
        "{opened} {resolved} {reopened}"
    );
}

/// A summary-only update queues nothing and a KEV import matches nothing, leaves
/// the findings as they were, and re-tiers: the worklist names KEV afterwards.
fn kev_retiers_without_rematching(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = &pool().1;
        let base: Vec<Advisory> = pool.iter().take(80).cloned().collect();
        let f = fleet(backend, &base).await;
        let admin = Caller::local("test");
        let ctx = RequestCtx::default();
        let first = f.app.assess_pending(&|_, _| {}).await.unwrap();
        assert!(first.pairs > 0 && first.assets > 0, "{first:?}");
        let open = stored_open(&f.app).await;
        assert!(!open.is_empty(), "the base advisories match the hosts");

        let mut edited = base[0].clone();
        edited.summary = Some("only the summary changed".into());
        let out = f
            .app
            .import_advisories("summary", &[edited], 0, &admin)
            .await
            .unwrap();
        assert_eq!(out.pairs_changed, 0, "a summary edit changes no match");

        // A KEV entry for the CVE of one open finding.
        let (_, advisory, _, _) = open.iter().next().unwrap().clone();
        let cve = {
            let mut tx = f.app.store().read().await.unwrap();
            tx.advisories_by_ids(std::slice::from_ref(&advisory))
                .await
                .unwrap()
                .remove(0)
                .cves
                .remove(0)
        };
        let kev_lines = |items: &[patchbay_proto::api::WorkItem]| {
            items
                .iter()
                .filter(|w| w.reasons.iter().any(|r| r.contains("KEV")))
                .count()
        };
        let filter = patchbay_app::prioritise::WorkFilter {
            limit: Some(1000),
            ..Default::default()
        };
        let before_items = f.app.worklist(&admin, &filter, &ctx).await.unwrap();
        assert_eq!(kev_lines(&before_items), 0);
        let before = dump(&f.app).await;
        f.app
            .import_kev(
                "kev",
                &crate::support::kev_catalog("2026.01.05", cve.clone()),
                0,
                &admin,
            )
            .await
            .unwrap();
        let d = f.app.assess_pending(&|_, _| {}).await.unwrap();
        assert_eq!(
            (d.pairs, d.assets, d.evaluated, d.reused),
            (0, 0, 0, 0),
            "a KEV import re-matches nothing: {d:?}"
        );
        assert_eq!(dump(&f.app).await, before, "the findings are untouched");
        let after_items = f.app.worklist(&admin, &filter, &ctx).await.unwrap();
        assert!(
            kev_lines(&after_items) > 0,
            "the worklist re-tiers the findings of {cve} (advisory {advisory})"
        );
        f.app.store().close().await;
    });
}

crate::both_backends!(delta_equals_full, kev_retiers_without_rematching);
