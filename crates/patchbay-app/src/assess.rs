//! Assessment: keeping each asset's findings in step with its inventory and the
//! advisory feeds.
//!
//! The advisory [`Index`] is built from the store once per OSV import generation
//! and shared. An asset is re-assessed when its inventory changes (check-in:
//! only the packages that changed); a feed import re-assesses only what it
//! changed (**delta re-assessment**): [`changed_entries`] compares each
//! imported advisory with its stored version, the import queues the
//! (ecosystem, package, advisory) entries that differ (`assess_pending` table,
//! same transaction), and [`App::assess_pending`] re-matches those packages on
//! the hosts that have them — reading and writing only the findings of the
//! changed advisories — and clears the queue. A finding depends only on its own
//! package's version and one advisory's entries for that package, so this gives
//! exactly what a full re-assessment ([`App::assess_fleet`]) gives. KEV and EPSS imports queue
//! nothing: tiers are derived when findings are read, so they re-tier without
//! re-matching.
//!
//! Fleet-wide work runs in chunks of [`CHUNK_ASSETS`] assets, one write
//! transaction per chunk: the chunk's packages and findings are read in a few
//! batched statements, diffed against the new matches in memory, and only the
//! difference is written (multi-row inserts, batched resolves and reopens).
//! Matching itself is the pure [`patchbay_core::assess`]; this module loads,
//! diffs and stores.

use crate::change::Change;
use crate::{App, AppError};
use patchbay_core::assess::{
    AdvisoryInfo, Assessor, Finding, Index, Target, match_key, target_for, unmanaged_path,
};
use patchbay_core::inventory::Package;
use patchbay_core::inventory::unmanaged::{Ecosystem, Unmanaged};
use patchbay_store::{
    AdvisoryRow, AssetRow, FindingRow, MAX_ADVISORY_FILTER, NewFinding, Reassess, Tx,
};
use patchbay_version::osv::{Event, Range, RangeKind};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// The `arch` of a CSAF finding (`crate::csaf`): the component is a vendor
/// product, not a package build, and OSV re-assessment never touches these
/// rows (nor CSAF matching the others).
pub const CSAF_ARCH: &str = "csaf";

/// Assets per write transaction in fleet-wide re-assessments. SQLite has one
/// writer and a write transaction holds it from its start, so every other
/// write (a check-in that brings a changed inventory, an operator's action,
/// the liveness flush) waits for the chunk under way: the chunk is sized so
/// that wait stays short, not so that statements are as full as possible.
/// Sixteen Debian hosts of ~3,000 findings each are about half a second of
/// work on a 2-core machine (docs/benchmarks.md, "Fleet assessment on the
/// store": the writer's wait during a first assessment, against 250 assets
/// per transaction before).
pub const CHUNK_ASSETS: usize = 16;

/// Assets whose packages and findings are read (and whose difference is
/// written) together inside a chunk's transaction.
const READ_ASSETS: usize = 8;

fn parse_affected(v: &serde_json::Value) -> Vec<StoredAffected> {
    Vec::<StoredAffected>::deserialize(v).unwrap_or_default()
}

/// The (ecosystem, package, advisory id) entries whose affected entries differ
/// between the stored advisories `old` and their new versions `new` (matched by
/// id; an advisory absent from `old` is new, so all its entries changed). Only
/// affected entries decide what matches: a changed summary or CVSS score
/// changes no finding (those are read from the advisory when findings are
/// listed). A finding depends on its package's version and one advisory's
/// entries for that package alone, so re-matching these entries is exactly
/// what a full re-assessment would change.
pub fn changed_entries(old: &[AdvisoryRow], new: &[AdvisoryRow]) -> BTreeSet<Reassess> {
    type Groups = BTreeMap<(String, String), Vec<StoredAffected>>;
    fn groups(v: &serde_json::Value) -> Groups {
        let mut g: Groups = BTreeMap::new();
        for a in parse_affected(v) {
            g.entry((a.ecosystem.clone(), a.package.clone()))
                .or_default()
                .push(a);
        }
        g
    }
    let old: HashMap<&str, &AdvisoryRow> = old.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut out = BTreeSet::new();
    for n in new {
        let after = groups(&n.affected);
        let before = old
            .get(n.id.as_str())
            .map(|o| groups(&o.affected))
            .unwrap_or_default();
        for (k, v) in &after {
            if before.get(k) != Some(v) {
                out.insert((k.0.clone(), k.1.clone(), n.id.clone()));
            }
        }
        for k in before.keys() {
            if !after.contains_key(k) {
                out.insert((k.0.clone(), k.1.clone(), n.id.clone()));
            }
        }
    }
    out
}

