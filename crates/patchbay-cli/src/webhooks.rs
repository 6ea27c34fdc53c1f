//! `patchbay webhooks add|list|show|auth|test|deliveries|replay|rm`.
//!
//! Credentials for the receiver (auth headers, the PagerDuty routing key)
//! are read from environment variables or files named on the command line,
//! never given as arguments: an argument is visible to every user of the
//! machine in `ps` and lands in shell history.

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, json, table};
use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use patchbay_client::Client;
use patchbay_proto::api::{
    AuthHeader, DeliveryOut, List, ReplayOut, WebhookAuthSpec, WebhookCreated, WebhookOut,
    WebhookSpec, WebhookTestOut,
};

/// Where the receiver's credential comes from (never the command line).
#[derive(Debug, Args, Default)]
pub struct AuthArgs {
    /// Send header NAME with the value of environment variable VAR
    /// (repeatable), e.g. `--header-from-env Authorization=JIRA_AUTH` with
    /// JIRA_AUTH="Bearer <personal access token>".
    #[arg(long = "header-from-env", value_name = "NAME=VAR")]
    header_from_env: Vec<String>,
    /// Send header NAME with the contents of FILE (trailing newline
    /// dropped; repeatable).
    #[arg(long = "header-file", value_name = "NAME=FILE")]
    header_file: Vec<String>,
    /// Send `Authorization: Basic …` made of environment variable VAR
    /// holding `user:token` (Jira Cloud: your e-mail and an API token;
    /// ServiceNow: user and password).
    #[arg(long = "basic-auth-from-env", value_name = "VAR")]
    basic_auth_from_env: Option<String>,
}

fn env_var(var: &str, what: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => bail!("{what}: environment variable {var} is empty"),
        Err(_) => bail!("{what}: environment variable {var} is not set (or not UTF-8)"),
    }
}

fn split_pair<'a>(arg: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match arg.split_once('=') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n, v)),
        _ => bail!("{flag} {arg:?}: expected NAME=VALUE-SOURCE, e.g. Authorization=JIRA_AUTH"),
    }
}

impl AuthArgs {
    /// The headers, their values read from where the flags say.
    pub fn headers(&self) -> anyhow::Result<Vec<AuthHeader>> {
        let mut out = Vec::new();
        for a in &self.header_from_env {
            let (name, var) = split_pair(a, "--header-from-env")?;
            let value = env_var(var, &format!("--header-from-env {name}"))?;
            out.push(AuthHeader {
                name: name.into(),
                value,
            });
        }
        for a in &self.header_file {
            let (name, path) = split_pair(a, "--header-file")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--header-file {name}: reading {path}"))?;
            out.push(AuthHeader {
                name: name.into(),
                value: text.trim_end_matches(['\r', '\n']).to_string(),
            });
        }
        if let Some(var) = &self.basic_auth_from_env {
            let pair = env_var(var, "--basic-auth-from-env")?;
            if !pair.contains(':') {
                bail!("--basic-auth-from-env: {var} must hold user:token (value not shown)");
            }
            out.push(AuthHeader {
                name: "Authorization".into(),
                value: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            });
        }
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        self.header_from_env.is_empty()
            && self.header_file.is_empty()
            && self.basic_auth_from_env.is_none()
    }
}

/// `patchbay webhooks …`
// Parsed once per process: the size of `Add` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// Subscribe a receiver URL to events (admin or operator). Prints the
    /// signing secret once: keep it, it is never shown again.
    ///
    /// Each delivery is a POST signed with HMAC-SHA256 over "{t}.{body}"
    /// (header Patchbay-Signature: t=…,v1=…) and carries a Patchbay-Delivery
    /// id to deduplicate on; see docs/webhooks.md.
    Add {
        /// A name for the subscription (letters, digits, '-', '_', '.').
        name: String,
        /// The receiver's URL (http:// or https://); for jira and servicenow
        /// the instance's base URL (the API paths are appended). Not
        /// `--url`: that global flag names the Patchbay server.
        #[arg(long = "receiver", id = "receiver", value_name = "URL")]
        url: String,
        /// generic, slack, teams, pagerduty, jira or servicenow.
        #[arg(long, default_value = "generic")]
        template: String,
        /// An event kind to receive (repeatable; `*` or none: every kind).
        /// Kinds: docs/events.md.
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only events of this deployment.
        #[arg(long)]
        deployment: Option<String>,
        /// Only events naming this policy group.
        #[arg(long)]
        group: Option<String>,
        /// Only events naming this tier (P0…).
        #[arg(long)]
        tier: Option<String>,
        /// PagerDuty integration key (template pagerduty). Visible in `ps`:
        /// prefer --routing-key-from-env.
        #[arg(long, conflicts_with = "routing_key_from_env")]
        routing_key: Option<String>,
        /// Read the PagerDuty integration key from environment variable VAR.
        #[arg(long, value_name = "VAR")]
        routing_key_from_env: Option<String>,
        /// Jira project key (template jira).
        #[arg(long)]
        project: Option<String>,
        /// Attempts before a delivery is dead-lettered (1–50; default 10).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// The receiver's credential (headers sent with every request).
        #[command(flatten)]
        auth: AuthArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List subscriptions with their pending and dead-letter counts.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one subscription.
    Show {
        /// Its name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Replace the headers carrying the receiver's credential (rotate a
    /// token); the values are read from the environment or files and never
    /// shown again, only the headers' names.
    Auth {
        /// Its name.
        name: String,
        /// The new headers.
        #[command(flatten)]
        auth: AuthArgs,
        /// Remove every auth header.
        #[arg(long)]
        clear: bool,
    },
    /// Queue a `webhook.test` event for one subscription (delivered, signed
    /// and retried like any other).
    Test {
        /// Its name.
        name: String,
    },
    /// The delivery log, newest first.
    Deliveries {
        /// Its name.
        name: String,
        /// Only pending, delivered, dead or skipped ones.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send the dead letters again (each keeps its delivery id).
    Replay {
        /// Its name.
        name: String,
    },
    /// Remove a subscription and its delivery log.
    Rm {
        /// Its name.
        name: String,
    },
}

fn rows(list: &[WebhookOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.template.clone(),
                w.url.clone(),
                if w.events.is_empty() {
                    "*".into()
                } else {
                    w.events.join(",")
                },
                w.pending.to_string(),
                w.dead.to_string(),
                w.auth_headers.join(","),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "TEMPLATE", "URL", "EVENTS", "PENDING", "DEAD", "AUTH",
        ],
        &rows,
    )
}

fn delivery_rows(list: &[DeliveryOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.delivery_id.clone(),
                d.event_id.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                d.last_error.clone().unwrap_or_default(),
                if d.state == "pending" {
                    d.next_at.clone()
                } else {
                    d.delivered_at.clone().unwrap_or_default()
                },
            ]
        })
        .collect();
    table(
        &[
            "DELIVERY", "EVENT", "STATE", "ATTEMPTS", "STATUS", "ERROR", "AT",
        ],
        &rows,
    )
}

