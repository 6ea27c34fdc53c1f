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
    /// The server's public key (hex) to check signatures against. Default: the
    /// key in DATA_DIR/server-signing.key, else the keys recorded in the
    /// database (weaker: someone who can edit the database can add a key).
    #[arg(long)]
    pub public_key: Option<String>,
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
        let (keys, source) = match &a.public_key {
            Some(k) => (
                vec![patchbay_core::audit::public_key(k).map_err(|e| anyhow::anyhow!(e))?],
                "the given public key".to_string(),
            ),
            None => match patchbay_server::setup::load_signing_key(&a.data_dir, false)? {
                Some(s) => (
                    vec![patchbay_core::audit::public_key(&s.public_hex()).map_err(|e| anyhow::anyhow!(e))?],
                    format!("the key in {}", patchbay_server::setup::signing_key_path(&a.data_dir).display()),
                ),
                None => {
                    let mut tx = store.read().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let hexes = tx.server_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let keys = hexes
                        .iter()
                        .map(|h| patchbay_core::audit::public_key(h).map_err(|e| anyhow::anyhow!(e)))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    (keys, "the keys recorded in the database (pass --public-key to pin the server's key)".to_string())
                }
            },
        };
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let start = std::time::Instant::now();
        let result = patchbay_app::evidence::verify_audit(store.as_ref(), keys.clone(), a.every, |n| {
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
                    if keys.is_empty() { "no key".to_string() } else { source },
                    s.entries as f64 / start.elapsed().as_secs_f64().max(1e-9)
                );
                if s.unsigned_tail > 0 {
                    println!(
                        "note: the last {} entries are not signed yet (written without the server key); the server's next entry covers them",
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
        /// The server's public key (hex) to require; default: the key the
        /// manifest names (then compare its fingerprint with the server's).
        #[arg(long)]
        public_key: Option<String>,
    },
}

/// Runs an `evidence` command (`verify` needs no server).
pub fn evidence(url: &str, token: Option<String>, cmd: EvidenceCmd) -> anyhow::Result<()> {
    match cmd {
        EvidenceCmd::Export { as_of, out } => {
            let c = crate::client::connect(url, token)?;
            let path = match &as_of {
                Some(t) => format!("/api/v1/evidence?as_of={}", crate::client::enc(t)),
                None => "/api/v1/evidence".to_string(),
            };
            let bytes = c.get_bytes(&path)?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            let s = patchbay_app::evidence::verify_bundle(&bytes, None).map_err(|e| {
                anyhow::anyhow!("the server sent a bundle that does not verify: {e}")
            })?;
            println!(
                "wrote {} ({} files, as of {}, signed by key {})",
                out.display(),
                s.manifest.files.len(),
                s.manifest.as_of,
                s.manifest.public_key
            );
            Ok(())
        }
        EvidenceCmd::Verify { file, public_key } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let pinned = public_key
                .as_deref()
                .map(patchbay_core::audit::public_key)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            match patchbay_app::evidence::verify_bundle(&bytes, pinned.as_ref()) {
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
                            " (as named in the manifest: compare it with the server's)"
                        }
                    );
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
