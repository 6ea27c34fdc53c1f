//! The ranked projection of open findings (issue 14, item 6; ADR 0023): the
//! worklist at 10,000 assets × 200 open findings without reading 2,000,000
//! rows per request.
//!
//! [`OpenFindings`] keeps, in process, a compact entry per open finding (its
//! id, asset id, first-seen second and interned advisory, package, source
//! package and architecture: 40 bytes, plus ~16 bytes of index) — not its
//! versions, not its rank. Each request, inside its one read snapshot:
//!
//! 1. reads the findings change sequence (migration 0130; every findings
//!    write in `patchbay_store`'s `role/findings.rs` stamps the rows it
//!    touches) and, when it moved, only the rows stamped after what the
//!    projection has seen (one indexed query) — inserts, refreshes, resolves
//!    and reopens; the first request after a start reads every open finding's
//!    key once (the cold cost, see docs/benchmarks.md);
//! 2. reads the small facts it ranks with, current, through the same
//!    snapshot: the assets (groups, impact, exposure, owner), the advisories'
//!    CVSS/KEV/EPSS (`Enrichment`), the exceptions and the policy — nothing of
//!    these is cached here, so an import, an exception, an asset's attributes
//!    or a policy change shows on the next request, on any replica;
//! 3. classifies once per (advisory, business impact, exposure) class
//!    ([`Ranker::class`]), then ranks each entry ([`Ranker::rank_in`]: the due
//!    date from its first-seen time), filters as `Snapshot::top_open` does,
//!    selects the `limit` first by [`rank_order`] in linear time and orders
//!    them (and those tied with the last) by [`worklist_order`];
//! 4. reads the selected findings' rows by id and builds their wire lines
//!    through [`ranking::rank`], the one ranking every answer uses.
//!
//! The result is that of `Snapshot::top_open` (the reference, kept:
//! [`App::worklist_reference`]); the test `projection` in `patchbay-cli`'s
//! tests compares the two after random changes, on both engines and across
//! two `App`s sharing a database.
//!
//! Invariants: the projection is never newer nor older than the snapshot it
//! is used with — a request takes the projection's lock *before* it opens its
//! snapshot and holds it until its lines are built, so concurrent requests
//! queue and the second finds the projection current (one refresh, shared).
//! Entries of assets the snapshot no longer lists are dropped.

use crate::AppError;
use crate::ranking::{self, Ranked, Wanted};
use crate::snapshot::Snapshot;
use jiff::Timestamp;
use patchbay_core::asset::{BusinessImpact, Exposure};
use patchbay_core::exception::{FindingFacts, excepting};
use patchbay_core::policy::Policy;
use patchbay_core::rank::{Class, Rank, Ranker, rank_order, worklist_order};
use patchbay_store::{AssetRow, FindingKey};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// Rows a page of the first build reads.
const COLD_PAGE: i64 = 50_000;

/// One open finding as the projection keeps it (40 bytes).
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    asset: i64,
    /// First seen, rounded to the second as the wire line carries it.
    first_seen: i64,
    advisory: u32,
    package: u32,
    source_package: u32,
    arch: u32,
}

/// Strings stored once, named by their position.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.names.push(a.clone());
        self.ids.insert(a, i);
        i
    }

    fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

/// The in-process projection of open findings (see the module docs).
#[derive(Debug, Default)]
pub struct OpenFindings {
    built: bool,
    /// The findings change sequence the entries reflect.
    seen: i64,
    entries: Vec<Entry>,
    /// Finding id → position in `entries`.
    pos: HashMap<i64, u32>,
    /// Entries per asset id.
    per_asset: HashMap<i64, u32>,
    /// Advisory ids (their own table: per-advisory facts are indexed by it).
    advisories: Interner,
    /// Packages, source packages and architectures.
    strings: Interner,
}

/// What [`OpenFindings::refresh`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Rows read (every open finding on the first build; changed rows after).
    pub rows: usize,
    /// Whether this was the first build.
    pub cold: bool,
}

