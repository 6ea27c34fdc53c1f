//! Findings and their lifecycle (`findings`).

use crate::engine::{BATCH_ROWS, BuilderExt, Engine, Get, QueryExt, SeparatedExt, SqlTx, opt_ts};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;
use std::collections::{HashMap, HashSet};

/// Most advisory ids [`FindingStore::findings_of_asset_packages`] filters by
/// (binds stay far below both engines' limits next to a chunk of keys).
pub const MAX_ADVISORY_FILTER: usize = 1_000;

/// Rows per upsert of [`FindingStore::sync_package_findings`]: 9 binds per row
/// stays under SQLite's 32,766 bound parameters (PostgreSQL allows 65,535).
pub const SYNC_UPSERT_ROWS: usize = 3_600;

/// Binds one resolve statement of [`FindingStore::sync_package_findings`] may
/// use (2 per package, 3 per finding still matched, and 2 more), under
/// SQLite's 32,766.
const SYNC_RESOLVE_BINDS: usize = 32_000;

/// What [`FindingStore::sync_package_findings`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSync {
    /// New findings.
    pub opened: u64,
    /// Resolved findings matched again.
    pub reopened: u64,
    /// Open findings no longer matched.
    pub resolved: u64,
    /// Open findings still matched.
    pub still_open: u64,
    /// (advisory, package, arch) of the resolved findings, when asked for.
    pub resolved_keys: Vec<(String, String, String)>,
}

/// A finding as computed by an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    /// Advisory id.
    pub advisory_id: String,
    /// Installed package.
    pub package: String,
    /// Architecture.
    pub arch: String,
    /// Source package.
    pub source_package: String,
    /// Installed version.
    pub installed_version: String,
    /// Fixed version.
    pub fixed_version: Option<String>,
}

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    /// Id.
    pub id: i64,
    /// Asset id.
    pub asset_id: i64,
    /// Asset name.
    pub asset_name: String,
    /// The finding.
    pub finding: NewFinding,
    /// First detection.
    pub first_seen: Timestamp,
    /// Last detection.
    pub last_seen: Timestamp,
    /// When a later inventory showed it fixed.
    pub resolved_at: Option<Timestamp>,
}