/// One affected package of an advisory, as stored (OSV's own shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAffected {
    /// OSV ecosystem.
    pub ecosystem: String,
    /// Package name.
    pub package: String,
    /// Ranges, OSV-shaped.
    #[serde(default)]
    pub ranges: Vec<StoredRange>,
    /// Explicit versions.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// An OSV range as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events: objects with one of `introduced`, `fixed`, `last_affected`, `limit`.
    pub events: Vec<HashMap<String, String>>,
}

impl StoredRange {
    fn to_range(&self) -> Option<Range> {
        let kind = match self.kind.as_str() {
            "ECOSYSTEM" => RangeKind::Ecosystem,
            "SEMVER" => RangeKind::Semver,
            // GIT ranges need the repository to evaluate.
            _ => return None,
        };
        let mut events = Vec::new();
        for e in &self.events {
            for (k, v) in e {
                events.push(match k.as_str() {
                    "introduced" => Event::Introduced(v.clone()),
                    "fixed" => Event::Fixed(v.clone()),
                    "last_affected" => Event::LastAffected(v.clone()),
                    "limit" => Event::Limit(v.clone()),
                    _ => continue,
                });
            }
        }
        Some(Range { kind, events })
    }
}

/// Builds the matching index from stored advisories.
pub fn build_index(rows: &[AdvisoryRow]) -> Index {
    let mut idx = Index::new();
    for r in rows {
        add_row(&mut idx, r);
    }
    idx
}

/// Adds one stored advisory to `idx` (its affected JSON read in place).
fn add_row(idx: &mut Index, r: &AdvisoryRow) {
    let affected = Vec::<StoredAffected>::deserialize(&r.affected).unwrap_or_default();
    idx.add(
        AdvisoryInfo {
            id: r.id.clone(),
            cves: r.cves.clone(),
            cvss: r.cvss_score,
            cvss_vector: r.cvss_vector.clone(),
            summary: r.summary.clone(),
            published: r.published,
            distro_severity: r.severity_source.clone().zip(r.severity.clone()),
        },
        affected
            .into_iter()
            .map(|a| {
                let ranges = a.ranges.iter().filter_map(StoredRange::to_range).collect();
                (a.ecosystem, a.package, ranges, a.versions)
            })
            .collect(),
    );
}

/// Advisories read per page while the server builds its index: only the index
/// grows, one page of rows is held at a time (ADR 0009: all staged advisories
/// held at 56 MB where loading every row at once peaked above 200 MB).
const INDEX_PAGE: u32 = 500;

/// Builds the index from the store, page by page (inside `tx`).
async fn load_index(tx: &mut Box<dyn Tx>) -> Result<Index, AppError> {
    let mut idx = Index::new();
    let mut after = String::new();
    loop {
        let page = tx.advisories_after(&after, INDEX_PAGE).await?;
        for r in &page {
            add_row(&mut idx, r);
        }
        match page.last() {
            Some(last) if page.len() == INDEX_PAGE as usize => after = last.id.clone(),
            _ => return Ok(idx),
        }
    }
}

/// What an assessment changed for one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    /// New findings.
    pub opened: u64,
    /// Resolved findings seen again (e.g. after a downgrade).
    pub reopened: u64,
    /// Findings closed because the inventory shows a fixed version.
    pub resolved: u64,
    /// Findings still open.
    pub still_open: u64,
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, o: Self) {
        self.opened += o.opened;
        self.reopened += o.reopened;
        self.resolved += o.resolved;
        self.still_open += o.still_open;
    }
}

