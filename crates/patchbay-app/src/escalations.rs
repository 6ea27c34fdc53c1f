//! Notification contacts and escalation chains (issue 15; docs/notifications.md).
//!
//! **Contacts** (`patchbay contacts`): a named email address and the event
//! kinds emailed to it (`approval.requested`, `deployment.completed`,
//! `exception.review`, …). That is the whole recipient model: a "role" or a
//! "group" to notify is a contact whose address is that team's list. The
//! email half ([`crate::email`]) fans each contact's events out of the
//! outbox and sends them.
//!
//! **Chains** (`patchbay escalations`): ordered steps (channel — email to a
//! contact or a webhook subscription —, whom, wait) for pending approvals
//! or SLA at-risk/breached findings. The duty [`App::run_escalations`] (in
//! the duties runner, on the lease holder, time from the app's clock) reads
//! each chain's new outbox events after its cursor: a starting event opens
//! an escalation (unique per chain and event), an approval decided
//! (`deployment.approve`/`abort`/…) resolves the open ones about that
//! deployment. Then every open escalation whose next step is due fires it
//! ([`patchbay_core::escalation::advance`]): each step is an audited change
//! `escalation.notify` whose outbox event (`escalation.notified`) names its
//! channel and recipient, so the step is delivered by the same outbox that
//! delivers everything else — to that contact by email, or to that webhook
//! subscription — exactly once per recipient. Acknowledging (API, CLI)
//! closes an escalation: nothing fires after it.

use crate::outbox::{self, Consumer};
use crate::{App, AppError, Caller, RequestCtx, SystemActor};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::escalation::{self, Step, Trigger, valid_name};
use patchbay_core::rollout::{RingState, Rollout};
use patchbay_core::webhook::Filter;
use patchbay_proto::api::{
    ContactOut, ContactSpec, EscalationAckIn, EscalationChainDetail, EscalationChainOut,
    EscalationOut, EscalationSpec, EscalationStepOut,
};
use patchbay_proto::error::ErrorCode;
use patchbay_store::{
    ChainRow, ContactRow, EscalationRow, NewChain, NewContact, email_state, escalation_state as est,
};
use serde_json::{Value, json};

/// Events read per chain per run.
const BATCH: i64 = 500;

/// Stored actions that decide a deployment's pending approval (its open
/// approval escalations are resolved).
const DECIDES_APPROVAL: [&str; 5] = [
    "deployment.approve",
    "deployment.abort",
    "deployment.aborted",
    "deployment.completed",
    "deployment.rollback",
];

/// The names of the rings of `after` that started waiting for a human
/// approval since `before` (a ring whose spec asks for approval reached the
/// approval gate unapproved): each is an `approval.requested` event.
pub fn rings_awaiting_approval(before: &Rollout, after: &Rollout) -> Vec<String> {
    after
        .rings
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r.state == RingState::AwaitingApproval
                && r.spec.approval
                && r.approved_by.is_none()
                && before
                    .rings
                    .get(*i)
                    .is_none_or(|b| b.state != RingState::AwaitingApproval)
        })
        .map(|(_, r)| r.spec.name.clone())
        .collect()
}

/// Reads `ESC-12` or `12`.
fn escalation_id(s: &str) -> Result<i64, AppError> {
    let n = s.trim().strip_prefix("ESC-").unwrap_or(s.trim());
    n.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::invalid(format!("id {s:?}: an escalation id is ESC-<number>")))
}

fn steps_of(c: &ChainRow) -> Result<Vec<Step>, AppError> {
    serde_json::from_value(c.chain.steps.clone()).map_err(|e| {
        AppError::invalid(format!(
            "escalation chain {:?}: stored steps unreadable: {e}",
            c.chain.name
        ))
    })
}

fn chain_out(c: &ChainRow, open: u64) -> EscalationChainOut {
    EscalationChainOut {
        name: c.chain.name.clone(),
        trigger: c.chain.trigger.clone(),
        steps: steps_of(c)
            .unwrap_or_default()
            .iter()
            .map(Step::render)
            .collect(),
        open,
        created_at: c.chain.created_at.to_string(),
        created_by: c.chain.created_by.clone(),
    }
}

