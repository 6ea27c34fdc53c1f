//! CSAF documents and the products of agentless assets (`csaf_documents`,
//! `asset_products`, migration 0075).
//!
//! A document is stored as the JSON of the validated
//! `patchbay_feeds::csaf::Document` (decoded by the app), one row per
//! tracking id: a re-import replaces it, so a statement the new version no
//! longer makes is gone. An asset's products are replaced whole by each
//! import of the asset.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored CSAF document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsafDocumentRow {
    /// `document.tracking.id`.
    pub id: String,
    /// Publisher name.
    pub publisher: String,
    /// Title.
    pub title: String,
    /// `document.category`.
    pub category: String,
    /// `document.tracking.version`.
    pub version: String,
    /// The imported file.
    pub source: String,
    /// The validated document, JSON.
    pub body: String,
    /// When.
    pub imported_at: Timestamp,
    /// By whom.
    pub imported_by: String,
}

/// A product of an asset (vendor, product, version, CPE 2.3 or empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AssetProductRow {
    /// The asset.
    pub asset_id: i64,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Exact version.
    pub version: String,
    /// CPE (2.3 formatted string or 2.2 URI), or empty.
    pub cpe: String,
}

/// CSAF documents and asset products.
#[async_trait]
pub trait CsafStore {
    /// Stores a document, replacing the one with its id; returns the
    /// replaced row's body, if any.
    async fn upsert_csaf_document(&mut self, d: &CsafDocumentRow) -> Result<Option<String>>;
    /// Every stored document, by id.
    async fn csaf_documents(&mut self) -> Result<Vec<CsafDocumentRow>>;
    /// Replaces the products of an asset.
    async fn replace_asset_products(
        &mut self,
        asset_id: i64,
        rows: &[AssetProductRow],
    ) -> Result<()>;
    /// The products of every asset, by asset then vendor, product, version.
    async fn asset_products(&mut self) -> Result<Vec<AssetProductRow>>;
}

#[async_trait]
impl<DB: Engine> CsafStore for SqlTx<DB> {
    async fn upsert_csaf_document(&mut self, d: &CsafDocumentRow) -> Result<Option<String>> {
        let old = sqlx::query::<DB>("SELECT body FROM csaf_documents WHERE id = $1")
            .arg(&d.id)
            .opt(self.conn())
            .await?;
        let old: Option<String> = match old {
            Some(r) => Some(r.col("body")?),
            None => None,
        };
        sqlx::query::<DB>(
            "INSERT INTO csaf_documents (id, publisher, title, category, version, source, body, imported_at, imported_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET publisher = excluded.publisher, title = excluded.title, \
             category = excluded.category, version = excluded.version, source = excluded.source, \
             body = excluded.body, imported_at = excluded.imported_at, imported_by = excluded.imported_by",
        )
        .arg(&d.id)
        .arg(&d.publisher)
        .arg(&d.title)
        .arg(&d.category)
        .arg(&d.version)
        .arg(&d.source)
        .arg(&d.body)
        .arg(to_millis(d.imported_at))
        .arg(&d.imported_by)
        .exec(self.conn())
        .await?;
        Ok(old)
    }

    async fn csaf_documents(&mut self) -> Result<Vec<CsafDocumentRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, publisher, title, category, version, source, body, imported_at, imported_by \
             FROM csaf_documents ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CsafDocumentRow {
                    id: r.col("id")?,
                    publisher: r.col("publisher")?,
                    title: r.col("title")?,
                    category: r.col("category")?,
                    version: r.col("version")?,
                    source: r.col("source")?,
                    body: r.col("body")?,
                    imported_at: from_millis(r.col("imported_at")?)?,
                    imported_by: r.col("imported_by")?,
                })
            })
            .collect()
    }

    async fn replace_asset_products(
        &mut self,
        asset_id: i64,
        rows: &[AssetProductRow],
    ) -> Result<()> {
        sqlx::query::<DB>("DELETE FROM asset_products WHERE asset_id = $1")
            .arg(asset_id)
            .exec(self.conn())
            .await?;
        for p in rows {
            sqlx::query::<DB>(
                "INSERT INTO asset_products (asset_id, vendor, product, version, cpe) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .arg(asset_id)
            .arg(&p.vendor)
            .arg(&p.product)
            .arg(&p.version)
            .arg(&p.cpe)
            .exec(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn asset_products(&mut self) -> Result<Vec<AssetProductRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT asset_id, vendor, product, version, cpe FROM asset_products \
             ORDER BY asset_id, vendor, product, version",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AssetProductRow {
                    asset_id: r.col("asset_id")?,
                    vendor: r.col("vendor")?,
                    product: r.col("product")?,
                    version: r.col("version")?,
                    cpe: r.col("cpe")?,
                })
            })
            .collect()
    }
}