fn to_new(f: &Finding) -> NewFinding {
    NewFinding {
        advisory_id: f.advisory.clone(),
        package: f.package.clone(),
        arch: f.arch.clone(),
        source_package: f.source_package.clone(),
        installed_version: f.installed_version.clone(),
        fixed_version: f.fixed_version.clone(),
    }
}

/// What must be written to bring stored findings in line with new matches.
#[derive(Debug, Default)]
pub(crate) struct FindingsDiff {
    /// Which findings this diff owns: CSAF findings (arch
    /// [`CSAF_ARCH`]) or the OSV ones; the other kind in
    /// `existing` is left alone.
    csaf: bool,
    /// New findings, with their asset.
    fresh: Vec<(i64, NewFinding)>,
    /// Findings to refresh (new versions) or reopen, by id.
    refresh: Vec<(i64, NewFinding)>,
    /// Open findings no longer matched, by id.
    gone: Vec<i64>,
    /// The same, by name (`patchbay_core::assess::finding_name`): an open SLA
    /// breach among them ends (`sla.resolved`).
    gone_names: HashSet<String>,
    stats: SyncStats,
}

impl FindingsDiff {
    /// Adds the difference for one asset: `existing` are its stored findings of
    /// the packages that were matched (all of them, or a subset), `current` the
    /// matches of those same packages. Unchanged open findings cost nothing, so
    /// the writes follow what changed, not what is open.
    /// A diff of CSAF findings.
    pub(crate) fn csaf() -> Self {
        Self {
            csaf: true,
            ..Self::default()
        }
    }

    pub(crate) fn add(
        &mut self,
        asset_id: i64,
        existing: &[&FindingRow],
        current: Vec<NewFinding>,
    ) {
        type Key<'a> = (&'a str, &'a str, &'a str);
        let csaf = self.csaf;
        let existing: Vec<&FindingRow> = existing
            .iter()
            .copied()
            .filter(|r| (r.finding.arch == CSAF_ARCH) == csaf)
            .collect();
        let existing = existing.as_slice();
        fn key(f: &NewFinding) -> Key<'_> {
            (&f.advisory_id, &f.package, &f.arch)
        }
        let by_key: HashMap<Key<'_>, &FindingRow> =
            existing.iter().map(|r| (key(&r.finding), *r)).collect();
        {
            let seen: HashSet<Key<'_>> = current.iter().map(key).collect();
            for r in existing {
                if r.resolved_at.is_none() && !seen.contains(&key(&r.finding)) {
                    self.gone.push(r.id);
                    self.gone_names.insert(patchbay_core::assess::finding_name(
                        &r.asset_name,
                        &r.finding.advisory_id,
                        &r.finding.package,
                        &r.finding.arch,
                    ));
                    self.stats.resolved += 1;
                }
            }
        }
        for nf in current {
            match by_key.get(&key(&nf)).copied() {
                None => {
                    self.fresh.push((asset_id, nf));
                    self.stats.opened += 1;
                }
                Some(r) if r.resolved_at.is_some() => {
                    self.stats.reopened += 1;
                    self.refresh.push((r.id, nf));
                }
                Some(r) => {
                    self.stats.still_open += 1;
                    if r.finding != nf {
                        self.refresh.push((r.id, nf));
                    }
                }
            }
        }
    }

    /// Writes the difference (inside `tx`): multi-row inserts, one statement per
    /// 250 refreshes or reopens, one per 500 resolves. A resolved finding
    /// whose SLA breach was raised ends it: `sla.resolved`, in this
    /// transaction ([`crate::breaches::end_breaches`]).
    pub(crate) async fn apply(
        self,
        tx: &mut Change<'_>,
        now: jiff::Timestamp,
    ) -> Result<SyncStats, AppError> {
        tx.insert_findings_of_assets(&self.fresh, now).await?;
        tx.refresh_findings(&self.refresh, now).await?;
        tx.resolve_findings(&self.gone, now).await?;
        crate::breaches::end_breaches(tx, &self.gone_names, &crate::breaches::Ended::Fixed, now)
            .await?;
        Ok(self.stats)
    }
}

