//! The compiled advisory index on disk, for `patchbay scan`: where it lives,
//! what it is keyed by, and when it is rebuilt (ADR 0009).
//!
//! The key is a SHA-256 over the index format version, this crate's version and
//! every feed file under `--feeds` (relative name and SHA-256 of its content, in
//! the order the feed reader visits them; dot files are skipped as the reader
//! skips them). A file whose key differs — the feeds changed, or another
//! patchbay built it — is rebuilt; so is one that is corrupt, truncated or of
//! another format version ([`patchbay_core::compiled::IndexError`]), with a line
//! on stderr saying why. The file is replaced atomically (written beside it,
//! then renamed), so a scan killed while building leaves the old file or none.
//! A cache that cannot be written is reported and the scan goes on from memory.

use anyhow::Context;
use patchbay_core::compiled::{CompiledIndex, IndexError, compile, key_of};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The default index file for a feeds path: `$XDG_CACHE_HOME/patchbay/` (else
/// `$HOME/.cache/patchbay/`) + `advisories-<hash of the canonical feeds path>.pbidx`,
/// so scans of several feed directories do not evict each other.
pub fn default_path(feeds: &Path) -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".cache"),
            None => anyhow::bail!(
                "no cache directory: set XDG_CACHE_HOME or HOME, or give --index PATH"
            ),
        },
    };
    let canonical = std::fs::canonicalize(feeds).unwrap_or_else(|_| feeds.to_path_buf());
    let h = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    Ok(base
        .join("patchbay")
        .join(format!("advisories-{}.pbidx", hex::encode(&h[..8]))))
}

/// The key of the feeds at `feeds` (a file or a directory).
pub fn feeds_key(feeds: &Path) -> anyhow::Result<[u8; 32]> {
    let mut files = Vec::new();
    let meta =
        std::fs::metadata(feeds).with_context(|| format!("reading feeds {}", feeds.display()))?;
    if meta.is_dir() {
        walk(feeds, feeds, &mut HashSet::new(), &mut files)?;
    } else {
        let name = feeds
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((name, hash_file(feeds)?));
    }
    Ok(key_of(
        env!("CARGO_PKG_VERSION"),
        files.iter().map(|(n, h)| (n.as_str(), *h)),
    ))
}

fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(String, [u8; 32])>,
) -> anyhow::Result<()> {
    let canonical =
        std::fs::canonicalize(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = e.path();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(root, &path, seen, out)?,
            Ok(m) if m.is_file() => {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push((rel.to_string_lossy().into_owned(), hash_file(&path)?));
            }
            // Whatever the reader cannot read it reports itself; here it only
            // changes the key.
            _ => out.push((path.to_string_lossy().into_owned(), [0; 32])),
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// How the index was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Read from the file, key matching.
    Warm,
    /// Built now; the reason (`None`: there was no file).
    Built(Option<String>),
}

/// Opens the index at `path` if it was built from these feeds, else builds it
/// with `build` (which reads the feeds) and writes it there.
pub fn load_or_build(
    path: &Path,
    key: [u8; 32],
    build: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(CompiledIndex, Origin)> {
    let reason = match std::fs::read(path) {
        Ok(bytes) => match CompiledIndex::open(bytes, Some(&key)) {
            Ok(idx) => return Ok((idx, Origin::Warm)),
            Err(e @ IndexError::Stale { .. }) => Some(format!("the feeds changed ({e})")),
            Err(e) => Some(format!("rejected: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("unreadable: {e}")),
    };
    if let Some(r) = &reason {
        eprintln!("advisory index {}: {r}; rebuilding", path.display());
    }
    let bytes = build()?;
    if let Err(e) = write_atomically(path, &bytes) {
        eprintln!(
            "advisory index {}: not saved ({e:#}); this scan goes on without it",
            path.display()
        );
    }
    let idx = CompiledIndex::open(bytes, Some(&key))
        .map_err(|e| anyhow::anyhow!("the index just built does not read back: {e}"))?;
    eprintln!(
        "advisory index {}: built ({} advisories, {} packages, {} bytes)",
        path.display(),
        idx.advisories(),
        idx.keys(),
        idx.size()
    );
    Ok((idx, Origin::Built(reason)))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("renaming {} to {}", tmp.display(), path.display()))
    })
}

/// Compiles what the feeds said into index bytes.
pub fn compile_feeds(
    key: [u8; 32],
    index: &patchbay_core::assess::Index,
    kev: &[patchbay_feeds::kev::Catalog],
    epss: &[patchbay_feeds::epss::EpssScore],
) -> Vec<u8> {
    let kev: Vec<String> = kev
        .iter()
        .flat_map(|c| c.entries.iter().map(|e| e.cve.clone()))
        .collect();
    let epss: Vec<(String, f64)> = epss.iter().map(|s| (s.cve.clone(), s.epss)).collect();
    compile(key, index, &kev, &epss)
}
