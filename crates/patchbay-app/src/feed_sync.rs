//! Feed sync (a duty, issue 16): fetching the configured feed sources — OSV
//! ecosystem archives, the CISA KEV catalog, the FIRST EPSS CSV — on a
//! schedule, importing what changed, and saying when a feed is stale.
//!
//! Each source ([`FeedSource`]) is a URL, a local file, or an entry of a
//! signed **air-gap mirror** directory ([`Origin::Mirror`], written by
//! `patchbay feeds mirror`). One attempt ([`App::sync_feeds`], run by the
//! duties runner on the leader):
//!
//! 1. **fetch** (blocking, on the blocking pool) into a temporary file next to
//!    the last good copy: a conditional GET (`If-None-Match` /
//!    `If-Modified-Since` from the stored validators; a 304 is "unchanged"),
//!    streamed to disk and cut off past `max_bytes` (a `Content-Length` over
//!    the limit is refused before the body is read); a mirror entry is
//!    checked against the manifest's Ed25519 signature and its size and
//!    SHA-256, naming the file that fails;
//! 2. **check**: the expected SHA-256 if configured; the file must parse as
//!    the configured kind, with at least one record and no file-level error
//!    (a truncated archive, JSON document or gzip stream is refused);
//! 3. **swap**: the checked file replaces the last good copy
//!    (`<dir>/<name>.feed`) by rename; on any failure the old copy and the
//!    stored data stay in use;
//! 4. **import** through the service layer as `system:feed-sync` (audited
//!    `feed.import`), then the delta re-assessment and the zero-day lane —
//!    a KEV update fetched this way raises P0 findings with no human step.
//!
//! Every attempt is stored per source (`feed_sync`, migration 0055): the
//! validators, result and error, and when the server last held the source's
//! current data. Past `stale_after` without good data, `feed.stale` is
//! raised once per staleness episode (a `notices` row keyed by the episode).
//! The time is the app's clock; the fetch itself is the only effect.

use crate::{App, AppError, SystemActor, fmt_ts};
use ed25519_dalek::VerifyingKey;
use jiff::{SignedDuration, Timestamp};
use patchbay_feeds::source::{Collect, ImportSummary, read_path};
use patchbay_proto::api::{FeedImportOut, ImportedFeedOut, ZeroDayOut};
use patchbay_store::FeedSyncRow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The kind of data a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// OSV records (a JSON record, JSONL, or a zip such as osv.dev's `all.zip`).
    Osv,
    /// The CISA KEV catalog (JSON).
    Kev,
    /// FIRST EPSS scores (CSV, or `.csv.gz`).
    Epss,
    /// CVSS scores per CVE: NVD API 2.0 / CVE JSON 5 records (a zip of them,
    /// or an NVD API page).
    Cvss,
    /// CSAF 2.0 advisories / VEX documents (one document, or a zip of them).
    Csaf,
}

impl FeedKind {
    /// `osv`, `kev`, `epss`, `cvss` or `csaf`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Osv => "osv",
            FeedKind::Kev => "kev",
            FeedKind::Epss => "epss",
            FeedKind::Cvss => "cvss",
            FeedKind::Csaf => "csaf",
        }
    }

    /// Parses `osv`, `kev`, `epss`, `cvss` or `csaf`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "osv" => Some(FeedKind::Osv),
            "kev" => Some(FeedKind::Kev),
            "epss" => Some(FeedKind::Epss),
            "cvss" => Some(FeedKind::Cvss),
            "csaf" => Some(FeedKind::Csaf),
            _ => None,
        }
    }
}

/// Where a source is fetched from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// `http://` or `https://` (conditional GET).
    Url(String),
    /// A local file.
    Path(PathBuf),
    /// The entry named like the source in a mirror directory's signed
    /// manifest (`patchbay feeds mirror`), checked with the mirror's key.
    Mirror {
        /// The mirror directory.
        dir: PathBuf,
        /// The mirror's Ed25519 public key.
        key: VerifyingKey,
    },
}

impl Origin {
    /// The origin as stored and shown.
    pub fn describe(&self) -> String {
        match self {
            Origin::Url(u) => u.clone(),
            Origin::Path(p) => p.display().to_string(),
            Origin::Mirror { dir, .. } => format!("mirror:{}", dir.display()),
        }
    }
}

/// One configured feed source.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSource {
    /// Its name (letters, digits, `-`, `_`; names the stored state, the
    /// last good copy, the metrics label and the mirror entry).
    pub name: String,
    /// What it holds.
    pub kind: FeedKind,
    /// Where it comes from.
    pub origin: Origin,
    /// How often it is fetched.
    pub every: SignedDuration,
    /// The largest download accepted, bytes.
    pub max_bytes: u64,
    /// The SHA-256 (hex) the file must have, when pinned.
    pub sha256: Option<String>,
    /// `feed.stale` is raised when the server has held no current data of
    /// this source for this long.
    pub stale_after: SignedDuration,
    /// Gives up a download after this long.
    pub timeout: Duration,
}

