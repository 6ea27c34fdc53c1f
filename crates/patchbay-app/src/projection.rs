//! The ranked projection of open findings (issue 14, item 6; ADR 0023): the
//! worklist at 10,000 assets × 200 open findings without reading 2,000,000
//! rows per request, nor ranking them.
//!
//! [`OpenFindings`] keeps, in process, a compact entry per open finding (its
//! id, asset id, first-seen second and interned package, source package and
//! architecture: 40 bytes, plus ~16 bytes of index), grouped per advisory and
//! kept ordered by first-seen time within each advisory — not its versions,
//! not its rank. Each request, inside its one read snapshot:
//!
//! 1. reads the findings change sequence (migrations 0130 and 0135: every
//!    findings write in `patchbay_store`'s `role/findings.rs` stamps the
//!    assets whose findings it changed) and, when it moved, re-reads the open
//!    findings of the assets stamped after what the projection has seen,
//!    replaces what it holds of them (entries that did not change are not
//!    touched) and re-orders only the advisories that changed; the first
//!    request after a start reads every open finding's key once (the cold
//!    cost, see docs/benchmarks.md);
//! 2. reads the small facts it ranks with, current, through the same
//!    snapshot: the assets (groups, impact, exposure, owner), the advisories'
//!    CVSS/KEV/EPSS (`Enrichment`), the exceptions and the policy — nothing of
//!    these is cached here, so an import, an exception, an asset's attributes
//!    or a policy change shows on the next request, on any replica;
//! 3. splits each advisory's findings into *streams*, one per (business
//!    impact, exposure) of the kept assets: every finding of a stream has the
//!    same class ([`Ranker::class`], classified once per stream), so its rank
//!    ([`Ranker::rank_in`]) only moves with its due date, which never falls
//!    as its first-seen time grows (`RiskModel::due_of`: the later of
//!    publication and first sight plus the tier's SLA, capped by the KEV due
//!    date) — a stream in first-seen order is in [`rank_order`];
//! 4. merges the streams with a heap in [`rank_order`], applying the
//!    per-finding filters (the policy's exclusions, the exceptions, `wanted`)
//!    to the findings it visits, until `limit` lines are kept and the next
//!    finding ranks after the last of them; streams of a tier the filter does
//!    not want are never entered. A request thus visits about `limit`
//!    findings (plus those tied with the last, plus those filtered out on the
//!    way), not every open finding; the lines tied with the last are ordered
//!    by [`worklist_order`] (the finding id breaks ties), their names
//!    compared in pieces, not built;
//! 5. reads the selected findings' rows by id and builds their wire lines
//!    through [`ranking::rank`], the one ranking every answer uses.
//!
//! The result is that of `Snapshot::top_open` (the reference, kept:
//! [`App::worklist_reference`]); the test `projection` in `patchbay-cli`'s
//! tests compares the two after random changes, on both engines and across
//! two `App`s sharing a database.
//!
//! The compliance report as of now is counted from the same projection
//! ([`OpenFindings::compliance_counts`], ADR 0023's amendment), under the
//! same lock and through the request's snapshot: every held entry is put in
//! its state at `as_of` (excluded, excepted, overdue or within SLA: one class
//! per advisory and (impact, exposure), a due date per entry), and the
//! resolved findings come from one aggregate of the store — not a read of
//! every finding. `App::compliance_reference` keeps the history's way; the
//! same test compares the two.
//!
//! Invariants: the projection is never newer nor older than the snapshot it
//! is used with — a request takes the projection's lock *before* it opens its
//! snapshot and holds it until its lines are built, so concurrent requests
//! queue and the second finds the projection current (one refresh, shared).
//! Each advisory's entries are in (first-seen, id) order whenever the lock is
//! released. Entries of assets the snapshot no longer lists are dropped.
//!
//! `PATCHBAY_WORKLIST_PHASES` (any value) prints each request's time per
//! phase to stderr (for the fleet bench's profile).
//!
//! [`App::worklist_reference`]: crate::App::worklist_reference
//! [`worklist_order`]: patchbay_core::rank::worklist_order

use crate::AppError;
use crate::ranking::{self, Ranked, Wanted};
use crate::snapshot::Snapshot;
use jiff::Timestamp;
use patchbay_core::asset::{BusinessImpact, Exposure};
use patchbay_core::exception::{FindingFacts, excepting};
use patchbay_core::policy::Policy;
use patchbay_core::rank::{Class, Rank, Ranker, rank_order};
use patchbay_core::report::{Counts, State};
use patchbay_store::{AssetRow, FindingKey};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// Rows a page of the first build reads.
const COLD_PAGE: i64 = 50_000;

/// Up to this many changes to one advisory's entries are applied by a linear
/// search each; more, by one pass over its entries with a map.
const FEW_CHANGES: usize = 32;

