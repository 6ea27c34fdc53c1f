//! OSV range evaluation: is an installed version affected by an OSV `affected[]`
//! entry, and which version fixes it?
//!
//! Follows the evaluation pseudocode of the OSV schema
//! (<https://ossf.github.io/osv-schema/#evaluation>, `IsVulnerable`,
//! `IncludedInRanges`, `BeforeLimits`):
//!
//! * A version is affected if it is listed in `versions` or lies in any range.
//! * Per range, the events are **sorted by the range's version order** (OSV allows
//!   any order in the record). The sort is stable: events at equal versions keep
//!   their order in the record, as the reference implementation's Python `sorted`
//!   does. `introduced: "0"` sorts before every version, in every scheme.
//! * Walking the sorted events, `introduced` ≤ v makes v vulnerable, `fixed` ≤ v and
//!   `last_affected` < v make it not vulnerable; the last applicable event wins.
//! * If a range has `limit` events, v must be below at least one of them; a limit
//!   containing `*` is infinity. Without limits there is no cap.
//! * `ECOSYSTEM` ranges are ordered by the package's [`Scheme`], `SEMVER` ranges by
//!   SemVer 2.0.0 precedence (strict: no leading `v`; in the Go scheme, after its
//!   mapping of `v1.2.3` and `go1.21.3` to SemVer), and `GIT` ranges are skipped:
//!   they cannot be evaluated without the repository (records that have only `GIT`
//!   ranges should carry a `versions` list).
//!
//! Invalid versions are errors, never guesses: an invalid installed version, or an
//! invalid event version in an `ECOSYSTEM` or `SEMVER` range, makes [`evaluate`]
//! fail with a [`VersionError`] naming it, and the caller decides (typically: skip the
//! record and report it). Entries of `versions` are compared as strings and, when
//! valid in the package's scheme, by that scheme's equality; an entry that is not a
//! valid version cannot denote the (valid) installed version and is skipped.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::{Scheme, SchemeVersion, VersionError};

/// The type of an OSV range (`affected[].ranges[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RangeKind {
    /// Versions of the package's ecosystem (`ECOSYSTEM`).
    Ecosystem,
    /// SemVer 2.0.0 versions (`SEMVER`).
    Semver,
    /// Git commits (`GIT`); not evaluated.
    Git,
}

/// One OSV range event (`affected[].ranges[].events[]`); serialises as OSV's
/// `{"introduced": "1.0"}` objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The version that introduced the vulnerability (`"0"`: before every version).
    Introduced(String),
    /// The first version that is fixed.
    Fixed(String),
    /// The last version known to be affected.
    LastAffected(String),
    /// An upper limit of the range (a value containing `*` is infinity).
    Limit(String),
}

/// One OSV range (`affected[].ranges[]`). Deserialises from the OSV JSON object
/// (`type` and `events`; other fields such as `repo` are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The range type.
    #[serde(rename = "type")]
    pub kind: RangeKind,
    /// The events, in any order.
    pub events: Vec<Event>,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the installed version is affected.
    pub affected: bool,
    /// The `fixed` version (as written in the record) of the interval that contains
    /// the installed version. `None` when not affected, when the interval has no fix
    /// (open, or closed by `last_affected`), when the version is affected only through
    /// the `versions` list, or when several containing intervals cannot all be
    /// escaped by one version (one of them has no fix, or their fixes are in
    /// different schemes). When several containing intervals all have fixes in one
    /// scheme, the greatest fix.
    pub fixed: Option<String>,
}

/// Where an event sits in the range's order.
enum Bound {
    /// `introduced: "0"`.
    Bottom,
    /// A `limit` containing `*`.
    Top,
    /// A version.
    At(SchemeVersion),
}

