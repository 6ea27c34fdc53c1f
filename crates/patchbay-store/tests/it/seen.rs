//! Write-free check-ins, the store's half, on both engines: what an unchanged
//! check-in reads in one query (`checkin_state`, and `agent_for_checkin`:
//! the credential lookup joined with it, equal to the two reads it
//! replaces), and batched liveness
//! (`record_seen`) — the stored times only move forward, so replicas flushing
//! in any order agree, and more rows than one statement holds are all written.

use super::{open, t0};
use jiff::SignedDuration;
use patchbay_core::inventory::HostFacts;
use patchbay_store::{AgentJobRow, AssetAttrs, HostState, RolloutRow, Seen, Store, Tx};
use std::sync::Arc;

/// `agent_for_checkin` gives exactly what `agent_by_secret_hash` and then
/// `checkin_state` give (`None` for an unknown credential).
async fn assert_one_query_equals_two(tx: &mut dyn Tx, hashes: &[&str]) {
    for h in hashes {
        let one = tx.agent_for_checkin(h).await.unwrap();
        let two = match tx.agent_by_secret_hash(h).await.unwrap() {
            Some(a) => {
                let st = tx.checkin_state(a.asset_id).await.unwrap().unwrap();
                Some((a, st))
            }
            None => None,
        };
        assert_eq!(one, two, "{h}");
    }
}

