//! Agent protocol v1: enrolment and check-in (`/agent/v1/...`).
//!
//! The agent authenticates check-ins with `Authorization: Bearer <agent secret>`,
//! a per-agent credential issued at enrolment and stored hashed by the server.

use patchbay_core::inventory::{HostFacts, Inventory, Package, PackageFormat, PendingUpdate};
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
}
