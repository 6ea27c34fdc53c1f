//! Reading the events outbox from a stored cursor (issue 15): the one piece
//! behind every outbox consumer — webhook subscriptions, email contacts and
//! escalation chains.
//!
//! Each consumer keeps the id of the last outbox event it took. In the
//! consumer's own write transaction, [`Pending::read`] takes the events
//! after that cursor (at most a batch), typed ([`Event::from_outbox`]); the
//! consumer turns each into its own rows (deliveries, emails, escalations);
//! [`Pending::advance`] then moves the cursor past them **in the same
//! transaction**. A crash before the commit leaves both as they were, after
//! it both exist: each event is taken exactly once per consumer. Why a
//! cursor never skips an event (ids become visible in increasing order):
//! docs/events.md.
//!
//! (The SIEM sink reads the audit log, not the outbox, and stores its
//! cursor after the receiver took the entries: `crate::siem`.)

use crate::AppError;
use crate::change::Change;
use patchbay_core::event::Event;
use patchbay_store::EventRow;

/// Whose cursor: a consumer of the outbox, by its row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consumer {
    /// A webhook subscription (`webhook_subscriptions.cursor`).
    Webhook(i64),
    /// An email contact (`contacts.cursor`).
    Contact(i64),
    /// An escalation chain (`escalation_chains.cursor`).
    Chain(i64),
}

/// A consumer's new events, read in its transaction, not yet taken.
#[must_use = "advance the cursor once the events are handled"]
pub(crate) struct Pending {
    consumer: Consumer,
    events: Vec<(EventRow, Event)>,
}

impl Pending {
    /// The events after `cursor` (the consumer's stored cursor), oldest
    /// first, at most `batch` (at least one).
    pub(crate) async fn read(
        tx: &mut Change<'_>,
        consumer: Consumer,
        cursor: i64,
        batch: i64,
    ) -> Result<Pending, AppError> {
        let rows = tx.events_after(cursor, batch.max(1)).await?;
        let events = rows
            .into_iter()
            .map(|row| {
                let e = &row.event;
                let ev =
                    Event::from_outbox(row.id, e.at, &e.kind, &e.actor, &e.subject, &e.payload);
                (row, ev)
            })
            .collect();
        Ok(Pending { consumer, events })
    }

    /// The events: each stored row with its typed event.
    pub(crate) fn events(&self) -> &[(EventRow, Event)] {
        &self.events
    }

    /// Moves the consumer's cursor past the events (in `tx`); `false` (and
    /// nothing written) when there were none.
    pub(crate) async fn advance(self, tx: &mut Change<'_>) -> Result<bool, AppError> {
        let Some(last) = self.events.last().map(|(row, _)| row.id) else {
            return Ok(false);
        };
        match self.consumer {
            Consumer::Webhook(id) => tx.set_cursor(id, last).await?,
            Consumer::Contact(id) => tx.set_contact_cursor(id, last).await?,
            Consumer::Chain(id) => tx.set_chain_cursor(id, last).await?,
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::{Consumer, Pending};
    use crate::{App, AppConfig, ManualClock, SystemActor};
    use patchbay_store::{NewChain, NewContact, NewSubscription};
    use serde_json::json;
    use std::sync::Arc;

    async fn app() -> App {
        let url = patchbay_store::testing::fresh_sqlite_url();
        let store = patchbay_store::open(&url).await.unwrap();
        let t0 = "2026-12-04T00:00:00Z".parse().unwrap();
        App::new(store, Arc::new(ManualClock::new(t0)), AppConfig::default())
    }

    /// Each consumer's events after its cursor, typed, in order, in
    /// batches; the cursor moves past what was read and only for that
    /// consumer; nothing is moved for an empty read; a transaction that
    /// rolls back moves nothing.
    #[tokio::test]
    async fn reads_after_the_cursor_and_advances_it_in_the_transaction() {
        let app = app().await;
        let t0 = app.now();
        let mut tx = app.change_by_system(SystemActor::Webhooks).await.unwrap();
        for n in 1..=5 {
            tx.audit("window.add", &format!("window:w{n}"), json!({"n": n}))
                .await
                .unwrap();
        }
        let sub = tx
            .add_subscription(&NewSubscription {
                name: "s".into(),
                url: "http://127.0.0.1:9/".into(),
                template: "generic".into(),
                filter: json!({}),
                options: json!({}),
                secret: "whsec_x".into(),
                max_attempts: 1,
                cursor: 1,
                created_at: t0,
                created_by: "test".into(),
                auth_headers: vec![],
            })
            .await
            .unwrap()
            .unwrap();
        let contact = tx
            .add_contact(&NewContact {
                name: "c".into(),
                email: "c@example.net".into(),
                events: vec![],
                cursor: 3,
                created_at: t0,
                created_by: "test".into(),
            })
            .await
            .unwrap()
            .unwrap();
        let chain = tx
            .add_chain(&NewChain {
                name: "k".into(),
                trigger: "approval".into(),
                steps: json!([]),
                cursor: 0,
                created_at: t0,
                created_by: "test".into(),
            })
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = app.change_by_system(SystemActor::Webhooks).await.unwrap();
        // Two at a time after cursor 1: events 2 and 3, typed.
        let p = Pending::read(&mut tx, Consumer::Webhook(sub), 1, 2)
            .await
            .unwrap();
        let ids: Vec<(i64, String)> = p
            .events()
            .iter()
            .map(|(r, e)| (r.id, e.id.clone()))
            .collect();
        assert_eq!(ids, [(2, "evt_2".into()), (3, "evt_3".into())]);
        assert_eq!(p.events()[0].1.subject, "window:w2");
        assert!(p.advance(&mut tx).await.unwrap());
        // The contact after 3: 4 and 5; the chain from the start: all five.
        let p = Pending::read(&mut tx, Consumer::Contact(contact), 3, 100)
            .await
            .unwrap();
        assert_eq!(p.events().len(), 2);
        assert!(p.advance(&mut tx).await.unwrap());
        let p = Pending::read(&mut tx, Consumer::Chain(chain), 0, 100)
            .await
            .unwrap();
        assert_eq!(p.events().len(), 5);
        assert!(p.advance(&mut tx).await.unwrap());
        // Nothing after the head: nothing moves.
        let p = Pending::read(&mut tx, Consumer::Chain(chain), 5, 100)
            .await
            .unwrap();
        assert!(p.events().is_empty());
        assert!(!p.advance(&mut tx).await.unwrap());
        tx.commit_unaudited("test").await.unwrap();

        let cursors = |app: App| async move {
            let mut r = app.store().read().await.unwrap();
            (
                r.subscriptions().await.unwrap()[0].sub.cursor,
                r.contacts().await.unwrap()[0].contact.cursor,
                r.chains().await.unwrap()[0].chain.cursor,
            )
        };
        assert_eq!(cursors(app.clone()).await, (3, 5, 5));

        // Rolled back: the cursor stays.
        let mut tx = app.change_by_system(SystemActor::Webhooks).await.unwrap();
        let p = Pending::read(&mut tx, Consumer::Webhook(sub), 3, 100)
            .await
            .unwrap();
        assert!(p.advance(&mut tx).await.unwrap());
        drop(tx);
        assert_eq!(cursors(app.clone()).await, (3, 5, 5));
    }
}
