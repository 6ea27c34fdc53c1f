//! `patchbay windows …`, `patchbay blackouts …`, `patchbay plan preview`,
//! `patchbay calendar`.

use crate::Format;
use crate::conn::enc;
use crate::output::{emit, json, table};
use anyhow::Context;
use clap::Subcommand;
use patchbay_app::schedule::{occurrences_out, window_from_spec};
use patchbay_client::Client;
use patchbay_proto::api::{
    BlackoutApprovalIn, BlackoutApprovalOut, BlackoutOut, BlackoutSpec, List, PlanOut, PlanRequest,
    WindowOut, WindowSpec,
};
use std::path::PathBuf;

const DST_HELP: &str = "\
Time zones and daylight saving time follow RFC 5545: each occurrence is a local \
wall-clock time in --tz. A local start time that does not exist (in a \
spring-forward gap) is interpreted with the UTC offset from before the gap \
(02:30 on the US spring-forward day in America/New_York is 07:30Z, shown as \
03:30 EDT); an ambiguous one (in a fall-back fold) is the first of the two \
instants; durations are exact elapsed time (a 4h window lasts 4 real hours \
across a transition). --offset-days moves each instance's local date and keeps \
its wall time (Patch Tuesday + 2: FREQ=MONTHLY;BYDAY=2TU with --offset-days 2).

RRULE parts: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY), INTERVAL, BYDAY (e.g. TU, \
2TU, -1FR), BYMONTHDAY (negatives count from the month's end), BYMONTH, COUNT, \
UNTIL (YYYYMMDDTHHMMSSZ, or local YYYYMMDD[THHMMSS]). Others are rejected by name.
";

/// The definition flags shared by `preview` and `add`.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowDef {
    /// RFC 5545 recurrence rule, e.g. "FREQ=MONTHLY;BYDAY=2TU".
    #[arg(long)]
    pub rrule: String,
    /// Local start date-time in --tz: YYYY-MM-DDTHH:MM (first possible instance).
    #[arg(long)]
    pub dtstart: String,
    /// IANA time zone, e.g. Europe/Berlin.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// Duration of each occurrence, e.g. 4h, 90m, 1h30m.
    #[arg(long)]
    pub duration: String,
    /// Days added to each instance's local date (Patch Tuesday + N).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub offset_days: i32,
    /// No new job starts within this long of the window's end, e.g. 30m.
    #[arg(long)]
    pub cutoff: Option<String>,
}

impl WindowDef {
    fn spec(&self, name: &str) -> WindowSpec {
        WindowSpec {
            name: name.to_string(),
            rrule: self.rrule.clone(),
            dtstart: self.dtstart.clone(),
            tz: self.tz.clone(),
            duration: self.duration.clone(),
            offset_days: self.offset_days,
            cutoff: self.cutoff.clone(),
            groups: vec![],
            assets: vec![],
            description: String::new(),
        }
    }
}