/// Defaults of a source.
pub const DEFAULT_EVERY: SignedDuration = SignedDuration::from_hours(6);
/// Default size limit: 1 GiB (osv.dev's largest `all.zip` files are a few
/// hundred MB).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Default staleness threshold: two days.
pub const DEFAULT_STALE_AFTER: SignedDuration = SignedDuration::from_hours(48);
/// Default download timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl FeedSource {
    /// A source with the default schedule, limit and threshold.
    pub fn new(name: &str, kind: FeedKind, origin: Origin) -> Self {
        Self {
            name: name.into(),
            kind,
            origin,
            every: DEFAULT_EVERY,
            max_bytes: DEFAULT_MAX_BYTES,
            sha256: None,
            stale_after: DEFAULT_STALE_AFTER,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Whether `name` may name a source (it becomes a file name and a label).
pub fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Settings of feed sync and of feed uploads.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSyncConfig {
    /// Where last good copies (and downloads in progress) are kept; the
    /// server sets `<data dir>/feeds` when unset.
    pub dir: Option<PathBuf>,
    /// The sources.
    pub sources: Vec<FeedSource>,
    /// The largest file `POST /api/v1/feeds/import` accepts, bytes.
    pub max_upload: u64,
}

impl Default for FeedSyncConfig {
    fn default() -> Self {
        Self {
            dir: None,
            sources: Vec::new(),
            max_upload: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why an attempt did not import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// The data was fetched but is not acceptable (too large, truncated,
    /// unparsable, wrong hash, bad mirror signature): `refused`.
    Refused(String),
    /// The source could not be reached or read: `failed`.
    Failed(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl SyncError {
    /// What went wrong, naming the source or file.
    pub fn message(&self) -> &str {
        match self {
            SyncError::Refused(m) | SyncError::Failed(m) => m,
        }
    }
    fn result(&self) -> &'static str {
        match self {
            SyncError::Refused(_) => "refused",
            SyncError::Failed(_) => "failed",
        }
    }
}

/// A file fetched into place: its size, hash and HTTP validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// `ETag` of the answer.
    pub etag: Option<String>,
    /// `Last-Modified` of the answer.
    pub last_modified: Option<String>,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// 304 Not Modified: nothing was transferred.
    NotModified,
    /// Written to the requested file.
    Fetched(Fetched),
}

/// The validators of the last good copy, sent with a conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `If-None-Match`.
    pub etag: Option<String>,
    /// `If-Modified-Since`.
    pub last_modified: Option<String>,
}

/// Copies `from` into `to`, at most `max` bytes (one more is an error), and
/// hashes it on the way; never holds more than a buffer in memory.
fn copy_limited(
    from: &mut dyn Read,
    to: &Path,
    max: u64,
    what: &str,
) -> Result<Fetched, SyncError> {
    let mut out = std::fs::File::create(to)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", to.display())))?;
    let mut hash = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).map_err(|e| {
            SyncError::Refused(format!(
                "{what}: download cut short after {size} bytes: {e}"
            ))
        })?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max {
            return Err(SyncError::Refused(format!(
                "{what}: larger than the limit of {max} bytes (refused)"
            )));
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| SyncError::Failed(format!("{}: {e}", to.display())))?;
    }
    out.sync_all()
        .map_err(|e| SyncError::Failed(format!("{}: {e}", to.display())))?;
    Ok(Fetched {
        size,
        sha256: hex::encode(hash.finalize()),
        etag: None,
        last_modified: None,
    })
}

/// SHA-256 (hex) and size of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hash.update(&buf[..n]);
    }
    Ok((hex::encode(hash.finalize()), size))
}

/// Fetches `url` into `to` with a conditional GET (blocking).
pub fn fetch_url(
    url: &str,
    prev: &Validators,
    to: &Path,
    max: u64,
    timeout: Duration,
) -> Result<FetchOutcome, SyncError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("patchbay-feed-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(e) = &prev.etag {
        req = req.header("If-None-Match", e);
    }
    if let Some(m) = &prev.last_modified {
        req = req.header("If-Modified-Since", m);
    }
    let resp = req
        .call()
        .map_err(|e| SyncError::Failed(format!("{url}: cannot fetch: {e}")))?;
    let status = resp.status().as_u16();
    if status == 304 {
        return Ok(FetchOutcome::NotModified);
    }
    if !(200..300).contains(&status) {
        return Err(SyncError::Failed(format!("{url}: HTTP {status}")));
    }
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag");
    let last_modified = header("last-modified");
    if let Some(len) = header("content-length").and_then(|l| l.trim().parse::<u64>().ok())
        && len > max
    {
        return Err(SyncError::Refused(format!(
            "{url}: Content-Length {len} is larger than the limit of {max} bytes (refused)"
        )));
    }
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(max.saturating_add(1)).reader();
    let mut f = copy_limited(&mut reader, to, max, url)?;
    f.etag = etag;
    f.last_modified = last_modified;
    Ok(FetchOutcome::Fetched(f))
}

/// The manifest of a mirror directory (`manifest.json`, signed by
/// `manifest.json.sig`: the hex Ed25519 signature of the file's bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// When the mirror was written (RFC 3339).
    pub created_at: String,
    /// The mirror key's public half (hex), for reference; the server checks
    /// against its configured key, never this one.
    pub public_key: String,
    /// One entry per source.
    pub files: Vec<ManifestEntry>,
}

/// One file of a mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The source's name.
    pub name: String,
    /// Its kind.
    pub kind: FeedKind,
    /// The file's name in the directory (no path).
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
    /// Where it was fetched from.
    pub source: String,
}

/// The manifest's file name in a mirror directory.
pub const MANIFEST: &str = "manifest.json";
/// The signature's file name.
pub const MANIFEST_SIG: &str = "manifest.json.sig";
/// The largest manifest read (it lists a few files).
const MAX_MANIFEST: u64 = 1 << 20;