/// One open finding as the projection keeps it (40 bytes), in its advisory's
/// list.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    asset: i64,
    /// First seen, rounded to the second as the wire line carries it.
    first_seen: i64,
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
    /// Per interned advisory: its open findings, in (first-seen, id) order.
    lists: Vec<Vec<Entry>>,
    /// Finding id → where it is and what of it can change while it stays
    /// open.
    held: HashMap<i64, Held>,
    /// Asset id → the ids of its open findings held.
    per_asset: HashMap<i64, Vec<i64>>,
    /// Advisory ids (their own table: per-advisory facts are indexed by it).
    advisories: Interner,
    /// Packages, source packages and architectures.
    strings: Interner,
}

/// What the projection knows of a held finding without finding its entry:
/// its advisory (the list it is in) and the entry's fields a re-read could
/// show changed. A finding's id, asset, advisory, package and architecture
/// are its identity (no write changes them) — so an entry re-read with the
/// same `Held` is the same entry, and is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    advisory: u32,
    source_package: u32,
    first_seen: i64,
}

impl Held {
    fn of(advisory: u32, e: &Entry) -> Self {
        Held {
            advisory,
            source_package: e.source_package,
            first_seen: e.first_seen,
        }
    }
}

/// What [`OpenFindings::refresh`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Rows read (every open finding on the first build; the changed
    /// assets' open findings after).
    pub rows: usize,
    /// Whether this was the first build.
    pub cold: bool,
}

/// The order of an advisory's entries.
fn by_first_seen(e: &Entry) -> (i64, i64) {
    (e.first_seen, e.id)
}

impl OpenFindings {
    /// Open findings held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// An estimate of the resident bytes of the projection (entries, the id
    /// index, the per-asset ids and the interned strings).
    pub fn resident_bytes(&self) -> usize {
        let map = |cap: usize, item: usize| cap * (item + 1) * 8 / 7;
        self.lists
            .iter()
            .map(|l| l.capacity() * std::mem::size_of::<Entry>())
            .sum::<usize>()
            + self.lists.capacity() * std::mem::size_of::<Vec<Entry>>()
            + map(self.held.capacity(), 8 + std::mem::size_of::<Held>())
            + map(
                self.per_asset.capacity(),
                8 + std::mem::size_of::<Vec<i64>>(),
            )
            + self
                .per_asset
                .values()
                .map(|v| v.capacity() * 8)
                .sum::<usize>()
            + [&self.advisories, &self.strings]
                .iter()
                .map(|i| {
                    i.names.iter().map(|n| n.len() + 16).sum::<usize>()
                        + map(i.ids.capacity(), 20)
                        + i.names.capacity() * 16
                })
                .sum::<usize>()
    }

    /// The entry of a key and the advisory (list) it belongs in.
    fn entry_of(&mut self, k: &FindingKey) -> Result<(u32, Entry), AppError> {
        let first_seen = patchbay_store::from_millis(k.first_seen_ms)?;
        let first_seen = first_seen
            .round(jiff::Unit::Second)
            .unwrap_or(first_seen)
            .as_second();
        let advisory = self.advisories.id(&k.advisory_id);
        if self.lists.len() <= advisory as usize {
            self.lists.resize_with(advisory as usize + 1, Vec::new);
        }
        Ok((
            advisory,
            Entry {
                id: k.id,
                asset: k.asset_id,
                first_seen,
                package: self.strings.id(&k.package),
                source_package: self.strings.id(&k.source_package),
                arch: self.strings.id(&k.arch),
            },
        ))
    }

    /// Replaces what is held of the `changed` assets by their open findings
    /// as re-read (`keys`: every open finding of those assets, no other):
    /// findings no longer listed leave, new ones enter, re-read ones whose
    /// entry differs are replaced, and the others are not touched; each
    /// touched advisory's list is put back in order. Returns the entry
    /// changes applied to the lists (a removal or an insertion each; a
    /// replaced entry is one).
    fn replace_assets(&mut self, changed: &[i64], keys: &[FindingKey]) -> Result<usize, AppError> {
        let open = || keys.iter().filter(|k| k.open);
        let listed: std::collections::HashSet<i64> = open().map(|k| k.id).collect();
        let mut ids: HashMap<i64, Vec<i64>> = changed.iter().map(|&a| (a, Vec::new())).collect();
        for k in open() {
            ids.entry(k.asset_id).or_default().push(k.id);
        }
        // (advisory, finding id, its entry there or `None`: leaves it).
        let mut ops: Vec<(u32, i64, Option<Entry>)> = Vec::new();
        for asset in ids.keys() {
            for id in self.per_asset.remove(asset).unwrap_or_default() {
                if !listed.contains(&id)
                    && let Some(h) = self.held.remove(&id)
                {
                    ops.push((h.advisory, id, None));
                }
            }
        }
        for k in open() {
            let (a, e) = self.entry_of(k)?;
            let new = Held::of(a, &e);
            match self.held.insert(k.id, new) {
                Some(old) if old == new => {}
                Some(old) => {
                    if old.advisory != a {
                        // Never happens (a finding keeps its advisory); kept exact anyway.
                        ops.push((old.advisory, k.id, None));
                    }
                    ops.push((a, k.id, Some(e)));
                }
                None => ops.push((a, k.id, Some(e))),
            }
        }
        self.per_asset
            .extend(ids.into_iter().filter(|(_, v)| !v.is_empty()));
        let n = ops.len();
        self.apply(ops);
        Ok(n)
    }

