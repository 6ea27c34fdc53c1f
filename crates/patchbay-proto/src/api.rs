//! REST API v1 bodies.

use patchbay_core::auth::Role;
use serde::{Deserialize, Serialize};

/// One asset in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// MAC addresses of its interfaces (agents reporting network facts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<String>,
    /// Its listening sockets not bound to loopback (`tcp/22`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<String>,
    /// Its neighbour table (`ip`, `mac`): the devices it talked to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<patchbay_core::inventory::Neighbour>,
    /// Software installed outside the package manager (Python distributions,
    /// global npm modules, Go and `cargo auditable` binaries), each with its
    /// ecosystem, version and path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<patchbay_core::inventory::unmanaged::Unmanaged>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"owner": "team-web", "environment": "prod", "tags": ["web"]})))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// MAC addresses (a CMDB's record of the machine): discovery matches
    /// scans and leases to the asset by them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<String>,
    /// IP addresses, for the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// A cloud instance id (AWS `i-…`, Azure `vmId`, GCP `id`), for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Vendor products with versions (firmware, appliance software,
    /// applications), matched against CSAF advisories (docs/csaf.md). CSV:
    /// the columns `vendor`, `product`, `version`, `cpe` give one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ImportProduct>,
}

/// A vendor product of an agentless asset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportProduct {
    /// Vendor, e.g. `Cisco`.
    pub vendor: String,
    /// Product, e.g. `IOS`.
    pub product: String,
    /// Exact version, e.g. `15.2(4)E`.
    pub version: String,
    /// CPE 2.3 formatted string (or 2.2 URI), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpe: Option<String>,
}

/// A versioned component of an agentless asset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportPackage {
    /// Name.
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// Result of an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportResult {
    /// Assets created.
    pub created: u64,
    /// Assets updated.
    pub updated: u64,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "reporting", "role": "auditor", "ttl_secs": 86400, "scopes": ["read"]})))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label (who or what uses it).
    pub name: String,
    /// The role.
    pub role: Role,
    /// Lifetime in seconds (at most a year); absent: the token does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Restriction below the role (`read`, `write`, `enrol`, `approve`,
    /// `tokens`); absent: everything the role permits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<patchbay_core::auth::Scope>>,
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Expiry (RFC 3339); absent: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Scopes the token is restricted to; absent: everything its role permits.
    #[serde(default)]
    pub scopes: Option<Vec<patchbay_core::auth::Scope>>,
}

/// A freshly created token: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// Token metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret.
    pub token: String,
}

/// `POST /api/v1/enroll-tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "rack-7", "uses": 5, "ttl_secs": 3600})))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct List<T> {
    /// Items.
    pub items: Vec<T>,
}

/// A finding: asset × advisory × installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindingOut {
    /// Standard name `F-<asset>-<advisory>-<package>` (software installed
    /// outside the package manager: `…-<package>@<path>`).
    pub id: String,
    /// Asset name.
    pub asset: String,
    /// Installed (binary) package.
    pub package: String,
    /// Source package the advisory is keyed by.
    pub source_package: String,
    /// Architecture; for software installed outside the package manager,
    /// `unmanaged:<path>`.
    pub arch: String,
    /// Where the software is, when it was installed outside the package
    /// manager (`pip`, `npm -g`, a Go or Rust binary): its `.dist-info`,
    /// `package.json` or binary. Absent for a package's finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_path: Option<String>,
    /// Installed version.
    pub installed_version: String,
    /// Version that fixes it, if known.
    pub fixed_version: Option<String>,
    /// Advisory id.
    pub advisory: String,
    /// CVE aliases.
    pub cves: Vec<String>,
    /// CVSS base score, if known: the one ADR 0013's preference picks from the
    /// advisory's own vector and its CVEs' imported NVD / CVE 5 scores.
    pub cvss: Option<f64>,
    /// Where `cvss` comes from: `NVD, v3.1`, `CNA secalert@redhat.com, v3.1`,
    /// `CISA-ADP, v3.1`, `advisory ALSA-2023:5453, v3.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_source: Option<String>,
    /// The distribution's own severity of the advisory (`high`, `important`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Whose severity it is: `Debian urgency`, `Ubuntu priority`, `Red Hat severity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_source: Option<String>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What one feed file imported (`POST /api/v1/feeds/import`, and each
/// import of the feed-sync duty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedImportOut {
    /// The source recorded for the import (the uploaded file's name, or the
    /// synced source's URL, path or mirror file).
    pub source: String,
    /// One entry per feed found in the file.
    pub imported: Vec<ImportedFeedOut>,
    /// Findings opened by the delta re-assessment that followed.
    pub findings_opened: u64,
    /// Findings reopened.
    pub findings_reopened: u64,
    /// Findings resolved.
    pub findings_resolved: u64,
    /// The zero-day lane, when CVEs newly in KEV raised findings to P0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_day: Option<ZeroDayOut>,
}

/// One feed stored from a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportedFeedOut {
    /// `osv`, `kev` or `epss`.
    pub kind: String,
    /// Its version or date.
    pub version: String,
    /// Records stored.
    pub records: u64,
    /// Malformed records skipped.
    pub skipped: u64,
    /// CVEs that entered KEV with it (KEV only).
    pub kev_added: u64,
}

/// What the zero-day lane did after an import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZeroDayOut {
    /// Findings raised to P0.
    pub findings: i64,
    /// The CVEs newly in KEV that raised them.
    pub cves: Vec<String>,
    /// The proposed out-of-band deployment.
    pub deployment: Option<String>,
}

/// One line of the worklist: a finding with its risk tier, due date and reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The exception (`EXC-…`) in force for this finding, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// When that exception is a VEX statement (`not_affected`): its
    /// justification, statement and who made it (triage shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vex: Option<String>,
}

