//! Advisory feed readers for assessment: OSV advisories, CISA's KEV catalog, FIRST
//! EPSS scores, CVSS base scores, and CVSS scores per CVE with their source (NVD
//! and CVE JSON 5 records) — read from local files only. Patchbay never
//! fetches a feed from the network; air-gapped sites copy the files in.
//!
//! # Layout
//! - [`osv`], [`kev`], [`epss`], [`cvss`], [`scores`]: **pure** parsers over bytes (EPSS over a
//!   `Read` stream). Each reads `Raw*` serde structs and builds validated domain
//!   types ("parse, don't validate"); none does IO of its own or panics on any
//!   input (property tests).
//! - [`source`]: the thin IO layer. [`source::read_path`] walks a file, directory,
//!   zip or gzip, detects each file's kind by content, and hands records to a
//!   [`source::FeedSink`]. A malformed record is reported with its file and record
//!   id and skipped alone.
//! - [`csaf`]: CSAF 2.0 advisories and VEX documents, validated whole (a bad
//!   document is refused naming its JSON path).
//! - [`cve`]: CVE id checks shared by the parsers.
//! - [`FeedError`] (an input that cannot be read) and [`RecordError`] (one skipped
//!   record).
//!
//! The model is independent of `patchbay-version`: ecosystems are kept as written
//! and versions as strings; comparing them is the matcher's job.
#![forbid(unsafe_code)]

pub mod csaf;
pub mod cve;
pub mod cvss;
pub mod epss;
mod error;
pub mod kev;
pub mod osv;
pub mod scores;
pub mod source;

pub use error::{FeedError, FeedErrorKind, RecordError};
pub use source::{Collect, Counts, FeedSink, ImportSummary, read_bytes, read_path};
