//! The HTTP query API (axum) and the JSON shapes of queries and results, which the CLI's
//! `--json` output shares (the `sync` and `status` reports serialise their own types). The
//! engine knows nothing of HTTP.
//!
//! Routes: `POST /v1/match`, `GET /v1/postings`, `GET /v1/candidates/{opportunity_id}`,
//! `GET /healthz`, `GET /openapi.json`, and `POST /webhooks/lever` for Lever's deliveries.
//! `/v1/*` needs `Authorization: Bearer <token>` when a token is configured; a webhook is
//! authenticated by its own signature instead. User errors are 4xx `{"error": "..."}`; faults
//! are a generic 500 whose detail is logged once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_http::trace::TraceLayer;

use crate::engine::{CandidateDetails, Engine};
use crate::lever::webhook::parse_event;
use crate::search::{self, Filters, Fusion, Hit, Normalize, Query, SearchResponse};
use crate::sync::inbox::{self, Inbox, Notice};
use crate::sync::replay::{ReplayGuard, Verdict};

/// The largest request body accepted (a long posting is about 10 KB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Requests taking longer than this get 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a query waits for a free slot before it is answered 503 (busy).
const QUERY_SLOT_WAIT: Duration = Duration::from_secs(10);

/// How many queries run at once by default: two per core keep every core busy while one
/// query of each pair waits on memory, and bound the work a burst of requests can start.
fn default_query_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// What the handlers share: the engine and the optional bearer token.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    token: Option<Arc<str>>,
    /// The webhook deliveries already received.
    replay: Arc<ReplayGuard>,
    /// Queries running at once: a slot is held until the query's work ends, even when its
    /// request timed out, so abandoned queries cannot pile up behind the answered ones.
    query_slots: Arc<tokio::sync::Semaphore>,
    /// How long a query waits for a slot before the answer is 503.
    slot_wait: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: only say whether there is one.
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("auth", &self.token.is_some())
            .finish()
    }
}

impl AppState {
    /// State for [`app`]; `token` enables bearer authentication of `/v1/*` (blank means none).
    pub fn new(engine: Arc<Engine>, token: Option<String>) -> AppState {
        let token = token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Arc::from(t.trim()));
        let replay = Arc::new(ReplayGuard::new(engine.data_dir()));
        AppState {
            engine,
            token,
            replay,
            query_slots: Arc::new(tokio::sync::Semaphore::new(default_query_slots())),
            slot_wait: QUERY_SLOT_WAIT,
        }
    }

    /// The same state with at most `slots` queries running at once, each waiting at most
    /// `wait` for a slot (the defaults: two per core, 10 s).
    pub fn with_query_slots(mut self, slots: usize, wait: Duration) -> AppState {
        self.query_slots = Arc::new(tokio::sync::Semaphore::new(slots));
        self.slot_wait = wait;
        self
    }

    /// Runs a query's blocking work once a slot is free, holding the slot until the work ends;
    /// 503 (busy, retry shortly) when no slot frees up in time.
    async fn query<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = tokio::time::timeout(
            self.slot_wait,
            Arc::clone(&self.query_slots).acquire_owned(),
        )
        .await;
        let Ok(Ok(slot)) = slot else {
            return Err(ApiError::busy());
        };
        blocking(move || {
            let _slot = slot;
            work()
        })
        .await
    }
}

/// The router with every route and layer; tests drive it with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/match", post(match_handler))
        .route("/v1/postings", get(postings_handler))
        .route("/v1/candidates/{opportunity_id}", get(candidate_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(v1)
        .route("/healthz", get(health_handler))
        .route("/openapi.json", get(openapi_handler))
        .route("/webhooks/lever", post(webhook_handler))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method (see /openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(within_request_timeout))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers a request that has not finished within [`REQUEST_TIMEOUT`] (a body that never
/// ends, a query that waits too long) with the API's JSON 503, like every other error.
async fn within_request_timeout(
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request did not finish within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

// ---- errors -----------------------------------------------------------------------------

/// An error answer: a status and a message for the user.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds for a `Retry-After` header, when retrying soon may succeed.
    retry_after: Option<&'static str>,
}

impl ApiError {
    /// 413 for a body over [`MAX_BODY_BYTES`].
    fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    }

    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Every query slot stayed taken: the caller should retry shortly.
    fn busy() -> ApiError {
        ApiError {
            retry_after: Some("1"),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: every query slot is taken by other queries; retry in a moment",
            )
        }
    }

    /// A fault; its detail goes to the server log, never to the caller.
    fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(seconds),
            );
        }
        response
    }
}