/// Findings and their lifecycle.
#[async_trait]
pub trait FindingStore {
    /// Every finding of an asset, open and resolved.
    async fn findings_of_asset(&mut self, asset_id: i64) -> Result<Vec<FindingRow>>;
    /// The findings (open and resolved) of an asset's given (package, arch) pairs.
    async fn findings_of_packages(
        &mut self,
        asset_id: i64,
        packages: &[(String, String)],
    ) -> Result<Vec<FindingRow>>;
    /// Every finding (open and resolved) of the given assets, in batched statements.
    async fn findings_of_assets(&mut self, asset_ids: &[i64]) -> Result<Vec<FindingRow>>;
    /// The open findings of the given advisories, in batched statements
    /// (served by the `findings_advisory` index, migration 0125).
    async fn open_findings_of_advisories(&mut self, ids: &[String]) -> Result<Vec<FindingRow>>;
    /// The findings (open and resolved) of the given (asset, package, arch)
    /// triples, in batched statements (served by the `findings_package` index);
    /// only of the given advisories unless `advisories` is empty (at most
    /// [`MAX_ADVISORY_FILTER`] ids).
    async fn findings_of_asset_packages(
        &mut self,
        keys: &[(i64, String, String)],
        advisories: &[String],
    ) -> Result<Vec<FindingRow>>;
    /// Inserts new open findings of several assets in batched statements.
    async fn insert_findings_of_assets(
        &mut self,
        fs: &[(i64, NewFinding)],
        now: Timestamp,
    ) -> Result<()>;
    /// Inserts new open findings in batched statements.
    async fn insert_findings(
        &mut self,
        asset_id: i64,
        fs: &[NewFinding],
        now: Timestamp,
    ) -> Result<()>;
    /// Marks findings as seen now with new versions (and reopens resolved ones),
    /// in one statement per distinct (installed, fixed, source) triple.
    async fn refresh_findings(&mut self, batch: &[(i64, NewFinding)], now: Timestamp)
    -> Result<()>;
    /// Resolves findings.
    async fn resolve_findings(&mut self, ids: &[i64], now: Timestamp) -> Result<()>;
    /// Brings the findings of an asset's given (package, arch) pairs in line
    /// with `current` (what matches those packages now) in set-based
    /// statements, without reading the findings back: open findings of the
    /// packages that `current` no longer names are resolved (one `UPDATE …
    /// WHERE (package, arch) IN (…) AND NOT EXISTS (…)` per chunk), and
    /// `current` is upserted (one multi-row `INSERT … ON CONFLICT DO UPDATE`
    /// per [`SYNC_UPSERT_ROWS`] rows) that opens what is new, reopens what was
    /// resolved (keeping its `first_seen`) and rewrites an open finding only
    /// when its versions changed. The counts come from the statements'
    /// affected rows and two counts of the packages' findings. With
    /// `want_resolved`, the keys of the findings resolved are returned
    /// (`RETURNING`). Every finding of `current` must be of one of
    /// `packages`; a key named twice counts once (the last wins).
    async fn sync_package_findings(
        &mut self,
        asset_id: i64,
        packages: &[(String, String)],
        current: &[NewFinding],
        now: Timestamp,
        want_resolved: bool,
    ) -> Result<PackageSync>;
    /// Findings of all assets or one, open only or all, ordered by asset, package, advisory.
    async fn list_findings(
        &mut self,
        asset_id: Option<i64>,
        include_resolved: bool,
    ) -> Result<Vec<FindingRow>>;
}

const FINDING_COLS: &str = "f.id, f.asset_id, a.name AS asset_name, f.advisory_id, f.package, f.arch, \
    f.source_package, f.installed_version, f.fixed_version, f.first_seen, f.last_seen, f.resolved_at";

fn row_to_finding<DB: Engine>(r: &DB::Row) -> Result<FindingRow> {
    Ok(FindingRow {
        id: r.col("id")?,
        asset_id: r.col("asset_id")?,
        asset_name: r.col("asset_name")?,
        finding: NewFinding {
            advisory_id: r.col("advisory_id")?,
            package: r.col("package")?,
            arch: r.col("arch")?,
            source_package: r.col("source_package")?,
            installed_version: r.col("installed_version")?,
            fixed_version: r.col("fixed_version")?,
        },
        first_seen: from_millis(r.col("first_seen")?)?,
        last_seen: from_millis(r.col("last_seen")?)?,
        resolved_at: opt_ts(r.col("resolved_at")?)?,
    })
}

#[async_trait]
impl<DB: Engine> FindingStore for SqlTx<DB> {
    async fn findings_of_asset(&mut self, asset_id: i64) -> Result<Vec<FindingRow>> {
        let sql = format!(
            "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE f.asset_id = $1 \
             ORDER BY f.package, f.arch, f.advisory_id"
        );
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(asset_id)
            .all(self.conn())
            .await?;
        rows.iter().map(row_to_finding::<DB>).collect()
    }