/// Reads and verifies a mirror's manifest with `key`.
pub fn read_manifest(dir: &Path, key: &VerifyingKey) -> Result<Manifest, SyncError> {
    let mpath = dir.join(MANIFEST);
    let spath = dir.join(MANIFEST_SIG);
    let len = std::fs::metadata(&mpath)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", mpath.display())))?
        .len();
    if len > MAX_MANIFEST {
        return Err(SyncError::Refused(format!(
            "{}: {len} bytes, larger than a manifest may be ({MAX_MANIFEST})",
            mpath.display()
        )));
    }
    let bytes = std::fs::read(&mpath)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", mpath.display())))?;
    let sig = std::fs::read_to_string(&spath).map_err(|e| {
        SyncError::Refused(format!(
            "{}: {e} (the manifest is unsigned)",
            spath.display()
        ))
    })?;
    if !patchbay_core::audit::verify_bytes(key, &bytes, &sig) {
        return Err(SyncError::Refused(format!(
            "{}: the signature does not match the configured mirror key (tampered, or signed by another key)",
            mpath.display()
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| SyncError::Refused(format!("{}: {e}", mpath.display())))
}

/// Copies the mirror entry of source `name` into `to`, checking it against
/// the signed manifest (size and SHA-256); errors name the file.
pub fn fetch_mirror(
    dir: &Path,
    key: &VerifyingKey,
    name: &str,
    to: &Path,
    max: u64,
) -> Result<FetchOutcome, SyncError> {
    let manifest = read_manifest(dir, key)?;
    let entry = manifest
        .files
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            SyncError::Failed(format!(
                "{}: no entry for source {name:?}",
                dir.join(MANIFEST).display()
            ))
        })?;
    if entry.file.is_empty()
        || entry.file.contains('/')
        || entry.file.contains('\\')
        || entry.file.starts_with('.')
    {
        return Err(SyncError::Refused(format!(
            "{}: entry {name:?} names file {:?}, which is not a plain file name",
            dir.join(MANIFEST).display(),
            entry.file
        )));
    }
    let path = dir.join(&entry.file);
    let mut f = std::fs::File::open(&path).map_err(|e| {
        SyncError::Refused(format!(
            "mirror file {} is missing or unreadable: {e}",
            path.display()
        ))
    })?;
    let got = copy_limited(&mut f, to, max, &path.display().to_string())?;
    if got.size != entry.size || !got.sha256.eq_ignore_ascii_case(&entry.sha256) {
        return Err(SyncError::Refused(format!(
            "mirror file {} does not match the signed manifest (size {} vs {}, SHA-256 {} vs {}): tampered or incomplete",
            path.display(),
            got.size,
            entry.size,
            got.sha256,
            entry.sha256
        )));
    }
    Ok(FetchOutcome::Fetched(got))
}

/// Most CSAF documents one provider-metadata or ROLIE walk fetches.
pub const MAX_ROLIE_DOCUMENTS: usize = 10_000;
/// Most ROLIE feeds one provider-metadata walk reads.
const MAX_ROLIE_FEEDS: usize = 100;
/// The largest provider-metadata or ROLIE feed document read as an index.
const MAX_CSAF_INDEX: u64 = 64 << 20;

/// What a fetched `csaf` file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsafIndex {
    /// A CSAF provider's `provider-metadata.json`: its ROLIE feeds' URLs.
    ProviderMetadata(Vec<String>),
    /// A ROLIE feed: its entries' document URLs.
    Rolie(Vec<String>),
}

/// Reads `bytes` as a CSAF provider-metadata document (CSAF 2.0 §7.1.7:
/// `distributions[].rolie.feeds[].url`) or a ROLIE feed (§7.1.20:
/// `feed.entry[].content.src`, else the entry's `link` with `rel: self`);
/// `None` for anything else (a CSAF document, a zip). Links are resolved
/// against `base`; only `http` and `https` links are kept, each once.
pub fn csaf_index(bytes: &[u8], base: &str) -> Option<CsafIndex> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let base = url::Url::parse(base).ok();
    let resolve = |href: &str| -> Option<String> {
        let u = match &base {
            Some(b) => b.join(href).ok()?,
            None => url::Url::parse(href).ok()?,
        };
        matches!(u.scheme(), "http" | "https").then(|| u.to_string())
    };
    let dedup = |mut l: Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        l.retain(|u| seen.insert(u.clone()));
        l
    };
    if let Some(entries) = v.pointer("/feed/entry").and_then(|e| e.as_array()) {
        let urls = entries
            .iter()
            .filter_map(|e| {
                e.pointer("/content/src")
                    .and_then(|s| s.as_str())
                    .or_else(|| {
                        e.get("link")?.as_array()?.iter().find_map(|l| {
                            (l.get("rel")?.as_str()? == "self").then(|| l.get("href")?.as_str())?
                        })
                    })
                    .and_then(resolve)
            })
            .collect();
        return Some(CsafIndex::Rolie(dedup(urls)));
    }
    if let Some(dists) = v.get("distributions").and_then(|d| d.as_array()) {
        let urls = dists
            .iter()
            .filter_map(|d| d.pointer("/rolie/feeds").and_then(|f| f.as_array()))
            .flatten()
            .filter_map(|f| f.get("url").and_then(|u| u.as_str()).and_then(resolve))
            .collect();
        return Some(CsafIndex::ProviderMetadata(dedup(urls)));
    }
    None
}

