//! Patchbay storage: role-sized traits and their SQLite and PostgreSQL
//! implementations.
//!
//! Every operation runs inside a transaction ([`Tx`]) obtained from a [`Store`]:
//! the service layer opens one write transaction per state change and appends the
//! audit event inside it, so a change and its audit record commit or vanish
//! together. Driver errors never leave this crate: they become [`StoreError`].
//!
//! # Layout
//! - this file: the traits, the row types, [`open`] (backend chosen by URL).
//! - `sql.rs`: one implementation of the traits, stamped out for both engines by
//!   a macro: the SQL is shared because both engines accept `$n` placeholders,
//!   `RETURNING` and `ON CONFLICT`.
//! - `sqlite.rs`, `postgres.rs`: pools, pragmas, migrations.
//! - `migrations/{sqlite,postgres}/NNNN_*.sql`: append-only, versions in lock-step.
//!
//! **Invariant:** SQLite has exactly one writer (a one-connection write pool whose
//! transactions start with `BEGIN IMMEDIATE`), so writers queue instead of failing
//! with `SQLITE_BUSY`.
#![forbid(unsafe_code)]

mod migrations;
mod postgres;
mod sql;
mod sqlite;
pub mod testing;

use async_trait::async_trait;
use jiff::Timestamp;
use patchbay_core::inventory::{HostFacts, Package, PackageDelta, PendingUpdate};
use std::sync::Arc;

pub use migrations::MIGRATION_VERSIONS;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Storage errors, free of driver types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corrupt data, bad SQL: bugs).
    #[error("storage error: {0}")]
    Other(String),
    /// Stored evidence fails an integrity check (the audit chain's head is not
    /// signed by this server's key): the write is refused, nothing changed.
    #[error("integrity: {0}")]
    Integrity(String),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Converts a timestamp to the stored form (milliseconds since the epoch).
pub fn to_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// Converts the stored form back.
pub fn from_millis(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Other(format!("bad timestamp {ms}: {e}")))
}

/// Editable attributes of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetAttrs {
    /// Kind (`server`, `network-device`…).
    pub kind: String,
    /// Owner.
    pub owner: String,
    /// Business impact.
    pub business_impact: String,
    /// Exposure.
    pub exposure: String,
    /// Environment.
    pub environment: String,
    /// Tags, sorted.
    pub tags: Vec<String>,
}

impl Default for AssetAttrs {
    fn default() -> Self {
        Self {
            kind: "server".into(),
            owner: String::new(),
            business_impact: "medium".into(),
            exposure: "internal".into(),
            environment: String::new(),
            tags: Vec::new(),
        }
    }
}

/// A stored asset.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Editable attributes.
    pub attrs: AssetAttrs,
    /// Whether an agent is enrolled for it.
    pub has_agent: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of attributes or inventory.
    pub updated_at: Timestamp,
    /// Last agent check-in.
    pub last_seen_at: Option<Timestamp>,
    /// Host facts of the stored inventory.
    pub facts: HostFacts,
    /// Package format (`deb`, `rpm`, `apk`, `other`).
    pub package_format: Option<String>,
    /// Hash of the stored inventory (`None` before the first one).
    pub inventory_hash: Option<String>,
    /// Pending updates.
    pub pending_updates: Vec<PendingUpdate>,
    /// Number of package rows.
    pub package_count: i64,
}

/// A stored API token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Role name.
    pub role: String,
    /// Display prefix.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Last use (one-minute resolution).
    pub last_used_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// A new API token.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// Label.
    pub name: String,
    /// Role name.
    pub role: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Display prefix.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// A stored enrolment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollTokenRow {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Uses allowed in all.
    pub uses_total: i64,
    /// Uses left.
    pub uses_left: i64,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// A new enrolment token.
#[derive(Debug, Clone)]
pub struct NewEnrollToken {
    /// Label.
    pub name: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Display prefix.
    pub prefix: String,
    /// Uses allowed.
    pub uses: i64,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// A stored agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent id.
    pub id: String,
    /// Asset id.
    pub asset_id: i64,
    /// Asset name.
    pub asset_name: String,
    /// Enrolment time.
    pub enrolled_at: Timestamp,
    /// Last check-in.
    pub last_checkin_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// An audit event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `denied`, `error`.
    pub outcome: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Sequence number.
    pub seq: i64,
    /// The event.
    pub record: AuditRecord,
}

