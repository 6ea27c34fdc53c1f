//! Discovery: imports of network scans, DHCP leases and cloud inventories,
//! and the reconciliation of what they saw with the asset registry (issue
//! 19). The parsing and the reconciliation are pure
//! ([`patchbay_core::discovery`]); this module stores, audits and answers.
//!
//! - An import (`discovery.import`, audited) replaces its source's
//!   observations — a re-scan is idempotent — records the last sighting of
//!   each matched asset (for ghost detection), and raises
//!   `asset.shadow_found` once per new shadow candidate and `asset.ghost`
//!   once per ghost (the `notices` table keeps them raised once).
//! - The view ([`App::discovery`]) reconciles the current observations with
//!   the registry as of now.
//! - Adopting a candidate (`discovery.adopt`) creates an agentless asset and
//!   records the candidate's MACs, addresses and cloud ids as its
//!   identifiers, so the next reconciliation matches it; dismissing one
//!   (`discovery.dismiss`) keeps it out of the shadows, with the reason.
//!
//! Permissions: importing and adopting need `ImportAssets`, dismissing
//! `WriteAssets`, reading `ReadInventory` (the same as the registry's).

use crate::assets::apply_patch;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::auth::Action;
use patchbay_core::discovery::{
    self as core_disc, Known, Mac, Observation, Reconciliation, Seen, Shadow, SourceKind,
};
use patchbay_core::names::AssetName;
use patchbay_proto::api::AssetPatch;
use patchbay_proto::discovery::{
    AcceptExposure, AdoptShadow, ConflictOut, DiscoveryImportOut, DiscoveryOut, DismissShadow,
    DuplicateOut, ExposureMismatchOut, GhostOut, MatchOut, PortOut, ShadowOut,
};
use patchbay_store::{AssetAttrs, DismissalRow, IdentifierRow, NewDiscoveryImport, Tx};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// A known asset's name and the view's inputs, read in one transaction.
struct Inputs {
    seen: Vec<Seen>,
    known: Vec<Known>,
    names: BTreeMap<i64, String>,
    exposures: BTreeMap<i64, String>,
    external: BTreeSet<String>,
    dismissals: BTreeMap<String, DismissalRow>,
}

async fn inputs(tx: &mut Box<dyn Tx>) -> Result<Inputs, AppError> {
    let mut seen = Vec::new();
    for r in tx.observations().await? {
        let obs: Observation = serde_json::from_str(&r.body).map_err(|e| {
            AppError::new(
                patchbay_proto::error::ErrorCode::Internal,
                format!("stored observation {} is unreadable: {e}", r.id),
            )
        })?;
        let kind = r.kind.parse::<SourceKind>().map_err(AppError::invalid)?;
        seen.push(Seen {
            id: r.id,
            kind,
            source: r.source,
            at: r.seen_at,
            obs,
        });
    }
    let sightings: BTreeMap<i64, jiff::Timestamp> = tx.sightings().await?.into_iter().collect();
    let mut ids: BTreeMap<i64, Vec<IdentifierRow>> = BTreeMap::new();
    for i in tx.identifiers().await? {
        ids.entry(i.asset_id).or_default().push(i);
    }
    let mut known = Vec::new();
    let mut names = BTreeMap::new();
    // Neighbour tables reported by agents: one source per asset, as of its
    // last check-in (ids below zero: they are not stored observations).
    let mut next_neighbour_id = -1i64;
    let mut exposures = BTreeMap::new();
    for a in tx.list_assets().await? {
        exposures.insert(a.id, a.attrs.exposure.clone());
        let mut k = Known {
            id: a.id,
            name: a.name.clone(),
            machine_id: Some(a.facts.machine_id.clone()).filter(|m| !m.is_empty()),
            ips: a
                .facts
                .ip_addresses
                .iter()
                .filter_map(|s| s.split('/').next()?.parse().ok())
                .collect(),
            last_checkin: a.last_seen_at,
            last_sighting: sightings.get(&a.id).copied(),
            created_at: a.created_at,
            ..Default::default()
        };
        k.macs
            .extend(a.facts.macs.iter().filter_map(|m| m.parse::<Mac>().ok()));
        if let Some(at) = a.last_seen_at {
            for n in &a.facts.neighbours {
                let (Ok(ip), Ok(mac)) = (n.ip.parse::<std::net::IpAddr>(), n.mac.parse::<Mac>())
                else {
                    continue;
                };
                seen.push(Seen {
                    id: next_neighbour_id,
                    kind: SourceKind::Neighbour,
                    source: format!("neighbour:{}", a.name),
                    at,
                    obs: Observation {
                        interfaces: vec![core_disc::Interface {
                            mac: Some(mac),
                            ips: vec![ip],
                        }],
                        ..Default::default()
                    },
                });
                next_neighbour_id -= 1;
            }
        }
        for i in ids.remove(&a.id).unwrap_or_default() {
            match i.kind.as_str() {
                "mac" => k.macs.extend(i.value.parse::<Mac>().ok()),
                "ip" => k.ips.extend(i.value.parse::<std::net::IpAddr>().ok()),
                "cloud" => k.cloud_ids.push(i.value),
                _ => {}
            }
        }
        names.insert(a.id, a.name);
        known.push(k);
    }
    let dismissals = tx
        .dismissals()
        .await?
        .into_iter()
        .map(|d| (d.key.clone(), d))
        .collect();
    let external = tx.external_sources().await?.into_iter().collect();
    Ok(Inputs {
        seen,
        known,
        names,
        exposures,
        external,
        dismissals,
    })
}

