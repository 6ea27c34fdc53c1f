//! Matching installed packages against advisories.
//!
//! An asset's OS decides the OSV ecosystem (`Debian:12`, `Ubuntu:24.04:LTS`,
//! `Alpine:v3.20`, `AlmaLinux:9`, `Rocky Linux:9`) and the version scheme. Debian,
//! Ubuntu and Alpine advisories are keyed by **source** package (dpkg `Source:`, apk
//! origin), so the source name and source version are compared; RPM distributions
//! key advisories by binary package name.
//!
//! The unit of work is one (ecosystem, package, version) triple
//! ([`Index::match_version`]): fleets share most of their packages, so an
//! [`Assessor`] caches each triple's matches and a 10,000-host fleet costs little more
//! than its distinct set.

use crate::inventory::unmanaged::{Ecosystem, Unmanaged};
use crate::inventory::{OsRelease, Package};
use patchbay_version::Scheme;
use patchbay_version::osv::{Range, evaluate_at};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Which package name advisories of an ecosystem are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyBy {
    /// Source package (Debian, Ubuntu, Alpine).
    Source,
    /// Binary package (RPM distributions).
    Binary,
}

/// Where an asset's packages are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// OSV ecosystem, e.g. `Debian:12`.
    pub ecosystem: String,
    /// Version scheme of that ecosystem.
    pub scheme: Scheme,
    /// Advisory key.
    pub key_by: KeyBy,
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Maps an os-release to its OSV ecosystem. `Err` names what is unsupported.
pub fn target_for(os: &OsRelease) -> Result<Target, String> {
    let v = os.version_id.trim();
    let need_version = || {
        if v.is_empty() {
            Err(format!("os-release of {:?} has no VERSION_ID", os.id))
        } else {
            Ok(())
        }
    };
    let t = |eco: String, scheme, key_by| {
        Ok(Target {
            ecosystem: eco,
            scheme,
            key_by,
        })
    };
    match os.id.as_str() {
        "debian" => {
            need_version()?;
            t(format!("Debian:{}", major(v)), Scheme::Deb, KeyBy::Source)
        }
        "ubuntu" => {
            need_version()?;
            // OSV names LTS releases `Ubuntu:YY.04:LTS`: even years, April.
            let lts = v.ends_with(".04")
                && v.split('.')
                    .next()
                    .and_then(|y| y.parse::<u32>().ok())
                    .is_some_and(|y| y % 2 == 0);
            let eco = if lts {
                format!("Ubuntu:{v}:LTS")
            } else {
                format!("Ubuntu:{v}")
            };
            t(eco, Scheme::Deb, KeyBy::Source)
        }
        "alpine" => {
            need_version()?;
            t(
                format!("Alpine:v{}", major_minor(v)),
                Scheme::Apk,
                KeyBy::Source,
            )
        }
        "almalinux" => {
            need_version()?;
            t(
                format!("AlmaLinux:{}", major(v)),
                Scheme::Rpm,
                KeyBy::Binary,
            )
        }
        "rocky" => {
            need_version()?;
            t(
                format!("Rocky Linux:{}", major(v)),
                Scheme::Rpm,
                KeyBy::Binary,
            )
        }
        other => Err(format!(
            "no advisory ecosystem for OS {other:?} {v:?}; supported: debian, ubuntu, alpine, almalinux, rocky"
        )),
    }
}

/// What an advisory says beyond its affected packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryInfo {
    /// Feed id (`DSA-…`, `ALSA-…`, `DEBIAN-CVE-…`, `UBUNTU-CVE-…`).
    pub id: String,
    /// CVE ids it covers.
    pub cves: Vec<String>,
    /// CVSS base score, when the feed gives one.
    pub cvss: Option<f64>,
    /// CVSS vector.
    pub cvss_vector: Option<String>,
    /// Summary.
    pub summary: String,
    /// Publication time (the SLA clock starts no earlier).
    pub published: Option<jiff::Timestamp>,
    /// The distribution's own severity, as (whose, level): (`Debian urgency`,
    /// `high`). Used when no CVSS score is known (ADR 0013). Not kept in the
    /// compiled index ([`crate::compiled`]): the offline scan ranks nothing.
    pub distro_severity: Option<(String, String)>,
}

/// One affected-package entry of an advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct AffectedEntry {
    /// Index of the advisory in the [`Index`].
    pub advisory: usize,
    /// Ranges.
    pub ranges: Vec<Range>,
    /// Explicitly listed affected versions.
    pub versions: Vec<String>,
}

