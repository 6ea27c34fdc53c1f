//! Discovery on the API (`/api/v1/discovery…`): imports of scans, leases and
//! cloud inventories, and the reconciliation of what they saw with the
//! asset registry.

use serde::{Deserialize, Serialize};

/// What an import stored and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryImportOut {
    /// The source's name (its earlier observations were replaced).
    pub source: String,
    /// `nmap`, `dhcpd`, `dnsmasq`, `aws`, `azure`, `gcp`.
    pub kind: String,
    /// Taken from outside the network.
    pub external: bool,
    /// Machines the file described.
    pub observations: u64,
    /// Of them, matched to an asset.
    pub matched: u64,
    /// Shadow candidates seen for the first time (their keys).
    pub new_shadows: Vec<String>,
    /// Shadow candidates now (not dismissed).
    pub shadows: u64,
}

/// An open port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortOut {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The number.
    pub port: u16,
    /// The service a source named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// A machine seen that no asset stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShadowOut {
    /// Its stable key (`mac:…`, `cloud:…`, `ip:…`): what adopt and dismiss name.
    pub key: String,
    /// MACs.
    pub macs: Vec<String>,
    /// Addresses.
    pub ips: Vec<String>,
    /// Host names.
    pub host_names: Vec<String>,
    /// Cloud instance ids.
    pub cloud_ids: Vec<String>,
    /// Open ports.
    pub ports: Vec<PortOut>,
    /// An OS guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_guess: Option<String>,
    /// The sources that saw it.
    pub sources: Vec<String>,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
    /// Why it was dismissed, by whom (dismissed candidates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissed: Option<String>,
}

/// An asset no source has attested for longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GhostOut {
    /// The asset.
    pub asset: String,
    /// The last evidence of it (RFC 3339): check-in, sighting or creation.
    pub last_evidence: String,
}

/// Several records for one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DuplicateOut {
    /// The records.
    pub assets: Vec<String>,
    /// The identifier they share.
    pub by: String,
}

/// One address with several MACs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictOut {
    /// The address.
    pub ip: String,
    /// The MACs.
    pub macs: Vec<String>,
    /// The sources.
    pub sources: Vec<String>,
}

/// An observation matched to an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchOut {
    /// The source.
    pub source: String,
    /// The asset.
    pub asset: String,
    /// The rule: `machine-id`, `cloud-id`, `mac`, `ip`, `host-name`.
    pub rule: String,
    /// The addresses seen.
    pub ips: Vec<String>,
}

/// An external scan reached open ports on an asset not recorded as
/// internet-facing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExposureMismatchOut {
    /// The asset.
    pub asset: String,
    /// Its recorded exposure.
    pub recorded: String,
    /// What the evidence suggests (`internet-facing`).
    pub suggested: String,
    /// The ports reached (`443/tcp`).
    pub ports: Vec<String>,
    /// The external sources that reached them.
    pub sources: Vec<String>,
}

/// Accepts the exposure an external scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptExposure {
    /// The asset.
    pub asset: String,
}

/// The reconciliation as of now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryOut {
    /// Shadow candidates (not dismissed).
    pub shadows: Vec<ShadowOut>,
    /// Dismissed candidates still seen.
    pub dismissed: Vec<ShadowOut>,
    /// Ghost assets.
    pub ghosts: Vec<GhostOut>,
    /// Duplicate records.
    pub duplicates: Vec<DuplicateOut>,
    /// Address conflicts.
    pub conflicts: Vec<ConflictOut>,
    /// Matched observations.
    pub matched: Vec<MatchOut>,
    /// Assets an external scan reached that are not recorded as internet-facing.
    #[serde(default)]
    pub exposure: Vec<ExposureMismatchOut>,
}

/// Adopts a shadow candidate as an agentless asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdoptShadow {
    /// The candidate's key.
    pub key: String,
    /// The new asset's name (default: its first host name, else `shadow-` and its key).
    #[serde(default)]
    pub name: Option<String>,
    /// Kind (default `server`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Business impact.
    #[serde(default)]
    pub business_impact: Option<String>,
    /// Exposure.
    #[serde(default)]
    pub exposure: Option<String>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Dismisses a shadow candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DismissShadow {
    /// The candidate's key.
    pub key: String,
    /// Why (required: the register says who decided what and why).
    pub reason: String,
}
