//! The one parser of instants, durations and time zones (issue 11, item 4).
//!
//! Every text a person types for a time — a policy SLA, a window's length, an
//! exception's expiry, a report's `as_of`, an agent's `--interval` — is read
//! here, so the forms accepted and the messages given are the same everywhere.
//! Pure: nothing reads the clock; a relative value (`expiry`) takes `now`.
//!
//! Three duration grammars exist, because each serves a different audience and
//! all were public before this module; each has one function:
//! - [`sla_duration`]: `NNh` or `NNd`, 1h to 3650d — policy SLAs and soaks, and
//!   exception lifetimes (the product speaks of "72 hours" and "7 days").
//!   [`format_duration`] renders a duration back in this grammar.
//! - [`span`]: jiff's friendly or ISO 8601 form (`4h`, `90m`, `1h30m`, `PT4H`),
//!   zero or more — window lengths, cutoffs, job estimates, and a
//!   deployment's window, job timeout and ring soaks.
//! - [`interval`]: `90s`, `15m`, `2h`, `1d` or bare seconds, positive, as a
//!   `std::time::Duration` — command-line flags of the agent and the CLI.
//!
//! Instants: [`instant`] (RFC 3339, or a local date-time / date in a zone),
//! [`local`], [`zone`], [`expiry`] (a duration from `now`, or an instant in
//! UTC) and [`as_of`] (a date means the end of that day, UTC).
//!
//! Errors are [`WhenError`]s that carry the field and the text; `Display`
//! reads `field: message` (just `message` when the field is empty, for callers
//! such as the policy parser and clap that name the field themselves).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// Longest SLA-grammar duration: keeps every sum with a timestamp far from
/// jiff's limits.
pub const MAX_SLA_HOURS: i64 = 3650 * 24;

/// What was wrong with a time text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenErrorKind {
    /// Not a duration of the grammar asked for.
    InvalidDuration,
    /// A duration outside the allowed range (zero, too long, negative).
    DurationOutOfRange,
    /// Not a local date-time.
    InvalidLocal,
    /// Not an IANA time zone.
    UnknownZone,
    /// Not an instant in any accepted form.
    InvalidInstant,
    /// A local time the zone cannot turn into an instant, or out of range.
    Unresolvable,
}

/// A time text that could not be read: the field, the text, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhenError {
    field: String,
    text: String,
    kind: WhenErrorKind,
    message: String,
}

impl WhenError {
    fn new(field: &str, text: &str, kind: WhenErrorKind, message: String) -> Self {
        WhenError {
            field: field.to_string(),
            text: text.to_string(),
            kind,
            message,
        }
    }
    /// The field the text was given for (may be empty).
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// What was wrong.
    pub fn kind(&self) -> WhenErrorKind {
        self.kind
    }
    /// The message for people, without the field.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for WhenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for WhenError {}

/// Parses an SLA-grammar duration: `NNh` (hours) or `NNd` (days of 24
/// hours), `NN` a positive integer, at most 3650d. The text is not trimmed.
pub fn sla_duration(field: &str, s: &str) -> Result<SignedDuration, WhenError> {
    let bad = || {
        WhenError::new(
            field,
            s,
            WhenErrorKind::InvalidDuration,
            format!("invalid duration {s:?} (use e.g. 72h or 7d)"),
        )
    };
    // Split off the last *character*: the unit may be any UTF-8 (found by
    // fuzzing: splitting at the last byte panicked on "2\u{313}").
    let Some(unit) = s.chars().next_back() else {
        return Err(bad());
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let hours = match unit {
        'h' => n,
        'd' => n.checked_mul(24).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let range = |m: &str| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::DurationOutOfRange,
            format!("invalid duration {s:?}: {m}"),
        )
    };
    if hours == 0 {
        return Err(range("must be at least 1h"));
    }
    if hours > MAX_SLA_HOURS {
        return Err(range("at most 3650d"));
    }
    Ok(SignedDuration::from_hours(hours))
}

/// Renders a duration in the SLA grammar where it can: days (`7d`) for whole
/// days above three, `72h` for whole hours up to three days (operators speak
/// of 24, 48 and 72 hours, and the product's P0 SLA is "72 hours"), seconds
/// (`90s`) otherwise. Whole hours from 1h to 3650d read back with
/// [`sla_duration`] unchanged.
pub fn format_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 86_400 == 0 && secs > 3 * 86_400 {
        format!("{}d", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else {
        format!("{secs}s")
    }
}

/// Parses a duration such as `4h`, `90m`, `1h30m` or `PT4H` (jiff's friendly
/// and ISO 8601 forms, trimmed); negative durations are refused.
pub fn span(field: &str, s: &str) -> Result<SignedDuration, WhenError> {
    let d: SignedDuration = s.trim().parse().map_err(|e| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::InvalidDuration,
            format!("invalid duration {s:?} (use e.g. 4h, 90m or 1h30m): {e}"),
        )
    })?;
    if d.is_negative() {
        return Err(WhenError::new(
            field,
            s,
            WhenErrorKind::DurationOutOfRange,
            format!("duration {s:?} is negative"),
        ));
    }
    Ok(d)
}

