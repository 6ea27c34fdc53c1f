//! Configuration drift per policy group (issue 18, item 4; ADR 0019): each
//! group's baseline (modal, or a golden host) and each member's difference
//! from it, read in one snapshot; the per-group totals the `/metrics` scrape
//! reports; and the per-host pins a "converge" deployment gets.
//!
//! The rules themselves (majority, tie-break, kinds of difference, what
//! converging installs) are `patchbay_core::drift`; this module reads the
//! inventories and carries the wire lines.

use crate::{App, AppError, Caller, RequestCtx};
use patchbay_core::auth::Action;
use patchbay_core::drift::{self, Difference, Host, Pkg};
use patchbay_core::job::PackagePin;
use patchbay_core::policy::Policy;
use patchbay_proto::api::{
    BaselinePackageOut, DriftDifferenceOut, DriftOut, GroupDriftOut, HostDriftOut, PreviewSkip,
};
use patchbay_store::{AssetRow, Tx};
use patchbay_version::Scheme;
use std::collections::BTreeMap;

/// One group's drift as computed: the wire line and, per member, the core
/// differences (for converging).
pub(crate) struct Computed {
    pub(crate) out: GroupDriftOut,
    pub(crate) scheme: Scheme,
    pub(crate) hosts: Vec<(String, Vec<Difference>)>,
}

fn format_of(a: &AssetRow) -> Option<(&'static str, Scheme)> {
    match a.package_format.as_deref() {
        Some("rpm") => Some(("rpm", Scheme::Rpm)),
        Some("apk") => Some(("apk", Scheme::Apk)),
        Some("other") => None,
        _ => Some(("deb", Scheme::Deb)),
    }
}

/// The asset row of golden host `g`: it must exist and have an agent.
fn golden_asset<'a>(assets: &'a [AssetRow], g: &str) -> Result<&'a AssetRow, AppError> {
    let a = assets
        .iter()
        .find(|a| a.name == g)
        .ok_or_else(|| AppError::not_found(format!("golden: no asset named {g:?}")))?;
    if !a.has_agent {
        return Err(AppError::invalid(format!(
            "golden: {g} has no agent, so no inventory to be a baseline"
        )));
    }
    Ok(a)
}

