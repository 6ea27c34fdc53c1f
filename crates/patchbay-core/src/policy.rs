//! Policy as code: one versioned TOML file that sets the risk model, groups of
//! assets, approval rules, exclusions, version pins and rollout rings.
//!
//! [`parse`] turns the text into a validated [`Policy`] or into *every* error it
//! finds, each naming its line and dotted field (`sla.P1`, `groups[2].match.os`;
//! array indices count from 0):
//!
//! ```text
//! line 12, sla.P1: invalid duration "7x" (use e.g. 72h or 7d)
//! ```
//!
//! A TOML syntax error stops at the first one (the rest of the document cannot be
//! trusted); an unsupported or missing `version` stops too (another version's keys
//! would only produce noise). Otherwise unknown keys, wrong types, out-of-range
//! values, duplicate names and dangling references are all reported together,
//! sorted by line.
//!
//! # Format, version 1
//!
//! Every key except `version` is optional and keeps its default when left out: the
//! product's risk model ([`RiskModel::default`]), P0 and P1 always approved, no age
//! based auto-approval, no groups, exclusions, pins or rings. Unknown keys are
//! errors, so a typo cannot silently fall back to a default.
//!
//! | key | meaning |
//! | --- | --- |
//! | `version` | `1` |
//! | `[sla]` `P0`…`P4` | SLA per tier, `"NNh"` or `"NNd"` (1h..=3650d); a tier's SLA may not be longer than the next tier's |
//! | `[tiers]` | the [`RiskModel`] fields: thresholds (EPSS 0..=1, CVSS 0..=10), `kev_is_p0`, `missing_cvss` (`"distro-severity"` or `"assume"`), `unknown_cvss`, `critical_impact_raises`, `isolated_lowers` |
//! | `[tiers.severity_cvss]` | distribution severity → assumed CVSS, merged over the defaults |
//! | `[[groups]]` | `name` (letters, digits, `.`, `_`, `-`; unique), `description`, `match` (a [`Rule`]; `{}` matches all) |
//! | `[approval]` | `always_approve_tiers` (list of tiers), `auto_approve_security_after_days` (0..=3650) |
//! | `[[exclusions]]` | `package` (glob), `asset` (glob), `group`, `reason` (required) |
//! | `[[pins]]` | `package` (exact), `max_version`, `asset` (glob), `group`, `reason` |
//! | `[[rings]]` | `name` (unique), `order` (unique, 0..=1000), `groups` and/or `match`, `soak` (`"NNh"`/`"NNd"`, `"0h"` for none; default 24h); what a deployment obeys in the ring: `max_concurrent` (`N` or `"N%"` of its hosts, rounded up; default 1), `error_budget` (`N` or `"N%"`, rounded down; default 0), `success_threshold` (0–1 or `"NN%"`; default 0.95), `health_checks` (check names of the agents' configuration), `approval` (bool; default false), `rollback` (`"failed-hosts"` (default), `"ring"`, `"none"`) |
//!
//! A rule's keys (`os`, `name`, `tags_any`, `tags_all`, `owner`, `environment`,
//! `kind`, `impact`, `exposure`) take a string or a non-empty list of strings; see
//! [`Rule`] for how they match. Globs know `*` (any run of characters) and `?` (one
//! character).
//!
//! The example below is `fixtures/policy/example.toml`, which the tests parse:
//!
//! ```toml
#![doc = include_str!("../../../fixtures/policy/example.toml")]
//! ```
//!
//! # Fingerprint
//!
//! [`Policy::to_canonical_toml`] writes the *effective* policy (defaults filled in,
//! set-like lists sorted and deduplicated, rings by order) in one fixed layout, and
//! [`Policy::fingerprint`] is the SHA-256 of that text. Reformatting, reordering
//! keys, comments, or spelling out a default leave it unchanged; any change of
//! meaning changes it. Applying a policy whose fingerprint equals the one in force is
//! a no-op. The canonical text is itself a valid policy that parses back to the same
//! [`Policy`].

use crate::asset::{AssetKind, BusinessImpact, Exposure};
use crate::risk::{MissingCvss, RiskModel, Tier, num};
use crate::rollout::{RollbackPolicy, Share, ShareError};
use crate::when::{format_duration, sla_duration};
use jiff::civil::Date;
use jiff::{SignedDuration, Span};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The policy format version this build reads.
pub const VERSION: i64 = 1;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field (`sla.P1`, `groups[2].match.os`); empty for a syntax
    /// error.
    pub field: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}, {}: {}", self.line, self.field, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// What group and ring rules look at. Empty strings mean "unknown" and match no
/// value.
#[derive(Debug, Clone, Copy)]
pub struct AssetFacts<'a> {
    /// The asset's name.
    pub name: &'a str,
    /// OS as `id:version_id` (`debian:12`).
    pub os: &'a str,
    /// Tags.
    pub tags: &'a [String],
    /// Owner.
    pub owner: &'a str,
    /// Environment (`prod`, `staging`…).
    pub environment: &'a str,
    /// Kind.
    pub kind: AssetKind,
    /// Business impact.
    pub impact: BusinessImpact,
    /// Exposure.
    pub exposure: Exposure,
}

/// A membership rule. Every non-empty field must hold (AND); a field holds when
/// any of its values matches (OR), except `tags_all`, which needs all of its tags.
/// The empty rule matches every asset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// `ID` or `ID:VERSION` patterns: the ID must equal the asset's; the version,
    /// when given, must equal the asset's or be a dotted prefix of it
    /// (`almalinux:9` matches `almalinux:9.4`, not `almalinux:90`).
    pub os: Vec<String>,
    /// Globs on the asset name.
    pub name: Vec<String>,
    /// The asset has at least one of these tags.
    pub tags_any: Vec<String>,
    /// The asset has every one of these tags.
    pub tags_all: Vec<String>,
    /// Owners (exact).
    pub owner: Vec<String>,
    /// Environments (exact).
    pub environment: Vec<String>,
    /// Kinds.
    pub kind: Vec<AssetKind>,
    /// Business impacts.
    pub impact: Vec<BusinessImpact>,
    /// Exposures.
    pub exposure: Vec<Exposure>,
}

