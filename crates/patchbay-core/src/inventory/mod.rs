//! The inventory model: what an agent reports about a host.
//!
//! The canonical hash ([`Inventory::content_hash`]) lets an agent skip re-sending an
//! unchanged inventory, and [`PackageDelta`] carries only what changed.
//!
//! Parsers of the package databases live in submodules; each takes the file's text
//! and returns packages or an error naming the line.

pub mod apk;
pub mod dpkg;
pub mod os_release;
pub mod rpm;
pub mod rules;
pub mod unmanaged;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub use os_release::{OsRelease, ParseError};

/// Package-manager family of an installed package list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// Debian packages (dpkg).
    Deb,
    /// RPM packages.
    Rpm,
    /// Alpine packages.
    Apk,
    /// Versions imported for agentless assets (network devices, applications).
    Other,
}

impl PackageFormat {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageFormat::Deb => "deb",
            PackageFormat::Rpm => "rpm",
            PackageFormat::Apk => "apk",
            PackageFormat::Other => "other",
        }
    }
}

/// One installed package with its exact version.
///
/// The identity of a package row is `(name, arch, version)`: dpkg allows one name
/// per architecture (multiarch) and rpm allows several versions of one name (kernels).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    /// Binary package name.
    pub name: String,
    /// Exact installed version as the package manager spells it
    /// (dpkg `[epoch:]upstream[-revision]`, rpm `[epoch:]version-release`, apk `ver-rN`).
    pub version: String,
    /// Architecture (`amd64`, `all`, `x86_64`, `noarch`…); empty when unknown.
    pub arch: String,
    /// Source package name, when it differs or is known (dpkg `Source:`, rpm SOURCERPM
    /// name, apk origin). Advisories for Debian and Ubuntu are keyed by it.
    pub source: Option<String>,
    /// Source package version when it differs from `version` (dpkg `Source: n (v)`).
    pub source_version: Option<String>,
}

impl Package {
    /// The row key: name, arch, version.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.name, &self.arch, &self.version)
    }
}

/// A pending update reported by the host's package manager.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingUpdate {
    /// Package name.
    pub name: String,
    /// Architecture, if reported.
    pub arch: String,
    /// Installed version (empty for new installs).
    pub current_version: String,
    /// Version that would be installed.
    pub available_version: String,
    /// Where it comes from (e.g. `Debian-Security:12/stable-security`).
    pub origin: String,
}

/// Facts about the host (everything but the package list).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// Host name.
    pub hostname: String,
    /// `/etc/machine-id` contents, trimmed.
    pub machine_id: String,
    /// Parsed os-release.
    pub os: OsRelease,
    /// Kernel release (`uname -r`), empty for a chroot.
    pub kernel: String,
    /// Machine architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// IP addresses of the host's interfaces (not loopback), sorted.
    pub ip_addresses: Vec<String>,
    /// Whether a reboot is required (e.g. `/run/reboot-required`).
    pub reboot_required: bool,
    /// Services that still map deleted libraries (need a restart), sorted.
    pub services_needing_restart: Vec<String>,
    /// MAC addresses of the host's interfaces (not loopback), sorted
    /// (discovery matches scans and leases to the asset by them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<String>,
    /// The host's neighbour table (`ip neigh`: the machines it talked to on
    /// its links), sorted: passive discovery of the devices on its segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<Neighbour>,
    /// Sockets listening on addresses other than loopback (`tcp/22`,
    /// `udp/53`), sorted: the services the host offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<String>,
    /// Software installed outside the package manager (Python distributions,
    /// global npm modules, Go and `cargo auditable` binaries), each with its
    /// path, sorted (issue 20, item 5; [`unmanaged`]). Absent from agents that
    /// do not look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<unmanaged::Unmanaged>,
}

/// One entry of a host's neighbour table: an address and the MAC it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Neighbour {
    /// The address.
    pub ip: String,
    /// Its MAC.
    pub mac: String,
}

/// A full inventory as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// Host facts.
    pub facts: HostFacts,
    /// Package format of `packages`.
    pub format: Option<PackageFormat>,
    /// Installed packages, sorted by key, no duplicates.
    pub packages: Vec<Package>,
    /// Updates the package manager would install, sorted.
    pub pending_updates: Vec<PendingUpdate>,
}

