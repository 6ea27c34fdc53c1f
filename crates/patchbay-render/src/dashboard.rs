//! The NOC dashboard's pages (issue 17), as HTML from plain view models.
//!
//! Every page is an askama template under `templates/ui/`, so every value is
//! escaped unless a template says otherwise (none does). Pages are
//! self-contained: one stylesheet served by the server itself
//! ([`STYLESHEET`]), two small scripts of ours (wall-screen mode's pausable
//! refresh, [`WALL_SCRIPT`]; the rollout board's live updates,
//! [`LIVE_SCRIPT`]), no third-party CDN; charts are server-side
//! SVG ([`crate::report`]'s bar chart). A page knows the time it shows
//! ([`Page::now`]) and every number carries the age of the data behind it
//! (the view models hold the age texts, made by [`age`]).

use askama::Template;

/// The dashboard's stylesheet (served at `/ui/static/app.css`).
pub const STYLESHEET: &str = include_str!("../templates/ui/app.css");

/// The wall-screen mode's refresh script (served at `/ui/static/wall.js`):
/// the only script of the dashboard, with a pause button.
pub const WALL_SCRIPT: &str = include_str!("../templates/ui/wall.js");

/// The rollout board's live-update script (served at `/ui/static/live.js`):
/// server-sent events, then the board fetched again and swapped in place.
pub const LIVE_SCRIPT: &str = include_str!("../templates/ui/live.js");

/// One entry of the navigation bar.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Link.
    pub href: &'static str,
    /// Text.
    pub label: &'static str,
    /// Whether it is the page shown.
    pub current: bool,
}

/// The navigation bar: `current` is the `href` of the page shown.
pub fn nav(current: &str) -> Vec<NavItem> {
    [
        ("/ui/", "Overview"),
        ("/ui/assets", "Assets"),
        ("/ui/worklist", "Worklist"),
        ("/ui/deployments", "Deployments"),
        ("/ui/triage", "Triage"),
        ("/ui/catalog", "Catalog"),
        ("/ui/calendar", "Calendar"),
        ("/ui/exceptions", "Exceptions"),
        ("/ui/reports", "Reports"),
        ("/ui/changes", "Changes"),
        ("/ui/feeds", "Feeds"),
        ("/ui/audit", "Audit log"),
        ("/ui/sessions", "Sessions"),
    ]
    .into_iter()
    .map(|(href, label)| NavItem {
        href,
        label,
        current: href == current,
    })
    .collect()
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's title.
    pub title: String,
    /// The signed-in user.
    pub user: String,
    /// That user's role.
    pub role: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    /// The time the page shows (RFC 3339).
    pub now: String,
    /// Wall-screen mode: large type, dark theme, a (pausable) refresh every 30 s.
    pub wall: bool,
    /// The navigation bar.
    pub nav: Vec<NavItem>,
}

/// "3 min ago"-style age of `then` at `now` (both seconds since the epoch);
/// "in the future" when clocks disagree.
pub fn age(now: i64, then: i64) -> String {
    let d = now - then;
    if d < 0 {
        return "in the future (clock skew?)".to_string();
    }
    match d {
        0..60 => format!("{d} s ago"),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        _ => format!("{} d ago", d / 86_400),
    }
}

/// One coverage bucket of the overview.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Stable key (`patched`, `exposed`, `stale`, `unknown`), for tests and styles.
    pub key: &'static str,
    /// Text.
    pub label: &'static str,
    /// Hosts in it.
    pub count: u64,
    /// The age of the data behind the number.
    pub age: String,
    /// Style: `good`, `bad` or `warn`.
    pub class: &'static str,
}

/// A deployment line of the overview.
#[derive(Debug, Clone)]
pub struct DeploymentLine {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Hosts targeted.
    pub hosts: usize,
    /// Creation, with its age.
    pub created: String,
}

/// A feed line of the overview.
#[derive(Debug, Clone)]
pub struct FeedLine {
    /// Kind (`osv`, `kev`, …).
    pub kind: String,
    /// The feed's version or date.
    pub version: String,
    /// Records.
    pub records: i64,
    /// Import time with its age.
    pub age: String,
    /// Older than the staleness threshold.
    pub stale: bool,
}

