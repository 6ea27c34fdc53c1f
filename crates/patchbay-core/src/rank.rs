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
            excluded: self.policy.is_excluded(c.asset, c.groups, c.source_package)
                || self.policy.is_excluded(c.asset, c.groups, c.package),
        }
    }
}

/// The worklist order: overdue first, then tier, due time, higher score, and
/// the finding's id to make it total.
pub fn worklist_order(a: &Rank, a_id: &str, b: &Rank, b_id: &str) -> Ordering {
    (!a.overdue, a.tier, a.due)
        .cmp(&(!b.overdue, b.tier, b.due))
        .then(b.score.total_cmp(&a.score))
        .then_with(|| a_id.cmp(b_id))
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
}