    async fn findings_of_packages(
        &mut self,
        asset_id: i64,
        packages: &[(String, String)],
    ) -> Result<Vec<FindingRow>> {
        let mut out = Vec::new();
        for chunk in packages.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE f.asset_id = "
            ));
            qb.push_arg(asset_id);
            qb.push(" AND (f.package, f.arch) IN (");
            let mut sep = qb.separated(", ");
            for (name, arch) in chunk {
                sep.push("(");
                sep.push_arg_unseparated(name.clone());
                sep.push_unseparated(", ");
                sep.push_arg_unseparated(arch.clone());
                sep.push_unseparated(")");
            }
            qb.push(")");
            let rows = qb.build().all(self.conn()).await?;
            for r in &rows {
                out.push(row_to_finding::<DB>(r)?);
            }
        }
        Ok(out)
    }

    async fn findings_of_assets(&mut self, asset_ids: &[i64]) -> Result<Vec<FindingRow>> {
        let mut out = Vec::new();
        for chunk in asset_ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE f.asset_id IN ("
            ));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(*id);
            }
            qb.push(")");
            for r in &qb.build().all(self.conn()).await? {
                out.push(row_to_finding::<DB>(r)?);
            }
        }
        Ok(out)
    }

    async fn open_findings_of_advisories(&mut self, ids: &[String]) -> Result<Vec<FindingRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id \
                 WHERE f.resolved_at IS NULL AND f.advisory_id IN ("
            ));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(id.clone());
            }
            qb.push(")");
            for r in &qb.build().all(self.conn()).await? {
                out.push(row_to_finding::<DB>(r)?);
            }
        }
        out.sort_by(|a, b| {
            (
                &a.asset_name,
                &a.finding.package,
                &a.finding.arch,
                &a.finding.advisory_id,
            )
                .cmp(&(
                    &b.asset_name,
                    &b.finding.package,
                    &b.finding.arch,
                    &b.finding.advisory_id,
                ))
        });
        Ok(out)
    }

    async fn findings_of_asset_packages(
        &mut self,
        keys: &[(i64, String, String)],
        advisories: &[String],
    ) -> Result<Vec<FindingRow>> {
        if advisories.len() > MAX_ADVISORY_FILTER {
            return Err(crate::StoreError::Other(format!(
                "findings_of_asset_packages: {} advisory ids, at most {MAX_ADVISORY_FILTER}",
                advisories.len()
            )));
        }
        let mut out = Vec::new();
        // 3 binds per key, plus the advisory ids.
        for chunk in keys.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id \
                 WHERE (f.asset_id, f.package, f.arch) IN ("
            ));
            let mut sep = qb.separated(", ");
            for (asset_id, name, arch) in chunk {
                sep.push("(");
                sep.push_arg_unseparated(*asset_id);
                sep.push_unseparated(", ");
                sep.push_arg_unseparated(name.clone());
                sep.push_unseparated(", ");
                sep.push_arg_unseparated(arch.clone());
                sep.push_unseparated(")");
            }
            qb.push(")");
            if !advisories.is_empty() {
                qb.push(" AND f.advisory_id IN (");
                let mut sep = qb.separated(", ");
                for a in advisories {
                    sep.push_arg(a.clone());
                }
                qb.push(")");
            }
            for r in &qb.build().all(self.conn()).await? {
                out.push(row_to_finding::<DB>(r)?);
            }
        }
        Ok(out)
    }

    async fn insert_findings_of_assets(
        &mut self,
        fs: &[(i64, NewFinding)],
        now: Timestamp,
    ) -> Result<()> {
        let now = to_millis(now);
        // 9 parameters per row.
        for chunk in fs.chunks(400) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                 installed_version, fixed_version, first_seen, last_seen) ",
            );
            qb.push_values(chunk, |mut b, (asset_id, f)| {
                b.push_arg(*asset_id)
                    .push_arg(f.advisory_id.clone())
                    .push_arg(f.package.clone())
                    .push_arg(f.arch.clone())
                    .push_arg(f.source_package.clone())
                    .push_arg(f.installed_version.clone())
                    .push_arg(f.fixed_version.clone())
                    .push_arg(now)
                    .push_arg(now);
            });
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn insert_findings(
        &mut self,
        asset_id: i64,
        fs: &[NewFinding],
        now: Timestamp,
    ) -> Result<()> {
        let now = to_millis(now);
        // 9 parameters per row.
        for chunk in fs.chunks(400) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                 installed_version, fixed_version, first_seen, last_seen) ",
            );
            qb.push_values(chunk, |mut b, f| {
                b.push_arg(asset_id)
                    .push_arg(f.advisory_id.clone())
                    .push_arg(f.package.clone())
                    .push_arg(f.arch.clone())
                    .push_arg(f.source_package.clone())
                    .push_arg(f.installed_version.clone())
                    .push_arg(f.fixed_version.clone())
                    .push_arg(now)
                    .push_arg(now);
            });
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn refresh_findings(
        &mut self,
        batch: &[(i64, NewFinding)],
        now: Timestamp,
    ) -> Result<()> {
        // One statement per chunk: UPDATE … FROM (VALUES …) joins the new
        // values by id (both engines; casts keep PostgreSQL's types exact).
        // 4 binds per row keeps a chunk under SQLite's bind limit.
        for chunk in batch.chunks(BATCH_ROWS / 2) {
            let mut qb = QueryBuilder::<DB>::new("WITH v(id, iv, fv, sp) AS (VALUES ");
            let mut sep = qb.separated(", ");
            for (id, f) in chunk {
                sep.push("(CAST(");
                sep.push_arg_unseparated(*id);
                sep.push_unseparated(" AS BIGINT), CAST(");
                sep.push_arg_unseparated(&f.installed_version);
                sep.push_unseparated(" AS TEXT), CAST(");
                sep.push_arg_unseparated(&f.fixed_version);
                sep.push_unseparated(" AS TEXT), CAST(");
                sep.push_arg_unseparated(&f.source_package);
                sep.push_unseparated(" AS TEXT))");
            }
            qb.push(
                ") UPDATE findings SET installed_version = v.iv, fixed_version = v.fv, \
                 source_package = v.sp, resolved_at = NULL, last_seen = ",
            );
            qb.push_arg(to_millis(now));
            qb.push(" FROM v WHERE findings.id = v.id");
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn resolve_findings(&mut self, ids: &[i64], now: Timestamp) -> Result<()> {
        for chunk in ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("UPDATE findings SET resolved_at = ");
            qb.push_arg(to_millis(now));
            qb.push(" WHERE resolved_at IS NULL AND id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(*id);
            }
            qb.push(")");
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn sync_package_findings(
        &mut self,
        asset_id: i64,
        packages: &[(String, String)],
        current: &[NewFinding],
        now: Timestamp,
        want_resolved: bool,
    ) -> Result<PackageSync> {
        let at = to_millis(now);
        // The matches by package, each key once (the last wins).
        let mut by_package: HashMap<(&str, &str), HashMap<&str, &NewFinding>> = HashMap::new();
        for f in current {
            by_package
                .entry((f.package.as_str(), f.arch.as_str()))
                .or_default()
                .insert(f.advisory_id.as_str(), f);
        }
        let wanted: HashSet<(&str, &str)> = packages
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_str()))
            .collect();
        if let Some((p, a)) = by_package.keys().find(|k| !wanted.contains(*k)) {
            return Err(crate::StoreError::Other(format!(
                "sync_package_findings: a finding of package {p} ({a}), which is not among the packages synced"
            )));
        }
        let mut out = PackageSync::default();

        // 1. Resolve the open findings of the packages that no match names;
        // packages chunked so that a statement's binds stay under the limit
        // (a package whose matches alone exceed it is resolved by id).
        let mut chunks: Vec<Vec<(&str, &str)>> = Vec::new();
        let mut alone: Vec<(&str, &str)> = Vec::new();
        let (mut chunk, mut binds) = (Vec::new(), 2);
        for k in wanted.iter().copied() {
            let cost = 2 + 3 * by_package.get(&k).map_or(0, HashMap::len);
            if 2 + cost > SYNC_RESOLVE_BINDS {
                alone.push(k);
                continue;
            }
            if binds + cost > SYNC_RESOLVE_BINDS {
                chunks.push(std::mem::take(&mut chunk));
                binds = 2;
            }
            chunk.push(k);
            binds += cost;
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        for chunk in &chunks {
            let kept: Vec<(&str, &str, &str)> = chunk
                .iter()
                .filter_map(|k| by_package.get(k).map(|m| (k, m)))
                .flat_map(|(k, m)| m.keys().map(move |adv| (*adv, k.0, k.1)))
                .collect();
            let mut qb = QueryBuilder::<DB>::new("WITH ");
            push_packages(&mut qb, chunk);
            if !kept.is_empty() {
                qb.push(", m(a, p, r) AS (VALUES ");
                let mut sep = qb.separated(", ");
                for (adv, p, a) in &kept {
                    sep.push("(CAST(");
                    sep.push_arg_unseparated(*adv);
                    sep.push_unseparated(" AS TEXT), CAST(");
                    sep.push_arg_unseparated(*p);
                    sep.push_unseparated(" AS TEXT), CAST(");
                    sep.push_arg_unseparated(*a);
                    sep.push_unseparated(" AS TEXT))");
                }
                qb.push(")");
            }
            qb.push(" UPDATE findings SET resolved_at = ");
            qb.push_arg(at);
            qb.push(" WHERE asset_id = ");
            qb.push_arg(asset_id);
            qb.push(" AND resolved_at IS NULL AND (package, arch) IN (SELECT p, r FROM k)");
            if !kept.is_empty() {
                // An uncorrelated NOT IN: both engines build the set once
                // (SQLite an ephemeral index, PostgreSQL a hashed subplan).
                qb.push(" AND (advisory_id, package, arch) NOT IN (SELECT a, p, r FROM m)");
            }
            if want_resolved {
                qb.push(" RETURNING advisory_id, package, arch");
                for r in &qb.build().all(self.conn()).await? {
                    out.resolved_keys.push((
                        r.col("advisory_id")?,
                        r.col("package")?,
                        r.col("arch")?,
                    ));
                    out.resolved += 1;
                }
            } else {
                out.resolved += qb.build().exec(self.conn()).await?.rows_affected();
            }
        }
        for (p, a) in alone {
            let rows = sqlx::query::<DB>(
                "SELECT id, advisory_id FROM findings WHERE asset_id = $1 AND package = $2 \
                 AND arch = $3 AND resolved_at IS NULL",
            )
            .arg(asset_id)
            .arg(p)
            .arg(a)
            .all(self.conn())
            .await?;
            let kept = &by_package[&(p, a)];
            let mut ids = Vec::new();
            for r in &rows {
                let adv: String = r.col("advisory_id")?;
                if !kept.contains_key(adv.as_str()) {
                    ids.push(r.col("id")?);
                    if want_resolved {
                        out.resolved_keys.push((adv, p.to_string(), a.to_string()));
                    }
                }
            }
            out.resolved += ids.len() as u64;
            self.resolve_findings(&ids, now).await?;
        }

        // 2. Upsert the matches, counting the packages' findings before and
        // after: the rows added are the ones opened, the resolved ones fewer
        // by the ones reopened.
        if by_package.is_empty() {
            return Ok(out);
        }
        let matched: Vec<(&str, &str)> = by_package.keys().copied().collect();
        let (n0, closed0) = self.count_package_findings(asset_id, &matched).await?;
        let rows: Vec<&NewFinding> = by_package
            .values()
            .flat_map(|m| m.values().copied())
            .collect();
        for chunk in rows.chunks(SYNC_UPSERT_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                 installed_version, fixed_version, first_seen, last_seen) ",
            );
            qb.push_values(chunk, |mut b, f| {
                b.push_arg(asset_id)
                    .push_arg(f.advisory_id.as_str())
                    .push_arg(f.package.as_str())
                    .push_arg(f.arch.as_str())
                    .push_arg(f.source_package.as_str())
                    .push_arg(f.installed_version.as_str())
                    .push_arg(&f.fixed_version)
                    .push_arg(at)
                    .push_arg(at);
            });
            // A still-open finding whose versions are the same is not written
            // (its last_seen stays); the NULL-safe comparison of
            // fixed_version is spelled out for both engines.
            qb.push(
                " ON CONFLICT (asset_id, advisory_id, package, arch) DO UPDATE SET \
                 source_package = excluded.source_package, \
                 installed_version = excluded.installed_version, \
                 fixed_version = excluded.fixed_version, \
                 last_seen = excluded.last_seen, resolved_at = NULL \
                 WHERE findings.resolved_at IS NOT NULL \
                 OR findings.source_package <> excluded.source_package \
                 OR findings.installed_version <> excluded.installed_version \
                 OR findings.fixed_version <> excluded.fixed_version \
                 OR (findings.fixed_version IS NULL) <> (excluded.fixed_version IS NULL)",
            );
            qb.build().exec(self.conn()).await?;
        }
        let (n1, closed1) = self.count_package_findings(asset_id, &matched).await?;
        out.opened = n1.saturating_sub(n0);
        out.reopened = closed0.saturating_sub(closed1);
        out.still_open = (rows.len() as u64).saturating_sub(out.opened + out.reopened);
        Ok(out)
    }

    async fn list_findings(
        &mut self,
        asset_id: Option<i64>,
        include_resolved: bool,
    ) -> Result<Vec<FindingRow>> {
        // Two statements, not `($1 IS NULL OR f.asset_id = $1)`: a planner
        // cannot use the asset index through that `OR`, and one asset's
        // findings would cost a scan of the whole fleet's.
        let rows = match asset_id {
            Some(id) => {
                let sql = format!(
                    "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id \
                     WHERE f.asset_id = $1 AND ($2 OR f.resolved_at IS NULL) \
                     ORDER BY a.name, f.package, f.arch, f.advisory_id"
                );
                sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
                    .arg(id)
                    .arg(include_resolved)
                    .all(self.conn())
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id \
                     WHERE ($1 OR f.resolved_at IS NULL) \
                     ORDER BY a.name, f.package, f.arch, f.advisory_id"
                );
                sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
                    .arg(include_resolved)
                    .all(self.conn())
                    .await?
            }
        };
        rows.iter().map(row_to_finding::<DB>).collect()
    }
}

