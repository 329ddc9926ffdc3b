//! Hybrid search: "who in our pool fits this posting?", ranked, grouped by person, with reasons.
//!
//! A query runs two independent retrievals over the same allowed rows: the keyword side
//! ([`keyword`]: weighted terms of the posting, BM25) and the semantic side ([`semantic`]: the
//! posting's embedding against the passage vectors). [`fusion`] merges them without knowing how
//! either was made, [`group`] keeps each person once, and [`explain`] reads the reasons from the
//! data. If the query cannot be embedded the keyword results are returned with `degraded` set.
//!
//! Architecture invariant: search never writes, and free text is never parsed as query syntax;
//! only the keyword filter goes through the Boolean parser.

pub mod allowed;
pub mod explain;
pub mod filter;
pub mod fusion;
pub mod group;
pub mod keyword;
mod lru;
pub mod semantic;
pub mod terms;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::domain::Millis;
use crate::index::Indexes;
use crate::store::Store;

pub use allowed::Allowed;
pub use explain::{
    Explanation, History, KeywordReason, MatchedTerm, OtherHistory, SemanticReason, Snippet,
};
pub use filter::{Filters, RowFilter};
pub use fusion::{Fusion, Normalize, RRF_K};
pub use group::People;
pub use keyword::{KeywordCollector, QueryTerm, TermCache};
pub use semantic::QueryEmbedder;
pub use terms::TermOptions;

/// Results per query when the caller does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The most results a query may ask for.
pub const MAX_LIMIT: usize = 200;
/// The default semantic weight `W` (with RRF) of a long query (a posting, a job description),
/// chosen by `rediscover eval`: on the Vanetik CVs, ranked against whole vacancies, the
/// semantic side alone disagrees with annotator 1 (rho -0.24) and any `W` above 0.2 falls
/// below keyword only (rho 0.33).
pub const DEFAULT_SEMANTIC: f32 = 0.2;
/// The default semantic weight of a short query (a title, a few words), chosen by
/// `rediscover eval`: on JobBERT titles -> ESCO (2,000 titles) fused MRR peaks there (see
/// benches/README.md), where a few words give the keyword side little to rank by.
pub const SHORT_QUERY_SEMANTIC: f32 = 0.5;
/// A query of at most this many words is short (the longest first line read as a title).
pub const SHORT_QUERY_WORDS: usize = 12;

/// The semantic weight used when the query does not set one: [`SHORT_QUERY_SEMANTIC`] for a
/// query of at most [`SHORT_QUERY_WORDS`] words, else [`DEFAULT_SEMANTIC`].
pub fn default_semantic(title: &str, body: &str) -> f32 {
    let words = title.split_whitespace().count()
        + body.split_whitespace().take(SHORT_QUERY_WORDS + 1).count();
    if words <= SHORT_QUERY_WORDS {
        SHORT_QUERY_SEMANTIC
    } else {
        DEFAULT_SEMANTIC
    }
}

/// The longest query text accepted, in bytes (a long posting is about 10 KB).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// The longest keyword filter accepted, in bytes.
pub const MAX_KEYWORDS_BYTES: usize = 4 * 1024;

