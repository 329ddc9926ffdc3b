//! Ranking-quality measurement on real public data nobody here wrote (../shared/data):
//! (a) JobBERT vacancy titles against the ESCO occupations (MRR, recall@10) and (b) the five
//! Vanetik vacancies against the annotated CVs (agreement with the annotators' rankings).
//!
//! Each corpus is indexed in a scratch folder through the same `index::rebuild` and
//! `search::retrieve` code paths as the product: an ESCO occupation or a vacancy becomes a
//! `Candidate`. Both sides are retrieved once per query, then every fusion setting is scored on
//! the same lists, so a sweep of the semantic weight costs no extra searches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::domain::{Candidate, Note, Position, ReferenceData, Resume, TextStatus};
use crate::index::{self, Embedder, Indexes};
use crate::search::fusion::{self, Fusion, Normalize, Scored};
use crate::search::{self, Allowed, KeywordCollector, QueryEmbedder, RetrievalSpec, TermOptions};

/// How deep each side ranks for the title task (MRR counts a hit below this as 0).
const TITLE_DEPTH: usize = 100;

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file does not have the expected shape.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Indexing or searching failed.
    #[error(transparent)]
    Rediscover(#[from] crate::Error),
}

impl From<index::Error> for Error {
    fn from(e: index::Error) -> Error {
        Error::Rediscover(e.into())
    }
}

impl From<search::Error> for Error {
    fn from(e: search::Error) -> Error {
        Error::Rediscover(e.into())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The shared data folder (holding `jobbert_eval`, `esco_v1_en`, `vanetik_vacancy_resume`).
    pub shared: PathBuf,
    /// A scratch folder for the evaluation indexes (created, then emptied by the caller).
    pub work_dir: PathBuf,
    /// How many JobBERT titles to sample (0 = all).
    pub sample: usize,
    /// Seed of the sample.
    pub seed: u64,
    /// Semantic weights to measure.
    pub weights: Vec<f32>,
}

/// One fusion setting: a method and a semantic weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// The fusion method.
    pub fusion: Fusion,
    /// The semantic weight (ignored when `by_length`).
    pub weight: f32,
    /// The product's default: the weight [`search::default_semantic`] picks for each query.
    pub by_length: bool,
}

impl Setting {
    /// The semantic weight of this setting for one query.
    pub fn weight_for(&self, title: &str, body: &str) -> f32 {
        if self.by_length {
            search::default_semantic(title, body)
        } else {
            self.weight
        }
    }

    /// A short label such as `rrf W=0.50`.
    pub fn label(&self) -> String {
        let method = match self.fusion {
            Fusion::Rrf { .. } => "rrf",
            Fusion::Score {
                normalize: Normalize::MinMax,
            } => "minmax",
            Fusion::Score {
                normalize: Normalize::ZScore,
            } => "zscore",
        };
        if self.by_length {
            return format!(
                "default {method} W={:.1}|{:.1}",
                search::SHORT_QUERY_SEMANTIC,
                search::DEFAULT_SEMANTIC
            );
        }
        match self.weight {
            w if w <= 0.0 => "keyword only".to_owned(),
            w if w >= 1.0 => "semantic only".to_owned(),
            w => format!("{method} W={w:.2}"),
        }
    }
}

/// Title-task quality of one setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TitleScore {
    /// The setting.
    pub setting: Setting,
    /// Mean reciprocal rank of the right occupation (0 when not in the top 100).
    pub mrr: f64,
    /// Share of titles whose occupation is in the top 10.
    pub recall_at_10: f64,
}

/// CV-task quality of one setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvScore {
    /// The setting.
    pub setting: Setting,
    /// Mean Spearman rho with annotator 1 (CVs 1-30).
    pub spearman_a1: f64,
    /// Mean Spearman rho with annotator 2 (CVs 1-20).
    pub spearman_a2: f64,
    /// Mean NDCG@5 against annotator 1 (relevance 6 - rank).
    pub ndcg_a1: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Titles measured and occupations indexed.
    pub titles: usize,
    /// Occupations indexed.
    pub occupations: usize,
    /// Title task, one row per setting.
    pub title_scores: Vec<TitleScore>,
    /// CVs measured.
    pub cvs: usize,
    /// CV task, one row per setting.
    pub cv_scores: Vec<CvScore>,
    /// Seconds spent indexing and querying each task.
    pub seconds: (f64, f64),
}

