//! Escalation chains (issue 15): who is told, how, and when, while nobody
//! answers.
//!
//! A chain is an ordered list of [`Step`]s — a channel (an email to a
//! contact, or a webhook subscription), whom, and how long to wait after the
//! previous step (or, for the first, after the trigger) — started for each
//! pending approval or SLA at-risk/breached finding it is for ([`Trigger`]).
//! Step `i` is due at `started + wait₀ + … + waitᵢ` ([`due_at`]); [`advance`]
//! says, from the steps already fired and `now`, which fire now and when the
//! next is due. Acknowledging (or the approval being decided) closes the
//! escalation, after which nothing fires. A runner that was down fires every
//! step that became due meanwhile, each once, in order.
//!
//! **Invariant:** pure — no clock, no IO; `now` is an argument.

use crate::when;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// At most this many steps in a chain.
pub const MAX_STEPS: usize = 10;
/// The longest wait of one step.
pub const MAX_WAIT: SignedDuration = SignedDuration::from_hours(30 * 24);

/// How a step tells someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// An email to a contact (`patchbay contacts`).
    Email,
    /// A delivery to a webhook subscription (`patchbay webhooks`).
    Webhook,
}

impl Channel {
    /// Its name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// What starts a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A deployment ring waiting for a human approval
    /// (`approval.requested`); decided (approved or rejected) closes it.
    Approval,
    /// A finding past (`sla.breached`) or about to pass (`sla.at_risk`) its
    /// SLA due date.
    Sla,
}

impl Trigger {
    /// Its name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Approval => "approval",
            Trigger::Sla => "sla",
        }
    }

    /// Reads `approval` or `sla`.
    pub fn parse(s: &str) -> Result<Trigger, String> {
        match s {
            "approval" => Ok(Trigger::Approval),
            "sla" => Ok(Trigger::Sla),
            other => Err(format!("trigger {other:?}: one of approval, sla")),
        }
    }

    /// Whether an event of stored action `action` starts this chain.
    pub fn starts_on(self, action: &str) -> bool {
        match self {
            Trigger::Approval => action == "approval.requested",
            Trigger::Sla => matches!(action, "sla.at_risk" | "sla.breached"),
        }
    }
}

/// One step of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// How.
    pub channel: Channel,
    /// Whom: a contact's name (email) or a webhook subscription's name.
    pub to: String,
    /// After the previous step (or the trigger), in seconds.
    #[serde(with = "secs")]
    pub wait: SignedDuration,
}

mod secs {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        Ok(SignedDuration::from_secs(i64::deserialize(d)?))
    }
}

/// Whether `n` is a usable contact or subscription name: 1–64 ASCII
/// letters, digits, `-`, `_`, `.`.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Step {
    /// Reads `CHANNEL:NAME` or `CHANNEL:NAME:WAIT` (`email:alice`,
    /// `webhook:noc-pager:30m`; WAIT as `when::span`, default 0). `field`
    /// names the input in errors.
    pub fn parse(field: &str, s: &str) -> Result<Step, String> {
        let mut parts = s.splitn(3, ':');
        let channel = match parts.next().unwrap_or("") {
            "email" => Channel::Email,
            "webhook" => Channel::Webhook,
            other => {
                return Err(format!(
                    "{field} {s:?}: channel {other:?} is not email or webhook (use CHANNEL:NAME[:WAIT], e.g. email:alice:30m)"
                ));
            }
        };
        let to = parts.next().unwrap_or("").to_string();
        if !valid_name(&to) {
            return Err(format!(
                "{field} {s:?}: name {to:?} must be 1–64 letters, digits, '-', '_' or '.'"
            ));
        }
        let wait = match parts.next() {
            None => SignedDuration::ZERO,
            Some(w) => when::span(field, w).map_err(|e| e.to_string())?,
        };
        let step = Step { channel, to, wait };
        step.check(field)?;
        Ok(step)
    }

    fn check(&self, field: &str) -> Result<(), String> {
        if self.wait.is_negative() || self.wait > MAX_WAIT {
            return Err(format!(
                "{field}: wait {}s must be between 0 and 30 days",
                self.wait.as_secs()
            ));
        }
        Ok(())
    }

    /// `CHANNEL:NAME:WAIT`, readable by [`Step::parse`].
    pub fn render(&self) -> String {
        format!(
            "{}:{}:{}s",
            self.channel.as_str(),
            self.to,
            self.wait.as_secs()
        )
    }
}

