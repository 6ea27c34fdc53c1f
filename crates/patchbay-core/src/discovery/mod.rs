//! Discovery: machines seen by sources other than enrolment — network scans
//! (nmap XML), DHCP leases (ISC dhcpd, dnsmasq), cloud inventories (AWS,
//! Azure, GCP) and the agents' neighbour tables — and their reconciliation
//! with the asset registry into *shadow* (seen, not known), *ghost* (known,
//! not seen), *duplicate* (two records, one machine) and *conflict* (one IP,
//! two MACs) (issue 19).
//!
//! Everything here is pure: the parsers take text and return
//! [`Observation`]s or an error naming the position; [`reconcile()`] takes
//! the stored observations, the known assets, the dismissed shadows and
//! `now`.

pub mod cloud;
pub mod leases;
pub mod nmap;
pub mod reconcile;

pub use reconcile::{
    Conflict, Duplicate, Ghost, Known, Matched, Reconciliation, Rule, Seen, Shadow, reconcile,
};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An asset nothing attested for this long is a ghost, by default (two
/// weeks: longer than a holiday, shorter than a quarter's audit).
pub const DEFAULT_GHOST_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 14);

/// The most observations one imported file may carry.
pub const MAX_OBSERVATIONS: usize = 200_000;

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// An nmap scan (`-oX` XML).
    Nmap,
    /// An agent's neighbour table (`ip neigh`).
    Neighbour,
    /// An ISC dhcpd lease file (`dhcpd.leases`).
    Dhcpd,
    /// A dnsmasq lease file (`dnsmasq.leases`).
    Dnsmasq,
    /// `aws ec2 describe-instances` output.
    Aws,
    /// `az vm list -d` output.
    Azure,
    /// `gcloud compute instances list --format=json` output.
    Gcp,
}

impl SourceKind {
    /// Every kind, in declaration order.
    pub const ALL: [SourceKind; 7] = [
        SourceKind::Nmap,
        SourceKind::Neighbour,
        SourceKind::Dhcpd,
        SourceKind::Dnsmasq,
        SourceKind::Aws,
        SourceKind::Azure,
        SourceKind::Gcp,
    ];

    /// The wire and storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceKind::Nmap => "nmap",
            SourceKind::Neighbour => "neighbour",
            SourceKind::Dhcpd => "dhcpd",
            SourceKind::Dnsmasq => "dnsmasq",
            SourceKind::Aws => "aws",
            SourceKind::Azure => "azure",
            SourceKind::Gcp => "gcp",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown discovery source {s:?}; expected one of: {}",
                    SourceKind::ALL.map(SourceKind::as_str).join(", ")
                )
            })
    }
}

/// A MAC address (EUI-48), kept as six bytes and written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Whether it is all zeros or the broadcast address (no machine).
    pub fn is_placeholder(self) -> bool {
        self.0 == [0; 6] || self.0 == [0xff; 6]
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    /// `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF` or `aabb.ccdd.eeff`.
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        let seps_ok = s.len() == 17 && matches!(s.as_bytes().get(2), Some(b':' | b'-'))
            || s.len() == 14 && s.as_bytes().get(4) == Some(&b'.')
            || s.len() == 12;
        if !seps_ok || hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not a MAC address"));
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An open port a source reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Port {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The port number.
    pub port: u16,
    /// The service the source named (`ssh (OpenSSH 9.2p1)`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// One network interface of an observed machine: its MAC (when the source
/// saw it) and the addresses on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interface {
    /// The MAC address, if the source saw it (nmap only on the local link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// The addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
}

/// One machine as one source saw it at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Its interfaces (at least one address or MAC).
    pub interfaces: Vec<Interface>,
    /// Host names it goes by (DNS PTR, DHCP client name, cloud name), lower case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_names: Vec<String>,
    /// Its `/etc/machine-id`, when the source knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Its cloud instance id (AWS `i-…`, Azure `vmId`, GCP `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Open ports the source reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// The source's guess of its operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_guess: Option<String>,
    /// When the source saw it (a scan's end, a lease's last transaction);
    /// `None`: when the file was imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<Timestamp>,
}

impl Observation {
    /// Every MAC on it.
    pub fn macs(&self) -> impl Iterator<Item = Mac> + '_ {
        self.interfaces.iter().filter_map(|i| i.mac)
    }

    /// Every address on it.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.interfaces.iter().flat_map(|i| i.ips.iter().copied())
    }
}