impl From<crate::Error> for ApiError {
    fn from(err: crate::Error) -> ApiError {
        use crate::search::Error as S;
        let status = match &err {
            crate::Error::Search(S::UnknownPosting { .. } | S::UnknownOpportunity { .. }) => {
                StatusCode::NOT_FOUND
            }
            crate::Error::Search(S::NoIndex { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            e if e.is_user_error() => StatusCode::BAD_REQUEST,
            _ => {
                tracing::error!(error = %err, "request failed");
                return ApiError::internal();
            }
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::body_too_large();
        }
        // A well-formed body with a wrong value (`"limit": -1`) is a bad request like any other
        // invalid value (`"limit": 100000`), told without Rust's type names.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(status, plain_types(&rejection.body_text()))
    }
}

/// Replaces Rust's type names in a deserialisation message with what a user would write.
fn plain_types(message: &str) -> String {
    [
        ("expected usize", "expected a whole number of at least 0"),
        ("expected u8", "expected a whole number from 0 to 255"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of at least 0"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
    ]
    .iter()
    .fold(message.to_owned(), |m, (rust, plain)| {
        m.replace(rust, plain)
    })
}

/// Runs CPU-bound or file work off the async threads.
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => {
            // Not the panic's message: it may quote candidate data.
            tracing::error!(panicked = join.is_panic(), "request task failed");
            Err(ApiError::internal())
        }
    }
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        _ => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                    .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

// ---- requests -----------------------------------------------------------------------------

/// `POST /v1/match` body: `text` or `posting_id`, and options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// Free text: a title or a whole job description.
    pub text: Option<String>,
    /// A synced posting id.
    pub posting_id: Option<String>,
    /// Number of people to return, 1 to 200 (default 20).
    pub limit: Option<i64>,
    /// Semantic weight, 0 (keyword only) to 1 (semantic only).
    pub semantic: Option<f32>,
    /// Boolean keyword filter (AND, OR, NOT, quoted phrases).
    pub keywords: Option<String>,
    /// Structured filters (`null` is none, like a missing field).
    #[serde(default)]
    pub filters: Option<FiltersJson>,
    /// Fusion method: `rrf` (default), `minmax` or `zscore`.
    pub fusion: Option<String>,
}

/// The structured filters as JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersJson {
    /// Only archived opportunities (`null` is false, like a missing field).
    #[serde(default, deserialize_with = "null_as_default")]
    pub archived_only: bool,
    /// Leave out people hired on any of their opportunities (`null` is false).
    #[serde(default, deserialize_with = "null_as_default")]
    pub exclude_hired: bool,
    /// Words of the candidate's location (see `match --location`).
    pub location: Option<String>,
    /// Tags that must all be present (`null` is none).
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Minimum furthest stage (id or name).
    pub min_stage: Option<String>,
    /// Last interaction within this many days.
    pub interacted_within_days: Option<u32>,
    /// Minimum best feedback rating 1 to 4.
    pub min_rating: Option<u8>,
}

/// A field whose `null` means the same as leaving it out: its default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl From<FiltersJson> for Filters {
    fn from(f: FiltersJson) -> Filters {
        Filters {
            archived_only: f.archived_only,
            exclude_hired: f.exclude_hired,
            location: f.location,
            tags: f.tags,
            min_stage: f.min_stage,
            interacted_within_days: f.interacted_within_days,
            min_rating: f.min_rating,
        }
    }
}

/// Parses a fusion method name: `rrf`, `minmax` or `zscore`.
pub fn parse_fusion(name: &str) -> Option<Fusion> {
    match name.to_ascii_lowercase().as_str() {
        "rrf" => Some(Fusion::default()),
        "minmax" | "min-max" => Some(Fusion::Score {
            normalize: Normalize::MinMax,
        }),
        "zscore" | "z-score" => Some(Fusion::Score {
            normalize: Normalize::ZScore,
        }),
        _ => None,
    }
}

impl MatchRequest {
    /// Turns the request into a query; exactly one of `text` and `posting_id` must be given.
    pub fn into_query(self) -> Result<Query, ApiError> {
        let mut query = match (self.text, self.posting_id) {
            (Some(text), None) => Query::text(text),
            (None, Some(id)) => Query::posting(id),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give either text or posting_id, not both",
                ));
            }
            (None, None) => return Err(ApiError::bad_request("give text or posting_id")),
        };
        if let Some(limit) = self.limit {
            query.limit = usize::try_from(limit)
                .ok()
                .filter(|l| (1..=search::MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "limit must be a whole number from 1 to {}",
                        search::MAX_LIMIT
                    ))
                })?;
        }
        query.semantic = self.semantic;
        query.keywords = self.keywords;
        query.filters = self.filters.unwrap_or_default().into();
        if let Some(name) = self.fusion {
            query.fusion = parse_fusion(&name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown fusion {name:?}: use rrf, minmax or zscore"
                ))
            })?;
        }
        Ok(query)
    }
}

// ---- responses ----------------------------------------------------------------------------