/// Errors of a query. User errors (bad input) map to HTTP 4xx; the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query has no text.
    #[error("the query text is empty")]
    EmptyQuery,
    /// The query text is longer than [`MAX_QUERY_BYTES`].
    #[error("the query text is {bytes} bytes, more than the {max} allowed")]
    QueryTooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The keyword filter is blank or too long.
    #[error("the keyword filter must be 1 to {max} bytes of text, got {bytes}")]
    BadKeywords {
        /// Its length after trimming.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The result limit is out of bounds.
    #[error("limit must be between 1 and {max}, got {limit}")]
    BadLimit {
        /// The limit asked for.
        limit: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The semantic weight is not in `[0, 1]`.
    #[error("semantic weight must be between 0 and 1, got {weight}")]
    BadWeight {
        /// The weight asked for.
        weight: f32,
    },
    /// No synced posting has this id.
    #[error("no posting with id {id} in the local store (run `rediscover sync`?)")]
    UnknownPosting {
        /// The id asked for.
        id: String,
    },
    /// The stage filter names no known stage.
    #[error("no pipeline stage is named or has the id {stage:?}")]
    UnknownStage {
        /// The stage asked for.
        stage: String,
    },
    /// The stage filter names a stage added after the index was built.
    #[error("stage {stage:?} is newer than the index; run `rediscover sync` to update it")]
    StageNotIndexed {
        /// The stage asked for.
        stage: String,
    },
    /// The rating filter is not 1 to 4.
    #[error("minimum rating must be 1 to 4, got {rating}")]
    BadRating {
        /// The rating asked for.
        rating: u8,
    },
    /// The interaction window is 0 days: it would keep no one.
    #[error("the interaction window must be at least 1 day (0 keeps no one)")]
    EmptyWindow,
    /// No opportunity has this id.
    #[error("no opportunity with id {id}")]
    UnknownOpportunity {
        /// The id asked for.
        id: String,
    },
    /// No index has been built in this data folder yet.
    #[error("no index in {}: run `rediscover index` (or `rediscover sync`) first", data_dir.display())]
    NoIndex {
        /// The data folder.
        data_dir: std::path::PathBuf,
    },
    /// Opening or reading an index failed (or the keyword filter is malformed).
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The query could not be embedded (only reported where degrading is not an option).
    #[error("query embedding failed: {reason}")]
    Embedding {
        /// What went wrong.
        reason: String,
    },
    /// tantivy failed while searching.
    #[error("keyword search failed: {0}")]
    Keyword(#[source] tantivy::TantivyError),
}

impl Error {
    /// Whether the user can fix this error by changing their input.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::EmptyQuery
            | Error::QueryTooLong { .. }
            | Error::BadKeywords { .. }
            | Error::BadLimit { .. }
            | Error::BadWeight { .. }
            | Error::UnknownPosting { .. }
            | Error::UnknownStage { .. }
            | Error::StageNotIndexed { .. }
            | Error::BadRating { .. }
            | Error::EmptyWindow
            | Error::UnknownOpportunity { .. }
            | Error::NoIndex { .. } => true,
            Error::Index(e) => e.is_user_error(),
            Error::Store(_) | Error::Keyword(_) | Error::Embedding { .. } => false,
        }
    }

    fn keyword(source: tantivy::TantivyError) -> Error {
        Error::Keyword(source)
    }
}

/// What to search for.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryInput {
    /// Free text: a title or a whole job description. If its first line is short it counts as
    /// the title.
    Text(String),
    /// A synced posting, by id: its title and description.
    Posting(String),
}

/// A query with its options. Build with [`Query::text`] or [`Query::posting`].
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// What to search for.
    pub input: QueryInput,
    /// How many people to return (1 to [`MAX_LIMIT`]).
    pub limit: usize,
    /// Semantic weight `W`: 0 keyword only, 1 semantic only; `None` lets
    /// [`default_semantic`] choose by the length of the query.
    pub semantic: Option<f32>,
    /// Optional Boolean keyword filter (AND, OR, NOT, quoted phrases) restricting the results.
    pub keywords: Option<String>,
    /// Structured filters.
    pub filters: Filters,
    /// How the two sides are merged.
    pub fusion: Fusion,
    /// How the keyword side collects.
    pub collector: KeywordCollector,
    /// How many terms of the posting the keyword side uses.
    pub terms: TermOptions,
    /// The clock for recency filters; `None` means now.
    pub now: Option<Millis>,
}

impl Query {
    /// A free-text query with default options.
    pub fn text(text: impl Into<String>) -> Query {
        Query::new(QueryInput::Text(text.into()))
    }

    /// A query for a synced posting with default options.
    pub fn posting(id: impl Into<String>) -> Query {
        Query::new(QueryInput::Posting(id.into()))
    }

    fn new(input: QueryInput) -> Query {
        Query {
            input,
            limit: DEFAULT_LIMIT,
            semantic: None,
            keywords: None,
            filters: Filters::default(),
            fusion: Fusion::default(),
            collector: KeywordCollector::default(),
            terms: TermOptions::default(),
            now: None,
        }
    }

