//! The IO layer: read feed files, directories and archives from the local file
//! system (never the network) and hand what they contain to a [`FeedSink`].
//!
//! # What a path may be
//! - a **directory**: walked recursively in name order; entries whose name starts
//!   with `.` are skipped, symlinks are followed (each directory once), and files
//!   that are not feeds (README, licences, JSON schemas) are listed in
//!   [`ImportSummary::ignored`];
//! - an **OSV record** (`.json`), or a **JSONL** file of OSV records, one per line
//!   (`.jsonl`, or any JSON file with more than one top-level object);
//! - a **zip** of any of these (OSV's per-ecosystem `all.zip`), also nested in a
//!   directory or in another zip; members are named `archive.zip!/member.json`;
//! - a **KEV catalog** (`known_exploited_vulnerabilities.json`): a JSON object with
//!   `catalogVersion`, or with `vulnerabilities` and `dateReleased`;
//! - an **EPSS CSV** (official, or the KEV_EPSS layout), recognised by its first line;
//! - **CVSS scores** ([`crate::scores`]): an NVD API 2.0 CVE record (one per file,
//!   as in `fkie-cad/nvd-json-data-feeds`), an NVD API 2.0 page
//!   (`{"format":"NVD_CVE","vulnerabilities":[{"cve":…}]}`) or a CVE JSON 5
//!   record (`"dataType":"CVE_RECORD"`);
//! - a **CSAF 2.0** document ([`crate::csaf`]: a JSON object whose `document`
//!   has `csaf_version`); named directly, a malformed one fails the import
//!   (nothing of it is delivered), inside a directory or archive it is skipped
//!   whole and reported with its JSON path;
//! - any of these **gzip**-compressed.
//!
//! Kinds are decided by content (magic bytes, the first JSON object's keys, the CSV
//! header), not by file name; the name only says that a `.jsonl` file is JSON Lines
//! before its first line has been read.
//!
//! # Errors
//! [`read_path`] fails only when it cannot start: the path does not exist, it cannot
//! be read, or a file named directly is of no known kind. Everything found after
//! that — a malformed record, a truncated file, an unreadable member, a corrupt
//! gzip stream — is reported through [`FeedSink::on_error`] with the file (and
//! record id when known), and the import goes on with the next record or file.
//! EPSS rows and JSONL records read before a file turned out to be truncated have
//! already been delivered.

use crate::epss::{self, EpssMeta, EpssScore};
use crate::error::{FeedError, FeedErrorKind, RecordError};
use crate::kev::{self, Catalog};
use crate::osv::{self, Advisory};
use crate::scores::{self, CveScores};
use flate2::read::MultiGzDecoder;
use serde::Serialize;
use serde::de::IgnoredAny;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

/// Receives what an import finds. Every method but [`FeedSink::on_error`] has an
/// empty default, so a sink implements only the feeds it cares about.
pub trait FeedSink {
    /// One valid OSV advisory.
    fn on_advisory(&mut self, advisory: Advisory) {
        let _ = advisory;
    }
    /// One KEV catalog with its valid entries.
    fn on_kev(&mut self, catalog: Catalog) {
        let _ = catalog;
    }
    /// The metadata of an EPSS file, before its rows.
    fn on_epss_meta(&mut self, meta: &EpssMeta) {
        let _ = meta;
    }
    /// One valid EPSS row.
    fn on_epss(&mut self, score: EpssScore) {
        let _ = score;
    }
    /// The CVSS scores of one CVE (an NVD or CVE JSON 5 record).
    fn on_cve_scores(&mut self, scores: CveScores) {
        let _ = scores;
    }
    /// One valid CSAF document.
    fn on_csaf(&mut self, document: crate::csaf::Document) {
        let _ = document;
    }
    /// A record or file that was skipped.
    fn on_error(&mut self, error: RecordError);
}

/// A [`FeedSink`] that keeps everything in memory (tests, small imports).
#[derive(Debug, Default, Clone)]
pub struct Collect {
    /// Advisories, in the order read.
    pub advisories: Vec<Advisory>,
    /// KEV catalogs.
    pub kev: Vec<Catalog>,
    /// EPSS file metadata, one per EPSS file.
    pub epss_meta: Vec<EpssMeta>,
    /// EPSS rows.
    pub epss: Vec<EpssScore>,
    /// CVSS scores per CVE.
    pub scores: Vec<CveScores>,
    /// CSAF documents.
    pub csaf: Vec<crate::csaf::Document>,
    /// Skipped records and files.
    pub errors: Vec<RecordError>,
}

