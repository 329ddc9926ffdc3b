//! `rediscover match`: rank past candidates for a posting or a free-text job description,
//! printed as a readable table, as one JSON object (`--json`), or per line for a batch file.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::api::http::{MatchResponse, ResultJson};
use crate::engine::Engine;
use crate::index::Embedder;
use crate::search::{self, Filters, Fusion, Normalize, Query, SearchResponse};

use super::render::count;

/// Arguments of `rediscover match`.
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "\
Examples:
  rediscover match --data index --posting-id 4c2a9e11-8d3b-4f60-a5e7-1b9c0d2e3f45
  rediscover match --data index --text \"Senior backend engineer, Rust, Postgres\"
  rediscover match --data index --file posting.txt --archived-only --exclude-hired --json
  rediscover match --data index --text \"data engineer\" --keywords 'kafka AND (spark OR flink)'
  cat posting.txt | rediscover match --data index - --within-days 730
  # One JSON line {\"id\": ..., \"text\": ...} per query in, one JSON line of results per query out.
  rediscover match --data index --batch queries.jsonl > results.jsonl"
)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["posting_id", "text", "file", "stdin", "batch"])))]
pub struct Args {
    /// The data folder (store and indexes).
    #[arg(long, env = "REDISCOVER_DATA", default_value = "index")]
    pub data: PathBuf,
    /// The model folder (default: $REDISCOVER_MODELS, else ./models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Match a synced posting by id.
    #[arg(long)]
    pub posting_id: Option<String>,
    /// Match this text (a title or a job description; a short first line counts as the title).
    #[arg(long)]
    pub text: Option<String>,
    /// Match the text of this file (`-` for standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// `-`: match the text read from standard input.
    #[arg(value_name = "-")]
    pub stdin: Option<String>,
    /// Run many queries: a file of JSON lines `{"id": ..., "text": ...}`; prints one JSON line
    /// `{"id": ..., "results": [...]}` per query, or `{"id": ..., "line": N, "error": "..."}`
    /// for a line that fails (the others still run; the exit code is then 1).
    #[arg(long)]
    pub batch: Option<PathBuf>,
    /// How many people to return (1 to 200).
    #[arg(long, default_value_t = search::DEFAULT_LIMIT)]
    pub limit: usize,
    /// Semantic weight W: 0 keyword only, 1 semantic only. By default 0.5 for a query of at
    /// most 12 words (a title) and 0.2 for a longer one (a posting), as measured by
    /// `rediscover eval`.
    #[arg(long, value_name = "W")]
    pub semantic: Option<f32>,
    /// Boolean keyword filter restricting the results, e.g. `rust AND (kafka OR "event sourcing")`
    /// or `NOT java` (AND, OR, NOT or `-`, parentheses, "phrases"; other characters, as in
    /// O'Reilly or C++, are searched as written). A filter may start with `-`: `--keywords -java`.
    #[arg(long, allow_hyphen_values = true)]
    pub keywords: Option<String>,
    /// How the keyword and semantic rankings are merged.
    #[arg(long, value_enum, default_value_t = FusionArg::Rrf)]
    pub fusion: FusionArg,
    /// Structured filters.
    #[command(flatten)]
    pub filters: Box<FilterArgs>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The fusion methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FusionArg {
    /// Reciprocal rank fusion, k = 60.
    Rrf,
    /// Weighted sum of min-max normalised scores.
    Minmax,
    /// Weighted sum of z-score normalised scores.
    Zscore,
}

impl From<FusionArg> for Fusion {
    fn from(f: FusionArg) -> Fusion {
        match f {
            FusionArg::Rrf => Fusion::default(),
            FusionArg::Minmax => Fusion::Score {
                normalize: Normalize::MinMax,
            },
            FusionArg::Zscore => Fusion::Score {
                normalize: Normalize::ZScore,
            },
        }
    }
}

/// Filters of `match`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only archived opportunities (past candidates).
    #[arg(long)]
    pub archived_only: bool,
    /// Leave out people hired on any of their opportunities (archived with a hired-type reason).
    #[arg(long)]
    pub exclude_hired: bool,
    /// The candidate's location holds these words, in this order, ignoring case and accents:
    /// `CA` finds "San Francisco, CA" but not "Chicago", `zurich` finds "Zürich"; a last word of
    /// three letters or more may begin one (`berl`).
    /// Candidates with no location in Lever are left out.
    #[arg(long)]
    pub location: Option<String>,
    /// Must carry this tag (repeat for several).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Reached at least this pipeline stage (id or name).
    #[arg(long)]
    pub min_stage: Option<String>,
    /// Last interaction within this many days (at least 1).
    #[arg(long)]
    pub within_days: Option<u32>,
    /// Best overall feedback rating at least this (1 to 4).
    #[arg(long)]
    pub min_rating: Option<u8>,
}