    /// Applies entry changes to the advisories' lists: `Some` inserts or
    /// replaces the finding's entry, `None` removes it; each touched list is
    /// put back in order.
    fn apply(&mut self, mut ops: Vec<(u32, i64, Option<Entry>)>) {
        ops.sort_by_key(|o| o.0);
        for group in ops.chunk_by(|x, y| x.0 == y.0) {
            let list = &mut self.lists[group[0].0 as usize];
            if group.len() <= FEW_CHANGES {
                for &(_, id, new) in group {
                    match (list.iter().position(|e| e.id == id), new) {
                        (Some(i), Some(n)) => list[i] = n,
                        (Some(i), None) => {
                            list.swap_remove(i);
                        }
                        (None, Some(n)) => list.push(n),
                        (None, None) => {}
                    }
                }
            } else {
                let mut by_id: HashMap<i64, Option<Entry>> =
                    group.iter().map(|&(_, id, new)| (id, new)).collect();
                list.retain_mut(|e| match by_id.remove(&e.id) {
                    None => true,
                    Some(Some(n)) => {
                        *e = n;
                        true
                    }
                    Some(None) => false,
                });
                // Ids in the same order as `group` (deterministic).
                for &(_, id, _) in group {
                    if let Some(Some(n)) = by_id.remove(&id) {
                        list.push(n);
                    }
                }
            }
            // Nearly in order already: a stable sort is linear on that.
            list.sort_by_key(by_first_seen);
        }
    }

    /// Drops the entries of assets not in `present`.
    fn drop_assets_not_in(&mut self, present: &HashMap<i64, usize>) {
        if self.per_asset.keys().all(|a| present.contains_key(a)) {
            return;
        }
        for l in &mut self.lists {
            l.retain(|e| present.contains_key(&e.asset));
        }
        self.per_asset.retain(|a, _| present.contains_key(a));
        self.held = self
            .lists
            .iter()
            .enumerate()
            .flat_map(|(a, l)| l.iter().map(move |e| (e.id, Held::of(a as u32, e))))
            .collect();
    }