/// The policy in force (`GET /api/v1/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyOut {
    /// Canonical fingerprint of the policy.
    pub fingerprint: String,
    /// Its TOML text (the built-in default when none was applied).
    pub text: String,
    /// Who applied it (none: the default).
    pub applied_by: Option<String>,
    /// When (RFC 3339).
    pub applied_at: Option<String>,
}

/// What applying a policy changes (the preview equals the apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A ring of a new deployment (`POST /api/v1/deployments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RingIn {
    /// Name (`ring0-canary`).
    pub name: String,
    /// These assets (canary hosts pinned by name).
    #[serde(default)]
    pub assets: Vec<String>,
    /// Or this many of the remaining targets, `N` or `N%`, chosen by a stable
    /// hash of each host's machine id (the last ring takes the rest).
    #[serde(default)]
    pub size: Option<String>,
    /// Jobs in flight at most: `N` or `N%` of the ring (default 1).
    #[serde(default)]
    pub max_concurrent: Option<String>,
    /// Failures tolerated: `N` or `N%` of the ring (default 0); one more halts.
    #[serde(default)]
    pub error_budget: Option<String>,
    /// Share of jobs that must succeed, 0–1 (default 0.95).
    #[serde(default)]
    pub success_threshold: Option<f64>,
    /// Soak before the next ring (`30m`, `24h`; default 0).
    #[serde(default)]
    pub soak: Option<String>,
    /// Whether a human must approve the ring (not its creator or starter).
    #[serde(default)]
    pub approval: bool,
    /// `failed-hosts` (default), `ring` or `none`.
    #[serde(default)]
    pub rollback: Option<String>,
    /// A staging ring: the production policy group it stands for. When the
    /// deployment is created its hosts are compared with that group's modal
    /// baseline (docs/drift.md); beyond `drift_tolerance` differing packages
    /// the ring's results are marked "staging differs from production".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stands_for: Option<String>,
    /// Differing packages a staging ring may have before its results are
    /// marked (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_tolerance: Option<u32>,
    /// Every host of the ring rehearses its job first (in an overlay of its
    /// own root, `docs/rehearsal.md`); no apply of the ring is leased before
    /// all of them reported, and a host whose rehearsal failed never gets
    /// its apply: its job counts as failed (default `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_rehearsal: bool,
    /// Backup verification: `N` of the ring's hosts whose snapshot was
    /// taken, or `N%` of them, verify it once the ring's jobs ended (their
    /// agent's own `hooks.snapshot_verify`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_snapshots: Option<String>,
}

/// One rehearsal of a deployment on one host (`GET
/// /api/v1/deployments/{id}/rehearsals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RehearsalOut {
    /// Job key (`DEP/rehearse/gate/HOST` for a ring's gate, `DEP/rehearse/N/HOST` on demand).
    pub key: String,
    /// The host.
    pub host: String,
    /// `gate` or the on-demand run number.
    pub run: String,
    /// The exact versions rehearsed.
    pub packages: Vec<patchbay_core::job::PackagePin>,
    /// `pending`, `passed` or `failed`.
    pub status: String,
    /// When it was leased (RFC 3339).
    pub leased_at: String,
    /// When its result arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_at: Option<String>,
    /// The failing step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The agent's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the agent found (mode, diff, scripts, conflicts, privileges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub rehearsal: Option<crate::agent::Rehearsal>,
}

/// A deployment's rehearsals (`GET`, and `POST` to run one now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RehearsalsOut {
    /// The deployment.
    pub deployment: String,
    /// The run just started (`POST` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    /// Newest run first, by host.
    pub rehearsals: Vec<RehearsalOut>,
}

/// A new deployment (`POST /api/v1/deployments`, and its preview).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"packages": [{"name": "curl", "version": "7.88.1-10+deb12u8"}], "assets": ["web-01"]})))]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Exact versions to install (with or instead of `patches`/`tier`).
    #[serde(default)]
    pub packages: Vec<patchbay_core::job::PackagePin>,
    /// Patches of the catalog by name (`PB-…`), each approved by the policy
    /// in force: every asset with an open, not excluded, not excepted
    /// finding the patch fixes gets the finding's package at the patch's
    /// fixed version.
    #[serde(default)]
    pub patches: Vec<String>,
    /// A worklist selection: every approved patch of the catalog whose most
    /// urgent finding is of this tier or a more urgent one (`P0`…`P4`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Target assets (with `groups`; neither: every managed asset that has
    /// one of the packages installed).
    #[serde(default)]
    pub assets: Vec<String>,
    /// Target policy groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The rings, in order (default: one ring `all`, one host at a time).
    #[serde(default)]
    pub rings: Vec<RingIn>,
    /// Health checks (names in the agents' local configuration) run before
    /// and after each job.
    #[serde(default)]
    pub checks: Vec<String>,
    /// How long after the start jobs may begin (`4h`; default 24h): the
    /// window's cutoff.
    #[serde(default)]
    pub window: Option<String>,
    /// How long an agent has to report a job (`30m`; default 30m).
    #[serde(default)]
    pub job_timeout: Option<String>,
    /// How the maintenance windows apply: `planner` (default: a host covered
    /// by windows runs only in their occurrences, to each one's cutoff; one
    /// covered by none, any time before the deadline), `required` (a host no
    /// window covers is left alone) or `ignore` (any time before the
    /// deadline). Blackouts covering a host always apply.
    #[serde(default)]
    pub windows: Option<String>,
    /// `if-required` (default: a host that reports it needs a reboot after
    /// its job gets a reboot job while its window is open; the job succeeds
    /// when the reboot reports) or `never` (the need is noted).
    #[serde(default)]
    pub reboot: Option<String>,
    /// Converge this policy group to its modal baseline (docs/drift.md, ADR
    /// 0019): each member gets exact pins at the baseline's version for the
    /// packages it has older; newer, missing and extra packages are reported
    /// by `GET /api/v1/drift`, never downgraded, installed or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converge: Option<String>,
}