fn cmp_bound(a: &Bound, b: &Bound) -> Ordering {
    match (a, b) {
        (Bound::Bottom, Bound::Bottom) | (Bound::Top, Bound::Top) => Ordering::Equal,
        (Bound::Bottom, _) | (_, Bound::Top) => Ordering::Less,
        (_, Bound::Bottom) | (Bound::Top, _) => Ordering::Greater,
        // All versions of one range are parsed in the range's scheme, so this is
        // always `Some`.
        (Bound::At(x), Bound::At(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

struct Parsed<'a> {
    kind: Kind,
    bound: Bound,
    text: &'a str,
}

fn parse_event(scheme: Scheme, event: &Event) -> Result<Parsed<'_>, VersionError> {
    let (kind, text) = match event {
        Event::Introduced(s) => (Kind::Introduced, s.as_str()),
        Event::Fixed(s) => (Kind::Fixed, s.as_str()),
        Event::LastAffected(s) => (Kind::LastAffected, s.as_str()),
        Event::Limit(s) => (Kind::Limit, s.as_str()),
    };
    let bound = match kind {
        Kind::Introduced if text == "0" => Bound::Bottom,
        Kind::Limit if text.contains('*') => Bound::Top,
        _ => Bound::At(SchemeVersion::parse(scheme, text)?),
    };
    Ok(Parsed { kind, bound, text })
}

/// Where the installed version is, relative to one range.
enum InRange<'a> {
    Outside,
    /// Inside an interval, with the `fixed` event that closes it, if any.
    Inside(Option<(&'a SchemeVersion, &'a str)>),
}

/// Where version `v` is relative to bound `b` (`cmp_bound(&Bound::At(v), b)`,
/// without copying `v`).
fn cmp_at(v: &SchemeVersion, b: &Bound) -> Ordering {
    match b {
        Bound::Bottom => Ordering::Greater,
        Bound::Top => Ordering::Less,
        // Parsed in the range's scheme, as `v` is: always `Some`.
        Bound::At(y) => v.partial_cmp(y).unwrap_or(Ordering::Equal),
    }
}

/// Sorts one range's events by the range's version order. Stable: events at
/// equal versions keep the record's order (as the reference implementation's
/// Python `sorted` does). A stable sort of all events, `limit`s included,
/// orders the others exactly as sorting them alone would.
fn sort_events(events: &mut [Parsed<'_>]) {
    events.sort_by(|x, y| cmp_bound(&x.bound, &y.bound));
}

/// Where `v` is relative to one range whose `events` are sorted by
/// [`cmp_bound`], stably (see [`sort_events`]); `limit` events are skipped
/// in the walk, so sorting them along changes nothing.
fn eval_range<'a>(v: &SchemeVersion, events: &'a [Parsed<'a>]) -> InRange<'a> {
    let mut limits = events.iter().filter(|e| e.kind == Kind::Limit).peekable();
    if limits.peek().is_some() && !limits.any(|l| cmp_at(v, &l.bound) == Ordering::Less) {
        return InRange::Outside;
    }
    let sorted = events;

    let mut vulnerable = false;
    let mut opened_at = 0usize;
    for (i, e) in sorted.iter().enumerate() {
        if e.kind == Kind::Limit {
            continue;
        }
        let c = cmp_at(v, &e.bound);
        match e.kind {
            Kind::Introduced if c != Ordering::Less => {
                vulnerable = true;
                opened_at = i;
            }
            Kind::Fixed if c != Ordering::Less => vulnerable = false,
            Kind::LastAffected if c == Ordering::Greater => vulnerable = false,
            _ => {}
        }
    }
    if !vulnerable {
        return InRange::Outside;
    }
    let closing = sorted[opened_at + 1..]
        .iter()
        .find(|e| matches!(e.kind, Kind::Fixed | Kind::LastAffected));
    InRange::Inside(match closing {
        Some(Parsed {
            kind: Kind::Fixed,
            bound: Bound::At(fixed),
            text,
        }) => Some((fixed, text)),
        _ => None,
    })
}

/// Evaluates an OSV `affected[]` entry (its `ranges` and `versions`) for a package
/// whose versions are in `scheme`, at version `installed`.
///
/// Errors (naming the version) when `installed` is not valid in `scheme`, when a
/// `SEMVER` range is present and `installed` is not valid SemVer, or when an event of
/// an `ECOSYSTEM` or `SEMVER` range is not a valid version of that range. See the
/// module docs for the exact semantics.
pub fn evaluate(
    scheme: Scheme,
    ranges: &[Range],
    versions: &[String],
    installed: &str,
) -> Result<Verdict, VersionError> {
    let inst = SchemeVersion::parse(scheme, installed)?;
    evaluate_at(scheme, ranges, versions, installed, &inst)
}

/// [`evaluate`] with the installed version already parsed: `inst` must be
/// `SchemeVersion::parse(scheme, installed)`. For evaluating many entries at
/// one version (a package against every advisory of its name) without parsing
/// it again for each.
pub fn evaluate_at(
    scheme: Scheme,
    ranges: &[Range],
    versions: &[String],
    installed: &str,
    inst: &SchemeVersion,
) -> Result<Verdict, VersionError> {
    debug_assert_eq!(inst.scheme(), scheme);
    // Go's versions are SemVer once mapped (`v1.2.3`, `go1.21.3`): its records'
    // `SEMVER` ranges are evaluated in the Go scheme, which does that mapping.
    let inst_semver = if !matches!(scheme, Scheme::Semver | Scheme::Go)
        && ranges.iter().any(|r| r.kind == RangeKind::Semver)
    {
        Some(SchemeVersion::parse(Scheme::Semver, installed)?)
    } else {
        None
    };

    let mut parsed_ranges = Vec::with_capacity(ranges.len());
    for range in ranges {
        let (range_scheme, v) = match (range.kind, &inst_semver) {
            (RangeKind::Git, _) => continue,
            (RangeKind::Ecosystem, _) | (RangeKind::Semver, None) => (scheme, inst),
            (RangeKind::Semver, Some(sv)) => (Scheme::Semver, sv),
        };
        let mut events = range
            .events
            .iter()
            .map(|e| parse_event(range_scheme, e))
            .collect::<Result<Vec<_>, _>>()?;
        sort_events(&mut events);
        parsed_ranges.push((v, events));
    }

    let mut containing = Vec::new();
    for (v, events) in &parsed_ranges {
        if let InRange::Inside(fix) = eval_range(v, events) {
            containing.push(fix);
        }
    }

    let listed = versions
        .iter()
        .any(|s| s == installed || SchemeVersion::parse(scheme, s).is_ok_and(|p| p == *inst));

    let fixed = if containing.is_empty() {
        None
    } else {
        let mut best: Option<(&SchemeVersion, &str)> = None;
        let mut ok = true;
        for fix in &containing {
            match (fix, best) {
                (None, _) => ok = false,
                (Some(f), None) => best = Some(*f),
                (Some(f), Some(b)) => match f.0.partial_cmp(b.0) {
                    Some(Ordering::Greater) => best = Some(*f),
                    Some(_) => {}
                    None => ok = false,
                },
            }
        }
        if ok {
            best.map(|(_, text)| text.to_owned())
        } else {
            None
        }
    };

    Ok(Verdict {
        affected: listed || !containing.is_empty(),
        fixed,
    })
}
