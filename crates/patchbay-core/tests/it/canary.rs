//! Canary analysis: the statistics against SciPy (run inside the test, an
//! independent implementation), and the judge's verdicts on worked examples.

use patchbay_core::canary::{
    CanaryInput, CheckSample, Verdict, fisher_greater, judge, mann_whitney_greater,
};
use proptest::prelude::*;
use std::process::Command;

const SCIPY: &str = r#"
import sys, json
try:
    from scipy.stats import fisher_exact, mannwhitneyu
except ImportError:
    print("NO_SCIPY"); sys.exit(3)
cases = json.loads(sys.stdin.read())
out = []
for c in cases:
    if c["kind"] == "fisher":
        a, b, cc, d = c["t"]
        out.append(fisher_exact([[a, b], [cc, d]], alternative="greater")[1])
    else:
        r = mannwhitneyu(c["x"], c["y"], alternative="greater", method="asymptotic", use_continuity=True)
        out.append([float(r.statistic), float(r.pvalue)])
print(json.dumps(out))
"#;

fn scipy(cases: &serde_json::Value) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCIPY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("NO_SCIPY"),
        "scipy is not importable: pip install scipy (scripts/test does)"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-7 * b.abs()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Fisher's exact test and the Mann-Whitney U test equal SciPy's on random
    /// tables and samples (batched: one python process per case of 60).
    #[test]
    fn statistics_equal_scipy(
        tables in prop::collection::vec((0usize..25, 0usize..25, 0usize..25, 0usize..25), 30),
        samples in prop::collection::vec(
            (prop::collection::vec(0u16..40, 3..25), prop::collection::vec(0u16..40, 3..25)), 30),
    ) {
        let mut cases = vec![];
        for &(a, b, c, d) in &tables {
            cases.push(serde_json::json!({"kind": "fisher", "t": [a, b, c, d]}));
        }
        // Small integers make ties, which the tie correction must handle.
        let samples: Vec<(Vec<f64>, Vec<f64>)> = samples
            .iter()
            .map(|(x, y)| (x.iter().map(|&v| v as f64 / 4.0).collect(), y.iter().map(|&v| v as f64 / 4.0).collect()))
            .collect();
        for (x, y) in &samples {
            cases.push(serde_json::json!({"kind": "mw", "x": x, "y": y}));
        }
        let want = scipy(&serde_json::Value::Array(cases));
        for (i, &(a, b, c, d)) in tables.iter().enumerate() {
            let got = fisher_greater(a, b, c, d);
            let w = want[i].as_f64().unwrap();
            prop_assert!(close(got, w), "fisher {:?}: {} vs scipy {}", (a, b, c, d), got, w);
        }
        for (k, (x, y)) in samples.iter().enumerate() {
            let got = mann_whitney_greater(x, y);
            let w = &want[tables.len() + k];
            let (u, p) = (w[0].as_f64().unwrap(), w[1].as_f64().unwrap());
            // All-equal samples: SciPy answers NaN (zero variance); ours 1.
            if p.is_nan() {
                prop_assert_eq!(got.p, 1.0);
                continue;
            }
            prop_assert!(close(got.u, u), "U {} vs {}", got.u, u);
            prop_assert!(close(got.p, p), "p {} vs scipy {} for {:?} {:?}", got.p, p, x, y);
        }
    }
}

fn s(host: &str, check: &str, pass: bool, value: Option<f64>) -> CheckSample {
    CheckSample {
        host: host.into(),
        check: check.into(),
        pass,
        value,
        critical: false,
    }
}

#[test]
fn a_flip_in_a_small_ring_fails_it_and_says_where() {
    let v = judge(&CanaryInput {
        baseline: vec![s("a", "web", true, None), s("b", "web", true, None)],
        after: vec![s("a", "web", true, None), s("b", "web", false, None)],
        control: vec![],
        hosts: 2,
    });
    assert_eq!(v.verdict, Verdict::Fail);
    assert!(
        v.reason.contains("passed before and failed after on b"),
        "{}",
        v.reason
    );
}

