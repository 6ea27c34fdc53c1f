//! Rotation of the server's signing key (ADR 0007).
//!
//! [`App::rotate_signing_key`] generates a key, stores it next to the current
//! key file (`server-signing.key.next`, mode 0600), appends the audit entry
//! announcing its public key — signed by the old key — and switches the
//! server's keyring to it while the chain's head is locked, so every later
//! audit entry, job and evidence bundle is signed with the new key. After the
//! commit the new key replaces the key file and the old private key is
//! deleted (its public half stays in the announcement and in `server_keys`,
//! so old signatures still verify). A crash between the commit and the file
//! swap is finished at the next start ([`recover_pending_key`]).
//!
//! Agents receive the announcements at every check-in
//! ([`App::key_announcements`]) and follow them from the key they pinned.

use crate::App;
use crate::RequestCtx;
use crate::auth::Caller;
use crate::error::AppError;
use patchbay_core::audit::{KeyAnnouncement, Signer};
use patchbay_core::auth::Action;
use patchbay_proto::error::ErrorCode;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a rotation answers (a wire type: `patchbay_proto::api::KeyRotated`).
pub use patchbay_proto::api::KeyRotated;

/// Where a rotation stores the new key before the audit entry commits.
pub fn pending_key_path(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// Writes a hex key seed to `path`, readable only by its owner, synced.
pub fn write_key_file(path: &Path, seed: &[u8; 32]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{}", hex::encode(seed))?;
    f.sync_all()
}

/// Reads a hex key seed file.
pub fn read_key_file(path: &Path) -> Result<Signer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(|seed| Signer::from_seed(&seed))
        .ok_or_else(|| format!("{}: not a 32-byte hex key", path.display()))
}

/// Puts the pending key in place of the key file (rename, then sync the
/// directory), which deletes the old private key.
fn promote(key_file: &Path) -> std::io::Result<()> {
    std::fs::rename(pending_key_path(key_file), key_file)?;
    if let Some(dir) = key_file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Finishes or abandons a rotation interrupted between its commit and the
/// key file swap: when `key_file.next` exists, it becomes the key file if the
/// audit log's head is signed by it (the rotation committed), and is removed
/// otherwise. Returns the public key now in the key file when it changed.
pub async fn recover_pending_key(
    store: &dyn patchbay_store::Store,
    key_file: &Path,
) -> Result<Option<String>, String> {
    let pending = pending_key_path(key_file);
    if !pending.exists() {
        return Ok(None);
    }
    let next = read_key_file(&pending)?;
    let mut tx = store.read().await.map_err(|e| e.to_string())?;
    let (seq, hash) = tx.audit_head().await.map_err(|e| e.to_string())?;
    let committed = if seq > 0 {
        let head = tx
            .audit_entries(seq - 1, 1)
            .await
            .map_err(|e| e.to_string())?;
        let h = hex::decode(&hash)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
        head.first()
            .zip(h)
            .is_some_and(|(e, h)| next.signed_head(seq, &h, e.sig.as_deref()))
    } else {
        false
    };
    drop(tx);
    if committed {
        promote(key_file).map_err(|e| format!("installing {}: {e}", pending.display()))?;
        Ok(Some(next.public_hex()))
    } else {
        std::fs::remove_file(&pending)
            .map_err(|e| format!("removing {}: {e}", pending.display()))?;
        Ok(None)
    }
}

impl App {
    /// Rotates the server's signing key (admin: the `tokens` permission,
    /// like every other credential): see the module documentation.
    pub async fn rotate_signing_key(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<KeyRotated, AppError> {
        self.require(caller, Action::ManageTokens, ctx).await?;
        let unavailable = |m: String| AppError::new(ErrorCode::Unavailable, m);
        let old = self.signer().ok_or_else(|| {
            unavailable(
                "this server has no signing key (DATA_DIR/server-signing.key): there is nothing to rotate"
                    .into(),
            )
        })?;
        let key_file = self.key_file.clone().ok_or_else(|| {
            unavailable(
                "this server was started without a key file, so it cannot store a new key".into(),
            )
        })?;
        let seed = crate::random32();
        let new = Arc::new(Signer::from_seed(&seed));
        let now = self.now();
        let announcement = old.announce(&new, patchbay_store::to_millis(now));
        let pending = pending_key_path(&key_file);
        write_key_file(&pending, &seed).map_err(|e| {
            unavailable(format!("writing the new key to {}: {e}", pending.display()))
        })?;
        let result = async {
            let mut tx = self.change(caller, Action::ManageTokens, ctx).await?;
            tx.register_server_key(&new.public_hex(), now).await?;
            tx.rotation(&announcement, &old, new.clone()).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            // Not committed: the old key stays in force.
            self.keyring.replace(Some(old));
            let _ = std::fs::remove_file(&pending);
            return Err(e);
        }
        self.push_announcement(announcement.clone());
        if let Err(e) = promote(&key_file) {
            tracing::error!(error = %e, path = %pending.display(),
                "the key rotation is committed but the new key could not replace the key file; \
                 the next start installs it");
            return Err(unavailable(format!(
                "the key rotation is recorded and in force, but {} could not replace {}: {e}; \
                 the server installs it at its next start",
                pending.display(),
                key_file.display()
            )));
        }
        tracing::info!(old = %announcement.old_public_key, new = %announcement.new_public_key,
            "rotated the server's signing key");
        Ok(KeyRotated { announcement })
    }

    /// The key rotations recorded in the audit log, oldest first.
    pub fn key_announcements(&self) -> Vec<KeyAnnouncement> {
        match self.announcements.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn push_announcement(&self, a: KeyAnnouncement) {
        match self.announcements.write() {
            Ok(mut g) => g.push(a),
            Err(p) => p.into_inner().push(a),
        }
    }

    /// Replaces the cached announcements with the details of the log's
    /// rotation entries (unreadable ones are skipped: `audit verify` names
    /// them).
    pub(crate) fn set_announcements(&self, details: &[String]) {
        let list: Vec<KeyAnnouncement> = details
            .iter()
            .filter_map(|d| KeyAnnouncement::from_detail(d).ok())
            .collect();
        match self.announcements.write() {
            Ok(mut g) => *g = list,
            Err(p) => *p.into_inner() = list,
        }
    }
}
