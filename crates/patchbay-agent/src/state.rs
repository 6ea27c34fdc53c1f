//! The agent's state directory.
//!
//! - `identity.json` (mode 0600): server URL, agent id, asset name, credential.
//! - `last-inventory.json`: the inventory the server last acknowledged, the base
//!   for the next delta.
//! - `outbox.json`: server jobs admitted and not yet finished, and job results
//!   not yet acknowledged by the server ([`crate::jobs::Outbox`]).
//! - `client-cert.json` (mode 0600): the agent's TLS client key and the
//!   certificate the server's agent CA issued for it (agent mutual TLS).
//! - `key-refusals.json`: server key announcements refused (not signed by the
//!   pinned key), kept until a check-in has reported them.
//! - `journal.jsonl`, `logs/`, `agent.lock`: the execution layer's
//!   ([`crate::exec`]).
//!
//! Files are written to a temporary name, fsynced and renamed, so a crash leaves
//! either the old or the new file, never a torn one.

use anyhow::Context;
use patchbay_core::inventory::Inventory;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who this agent is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// Server the agent enrolled with.
    pub server: String,
    /// Agent id.
    pub agent_id: String,
    /// Asset name.
    pub asset_name: String,
    /// Credential.
    pub secret: String,
    /// The server's public key (hex), pinned at enrolment; `None` when the
    /// server had no signing key.
    #[serde(default)]
    pub server_public_key: Option<String>,
}

/// The agent's TLS client certificate and its key (agent mutual TLS). The key
/// is made on this host and never leaves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientCert {
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Certificate (PEM).
    pub cert_pem: String,
    /// End of its validity (RFC 3339).
    pub not_after: String,
    /// SHA-256 of its DER (hex), as the server recorded it.
    pub sha256: String,
}

/// The last inventory the server acknowledged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Acked {
    /// Its hash.
    pub hash: String,
    /// The inventory.
    pub inventory: Inventory,
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// Opens (creating) a state directory.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        Ok(Self(dir.to_path_buf()))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn read<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<T>> {
        let p = self.0.join(name);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub(crate) fn write<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        let p = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        let data = serde_json::to_vec(value)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming to {}", p.display()))?;
        std::fs::File::open(&self.0)?.sync_all()?;
        Ok(())
    }

    /// The identity, if enrolled.
    pub fn identity(&self) -> anyhow::Result<Option<Identity>> {
        self.read("identity.json")
    }

    /// Saves the identity.
    pub fn save_identity(&self, id: &Identity) -> anyhow::Result<()> {
        self.write("identity.json", id)
    }

    /// The client certificate, if the server issued one.
    pub fn client_cert(&self) -> anyhow::Result<Option<ClientCert>> {
        self.read("client-cert.json")
    }

    /// Saves the client certificate with its key.
    pub fn save_client_cert(&self, c: &ClientCert) -> anyhow::Result<()> {
        self.write("client-cert.json", c)
    }

    /// Forgets the client certificate (enrolled with a server that issues none).
    pub fn clear_client_cert(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.0.join("client-cert.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Key announcements refused and not yet reported.
    pub fn key_refusals(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.read("key-refusals.json")?.unwrap_or_default())
    }

    /// Replaces the refused key announcements to report.
    pub fn save_key_refusals(&self, refusals: &[String]) -> anyhow::Result<()> {
        if refusals.is_empty() {
            return match std::fs::remove_file(self.0.join("key-refusals.json")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        self.write("key-refusals.json", &refusals)
    }

    /// The last acknowledged inventory.
    pub fn acked(&self) -> anyhow::Result<Option<Acked>> {
        // A corrupt file only costs a full upload: treat it as absent.
        Ok(self.read("last-inventory.json").unwrap_or(None))
    }

    /// Saves the last acknowledged inventory.
    pub fn save_acked(&self, a: &Acked) -> anyhow::Result<()> {
        self.write("last-inventory.json", a)
    }

    /// Forgets the last acknowledged inventory (next check-in is full).
    pub fn clear_acked(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.0.join("last-inventory.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
