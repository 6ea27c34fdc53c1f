//! `FindingStore::sync_package_findings` (issue 14, deliverable 5): a
//! check-in's changed packages' findings written in set-based statements
//! without reading them back — what it opens, resolves, reopens and leaves
//! alone, the counts it returns, the keys it returns only when asked, a
//! package with more matches than one statement could bind as values (its
//! lists go as one JSON parameter), and its refusal of a finding outside the
//! packages synced.

use super::{open, t0};
use jiff::{SignedDuration, Timestamp};
use patchbay_store::{AssetAttrs, FindingRow, NewFinding, PackageSync, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

fn f(adv: &str, package: &str, installed: &str, fixed: Option<&str>) -> NewFinding {
    NewFinding {
        advisory_id: adv.into(),
        package: package.into(),
        arch: "amd64".into(),
        source_package: "src".into(),
        installed_version: installed.into(),
        fixed_version: fixed.map(Into::into),
    }
}

fn pkgs(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (n.to_string(), "amd64".into()))
        .collect()
}

async fn rows(s: &Arc<dyn Store>, asset: i64) -> BTreeMap<String, FindingRow> {
    let mut tx = s.read().await.unwrap();
    tx.findings_of_asset(asset)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.finding.advisory_id.clone(), r))
        .collect()
}

fn counts(p: &PackageSync) -> [u64; 4] {
    [p.opened, p.reopened, p.resolved, p.still_open]
}

async fn sync(
    s: &Arc<dyn Store>,
    asset: i64,
    packages: &[&str],
    current: &[NewFinding],
    at: Timestamp,
    want: bool,
) -> PackageSync {
    let mut tx = s.write().await.unwrap();
    let out = tx
        .sync_package_findings(asset, &pkgs(packages), current, at, want)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    out
}

