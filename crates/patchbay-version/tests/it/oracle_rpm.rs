//! Differential tests against the real rpm (Debian's python3-rpm 4.18, in the system
//! python). This test fails — it does not skip — when python3-rpm is missing:
//! install it with `apt-get install -y rpm python3-rpm`.
//!
//! Labels: the EVRs of `fixtures/inventories/rhel-family/*.rpm-qa.txt`, the distinct
//! event versions of the AlmaLinux 8/9/10 OSV feeds
//! (`fixtures/version-vectors/derived/almalinux-osv-event-versions.txt`) and the
//! ASCII versions of the rpm vector files; pairs are their sorted neighbours (as
//! sorted by us), random pairs and near-miss mutations, compared with
//! `rpm.labelCompare(a, b)` on the strings (so rpm parses them too). On top,
//! random strings over separator-heavy alphabets (including `~`, `^` and non-ASCII)
//! test the segment algorithm alone, through the release slot of
//! `rpm.labelCompare(("0", "1", a), ("0", "1", b))`. Everything goes through one
//! python invocation.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use patchbay_version::rpm::{Evr, rpmvercmp};
use patchbay_version::{Scheme, compare};

use crate::common::{
    PYTHON, Rng, fixture, oracle_scale, pairs, python_has, scalibr, sym, tsv, vectors,
};

const ORACLE: &str = r#"
import sys, rpm
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    kind, a, b = line.rstrip("\n").split("\t")
    if kind == "L":
        r = rpm.labelCompare(a, b)
    else:
        r = rpm.labelCompare(("0", "1", a), ("0", "1", b))
    out.append(str((r > 0) - (r < 0)))
print("\n".join(out))
"#;

fn labels() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in ["oraclelinux-8-slim.rpm-qa.txt", "ubi-7.rpm-qa.txt"] {
        let text =
            std::fs::read_to_string(fixture(&format!("inventories/rhel-family/{f}"))).unwrap();
        for line in text.lines() {
            if let Some(evr) = line.split('\t').nth(1) {
                out.insert(evr.to_owned());
            }
        }
    }
    for line in vectors("derived/almalinux-osv-event-versions.txt").lines() {
        out.insert(line.to_owned());
    }
    for r in tsv("rpm-rpmvercmp-at.tsv") {
        out.insert(r.cols[0].clone());
        out.insert(r.cols[2].clone());
    }
    for c in scalibr("redhat-versions.txt") {
        out.insert(c.left);
        out.insert(c.right);
    }
    out.retain(|v| v.parse::<Evr>().is_ok());
    out
}

fn mutations(v: &str, rng: &mut Rng) -> Vec<String> {
    let mut m = vec![
        format!("{v}~1"),
        format!("{v}^1"),
        format!("{v}.1"),
        format!("{v}a"),
        format!("{v}_1"),
        format!("{v}-1"),
        format!("1:{v}"),
    ];
    let digits: Vec<usize> = v
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    if !digits.is_empty() {
        let i = *rng.pick(&digits);
        m.push(format!("{}0{}", &v[..i], &v[i..]));
        let d = v.as_bytes()[i];
        m.push(format!(
            "{}{}{}",
            &v[..i],
            if d == b'9' { '0' } else { char::from(d + 1) },
            &v[i + 1..]
        ));
    }
    for (from, to) in [
        (".", "_"),
        (".", "~"),
        (".", "^"),
        ("-", "."),
        ("el", "ael"),
    ] {
        if let Some(p) = v.rfind(from) {
            m.push(format!("{}{}{}", &v[..p], to, &v[p + from.len()..]));
        }
    }
    if let Some((_, rest)) = v.split_once(':') {
        m.push(rest.to_owned());
    }
    m.into_iter().filter(|s| s.parse::<Evr>().is_ok()).collect()
}

fn random_string(rng: &mut Rng, alphabet: &[&str], max: usize) -> String {
    (0..rng.below(max + 1))
        .map(|_| *rng.pick(alphabet))
        .collect()
}

#[test]
fn rpm_oracle() {
    assert!(
        python_has("rpm"),
        "python3-rpm is not importable by {PYTHON}: install it with `apt-get install -y rpm python3-rpm` \
         (this test does not skip)"
    );
    let scale = oracle_scale();
    let mut rng = Rng(0x0072_706d);
    let all: Vec<String> = labels().into_iter().collect();

    let cmp = |a: &String, b: &String| compare(Scheme::Rpm, a, b).unwrap();
    let mut label_pairs = pairs(&all, cmp, 4000 * scale, &mut rng);
    let base = label_pairs.len();
    for _ in 0..400 * scale {
        let v = rng.pick(&all).clone();
        for m in mutations(&v, &mut rng) {
            label_pairs.push((v.clone(), m));
        }
    }
    let mutated = label_pairs.len() - base;

    let narrow = ["0", "1", "a", "b", ".", "~", "^", "_", "+", "00"];
    let wide = [
        "0", "9", "10", "a", "Z", "zz", ".", "-", ":", "~", "^", "é", "%", "α",
    ];
    let mut seg_pairs = Vec::new();
    for i in 0..4000 * scale {
        let alphabet: &[&str] = if i % 2 == 0 { &narrow } else { &wide };
        let a = random_string(&mut rng, alphabet, 6);
        let b = if rng.below(3) == 0 {
            // A near miss of a.
            format!("{a}{}", rng.pick(alphabet))
        } else {
            random_string(&mut rng, alphabet, 6)
        };
        seg_pairs.push((a, b));
    }

    let mut file = tempfile::NamedTempFile::new().unwrap();
    for (a, b) in &label_pairs {
        writeln!(file, "L\t{a}\t{b}").unwrap();
    }
    for (a, b) in &seg_pairs {
        writeln!(file, "S\t{a}\t{b}").unwrap();
    }
    file.flush().unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", ORACLE])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3-rpm oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Ordering> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse::<i32>().unwrap().cmp(&0))
        .collect();
    assert_eq!(answers.len(), label_pairs.len() + seg_pairs.len());

    let mut bad = Vec::new();
    for ((a, b), want) in label_pairs.iter().zip(&answers) {
        let got = compare(Scheme::Rpm, a, b).unwrap();
        if got != *want {
            bad.push(format!(
                "labelCompare({a:?}, {b:?}) = {}, we say {}",
                sym(*want),
                sym(got)
            ));
        }
    }
    for ((a, b), want) in seg_pairs.iter().zip(&answers[label_pairs.len()..]) {
        let got = rpmvercmp(a, b);
        if got != *want {
            bad.push(format!(
                "rpmvercmp({a:?}, {b:?}) = {}, we say {}",
                sym(*want),
                sym(got)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} disagreements with rpm:\n{}",
        bad.len(),
        bad[..bad.len().min(30)].join("\n")
    );
    println!(
        "rpm oracle: {} distinct labels; {} label pairs ({} sorted-neighbour + random, {mutated} mutations) \
         and {} segment pairs, one python3-rpm call",
        all.len(),
        label_pairs.len(),
        base,
        seg_pairs.len(),
    );
}
