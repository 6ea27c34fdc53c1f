//! Installed packages and host state (`asset_packages`, host columns of `assets`).

use crate::engine::{
    BATCH_ROWS, BuilderExt, Engine, Get, QueryExt, SeparatedExt, SqlTx, all_with_ids_in, to_json,
};
use crate::{Result, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use patchbay_core::inventory::{HostFacts, Package, PackageDelta, PendingUpdate};
use sqlx::QueryBuilder;

/// Host state written with an inventory.
#[derive(Debug, Clone)]
pub struct HostState<'a> {
    /// Facts.
    pub facts: &'a HostFacts,
    /// Package format.
    pub package_format: Option<&'a str>,
    /// Pending updates.
    pub pending_updates: &'a [PendingUpdate],
    /// New inventory hash.
    pub inventory_hash: &'a str,
    /// Check-in time; `None` keeps the last one (imports are not check-ins).
    pub seen_at: Option<Timestamp>,
    /// Time of the change.
    pub now: Timestamp,
}

/// Installed packages and host state.
#[async_trait]
pub trait InventoryStore {
    /// An asset's packages, sorted by (name, arch, version).
    async fn packages(&mut self, asset_id: i64) -> Result<Vec<Package>>;
    /// The packages of the given assets, as (asset id, package), in batched statements.
    async fn packages_of_assets(&mut self, asset_ids: &[i64]) -> Result<Vec<(i64, Package)>>;
    /// Every installed package whose binary or source name is one of `names`, as
    /// (asset id, package), sorted: the hosts an advisory change touches. Of
    /// every asset, or only of `assets` when given.
    async fn packages_named(
        &mut self,
        names: &[String],
        assets: Option<&[i64]>,
    ) -> Result<Vec<(i64, Package)>>;
    /// Applies a package delta; returns the number of rows inserted plus deleted.
    /// Writes nothing for an empty delta.
    async fn apply_package_delta(&mut self, asset_id: i64, delta: &PackageDelta) -> Result<u64>;
    /// Stores the host facts, pending updates and inventory hash, and the check-in time.
    async fn set_host_state(&mut self, asset_id: i64, state: &HostState<'_>) -> Result<()>;
    /// Records a check-in that changed nothing.
    async fn touch_seen(&mut self, asset_id: i64, at: Timestamp) -> Result<()>;
}

fn row_to_asset_package<DB: Engine>(r: &DB::Row) -> Result<(i64, Package)> {
    Ok((
        r.col("asset_id")?,
        Package {
            name: r.col("name")?,
            arch: r.col("arch")?,
            version: r.col("version")?,
            source: r.col("source")?,
            source_version: r.col("source_version")?,
        },
    ))
}

#[async_trait]
impl<DB: Engine> InventoryStore for SqlTx<DB> {
    async fn packages(&mut self, asset_id: i64) -> Result<Vec<Package>> {
        let rows = sqlx::query::<DB>(
            "SELECT name, arch, version, source, source_version FROM asset_packages \
             WHERE asset_id = $1 ORDER BY name, arch, version",
        )
        .arg(asset_id)
        .all(self.conn())
        .await?;
        let mut out: Vec<Package> = rows
            .iter()
            .map(|r| {
                Ok(Package {
                    name: r.col("name")?,
                    arch: r.col("arch")?,
                    version: r.col("version")?,
                    source: r.col("source")?,
                    source_version: r.col("source_version")?,
                })
            })
            .collect::<Result<_>>()?;
        // Byte order, as in the domain (collations may differ between engines).
        out.sort();
        Ok(out)
    }

    async fn packages_of_assets(&mut self, asset_ids: &[i64]) -> Result<Vec<(i64, Package)>> {
        all_with_ids_in(
            self,
            "SELECT asset_id, name, arch, version, source, source_version FROM asset_packages \
             WHERE asset_id",
            asset_ids,
        )
        .await?
        .iter()
        .map(row_to_asset_package::<DB>)
        .collect()
    }