async fn story(s: Arc<dyn Store>) {
    let (t1, t2, t3) = (
        t0() + SignedDuration::from_hours(1),
        t0() + SignedDuration::from_hours(2),
        t0() + SignedDuration::from_hours(3),
    );
    let (h, other) = {
        let mut tx = s.write().await.unwrap();
        let h = tx
            .insert_asset("h", &AssetAttrs::default(), true, t0())
            .await
            .unwrap();
        let other = tx
            .insert_asset("other", &AssetAttrs::default(), true, t0())
            .await
            .unwrap();
        // Another asset with the same package: never touched.
        tx.insert_findings(other, &[f("DSA-1", "libc6", "1", Some("2"))], t0())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (h, other)
    };

    // First: everything is new.
    let first = [
        f("DSA-1", "libc6", "1", Some("2")),
        f("DSA-2", "libc6", "1", None),
        f("DSA-10", "p2", "7", Some("8")),
    ];
    let out = sync(&s, h, &["libc6", "p2"], &first, t1, false).await;
    assert_eq!(counts(&out), [3, 0, 0, 0]);
    assert!(out.resolved_keys.is_empty());

    // libc6 upgraded: DSA-1 fixed, DSA-2 still open with a new version and a
    // fixed version now known, DSA-3 new; p2 synced with the same match
    // (still open, not written: its last_seen stays).
    let second = [
        f("DSA-2", "libc6", "1.5", Some("3")),
        f("DSA-3", "libc6", "1.5", None),
        f("DSA-10", "p2", "7", Some("8")),
    ];
    let out = sync(&s, h, &["libc6", "p2"], &second, t2, true).await;
    assert_eq!(counts(&out), [1, 0, 1, 2]);
    assert_eq!(
        out.resolved_keys,
        vec![(
            "DSA-1".to_string(),
            "libc6".to_string(),
            "amd64".to_string()
        )]
    );
    let r = rows(&s, h).await;
    assert_eq!(r.len(), 4);
    assert_eq!(
        (r["DSA-1"].resolved_at, r["DSA-1"].last_seen),
        (Some(t2), t1)
    );
    assert_eq!(r["DSA-1"].finding.installed_version, "1");
    assert_eq!(r["DSA-2"].finding, second[0]);
    assert_eq!(
        (
            r["DSA-2"].first_seen,
            r["DSA-2"].last_seen,
            r["DSA-2"].resolved_at
        ),
        (t1, t2, None)
    );
    assert_eq!((r["DSA-3"].first_seen, r["DSA-3"].last_seen), (t2, t2));
    assert_eq!((r["DSA-10"].last_seen, r["DSA-10"].resolved_at), (t1, None));

    // libc6 downgraded back and p2 removed: DSA-1 reopened with its history,
    // DSA-2's fixed version back to unknown (NULL compared as a change),
    // DSA-3 and DSA-10 resolved.
    let third = [
        f("DSA-1", "libc6", "1", Some("2")),
        f("DSA-2", "libc6", "1", None),
    ];
    let out = sync(&s, h, &["libc6", "p2"], &third, t3, false).await;
    assert_eq!(counts(&out), [0, 1, 2, 1]);
    assert!(out.resolved_keys.is_empty(), "keys only when asked");
    let r = rows(&s, h).await;
    assert_eq!(r["DSA-1"].finding, third[0]);
    assert_eq!(
        (
            r["DSA-1"].first_seen,
            r["DSA-1"].last_seen,
            r["DSA-1"].resolved_at
        ),
        (t1, t3, None)
    );
    assert_eq!(r["DSA-2"].finding, third[1]);
    assert_eq!(r["DSA-3"].resolved_at, Some(t3));
    assert_eq!(r["DSA-10"].resolved_at, Some(t3));
    // Synced again unchanged: nothing written, nothing counted but still open.
    let out = sync(
        &s,
        h,
        &["libc6"],
        &third,
        t3 + SignedDuration::from_hours(1),
        true,
    )
    .await;
    assert_eq!(counts(&out), [0, 0, 0, 2]);
    assert_eq!(rows(&s, h).await, r);
    let o = rows(&s, other).await;
    assert_eq!((o["DSA-1"].last_seen, o["DSA-1"].resolved_at), (t0(), None));

    // A finding of a package not synced is refused, naming it.
    {
        let mut tx = s.write().await.unwrap();
        let e = tx
            .sync_package_findings(
                h,
                &pkgs(&["libc6"]),
                &[f("DSA-9", "zlib1g", "1", None)],
                t3,
                false,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("zlib1g"), "{e}");
    }

    // A package with more matches than one statement could bind as values
    // (SQLite allows 32,766: 11,000 × 3 for the resolve, × 6 for the upsert).
    let many: Vec<NewFinding> = (0..11_000)
        .map(|i| f(&format!("CVE-{i}"), "linux-big", "6.1", Some("6.2")))
        .collect();
    let out = sync(&s, h, &["linux-big"], &many, t1, false).await;
    assert_eq!(counts(&out), [11_000, 0, 0, 0]);
    let out = sync(&s, h, &["linux-big"], &many[1..], t2, true).await;
    assert_eq!(counts(&out), [0, 0, 1, 10_999]);
    assert_eq!(
        out.resolved_keys,
        vec![(
            "CVE-0".to_string(),
            "linux-big".to_string(),
            "amd64".to_string()
        )]
    );
    let out = sync(&s, h, &["linux-big"], &many, t3, false).await;
    assert_eq!(counts(&out), [0, 1, 0, 10_999]);
    let r = rows(&s, h).await;
    assert_eq!(
        (
            r["CVE-0"].first_seen,
            r["CVE-0"].last_seen,
            r["CVE-0"].resolved_at
        ),
        (t1, t3, None)
    );
    assert_eq!((r["CVE-1"].last_seen, r["CVE-1"].resolved_at), (t1, None));
}

mod sqlite {
    #[tokio::test]
    async fn sync_package_findings() {
        super::story(super::open("sqlite").await).await
    }
}

mod postgres {
    #[tokio::test]
    async fn sync_package_findings() {
        super::story(super::open("postgres").await).await
    }
}
