//! A server in-process: a prepared data directory (SQLite, or a fresh
//! PostgreSQL database) and its router.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use patchbay_app::{App, ManualClock};
use patchbay_server::Settings;
use patchbay_server::setup::prepare_with_clock;
use std::sync::Arc;
use tower::ServiceExt;

/// The router over a fresh data directory, the admin token's secret, the
/// service (for duties driven by hand) and its clock.
pub struct InProcess {
    pub router: Router,
    pub admin: String,
    pub app: App,
    pub clock: Arc<ManualClock>,
    /// The database (for tests that reach past the service, as an attacker
    /// with the database file would).
    pub db_url: String,
    _dir: tempfile::TempDir,
}

impl InProcess {
    pub async fn new() -> Self {
        Self::with(None, Default::default()).await
    }

    /// On a fresh database of `backend` (`sqlite` or `postgres`; PostgreSQL
    /// needs `PATCHBAY_TEST_PG_URL`, as `scripts/with-postgres` sets).
    pub async fn on(backend: &str) -> Self {
        Self::with(
            Some(patchbay_store::testing::fresh_url(backend).await),
            Default::default(),
        )
        .await
    }

    /// On `backend` with the service layer's settings `app`.
    pub async fn on_with(backend: &str, app: patchbay_app::AppConfig) -> Self {
        Self::with(Some(patchbay_store::testing::fresh_url(backend).await), app).await
    }

    /// With the service layer's settings `app` (SQLite).
    pub async fn with_config(app: patchbay_app::AppConfig) -> Self {
        Self::with(None, app).await
    }

    async fn with(db_url: Option<String>, app: patchbay_app::AppConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = db_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                dir.path().join("data").join("patchbay.db").display()
            )
        });
        let settings = Settings {
            db_url,
            data_dir: dir.path().join("data"),
            app,
        };
        let clock = Arc::new(ManualClock::new("2026-12-08T22:00:00Z".parse().unwrap()));
        let prepared = prepare_with_clock(&settings, clock.clone()).await.unwrap();
        let admin = std::fs::read_to_string(&prepared.admin_token_path)
            .unwrap()
            .trim()
            .to_string();
        let router = patchbay_server::router(prepared.app.clone(), prepared.metrics.clone());
        Self {
            router,
            admin,
            app: prepared.app,
            clock,
            db_url: url,
            _dir: dir,
        }
    }

    /// A second service over the same database and data directory, on the
    /// same clock: what a restarted server sees.
    pub async fn reopen(&self) -> App {
        let settings = Settings {
            db_url: Some(self.db_url.clone()),
            data_dir: self._dir.path().join("data"),
            app: Default::default(),
        };
        prepare_with_clock(&settings, self.clock.clone())
            .await
            .unwrap()
            .app
    }

    /// Sends one request; returns the status and the body as text.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let resp = self.send(method, path, bearer, body, None).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends one request as if from peer `from` (when given); returns the
    /// whole response (headers included).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        from: Option<&str>,
    ) -> axum::response::Response {
        self.send_to(&self.router, method, path, bearer, body, from)
            .await
    }

    /// Sends one request with a body of `content_type`.
    pub async fn call_typed(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        content_type: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", content_type)
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// [`Self::send`] through another router over the same app.
    pub async fn send_to(
        &self,
        router: &Router,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        from: Option<&str>,
    ) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(peer) = from {
            req = req.extension(axum::extract::ConnectInfo(
                patchbay_server::tls::RemoteAddr(peer.parse().unwrap()),
            ));
        }
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        router.clone().oneshot(req).await.unwrap()
    }

    /// Sends a JSON request that must succeed; returns the decoded answer.
    pub async fn ok_json(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (status, text) = self
            .call(method, path, Some(bearer), Some(&body.to_string()))
            .await;
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// An enrolled test host: its asset name, machine id and agent secret.
#[derive(Clone)]
pub struct Host {
    pub name: String,
    pub mid: String,
    pub secret: String,
}

/// A Debian 12 host's inventory with `pb-demo` at `version`.
pub fn pb_demo_inventory(
    host: &str,
    mid: &str,
    version: &str,
) -> patchbay_core::inventory::Inventory {
    use patchbay_core::inventory::*;
    Inventory {
        facts: HostFacts {
            hostname: host.into(),
            machine_id: mid.into(),
            os: OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                ..Default::default()
            },
            kernel: "6.1.0".into(),
            arch: "amd64".into(),
            ..Default::default()
        },
        format: Some(PackageFormat::Deb),
        packages: vec![Package {
            name: "pb-demo".into(),
            version: version.into(),
            arch: "all".into(),
            source: None,
            source_version: None,
        }],
        pending_updates: vec![],
    }
}

/// A check-in body with the whole inventory and `results` (JSON).
pub fn full_checkin(
    inv: patchbay_core::inventory::Inventory,
    results: serde_json::Value,
) -> serde_json::Value {
    serde_json::to_value(patchbay_proto::agent::CheckinRequest {
        protocol: 1,
        inventory_hash: inv.content_hash(),
        inventory: patchbay_proto::agent::InventoryPayload::Full { inventory: inv },
        results: serde_json::from_value(results).unwrap(),
        wait_secs: None,
        key_refusals: Vec::new(),
    })
    .unwrap()
}

/// `n` agents enrolled as h1…hn (machine ids `mid_base + i`), each having
/// sent a full inventory with `pb-demo` 1.0.
pub async fn fleet(s: &InProcess, n: usize, mid_base: usize) -> Vec<Host> {
    use serde_json::json;
    let et = s
        .ok_json(
            "POST",
            "/api/v1/enroll-tokens",
            &s.admin,
            json!({"uses": n, "ttl_secs": 3600}),
        )
        .await;
    let mut out = vec![];
    for i in 1..=n {
        let name = format!("h{i}");
        let mid = format!("{:032x}", mid_base + i);
        let e = s
            .ok_json(
                "POST",
                "/agent/v1/enroll",
                "-",
                json!({"protocol": 1, "enroll_token": et["token"], "hostname": name, "machine_id": mid}),
            )
            .await;
        let secret = e["agent_secret"].as_str().unwrap().to_string();
        s.ok_json(
            "POST",
            "/agent/v1/checkin",
            &secret,
            full_checkin(pb_demo_inventory(&name, &mid, "1.0"), json!([])),
        )
        .await;
        out.push(Host { name, mid, secret });
    }
    out
}

/// Imports DSA-9999-1 (`pb-demo` fixed in 1.1, Debian 12) and assesses the
/// fleet: every host on 1.0 gets an open finding.
pub async fn import_pb_demo_advisory(s: &InProcess) {
    let advisory = patchbay_feeds::osv::parse_str(
        r#"{"id": "DSA-9999-1", "modified": "2026-12-01T00:00:00Z", "aliases": ["CVE-2026-99999"],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "pb-demo"},
              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}]}"#,
    )
    .unwrap();
    s.app
        .import_advisories("test", &[advisory], 0, &patchbay_app::Caller::local("test"))
        .await
        .unwrap();
    s.app.assess_fleet(&|_, _| {}).await.unwrap();
}
