//! `patchbay backup` and `patchbay restore`: the whole server state in one
//! file, and back.
//!
//! A backup is a gzip-compressed tar archive holding `MANIFEST.json` first,
//! then the database — `patchbay.db` for SQLite (an online, consistent copy
//! made with `VACUUM INTO` while the server runs) or `patchbay.pgdump` for
//! PostgreSQL (`pg_dump --format=custom`, PostgreSQL's own tool, which must
//! be on `PATH`) — and the data directory's keys: the audit signing key
//! (`server-signing.key`, without which the restored audit log could not be
//! verified or extended under the same key) and the agent CA
//! (`agent-ca.pem`, `agent-ca.key`) when present. The manifest names each
//! file with its size and SHA-256, the engine, the Patchbay version, the
//! newest migration and the audit log's head at backup time. The archive is
//! written mode 0600 (it holds private keys) to a temporary name and renamed.
//!
//! A restore checks the manifest before it writes anything: a file that is
//! missing, unexpected, or whose hash differs is refused by name. It refuses
//! to write over an existing database or key unless `--force` (which keeps
//! the old files as `*.before-restore`), places the files, opens the
//! database (migrations run forward, so a backup of an older release
//! restores into this one), and verifies the whole audit chain against the
//! restored key, with no unsigned tail allowed, and that it reaches the
//! head the manifest recorded. It exits non-zero when any of that fails.
//! The server must be stopped while it restores.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The manifest's `format` value.
pub const FORMAT: &str = "patchbay-backup";
/// The manifest's format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name (the archive's first member).
pub const MANIFEST: &str = "MANIFEST.json";
/// The SQLite database's name in the archive.
pub const SQLITE_DB: &str = "patchbay.db";
/// The PostgreSQL dump's name in the archive.
pub const PG_DUMP: &str = "patchbay.pgdump";
/// Key files taken from the data directory when present.
pub const KEY_FILES: &[&str] = &["server-signing.key", "agent-ca.pem", "agent-ca.key"];
/// The largest member a restore accepts (a bound on bad input, far above
/// any real database of one server).
const MAX_MEMBER: u64 = 64 << 30;

/// `patchbay backup` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup (a .tar.gz, mode 0600: it holds the
    /// server's private keys).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Database URL (default: SQLite in DATA_DIR). For PostgreSQL,
    /// PostgreSQL's pg_dump must be on PATH.
    #[arg(long, env = "PATCHBAY_DB")]
    pub db: Option<String>,
    /// The server's data directory (the default database and the keys).
    #[arg(long, default_value = "./patchbay-data")]
    pub data_dir: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `patchbay restore` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (made by `patchbay backup`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Database URL to restore into (default: SQLite in DATA_DIR). A
    /// PostgreSQL backup needs an existing, empty PostgreSQL database here
    /// and PostgreSQL's pg_restore and psql on PATH.
    #[arg(long, env = "PATCHBAY_DB")]
    pub db: Option<String>,
    /// The data directory to restore the keys (and the default SQLite
    /// database) into; created if missing.
    #[arg(long, default_value = "./patchbay-data")]
    pub data_dir: PathBuf,
    /// Replace an existing database and keys (the old files are kept as
    /// *.before-restore; a PostgreSQL database's objects are dropped first).
    #[arg(long)]
    pub force: bool,
}

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name in the archive.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// When the backup was made (RFC 3339).
    pub created_at: String,
    /// The Patchbay version that made it.
    pub patchbay_version: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// The newest database migration this Patchbay knew.
    pub migration: i64,
    /// The audit log's head (last sequence number) when the backup was made:
    /// a restore must verify at least this far.
    pub audit_head_seq: i64,
    /// Every other member of the archive.
    pub files: Vec<FileEntry>,
}

fn db_url(db: &Option<String>, data_dir: &Path) -> String {
    db.clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join(SQLITE_DB).display()))
}

/// A PostgreSQL URL without its password, and the password (decoded), so
/// PostgreSQL's tools get it through `PGPASSWORD` rather than on a command
/// line every local user can read in `ps`.
fn pg_split_password(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url).context("the database URL is not a valid URL")?;
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_password(None);
    Ok((u.to_string(), password))
}

