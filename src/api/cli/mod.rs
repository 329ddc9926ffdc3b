//! The `rediscover` command line: one submodule per subcommand, each with its clap `Args` and `run`.
//!
//! Only this layer prints to stdout. Errors are returned to `main`, which prints one line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod eval;
mod index;
mod matching;
mod mock;
mod render;
mod serve;
mod status;
mod sync;
mod webhooks;

/// Find the right past candidates in your Lever talent pool for a new posting, on your machine.
///
/// Typical use: `rediscover sync` nightly, then `rediscover match --posting-id ID` or
/// `rediscover serve` when a posting opens. Candidate data never leaves this machine.
#[derive(Debug, Parser)]
#[command(name = "rediscover", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole job on a generated pool: start a mock Lever, sync, index, match a posting.
    Demo(demo::Args),
    /// Serve a local Lever-compatible API (generated pool or fixture) for demos, tests, benchmarks.
    MockLever(mock::Args),
    /// Copy the Lever talent pool into the local store and update the indexes.
    Sync(sync::Args),
    /// Show what the local store and the indexes hold.
    Status(status::Args),
    /// Rebuild the keyword and vector indexes from the local store.
    Index(index::Args),
    /// Rank past candidates for a posting or a free-text job description.
    Match(matching::Args),
    /// Serve the HTTP query API, and receive Lever's webhooks for the next sync.
    ///
    /// Webhooks: point Lever's webhooks (candidate stage change, archive change, hired,
    /// deleted, ...) at `https://<your host>/webhooks/lever` (Lever delivers only over HTTPS,
    /// so put a TLS proxy or tunnel in front) and write each webhook's signature token on its
    /// own line of `DATA/webhook-tokens` (`rediscover webhooks subscribe --url URL` does both
    /// through Lever's API). Signed deliveries wait in `DATA/webhook-inbox.jsonl`
    /// for the next `rediscover sync`, which fetches those opportunities again; a deleted
    /// candidate is hidden from answers at once.
    Serve(serve::Args),
    /// Subscribe `serve` to Lever's candidate webhooks, or list the subscriptions.
    Webhooks(webhooks::Args),
    /// Measure ranking quality on the real evaluation data sets.
    Eval(eval::Args),
}

/// Fails unless `data` holds a synced store: the commands that read a data folder would
/// otherwise answer with zeros (or build an empty index) for a mistyped `--data`.
pub(crate) fn require_store(data: &std::path::Path) -> anyhow::Result<()> {
    if crate::store::Store::exists(data) {
        return Ok(());
    }
    let what = if data.is_dir() {
        "no synced store in"
    } else {
        "no data folder"
    };
    anyhow::bail!(
        "{what} {}: run `rediscover sync --data {}` first (or pass the --data folder that sync wrote)",
        data.display(),
        data.display()
    )
}

/// The one line `main` prints for an error: each cause of the chain once, joined by `: `.
///
/// Many error types already quote their source in their own message (`{0}`, `{source}`), so a
/// cause whose text is already in the line is left out instead of repeated.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    // One line, whatever a cause's message holds.
    line.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::MockLever(args) => mock::run(args),
        Command::Sync(args) => sync::run(args),
        Command::Status(args) => status::run(args),
        Command::Index(args) => index::run(args),
        Command::Match(args) => matching::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Webhooks(args) => webhooks::run(args),
        Command::Eval(args) => eval::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address already in use");
        let err = anyhow::Error::new(Quoting(io)).context("binding 127.0.0.1:7700");
        assert_eq!(
            error_line(&err),
            "binding 127.0.0.1:7700: address already in use"
        );
        let err = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(error_line(&err), "outer: first second");
    }
}