/// Brings the stored findings of one asset in line with `current` (inside `tx`).
pub(crate) async fn sync_findings(
    tx: &mut Change<'_>,
    asset_id: i64,
    existing: Vec<FindingRow>,
    current: &[Finding],
    now: jiff::Timestamp,
) -> Result<SyncStats, AppError> {
    let mut diff = FindingsDiff::default();
    diff.add(
        asset_id,
        &existing.iter().collect::<Vec<_>>(),
        current.iter().map(to_new).collect(),
    );
    diff.apply(tx, now).await
}

/// The outcome of [`App::assess_pending`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeltaAssessment {
    /// What changed in the stored findings.
    pub stats: SyncStats,
    /// Distinct (ecosystem, package) pairs re-assessed.
    pub pairs: u64,
    /// Distinct advisories whose entries for those pairs changed.
    pub advisories: u64,
    /// Assets that have at least one of those packages.
    pub assets: u64,
    /// Installed packages re-matched.
    pub packages: u64,
    /// (ecosystem, package, version) triples evaluated.
    pub evaluated: u64,
    /// Triples answered from the fleet-wide cache.
    pub reused: u64,
}

/// The cached index, the feed generation it was built from, and the matcher whose
/// (ecosystem, package, version) cache is shared by every assessment until the
/// feeds change.
#[derive(Default)]
pub(crate) struct IndexCache {
    generation: Option<i64>,
    index: Arc<Index>,
    assessor: Assessor,
}

impl App {
    /// The advisory index for the current feeds (rebuilt when feeds changed),
    /// read through a read transaction of its own.
    ///
    /// Never call this while a transaction is open in the same call chain: use
    /// [`App::index_in`] with that transaction instead, so no request holds one
    /// pooled connection while waiting for another (a pool of N connections
    /// deadlocks with N such requests).
    pub async fn index(&self) -> Result<Arc<Index>, AppError> {
        let mut tx = self.store.read().await?;
        self.index_in(&mut tx).await
    }

    /// [`App::index`] through the caller's transaction (read or write).
    pub(crate) async fn index_in(&self, tx: &mut Box<dyn Tx>) -> Result<Arc<Index>, AppError> {
        let generation = tx.advisories_generation().await?;
        {
            let c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.generation == Some(generation) {
                return Ok(c.index.clone());
            }
        }
        let index = Arc::new(load_index(tx).await?);
        let mut c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        *c = IndexCache {
            generation: Some(generation),
            index: index.clone(),
            assessor: Assessor::new(),
        };
        Ok(index)
    }

    /// Matches packages with the shared matcher.
    fn match_packages(
        &self,
        target: &Target,
        packages: &[patchbay_core::inventory::Package],
    ) -> Vec<Finding> {
        let mut c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        let index = c.index.clone();
        let (findings, problems) = c.assessor.assess(&index, target, packages);
        for p in problems {
            tracing::debug!(advisory = %p.advisory, problem = %p.message, "advisory skipped while matching");
        }
        findings
    }

    /// Matches software installed outside the package manager (each item in
    /// its own language ecosystem) with the shared matcher.
    fn match_unmanaged(&self, items: &[Unmanaged]) -> Vec<Finding> {
        if items.is_empty() {
            return Vec::new();
        }
        let mut c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        let index = c.index.clone();
        let (findings, problems) = c.assessor.assess_unmanaged(&index, items);
        for p in problems {
            tracing::debug!(advisory = %p.advisory, problem = %p.message, "advisory skipped while matching unmanaged software");
        }
        findings
    }

