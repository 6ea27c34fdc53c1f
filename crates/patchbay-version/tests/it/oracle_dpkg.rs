//! Differential tests against the real dpkg of this Debian machine.
//!
//! Versions: every distinct `Version:` of the apt lists (`/var/lib/apt/lists/*Packages*`,
//! decompressed with apt's own `apt-helper cat-file`), or — when the machine has no
//! lists — of `/var/lib/dpkg/status`, plus the dpkg status files of
//! `fixtures/inventories/`. Up to 3000 are sampled deterministically; pairs are their
//! sorted neighbours (as sorted by us), random pairs, near-miss mutations of real
//! versions (`~`, `+b1`, leading zeros, …) and random versions over a small
//! alphabet. All pairs go through libapt's `apt_pkg.version_compare` (dpkg's
//! algorithm, python3-apt) in one python call, and a subset of at least 600 pairs
//! through `dpkg --compare-versions` itself in one shell loop; without python3-apt,
//! every pair goes through dpkg.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::process::Command;

use patchbay_version::{Scheme, compare, deb};

use crate::common::{Rng, fixture, oracle_scale, pairs, python_has, python_over_pairs, sym};

fn dpkg_available() -> bool {
    Command::new("dpkg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn versions_in(text: &str, out: &mut BTreeSet<String>) {
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Version: ") {
            out.insert(v.trim().to_owned());
        }
    }
}

/// Distinct versions of the machine's apt lists (or its dpkg status) and of the
/// fixture status files. Returns them and where they came from.
fn machine_versions() -> (BTreeSet<String>, String) {
    let mut out = BTreeSet::new();
    let mut lists = 0;
    if let Ok(dir) = std::fs::read_dir("/var/lib/apt/lists") {
        let mut files: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("_Packages"))
            })
            .collect();
        files.sort();
        for f in files {
            let o = Command::new("/usr/lib/apt/apt-helper")
                .arg("cat-file")
                .arg(&f)
                .output();
            let text = match o {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                _ => std::fs::read_to_string(&f).unwrap_or_default(),
            };
            versions_in(&text, &mut out);
            lists += 1;
        }
    }
    let source = if out.is_empty() {
        versions_in(
            &std::fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default(),
            &mut out,
        );
        "/var/lib/dpkg/status (no apt lists)".to_owned()
    } else {
        format!("{lists} apt Packages lists")
    };
    for rel in [
        "inventories/debian12/host-ci-image.dpkg-status",
        "inventories/debian12/debootstrap-minbase-before-security-upgrade.dpkg-status",
        "inventories/debian12/debootstrap-minbase-after-security-upgrade.dpkg-status",
        "inventories/ubuntu2404/debootstrap-noble.dpkg-status",
        "inventories/ubuntu1804/trivy-valid-txtar.dpkg-status",
    ] {
        versions_in(
            &std::fs::read_to_string(fixture(rel)).unwrap_or_default(),
            &mut out,
        );
    }
    (out, source)
}

/// Near-misses of a real version: the comparisons where an off-by-one rule of
/// verrevcmp would show.
fn mutations(v: &str, rng: &mut Rng) -> Vec<String> {
    let mut m = vec![
        format!("{v}~"),
        format!("{v}~~"),
        format!("{v}+b1"),
        format!("{v}.0"),
        format!("{v}a"),
        format!("{v}0"),
        format!("1:{v}"),
    ];
    if !v.contains('-') {
        m.push(format!("{v}-0"));
        m.push(format!("{v}-1"));
        m.push(format!("{v}-0~"));
    } else {
        m.push(format!("{v}.1"));
        m.push(format!("{v}~deb12u1"));
    }
    // Leading zeros and digit changes at a random digit.
    let digits: Vec<usize> = v
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    if !digits.is_empty() {
        let i = *rng.pick(&digits);
        m.push(format!("{}0{}", &v[..i], &v[i..]));
        let d = v.as_bytes()[i];
        let nd = if d == b'9' { '0' } else { char::from(d + 1) };
        m.push(format!("{}{}{}", &v[..i], nd, &v[i + 1..]));
    }
    // Separator swaps.
    for (from, to) in [(".", "+"), ("+", "~"), ("~", "."), ("-", ".")] {
        if let Some(p) = v.rfind(from) {
            m.push(format!("{}{}{}", &v[..p], to, &v[p + 1..]));
        }
    }
    m.into_iter()
        .filter(|s| s.parse::<deb::Version>().is_ok())
        .collect()
}

/// A random version over a small alphabet (ties, `~` runs, letters vs `+`/`.`).
fn random_version(rng: &mut Rng) -> String {
    const UP: &[u8] = b"0019a.+~z";
    const REV: &[u8] = b"01a.+~";
    let mut s = String::new();
    if rng.below(4) == 0 {
        s += &format!("{}:", rng.below(3));
    }
    s.push(char::from(b'0' + rng.below(3) as u8));
    for _ in 0..rng.below(6) {
        s.push(char::from(*rng.pick(UP)));
    }
    if rng.below(2) == 0 {
        s.push('-');
        for _ in 0..=rng.below(4) {
            s.push(char::from(*rng.pick(REV)));
        }
    }
    s
}

const APT_PKG: &str = r#"
import sys, apt_pkg
apt_pkg.init_system()
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    a, b = line.rstrip("\n").split("\t")
    r = apt_pkg.version_compare(a, b)
    out.append(str((r > 0) - (r < 0)))
print("\n".join(out))
"#;