/// The settings measured: keyword only, semantic only, and each method at each inner weight.
pub fn settings(weights: &[f32]) -> Vec<Setting> {
    let mut out = vec![
        Setting {
            fusion: Fusion::default(),
            weight: 0.0,
            by_length: false,
        },
        Setting {
            fusion: Fusion::default(),
            weight: 1.0,
            by_length: false,
        },
        Setting {
            fusion: Fusion::default(),
            weight: search::DEFAULT_SEMANTIC,
            by_length: true,
        },
    ];
    for fusion in [
        Fusion::default(),
        Fusion::Score {
            normalize: Normalize::MinMax,
        },
        Fusion::Score {
            normalize: Normalize::ZScore,
        },
    ] {
        for &weight in weights.iter().filter(|w| **w > 0.0 && **w < 1.0) {
            out.push(Setting {
                fusion,
                weight,
                by_length: false,
            });
        }
    }
    out
}

/// Runs both tasks.
pub fn run(options: &EvalOptions, embedder: Arc<Embedder>) -> Result<EvalReport, Error> {
    let query_embedder = QueryEmbedder::new(Arc::clone(&embedder), 0);
    let all = settings(&options.weights);

    let started = std::time::Instant::now();
    // Embedding the occupations takes minutes on a small machine: say what is under way.
    tracing::info!(
        sample = options.sample,
        "task (a): JobBERT titles against ESCO occupations (indexing and embedding the occupations first)"
    );
    let (titles, occupations, title_scores) =
        title_task(options, &embedder, &query_embedder, &all)?;
    let title_seconds = started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    tracing::info!("task (b): annotated CVs against their vacancies");
    let (cvs, cv_scores) = cv_task(options, &embedder, &query_embedder, &all)?;
    let cv_seconds = started.elapsed().as_secs_f64();
    Ok(EvalReport {
        titles,
        occupations,
        title_scores,
        cvs,
        cv_scores,
        seconds: (title_seconds, cv_seconds),
    })
}

// ---- (a) JobBERT titles -> ESCO occupations ------------------------------------------------

fn title_task(
    options: &EvalOptions,
    embedder: &Embedder,
    query_embedder: &QueryEmbedder,
    settings: &[Setting],
) -> Result<(usize, usize, Vec<TitleScore>), Error> {
    let occupations_path = options.shared.join("esco_v1_en/occupations_en.csv");
    let occupations = read_csv(&occupations_path)?;
    let header = occupations
        .first()
        .ok_or_else(|| format_error(&occupations_path, "empty file"))?;
    let col = |name: &str| column(header, name, &occupations_path);
    let (uri, label, alt, description) = (
        col("conceptUri")?,
        col("preferredLabel")?,
        col("altLabels")?,
        col("description")?,
    );
    let candidates: Vec<Candidate> = occupations[1..]
        .iter()
        .filter(|r| r.len() > description)
        .map(|r| {
            let alt_labels = r[alt]
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            corpus_candidate(&r[uri], &r[label], alt_labels, &r[description])
        })
        .collect();
    let known: HashMap<&str, ()> = candidates.iter().map(|c| (c.id.as_str(), ())).collect();

    let titles_path = options.shared.join("jobbert_eval/titles.test.csv");
    let rows = read_csv(&titles_path)?;
    let header = rows
        .first()
        .ok_or_else(|| format_error(&titles_path, "empty file"))?;
    let (title_col, uri_col) = (
        column(header, "vacancyTitle", &titles_path)?,
        column(header, "conceptUri", &titles_path)?,
    );
    let mut queries: Vec<(String, String)> = rows[1..]
        .iter()
        .filter(|r| r.len() > title_col.max(uri_col))
        .filter(|r| !r[title_col].trim().is_empty() && known.contains_key(r[uri_col].as_str()))
        .map(|r| (r[title_col].trim().to_owned(), r[uri_col].clone()))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    queries.shuffle(&mut rng);
    if options.sample > 0 {
        queries.truncate(options.sample);
    }

    let dir = options.work_dir.join("esco");
    let indexes = build(&dir, candidates, embedder)?;
    let ids: Vec<&str> = indexes
        .rows()
        .iter()
        .map(|r| r.opportunity_id.as_str())
        .collect();
    let allowed = Arc::new(Allowed::from_fn(ids.len(), |_| true));
    let mut reciprocal = vec![0.0f64; settings.len()];
    let mut top10 = vec![0usize; settings.len()];
    for (title, truth) in &queries {
        let (kw, sem) = both_sides(&indexes, query_embedder, title, "", TITLE_DEPTH, &allowed)?;
        for (i, setting) in settings.iter().enumerate() {
            let fused = fusion::fuse(&kw, &sem, setting.weight_for(title, ""), setting.fusion);
            if let Some(rank) = fused
                .iter()
                .position(|f| ids[f.key as usize] == truth.as_str())
            {
                reciprocal[i] += 1.0 / (rank as f64 + 1.0);
                top10[i] += usize::from(rank < 10);
            }
        }
    }
    let n = queries.len().max(1) as f64;
    let scores = settings
        .iter()
        .enumerate()
        .map(|(i, &setting)| TitleScore {
            setting,
            mrr: reciprocal[i] / n,
            recall_at_10: top10[i] as f64 / n,
        })
        .collect();
    Ok((queries.len(), ids.len(), scores))
}