    /// Checks the bounds of every option.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(Error::BadLimit {
                limit: self.limit,
                max: MAX_LIMIT,
            });
        }
        if let Some(weight) = self.semantic
            && !(0.0..=1.0).contains(&weight)
        {
            return Err(Error::BadWeight { weight });
        }
        if let Some(keywords) = &self.keywords {
            let bytes = keywords.trim().len();
            if bytes == 0 || bytes > MAX_KEYWORDS_BYTES {
                return Err(Error::BadKeywords {
                    bytes,
                    max: MAX_KEYWORDS_BYTES,
                });
            }
        }
        if let QueryInput::Text(text) = &self.input {
            check_text(text)?;
        }
        Ok(())
    }
}

fn check_text(text: &str) -> Result<(), Error> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(Error::QueryTooLong {
            bytes: text.len(),
            max: MAX_QUERY_BYTES,
        });
    }
    if text.trim().is_empty() {
        return Err(Error::EmptyQuery);
    }
    Ok(())
}

/// Everything a query reads: one opened index generation and the store it was built from.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The opened indexes.
    pub indexes: &'a Indexes,
    /// The store, for postings and for hydrating results.
    pub store: &'a Store,
    /// The query embedder; `None` gives keyword-only, degraded results.
    pub embedder: Option<&'a QueryEmbedder>,
    /// Every opportunity of each person, to list a person's whole history; optional.
    pub people: Option<&'a People>,
    /// The terms chosen for recent postings in this index generation; optional.
    pub term_cache: Option<&'a TermCache>,
    /// Rows never to return, whatever the filters: opportunities Lever reported deleted (by
    /// webhook) that are not yet purged from the indexes.
    pub hidden: &'a [u32],
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResponse {
    /// One hit per person, best first.
    pub hits: Vec<Hit>,
    /// The weighted terms the keyword side used.
    pub terms: Vec<QueryTerm>,
    /// Why the semantic side was skipped, when it was wanted but failed.
    pub degraded: Option<String>,
    /// The index generation that answered.
    pub generation: u64,
    /// How many opportunities each side returned before fusion.
    pub keyword_hits: usize,
    /// How many opportunities the semantic side returned before fusion.
    pub semantic_hits: usize,
    /// The semantic weight the ranking used: the query's, or the default for its length (0
    /// when the semantic side could not run).
    pub semantic_weight: f32,
    /// Where the time went.
    pub timings: Timings,
}

/// One person in the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Rank from 1.
    pub rank: u32,
    /// Fused score (higher is better; comparable only within one response).
    pub score: f32,
    /// The person's best opportunity.
    pub opportunity_id: String,
    /// The person.
    pub contact_id: String,
    /// Display name (never logged).
    pub name: String,
    /// Headline.
    pub headline: String,
    /// The person's other opportunities: ranked ones first.
    pub other_opportunity_ids: Vec<String>,
    /// Why it ranks here.
    pub explanation: Explanation,
}

/// Time spent in each step of a query.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Embedding the query (near zero when cached).
    pub embed: Duration,
    /// Whether the query vector came from the cache.
    pub embed_cached: bool,
    /// Resolving the filters into the set of allowed rows (the Boolean keyword filter included).
    pub filter: Duration,
    /// The keyword side (term choice and scoring).
    pub keyword: Duration,
    /// The vector search.
    pub vector: Duration,
    /// Fusion and grouping.
    pub fusion: Duration,
    /// Hydrating and explaining the hits.
    pub explain: Duration,
    /// The whole query.
    pub total: Duration,
}

impl Timings {
    /// Adds the retrieval times of `other` (an earlier, shallower round of the same query).
    fn add(&mut self, other: &Timings) {
        self.embed += other.embed;
        self.keyword += other.keyword;
        self.vector += other.vector;
    }
}

/// The two ranked lists of a query before fusion.
#[derive(Debug, Clone, Default)]
pub struct Retrieval {
    /// Keyword hits, best first.
    pub keyword: Vec<keyword::KeywordHit>,
    /// Semantic hits, best first.
    pub semantic: Vec<semantic::SemanticHit>,
    /// The keyword terms used.
    pub terms: Vec<QueryTerm>,
    /// The terms each document holds, when the keyword side recorded them while scoring.
    pub term_matches: Option<keyword::TermMatches>,
    /// Why the semantic side is missing, if it was wanted.
    pub degraded: Option<String>,
    /// Step timings (fusion and explain left at zero).
    pub timings: Timings,
}

