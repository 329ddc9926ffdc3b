//! A local Lever-compatible API server for demos, tests and benchmarks: the `/v1` routes a sync
//! reads (plus notes, tags, stage/archive writes, applications to postings and webhook
//! subscriptions) over a generated or fixture talent pool, with Lever's auth, rate limit,
//! paging, filters and faults.
//!
//! The JSON is built from `lever-api.md` with `serde_json`, never from the sync client's types,
//! so a wrong client struct cannot agree with itself. Only ids and counts are ever logged.
//!
//! # Behaviour
//! * Auth: `Authorization: Basic base64(<api key>:)` (any password) or `Bearer <token>`;
//!   anything else is `401 {"code":"UnauthorizedError","message":...}`.
//! * Rate limit: a token bucket per credential (capacity `burst`, refill `rate_per_sec`),
//!   `429 {"code":"TooManyRequests"}` when empty, with `Retry-After` only when configured.
//!   `POST /postings/:id/apply` draws from a separate bucket per credential instead
//!   (`apply_burst`, `apply_rate_per_sec`: 2 and 2/s, as Lever holds applications to 2/s).
//! * Applications: `POST /postings/:id/apply` (published or unlisted postings; body
//!   `personalInformation[{name,value}]` with `fullName` and `email` required, `urls`,
//!   `customQuestions`, `source`, `origin` `applied|internal`, `ipAddress`) adds an opportunity
//!   in `applicant-new` with its application (type `posting`), on the contact that owns the
//!   email or a new one, fires `applicationCreated` and answers
//!   `201 {"data":{"applicationId":...}}`. `GET /postings/:id/apply` is the form definition.
//! * Lists: `{"data":[...],"hasNext":bool,"next":token}`, `next` absent on the last page,
//!   `limit` 1..=100 (default 100). Offset tokens are percent-encoded JSON keysets
//!   `[rank, timestamp, id, signature]`, HMAC-signed over the route and its filters; anything
//!   forged, altered or reused with other filters gets `400 Invalid offset token`.
//!   `GET /opportunities` is ordered by stage rank, then `createdAt`, then id (not by time).
//! * `updated_at_*` filters skip opportunities whose `updatedAt` is null (about 60% of a
//!   generated pool). Confidential opportunities (about 2%) and postings only show with
//!   `confidentiality=all|confidential`. Confidential access belongs to each credential:
//!   [`MockConfig::api_keys`] and `bearer_tokens` have it when
//!   [`MockConfig::confidential_access`] says so, [`MockConfig::api_keys_without_confidential`]
//!   never, and an OAuth access token when its grant's scope lists `confidential:access:admin`.
//!   Without it, `confidentiality=all|confidential` and a confidential record asked for by id
//!   (an opportunity, its children and writes, a posting) are a 403.
//! * Resume downloads are rendered from the resume text as real PDF, DOCX or TXT files;
//!   `file.status == "error"` answers 422, a resume without a file 404.
//!   `legacy_resume_404` makes an empty resume list answer 404, as Lever once did.
//! * `include=f` keeps only `id`, `f` and expanded fields on every paged list and single record
//!   (postings too: `include=content&include=followers`). `expand` works on opportunities
//!   (`applications`, `stage`, `owner`, `sourcedBy`, `followers`, `contact`), postings
//!   (`user`, `owner`, `hiringManager`, `followers`), applications (`posting`, `postingOwner`,
//!   `postingHiringManager`, `user`), notes and feedback (`user`), offers (`creator`) and
//!   interviews (`user`, `stage`, `feedbackForms`, `postings`), lists and single records alike;
//!   repeated, `expand[]=` and comma-joined forms are equal, unknown names are ignored.
//!   Offers and interviews come from fixtures (generated pools have none); referrals, files,
//!   panels, forms and file actions are always empty lists.
//!
//! # Generated pool
//! [`generate_pool`]`(n, seed)` makes `n` opportunities (about 8% of people have two, sharing
//! a contact) across 21 occupation families, plus 13 postings, 9 stages (slugs and UUIDs), 10
//! archive reasons (hired and non-hired) and 8 users. About 60% have `updatedAt: null`, 60% are
//! archived (a tenth of those hired), 2% are confidential; resumes run 300 to 900 words.
//! * Faults: a seeded share of `/v1` requests answers 500 or 503, optional added latency, and
//!   the control API can force the next N answers to 429, 500 or 503.
//! * Writes (`POST .../notes`, `addTags`..., `PUT .../stage|archived`) bump `updatedAt` and
//!   `lastInteractionAt` to a strictly increasing wall-clock millisecond (links live on the
//!   contact: `addLinks`/`removeLinks` change and bump every opportunity of that contact) and
//!   fire webhooks (`candidateStageChange`, `candidateArchiveChange`, `candidateHired`,
//!   `candidateDeleted`, `applicationCreated`) signed as in `lever-api.md` §9.3.
//!   `DELETE .../notes/:nid` only deletes notes created through `POST .../notes` (§8.6); any
//!   other note answers `403 {"code":"ForbiddenError"}` and stays as it was.
//!
//! * OAuth (when [`MockConfig::oauth`] is set): `POST /oauth/token` (form body,
//!   `grant_type=refresh_token`, `client_id`, `client_secret`, `refresh_token`) answers
//!   `{access_token, refresh_token, token_type, scope, expires_in}` (`scope` is
//!   [`OAuthConfig::scope`]); each refresh token works once and each answer carries a new one;
//!   issued access tokens are accepted as `Bearer` until they expire, then answer 401.
//!
//! # Control API (same auth, outside `/v1`, not rate limited, not counted)
//! * `POST /_mock/mutate` with one op or an array of ops:
//!   `{"op":"add_note","opportunity_id":ID,"text":T}`,
//!   `{"op":"move_stage","opportunity_id":ID,"stage_id":S}`,
//!   `{"op":"archive","opportunity_id":ID,"reason_id":R|null}` (null unarchives),
//!   `{"op":"delete","opportunity_id":ID}`,
//!   `{"op":"delete_application","opportunity_id":ID,"application_id":A?}`,
//!   `{"op":"add_candidates","count":N,"seed":S}`,
//!   `{"op":"update_resume_text","opportunity_id":ID,"resume_id":R?,"text":T}`,
//!   `{"op":"add_tags","opportunity_id":ID,"tags":[...]}`. Answers `{"data":[result...]}`.
//! * `GET /_mock/stats` ([`Stats`]), `POST /_mock/stats/reset`.
//! * `POST /_mock/faults` ([`FaultUpdate`]): `fail_rate`, `latency_ms`, `rate_per_sec`, `burst`,
//!   `retry_after_secs`, `force_status` + `force_count` (the next N `/v1` answers).
//! * `POST /_mock/oauth/expire`: every issued access token expires now.
//! * `POST /_mock/webhooks/ping`: a test delivery (`candidateHired`, `data: {}`) to every
//!   subscription.
//!
//! # Fixture format (`--fixture DIR`)
//! * `DIR/opportunities.jsonl`: one Lever opportunity object (§8.3) per line, plus extra
//!   keys: `_resumes` (resume objects of §8.5, each with `_text`, the plain text of its file),
//!   `_notes` (note objects, §8.6) and `_feedback` (feedback forms, §8.7), and optionally
//!   `_offers` (§8.9), `_interviews` (§8.10) and `_apiNotes` (ids of the notes created through
//!   the API, the ones it may delete). `applications` may hold
//!   ids or full application objects (§8.8, as `expand=applications` shows them).
//! * `DIR/postings.jsonl`: one posting object (§8.12) per line.
//! * Optional: `stages.jsonl`, `archive_reasons.jsonl`, `users.jsonl` (defaults: the generated
//!   account's), `deleted.jsonl` (deleted opportunities with `deletedAt`),
//!   `deleted_applications.jsonl` (applications deleted from live opportunities). Stages, archive
//!   reasons and users that records reference but these lists lack are added.
//! * Only `id` is required; absent optional fields get defaults (`[]`, `null`, `""`,
//!   `non-confidential`, the first stage, the first user...).

