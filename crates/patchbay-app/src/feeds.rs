//! Storing imported feeds: OSV advisories, CISA KEV, FIRST EPSS, and CVSS
//! scores per CVE with their source (NVD and CVE JSON 5 records, ADR 0013).
//!
//! Reading files is the caller's business (`patchbay feeds import` uses
//! `patchbay_feeds`); this module stores parsed records idempotently, records the
//! import (source, version/date, counts) and audits it. Re-importing the same file
//! leaves the database as it was.

use crate::assess::{StoredAffected, StoredRange};
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::auth::Action;
use patchbay_feeds::epss::EpssScore;
use patchbay_feeds::kev::Catalog;
use patchbay_feeds::osv::{Advisory, Event, RangeKind};
use patchbay_feeds::scores::CveScores;
use patchbay_proto::api::FeedOut;
use patchbay_store::{AdvisoryRow, CvssScoreRow, EpssRow, FeedRow, KevRow};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Feed kinds.
pub const KINDS: [&str; 5] = ["osv", "kev", "epss", "cvss", "csaf"];

/// Converts a parsed OSV record to its stored form. A withdrawn advisory is
/// stored without affected packages, so it stops matching.
pub fn advisory_row(a: &Advisory) -> AdvisoryRow {
    let affected: Vec<StoredAffected> = if a.is_withdrawn() {
        vec![]
    } else {
        a.affected
            .iter()
            .map(|x| StoredAffected {
                ecosystem: x.ecosystem.clone(),
                package: x.package.clone(),
                ranges: x
                    .ranges
                    .iter()
                    .map(|r| StoredRange {
                        kind: match &r.kind {
                            RangeKind::Ecosystem => "ECOSYSTEM".into(),
                            RangeKind::Semver => "SEMVER".into(),
                            RangeKind::Git => "GIT".into(),
                            RangeKind::Other(o) => o.clone(),
                        },
                        events: r
                            .events
                            .iter()
                            .map(|e| {
                                let (k, v) = match e {
                                    Event::Introduced(v) => ("introduced", v),
                                    Event::Fixed(v) => ("fixed", v),
                                    Event::LastAffected(v) => ("last_affected", v),
                                    Event::Limit(v) => ("limit", v),
                                };
                                HashMap::from([(k.to_string(), v.clone())])
                            })
                            .collect(),
                    })
                    .collect(),
                versions: x.versions.clone(),
            })
            .collect()
    };
    let ecosystems: BTreeSet<&str> = a.affected.iter().map(|x| x.ecosystem.as_str()).collect();
    let distro = a.distro_severity();
    AdvisoryRow {
        severity: distro.as_ref().map(|d| d.level.clone()),
        severity_source: distro.map(|d| d.source),
        id: a.id.clone(),
        summary: a.summary.clone().unwrap_or_default(),
        cves: a.cves.clone(),
        cvss_score: a.cvss.as_ref().map(|c| c.base_score),
        cvss_vector: a.cvss.as_ref().map(|c| c.vector.clone()),
        published: a.published,
        modified: a.modified,
        affected: serde_json::to_value(&affected).unwrap_or_default(),
        ecosystems: ecosystems.into_iter().collect::<Vec<_>>().join(" "),
    }
}

/// Adds a parsed OSV record to `idx` exactly as storing it ([`advisory_row`])
/// and indexing the stored row ([`crate::assess::build_index`]) would, without
/// the JSON in between: the offline scan compiles its index this way, record by
/// record as the reader yields them (ADR 0009). GIT and unknown range types are
/// left out, as the stored form's reader leaves them out.
pub fn index_advisory(idx: &mut patchbay_core::assess::Index, a: &Advisory) {
    use patchbay_version::osv as v;
    let affected = if a.is_withdrawn() {
        vec![]
    } else {
        a.affected
            .iter()
            .map(|x| {
                let ranges = x
                    .ranges
                    .iter()
                    .filter_map(|r| {
                        let kind = match &r.kind {
                            RangeKind::Ecosystem => v::RangeKind::Ecosystem,
                            RangeKind::Semver => v::RangeKind::Semver,
                            _ => return None,
                        };
                        let events = r
                            .events
                            .iter()
                            .map(|e| match e {
                                Event::Introduced(s) => v::Event::Introduced(s.clone()),
                                Event::Fixed(s) => v::Event::Fixed(s.clone()),
                                Event::LastAffected(s) => v::Event::LastAffected(s.clone()),
                                Event::Limit(s) => v::Event::Limit(s.clone()),
                            })
                            .collect();
                        Some(v::Range { kind, events })
                    })
                    .collect();
                (
                    x.ecosystem.clone(),
                    x.package.clone(),
                    ranges,
                    x.versions.clone(),
                )
            })
            .collect()
    };
    idx.add(
        patchbay_core::assess::AdvisoryInfo {
            id: a.id.clone(),
            cves: a.cves.clone(),
            cvss: a.cvss.as_ref().map(|c| c.base_score),
            cvss_vector: a.cvss.as_ref().map(|c| c.vector.clone()),
            summary: a.summary.clone().unwrap_or_default(),
            published: a.published,
            distro_severity: a.distro_severity().map(|d| (d.source, d.level)),
        },
        affected,
    );
}

