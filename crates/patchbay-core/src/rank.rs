//! Ranking findings under a policy: each finding's tier, due date, score and
//! exclusion, its asset's policy groups, and the worklist order.
//!
//! The one ranking the service layer's worklist, triage, patch catalog, plan
//! preview, exception register and reports share (issue 11, item 1), over
//! domain types: [`crate::policy`]'s asset facts and rules and
//! [`crate::risk`]'s model. The service layer converts stored rows into a
//! [`Candidate`] and keeps the wire shape to itself.

use crate::policy::{AssetFacts, Policy};
use crate::risk::{RiskInput, RiskModel, Tier};
use jiff::Timestamp;
use std::cmp::Ordering;

/// One finding to rank.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The asset's name.
    pub asset: &'a str,
    /// The asset's policy groups ([`Ranker::groups`]).
    pub groups: &'a [String],
    /// The binary package.
    pub package: &'a str,
    /// The source package (what exclusions usually name).
    pub source_package: &'a str,
    /// What the risk model looks at.
    pub input: &'a RiskInput,
}

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rank {
    /// Tier after modifiers.
    pub tier: Tier,
    /// Rank within the tier (higher first).
    pub score: f64,
    /// SLA due time.
    pub due: Timestamp,
    /// Due before `now`.
    pub overdue: bool,
    /// An exclusion of the policy takes it out of patching.
    pub excluded: bool,
}

/// Ranks findings under one policy.
pub struct Ranker<'p> {
    policy: &'p Policy,
    model: RiskModel,
}

impl<'p> Ranker<'p> {
    /// A ranker under `policy`.
    pub fn new(policy: &'p Policy) -> Self {
        Ranker {
            policy,
            model: policy.risk_model(),
        }
    }

    /// The policy groups of an asset.
    pub fn groups(&self, asset: &AssetFacts<'_>) -> Vec<String> {
        self.policy.groups_of(asset)
    }

    /// The rank of one finding at `now` (allocation-free: reasons come from
    /// `RiskModel::assess` for the lines shown).
    pub fn rank(&self, c: &Candidate<'_>, now: Timestamp) -> Rank {
        let k = self.model.classify(c.input);
        Rank {
            tier: k.tier,
            score: k.score,
            due: k.due,
            overdue: k.due < now,
            excluded: self.excluded(c.asset, c.groups, c.package, c.source_package),
        }
    }
}

/// The part of a finding's rank that does not depend on its first-seen time
/// (nor on its package): the same for every finding of one advisory on
/// assets of one business impact and exposure ([`Ranker::class`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Class {
    /// Tier after modifiers.
    pub tier: Tier,
    /// Rank within the tier.
    pub score: f64,
    /// The advisory's publication time.
    pub published: Option<Timestamp>,
    /// Its KEV entry.
    pub kev: Option<crate::risk::KevInfo>,
}

impl Ranker<'_> {
    /// The class of `input` (its `first_seen` is not looked at).
    pub fn class(&self, input: &RiskInput) -> Class {
        let k = self.model.classify(input);
        Class {
            tier: k.tier,
            score: k.score,
            published: input.published,
            kev: input.kev,
        }
    }

    /// The rank of a finding of class `class` first seen at `first_seen`,
    /// whose exclusion (`excluded`: [`Ranker::excluded`]) is known — equal to
    /// [`Ranker::rank`] of the same finding (tested), at a fraction of its cost
    /// when many findings share a class.
    pub fn rank_in(
        &self,
        class: &Class,
        first_seen: Timestamp,
        excluded: bool,
        now: Timestamp,
    ) -> Rank {
        let due = self
            .model
            .due_of(class.tier, class.published, first_seen, class.kev);
        Rank {
            tier: class.tier,
            score: class.score,
            due,
            overdue: due < now,
            excluded,
        }
    }

    /// Whether the policy excludes a package (binary or source) of an asset.
    pub fn excluded(
        &self,
        asset: &str,
        groups: &[String],
        package: &str,
        source_package: &str,
    ) -> bool {
        self.policy.is_excluded(asset, groups, source_package)
            || self.policy.is_excluded(asset, groups, package)
    }

    /// Whether the policy has any exclusion at all (none: nothing is excluded).
    pub fn excludes_anything(&self) -> bool {
        !self.policy.exclusions.is_empty()
    }
}

/// The worklist order: overdue first, then tier, due time, higher score, and
/// the finding's id to make it total.
pub fn worklist_order(a: &Rank, a_id: &str, b: &Rank, b_id: &str) -> Ordering {
    rank_order(a, b).then_with(|| a_id.cmp(b_id))
}