/// One host in a deployment preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewHost {
    /// Asset.
    pub asset: String,
    /// Its ring.
    pub ring: String,
    /// Each package: installed version → the version it will get.
    pub packages: Vec<PreviewPackage>,
    /// When its job may start: its maintenance window(s) and the first slot
    /// before the deadline, or "any time until …".
    #[serde(default)]
    pub window: String,
}

/// A package change in a preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewPackage {
    /// Name.
    pub name: String,
    /// Installed now.
    pub from: Option<String>,
    /// Will get.
    pub to: String,
    /// The newest version the host's repositories offer, as its agent last
    /// reported (pending updates); `None` when it reported none for the
    /// package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
}

/// A target that will not be touched, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewSkip {
    /// Asset.
    pub asset: String,
    /// Why (no agent, package not installed, already at the version, …).
    pub reason: String,
}

/// What a deployment would do (`POST /api/v1/deployments/preview`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentPreview {
    /// Hosts and what each gets, ring by ring.
    pub hosts: Vec<PreviewHost>,
    /// Targets left alone, with the reason.
    pub skipped: Vec<PreviewSkip>,
    /// The rules, as they will apply (what counts against the budget).
    pub rules: Vec<String>,
    /// Hosts that match a known failure signature: the same package version
    /// failed on a host of the same OS release and architecture before
    /// (`SIG-<deployment>/<host>`, its step and error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A deployment with its rollout (`GET /api/v1/deployments/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentDetail {
    /// The deployment.
    pub deployment: DeploymentOut,
    /// Its rollout: state, rings with gate verdicts, each host's job.
    /// (Documented as a free-form object: the state machine's own type,
    /// `patchbay_core::rollout::Rollout`, serialised as it is.)
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub rollout: Option<patchbay_core::rollout::Rollout>,
    /// Each job's last result as the agent reported it.
    #[serde(default)]
    pub results: Vec<serde_json::Value>,
    /// Per staging ring (`stands_for`): how far its hosts were from the
    /// production group they stand for when the deployment was created.
    #[serde(default)]
    pub fidelity: Vec<RingFidelityOut>,
    /// Its backup verifications (docs/backup-verification.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_verifications: Vec<BackupVerificationOut>,
}

/// A staging ring compared with the production group it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingFidelityOut {
    /// The ring.
    pub ring: String,
    /// The production policy group.
    pub stands_for: String,
    /// Packages (name:arch) where any of the ring's hosts differs from the
    /// group's modal baseline (newer, older, differs, missing or extra).
    pub differing_packages: usize,
    /// The tolerance.
    pub tolerance: u32,
    /// `differing_packages > tolerance`.
    pub beyond_tolerance: bool,
    /// "staging differs from production: N packages" when beyond.
    #[serde(default)]
    pub note: Option<String>,
    /// The differing packages, `name:arch (kind)`, sorted (at most 100).
    pub packages: Vec<String>,
    /// When compared (RFC 3339).
    pub compared_at: String,
}

/// An approval or rejection of a deployment's ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeployApprovalIn {
    /// The ring (name); default: the ring waiting for approval.
    #[serde(default)]
    pub ring: Option<String>,
    /// Approve (true) or reject (false; aborts the deployment).
    pub approve: bool,
    /// Why (required).
    pub comment: String,
}

/// A maintenance window definition (`POST /api/v1/windows`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "sat-night", "rrule": "FREQ=WEEKLY;BYDAY=SA", "dtstart": "2026-01-03T02:00:00", "tz": "Europe/Berlin", "duration": "4h", "groups": ["web-prod"]})))]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Unique name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// RFC 5545 recurrence rule, e.g. `FREQ=MONTHLY;BYDAY=2TU`.
    pub rrule: String,
    /// Local start date-time (`YYYY-MM-DDTHH:MM[:SS]`) in `tz`.
    pub dtstart: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub tz: String,
    /// Duration, e.g. `4h`, `90m`, `1h30m`.
    pub duration: String,
    /// Days added to each instance (`2` for Patch Tuesday + 2).
    #[serde(default)]
    pub offset_days: i32,
    /// No new job starts within this long of the window's end (e.g. `30m`).
    #[serde(default)]
    pub cutoff: Option<String>,
    /// Groups (from the policy) the window applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Assets the window applies to.
    #[serde(default)]
    pub assets: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// One occurrence of a window (`[start, end)`, RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OccurrenceOut {
    /// Opens.
    pub start: String,
    /// Closes.
    pub end: String,
}

/// A stored window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowOut {
    /// The definition.
    #[serde(flatten)]
    pub spec: WindowSpec,
    /// The next occurrences (up to 3) from now.
    pub next: Vec<OccurrenceOut>,
    /// Creation time.
    pub created_at: String,
    /// Creator.
    pub created_by: String,
}

/// A blackout (change freeze) definition (`POST /api/v1/blackouts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "year-end", "start": "2026-12-20T00:00", "end": "2027-01-02T00:00", "tz": "Europe/Berlin", "reason": "change freeze", "owner": "cab", "groups": ["web-prod"]})))]
#[serde(deny_unknown_fields)]
pub struct BlackoutSpec {
    /// Unique name.
    pub name: String,
    /// Start (RFC 3339, or `YYYY-MM-DDTHH:MM` with `tz`).
    pub start: String,
    /// End, exclusive (same forms).
    pub end: String,
    /// Zone for local `start`/`end` (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
    /// Why (required).
    pub reason: String,
    /// Who owns it (required).
    pub owner: String,
    /// Groups it applies to; with no groups and no assets it applies to everything.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Assets it applies to.
    #[serde(default)]
    pub assets: Vec<String>,
}