/// Merges rows with the same id: feeds may split one advisory over several
/// records (AlmaLinux publishes one per module stream), and the store keeps one
/// row per id.
pub fn merge_rows(rows: impl IntoIterator<Item = AdvisoryRow>) -> Vec<AdvisoryRow> {
    let mut out: Vec<AdvisoryRow> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for r in rows {
        match at.get(&r.id) {
            None => {
                at.insert(r.id.clone(), out.len());
                out.push(r);
            }
            Some(&i) => {
                let m = &mut out[i];
                if let (Some(a), Some(b)) = (m.affected.as_array_mut(), r.affected.as_array()) {
                    for x in b {
                        if !a.contains(x) {
                            a.push(x.clone());
                        }
                    }
                }
                for c in r.cves {
                    if !m.cves.contains(&c) {
                        m.cves.push(c);
                    }
                }
                let mut ecos: BTreeSet<String> = m
                    .ecosystems
                    .split_whitespace()
                    .chain(r.ecosystems.split_whitespace())
                    .map(str::to_string)
                    .collect();
                m.ecosystems = std::mem::take(&mut ecos)
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(" ");
                m.modified = m.modified.max(r.modified);
                if m.cvss_score.is_none() {
                    m.cvss_score = r.cvss_score;
                    m.cvss_vector = r.cvss_vector;
                }
                if m.severity.is_none() {
                    m.severity = r.severity;
                    m.severity_source = r.severity_source;
                }
            }
        }
    }
    out
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportOutcome {
    /// Records stored.
    pub records: u64,
    /// Malformed records skipped (reported by the reader).
    pub skipped: u64,
    /// CVEs that entered KEV with this import (KEV only).
    pub kev_added: Vec<String>,
    /// (ecosystem, package) pairs whose advisories this import changed (their
    /// (ecosystem, package, advisory) entries are queued for
    /// [`App::assess_pending`]; OSV only).
    pub pairs_changed: u64,
}

impl App {
    async fn record_import(
        &self,
        tx: &mut crate::change::Change<'_>,
        kind: &str,
        source: &str,
        version: &str,
        outcome: &ImportOutcome,
    ) -> Result<(), AppError> {
        let by = tx.actor().to_string();
        tx.record_feed(&FeedRow {
            id: 0,
            kind: kind.into(),
            source: source.into(),
            version: version.into(),
            records: outcome.records as i64,
            skipped: outcome.skipped as i64,
            imported_at: self.now(),
            imported_by: by,
        })
        .await?;
        tx.audit(
            "feed.import",
            &format!("feed:{kind}:{source}"),
            json!({"version": version, "records": outcome.records, "skipped": outcome.skipped,
                   "kev_added": outcome.kev_added.len()}),
        )
        .await
    }

    /// Stores OSV advisories read from `source` (one transaction) and queues the
    /// (ecosystem, package) pairs whose affected entries changed for delta
    /// re-assessment ([`App::assess_pending`]).
    pub async fn import_advisories(
        &self,
        source: &str,
        advisories: &[Advisory],
        skipped: u64,
        caller: &Caller,
    ) -> Result<ImportOutcome, AppError> {
        let rows = merge_rows(advisories.iter().map(advisory_row));
        let version = advisories
            .iter()
            .filter_map(|a| a.modified)
            .max()
            .map(fmt_ts)
            .unwrap_or_default();
        let mut tx = self
            .change(caller, Action::ImportFeeds, &RequestCtx::default())
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let before = tx.advisories_by_ids(&ids).await?;
        let entries: Vec<patchbay_store::Reassess> = crate::assess::changed_entries(&before, &rows)
            .into_iter()
            .collect();
        let pairs: BTreeSet<(&str, &str)> = entries
            .iter()
            .map(|(e, p, _)| (e.as_str(), p.as_str()))
            .collect();
        let outcome = ImportOutcome {
            records: rows.len() as u64,
            skipped,
            kev_added: vec![],
            pairs_changed: pairs.len() as u64,
        };
        tx.upsert_advisories(&rows).await?;
        tx.queue_reassessment(&entries).await?;
        self.record_import(&mut tx, "osv", source, &version, &outcome)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Stores a KEV catalog; reports the CVEs it added to KEV.
    pub async fn import_kev(
        &self,
        source: &str,
        catalog: &Catalog,
        skipped: u64,
        caller: &Caller,
    ) -> Result<ImportOutcome, AppError> {
        let rows: Vec<KevRow> = catalog
            .entries
            .iter()
            .map(|e| KevRow {
                cve: e.cve.clone(),
                vendor: e.vendor.clone(),
                product: e.product.clone(),
                name: e.name.clone(),
                date_added: e.date_added.to_string(),
                due_date: e.due_date.to_string(),
                ransomware: e.known_ransomware,
                catalog_version: catalog.version.clone(),
            })
            .collect();
        let mut tx = self
            .change(caller, Action::ImportFeeds, &RequestCtx::default())
            .await?;
        let kev_added = tx.upsert_kev(&rows).await?;
        let outcome = ImportOutcome {
            records: rows.len() as u64,
            skipped,
            kev_added,
            pairs_changed: 0,
        };
        self.record_import(&mut tx, "kev", source, &catalog.version, &outcome)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Stores EPSS scores.
    pub async fn import_epss(
        &self,
        source: &str,
        score_date: &str,
        scores: &[EpssScore],
        skipped: u64,
        caller: &Caller,
    ) -> Result<ImportOutcome, AppError> {
        let rows: Vec<EpssRow> = scores
            .iter()
            .map(|s| EpssRow {
                cve: s.cve.clone(),
                epss: s.epss,
                percentile: s.percentile,
                score_date: score_date.into(),
            })
            .collect();
        let mut tx = self
            .change(caller, Action::ImportFeeds, &RequestCtx::default())
            .await?;
        tx.upsert_epss(&rows).await?;
        let outcome = ImportOutcome {
            records: rows.len() as u64,
            skipped,
            kev_added: vec![],
            pairs_changed: 0,
        };
        self.record_import(&mut tx, "epss", source, score_date, &outcome)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Stores CVSS scores per CVE (NVD / CVE JSON 5 records): every stored
    /// score of the CVEs in `records` is replaced by theirs (a CVE given twice:
    /// the last record wins), in one audited transaction. Nothing is
    /// re-matched: tiers are derived when findings are read, so the next
    /// worklist ranks with the new scores.
    pub async fn import_cvss(
        &self,
        source: &str,
        records: &[CveScores],
        skipped: u64,
        caller: &Caller,
    ) -> Result<ImportOutcome, AppError> {
        let mut last: HashMap<&str, &CveScores> = HashMap::new();
        for r in records {
            last.insert(r.cve.as_str(), r);
        }
        let mut cves: Vec<String> = last.keys().map(|c| (*c).to_owned()).collect();
        cves.sort();
        // One row per (cve, source kind, source, version): the highest score
        // when a record gives several (CVE 5 scenarios).
        let mut rows: BTreeMap<(String, String, String, String), CvssScoreRow> = BTreeMap::new();
        for r in last.values() {
            for s in &r.scores {
                let row = CvssScoreRow {
                    cve: r.cve.clone(),
                    source_kind: s.kind.as_str().to_owned(),
                    source: s.source.clone(),
                    version: s.score.version.as_str().to_owned(),
                    vector: s.score.vector.clone(),
                    base_score: s.score.base_score,
                    modified: r.modified.clone().unwrap_or_default(),
                };
                let key = (
                    row.cve.clone(),
                    row.source_kind.clone(),
                    row.source.clone(),
                    row.version.clone(),
                );
                match rows.get(&key) {
                    Some(old) if old.base_score >= row.base_score => {}
                    _ => {
                        rows.insert(key, row);
                    }
                }
            }
        }
        let rows: Vec<CvssScoreRow> = rows.into_values().collect();
        let version = records
            .iter()
            .filter_map(|r| r.modified.as_deref())
            .max()
            .unwrap_or_default()
            .to_owned();
        let mut tx = self
            .change(caller, Action::ImportFeeds, &RequestCtx::default())
            .await?;
        tx.replace_cvss_scores(&cves, &rows).await?;
        let outcome = ImportOutcome {
            records: cves.len() as u64,
            skipped,
            kev_added: vec![],
            pairs_changed: 0,
        };
        self.record_import(&mut tx, "cvss", source, &version, &outcome)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Lists recorded feed imports.
    pub async fn list_feeds(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<FeedOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_feeds()
            .await?
            .into_iter()
            .map(|f| FeedOut {
                kind: f.kind,
                source: f.source,
                version: f.version,
                records: f.records,
                skipped: f.skipped,
                imported_at: fmt_ts(f.imported_at),
                imported_by: f.imported_by,
            })
            .collect())
    }
}
