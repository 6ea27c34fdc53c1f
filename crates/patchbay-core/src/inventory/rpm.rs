//! Parser of an rpm package list produced by
//!
//! ```text
//! rpm -qa --queryformat '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n'
//! ```
//!
//! Each non-blank line has exactly four TAB-separated fields: the name, `E:V-R`, the
//! architecture and the source rpm file name (`openssl-3.0.7-27.el9.src.rpm`, or
//! `(none)` for packages without one, such as `gpg-pubkey`).
//!
//! Conventions, all documented on [`parse_query_list`]:
//! - the version is kept as `E:V-R`, except that an epoch of 0 is dropped (`V-R`),
//!   as rpm itself does when it displays a version;
//! - an architecture of `(none)` (`gpg-pubkey`) becomes the empty string;
//! - the source package name and `V-R` come from the source rpm file name.
//!
//! The epoch is required (`%{EPOCHNUM}` always prints one): a line without it was
//! produced with another query format, and is refused rather than guessed at.

use super::Package;
use super::os_release::{ParseError, excerpt};

/// What rpm prints for an unset tag.
const NONE: &str = "(none)";

/// Parses the output of the rpm query above into packages, in line order.
///
/// - `name` is `%{NAME}`;
/// - `version` is `E:V-R` with a zero epoch dropped: `0:1.2-3.el9` becomes
///   `1.2-3.el9`, `1:1.1.1k-12.el8` stays as it is (the epoch is written as a plain
///   decimal number);
/// - `arch` is `%{ARCH}`, or empty when rpm prints `(none)`;
/// - `source` is the source package name taken from `%{SOURCERPM}` (the file name
///   without `.src.rpm` / `.nosrc.rpm` and without its last two `-`-separated
///   components) and `source_version` is those two components, `V-R` (the file name
///   carries no epoch). Both are `None` when `%{SOURCERPM}` is `(none)`.
///
/// Errors name the line: a wrong number of fields, an empty or blank-containing
/// name or architecture, a malformed `E:V-R` (missing or non-numeric epoch, missing
/// `-` before the release, empty version or release), or a malformed source rpm name.
pub fn parse_query_list(text: &str) -> Result<Vec<Package>, ParseError> {
    let mut packages = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        packages.push(parse_line(line).map_err(|m| ParseError::new(line_no, m))?);
    }
    Ok(packages)
}

fn parse_line(line: &str) -> Result<Package, String> {
    // A CRLF file leaves a `\r` at the end of the last field.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields: Vec<&str> = line.split('\t').collect();
    let &[name, evr, arch, srpm] = fields.as_slice() else {
        return Err(format!(
            "expected 4 TAB-separated fields (name, epoch:version-release, arch, source rpm), \
             found {}",
            fields.len()
        ));
    };
    if !is_token(name) {
        return Err(format!(
            "invalid package name {}: empty or contains whitespace",
            excerpt(name)
        ));
    }
    let version = parse_evr(evr)?;
    let arch = if arch == NONE {
        ""
    } else if is_token(arch) {
        arch
    } else {
        return Err(format!(
            "invalid architecture {}: empty or contains whitespace",
            excerpt(arch)
        ));
    };
    let (source, source_version) = if srpm == NONE {
        (None, None)
    } else {
        let (n, vr) = parse_srpm(srpm)?;
        (Some(n.to_owned()), Some(vr.to_owned()))
    };
    Ok(Package {
        name: name.to_owned(),
        version,
        arch: arch.to_owned(),
        source,
        source_version,
    })
}

/// Non-empty, no whitespace or control characters.
fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `E:V-R` → the displayed version (`V-R` when E is 0).
fn parse_evr(evr: &str) -> Result<String, String> {
    let bad = |why: &str| format!("malformed epoch:version-release {}: {why}", excerpt(evr));
    let Some((epoch, vr)) = evr.split_once(':') else {
        return Err(bad("no epoch (expected `E:V-R`, as %{EPOCHNUM} prints)"));
    };
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the epoch is not a number"));
    }
    let epoch: u32 = epoch
        .parse()
        .map_err(|_| bad("the epoch is out of range"))?;
    let Some((v, r)) = vr.split_once('-') else {
        return Err(bad("no `-` between version and release"));
    };
    for (part, what) in [(v, "version"), (r, "release")] {
        if !is_token(part) || part.contains(['-', ':']) {
            return Err(bad(&format!(
                "the {what} is empty or contains whitespace, `-` or `:`"
            )));
        }
    }
    Ok(if epoch == 0 {
        vr.to_owned()
    } else {
        format!("{epoch}:{vr}")
    })
}

/// `name-V-R.src.rpm` → (`name`, `V-R`).
fn parse_srpm(srpm: &str) -> Result<(&str, &str), String> {
    let bad = || {
        format!(
            "malformed source rpm {}: expected `name-version-release.src.rpm` or `(none)`",
            excerpt(srpm)
        )
    };
    if !is_token(srpm) {
        return Err(bad());
    }
    let stem = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))
        .ok_or_else(bad)?;
    let (rest, release) = stem.rsplit_once('-').ok_or_else(bad)?;
    let (name, version) = rest.rsplit_once('-').ok_or_else(bad)?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return Err(bad());
    }
    Ok((name, &stem[name.len() + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let p = parse_query_list(
            "openssl-libs\t1:3.0.7-27.el9\tx86_64\topenssl-3.0.7-27.el9.src.rpm\n\
             \n\
             bash\t0:5.1.8-9.el9\tx86_64\tbash-5.1.8-9.el9.src.rpm\n\
             gpg-pubkey\t0:fd431d51-4ae0493b\t(none)\t(none)\n\
             python3-foo-bar\t0:1-2\tnoarch\tpython-foo-bar-1-2.nosrc.rpm",
        )
        .unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].version, "1:3.0.7-27.el9");
        assert_eq!(p[0].source.as_deref(), Some("openssl"));
        assert_eq!(p[0].source_version.as_deref(), Some("3.0.7-27.el9"));
        assert_eq!(p[1].version, "5.1.8-9.el9");
        assert_eq!(p[2].arch, "");
        assert_eq!(p[2].source, None);
        assert_eq!(p[3].source.as_deref(), Some("python-foo-bar"));
        assert_eq!(p[3].source_version.as_deref(), Some("1-2"));
    }

    #[test]
    fn errors() {
        let e = |t: &str| parse_query_list(t).unwrap_err();
        let ok = "a\t0:1-1\tx86_64\ta-1-1.src.rpm\n";
        assert!(parse_query_list(ok).is_ok());
        assert_eq!(e(&format!("{ok}\na\t0:1-1\tx86_64\n")).line, 3);
        assert_eq!(e("\t0:1-1\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t1.0-1\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\tx:1.0-1\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t0:1.0\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t0:1.0-1-2\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t99999999999:1.0-1\tx86_64\ta-1-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t0:1-1\tx86_64\ta-1.src.rpm\n").line, 1);
        assert_eq!(e("a\t0:1-1\tx86_64\ta-1-1.rpm\n").line, 1);
        assert_eq!(e("a\t0:1-1\t\ta-1-1.src.rpm\n").line, 1);
    }
}
