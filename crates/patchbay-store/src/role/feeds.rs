//! Advisory feeds, KEV and EPSS (`feeds`, `advisories`, `kev`, `epss`).

use crate::engine::{BATCH_ROWS, Engine, Get, QueryExt, SeparatedExt, SqlTx, opt_ts, to_json};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

/// A recorded feed import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    /// Id.
    pub id: i64,
    /// `osv`, `kev` or `epss`.
    pub kind: String,
    /// The path it was imported from.
    pub source: String,
    /// Feed version or date (KEV catalog version, EPSS score date, newest OSV modification).
    pub version: String,
    /// Records imported.
    pub records: i64,
    /// Malformed records skipped.
    pub skipped: i64,
    /// Last import time.
    pub imported_at: Timestamp,
    /// Who imported it.
    pub imported_by: String,
}

/// The state of one configured feed source (`feed_sync`, migration 0055):
/// the validators of its last good copy, its last attempt and freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSyncRow {
    /// The source's configured name (`[feeds.<name>]`).
    pub name: String,
    /// `osv`, `kev` or `epss`.
    pub kind: String,
    /// Where it is fetched from (URL, path or mirror directory).
    pub origin: String,
    /// The ETag of the last good copy (sent as `If-None-Match`).
    pub etag: Option<String>,
    /// The Last-Modified of the last good copy (sent as `If-Modified-Since`).
    pub last_modified: Option<String>,
    /// SHA-256 (hex) of the last good copy.
    pub sha256: Option<String>,
    /// The first attempt ever (staleness counts from it until a first success).
    pub first_attempt_at: Timestamp,
    /// The last attempt.
    pub last_attempt_at: Timestamp,
    /// `imported`, `unchanged`, `refused` or `failed`.
    pub last_result: String,
    /// Why the last attempt was refused or failed.
    pub last_error: Option<String>,
    /// When the server last held the source's current data (imported, or
    /// confirmed unchanged).
    pub last_good_at: Option<Timestamp>,
    /// When data from it was last imported.
    pub last_changed_at: Option<Timestamp>,
}

/// A stored advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryRow {
    /// Feed id (`DSA-…`, `ALSA-…`).
    pub id: String,
    /// Summary.
    pub summary: String,
    /// CVE ids.
    pub cves: Vec<String>,
    /// CVSS base score.
    pub cvss_score: Option<f64>,
    /// CVSS vector.
    pub cvss_vector: Option<String>,
    /// Publication time.
    pub published: Option<Timestamp>,
    /// Last modification.
    pub modified: Option<Timestamp>,
    /// Affected packages (JSON owned by the service layer).
    pub affected: serde_json::Value,
    /// Ecosystems, space-separated.
    pub ecosystems: String,
    /// The distribution's own severity (`high`, `important`; migration 0065).
    pub severity: Option<String>,
    /// Whose severity it is (`Debian urgency`, `Ubuntu priority`, `Red Hat severity`).
    pub severity_source: Option<String>,
}

/// A CVSS score of a CVE with its source (`cvss_scores`, migration 0065).
#[derive(Debug, Clone, PartialEq)]
pub struct CvssScoreRow {
    /// CVE id.
    pub cve: String,
    /// `nvd`, `cna`, `adp` or `other`.
    pub source_kind: String,
    /// The source's name (`nvd@nist.gov`, the CNA, `CISA-ADP`).
    pub source: String,
    /// CVSS version (`2.0`, `3.0`, `3.1`, `4.0`).
    pub version: String,
    /// The vector.
    pub vector: String,
    /// The base score computed from the vector.
    pub base_score: f64,
    /// The record's last modification, as written.
    pub modified: String,
}

/// A CISA KEV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevRow {
    /// CVE id.
    pub cve: String,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Vulnerability name.
    pub name: String,
    /// Date added (YYYY-MM-DD).
    pub date_added: String,
    /// Remediation due date (YYYY-MM-DD).
    pub due_date: String,
    /// Known ransomware use.
    pub ransomware: bool,
    /// Catalog version it came from.
    pub catalog_version: String,
}

