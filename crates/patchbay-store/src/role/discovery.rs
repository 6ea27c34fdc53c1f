//! Discovery (`discovery_imports`, `discovery_observations`,
//! `discovery_sightings`, `discovery_dismissals`, `asset_identifiers`,
//! migration 0070): what scans, leases, cloud inventories and neighbour
//! tables saw, and the decisions about it.
//!
//! An import *replaces* its source's observations (the current view is
//! each source's latest import: a re-scan is idempotent); the import rows
//! stay as history. Observation bodies are JSON, decoded by the app.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// An import to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDiscoveryImport {
    /// The source's name (`nmap:lan`, `neighbour:web-01`).
    pub source: String,
    /// Its kind (`nmap`, `dhcpd`, …).
    pub kind: String,
    /// Taken from outside the network (its ports are internet-facing).
    pub external: bool,
    /// When.
    pub imported_at: Timestamp,
    /// By whom.
    pub imported_by: String,
}

/// A recorded import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryImportRow {
    /// Id.
    pub id: i64,
    /// The import.
    pub import: NewDiscoveryImport,
    /// How many observations it carried.
    pub observations: i64,
}

/// A stored observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRow {
    /// Id.
    pub id: i64,
    /// Its import.
    pub import_id: i64,
    /// The source's name.
    pub source: String,
    /// The source's kind.
    pub kind: String,
    /// When it was seen.
    pub seen_at: Timestamp,
    /// JSON of the observation.
    pub body: String,
}

/// A dismissed shadow candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DismissalRow {
    /// The candidate's key.
    pub key: String,
    /// Why.
    pub reason: String,
    /// By whom.
    pub dismissed_by: String,
    /// When.
    pub dismissed_at: Timestamp,
}

/// An identifier of an asset (`mac`, `ip`, `cloud`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierRow {
    /// The asset.
    pub asset_id: i64,
    /// `mac`, `ip` or `cloud`.
    pub kind: String,
    /// The value.
    pub value: String,
    /// Where it came from.
    pub source: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// Discovery.
#[async_trait]
pub trait DiscoveryStore {
    /// Records an import and replaces its source's observations with
    /// `observations` (seen at, kind, JSON body); the import's id.
    async fn replace_observations(
        &mut self,
        import: &NewDiscoveryImport,
        observations: &[(Timestamp, String)],
    ) -> Result<i64>;
    /// Every current observation, by id.
    async fn observations(&mut self) -> Result<Vec<ObservationRow>>;
    /// The imports, newest first (at most `limit`).
    async fn discovery_imports(&mut self, limit: i64) -> Result<Vec<DiscoveryImportRow>>;
    /// When `source` was last imported, if ever.
    async fn last_discovery_import(&mut self, source: &str) -> Result<Option<Timestamp>>;
    /// The sources whose latest import was external.
    async fn external_sources(&mut self) -> Result<Vec<String>>;
    /// Records (or moves forward) the last sighting of each asset.
    async fn record_sightings(&mut self, rows: &[(i64, Timestamp, String, String)]) -> Result<()>;
    /// Every asset's last sighting.
    async fn sightings(&mut self) -> Result<Vec<(i64, Timestamp)>>;
    /// Dismisses a candidate; `false` if it already was.
    async fn dismiss(&mut self, d: &DismissalRow) -> Result<bool>;
    /// Every dismissal, by key.
    async fn dismissals(&mut self) -> Result<Vec<DismissalRow>>;
    /// Records identifiers of assets (kept if already there).
    async fn add_identifiers(&mut self, rows: &[IdentifierRow]) -> Result<()>;
    /// Every recorded identifier.
    async fn identifiers(&mut self) -> Result<Vec<IdentifierRow>>;
}

#[async_trait]
impl<DB: Engine> DiscoveryStore for SqlTx<DB> {
    async fn replace_observations(
        &mut self,
        i: &NewDiscoveryImport,
        observations: &[(Timestamp, String)],
    ) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "INSERT INTO discovery_imports (source, kind, external, imported_at, imported_by, observations) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .arg(&i.source)
        .arg(&i.kind)
        .arg(i.external)
        .arg(to_millis(i.imported_at))
        .arg(&i.imported_by)
        .arg(observations.len() as i64)
        .one(self.conn())
        .await?;
        let id: i64 = r.col("id")?;
        sqlx::query::<DB>("DELETE FROM discovery_observations WHERE source = $1")
            .arg(&i.source)
            .exec(self.conn())
            .await?;
        for (at, body) in observations {
            sqlx::query::<DB>(
                "INSERT INTO discovery_observations (import_id, source, kind, seen_at, body) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .arg(id)
            .arg(&i.source)
            .arg(&i.kind)
            .arg(to_millis(*at))
            .arg(body)
            .exec(self.conn())
            .await?;
        }
        Ok(id)
    }

