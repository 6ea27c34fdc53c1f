//! One read snapshot: the reads an answer must see consistently, through one
//! read transaction (issue 11, item 1).
//!
//! The worklist, triage, the patch catalog, the policy preview, the plan
//! preview, the exception register and the reports each combine the policy in
//! force, the open findings with KEV and EPSS, the assets, the advisory index
//! and the exceptions. Read through separate transactions they could mix two
//! states of the database (a finding resolved between two reads, a policy
//! applied in between); [`App::snapshot`] opens one read transaction, and every
//! read of such an answer goes through the [`Snapshot`] it returns.
//!
//! Invariants: a snapshot is opened after the caller's permission is checked
//! (a refusal writes an audit entry) and dropped before any write transaction
//! is opened, so no call chain holds it while waiting for another connection.
//! `tests::the_worklist_reads_one_snapshot` counts read transactions.

use crate::ranking::{self, Ranked, core_of};
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::assess::Index;
use patchbay_core::auth::Action;
use patchbay_core::exception::Exception;
use patchbay_core::policy::{self, Policy};
use patchbay_core::severity;
use patchbay_proto::api::FindingOut;
use patchbay_store::{AssetRow, PolicyRow, Tx};
use std::collections::HashMap;
use std::sync::Arc;

/// The policy in force when none was applied.
pub const DEFAULT_POLICY: &str = "version = 1\n";

