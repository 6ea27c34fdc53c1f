//! Parser of the dpkg status database (`/var/lib/dpkg/status`).
//!
//! The file is a sequence of deb822 stanzas separated by empty lines. Each line of a
//! stanza is either `Field: value` or a continuation line starting with a space or a
//! tab. As in dpkg's own parser, a line of only spaces and tabs does not end a
//! stanza: inside one it is an (empty) continuation line, and between stanzas it is
//! ignored.
//! Field names are case-insensitive. Only `Package`, `Status`, `Version`,
//! `Architecture` and `Source` are read; they must be single-line and must not be
//! repeated within a stanza. Every other field (including multi-line ones such as
//! `Description` and `Conffiles`) is skipped.
//!
//! Only packages that are present on the system are returned (see
//! [`package_status_is_present`]): a package in state `not-installed` or
//! `config-files` has no files besides, at most, its configuration files.
//!
//! The parser refuses to guess. Besides malformed lines, it reports a stanza without
//! `Package`, a stanza without `Status`, and a present package without `Version` or
//! `Architecture`; those errors name the line where the stanza starts, which is also
//! how a file cut in the middle of a stanza shows up. A file whose last line has no
//! terminating newline is reported as truncated, since dpkg always ends the file
//! with one and the last value could otherwise be silently cut short.
//!
//! Two deliberate differences from dpkg's own reading of the file: values are kept
//! exactly as written (dpkg-query would show `Version: 0:1.0` as `1.0`), and a
//! present package without `Version` is an error even in state `half-installed`,
//! which dpkg tolerates for packages whose very first unpack failed.
//!
//! The parser is a single pass over the lines and keeps only the current stanza's
//! few fields, so it is linear in the size of the file.

use super::Package;
use super::os_release::{ParseError, excerpt};

/// The `want` words of a dpkg `Status:` field.
const WANTS: [&str; 5] = ["unknown", "install", "hold", "deinstall", "purge"];
/// The error-flag words of a dpkg `Status:` field.
const FLAGS: [&str; 2] = ["ok", "reinstreq"];
/// Package states in which the package's files are (at least partly) on the system.
const PRESENT: [&str; 6] = [
    "installed",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
];
/// Package states in which the package is not present.
const ABSENT: [&str; 2] = ["not-installed", "config-files"];

/// Whether a dpkg package state (the third word of `Status:`) means that the package
/// is present on the system: `installed`, `half-installed`, `unpacked`,
/// `half-configured`, `triggers-awaited` or `triggers-pending`.
///
/// `not-installed`, `config-files` and any unknown word give `false`.
pub fn package_status_is_present(status_word: &str) -> bool {
    PRESENT.contains(&status_word)
}

/// The fields the parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Package,
    Status,
    Version,
    Architecture,
    Source,
}

impl Field {
    fn from_name(name: &str) -> Option<Field> {
        [
            Field::Package,
            Field::Status,
            Field::Version,
            Field::Architecture,
            Field::Source,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    fn name(self) -> &'static str {
        match self {
            Field::Package => "Package",
            Field::Status => "Status",
            Field::Version => "Version",
            Field::Architecture => "Architecture",
            Field::Source => "Source",
        }
    }
}

/// A value with the line it was read on.
type At<'a> = Option<(usize, &'a str)>;

/// The fields read so far from the current stanza.
#[derive(Default)]
struct Stanza<'a> {
    /// Line of the stanza's first field; 0 while no line has been seen.
    start: usize,
    package: At<'a>,
    status: At<'a>,
    /// Whether the `Status` state is one of the present ones.
    present: bool,
    version: At<'a>,
    arch: At<'a>,
    source: At<'a>,
    /// The field of the previous line, if it is one of ours (a continuation line
    /// must not follow it). `None` with `seen_field` means another field.
    last: Option<Field>,
    seen_field: bool,
}

impl<'a> Stanza<'a> {
    fn slot(&mut self, f: Field) -> &mut At<'a> {
        match f {
            Field::Package => &mut self.package,
            Field::Version => &mut self.version,
            Field::Architecture => &mut self.arch,
            Field::Source => &mut self.source,
            Field::Status => &mut self.status,
        }
    }
}