/// The overview's data.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Assets known.
    pub fleet: u64,
    /// With an agent.
    pub managed: u64,
    /// Imported without one.
    pub unmanaged: u64,
    /// Shadow machines (discovery), when known.
    pub shadows: Option<u64>,
    /// Coverage buckets: patched, exposed, stale, unknown.
    pub buckets: Vec<Bucket>,
    /// The inventory data's age range.
    pub inventory_age: String,
    /// Open findings by tier (P0 first), for the chart.
    pub tiers: Vec<(String, f64)>,
    /// The advisory data's age.
    pub exposure_age: String,
    /// Findings past due.
    pub overdue: u64,
    /// The age of the overdue count's data.
    pub overdue_age: String,
    /// The next window occurrences: name, start, end.
    pub windows: Vec<(String, String, String)>,
    /// Deployments not yet finished.
    pub deployments: Vec<DeploymentLine>,
    /// Feeds, newest import per kind.
    pub feeds: Vec<FeedLine>,
    /// Findings resolved within their SLA, %, as of each of the last weeks
    /// (date label, percent), oldest first.
    pub sla_trend: Vec<(String, f64)>,
    /// Median hours from first seen to fixed, per tier (label, hours).
    pub ttp_median: Vec<(String, f64)>,
    /// The compliance headline: fully patched and within-SLA shares, each
    /// named for what it means.
    pub compliance: String,
    /// The newest events (time, kind, summary), newest first; the live
    /// stream adds later ones above them.
    pub events: Vec<(String, String, String)>,
    /// The live stream's cursor when the page was made.
    pub cursor: i64,
    /// When the numbers were computed, if not for this request (a large
    /// fleet's overview is served from its last computation).
    pub computed: String,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage<'a> {
    page: &'a Page,
    o: &'a Overview,
    tier_chart: crate::report::Chart,
    sla_chart: crate::report::Chart,
    ttp_chart: crate::report::Chart,
}

/// The overview page.
pub fn overview(page: &Page, o: &Overview) -> Result<String, crate::Error> {
    let max = o.tiers.iter().map(|t| t.1).fold(0.0, f64::max);
    let tier_chart = crate::report::chart("Open findings by tier", "", &o.tiers, max);
    let sla_chart = crate::report::chart(
        "Resolved within SLA, by week (as of)",
        "%",
        &o.sla_trend,
        100.0,
    );
    let ttp_max = o.ttp_median.iter().map(|t| t.1).fold(0.0, f64::max);
    let ttp_chart =
        crate::report::chart("Median time to patch, by tier", "h", &o.ttp_median, ttp_max);
    Ok(OverviewPage {
        page,
        o,
        tier_chart,
        sla_chart,
        ttp_chart,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage<'a> {
    error: &'a str,
    name: &'a str,
    next: &'a str,
}

/// The sign-in page; `error` is shown above the form, `name` refilled.
pub fn login(error: &str, name: &str, next: &str) -> Result<String, crate::Error> {
    Ok(LoginPage { error, name, next }.render()?)
}

#[derive(Template)]
#[template(path = "ui/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    back: &'a str,
}

/// A page with one message (an error a person must read).
pub fn message(title: &str, message: &str, back: &str) -> Result<String, crate::Error> {
    Ok(MessagePage {
        title,
        message,
        back,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "ui/pending.html")]
struct PendingPage<'a> {
    page: &'a Page,
    text: &'a str,
    retry: u64,
}

/// A page whose figures are still being computed: says so (`text`, from the
/// caller: what and since when) and loads again every `retry` seconds.
pub fn pending(page: &Page, text: &str, retry: u64) -> Result<String, crate::Error> {
    Ok(PendingPage { page, text, retry }.render()?)
}

/// An asset line of the assets page.
#[derive(Debug, Clone)]
pub struct AssetLine {
    /// Name.
    pub name: String,
    /// The name, percent-encoded for the link.
    pub href: String,
    /// Kind.
    pub kind: String,
    /// OS.
    pub os: String,
    /// Owner.
    pub owner: String,
    /// `managed`, `stale`, `unmanaged`.
    pub liveness: String,
    /// Last check-in with its age.
    pub last_seen: String,
    /// Packages known.
    pub packages: u64,
}

#[derive(Template)]
#[template(path = "ui/assets.html")]
struct AssetsPage<'a> {
    page: &'a Page,
    q: &'a str,
    liveness_options: Vec<(&'static str, bool)>,
    rows: &'a [AssetLine],
    shown: usize,
    matched: usize,
    total: usize,
}

/// The assets page: the lines already filtered (and cut to what one page
/// shows); `matched` of `total` matched the filters.
pub fn assets(
    page: &Page,
    q: &str,
    liveness: &str,
    rows: &[AssetLine],
    matched: usize,
    total: usize,
) -> Result<String, crate::Error> {
    let liveness_options = ["any", "managed", "stale", "unmanaged"]
        .into_iter()
        .map(|o| (o, o == liveness))
        .collect();
    Ok(AssetsPage {
        page,
        q,
        liveness_options,
        rows,
        shown: rows.len(),
        matched,
        total,
    }
    .render()?)
}

/// A table cell: text, and a link when it has one.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Text.
    pub text: String,
    /// Link (a path of this server).
    pub href: Option<String>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, href: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell {
            text: text.to_string(),
            href: None,
        }
    }
}

