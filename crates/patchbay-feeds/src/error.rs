//! Errors: [`FeedError`] (an input that could not be read at all) and
//! [`RecordError`] (one record that was skipped while the rest were imported).

use std::fmt;

/// The broad class of a [`FeedError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FeedErrorKind {
    /// The path does not exist.
    NotFound,
    /// Reading failed (permissions, a truncated gzip stream, a broken zip directory).
    Io,
    /// The input is not one of the feed formats this crate reads.
    UnknownFormat,
    /// The input is of a known format but its content is invalid.
    Malformed,
}

/// An input that could not be read: a whole document, file or stream.
///
/// `Display` names the file (when known), the record id (when known), the line
/// (when known) and the problem, e.g.
/// `fixtures/x.json: record DSA-1-1: affected[0]: range 0 has no events`.
#[derive(Debug)]
pub struct FeedError {
    kind: FeedErrorKind,
    file: Option<String>,
    record: Option<String>,
    line: Option<u64>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl FeedError {
    pub(crate) fn new(kind: FeedErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            record: None,
            line: None,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(FeedErrorKind::Malformed, message)
    }

    pub(crate) fn unknown_format(file: &str, message: impl Into<String>) -> Self {
        Self::new(FeedErrorKind::UnknownFormat, message).in_file(file)
    }

    pub(crate) fn io(file: &str, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            FeedErrorKind::NotFound
        } else {
            FeedErrorKind::Io
        };
        let mut e = Self::new(kind, format!("read error: {err}")).in_file(file);
        e.source = Some(Box::new(err));
        e
    }

    /// Sets the file if none is set yet (an inner layer may know a more precise
    /// name, such as a zip member).
    pub(crate) fn in_file(mut self, file: &str) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_owned());
        }
        self
    }

    pub(crate) fn with_record(mut self, record: Option<String>) -> Self {
        if self.record.is_none() {
            self.record = record;
        }
        self
    }

    pub(crate) fn at_line(mut self, line: u64) -> Self {
        if self.line.is_none() {
            self.line = Some(line);
        }
        self
    }

    /// The broad class of the error.
    pub fn kind(&self) -> FeedErrorKind {
        self.kind
    }

    /// The file (or `archive.zip!/member.json`), when known.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The record id (an OSV `id`, a KEV `cveID`), when known.
    pub fn record(&self) -> Option<&str> {
        self.record.as_deref()
    }

    /// The 1-based line of the input, when known.
    pub fn line(&self) -> Option<u64> {
        self.line
    }

    /// The problem, without file, record or line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// This error as a [`RecordError`]: what a directory import reports when one of
    /// its files cannot be read, before going on with the next one.
    pub fn to_record_error(&self) -> RecordError {
        RecordError {
            file: self.file.clone().unwrap_or_default(),
            record: self.record.clone(),
            line: self.line,
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            self.file.as_deref().unwrap_or(""),
            self.record.as_deref(),
            self.line,
            &self.message,
        )
    }
}

impl std::error::Error for FeedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// One record (an OSV advisory, a KEV entry, an EPSS row) or one file that was
/// skipped; everything else in the import went on.
///
/// The pure parsers leave `file` empty; the IO layer ([`crate::source`]) fills it in
/// with the path, and for zip members with `archive.zip!/member.json`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RecordError {
    /// The path of the file, `archive.zip!/member.json` for a zip member, or empty
    /// when a pure parser was given bytes.
    pub file: String,
    /// The record id (OSV `id`, KEV `cveID`, EPSS `cve`) when it could be read.
    pub record: Option<String>,
    /// The 1-based line of the input (JSONL, CSV), when meaningful.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl RecordError {
    pub(crate) fn new(
        record: Option<String>,
        line: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: String::new(),
            record,
            line,
            message: message.into(),
        }
    }

    pub(crate) fn in_file(mut self, file: &str) -> Self {
        if self.file.is_empty() {
            self.file = file.to_owned();
        }
        self
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.file,
            self.record.as_deref(),
            self.line,
            &self.message,
        )
    }
}

impl std::error::Error for RecordError {}

fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: &str,
    record: Option<&str>,
    line: Option<u64>,
    message: &str,
) -> fmt::Result {
    if !file.is_empty() {
        write!(f, "{file}")?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
    } else if let Some(line) = line {
        write!(f, "line {line}: ")?;
    }
    if let Some(record) = record {
        write!(f, "record {record}: ")?;
    }
    f.write_str(message)
}
