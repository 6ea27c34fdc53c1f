//! Evidence: verifying and exporting the hash-chained audit trail, and the
//! signed evidence bundle (its reports and runbooks rendered by
//! `patchbay-render`).
//!
//! Verification reads the raw chain straight from a store (it works offline,
//! against a database, without a running server) and checks every link and
//! content hash, and the server's signatures at checkpoints and at the last
//! signed entry (`patchbay_core::audit`).

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::audit::{Break, Summary, Verifier};
use patchbay_core::auth::Action;
use patchbay_store::Store;
use serde::{Deserialize, Serialize};

/// Entries read per page while verifying or exporting.
pub const PAGE: i64 = 10_000;

/// Verifies the whole audit chain of `store`. `keys`: the public keys to check
/// signatures against (none: the chain only); `allow_unsigned_tail`: how many
/// unsigned entries may end the log (0: none, every entry must be covered by
/// a signature). Calls `progress` with the number of entries checked after
/// each page.
pub async fn verify_audit(
    store: &dyn Store,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    every: i64,
    allow_unsigned_tail: u64,
    mut progress: impl FnMut(u64),
) -> Result<Result<Summary, Break>, AppError> {
    let mut v = Verifier::with_keys(keys, every).allow_unsigned_tail(allow_unsigned_tail);
    let mut tx = store.read().await?;
    let head = tx.audit_head().await?;
    let mut after = 0;
    let mut seen = 0u64;
    loop {
        let page = tx.audit_entries(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if e.seq > head.0 {
                return Ok(Err(Break::BeyondHead {
                    seq: e.seq,
                    head: head.0,
                }));
            }
            if let Err(b) = v.push(e) {
                return Ok(Err(b));
            }
        }
        seen += page.len() as u64;
        progress(seen);
    }
    let result = v.finish();
    // The head must be the chain's end: entries hidden behind a rewound head,
    // or a head pointing past the stored entries, are tampering too.
    Ok(result.and_then(|s| {
        if s.last_seq != head.0 || (s.entries > 0 && s.last_hash != head.1) {
            Err(Break::HeadMismatch {
                head_seq: head.0,
                last_seq: s.last_seq,
            })
        } else {
            Ok(s)
        }
    }))
}

/// One exported audit entry (JSON Lines): everything needed to re-check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedEntry {
    /// Sequence number.
    pub seq: i64,
    /// Time (RFC 3339).
    pub at: String,
    /// Milliseconds since the epoch (hashed).
    pub at_millis: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome.
    pub outcome: String,
    /// Detail JSON text, as hashed.
    pub detail: String,
    /// Previous hash.
    pub prev_hash: Option<String>,
    /// Hash.
    pub hash: Option<String>,
    /// Server signature over (seq, hash).
    pub sig: Option<String>,
}

