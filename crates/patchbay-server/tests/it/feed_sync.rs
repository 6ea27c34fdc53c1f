//! Feed sync (issue 16) against a real HTTP server on loopback: a small
//! HTTP/1.1 server written here on a TCP socket, which honours
//! `If-None-Match` (so a 304 is real) and logs every answer it sends (the
//! assertions read that log, not Patchbay's own counters). It can also cut
//! a download short (a `Content-Length` it does not deliver) and send a body
//! chunked (no `Content-Length`, so only the streaming limit can stop it).
//!
//! The duty is driven by hand through the duties runner, on a manual clock:
//! nothing sleeps for the schedule.

use crate::support::{InProcess, fleet};
use axum::http::StatusCode;
use jiff::SignedDuration;
use patchbay_app::AppConfig;
use patchbay_app::duties::{Duty, Runner};
use patchbay_app::feed_sync::{FeedKind, FeedSource, FeedSyncConfig, Origin};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a path is served.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// With `Content-Length` and `ETag`.
    Normal,
    /// `Content-Length` of the whole, half the body, then the connection closes.
    Cut,
    /// Chunked, no `Content-Length`.
    Chunked,
    /// `Last-Modified` instead of `ETag` (answers `If-Modified-Since`).
    LastModified,
}

#[derive(Clone)]
struct Served {
    body: Arc<Vec<u8>>,
    etag: String,
    mode: Mode,
}

impl Served {
    /// A `Last-Modified` value that changes with each version.
    fn last_modified(&self) -> String {
        let v: u64 = self
            .etag
            .trim_matches(|c| c == '"' || c == 'v')
            .parse()
            .unwrap();
        format!("Tue, 01 Dec 2026 00:{:02}:{:02} GMT", v / 60, v % 60)
    }
}

/// The loopback HTTP server.
#[derive(Clone, Default)]
struct Origin_ {
    files: Arc<Mutex<HashMap<String, Served>>>,
    /// (path, status) of every answer sent.
    log: Arc<Mutex<Vec<(String, u16)>>>,
    version: Arc<Mutex<u64>>,
}

impl Origin_ {
    fn put(&self, path: &str, body: Vec<u8>, mode: Mode) {
        let mut v = self.version.lock().unwrap();
        *v += 1;
        self.files.lock().unwrap().insert(
            path.into(),
            Served {
                body: Arc::new(body),
                etag: format!("\"v{v}\""),
                mode,
            },
        );
    }

    fn count(&self, path: &str, status: u16) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, s)| p == path && *s == status)
            .count()
    }

    async fn start(&self) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = l.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&b[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let inm = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("if-none-match")
                            .then(|| v.trim().to_string())
                    });
                    let ims = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("if-modified-since")
                            .then(|| v.trim().to_string())
                    });
                    let served = me.files.lock().unwrap().get(&path).cloned();
                    let (status, out): (u16, Vec<u8>) = match served {
                        None => (404, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
                        Some(s) if s.mode == Mode::LastModified && ims.as_deref() == Some(s.last_modified().as_str()) => (
                            304,
                            b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_vec(),
                        ),
                        Some(s) if s.mode != Mode::LastModified && inm.as_deref() == Some(s.etag.as_str()) => (
                            304,
                            format!("HTTP/1.1 304 Not Modified\r\nETag: {}\r\nConnection: close\r\n\r\n", s.etag)
                                .into_bytes(),
                        ),
                        Some(s) => {
                            let mut out = match s.mode {
                                Mode::Chunked => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string(),
                                Mode::LastModified => format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n",
                                    s.body.len(),
                                    s.last_modified()
                                ),
                                _ => format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {}\r\nConnection: close\r\n\r\n",
                                    s.body.len(),
                                    s.etag
                                ),
                            }
                            .into_bytes();
                            match s.mode {
                                Mode::Normal | Mode::LastModified => out.extend_from_slice(&s.body),
                                Mode::Cut => out.extend_from_slice(&s.body[..s.body.len() / 2]),
                                Mode::Chunked => {
                                    for c in s.body.chunks(16 * 1024) {
                                        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                                        out.extend_from_slice(c);
                                        out.extend_from_slice(b"\r\n");
                                    }
                                    out.extend_from_slice(b"0\r\n\r\n");
                                }
                            }
                            (200, out)
                        }
                    };
                    me.log.lock().unwrap().push((path, status));
                    let _ = sock.write_all(&out).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