impl From<FilterArgs> for Filters {
    fn from(f: FilterArgs) -> Filters {
        Filters {
            archived_only: f.archived_only,
            exclude_hired: f.exclude_hired,
            location: f.location,
            tags: f.tags,
            min_stage: f.min_stage,
            interacted_within_days: f.within_days,
            min_rating: f.min_rating,
        }
    }
}

/// Runs `rediscover match`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dash) = &args.stdin
        && dash != "-"
    {
        bail!(
            "unexpected argument {dash:?}: use --text, --file, --posting-id or - for standard input"
        );
    }
    let template = query_template(&args);
    template.validate().or_else(|e| match e {
        // The text is checked once it is read.
        search::Error::EmptyQuery => Ok(()),
        e => Err(e),
    })?;
    super::require_store(&args.data)?;
    let embedder = if args.semantic != Some(0.0) {
        Some(load_embedder(args.models.as_deref(), Some("--semantic 0"))?)
    } else {
        None
    };
    let engine = Engine::open(&args.data, embedder)?;
    if let Some(batch) = &args.batch {
        return run_batch(&engine, &template, batch);
    }
    let input = read_input(&args)?;
    let query = Query { input, ..template };
    let started = Instant::now();
    let response = engine.search(&query)?;
    let took = started.elapsed();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer(&mut out, &MatchResponse::new(&response, took))?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &response, took)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the embedding model, with a message saying where it was looked for and, when the
/// command can do without it, the `option` that says so (`--semantic 0`, `--no-model`).
pub fn load_embedder(models: Option<&Path>, option: Option<&str>) -> anyhow::Result<Arc<Embedder>> {
    let dir = models.map_or_else(Embedder::default_models_dir, Path::to_owned);
    let or = option
        .map(|o| format!(", or pass {o} for keyword-only search"))
        .unwrap_or_default();
    let embedder = Embedder::load(&dir).with_context(|| {
        format!(
            "loading the embedding model from {} (fetch it with models/fetch.sh{or})",
            dir.display()
        )
    })?;
    Ok(Arc::new(embedder))
}

fn query_template(args: &Args) -> Query {
    let mut query = Query::text("");
    query.limit = args.limit;
    query.semantic = args.semantic;
    query.keywords = args.keywords.clone();
    query.filters = (*args.filters).clone().into();
    query.fusion = args.fusion.into();
    query
}

fn read_input(args: &Args) -> anyhow::Result<search::QueryInput> {
    if let Some(id) = &args.posting_id {
        return Ok(search::QueryInput::Posting(id.clone()));
    }
    if let Some(text) = &args.text {
        return Ok(search::QueryInput::Text(text.clone()));
    }
    let text = match args.file.as_deref() {
        Some(path) if path != Path::new("-") => read_text_file(path)?,
        _ => read_limited(std::io::stdin().lock())
            .context("reading the posting from standard input")?,
    };
    Ok(search::QueryInput::Text(text))
}

fn read_text_file(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_limited(file).with_context(|| format!("reading {}", path.display()))
}

/// Reads at most one byte more than a query may hold, so an oversized input is reported
/// without reading all of it.
fn read_limited(reader: impl Read) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(search::MAX_QUERY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > search::MAX_QUERY_BYTES {
        bail!(
            "the posting is longer than {} bytes",
            search::MAX_QUERY_BYTES
        );
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the posting is not UTF-8 text"))
}

struct BatchLine {
    id: serde_json::Value,
    text: String,
}

#[derive(serde::Serialize)]
struct BatchResult<'a> {
    id: &'a serde_json::Value,
    /// The line of the batch file, given with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<ResultJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    took_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One line of a batch file, or the id it names (`null` if none) and what is wrong with it.
/// The error never quotes the line, which may hold a whole posting.
fn parse_batch_line(line: &str) -> Result<BatchLine, (serde_json::Value, String)> {
    const SHAPE: &str = r#"expected a JSON object {"id": ..., "text": "..."}"#;
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|_| (serde_json::Value::Null, format!("not JSON: {SHAPE}")))?;
    let id = value.get("id").cloned().unwrap_or(serde_json::Value::Null);
    // Another key (a per-line `limit`, say) would be ignored silently: the command's options
    // apply to every line, so such a line is refused.
    let other_key = (value.as_object().into_iter().flat_map(|o| o.keys()))
        .find(|key| !matches!(key.as_str(), "id" | "text"));
    match value.get("text") {
        _ if id.is_null() => Err((id, format!("no \"id\": {SHAPE}"))),
        _ if other_key.is_some() => {
            // Named when short: a long key may be text pasted in the wrong place.
            let key = other_key
                .filter(|key| key.chars().count() <= 40)
                .map_or_else(|| "a long key".to_owned(), |key| format!("key {key:?}"));
            Err((
                id,
                format!("unknown {key}: {SHAPE}; options such as --limit apply to every line"),
            ))
        }
        Some(serde_json::Value::String(text)) => Ok(BatchLine {
            id,
            text: text.clone(),
        }),
        Some(_) => Err((id, format!("\"text\" is not a string: {SHAPE}"))),
        None => Err((id, format!("no \"text\": {SHAPE}"))),
    }
}