/// An EPSS score.
#[derive(Debug, Clone, PartialEq)]
pub struct EpssRow {
    /// CVE id.
    pub cve: String,
    /// Probability of exploitation in 30 days.
    pub epss: f64,
    /// Percentile.
    pub percentile: f64,
    /// Score date.
    pub score_date: String,
}

/// A queued re-assessment: (ecosystem, package, advisory id).
pub type Reassess = (String, String, String);

/// Advisory feeds, KEV and EPSS.
#[async_trait]
pub trait FeedStore {
    /// Records an import of `source` (insert or update on (kind, source)).
    async fn record_feed(&mut self, row: &FeedRow) -> Result<()>;
    /// All recorded feeds.
    async fn list_feeds(&mut self) -> Result<Vec<FeedRow>>;
    /// A number that changes whenever a feed import is recorded (for caches).
    async fn feeds_generation(&mut self) -> Result<i64>;
    /// A number that changes whenever an OSV import is recorded: the advisory
    /// index depends on it alone (KEV and EPSS imports re-tier, they do not
    /// change what matches).
    async fn advisories_generation(&mut self) -> Result<i64>;
    /// The stored advisories with the given ids (those that exist).
    async fn advisories_by_ids(&mut self, ids: &[String]) -> Result<Vec<AdvisoryRow>>;
    /// The ids of the advisories that are `cve` or name it among their CVEs
    /// (upper case, as stored).
    async fn advisory_ids_naming(&mut self, cve: &str) -> Result<Vec<String>>;
    /// Queues (ecosystem, package, advisory id) entries that an import changed
    /// for re-assessment.
    async fn queue_reassessment(&mut self, entries: &[Reassess]) -> Result<()>;
    /// The queued entries (distinct, sorted) and the highest queue id read
    /// (`None` when the queue is empty).
    async fn pending_reassessment(&mut self) -> Result<(Option<i64>, Vec<Reassess>)>;
    /// Removes queued pairs up to and including `upto` (those read and re-assessed).
    async fn clear_reassessment(&mut self, upto: i64) -> Result<()>;
    /// Inserts or replaces advisories; returns rows written.
    async fn upsert_advisories(&mut self, rows: &[AdvisoryRow]) -> Result<u64>;
    /// All advisories.
    async fn all_advisories(&mut self) -> Result<Vec<AdvisoryRow>>;
    /// Up to `limit` advisories with ids after `after` (`""`: from the first), in
    /// id order: the next page of a walk over all of them that never holds more
    /// than one page (the server's index is built this way, ADR 0009).
    async fn advisories_after(&mut self, after: &str, limit: u32) -> Result<Vec<AdvisoryRow>>;
    /// Inserts or replaces KEV entries; returns the CVEs that were not in KEV before.
    async fn upsert_kev(&mut self, rows: &[KevRow]) -> Result<Vec<String>>;
    /// All KEV entries.
    async fn all_kev(&mut self) -> Result<Vec<KevRow>>;
    /// Inserts or replaces EPSS scores.
    async fn upsert_epss(&mut self, rows: &[EpssRow]) -> Result<u64>;
    /// EPSS scores of the given CVEs.
    async fn epss_for(&mut self, cves: &[String]) -> Result<Vec<EpssRow>>;
    /// Replaces every stored CVSS score of `cves` by `rows` (which must be of
    /// those CVEs); returns rows written.
    async fn replace_cvss_scores(&mut self, cves: &[String], rows: &[CvssScoreRow]) -> Result<u64>;
    /// The CVSS scores of the given CVEs.
    async fn cvss_for(&mut self, cves: &[String]) -> Result<Vec<CvssScoreRow>>;
    /// The sync state of feed source `name`.
    async fn feed_sync(&mut self, name: &str) -> Result<Option<FeedSyncRow>>;
    /// Every feed source's sync state, by name.
    async fn all_feed_sync(&mut self) -> Result<Vec<FeedSyncRow>>;
    /// Stores a feed source's sync state (insert or replace).
    async fn put_feed_sync(&mut self, row: &FeedSyncRow) -> Result<()>;
}

