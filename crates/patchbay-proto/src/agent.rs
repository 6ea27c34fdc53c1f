//! Agent protocol v1: enrolment and check-in (`/agent/v1/...`).
//!
//! The agent authenticates check-ins with `Authorization: Bearer <agent secret>`,
//! a per-agent credential issued at enrolment and stored hashed by the server.

pub use patchbay_core::canary::CheckSample;
use patchbay_core::inventory::{HostFacts, Inventory, Package, PackageFormat, PendingUpdate};
pub use patchbay_core::job::{Job, JobKind, PackagePin, SignedJob};
use serde::{Deserialize, Serialize};

/// `POST /agent/v1/enroll`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Protocol version (1).
    pub protocol: u32,
    /// The enrolment token (`pbe_…`).
    pub enroll_token: String,
    /// The host name, used to derive the asset name.
    pub hostname: String,
    /// `/etc/machine-id`, used to recognise a re-enrolling host.
    pub machine_id: String,
    /// The agent's current credential, when it enrols again for a host it
    /// already reports for: the proof that it is that host's agent. Without it
    /// (or an operator's enrolment approval) the server refuses to re-enrol an
    /// asset whose agent is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_secret: Option<String>,
    /// A PKCS#10 certificate signing request (PEM) for the agent's own key:
    /// a server with agent mutual TLS on answers with a client certificate
    /// from its agent CA (`client_certificate`). Only the public key is taken
    /// from it; the server sets every other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

/// Answer to an enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The agent's id.
    pub agent_id: String,
    /// The asset this agent reports for.
    pub asset_name: String,
    /// The agent's own credential; shown once, stored hashed by the server.
    pub agent_secret: String,
    /// Suggested check-in interval.
    pub checkin_interval_secs: u64,
    /// The server's ed25519 public key (hex): it signs the audit trail, evidence
    /// and (with the rollout engine) jobs. The agent pins it at enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_public_key: Option<String>,
    /// The agent's client certificate (PEM), when the server runs agent
    /// mutual TLS and the request carried a `csr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<IssuedCertificate>,
}

/// A client certificate issued by the server's agent CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The certificate (PEM).
    pub certificate: String,
    /// When it stops being valid (RFC 3339).
    pub not_after: String,
    /// SHA-256 of its DER encoding (hex): what the server binds to the agent.
    pub sha256: String,
}

/// `POST /agent/v1/certificate`: a new client certificate for the calling
/// agent (first one on a server that turned mutual TLS on, or a renewal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateRequest {
    /// Protocol version (1).
    pub protocol: u32,
    /// A PKCS#10 certificate signing request (PEM) for a new key.
    pub csr: String,
}

/// What a check-in carries about the inventory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InventoryPayload {
    /// The inventory is the one the server acknowledged last (its hash matches).
    Unchanged,
    /// The whole inventory.
    Full {
        /// The inventory.
        inventory: Inventory,
    },
    /// What changed since the inventory with hash `base_hash`.
    Delta {
        /// Hash of the inventory the delta applies to.
        base_hash: String,
        /// The complete host facts (small, so always sent whole).
        facts: HostFacts,
        /// Package format.
        format: Option<PackageFormat>,
        /// Packages added or changed.
        added: Vec<Package>,
        /// Packages removed or changed.
        removed: Vec<Package>,
        /// Complete list of pending updates.
        pending_updates: Vec<PendingUpdate>,
    },
}

/// `POST /agent/v1/checkin`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckinRequest {
    /// Protocol version (1).
    pub protocol: u32,
    /// Content hash of the agent's current inventory.
    pub inventory_hash: String,
    /// The inventory, whole, as a delta, or not at all.
    pub inventory: InventoryPayload,
    /// Results of jobs (and refusals), sent until the server acknowledges
    /// them (`acked` in the answer). The server stores one per key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<JobResult>,
    /// Long-poll: the agent waits up to this many seconds for a job when
    /// the server has none at once (0 or absent: answer at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u32>,
    /// Key announcements the agent refused since its last successful
    /// check-in (not signed by the key it pinned), each described; the
    /// server records them in the audit log (ADR 0007).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_refusals: Vec<String>,
}

/// How a job ended on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Applied and verified.
    Succeeded,
    /// Pre-flight, apply or verification failed (the step says which).
    Failed,
    /// The agent refused to run it (`refusal` says why).
    Refused,
    /// A rollback job put the recorded versions back.
    RolledBack,
    /// A rollback job failed.
    RollbackFailed,
}

/// A package whose version a job changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionChange {
    /// Package name.
    pub name: String,
    /// Version before (absent: newly installed).
    pub before: Option<String>,
    /// Version after (absent: removed).
    pub after: Option<String>,
}

