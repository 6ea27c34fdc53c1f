//! The SLA watch and the weekly exception review (issue 15): two duties
//! that raise events once.
//!
//! [`App::watch_sla`] ranks the open findings (the worklist's one ranking:
//! tier, due date, exclusions, exceptions) and raises `sla.at_risk` when a
//! finding's due date is less than [`AT_RISK`] away and `sla.breached` once
//! it has passed — each at most once per finding and state (table
//! `notices`), at most [`MAX_PER_RUN`] per run (the rest on the next run).
//! Excluded findings and findings an active exception covers raise nothing.
//! Escalation chains with `--on sla` start on these events.
//!
//! `crate::breaches::end_breaches` raises `sla.resolved` when a raised breach ends — the
//! finding fixed (the assessment that resolves it) or an exception granted
//! that covers it — in the transaction of that change, once per finding,
//! with the breach's group and tier (kept with its notice) so it reaches
//! every subscription the breach reached (PagerDuty resolves the incident).
//!
//! [`App::review_exceptions_weekly`] raises `exception.review` once per ISO
//! week with the exceptions expiring within 7 days, the expired and the
//! ownerless ones (the same review as `patchbay exceptions review`) — when
//! there is any; a contact listing `exception.review` gets it by email.

use crate::{App, AppError, RequestCtx, SystemActor};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde_json::json;

/// A finding due within this is at risk.
pub const AT_RISK: SignedDuration = SignedDuration::from_hours(24);
/// Events raised per run at most.
pub const MAX_PER_RUN: usize = 500;
/// How often the SLA watch runs.
pub const WATCH_EVERY: SignedDuration = SignedDuration::from_mins(5);
/// How often the weekly review checks whether this week's is raised.
pub const REVIEW_CHECK_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// The SLA state of a finding due at `due`, at `now`: `sla.breached` past
/// it, `sla.at_risk` within [`AT_RISK`] of it, else none.
pub fn sla_state(due: Timestamp, now: Timestamp) -> Option<&'static str> {
    if due <= now {
        Some("sla.breached")
    } else if due.duration_since(now) <= AT_RISK {
        Some("sla.at_risk")
    } else {
        None
    }
}

/// `2026-W49`: the ISO week of `t` (UTC).
pub fn iso_week(t: Timestamp) -> String {
    let w = t.to_zoned(TimeZone::UTC).date().iso_week_date();
    format!("{}-W{:02}", w.year(), w.week())
}

impl App {
    /// Raises `sla.at_risk` / `sla.breached` once per finding and state;
    /// returns how many it raised.
    pub async fn watch_sla(&self) -> Result<usize, AppError> {
        let now = self.now();
        let due: Vec<(String, &'static str, serde_json::Value)> = {
            let mut snap = self.snapshot().await?;
            let (policy, _) = snap.policy_in_force().await?;
            snap.ranked_open(&policy)
                .await?
                .into_iter()
                .filter(|r| !r.excluded && r.item.exception.is_none())
                .filter_map(|r| {
                    let st = sla_state(r.due, now)?;
                    let f = &r.item.finding;
                    let message = format!(
                        "{}: {} on {} ({} {}) {} {}",
                        if st == "sla.breached" {
                            "SLA breached"
                        } else {
                            "SLA at risk"
                        },
                        f.advisory,
                        f.asset,
                        f.package,
                        f.installed_version,
                        if st == "sla.breached" {
                            "was due"
                        } else {
                            "is due"
                        },
                        r.due
                    );
                    Some((
                        f.id.clone(),
                        st,
                        json!({
                            "asset": f.asset, "advisory": f.advisory, "package": f.package,
                            "tier": r.tier.to_string(), "due": r.due.to_string(),
                            "group": r.item.groups.first(), "owner": r.item.owner,
                            "message": message,
                        }),
                    ))
                })
                .collect()
        };
        let mut raised = 0;
        for chunk in due.chunks(100) {
            if raised >= MAX_PER_RUN {
                break;
            }
            let mut tx = self.change_by_system(SystemActor::SlaWatch).await?;
            let mut any = false;
            for (id, st, payload) in chunk {
                if raised >= MAX_PER_RUN {
                    break;
                }
                // The breach's filterable fields, for its `sla.resolved`.
                let keep = json!({"group": payload["group"], "tier": payload["tier"],
                                  "asset": payload["asset"], "advisory": payload["advisory"],
                                  "package": payload["package"]});
                if tx
                    .note_once_with(&format!("finding:{id}"), st, now, &keep)
                    .await?
                {
                    tx.audit(st, &format!("finding:{id}"), payload.clone())
                        .await?;
                    raised += 1;
                    any = true;
                }
            }
            if any {
                tx.commit().await?;
            } else {
                tx.commit_unaudited("SLA watch: every state already raised")
                    .await?;
            }
        }
        if raised > 0 {
            self.outbox_bell().notify_one();
        }
        Ok(raised)
    }

    /// Raises this ISO week's `exception.review` (once per week, whichever
    /// replica leads); returns 1 if it raised it now.
    pub async fn review_exceptions_weekly(&self) -> Result<usize, AppError> {
        let now = self.now();
        let week = iso_week(now);
        let caller = SystemActor::ExceptionExpiry.caller();
        let r = self
            .review_exceptions(&caller, &RequestCtx::default())
            .await?;
        let item = |e: &patchbay_proto::api::ExceptionOut| {
            json!({"id": e.id, "owner": e.owner, "expires_at": e.expires_at,
                   "reason": e.reason, "asset": e.asset, "group": e.group})
        };
        let message = format!(
            "Exception review {week}: {} expiring within 7 days, {} expired, {} without an owner",
            r.expiring.len(),
            r.expired.len(),
            r.ownerless.len()
        );
        if r.expiring.is_empty() && r.expired.is_empty() && r.ownerless.is_empty() {
            // Nothing to review: no email this week (checked again later).
            return Ok(0);
        }
        let mut tx = self.change_by_system(SystemActor::ExceptionExpiry).await?;
        if !tx.note_once("exceptions:review", &week, now).await? {
            tx.commit_unaudited("this week's exception review was raised")
                .await?;
            return Ok(0);
        }
        tx.audit(
            "exception.review",
            &format!("exceptions:review:{week}"),
            json!({
                "week": week, "message": message,
                "expiring": r.expiring.iter().map(item).collect::<Vec<_>>(),
                "expired": r.expired.iter().map(item).collect::<Vec<_>>(),
                "ownerless": r.ownerless.iter().map(item).collect::<Vec<_>>(),
            }),
        )
        .await?;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_states_by_due_date() {
        let now: Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        assert_eq!(sla_state(now, now), Some("sla.breached"));
        assert_eq!(
            sla_state(now - SignedDuration::from_secs(1), now),
            Some("sla.breached")
        );
        assert_eq!(
            sla_state(now + SignedDuration::from_secs(1), now),
            Some("sla.at_risk")
        );
        assert_eq!(sla_state(now + AT_RISK, now), Some("sla.at_risk"));
        assert_eq!(
            sla_state(now + AT_RISK + SignedDuration::from_secs(1), now),
            None
        );
        assert_eq!(iso_week(now), "2026-W49");
        assert_eq!(
            iso_week("2027-01-01T00:00:00Z".parse().unwrap()),
            "2026-W53"
        );
    }
}