/// Parses the text of a dpkg status file into the packages present on the system,
/// in file order.
///
/// For each present package, `name`, `version` and `arch` are the `Package`,
/// `Version` and `Architecture` values exactly as written. `Source: name` gives
/// `source = Some(name)` and no `source_version`; `Source: name (version)` also sets
/// `source_version`. Without a `Source` field (dpkg omits it when the source package
/// has the binary's name and version) both are `None`.
pub fn parse_status(text: &str) -> Result<Vec<Package>, ParseError> {
    let mut packages = Vec::new();
    let mut stanza = Stanza::default();
    let mut last_line_no = 0;
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        last_line_no = line_no;
        if line.is_empty() {
            if stanza.start != 0 {
                if let Some(p) = finish(&stanza)? {
                    packages.push(p);
                }
                stanza = Stanza::default();
            }
            continue;
        }
        if line.trim().is_empty() {
            // Only spaces and tabs: between stanzas, ignored; inside a stanza, a
            // continuation line that adds nothing to the (trimmed) value, as dpkg
            // reads it.
            continue;
        }
        if stanza.start == 0 {
            stanza.start = line_no;
        }
        if line.starts_with([' ', '\t']) {
            if !stanza.seen_field {
                return Err(ParseError::new(
                    line_no,
                    "continuation line (starting with a space or tab) before any field",
                ));
            }
            if let Some(f) = stanza.last {
                return Err(ParseError::new(
                    line_no,
                    format!(
                        "continuation line after the {} field, which must be a single line",
                        f.name()
                    ),
                ));
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::new(
                line_no,
                format!("expected `Field: value`, found {}", excerpt(line)),
            ));
        };
        let name = name.trim_end();
        if name.is_empty()
            || name.starts_with(['#', '-'])
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ParseError::new(
                line_no,
                format!("invalid field name {}", excerpt(name)),
            ));
        }
        stanza.seen_field = true;
        stanza.last = Field::from_name(name);
        if let Some(field) = stanza.last {
            set_field(&mut stanza, field, line_no, value.trim())?;
        }
    }
    if stanza.start != 0 {
        if !text.ends_with('\n') {
            return Err(ParseError::new(
                last_line_no,
                "the last line has no terminating newline: the file looks truncated",
            ));
        }
        if let Some(p) = finish(&stanza)? {
            packages.push(p);
        }
    }
    Ok(packages)
}

/// Records one of the fields we read, after validating its value.
fn set_field<'a>(
    stanza: &mut Stanza<'a>,
    field: Field,
    line_no: usize,
    value: &'a str,
) -> Result<(), ParseError> {
    if let Some((first, _)) = *stanza.slot(field) {
        return Err(ParseError::new(
            line_no,
            format!(
                "duplicate {} field (first given on line {first})",
                field.name()
            ),
        ));
    }
    match field {
        Field::Status => {
            stanza.present = parse_status_field(value, line_no)?;
            stanza.status = Some((line_no, value));
        }
        Field::Source => {
            if value.is_empty() {
                return Err(ParseError::new(line_no, "empty Source field"));
            }
            stanza.source = Some((line_no, value));
        }
        other => {
            if value.is_empty() {
                return Err(ParseError::new(
                    line_no,
                    format!("empty {} field", other.name()),
                ));
            }
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ParseError::new(
                    line_no,
                    format!(
                        "{} {} contains whitespace or a control character",
                        other.name(),
                        excerpt(value)
                    ),
                ));
            }
            *stanza.slot(other) = Some((line_no, value));
        }
    }
    Ok(())
}

/// Checks `want flag status` and tells whether the package is present.
fn parse_status_field(value: &str, line_no: usize) -> Result<bool, ParseError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let &[want, flag, state] = words.as_slice() else {
        return Err(ParseError::new(
            line_no,
            format!(
                "malformed Status {}: expected three words `want flag status`",
                excerpt(value)
            ),
        ));
    };
    if !WANTS.contains(&want) {
        return Err(ParseError::new(
            line_no,
            format!("unknown want state {} in Status", excerpt(want)),
        ));
    }
    if !FLAGS.contains(&flag) {
        return Err(ParseError::new(
            line_no,
            format!("unknown error flag {} in Status", excerpt(flag)),
        ));
    }
    if package_status_is_present(state) {
        Ok(true)
    } else if ABSENT.contains(&state) {
        Ok(false)
    } else {
        Err(ParseError::new(
            line_no,
            format!("unknown package state {} in Status", excerpt(state)),
        ))
    }
}

