//! Findings and their lifecycle (`findings`).

use crate::engine::{
    BATCH_ROWS, BuilderExt, Engine, Get, QueryExt, SeparatedExt, SqlTx, all_with_ids_in, opt_ts,
};
use crate::role::finding_seq::{next_findings_seq, stamp_assets};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;
use std::collections::{HashMap, HashSet};

/// Most advisory ids [`FindingStore::findings_of_asset_packages`] filters by
/// (binds stay far below both engines' limits next to a chunk of keys).
pub const MAX_ADVISORY_FILTER: usize = 1_000;

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

/// Resolved findings counted by [`FindingStore::resolved_finding_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCount {
    /// Asset id.
    pub asset_id: i64,
    /// Their package ("" unless counted per package).
    pub package: String,
    /// Their source package ("" unless counted per package).
    pub source_package: String,
    /// How many.
    pub count: i64,
}

/// Findings and their lifecycle.
#[async_trait]
pub trait FindingStore {
    /// The resolved findings first seen and resolved before `before`,
    /// counted per asset — per (asset, package, source package) with
    /// `by_package` (what a policy's exclusions look at) — for the
    /// compliance report as of now (`patchbay_app::projection`): one
    /// aggregate, whatever the number of findings.
    async fn resolved_finding_counts(
        &mut self,
        before: Timestamp,
        by_package: bool,
    ) -> Result<Vec<ResolvedCount>>;
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
    /// statements, without reading the findings back: one `UPDATE … WHERE
    /// (package, arch) IN (…) AND (advisory_id, package, arch) NOT IN (the
    /// matches)` resolves the open findings that `current` no longer names,
    /// and one `INSERT … SELECT … ON CONFLICT DO UPDATE` of `current` opens
    /// what is new, reopens what was resolved (keeping its `first_seen`) and
    /// rewrites an open finding only when its versions changed. The lists go
    /// to the engine as one JSON array parameter each ([`Engine::JSON_ROWS`]),
    /// not one bound value per field. The counts come from the statements'
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
    async fn resolved_finding_counts(
        &mut self,
        before: Timestamp,
        by_package: bool,
    ) -> Result<Vec<ResolvedCount>> {
        let keys = if by_package {
            "asset_id, package, source_package"
        } else {
            "asset_id"
        };
        let sql = format!(
            "SELECT {keys}, COUNT(*) AS n FROM findings \
             WHERE resolved_at IS NOT NULL AND resolved_at < $1 AND first_seen < $1 \
             GROUP BY {keys}"
        );
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(to_millis(before))
            .all(self.conn())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ResolvedCount {
                    asset_id: r.col("asset_id")?,
                    package: if by_package {
                        r.col("package")?
                    } else {
                        String::new()
                    },
                    source_package: if by_package {
                        r.col("source_package")?
                    } else {
                        String::new()
                    },
                    count: r.col("n")?,
                })
            })
            .collect()
    }

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
        findings_where_in(self, "f.asset_id", asset_ids).await
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
        if fs.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
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
        stamp_assets(self, seq, fs.iter().map(|(a, _)| *a)).await
    }

    async fn insert_findings(
        &mut self,
        asset_id: i64,
        fs: &[NewFinding],
        now: Timestamp,
    ) -> Result<()> {
        let now = to_millis(now);
        if fs.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
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
        stamp_assets(self, seq, [asset_id]).await
    }

    async fn refresh_findings(
        &mut self,
        batch: &[(i64, NewFinding)],
        now: Timestamp,
    ) -> Result<()> {
        // One statement per chunk: UPDATE … FROM (VALUES …) joins the new
        // values by id (both engines; casts keep PostgreSQL's types exact).
        // 4 binds per row keeps a chunk under SQLite's bind limit.
        if batch.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
        let mut assets = HashSet::new();
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
            qb.push(" FROM v WHERE findings.id = v.id RETURNING findings.asset_id");
            for r in &qb.build().all(self.conn()).await? {
                assets.insert(Get::<i64>::col(r, "asset_id")?);
            }
        }
        stamp_assets(self, seq, assets).await
    }

    async fn resolve_findings(&mut self, ids: &[i64], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
        let mut assets = HashSet::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("UPDATE findings SET resolved_at = ");
            qb.push_arg(to_millis(now));
            qb.push(" WHERE resolved_at IS NULL AND id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(*id);
            }
            qb.push(") RETURNING asset_id");
            for r in &qb.build().all(self.conn()).await? {
                assets.insert(Get::<i64>::col(r, "asset_id")?);
            }
        }
        stamp_assets(self, seq, assets).await
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
        // The matches by key, each once (the last wins).
        let mut matches: HashMap<(&str, &str, &str), &NewFinding> = HashMap::new();
        for f in current {
            matches.insert((&f.advisory_id, &f.package, &f.arch), f);
        }
        let wanted: HashSet<(&str, &str)> = packages
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_str()))
            .collect();
        if let Some((_, p, a)) = matches.keys().find(|k| !wanted.contains(&(k.1, k.2))) {
            return Err(crate::StoreError::Other(format!(
                "sync_package_findings: a finding of package {p} ({a}), which is not among the packages synced"
            )));
        }
        let mut out = PackageSync::default();
        if wanted.is_empty() {
            return Ok(out);
        }
        let pkgs = to_json(&wanted.iter().map(|(p, a)| [*p, *a]).collect::<Vec<_>>())?;
        let keys = to_json(
            &matches
                .keys()
                .map(|(v, p, a)| [*v, *p, *a])
                .collect::<Vec<_>>(),
        )?;
        let of = |n: u32| DB::JSON_ROWS.replace("{}", &format!("${n}"));
        // The asset is stamped with this change number when a row changes
        // (the ranked projection re-reads what changed since it last looked,
        // ADR 0023).
        let seq = next_findings_seq(self).await?;

        // 1. Resolve the open findings of the packages that no match names.
        let mut sql = format!(
            "UPDATE findings SET resolved_at = $3 WHERE asset_id = $4 AND resolved_at IS NULL \
             AND (package, arch) IN (SELECT j.value ->> 0, j.value ->> 1 FROM {}) \
             AND (advisory_id, package, arch) NOT IN \
             (SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM {})",
            of(1),
            of(2)
        );
        if want_resolved {
            sql.push_str(" RETURNING advisory_id, package, arch");
        }
        let q = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(pkgs.clone())
            .arg(keys)
            .arg(at)
            .arg(asset_id);
        if want_resolved {
            for r in &q.all(self.conn()).await? {
                out.resolved_keys
                    .push((r.col("advisory_id")?, r.col("package")?, r.col("arch")?));
            }
            out.resolved = out.resolved_keys.len() as u64;
        } else {
            out.resolved = q.exec(self.conn()).await?.rows_affected();
        }

        // 2. Upsert the matches, counting the packages' findings before and
        // after: the rows added are the ones opened, the resolved ones fewer
        // by the ones reopened.
        if matches.is_empty() {
            if out.resolved > 0 {
                stamp_assets(self, seq, [asset_id]).await?;
            }
            return Ok(out);
        }
        let (n0, closed0) = self.count_package_findings(asset_id, &pkgs).await?;
        let rows = to_json(
            &matches
                .values()
                .map(|f| {
                    (
                        &f.advisory_id,
                        &f.package,
                        &f.arch,
                        &f.source_package,
                        &f.installed_version,
                        &f.fixed_version,
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        // A still-open finding whose versions are the same is not written
        // (its last_seen stays); the NULL-safe comparison of fixed_version is
        // spelled out for both engines. `WHERE true` lets SQLite parse the
        // upsert after a SELECT.
        let sql = format!(
            "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
             installed_version, fixed_version, first_seen, last_seen) \
             SELECT $2, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, \
             j.value ->> 4, j.value ->> 5, $3, $3 FROM {} WHERE true \
             ON CONFLICT (asset_id, advisory_id, package, arch) DO UPDATE SET \
             source_package = excluded.source_package, \
             installed_version = excluded.installed_version, \
             fixed_version = excluded.fixed_version, \
             last_seen = excluded.last_seen, resolved_at = NULL \
             WHERE findings.resolved_at IS NOT NULL \
             OR findings.source_package <> excluded.source_package \
             OR findings.installed_version <> excluded.installed_version \
             OR findings.fixed_version <> excluded.fixed_version \
             OR (findings.fixed_version IS NULL) <> (excluded.fixed_version IS NULL)",
            of(1)
        );
        let written = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(rows)
            .arg(asset_id)
            .arg(at)
            .exec(self.conn())
            .await?
            .rows_affected();
        if out.resolved > 0 || written > 0 {
            stamp_assets(self, seq, [asset_id]).await?;
        }
        let (n1, closed1) = self.count_package_findings(asset_id, &pkgs).await?;
        out.opened = n1.saturating_sub(n0);
        out.reopened = closed0.saturating_sub(closed1);
        out.still_open = (matches.len() as u64).saturating_sub(out.opened + out.reopened);
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

/// `v` as JSON: the parameter of an [`Engine::JSON_ROWS`].
fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| crate::StoreError::Other(format!("encoding a JSON parameter: {e}")))
}

impl<DB: Engine> SqlTx<DB> {
    /// How many findings an asset's (package, arch) pairs (`packages`, a JSON
    /// array of pairs) have, and how many of them are resolved.
    async fn count_package_findings(
        &mut self,
        asset_id: i64,
        packages: &str,
    ) -> Result<(u64, u64)> {
        let sql = format!(
            "SELECT COUNT(*) AS n, COUNT(resolved_at) AS closed FROM findings WHERE asset_id = $2 \
             AND (package, arch) IN (SELECT j.value ->> 0, j.value ->> 1 FROM {})",
            DB::JSON_ROWS.replace("{}", "$1")
        );
        let r = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(packages)
            .arg(asset_id)
            .one(self.conn())
            .await?;
        let (n, closed): (i64, i64) = (r.col("n")?, r.col("closed")?);
        Ok((n.max(0) as u64, closed.max(0) as u64))
    }
}

/// The findings (with their asset's name) whose `column` (`f.id`,
/// `f.asset_id`) is one of `ids`, read [`BATCH_ROWS`] ids per statement.
pub(crate) async fn findings_where_in<DB: Engine>(
    this: &mut SqlTx<DB>,
    column: &'static str,
    ids: &[i64],
) -> Result<Vec<FindingRow>> {
    let head = format!(
        "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE {column}"
    );
    all_with_ids_in(this, &head, ids)
        .await?
        .iter()
        .map(row_to_finding::<DB>)
        .collect()
}