/// A table of a generic page.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Heading above it (may be empty).
    pub caption: String,
    /// Column heads.
    pub head: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
    /// Text when there are no rows.
    pub empty: String,
}

/// A one-button form of a generic page (with the CSRF token).
#[derive(Debug, Clone)]
pub struct Action {
    /// Where it posts.
    pub action: String,
    /// The button's text.
    pub label: String,
    /// Hidden fields.
    pub hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "ui/table.html")]
struct TablePage<'a> {
    page: &'a Page,
    intro: &'a str,
    tables: &'a [Table],
    forms: &'a [Action],
    search: Option<(&'a str, &'a str, &'a str, &'a str)>,
    link: Option<(&'a str, &'a str)>,
}

/// A page of tables (asset detail, worklist, audit log, sessions).
pub fn tables(
    page: &Page,
    intro: &str,
    tables: &[Table],
    forms: &[Action],
) -> Result<String, crate::Error> {
    Ok(TablePage {
        page,
        intro,
        tables,
        forms,
        search: None,
        link: None,
    }
    .render()?)
}

/// [`tables`] with a link above them (href, text), e.g. "New deployment"
/// for those who may create one.
pub fn tables_with_link(
    page: &Page,
    intro: &str,
    link: Option<(&str, &str)>,
    tables: &[Table],
) -> Result<String, crate::Error> {
    Ok(TablePage {
        page,
        intro,
        tables,
        forms: &[],
        search: None,
        link,
    }
    .render()?)
}

/// A search form (action, label, field name, current value) above tables.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    /// Where the form goes (GET).
    pub action: &'a str,
    /// The field's label.
    pub label: &'a str,
    /// The field's name.
    pub field: &'a str,
    /// Its current value.
    pub value: &'a str,
}

/// [`tables`] with a search form above them.
pub fn search_tables(
    page: &Page,
    search: Search<'_>,
    intro: &str,
    tables: &[Table],
) -> Result<String, crate::Error> {
    Ok(TablePage {
        page,
        intro,
        tables,
        forms: &[],
        search: Some((search.action, search.label, search.field, search.value)),
        link: None,
    }
    .render()?)
}

/// One host on the rollout board.
#[derive(Debug, Clone)]
pub struct HostBoard {
    /// Host.
    pub host: String,
    /// Job state (`pending`, `applying`, `succeeded`, …).
    pub state: String,
    /// Whether its agent was reachable when last observed.
    pub online: bool,
    /// Error or note.
    pub note: String,
}

/// One ring on the rollout board.
#[derive(Debug, Clone)]
pub struct RingBoard {
    /// Name.
    pub name: String,
    /// State (`pending`, `running`, `awaiting_approval`, …).
    pub state: String,
    /// Jobs not leased yet.
    pub pending: usize,
    /// Jobs leased and not reported.
    pub in_flight: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs that failed (rollback failures included).
    pub failed: usize,
    /// Hosts whose agent is unreachable, with a job not ended.
    pub unreachable: usize,
    /// Jobs rolled back.
    pub rolled_back: usize,
    /// "N of M left" of the error budget.
    pub budget: String,
    /// The newest gate decision: verdict and reason.
    pub gate: String,
    /// Who approved the ring.
    pub approved_by: String,
    /// Its hosts.
    pub hosts: Vec<HostBoard>,
}

/// A deployment's live rollout board.
#[derive(Debug, Clone)]
pub struct Board {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Why it exists.
    pub reason: String,
    /// Patches.
    pub patches: String,
    /// Created, by whom, with its age.
    pub created: String,
    /// Rings (empty before it is started).
    pub rings: Vec<RingBoard>,
    /// The operator actions offered now (`start`, `pause`, …).
    pub actions: Vec<&'static str>,
    /// Rings awaiting an approval.
    pub awaiting: Vec<String>,
    /// The live stream's cursor when the page was made.
    pub cursor: i64,
    /// Per owner of its hosts: the expected impact in one line and whether
    /// (when) the notice and the summary were sent (`/ui/deployments/{id}/impact`
    /// has the detail).
    pub impact: Vec<(String, String)>,
}

impl Board {
    /// Per ring, the share of its jobs that succeeded, in percent.
    fn progress(&self) -> Vec<(String, f64)> {
        self.rings
            .iter()
            .map(|r| {
                let total = r.pending + r.in_flight + r.succeeded + r.failed + r.rolled_back;
                let pct = if total == 0 {
                    0.0
                } else {
                    (r.succeeded as f64 * 1000.0 / total as f64).round() / 10.0
                };
                (r.name.clone(), pct)
            })
            .collect()
    }
}

