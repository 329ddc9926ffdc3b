//! The `rediscover` binary: parse the command line, set up logging, run, print one error line.

use std::process::ExitCode;

use clap::Parser;
use rediscover::api::cli::{Cli, error_line, run, stdout_failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    hide_panic_messages();
    match run(cli) {
        Ok(code) => match stdout_failure() {
            // The command finished (a sync still indexed); only its printing failed.
            Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("rediscover: cannot write to standard output: {e}");
                ExitCode::from(2)
            }
            _ => code,
        },
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("rediscover: {}", error_line(&err));
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default level. Colours only on a terminal, so a
/// log file (`2>> sync.log`) holds plain text. Whatever `RUST_LOG` asks, the crates that read
/// candidate text log only warnings and errors (see [`CANDIDATE_TEXT_CRATES`]).
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
    use tracing_subscriber::layer::Filter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("rediscover=info,tower_http=warn"));
    // The outer filter passes on the level `RUST_LOG` asks for: without a hint it would mean
    // "anything", and every disabled `trace!` (the tokenizer has one per character) would build
    // its record before being dropped.
    let hint = Filter::<tracing_subscriber::Registry>::max_level_hint(&filter)
        .unwrap_or(LevelFilter::TRACE);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter)
        .with_filter(
            filter_fn(|meta| {
                *meta.level() <= tracing::Level::WARN || !reads_candidate_text(meta.target())
            })
            .with_max_level_hint(hint),
        );
    tracing_subscriber::registry().with(layer).init();
}

/// Crates that see candidate text and may quote it at debug or trace level: the tokenizer logs
/// every character it normalises, the keyword index and the document extractors their input.
const CANDIDATE_TEXT_CRATES: &[&str] = &[
    "tokenizers",
    "tantivy",
    "pdf_extract",
    "lopdf",
    "quick_xml",
    "zip",
];

/// Whether a log target belongs to one of [`CANDIDATE_TEXT_CRATES`].
fn reads_candidate_text(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    CANDIDATE_TEXT_CRATES.contains(&krate)
}

/// A panic message can quote the data being handled (a query word, a resume line), and
/// candidate data is never logged: panics print where they happened, not what they said,
/// unless `REDISCOVER_SHOW_PANICS=1` is set while debugging.
fn hide_panic_messages() {
    if std::env::var_os("REDISCOVER_SHOW_PANICS").is_some_and(|v| v == "1") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "rediscover: internal error{at} (a bug; its message is hidden because it may quote \
             candidate data: rerun with REDISCOVER_SHOW_PANICS=1 to see it)"
        );
    }));
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_levels_stay_disabled_for_every_crate() {
        // SAFETY: this test binary has no other test and no other thread reading the variable.
        unsafe { std::env::remove_var("RUST_LOG") };
        init_tracing();
        let level = tracing::level_filters::LevelFilter::current();
        assert!(
            level <= tracing::level_filters::LevelFilter::INFO,
            "the global level is {level}"
        );
        assert!(!tracing::enabled!(target: "tokenizers::normalizer", tracing::Level::TRACE));
    }
}
