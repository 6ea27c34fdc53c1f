//! The risk model: a finding's tier (P0–P4), its rank within the tier, its SLA due
//! date, and the reasons for all three.
//!
//! # Tiers
//!
//! The default model is the one of the product design ("Default risk model"); every
//! number in it can be changed by policy ([`crate::policy`]). The first rule that
//! matches wins:
//!
//! | tier | when | SLA |
//! | --- | --- | --- |
//! | P0 | in CISA KEV; or EPSS ≥ 0.5 on an internet-facing asset; or CVSS ≥ 9.0 on an internet-facing asset | 72 hours |
//! | P1 | CVSS ≥ 9.0; or CVSS ≥ 7.0 with EPSS ≥ 0.1 | 7 days |
//! | P2 | CVSS ≥ 7.0 | 14 days |
//! | P3 | CVSS ≥ 4.0 | 30 days |
//! | P4 | everything else | 90 days |
//!
//! Only [`Exposure::InternetFacing`] counts as internet-facing; `privileged-data` is
//! treated like `internal` by the tier rules.
//!
//! Then the modifiers: business impact *critical* moves a finding one tier up (never
//! above P0), exposure *isolated* one tier down (never below P4). The two shifts are
//! added before clamping, so on an asset that is both critical and isolated they
//! cancel out whatever the base tier (a P0 stays P0, a P4 stays P4). Either modifier
//! can be switched off by policy.
//!
//! # SLA and due date
//!
//! The SLA clock starts at `max(first_seen, published)`: a finding cannot be late for
//! an advisory that did not exist yet, and an old advisory found today on a new host
//! gives that host's owners the full SLA. `due = sla_start + SLA(tier)`.
//!
//! **KEV due dates are honoured:** CISA gives every KEV entry a due date (a calendar
//! date, no time). It is read as the *end of that day in UTC*, `23:59:59Z`, so a
//! finding due on 2026-12-01 is not late until 2026-12-01 has ended everywhere in
//! UTC. A KEV finding is due at the earlier of its SLA due time and its KEV due time,
//! whatever its tier. A KEV due date already in the past makes the finding overdue
//! at once — CISA's deadline is what it is.
//!
//! # Missing and invalid data
//!
//! Nothing missing becomes a silent zero. The rules, each named in the reasons when
//! it applies:
//!
//! * **No CVSS score** ([`MissingCvss`], policy `tiers.missing_cvss`):
//!   * `distro-severity` (the default): the distribution's own severity or urgency
//!     (Debian urgency, Ubuntu priority, Red Hat/Alma/Rocky severity) is mapped to an
//!     *assumed* CVSS through [`RiskModel::severity_cvss`] — critical → 9.0,
//!     high/important → 7.5, medium/moderate → 5.0, low/negligible/unimportant → 2.0.
//!     A missing or unrecognised severity (`untriaged`, `not yet assigned`) falls
//!     through to the next rule.
//!   * `assume`: the assumed CVSS is [`RiskModel::unknown_cvss`], default **7.0**
//!     ("unknown severity assumed high").
//!
//!   Why 7.0: a finding without any severity is usually a fresh advisory that has not
//!   been scored yet, and those are disproportionately the serious ones. 7.0 puts it
//!   in P2 (14 days), visible on the worklist, rather than in P4 (90 days), where a
//!   real critical would hide for three months; it is not 9.0, which would flood P1
//!   with the many low-value advisories that distributions never bother to score.
//!   The assumed score is used exactly like a measured one (tier rules and the rank
//!   score) and the reasons say "assumed".
//! * **No EPSS score:** the EPSS conditions do not fire (and the rank score counts
//!   EPSS as 0, the population median being below 0.01); the reasons say
//!   "no EPSS score".
//! * **Invalid values** (a CVSS outside 0–10, an EPSS outside 0–1, NaN) are ignored
//!   and then treated as missing; the reasons say so.
//!
//! Missing-data notes are listed whenever the data is missing, even when the tier was
//! decided without it (a KEV entry), because the rank score still uses it.
//!
//! # Rank score
//!
//! [`Assessment::score`] orders findings *within* a tier (higher first); it never
//! overrides the tier. It is in `2..=100`, rounded to two decimals:
//!
//! ```text
//! score = 40 × cvss/10 + 25 × epss + 15 × [in KEV] + impact + exposure
//! impact:   critical 10, high 7, medium 4, low 1
//! exposure: internet-facing 10, privileged-data 7, internal 4, isolated 1
//! ```
//!
//! `cvss` is the measured or assumed score, `epss` is 0 when missing. Severity
//! weighs most, then likelihood of exploitation, then known exploitation, then the
//! asset.
//!
//! # Reasons
//!
//! [`Assessment::reasons`] lists, in order: the rule that decided the base tier,
//! `asset internet-facing` when it is, the missing-data notes, the modifier that
//! moved the tier, and the KEV due date when it is the one that governs.
//! [`summary`] joins them: `P0: in CISA KEV (due 2026-12-01); asset internet-facing`.

