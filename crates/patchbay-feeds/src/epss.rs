//! FIRST.org EPSS scores, read as a stream.
//!
//! The official daily file (`epss_scores-YYYY-MM-DD.csv.gz`, about 300,000 rows) is
//! a comment line `#model_version:v2025.03.14,score_date:2025-03-14T00:00:00+0000`,
//! a header `cve,epss,percentile`, and one row per CVE. The comment line may be
//! absent; gzip is detected by its magic bytes and decompressed on the fly.
//!
//! A second, unofficial format is accepted because it is what the shared data set
//! has for KEV CVEs: the CSV of github.com/jgamblin/KEV_EPSS, header
//! `CVE,CVSS3,EPSS,EPSS Percentile,Description,Vendor,Product`, whose NVD CVSS v3
//! base score is passed on in [`EpssScore::cvss3`]. Any other header is refused
//! with an "unknown CSV format" error.
//!
//! Rows are checked one at a time (CVE id format, `0 ≤ epss ≤ 1`,
//! `0 ≤ percentile ≤ 1`, `0 ≤ cvss3 ≤ 10`); a bad row is reported with its line
//! number and skipped. Each row costs one allocation: the CVE id string.

use crate::cve;
use crate::error::{FeedError, FeedErrorKind, RecordError};
use flate2::read::MultiGzDecoder;
use jiff::Timestamp;
use serde::Serialize;
use std::io::{BufRead, BufReader, Cursor, Read};

/// Which CSV layout a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpssFormat {
    /// FIRST.org's `cve,epss,percentile`, with or without the comment line.
    Official,
    /// jgamblin/KEV_EPSS `CVE,CVSS3,EPSS,EPSS Percentile,…`.
    KevEpss,
}

/// What the file says about itself (from the comment line of the official format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpssMeta {
    /// The layout.
    pub format: EpssFormat,
    /// `model_version`, e.g. `v2025.03.14`.
    pub model_version: Option<String>,
    /// `score_date`.
    pub score_date: Option<Timestamp>,
}

/// One row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpssScore {
    /// The CVE id (upper-case `CVE-`).
    pub cve: String,
    /// Probability of exploitation activity in the next 30 days, 0–1.
    pub epss: f64,
    /// Percentile of `epss` among all scored CVEs, 0–1.
    pub percentile: f64,
    /// NVD CVSS v3 base score (only in the KEV_EPSS format; `None` when empty).
    pub cvss3: Option<f64>,
}

/// The outcome of reading one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpssSummary {
    /// The file's metadata.
    pub meta: EpssMeta,
    /// Rows passed to `on_row`.
    pub rows: u64,
    /// Rows reported to `on_error` and skipped.
    pub skipped: u64,
}

/// Reads an EPSS CSV (plain or gzip) and calls `on_row` for every valid row and
/// `on_error` for every bad one (with its 1-based line number).
///
/// Fails on an unknown header, an invalid comment line, or a read error (such as a
/// truncated gzip stream); rows before the failure have already been delivered.
pub fn read<R: Read>(
    r: R,
    on_row: impl FnMut(EpssScore),
    on_error: impl FnMut(RecordError),
) -> Result<EpssSummary, FeedError> {
    Reader::new(r)?.read_rows(on_row, on_error)
}

/// A reader whose metadata is known before its rows are read.
pub struct Reader<'a> {
    meta: EpssMeta,
    columns: Columns,
    /// Lines consumed before the CSV reader started (comment and header).
    line_offset: u64,
    csv: csv::Reader<Box<dyn BufRead + 'a>>,
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    cve: usize,
    epss: usize,
    percentile: usize,
    cvss3: Option<usize>,
    len: usize,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

const FIRST_LINE_LIMIT: u64 = 64 * 1024;