/// When the `csaf` file fetched from `url` into `to` is a provider-metadata
/// document or a ROLIE feed, fetches the documents it lists (every one must
/// answer; each and all together within the source's size limit; at most
/// [`MAX_ROLIE_DOCUMENTS`]) and replaces `to` with a zip of them, which the
/// import reads like any zip of CSAF documents. Returns how many documents,
/// or `None` when the file is a document itself.
fn expand_csaf_index(url: &str, to: &Path, src: &FeedSource) -> Result<Option<usize>, SyncError> {
    if std::fs::metadata(to).map(|m| m.len()).unwrap_or(0) > MAX_CSAF_INDEX {
        return Ok(None);
    }
    let bytes =
        std::fs::read(to).map_err(|e| SyncError::Failed(format!("{}: {e}", to.display())))?;
    let Some(index) = csaf_index(&bytes, url) else {
        return Ok(None);
    };
    let scratch = tempfile_dir(to)?;
    let get = |u: &str, name: &str| -> Result<Vec<u8>, SyncError> {
        let path = scratch.join(name);
        fetch_url(u, &Validators::default(), &path, src.max_bytes, src.timeout)?;
        std::fs::read(&path).map_err(|e| SyncError::Failed(format!("{}: {e}", path.display())))
    };
    let documents = match index {
        CsafIndex::Rolie(docs) => docs,
        CsafIndex::ProviderMetadata(feeds) => {
            if feeds.is_empty() {
                return Err(SyncError::Refused(format!(
                    "{url}: the provider metadata lists no ROLIE feed (directory-based distributions are not read)"
                )));
            }
            let mut docs = Vec::new();
            for (i, f) in feeds.iter().take(MAX_ROLIE_FEEDS).enumerate() {
                let body = get(f, &format!("feed-{i}.json"))?;
                match csaf_index(&body, f) {
                    Some(CsafIndex::Rolie(d)) => docs.extend(d),
                    _ => {
                        return Err(SyncError::Refused(format!("{f}: not a ROLIE feed")));
                    }
                }
            }
            let mut seen = std::collections::HashSet::new();
            docs.retain(|u| seen.insert(u.clone()));
            docs
        }
    };
    if documents.len() > MAX_ROLIE_DOCUMENTS {
        return Err(SyncError::Refused(format!(
            "{url}: lists {} documents, more than the {MAX_ROLIE_DOCUMENTS} one sync reads",
            documents.len()
        )));
    }
    let zip_path = scratch.join("documents.zip");
    let file = std::fs::File::create(&zip_path)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", zip_path.display())))?;
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let zerr = |e: zip::result::ZipError| SyncError::Failed(format!("writing the CSAF zip: {e}"));
    let mut total: u64 = 0;
    for (i, d) in documents.iter().enumerate() {
        let body = get(d, "document.json")?;
        total += body.len() as u64;
        if total > src.max_bytes {
            return Err(SyncError::Refused(format!(
                "{url}: its documents together are larger than the limit of {} bytes (refused)",
                src.max_bytes
            )));
        }
        z.start_file(format!("{i:05}.json"), opts).map_err(zerr)?;
        z.write_all(&body)
            .map_err(|e| SyncError::Failed(format!("writing the CSAF zip: {e}")))?;
    }
    z.finish().map_err(zerr)?;
    std::fs::rename(&zip_path, to)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", to.display())))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Some(documents.len()))
}