impl App {
    /// The audit entries with `from <= at < to`, with their hashes and
    /// signatures (any role).
    pub async fn audit_export(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Vec<ExportedEntry>, AppError> {
        self.require(caller, Action::ReadAudit, ctx).await?;
        if to <= from {
            return Err(AppError::invalid("to: must be after from"));
        }
        let (lo, hi) = (
            patchbay_store::to_millis(from),
            patchbay_store::to_millis(to),
        );
        let mut tx = self.store.read().await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = tx.audit_entries(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page {
                if e.at_millis >= lo && e.at_millis < hi {
                    out.push(ExportedEntry {
                        seq: e.seq,
                        at: patchbay_store::from_millis(e.at_millis)
                            .map(crate::fmt_ts)
                            .unwrap_or_default(),
                        at_millis: e.at_millis,
                        actor: e.actor,
                        action: e.action,
                        target: e.target,
                        outcome: e.outcome,
                        detail: e.detail,
                        prev_hash: e.prev_hash,
                        hash: e.hash,
                        sig: e.sig,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The manifest of an evidence bundle (`manifest.json`), signed in
/// `manifest.sig` (hex ed25519 over the exact bytes of `manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format tag.
    pub format: String,
    /// The date the reports are as of (RFC 3339).
    pub as_of: String,
    /// When the bundle was made.
    pub generated_at: String,
    /// The signing key (hex).
    pub public_key: String,
    /// Every other file with its SHA-256 and size.
    pub files: Vec<ManifestFile>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive.
    pub path: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The bundle format tag.
pub const BUNDLE_FORMAT: &str = "patchbay-evidence-v1";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Writes files and a signed manifest into a zip archive.
pub fn write_bundle(
    files: &[(String, Vec<u8>)],
    as_of: Timestamp,
    generated_at: Timestamp,
    signer: &patchbay_core::audit::Signer,
) -> Result<Vec<u8>, AppError> {
    use std::io::Write;
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        as_of: crate::fmt_ts(as_of),
        generated_at: crate::fmt_ts(generated_at),
        public_key: signer.public_hex(),
        files: files
            .iter()
            .map(|(p, b)| ManifestFile {
                path: p.clone(),
                sha256: sha256_hex(b),
                bytes: b.len() as u64,
            })
            .collect(),
    };
    let mjson = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let sig = signer.sign_bytes(&mjson);
    let err = |e: zip::result::ZipError| {
        AppError::new(
            patchbay_proto::error::ErrorCode::Internal,
            format!("writing the evidence archive: {e}"),
        )
    };
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let io = |e: std::io::Error| {
        AppError::new(
            patchbay_proto::error::ErrorCode::Internal,
            format!("writing the evidence archive: {e}"),
        )
    };
    for (p, b) in files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .chain([
            ("manifest.json", mjson.as_slice()),
            ("manifest.sig", sig.as_bytes()),
        ])
    {
        z.start_file(p, opts).map_err(err)?;
        z.write_all(b).map_err(io)?;
    }
    Ok(z.finish().map_err(err)?.into_inner())
}

/// The bundle file with the server's key rotations (ADR 0007).
pub const KEY_ANNOUNCEMENTS: &str = "keys/announcements.json";

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// The manifest.
    pub manifest: Manifest,
    /// The keys followed from the pinned key to the bundle's signing key
    /// (empty when the pinned key signed it).
    pub followed_keys: Vec<String>,
}

/// Which key a bundle's manifest signature must verify under.
#[derive(Debug, Clone, Copy)]
pub enum BundleKey<'a> {
    /// The server's key, known independently of the bundle (the default).
    Pinned(&'a ed25519_dalek::VerifyingKey),
    /// Whatever key the manifest names. Proves only that the bundle is intact
    /// as signed by *someone*: a bundle re-signed with any key passes.
    TrustEmbedded,
}

/// Verifies a bundle offline: the manifest's signature (under `key`), every
/// listed file present with its hash, and no file that the manifest does not
/// list. The error names the file.
pub fn verify_bundle(bytes: &[u8], key: BundleKey<'_>) -> Result<BundleSummary, String> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive: {e}"))?;
    let mut contents: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = f
            .name()
            .map_err(|e| format!("entry {i}: bad name: {e}"))?
            .to_string();
        let mut b = Vec::new();
        f.read_to_end(&mut b)
            .map_err(|e| format!("{name}: cannot be read: {e}"))?;
        if contents.insert(name.clone(), b).is_some() {
            return Err(format!("{name}: appears twice in the archive"));
        }
    }
    let mjson = contents
        .remove("manifest.json")
        .ok_or("manifest.json: missing")?;
    let sig = contents
        .remove("manifest.sig")
        .ok_or("manifest.sig: missing")?;
    let manifest: Manifest = serde_json::from_slice(&mjson)
        .map_err(|e| format!("manifest.json: not a manifest: {e}"))?;
    if manifest.format != BUNDLE_FORMAT {
        return Err(format!(
            "manifest.json: unknown format {:?}",
            manifest.format
        ));
    }
    let named = patchbay_core::audit::public_key(&manifest.public_key)
        .map_err(|e| format!("manifest.json: {e}"))?;
    let mut followed_keys = Vec::new();
    let key = match key {
        BundleKey::Pinned(k) => {
            if k != &named {
                // Signed by a later key? Follow the bundle's rotations from
                // the pinned key (each must be signed by the key before it).
                let pinned = hex::encode(k.as_bytes());
                let list: Vec<patchbay_core::audit::KeyAnnouncement> =
                    match contents.get(KEY_ANNOUNCEMENTS) {
                        Some(b) => serde_json::from_slice(b).map_err(|e| {
                            format!("{KEY_ANNOUNCEMENTS}: not a list of key announcements: {e}")
                        })?,
                        None => Vec::new(),
                    };
                let (pin, refused) = patchbay_core::audit::KeyAnnouncement::follow(&pinned, &list);
                if let Some(r) = refused.first() {
                    return Err(format!("{KEY_ANNOUNCEMENTS}: {r}"));
                }
                if pin != manifest.public_key {
                    return Err(format!(
                        "manifest.sig: the bundle names key {} but the pinned key is {pinned} and no key rotation in the bundle leads from it there: re-signed with another key",
                        manifest.public_key,
                    ));
                }
                let mut at = pinned;
                for a in &list {
                    if a.old_public_key == at {
                        at = a.new_public_key.clone();
                        followed_keys.push(at.clone());
                    }
                }
            }
            &named
        }
        BundleKey::TrustEmbedded => &named,
    };
    let sig = String::from_utf8_lossy(&sig).to_string();
    if !patchbay_core::audit::verify_bytes(key, &mjson, &sig) {
        return Err(
            "manifest.sig: the signature does not verify (manifest changed or wrong key)".into(),
        );
    }
    for f in &manifest.files {
        let Some(b) = contents.remove(&f.path) else {
            return Err(format!("{}: listed in the manifest but missing", f.path));
        };
        if sha256_hex(&b) != f.sha256 || b.len() as u64 != f.bytes {
            return Err(format!(
                "{}: modified (SHA-256 does not match the manifest)",
                f.path
            ));
        }
    }
    if let Some(extra) = contents.keys().next() {
        return Err(format!("{extra}: not listed in the manifest (added)"));
    }
    Ok(BundleSummary {
        manifest,
        followed_keys,
    })
}

impl App {
    /// Builds the signed evidence bundle as of a date: the five reports
    /// (compliance, time to patch, SLA, coverage, rollout outcomes) in
    /// JSON, CSV and HTML, the exception register, the deployments with their
    /// change records, runbooks and test reports (JUnit XML and HTML), the
    /// audit-log segment up to the date with its verification, and the control
    /// mapping (auditor and up).
    pub async fn evidence_bundle(
        &self,
        caller: &Caller,
        as_of: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Vec<u8>, AppError> {
        self.require(caller, Action::ReadAudit, ctx).await?;
        let signer = self.signer().ok_or_else(|| {
            AppError::new(
                patchbay_proto::error::ErrorCode::Unavailable,
                "this server has no signing key (DATA_DIR/server-signing.key)",
            )
        })?;
        let h = self.history(caller, ctx).await?;
        let as_of = as_of.round(jiff::Unit::Second).unwrap_or(as_of);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for kind in crate::reports::KINDS {
            let report = patchbay_core::report::Report::compute(kind, &h, as_of)
                .ok_or_else(|| AppError::invalid(format!("kind: unknown report {kind:?}")))?;
            for fmt in patchbay_render::Format::ALL {
                let body = patchbay_render::report::render(&report, fmt)?;
                files.push((format!("reports/{kind}.{}", fmt.ext()), body.into_bytes()));
            }
        }
        let exceptions = self.exceptions(caller, true, ctx).await?;
        files.push((
            "exceptions.json".into(),
            serde_json::to_vec_pretty(&exceptions).unwrap_or_default(),
        ));
        let deployments = self.deployments(caller, ctx).await?;
        files.push((
            "deployments.json".into(),
            serde_json::to_vec_pretty(&deployments).unwrap_or_default(),
        ));
        for c in self.change_records(caller, ctx).await? {
            let record = self.change_record(caller, &c.id, ctx).await?;
            files.push((
                format!("changes/{}.json", c.id),
                serde_json::to_vec_pretty(&record).unwrap_or_default(),
            ));
            // The deployment's published test report (issue 18, item 7),
            // once its rollout has started.
            if record.rollout.is_some() {
                let report = self.test_report(caller, &record.deployment, ctx).await?;
                for fmt in [
                    patchbay_render::test_report::Format::Junit,
                    patchbay_render::test_report::Format::Html,
                ] {
                    files.push((
                        format!(
                            "deployments/{}/test-report.{}",
                            record.deployment,
                            fmt.extension()
                        ),
                        patchbay_render::test_report::render(&report, fmt)?.into_bytes(),
                    ));
                }
            }
            let runbook = self.runbook_of(record).await?;
            files.push((
                format!("changes/{}-runbook.md", c.id),
                patchbay_render::runbook::markdown(&runbook).into_bytes(),
            ));
        }
        // Every backup verification asked up to the date (issue 18, item 6).
        let backups = self
            .backup_verifications(
                caller,
                Timestamp::UNIX_EPOCH,
                // Up to and including the date (the period's end is excluded).
                as_of + jiff::SignedDuration::from_millis(1),
                ctx,
            )
            .await?;
        files.push((
            "backup-verifications.json".into(),
            serde_json::to_vec_pretty(&backups).unwrap_or_default(),
        ));
        let segment = self
            .audit_export(caller, Timestamp::UNIX_EPOCH, as_of, ctx)
            .await?;
        let mut jsonl = Vec::new();
        for e in &segment {
            jsonl.extend(serde_json::to_vec(e).unwrap_or_default());
            jsonl.push(b'\n');
        }
        files.push(("audit/segment.jsonl".into(), jsonl));
        // The key rotations (each signed by the key before it), so a verifier
        // pinned to an older key can follow to the key that signs this bundle.
        let announcements = self.key_announcements();
        if !announcements.is_empty() {
            files.push((
                KEY_ANNOUNCEMENTS.into(),
                serde_json::to_vec_pretty(&announcements).unwrap_or_default(),
            ));
        }
        let key =
            patchbay_core::audit::public_key(&signer.public_hex()).map_err(AppError::invalid)?;
        let verification =
            match verify_audit(self.store.as_ref(), vec![key], 1024, 0, |_| {}).await? {
                Ok(s) => {
                    serde_json::json!({"intact": true, "entries": s.entries, "last_seq": s.last_seq,
                "last_hash": s.last_hash, "signatures_checked": s.signatures_checked})
                }
                Err(b) => serde_json::json!({"intact": false, "first_break": b.to_string()}),
            };
        files.push((
            "audit/verification.json".into(),
            serde_json::to_vec_pretty(&verification).unwrap_or_default(),
        ));
        let mapping: serde_json::Map<String, serde_json::Value> = [
            "compliance",
            "ttp",
            "sla",
            "coverage",
            "deployments",
            "exceptions",
            "audit",
            "changes",
        ]
        .iter()
        .map(|k| {
            (
                k.to_string(),
                serde_json::json!(patchbay_core::report::controls(k)),
            )
        })
        .collect();
        files.push((
            "controls.json".into(),
            serde_json::to_vec_pretty(&mapping).unwrap_or_default(),
        ));
        let bundle = write_bundle(&files, as_of, self.now(), &signer)?;
        let mut tx = self.change(caller, Action::ReadAudit, ctx).await?;
        tx.audit(
            "evidence.export",
            "evidence",
            serde_json::json!({"as_of": crate::fmt_ts(as_of), "files": files.len(), "sha256": sha256_hex(&bundle)}),
        )
        .await?;
        tx.commit().await?;
        Ok(bundle)
    }
}