/// Host state written with an inventory.
#[derive(Debug, Clone)]
pub struct HostState<'a> {
    /// Facts.
    pub facts: &'a HostFacts,
    /// Package format.
    pub package_format: Option<&'a str>,
    /// Pending updates.
    pub pending_updates: &'a [PendingUpdate],
    /// New inventory hash.
    pub inventory_hash: &'a str,
    /// Check-in time; `None` keeps the last one (imports are not check-ins).
    pub seen_at: Option<Timestamp>,
    /// Time of the change.
    pub now: Timestamp,
}

/// Assets: the registry.
#[async_trait]
pub trait AssetStore {
    /// Finds an asset by name.
    async fn asset_by_name(&mut self, name: &str) -> Result<Option<AssetRow>>;
    /// Finds an asset by machine id (re-enrolment of a known host).
    async fn asset_by_machine_id(&mut self, machine_id: &str) -> Result<Option<AssetRow>>;
    /// All assets, by name.
    async fn list_assets(&mut self) -> Result<Vec<AssetRow>>;
    /// Inserts an asset; `Conflict` when the name is taken.
    async fn insert_asset(
        &mut self,
        name: &str,
        attrs: &AssetAttrs,
        has_agent: bool,
        now: Timestamp,
    ) -> Result<i64>;
    /// Replaces an asset's editable attributes.
    async fn update_asset_attrs(
        &mut self,
        id: i64,
        attrs: &AssetAttrs,
        now: Timestamp,
    ) -> Result<()>;
    /// Records the host name and machine id an agent enrolled with (so a host that
    /// enrols again is recognised before its first check-in).
    async fn set_machine(
        &mut self,
        id: i64,
        hostname: &str,
        machine_id: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Marks an asset as having an agent.
    async fn set_has_agent(&mut self, id: i64, has_agent: bool, now: Timestamp) -> Result<()>;
}

/// Installed packages and host state.
#[async_trait]
pub trait InventoryStore {
    /// An asset's packages, sorted by (name, arch, version).
    async fn packages(&mut self, asset_id: i64) -> Result<Vec<Package>>;
    /// Applies a package delta; returns the number of rows inserted plus deleted.
    /// Writes nothing for an empty delta.
    async fn apply_package_delta(&mut self, asset_id: i64, delta: &PackageDelta) -> Result<u64>;
    /// Stores the host facts, pending updates and inventory hash, and the check-in time.
    async fn set_host_state(&mut self, asset_id: i64, state: &HostState<'_>) -> Result<()>;
    /// Records a check-in that changed nothing.
    async fn touch_seen(&mut self, asset_id: i64, at: Timestamp) -> Result<()>;
}

/// API and enrolment tokens.
#[async_trait]
pub trait TokenStore {
    /// Inserts an API token.
    async fn insert_api_token(&mut self, t: &NewApiToken) -> Result<ApiTokenRow>;
    /// Finds an API token by hash (revoked ones included; the caller checks).
    async fn api_token_by_hash(&mut self, hash: &str) -> Result<Option<ApiTokenRow>>;
    /// Records a use.
    async fn touch_api_token(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// All API tokens.
    async fn list_api_tokens(&mut self) -> Result<Vec<ApiTokenRow>>;
    /// Revokes a token; `NotFound` if absent, `Conflict` if already revoked.
    async fn revoke_api_token(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// Inserts an enrolment token.
    async fn insert_enroll_token(&mut self, t: &NewEnrollToken) -> Result<EnrollTokenRow>;
    /// Consumes one use of a valid (unexpired, unrevoked, uses left) enrolment token.
    async fn consume_enroll_token(
        &mut self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<EnrollTokenRow>>;
    /// All enrolment tokens.
    async fn list_enroll_tokens(&mut self) -> Result<Vec<EnrollTokenRow>>;
}

/// Enrolled agents.
#[async_trait]
pub trait AgentStore {
    /// Inserts an agent.
    async fn insert_agent(
        &mut self,
        id: &str,
        asset_id: i64,
        secret_hash: &str,
        enroll_token_id: Option<i64>,
        now: Timestamp,
    ) -> Result<()>;
    /// Finds an agent by its secret's hash.
    async fn agent_by_secret_hash(&mut self, hash: &str) -> Result<Option<AgentRow>>;
    /// Revokes all agents of an asset (on re-enrolment).
    async fn revoke_agents_of_asset(&mut self, asset_id: i64, now: Timestamp) -> Result<u64>;
    /// Records a check-in.
    async fn touch_agent(&mut self, id: &str, at: Timestamp) -> Result<()>;
    /// Number of agents of an asset that are not revoked.
    async fn active_agents_of_asset(&mut self, asset_id: i64) -> Result<u64>;
    /// Records an operator's approval for the next enrolment to take over (or
    /// adopt) an asset; returns its id.
    async fn insert_enrollment_approval(
        &mut self,
        asset_id: i64,
        approved_by: &str,
        note: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<i64>;
    /// Uses up the oldest unused, unexpired enrolment approval of an asset;
    /// returns its id and approver, or `None` when there is none.
    async fn take_enrollment_approval(
        &mut self,
        asset_id: i64,
        now: Timestamp,
    ) -> Result<Option<(i64, String)>>;
}

/// The audit log (append-only).
#[async_trait]
pub trait AuditStore {
    /// Appends an event to the hash chain (signed when a signer is given);
    /// returns its sequence number.
    async fn append_audit(
        &mut self,
        rec: &AuditRecord,
        signer: Option<&patchbay_core::audit::Signer>,
    ) -> Result<i64>;
    /// Raw chain entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<patchbay_core::audit::StoredEntry>>;
    /// The chain's head: last sequence number and hash (hex).
    async fn audit_head(&mut self) -> Result<(i64, String)>;
    /// Seals entries written before the chain existed into it (once, at start);
    /// returns how many.
    async fn seal_legacy_audit(
        &mut self,
        signer: Option<&patchbay_core::audit::Signer>,
    ) -> Result<u64>;
    /// Records a public key the server signs with.
    async fn register_server_key(&mut self, public_hex: &str, at: Timestamp) -> Result<()>;
    /// Recorded public keys (hex), oldest first.
    async fn server_keys(&mut self) -> Result<Vec<String>>;
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn list_audit(&mut self, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
}

/// A recorded feed import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    /// Id.
    pub id: i64,
    /// `osv`, `kev` or `epss`.
    pub kind: String,
    /// The path it was imported from.
    pub source: String,
    /// Feed version or date (KEV catalog version, EPSS score date, newest OSV modification).
    pub version: String,
    /// Records imported.
    pub records: i64,
    /// Malformed records skipped.
    pub skipped: i64,
    /// Last import time.
    pub imported_at: Timestamp,
    /// Who imported it.
    pub imported_by: String,
}

/// A stored advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryRow {
    /// Feed id (`DSA-…`, `ALSA-…`).
    pub id: String,
    /// Summary.
    pub summary: String,
    /// CVE ids.
    pub cves: Vec<String>,
    /// CVSS base score.
    pub cvss_score: Option<f64>,
    /// CVSS vector.
    pub cvss_vector: Option<String>,
    /// Publication time.
    pub published: Option<Timestamp>,
    /// Last modification.
    pub modified: Option<Timestamp>,
    /// Affected packages (JSON owned by the service layer).
    pub affected: serde_json::Value,
    /// Ecosystems, space-separated.
    pub ecosystems: String,
}

/// A CISA KEV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevRow {
    /// CVE id.
    pub cve: String,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Vulnerability name.
    pub name: String,
    /// Date added (YYYY-MM-DD).
    pub date_added: String,
    /// Remediation due date (YYYY-MM-DD).
    pub due_date: String,
    /// Known ransomware use.
    pub ransomware: bool,
    /// Catalog version it came from.
    pub catalog_version: String,
}

/// An EPSS score.
#[derive(Debug, Clone, PartialEq)]
pub struct EpssRow {
    /// CVE id.
    pub cve: String,
    /// Probability of exploitation in 30 days.
    pub epss: f64,
    /// Percentile.
    pub percentile: f64,
    /// Score date.
    pub score_date: String,
}

/// A finding as computed by an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    /// Advisory id.
    pub advisory_id: String,
    /// Installed package.
    pub package: String,
    /// Architecture.
    pub arch: String,
    /// Source package.
    pub source_package: String,
    /// Installed version.
    pub installed_version: String,
    /// Fixed version.
    pub fixed_version: Option<String>,
}

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    /// Id.
    pub id: i64,
    /// Asset id.
    pub asset_id: i64,
    /// Asset name.
    pub asset_name: String,
    /// The finding.
    pub finding: NewFinding,
    /// First detection.
    pub first_seen: Timestamp,
    /// Last detection.
    pub last_seen: Timestamp,
    /// When a later inventory showed it fixed.
    pub resolved_at: Option<Timestamp>,
}

/// Advisory feeds, KEV and EPSS.
#[async_trait]
pub trait FeedStore {
    /// Records an import of `source` (insert or update on (kind, source)).
    async fn record_feed(&mut self, row: &FeedRow) -> Result<()>;
    /// All recorded feeds.
    async fn list_feeds(&mut self) -> Result<Vec<FeedRow>>;
    /// A number that changes whenever a feed import is recorded (for caches).
    async fn feeds_generation(&mut self) -> Result<i64>;
    /// Inserts or replaces advisories; returns rows written.
    async fn upsert_advisories(&mut self, rows: &[AdvisoryRow]) -> Result<u64>;
    /// All advisories.
    async fn all_advisories(&mut self) -> Result<Vec<AdvisoryRow>>;
    /// Inserts or replaces KEV entries; returns the CVEs that were not in KEV before.
    async fn upsert_kev(&mut self, rows: &[KevRow]) -> Result<Vec<String>>;
    /// All KEV entries.
    async fn all_kev(&mut self) -> Result<Vec<KevRow>>;
    /// Inserts or replaces EPSS scores.
    async fn upsert_epss(&mut self, rows: &[EpssRow]) -> Result<u64>;
    /// EPSS scores of the given CVEs.
    async fn epss_for(&mut self, cves: &[String]) -> Result<Vec<EpssRow>>;
}

/// Findings and their lifecycle.
#[async_trait]
pub trait FindingStore {
    /// Every finding of an asset, open and resolved.
    async fn findings_of_asset(&mut self, asset_id: i64) -> Result<Vec<FindingRow>>;
    /// The findings (open and resolved) of an asset's given (package, arch) pairs.
    async fn findings_of_packages(
        &mut self,
        asset_id: i64,
        packages: &[(String, String)],
    ) -> Result<Vec<FindingRow>>;
    /// Inserts new open findings in batched statements.
    async fn insert_findings(
        &mut self,
        asset_id: i64,
        fs: &[NewFinding],
        now: Timestamp,
    ) -> Result<()>;
    /// Marks findings as seen now with new versions (and reopens resolved ones),
    /// in one statement per distinct (installed, fixed, source) triple.
    async fn refresh_findings(&mut self, batch: &[(i64, NewFinding)], now: Timestamp)
    -> Result<()>;
    /// Resolves findings.
    async fn resolve_findings(&mut self, ids: &[i64], now: Timestamp) -> Result<()>;
    /// Findings of all assets or one, open only or all, ordered by asset, package, advisory.
    async fn list_findings(
        &mut self,
        asset_id: Option<i64>,
        include_resolved: bool,
    ) -> Result<Vec<FindingRow>>;
}

/// An applied policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    /// Id (increasing).
    pub id: i64,
    /// Canonical fingerprint of the policy.
    pub fingerprint: String,
    /// The policy file as applied.
    pub text: String,
    /// Who applied it.
    pub applied_by: String,
    /// When.
    pub applied_at: Timestamp,
    /// The effect computed at apply time (JSON).
    pub effect: serde_json::Value,
}

/// A zero-day lane event.
#[derive(Debug, Clone, PartialEq)]
pub struct OobEventRow {
    /// Id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What triggered it (e.g. `feed:kev:…`).
    pub source: String,
    /// CVEs that raised findings to P0.
    pub cves: Vec<String>,
    /// Findings created or raised.
    pub findings: i64,
    /// The proposed deployment.
    pub deployment: Option<String>,
}

/// A deployment record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    /// `DEP-<yyyy>-<mm>-<seq>` or `DEP-OOB-…`.
    pub id: String,
    /// `oob` or `baseline`.
    pub kind: String,
    /// `proposed`, …
    pub status: String,
    /// Why.
    pub reason: String,
    /// Patch names (JSON list).
    pub patches: Vec<String>,
    /// Asset names.
    pub assets: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// Policies, out-of-band events and proposed deployments.
#[async_trait]
pub trait PlanStore {
    /// The policy in force, if any.
    async fn current_policy(&mut self) -> Result<Option<PolicyRow>>;
    /// Records an applied policy; returns its id.
    async fn insert_policy(&mut self, p: &PolicyRow) -> Result<i64>;
    /// Records an out-of-band event; returns its id.
    async fn insert_oob_event(&mut self, e: &OobEventRow) -> Result<i64>;
    /// Out-of-band events, newest first.
    async fn list_oob_events(&mut self) -> Result<Vec<OobEventRow>>;
    /// Inserts a deployment.
    async fn insert_deployment(&mut self, d: &DeploymentRow) -> Result<()>;
    /// Deployments, newest first.
    async fn list_deployments(&mut self) -> Result<Vec<DeploymentRow>>;
}

/// A stored maintenance window (see `patchbay_core::window::Window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    /// Unique name.
    pub name: String,
    /// The RRULE (canonical text).
    pub rrule: String,
    /// Local DTSTART (`YYYY-MM-DDTHH:MM:SS`).
    pub dtstart: String,
    /// IANA time zone.
    pub tz: String,
    /// Duration in seconds.
    pub duration_secs: i64,
    /// Day offset.
    pub offset_days: i64,
    /// Cutoff in seconds.
    pub cutoff_secs: i64,
    /// Groups it applies to.
    pub groups: Vec<String>,
    /// Assets it applies to.
    pub assets: Vec<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// A stored blackout (change freeze).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutRow {
    /// Unique name.
    pub name: String,
    /// Start (inclusive).
    pub starts_at: Timestamp,
    /// End (exclusive).
    pub ends_at: Timestamp,
    /// Why.
    pub reason: String,
    /// Who owns it.
    pub owner: String,
    /// Groups it applies to (none and no assets: everything).
    pub groups: Vec<String>,
    /// Assets it applies to.
    pub assets: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// An approval for an out-of-band deployment to enter a blackout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutApprovalRow {
    /// The blackout.
    pub blackout: String,
    /// The deployment (`DEP-OOB-…`).
    pub deployment: String,
    /// Who approved.
    pub approver: String,
    /// Why.
    pub note: String,
    /// When.
    pub approved_at: Timestamp,
}

