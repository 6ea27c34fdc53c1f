//! Ranking: each open finding's tier, due date and score under a policy, its
//! policy groups and exclusion, and the exception that covers it.
//!
//! The one place the worklist, triage, the patch catalog, the plan preview, the
//! exception register and the reports get their ranking from, so they cannot
//! disagree — and so none of those modules depends on another (issue 11, item
//! 1: the module graph is a DAG, checked by `tests::module_graph_is_a_dag`).
//! Pure: the inputs come from one [`crate::snapshot::Snapshot`]; `now` is an
//! argument. The ranking itself (tier, due date, score, exclusion, groups, the
//! worklist order) is `patchbay_core::rank`, over domain types; this module
//! converts stored rows into its candidates and carries the wire lines.
//! Exception matching is `patchbay_core::exception`.

use crate::fmt_ts;
use jiff::Timestamp;
use patchbay_core::assess::Index;
use patchbay_core::asset::{AssetKind, BusinessImpact, Exposure};
use patchbay_core::exception::{self, Exception, FindingFacts, Scope};
use patchbay_core::policy::{AssetFacts, Policy};
use patchbay_core::rank::{Candidate, Rank, Ranker};
use patchbay_core::risk::{KevInfo, RiskInput, Tier, summary};
use patchbay_proto::api::{FindingOut, WorkItem};
use patchbay_store::{AssetRow, ExceptionRow, FindingRow};
use std::collections::HashMap;

pub(crate) fn facts(a: &AssetRow) -> (String, AssetKind, BusinessImpact, Exposure) {
    let os = if a.facts.os.id.is_empty() {
        String::new()
    } else {
        format!("{}:{}", a.facts.os.id, a.facts.os.version_id)
    };
    (
        os,
        a.attrs.kind.parse().unwrap_or(AssetKind::Server),
        a.attrs
            .business_impact
            .parse()
            .unwrap_or(BusinessImpact::Medium),
        a.attrs.exposure.parse().unwrap_or(Exposure::Internal),
    )
}

/// Runs `f` over the facts policy rules look at for this asset.
pub(crate) fn with_facts<R>(a: &AssetRow, f: impl FnOnce(&AssetFacts<'_>) -> R) -> R {
    let (os, kind, impact, exposure) = facts(a);
    f(&AssetFacts {
        name: &a.name,
        os: &os,
        tags: &a.attrs.tags,
        owner: &a.attrs.owner,
        environment: &a.attrs.environment,
        kind,
        impact,
        exposure,
    })
}

/// The policy groups an asset belongs to.
pub(crate) fn groups_of(policy: &Policy, a: &AssetRow) -> Vec<String> {
    with_facts(a, |f| policy.groups_of(f))
}

/// One assessed finding, before filtering.
pub(crate) struct Ranked {
    pub(crate) item: WorkItem,
    pub(crate) input: RiskInput,
    pub(crate) tier: Tier,
    pub(crate) due: Timestamp,
    pub(crate) excluded: bool,
    /// (OS, source package, fixed version): the patch that fixes it.
    pub(crate) patch: (String, String, String),
    pub(crate) published: Option<Timestamp>,
    pub(crate) kind: AssetKind,
}

impl Ranked {
    /// The core's view of this line's rank.
    pub(crate) fn rank(&self) -> Rank {
        Rank {
            tier: self.tier,
            score: self.item.score,
            due: self.due,
            overdue: self.item.overdue,
            excluded: self.excluded,
        }
    }
}

/// Assesses `findings` under `policy`; findings of unknown assets are skipped.
pub(crate) fn rank(
    policy: &Policy,
    assets: &HashMap<String, AssetRow>,
    index: &Index,
    findings: Vec<FindingOut>,
    now: Timestamp,
) -> Vec<Ranked> {
    let ranker = Ranker::new(policy);
    let mut groups_cache: HashMap<String, Vec<String>> = HashMap::new();
    let mut out = Vec::with_capacity(findings.len());
    for f in findings {
        let Some(a) = assets.get(&f.asset) else {
            continue;
        };
        let (os, kind, impact, exposure) = facts(a);
        let groups = groups_cache
            .entry(a.name.clone())
            .or_insert_with(|| with_facts(a, |af| ranker.groups(af)))
            .clone();
        let pubd = index.by_id(&f.advisory).and_then(|a| a.published);
        let first_seen: Timestamp = f.first_seen.parse().unwrap_or(now);
        let input = RiskInput {
            cvss: f.cvss,
            cvss_source: f.cvss_source.clone(),
            severity_hint: f.severity.clone(),
            severity_source: f.severity_source.clone(),
            epss: f.epss,
            kev: f
                .due_date
                .as_deref()
                .and_then(|d| d.parse().ok())
                .map(|due_date| KevInfo { due_date }),
            business_impact: impact,
            exposure,
            first_seen,
            published: pubd,
        };
        let c = ranker.rank(
            &Candidate {
                asset: &a.name,
                groups: &groups,
                package: &f.package,
                source_package: &f.source_package,
                input: &input,
            },
            now,
        );
        let patch = (
            os.clone(),
            f.source_package.clone(),
            f.fixed_version.clone().unwrap_or_default(),
        );
        out.push(Ranked {
            tier: c.tier,
            due: c.due,
            excluded: c.excluded,
            patch,
            published: pubd,
            kind,
            input,
            item: WorkItem {
                tier: c.tier.to_string(),
                score: c.score,
                due: fmt_ts(c.due),
                overdue: c.overdue,
                // Filled in for the lines returned (see `explain`).
                summary: String::new(),
                reasons: vec![],
                owner: a.attrs.owner.clone(),
                groups,
                finding: f,
                exception: None,
                vex: None,
            },
        });
    }
    out
}

/// What ranking reads of a finding's advisory (see [`Enrichment::advisory`]).
pub(crate) struct AdvisoryFacts<'a> {
    pub(crate) cves: &'a [String],
    pub(crate) cvss: Option<f64>,
    /// Where `cvss` comes from (`NVD, v3.1`; ADR 0013).
    pub(crate) cvss_source: Option<String>,
    /// The distribution's severity (`high`) and whose it is (`Debian urgency`).
    pub(crate) severity: Option<String>,
    pub(crate) severity_source: Option<String>,
    pub(crate) published: Option<Timestamp>,
    pub(crate) kev_due: Option<String>,
    pub(crate) epss: Option<f64>,
}