impl Rule {
    /// Whether the asset satisfies the rule.
    pub fn matches(&self, a: &AssetFacts<'_>) -> bool {
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        (self.os.is_empty() || self.os.iter().any(|p| os_matches(p, a.os)))
            && (self.name.is_empty() || self.name.iter().any(|g| glob_match(g, a.name)))
            && (self.tags_any.is_empty() || self.tags_any.iter().any(|t| a.tags.contains(t)))
            && self.tags_all.iter().all(|t| a.tags.contains(t))
            && any(&self.owner, a.owner)
            && any(&self.environment, a.environment)
            && (self.kind.is_empty() || self.kind.contains(&a.kind))
            && (self.impact.is_empty() || self.impact.contains(&a.impact))
            && (self.exposure.is_empty() || self.exposure.contains(&a.exposure))
    }
}

/// `ID` or `ID:VERSION` against an asset's `id:version_id`.
fn os_matches(pattern: &str, os: &str) -> bool {
    let (id, version) = os.split_once(':').unwrap_or((os, ""));
    match pattern.split_once(':') {
        None => pattern == id,
        Some((pid, pver)) => {
            pid == id
                && (version == pver
                    || version
                        .strip_prefix(pver)
                        .is_some_and(|rest| rest.starts_with('.')))
        }
    }
}

/// Glob matching: `*` matches any run of characters (also none), `?` exactly one;
/// everything else matches itself. Case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and which text position it is tried up to: the
    // classic backtracking-free wildcard match, O(len(p) × len(t)) at worst.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A named set of assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Unique name.
    pub name: String,
    /// Free text (may be empty).
    pub description: String,
    /// Who is in it.
    pub rule: Rule,
}

/// Approval rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRules {
    /// Patches of these tiers are approved as soon as they exist (sorted).
    pub always_approve_tiers: Vec<Tier>,
    /// Other patches are approved this many days after their release; `None`:
    /// only by hand.
    pub auto_approve_security_after_days: Option<u32>,
}

impl Default for ApprovalRules {
    /// P0 and P1 always approved (the zero-day lane must not wait for a person);
    /// nothing approved by age.
    fn default() -> Self {
        ApprovalRules {
            always_approve_tiers: vec![Tier::P0, Tier::P1],
            auto_approve_security_after_days: None,
        }
    }
}

/// The approval decision of [`Policy::approval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Whether the patch is approved.
    pub approved: bool,
    /// Why, for people.
    pub reason: String,
}

/// A package that is never patched automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// Package name glob.
    pub package: String,
    /// Asset name glob, if the exclusion is limited to some assets.
    pub asset: Option<String>,
    /// Group, if the exclusion is limited to a group.
    pub group: Option<String>,
    /// Why.
    pub reason: String,
}

/// The highest version a package may be upgraded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Package name (exact).
    pub package: String,
    /// The cap, compared by the caller in the asset's version scheme.
    pub max_version: String,
    /// Asset name glob, if the pin is limited to some assets.
    pub asset: Option<String>,
    /// Group, if the pin is limited to a group.
    pub group: Option<String>,
    /// Why (may be empty).
    pub reason: String,
}

impl Pin {
    /// Asset-scoped pins beat group-scoped ones, which beat global ones.
    fn specificity(&self) -> u8 {
        u8::from(self.asset.is_some()) * 2 + u8::from(self.group.is_some())
    }
}

/// A rollout ring.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    /// Unique name (`ring0-staging`).
    pub name: String,
    /// Position; rings are kept sorted by it.
    pub order: u32,
    /// Members of any of these groups are in the ring (sorted).
    pub groups: Vec<String>,
    /// Assets matching this rule are in the ring.
    pub rule: Option<Rule>,
    /// How long to wait after the ring's last job before the next ring starts
    /// (`soak`, default 24h; `"0h"` for none).
    pub soak: SignedDuration,
    /// Jobs in flight at most: `N` or `N%` of the ring's hosts, rounded up
    /// (`max_concurrent`; default 1).
    pub max_concurrent: Option<String>,
    /// Failures tolerated: `N` or `N%` of the ring's hosts, rounded down
    /// (`error_budget`; default 0); jobs in flight count against it.
    pub error_budget: Option<String>,
    /// Share of the ring's jobs that ran that must succeed, 0–1 or `"NN%"`
    /// (`success_threshold`; default 0.95).
    pub success_threshold: Option<f64>,
    /// Health checks (names in the agents' local configuration) run before
    /// and after each job of the ring, in addition to the deployment's
    /// (`health_checks`, sorted).
    pub health_checks: Vec<String>,
    /// Whether a human approval (not by the deployment's creator or starter)
    /// is needed before the ring passes (`approval`; default false).
    pub approval: bool,
    /// What a failed ring rolls back (`rollback`: `"failed-hosts"`
    /// (default), `"ring"` or `"none"`).
    pub rollback: RollbackPolicy,
}

/// The soak time of a ring that does not set one.
pub const DEFAULT_SOAK: SignedDuration = SignedDuration::from_hours(24);

/// A validated policy. [`Default`] is the built-in policy, the one `version = 1`
/// alone gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// The risk model (`[sla]` and `[tiers]`).
    pub risk: RiskModel,
    /// Groups, in file order.
    pub groups: Vec<Group>,
    /// Approval rules.
    pub approval: ApprovalRules,
    /// Exclusions, in file order.
    pub exclusions: Vec<Exclusion>,
    /// Pins, in file order.
    pub pins: Vec<Pin>,
    /// Rings, by `order`.
    pub rings: Vec<Ring>,
}

impl Policy {
    /// The risk model this policy sets.
    pub fn risk_model(&self) -> RiskModel {
        self.risk.clone()
    }

    /// Names of the groups the asset is in, in file order.
    pub fn groups_of(&self, asset: &AssetFacts<'_>) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.rule.matches(asset))
            .map(|g| g.name.clone())
            .collect()
    }

