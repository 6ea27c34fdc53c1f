//! The expected impact of a deployment, per owner and per asset (issue 18,
//! item 8; ADR 0021; `docs/impact-notices.md`).
//!
//! Pure: the service layer gathers, per host, what the deployment plans (its
//! pins, its first maintenance-window slot), what a rehearsal found if one
//! ran, and what the host's agent last reported (a reboot already pending,
//! services already running replaced libraries); [`impact`] turns that into
//! what each owner is told. Nothing here guesses and presents it as fact:
//!
//! - **services**: known only from a rehearsal in an overlay (the services
//!   the packages' scripts asked `policy-rc.d` to restart); otherwise
//!   `known: false`, "unknown until rehearsed" (a simulation runs no script);
//! - **reboot**: needed when a kernel or microcode package changes
//!   ([`is_kernel_package`]; from the rehearsal's package diff when there is
//!   one, else from the plan) or the host already reports a reboot pending;
//!   the `source` says which;
//! - **interruption**: always an *estimate* with its basis: each known
//!   service restart counts [`Estimates::service_restart`], a reboot the
//!   host's measured reboot time if one is known, else
//!   [`Estimates::reboot`]; unknown services count nothing and the basis
//!   says so.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The owner label of hosts without an owner (their notices go to the
/// contact named [`UNOWNED_CONTACT`], if there is one).
pub const UNOWNED: &str = "(unowned)";
/// The contact that receives the notices of hosts without an owner.
pub const UNOWNED_CONTACT: &str = "unowned";

/// The documented estimates of an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimates {
    /// One service restart.
    pub service_restart: SignedDuration,
    /// One reboot, when the host's own reboot time is not known.
    pub reboot: SignedDuration,
}

impl Default for Estimates {
    fn default() -> Self {
        Self {
            service_restart: SignedDuration::from_secs(10),
            reboot: SignedDuration::from_mins(5),
        }
    }
}

/// A package change: `from` → `to` (`from` absent: newly installed; `to`
/// absent: removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// Package name.
    pub name: String,
    /// Installed now.
    pub from: Option<String>,
    /// After the change.
    pub to: Option<String>,
}

/// The maintenance-window slot a host's job may start in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotIn {
    /// The window's name (none: the host is covered by no window and may run
    /// any time in the deployment's window).
    pub window: Option<String>,
    /// The window's IANA time zone (none: UTC).
    pub zone: Option<String>,
    /// Jobs may start from …
    pub opens: Timestamp,
    /// … until (exclusive).
    pub closes: Timestamp,
}

/// What a rehearsal of the host found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RehearsalIn {
    /// `overlay` or `simulation`.
    pub mode: String,
    /// Whether it passed.
    pub passed: bool,
    /// The package diff it observed (overlay) or announced (simulation).
    pub changed: Vec<PackageChange>,
    /// The services the packages' scripts asked to restart (overlay only;
    /// `None` when the agent did not report them).
    pub services: Option<Vec<String>>,
}

/// One host of the deployment, as the service layer gathered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIn {
    /// Asset name.
    pub asset: String,
    /// Its owner (empty: none).
    pub owner: String,
    /// Its ring.
    pub ring: String,
    /// The planned changes (pins against the installed versions).
    pub planned: Vec<PackageChange>,
    /// The first slot its job may start in.
    pub slot: SlotIn,
    /// The latest rehearsal's findings, if one reported.
    pub rehearsal: Option<RehearsalIn>,
    /// The host reports a reboot already pending.
    pub reboot_pending: bool,
    /// The ring reboots hosts that need it (`reboot = if-required`).
    pub ring_reboots: bool,
    /// The host's measured reboot time, if known.
    pub measured_reboot: Option<SignedDuration>,
}

/// The window, in UTC and in its own zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowOut {
    /// The window's name (none: any time in the deployment's window).
    pub name: Option<String>,
    /// The zone the local times are in.
    pub zone: String,
    /// Jobs start from (UTC, RFC 3339).
    pub opens_utc: String,
    /// … until (UTC, RFC 3339).
    pub closes_utc: String,
    /// Jobs start from (local, RFC 9557 with the zone).
    pub opens_local: String,
    /// … until (local).
    pub closes_local: String,
}

/// Which services will restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesOut {
    /// Whether they are known (a rehearsal in an overlay reported them).
    pub known: bool,
    /// The services (empty when unknown, or known to be none).
    pub names: Vec<String>,
    /// Where this comes from.
    pub source: String,
}