impl AdvisoryFacts<'_> {
    /// What the risk model looks at for a finding of this advisory on an
    /// asset of `impact` and `exposure`, first seen at `first_seen`.
    pub(crate) fn risk_input(
        &self,
        impact: BusinessImpact,
        exposure: Exposure,
        first_seen: Timestamp,
    ) -> RiskInput {
        RiskInput {
            cvss: self.cvss,
            cvss_source: self.cvss_source.clone(),
            severity_hint: self.severity.clone(),
            severity_source: self.severity_source.clone(),
            epss: self.epss,
            kev: self
                .kev_due
                .as_deref()
                .and_then(|d| d.parse().ok())
                .map(|due_date| KevInfo { due_date }),
            business_impact: impact,
            exposure,
            first_seen,
            published: self.published,
        }
    }
}

/// Ranks stored findings from borrowed data, computing each asset's facts
/// and groups once and each advisory's facts once (`advisory`), as [`rank`]
/// ranks their wire lines: `each(i, row, rank, groups, advisory)` is called
/// for every finding of a known asset that `keep_asset(asset, groups)` keeps,
/// in `rows` order. The first-seen time is taken to the second, as the wire
/// line carries it, so both give the same rank.
pub(crate) fn rank_rows<'r, 'e>(
    policy: &Policy,
    assets: &'r HashMap<String, AssetRow>,
    rows: &'r [FindingRow],
    advisory: impl Fn(&str) -> AdvisoryFacts<'e>,
    now: Timestamp,
    keep_asset: impl Fn(&AssetRow, &[String]) -> bool,
    mut each: impl FnMut(usize, &'r FindingRow, Rank, &[String], &AdvisoryFacts<'e>),
) {
    struct PerAsset {
        groups: Vec<String>,
        impact: BusinessImpact,
        exposure: Exposure,
        kept: bool,
    }
    let ranker = Ranker::new(policy);
    let mut per_asset: HashMap<&str, PerAsset> = HashMap::new();
    let mut per_advisory: HashMap<&str, AdvisoryFacts<'e>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(a) = assets.get(&r.asset_name) else {
            continue;
        };
        let pa = per_asset.entry(a.name.as_str()).or_insert_with(|| {
            let (_, _, impact, exposure) = facts(a);
            let groups = with_facts(a, |f| ranker.groups(f));
            PerAsset {
                kept: keep_asset(a, &groups),
                groups,
                impact,
                exposure,
            }
        });
        if !pa.kept {
            continue;
        }
        let adv = per_advisory
            .entry(r.finding.advisory_id.as_str())
            .or_insert_with(|| advisory(&r.finding.advisory_id));
        let input = adv.risk_input(
            pa.impact,
            pa.exposure,
            r.first_seen
                .round(jiff::Unit::Second)
                .unwrap_or(r.first_seen),
        );
        let rank = ranker.rank(
            &Candidate {
                asset: &a.name,
                groups: &pa.groups,
                package: &r.finding.package,
                source_package: &r.finding.source_package,
                input: &input,
            },
            now,
        );
        each(i, r, rank, &pa.groups, adv);
    }
}

