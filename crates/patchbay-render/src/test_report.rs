//! A deployment's test report (`patchbay_core::report::test_report`) as
//! JUnit XML (`templates/test-report.xml`: `testsuites` = the deployment, a
//! `testsuite` per kind of check, a `testcase` per host × check, `failure`
//! with the message and the excerpt, `skipped` for what did not run; valid
//! against the JUnit schema CI servers read, `junit-10.xsd`), a printable
//! HTML page (`templates/test-report.html`: a summary line, then a table per
//! suite) and JSON. Both templates escape every value (askama escapes `.xml`
//! and `.html` templates); characters XML 1.0 cannot carry at all (control
//! characters other than tab and line breaks, from a script's output) are
//! replaced by U+FFFD first.

use askama::Template;
use patchbay_core::report::test_report::{Status, TestReport};

/// The report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JUnit XML.
    Junit,
    /// Printable HTML.
    Html,
    /// JSON.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "junit" | "xml" => Ok(Format::Junit),
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            other => Err(format!("format: {other:?} is not one of junit, html, json")),
        }
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Junit => "application/xml; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
        }
    }
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Junit => "xml",
            Format::Html => "html",
            Format::Json => "json",
        }
    }
}

/// `s` with every character XML 1.0 forbids replaced by U+FFFD.
pub fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

struct CaseView {
    name: String,
    classname: String,
    ring: String,
    status: &'static str,
    status_name: &'static str,
    message: String,
    excerpt: String,
    body: String,
    notes: String,
}

struct SuiteView {
    name: String,
    tests: usize,
    failures: usize,
    skipped: usize,
    cases: Vec<CaseView>,
}

fn views(r: &TestReport) -> Vec<SuiteView> {
    r.suites
        .iter()
        .map(|s| SuiteView {
            name: xml_chars(&s.name),
            tests: s.counts.tests,
            failures: s.counts.failures,
            skipped: s.counts.skipped,
            cases: s
                .cases
                .iter()
                .map(|c| {
                    let message = xml_chars(c.message.as_deref().unwrap_or(""));
                    let excerpt = xml_chars(c.excerpt.as_deref().unwrap_or(""));
                    let (status, status_name) = match c.status {
                        Status::Passed => ("passed", "passed"),
                        Status::Failed => ("failed", "failed"),
                        Status::Skipped => ("skipped", "not run"),
                    };
                    CaseView {
                        name: xml_chars(&c.name),
                        classname: xml_chars(&format!(
                            "{}.{}.{}",
                            r.deployment,
                            s.name,
                            c.host.as_deref().unwrap_or(&c.ring)
                        )),
                        ring: xml_chars(&c.ring),
                        status,
                        status_name,
                        body: if excerpt.is_empty() {
                            message.clone()
                        } else {
                            format!("{message}\n\n{excerpt}")
                        },
                        message,
                        excerpt,
                        notes: xml_chars(&c.notes.join("\n")),
                    }
                })
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "test-report.xml")]
struct Junit<'a> {
    r: &'a TestReport,
    timestamp: String,
    suites: Vec<SuiteView>,
}

#[derive(Template)]
#[template(path = "test-report.html")]
struct Page {
    title: String,
    summary: String,
    timestamp: String,
    suites: Vec<SuiteView>,
}

/// The one-line summary: `DEP: N tests, P passed, F failed, S not run (state)`.
pub fn summary(r: &TestReport) -> String {
    format!(
        "{}: {} test(s), {} passed, {} failed, {} not run (deployment {})",
        r.deployment,
        r.summary.tests,
        r.summary.passed,
        r.summary.failures,
        r.summary.skipped,
        r.state
    )
}

/// JUnit XML.
pub fn junit(r: &TestReport) -> Result<String, crate::Error> {
    let timestamp = r.generated_at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let r = TestReport {
        deployment: xml_chars(&r.deployment),
        state: xml_chars(&r.state),
        ..r.clone()
    };
    Ok(Junit {
        r: &r,
        timestamp,
        suites: views(&r),
    }
    .render()?)
}

/// The printable HTML page.
pub fn html(r: &TestReport) -> Result<String, crate::Error> {
    Ok(Page {
        title: format!("Test report of {}", r.deployment),
        summary: summary(r),
        timestamp: r.generated_at.to_string(),
        suites: views(r),
    }
    .render()?)
}

/// Pretty JSON.
pub fn json(r: &TestReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// The report in `format`.
pub fn render(r: &TestReport, format: Format) -> Result<String, crate::Error> {
    match format {
        Format::Junit => junit(r),
        Format::Html => html(r),
        Format::Json => Ok(json(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::report::test_report::*;
    use patchbay_core::rollout::JobState;

    fn report() -> TestReport {
        let mut h = HostIn {
            host: "<script>alert(1)</script>".into(),
            ring: "r&1".into(),
            state: JobState::Failed,
            error: Some("apply \"failed\" \u{1b}[31m".into()),
            privilege: vec![],
            rehearsal: None,
            staging: None,
            retest: vec![],
            backups: vec![],
        };
        h.rehearsal = Some(RehearsalIn {
            passed: Some(false),
            mode: "overlay".into(),
            scripts: vec![ScriptIn {
                package: "pb-demo".into(),
                script: "postinst".into(),
                exit: Some(1),
                output: "]]><evil/>\u{0}".into(),
            }],
            ..Default::default()
        });
        build(
            &Input {
                deployment: "DEP-1".into(),
                state: "halted".into(),
                rings: vec!["r&1".into()],
                gates: vec![],
                hosts: vec![h],
            },
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn xml_is_well_formed_and_escapes_what_it_did_not_write() {
        let x = junit(&report()).unwrap();
        let doc = roxmltree::Document::parse(&x).expect("well-formed XML");
        assert!(!x.contains("<script>"), "{x}");
        assert!(!x.contains("<evil/>"), "{x}");
        let names: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert!(names.contains(&"<script>alert(1)</script>"), "{names:?}");
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("pb-demo postinst exited 1")
        );
        assert!(failure.text().unwrap().contains("]]><evil/>\u{FFFD}"));
        let root = doc.root_element();
        assert_eq!(
            root.attribute("tests"),
            Some(&*report().summary.tests.to_string())
        );
    }

    #[test]
    fn html_escapes_host_names_and_output() {
        let h = html(&report()).unwrap();
        assert!(!h.contains("<script>alert"), "{h}");
        assert!(
            h.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{h}"
        );
        assert!(!h.contains("<evil/>"), "{h}");
    }
}
