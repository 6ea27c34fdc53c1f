//! Asset attributes and the liveness rule.
//!
//! An asset is *managed* when an agent is enrolled for it, *stale* when that agent
//! has missed check-ins for longer than the configured period, and *unmanaged* when
//! it is known only from an import (no agent).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The wire and storage spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$v),)+
                    other => Err(format!(
                        "unknown {} {:?}; expected one of: {}",
                        stringify!($name), other, [$($s),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum! {
    /// What sort of thing an asset is.
    AssetKind {
        /// A physical or virtual server.
        Server = "server",
        /// A workstation or laptop.
        Desktop = "desktop",
        /// A cloud instance.
        CloudInstance = "cloud-instance",
        /// A router, switch, firewall…
        NetworkDevice = "network-device",
        /// A vendor appliance.
        Appliance = "appliance",
        /// An application (patched as a unit).
        Application = "application",
    }
}

string_enum! {
    /// How much the business suffers if the asset is compromised or down.
    BusinessImpact {
        /// Critical.
        Critical = "critical",
        /// High.
        High = "high",
        /// Medium (the default).
        Medium = "medium",
        /// Low.
        Low = "low",
    }
}

string_enum! {
    /// How reachable the asset is for an attacker.
    Exposure {
        /// Reachable from the internet.
        InternetFacing = "internet-facing",
        /// Holds privileged data.
        PrivilegedData = "privileged-data",
        /// Internal network only (the default).
        Internal = "internal",
        /// Isolated (air-gapped, no inbound paths).
        Isolated = "isolated",
    }
}

string_enum! {
    /// The liveness of an asset, derived from its agent and last check-in.
    Liveness {
        /// An agent checks in regularly.
        Managed = "managed",
        /// An agent is enrolled but has missed check-ins.
        Stale = "stale",
        /// Known from an import; no agent.
        Unmanaged = "unmanaged",
    }
}

/// Default period after which a managed asset that has not checked in is stale.
///
/// Three missed check-ins at the agent's default 15-minute interval would be too
/// twitchy for laptops and maintenance reboots; a day matches what NOCs use for
/// "not seen" reports and the 24 h coverage metric.
pub const DEFAULT_STALE_AFTER: SignedDuration = SignedDuration::from_hours(24);

/// Computes an asset's liveness. `last_seen` is the last agent check-in, if any.
pub fn liveness(
    has_agent: bool,
    last_seen: Option<Timestamp>,
    now: Timestamp,
    stale_after: SignedDuration,
) -> Liveness {
    if !has_agent {
        return Liveness::Unmanaged;
    }
    match last_seen {
        Some(seen) if now.duration_since(seen) <= stale_after => Liveness::Managed,
        _ => Liveness::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_boundaries() {
        let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        let h = SignedDuration::from_hours(1);
        assert_eq!(liveness(false, Some(now), now, h), Liveness::Unmanaged);
        assert_eq!(liveness(true, Some(now - h), now, h), Liveness::Managed);
        assert_eq!(
            liveness(true, Some(now - h - SignedDuration::from_secs(1)), now, h),
            Liveness::Stale
        );
        assert_eq!(liveness(true, None, now, h), Liveness::Stale);
    }

    #[test]
    fn enums_round_trip() {
        for k in AssetKind::ALL {
            assert_eq!(k.as_str().parse::<AssetKind>().unwrap(), *k);
        }
        assert!(
            "mainframe"
                .parse::<AssetKind>()
                .unwrap_err()
                .contains("server")
        );
        assert_eq!(
            "internet-facing".parse::<Exposure>().unwrap(),
            Exposure::InternetFacing
        );
    }
}
