//! Mass finding flips on check-in (issue 14, deliverable 5), in process on a
//! real store (SQLite and PostgreSQL).
//!
//! A check-in re-assesses only the packages it changed, and writes the
//! difference in set-based statements without reading the findings back
//! (`FindingStore::sync_package_findings`). This property test drives the real
//! Debian 12 host (707 packages, ~5,000 findings on the Debian 12 advisories)
//! through random sequences of check-ins — packages upgraded to one of their
//! findings' fixed versions or past all of them, downgraded below all, removed
//! and re-installed, the kernel (~4,000 findings) among them — as `Delta` and
//! `Full` payloads on an injected clock, and after every check-in compares:
//!
//! - every stored finding, open and resolved, column by column (versions,
//!   first/last seen, resolved at) with a model of the lifecycle applied to a
//!   fresh matcher's findings of the new inventory (a finding opens once, is
//!   resolved when no longer matched, reopened with its history when matched
//!   again, `last_seen` moves only when it is written);
//! - the counts the check-in's `inventory.update` audit entry records
//!   (opened, reopened, resolved, still open among the changed packages) with
//!   the model's;
//!
//! and at the end of each sequence: a full re-assessment (`App::assess_fleet`)
//! changes nothing, and the open findings equal those a second database stores
//! for one first check-in of the final inventory.

use crate::support::fixtures;
use jiff::{SignedDuration, Timestamp};
use patchbay_app::{App, AppConfig, Caller, Clock, ManualClock, RequestCtx};
use patchbay_cli::sim::Templates;
use patchbay_core::assess::{Assessor, Index, target_for};
use patchbay_core::inventory::{Inventory, PackageDelta};
use patchbay_feeds::osv::Advisory;
use patchbay_feeds::source::{Collect, read_path};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{CheckinRequest, EnrollRequest, InventoryPayload};
use patchbay_proto::api::CreateEnrollToken;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

/// (advisory, package, arch).
type Key = (String, String, String);

/// A finding's stored state, without its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    source: String,
    installed: String,
    fixed: Option<String>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    resolved_at: Option<Timestamp>,
}

struct Pool {
    host: Inventory,
    advisories: Vec<Advisory>,
    index: Index,
    /// Packages (name, arch) with findings, and the versions a step may move
    /// each to: its findings' fixed versions, one below all, one past all.
    moves: Vec<((String, String), Vec<String>)>,
}

/// The real Debian 12 host, the Debian 12 advisories naming its sources, and
/// the packages a step may move.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let t = Templates::load().expect("simulator templates");
        let mut host = (0..)
            .map(|i| t.host(i, 7, "flips"))
            .find(|h| h.facts.os.id == "debian" && h.packages.len() > 700)
            .expect("the Debian 12 host template");
        for p in &mut host.packages {
            p.version = p.version.trim_end_matches("~sim1").to_string();
            if let Some(v) = &mut p.source_version {
                *v = v.trim_end_matches("~sim1").to_string();
            }
        }
        host.normalize();
        let sources: BTreeSet<String> = host
            .packages
            .iter()
            .map(|p| p.source.clone().unwrap_or_else(|| p.name.clone()))
            .collect();
        let mut c = Collect::default();
        read_path(
            &fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
            &mut c,
        )
        .expect("reading the Debian 12 OSV zip");
        let advisories: Vec<Advisory> = c
            .advisories
            .into_iter()
            .filter(|a| a.affected.iter().any(|x| sources.contains(&x.package)))
            .collect();
        let rows = patchbay_app::feeds::merge_rows(
            advisories.iter().map(patchbay_app::feeds::advisory_row),
        );
        let index = patchbay_app::assess::build_index(&rows);
        let target = target_for(&host.facts.os).unwrap();
        let mut fixed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for f in Assessor::new().assess(&index, &target, &host.packages).0 {
            let e = fixed.entry((f.package, f.arch)).or_default();
            e.extend(f.fixed_version);
        }
        let moves = fixed
            .into_iter()
            .map(|(k, vs)| {
                let mut v: Vec<String> = vs.into_iter().collect();
                v.push("0~0".into());
                (k, v)
            })
            .collect();
        Pool {
            host,
            advisories,
            index,
            moves,
        }
    })
}

/// Where one change of a check-in moves a package.
#[derive(Debug, Clone, Copy)]
enum To {
    /// Back to the host's own version.
    Original,
    /// One of its versions (`Pool::moves`, modulo their number).
    Version(usize),
    /// Past all its findings' fixed versions (`99:0`).
    Past,
    /// Removed.
    Removed,
}