/// The answer to a match: what `POST /v1/match` and `rediscover match --json` print.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchResponse {
    /// One result per person, best first.
    pub results: Vec<ResultJson>,
    /// Wall time of the query in milliseconds.
    pub took_ms: f64,
    /// True when the semantic side was wanted but could not run (keyword results only).
    pub degraded: bool,
    /// Why it was degraded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub degraded_reason: Option<String>,
    /// The index generation that answered.
    pub generation: u64,
    /// The keyword terms used, as words of the query.
    pub terms: Vec<String>,
    /// The semantic weight the ranking used (the request's, or the default for its length).
    pub semantic: f32,
    /// Time per step in milliseconds.
    pub timings_ms: TimingsJson,
}

/// Time per step in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimingsJson {
    /// Embedding the query.
    pub embed: f64,
    /// Whether the query vector came from the cache.
    pub embed_cached: bool,
    /// Resolving the filters into allowed rows.
    #[serde(default)]
    pub filter: f64,
    /// Keyword search (runs while the query is embedded).
    pub keyword: f64,
    /// Vector search.
    pub vector: f64,
    /// Fusion and grouping.
    pub fusion: f64,
    /// Explanations.
    pub explain: f64,
}

/// One person in the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultJson {
    /// Rank from 1.
    pub rank: u32,
    /// Fused score.
    pub score: f32,
    /// The person's best opportunity.
    pub opportunity_id: String,
    /// The person.
    pub contact_id: String,
    /// Display name.
    pub name: String,
    /// Headline.
    pub headline: String,
    /// The Lever profile link.
    pub profile_url: String,
    /// The person's other opportunities.
    pub other_opportunity_ids: Vec<String>,
    /// Why this person ranks here.
    pub reasons: ReasonsJson,
}

/// The reasons of one result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReasonsJson {
    /// Keyword rank and score, when the keyword side ranked it.
    pub keyword: Option<KeywordJson>,
    /// Semantic rank, similarity and best passage, when the semantic side ranked it.
    pub semantic: Option<SemanticJson>,
    /// Query terms found in the candidate's indexed text.
    pub matched_terms: Vec<MatchedTermJson>,
    /// A window of the candidate's text with the matches highlighted.
    pub snippet: Option<SnippetJson>,
    /// The history of the opportunity.
    pub history: HistoryJson,
    /// The histories of the person's most recently active other opportunities (at most
    /// [`search::MAX_OTHER_HISTORIES`]; `other_opportunity_ids` lists them all), most recent first.
    #[serde(default)]
    pub other_opportunities: Vec<OtherOpportunityJson>,
}

/// One of the person's other opportunities and what happened there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherOpportunityJson {
    /// The opportunity.
    pub opportunity_id: String,
    /// Its history.
    pub history: HistoryJson,
}

/// Keyword provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeywordJson {
    /// Rank from 1.
    pub rank: u32,
    /// BM25 score.
    pub score: f32,
}

/// Semantic provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SemanticJson {
    /// Rank from 1.
    pub rank: u32,
    /// Cosine similarity of the best passage.
    pub similarity: f32,
    /// The best passage.
    pub passage: String,
    /// `profile`, `resume` or `note`.
    pub passage_source: String,
}

/// A matched term.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchedTermJson {
    /// The query's word.
    pub word: String,
    /// The analysed token.
    pub token: String,
    /// Matched in the exact-token field.
    pub exact: bool,
}

/// A highlighted snippet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnippetJson {
    /// The text.
    pub text: String,
    /// Byte ranges `[start, end)` of `text` (UTF-8) to highlight: byte offsets, not character
    /// offsets.
    pub highlights: Vec<[usize; 2]>,
}

/// The history of an opportunity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryJson {
    /// Current stage name.
    pub current_stage: Option<String>,
    /// Stage names reached, in pipeline order.
    pub stages_reached: Vec<String>,
    /// Archive reason, when archived.
    pub archived: Option<ArchivedJson>,
    /// Last interaction (ms since epoch).
    pub last_interaction_at: Option<i64>,
    /// Creation (ms since epoch).
    pub created_at: i64,
    /// Overall feedback ratings, 1 to 4.
    pub feedback_ratings: Vec<u8>,
    /// Number of note threads.
    pub notes: usize,
    /// Titles of postings applied to.
    pub applied_to: Vec<String>,
    /// The Lever profile link.
    pub profile_url: String,
}

/// An archive reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedJson {
    /// Reason text.
    pub reason: String,
    /// Hired-type reason.
    pub hired: bool,
    /// When (ms since epoch).
    pub archived_at: i64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

