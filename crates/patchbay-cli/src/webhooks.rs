//! `patchbay webhooks add|list|show|test|deliveries|replay|rm`.

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, json, table};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{
    DeliveryOut, List, ReplayOut, WebhookCreated, WebhookOut, WebhookSpec, WebhookTestOut,
};

/// `patchbay webhooks …`
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
        /// The receiver (http:// or https://); for jira and servicenow the
        /// instance's base URL (the API paths are appended).
        #[arg(long)]
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
        /// PagerDuty integration key (template pagerduty).
        #[arg(long)]
        routing_key: Option<String>,
        /// Jira project key (template jira).
        #[arg(long)]
        project: Option<String>,
        /// Attempts before a delivery is dead-lettered (1–50; default 10).
        #[arg(long)]
        max_attempts: Option<u32>,
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
            ]
        })
        .collect();
    table(
        &["NAME", "TEMPLATE", "URL", "EVENTS", "PENDING", "DEAD"],
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
            project,
            max_attempts,
            format,
        } => {
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