/// Maintenance windows, blackouts and blackout approvals.
#[async_trait]
pub trait ScheduleStore {
    /// Inserts a window; `false` when the name is taken (nothing written).
    async fn insert_window(&mut self, w: &WindowRow) -> Result<bool>;
    /// All windows, by name.
    async fn list_windows(&mut self) -> Result<Vec<WindowRow>>;
    /// Deletes a window; `false` when there was none.
    async fn delete_window(&mut self, name: &str) -> Result<bool>;
    /// Inserts a blackout; `false` when the name is taken.
    async fn insert_blackout(&mut self, b: &BlackoutRow) -> Result<bool>;
    /// All blackouts, by start.
    async fn list_blackouts(&mut self) -> Result<Vec<BlackoutRow>>;
    /// Deletes a blackout (and its approvals); `false` when there was none.
    async fn delete_blackout(&mut self, name: &str) -> Result<bool>;
    /// Records an approval; `false` when one exists for the pair.
    async fn insert_blackout_approval(&mut self, a: &BlackoutApprovalRow) -> Result<bool>;
    /// All approvals, by blackout then deployment.
    async fn list_blackout_approvals(&mut self) -> Result<Vec<BlackoutApprovalRow>>;
}

/// A stored exception (see `patchbay_core::exception`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    /// `EXC-<yyyy>-<nnnn>`.
    pub id: String,
    /// Advisory or CVE; empty: any.
    pub advisory: String,
    /// Package; empty: any.
    pub package: String,
    /// Asset name, or empty for a group exception.
    pub asset: String,
    /// Group name, or empty for an asset exception.
    pub group: String,
    /// Who owns the risk.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// What mitigates the risk meanwhile.
    pub compensating_control: String,
    /// Who approved it.
    pub approver: String,
    /// Created.
    pub created_at: Timestamp,
    /// By.
    pub created_by: String,
    /// Expires.
    pub expires_at: Timestamp,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// By.
    pub revoked_by: Option<String>,
    /// Why.
    pub revoke_reason: Option<String>,
    /// When the expiry event was raised.
    pub expired_noted_at: Option<Timestamp>,
}