/// Runs one of PostgreSQL's client tools against `url`.
fn pg_tool(tool: &str, url: &str, args: &[&str]) -> anyhow::Result<String> {
    let (url, password) = pg_split_password(url)?;
    let mut c = Command::new(tool);
    c.args(args).arg("--dbname").arg(&url);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    let out = c.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{tool} is not on PATH: a PostgreSQL backup and restore use PostgreSQL's own tools (Debian: apt-get install postgresql-client)"
            )
        } else {
            anyhow::anyhow!("running {tool}: {e}")
        }
    })?;
    if !out.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn audit_head(url: &str) -> anyhow::Result<i64> {
    let store = patchbay_store::open(url)
        .await
        .with_context(|| format!("opening {}", patchbay_store::redact_url(url)))?;
    let mut tx = store.read().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let head = tx.audit_head().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(tx);
    store.close().await;
    Ok(head.0)
}

/// Runs `patchbay backup`.
pub fn backup(a: BackupArgs) -> anyhow::Result<()> {
    if a.out.exists() && !a.force {
        bail!(
            "{} exists: give another --out, or --force to overwrite it",
            a.out.display()
        );
    }
    let url = db_url(&a.db, &a.data_dir);
    let postgres = patchbay_store::is_postgres_url(&url);
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".patchbay-backup-")
        .tempdir_in(parent)
        .with_context(|| format!("making a temporary directory in {}", parent.display()))?;
    let rt = runtime()?;
    let (engine, db_name, head) = if postgres {
        // The head first: the dump is taken after it, so it holds at least
        // this much of the log.
        let head = rt.block_on(audit_head(&url))?;
        let dump = work.path().join(PG_DUMP);
        let dump_s = dump.to_string_lossy().into_owned();
        pg_tool(
            "pg_dump",
            &url,
            &[
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--file",
                &dump_s,
            ],
        )?;
        ("postgres", PG_DUMP, head)
    } else {
        let src = patchbay_store::sqlite_path(&url);
        if !Path::new(src).is_file() {
            bail!(
                "no database at {src}: give --data-dir (the server's data directory) or --db URL"
            );
        }
        let copy = work.path().join(SQLITE_DB);
        rt.block_on(patchbay_store::sqlite_snapshot(&url, &copy))
            .map_err(|e| anyhow::anyhow!("copying {src}: {e}"))?;
        let head = rt.block_on(audit_head(&format!("sqlite://{}", copy.display())))?;
        ("sqlite", SQLITE_DB, head)
    };
    let mut members = vec![(db_name.to_string(), work.path().join(db_name))];
    for k in KEY_FILES {
        let p = a.data_dir.join(k);
        if p.is_file() {
            members.push((k.to_string(), p));
        } else if *k == "server-signing.key" {
            eprintln!(
                "patchbay: warning: {} is missing: the backup holds no signing key, so the restored audit log can be checked only with --public-key",
                p.display()
            );
        }
    }
    let mut files = Vec::new();
    for (name, path) in &members {
        let (sha256, size) = patchbay_app::feed_sync::hash_file(path)
            .with_context(|| format!("reading {}", path.display()))?;
        files.push(FileEntry {
            name: name.clone(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        created_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string(),
        patchbay_version: env!("CARGO_PKG_VERSION").into(),
        engine: engine.into(),
        migration: patchbay_store::MIGRATION_VERSIONS
            .last()
            .copied()
            .unwrap_or(0),
        audit_head_seq: head,
        files,
    };
    let tmp = work.path().join("backup.tar.gz");
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let json = serde_json::to_vec_pretty(&manifest)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(jiff::Timestamp::now().as_second().max(0) as u64);
        h.set_cksum();
        tar.append_data(&mut h, MANIFEST, json.as_slice())?;
        for (name, path) in &members {
            let mut f =
                std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            tar.append_file(name, &mut f)
                .with_context(|| format!("adding {name}"))?;
        }
        let gz = tar.into_inner()?;
        let f = gz.finish()?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("moving the backup to {}", a.out.display()))?;
    let size = std::fs::metadata(&a.out)?.len();
    println!(
        "backup written: {} ({} bytes; {} database, audit log to entry {}, {} file(s): {})",
        a.out.display(),
        size,
        engine,
        head,
        manifest.files.len(),
        manifest
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Reads and checks a backup: every member is unpacked into `into` and
/// checked against the manifest. Errors name the file at fault.
pub fn unpack(file: &Path, into: &Path) -> anyhow::Result<Manifest> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<FileEntry> = Vec::new();
    let allowed: Vec<&str> = [SQLITE_DB, PG_DUMP]
        .iter()
        .chain(KEY_FILES)
        .copied()
        .collect();
    for entry in tar
        .entries()
        .with_context(|| format!("{}: not a Patchbay backup (tar.gz)", file.display()))?
    {
        let mut entry = entry.map_err(|e| {
            if manifest.is_none() && seen.is_empty() {
                anyhow::anyhow!(
                    "{}: not a Patchbay backup (a .tar.gz made by `patchbay backup`): {e}",
                    file.display()
                )
            } else {
                anyhow::anyhow!("{}: a damaged archive: {e}", file.display())
            }
        })?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("{}: member {name:?} is not a regular file", file.display());
        }
        if entry.size() > MAX_MEMBER {
            bail!("{}: member {name} is too large", file.display());
        }
        if name == MANIFEST {
            let mut text = Vec::new();
            entry.by_ref().take(1 << 20).read_to_end(&mut text)?;
            let m: Manifest = serde_json::from_slice(&text).with_context(|| {
                format!("{}: {MANIFEST} is not a valid manifest", file.display())
            })?;
            if m.format != FORMAT || m.version != FORMAT_VERSION {
                bail!(
                    "{}: a {} backup of format version {}; this Patchbay reads {FORMAT} version {FORMAT_VERSION}",
                    file.display(),
                    m.format,
                    m.version
                );
            }
            manifest = Some(m);
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            bail!("{}: unexpected member {name:?}", file.display());
        }
        let dest = into.join(&name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .with_context(|| {
                format!(
                    "{}: member {name} twice, or cannot write it",
                    file.display()
                )
            })?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = entry
                .read(&mut buf)
                .with_context(|| format!("{}: reading member {name}", file.display()))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k])?;
            n += k as u64;
        }
        out.sync_all()?;
        seen.push(FileEntry {
            name,
            size: n,
            sha256: hex::encode(h.finalize()),
        });
    }
    let Some(m) = manifest else {
        bail!("{}: no {MANIFEST}: not a Patchbay backup", file.display());
    };
    for want in &m.files {
        match seen.iter().find(|s| s.name == want.name) {
            None => bail!(
                "{}: {} is listed in the manifest but missing",
                file.display(),
                want.name
            ),
            Some(got) if got != want => bail!(
                "{}: {} does not match the manifest (SHA-256 {}, {} bytes; the manifest says {}, {} bytes): the backup was changed or damaged",
                file.display(),
                want.name,
                got.sha256,
                got.size,
                want.sha256,
                want.size
            ),
            Some(_) => {}
        }
    }
    if let Some(extra) = seen
        .iter()
        .find(|s| !m.files.iter().any(|w| w.name == s.name))
    {
        bail!("{}: {} is not in the manifest", file.display(), extra.name);
    }
    let db = if m.engine == "postgres" {
        PG_DUMP
    } else {
        SQLITE_DB
    };
    if !m.files.iter().any(|f| f.name == db) {
        bail!("{}: a {} backup without {db}", file.display(), m.engine);
    }
    Ok(m)
}