const FEED_SYNC_COLS: &str = "name, kind, origin, etag, last_modified, sha256, first_attempt_at, \
     last_attempt_at, last_result, last_error, last_good_at, last_changed_at";

fn row_to_feed_sync<DB: Engine>(r: &DB::Row) -> Result<FeedSyncRow> {
    Ok(FeedSyncRow {
        name: r.col("name")?,
        kind: r.col("kind")?,
        origin: r.col("origin")?,
        etag: r.col("etag")?,
        last_modified: r.col("last_modified")?,
        sha256: r.col("sha256")?,
        first_attempt_at: from_millis(r.col("first_attempt_at")?)?,
        last_attempt_at: from_millis(r.col("last_attempt_at")?)?,
        last_result: r.col("last_result")?,
        last_error: r.col("last_error")?,
        last_good_at: opt_ts(r.col("last_good_at")?)?,
        last_changed_at: opt_ts(r.col("last_changed_at")?)?,
    })
}

const ADVISORY_COLS: &str = "id, summary, cves, cvss_score, cvss_vector, published, modified, \
     affected, ecosystems, severity, severity_source";

fn row_to_advisory<DB: Engine>(r: &DB::Row) -> Result<AdvisoryRow> {
    let cves: String = r.col("cves")?;
    let affected: String = r.col("affected")?;
    let id: String = r.col("id")?;
    Ok(AdvisoryRow {
        cves: serde_json::from_str(&cves)
            .map_err(|e| StoreError::Other(format!("advisory {id}: bad cves: {e}")))?,
        affected: serde_json::from_str(&affected)
            .map_err(|e| StoreError::Other(format!("advisory {id}: bad affected: {e}")))?,
        id,
        summary: r.col("summary")?,
        cvss_score: r.col("cvss_score")?,
        cvss_vector: r.col("cvss_vector")?,
        published: opt_ts(r.col("published")?)?,
        modified: opt_ts(r.col("modified")?)?,
        ecosystems: r.col("ecosystems")?,
        severity: r.col("severity")?,
        severity_source: r.col("severity_source")?,
    })
}