use crate::asset::{BusinessImpact, Exposure};
use jiff::civil::Date;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A risk tier. `P0` is the most urgent and the *smallest*: sorting ascending puts
/// the most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// Emergency, out-of-band.
    P0,
    /// Critical.
    P1,
    /// High.
    P2,
    /// Medium (monthly baseline).
    P3,
    /// Low.
    P4,
}

impl Tier {
    /// Every tier, most urgent first.
    pub const ALL: [Tier; 5] = [Tier::P0, Tier::P1, Tier::P2, Tier::P3, Tier::P4];

    /// `"P0"` … `"P4"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::P0 => "P0",
            Tier::P1 => "P1",
            Tier::P2 => "P2",
            Tier::P3 => "P3",
            Tier::P4 => "P4",
        }
    }

    /// 0 for P0 … 4 for P4.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The tier of an index (0 → P0); `None` past P4.
    pub fn from_index(i: usize) -> Option<Tier> {
        Tier::ALL.get(i).copied()
    }

    /// One tier more urgent, not above P0.
    pub fn raised(self) -> Tier {
        Tier::ALL[self.index().saturating_sub(1)]
    }

    /// One tier less urgent, not below P4.
    pub fn lowered(self) -> Tier {
        Tier::ALL[(self.index() + 1).min(4)]
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;

    /// Parses `P0`…`P4` (exact, upper case).
    fn from_str(s: &str) -> Result<Self, String> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown tier {s:?} (expected P0, P1, P2, P3 or P4)"))
    }
}

/// A finding's CISA KEV entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KevInfo {
    /// CISA's due date; honoured as the end of that day in UTC.
    pub due_date: Date,
}

/// Everything the model looks at for one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskInput {
    /// CVSS base score (0–10), when the advisory has one.
    pub cvss: Option<f64>,
    /// Where `cvss` comes from, for the reasons (`NVD, v3.1`; see
    /// [`crate::severity`]).
    pub cvss_source: Option<String>,
    /// The distribution's own severity or urgency (`high`, `important`, …), used
    /// when there is no CVSS score.
    pub severity_hint: Option<String>,
    /// Whose severity `severity_hint` is (`Debian urgency`, `Ubuntu priority`,
    /// `Red Hat severity`), for the reasons.
    pub severity_source: Option<String>,
    /// FIRST EPSS probability (0–1), when known.
    pub epss: Option<f64>,
    /// The CISA KEV entry, when the vulnerability is in the catalog.
    pub kev: Option<KevInfo>,
    /// Business impact of the asset.
    pub business_impact: BusinessImpact,
    /// Exposure of the asset.
    pub exposure: Exposure,
    /// When the finding was first detected.
    pub first_seen: Timestamp,
    /// When the advisory was published, if known.
    pub published: Option<Timestamp>,
}

/// What to do when a finding has no CVSS score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MissingCvss {
    /// Map the distribution's severity through [`RiskModel::severity_cvss`]; without
    /// a recognised severity, assume [`RiskModel::unknown_cvss`]. Policy spelling
    /// `distro-severity`.
    #[serde(rename = "distro-severity")]
    DistroSeverity,
    /// Always assume [`RiskModel::unknown_cvss`]. Policy spelling `assume`.
    #[serde(rename = "assume")]
    Assume,
}