/// Moves `path` aside to `path.before-restore` (replacing an older one).
fn move_aside(path: &Path) -> anyhow::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".before-restore");
    std::fs::rename(path, &aside).with_context(|| format!("moving {} aside", path.display()))?;
    eprintln!(
        "patchbay: kept the old {} as {}",
        path.display(),
        PathBuf::from(aside).display()
    );
    Ok(())
}

/// Runs `patchbay restore`.
pub fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".patchbay-restore-")
        .tempdir_in(&a.data_dir)
        .with_context(|| format!("making a temporary directory in {}", a.data_dir.display()))?;
    let m = unpack(&a.file, work.path())?;
    let url = db_url(&a.db, &a.data_dir);
    let postgres = patchbay_store::is_postgres_url(&url);
    match (m.engine.as_str(), postgres) {
        ("sqlite", true) => bail!(
            "{} is a SQLite backup; restore it into a data directory (no --db, or --db sqlite://PATH)",
            a.file.display()
        ),
        ("postgres", false) => bail!(
            "{} is a PostgreSQL backup; give --db postgres://… (an empty database)",
            a.file.display()
        ),
        ("sqlite" | "postgres", _) => {}
        (other, _) => bail!("{}: unknown engine {other:?}", a.file.display()),
    }
    if m.migration
        > patchbay_store::MIGRATION_VERSIONS
            .last()
            .copied()
            .unwrap_or(0)
    {
        bail!(
            "{} was made by Patchbay {} with database migration {}, newer than this Patchbay ({}) knows: restore it with that version or newer",
            a.file.display(),
            m.patchbay_version,
            m.migration,
            env!("CARGO_PKG_VERSION")
        );
    }
    // Refuse before writing anything.
    let keys: Vec<&FileEntry> = m
        .files
        .iter()
        .filter(|f| KEY_FILES.contains(&f.name.as_str()))
        .collect();
    let mut existing: Vec<PathBuf> = keys
        .iter()
        .map(|k| a.data_dir.join(&k.name))
        .filter(|p| p.exists())
        .collect();
    let sqlite_target = PathBuf::from(patchbay_store::sqlite_path(&url));
    if !postgres {
        for p in [
            sqlite_target.clone(),
            PathBuf::from(format!("{}-wal", sqlite_target.display())),
            PathBuf::from(format!("{}-shm", sqlite_target.display())),
        ] {
            if p.exists() {
                existing.push(p);
            }
        }
    } else {
        let tables = pg_tool(
            "psql",
            &url,
            &[
                "-XtA",
                "-c",
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            ],
        )?;
        if tables.trim() != "0" && !a.force {
            bail!(
                "the database {} is not empty ({} tables): restore into an empty database, or give --force to drop its objects first",
                patchbay_store::redact_url(&url),
                tables.trim()
            );
        }
    }
    if !existing.is_empty() && !a.force {
        bail!(
            "already there: {}; stop the server and give --force to replace it (the old files are kept as *.before-restore), or restore into another --data-dir",
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for p in &existing {
        move_aside(p)?;
    }
    if postgres {
        let dump = work.path().join(PG_DUMP);
        let dump_s = dump.to_string_lossy().into_owned();
        let mut args = vec![
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
        ];
        if a.force {
            args.extend(["--clean", "--if-exists"]);
        }
        args.push(&dump_s);
        pg_tool("pg_restore", &url, &args)?;
    } else {
        if let Some(dir) = sqlite_target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let from = work.path().join(SQLITE_DB);
        std::fs::rename(&from, &sqlite_target)
            .or_else(|_| std::fs::copy(&from, &sqlite_target).map(|_| ()))
            .with_context(|| format!("writing {}", sqlite_target.display()))?;
    }
    for k in &keys {
        let to = a.data_dir.join(&k.name);
        std::fs::rename(work.path().join(&k.name), &to)
            .with_context(|| format!("writing {}", to.display()))?;
    }
    // Open (migrations run forward) and verify the whole chain against the
    // restored key.
    let rt = runtime()?;
    let key = patchbay_server::setup::load_signing_key(&a.data_dir, false)?;
    let summary = rt.block_on(async {
        let store = patchbay_store::open(&url).await.with_context(|| {
            format!(
                "opening the restored database {}",
                patchbay_store::redact_url(&url)
            )
        })?;
        let keys = match &key {
            Some(s) => vec![
                patchbay_core::audit::public_key(&s.public_hex())
                    .map_err(|e| anyhow::anyhow!(e))?,
            ],
            None => Vec::new(),
        };
        let r = patchbay_app::evidence::verify_audit(store.as_ref(), keys, 1024, 0, |_| {})
            .await
            .map_err(|e| anyhow::anyhow!(e.message));
        store.close().await;
        r
    })?;
    match summary {
        Ok(s) if s.last_seq >= m.audit_head_seq => {
            println!(
                "restored {} ({} database from Patchbay {}, made {}) into {}; audit log intact: {} entries to entry {}, {} signature(s) checked{}",
                a.file.display(),
                m.engine,
                m.patchbay_version,
                m.created_at,
                if postgres {
                    patchbay_store::redact_url(&url)
                } else {
                    sqlite_target.display().to_string()
                },
                s.entries,
                s.last_seq,
                s.signatures_checked,
                if key.is_none() {
                    " (no signing key in the backup: chain only)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Ok(s) => bail!(
            "the restored audit log ends at entry {}, but the backup's manifest recorded entry {}: the backup is incomplete",
            s.last_seq,
            m.audit_head_seq
        ),
        Err(b) => bail!("the restored audit log does not verify: {b}"),
    }
}
