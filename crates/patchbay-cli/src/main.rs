//! The `patchbay` binary: parses flags and hands over to [`patchbay_cli::run`].
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = patchbay_cli::Cli::parse();
    patchbay_cli::init_logging(&cli);
    match patchbay_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patchbay: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
