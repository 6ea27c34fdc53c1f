//! The asset registry: listing, detail, edits, and agentless imports.

use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::asset::{AssetKind, BusinessImpact, Exposure, liveness};
use patchbay_core::auth::Action;
use patchbay_core::inventory::{HostFacts, OsRelease, Package, PackageDelta};
use patchbay_core::names::AssetName;
use patchbay_proto::api::{
    AssetDetail, AssetPatch, AssetSummary, ImportAsset, ImportPackage, ImportResult, PackageOut,
};
use patchbay_store::{AssetAttrs, AssetListQuery, AssetListRow, AssetRow, HostState, ListLiveness};
use serde_json::json;
use std::collections::BTreeSet;

/// Most assets in one import request.
pub const MAX_IMPORT: usize = 100_000;

fn summary(app: &App, a: &AssetRow) -> AssetSummary {
    list_summary(app, &AssetListRow::from(a))
}

fn list_summary(app: &App, a: &AssetListRow) -> AssetSummary {
    let os = if a.os_id.is_empty() {
        String::new()
    } else {
        format!("{}:{}", a.os_id, a.os_version_id)
    };
    // The stored time, or this replica's later one not yet stored.
    let last_seen = app.last_seen(a.id, a.last_seen_at);
    AssetSummary {
        name: a.name.clone(),
        kind: a.attrs.kind.clone(),
        owner: a.attrs.owner.clone(),
        business_impact: a.attrs.business_impact.clone(),
        exposure: a.attrs.exposure.clone(),
        environment: a.attrs.environment.clone(),
        tags: a.attrs.tags.clone(),
        liveness: liveness(a.has_agent, last_seen, app.now(), app.config.stale_after).to_string(),
        last_seen: last_seen.map(fmt_ts),
        os,
        package_count: a.package_count.max(0) as u64,
    }
}

fn normalize_tags(tags: &[String]) -> Result<Vec<String>, AppError> {
    let mut out = BTreeSet::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.len() > 64 || t.chars().any(|c| c.is_control() || c == ',' || c == ';') {
            return Err(AppError::invalid(format!(
                "tag {t:?} is invalid: at most 64 characters, no control characters, ',' or ';'"
            )));
        }
        out.insert(t.to_string());
    }
    Ok(out.into_iter().collect())
}

fn text_field(field: &str, v: &str) -> Result<String, AppError> {
    let v = v.trim();
    if v.len() > 256 || v.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "{field} is invalid: at most 256 characters, no control characters"
        )));
    }
    Ok(v.to_string())
}

/// Applies a patch to attributes, validating every field.
pub(crate) fn apply_patch(mut attrs: AssetAttrs, p: &AssetPatch) -> Result<AssetAttrs, AppError> {
    if let Some(k) = &p.kind {
        attrs.kind = k
            .parse::<AssetKind>()
            .map_err(|e| AppError::invalid(format!("kind: {e}")))?
            .to_string();
    }
    if let Some(b) = &p.business_impact {
        attrs.business_impact = b
            .parse::<BusinessImpact>()
            .map_err(|e| AppError::invalid(format!("business_impact: {e}")))?
            .to_string();
    }
    if let Some(x) = &p.exposure {
        attrs.exposure = x
            .parse::<Exposure>()
            .map_err(|e| AppError::invalid(format!("exposure: {e}")))?
            .to_string();
    }
    if let Some(o) = &p.owner {
        attrs.owner = text_field("owner", o)?;
    }
    if let Some(e) = &p.environment {
        attrs.environment = text_field("environment", e)?;
    }
    if let Some(t) = &p.tags {
        attrs.tags = normalize_tags(t)?;
    }
    Ok(attrs)
}