/// The worklist order without its last key (the finding's id): findings this
/// calls equal are ordered by id.
pub fn rank_order(a: &Rank, b: &Rank) -> Ordering {
    (!a.overdue, a.tier, a.due)
        .cmp(&(!b.overdue, b.tier, b.due))
        .then(b.score.total_cmp(&a.score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::{AssetKind, BusinessImpact, Exposure};

    fn input(cvss: f64, first_seen: Timestamp) -> RiskInput {
        RiskInput {
            cvss: Some(cvss),
            cvss_source: None,
            severity_hint: None,
            severity_source: None,
            epss: None,
            kev: None,
            business_impact: BusinessImpact::Medium,
            exposure: Exposure::Internal,
            first_seen,
            published: None,
        }
    }

    #[test]
    fn ranks_excludes_and_orders() {
        let policy = crate::policy::parse(
            "version = 1\n[[groups]]\nname = \"web\"\nmatch = { tags_any = [\"web\"] }\n\
             [[exclusions]]\npackage = \"openssl\"\ngroup = \"web\"\nreason = \"vendor\"\n",
        )
        .unwrap();
        let r = Ranker::new(&policy);
        let tags = vec!["web".to_string()];
        let facts = AssetFacts {
            name: "web-1",
            os: "debian:12",
            tags: &tags,
            owner: "",
            environment: "",
            kind: AssetKind::Server,
            impact: BusinessImpact::Medium,
            exposure: Exposure::Internal,
        };
        let groups = r.groups(&facts);
        assert_eq!(groups, ["web"]);
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let high = input(9.8, t0);
        let low = input(3.1, now);
        let c = |package, input| Candidate {
            asset: "web-1",
            groups: &groups,
            package,
            source_package: package,
            input,
        };
        let a = r.rank(&c("bash", &high), now);
        let b = r.rank(&c("zlib", &low), now);
        let x = r.rank(&c("openssl", &high), now);
        assert!(a.overdue && !b.overdue);
        assert!(x.excluded && !a.excluded);
        assert!(a.tier <= b.tier);
        assert_eq!(worklist_order(&a, "1", &b, "2"), Ordering::Less);
        assert_eq!(worklist_order(&b, "2", &a, "1"), Ordering::Greater);
        assert_eq!(worklist_order(&a, "1", &a, "2"), Ordering::Less);
    }

    /// `rank_in(class(input), first_seen)` is `rank` of the same finding,
    /// over tiers, KEV, publication before and after first detection, and
    /// assets' impact and exposure.
    #[test]
    fn rank_in_a_class_equals_rank() {
        let policy = crate::policy::parse(
            "version = 1\n[[exclusions]]\npackage = \"zlib\"\nreason = \"vendor\"\n",
        )
        .unwrap();
        let r = Ranker::new(&policy);
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let mut n = 0;
        for (i, cvss) in [None, Some(2.0), Some(5.5), Some(7.5), Some(9.8)]
            .into_iter()
            .enumerate()
        {
            for kev in [None, Some("2026-06-01"), Some("2027-01-01")] {
                for published in [
                    None,
                    Some("2025-01-01T00:00:00Z"),
                    Some("2026-11-30T00:00:00Z"),
                ] {
                    for &impact in BusinessImpact::ALL {
                        for &exposure in Exposure::ALL {
                            for first_seen in ["2026-01-01T00:00:00Z", "2026-11-29T12:00:00Z"] {
                                let mut input =
                                    input(cvss.unwrap_or(0.0), first_seen.parse().unwrap());
                                input.cvss = cvss;
                                input.epss = (i % 2 == 0).then_some(0.5);
                                input.kev = kev.map(|d| crate::risk::KevInfo {
                                    due_date: d.parse().unwrap(),
                                });
                                input.published = published.map(|p| p.parse().unwrap());
                                input.business_impact = impact;
                                input.exposure = exposure;
                                for package in ["bash", "zlib"] {
                                    let c = Candidate {
                                        asset: "a",
                                        groups: &[],
                                        package,
                                        source_package: package,
                                        input: &input,
                                    };
                                    let class = r.class(&input);
                                    let excluded = r.excluded("a", &[], package, package);
                                    assert_eq!(
                                        r.rank_in(&class, input.first_seen, excluded, now),
                                        r.rank(&c, now),
                                        "{input:?}"
                                    );
                                    n += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(n, 5 * 3 * 3 * 4 * 4 * 2 * 2);
    }
}
