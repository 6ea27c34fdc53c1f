//! Liveness of unchanged check-ins, kept in memory and flushed in batches.
//!
//! The steady state of a fleet is the unchanged check-in: the agent's inventory
//! hash matches the one the server holds, it reports no job results, and no
//! job waits for it. Such a check-in changes nothing but the asset's
//! `last_seen_at` and the agent's `last_checkin_at`, so it does not open a write
//! transaction: it authenticates and checks its hash on a reader, and records
//! its time here ([`Heartbeats::record`]). A background task of every replica
//! ([`crate::App::flush_heartbeats`], every `AppConfig::heartbeat_flush`,
//! 5 s by default) writes the pending times in one transaction of batched
//! `UPDATE … FROM (VALUES …)` statements; the stored value only ever moves
//! forward (`max(stored, flushed)`), so replicas flushing the same assets in
//! any order agree. Shutdown flushes what is pending.
//!
//! Readers see the truth in between: every place that judges liveness (the
//! asset list and detail, the reports' coverage, the rollout driver's online
//! check) takes the later of the stored time and this replica's pending one
//! ([`Heartbeats::seen`]). An entry stays in the map until a flush has stored
//! it, so there is no moment where neither holds it.
//!
//! **Bound.** A replica killed with SIGKILL loses the check-in times recorded
//! since its last successful flush, at most one flush interval plus the time
//! a flush takes. Every stored time is the time of a check-in that happened
//! (never later), so after a restart no asset is wrongly live; an asset whose
//! last check-in was lost shows the check-in before it, at most one check-in
//! interval plus one flush interval earlier than the truth, until its next
//! check-in. It is wrongly stale only if `stale_after` (24 h by default) is
//! shorter than the agent's check-in interval plus the flush interval (`patchbay
//! serve` refuses a `--stale-after` not longer than `--heartbeat-flush`; the
//! agents' interval is theirs to choose). The rollout driver counts an agent
//! online when it checked in within three check-in intervals (at least two
//! minutes); it reads this replica's pending times, and another replica's are
//! at most one flush interval behind in the database.
//!
//! Memory: one entry per asset that checked in since the last flush (the fleet
//! size at most).

use jiff::Timestamp;
use patchbay_store::Seen;
use std::collections::HashMap;
use std::sync::Mutex;

/// Default of `AppConfig::heartbeat_flush`.
pub const DEFAULT_HEARTBEAT_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// One asset's latest unflushed check-in.
#[derive(Debug, Clone)]
struct Beat {
    asset_name: String,
    agent_id: String,
    at: Timestamp,
}

/// Check-in times not yet stored, by asset id.
#[derive(Debug, Default)]
pub struct Heartbeats {
    pending: Mutex<HashMap<i64, Beat>>,
}

impl Heartbeats {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Beat>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a check-in of `agent_id` for asset `asset_id` at `at` (a later
    /// time replaces an earlier one, never the other way round).
    pub fn record(&self, asset_id: i64, asset_name: &str, agent_id: &str, at: Timestamp) {
        let mut g = self.lock();
        match g.get_mut(&asset_id) {
            Some(b) if b.at >= at => {}
            Some(b) => {
                b.at = at;
                if b.agent_id != agent_id {
                    b.agent_id = agent_id.to_string();
                }
                if b.asset_name != asset_name {
                    b.asset_name = asset_name.to_string();
                }
            }
            None => {
                g.insert(
                    asset_id,
                    Beat {
                        asset_name: asset_name.to_string(),
                        agent_id: agent_id.to_string(),
                        at,
                    },
                );
            }
        }
    }

    /// The later of `stored` and this replica's pending time for the asset.
    pub fn seen(&self, asset_id: i64, stored: Option<Timestamp>) -> Option<Timestamp> {
        let pending = self.lock().get(&asset_id).map(|b| b.at);
        stored.max(pending)
    }

    /// The pending times by asset name (for the rollout driver, which reads
    /// liveness by host name).
    pub fn by_name(&self) -> HashMap<String, Timestamp> {
        self.lock()
            .values()
            .map(|b| (b.asset_name.clone(), b.at))
            .collect()
    }

    /// How many assets have a pending time.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of what is pending, to store (entries stay until [`Self::stored`]),
    /// in asset id order: replicas flushing at once on PostgreSQL lock the rows
    /// in the same order, so their flushes cannot deadlock each other.
    pub(crate) fn snapshot(&self) -> Vec<Seen> {
        let mut out: Vec<Seen> = self
            .lock()
            .iter()
            .map(|(id, b)| Seen {
                asset_id: *id,
                agent_id: b.agent_id.clone(),
                at: b.at,
            })
            .collect();
        out.sort_unstable_by_key(|s| s.asset_id);
        out
    }

    /// Forgets the entries `flushed` stored, unless a later check-in came
    /// meanwhile (that one stays pending).
    pub(crate) fn stored(&self, flushed: &[Seen]) {
        let mut g = self.lock();
        for s in flushed {
            if g.get(&s.asset_id).is_some_and(|b| b.at <= s.at) {
                g.remove(&s.asset_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn later_wins_and_a_flush_keeps_newer_beats() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1 = t0 + SignedDuration::from_secs(5);
        let h = Heartbeats::default();
        assert_eq!(h.seen(1, Some(t0)), Some(t0));
        h.record(1, "a", "agt_1", t1);
        h.record(1, "a", "agt_1", t0); // an older one (a slower request) loses
        assert_eq!(h.seen(1, None), Some(t1));
        h.record(3, "c", "agt_3", t0);
        h.record(2, "b", "agt_2", t0);
        let ids: Vec<i64> = h.snapshot().iter().map(|s| s.asset_id).collect();
        assert_eq!(ids, [1, 2, 3], "flushed in asset id order");
        h.stored(&h.snapshot()[1..]);
        assert_eq!(h.seen(1, Some(t0)), Some(t1));
        assert_eq!(h.seen(2, Some(t0)), Some(t0));
        let snap = h.snapshot();
        assert_eq!(snap.len(), 1);
        // A check-in arrives while the flush is writing: it stays pending.
        let t2 = t1 + SignedDuration::from_secs(1);
        h.record(1, "a", "agt_1", t2);
        h.stored(&snap);
        assert_eq!(h.seen(1, None), Some(t2));
        h.stored(&h.snapshot());
        assert!(h.is_empty());
        assert_eq!(h.by_name().len(), 0);
    }
}