/// Parses an import in CSV form. Columns (header required, any order):
/// `name` (required), `kind`, `owner`, `business_impact`, `exposure`,
/// `environment`, `tags` (`;`-separated), `os` (`id:version`), `packages`
/// (`name=version;…`). Errors name the CSV line.
pub fn parse_import_csv(text: &str) -> Result<Vec<ImportAsset>, AppError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| AppError::invalid(format!("CSV header: {e}")))?
        .clone();
    let known = [
        "name",
        "kind",
        "owner",
        "business_impact",
        "exposure",
        "environment",
        "tags",
        "os",
        "packages",
        "macs",
        "ips",
        "cloud_id",
        // One vendor product (CSAF matching, docs/csaf.md).
        "vendor",
        "product",
        "version",
        "cpe",
    ];
    for h in headers.iter() {
        if !known.contains(&h) {
            return Err(AppError::invalid(format!(
                "CSV header: unknown column {h:?}; known: {}",
                known.join(", ")
            )));
        }
    }
    if !headers.iter().any(|h| h == "name") {
        return Err(AppError::invalid(
            "CSV header: the column 'name' is required",
        ));
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| AppError::invalid(format!("CSV: {e}")))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |col: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == col)
                .and_then(|i| rec.get(i))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut packages = Vec::new();
        if let Some(p) = get("packages") {
            for item in p.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let (n, v) = item.split_once('=').ok_or_else(|| {
                    AppError::invalid(format!(
                        "CSV line {line}: package {item:?} must be written name=version"
                    ))
                })?;
                packages.push(ImportPackage {
                    name: n.trim().to_string(),
                    version: v.trim().to_string(),
                });
            }
        }
        let list = |col: &str| -> Vec<String> {
            get(col)
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        out.push(ImportAsset {
            macs: list("macs"),
            ips: list("ips"),
            cloud_id: get("cloud_id"),
            name: get("name")
                .ok_or_else(|| AppError::invalid(format!("CSV line {line}: name is empty")))?,
            kind: get("kind"),
            owner: get("owner"),
            business_impact: get("business_impact"),
            exposure: get("exposure"),
            environment: get("environment"),
            tags: get("tags")
                .map(|t| t.split(';').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            os: get("os"),
            packages,
            products: match get("product") {
                Some(product) => vec![patchbay_proto::api::ImportProduct {
                    vendor: get("vendor").unwrap_or_default(),
                    product,
                    version: get("version").unwrap_or_default(),
                    cpe: get("cpe"),
                }],
                None => vec![],
            },
        });
    }
    Ok(out)
}