/// The drift of `groups` (names of the policy), each over its members among
/// `assets`; the baseline is `golden`'s packages when given, else the
/// group's pinned golden host (`PUT /api/v1/drift/{group}/golden`), else
/// modal. A pinned golden host that is gone or lost its agent falls back to
/// the modal baseline (the answer says which it used).
pub(crate) async fn compute(
    tx: &mut Box<dyn Tx>,
    policy: &Policy,
    assets: &[AssetRow],
    groups: &[String],
    golden: Option<&str>,
) -> Result<Vec<Computed>, AppError> {
    let asked = golden.map(|g| golden_asset(assets, g)).transpose()?;
    let pinned: BTreeMap<String, &AssetRow> = tx
        .golden_hosts()
        .await?
        .into_iter()
        .filter_map(|r| Some((r.group, golden_asset(assets, &r.asset).ok()?)))
        .collect();
    let members: Vec<(&AssetRow, Vec<String>)> = assets
        .iter()
        .map(|a| (a, crate::ranking::groups_of(policy, a)))
        .collect();
    // Read the packages of every asset concerned, once.
    let mut ids: Vec<i64> = members
        .iter()
        .filter(|(a, gs)| a.has_agent && gs.iter().any(|g| groups.contains(g)))
        .map(|(a, _)| a.id)
        .chain(asked.map(|a| a.id))
        .chain(pinned.values().map(|a| a.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut pkgs: BTreeMap<i64, Vec<Pkg>> = BTreeMap::new();
    for (id, p) in tx.packages_of_assets(&ids).await? {
        pkgs.entry(id).or_default().push(Pkg {
            name: p.name,
            arch: p.arch,
            version: p.version,
        });
    }
    let host_of = |a: &AssetRow| Host {
        asset: a.name.clone(),
        packages: pkgs.get(&a.id).cloned().unwrap_or_default(),
    };
    let mut out = Vec::new();
    for g in groups {
        let mut skipped = Vec::new();
        let mut in_group: Vec<&AssetRow> = Vec::new();
        for (a, gs) in &members {
            if !gs.contains(g) {
                continue;
            }
            if !a.has_agent {
                skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: "no agent (imported asset): no inventory to compare".into(),
                });
            } else {
                in_group.push(a);
            }
        }
        // The group's most common package format; ties: deb, rpm, apk.
        let mut by_format: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &in_group {
            if let Some((f, _)) = format_of(a) {
                *by_format.entry(f).or_default() += 1;
            }
        }
        let (format, scheme) = [
            ("deb", Scheme::Deb),
            ("rpm", Scheme::Rpm),
            ("apk", Scheme::Apk),
        ]
        .into_iter()
        .max_by_key(|(f, _)| {
            // max_by_key keeps the last maximum: rank earlier formats higher on ties.
            let rank = match *f {
                "deb" => 2,
                "rpm" => 1,
                _ => 0,
            };
            (by_format.get(f).copied().unwrap_or(0), rank)
        })
        .unwrap_or(("deb", Scheme::Deb));
        let mut hosts = Vec::new();
        for a in in_group {
            match format_of(a) {
                Some((f, _)) if f == format => hosts.push(host_of(a)),
                other => skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: format!(
                        "package format {} differs from the group's {format}",
                        other.map(|(f, _)| f).unwrap_or("other")
                    ),
                }),
            }
        }
        let golden_row = asked.or_else(|| pinned.get(g).copied());
        let baseline = match golden_row {
            Some(gr) => drift::golden(scheme, &host_of(gr)),
            None => drift::modal(scheme, &hosts),
        };
        let mut lines = Vec::new();
        let mut diffs = Vec::new();
        let mut drifted = 0;
        for h in &hosts {
            let d = drift::diff(scheme, &baseline, h);
            let c = drift::Counts::of(&d);
            drifted += c.total();
            lines.push(HostDriftOut {
                asset: h.asset.clone(),
                newer: c.newer,
                older: c.older,
                differs: c.differs,
                missing: c.missing,
                extra: c.extra,
                differences: d
                    .iter()
                    .map(|d| DriftDifferenceOut {
                        name: d.name.clone(),
                        arch: d.arch.clone(),
                        kind: d.kind.as_str().into(),
                        baseline: d.baseline.clone(),
                        installed: d.installed.clone(),
                    })
                    .collect(),
            });
            diffs.push((h.asset.clone(), d));
        }
        out.push(Computed {
            out: GroupDriftOut {
                group: g.clone(),
                baseline_source: match &baseline.source {
                    drift::Source::Modal => "modal".into(),
                    drift::Source::Golden { .. } => "golden".into(),
                },
                golden: golden_row.map(|a| a.name.clone()),
                format: format.into(),
                hosts: baseline.hosts.max(hosts.len()),
                baseline: baseline
                    .entries
                    .iter()
                    .map(|e| BaselinePackageOut {
                        name: e.name.clone(),
                        arch: e.arch.clone(),
                        version: e.version.clone(),
                        hosts_with: e.hosts_with,
                        hosts_at: e.hosts_at,
                    })
                    .collect(),
                drifted_packages: drifted,
                assets: lines,
                skipped,
            },
            scheme,
            hosts: diffs,
        });
    }
    Ok(out)
}