/// What [`retrieve`] needs: the posting text, the sides wanted and the allowed rows.
#[derive(Debug, Clone, Copy)]
pub struct RetrievalSpec<'q> {
    /// The posting title (boosted).
    pub title: &'q str,
    /// The posting body.
    pub body: &'q str,
    /// Run the keyword side.
    pub keyword: bool,
    /// Run the semantic side.
    pub semantic: bool,
    /// How many opportunities each side returns.
    pub depth: usize,
    /// Keyword collector.
    pub collector: KeywordCollector,
    /// Keyword term selection.
    pub terms: TermOptions,
    /// Terms chosen for earlier queries of this index generation, reused when given.
    pub term_cache: Option<&'q TermCache>,
}

/// Runs the keyword and semantic sides over the allowed rows, at the same time when both are
/// wanted (the keyword side then costs nothing while the query is being embedded).
///
/// `keyword_filter` is the parsed Boolean filter, already reflected in `allowed`; it is also
/// intersected into the keyword query. When the semantic side fails, the keyword side is run
/// even if it was not asked for, so the caller can degrade.
pub fn retrieve(
    indexes: &Indexes,
    embedder: Option<&QueryEmbedder>,
    spec: RetrievalSpec<'_>,
    allowed: &std::sync::Arc<Allowed>,
    keyword_filter: Option<&dyn tantivy::query::Query>,
) -> Result<Retrieval, Error> {
    let semantic_side = || semantic_side(indexes, embedder, &spec, allowed);
    let keyword_side = || keyword_side(indexes, &spec, allowed, keyword_filter);
    let (semantic, keyword) = match (spec.semantic, spec.keyword) {
        (true, true) => {
            let (semantic, keyword) = rayon::join(semantic_side, keyword_side);
            (Some(semantic), Some(keyword))
        }
        (true, false) => (Some(semantic_side()), None),
        (false, _) => (None, Some(keyword_side())),
    };
    let mut out = Retrieval::default();
    if let Some(semantic) = semantic {
        out.semantic = semantic.hits;
        out.timings.embed = semantic.embed;
        out.timings.embed_cached = semantic.cached;
        out.timings.vector = semantic.vector;
        out.degraded = semantic.degraded;
    }
    let keyword = match keyword {
        Some(keyword) => Some(keyword?),
        None if out.degraded.is_some() => Some(keyword_side()?),
        None => None,
    };
    if let Some(keyword) = keyword {
        out.keyword = keyword.found.hits;
        out.term_matches = keyword.found.matches;
        out.terms = keyword.terms;
        out.timings.keyword = keyword.took;
    }
    Ok(out)
}

/// What the semantic side found, and how long it took.
struct SemanticSide {
    hits: Vec<semantic::SemanticHit>,
    embed: Duration,
    cached: bool,
    vector: Duration,
    degraded: Option<String>,
}

fn semantic_side(
    indexes: &Indexes,
    embedder: Option<&QueryEmbedder>,
    spec: &RetrievalSpec<'_>,
    allowed: &Allowed,
) -> SemanticSide {
    let started = Instant::now();
    let mut out = SemanticSide {
        hits: Vec::new(),
        embed: Duration::ZERO,
        cached: false,
        vector: Duration::ZERO,
        degraded: None,
    };
    let Some(embedder) = embedder else {
        out.degraded = Some("no embedding model is loaded".to_owned());
        return out;
    };
    // Vectors of two models are not comparable (a long-running server whose model files were
    // replaced, then the index rebuilt with the new ones).
    let loaded = embedder.embedder().model_sha256();
    if !indexes.made_by(embedder.embedder()) {
        let other = if indexes.model_sha256() == loaded {
            "the same model with another tokenizer or settings".to_owned()
        } else {
            format!("another model ({})", short_sha(indexes.model_sha256()))
        };
        out.degraded = Some(format!(
            "the index was built with {other} than the one loaded ({}): run `rediscover index` with the loaded model files, or load the ones the index was built with",
            short_sha(loaded)
        ));
        return out;
    }
    match embedder.embed(spec.title, spec.body) {
        Ok(query) => {
            out.embed = started.elapsed();
            out.cached = query.cached;
            let started = Instant::now();
            out.hits = semantic::search(indexes.vectors(), &query.vector, allowed, spec.depth);
            out.vector = started.elapsed();
        }
        Err(reason) => {
            tracing::warn!(target: "search::hybrid", "query embedding failed, returning keyword results");
            out.degraded = Some(format!("query embedding failed: {reason}"));
        }
    }
    out
}