const KEV_OLD: &str = "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz";
const KEV_NEW: &str = "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz";

fn gunzip(rel: &str) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(rel)).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn kev_cves(rel: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_slice(&gunzip(rel)).unwrap();
    v["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cveID"].as_str().unwrap().to_string())
        .collect()
}

/// An OSV record: `pb-demo` before 1.1 on Debian 12 has `cve`.
fn osv_record(cve: &str) -> Vec<u8> {
    serde_json::json!({
        "id": "DSA-9999-1", "modified": "2026-12-01T00:00:00Z", "aliases": [cve],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "pb-demo"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}]
    })
    .to_string()
    .into_bytes()
}

fn source(name: &str, kind: FeedKind, url: String) -> FeedSource {
    let mut s = FeedSource::new(name, kind, Origin::Url(url));
    s.every = SignedDuration::from_hours(1);
    s.stale_after = SignedDuration::from_hours(24);
    s.timeout = std::time::Duration::from_secs(20);
    s
}

async fn get(s: &InProcess, path: &str) -> Value {
    let (st, text) = s.call("GET", path, Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn actions(s: &InProcess, action: &str) -> Vec<Value> {
    let v = get(s, "/api/v1/audit?limit=1000").await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn kev_imports(s: &InProcess) -> Vec<String> {
    get(s, "/api/v1/feeds").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "kev")
        .map(|f| f["version"].as_str().unwrap().to_string())
        .collect()
}

async fn state(s: &InProcess, name: &str) -> patchbay_store::FeedSyncRow {
    s.app
        .feed_sync_state()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
}

/// One tick of the duties runner, one hour later, and the feed sync it
/// started in the background, to its end; the number of sources attempted
/// (those whose stored last attempt is now).
async fn tick(s: &InProcess, runner: &mut Runner) -> usize {
    s.clock.advance(SignedDuration::from_hours(1));
    let r = runner.tick().await;
    assert!(r.leader);
    let (_, res) = r
        .ran
        .iter()
        .find(|(d, _)| *d == Duty::FeedSync)
        .expect("the feed-sync duty runs every tick")
        .clone();
    assert_eq!(res.unwrap(), 1, "a feed sync started");
    s.app.wait_feed_sync().await;
    let now = s.app.now();
    s.app
        .feed_sync_state()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.last_attempt_at == now)
        .count()
}

/// Acceptance (issue 16, item 1): first sync imports; an unchanged second
/// sync transfers nothing (304s in the origin's log); the newer KEV catalog
/// raises the zero-day lane with no human step; a cut-short, a truncated and
/// an oversized download are refused and the last good data stays; an
/// unreachable source goes stale (metric and one stored `feed.stale` per
/// episode) while the server keeps serving.
async fn sync_against_a_loopback_origin(backend: &str) {
    let origin = Origin_::default();
    let base = origin.start().await;
    // A CVE the 2026.08.07 catalog added to KEV.
    let added: Vec<String> = kev_cves(KEV_NEW)
        .difference(&kev_cves(KEV_OLD))
        .cloned()
        .collect();
    let cve = added[0].clone();
    origin.put("/osv/all.json", osv_record(&cve), Mode::Normal);
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_OLD)).unwrap(),
        Mode::Normal,
    );
    origin.put(
        "/epss.csv",
        std::fs::read(fixture("feeds/epss/epss_scores-2026-09-29-head40.csv")).unwrap(),
        Mode::Normal,
    );
    let mut kev = source("kev", FeedKind::Kev, format!("{base}/kev.json.gz"));
    kev.max_bytes = 1 << 20;
    // Nothing listens on port 9 of loopback (discard is not running).
    let mut gone = source("gone", FeedKind::Epss, "http://127.0.0.1:9/epss.csv".into());
    gone.stale_after = SignedDuration::from_hours(2);
    let config = AppConfig {
        feeds: FeedSyncConfig {
            sources: vec![
                source("osv-debian", FeedKind::Osv, format!("{base}/osv/all.json")),
                kev,
                source("epss", FeedKind::Epss, format!("{base}/epss.csv")),
                gone,
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    fleet(&s, 1, 0).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");

    // 1. First sync: everything reachable is imported.
    assert_eq!(tick(&s, &mut runner).await, 4);
    for (path, n) in [("/osv/all.json", 1), ("/kev.json.gz", 1), ("/epss.csv", 1)] {
        assert_eq!(origin.count(path, 200), n, "{path}");
    }
    for name in ["osv-debian", "kev", "epss"] {
        let r = state(&s, name).await;
        assert_eq!(r.last_result, "imported", "{name}: {:?}", r.last_error);
        assert!(r.etag.is_some(), "{name}");
    }
    assert_eq!(kev_imports(&s).await, vec!["2025.08.25".to_string()]);
    let imports = actions(&s, "feed.import").await;
    assert_eq!(imports.len(), 3, "{imports:?}");
    assert!(imports.iter().all(|e| e["actor"] == "system:feed-sync"));
    let findings = get(&s, "/api/v1/findings").await;
    assert_eq!(findings["items"].as_array().unwrap().len(), 1);
    let wl = get(&s, "/api/v1/worklist").await;
    assert_ne!(wl["items"][0]["tier"], "P0", "{wl}");

    // 2. Unchanged: conditional GETs answered 304 by the origin, nothing imported.
    assert_eq!(tick(&s, &mut runner).await, 4);
    for path in ["/osv/all.json", "/kev.json.gz", "/epss.csv"] {
        assert_eq!(origin.count(path, 200), 1, "{path}: fetched again");
        assert_eq!(origin.count(path, 304), 1, "{path}: no 304");
    }
    assert_eq!(state(&s, "kev").await.last_result, "unchanged");
    assert_eq!(actions(&s, "feed.import").await.len(), 3);

    // 3. The newer KEV catalog: imported, and the zero-day lane raises the
    //    finding to P0 and proposes an out-of-band deployment by itself.
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_NEW)).unwrap(),
        Mode::Normal,
    );
    tick(&s, &mut runner).await;
    assert_eq!(origin.count("/kev.json.gz", 200), 2);
    assert_eq!(
        kev_imports(&s)
            .await
            .iter()
            .filter(|v| *v == "2026.08.07")
            .count(),
        1
    );
    let wl = get(&s, "/api/v1/worklist").await;
    assert_eq!(wl["items"][0]["tier"], "P0", "{wl}");
    let oob = get(&s, "/api/v1/oob-events").await;
    let oob = oob["items"].as_array().unwrap().clone();
    assert_eq!(oob.len(), 1, "{oob:?}");
    assert!(
        oob[0]["cves"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == cve.as_str()),
        "{oob:?}"
    );
    assert!(
        oob[0]["deployment"]
            .as_str()
            .unwrap()
            .starts_with("DEP-OOB-")
    );
    let good = state(&s, "kev").await;
    let kept = s.app.config().feeds.dir.clone().unwrap().join("kev.feed");
    let kept_bytes = std::fs::read(&kept).unwrap();
    assert_eq!(kept_bytes, std::fs::read(fixture(KEV_NEW)).unwrap());

    // 4. Refused downloads; each time the last good copy and data stay.
    let refused = |why: &'static str| {
        let s = &s;
        let kept = kept.clone();
        let kept_bytes = kept_bytes.clone();
        let good = good.clone();
        async move {
            let r = state(s, "kev").await;
            assert_eq!(r.last_result, "refused", "{why}: {r:?}");
            let err = r.last_error.clone().unwrap();
            assert_eq!(r.sha256, good.sha256, "{why}");
            assert_eq!(r.last_good_at, good.last_good_at, "{why}");
            assert_eq!(std::fs::read(&kept).unwrap(), kept_bytes, "{why}");
            assert_eq!(
                kev_imports(s).await,
                vec!["2026.08.07".to_string()],
                "{why}"
            );
            assert_eq!(
                actions(s, "feed.import").await.len(),
                4,
                "{why}: imported anyway"
            );
            let wl = get(s, "/api/v1/worklist").await;
            assert_eq!(wl["items"][0]["tier"], "P0", "{why}");
            err
        }
    };
    // A download cut short (the origin closes before its Content-Length).
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_OLD)).unwrap(),
        Mode::Cut,
    );
    tick(&s, &mut runner).await;
    let err = refused("cut short").await;
    assert!(err.contains("cut short"), "{err}");
    // A complete answer holding a truncated file.
    let mut half = gunzip(KEV_NEW);
    half.truncate(half.len() / 3);
    origin.put("/kev.json.gz", half, Mode::Normal);
    tick(&s, &mut runner).await;
    let err = refused("truncated").await;
    assert!(err.contains(&base), "{err}");
    // Oversized, announced: refused on its Content-Length (1.5 MB > 1 MiB).
    origin.put("/kev.json.gz", gunzip(KEV_NEW), Mode::Normal);
    tick(&s, &mut runner).await;
    let err = refused("oversized").await;
    assert!(
        err.contains("Content-Length") && err.contains("1048576"),
        "{err}"
    );
    // Oversized, chunked: cut off by the streaming limit.
    origin.put("/kev.json.gz", gunzip(KEV_NEW), Mode::Chunked);
    tick(&s, &mut runner).await;
    let err = refused("oversized, chunked").await;
    assert!(
        err.contains("larger than the limit of 1048576 bytes"),
        "{err}"
    );
    let refusals = actions(&s, "feed.sync_refused").await;
    assert_eq!(refusals.len(), 4, "every refusal is audited");
    // A gzip stream cut short: the rows before the cut parse, the stream's
    // end does not; the whole file is refused, not imported in part.
    let epss_before = state(&s, "epss").await;
    // (KEV back to its last good bytes: fetched, found the same, unchanged.)
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_NEW)).unwrap(),
        Mode::Normal,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut gz,
        &std::fs::read(fixture("feeds/epss/epss_kev_nvd-2026-08-22.head100.csv")).unwrap(),
    )
    .unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() / 2);
    origin.put("/epss.csv", gz, Mode::Normal);
    tick(&s, &mut runner).await;
    let r = state(&s, "epss").await;
    assert_eq!(r.last_result, "refused", "{r:?}");
    assert_eq!(r.sha256, epss_before.sha256);
    assert_eq!(actions(&s, "feed.sync_refused").await.len(), 5);
    assert_eq!(state(&s, "kev").await.last_result, "unchanged");
    assert_eq!(
        actions(&s, "feed.import").await.len(),
        4,
        "a truncated stream is not imported in part"
    );

    // 5. The unreachable source: failed at every attempt; stale once its
    //    threshold (2h since the first attempt) passed, raised once.
    let r = state(&s, "gone").await;
    assert_eq!(r.last_result, "failed");
    assert!(r.last_error.unwrap().contains("127.0.0.1:9"));
    let stale = actions(&s, "feed.stale").await;
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0]["target"], "feed:gone");
    tick(&s, &mut runner).await;
    assert_eq!(
        actions(&s, "feed.stale").await.len(),
        1,
        "raised once per episode"
    );
    // The other feeds (24h threshold) are not stale.
    let (st, metrics) = s.call("GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        metrics.contains("patchbay_feed_stale{feed=\"gone\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patchbay_feed_last_attempt_ok{feed=\"gone\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patchbay_feed_stale{feed=\"kev\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patchbay_feed_last_attempt_ok{feed=\"kev\"} 1")
            && metrics.contains("patchbay_feed_last_attempt_ok{feed=\"epss\"} 0"),
        "{metrics}"
    );
    // The age of the failing feed counts from its first attempt (8 ticks ago).
    assert!(
        metrics.contains("patchbay_feed_age_seconds{feed=\"gone\"} 28800.0"),
        "{metrics}"
    );
    // The event is in the outbox, for webhooks and the SIEM, typed.
    let ev = crate::escalations::events(&s, "feed.stale").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["_subject"], "feed:gone");
    assert_eq!(ev[0]["feed"], "gone");
    assert_eq!(ev[0]["last_result"], "failed");
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("feed gone is stale")
    );
    assert_eq!(
        patchbay_core::event::Kind::from_action("feed.stale"),
        patchbay_core::event::Kind::FeedStale
    );
    let (st, _) = s.call("GET", "/healthz", None, None).await;
    assert_eq!(st, StatusCode::OK, "the server keeps serving");
}