/// Turns a complete stanza into a package, or `None` for an absent package.
fn finish(s: &Stanza<'_>) -> Result<Option<Package>, ParseError> {
    let Some((_, name)) = s.package else {
        return Err(ParseError::new(
            s.start,
            "stanza has no Package field (truncated or corrupt file?)",
        ));
    };
    let missing = |field: &str| {
        ParseError::new(
            s.start,
            format!(
                "package {} has no {field} field (truncated or corrupt file?)",
                excerpt(name)
            ),
        )
    };
    if s.status.is_none() {
        return Err(missing("Status"));
    }
    if !s.present {
        return Ok(None);
    }
    let Some((_, version)) = s.version else {
        return Err(missing("Version"));
    };
    let Some((_, arch)) = s.arch else {
        return Err(missing("Architecture"));
    };
    let (source, source_version) = match s.source {
        None => (None, None),
        Some((line_no, value)) => {
            let (n, v) = parse_source(value).map_err(|m| ParseError::new(line_no, m))?;
            (Some(n.to_owned()), v.map(str::to_owned))
        }
    };
    Ok(Some(Package {
        name: name.to_owned(),
        version: version.to_owned(),
        arch: arch.to_owned(),
        source,
        source_version,
    }))
}

/// Splits `name` or `name (version)`.
fn parse_source(value: &str) -> Result<(&str, Option<&str>), String> {
    let bad = || {
        format!(
            "malformed Source {}: expected `name` or `name (version)`",
            excerpt(value)
        )
    };
    let token_ok = |t: &str| {
        !t.is_empty()
            && !t
                .chars()
                .any(|c| c.is_whitespace() || c == '(' || c == ')' || c.is_control())
    };
    match value.split_once('(') {
        None => {
            if token_ok(value) {
                Ok((value, None))
            } else {
                Err(bad())
            }
        }
        Some((name, rest)) => {
            let name = name.trim_end();
            let Some(version) = rest.strip_suffix(')') else {
                return Err(bad());
            };
            let version = version.trim();
            if token_ok(name) && token_ok(version) {
                Ok((name, Some(version)))
            } else {
                Err(bad())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
        Source: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n more text\n .\n\n\
        package: zlib1g\nSTATUS: install ok unpacked\narchitecture: amd64\n\
        source: zlib (1:1.2.13.dfsg-1)\nversion: 1:1.2.13.dfsg-1\n\n\
        Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n";

    #[test]
    fn parses_present_packages() {
        let p = parse_status(TWO).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].source.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version, None);
        assert_eq!(p[1].version, "1:1.2.13.dfsg-1");
        assert_eq!(p[1].source.as_deref(), Some("zlib"));
        assert_eq!(p[1].source_version.as_deref(), Some("1:1.2.13.dfsg-1"));
        assert_eq!(parse_status("").unwrap(), vec![]);
        assert_eq!(parse_status("\n \n\t\n").unwrap(), vec![]);
    }

    #[test]
    fn errors() {
        let e = |t: &str| parse_status(t).unwrap_err();
        let base = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n";
        assert!(parse_status(base).is_ok());
        assert_eq!(e(&format!("{base}\nVersion: 2\n")).line, 6);
        assert_eq!(e(&format!("{base}\n Version: 2\n")).line, 6);
        assert_eq!(e(&format!("{base}no colon\n")).line, 5);
        assert_eq!(e(&format!("{base}Version: 2\n")).line, 5);
        assert_eq!(e("Package:\n").line, 1);
        assert_eq!(e("\n\nPackage: a\nStatus: install ok\n").line, 4);
        assert_eq!(e("\n\nPackage: a\nStatus: install ok weird\n").line, 4);
        assert_eq!(e("\nPackage: a\nStatus: install ok installed\n").line, 2);
        assert_eq!(e("Package: a\nVersion: 1\nArchitecture: all\n").line, 1);
        assert_eq!(e(&format!("{base}\nPackage: b\n")).line, 6);
        assert_eq!(e(&format!("{base}Source: x (1\n")).line, 5);
        assert_eq!(e(&format!("{base}Source: x y\n")).line, 5);
        assert_eq!(e(&format!("{base}Version:\n 2\n")).line, 5);
        // Whitespace-only lines continue the stanza (a second Package field)…
        assert_eq!(e(&format!("{base} \t\n{base}")).line, 6);
        // …and add nothing to a value.
        assert_eq!(
            parse_status(&format!("{base} \n\n")).unwrap()[0].arch,
            "all"
        );
        assert_eq!(parse_status(&format!(" \n\t\n{base}")).unwrap().len(), 1);
        assert_eq!(
            e("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: al").line,
            4
        );
        assert!(
            e("\nPackage: a\nStatus: install ok installed\n")
                .to_string()
                .starts_with("line 2: package \"a\" has no Version field")
        );
    }
}
