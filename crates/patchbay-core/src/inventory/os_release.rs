//! The os-release parser, and the [`ParseError`] shared by all inventory parsers.
//!
//! [`parse`] reads `/etc/os-release` (or `/usr/lib/os-release`) as specified by
//! os-release(5): newline-separated `KEY=value` assignments in a shell-compatible
//! subset.
//!
//! - Blank lines and lines whose first non-blank character is `#` are ignored.
//! - Keys are `[A-Z0-9_]+`; anything else is an error.
//! - Values are unquoted, `"double-quoted"` or `'single-quoted'`. Inside double
//!   quotes a backslash escapes `"`, `\`, `$` and `` ` ``; before any other character
//!   it stays a literal backslash (shell semantics). Inside single quotes nothing is
//!   escaped. In an unquoted value a backslash escapes the next character.
//! - Text after a closing quote (a concatenation like `"a"'b'`, or a trailing
//!   comment) is an error: the spec does not support it, and guessing is worse than
//!   refusing. So is a quote character inside an unquoted value.
//! - Variable expansion is never performed: `$` is an ordinary character.
//! - Unknown keys are ignored. When a key is repeated, the last assignment wins, as
//!   in a shell.
//! - `ID` defaults to `linux` when it is absent or empty, as the spec says. The other
//!   fields stay empty when absent (in particular `VERSION_CODENAME` is not filled in
//!   from `UBUNTU_CODENAME` or `VERSION`).
//!
//! Lines are split on `\n`; whitespace (including a `\r` of CRLF files) around a line
//! is ignored.

use serde::{Deserialize, Serialize};

/// An error from one of the inventory parsers: the 1-based line number of the
/// offending line (or of the start of the offending stanza) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl ParseError {
    /// Builds an error for `line` (1-based).
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// Quotes a piece of input for an error message, cut to a sane length so that a
/// hostile input cannot blow up the message.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut cut: String = s.chars().take(MAX_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Parsed os-release.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID`
    pub id: String,
    /// `VERSION_ID`
    pub version_id: String,
    /// `VERSION_CODENAME`
    pub version_codename: String,
    /// `PRETTY_NAME`
    pub pretty_name: String,
    /// `ID_LIKE`
    pub id_like: String,
}

/// The `ID` to use when the file sets none (os-release(5)).
pub const DEFAULT_ID: &str = "linux";

/// Parses the text of an os-release file.
///
/// Errors name the line: a line without `=`, an invalid key, an unterminated quote,
/// text after a closing quote, a quote inside an unquoted value, or a value ending in
/// a backslash (line continuations are not supported).
pub fn parse(text: &str) -> Result<OsRelease, ParseError> {
    let mut os = OsRelease::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ParseError::new(
                line_no,
                format!("expected KEY=value, found {}", excerpt(line)),
            ));
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ParseError::new(
                line_no,
                format!(
                    "invalid key {}: keys are made of A-Z, 0-9 and '_'",
                    excerpt(key)
                ),
            ));
        }
        let value = parse_value(value.trim_start()).map_err(|m| ParseError::new(line_no, m))?;
        let slot = match key {
            "ID" => &mut os.id,
            "VERSION_ID" => &mut os.version_id,
            "VERSION_CODENAME" => &mut os.version_codename,
            "PRETTY_NAME" => &mut os.pretty_name,
            "ID_LIKE" => &mut os.id_like,
            _ => continue,
        };
        *slot = value;
    }
    if os.id.is_empty() {
        os.id = DEFAULT_ID.to_owned();
    }
    Ok(os)
}

/// Decodes one value (the text after `=`, already trimmed on both sides).
fn parse_value(v: &str) -> Result<String, String> {
    let mut chars = v.chars();
    let mut out = String::with_capacity(v.len());
    match chars.next() {
        None => Ok(out),
        Some('\'') => {
            let body = chars.as_str();
            let Some(end) = body.find('\'') else {
                return Err("unterminated single-quoted value".to_owned());
            };
            let rest = &body[end + 1..];
            if !rest.is_empty() {
                return Err(after_quote(rest));
            }
            out.push_str(&body[..end]);
            Ok(out)
        }
        Some('"') => {
            loop {
                match chars.next() {
                    None => return Err("unterminated double-quoted value".to_owned()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        None => return Err("unterminated double-quoted value".to_owned()),
                        Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                    },
                    Some(c) => out.push(c),
                }
            }
            let rest = chars.as_str();
            if !rest.is_empty() {
                return Err(after_quote(rest));
            }
            Ok(out)
        }
        Some(first) => {
            let mut next = Some(first);
            while let Some(c) = next {
                match c {
                    '\\' => match chars.next() {
                        None => {
                            return Err("value ends with a backslash (line continuations are \
                                        not supported)"
                                .to_owned());
                        }
                        Some(e) => out.push(e),
                    },
                    '"' | '\'' => {
                        return Err(format!(
                            "quote character inside an unquoted value {}; quote the whole value",
                            excerpt(v)
                        ));
                    }
                    c => out.push(c),
                }
                next = chars.next();
            }
            Ok(out)
        }
    }
}

fn after_quote(rest: &str) -> String {
    format!(
        "unexpected text {} after the closing quote (concatenation and trailing comments \
         are not supported)",
        excerpt(rest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoting_styles() {
        let os = parse(
            "# comment\n\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME='bookworm'\n\
             PRETTY_NAME=\"A \\\"q\\\" \\$x \\`y\\` \\\\ \\n\"\nID_LIKE=a\\ b\nFOO_1=ignored\n",
        )
        .unwrap();
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.version_codename, "bookworm");
        assert_eq!(os.pretty_name, "A \"q\" $x `y` \\ \\n");
        assert_eq!(os.id_like, "a b");
    }

    #[test]
    fn defaults_id_to_linux() {
        assert_eq!(parse("").unwrap().id, "linux");
        assert_eq!(parse("ID=\n").unwrap().id, "linux");
        assert_eq!(parse("NAME=x\r\nID=arch\r\n").unwrap().id, "arch");
    }

    #[test]
    fn errors_name_the_line() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(e("ID=a\nno equals\n").line, 2);
        assert_eq!(e("ID=a\n\nlower=1\n").line, 3);
        assert_eq!(e("ID=\"abc\n").line, 1);
        assert_eq!(e("X=1\nID='abc\n").line, 2);
        assert_eq!(e("ID=\"a\"'b'\n").line, 1);
        assert_eq!(e("ID=a\"b\"\n").line, 1);
        assert_eq!(e("ID=\"a\\\"\n").line, 1);
        assert_eq!(e("ID=abc\\\n").line, 1);
        assert_eq!(e("=x\n").line, 1);
        assert_eq!(
            e("ID=a\nno equals\n").to_string(),
            "line 2: expected KEY=value, found \"no equals\""
        );
    }
}
