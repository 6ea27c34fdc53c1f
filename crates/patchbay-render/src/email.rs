//! Notification emails (issue 15): an [`Email`] — subject, heading,
//! paragraphs, facts, an action to take — rendered as plain text and as an
//! HTML alternative from askama templates (`templates/email.txt`,
//! `templates/email.html`).
//!
//! Every value comes from someone else (deployment ids, ring names, reasons,
//! owners, summaries): the HTML template escapes each one, the text part has
//! control characters other than line breaks turned into spaces, and the
//! subject ([`subject_line`]) is one line — no CR, LF or other control
//! character survives into a header, so a value cannot add a header (the
//! mailer encodes non-ASCII subjects per RFC 2047 on top).

use askama::Template;

/// One email, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The subject (made one line by [`subject_line`] when rendered).
    pub subject: String,
    /// The first line of the body.
    pub heading: String,
    /// Paragraphs.
    pub paragraphs: Vec<String>,
    /// Name → value lines.
    pub facts: Vec<(String, String)>,
    /// What the reader can do (a command line), if anything.
    pub action: Option<String>,
    /// Why they get it (the event id and kind).
    pub footer: String,
}

/// The longest subject, in characters.
pub const MAX_SUBJECT: usize = 200;

/// `s` as one header-safe line: every control character (CR, LF, TAB, …)
/// becomes a space, runs of spaces collapse, the ends are trimmed, and it is
/// cut to [`MAX_SUBJECT`] characters.
pub fn subject_line(s: &str) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    let out = out.trim_end();
    out.chars().take(MAX_SUBJECT).collect()
}

/// Text for a text/plain body: control characters other than the line
/// break become spaces (no terminal escapes, no bare CRs).
fn text_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

#[derive(Template)]
#[template(path = "email.txt", escape = "none")]
struct Text<'a> {
    heading: String,
    heading_rule: Vec<()>,
    paragraphs: Vec<String>,
    facts: Vec<(String, String)>,
    action: Option<String>,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email.html")]
struct Html<'a> {
    subject: String,
    heading: String,
    paragraphs: Vec<String>,
    facts: Vec<(String, String)>,
    action: Option<String>,
    footer: &'a str,
}

impl Email {
    /// The subject line.
    pub fn subject(&self) -> String {
        subject_line(&self.subject)
    }

    /// The text/plain body.
    pub fn text(&self) -> Result<String, crate::Error> {
        let heading = subject_line(&self.heading);
        let t = Text {
            heading_rule: vec![(); heading.chars().count()],
            heading,
            paragraphs: self.paragraphs.iter().map(|p| text_safe(p)).collect(),
            facts: self
                .facts
                .iter()
                .map(|(k, v)| (subject_line(k), text_safe(v)))
                .collect(),
            action: self.action.as_deref().map(subject_line),
            footer: &self.footer,
        };
        Ok(t.render()?)
    }

    /// The text/html body (every value escaped).
    pub fn html(&self) -> Result<String, crate::Error> {
        let h = Html {
            subject: self.subject(),
            heading: subject_line(&self.heading),
            paragraphs: self.paragraphs.iter().map(|p| text_safe(p)).collect(),
            facts: self
                .facts
                .iter()
                .map(|(k, v)| (subject_line(k), text_safe(v)))
                .collect(),
            action: self.action.as_deref().map(subject_line),
            footer: &self.footer,
        };
        Ok(h.render()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Email {
        Email {
            subject: "Approval needed: DEP-1\r\nBcc: victim@example.com\nX-Evil: 1".into(),
            heading: "Ring <b>canary</b>".into(),
            paragraphs: vec!["owner <script>alert(1)</script> & co\u{1b}[31m".into()],
            facts: vec![("Deployment".into(), "DEP-1 \"quoted\"".into())],
            action: Some("patchbay deploy approve DEP-1".into()),
            footer: "evt_1 approval.requested".into(),
        }
    }

    #[test]
    fn the_subject_is_one_line_whatever_the_values() {
        let s = hostile().subject();
        assert!(!s.contains('\r') && !s.contains('\n'), "{s:?}");
        assert_eq!(
            s,
            "Approval needed: DEP-1 Bcc: victim@example.com X-Evil: 1"
        );
        assert_eq!(subject_line(&"x".repeat(500)).len(), MAX_SUBJECT);
        assert_eq!(subject_line("  a\t\tb  "), "a b");
    }

    #[test]
    fn html_escapes_what_it_did_not_write() {
        let h = hostile().html().unwrap();
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&#60;script&#62;"), "{h}");
        assert!(h.contains("&#60;b&#62;canary&#60;/b&#62;"), "{h}");
        assert!(h.contains("&#38; co"), "{h}");
        assert!(!h.contains('\u{1b}'), "{h:?}");
    }

    #[test]
    fn text_has_the_values_without_control_characters() {
        let t = hostile().text().unwrap();
        assert!(t.starts_with("Ring <b>canary</b>\n==="), "{t}");
        assert!(t.contains("Deployment: DEP-1 \"quoted\""), "{t}");
        assert!(t.contains("patchbay deploy approve DEP-1"), "{t}");
        assert!(!t.contains('\u{1b}'), "{t:?}");
    }
}