#[derive(Debug)]
struct ValidImport {
    name: AssetName,
    patch: AssetPatch,
    os: Option<OsRelease>,
    packages: Vec<Package>,
    /// (kind, value): `mac`, `ip`, `cloud`, normalised.
    identifiers: Vec<(&'static str, String)>,
    /// Vendor products (asset id 0: filled in when stored).
    products: Option<Vec<patchbay_store::AssetProductRow>>,
}

fn validate_import(i: usize, a: &ImportAsset) -> Result<ValidImport, AppError> {
    let at = |m: String| AppError::invalid(format!("asset #{} ({:?}): {m}", i + 1, a.name));
    let name = AssetName::parse(&a.name).map_err(|e| at(e.to_string()))?;
    let patch = AssetPatch {
        kind: Some(a.kind.clone().unwrap_or_else(|| "appliance".into())),
        owner: a.owner.clone(),
        business_impact: a.business_impact.clone(),
        exposure: a.exposure.clone(),
        environment: a.environment.clone(),
        tags: Some(a.tags.clone()),
    };
    // Validate the patch now so the error names the asset.
    apply_patch(AssetAttrs::default(), &patch).map_err(|e| at(e.message))?;
    let os = match &a.os {
        None => None,
        Some(s) => {
            let (id, ver) = s.split_once(':').unwrap_or((s.as_str(), ""));
            if id.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
                return Err(at(format!("os {s:?} must be written id:version")));
            }
            Some(OsRelease {
                id: id.to_string(),
                version_id: ver.to_string(),
                ..Default::default()
            })
        }
    };
    let mut seen = BTreeSet::new();
    let mut packages = Vec::new();
    for p in &a.packages {
        if p.name.trim().is_empty() || p.version.trim().is_empty() {
            return Err(at("a package has an empty name or version".into()));
        }
        if p.name.len() > 512 || p.version.len() > 512 {
            return Err(at(format!(
                "package {:?}: name or version longer than 512 bytes",
                p.name
            )));
        }
        use patchbay_core::inventory::{PackageFormat, rules};
        if !rules::valid_name(PackageFormat::Other, p.name.trim()) {
            return Err(at(format!(
                "package {:?}: invalid name: {}",
                p.name,
                rules::name_rule(PackageFormat::Other)
            )));
        }
        if !rules::valid_version(PackageFormat::Other, p.version.trim()) {
            return Err(at(format!(
                "package {:?}: invalid version {:?}: {}",
                p.name,
                p.version,
                rules::version_rule(PackageFormat::Other)
            )));
        }
        if !seen.insert(p.name.trim().to_string()) {
            return Err(at(format!("package {:?} is listed twice", p.name)));
        }
        packages.push(Package {
            name: p.name.trim().to_string(),
            version: p.version.trim().to_string(),
            arch: String::new(),
            source: None,
            source_version: None,
        });
    }
    packages.sort();
    let mut identifiers = Vec::new();
    for m in &a.macs {
        let mac: patchbay_core::discovery::Mac =
            m.parse().map_err(|e: String| at(format!("macs: {e}")))?;
        identifiers.push(("mac", mac.to_string()));
    }
    for ip in &a.ips {
        let ip: std::net::IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| at(format!("ips: {ip:?} is not an IP address")))?;
        identifiers.push(("ip", ip.to_string()));
    }
    if let Some(c) = a
        .cloud_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        if c.len() > 128 || c.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            return Err(at(format!(
                "cloud_id {c:?}: at most 128 characters, no spaces or control characters"
            )));
        }
        identifiers.push(("cloud", c.to_string()));
    }
    let mut products = Vec::new();
    for (j, p) in a.products.iter().enumerate() {
        let (vendor, product, version) = (p.vendor.trim(), p.product.trim(), p.version.trim());
        if vendor.is_empty() || product.is_empty() || version.is_empty() {
            return Err(at(format!(
                "products[{j}]: vendor, product and version are required"
            )));
        }
        let cpe = p.cpe.as_deref().map(str::trim).unwrap_or_default();
        if [vendor, product, version, cpe]
            .iter()
            .any(|s| s.len() > 512 || s.chars().any(char::is_control))
        {
            return Err(at(format!(
                "products[{j}]: values of at most 512 bytes without control characters"
            )));
        }
        if !cpe.is_empty() && crate::csaf::cpe_parts(cpe).is_none() {
            return Err(at(format!(
                "products[{j}]: cpe {cpe:?} is neither a CPE 2.3 formatted string (cpe:2.3:part:vendor:product:…) nor a 2.2 URI (cpe:/part:vendor:product:…)"
            )));
        }
        products.push(patchbay_store::AssetProductRow {
            asset_id: 0,
            vendor: vendor.into(),
            product: product.into(),
            version: version.into(),
            cpe: cpe.into(),
        });
    }
    products.sort();
    products.dedup();
    Ok(ValidImport {
        name,
        patch,
        os,
        packages,
        identifiers,
        products: (!a.products.is_empty()).then_some(products),
    })
}