/// Which lines a worklist keeps (each `None` keeps every line).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wanted<'a> {
    /// Only this asset (any case).
    pub(crate) asset: Option<&'a str>,
    /// Only assets of this owner.
    pub(crate) owner: Option<&'a str>,
    /// Only assets in this policy group.
    pub(crate) group: Option<&'a str>,
    /// Only this tier.
    pub(crate) tier: Option<Tier>,
}

impl Wanted<'_> {
    /// Whether an asset's lines can be kept at all.
    pub(crate) fn asset(&self, name: &str, owner: &str, groups: &[String]) -> bool {
        self.asset.is_none_or(|a| name.eq_ignore_ascii_case(a))
            && self.owner.is_none_or(|o| owner == o)
            && self.group.is_none_or(|g| groups.iter().any(|x| x == g))
    }

    /// Whether a line of a kept asset is kept: by its tier only
    /// ([`Wanted::tier`]; the projection skips whole classes of another tier).
    pub(crate) fn line(&self, r: &Rank) -> bool {
        self.tier(r.tier)
    }

    /// Whether lines of this tier are kept.
    pub(crate) fn tier(&self, tier: Tier) -> bool {
        self.tier.is_none_or(|t| tier == t)
    }
}

/// Adds the reasons (the full assessment) to the lines that are returned.
pub(crate) fn explain(policy: &Policy, ranked: &mut [Ranked]) {
    let model = policy.risk_model();
    for r in ranked {
        let a = model.assess(&r.input);
        r.item.summary = summary(&a);
        r.item.reasons = a.reasons;
    }
}

/// The kinds of exception.
pub const DEFERRED: &str = "deferred";
/// A VEX statement: the finding does not apply.
pub const NOT_AFFECTED: &str = "not_affected";

/// What triage shows of a VEX exception.
pub(crate) fn vex_note(r: &ExceptionRow) -> Option<String> {
    (r.kind == NOT_AFFECTED).then(|| {
        let by = if r.origin.is_empty() {
            format!("operator VEX approved by {}", r.approver)
        } else {
            format!("{} by {} (imported by {})", r.origin, r.owner, r.created_by)
        };
        format!(
            "not affected ({}): {} [{}, {by}]",
            if r.justification.is_empty() {
                "no justification label"
            } else {
                &r.justification
            },
            r.reason,
            r.id
        )
    })
}

/// The domain exception of a stored row.
pub(crate) fn core_of(r: &ExceptionRow) -> Exception {
    Exception {
        id: r.id.clone(),
        advisory: r.advisory.clone(),
        package: r.package.clone(),
        scope: if r.group.is_empty() {
            Scope::Asset(r.asset.clone())
        } else {
            Scope::Group(r.group.clone())
        },
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
    }
}

/// What exception matching looks at in a ranked finding.
pub(crate) fn facts_of(r: &Ranked) -> FindingFacts<'_> {
    let f = &r.item.finding;
    FindingFacts {
        asset: &f.asset,
        groups: &r.item.groups,
        advisory: &f.advisory,
        cves: &f.cves,
        package: &f.package,
        source_package: &f.source_package,
    }
}

