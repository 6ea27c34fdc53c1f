//! The local journal: `journal.jsonl` in the state directory.
//!
//! One JSON object per line, appended in one `write` and made durable with
//! `fdatasync` **before** the step it records is reported anywhere (stdout, the
//! server). Creating the file also fsyncs the directory, so the file itself
//! survives a crash. Each record carries the job's idempotency key and kind:
//!
//! ```text
//! {"ts":"…","job_key":"k1","kind":"apply","event":"started","data":{…request…}}
//! {"ts":"…","job_key":"k1","kind":"apply","event":"step","step":"plan","ok":true,"data":{…}}
//! {"ts":"…","job_key":"k1","kind":"apply","event":"finished","ok":true,"data":{…result…}}
//! ```
//!
//! A crash can tear only the last line (a write that reached the disk in part, or
//! a tail of zero bytes after a power loss). Reading drops such a tail, reports how
//! many bytes it dropped, and truncates the file back to its last complete line so
//! the next append starts cleanly; the dropped bytes were never reported, because
//! reporting waits for the fsync. A malformed line in the middle (which a crash
//! cannot produce) is skipped and reported by line number.
//!
//! A job whose `started` record has no `finished` record was interrupted: the
//! process died between the two ([`Journal::unfinished`]).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal's file name in the state directory.
pub const FILE: &str = "journal.jsonl";

/// Kinds of journalled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `apply`.
    Apply,
    /// `rollback`.
    Rollback,
}

impl JobKind {
    /// `apply` or `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Apply => "apply",
            JobKind::Rollback => "rollback",
        }
    }
}

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The job was accepted; `data` is the request.
    Started,
    /// One step ran; `step` names it.
    Step,
    /// The job's final result is `data`.
    Finished,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// The job's idempotency key.
    pub job_key: String,
    /// The job's kind.
    pub kind: JobKind,
    /// What happened.
    pub event: Event,
    /// The step's name (for `step` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Whether the step (or job) succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// Details.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Record {
    /// A record stamped now.
    pub fn new(
        job_key: &str,
        kind: JobKind,
        event: Event,
        step: Option<&str>,
        ok: Option<bool>,
        data: Value,
    ) -> Self {
        Record {
            ts: jiff::Timestamp::now().to_string(),
            job_key: job_key.to_owned(),
            kind,
            event,
            step: step.map(str::to_owned),
            ok,
            data,
        }
    }
}

/// What reading found besides records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Bytes of a torn last line that were dropped (0: none).
    pub torn_tail_bytes: usize,
    /// 1-based numbers of malformed complete lines that were skipped.
    pub corrupt_lines: Vec<usize>,
}

impl ReadReport {
    /// Whether reading found anything wrong.
    pub fn is_clean(&self) -> bool {
        self.torn_tail_bytes == 0 && self.corrupt_lines.is_empty()
    }
}