impl MatchResponse {
    /// Builds the JSON answer from a search response and the wall time it took.
    pub fn new(response: &SearchResponse, took: Duration) -> MatchResponse {
        let t = &response.timings;
        MatchResponse {
            results: response.hits.iter().map(ResultJson::from).collect(),
            took_ms: ms(took),
            degraded: response.degraded.is_some(),
            degraded_reason: response.degraded.clone(),
            generation: response.generation,
            terms: response.terms.iter().map(|t| t.word.clone()).collect(),
            semantic: response.semantic_weight,
            timings_ms: TimingsJson {
                embed: ms(t.embed),
                embed_cached: t.embed_cached,
                filter: ms(t.filter),
                keyword: ms(t.keyword),
                vector: ms(t.vector),
                fusion: ms(t.fusion),
                explain: ms(t.explain),
            },
        }
    }
}

impl From<&search::History> for HistoryJson {
    fn from(h: &search::History) -> HistoryJson {
        HistoryJson {
            current_stage: h.current_stage.clone(),
            stages_reached: h.stages_reached.clone(),
            archived: h.archived.as_ref().map(|a| ArchivedJson {
                reason: a.reason.clone(),
                hired: a.hired,
                archived_at: a.archived_at,
            }),
            last_interaction_at: h.last_interaction_at,
            created_at: h.created_at,
            feedback_ratings: h.feedback_ratings.clone(),
            notes: h.notes,
            applied_to: h.applied_to.clone(),
            profile_url: h.profile_url.clone(),
        }
    }
}

impl From<&Hit> for ResultJson {
    fn from(hit: &Hit) -> ResultJson {
        let e = &hit.explanation;
        ResultJson {
            rank: hit.rank,
            score: hit.score,
            opportunity_id: hit.opportunity_id.clone(),
            contact_id: hit.contact_id.clone(),
            name: hit.name.clone(),
            headline: hit.headline.clone(),
            profile_url: e.history.profile_url.clone(),
            other_opportunity_ids: hit.other_opportunity_ids.clone(),
            reasons: ReasonsJson {
                keyword: e.keyword.map(|k| KeywordJson {
                    rank: k.rank,
                    score: k.score,
                }),
                semantic: e.semantic.as_ref().map(|s| SemanticJson {
                    rank: s.rank,
                    similarity: s.similarity,
                    passage: s.passage.clone(),
                    passage_source: match s.passage_source {
                        search::explain::PassageSource::Profile => "profile",
                        search::explain::PassageSource::Resume => "resume",
                        search::explain::PassageSource::Note => "note",
                    }
                    .to_owned(),
                }),
                matched_terms: e
                    .matched_terms
                    .iter()
                    .map(|m| MatchedTermJson {
                        word: m.word.clone(),
                        token: m.token.clone(),
                        exact: m.exact,
                    })
                    .collect(),
                snippet: e.snippet.as_ref().map(|s| SnippetJson {
                    text: s.text.clone(),
                    highlights: s.highlights.iter().map(|&(a, b)| [a, b]).collect(),
                }),
                history: (&e.history).into(),
                other_opportunities: (e.other_histories.iter())
                    .map(|o| OtherOpportunityJson {
                        opportunity_id: o.opportunity_id.clone(),
                        history: (&o.history).into(),
                    })
                    .collect(),
            },
        }
    }
}

/// A posting in `GET /v1/postings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostingJson {
    /// Posting id (use as `posting_id`).
    pub id: String,
    /// Title.
    pub title: String,
    /// `published`, `closed`...
    pub state: String,
    /// Team.
    pub team: String,
    /// Location.
    pub location: String,
}

/// `GET /v1/postings` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostingsJson {
    /// The synced postings.
    pub postings: Vec<PostingJson>,
}

/// `GET /v1/candidates/{opportunity_id}` answer: the profile (no contact details) and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateJson {
    /// Opportunity id.
    pub opportunity_id: String,
    /// Contact id.
    pub contact_id: String,
    /// Display name.
    pub name: String,
    /// Headline.
    pub headline: String,
    /// Location.
    pub location: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Sources.
    pub sources: Vec<String>,
    /// Positions held (title and employer), newest resume first.
    pub positions: Vec<String>,
    /// The person's other opportunities.
    pub other_opportunity_ids: Vec<String>,
    /// History.
    pub history: HistoryJson,
}

impl From<&CandidateDetails> for CandidateJson {
    fn from(d: &CandidateDetails) -> CandidateJson {
        let c = &d.candidate;
        let mut resumes: Vec<_> = c.resumes.iter().collect();
        resumes.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        CandidateJson {
            opportunity_id: c.id.clone(),
            contact_id: c.contact_id.clone(),
            name: c.name.clone(),
            headline: c.headline.clone(),
            location: c.location.clone(),
            tags: c.tags.clone(),
            sources: c.sources.clone(),
            positions: resumes
                .iter()
                .flat_map(|r| r.positions.iter())
                .map(|p| {
                    if p.org.is_empty() {
                        p.title.clone()
                    } else {
                        format!("{} at {}", p.title, p.org)
                    }
                })
                .collect(),
            other_opportunity_ids: d.other_opportunity_ids.clone(),
            history: (&d.history).into(),
        }
    }
}

