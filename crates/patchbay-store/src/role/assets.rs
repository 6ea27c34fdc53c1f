//! Assets: the registry (`assets`).

use crate::engine::{
    BATCH_ROWS, BuilderExt, Engine, Get, QueryExt, SeparatedExt, SqlTx, json_list, opt_ts, to_json,
};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use patchbay_core::inventory::{HostFacts, OsRelease, PendingUpdate};
use sqlx::QueryBuilder;

/// Editable attributes of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetAttrs {
    /// Kind (`server`, `network-device`…).
    pub kind: String,
    /// Owner.
    pub owner: String,
    /// Business impact.
    pub business_impact: String,
    /// Exposure.
    pub exposure: String,
    /// Environment.
    pub environment: String,
    /// Tags, sorted.
    pub tags: Vec<String>,
}

impl Default for AssetAttrs {
    fn default() -> Self {
        Self {
            kind: "server".into(),
            owner: String::new(),
            business_impact: "medium".into(),
            exposure: "internal".into(),
            environment: String::new(),
            tags: Vec::new(),
        }
    }
}

/// A stored asset.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Editable attributes.
    pub attrs: AssetAttrs,
    /// Whether an agent is enrolled for it.
    pub has_agent: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of attributes or inventory.
    pub updated_at: Timestamp,
    /// Last agent check-in.
    pub last_seen_at: Option<Timestamp>,
    /// Host facts of the stored inventory.
    pub facts: HostFacts,
    /// Package format (`deb`, `rpm`, `apk`, `other`).
    pub package_format: Option<String>,
    /// Hash of the stored inventory (`None` before the first one).
    pub inventory_hash: Option<String>,
    /// Pending updates.
    pub pending_updates: Vec<PendingUpdate>,
    /// Number of package rows.
    pub package_count: i64,
}

/// An asset as a list shows it: its attributes and liveness inputs, without
/// the facts, network, pending updates or unmanaged software that
/// [`AssetRow`] parses (a fleet-wide list reads 50,000 of these).
#[derive(Debug, Clone, PartialEq)]
pub struct AssetListRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Editable attributes.
    pub attrs: AssetAttrs,
    /// Whether an agent is enrolled for it.
    pub has_agent: bool,
    /// Last agent check-in.
    pub last_seen_at: Option<Timestamp>,
    /// `os-release` `ID` of the stored inventory.
    pub os_id: String,
    /// `os-release` `VERSION_ID` of the stored inventory.
    pub os_version_id: String,
    /// Number of package rows.
    pub package_count: i64,
}

impl From<&AssetRow> for AssetListRow {
    fn from(a: &AssetRow) -> Self {
        AssetListRow {
            id: a.id,
            name: a.name.clone(),
            attrs: a.attrs.clone(),
            has_agent: a.has_agent,
            last_seen_at: a.last_seen_at,
            os_id: a.facts.os.id.clone(),
            os_version_id: a.facts.os.version_id.clone(),
            package_count: a.package_count,
        }
    }
}

/// Which assets a list shows ([`AssetStore::asset_list_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetListQuery {
    /// Text looked for (case-insensitively) in the name, owner, kind,
    /// `os_id:os_version_id` and tags; empty: every asset.
    pub text: String,
    /// Only this liveness, judged at `stale_before`.
    pub liveness: Option<ListLiveness>,
    /// At most this many rows (by name).
    pub limit: usize,
}

/// A liveness filter: agents seen at or after the cut-off are managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLiveness {
    /// An agent seen at or after the cut-off.
    Managed(Timestamp),
    /// An agent not seen since before the cut-off (or never).
    Stale(Timestamp),
    /// No agent.
    Unmanaged,
}

/// One page of a list: its rows, how many match, how many there are.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetListPage {
    /// The first `limit` matches, by name.
    pub rows: Vec<AssetListRow>,
    /// Assets that match.
    pub matching: u64,
    /// Assets stored.
    pub total: u64,
}

