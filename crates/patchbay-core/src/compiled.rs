//! The compiled advisory index: an [`Index`] (plus the KEV catalog and EPSS
//! scores) laid out once in a compact, versioned, checksummed binary form, so a
//! scan reads one file and decodes only the (ecosystem, package) keys its host
//! has instead of parsing every OSV record again (ADR 0009).
//!
//! # Layout (format version [`FORMAT_VERSION`]; all integers little-endian)
//!
//! ```text
//! header (88 bytes)
//!   0  magic            b"PBAIDX\r\n"   (CR LF: a text-mode copy breaks it)
//!   8  format version   u32
//!  12  reserved         u32 = 0
//!  16  key              [u8; 32]       what it was built from (the caller's hash of
//!                                      its inputs, format version and crate version)
//!  48  payload length   u64
//!  56  checksum         [u8; 32]       CRC-32 of header[0..56] ‖ payload (u32), then 28 zero bytes
//! payload
//!   counts              u32 × 5        advisories, keys, KEV CVEs, EPSS scores, notes (1)
//!   tables              u32 × counts   offsets (into the payload) of each record;
//!                                      keys sorted by (ecosystem, package) bytes,
//!                                      KEV and EPSS by CVE
//!   records             advisory: id, cves, cvss, cvss vector, summary, published
//!                       key: ecosystem, package, entries (advisory number, ranges
//!                            with their events, versions)
//!                       KEV: cve; EPSS: cve, score (f64 bits)
//!                       note: the caller's bytes (the scan keeps what it knows of
//!                             its input files there), length-prefixed
//! ```
//!
//! Strings are `u32 length ‖ UTF-8`. [`CompiledIndex::open`] checks magic,
//! version, length and checksum — a flipped byte anywhere, a truncated file or
//! another format version is an [`IndexError`], never a panic — and the key when
//! the caller expects one. Records are decoded on demand by bounds-checked
//! readers (a record that does not decode is an error too, so even a file with a
//! forged checksum cannot panic the reader). The checksum detects damage, not
//! forgery: whoever can write the file can write any checksum (ADR 0009).
//! [`CompiledIndex::entries`] hands back one package's entries for
//! [`crate::assess::match_entries`], and [`CompiledIndex::subset`] an ordinary
//! [`Index`] of the keys asked for, so matching is the same code whichever way
//! the advisories were read.
//!
//! Pure: bytes in, bytes out; the caller reads and writes the file.

use crate::assess::{AdvisoryInfo, AffectedEntry, Index};
use patchbay_version::osv::{Event, Range, RangeKind};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The layout version written in the header; bump it with any layout change.
pub const FORMAT_VERSION: u32 = 2;
/// The first eight bytes of every index file.
pub const MAGIC: [u8; 8] = *b"PBAIDX\r\n";
/// Header length in bytes.
pub const HEADER_LEN: usize = 88;

/// Why an index was rejected. Every variant says what to do: rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Not an index file at all (or its first bytes were damaged).
    #[error("not a patchbay advisory index (bad magic bytes)")]
    BadMagic,
    /// Shorter than its header or than the payload length it declares.
    #[error("truncated: {len} bytes, the header declares {expected}")]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes the header declares (header + payload).
        expected: u64,
    },
    /// Longer than the payload length it declares.
    #[error("{extra} bytes after the declared end")]
    Trailing {
        /// Extra bytes.
        extra: u64,
    },
    /// Written by another format version.
    #[error("format version {found}, this patchbay reads version {expected}")]
    Version {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// Content does not match its checksum: the file was damaged.
    #[error("checksum mismatch: the file is corrupt")]
    Checksum,
    /// Built from other inputs (or by another patchbay version).
    #[error("built from other feeds (key {found}, expected {expected})")]
    Stale {
        /// Key in the file (hex, first 8 bytes).
        found: String,
        /// Key expected (hex, first 8 bytes).
        expected: String,
    },
    /// A record that does not decode (only possible in a forged file).
    #[error("malformed record at payload offset {offset}: {what}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
}

// ---- writing ----------------------------------------------------------------

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        // Counts and lengths beyond u32 cannot come from feeds of this world;
        // saturating keeps the writer total, and the reader rejects the result.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn here(&self) -> u32 {
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }
}

