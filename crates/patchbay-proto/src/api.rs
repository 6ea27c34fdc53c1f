//! REST API v1 bodies.

use patchbay_core::auth::Role;
use serde::{Deserialize, Serialize};

/// One asset in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetSummary {
    /// Unique standard name.
    pub name: String,
    /// Asset kind.
    pub kind: String,
    /// Owner (team or person), empty when unknown.
    pub owner: String,
    /// Business impact.
    pub business_impact: String,
    /// Exposure.
    pub exposure: String,
    /// Environment (`prod`, `staging`…), empty when unknown.
    pub environment: String,
    /// Tags / groups.
    pub tags: Vec<String>,
    /// `managed`, `stale` or `unmanaged`.
    pub liveness: String,
    /// Last agent check-in (RFC 3339), if any.
    pub last_seen: Option<String>,
    /// OS as `id:version_id` (e.g. `debian:12`), empty when unknown.
    pub os: String,
    /// Number of installed packages known.
    pub package_count: u64,
}

/// A package as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageOut {
    /// Binary package name.
    pub name: String,
    /// Exact installed version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// Source package name, if known.
    pub source: Option<String>,
    /// Source version, when it differs from `version`.
    pub source_version: Option<String>,
}

/// One asset with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetDetail {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: AssetSummary,
    /// Host name reported by the agent.
    pub hostname: String,
    /// Machine id.
    pub machine_id: String,
    /// os-release `PRETTY_NAME`.
    pub os_pretty_name: String,
    /// os-release `VERSION_CODENAME`.
    pub os_codename: String,
    /// Kernel release.
    pub kernel: String,
    /// Architecture.
    pub arch: String,
    /// IP addresses.
    pub ip_addresses: Vec<String>,
    /// Reboot required.
    pub reboot_required: bool,
    /// Services still running deleted libraries.
    pub services_needing_restart: Vec<String>,
    /// Package format (`deb`, `rpm`, `apk`, `other`).
    pub package_format: Option<String>,
    /// Hash of the stored inventory.
    pub inventory_hash: Option<String>,
    /// Installed packages.
    pub packages: Vec<PackageOut>,
    /// Pending updates reported by the package manager.
    pub pending_updates: Vec<patchbay_core::inventory::PendingUpdate>,
}

/// `PATCH /api/v1/assets/{name}`: fields to change (absent fields stay).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetPatch {
    /// New kind.
    pub kind: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New business impact.
    pub business_impact: Option<String>,
    /// New exposure.
    pub exposure: Option<String>,
    /// New environment.
    pub environment: Option<String>,
    /// New tag set (replaces the old one).
    pub tags: Option<Vec<String>>,
}

/// One agentless asset in an import (JSON form; CSV columns have the same names,
/// with `tags` separated by `;` and `packages` as `name=version;name=version`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportAsset {
    /// Unique name.
    pub name: String,
    /// Kind (default `appliance`: agentless assets are mostly devices and appliances).
    #[serde(default)]
    pub kind: Option<String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Business impact (default `medium`).
    #[serde(default)]
    pub business_impact: Option<String>,
    /// Exposure (default `internal`).
    #[serde(default)]
    pub exposure: Option<String>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// OS as `id:version` (e.g. `ios-xe:17.9`), optional.
    #[serde(default)]
    pub os: Option<String>,
    /// Software with versions (firmware, applications).
    #[serde(default)]
    pub packages: Vec<ImportPackage>,
}

/// A versioned component of an agentless asset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPackage {
    /// Name.
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// Result of an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResult {
    /// Assets created.
    pub created: u64,
    /// Assets updated.
    pub updated: u64,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label (who or what uses it).
    pub name: String,
    /// The role.
    pub role: Role,
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// First characters of the token, to recognise it.
    pub prefix: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Last use (RFC 3339).
    pub last_used_at: Option<String>,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
}

/// A freshly created token: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Token metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret.
    pub token: String,
}

/// `POST /api/v1/enroll-tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollToken {
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
    /// How many agents may enrol with it (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// Lifetime in seconds (default 24 h).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A created enrolment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollTokenCreated {
    /// Id.
    pub id: i64,
    /// The secret.
    pub token: String,
    /// Uses allowed.
    pub uses: u32,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEventOut {
    /// Sequence number (gap-free, increasing).
    pub seq: i64,
    /// Time (RFC 3339).
    pub at: String,
    /// Who: `token:<id>:<name>`, `agent:<id>`, `system`, or `anonymous`.
    pub actor: String,
    /// What, e.g. `asset.update`, `token.create`, `request.denied`.
    pub action: String,
    /// On what, e.g. `asset:prod-web-01`.
    pub target: String,
    /// `ok`, `denied` or `error`.
    pub outcome: String,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

/// A list answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List<T> {
    /// Items.
    pub items: Vec<T>,
}

