//! The `patchbay` binary: parses flags and hands over to [`patchbay_cli::run`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let cli = patchbay_cli::Cli::parse_env();
    patchbay_cli::init_logging(&cli);
    match patchbay_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patchbay: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
