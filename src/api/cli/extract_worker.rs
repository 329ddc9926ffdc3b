//! `rediscover extract-worker` (hidden): one resume file's text, extracted in a child process
//! that `sync` starts; see [`crate::extract::Worker`].

use std::process::ExitCode;

use crate::extract::{self, Format};

/// Extract one file's text from stdin to stdout as JSON (started by `sync`, not by people).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file's format.
    #[arg(long, value_parser = parse_format)]
    format: Format,
    /// Memory the extraction may use besides its stack, in bytes.
    #[arg(long)]
    memory_budget: u64,
}

fn parse_format(name: &str) -> Result<Format, String> {
    Format::from_ext(name).ok_or_else(|| format!("unknown format {name:?}: pdf, docx or txt"))
}

/// Runs `rediscover extract-worker`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(extract::serve_worker(
        args.format,
        args.memory_budget,
    )))
}
