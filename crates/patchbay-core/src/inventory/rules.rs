//! Each ecosystem's own rules for package names, versions and architectures.
//!
//! An agent's report is untrusted: a package "name" such as `libssl3;curl x|sh;#`
//! would end up in the back-out commands that change records print for people
//! to paste. So check-ins are held to the rules the package managers themselves
//! enforce, and a report that breaks them is refused whole (the message names
//! the package and the rule):
//!
//! - **deb** (Debian Policy §5.6.1, §5.6.12): names `[a-z0-9][a-z0-9+.-]+`
//!   (at least two characters); versions `[epoch:]upstream[-revision]` with
//!   upstream in `[A-Za-z0-9.+~:-]` (`:` only with an epoch) and the revision in
//!   `[A-Za-z0-9.+~]`, parsed by `patchbay-version`'s dpkg parser. An upstream
//!   version that does not start with a digit is accepted, as dpkg does (Policy
//!   says "should").
//! - **rpm** (rpm's `ALLOWED_CHARS_NAME`, `ALLOWED_FIRSTCHARS_NAME` and
//!   `ALLOWED_CHARS_VERREL` of `build/parsePreamble.c`): names start with a
//!   letter, digit, `_`, `%`, `{` or `}` and continue in `[A-Za-z0-9._+%{}-]`;
//!   version and release in `[A-Za-z0-9._+%{}~^]`, joined as
//!   `[epoch:]version-release`.
//! - **apk** (apk-tools 3 `apk_version_validate`, through `patchbay-version`):
//!   versions as apk validates them; names in `[A-Za-z0-9_][A-Za-z0-9._+-]*`
//!   (abuild's `pkgname` characters).
//!
//! Architectures, in every ecosystem, are `[A-Za-z0-9_.-]*` (`amd64`, `all`,
//! `x86_64`, `noarch`, `armhf`; empty when unknown).

use super::PackageFormat;
use patchbay_version::{Scheme, deb};

/// The rule a package name of `format` must follow, for messages.
pub fn name_rule(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Deb => "Debian package names are [a-z0-9][a-z0-9+.-]+ (Debian Policy 5.6.1)",
        PackageFormat::Rpm => {
            "rpm package names start with a letter, digit, '_', '%', '{' or '}' and contain only [A-Za-z0-9._+%{}-]"
        }
        PackageFormat::Apk => "apk package names are [A-Za-z0-9_][A-Za-z0-9._+-]*",
        PackageFormat::Other => {
            "names are at most 512 characters without control characters, spaces or shell metacharacters"
        }
    }
}

/// The rule a version of `format` must follow, for messages.
pub fn version_rule(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Deb => {
            "Debian versions are [epoch:]upstream[-revision], upstream in [A-Za-z0-9.+~:-], revision in [A-Za-z0-9.+~] (Debian Policy 5.6.12)"
        }
        PackageFormat::Rpm => {
            "rpm versions are [epoch:]version-release, version and release in [A-Za-z0-9._+%{}~^]"
        }
        PackageFormat::Apk => {
            "apk versions are number{.number}[letter]{_suffix[number]}[~hash][-rN]"
        }
        PackageFormat::Other => {
            "versions are at most 512 characters without control characters, spaces or shell metacharacters"
        }
    }
}

/// Characters that are never part of a name or version in any ecosystem and
/// that a shell treats specially; used for imported (`other`) packages.
fn plain(s: &str) -> bool {
    s.chars().all(|c| {
        !c.is_control()
            && !c.is_whitespace()
            && !matches!(
                c,
                ';' | '|'
                    | '&'
                    | '$'
                    | '`'
                    | '\\'
                    | '"'
                    | '\''
                    | '<'
                    | '>'
                    | '('
                    | ')'
                    | '*'
                    | '?'
                    | '['
                    | ']'
                    | '#'
                    | '!'
            )
    })
}

/// Whether `name` is a valid package (or source package) name of `format`.
pub fn valid_name(format: PackageFormat, name: &str) -> bool {
    let b = name.as_bytes();
    match format {
        PackageFormat::Deb => {
            b.len() >= 2
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(c))
        }
        PackageFormat::Rpm => {
            !b.is_empty()
                && (b[0].is_ascii_alphanumeric() || b"_%{}".contains(&b[0]))
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"._+%{}-".contains(c))
        }
        PackageFormat::Apk => {
            !b.is_empty()
                && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(c))
        }
        PackageFormat::Other => !name.is_empty() && plain(name),
    }
}