mod apply;
mod auth;
mod control;
mod faults;
mod fixture;
mod generate;
mod mutate;
mod oauth;
mod opportunities;
mod paging;
mod pool;
mod postings;
mod query;
mod ratelimit;
mod reference;
mod render;
mod reply;
mod resume;
mod server;
mod shape;
mod stats;
mod vocab;
mod webhook;
mod writes;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use faults::FaultUpdate;
pub use generate::generate_pool;
pub use mutate::MutateOp;
pub use oauth::OAuthConfig;
pub use pool::{MockOpportunity, MockResume, Pool};
pub use render::{render_docx, render_pdf};
pub use stats::Stats;
pub use webhook::webhook_signature;

/// Errors of the mock Lever.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a fixture file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A fixture line is not valid JSON.
    #[error("{path}:{line}: invalid json: {source}")]
    Json {
        /// The fixture file.
        path: PathBuf,
        /// 1-based line number (0 when writing).
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A fixture line is JSON but not a usable record.
    #[error("{path}:{line}: {message}")]
    Fixture {
        /// The fixture file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A mutation names a record the pool does not have.
    #[error("{kind} {id} was not found")]
    NotFound {
        /// Record kind (`opportunities`, `stages`...).
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A mutation is malformed.
    #[error("invalid mutation: {0}")]
    Invalid(String),
    /// A well-formed change Lever does not allow on this record (deleting a note that was not
    /// created through the API).
    #[error("{0}")]
    Refused(String),
    /// A DOCX could not be assembled.
    #[error("cannot build docx: {0}")]
    Docx(String),
}

/// Server settings. `Default` is Lever's published limits (10/s, burst 20; applications 2/s)
/// with no faults and no credentials; add at least one API key or bearer token.
#[derive(Clone)]
pub struct MockConfig {
    /// API keys accepted as the Basic-auth username; they see confidential records when
    /// `confidential_access` says so.
    pub api_keys: Vec<String>,
    /// API keys created without confidential access: accepted like `api_keys`, but never shown
    /// confidential records (403 when asked for them), whatever `confidential_access` says.
    pub api_keys_without_confidential: Vec<String>,
    /// OAuth access tokens accepted as `Bearer`.
    pub bearer_tokens: Vec<String>,
    /// Token-bucket refill per credential, requests per second.
    pub rate_per_sec: f64,
    /// Token-bucket capacity per credential.
    pub burst: u32,
    /// Refill of the separate per-credential bucket of `POST /postings/:id/apply`, requests
    /// per second (Lever: 2). Applications draw only from this bucket, never from the other.
    pub apply_rate_per_sec: f64,
    /// Capacity of the application bucket (default 2).
    pub apply_burst: u32,
    /// Share (0..=1) of `/v1` requests answered 500 or 503.
    pub fail_rate: f64,
    /// Latency added to every `/v1` request, milliseconds.
    pub latency_ms: u64,
    /// Seed of the fault-injection dice (deterministic fault sequence).
    pub fault_seed: u64,
    /// When set, 429 answers carry `Retry-After: <secs>`.
    pub retry_after_secs: Option<u64>,
    /// Whether `api_keys` and `bearer_tokens` may see confidential records (else 403 when
    /// asked; default true). OAuth access tokens follow their grant's scope instead
    /// ([`OAuthConfig::scope`]).
    pub confidential_access: bool,
    /// Whether `updated_at_*` filters drop records whose `updatedAt` is null (Lever's suspected
    /// behaviour; default true).
    pub exclude_null_updated_at: bool,
    /// Whether mutation responses blank name, headline, emails and phones as recorded from
    /// Lever (default false).
    pub blank_contact_in_mutation_responses: bool,
    /// Webhook redeliveries after a failed attempt (default 5).
    pub webhook_retries: u32,
    /// Delay before the first webhook redelivery, doubled each time (default 1000 ms).
    pub webhook_retry_delay_ms: u64,
    /// Offset tokens older than this are rejected as stale (`None`: never).
    pub token_ttl_ms: Option<u64>,
    /// Answer `GET /opportunities/:id/resumes` with 404 when there are no resumes, as Lever
    /// used to (default false: an empty list).
    pub legacy_resume_404: bool,
    /// Enables `POST /oauth/token` (refresh-token grant) and accepts the access tokens it
    /// issues as `Bearer` credentials.
    pub oauth: Option<OAuthConfig>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_keys: Vec::new(),
            api_keys_without_confidential: Vec::new(),
            bearer_tokens: Vec::new(),
            rate_per_sec: 10.0,
            burst: 20,
            apply_rate_per_sec: 2.0,
            apply_burst: 2,
            fail_rate: 0.0,
            latency_ms: 0,
            fault_seed: 0,
            retry_after_secs: None,
            confidential_access: true,
            exclude_null_updated_at: true,
            blank_contact_in_mutation_responses: false,
            webhook_retries: 5,
            webhook_retry_delay_ms: 1000,
            token_ttl_ms: None,
            legacy_resume_404: false,
            oauth: None,
        }
    }
}