/// Assets: the registry.
#[async_trait]
pub trait AssetStore {
    /// Finds an asset by name.
    async fn asset_by_name(&mut self, name: &str) -> Result<Option<AssetRow>>;
    /// Finds an asset by machine id (re-enrolment of a known host).
    async fn asset_by_machine_id(&mut self, machine_id: &str) -> Result<Option<AssetRow>>;
    /// All assets, by name.
    async fn list_assets(&mut self) -> Result<Vec<AssetRow>>;
    /// All assets, by name, with only what a list shows (see
    /// [`AssetListRow`]).
    async fn list_asset_rows(&mut self) -> Result<Vec<AssetListRow>>;
    /// The first matches of `q` by name with the counts, filtered and
    /// limited in the database (a 50,000-asset fleet's list page reads
    /// the rows it shows).
    async fn asset_list_page(&mut self, q: &AssetListQuery) -> Result<AssetListPage>;
    /// The assets of these (stored, lower-case) names, in batched
    /// statements; names not stored are left out.
    async fn assets_by_names(&mut self, names: &[String]) -> Result<Vec<AssetRow>>;
    /// Each asset's name and last check-in, by name: the narrow read the
    /// rollout driver needs every step (no facts, attributes or JSON).
    async fn asset_last_seen(&mut self) -> Result<Vec<(String, Option<Timestamp>)>>;
    /// Inserts an asset; `Conflict` when the name is taken.
    async fn insert_asset(
        &mut self,
        name: &str,
        attrs: &AssetAttrs,
        has_agent: bool,
        now: Timestamp,
    ) -> Result<i64>;
    /// Replaces an asset's editable attributes.
    async fn update_asset_attrs(
        &mut self,
        id: i64,
        attrs: &AssetAttrs,
        now: Timestamp,
    ) -> Result<()>;
    /// Records the host name and machine id an agent enrolled with (so a host that
    /// enrols again is recognised before its first check-in).
    async fn set_machine(
        &mut self,
        id: i64,
        hostname: &str,
        machine_id: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Marks an asset as having an agent.
    async fn set_has_agent(&mut self, id: i64, has_agent: bool, now: Timestamp) -> Result<()>;
}

const ASSET_COLS: &str = "id, name, kind, owner, business_impact, exposure, environment, tags, \
    has_agent, created_at, updated_at, last_seen_at, hostname, machine_id, os_id, os_version_id, \
    os_codename, os_pretty_name, os_id_like, kernel, arch, ip_addresses, reboot_required, \
    services_restart, package_format, inventory_hash, pending_updates, package_count, network, \
    unmanaged";

/// The `network` column: an agent's MACs and neighbour table.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct NetworkFacts {
    #[serde(default)]
    pub(crate) macs: Vec<String>,
    #[serde(default)]
    pub(crate) neighbours: Vec<patchbay_core::inventory::Neighbour>,
    #[serde(default)]
    pub(crate) listening: Vec<String>,
}

fn row_to_asset<DB: Engine>(r: &DB::Row) -> Result<AssetRow> {
    let pending: String = r.col("pending_updates")?;
    let network: String = r.col("network")?;
    let network: NetworkFacts = serde_json::from_str(&network)
        .map_err(|e| StoreError::Other(format!("bad network facts: {e}")))?;
    let unmanaged: String = r.col("unmanaged")?;
    let unmanaged = serde_json::from_str(&unmanaged)
        .map_err(|e| StoreError::Other(format!("bad unmanaged software: {e}")))?;
    Ok(AssetRow {
        id: r.col("id")?,
        name: r.col("name")?,
        attrs: attrs_of::<DB>(r)?,
        has_agent: r.col("has_agent")?,
        created_at: from_millis(r.col("created_at")?)?,
        updated_at: from_millis(r.col("updated_at")?)?,
        last_seen_at: opt_ts(r.col("last_seen_at")?)?,
        facts: HostFacts {
            hostname: r.col("hostname")?,
            machine_id: r.col("machine_id")?,
            os: OsRelease {
                id: r.col("os_id")?,
                version_id: r.col("os_version_id")?,
                version_codename: r.col("os_codename")?,
                pretty_name: r.col("os_pretty_name")?,
                id_like: r.col("os_id_like")?,
            },
            kernel: r.col("kernel")?,
            arch: r.col("arch")?,
            ip_addresses: json_list(r.col("ip_addresses")?)?,
            reboot_required: r.col("reboot_required")?,
            services_needing_restart: json_list(r.col("services_restart")?)?,
            macs: network.macs,
            neighbours: network.neighbours,
            listening: network.listening,
            unmanaged,
        },
        package_format: r.col("package_format")?,
        inventory_hash: r.col("inventory_hash")?,
        pending_updates: serde_json::from_str(&pending)
            .map_err(|e| StoreError::Other(format!("bad pending updates: {e}")))?,
        package_count: r.col("package_count")?,
    })
}