impl Inputs {
    fn reconcile(&self, app: &App) -> Reconciliation {
        let dismissed: BTreeSet<String> = self.dismissals.keys().cloned().collect();
        core_disc::reconcile(
            &self.seen,
            &self.known,
            &dismissed,
            app.now(),
            app.config.ghost_after,
        )
    }

    /// Assets an external source reached on open ports that are not
    /// recorded as internet-facing, by name.
    fn exposure_mismatches(&self, r: &Reconciliation) -> Vec<ExposureMismatchOut> {
        let by_id: BTreeMap<i64, &Seen> = self.seen.iter().map(|s| (s.id, s)).collect();
        let mut out: BTreeMap<i64, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for m in &r.matched {
            let s = by_id[&m.observation];
            if !self.external.contains(&s.source) || s.obs.ports.is_empty() {
                continue;
            }
            if self.exposures.get(&m.asset).map(String::as_str) == Some("internet-facing") {
                continue;
            }
            let e = out.entry(m.asset).or_default();
            e.0.extend(
                s.obs
                    .ports
                    .iter()
                    .map(|p| format!("{}/{}", p.port, p.proto)),
            );
            e.1.insert(s.source.clone());
        }
        let mut list: Vec<ExposureMismatchOut> = out
            .into_iter()
            .map(|(id, (ports, sources))| ExposureMismatchOut {
                asset: self.name(id),
                recorded: self.exposures.get(&id).cloned().unwrap_or_default(),
                suggested: "internet-facing".into(),
                ports: ports.into_iter().collect(),
                sources: sources.into_iter().collect(),
            })
            .collect();
        list.sort_by(|a, b| a.asset.cmp(&b.asset));
        list
    }

    fn name(&self, id: i64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }
}

fn shadow_out(s: &Shadow, dismissed: Option<&DismissalRow>) -> ShadowOut {
    ShadowOut {
        key: s.key.clone(),
        macs: s.macs.iter().map(Mac::to_string).collect(),
        ips: s.ips.iter().map(ToString::to_string).collect(),
        host_names: s.host_names.clone(),
        cloud_ids: s.cloud_ids.clone(),
        ports: s
            .ports
            .iter()
            .map(|p| PortOut {
                proto: p.proto.clone(),
                port: p.port,
                service: p.service.clone(),
            })
            .collect(),
        os_guess: s.os_guess.clone(),
        sources: s.sources.clone(),
        first_seen: fmt_ts(s.first_seen),
        last_seen: fmt_ts(s.last_seen),
        dismissed: dismissed.map(|d| {
            format!(
                "{} (by {} at {})",
                d.reason,
                d.dismissed_by,
                fmt_ts(d.dismissed_at)
            )
        }),
    }
}