    /// The first ring (by order) the asset is in, given its groups
    /// ([`Policy::groups_of`]); `None` when it is in none.
    pub fn ring_of(&self, asset: &AssetFacts<'_>, groups: &[String]) -> Option<&Ring> {
        self.rings.iter().find(|r| {
            r.groups.iter().any(|g| groups.contains(g))
                || r.rule.as_ref().is_some_and(|rule| rule.matches(asset))
        })
    }

    /// The first exclusion (in file order) that keeps `package` on this asset from
    /// being patched automatically.
    pub fn exclusion_for(
        &self,
        asset: &str,
        groups: &[String],
        package: &str,
    ) -> Option<&Exclusion> {
        self.exclusions.iter().find(|e| {
            glob_match(&e.package, package)
                && e.asset.as_ref().is_none_or(|a| glob_match(a, asset))
                && e.group.as_ref().is_none_or(|g| groups.contains(g))
        })
    }

    /// Whether an exclusion applies ([`Policy::exclusion_for`] says which).
    pub fn is_excluded(&self, asset: &str, groups: &[String], package: &str) -> bool {
        self.exclusion_for(asset, groups, package).is_some()
    }

    /// The pin of `package` on this asset: the most specific one that applies
    /// (asset beats group beats everywhere; the first in the file among equals).
    pub fn pin_for(&self, asset: &str, groups: &[String], package: &str) -> Option<&Pin> {
        let mut best: Option<&Pin> = None;
        for p in &self.pins {
            let applies = p.package == package
                && p.asset.as_ref().is_none_or(|a| glob_match(a, asset))
                && p.group.as_ref().is_none_or(|g| groups.contains(g));
            if applies && best.is_none_or(|b| p.specificity() > b.specificity()) {
                best = Some(p);
            }
        }
        best
    }

    /// Whether a (security) patch of `tier`, released on `released`, is approved
    /// on `today`. Every patch Patchbay proposes fixes an advisory, so the age rule
    /// applies to all of them. Exclusions are separate ([`Policy::is_excluded`]).
    pub fn approval(&self, tier: Tier, released: Date, today: Date) -> Approval {
        if self.approval.always_approve_tiers.contains(&tier) {
            return Approval {
                approved: true,
                reason: format!("{tier} patches are always approved"),
            };
        }
        match self.approval.auto_approve_security_after_days {
            Some(n) => {
                let on = Span::new()
                    .try_days(i64::from(n))
                    .ok()
                    .and_then(|s| released.checked_add(s).ok())
                    .unwrap_or(Date::MAX);
                if today >= on {
                    Approval {
                        approved: true,
                        reason: format!(
                            "released {released}; auto-approved {n} days after release, on {on}"
                        ),
                    }
                } else {
                    Approval {
                        approved: false,
                        reason: format!(
                            "released {released}; auto-approval on {on}, {n} days after release"
                        ),
                    }
                }
            }
            None => Approval {
                approved: false,
                reason: format!("{tier} patches need manual approval"),
            },
        }
    }

    /// SHA-256 (hex) of [`Policy::to_canonical_toml`].
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.to_canonical_toml().as_bytes()))
    }

    /// The effective policy in one fixed layout: every key spelled out, keys in a
    /// fixed order, lists sorted. Parses back to an equal [`Policy`].
    ///
    /// Do not change the layout without need: it is hashed by
    /// [`Policy::fingerprint`], and a new layout makes every stored policy look
    /// changed once.
    pub fn to_canonical_toml(&self) -> String {
        let mut w = Writer::default();
        w.line(&format!("version = {VERSION}"));
        w.header("[sla]");
        for t in Tier::ALL {
            w.kv(t.as_str(), &quote(&format_duration(self.risk.sla_for(t))));
        }
        let r = &self.risk;
        w.header("[tiers]");
        w.kv(
            "critical_impact_raises",
            &r.critical_impact_raises.to_string(),
        );
        w.kv("isolated_lowers", &r.isolated_lowers.to_string());
        w.kv("kev_is_p0", &r.kev_is_p0.to_string());
        w.kv("missing_cvss", &quote(r.missing_cvss.as_str()));
        w.kv("p0_cvss_internet", &float(r.p0_cvss_internet));
        w.kv("p0_epss_internet", &float(r.p0_epss_internet));
        w.kv("p1_cvss", &float(r.p1_cvss));
        w.kv("p1_cvss_with_epss", &float(r.p1_cvss_with_epss));
        w.kv("p1_epss", &float(r.p1_epss));
        w.kv("p2_cvss", &float(r.p2_cvss));
        w.kv("p3_cvss", &float(r.p3_cvss));
        w.kv("unknown_cvss", &float(r.unknown_cvss));
        w.header("[tiers.severity_cvss]");
        for (k, v) in &r.severity_cvss {
            w.kv(&quote(k), &float(*v));
        }
        w.header("[approval]");
        let tiers: Vec<&str> = self
            .approval
            .always_approve_tiers
            .iter()
            .map(|t| t.as_str())
            .collect();
        w.kv("always_approve_tiers", &list(&tiers));
        if let Some(n) = self.approval.auto_approve_security_after_days {
            w.kv("auto_approve_security_after_days", &n.to_string());
        }
        for g in &self.groups {
            w.header("[[groups]]");
            w.kv("name", &quote(&g.name));
            if !g.description.is_empty() {
                w.kv("description", &quote(&g.description));
            }
            w.header("[groups.match]");
            w.rule(&g.rule);
        }
        for e in &self.exclusions {
            w.header("[[exclusions]]");
            w.kv("package", &quote(&e.package));
            w.opt("asset", e.asset.as_deref());
            w.opt("group", e.group.as_deref());
            w.kv("reason", &quote(&e.reason));
        }
        for p in &self.pins {
            w.header("[[pins]]");
            w.kv("package", &quote(&p.package));
            w.kv("max_version", &quote(&p.max_version));
            w.opt("asset", p.asset.as_deref());
            w.opt("group", p.group.as_deref());
            if !p.reason.is_empty() {
                w.kv("reason", &quote(&p.reason));
            }
        }
        for r in &self.rings {
            w.header("[[rings]]");
            w.kv("name", &quote(&r.name));
            w.kv("order", &r.order.to_string());
            w.kv("soak", &quote(&format_duration(r.soak)));
            if !r.groups.is_empty() {
                w.kv("groups", &list(&r.groups));
            }
            // Rollout rules: written only when set, so a policy that does not
            // use them keeps its fingerprint.
            if let Some(c) = &r.max_concurrent {
                w.kv("max_concurrent", &quote(c));
            }
            if let Some(b) = &r.error_budget {
                w.kv("error_budget", &quote(b));
            }
            if let Some(t) = r.success_threshold {
                w.kv("success_threshold", &float(t));
            }
            if !r.health_checks.is_empty() {
                w.kv("health_checks", &list(&r.health_checks));
            }
            if r.approval {
                w.kv("approval", "true");
            }
            if r.rollback != RollbackPolicy::FailedHosts {
                w.kv("rollback", &quote(r.rollback.as_str()));
            }
            if let Some(rule) = &r.rule {
                w.header("[rings.match]");
                w.rule(rule);
            }
        }
        w.out
    }
}