/// A stored blackout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlackoutOut {
    /// Name.
    pub name: String,
    /// Start (RFC 3339 UTC).
    pub start: String,
    /// End (RFC 3339 UTC).
    pub end: String,
    /// Why.
    pub reason: String,
    /// Owner.
    pub owner: String,
    /// Groups (empty with empty assets: everything).
    pub groups: Vec<String>,
    /// Assets.
    pub assets: Vec<String>,
    /// Out-of-band deployments approved to enter it.
    pub approvals: Vec<BlackoutApprovalOut>,
    /// Creation time.
    pub created_at: String,
    /// Creator.
    pub created_by: String,
}

/// `POST /api/v1/blackouts/{name}/approvals`: let an out-of-band deployment
/// enter the blackout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlackoutApprovalIn {
    /// The out-of-band deployment (`DEP-OOB-…`).
    pub deployment: String,
    /// Why (required).
    pub note: String,
}

/// A recorded approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlackoutApprovalOut {
    /// The deployment.
    pub deployment: String,
    /// The approver (the caller who approved).
    pub approver: String,
    /// Why.
    pub note: String,
    /// When.
    pub approved_at: String,
}

/// `POST /api/v1/plan/preview`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"group": "web-prod", "days": 14})))]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Plan this deployment's assets (default: every asset with open findings).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Only assets in this group.
    #[serde(default)]
    pub group: Option<String>,
    /// Plan from this instant (RFC 3339; default now).
    #[serde(default)]
    pub from: Option<String>,
    /// Horizon in days (default 90, at most 366).
    #[serde(default)]
    pub days: Option<u32>,
    /// Expected duration of one asset's job (default `30m`).
    #[serde(default)]
    pub job_estimate: Option<String>,
}

/// One ring's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingPlanOut {
    /// Ring name.
    pub ring: String,
    /// Soak after the ring.
    pub soak: String,
    /// Earliest start (earlier rings + soak).
    pub earliest: String,
    /// First planned job.
    pub first: Option<String>,
    /// Last planned job.
    pub last: Option<String>,
    /// Assets in the ring.
    pub assets: usize,
    /// Of which without a slot.
    pub unplanned: usize,
}

/// One asset's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetPlanOut {
    /// Asset name.
    pub asset: String,
    /// Its ring.
    pub ring: Option<String>,
    /// Planned job start.
    pub planned: Option<String>,
    /// The window it is planned in.
    pub window: Option<String>,
    /// That window occurrence.
    pub occurrence: Option<OccurrenceOut>,
    /// Blackouts it enters under an out-of-band approval.
    pub enters_blackouts: Vec<String>,
    /// Why it has no slot.
    pub unplanned: Option<String>,
    /// Open findings on it.
    pub findings: usize,
}

/// A finding forecast to miss its SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AtRiskOut {
    /// Asset.
    pub asset: String,
    /// Advisory / CVE.
    pub cve: String,
    /// Package.
    pub package: String,
    /// Tier.
    pub tier: String,
    /// SLA due date.
    pub due: String,
    /// Planned patch time.
    pub planned: Option<String>,
    /// Why (at least one).
    pub reasons: Vec<String>,
}

/// The answer of a plan preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanOut {
    /// Planned from.
    pub from: String,
    /// Horizon end.
    pub until: String,
    /// The deployment planned, if any.
    pub deployment: Option<String>,
    /// Whether blackouts with an approval are entered (out-of-band).
    pub out_of_band: bool,
    /// Per ring.
    pub rings: Vec<RingPlanOut>,
    /// Per asset, in planned order (unplanned last).
    pub assets: Vec<AssetPlanOut>,
    /// Findings at risk, by due date.
    pub at_risk: Vec<AtRiskOut>,
    /// One line.
    pub summary: String,
}

/// `POST /api/v1/exceptions`: defer findings on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"advisory": "CVE-2024-2961", "asset": "web-01", "owner": "team-web", "reason": "vendor build pending", "compensating_control": "WAF rule 942100", "expires": "30d"})))]
#[serde(deny_unknown_fields)]
pub struct ExceptionSpec {
    /// Advisory or CVE id (with or instead of `package`).
    #[serde(default)]
    pub advisory: Option<String>,
    /// Package (binary or source).
    #[serde(default)]
    pub package: Option<String>,
    /// One asset (or `group`).
    #[serde(default)]
    pub asset: Option<String>,
    /// One policy group (or `asset`).
    #[serde(default)]
    pub group: Option<String>,
    /// Who owns the risk.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// What mitigates the risk meanwhile.
    pub compensating_control: String,
    /// Expiry: RFC 3339, `YYYY-MM-DD` (UTC), or a duration from now (`30d`, `72h`).
    pub expires: String,
    /// `deferred` (the default: the risk is accepted for a while) or
    /// `not_affected` (an operator's VEX statement: the finding does not
    /// apply; needs `justification`, no compensating control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For `not_affected`: `component_not_present`,
    /// `vulnerable_code_not_present`, `vulnerable_code_not_in_execute_path`,
    /// `vulnerable_code_cannot_be_controlled_by_adversary` or
    /// `inline_mitigations_already_exist` (the CSAF / VEX labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// An exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionOut {
    /// `EXC-<yyyy>-<nnnn>`.
    pub id: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Advisory / CVE (empty: any).
    pub advisory: String,
    /// Package (empty: any).
    pub package: String,
    /// Asset (empty for a group exception).
    pub asset: String,
    /// Group (empty for an asset exception).
    pub group: String,
    /// Owner.
    pub owner: String,
    /// Reason.
    pub reason: String,
    /// Compensating control.
    pub compensating_control: String,
    /// Approver (the caller who created it).
    pub approver: String,
    /// Created.
    pub created_at: String,
    /// Expires.
    pub expires_at: String,
    /// Revoked.
    pub revoked_at: Option<String>,
    /// By.
    pub revoked_by: Option<String>,
    /// Why.
    pub revoke_reason: Option<String>,
    /// Open findings it covers now (`asset package advisory`).
    pub covers: Vec<String>,
    /// `deferred` or `not_affected` (VEX).
    #[serde(default)]
    pub kind: String,
    /// For `not_affected`: the VEX justification label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub justification: String,
    /// Empty for an operator's; `csaf:<tracking id>` for a CSAF VEX statement.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
}

