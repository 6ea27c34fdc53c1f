//! Backoff on repeated authentication failures.
//!
//! Failed authentications (an unknown, revoked or expired API token; an unknown
//! or revoked agent credential) are counted per **source** (the peer's IP
//! address) and per **credential** (the SHA-256 of the exact secret presented,
//! which the server computes anyway, so no store lookup is needed to know it).
//! A request that presents no credential at all is not a guess and is not
//! counted (its refusal is still audited, rate-limited per source).
//!
//! When a key reaches its threshold within [`BackoffConfig::window`], it is
//! locked for [`BackoffConfig::base_lock`]; every further failure of that key
//! (after the lock ran out) locks it again for twice as long, up to
//! [`BackoffConfig::max_lock`]. While a key is locked, requests matching it are
//! answered `429 Too Many Requests` with `Retry-After` **before** the secret is
//! looked up. A success clears the credential's count and the source's count
//! (not its escalation); a key with no failure for [`BackoffConfig::quiet`] is
//! forgotten.
//!
//! Design choices:
//! - Per-source thresholds are generous (many people and agents share an IP
//!   behind NAT); per-credential ones are strict (one client repeating one bad
//!   secret: a script with a revoked token).
//! - The per-credential key is the whole presented secret's hash, not its
//!   display prefix: prefixes are shown in token listings (every reading role
//!   sees them), so keying on a prefix would let any reader lock out someone
//!   else's valid token. A credential key only ever throttles that exact secret.
//! - API and agent failures are kept apart (separate key spaces): a brute force
//!   on the API from behind a NAT does not stop that NAT's agents checking in.
//! - Memory is bounded: at most [`BackoffConfig::capacity`] keys; when full, the
//!   key whose last failure is oldest is evicted.
//!
//! Time comes from the app's clock, so tests advance a `ManualClock`.

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

/// Settings of the authentication backoff.
#[derive(Debug, Clone)]
pub struct BackoffConfig {
    /// Failures from one source within [`Self::window`] before it is locked.
    pub source_threshold: u32,
    /// Failures of one credential within [`Self::window`] before it is locked.
    pub credential_threshold: u32,
    /// The counting window.
    pub window: SignedDuration,
    /// The first lock's length; each further lock doubles it.
    pub base_lock: SignedDuration,
    /// The longest lock.
    pub max_lock: SignedDuration,
    /// A key without failures for this long is forgotten (escalation included).
    pub quiet: SignedDuration,
    /// Most keys tracked at once.
    pub capacity: usize,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            source_threshold: 50,
            credential_threshold: 5,
            window: SignedDuration::from_mins(5),
            base_lock: SignedDuration::from_secs(1),
            max_lock: SignedDuration::from_mins(15),
            quiet: SignedDuration::from_mins(30),
            capacity: 10_000,
        }
    }
}

impl BackoffConfig {
    /// No backoff at all (thresholds out of reach), for tests that send many
    /// refused requests on purpose (the authorisation matrix).
    pub fn disabled() -> Self {
        Self {
            source_threshold: u32::MAX,
            credential_threshold: u32::MAX,
            ..Self::default()
        }
    }
}

/// Which realm a failure belongs to: API tokens or agent credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Realm {
    Api,
    Agent,
    /// Dashboard sign-ins and session cookies.
    Login,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(Realm, String),
    Credential(Realm, String),
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    window_start: Timestamp,
    last_failure: Timestamp,
    strikes: u32,
    locked_until: Option<Timestamp>,
}

/// The failure table (one per app, shared by its clones).
#[derive(Debug)]
pub(crate) struct AuthBackoff {
    cfg: BackoffConfig,
    entries: HashMap<Key, Entry>,
}