/// Advisories indexed by (ecosystem, package).
#[derive(Debug, Default, Clone)]
pub struct Index {
    advisories: Vec<AdvisoryInfo>,
    by_key: HashMap<(String, String), Vec<AffectedEntry>>,
    ids: HashMap<String, usize>,
}

/// A problem met while matching (an advisory with an invalid version), reported
/// and skipped — it never hides the other advisories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Advisory id.
    pub advisory: String,
    /// What is wrong.
    pub message: String,
}

/// An advisory that applies to one installed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the advisory.
    pub advisory: usize,
    /// The version that fixes it, if known.
    pub fixed: Option<String>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an advisory with its affected entries `(ecosystem, package, ranges,
    /// versions)`. Feeds may split one advisory over several records (AlmaLinux
    /// does, one per module stream): a known id gets the new entries added to it.
    pub fn add(
        &mut self,
        info: AdvisoryInfo,
        affected: Vec<(String, String, Vec<Range>, Vec<String>)>,
    ) {
        let idx = match self.ids.get(&info.id) {
            Some(&i) => i,
            None => {
                let i = self.advisories.len();
                self.ids.insert(info.id.clone(), i);
                self.advisories.push(info);
                i
            }
        };
        for (eco, pkg, ranges, versions) in affected {
            // PyPI names are matched PEP 503-normalised on both sides
            // (`Foo_Bar` and `foo-bar` are one project).
            let pkg = match Ecosystem::from_osv(&eco) {
                Some(e @ Ecosystem::Pypi) => e.key_name(&pkg),
                _ => pkg,
            };
            let entries = self.by_key.entry((eco, pkg)).or_default();
            let e = AffectedEntry {
                advisory: idx,
                ranges,
                versions,
            };
            // Reading the same record twice must not double anything.
            if !entries.contains(&e) {
                entries.push(e);
            }
        }
    }

    /// Number of advisories.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisory at `i`.
    pub fn advisory(&self, i: usize) -> &AdvisoryInfo {
        &self.advisories[i]
    }

    /// The advisory with this id.
    pub fn by_id(&self, id: &str) -> Option<&AdvisoryInfo> {
        self.ids.get(id).map(|&i| &self.advisories[i])
    }

    /// Entries for (ecosystem, package).
    pub fn entries(&self, ecosystem: &str, package: &str) -> &[AffectedEntry] {
        self.by_key
            .get(&(ecosystem.to_string(), package.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every (ecosystem, package) with its entries, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str, &[AffectedEntry])> {
        self.by_key
            .iter()
            .map(|((e, p), v)| (e.as_str(), p.as_str(), v.as_slice()))
    }

    /// An index of exactly these advisories and entries (the entries' `advisory`
    /// indices point into `advisories`; nothing is merged or deduplicated — the
    /// compiled index hands back what an [`Index`] held). An entry whose advisory
    /// index is out of range is an error, naming the key.
    pub fn from_parts(
        advisories: Vec<AdvisoryInfo>,
        by_key: HashMap<(String, String), Vec<AffectedEntry>>,
    ) -> Result<Self, String> {
        for ((eco, pkg), entries) in &by_key {
            if let Some(e) = entries.iter().find(|e| e.advisory >= advisories.len()) {
                return Err(format!(
                    "entry of ({eco}, {pkg}) names advisory {} of {}",
                    e.advisory,
                    advisories.len()
                ));
            }
        }
        let ids = advisories
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        Ok(Self {
            advisories,
            by_key,
            ids,
        })
    }

    /// The advisories that affect `version` of `package` in `ecosystem`.
    pub fn match_version(
        &self,
        scheme: Scheme,
        ecosystem: &str,
        package: &str,
        version: &str,
    ) -> (Vec<Match>, Vec<Problem>) {
        match_entries(scheme, self.entries(ecosystem, package), version, |i| {
            self.advisories[i].id.clone()
        })
    }
}

/// The advisories among `entries` (one package's, from an [`Index`] or the
/// compiled index) that affect `version`: one [`Match`] per advisory, with
/// the lowest fixed version any of its entries names; an entry that cannot be
/// evaluated is a [`Problem`] naming its advisory (`advisory_id`).
pub fn match_entries(
    scheme: Scheme,
    entries: &[AffectedEntry],
    version: &str,
    advisory_id: impl Fn(usize) -> String,
) -> (Vec<Match>, Vec<Problem>) {
    let mut matches: Vec<Match> = Vec::new();
    // Advisory → its position in `matches` (the kernel's source package
    // alone matches thousands of advisories: no linear search per entry).
    let mut at: HashMap<usize, usize> = HashMap::new();
    let mut problems = Vec::new();
    // The installed version is parsed once, not once per entry; when it is
    // invalid, every entry reports that, as `evaluate` would.
    let inst = patchbay_version::SchemeVersion::parse(scheme, version);
    for e in entries {
        let verdict = match &inst {
            Ok(inst) => evaluate_at(scheme, &e.ranges, &e.versions, version, inst),
            Err(err) => Err(err.clone()),
        };
        match verdict {
            Ok(v) if v.affected => {
                // One advisory may list a package twice (two ranges entries):
                // keep one match, with the lowest fixed version any of them names
                // (the nearest upgrade that closes it).
                if let Some(&k) = at.get(&e.advisory) {
                    let m = &mut matches[k];
                    m.fixed = match (m.fixed.take(), v.fixed) {
                        (Some(a), Some(b)) => match patchbay_version::compare(scheme, &b, &a) {
                            Ok(std::cmp::Ordering::Less) => Some(b),
                            _ => Some(a),
                        },
                        (a, b) => a.or(b),
                    };
                } else {
                    at.insert(e.advisory, matches.len());
                    matches.push(Match {
                        advisory: e.advisory,
                        fixed: v.fixed,
                    });
                }
            }
            Ok(_) => {}
            Err(err) => problems.push(Problem {
                advisory: advisory_id(e.advisory),
                message: err.to_string(),
            }),
        }
    }
    (matches, problems)
}

/// A vulnerable installed package: asset × advisory × package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Installed (binary) package name.
    pub package: String,
    /// Source package the advisory is keyed by (Debian, Ubuntu, Alpine), else the
    /// binary name.
    pub source_package: String,
    /// Architecture of the installed package.
    pub arch: String,
    /// Installed version (of the binary package).
    pub installed_version: String,
    /// The version compared against the advisory (the source version for dpkg).
    pub compared_version: String,
    /// Version that fixes it, if known.
    pub fixed_version: Option<String>,
    /// Advisory id.
    pub advisory: String,
    /// CVE ids.
    pub cves: Vec<String>,
    /// CVSS base score.
    pub cvss: Option<f64>,
}

/// The (package, version) an installed package is matched under.
pub fn match_key(p: &Package, key_by: KeyBy) -> (&str, &str) {
    match key_by {
        KeyBy::Binary => (&p.name, &p.version),
        KeyBy::Source => (
            p.source.as_deref().unwrap_or(&p.name),
            p.source_version.as_deref().unwrap_or(&p.version),
        ),
    }
}

/// (ecosystem, package, version).
type Triple = (String, String, String);
/// The matches of one triple, and the advisories skipped on the way.
type Matched = (Vec<Match>, Vec<Problem>);

/// Matches packages against an index, caching each (ecosystem, package, version)
/// so that hosts sharing packages share the work.
#[derive(Debug, Default)]
pub struct Assessor {
    cache: HashMap<Triple, Arc<Matched>>,
    /// Triples evaluated (cache misses).
    pub evaluated: u64,
    /// Triples answered from the cache.
    pub reused: u64,
}

impl Assessor {
    /// A new assessor with an empty cache (make a new one when the index changes).
    pub fn new() -> Self {
        Self::default()
    }

    /// The findings of one host.
    pub fn assess(
        &mut self,
        index: &Index,
        target: &Target,
        packages: &[Package],
    ) -> (Vec<Finding>, Vec<Problem>) {
        let mut findings = Vec::new();
        let mut problems = Vec::new();
        for p in packages {
            let (name, version) = match_key(p, target.key_by);
            let key = (
                target.ecosystem.clone(),
                name.to_string(),
                version.to_string(),
            );
            let res = match self.cache.get(&key) {
                Some(r) => {
                    self.reused += 1;
                    r.clone()
                }
                None => {
                    self.evaluated += 1;
                    let r = Arc::new(index.match_version(
                        target.scheme,
                        &target.ecosystem,
                        name,
                        version,
                    ));
                    self.cache.insert(key, r.clone());
                    r
                }
            };
            for m in &res.0 {
                let a = index.advisory(m.advisory);
                findings.push(Finding {
                    package: p.name.clone(),
                    source_package: name.to_string(),
                    arch: p.arch.clone(),
                    installed_version: p.version.clone(),
                    compared_version: version.to_string(),
                    fixed_version: m.fixed.clone(),
                    advisory: a.id.clone(),
                    cves: a.cves.clone(),
                    cvss: a.cvss,
                });
            }
            for pr in &res.1 {
                if !problems.contains(pr) {
                    problems.push(pr.clone());
                }
            }
        }
        findings.sort_by(|a, b| {
            (&a.package, &a.arch, &a.advisory).cmp(&(&b.package, &b.arch, &b.advisory))
        });
        (findings, problems)
    }
}

/// The `arch` of a finding of unmanaged software: `unmanaged:<path>`. Findings
/// are keyed by (advisory, package, arch), so the same distribution in two
/// virtualenvs is two findings, and none can collide with a package's (no
/// package architecture contains `:`).
pub const UNMANAGED_ARCH_PREFIX: &str = "unmanaged:";

/// The finding `arch` of unmanaged software at `path`.
pub fn unmanaged_arch(path: &str) -> String {
    format!("{UNMANAGED_ARCH_PREFIX}{path}")
}

/// A finding's name: `F-<asset>-<advisory>-<package>`, and for unmanaged
/// software `F-<asset>-<advisory>-<package>@<path>` (the same distribution in
/// two virtualenvs is two findings, so two names: an SLA breach or a
/// notification names the one it is about).
pub fn finding_name(asset: &str, advisory: &str, package: &str, arch: &str) -> String {
    match unmanaged_path(arch) {
        Some(path) => format!("F-{asset}-{advisory}-{package}@{path}"),
        None => format!("F-{asset}-{advisory}-{package}"),
    }
}

/// The path of a finding of unmanaged software (its `arch`), `None` for a
/// package's finding.
pub fn unmanaged_path(arch: &str) -> Option<&str> {
    arch.strip_prefix(UNMANAGED_ARCH_PREFIX)
}

impl Assessor {
    /// The findings of software installed outside the package manager: each
    /// item matched in its own OSV ecosystem (`PyPI`, `npm`, `Go`,
    /// `crates.io`) with that ecosystem's version order, whatever the host's
    /// OS. A finding's `arch` is [`unmanaged_arch`] of the item's path, its
    /// `source_package` the name advisories key it under. An item whose
    /// version is not valid in its ecosystem (a Go main module at `(devel)`,
    /// a legacy Python version) matches nothing and is reported as a problem
    /// by the advisories it could not be compared with.
    pub fn assess_unmanaged(
        &mut self,
        index: &Index,
        items: &[Unmanaged],
    ) -> (Vec<Finding>, Vec<Problem>) {
        let mut findings = Vec::new();
        let mut problems = Vec::new();
        for u in items {
            let eco = u.ecosystem.osv();
            let Some(scheme) = Scheme::for_osv_ecosystem(eco) else {
                continue;
            };
            let name = u.ecosystem.key_name(&u.name);
            let key = (eco.to_owned(), name.clone(), u.version.clone());
            let res = match self.cache.get(&key) {
                Some(r) => {
                    self.reused += 1;
                    r.clone()
                }
                None => {
                    self.evaluated += 1;
                    let r = Arc::new(index.match_version(scheme, eco, &name, &u.version));
                    self.cache.insert(key, r.clone());
                    r
                }
            };
            for m in &res.0 {
                let a = index.advisory(m.advisory);
                findings.push(Finding {
                    package: u.name.clone(),
                    source_package: name.clone(),
                    arch: unmanaged_arch(&u.path),
                    installed_version: u.version.clone(),
                    compared_version: u.version.clone(),
                    fixed_version: m.fixed.clone(),
                    advisory: a.id.clone(),
                    cves: a.cves.clone(),
                    cvss: a.cvss,
                });
            }
            for pr in &res.1 {
                if !problems.contains(pr) {
                    problems.push(pr.clone());
                }
            }
        }
        findings.sort_by(|a, b| {
            (&a.package, &a.arch, &a.advisory).cmp(&(&b.package, &b.arch, &b.advisory))
        });
        // One binary may name a module twice (a dep and its replacement's
        // target): one finding per key.
        findings.dedup_by(|a, b| {
            (&a.package, &a.arch, &a.advisory) == (&b.package, &b.arch, &b.advisory)
        });
        (findings, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `match_entries` keeps one match per advisory, with the lowest fixed
    /// version its entries name, in first-seen order; an invalid installed
    /// version is reported once per entry (the installed version is parsed
    /// once, not per entry).
    #[test]
    fn match_entries_merges_an_advisorys_entries_and_reports_bad_versions() {
        use patchbay_version::osv::{Event, RangeKind};
        let entry = |advisory: usize, fixed: &str| AffectedEntry {
            advisory,
            ranges: vec![Range {
                kind: RangeKind::Ecosystem,
                events: vec![Event::Introduced("0".into()), Event::Fixed(fixed.into())],
            }],
            versions: vec![],
        };
        let entries = [
            entry(7, "2.0-1"),
            entry(3, "1.9-1"),
            entry(7, "1.5-1"),
            entry(9, "1.0-1"), // not affected at 1.2-1
            entry(7, "1.8-1"),
            entry(3, "1.10-1"), // later than 1.9-1 by dpkg, earlier as text
        ];
        let (ms, ps) = match_entries(Scheme::Deb, &entries, "1.2-1", |a| format!("A{a}"));
        assert!(ps.is_empty(), "{ps:?}");
        let got: Vec<(usize, Option<&str>)> = ms
            .iter()
            .map(|m| (m.advisory, m.fixed.as_deref()))
            .collect();
        assert_eq!(got, [(7, Some("1.5-1")), (3, Some("1.9-1"))]);

        let (ms, ps) = match_entries(Scheme::Deb, &entries, "1.2 -1", |a| format!("A{a}"));
        assert!(ms.is_empty());
        assert_eq!(ps.len(), entries.len());
        assert_eq!(ps[0].advisory, "A7");
        assert!(ps[0].message.contains("1.2 -1"), "{}", ps[0].message);
    }

    fn os(id: &str, v: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            version_id: v.into(),
            ..Default::default()
        }
    }

    #[test]
    fn split_advisories_merge_and_are_found_by_id() {
        let info = |id: &str| AdvisoryInfo {
            distro_severity: None,
            id: id.into(),
            cves: vec![],
            cvss: None,
            cvss_vector: None,
            summary: String::new(),
            published: None,
        };
        let mut idx = Index::new();
        idx.add(
            info("ALSA-1"),
            vec![("AlmaLinux:9".into(), "a".into(), vec![], vec!["1-1".into()])],
        );
        idx.add(
            info("ALSA-1"),
            vec![("AlmaLinux:9".into(), "b".into(), vec![], vec!["1-1".into()])],
        );
        idx.add(
            info("ALSA-1"),
            vec![("AlmaLinux:9".into(), "b".into(), vec![], vec!["1-1".into()])],
        );
        assert_eq!(idx.len(), 1);
        assert_eq!(
            idx.entries("AlmaLinux:9", "b").len(),
            1,
            "a record read twice adds nothing"
        );
        assert_eq!(idx.by_id("ALSA-1").map(|a| a.id.as_str()), Some("ALSA-1"));
        assert!(idx.by_id("ALSA-2").is_none());
        let (m, _) = idx.match_version(Scheme::Rpm, "AlmaLinux:9", "a", "1-1");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn ecosystems_follow_osv_names() {
        let eco = |id, v| target_for(&os(id, v)).map(|t| t.ecosystem);
        assert_eq!(eco("debian", "12").unwrap(), "Debian:12");
        assert_eq!(eco("ubuntu", "24.04").unwrap(), "Ubuntu:24.04:LTS");
        assert_eq!(eco("ubuntu", "22.04").unwrap(), "Ubuntu:22.04:LTS");
        assert_eq!(eco("ubuntu", "23.10").unwrap(), "Ubuntu:23.10");
        assert_eq!(eco("ubuntu", "25.04").unwrap(), "Ubuntu:25.04");
        assert_eq!(eco("alpine", "3.20.3").unwrap(), "Alpine:v3.20");
        assert_eq!(eco("almalinux", "9.4").unwrap(), "AlmaLinux:9");
        assert_eq!(eco("rocky", "8.10").unwrap(), "Rocky Linux:8");
        assert!(eco("debian", "").is_err());
        assert!(eco("plan9", "4").unwrap_err().contains("plan9"));
        assert_eq!(
            target_for(&os("alpine", "3.20.3")).unwrap().scheme,
            Scheme::Apk
        );
        assert_eq!(
            target_for(&os("almalinux", "9")).unwrap().key_by,
            KeyBy::Binary
        );
    }
}