/// `POST /api/v1/exceptions/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// Why (required).
    pub reason: String,
}

/// `GET /api/v1/exceptions/review`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionReviewOut {
    /// In force, expiring within 7 days.
    pub expiring: Vec<ExceptionOut>,
    /// Expired (not revoked).
    pub expired: Vec<ExceptionOut>,
    /// In force, but their owner owns none of the assets in scope any more.
    pub ownerless: Vec<ExceptionOut>,
}

/// A change record in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeSummaryOut {
    /// `CHG-<nnnn>`.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// `oob` or `baseline`.
    pub kind: String,
    /// The deployment's status.
    pub status: String,
    /// Highest tier among its patches.
    pub highest_tier: String,
    /// Assets in scope.
    pub assets: usize,
    /// Patches in scope.
    pub patches: usize,
    /// Created.
    pub created_at: String,
}

/// A patch in a change's scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePatch {
    /// Standard name (`PB-…`).
    pub name: String,
    /// Package.
    pub package: String,
    /// Target version.
    pub fixed_version: String,
    /// Highest tier of its findings.
    pub highest_tier: String,
    /// CVEs it fixes.
    pub cves: Vec<String>,
}

/// One back-out step: return a package on an asset to its recorded version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackOutStep {
    /// Asset.
    pub asset: String,
    /// Binary package.
    pub package: String,
    /// The version installed before the change (the rollback target).
    pub installed_version: String,
    /// The version the change installs.
    pub target_version: String,
    /// How to back out by hand if the agent cannot (`patchbay-agent rollback`
    /// restores the plan it recorded before applying).
    pub command: String,
}

/// An approval recorded for a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeApproval {
    /// What was approved (`blackout:<name>`, …).
    pub subject: String,
    /// Who.
    pub approver: String,
    /// When.
    pub at: String,
    /// Why.
    pub note: String,
}

/// A lessons-learned entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LessonOut {
    /// Id.
    pub id: i64,
    /// The change record.
    pub change_id: String,
    /// When.
    pub at: String,
    /// Who.
    pub author: String,
    /// The lesson.
    pub text: String,
}

/// `POST /api/v1/changes/{id}/lessons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"text": "Stage the openssl update on one canary first."})))]
#[serde(deny_unknown_fields)]
pub struct LessonIn {
    /// The lesson (required).
    pub text: String,
}

/// A change record: scope, risk, windows, back-out plan, approvals, outcome
/// and lessons learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRecordOut {
    /// `CHG-<nnnn>`.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// `oob` or `baseline`.
    pub kind: String,
    /// Why the change is made.
    pub reason: String,
    /// Created.
    pub created_at: String,
    /// By.
    pub created_by: String,
    /// Assets in scope.
    pub assets: Vec<String>,
    /// Patches in scope.
    pub patches: Vec<ChangePatch>,
    /// Highest tier among the patches.
    pub highest_tier: String,
    /// CVEs in CISA KEV that the change fixes.
    pub kev_cves: Vec<String>,
    /// Open findings the change closes.
    pub findings: u64,
    /// One line on the risk.
    pub risk: String,
    /// Rings in order with their forecast.
    pub rings: Vec<RingPlanOut>,
    /// Per asset: window and planned time.
    pub windows: Vec<AssetPlanOut>,
    /// The back-out plan.
    pub back_out: Vec<BackOutStep>,
    /// Approvals recorded.
    pub approvals: Vec<ChangeApproval>,
    /// Outcome: the rollout's state and why (the deployment's status before
    /// it started).
    pub outcome: String,
    /// Lessons learned.
    pub lessons: Vec<LessonOut>,
    /// The rollout as it ran: each ring's state, its jobs by outcome, and
    /// every gate decision with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSummary>,
    /// Per host, what its job did (none before the rollout starts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostOutcome>,
    /// The deployment's test report: its counts and where to read it (none
    /// before the rollout starts; docs/test-results.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_report: Option<TestReportSummary>,
}

/// A backup verification (docs/backup-verification.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupVerificationOut {
    /// The deployment.
    pub deployment: String,
    /// The host's ring.
    pub ring: String,
    /// The host.
    pub host: String,
    /// The snapshot's identity, as the host's `hooks.snapshot` printed it.
    pub snapshot: String,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
    /// `pending`, `verified` or `failed`.
    pub verdict: String,
    /// The hook's exit status and output excerpt.
    pub excerpt: String,
    /// When the agent's verdict arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_at: Option<String>,
}

/// A deployment's test report in brief, with its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestReportSummary {
    /// Every test case.
    pub tests: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failures: usize,
    /// Not run.
    pub skipped: usize,
    /// The failed cases, `SUITE CASE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// The report in the API (`?format=junit|html|json`).
    pub api: String,
    /// The report's page on the dashboard.
    pub page: String,
}

/// One host's job in a change record: its state, error and versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostOutcome {
    /// The host (asset name).
    pub host: String,
    /// Its ring.
    pub ring: String,
    /// The job's state (`pending`, `succeeded`, `failed`, `rolled_back`,
    /// `rollback_failed`, `skipped`, …).
    pub state: String,
    /// When its job was leased (RFC 3339).
    pub leased_at: Option<String>,
    /// When its outcome was taken in (RFC 3339).
    pub finished_at: Option<String>,
    /// Why it failed or was skipped (a failed rollback says so).
    pub error: Option<String>,
    /// Per package: the pinned version and what the agent reported.
    pub packages: Vec<PackageOutcome>,
    /// What the rollback job reported, if one ran: `rolled_back` or
    /// `rollback_failed`, with the agent's message.
    pub rollback: Option<String>,
    /// Re-test: per CVE the job targeted on this host (open findings of the
    /// packages it pins when it was leased), whether it is closed now
    /// (docs/reports.md, "Re-test").
    #[serde(default)]
    pub retest: Vec<RetestOut>,
    /// The job reported success but a targeted CVE is still open: not
    /// remediated (reports count it so, not as a success).
    #[serde(default)]
    pub not_remediated: bool,
}