/// A job's result as the agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's idempotency key.
    pub key: String,
    /// How it ended.
    pub outcome: JobOutcome,
    /// The failing step (`preflight.lock`, `verify.health`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What went wrong, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The refusal's stable code (`bad_signature`, `unknown_check`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Health before the change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<CheckSample>,
    /// Health after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<CheckSample>,
    /// What changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<VersionChange>,
    /// Whether the host needs a reboot now.
    #[serde(default)]
    pub reboot_required: bool,
    /// When the job finished on the agent (RFC 3339).
    pub finished_at: String,
    /// What a `rehearse` job found (absent for every other kind, and from
    /// agents that predate rehearsals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsal>,
    /// Privilege changes an apply made (new setuid/setgid files, changed
    /// modes and owners of its packages' files; apt hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privilege: Vec<PrivilegeFinding>,
    /// The snapshot an apply's `hooks.snapshot` took: the last line it
    /// printed (absent without the hook, and from older agents). A
    /// `verify_snapshot` job names it (docs/backup-verification.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Where a rehearsal ran (`docs/rehearsal.md`, ADR 0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RehearsalMode {
    /// In a throwaway overlay of the host's root: package scripts ran.
    Overlay,
    /// The package manager's simulation only (`apt-get -s`, `dnf --assumeno`):
    /// no script ran; `mode_reason` says why the overlay was impossible.
    Simulation,
}

impl RehearsalMode {
    /// `overlay` or `simulation`.
    pub fn as_str(self) -> &'static str {
        match self {
            RehearsalMode::Overlay => "overlay",
            RehearsalMode::Simulation => "simulation",
        }
    }
}

/// A package script (or dpkg itself) that failed in a rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptFailure {
    /// The package.
    pub package: String,
    /// `postinst`, `preinst`, `prerm`, `postrm` (or `dpkg`).
    pub script: String,
    /// Its exit status.
    pub exit: Option<i32>,
    /// The end of its output (at most 4 KB).
    pub output: String,
}

/// Two packages that cannot be installed together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    /// The package the job installs.
    pub package: String,
    /// The installed package it conflicts with (or breaks).
    pub with: String,
    /// `conflicts` or `breaks` (or `unmet` for a dependency apt cannot satisfy).
    pub relation: String,
}

/// A change of file privileges the transaction made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrivilegeFinding {
    /// Path inside the root.
    pub path: String,
    /// The package whose file list names it, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// `new_setuid`, `new_setgid`, `mode_changed` or `owner_changed`.
    pub finding: String,
    /// Mode (octal) and owner before (`None`: the path is new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Mode (octal) and owner after.
    pub after: String,
}

/// What a rehearsal found, sent with its job result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rehearsal {
    /// Overlay or simulation.
    pub mode: RehearsalMode,
    /// Why the overlay was impossible (simulation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    /// Package versions before and after (in the overlay; simulation: as announced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<VersionChange>,
    /// The transaction's exit status (overlay only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Failed package scripts, with their output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptFailure>,
    /// Dependency conflicts, naming both packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// Held packages the job names or the transaction would change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Packages the job does not name that the transaction would remove or
    /// change, each with the reason (the job is refused for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// Privilege changes (new setuid/setgid files, changed modes or owners).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privilege: Vec<PrivilegeFinding>,
    /// `dpkg --verify` / `rpm -V` lines for the packages touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// The local checks marked safe for rehearsal, run in the overlay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSample>,
    /// The services the packages' scripts asked to restart, start or reload
    /// (recorded by the rehearsal's `policy-rc.d`, which refuses them all);
    /// overlay only, `None` from agents that do not record them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
}

/// Answer to a check-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckinResponse {
    /// The inventory hash the server now holds for this asset.
    pub stored_hash: String,
    /// Number of package rows written by this check-in (0 when unchanged).
    pub package_rows_written: u64,
    /// Suggested delay before the next check-in.
    pub next_checkin_secs: u64,
    /// Jobs leased to this agent, signed by the server's key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<SignedJob>,
    /// Keys of the results the server has stored (the agent stops re-sending
    /// them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<String>,
    /// The server's signing key rotations, oldest first: each announces a
    /// new public key signed by the key it replaces. The agent follows them
    /// from the key it pinned at enrolment and re-pins (ADR 0007).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_announcements: Vec<patchbay_core::audit::KeyAnnouncement>,
    /// The server asks the agent to get a client certificate
    /// (`POST /agent/v1/certificate`): it runs agent mutual TLS and this
    /// check-in came without one, or the one it came with is in its last
    /// third of validity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub certificate_wanted: bool,
}