/// The first 12 hex digits of a checksum, for messages.
fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What the keyword side found, the terms it used, and how long it took.
struct KeywordSide {
    found: keyword::KeywordResult,
    terms: Vec<QueryTerm>,
    took: Duration,
}

fn keyword_side(
    indexes: &Indexes,
    spec: &RetrievalSpec<'_>,
    allowed: &std::sync::Arc<Allowed>,
    keyword_filter: Option<&dyn tantivy::query::Query>,
) -> Result<KeywordSide, Error> {
    let started = Instant::now();
    let index = indexes.keyword();
    let terms = match spec.term_cache {
        Some(cache) => cache
            .choose(index, spec.title, spec.body, spec.terms)
            .as_ref()
            .clone(),
        None => keyword::choose_terms(index, spec.title, spec.body, spec.terms),
    };
    let filter = keyword_filter.map(|f| f.box_clone());
    let found = keyword::search(index, &terms, filter, allowed, spec.depth, spec.collector)?;
    Ok(KeywordSide {
        found,
        terms,
        took: started.elapsed(),
    })
}

/// Splits free text into a title (a short first line) and a body.
pub fn split_title(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once('\n') {
        Some((first, rest)) if first.split_whitespace().count() <= SHORT_QUERY_WORDS => {
            (first.trim(), rest.trim())
        }
        Some(_) => ("", text),
        None if text.split_whitespace().count() <= SHORT_QUERY_WORDS => (text, ""),
        None => ("", text),
    }
}

/// How many opportunities each side returns first for a query of `limit` people.
pub fn depth_for(limit: usize) -> usize {
    (limit * 4).clamp(40, 400)
}

/// The most opportunities a side is asked for when people with many opportunities leave a
/// page short.
const MAX_DEPTH: usize = 3_200;