/// One check-in: packages (index into `Pool::moves`, modulo their number)
/// and where each moves; sent as a `Full` payload when `.1`, else `Delta`.
type Step = (Vec<(usize, To)>, bool);

fn step() -> impl Strategy<Value = Step> {
    let to = prop_oneof![
        1 => Just(To::Original),
        4 => any::<usize>().prop_map(To::Version),
        1 => Just(To::Past),
        1 => Just(To::Removed),
    ];
    (
        prop::collection::vec((any::<usize>(), to), 1..6),
        any::<bool>(),
    )
}

/// The host's inventory with `overrides` applied: (name, arch) → a version,
/// or removed.
fn inventory(overrides: &BTreeMap<(String, String), Option<String>>) -> Inventory {
    let mut inv = pool().host.clone();
    inv.packages
        .retain_mut(|p| match overrides.get(&(p.name.clone(), p.arch.clone())) {
            None => true,
            Some(None) => false,
            Some(Some(v)) => {
                p.version = v.clone();
                p.source_version = Some(v.clone());
                true
            }
        });
    inv.normalize();
    inv
}

struct Host {
    app: App,
    clock: Arc<ManualClock>,
    agent: patchbay_app::AgentCaller,
    _dir: tempfile::TempDir,
}

async fn host(backend: &str, inv: &Inventory) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        "2026-03-02T08:00:00Z".parse::<Timestamp>().unwrap(),
    ));
    let prepared = patchbay_server::setup::prepare_with_clock(
        &patchbay_server::Settings {
            db_url: Some(patchbay_store::testing::fresh_url(backend).await),
            data_dir: dir.path().to_path_buf(),
            app: AppConfig::default(),
        },
        clock.clone(),
    )
    .await
    .unwrap();
    let app = prepared.app;
    let admin = Caller::local("test");
    let ctx = RequestCtx::default();
    app.import_advisories("debian-12", &pool().advisories, 0, &admin)
        .await
        .unwrap();
    let et = app
        .create_enroll_token(
            &admin,
            CreateEnrollToken {
                name: Some("flips".into()),
                uses: Some(1),
                ttl_secs: Some(3600),
            },
            &ctx,
        )
        .await
        .unwrap();
    let e = app
        .enroll(
            EnrollRequest {
                protocol: AGENT_PROTOCOL_VERSION,
                enroll_token: et.token,
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
    let h = Host {
        app,
        clock,
        agent,
        _dir: dir,
    };
    checkin(&h, None, inv).await;
    h
}

/// One check-in of `next` (a `Delta` from `prev` when given, else `Full`).
async fn checkin(h: &Host, prev: Option<&Inventory>, next: &Inventory) {
    let inventory = match prev {
        Some(prev) => {
            let d = PackageDelta::between(&prev.packages, &next.packages);
            InventoryPayload::Delta {
                base_hash: prev.content_hash(),
                facts: next.facts.clone(),
                format: next.format,
                added: d.added,
                removed: d.removed,
                pending_updates: next.pending_updates.clone(),
            }
        }
        None => InventoryPayload::Full {
            inventory: next.clone(),
        },
    };
    h.app
        .checkin(
            &h.agent,
            CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: AGENT_PROTOCOL_VERSION,
                inventory_hash: next.content_hash(),
                inventory,
            },
        )
        .await
        .unwrap();
}

/// Every stored finding of the host, open and resolved.
async fn stored(app: &App) -> BTreeMap<Key, Row> {
    let mut tx = app.store().read().await.unwrap();
    tx.list_findings(None, true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                (r.finding.advisory_id, r.finding.package, r.finding.arch),
                Row {
                    source: r.finding.source_package,
                    installed: r.finding.installed_version,
                    fixed: r.finding.fixed_version,
                    first_seen: r.first_seen,
                    last_seen: r.last_seen,
                    resolved_at: r.resolved_at,
                },
            )
        })
        .collect()
}

/// The counts of the latest `inventory.update` audit entry.
async fn audited_counts(app: &App) -> serde_json::Value {
    let admin = Caller::local("test");
    let ctx = RequestCtx::default();
    let mut after = 0;
    let mut last = None;
    loop {
        let page = app.list_audit(&admin, after, 1000, &ctx).await.unwrap();
        let Some(end) = page.last() else { break };
        after = end.seq;
        for e in page {
            if e.action == "inventory.update" {
                last = Some(e.detail["findings"].clone());
            }
        }
    }
    last.expect("an inventory.update entry")
}