/// `GET /healthz` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthJson {
    /// `ok` when an index is loaded, `no_index` otherwise.
    pub status: String,
    /// The loaded index generation.
    pub generation: Option<u64>,
    /// Whether the store moved past the index (a sync committed but its index step failed or
    /// was skipped): answers leave out what the store dropped, but miss what it added until
    /// `rediscover index` or the next sync.
    #[serde(default)]
    pub index_behind_store: bool,
    /// Whether the embedding model is loaded (else queries are keyword-only).
    pub model: bool,
}

/// The answer to a webhook delivery.
#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookAck {
    /// Whether the delivery named an opportunity and was queued for the next sync (a test
    /// ping or a contact event is accepted without).
    pub queued: bool,
    /// Why a signed delivery was not queued: `repeat` (its token was already received),
    /// `stale` (triggered before the replay window) or `malformed` (an event name or an
    /// opportunity id that cannot be Lever's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

impl WebhookAck {
    fn queued(queued: bool) -> WebhookAck {
        WebhookAck {
            queued,
            ignored: None,
        }
    }

    fn ignored(reason: &str) -> WebhookAck {
        WebhookAck {
            queued: false,
            ignored: Some(reason.to_owned()),
        }
    }
}

// ---- handlers -----------------------------------------------------------------------------

async fn match_handler(
    State(state): State<AppState>,
    body: Result<Json<MatchRequest>, JsonRejection>,
) -> Result<Json<MatchResponse>, ApiError> {
    let Json(request) = body?;
    let query = request.into_query()?;
    let engine = Arc::clone(&state.engine);
    let started = Instant::now();
    let response = state.query(move || engine.search(&query)).await?;
    Ok(Json(MatchResponse::new(&response, started.elapsed())))
}

async fn postings_handler(State(state): State<AppState>) -> Result<Json<PostingsJson>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let postings = state.query(move || engine.postings()).await?;
    Ok(Json(PostingsJson {
        postings: postings
            .into_iter()
            .map(|p| PostingJson {
                id: p.id,
                title: p.title,
                state: p.state,
                team: p.team,
                location: p.location,
            })
            .collect(),
    }))
}

async fn candidate_handler(
    State(state): State<AppState>,
    opportunity_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CandidateJson>, ApiError> {
    // An id that is not UTF-8 once percent-decoded gets the API's JSON error, not axum's text.
    let Path(opportunity_id) = opportunity_id.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad opportunity id in the path: {}", rejection.body_text()),
        )
    })?;
    let engine = Arc::clone(&state.engine);
    let details = state
        .query(move || engine.candidate(&opportunity_id))
        .await?;
    Ok(Json(CandidateJson::from(&details)))
}

async fn health_handler(State(state): State<AppState>) -> Json<HealthJson> {
    let engine = Arc::clone(&state.engine);
    // The store on disk, not the snapshot's: a snapshot keeps the store it was opened with
    // while a newer index generation fails to open, and answers then miss what it added.
    let generations = tokio::task::spawn_blocking(move || {
        engine.snapshot().ok().map(|s| {
            let committed = crate::store::Store::committed_generation(engine.data_dir())
                .unwrap_or(0)
                .max(s.store.generation());
            (s.generation(), committed)
        })
    })
    .await
    .ok()
    .flatten();
    Json(HealthJson {
        status: if generations.is_some() {
            "ok"
        } else {
            "no_index"
        }
        .to_owned(),
        generation: generations.map(|(index, _)| index),
        index_behind_store: generations.is_some_and(|(index, store)| index != store),
        model: state.engine.has_embedder(),
    })
}

/// `POST /webhooks/lever`: one Lever webhook delivery, checked against the signature tokens
/// in `DATA/webhook-tokens` (404 without that file). A delivery naming an opportunity is on
/// disk in the inbox before the 200; any other answer makes Lever deliver it again.
async fn webhook_handler(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<WebhookAck>, ApiError> {
    // A body over the limit gets the API's JSON error, not axum's text.
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large()
        } else {
            ApiError::new(status, rejection.body_text())
        }
    })?;
    let engine = Arc::clone(&state.engine);
    let replay = Arc::clone(&state.replay);
    blocking(move || receive_webhook(&engine, &replay, &body))
        .await
        .map(Json)
}

