//! CVE identifiers: `CVE-YYYY-NNNN…` (4 to 19 digits after the year, the pattern of
//! CISA's KEV schema). The prefix is accepted in any case and written upper-case.

/// The canonical form (`CVE-` upper-case) of `s` when it is exactly a CVE id.
///
/// ```
/// assert_eq!(patchbay_feeds::cve::normalize("cve-2023-4911").as_deref(), Some("CVE-2023-4911"));
/// assert_eq!(patchbay_feeds::cve::normalize("CVE-????-?????"), None);
/// ```
pub fn normalize(s: &str) -> Option<String> {
    if is_cve_id(s) {
        let mut out = String::with_capacity(s.len());
        out.push_str("CVE");
        out.push_str(&s[3..]);
        Some(out)
    } else {
        None
    }
}

/// Whether `s` is exactly a CVE id (prefix in any case).
pub fn is_cve_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 13 || !b[..4].eq_ignore_ascii_case(b"CVE-") {
        return false;
    }
    let rest = &b[4..];
    if !rest[..4].iter().all(u8::is_ascii_digit) || rest[4] != b'-' {
        return false;
    }
    let seq = &rest[5..];
    (4..=19).contains(&seq.len()) && seq.iter().all(u8::is_ascii_digit)
}

/// The CVE id that ends `id` after a `-` (`UBUNTU-CVE-2023-4911`,
/// `DEBIAN-CVE-2006-10002`), or `id` itself when it is one.
pub(crate) fn from_record_id(id: &str) -> Option<String> {
    if let Some(c) = normalize(id) {
        return Some(c);
    }
    let upper = id.to_ascii_uppercase();
    let at = upper.rfind("-CVE-")?;
    normalize(&id[at + 1..])
}

/// The CVE id named by a reference URL: its last path segment
/// (`…/security/cve/CVE-2022-36369`, `…/tracker/CVE-2006-10002/`) or the value of a
/// query parameter (`…/CVERecord?id=CVE-2025-32463`).
pub(crate) fn from_url(url: &str) -> Option<String> {
    let url = url.split('#').next().unwrap_or(url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    if let Some(c) = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(normalize)
    {
        return Some(c);
    }
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
        .find_map(normalize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_cve_id("CVE-2023-4911"));
        assert!(is_cve_id("CVE-2006-10002"));
        assert!(is_cve_id("cve-2023-4911"));
        assert!(!is_cve_id("CVE-2023-491"));
        assert!(!is_cve_id("CVE-23-4911"));
        assert!(!is_cve_id("CVE-2023-4911 "));
        assert!(!is_cve_id("CVE-????-?????"));
        assert!(!is_cve_id("GHSA-6vm3-jj99-7229"));
        assert!(!is_cve_id("CVE-2023-12345678901234567890"));
        assert!(!is_cve_id("ÇVE-2023-4911"));
    }

    #[test]
    fn record_ids() {
        assert_eq!(
            from_record_id("UBUNTU-CVE-2023-4911").as_deref(),
            Some("CVE-2023-4911")
        );
        assert_eq!(from_record_id("ALPINE-CVE-????-?????"), None);
        assert_eq!(from_record_id("DSA-3029-1"), None);
        assert_eq!(
            from_record_id("CVE-2014-3616").as_deref(),
            Some("CVE-2014-3616")
        );
    }

    #[test]
    fn urls() {
        for (url, want) in [
            (
                "https://access.redhat.com/security/cve/CVE-2022-36369",
                Some("CVE-2022-36369"),
            ),
            (
                "https://access.redhat.com/security/cve/cve-2023-4911",
                Some("CVE-2023-4911"),
            ),
            (
                "https://www.cve.org/CVERecord?id=CVE-2025-32463",
                Some("CVE-2025-32463"),
            ),
            (
                "https://security-tracker.debian.org/tracker/CVE-2006-10002/",
                Some("CVE-2006-10002"),
            ),
            ("https://bugzilla.redhat.com/2170784", None),
            ("https://example.org/CVE-2022-36369-writeup", None),
            ("", None),
        ] {
            assert_eq!(from_url(url).as_deref(), want, "{url}");
        }
    }
}
