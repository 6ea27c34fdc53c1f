//! The one path for every state change.
//!
//! [`App::change`] opens the write transaction; [`Change::audit`] appends the
//! audit entry *and* enqueues the domain event in the outbox (`events`), both
//! inside that transaction; [`Change::commit`] commits the lot. A change, its
//! audit entry and its event therefore exist together or not at all: nothing
//! is announced for a change that rolled back, and nothing is lost across a
//! restart. `commit` refuses a change that recorded nothing; the few writes
//! that are deliberately not audited (heartbeats, lease renewals, last-use
//! stamps, sealing the chain at start) say so with
//! [`Change::commit_unaudited`], naming why.
//!
//! This module is the only caller of `Store::write` (a test greps for it), so
//! a write that bypasses the audit trail and the outbox does not compile in by
//! accident. Refusals (401/403) are audit entries without an event: they
//! change nothing.

use crate::system::SystemActor;
use crate::{AgentCaller, App, AppError, Caller, RequestCtx};
use patchbay_core::auth::Action;
use patchbay_store::{AuditRecord, NewEvent, Tx};
use std::ops::{Deref, DerefMut};

/// The version of the event payloads written today: the audit detail, as is.
/// The typed, documented event schema (integrations issue) bumps it.
pub const EVENT_VERSION: i32 = 1;

/// A state change in progress: one write transaction, made by one actor.
/// Dropped without [`Change::commit`], it rolls back with everything it
/// recorded.
pub struct Change<'a> {
    app: &'a App,
    tx: Box<dyn Tx>,
    /// Who makes the change: every audit entry it records names this actor,
    /// so an entry cannot claim someone other than the authenticated caller.
    actor: String,
    audited: usize,
    /// Of `audited`, the refusals (entries without an event).
    refusals: usize,
}

impl Deref for Change<'_> {
    type Target = Box<dyn Tx>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for Change<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl App {
    /// Begins a state change by `caller`, who must be permitted `action`
    /// (a refusal is recorded and answered 403, and no transaction is
    /// opened). Validate before calling: the write transaction is exclusive.
    pub(crate) async fn change(
        &self,
        caller: &Caller,
        action: Action,
        ctx: &RequestCtx,
    ) -> Result<Change<'_>, AppError> {
        self.require(caller, action, ctx).await?;
        self.open_change(caller.actor()).await
    }

    /// Begins a state change made by an enrolled agent (its check-in).
    pub(crate) async fn change_by_agent(
        &self,
        agent: &AgentCaller,
    ) -> Result<Change<'_>, AppError> {
        self.open_change(agent.actor()).await
    }

    /// Begins a state change made by Patchbay itself ([`SystemActor`]).
    pub(crate) async fn change_by_system(&self, who: SystemActor) -> Result<Change<'_>, AppError> {
        self.open_change(who.name().to_string()).await
    }

    /// Begins an enrolment, whose actor (the enrolment token) is known only
    /// once the token has been looked up in the transaction: see
    /// [`Change::set_actor`].
    pub(crate) async fn change_for_enrolment(&self) -> Result<Change<'_>, AppError> {
        self.open_change("anonymous".to_string()).await
    }

    pub(crate) async fn open_change(&self, actor: String) -> Result<Change<'_>, AppError> {
        Ok(Change {
            app: self,
            tx: self.store.write().await?,
            actor,
            audited: 0,
            refusals: 0,
        })
    }
}