// ---- (b) Vanetik CVs -> vacancies ---------------------------------------------------------

fn cv_task(
    options: &EvalOptions,
    embedder: &Embedder,
    query_embedder: &QueryEmbedder,
    settings: &[Setting],
) -> Result<(usize, Vec<CvScore>), Error> {
    let root = options.shared.join("vanetik_vacancy_resume");
    let vacancies_path = root.join("5_vacancies.csv");
    let rows = read_csv(&vacancies_path)?;
    let header = rows
        .first()
        .ok_or_else(|| format_error(&vacancies_path, "empty file"))?;
    let (id, description, title) = (
        column(header, "id", &vacancies_path)?,
        column(header, "job_description", &vacancies_path)?,
        column(header, "job_title", &vacancies_path)?,
    );
    let vacancies: Vec<Candidate> = rows[1..]
        .iter()
        .filter(|r| r.len() > id.max(description).max(title))
        .map(|r| {
            corpus_candidate(
                &format!("vacancy-{}", r[id]),
                &r[title],
                Vec::new(),
                &r[description],
            )
        })
        .collect();
    if vacancies.len() != 5 {
        return Err(format_error(
            &vacancies_path,
            &format!("expected 5 vacancies, found {}", vacancies.len()),
        ));
    }
    let order: Vec<String> = vacancies.iter().map(|c| c.id.clone()).collect();
    let annotations_path = root.join("annotations-for-the-first-30-vacancies.txt");
    let annotations = std::fs::read_to_string(&annotations_path).map_err(|source| Error::Io {
        path: annotations_path.clone(),
        source,
    })?;
    let annotator1 = rankings(&annotations, "ANNOTATOR_1_RANKINGS");
    let annotator2 = rankings(&annotations, "ANNOTATOR_2_RANKINGS");
    if annotator1.is_empty() {
        return Err(format_error(
            &annotations_path,
            "no ANNOTATOR_1_RANKINGS arrays",
        ));
    }

    let indexes = build(&options.work_dir.join("vanetik"), vacancies, embedder)?;
    let position: Vec<usize> = indexes
        .rows()
        .iter()
        .map(|r| {
            order
                .iter()
                .position(|o| *o == r.opportunity_id)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let allowed = Arc::new(Allowed::from_fn(position.len(), |_| true));
    let mut rho1 = vec![0.0f64; settings.len()];
    let mut rho2 = vec![0.0f64; settings.len()];
    let mut ndcg1 = vec![0.0f64; settings.len()];
    for (cv, truth1) in annotator1.iter().enumerate() {
        let path = root.join(format!("CV_txt/{}.txt", cv + 1));
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let text: String = text.chars().take(search::MAX_QUERY_BYTES / 4).collect();
        let (kw, sem) = both_sides(&indexes, query_embedder, "", &text, 5, &allowed)?;
        for (i, setting) in settings.iter().enumerate() {
            let fused = fusion::fuse(&kw, &sem, setting.weight_for("", &text), setting.fusion);
            let system = system_ranks(&fused, &position);
            rho1[i] += spearman(&system, truth1);
            ndcg1[i] += ndcg(&system, truth1);
            if let Some(truth2) = annotator2.get(cv) {
                rho2[i] += spearman(&system, truth2);
            }
        }
    }
    let (n1, n2) = (annotator1.len() as f64, annotator2.len().max(1) as f64);
    let scores = settings
        .iter()
        .enumerate()
        .map(|(i, &setting)| CvScore {
            setting,
            spearman_a1: rho1[i] / n1,
            spearman_a2: rho2[i] / n2,
            ndcg_a1: ndcg1[i] / n1,
        })
        .collect();
    Ok((annotator1.len(), scores))
}

/// The rank (1 = best) the system gives each of the 5 vacancies; unranked ones share the
/// leftover ranks equally.
fn system_ranks(fused: &[fusion::Fused<u32>], position: &[usize]) -> [f64; 5] {
    let mut system = [0.0f64; 5];
    let mut seen = [false; 5];
    let mut ranked = 0usize;
    for f in fused {
        if let Some(&v) = position.get(f.key as usize).filter(|v| **v < 5)
            && !seen[v]
        {
            ranked += 1;
            system[v] = ranked as f64;
            seen[v] = true;
        }
    }
    let left = 5 - ranked;
    let leftover = if left == 0 {
        0.0
    } else {
        (ranked + 1..=5).map(|r| r as f64).sum::<f64>() / left as f64
    };
    for v in 0..5 {
        if !seen[v] {
            system[v] = leftover;
        }
    }
    system
}

/// The per-CV rank arrays (`[r1, ..., r5]`, rank of each vacancy, 1 = best) after `marker`.
fn rankings(text: &str, marker: &str) -> Vec<[f64; 5]> {
    let Some(start) = text.find(marker) else {
        return Vec::new();
    };
    let section = &text[start + marker.len()..];
    let section = section
        .find("ANNOTATOR_")
        .map_or(section, |end| &section[..end]);
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        if !inner.contains('[') {
            let values: Vec<f64> = inner
                .split(',')
                .filter_map(|v| v.trim().parse::<f64>().ok())
                .collect();
            if let Ok(array) = <[f64; 5]>::try_from(values.as_slice()) {
                out.push(array);
            }
            rest = &after[close + 1..];
        } else {
            rest = after;
        }
    }
    out
}

/// Spearman's rho as Pearson correlation of the two rank vectors (ties stay as given).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va <= f64::EPSILON || vb <= f64::EPSILON {
        0.0
    } else {
        cov / (va.sqrt() * vb.sqrt())
    }
}