/// One CVE a job targeted, after the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetestOut {
    /// The CVE (the advisory id when the advisory names none).
    pub cve: String,
    /// Advisories naming it.
    pub advisories: Vec<String>,
    /// Binary packages whose findings name it.
    pub packages: Vec<String>,
    /// Every targeted finding naming it is resolved.
    pub closed: bool,
    /// When the last of them was resolved (RFC 3339).
    #[serde(default)]
    pub closed_at: Option<String>,
}

/// One package of a host's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageOutcome {
    /// Package name.
    pub name: String,
    /// The version the job installs (none: changed as a dependency).
    pub target: Option<String>,
    /// Installed before, as the agent reported (none: not reported, or newly
    /// installed).
    pub before: Option<String>,
    /// Installed after the job, as the agent reported (none: not reported or
    /// removed; after a rollback, the version it restored).
    pub after: Option<String>,
}

/// What a deployment's rollout did, for its change record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutSummary {
    /// `running`, `completed`, `halted`, …
    pub status: String,
    /// Why it paused, halted or was aborted.
    pub reason: Option<String>,
    /// Rings in order.
    pub rings: Vec<RingSummary>,
}

/// One ring of a rollout summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingSummary {
    /// Name.
    pub name: String,
    /// State.
    pub state: String,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs that failed (and were not rolled back).
    pub failed: usize,
    /// Jobs rolled back.
    pub rolled_back: usize,
    /// Jobs skipped (offline, window closed, halted, aborted).
    pub skipped: usize,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Gate decisions: (gate, verdict, reason).
    pub gates: Vec<(String, String, String)>,
}

/// `POST /api/v1/assets/{name}/enrollment-approvals`: lets the next agent
/// enrolment take over this asset (re-enrolment of a host whose agent is
/// active, without its old credential) or adopt it (an imported asset whose
/// name a new host's name matches). One use, then it is spent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollmentApprovalIn {
    /// How long the approval stays usable, in seconds (default 3600, at most
    /// 86400).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Why (for the audit trail), at most 256 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// A recorded enrolment approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentApprovalOut {
    /// Its id.
    pub id: i64,
    /// The asset.
    pub asset: String,
    /// Who approved.
    pub approved_by: String,
    /// When (RFC 3339).
    pub approved_at: String,
    /// Until when the next enrolment may use it (RFC 3339).
    pub expires_at: String,
    /// `re-enrolment` (the asset has an active agent) or `adoption` (it has none).
    pub kind: String,
    /// Why.
    pub note: String,
}

/// A header sent with every request of a subscription, carrying the
/// receiver's credential (`Authorization: Basic …` for Jira or ServiceNow).
/// Its value is never printed: `Debug` redacts it and no answer carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthHeader {
    /// The header's name (`Authorization`, `X-Api-Key`, …).
    pub name: String,
    /// Its value (a secret).
    pub value: String,
}

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeader")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/webhooks/{name}/auth`: replaces a subscription's auth
/// headers (an empty list removes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookAuthSpec {
    /// The headers.
    #[serde(default)]
    pub auth_headers: Vec<AuthHeader>,
}

/// `POST /api/v1/webhooks`: a new subscription. `Debug` redacts the
/// PagerDuty routing key and the auth headers' values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "chatops", "url": "http://127.0.0.1:9/hook", "events": ["finding.*"]})))]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Unique name (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// Where deliveries are POSTed (`http://` or `https://`).
    pub url: String,
    /// `generic` (default), `slack`, `teams`, `pagerduty`, `jira`, `servicenow`.
    #[serde(default)]
    pub template: Option<String>,
    /// Event kinds (`*` or empty: all); see `docs/events.md`.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events of this deployment.
    #[serde(default)]
    pub deployment: Option<String>,
    /// Only events naming this policy group.
    #[serde(default)]
    pub group: Option<String>,
    /// Only events naming this tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// PagerDuty routing key (template `pagerduty`).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Jira project key (template `jira`).
    #[serde(default)]
    pub project: Option<String>,
    /// Attempts before dead-lettering (1–50; default 10).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Headers sent with every request (the receiver's credential).
    #[serde(default)]
    pub auth_headers: Vec<AuthHeader>,
}

impl std::fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("template", &self.template)
            .field("events", &self.events)
            .field("deployment", &self.deployment)
            .field("group", &self.group)
            .field("tier", &self.tier)
            .field(
                "routing_key",
                &self.routing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("project", &self.project)
            .field("max_attempts", &self.max_attempts)
            .field("auth_headers", &self.auth_headers)
            .finish()
    }
}

/// A subscription (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookOut {
    /// Name.
    pub name: String,
    /// Receiver URL.
    pub url: String,
    /// Template.
    pub template: String,
    /// Event kinds.
    pub events: Vec<String>,
    /// Deployment filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Tier filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Outbox position fanned out so far.
    pub cursor: i64,
    /// When created (RFC 3339).
    pub created_at: String,
    /// By whom.
    pub created_by: String,
    /// Deliveries pending / delivered / dead (in the last `counts` rows).
    #[serde(default)]
    pub pending: u64,
    /// Dead letters.
    #[serde(default)]
    pub dead: u64,
    /// The names of the auth headers it sends (never their values).
    #[serde(default)]
    pub auth_headers: Vec<String>,
}

/// `POST /api/v1/webhooks` answer: the subscription and its secret, shown
/// this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookCreated {
    /// The subscription.
    pub webhook: WebhookOut,
    /// The signing secret (`whsec_…`): shown once, never again.
    pub secret: String,
}