/// Whether a reboot is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootOut {
    /// Needed.
    pub needed: bool,
    /// Patchbay reboots the host in its window (the ring's policy); false:
    /// the reboot is left to its owner.
    pub by_patchbay: bool,
    /// Why (the kernel package, the pending flag) or why not.
    pub source: String,
}

/// The expected interruption: an estimate, with its basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptionOut {
    /// Seconds (an estimate).
    pub seconds: i64,
    /// Always true: this is an estimate, never a measurement.
    pub estimate: bool,
    /// How it was reached.
    pub basis: String,
}

/// The impact on one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetImpact {
    /// Asset.
    pub asset: String,
    /// Ring.
    pub ring: String,
    /// When its job may start.
    pub window: WindowOut,
    /// The packages that will change.
    pub packages: Vec<PackageChange>,
    /// `rehearsal` (the rehearsal's observed diff) or `plan` (pins against
    /// the installed versions).
    pub packages_source: String,
    /// Services that will restart.
    pub services: ServicesOut,
    /// Reboot.
    pub reboot: RebootOut,
    /// Expected interruption.
    pub interruption: InterruptionOut,
}

/// The impact on one owner's assets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerImpact {
    /// The owner ([`UNOWNED`] for hosts without one).
    pub owner: String,
    /// Whether these are the hosts without owner.
    pub unowned: bool,
    /// The earliest window opening of its hosts (UTC, RFC 3339).
    pub first_window: String,
    /// Its assets, by window opening then name.
    pub assets: Vec<AssetImpact>,
    /// The sum of its assets' estimates (seconds; assets run one after the
    /// other or together, so this is an upper bound per owner).
    pub interruption_seconds: i64,
    /// Hosts that need a reboot.
    pub reboots: usize,
}

impl OwnerImpact {
    /// The earliest window opening.
    pub fn first_opens(&self) -> Option<Timestamp> {
        self.first_window.parse().ok()
    }
}

/// Whether `name` is a kernel, kernel-module or CPU-microcode package
/// (deb, rpm, apk names): changing it needs a reboot to take effect.
pub fn is_kernel_package(name: &str) -> bool {
    const EXACT: [&str; 10] = [
        "kernel",
        "kernel-core",
        "kernel-modules",
        "kernel-modules-core",
        "kernel-default",
        "linux-lts",
        "linux-virt",
        "intel-microcode",
        "amd64-microcode",
        "microcode_ctl",
    ];
    const PREFIX: [&str; 4] = [
        "linux-image-",
        "linux-modules-",
        "kernel-uek",
        "linux-signed-image-",
    ];
    EXACT.contains(&name) || PREFIX.iter().any(|p| name.starts_with(p))
}

fn local(t: Timestamp, zone: &str) -> (String, String) {
    match jiff::tz::TimeZone::get(zone) {
        Ok(tz) => (zone.to_string(), t.to_zoned(tz).to_string()),
        Err(_) => (
            "UTC".into(),
            t.to_zoned(jiff::tz::TimeZone::UTC).to_string(),
        ),
    }
}

fn window_out(s: &SlotIn) -> WindowOut {
    let zone = s.zone.clone().unwrap_or_else(|| "UTC".into());
    let (zone_o, opens_local) = local(s.opens, &zone);
    let (_, closes_local) = local(s.closes, &zone);
    WindowOut {
        name: s.window.clone(),
        zone: zone_o,
        opens_utc: s.opens.to_string(),
        closes_utc: s.closes.to_string(),
        opens_local,
        closes_local,
    }
}