#[async_trait]
impl<DB: Engine> AssetStore for SqlTx<DB> {
    async fn asset_by_name(&mut self, name: &str) -> Result<Option<AssetRow>> {
        let sql = format!("SELECT {ASSET_COLS} FROM assets WHERE name = $1");
        let row = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(name)
            .opt(self.conn())
            .await?;
        row.as_ref().map(row_to_asset::<DB>).transpose()
    }

    async fn asset_by_machine_id(&mut self, machine_id: &str) -> Result<Option<AssetRow>> {
        if machine_id.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {ASSET_COLS} FROM assets WHERE machine_id = $1 AND has_agent ORDER BY id LIMIT 1"
        );
        let row = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(machine_id)
            .opt(self.conn())
            .await?;
        row.as_ref().map(row_to_asset::<DB>).transpose()
    }

    async fn list_assets(&mut self) -> Result<Vec<AssetRow>> {
        let sql = format!("SELECT {ASSET_COLS} FROM assets ORDER BY name");
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .all(self.conn())
            .await?;
        rows.iter().map(row_to_asset::<DB>).collect()
    }

    async fn list_asset_rows(&mut self) -> Result<Vec<AssetListRow>> {
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(format!(
            "SELECT {LIST_COLS} FROM assets ORDER BY name"
        )))
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_list_row::<DB>).collect()
    }

    async fn asset_list_page(&mut self, q: &AssetListQuery) -> Result<AssetListPage> {
        let total: i64 = sqlx::query::<DB>("SELECT COUNT(*) AS n FROM assets")
            .one(self.conn())
            .await?
            .col("n")?;
        let filter = |qb: &mut QueryBuilder<DB>| {
            qb.push(" WHERE 1 = 1");
            let text = q.text.trim().to_lowercase();
            if !text.is_empty() {
                let pattern = format!(
                    "%{}%",
                    text.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                qb.push(" AND (");
                for (i, col) in [
                    "lower(name)",
                    "lower(owner)",
                    "lower(kind)",
                    "lower(os_id || ':' || os_version_id)",
                    "lower(tags)",
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push(format!("{col} LIKE "));
                    qb.push_arg(pattern.clone());
                    qb.push(" ESCAPE '\\'");
                }
                qb.push(")");
            }
            match q.liveness {
                None => {}
                Some(ListLiveness::Unmanaged) => {
                    qb.push(" AND has_agent = FALSE");
                }
                Some(ListLiveness::Managed(cut)) => {
                    qb.push(" AND has_agent = TRUE AND last_seen_at >= ");
                    qb.push_arg(to_millis(cut));
                }
                Some(ListLiveness::Stale(cut)) => {
                    qb.push(" AND has_agent = TRUE AND (last_seen_at IS NULL OR last_seen_at < ");
                    qb.push_arg(to_millis(cut));
                    qb.push(")");
                }
            }
        };
        let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) AS n FROM assets");
        filter(&mut count);
        let matching: i64 = count.build().one(self.conn()).await?.col("n")?;
        let mut page = QueryBuilder::<DB>::new(format!("SELECT {LIST_COLS} FROM assets"));
        filter(&mut page);
        page.push(" ORDER BY name LIMIT ");
        page.push_arg(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = page
            .build()
            .all(self.conn())
            .await?
            .iter()
            .map(row_to_list_row::<DB>)
            .collect::<Result<Vec<_>>>()?;
        Ok(AssetListPage {
            rows,
            matching: matching.max(0) as u64,
            total: total.max(0) as u64,
        })
    }

    async fn assets_by_names(&mut self, names: &[String]) -> Result<Vec<AssetRow>> {
        let mut out = Vec::new();
        for chunk in names.chunks(BATCH_ROWS) {
            let mut qb =
                QueryBuilder::<DB>::new(format!("SELECT {ASSET_COLS} FROM assets WHERE name IN ("));
            let mut sep = qb.separated(", ");
            for n in chunk {
                sep.push_arg(n.clone());
            }
            qb.push(")");
            for r in &qb.build().all(self.conn()).await? {
                out.push(row_to_asset::<DB>(r)?);
            }
        }
        Ok(out)
    }

    async fn asset_last_seen(&mut self) -> Result<Vec<(String, Option<Timestamp>)>> {
        let rows = sqlx::query::<DB>("SELECT name, last_seen_at FROM assets ORDER BY name")
            .all(self.conn())
            .await?;
        rows.iter()
            .map(|r| Ok((r.col("name")?, opt_ts(r.col("last_seen_at")?)?)))
            .collect()
    }

    async fn insert_asset(
        &mut self,
        name: &str,
        attrs: &AssetAttrs,
        has_agent: bool,
        now: Timestamp,
    ) -> Result<i64> {
        let now = to_millis(now);
        // ON CONFLICT DO NOTHING instead of a unique violation: on
        // PostgreSQL a failed statement aborts the whole transaction, and
        // callers must be able to go on (e.g. try another name).
        let row = sqlx::query::<DB>(
            "INSERT INTO assets (name, kind, owner, business_impact, exposure, environment, tags, \
             has_agent, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .arg(name)
        .arg(&attrs.kind)
        .arg(&attrs.owner)
        .arg(&attrs.business_impact)
        .arg(&attrs.exposure)
        .arg(&attrs.environment)
        .arg(to_json(&attrs.tags))
        .arg(has_agent)
        .arg(now)
        .opt(self.conn())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("an asset named {name:?} already exists")))?;
        row.col("id")
    }

    async fn update_asset_attrs(
        &mut self,
        id: i64,
        attrs: &AssetAttrs,
        now: Timestamp,
    ) -> Result<()> {
        let r = sqlx::query::<DB>(
            "UPDATE assets SET kind = $2, owner = $3, business_impact = $4, exposure = $5, \
             environment = $6, tags = $7, updated_at = $8 WHERE id = $1",
        )
        .arg(id)
        .arg(&attrs.kind)
        .arg(&attrs.owner)
        .arg(&attrs.business_impact)
        .arg(&attrs.exposure)
        .arg(&attrs.environment)
        .arg(to_json(&attrs.tags))
        .arg(to_millis(now))
        .exec(self.conn())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("asset id {id}")));
        }
        Ok(())
    }

    async fn set_machine(
        &mut self,
        id: i64,
        hostname: &str,
        machine_id: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE assets SET hostname = $2, machine_id = $3, updated_at = $4 WHERE id = $1",
        )
        .arg(id)
        .arg(hostname)
        .arg(machine_id)
        .arg(to_millis(now))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn set_has_agent(&mut self, id: i64, has_agent: bool, now: Timestamp) -> Result<()> {
        sqlx::query::<DB>("UPDATE assets SET has_agent = $2, updated_at = $3 WHERE id = $1")
            .arg(id)
            .arg(has_agent)
            .arg(to_millis(now))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}

/// The columns of an [`AssetListRow`].
const LIST_COLS: &str = "id, name, kind, owner, business_impact, exposure, environment, tags, \
    has_agent, last_seen_at, os_id, os_version_id, package_count";

/// The editable attributes' columns of an asset row.
fn attrs_of<DB: Engine>(r: &DB::Row) -> Result<AssetAttrs> {
    Ok(AssetAttrs {
        kind: r.col("kind")?,
        owner: r.col("owner")?,
        business_impact: r.col("business_impact")?,
        exposure: r.col("exposure")?,
        environment: r.col("environment")?,
        tags: json_list(r.col("tags")?)?,
    })
}

fn row_to_list_row<DB: Engine>(r: &DB::Row) -> Result<AssetListRow> {
    Ok(AssetListRow {
        id: r.col("id")?,
        name: r.col("name")?,
        attrs: attrs_of::<DB>(r)?,
        has_agent: r.col("has_agent")?,
        last_seen_at: opt_ts(r.col("last_seen_at")?)?,
        os_id: r.col("os_id")?,
        os_version_id: r.col("os_version_id")?,
        package_count: r.col("package_count")?,
    })
}