#[async_trait]
impl<DB: Engine> FeedStore for SqlTx<DB> {
    async fn record_feed(&mut self, f: &FeedRow) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO feeds (kind, source, version, records, skipped, imported_at, imported_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, source) DO UPDATE SET \
             version = excluded.version, records = excluded.records, skipped = excluded.skipped, \
             imported_at = excluded.imported_at, imported_by = excluded.imported_by",
        )
        .arg(&f.kind)
        .arg(&f.source)
        .arg(&f.version)
        .arg(f.records)
        .arg(f.skipped)
        .arg(to_millis(f.imported_at))
        .arg(&f.imported_by)
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn list_feeds(&mut self) -> Result<Vec<FeedRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, kind, source, version, records, skipped, imported_at, imported_by FROM feeds \
             ORDER BY kind, source",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedRow {
                    id: r.col("id")?,
                    kind: r.col("kind")?,
                    source: r.col("source")?,
                    version: r.col("version")?,
                    records: r.col("records")?,
                    skipped: r.col("skipped")?,
                    imported_at: from_millis(r.col("imported_at")?)?,
                    imported_by: r.col("imported_by")?,
                })
            })
            .collect()
    }

    async fn feeds_generation(&mut self) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "SELECT COALESCE(MAX(imported_at), 0) AS g, COUNT(*) AS n FROM feeds",
        )
        .one(self.conn())
        .await?;
        let g: i64 = r.col("g")?;
        let n: i64 = r.col("n")?;
        Ok(g.wrapping_mul(31).wrapping_add(n))
    }

    async fn upsert_advisories(&mut self, rows: &[AdvisoryRow]) -> Result<u64> {
        let mut written = 0;
        // 11 parameters per row.
        for chunk in rows.chunks(200) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO advisories (id, summary, cves, cvss_score, cvss_vector, published, modified, \
                 affected, ecosystems, severity, severity_source) ",
            );
            qb.push_values(chunk, |mut b, a| {
                b.push_arg(a.id.clone())
                    .push_arg(a.summary.clone())
                    .push_arg(to_json(&a.cves))
                    .push_arg(a.cvss_score)
                    .push_arg(a.cvss_vector.clone())
                    .push_arg(a.published.map(to_millis))
                    .push_arg(a.modified.map(to_millis))
                    .push_arg(a.affected.to_string())
                    .push_arg(a.ecosystems.clone())
                    .push_arg(a.severity.clone())
                    .push_arg(a.severity_source.clone());
            });
            qb.push(
                " ON CONFLICT (id) DO UPDATE SET summary = excluded.summary, cves = excluded.cves, \
                 cvss_score = excluded.cvss_score, cvss_vector = excluded.cvss_vector, \
                 published = excluded.published, modified = excluded.modified, \
                 affected = excluded.affected, ecosystems = excluded.ecosystems, \
                 severity = excluded.severity, severity_source = excluded.severity_source",
            );
            written += qb.build().exec(self.conn()).await?.rows_affected();
        }
        Ok(written)
    }

    async fn all_advisories(&mut self) -> Result<Vec<AdvisoryRow>> {
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "SELECT {ADVISORY_COLS} FROM advisories ORDER BY id"
        )))
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_advisory::<DB>).collect()
    }

    async fn advisories_after(&mut self, after: &str, limit: u32) -> Result<Vec<AdvisoryRow>> {
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "SELECT {ADVISORY_COLS} FROM advisories WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .arg(after)
        .arg(i64::from(limit))
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_advisory::<DB>).collect()
    }

    async fn advisories_generation(&mut self) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "SELECT COALESCE(MAX(imported_at), 0) AS g, COUNT(*) AS n FROM feeds WHERE kind IN ('osv', 'csaf')",
        )
        .one(self.conn())
        .await?;
        let g: i64 = r.col("g")?;
        let n: i64 = r.col("n")?;
        Ok(g.wrapping_mul(31).wrapping_add(n))
    }

    async fn advisory_ids_naming(&mut self, cve: &str) -> Result<Vec<String>> {
        // `cves` is a JSON array of strings: the quoted id is a whole element.
        let rows = sqlx::query::<DB>(
            "SELECT id FROM advisories WHERE id = $1 OR cves LIKE $2 ORDER BY id",
        )
        .arg(cve.to_string())
        .arg(format!("%\"{}\"%", cve.replace(['%', '_', '"', '\\'], "")))
        .all(self.conn())
        .await?;
        rows.iter().map(|r| r.col("id")).collect()
    }

    async fn advisories_by_ids(&mut self, ids: &[String]) -> Result<Vec<AdvisoryRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {ADVISORY_COLS} FROM advisories WHERE id IN ("
            ));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(id.clone());
            }
            qb.push(")");
            for r in &qb.build().all(self.conn()).await? {
                out.push(row_to_advisory::<DB>(r)?);
            }
        }
        Ok(out)
    }

    async fn queue_reassessment(&mut self, entries: &[Reassess]) -> Result<()> {
        for chunk in entries.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO assess_pending (ecosystem, package, advisory) ",
            );
            qb.push_values(chunk, |mut b, (eco, pkg, adv)| {
                b.push_arg(eco.clone())
                    .push_arg(pkg.clone())
                    .push_arg(adv.clone());
            });
            qb.build().exec(self.conn()).await?;
        }
        Ok(())
    }

    async fn pending_reassessment(&mut self) -> Result<(Option<i64>, Vec<Reassess>)> {
        let rows = sqlx::query::<DB>("SELECT id, ecosystem, package, advisory FROM assess_pending")
            .all(self.conn())
            .await?;
        let mut upto = None;
        let mut pairs = std::collections::BTreeSet::new();
        for r in &rows {
            let id: i64 = r.col("id")?;
            let eco: String = r.col("ecosystem")?;
            let pkg: String = r.col("package")?;
            let adv: String = r.col("advisory")?;
            upto = upto.max(Some(id));
            pairs.insert((eco, pkg, adv));
        }
        Ok((upto, pairs.into_iter().collect()))
    }

    async fn clear_reassessment(&mut self, upto: i64) -> Result<()> {
        sqlx::query::<DB>("DELETE FROM assess_pending WHERE id <= $1")
            .arg(upto)
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn upsert_kev(&mut self, rows: &[KevRow]) -> Result<Vec<String>> {
        let mut existing = std::collections::HashSet::new();
        for chunk in rows.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("SELECT cve FROM kev WHERE cve IN (");
            let mut sep = qb.separated(", ");
            for k in chunk {
                sep.push_arg(k.cve.clone());
            }
            qb.push(")");
            for r in qb.build().all(self.conn()).await? {
                let cve: String = r.col("cve")?;
                existing.insert(cve);
            }
        }
        for chunk in rows.chunks(400) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO kev (cve, vendor, product, name, date_added, due_date, ransomware, catalog_version) ",
            );
            qb.push_values(chunk, |mut b, k| {
                b.push_arg(k.cve.clone())
                    .push_arg(k.vendor.clone())
                    .push_arg(k.product.clone())
                    .push_arg(k.name.clone())
                    .push_arg(k.date_added.clone())
                    .push_arg(k.due_date.clone())
                    .push_arg(k.ransomware)
                    .push_arg(k.catalog_version.clone());
            });
            qb.push(
                " ON CONFLICT (cve) DO UPDATE SET vendor = excluded.vendor, product = excluded.product, \
                 name = excluded.name, date_added = excluded.date_added, due_date = excluded.due_date, \
                 ransomware = excluded.ransomware, catalog_version = excluded.catalog_version",
            );
            qb.build().exec(self.conn()).await?;
        }
        let mut added: Vec<String> = rows
            .iter()
            .filter(|k| !existing.contains(&k.cve))
            .map(|k| k.cve.clone())
            .collect();
        added.sort();
        added.dedup();
        Ok(added)
    }

    async fn all_kev(&mut self) -> Result<Vec<KevRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT cve, vendor, product, name, date_added, due_date, ransomware, catalog_version FROM kev \
             ORDER BY cve",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KevRow {
                    cve: r.col("cve")?,
                    vendor: r.col("vendor")?,
                    product: r.col("product")?,
                    name: r.col("name")?,
                    date_added: r.col("date_added")?,
                    due_date: r.col("due_date")?,
                    ransomware: r.col("ransomware")?,
                    catalog_version: r.col("catalog_version")?,
                })
            })
            .collect()
    }

    async fn upsert_epss(&mut self, rows: &[EpssRow]) -> Result<u64> {
        let mut written = 0;
        for chunk in rows.chunks(1000) {
            let mut qb =
                QueryBuilder::<DB>::new("INSERT INTO epss (cve, epss, percentile, score_date) ");
            qb.push_values(chunk, |mut b, e| {
                b.push_arg(e.cve.clone())
                    .push_arg(e.epss)
                    .push_arg(e.percentile)
                    .push_arg(e.score_date.clone());
            });
            qb.push(
                " ON CONFLICT (cve) DO UPDATE SET epss = excluded.epss, percentile = excluded.percentile, \
                 score_date = excluded.score_date",
            );
            written += qb.build().exec(self.conn()).await?.rows_affected();
        }
        Ok(written)
    }

    async fn epss_for(&mut self, cves: &[String]) -> Result<Vec<EpssRow>> {
        let mut out = Vec::new();
        for chunk in cves.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT cve, epss, percentile, score_date FROM epss WHERE cve IN (",
            );
            let mut sep = qb.separated(", ");
            for c in chunk {
                sep.push_arg(c.clone());
            }
            qb.push(")");
            for r in qb.build().all(self.conn()).await? {
                out.push(EpssRow {
                    cve: r.col("cve")?,
                    epss: r.col("epss")?,
                    percentile: r.col("percentile")?,
                    score_date: r.col("score_date")?,
                });
            }
        }
        Ok(out)
    }
    async fn replace_cvss_scores(&mut self, cves: &[String], rows: &[CvssScoreRow]) -> Result<u64> {
        for chunk in cves.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM cvss_scores WHERE cve IN (");
            let mut sep = qb.separated(", ");
            for c in chunk {
                sep.push_arg(c.clone());
            }
            qb.push(")");
            qb.build().exec(self.conn()).await?;
        }
        let mut written = 0;
        // 7 parameters per row.
        for chunk in rows.chunks(500) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO cvss_scores (cve, source_kind, source, version, vector, base_score, modified) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_arg(r.cve.clone())
                    .push_arg(r.source_kind.clone())
                    .push_arg(r.source.clone())
                    .push_arg(r.version.clone())
                    .push_arg(r.vector.clone())
                    .push_arg(r.base_score)
                    .push_arg(r.modified.clone());
            });
            qb.push(
                " ON CONFLICT (cve, source_kind, source, version) DO UPDATE SET \
                 vector = excluded.vector, base_score = excluded.base_score, modified = excluded.modified",
            );
            written += qb.build().exec(self.conn()).await?.rows_affected();
        }
        Ok(written)
    }

    async fn cvss_for(&mut self, cves: &[String]) -> Result<Vec<CvssScoreRow>> {
        let mut out = Vec::new();
        for chunk in cves.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT cve, source_kind, source, version, vector, base_score, modified \
                 FROM cvss_scores WHERE cve IN (",
            );
            let mut sep = qb.separated(", ");
            for c in chunk {
                sep.push_arg(c.clone());
            }
            qb.push(") ORDER BY cve, source_kind, source, version");
            for r in qb.build().all(self.conn()).await? {
                out.push(CvssScoreRow {
                    cve: r.col("cve")?,
                    source_kind: r.col("source_kind")?,
                    source: r.col("source")?,
                    version: r.col("version")?,
                    vector: r.col("vector")?,
                    base_score: r.col("base_score")?,
                    modified: r.col("modified")?,
                });
            }
        }
        Ok(out)
    }

    async fn feed_sync(&mut self, name: &str) -> Result<Option<FeedSyncRow>> {
        let r = sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_SYNC_COLS} FROM feed_sync WHERE name = $1"
        )))
        .arg(name)
        .opt(self.conn())
        .await?;
        r.as_ref().map(row_to_feed_sync::<DB>).transpose()
    }

    async fn all_feed_sync(&mut self) -> Result<Vec<FeedSyncRow>> {
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_SYNC_COLS} FROM feed_sync ORDER BY name"
        )))
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_feed_sync::<DB>).collect()
    }

    async fn put_feed_sync(&mut self, f: &FeedSyncRow) -> Result<()> {
        sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO feed_sync ({FEED_SYNC_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, origin = excluded.origin, \
             etag = excluded.etag, last_modified = excluded.last_modified, sha256 = excluded.sha256, \
             first_attempt_at = excluded.first_attempt_at, last_attempt_at = excluded.last_attempt_at, \
             last_result = excluded.last_result, last_error = excluded.last_error, \
             last_good_at = excluded.last_good_at, last_changed_at = excluded.last_changed_at"
        )))
        .arg(&f.name)
        .arg(&f.kind)
        .arg(&f.origin)
        .arg(&f.etag)
        .arg(&f.last_modified)
        .arg(&f.sha256)
        .arg(to_millis(f.first_attempt_at))
        .arg(to_millis(f.last_attempt_at))
        .arg(&f.last_result)
        .arg(&f.last_error)
        .arg(f.last_good_at.map(to_millis))
        .arg(f.last_changed_at.map(to_millis))
        .exec(self.conn())
        .await?;
        Ok(())
    }
}