/// A scratch directory next to `to` (same file system, for the rename).
fn tempfile_dir(to: &Path) -> Result<PathBuf, SyncError> {
    let dir = to.with_extension(format!("rolie-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| SyncError::Failed(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Fetches `src` into `to` (blocking): the one place the network or the
/// source files are read. A `csaf` URL source may name a provider's
/// `provider-metadata.json` or a ROLIE feed: the documents they list are
/// fetched too ([`csaf_index`]). Validators, size and hash are the index's.
pub fn fetch(src: &FeedSource, prev: &Validators, to: &Path) -> Result<FetchOutcome, SyncError> {
    match &src.origin {
        Origin::Url(u) if src.kind == FeedKind::Csaf => {
            let out = fetch_url(u, prev, to, src.max_bytes, src.timeout)?;
            if matches!(out, FetchOutcome::Fetched(_)) {
                expand_csaf_index(u, to, src)?;
            }
            Ok(out)
        }
        Origin::Url(u) => fetch_url(u, prev, to, src.max_bytes, src.timeout),
        Origin::Path(p) => {
            let mut f = std::fs::File::open(p)
                .map_err(|e| SyncError::Failed(format!("{}: {e}", p.display())))?;
            copy_limited(&mut f, to, src.max_bytes, &p.display().to_string())
                .map(FetchOutcome::Fetched)
        }
        Origin::Mirror { dir, key } => fetch_mirror(dir, key, &src.name, to, src.max_bytes),
    }
}

/// Writes an air-gap mirror (`patchbay feeds mirror`): fetches every url
/// or path source into `dir` (a mirror source is skipped), checks each
/// parses as its kind, and writes `manifest.json` with its Ed25519
/// signature `manifest.json.sig` (`signer`, fetched at `now`). `log` gets
/// one line per file. Errors name the source.
pub fn write_mirror(
    dir: &Path,
    sources: &[FeedSource],
    signer: &patchbay_core::audit::Signer,
    now: Timestamp,
    log: &mut dyn FnMut(String),
) -> Result<Manifest, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for src in sources {
        let base = match &src.origin {
            Origin::Url(u) => u
                .split(['?', '#'])
                .next()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("")
                .to_string(),
            Origin::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Origin::Mirror { .. } => {
                log(format!("{}: a mirror source itself; skipped", src.name));
                continue;
            }
        };
        let base: String = base
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        let file = if base.is_empty() {
            format!("{}.feed", src.name)
        } else {
            format!("{}-{base}", src.name)
        };
        let tmp = dir.join(format!(".{}.part", src.name));
        let fetched = match fetch(src, &Validators::default(), &tmp) {
            Ok(FetchOutcome::Fetched(f)) => f,
            Ok(FetchOutcome::NotModified) => return Err(format!("{}: unexpected 304", src.name)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("{}: {e}", src.name));
            }
        };
        let checked =
            parse_path(&tmp).and_then(|p| check_parsed(&p, src.kind, &src.origin.describe()));
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: not mirrored: {e}", src.name));
        }
        let to = dir.join(&file);
        std::fs::rename(&tmp, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        log(format!(
            "{}: {file} ({} bytes, SHA-256 {})",
            src.name, fetched.size, fetched.sha256
        ));
        files.push(ManifestEntry {
            name: src.name.clone(),
            kind: src.kind,
            file,
            size: fetched.size,
            sha256: fetched.sha256,
            fetched_at: now.to_string(),
            source: src.origin.describe(),
        });
    }
    if files.is_empty() {
        return Err("no source with url or path to mirror".into());
    }
    let manifest = Manifest {
        version: 1,
        created_at: now.to_string(),
        public_key: signer.public_hex(),
        files,
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let sig = signer.sign_bytes(&bytes);
    // Each file replaced by rename; the signature first, so a reader sees
    // either the old pair, or a new signature with the old manifest (and
    // refuses it until the manifest follows).
    let write = |name: &str, data: &[u8]| -> Result<(), String> {
        let tmp = dir.join(format!(".{name}.part"));
        std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    write(MANIFEST_SIG, format!("{sig}\n").as_bytes())?;
    write(MANIFEST, &bytes)?;
    Ok(manifest)
}

/// Feed files read and checked: what [`App::import_collected`] stores.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The records.
    pub records: Collect,
    /// The reader's counts.
    pub summary: ImportSummary,
}

/// What [`App::store_collected`] stored.
#[derive(Debug, Clone, Default)]
pub struct StoredFeeds {
    /// One entry per feed stored.
    pub imported: Vec<ImportedFeedOut>,
    /// The CVEs that entered KEV.
    pub kev_added: std::collections::BTreeSet<String>,
}

/// Reads a feed file or directory (blocking).
pub fn parse_path(path: &Path) -> Result<Parsed, String> {
    let mut records = Collect::default();
    let summary = read_path(path, &mut records).map_err(|e| e.to_string())?;
    if summary.osv.files
        + summary.kev.files
        + summary.epss.files
        + summary.cvss.files
        + summary.csaf.files
        == 0
    {
        return Err(format!(
            "{}: no feed files found (OSV JSON/JSONL/zip, KEV JSON, EPSS CSV, NVD / CVE JSON 5 records, CSAF 2.0 documents)",
            path.display()
        ));
    }
    Ok(Parsed { records, summary })
}

/// The integrity check of a synced file: it holds `kind`, with at least one
/// record, and no error that is about the file rather than one record (a
/// truncated archive, document or stream).
pub fn check_parsed(p: &Parsed, kind: FeedKind, what: &str) -> Result<(), String> {
    if let Some(e) = p.records.errors.iter().find(|e| e.record.is_none()) {
        return Err(format!("{what}: {e}"));
    }
    let records = match kind {
        FeedKind::Osv => p.summary.osv.records,
        FeedKind::Kev => p.summary.kev.records,
        FeedKind::Epss => p.summary.epss.records,
        FeedKind::Cvss => p.summary.cvss.records,
        FeedKind::Csaf => p.summary.csaf.records,
    };
    if records == 0 {
        return Err(format!(
            "{what}: no valid {} records in it",
            kind.as_str().to_uppercase()
        ));
    }
    Ok(())
}

/// One source's freshness, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The source's name.
    pub name: String,
    /// Seconds since the server last held its current data (since the
    /// first attempt, when it never did).
    pub age_secs: f64,
    /// Whether the last attempt imported or confirmed the data.
    pub last_ok: bool,
    /// Whether the age is past the source's threshold.
    pub stale: bool,
    /// When it was last attempted.
    pub last_attempt: Timestamp,
}

/// How soon a source that could not be reached is tried again (at most its
/// own interval): an outage should not leave a 6-hourly feed without data
/// for six more hours.
pub const RETRY_FAILED_AFTER: SignedDuration = SignedDuration::from_mins(15);

/// How long after its last attempt a source is due again.
pub fn wait_after(src: &FeedSource, last_result: &str) -> SignedDuration {
    if last_result == "failed" {
        src.every.min(RETRY_FAILED_AFTER)
    } else {
        src.every
    }
}

/// The slot of the feed sync running in the background.
pub type Task = std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>;

fn age(row: &FeedSyncRow, now: Timestamp) -> SignedDuration {
    now.duration_since(row.last_good_at.unwrap_or(row.first_attempt_at))
}

impl App {
    fn feed_dir(&self) -> PathBuf {
        self.config()
            .feeds
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./patchbay-data/feeds"))
    }

    /// Stores parsed feed records (OSV, KEV, EPSS, CVSS) as `caller`: one line per
    /// feed stored, and the CVEs that entered KEV. No re-assessment: the
    /// caller runs it once after all its files ([`App::import_collected`];
    /// `patchbay feeds import --db` with its progress bar).
    pub async fn store_collected(
        &self,
        source: &str,
        p: &Collect,
        summary: &ImportSummary,
        caller: &crate::Caller,
    ) -> Result<StoredFeeds, AppError> {
        let mut out = StoredFeeds::default();
        if summary.osv.files > 0 {
            let o = self
                .import_advisories(source, &p.advisories, summary.osv.skipped, caller)
                .await?;
            let version = p
                .advisories
                .iter()
                .filter_map(|a| a.modified)
                .max()
                .map(fmt_ts)
                .unwrap_or_default();
            out.imported.push(ImportedFeedOut {
                kind: "osv".into(),
                version,
                records: o.records,
                skipped: o.skipped,
                kev_added: 0,
            });
        }
        for c in &p.kev {
            let o = self
                .import_kev(source, c, summary.kev.skipped, caller)
                .await?;
            out.kev_added.extend(o.kev_added.iter().cloned());
            out.imported.push(ImportedFeedOut {
                kind: "kev".into(),
                version: c.version.clone(),
                records: o.records,
                skipped: o.skipped,
                kev_added: o.kev_added.len() as u64,
            });
        }
        if summary.epss.files > 0 {
            let date = p
                .epss_meta
                .iter()
                .filter_map(|m| m.score_date)
                .max()
                .map(|d| d.strftime("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let o = self
                .import_epss(source, &date, &p.epss, summary.epss.skipped, caller)
                .await?;
            out.imported.push(ImportedFeedOut {
                kind: "epss".into(),
                version: date,
                records: o.records,
                skipped: o.skipped,
                kev_added: 0,
            });
        }
        if summary.csaf.files > 0 && !p.csaf.is_empty() {
            let o = self
                .import_csaf(source, &p.csaf, summary.csaf.skipped, caller)
                .await?;
            out.imported.push(ImportedFeedOut {
                kind: "csaf".into(),
                version: p
                    .csaf
                    .iter()
                    .map(|d| d.current_release_date.clone())
                    .max()
                    .unwrap_or_default(),
                records: o.records,
                skipped: o.skipped,
                kev_added: 0,
            });
        }
        if summary.cvss.files > 0 {
            let o = self
                .import_cvss(source, &p.scores, summary.cvss.skipped, caller)
                .await?;
            let version = p
                .scores
                .iter()
                .filter_map(|s| s.modified.clone())
                .max()
                .unwrap_or_default();
            out.imported.push(ImportedFeedOut {
                kind: "cvss".into(),
                version,
                records: o.records,
                skipped: o.skipped,
                kev_added: 0,
            });
        }
        Ok(out)
    }

    /// Stores parsed feed files (OSV, KEV, EPSS, CVSS) as `caller`, then runs the
    /// delta re-assessment and the zero-day lane: the path of feed sync and
    /// of uploads.
    pub async fn import_collected(
        &self,
        source: &str,
        parsed: &Parsed,
        caller: &crate::Caller,
    ) -> Result<FeedImportOut, AppError> {
        let stored = self
            .store_collected(source, &parsed.records, &parsed.summary, caller)
            .await?;
        let mut out = FeedImportOut {
            source: source.into(),
            imported: stored.imported,
            ..Default::default()
        };
        let kev_added = stored.kev_added;
        let d = self.assess_pending(&|_, _| {}).await?;
        out.findings_opened = d.stats.opened as u64;
        out.findings_reopened = d.stats.reopened as u64;
        out.findings_resolved = d.stats.resolved as u64;
        let added: Vec<String> = kev_added.into_iter().collect();
        if let Some(ev) = self
            .zero_day_lane(&format!("feed:{source}"), &added, caller)
            .await?
        {
            out.zero_day = Some(ZeroDayOut {
                findings: ev.findings,
                cves: ev.cves,
                deployment: ev.deployment,
            });
        }
        Ok(out)
    }

    /// Every configured source's sync state.
    pub async fn feed_sync_state(&self) -> Result<Vec<FeedSyncRow>, AppError> {
        let mut tx = self.store.read().await?;
        Ok(tx.all_feed_sync().await?)
    }

    /// Freshness of every configured source as of now (metrics).
    pub async fn feed_freshness(&self) -> Result<Vec<Freshness>, AppError> {
        let now = self.now();
        let rows = self.feed_sync_state().await?;
        Ok(self
            .config()
            .feeds
            .sources
            .iter()
            .filter_map(|s| {
                let r = rows.iter().find(|r| r.name == s.name)?;
                let a = age(r, now);
                Some(Freshness {
                    name: s.name.clone(),
                    age_secs: a.as_secs_f64(),
                    last_ok: matches!(r.last_result.as_str(), "imported" | "unchanged"),
                    stale: a > s.stale_after,
                    last_attempt: r.last_attempt_at,
                })
            })
            .collect())
    }

    /// The feed-sync duty's step: starts [`App::sync_feeds`] in the
    /// background unless a sync is still running, and returns at once (1 if
    /// it started one). A download may take minutes; run inline, it would
    /// hold up the other duties and the renewal of the leader lease.
    pub async fn start_feed_sync(&self) -> usize {
        if self.config().feeds.sources.is_empty() {
            return 0;
        }
        let mut slot = self.feed_sync_task.lock().await;
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return 0;
        }
        let app = self.clone();
        *slot = Some(tokio::spawn(async move {
            if let Err(e) = app.sync_feeds().await {
                tracing::warn!(error = %e.message, "feed sync: stopped");
            }
        }));
        1
    }

    /// Waits for the background feed sync, if one is running (tests, and a
    /// graceful shutdown).
    pub async fn wait_feed_sync(&self) {
        let h = self.feed_sync_task.lock().await.take();
        if let Some(h) = h {
            let _ = h.await;
        }
    }

    /// The feed-sync duty: attempts every source that is due, then raises
    /// `feed.stale` for each source past its threshold (once per episode).
    /// Returns the number of sources attempted.
    pub async fn sync_feeds(&self) -> Result<usize, AppError> {
        let mut attempted = 0;
        for src in self.config().feeds.sources.clone() {
            let now = self.now();
            let prev = {
                let mut tx = self.store.read().await?;
                tx.feed_sync(&src.name).await?
            };
            let due = prev
                .as_ref()
                .is_none_or(|r| now >= r.last_attempt_at + wait_after(&src, &r.last_result));
            let row = if due {
                attempted += 1;
                self.sync_source(&src, prev, now).await?
            } else {
                match prev {
                    Some(r) => r,
                    None => continue,
                }
            };
            self.raise_stale(&src, &row, now).await?;
        }
        Ok(attempted)
    }

    /// One attempt at one source; stores and returns its new state.
    pub async fn sync_source(
        &self,
        src: &FeedSource,
        prev: Option<FeedSyncRow>,
        now: Timestamp,
    ) -> Result<FeedSyncRow, AppError> {
        let dir = self.feed_dir();
        let good = dir.join(format!("{}.feed", src.name));
        let tmp = dir.join(format!(".{}.part", src.name));
        // The validators only count while the last good copy is there.
        let have_good = good.exists();
        let validators = match (&prev, have_good) {
            (Some(r), true) => Validators {
                etag: r.etag.clone(),
                last_modified: r.last_modified.clone(),
            },
            _ => Validators::default(),
        };
        let prev_sha = prev
            .as_ref()
            .filter(|_| have_good)
            .and_then(|r| r.sha256.clone());
        let s = src.clone();
        let (d, t) = (dir.clone(), tmp.clone());
        let fetched =
            tokio::task::spawn_blocking(move || -> Result<Option<(Fetched, Parsed)>, SyncError> {
                std::fs::create_dir_all(&d)
                    .map_err(|e| SyncError::Failed(format!("{}: {e}", d.display())))?;
                let r = fetch(&s, &validators, &t);
                let f = match r {
                    Ok(FetchOutcome::NotModified) => return Ok(None),
                    Ok(FetchOutcome::Fetched(f)) => f,
                    Err(e) => {
                        let _ = std::fs::remove_file(&t);
                        return Err(e);
                    }
                };
                let checked = (|| {
                    if let Some(want) = &s.sha256
                        && !want.eq_ignore_ascii_case(&f.sha256)
                    {
                        return Err(SyncError::Refused(format!(
                            "{}: SHA-256 {} is not the configured {want}",
                            s.origin.describe(),
                            f.sha256
                        )));
                    }
                    if prev_sha.as_deref() == Some(f.sha256.as_str()) {
                        // The same bytes as the last good copy: nothing to import.
                        return Ok(None);
                    }
                    let parsed = parse_path(&t).map_err(|e| {
                        SyncError::Refused(
                            e.replace(&t.display().to_string(), &s.origin.describe()),
                        )
                    })?;
                    check_parsed(&parsed, s.kind, &s.origin.describe())
                        .map_err(SyncError::Refused)?;
                    Ok(Some(parsed))
                })();
                match checked {
                    Ok(Some(parsed)) => {
                        // The atomic swap: the checked file becomes the last good copy.
                        std::fs::rename(&t, &good)
                            .map_err(|e| SyncError::Failed(format!("{}: {e}", good.display())))?;
                        Ok(Some((f, parsed)))
                    }
                    Ok(None) => {
                        let _ = std::fs::remove_file(&t);
                        Ok(None)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&t);
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|e| {
                AppError::new(
                    patchbay_proto::error::ErrorCode::Internal,
                    format!("feed sync of {}: {e}", src.name),
                )
            })?;
        let mut row = prev.clone().unwrap_or_else(|| FeedSyncRow {
            name: src.name.clone(),
            kind: src.kind.as_str().into(),
            origin: src.origin.describe(),
            etag: None,
            last_modified: None,
            sha256: None,
            first_attempt_at: now,
            last_attempt_at: now,
            last_result: String::new(),
            last_error: None,
            last_good_at: None,
            last_changed_at: None,
        });
        row.kind = src.kind.as_str().into();
        row.origin = src.origin.describe();
        row.last_attempt_at = now;
        let caller = SystemActor::FeedSync.caller();
        match fetched {
            Ok(None) => {
                row.last_result = "unchanged".into();
                row.last_error = None;
                row.last_good_at = Some(now);
                tracing::debug!(feed = %src.name, "feed sync: unchanged");
            }
            Ok(Some((f, parsed))) => {
                let label = format!("{} ({})", src.name, src.origin.describe());
                match self.import_collected(&label, &parsed, &caller).await {
                    Ok(out) => {
                        row.etag = f.etag;
                        row.last_modified = f.last_modified;
                        row.sha256 = Some(f.sha256);
                        row.last_result = "imported".into();
                        row.last_error = None;
                        row.last_good_at = Some(now);
                        row.last_changed_at = Some(now);
                        tracing::info!(feed = %src.name, imported = ?out.imported, zero_day = ?out.zero_day, "feed sync: imported");
                    }
                    Err(e) => {
                        row.last_result = "failed".into();
                        row.last_error = Some(format!("import: {}", e.message));
                        // Not imported: fetch it again next time.
                        row.etag = None;
                        row.last_modified = None;
                        row.sha256 = None;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(feed = %src.name, error = %e.message(), "feed sync: {}", e.result());
                row.last_result = e.result().into();
                row.last_error = Some(e.message().to_string());
            }
        }
        let mut tx = self.change_by_system(SystemActor::FeedSync).await?;
        tx.put_feed_sync(&row).await?;
        if matches!(row.last_result.as_str(), "refused" | "failed") {
            tx.audit(
                &format!("feed.sync_{}", row.last_result),
                &format!("feed:{}", src.name),
                json!({"origin": row.origin, "error": row.last_error}),
            )
            .await?;
            tx.commit().await?;
        } else {
            tx.commit_unaudited("feed sync state (imports are audited as feed.import)")
                .await?;
        }
        Ok(row)
    }

    /// Raises `feed.stale` for `src` if its data is past the threshold and
    /// this staleness episode (since its last good data) has not raised it.
    async fn raise_stale(
        &self,
        src: &FeedSource,
        row: &FeedSyncRow,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let a = age(row, now);
        if a <= src.stale_after {
            return Ok(false);
        }
        let episode = match row.last_good_at {
            Some(t) => format!("feed.stale:{}", t.as_millisecond()),
            None => "feed.stale:never".to_string(),
        };
        let subject = format!("feed:{}", src.name);
        let mut tx = self.change_by_system(SystemActor::FeedSync).await?;
        if !tx.note_once(&subject, &episode, now).await? {
            tx.commit_unaudited("feed.stale already raised for this episode")
                .await?;
            return Ok(false);
        }
        tx.audit(
            "feed.stale",
            &subject,
            json!({
                "feed": src.name, "kind": src.kind.as_str(), "origin": row.origin,
                "last_good_at": row.last_good_at.map(fmt_ts),
                "age_secs": a.as_secs(), "threshold_secs": src.stale_after.as_secs(),
                "last_result": row.last_result, "last_error": row.last_error,
                "message": format!("feed {} is stale: no current data for {}s (threshold {}s){}",
                    src.name, a.as_secs(), src.stale_after.as_secs(),
                    row.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()),
            }),
        )
        .await?;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        assert!(valid_source_name("kev"));
        assert!(valid_source_name("osv-debian_12"));
        assert!(!valid_source_name(""));
        assert!(!valid_source_name("../x"));
        assert!(!valid_source_name("a b"));
        assert!(!valid_source_name(&"a".repeat(65)));
    }

    #[test]
    fn a_failed_source_is_retried_sooner() {
        let mut s = FeedSource::new("kev", FeedKind::Kev, Origin::Url("http://x/".into()));
        assert_eq!(wait_after(&s, "imported"), DEFAULT_EVERY);
        assert_eq!(wait_after(&s, "refused"), DEFAULT_EVERY);
        assert_eq!(wait_after(&s, "failed"), RETRY_FAILED_AFTER);
        s.every = SignedDuration::from_mins(5);
        assert_eq!(wait_after(&s, "failed"), SignedDuration::from_mins(5));
    }

    #[test]
    fn csaf_index_reads_the_oasis_provider_metadata_and_rolie_examples() {
        let fixture = |p: &str| {
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../fixtures/feeds/csaf")
                    .join(p),
            )
            .unwrap()
        };
        let pm = fixture("provider-metadata/example-01-provider-metadata.json");
        assert_eq!(
            csaf_index(
                &pm,
                "https://www.example.com/.well-known/csaf/provider-metadata.json"
            ),
            Some(CsafIndex::ProviderMetadata(vec![
                "https://www.example.com/.well-known/csaf/feed-tlp-white.json".into()
            ]))
        );
        let feed = fixture("rolie/example-01-feed-tlp-white.json");
        let Some(CsafIndex::Rolie(docs)) = csaf_index(&feed, "https://psirt.domain.tld/feed.json")
        else {
            panic!("not read as a ROLIE feed")
        };
        assert_eq!(
            docs[0],
            "https://psirt.domain.tld/advisories/csaf/2020/2020-ESA-001.json"
        );
        assert!(docs.iter().all(|d| d.ends_with(".json")), "{docs:?}");
        // A CSAF document is neither; relative links resolve, other schemes are dropped.
        assert_eq!(
            csaf_index(&fixture("bsi-2022-0001.json"), "https://x/"),
            None
        );
        let rel = br#"{"feed": {"entry": [{"content": {"src": "a/1.json"}},
            {"link": [{"rel": "self", "href": "/b/2.json"}]}, {"content": {"src": "file:///etc/passwd"}},
            {"content": {"src": "a/1.json"}}]}}"#;
        assert_eq!(
            csaf_index(rel, "http://127.0.0.1:9/csaf/feed.json"),
            Some(CsafIndex::Rolie(vec![
                "http://127.0.0.1:9/csaf/a/1.json".into(),
                "http://127.0.0.1:9/b/2.json".into()
            ]))
        );
    }

    #[test]
    fn copy_limited_refuses_one_byte_over() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("f");
        let ok = copy_limited(&mut &b"12345"[..], &to, 5, "x").unwrap();
        assert_eq!(ok.size, 5);
        assert_eq!(ok.sha256, hex::encode(Sha256::digest(b"12345")));
        let e = copy_limited(&mut &b"123456"[..], &to, 5, "x").unwrap_err();
        assert!(matches!(e, SyncError::Refused(m) if m.contains("limit of 5 bytes")));
    }
}