/// What a fresh matcher finds on `inv`: key → (source, installed, fixed).
fn matches(inv: &Inventory) -> BTreeMap<Key, (String, String, Option<String>)> {
    let target = target_for(&inv.facts.os).unwrap();
    Assessor::new()
        .assess(&pool().index, &target, &inv.packages)
        .0
        .into_iter()
        .map(|f| {
            (
                (f.advisory, f.package, f.arch),
                (f.source_package, f.installed_version, f.fixed_version),
            )
        })
        .collect()
}

/// Applies a check-in at `now` to the model: the findings of the `changed`
/// packages follow `current`; returns (opened, reopened, resolved,
/// still_open) among them.
fn model_step(
    model: &mut BTreeMap<Key, Row>,
    current: &BTreeMap<Key, (String, String, Option<String>)>,
    changed: &BTreeSet<(String, String)>,
    now: Timestamp,
) -> [u64; 4] {
    let mut n = [0; 4];
    let of = |k: &Key| changed.contains(&(k.1.clone(), k.2.clone()));
    for (k, row) in model.iter_mut() {
        if of(k) && row.resolved_at.is_none() && !current.contains_key(k) {
            row.resolved_at = Some(now);
            n[2] += 1;
        }
    }
    for (k, (source, installed, fixed)) in current.iter().filter(|(k, _)| of(k)) {
        match model.get_mut(k) {
            None => {
                model.insert(
                    k.clone(),
                    Row {
                        source: source.clone(),
                        installed: installed.clone(),
                        fixed: fixed.clone(),
                        first_seen: now,
                        last_seen: now,
                        resolved_at: None,
                    },
                );
                n[0] += 1;
            }
            Some(row) => {
                let same = (&row.source, &row.installed, &row.fixed) == (source, installed, fixed);
                if row.resolved_at.is_some() {
                    n[1] += 1;
                } else {
                    n[3] += 1;
                }
                if row.resolved_at.is_some() || !same {
                    row.source = source.clone();
                    row.installed = installed.clone();
                    row.fixed = fixed.clone();
                    row.last_seen = now;
                    row.resolved_at = None;
                }
            }
        }
    }
    n
}

fn first_difference(a: &BTreeMap<Key, Row>, b: &BTreeMap<Key, Row>) -> String {
    for (k, v) in a {
        match b.get(k) {
            None => return format!("{k:?} stored as {v:?}, absent from the model"),
            Some(w) if w != v => return format!("{k:?}: stored {v:?}, model {w:?}"),
            _ => {}
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            return format!("{k:?} missing; the model has {w:?}");
        }
    }
    String::new()
}

