//! Evidence: verifying and exporting the hash-chained audit trail.
//!
//! Verification reads the raw chain straight from a store (it works offline,
//! against a database, without a running server) and checks every link and
//! content hash, and the server's signatures at checkpoints and at the last
//! signed entry (`patchbay_core::audit`).

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::audit::{Break, Summary, Verifier};
use patchbay_core::auth::Action;
use patchbay_store::Store;
use serde::{Deserialize, Serialize};

/// Entries read per page while verifying or exporting.
pub const PAGE: i64 = 10_000;

/// Verifies the whole audit chain of `store`. `keys`: the public keys to check
/// signatures against (none: the chain only). Calls `progress` with the
/// number of entries checked after each page.
pub async fn verify_audit(
    store: &dyn Store,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    every: i64,
    mut progress: impl FnMut(u64),
) -> Result<Result<Summary, Break>, AppError> {
    let mut v = Verifier::with_keys(keys, every);
    let mut tx = store.read().await?;
    let head = tx.audit_head().await?;
    let mut after = 0;
    let mut seen = 0u64;
    loop {
        let page = tx.audit_entries(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if e.seq > head.0 {
                return Ok(Err(Break::BeyondHead {
                    seq: e.seq,
                    head: head.0,
                }));
            }
            if let Err(b) = v.push(e) {
                return Ok(Err(b));
            }
        }
        seen += page.len() as u64;
        progress(seen);
    }
    let result = v.finish();
    // The head must be the chain's end: entries hidden behind a rewound head,
    // or a head pointing past the stored entries, are tampering too.
    Ok(result.and_then(|s| {
        if s.last_seq != head.0 || (s.entries > 0 && s.last_hash != head.1) {
            Err(Break::HeadMismatch {
                head_seq: head.0,
                last_seq: s.last_seq,
            })
        } else {
            Ok(s)
        }
    }))
}

/// One exported audit entry (JSON Lines): everything needed to re-check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedEntry {
    /// Sequence number.
    pub seq: i64,
    /// Time (RFC 3339).
    pub at: String,
    /// Milliseconds since the epoch (hashed).
    pub at_millis: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome.
    pub outcome: String,
    /// Detail JSON text, as hashed.
    pub detail: String,
    /// Previous hash.
    pub prev_hash: Option<String>,
    /// Hash.
    pub hash: Option<String>,
    /// Server signature over (seq, hash).
    pub sig: Option<String>,
}

impl App {
    /// The audit entries with `from <= at < to`, with their hashes and
    /// signatures (any role).
    pub async fn audit_export(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Vec<ExportedEntry>, AppError> {
        self.require(caller, Action::ReadAudit, ctx).await?;
        if to <= from {
            return Err(AppError::invalid("to: must be after from"));
        }
        let (lo, hi) = (
            patchbay_store::to_millis(from),
            patchbay_store::to_millis(to),
        );
        let mut tx = self.store.read().await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = tx.audit_entries(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page {
                if e.at_millis >= lo && e.at_millis < hi {
                    out.push(ExportedEntry {
                        seq: e.seq,
                        at: patchbay_store::from_millis(e.at_millis)
                            .map(crate::fmt_ts)
                            .unwrap_or_default(),
                        at_millis: e.at_millis,
                        actor: e.actor,
                        action: e.action,
                        target: e.target,
                        outcome: e.outcome,
                        detail: e.detail,
                        prev_hash: e.prev_hash,
                        hash: e.hash,
                        sig: e.sig,
                    });
                }
            }
        }
        Ok(out)
    }
}
