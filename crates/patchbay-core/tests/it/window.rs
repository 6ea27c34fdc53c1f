//! Maintenance windows: recurrences checked against an independent reference
//! (python-dateutil `rrule` + `zoneinfo`, run inside the test), DST gap and
//! fold rules, offsets, cutoffs, and RRULE parse errors.

use std::process::Command;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use patchbay_core::window::{Frequency, Occurrence, Recurrence, Until, Window, WindowError};

/// The reference: dateutil expands the rule over naive local date-times; each
/// instance (shifted by the day offset) is resolved in the zone by the RFC 5545
/// rules, applied explicitly here: a gap time takes the offset from before the
/// gap (and we assert that zoneinfo's `fold=0` gives the same offset), a fold
/// time takes the earlier instant (and we assert that is `fold=0`). A UTC UNTIL
/// is applied to the resolved instance, since dateutil refuses an aware UNTIL
/// with a naive DTSTART. Prints `start end` in epoch seconds.
const REFERENCE: &str = include_str!("../../../../fixtures/oracles/rrule_reference.py");

fn reference(
    rule: &str,
    dtstart: &str,
    tz: &str,
    dur_secs: i64,
    off: i32,
    from: Timestamp,
    limit: usize,
) -> Vec<(i64, i64)> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(REFERENCE)
        .args([
            rule,
            dtstart,
            tz,
            &dur_secs.to_string(),
            &off.to_string(),
            &from.as_second().to_string(),
            &limit.to_string(),
        ])
        .output()
        .expect("python3 must be installed to run the window reference tests");
    let stdout = String::from_utf8(out.stdout).unwrap();
    if stdout.contains("NO_DATEUTIL") {
        panic!("python-dateutil is not importable: pip install python-dateutil");
    }
    assert!(
        out.status.success(),
        "reference failed for {rule} {dtstart} {tz}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let (s, e) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), e.parse().unwrap())
        })
        .collect()
}

fn window(rule: &str, dtstart: &str, tz: &str, dur_secs: i64, off: i32) -> Window {
    let rrule: Recurrence = rule.parse().unwrap_or_else(|e| panic!("{rule}: {e}"));
    let dt: DateTime = dtstart.parse().unwrap();
    Window::new(
        rrule,
        dt,
        TimeZone::get(tz).unwrap(),
        SignedDuration::from_secs(dur_secs),
    )
    .unwrap()
    .with_offset_days(off)
    .unwrap()
}

