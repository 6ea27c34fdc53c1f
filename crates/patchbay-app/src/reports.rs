//! Reports as of a date, as data: [`App::history`] gathers what they are
//! recomputed from, [`App::report`] computes one (`patchbay_core::report`).
//! Rendering them (JSON, CSV, HTML with SVG charts) is `patchbay-render`'s
//! work, called by the server's report endpoint and the evidence bundle.

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::report::{AssetRecord, FindingRecord, History, Report};

pub use patchbay_core::report::KINDS;

impl App {
    /// The history the reports recompute from.
    pub async fn history(&self, caller: &Caller, ctx: &RequestCtx) -> Result<History, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let rows = snap.assets().await?;
        let mut index = std::collections::HashMap::new();
        let assets: Vec<AssetRecord> = rows
            .iter()
            .enumerate()
            .map(|(i, a)| {
                index.insert(a.name.clone(), i);
                AssetRecord {
                    name: a.name.clone(),
                    owner: a.attrs.owner.clone(),
                    groups: crate::ranking::groups_of(&policy, a),
                    managed: a.has_agent,
                    created_at: a.created_at,
                    last_seen: if a.has_agent {
                        a.last_seen_at
                    } else {
                        Some(a.last_seen_at.unwrap_or(a.updated_at))
                    },
                }
            })
            .collect();
        let all = snap.findings(None, true).await?;
        let ranked = snap.rank(&policy, all).await?;
        let findings = ranked
            .into_iter()
            .filter(|r| !r.excluded)
            .filter_map(|r| {
                let f = &r.item.finding;
                Some(FindingRecord {
                    asset: *index.get(&f.asset)?,
                    advisory: f.advisory.clone(),
                    cves: f.cves.clone(),
                    package: f.package.clone(),
                    source_package: f.source_package.clone(),
                    tier: r.tier,
                    first_seen: f.first_seen.parse().ok()?,
                    resolved_at: f.resolved_at.as_deref().and_then(|t| t.parse().ok()),
                    due: r.due,
                })
            })
            .collect();
        let exceptions = snap.exceptions().await?;
        Ok(History {
            assets,
            findings,
            exceptions,
        })
    }

    /// One report as of a date (now by default, to the second), as data.
    pub async fn report(
        &self,
        caller: &Caller,
        kind: &str,
        as_of: Option<Timestamp>,
        ctx: &RequestCtx,
    ) -> Result<Report, AppError> {
        let unknown = || {
            AppError::invalid(format!(
                "kind: unknown report {kind:?} (compliance, ttp, sla or coverage)"
            ))
        };
        if !KINDS.contains(&kind) {
            return Err(unknown());
        }
        let h = self.history(caller, ctx).await?;
        let as_of = as_of.unwrap_or_else(|| self.now());
        Report::compute(kind, &h, as_of.round(jiff::Unit::Second).unwrap_or(as_of))
            .ok_or_else(unknown)
    }
}