fn run_batch(engine: &Engine, template: &Query, path: &Path) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {} of {}", n + 1, path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        // A line that is not a query is reported like a failed query; the others still run.
        let (id, answer) = match parse_batch_line(&line) {
            Err((id, error)) => (id, Err(error)),
            Ok(parsed) => {
                let query = Query {
                    input: search::QueryInput::Text(parsed.text),
                    ..template.clone()
                };
                let started = Instant::now();
                match engine.search(&query) {
                    Ok(response) => (
                        parsed.id,
                        Ok(MatchResponse::new(&response, started.elapsed())),
                    ),
                    Err(err) if err.is_user_error() => (parsed.id, Err(err.to_string())),
                    Err(err) => return Err(err.into()),
                }
            }
        };
        let result = match answer {
            Ok(json) => BatchResult {
                id: &id,
                line: None,
                results: Some(json.results),
                took_ms: Some(json.took_ms),
                error: None,
            },
            Err(error) => {
                failed += 1;
                BatchResult {
                    id: &id,
                    line: Some(n + 1),
                    results: None,
                    took_ms: None,
                    error: Some(error),
                }
            }
        };
        serde_json::to_writer(&mut out, &result)?;
        writeln!(out)?;
        out.flush()?;
    }
    if failed > 0 {
        eprintln!(
            "rediscover: {} of the batch failed (see their \"error\")",
            super::render::count(failed as u64, "query", "queries")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_table(
    out: &mut impl Write,
    response: &SearchResponse,
    took: std::time::Duration,
) -> std::io::Result<()> {
    if let Some(reason) = &response.degraded {
        writeln!(out, "note: keyword results only ({reason})")?;
    }
    if response.hits.is_empty() {
        writeln!(out, "no matching candidates ({} ms)", took.as_millis())?;
        return Ok(());
    }
    for hit in &response.hits {
        let e = &hit.explanation;
        let headline = if hit.headline.is_empty() {
            String::new()
        } else {
            format!(" - {}", hit.headline)
        };
        writeln!(
            out,
            "{:>3}. {}{}  [score {:.4}]",
            hit.rank,
            terminal_safe(&hit.name),
            terminal_safe(&headline),
            hit.score
        )?;
        let mut why = Vec::new();
        if let Some(k) = e.keyword {
            why.push(format!("keyword #{}", k.rank));
        }
        if let Some(s) = &e.semantic {
            why.push(format!("semantic #{} ({:.2})", s.rank, s.similarity));
        }
        if !e.matched_terms.is_empty() {
            let words: Vec<&str> = e
                .matched_terms
                .iter()
                .take(MATCHED_TERMS_SHOWN)
                .map(|m| m.word.as_str())
                .collect();
            let more = e.matched_terms.len() - words.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            why.push(format!("matches: {}{more}", words.join(", ")));
        }
        writeln!(out, "     why: {}", terminal_safe(&why.join(" | ")))?;
        writeln!(
            out,
            "     history: {}",
            terminal_safe(&history_line(&e.history))
        )?;
        if let Some(snippet) = &e.snippet {
            writeln!(
                out,
                "     \"...{}...\"",
                terminal_safe(&highlighted(&snippet.text, &snippet.highlights))
            )?;
        } else if let Some(s) = &e.semantic {
            writeln!(
                out,
                "     passage: \"{}\"",
                terminal_safe(&shorten(&s.passage, 200))
            )?;
        }
        for line in other_opportunity_lines(&e.other_histories, &hit.other_opportunity_ids) {
            writeln!(out, "     {}", terminal_safe(&line))?;
        }
        if !e.history.profile_url.is_empty() {
            writeln!(out, "     {}", terminal_safe(&e.history.profile_url))?;
        }
    }
    writeln!(
        out,
        "{} in {} ms (index generation {})",
        count(response.hits.len() as u64, "person", "people"),
        took.as_millis(),
        response.generation
    )
}

/// Most matched terms named on a result's "why" line (`--json` has them all).
const MATCHED_TERMS_SHOWN: usize = 8;
/// Most other opportunities of a person shown with their history; the rest are listed by id.
const OTHER_HISTORIES_SHOWN: usize = 3;

/// The person's other opportunities (listed once, under their best-ranked one): the most recent
/// ones with what happened there, so the latest outcome shows even when it is not on the
/// opportunity that matched, then the ids of the rest.
fn other_opportunity_lines(histories: &[search::OtherHistory], ids: &[String]) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
    }
    let shown = &histories[..histories.len().min(OTHER_HISTORIES_SHOWN)];
    let rest: Vec<&str> = ids
        .iter()
        .filter(|id| !shown.iter().any(|o| &o.opportunity_id == *id))
        .map(String::as_str)
        .collect();
    let id_list = |ids: &[&str]| {
        format!(
            "{} {}",
            if ids.len() == 1 { "id" } else { "ids" },
            ids.join(", ")
        )
    };
    let others = count(ids.len() as u64, "other opportunity", "other opportunities");
    if shown.is_empty() {
        return vec![format!("also {others} of this person: {}", id_list(&rest))];
    }
    let order = if shown.len() > 1 {
        ", most recent first"
    } else {
        ""
    };
    let mut lines = vec![format!("also {others} of this person{order}:")];
    for other in shown {
        let h = &other.history;
        let applied = if h.applied_to.is_empty() {
            "no posting".to_owned()
        } else {
            h.applied_to.join(", ")
        };
        lines.push(format!(
            "  - {} {applied}: {} (id {})",
            date(h.last_activity_at()),
            history_line(h),
            other.opportunity_id
        ));
    }
    if !rest.is_empty() {
        lines.push(format!("  and {}", id_list(&rest)));
    }
    lines
}