/// One delivery in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryOut {
    /// The `Patchbay-Delivery` id.
    pub delivery_id: String,
    /// The outbox event (`evt_<n>`).
    pub event_id: String,
    /// `pending`, `delivered`, `dead`, `skipped`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When due next (pending).
    pub next_at: String,
    /// Last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
    /// Last HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

/// `POST /api/v1/webhooks/{name}/replay` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayOut {
    /// Dead letters made pending again.
    pub replayed: u64,
}

/// `POST /api/v1/webhooks/{name}/test` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTestOut {
    /// The test event queued (`evt_<n>`); it is delivered like any other.
    pub event_id: String,
}

/// `POST /api/v1/contacts`: a notification contact (an email recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "cab", "email": "cab@example.com", "events": ["deployment.*"]})))]
#[serde(deny_unknown_fields)]
pub struct ContactSpec {
    /// Unique name (letters, digits, `-`, `_`, `.`; at most 64): what
    /// escalation steps name.
    pub name: String,
    /// The address (`local@domain`).
    pub email: String,
    /// Event kinds emailed to it (`approval.requested`,
    /// `deployment.completed`, `exception.review`, …); empty: only the
    /// escalation steps addressed to it.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A contact with its delivery counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactOut {
    /// Name.
    pub name: String,
    /// Address.
    pub email: String,
    /// Event kinds emailed to it.
    pub events: Vec<String>,
    /// Emails waiting (or retrying).
    pub pending: u64,
    /// Emails sent.
    pub sent: u64,
    /// Emails whose attempts ran out.
    pub dead: u64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// By whom.
    pub created_by: String,
}

/// One email delivery (the delivery log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailOut {
    /// The contact.
    pub contact: String,
    /// The outbox event (`evt_…`).
    pub event_id: String,
    /// Its `Message-ID`.
    pub message_id: String,
    /// `pending`, `sent`, `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When due (pending) or last changed.
    pub next_at: String,
    /// The last error.
    pub last_error: Option<String>,
    /// When the SMTP server accepted it.
    pub delivered_at: Option<String>,
}

/// `POST /api/v1/escalations`: an escalation chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "approvals", "trigger": "approval", "steps": ["email:cab", "email:cab:1h"]})))]
#[serde(deny_unknown_fields)]
pub struct EscalationSpec {
    /// Unique name.
    pub name: String,
    /// `approval` (deployment rings waiting for approval) or `sla` (findings
    /// at risk of or past their SLA).
    pub trigger: String,
    /// The steps in order, each `CHANNEL:NAME[:WAIT]` (`email:alice`,
    /// `webhook:noc:30m`); WAIT is after the previous step.
    pub steps: Vec<String>,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationChainOut {
    /// Name.
    pub name: String,
    /// `approval` or `sla`.
    pub trigger: String,
    /// Steps, `CHANNEL:NAME:WAITs`.
    pub steps: Vec<String>,
    /// Escalations still open.
    pub open: u64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// By whom.
    pub created_by: String,
}

/// One fired step of an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationStepOut {
    /// Its index in the chain (0-based).
    pub step: u32,
    /// `email` or `webhook`.
    pub channel: String,
    /// The contact or subscription.
    pub to: String,
    /// When it was due (RFC 3339).
    pub due_at: String,
    /// When it fired (RFC 3339).
    pub at: String,
}

/// One escalation: a chain running for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationOut {
    /// `ESC-<n>`.
    pub id: String,
    /// The chain.
    pub chain: String,
    /// What it is about (`deployment:DEP-…`, `finding:…`).
    pub subject: String,
    /// The starting event's summary.
    pub summary: String,
    /// `open`, `acknowledged`, `resolved`, `exhausted`.
    pub state: String,
    /// Started (RFC 3339).
    pub started_at: String,
    /// The next step's due time, while open.
    pub next_at: Option<String>,
    /// The steps fired so far.
    pub steps: Vec<EscalationStepOut>,
    /// When it was closed.
    pub closed_at: Option<String>,
    /// By whom (acknowledged) or what (resolved).
    pub closed_by: Option<String>,
    /// The acknowledgement's comment.
    pub comment: Option<String>,
}

/// `GET /api/v1/escalations/{name}`: a chain and its escalations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationChainDetail {
    /// The chain.
    pub chain: EscalationChainOut,
    /// Its escalations, newest first (at most 200).
    pub escalations: Vec<EscalationOut>,
}

/// `POST /api/v1/escalations/{name}/ack`: acknowledge an open escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationAckIn {
    /// `ESC-<n>` (or `<n>`).
    pub id: String,
    /// Who is on it and what happens next.
    #[serde(default)]
    pub comment: Option<String>,
}

/// What `POST /api/v1/keys/rotate` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRotated {
    /// The announcement written into the audit log.
    pub announcement: patchbay_core::audit::KeyAnnouncement,
}

/// What `GET /api/v1/whoami` answers: the caller, and the server's public
/// signing key (for pinning in `audit verify` and `evidence verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The token's id (absent for a caller that is not a token).
    pub token_id: Option<i64>,
    /// The token's name.
    pub name: Option<String>,
    /// The token's role.
    pub role: Role,
    /// The scopes the token is restricted to; `null`: unrestricted.
    pub scopes: Option<Vec<patchbay_core::auth::Scope>>,
    /// The server's audit signing key (hex), when it signs.
    pub server_public_key: Option<String>,
}

/// A policy sent as JSON to `POST /api/v1/policy` or `/policy/preview`
/// (the TOML text may also be sent as it is, `application/toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyTextIn {
    /// The policy's TOML text.
    pub text: String,
}