/// The exception register.
#[async_trait]
pub trait ExceptionStore {
    /// Inserts an exception; `false` when the id is taken.
    async fn insert_exception(&mut self, e: &ExceptionRow) -> Result<bool>;
    /// All exceptions, by id.
    async fn list_exceptions(&mut self) -> Result<Vec<ExceptionRow>>;
    /// Revokes one in force; `false` when there is none to revoke.
    async fn revoke_exception(
        &mut self,
        id: &str,
        at: Timestamp,
        by: &str,
        reason: &str,
    ) -> Result<bool>;
    /// Marks the expiry event raised; `false` when it already was.
    async fn note_exception_expired(&mut self, id: &str, at: Timestamp) -> Result<bool>;
}

/// A change record (`CHG-<nnnn>`) of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// `CHG-<nnnn>`.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// Created.
    pub created_at: Timestamp,
    /// By.
    pub created_by: String,
}

/// A lessons-learned entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonRow {
    /// Id.
    pub id: i64,
    /// The change record.
    pub change_id: String,
    /// The lesson.
    pub text: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub at: Timestamp,
}

/// Change records and the lessons-learned log.
#[async_trait]
pub trait ChangeStore {
    /// The deployment's change record, created (with the next `CHG-<nnnn>`)
    /// when it has none; returns it and whether it was created.
    async fn ensure_change_record(
        &mut self,
        deployment: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<(ChangeRow, bool)>;
    /// All change records, by id.
    async fn list_change_records(&mut self) -> Result<Vec<ChangeRow>>;
    /// Appends a lesson; returns its id.
    async fn add_lesson(
        &mut self,
        change_id: &str,
        text: &str,
        author: &str,
        at: Timestamp,
    ) -> Result<i64>;
    /// All lessons, oldest first.
    async fn list_lessons(&mut self) -> Result<Vec<LessonRow>>;
}

/// A leader lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The lease's name (e.g. `duties`).
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// When the holder took it (renewals keep this).
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// What [`LeaseStore::try_lease`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller took the lease (it was free, expired, or another's expired).
    Acquired,
    /// The caller held it already and extended it.
    Renewed,
    /// Another holder's lease is still running.
    HeldByOther,
}