    /// Re-assesses one asset inside `tx` (check-ins, imports, feed changes):
    /// its packages when its OS has an advisory ecosystem, and its unmanaged
    /// software whatever the OS.
    pub(crate) async fn assess_in(
        &self,
        tx: &mut Change<'_>,
        asset: &AssetRow,
    ) -> Result<SyncStats, AppError> {
        let target = target_for(&asset.facts.os).ok();
        if target.is_none() && asset.facts.unmanaged.is_empty() {
            return Ok(SyncStats::default());
        }
        self.index_in(tx).await?;
        let mut findings = match &target {
            Some(target) => {
                let packages = tx.packages(asset.id).await?;
                self.match_packages(target, &packages)
            }
            None => Vec::new(),
        };
        findings.extend(self.match_unmanaged(&asset.facts.unmanaged));
        let mut existing = tx.findings_of_asset(asset.id).await?;
        if target.is_none() {
            // Without an ecosystem for its OS, the packages' findings stay as
            // they are; only the unmanaged software's are brought in line.
            existing.retain(|f| unmanaged_path(&f.finding.arch).is_some());
        }
        sync_findings(tx, asset.id, existing, &findings, self.now()).await
    }

    /// Re-assesses only an asset's unmanaged software (inside `tx`): a
    /// check-in that changed it, or a feed import that changed a language
    /// ecosystem's advisories. Its findings are those whose `arch` is
    /// `unmanaged:<path>`; the packages' findings are not touched.
    pub(crate) async fn assess_unmanaged_in(
        &self,
        tx: &mut Change<'_>,
        asset: &AssetRow,
    ) -> Result<SyncStats, AppError> {
        self.index_in(tx).await?;
        let findings = self.match_unmanaged(&asset.facts.unmanaged);
        let mut existing = tx.findings_of_asset(asset.id).await?;
        existing.retain(|f| unmanaged_path(&f.finding.arch).is_some());
        sync_findings(tx, asset.id, existing, &findings, self.now()).await
    }

    /// Re-assesses only the packages a check-in changed (inside `tx`): a finding
    /// depends on its own package's version alone, so the rest of the asset's
    /// findings stand. Feed changes re-assess only the pairs they changed
    /// (`assess_pending`).
    pub(crate) async fn assess_changed(
        &self,
        tx: &mut Change<'_>,
        asset: &AssetRow,
        new_packages: &[patchbay_core::inventory::Package],
        delta: &patchbay_core::inventory::PackageDelta,
    ) -> Result<SyncStats, AppError> {
        let Ok(target) = target_for(&asset.facts.os) else {
            return Ok(SyncStats::default());
        };
        if delta.is_empty() {
            return Ok(SyncStats::default());
        }
        self.index_in(tx).await?;
        let changed: HashSet<(String, String)> = delta
            .added
            .iter()
            .chain(&delta.removed)
            .map(|p| (p.name.clone(), p.arch.clone()))
            .collect();
        let subset: Vec<patchbay_core::inventory::Package> = new_packages
            .iter()
            .filter(|p| changed.contains(&(p.name.clone(), p.arch.clone())))
            .cloned()
            .collect();
        let findings = self.match_packages(&target, &subset);
        let current: Vec<NewFinding> = findings.iter().map(to_new).collect();
        let packages: Vec<(String, String)> = changed.into_iter().collect();
        let now = self.now();
        // Only an asset with an SLA breach still open needs the names of the
        // findings resolved (to end the breach: `sla.resolved`).
        let breached = tx
            .any_noted_without(
                "sla.breached",
                "sla.resolved",
                &format!("finding:F-{}-", asset.name),
            )
            .await?;
        let s = tx
            .sync_package_findings(asset.id, &packages, &current, now, breached)
            .await?;
        if !s.resolved_keys.is_empty() {
            let names: HashSet<String> = s
                .resolved_keys
                .iter()
                .map(|(adv, p, a)| patchbay_core::assess::finding_name(&asset.name, adv, p, a))
                .collect();
            crate::breaches::end_breaches(tx, &names, &crate::breaches::Ended::Fixed, now).await?;
        }
        Ok(SyncStats {
            opened: s.opened,
            reopened: s.reopened,
            resolved: s.resolved,
            still_open: s.still_open,
        })
    }