impl OpenFindings {
    /// Open findings held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An estimate of the resident bytes of the projection (entries, the id
    /// index, the per-asset counts and the interned strings).
    pub fn resident_bytes(&self) -> usize {
        let map = |cap: usize, item: usize| cap * (item + 1) * 8 / 7;
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + map(self.pos.capacity(), 12)
            + map(self.per_asset.capacity(), 12)
            + [&self.advisories, &self.strings]
                .iter()
                .map(|i| {
                    i.names.iter().map(|n| n.len() + 16).sum::<usize>()
                        + map(i.ids.capacity(), 20)
                        + i.names.capacity() * 16
                })
                .sum::<usize>()
    }

    fn upsert(&mut self, k: &FindingKey) -> Result<(), AppError> {
        let first_seen = patchbay_store::from_millis(k.first_seen_ms)?;
        let first_seen = first_seen
            .round(jiff::Unit::Second)
            .unwrap_or(first_seen)
            .as_second();
        let e = Entry {
            id: k.id,
            asset: k.asset_id,
            first_seen,
            advisory: self.advisories.id(&k.advisory_id),
            package: self.strings.id(&k.package),
            source_package: self.strings.id(&k.source_package),
            arch: self.strings.id(&k.arch),
        };
        match self.pos.get(&k.id) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.entries[i as usize], e);
                if old.asset != e.asset {
                    // Never happens (a finding keeps its asset); kept exact anyway.
                    self.dec_asset(old.asset);
                    *self.per_asset.entry(e.asset).or_default() += 1;
                }
            }
            None => {
                self.pos.insert(k.id, self.entries.len() as u32);
                self.entries.push(e);
                *self.per_asset.entry(e.asset).or_default() += 1;
            }
        }
        Ok(())
    }

    fn dec_asset(&mut self, asset: i64) {
        if let Some(n) = self.per_asset.get_mut(&asset) {
            *n -= 1;
            if *n == 0 {
                self.per_asset.remove(&asset);
            }
        }
    }

    fn remove(&mut self, id: i64) {
        let Some(i) = self.pos.remove(&id) else {
            return;
        };
        let gone = self.entries.swap_remove(i as usize);
        if let Some(moved) = self.entries.get(i as usize) {
            self.pos.insert(moved.id, i);
        }
        self.dec_asset(gone.asset);
    }

    /// Drops the entries of assets not in `present`.
    fn drop_assets_not_in(&mut self, present: &HashMap<i64, usize>) {
        if self.per_asset.keys().all(|a| present.contains_key(a)) {
            return;
        }
        self.entries.retain(|e| present.contains_key(&e.asset));
        self.per_asset.retain(|a, _| present.contains_key(a));
        self.pos = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i as u32))
            .collect();
    }

    /// Brings the projection to the state of `snap`'s transaction: every
    /// open finding on the first call, the rows stamped after the last seen
    /// sequence afterwards.
    pub(crate) async fn refresh(&mut self, snap: &mut Snapshot<'_>) -> Result<Refreshed, AppError> {
        let tx = snap.tx();
        // The counter first: rows stamped later are read again next time
        // (applying a row's state twice is harmless).
        let n = tx.findings_seq().await?;
        if !self.built {
            *self = OpenFindings::default();
            // Page by page (by id, in this snapshot): the rows' strings are
            // interned as they come, never all held at once.
            let mut after = i64::MIN;
            loop {
                let keys = tx.open_finding_keys(after, COLD_PAGE).await?;
                for k in &keys {
                    self.upsert(k)?;
                }
                match keys.last() {
                    Some(k) if keys.len() as i64 == COLD_PAGE => after = k.id,
                    _ => break,
                }
            }
            self.entries.shrink_to_fit();
            self.built = true;
            self.seen = n;
            return Ok(Refreshed {
                rows: self.entries.len(),
                cold: true,
            });
        }
        if n == self.seen {
            return Ok(Refreshed::default());
        }
        let keys = tx.findings_changed_since(self.seen).await?;
        for k in &keys {
            if k.open {
                self.upsert(k)?;
            } else {
                self.remove(k.id);
            }
        }
        self.seen = n;
        Ok(Refreshed {
            rows: keys.len(),
            cold: false,
        })
    }

    /// The worklist's lines (see the module docs): the `limit` first open
    /// findings in worklist order that the policy does not exclude, no
    /// exception covers and `wanted` keeps — as `Snapshot::top_open` gives
    /// them. Refreshes first, through `snap`.
    pub(crate) async fn top_open(
        &mut self,
        snap: &mut Snapshot<'_>,
        policy: &Policy,
        wanted: &Wanted<'_>,
        limit: usize,
    ) -> Result<Vec<Ranked>, AppError> {
        self.refresh(snap).await?;
        let now = snap.now();
        let assets = snap.assets().await?;
        let asset_pos: HashMap<i64, usize> =
            assets.iter().enumerate().map(|(i, a)| (a.id, i)).collect();
        self.drop_assets_not_in(&asset_pos);
        let exceptions = snap.exceptions().await?;
        let ranker = Ranker::new(policy);

        struct PerAsset {
            groups: Vec<String>,
            impact: BusinessImpact,
            exposure: Exposure,
            kept: bool,
        }
        let per_asset: Vec<PerAsset> = assets
            .iter()
            .map(|a| {
                let (_, _, impact, exposure) = ranking::facts(a);
                let groups = ranking::with_facts(a, |f| ranker.groups(f));
                PerAsset {
                    kept: wanted.asset(&a.name, &a.attrs.owner, &groups),
                    groups,
                    impact,
                    exposure,
                }
            })
            .collect();
        // Asset id → position: a vector when ids are dense (they are row ids).
        let max_id = assets.iter().map(|a| a.id).max().unwrap_or(0);
        let dense: Option<Vec<u32>> = (max_id >= 0 && (max_id as usize) <= 4 * assets.len() + 1024)
            .then(|| {
                let mut v = vec![u32::MAX; max_id as usize + 1];
                for (i, a) in assets.iter().enumerate() {
                    v[a.id as usize] = i as u32;
                }
                v
            });
        let asset_at = |id: i64| -> Option<usize> {
            match &dense {
                Some(v) => v
                    .get(usize::try_from(id).ok()?)
                    .filter(|&&i| i != u32::MAX)
                    .map(|&i| i as usize),
                None => asset_pos.get(&id).copied(),
            }
        };

        // The advisories' facts, for the advisories of kept assets' entries.
        let n_adv = self.advisories.names.len();
        let mut wanted_adv = vec![false; n_adv];
        for e in &self.entries {
            if let Some(a) = asset_at(e.asset)
                && per_asset[a].kept
            {
                wanted_adv[e.advisory as usize] = true;
            }
        }
        let adv_ids: Vec<&str> = (0..n_adv)
            .filter(|&i| wanted_adv[i])
            .map(|i| self.advisories.name(i as u32))
            .collect();
        let enrichment = snap.enrichment_of(adv_ids.iter().copied()).await?;
        let facts: Vec<Option<ranking::AdvisoryFacts<'_>>> = (0..n_adv)
            .map(|i| wanted_adv[i].then(|| enrichment.advisory(self.advisories.name(i as u32))))
            .collect();
        let excludes = ranker.excludes_anything();
        let active: Vec<patchbay_core::exception::Exception> = exceptions
            .into_iter()
            .filter(|e| e.active_at(now))
            .collect();

        // Classes: (advisory, impact, exposure), classified once each.
        let mut classes: Vec<Option<Class>> = vec![None; n_adv * 16];
        let mut lines: Vec<(Rank, u32)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let Some(ai) = asset_at(e.asset) else {
                continue;
            };
            let pa = &per_asset[ai];
            if !pa.kept {
                continue;
            }
            let Some(adv) = &facts[e.advisory as usize] else {
                continue;
            };
            let slot =
                e.advisory as usize * 16 + impact_ix(pa.impact) * 4 + exposure_ix(pa.exposure);
            let class = *classes[slot]
                .get_or_insert_with(|| ranker.class(&adv.risk_input(pa.impact, pa.exposure, now)));
            let a = &assets[ai];
            let package = self.strings.name(e.package);
            let source_package = self.strings.name(e.source_package);
            let excluded =
                excludes && ranker.excluded(&a.name, &pa.groups, package, source_package);
            let first_seen = Timestamp::from_second(e.first_seen).unwrap_or(now);
            let rank = ranker.rank_in(&class, first_seen, excluded, now);
            if rank.excluded || !wanted.line(&rank) {
                continue;
            }
            if !active.is_empty() {
                let f = FindingFacts {
                    asset: &a.name,
                    groups: &pa.groups,
                    advisory: self.advisories.name(e.advisory),
                    cves: adv.cves,
                    package,
                    source_package,
                };
                if excepting(&active, &f, now).is_some() {
                    continue;
                }
            }
            lines.push((rank, i as u32));
        }

        // The `limit` first by rank in linear time, and every line tied with
        // the last of them (the id decides among those).
        if limit == 0 {
            lines.clear();
        } else if lines.len() > limit {
            let by_rank = |a: &(Rank, u32), b: &(Rank, u32)| rank_order(&a.0, &b.0);
            lines.select_nth_unstable_by(limit - 1, by_rank);
            let last = lines[limit - 1].0;
            lines.retain(|l| rank_order(&l.0, &last) != Ordering::Greater);
        }
        let name_of = |i: u32| {
            let e = &self.entries[i as usize];
            let a = &assets[asset_at(e.asset).unwrap_or_default()];
            patchbay_core::assess::finding_name(
                &a.name,
                self.advisories.name(e.advisory),
                self.strings.name(e.package),
                self.strings.name(e.arch),
            )
        };
        let mut named: Vec<(Rank, String, i64)> = lines
            .into_iter()
            .map(|(r, i)| (r, name_of(i), self.entries[i as usize].id))
            .collect();
        named.sort_by(|a, b| worklist_order(&a.0, &a.1, &b.0, &b.1));
        named.truncate(limit);

        // The wire lines of the selected findings, read by id.
        let asset_by_name: HashMap<&str, usize> = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let ids: Vec<i64> = named.iter().map(|l| l.2).collect();
        let mut rows: HashMap<i64, patchbay_store::FindingRow> = snap
            .tx()
            .findings_by_ids(&ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let rows: Vec<patchbay_store::FindingRow> =
            ids.iter().filter_map(|id| rows.remove(id)).collect();
        // The selected lines' advisories are among those enriched above.
        drop(facts);
        let e = enrichment;
        let chosen: Vec<_> = rows.into_iter().map(|r| e.finding_out(r)).collect();
        let by_name: HashMap<String, AssetRow> = chosen
            .iter()
            .filter_map(|f| {
                let a = &assets[asset_by_name.get(f.asset.as_str()).copied()?];
                Some((f.asset.clone(), a.clone()))
            })
            .collect();
        let mut ranked = ranking::rank(policy, &by_name, &e.index, chosen, now);
        ranking::mark(&mut ranked, &active, now);
        debug_assert!(
            ranked.len() == named.len()
                && ranked
                    .iter()
                    .zip(&named)
                    .all(|(r, l)| r.rank() == l.0 && r.item.exception.is_none()),
            "the projection ranked a line differently from the full ranking"
        );
        Ok(ranked)
    }
}

fn impact_ix(i: BusinessImpact) -> usize {
    match i {
        BusinessImpact::Critical => 0,
        BusinessImpact::High => 1,
        BusinessImpact::Medium => 2,
        BusinessImpact::Low => 3,
    }
}

fn exposure_ix(e: Exposure) -> usize {
    match e {
        Exposure::InternetFacing => 0,
        Exposure::PrivilegedData => 1,
        Exposure::Internal => 2,
        Exposure::Isolated => 3,
    }
}