fn event_code(e: &Event) -> (u8, &str) {
    match e {
        Event::Introduced(v) => (0, v),
        Event::Fixed(v) => (1, v),
        Event::LastAffected(v) => (2, v),
        Event::Limit(v) => (3, v),
    }
}

fn kind_code(k: &RangeKind) -> u8 {
    match k {
        RangeKind::Ecosystem => 0,
        RangeKind::Semver => 1,
        RangeKind::Git => 2,
    }
}

/// Compiles `index`, the KEV CVEs and the EPSS scores into index bytes under
/// `key` (the caller's hash of what it was built from). Deterministic: the same
/// inputs give the same bytes.
pub fn compile(
    key: [u8; 32],
    index: &Index,
    kev: &[String],
    epss: &[(String, f64)],
    note: &[u8],
) -> Vec<u8> {
    let mut keys: Vec<(&str, &str, &[AffectedEntry])> = index.keys().collect();
    keys.sort_by(|a, b| (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes())));
    let mut kev: Vec<&str> = kev.iter().map(String::as_str).collect();
    kev.sort_unstable();
    kev.dedup();
    let mut epss_sorted: Vec<(&str, f64)> = Vec::with_capacity(epss.len());
    {
        // The last score given for a CVE wins, as a map built in order would.
        let mut last: HashMap<&str, f64> = HashMap::with_capacity(epss.len());
        for (c, s) in epss {
            last.insert(c.as_str(), *s);
        }
        epss_sorted.extend(last);
        epss_sorted.sort_by(|a, b| a.0.cmp(b.0));
    }
    let counts = [index.len(), keys.len(), kev.len(), epss_sorted.len(), 1];
    let mut w = Writer {
        buf: Vec::with_capacity(1 << 20),
    };
    for c in counts {
        w.len(c);
    }
    let tables = w.buf.len();
    let total: usize = counts.iter().sum();
    w.buf.resize(tables + 4 * total, 0);
    let mut offsets: Vec<u32> = Vec::with_capacity(total);
    for i in 0..index.len() {
        offsets.push(w.here());
        let a = index.advisory(i);
        w.str(&a.id);
        w.len(a.cves.len());
        for c in &a.cves {
            w.str(c);
        }
        match a.cvss {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.f64(s);
            }
        }
        w.opt_str(a.cvss_vector.as_deref());
        w.str(&a.summary);
        match a.published {
            None => w.u8(0),
            Some(t) => {
                w.u8(1);
                w.buf.extend_from_slice(&t.as_second().to_le_bytes());
                w.buf
                    .extend_from_slice(&t.subsec_nanosecond().to_le_bytes());
            }
        }
    }
    for (eco, pkg, entries) in &keys {
        offsets.push(w.here());
        w.str(eco);
        w.str(pkg);
        w.len(entries.len());
        for e in *entries {
            w.len(e.advisory);
            w.len(e.ranges.len());
            for r in &e.ranges {
                w.u8(kind_code(&r.kind));
                w.len(r.events.len());
                for ev in &r.events {
                    let (c, v) = event_code(ev);
                    w.u8(c);
                    w.str(v);
                }
            }
            w.len(e.versions.len());
            for v in &e.versions {
                w.str(v);
            }
        }
    }
    for c in &kev {
        offsets.push(w.here());
        w.str(c);
    }
    for (c, s) in &epss_sorted {
        offsets.push(w.here());
        w.str(c);
        w.f64(*s);
    }
    offsets.push(w.here());
    w.len(note.len());
    w.buf.extend_from_slice(note);
    for (i, o) in offsets.iter().enumerate() {
        let at = tables + 4 * i;
        w.buf[at..at + 4].copy_from_slice(&o.to_le_bytes());
    }
    seal(key, &w.buf)
}

/// Wraps a payload in a header (magic, version, `key`, length, checksum). The
/// fuzz target uses it to reach the record readers with a valid checksum.
pub fn seal(key: [u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&key);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let sum = checksum(&out, payload);
    out.extend_from_slice(&sum);
    out.extend_from_slice(payload);
    out
}

