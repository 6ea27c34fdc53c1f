//! The webhook delivery loop: fans the outbox out into deliveries and sends
//! them, on the replica that holds the duties lease.
//!
//! One task per subscription sends its due deliveries
//! ([`App::webhooks_deliver`]), so a slow or hanging receiver delays only
//! its own subscription; the loop wakes when a change commits events (the
//! app's outbox bell) and every [`WebhookConfig::poll`] for retries that
//! came due. A Slack subscription is paced to one message a second and
//! a `Retry-After` holds a subscription (see [`patchbay_app::webhooks`]).
//! Counts go to the Prometheus metrics (sent, failed, retried,
//! dead-lettered; queue depth and the oldest pending delivery's age).
//!
//! [`WebhookConfig::poll`]: patchbay_app::webhooks::WebhookConfig::poll

use crate::metrics::Metrics;
use patchbay_app::App;
use patchbay_app::webhooks::Sender;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A held subscription's task waits this long at most for its hold to end
/// (a Slack subscription's next second); a longer hold (`Retry-After`) is
/// left to a later round.
const HOLD_WAIT_MAX: Duration = Duration::from_secs(2);

/// Runs until `stop` resolves. `leading`: whether this replica holds the
/// duties lease (only the leader delivers).
pub async fn run(
    app: App,
    metrics: Arc<Metrics>,
    leading: Arc<AtomicBool>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let cfg = app.config().webhooks.clone();
    let sender = Sender::new(cfg.timeout);
    let bell = app.outbox_bell();
    let mut tasks: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = bell.notified() => {}
            _ = tokio::time::sleep(cfg.poll) => {}
        }
        if !leading.load(Ordering::SeqCst) {
            continue;
        }
        pump(&app, &metrics, &sender, &mut tasks).await;
    }
    for (_, t) in tasks {
        t.abort();
    }
}

/// One round: fan out, update the queue gauges, and start a sender task for
/// each subscription that has none running.
pub async fn pump(
    app: &App,
    metrics: &Arc<Metrics>,
    sender: &Sender,
    tasks: &mut HashMap<i64, tokio::task::JoinHandle<()>>,
) {
    let batch = app.config().webhooks.batch.max(1) as usize;
    // Drain the outbox in batches (a backlog after downtime).
    for _ in 0..100 {
        match app.webhooks_fan_out().await {
            Ok(n) if n >= batch => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e.message, "webhooks: fan-out failed");
                break;
            }
        }
    }
    match app.webhook_queue().await {
        Ok((depth, age, _dead)) => {
            metrics.webhook_queue_depth.set(depth);
            metrics.webhook_oldest_pending_age.set(age);
        }
        Err(e) => tracing::warn!(error = %e.message, "webhooks: queue stats failed"),
    }
    let ids = match app.webhook_ids().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e.message, "webhooks: listing subscriptions failed");
            return;
        }
    };
    tasks.retain(|id, t| ids.contains(id) && !t.is_finished());
    for id in ids {
        if tasks.contains_key(&id) {
            continue;
        }
        let (app, metrics, sender) = (app.clone(), metrics.clone(), sender.clone());
        tasks.insert(
            id,
            tokio::spawn(async move { deliver_all(&app, &metrics, &sender, id).await }),
        );
    }
}

/// Sends a subscription's due deliveries until none is due.
async fn deliver_all(app: &App, metrics: &Metrics, sender: &Sender, id: i64) {
    loop {
        match app.webhooks_deliver(id, sender).await {
            Ok(r) => {
                metrics.webhook_sent.inc_by(r.sent);
                metrics.webhook_failed.inc_by(r.failed);
                metrics.webhook_retried.inc_by(r.retried);
                metrics.webhook_dead_lettered.inc_by(r.dead);
                if r.sent + r.failed == 0 {
                    // Paced (Slack) or told to wait (Retry-After): wait here
                    // when it is soon, else let a later round pick it up.
                    let Some(until) = r.held_until else { return };
                    let wait = until.duration_since(app.now());
                    match Duration::try_from(wait) {
                        Ok(w) if w <= HOLD_WAIT_MAX => tokio::time::sleep(w).await,
                        Ok(_) => return,
                        Err(_) => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(subscription = id, error = %e.message, "webhooks: delivery round failed");
                return;
            }
        }
    }
}