/// Whether `version` is a valid version of `format`.
pub fn valid_version(format: PackageFormat, version: &str) -> bool {
    match format {
        PackageFormat::Deb => {
            let Ok(v) = deb::Version::parse_lax(version) else {
                return false;
            };
            // parse_lax ignores surrounding blanks and skips the character rules.
            version
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".+~:-".contains(&c))
                && v.revision()
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".+~".contains(&c))
        }
        PackageFormat::Rpm => {
            let (epoch, rest) = match version.split_once(':') {
                Some((e, r)) => (Some(e), r),
                None => (None, version),
            };
            let verrel = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._+%{}~^".contains(&c))
            };
            epoch.is_none_or(|e| !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()))
                && match rest.split_once('-') {
                    Some((v, r)) => verrel(v) && verrel(r),
                    None => verrel(rest),
                }
                && patchbay_version::validate(Scheme::Rpm, version).is_ok()
        }
        PackageFormat::Apk => patchbay_version::validate(Scheme::Apk, version).is_ok(),
        PackageFormat::Other => !version.is_empty() && plain(version),
    }
}

/// Whether `arch` is a valid architecture (empty when unknown).
pub fn valid_arch(arch: &str) -> bool {
    arch.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PackageFormat::*;

    #[test]
    fn debian_names_and_versions() {
        for ok in [
            "libssl3",
            "g++",
            "libstdc++6",
            "0ad",
            "python3.11",
            "xz-utils",
        ] {
            assert!(valid_name(Deb, ok), "{ok}");
        }
        for bad in [
            "libssl3;curl x|sh;#",
            "a",
            "Libssl",
            "-x",
            "lib ssl",
            "lib$(id)",
            "",
        ] {
            assert!(!valid_name(Deb, bad), "{bad}");
        }
        for ok in [
            "3.0.17-1~deb12u3",
            "1:2.38.1-5+deb12u3",
            "2.6.1",
            "1:9.2p1-2",
            "2:1.2:3-1",
            "0.0~git20230101.abc-1",
        ] {
            assert!(valid_version(Deb, ok), "{ok}");
        }
        for bad in [
            "1.0;id", "1.0 -1", " 1.0", "1.0-", "1.0-a:b", "1.0$(x)", "1:", "1.0\n", "1:2|3",
            "2:3'", "",
        ] {
            assert!(!valid_version(Deb, bad), "{bad:?}");
        }
    }

    #[test]
    fn rpm_names_and_versions() {
        for ok in [
            "openssl-libs",
            "libstdc++",
            "perl-Text-Tabs+Wrap",
            "_x",
            "kernel",
        ] {
            assert!(valid_name(Rpm, ok), "{ok}");
        }
        for bad in ["a;b", "-x", "a b", "a|b", "a$b", "a/b", ""] {
            assert!(!valid_name(Rpm, bad), "{bad}");
        }
        for ok in [
            "1:3.0.7-27.el9",
            "1.2-3",
            "2.0~rc1-1.fc40",
            "1.0^git1-2",
            "5.1",
        ] {
            assert!(valid_version(Rpm, ok), "{ok}");
        }
        for bad in [
            "1.0-1;id", "1-2-3", "x:1-1", "1.0 -1", "1.0-1|sh", "", "1.0-",
        ] {
            assert!(!valid_version(Rpm, bad), "{bad:?}");
        }
    }

    #[test]
    fn apk_names_and_versions() {
        for ok in [
            "musl",
            "libcrypto3",
            "py3-setuptools",
            "c++-headers",
            "gtk+3.0",
        ] {
            assert!(valid_name(Apk, ok), "{ok}");
        }
        for bad in ["a;b", "-x", "a b", "a|b", ""] {
            assert!(!valid_name(Apk, bad), "{bad}");
        }
        assert!(valid_version(Apk, "3.3.2-r0"));
        assert!(valid_version(Apk, "1.2.4_git20230717-r4"));
        assert!(!valid_version(Apk, "1.0;id"));
        assert!(!valid_version(Apk, "1.0-r1 x"));
    }

    #[test]
    fn arches_and_imported_values() {
        for ok in ["", "amd64", "all", "x86_64", "noarch", "armhf"] {
            assert!(valid_arch(ok), "{ok}");
        }
        assert!(!valid_arch("amd64;id"));
        assert!(valid_name(Other, "ios-xe"));
        assert!(valid_version(Other, "17.9.4a"));
        assert!(!valid_version(Other, "17.9;reboot"));
    }
}
