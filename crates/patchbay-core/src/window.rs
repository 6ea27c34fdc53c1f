//! Maintenance windows: RFC 5545 recurrences in an IANA time zone.
//!
//! A [`Window`] is a [`Recurrence`] (an RRULE), a local start date-time
//! (`DTSTART`, a civil date-time without zone), an IANA time zone, a duration,
//! an offset in days ("second Tuesday + 2 days", the Patch Tuesday baseline)
//! and a cutoff (no new job starts within the cutoff of the window's end).
//!
//! # Recurrence rules
//!
//! Supported parts: `FREQ` (`DAILY`, `WEEKLY`, `MONTHLY`, `YEARLY`),
//! `INTERVAL`, `BYDAY` (ordinal forms such as `2TU` or `-1FR` only with
//! `MONTHLY` or `YEARLY`), `BYMONTHDAY` (negatives count from the month's end;
//! not with `WEEKLY`), `BYMONTH`, `COUNT`, `UNTIL` (UTC `YYYYMMDDTHHMMSSZ`, a
//! local `YYYYMMDDTHHMMSS`, or a local date `YYYYMMDD`, which includes that
//! whole day) and `WKST`, which is accepted and **ignored**: weeks always start
//! on Monday (the RFC default), which only matters for `WEEKLY` rules with
//! `INTERVAL` > 1 and several `BYDAY` days when the week start is not Monday.
//! Any other part (`BYSETPOS`, `BYHOUR`, `BYWEEKNO`, …) is rejected.
//! `COUNT` and `UNTIL` together are rejected (RFC 5545 forbids it).
//!
//! As in python-dateutil, `DTSTART` itself is an occurrence only if it matches
//! the rule; instances before `DTSTART` are never produced. `COUNT` and
//! `UNTIL` limit the rule's instances *before* the day offset is applied. A
//! UTC `UNTIL` is compared with the instance's resolved instant; a local one
//! with its local date-time.
//!
//! # Time zones and daylight saving time (RFC 5545 §3.3.5)
//!
//! Every instance is a local wall-clock time, resolved in the window's zone:
//! - a local time that does not exist (in a spring-forward gap) is
//!   interpreted with the UTC offset from **before** the gap: 02:30 on the US
//!   spring-forward day in `America/New_York` is 02:30 EST = 07:30Z, shown as
//!   03:30 EDT;
//! - an ambiguous local time (in a fall-back fold) is the **first** of its two
//!   instants (the earlier one);
//! - the duration is exact elapsed time: a 4 h window across a transition
//!   lasts 4 real hours, so its local end time moves by the shift.
//!
//! This is exactly jiff's [`Disambiguation::Compatible`], which is what
//! [`Window`] uses (checked against python-dateutil and `zoneinfo` in the
//! integration tests).
//!
//! The day offset is applied to the local date of each instance; the local
//! wall time is kept and re-resolved in the zone with the same rules.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{Disambiguation, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};

/// How often a recurrence repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// Every `INTERVAL` days.
    Daily,
    /// Every `INTERVAL` weeks (weeks start on Monday).
    Weekly,
    /// Every `INTERVAL` months.
    Monthly,
    /// Every `INTERVAL` years.
    Yearly,
}

/// One `BYDAY` entry: a weekday, optionally with an ordinal (`2TU`, `-1FR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByDay {
    /// The n-th (negative: n-th from the end) such weekday of the month or
    /// year; `None` for every such weekday.
    pub ordinal: Option<i16>,
    /// The weekday.
    pub weekday: Weekday,
}

/// The `UNTIL` bound of a recurrence (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// A UTC instant (`YYYYMMDDTHHMMSSZ`).
    Utc(Timestamp),
    /// A local date-time (`YYYYMMDDTHHMMSS`).
    Local(DateTime),
    /// A local date (`YYYYMMDD`): instances on that day are included.
    Date(Date),
}

/// A recurrence rule (the supported subset of RFC 5545 `RRULE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    freq: Frequency,
    interval: u32,
    by_day: Vec<ByDay>,
    by_month_day: Vec<i8>,
    by_month: Vec<i8>,
    count: Option<u32>,
    until: Option<Until>,
}

