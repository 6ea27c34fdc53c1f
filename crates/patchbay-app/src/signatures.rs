//! Failure signatures (issue 18, item 5): when a job fails, what it was, where
//! and how — the exact package versions, the failing step or check, an
//! excerpt of the error, and the host's OS release and architecture as they
//! were then. A later deployment's preview warns about hosts that match a
//! known signature (the same OS release and architecture, and one of the
//! same package versions to install), and the failed deployment's change
//! record gets a lessons-learned entry naming the signature.
//!
//! Pure: the rollout driver records signatures in the stored rollout (in the
//! step's transaction) and the preview reads them back.

use jiff::Timestamp;
use patchbay_core::job::PackagePin;
use serde::{Deserialize, Serialize};

/// The most characters of an error kept in a signature.
pub const EXCERPT_CHARS: usize = 400;

/// One failure's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSignature {
    /// `SIG-<deployment>/<host>`.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// The host it failed on.
    pub host: String,
    /// The exact versions its job installed.
    pub packages: Vec<PackagePin>,
    /// The failing step or check (`rehearse.apply`, `verify.health`, …).
    pub step: String,
    /// The error, at most [`EXCERPT_CHARS`] characters.
    pub excerpt: String,
    /// OS release then (`debian 12`).
    pub os: String,
    /// Architecture then (`x86_64`).
    pub arch: String,
    /// When it was recorded.
    pub at: Timestamp,
}

/// The signature of a job that failed with `error` (the state machine's job
/// error, e.g. `rehearsal failed: rehearse.apply: pb-demo postinst exited with
/// 7: …` or `verify.health: web failed`).
pub fn signature_of(
    deployment: &str,
    host: &str,
    packages: &[PackagePin],
    error: &str,
    os: &str,
    arch: &str,
    at: Timestamp,
) -> FailureSignature {
    let body = error.strip_prefix("rehearsal failed: ").unwrap_or(error);
    let step = body
        .split_once(": ")
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty() && !s.contains(' '))
        .unwrap_or("job");
    FailureSignature {
        id: format!("SIG-{deployment}/{host}"),
        deployment: deployment.to_owned(),
        host: host.to_owned(),
        packages: packages.to_vec(),
        step: step.to_owned(),
        excerpt: error.chars().take(EXCERPT_CHARS).collect(),
        os: os.to_owned(),
        arch: arch.to_owned(),
        at,
    }
}

/// `id version_id` of an OS release (`debian 12`).
pub fn os_of(facts: &patchbay_core::inventory::HostFacts) -> String {
    format!("{} {}", facts.os.id, facts.os.version_id)
        .trim()
        .to_owned()
}

/// Whether a host (`os`, `arch`) about to install `packages` matches `sig`:
/// same OS release and architecture, and at least one package at the same
/// version.
pub fn matches(sig: &FailureSignature, os: &str, arch: &str, packages: &[PackagePin]) -> bool {
    sig.os == os && sig.arch == arch && packages.iter().any(|p| sig.packages.contains(p))
}

/// The preview's warning for `host` matching `sig`.
pub fn warning(host: &str, sig: &FailureSignature) -> String {
    let pins: Vec<String> = sig
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    format!(
        "{host} matches failure signature {}: {} on {} {} failed at {} ({})",
        sig.id,
        pins.join(" "),
        sig.os,
        sig.arch,
        sig.step,
        sig.excerpt
    )
}

/// The lessons-learned entry for a recorded signature.
pub fn lesson(sig: &FailureSignature) -> String {
    let pins: Vec<String> = sig
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    format!(
        "Failure signature {}: {} on {} ({} {}) failed at {}: {}\nLater deployments' previews warn about hosts that match it.",
        sig.id,
        pins.join(" "),
        sig.host,
        sig.os,
        sig.arch,
        sig.step,
        sig.excerpt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(n: &str, v: &str) -> PackagePin {
        PackagePin {
            name: n.into(),
            version: v.into(),
        }
    }

    #[test]
    fn a_signature_names_the_step_and_matches_only_the_same_versions_os_and_arch() {
        let t: Timestamp = "2026-12-08T22:00:00Z".parse().unwrap();
        let s = signature_of(
            "DEP-1",
            "web-1",
            &[pin("pb-demo", "1.2.1")],
            "rehearsal failed: rehearse.apply: pb-demo postinst exited with 7: boom",
            "debian 12",
            "x86_64",
            t,
        );
        assert_eq!(s.id, "SIG-DEP-1/web-1");
        assert_eq!(s.step, "rehearse.apply");
        assert!(matches(
            &s,
            "debian 12",
            "x86_64",
            &[pin("pb-demo", "1.2.1")]
        ));
        assert!(!matches(
            &s,
            "debian 12",
            "x86_64",
            &[pin("pb-demo", "1.2")]
        ));
        assert!(!matches(
            &s,
            "debian 11",
            "x86_64",
            &[pin("pb-demo", "1.2.1")]
        ));
        assert!(!matches(
            &s,
            "debian 12",
            "aarch64",
            &[pin("pb-demo", "1.2.1")]
        ));
        let plain = signature_of(
            "D",
            "h",
            &[],
            "the agent did not report by its deadline",
            "",
            "",
            t,
        );
        assert_eq!(plain.step, "job");
        let long = signature_of("D", "h", &[], &"x".repeat(5000), "", "", t);
        assert_eq!(long.excerpt.chars().count(), EXCERPT_CHARS);
        assert!(warning("web-2", &s).starts_with("web-2 matches failure signature SIG-DEP-1/web-1: pb-demo=1.2.1 on debian 12 x86_64 failed at rehearse.apply"));
        assert!(lesson(&s).contains("SIG-DEP-1/web-1"));
    }
}