/// Parses journal bytes: the records, and where the last complete line ends.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, ReadReport, usize) {
    let mut records = Vec::new();
    let mut report = ReadReport::default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    report.torn_tail_bytes = bytes.len() - complete;
    for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) => report.corrupt_lines.push(i + 1),
        }
    }
    (records, report, complete)
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    records: Vec<Record>,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, reading every record.
    pub fn open(dir: &Path) -> anyhow::Result<(Journal, ReadReport)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(FILE);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening journal {}", path.display()))?;
        if !existed {
            file.sync_all()?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing directory {}", dir.display()))?;
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading journal {}", path.display()))?;
        let (records, report, complete) = parse(&bytes);
        if report.torn_tail_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = report.torn_tail_bytes, "journal has a torn last line (crash during a write); dropping it");
            file.set_len(complete as u64)
                .with_context(|| format!("truncating torn tail of {}", path.display()))?;
            file.sync_all()?;
        }
        if !report.corrupt_lines.is_empty() {
            tracing::warn!(path = %path.display(), lines = ?report.corrupt_lines, "journal has malformed lines; skipping them");
        }
        Ok((
            Journal {
                file,
                path,
                records,
            },
            report,
        ))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `rec` durably (write, then fdatasync) and keeps it in memory.
    pub fn append(&mut self, rec: Record) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&rec)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to journal {}", self.path.display()))?;
        self.records.push(rec);
        Ok(())
    }

    /// Every record read or appended, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Records of one job, in order.
    pub fn job(&self, kind: JobKind, key: &str) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(move |r| r.kind == kind && r.job_key == key)
    }

    /// The final record of a job, if it finished.
    pub fn finished(&self, kind: JobKind, key: &str) -> Option<&Record> {
        self.job(kind, key).find(|r| r.event == Event::Finished)
    }

    /// The last `step` record named `step` of a job.
    pub fn step(&self, kind: JobKind, key: &str, step: &str) -> Option<&Record> {
        self.job(kind, key)
            .filter(|r| r.event == Event::Step && r.step.as_deref() == Some(step))
            .last()
    }

    /// Jobs that started and never finished (the process died in between), in
    /// the order they started.
    pub fn unfinished(&self) -> Vec<(JobKind, String)> {
        let mut out: Vec<(JobKind, String)> = Vec::new();
        for r in &self.records {
            let k = (r.kind, r.job_key.clone());
            match r.event {
                Event::Started if !out.contains(&k) => out.push(k),
                Event::Finished => out.retain(|x| x != &k),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rec(key: &str, event: Event) -> Record {
        Record::new(key, JobKind::Apply, event, None, None, json!({"k": key}))
    }

    #[test]
    fn append_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, rep) = Journal::open(dir.path()).unwrap();
        assert!(rep.is_clean());
        j.append(rec("a", Event::Started)).unwrap();
        j.append(rec("a", Event::Finished)).unwrap();
        j.append(rec("b", Event::Started)).unwrap();
        drop(j);
        let (j, rep) = Journal::open(dir.path()).unwrap();
        assert!(rep.is_clean());
        assert_eq!(j.records().len(), 3);
        assert!(j.finished(JobKind::Apply, "a").is_some());
        assert!(j.finished(JobKind::Rollback, "a").is_none());
        assert_eq!(j.unfinished(), vec![(JobKind::Apply, "b".to_string())]);
    }

    #[test]
    fn torn_tail_is_dropped_reported_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.append(rec("a", Event::Started)).unwrap();
        drop(j);
        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"ts":"2026-11-24T00:00:00Z","job_key":"a","kind":"apply","event":"fini"#)
            .unwrap();
        drop(f);
        let (mut j, rep) = Journal::open(dir.path()).unwrap();
        assert_eq!(rep.torn_tail_bytes, 71);
        assert_eq!(j.records().len(), 1);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "file truncated to the last full line"
        );
        j.append(rec("a", Event::Finished)).unwrap();
        drop(j);
        let (j, rep) = Journal::open(dir.path()).unwrap();
        assert!(rep.is_clean());
        assert_eq!(j.records().len(), 2);
        assert!(j.unfinished().is_empty());
    }

    #[test]
    fn zero_filled_tail_and_corrupt_middle_line() {
        let mut bytes = serde_json::to_vec(&rec("a", Event::Started)).unwrap();
        bytes.extend_from_slice(b"\nnot json\n");
        bytes.extend(serde_json::to_vec(&rec("a", Event::Finished)).unwrap());
        bytes.push(b'\n');
        bytes.extend([0u8; 100]);
        let (records, rep, complete) = parse(&bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(rep.corrupt_lines, vec![2]);
        assert_eq!(rep.torn_tail_bytes, 100);
        assert_eq!(complete, bytes.len() - 100);
    }

    proptest! {
        /// Any prefix of a valid journal (a crash at any byte) parses without
        /// error to exactly the records whose lines are complete.
        #[test]
        fn every_prefix_reads(keys in proptest::collection::vec("[a-z0-9]{1,8}", 1..8), cut in 0usize..2000) {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for k in &keys {
                bytes.extend(serde_json::to_vec(&rec(k, Event::Started)).unwrap());
                bytes.push(b'\n');
                ends.push(bytes.len());
            }
            let cut = cut.min(bytes.len());
            let (records, rep, complete) = parse(&bytes[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            prop_assert_eq!(records.len(), whole);
            prop_assert!(rep.corrupt_lines.is_empty());
            prop_assert_eq!(complete + rep.torn_tail_bytes, cut);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = parse(&bytes);
        }
    }
}