impl Recurrence {
    /// The frequency.
    pub fn freq(&self) -> Frequency {
        self.freq
    }
    /// The interval (≥ 1).
    pub fn interval(&self) -> u32 {
        self.interval
    }
    /// The `BYDAY` entries.
    pub fn by_day(&self) -> &[ByDay] {
        &self.by_day
    }
    /// The `BYMONTHDAY` entries (1..=31 or -31..=-1).
    pub fn by_month_day(&self) -> &[i8] {
        &self.by_month_day
    }
    /// The `BYMONTH` entries (1..=12).
    pub fn by_month(&self) -> &[i8] {
        &self.by_month
    }
    /// The `COUNT`, if any.
    pub fn count(&self) -> Option<u32> {
        self.count
    }
    /// The `UNTIL`, if any.
    pub fn until(&self) -> Option<Until> {
        self.until
    }
}

/// Why an RRULE or a window was rejected; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// An RRULE part is malformed, unsupported, or inconsistent.
    #[error("RRULE {part}: {message}")]
    Rule {
        /// The part (`FREQ`, `BYDAY`, …).
        part: String,
        /// What is wrong with it.
        message: String,
    },
    /// A window parameter is invalid.
    #[error("window {field}: {message}")]
    Window {
        /// The field (`duration`, `cutoff`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn rule_err(part: &str, message: impl Into<String>) -> WindowError {
    WindowError::Rule {
        part: part.to_string(),
        message: message.into(),
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

fn weekday_code(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "MO",
        Weekday::Tuesday => "TU",
        Weekday::Wednesday => "WE",
        Weekday::Thursday => "TH",
        Weekday::Friday => "FR",
        Weekday::Saturday => "SA",
        Weekday::Sunday => "SU",
    }
}

fn digits<T: FromStr>(s: &str) -> Option<T> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_until(v: &str) -> Result<Until, WindowError> {
    let bad = || {
        rule_err(
            "UNTIL",
            format!("`{v}` is not YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ"),
        )
    };
    if !v.is_ascii() {
        return Err(bad());
    }
    let date = |s: &str| -> Result<Date, WindowError> {
        if s.len() != 8 {
            return Err(bad());
        }
        let y: i16 = digits(&s[0..4]).ok_or_else(bad)?;
        let m: i8 = digits(&s[4..6]).ok_or_else(bad)?;
        let d: i8 = digits(&s[6..8]).ok_or_else(bad)?;
        Date::new(y, m, d).map_err(|e| rule_err("UNTIL", format!("`{v}`: {e}")))
    };
    match v.split_once('T') {
        None => Ok(Until::Date(date(v)?)),
        Some((d, t)) => {
            let d = date(d)?;
            let (t, utc) = match t.strip_suffix('Z') {
                Some(t) => (t, true),
                None => (t, false),
            };
            if t.len() != 6 {
                return Err(bad());
            }
            let h: i8 = digits(&t[0..2]).ok_or_else(bad)?;
            let mi: i8 = digits(&t[2..4]).ok_or_else(bad)?;
            let s: i8 = digits(&t[4..6]).ok_or_else(bad)?;
            let t = Time::new(h, mi, s, 0).map_err(|e| rule_err("UNTIL", format!("`{v}`: {e}")))?;
            let dt = d.to_datetime(t);
            if utc {
                let ts = dt
                    .to_zoned(TimeZone::UTC)
                    .map_err(|e| rule_err("UNTIL", format!("`{v}`: {e}")))?
                    .timestamp();
                Ok(Until::Utc(ts))
            } else {
                Ok(Until::Local(dt))
            }
        }
    }
}

impl FromStr for Recurrence {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("RRULE:").unwrap_or(s);
        let mut freq = None;
        let mut interval = None;
        let mut by_day = None;
        let mut by_month_day = None;
        let mut by_month = None;
        let mut count = None;
        let mut until = None;
        let mut wkst = false;
        for part in s.split(';') {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| rule_err(part, "expected NAME=VALUE"))?;
            let name = name.trim().to_ascii_uppercase();
            let value = value.trim().to_ascii_uppercase();
            let dup = || rule_err(&name, "given twice");
            let list = |v: &str| -> Result<Vec<String>, WindowError> {
                if v.is_empty() {
                    return Err(rule_err(&name, "empty value"));
                }
                Ok(v.split(',').map(|x| x.trim().to_string()).collect())
            };
            match name.as_str() {
                "FREQ" => {
                    if freq.is_some() {
                        return Err(dup());
                    }
                    freq = Some(match value.as_str() {
                        "DAILY" => Frequency::Daily,
                        "WEEKLY" => Frequency::Weekly,
                        "MONTHLY" => Frequency::Monthly,
                        "YEARLY" => Frequency::Yearly,
                        "SECONDLY" | "MINUTELY" | "HOURLY" => {
                            return Err(rule_err("FREQ", format!("`{value}` is not supported")));
                        }
                        _ => return Err(rule_err("FREQ", format!("unknown frequency `{value}`"))),
                    });
                }
                "INTERVAL" => {
                    if interval.is_some() {
                        return Err(dup());
                    }
                    let n: u32 = digits(&value).filter(|n| *n >= 1).ok_or_else(|| {
                        rule_err("INTERVAL", format!("`{value}` is not a positive integer"))
                    })?;
                    interval = Some(n);
                }
                "COUNT" => {
                    if count.is_some() {
                        return Err(dup());
                    }
                    let n: u32 = digits(&value).filter(|n| *n >= 1).ok_or_else(|| {
                        rule_err("COUNT", format!("`{value}` is not a positive integer"))
                    })?;
                    count = Some(n);
                }
                "UNTIL" => {
                    if until.is_some() {
                        return Err(dup());
                    }
                    until = Some(parse_until(&value)?);
                }
                "WKST" => {
                    if wkst {
                        return Err(dup());
                    }
                    if parse_weekday(&value).is_none() {
                        return Err(rule_err("WKST", format!("unknown weekday `{value}`")));
                    }
                    wkst = true;
                }
                "BYDAY" => {
                    if by_day.is_some() {
                        return Err(dup());
                    }
                    let mut out = Vec::new();
                    for item in list(&value)? {
                        let bad = || rule_err("BYDAY", format!("`{item}` is not [+-n]MO..SU"));
                        if item.len() < 2 || !item.is_ascii() {
                            return Err(bad());
                        }
                        let (ord, day) = item.split_at(item.len() - 2);
                        let weekday = parse_weekday(day).ok_or_else(bad)?;
                        let ordinal = if ord.is_empty() {
                            None
                        } else {
                            let (neg, n) = match ord.as_bytes()[0] {
                                b'-' => (true, &ord[1..]),
                                b'+' => (false, &ord[1..]),
                                _ => (false, ord),
                            };
                            let n: i16 =
                                digits(n).filter(|n| (1..=53).contains(n)).ok_or_else(|| {
                                    rule_err(
                                        "BYDAY",
                                        format!("ordinal in `{item}` must be 1..=53 or -53..=-1"),
                                    )
                                })?;
                            Some(if neg { -n } else { n })
                        };
                        out.push(ByDay { ordinal, weekday });
                    }
                    by_day = Some(out);
                }
                "BYMONTHDAY" => {
                    if by_month_day.is_some() {
                        return Err(dup());
                    }
                    let mut out = Vec::new();
                    for item in list(&value)? {
                        let n: i8 = item
                            .parse()
                            .ok()
                            .filter(|n: &i8| *n != 0 && (-31..=31).contains(n))
                            .ok_or_else(|| {
                                rule_err(
                                    "BYMONTHDAY",
                                    format!("`{item}` must be 1..=31 or -31..=-1"),
                                )
                            })?;
                        out.push(n);
                    }
                    by_month_day = Some(out);
                }
                "BYMONTH" => {
                    if by_month.is_some() {
                        return Err(dup());
                    }
                    let mut out = Vec::new();
                    for item in list(&value)? {
                        let n: i8 =
                            digits(&item)
                                .filter(|n| (1..=12).contains(n))
                                .ok_or_else(|| {
                                    rule_err("BYMONTH", format!("`{item}` must be 1..=12"))
                                })?;
                        out.push(n);
                    }
                    by_month = Some(out);
                }
                "BYSETPOS" | "BYHOUR" | "BYMINUTE" | "BYSECOND" | "BYWEEKNO" | "BYYEARDAY"
                | "RSCALE" | "SKIP" => return Err(rule_err(&name, "is not supported")),
                _ => return Err(rule_err(&name, "unknown part")),
            }
        }
        let freq = freq.ok_or_else(|| rule_err("FREQ", "missing"))?;
        let by_day = by_day.unwrap_or_default();
        let by_month_day = by_month_day.unwrap_or_default();
        if count.is_some() && until.is_some() {
            return Err(rule_err("COUNT", "COUNT and UNTIL must not both be given"));
        }
        if matches!(freq, Frequency::Daily | Frequency::Weekly)
            && by_day.iter().any(|d| d.ordinal.is_some())
        {
            return Err(rule_err(
                "BYDAY",
                "ordinal weekdays (e.g. 2TU) need FREQ=MONTHLY or YEARLY",
            ));
        }
        if freq == Frequency::Monthly
            && by_day
                .iter()
                .any(|d| d.ordinal.is_some_and(|n| n.abs() > 5))
        {
            return Err(rule_err(
                "BYDAY",
                "ordinal must be within -5..=5 for FREQ=MONTHLY",
            ));
        }
        if freq == Frequency::Weekly && !by_month_day.is_empty() {
            return Err(rule_err("BYMONTHDAY", "not allowed with FREQ=WEEKLY"));
        }
        Ok(Recurrence {
            freq,
            interval: interval.unwrap_or(1),
            by_day,
            by_month_day,
            by_month: by_month.unwrap_or_default(),
            count,
            until,
        })
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let freq = match self.freq {
            Frequency::Daily => "DAILY",
            Frequency::Weekly => "WEEKLY",
            Frequency::Monthly => "MONTHLY",
            Frequency::Yearly => "YEARLY",
        };
        write!(f, "FREQ={freq}")?;
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        let join = |v: Vec<String>| v.join(",");
        if !self.by_month.is_empty() {
            write!(
                f,
                ";BYMONTH={}",
                join(self.by_month.iter().map(|m| m.to_string()).collect())
            )?;
        }
        if !self.by_month_day.is_empty() {
            write!(
                f,
                ";BYMONTHDAY={}",
                join(self.by_month_day.iter().map(|m| m.to_string()).collect())
            )?;
        }
        if !self.by_day.is_empty() {
            let days = self
                .by_day
                .iter()
                .map(|d| match d.ordinal {
                    Some(n) => format!("{n}{}", weekday_code(d.weekday)),
                    None => weekday_code(d.weekday).to_string(),
                })
                .collect();
            write!(f, ";BYDAY={}", join(days))?;
        }
        if let Some(n) = self.count {
            write!(f, ";COUNT={n}")?;
        }
        match self.until {
            None => {}
            Some(Until::Utc(ts)) => write!(f, ";UNTIL={}", ts.strftime("%Y%m%dT%H%M%SZ"))?,
            Some(Until::Local(dt)) => write!(f, ";UNTIL={}", dt.strftime("%Y%m%dT%H%M%S"))?,
            Some(Until::Date(d)) => write!(f, ";UNTIL={}", d.strftime("%Y%m%d"))?,
        }
        Ok(())
    }
}