fn escalation_out(chain: &str, e: &EscalationRow) -> EscalationOut {
    let steps = e
        .history
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| EscalationStepOut {
                    step: h["step"].as_u64().unwrap_or(0) as u32,
                    channel: h["channel"].as_str().unwrap_or("").to_string(),
                    to: h["to"].as_str().unwrap_or("").to_string(),
                    due_at: h["due_at"].as_str().unwrap_or("").to_string(),
                    at: h["at"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    EscalationOut {
        id: format!("ESC-{}", e.id),
        chain: chain.to_string(),
        subject: e.subject.clone(),
        summary: e.summary.clone(),
        state: e.state.clone(),
        started_at: e.started_at.to_string(),
        next_at: e.next_at.map(|t| t.to_string()),
        steps,
        closed_at: e.closed_at.map(|t| t.to_string()),
        closed_by: e.closed_by.clone(),
        comment: e.comment.clone(),
    }
}

/// Checks an email address for a contact: one `local@domain` that lettre
/// accepts, nothing else (no display name, no line breaks, no list).
pub fn check_email(field: &str, s: &str) -> Result<String, AppError> {
    let s = s.trim();
    if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AppError::invalid(format!(
            "{field} {s:?}: one address local@domain, without spaces or line breaks"
        )));
    }
    s.parse::<lettre::Address>()
        .map_err(|e| AppError::invalid(format!("{field} {s:?}: not an email address ({e})")))?;
    Ok(s.to_string())
}