/// Parses a positive interval `90s`, `15m`, `2h`, `1d` or a bare number of
/// seconds (trimmed), as a `std::time::Duration` for timers.
pub fn interval(field: &str, s: &str) -> Result<std::time::Duration, WhenError> {
    parse_interval(field, s, false)
}

/// [`interval`], also in milliseconds (`250ms`): for timers that may tick
/// faster than once a second (the duties runner's `--duty-tick`).
pub fn fine_interval(field: &str, s: &str) -> Result<std::time::Duration, WhenError> {
    parse_interval(field, s, true)
}

/// [`fine_interval`] for clap's `value_parser`.
pub fn flag_fine_interval(s: &str) -> Result<std::time::Duration, WhenError> {
    fine_interval("", s)
}

fn parse_interval(field: &str, s: &str, allow_ms: bool) -> Result<std::time::Duration, WhenError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let bad = || {
        WhenError::new(
            field,
            s,
            WhenErrorKind::InvalidDuration,
            if allow_ms {
                format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 15m, 2h, 1d")
            } else {
                format!("invalid duration {s:?}: expected e.g. 30s, 15m, 2h, 1d")
            },
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let per_ms = match unit {
        "ms" if allow_ms => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(WhenError::new(
                field,
                s,
                WhenErrorKind::InvalidDuration,
                if allow_ms {
                    format!("invalid duration unit in {s:?}: use ms, s, m, h or d")
                } else {
                    format!("invalid duration unit in {s:?}: use s, m, h or d")
                },
            ));
        }
    };
    let ms = n.checked_mul(per_ms).ok_or_else(bad)?;
    if ms == 0 {
        return Err(WhenError::new(
            field,
            s,
            WhenErrorKind::DurationOutOfRange,
            "duration must be positive".into(),
        ));
    }
    Ok(std::time::Duration::from_millis(ms))
}

/// [`interval`] for clap's `value_parser` (clap names the flag).
pub fn flag_interval(s: &str) -> Result<std::time::Duration, WhenError> {
    interval("", s)
}

/// Parses a local date-time `YYYY-MM-DDTHH:MM[:SS]` (trimmed).
pub fn local(field: &str, s: &str) -> Result<DateTime, WhenError> {
    s.trim().parse().map_err(|e| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::InvalidLocal,
            format!("invalid local date-time {s:?} (use YYYY-MM-DDTHH:MM): {e}"),
        )
    })
}

/// Looks up an IANA time zone (trimmed).
pub fn zone(field: &str, s: &str) -> Result<TimeZone, WhenError> {
    TimeZone::get(s.trim()).map_err(|_| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::UnknownZone,
            format!("unknown time zone {s:?} (use an IANA name such as Europe/Berlin or UTC)"),
        )
    })
}

/// An instant: RFC 3339 (`2026-12-20T00:00:00Z`, `…+01:00`), or a local
/// date-time / date resolved in `tz` with the RFC 5545 rules (a time in a
/// gap moves forward, an ambiguous one takes the earlier offset).
pub fn instant(field: &str, s: &str, tz: &TimeZone) -> Result<Timestamp, WhenError> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let local: Result<DateTime, _> = s
        .parse::<DateTime>()
        .or_else(|_| s.parse::<Date>().map(|d| d.to_datetime(Time::midnight())));
    let local = local.map_err(|_| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::InvalidInstant,
            format!(
                "invalid time {s:?} (use RFC 3339 such as 2026-12-20T00:00:00Z, or YYYY-MM-DD[THH:MM] in the given zone)"
            ),
        )
    })?;
    tz.to_ambiguous_timestamp(local).compatible().map_err(|e| {
        WhenError::new(
            field,
            s,
            WhenErrorKind::Unresolvable,
            format!("{s:?} cannot be resolved: {e}"),
        )
    })
}

