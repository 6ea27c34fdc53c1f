//! Helpers shared by the data-driven tests.

use std::cmp::Ordering;
use std::path::PathBuf;

/// `fixtures/<rel>` of the workspace.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

/// The text of `fixtures/version-vectors/<rel>`.
pub fn vectors(rel: &str) -> String {
    let path = fixture(&format!("version-vectors/{rel}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A data row with its 1-based line number.
pub struct Row {
    pub line: usize,
    pub cols: Vec<String>,
}

/// The tab-separated rows of a vectors file, without `#` comment lines and blank
/// lines.
pub fn tsv(rel: &str) -> Vec<Row> {
    vectors(rel)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| Row {
            line: i + 1,
            cols: l.split('\t').map(str::to_owned).collect(),
        })
        .collect()
}

/// One `a op b` row of an osv-scalibr `semantic/testdata` file.
pub struct Cmp {
    pub line: usize,
    pub left: String,
    pub op: Ordering,
    pub right: String,
}

/// The comparison rows of an osv-scalibr file (`a op b`, `#` comments).
pub fn scalibr(rel: &str) -> Vec<Cmp> {
    vectors(&format!("osv-scalibr-semantic/{rel}"))
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "{rel}:{}: {l:?}", i + 1);
            Cmp {
                line: i + 1,
                left: parts[0].to_owned(),
                op: op(parts[1]),
                right: parts[2].to_owned(),
            }
        })
        .collect()
}

/// `<`, `=` or `>` as an ordering.
pub fn op(s: &str) -> Ordering {
    match s {
        "<" => Ordering::Less,
        "=" => Ordering::Equal,
        ">" => Ordering::Greater,
        _ => panic!("unknown operator {s:?}"),
    }
}

/// An ordering as `<`, `=` or `>`.
pub fn sym(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    }
}

/// A small deterministic PRNG (SplitMix64), so that sampled pairs are the same on
/// every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Sorted-neighbour pairs plus `random` random pairs of `items`, sorted first with
/// `cmp` (the implementation under test), so that the oracle checks every adjacent
/// decision of our sort as well as far-apart pairs.
pub fn pairs<T: Clone>(
    items: &[T],
    cmp: impl Fn(&T, &T) -> Ordering,
    random: usize,
    rng: &mut Rng,
) -> Vec<(T, T)> {
    let mut sorted = items.to_vec();
    sorted.sort_by(&cmp);
    let mut out: Vec<(T, T)> = sorted
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    if !items.is_empty() {
        for _ in 0..random {
            out.push((rng.pick(items).clone(), rng.pick(items).clone()));
        }
    }
    out
}

/// Python's `/usr/bin/python3` (the system one, where python3-apt and python3-rpm
/// live, not a pyenv shim).
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether the system python can import `module`.
pub fn python_has(module: &str) -> bool {
    std::process::Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a python script over a file of tab-separated pairs (one per line) and
/// returns its stdout lines (one `-1`/`0`/`1` per pair).
pub fn python_over_pairs(script: &str, pairs: &[(String, String)]) -> Vec<Ordering> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    for (a, b) in pairs {
        assert!(!a.contains(['\t', '\n']) && !b.contains(['\t', '\n']));
        writeln!(file, "{a}\t{b}").expect("write pairs");
    }
    file.flush().expect("flush pairs");
    let out = std::process::Command::new(PYTHON)
        .args(["-c", script])
        .arg(file.path())
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        out.status.success(),
        "python oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 oracle output");
    let res: Vec<Ordering> = text
        .lines()
        .map(|l| match l.trim() {
            "-1" => Ordering::Less,
            "0" => Ordering::Equal,
            "1" => Ordering::Greater,
            other => panic!("unexpected oracle output {other:?}"),
        })
        .collect();
    assert_eq!(res.len(), pairs.len(), "oracle answered every pair");
    res
}

/// `PATCHBAY_ORACLE_SCALE` (default 1): multiplies the number of pairs the oracle
/// tests sample, for an occasional deeper run (`PATCHBAY_ORACLE_SCALE=20`).
pub fn oracle_scale() -> usize {
    std::env::var("PATCHBAY_ORACLE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}
