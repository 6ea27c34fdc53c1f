//! Audit verification benchmark (goal: ≥ 1,000,000 entries/s).
//!
//! 1. The core verifier over 1,000,000 realistic entries in memory (the
//!    server's signature checked on every 1,024th entry and the last), against
//!    a baseline measured in the same run: SHA-256 of the same encodings alone
//!    (the least any verifier must do).
//! 2. End to end: `patchbay_app::evidence::verify_audit` reading a SQLite
//!    database of 200,000 entries written through the store (what
//!    `patchbay audit verify` runs).
//!
//! It lives in patchbay-app, the lowest crate holding both halves (the core
//! verifier and `evidence::verify_audit` over the store).
//!
//! Run: `cargo bench -p patchbay-app --bench audit` (PATCHBAY_BENCH_SCALE=0.1 for a
//! quick run).

use patchbay_core::audit::{
    EntryFields, GENESIS, Signer, StoredEntry, Verifier, encode, entry_hash, public_key,
};
use std::time::Instant;

fn main() {
    let scale: f64 = std::env::var("PATCHBAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((1_000_000.0 * scale) as i64).max(1000);
    let signer = Signer::from_seed(&[5; 32]);
    let key = public_key(&signer.public_hex()).unwrap();
    let every = 1024;

    let mut prev = GENESIS;
    let mut entries = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let detail = format!(
            "{{\"deployment\":\"DEP-2026-11-{:03}\",\"job\":{seq},\"result\":\"succeeded\"}}",
            seq % 1000
        );
        let actor = format!("token:{}:ops-{}", seq % 17, seq % 5);
        let target = format!("asset:web-prod-{:04}", seq % 5000);
        let f = EntryFields {
            seq,
            at_millis: 1_790_000_000_000 + seq * 37,
            actor: &actor,
            action: "job.succeeded",
            target: &target,
            outcome: "ok",
            detail: &detail,
        };
        let h = entry_hash(&f, &prev);
        let sig = (seq % every == 0 || seq == n).then(|| signer.sign_head(seq, &h));
        entries.push(StoredEntry {
            seq,
            at_millis: f.at_millis,
            actor,
            action: "job.succeeded".into(),
            target,
            outcome: "ok".into(),
            detail,
            prev_hash: Some(hex::encode(prev)),
            hash: Some(hex::encode(h)),
            sig,
        });
        prev = h;
    }
    let bytes: usize = entries
        .iter()
        .map(|e| e.actor.len() + e.target.len() + e.detail.len() + 40)
        .sum();

    let mut verify_times = Vec::new();
    let mut base_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut v = Verifier::new(Some(key), every);
        for e in &entries {
            v.push(e).unwrap();
        }
        let s = v.finish().unwrap();
        verify_times.push(t.elapsed().as_secs_f64());
        assert_eq!(s.last_seq, n);

        let t = Instant::now();
        let mut acc = 0u8;
        let mut p = GENESIS;
        for e in &entries {
            let f = EntryFields {
                seq: e.seq,
                at_millis: e.at_millis,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                outcome: &e.outcome,
                detail: &e.detail,
            };
            std::hint::black_box(encode(&f));
            p = entry_hash(&f, &p);
            acc ^= p[0];
        }
        std::hint::black_box(acc);
        base_times.push(t.elapsed().as_secs_f64());
    }
    verify_times.sort_by(f64::total_cmp);
    base_times.sort_by(f64::total_cmp);
    let (vt, bt) = (verify_times[1], base_times[1]);
    println!(
        "audit verify (core): {n} entries, ~{} bytes each",
        bytes / n as usize
    );
    println!(
        "  verifier (chain + content hashes + {} signatures): {:>8.1} ms  {:>10.0} entries/s (goal >= 1,000,000)",
        n / every + 1,
        vt * 1000.0,
        n as f64 / vt
    );
    println!(
        "  baseline: hashing alone:                          {:>8.1} ms  {:>10.0} entries/s  ratio {:.2}",
        bt * 1000.0,
        n as f64 / bt,
        vt / bt
    );

    // End to end through SQLite.
    let m = ((200_000.0 * scale) as i64).max(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = patchbay_store::open(&url).await.unwrap();
        let t = Instant::now();
        let batch = 1000;
        for b in 0..(m / batch) {
            let mut tx = store.write().await.unwrap();
            for i in 0..batch {
                let k = b * batch + i;
                tx.append_audit(
                    &patchbay_store::AuditRecord {
                        at: jiff::Timestamp::from_millisecond(1_790_000_000_000 + k * 37).unwrap(),
                        actor: format!("token:{}:ops", k % 17),
                        action: "job.succeeded".into(),
                        target: format!("asset:web-prod-{:04}", k % 5000),
                        outcome: "ok".into(),
                        detail: serde_json::json!({"deployment": "DEP-2026-11-001", "job": k}),
                    },
                    Some(&signer),
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        }
        let write_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r = patchbay_app::evidence::verify_audit(store.as_ref(), vec![key], every, 0, |_| {})
            .await
            .unwrap()
            .unwrap();
        let vs = t.elapsed().as_secs_f64();
        assert_eq!(r.entries as i64, (m / batch) * batch);
        println!(
            "audit verify (SQLite, end to end): {} entries  {:>8.1} ms  {:>10.0} entries/s   (appending them, signed: {:.0} entries/s)",
            r.entries,
            vs * 1000.0,
            r.entries as f64 / vs,
            r.entries as f64 / write_s
        );
        store.close().await;
    });
}