/// Builds the canonical text.
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }
    fn header(&mut self, h: &str) {
        self.out.push('\n');
        self.line(h);
    }
    fn kv(&mut self, k: &str, v: &str) {
        self.line(&format!("{k} = {v}"));
    }
    fn opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.kv(k, &quote(v));
        }
    }
    fn rule(&mut self, r: &Rule) {
        let strs = |v: &[String]| v.to_vec();
        let fields: [(&str, Vec<String>); 9] = [
            ("environment", strs(&r.environment)),
            (
                "exposure",
                r.exposure.iter().map(|x| x.as_str().to_owned()).collect(),
            ),
            (
                "impact",
                r.impact.iter().map(|x| x.as_str().to_owned()).collect(),
            ),
            (
                "kind",
                r.kind.iter().map(|x| x.as_str().to_owned()).collect(),
            ),
            ("name", strs(&r.name)),
            ("os", strs(&r.os)),
            ("owner", strs(&r.owner)),
            ("tags_all", strs(&r.tags_all)),
            ("tags_any", strs(&r.tags_any)),
        ];
        for (k, v) in fields {
            if !v.is_empty() {
                self.kv(k, &list(&v));
            }
        }
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// A TOML float that reads back to the same `f64`.
fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // `{:?}` is the shortest text that reads back exactly, and always has a
        // `.` or an exponent, as TOML wants.
        format!("{x:?}")
    }
}

// ---------------------------------------------------------------------------
// Parsing

type Value<'i> = Spanned<DeValue<'i>>;

/// Collects errors with their positions.
struct Cx<'t> {
    text: &'t str,
    errors: Vec<PolicyError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(..) => "a string",
        DeValue::Integer(..) => "an integer",
        DeValue::Float(..) => "a float",
        DeValue::Boolean(..) => "a boolean",
        DeValue::Datetime(..) => "a datetime",
        DeValue::Array(..) => "an array",
        DeValue::Table(..) => "a table",
    }
}

/// A string of a list, with where it was.
struct Item<'v> {
    text: &'v str,
    span: Range<usize>,
    path: String,
}