impl Inventory {
    /// Sorts and deduplicates lists so that equal inventories hash equally.
    pub fn normalize(&mut self) {
        self.packages.sort();
        self.packages.dedup_by(|a, b| a.key() == b.key());
        self.pending_updates.sort();
        self.pending_updates.dedup();
        self.facts.ip_addresses.sort();
        self.facts.ip_addresses.dedup();
        self.facts.services_needing_restart.sort();
        self.facts.services_needing_restart.dedup();
        self.facts.unmanaged.sort();
        self.facts.unmanaged.dedup();
    }

    /// A SHA-256 over an explicit, length-prefixed encoding of the normalized
    /// inventory. Field order is fixed here, not by a serializer, so the hash is
    /// stable across serde versions. Callers should [`normalize`](Self::normalize) first.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        put("patchbay-inventory-v1");
        let f = &self.facts;
        for s in [
            &f.hostname,
            &f.machine_id,
            &f.os.id,
            &f.os.version_id,
            &f.os.version_codename,
            &f.os.pretty_name,
            &f.os.id_like,
            &f.kernel,
            &f.arch,
        ] {
            put(s);
        }
        put(if f.reboot_required { "1" } else { "0" });
        put(&f.ip_addresses.len().to_string());
        for ip in &f.ip_addresses {
            put(ip);
        }
        put(&f.services_needing_restart.len().to_string());
        for s in &f.services_needing_restart {
            put(s);
        }
        // Network facts count only when reported, so an agent that does not
        // report them keeps the hash it had.
        if !f.macs.is_empty() || !f.neighbours.is_empty() || !f.listening.is_empty() {
            put("network");
            put(&f.macs.len().to_string());
            for m in &f.macs {
                put(m);
            }
            put(&f.neighbours.len().to_string());
            for n in &f.neighbours {
                put(&n.ip);
                put(&n.mac);
            }
            put(&f.listening.len().to_string());
            for l in &f.listening {
                put(l);
            }
        }
        // Unmanaged software counts only when reported, so an agent that does
        // not look keeps the hash it had.
        if !f.unmanaged.is_empty() {
            put("unmanaged");
            put(&f.unmanaged.len().to_string());
            for u in &f.unmanaged {
                put(u.ecosystem.osv());
                put(&u.name);
                put(&u.version);
                put(&u.path);
            }
        }
        put(self.format.map(|f| f.as_str()).unwrap_or(""));
        put(&self.packages.len().to_string());
        for p in &self.packages {
            put(&p.name);
            put(&p.version);
            put(&p.arch);
            put(p.source.as_deref().unwrap_or("\u{0}"));
            put(p.source_version.as_deref().unwrap_or("\u{0}"));
        }
        put(&self.pending_updates.len().to_string());
        for u in &self.pending_updates {
            put(&u.name);
            put(&u.arch);
            put(&u.current_version);
            put(&u.available_version);
            put(&u.origin);
        }
        hex::encode(h.finalize())
    }
}

/// The package-level difference between two inventories.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PackageDelta {
    /// Packages present in the new inventory and not (with that exact key and
    /// content) in the old one.
    pub added: Vec<Package>,
    /// Packages of the old inventory that are gone (or changed) in the new one.
    pub removed: Vec<Package>,
}

