//! `patchbay users add|list|passwd|disable|enable|sessions|end-session`:
//! the people who sign in to the dashboard, and their sessions.
//!
//! A password is never an argument (arguments end up in shell history and
//! `ps`): it is read from standard input (`--password-stdin`, the first
//! line), a file (`--password-file`) or an environment variable
//! (`--password-env`).

use crate::Format;
use crate::conn::enc;
use crate::output::{clean, json, table};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use patchbay_client::Client;
use patchbay_core::auth::Role;
use patchbay_proto::api::{AddUser, List, SessionInfo, SetPassword, SetUserDisabled, UserInfo};
use std::io::BufRead;
use std::path::PathBuf;

/// Where a password comes from (exactly one).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PasswordFrom {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
}

impl PasswordFrom {
    fn read(&self) -> anyhow::Result<String> {
        let line = |text: &str| text.lines().next().unwrap_or("").to_string();
        let p = if self.password_stdin {
            let mut s = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut s)
                .context("reading the password from standard input")?;
            line(&s)
        } else if let Some(f) = &self.password_file {
            line(
                &std::fs::read_to_string(f)
                    .with_context(|| format!("reading the password from {}", f.display()))?,
            )
        } else if let Some(v) = &self.password_env {
            std::env::var(v).with_context(|| format!("environment variable {v} is not set"))?
        } else {
            bail!("give one of --password-stdin, --password-file or --password-env");
        };
        if p.is_empty() {
            bail!("the password is empty");
        }
        Ok(p)
    }
}

/// `patchbay users …`
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a person who signs in to the dashboard (admin).
    Add {
        /// Sign-in name: letters, digits, '.', '_', '@', '-'.
        name: String,
        /// Role: admin, operator, approver or auditor.
        #[arg(long)]
        role: Role,
        /// Where the password (12–1024 characters) comes from.
        #[command(flatten)]
        password: PasswordFrom,
    },
    /// List users (never their passwords), with lockouts and last sign-in.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Set a user's password; every session of that user ends.
    Passwd {
        /// The user.
        name: String,
        /// Where the new password comes from.
        #[command(flatten)]
        password: PasswordFrom,
    },
    /// Disable a user: sign-ins are refused and its sessions end.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user.
        name: String,
    },
    /// List dashboard sessions (open ones; `--all` for ended ones too).
    Sessions {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Ended sessions too.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// End a session by id (its browser is signed out at its next request).
    EndSession {
        /// The session's id (`patchbay users sessions`).
        id: i64,
    },
}

fn user_rows(users: &[UserInfo]) -> Vec<Vec<String>> {
    users
        .iter()
        .map(|u| {
            vec![
                clean(&u.name).into_owned(),
                u.role.to_string(),
                u.created_at.clone(),
                u.last_login_at.clone().unwrap_or_else(|| "never".into()),
                u.failed_logins.to_string(),
                u.locked_until.clone().unwrap_or_else(|| "-".into()),
                u.disabled_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

/// Runs a `users` command.
pub fn run(c: &Client, cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add {
            name,
            role,
            password,
        } => {
            let password = password.read()?;
            let u: UserInfo = c.send(
                "POST",
                "/api/v1/users",
                &AddUser {
                    name,
                    role,
                    password,
                },
            )?;
            println!("added user {} (role {})", clean(&u.name), u.role);
        }
        UsersCmd::List { format } => {
            let l: List<UserInfo> = c.get("/api/v1/users")?;
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => print!(
                    "{}",
                    table(
                        &[
                            "NAME",
                            "ROLE",
                            "CREATED",
                            "LAST SIGN-IN",
                            "FAILURES",
                            "LOCKED UNTIL",
                            "DISABLED"
                        ],
                        &user_rows(&l.items)
                    )
                ),
            }
        }
        UsersCmd::Passwd { name, password } => {
            let password = password.read()?;
            let () = c.send(
                "POST",
                &format!("/api/v1/users/{}/password", enc(&name)),
                &SetPassword { password },
            )?;
            println!(
                "password of {} changed; its sessions have ended",
                clean(&name)
            );
        }
        UsersCmd::Disable { name } => set_disabled(c, &name, true)?,
        UsersCmd::Enable { name } => set_disabled(c, &name, false)?,
        UsersCmd::Sessions { user, all, format } => {
            let mut path = format!("/api/v1/sessions?all={all}");
            if let Some(u) = &user {
                path.push_str(&format!("&user={}", enc(u)));
            }
            let l: List<SessionInfo> = c.get(&path)?;
            match format {
                Format::Json => json(&l.items)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = l
                        .items
                        .iter()
                        .map(|s| {
                            vec![
                                s.id.to_string(),
                                clean(&s.user).into_owned(),
                                s.created_at.clone(),
                                s.last_seen_at.clone(),
                                s.expires_at.clone(),
                                s.revoked_at.clone().unwrap_or_else(|| "-".into()),
                                clean(&s.remote).into_owned(),
                                clean(&s.user_agent).into_owned(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "ID",
                                "USER",
                                "SIGNED IN",
                                "LAST REQUEST",
                                "ENDS",
                                "ENDED",
                                "FROM",
                                "BROWSER"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        UsersCmd::EndSession { id } => {
            c.delete(&format!("/api/v1/sessions/{id}"))?;
            println!("ended session {id}");
        }
    }
    Ok(())
}

fn set_disabled(c: &Client, name: &str, disabled: bool) -> anyhow::Result<()> {
    let u: UserInfo = c.send(
        "POST",
        &format!("/api/v1/users/{}/disabled", enc(name)),
        &SetUserDisabled { disabled },
    )?;
    if disabled {
        println!("disabled {}; its sessions have ended", clean(&u.name));
    } else {
        println!("enabled {}", clean(&u.name));
    }
    Ok(())
}