impl App {
    /// Lists assets.
    pub async fn list_assets(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<AssetSummary>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_asset_rows()
            .await?
            .iter()
            .map(|a| list_summary(self, a))
            .collect())
    }

    /// One page of the assets list, filtered and limited in the database:
    /// the first `limit` assets by name whose name, owner, kind, OS or tags
    /// contain `text` (case-insensitively) and whose liveness is `liveness`
    /// (`any`, `managed`, `stale`, `unmanaged`), with how many match and how
    /// many there are. Liveness is judged on the stored check-in times (a
    /// check-in this replica has not flushed yet counts from the next flush).
    pub async fn asset_list_page(
        &self,
        caller: &Caller,
        text: &str,
        liveness: &str,
        limit: usize,
        ctx: &RequestCtx,
    ) -> Result<(Vec<AssetSummary>, u64, u64), AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let cut = self.now() - self.config.stale_after;
        let liveness = match liveness {
            "" | "any" => None,
            "managed" => Some(ListLiveness::Managed(cut)),
            "stale" => Some(ListLiveness::Stale(cut)),
            "unmanaged" => Some(ListLiveness::Unmanaged),
            other => {
                return Err(AppError::invalid(format!(
                    "liveness: {other:?} is not one of any, managed, stale, unmanaged"
                )));
            }
        };
        let mut tx = self.store.read().await?;
        let page = tx
            .asset_list_page(&AssetListQuery {
                text: text.to_string(),
                liveness,
                limit,
            })
            .await?;
        Ok((
            page.rows.iter().map(|a| list_summary(self, a)).collect(),
            page.matching,
            page.total,
        ))
    }

    /// Shows one asset with its packages.
    pub async fn show_asset(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<AssetDetail, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        let a = tx
            .asset_by_name(&name.to_ascii_lowercase())
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset named {name:?}")))?;
        let packages = tx.packages(a.id).await?;
        Ok(AssetDetail {
            summary: summary(self, &a),
            hostname: a.facts.hostname.clone(),
            machine_id: a.facts.machine_id.clone(),
            os_pretty_name: a.facts.os.pretty_name.clone(),
            os_codename: a.facts.os.version_codename.clone(),
            kernel: a.facts.kernel.clone(),
            arch: a.facts.arch.clone(),
            ip_addresses: a.facts.ip_addresses.clone(),
            macs: a.facts.macs.clone(),
            listening: a.facts.listening.clone(),
            neighbours: a.facts.neighbours.clone(),
            unmanaged: a.facts.unmanaged.clone(),
            reboot_required: a.facts.reboot_required,
            services_needing_restart: a.facts.services_needing_restart.clone(),
            package_format: a.package_format.clone(),
            inventory_hash: a.inventory_hash.clone(),
            packages: packages
                .into_iter()
                .map(|p| PackageOut {
                    name: p.name,
                    version: p.version,
                    arch: p.arch,
                    source: p.source,
                    source_version: p.source_version,
                })
                .collect(),
            pending_updates: a.pending_updates.clone(),
        })
    }

    /// Edits an asset's attributes.
    pub async fn update_asset(
        &self,
        caller: &Caller,
        name: &str,
        patch: AssetPatch,
        ctx: &RequestCtx,
    ) -> Result<AssetDetail, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let a = tx
            .asset_by_name(&name.to_ascii_lowercase())
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset named {name:?}")))?;
        let attrs = apply_patch(a.attrs.clone(), &patch)?;
        if attrs != a.attrs {
            tx.update_asset_attrs(a.id, &attrs, self.now()).await?;
            tx.audit(
                "asset.update",
                &format!("asset:{}", a.name),
                json!({"before": attrs_json(&a.attrs), "after": attrs_json(&attrs)}),
            )
            .await?;
            tx.commit().await?;
        } else {
            // Nothing changes: end the write transaction before reading through
            // another connection (never hold one connection waiting for another).
            drop(tx);
        }
        self.show_asset(caller, &a.name, ctx).await
    }

    /// Imports agentless assets. The whole import is validated first; one bad
    /// entry rejects it all and nothing is written.
    pub async fn import_assets(
        &self,
        caller: &Caller,
        items: Vec<ImportAsset>,
        ctx: &RequestCtx,
    ) -> Result<ImportResult, AppError> {
        self.require(caller, Action::ImportAssets, ctx).await?;
        if items.len() > MAX_IMPORT {
            return Err(AppError::invalid(format!(
                "{} assets in one import; the limit is {MAX_IMPORT}",
                items.len()
            )));
        }
        let mut valid = Vec::with_capacity(items.len());
        let mut names = BTreeSet::new();
        for (i, a) in items.iter().enumerate() {
            let v = validate_import(i, a)?;
            if !names.insert(v.name.clone()) {
                return Err(AppError::invalid(format!(
                    "asset #{} ({}): listed twice",
                    i + 1,
                    v.name
                )));
            }
            valid.push(v);
        }
        let now = self.now();
        let (mut created, mut updated) = (0u64, 0u64);
        let mut tx = self.change(caller, Action::ImportAssets, ctx).await?;
        let mut vex_changed = false;
        for v in &valid {
            let existing = tx.asset_by_name(v.name.as_str()).await?;
            let (id, managed) = match &existing {
                Some(a) => {
                    let attrs = apply_patch(a.attrs.clone(), &v.patch)?;
                    if attrs != a.attrs {
                        tx.update_asset_attrs(a.id, &attrs, now).await?;
                    }
                    updated += 1;
                    (a.id, a.has_agent)
                }
                None => {
                    let attrs = apply_patch(AssetAttrs::default(), &v.patch)?;
                    created += 1;
                    (
                        tx.insert_asset(v.name.as_str(), &attrs, false, now).await?,
                        false,
                    )
                }
            };
            if !v.identifiers.is_empty() {
                let rows: Vec<patchbay_store::IdentifierRow> = v
                    .identifiers
                    .iter()
                    .map(|(kind, value)| patchbay_store::IdentifierRow {
                        asset_id: id,
                        kind: (*kind).to_string(),
                        value: value.clone(),
                        source: "import".into(),
                        recorded_at: now,
                    })
                    .collect();
                tx.add_identifiers(&rows).await?;
            }
            // Vendor products (CSAF matching): replaced whole when given.
            if let Some(products) = &v.products {
                let rows: Vec<patchbay_store::AssetProductRow> = products
                    .iter()
                    .map(|p| patchbay_store::AssetProductRow {
                        asset_id: id,
                        ..p.clone()
                    })
                    .collect();
                tx.replace_asset_products(id, &rows).await?;
                self.assess_csaf_in(&mut tx, Some(id)).await?;
                vex_changed = true;
            }
            // An agent's inventory is the truth for a managed asset: an import
            // only sets attributes there.
            if !managed && (v.os.is_some() || !v.packages.is_empty()) {
                let old = tx.packages(id).await?;
                let delta = PackageDelta::between(&old, &v.packages);
                tx.apply_package_delta(id, &delta).await?;
                let facts = HostFacts {
                    os: v.os.clone().unwrap_or_default(),
                    ..Default::default()
                };
                let inv = patchbay_core::inventory::Inventory {
                    facts: facts.clone(),
                    format: Some(patchbay_core::inventory::PackageFormat::Other),
                    packages: v.packages.clone(),
                    pending_updates: vec![],
                };
                let hash = inv.content_hash();
                tx.set_host_state(
                    id,
                    &HostState {
                        facts: &facts,
                        package_format: Some("other"),
                        pending_updates: &[],
                        inventory_hash: &hash,
                        // Imports are not check-ins: the last-seen time stays.
                        seen_at: None,
                        now,
                    },
                )
                .await?;
                // Agentless assets with an OS and versions are assessed like any other.
                if let Some(row) = tx.asset_by_name(v.name.as_str()).await? {
                    self.assess_in(&mut tx, &row).await?;
                }
            }
        }
        // VEX statements follow the products the assets run now.
        if vex_changed {
            self.reconcile_vex(&mut tx).await?;
        }
        tx.audit(
            "asset.import",
            "assets",
            json!({"created": created, "updated": updated, "names": valid.iter().map(|v| v.name.as_str()).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
        Ok(ImportResult { created, updated })
    }
}

fn attrs_json(a: &AssetAttrs) -> serde_json::Value {
    json!({"kind": a.kind, "owner": a.owner, "business_impact": a.business_impact, "exposure": a.exposure,
           "environment": a.environment, "tags": a.tags})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import_parses_and_names_lines() {
        let ok = parse_import_csv(
            "name,kind,owner,tags,os,packages\ncore-sw-01,network-device,neteng,dc1;core,ios-xe:17.9,ios-xe=17.9.4a\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].tags, vec!["dc1", "core"]);
        assert_eq!(ok[0].packages[0].version, "17.9.4a");
        let e = parse_import_csv("name,colour\nx,red\n").unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
        let e = parse_import_csv("name,packages\nx,ios-xe\n").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
    }

    #[test]
    fn import_validation_names_the_asset() {
        let a = ImportAsset {
            name: "fw 1".into(),
            ..Default::default()
        };
        assert!(
            validate_import(0, &a)
                .unwrap_err()
                .message
                .contains("asset #1")
        );
        let a = ImportAsset {
            name: "fw1".into(),
            exposure: Some("dmz".into()),
            ..Default::default()
        };
        assert!(
            validate_import(0, &a)
                .unwrap_err()
                .message
                .contains("exposure")
        );
    }
}
