//! `patchbay contacts add|list|deliveries|rm` and
//! `patchbay escalations add|list|show|ack|rm` (docs/notifications.md).

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, json, table};
use clap::Subcommand;
use patchbay_client::Client;
use patchbay_proto::api::{
    ContactOut, ContactSpec, EmailOut, EscalationAckIn, EscalationChainDetail, EscalationChainOut,
    EscalationOut, EscalationSpec, List,
};

/// `patchbay contacts …`
#[derive(Debug, Subcommand)]
pub enum ContactsCmd {
    /// Add a notification contact: an email address, and the event kinds
    /// emailed to it (admin or operator). Escalation steps name contacts
    /// (`email:NAME`); a team or role is a contact whose address is its list.
    Add {
        /// A name (letters, digits, '-', '_', '.').
        name: String,
        /// The address, local@domain.
        #[arg(long)]
        email: String,
        /// An event kind to email (repeatable): approval.requested,
        /// deployment.completed, exception.review, … (docs/events.md). None:
        /// only escalation steps addressed to it.
        #[arg(long = "event")]
        events: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List contacts with their pending, sent and dead email counts.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The email delivery log, newest first.
    Deliveries {
        /// Only this contact's.
        #[arg(long)]
        contact: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a contact and its email log.
    Rm {
        /// Its name.
        name: String,
    },
}

/// `patchbay escalations …`
#[derive(Debug, Subcommand)]
pub enum EscalationsCmd {
    /// Add an escalation chain (admin or operator): ordered steps for each
    /// pending approval (--on approval) or SLA at-risk/breached finding
    /// (--on sla) until someone acknowledges.
    ///
    /// Example: --step email:alice --step email:bob:15m --step webhook:noc-pager:30m
    /// (alice at once; bob 15 minutes later; the pager 30 minutes after that).
    Add {
        /// A name (letters, digits, '-', '_', '.').
        name: String,
        /// What starts it: approval or sla.
        #[arg(long = "on")]
        trigger: String,
        /// A step, in order (repeatable): CHANNEL:NAME[:WAIT] — email:CONTACT
        /// or webhook:SUBSCRIPTION, WAIT after the previous step (e.g. 15m,
        /// 1h30m; default 0).
        #[arg(long = "step", required = true)]
        steps: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List chains with their open escalations.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show a chain and its escalations (each step fired, and when).
    Show {
        /// Its name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Acknowledge an open escalation: its chain stops (audited).
    Ack {
        /// The chain.
        name: String,
        /// The escalation, ESC-<n>.
        id: String,
        /// Who is on it, what happens next.
        #[arg(long)]
        comment: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a chain (its open escalations stop).
    Rm {
        /// Its name.
        name: String,
    },
}

fn contact_rows(list: &[ContactOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.email.clone(),
                c.events.join(","),
                c.pending.to_string(),
                c.sent.to_string(),
                c.dead.to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "EMAIL", "EVENTS", "PENDING", "SENT", "DEAD"],
        &rows,
    )
}

fn email_rows(list: &[EmailOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.contact.clone(),
                d.event_id.clone(),
                d.state.clone(),
                d.attempts.to_string(),
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
        &["CONTACT", "EVENT", "STATE", "ATTEMPTS", "ERROR", "AT"],
        &rows,
    )
}

fn chain_rows(list: &[EscalationChainOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.trigger.clone(),
                c.steps.join(" → "),
                c.open.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "ON", "STEPS", "OPEN"], &rows)
}

fn escalation_rows(list: &[EscalationOut]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.state.clone(),
                e.subject.clone(),
                e.steps
                    .iter()
                    .map(|s| format!("{}:{}@{}", s.channel, s.to, s.at))
                    .collect::<Vec<_>>()
                    .join(" "),
                e.next_at.clone().unwrap_or_default(),
                e.closed_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "SUBJECT", "STEPS FIRED", "NEXT", "CLOSED BY"],
        &rows,
    )
}

/// Runs a `contacts` command.
pub fn run_contacts(c: &Client, cmd: ContactsCmd) -> anyhow::Result<()> {
    match cmd {
        ContactsCmd::Add {
            name,
            email,
            events,
            format,
        } => {
            let o: ContactOut = c.send(
                "POST",
                "/api/v1/contacts",
                &ContactSpec {
                    name,
                    email,
                    events,
                },
            )?;
            emit(format, &o, |o| contact_rows(std::slice::from_ref(o)))
        }
        ContactsCmd::List { format } => {
            let l: List<ContactOut> = c.get("/api/v1/contacts")?;
            emit(format, &l.items, |v| contact_rows(v))
        }
        ContactsCmd::Deliveries {
            contact,
            limit,
            format,
        } => {
            let mut path = format!("/api/v1/contacts/deliveries?limit={limit}");
            if let Some(n) = contact {
                path.push_str(&format!("&contact={}", enc(&n)));
            }
            let l: List<EmailOut> = c.get(&path)?;
            emit(format, &l.items, |v| email_rows(v))
        }
        ContactsCmd::Rm { name } => {
            c.delete(&format!("/api/v1/contacts/{}", enc(&name)))?;
            print!("{}", table(&["REMOVED CONTACT"], &[vec![name]]));
            Ok(())
        }
    }
}

/// Runs an `escalations` command.
pub fn run(c: &Client, cmd: EscalationsCmd) -> anyhow::Result<()> {
    match cmd {
        EscalationsCmd::Add {
            name,
            trigger,
            steps,
            format,
        } => {
            let o: EscalationChainOut = c.send(
                "POST",
                "/api/v1/escalations",
                &EscalationSpec {
                    name,
                    trigger,
                    steps,
                },
            )?;
            emit(format, &o, |o| chain_rows(std::slice::from_ref(o)))
        }
        EscalationsCmd::List { format } => {
            let l: List<EscalationChainOut> = c.get("/api/v1/escalations")?;
            emit(format, &l.items, |v| chain_rows(v))
        }
        EscalationsCmd::Show { name, format } => {
            let d: EscalationChainDetail = c.get(&format!("/api/v1/escalations/{}", enc(&name)))?;
            match format {
                Format::Json => json(&d),
                Format::Table => {
                    print!("{}", chain_rows(std::slice::from_ref(&d.chain)));
                    println!();
                    print!("{}", escalation_rows(&d.escalations));
                    Ok(())
                }
            }
        }
        EscalationsCmd::Ack {
            name,
            id,
            comment,
            format,
        } => {
            let o: EscalationOut = c.send(
                "POST",
                &format!("/api/v1/escalations/{}/ack", enc(&name)),
                &EscalationAckIn { id, comment },
            )?;
            emit(format, &o, |o| escalation_rows(std::slice::from_ref(o)))
        }
        EscalationsCmd::Rm { name } => {
            c.delete(&format!("/api/v1/escalations/{}", enc(&name)))?;
            print!("{}", table(&["REMOVED CHAIN"], &[vec![name]]));
            Ok(())
        }
    }
}