pub(crate) fn parse_policy(text: &str) -> Result<Policy, AppError> {
    policy::parse(text).map_err(|errs| {
        AppError::invalid(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// The policy in force read through `tx` (a snapshot's, or a change's: a
/// change must not wait for a second connection to read it).
pub(crate) async fn policy_in(
    tx: &mut Box<dyn Tx>,
) -> Result<(Policy, Option<PolicyRow>), AppError> {
    let row = tx.current_policy().await?;
    let text = row
        .as_ref()
        .map(|r| r.text.as_str())
        .unwrap_or(DEFAULT_POLICY);
    Ok((parse_policy(text)?, row))
}

/// What a stored finding is enriched with: its advisory (CVEs, CVSS, the
/// distribution's severity), KEV due dates, EPSS scores and the CVEs' imported
/// CVSS scores — read through the snapshot's transaction.
pub(crate) struct Enrichment {
    pub(crate) index: Arc<Index>,
    kev: HashMap<String, patchbay_store::KevRow>,
    epss: HashMap<String, f64>,
    cvss: HashMap<String, Vec<patchbay_store::CvssScoreRow>>,
}

impl Enrichment {
    /// Reads what `rows` need.
    pub(crate) async fn read(
        app: &App,
        tx: &mut Box<dyn Tx>,
        rows: &[patchbay_store::FindingRow],
    ) -> Result<Self, AppError> {
        Self::of_advisories(app, tx, rows.iter().map(|r| r.finding.advisory_id.as_str())).await
    }

    /// Reads what findings of the advisories `ids` need.
    pub(crate) async fn of_advisories<'i>(
        app: &App,
        tx: &mut Box<dyn Tx>,
        ids: impl Iterator<Item = &'i str>,
    ) -> Result<Self, AppError> {
        // Through this transaction: a second connection here deadlocks the pool.
        let index = app.index_in(tx).await?;
        let kev: HashMap<String, patchbay_store::KevRow> = tx
            .all_kev()
            .await?
            .into_iter()
            .map(|k| (k.cve.clone(), k))
            .collect();
        let mut all_cves: Vec<String> = ids
            .filter_map(|id| index.by_id(id))
            .flat_map(|a| a.cves.iter().cloned())
            .collect();
        all_cves.sort();
        all_cves.dedup();
        let epss: HashMap<String, f64> = tx
            .epss_for(&all_cves)
            .await?
            .into_iter()
            .map(|e| (e.cve, e.epss))
            .collect();
        let mut cvss: HashMap<String, Vec<patchbay_store::CvssScoreRow>> = HashMap::new();
        for r in tx.cvss_for(&all_cves).await? {
            cvss.entry(r.cve.clone()).or_default().push(r);
        }
        Ok(Enrichment {
            index,
            kev,
            epss,
            cvss,
        })
    }

    /// The advisory's CVSS score and its source, by the preference of ADR 0013
    /// (`patchbay_core::severity`): its own vector and its CVEs' imported scores.
    fn chosen_cvss(&self, a: &patchbay_core::assess::AdvisoryInfo) -> Option<severity::Chosen> {
        let version = |vector: &str| {
            let v = vector.trim();
            match v.get(..9) {
                Some(p) if p.eq_ignore_ascii_case("CVSS:3.1/") => "3.1",
                Some(p) if p.eq_ignore_ascii_case("CVSS:3.0/") => "3.0",
                Some(p) if p.eq_ignore_ascii_case("CVSS:4.0/") => "4.0",
                _ => "2.0",
            }
        };
        let record = a.cvss.map(|base| severity::Candidate {
            source: severity::Source::Record,
            name: &a.id,
            version: a.cvss_vector.as_deref().map(version).unwrap_or("3.1"),
            base,
        });
        let cves: Vec<(&str, Vec<severity::Candidate<'_>>)> = a
            .cves
            .iter()
            .map(|c| {
                let scores = self
                    .cvss
                    .get(c)
                    .map(|rows| {
                        rows.iter()
                            .filter_map(|r| {
                                Some(severity::Candidate {
                                    source: severity::Source::parse(&r.source_kind)?,
                                    name: &r.source,
                                    version: &r.version,
                                    base: r.base_score,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (c.as_str(), scores)
            })
            .collect();
        severity::choose(record, &cves)
    }

    /// The CVEs, CVSS score, highest EPSS and earliest KEV due date of an advisory.
    pub(crate) fn advisory(&self, id: &str) -> ranking::AdvisoryFacts<'_> {
        let a = self.index.by_id(id);
        let cves: &[String] = a.map(|a| a.cves.as_slice()).unwrap_or(&[]);
        let chosen = a.and_then(|a| self.chosen_cvss(a));
        let distro = a.and_then(|a| a.distro_severity.as_ref());
        ranking::AdvisoryFacts {
            cves,
            cvss: chosen.as_ref().map(|c| c.base),
            cvss_source: chosen.map(|c| c.source),
            severity: distro.map(|(_, level)| level.clone()),
            severity_source: distro.map(|(whose, _)| whose.clone()),
            published: a.and_then(|a| a.published),
            kev_due: cves
                .iter()
                .filter_map(|c| self.kev.get(c))
                .map(|k| k.due_date.clone())
                .min(),
            epss: cves
                .iter()
                .filter_map(|c| self.epss.get(c))
                .copied()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        }
    }

    /// The wire form of a stored finding.
    pub(crate) fn finding_out(&self, r: patchbay_store::FindingRow) -> FindingOut {
        let a = self.advisory(&r.finding.advisory_id);
        FindingOut {
            id: patchbay_core::assess::finding_name(
                &r.asset_name,
                &r.finding.advisory_id,
                &r.finding.package,
                &r.finding.arch,
            ),
            cves: a.cves.to_vec(),
            cvss: a.cvss,
            cvss_source: a.cvss_source.clone(),
            severity: a.severity.clone(),
            severity_source: a.severity_source.clone(),
            epss: a.epss,
            kev: a.kev_due.is_some(),
            due_date: a.kev_due,
            asset: r.asset_name,
            package: r.finding.package,
            source_package: r.finding.source_package,
            unmanaged_path: patchbay_core::assess::unmanaged_path(&r.finding.arch)
                .map(str::to_owned),
            arch: r.finding.arch,
            installed_version: r.finding.installed_version,
            fixed_version: r.finding.fixed_version,
            advisory: r.finding.advisory_id,
            first_seen: fmt_ts(r.first_seen),
            last_seen: fmt_ts(r.last_seen),
            resolved_at: r.resolved_at.map(fmt_ts),
        }
    }
}

/// One read transaction and the reads of a consistent answer.
pub(crate) struct Snapshot<'a> {
    app: &'a App,
    tx: Box<dyn Tx>,
}

impl App {
    /// Opens the one read transaction an answer is computed from.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot<'_>, AppError> {
        let tx = self.store.read().await?;
        Ok(Snapshot { app: self, tx })
    }

    /// The policy in force (the default when none was applied) and its record.
    pub async fn policy_in_force(&self) -> Result<(Policy, Option<PolicyRow>), AppError> {
        self.snapshot().await?.policy_in_force().await
    }

    /// Lists findings, enriched with KEV and EPSS.
    pub async fn list_findings(
        &self,
        caller: &Caller,
        asset: Option<&str>,
        include_resolved: bool,
        ctx: &RequestCtx,
    ) -> Result<Vec<FindingOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        self.snapshot()
            .await?
            .findings(asset, include_resolved)
            .await
    }
}

/// Up to this many distinct assets, [`Snapshot::rank`] reads them by name.
const FEW_ASSETS: usize = 5_000;

impl Snapshot<'_> {
    /// The time answers are computed at.
    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.app.now()
    }

    /// The enrichment of findings of the advisories `ids`.
    pub(crate) async fn enrichment_of<'i>(
        &mut self,
        ids: impl Iterator<Item = &'i str>,
    ) -> Result<Enrichment, AppError> {
        Enrichment::of_advisories(self.app, &mut self.tx, ids).await
    }

    /// The transaction, for reads of the answer not named here.
    pub(crate) fn tx(&mut self) -> &mut Box<dyn Tx> {
        &mut self.tx
    }

    /// The policy in force (the default when none was applied) and its record.
    pub(crate) async fn policy_in_force(
        &mut self,
    ) -> Result<(Policy, Option<PolicyRow>), AppError> {
        policy_in(&mut self.tx).await
    }

    /// Every asset.
    pub(crate) async fn assets(&mut self) -> Result<Vec<AssetRow>, AppError> {
        Ok(self.tx.list_assets().await?)
    }

    /// The advisory index (cached per feed generation).
    pub(crate) async fn index(&mut self) -> Result<Arc<Index>, AppError> {
        self.app.index_in(&mut self.tx).await
    }

    /// Every exception of the register.
    pub(crate) async fn exceptions(&mut self) -> Result<Vec<Exception>, AppError> {
        Ok(self
            .tx
            .list_exceptions()
            .await?
            .iter()
            .map(core_of)
            .collect())
    }

    /// Open findings of every asset.
    pub(crate) async fn open_findings(&mut self) -> Result<Vec<FindingOut>, AppError> {
        self.findings(None, false).await
    }

    /// The open findings of the advisories that are `cve` or name it,
    /// enriched (read through the advisory index, not the whole fleet's).
    pub(crate) async fn open_findings_naming(
        &mut self,
        cve: &str,
    ) -> Result<Vec<FindingOut>, AppError> {
        let app = self.app;
        let tx = &mut self.tx;
        let ids = tx.advisory_ids_naming(cve).await?;
        let rows = tx.open_findings_of_advisories(&ids).await?;
        let e = Enrichment::read(app, tx, &rows).await?;
        Ok(rows.into_iter().map(|r| e.finding_out(r)).collect())
    }

    /// Findings (of one asset, resolved too if asked), enriched with KEV and EPSS.
    pub(crate) async fn findings(
        &mut self,
        asset: Option<&str>,
        include_resolved: bool,
    ) -> Result<Vec<FindingOut>, AppError> {
        let app = self.app;
        let tx = &mut self.tx;
        let asset_id = match asset {
            None => None,
            Some(n) => Some(
                tx.asset_by_name(&n.to_ascii_lowercase())
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("no asset named {n:?}")))?
                    .id,
            ),
        };
        let rows = tx.list_findings(asset_id, include_resolved).await?;
        let e = Enrichment::read(app, tx, &rows).await?;
        Ok(rows.into_iter().map(|r| e.finding_out(r)).collect())
    }

    /// Every finding (open and resolved) of the named assets (stored,
    /// lower-case names; unknown names are left out), enriched — a read of
    /// those assets' rows only, not of the fleet's.
    pub(crate) async fn findings_of_assets(
        &mut self,
        names: &[String],
    ) -> Result<Vec<FindingOut>, AppError> {
        let app = self.app;
        let tx = &mut self.tx;
        let ids: Vec<i64> = tx
            .assets_by_names(names)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let rows = tx.findings_of_assets(&ids).await?;
        let e = Enrichment::read(app, tx, &rows).await?;
        Ok(rows.into_iter().map(|r| e.finding_out(r)).collect())
    }

    /// Ranks `findings` under `policy` (see [`ranking::rank`]).
    pub(crate) async fn rank(
        &mut self,
        policy: &Policy,
        findings: Vec<FindingOut>,
    ) -> Result<Vec<Ranked>, AppError> {
        // Only the findings' assets (a triage of one CVE names a few
        // thousand of a fleet of 50,000); every asset when they are many.
        let mut names: Vec<String> = findings.iter().map(|f| f.asset.clone()).collect();
        names.sort();
        names.dedup();
        let rows = if names.len() <= FEW_ASSETS {
            self.tx.assets_by_names(&names).await?
        } else {
            self.assets().await?
        };
        let assets: HashMap<String, AssetRow> =
            rows.into_iter().map(|a| (a.name.clone(), a)).collect();
        let index = self.index().await?;
        Ok(ranking::rank(
            policy,
            &assets,
            &index,
            findings,
            self.app.now(),
        ))
    }

    /// Every finding, open and resolved, of the assets in `assets` (their
    /// positions by name: `positions`) that `policy` does not exclude, as the
    /// reports read them — ranked from the stored rows (see
    /// [`ranking::rank_rows`]) without building wire lines.
    pub(crate) async fn finding_records(
        &mut self,
        policy: &Policy,
        assets: &[AssetRow],
        positions: &HashMap<String, usize>,
    ) -> Result<Vec<patchbay_core::report::FindingRecord>, AppError> {
        let rows = self.tx.list_findings(None, true).await?;
        let e = Enrichment::read(self.app, &mut self.tx, &rows).await?;
        let by_name: HashMap<String, AssetRow> =
            assets.iter().map(|a| (a.name.clone(), a.clone())).collect();
        let second = |t: jiff::Timestamp| t.round(jiff::Unit::Second).unwrap_or(t);
        let mut out = Vec::with_capacity(rows.len());
        ranking::rank_rows(
            policy,
            &by_name,
            &rows,
            |id| e.advisory(id),
            self.app.now(),
            |_, _| true,
            |_, r, rank, _, adv| {
                let Some(&asset) = positions.get(&r.asset_name) else {
                    return;
                };
                if rank.excluded {
                    return;
                }
                out.push(patchbay_core::report::FindingRecord {
                    asset,
                    advisory: r.finding.advisory_id.clone(),
                    cves: adv.cves.to_vec(),
                    package: r.finding.package.clone(),
                    source_package: r.finding.source_package.clone(),
                    tier: rank.tier,
                    first_seen: second(r.first_seen),
                    resolved_at: r.resolved_at.map(second),
                    due: rank.due,
                    fixable: r.finding.fixed_version.is_some(),
                });
            },
        );
        Ok(out)
    }

    /// The worklist: the `limit` first open findings in worklist order that
    /// the policy does not exclude, no exception covers and `wanted` keeps —
    /// ranked, marked and in order, as [`Snapshot::ranked_open`] would give
    /// them after filtering, but without building every finding's wire line
    /// (issue 14, item 6: at 2,000,000 open findings that took ~3.5 KB each).
    ///
    /// Each stored finding is ranked from borrowed data (per-asset facts and
    /// groups, per-advisory CVEs, KEV and EPSS computed once); only the
    /// `limit` selected ones are then turned into wire lines and ranked again
    /// by [`ranking::rank`], the one ranking every other answer uses — so a
    /// line cannot differ from what the full ranking says of it (checked in
    /// debug builds; the in-process test compares the two).
    pub(crate) async fn top_open(
        &mut self,
        policy: &Policy,
        wanted: &ranking::Wanted<'_>,
        limit: usize,
    ) -> Result<Vec<Ranked>, AppError> {
        use patchbay_core::exception::{FindingFacts, excepting};
        use patchbay_core::rank::worklist_order;
        // One asset's lines: read only its findings (found by name; a name
        // the store does not know as spelt falls back to reading every
        // finding and filtering, as `wanted` compares names in any case).
        let one = match wanted.asset {
            Some(name) => self.tx.asset_by_name(&name.to_ascii_lowercase()).await?,
            None => None,
        };
        let rows = self
            .tx
            .list_findings(one.as_ref().map(|a| a.id), false)
            .await?;
        let e = Enrichment::read(self.app, &mut self.tx, &rows).await?;
        let assets: HashMap<String, AssetRow> = match one {
            // Only its row is needed (not the whole fleet's).
            Some(a) => HashMap::from([(a.name.clone(), a)]),
            None => self
                .assets()
                .await?
                .into_iter()
                .map(|a| (a.name.clone(), a))
                .collect(),
        };
        let exceptions = self.exceptions().await?;
        let now = self.app.now();
        let mut lines: Vec<(patchbay_core::rank::Rank, String, usize)> = Vec::new();
        ranking::rank_rows(
            policy,
            &assets,
            &rows,
            |id| e.advisory(id),
            now,
            |a, groups| wanted.asset(&a.name, &a.attrs.owner, groups),
            |i, r, rank, groups, adv| {
                if rank.excluded || !wanted.line(&rank) {
                    return;
                }
                let facts = FindingFacts {
                    asset: &r.asset_name,
                    groups,
                    advisory: &r.finding.advisory_id,
                    cves: adv.cves,
                    package: &r.finding.package,
                    source_package: &r.finding.source_package,
                };
                if excepting(&exceptions, &facts, now).is_some() {
                    return;
                }
                let id = patchbay_core::assess::finding_name(
                    &r.asset_name,
                    &r.finding.advisory_id,
                    &r.finding.package,
                    &r.finding.arch,
                );
                lines.push((rank, id, i));
            },
        );
        let order = |a: &(patchbay_core::rank::Rank, String, usize),
                     b: &(patchbay_core::rank::Rank, String, usize)| {
            worklist_order(&a.0, &a.1, &b.0, &b.1)
        };
        // Select the top `limit` in linear time, then sort only those.
        if limit == 0 {
            lines.clear();
        } else if lines.len() > limit {
            lines.select_nth_unstable_by(limit - 1, order);
            lines.truncate(limit);
        }
        lines.sort_by(order);
        let mut rows: Vec<Option<patchbay_store::FindingRow>> =
            rows.into_iter().map(Some).collect();
        let chosen: Vec<FindingOut> = lines
            .iter()
            .filter_map(|(_, _, i)| rows[*i].take())
            .map(|r| e.finding_out(r))
            .collect();
        let mut ranked = ranking::rank(policy, &assets, &e.index, chosen, now);
        ranking::mark(&mut ranked, &exceptions, now);
        debug_assert!(
            ranked
                .iter()
                .zip(&lines)
                .all(|(r, l)| r.rank() == l.0 && r.item.exception.is_none()),
            "the worklist's selection ranked a line differently from the full ranking"
        );
        Ok(ranked)
    }

    /// Open findings ranked under `policy`, each marked with the exception
    /// that covers it now, if any.
    pub(crate) async fn ranked_open(&mut self, policy: &Policy) -> Result<Vec<Ranked>, AppError> {
        let findings = self.open_findings().await?;
        let mut ranked = self.rank(policy, findings).await?;
        let exceptions = self.exceptions().await?;
        ranking::mark(&mut ranked, &exceptions, self.app.now());
        Ok(ranked)
    }
}

#[cfg(test)]
mod tests {
    use crate::{App, AppConfig, Caller, ManualClock, RequestCtx};
    use patchbay_core::auth::Role;
    use patchbay_store::testing::CountingStore;
    use std::sync::Arc;

    /// Each consistent answer is computed from exactly one read transaction.
    #[tokio::test]
    async fn the_worklist_reads_one_snapshot() {
        let url = patchbay_store::testing::fresh_sqlite_url();
        let store = Arc::new(CountingStore::new(
            patchbay_store::open(&url).await.unwrap(),
        ));
        let t0 = "2026-12-04T00:00:00Z".parse().unwrap();
        let app = App::new(
            store.clone(),
            Arc::new(ManualClock::new(t0)),
            AppConfig::default(),
        );
        let who = Caller {
            principal: crate::auth::Principal::Token {
                id: 1,
                name: "ops".into(),
            },
            role: Role::Operator,
            scopes: patchbay_core::auth::Scopes::UNRESTRICTED,
        };
        let ctx = RequestCtx::default();
        let reads = |what: &str, n: u64| {
            let got = store.take_reads();
            assert_eq!(got, n, "{what}: {got} read transactions");
        };
        store.take_reads(); // App::new and setup
        app.worklist(&who, &Default::default(), &ctx).await.unwrap();
        reads("worklist", 1);
        app.triage(&who, "CVE-2024-0001", &ctx).await.unwrap();
        reads("triage", 1);
        app.patches(&who, &ctx).await.unwrap();
        reads("patches", 1);
        app.policy_preview(&who, "version = 1\n", &ctx)
            .await
            .unwrap();
        reads("policy preview", 1);
        app.plan_preview(&who, &Default::default(), &ctx)
            .await
            .unwrap();
        reads("plan preview", 1);
        app.history(&who, &ctx).await.unwrap();
        reads("report history", 1);
        app.exceptions(&who, true, &ctx).await.unwrap();
        reads("exceptions", 1);
        app.review_exceptions(&who, &ctx).await.unwrap();
        reads("exception review", 1);
    }
}
