//! `rediscover index`: rebuild the keyword and vector indexes from the local store.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::index::{Embedder, Progress, ProgressEvent, VectorCache};
use crate::pipeline::{self, IndexAction, IndexOutcome};
use crate::store::{Commit, Store};

use super::render;

/// Rebuild the keyword and vector indexes from the local store.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rediscover index --data index
  rediscover index --data index --models /opt/rediscover/models

`rediscover sync` keeps the indexes up to date by itself; run this after `sync --no-index`,
or to rebuild them from the store (the vectors of text that did not change are reused, not
embedded again).")]
pub struct Args {
    /// Data folder (the store and the indexes live inside it).
    #[arg(long, default_value = "index", env = "REDISCOVER_DATA")]
    pub data: PathBuf,
    /// Folder with manifest.json, the ONNX model, tokenizer and runtime (default ./models).
    #[arg(long, env = "REDISCOVER_MODELS")]
    pub models: Option<PathBuf>,
}

/// Runs `rediscover index`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::require_store(&args.data)?;
    let store = Store::open(&args.data)
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let models = args.models.unwrap_or_else(Embedder::default_models_dir);
    let embedder = Embedder::load(&models)
        .with_context(|| format!("cannot load the embedding model from {}", models.display()))?;
    let bar = progress_bar();
    let progress = progress_for(bar.clone());
    let started = Instant::now();
    let stats = pipeline::rebuild(&args.data, &store, &embedder, &progress)
        .context("indexing failed; the previous index (if any) is still in place")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    say!(
        "indexed {} ({}) from store generation {} in {:.1} s ({:.1} candidates/s), {} on disk",
        render::count(stats.candidates, "candidate", "candidates"),
        render::count(stats.vectors, "vector", "vectors"),
        stats.generation,
        secs,
        stats.candidates as f64 / secs.max(1e-9),
        render::bytes(stats.bytes_on_disk),
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the embedding model for indexing after a sync, with an error that says what to do.
pub(super) fn load_for_sync(models: Option<&Path>) -> anyhow::Result<Arc<Embedder>> {
    let models = models.map_or_else(Embedder::default_models_dir, Path::to_owned);
    let embedder = Embedder::load(&models).with_context(|| {
        format!(
            "cannot load the embedding model from {} to index what is synced (run models/fetch.sh, or pass --no-index to only sync the store)",
            models.display()
        )
    })?;
    Ok(Arc::new(embedder))
}

/// Starts embedding what a sync fetches while it fetches (see [`pipeline::Prefetcher`]);
/// with `reuse` (the data folder, for a run that lists everything) it first takes in the
/// current index's vectors.
pub(super) fn start_prefetch(
    embedder: &Arc<Embedder>,
    reuse: Option<&Path>,
) -> anyhow::Result<pipeline::Prefetcher> {
    pipeline::Prefetcher::start_reusing(Arc::clone(embedder), reuse.map(Path::to_path_buf))
        .context("cannot start the embedding thread")
}

/// Brings the indexes up to date after a sync commit, with a progress bar and a summary line.
/// `prefetcher` first finishes embedding what the sync fetched (the candidates it had not
/// reached yet), with its own progress bar; that time counts as indexing time.
pub(super) fn after_sync(
    data: &Path,
    embedder: &Embedder,
    prefetcher: pipeline::Prefetcher,
    commit: &Commit,
    print: bool,
) -> anyhow::Result<IndexOutcome> {
    let started = Instant::now();
    let bar = progress_bar();
    let cache: Arc<VectorCache> = prefetcher.finish_with(progress_for(bar.clone()));
    bar.finish_and_clear();
    let embedding_ahead = started.elapsed().as_secs_f64();
    let store = Store::open(data)
        .with_context(|| format!("cannot open the store in {}", data.display()))?;
    let bar = progress_bar();
    let mut outcome = pipeline::bring_up_to_date(data, &store, Some(commit), embedder, Some(&cache), &progress_for(bar.clone()))
        .context("the store is synced, but indexing failed; the previous index is still in place (run `rediscover index` to retry)")?;
    bar.finish_and_clear();
    outcome.seconds += embedding_ahead;
    if print {
        let what = match outcome.action {
            IndexAction::UpToDate => "already up to date",
            IndexAction::Updated => "updated",
            IndexAction::Rebuilt => "rebuilt",
            IndexAction::Empty => "empty (nothing synced yet)",
        };
        let generation = outcome
            .generation
            .map_or_else(|| "-".to_string(), |g| g.to_string());
        say!(
            "indexes {what} in {:.1} s (generation {generation})",
            outcome.seconds
        );
    }
    Ok(outcome)
}

/// A progress bar on stderr when it is a terminal, else a hidden one.
pub(super) fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    // Candidates are counted a batch of 64 at a time, so the first count can take seconds:
    // the spinner and the elapsed time move meanwhile, and the estimate waits for a count.
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:10} {spinner} [{bar:40}] {pos}/{len} candidates ({elapsed}, {per_sec}, eta {eta_once_counted})",
    ) {
        let style = style.with_key(
            "eta_once_counted",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = if state.pos() == 0 {
                    write!(out, "?")
                } else {
                    write!(out, "{}", indicatif::HumanDuration(state.eta()))
                };
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(super) fn progress_for(bar: ProgressBar) -> Progress {
    Progress::new(move |event| match event {
        ProgressEvent::Start { phase, total } => {
            bar.set_message(phase.to_owned());
            bar.set_length(total.unwrap_or(0));
            bar.set_position(0);
        }
        ProgressEvent::Advance(n) => bar.inc(n),
        ProgressEvent::Finish => bar.finish_and_clear(),
    })
}