/// Answers a query: retrieval, fusion, grouping by person and explanations.
#[tracing::instrument(target = "search::hybrid", skip_all, fields(limit = query.limit, semantic = ?query.semantic))]
pub fn search(ctx: Context<'_>, query: &Query) -> Result<SearchResponse, Error> {
    let started = Instant::now();
    query.validate()?;
    let reference = ctx.store.reference();
    let (title, body) = match &query.input {
        QueryInput::Text(text) => split_title(text),
        QueryInput::Posting(id) => {
            let posting = reference
                .posting(id.trim())
                .ok_or_else(|| Error::UnknownPosting { id: id.clone() })?;
            (posting.title.as_str(), posting.description.as_str())
        }
    };
    check_text(&format!("{title}\n{body}"))?;
    let semantic = query
        .semantic
        .unwrap_or_else(|| default_semantic(title, body));

    let filter_started = Instant::now();
    let rows = ctx.indexes.rows();
    let now = query.now.unwrap_or_else(now_ms);
    let row_filter = query
        .filters
        .resolve_for(reference, ctx.indexes.stage_ids(), now)?;
    let mut allowed = if row_filter.flags_only() {
        let (reject, require) = row_filter.flag_masks();
        Allowed::from_flag_bits(ctx.indexes.row_flag_bits(), reject, require)
    } else {
        row_filter.allowed(ctx.indexes.row_flag_bits(), ctx.indexes.row_columns())
    };
    for &ordinal in ctx.hidden {
        allowed.remove(ordinal);
    }
    if query.filters.exclude_hired {
        // Hired once is hired: every opportunity of such a person is left out.
        let built;
        let people = match ctx.people {
            Some(people) => people,
            None => {
                built = People::build(rows);
                &built
            }
        };
        for &ordinal in people.hired_people() {
            allowed.remove(ordinal);
        }
    }
    let keyword_filter = match &query.keywords {
        None => None,
        Some(text) => {
            let parsed = ctx.indexes.keyword().parse_boolean(text.trim())?;
            allowed.intersect(&keyword::matching_ordinals(
                ctx.indexes.keyword(),
                parsed.as_ref(),
                rows.len(),
            )?);
            Some(parsed)
        }
    };
    let allowed = std::sync::Arc::new(allowed);
    let filter_time = filter_started.elapsed();

    let mut spec = RetrievalSpec {
        title,
        body,
        keyword: semantic < 1.0,
        semantic: semantic > 0.0,
        depth: depth_for(query.limit),
        collector: query.collector,
        terms: query.terms,
        term_cache: ctx.term_cache,
    };
    // A store ahead of the index (`sync --no-index`, a failed index step) may have dropped
    // opportunities this generation still holds: they are left out before the page is cut, so
    // a page stays full and a person's next opportunity can take the place of a gone one.
    let store_ahead = ctx.store.generation() != ctx.indexes.generation();
    let in_store = |o: u32| !store_ahead || ctx.store.contains(&rows[o as usize].opportunity_id);
    let mut fusion_time = Duration::ZERO;
    let mut earlier_rounds = Timings::default();
    let (retrieval, weight, mut groups) = loop {
        let retrieval = retrieve(
            ctx.indexes,
            ctx.embedder,
            spec,
            &allowed,
            keyword_filter.as_deref(),
        )?;
        let weight = if retrieval.degraded.is_some() {
            0.0
        } else {
            semantic
        };
        let fusion_started = Instant::now();
        let scored = |key, score| fusion::Scored { key, score };
        let kw: Vec<_> = (retrieval.keyword.iter())
            .map(|h| scored(h.ordinal, h.score))
            .collect();
        let sem: Vec<_> = (retrieval.semantic.iter())
            .map(|h| scored(h.ordinal, h.similarity))
            .collect();
        let mut fused = fusion::fuse(&kw, &sem, weight, query.fusion);
        if store_ahead {
            fused.retain(|f| in_store(f.key));
        }
        let groups = group::group_by_person(&fused, |o| rows[o as usize].person_key(), query.limit);
        fusion_time += fusion_started.elapsed();
        // People with several opportunities fill a side's list with fewer people than the
        // page needs: when a side returned all it was asked for, ask each side for more.
        let full_side =
            retrieval.keyword.len() >= spec.depth || retrieval.semantic.len() >= spec.depth;
        if groups.len() >= query.limit
            || !full_side
            || spec.depth >= allowed.len()
            || spec.depth >= MAX_DEPTH
        {
            break (retrieval, weight, groups);
        }
        earlier_rounds.add(&retrieval.timings);
        spec.depth = (spec.depth * 2).min(MAX_DEPTH);
    };
    let completing = Instant::now();
    if let Some(people) = ctx.people {
        group::complete_groups(&mut groups, rows, people);
        for group in &mut groups {
            group
                .others
                .retain(|&o| !ctx.hidden.contains(&o) && in_store(o));
        }
    }
    fusion_time += completing.elapsed();

    let explain_started = Instant::now();
    let hits = explain_groups(ctx, &groups, &retrieval)?;
    let mut timings = retrieval.timings;
    timings.add(&earlier_rounds);
    timings.filter = filter_time;
    timings.fusion = fusion_time;
    timings.explain = explain_started.elapsed();
    timings.total = started.elapsed();
    tracing::debug!(target: "search::hybrid", hits = hits.len(), keyword = retrieval.keyword.len(), semantic = retrieval.semantic.len(), "query answered");
    Ok(SearchResponse {
        hits,
        keyword_hits: retrieval.keyword.len(),
        semantic_hits: retrieval.semantic.len(),
        terms: retrieval.terms,
        degraded: retrieval.degraded,
        generation: ctx.indexes.generation(),
        semantic_weight: weight,
        timings,
    })
}

