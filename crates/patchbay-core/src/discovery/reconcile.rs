//! Reconciliation of what the sources saw with the asset registry.
//!
//! Each observation is matched to at most one asset by the first rule that
//! finds one, strongest first ([`Rule`]): machine id, cloud instance id,
//! MAC, IP address (only when the MACs do not disagree), host name. The
//! rule is recorded. Then:
//! - **shadow**: observations matched to no asset, merged into one
//!   candidate per machine (observations sharing a MAC, a cloud id, or an
//!   address no two MACs claim), keyed by its smallest MAC, else cloud id,
//!   else address — stable across re-scans, so a dismissal sticks;
//! - **ghost**: an asset nothing attested (no agent check-in, no match by any
//!   source, not created) for longer than the threshold;
//! - **duplicate**: two asset records claiming one machine id, cloud id or
//!   MAC, or one observation whose strong identifiers point at two assets;
//! - **conflict**: one address seen with two MACs in the current view.

use super::{Mac, Observation, Port, SourceKind};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One stored observation in the current view (each source's latest import).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its stored id.
    pub id: i64,
    /// The source kind.
    pub kind: SourceKind,
    /// The source's name (`nmap:dmz`, `neighbour:web-01`).
    pub source: String,
    /// When it was seen.
    pub at: Timestamp,
    /// What was seen.
    pub obs: Observation,
}

/// An asset record as reconciliation sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The machine id its agent reported.
    pub machine_id: Option<String>,
    /// Cloud instance ids recorded for it.
    pub cloud_ids: Vec<String>,
    /// MACs recorded for it (its agent's interfaces, an adopted shadow's).
    pub macs: Vec<Mac>,
    /// Addresses recorded for it (its agent's last report, an adopted shadow's).
    pub ips: Vec<IpAddr>,
    /// Its agent's last check-in.
    pub last_checkin: Option<Timestamp>,
    /// The last time a discovery source matched it.
    pub last_sighting: Option<Timestamp>,
    /// When the record was made.
    pub created_at: Timestamp,
}

/// How an observation was matched to an asset, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The same `/etc/machine-id`.
    MachineId,
    /// The same cloud instance id.
    CloudId,
    /// A MAC address the asset has.
    Mac,
    /// An address the asset reported, with no MAC disagreeing.
    Ip,
    /// The asset's name (or the short form of an observed FQDN).
    HostName,
}

impl Rule {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::MachineId => "machine-id",
            Rule::CloudId => "cloud-id",
            Rule::Mac => "mac",
            Rule::Ip => "ip",
            Rule::HostName => "host-name",
        }
    }
}

/// An observation matched to an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The observation's id.
    pub observation: i64,
    /// The asset's id.
    pub asset: i64,
    /// The rule that matched.
    pub rule: Rule,
}

/// A machine the sources saw that no asset record stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// Its stable key (`mac:…`, `cloud:…`, `ip:…`).
    pub key: String,
    /// MACs seen.
    pub macs: Vec<Mac>,
    /// Addresses seen.
    pub ips: Vec<IpAddr>,
    /// Host names seen.
    pub host_names: Vec<String>,
    /// Cloud instance ids seen.
    pub cloud_ids: Vec<String>,
    /// Open ports any source reached.
    pub ports: Vec<Port>,
    /// An OS guess, if a source made one.
    pub os_guess: Option<String>,
    /// The sources that saw it.
    pub sources: Vec<String>,
    /// First and last seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
    /// The observations it is made of.
    pub observations: Vec<i64>,
}

/// An asset nothing has attested for longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghost {
    /// The asset.
    pub asset: i64,
    /// The last evidence of it (check-in, sighting or creation).
    pub last_evidence: Timestamp,
}

/// Several asset records for one machine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duplicate {
    /// The records, by id.
    pub assets: Vec<i64>,
    /// The identifier they share (`mac 52:54:…`, `machine-id …`, `cloud-id …`).
    pub by: String,
}