#[tokio::test]
async fn sync_imports_skips_unchanged_drives_the_zero_day_lane_and_refuses_bad_downloads_sqlite() {
    sync_against_a_loopback_origin("sqlite").await;
}

#[tokio::test]
async fn sync_imports_skips_unchanged_drives_the_zero_day_lane_and_refuses_bad_downloads_postgres()
{
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    sync_against_a_loopback_origin("postgres").await;
}

/// Acceptance (issue 16, item 1, air gap): the server syncs from a mirror
/// directory written by `write_mirror` (what `patchbay feeds mirror` runs),
/// checking the manifest's signature and each file's size and SHA-256; a
/// tampered, missing or re-listed file is refused naming the file, and the
/// last good data stays.
async fn sync_from_a_signed_mirror(backend: &str) {
    let origin = Origin_::default();
    let base = origin.start().await;
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_OLD)).unwrap(),
        Mode::Normal,
    );
    let mirror = tempfile::tempdir().unwrap();
    let signer = patchbay_core::audit::Signer::from_seed(&[7u8; 32]);
    let upstream = source("kev", FeedKind::Kev, format!("{base}/kev.json.gz"));
    let now: jiff::Timestamp = "2026-12-08T21:00:00Z".parse().unwrap();
    let mut lines = Vec::new();
    let manifest = patchbay_app::feed_sync::write_mirror(
        mirror.path(),
        std::slice::from_ref(&upstream),
        &signer,
        now,
        &mut |l| lines.push(l),
    )
    .unwrap();
    assert_eq!(manifest.files.len(), 1);
    let entry = manifest.files[0].clone();
    assert_eq!(entry.file, "kev-kev.json.gz");
    assert_eq!(entry.source, format!("{base}/kev.json.gz"));
    assert_eq!(entry.fetched_at, now.to_string());
    let file = mirror.path().join(&entry.file);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(fixture(KEV_OLD)).unwrap()
    );

    let mut src = FeedSource::new(
        "kev",
        FeedKind::Kev,
        Origin::Mirror {
            dir: mirror.path().to_path_buf(),
            key: signer.verifying_key(),
        },
    );
    src.every = SignedDuration::from_hours(1);
    let config = AppConfig {
        feeds: FeedSyncConfig {
            sources: vec![src],
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    tick(&s, &mut runner).await;
    assert_eq!(state(&s, "kev").await.last_result, "imported");
    assert_eq!(kev_imports(&s).await, vec!["2025.08.25".to_string()]);
    // Unchanged mirror: nothing imported again.
    tick(&s, &mut runner).await;
    assert_eq!(state(&s, "kev").await.last_result, "unchanged");
    assert_eq!(actions(&s, "feed.import").await.len(), 1);

    let refused = |what: &'static str| {
        let s = &s;
        async move {
            let r = state(s, "kev").await;
            assert_eq!(r.last_result, "refused", "{what}: {r:?}");
            assert_eq!(
                kev_imports(s).await,
                vec!["2025.08.25".to_string()],
                "{what}"
            );
            assert_eq!(actions(s, "feed.import").await.len(), 1, "{what}");
            r.last_error.unwrap()
        }
    };
    // A tampered file (another valid catalog in its place).
    std::fs::write(&file, std::fs::read(fixture(KEV_NEW)).unwrap()).unwrap();
    tick(&s, &mut runner).await;
    let err = refused("tampered").await;
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("does not match the signed manifest"), "{err}");
    // Same size, one byte flipped.
    let mut bytes = std::fs::read(fixture(KEV_OLD)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    tick(&s, &mut runner).await;
    let err = refused("flipped byte").await;
    assert!(err.contains(&file.display().to_string()), "{err}");
    // A missing file.
    std::fs::remove_file(&file).unwrap();
    tick(&s, &mut runner).await;
    let err = refused("missing").await;
    assert!(
        err.contains(&file.display().to_string()) && err.contains("missing"),
        "{err}"
    );
    // The manifest re-listed for another file: its signature no longer holds.
    std::fs::write(&file, std::fs::read(fixture(KEV_NEW)).unwrap()).unwrap();
    let (sha, size) = patchbay_app::feed_sync::hash_file(&file).unwrap();
    let mpath = mirror.path().join("manifest.json");
    let text = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace(&entry.sha256, &sha)
        .replace(
            &format!("\"size\": {}", entry.size),
            &format!("\"size\": {size}"),
        );
    std::fs::write(&mpath, text).unwrap();
    tick(&s, &mut runner).await;
    let err = refused("re-listed").await;
    assert!(
        err.contains(&mpath.display().to_string()) && err.contains("signature"),
        "{err}"
    );
    // A new mirror, properly signed, of the newer catalog: imported.
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_NEW)).unwrap(),
        Mode::Normal,
    );
    patchbay_app::feed_sync::write_mirror(
        mirror.path(),
        std::slice::from_ref(&upstream),
        &signer,
        now,
        &mut |_| {},
    )
    .unwrap();
    tick(&s, &mut runner).await;
    assert_eq!(state(&s, "kev").await.last_result, "imported");
    assert_eq!(kev_imports(&s).await, vec!["2026.08.07".to_string()]);
    // Signed by another key: refused.
    let other = patchbay_core::audit::Signer::from_seed(&[8u8; 32]);
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_OLD)).unwrap(),
        Mode::Normal,
    );
    patchbay_app::feed_sync::write_mirror(
        mirror.path(),
        std::slice::from_ref(&upstream),
        &other,
        now,
        &mut |_| {},
    )
    .unwrap();
    tick(&s, &mut runner).await;
    let r = state(&s, "kev").await;
    assert_eq!(r.last_result, "refused");
    assert!(r.last_error.unwrap().contains("signature"));
    assert_eq!(kev_imports(&s).await, vec!["2026.08.07".to_string()]);
}