fn explain_groups(
    ctx: Context<'_>,
    groups: &[group::Group],
    retrieval: &Retrieval,
) -> Result<Vec<Hit>, Error> {
    let index = ctx.indexes.keyword();
    let keyword_docs: HashMap<u32, tantivy::DocAddress> = retrieval
        .keyword
        .iter()
        .map(|h| (h.ordinal, h.doc))
        .collect();
    let best_chunk: HashMap<u32, u32> = retrieval
        .semantic
        .iter()
        .map(|h| (h.ordinal, h.chunk))
        .collect();

    let ordinals: Vec<u32> = groups.iter().map(|g| g.best.key).collect();
    let missing: Vec<u32> = ordinals
        .iter()
        .copied()
        .filter(|o| !keyword_docs.contains_key(o))
        .collect();
    let found = if retrieval.terms.is_empty() {
        Vec::new()
    } else {
        keyword::doc_addresses(index, &missing)?
    };
    let lookup: HashMap<u32, tantivy::DocAddress> = missing
        .iter()
        .zip(found)
        .filter_map(|(o, d)| d.map(|d| (*o, d)))
        .collect();
    let docs: Vec<Option<tantivy::DocAddress>> = ordinals
        .iter()
        .map(|o| keyword_docs.get(o).or_else(|| lookup.get(o)).copied())
        .collect();
    let present: Vec<tantivy::DocAddress> = docs.iter().flatten().copied().collect();
    let matched = match &retrieval.term_matches {
        Some(matches) => present.iter().map(|&doc| matches.of(doc)).collect(),
        None => keyword::matched_terms(index, &present, &retrieval.terms)?,
    };
    let mut matched_iter = matched.into_iter();

    // The matched terms come in document order; pair them with their groups first, then
    // hydrate and explain every person in parallel (a store read and a snippet each).
    let work: Vec<(&group::Group, Vec<usize>)> = groups
        .iter()
        .zip(&docs)
        .map(|(group, doc)| {
            let matched = if doc.is_some() {
                matched_iter.next().unwrap_or_default()
            } else {
                Vec::new()
            };
            (group, matched)
        })
        .collect();
    let explained: Vec<Option<Hit>> = work
        .par_iter()
        .map(|(group, matched)| explain_one(ctx, group, matched, retrieval, &best_chunk))
        .collect::<Result<_, Error>>()?;
    let mut hits: Vec<Hit> = explained.into_iter().flatten().collect();
    for (i, hit) in hits.iter_mut().enumerate() {
        hit.rank = i as u32 + 1;
    }
    Ok(hits)
}

/// The hit of one person, or `None` when the opportunity left the store after this index
/// generation was built, or its stored record no longer reads back (never shown). `rank` is set by the caller.
fn explain_one(
    ctx: Context<'_>,
    group: &group::Group,
    matched: &[usize],
    retrieval: &Retrieval,
    best_chunk: &HashMap<u32, u32>,
) -> Result<Option<Hit>, Error> {
    let rows = ctx.indexes.rows();
    let reference = ctx.store.reference();
    let row = &rows[group.best.key as usize];
    let Some(candidate) = readable_record(ctx, &row.opportunity_id)? else {
        return Ok(None);
    };
    let matched_terms: Vec<MatchedTerm> = matched
        .iter()
        .map(|&t| {
            let q = &retrieval.terms[t];
            MatchedTerm {
                word: q.word.clone(),
                token: q.term.token.clone(),
                exact: explain::is_exact(q.term.field),
            }
        })
        .collect();
    let snippet = explain::snippet(&explain::snippet_source(&candidate), &matched_terms);
    let semantic = match (group.best.semantic, best_chunk.get(&group.best.key)) {
        (Some(side), Some(&chunk)) => Some(SemanticReason {
            rank: side.rank,
            similarity: side.score,
            passage: ctx.indexes.vectors().chunk_text(chunk).to_owned(),
            passage_source: (&ctx.indexes.vectors().chunk(chunk).kind).into(),
        }),
        _ => None,
    };
    Ok(Some(Hit {
        rank: 0,
        score: group.best.score,
        opportunity_id: row.opportunity_id.clone(),
        contact_id: row.contact_id.clone(),
        name: candidate.name.clone(),
        headline: candidate.headline.clone(),
        other_opportunity_ids: group
            .others
            .iter()
            .map(|&o| rows[o as usize].opportunity_id.clone())
            .collect(),
        explanation: Explanation {
            keyword: group.best.keyword.map(|k| KeywordReason {
                rank: k.rank,
                score: k.score,
            }),
            semantic,
            matched_terms,
            snippet,
            history: explain::history(&candidate, reference),
            other_histories: other_histories(ctx, &group.others)?,
        },
    }))
}

