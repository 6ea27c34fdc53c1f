//! Findings and their lifecycle (`findings`).

use crate::engine::{BATCH_ROWS, BuilderExt, Engine, Get, QueryExt, SeparatedExt, SqlTx, opt_ts};
use crate::role::finding_seq::next_findings_seq;
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

/// Most advisory ids [`FindingStore::findings_of_asset_packages`] filters by
/// (binds stay far below both engines' limits next to a chunk of keys).
pub const MAX_ADVISORY_FILTER: usize = 1_000;

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
    /// (served by the `findings_open_advisory` index).
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
    /// Findings of all assets or one, open only or all, ordered by asset, package, advisory.
    async fn list_findings(
        &mut self,
        asset_id: Option<i64>,
        include_resolved: bool,
    ) -> Result<Vec<FindingRow>>;
}

pub(crate) const FINDING_COLS: &str = "f.id, f.asset_id, a.name AS asset_name, f.advisory_id, f.package, f.arch, \
    f.source_package, f.installed_version, f.fixed_version, f.first_seen, f.last_seen, f.resolved_at";

pub(crate) fn row_to_finding<DB: Engine>(r: &DB::Row) -> Result<FindingRow> {
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
        if fs.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
        // 10 parameters per row.
        for chunk in fs.chunks(400) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                 installed_version, fixed_version, first_seen, last_seen, seq) ",
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
                    .push_arg(now)
                    .push_arg(seq);
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
        if fs.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
        // 10 parameters per row.
        for chunk in fs.chunks(400) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                 installed_version, fixed_version, first_seen, last_seen, seq) ",
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
                    .push_arg(now)
                    .push_arg(seq);
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
        if batch.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
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
            qb.push(", seq = ");
            qb.push_arg(seq);
            qb.push(" FROM v WHERE findings.id = v.id");
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn resolve_findings(&mut self, ids: &[i64], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let seq = next_findings_seq(self).await?;
        for chunk in ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("UPDATE findings SET resolved_at = ");
            qb.push_arg(to_millis(now));
            qb.push(", seq = ");
            qb.push_arg(seq);
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