// write_mirror blocks (as the CLI does) while the origin answers on another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_mirror_is_refused_naming_the_file_sqlite() {
    sync_from_a_signed_mirror("sqlite").await;
}

// write_mirror blocks (as the CLI does) while the origin answers on another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_mirror_is_refused_naming_the_file_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    sync_from_a_signed_mirror("postgres").await;
}

/// `POST /api/v1/feeds/import`: past `[feeds] max_upload` the answer is a
/// clear 413 and nothing is stored; within it, the file is imported.
async fn upload_limit(backend: &str) {
    let kev = std::fs::read(fixture(KEV_OLD)).unwrap();
    let config = AppConfig {
        feeds: FeedSyncConfig {
            max_upload: kev.len() as u64 - 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let send = |len: Option<usize>, body: Vec<u8>| {
        let s = &s;
        async move {
            let mut req = axum::http::Request::builder()
                .method("POST")
                .uri("/api/v1/feeds/import?name=kev.json.gz")
                .header("authorization", format!("Bearer {}", s.admin));
            if let Some(n) = len {
                req = req.header("content-length", n);
            }
            let req = req.body(axum::body::Body::from(body)).unwrap();
            let resp = tower::ServiceExt::oneshot(s.router.clone(), req)
                .await
                .unwrap();
            let st = resp.status();
            let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (st, String::from_utf8_lossy(&b).into_owned())
        }
    };
    // Announced: refused before the body is read.
    let (st, text) = send(Some(kev.len()), kev.clone()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(
        text.contains("max_upload") && text.contains(&(kev.len() - 1).to_string()),
        "{text}"
    );
    // Not announced: cut off while streaming.
    let (st, text) = send(None, kev.clone()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(kev_imports(&s).await.is_empty());
    assert!(actions(&s, "feed.import").await.is_empty());
    // Within the limit: imported, and audited as the caller.
    let mut small = gunzip(KEV_OLD);
    let v: Value = serde_json::from_slice(&small).unwrap();
    let mut v2 = v.clone();
    v2["vulnerabilities"] = Value::Array(v["vulnerabilities"].as_array().unwrap()[..10].to_vec());
    small = serde_json::to_vec(&v2).unwrap();
    let (st, text) = send(Some(small.len()), small).await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let out: patchbay_proto::api::FeedImportOut = serde_json::from_str(&text).unwrap();
    assert_eq!(out.source, "upload:kev.json.gz");
    assert_eq!(out.imported[0].records, 10);
    assert_eq!(kev_imports(&s).await, vec!["2025.08.25".to_string()]);
    let a = actions(&s, "feed.import").await;
    assert_eq!(a.len(), 1);
    assert_ne!(a[0]["actor"], "system:feed-sync");
    // Not a feed: a clear 400 naming the upload, nothing stored.
    let (st, text) = send(None, b"hello".to_vec()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("kev.json.gz"), "{text}");
    // The upload directory is left empty.
    let uploads = s.app.config().feeds.dir.clone().unwrap().join("uploads");
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
}

#[tokio::test]
async fn an_upload_past_the_limit_is_413_sqlite() {
    upload_limit("sqlite").await;
}

#[tokio::test]
async fn an_upload_past_the_limit_is_413_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    upload_limit("postgres").await;
}

/// A source without `ETag` but with `Last-Modified`: the second attempt
/// sends `If-Modified-Since` and the origin answers 304 (its log); a new
/// version is fetched again.
async fn if_modified_since(backend: &str) {
    let origin = Origin_::default();
    let base = origin.start().await;
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_OLD)).unwrap(),
        Mode::LastModified,
    );
    let config = AppConfig {
        feeds: FeedSyncConfig {
            sources: vec![source("kev", FeedKind::Kev, format!("{base}/kev.json.gz"))],
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    tick(&s, &mut runner).await;
    let r = state(&s, "kev").await;
    assert_eq!(r.last_result, "imported");
    assert_eq!(r.etag, None);
    assert_eq!(
        r.last_modified.as_deref(),
        Some("Tue, 01 Dec 2026 00:00:01 GMT")
    );
    tick(&s, &mut runner).await;
    assert_eq!(state(&s, "kev").await.last_result, "unchanged");
    assert_eq!(
        (
            origin.count("/kev.json.gz", 200),
            origin.count("/kev.json.gz", 304)
        ),
        (1, 1)
    );
    origin.put(
        "/kev.json.gz",
        std::fs::read(fixture(KEV_NEW)).unwrap(),
        Mode::LastModified,
    );
    tick(&s, &mut runner).await;
    assert_eq!(state(&s, "kev").await.last_result, "imported");
    assert_eq!(origin.count("/kev.json.gz", 200), 2);
    assert_eq!(kev_imports(&s).await, vec!["2026.08.07".to_string()]);
}

#[tokio::test]
async fn if_modified_since_is_sent_when_there_is_no_etag_sqlite() {
    if_modified_since("sqlite").await;
}

#[tokio::test]
async fn if_modified_since_is_sent_when_there_is_no_etag_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    if_modified_since("postgres").await;
}

/// Issue 20: a `[[feed_source]]` of kind `csaf` (here a local file, the
/// OASIS Cisco example) is synced and stored like an import; a source of
/// kind `csaf` that holds no CSAF document (the KEV catalog) is refused and
/// stores nothing.
async fn csaf_source(backend: &str) {
    let mut cisco = FeedSource::new(
        "cisco-smi2",
        FeedKind::Csaf,
        Origin::Path(fixture("feeds/csaf/cisco-sa-20180328-smi2.json")),
    );
    cisco.every = SignedDuration::from_hours(1);
    let mut wrong = FeedSource::new("not-csaf", FeedKind::Csaf, Origin::Path(fixture(KEV_OLD)));
    wrong.every = SignedDuration::from_hours(1);
    let config = AppConfig {
        feeds: FeedSyncConfig {
            sources: vec![cisco, wrong],
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    assert_eq!(tick(&s, &mut runner).await, 2);
    let feeds = get(&s, "/api/v1/feeds").await;
    let csaf: Vec<&Value> = feeds["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "csaf")
        .collect();
    assert_eq!(csaf.len(), 1, "{feeds}");
    assert_eq!(csaf[0]["records"], 1);
    let mut tx = s.app.store().read().await.unwrap();
    let docs = tx.csaf_documents().await.unwrap();
    assert_eq!(
        docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["cisco-sa-20180328-smi2"]
    );
    drop(tx);
    let bad = state(&s, "not-csaf").await;
    assert_eq!(bad.last_result, "refused", "{bad:?}");
    assert!(
        bad.last_error.as_deref().unwrap_or("").contains("CSAF"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_csaf_source_is_synced_sqlite() {
    csaf_source("sqlite").await;
}

#[tokio::test]
async fn a_csaf_source_is_synced_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    csaf_source("postgres").await;
}

/// A CSAF provider as a sync source (issue 20): the source names the
/// provider's `provider-metadata.json`; its ROLIE feed and the documents the
/// feed lists (relative links) are fetched and imported; the next sync gets
/// 304 for the metadata and fetches nothing else; a feed listing a document
/// that does not answer fails the sync and keeps the last good data.
async fn csaf_provider(backend: &str) {
    let origin = Origin_::default();
    let base = origin.start().await;
    let meta = "/.well-known/csaf/provider-metadata.json";
    origin.put(
        meta,
        serde_json::to_vec(&serde_json::json!({
            "canonical_url": format!("{base}{meta}"),
            "distributions": [{"rolie": {"feeds": [{"summary": "all", "tlp_label": "WHITE",
                "url": format!("{base}/csaf/feed-tlp-white.json")}]}}],
            "metadata_version": "2.0", "role": "csaf_provider", "list_on_CSAF_aggregators": false,
            "mirror_on_CSAF_aggregators": false, "last_updated": "2026-12-01T00:00:00Z",
            "publisher": {"category": "vendor", "name": "Test", "namespace": "https://example.com"}
        }))
        .unwrap(),
        Mode::Normal,
    );
    let feed = |docs: &[&str]| {
        serde_json::to_vec(
            &serde_json::json!({"feed": {"id": "t", "title": "t", "updated": "2026-12-01T00:00:00Z",
            "entry": docs.iter().map(|d| serde_json::json!({"id": d, "title": d,
                "content": {"type": "application/json", "src": d}})).collect::<Vec<_>>()}}),
        )
        .unwrap()
    };
    origin.put(
        "/csaf/feed-tlp-white.json",
        feed(&[
            "2022/bsi-2022-0001.json",
            "2018/cisco-sa-20180328-smi2.json",
        ]),
        Mode::Normal,
    );
    for (path, file) in [
        (
            "/csaf/2022/bsi-2022-0001.json",
            "feeds/csaf/bsi-2022-0001.json",
        ),
        (
            "/csaf/2018/cisco-sa-20180328-smi2.json",
            "feeds/csaf/cisco-sa-20180328-smi2.json",
        ),
    ] {
        origin.put(path, std::fs::read(fixture(file)).unwrap(), Mode::Normal);
    }
    let mut src = FeedSource::new(
        "psirt",
        FeedKind::Csaf,
        Origin::Url(format!("{base}{meta}")),
    );
    src.every = SignedDuration::from_hours(1);
    let config = AppConfig {
        feeds: FeedSyncConfig {
            sources: vec![src],
            ..Default::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    let docs = |s: &InProcess| {
        let app = s.app.clone();
        async move {
            let mut tx = app.store().read().await.unwrap();
            let mut ids: Vec<String> = tx
                .csaf_documents()
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(tick(&s, &mut runner).await, 1);
    assert_eq!(
        state(&s, "psirt").await.last_result,
        "imported",
        "{:?}",
        state(&s, "psirt").await
    );
    let ids = docs(&s).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().any(|i| i == "cisco-sa-20180328-smi2"), "{ids:?}");
    assert_eq!(origin.count("/csaf/2022/bsi-2022-0001.json", 200), 1);
    // Next sync: the metadata is unchanged (304); nothing else is fetched.
    tick(&s, &mut runner).await;
    assert_eq!(origin.count(meta, 304), 1);
    assert_eq!(origin.count("/csaf/feed-tlp-white.json", 200), 1);
    assert_eq!(origin.count("/csaf/2022/bsi-2022-0001.json", 200), 1);
    // The feed now lists a document that is not there, and the metadata changed:
    // the sync fails naming it, and the two documents stay.
    origin.put(
        "/csaf/feed-tlp-white.json",
        feed(&["2022/bsi-2022-0001.json", "2023/gone.json"]),
        Mode::Normal,
    );
    let body = origin
        .files
        .lock()
        .unwrap()
        .get(meta)
        .unwrap()
        .body
        .to_vec();
    origin.put(meta, body, Mode::Normal);
    tick(&s, &mut runner).await;
    let st = state(&s, "psirt").await;
    assert_ne!(st.last_result, "imported", "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("/csaf/2023/gone.json"),
        "{st:?}"
    );
    assert_eq!(docs(&s).await, ids);
}

#[tokio::test]
async fn a_csaf_provider_is_synced_through_its_rolie_feed_sqlite() {
    csaf_provider("sqlite").await;
}

#[tokio::test]
async fn a_csaf_provider_is_synced_through_its_rolie_feed_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    csaf_provider("postgres").await;
}