#[test]
fn a_large_ring_fails_only_when_the_failure_rate_is_significantly_higher() {
    let base: Vec<CheckSample> = (0..40)
        .map(|i| s(&format!("h{i}"), "web", i >= 2, None))
        .collect();
    // 3 of 40 after vs 2 of 40 before: not significant.
    let after: Vec<CheckSample> = (0..40)
        .map(|i| s(&format!("h{i}"), "web", i >= 3, None))
        .collect();
    let v = judge(&CanaryInput {
        baseline: base.clone(),
        after,
        control: vec![],
        hosts: 40,
    });
    assert_eq!(v.verdict, Verdict::Pass, "{}", v.reason);
    // 12 of 40 after: significant.
    let after: Vec<CheckSample> = (0..40)
        .map(|i| s(&format!("h{i}"), "web", i >= 12, None))
        .collect();
    let v = judge(&CanaryInput {
        baseline: base,
        after,
        control: vec![],
        hosts: 40,
    });
    assert_eq!(v.verdict, Verdict::Fail);
    assert!(v.reason.contains("Fisher"), "{}", v.reason);
}

#[test]
fn latency_must_rise_significantly_and_beyond_the_tolerance() {
    let base: Vec<CheckSample> = (0..10)
        .map(|i| s(&format!("h{i}"), "latency", true, Some(100.0 + i as f64)))
        .collect();
    // +10 %: significant but within the 25 % tolerance.
    let after: Vec<CheckSample> = (0..10)
        .map(|i| s(&format!("h{i}"), "latency", true, Some(110.0 + i as f64)))
        .collect();
    let v = judge(&CanaryInput {
        baseline: base.clone(),
        after,
        control: vec![],
        hosts: 10,
    });
    assert_eq!(v.verdict, Verdict::Pass, "{}", v.reason);
    // +50 %: fails, naming the numbers.
    let after: Vec<CheckSample> = (0..10)
        .map(|i| s(&format!("h{i}"), "latency", true, Some(150.0 + i as f64)))
        .collect();
    let v = judge(&CanaryInput {
        baseline: base,
        after,
        control: vec![],
        hosts: 10,
    });
    assert_eq!(v.verdict, Verdict::Fail);
    assert!(v.reason.contains("Mann-Whitney"), "{}", v.reason);
}

#[test]
fn thin_data_is_inconclusive_and_a_critical_failure_fails() {
    let v = judge(&CanaryInput {
        baseline: vec![s("a", "latency", true, Some(1.0))],
        after: vec![s("a", "latency", true, Some(9.0))],
        control: vec![],
        hosts: 1,
    });
    assert_eq!(v.verdict, Verdict::Inconclusive, "{}", v.reason);
    let mut crit = s("a", "db", false, None);
    crit.critical = true;
    let v = judge(&CanaryInput {
        baseline: vec![s("a", "db", false, None)],
        after: vec![crit],
        control: vec![],
        hosts: 30,
    });
    assert_eq!(v.verdict, Verdict::Fail);
    assert!(v.reason.contains("critical"), "{}", v.reason);
}

#[test]
fn patched_hosts_are_compared_with_unpatched_hosts_too() {
    // Baseline was already bad (the same hosts failed before), but the
    // unpatched hosts of the group are fine: the patched ones are worse.
    let base: Vec<CheckSample> = (0..30)
        .map(|i| s(&format!("h{i}"), "web", i >= 10, None))
        .collect();
    let after: Vec<CheckSample> = (0..30)
        .map(|i| s(&format!("h{i}"), "web", i >= 10, None))
        .collect();
    let control: Vec<CheckSample> = (0..30)
        .map(|i| s(&format!("c{i}"), "web", true, None))
        .collect();
    let v = judge(&CanaryInput {
        baseline: base,
        after,
        control,
        hosts: 30,
    });
    assert_eq!(v.verdict, Verdict::Fail, "{}", v.reason);
    assert!(v.reason.contains("control hosts"), "{}", v.reason);
}