impl AuthBackoff {
    pub(crate) fn new(cfg: BackoffConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
        }
    }

    fn keys(realm: Realm, source: &str, credential: Option<&str>) -> Vec<Key> {
        let mut k = vec![Key::Source(realm, source.to_string())];
        if let Some(c) = credential {
            k.push(Key::Credential(realm, c.to_string()));
        }
        k
    }

    /// Whether a request from `source` presenting `credential` (its hash) must
    /// wait: the whole seconds until the longest matching lock ends.
    pub(crate) fn locked(
        &mut self,
        realm: Realm,
        source: &str,
        credential: Option<&str>,
        now: Timestamp,
    ) -> Option<u64> {
        let mut wait: Option<SignedDuration> = None;
        for k in Self::keys(realm, source, credential) {
            if let Some(until) = self.entries.get(&k).and_then(|e| e.locked_until)
                && until > now
            {
                let d = until.duration_since(now);
                wait = Some(wait.map_or(d, |w| w.max(d)));
            }
        }
        wait.map(|d| {
            let ms = d.as_millis().max(1) as u64;
            ms.div_ceil(1000)
        })
    }

    /// Counts a failure.
    pub(crate) fn fail(
        &mut self,
        realm: Realm,
        source: &str,
        credential: Option<&str>,
        now: Timestamp,
    ) {
        for k in Self::keys(realm, source, credential) {
            let threshold = match k {
                Key::Source(..) => self.cfg.source_threshold,
                Key::Credential(..) => self.cfg.credential_threshold,
            };
            if !self.entries.contains_key(&k) && self.entries.len() >= self.cfg.capacity {
                self.evict_oldest();
            }
            let cfg = &self.cfg;
            let e = self.entries.entry(k).or_insert(Entry {
                failures: 0,
                window_start: now,
                last_failure: now,
                strikes: 0,
                locked_until: None,
            });
            if now.duration_since(e.last_failure) >= cfg.quiet || now < e.last_failure {
                *e = Entry {
                    failures: 0,
                    window_start: now,
                    last_failure: now,
                    strikes: 0,
                    locked_until: None,
                };
            } else if e.strikes == 0 && now.duration_since(e.window_start) >= cfg.window {
                e.failures = 0;
                e.window_start = now;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
            // Once locked, every further failure locks again, twice as long.
            if e.failures >= threshold || e.strikes > 0 {
                e.strikes = e.strikes.saturating_add(1);
                let factor = 1i64 << (e.strikes - 1).min(30);
                let lock = cfg
                    .base_lock
                    .checked_mul(factor as i32)
                    .unwrap_or(cfg.max_lock)
                    .min(cfg.max_lock);
                e.locked_until = Some(now + lock);
            }
        }
    }

    /// Counts a success: the credential is forgotten, the source's count
    /// restarts; its escalation stays until it has been quiet.
    pub(crate) fn succeed(&mut self, realm: Realm, source: &str, credential: &str, now: Timestamp) {
        self.entries
            .remove(&Key::Credential(realm, credential.to_string()));
        let key = Key::Source(realm, source.to_string());
        let quiet = self.cfg.quiet;
        let forget = match self.entries.get_mut(&key) {
            Some(e) if now.duration_since(e.last_failure) >= quiet => true,
            Some(e) => {
                e.failures = 0;
                false
            }
            None => false,
        };
        if forget {
            self.entries.remove(&key);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_failure)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&k);
        }
    }

    /// Keys tracked (for the bounded-memory test).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            source_threshold: 3,
            credential_threshold: 2,
            capacity: 4,
            ..BackoffConfig::default()
        }
    }

    #[test]
    fn locks_grow_exponentially_up_to_the_cap_and_clear_after_quiet() {
        let mut b = AuthBackoff::new(cfg());
        for _ in 0..2 {
            b.fail(Realm::Api, "10.0.0.1", None, t(0));
            assert_eq!(b.locked(Realm::Api, "10.0.0.1", None, t(0)), None);
        }
        b.fail(Realm::Api, "10.0.0.1", None, t(0));
        assert_eq!(b.locked(Realm::Api, "10.0.0.1", None, t(0)), Some(1));
        // Another source and the agent realm are untouched.
        assert_eq!(b.locked(Realm::Api, "10.0.0.2", None, t(0)), None);
        assert_eq!(b.locked(Realm::Agent, "10.0.0.1", None, t(0)), None);
        let mut now = 1;
        let mut waits = Vec::new();
        for _ in 0..14 {
            b.fail(Realm::Api, "10.0.0.1", None, t(now));
            let w = b.locked(Realm::Api, "10.0.0.1", None, t(now)).unwrap();
            waits.push(w);
            now += w as i64;
        }
        assert_eq!(&waits[..5], &[2, 4, 8, 16, 32]);
        assert_eq!(*waits.last().unwrap(), 900, "{waits:?}");
        // Quiet for 30 minutes: forgotten.
        now += 1800;
        b.fail(Realm::Api, "10.0.0.1", None, t(now));
        assert_eq!(b.locked(Realm::Api, "10.0.0.1", None, t(now)), None);
    }

    #[test]
    fn a_credential_is_stricter_and_success_clears_it() {
        let mut b = AuthBackoff::new(cfg());
        b.fail(Realm::Api, "a", Some("h1"), t(0));
        b.succeed(Realm::Api, "a", "h1", t(0));
        b.fail(Realm::Api, "b", Some("h1"), t(0));
        assert_eq!(b.locked(Realm::Api, "c", Some("h1"), t(0)), None);
        b.fail(Realm::Api, "c", Some("h1"), t(0));
        // Locked from any source, but only for that secret.
        assert_eq!(b.locked(Realm::Api, "d", Some("h1"), t(0)), Some(1));
        assert_eq!(b.locked(Realm::Api, "d", Some("h2"), t(0)), None);
    }

    #[test]
    fn memory_is_bounded_oldest_evicted() {
        let mut b = AuthBackoff::new(cfg());
        for i in 0..100 {
            b.fail(Realm::Api, &format!("src{i}"), None, t(i));
        }
        assert_eq!(b.len(), 4);
        assert!(
            b.entries
                .contains_key(&Key::Source(Realm::Api, "src99".into()))
        );
        assert!(
            !b.entries
                .contains_key(&Key::Source(Realm::Api, "src0".into()))
        );
    }
}
