//! The audit log: a hash chain, signed at its head (`audit_events`, `audit_head`, `server_keys`).

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use patchbay_core::audit;

/// An audit event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `denied`, `error`.
    pub outcome: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Sequence number.
    pub seq: i64,
    /// The event.
    pub record: AuditRecord,
}

/// The audit log (append-only).
#[async_trait]
pub trait AuditStore {
    /// Appends an event to the hash chain (signed when a signer is given);
    /// returns its sequence number.
    async fn append_audit(
        &mut self,
        rec: &AuditRecord,
        signer: Option<&audit::Signer>,
    ) -> Result<i64>;
    /// Appends an event signed with the key `keyring` holds at the moment
    /// the head is locked (so a write that waited behind a key rotation signs
    /// with the new key).
    async fn append_audit_with(
        &mut self,
        rec: &AuditRecord,
        keyring: &audit::Keyring,
    ) -> Result<i64>;
    /// Appends a key rotation entry (`rec.detail` is the announcement): the
    /// head must carry `old`'s signature, the entry is signed with `new`, and
    /// `keyring` switches to `new` while the head is locked. The caller puts
    /// `old` back if the transaction does not commit.
    async fn append_rotation(
        &mut self,
        rec: &AuditRecord,
        old: &audit::Signer,
        new: std::sync::Arc<audit::Signer>,
        keyring: &audit::Keyring,
    ) -> Result<i64>;
    /// The details (JSON text) of the key rotation entries, oldest first.
    async fn key_announcements(&mut self) -> Result<Vec<String>>;
    /// Raw chain entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(&mut self, after: i64, limit: i64) -> Result<Vec<audit::StoredEntry>>;
    /// The chain's head: last sequence number and hash (hex).
    async fn audit_head(&mut self) -> Result<(i64, String)>;
    /// Seals entries written before the chain existed into it (once, at start);
    /// returns how many.
    async fn seal_legacy_audit(&mut self, signer: Option<&audit::Signer>) -> Result<u64>;
    /// Records a public key the server signs with.
    async fn register_server_key(&mut self, public_hex: &str, at: Timestamp) -> Result<()>;
    /// Recorded public keys (hex), oldest first.
    async fn server_keys(&mut self) -> Result<Vec<String>>;
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn list_audit(&mut self, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
}

fn parse_hash(h: &str) -> Result<[u8; 32]> {
    hex::decode(h)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| StoreError::Other(format!("bad audit hash {h:?}")))
}

#[async_trait]
impl<DB: Engine> AuditStore for SqlTx<DB> {
    async fn append_audit(
        &mut self,
        rec: &AuditRecord,
        signer: Option<&audit::Signer>,
    ) -> Result<i64> {
        append(self, rec, |_| (signer.cloned(), signer.cloned()).into()).await
    }

    async fn append_audit_with(
        &mut self,
        rec: &AuditRecord,
        keyring: &audit::Keyring,
    ) -> Result<i64> {
        append(self, rec, |_| {
            let k = keyring.current();
            (k.as_deref().cloned(), k.as_deref().cloned()).into()
        })
        .await
    }

    async fn append_rotation(
        &mut self,
        rec: &AuditRecord,
        old: &audit::Signer,
        new: std::sync::Arc<audit::Signer>,
        keyring: &audit::Keyring,
    ) -> Result<i64> {
        append(self, rec, |_| {
            keyring.replace(Some(new.clone()));
            (Some(old.clone()), Some((*new).clone())).into()
        })
        .await
    }

    async fn key_announcements(&mut self) -> Result<Vec<String>> {
        let rows = sqlx::query::<DB>(
            "SELECT detail FROM audit_events WHERE action = $1 AND outcome = 'ok' ORDER BY seq",
        )
        .arg(audit::ROTATE_ACTION)
        .all(self.conn())
        .await?;
        rows.iter().map(|r| r.col("detail")).collect()
    }