impl MissingCvss {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingCvss::DistroSeverity => "distro-severity",
            MissingCvss::Assume => "assume",
        }
    }
}

impl FromStr for MissingCvss {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "distro-severity" => Ok(MissingCvss::DistroSeverity),
            "assume" => Ok(MissingCvss::Assume),
            other => Err(format!(
                "unknown rule {other:?} (expected \"distro-severity\" or \"assume\")"
            )),
        }
    }
}

/// The risk model. [`Default`] is the product's default model; a policy changes any
/// field (field names are the policy's `[tiers]` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskModel {
    /// SLA per tier, indexed by [`Tier::index`].
    pub sla: [SignedDuration; 5],
    /// Whether being in CISA KEV makes a finding P0.
    pub kev_is_p0: bool,
    /// EPSS at or above which a finding on an internet-facing asset is P0.
    pub p0_epss_internet: f64,
    /// CVSS at or above which a finding on an internet-facing asset is P0.
    pub p0_cvss_internet: f64,
    /// CVSS at or above which a finding is P1.
    pub p1_cvss: f64,
    /// CVSS at or above which a finding with EPSS ≥ [`RiskModel::p1_epss`] is P1.
    pub p1_cvss_with_epss: f64,
    /// EPSS of the second P1 rule.
    pub p1_epss: f64,
    /// CVSS at or above which a finding is P2.
    pub p2_cvss: f64,
    /// CVSS at or above which a finding is P3.
    pub p3_cvss: f64,
    /// The rule for findings without a CVSS score.
    pub missing_cvss: MissingCvss,
    /// The CVSS assumed when no score (and no usable severity) is known.
    pub unknown_cvss: f64,
    /// Distribution severity (lower case) → assumed CVSS.
    pub severity_cvss: BTreeMap<String, f64>,
    /// Whether business impact *critical* raises a finding one tier.
    pub critical_impact_raises: bool,
    /// Whether exposure *isolated* lowers a finding one tier.
    pub isolated_lowers: bool,
}

/// The default SLAs: 72 hours, 7, 14, 30 and 90 days.
pub const DEFAULT_SLA: [SignedDuration; 5] = [
    SignedDuration::from_hours(72),
    SignedDuration::from_hours(7 * 24),
    SignedDuration::from_hours(14 * 24),
    SignedDuration::from_hours(30 * 24),
    SignedDuration::from_hours(90 * 24),
];

/// The default distribution severity → assumed CVSS map. The four levels of the
/// product design (critical 9.0, high 7.5, medium 5.0, low 2.0) under the names
/// Debian, Ubuntu and Red Hat-family feeds use.
pub const DEFAULT_SEVERITY_CVSS: &[(&str, f64)] = &[
    ("critical", 9.0),
    ("high", 7.5),
    ("important", 7.5),
    ("medium", 5.0),
    ("moderate", 5.0),
    ("low", 2.0),
    ("negligible", 2.0),
    ("unimportant", 2.0),
];

impl Default for RiskModel {
    fn default() -> Self {
        RiskModel {
            sla: DEFAULT_SLA,
            kev_is_p0: true,
            p0_epss_internet: 0.5,
            p0_cvss_internet: 9.0,
            p1_cvss: 9.0,
            p1_cvss_with_epss: 7.0,
            p1_epss: 0.1,
            p2_cvss: 7.0,
            p3_cvss: 4.0,
            missing_cvss: MissingCvss::DistroSeverity,
            unknown_cvss: 7.0,
            severity_cvss: DEFAULT_SEVERITY_CVSS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            critical_impact_raises: true,
            isolated_lowers: true,
        }
    }
}

/// The result of assessing one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Final tier, after the modifiers.
    pub tier: Tier,
    /// Tier of the rules, before the modifiers.
    pub base_tier: Tier,
    /// Rank within the tier, `2..=100`, higher first (see the module docs).
    pub score: f64,
    /// When the SLA clock started: `max(first_seen, published)`.
    pub sla_start: Timestamp,
    /// When the finding is due.
    pub due: Timestamp,
    /// Human-readable reasons, most important first.
    pub reasons: Vec<String>,
}

impl Assessment {
    /// Whether the finding is past due at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        now > self.due
    }
}