/// A source name as given: at most 100 characters, no control characters.
fn source_name(kind: SourceKind, given: Option<&str>) -> Result<String, AppError> {
    let s = given.map(str::trim).filter(|s| !s.is_empty());
    let name = match s {
        Some(s) if s.starts_with(&format!("{kind}:")) => s.to_string(),
        Some(s) => format!("{kind}:{s}"),
        None => kind.to_string(),
    };
    if name.len() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "source: at most 100 characters, no control characters",
        ));
    }
    Ok(name)
}

impl App {
    /// Imports one discovery file of `kind` as source `source` (replacing
    /// that source's earlier observations). `file` names the file in
    /// errors. A file that does not parse is refused whole, naming the
    /// position; nothing is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_discovery(
        &self,
        caller: &Caller,
        kind: SourceKind,
        source: Option<&str>,
        external: bool,
        file: &str,
        text: &str,
        ctx: &RequestCtx,
    ) -> Result<DiscoveryImportOut, AppError> {
        self.require(caller, Action::ImportAssets, ctx).await?;
        let source = source_name(kind, source)?;
        let observations =
            core_disc::parse(kind, text).map_err(|e| AppError::invalid(format!("{file}: {e}")))?;
        let tx = self.change(caller, Action::ImportAssets, ctx).await?;
        self.store_discovery(tx, kind, source, external, file, observations)
            .await
    }

    /// Stores parsed observations as `source`'s current view, in `tx`, and
    /// raises what is new (the body of every import, by a person or a scan).
    async fn store_discovery(
        &self,
        mut tx: crate::change::Change<'_>,
        kind: SourceKind,
        source: String,
        external: bool,
        file: &str,
        observations: Vec<Observation>,
    ) -> Result<DiscoveryImportOut, AppError> {
        let now = self.now();
        let rows: Vec<(jiff::Timestamp, String)> = observations
            .iter()
            .map(|o| {
                let at = o.seen_at.unwrap_or(now).min(now);
                (
                    at,
                    serde_json::to_string(o).expect("observations serialize"),
                )
            })
            .collect();
        let imported_by = tx.actor().to_string();
        tx.replace_observations(
            &NewDiscoveryImport {
                source: source.clone(),
                kind: kind.to_string(),
                external,
                imported_at: now,
                imported_by,
            },
            &rows,
        )
        .await?;
        let inputs = inputs(&mut tx).await?;
        let r = inputs.reconcile(self);
        let by_id: BTreeMap<i64, &Seen> = inputs.seen.iter().map(|s| (s.id, s)).collect();
        let mut sightings = Vec::new();
        let mut matched = 0u64;
        for m in &r.matched {
            let s = by_id[&m.observation];
            if s.source == source {
                matched += 1;
            }
            sightings.push((m.asset, s.at, s.source.clone(), m.rule.as_str().to_string()));
        }
        tx.record_sightings(&sightings).await?;
        tx.audit(
            "discovery.import",
            &format!("discovery:{source}"),
            json!({"source": source, "kind": kind.as_str(), "external": external,
                   "file": file, "observations": observations.len(), "matched": matched}),
        )
        .await?;
        let mut new_shadows = Vec::new();
        for s in &r.shadows {
            if tx.note_once(&s.key, "shadow_found", now).await? {
                let out = shadow_out(s, None);
                tx.audit(
                    "asset.shadow_found",
                    &format!("shadow:{}", s.key),
                    serde_json::to_value(&out).unwrap_or_default(),
                )
                .await?;
                new_shadows.push(s.key.clone());
            }
        }
        for g in &r.ghosts {
            let name = inputs.name(g.asset);
            if tx.note_once(&format!("asset:{name}"), "ghost", now).await? {
                tx.audit(
                    "asset.ghost",
                    &format!("asset:{name}"),
                    json!({"asset": name, "last_evidence": fmt_ts(g.last_evidence),
                           "threshold_hours": self.config.ghost_after.as_hours()}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(DiscoveryImportOut {
            source,
            kind: kind.to_string(),
            external,
            observations: observations.len() as u64,
            matched,
            new_shadows,
            shadows: r.shadows.len() as u64,
        })
    }

    /// Shadow candidates (not dismissed) and ghost assets (by name) as of
    /// now, for the coverage report (its caller is authorised already).
    pub(crate) async fn discovery_counts(&self) -> Result<(u64, Vec<String>), AppError> {
        let mut tx = self.store.read().await?;
        let inputs = inputs(&mut tx).await?;
        drop(tx);
        let r = inputs.reconcile(self);
        Ok((
            r.shadows.len() as u64,
            r.ghosts.iter().map(|g| inputs.name(g.asset)).collect(),
        ))
    }

    /// The reconciliation as of now.
    pub async fn discovery(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<DiscoveryOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        let inputs = inputs(&mut tx).await?;
        drop(tx);
        let r = inputs.reconcile(self);
        let by_id: BTreeMap<i64, &Seen> = inputs.seen.iter().map(|s| (s.id, s)).collect();
        Ok(DiscoveryOut {
            exposure: inputs.exposure_mismatches(&r),
            shadows: r.shadows.iter().map(|s| shadow_out(s, None)).collect(),
            dismissed: r
                .dismissed
                .iter()
                .map(|s| shadow_out(s, inputs.dismissals.get(&s.key)))
                .collect(),
            ghosts: r
                .ghosts
                .iter()
                .map(|g| GhostOut {
                    asset: inputs.name(g.asset),
                    last_evidence: fmt_ts(g.last_evidence),
                })
                .collect(),
            duplicates: r
                .duplicates
                .iter()
                .map(|d| DuplicateOut {
                    assets: d.assets.iter().map(|a| inputs.name(*a)).collect(),
                    by: d.by.clone(),
                })
                .collect(),
            conflicts: r
                .conflicts
                .iter()
                .map(|c| ConflictOut {
                    ip: c.ip.to_string(),
                    macs: c.macs.iter().map(Mac::to_string).collect(),
                    sources: c.sources.clone(),
                })
                .collect(),
            matched: r
                .matched
                .iter()
                .map(|m| {
                    let s = by_id[&m.observation];
                    MatchOut {
                        source: s.source.clone(),
                        asset: inputs.name(m.asset),
                        rule: m.rule.as_str().to_string(),
                        ips: s.obs.ips().map(|i| i.to_string()).collect(),
                    }
                })
                .collect(),
        })
    }

    /// Adopts shadow candidate `a.key` as an agentless asset; its name.
    pub async fn adopt_shadow(
        &self,
        caller: &Caller,
        a: &AdoptShadow,
        ctx: &RequestCtx,
    ) -> Result<String, AppError> {
        self.require(caller, Action::ImportAssets, ctx).await?;
        let patch = AssetPatch {
            kind: Some(a.kind.clone().unwrap_or_else(|| "server".into())),
            owner: a.owner.clone(),
            business_impact: a.business_impact.clone(),
            exposure: a.exposure.clone(),
            environment: a.environment.clone(),
            tags: Some(a.tags.clone()),
        };
        let attrs = apply_patch(AssetAttrs::default(), &patch)?;
        let mut tx = self.change(caller, Action::ImportAssets, ctx).await?;
        let inputs = inputs(&mut tx).await?;
        let r = inputs.reconcile(self);
        let Some(s) = r.shadows.iter().find(|s| s.key == a.key) else {
            return Err(AppError::not_found(format!(
                "no shadow candidate {:?} (see `patchbay discovery list`)",
                a.key
            )));
        };
        let default_name = s.host_names.first().cloned().unwrap_or_else(|| {
            format!(
                "shadow-{}",
                a.key
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect::<String>()
            )
        });
        let name = AssetName::parse(a.name.as_deref().unwrap_or(&default_name))
            .map_err(|e| AppError::invalid(format!("name: {e}")))?;
        if tx.asset_by_name(name.as_str()).await?.is_some() {
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                format!(
                    "an asset named {} exists; give another --name",
                    name.as_str()
                ),
            ));
        }
        let now = self.now();
        let id = tx.insert_asset(name.as_str(), &attrs, false, now).await?;
        let source = format!("adopted:{}", s.key);
        let mut idents: Vec<IdentifierRow> = Vec::new();
        let mut push = |kind: &str, value: String| {
            idents.push(IdentifierRow {
                asset_id: id,
                kind: kind.to_string(),
                value,
                source: source.clone(),
                recorded_at: now,
            })
        };
        for m in &s.macs {
            push("mac", m.to_string());
        }
        for ip in &s.ips {
            push("ip", ip.to_string());
        }
        for c in &s.cloud_ids {
            push("cloud", c.clone());
        }
        tx.add_identifiers(&idents).await?;
        tx.record_sightings(&[(id, s.last_seen, s.sources.join(","), "adopted".into())])
            .await?;
        tx.audit(
            "discovery.adopt",
            &format!("asset:{}", name.as_str()),
            json!({"key": s.key, "asset": name.as_str(), "kind": attrs.kind, "owner": attrs.owner,
                   "macs": s.macs.iter().map(Mac::to_string).collect::<Vec<_>>(),
                   "ips": s.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                   "cloud_ids": s.cloud_ids}),
        )
        .await?;
        tx.commit().await?;
        Ok(name.as_str().to_string())
    }

    /// Dismisses shadow candidate `d.key`, with the reason.
    pub async fn dismiss_shadow(
        &self,
        caller: &Caller,
        d: &DismissShadow,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let reason = d.reason.trim();
        if reason.is_empty() || reason.len() > 500 || reason.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "reason: required, at most 500 characters, no control characters",
            ));
        }
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let inputs = inputs(&mut tx).await?;
        let r = inputs.reconcile(self);
        if !r.shadows.iter().any(|s| s.key == d.key) {
            return Err(AppError::not_found(format!(
                "no shadow candidate {:?} (see `patchbay discovery list`)",
                d.key
            )));
        }
        let actor = tx.actor().to_string();
        tx.dismiss(&DismissalRow {
            key: d.key.clone(),
            reason: reason.to_string(),
            dismissed_by: actor,
            dismissed_at: self.now(),
        })
        .await?;
        tx.audit(
            "discovery.dismiss",
            &format!("shadow:{}", d.key),
            json!({"key": d.key, "reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Accepts the exposure an external scan found for `a.asset`: its
    /// exposure becomes `internet-facing` (the risk model then ranks its
    /// findings accordingly), audited with the ports and scans as the reason.
    pub async fn accept_exposure(
        &self,
        caller: &Caller,
        a: &AcceptExposure,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let inputs = inputs(&mut tx).await?;
        let r = inputs.reconcile(self);
        let name = a.asset.to_ascii_lowercase();
        let Some(m) = inputs
            .exposure_mismatches(&r)
            .into_iter()
            .find(|m| m.asset == name)
        else {
            return Err(AppError::not_found(format!(
                "no exposure evidence for {:?}: no external scan reached an open port on it \
                 (or it is internet-facing already)",
                a.asset
            )));
        };
        let row = tx
            .asset_by_name(&name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset named {:?}", a.asset)))?;
        let mut attrs = row.attrs.clone();
        attrs.exposure = m.suggested.clone();
        tx.update_asset_attrs(row.id, &attrs, self.now()).await?;
        tx.audit(
            "discovery.exposure_accept",
            &format!("asset:{name}"),
            json!({"asset": name, "before": m.recorded, "after": m.suggested,
                   "ports": m.ports, "sources": m.sources}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The discovery-scan duty: runs each configured scan that is due
    /// (`nmap` over its ranges, never by default: only `[[discovery_scan]]`
    /// tables configure one) in the background and imports its XML as the
    /// source `nmap:NAME` (`system:discovery-scan`). Returns how many it
    /// started (0 while a previous run is still going).
    pub async fn start_discovery_scans(&self) -> usize {
        if self.config.discovery_scans.is_empty() {
            return 0;
        }
        let mut slot = self.discovery_scan_task.lock().await;
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return 0;
        }
        let app = self.clone();
        *slot = Some(tokio::spawn(async move {
            app.run_discovery_scans().await;
        }));
        1
    }

    /// Waits for the background scans, if running (tests, shutdown).
    pub async fn wait_discovery_scans(&self) {
        let h = self.discovery_scan_task.lock().await.take();
        if let Some(h) = h {
            let _ = h.await;
        }
    }

    async fn run_discovery_scans(&self) {
        for scan in &self.config.discovery_scans {
            let source = format!("nmap:{}", scan.name);
            let last = match self.store.read().await {
                Ok(mut tx) => tx.last_discovery_import(&source).await.ok().flatten(),
                Err(_) => None,
            };
            if last.is_some_and(|t| self.now().duration_since(t) < scan.every) {
                continue;
            }
            let result = run_nmap(scan).await;
            let outcome = match result {
                Ok(xml) => match core_disc::parse(SourceKind::Nmap, &xml) {
                    Ok(obs) => match self
                        .change_by_system(crate::system::SystemActor::DiscoveryScan)
                        .await
                    {
                        Ok(tx) => self
                            .store_discovery(
                                tx,
                                SourceKind::Nmap,
                                source.clone(),
                                scan.external,
                                &format!("nmap scan {}", scan.name),
                                obs,
                            )
                            .await
                            .map(|_| ()),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(AppError::invalid(format!("the scan's XML: {e}"))),
                },
                Err(e) => Err(AppError::invalid(e)),
            };
            if let Err(e) = outcome {
                tracing::warn!(scan = %scan.name, error = %e.message, "discovery scan failed");
                if let Ok(mut tx) = self
                    .change_by_system(crate::system::SystemActor::DiscoveryScan)
                    .await
                {
                    let recorded = tx
                        .audit(
                            "discovery.scan_failed",
                            &format!("discovery:{source}"),
                            json!({"scan": scan.name, "error": e.message}),
                        )
                        .await;
                    if recorded.is_ok() {
                        let _ = tx.commit().await;
                    }
                }
            }
        }
    }
}

/// A scan the discovery-scan duty runs (`[[discovery_scan]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanConfig {
    /// Its name: the source is `nmap:NAME`.
    pub name: String,
    /// Addresses and CIDR ranges (checked: never an nmap option).
    pub ranges: Vec<String>,
    /// nmap's `-p` port list (digits, `,` and `-`), or its default ports.
    pub ports: Option<String>,
    /// How often.
    pub every: jiff::SignedDuration,
    /// Taken from outside the network (exposure evidence).
    pub external: bool,
    /// The nmap program.
    pub nmap: std::path::PathBuf,
    /// The longest a scan may run; it is killed after.
    pub timeout: std::time::Duration,
}

/// Checks a scan's name, ranges and ports; the error names what.
pub fn check_scan(s: &ScanConfig) -> Result<(), String> {
    if s.name.is_empty()
        || s.name.len() > 64
        || !s
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("name: expected 1–64 letters, digits, '-' or '_'".into());
    }
    if s.ranges.is_empty() {
        return Err("ranges: at least one address or CIDR range".into());
    }
    for r in &s.ranges {
        let (ip, prefix) = match r.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (r.as_str(), None),
        };
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("ranges: {r:?} is not an address or CIDR range"))?;
        if let Some(p) = prefix {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            match p.parse::<u8>() {
                Ok(n) if n <= max => {}
                _ => return Err(format!("ranges: {r:?}: prefix must be 0–{max}")),
            }
        }
    }
    if let Some(p) = &s.ports
        && (p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-'))
    {
        return Err(format!(
            "ports: {p:?}: digits, ',' and '-' only (e.g. 22,80,8000-8100)"
        ));
    }
    if s.every < jiff::SignedDuration::from_mins(1) {
        return Err("every: at least 1m".into());
    }
    Ok(())
}

/// Runs nmap for `scan` (argv, never a shell) and returns its XML.
async fn run_nmap(scan: &ScanConfig) -> Result<String, String> {
    check_scan(scan)?;
    let mut cmd = tokio::process::Command::new(&scan.nmap);
    cmd.args(["-oX", "-", "-n", "--noninteractive"]);
    if let Some(p) = &scan.ports {
        cmd.args(["-p", p]);
    }
    cmd.arg("--").args(&scan.ranges);
    cmd.kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(scan.timeout, cmd.output())
        .await
        .map_err(|_| format!("nmap ran longer than {:?}; killed", scan.timeout))?
        .map_err(|e| format!("running {}: {e}", scan.nmap.display()))?;
    if !out.status.success() {
        return Err(format!(
            "nmap exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(500)
                .collect::<String>()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("nmap's output is not UTF-8: {e}"))
}