impl fmt::Debug for MockConfig {
    // Credentials never appear in Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("api_keys", &self.api_keys.len())
            .field(
                "api_keys_without_confidential",
                &self.api_keys_without_confidential.len(),
            )
            .field("bearer_tokens", &self.bearer_tokens.len())
            .field("rate_per_sec", &self.rate_per_sec)
            .field("burst", &self.burst)
            .field("apply_rate_per_sec", &self.apply_rate_per_sec)
            .field("apply_burst", &self.apply_burst)
            .field("fail_rate", &self.fail_rate)
            .field("latency_ms", &self.latency_ms)
            .field("fault_seed", &self.fault_seed)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("confidential_access", &self.confidential_access)
            .finish_non_exhaustive()
    }
}

/// A running mock Lever. Dropping it stops the server too; `shutdown` waits for it.
pub struct MockLever {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockLever {
    /// Binds `listen` (port 0 picks a free port) and serves `pool` until shut down.
    pub async fn start(
        listen: SocketAddr,
        pool: Pool,
        config: MockConfig,
    ) -> Result<MockLever, Error> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(server::Shared::new(pool, config));
        let app = server::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "mock lever server stopped with an error");
            }
        });
        tracing::info!(%addr, "mock lever listening");
        Ok(MockLever {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL of the API, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the pool as it is now (after mutations).
    pub fn pool(&self) -> Pool {
        self.shared.pool_snapshot()
    }

    /// Request counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Applies one control mutation (same as `POST /_mock/mutate`) and returns its result.
    pub fn mutate(&self, op: MutateOp) -> Result<serde_json::Value, Error> {
        self.shared.apply(op)
    }

    /// Changes fault injection and rate limits (same as `POST /_mock/faults`).
    pub fn set_faults(&self, update: FaultUpdate) {
        self.shared.set_faults(&update);
    }

    /// Forces the next `count` `/v1` answers to `status` (429, 500 or 503).
    pub fn force_next(&self, status: u16, count: u32) {
        self.shared.set_faults(&FaultUpdate {
            force_status: Some(status),
            force_count: Some(count),
            ..FaultUpdate::default()
        });
    }

    /// Makes every access token issued by `/oauth/token` expire now.
    pub fn expire_access_tokens(&self) {
        if let Some(oauth) = &self.shared.oauth {
            oauth::lock(oauth).expire_access_tokens();
        }
    }

    /// The URL of the OAuth token endpoint, `http://127.0.0.1:PORT/oauth/token`.
    pub fn oauth_token_url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockLever {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
