//! The compiled advisory index on disk, for `patchbay scan`: where it lives,
//! what it is keyed by, and when it is rebuilt (ADR 0009).
//!
//! The key is a SHA-256 over the index format version, this crate's version and
//! every feed file under `--feeds` (relative name and SHA-256 of its content, in
//! the order the feed reader visits them; dot files are skipped as the reader
//! skips them). A file's hash is taken again unless the stat data recorded with
//! it in the index ([`Seen`]) still vouch for it. A file whose key differs — the feeds changed, or another
//! patchbay built it — is rebuilt; so is one that is corrupt, truncated or of
//! another format version ([`patchbay_core::compiled::IndexError`]), with a line
//! on stderr saying why. The file is replaced atomically (written beside it,
//! then renamed), so a scan killed while building leaves the old file or none.
//! A cache that cannot be written is reported and the scan goes on from memory.

use anyhow::Context;
use patchbay_core::compiled::{CompiledIndex, compile, key_of};
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

/// What a scan knew of one feed file when it hashed it, kept in the index's
/// note: a later scan trusts the hash while the file's size, modification and
/// change times, inode and device are the same — the change time cannot be set
/// back by anyone, so any write shows — unless the file had changed less than
/// [`RACY`] before it was hashed (a write within the file system's timestamp
/// granularity could then keep every time stamp; such a file is hashed again).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// Path relative to the feeds path.
    pub name: String,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
    /// SHA-256 of the content, hex.
    sha256: String,
    /// Whether the stat data may vouch for the hash later.
    trusted: bool,
}

/// How recent a change makes a file's stat data untrustworthy.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

/// The feed files under `feeds` (a file or a directory), in the reader's order,
/// each with its content hash — taken from `previous` where its stat data vouch
/// for it, else computed.
pub fn inputs(feeds: &Path, previous: &[Seen]) -> anyhow::Result<Vec<Seen>> {
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
        files.push((name, feeds.to_path_buf(), meta));
    }
    let now = std::time::SystemTime::now();
    let known: std::collections::HashMap<&str, &Seen> =
        previous.iter().map(|s| (s.name.as_str(), s)).collect();
    files
        .into_iter()
        .map(|(name, path, m)| {
            use std::os::unix::fs::MetadataExt;
            let mut seen = Seen {
                name,
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
                ino: m.ino(),
                dev: m.dev(),
                sha256: String::new(),
                trusted: false,
            };
            if let Some(old) = known.get(seen.name.as_str()).filter(|o| o.trusted) {
                let same = Seen {
                    sha256: old.sha256.clone(),
                    trusted: true,
                    ..seen.clone()
                };
                if **old == same {
                    return Ok(same);
                }
            }
            seen.sha256 = hex::encode(hash_file(&path)?);
            let changed = std::time::UNIX_EPOCH
                + std::time::Duration::new(
                    u64::try_from(seen.ctime.0).unwrap_or(0),
                    u32::try_from(seen.ctime.1).unwrap_or(0),
                );
            seen.trusted = now.duration_since(changed).is_ok_and(|age| age >= RACY);
            Ok(seen)
        })
        .collect()
}

/// The index key of these inputs.
pub fn key_of_inputs(inputs: &[Seen]) -> [u8; 32] {
    key_of(
        env!("CARGO_PKG_VERSION"),
        inputs.iter().map(|s| {
            let mut h = [0u8; 32];
            // A hash that does not decode (a forged note) only changes the key.
            let _ = hex::decode_to_slice(&s.sha256, &mut h);
            (s.name.as_str(), h)
        }),
    )
}

fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(String, PathBuf, std::fs::Metadata)>,
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
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(root, &path, seen, out)?,
            Ok(m) if m.is_file() => out.push((rel, path, m)),
            // Whatever else is there the reader reports itself; here it is
            // left out of the key.
            _ => {}
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