fn checkin_flips_equal_full(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Not vacuous: [opened, reopened, resolved] over all cases, and the
    // largest single check-in's resolves and reopens.
    let totals = std::sync::Mutex::new([0u64; 3]);
    let most = std::sync::Mutex::new([0u64; 2]);
    let kernel = pool()
        .moves
        .iter()
        .position(|((n, _), _)| n == "linux-libc-dev")
        .expect("linux-libc-dev has findings");
    runner
        .run(&prop::collection::vec(step(), 3..7), |steps| {
            rt.block_on(async {
                let p = pool();
                let mut overrides: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
                let mut inv = inventory(&overrides);
                let h = host(backend, &inv).await;
                let t0 = h.clock.now();
                let mut model = BTreeMap::new();
                let all: BTreeSet<(String, String)> = inv
                    .packages
                    .iter()
                    .map(|x| (x.name.clone(), x.arch.clone()))
                    .collect();
                model_step(&mut model, &matches(&inv), &all, t0);
                let got = stored(&h.app).await;
                prop_assert!(
                    got == model,
                    "first check-in: {}",
                    first_difference(&got, &model)
                );
                // The kernel (linux-libc-dev and linux-perf) moves past all its
                // fixes and back first (the bench's mass flips), then the random
                // steps.
                let perf = p.moves.iter().position(|((n, _), _)| n == "linux-perf");
                let kernel_step = |to| {
                    (
                        std::iter::once(kernel)
                            .chain(perf)
                            .map(|k| (k, to))
                            .collect::<Vec<_>>(),
                        false,
                    )
                };
                let mut steps = steps;
                steps.insert(0, kernel_step(To::Past));
                steps.insert(1, kernel_step(To::Original));
                for (i, (changes, full)) in steps.iter().enumerate() {
                    for (which, to) in changes {
                        let (key, versions) = &p.moves[which % p.moves.len()];
                        match to {
                            To::Original => {
                                overrides.remove(key);
                            }
                            To::Version(v) => {
                                overrides.insert(
                                    key.clone(),
                                    Some(versions[v % versions.len()].clone()),
                                );
                            }
                            To::Past => {
                                overrides.insert(key.clone(), Some("99:0".into()));
                            }
                            To::Removed => {
                                overrides.insert(key.clone(), None);
                            }
                        }
                    }
                    let next = inventory(&overrides);
                    if next.content_hash() == inv.content_hash() {
                        continue;
                    }
                    h.clock.advance(SignedDuration::from_hours(1));
                    let now = h.clock.now();
                    checkin(&h, (!*full).then_some(&inv), &next).await;
                    let d = PackageDelta::between(&inv.packages, &next.packages);
                    let changed: BTreeSet<(String, String)> = d
                        .added
                        .iter()
                        .chain(&d.removed)
                        .map(|x| (x.name.clone(), x.arch.clone()))
                        .collect();
                    let n = model_step(&mut model, &matches(&next), &changed, now);
                    let got = stored(&h.app).await;
                    prop_assert!(
                        got == model,
                        "step {} ({:?}): {}",
                        i,
                        changed,
                        first_difference(&got, &model)
                    );
                    let audited = audited_counts(&h.app).await;
                    prop_assert_eq!(
                        [
                            audited["opened"].as_u64(),
                            audited["reopened"].as_u64(),
                            audited["resolved"].as_u64(),
                            audited["still_open"].as_u64()
                        ],
                        n.map(Some),
                        "step {}: audited counts",
                        i
                    );
                    // The ranked projection (ADR 0023) follows every flip: each
                    // row the check-in wrote carries a new change number.
                    let all = patchbay_app::prioritise::WorkFilter {
                        limit: Some(10_000),
                        ..Default::default()
                    };
                    let (admin, ctx) = (Caller::local("test"), RequestCtx::default());
                    let got = h.app.worklist(&admin, &all, &ctx).await.unwrap();
                    let want = h.app.worklist_reference(&admin, &all, &ctx).await.unwrap();
                    prop_assert!(
                        got == want,
                        "step {}: the projection's worklist ({} lines) is not the reference ({})",
                        i,
                        got.len(),
                        want.len()
                    );
                    {
                        let mut t = totals.lock().unwrap();
                        t[0] += n[0];
                        t[1] += n[1];
                        t[2] += n[2];
                        let mut m = most.lock().unwrap();
                        m[0] = m[0].max(n[2]);
                        m[1] = m[1].max(n[1]);
                    }
                    inv = next;
                }
                // A full re-assessment finds nothing to change.
                let before = stored(&h.app).await;
                let (stats, _, _) = h.app.assess_fleet(&|_, _| {}).await.unwrap();
                prop_assert_eq!((stats.opened, stats.reopened, stats.resolved), (0, 0, 0));
                prop_assert!(
                    stored(&h.app).await == before,
                    "assess_fleet rewrote findings"
                );
                // A second database, one first check-in of the final inventory.
                let fresh = host(backend, &inv).await;
                let open =
                    |m: &BTreeMap<Key, Row>| -> BTreeMap<Key, (String, String, Option<String>)> {
                        m.iter()
                            .filter(|(_, r)| r.resolved_at.is_none())
                            .map(|(k, r)| {
                                (
                                    k.clone(),
                                    (r.source.clone(), r.installed.clone(), r.fixed.clone()),
                                )
                            })
                            .collect()
                    };
                let fresh_open = open(&stored(&fresh.app).await);
                prop_assert!(!fresh_open.is_empty());
                prop_assert!(
                    open(&before) == fresh_open,
                    "open findings differ from a fresh database's"
                );
                fresh.app.store().close().await;
                h.app.store().close().await;
                Ok(())
            })
        })
        .unwrap();
    let [opened, reopened, resolved] = *totals.lock().unwrap();
    let [most_resolved, most_reopened] = *most.lock().unwrap();
    eprintln!(
        "{backend}: check-ins opened {opened}, reopened {reopened}, resolved {resolved} findings; \
         at most {most_resolved} resolved and {most_reopened} reopened by one"
    );
    assert!(opened > 0 && reopened > 0 && resolved > 0);
    assert!(most_resolved > 3_500 && most_reopened > 3_500);
}

crate::both_backends!(checkin_flips_equal_full);