fn human(d: SignedDuration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// The impact on one host.
pub fn asset_impact(h: &HostIn, est: &Estimates) -> AssetImpact {
    let (packages, packages_source) = match &h.rehearsal {
        Some(r) if !r.changed.is_empty() => (r.changed.clone(), "rehearsal"),
        _ => (h.planned.clone(), "plan"),
    };
    let services = match &h.rehearsal {
        Some(r) if r.mode == "overlay" => match &r.services {
            Some(names) => ServicesOut {
                known: true,
                names: names.clone(),
                source: format!(
                    "rehearsal in an overlay: the packages' scripts asked to restart {}",
                    if names.is_empty() {
                        "no service".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            },
            None => ServicesOut {
                known: false,
                names: vec![],
                source: "unknown: the rehearsal's agent did not report service restarts".into(),
            },
        },
        Some(_) => ServicesOut {
            known: false,
            names: vec![],
            source: "unknown until rehearsed in an overlay (a simulation runs no package script)"
                .into(),
        },
        None => ServicesOut {
            known: false,
            names: vec![],
            source: "unknown until rehearsed".into(),
        },
    };
    let kernel: Vec<&str> = packages
        .iter()
        .filter(|p| p.to.is_some() && is_kernel_package(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    let (needed, mut source) = if !kernel.is_empty() {
        (
            true,
            format!(
                "kernel/microcode package {} changes ({packages_source})",
                kernel.join(", ")
            ),
        )
    } else if h.reboot_pending {
        (
            true,
            "the host already reports a reboot pending (agent, last check-in)".to_string(),
        )
    } else {
        (
            false,
            format!("no kernel or microcode package changes ({packages_source})"),
        )
    };
    let by_patchbay = needed && h.ring_reboots;
    if needed && !h.ring_reboots {
        source.push_str("; the ring never reboots: the reboot is left to the owner");
    }
    let mut seconds = 0i64;
    let mut basis = Vec::new();
    if services.known {
        let n = services.names.len() as i64;
        seconds += n * est.service_restart.as_secs();
        basis.push(format!(
            "{n} service restart(s) × {} (default estimate)",
            human(est.service_restart)
        ));
    } else {
        basis.push("service restarts unknown until rehearsed (not counted)".into());
    }
    if by_patchbay {
        match h.measured_reboot {
            Some(d) => {
                seconds += d.as_secs();
                basis.push(format!(
                    "reboot ≈ {} (this host's measured reboot)",
                    human(d)
                ));
            }
            None => {
                seconds += est.reboot.as_secs();
                basis.push(format!(
                    "reboot ≈ {} (default estimate; no measured reboot time)",
                    human(est.reboot)
                ));
            }
        }
    } else if needed {
        basis.push("reboot left to the owner (not counted)".into());
    } else {
        basis.push("no reboot".into());
    }
    AssetImpact {
        asset: h.asset.clone(),
        ring: h.ring.clone(),
        window: window_out(&h.slot),
        packages,
        packages_source: packages_source.into(),
        services,
        reboot: RebootOut {
            needed,
            by_patchbay,
            source,
        },
        interruption: InterruptionOut {
            seconds,
            estimate: true,
            basis: basis.join("; "),
        },
    }
}

/// The impact per owner: owners by name ([`UNOWNED`] last), each owner's
/// assets by window opening, then name.
pub fn impact(hosts: &[HostIn], est: &Estimates) -> Vec<OwnerImpact> {
    let mut by_owner: BTreeMap<(bool, String), Vec<(&HostIn, AssetImpact)>> = BTreeMap::new();
    for h in hosts {
        let owner = h.owner.trim();
        let key = if owner.is_empty() {
            (true, UNOWNED.to_string())
        } else {
            (false, owner.to_string())
        };
        by_owner
            .entry(key)
            .or_default()
            .push((h, asset_impact(h, est)));
    }
    by_owner
        .into_iter()
        .map(|((unowned, owner), mut items)| {
            items.sort_by(|a, b| (a.0.slot.opens, &a.1.asset).cmp(&(b.0.slot.opens, &b.1.asset)));
            let first = items
                .iter()
                .map(|(h, _)| h.slot.opens)
                .min()
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let assets: Vec<AssetImpact> = items.into_iter().map(|(_, a)| a).collect();
            OwnerImpact {
                owner,
                unowned,
                first_window: first.to_string(),
                interruption_seconds: assets.iter().map(|a| a.interruption.seconds).sum(),
                reboots: assets.iter().filter(|a| a.reboot.needed).count(),
                assets,
            }
        })
        .collect()
}

/// Whether an owner's notice is due at `now`: `lead` before its first
/// window opens, or at once when that is sooner.
pub fn notice_due(first_window: Timestamp, now: Timestamp, lead: SignedDuration) -> bool {
    now >= first_window - lead
}

/// The contact an owner's notices go to: the contact of the same name
/// ([`UNOWNED_CONTACT`] for hosts without owner).
pub fn contact_of(owner: &OwnerImpact) -> &str {
    if owner.unowned {
        UNOWNED_CONTACT
    } else {
        &owner.owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn host(asset: &str, owner: &str, planned: &[(&str, &str, &str)]) -> HostIn {
        HostIn {
            asset: asset.into(),
            owner: owner.into(),
            ring: "all".into(),
            planned: planned
                .iter()
                .map(|(n, f, to)| PackageChange {
                    name: n.to_string(),
                    from: Some(f.to_string()),
                    to: Some(to.to_string()),
                })
                .collect(),
            slot: SlotIn {
                window: Some("sat-night".into()),
                zone: Some("Europe/Berlin".into()),
                opens: t("2026-12-12T22:00:00Z"),
                closes: t("2026-12-13T02:00:00Z"),
            },
            rehearsal: None,
            reboot_pending: false,
            ring_reboots: true,
            measured_reboot: None,
        }
    }

    #[test]
    fn kernel_changes_need_a_reboot_and_unknown_services_are_not_counted() {
        let est = Estimates::default();
        let h = host(
            "web1",
            "web",
            &[("linux-image-amd64", "6.1.0-1", "6.1.0-2")],
        );
        let a = asset_impact(&h, &est);
        assert!(a.reboot.needed && a.reboot.by_patchbay);
        assert!(a.reboot.source.contains("linux-image-amd64"), "{a:?}");
        assert!(!a.services.known);
        assert_eq!(a.services.source, "unknown until rehearsed");
        assert_eq!(a.interruption.seconds, 300);
        assert!(a.interruption.estimate);
        assert!(a.interruption.basis.contains("default estimate"));
        assert_eq!(a.window.zone, "Europe/Berlin");
        assert_eq!(a.window.opens_utc, "2026-12-12T22:00:00Z");
        assert!(
            a.window
                .opens_local
                .starts_with("2026-12-12T23:00:00+01:00"),
            "{a:?}"
        );
        let plain = asset_impact(&host("db1", "db", &[("openssl", "3.0.1", "3.0.2")]), &est);
        assert!(!plain.reboot.needed);
        assert_eq!(plain.interruption.seconds, 0);
    }

    #[test]
    fn a_rehearsal_in_an_overlay_gives_the_services_and_its_own_diff() {
        let est = Estimates::default();
        let mut h = host("web1", "web", &[("nginx", "1.22", "1.24")]);
        h.rehearsal = Some(RehearsalIn {
            mode: "overlay".into(),
            passed: true,
            changed: vec![
                PackageChange {
                    name: "nginx".into(),
                    from: Some("1.22".into()),
                    to: Some("1.24".into()),
                },
                PackageChange {
                    name: "nginx-common".into(),
                    from: Some("1.22".into()),
                    to: Some("1.24".into()),
                },
            ],
            services: Some(vec!["nginx".into(), "php-fpm".into()]),
        });
        h.measured_reboot = Some(SignedDuration::from_secs(42));
        h.reboot_pending = true;
        let a = asset_impact(&h, &est);
        assert_eq!(a.packages_source, "rehearsal");
        assert_eq!(a.packages.len(), 2);
        assert!(a.services.known);
        assert_eq!(a.services.names, ["nginx", "php-fpm"]);
        assert!(a.reboot.needed);
        assert!(a.reboot.source.contains("pending"));
        // 2 × 10 s + the measured 42 s.
        assert_eq!(a.interruption.seconds, 62);
        // A simulation knows no services.
        h.rehearsal.as_mut().unwrap().mode = "simulation".into();
        assert!(!asset_impact(&h, &est).services.known);
    }

    #[test]
    fn owners_group_their_hosts_and_the_unowned_come_last() {
        let est = Estimates::default();
        let mut late = host("b", "web", &[("x", "1", "2")]);
        late.slot.opens = t("2026-12-13T00:00:00Z");
        let hosts = vec![
            late,
            host("a", "web", &[("x", "1", "2")]),
            host("c", "", &[("x", "1", "2")]),
            host("d", "db", &[("linux-image-amd64", "1", "2")]),
        ];
        let o = impact(&hosts, &est);
        let names: Vec<&str> = o.iter().map(|o| o.owner.as_str()).collect();
        assert_eq!(names, ["db", "web", UNOWNED]);
        assert_eq!(o[1].assets[0].asset, "a");
        assert_eq!(o[1].first_window, "2026-12-12T22:00:00Z");
        assert_eq!(contact_of(&o[2]), UNOWNED_CONTACT);
        assert_eq!(contact_of(&o[0]), "db");
        assert_eq!((o[0].reboots, o[0].interruption_seconds), (1, 300));
    }

    #[test]
    fn a_notice_is_due_a_lead_time_before_the_first_window() {
        let w = t("2026-12-12T22:00:00Z");
        let lead = SignedDuration::from_hours(24);
        assert!(!notice_due(w, t("2026-12-11T21:59:59Z"), lead));
        assert!(notice_due(w, t("2026-12-11T22:00:00Z"), lead));
        assert!(notice_due(w, t("2026-12-13T00:00:00Z"), lead));
    }

    #[test]
    fn kernel_packages_are_recognised() {
        for k in [
            "linux-image-6.1.0-18-amd64",
            "kernel-core",
            "linux-lts",
            "intel-microcode",
        ] {
            assert!(is_kernel_package(k), "{k}");
        }
        for k in ["linux-libc-dev", "openssl", "kernelshark"] {
            assert!(!is_kernel_package(k), "{k}");
        }
    }
}
