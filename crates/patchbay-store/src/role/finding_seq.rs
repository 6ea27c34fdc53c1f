//! The findings change sequence (migrations 0130 and 0135, ADR 0023): what
//! the service layer's ranked projection of open findings reads to stay
//! current.
//!
//! Every statement of `role/findings.rs` that inserts, refreshes or resolves
//! findings stamps the *assets* whose findings it changed ([`stamp_assets`]:
//! one `findings_asset_seq` row per asset) with [`next_findings_seq`] — a new
//! value of the one counter row, taken in the writer's transaction. The
//! findings themselves carry no stamp: a resolve or reopen changes no indexed
//! column of `findings` (a HOT update on PostgreSQL, no index entry rewritten
//! on SQLite). On PostgreSQL the counter row's lock orders writers in commit
//! order (a second writer waits at the `UPDATE` until the first commits), on
//! SQLite there is one writer; so a reader that sees counter value N sees
//! every asset stamped ≤ N and, later, only assets stamped > N — and re-reads
//! those assets' open findings. Findings are never deleted except with their
//! asset (`ON DELETE CASCADE`), and assets are never deleted; the projection
//! still drops the entries of assets it no longer finds.

use crate::engine::{
    BATCH_ROWS, Engine, Get, QueryExt, SeparatedExt, SqlTx, all_with_ids_in, opt_ts,
};
use crate::role::findings::findings_where_in;
use crate::{FindingRow, Result};
use async_trait::async_trait;
use sqlx::QueryBuilder;

/// What the projection keeps of a finding: its identity and rank inputs, not
/// its versions (those are read for the lines returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingKey {
    /// Finding id.
    pub id: i64,
    /// Asset id.
    pub asset_id: i64,
    /// Advisory id.
    pub advisory_id: String,
    /// Installed package.
    pub package: String,
    /// Architecture (or the unmanaged path marker).
    pub arch: String,
    /// Source package.
    pub source_package: String,
    /// First detection, milliseconds since the epoch.
    pub first_seen_ms: i64,
    /// Open (not resolved).
    pub open: bool,
}

/// Reads of the findings change sequence.
#[async_trait]
pub trait FindingSeqStore {
    /// The counter: the highest sequence any committed findings write took.
    async fn findings_seq(&mut self) -> Result<i64>;
    /// The keys of at most `limit` open findings with ids above `after`, by
    /// id (the projection's first build reads them page by page).
    async fn open_finding_keys(&mut self, after: i64, limit: i64) -> Result<Vec<FindingKey>>;
    /// The assets whose findings changed after `seq` (stamped later; served
    /// by `findings_asset_seq_seq`), by id.
    async fn assets_changed_since(&mut self, seq: i64) -> Result<Vec<i64>>;
    /// The keys of every open finding of these assets (batched statements,
    /// through the findings' unique key, which leads with the asset).
    async fn open_finding_keys_of_assets(&mut self, assets: &[i64]) -> Result<Vec<FindingKey>>;
    /// The findings with these ids (any state), in batched statements; ids
    /// not found are left out.
    async fn findings_by_ids(&mut self, ids: &[i64]) -> Result<Vec<FindingRow>>;
}

/// Takes the next findings change sequence in the writer's transaction (the
/// counter row stays locked until it commits).
pub(crate) async fn next_findings_seq<DB: Engine>(tx: &mut SqlTx<DB>) -> Result<i64> {
    let r = sqlx::query::<DB>("UPDATE findings_seq SET n = n + 1 WHERE one = 1 RETURNING n")
        .one(tx.conn())
        .await?;
    r.col("n")
}

/// Stamps `assets` (their findings changed in this transaction) with `seq`,
/// taken from [`next_findings_seq`] in the same transaction.
pub(crate) async fn stamp_assets<DB: Engine>(
    tx: &mut SqlTx<DB>,
    seq: i64,
    assets: impl IntoIterator<Item = i64>,
) -> Result<()> {
    let mut assets: Vec<i64> = assets.into_iter().collect();
    assets.sort_unstable();
    assets.dedup();
    for chunk in assets.chunks(BATCH_ROWS / 2) {
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO findings_asset_seq (asset_id, seq) ");
        qb.push_values(chunk, |mut b, a| {
            b.push_arg(*a).push_arg(seq);
        });
        qb.push(" ON CONFLICT (asset_id) DO UPDATE SET seq = excluded.seq");
        qb.build().exec(tx.conn()).await?;
    }
    Ok(())
}

const KEY_COLS: &str = "id, asset_id, advisory_id, package, arch, source_package, first_seen, \
    resolved_at";

fn row_to_key<DB: Engine>(r: &DB::Row) -> Result<FindingKey> {
    Ok(FindingKey {
        id: r.col("id")?,
        asset_id: r.col("asset_id")?,
        advisory_id: r.col("advisory_id")?,
        package: r.col("package")?,
        arch: r.col("arch")?,
        source_package: r.col("source_package")?,
        first_seen_ms: r.col("first_seen")?,
        open: opt_ts(r.col("resolved_at")?)?.is_none(),
    })
}

#[async_trait]
impl<DB: Engine> FindingSeqStore for SqlTx<DB> {
    async fn findings_seq(&mut self) -> Result<i64> {
        let r = sqlx::query::<DB>("SELECT n FROM findings_seq WHERE one = 1")
            .one(self.conn())
            .await?;
        r.col("n")
    }

    async fn open_finding_keys(&mut self, after: i64, limit: i64) -> Result<Vec<FindingKey>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM findings WHERE resolved_at IS NULL AND id > $1 \
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(after)
            .arg(limit)
            .all(self.conn())
            .await?;
        rows.iter().map(row_to_key::<DB>).collect()
    }

    async fn assets_changed_since(&mut self, seq: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query::<DB>(
            "SELECT asset_id FROM findings_asset_seq WHERE seq > $1 ORDER BY asset_id",
        )
        .arg(seq)
        .all(self.conn())
        .await?;
        rows.iter().map(|r| r.col("asset_id")).collect()
    }

    async fn open_finding_keys_of_assets(&mut self, assets: &[i64]) -> Result<Vec<FindingKey>> {
        let head =
            format!("SELECT {KEY_COLS} FROM findings WHERE resolved_at IS NULL AND asset_id");
        all_with_ids_in(self, &head, assets)
            .await?
            .iter()
            .map(row_to_key::<DB>)
            .collect()
    }

    async fn findings_by_ids(&mut self, ids: &[i64]) -> Result<Vec<FindingRow>> {
        findings_where_in(self, "f.id", ids).await
    }
}