impl FeedSink for Collect {
    fn on_advisory(&mut self, advisory: Advisory) {
        self.advisories.push(advisory);
    }
    fn on_kev(&mut self, catalog: Catalog) {
        self.kev.push(catalog);
    }
    fn on_epss_meta(&mut self, meta: &EpssMeta) {
        self.epss_meta.push(meta.clone());
    }
    fn on_epss(&mut self, score: EpssScore) {
        self.epss.push(score);
    }
    fn on_cve_scores(&mut self, scores: CveScores) {
        self.scores.push(scores);
    }
    fn on_csaf(&mut self, document: crate::csaf::Document) {
        self.csaf.push(document);
    }
    fn on_error(&mut self, error: RecordError) {
        self.errors.push(error);
    }
}

/// Counts for one feed kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Files (or zip members) of this kind.
    pub files: u64,
    /// Records delivered to the sink (advisories, KEV entries, EPSS rows).
    pub records: u64,
    /// Records skipped, plus files of this kind that could not be read at all.
    pub skipped: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// OSV records (JSON, JSONL).
    pub osv: Counts,
    /// KEV catalogs (records = entries).
    pub kev: Counts,
    /// EPSS files (records = rows).
    pub epss: Counts,
    /// NVD / CVE JSON 5 records (records = CVEs).
    pub cvss: Counts,
    /// CSAF documents (records = documents; a refused document is skipped whole).
    pub csaf: Counts,
    /// Files inside the imported directories or archives that are not feeds.
    pub ignored: Vec<String>,
    /// Calls of [`FeedSink::on_error`].
    pub errors: u64,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, c) in [
            ("OSV", self.osv),
            ("KEV", self.kev),
            ("EPSS", self.epss),
            ("CVSS", self.cvss),
            ("CSAF", self.csaf),
        ] {
            write!(
                f,
                "{name}: {} files, {} records, {} skipped; ",
                c.files, c.records, c.skipped
            )?;
        }
        write!(f, "{} ignored, {} errors", self.ignored.len(), self.errors)
    }
}

/// Imports a file or a directory (see the module docs).
pub fn read_path(path: &Path, sink: &mut dyn FeedSink) -> Result<ImportSummary, FeedError> {
    let name = path.display().to_string();
    let meta = fs::metadata(path).map_err(|e| FeedError::io(&name, e))?;
    let mut importer = Importer::new(sink);
    if meta.is_dir() {
        importer.dir(path, true)?;
    } else {
        importer.file(path, &name, true)?;
    }
    Ok(importer.summary)
}

/// Imports the bytes of one file called `name` (an upload, say), as [`read_path`]
/// would import a file of that name.
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    sink: &mut dyn FeedSink,
) -> Result<ImportSummary, FeedError> {
    let mut importer = Importer::new(sink);
    importer.stream(name, Box::new(bytes), true, 0)?;
    Ok(importer.summary)
}

/// Bytes read to decide a kind.
const SNIFF: usize = 4096;
/// The largest document or archive held in memory (decompressed).
const MAX_IN_MEMORY: u64 = 1 << 30;
/// Gzip in zip in gzip …: deeper than this is refused.
const MAX_DEPTH: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Gzip,
    Zip,
    Json,
    JsonLines,
    Epss,
    Unknown,
}

fn is_zip(prefix: &[u8]) -> bool {
    prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06")
}

fn is_jsonl_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    lower.ends_with(".jsonl") || lower.ends_with(".ndjson")
}

fn sniff(prefix: &[u8], name: &str) -> Sniffed {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        return Sniffed::Gzip;
    }
    if is_zip(prefix) {
        return Sniffed::Zip;
    }
    let text = prefix.strip_prefix(b"\xef\xbb\xbf").unwrap_or(prefix);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| &text[i..]) {
        Some([b'{', ..]) if is_jsonl_name(name) => Sniffed::JsonLines,
        Some([b'{', ..]) => Sniffed::Json,
        Some(_) if epss::sniff(text) => Sniffed::Epss,
        _ => Sniffed::Unknown,
    }
}

