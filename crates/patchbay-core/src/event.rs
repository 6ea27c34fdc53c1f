//! The typed, versioned event schema (version [`SCHEMA_VERSION`]).
//!
//! Every audited change writes its domain event to the outbox in its own
//! transaction (ADR 0005): kind = the audit action, subject = the target,
//! payload = the audit detail, stored as outbox version 1. Integrations never
//! see that raw form: [`Event::from_outbox`] maps each stored row to one typed
//! [`Event`] of a [`Kind`] (the mapping is the table in [`Kind::from_action`]),
//! and that envelope — `id`, `kind`, `version`, `at`, `actor`, `subject`, the
//! scope fields a subscription can filter on (`deployment`, `group`, `tier`)
//! and `data` — is what webhook receivers get. Actions with no kind of their
//! own become [`Kind::AuditRecorded`], so a subscriber to `*` sees every
//! change. `docs/events.md` documents each kind with an example.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

/// The version of the typed envelope ([`Event`]); the stored outbox rows stay
/// version 1 (the audit detail as is) and are mapped on the way out.
pub const SCHEMA_VERSION: u32 = 2;

/// The kinds of event, as receivers see them (`kind` in the envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A deployment was created (`deployment.created`).
    DeploymentCreated,
    /// A deployment started (`deployment.started`).
    DeploymentStarted,
    /// A ring of a deployment passed its gates (`deployment.ring_passed`).
    DeploymentRingPassed,
    /// A deployment was paused, by a person or a gate (`deployment.paused`).
    DeploymentPaused,
    /// A paused deployment resumed (`deployment.resumed`).
    DeploymentResumed,
    /// A deployment halted on its error budget or a failed canary
    /// (`deployment.halted`).
    DeploymentHalted,
    /// A deployment was aborted (`deployment.aborted`).
    DeploymentAborted,
    /// Every ring passed (`deployment.completed`).
    DeploymentCompleted,
    /// A rollback of the whole deployment was ordered
    /// (`deployment.rolled_back`).
    DeploymentRolledBack,
    /// A host's rollback failed or was never reported: a human must look
    /// (`deployment.rollback_failed`).
    DeploymentRollbackFailed,
    /// An approval was given: a deployment, an out-of-band blackout, an
    /// enrolment (`approval.granted`).
    ApprovalGranted,
    /// A host's rehearsal for a ring that requires one failed: its apply is
    /// never leased (`deployment.rehearsal_failed`).
    DeploymentRehearsalFailed,
    /// A deployment finished (completed, halted, aborted; its jobs all
    /// ended): its test report's counts and where to read it
    /// (`deployment.test_report`).
    DeploymentTestReport,
    /// An exception was added to the register (`exception.added`).
    ExceptionAdded,
    /// An exception was revoked (`exception.revoked`).
    ExceptionRevoked,
    /// An exception ran out (`exception.expired`).
    ExceptionExpired,
    /// An advisory feed was imported (`feed.imported`).
    FeedImported,
    /// Any other audited change (`audit.recorded`): the action, target and
    /// detail as recorded.
    AuditRecorded,
    /// A test delivery (`webhook.test`, `patchbay webhooks test`).
    WebhookTest,
    /// A deployment ring waits for a human approval (`approval.requested`).
    ApprovalRequested,
    /// A step of an escalation chain told someone
    /// (`escalation.notified`; addressed: only the named contact or
    /// webhook subscription receives it).
    EscalationNotified,
    /// An escalation was acknowledged: its chain stops
    /// (`escalation.acknowledged`).
    EscalationAcknowledged,
    /// The weekly exception review (`exception.review`).
    ExceptionReview,
    /// A finding's SLA due date is near (`sla.at_risk`).
    SlaAtRisk,
    /// A finding is past its SLA due date (`sla.breached`).
    SlaBreached,
    /// A synced feed's data is older than its threshold (`feed.stale`, the
    /// feed-sync duty; once per staleness episode).
    FeedStale,
    /// A breached finding's breach ended: it was fixed, or an exception now
    /// covers it (`sla.resolved`, in the same transaction as that change).
    SlaResolved,
    /// A discovery import saw a machine no asset stands for, for the first
    /// time (`asset.shadow_found`; once per shadow candidate).
    AssetShadowFound,
    /// An asset nothing attested for longer than the ghost threshold
    /// (`asset.ghost`, found by a discovery import; once per asset).
    AssetGhost,
    /// An owner's expected-impact notice before a deployment's window
    /// (`deployment.impact_notice`; once per owner per deployment).
    DeploymentImpactNotice,
    /// An owner's summary after a deployment finished
    /// (`deployment.impact_summary`; once per owner per deployment).
    DeploymentImpactSummary,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 31] = [
        Kind::DeploymentCreated,
        Kind::DeploymentStarted,
        Kind::DeploymentRingPassed,
        Kind::DeploymentPaused,
        Kind::DeploymentResumed,
        Kind::DeploymentHalted,
        Kind::DeploymentAborted,
        Kind::DeploymentCompleted,
        Kind::DeploymentRolledBack,
        Kind::DeploymentRollbackFailed,
        Kind::ApprovalGranted,
        Kind::ExceptionAdded,
        Kind::ExceptionRevoked,
        Kind::ExceptionExpired,
        Kind::FeedImported,
        Kind::AuditRecorded,
        Kind::WebhookTest,
        Kind::ApprovalRequested,
        Kind::EscalationNotified,
        Kind::EscalationAcknowledged,
        Kind::ExceptionReview,
        Kind::SlaAtRisk,
        Kind::SlaBreached,
        Kind::FeedStale,
        Kind::SlaResolved,
        Kind::AssetShadowFound,
        Kind::AssetGhost,
        Kind::DeploymentRehearsalFailed,
        Kind::DeploymentImpactNotice,
        Kind::DeploymentImpactSummary,
        Kind::DeploymentTestReport,
    ];

    /// The kinds the issue lists that no part of Patchbay raises yet (they
    /// are reserved names: a subscription may name them and will receive
    /// them once their source exists).
    pub const RESERVED: [&'static str; 5] = [
        "finding.p0",
        "agent.stale",
        "approval.rejected",
        "exception.expiring",
        "audit.verify_failed",
    ];

    /// Its name (`deployment.created`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::DeploymentCreated => "deployment.created",
            Kind::DeploymentStarted => "deployment.started",
            Kind::DeploymentRingPassed => "deployment.ring_passed",
            Kind::DeploymentPaused => "deployment.paused",
            Kind::DeploymentResumed => "deployment.resumed",
            Kind::DeploymentHalted => "deployment.halted",
            Kind::DeploymentAborted => "deployment.aborted",
            Kind::DeploymentCompleted => "deployment.completed",
            Kind::DeploymentRolledBack => "deployment.rolled_back",
            Kind::DeploymentRollbackFailed => "deployment.rollback_failed",
            Kind::ApprovalGranted => "approval.granted",
            Kind::ExceptionAdded => "exception.added",
            Kind::ExceptionRevoked => "exception.revoked",
            Kind::ExceptionExpired => "exception.expired",
            Kind::FeedImported => "feed.imported",
            Kind::AuditRecorded => "audit.recorded",
            Kind::WebhookTest => "webhook.test",
            Kind::ApprovalRequested => "approval.requested",
            Kind::EscalationNotified => "escalation.notified",
            Kind::EscalationAcknowledged => "escalation.acknowledged",
            Kind::ExceptionReview => "exception.review",
            Kind::SlaAtRisk => "sla.at_risk",
            Kind::SlaBreached => "sla.breached",
            Kind::FeedStale => "feed.stale",
            Kind::SlaResolved => "sla.resolved",
            Kind::AssetShadowFound => "asset.shadow_found",
            Kind::AssetGhost => "asset.ghost",
            Kind::DeploymentRehearsalFailed => "deployment.rehearsal_failed",
            Kind::DeploymentImpactNotice => "deployment.impact_notice",
            Kind::DeploymentImpactSummary => "deployment.impact_summary",
            Kind::DeploymentTestReport => "deployment.test_report",
        }
    }

    /// The kind of a stored audit action (the outbox row's `kind`).
    pub fn from_action(action: &str) -> Kind {
        match action {
            "deployment.created" => Kind::DeploymentCreated,
            "deployment.started" => Kind::DeploymentStarted,
            "deployment.ring_passed" => Kind::DeploymentRingPassed,
            "deployment.paused" => Kind::DeploymentPaused,
            "deployment.resumed" => Kind::DeploymentResumed,
            "deployment.halted" => Kind::DeploymentHalted,
            "deployment.aborted" => Kind::DeploymentAborted,
            "deployment.completed" => Kind::DeploymentCompleted,
            "deployment.rollback" => Kind::DeploymentRolledBack,
            "deployment.rollback_failed" => Kind::DeploymentRollbackFailed,
            "deployment.approve" | "blackout.approve" | "asset.approve_enrollment" => {
                Kind::ApprovalGranted
            }
            "exception.add" => Kind::ExceptionAdded,
            "exception.revoke" => Kind::ExceptionRevoked,
            "exception.expired" => Kind::ExceptionExpired,
            "feed.import" => Kind::FeedImported,
            "webhook.test" => Kind::WebhookTest,
            "approval.requested" => Kind::ApprovalRequested,
            "escalation.notify" => Kind::EscalationNotified,
            "escalation.ack" => Kind::EscalationAcknowledged,
            "exception.review" => Kind::ExceptionReview,
            "sla.at_risk" => Kind::SlaAtRisk,
            "sla.breached" => Kind::SlaBreached,
            "feed.stale" => Kind::FeedStale,
            "sla.resolved" => Kind::SlaResolved,
            "asset.shadow_found" => Kind::AssetShadowFound,
            "asset.ghost" => Kind::AssetGhost,
            "deployment.rehearsal_failed" => Kind::DeploymentRehearsalFailed,
            "deployment.impact_notice" => Kind::DeploymentImpactNotice,
            "deployment.impact_summary" => Kind::DeploymentImpactSummary,
            "deployment.test_report" => Kind::DeploymentTestReport,
            _ => Kind::AuditRecorded,
        }
    }

    /// The kind named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One typed event: the envelope every receiver gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `evt_<outbox id>`: stable, unique, increasing.
    pub id: String,
    /// What happened.
    pub kind: Kind,
    /// The schema version ([`SCHEMA_VERSION`]).
    pub version: u32,
    /// When (RFC 3339).
    pub at: Timestamp,
    /// Who did it (`token:1:ops`, `system:duties`, …).
    pub actor: String,
    /// What it happened to (`deployment:DEP-…`, `exception:EXC-…`).
    pub subject: String,
    /// The deployment it concerns, if any (filterable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The policy group it concerns, if its source names one (filterable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The risk tier it concerns (`P0`…), if its source names one
    /// (filterable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// A one-line human summary (templates use it).
    pub summary: String,
    /// The kind's data (documented per kind in `docs/events.md`).
    pub data: Value,
}