/// A finding: asset × advisory × installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingOut {
    /// Standard name `F-<asset>-<advisory>-<package>`.
    pub id: String,
    /// Asset name.
    pub asset: String,
    /// Installed (binary) package.
    pub package: String,
    /// Source package the advisory is keyed by.
    pub source_package: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub installed_version: String,
    /// Version that fixes it, if known.
    pub fixed_version: Option<String>,
    /// Advisory id.
    pub advisory: String,
    /// CVE aliases.
    pub cves: Vec<String>,
    /// CVSS base score (from the advisory), if known.
    pub cvss: Option<f64>,
    /// Highest EPSS score of its CVEs, if known.
    pub epss: Option<f64>,
    /// Whether one of its CVEs is in CISA KEV.
    pub kev: bool,
    /// Due date (YYYY-MM-DD): the KEV due date where one applies.
    pub due_date: Option<String>,
    /// First detection (RFC 3339).
    pub first_seen: String,
    /// Last detection (RFC 3339).
    pub last_seen: String,
    /// When a later inventory showed a fixed version (RFC 3339).
    pub resolved_at: Option<String>,
}

/// A recorded feed import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedOut {
    /// `osv`, `kev` or `epss`.
    pub kind: String,
    /// Source path.
    pub source: String,
    /// Version or date of the feed.
    pub version: String,
    /// Records imported.
    pub records: i64,
    /// Malformed records skipped.
    pub skipped: i64,
    /// Import time (RFC 3339).
    pub imported_at: String,
    /// Who imported it.
    pub imported_by: String,
}

/// One line of the worklist: a finding with its risk tier, due date and reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The finding.
    #[serde(flatten)]
    pub finding: FindingOut,
    /// `P0` … `P4`.
    pub tier: String,
    /// Rank within the tier (higher first).
    pub score: f64,
    /// SLA due time (RFC 3339): the earlier of the tier's SLA and the KEV due date.
    pub due: String,
    /// Whether `due` has passed.
    pub overdue: bool,
    /// Why this tier ("in CISA KEV (due 2026-12-01)", "asset internet-facing", …).
    pub reasons: Vec<String>,
    /// One-line summary.
    pub summary: String,
    /// Asset owner.
    pub owner: String,
    /// Policy groups of the asset.
    pub groups: Vec<String>,
}

/// What applying a policy changes (the preview equals the apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEffect {
    /// Canonical fingerprint of the policy.
    pub fingerprint: String,
    /// Whether it is the policy in force already (applying it changes nothing).
    pub no_op: bool,
    /// Open findings assessed.
    pub findings: u64,
    /// Open findings whose tier changes.
    pub findings_changing_tier: u64,
    /// Findings newly excluded by the policy.
    pub findings_newly_excluded: u64,
    /// Patches (package → fixed version per OS) that become approved.
    pub patches_becoming_approved: u64,
    /// Patches that stop being approved.
    pub patches_losing_approval: u64,
    /// Human summary, e.g. "37 findings change tier, 2 patches become approved".
    pub summary: String,
}

/// `patchbay triage CVE`: one screen on one CVE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    /// The CVE.
    pub cve: String,
    /// Whether any asset is affected now.
    pub affected: bool,
    /// Advisories that name it.
    pub advisories: Vec<String>,
    /// KEV entry: due date, if listed.
    pub kev_due_date: Option<String>,
    /// EPSS score.
    pub epss: Option<f64>,
    /// Affected assets, most exposed and most critical first.
    pub items: Vec<WorkItem>,
    /// Distinct (package, installed → fixed) upgrades that close it.
    pub fixes: Vec<String>,
}

/// A patch: one package → fixed version for one OS release, with what it closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOut {
    /// Standard name `PB-<yyyy>-<mm>-<os>-<package>-<version>`.
    pub name: String,
    /// `os`, `security-agent`, `network-device` or `application`.
    pub family: String,
    /// OS release, e.g. `debian:12`.
    pub os: String,
    /// (Source) package.
    pub package: String,
    /// Version it installs.
    pub fixed_version: String,
    /// CVEs it closes.
    pub cves: Vec<String>,
    /// Advisories it closes.
    pub advisories: Vec<String>,
    /// Open findings it closes.
    pub findings: u64,
    /// Assets it applies to.
    pub assets: Vec<String>,
    /// Most urgent tier among its findings.
    pub highest_tier: String,
    /// Release date (YYYY-MM-DD): the earliest publication of its advisories, or
    /// first detection when unknown.
    pub released: String,
    /// Approved for deployment by the policy in force.
    pub approved: bool,
    /// Why (not) approved.
    pub approval_reason: String,
}

/// A zero-day lane event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OobEventOut {
    /// Time (RFC 3339).
    pub at: String,
    /// What triggered it.
    pub source: String,
    /// CVEs that raised findings to P0.
    pub cves: Vec<String>,
    /// Findings raised.
    pub findings: i64,
    /// Proposed out-of-band deployment.
    pub deployment: Option<String>,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentOut {
    /// `DEP-<yyyy>-<mm>-<seq>` or `DEP-OOB-<yyyy>-<mm>-<seq>`.
    pub id: String,
    /// `oob` or `baseline`.
    pub kind: String,
    /// `proposed`, …
    pub status: String,
    /// Why.
    pub reason: String,
    /// Patch names.
    pub patches: Vec<String>,
    /// Asset names.
    pub assets: Vec<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Creator.
    pub created_by: String,
}