/// Per host of `group`: the exact pins that bring its `older` packages to
/// the baseline (`patchbay_core::drift::converge_pins`); hosts with nothing
/// to install are absent.
pub(crate) async fn converge_pins(
    tx: &mut Box<dyn Tx>,
    policy: &Policy,
    group: &str,
) -> Result<BTreeMap<String, Vec<PackagePin>>, AppError> {
    if !policy.groups.iter().any(|g| g.name == group) {
        return Err(AppError::invalid(format!(
            "converge: no policy group named {group:?}"
        )));
    }
    let assets = tx.list_assets().await?;
    let computed = compute(tx, policy, &assets, &[group.to_owned()], None).await?;
    let mut out = BTreeMap::new();
    for c in computed {
        for (asset, d) in c.hosts {
            let pins: Vec<PackagePin> = drift::converge_pins(c.scheme, &d)
                .into_iter()
                .map(|(name, version)| PackagePin { name, version })
                .collect();
            if !pins.is_empty() {
                out.insert(asset, pins);
            }
        }
    }
    Ok(out)
}

impl App {
    /// Pins `asset` as `group`'s golden host (its packages become the
    /// group's drift baseline, for `GET /api/v1/drift`, the metric and
    /// converging), or unpins it (`None`: back to the modal baseline).
    pub async fn set_golden_host(
        &self,
        caller: &Caller,
        group: &str,
        asset: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<Option<String>, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let (policy, _) = crate::snapshot::policy_in(&mut tx).await?;
        if !policy.groups.iter().any(|g| g.name == group) {
            return Err(AppError::not_found(format!(
                "group: no policy group named {group:?}"
            )));
        }
        match asset {
            Some(a) => {
                let assets = tx.list_assets().await?;
                golden_asset(&assets, a)?;
                tx.set_golden_host(&patchbay_store::GoldenRow {
                    group: group.to_owned(),
                    asset: a.to_owned(),
                    set_by: caller.actor(),
                    set_at: self.now(),
                })
                .await?;
                tx.audit(
                    "drift.golden_set",
                    &format!("group:{group}"),
                    serde_json::json!({"group": group, "asset": a}),
                )
                .await?;
            }
            None => {
                if !tx.clear_golden_host(group).await? {
                    return Err(AppError::not_found(format!(
                        "group: {group} has no golden host pinned"
                    )));
                }
                tx.audit(
                    "drift.golden_cleared",
                    &format!("group:{group}"),
                    serde_json::json!({"group": group}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(asset.map(str::to_owned))
    }

    /// Drift per policy group (`target`: a group, or an asset — its groups,
    /// with only its own line —, or every group), against the modal baseline
    /// or `golden`'s packages.
    pub async fn drift(
        &self,
        caller: &Caller,
        target: Option<&str>,
        golden: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<DriftOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let assets = snap.assets().await?;
        let (groups, only): (Vec<String>, Option<&str>) = match target {
            None => (policy.groups.iter().map(|g| g.name.clone()).collect(), None),
            Some(t) if policy.groups.iter().any(|g| g.name == t) => (vec![t.to_owned()], None),
            Some(t) => {
                let a = assets.iter().find(|a| a.name == t).ok_or_else(|| {
                    AppError::not_found(format!("target: no policy group or asset named {t:?}"))
                })?;
                (crate::ranking::groups_of(&policy, a), Some(t))
            }
        };
        let computed = compute(snap.tx(), &policy, &assets, &groups, golden).await?;
        Ok(DriftOut {
            groups: computed
                .into_iter()
                .map(|mut c| {
                    if let Some(a) = only {
                        c.out.assets.retain(|h| h.asset == a);
                        c.out.skipped.retain(|s| s.asset == a);
                    }
                    c.out
                })
                .collect(),
        })
    }

    /// Drifted packages per policy group against the modal baseline, for the
    /// `/metrics` scrape (a system read: the endpoint is unauthenticated and
    /// says only counts).
    pub async fn drift_counts(&self) -> Result<Vec<(String, usize)>, AppError> {
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let assets = snap.assets().await?;
        let groups: Vec<String> = policy.groups.iter().map(|g| g.name.clone()).collect();
        let computed = compute(snap.tx(), &policy, &assets, &groups, None).await?;
        Ok(computed
            .into_iter()
            .map(|c| (c.out.group, c.out.drifted_packages))
            .collect())
    }
}

/// Most differing packages a fidelity record lists (the count is exact).
const MAX_LISTED: usize = 100;

/// For each ring of `spec` that stands for a production group: its hosts
/// (`planned`, by ring name) compared with that group's modal baseline, at
/// `now`. Read through the change's transaction `tx`.
pub(crate) async fn staging_fidelity(
    tx: &mut Box<dyn Tx>,
    spec: &patchbay_proto::api::DeploymentSpec,
    planned: &[(patchbay_core::rollout::RingSpec, Vec<String>)],
    now: jiff::Timestamp,
) -> Result<Vec<patchbay_proto::api::RingFidelityOut>, AppError> {
    let staging: Vec<&patchbay_proto::api::RingIn> = spec
        .rings
        .iter()
        .filter(|r| r.stands_for.is_some())
        .collect();
    if staging.is_empty() {
        return Ok(vec![]);
    }
    let (policy, _) = crate::snapshot::policy_in(tx).await?;
    let assets = tx.list_assets().await?;
    let mut out = Vec::new();
    for r in staging {
        let group = r.stands_for.as_deref().unwrap_or_default();
        if !policy.groups.iter().any(|g| g.name == group) {
            return Err(AppError::invalid(format!(
                "rings: ring {}: stands_for: no policy group named {group:?}",
                r.name
            )));
        }
        let Some(c) = compute(tx, &policy, &assets, &[group.to_owned()], None)
            .await?
            .into_iter()
            .next()
        else {
            continue;
        };
        let baseline = drift::Baseline {
            source: drift::Source::Modal,
            hosts: c.out.hosts,
            entries: c
                .out
                .baseline
                .iter()
                .map(|e| drift::Entry {
                    name: e.name.clone(),
                    arch: e.arch.clone(),
                    version: e.version.clone(),
                    hosts_with: e.hosts_with,
                    hosts_at: e.hosts_at,
                })
                .collect(),
        };
        let hosts: Vec<&String> = planned
            .iter()
            .filter(|(s, _)| s.name == r.name)
            .flat_map(|(_, h)| h)
            .collect();
        let ids: Vec<i64> = assets
            .iter()
            .filter(|a| hosts.contains(&&a.name))
            .map(|a| a.id)
            .collect();
        let mut pkgs: BTreeMap<i64, Vec<Pkg>> = BTreeMap::new();
        for (id, p) in tx.packages_of_assets(&ids).await? {
            pkgs.entry(id).or_default().push(Pkg {
                name: p.name,
                arch: p.arch,
                version: p.version,
            });
        }
        // (name, arch) → the kinds seen on the ring's hosts.
        let mut differing: BTreeMap<(String, String), std::collections::BTreeSet<&str>> =
            BTreeMap::new();
        for a in assets.iter().filter(|a| ids.contains(&a.id)) {
            let h = Host {
                asset: a.name.clone(),
                packages: pkgs.remove(&a.id).unwrap_or_default(),
            };
            for d in drift::diff(c.scheme, &baseline, &h) {
                differing
                    .entry((d.name, d.arch))
                    .or_default()
                    .insert(d.kind.as_str());
            }
        }
        let n = differing.len();
        let tolerance = r.drift_tolerance.unwrap_or(0);
        let beyond = n > tolerance as usize;
        out.push(patchbay_proto::api::RingFidelityOut {
            ring: r.name.clone(),
            stands_for: group.to_owned(),
            differing_packages: n,
            tolerance,
            beyond_tolerance: beyond,
            note: beyond.then(|| format!("staging differs from production: {n} packages")),
            packages: differing
                .into_iter()
                .take(MAX_LISTED)
                .map(|((name, arch), kinds)| {
                    format!(
                        "{name}:{arch} ({})",
                        kinds.into_iter().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect(),
            compared_at: crate::fmt_ts(now),
        });
    }
    Ok(out)
}