impl App {
    /// Adds a contact (emailed from now on).
    pub async fn add_contact(
        &self,
        caller: &Caller,
        spec: &ContactSpec,
        ctx: &RequestCtx,
    ) -> Result<ContactOut, AppError> {
        if !valid_name(&spec.name) {
            return Err(AppError::invalid(format!(
                "contact name {:?}: use 1–64 letters, digits, '-', '_' or '.'",
                spec.name
            )));
        }
        let email = check_email("email", &spec.email)?;
        Filter {
            events: spec.events.clone(),
            ..Default::default()
        }
        .validate()
        .map_err(AppError::invalid)?;
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let mut new = NewContact {
            name: spec.name.clone(),
            email,
            events: spec.events.clone(),
            cursor: 0,
            created_at: now,
            created_by: tx.actor().to_string(),
        };
        let Some(id) = tx.add_contact(&new).await? else {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("a contact named {:?} exists", spec.name),
            ));
        };
        tx.audit(
            "contact.add",
            &format!("contact:{}", spec.name),
            json!({"email": new.email, "events": new.events}),
        )
        .await?;
        // From now on: nothing earlier is emailed.
        new.cursor = tx.outbox_head().await?;
        tx.set_contact_cursor(id, new.cursor).await?;
        tx.commit().await?;
        Ok(contact_out(&ContactRow { id, contact: new }, &[]))
    }

    /// Every contact with its delivery counts.
    pub async fn contacts(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<ContactOut>, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let mut r = self.store.read().await?;
        let contacts = r.contacts().await?;
        let mut out = Vec::new();
        for c in &contacts {
            let log = r.emails(Some(c.id), 100_000).await?;
            let states: Vec<&str> = log.iter().map(|d| d.state.as_str()).collect();
            out.push(contact_out(c, &states));
        }
        Ok(out)
    }

    /// Removes a contact and its deliveries.
    pub async fn remove_contact(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.remove_contact(name).await? {
            return Err(AppError::not_found(format!("no contact named {name:?}")));
        }
        tx.audit("contact.remove", &format!("contact:{name}"), json!({}))
            .await?;
        tx.commit().await
    }

    /// Adds an escalation chain; the contacts and webhook subscriptions its
    /// steps name must exist. It starts for events from now on.
    pub async fn add_escalation(
        &self,
        caller: &Caller,
        spec: &EscalationSpec,
        ctx: &RequestCtx,
    ) -> Result<EscalationChainOut, AppError> {
        if !valid_name(&spec.name) {
            return Err(AppError::invalid(format!(
                "escalation name {:?}: use 1–64 letters, digits, '-', '_' or '.'",
                spec.name
            )));
        }
        let trigger = Trigger::parse(&spec.trigger).map_err(AppError::invalid)?;
        let steps = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| Step::parse(&format!("steps[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppError::invalid)?;
        escalation::validate(&steps).map_err(AppError::invalid)?;
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let contacts: Vec<String> = tx
            .contacts()
            .await?
            .into_iter()
            .map(|c| c.contact.name)
            .collect();
        let hooks: Vec<String> = tx
            .subscriptions()
            .await?
            .into_iter()
            .map(|s| s.sub.name)
            .collect();
        for (i, s) in steps.iter().enumerate() {
            let (known, what) = match s.channel {
                escalation::Channel::Email => (&contacts, "contact (patchbay contacts add)"),
                escalation::Channel::Webhook => {
                    (&hooks, "webhook subscription (patchbay webhooks add)")
                }
            };
            if !known.contains(&s.to) {
                return Err(AppError::invalid(format!(
                    "steps[{i}]: no {what} named {:?}",
                    s.to
                )));
            }
        }
        let steps_json =
            serde_json::to_value(&steps).map_err(|e| AppError::invalid(e.to_string()))?;
        let mut new = NewChain {
            name: spec.name.clone(),
            trigger: trigger.as_str().to_string(),
            steps: steps_json.clone(),
            cursor: 0,
            created_at: now,
            created_by: tx.actor().to_string(),
        };
        let Some(id) = tx.add_chain(&new).await? else {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("an escalation chain named {:?} exists", spec.name),
            ));
        };
        tx.audit(
            "escalation.add",
            &format!("escalation:{}", spec.name),
            json!({"trigger": new.trigger, "steps": steps.iter().map(Step::render).collect::<Vec<_>>()}),
        )
        .await?;
        new.cursor = tx.outbox_head().await?;
        tx.set_chain_cursor(id, new.cursor).await?;
        tx.commit().await?;
        Ok(chain_out(&ChainRow { id, chain: new }, 0))
    }

    async fn chain_row(&self, name: &str) -> Result<ChainRow, AppError> {
        self.store
            .read()
            .await?
            .chain(name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no escalation chain named {name:?}")))
    }

    /// Every chain with its open escalations' count.
    pub async fn escalations(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<EscalationChainOut>, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let mut r = self.store.read().await?;
        let mut out = Vec::new();
        for c in r.chains().await? {
            let open = r
                .escalations_of(c.id, 100_000)
                .await?
                .iter()
                .filter(|e| e.state == est::OPEN)
                .count();
            out.push(chain_out(&c, open as u64));
        }
        Ok(out)
    }

    /// A chain and its escalations (newest first, at most 200), each with
    /// the steps fired and when.
    pub async fn escalation_chain(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<EscalationChainDetail, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let c = self.chain_row(name).await?;
        let list = self.store.read().await?.escalations_of(c.id, 200).await?;
        let open = list.iter().filter(|e| e.state == est::OPEN).count() as u64;
        Ok(EscalationChainDetail {
            chain: chain_out(&c, open),
            escalations: list.iter().map(|e| escalation_out(name, e)).collect(),
        })
    }

    /// Removes a chain and its escalations (open ones stop).
    pub async fn remove_escalation(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.remove_chain(name).await? {
            return Err(AppError::not_found(format!(
                "no escalation chain named {name:?}"
            )));
        }
        tx.audit(
            "escalation.remove",
            &format!("escalation:{name}"),
            json!({}),
        )
        .await?;
        tx.commit().await
    }

    /// Acknowledges an open escalation of chain `name`: its chain stops
    /// (audited, event `escalation.acknowledged`). Acknowledging one that
    /// is already closed is a conflict naming its state.
    pub async fn ack_escalation(
        &self,
        caller: &Caller,
        name: &str,
        input: &EscalationAckIn,
        ctx: &RequestCtx,
    ) -> Result<EscalationOut, AppError> {
        let id = escalation_id(&input.id)?;
        let comment = input
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.chars().take(1000).collect::<String>());
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let chain = tx
            .chain(name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no escalation chain named {name:?}")))?;
        let mut e = tx
            .escalation(id)
            .await?
            .filter(|e| e.chain_id == chain.id)
            .ok_or_else(|| AppError::not_found(format!("chain {name:?} has no ESC-{id}")))?;
        if e.state != est::OPEN {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("ESC-{id} is {} already", e.state),
            ));
        }
        e.state = est::ACKNOWLEDGED.into();
        e.next_at = None;
        e.closed_at = Some(now);
        e.closed_by = Some(tx.actor().to_string());
        e.comment = comment.clone();
        tx.update_escalation(&e).await?;
        tx.audit(
            "escalation.ack",
            &format!("escalation:ESC-{id}"),
            json!({
                "chain": name, "subject": e.subject, "comment": comment,
                "steps_fired": e.fired,
                "message": format!("ESC-{id} ({}) acknowledged by {}", e.subject, tx.actor()),
            }),
        )
        .await?;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(escalation_out(name, &e))
    }

    /// The escalation duty: opens and resolves escalations from each chain's
    /// new outbox events, then fires every step that is due, each an audited
    /// change with its `escalation.notified` event — one transaction.
    /// Returns the steps fired.
    pub async fn run_escalations(&self) -> Result<usize, AppError> {
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::Escalations).await?;
        let chains = tx.chains().await?;
        let mut recorded = false;
        for c in &chains {
            let Ok(trigger) = Trigger::parse(&c.chain.trigger) else {
                continue;
            };
            let steps = steps_of(c)?;
            let pending =
                outbox::Pending::read(&mut tx, Consumer::Chain(c.id), c.chain.cursor, BATCH)
                    .await?;
            for (row, typed) in pending.events() {
                let ev = &row.event;
                if trigger.starts_on(&ev.kind) {
                    let e = EscalationRow {
                        id: 0,
                        chain_id: c.id,
                        event_id: row.id,
                        subject: ev.subject.clone(),
                        summary: typed.summary.chars().take(500).collect(),
                        state: est::OPEN.into(),
                        started_at: ev.at,
                        fired: 0,
                        next_at: escalation::due_at(&steps, ev.at, 0),
                        history: json!([]),
                        closed_at: None,
                        closed_by: None,
                        comment: None,
                    };
                    if let Some(id) = tx.insert_escalation(&e).await? {
                        tx.audit(
                            "escalation.start",
                            &format!("escalation:ESC-{id}"),
                            json!({"chain": c.chain.name, "subject": e.subject, "event": format!("evt_{}", row.id)}),
                        )
                        .await?;
                        recorded = true;
                    }
                } else if (trigger == Trigger::Approval
                    && DECIDES_APPROVAL.contains(&ev.kind.as_str()))
                    || (trigger == Trigger::Sla && ev.kind == "sla.resolved")
                {
                    // The approval was decided, or the finding's breach
                    // ended (fixed, excepted): nobody needs paging about it.
                    for mut e in tx.open_escalations_about(&ev.subject).await? {
                        if e.chain_id != c.id {
                            continue;
                        }
                        e.state = est::RESOLVED.into();
                        e.next_at = None;
                        e.closed_at = Some(now);
                        e.closed_by = Some(format!("{} ({})", ev.actor, ev.kind));
                        tx.update_escalation(&e).await?;
                        tx.audit(
                            "escalation.resolve",
                            &format!("escalation:ESC-{}", e.id),
                            json!({"chain": c.chain.name, "subject": e.subject, "by": ev.kind, "actor": ev.actor}),
                        )
                        .await?;
                        recorded = true;
                    }
                }
            }
            pending.advance(&mut tx).await?;
        }
        // Fire what is due.
        let mut fired = 0;
        for mut e in tx.due_escalations(now, 1000).await? {
            let Some(c) = chains.iter().find(|c| c.id == e.chain_id) else {
                continue;
            };
            let steps = steps_of(c)?;
            let adv = escalation::advance(&steps, e.started_at, e.fired.max(0) as usize, now);
            let mut history: Vec<Value> = e.history.as_array().cloned().unwrap_or_default();
            for (i, due) in &adv.fire {
                let s = &steps[*i];
                let message = format!(
                    "Escalation ESC-{} (step {} of {}, {}): {}",
                    e.id,
                    i + 1,
                    steps.len(),
                    c.chain.name,
                    e.summary
                );
                tx.audit(
                    "escalation.notify",
                    &format!("escalation:ESC-{}", e.id),
                    json!({
                        "escalation": format!("ESC-{}", e.id), "chain": c.chain.name,
                        "step": i, "of": steps.len(), "channel": s.channel.as_str(), "to": s.to,
                        "subject": e.subject, "due_at": due.to_string(), "message": message,
                    }),
                )
                .await?;
                history.push(json!({
                    "step": i, "channel": s.channel.as_str(), "to": s.to,
                    "due_at": due.to_string(), "at": now.to_string(),
                }));
                fired += 1;
                recorded = true;
            }
            e.fired += adv.fire.len() as i32;
            e.next_at = adv.next_at;
            e.history = Value::Array(history);
            if adv.next_at.is_none() {
                e.state = est::EXHAUSTED.into();
                e.closed_at = Some(now);
                e.closed_by = Some(SystemActor::Escalations.name().into());
            }
            tx.update_escalation(&e).await?;
        }
        if recorded {
            tx.commit().await?;
            self.outbox_bell().notify_one();
        } else {
            tx.commit_unaudited("escalation cursors moved; nothing started, closed or fired")
                .await?;
        }
        Ok(fired)
    }

    /// When the next escalation step is due (none: nothing open).
    pub async fn next_escalation_at(&self) -> Result<Option<Timestamp>, AppError> {
        let mut r = self.store.read().await?;
        Ok(r.due_escalations(Timestamp::MAX, 1)
            .await?
            .first()
            .and_then(|e| e.next_at))
    }
}

fn contact_out(c: &ContactRow, states: &[&str]) -> ContactOut {
    let n = |s: &str| states.iter().filter(|x| **x == s).count() as u64;
    ContactOut {
        name: c.contact.name.clone(),
        email: c.contact.email.clone(),
        events: c.contact.events.clone(),
        pending: n(email_state::PENDING),
        sent: n(email_state::SENT),
        dead: n(email_state::DEAD),
        created_at: c.contact.created_at.to_string(),
        created_by: c.contact.created_by.clone(),
    }
}