/// An expiry: an SLA-grammar duration from `now` (`30d`, `72h`), or an
/// instant in UTC (RFC 3339, or a date meaning its midnight).
pub fn expiry(field: &str, s: &str, now: Timestamp) -> Result<Timestamp, WhenError> {
    let t = s.trim();
    if let Ok(d) = sla_duration(field, t) {
        return now.checked_add(d).map_err(|e| {
            WhenError::new(
                field,
                t,
                WhenErrorKind::Unresolvable,
                format!("{t:?} cannot be resolved: {e}"),
            )
        });
    }
    instant(field, t, &TimeZone::UTC)
}

/// A report's `as_of`: a date means the end of that day (UTC), so everything
/// that happened on it counts; otherwise an instant as [`instant`] reads it
/// in UTC.
pub fn as_of(field: &str, s: &str) -> Result<Timestamp, WhenError> {
    let t = s.trim();
    if let Ok(d) = t.parse::<Date>() {
        let next = d
            .tomorrow()
            .map_err(|e| WhenError::new(field, t, WhenErrorKind::Unresolvable, e.to_string()))?;
        return instant(field, &next.to_string(), &TimeZone::UTC);
    }
    instant(field, t, &TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn sla_grammar() {
        for (text, hours) in [("72h", 72), ("7d", 168), ("1h", 1), ("3650d", 87600)] {
            assert_eq!(
                sla_duration("f", text).unwrap(),
                SignedDuration::from_hours(hours)
            );
        }
        for bad in [
            "", "h", "7", "7x", "0h", "0d", "-1d", "+1d", "1.5d", "7 d", "3651d", "2\u{313}",
        ] {
            assert!(sla_duration("f", bad).is_err(), "{bad:?}");
        }
        let e = sla_duration("sla.P1", "7x").unwrap_err();
        assert_eq!(e.message(), "invalid duration \"7x\" (use e.g. 72h or 7d)");
        assert_eq!(
            e.to_string(),
            "sla.P1: invalid duration \"7x\" (use e.g. 72h or 7d)"
        );
        assert_eq!((e.field(), e.text()), ("sla.P1", "7x"));
        assert_eq!(e.kind(), WhenErrorKind::InvalidDuration);
        assert_eq!(
            sla_duration("", "0h").unwrap_err().to_string(),
            "invalid duration \"0h\": must be at least 1h"
        );
    }

    #[test]
    fn spans_and_intervals() {
        assert_eq!(span("d", "1h 30m").unwrap().as_secs(), 5400);
        assert_eq!(span("d", "PT4H").unwrap().as_secs(), 14400);
        assert_eq!(span("d", " 90m ").unwrap().as_secs(), 5400);
        assert_eq!(span("d", "0s").unwrap().as_secs(), 0);
        assert_eq!(
            span("d", "-1h").unwrap_err().to_string(),
            "d: duration \"-1h\" is negative"
        );
        assert!(
            span("duration", "soon")
                .unwrap_err()
                .to_string()
                .starts_with("duration: invalid duration \"soon\"")
        );
        let secs = |s| interval("", s).map(|d| d.as_secs());
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("30"), Ok(30));
        assert_eq!(secs("1d"), Ok(86400));
        assert!(secs("0s").is_err());
        assert!(secs("5y").is_err());
        assert!(secs("m").is_err());
        assert!(secs("99999999999999999999d").is_err());
        assert!(secs("999999999999999999d").is_err());
        assert_eq!(
            flag_interval("5y").unwrap_err().to_string(),
            "invalid duration unit in \"5y\": use s, m, h or d"
        );
        assert_eq!(
            flag_interval("0").unwrap_err().to_string(),
            "duration must be positive"
        );
    }

    #[test]
    fn instants_and_zones() {
        let utc = TimeZone::UTC;
        assert_eq!(
            instant("from", "2026-12-20T00:00:00Z", &utc).unwrap(),
            ts("2026-12-20T00:00:00Z")
        );
        assert_eq!(
            instant("from", "2026-12-20", &utc).unwrap(),
            ts("2026-12-20T00:00:00Z")
        );
        let berlin = zone("tz", "Europe/Berlin").unwrap();
        assert_eq!(
            instant("start", "2026-12-20T10:00", &berlin).unwrap(),
            ts("2026-12-20T09:00:00Z")
        );
        // A time in the spring-forward gap moves forward (RFC 5545).
        assert_eq!(
            instant("start", "2026-03-29T02:30", &berlin).unwrap(),
            ts("2026-03-29T01:30:00Z")
        );
        let e = instant("from", "tomorrow", &utc).unwrap_err();
        assert_eq!(e.kind(), WhenErrorKind::InvalidInstant);
        assert!(e.to_string().starts_with("from: invalid time \"tomorrow\""));
        assert_eq!(
            zone("tz", "Mars/Olympus").unwrap_err().to_string(),
            "tz: unknown time zone \"Mars/Olympus\" (use an IANA name such as Europe/Berlin or UTC)"
        );
        assert!(local("dtstart", "2026-01-01T02:00").is_ok());
        assert!(local("dtstart", "soon").is_err());
    }

    #[test]
    fn expiries_and_as_of() {
        let now = ts("2026-12-01T12:00:00Z");
        assert_eq!(
            expiry("expires", "30d", now).unwrap(),
            ts("2026-12-31T12:00:00Z")
        );
        assert_eq!(
            expiry("expires", " 2027-01-01 ", now).unwrap(),
            ts("2027-01-01T00:00:00Z")
        );
        assert!(expiry("expires", "30d", Timestamp::MAX).is_err());
        assert!(
            expiry("expires", "later", now)
                .unwrap_err()
                .to_string()
                .starts_with("expires: invalid time")
        );
        assert_eq!(
            as_of("as_of", "2026-11-24").unwrap(),
            ts("2026-11-25T00:00:00Z")
        );
        assert_eq!(
            as_of("as_of", "2026-11-24T10:00:00Z").unwrap(),
            ts("2026-11-24T10:00:00Z")
        );
        assert!(as_of("as_of", "9999-12-31").is_err());
    }

    proptest! {
        /// No parser panics on any text; every error names its field.
        #[test]
        fn never_panics(s in "\\PC{0,40}", n in any::<i64>()) {
            let now = Timestamp::from_second(n.rem_euclid(253_402_207_200) - 62_135_596_800)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            for r in [
                sla_duration("f", &s).map(|_| ()),
                span("f", &s).map(|_| ()),
                interval("f", &s).map(|_| ()),
                local("f", &s).map(|_| ()),
                zone("f", &s).map(|_| ()),
                instant("f", &s, &TimeZone::UTC).map(|_| ()),
                expiry("f", &s, now).map(|_| ()),
                expiry("f", &s, Timestamp::MAX).map(|_| ()),
                as_of("f", &s).map(|_| ()),
            ] {
                if let Err(e) = r {
                    prop_assert_eq!(e.field(), "f");
                    prop_assert!(e.to_string().starts_with("f: "));
                }
            }
        }

        /// Texts built from the grammars' own alphabets, nearer the edges.
        #[test]
        fn never_panics_near_grammar(s in "[0-9]{0,22}[smhdwPTZ:+\\-. ]{0,3}[0-9]{0,4}") {
            let _ = sla_duration("f", &s);
            let _ = span("f", &s);
            let _ = interval("f", &s);
            let _ = instant("f", &s, &TimeZone::UTC);
            let _ = expiry("f", &s, Timestamp::MAX);
        }

        /// Whole hours from 1h to 3650d render and read back unchanged.
        #[test]
        fn sla_round_trip(hours in 1i64..=MAX_SLA_HOURS) {
            let d = SignedDuration::from_hours(hours);
            prop_assert_eq!(sla_duration("f", &format_duration(d)), Ok(d));
        }

        /// A non-negative duration jiff renders reads back unchanged.
        #[test]
        fn span_round_trip(secs in 0i64..=10 * 366 * 86_400, nanos in 0i32..1_000_000_000) {
            let d = SignedDuration::new(secs, nanos);
            prop_assert_eq!(span("f", &d.to_string()), Ok(d));
            prop_assert_eq!(span("f", &format!("{d:#}")), Ok(d));
        }

        /// Interval flags read back from seconds and each unit.
        #[test]
        fn interval_round_trip(n in 1u64..=1_000_000) {
            prop_assert_eq!(interval("f", &format!("{n}")).map(|d| d.as_secs()), Ok(n));
            prop_assert_eq!(interval("f", &format!("{n}m")).map(|d| d.as_secs()), Ok(n * 60));
            prop_assert_eq!(interval("f", &format!("{n}d")).map(|d| d.as_secs()), Ok(n * 86400));
            prop_assert_eq!(
                fine_interval("f", &format!("{n}ms")).map(|d| d.as_millis()),
                Ok(u128::from(n))
            );
            prop_assert_eq!(
                fine_interval("f", &format!("{n}m")).map(|d| d.as_secs()),
                Ok(n * 60)
            );
            // Whole-second timers refuse milliseconds, naming the units.
            let e = interval("f", &format!("{n}ms")).unwrap_err();
            prop_assert!(e.to_string().contains("use s, m, h or d"), "{}", e);
        }
    }
}