    async fn observations(&mut self) -> Result<Vec<ObservationRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, import_id, source, kind, seen_at, body FROM discovery_observations ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ObservationRow {
                    id: r.col("id")?,
                    import_id: r.col("import_id")?,
                    source: r.col("source")?,
                    kind: r.col("kind")?,
                    seen_at: from_millis(r.col("seen_at")?)?,
                    body: r.col("body")?,
                })
            })
            .collect()
    }

    async fn discovery_imports(&mut self, limit: i64) -> Result<Vec<DiscoveryImportRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, source, kind, external, imported_at, imported_by, observations \
             FROM discovery_imports ORDER BY id DESC LIMIT $1",
        )
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DiscoveryImportRow {
                    id: r.col("id")?,
                    import: NewDiscoveryImport {
                        source: r.col("source")?,
                        kind: r.col("kind")?,
                        external: r.col("external")?,
                        imported_at: from_millis(r.col("imported_at")?)?,
                        imported_by: r.col("imported_by")?,
                    },
                    observations: r.col("observations")?,
                })
            })
            .collect()
    }

    async fn last_discovery_import(&mut self, source: &str) -> Result<Option<Timestamp>> {
        let r = sqlx::query::<DB>(
            "SELECT MAX(imported_at) AS at FROM discovery_imports WHERE source = $1",
        )
        .arg(source)
        .one(self.conn())
        .await?;
        let at: Option<i64> = r.col("at")?;
        at.map(from_millis).transpose()
    }

    async fn external_sources(&mut self) -> Result<Vec<String>> {
        let rows = sqlx::query::<DB>(
            "SELECT i.source AS source FROM discovery_imports i \
             WHERE i.external AND i.id = (SELECT MAX(j.id) FROM discovery_imports j WHERE j.source = i.source) \
             ORDER BY i.source",
        )
        .all(self.conn())
        .await?;
        rows.iter().map(|r| r.col("source")).collect()
    }

    async fn record_sightings(&mut self, rows: &[(i64, Timestamp, String, String)]) -> Result<()> {
        for (asset, at, source, rule) in rows {
            sqlx::query::<DB>(
                "INSERT INTO discovery_sightings (asset_id, seen_at, source, rule) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (asset_id) DO UPDATE SET seen_at = excluded.seen_at, source = excluded.source, \
                 rule = excluded.rule WHERE excluded.seen_at >= discovery_sightings.seen_at",
            )
            .arg(*asset)
            .arg(to_millis(*at))
            .arg(source)
            .arg(rule)
            .exec(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn sightings(&mut self) -> Result<Vec<(i64, Timestamp)>> {
        let rows = sqlx::query::<DB>("SELECT asset_id, seen_at FROM discovery_sightings")
            .all(self.conn())
            .await?;
        rows.iter()
            .map(|r| Ok((r.col("asset_id")?, from_millis(r.col("seen_at")?)?)))
            .collect()
    }

    async fn dismiss(&mut self, d: &DismissalRow) -> Result<bool> {
        let done = sqlx::query::<DB>(
            "INSERT INTO discovery_dismissals (key, reason, dismissed_by, dismissed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
        )
        .arg(&d.key)
        .arg(&d.reason)
        .arg(&d.dismissed_by)
        .arg(to_millis(d.dismissed_at))
        .exec(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn dismissals(&mut self) -> Result<Vec<DismissalRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT key, reason, dismissed_by, dismissed_at FROM discovery_dismissals ORDER BY key",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DismissalRow {
                    key: r.col("key")?,
                    reason: r.col("reason")?,
                    dismissed_by: r.col("dismissed_by")?,
                    dismissed_at: from_millis(r.col("dismissed_at")?)?,
                })
            })
            .collect()
    }

    async fn add_identifiers(&mut self, rows: &[IdentifierRow]) -> Result<()> {
        for i in rows {
            sqlx::query::<DB>(
                "INSERT INTO asset_identifiers (asset_id, kind, value, source, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (asset_id, kind, value) DO NOTHING",
            )
            .arg(i.asset_id)
            .arg(&i.kind)
            .arg(&i.value)
            .arg(&i.source)
            .arg(to_millis(i.recorded_at))
            .exec(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn identifiers(&mut self) -> Result<Vec<IdentifierRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT asset_id, kind, value, source, recorded_at FROM asset_identifiers \
             ORDER BY asset_id, kind, value",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IdentifierRow {
                    asset_id: r.col("asset_id")?,
                    kind: r.col("kind")?,
                    value: r.col("value")?,
                    source: r.col("source")?,
                    recorded_at: from_millis(r.col("recorded_at")?)?,
                })
            })
            .collect()
    }
}