impl Change<'_> {
    /// Who makes this change (the actor its audit entries name).
    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }

    /// The actor of an enrolment, once its token is known (before anything is
    /// recorded).
    pub(crate) fn set_actor(&mut self, actor: String) {
        debug_assert_eq!(self.audited, 0, "the actor is fixed once recorded");
        if self.audited == 0 {
            self.actor = actor;
        }
    }

    /// Records the change: its audit entry, and its domain event in the outbox
    /// (kind = `action`, subject = `target`, payload = `detail`), in this
    /// transaction, both naming the change's actor.
    pub(crate) async fn audit(
        &mut self,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), AppError> {
        let at = self.app.now();
        let rec = AuditRecord {
            at,
            actor: self.actor.clone(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: "ok".to_string(),
            detail,
        };
        let seq = self.tx.append_audit_with(&rec, &self.app.keyring).await?;
        self.announce(rec, seq).await
    }

    /// Records a key rotation: the audit entry announcing `new` (its detail
    /// is `announcement`, signed by `old`), signed with `new`, and its domain
    /// event; the server's keyring holds `new` from the moment the chain's
    /// head is locked (the caller restores `old` if the change does not
    /// commit).
    pub(crate) async fn rotation(
        &mut self,
        announcement: &patchbay_core::audit::KeyAnnouncement,
        old: &patchbay_core::audit::Signer,
        new: std::sync::Arc<patchbay_core::audit::Signer>,
    ) -> Result<(), AppError> {
        let at = self.app.now();
        let rec = AuditRecord {
            at,
            actor: self.actor.clone(),
            action: patchbay_core::audit::ROTATE_ACTION.to_string(),
            target: format!("server_key:{}", announcement.new_public_key),
            outcome: "ok".to_string(),
            detail: serde_json::to_value(announcement)
                .map_err(|e| AppError::invalid(e.to_string()))?,
        };
        let seq = self
            .tx
            .append_rotation(&rec, old, new, &self.app.keyring)
            .await?;
        self.announce(rec, seq).await
    }

    /// The domain event of audit entry `seq` (`rec`), in the outbox with it.
    async fn announce(&mut self, rec: AuditRecord, seq: i64) -> Result<(), AppError> {
        self.tx
            .enqueue_event(&NewEvent {
                at: rec.at,
                kind: rec.action,
                version: EVENT_VERSION,
                actor: rec.actor,
                subject: rec.target,
                payload: rec.detail,
                audit_seq: seq,
            })
            .await?;
        self.audited += 1;
        Ok(())
    }

    /// Records refused requests: audit entries only (a refusal changes
    /// nothing, so it announces nothing).
    pub(crate) async fn audit_refusals(&mut self, recs: &[AuditRecord]) -> Result<(), AppError> {
        for rec in recs {
            self.tx.append_audit_with(rec, &self.app.keyring).await?;
            self.audited += 1;
            self.refusals += 1;
        }
        Ok(())
    }

    /// Commits. A change that recorded nothing is refused (and rolled back):
    /// every state change is audited.
    pub(crate) async fn commit(self) -> Result<(), AppError> {
        if self.audited == 0 {
            tracing::error!("a state change recorded no audit entry; rolled back");
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Internal,
                "internal error: a state change without an audit entry was refused",
            ));
        }
        let announced = self.audited > self.refusals;
        let bell = self.app.outbox_bell.clone();
        self.tx.commit().await?;
        if announced {
            bell.notify_one();
        }
        Ok(())
    }

    /// Commits a write that is deliberately not audited; `why` names the kind
    /// (a heartbeat, a lease renewal, a last-use stamp, …).
    /// Whatever it did record (a bulk re-assessment ending an SLA breach)
    /// is announced like any commit's.
    pub(crate) async fn commit_unaudited(self, why: &'static str) -> Result<(), AppError> {
        let announced = self.audited > self.refusals;
        let bell = self.app.outbox_bell.clone();
        self.tx.commit().await?;
        if announced {
            bell.notify_one();
        }
        tracing::trace!(why, "committed a deliberately unaudited write");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, SystemActor};
    use crate::{App, AppConfig, Caller, ManualClock};
    use std::path::Path;
    use std::sync::Arc;

    /// The change path is the only way to a write transaction: no source file
    /// of the service layer, the server or the CLI opens one itself.
    #[test]
    fn only_the_change_path_opens_write_transactions() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut offenders = Vec::new();
        let mut scanned = 0;
        for krate in ["patchbay-app", "patchbay-server", "patchbay-cli"] {
            let mut dirs = vec![crates.join(krate).join("src")];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        dirs.push(p);
                    } else if p.extension().is_some_and(|x| x == "rs")
                        && !p.ends_with("src/change.rs")
                    {
                        scanned += 1;
                        let text = std::fs::read_to_string(&p).unwrap();
                        for (i, line) in text.lines().enumerate() {
                            if line.contains(".write().await") || line.contains("store.write()") {
                                offenders.push(format!(
                                    "{}:{}: {}",
                                    p.display(),
                                    i + 1,
                                    line.trim()
                                ));
                            }
                        }
                    }
                }
            }
        }
        assert!(scanned > 30, "scanned {scanned} files");
        assert!(
            offenders.is_empty(),
            "write transactions outside App::change:\n{}",
            offenders.join("\n")
        );
    }

    async fn app() -> App {
        let url = patchbay_store::testing::fresh_sqlite_url();
        let store = patchbay_store::open(&url).await.unwrap();
        let t0 = "2026-12-04T00:00:00Z".parse().unwrap();
        App::new(store, Arc::new(ManualClock::new(t0)), AppConfig::default())
    }

    #[tokio::test]
    async fn a_change_without_an_audit_entry_is_refused_and_rolled_back() {
        let app = app().await;
        let mut c = app.change_by_system(SystemActor::Bootstrap).await.unwrap();
        c.register_server_key(&"ab".repeat(32), app.now())
            .await
            .unwrap();
        assert!(c.commit().await.is_err());
        let mut r = app.store.read().await.unwrap();
        assert!(r.server_keys().await.unwrap().is_empty(), "rolled back");
    }

    #[tokio::test]
    async fn a_caller_without_the_permission_gets_no_transaction() {
        let app = app().await;
        let auditor = Caller {
            principal: crate::auth::Principal::Token {
                id: 2,
                name: "audit".into(),
            },
            role: patchbay_core::auth::Role::Auditor,
            scopes: patchbay_core::auth::Scopes::UNRESTRICTED,
        };
        let ctx = crate::RequestCtx::default();
        let err = app
            .change(&auditor, Action::WriteAssets, &ctx)
            .await
            .err()
            .expect("refused");
        assert_eq!(err.code, patchbay_proto::error::ErrorCode::Forbidden);
        // The refusal is recorded (as denied), nothing else is.
        let mut r = app.store.read().await.unwrap();
        assert_eq!(r.audit_head().await.unwrap().0, 1);
        assert!(r.events_after(0, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_audit_entry_and_the_event_commit_together_or_not_at_all() {
        let app = app().await;
        // Rolled back: neither the entry nor the event.
        let ops = Caller {
            principal: crate::auth::Principal::Token {
                id: 1,
                name: "ops".into(),
            },
            role: patchbay_core::auth::Role::Operator,
            scopes: patchbay_core::auth::Scopes::UNRESTRICTED,
        };
        let ctx = crate::RequestCtx::default();
        let mut c = app.change(&ops, Action::WriteAssets, &ctx).await.unwrap();
        c.audit("window.add", "window:nightly", serde_json::json!({"n": 1}))
            .await
            .unwrap();
        drop(c);
        let mut r = app.store.read().await.unwrap();
        assert_eq!(r.audit_head().await.unwrap().0, 0);
        assert!(r.events_after(0, 10).await.unwrap().is_empty());
        drop(r);
        // Committed: both, the event naming its audit entry.
        let mut c = app.change(&ops, Action::WriteAssets, &ctx).await.unwrap();
        c.audit("window.add", "window:nightly", serde_json::json!({"n": 2}))
            .await
            .unwrap();
        c.commit().await.unwrap();
        let mut r = app.store.read().await.unwrap();
        let ev = r.events_after(0, 10).await.unwrap();
        assert_eq!(ev.len(), 1);
        let e = &ev[0].event;
        assert_eq!(
            (e.kind.as_str(), e.subject.as_str(), e.actor.as_str()),
            ("window.add", "window:nightly", "token:1:ops")
        );
        assert_eq!(e.payload, serde_json::json!({"n": 2}));
        assert_eq!(e.audit_seq, r.audit_head().await.unwrap().0);
        assert_eq!(e.version, super::EVENT_VERSION);
    }
}