/// Opens the index at `path` if it was built from the feeds at `feeds` as they
/// are now, else builds it with `build(key, note)` (which reads the feeds and
/// compiles them with that key and note) and writes it there.
pub fn load_or_build(
    path: &Path,
    feeds: &Path,
    build: impl FnOnce([u8; 32], &[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(CompiledIndex, Origin)> {
    let (found, reason) = match std::fs::read(path) {
        Ok(bytes) => match CompiledIndex::open(bytes, None) {
            Ok(idx) => (Some(idx), None),
            Err(e) => (None, Some(format!("rejected: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => (None, Some(format!("unreadable: {e}"))),
    };
    let previous: Vec<Seen> = found
        .as_ref()
        .and_then(|i| i.note().ok())
        .and_then(|n| serde_json::from_slice(n).ok())
        .unwrap_or_default();
    let now = inputs(feeds, &previous)?;
    let key = key_of_inputs(&now);
    let reason = match found {
        Some(idx) if idx.key() == key => return Ok((idx, Origin::Warm)),
        Some(idx) => Some(format!(
            "the feeds changed, or another patchbay built it (key {}, now {})",
            hex::encode(&idx.key()[..8]),
            hex::encode(&key[..8])
        )),
        None => reason,
    };
    if let Some(r) = &reason {
        eprintln!("advisory index {}: {r}; rebuilding", path.display());
    }
    let note = serde_json::to_vec(&now)?;
    let bytes = build(key, &note)?;
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

/// Compiles what the feeds said into index bytes (`note`: what the scan knew of
/// the feed files, see [`Seen`]).
pub fn compile_feeds(
    key: [u8; 32],
    note: &[u8],
    index: &patchbay_core::assess::Index,
    kev: &[patchbay_feeds::kev::Catalog],
    epss: &[patchbay_feeds::epss::EpssScore],
) -> Vec<u8> {
    let kev: Vec<String> = kev
        .iter()
        .flat_map(|c| c.entries.iter().map(|e| e.cve.clone()))
        .collect();
    let epss: Vec<(String, f64)> = epss.iter().map(|s| (s.cve.clone(), s.epss)).collect();
    compile(key, index, &kev, &epss, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_reused_only_while_trusted_stat_data_match() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join(".hidden"), "not a feed").unwrap();
        let first = inputs(dir.path(), &[]).unwrap();
        assert_eq!(first.len(), 1, "dot files are not feeds: {first:?}");
        assert_eq!(first[0].sha256, hex::encode(Sha256::digest(b"{}")));
        assert!(!first[0].trusted, "just written: too recent to vouch");
        // A recorded hash the stat data vouch for is taken as it is (a fake one
        // here shows it was not recomputed)...
        let fake = Seen {
            sha256: "00".repeat(32),
            trusted: true,
            ..first[0].clone()
        };
        let again = inputs(dir.path(), std::slice::from_ref(&fake)).unwrap();
        assert_eq!(again[0].sha256, fake.sha256);
        // ...not when it was untrusted, or when any stat field differs.
        let untrusted = Seen {
            trusted: false,
            ..fake.clone()
        };
        assert_eq!(
            inputs(dir.path(), &[untrusted]).unwrap()[0].sha256,
            first[0].sha256
        );
        for other in [
            Seen {
                size: 3,
                ..fake.clone()
            },
            Seen {
                mtime: (0, 0),
                ..fake.clone()
            },
            Seen {
                ctime: (0, 0),
                ..fake.clone()
            },
            Seen {
                ino: fake.ino + 1,
                ..fake.clone()
            },
            Seen {
                name: "b.json".into(),
                ..fake.clone()
            },
        ] {
            assert_eq!(
                inputs(dir.path(), &[other]).unwrap()[0].sha256,
                first[0].sha256
            );
        }
        // The key follows names and hashes.
        assert_ne!(key_of_inputs(&first), key_of_inputs(&again));
        assert_eq!(key_of_inputs(&first), key_of_inputs(&first.clone()));
    }
}
