//! Parser of the Alpine installed-package database (`/lib/apk/db/installed`).
//!
//! The file is a sequence of stanzas, one per package, separated by blank lines (a
//! line of only spaces and tabs counts as blank). Every other line is `K:value` with
//! a single-letter key `K`. The parser reads `P:` (name), `V:` (version), `A:`
//! (architecture) and `o:` (origin, the source package) and skips every other key
//! (`C:`, `F:`, `R:`, `Z:`, `a:`, `M:`, `D:`, `p:`, …), whose values may be
//! anything.
//!
//! Errors: a line that is not `K:value`, a stanza without `P:` or `V:`, an empty or
//! blank-containing name or version, one of the four read keys given twice in a
//! stanza, and a last line without its terminating newline (a truncated file).
//! Missing-field errors name the line where the stanza starts.
//!
//! A file cut exactly at a line boundary inside its last stanza cannot always be told
//! from a complete one: apk writes `A:` and `o:` after `P:` and `V:`, so such a
//! file can yield a last package without its architecture or origin. The parser is
//! a single pass over the lines, linear in the size of the file.

use super::Package;
use super::os_release::{ParseError, excerpt};

/// The fields read so far from the current stanza, each with its line.
#[derive(Default)]
struct Stanza<'a> {
    /// Line of the stanza's first line; 0 while none has been seen.
    start: usize,
    name: Option<(usize, &'a str)>,
    version: Option<(usize, &'a str)>,
    arch: Option<(usize, &'a str)>,
    origin: Option<(usize, &'a str)>,
}

/// Parses the text of an apk installed database into its packages, in file order.
///
/// `name`, `version` and `arch` are the `P:`, `V:` and `A:` values exactly as
/// written (`arch` is empty when there is no `A:` line). `source` is the `o:` origin
/// when there is one and it is not empty; apk does not record a separate source
/// version, so `source_version` is always `None`.
pub fn parse_installed(text: &str) -> Result<Vec<Package>, ParseError> {
    let mut packages = Vec::new();
    let mut stanza = Stanza::default();
    let mut last_line_no = 0;
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        last_line_no = line_no;
        if line.trim().is_empty() {
            if stanza.start != 0 {
                packages.push(finish(&stanza)?);
                stanza = Stanza::default();
            }
            continue;
        }
        if stanza.start == 0 {
            stanza.start = line_no;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b':' || !bytes[0].is_ascii_alphanumeric() {
            return Err(ParseError::new(
                line_no,
                format!(
                    "expected `K:value` with a one-letter key, found {}",
                    excerpt(line)
                ),
            ));
        }
        let value = &line[2..];
        let (slot, what) = match bytes[0] {
            b'P' => (&mut stanza.name, "P: (name)"),
            b'V' => (&mut stanza.version, "V: (version)"),
            b'A' => (&mut stanza.arch, "A: (architecture)"),
            b'o' => (&mut stanza.origin, "o: (origin)"),
            _ => continue,
        };
        if let Some((first, _)) = *slot {
            return Err(ParseError::new(
                line_no,
                format!("duplicate {what} line (first given on line {first})"),
            ));
        }
        let value = value.trim();
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new(
                line_no,
                format!("{what} {} contains whitespace", excerpt(value)),
            ));
        }
        if value.is_empty() && matches!(bytes[0], b'P' | b'V') {
            return Err(ParseError::new(line_no, format!("empty {what}")));
        }
        *slot = Some((line_no, value));
    }
    if stanza.start != 0 {
        if !text.ends_with('\n') {
            return Err(ParseError::new(
                last_line_no,
                "the last line has no terminating newline: the file looks truncated",
            ));
        }
        packages.push(finish(&stanza)?);
    }
    Ok(packages)
}

/// Turns a complete stanza into a package.
fn finish(s: &Stanza<'_>) -> Result<Package, ParseError> {
    let Some((_, name)) = s.name else {
        return Err(ParseError::new(
            s.start,
            "package stanza has no P: (name) line (truncated or corrupt file?)",
        ));
    };
    let Some((_, version)) = s.version else {
        return Err(ParseError::new(
            s.start,
            format!(
                "package {} has no V: (version) line (truncated or corrupt file?)",
                excerpt(name)
            ),
        ));
    };
    Ok(Package {
        name: name.to_owned(),
        version: version.to_owned(),
        arch: s.arch.map(|(_, a)| a).unwrap_or("").to_owned(),
        source: s
            .origin
            .map(|(_, o)| o)
            .filter(|o| !o.is_empty())
            .map(str::to_owned),
        source_version: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let p = parse_installed(
            "C:Q1abc=\nP:musl\nV:1.2.5-r10\nA:x86_64\no:musl\nF:lib\nR:ld:x\n\n\
             P:busybox-binsh\nV:1.37.0-r30\no:busybox\n",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].arch, "x86_64");
        assert_eq!(p[1].arch, "");
        assert_eq!(p[1].source.as_deref(), Some("busybox"));
        assert_eq!(parse_installed("\n\n").unwrap(), vec![]);
    }

    #[test]
    fn errors() {
        let e = |t: &str| parse_installed(t).unwrap_err();
        assert_eq!(e("P:a\nV:1\n\nV:2\nA:x\n").line, 4);
        assert_eq!(e("P:a\nV:1\n\nP:b\nA:x\n").line, 4);
        assert_eq!(e("P:a\nV:1\nbad\n").line, 3);
        assert_eq!(e("P:a\nV:1\nPP:x\n").line, 3);
        assert_eq!(e("P:\nV:1\n").line, 1);
        assert_eq!(e("P:a\nV:1\nP:b\n").line, 3);
        assert_eq!(e("P:a\nV:1.2").line, 2);
        assert_eq!(e("é:x\n").line, 1);
    }
}
