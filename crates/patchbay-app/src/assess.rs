//! Assessment: keeping each asset's findings in step with its inventory and the
//! advisory feeds.
//!
//! The advisory [`Index`] is built from the store once per feed generation and
//! shared; an asset is re-assessed when its inventory changes (check-in) and the
//! whole fleet when a feed changes (import). Matching itself is the pure
//! [`patchbay_core::assess`]; this module loads, diffs and stores.

use crate::{App, AppError};
use patchbay_core::assess::{AdvisoryInfo, Assessor, Finding, Index, Target, target_for};
use patchbay_store::{AdvisoryRow, AssetRow, FindingRow, NewFinding, Tx};
use patchbay_version::osv::{Event, Range, RangeKind};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// Brings the stored findings of one asset in line with `current` (inside `tx`).
pub(crate) async fn sync_findings(
    tx: &mut Box<dyn Tx>,
    asset_id: i64,
    existing: Vec<FindingRow>,
    current: &[Finding],
    now: jiff::Timestamp,
) -> Result<SyncStats, AppError> {
    let key = |a: &str, p: &str, arch: &str| (a.to_string(), p.to_string(), arch.to_string());
    let by_key: HashMap<(String, String, String), &FindingRow> = existing
        .iter()
        .map(|r| {
            (
                key(&r.finding.advisory_id, &r.finding.package, &r.finding.arch),
                r,
            )
        })
        .collect();
    let mut stats = SyncStats::default();
    let mut seen = HashSet::new();
    let mut fresh = Vec::new();
    let mut refresh = Vec::new();
    for f in current {
        let k = key(&f.advisory, &f.package, &f.arch);
        let nf = to_new(f);
        match by_key.get(&k) {
            None => {
                fresh.push(nf);
                stats.opened += 1;
            }
            Some(r) if r.resolved_at.is_some() => {
                stats.reopened += 1;
                refresh.push((r.id, nf));
            }
            Some(r) => {
                stats.still_open += 1;
                // Only a change is written: an unchanged open finding costs nothing,
                // so a check-in's cost follows what changed, not what is open.
                if r.finding != nf {
                    refresh.push((r.id, nf));
                }
            }
        }
        seen.insert(k);
    }
    tx.insert_findings(asset_id, &fresh, now).await?;
    tx.refresh_findings(&refresh, now).await?;
    let gone: Vec<i64> = existing
        .iter()
        .filter(|r| r.resolved_at.is_none())
        .filter(|r| {
            !seen.contains(&key(
                &r.finding.advisory_id,
                &r.finding.package,
                &r.finding.arch,
            ))
        })
        .map(|r| r.id)
        .collect();
    stats.resolved = gone.len() as u64;
    tx.resolve_findings(&gone, now).await?;
    Ok(stats)
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
        let generation = tx.feeds_generation().await?;
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

    /// Re-assesses one asset inside `tx` (check-ins, imports, feed changes).
    pub(crate) async fn assess_in(
        &self,
        tx: &mut Box<dyn Tx>,
        asset: &AssetRow,
    ) -> Result<SyncStats, AppError> {
        let Ok(target) = target_for(&asset.facts.os) else {
            return Ok(SyncStats::default());
        };
        self.index_in(tx).await?;
        let packages = tx.packages(asset.id).await?;
        let findings = self.match_packages(&target, &packages);
        let existing = tx.findings_of_asset(asset.id).await?;
        sync_findings(tx, asset.id, existing, &findings, self.now()).await
    }

    /// Re-assesses only the packages a check-in changed (inside `tx`): a finding
    /// depends on its own package's version alone, so the rest of the asset's
    /// findings stand. Feed changes re-assess whole assets (`assess_fleet`).
    pub(crate) async fn assess_changed(
        &self,
        tx: &mut Box<dyn Tx>,
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
        let keys: Vec<(String, String)> = changed.into_iter().collect();
        let existing = tx.findings_of_packages(asset.id, &keys).await?;
        sync_findings(tx, asset.id, existing, &findings, self.now()).await
    }

    /// Re-assesses every asset against the current feeds, one transaction per
    /// asset. Returns the changes and how many (ecosystem, package, version)
    /// triples were evaluated and reused from the fleet-wide cache.
    pub async fn assess_fleet(
        &self,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(SyncStats, u64, u64), AppError> {
        self.index().await?;
        let (e0, r0) = self.matcher_counters();
        let assets = {
            let mut tx = self.store.read().await?;
            tx.list_assets().await?
        };
        let mut total = SyncStats::default();
        for (i, a) in assets.iter().enumerate() {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Assessor)
                .await?;
            total += self.assess_in(&mut tx, a).await?;
            // Findings follow the feeds; the import that moved them is audited.
            tx.commit_unaudited("findings re-assessed after a feed import")
                .await?;
            progress(i + 1, assets.len());
        }
        let (e1, r1) = self.matcher_counters();
        Ok((total, e1 - e0, r1 - r0))
    }

    fn matcher_counters(&self) -> (u64, u64) {
        let c = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        (c.assessor.evaluated, c.assessor.reused)
    }
}