    /// Re-assesses every asset against the current feeds, [`CHUNK_ASSETS`]
    /// assets per transaction (packages and findings read in batches, only the
    /// difference written), and empties the re-assessment queue: everything it
    /// held is covered. Returns the changes and how many (ecosystem, package,
    /// version) triples were evaluated and reused from the fleet-wide cache.
    pub async fn assess_fleet(
        &self,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(SyncStats, u64, u64), AppError> {
        self.assess_fleet_chunked(CHUNK_ASSETS, progress).await
    }

    /// [`App::assess_fleet`] with `chunk_assets` assets per write transaction
    /// (the benchmarks compare chunk sizes in one run).
    #[doc(hidden)]
    pub async fn assess_fleet_chunked(
        &self,
        chunk_assets: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(SyncStats, u64, u64), AppError> {
        let chunk_assets = chunk_assets.max(1);
        let (upto, assets) = {
            let mut tx = self.store.read().await?;
            let (upto, _) = tx.pending_reassessment().await?;
            (upto, tx.list_assets().await?)
        };
        self.index().await?;
        let (e0, r0) = self.matcher_counters();
        let mut total = SyncStats::default();
        let mut done = 0;
        for chunk in assets.chunks(chunk_assets) {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Assessor)
                .await?;
            self.index_in(&mut tx).await?;
            // Read, diff and write a few assets at a time inside the chunk's
            // transaction: a whole chunk's findings at once (~750,000 rows for
            // 250 Debian hosts) costs more in memory traffic than it saves.
            for group in chunk.chunks(READ_ASSETS) {
                let ids: Vec<i64> = group.iter().map(|a| a.id).collect();
                let mut packages: HashMap<i64, Vec<Package>> = HashMap::new();
                for (id, p) in tx.packages_of_assets(&ids).await? {
                    packages.entry(id).or_default().push(p);
                }
                let mut existing: HashMap<i64, Vec<FindingRow>> = HashMap::new();
                for f in tx.findings_of_assets(&ids).await? {
                    existing.entry(f.asset_id).or_default().push(f);
                }
                let mut diff = FindingsDiff::default();
                for a in group {
                    let target = target_for(&a.facts.os).ok();
                    if target.is_none() && a.facts.unmanaged.is_empty() {
                        continue;
                    }
                    let mut found = match &target {
                        Some(target) => {
                            let mut pkgs = packages.remove(&a.id).unwrap_or_default();
                            pkgs.sort();
                            self.match_packages(target, &pkgs)
                        }
                        None => Vec::new(),
                    };
                    found.extend(self.match_unmanaged(&a.facts.unmanaged));
                    let mut old = existing.remove(&a.id).unwrap_or_default();
                    if target.is_none() {
                        old.retain(|f| unmanaged_path(&f.finding.arch).is_some());
                    }
                    diff.add(
                        a.id,
                        &old.iter().collect::<Vec<_>>(),
                        found.iter().map(to_new).collect(),
                    );
                }
                total += diff.apply(&mut tx, self.now()).await?;
            }
            // Findings follow the feeds; the import that moved them is audited.
            tx.commit_unaudited("findings re-assessed after a feed import")
                .await?;
            done += chunk.len();
            progress(done, assets.len());
        }
        if let Some(upto) = upto {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Assessor)
                .await?;
            tx.clear_reassessment(upto).await?;
            tx.commit_unaudited("re-assessment queue emptied by a full re-assessment")
                .await?;
        }
        let (e1, r1) = self.matcher_counters();
        Ok((total, e1 - e0, r1 - r0))
    }

