//! The `patchbay-agent` binary: parses flags, sets up logging (stderr, text or
//! JSON lines) and hands over to the agent library ([`patchbay_agent::cli`]).
//!
//! It is built from this crate, so it links only the agent's own dependencies
//! (`scripts/test` checks that no server crate — sqlx, axum, hyper,
//! tokio-postgres — is among them).
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = patchbay_agent::cli::Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(patchbay_agent::cli::log_colors(
                std::env::var_os("NO_COLOR").as_deref(),
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ))
            .init();
    }
    std::process::ExitCode::from(patchbay_agent::cli::main_entry(args) as u8)
}