    async fn packages_named(
        &mut self,
        names: &[String],
        assets: Option<&[i64]>,
    ) -> Result<Vec<(i64, Package)>> {
        let mut out = Vec::new();
        let asset_chunks: Vec<Option<&[i64]>> = match assets {
            None => vec![None],
            Some(ids) => ids.chunks(BATCH_ROWS).map(Some).collect(),
        };
        // Two binds per name (plus the asset ids); UNION lets each half use its
        // own index (asset_packages_name, asset_packages_source) and drops
        // duplicates.
        for ids in asset_chunks {
            for chunk in names.chunks(BATCH_ROWS / 2) {
                let mut qb = QueryBuilder::<DB>::new("");
                for (i, col) in ["name", "source"].into_iter().enumerate() {
                    if i > 0 {
                        qb.push(" UNION ");
                    }
                    qb.push(format!(
                        "SELECT asset_id, name, arch, version, source, source_version \
                         FROM asset_packages WHERE {col} IN ("
                    ));
                    let mut sep = qb.separated(", ");
                    for n in chunk {
                        sep.push_arg(n.clone());
                    }
                    qb.push(")");
                    if let Some(ids) = ids {
                        qb.push(" AND asset_id IN (");
                        let mut sep = qb.separated(", ");
                        for id in ids {
                            sep.push_arg(*id);
                        }
                        qb.push(")");
                    }
                }
                for r in &qb.build().all(self.conn()).await? {
                    out.push(row_to_asset_package::<DB>(r)?);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn apply_package_delta(&mut self, asset_id: i64, delta: &PackageDelta) -> Result<u64> {
        let mut written = 0u64;
        for chunk in delta.removed.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM asset_packages WHERE asset_id = ");
            qb.push_arg(asset_id);
            qb.push(" AND (name, arch, version) IN (");
            let mut sep = qb.separated(", ");
            for p in chunk {
                sep.push("(");
                sep.push_arg_unseparated(p.name.clone());
                sep.push_unseparated(", ");
                sep.push_arg_unseparated(p.arch.clone());
                sep.push_unseparated(", ");
                sep.push_arg_unseparated(p.version.clone());
                sep.push_unseparated(")");
            }
            qb.push(")");
            let r = qb.build().exec(self.conn()).await?;
            written += r.rows_affected();
        }
        for chunk in delta.added.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO asset_packages (asset_id, name, arch, version, source, source_version) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_arg(asset_id)
                    .push_arg(p.name.clone())
                    .push_arg(p.arch.clone())
                    .push_arg(p.version.clone())
                    .push_arg(p.source.clone())
                    .push_arg(p.source_version.clone());
            });
            // A package whose key exists already differs only in source
            // fields: update those in place.
            qb.push(
                " ON CONFLICT (asset_id, name, arch, version) DO UPDATE SET \
                 source = excluded.source, source_version = excluded.source_version",
            );
            let r = qb.build().exec(self.conn()).await?;
            written += r.rows_affected();
        }
        if written > 0 {
            sqlx::query::<DB>(
                "UPDATE assets SET package_count = \
                 (SELECT COUNT(*) FROM asset_packages WHERE asset_id = $1) WHERE id = $1",
            )
            .arg(asset_id)
            .exec(self.conn())
            .await?;
        }
        Ok(written)
    }

    async fn set_host_state(&mut self, asset_id: i64, s: &HostState<'_>) -> Result<()> {
        let f = s.facts;
        sqlx::query::<DB>(
            "UPDATE assets SET hostname = $2, machine_id = $3, os_id = $4, os_version_id = $5, \
             os_codename = $6, os_pretty_name = $7, os_id_like = $8, kernel = $9, arch = $10, \
             ip_addresses = $11, reboot_required = $12, services_restart = $13, package_format = $14, \
             inventory_hash = $15, pending_updates = $16, last_seen_at = COALESCE($17, last_seen_at), \
             updated_at = $18, network = $19, unmanaged = $20 \
             WHERE id = $1",
        )
        .arg(asset_id)
        .arg(&f.hostname)
        .arg(&f.machine_id)
        .arg(&f.os.id)
        .arg(&f.os.version_id)
        .arg(&f.os.version_codename)
        .arg(&f.os.pretty_name)
        .arg(&f.os.id_like)
        .arg(&f.kernel)
        .arg(&f.arch)
        .arg(to_json(&f.ip_addresses))
        .arg(f.reboot_required)
        .arg(to_json(&f.services_needing_restart))
        .arg(s.package_format.map(str::to_owned))
        .arg(s.inventory_hash)
        .arg(to_json(&s.pending_updates))
        .arg(s.seen_at.map(to_millis))
        .arg(to_millis(s.now))
        .arg(to_json(&crate::role::assets::NetworkFacts {
            macs: f.macs.clone(),
            neighbours: f.neighbours.clone(),
            listening: f.listening.clone(),
        }))
        .arg(to_json(&f.unmanaged))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn touch_seen(&mut self, asset_id: i64, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>("UPDATE assets SET last_seen_at = $2 WHERE id = $1")
            .arg(asset_id)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}
