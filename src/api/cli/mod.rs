//! The `rediscover` command line: one submodule per subcommand, each with its clap `Args` and `run`.
//!
//! Only this layer prints to stdout. Errors are returned to `main`, which prints one line.

use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

/// Prints a line on stdout like `println!`, but a closed or full stdout never stops the
/// command (a sync whose reader went away still updates its indexes): see [`say`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::api::cli::say(format_args!($($arg)*))
    };
}

mod demo;
mod eval;
mod extract_worker;
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
    /// Extract one resume file's text in a child process of `sync` (internal).
    #[command(name = "extract-worker", hide = true)]
    ExtractWorker(extract_worker::Args),
}

/// The first error writing to stdout, if any (later lines are not attempted).
static STDOUT_FAILED: OnceLock<std::io::Error> = OnceLock::new();

/// Writes one line on stdout; the first failure is kept (for [`stdout_failure`]) and later
/// lines are dropped, so the command itself goes on.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if STDOUT_FAILED.get().is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        let _ = STDOUT_FAILED.set(e);
    }
}

/// Why stdout could not be written, when it could not: `main` reports it unless the reader
/// simply went away (a broken pipe, as with `| head`).
pub fn stdout_failure() -> Option<&'static std::io::Error> {
    STDOUT_FAILED.get()
}

/// Resume files are extracted by child processes of this binary (`extract-worker`), so a
/// hostile file meets a memory limit and can only kill its child; on a thread of this process
/// if the binary cannot name itself.
pub(crate) fn extraction_in_child() -> crate::extract::Isolation {
    match crate::extract::Worker::current_exe() {
        Ok(worker) => crate::extract::Isolation::Process(worker),
        Err(e) => {
            tracing::warn!(error = %e, "resume files are extracted in this process: cannot find its executable");
            crate::extract::Isolation::Thread
        }
    }
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
        Command::ExtractWorker(args) => extract_worker::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Quoting(#[source] std::io::Error);

    /// The `rediscover ...` command lines of every EXAMPLES section (continuations joined,
    /// environment assignments, a leading pipe and output redirections left out), split into
    /// words as a shell would.
    fn example_command_lines() -> Vec<(String, Vec<String>)> {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, out: &mut Vec<(String, Vec<String>)>) {
            if let Some(help) = command.get_after_help() {
                let text = help.to_string().replace("\\\n", " ");
                for line in text.lines() {
                    let Some(at) = line.find("rediscover ") else {
                        continue;
                    };
                    if line.trim_start().starts_with('#') || line.contains('`') {
                        continue;
                    }
                    let command_line = line[at..].split(" >").next().unwrap_or_default();
                    out.push((line.to_owned(), shell_words(command_line)));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), &mut out);
        out
    }

    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.get_or_insert_with(String::new).push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    word.get_or_insert_with(String::new);
                }
                (None, c) if c.is_whitespace() => words.extend(word.take()),
                (None, c) => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        words
    }

    #[test]
    fn every_example_in_the_help_parses() {
        use clap::Parser;
        let examples = example_command_lines();
        for name in [
            "sync",
            "index",
            "match",
            "serve",
            "status",
            "demo",
            "eval",
            "subscribe",
        ] {
            assert!(
                examples
                    .iter()
                    .any(|(_, words)| words.iter().any(|w| w == name)),
                "no example of {name}"
            );
        }
        for (line, words) in examples {
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("the example {line:?} does not parse: {e}");
            }
        }
    }

    #[test]
    fn eval_weights_outside_zero_to_one_are_refused() {
        use clap::Parser;
        for bad in ["1.5", "-0.1", "x", "0.2,7"] {
            assert!(
                Cli::try_parse_from(["rediscover", "eval", "--weights", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["rediscover", "eval", "--weights", "0,0.25,1"]).is_ok());
    }

    #[test]
    fn eval_weights_default_to_what_the_help_shows() {
        use clap::{CommandFactory, Parser};
        let Command::Eval(args) = Cli::parse_from(["rediscover", "eval"]).command else {
            panic!("not eval");
        };
        let shown = Cli::command()
            .find_subcommand("eval")
            .and_then(|c| c.get_arguments().find(|a| a.get_id() == "weights"))
            .map(|a| {
                a.get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let typed = args
            .weights
            .iter()
            .map(f32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(shown, typed, "the help shows the default as it is typed");
        assert_eq!(args.weights.len(), 9);
    }

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
