//! System work: who Patchbay is when no person asked.
//!
//! Background duties, start-up, the zero-day lane, fleet re-assessment and
//! the refusal limiter act as named system callers, never as an anonymous
//! "system": each is a [`SystemActor`] with its own audit name and the least
//! role it needs. Only this crate creates them ([`SystemActor::caller`] is
//! crate-private), so no request can claim to be the system.

//!
//! A leaf of the module graph: `auth` builds an actor's [`crate::Caller`]
//! (`SystemActor::caller`), so this module depends on nothing of the crate.

use patchbay_core::auth::Role;

/// A named system caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemActor {
    /// First start: the signing key's registration, sealing the chain, the
    /// first admin token, change records for deployments that predate them.
    Bootstrap,
    /// The duties runner's own records (leader terms).
    Duties,
    /// Raising exception expiry events (a duty).
    ExceptionExpiry,
    /// The zero-day lane: proposes out-of-band deployments after a KEV change.
    ZeroDayLane,
    /// Re-assessing the fleet after its feeds changed.
    Assessor,
    /// Aggregating refused requests (bounded refusal logging).
    RefusalLimiter,
    /// Stamping an API token's last use while authenticating it.
    Authenticator,
    /// The rollout driver (a duty): steps deployments, leases jobs.
    RolloutDriver,
    /// Storing the batched check-in times of unchanged check-ins.
    Heartbeats,
    /// Webhook delivery: fans outbox events out into deliveries and records
    /// attempts (bookkeeping of already-audited events, never audited itself).
    Webhooks,
    /// SIEM forwarding: stores each sink's cursor into the audit log
    /// (bookkeeping of already-audited entries, never audited itself).
    Siem,
    /// Escalation chains (a duty): opens, resolves and steps escalations.
    Escalations,
    /// Email delivery: fans outbox events out to contacts and records
    /// attempts (bookkeeping, never audited itself).
    Email,
    /// The SLA watch (a duty): raises `sla.at_risk` and `sla.breached`.
    SlaWatch,
    /// Feed sync (a duty): fetches the configured feed sources, imports
    /// what changed, raises `feed.stale`.
    FeedSync,
    /// The discovery-scan duty: runs the configured nmap scans and imports them.
    DiscoveryScan,
}

impl SystemActor {
    /// The name recorded as the actor of its audit entries. Do not change:
    /// stored audit entries and reports name these.
    pub const fn name(self) -> &'static str {
        match self {
            SystemActor::Bootstrap => "system",
            SystemActor::Duties => "system:duties",
            SystemActor::ExceptionExpiry => "system:scheduler",
            SystemActor::ZeroDayLane => "system:zero-day-lane",
            SystemActor::Assessor => "system:assessor",
            SystemActor::RefusalLimiter => "system:refusal-limiter",
            SystemActor::Authenticator => "system:authenticator",
            SystemActor::RolloutDriver => "system:rollout-driver",
            SystemActor::Heartbeats => "system:heartbeats",
            SystemActor::Webhooks => "system:webhooks",
            SystemActor::Siem => "system:siem",
            SystemActor::Escalations => "system:escalations",
            SystemActor::Email => "system:email",
            SystemActor::SlaWatch => "system:sla-watch",
            SystemActor::FeedSync => "system:feed-sync",
            SystemActor::DiscoveryScan => "system:discovery-scan",
        }
    }

    /// The least role the work needs: the zero-day lane only reads what it
    /// proposes (its deployment must still be approved by a person), the rest
    /// keep the server's own records.
    pub const fn role(self) -> Role {
        match self {
            SystemActor::ZeroDayLane => Role::Auditor,
            _ => Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_actors_have_distinct_names_under_system() {
        let all = [
            SystemActor::Bootstrap,
            SystemActor::Duties,
            SystemActor::ExceptionExpiry,
            SystemActor::ZeroDayLane,
            SystemActor::Assessor,
            SystemActor::RefusalLimiter,
            SystemActor::Authenticator,
            SystemActor::RolloutDriver,
            SystemActor::Heartbeats,
            SystemActor::Webhooks,
            SystemActor::Siem,
            SystemActor::Escalations,
            SystemActor::Email,
            SystemActor::SlaWatch,
            SystemActor::FeedSync,
            SystemActor::DiscoveryScan,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), all.len());
        for a in all {
            assert!(a.name().starts_with("system"), "{}", a.name());
            assert_eq!(a.caller().actor(), a.name());
        }
        assert_eq!(SystemActor::ZeroDayLane.caller().role, Role::Auditor);
    }
}