/// The top-level keys that tell a KEV catalog from an OSV record.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "catalogVersion", default)]
    catalog_version: Option<IgnoredAny>,
    #[serde(rename = "dateReleased", default)]
    date_released: Option<IgnoredAny>,
    #[serde(default)]
    vulnerabilities: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    schema_version: Option<IgnoredAny>,
    #[serde(default)]
    affected: Option<IgnoredAny>,
    #[serde(default)]
    aliases: Option<IgnoredAny>,
    #[serde(default)]
    modified: Option<IgnoredAny>,
    #[serde(default)]
    published: Option<IgnoredAny>,
    #[serde(default)]
    withdrawn: Option<IgnoredAny>,
    #[serde(default)]
    document: Option<IgnoredAny>,
    #[serde(default)]
    product_tree: Option<IgnoredAny>,
}

enum JsonKind {
    Csaf,
    Kev,
    Osv,
    Scores,
    Other,
}

impl Probe {
    fn kind(&self) -> JsonKind {
        if self.document.is_some()
            && (self.product_tree.is_some() || self.vulnerabilities.is_some() || self.id.is_none())
        {
            JsonKind::Csaf
        } else if self.catalog_version.is_some()
            || (self.vulnerabilities.is_some() && self.date_released.is_some())
        {
            JsonKind::Kev
        } else if self.id.is_some()
            || self.schema_version.is_some()
            || self.affected.is_some()
            || self.aliases.is_some()
            || self.modified.is_some()
            || self.published.is_some()
            || self.withdrawn.is_some()
        {
            JsonKind::Osv
        } else {
            JsonKind::Other
        }
    }
}

fn read_limited(r: &mut dyn Read, name: &str) -> Result<Vec<u8>, FeedError> {
    let mut buf = Vec::new();
    r.take(MAX_IN_MEMORY + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FeedError::io(name, e))?;
    if buf.len() as u64 > MAX_IN_MEMORY {
        return Err(FeedError::new(
            FeedErrorKind::Malformed,
            format!("larger than {MAX_IN_MEMORY} bytes once decompressed"),
        )
        .in_file(name));
    }
    Ok(buf)
}

fn read_prefix(r: &mut dyn Read, n: usize, name: &str) -> Result<Vec<u8>, FeedError> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| FeedError::io(name, e))?;
    Ok(buf)
}

struct Importer<'s> {
    sink: &'s mut dyn FeedSink,
    summary: ImportSummary,
    visited: HashSet<PathBuf>,
}

impl<'s> Importer<'s> {
    fn new(sink: &'s mut dyn FeedSink) -> Self {
        Self {
            sink,
            summary: ImportSummary::default(),
            visited: HashSet::new(),
        }
    }

    fn error(&mut self, e: RecordError) {
        self.summary.errors += 1;
        self.sink.on_error(e);
    }

    fn failed(&mut self, name: &str, e: FeedError) {
        self.error(e.in_file(name).to_record_error());
    }

