//! `rediscover index`: rebuild the keyword and vector indexes from the local store.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::index::{self, Embedder, Progress, ProgressEvent};
use crate::store::Store;

use super::render;

/// Rebuild the keyword and vector indexes from the local store.
#[derive(Debug, clap::Args)]
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
    let store = Store::open(&args.data)
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let models = args.models.unwrap_or_else(Embedder::default_models_dir);
    let embedder = Embedder::load(&models)
        .with_context(|| format!("cannot load the embedding model from {}", models.display()))?;
    let bar = progress_bar();
    let progress = progress_for(bar.clone());
    let started = Instant::now();
    let stats = index::try_rebuild(
        &args.data,
        store.generation(),
        store.candidates(),
        store.reference(),
        &embedder,
        &progress,
    )
    .context("indexing failed; the previous index (if any) is still in place")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "indexed {} candidates ({} vectors) from store generation {} in {:.1} s ({:.1} candidates/s), {} on disk",
        stats.candidates,
        stats.vectors,
        stats.generation,
        secs,
        stats.candidates as f64 / secs.max(1e-9),
        render::bytes(stats.bytes_on_disk),
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr when it is a terminal, else a hidden one.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:10} [{bar:40}] {pos}/{len} candidates ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn progress_for(bar: ProgressBar) -> Progress {
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
