//! `rediscover eval`: measure ranking quality (keyword only, semantic only, fused) on the real
//! data sets in the shared folder and print one table per task.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::eval::{self, CvScore, EvalOptions, TitleScore};

/// Arguments of `rediscover eval`.
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "\
Examples:
  rediscover eval --shared ../shared/data --sample 2000
  rediscover eval --sample 0 --weights 0.2,0.5

The first task embeds about 3,000 ESCO occupations before it scores anything: a few minutes on
two cores, announced on stderr."
)]
pub struct Args {
    /// The shared data folder (jobbert_eval, esco_v1_en, vanetik_vacancy_resume).
    #[arg(long, default_value = "../shared/data")]
    pub shared: PathBuf,
    /// The model folder (default: $REDISCOVER_MODELS, else ./models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// How many JobBERT titles to sample (0 = all 15,461 usable rows of the test file).
    #[arg(long, default_value_t = 2000)]
    pub sample: usize,
    /// Seed of the title sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Semantic weights to measure besides 0 and 1 (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
        value_parser = unit_weight
    )]
    pub weights: Vec<f32>,
}

/// A semantic weight: a number from 0 (keyword only) to 1 (semantic only).
fn unit_weight(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(w) if (0.0..=1.0).contains(&w) => Ok(w),
        _ => Err(format!("{text:?} is not a weight from 0 to 1")),
    }
}

/// Runs `rediscover eval`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let embedder = super::matching::load_embedder(args.models.as_deref(), None)?;
    let work_dir = std::env::temp_dir().join(format!("rediscover-eval-{}", std::process::id()));
    let options = EvalOptions {
        shared: args.shared.clone(),
        work_dir: work_dir.clone(),
        sample: args.sample,
        seed: args.seed,
        weights: args.weights.clone(),
    };
    let report = eval::run(&options, embedder);
    // The scratch indexes are only needed during the run.
    let _ = std::fs::remove_dir_all(&work_dir);
    let report = report.with_context(|| format!("evaluating on {}", args.shared.display()))?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "(a) JobBERT titles -> ESCO occupations: {} titles (seed {}), {} occupations, {:.0} s",
        report.titles, args.seed, report.occupations, report.seconds.0
    )?;
    writeln!(out, "{:<26} {:>7} {:>10}", "setting", "MRR", "recall@10")?;
    for TitleScore {
        setting,
        mrr,
        recall_at_10,
    } in &report.title_scores
    {
        writeln!(
            out,
            "{:<26} {:>7.4} {:>10.4}",
            setting.label(),
            mrr,
            recall_at_10
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "(b) Vanetik: 5 vacancies ranked for each of {} annotated CVs, {:.0} s",
        report.cvs, report.seconds.1
    )?;
    writeln!(
        out,
        "{:<26} {:>12} {:>12} {:>9}",
        "setting", "rho(ann.1)", "rho(ann.2)", "NDCG@5"
    )?;
    for CvScore {
        setting,
        spearman_a1,
        spearman_a2,
        ndcg_a1,
    } in &report.cv_scores
    {
        writeln!(
            out,
            "{:<26} {:>12.4} {:>12.4} {:>9.4}",
            setting.label(),
            spearman_a1,
            spearman_a2,
            ndcg_a1
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