    fn dir(&mut self, path: &Path, top: bool) -> Result<(), FeedError> {
        let name = path.display().to_string();
        let canonical = fs::canonicalize(path).map_err(|e| FeedError::io(&name, e))?;
        if !self.visited.insert(canonical) {
            return Ok(());
        }
        let listing = fs::read_dir(path).and_then(|it| it.collect::<Result<Vec<_>, _>>());
        let mut entries = match listing {
            Ok(entries) => entries,
            Err(e) if top => return Err(FeedError::io(&name, e)),
            Err(e) => {
                self.failed(&name, FeedError::io(&name, e));
                return Ok(());
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = entry.path();
            let name = path.display().to_string();
            let result = match fs::metadata(&path) {
                Err(e) => Err(FeedError::io(&name, e)),
                Ok(m) if m.is_dir() => self.dir(&path, false),
                Ok(m) if m.is_file() => self.file(&path, &name, false),
                Ok(_) => Ok(()),
            };
            if let Err(e) = result {
                self.failed(&name, e);
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, name: &str, top: bool) -> Result<(), FeedError> {
        let mut file = File::open(path).map_err(|e| FeedError::io(name, e))?;
        let prefix = read_prefix(&mut file, 4, name)?;
        if is_zip(&prefix) && file.rewind().is_ok() {
            self.zip(name, BufReader::new(file), 0);
            return Ok(());
        }
        let reader = BufReader::with_capacity(64 * 1024, Cursor::new(prefix).chain(file));
        self.stream(name, Box::new(reader), top, 0)
    }

    /// Detects the kind of `r` and imports it. Returns `Err` only before the kind is
    /// known (unreadable, or of no known kind when `top`).
    fn stream<'r>(
        &mut self,
        name: &str,
        mut r: Box<dyn BufRead + 'r>,
        top: bool,
        depth: u8,
    ) -> Result<(), FeedError> {
        if depth > MAX_DEPTH {
            return Err(FeedError::malformed("archives nested too deeply").in_file(name));
        }
        let prefix = read_prefix(&mut r, SNIFF, name)?;
        let kind = sniff(&prefix, name);
        let mut r = Cursor::new(prefix).chain(r);
        match kind {
            Sniffed::Gzip => {
                let inner = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(r));
                self.stream(name, Box::new(inner), top, depth + 1)
            }
            Sniffed::Zip => {
                let bytes = read_limited(&mut r, name)?;
                self.zip(name, Cursor::new(bytes), depth + 1);
                Ok(())
            }
            Sniffed::Epss => {
                self.epss(name, r);
                Ok(())
            }
            Sniffed::JsonLines => {
                self.jsonl_stream(name, BufReader::with_capacity(64 * 1024, r));
                Ok(())
            }
            Sniffed::Json => {
                let bytes = read_limited(&mut r, name)?;
                self.json(name, &bytes, top)
            }
            Sniffed::Unknown if top => Err(FeedError::unknown_format(
                name,
                "not a feed this importer reads (OSV JSON or JSONL, KEV catalog JSON, EPSS CSV, NVD or CVE JSON 5 records, or a zip or gzip of those)",
            )),
            Sniffed::Unknown => {
                self.summary.ignored.push(name.to_owned());
                Ok(())
            }
        }
    }

    fn json(&mut self, name: &str, bytes: &[u8], top: bool) -> Result<(), FeedError> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Probe>();
        match values.next() {
            Some(Ok(probe)) => {
                let rest = &bytes[values.byte_offset()..];
                if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                    self.jsonl_bytes(name, bytes);
                    return Ok(());
                }
                let kind = match serde_json::from_slice::<scores::Keys>(bytes) {
                    Ok(keys) if keys.shape().is_some() => JsonKind::Scores,
                    _ => probe.kind(),
                };
                match kind {
                    JsonKind::Csaf => self.csaf(name, bytes, top)?,
                    JsonKind::Scores => self.scores(name, bytes),
                    JsonKind::Kev => self.kev(name, bytes),
                    JsonKind::Osv => self.osv_document(name, bytes),
                    JsonKind::Other if top => {
                        return Err(FeedError::unknown_format(
                            name,
                            "a JSON document that is neither an OSV record, a KEV catalog, an NVD CVE record nor a CVE JSON 5 record",
                        ));
                    }
                    JsonKind::Other => self.summary.ignored.push(name.to_owned()),
                }
            }
            // Not valid JSON: let the parser of the likelier kind say why.
            _ => {
                let head = &bytes[..bytes.len().min(SNIFF)];
                let has = |key: &[u8]| head.windows(key.len()).any(|w| w == key);
                if has(b"\"catalogVersion\"") {
                    self.kev(name, bytes);
                } else if has(b"\"csaf_version\"") {
                    self.csaf(name, bytes, top)?;
                } else if has(b"\"sourceIdentifier\"")
                    || has(b"\"cveMetadata\"")
                    || has(b"\"NVD_CVE\"")
                {
                    self.scores(name, bytes);
                } else {
                    self.osv_document(name, bytes);
                }
            }
        }
        Ok(())
    }

    /// One CSAF document: delivered whole or not at all. Named directly
    /// (`top`), a refused document fails the import.
    fn csaf(&mut self, name: &str, bytes: &[u8], top: bool) -> Result<(), FeedError> {
        self.summary.csaf.files += 1;
        match crate::csaf::parse(bytes) {
            Ok(doc) => {
                self.summary.csaf.records += 1;
                self.sink.on_csaf(doc);
                Ok(())
            }
            Err(e) if top => Err(e.in_file(name)),
            Err(e) => {
                self.summary.csaf.skipped += 1;
                self.failed(name, e);
                Ok(())
            }
        }
    }

    fn osv_document(&mut self, name: &str, bytes: &[u8]) {
        self.summary.osv.files += 1;
        self.osv_record(name, None, bytes);
    }

    fn osv_record(&mut self, name: &str, line: Option<u64>, bytes: &[u8]) {
        match osv::parse(bytes) {
            Ok(advisory) => {
                self.summary.osv.records += 1;
                self.sink.on_advisory(advisory);
            }
            Err(e) => {
                self.summary.osv.skipped += 1;
                let e = match line {
                    Some(line) => e.at_line(line),
                    None => e,
                };
                self.failed(name, e);
            }
        }
    }

    fn jsonl_bytes(&mut self, name: &str, bytes: &[u8]) {
        self.summary.osv.files += 1;
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                self.osv_record(name, Some(i as u64 + 1), line);
            }
        }
    }

    fn jsonl_stream(&mut self, name: &str, mut r: impl BufRead) {
        self.summary.osv.files += 1;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    number += 1;
                    if line.iter().any(|b| !b.is_ascii_whitespace()) {
                        self.osv_record(name, Some(number), &line);
                    }
                }
                Err(e) => {
                    self.summary.osv.skipped += 1;
                    self.failed(name, FeedError::io(name, e).at_line(number + 1));
                    break;
                }
            }
        }
    }

    fn scores(&mut self, name: &str, bytes: &[u8]) {
        self.summary.cvss.files += 1;
        match scores::parse(bytes) {
            Ok((records, errors)) => {
                for e in errors {
                    self.summary.cvss.skipped += 1;
                    self.error(e.in_file(name));
                }
                for r in records {
                    self.summary.cvss.records += 1;
                    self.sink.on_cve_scores(r);
                }
            }
            Err(e) => {
                self.summary.cvss.skipped += 1;
                self.failed(name, e);
            }
        }
    }

    fn kev(&mut self, name: &str, bytes: &[u8]) {
        self.summary.kev.files += 1;
        match kev::parse(bytes) {
            Ok((catalog, errors)) => {
                self.summary.kev.records += catalog.entries.len() as u64;
                for e in errors {
                    if e.record.is_some() {
                        self.summary.kev.skipped += 1;
                    }
                    self.error(e.in_file(name));
                }
                self.sink.on_kev(catalog);
            }
            Err(e) => {
                self.summary.kev.skipped += 1;
                self.failed(name, e);
            }
        }
    }

    fn epss(&mut self, name: &str, r: impl Read) {
        self.summary.epss.files += 1;
        let reader = match epss::Reader::new(r) {
            Ok(reader) => reader,
            Err(e) => {
                self.summary.epss.skipped += 1;
                self.failed(name, e);
                return;
            }
        };
        self.sink.on_epss_meta(reader.meta());
        // Counted here rather than from the reader's summary: on a read error the
        // rows delivered before it count too.
        let (mut rows, mut skipped) = (0u64, 0u64);
        let sink = RefCell::new(&mut *self.sink);
        let result = reader.read_rows(
            |row| {
                rows += 1;
                sink.borrow_mut().on_epss(row);
            },
            |e| {
                skipped += 1;
                sink.borrow_mut().on_error(e.in_file(name));
            },
        );
        self.summary.epss.records += rows;
        self.summary.epss.skipped += skipped;
        self.summary.errors += skipped;
        if let Err(e) = result {
            self.summary.epss.skipped += 1;
            self.failed(name, e);
        }
    }

    fn zip<R: Read + Seek>(&mut self, name: &str, reader: R, depth: u8) {
        let mut archive = match zip::ZipArchive::new(reader) {
            Ok(a) => a,
            Err(e) => {
                self.failed(
                    name,
                    FeedError::malformed(format!("invalid zip archive: {e}")),
                );
                return;
            }
        };
        for i in 0..archive.len() {
            let (member, bytes) = {
                let mut file = match archive.by_index(i) {
                    Ok(f) => f,
                    Err(e) => {
                        let member = format!("{name}!/#{i}");
                        self.failed(
                            &member,
                            FeedError::malformed(format!("unreadable zip member: {e}")),
                        );
                        continue;
                    }
                };
                if file.is_dir() {
                    continue;
                }
                let inner = match file.name() {
                    Ok(n) => n.into_owned(),
                    Err(_) => String::from_utf8_lossy(file.name_raw()).into_owned(),
                };
                let member = format!("{name}!/{inner}");
                let base = inner.rsplit('/').next().unwrap_or_default();
                if base.starts_with('.') || inner.starts_with("__MACOSX/") {
                    continue;
                }
                if file.size() > MAX_IN_MEMORY {
                    self.failed(
                        &member,
                        FeedError::malformed(format!("larger than {MAX_IN_MEMORY} bytes")),
                    );
                    continue;
                }
                match read_limited(&mut file, &member) {
                    Ok(bytes) => (member, bytes),
                    Err(e) => {
                        self.failed(&member, e);
                        continue;
                    }
                }
            };
            if let Err(e) = self.stream(&member, Box::new(&bytes[..]), false, depth + 1) {
                self.failed(&member, e);
            }
        }
    }
}