    async fn audit_entries(&mut self, after: i64, limit: i64) -> Result<Vec<audit::StoredEntry>> {
        // One row per page: the engine aggregates the page into one JSON
        // array (per-row transport costs more than the verification).
        type Raw = (
            i64,
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row = sqlx::query::<DB>(DB::AUDIT_PAGE)
            .arg(after)
            .arg(limit)
            .opt(self.conn())
            .await?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let text: Option<String> = row.col("page")?;
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        let raw: Vec<Raw> = serde_json::from_str(&text)
            .map_err(|e| StoreError::Other(format!("bad audit page: {e}")))?;
        let mut out: Vec<audit::StoredEntry> = raw
            .into_iter()
            .map(
                |(seq, at_millis, actor, action, target, outcome, detail, prev_hash, hash, sig)| {
                    audit::StoredEntry {
                        seq,
                        at_millis,
                        actor,
                        action,
                        target,
                        outcome,
                        detail,
                        prev_hash,
                        hash,
                        sig,
                    }
                },
            )
            .collect();
        // Aggregate order is the engine's business: sort to be sure.
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    async fn audit_head(&mut self) -> Result<(i64, String)> {
        let r = sqlx::query::<DB>("SELECT seq, hash FROM audit_head WHERE id = 1")
            .opt(self.conn())
            .await?
            .ok_or_else(|| StoreError::Other("the audit chain head is missing".into()))?;
        Ok((r.col("seq")?, r.col("hash")?))
    }

    async fn seal_legacy_audit(&mut self, signer: Option<&audit::Signer>) -> Result<u64> {
        let (head, _) = self.audit_head().await?;
        let rows =
            sqlx::query::<DB>("SELECT seq FROM audit_events WHERE hash IS NULL ORDER BY seq")
                .all(self.conn())
                .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        if head != 0 {
            return Err(StoreError::Other(
                "audit entries without a hash exist after the chain started".into(),
            ));
        }
        // Renumber densely (ascending, so each target number is free), then hash.
        let mut prev = audit::GENESIS;
        let mut n: i64 = 0;
        for r in &rows {
            let old: i64 = r.col("seq")?;
            n += 1;
            if old != n {
                sqlx::query::<DB>("UPDATE audit_events SET seq = $1 WHERE seq = $2")
                    .arg(n)
                    .arg(old)
                    .exec(self.conn())
                    .await?;
            }
        }
        let entries = self.audit_entries(0, n).await?;
        for e in &entries {
            let fields = audit::EntryFields {
                seq: e.seq,
                at_millis: e.at_millis,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                outcome: &e.outcome,
                detail: &e.detail,
            };
            let h = audit::entry_hash(&fields, &prev);
            let sig = if e.seq == n {
                signer.map(|s| s.sign_head(e.seq, &h))
            } else {
                None
            };
            sqlx::query::<DB>(
                "UPDATE audit_events SET prev_hash = $1, hash = $2, sig = $3 WHERE seq = $4",
            )
            .arg(hex::encode(prev))
            .arg(hex::encode(h))
            .arg(sig)
            .arg(e.seq)
            .exec(self.conn())
            .await?;
            prev = h;
        }
        sqlx::query::<DB>("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .arg(n)
            .arg(hex::encode(prev))
            .exec(self.conn())
            .await?;
        Ok(n as u64)
    }

    async fn register_server_key(&mut self, public_hex: &str, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>("INSERT INTO server_keys (public_key, created_at) VALUES ($1, $2) ON CONFLICT (public_key) DO NOTHING")
            .arg(public_hex)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn server_keys(&mut self) -> Result<Vec<String>> {
        let rows =
            sqlx::query::<DB>("SELECT public_key FROM server_keys ORDER BY created_at, public_key")
                .all(self.conn())
                .await?;
        rows.iter().map(|r| r.col("public_key")).collect()
    }

    async fn list_audit(&mut self, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query::<DB>(
            "SELECT seq, at, actor, action, target, outcome, detail FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .arg(after)
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.col("detail")?;
                Ok(AuditEntry {
                    seq: r.col("seq")?,
                    record: AuditRecord {
                        at: from_millis(r.col("at")?)?,
                        actor: r.col("actor")?,
                        action: r.col("action")?,
                        target: r.col("target")?,
                        outcome: r.col("outcome")?,
                        detail: serde_json::from_str(&detail)
                            .map_err(|e| StoreError::Other(format!("bad audit detail: {e}")))?,
                    },
                })
            })
            .collect()
    }
}

/// The keys of one append: the one the head must be signed by, and the one
/// that signs the new entry.
struct Keys {
    check: Option<audit::Signer>,
    sign: Option<audit::Signer>,
}

impl From<(Option<audit::Signer>, Option<audit::Signer>)> for Keys {
    fn from((check, sign): (Option<audit::Signer>, Option<audit::Signer>)) -> Self {
        Self { check, sign }
    }
}

/// Appends `rec`; `keys` is asked once the head is locked (given its
/// sequence number).
async fn append<DB: Engine>(
    this: &mut SqlTx<DB>,
    rec: &AuditRecord,
    keys: impl FnOnce(i64) -> Keys + Send,
) -> Result<i64> {
    // Take the head (a row lock until commit on PostgreSQL).
    let head =
        sqlx::query::<DB>("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .opt(this.conn())
            .await?
            .ok_or_else(|| StoreError::Other("the audit chain head is missing".into()))?;
    let seq: i64 = head.col("seq")?;
    let prev_hex: String = head.col("hash")?;
    let prev = parse_hash(&prev_hex)?;
    let Keys { check, sign } = keys(seq);
    let signer = sign.as_ref();
    // Never sign on top of a head this key has not signed: a chain
    // rewritten without the key (re-hashed, signatures dropped) would
    // otherwise be vouched for by the next real signature.
    if let (Some(s), true) = (check.as_ref(), seq > 1) {
        let sig: Option<String> =
            match sqlx::query::<DB>("SELECT sig FROM audit_events WHERE seq = $1")
                .arg(seq - 1)
                .opt(this.conn())
                .await?
            {
                Some(r) => r.col("sig")?,
                None => None,
            };
        if !s.signed_head(seq - 1, &prev, sig.as_deref()) {
            // A replica still holding a key another replica rotated away
            // (ADR 0007): say so, rather than suspecting a rewrite — only
            // when this key itself signed the announcement (an inserted one
            // must not explain a forgery away). The refusal is the same.
            let retired = retired_by(this, s).await?;
            if let Some(at) = retired {
                return Err(StoreError::Integrity(format!(
                    "this server's signing key was retired by the key rotation in audit entry {at}: \
                     install the new DATA_DIR/server-signing.key from the replica that rotated it and restart; \
                     changes are refused until then"
                )));
            }
            return Err(StoreError::Integrity(format!(
                "the audit log's last entry ({}) is not signed by this server's key, so the log may have been \
                 rewritten; changes are refused until it is checked with `patchbay audit verify`",
                seq - 1
            )));
        }
    }
    let detail = rec.detail.to_string();
    let at = to_millis(rec.at);
    let fields = audit::EntryFields {
        seq,
        at_millis: at,
        actor: &rec.actor,
        action: &rec.action,
        target: &rec.target,
        outcome: &rec.outcome,
        detail: &detail,
    };
    let hash = audit::entry_hash(&fields, &prev);
    let hash_hex = hex::encode(hash);
    let sig = signer.map(|s| s.sign_head(seq, &hash));
    sqlx::query::<DB>(
        "INSERT INTO audit_events (seq, at, actor, action, target, outcome, detail, prev_hash, hash, sig) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .arg(seq)
    .arg(at)
    .arg(&rec.actor)
    .arg(&rec.action)
    .arg(&rec.target)
    .arg(&rec.outcome)
    .arg(&detail)
    .arg(&prev_hex)
    .arg(&hash_hex)
    .arg(&sig)
    .exec(this.conn())
    .await?;
    sqlx::query::<DB>("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .arg(&hash_hex)
        .exec(this.conn())
        .await?;
    Ok(seq)
}

/// The key rotation entry that retired `key`, announced under its own
/// signature, if any.
async fn retired_by<DB: Engine>(this: &mut SqlTx<DB>, key: &audit::Signer) -> Result<Option<i64>> {
    let rows = sqlx::query::<DB>(
        "SELECT seq, detail FROM audit_events WHERE action = $1 AND outcome = 'ok' ORDER BY seq",
    )
    .arg(audit::ROTATE_ACTION)
    .all(this.conn())
    .await?;
    for r in rows {
        let detail: String = r.col("detail")?;
        if audit::KeyAnnouncement::from_detail(&detail)
            .is_ok_and(|a| a.signed_by(&key.verifying_key()))
        {
            return Ok(Some(r.col("seq")?));
        }
    }
    Ok(None)
}