/// `patchbay windows …`
#[derive(Debug, Subcommand)]
pub enum WindowsCmd {
    /// Print the next occurrences of a window definition (no server needed).
    ///
    /// JSON output is a list of {"start": RFC 3339, "end": RFC 3339} in UTC.
    #[command(after_long_help = DST_HELP)]
    Preview {
        /// The definition.
        #[command(flatten)]
        def: WindowDef,
        /// How many occurrences.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// List occurrences not ended by this instant (RFC 3339; default now).
        #[arg(long)]
        from: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Store a maintenance window, assigned to policy groups and/or assets
    /// (neither: every asset).
    #[command(after_long_help = DST_HELP)]
    Add {
        /// Unique name.
        name: String,
        /// The definition.
        #[command(flatten)]
        def: WindowDef,
        /// A policy group it applies to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// An asset it applies to (repeatable).
        #[arg(long = "asset")]
        assets: Vec<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List stored windows with their next occurrences.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a stored window.
    Rm {
        /// The window's name.
        name: String,
    },
}

/// `patchbay blackouts …`
#[derive(Debug, Subcommand)]
pub enum BlackoutsCmd {
    /// Store a blackout (change freeze): nothing is deployed in [start, end).
    /// With no --group and no --asset it applies to every asset.
    Add {
        /// Unique name.
        name: String,
        /// Start: RFC 3339, or YYYY-MM-DD[THH:MM] in --tz.
        #[arg(long)]
        start: String,
        /// End (exclusive), same forms.
        #[arg(long)]
        end: String,
        /// Zone of local --start/--end (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// Who owns it (required).
        #[arg(long)]
        owner: String,
        /// A policy group it applies to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// An asset it applies to (repeatable).
        #[arg(long = "asset")]
        assets: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List blackouts and their approvals.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a blackout (and its approvals).
    Rm {
        /// The blackout's name.
        name: String,
    },
    /// Let an out-of-band deployment enter this blackout (approver or admin;
    /// not the deployment's creator). You are recorded as the approver.
    Approve {
        /// The blackout's name.
        name: String,
        /// The out-of-band deployment, DEP-OOB-….
        #[arg(long)]
        deployment: String,
        /// Why (required).
        #[arg(long)]
        note: String,
    },
}

/// `patchbay plan …`
#[derive(Debug, Subcommand)]
pub enum PlanCmd {
    /// Forecast when each asset is patched (earliest eligible window, ring by
    /// ring, blackouts and soak respected) and which findings will miss their
    /// SLA, with the reasons.
    Preview {
        /// Plan this deployment's assets (default: every asset with open findings).
        #[arg(long)]
        deployment: Option<String>,
        /// Only assets in this policy group.
        #[arg(long)]
        group: Option<String>,
        /// Plan from this instant (RFC 3339; default now).
        #[arg(long)]
        from: Option<String>,
        /// Horizon in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Expected duration of one asset's job (e.g. 30m).
        #[arg(long, default_value = "30m")]
        job_estimate: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `patchbay calendar` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CalendarArgs {
    /// From (RFC 3339 or YYYY-MM-DD, UTC; default a week ago).
    #[arg(long)]
    pub from: Option<String>,
    /// To (default 90 days ahead).
    #[arg(long)]
    pub to: Option<String>,
    /// Only windows and blackouts of this policy group (and fleet-wide ones).
    #[arg(long)]
    pub group: Option<String>,
    /// Write the .ics here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn local_preview(
    def: &WindowDef,
    count: usize,
    from: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let w = window_from_spec(&def.spec("preview")).map_err(|e| anyhow::anyhow!(e.message))?;
    let from = match from {
        Some(f) => patchbay_core::when::instant("from", f, &jiff::tz::TimeZone::UTC)?,
        None => jiff::Timestamp::now(),
    };
    let occ = occurrences_out(&w, from, count);
    match format {
        Format::Json => json(&occ),
        Format::Table => {
            let tz = w.tz().clone();
            let local = |s: &str| -> String {
                s.parse::<jiff::Timestamp>()
                    .map(|t| {
                        t.to_zoned(tz.clone())
                            .strftime("%a %Y-%m-%d %H:%M %Z")
                            .to_string()
                    })
                    .unwrap_or_default()
            };
            let rows: Vec<Vec<String>> = occ
                .iter()
                .map(|o| {
                    vec![
                        o.start.clone(),
                        o.end.clone(),
                        local(&o.start),
                        local(&o.end),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["START (UTC)", "END (UTC)", "LOCAL START", "LOCAL END"],
                    &rows
                )
            );
            if occ.len() < count {
                println!("(the rule ends after {} occurrences)", occ.len());
            }
            Ok(())
        }
    }
}

fn window_rows(ws: &[WindowOut]) -> String {
    let rows: Vec<Vec<String>> = ws
        .iter()
        .map(|w| {
            vec![
                w.spec.name.clone(),
                w.spec.rrule.clone(),
                format!("{} {}", w.spec.dtstart, w.spec.tz),
                w.spec.duration.clone(),
                w.spec.offset_days.to_string(),
                w.spec.cutoff.clone().unwrap_or_default(),
                scope(&w.spec.groups, &w.spec.assets),
                w.next.first().map(|o| o.start.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "RRULE",
            "DTSTART",
            "DURATION",
            "OFFSET",
            "CUTOFF",
            "APPLIES TO",
            "NEXT",
        ],
        &rows,
    )
}

fn scope(groups: &[String], assets: &[String]) -> String {
    if groups.is_empty() && assets.is_empty() {
        return "every asset".into();
    }
    let mut v: Vec<String> = groups.iter().map(|g| format!("group:{g}")).collect();
    v.extend(assets.iter().cloned());
    v.join(",")
}

/// `patchbay windows …`
pub fn windows(url: &str, token: Option<String>, cmd: WindowsCmd) -> anyhow::Result<()> {
    if let WindowsCmd::Preview {
        def,
        count,
        from,
        format,
    } = &cmd
    {
        return local_preview(def, *count, from.as_deref(), *format);
    }
    let c = crate::conn::connect(url, token)?;
    match cmd {
        WindowsCmd::Preview { .. } => unreachable!("handled above"),
        WindowsCmd::Add {
            name,
            def,
            groups,
            assets,
            description,
            format,
        } => {
            let mut spec = def.spec(&name);
            spec.groups = groups;
            spec.assets = assets;
            spec.description = description;
            let w: WindowOut = c.send("POST", "/api/v1/windows", &spec)?;
            emit(format, &w, |v| window_rows(std::slice::from_ref(v)))
        }
        WindowsCmd::List { format } => {
            let l: List<WindowOut> = c.get("/api/v1/windows")?;
            emit(format, &l.items, |v| window_rows(v))
        }
        WindowsCmd::Rm { name } => {
            c.delete(&format!("/api/v1/windows/{}", enc(&name)))?;
            println!("removed window {name}");
            Ok(())
        }
    }
}

fn blackout_rows(bs: &[BlackoutOut]) -> String {
    let rows: Vec<Vec<String>> = bs
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.start.clone(),
                b.end.clone(),
                b.owner.clone(),
                scope(&b.groups, &b.assets),
                b.approvals
                    .iter()
                    .map(|a| format!("{} by {}", a.deployment, a.approver))
                    .collect::<Vec<_>>()
                    .join(", "),
                b.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "START",
            "END",
            "OWNER",
            "APPLIES TO",
            "OOB APPROVALS",
            "REASON",
        ],
        &rows,
    )
}

/// `patchbay blackouts …`
pub fn blackouts(c: &Client, cmd: BlackoutsCmd) -> anyhow::Result<()> {
    match cmd {
        BlackoutsCmd::Add {
            name,
            start,
            end,
            tz,
            reason,
            owner,
            groups,
            assets,
            format,
        } => {
            let spec = BlackoutSpec {
                name,
                start,
                end,
                tz,
                reason,
                owner,
                groups,
                assets,
            };
            let b: BlackoutOut = c.send("POST", "/api/v1/blackouts", &spec)?;
            emit(format, &b, |v| blackout_rows(std::slice::from_ref(v)))
        }
        BlackoutsCmd::List { format } => {
            let l: List<BlackoutOut> = c.get("/api/v1/blackouts")?;
            emit(format, &l.items, |v| blackout_rows(v))
        }
        BlackoutsCmd::Rm { name } => {
            c.delete(&format!("/api/v1/blackouts/{}", enc(&name)))?;
            println!("removed blackout {name}");
            Ok(())
        }
        BlackoutsCmd::Approve {
            name,
            deployment,
            note,
        } => {
            let a: BlackoutApprovalOut = c.send(
                "POST",
                &format!("/api/v1/blackouts/{}/approvals", enc(&name)),
                &BlackoutApprovalIn { deployment, note },
            )?;
            println!(
                "{} may enter blackout {name}: approved by {} at {}",
                a.deployment, a.approver, a.approved_at
            );
            Ok(())
        }
    }
}

/// `patchbay plan …`
pub fn plan(c: &Client, cmd: PlanCmd) -> anyhow::Result<()> {
    let PlanCmd::Preview {
        deployment,
        group,
        from,
        days,
        job_estimate,
        format,
    } = cmd;
    let req = PlanRequest {
        deployment,
        group,
        from,
        days: Some(days),
        job_estimate: Some(job_estimate),
    };
    let p: PlanOut = c.send("POST", "/api/v1/plan/preview", &req)?;
    match format {
        Format::Json => json(&p),
        Format::Table => {
            println!("{}", p.summary);
            if p.out_of_band {
                println!(
                    "out-of-band deployment {}: approved blackouts are entered",
                    p.deployment.as_deref().unwrap_or("")
                );
            }
            let rings: Vec<Vec<String>> = p
                .rings
                .iter()
                .map(|r| {
                    vec![
                        r.ring.clone(),
                        r.assets.to_string(),
                        r.unplanned.to_string(),
                        r.earliest.clone(),
                        r.first.clone().unwrap_or_default(),
                        r.last.clone().unwrap_or_default(),
                        r.soak.clone(),
                    ]
                })
                .collect();
            println!();
            print!(
                "{}",
                table(
                    &[
                        "RING",
                        "ASSETS",
                        "UNPLANNED",
                        "EARLIEST",
                        "FIRST",
                        "LAST",
                        "SOAK"
                    ],
                    &rings
                )
            );
            let assets: Vec<Vec<String>> = p
                .assets
                .iter()
                .map(|a| {
                    vec![
                        a.asset.clone(),
                        a.ring.clone().unwrap_or_else(|| "-".into()),
                        a.planned.clone().unwrap_or_else(|| "-".into()),
                        a.window.clone().unwrap_or_default(),
                        a.findings.to_string(),
                        match (&a.unplanned, a.enters_blackouts.is_empty()) {
                            (Some(u), _) => u.clone(),
                            (None, false) => {
                                format!("enters blackout {}", a.enters_blackouts.join(", "))
                            }
                            (None, true) => String::new(),
                        },
                    ]
                })
                .collect();
            println!();
            print!(
                "{}",
                table(
                    &["ASSET", "RING", "PLANNED", "WINDOW", "FINDINGS", "NOTE"],
                    &assets
                )
            );
            if !p.at_risk.is_empty() {
                println!("\nSLA at risk:");
                let risk: Vec<Vec<String>> = p
                    .at_risk
                    .iter()
                    .map(|r| {
                        vec![
                            r.tier.clone(),
                            r.due.clone(),
                            r.planned.clone().unwrap_or_else(|| "unplanned".into()),
                            r.asset.clone(),
                            r.package.clone(),
                            r.cve.clone(),
                            r.reasons.join("; "),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "TIER", "DUE", "PLANNED", "ASSET", "PACKAGE", "ADVISORY", "WHY"
                        ],
                        &risk
                    )
                );
            }
            Ok(())
        }
    }
}

/// `patchbay calendar`
pub fn calendar(c: &Client, a: CalendarArgs) -> anyhow::Result<()> {
    let mut q = Vec::new();
    for (k, v) in [("from", &a.from), ("to", &a.to), ("group", &a.group)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    let path = if q.is_empty() {
        "/api/v1/calendar.ics".to_string()
    } else {
        format!("/api/v1/calendar.ics?{}", q.join("&"))
    };
    let ics = c.get_text(&path)?;
    match a.out {
        Some(p) => {
            std::fs::write(&p, ics).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        // iCalendar for calendar applications: exact.
        None => std::print!("{ics}"),
    }
    Ok(())
}
