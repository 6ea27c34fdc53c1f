//! `patchbay audit verify`: the offline check of the hash-chained audit trail.

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