const DPKG_LOOP: &str = r#"
tab="$(printf '\t')"
while IFS="$tab" read -r a b; do
  if dpkg --compare-versions "$a" lt "$b"; then echo -1
  elif dpkg --compare-versions "$a" eq "$b"; then echo 0
  else echo 1; fi
done < "$1"
"#;

fn dpkg_over_pairs(pairs: &[(String, String)]) -> Vec<Ordering> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for (a, b) in pairs {
        writeln!(file, "{a}\t{b}").unwrap();
    }
    file.flush().unwrap();
    let out = Command::new("sh")
        .args(["-c", DPKG_LOOP, "sh"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "dpkg complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: Vec<Ordering> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l {
            "-1" => Ordering::Less,
            "0" => Ordering::Equal,
            "1" => Ordering::Greater,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(res.len(), pairs.len());
    res
}

fn check(oracle: &str, pairs: &[(String, String)], want: &[Ordering]) {
    let mut bad = Vec::new();
    for ((a, b), w) in pairs.iter().zip(want) {
        let got = compare(Scheme::Deb, a, b).unwrap_or_else(|e| panic!("{e}"));
        if got != *w {
            bad.push(format!(
                "{a} {} {b} ({oracle}), we say {}",
                sym(*w),
                sym(got)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} disagreements with {oracle}:\n{}",
        bad.len(),
        bad[..bad.len().min(30)].join("\n")
    );
}

#[test]
fn dpkg_oracle() {
    assert!(
        dpkg_available(),
        "dpkg is not installed: this test runs on the Debian 12 build machines"
    );
    let (all, source) = machine_versions();
    assert!(all.len() > 100, "too few versions found ({source})");

    // Every real version is strictly valid.
    let invalid: Vec<_> = all
        .iter()
        .filter(|v| v.parse::<deb::Version>().is_err())
        .collect();
    assert!(invalid.is_empty(), "archive versions rejected: {invalid:?}");

    let scale = oracle_scale();
    let mut rng = Rng(0x5eed_d9c6);
    let mut pool: Vec<String> = all.iter().cloned().collect();
    let sample = 3000 * scale;
    for i in 0..pool.len().min(sample) {
        let j = i + rng.below(pool.len() - i);
        pool.swap(i, j);
    }
    pool.truncate(sample);
    pool.sort();

    let cmp = |a: &String, b: &String| compare(Scheme::Deb, a, b).unwrap();
    let mut ps = pairs(&pool, cmp, 3000 * scale, &mut rng);
    let (sorted_and_random, mut_start) = (ps.len(), ps.len());
    for _ in 0..250 * scale {
        let v = rng.pick(&pool).clone();
        for m in mutations(&v, &mut rng) {
            ps.push((v.clone(), m));
        }
    }
    let mutated = ps.len() - mut_start;
    for _ in 0..1500 * scale {
        let (a, b) = (random_version(&mut rng), random_version(&mut rng));
        if a.parse::<deb::Version>().is_ok() && b.parse::<deb::Version>().is_ok() {
            ps.push((a, b));
        }
    }
    let random = ps.len() - sorted_and_random - mutated;

    // dpkg itself on a spread-out subset (every pair when python3-apt is missing).
    let with_apt = python_has("apt_pkg");
    let dpkg_subset: Vec<(String, String)> = if with_apt {
        let step = ps.len() / 1500 + 1;
        ps.iter().step_by(step).cloned().collect()
    } else {
        ps.clone()
    };
    let want = dpkg_over_pairs(&dpkg_subset);
    check("dpkg --compare-versions", &dpkg_subset, &want);

    if with_apt {
        let want = python_over_pairs(APT_PKG, &ps);
        check("apt_pkg.version_compare", &ps, &want);
    }
    println!(
        "dpkg oracle: {} distinct versions from {source}; {} sampled; {} pairs \
         ({} sorted-neighbour + random, {mutated} mutations, {random} random-alphabet); \
         {} pairs through dpkg --compare-versions, {} through apt_pkg",
        all.len(),
        pool.len(),
        ps.len(),
        sorted_and_random,
        dpkg_subset.len(),
        if with_apt { ps.len() } else { 0 },
    );
}

/// dpkg's classification of the parse table's inputs (ok / warning / error) is the
/// one the table states, and our strict and lax parsers follow it. Inputs starting
/// with `-` are skipped here (dpkg would read them as options), and so is the empty
/// string (`dpkg --compare-versions` reads `""` as "no version").
#[test]
fn dpkg_parse_classification() {
    assert!(dpkg_available(), "dpkg is not installed");
    let mut checked = 0;
    for r in crate::common::tsv("dpkg-t-version-c-parse.tsv") {
        let input = r.cols[0].trim_matches('|').replace("\\t", "\t");
        if input.is_empty() || input.starts_with('-') {
            continue;
        }
        let out = Command::new("dpkg")
            .args(["--compare-versions", &input, "eq", &input])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let class = if out.status.code() == Some(2) {
            "error"
        } else if stderr.contains("warning") {
            "warning"
        } else {
            assert!(out.status.success(), "{input:?}: {stderr}");
            "ok"
        };
        assert_eq!(
            class, r.cols[1],
            "line {}: dpkg says {class} for {input:?}: {stderr}",
            r.line
        );
        assert_eq!(
            input.parse::<deb::Version>().is_ok(),
            class == "ok",
            "{input:?}"
        );
        assert_eq!(
            deb::Version::parse_lax(&input).is_ok(),
            class != "error",
            "{input:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 30);
}