/// The stored record of an opportunity for an answer, or `None` when it left the store after
/// this index generation was built or no longer reads back: one damaged record leaves its part
/// of the answer out instead of failing every query that would show it (the next sync that
/// lists the opportunity replaces the record).
fn readable_record(ctx: Context<'_>, id: &str) -> Result<Option<crate::domain::Candidate>, Error> {
    match ctx.store.get(id) {
        Ok(candidate) => Ok(candidate),
        Err(e @ crate::store::Error::Corrupt { .. }) => {
            tracing::warn!(%id, error = %e, "a stored record is unreadable; it is left out of the answer");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Most of a person's other opportunities whose stored record a result reads for their history;
/// the rest are listed by id only (`other_opportunity_ids`).
pub const MAX_OTHER_HISTORIES: usize = 5;

/// The histories of a person's most recently active other opportunities (at most
/// [`MAX_OTHER_HISTORIES`], chosen by the rows' last interaction, so a repeat applicant costs a
/// few record reads, not one per application), most recent first. One that left the store, or
/// whose record no longer reads back, is left out like a damaged best opportunity.
fn other_histories(ctx: Context<'_>, others: &[u32]) -> Result<Vec<OtherHistory>, Error> {
    let rows = ctx.indexes.rows();
    let reference = ctx.store.reference();
    let mut recent = others.to_vec();
    recent.sort_by_key(|&o| std::cmp::Reverse(rows[o as usize].last_interaction_at));
    recent.truncate(MAX_OTHER_HISTORIES);
    let mut histories = Vec::with_capacity(recent.len());
    for &ordinal in &recent {
        let id = &rows[ordinal as usize].opportunity_id;
        if let Some(candidate) = readable_record(ctx, id)? {
            histories.push(OtherHistory {
                opportunity_id: id.clone(),
                history: explain::history(&candidate, reference),
            });
        }
    }
    histories.sort_by_key(|h| std::cmp::Reverse(h.history.last_activity_at()));
    Ok(histories)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_query_leans_semantic_and_a_posting_keyword() {
        assert_eq!(default_semantic("Rust Engineer", ""), SHORT_QUERY_SEMANTIC);
        let twelve = "one two three four five six seven eight nine ten eleven twelve";
        assert_eq!(default_semantic(twelve, ""), SHORT_QUERY_SEMANTIC);
        assert_eq!(default_semantic(twelve, "thirteen"), DEFAULT_SEMANTIC);
        let (title, body) = split_title(
            "Rust Engineer\nWe build and run the backend services of our shop in Rust on Linux.",
        );
        assert_eq!(default_semantic(title, body), DEFAULT_SEMANTIC);
        const { assert!(SHORT_QUERY_SEMANTIC > DEFAULT_SEMANTIC) };
    }

    #[test]
    fn short_first_line_is_the_title() {
        assert_eq!(
            split_title("Rust Engineer\nWe build things."),
            ("Rust Engineer", "We build things.")
        );
        assert_eq!(split_title("  Data Scientist  "), ("Data Scientist", ""));
        let long = "We are looking for someone who can do many many things across a very wide range of areas";
        assert_eq!(split_title(long), ("", long));
    }

    #[test]
    fn validation_bounds() {
        let ok = Query::text("rust");
        assert!(ok.validate().is_ok());
        let bad = |q: Query| q.validate().unwrap_err();
        assert!(matches!(
            bad(Query {
                limit: 0,
                ..ok.clone()
            }),
            Error::BadLimit { .. }
        ));
        assert!(matches!(
            bad(Query {
                limit: 10_000,
                ..ok.clone()
            }),
            Error::BadLimit { .. }
        ));
        assert!(matches!(
            bad(Query {
                semantic: Some(1.5),
                ..ok.clone()
            }),
            Error::BadWeight { .. }
        ));
        assert!(matches!(
            bad(Query {
                semantic: Some(f32::NAN),
                ..ok.clone()
            }),
            Error::BadWeight { .. }
        ));
        assert!(matches!(bad(Query::text("  \n ")), Error::EmptyQuery));
        assert!(matches!(
            bad(Query::text("x".repeat(MAX_QUERY_BYTES + 1))),
            Error::QueryTooLong { .. }
        ));
        assert!(matches!(
            bad(Query {
                keywords: Some(" ".into()),
                ..ok.clone()
            }),
            Error::BadKeywords { .. }
        ));
        for e in [Error::EmptyQuery, Error::BadLimit { limit: 0, max: 1 }] {
            assert!(e.is_user_error());
        }
    }

    #[test]
    fn depth_grows_with_limit_within_bounds() {
        assert_eq!(depth_for(1), 40);
        assert_eq!(depth_for(20), 80);
        assert_eq!(depth_for(200), 400);
    }
}