/// Checks a whole chain: 1–[`MAX_STEPS`] steps, each valid.
pub fn validate(steps: &[Step]) -> Result<(), String> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(format!(
            "steps: a chain has 1–{MAX_STEPS} steps, not {}",
            steps.len()
        ));
    }
    for (i, s) in steps.iter().enumerate() {
        if !valid_name(&s.to) {
            return Err(format!("steps[{i}]: name {:?} is not valid", s.to));
        }
        s.check(&format!("steps[{i}]"))?;
    }
    Ok(())
}

/// When step `i` is due for an escalation started at `started` (saturating
/// at the largest instant); `None` past the last step.
pub fn due_at(steps: &[Step], started: Timestamp, i: usize) -> Option<Timestamp> {
    if i >= steps.len() {
        return None;
    }
    let total = steps[..=i]
        .iter()
        .fold(SignedDuration::ZERO, |a, s| a.saturating_add(s.wait));
    Some(started.checked_add(total).unwrap_or(Timestamp::MAX))
}

/// What [`advance`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// The steps to fire now, in order, each with the instant it was due.
    pub fire: Vec<(usize, Timestamp)>,
    /// When the next unfired step is due (`None`: the chain is done).
    pub next_at: Option<Timestamp>,
}

/// The steps of an open escalation started at `started`, of which the first
/// `fired` have fired, that fire at `now`, and when the next one is due.
/// A closed (acknowledged, decided) escalation fires nothing: call this only
/// for open ones.
pub fn advance(steps: &[Step], started: Timestamp, fired: usize, now: Timestamp) -> Advance {
    let mut fire = Vec::new();
    let mut i = fired;
    while let Some(at) = due_at(steps, started, i) {
        if at > now {
            return Advance {
                fire,
                next_at: Some(at),
            };
        }
        fire.push((i, at));
        i += 1;
    }
    Advance {
        fire,
        next_at: None,
    }
}