/// Leader leases: at most one holder per name at a time, until it expires.
#[async_trait]
pub trait LeaseStore {
    /// Takes or renews lease `name` for `holder` until `until`, if it is free,
    /// expired at `now`, or `holder`'s already. Atomic: of two replicas racing
    /// for an expired lease, exactly one gets it.
    async fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<LeaseOutcome>;
    /// Gives the lease up if `holder` has it; returns whether it did.
    async fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool>;
    /// The lease as stored.
    async fn lease(&mut self, name: &str) -> Result<Option<LeaseRow>>;
}

/// A domain event to enqueue in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When.
    pub at: Timestamp,
    /// What happened (`window.add`, `exception.expired`, …).
    pub kind: String,
    /// The payload's schema version.
    pub version: i32,
    /// Who did it.
    pub actor: String,
    /// What it happened to (`window:nightly`).
    pub subject: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// The audit entry recording the same change.
    pub audit_seq: i64,
}

/// A domain event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Outbox position (increasing).
    pub id: i64,
    /// The event.
    pub event: NewEvent,
}

/// The outbox of domain events, written in the transaction of the change.
#[async_trait]
pub trait EventStore {
    /// Enqueues an event; returns its id.
    async fn enqueue_event(&mut self, e: &NewEvent) -> Result<i64>;
    /// Events with id > `after`, oldest first, at most `limit`.
    async fn events_after(&mut self, after: i64, limit: i64) -> Result<Vec<EventRow>>;
}

/// A transaction over every role store. Dropping it without [`Tx::commit`] rolls back.
#[async_trait]
pub trait Tx:
    AssetStore
    + InventoryStore
    + TokenStore
    + AgentStore
    + AuditStore
    + FeedStore
    + FindingStore
    + PlanStore
    + ScheduleStore
    + ExceptionStore
    + ChangeStore
    + LeaseStore
    + EventStore
    + Send
{
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Begins a write transaction (serialised on SQLite).
    async fn write(&self) -> Result<Box<dyn Tx>>;
    /// Begins a read transaction (a consistent snapshot).
    async fn read(&self) -> Result<Box<dyn Tx>>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Closes the pools.
    async fn close(&self);
}

/// Opens the database named by `url` and applies pending migrations.
///
/// `postgres://…` and `postgresql://…` select PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH` or a bare path select SQLite (the file is created if missing).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    }
}

/// Redacts the password of a database URL for logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_string())
        }
        sqlx::Error::Database(d) if d.message().contains("database is locked") => {
            StoreError::Unavailable(d.message().to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