/// Whether `prefix` (the first bytes of a decompressed file) starts like an EPSS
/// CSV this module reads: the comment line or one of the two headers.
pub(crate) fn sniff(prefix: &[u8]) -> bool {
    let prefix = prefix.strip_prefix(b"\xef\xbb\xbf").unwrap_or(prefix);
    if prefix.starts_with(b"#model_version") || prefix.starts_with(b"#score_date") {
        return true;
    }
    let line = prefix.split(|&b| b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(line)
        .ok()
        .is_some_and(|l| columns(l).is_some())
}

fn columns(header: &str) -> Option<(EpssFormat, Columns)> {
    let names: Vec<String> = header
        .trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let find = |n: &str| names.iter().position(|c| c == n);
    if let (Some(cve), Some(epss), Some(percentile)) =
        (find("cve"), find("epss"), find("percentile"))
    {
        return Some((
            EpssFormat::Official,
            Columns {
                cve,
                epss,
                percentile,
                cvss3: None,
                len: names.len(),
            },
        ));
    }
    if let (Some(cve), Some(cvss3), Some(epss), Some(percentile)) = (
        find("cve"),
        find("cvss3"),
        find("epss"),
        find("epss percentile"),
    ) {
        return Some((
            EpssFormat::KevEpss,
            Columns {
                cve,
                epss,
                percentile,
                cvss3: Some(cvss3),
                len: names.len(),
            },
        ));
    }
    None
}

fn read_prefix(r: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_line(r: &mut dyn BufRead) -> Result<Vec<u8>, FeedError> {
    let mut line = Vec::new();
    r.take(FIRST_LINE_LIMIT)
        .read_until(b'\n', &mut line)
        .map_err(|e| FeedError::new(FeedErrorKind::Io, format!("read error: {e}")))?;
    Ok(line)
}

impl<'a> Reader<'a> {
    /// Reads the comment line (if any) and the header. Gzip input is decompressed.
    pub fn new<R: Read + 'a>(r: R) -> Result<Self, FeedError> {
        let mut r = r;
        let magic = read_prefix(&mut r, 2)
            .map_err(|e| FeedError::new(FeedErrorKind::Io, format!("read error: {e}")))?;
        let gz = magic == [0x1f, 0x8b];
        let chained = Cursor::new(magic).chain(r);
        let mut input: Box<dyn BufRead + 'a> = if gz {
            Box::new(BufReader::with_capacity(
                64 * 1024,
                MultiGzDecoder::new(chained),
            ))
        } else {
            Box::new(BufReader::with_capacity(64 * 1024, chained))
        };

        let mut line = read_line(&mut input)?;
        if line.starts_with(b"\xef\xbb\xbf") {
            line.drain(..3);
        }
        let mut line_offset = 1;
        let mut model_version = None;
        let mut score_date = None;
        if line.first() == Some(&b'#') {
            let text = String::from_utf8_lossy(&line);
            for item in text[1..].trim().split(',') {
                let Some((key, value)) = item.split_once(':') else {
                    continue;
                };
                match key.trim() {
                    "model_version" => model_version = Some(value.trim().to_owned()),
                    "score_date" => {
                        let value = value.trim();
                        score_date = Some(value.parse::<Timestamp>().map_err(|e| {
                            FeedError::malformed(format!(
                                "EPSS comment line: score_date {value:?} is not a timestamp: {e}"
                            ))
                            .at_line(1)
                        })?);
                    }
                    _ => {}
                }
            }
            line = read_line(&mut input)?;
            line_offset = 2;
        }
        let header = String::from_utf8_lossy(&line);
        let (format, columns) = columns(&header).ok_or_else(|| {
            let shown: String = header.trim_end().chars().take(80).collect();
            FeedError::new(
                FeedErrorKind::UnknownFormat,
                format!(
                    "unknown CSV format: header {shown:?} is neither `cve,epss,percentile` (FIRST EPSS) nor `CVE,CVSS3,EPSS,EPSS Percentile,…` (KEV_EPSS)"
                ),
            )
            .at_line(line_offset)
        })?;
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        Ok(Self {
            meta: EpssMeta {
                format,
                model_version,
                score_date,
            },
            columns,
            line_offset,
            csv,
        })
    }

    /// The file's metadata.
    pub fn meta(&self) -> &EpssMeta {
        &self.meta
    }

    /// Reads every row; see [`read`].
    pub fn read_rows(
        mut self,
        mut on_row: impl FnMut(EpssScore),
        mut on_error: impl FnMut(RecordError),
    ) -> Result<EpssSummary, FeedError> {
        let mut record = csv::ByteRecord::new();
        let (mut rows, mut skipped) = (0u64, 0u64);
        loop {
            match self.csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = self.line_offset + record.position().map_or(0, |p| p.line());
                    match row(&record, self.columns) {
                        Ok(score) => {
                            rows += 1;
                            on_row(score);
                        }
                        Err((cve, message)) => {
                            skipped += 1;
                            on_error(RecordError::new(cve, Some(line), message));
                        }
                    }
                }
                Err(e) => {
                    let line = e.position().map(|p| self.line_offset + p.line());
                    let mut err = FeedError::new(FeedErrorKind::Io, format!("read error: {e}"));
                    if let Some(line) = line {
                        err = err.at_line(line);
                    }
                    return Err(err);
                }
            }
        }
        Ok(EpssSummary {
            meta: self.meta,
            rows,
            skipped,
        })
    }
}

