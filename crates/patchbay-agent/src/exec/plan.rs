//! Pure decisions of the execution layer: what a transaction may touch, the
//! rollback plan, whether health got worse, how much space a change needs.

use super::health::CheckResult;
use super::{Action, Change, Installed, PackageSize, SpaceNeed};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A package name without a `:arch` qualifier.
pub fn base_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(n, _)| n)
}

/// A change a simulation announced that the job may not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeViolation {
    /// Package.
    pub package: String,
    /// Version before (`None`: not installed).
    pub from: Option<String>,
    /// Version after (`None`: removed).
    pub to: Option<String>,
    /// Why it is refused.
    pub reason: String,
}

/// Checks an announced transaction against the job: every named package ends at
/// exactly its named version (or is removed, when the job says so); a package the
/// job does not name may only be **newly installed**. Everything else — upgrading,
/// downgrading, reinstalling or removing an unnamed package — is a violation.
pub fn check_scope(changes: &[Change], actions: &[Action]) -> Vec<ScopeViolation> {
    let named: BTreeMap<&str, &Change> = changes.iter().map(|c| (base_name(c.name()), c)).collect();
    let mut out = Vec::new();
    for a in actions {
        let v = |reason: String| ScopeViolation {
            package: a.name.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            reason,
        };
        match named.get(a.name.as_str()) {
            Some(Change::Install { version, .. }) => {
                if a.to.as_deref() != Some(version.as_str()) {
                    out.push(v(format!(
                        "the job names version {version}, the package manager would {}",
                        match &a.to {
                            Some(t) => format!("install {t}"),
                            None => "remove it".to_owned(),
                        }
                    )));
                }
            }
            Some(Change::Remove { .. }) => {
                if a.to.is_some() {
                    out.push(v(
                        "the job removes it, the package manager would install it".into(),
                    ));
                }
            }
            None => {
                if a.from.is_some() {
                    out.push(v(match &a.to {
                        Some(_) => "not named in the job: would be changed".into(),
                        None => "not named in the job: would be removed".into(),
                    }));
                }
            }
        }
    }
    out
}

/// Named versions the transaction does not reach: neither announced nor already
/// installed. Returns `(name, version)` pairs.
pub fn unreached(
    changes: &[Change],
    actions: &[Action],
    installed: &[Installed],
) -> Vec<(String, String)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Install { name, version } => {
                let n = base_name(name);
                let announced = actions
                    .iter()
                    .any(|a| a.name == n && a.to.as_deref() == Some(version));
                let present = installed
                    .iter()
                    .any(|p| p.name == n && &p.version == version && p.status == "installed");
                (!announced && !present).then(|| (name.clone(), version.clone()))
            }
            Change::Remove { .. } => None,
        })
        .collect()
}

/// One package of a rollback plan: its version before the job (`None`: the job
/// installed it new, so a rollback removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Package.
    pub name: String,
    /// Architecture before (or the announced one for new packages).
    pub arch: String,
    /// Installed version before the job; `None` means absent.
    pub before: Option<String>,
}

/// The rollback plan of a transaction: every package it touches (named or
/// announced), with the version installed now or "absent".
pub fn rollback_plan(
    changes: &[Change],
    actions: &[Action],
    installed: &[Installed],
) -> Vec<PlanEntry> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for c in changes {
        names.entry(base_name(c.name()).to_owned()).or_default();
    }
    for a in actions {
        let e = names.entry(a.name.clone()).or_default();
        if e.is_empty() {
            *e = a.arch.clone();
        }
    }
    names
        .into_iter()
        .map(|(name, arch)| {
            let cur = installed.iter().find(|p| p.name == name);
            PlanEntry {
                arch: cur.map_or(arch, |p| p.arch.clone()),
                before: cur.map(|p| p.version.clone()),
                name,
            }
        })
        .collect()
}