impl<'t> Cx<'t> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        let offset = offset.min(bytes.len());
        let before = &bytes[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        // Characters, not bytes: count the bytes that start a UTF-8 sequence.
        let column = before[line_start..]
            .iter()
            .filter(|b| (**b & 0xC0) != 0x80)
            .count()
            + 1;
        (line, column)
    }

    fn err(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.errors.push(PolicyError {
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn expected(&mut self, v: &Value<'_>, path: &str, what: &str) {
        self.err(
            v.span(),
            path,
            format!("expected {what}, found {}", a_type(v.get_ref())),
        );
    }

    /// Reports every key of `t` that is not in `allowed`.
    fn known_keys(&mut self, t: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for (k, _) in t.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                self.err(
                    k.span(),
                    &join(path, key),
                    format!(
                        "unknown key `{key}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn missing(&mut self, span: Range<usize>, path: &str, key: &str, hint: &str) {
        self.err(
            span,
            &join(path, key),
            format!("missing required key `{key}`{hint}"),
        );
    }

    fn table<'v, 'i>(&mut self, v: &'v Value<'i>, path: &str) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.expected(v, path, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[key]]`), each with its path.
    fn tables<'v, 'i>(
        &mut self,
        v: &'v Value<'i>,
        path: &str,
    ) -> Vec<(&'v DeTable<'i>, Range<usize>, String)> {
        let DeValue::Array(items) = v.get_ref() else {
            self.expected(v, path, &format!("an array of tables ([[{path}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let Some(t) = self.table(item, &p) {
                out.push((t, item.span(), p));
            }
        }
        out
    }

    fn string<'v>(&mut self, v: &'v Value<'_>, path: &str) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.expected(v, path, "a string");
                None
            }
        }
    }

    /// A non-empty string (after trimming).
    fn text<'v>(&mut self, v: &'v Value<'_>, path: &str) -> Option<&'v str> {
        let s = self.string(v, path)?;
        if s.trim().is_empty() {
            self.err(v.span(), path, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, v: &Value<'_>, path: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(v, path, "a boolean (true or false)");
                None
            }
        }
    }

    fn integer(&mut self, v: &Value<'_>, path: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.expected(v, path, "an integer");
                return None;
            }
        };
        match n {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    v.span(),
                    path,
                    format!("{n} is out of range: must be between {lo} and {hi}"),
                );
                None
            }
            None => {
                self.err(v.span(), path, "integer too large");
                None
            }
        }
    }

    /// A number (integer or float) in `lo..=hi`.
    fn number(&mut self, v: &Value<'_>, path: &str, lo: f64, hi: f64) -> Option<f64> {
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.expected(v, path, "a number");
                return None;
            }
        };
        match x {
            Some(x) if (lo..=hi).contains(&x) => Some(x),
            Some(x) => {
                self.err(
                    v.span(),
                    path,
                    format!(
                        "{} is out of range: must be between {} and {}",
                        num(x),
                        num(lo),
                        num(hi)
                    ),
                );
                None
            }
            None => {
                self.err(v.span(), path, "invalid number");
                None
            }
        }
    }

    /// A string or a non-empty list of non-empty strings.
    fn strings<'v>(&mut self, v: &'v Value<'_>, path: &str) -> Option<Vec<Item<'v>>> {
        match v.get_ref() {
            DeValue::String(_) => self.text(v, path).map(|s| {
                vec![Item {
                    text: s,
                    span: v.span(),
                    path: path.to_owned(),
                }]
            }),
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.err(
                        v.span(),
                        path,
                        "empty list: leave the key out to match anything",
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match self.text(item, &p) {
                        Some(s) => out.push(Item {
                            text: s,
                            span: item.span(),
                            path: p,
                        }),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.expected(v, path, "a string or a list of strings");
                None
            }
        }
    }

    /// Parses each string of a list with `parse`, reporting the failures.
    fn parsed<T, E: fmt::Display>(
        &mut self,
        v: &Value<'_>,
        path: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for item in self.strings(v, path).unwrap_or_default() {
            match parse(item.text) {
                Ok(t) => out.push(t),
                Err(e) => self.err(item.span, &item.path, e.to_string()),
            }
        }
        out
    }
}

fn valid_name(s: &str) -> Result<String, String> {
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid name {s:?} (letters, digits, '.', '_' and '-', starting with a letter or digit)"
        ))
    }
}

fn valid_os(s: &str) -> Result<String, String> {
    let (id, version) = match s.split_once(':') {
        Some((id, v)) => (id, Some(v)),
        None => (s, None),
    };
    let id_ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let version_ok = version
        .is_none_or(|v| !v.is_empty() && !v.contains(':') && !v.chars().any(char::is_whitespace));
    if id_ok && version_ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid OS pattern {s:?} (use ID or ID:VERSION as in os-release, e.g. debian or debian:12)"
        ))
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn sorted_by_str<T: Copy>(mut v: Vec<T>, key: impl Fn(T) -> &'static str) -> Vec<T> {
    v.sort_by_key(|x| key(*x));
    v.dedup_by_key(|x| key(*x));
    v
}

const RULE_KEYS: &[&str] = &[
    "os",
    "name",
    "tags_any",
    "tags_all",
    "owner",
    "environment",
    "kind",
    "impact",
    "exposure",
];

fn parse_rule(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<Rule> {
    let t = cx.table(v, path)?;
    cx.known_keys(t, path, RULE_KEYS);
    let mut rule = Rule::default();
    let own = |s: &str| Ok::<String, String>(s.to_owned());
    for (k, v) in t.iter() {
        let key: &str = k.get_ref();
        let p = join(path, key);
        match key {
            "os" => rule.os = sorted(cx.parsed(v, &p, valid_os)),
            "name" => rule.name = sorted(cx.parsed(v, &p, own)),
            "tags_any" => rule.tags_any = sorted(cx.parsed(v, &p, own)),
            "tags_all" => rule.tags_all = sorted(cx.parsed(v, &p, own)),
            "owner" => rule.owner = sorted(cx.parsed(v, &p, own)),
            "environment" => rule.environment = sorted(cx.parsed(v, &p, own)),
            "kind" => {
                rule.kind = sorted_by_str(cx.parsed(v, &p, AssetKind::from_str), |x| x.as_str())
            }
            "impact" => {
                rule.impact =
                    sorted_by_str(cx.parsed(v, &p, BusinessImpact::from_str), |x| x.as_str())
            }
            "exposure" => {
                rule.exposure = sorted_by_str(cx.parsed(v, &p, Exposure::from_str), |x| x.as_str())
            }
            _ => {}
        }
    }
    Some(rule)
}

/// Parses and validates a policy. `Err` holds every error found, sorted by
/// position (only the first for a TOML syntax error or a bad `version`).
pub fn parse(text: &str) -> Result<Policy, Vec<PolicyError>> {
    let mut cx = Cx {
        text,
        errors: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            cx.err(e.span().unwrap_or(0..0), "", e.message().to_owned());
            return Err(cx.errors);
        }
    };
    let root = doc.get_ref();

    match root.get("version") {
        None => cx.err(
            0..0,
            "version",
            format!("missing required key `version` (this build reads version = {VERSION})"),
        ),
        Some(v) => match v.get_ref() {
            DeValue::Integer(i) if i64::from_str_radix(i.as_str(), i.radix()) == Ok(VERSION) => {}
            DeValue::Integer(i) => cx.err(
                v.span(),
                "version",
                format!("unsupported policy version {i}: this build reads version {VERSION}"),
            ),
            _ => cx.expected(v, "version", "an integer"),
        },
    }
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }

    cx.known_keys(
        root,
        "",
        &[
            "version",
            "sla",
            "tiers",
            "groups",
            "approval",
            "exclusions",
            "pins",
            "rings",
        ],
    );
    let mut policy = Policy::default();
    if let Some(v) = root.get("sla") {
        parse_sla(&mut cx, v, &mut policy.risk);
    }
    if let Some(v) = root.get("tiers") {
        parse_tiers(&mut cx, v, &mut policy.risk);
    }
    // Group names and the line each is defined on, for references and duplicates.
    let mut group_lines: HashMap<String, usize> = HashMap::new();
    if let Some(v) = root.get("groups") {
        policy.groups = parse_groups(&mut cx, v, &mut group_lines);
    }
    if let Some(v) = root.get("approval") {
        parse_approval(&mut cx, v, &mut policy.approval);
    }
    if let Some(v) = root.get("exclusions") {
        policy.exclusions = parse_exclusions(&mut cx, v, &group_lines);
    }
    if let Some(v) = root.get("pins") {
        policy.pins = parse_pins(&mut cx, v, &group_lines);
    }
    if let Some(v) = root.get("rings") {
        policy.rings = parse_rings(&mut cx, v, &group_lines);
    }

    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        cx.errors.sort_by_key(|e| (e.line, e.column));
        Err(cx.errors)
    }
}

fn parse_sla(cx: &mut Cx<'_>, v: &Value<'_>, risk: &mut RiskModel) {
    let Some(t) = cx.table(v, "sla") else { return };
    let mut spans: [Option<(Range<usize>, String)>; 5] = Default::default();
    for (k, v) in t.iter() {
        let key: &str = k.get_ref();
        let path = join("sla", key);
        let Ok(tier) = key.parse::<Tier>() else {
            cx.err(
                k.span(),
                &path,
                format!("unknown tier `{key}` (expected P0, P1, P2, P3 or P4)"),
            );
            continue;
        };
        let Some(s) = cx.string(v, &path) else {
            continue;
        };
        match sla_duration(&path, s) {
            Ok(d) => {
                risk.sla[tier.index()] = d;
                spans[tier.index()] = Some((v.span(), path));
            }
            Err(e) => cx.err(v.span(), &path, e.message()),
        }
    }
    // A less urgent tier must not be due sooner than a more urgent one. Blame the
    // key the file sets (the less urgent one when it sets both).
    for i in 0..4 {
        let (a, b) = (risk.sla[i], risk.sla[i + 1]);
        if a > b {
            let (ta, tb) = (Tier::ALL[i], Tier::ALL[i + 1]);
            let message = format!(
                "{ta}'s SLA ({}) is longer than {tb}'s ({}): a less urgent tier may not be due sooner",
                format_duration(a),
                format_duration(b)
            );
            if let Some((span, path)) = spans[i + 1].clone().or_else(|| spans[i].clone()) {
                cx.err(span, &path, message);
            }
        }
    }
}

fn parse_tiers(cx: &mut Cx<'_>, v: &Value<'_>, r: &mut RiskModel) {
    let Some(t) = cx.table(v, "tiers") else {
        return;
    };
    cx.known_keys(
        t,
        "tiers",
        &[
            "kev_is_p0",
            "p0_epss_internet",
            "p0_cvss_internet",
            "p1_cvss",
            "p1_cvss_with_epss",
            "p1_epss",
            "p2_cvss",
            "p3_cvss",
            "missing_cvss",
            "unknown_cvss",
            "severity_cvss",
            "critical_impact_raises",
            "isolated_lowers",
        ],
    );
    for (k, v) in t.iter() {
        let key: &str = k.get_ref();
        let p = join("tiers", key);
        let epss = |cx: &mut Cx<'_>, slot: &mut f64| {
            if let Some(x) = cx.number(v, &p, 0.0, 1.0) {
                *slot = x;
            }
        };
        let cvss = |cx: &mut Cx<'_>, slot: &mut f64| {
            if let Some(x) = cx.number(v, &p, 0.0, 10.0) {
                *slot = x;
            }
        };
        let flag = |cx: &mut Cx<'_>, slot: &mut bool| {
            if let Some(b) = cx.boolean(v, &p) {
                *slot = b;
            }
        };
        match key {
            "kev_is_p0" => flag(cx, &mut r.kev_is_p0),
            "critical_impact_raises" => flag(cx, &mut r.critical_impact_raises),
            "isolated_lowers" => flag(cx, &mut r.isolated_lowers),
            "p0_epss_internet" => epss(cx, &mut r.p0_epss_internet),
            "p1_epss" => epss(cx, &mut r.p1_epss),
            "p0_cvss_internet" => cvss(cx, &mut r.p0_cvss_internet),
            "p1_cvss" => cvss(cx, &mut r.p1_cvss),
            "p1_cvss_with_epss" => cvss(cx, &mut r.p1_cvss_with_epss),
            "p2_cvss" => cvss(cx, &mut r.p2_cvss),
            "p3_cvss" => cvss(cx, &mut r.p3_cvss),
            "unknown_cvss" => cvss(cx, &mut r.unknown_cvss),
            "missing_cvss" => {
                if let Some(s) = cx.string(v, &p) {
                    match s.parse::<MissingCvss>() {
                        Ok(m) => r.missing_cvss = m,
                        Err(e) => cx.err(v.span(), &p, e),
                    }
                }
            }
            "severity_cvss" => {
                let Some(map) = cx.table(v, &p) else { continue };
                let mut seen: HashMap<String, ()> = HashMap::new();
                for (sk, sv) in map.iter() {
                    let name: &str = sk.get_ref();
                    let sp = join(&p, name);
                    let norm = name.trim().to_lowercase();
                    if norm.is_empty() {
                        cx.err(sk.span(), &sp, "severity name must not be empty");
                        continue;
                    }
                    if seen.insert(norm.clone(), ()).is_some() {
                        cx.err(
                            sk.span(),
                            &sp,
                            format!(
                                "severity {norm:?} is given twice (names are case-insensitive)"
                            ),
                        );
                        continue;
                    }
                    if let Some(x) = cx.number(sv, &sp, 0.0, 10.0) {
                        r.severity_cvss.insert(norm, x);
                    }
                }
            }
            _ => {}
        }
    }
}

fn parse_groups(cx: &mut Cx<'_>, v: &Value<'_>, names: &mut HashMap<String, usize>) -> Vec<Group> {
    let mut groups = Vec::new();
    for (t, span, path) in cx.tables(v, "groups") {
        cx.known_keys(t, &path, &["name", "description", "match"]);
        let name = match t.get("name") {
            Some(nv) => cx.string(nv, &join(&path, "name")).and_then(|s| {
                let name_path = join(&path, "name");
                let name = valid_name(s)
                    .map_err(|m| cx.err(nv.span(), &name_path, m))
                    .ok()?;
                let line = cx.position(nv.span().start).0;
                if let Some(first) = names.get(&name) {
                    cx.err(
                        nv.span(),
                        &name_path,
                        format!("duplicate group name {name:?} (first defined on line {first})"),
                    );
                    return None;
                }
                names.insert(name.clone(), line);
                Some(name)
            }),
            None => {
                cx.missing(span.clone(), &path, "name", "");
                None
            }
        };
        let description = t
            .get("description")
            .and_then(|d| cx.string(d, &join(&path, "description")))
            .unwrap_or_default()
            .to_owned();
        let rule = match t.get("match") {
            Some(m) => parse_rule(cx, m, &join(&path, "match")),
            None => {
                cx.missing(span, &path, "match", " (use `match = {}` for every asset)");
                None
            }
        };
        if let (Some(name), Some(rule)) = (name, rule) {
            groups.push(Group {
                name,
                description,
                rule,
            });
        }
    }
    groups
}

/// Checks a reference to a group.
fn group_ref(
    cx: &mut Cx<'_>,
    v: &Value<'_>,
    path: &str,
    names: &HashMap<String, usize>,
) -> Option<String> {
    let s = cx.text(v, path)?;
    check_group(cx, s, v.span(), path, names)
}

fn check_group(
    cx: &mut Cx<'_>,
    s: &str,
    span: Range<usize>,
    path: &str,
    names: &HashMap<String, usize>,
) -> Option<String> {
    if names.contains_key(s) {
        return Some(s.to_owned());
    }
    let mut known: Vec<&str> = names.keys().map(String::as_str).collect();
    known.sort_unstable();
    let hint = if known.is_empty() {
        "no groups are defined".to_owned()
    } else {
        format!("defined groups: {}", known.join(", "))
    };
    cx.err(span, path, format!("unknown group {s:?} ({hint})"));
    None
}

fn parse_approval(cx: &mut Cx<'_>, v: &Value<'_>, a: &mut ApprovalRules) {
    let Some(t) = cx.table(v, "approval") else {
        return;
    };
    cx.known_keys(
        t,
        "approval",
        &["always_approve_tiers", "auto_approve_security_after_days"],
    );
    if let Some(v) = t.get("always_approve_tiers") {
        let path = "approval.always_approve_tiers";
        // An empty list is meaningful here: approve no tier unconditionally.
        let tiers = match v.get_ref() {
            DeValue::Array(items) if items.is_empty() => Vec::new(),
            _ => cx.parsed(v, path, Tier::from_str),
        };
        a.always_approve_tiers = sorted(tiers);
    }
    if let Some(v) = t.get("auto_approve_security_after_days")
        && let Some(n) = cx.integer(v, "approval.auto_approve_security_after_days", 0, 3650)
    {
        a.auto_approve_security_after_days = u32::try_from(n).ok();
    }
}

/// The optional `asset` (glob) and `group` scopes of an exclusion or pin.
fn scope(
    cx: &mut Cx<'_>,
    t: &DeTable<'_>,
    path: &str,
    names: &HashMap<String, usize>,
) -> (Option<String>, Option<String>) {
    let asset = t
        .get("asset")
        .and_then(|v| cx.text(v, &join(path, "asset")))
        .map(str::to_owned);
    let group = t
        .get("group")
        .and_then(|v| group_ref(cx, v, &join(path, "group"), names));
    (asset, group)
}

fn parse_exclusions(
    cx: &mut Cx<'_>,
    v: &Value<'_>,
    names: &HashMap<String, usize>,
) -> Vec<Exclusion> {
    let mut out = Vec::new();
    for (t, span, path) in cx.tables(v, "exclusions") {
        cx.known_keys(t, &path, &["package", "asset", "group", "reason"]);
        let package = required_text(cx, t, &span, &path, "package");
        let reason = required_text(cx, t, &span, &path, "reason");
        let (asset, group) = scope(cx, t, &path, names);
        if let (Some(package), Some(reason)) = (package, reason) {
            out.push(Exclusion {
                package,
                asset,
                group,
                reason,
            });
        }
    }
    out
}

fn required_text(
    cx: &mut Cx<'_>,
    t: &DeTable<'_>,
    span: &Range<usize>,
    path: &str,
    key: &str,
) -> Option<String> {
    match t.get(key) {
        Some(v) => cx.text(v, &join(path, key)).map(str::to_owned),
        None => {
            cx.missing(span.clone(), path, key, "");
            None
        }
    }
}

fn parse_pins(cx: &mut Cx<'_>, v: &Value<'_>, names: &HashMap<String, usize>) -> Vec<Pin> {
    let mut out: Vec<Pin> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (t, span, path) in cx.tables(v, "pins") {
        cx.known_keys(
            t,
            &path,
            &["package", "max_version", "asset", "group", "reason"],
        );
        let mut package = required_text(cx, t, &span, &path, "package");
        if let (Some(name), Some(v)) = (&package, t.get("package"))
            && name.contains(['*', '?'])
        {
            cx.err(
                v.span(),
                &join(&path, "package"),
                format!("{name:?}: a pin names one package exactly; globs are not allowed"),
            );
            package = None;
        }
        let max_version = required_text(cx, t, &span, &path, "max_version");
        let (asset, group) = scope(cx, t, &path, names);
        let reason = t
            .get("reason")
            .and_then(|v| cx.string(v, &join(&path, "reason")))
            .unwrap_or_default()
            .to_owned();
        let (Some(package), Some(max_version)) = (package, max_version) else {
            continue;
        };
        let pin = Pin {
            package,
            max_version,
            asset,
            group,
            reason,
        };
        let line = cx.position(span.start).0;
        if let Some(i) = out
            .iter()
            .position(|p| p.package == pin.package && p.asset == pin.asset && p.group == pin.group)
        {
            cx.err(
                span,
                &path,
                format!(
                    "a second pin of {:?} for the same assets (first on line {})",
                    pin.package, lines[i]
                ),
            );
            continue;
        }
        out.push(pin);
        lines.push(line);
    }
    out
}

fn parse_rings(cx: &mut Cx<'_>, v: &Value<'_>, names: &HashMap<String, usize>) -> Vec<Ring> {
    let mut rings: Vec<Ring> = Vec::new();
    let mut ring_names: HashMap<String, usize> = HashMap::new();
    let mut orders: HashMap<u32, usize> = HashMap::new();
    for (t, span, path) in cx.tables(v, "rings") {
        cx.known_keys(
            t,
            &path,
            &[
                "name",
                "order",
                "groups",
                "match",
                "soak",
                "max_concurrent",
                "error_budget",
                "success_threshold",
                "health_checks",
                "approval",
                "rollback",
            ],
        );
        let mut ok = true;
        let name = match t.get("name") {
            Some(nv) => {
                let np = join(&path, "name");
                cx.string(nv, &np).and_then(|s| match valid_name(s) {
                    Ok(n) => {
                        if let Some(first) = ring_names.get(&n) {
                            cx.err(
                                nv.span(),
                                &np,
                                format!(
                                    "duplicate ring name {n:?} (first defined on line {first})"
                                ),
                            );
                            None
                        } else {
                            ring_names.insert(n.clone(), cx.position(nv.span().start).0);
                            Some(n)
                        }
                    }
                    Err(m) => {
                        cx.err(nv.span(), &np, m);
                        None
                    }
                })
            }
            None => {
                cx.missing(span.clone(), &path, "name", "");
                None
            }
        };
        let order = match t.get("order") {
            Some(ov) => {
                let op = join(&path, "order");
                cx.integer(ov, &op, 0, 1000).and_then(|n| {
                    let n = u32::try_from(n).ok()?;
                    if let Some(first) = orders.get(&n) {
                        cx.err(
                            ov.span(),
                            &op,
                            format!(
                                "another ring has order {n} (line {first}); orders must differ"
                            ),
                        );
                        None
                    } else {
                        orders.insert(n, cx.position(ov.span().start).0);
                        Some(n)
                    }
                })
            }
            None => {
                cx.missing(span.clone(), &path, "order", "");
                None
            }
        };
        let mut groups = Vec::new();
        if let Some(gv) = t.get("groups") {
            let gp = join(&path, "groups");
            match cx.strings(gv, &gp) {
                Some(items) => {
                    for item in items {
                        match check_group(cx, item.text, item.span, &item.path, names) {
                            Some(g) => groups.push(g),
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }
        let rule = match t.get("match") {
            Some(m) => {
                let r = parse_rule(cx, m, &join(&path, "match"));
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let mut soak = DEFAULT_SOAK;
        if let Some(sv) = t.get("soak") {
            let sp = join(&path, "soak");
            if let Some(text) = cx.string(sv, &sp) {
                match text {
                    "0h" | "0d" => soak = SignedDuration::ZERO,
                    _ => match sla_duration(&sp, text) {
                        Ok(d) => soak = d,
                        Err(e) => {
                            cx.err(sv.span(), &sp, e.message());
                            ok = false;
                        }
                    },
                }
            } else {
                ok = false;
            }
        }
        if t.get("groups").is_none() && t.get("match").is_none() {
            cx.err(
                span.clone(),
                &path,
                "a ring needs `groups` or `match` (use `match = {}` for every asset)",
            );
            ok = false;
        }
        // Rollout rules (what a deployment in this ring obeys).
        let mut share = |cx: &mut Cx<'_>, key: &str| -> Option<String> {
            let v = t.get(key)?;
            let kp = join(&path, key);
            let text = match v.get_ref() {
                DeValue::Integer(_) => cx.integer(v, &kp, 0, 1_000_000).map(|n| n.to_string()),
                _ => cx.string(v, &kp).map(|s| s.trim().to_string()),
            };
            let Some(text) = text else {
                ok = false;
                return None;
            };
            match Share::parse(&text) {
                Ok(_) => Some(text),
                Err(ShareError::Over100) => {
                    cx.err(v.span(), &kp, format!("{text:?} is over 100%"));
                    ok = false;
                    None
                }
                Err(ShareError::Malformed) => {
                    cx.err(
                        v.span(),
                        &kp,
                        format!("{text:?} is not a count or a percentage (e.g. 2 or \"10%\")"),
                    );
                    ok = false;
                    None
                }
            }
        };
        let max_concurrent = share(cx, "max_concurrent");
        let error_budget = share(cx, "error_budget");
        if let Some(c) = &max_concurrent
            && Share::parse(c).is_ok_and(|s| s == Share::Count(0) || s == Share::Percent(0.0))
        {
            let kp = join(&path, "max_concurrent");
            let sp = t
                .get("max_concurrent")
                .map(|v| v.span())
                .unwrap_or(span.clone());
            cx.err(sp, &kp, "must allow at least one job at a time");
            ok = false;
        }
        let success_threshold = match t.get("success_threshold") {
            None => None,
            Some(v) => {
                let kp = join(&path, "success_threshold");
                let x = match v.get_ref() {
                    DeValue::String(s) => match Share::parse(s) {
                        Ok(Share::Percent(p)) => Some(p / 100.0),
                        _ => {
                            cx.err(
                                v.span(),
                                &kp,
                                format!("{s:?} is not a share: write 0.95 or \"95%\""),
                            );
                            None
                        }
                    },
                    _ => cx.number(v, &kp, 0.0, 1.0),
                };
                if x.is_none() {
                    ok = false;
                }
                x
            }
        };
        let mut health_checks = Vec::new();
        if let Some(hv) = t.get("health_checks") {
            let hp = join(&path, "health_checks");
            match cx.strings(hv, &hp) {
                Some(items) => {
                    for item in items {
                        match crate::names::check_label(item.text, 128) {
                            Ok(c) => health_checks.push(c),
                            Err(m) => {
                                cx.err(item.span, &item.path, m);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        let approval = match t.get("approval") {
            None => false,
            Some(v) => {
                let b = cx.boolean(v, &join(&path, "approval"));
                ok &= b.is_some();
                b.unwrap_or(false)
            }
        };
        let rollback = match t.get("rollback") {
            None => RollbackPolicy::FailedHosts,
            Some(v) => {
                let kp = join(&path, "rollback");
                match cx.string(v, &kp) {
                    Some(text) => match RollbackPolicy::parse(text) {
                        Some(p) => p,
                        None => {
                            cx.err(
                                v.span(),
                                &kp,
                                format!(
                                    "unknown rollback {text:?} (\"failed-hosts\", \"ring\" or \"none\")"
                                ),
                            );
                            ok = false;
                            RollbackPolicy::FailedHosts
                        }
                    },
                    None => {
                        ok = false;
                        RollbackPolicy::FailedHosts
                    }
                }
            }
        };
        if let (true, Some(name), Some(order)) = (ok, name, order) {
            rings.push(Ring {
                name,
                order,
                groups: sorted(groups),
                rule,
                soak,
                max_concurrent,
                error_budget,
                success_threshold,
                health_checks: sorted(health_checks),
                approval,
                rollback,
            });
        }
    }
    rings.sort_by_key(|r| r.order);
    rings
}