/// The checksum field: CRC-32 of header and payload, little-endian, then 28
/// zero bytes (format 1 held a SHA-256 here; ADR 0009 says why it changed).
fn checksum(head: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    let mut out = [0u8; 32];
    out[..4].copy_from_slice(&h.finalize().to_le_bytes());
    out
}

// ---- reading ----------------------------------------------------------------

/// A bounds-checked cursor over the payload.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &'static str) -> IndexError {
        IndexError::Malformed {
            offset: self.at,
            what,
        }
    }
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], IndexError> {
        let end = self.at.checked_add(n).ok_or_else(|| self.bad(what))?;
        let b = self.buf.get(self.at..end).ok_or_else(|| self.bad(what))?;
        self.at = end;
        Ok(b)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, IndexError> {
        Ok(self.bytes(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, IndexError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, IndexError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items each at least `min_item` bytes long: a count the rest of
    /// the payload cannot hold is rejected before anything is allocated for it.
    fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize, IndexError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.buf.len().saturating_sub(self.at) {
            return Err(self.bad(what));
        }
        Ok(n)
    }
    fn str(&mut self, what: &'static str) -> Result<&'a str, IndexError> {
        let n = self.u32(what)? as usize;
        let b = self.bytes(n, what)?;
        std::str::from_utf8(b).map_err(|_| self.bad(what))
    }
    fn opt_str(&mut self, what: &'static str) -> Result<Option<&'a str>, IndexError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => self.str(what).map(Some),
            _ => Err(self.bad(what)),
        }
    }
    fn f64(&mut self, what: &'static str) -> Result<f64, IndexError> {
        Ok(f64::from_bits(self.u64(what)?))
    }
}

/// A checked index file, decoded on demand.
#[derive(Debug, Clone)]
pub struct CompiledIndex {
    bytes: Vec<u8>,
    counts: [usize; TABLES],
}

/// Table numbers in the payload.
const ADV: usize = 0;
const KEY: usize = 1;
const KEV: usize = 2;
const EPSS: usize = 3;
const NOTE: usize = 4;
const TABLES: usize = 5;
/// Bytes of the counts at the start of the payload.
const COUNTS_LEN: usize = 4 * TABLES;

impl CompiledIndex {
    /// Checks an index file's bytes: magic, format version, length, checksum,
    /// and — when `expected_key` is given — that it was built from those inputs.
    pub fn open(bytes: Vec<u8>, expected_key: Option<&[u8; 32]>) -> Result<Self, IndexError> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(IndexError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(IndexError::Truncated {
                len: bytes.len() as u64,
                expected: HEADER_LEN as u64,
            });
        }
        let mut h = Reader {
            buf: &bytes[..HEADER_LEN],
            at: 8,
        };
        let version = h.u32("version")?;
        if version != FORMAT_VERSION {
            return Err(IndexError::Version {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        h.u32("reserved")?;
        h.bytes(32, "key")?;
        let payload_len = h.u64("payload length")?;
        let expected = (HEADER_LEN as u64).saturating_add(payload_len);
        let len = bytes.len() as u64;
        if len < expected {
            return Err(IndexError::Truncated { len, expected });
        }
        if len > expected {
            return Err(IndexError::Trailing {
                extra: len - expected,
            });
        }
        if checksum(&bytes[..56], &bytes[HEADER_LEN..]) != bytes[56..HEADER_LEN] {
            return Err(IndexError::Checksum);
        }
        let mut this = Self {
            bytes,
            counts: [0; TABLES],
        };
        if let Some(k) = expected_key {
            let found = this.key();
            if &found != k {
                return Err(IndexError::Stale {
                    found: hex::encode(&found[..8]),
                    expected: hex::encode(&k[..8]),
                });
            }
        }
        let mut r = this.reader(0);
        let mut counts = [0usize; TABLES];
        for c in &mut counts {
            *c = r.count(4, "table counts")?;
        }
        let total: usize = counts.iter().sum();
        if counts[NOTE] != 1
            || total.saturating_mul(4).saturating_add(COUNTS_LEN) > this.payload().len()
        {
            return Err(IndexError::Malformed {
                offset: 0,
                what: "tables longer than the payload",
            });
        }
        this.counts = counts;
        Ok(this)
    }

    /// The key it was built under.
    pub fn key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(&self.bytes[16..48]);
        k
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    fn reader(&self, at: usize) -> Reader<'_> {
        Reader {
            buf: self.payload(),
            at,
        }
    }

    /// The offset of record `i` of table `t`.
    fn record(&self, t: usize, i: usize) -> Result<usize, IndexError> {
        let before: usize = self.counts[..t].iter().sum();
        let at = COUNTS_LEN + 4 * (before + i);
        Ok(self.reader(at).u32("table offset")? as usize)
    }

    /// Number of advisories.
    pub fn advisories(&self) -> usize {
        self.counts[ADV]
    }

    /// Number of (ecosystem, package) keys.
    pub fn keys(&self) -> usize {
        self.counts[KEY]
    }

    /// Advisory number `i`.
    pub fn advisory(&self, i: usize) -> Result<AdvisoryInfo, IndexError> {
        if i >= self.counts[ADV] {
            return Err(IndexError::Malformed {
                offset: 0,
                what: "advisory number out of range",
            });
        }
        let mut r = self.reader(self.record(ADV, i)?);
        let id = r.str("advisory id")?.to_string();
        let n = r.count(4, "cve count")?;
        let mut cves = Vec::with_capacity(n);
        for _ in 0..n {
            cves.push(r.str("cve")?.to_string());
        }
        let cvss = match r.u8("cvss")? {
            0 => None,
            1 => Some(r.f64("cvss")?),
            _ => return Err(r.bad("cvss")),
        };
        let cvss_vector = r.opt_str("cvss vector")?.map(str::to_string);
        let summary = r.str("summary")?.to_string();
        let published = match r.u8("published")? {
            0 => None,
            1 => {
                let s = r.u64("published")? as i64;
                let n = r.u32("published")? as i32;
                Some(jiff::Timestamp::new(s, n).map_err(|_| r.bad("published"))?)
            }
            _ => return Err(r.bad("published")),
        };
        Ok(AdvisoryInfo {
            distro_severity: None,
            id,
            cves,
            cvss,
            cvss_vector,
            summary,
            published,
        })
    }

    /// The id of advisory number `i` (nothing else of it decoded).
    pub fn advisory_id(&self, i: usize) -> Result<&str, IndexError> {
        if i >= self.counts[ADV] {
            return Err(IndexError::Malformed {
                offset: 0,
                what: "advisory number out of range",
            });
        }
        self.reader(self.record(ADV, i)?).str("advisory id")
    }

    /// The (ecosystem, package) of key record `i`, and a reader after them.
    fn key_at(&self, i: usize) -> Result<(&str, &str, Reader<'_>), IndexError> {
        let mut r = self.reader(self.record(KEY, i)?);
        let eco = r.str("ecosystem")?;
        let pkg = r.str("package")?;
        Ok((eco, pkg, r))
    }

    /// Finds a string-keyed record by binary search over table `t`.
    fn search<'s, T>(
        &'s self,
        t: usize,
        want: (&[u8], &[u8]),
        key: impl Fn(&'s Self, usize) -> Result<((&'s [u8], &'s [u8]), T), IndexError>,
    ) -> Result<Option<T>, IndexError> {
        let (mut lo, mut hi) = (0, self.counts[t]);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, v) = key(self, mid)?;
            match k.cmp(&want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(v)),
            }
        }
        Ok(None)
    }

    /// The entries of (ecosystem, package), as the [`Index`] held them.
    pub fn entries(
        &self,
        ecosystem: &str,
        package: &str,
    ) -> Result<Vec<AffectedEntry>, IndexError> {
        let found = self.search(KEY, (ecosystem.as_bytes(), package.as_bytes()), |s, i| {
            let (e, p, r) = s.key_at(i)?;
            Ok(((e.as_bytes(), p.as_bytes()), r))
        })?;
        let Some(mut r) = found else {
            return Ok(Vec::new());
        };
        let n = r.count(12, "entry count")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let advisory = r.u32("entry advisory")? as usize;
            if advisory >= self.counts[ADV] {
                return Err(r.bad("entry advisory out of range"));
            }
            let nr = r.count(5, "range count")?;
            let mut ranges = Vec::with_capacity(nr);
            for _ in 0..nr {
                let kind = match r.u8("range kind")? {
                    0 => RangeKind::Ecosystem,
                    1 => RangeKind::Semver,
                    2 => RangeKind::Git,
                    _ => return Err(r.bad("range kind")),
                };
                let ne = r.count(5, "event count")?;
                let mut events = Vec::with_capacity(ne);
                for _ in 0..ne {
                    let code = r.u8("event")?;
                    let v = r.str("event version")?.to_string();
                    events.push(match code {
                        0 => Event::Introduced(v),
                        1 => Event::Fixed(v),
                        2 => Event::LastAffected(v),
                        3 => Event::Limit(v),
                        _ => return Err(r.bad("event")),
                    });
                }
                ranges.push(Range { kind, events });
            }
            let nv = r.count(4, "version count")?;
            let mut versions = Vec::with_capacity(nv);
            for _ in 0..nv {
                versions.push(r.str("version")?.to_string());
            }
            out.push(AffectedEntry {
                advisory,
                ranges,
                versions,
            });
        }
        Ok(out)
    }

    /// An [`Index`] of the given packages of `ecosystem` only (with the
    /// advisories their entries name): what matching those packages needs.
    pub fn subset<'p>(
        &self,
        ecosystem: &str,
        packages: impl IntoIterator<Item = &'p str>,
    ) -> Result<Index, IndexError> {
        let mut by_key: HashMap<(String, String), Vec<AffectedEntry>> = HashMap::new();
        let mut remap: HashMap<usize, usize> = HashMap::new();
        let mut advisories = Vec::new();
        // The binary packages of one source name it once each: looked up once.
        let mut looked_up: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for p in packages {
            if !looked_up.insert(p) {
                continue;
            }
            let mut entries = self.entries(ecosystem, p)?;
            if entries.is_empty() {
                continue;
            }
            for e in &mut entries {
                let n = match remap.get(&e.advisory) {
                    Some(&n) => n,
                    None => {
                        let n = advisories.len();
                        advisories.push(self.advisory(e.advisory)?);
                        remap.insert(e.advisory, n);
                        n
                    }
                };
                e.advisory = n;
            }
            by_key.insert((ecosystem.to_string(), p.to_string()), entries);
        }
        Index::from_parts(advisories, by_key).map_err(|_| IndexError::Malformed {
            offset: 0,
            what: "entry names a missing advisory",
        })
    }

    /// The whole [`Index`] back (every key and advisory).
    pub fn to_index(&self) -> Result<Index, IndexError> {
        let mut advisories = Vec::with_capacity(self.counts[ADV]);
        for i in 0..self.counts[ADV] {
            advisories.push(self.advisory(i)?);
        }
        let mut by_key = HashMap::with_capacity(self.counts[KEY]);
        for i in 0..self.counts[KEY] {
            let (e, p, _) = self.key_at(i)?;
            let (e, p) = (e.to_string(), p.to_string());
            let entries = self.entries(&e, &p)?;
            by_key.insert((e, p), entries);
        }
        Index::from_parts(advisories, by_key).map_err(|_| IndexError::Malformed {
            offset: 0,
            what: "entry names a missing advisory",
        })
    }

    /// Whether `cve` is in the KEV catalog the index was built with.
    pub fn kev(&self, cve: &str) -> Result<bool, IndexError> {
        self.search(KEV, (cve.as_bytes(), b""), |s, i| {
            let mut r = s.reader(s.record(KEV, i)?);
            Ok(((r.str("kev cve")?.as_bytes(), &b""[..]), ()))
        })
        .map(|f| f.is_some())
    }

    /// The EPSS score of `cve`, if the index was built with one.
    pub fn epss(&self, cve: &str) -> Result<Option<f64>, IndexError> {
        self.search(EPSS, (cve.as_bytes(), b""), |s, i| {
            let mut r = s.reader(s.record(EPSS, i)?);
            let c = r.str("epss cve")?;
            Ok(((c.as_bytes(), &b""[..]), r))
        })?
        .map(|mut r| r.f64("epss score"))
        .transpose()
    }

    /// The caller's note stored with the index.
    pub fn note(&self) -> Result<&[u8], IndexError> {
        let mut r = self.reader(self.record(NOTE, 0)?);
        let n = r.u32("note length")? as usize;
        r.bytes(n, "note")
    }

    /// Number of KEV CVEs and EPSS scores.
    pub fn kev_and_epss(&self) -> (usize, usize) {
        (self.counts[KEV], self.counts[EPSS])
    }
}