/// A file that is not what its source kind says, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_kind} file: {position}: {message}")]
pub struct ParseError {
    /// The kind of file.
    pub source_kind: SourceKind,
    /// Where: `line 12`, `line 3, column 7`, `Reservations[0].Instances[1]`.
    pub position: String,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(
        kind: SourceKind,
        position: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ParseError {
            source_kind: kind,
            position: position.into(),
            message: message.into(),
        }
    }
}

/// Parses a file of `kind` into observations. Neighbour tables arrive from
/// agents as observations already and are not parsed here.
pub fn parse(kind: SourceKind, text: &str) -> Result<Vec<Observation>, ParseError> {
    let out = match kind {
        SourceKind::Nmap => nmap::parse(text)?,
        SourceKind::Dhcpd => leases::parse_dhcpd(text)?,
        SourceKind::Dnsmasq => leases::parse_dnsmasq(text)?,
        SourceKind::Aws => cloud::parse_aws(text)?,
        SourceKind::Azure => cloud::parse_azure(text)?,
        SourceKind::Gcp => cloud::parse_gcp(text)?,
        SourceKind::Neighbour => {
            return Err(ParseError::new(
                kind,
                "the file",
                "neighbour tables come from the agents' check-ins, not from files",
            ));
        }
    };
    if out.len() > MAX_OBSERVATIONS {
        return Err(ParseError::new(
            kind,
            "the file",
            format!(
                "{} machines in one file; the limit is {MAX_OBSERVATIONS}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// A host name as stored: trimmed, lower case, without a trailing dot;
/// `None` when empty, `*`, or not a plausible name (control characters,
/// spaces, over 253 bytes).
pub fn clean_host_name(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('.');
    if s.is_empty()
        || s == "*"
        || s.len() > 253
        || s.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// A free-text label from a source (a service, an OS guess), kept to 200
/// characters without control characters.
pub(crate) fn clean_label(s: &str) -> Option<String> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_three_spellings_and_print_one() {
        for s in [
            "00:1a:2B:3c:4d:5e",
            "00-1A-2B-3C-4D-5E",
            "001a.2b3c.4d5e",
            "001a2b3c4d5e",
        ] {
            assert_eq!(
                s.parse::<Mac>().unwrap().to_string(),
                "00:1a:2b:3c:4d:5e",
                "{s}"
            );
        }
        for s in [
            "",
            "00:1a:2b:3c:4d",
            "00:1a:2b:3c:4d:5g",
            "0:1a:2b:3c:4d:5e:f",
            "00:1a:2b:3c:4d:5e:00",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s}");
        }
        assert!("00:00:00:00:00:00".parse::<Mac>().unwrap().is_placeholder());
    }

    #[test]
    fn source_kinds_round_trip() {
        for k in SourceKind::ALL {
            assert_eq!(k.as_str().parse::<SourceKind>().unwrap(), k);
        }
        let e = "arp".parse::<SourceKind>().unwrap_err();
        assert!(e.contains("nmap, neighbour"), "{e}");
    }

    #[test]
    fn host_names_are_cleaned() {
        assert_eq!(
            clean_host_name(" Web-1.Example.org. ").as_deref(),
            Some("web-1.example.org")
        );
        assert_eq!(clean_host_name("*"), None);
        assert_eq!(clean_host_name("a b"), None);
        assert_eq!(clean_host_name("a\u{1b}[2J"), None);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn kinds() -> impl Strategy<Value = SourceKind> {
        prop::sample::select(SourceKind::ALL.to_vec())
    }

    fn small_mac() -> impl Strategy<Value = Mac> {
        (0u8..6).prop_map(|b| Mac([0x52, 0x54, 0, 0, 0, b + 1]))
    }

    fn small_ip() -> impl Strategy<Value = IpAddr> {
        (0u8..6).prop_map(|b| IpAddr::from([10, 0, 0, b + 1]))
    }

    proptest! {
        #[test]
        fn no_parser_panics_on_any_text(kind in kinds(), text in ".{0,400}") {
            let _ = parse(kind, &text);
        }

        #[test]
        fn no_parser_panics_on_near_valid_text(kind in kinds(), cut in 0usize..400, junk in "[{};\"<>/ \n:=,\\[\\]a-z0-9]{0,20}") {
            let base = match kind {
                SourceKind::Nmap => r#"<nmaprun start="1"><host><status state="up"/><address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="tcp" portid="22"><state state="open"/></port></ports></host></nmaprun>"#,
                SourceKind::Dhcpd => "lease 10.0.0.1 {\n starts 4 2026/11/26 10:00:00;\n binding state active;\n hardware ethernet 52:54:00:12:34:56;\n client-hostname \"a\";\n}\n",
                SourceKind::Dnsmasq => "1764237600 52:54:00:12:34:56 10.0.0.1 nas01 *\n",
                SourceKind::Aws => r#"{"Reservations":[{"Instances":[{"InstanceId":"i-1","NetworkInterfaces":[{"MacAddress":"0a:00:00:00:00:01","PrivateIpAddresses":[{"PrivateIpAddress":"10.0.0.5"}]}]}]}]}"#,
                SourceKind::Azure => r#"[{"vmId":"v","name":"a","privateIps":"10.0.0.4","macAddresses":"00-0D-3A-00-00-01"}]"#,
                SourceKind::Gcp | SourceKind::Neighbour => r#"[{"id":"1","name":"a","networkInterfaces":[{"networkIP":"10.0.0.2"}]}]"#,
            };
            let cut = cut.min(base.len());
            let cut = (0..=cut).rev().find(|c| base.is_char_boundary(*c)).unwrap_or(0);
            let text = format!("{}{junk}{}", &base[..cut], &base[cut..]);
            let _ = parse(kind, &text);
        }

        #[test]
        fn dnsmasq_files_round_trip(leases in prop::collection::vec((any::<[u8; 6]>(), any::<[u8; 4]>(), "[a-z][a-z0-9-]{0,10}"), 0..20)) {
            let text: String = leases
                .iter()
                .map(|(m, ip, h)| format!("1764237600 {} {} {h} *\n", Mac(*m), IpAddr::from(*ip)))
                .collect();
            let obs = leases::parse_dnsmasq(&text).unwrap();
            prop_assert_eq!(obs.len(), leases.len());
            for (o, (m, ip, h)) in obs.iter().zip(&leases) {
                prop_assert_eq!(o.interfaces[0].mac, Some(Mac(*m)));
                prop_assert_eq!(&o.interfaces[0].ips, &vec![IpAddr::from(*ip)]);
                prop_assert_eq!(&o.host_names, &vec![h.clone()]);
            }
        }

        /// Every observation is accounted for exactly once (matched, or in
        /// one shadow), and the answer does not depend on the order the
        /// observations come in.
        #[test]
        fn reconciliation_accounts_for_every_observation_in_any_order(
            obs in prop::collection::vec((prop::option::of(small_mac()), small_ip()), 1..12),
            assets in prop::collection::vec((prop::option::of(small_mac()), prop::option::of(small_ip())), 0..5),
            rot in 0usize..12,
        ) {
            let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
            let seen: Vec<Seen> = obs.iter().enumerate().map(|(i, (m, ip))| Seen {
                id: i as i64,
                kind: SourceKind::Nmap,
                source: format!("s{}", i % 3),
                at: now,
                obs: Observation { interfaces: vec![Interface { mac: *m, ips: vec![*ip] }], ..Default::default() },
            }).collect();
            let known: Vec<Known> = assets.iter().enumerate().map(|(i, (m, ip))| Known {
                id: 100 + i as i64,
                name: format!("a{i}"),
                macs: m.iter().copied().collect(),
                ips: ip.iter().copied().collect(),
                created_at: now,
                ..Default::default()
            }).collect();
            let day = jiff::SignedDuration::from_hours(24);
            let r = reconcile(&seen, &known, &BTreeSet::new(), now, day);
            let mut ids: Vec<i64> = r.matched.iter().map(|m| m.observation).collect();
            ids.extend(r.shadows.iter().flat_map(|s| s.observations.iter().copied()));
            ids.sort();
            prop_assert_eq!(ids, (0..seen.len() as i64).collect::<Vec<_>>());
            let mut rotated = seen.clone();
            let k = rot % rotated.len();
            rotated.rotate_left(k);
            let r2 = reconcile(&rotated, &known, &BTreeSet::new(), now, day);
            let keys = |r: &Reconciliation| r.shadows.iter().map(|s| (s.key.clone(), s.observations.iter().copied().collect::<BTreeSet<_>>())).collect::<Vec<_>>();
            prop_assert_eq!(keys(&r), keys(&r2));
            let mut m1: Vec<_> = r.matched.iter().map(|m| (m.observation, m.asset, m.rule)).collect();
            let mut m2: Vec<_> = r2.matched.iter().map(|m| (m.observation, m.asset, m.rule)).collect();
            m1.sort();
            m2.sort();
            prop_assert_eq!(m1, m2);
            prop_assert_eq!(r.duplicates, r2.duplicates);
            prop_assert_eq!(r.conflicts, r2.conflicts);
        }
    }
}
