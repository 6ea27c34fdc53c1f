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
//! - else (none yet, or too old because refreshing fails), start a
//!   computation (or join the one running: never two at once) and wait for
//!   it — up to the caller's budget. A page passes a short budget and, when
//!   it runs out, shows that the figures are being computed and since when
//!   ([`Got::Pending`]) instead of holding the browser (and any proxy in
//!   front) for a minute; a download passes none and waits.
//!
//! Computations run in their own task — on the blocking pool, so their long
//! stretches of ranking never hold a runtime worker that requests wait
//! on —, and a request that stops waiting does not cancel one. Ages are measured on the app's clock, so tests
//! control them. Each replica keeps its own rollups (in memory: nothing here
//! is state of record).

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
/// How long a page waits for a value being computed before it says so,
/// once a computation of it is known to take longer than [`FIRST_WAIT`].
pub const PAGE_WAIT: Duration = Duration::from_millis(250);
/// How long a page waits for a value whose cost is not known yet (the first
/// after a start) or was under this: a small fleet's pages never say
/// "being computed", a large fleet's first page says it after this long.
pub const FIRST_WAIT: Duration = Duration::from_secs(5);

/// What a page got: the value, and — when it was not computed for this
/// request — when it was computed and how long that took.
#[derive(Debug, Clone)]
pub struct Rolled<T> {
    /// The value.
    pub value: Arc<T>,
    /// `Some((computed at, took))` when served from an earlier computation.
    pub stored: Option<(Timestamp, Duration)>,
}

/// A value, or — when the caller's wait ran out — that it is being computed.
#[derive(Debug, Clone)]
pub enum Got<T> {
    /// The value.
    Ready(Rolled<T>),
    /// Being computed since this time (on the app's clock); the previous
    /// computation's duration when there was one.
    Pending {
        /// When the running computation began.
        since: Timestamp,
        /// How long the last finished computation took, if any.
        last_took: Option<Duration>,
    },
}

impl<T> Got<T> {
    /// The value, or `None` while it is being computed.
    pub fn ready(self) -> Option<Rolled<T>> {
        match self {
            Got::Ready(r) => Some(r),
            Got::Pending { .. } => None,
        }
    }
}

struct Entry<T> {
    value: Arc<T>,
    at: Timestamp,
    took: Duration,
}

/// The computation in flight and the outcome of the last one.
#[derive(Default)]
struct Flight {
    /// When the running computation began (`None`: none running), on the
    /// app's clock and on the monotonic one.
    since: Option<(Timestamp, Instant)>,
    /// Finished computations, counted (waiters watch it change).
    finished: u64,
    /// The last computation's error, cleared by a success.
    error: Option<AppError>,
    /// How long the last finished computation took.
    last_took: Option<Duration>,
}

/// One rolled-up value.
pub struct Rollup<T> {
    slot: Mutex<Option<Entry<T>>>,
    /// Bumped by [`Rollup::clear`]: a computation begun under an older
    /// generation does not store its (possibly stale) value.
    generation: std::sync::atomic::AtomicU64,
    running: AtomicBool,
    flight: Mutex<Flight>,
    done: tokio::sync::Notify,
    first_wait: Duration,
}

