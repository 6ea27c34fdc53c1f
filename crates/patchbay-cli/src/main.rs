//! The `patchbay` binary: parses flags and hands over to [`patchbay_cli::run`].
#![forbid(unsafe_code)]

/// mimalloc, not glibc's malloc (ADR 0025): after a read of a fleet's
/// findings glibc spent up to a second consolidating the freed rows on the
/// next large allocation, and ~30 % of a fleet assessment's CPU in malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