impl Event {
    /// The typed event of outbox row `id` (its stored action, actor, subject
    /// and payload). Never fails: an action without a kind of its own is
    /// [`Kind::AuditRecorded`].
    pub fn from_outbox(
        id: i64,
        at: Timestamp,
        action: &str,
        actor: &str,
        subject: &str,
        payload: &Value,
    ) -> Event {
        let kind = Kind::from_action(action);
        let deployment = subject
            .strip_prefix("deployment:")
            .map(str::to_string)
            .or_else(|| str_field(payload, "deployment"));
        let group = str_field(payload, "group");
        let tier = str_field(payload, "tier");
        let message = str_field(payload, "message");
        let summary = match (&message, kind) {
            (Some(m), _) => m.clone(),
            (None, Kind::AuditRecorded) => format!("{action} {subject} by {actor}"),
            (None, k) => format!("{k}: {subject} by {actor}"),
        };
        let data = match kind {
            Kind::AuditRecorded => json!({"action": action, "target": subject, "detail": payload}),
            Kind::ApprovalGranted => json!({"action": action, "detail": payload}),
            _ => payload.clone(),
        };
        Event {
            id: format!("evt_{id}"),
            kind,
            version: SCHEMA_VERSION,
            at,
            actor: actor.to_string(),
            subject: subject.to_string(),
            deployment,
            group,
            tier,
            summary,
            data,
        }
    }
}

fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!(seen.insert(k.as_str()));
        }
        for r in Kind::RESERVED {
            assert!(Kind::parse(r).is_none(), "{r} is reserved, not raised");
        }
    }

    #[test]
    fn stored_actions_map_to_their_kinds() {
        let at: Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let e = Event::from_outbox(
            7,
            at,
            "deployment.halted",
            "system:duties",
            "deployment:DEP-1",
            &json!({"message": "DEP-1 halted: budget"}),
        );
        assert_eq!(e.kind, Kind::DeploymentHalted);
        assert_eq!(e.deployment.as_deref(), Some("DEP-1"));
        assert_eq!(e.summary, "DEP-1 halted: budget");
        assert_eq!(e.id, "evt_7");
        let r = Event::from_outbox(
            8,
            at,
            "deployment.rollback",
            "token:1:ops",
            "deployment:DEP-1",
            &json!({}),
        );
        assert_eq!(r.kind, Kind::DeploymentRolledBack);
        let w = Event::from_outbox(
            9,
            at,
            "window.add",
            "token:1:ops",
            "window:n",
            &json!({"n": 1}),
        );
        assert_eq!(w.kind, Kind::AuditRecorded);
        assert_eq!(w.data["detail"]["n"], 1);
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["kind"], "audit.recorded");
        assert_eq!(v["version"], 2);
        assert!(v.get("deployment").is_none());
    }
}
