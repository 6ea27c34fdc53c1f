//! Prometheus metrics (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
        Arc::new(Self {
            registry,
            http_requests,
            http_duration,
            checkins,
            package_rows_written,
            enrolments,
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
