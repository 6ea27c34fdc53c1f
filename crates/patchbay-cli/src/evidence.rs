//! `patchbay audit verify` (the offline check of the hash-chained audit
//! trail) and `patchbay evidence export|verify` (the signed evidence bundle).

use anyhow::Context;
use std::path::PathBuf;

/// `patchbay audit verify` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Database URL (default: SQLite in DATA_DIR).
    #[arg(long, env = "PATCHBAY_DB")]
    pub db: Option<String>,
    /// Data directory of the server (for the default database and its key).
    #[arg(long, default_value = "./patchbay-data")]
    pub data_dir: PathBuf,
    /// The server's public key (hex) to check signatures against (printed by
    /// `patchbay whoami` and `evidence export`). Default: the public half of
    /// DATA_DIR/server-signing.key, the server's own key file. Key
    /// rotations in the log are followed: pinned to an older key, its
    /// announcement of the next key is checked and that key trusted from
    /// there on; pinned to a newer key, the entries before its announcement
    /// are vouched for by its signatures.
    #[arg(long)]
    pub public_key: Option<String>,
    /// INSECURE: trust the public keys recorded in the database itself.
    /// Anyone who can write to the database can add a key there and sign a
    /// forged log with it; use only to inspect a copy whose key is lost.
    #[arg(long, conflicts_with = "public_key")]
    pub insecure_trust_recorded_keys: bool,
    /// Accept up to N entries at the end of the log that carry no server
    /// signature (entries a tool wrote without the key). Default 0: an
    /// unsigned tail means the log was rewritten or extended without the key,
    /// and verification fails.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub allow_unsigned_tail: u64,
    /// Check the signature of every N-th signed entry (and always the last).
    #[arg(long, default_value_t = 1024)]
    pub every: i64,
}

