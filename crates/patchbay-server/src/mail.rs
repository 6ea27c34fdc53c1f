//! The email delivery loop: fans the outbox out to contacts and sends the
//! due emails through the configured SMTP server, on the replica that holds
//! the duties lease (`patchbay_app::email`).
//!
//! It wakes every [`POLL`] (emails are not latency-critical; the webhook
//! loop owns the outbox bell). One send at a time, each bounded by the
//! email timeout, so a slow SMTP server delays only email. Counts go to the
//! Prometheus metrics (sent, failed, retried, dead; queue depth and the
//! oldest pending email's age).

use crate::metrics::Metrics;
use patchbay_app::App;
use patchbay_app::email::Mailer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the loop looks for work.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs until `stop` resolves; does nothing without an SMTP server.
pub async fn run(
    app: App,
    metrics: Arc<Metrics>,
    leading: Arc<AtomicBool>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Some(smtp) = app.config().smtp.clone() else {
        return;
    };
    let mailer = match Mailer::new(&smtp, app.config().email.timeout) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "email: the SMTP settings are unusable; no email is sent");
            return;
        }
    };
    tracing::info!(host = %smtp.host, port = smtp.port, tls = ?smtp.tls, "email delivery started");
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        if !leading.load(Ordering::SeqCst) {
            continue;
        }
        pump(&app, &metrics, &mailer).await;
    }
}

/// One round: fan out, send what is due, update the metrics.
pub async fn pump(app: &App, metrics: &Metrics, mailer: &Mailer) {
    let batch = app.config().email.batch.max(1) as usize;
    for _ in 0..100 {
        match app.emails_fan_out().await {
            Ok(n) if n >= batch => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e.message, "email: fan-out failed");
                break;
            }
        }
    }
    loop {
        match app.emails_deliver(mailer).await {
            Ok(r) => {
                metrics.email_sent.inc_by(r.sent);
                metrics.email_failed.inc_by(r.failed);
                metrics.email_retried.inc_by(r.retried);
                metrics.email_dead.inc_by(r.dead);
                if r.sent + r.failed < batch as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "email: delivery round failed");
                break;
            }
        }
    }
    match app.email_queue().await {
        Ok((depth, age, _)) => {
            metrics.email_queue_depth.set(depth);
            metrics.email_oldest_pending_age.set(age);
        }
        Err(e) => tracing::warn!(error = %e.message, "email: queue stats failed"),
    }
}