fn receive_webhook(
    engine: &Engine,
    replay: &ReplayGuard,
    body: &[u8],
) -> Result<WebhookAck, ApiError> {
    let tokens = match inbox::signature_tokens(engine.data_dir()) {
        Ok(Some(tokens)) if !tokens.is_empty() => tokens,
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "webhooks are not set up: put each webhook's signature token on a line of {}",
                    inbox::TOKENS_FILE
                ),
            ));
        }
        Err(err) => {
            tracing::error!(error = %err, "webhook tokens unreadable");
            return Err(ApiError::internal());
        }
    };
    let event = parse_event(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !tokens.iter().any(|t| event.verify(t)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong webhook signature",
        ));
    }
    if event.is_malformed() {
        return Ok(WebhookAck::ignored("malformed"));
    }
    // A test ping or a contact event names no opportunity.
    let Some(opportunity_id) = event.opportunity_id() else {
        return Ok(WebhookAck::queued(false));
    };
    // `verify` succeeded, so the delivery has a token and a time.
    let (token, triggered_at) = (
        event.token.as_deref().unwrap_or_default(),
        event.triggered_at.unwrap_or_default(),
    );
    let now = crate::index::generation::now_ms();
    match replay.claim(token, triggered_at, now) {
        Ok(Verdict::Fresh) => {}
        Ok(Verdict::Repeat) => return Ok(WebhookAck::ignored("repeat")),
        Ok(Verdict::Stale) => return Ok(WebhookAck::ignored("stale")),
        Err(err) => {
            tracing::error!(error = %err, "webhook replay record unreadable; Lever delivers it again");
            return Err(ApiError::internal());
        }
    }
    let notice = Notice {
        event: event.event.clone(),
        opportunity_id: opportunity_id.to_owned(),
        triggered_at: event.triggered_at,
    };
    if let Err(err) = Inbox::new(engine.data_dir()).append(&notice) {
        replay.release(token);
        tracing::error!(error = %err, "webhook notice not kept; Lever delivers it again");
        return Err(ApiError::internal());
    }
    if let Err(err) = replay.record(token, triggered_at, now) {
        // The notice is kept: only this token's replay protection is lost.
        tracing::error!(error = %err, "webhook token not recorded");
    }
    if notice.is_deletion() {
        engine.refresh_pending_deletions();
    }
    // Debug-formatted: the event name is the sender's text, and a newline in it would forge a
    // log line.
    tracing::info!(event = ?notice.event, "webhook notice queued");
    Ok(WebhookAck::queued(true))
}

async fn openapi_handler() -> Json<serde_json::Value> {
    Json(openapi())
}

