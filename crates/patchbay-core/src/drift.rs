//! Configuration drift: a group's **baseline** and each host's difference
//! from it (issue 18, item 4; ADR 0019).
//!
//! A baseline is one version per package (keyed by name and architecture):
//!
//! - **modal** (the default): a package is in the baseline when a strict
//!   majority of the group's hosts have it installed (`2 · hosts_with > hosts`);
//!   its version is the one most of those hosts have. A tie between versions
//!   goes to the **highest** version in the ecosystem's order
//!   (`patchbay_version::compare`), so converging to a baseline never needs a
//!   downgrade to break a tie; versions the scheme cannot order (invalid) lose
//!   to ones it can, and among themselves the byte-wise greatest wins. The
//!   answer depends only on the multiset of inventories, never on their order
//!   (property-tested).
//! - **golden host**: exactly one named host's packages.
//!
//! A host's drift is every package where it differs: `newer` / `older` (by
//! the ecosystem's order), `differs` (the versions cannot be ordered: an
//! invalid version), `missing` (in the baseline, not on the host) and `extra`
//! (on the host, not in the baseline). A host equal to its baseline has none.
//!
//! [`converge_pins`] turns a host's drift into what a deployment may do about
//! it: exact pins for `older` packages only. Deployments only upgrade and only
//! touch installed packages, so `newer`, `differs`, `missing` and `extra` are
//! reported, never acted on — nothing is ever removed.
//!
//! Pure: no IO, no clock.

use patchbay_version::{Scheme, compare};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// One installed package of a host, as drift sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pkg {
    /// Binary package name.
    pub name: String,
    /// Architecture (`amd64`, `x86_64`, `all`, …).
    pub arch: String,
    /// Installed version.
    pub version: String,
}

/// A host and its installed packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Asset name.
    pub asset: String,
    /// Installed packages (any order; a (name, arch) installed twice counts once,
    /// the highest version).
    pub packages: Vec<Pkg>,
}

/// Where a baseline comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The modal version per package over the group's hosts.
    Modal,
    /// One host's packages.
    Golden {
        /// The golden host.
        asset: String,
    },
}

/// One package of a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// The baseline version.
    pub version: String,
    /// Hosts that have the package (any version).
    pub hosts_with: usize,
    /// Hosts that have it at the baseline version.
    pub hosts_at: usize,
}

/// A group's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Modal or golden host.
    pub source: Source,
    /// Hosts it was computed over.
    pub hosts: usize,
    /// Its packages, sorted by (name, arch).
    pub entries: Vec<Entry>,
}

/// How a host's package differs from the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The host's version is newer than the baseline's.
    Newer,
    /// The host's version is older than the baseline's.
    Older,
    /// The versions differ and the scheme cannot order them (invalid version).
    Differs,
    /// In the baseline, not installed on the host.
    Missing,
    /// Installed on the host, not in the baseline.
    Extra,
}

impl Kind {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Newer => "newer",
            Kind::Older => "older",
            Kind::Differs => "differs",
            Kind::Missing => "missing",
            Kind::Extra => "extra",
        }
    }
}

/// One package where a host differs from its baseline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Difference {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// How it differs.
    pub kind: Kind,
    /// The baseline's version (`None`: extra).
    pub baseline: Option<String>,
    /// The host's version (`None`: missing).
    pub installed: Option<String>,
}

/// `a` vs `b` in `scheme`'s order; `None` when either cannot be parsed.
fn order(scheme: Scheme, a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    compare(scheme, a, b).ok()
}

/// Whether version `a` beats `b` in a tie: the higher in the scheme's order;
/// an orderable version beats one that is not; else the byte-wise greater.
fn tie_beats(scheme: Scheme, a: &str, b: &str) -> bool {
    let valid = |v: &str| compare(scheme, v, v).is_ok();
    match (valid(a), valid(b)) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => match compare(scheme, a, b) {
            Ok(Ordering::Equal) | Err(_) => a > b,
            Ok(o) => o == Ordering::Greater,
        },
        (false, false) => a > b,
    }
}

/// One version per (name, arch) of a host: the highest if listed twice.
fn keyed(scheme: Scheme, h: &Host) -> BTreeMap<(&str, &str), &str> {
    let mut out: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for p in &h.packages {
        let k = (p.name.as_str(), p.arch.as_str());
        match out.get(&k) {
            Some(v) if !tie_beats(scheme, &p.version, v) => {}
            _ => {
                out.insert(k, &p.version);
            }
        }
    }
    out
}