    /// Brings the projection to the state of `snap`'s transaction: every
    /// open finding on the first call; afterwards, the open findings of the
    /// assets stamped after the last seen sequence.
    pub(crate) async fn refresh(&mut self, snap: &mut Snapshot<'_>) -> Result<Refreshed, AppError> {
        let tx = snap.tx();
        // The counter first: assets stamped later are read again next time
        // (re-reading an asset's open findings twice is harmless).
        let n = tx.findings_seq().await?;
        if !self.built {
            *self = OpenFindings::default();
            // Page by page (by id, in this snapshot): the rows' strings are
            // interned as they come, never all held at once.
            let mut after = i64::MIN;
            loop {
                let keys = tx.open_finding_keys(after, COLD_PAGE).await?;
                for k in keys.iter().filter(|k| k.open) {
                    let (a, e) = self.entry_of(k)?;
                    if let Some(old) = self.held.insert(k.id, Held::of(a, &e)) {
                        // Never happens (ids are read once each); kept exact anyway.
                        self.lists[old.advisory as usize].retain(|x| x.id != k.id);
                    } else {
                        self.per_asset.entry(e.asset).or_default().push(k.id);
                    }
                    self.lists[a as usize].push(e);
                }
                match keys.last() {
                    Some(k) if keys.len() as i64 == COLD_PAGE => after = k.id,
                    _ => break,
                }
            }
            for l in &mut self.lists {
                l.sort_unstable_by_key(by_first_seen);
                l.shrink_to_fit();
            }
            self.built = true;
            self.seen = n;
            return Ok(Refreshed {
                rows: self.len(),
                cold: true,
            });
        }
        if n == self.seen {
            return Ok(Refreshed::default());
        }
        let changed = tx.assets_changed_since(self.seen).await?;
        let keys = tx.open_finding_keys_of_assets(&changed).await?;
        let _ = self.replace_assets(&changed, &keys)?;
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
        let mut phases = Phases::new("worklist");
        self.refresh(snap).await?;
        phases.mark("refresh");
        let now = snap.now();
        let assets = snap.assets().await?;
        phases.mark("assets");
        let index = AssetIndex::new(assets.iter().map(|a| a.id));
        self.drop_assets_not_in(&index.by_id);
        let exceptions = snap.exceptions().await?;
        phases.mark("exceptions");
        let ranker = Ranker::new(policy);

        struct PerAsset {
            groups: Vec<String>,
            /// Its (business impact, exposure): [`class_slot`].
            slot: usize,
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
                    slot: class_slot(impact, exposure),
                }
            })
            .collect();
        let asset_at = |id: i64| index.at(id);
        // The slot of a kept asset's entry (`None`: not ranked).
        let kept_slot = |e: &Entry| -> Option<usize> {
            let pa = &per_asset[asset_at(e.asset)?];
            pa.kept.then_some(pa.slot)
        };
        phases.mark("per-asset");

        // Each advisory's streams: the first entry of each class slot among
        // kept assets (an advisory's walk stops once it met every slot the
        // kept assets have).
        let mut present = [false; SLOTS];
        for pa in per_asset.iter().filter(|pa| pa.kept) {
            present[pa.slot] = true;
        }
        let n_present = present.iter().filter(|&&p| p).count();
        let n_adv = self.advisories.names.len();
        let mut heads: Vec<Stream> = Vec::new();
        let mut wanted_adv = vec![false; n_adv];
        if n_present > 0 {
            for (a, list) in self.lists.iter().enumerate() {
                let mut found = [false; SLOTS];
                let mut n_found = 0;
                for (i, e) in list.iter().enumerate() {
                    let Some(slot) = kept_slot(e) else {
                        continue;
                    };
                    if !found[slot] {
                        found[slot] = true;
                        n_found += 1;
                        heads.push(Stream {
                            advisory: a as u32,
                            slot: slot as u8,
                            at: i as u32,
                        });
                        if n_found == n_present {
                            break;
                        }
                    }
                }
                wanted_adv[a] = n_found > 0;
            }
        }
        phases.mark("streams");

        // The advisories' facts, for the advisories of kept assets' entries.
        let adv_ids: Vec<&str> = (0..n_adv)
            .filter(|&i| wanted_adv[i])
            .map(|i| self.advisories.name(i as u32))
            .collect();
        let enrichment = snap.enrichment_of(adv_ids.iter().copied()).await?;
        phases.mark("enrichment");
        let facts: Vec<Option<ranking::AdvisoryFacts<'_>>> = (0..n_adv)
            .map(|i| wanted_adv[i].then(|| enrichment.advisory(self.advisories.name(i as u32))))
            .collect();
        let excludes = ranker.excludes_anything();
        let active: Vec<patchbay_core::exception::Exception> = exceptions
            .into_iter()
            .filter(|e| e.active_at(now))
            .collect();
        let first_seen = |e: &Entry| Timestamp::from_second(e.first_seen).unwrap_or(now);

        // Each stream's class, and the heap of the streams' next entries.
        let classes: Vec<Class> = heads
            .iter()
            .map(|s| {
                let adv = facts[s.advisory as usize]
                    .as_ref()
                    .expect("a stream's advisory has facts");
                let (impact, exposure) = slot_facts(s.slot as usize);
                ranker.class(&adv.risk_input(impact, exposure, now))
            })
            .collect();
        let mut heap: BinaryHeap<Next> = BinaryHeap::with_capacity(heads.len());
        if limit > 0 {
            for (k, s) in heads.iter().enumerate() {
                // `wanted.line` looks at a line's tier only: a stream of
                // another tier has no line to give.
                if !wanted.tier(classes[k].tier) {
                    continue;
                }
                let e = &self.lists[s.advisory as usize][s.at as usize];
                heap.push(Next {
                    rank: ranker.rank_in(&classes[k], first_seen(e), false, now),
                    stream: k as u32,
                });
            }
        }

        // Merge in rank order: keep lines until `limit` are kept, then every
        // line tied with the last of them (the id decides among those). Kept
        // lines come in rank order, so equal ranks are runs: `runs` holds
        // each run's rank and first line.
        let mut lines: Vec<(u32, u32)> = Vec::new();
        let mut runs: Vec<(Rank, usize)> = Vec::new();
        let mut last: Option<Rank> = None;
        let mut visited = 0usize;
        let mut cur = heap.pop();
        while let Some(Next { rank, stream }) = cur {
            if let Some(l) = &last
                && rank_order(&rank, l) == Ordering::Greater
            {
                break;
            }
            visited += 1;
            let s = &mut heads[stream as usize];
            let list = &self.lists[s.advisory as usize];
            let e = &list[s.at as usize];
            let ai = asset_at(e.asset).expect("a stream's entry has an asset");
            let (a, pa) = (&assets[ai], &per_asset[ai]);
            let package = self.strings.name(e.package);
            let source_package = self.strings.name(e.source_package);
            let excluded =
                excludes && ranker.excluded(&a.name, &pa.groups, package, source_package);
            let rank = Rank { excluded, ..rank };
            let mut keep = !rank.excluded && wanted.line(&rank);
            if keep && !active.is_empty() {
                let adv = facts[s.advisory as usize]
                    .as_ref()
                    .expect("a stream's advisory has facts");
                let f = FindingFacts {
                    asset: &a.name,
                    groups: &pa.groups,
                    advisory: self.advisories.name(s.advisory),
                    cves: adv.cves,
                    package,
                    source_package,
                };
                keep = excepting(&active, &f, now).is_none();
            }
            if keep {
                if runs
                    .last()
                    .is_none_or(|r| rank_order(&r.0, &rank) != Ordering::Equal)
                {
                    runs.push((rank, lines.len()));
                }
                lines.push((s.advisory, s.at));
                if lines.len() == limit {
                    last = Some(rank);
                }
            }
            // The stream's next entry: merged right away while it comes
            // first (a run of one stream costs no heap operation).
            let seen_at = e.first_seen;
            let next = (s.at as usize + 1..list.len())
                .find(|&i| kept_slot(&list[i]) == Some(s.slot as usize));
            cur = match next {
                Some(i) => {
                    s.at = i as u32;
                    let n = Next {
                        // The same first-seen second: the same rank.
                        rank: if list[i].first_seen == seen_at {
                            Rank {
                                excluded: false,
                                ..rank
                            }
                        } else {
                            ranker.rank_in(
                                &classes[stream as usize],
                                first_seen(&list[i]),
                                false,
                                now,
                            )
                        },
                        stream,
                    };
                    match heap.peek_mut() {
                        Some(mut top) if *top > n => Some(std::mem::replace(&mut *top, n)),
                        _ => Some(n),
                    }
                }
                None => heap.pop(),
            };
        }
        drop(heap);
        phases.mark("merge");

        // The name of a line, in pieces: its order is that of the name
        // (`finding_name`), compared without building it.
        let name_parts = |&(adv, at): &(u32, u32)| -> NameParts<'_> {
            let e = &self.lists[adv as usize][at as usize];
            let a = &assets[asset_at(e.asset).unwrap_or_default()];
            NameParts::of(
                &a.name,
                self.advisories.name(adv),
                self.strings.name(e.package),
                self.strings.name(e.arch),
            )
        };
        // Of the last run (tied with the `limit`-th line), only the first by
        // name are kept; the runs before it are kept whole.
        if let Some(&(_, from)) = runs.last()
            && lines.len() > limit
        {
            // Two names of different assets, neither of whose names is a
            // prefix of another asset's, are in the order of the asset names
            // (they differ within them): the assets' byte order decides,
            // and the names are compared in pieces only otherwise.
            let mut by_name: Vec<u32> = (0..assets.len() as u32).collect();
            by_name.sort_unstable_by(|&x, &y| {
                assets[x as usize]
                    .name
                    .as_bytes()
                    .cmp(assets[y as usize].name.as_bytes())
            });
            let mut order = vec![0u32; assets.len()];
            let mut prefix = vec![false; assets.len()];
            for (k, w) in by_name.iter().enumerate() {
                order[*w as usize] = k as u32;
                // A name that is a prefix of others is followed by one of
                // them in byte order.
                prefix[*w as usize] = by_name.get(k + 1).is_some_and(|&n| {
                    assets[n as usize]
                        .name
                        .as_bytes()
                        .starts_with(assets[*w as usize].name.as_bytes())
                });
            }
            let asset_of = |l: &(u32, u32)| {
                let e = &self.lists[l.0 as usize][l.1 as usize];
                asset_at(e.asset).unwrap_or_default()
            };
            let k = limit - from;
            let tail = &mut lines[from..];
            let mut keyed: Vec<(u32, (u32, u32))> =
                tail.iter().map(|l| (asset_of(l) as u32, *l)).collect();
            keyed.select_nth_unstable_by(k - 1, |(x, a), (y, b)| {
                let (x, y) = (*x as usize, *y as usize);
                if x != y && !prefix[x] && !prefix[y] {
                    order[x].cmp(&order[y])
                } else {
                    name_parts(a).cmp(&name_parts(b))
                }
            });
            keyed.truncate(k);
            for (slot, (_, l)) in tail.iter_mut().zip(keyed) {
                *slot = l;
            }
            lines.truncate(limit);
        }
        let mut named: Vec<(Rank, NameParts<'_>, i64)> = Vec::with_capacity(lines.len());
        for (k, &(rank, from)) in runs.iter().enumerate() {
            let to = runs
                .get(k + 1)
                .map_or(lines.len(), |r| r.1)
                .min(lines.len());
            for l in lines.get(from..to).unwrap_or_default() {
                let e = &self.lists[l.0 as usize][l.1 as usize];
                named.push((rank, name_parts(l), e.id));
            }
        }
        named.sort_by(|a, b| rank_order(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
        named.truncate(limit);
        phases.mark("order");

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
        phases.mark("rows-by-id");
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
        phases.mark("lines");
        phases.report(visited, self.len());
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

/// Asset id → position in a request's list of assets: a vector when the ids
/// are dense (they are row ids), else the map.
struct AssetIndex {
    by_id: HashMap<i64, usize>,
    dense: Option<Vec<u32>>,
}

impl AssetIndex {
    fn new(ids: impl Iterator<Item = i64>) -> Self {
        let by_id: HashMap<i64, usize> = ids.enumerate().map(|(i, id)| (id, i)).collect();
        let max_id = by_id.keys().copied().max().unwrap_or(0);
        let min_id = by_id.keys().copied().min().unwrap_or(0);
        let dense = (min_id >= 0 && (max_id as usize) <= 4 * by_id.len() + 1024).then(|| {
            let mut v = vec![u32::MAX; max_id as usize + 1];
            for (&id, &i) in &by_id {
                v[id as usize] = i as u32;
            }
            v
        });
        AssetIndex { by_id, dense }
    }

    fn at(&self, id: i64) -> Option<usize> {
        match &self.dense {
            Some(v) => v
                .get(usize::try_from(id).ok()?)
                .filter(|&&i| i != u32::MAX)
                .map(|&i| i as usize),
            None => self.by_id.get(&id).copied(),
        }
    }
}

/// One asset of the compliance report as of now: its row and policy groups.
pub(crate) struct ReportAsset<'a> {
    pub(crate) row: &'a AssetRow,
    pub(crate) groups: &'a [String],
}

impl OpenFindings {
    /// The compliance report's counts as of `as_of` (a whole second), per
    /// asset of `assets` (by position) — what `patchbay_core::report::
    /// compliance` counts from a full history, without reading it: the open
    /// findings from the projection (refreshed through `snap` first, as for
    /// the worklist), each within SLA, overdue or excepted at `as_of` by its
    /// due date ([`Ranker::rank_in`], one class per advisory and (impact,
    /// exposure)) and the exceptions in force then; the patched ones from
    /// one aggregate of the stored resolved findings
    /// (`resolved_finding_counts`, per package when the policy excludes
    /// anything). Findings the policy excludes are not counted, as
    /// `Snapshot::finding_records` drops them; nor are findings first seen
    /// after `as_of` (rounded to the second, as the history rounds them).
    ///
    /// Not counted as the history would: a finding whose stored resolution
    /// is later than `as_of` (only when the clock went back) — the history
    /// counts it open, this leaves it out.
    pub(crate) async fn compliance_counts(
        &mut self,
        snap: &mut Snapshot<'_>,
        policy: &Policy,
        assets: &[ReportAsset<'_>],
        as_of: Timestamp,
    ) -> Result<Vec<Counts>, AppError> {
        let mut phases = Phases::new("compliance report");
        self.refresh(snap).await?;
        phases.mark("refresh");
        let index = AssetIndex::new(assets.iter().map(|a| a.row.id));
        self.drop_assets_not_in(&index.by_id);
        let active: Vec<patchbay_core::exception::Exception> = snap
            .exceptions()
            .await?
            .into_iter()
            .filter(|e| e.active_at(as_of))
            .collect();
        phases.mark("exceptions");
        let ranker = Ranker::new(policy);
        let excludes = ranker.excludes_anything();
        let slots: Vec<usize> = assets
            .iter()
            .map(|a| {
                let (_, _, impact, exposure) = ranking::facts(a.row);
                class_slot(impact, exposure)
            })
            .collect();
        let asset_at = |id: i64| index.at(id);
        let enrichment = snap
            .enrichment_of(
                self.lists
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| !l.is_empty())
                    .map(|(a, _)| self.advisories.name(a as u32)),
            )
            .await?;
        phases.mark("enrichment");

        let mut counts = vec![Counts::default(); assets.len()];
        let as_of_second = as_of.as_second();
        let mut visited = 0usize;
        for (adv, list) in self.lists.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let advisory = self.advisories.name(adv as u32);
            let facts = enrichment.advisory(advisory);
            let mut classes: [Option<Class>; SLOTS] = [None; SLOTS];
            for e in list {
                let Some(ai) = asset_at(e.asset) else {
                    continue;
                };
                // Not yet detected at `as_of`.
                if e.first_seen > as_of_second {
                    continue;
                }
                visited += 1;
                let a = &assets[ai];
                let package = self.strings.name(e.package);
                let source_package = self.strings.name(e.source_package);
                if excludes && ranker.excluded(&a.row.name, a.groups, package, source_package) {
                    continue;
                }
                if !active.is_empty() {
                    let f = FindingFacts {
                        asset: &a.row.name,
                        groups: a.groups,
                        advisory,
                        cves: facts.cves,
                        package,
                        source_package,
                    };
                    if excepting(&active, &f, as_of).is_some() {
                        counts[ai].add(State::Excepted);
                        continue;
                    }
                }
                let slot = slots[ai];
                let class = classes[slot].get_or_insert_with(|| {
                    let (impact, exposure) = slot_facts(slot);
                    ranker.class(&facts.risk_input(impact, exposure, as_of))
                });
                let first_seen = Timestamp::from_second(e.first_seen).unwrap_or(as_of);
                let due = ranker.rank_in(class, first_seen, false, as_of).due;
                counts[ai].add(if due < as_of {
                    State::Overdue
                } else {
                    State::WithinSla
                });
            }
        }
        phases.mark("open");

        // The resolved findings: first seen and resolved by `as_of` as the
        // history rounds them (to the second, half up: before `as_of` +
        // 500 ms, the times being stored in milliseconds).
        let before = as_of + jiff::SignedDuration::from_millis(500);
        for r in snap.tx().resolved_finding_counts(before, excludes).await? {
            let Some(ai) = asset_at(r.asset_id) else {
                continue;
            };
            let a = &assets[ai];
            if excludes && ranker.excluded(&a.row.name, a.groups, &r.package, &r.source_package) {
                continue;
            }
            counts[ai].patched += u64::try_from(r.count).unwrap_or(0);
        }
        phases.mark("resolved");
        phases.report(visited, self.len());
        Ok(counts)
    }
}

/// A finding's name (`patchbay_core::assess::finding_name`: `F-<asset>-
/// <advisory>-<package>`, `@<path>` for unmanaged software) as the pieces it
/// is made of; ordered as the name would be (byte-wise), without building it.
#[derive(Debug, Clone, Copy)]
struct NameParts<'a> {
    pieces: [&'a [u8]; 7],
}

impl<'a> NameParts<'a> {
    fn of(asset: &'a str, advisory: &'a str, package: &'a str, arch: &'a str) -> Self {
        let (at, path): (&[u8], &[u8]) = match patchbay_core::assess::unmanaged_path(arch) {
            Some(p) => (b"@", p.as_bytes()),
            None => (b"", b""),
        };
        NameParts {
            pieces: [
                asset.as_bytes(),
                b"-",
                advisory.as_bytes(),
                b"-",
                package.as_bytes(),
                at,
                path,
            ],
        }
    }

    /// The order of the concatenations (the common `F-` left out).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.pieces, &other.pieces);
        let (mut i, mut x, mut j, mut y) = (0, 0, 0, 0);
        loop {
            while i < a.len() && x == a[i].len() {
                i += 1;
                x = 0;
            }
            while j < b.len() && y == b[j].len() {
                j += 1;
                y = 0;
            }
            let (sa, sb) = match (a.get(i), b.get(j)) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(sa), Some(sb)) => (&sa[x..], &sb[y..]),
            };
            let n = sa.len().min(sb.len());
            match sa[..n].cmp(&sb[..n]) {
                Ordering::Equal => {
                    x += n;
                    y += n;
                }
                o => return o,
            }
        }
    }
}