/// `k(p, r) AS (VALUES …)`: (package, arch) pairs as a CTE, which both
/// engines join through the `findings_package` index (a row-value `IN` list
/// only narrows SQLite's search to the asset).
fn push_packages<DB: Engine>(qb: &mut QueryBuilder<DB>, packages: &[(&str, &str)]) {
    qb.push("k(p, r) AS (VALUES ");
    let mut sep = qb.separated(", ");
    for (p, a) in packages {
        sep.push("(CAST(");
        sep.push_arg_unseparated(*p);
        sep.push_unseparated(" AS TEXT), CAST(");
        sep.push_arg_unseparated(*a);
        sep.push_unseparated(" AS TEXT))");
    }
    qb.push(")");
}

impl<DB: Engine> SqlTx<DB> {
    /// How many findings an asset's given (package, arch) pairs have, and how
    /// many of them are resolved.
    async fn count_package_findings(
        &mut self,
        asset_id: i64,
        packages: &[(&str, &str)],
    ) -> Result<(u64, u64)> {
        let (mut n, mut closed) = (0, 0);
        for chunk in packages.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("WITH ");
            push_packages(&mut qb, chunk);
            qb.push(
                " SELECT COUNT(*) AS n, COUNT(resolved_at) AS closed FROM findings \
                 WHERE asset_id = ",
            );
            qb.push_arg(asset_id);
            qb.push(" AND (package, arch) IN (SELECT p, r FROM k)");
            let r = qb.build().one(self.conn()).await?;
            let (a, b): (i64, i64) = (r.col("n")?, r.col("closed")?);
            n += a.max(0) as u64;
            closed += b.max(0) as u64;
        }
        Ok((n, closed))
    }
}