async fn checkin_state_and_record_seen(s: Arc<dyn Store>) {
    let secs = |n: i64| t0() + SignedDuration::from_secs(n);
    // 1,201 assets: more than two statements' worth of rows.
    let mut tx = s.write().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..1201 {
        let name = format!("h{i:04}");
        let id = tx
            .insert_asset(&name, &AssetAttrs::default(), true, t0())
            .await
            .unwrap();
        tx.insert_agent(&format!("agt_{i}"), id, &format!("hash{i}"), None, t0())
            .await
            .unwrap();
        ids.push(id);
    }
    tx.set_host_state(
        ids[0],
        &HostState {
            facts: &HostFacts::default(),
            package_format: Some("deb"),
            pending_updates: &[],
            inventory_hash: "inv-h0",
            seen_at: Some(secs(10)),
            now: secs(10),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    let st = tx.checkin_state(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            st.asset_name.as_str(),
            st.inventory_hash.as_deref(),
            st.open_jobs
        ),
        ("h0000", Some("inv-h0"), false)
    );
    let st1 = tx.checkin_state(ids[1]).await.unwrap().unwrap();
    assert_eq!((st1.inventory_hash, st1.open_jobs), (None, false));
    assert!(tx.checkin_state(i64::MAX).await.unwrap().is_none());
    assert_one_query_equals_two(&mut *tx, &["hash0", "hash1", "hash1200", "nope"]).await;
    // The store's own lookup (one statement outside a transaction, what a
    // check-in runs) reads the same.
    for h in ["hash0", "hash1", "hash1200", "nope"] {
        assert_eq!(
            s.agent_for_checkin(h).await.unwrap(),
            tx.agent_for_checkin(h).await.unwrap(),
            "{h}"
        );
    }
    drop(tx);

    // An open job (no result yet) makes the check-in take the write path.
    let mut tx = s.write().await.unwrap();
    tx.put_rollout(&RolloutRow {
        deployment: "DEP-2026-12-001".into(),
        state: serde_json::json!({"state": "running"}),
        status: "running".into(),
        updated_at: t0(),
    })
    .await
    .unwrap();
    tx.insert_agent_job(&AgentJobRow {
        key: "DEP-2026-12-001/h0000".into(),
        deployment: "DEP-2026-12-001".into(),
        asset: "h0000".into(),
        job: serde_json::json!({"job": {}, "signature": "00"}),
        leased_at: t0(),
        delivered_at: None,
        result: None,
        result_at: None,
        consumed_at: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    assert!(tx.checkin_state(ids[0]).await.unwrap().unwrap().open_jobs);
    assert!(!tx.checkin_state(ids[1]).await.unwrap().unwrap().open_jobs);
    assert!(
        tx.agent_for_checkin("hash0")
            .await
            .unwrap()
            .unwrap()
            .1
            .open_jobs
    );
    assert_one_query_equals_two(&mut *tx, &["hash0", "hash1"]).await;
    drop(tx);

    // A batch: every asset seen at 20 s, but asset 0 at 5 s (earlier than its
    // stored 10 s: it stays at 10 s).
    let batch: Vec<Seen> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Seen {
            asset_id: *id,
            agent_id: format!("agt_{i}"),
            at: if i == 0 { secs(5) } else { secs(20) },
        })
        .collect();
    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.record_seen(&batch).await.unwrap(), 1200);
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let seen: std::collections::HashMap<String, Option<jiff::Timestamp>> =
        tx.asset_last_seen().await.unwrap().into_iter().collect();
    assert_eq!(seen.len(), 1201);
    assert_eq!(seen["h0000"], Some(secs(10)));
    assert!(
        seen.iter()
            .filter(|(n, _)| n.as_str() != "h0000")
            .all(|(_, t)| *t == Some(secs(20))),
        "every asset of the batch is stored, across statements"
    );
    let a = tx.agent_by_secret_hash("hash1200").await.unwrap().unwrap();
    assert_eq!(a.last_checkin_at, Some(secs(20)));
    drop(tx);

    // Another replica's older batch does not move a time back.
    let mut tx = s.write().await.unwrap();
    let older = [Seen {
        asset_id: ids[7],
        agent_id: "agt_7".into(),
        at: secs(15),
    }];
    assert_eq!(tx.record_seen(&older).await.unwrap(), 0);
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let a = tx.agent_by_secret_hash("hash7").await.unwrap().unwrap();
    assert_eq!(a.last_checkin_at, Some(secs(20)));
}

/// Many check-in lookups at once, more than the lookup connections: each gets
/// exactly what a lookup alone in a read transaction gets for its own hash —
/// known, revoked and unknown credentials, the same hash asked by several at
/// once (a guard for any sharing of connections or statements among them).
async fn concurrent_lookups_get_their_own(s: Arc<dyn Store>) {
    let mut tx = s.write().await.unwrap();
    for i in 0..300 {
        let id = tx
            .insert_asset(&format!("c{i:03}"), &AssetAttrs::default(), true, t0())
            .await
            .unwrap();
        tx.insert_agent(&format!("agt_c{i}"), id, &format!("chash{i}"), None, t0())
            .await
            .unwrap();
        if i % 7 == 0 {
            tx.revoke_agents_of_asset(id, t0()).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    // 300 known, 50 unknown, every third asked three times.
    let hashes: Vec<String> = (0..350)
        .flat_map(|i| {
            let n = if i % 3 == 0 { 3 } else { 1 };
            std::iter::repeat_n(format!("chash{i}"), n)
        })
        .collect();
    let mut want = std::collections::HashMap::new();
    let mut tx = s.read().await.unwrap();
    for h in &hashes {
        want.insert(h.clone(), tx.agent_for_checkin(h).await.unwrap());
    }
    drop(tx);
    assert_eq!(want.values().filter(|v| v.is_none()).count(), 50);
    assert!(want.values().flatten().any(|(a, _)| a.revoked_at.is_some()));
    let tasks: Vec<_> = hashes
        .iter()
        .map(|h| {
            let s = s.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let got = s.agent_for_checkin(&h).await.unwrap();
                (h, got)
            })
        })
        .collect();
    for t in tasks {
        let (h, got) = t.await.unwrap();
        assert_eq!(got, want[&h], "{h}");
    }
}

mod sqlite {
    #[tokio::test]
    async fn checkin_state_and_record_seen() {
        super::checkin_state_and_record_seen(super::open("sqlite").await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lookups_get_their_own() {
        super::concurrent_lookups_get_their_own(super::open("sqlite").await).await
    }
}

mod postgres {
    #[tokio::test]
    async fn checkin_state_and_record_seen() {
        super::checkin_state_and_record_seen(super::open("postgres").await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lookups_get_their_own() {
        super::concurrent_lookups_get_their_own(super::open("postgres").await).await
    }

    /// The check-in lookup's connections are lent without a ping: when the
    /// server has closed them (a restart), the lookup still answers (it is
    /// run once more on the main pool, which checks before lending), and
    /// the next one too.
    #[tokio::test]
    async fn checkin_lookup_survives_closed_connections() {
        use patchbay_store::AssetAttrs;
        use sqlx::Connection;
        let url = patchbay_store::testing::fresh_url("postgres").await;
        let s = patchbay_store::open(&url).await.unwrap();
        let mut tx = s.write().await.unwrap();
        let id = tx
            .insert_asset("h", &AssetAttrs::default(), true, super::t0())
            .await
            .unwrap();
        tx.insert_agent("agt_1", id, "hash-1", None, super::t0())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let want = s.agent_for_checkin("hash-1").await.unwrap();
        assert_eq!(want.as_ref().map(|(a, _)| a.id.as_str()), Some("agt_1"));
        // Every other session of this database goes: the pools' idle
        // connections among them.
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(
            killed >= 2,
            "the lookup pool's and the main pool's sessions: {killed}"
        );
        for _ in 0..3 {
            assert_eq!(s.agent_for_checkin("hash-1").await.unwrap(), want);
        }
    }
}