impl<T> Default for Rollup<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            running: AtomicBool::new(false),
            flight: Mutex::new(Flight::default()),
            done: tokio::sync::Notify::new(),
            first_wait: FIRST_WAIT,
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + Sync + 'static> Rollup<T> {
    /// A rollup whose pages wait `first_wait` for a value of unknown or
    /// moderate cost (instead of [`FIRST_WAIT`]).
    pub fn with_first_wait(first_wait: Duration) -> Self {
        Self {
            first_wait,
            ..Self::default()
        }
    }

    fn peek(&self) -> Option<(Arc<T>, Timestamp, Duration)> {
        lock(&self.slot)
            .as_ref()
            .map(|e| (e.value.clone(), e.at, e.took))
    }

    fn put(&self, value: Arc<T>, at: Timestamp, took: Duration) {
        *lock(&self.slot) = Some(Entry { value, at, took });
    }

    /// Forgets the value (what it rolls up has changed here): the next
    /// page computes a new one, and one being computed is not stored.
    pub fn clear(&self) {
        let mut slot = lock(&self.slot);
        self.generation.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }

    /// Starts a computation in its own task unless one is running; returns
    /// when the running one began.
    fn start<F, Fut>(
        self: &Arc<Self>,
        now: &Arc<dyn Fn() -> Timestamp + Send + Sync>,
        compute: &Arc<F>,
    ) -> Timestamp
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let mut flight = lock(&self.flight);
        if self.running.swap(true, Ordering::AcqRel) {
            return flight.since.map_or_else(|| now(), |(t, _)| t);
        }
        let begun = now();
        flight.since = Some((begun, Instant::now()));
        drop(flight);
        let (me, compute) = (self.clone(), compute.clone());
        let generation = self.generation.load(Ordering::Acquire);
        // On a blocking-pool thread, not a runtime worker: a computation
        // ranks millions of findings between its awaits, and a worker it
        // held would hold back the requests queued on it.
        let handle = tokio::runtime::Handle::current();
        let compute_there = async move {
            let start = Instant::now();
            let result = compute().await;
            let took = start.elapsed();
            let mut flight = lock(&me.flight);
            match result {
                Ok(v) => {
                    let mut slot = lock(&me.slot);
                    if me.generation.load(Ordering::Acquire) == generation {
                        *slot = Some(Entry {
                            value: Arc::new(v),
                            at: begun,
                            took,
                        });
                    }
                    flight.error = None;
                }
                Err(e) => flight.error = Some(e),
            }
            flight.since = None;
            flight.finished += 1;
            flight.last_took = Some(took);
            me.running.store(false, Ordering::Release);
            drop(flight);
            me.done.notify_waiters();
        };
        tokio::task::spawn_blocking(move || handle.block_on(compute_there));
        begun
    }

    /// The value by the rule above, waiting for a computation up to `wait`
    /// (`None`: as long as it takes). `compute` makes a fresh one (never
    /// two at once); `now` reads the app's clock.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        now: impl Fn() -> Timestamp + Send + Sync + 'static,
        compute: F,
        wait: Option<Duration>,
    ) -> Result<Got<T>, AppError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let now: Arc<dyn Fn() -> Timestamp + Send + Sync> = Arc::new(now);
        let compute = Arc::new(compute);
        let at = now();
        match self.peek() {
            // Dear and young enough: served; refreshed in the background
            // once older than REFRESH_AFTER.
            Some((value, then, took))
                if took >= LIVE_BUDGET && at.duration_since(then) < MAX_AGE =>
            {
                if at.duration_since(then) >= REFRESH_AFTER {
                    self.start(&now, &compute);
                }
                return Ok(Got::Ready(Rolled {
                    value,
                    stored: Some((then, took)),
                }));
            }
            // Cheap: computed for this request, here.
            Some((_, _, took)) if took < LIVE_BUDGET => {
                let start = Instant::now();
                let value = Arc::new(compute().await?);
                self.put(value.clone(), at, start.elapsed());
                return Ok(Got::Ready(Rolled {
                    value,
                    stored: None,
                }));
            }
            // None yet, or too old: computed (or joined), waited for.
            _ => {}
        }
        // A page waits briefly only for a value known to be dear: the last
        // computation took longer than `first_wait`, or the running one has
        // run that long already. Else up to `first_wait` from its start.
        let deadline = wait.map(|w| {
            let flight = lock(&self.flight);
            let soon = tokio::time::Instant::now() + w;
            match (flight.last_took, flight.since) {
                (Some(t), _) if t > self.first_wait => soon,
                (_, Some((_, started))) => soon.max((started + self.first_wait).into()),
                _ => soon.max(tokio::time::Instant::now() + self.first_wait),
            }
        });
        loop {
            // Registered before looking, so a finish in between is not missed.
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = lock(&self.flight).finished;
            let since = self.start(&now, &compute);
            let finished = match deadline {
                Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
                None => {
                    notified.await;
                    true
                }
            };
            let flight = lock(&self.flight);
            if !finished {
                return Ok(Got::Pending {
                    since,
                    last_took: flight.last_took,
                });
            }
            if flight.finished == seen {
                continue;
            }
            if let Some(e) = &flight.error {
                return Err(e.clone());
            }
            drop(flight);
            if let Some((value, then, took)) = self.peek() {
                let stored = (then < at).then_some((then, took));
                return Ok(Got::Ready(Rolled { value, stored }));
            }
        }
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
            let got = r
                .get(clock(now.clone()), compute.clone(), None)
                .await
                .unwrap()
                .ready()
                .unwrap();
            assert_eq!(*got.value, want);
            assert!(got.stored.is_none());
        }
        // Dear: computed once, then served with its time.
        *cost.lock().unwrap() = LIVE_BUDGET + Duration::from_millis(20);
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(*got.value, 4);
        *now.lock().unwrap() = t0 + jiff::SignedDuration::from_secs(30);
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(*got.value, 4);
        assert_eq!(got.stored.unwrap().0, t0);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "served, not recomputed");
        // Older than REFRESH_AFTER: served at once, one refresh in the background.
        *now.lock().unwrap() = t0 + REFRESH_AFTER + jiff::SignedDuration::from_secs(1);
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(*got.value, 4);
        let again = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
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
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(*got.value, 5);
        // Older than MAX_AGE: computed now.
        *now.lock().unwrap() = t0 + MAX_AGE + REFRESH_AFTER * 2;
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(*got.value, 6);
        assert!(got.stored.is_none());
    }

    #[tokio::test]
    async fn a_page_is_told_a_dear_first_value_is_being_computed_and_never_starts_two() {
        let t0: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let now = Arc::new(Mutex::new(t0));
        let calls = Arc::new(AtomicU32::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let r: Arc<Rollup<u32>> = Arc::new(Rollup::with_first_wait(Duration::from_millis(30)));
        let compute = {
            let (calls, fail) = (calls.clone(), fail.clone());
            move || {
                let (calls, fail) = (calls.clone(), fail.clone());
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    if fail.load(Ordering::SeqCst) {
                        return Err(AppError::invalid("the store is down"));
                    }
                    Ok(n)
                }
            }
        };
        let short = Some(Duration::from_millis(20));
        // Two pages while the first computation runs: both told, one computation.
        for _ in 0..2 {
            match r
                .get(clock(now.clone()), compute.clone(), short)
                .await
                .unwrap()
            {
                Got::Pending { since, last_took } => {
                    assert_eq!(since, t0);
                    assert!(last_took.is_none());
                }
                Got::Ready(_) => panic!("a 400 ms value is not ready in 20 ms"),
            }
        }
        // A download waits, joining the running computation.
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap();
        let got = got.ready().unwrap();
        assert_eq!(*got.value, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "never two at once");
        // Then pages are served the stored value at once.
        let got = r
            .get(clock(now.clone()), compute.clone(), short)
            .await
            .unwrap();
        assert_eq!(*got.ready().unwrap().value, 1);
        // A failing computation's error reaches the waiting caller.
        fail.store(true, Ordering::SeqCst);
        *now.lock().unwrap() = t0 + MAX_AGE + jiff::SignedDuration::from_secs(1);
        let err = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the store is down"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_first_value_of_unknown_cost_is_waited_for_up_to_the_first_wait() {
        let t0: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let now = Arc::new(Mutex::new(t0));
        let r: Arc<Rollup<u32>> = Arc::new(Rollup::with_first_wait(Duration::from_millis(600)));
        let compute = || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(7)
        };
        // Unknown cost: a page asking for 10 ms still waits (up to 600 ms).
        let got = r
            .get(clock(now.clone()), compute, Some(Duration::from_millis(10)))
            .await
            .unwrap();
        assert_eq!(*got.ready().expect("waited for, not pending").value, 7);
    }

    #[tokio::test]
    async fn a_cleared_value_is_computed_again_and_a_stale_computation_is_not_kept() {
        let t0: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let now = Arc::new(Mutex::new(t0));
        let value = Arc::new(AtomicU32::new(1));
        let r: Arc<Rollup<u32>> = Arc::new(Rollup::with_first_wait(Duration::from_millis(30)));
        let compute = {
            let value = value.clone();
            move || {
                let value = value.clone();
                async move {
                    let v = value.load(Ordering::SeqCst);
                    tokio::time::sleep(LIVE_BUDGET + Duration::from_millis(100)).await;
                    Ok(v)
                }
            }
        };
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap();
        assert_eq!(*got.ready().unwrap().value, 1);
        // Served while young; cleared, the next call sees the new value.
        value.store(2, Ordering::SeqCst);
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap();
        assert_eq!(*got.ready().unwrap().value, 1);
        r.clear();
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap();
        assert_eq!(*got.ready().unwrap().value, 2);
        // A computation that began before a clear does not store its value.
        r.clear();
        value.store(3, Ordering::SeqCst);
        let short = Some(Duration::from_millis(10));
        assert!(matches!(
            r.get(clock(now.clone()), compute.clone(), short)
                .await
                .unwrap(),
            Got::Pending { .. }
        ));
        r.clear();
        value.store(4, Ordering::SeqCst);
        let got = r
            .get(clock(now.clone()), compute.clone(), None)
            .await
            .unwrap();
        assert_eq!(
            *got.ready().unwrap().value,
            4,
            "not the value read before the clear"
        );
    }
}