/// One advisory's entries on assets of one (business impact, exposure): the
/// position of the next entry to merge.
struct Stream {
    advisory: u32,
    slot: u8,
    at: u32,
}

/// A stream's next entry in the merge's heap: the first in [`rank_order`]
/// on top (then the lower stream, for a deterministic walk).
struct Next {
    rank: Rank,
    stream: u32,
}

impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(&other.rank, &self.rank).then(other.stream.cmp(&self.stream))
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Next {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Next {}

/// Whether `PATCHBAY_WORKLIST_PHASES` is set: read once per process, not
/// per request.
static PHASES_ON: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("PATCHBAY_WORKLIST_PHASES").is_some());

/// Per-phase timings of one request, printed to stderr when
/// `PATCHBAY_WORKLIST_PHASES` is set (for the bench's profile).
struct Phases {
    /// What is timed ("worklist", "compliance report").
    what: &'static str,
    on: bool,
    t: std::time::Instant,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new(what: &'static str) -> Self {
        Phases {
            what,
            on: *PHASES_ON,
            t: std::time::Instant::now(),
            done: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        if self.on {
            let now = std::time::Instant::now();
            self.done
                .push((phase, now.duration_since(self.t).as_secs_f64() * 1e3));
            self.t = now;
        }
    }

    fn report(&self, visited: usize, held: usize) {
        if self.on {
            let parts: Vec<String> = self
                .done
                .iter()
                .map(|(w, ms)| format!("{w} {ms:.1}"))
                .collect();
            eprintln!(
                "{} phases (ms): {}; {visited} of {held} entries visited",
                self.what,
                parts.join(", ")
            );
        }
    }
}

/// (business impact, exposure) pairs.
const SLOTS: usize = BusinessImpact::ALL.len() * Exposure::ALL.len();

/// The slot of a (business impact, exposure) pair: their positions in
/// `ALL`, which are the variants' declaration order.
fn class_slot(i: BusinessImpact, e: Exposure) -> usize {
    i as usize * Exposure::ALL.len() + e as usize
}

/// The (business impact, exposure) of a slot: [`class_slot`]'s inverse.
fn slot_facts(slot: usize) -> (BusinessImpact, Exposure) {
    (
        BusinessImpact::ALL[slot / Exposure::ALL.len()],
        Exposure::ALL[slot % Exposure::ALL.len()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names compared in pieces are ordered as the built names, also when an
    /// asset's or advisory's name is a prefix of another's (the hyphens).
    #[test]
    fn names_in_pieces_order_as_names() {
        let assets = ["web", "web-1", "web-", "we", "a", "web1", ""];
        let advisories = ["DSA-1", "DSA-1-1", "CVE-2024-1", "1", "-"];
        let packages = ["bash", "bash-doc", "b", ""];
        let arches = ["amd64", "all", "unmanaged:/opt/x", "unmanaged:/opt"];
        let mut all = Vec::new();
        for a in assets {
            for v in advisories {
                for p in packages {
                    for r in arches {
                        all.push((a, v, p, r));
                    }
                }
            }
        }
        let name = |&(a, v, p, r): &(&str, &str, &str, &str)| {
            patchbay_core::assess::finding_name(a, v, p, r)
        };
        for x in &all {
            for y in &all {
                let px = NameParts::of(x.0, x.1, x.2, x.3);
                let py = NameParts::of(y.0, y.1, y.2, y.3);
                assert_eq!(px.cmp(&py), name(x).cmp(&name(y)), "{x:?} {y:?}");
            }
        }
    }

    /// Random re-reads of changed assets (findings opened, resolved,
    /// unchanged, a source package or first-seen time changed, even a
    /// finding moving to another advisory; batches on both sides of
    /// `FEW_CHANGES`) leave exactly the open findings of a model, each
    /// advisory's list in (first-seen, id) order, and exact per-asset ids.
    #[test]
    fn replace_assets_keeps_the_open_findings_in_order() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut p = OpenFindings {
            built: true,
            ..Default::default()
        };
        // id → (advisory, asset, first seen in seconds, source package)
        type Model = std::collections::BTreeMap<i64, (String, i64, i64, String)>;
        let mut model: Model = Default::default();
        let (mut changed, mut untouched) = (0, 0);
        for _ in 0..300 {
            // 1–3 assets re-read; each asset owns ids asset * 100 .. + 100.
            let assets: Vec<i64> = (0..1 + next(3)).map(|_| next(9) as i64).collect();
            let mut assets_once = assets.clone();
            assets_once.sort_unstable();
            assets_once.dedup();
            let mut keys = Vec::new();
            let before_model = model.clone();
            for &asset in &assets_once {
                model.retain(|_, v| v.1 != asset);
                let density = [2, 10, 60, 100][next(4) as usize];
                for k in 0..100 {
                    if next(100) >= density {
                        continue;
                    }
                    let id = asset * 100 + k;
                    let advisory = if next(20) == 0 {
                        format!("ADV-{}", next(4))
                    } else {
                        format!("ADV-{}", id % 4)
                    };
                    let first_seen_ms = if next(20) == 0 {
                        next(30) as i64 * 1000 + 400
                    } else {
                        (id % 30) * 1000 + 400
                    };
                    let source_package = format!("src{}", u64::from(next(10) == 0));
                    model.insert(
                        id,
                        (
                            advisory.clone(),
                            asset,
                            first_seen_ms / 1000,
                            source_package.clone(),
                        ),
                    );
                    keys.push(FindingKey {
                        id,
                        asset_id: asset,
                        advisory_id: advisory,
                        package: format!("p{}", id % 3),
                        arch: "amd64".into(),
                        source_package,
                        first_seen_ms,
                        open: true,
                    });
                }
            }
            // The changes the lists must see, from the model alone: a finding
            // gone or new is one; one whose entry differs is one (two when it
            // moved to another advisory's list); an unchanged one is none.
            let mut want = 0;
            for (id, b) in &before_model {
                match model.get(id) {
                    None => want += 1,
                    Some(a) if a.0 != b.0 => want += 2,
                    Some(a) if a != b => want += 1,
                    Some(_) => untouched += 1,
                }
            }
            want += model
                .keys()
                .filter(|id| !before_model.contains_key(id))
                .count();
            let applied = p.replace_assets(&assets, &keys).unwrap();
            assert_eq!(applied, want, "entry changes applied to the lists");
            changed += keys.len();
            let mut held = Model::new();
            for (a, list) in p.lists.iter().enumerate() {
                assert!(
                    list.is_sorted_by_key(by_first_seen),
                    "advisory {a} out of order"
                );
                for e in list {
                    let adv = p.advisories.name(a as u32).to_string();
                    assert_eq!(p.held.get(&e.id), Some(&Held::of(a as u32, e)));
                    let src = p.strings.name(e.source_package).to_string();
                    assert!(
                        held.insert(e.id, (adv, e.asset, e.first_seen, src))
                            .is_none()
                    );
                }
            }
            assert_eq!(held, model);
            assert_eq!(p.len(), model.len());
            let mut ids: HashMap<i64, Vec<i64>> = HashMap::new();
            for (id, (_, asset, _, _)) in &model {
                ids.entry(*asset).or_default().push(*id);
            }
            let mut got = p.per_asset.clone();
            got.values_mut().for_each(|v| v.sort_unstable());
            assert_eq!(got, ids);
        }
        assert!(changed > 5_000, "{changed} rows applied");
        assert!(untouched > 1_000, "{untouched} rows re-read unchanged");
    }

    #[test]
    fn slots_round_trip() {
        let mut seen = [false; SLOTS];
        for &i in BusinessImpact::ALL {
            for &e in Exposure::ALL {
                let s = class_slot(i, e);
                assert!(!seen[s]);
                seen[s] = true;
                assert_eq!(slot_facts(s), (i, e));
            }
        }
    }
}