impl PackageDelta {
    /// Computes `new - old`. A version change is a removal plus an addition.
    pub fn between(old: &[Package], new: &[Package]) -> Self {
        let old_set: BTreeSet<&Package> = old.iter().collect();
        let new_set: BTreeSet<&Package> = new.iter().collect();
        PackageDelta {
            added: new_set.difference(&old_set).map(|p| (*p).clone()).collect(),
            removed: old_set.difference(&new_set).map(|p| (*p).clone()).collect(),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Applies the delta to `base`, returning the new sorted package list, or an
    /// error when a removed package is not in `base` (the delta was computed
    /// against another base).
    pub fn apply(&self, base: &[Package]) -> Result<Vec<Package>, String> {
        let mut set: BTreeSet<Package> = base.iter().cloned().collect();
        for p in &self.removed {
            if !set.remove(p) {
                return Err(format!(
                    "delta removes {} {} ({}) which the base inventory does not hold",
                    p.name, p.version, p.arch
                ));
            }
        }
        for p in &self.added {
            set.insert(p.clone());
        }
        let mut v: Vec<Package> = set.into_iter().collect();
        v.dedup_by(|a, b| a.key() == b.key());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, v: &str) -> Package {
        Package {
            name: name.into(),
            version: v.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
        }
    }

    #[test]
    fn delta_round_trips() {
        let old = vec![p("a", "1"), p("b", "1"), p("c", "1")];
        let new = vec![p("a", "1"), p("b", "2"), p("d", "1")];
        let d = PackageDelta::between(&old, &new);
        assert_eq!(d.added, vec![p("b", "2"), p("d", "1")]);
        assert_eq!(d.removed, vec![p("b", "1"), p("c", "1")]);
        assert_eq!(d.apply(&old).unwrap(), new);
        assert!(PackageDelta::between(&new, &new).is_empty());
        assert!(d.apply(&new).is_err());
    }

    fn deb_inventory(packages: Vec<Package>) -> Inventory {
        Inventory {
            facts: HostFacts {
                os: OsRelease {
                    id: "debian".into(),
                    version_id: "12".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            format: Some(PackageFormat::Deb),
            packages,
            pending_updates: vec![],
        }
    }

    #[test]
    fn os_families_from_id_and_id_like() {
        let os = |id: &str, like: &str| OsRelease {
            id: id.into(),
            id_like: like.into(),
            ..Default::default()
        };
        assert_eq!(os_family(&os("ubuntu", "debian")), Some(OsFamily::Debian));
        assert_eq!(
            os_family(&os("almalinux", "rhel centos fedora")),
            Some(OsFamily::RedHat)
        );
        assert_eq!(
            os_family(&os("opensuse-leap", "suse opensuse")),
            Some(OsFamily::Suse)
        );
        assert_eq!(os_family(&os("alpine", "")), Some(OsFamily::Alpine));
        assert_eq!(
            os_family(&os("mydistro", "ubuntu debian")),
            Some(OsFamily::Debian)
        );
        assert_eq!(os_family(&os("plan9", "")), None);
    }

    #[test]
    fn validate_names_the_problem() {
        assert_eq!(
            validate(&deb_inventory(vec![p("ab", "1")])),
            Ok(OsFamily::Debian)
        );
        let mut inv = deb_inventory(vec![]);
        inv.facts.os.id = "plan9".into();
        assert!(validate(&inv).unwrap_err().contains("unknown OS"));
        let mut inv = deb_inventory(vec![p("ab", "1")]);
        inv.format = Some(PackageFormat::Rpm);
        assert!(validate(&inv).unwrap_err().contains("does not fit"));
        inv.format = None;
        assert!(
            validate(&inv)
                .unwrap_err()
                .contains("without a package format")
        );
        assert!(
            validate(&deb_inventory(vec![p("ab", "")]))
                .unwrap_err()
                .contains("empty version")
        );
        assert!(
            validate(&deb_inventory(vec![p("ab", "1"), p("ab", "1")]))
                .unwrap_err()
                .contains("listed twice")
        );
        assert!(
            validate(&deb_inventory(vec![p("ab", "1\n2")]))
                .unwrap_err()
                .contains("control characters")
        );
        assert!(
            validate(&deb_inventory(vec![p(&"x".repeat(600), "1")]))
                .unwrap_err()
                .contains("longer than")
        );
        // Each ecosystem's own rules: the attack of the security issue is refused,
        // naming the package and the rule.
        let e = validate(&deb_inventory(vec![p("libssl3;curl x|sh;#", "3.0.17-1")])).unwrap_err();
        assert!(
            e.contains("libssl3;curl") && e.contains("Debian Policy"),
            "{e}"
        );
        let e = validate(&deb_inventory(vec![p("libssl3", "3.0;id")])).unwrap_err();
        assert!(e.contains("invalid version"), "{e}");
        let mut q = p("libssl3", "3.0");
        q.source = Some("openssl|sh".into());
        assert!(
            validate(&deb_inventory(vec![q]))
                .unwrap_err()
                .contains("source name")
        );
        let mut inv = deb_inventory(vec![]);
        inv.pending_updates.push(PendingUpdate {
            name: "x;reboot".into(),
            arch: String::new(),
            current_version: String::new(),
            available_version: "1.0".into(),
            origin: String::new(),
        });
        assert!(validate(&inv).unwrap_err().contains("pending update #0"));
        // Same name, two architectures (multiarch) is fine.
        let mut q = p("libc6", "2.36");
        q.arch = "i386".into();
        assert!(validate(&deb_inventory(vec![p("libc6", "2.36"), q])).is_ok());
    }

    #[test]
    fn hash_ignores_order_after_normalize_and_sees_changes() {
        let mut a = Inventory {
            packages: vec![p("b", "1"), p("a", "1")],
            ..Default::default()
        };
        let mut b = Inventory {
            packages: vec![p("a", "1"), p("b", "1")],
            ..Default::default()
        };
        a.normalize();
        b.normalize();
        assert_eq!(a.content_hash(), b.content_hash());
        b.packages[0].version = "2".into();
        assert_ne!(a.content_hash(), b.content_hash());
        b.packages[0].version = "1".into();
        b.facts.reboot_required = true;
        assert_ne!(a.content_hash(), b.content_hash());
    }
}

/// The OS families Patchbay manages, recognised from os-release `ID` / `ID_LIKE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// Debian, Ubuntu and derivatives (dpkg/apt).
    Debian,
    /// RHEL, AlmaLinux, Rocky, CentOS, Fedora, Oracle, Amazon (rpm/dnf).
    RedHat,
    /// SLES, openSUSE (rpm/zypper).
    Suse,
    /// Alpine (apk).
    Alpine,
}

impl OsFamily {
    /// The package format of this family.
    pub fn package_format(self) -> PackageFormat {
        match self {
            OsFamily::Debian => PackageFormat::Deb,
            OsFamily::RedHat | OsFamily::Suse => PackageFormat::Rpm,
            OsFamily::Alpine => PackageFormat::Apk,
        }
    }
}

/// OS ids accepted from agents, for error messages.
pub const KNOWN_OS_IDS: &str = "debian, ubuntu (and ID_LIKE=debian), rhel, almalinux, rocky, centos, fedora, ol, \
    amzn (and ID_LIKE=rhel/fedora), sles, opensuse-leap, opensuse-tumbleweed (and ID_LIKE=suse), alpine";

/// Classifies an os-release; `None` for an OS Patchbay cannot patch.
pub fn os_family(os: &OsRelease) -> Option<OsFamily> {
    let classify = |id: &str| match id {
        "debian" | "ubuntu" | "raspbian" | "linuxmint" | "pop" | "kali" => Some(OsFamily::Debian),
        "rhel" | "almalinux" | "rocky" | "centos" | "fedora" | "ol" | "amzn" | "redhat" => {
            Some(OsFamily::RedHat)
        }
        "sles" | "sled" | "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" => {
            Some(OsFamily::Suse)
        }
        "alpine" => Some(OsFamily::Alpine),
        _ => None,
    };
    classify(&os.id).or_else(|| os.id_like.split_whitespace().find_map(classify))
}

/// Limits on what an agent may report; generous for real hosts, small enough that
/// one bad agent cannot exhaust the server.
pub mod limits {
    /// Packages per inventory (a large workstation has ~5,000).
    pub const MAX_PACKAGES: usize = 100_000;
    /// Length of a package name, version, arch or source field.
    pub const MAX_FIELD_LEN: usize = 512;
    /// Pending updates per inventory.
    pub const MAX_PENDING: usize = 100_000;
}

/// Checks an inventory reported by an agent: a known OS, a package format that
/// fits it, no empty or oversized fields, no duplicate package keys.
/// The message names the first problem found.
pub fn validate(inv: &Inventory) -> Result<OsFamily, String> {
    let os = &inv.facts.os;
    let family = os_family(os).ok_or_else(|| {
        format!(
            "unknown OS: os-release ID={:?} ID_LIKE={:?}; supported: {KNOWN_OS_IDS}",
            os.id, os.id_like
        )
    })?;
    if inv.packages.len() > limits::MAX_PACKAGES {
        return Err(format!(
            "inventory lists {} packages; the limit is {}",
            inv.packages.len(),
            limits::MAX_PACKAGES
        ));
    }
    unmanaged::check(&inv.facts.unmanaged)?;
    if inv.pending_updates.len() > limits::MAX_PENDING {
        return Err(format!(
            "inventory lists {} pending updates; the limit is {}",
            inv.pending_updates.len(),
            limits::MAX_PENDING
        ));
    }
    match inv.format {
        Some(f) if f != family.package_format() => {
            return Err(format!(
                "package format {} does not fit OS {} (expected {})",
                f.as_str(),
                os.id,
                family.package_format().as_str()
            ));
        }
        None if !inv.packages.is_empty() => {
            return Err("packages are listed without a package format".into());
        }
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for (i, p) in inv.packages.iter().enumerate() {
        for (field, value) in [("name", &p.name), ("version", &p.version)] {
            if value.is_empty() {
                return Err(format!("package #{i} ({:?}) has an empty {field}", p.name));
            }
        }
        for (field, value) in [
            ("name", Some(&p.name)),
            ("version", Some(&p.version)),
            ("arch", Some(&p.arch)),
            ("source", p.source.as_ref()),
            ("source_version", p.source_version.as_ref()),
        ] {
            if let Some(v) = value
                && (v.len() > limits::MAX_FIELD_LEN || v.chars().any(char::is_control))
            {
                return Err(format!(
                    "package #{i} ({:?}): {field} is longer than {} bytes or contains control characters",
                    p.name,
                    limits::MAX_FIELD_LEN
                ));
            }
        }
        check_package_rules(family.package_format(), &format!("package #{i}"), p)?;
        if !seen.insert(p.key()) {
            return Err(format!(
                "package {} {} ({}) is listed twice",
                p.name, p.version, p.arch
            ));
        }
    }
    let fmt = family.package_format();
    for (i, u) in inv.pending_updates.iter().enumerate() {
        let at = format!("pending update #{i} ({:?})", u.name);
        for (field, value) in [
            ("name", &u.name),
            ("arch", &u.arch),
            ("current_version", &u.current_version),
            ("available_version", &u.available_version),
            ("origin", &u.origin),
        ] {
            if value.len() > limits::MAX_FIELD_LEN || value.chars().any(char::is_control) {
                return Err(format!(
                    "{at}: {field} is longer than {} bytes or contains control characters",
                    limits::MAX_FIELD_LEN
                ));
            }
        }
        if !rules::valid_name(fmt, &u.name) {
            return Err(format!("{at}: invalid name: {}", rules::name_rule(fmt)));
        }
        if !rules::valid_arch(&u.arch) {
            return Err(format!(
                "{at}: invalid arch {:?}: architectures are [A-Za-z0-9_.-]*",
                u.arch
            ));
        }
        for (field, v) in [
            ("current_version", &u.current_version),
            ("available_version", &u.available_version),
        ] {
            if !v.is_empty() && !rules::valid_version(fmt, v) {
                return Err(format!(
                    "{at}: invalid {field} {v:?}: {}",
                    rules::version_rule(fmt)
                ));
            }
        }
    }
    Ok(family)
}

/// Holds one package to its ecosystem's rules ([`rules`]); the message names
/// the package (`at`), the field and the rule.
fn check_package_rules(fmt: PackageFormat, at: &str, p: &Package) -> Result<(), String> {
    let at = format!("{at} ({:?})", p.name);
    if !rules::valid_name(fmt, &p.name) {
        return Err(format!("{at}: invalid name: {}", rules::name_rule(fmt)));
    }
    if !rules::valid_version(fmt, &p.version) {
        return Err(format!(
            "{at}: invalid version {:?}: {}",
            p.version,
            rules::version_rule(fmt)
        ));
    }
    if !rules::valid_arch(&p.arch) {
        return Err(format!(
            "{at}: invalid arch {:?}: architectures are [A-Za-z0-9_.-]*",
            p.arch
        ));
    }
    if let Some(s) = &p.source
        && !rules::valid_name(fmt, s)
    {
        return Err(format!(
            "{at}: invalid source name {s:?}: {}",
            rules::name_rule(fmt)
        ));
    }
    if let Some(v) = &p.source_version
        && !rules::valid_version(fmt, v)
    {
        return Err(format!(
            "{at}: invalid source_version {v:?}: {}",
            rules::version_rule(fmt)
        ));
    }
    Ok(())
}
