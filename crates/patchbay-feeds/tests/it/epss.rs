//! EPSS files: the official head sample, the KEV_EPSS layout, a full-size synthetic
//! daily file.

use crate::common::{fixture, import, import_path};
use patchbay_feeds::epss::{self, EpssFormat, EpssScore};
use patchbay_feeds::source::FeedSink;
use patchbay_feeds::{FeedErrorKind, RecordError};
use std::io::Write;
use std::time::Instant;

fn read_all(bytes: &[u8]) -> (epss::EpssSummary, Vec<EpssScore>, Vec<RecordError>) {
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let summary = epss::read(bytes, |r| rows.push(r), |e| errors.push(e)).unwrap();
    (summary, rows, errors)
}

#[test]
fn official_head40() {
    let (summary, rows, errors) = read_all(&fixture("epss/epss_scores-2026-09-29-head40.csv"));
    assert!(errors.is_empty());
    assert_eq!(summary.meta.format, EpssFormat::Official);
    assert_eq!(summary.meta.model_version.as_deref(), Some("v2026.06.15"));
    assert_eq!(
        summary.meta.score_date.unwrap().to_string(),
        "2026-09-29T12:00:22Z"
    );
    assert_eq!((summary.rows, summary.skipped), (40, 0));
    assert_eq!(rows.len(), 40);
    assert_eq!(
        rows[0],
        EpssScore {
            cve: "CVE-1999-0001".into(),
            epss: 0.03351,
            percentile: 0.88255,
            cvss3: None
        }
    );
    assert_eq!(rows[1].epss, 0.27858);
}

/// The same sample gzip-compressed and without its comment line.
#[test]
fn gzip_and_no_comment_line() {
    let text = fixture("epss/epss_scores-2026-09-29-head40.csv");
    let without_comment = &text[text.iter().position(|&b| b == b'\n').unwrap() + 1..];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(without_comment).unwrap();
    let gz = gz.finish().unwrap();
    let (summary, rows, errors) = read_all(&gz);
    assert!(errors.is_empty());
    assert_eq!(summary.meta.model_version, None);
    assert_eq!(summary.meta.score_date, None);
    assert_eq!(rows.len(), 40);
}

/// jgamblin/KEV_EPSS (first 100 rows): EPSS plus NVD's CVSS v3 base score.
#[test]
fn kev_epss_layout() {
    let (summary, sink) = import("epss/epss_kev_nvd-2026-08-22.head100.csv");
    assert_eq!(
        (
            summary.epss.files,
            summary.epss.records,
            summary.epss.skipped
        ),
        (1, 100, 0)
    );
    assert_eq!(sink.epss_meta[0].format, EpssFormat::KevEpss);
    assert_eq!(
        sink.epss[0],
        EpssScore {
            cve: "CVE-2025-62593".into(),
            epss: 0.01015,
            percentile: 0.60644,
            cvss3: Some(8.8)
        }
    );
    assert_eq!(sink.epss.iter().filter(|r| r.cvss3.is_none()).count(), 2);
}

#[test]
fn other_csv_is_refused_by_name() {
    let e = epss::read(&b"name,score\nx,1\n"[..], |_| {}, |_| {}).unwrap_err();
    assert_eq!(e.kind(), FeedErrorKind::UnknownFormat);
    // And a CSV file named directly is refused by the IO layer, naming it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    std::fs::write(&path, "name,score\nx,1\n").unwrap();
    let e = patchbay_feeds::read_path(&path, &mut patchbay_feeds::Collect::default()).unwrap_err();
    assert_eq!(e.kind(), FeedErrorKind::UnknownFormat);
    assert!(e.to_string().contains("scores.csv"), "{e}");
}

struct Count {
    rows: u64,
    sum: f64,
    errors: u64,
}

impl FeedSink for Count {
    fn on_epss(&mut self, score: EpssScore) {
        self.rows += 1;
        self.sum += score.epss;
    }
    fn on_error(&mut self, _: RecordError) {
        self.errors += 1;
    }
}

/// A synthetic file the size of the real daily one (300,000 rows, gzip): it is
/// streamed, row by row. Prints the time; asserts only the counts.
#[test]
fn full_size_synthetic_daily_file() {
    const ROWS: u64 = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epss_scores-2026-09-29.csv.gz");
    let started = Instant::now();
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        writeln!(
            gz,
            "#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z"
        )
        .unwrap();
        writeln!(gz, "cve,epss,percentile").unwrap();
        for i in 0..ROWS {
            let year = 1999 + i / 20_000;
            let epss = (i % 100_000) as f64 / 100_000.0;
            writeln!(
                gz,
                "CVE-{year}-{:05},{epss:.5},{:.5}",
                i % 20_000 + 1000,
                1.0 - epss
            )
            .unwrap();
        }
        gz.finish().unwrap().flush().unwrap();
    }
    let written = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();

    let started = Instant::now();
    let mut sink = Count {
        rows: 0,
        sum: 0.0,
        errors: 0,
    };
    let summary = patchbay_feeds::read_path(&path, &mut sink).unwrap();
    let read = started.elapsed();
    eprintln!(
        "EPSS synthetic: {ROWS} rows, {size} bytes gzip, written in {written:?}, imported in {read:?}"
    );
    assert_eq!(
        (
            summary.epss.files,
            summary.epss.records,
            summary.epss.skipped
        ),
        (1, ROWS, 0)
    );
    assert_eq!((sink.rows, sink.errors), (ROWS, 0));
    assert!(sink.sum > 0.0);

    // The pure reader over the same file.
    let (mut rows, mut errors) = (0u64, 0u64);
    let s = epss::read(
        std::fs::File::open(&path).unwrap(),
        |_| rows += 1,
        |_| errors += 1,
    )
    .unwrap();
    assert_eq!((s.rows, rows, errors), (ROWS, ROWS, 0));
    assert_eq!(s.meta.model_version.as_deref(), Some("v2026.06.15"));
}

/// A truncated gzip stream: the rows before the cut are delivered, then the file is
/// reported as an error and the import still returns its summary.
#[test]
fn truncated_gzip() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(gz, "cve,epss,percentile").unwrap();
    for i in 0..5000 {
        writeln!(gz, "CVE-2020-{:05},0.{i:05},0.5", 10000 + i).unwrap();
    }
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.csv.gz");
    std::fs::write(&path, &gz[..gz.len() * 2 / 3]).unwrap();
    let (summary, sink) = import_path(&path);
    assert_eq!(summary.epss.files, 1);
    assert_eq!(sink.errors.len(), 1, "{:?}", sink.errors);
    assert!(
        sink.errors[0].file.ends_with("cut.csv.gz"),
        "{}",
        sink.errors[0]
    );
    assert!(
        sink.errors[0].message.contains("read error"),
        "{}",
        sink.errors[0]
    );
    assert!(
        (1000..5000).contains(&summary.epss.records),
        "{} {:?}",
        summary.epss.records,
        sink.errors
    );
    assert_eq!(sink.epss.len() as u64, summary.epss.records);

    // Cut before the kind could be read: the file named directly is refused.
    std::fs::write(&path, &gz[..30]).unwrap();
    let e = patchbay_feeds::read_path(&path, &mut patchbay_feeds::Collect::default()).unwrap_err();
    assert_eq!(e.kind(), FeedErrorKind::Io);
    assert!(e.to_string().contains("cut.csv.gz"), "{e}");
}