/// The changes that restore `plan` from the state `installed`: install the
/// recorded versions (downgrading), remove what was absent. Packages already in
/// their recorded state are left alone.
pub fn rollback_changes(plan: &[PlanEntry], installed: &[Installed]) -> Vec<Change> {
    plan.iter()
        .filter_map(|e| {
            let cur = installed.iter().find(|p| p.name == e.name);
            match (&e.before, cur) {
                (Some(v), Some(p)) if &p.version == v && p.status == "installed" => None,
                (Some(v), _) => Some(Change::Install {
                    name: e.name.clone(),
                    version: v.clone(),
                }),
                (None, Some(_)) => Some(Change::Remove {
                    name: e.name.clone(),
                }),
                (None, None) => None,
            }
        })
        .collect()
}

/// One difference between two package lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDiff {
    /// Package.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Version before (`None`: absent).
    pub before: Option<String>,
    /// Version after (`None`: absent).
    pub after: Option<String>,
}

/// Every package whose version or state differs between `before` and `after`.
pub fn diff(before: &[Installed], after: &[Installed]) -> Vec<PackageDiff> {
    let key = |p: &Installed| (p.name.clone(), p.arch.clone());
    let b: BTreeMap<_, _> = before.iter().map(|p| (key(p), p)).collect();
    let a: BTreeMap<_, _> = after.iter().map(|p| (key(p), p)).collect();
    let keys: BTreeSet<_> = b.keys().chain(a.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (b.get(&k), a.get(&k));
            let same = matches!((x, y), (Some(x), Some(y)) if x.version == y.version && x.status == y.status);
            (!same).then(|| PackageDiff {
                before: x.map(|p| p.version.clone()),
                after: y.map(|p| p.version.clone()),
                name: k.0,
                arch: k.1,
            })
        })
        .collect()
}

/// The differences a job was not allowed to make: changes to packages it does not
/// name, except new installs. `named` are the job's package names.
pub fn unnamed_changes(
    before: &[Installed],
    after: &[Installed],
    named: &[&str],
) -> Vec<PackageDiff> {
    let named: BTreeSet<&str> = named.iter().map(|n| base_name(n)).collect();
    diff(before, after)
        .into_iter()
        .filter(|d| !named.contains(d.name.as_str()) && d.before.is_some())
        .collect()
}

/// Checks that passed in `baseline` (or were not run there) and fail in `after`.
pub fn health_regressions(baseline: &[CheckResult], after: &[CheckResult]) -> Vec<String> {
    after
        .iter()
        .filter(|r| !r.ok)
        .filter(|r| {
            baseline
                .iter()
                .find(|b| b.name == r.name)
                .is_none_or(|b| b.ok)
        })
        .map(|r| r.name.clone())
        .collect()
}

/// Space an announced transaction needs: downloads of every new version into
/// `archives`, and the growth of unpacked sizes (new minus old `Installed-Size`,
/// never negative per package) below `install_dir`.
pub fn space_needed(
    archives: &Path,
    install_dir: &Path,
    actions: &[Action],
    installed: &[Installed],
    sizes: &[PackageSize],
) -> Vec<SpaceNeed> {
    let mut download = 0u64;
    let mut grow = 0u64;
    for a in actions {
        let Some(to) = &a.to else { continue };
        let Some(s) = sizes.iter().find(|s| s.name == a.name && &s.version == to) else {
            continue;
        };
        download = download.saturating_add(s.size_bytes);
        let old = installed
            .iter()
            .find(|p| p.name == a.name)
            .and_then(|p| p.installed_kib)
            .unwrap_or(0);
        grow = grow.saturating_add(s.installed_kib.saturating_sub(old).saturating_mul(1024));
    }
    vec![
        SpaceNeed {
            path: archives.to_owned(),
            bytes: download,
            what: "download".into(),
        },
        SpaceNeed {
            path: install_dir.to_owned(),
            bytes: grow,
            what: "install".into(),
        },
    ]
}

/// The kernel release (`uname -r`, the name of its `lib/modules` directory) that
/// an Alpine kernel package installs: `linux-FLAVOR` at `VER-rN` gives
/// `VER-N-FLAVOR` (`linux-virt` 6.18.56-r0 → `6.18.56-0-virt`, as in the Alpine
/// 3.23 image). `None` when the name or version is not of that shape (which says
/// nothing yet about whether it is a kernel: `linux-pam` has that shape too).
pub fn alpine_kernel_release(name: &str, version: &str) -> Option<String> {
    let flavor = name.strip_prefix("linux-").filter(|f| !f.is_empty())?;
    let (ver, rel) = version.rsplit_once("-r")?;
    if ver.is_empty() || rel.is_empty() || !rel.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{ver}-{rel}-{flavor}"))
}