    /// Delta re-assessment: re-matches the (ecosystem, package, advisory)
    /// entries that feed imports queued since the last run, only on the hosts
    /// that have those packages and only against those advisories (reading and
    /// writing only their findings), [`CHUNK_ASSETS`] assets per transaction,
    /// then removes them from the queue. Nothing queued (a KEV or EPSS import,
    /// an unchanged re-import) costs one small read: no index rebuild, no
    /// matching.
    pub async fn assess_pending(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<DeltaAssessment, AppError> {
        self.assess_pending_chunked(CHUNK_ASSETS, progress).await
    }

    /// [`App::assess_pending`] with `chunk_assets` assets per write
    /// transaction (the benchmarks compare chunk sizes in one run).
    #[doc(hidden)]
    pub async fn assess_pending_chunked(
        &self,
        chunk_assets: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<DeltaAssessment, AppError> {
        let chunk_assets = chunk_assets.max(1);
        let (upto, entries) = {
            let mut tx = self.store.read().await?;
            tx.pending_reassessment().await?
        };
        let Some(upto) = upto else {
            return Ok(DeltaAssessment::default());
        };
        // (ecosystem, package) → the advisories whose entries for it changed.
        let mut changed: HashMap<(String, String), HashSet<String>> = HashMap::new();
        let mut advisories = BTreeSet::new();
        for (eco, pkg, adv) in entries {
            advisories.insert(adv.clone());
            changed.entry((eco, pkg)).or_default().insert(adv);
        }
        let mut out = DeltaAssessment {
            pairs: changed.len() as u64,
            advisories: advisories.len() as u64,
            ..Default::default()
        };
        // Few advisories (a feed update): the findings read are only theirs. Many
        // (a first import): all findings of the packages, filtered below.
        let filter: Vec<String> = if advisories.len() <= MAX_ADVISORY_FILTER {
            advisories.into_iter().collect()
        } else {
            Vec::new()
        };
        let names: Vec<String> = changed
            .keys()
            .map(|(_, p)| p.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Candidate hosts, read outside the write transactions; each chunk
        // re-reads its packages inside its own, so a check-in in between is seen.
        let candidates: Vec<i64> = {
            let mut tx = self.store.read().await?;
            let ids: BTreeSet<i64> = tx
                .packages_named(&names, None)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            ids.into_iter().collect()
        };
        let assets: HashMap<i64, AssetRow> = if candidates.is_empty() {
            HashMap::new()
        } else {
            let mut tx = self.store.read().await?;
            let wanted: HashSet<i64> = candidates.iter().copied().collect();
            tx.list_assets()
                .await?
                .into_iter()
                .filter(|a| wanted.contains(&a.id))
                .map(|a| (a.id, a))
                .collect()
        };
        // (ecosystem, package, version) → matches, for this run.
        let mut memo: HashMap<(String, String, String), Arc<Vec<patchbay_core::assess::Match>>> =
            HashMap::new();
        let mut done = 0;
        for chunk in candidates.chunks(chunk_assets) {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Assessor)
                .await?;
            let index = self.index_in(&mut tx).await?;
            // The packages of this chunk that a queued pair names, per asset,
            // and the changed advisories of each (asset, package, arch).
            let mut subset: BTreeMap<i64, (Target, Vec<Package>)> = BTreeMap::new();
            let mut which: HashMap<(i64, String, String), &HashSet<String>> = HashMap::new();
            for (id, p) in tx.packages_named(&names, Some(chunk)).await? {
                let Some(a) = assets.get(&id) else { continue };
                let Ok(target) = target_for(&a.facts.os) else {
                    continue;
                };
                let (name, _) = match_key(&p, target.key_by);
                let Some(advs) = changed.get(&(target.ecosystem.clone(), name.to_string())) else {
                    continue;
                };
                which.insert((id, p.name.clone(), p.arch.clone()), advs);
                subset
                    .entry(id)
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push(p);
            }
            let subset: Vec<(i64, (Target, Vec<Package>))> = subset.into_iter().collect();
            for group in subset.chunks(READ_ASSETS) {
                let keys: Vec<(i64, String, String)> = group
                    .iter()
                    .flat_map(|(id, (_, ps))| {
                        ps.iter().map(|p| (*id, p.name.clone(), p.arch.clone()))
                    })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let mut existing: HashMap<i64, Vec<FindingRow>> = HashMap::new();
                for f in tx.findings_of_asset_packages(&keys, &filter).await? {
                    let k = (
                        f.asset_id,
                        f.finding.package.clone(),
                        f.finding.arch.clone(),
                    );
                    if which
                        .get(&k)
                        .is_some_and(|advs| advs.contains(&f.finding.advisory_id))
                    {
                        existing.entry(f.asset_id).or_default().push(f);
                    }
                }
                let mut diff = FindingsDiff::default();
                for (id, (target, pkgs)) in group {
                    out.assets += 1;
                    out.packages += pkgs.len() as u64;
                    let mut current = Vec::new();
                    for p in pkgs {
                        let (name, version) = match_key(p, target.key_by);
                        let advs = which[&(*id, p.name.clone(), p.arch.clone())];
                        let memo_key = (
                            target.ecosystem.clone(),
                            name.to_string(),
                            version.to_string(),
                        );
                        let matches = match memo.entry(memo_key) {
                            Entry::Occupied(e) => {
                                out.reused += 1;
                                e.get().clone()
                            }
                            Entry::Vacant(e) => {
                                out.evaluated += 1;
                                let (m, problems) = index.match_version(
                                    target.scheme,
                                    &target.ecosystem,
                                    name,
                                    version,
                                );
                                for pr in problems {
                                    tracing::debug!(advisory = %pr.advisory, problem = %pr.message, "advisory skipped while matching");
                                }
                                e.insert(Arc::new(m)).clone()
                            }
                        };
                        for m in matches.iter() {
                            let a = index.advisory(m.advisory);
                            if advs.contains(&a.id) {
                                current.push(NewFinding {
                                    advisory_id: a.id.clone(),
                                    package: p.name.clone(),
                                    arch: p.arch.clone(),
                                    source_package: name.to_string(),
                                    installed_version: p.version.clone(),
                                    fixed_version: m.fixed.clone(),
                                });
                            }
                        }
                    }
                    let old = existing.remove(id).unwrap_or_default();
                    diff.add(*id, &old.iter().collect::<Vec<_>>(), current);
                }
                out.stats += diff.apply(&mut tx, self.now()).await?;
            }
            tx.commit_unaudited("findings re-assessed after a feed import")
                .await?;
            done += chunk.len();
            progress(done, candidates.len());
        }
        // Unmanaged software is not in `asset_packages`: when an import changed
        // a language ecosystem's advisories, every asset that reports
        // unmanaged software has it re-matched (its findings of those items
        // only).
        if changed
            .keys()
            .any(|(eco, _)| Ecosystem::from_osv(eco).is_some())
        {
            let with: Vec<AssetRow> = {
                let mut tx = self.store.read().await?;
                tx.list_assets()
                    .await?
                    .into_iter()
                    .filter(|a| !a.facts.unmanaged.is_empty())
                    .collect()
            };
            for chunk in with.chunks(chunk_assets) {
                let mut tx = self
                    .change_by_system(crate::system::SystemActor::Assessor)
                    .await?;
                for a in chunk {
                    out.assets += 1;
                    out.packages += a.facts.unmanaged.len() as u64;
                    out.stats += self.assess_unmanaged_in(&mut tx, a).await?;
                }
                tx.commit_unaudited("unmanaged software re-assessed after a feed import")
                    .await?;
            }
        }
        let mut tx = self
            .change_by_system(crate::system::SystemActor::Assessor)
            .await?;
        tx.clear_reassessment(upto).await?;
        tx.commit_unaudited("re-assessment queue emptied").await?;
        Ok(out)
    }

    /// The fleet re-assessment as it was before delta re-assessment and
    /// chunking: one transaction per asset, its packages and findings read by
    /// their own statements. Kept as the benchmarks' same-run baseline
    /// (`benches/fleet.rs`); it leaves the re-assessment queue alone.
    #[doc(hidden)]
    pub async fn assess_fleet_per_asset(&self) -> Result<(SyncStats, u64, u64), AppError> {
        self.index().await?;
        let (e0, r0) = self.matcher_counters();
        let assets = {
            let mut tx = self.store.read().await?;
            tx.list_assets().await?
        };
        let mut total = SyncStats::default();
        for a in &assets {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Assessor)
                .await?;
            total += self.assess_in(&mut tx, a).await?;
            tx.commit_unaudited("findings re-assessed after a feed import")
                .await?;
        }
        let (e1, r1) = self.matcher_counters();
        Ok((total, e1 - e0, r1 - r0))
    }

    fn matcher_counters(&self) -> (u64, u64) {
        let c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        (c.assessor.evaluated, c.assessor.reused)
    }
}