/// NDCG of the system's order against the annotator's ranks (relevance `6 - rank`).
pub fn ndcg(system: &[f64], truth: &[f64]) -> f64 {
    let relevance: Vec<f64> = truth.iter().map(|r| (6.0 - r).max(0.0)).collect();
    let dcg = |order: &[usize]| -> f64 {
        order
            .iter()
            .enumerate()
            .map(|(i, &v)| (2f64.powf(relevance[v]) - 1.0) / (i as f64 + 2.0).log2())
            .sum()
    };
    let mut by_system: Vec<usize> = (0..system.len()).collect();
    by_system.sort_by(|&x, &y| system[x].total_cmp(&system[y]).then(x.cmp(&y)));
    let mut ideal: Vec<usize> = (0..relevance.len()).collect();
    ideal.sort_by(|&x, &y| relevance[y].total_cmp(&relevance[x]));
    let best = dcg(&ideal);
    if best <= 0.0 {
        0.0
    } else {
        dcg(&by_system) / best
    }
}

// ---- shared helpers ------------------------------------------------------------------------

/// A corpus document as a candidate: the label as headline, alternative labels as position
/// titles (so the keyword side counts them as titles) and as one note each (so each label gets
/// its own passage vector, as a person's past roles would), and the description as resume text.
fn corpus_candidate(
    id: &str,
    label: &str,
    alt_labels: Vec<String>,
    description: &str,
) -> Candidate {
    let notes = alt_labels
        .iter()
        .enumerate()
        .map(|(i, l)| Note {
            id: format!("label-{i}"),
            comments: vec![l.clone()],
            ..Note::default()
        })
        .collect();
    Candidate {
        notes,
        id: id.to_owned(),
        contact_id: format!("contact-{id}"),
        headline: label.to_owned(),
        resumes: vec![Resume {
            id: format!("resume-{id}"),
            text: Some(description.to_owned()).filter(|d| !d.trim().is_empty()),
            text_status: TextStatus::Extracted,
            positions: alt_labels
                .into_iter()
                .map(|title| Position {
                    title,
                    ..Position::default()
                })
                .collect(),
            ..Resume::default()
        }],
        ..Candidate::default()
    }
}