/// The modal baseline of `hosts` (see the module documentation for the rule).
pub fn modal(scheme: Scheme, hosts: &[Host]) -> Baseline {
    // (name, arch) → version → hosts at it.
    let mut counts: BTreeMap<(&str, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    let keyed: Vec<_> = hosts.iter().map(|h| keyed(scheme, h)).collect();
    for k in &keyed {
        for (key, v) in k {
            *counts.entry(*key).or_default().entry(v).or_default() += 1;
        }
    }
    let n = hosts.len();
    let mut entries = Vec::new();
    for ((name, arch), versions) in counts {
        let with: usize = versions.values().sum();
        if 2 * with <= n {
            continue;
        }
        let mut best: Option<(&str, usize)> = None;
        for (v, c) in versions {
            best = match best {
                None => Some((v, c)),
                Some((bv, bc)) if c > bc || (c == bc && tie_beats(scheme, v, bv)) => Some((v, c)),
                keep => keep,
            };
        }
        if let Some((v, c)) = best {
            entries.push(Entry {
                name: name.to_owned(),
                arch: arch.to_owned(),
                version: v.to_owned(),
                hosts_with: with,
                hosts_at: c,
            });
        }
    }
    Baseline {
        source: Source::Modal,
        hosts: n,
        entries,
    }
}

/// The baseline a golden host sets: its own packages.
pub fn golden(scheme: Scheme, host: &Host) -> Baseline {
    Baseline {
        source: Source::Golden {
            asset: host.asset.clone(),
        },
        hosts: 1,
        entries: keyed(scheme, host)
            .into_iter()
            .map(|((name, arch), v)| Entry {
                name: name.to_owned(),
                arch: arch.to_owned(),
                version: v.to_owned(),
                hosts_with: 1,
                hosts_at: 1,
            })
            .collect(),
    }
}

/// Where `host` differs from `baseline`, sorted by (name, arch).
pub fn diff(scheme: Scheme, baseline: &Baseline, host: &Host) -> Vec<Difference> {
    let mine = keyed(scheme, host);
    let base: BTreeMap<(&str, &str), &str> = baseline
        .entries
        .iter()
        .map(|e| ((e.name.as_str(), e.arch.as_str()), e.version.as_str()))
        .collect();
    let keys: BTreeSet<(&str, &str)> = mine.keys().chain(base.keys()).copied().collect();
    let mut out = Vec::new();
    for key in keys {
        let (b, h) = (base.get(&key).copied(), mine.get(&key).copied());
        let kind = match (b, h) {
            (Some(b), Some(h)) => match order(scheme, h, b) {
                Some(Ordering::Equal) => continue,
                Some(Ordering::Greater) => Kind::Newer,
                Some(Ordering::Less) => Kind::Older,
                None => Kind::Differs,
            },
            (Some(_), None) => Kind::Missing,
            (None, Some(_)) => Kind::Extra,
            (None, None) => continue,
        };
        out.push(Difference {
            name: key.0.to_owned(),
            arch: key.1.to_owned(),
            kind,
            baseline: b.map(str::to_owned),
            installed: h.map(str::to_owned),
        });
    }
    out
}

/// What converging a host to its baseline installs: the baseline version of
/// each `older` package, by name (a name on several architectures: the
/// highest baseline version). Nothing else: see the module documentation.
pub fn converge_pins(scheme: Scheme, differences: &[Difference]) -> Vec<(String, String)> {
    let mut out: BTreeMap<&str, &str> = BTreeMap::new();
    for d in differences.iter().filter(|d| d.kind == Kind::Older) {
        let Some(v) = d.baseline.as_deref() else {
            continue;
        };
        match out.get(d.name.as_str()) {
            Some(cur) if !tie_beats(scheme, v, cur) => {}
            _ => {
                out.insert(&d.name, v);
            }
        }
    }
    out.into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Drifted packages per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Newer than the baseline.
    pub newer: usize,
    /// Older than the baseline.
    pub older: usize,
    /// Unorderable versions.
    pub differs: usize,
    /// Missing.
    pub missing: usize,
    /// Extra.
    pub extra: usize,
}

impl Counts {
    /// Counts `differences` by kind.
    pub fn of(differences: &[Difference]) -> Self {
        let mut c = Counts::default();
        for d in differences {
            match d.kind {
                Kind::Newer => c.newer += 1,
                Kind::Older => c.older += 1,
                Kind::Differs => c.differs += 1,
                Kind::Missing => c.missing += 1,
                Kind::Extra => c.extra += 1,
            }
        }
        c
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.newer + self.older + self.differs + self.missing + self.extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(name: &str, pkgs: &[(&str, &str)]) -> Host {
        Host {
            asset: name.into(),
            packages: pkgs
                .iter()
                .map(|(n, v)| Pkg {
                    name: (*n).into(),
                    arch: "amd64".into(),
                    version: (*v).into(),
                })
                .collect(),
        }
    }

    fn version_of<'a>(b: &'a Baseline, name: &str) -> Option<&'a str> {
        b.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.version.as_str())
    }

    #[test]
    fn modal_takes_the_majority_and_breaks_ties_upwards() {
        let hosts = [
            host(
                "a",
                &[("openssl", "3.0.1-1"), ("curl", "7.0-1"), ("vim", "9")],
            ),
            host("b", &[("openssl", "3.0.1-1"), ("curl", "7.1-1")]),
            host("c", &[("openssl", "3.0.2-1")]),
        ];
        let b = modal(Scheme::Deb, &hosts);
        assert_eq!(version_of(&b, "openssl"), Some("3.0.1-1"));
        // curl: 7.0-1 and 7.1-1 once each: the higher wins.
        assert_eq!(version_of(&b, "curl"), Some("7.1-1"));
        // vim on one host of three: not in the baseline.
        assert_eq!(version_of(&b, "vim"), None);
        // Order by dpkg, not bytes: 1.10 > 1.9.
        let hosts = [host("a", &[("x", "1.9")]), host("b", &[("x", "1.10")])];
        assert_eq!(version_of(&modal(Scheme::Deb, &hosts), "x"), Some("1.10"));
        // Two hosts, one has it: not a strict majority.
        let hosts = [host("a", &[("x", "1")]), host("b", &[])];
        assert_eq!(version_of(&modal(Scheme::Deb, &hosts), "x"), None);
    }

    #[test]
    fn diff_names_every_kind() {
        let base = golden(
            Scheme::Deb,
            &host(
                "g",
                &[("a", "1.0"), ("b", "2.0"), ("c", "3.0"), ("d", "1.0")],
            ),
        );
        let h = host(
            "h",
            &[
                ("a", "1.0"),
                ("b", "2.1"),
                ("c", "2.9"),
                ("e", "1"),
                ("d", "a b"),
            ],
        );
        let d = diff(Scheme::Deb, &base, &h);
        let got: Vec<(&str, Kind)> = d.iter().map(|d| (d.name.as_str(), d.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("b", Kind::Newer),
                ("c", Kind::Older),
                ("d", Kind::Differs),
                ("e", Kind::Extra)
            ]
        );
        let h2 = host("h", &[("a", "1.0")]);
        let kinds: Vec<Kind> = diff(Scheme::Deb, &base, &h2)
            .iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(kinds, vec![Kind::Missing; 3]);
        assert_eq!(
            converge_pins(Scheme::Deb, &d),
            vec![("c".to_owned(), "3.0".to_owned())]
        );
    }

    fn arb_host() -> impl Strategy<Value = Host> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "d"]),
                prop::sample::select(vec![
                    "1.0",
                    "1.1",
                    "1.10",
                    "2:0.1",
                    "1.0~rc1",
                    "bad version",
                ]),
            ),
            0..5,
        )
        .prop_map(|ps| host("h", &ps))
    }

    proptest! {
        #[test]
        fn a_host_equal_to_the_baseline_has_no_drift(h in arb_host()) {
            let b = golden(Scheme::Deb, &h);
            prop_assert!(diff(Scheme::Deb, &b, &h).is_empty());
            // And a host whose packages are the baseline's entries.
            let hosts = vec![h.clone(), h.clone(), h];
            let m = modal(Scheme::Deb, &hosts);
            let same = Host { asset: "x".into(), packages: m.entries.iter().map(|e| Pkg {
                name: e.name.clone(), arch: e.arch.clone(), version: e.version.clone() }).collect() };
            prop_assert!(diff(Scheme::Deb, &m, &same).is_empty());
        }

        #[test]
        fn modal_is_permutation_invariant(
            hosts in prop::collection::vec(arb_host(), 0..6),
            seed in any::<u64>(),
        ) {
            let mut shuffled = hosts.clone();
            // A deterministic shuffle from the seed; package order within hosts too.
            let n = shuffled.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            for h in &mut shuffled {
                h.packages.reverse();
            }
            prop_assert_eq!(modal(Scheme::Deb, &hosts), modal(Scheme::Deb, &shuffled));
        }

        #[test]
        fn converging_older_packages_leaves_no_older(h in arb_host(), g in arb_host()) {
            let b = golden(Scheme::Deb, &g);
            let d = diff(Scheme::Deb, &b, &h);
            let pins = converge_pins(Scheme::Deb, &d);
            let mut after = h.clone();
            for p in &mut after.packages {
                if let Some((_, v)) = pins.iter().find(|(n, _)| n == &p.name) {
                    p.version = v.clone();
                }
            }
            prop_assert!(diff(Scheme::Deb, &b, &after).iter().all(|d| d.kind != Kind::Older));
        }
    }
}