/// `POST /api/v1/users`: a person who signs in to the dashboard. `Debug`
/// hides the password.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    /// Sign-in name: 1–64 of `A-Z a-z 0-9 . _ @ -`.
    pub name: String,
    /// Role (the same roles as API tokens; not `calendar`).
    pub role: Role,
    /// Password: 12–1024 characters. Stored only as an argon2id hash.
    pub password: String,
}

/// `POST /api/v1/users/{name}/password`. `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password: 12–1024 characters.
    pub password: String,
}

/// `POST /api/v1/users/{name}/disabled`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetUserDisabled {
    /// `true` disables the user and ends its sessions; `false` enables it again.
    pub disabled: bool,
}

/// A user as listed (never the password or its hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Sign-in name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Last password change (RFC 3339).
    pub password_changed_at: String,
    /// When it was disabled (RFC 3339); absent: enabled.
    pub disabled_at: Option<String>,
    /// Last successful sign-in (RFC 3339).
    pub last_login_at: Option<String>,
    /// Failed sign-ins since the last success.
    pub failed_logins: i64,
    /// Sign-ins are refused until then (RFC 3339).
    pub locked_until: Option<String>,
}

/// A dashboard session as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Id (to revoke it).
    pub id: i64,
    /// Whose.
    pub user: String,
    /// Sign-in time (RFC 3339).
    pub created_at: String,
    /// Last request (RFC 3339, one-minute resolution).
    pub last_seen_at: String,
    /// Absolute end (RFC 3339).
    pub expires_at: String,
    /// When it was ended (RFC 3339).
    pub revoked_at: Option<String>,
    /// Peer address at sign-in.
    pub remote: String,
    /// The browser's `User-Agent` at sign-in.
    pub user_agent: String,
}

impl std::fmt::Debug for AddUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A CSAF remediation of a matched product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CsafRemediationOut {
    /// `vendor_fix`, `workaround`, `mitigation`, `none_available`, `no_fix_planned`.
    pub category: String,
    /// The vendor's text.
    pub details: String,
    /// Where to read more or download the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `GET /api/v1/csaf/matches/{asset}`: one product of the asset under one CSAF
/// document, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CsafMatchOut {
    /// The document's tracking id (the finding's advisory).
    pub document: String,
    /// CVEs of the vulnerabilities that affect the product.
    pub cves: Vec<String>,
    /// `vendor product`.
    pub package: String,
    /// Installed version.
    pub installed: String,
    /// The lowest fixed release above it the document lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Remediations naming the matched products.
    pub remediations: Vec<CsafRemediationOut>,
}

/// `GET /api/v1/drift`: configuration drift per policy group (issue 18,
/// item 4; docs/drift.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftOut {
    /// One line per group asked for, by name.
    pub groups: Vec<GroupDriftOut>,
}

/// One group's baseline and its hosts' drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDriftOut {
    /// Policy group.
    pub group: String,
    /// `modal` or `golden`.
    pub baseline_source: String,
    /// The golden host, when the baseline is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<String>,
    /// Package format compared (`deb`, `rpm`, `apk`): the group's most common.
    pub format: String,
    /// Hosts the baseline was computed over.
    pub hosts: usize,
    /// The baseline: one version per (name, arch).
    pub baseline: Vec<BaselinePackageOut>,
    /// Drifted packages over the group's hosts (the metric's value).
    pub drifted_packages: usize,
    /// Per host (asked for), its differences.
    pub assets: Vec<HostDriftOut>,
    /// Members left out, with why (no agent, another package format).
    #[serde(default)]
    pub skipped: Vec<PreviewSkip>,
}

/// One package of a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaselinePackageOut {
    /// Name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Baseline version.
    pub version: String,
    /// Hosts that have the package.
    pub hosts_with: usize,
    /// Hosts at the baseline version.
    pub hosts_at: usize,
}

/// One host's drift from its group's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostDriftOut {
    /// Asset.
    pub asset: String,
    /// Newer than the baseline.
    pub newer: usize,
    /// Older than the baseline.
    pub older: usize,
    /// Versions that cannot be ordered.
    pub differs: usize,
    /// In the baseline, not installed.
    pub missing: usize,
    /// Installed, not in the baseline.
    pub extra: usize,
    /// Each difference, by (name, arch).
    pub differences: Vec<DriftDifferenceOut>,
}

/// One package where a host differs from the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftDifferenceOut {
    /// Name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// `newer`, `older`, `differs`, `missing` or `extra`.
    pub kind: String,
    /// The baseline's version (none: extra).
    #[serde(default)]
    pub baseline: Option<String>,
    /// The host's version (none: missing).
    #[serde(default)]
    pub installed: Option<String>,
}

/// `PUT /api/v1/drift/{group}/golden`: pin a golden host as a policy
/// group's drift baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GoldenIn {
    /// The golden host (an asset with an agent).
    pub asset: String,
}

/// A deployment's expected impact per owner (`GET
/// /api/v1/deployments/{id}/impact`; issue 18, item 8, ADR 0021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentImpactOut {
    /// The deployment.
    pub deployment: String,
    /// Its state (`draft`, `running`, …).
    pub status: String,
    /// When this was computed (RFC 3339).
    pub computed_at: String,
    /// How long before an owner's first window its notice is raised
    /// (seconds).
    pub lead_secs: i64,
    /// Per owner (`patchbay_core::impact::OwnerImpact`: owner, unowned,
    /// first_window, assets with window, packages, services, reboot and the
    /// interruption estimate with its basis).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub owners: Vec<patchbay_core::impact::OwnerImpact>,
    /// The notices and summaries raised so far.
    pub notices: Vec<ImpactNoticeOut>,
}

/// An impact notice or summary raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImpactNoticeOut {
    /// The owner.
    pub owner: String,
    /// `notice` or `summary`.
    pub kind: String,
    /// When it was raised (RFC 3339).
    pub at: String,
    /// The contact its email goes to (a contact of that name, if one
    /// exists).
    pub contact: String,
    /// The owner's assets it covered.
    pub assets: Vec<String>,
}