/// Runs `audit verify`; exits 1 when the chain is broken.
pub fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let url = a.db.clone().unwrap_or_else(|| {
            format!("sqlite://{}", a.data_dir.join("patchbay.db").display())
        });
        if a.db.is_none() && !a.data_dir.join("patchbay.db").exists() {
            anyhow::bail!(
                "no database at {} (give --db URL or --data-dir)",
                a.data_dir.join("patchbay.db").display()
            );
        }
        let store = patchbay_store::open(&url)
            .await
            .with_context(|| format!("opening {}", patchbay_store::redact_url(&url)))?;
        let (keys, source) = if let Some(k) = &a.public_key {
            (
                vec![patchbay_core::audit::public_key(k).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?],
                "the given public key".to_string(),
            )
        } else if a.insecure_trust_recorded_keys {
            let mut tx = store.read().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let hexes = tx.server_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let keys = hexes
                .iter()
                .map(|h| patchbay_core::audit::public_key(h).map_err(|e| anyhow::anyhow!(e)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if keys.is_empty() {
                anyhow::bail!("the database records no server key");
            }
            eprintln!(
                "patchbay: WARNING: trusting the {} key(s) recorded in the database itself; whoever can write to the database can add one",
                keys.len()
            );
            (keys, "the keys recorded in the database (INSECURE: not pinned)".to_string())
        } else {
            match patchbay_server::setup::load_signing_key(&a.data_dir, false)? {
                Some(s) => (
                    vec![patchbay_core::audit::public_key(&s.public_hex()).map_err(|e| anyhow::anyhow!(e))?],
                    format!("the key in {}", patchbay_server::setup::signing_key_path(&a.data_dir).display()),
                ),
                None => anyhow::bail!(
                    "no key to check the log's signatures against: give --public-key HEX (the server's public key, shown by `patchbay whoami`), \
                     or run next to the server's data directory ({} holds no server-signing.key)",
                    a.data_dir.display()
                ),
            }
        };
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let start = std::time::Instant::now();
        let result = patchbay_app::evidence::verify_audit(store.as_ref(), keys.clone(), a.every, a.allow_unsigned_tail, |n| {
            if tty {
                eprint!("\rverified {n} entries");
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
        if tty {
            eprintln!();
        }
        store.close().await;
        match result {
            Ok(s) => {
                println!(
                    "audit log intact: {} entries, last {} (hash {}), {} signatures checked against {}; {:.0} entries/s",
                    s.entries,
                    s.last_seq,
                    s.last_hash,
                    s.signatures_checked,
                    source,
                    s.entries as f64 / start.elapsed().as_secs_f64().max(1e-9)
                );
                for (seq, key) in &s.rotations {
                    println!("followed the key rotation in entry {seq} to key {key}");
                }
                if let Some(seq) = s.pinned_key_announced_at {
                    println!(
                        "the pinned key was announced in entry {seq}; the entries before it are vouched for by its later signatures over the chain"
                    );
                }
                if s.unsigned_tail > 0 {
                    println!(
                        "WARNING: the last {} entries carry no server signature; they were accepted only because of --allow-unsigned-tail",
                        s.unsigned_tail
                    );
                }
                Ok(())
            }
            Err(b) => {
                eprintln!("patchbay: audit log BROKEN: {b}");
                std::process::exit(1);
            }
        }
    })
}

/// `patchbay evidence …`
#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCmd {
    /// Download the signed evidence bundle: reports (JSON, CSV, HTML), the
    /// exception register, deployments, the audit-log segment with its
    /// verification, the control mapping, and a manifest of SHA-256 hashes
    /// signed with the server's key.
    Export {
        /// As of: a date (the end of that day, UTC) or RFC 3339; default now.
        #[arg(long)]
        as_of: Option<String>,
        /// The archive to write (.zip).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle offline: the manifest signature, every file's hash, and
    /// that no file was added or removed. Exits 1 naming the first problem.
    Verify {
        /// The archive.
        file: PathBuf,
        /// The server's public key (hex) the bundle must be signed with:
        /// printed by `evidence export` and `patchbay whoami`. A bundle signed
        /// by a later key passes when its key rotations lead there from this
        /// key, each signed by the key before it. Required unless
        /// --insecure-trust-embedded-key.
        #[arg(long, required_unless_present = "insecure_trust_embedded_key")]
        public_key: Option<String>,
        /// INSECURE: accept the key the bundle's own manifest names. This
        /// proves only that the bundle is intact as signed by someone; a
        /// bundle re-signed with any key passes.
        #[arg(long, conflicts_with = "public_key")]
        insecure_trust_embedded_key: bool,
    },
}

/// Runs an `evidence` command (`verify` needs no server).
pub fn evidence(url: &str, token: Option<String>, cmd: EvidenceCmd) -> anyhow::Result<()> {
    match cmd {
        EvidenceCmd::Export { as_of, out } => {
            let c = crate::conn::connect(url, token)?;
            let path = match &as_of {
                Some(t) => format!("/api/v1/evidence?as_of={}", crate::conn::enc(t)),
                None => "/api/v1/evidence".to_string(),
            };
            let bytes = c.get_bytes(&path)?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            let who: serde_json::Value = c.get("/api/v1/whoami")?;
            let server_key = who["server_public_key"]
                .as_str()
                .map(patchbay_core::audit::public_key)
                .transpose()
                .map_err(|e| anyhow::anyhow!("the server's public key: {e}"))?
                .context("the server does not publish a signing key")?;
            let s = patchbay_app::evidence::verify_bundle(
                &bytes,
                patchbay_app::evidence::BundleKey::Pinned(&server_key),
            )
            .map_err(|e| anyhow::anyhow!("the server sent a bundle that does not verify: {e}"))?;
            println!(
                "wrote {} ({} files, as of {}, signed by the server's key {})",
                out.display(),
                s.manifest.files.len(),
                s.manifest.as_of,
                s.manifest.public_key
            );
            println!(
                "keep this key to check the bundle later: evidence verify FILE --public-key {}",
                s.manifest.public_key
            );
            Ok(())
        }
        EvidenceCmd::Verify {
            file,
            public_key,
            insecure_trust_embedded_key,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let pinned = public_key
                .as_deref()
                .map(patchbay_core::audit::public_key)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?;
            let key = match &pinned {
                Some(k) => patchbay_app::evidence::BundleKey::Pinned(k),
                None if insecure_trust_embedded_key => {
                    eprintln!(
                        "patchbay: WARNING: trusting the key the bundle names itself (--insecure-trust-embedded-key): a bundle re-signed with any key passes"
                    );
                    patchbay_app::evidence::BundleKey::TrustEmbedded
                }
                None => anyhow::bail!("give --public-key (or --insecure-trust-embedded-key)"),
            };
            match patchbay_app::evidence::verify_bundle(&bytes, key) {
                Ok(s) => {
                    println!(
                        "evidence bundle intact: {} files, as of {}, generated {}, signed by key {}{}",
                        s.manifest.files.len(),
                        s.manifest.as_of,
                        s.manifest.generated_at,
                        s.manifest.public_key,
                        if pinned.is_some() {
                            " (pinned)"
                        } else {
                            " (NOT pinned: as the bundle names it)"
                        }
                    );
                    for k in &s.followed_keys {
                        println!("followed the server's key rotation to key {k}");
                    }
                    Ok(())
                }
                Err(e) => {
                    eprintln!("patchbay: evidence bundle BROKEN: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