/// Runs a `webhooks` command.
pub fn run(c: &Client, cmd: WebhooksCmd) -> anyhow::Result<()> {
    match cmd {
        WebhooksCmd::Add {
            name,
            url,
            template,
            events,
            deployment,
            group,
            tier,
            routing_key,
            routing_key_from_env,
            project,
            max_attempts,
            auth,
            format,
        } => {
            let routing_key = match routing_key_from_env {
                Some(var) => Some(env_var(&var, "--routing-key-from-env")?),
                None => routing_key,
            };
            let auth_headers = auth.headers()?;
            let w: WebhookCreated = c.send(
                "POST",
                "/api/v1/webhooks",
                &WebhookSpec {
                    name,
                    url,
                    template: Some(template),
                    events,
                    deployment,
                    group,
                    tier,
                    routing_key,
                    project,
                    max_attempts,
                    auth_headers,
                },
            )?;
            match format {
                Format::Json => json(&w),
                Format::Table => {
                    print!("{}", rows(std::slice::from_ref(&w.webhook)));
                    println!("secret: {}", w.secret);
                    println!("(shown once: give it to the receiver to verify Patchbay-Signature)");
                    Ok(())
                }
            }
        }
        WebhooksCmd::List { format } => {
            let l: List<WebhookOut> = c.get("/api/v1/webhooks")?;
            emit(format, &l.items, |v| rows(v))
        }
        WebhooksCmd::Show { name, format } => {
            let w: WebhookOut = c.get(&format!("/api/v1/webhooks/{}", enc(&name)))?;
            emit(format, &w, |w| {
                let mut s = rows(std::slice::from_ref(w));
                for (k, v) in [
                    ("deployment", &w.deployment),
                    ("group", &w.group),
                    ("tier", &w.tier),
                ] {
                    if let Some(v) = v {
                        s.push_str(&format!("{k}: {v}\n"));
                    }
                }
                s.push_str(&format!(
                    "max attempts: {}; created by {} at {}\n",
                    w.max_attempts, w.created_by, w.created_at
                ));
                s
            })
        }
        WebhooksCmd::Auth { name, auth, clear } => {
            if clear != auth.is_empty() {
                bail!(
                    "give the new headers (--header-from-env, --header-file, --basic-auth-from-env) or --clear"
                );
            }
            let w: WebhookOut = c.send(
                "POST",
                &format!("/api/v1/webhooks/{}/auth", enc(&name)),
                &WebhookAuthSpec {
                    auth_headers: auth.headers()?,
                },
            )?;
            if w.auth_headers.is_empty() {
                println!("{name} sends no auth header");
            } else {
                println!("{name} sends {}", w.auth_headers.join(", "));
            }
            Ok(())
        }
        WebhooksCmd::Test { name } => {
            let t: WebhookTestOut = c.send(
                "POST",
                &format!("/api/v1/webhooks/{}/test", enc(&name)),
                &serde_json::json!({}),
            )?;
            println!("queued test event {} for {name}", t.event_id);
            Ok(())
        }
        WebhooksCmd::Deliveries {
            name,
            state,
            limit,
            format,
        } => {
            let mut path = format!("/api/v1/webhooks/{}/deliveries?limit={limit}", enc(&name));
            if let Some(s) = state {
                path.push_str(&format!("&state={}", enc(&s)));
            }
            let l: List<DeliveryOut> = c.get(&path)?;
            emit(format, &l.items, |v| delivery_rows(v))
        }
        WebhooksCmd::Replay { name } => {
            let r: ReplayOut = c.send(
                "POST",
                &format!("/api/v1/webhooks/{}/replay", enc(&name)),
                &serde_json::json!({}),
            )?;
            println!("replaying {} dead letter(s) of {name}", r.replayed);
            Ok(())
        }
        WebhooksCmd::Rm { name } => {
            c.delete(&format!("/api/v1/webhooks/{}", enc(&name)))?;
            println!("removed webhook {name}");
            Ok(())
        }
    }
}
