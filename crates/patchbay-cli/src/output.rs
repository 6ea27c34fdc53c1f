//! Rendering of read commands: aligned tables for people, JSON for scripts.

use patchbay_core::names::is_unsafe_char;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;

/// A value from the server made safe for a terminal: control characters
/// (escape sequences, carriage returns, newlines, NUL, DEL, C1) and the Unicode
/// bidirectional and zero-width characters are written as visible escapes
/// (`\x1b`, `\r`, `\n`, `\0`, `\u{202e}`), so a host name, token name or
/// audit field cannot move the cursor, recolour, retitle or fake lines in a
/// table. Every table and key-value output of values the CLI did not write
/// itself goes through here; values without such characters are unchanged.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x80 && is_unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Multi-line text from the server (a runbook) made safe for a terminal: like
/// [`clean`] on each line, keeping the line breaks (and tabs).
pub fn clean_text(s: &str) -> String {
    s.split('\n')
        .map(|l| {
            l.split('\t')
                .map(|p| clean(p).into_owned())
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    // JSON escapes control characters itself; bidirectional characters stay
    // as they are, for the scripts that read it.
    // Streamed: a large answer (a scan's thousands of findings) is not built as
    // one string first.
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Prints `value` as JSON, or the table `table` renders, per `format`.
pub fn emit<T: Serialize>(
    format: crate::Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        crate::Format::Json => json(value),
        crate::Format::Table => {
            print!("{}", clean_text(&table(value)));
            Ok(())
        }
    }
}

/// A table's package cell: the package, or for software installed outside the
/// package manager the package and where it is (`urllib3 (unmanaged:
/// /usr/local/lib/python3.11/dist-packages/urllib3-1.26.4.dist-info)`).
pub fn package_cell(package: &str, unmanaged_path: Option<&str>) -> String {
    match unmanaged_path {
        Some(p) => format!("{package} (unmanaged: {p})"),
        None => package.to_owned(),
    }
}

/// Renders rows as left-aligned columns under a header; every cell goes
/// through [`clean`].
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Writes to standard output. A reader that went away (`patchbay … | head`)
/// ends the process quietly with the shell's broken-pipe status (141), as
/// Unix tools do, instead of a panic.
pub fn write_stdout(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("patchbay: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let t = super::table(
            &["NAME", "OS"],
            &[
                vec!["a".into(), "debian:12".into()],
                vec!["long-name".into(), "".into()],
            ],
        );
        assert_eq!(t, "NAME       OS\na          debian:12\nlong-name\n");
    }

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(super::clean("web-01"), "web-01");
        assert_eq!(
            super::clean("a\u{1b}[2J\u{1b}]0;x\u{7}b\r\n\0\u{7f}\u{9b}\u{202e}"),
            "a\\x1b[2J\\x1b]0;x\\x07b\\r\\n\\0\\x7f\\u{9b}\\u{202e}"
        );
        let t = super::table(&["NAME"], &[vec!["evil\u{1b}[31m\nfake row".into()]]);
        assert_eq!(t, "NAME\nevil\\x1b[31m\\nfake row\n");
        assert_eq!(super::clean_text("# t\n\tx\u{1b}"), "# t\n\tx\\x1b");
    }
}
