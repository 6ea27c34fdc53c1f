//! SIEM sinks' cursors into the audit log (`siem_cursors`, issue 15).
//!
//! A SIEM sink forwards every audit entry after its cursor (the last audit
//! sequence number written to its receiver). The cursor is stored, so a
//! restart resumes where the last one stopped instead of losing or
//! repeating the backlog.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// SIEM sinks' stored cursors.
#[async_trait]
pub trait SiemStore {
    /// The audit sequence number sink `name` has forwarded up to, if it has
    /// a cursor.
    async fn siem_cursor(&mut self, name: &str) -> Result<Option<i64>>;
    /// Stores sink `name`'s cursor (it only moves forward).
    async fn set_siem_cursor(&mut self, name: &str, seq: i64, at: Timestamp) -> Result<()>;
}

#[async_trait]
impl<DB: Engine> SiemStore for SqlTx<DB> {
    async fn siem_cursor(&mut self, name: &str) -> Result<Option<i64>> {
        let r = sqlx::query::<DB>("SELECT after_seq FROM siem_cursors WHERE name = $1")
            .arg(name)
            .opt(self.conn())
            .await?;
        r.map(|r| r.col("after_seq")).transpose()
    }

    async fn set_siem_cursor(&mut self, name: &str, seq: i64, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO siem_cursors (name, after_seq, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET after_seq = excluded.after_seq, \
             updated_at = excluded.updated_at WHERE siem_cursors.after_seq < excluded.after_seq",
        )
        .arg(name)
        .arg(seq)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        Ok(())
    }
}