/// Whether `e` is an escalation step addressed to `name` over `channel`
/// (`escalation.notified` whose `data.channel` and `data.to` name them): it
/// reaches that contact or subscription whatever its event filter says.
pub fn addressed_to(e: &crate::event::Event, channel: Channel, name: &str) -> bool {
    e.kind == crate::event::Kind::EscalationNotified
        && e.data.get("channel").and_then(|v| v.as_str()) == Some(channel.as_str())
        && e.data.get("to").and_then(|v| v.as_str()) == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn chain() -> Vec<Step> {
        vec![
            Step::parse("s", "email:alice").unwrap(),
            Step::parse("s", "email:bob:10m").unwrap(),
            Step::parse("s", "webhook:noc:30m").unwrap(),
        ]
    }

    #[test]
    fn steps_parse_and_render_back() {
        let s = Step::parse("step", "webhook:noc-pager:1h30m").unwrap();
        assert_eq!(s.channel, Channel::Webhook);
        assert_eq!(s.to, "noc-pager");
        assert_eq!(s.wait, SignedDuration::from_mins(90));
        assert_eq!(Step::parse("step", &s.render()).unwrap(), s);
        assert_eq!(
            Step::parse("step", "email:a").unwrap().wait,
            SignedDuration::ZERO
        );
    }

    #[test]
    fn bad_steps_name_what_is_wrong() {
        let e = Step::parse("--step", "sms:alice").unwrap_err();
        assert!(e.contains("--step") && e.contains("sms"), "{e}");
        let e = Step::parse("--step", "email:al ice").unwrap_err();
        assert!(e.contains("al ice"), "{e}");
        let e = Step::parse("--step", "email:alice:soon").unwrap_err();
        assert!(e.contains("soon"), "{e}");
        assert!(Step::parse("--step", "email:alice:-5m").is_err());
        assert!(Step::parse("--step", "email:alice:31d").is_err());
        assert!(validate(&[]).is_err());
        assert!(validate(&vec![chain()[0].clone(); MAX_STEPS + 1]).is_err());
        assert!(validate(&chain()).is_ok());
    }

    #[test]
    fn the_chain_escalates_step_by_step() {
        let steps = chain();
        // At the trigger: the first step (wait 0).
        let a = advance(&steps, t(0), 0, t(0));
        assert_eq!(a.fire, vec![(0, t(0))]);
        assert_eq!(a.next_at, Some(t(600)));
        // Just before the second: nothing.
        let a = advance(&steps, t(0), 1, t(599));
        assert!(a.fire.is_empty());
        assert_eq!(a.next_at, Some(t(600)));
        // At it: the second, then the third 30 minutes later.
        let a = advance(&steps, t(0), 1, t(600));
        assert_eq!(a.fire, vec![(1, t(600))]);
        assert_eq!(a.next_at, Some(t(2400)));
        // A runner down for hours fires what is due, each once, in order.
        let a = advance(&steps, t(0), 1, t(99_999));
        assert_eq!(a.fire, vec![(1, t(600)), (2, t(2400))]);
        assert_eq!(a.next_at, None);
        // Done: nothing more.
        assert_eq!(
            advance(&steps, t(0), 3, t(99_999)),
            Advance {
                fire: vec![],
                next_at: None
            }
        );
    }

    #[test]
    fn triggers() {
        assert!(Trigger::Approval.starts_on("approval.requested"));
        assert!(!Trigger::Approval.starts_on("sla.breached"));
        assert!(Trigger::Sla.starts_on("sla.breached"));
        assert!(Trigger::Sla.starts_on("sla.at_risk"));
        assert!(!Trigger::Sla.starts_on("approval.requested"));
        assert_eq!(Trigger::parse("sla"), Ok(Trigger::Sla));
        assert!(Trigger::parse("pager").is_err());
    }

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (any::<bool>(), 0i64..100_000).prop_map(|(e, w)| Step {
                channel: if e { Channel::Email } else { Channel::Webhook },
                to: "x".into(),
                wait: SignedDuration::from_secs(w),
            }),
            1..MAX_STEPS,
        )
    }

    proptest! {
        /// However the runner's ticks fall, every step fires exactly once,
        /// in order, never before it is due, and at the first tick at or
        /// after its due time.
        #[test]
        fn every_step_fires_once_in_order_never_early(
            steps in arb_steps(),
            mut ticks in proptest::collection::vec(0i64..2_000_000, 0..40),
        ) {
            ticks.sort();
            let mut fired = 0;
            let mut seen: Vec<(usize, Timestamp, Timestamp)> = Vec::new();
            for &tick in &ticks {
                let a = advance(&steps, t(0), fired, t(tick));
                for &(i, at) in &a.fire {
                    prop_assert_eq!(i, fired);
                    prop_assert!(at <= t(tick));
                    seen.push((i, at, t(tick)));
                    fired += 1;
                }
                if let Some(n) = a.next_at {
                    prop_assert!(n > t(tick));
                    prop_assert_eq!(Some(n), due_at(&steps, t(0), fired));
                }
            }
            // Fired at the first tick at or after due.
            for (i, at, when) in seen {
                prop_assert_eq!(Some(at), due_at(&steps, t(0), i));
                let first = ticks.iter().map(|&k| t(k)).find(|&k| k >= at);
                prop_assert_eq!(first, Some(when));
            }
            // Everything due by the last tick has fired.
            if let Some(&last) = ticks.last() {
                let due = (0..steps.len()).filter(|&i| due_at(&steps, t(0), i).unwrap() <= t(last)).count();
                prop_assert_eq!(fired, due);
            }
        }

        /// Parsing never panics.
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Step::parse("s", &s);
        }
    }
}
