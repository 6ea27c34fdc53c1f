//! The dashboard's forms that change things beyond a deployment's board:
//! a new deployment (form → preview → create, the same service calls as
//! `POST /api/v1/deployments/preview` and `POST /api/v1/deployments`), and
//! the exception register's add and revoke. Each form carries the session's
//! CSRF token and is refused from another site ([`super::ui::UiForm`]); who
//! may post it is declared in [`crate::router`], and the service layer
//! checks it again.

use super::ui::{UiForm, UiUser, app_error, message, now_text, render, seg};
use crate::router::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use patchbay_core::job::PackagePin;
use patchbay_proto::api::{DeploymentSpec, ExceptionSpec, RingIn};
use patchbay_render::dashboard::{self as view, Cell, Field, Form, Table};
use std::collections::HashMap;

/// The fields of the new-deployment form, in order.
const DEPLOY_FIELDS: [&str; 13] = [
    "packages",
    "patches",
    "tier",
    "converge",
    "assets",
    "groups",
    "canary",
    "approval",
    "rehearse",
    "max_concurrent",
    "error_budget",
    "checks",
    "window",
];

fn get<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(|v| v.trim()).unwrap_or("")
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The deployment a form describes, or what is wrong with it (naming the
/// field and line).
pub fn spec_from_form(f: &HashMap<String, String>) -> Result<DeploymentSpec, String> {
    let mut packages = Vec::new();
    for (i, line) in get(f, "packages").lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, version) = line
            .split_once('=')
            .or_else(|| line.split_once(char::is_whitespace))
            .ok_or_else(|| format!("Packages, line {}: \"{line}\" is not NAME=VERSION", i + 1))?;
        let (name, version) = (name.trim(), version.trim());
        if name.is_empty() || version.is_empty() {
            return Err(format!(
                "Packages, line {}: \"{line}\" is not NAME=VERSION",
                i + 1
            ));
        }
        packages.push(PackagePin {
            name: name.into(),
            version: version.into(),
        });
    }
    let tier = Some(get(f, "tier").to_string()).filter(|t| !t.is_empty());
    let opt = |k: &str| Some(get(f, k).to_string()).filter(|v| !v.is_empty());
    let approval = !get(f, "approval").is_empty();
    let rehearse = !get(f, "rehearse").is_empty();
    let canary = words(get(f, "canary"));
    let ring = |name: &str, assets: Vec<String>, approval: bool| RingIn {
        name: name.into(),
        assets,
        size: None,
        max_concurrent: opt("max_concurrent"),
        error_budget: opt("error_budget"),
        success_threshold: None,
        soak: None,
        approval,
        rollback: None,
        stands_for: None,
        drift_tolerance: None,
        require_rehearsal: rehearse,
        verify_snapshots: None,
    };
    let rings = if !canary.is_empty() {
        vec![
            ring("canary", canary, false),
            ring("rest", vec![], approval),
        ]
    } else if approval
        || rehearse
        || opt("max_concurrent").is_some()
        || opt("error_budget").is_some()
    {
        vec![ring("all", vec![], approval)]
    } else {
        vec![]
    };
    Ok(DeploymentSpec {
        packages,
        patches: words(get(f, "patches")),
        tier,
        assets: words(get(f, "assets")),
        groups: words(get(f, "groups")),
        rings,
        checks: words(get(f, "checks")),
        window: opt("window"),
        job_timeout: None,
        windows: None,
        reboot: None,
        converge: opt("converge"),
    })
}

/// The new-deployment form, filled from `values`.
fn deploy_form(values: &HashMap<String, String>) -> Form {
    let v = |k: &str| get(values, k).to_string();
    let tiers = ["", "P0", "P1", "P2", "P3", "P4"];
    let mut tier = Field::new("select", "tier", "Worklist tier", &v("tier")).help(
        "Every approved patch whose most urgent finding is of this tier or a more urgent one.",
    );
    tier.options = tiers
        .iter()
        .map(|t| {
            (
                t.to_string(),
                if t.is_empty() {
                    "(none)".into()
                } else {
                    format!("{t} and more urgent")
                },
            )
        })
        .collect();
    Form {
        id: "new".into(),
        heading: String::new(),
        action: "/ui/deployments/preview".into(),
        submit: "Preview".into(),
        fields: vec![
            Field::new("textarea", "packages", "Exact versions", &v("packages"))
                .help("One NAME=VERSION per line (with or instead of patches or a tier)."),
            Field::new("text", "patches", "Patches", &v("patches"))
                .help("Patch names of the catalog (PB-…), separated by spaces or commas."),
            tier,
            Field::new("text", "converge", "Converge a group to its baseline", &v("converge"))
                .help("A policy group: each member gets the baseline's version of the packages it has older (docs/drift.md); nothing is downgraded or removed."),
            Field::new("text", "assets", "Target assets", &v("assets")).help(
                "Asset names; with groups, or neither: every managed asset that has a package.",
            ),
            Field::new("text", "groups", "Target groups", &v("groups")),
            Field::new("text", "canary", "Canary hosts", &v("canary"))
                .help("Asset names of a first ring; the other hosts form ring \"rest\"."),
            Field::new(
                "checkbox",
                "approval",
                "The last ring needs an approval (not by its creator or starter)",
                &v("approval"),
            ),
            Field::new(
                "text",
                "max_concurrent",
                "Jobs in flight per ring",
                &v("max_concurrent"),
            )
            .help("N or N% (default 1)."),
            Field::new(
                "text",
                "error_budget",
                "Error budget per ring",
                &v("error_budget"),
            )
            .help("Failures tolerated, N or N% (default 0): one more halts the ring."),
            Field::new("text", "checks", "Health checks", &v("checks"))
                .help("Names in the agents' local configuration, run before and after each job."),
            Field::new("text", "window", "Deadline after the start", &v("window"))
                .help("For example 4h (default 24h)."),
        ],
    }
}