/// One occurrence of a window: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    /// When the window opens.
    pub start: Timestamp,
    /// When the window closes (start + duration, exact elapsed time).
    pub end: Timestamp,
}

/// A maintenance window: a recurrence in a time zone with a duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    rrule: Recurrence,
    dtstart: DateTime,
    tz: TimeZone,
    duration: SignedDuration,
    offset_days: i32,
    cutoff: SignedDuration,
}

impl Window {
    /// A window with no day offset and no cutoff. The duration must be
    /// positive.
    pub fn new(
        rrule: Recurrence,
        dtstart: DateTime,
        tz: TimeZone,
        duration: SignedDuration,
    ) -> Result<Window, WindowError> {
        if !duration.is_positive() {
            return Err(WindowError::Window {
                field: "duration",
                message: format!("must be positive, got {duration:?}"),
            });
        }
        Ok(Window {
            rrule,
            dtstart,
            tz,
            duration,
            offset_days: 0,
            cutoff: SignedDuration::ZERO,
        })
    }

    /// Shifts every instance's local date by `days` (e.g. Patch Tuesday + 2).
    /// At most ±3660 days (ten years).
    pub fn with_offset_days(mut self, days: i32) -> Result<Window, WindowError> {
        // `unsigned_abs`: `i32::MIN.abs()` overflows (a 500 found by
        // schemathesis on `POST /api/v1/windows`).
        if days.unsigned_abs() > 3660 {
            return Err(WindowError::Window {
                field: "offset_days",
                message: format!("must be within ±3660, got {days}"),
            });
        }
        self.offset_days = days;
        Ok(self)
    }