/// `text` as one line a terminal shows as it is: control characters (escape sequences, carriage
/// returns, new lines) and bidirectional overrides, which candidate-written text may hold, become
/// U+FFFD, so a name cannot clear the screen, recolour it or forge a result line.
pub(super) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200e}'
                    | '\u{200f}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
            )
    };
    if text.chars().any(unsafe_char) {
        std::borrow::Cow::Owned(
            text.chars()
                .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn history_line(h: &search::History) -> String {
    let mut parts = Vec::new();
    // Stage names are free text ("Reached out", "On-site"), so one is quoted, not put
    // after a verb.
    if let Some(furthest) = h.stages_reached.last() {
        parts.push(format!("furthest stage \"{furthest}\""));
    }
    match &h.archived {
        Some(a) if a.hired => parts.push(format!("archived: {} (hired)", a.reason)),
        Some(a) => parts.push(format!("archived: {}", a.reason)),
        None => parts.push("active".to_owned()),
    }
    if !h.feedback_ratings.is_empty() {
        let ratings: Vec<String> = h.feedback_ratings.iter().map(u8::to_string).collect();
        parts.push(format!("ratings {}/4", ratings.join(",")));
    }
    parts.push(count(h.notes as u64, "note", "notes"));
    if let Some(at) = h.last_interaction_at {
        parts.push(format!("last contact {}", date(at)));
    }
    parts.join(", ")
}

/// A millisecond timestamp as `YYYY-MM-DD` (UTC), without a date library.
fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1970..=9999).contains(&year) {
        // A time Lever could not have recorded (a default, a bad value): not a date to show.
        return "an unknown date".to_owned();
    }
    format!("{year:04}-{month:02}-{day:02}")
}