/// Checks ours against the reference (exact UTC start and end instants) and
/// returns ours.
fn check(
    rule: &str,
    dtstart: &str,
    tz: &str,
    dur_secs: i64,
    off: i32,
    from: &str,
    limit: usize,
) -> Vec<Occurrence> {
    let from: Timestamp = from.parse().unwrap();
    let ours = window(rule, dtstart, tz, dur_secs, off).occurrences(from, limit);
    let theirs = reference(rule, dtstart, tz, dur_secs, off, from, limit);
    let ours_secs: Vec<(i64, i64)> = ours
        .iter()
        .map(|o| {
            assert_eq!(
                o.end.duration_since(o.start),
                SignedDuration::from_secs(dur_secs)
            );
            assert_eq!(o.start.subsec_nanosecond(), 0);
            (o.start.as_second(), o.end.as_second())
        })
        .collect();
    assert!(!theirs.is_empty(), "reference produced nothing for {rule}");
    assert_eq!(
        ours_secs, theirs,
        "{rule} dtstart={dtstart} tz={tz} off={off}"
    );
    ours
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn starts(v: &[Occurrence]) -> Vec<Timestamp> {
    v.iter().map(|o| o.start).collect()
}

const H: i64 = 3600;

// ---- America/New_York ------------------------------------------------------

#[test]
fn ny_weekly_sunday_0230_across_spring_forward_gap() {
    let v = check(
        "FREQ=WEEKLY;BYDAY=SU",
        "2025-02-23T02:30:00",
        "America/New_York",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        6,
    );
    // 2025-03-09 02:30 does not exist: EST offset from before the gap → 07:30Z (03:30 EDT).
    assert!(starts(&v).contains(&ts("2025-03-09T07:30:00Z")));
    // A week later it is an ordinary EDT time.
    assert!(starts(&v).contains(&ts("2025-03-16T06:30:00Z")));
}

#[test]
fn ny_weekly_sunday_0130_across_fall_back_fold() {
    let v = check(
        "FREQ=WEEKLY;BYDAY=SU",
        "2025-10-19T01:30:00",
        "America/New_York",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        4,
    );
    // 2025-11-02 01:30 happens twice: the first (EDT, -04) is chosen.
    assert!(starts(&v).contains(&ts("2025-11-02T05:30:00Z")));
    // The 4 h window lasts 4 real hours: it ends at 04:30 EST local.
    let fold = v
        .iter()
        .find(|o| o.start == ts("2025-11-02T05:30:00Z"))
        .unwrap();
    assert_eq!(fold.end, ts("2025-11-02T09:30:00Z"));
}

#[test]
fn ny_patch_tuesday_plus_two_days() {
    let v = check(
        "FREQ=MONTHLY;BYDAY=2TU",
        "2025-01-01T22:00:00",
        "America/New_York",
        4 * H,
        2,
        "2025-01-01T00:00:00Z",
        14,
    );
    // Second Tuesday of January 2025 is the 14th; + 2 days = Thursday 16th, 22:00 EST.
    assert_eq!(v[0].start, ts("2025-01-17T03:00:00Z"));
    // March 2025: 2nd Tuesday = 11th, + 2 = 13th, 22:00 EDT.
    assert_eq!(v[2].start, ts("2025-03-14T02:00:00Z"));
}

#[test]
fn ny_monthly_last_day_in_march_and_november() {
    check(
        "FREQ=MONTHLY;BYMONTHDAY=-1;BYMONTH=3,11",
        "2024-01-01T23:00:00",
        "America/New_York",
        2 * H,
        0,
        "2024-01-01T00:00:00Z",
        6,
    );
}

#[test]
fn ny_weekly_count() {
    let v = check(
        "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=5",
        "2025-03-04T02:30:00",
        "America/New_York",
        H,
        0,
        "2025-01-01T00:00:00Z",
        50,
    );
    assert_eq!(v.len(), 5);
}

#[test]
fn ny_weekly_until_utc() {
    let v = check(
        "FREQ=WEEKLY;BYDAY=SA;UNTIL=20250405T060000Z",
        "2025-03-01T02:00:00",
        "America/New_York",
        3 * H,
        0,
        "2025-01-01T00:00:00Z",
        50,
    );
    // 2025-04-05 02:00 EDT is 06:00Z exactly: inclusive.
    assert_eq!(v.last().unwrap().start, ts("2025-04-05T06:00:00Z"));
}

#[test]
fn ny_biweekly_weekend() {
    check(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU",
        "2025-02-22T02:30:00",
        "America/New_York",
        5 * H,
        0,
        "2025-01-01T00:00:00Z",
        12,
    );
}

#[test]
fn ny_yearly_spring_forward_day_gap() {
    // The second Sunday of March at 02:30: in the gap every year.
    let v = check(
        "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "2024-01-01T02:30:00",
        "America/New_York",
        4 * H,
        0,
        "2024-01-01T00:00:00Z",
        5,
    );
    assert_eq!(v[0].start, ts("2024-03-10T07:30:00Z"));
}

#[test]
fn ny_yearly_fall_back_day_fold() {
    let v = check(
        "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
        "2024-01-01T01:30:00",
        "America/New_York",
        4 * H,
        0,
        "2024-01-01T00:00:00Z",
        5,
    );
    assert_eq!(v[0].start, ts("2024-11-03T05:30:00Z"));
}

#[test]
fn ny_yearly_plain() {
    check(
        "FREQ=YEARLY",
        "2024-03-10T02:30:00",
        "America/New_York",
        4 * H,
        0,
        "2024-01-01T00:00:00Z",
        6,
    );
}

#[test]
fn ny_friday_offset_into_sunday_gap() {
    // Friday 02:30 + 2 days lands on the spring-forward Sunday.
    let v = check(
        "FREQ=WEEKLY;BYDAY=FR",
        "2025-02-28T02:30:00",
        "America/New_York",
        4 * H,
        2,
        "2025-01-01T00:00:00Z",
        4,
    );
    assert!(starts(&v).contains(&ts("2025-03-09T07:30:00Z")));
}

#[test]
fn ny_daily_in_progress_occurrence_is_included() {
    let v = check(
        "FREQ=DAILY",
        "2025-03-07T22:00:00",
        "America/New_York",
        8 * H,
        0,
        "2025-03-09T05:00:00Z",
        4,
    );
    // The 2025-03-08 22:00 EST window (03:00Z–11:00Z) is still open at 05:00Z.
    assert_eq!(v[0].start, ts("2025-03-09T03:00:00Z"));
}

#[test]
fn ny_monthly_day_31_skips_short_months() {
    check(
        "FREQ=MONTHLY",
        "2025-01-31T02:30:00",
        "America/New_York",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        7,
    );
}

// ---- Europe/Berlin ---------------------------------------------------------

#[test]
fn berlin_weekly_sunday_0230_gap_and_fold() {
    // 2025-03-30 02:30 is in the gap; 2025-10-26 02:30 is in the fold.
    let v = check(
        "FREQ=WEEKLY;BYDAY=SU",
        "2025-03-16T02:30:00",
        "Europe/Berlin",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        35,
    );
    assert!(starts(&v).contains(&ts("2025-03-30T01:30:00Z")));
    assert!(starts(&v).contains(&ts("2025-10-26T00:30:00Z")));
}

#[test]
fn berlin_monthly_last_friday() {
    check(
        "FREQ=MONTHLY;BYDAY=-1FR",
        "2025-01-01T20:00:00",
        "Europe/Berlin",
        6 * H,
        0,
        "2025-01-01T00:00:00Z",
        13,
    );
}

#[test]
fn berlin_monthly_last_day_of_month() {
    check(
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "2025-01-01T02:30:00",
        "Europe/Berlin",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        13,
    );
}

#[test]
fn berlin_until_local_datetime() {
    let v = check(
        "FREQ=DAILY;INTERVAL=3;UNTIL=20251101T023000",
        "2025-10-01T02:30:00",
        "Europe/Berlin",
        2 * H,
        0,
        "2025-01-01T00:00:00Z",
        100,
    );
    assert_eq!(v.len(), 11);
}

#[test]
fn berlin_patch_tuesday_minus_one_and_monthdays() {
    check(
        "FREQ=MONTHLY;BYDAY=2TU",
        "2025-01-01T02:30:00",
        "Europe/Berlin",
        3 * H,
        -1,
        "2025-01-01T00:00:00Z",
        12,
    );
    check(
        "FREQ=MONTHLY;BYMONTHDAY=15,-1",
        "2025-01-01T02:30:00",
        "Europe/Berlin",
        3 * H,
        0,
        "2025-01-01T00:00:00Z",
        24,
    );
}

#[test]
fn berlin_friday_13th() {
    check(
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        "2024-01-01T02:30:00",
        "Europe/Berlin",
        3 * H,
        0,
        "2024-01-01T00:00:00Z",
        6,
    );
}

// ---- Australia/Sydney ------------------------------------------------------

#[test]
fn sydney_weekly_sunday_0230_fold_and_gap() {
    // 2025-04-06 02:30 is in the fold (AEDT → AEST); 2025-10-05 02:30 in the gap.
    let v = check(
        "FREQ=WEEKLY;BYDAY=SU",
        "2025-03-23T02:30:00",
        "Australia/Sydney",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        30,
    );
    // Fold: the first, AEDT (+11) → 2025-04-05T15:30Z.
    assert!(starts(&v).contains(&ts("2025-04-05T15:30:00Z")));
    // Gap: AEST (+10) from before the gap → 2025-10-04T16:30Z.
    assert!(starts(&v).contains(&ts("2025-10-04T16:30:00Z")));
}

#[test]
fn sydney_monthly_first_sunday_0200() {
    check(
        "FREQ=MONTHLY;BYDAY=1SU",
        "2025-01-01T02:00:00",
        "Australia/Sydney",
        4 * H,
        0,
        "2025-01-01T00:00:00Z",
        12,
    );
}

#[test]
fn sydney_last_friday_in_april_and_october() {
    check(
        "FREQ=YEARLY;BYMONTH=4,10;BYDAY=-1FR",
        "2025-01-01T23:00:00",
        "Australia/Sydney",
        5 * H,
        2,
        "2025-01-01T00:00:00Z",
        8,
    );
}

// ---- Asia/Kolkata ----------------------------------------------------------

#[test]
fn kolkata_daily_interval_two_count() {
    let v = check(
        "FREQ=DAILY;INTERVAL=2;COUNT=10",
        "2025-03-01T02:30:00",
        "Asia/Kolkata",
        2 * H,
        0,
        "2025-01-01T00:00:00Z",
        100,
    );
    assert_eq!(v.len(), 10);
    assert_eq!(v[0].start, ts("2025-02-28T21:00:00Z"));
}

#[test]
fn kolkata_yearly_ordinal_in_year() {
    check(
        "FREQ=YEARLY;BYDAY=20MO",
        "2024-01-01T03:00:00",
        "Asia/Kolkata",
        H,
        0,
        "2024-01-01T00:00:00Z",
        4,
    );
    check(
        "FREQ=YEARLY;BYDAY=-1SU",
        "2024-01-01T03:00:00",
        "Asia/Kolkata",
        H,
        0,
        "2024-01-01T00:00:00Z",
        4,
    );
}

#[test]
fn kolkata_yearly_bymonthday_every_month() {
    check(
        "FREQ=YEARLY;BYMONTHDAY=-2",
        "2024-01-01T03:00:00",
        "Asia/Kolkata",
        H,
        3,
        "2024-01-01T00:00:00Z",
        14,
    );
}

#[test]
fn kolkata_monthly_interval_two_patch_tuesday() {
    check(
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU;BYMONTH=1,2,3,4,5,6",
        "2025-02-01T23:30:00",
        "Asia/Kolkata",
        4 * H,
        2,
        "2025-01-01T00:00:00Z",
        6,
    );
}

// ---- Hand-checked rules ----------------------------------------------------

#[test]
fn date_only_until_includes_that_day() {
    let w = window(
        "FREQ=DAILY;UNTIL=20250305",
        "2025-03-01T02:30:00",
        "America/New_York",
        H,
        0,
    );
    let v = w.occurrences(ts("2025-01-01T00:00:00Z"), 100);
    assert_eq!(v.len(), 5);
    assert_eq!(v[4].start, ts("2025-03-05T07:30:00Z"));
}

#[test]
fn dtstart_not_matching_the_rule_is_not_an_occurrence() {
    let w = window("FREQ=MONTHLY;BYDAY=2TU", "2025-01-01T10:00:00", "UTC", H, 0);
    let v = w.occurrences(ts("2000-01-01T00:00:00Z"), 1);
    assert_eq!(v[0].start, ts("2025-01-14T10:00:00Z"));
}

#[test]
fn impossible_rule_terminates_empty() {
    let w = window(
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "2025-01-01T10:00:00",
        "UTC",
        H,
        0,
    );
    assert!(w.occurrences(ts("2025-01-01T00:00:00Z"), 3).is_empty());
    assert!(w.occurrences(ts("2025-01-01T00:00:00Z"), 0).is_empty());
}

#[test]
fn cutoff_bounds_new_jobs() {
    let w = window("FREQ=DAILY", "2025-01-01T22:00:00", "UTC", 4 * H, 0)
        .with_cutoff(SignedDuration::from_mins(30))
        .unwrap();
    let o = w.occurrences(ts("2025-01-01T00:00:00Z"), 1)[0];
    assert_eq!(w.last_job_start(&o), ts("2025-01-02T01:30:00Z"));
    assert!(w.accepts_job_at(&o, ts("2025-01-02T01:30:00Z")));
    assert!(!w.accepts_job_at(&o, ts("2025-01-02T01:31:00Z")));
    assert!(!w.accepts_job_at(&o, ts("2025-01-01T21:59:00Z")));
    let w2 = window("FREQ=DAILY", "2025-01-01T22:00:00", "UTC", H, 0);
    assert!(
        w2.clone()
            .with_cutoff(SignedDuration::from_mins(61))
            .is_err()
    );
    assert!(w2.with_cutoff(SignedDuration::from_mins(-1)).is_err());
}

#[test]
fn window_rejects_bad_duration_and_offset() {
    let r: Recurrence = "FREQ=DAILY".parse().unwrap();
    let dt: DateTime = "2025-01-01T00:00".parse().unwrap();
    let e = Window::new(r.clone(), dt, TimeZone::UTC, SignedDuration::ZERO).unwrap_err();
    assert!(e.to_string().contains("duration"), "{e}");
    let w = Window::new(r, dt, TimeZone::UTC, SignedDuration::from_hours(1)).unwrap();
    assert!(w.with_offset_days(100_000).is_err());
}

// ---- Parsing ---------------------------------------------------------------

#[test]
fn parses_all_supported_parts() {
    let r: Recurrence = "RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU,-1FR,MO;BYMONTHDAY=1,-1;BYMONTH=1,7;COUNT=4;WKST=SU"
        .parse()
        .unwrap();
    assert_eq!(r.freq(), Frequency::Monthly);
    assert_eq!(r.interval(), 2);
    assert_eq!(r.by_day().len(), 3);
    assert_eq!(r.by_day()[0].ordinal, Some(2));
    assert_eq!(r.by_day()[1].ordinal, Some(-1));
    assert_eq!(r.by_day()[2].ordinal, None);
    assert_eq!(r.by_month_day(), &[1, -1]);
    assert_eq!(r.by_month(), &[1, 7]);
    assert_eq!(r.count(), Some(4));
    // Display round-trips (WKST is dropped: it is ignored).
    let again: Recurrence = r.to_string().parse().unwrap();
    assert_eq!(again, r);

    let u: Recurrence = "FREQ=DAILY;UNTIL=20250101T120000Z".parse().unwrap();
    assert_eq!(u.until(), Some(Until::Utc(ts("2025-01-01T12:00:00Z"))));
    let u: Recurrence = "FREQ=DAILY;UNTIL=20250101T120000".parse().unwrap();
    assert_eq!(
        u.until(),
        Some(Until::Local("2025-01-01T12:00".parse().unwrap()))
    );
    let u: Recurrence = "FREQ=DAILY;UNTIL=20250101".parse().unwrap();
    assert_eq!(u.until(), Some(Until::Date("2025-01-01".parse().unwrap())));
    assert_eq!(u.to_string().parse::<Recurrence>().unwrap(), u);
}

fn err(rule: &str) -> (String, String) {
    match rule.parse::<Recurrence>() {
        Err(WindowError::Rule { part, message }) => (part, message),
        other => panic!("{rule}: expected a rule error, got {other:?}"),
    }
}

#[test]
fn parse_errors_name_the_part() {
    let cases = [
        ("INTERVAL=2", "FREQ"),
        ("FREQ=HOURLY", "FREQ"),
        ("FREQ=FORTNIGHTLY", "FREQ"),
        ("FREQ=DAILY;FREQ=DAILY", "FREQ"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;INTERVAL=x", "INTERVAL"),
        ("FREQ=DAILY;COUNT=-1", "COUNT"),
        ("FREQ=MONTHLY;BYDAY=XX", "BYDAY"),
        ("FREQ=MONTHLY;BYDAY=0TU", "BYDAY"),
        ("FREQ=MONTHLY;BYDAY=6TU", "BYDAY"),
        ("FREQ=WEEKLY;BYDAY=2TU", "BYDAY"),
        ("FREQ=DAILY;BYDAY=-1FR", "BYDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY"),
        ("FREQ=YEARLY;BYMONTH=13", "BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=", "BYMONTH"),
        ("FREQ=DAILY;UNTIL=2025", "UNTIL"),
        ("FREQ=DAILY;UNTIL=20250230", "UNTIL"),
        ("FREQ=DAILY;UNTIL=20250101T250000Z", "UNTIL"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20250101", "COUNT"),
        ("FREQ=DAILY;WKST=XX", "WKST"),
        ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", "BYSETPOS"),
        ("FREQ=DAILY;BYHOUR=3", "BYHOUR"),
        ("FREQ=YEARLY;BYWEEKNO=3", "BYWEEKNO"),
        ("FREQ=DAILY;FOO=1", "FOO"),
        ("FREQ=DAILY;BYDAY", "BYDAY"),
    ];
    for (rule, part) in cases {
        let (got, message) = err(rule);
        assert_eq!(got, part, "{rule}: {message}");
        let shown = rule.parse::<Recurrence>().unwrap_err().to_string();
        assert!(shown.contains(part), "{rule}: {shown}");
    }
}

/// A rule that never matches scans to the end of the calendar (year 9999)
/// and returns nothing; this costs under a second even unoptimised.
#[test]
fn impossible_daily_rule_terminates() {
    let w = window(
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "2025-01-01T10:00:00",
        "UTC",
        H,
        0,
    );
    assert!(w.occurrences(ts("2025-01-01T00:00:00Z"), 3).is_empty());
}

/// An offset out of range is an error naming the field, at the extremes of
/// `i32` too (`i32::MIN.abs()` overflowed: a 500 on `POST /api/v1/windows`,
/// found by schemathesis).
#[test]
fn offsets_out_of_range_are_refused_at_the_extremes() {
    let w = || {
        Window::new(
            "FREQ=WEEKLY;BYDAY=SA".parse().unwrap(),
            "2026-01-03T02:00:00".parse().unwrap(),
            TimeZone::UTC,
            SignedDuration::from_hours(4),
        )
        .unwrap()
    };
    for days in [i32::MIN, i32::MIN + 1, -3661, 3661, i32::MAX] {
        let err = w().with_offset_days(days).unwrap_err();
        assert!(err.to_string().contains("offset_days"), "{days}: {err}");
    }
    for days in [-3660, 0, 3660] {
        assert_eq!(w().with_offset_days(days).unwrap().offset_days(), days);
    }
}