    /// No new job starts within `cutoff` of the window's end; it must lie in
    /// `[0, duration]`.
    pub fn with_cutoff(mut self, cutoff: SignedDuration) -> Result<Window, WindowError> {
        if cutoff.is_negative() || cutoff > self.duration {
            return Err(WindowError::Window {
                field: "cutoff",
                message: format!("must lie between 0 and the duration, got {cutoff:?}"),
            });
        }
        self.cutoff = cutoff;
        Ok(self)
    }

    /// The recurrence rule.
    pub fn rrule(&self) -> &Recurrence {
        &self.rrule
    }
    /// The local `DTSTART`.
    pub fn dtstart(&self) -> DateTime {
        self.dtstart
    }
    /// The time zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
    /// The duration of each occurrence.
    pub fn duration(&self) -> SignedDuration {
        self.duration
    }
    /// The day offset.
    pub fn offset_days(&self) -> i32 {
        self.offset_days
    }
    /// The cutoff.
    pub fn cutoff(&self) -> SignedDuration {
        self.cutoff
    }

    /// The last instant at which a new job may start in `occ`:
    /// `end - cutoff` (never before `start`).
    pub fn last_job_start(&self, occ: &Occurrence) -> Timestamp {
        occ.end
            .checked_sub(self.cutoff)
            .map_or(occ.start, |t| t.max(occ.start))
    }