/// One line for people: `P0: in CISA KEV (due 2026-12-01); asset internet-facing`.
pub fn summary(a: &Assessment) -> String {
    format!("{}: {}", a.tier, a.reasons.join("; "))
}

/// Formats a number for reasons: shortest exact form, always with a decimal point
/// (`9.0`, `0.5`, `0.97565`).
pub(crate) fn num(x: f64) -> String {
    let s = format!("{x}");
    if x.is_finite() && !s.contains('.') && !s.contains('e') {
        format!("{s}.0")
    } else {
        s
    }
}

/// `ts + d`, saturating at jiff's limits instead of failing.
fn add(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The instant a KEV due date ends: `23:59:59Z` of that day.
pub fn kev_due_instant(date: Date) -> Timestamp {
    Offset::UTC
        .to_timestamp(date.at(23, 59, 59, 0))
        .unwrap_or(Timestamp::MAX)
}

/// The effective CVSS, whether it was assumed, and where it came from.
struct Cvss {
    value: f64,
    assumed: bool,
    /// ` (NVD, v3.1)` for a measured score; empty when assumed (the note
    /// says from what).
    source: String,
}

impl RiskModel {
    /// The SLA of a tier.
    pub fn sla_for(&self, tier: Tier) -> SignedDuration {
        self.sla[tier.index()]
    }

    fn effective_cvss(&self, input: &RiskInput, notes: &mut Vec<String>) -> Cvss {
        let mut prefix = "no CVSS score".to_owned();
        match input.cvss {
            Some(c) if (0.0..=10.0).contains(&c) => {
                return Cvss {
                    value: c,
                    assumed: false,
                    source: input
                        .cvss_source
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                };
            }
            Some(c) => prefix = format!("CVSS {} out of range 0-10, ignored", num(c)),
            None => {}
        }
        let hint = input
            .severity_hint
            .as_deref()
            .map(|h| h.trim().trim_end_matches('*').trim().to_lowercase())
            .filter(|h| !h.is_empty());
        let whose = input
            .severity_source
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("distro severity");
        if self.missing_cvss == MissingCvss::DistroSeverity {
            if let Some(h) = &hint {
                if let Some(&v) = self.severity_cvss.get(h) {
                    notes.push(format!("{prefix}; {whose} {h:?} taken as CVSS {}", num(v)));
                    return Cvss {
                        value: v,
                        assumed: true,
                        // The note names it; the rule line stays short.
                        source: String::new(),
                    };
                }
                prefix = format!("{prefix}; {whose} {h:?} not recognised");
            } else {
                prefix = format!("{prefix} and no distro severity");
            }
        }
        let v = self.unknown_cvss;
        notes.push(format!(
            "{prefix}; unknown severity assumed {} (CVSS {})",
            severity_word(v),
            num(v)
        ));
        Cvss {
            value: v,
            assumed: true,
            source: String::new(),
        }
    }

    /// Assesses one finding. Pure; never panics, whatever the input or the model.
    pub fn assess(&self, input: &RiskInput) -> Assessment {
        let mut notes = Vec::new();
        let cvss = self.effective_cvss(input, &mut notes);
        let epss = match input.epss {
            Some(e) if (0.0..=1.0).contains(&e) => Some(e),
            Some(e) => {
                notes.push(format!("EPSS {} out of range 0-1, ignored", num(e)));
                None
            }
            None => {
                notes.push("no EPSS score".to_owned());
                None
            }
        };
        let internet = input.exposure == Exposure::InternetFacing;
        let cv = |threshold: f64| {
            let label = if cvss.assumed { "assumed CVSS" } else { "CVSS" };
            format!(
                "{label} {}{} >= {}",
                num(cvss.value),
                cvss.source,
                num(threshold)
            )
        };

        let (base, rule) = if let (true, Some(k)) = (self.kev_is_p0, input.kev) {
            (Tier::P0, format!("in CISA KEV (due {})", k.due_date))
        } else if let (true, Some(e)) = (internet, epss.filter(|e| *e >= self.p0_epss_internet)) {
            (
                Tier::P0,
                format!("EPSS {} >= {}", num(e), num(self.p0_epss_internet)),
            )
        } else if internet && cvss.value >= self.p0_cvss_internet {
            (Tier::P0, cv(self.p0_cvss_internet))
        } else if cvss.value >= self.p1_cvss {
            (Tier::P1, cv(self.p1_cvss))
        } else if let (true, Some(e)) = (
            cvss.value >= self.p1_cvss_with_epss,
            epss.filter(|e| *e >= self.p1_epss),
        ) {
            (
                Tier::P1,
                format!(
                    "{} with EPSS {} >= {}",
                    cv(self.p1_cvss_with_epss),
                    num(e),
                    num(self.p1_epss)
                ),
            )
        } else if cvss.value >= self.p2_cvss {
            (Tier::P2, cv(self.p2_cvss))
        } else if cvss.value >= self.p3_cvss {
            (Tier::P3, cv(self.p3_cvss))
        } else {
            let label = if cvss.assumed { "assumed CVSS" } else { "CVSS" };
            (
                Tier::P4,
                format!(
                    "{label} {}{} < {}",
                    num(cvss.value),
                    cvss.source,
                    num(self.p3_cvss)
                ),
            )
        };

        // A measured score the rule did not mention (KEV, EPSS) is still named
        // with its source: the reasons always say where the severity came from.
        let unnamed = (!cvss.assumed && !cvss.source.is_empty() && !rule.contains("CVSS"))
            .then(|| format!("CVSS {}{}", num(cvss.value), cvss.source));
        let mut reasons = vec![rule];
        reasons.extend(unnamed);
        if internet {
            reasons.push("asset internet-facing".to_owned());
        }
        reasons.append(&mut notes);

        let up = self.critical_impact_raises && input.business_impact == BusinessImpact::Critical;
        let down = self.isolated_lowers && input.exposure == Exposure::Isolated;
        let tier = match (up, down) {
            (true, true) => {
                reasons.push("business impact critical and asset isolated cancel out".to_owned());
                base
            }
            (true, false) if base == Tier::P0 => {
                reasons.push("business impact critical: already P0".to_owned());
                base
            }
            (true, false) => {
                reasons.push(format!("business impact critical: raised from {base}"));
                base.raised()
            }
            (false, true) if base == Tier::P4 => {
                reasons.push("asset isolated: already P4".to_owned());
                base
            }
            (false, true) => {
                reasons.push(format!("asset isolated: lowered from {base}"));
                base.lowered()
            }
            (false, false) => base,
        };

        let sla_start = match input.published {
            Some(p) if p > input.first_seen => p,
            _ => input.first_seen,
        };
        let sla = self.sla_for(tier);
        let mut due = add(sla_start, sla);
        if let Some(k) = input.kev {
            let kev_due = kev_due_instant(k.due_date);
            if kev_due < due {
                due = kev_due;
                reasons.push(format!(
                    "due {} by the CISA KEV due date, before the {} SLA",
                    k.due_date,
                    crate::when::format_duration(sla)
                ));
            }
        }

        let impact = match input.business_impact {
            BusinessImpact::Critical => 10.0,
            BusinessImpact::High => 7.0,
            BusinessImpact::Medium => 4.0,
            BusinessImpact::Low => 1.0,
        };
        let exposure = match input.exposure {
            Exposure::InternetFacing => 10.0,
            Exposure::PrivilegedData => 7.0,
            Exposure::Internal => 4.0,
            Exposure::Isolated => 1.0,
        };
        let kev = if input.kev.is_some() { 15.0 } else { 0.0 };
        let raw = 4.0 * cvss.value.clamp(0.0, 10.0)
            + 25.0 * epss.unwrap_or(0.0)
            + kev
            + impact
            + exposure;
        let score = if raw.is_finite() {
            (raw * 100.0).round() / 100.0
        } else {
            0.0
        };

        Assessment {
            tier,
            base_tier: base,
            score,
            sla_start,
            due,
            reasons,
        }
    }
}

/// The numbers of an assessment, without its reasons: what ranking needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classified {
    /// Tier after modifiers.
    pub tier: Tier,
    /// Rank within the tier.
    pub score: f64,
    /// Due time.
    pub due: Timestamp,
}