/// Builds an index key from the parts that decide an index's content: the
/// format version, the producing crate's version, and each input's name and
/// content hash (in the order given; the caller sorts them).
pub fn key_of<'a>(
    crate_version: &str,
    inputs: impl IntoIterator<Item = (&'a str, [u8; 32])>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"patchbay advisory index\0");
    h.update(FORMAT_VERSION.to_le_bytes());
    h.update((crate_version.len() as u64).to_le_bytes());
    h.update(crate_version.as_bytes());
    for (name, sum) in inputs {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(sum);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_version::Scheme;

    fn sample() -> Index {
        let info = |id: &str, cvss, published| AdvisoryInfo {
            distro_severity: None,
            id: id.into(),
            cves: vec![format!("CVE-{id}")],
            cvss,
            cvss_vector: cvss.map(|_| "CVSS:3.1/AV:N".into()),
            summary: format!("summary of {id}"),
            published,
        };
        let r = |i: &str, f: &str| Range {
            kind: RangeKind::Ecosystem,
            events: vec![Event::Introduced(i.into()), Event::Fixed(f.into())],
        };
        let mut idx = Index::new();
        idx.add(
            info(
                "A",
                Some(9.8),
                Some(jiff::Timestamp::new(1_700_000_000, 5).unwrap()),
            ),
            vec![
                (
                    "Debian:12".into(),
                    "openssl".into(),
                    vec![r("0", "3.0.11-1")],
                    vec![],
                ),
                (
                    "Debian:12".into(),
                    "zlib".into(),
                    vec![],
                    vec!["1:1.2.13.dfsg-1".into()],
                ),
            ],
        );
        idx.add(
            info("B", None, None),
            vec![
                (
                    "Debian:12".into(),
                    "openssl".into(),
                    vec![r("3.0.0", "3.0.13-1")],
                    vec![],
                ),
                (
                    "Alpine:v3.20".into(),
                    "openssl".into(),
                    vec![Range {
                        kind: RangeKind::Semver,
                        events: vec![
                            Event::Introduced("0".into()),
                            Event::LastAffected("3.1".into()),
                            Event::Limit("*".into()),
                        ],
                    }],
                    vec![],
                ),
            ],
        );
        idx
    }

    fn built() -> Vec<u8> {
        compile(
            [7; 32],
            &sample(),
            &["CVE-B".into(), "CVE-A".into(), "CVE-B".into()],
            &[
                ("CVE-A".into(), 0.5),
                ("CVE-Z".into(), 0.1),
                ("CVE-A".into(), 0.9),
            ],
            b"the note",
        )
    }

    #[test]
    fn round_trips_every_key_advisory_kev_and_epss() {
        let idx = sample();
        let c = CompiledIndex::open(built(), Some(&[7; 32])).unwrap();
        assert_eq!(c.advisories(), 2);
        assert_eq!(c.keys(), 3);
        for (eco, pkg, entries) in idx.keys() {
            let got = c.entries(eco, pkg).unwrap();
            assert_eq!(got, entries, "{eco} {pkg}");
        }
        assert!(c.entries("Debian:12", "nothere").unwrap().is_empty());
        assert!(c.entries("Debian:11", "openssl").unwrap().is_empty());
        for i in 0..idx.len() {
            assert_eq!(&c.advisory(i).unwrap(), idx.advisory(i));
        }
        assert!(c.kev("CVE-A").unwrap() && c.kev("CVE-B").unwrap());
        assert!(!c.kev("CVE-C").unwrap());
        assert_eq!(c.kev_and_epss(), (2, 2));
        assert_eq!(c.note().unwrap(), b"the note");
        assert_eq!(c.epss("CVE-A").unwrap(), Some(0.9), "the last score wins");
        assert_eq!(c.epss("CVE-Z").unwrap(), Some(0.1));
        assert_eq!(c.epss("CVE-B").unwrap(), None);
        let full = c.to_index().unwrap();
        let sub = c
            .subset("Debian:12", ["openssl", "zlib", "openssl", "none"])
            .unwrap();
        for i in [&idx, &full, &sub] {
            let (m, _) = i.match_version(Scheme::Deb, "Debian:12", "openssl", "3.0.9-1");
            let ids: Vec<_> = m
                .iter()
                .map(|m| i.advisory(m.advisory).id.clone())
                .collect();
            assert_eq!(ids, ["A", "B"]);
        }
        assert_eq!(sub.len(), 2);
        // An advisory that is not the first one alone: renumbered from 0.
        let alpine = c.subset("Alpine:v3.20", ["openssl"]).unwrap();
        assert_eq!(alpine.len(), 1);
        let e = alpine.entries("Alpine:v3.20", "openssl");
        assert_eq!(e.len(), 1);
        assert_eq!(alpine.advisory(e[0].advisory).id, "B");
        assert!(sub.entries("Alpine:v3.20", "openssl").is_empty());
        assert_eq!(built(), built(), "deterministic");
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let good = built();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            let e = CompiledIndex::open(bad, Some(&[7; 32])).unwrap_err();
            let expected = match at {
                0..8 => matches!(e, IndexError::BadMagic),
                8..12 => matches!(e, IndexError::Version { .. }),
                48..56 => matches!(
                    e,
                    IndexError::Truncated { .. } | IndexError::Trailing { .. }
                ),
                _ => matches!(e, IndexError::Checksum),
            };
            assert!(expected, "byte {at}: {e}");
        }
    }

    #[test]
    fn truncation_version_and_key_are_named() {
        let good = built();
        for n in [0, 4, 8, 50, HEADER_LEN, good.len() - 1] {
            let e = CompiledIndex::open(good[..n].to_vec(), None).unwrap_err();
            assert!(
                matches!(e, IndexError::BadMagic | IndexError::Truncated { .. }),
                "{n}: {e}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            CompiledIndex::open(long, None).unwrap_err(),
            IndexError::Trailing { extra: 1 }
        );
        // A later format, and format 1 (SHA-256 checksum) left by an older
        // patchbay: both named and rejected before the checksum is looked at.
        for other in [FORMAT_VERSION + 1, 1] {
            let mut v = good.clone();
            v[8..12].copy_from_slice(&other.to_le_bytes());
            let e = CompiledIndex::open(v, None).unwrap_err();
            assert_eq!(
                e,
                IndexError::Version {
                    found: other,
                    expected: FORMAT_VERSION
                }
            );
            assert!(
                e.to_string().contains(&format!("format version {other}")),
                "{e}"
            );
        }
        let e = CompiledIndex::open(good.clone(), Some(&[8; 32])).unwrap_err();
        assert!(matches!(e, IndexError::Stale { .. }), "{e}");
        assert!(CompiledIndex::open(good, None).is_ok());
    }

    #[test]
    fn keys_follow_every_input_and_the_versions() {
        let a = key_of("0.1.0", [("a", [1; 32]), ("b", [2; 32])]);
        assert_ne!(a, key_of("0.1.1", [("a", [1; 32]), ("b", [2; 32])]));
        assert_ne!(a, key_of("0.1.0", [("a", [1; 32]), ("b", [3; 32])]));
        assert_ne!(a, key_of("0.1.0", [("a", [1; 32])]));
        assert_ne!(a, key_of("0.1.0", [("ab", [1; 32]), ("", [2; 32])]));
        assert_eq!(a, key_of("0.1.0", [("a", [1; 32]), ("b", [2; 32])]));
    }

    proptest::proptest! {
        #[test]
        fn forged_payloads_never_panic(mut payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), small in 0u32..4) {
            // Small counts make the tables plausible so the records get read.
            if payload.len() >= COUNTS_LEN {
                for t in 0..TABLES {
                    let n = if t == NOTE { 1 } else { small };
                    payload[4 * t..4 * t + 4].copy_from_slice(&n.to_le_bytes());
                }
            }
            if let Ok(c) = CompiledIndex::open(seal([0; 32], &payload), None) {
                let _ = c.to_index();
                let _ = c.subset("Debian:12", ["openssl"]);
                let _ = c.kev("CVE-A");
                let _ = c.epss("CVE-A");
                let _ = c.note();
            }
        }
    }
}
