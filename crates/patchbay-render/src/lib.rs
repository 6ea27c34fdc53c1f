//! Rendering: every page, table and document Patchbay makes for people,
//! from data the service layer (`patchbay-app`) returns.
//!
//! Nothing here reads a store or a clock: a renderer takes a value (a
//! [`patchbay_core::report::Report`], a [`runbook::Runbook`]) and returns
//! text. HTML comes from compile-time [askama] templates, which escape every
//! value unless the template says otherwise; the one value a template shows
//! unescaped is HTML made here by [pulldown-cmark] from Markdown whose raw
//! HTML has been turned back into text ([`markdown::to_html`]).
//!
//! # Layout
//!
//! - [`report`]: the reports in JSON, CSV (formula-injection safe,
//!   [`csv_safe`]) and printable, self-contained HTML with inline SVG bar
//!   charts (`templates/report.html`, `templates/chart.html`), each naming the
//!   controls it evidences.
//! - [`governance`]: the governance review report (risk removed against
//!   effort spent) as JSON, CSV and HTML with SVG charts.
//! - [`runbook`]: a change's runbook as Markdown (roles, timeline by window,
//!   steps, gates, escalation chain, back-out, approvals, lessons learned) and
//!   as HTML (`templates/runbook.html`).
//! - [`test_report`]: a deployment's test report as JUnit XML, HTML and JSON.
//! - [`markdown`]: values of someone else's making as Markdown text that stays
//!   text ([`markdown::md_text`], [`markdown::md_lesson`]), and Markdown → HTML.
//! - `templates/base.html`: the printable page every HTML document extends.
//!
//! Dependency direction: `core ← proto ← render`; `app` (the evidence bundle)
//! and `server` (the report and runbook endpoints) call it, and `cli` uses
//! [`csv_safe`] for its own CSV output.
//!
//! [askama]: https://docs.rs/askama
//! [pulldown-cmark]: https://docs.rs/pulldown-cmark
#![forbid(unsafe_code)]

pub mod dashboard;
pub mod email;
pub mod governance;
pub mod markdown;
pub mod report;
pub mod runbook;
pub mod test_report;

pub use email::Email;
pub use report::{Format, csv_safe};
pub use runbook::Runbook;

/// A template failed to render (a value's `Display` failed: not expected in
/// practice, but reported rather than hidden).
#[derive(Debug)]
pub struct Error(askama::Error);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rendering a template: {}", self.0)
    }
}

impl std::error::Error for Error {}

impl From<askama::Error> for Error {
    fn from(e: askama::Error) -> Self {
        Error(e)
    }
}