impl RiskModel {
    /// The tier, score and due time of [`RiskModel::assess`], computed without
    /// building reasons (no allocation for the common inputs) — for ranking large
    /// worklists, where reasons are only needed for the lines shown. A property
    /// test checks that it always agrees with `assess`.
    pub fn classify(&self, input: &RiskInput) -> Classified {
        let cvss = match input.cvss {
            Some(c) if (0.0..=10.0).contains(&c) => c,
            _ => {
                let mapped = if self.missing_cvss == MissingCvss::DistroSeverity {
                    input.severity_hint.as_deref().and_then(|h| {
                        let h = h.trim().trim_end_matches('*').trim();
                        if h.is_empty() {
                            return None;
                        }
                        if h.chars().any(char::is_uppercase) {
                            self.severity_cvss.get(&h.to_lowercase()).copied()
                        } else {
                            self.severity_cvss.get(h).copied()
                        }
                    })
                } else {
                    None
                };
                mapped.unwrap_or(self.unknown_cvss)
            }
        };
        let epss = input.epss.filter(|e| (0.0..=1.0).contains(e));
        let internet = input.exposure == Exposure::InternetFacing;
        // The same rules as `assess`, first match wins.
        let p0 = (self.kev_is_p0 && input.kev.is_some())
            || (internet && epss.is_some_and(|e| e >= self.p0_epss_internet))
            || (internet && cvss >= self.p0_cvss_internet);
        let p1 = cvss >= self.p1_cvss
            || (cvss >= self.p1_cvss_with_epss && epss.is_some_and(|e| e >= self.p1_epss));
        let base = if p0 {
            Tier::P0
        } else if p1 {
            Tier::P1
        } else if cvss >= self.p2_cvss {
            Tier::P2
        } else if cvss >= self.p3_cvss {
            Tier::P3
        } else {
            Tier::P4
        };
        let up = self.critical_impact_raises && input.business_impact == BusinessImpact::Critical;
        let down = self.isolated_lowers && input.exposure == Exposure::Isolated;
        let tier = match (up, down) {
            (true, false) => base.raised(),
            (false, true) => base.lowered(),
            _ => base,
        };
        let due = self.due_of(tier, input.published, input.first_seen, input.kev);
        let impact = match input.business_impact {
            BusinessImpact::Critical => 10.0,
            BusinessImpact::High => 7.0,
            BusinessImpact::Medium => 4.0,
            BusinessImpact::Low => 1.0,
        };
        let exposure = match input.exposure {
            Exposure::InternetFacing => 10.0,
            Exposure::PrivilegedData => 7.0,
            Exposure::Internal => 4.0,
            Exposure::Isolated => 1.0,
        };
        let kev = if input.kev.is_some() { 15.0 } else { 0.0 };
        let raw =
            4.0 * cvss.clamp(0.0, 10.0) + 25.0 * epss.unwrap_or(0.0) + kev + impact + exposure;
        let score = if raw.is_finite() {
            (raw * 100.0).round() / 100.0
        } else {
            0.0
        };
        Classified { tier, score, due }
    }

    /// The due time [`RiskModel::classify`] gives a finding of `tier`: the SLA
    /// from the later of publication and first detection, capped by the KEV
    /// due date. The only part of a classification that depends on the
    /// finding's first-seen time, so a ranking of many findings of the same
    /// advisory and asset class classifies once and calls this per finding.
    pub fn due_of(
        &self,
        tier: Tier,
        published: Option<Timestamp>,
        first_seen: Timestamp,
        kev: Option<KevInfo>,
    ) -> Timestamp {
        let sla_start = match published {
            Some(p) if p > first_seen => p,
            _ => first_seen,
        };
        let mut due = add(sla_start, self.sla_for(tier));
        if let Some(k) = kev {
            due = due.min(kev_due_instant(k.due_date));
        }
        due
    }
}

/// The word for an assumed CVSS, by the CVSS v3 qualitative scale.
fn severity_word(v: f64) -> &'static str {
    if v >= 9.0 {
        "critical"
    } else if v >= 7.0 {
        "high"
    } else if v >= 4.0 {
        "medium"
    } else {
        "low"
    }
}
