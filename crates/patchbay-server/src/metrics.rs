//! Prometheus metrics (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of HTTP metrics. `route` is the matched route template, never the raw
/// path, so label cardinality stays bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of check-in metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckinLabels {
    /// `unchanged`, `full` or `delta`.
    pub kind: String,
}

/// Labels of feed metrics: the configured source's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabels {
    /// `[[feed_source]]` name.
    pub feed: String,
}

/// Labels of drift metrics: the policy group's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// Policy group.
    pub group: String,
}

/// A gauge of seconds (or a Unix time).
pub type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by method, route, status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Request latency by method and route.
    pub http_duration: Family<HttpLabels, Histogram>,
    /// Successful check-ins by kind.
    pub checkins: Family<CheckinLabels, Counter>,
    /// Package rows inserted or deleted by check-ins.
    pub package_rows_written: Counter,
    /// Successful enrolments.
    pub enrolments: Counter,
    /// Webhook deliveries answered 2xx.
    pub webhook_sent: Counter,
    /// Webhook delivery attempts that failed (retried or dead-lettered).
    pub webhook_failed: Counter,
    /// Failed attempts scheduled for another try.
    pub webhook_retried: Counter,
    /// Deliveries dead-lettered (attempts ran out).
    pub webhook_dead_lettered: Counter,
    /// Pending deliveries (the queue's depth).
    pub webhook_queue_depth: Gauge,
    /// Age of the oldest pending delivery, seconds.
    pub webhook_oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Audit entries written to the SIEM receiver.
    pub siem_sent: Counter,
    /// Audit entries dropped because the SIEM queue was full while the
    /// receiver was down.
    pub siem_dropped: Counter,
    /// Entries waiting in the SIEM queue.
    pub siem_queue_depth: Gauge,
    /// 1 while the SIEM receiver is connected, else 0.
    pub siem_connected: Gauge,
    /// Emails the SMTP server accepted.
    pub email_sent: Counter,
    /// Email attempts that failed (retried or dead).
    pub email_failed: Counter,
    /// Failed emails scheduled for another try.
    pub email_retried: Counter,
    /// Emails whose attempts ran out.
    pub email_dead: Counter,
    /// Pending emails.
    pub email_queue_depth: Gauge,
    /// Age of the oldest pending email, seconds.
    pub email_oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Per synced feed: seconds since the server last held its current data.
    pub feed_age: Family<FeedLabels, Seconds>,
    /// Per synced feed: 1 if its last attempt imported or confirmed the data.
    pub feed_last_attempt_ok: Family<FeedLabels, Gauge>,
    /// Per synced feed: Unix time of its last attempt.
    pub feed_last_attempt: Family<FeedLabels, Seconds>,
    /// Per synced feed: 1 while its data is past the staleness threshold.
    pub feed_stale: Family<FeedLabels, Gauge>,
    /// Per policy group: packages where members differ from the group's
    /// modal baseline (newer, older, differs, missing, extra; docs/drift.md).
    pub drifted_packages: Family<GroupLabels, Gauge>,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("patchbay");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let checkins = Family::<CheckinLabels, Counter>::default();
        let package_rows_written = Counter::default();
        let enrolments = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        registry.register("agent_checkins", "Agent check-ins stored", checkins.clone());
        registry.register(
            "inventory_package_rows_written",
            "Package rows inserted or deleted by check-ins",
            package_rows_written.clone(),
        );
        registry.register("agent_enrolments", "Agents enrolled", enrolments.clone());
        let webhook_sent = Counter::default();
        let webhook_failed = Counter::default();
        let webhook_retried = Counter::default();
        let webhook_dead_lettered = Counter::default();
        let webhook_queue_depth = Gauge::default();
        let webhook_oldest_pending_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "webhook_deliveries_sent",
            "Webhook deliveries answered 2xx",
            webhook_sent.clone(),
        );
        registry.register(
            "webhook_deliveries_failed",
            "Webhook delivery attempts that failed",
            webhook_failed.clone(),
        );
        registry.register(
            "webhook_deliveries_retried",
            "Failed webhook attempts scheduled for another try",
            webhook_retried.clone(),
        );
        registry.register(
            "webhook_deliveries_dead_lettered",
            "Webhook deliveries dead-lettered after their last attempt",
            webhook_dead_lettered.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Pending webhook deliveries",
            webhook_queue_depth.clone(),
        );
        registry.register(
            "webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery",
            webhook_oldest_pending_age.clone(),
        );
        let siem_sent = Counter::default();
        let siem_dropped = Counter::default();
        let siem_queue_depth = Gauge::default();
        let siem_connected = Gauge::default();
        registry.register(
            "siem_sent",
            "Audit entries written to the SIEM receiver",
            siem_sent.clone(),
        );
        registry.register(
            "siem_dropped",
            "Audit entries dropped: SIEM queue full while the receiver was down",
            siem_dropped.clone(),
        );
        registry.register(
            "siem_queue_depth",
            "Entries waiting in the SIEM queue",
            siem_queue_depth.clone(),
        );
        registry.register(
            "siem_connected",
            "1 while the SIEM receiver is connected",
            siem_connected.clone(),
        );
        let email_sent = Counter::default();
        let email_failed = Counter::default();
        let email_retried = Counter::default();
        let email_dead = Counter::default();
        let email_queue_depth = Gauge::default();
        let email_oldest_pending_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "emails_sent",
            "Emails the SMTP server accepted",
            email_sent.clone(),
        );
        registry.register(
            "emails_failed",
            "Email attempts that failed",
            email_failed.clone(),
        );
        registry.register(
            "emails_retried",
            "Failed emails scheduled for another try",
            email_retried.clone(),
        );
        registry.register(
            "emails_dead",
            "Emails whose attempts ran out",
            email_dead.clone(),
        );
        registry.register(
            "email_queue_depth",
            "Pending emails",
            email_queue_depth.clone(),
        );
        registry.register(
            "email_oldest_pending_age_seconds",
            "Age of the oldest pending email",
            email_oldest_pending_age.clone(),
        );
        let feed_age = Family::<FeedLabels, Seconds>::default();
        let feed_last_attempt_ok = Family::<FeedLabels, Gauge>::default();
        let feed_last_attempt = Family::<FeedLabels, Seconds>::default();
        let feed_stale = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_age_seconds",
            "Seconds since the server last held a synced feed's current data",
            feed_age.clone(),
        );
        registry.register(
            "feed_last_attempt_ok",
            "1 if the feed's last sync attempt imported or confirmed its data, else 0",
            feed_last_attempt_ok.clone(),
        );
        registry.register(
            "feed_last_attempt_timestamp_seconds",
            "Unix time of the feed's last sync attempt",
            feed_last_attempt.clone(),
        );
        registry.register(
            "feed_stale",
            "1 while the feed is past its staleness threshold",
            feed_stale.clone(),
        );
        let drifted_packages = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "drifted_packages",
            "Packages where a policy group's members differ from its modal baseline",
            drifted_packages.clone(),
        );
        Arc::new(Self {
            drifted_packages,
            feed_age,
            feed_last_attempt_ok,
            feed_last_attempt,
            feed_stale,
            registry,
            email_sent,
            email_failed,
            email_retried,
            email_dead,
            email_queue_depth,
            email_oldest_pending_age,
            http_requests,
            http_duration,
            checkins,
            package_rows_written,
            enrolments,
            webhook_sent,
            webhook_failed,
            webhook_retried,
            webhook_dead_lettered,
            webhook_queue_depth,
            webhook_oldest_pending_age,
            siem_sent,
            siem_dropped,
            siem_queue_depth,
            siem_connected,
        })
    }

    /// Encodes all metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
