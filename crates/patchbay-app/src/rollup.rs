//! Dashboard rollups: a value a page shows (the overview's numbers, the
//! worklist's first lines, a report) computed **live** while that is cheap,
//! and otherwise served from its last computation — with that computation's
//! time, which the page shows — and recomputed in the background.
//!
//! A NOC screen on 50,000 hosts and 2 M findings cannot read every finding
//! for each page (tens of seconds); it can show numbers computed a minute ago
//! and say so. The rule, per value:
//! - the last computation took less than [`LIVE_BUDGET`]: compute again now
//!   (a small fleet's pages are always live, exactly as before);
//! - else, when the stored one is younger than [`MAX_AGE`], serve it, and
//!   when it is older than [`REFRESH_AFTER`], start one background
//!   recomputation (never two at once);
//! - else (none yet, or too old because refreshing fails), compute now.
//!
//! Ages are measured on the app's clock, so tests control them. Each replica
//! keeps its own rollups (in memory: nothing here is state of record).

use crate::AppError;
use jiff::Timestamp;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A computation faster than this is redone for every page.
pub const LIVE_BUDGET: Duration = Duration::from_millis(150);
/// A stored value older than this is recomputed in the background.
pub const REFRESH_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);
/// A stored value older than this is not served (the page waits for a new one).
pub const MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_secs(15 * 60);

/// What a page got: the value, and — when it was not computed for this
/// request — when it was computed and how long that took.
#[derive(Debug, Clone)]
pub struct Rolled<T> {
    /// The value.
    pub value: Arc<T>,
    /// `Some((computed at, took))` when served from an earlier computation.
    pub stored: Option<(Timestamp, Duration)>,
}

struct Entry<T> {
    value: Arc<T>,
    at: Timestamp,
    took: Duration,
}

/// One rolled-up value.
pub struct Rollup<T> {
    slot: Mutex<Option<Entry<T>>>,
    refreshing: AtomicBool,
}

impl<T> Default for Rollup<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
            refreshing: AtomicBool::new(false),
        }
    }
}

impl<T: Send + Sync + 'static> Rollup<T> {
    fn peek(&self) -> Option<(Arc<T>, Timestamp, Duration)> {
        self.slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|e| (e.value.clone(), e.at, e.took))
    }

    fn put(&self, value: Arc<T>, at: Timestamp, took: Duration) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Entry { value, at, took });
    }

    /// The value by the rule above. `compute` makes a fresh one (it is
    /// called at most once per call, and for a background refresh at most
    /// once at a time); `now` reads the app's clock.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        now: impl Fn() -> Timestamp + Send + Sync + 'static,
        compute: F,
    ) -> Result<Rolled<T>, AppError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let at = now();
        if let Some((value, then, took)) = self.peek()
            && took >= LIVE_BUDGET
            && at.duration_since(then) < MAX_AGE
        {
            if at.duration_since(then) >= REFRESH_AFTER
                && !self.refreshing.swap(true, Ordering::AcqRel)
            {
                let me = self.clone();
                tokio::spawn(async move {
                    let start = Instant::now();
                    let begun = now();
                    if let Ok(v) = compute().await {
                        me.put(Arc::new(v), begun, start.elapsed());
                    }
                    me.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(Rolled {
                value,
                stored: Some((then, took)),
            });
        }
        let start = Instant::now();
        let value = Arc::new(compute().await?);
        self.put(value.clone(), at, start.elapsed());
        Ok(Rolled {
            value,
            stored: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn clock(at: Arc<Mutex<Timestamp>>) -> impl Fn() -> Timestamp + Send + Sync + 'static {
        move || *at.lock().unwrap()
    }

    #[tokio::test]
    async fn cheap_values_are_live_and_dear_ones_are_served_then_refreshed() {
        let t0: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let now = Arc::new(Mutex::new(t0));
        let calls = Arc::new(AtomicU32::new(0));
        let cost = Arc::new(Mutex::new(Duration::ZERO));
        let r: Arc<Rollup<u32>> = Arc::default();
        let compute = {
            let (calls, cost) = (calls.clone(), cost.clone());
            move || {
                let (calls, cost) = (calls.clone(), cost.clone());
                async move {
                    let d = *cost.lock().unwrap();
                    tokio::time::sleep(d).await;
                    Ok(calls.fetch_add(1, Ordering::SeqCst) + 1)
                }
            }
        };
        // Cheap: computed for every call.
        for want in 1..=3 {
            let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
            assert_eq!(*got.value, want);
            assert!(got.stored.is_none());
        }
        // Dear: computed once, then served with its time.
        *cost.lock().unwrap() = LIVE_BUDGET + Duration::from_millis(20);
        let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(*got.value, 4);
        *now.lock().unwrap() = t0 + jiff::SignedDuration::from_secs(30);
        let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(*got.value, 4);
        assert_eq!(got.stored.unwrap().0, t0);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "served, not recomputed");
        // Older than REFRESH_AFTER: served at once, one refresh in the background.
        *now.lock().unwrap() = t0 + REFRESH_AFTER + jiff::SignedDuration::from_secs(1);
        let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(*got.value, 4);
        let again = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(
            *again.value, 4,
            "a second call does not wait for the refresh"
        );
        tokio::time::sleep(LIVE_BUDGET * 3).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "exactly one background refresh"
        );
        let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(*got.value, 5);
        // Older than MAX_AGE: computed now.
        *now.lock().unwrap() = t0 + MAX_AGE + REFRESH_AFTER * 2;
        let got = r.get(clock(now.clone()), compute.clone()).await.unwrap();
        assert_eq!(*got.value, 6);
        assert!(got.stored.is_none());
    }
}