/// Marks each ranked finding with the exception in force at `now`, if any.
pub(crate) fn mark(ranked: &mut [Ranked], exceptions: &[Exception], now: Timestamp) {
    for r in ranked {
        r.item.exception =
            exception::excepting(exceptions, &facts_of(r), now).map(|e| e.id.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::path::Path;

    /// A crate's module graph: module → modules it uses. Nodes are the files
    /// of `src/` (a directory module is one node); the crate root is no node
    /// (everything names `crate::App`), but its `pub use m::X` re-exports are
    /// followed to `m`. Edges come from `crate::m` paths, `use crate::{…}`
    /// groups, root re-exports, and calls `self.f(` / `app.f(` of an `impl App`
    /// method `f` defined in exactly one other module (the service layer's
    /// modules depend on each other through `App`'s methods, not only through
    /// `use` lines). Test modules (`#[cfg(test)]` to the end) are left out.
    fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let root = ["lib", "main"];
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            let mut text = String::new();
            if p.is_dir() {
                let mut dirs = vec![p.clone()];
                while let Some(d) = dirs.pop() {
                    for e in std::fs::read_dir(&d).unwrap() {
                        let q = e.unwrap().path();
                        if q.is_dir() {
                            dirs.push(q);
                        } else if q.extension().is_some_and(|x| x == "rs") {
                            text.push_str(&std::fs::read_to_string(&q).unwrap());
                        }
                    }
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                text = std::fs::read_to_string(&p).unwrap();
            } else {
                continue;
            }
            let text = match text.find("#[cfg(test)]") {
                Some(i) => &text[..i],
                None => &text,
            };
            // Comments name modules without depending on them.
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            texts.entry(name).or_default().push_str(&text);
        }
        let modules: BTreeSet<String> = texts
            .keys()
            .filter(|k| !root.contains(&k.as_str()))
            .cloned()
            .collect();
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        // Root re-exports: `pub use m::{A, B};` / `pub use m::A;`.
        let mut reexport: HashMap<String, String> = HashMap::new();
        for r in root {
            for line in texts.get(r).map(String::as_str).unwrap_or("").lines() {
                if let Some(rest) = line.trim().strip_prefix("pub use ") {
                    let m = ident(rest);
                    if modules.contains(&m) {
                        let names = rest[m.len()..].trim_start_matches("::");
                        for n in names.split([',', '{', '}', ';', ' ']) {
                            if !n.is_empty() {
                                reexport.insert(n.to_string(), m.clone());
                            }
                        }
                    }
                }
            }
        }
        // Every `fn` of each module, and who defines each `impl App` method.
        let fns_of = |text: &str| -> BTreeSet<String> {
            text.match_indices("fn ")
                .map(|(i, _)| ident(&text[i + 3..]))
                .filter(|n| !n.is_empty())
                .collect()
        };
        let mut app_method: HashMap<String, Vec<String>> = HashMap::new();
        for (m, text) in &texts {
            let mut in_impl = false;
            for line in text.lines() {
                if line.starts_with("impl App {") {
                    in_impl = true;
                } else if in_impl && line == "}" {
                    in_impl = false;
                } else if in_impl && let Some(i) = line.find("fn ") {
                    let n = ident(&line[i + 3..]);
                    app_method.entry(n).or_default().push(m.clone());
                }
            }
        }
        let mut graph = BTreeMap::new();
        for m in &modules {
            let text = &texts[m];
            let own = fns_of(text);
            let mut deps = BTreeSet::new();
            let mut add = |d: &str| {
                if d != m && modules.contains(d) {
                    deps.insert(d.to_string());
                }
            };
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + 7..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        let n = ident(item.trim());
                        add(reexport.get(&n).map(String::as_str).unwrap_or(&n));
                    }
                } else {
                    let n = ident(rest);
                    add(reexport.get(&n).map(String::as_str).unwrap_or(&n));
                }
            }
            for recv in ["self.", "app.", "self.app."] {
                for (i, _) in text.match_indices(recv) {
                    let n = ident(&text[i + recv.len()..]);
                    let called = text[i + recv.len() + n.len()..].starts_with('(');
                    if called
                        && !own.contains(&n)
                        && let Some([d]) = app_method.get(&n).map(Vec::as_slice)
                    {
                        add(d);
                    }
                }
            }
            graph.insert(m.clone(), deps);
        }
        graph
    }

    /// A cycle of the graph, if there is one.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            n: &str,
            g: &BTreeMap<String, BTreeSet<String>>,
            state: &mut HashMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(n) {
                Some(2) => return None,
                Some(1) => {
                    let at = path.iter().position(|p| p == n).unwrap_or(0);
                    let mut c = path[at..].to_vec();
                    c.push(n.to_string());
                    return Some(c);
                }
                _ => {}
            }
            state.insert(n.to_string(), 1);
            path.push(n.to_string());
            for d in g.get(n).into_iter().flatten() {
                if let Some(c) = visit(d, g, state, path) {
                    return Some(c);
                }
            }
            path.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = HashMap::new();
        for n in graph.keys() {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
        None
    }

    /// Issue 11, item 1: the modules of the service layer and of the CLI form
    /// a DAG — ranking lives in `ranking`, reads in `snapshot`, connecting in
    /// the CLI's `conn` — so a new import circle fails the build.
    #[test]
    fn module_graph_is_a_dag() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for krate in ["patchbay-app", "patchbay-cli"] {
            let g = module_graph(&crates.join(krate).join("src"));
            assert!(g.len() > 10, "{krate}: {} modules", g.len());
            if let Some(c) = cycle(&g) {
                panic!("{krate}: module cycle {}\ngraph: {g:#?}", c.join(" → "));
            }
        }
        // The checker sees the edges it must: these four depend on ranking
        // and on none of each other.
        let g = module_graph(&crates.join("patchbay-app/src"));
        for m in ["prioritise", "schedule", "exceptions", "reports"] {
            let deps = &g[m];
            assert!(
                deps.contains("ranking") || deps.contains("snapshot"),
                "{m}: {deps:?}"
            );
            for other in ["prioritise", "schedule", "exceptions", "reports"] {
                assert!(!deps.contains(other), "{m} uses {other}");
            }
        }
    }

    #[test]
    fn the_checker_finds_a_cycle() {
        let g: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(cycle(&g).unwrap().len(), 4);
    }
}