#[derive(Template)]
#[template(path = "ui/deployment.html")]
struct BoardPage<'a> {
    page: &'a Page,
    b: &'a Board,
    progress: crate::report::Chart,
}

/// A deployment's page: the rollout board (with a ring-progress chart), its
/// actions and approvals.
pub fn board(page: &Page, b: &Board) -> Result<String, crate::Error> {
    let progress =
        crate::report::chart("Ring progress (jobs succeeded)", "%", &b.progress(), 100.0);
    Ok(BoardPage { page, b, progress }.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Page {
        Page {
            title: "Overview".into(),
            user: "<b>eve</b>".into(),
            role: "admin".into(),
            csrf: "c0ffee".into(),
            now: "2026-12-07T00:00:00Z".into(),
            wall: false,
            nav: nav("/ui/"),
        }
    }

    #[test]
    fn values_are_escaped() {
        let html = tables(
            &page(),
            "<script>alert(1)</script>",
            &[Table {
                caption: "x".into(),
                head: vec!["a"],
                rows: vec![vec![Cell {
                    text: "\"><img src=x onerror=alert(1)>".into(),
                    href: Some("/ui/assets/a\"b".into()),
                }]],
                empty: String::new(),
            }],
            &[],
        )
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>eve</b>"), "{html}");
        assert!(html.contains("&#60;b&#62;eve&#60;/b&#62;"), "{html}");
        assert!(html.contains(r#"name="csrf" value="c0ffee""#), "{html}");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(100, 100), "0 s ago");
        assert_eq!(age(200, 100), "1 min ago");
        assert_eq!(age(100 + 7200, 100), "2 h ago");
        assert_eq!(age(100 + 3 * 86_400, 100), "3 d ago");
        assert!(age(0, 100).contains("future"));
    }

    #[test]
    fn a_pending_page_says_so_and_loads_again() {
        let html = pending(&page(), "computing <b>the fleet</b>", 5).unwrap();
        assert!(
            html.contains(r#"id="pending" role="status" data-retry="5""#),
            "{html}"
        );
        assert!(html.contains("computing &#60;b&#62;the fleet"), "{html}");
        assert!(html.contains(r#"<script src="/ui/static/live.js" defer></script>"#));
        assert!(LIVE_SCRIPT.contains("getElementById('pending')"));
    }

    #[test]
    fn wall_mode_refreshes_and_the_laptop_layout_does_not() {
        let mut p = page();
        let o = Overview::default();
        let laptop = overview(&p, &o).unwrap();
        assert!(!laptop.contains("wall.js"));
        p.wall = true;
        let wall = overview(&p, &o).unwrap();
        assert!(wall.contains(r#"<script src="/ui/static/wall.js" defer></script>"#));
        assert!(wall.contains("Pause refresh"));
        assert!(wall.contains("class=\"wall\""));
        // No feed imported: exposure is unknown, said so.
        assert!(wall.contains("No advisory feed has been imported"));
    }
}

/// One field of a [`Form`].
#[derive(Debug, Clone, Default)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its label.
    pub label: String,
    /// `text`, `textarea`, `select`, `checkbox` or `hidden`.
    pub kind: &'static str,
    /// Its value (for a checkbox: non-empty when checked; for a select: the
    /// selected option's value).
    pub value: String,
    /// A line of help under it.
    pub help: String,
    /// Whether it must be filled.
    pub required: bool,
    /// A select's options: value, text.
    pub options: Vec<(String, String)>,
}

impl Field {
    /// A field of `kind`.
    pub fn new(kind: &'static str, name: &str, label: &str, value: &str) -> Self {
        Field {
            name: name.into(),
            label: label.into(),
            kind,
            value: value.into(),
            ..Default::default()
        }
    }

    /// With a line of help.
    pub fn help(mut self, help: &str) -> Self {
        self.help = help.into();
        self
    }

    /// Required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// A form of a form page (the CSRF token is added).
#[derive(Debug, Clone, Default)]
pub struct Form {
    /// Its id (unique on the page; field ids derive from it).
    pub id: String,
    /// Heading above it (may be empty).
    pub heading: String,
    /// Where it posts.
    pub action: String,
    /// The submit button's text.
    pub submit: String,
    /// Its fields.
    pub fields: Vec<Field>,
}

#[derive(Template)]
#[template(path = "ui/form.html")]
struct FormPage<'a> {
    page: &'a Page,
    intro: &'a str,
    tables: &'a [Table],
    forms: &'a [Form],
}

/// A page of tables followed by forms (new deployment, its preview,
/// exceptions).
pub fn form_page(
    page: &Page,
    intro: &str,
    tables: &[Table],
    forms: &[Form],
) -> Result<String, crate::Error> {
    Ok(FormPage {
        page,
        intro,
        tables,
        forms,
    }
    .render()?)
}
