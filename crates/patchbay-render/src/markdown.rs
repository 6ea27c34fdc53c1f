//! Markdown: values of someone else's making as text that stays text, and
//! Markdown → HTML (pulldown-cmark, CommonMark with GFM tables).

use patchbay_core::names::is_unsafe_char;
use pulldown_cmark::{Event, Options, Parser};

/// A value of someone else's making (a reason, a note, an owner, a token name,
/// a package) as Markdown text that stays text: characters Markdown would act
/// on are backslash-escaped and line breaks become spaces, so the value cannot
/// start a heading, a table row, a list, a link, HTML or code, nor end the
/// table cell it is in.
pub fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A command for a Markdown table cell, inside a code span: only the `|` that
/// would end the cell needs escaping (GFM), and line breaks become spaces.
pub fn md_code(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r', '`'], " ")
}

/// A multi-line lesson as the continuation of a Markdown list item: each line
/// escaped ([`md_text`]; a leading ASCII punctuation character and the `.` or
/// `)` after leading digits are escaped too, leading blanks dropped) and
/// indented under the item, with hard line breaks between lines. No line can
/// open a heading, a table, a list, a quote, a code block or HTML.
pub fn md_lesson(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut e = md_text(l);
            if e.starts_with(|c: char| c.is_ascii_punctuation() && c != '\\') {
                e.insert(0, '\\');
            }
            let digits = e.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && matches!(e.as_bytes().get(digits), Some(b'.' | b')')) {
                e.insert(digits, '\\');
            }
            e
        })
        .collect();
    lines.join("  \n  ")
}

/// Markdown (CommonMark with GFM tables) as an HTML fragment. Raw HTML in the
/// Markdown is shown as text, never passed through: the values in it are
/// escaped already ([`md_text`]), and this holds even if one were not.
pub fn to_html(md: &str) -> String {
    let events = Parser::new_ext(md, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        e => e,
    });
    let mut out = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_values_stay_text() {
        assert_eq!(md_text("a|b\n## c"), "a\\|b \\#\\# c");
        assert_eq!(
            md_lesson("ok\n## Approvals\n| x |\n1. y\n   > z"),
            "ok  \n  \\#\\# Approvals  \n  \\| x \\|  \n  1\\. y  \n  \\> z"
        );
        let html = to_html("- a  \n  \\#\\# b\n\n| `x \\| y` | \\| |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<li>a<br />\n## b</li>"), "{html}");
        assert!(
            html.contains("<th><code>x | y</code></th><th>|</th>"),
            "{html}"
        );
        assert!(html.contains("<td>1</td><td>2</td>"), "{html}");
    }

    #[test]
    fn raw_html_is_text() {
        let html = to_html("<script>alert(1)</script>\n\nsee <b>this</b>\n");
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;") && html.contains("&lt;b&gt;"));
    }

    #[test]
    fn escaped_lesson_lines_open_no_block() {
        let hostile = "fine\n# heading\n| row | x |\n|---|---|\n- item\n1. step\n> quote\n<div>x</div>\n---\n===\n    code";
        let md = format!("- at (me): {}\n", md_lesson(hostile));
        let html = to_html(&md);
        for tag in [
            "<h1",
            "<h2",
            "<table",
            "<blockquote",
            "<pre",
            "<div",
            "<hr",
            "<ol",
        ] {
            assert!(!html.contains(tag), "{tag} in {html}");
        }
        assert_eq!(html.matches("<li>").count(), 1, "{html}");
    }
}