/// Whether an Alpine root needs a reboot (Alpine keeps no `reboot-required`
/// marker; only a kernel needs one: musl, busybox and OpenRC services are
/// restarted, not rebooted). A package is a kernel when it is `linux-FLAVOR`
/// and the root holds the modules directory its version installs
/// ([`alpine_kernel_release`] is in `modules`, the names under
/// `ROOT/lib/modules`); that excludes `linux-pam`, `linux-firmware-*`,
/// `linux-headers`.
///
/// - The running system (`running` is the running kernel's release,
///   `/proc/sys/kernel/osrelease`): a reboot is needed when a kernel package of
///   the running kernel's flavor is installed and its release is not the running
///   one (upgraded by this job or earlier). A root whose kernel is not an Alpine
///   package of that flavor (a container on another distribution's kernel) never
///   needs one.
/// - Another root (`running` is `None`): which kernel the system on that root
///   runs, if any, cannot be known from here, so a reboot is needed exactly when
///   this transaction changed a kernel package (`changed`); kernels changed
///   earlier, outside the job, are not seen.
pub fn apk_reboot_required(
    installed: &[(&str, &str)],
    changed: &[PackageDiff],
    running: Option<&str>,
    modules: &[String],
) -> bool {
    let kernel = |name: &str, version: &str| {
        alpine_kernel_release(name, version).filter(|r| modules.iter().any(|m| m == r))
    };
    match running {
        Some(running) => {
            let Some((_, flavor)) = running.rsplit_once('-') else {
                return false;
            };
            let package = format!("linux-{flavor}");
            let releases: Vec<String> = installed
                .iter()
                .filter(|(n, _)| *n == package)
                .filter_map(|(n, v)| kernel(n, v))
                .collect();
            !releases.is_empty() && !releases.iter().any(|r| r == running)
        }
        None => changed.iter().any(|d| {
            d.before != d.after
                && d.after
                    .as_deref()
                    .is_some_and(|v| kernel(&d.name, v).is_some())
        }),
    }
}

/// rpm packages whose change needs a reboot: the list dnf's `needs-restarting
/// -r` uses (dnf-plugins-core: `kernel`, `kernel-rt`, `glibc`, `linux-firmware`,
/// `systemd`, `dbus`, `dbus-broker`, `dbus-daemon`) plus the packages that carry
/// the kernel image itself (`kernel-core`, `kernel-rt-core`, `kernel-uek`,
/// `kernel-uek-core`, SUSE's `kernel-default`, `kernel-default-base`).
pub const RPM_REBOOT_PACKAGES: &[&str] = &[
    "kernel",
    "kernel-core",
    "kernel-rt",
    "kernel-rt-core",
    "kernel-uek",
    "kernel-uek-core",
    "kernel-default",
    "kernel-default-base",
    "glibc",
    "linux-firmware",
    "systemd",
    "dbus",
    "dbus-broker",
    "dbus-daemon",
];