    /// Whether a new job may start at `at` within `occ`:
    /// `start <= at <= end - cutoff`.
    pub fn accepts_job_at(&self, occ: &Occurrence, at: Timestamp) -> bool {
        occ.start <= at && at <= self.last_job_start(occ)
    }

    fn resolve(&self, dt: DateTime) -> Option<Timestamp> {
        self.tz
            .to_ambiguous_timestamp(dt)
            .disambiguate(Disambiguation::Compatible)
            .ok()
    }

    /// Up to `limit` occurrences, in order, that have not ended by `from`:
    /// the first one may have started before `from` and still be open
    /// (`start < from < end`); all later ones start after it.
    pub fn occurrences(&self, from: Timestamp, limit: usize) -> Vec<Occurrence> {
        if limit == 0 {
            return Vec::new();
        }
        self.expand(from, limit, None)
    }

    /// Every occurrence that has not ended by `from` and starts before
    /// `until`, in order (the first may have started before `from`).
    pub fn occurrences_between(&self, from: Timestamp, until: Timestamp) -> Vec<Occurrence> {
        self.expand(from, usize::MAX, Some(until))
    }

    fn expand(&self, from: Timestamp, limit: usize, until: Option<Timestamp>) -> Vec<Occurrence> {
        let mut out = Vec::new();
        let time = self.dtstart.time();
        let mut instances = Instances::new(&self.rrule, self.dtstart.date());
        let mut emitted: u32 = 0;
        while let Some(date) = instances.next() {
            let local = date.to_datetime(time);
            if local < self.dtstart {
                continue;
            }
            if self.rrule.count.is_some_and(|n| emitted >= n) {
                break;
            }
            let Some(instant) = self.resolve(local) else {
                break;
            };
            match self.rrule.until {
                Some(Until::Utc(u)) if instant > u => break,
                Some(Until::Local(u)) if local > u => break,
                Some(Until::Date(u)) if date > u => break,
                _ => {}
            }
            emitted += 1;
            let shifted = if self.offset_days == 0 {
                Some(local)
            } else {
                local.checked_add(Span::new().days(self.offset_days)).ok()
            };
            let Some(start) = shifted.and_then(|dt| self.resolve(dt)) else {
                break;
            };
            let Ok(end) = start.checked_add(self.duration) else {
                break;
            };
            if until.is_some_and(|u| start >= u) {
                break;
            }
            if end > from {
                out.push(Occurrence { start, end });
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }
}

/// The local dates of a rule's instances, in order, from the period that
/// contains `DTSTART` (callers drop those before it). Ends at the end of
/// jiff's calendar range.
struct Instances<'a> {
    rule: &'a Recurrence,
    start: Date,
    period: i64,
    buf: Vec<Date>,
    pos: usize,
    done: bool,
}

impl<'a> Instances<'a> {
    fn new(rule: &'a Recurrence, start: Date) -> Self {
        Instances {
            rule,
            start,
            period: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn next(&mut self) -> Option<Date> {
        loop {
            if self.pos < self.buf.len() {
                self.pos += 1;
                return Some(self.buf[self.pos - 1]);
            }
            if self.done {
                return None;
            }
            self.buf.clear();
            self.pos = 0;
            if self.fill().is_none() {
                self.done = true;
            }
            self.period += 1;
        }
    }

    /// Fills `buf` with the matching days of period number `self.period`;
    /// `None` once past the calendar's range.
    fn fill(&mut self) -> Option<()> {
        let step = self.period.checked_mul(i64::from(self.rule.interval))?;
        match self.rule.freq {
            Frequency::Daily => {
                let d = self
                    .start
                    .checked_add(Span::new().try_days(step).ok()?)
                    .ok()?;
                if self.month_ok(d) && self.month_day_ok(d) && self.weekday_ok(d, None) {
                    self.buf.push(d);
                }
            }
            Frequency::Weekly => {
                let monday = self
                    .start
                    .checked_sub(Span::new().days(self.start.weekday().to_monday_zero_offset()))
                    .ok()?;
                let first = monday.checked_add(Span::new().try_weeks(step).ok()?).ok()?;
                let mut d = first;
                for _ in 0..7 {
                    let day_ok = if self.rule.by_day.is_empty() {
                        d.weekday() == self.start.weekday()
                    } else {
                        self.rule.by_day.iter().any(|b| b.weekday == d.weekday())
                    };
                    if day_ok && self.month_ok(d) {
                        self.buf.push(d);
                    }
                    d = match d.tomorrow() {
                        Ok(d) => d,
                        Err(_) => break,
                    };
                }
            }
            Frequency::Monthly => {
                let first = self
                    .start
                    .first_of_month()
                    .checked_add(Span::new().try_months(step).ok()?)
                    .ok()?;
                if self.month_ok(first) {
                    self.scan_month(first);
                }
            }
            Frequency::Yearly => {
                let year = i16::try_from(i64::from(self.start.year()) + step).ok()?;
                let jan1 = Date::new(year, 1, 1).ok()?;
                if self.rule.by_month.is_empty() && !self.rule.by_day.is_empty() {
                    // BYDAY ordinals count within the year.
                    let mut d = jan1;
                    while d.year() == year {
                        if self.month_day_ok(d)
                            && self.weekday_ok(d, Some((d.day_of_year(), d.days_in_year())))
                        {
                            self.buf.push(d);
                        }
                        d = match d.tomorrow() {
                            Ok(d) => d,
                            Err(_) => break,
                        };
                    }
                } else {
                    for m in 1..=12 {
                        let first = Date::new(year, m, 1).ok()?;
                        if self.month_ok(first) {
                            self.scan_month(first);
                        }
                    }
                }
            }
        }
        Some(())
    }

    /// Pushes the matching days of the month that starts at `first`.
    fn scan_month(&mut self, first: Date) {
        let r = self.rule;
        let len = first.days_in_month();
        for day in 1..=len {
            let Ok(d) = Date::new(first.year(), first.month(), day) else {
                break;
            };
            let ok = if r.by_day.is_empty() && r.by_month_day.is_empty() {
                let month_matches = r.freq == Frequency::Monthly
                    || !r.by_month.is_empty()
                    || d.month() == self.start.month();
                month_matches && day == self.start.day()
            } else {
                self.month_day_ok(d) && self.weekday_ok(d, Some((i16::from(day), i16::from(len))))
            };
            if ok {
                self.buf.push(d);
            }
        }
    }

    fn month_ok(&self, d: Date) -> bool {
        self.rule.by_month.is_empty() || self.rule.by_month.contains(&d.month())
    }

    fn month_day_ok(&self, d: Date) -> bool {
        let len = d.days_in_month();
        self.rule.by_month_day.is_empty()
            || self.rule.by_month_day.iter().any(|&n| {
                if n > 0 {
                    d.day() == n
                } else {
                    d.day() == len + 1 + n
                }
            })
    }

    /// `scope` is the day's position in, and the length of, the month or
    /// year that ordinals count in.
    fn weekday_ok(&self, d: Date, scope: Option<(i16, i16)>) -> bool {
        self.rule.by_day.is_empty()
            || self.rule.by_day.iter().any(|b| {
                if b.weekday != d.weekday() {
                    return false;
                }
                match (b.ordinal, scope) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(n), Some((pos, _))) if n > 0 => (pos - 1) / 7 + 1 == n,
                    (Some(n), Some((pos, len))) => (len - pos) / 7 + 1 == -n,
                }
            })
    }
}
