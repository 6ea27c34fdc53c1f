//! `patchbay man` and `patchbay completions`: manual pages (roff, with
//! `clap_mangen`) and shell completions (`clap_complete`) generated from the
//! same clap definitions the binaries parse with, for `patchbay` and for
//! `patchbay-agent` — so they cannot drift from the flags. The Debian
//! packages (`scripts/package`) ship both.

use anyhow::Context;
use clap::CommandFactory;
use std::path::PathBuf;

/// Which program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Program {
    /// The server and its client (`patchbay`).
    Patchbay,
    /// The agent (`patchbay-agent`).
    PatchbayAgent,
}

impl Program {
    fn command(self) -> clap::Command {
        match self {
            Program::Patchbay => crate::Cli::command(),
            Program::PatchbayAgent => patchbay_agent::cli::Args::command(),
        }
    }
}

/// `patchbay man` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing): one page per
    /// command and subcommand, e.g. patchbay.1, patchbay-feeds-import.1,
    /// patchbay-agent.1.
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
    /// Only this program's pages (default: both).
    #[arg(long, value_enum)]
    pub program: Option<Program>,
}

/// `patchbay completions` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    /// The program to complete.
    #[arg(long, value_enum, default_value_t = Program::Patchbay)]
    pub program: Program,
}

/// Writes the manual pages; prints how many.
pub fn man(a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let programs = match a.program {
        Some(p) => vec![p],
        None => vec![Program::Patchbay, Program::PatchbayAgent],
    };
    let before = std::fs::read_dir(&a.out)?.count();
    for p in programs {
        clap_mangen::generate_to(p.command(), &a.out)
            .with_context(|| format!("writing manual pages into {}", a.out.display()))?;
    }
    let after = std::fs::read_dir(&a.out)?.count();
    println!(
        "wrote manual pages into {} ({} files there now, {} new)",
        a.out.display(),
        after,
        after.saturating_sub(before)
    );
    Ok(())
}

/// Prints the completion script.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = a.program.command();
    let name = cmd.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (a
    // closed pipe, `| head`); a write error here is handled instead.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, name, &mut script);
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the completion script"),
    }
}