/// Whether an rpm root other than `/` needs a reboot after a transaction: it
/// changed one of [`RPM_REBOOT_PACKAGES`]. (`needs-restarting -r` compares those
/// packages' install times with the *running* system's boot time, which says
/// nothing about another root; changes made there outside the job are not seen.)
pub fn rpm_reboot_required(changed: &[PackageDiff]) -> bool {
    changed
        .iter()
        .any(|d| d.before != d.after && RPM_REBOOT_PACKAGES.contains(&base_name(&d.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(name: &str, from: Option<&str>, to: Option<&str>) -> Action {
        Action {
            name: name.into(),
            arch: "all".into(),
            from: from.map(Into::into),
            to: to.map(Into::into),
            origin: String::new(),
        }
    }
    fn inst(name: &str, version: &str) -> Installed {
        Installed {
            name: name.into(),
            arch: "all".into(),
            version: version.into(),
            status: "installed".into(),
            installed_kib: Some(10),
        }
    }
    fn install(name: &str, version: &str) -> Change {
        Change::Install {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn scope_allows_named_and_new_only() {
        let changes = [install("pb-demo", "1.1")];
        assert!(
            check_scope(
                &changes,
                &[
                    act("pb-demo", Some("1.0"), Some("1.1")),
                    act("pb-extra", None, Some("1.0"))
                ]
            )
            .is_empty()
        );
        let v = check_scope(
            &changes,
            &[
                act("pb-demo", Some("1.0"), Some("1.1")),
                act("pb-lib", Some("1.0"), Some("2.0")),
            ],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].package, "pb-lib");
        let v = check_scope(&changes, &[act("pb-demo", Some("1.0"), Some("1.2"))]);
        assert_eq!(v.len(), 1, "wrong version is refused");
        let v = check_scope(
            &changes,
            &[
                act("pb-demo", Some("1.0"), Some("1.1")),
                act("pb-old", Some("2.0"), None),
            ],
        );
        assert_eq!(v[0].reason, "not named in the job: would be removed");
        let v = check_scope(
            &[Change::Remove {
                name: "pb-extra".into(),
            }],
            &[act("pb-extra", Some("1.0"), None)],
        );
        assert!(v.is_empty());
        let v = check_scope(
            &[install("libc6:amd64", "2")],
            &[act("libc6", Some("1"), Some("2"))],
        );
        assert!(v.is_empty(), "arch-qualified names match");
    }

    #[test]
    fn plan_and_rollback() {
        let installed = [inst("pb-demo", "1.0"), inst("base-files", "12")];
        let changes = [install("pb-demo", "1.1")];
        let actions = [
            act("pb-demo", Some("1.0"), Some("1.1")),
            act("pb-extra", None, Some("1.0")),
        ];
        let plan = rollback_plan(&changes, &actions, &installed);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].name, "pb-demo");
        assert_eq!(plan[0].before.as_deref(), Some("1.0"));
        assert_eq!(plan[1].before, None);
        let now = [
            inst("pb-demo", "1.1"),
            inst("pb-extra", "1.0"),
            inst("base-files", "12"),
        ];
        let rb = rollback_changes(&plan, &now);
        assert_eq!(
            rb,
            vec![
                install("pb-demo", "1.0"),
                Change::Remove {
                    name: "pb-extra".into()
                }
            ]
        );
        assert!(
            rollback_changes(&plan, &installed).is_empty(),
            "already restored"
        );
        assert!(unreached(&changes, &actions, &installed).is_empty());
        assert_eq!(
            unreached(&[install("pb-demo", "9")], &actions, &installed).len(),
            1
        );
        assert!(unreached(&[install("base-files", "12")], &[], &installed).is_empty());
    }

    #[test]
    fn diffs() {
        let before = [inst("a", "1"), inst("b", "1"), inst("c", "1")];
        let after = [inst("a", "2"), inst("b", "1"), inst("d", "1")];
        let d = diff(&before, &after);
        assert_eq!(d.len(), 3);
        let u = unnamed_changes(&before, &after, &["a"]);
        assert_eq!(u.len(), 1, "c removed; d is a new install: {u:?}");
        assert_eq!(u[0].name, "c");
    }

    #[test]
    fn health() {
        let r = |name: &str, ok: bool| CheckResult {
            name: name.into(),
            kind: "command".into(),
            ok,
            detail: String::new(),
            duration_ms: 0,
            value: None,
        };
        let regress = health_regressions(
            &[r("a", true), r("b", false)],
            &[r("a", false), r("b", false), r("c", false)],
        );
        assert_eq!(regress, vec!["a".to_string(), "c".to_string()]);
    }

    #[test]
    fn space() {
        let sizes = [PackageSize {
            name: "pb-demo".into(),
            version: "1.1".into(),
            size_bytes: 1000,
            installed_kib: 30,
        }];
        let n = space_needed(
            Path::new("/a"),
            Path::new("/u"),
            &[
                act("pb-demo", Some("1.0"), Some("1.1")),
                act("x", Some("1"), None),
            ],
            &[inst("pb-demo", "1.0")],
            &sizes,
        );
        assert_eq!(n[0].bytes, 1000);
        assert_eq!(n[1].bytes, 20 * 1024);
    }

    fn d(name: &str, before: Option<&str>, after: Option<&str>) -> PackageDiff {
        PackageDiff {
            name: name.into(),
            arch: "x86_64".into(),
            before: before.map(Into::into),
            after: after.map(Into::into),
        }
    }

    #[test]
    fn alpine_kernel_releases() {
        // The Alpine 3.23.6 image: linux-virt 6.18.56-r0, lib/modules/6.18.56-0-virt.
        assert_eq!(
            alpine_kernel_release("linux-virt", "6.18.56-r0").as_deref(),
            Some("6.18.56-0-virt")
        );
        assert_eq!(
            alpine_kernel_release("linux-lts", "6.12.13-r2").as_deref(),
            Some("6.12.13-2-lts")
        );
        assert_eq!(alpine_kernel_release("linux-", "1.0-r0"), None);
        assert_eq!(alpine_kernel_release("musl", "1.2.5-r10"), None);
        assert_eq!(alpine_kernel_release("linux-virt", "6.18.56"), None);
        assert_eq!(alpine_kernel_release("linux-virt", "6.18.56-rx"), None);
        assert_eq!(alpine_kernel_release("linux-virt", "-r0"), None);
    }

    #[test]
    fn apk_reboot_rule() {
        let modules = vec!["6.18.57-0-virt".to_owned()];
        let upgraded = [("linux-virt", "6.18.57-r0"), ("linux-pam", "1.7.1-r2")];
        // The running system still runs the old kernel: reboot.
        assert!(apk_reboot_required(
            &upgraded,
            &[],
            Some("6.18.56-0-virt"),
            &modules
        ));
        // It runs the installed one: no reboot.
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("6.18.57-0-virt"),
            &modules
        ));
        // A container on another distribution's kernel: never.
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("6.1.0-18-amd64"),
            &modules
        ));
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("6.6.0"),
            &modules
        ));
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("weird"),
            &modules
        ));
        // A linux-virt package without its modules directory is not taken for
        // the kernel (a broken or partial root).
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("6.18.56-0-virt"),
            &[]
        ));
        // linux-pam is not a kernel, even for a running "...-pam" release.
        assert!(!apk_reboot_required(
            &upgraded,
            &[],
            Some("1.7.1-2-pam"),
            &["6.18.57-0-virt".to_owned()]
        ));

        // Another root: exactly when the transaction changed a kernel.
        let kernel = [d("linux-virt", Some("6.18.56-r0"), Some("6.18.57-r0"))];
        assert!(apk_reboot_required(&upgraded, &kernel, None, &modules));
        assert!(!apk_reboot_required(&upgraded, &[], None, &modules));
        let others = [
            d("linux-pam", Some("1.7.0-r0"), Some("1.7.1-r2")),
            d("pbtest", Some("1.0-r0"), Some("1.1-r0")),
            d("linux-firmware-none", None, Some("20251111-r0")),
        ];
        assert!(!apk_reboot_required(&upgraded, &others, None, &modules));
        let removed = [d("linux-virt", Some("6.18.57-r0"), None)];
        assert!(!apk_reboot_required(&[], &removed, None, &modules));
    }

    #[test]
    fn rpm_reboot_rule() {
        assert!(rpm_reboot_required(&[d(
            "kernel-core",
            Some("5.14.0-1.el9"),
            Some("5.14.0-2.el9")
        )]));
        assert!(rpm_reboot_required(&[d(
            "glibc",
            Some("2.34-1"),
            Some("2.34-2")
        )]));
        assert!(rpm_reboot_required(&[d("systemd", None, Some("252-1"))]));
        assert!(!rpm_reboot_required(&[d(
            "kernel-headers",
            Some("1"),
            Some("2")
        )]));
        assert!(!rpm_reboot_required(&[d(
            "pb-demo",
            Some("1.0-1"),
            Some("1.1-1")
        )]));
        assert!(!rpm_reboot_required(&[d(
            "glibc",
            Some("2.34-1"),
            Some("2.34-1")
        )]));
        assert!(!rpm_reboot_required(&[]));
    }
}
