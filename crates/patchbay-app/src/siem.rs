//! SIEM forwarding's reads and cursor (issue 15; the sink itself, with its
//! sockets, queue and backoff, is `patchbay_server::siem`).
//!
//! A sink forwards the **audit log**, not only the outbox's events: every
//! audited change *and* every refused request (`request.denied`, which
//! announces no event) reaches the SIEM. Its position is the audit sequence
//! number last written to the receiver, stored in `siem_cursors`, so a
//! restart or a new leader resumes from there: nothing written after the
//! stored cursor is lost; entries written between the last stored cursor
//! and a crash are sent again (receivers deduplicate on `externalId` /
//! `seq`). A sink without a stored cursor starts at the audit log's head
//! (the history is in `patchbay audit`).

use crate::{App, AppError, SystemActor};
use patchbay_core::siem::Entry;

/// Most entries one read returns.
pub const MAX_BATCH: i64 = 5_000;

impl App {
    /// Sink `name`'s stored cursor; without one, the audit log's head now,
    /// stored as its cursor.
    pub async fn siem_cursor(&self, name: &str) -> Result<i64, AppError> {
        if let Some(c) = self.store.read().await?.siem_cursor(name).await? {
            return Ok(c);
        }
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::Siem).await?;
        let (head, _) = tx.audit_head().await?;
        let c = match tx.siem_cursor(name).await? {
            Some(c) => c,
            None => {
                tx.set_siem_cursor(name, head, now).await?;
                head
            }
        };
        tx.commit_unaudited("SIEM cursor (bookkeeping of audited entries)")
            .await?;
        Ok(c)
    }

    /// Audit entries after sequence number `after`, oldest first, at most
    /// `limit` (1–[`MAX_BATCH`]).
    pub async fn siem_entries(&self, after: i64, limit: i64) -> Result<Vec<Entry>, AppError> {
        let rows = self
            .store
            .read()
            .await?
            .list_audit(after, limit.clamp(1, MAX_BATCH))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Entry {
                seq: r.seq,
                at: r.record.at,
                actor: r.record.actor,
                action: r.record.action,
                target: r.record.target,
                outcome: r.record.outcome,
                detail: r.record.detail,
            })
            .collect())
    }

    /// Stores sink `name`'s cursor: every entry up to `seq` was written to
    /// its receiver (or dropped and counted). It never moves back.
    pub async fn siem_commit(&self, name: &str, seq: i64) -> Result<(), AppError> {
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::Siem).await?;
        tx.set_siem_cursor(name, seq, now).await?;
        tx.commit_unaudited("SIEM cursor (bookkeeping of audited entries)")
            .await
    }
}