/// The OpenAPI 3 description of this API, written by hand.
pub fn openapi() -> serde_json::Value {
    use serde_json::json;
    let error = json!({"$ref": "#/components/schemas/Error"});
    let errors = |codes: &[&str]| -> serde_json::Value {
        codes
            .iter()
            .map(|c| ((*c).to_owned(), json!({"description": "error", "content": {"application/json": {"schema": error}}})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    // Every answer but a 200 is a JSON error; the listed codes are the ones each route gives
    // for its own reasons, `default` covers the rest (405, 413, 500, a 503 at the timeout).
    let with_errors = |ok: serde_json::Value, codes: &[&str]| -> serde_json::Value {
        let mut responses = errors(codes);
        responses["200"] = ok;
        responses["default"] = json!({"description": "any other error (405 wrong method, 413 body too large, 500, 503 past the 30 s request timeout)",
            "content": {"application/json": {"schema": error}}});
        responses
    };
    let ok = |description: &str, schema: &str| {
        json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
    };
    let match_responses = with_errors(
        ok("ranked people with reasons", "MatchResponse"),
        &["400", "401", "404", "415", "503"],
    );
    let filters = json!({"type": "object", "additionalProperties": false, "nullable": true,
        "description": "every filter may be null or left out: no filter",
        "properties": {
        "archived_only": {"type": "boolean", "nullable": true}, "exclude_hired": {"type": "boolean", "nullable": true, "description": "leave out people hired on any of their opportunities"},
        "location": {"type": "string", "nullable": true, "description": "words of the candidate's location, ignoring case and accents; a last word of 3 letters or more may begin one"},
        "tags": {"type": "array", "nullable": true, "items": {"type": "string"}, "description": "tags that must all be present"},
        "min_stage": {"type": "string", "nullable": true, "description": "stage id or name"},
        "interacted_within_days": {"type": "integer", "nullable": true, "minimum": 1, "maximum": u32::MAX},
        "min_rating": {"type": "integer", "nullable": true, "minimum": 1, "maximum": 4}}});
    let match_request = json!({"type": "object", "additionalProperties": false,
        "description": format!("exactly one of text and posting_id; the whole body at most {MAX_BODY_BYTES} bytes"),
        "properties": {
            "text": {"type": "string", "description": format!("the posting or job description, at most {} bytes of UTF-8 (bytes, not characters)", search::MAX_QUERY_BYTES)},
            "posting_id": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": search::MAX_LIMIT, "default": search::DEFAULT_LIMIT},
            "semantic": {"type": "number", "minimum": 0, "maximum": 1, "description": format!("semantic weight W; when absent, {} for a query of at most {} words and {} for a longer one", search::SHORT_QUERY_SEMANTIC, search::SHORT_QUERY_WORDS, search::DEFAULT_SEMANTIC)},
            "keywords": {"type": "string", "description": "Boolean filter over the keyword index: words, \"phrases\", AND, OR, NOT or a leading -, and parentheses"},
            "fusion": {"type": "string", "enum": ["rrf", "minmax", "zscore"], "description": "case-insensitive; min-max and z-score are accepted too"},
            "filters": {"$ref": "#/components/schemas/Filters"}}});
    let history = json!({"type": "object", "properties": {
        "current_stage": {"type": "string", "nullable": true},
        "stages_reached": {"type": "array", "items": {"type": "string"}},
        "archived": {"type": "object", "nullable": true, "properties": {
            "reason": {"type": "string"}, "hired": {"type": "boolean"}, "archived_at": {"type": "integer"}}},
        "last_interaction_at": {"type": "integer", "nullable": true},
        "created_at": {"type": "integer"},
        "feedback_ratings": {"type": "array", "items": {"type": "integer"}},
        "notes": {"type": "integer"},
        "applied_to": {"type": "array", "items": {"type": "string"}},
        "profile_url": {"type": "string"}}});
    let semantic = json!({"type": "object", "nullable": true, "properties": {
        "rank": {"type": "integer"}, "similarity": {"type": "number"},
        "passage": {"type": "string"}, "passage_source": {"type": "string", "enum": ["profile", "resume", "note"]}}});
    let snippet = json!({"type": "object", "nullable": true, "properties": {
        "text": {"type": "string"},
        "highlights": {"type": "array", "description": "[start, end) as byte offsets into the UTF-8 text (not character offsets: convert before slicing a JavaScript string)", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}}});
    let reasons = json!({"type": "object", "properties": {
        "keyword": {"type": "object", "nullable": true, "properties": {"rank": {"type": "integer"}, "score": {"type": "number"}}},
        "semantic": semantic,
        "matched_terms": {"type": "array", "items": {"type": "object", "properties": {
            "word": {"type": "string"}, "token": {"type": "string"}, "exact": {"type": "boolean"}}}},
        "snippet": snippet,
        "history": {"$ref": "#/components/schemas/History"},
        "other_opportunities": {"type": "array", "description": "the person's most recently active other opportunities (at most 5; other_opportunity_ids lists them all), most recent first", "items": {"type": "object", "properties": {
            "opportunity_id": {"type": "string"}, "history": {"$ref": "#/components/schemas/History"}}}}}});
    let result = json!({"type": "object", "required": ["rank", "score", "opportunity_id", "contact_id", "name", "headline", "profile_url", "other_opportunity_ids", "reasons"], "properties": {
        "rank": {"type": "integer"}, "score": {"type": "number"},
        "opportunity_id": {"type": "string"}, "contact_id": {"type": "string"},
        "name": {"type": "string"}, "headline": {"type": "string"}, "profile_url": {"type": "string"},
        "other_opportunity_ids": {"type": "array", "items": {"type": "string"}},
        "reasons": reasons}});
    let number = json!({"type": "number"});
    let match_response = json!({"type": "object", "required": ["results", "took_ms", "degraded", "generation", "terms", "semantic", "timings_ms"], "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "took_ms": {"type": "number"}, "degraded": {"type": "boolean", "description": "the semantic side was wanted but could not run: keyword results only"},
        "degraded_reason": {"type": "string"}, "generation": {"type": "integer"}, "semantic": {"type": "number", "description": "the semantic weight used"},
        "terms": {"type": "array", "items": {"type": "string"}},
        "timings_ms": {"type": "object", "required": ["embed", "embed_cached", "filter", "keyword", "vector", "fusion", "explain"], "properties": {
            "embed": number, "embed_cached": {"type": "boolean"}, "filter": number, "keyword": number,
            "vector": number, "fusion": number, "explain": number}}}});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let postings = json!({"type": "object", "required": ["postings"], "properties": {
        "postings": {"type": "array", "items": {"type": "object", "required": ["id", "title", "state", "team", "location"], "properties": {
            "id": {"type": "string", "description": "use as posting_id"}, "title": {"type": "string"},
            "state": {"type": "string"}, "team": {"type": "string"}, "location": {"type": "string"}}}}}});
    let candidate = json!({"type": "object", "description": "the profile (no contact details) and history",
        "required": ["opportunity_id", "contact_id", "name", "headline", "location", "tags", "sources", "positions", "other_opportunity_ids", "history"],
        "properties": {
        "opportunity_id": {"type": "string"}, "contact_id": {"type": "string"}, "name": {"type": "string"},
        "headline": {"type": "string"}, "location": {"type": "string"}, "tags": strings, "sources": strings,
        "positions": {"type": "array", "items": {"type": "string"}, "description": "title at employer, newest resume first"},
        "other_opportunity_ids": strings, "history": {"$ref": "#/components/schemas/History"}}});
    let health = json!({"type": "object", "required": ["status", "generation", "index_behind_store", "model"], "properties": {
        "status": {"type": "string", "enum": ["ok", "no_index"]},
        "generation": {"type": "integer", "nullable": true, "description": "the loaded index generation"},
        "index_behind_store": {"type": "boolean", "description": "a sync committed but did not index: answers miss what it added"},
        "model": {"type": "boolean", "description": "the embedding model is loaded (else answers are keyword-only)"}}});
    let webhook_ack = json!({"type": "object", "required": ["queued"], "properties": {
        "queued": {"type": "boolean"}, "ignored": {"type": "string", "enum": ["repeat", "stale", "malformed"]}}});
    let schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Filters": filters, "MatchRequest": match_request, "History": history,
        "Result": result, "MatchResponse": match_response, "Postings": postings,
        "Candidate": candidate, "Health": health, "WebhookAck": webhook_ack});
    let paths = json!({
        "/v1/match": {"post": {"summary": "Rank past candidates for a posting or free text",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MatchRequest"}}}},
            "responses": match_responses}},
        "/v1/postings": {"get": {"summary": "The synced postings (401 without the token; 503 with no index yet, or busy: every query slot taken, see Retry-After)", "security": [{"bearer": []}],
            "responses": with_errors(ok("postings", "Postings"), &["401", "503"])}},
        "/v1/candidates/{opportunity_id}": {"get": {"summary": "One opportunity with its history (400 for an id that is not UTF-8, 404 for an unknown one)",
            "security": [{"bearer": []}],
            "parameters": [{"name": "opportunity_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": with_errors(ok("the candidate", "Candidate"), &["400", "401", "404", "503"])}},
        "/webhooks/lever": {"post": {"summary": "A Lever webhook delivery (signed; queued for the next sync, deletions hidden at once): 400 malformed, 401 missing or wrong signature, 404 webhooks not set up",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": with_errors(ok("accepted", "WebhookAck"), &["400", "401", "404"])}},
        "/healthz": {"get": {"summary": "Liveness, the loaded index generation, and whether the store moved past it",
            "responses": {"200": ok("health", "Health")}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3"}}}}
    });
    json!({
        "openapi": "3.0.3",
        "info": {"title": "rediscover", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Rank past candidates of a Lever talent pool for a posting, with reasons."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state over an empty data folder (no query here reads the engine).
    fn state(slots: usize, wait: Duration) -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), None).unwrap());
        let state = AppState::new(engine, None).with_query_slots(slots, wait);
        (dir, state)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_slot_stays_taken_until_its_work_ends_even_after_the_request_gave_up() {
        let (_dir, state) = state(1, Duration::from_millis(50));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel();
        let slow = state.clone();
        let request = tokio::spawn(async move {
            slow.query(move || {
                let _ = started.send(());
                released.recv().ok();
                Ok::<_, ApiError>(())
            })
            .await
        });
        has_started.await.unwrap();
        // The request gives up (as a timed-out one does); its work runs on.
        request.abort();
        let busy = state.query(|| Ok::<_, ApiError>(1)).await.unwrap_err();
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.retry_after, Some("1"));
        assert!(busy.message.starts_with("busy"), "{}", busy.message);

        release.send(()).unwrap();
        let patient = AppState {
            slot_wait: Duration::from_secs(30),
            ..state.clone()
        };
        assert_eq!(patient.query(|| Ok::<_, ApiError>(2)).await.unwrap(), 2);
        assert_eq!(state.query_slots.available_permits(), 1);
    }

    /// A request whose body never finishes gets the API's JSON error at the timeout, not an
    /// empty 503.
    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_timeout_gets_a_json_error() {
        use tower::ServiceExt;
        let (_dir, state) = state(1, Duration::from_secs(10));
        let endless = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        let request = axum::http::Request::post("/v1/match")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from_stream(endless))
            .unwrap();
        let response = app(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "the request did not finish within 30 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_queries_run_at_once_than_there_are_slots() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, state) = state(2, Duration::from_secs(30));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let requests: Vec<_> = (0..8)
            .map(|i| {
                let (state, running, most) = (state.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    state
                        .query(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, ApiError>(i)
                        })
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for request in requests {
            answers.push(request.await.unwrap().unwrap());
        }
        assert_eq!(answers, (0..8).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 2, "two slots, eight queries");
    }
}