fn field(record: &csv::ByteRecord, i: usize) -> Option<&str> {
    record
        .get(i)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::trim)
}

fn unit(name: &str, s: Option<&str>, max: f64) -> Result<f64, String> {
    let s = s.ok_or_else(|| format!("no {name}"))?;
    match s.parse::<f64>() {
        Ok(v) if (0.0..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("{name} {s} is outside 0..={max}")),
        Err(_) => Err(format!("{name} {s:?} is not a number")),
    }
}

fn row(record: &csv::ByteRecord, c: Columns) -> Result<EpssScore, (Option<String>, String)> {
    let raw_cve = field(record, c.cve);
    let id = || raw_cve.filter(|s| !s.is_empty()).map(str::to_owned);
    if record.len() < c.len {
        return Err((
            id(),
            format!("expected {} columns, found {}", c.len, record.len()),
        ));
    }
    let cve = match raw_cve {
        Some(s) if cve::is_cve_id(s) => {
            if s.starts_with("CVE-") {
                s.to_owned()
            } else {
                cve::normalize(s).unwrap_or_default()
            }
        }
        Some(s) => return Err((id(), format!("{s:?} is not a CVE id"))),
        None => return Err((None, "the CVE column is not UTF-8".into())),
    };
    let fail = |m: String| (Some(cve.clone()), m);
    let epss = unit("epss", field(record, c.epss), 1.0).map_err(fail)?;
    let percentile = unit("percentile", field(record, c.percentile), 1.0).map_err(fail)?;
    let cvss3 = match c.cvss3.map(|i| field(record, i)) {
        None | Some(Some("")) => None,
        Some(s) => Some(unit("CVSS3", s, 10.0).map_err(fail)?),
    };
    Ok(EpssScore {
        cve,
        epss,
        percentile,
        cvss3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<(EpssSummary, Vec<EpssScore>, Vec<RecordError>), FeedError> {
        let (mut rows, mut errors) = (Vec::new(), Vec::new());
        let s = read(input, |r| rows.push(r), |e| errors.push(e))?;
        Ok((s, rows, errors))
    }

    #[test]
    fn official_with_comment() {
        let (s, rows, errors) = all(
            b"#model_version:v2025.03.14,score_date:2025-03-14T00:00:00+0000\ncve,epss,percentile\nCVE-1999-0001,0.01,0.5\nCVE-1999-0002,1.7,0.5\n",
        )
        .unwrap();
        assert_eq!(s.meta.model_version.as_deref(), Some("v2025.03.14"));
        assert_eq!(
            s.meta.score_date.unwrap().to_string(),
            "2025-03-14T00:00:00Z"
        );
        assert_eq!((s.rows, s.skipped), (1, 1));
        assert_eq!(rows[0].cve, "CVE-1999-0001");
        assert_eq!(errors[0].line, Some(4));
        assert_eq!(errors[0].record.as_deref(), Some("CVE-1999-0002"));
        assert!(errors[0].message.contains("1.7"), "{}", errors[0]);
    }

    #[test]
    fn without_comment_and_crlf() {
        let (s, rows, errors) = all(b"cve,epss,percentile\r\nCVE-1999-0001,0.01,0.5\r\n").unwrap();
        assert_eq!(s.meta.model_version, None);
        assert_eq!(rows.len(), 1);
        assert!(errors.is_empty());
    }

    #[test]
    fn unknown_header() {
        let e = all(b"a,b,c\n1,2,3\n").unwrap_err();
        assert_eq!(e.kind(), FeedErrorKind::UnknownFormat);
        assert!(e.to_string().contains("unknown CSV format"), "{e}");
    }

    #[test]
    fn kev_epss() {
        let (s, rows, _) = all(
            b"CVE,CVSS3,EPSS,EPSS Percentile,Description,Vendor,Product\nCVE-2025-0001,8.8,0.01,0.6,\"a, b\",V,P\nCVE-2025-0002,,0.02,0.7,d,V,P\n",
        )
        .unwrap();
        assert_eq!(s.meta.format, EpssFormat::KevEpss);
        assert_eq!(rows[0].cvss3, Some(8.8));
        assert_eq!(rows[1].cvss3, None);
    }
}