/// `GET /ui/deployments/new`: the form (query parameters fill it, so the
/// catalog can link "deploy this patch").
pub async fn new_deployment(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let values = q.map(|Query(q)| q).unwrap_or_default();
    render(view::form_page(
        &u.page("New deployment", "/ui/deployments", &now_text(&st)),
        "Choose what to install and where; the preview shows each host's change before anything is created.",
        &[],
        &[deploy_form(&values)],
    ))
}

/// `POST /ui/deployments/preview`: what the form's deployment would do, with
/// a button that creates exactly it and the form again to change it.
pub async fn preview_deployment(State(st): State<AppState>, form: UiForm) -> Response {
    let u = &form.user;
    let spec = match spec_from_form(&form.fields) {
        Ok(s) => s,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Cannot preview that",
                &e,
                "/ui/deployments/new",
            );
        }
    };
    let p = match st.app.deploy_preview(&u.who.caller, &spec, &u.ctx).await {
        Ok(p) => p,
        Err(e) => return app_error(e),
    };
    let hosts = Table {
        caption: format!("Hosts ({})", p.hosts.len()),
        head: vec!["Ring", "Host", "Change", "When"],
        rows: p
            .hosts
            .iter()
            .map(|h| {
                vec![
                    Cell::from(h.ring.as_str()),
                    Cell {
                        text: h.asset.clone(),
                        href: Some(format!("/ui/assets/{}", seg(&h.asset))),
                    },
                    Cell::from(
                        h.packages
                            .iter()
                            .map(|c| {
                                format!(
                                    "{} {} → {}",
                                    c.name,
                                    c.from.as_deref().unwrap_or("(not installed)"),
                                    c.to
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    Cell::from(h.window.as_str()),
                ]
            })
            .collect(),
        empty: "No host would change: nothing to create.".into(),
    };
    let skipped = Table {
        caption: format!("Left alone ({})", p.skipped.len()),
        head: vec!["Host", "Why"],
        rows: p
            .skipped
            .iter()
            .map(|s| vec![Cell::from(s.asset.as_str()), Cell::from(s.reason.as_str())])
            .collect(),
        empty: "No target is left alone.".into(),
    };
    let rules = Table {
        caption: "Rules".into(),
        head: vec!["Rule"],
        rows: p
            .rules
            .iter()
            .map(|r| vec![Cell::from(r.as_str())])
            .collect(),
        empty: "Defaults.".into(),
    };
    let hidden: Vec<Field> = DEPLOY_FIELDS
        .iter()
        .map(|k| Field::new("hidden", k, "", get(&form.fields, k)))
        .collect();
    let mut forms = Vec::new();
    if !p.hosts.is_empty() {
        forms.push(Form {
            id: "create".into(),
            heading: "Create it".into(),
            action: "/ui/deployments/create".into(),
            submit: "Create deployment".into(),
            fields: hidden,
        });
    }
    let mut edit = deploy_form(&form.fields);
    edit.heading = "Change it".into();
    forms.push(edit);
    render(view::form_page(
        &u.page("Deployment preview", "/ui/deployments", &now_text(&st)),
        "Nothing is created yet. Creating it proposes the deployment; it starts from its board.",
        &[hosts, skipped, rules],
        &forms,
    ))
}

/// `POST /ui/deployments/create`: creates the previewed deployment and
/// opens its board.
pub async fn create_deployment(State(st): State<AppState>, form: UiForm) -> Response {
    let u = &form.user;
    let spec = match spec_from_form(&form.fields) {
        Ok(s) => s,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Cannot create that",
                &e,
                "/ui/deployments/new",
            );
        }
    };
    match st.app.deploy_create(&u.who.caller, &spec, &u.ctx).await {
        Ok(d) => {
            Redirect::to(&format!("/ui/deployments/{}", seg(&d.deployment.id))).into_response()
        }
        Err(e) => app_error(e),
    }
}

/// The add-exception form.
pub fn exception_form() -> Form {
    let mut kind = Field::new("select", "kind", "Kind", "deferred");
    kind.options = vec![
        (
            "deferred".into(),
            "deferred (risk accepted for a while)".into(),
        ),
        ("not_affected".into(), "not affected (VEX statement)".into()),
    ];
    let mut justification = Field::new("select", "justification", "VEX justification", "");
    justification.options = std::iter::once(("".to_string(), "(deferred: none)".to_string()))
        .chain(
            [
                "component_not_present",
                "vulnerable_code_not_present",
                "vulnerable_code_not_in_execute_path",
                "vulnerable_code_cannot_be_controlled_by_adversary",
                "inline_mitigations_already_exist",
            ]
            .iter()
            .map(|j| (j.to_string(), j.replace('_', " "))),
        )
        .collect();
    Form {
        id: "add".into(),
        heading: "Add an exception".into(),
        action: "/ui/exceptions".into(),
        submit: "Add exception".into(),
        fields: vec![
            Field::new("text", "advisory", "Advisory or CVE", "")
                .help("With or instead of a package."),
            Field::new("text", "package", "Package", ""),
            Field::new("text", "asset", "Asset", "").help("One asset, or a group."),
            Field::new("text", "group", "Group", ""),
            Field::new("text", "owner", "Risk owner", "").required(),
            Field::new("text", "reason", "Reason", "").required(),
            Field::new("text", "compensating_control", "Compensating control", "")
                .help("Required for a deferral."),
            Field::new("text", "expires", "Expires", "30d")
                .required()
                .help("A date (YYYY-MM-DD), RFC 3339, or a duration from now (30d, 72h)."),
            kind,
            justification,
        ],
    }
}

/// The revoke form: which exception, and why.
pub fn revoke_form(ids: &[String]) -> Form {
    let mut which = Field::new("select", "id", "Exception", "");
    which.options = ids.iter().map(|i| (i.clone(), i.clone())).collect();
    Form {
        id: "revoke".into(),
        heading: "Revoke an exception".into(),
        action: "/ui/exceptions/revoke".into(),
        submit: "Revoke".into(),
        fields: vec![which, Field::new("text", "reason", "Why", "").required()],
    }
}

/// `POST /ui/exceptions`: adds an exception (approvers and admins).
pub async fn add_exception(State(st): State<AppState>, form: UiForm) -> Response {
    let u = &form.user;
    let f = &form.fields;
    let opt = |k: &str| Some(get(f, k).to_string()).filter(|v| !v.is_empty());
    let spec = ExceptionSpec {
        advisory: opt("advisory"),
        package: opt("package"),
        asset: opt("asset"),
        group: opt("group"),
        owner: get(f, "owner").into(),
        reason: get(f, "reason").into(),
        compensating_control: get(f, "compensating_control").into(),
        expires: get(f, "expires").into(),
        kind: opt("kind"),
        justification: opt("justification"),
    };
    match st.app.add_exception(&u.who.caller, &spec, &u.ctx).await {
        Ok(_) => Redirect::to("/ui/exceptions").into_response(),
        Err(e) => app_error(e),
    }
}

/// `POST /ui/exceptions/revoke`: revokes one (approvers and admins).
pub async fn revoke_exception(State(st): State<AppState>, form: UiForm) -> Response {
    let u = &form.user;
    let id = get(&form.fields, "id").to_string();
    let reason = get(&form.fields, "reason");
    match st
        .app
        .revoke_exception(&u.who.caller, &id, reason, &u.ctx)
        .await
    {
        Ok(_) => Redirect::to("/ui/exceptions").into_response(),
        Err(e) => app_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_the_spec_it_says() {
        let s = spec_from_form(&form(&[
            (
                "packages",
                "curl=7.88.1-10+deb12u8\r\n\r\nlibcurl4 7.88.1-10+deb12u8",
            ),
            ("assets", "web-01, web-02 db-01"),
            ("canary", "web-01"),
            ("approval", "on"),
            ("max_concurrent", "2"),
            ("tier", ""),
            ("rehearse", "on"),
        ]))
        .unwrap();
        assert!(s.rings.iter().all(|r| r.require_rehearsal));
        assert_eq!(s.packages.len(), 2);
        assert_eq!(s.packages[1].name, "libcurl4");
        assert_eq!(s.assets, ["web-01", "web-02", "db-01"]);
        assert_eq!(s.rings.len(), 2);
        assert_eq!(s.rings[0].assets, ["web-01"]);
        assert!(!s.rings[0].approval && s.rings[1].approval);
        assert_eq!(s.rings[1].max_concurrent.as_deref(), Some("2"));
        assert_eq!(s.tier, None);
        // No ring options: the default single ring.
        assert!(
            spec_from_form(&form(&[("patches", "PB-1")]))
                .unwrap()
                .rings
                .is_empty()
        );
        let e = spec_from_form(&form(&[("packages", "curl=1\njunk")])).unwrap_err();
        assert!(e.contains("line 2") && e.contains("junk"), "{e}");
    }
}