fn build(dir: &Path, candidates: Vec<Candidate>, embedder: &Embedder) -> Result<Indexes, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    index::rebuild(
        dir,
        1,
        candidates.into_iter(),
        &ReferenceData::default(),
        embedder,
        &index::Progress::none(),
    )?;
    Ok(Indexes::open(dir)?)
}

type Lists = (Vec<Scored<u32>>, Vec<Scored<u32>>);

fn both_sides(
    indexes: &Indexes,
    embedder: &QueryEmbedder,
    title: &str,
    body: &str,
    depth: usize,
    allowed: &Arc<Allowed>,
) -> Result<Lists, Error> {
    let spec = RetrievalSpec {
        title,
        body,
        keyword: true,
        semantic: true,
        depth,
        collector: KeywordCollector::default(),
        terms: TermOptions::default(),
        term_cache: None,
    };
    let retrieval = search::retrieve(indexes, Some(embedder), spec, allowed, None)?;
    if let Some(reason) = retrieval.degraded {
        return Err(Error::Rediscover(crate::Error::Search(
            search::Error::Embedding { reason },
        )));
    }
    let kw = retrieval
        .keyword
        .iter()
        .map(|h| Scored {
            key: h.ordinal,
            score: h.score,
        })
        .collect();
    let sem = retrieval
        .semantic
        .iter()
        .map(|h| Scored {
            key: h.ordinal,
            score: h.similarity,
        })
        .collect();
    Ok((kw, sem))
}

fn format_error(path: &Path, reason: &str) -> Error {
    Error::Format {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

fn column(header: &[String], name: &str, path: &Path) -> Result<usize, Error> {
    header
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}') == name)
        .ok_or_else(|| format_error(path, &format!("no column {name:?}")))
}

fn read_csv(path: &Path) -> Result<Vec<Vec<String>>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_csv(&text))
}

/// Parses RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_commas_and_newlines() {
        let rows = parse_csv("a,b\n\"x, y\",\"line1\nline2 \"\"q\"\"\"\r\nlast,\n");
        assert_eq!(rows[0], vec!["a", "b"]);
        assert_eq!(rows[1], vec!["x, y", "line1\nline2 \"q\""]);
        assert_eq!(rows[2], vec!["last", ""]);
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn rankings_are_read_per_annotator() {
        let text = "ANNOTATOR_1_RANKINGS=[[2,1,4,3,5],[1,2,3,4,5], #1-2\n [1,5,2,1,4]]\n\nANNOTATOR_2_RANKINGS= [[4,3,1,5,2]]";
        let a1 = rankings(text, "ANNOTATOR_1_RANKINGS");
        assert_eq!(a1.len(), 3);
        assert_eq!(a1[0], [2.0, 1.0, 4.0, 3.0, 5.0]);
        assert_eq!(
            rankings(text, "ANNOTATOR_2_RANKINGS"),
            vec![[4.0, 3.0, 1.0, 5.0, 2.0]]
        );
    }

    #[test]
    fn spearman_is_one_for_equal_and_minus_one_for_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ndcg_is_one_for_the_ideal_order_and_lower_otherwise() {
        let truth = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((ndcg(&truth, &truth) - 1.0).abs() < 1e-12);
        assert!(ndcg(&[5.0, 4.0, 3.0, 2.0, 1.0], &truth) < 0.7);
    }

    #[test]
    fn settings_cover_both_ends_and_every_method() {
        let all = settings(&[0.0, 0.5, 1.0]);
        assert_eq!(all.len(), 3 + 3);
        assert_eq!(all[0].label(), "keyword only");
        assert_eq!(all[1].label(), "semantic only");
        assert_eq!(all[2].label(), "default rrf W=0.5|0.2");
        assert_eq!(all[3].label(), "rrf W=0.50");
        // The default row weighs each query as the product does.
        assert_eq!(all[2].weight_for("Nurse", ""), search::SHORT_QUERY_SEMANTIC);
        let posting = "word ".repeat(40);
        assert_eq!(all[2].weight_for("", &posting), search::DEFAULT_SEMANTIC);
        assert_eq!(all[3].weight_for("Nurse", ""), 0.5);
    }
}