/// One address seen with several MACs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The address.
    pub ip: IpAddr,
    /// The MACs.
    pub macs: Vec<Mac>,
    /// The sources that reported them.
    pub sources: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Matched observations.
    pub matched: Vec<Matched>,
    /// Shadow candidates not dismissed, by key.
    pub shadows: Vec<Shadow>,
    /// Shadow candidates an operator dismissed, by key.
    pub dismissed: Vec<Shadow>,
    /// Ghost assets, by id.
    pub ghosts: Vec<Ghost>,
    /// Duplicate records.
    pub duplicates: Vec<Duplicate>,
    /// Address conflicts, by address.
    pub conflicts: Vec<Conflict>,
}

fn short(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Reconciles the current observations with the known assets.
pub fn reconcile(
    seen: &[Seen],
    known: &[Known],
    dismissed: &BTreeSet<String>,
    now: Timestamp,
    ghost_after: SignedDuration,
) -> Reconciliation {
    let mut out = Reconciliation::default();
    // Identifier → assets claiming it.
    let mut by_machine: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut by_cloud: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut by_mac: BTreeMap<Mac, BTreeSet<i64>> = BTreeMap::new();
    let mut by_ip: BTreeMap<IpAddr, BTreeSet<i64>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut has_macs: BTreeSet<i64> = BTreeSet::new();
    for k in known {
        if let Some(m) = k.machine_id.as_deref().filter(|m| !m.is_empty()) {
            by_machine.entry(m).or_default().insert(k.id);
        }
        for c in &k.cloud_ids {
            by_cloud.entry(c).or_default().insert(k.id);
        }
        for m in k.macs.iter().filter(|m| !m.is_placeholder()) {
            by_mac.entry(*m).or_default().insert(k.id);
            has_macs.insert(k.id);
        }
        for ip in &k.ips {
            by_ip.entry(*ip).or_default().insert(k.id);
        }
        by_name
            .entry(short(&k.name.to_ascii_lowercase()).to_string())
            .or_default()
            .insert(k.id);
    }
    let mut duplicates: BTreeSet<Duplicate> = BTreeSet::new();
    for (by, map) in [
        (
            "machine-id",
            by_machine
                .iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Vec<_>>(),
        ),
        (
            "cloud-id",
            by_cloud.iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ),
        (
            "mac",
            by_mac.iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ),
    ] {
        for (value, ids) in map {
            if ids.len() > 1 {
                duplicates.insert(Duplicate {
                    assets: ids.iter().copied().collect(),
                    by: format!("{by} {value}"),
                });
            }
        }
    }

    // Match each observation.
    let mut unmatched: Vec<&Seen> = Vec::new();
    let mut sightings: BTreeMap<i64, Timestamp> = BTreeMap::new();
    for s in seen {
        let o = &s.obs;
        let macs: BTreeSet<Mac> = o.macs().filter(|m| !m.is_placeholder()).collect();
        let mut found: Vec<(Rule, BTreeSet<i64>, String)> = Vec::new();
        if let Some(m) = o.machine_id.as_deref()
            && let Some(ids) = by_machine.get(m)
        {
            found.push((Rule::MachineId, ids.clone(), format!("machine-id {m}")));
        }
        if let Some(c) = o.cloud_id.as_deref()
            && let Some(ids) = by_cloud.get(c)
        {
            found.push((Rule::CloudId, ids.clone(), format!("cloud-id {c}")));
        }
        for m in &macs {
            if let Some(ids) = by_mac.get(m) {
                found.push((Rule::Mac, ids.clone(), format!("mac {m}")));
            }
        }
        for ip in o.ips() {
            if let Some(ids) = by_ip.get(&ip) {
                // An asset with known MACs that are not the observed one is
                // another machine that had (or has) this address.
                let ids: BTreeSet<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| {
                        macs.is_empty()
                            || !has_macs.contains(id)
                            || macs
                                .iter()
                                .any(|m| by_mac.get(m).is_some_and(|a| a.contains(id)))
                    })
                    .collect();
                if !ids.is_empty() {
                    found.push((Rule::Ip, ids, format!("ip {ip}")));
                }
            }
        }
        for h in &o.host_names {
            if let Some(ids) = by_name.get(short(h)) {
                found.push((Rule::HostName, ids.clone(), format!("host-name {h}")));
            }
        }
        found.sort_by_key(|(r, _, _)| *r);
        let Some((rule, ids, by)) = found.first() else {
            unmatched.push(s);
            continue;
        };
        let asset = *ids.iter().next().expect("a match has an asset");
        if ids.len() > 1 && *rule <= Rule::Mac {
            duplicates.insert(Duplicate {
                assets: ids.iter().copied().collect(),
                by: by.clone(),
            });
        }
        // Strong identifiers that point elsewhere: two records, one machine.
        for (r, other, by) in &found[1..] {
            if *r <= Rule::Mac && !other.contains(&asset) {
                let mut assets: BTreeSet<i64> = other.clone();
                assets.insert(asset);
                duplicates.insert(Duplicate {
                    assets: assets.into_iter().collect(),
                    by: by.clone(),
                });
            }
        }
        out.matched.push(Matched {
            observation: s.id,
            asset,
            rule: *rule,
        });
        let t = sightings.entry(asset).or_insert(s.at);
        *t = (*t).max(s.at);
    }
    out.duplicates = duplicates.into_iter().collect();

    // Conflicts: an address with several MACs in the current view.
    let mut ip_macs: BTreeMap<IpAddr, (BTreeSet<Mac>, BTreeSet<String>)> = BTreeMap::new();
    for s in seen {
        for i in &s.obs.interfaces {
            if let Some(m) = i.mac.filter(|m| !m.is_placeholder()) {
                for ip in &i.ips {
                    let e = ip_macs.entry(*ip).or_default();
                    e.0.insert(m);
                    e.1.insert(s.source.clone());
                }
            }
        }
    }
    let conflicted: BTreeSet<IpAddr> = ip_macs
        .iter()
        .filter(|(_, (m, _))| m.len() > 1)
        .map(|(ip, _)| *ip)
        .collect();
    out.conflicts = ip_macs
        .into_iter()
        .filter(|(_, (m, _))| m.len() > 1)
        .map(|(ip, (macs, sources))| Conflict {
            ip,
            macs: macs.into_iter().collect(),
            sources: sources.into_iter().collect(),
        })
        .collect();

    // Shadows: union the unmatched observations sharing an identifier.
    let mut parent: Vec<usize> = (0..unmatched.len()).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut first_with: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in unmatched.iter().enumerate() {
        let o = &s.obs;
        // An address two MACs claim joins nothing to either; the sightings
        // of it without a MAC still join each other (one candidate).
        let conflicted = &conflicted;
        let ips = o.interfaces.iter().flat_map(|i| {
            i.ips.iter().filter_map(move |ip| {
                if !conflicted.contains(ip) {
                    Some(format!("ip:{ip}"))
                } else if i.mac.is_none() {
                    Some(format!("ip-without-mac:{ip}"))
                } else {
                    None
                }
            })
        });
        let ids = o
            .macs()
            .filter(|m| !m.is_placeholder())
            .map(|m| format!("mac:{m}"))
            .chain(o.cloud_id.iter().map(|c| format!("cloud:{c}")))
            .chain(ips);
        for id in ids {
            match first_with.get(&id) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(id, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<&Seen>> = BTreeMap::new();
    for (i, s) in unmatched.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(s);
    }
    let mut shadows: Vec<Shadow> = groups.into_values().filter_map(shadow_of).collect();
    shadows.sort_by(|a, b| a.key.cmp(&b.key));
    for s in shadows {
        if dismissed.contains(&s.key) {
            out.dismissed.push(s);
        } else {
            out.shadows.push(s);
        }
    }

    // Ghosts.
    for k in known {
        let evidence = [
            Some(k.created_at),
            k.last_checkin,
            k.last_sighting,
            sightings.get(&k.id).copied(),
        ]
        .into_iter()
        .flatten()
        .max()
        .expect("created_at is always there");
        if now.duration_since(evidence) > ghost_after {
            out.ghosts.push(Ghost {
                asset: k.id,
                last_evidence: evidence,
            });
        }
    }
    out
}

fn shadow_of(group: Vec<&Seen>) -> Option<Shadow> {
    let mut macs = BTreeSet::new();
    let mut ips = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut clouds = BTreeSet::new();
    let mut ports: BTreeMap<(String, u16), Option<String>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    let mut os_guess = None;
    for s in &group {
        macs.extend(s.obs.macs().filter(|m| !m.is_placeholder()));
        ips.extend(s.obs.ips());
        names.extend(s.obs.host_names.iter().cloned());
        clouds.extend(s.obs.cloud_id.iter().cloned());
        for p in &s.obs.ports {
            let e = ports.entry((p.proto.clone(), p.port)).or_default();
            if e.is_none() {
                e.clone_from(&p.service);
            }
        }
        sources.insert(s.source.clone());
        if os_guess.is_none() {
            os_guess.clone_from(&s.obs.os_guess);
        }
    }
    let key = if let Some(m) = macs.first() {
        format!("mac:{m}")
    } else if let Some(c) = clouds.first() {
        format!("cloud:{c}")
    } else {
        format!("ip:{}", ips.first()?)
    };
    Some(Shadow {
        key,
        macs: macs.into_iter().collect(),
        ips: ips.into_iter().collect(),
        host_names: names.into_iter().collect(),
        cloud_ids: clouds.into_iter().collect(),
        ports: ports
            .into_iter()
            .map(|((proto, port), service)| Port {
                proto,
                port,
                service,
            })
            .collect(),
        os_guess,
        sources: sources.into_iter().collect(),
        first_seen: group.iter().map(|s| s.at).min()?,
        last_seen: group.iter().map(|s| s.at).max()?,
        observations: group.iter().map(|s| s.id).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Interface;
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn seen(id: i64, source: &str, mac_: Option<&str>, ip_: &str) -> Seen {
        Seen {
            id,
            kind: SourceKind::Nmap,
            source: source.into(),
            at: t("2026-12-01T00:00:00Z"),
            obs: Observation {
                interfaces: vec![Interface {
                    mac: mac_.map(mac),
                    ips: vec![ip(ip_)],
                }],
                ..Default::default()
            },
        }
    }
    fn known(id: i64, name: &str, macs: &[&str], ips: &[&str]) -> Known {
        Known {
            id,
            name: name.into(),
            macs: macs.iter().map(|m| mac(m)).collect(),
            ips: ips.iter().map(|i| ip(i)).collect(),
            created_at: t("2026-11-01T00:00:00Z"),
            last_checkin: Some(t("2026-12-01T00:00:00Z")),
            ..Default::default()
        }
    }

    #[test]
    fn rules_shadows_duplicates_conflicts_and_ghosts() {
        let assets = vec![
            known(1, "web-01", &["52:54:00:00:00:01"], &["10.0.0.1"]),
            known(2, "db-01", &[], &["10.0.0.2"]),
            // A second record with web-01's MAC: a duplicate.
            known(3, "web-01-old", &["52:54:00:00:00:01"], &[]),
            Known {
                last_checkin: None,
                ..known(4, "printer-2f", &[], &[])
            },
        ];
        let obs = vec![
            seen(10, "nmap:lan", Some("52:54:00:00:00:01"), "10.0.0.1"),
            seen(11, "nmap:lan", None, "10.0.0.2"),
            seen(12, "nmap:lan", Some("52:54:00:00:00:09"), "10.0.0.9"),
            // The same unknown machine from a lease: one shadow.
            seen(13, "dhcpd:core", Some("52:54:00:00:00:09"), "10.0.0.9"),
            // Two MACs on one address: a conflict, and two shadows.
            seen(14, "nmap:lan", Some("52:54:00:00:00:0a"), "10.0.0.10"),
            seen(15, "dnsmasq:lab", Some("52:54:00:00:00:0b"), "10.0.0.10"),
        ];
        let r = reconcile(
            &obs,
            &assets,
            &BTreeSet::new(),
            t("2026-12-05T00:00:00Z"),
            SignedDuration::from_hours(24 * 14),
        );
        let m: Vec<(i64, i64, Rule)> = r
            .matched
            .iter()
            .map(|m| (m.observation, m.asset, m.rule))
            .collect();
        assert_eq!(m, vec![(10, 1, Rule::Mac), (11, 2, Rule::Ip)]);
        let keys: Vec<&str> = r.shadows.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "mac:52:54:00:00:00:09",
                "mac:52:54:00:00:00:0a",
                "mac:52:54:00:00:00:0b"
            ]
        );
        assert_eq!(r.shadows[0].sources, vec!["dhcpd:core", "nmap:lan"]);
        assert_eq!(r.shadows[0].observations, vec![12, 13]);
        assert_eq!(
            r.duplicates,
            vec![Duplicate {
                assets: vec![1, 3],
                by: "mac 52:54:00:00:00:01".into()
            }]
        );
        assert_eq!(r.conflicts.len(), 1);
        assert_eq!(r.conflicts[0].ip, ip("10.0.0.10"));
        // Created a month ago, never checked in, never seen: a ghost; the others are not.
        assert_eq!(
            r.ghosts.iter().map(|g| g.asset).collect::<Vec<_>>(),
            vec![4]
        );
        // Dismissed keys move out of the shadows.
        let d: BTreeSet<String> = ["mac:52:54:00:00:00:09".to_string()].into();
        let r2 = reconcile(
            &obs,
            &assets,
            &d,
            t("2026-12-05T00:00:00Z"),
            SignedDuration::from_hours(24 * 14),
        );
        assert_eq!(r2.shadows.len(), 2);
        assert_eq!(r2.dismissed[0].key, "mac:52:54:00:00:00:09");
    }

    #[test]
    fn an_address_with_another_mac_is_not_the_asset() {
        // 10.0.0.1 belongs to web-01 (MAC …01); a machine with MAC …77 now
        // answers there: not web-01.
        let assets = vec![known(1, "web-01", &["52:54:00:00:00:01"], &["10.0.0.1"])];
        let obs = vec![seen(10, "nmap:lan", Some("52:54:00:00:00:77"), "10.0.0.1")];
        let r = reconcile(
            &obs,
            &assets,
            &BTreeSet::new(),
            t("2026-12-01T00:00:00Z"),
            SignedDuration::from_hours(24),
        );
        assert!(r.matched.is_empty());
        assert_eq!(r.shadows.len(), 1);
    }

    #[test]
    fn strongest_rule_wins_and_host_names_match_short_forms() {
        let mut a = known(1, "web-01", &[], &[]);
        a.machine_id = Some("abc".into());
        let b = known(2, "nas", &[], &[]);
        let mut o = seen(10, "aws", None, "10.1.1.1");
        o.obs.machine_id = Some("abc".into());
        o.obs.host_names = vec!["nas.example.org".into()];
        let mut p = seen(11, "dhcpd", None, "10.1.1.2");
        p.obs.host_names = vec!["nas.example.org".into()];
        let r = reconcile(
            &[o, p],
            &[a, b],
            &BTreeSet::new(),
            t("2026-12-01T00:00:00Z"),
            SignedDuration::from_hours(24),
        );
        let m: Vec<(i64, i64, Rule)> = r
            .matched
            .iter()
            .map(|m| (m.observation, m.asset, m.rule))
            .collect();
        assert_eq!(m, vec![(10, 1, Rule::MachineId), (11, 2, Rule::HostName)]);
        // A host-name coincidence is not a duplicate.
        assert!(r.duplicates.is_empty());
    }
}