fn highlighted(text: &str, highlights: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len() + highlights.len() * 2);
    let mut at = 0;
    for &(start, end) in highlights {
        if start < at
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push('[');
        out.push_str(&text[start..end]);
        out.push(']');
        at = end;
    }
    out.push_str(&text[at..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_text_cannot_drive_the_terminal() {
        let name = "Eve\u{1b}[2J\u{1b}[1;31mOWNED\u{1b}[0m\r\n  2. Fake Person \u{202e}gnp.exe\u{7}\u{2028}\u{61c}";
        let safe = terminal_safe(name);
        assert!(
            !safe
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{202e}' | '\u{2028}' | '\u{61c}')),
            "{safe:?}"
        );
        assert!(safe.starts_with("Eve\u{fffd}[2J") && safe.contains("Fake Person"));
        assert!(matches!(
            terminal_safe("Zoë Müller - C++"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn dates_render_in_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000_000), "2023-11-14");
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(date(9_223_372_036_854_775_807), "an unknown date");
        assert_eq!(date(-86_400_000), "an unknown date");
    }

    #[test]
    fn history_and_other_opportunities_read_well() {
        let mut h = search::History {
            stages_reached: vec!["New applicant".into(), "Reached out".into()],
            archived: Some(search::explain::ArchiveInfo {
                reason: "Underqualified".into(),
                hired: false,
                archived_at: 0,
            }),
            notes: 1,
            ..search::History::default()
        };
        assert_eq!(
            history_line(&h),
            "furthest stage \"Reached out\", archived: Underqualified, 1 note"
        );
        h.notes = 2;
        assert!(history_line(&h).ends_with(", 2 notes"));
        assert!(other_opportunity_lines(&[], &[]).is_empty());
        assert_eq!(
            other_opportunity_lines(&[], &["a1".into()]),
            ["also 1 other opportunity of this person: id a1"]
        );
        assert_eq!(
            other_opportunity_lines(&[], &["a1".into(), "b2".into()]),
            ["also 2 other opportunities of this person: ids a1, b2"]
        );
        let other = |id: &str, day: i64, reason: &str| search::OtherHistory {
            opportunity_id: id.into(),
            history: search::History {
                archived: Some(search::explain::ArchiveInfo {
                    reason: reason.into(),
                    hired: false,
                    archived_at: day * 86_400_000,
                }),
                applied_to: vec!["Support Specialist".into()],
                ..search::History::default()
            },
        };
        let ids: Vec<String> = ["w", "x", "y", "z", "gone"].map(String::from).to_vec();
        let histories = [
            other("w", 20_000, "Withdrew"),
            other("x", 19_000, "Timing"),
            other("y", 18_000, "Timing"),
            other("z", 17_000, "Timing"),
        ];
        assert_eq!(
            other_opportunity_lines(&histories, &ids),
            [
                "also 5 other opportunities of this person, most recent first:",
                "  - 2024-10-04 Support Specialist: archived: Withdrew, 0 notes (id w)",
                "  - 2022-01-08 Support Specialist: archived: Timing, 0 notes (id x)",
                "  - 2019-04-14 Support Specialist: archived: Timing, 0 notes (id y)",
                "  and ids z, gone",
            ]
        );
    }

    #[test]
    fn a_batch_line_with_an_unknown_key_is_refused() {
        assert!(parse_batch_line(r#"{"id": 1, "text": "rust"}"#).is_ok());
        let (id, error) = parse_batch_line(r#"{"id": "c", "text": "rust", "limit": 5}"#)
            .err()
            .unwrap();
        assert_eq!(id, serde_json::json!("c"));
        assert!(error.contains("\"limit\""), "{error}");
        let long = format!(
            r#"{{"id": 2, "text": "rust", "{}": 1}}"#,
            "word ".repeat(20)
        );
        let (_, error) = parse_batch_line(&long).err().unwrap();
        assert!(
            error.contains("a long key") && !error.contains("word"),
            "{error}"
        );
    }

    #[test]
    fn a_keyword_filter_may_start_with_a_minus() {
        use clap::Parser;
        let cli = crate::api::cli::Cli::try_parse_from([
            "rediscover",
            "match",
            "--text",
            "backend",
            "--keywords",
            "-java",
        ])
        .unwrap();
        let crate::api::cli::Command::Match(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.keywords.as_deref(), Some("-java"));
    }

    #[test]
    fn highlights_are_bracketed() {
        assert_eq!(
            highlighted("use Rust and C++", &[(4, 8), (13, 16)]),
            "use [Rust] and [C++]"
        );
    }

    #[test]
    fn the_semantic_help_states_the_defaults_the_search_uses() {
        use clap::CommandFactory;
        let command = crate::api::cli::Cli::command();
        let matching = command.find_subcommand("match").unwrap();
        let help = matching
            .get_arguments()
            .find(|a| a.get_id() == "semantic")
            .and_then(|a| a.get_help())
            .unwrap()
            .to_string();
        for stated in [
            format!(
                "{} for a query of at most {} words",
                search::SHORT_QUERY_SEMANTIC,
                search::SHORT_QUERY_WORDS
            ),
            format!("{} for a longer one", search::DEFAULT_SEMANTIC),
        ] {
            assert!(help.contains(&stated), "{help:?} lacks {stated:?}");
        }
    }

    #[test]
    fn oversized_input_is_refused_without_reading_it_all() {
        let big = vec![b'a'; search::MAX_QUERY_BYTES + 10];
        assert!(read_limited(big.as_slice()).is_err());
        assert_eq!(read_limited(&b"rust"[..]).unwrap(), "rust");
    }
}
