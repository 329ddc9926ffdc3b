//! The axum app: shared state, the `/v1` and `/_mock` routers, and the gate every `/v1` request
//! passes (auth, forced answers, rate limit, fault dice, latency, counting).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::Value;

use super::auth::{Access, Credential, Secret, authenticate};
use super::faults::{FaultUpdate, Faults, Verdict};
use super::mutate::{self, Event, MutateOp};
use super::oauth::{self, OAuthState};
use super::paging::TokenSigner;
use super::pool::Pool;
use super::ratelimit::RateLimiter;
use super::reply::ApiError;
use super::stats::{Outcome, StatsRecorder};
use super::webhook::Webhooks;
use super::{Error, MockConfig, apply, control, opportunities, reference, webhook, writes};

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Mutation timestamps: wall-clock milliseconds, strictly increasing, never before the pool's
/// newest timestamp.
pub(crate) struct Clock {
    last: AtomicI64,
}

impl Clock {
    fn new(floor: i64) -> Self {
        Clock {
            last: AtomicI64::new(floor),
        }
    }

    /// The next instant, strictly after every one handed out before.
    pub(crate) fn tick(&self) -> i64 {
        let wall = now_ms();
        let mut last = self.last.load(Ordering::SeqCst);
        loop {
            let next = wall.max(last + 1);
            match self
                .last
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) pool: RwLock<Pool>,
    pub(crate) config: MockConfig,
    pub(crate) limiter: Mutex<RateLimiter>,
    /// The separate buckets of `POST /postings/:id/apply` (section 3).
    apply_limiter: Mutex<RateLimiter>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) stats: Arc<StatsRecorder>,
    pub(crate) clock: Clock,
    pub(crate) tokens: TokenSigner,
    pub(crate) webhooks: Webhooks,
    pub(crate) oauth: Option<Mutex<OAuthState>>,
    api_keys: Vec<Secret>,
    bearer_tokens: Vec<Secret>,
}

impl Shared {
    pub(crate) fn new(pool: Pool, config: MockConfig) -> Self {
        let clock = Clock::new(pool.max_timestamp());
        let full = config.confidential_access;
        // A key in both lists is a key without confidential access (the first match wins).
        let api_keys = (config.api_keys_without_confidential.iter())
            .map(|k| Secret::new(k, false))
            .chain(config.api_keys.iter().map(|k| Secret::new(k, full)))
            .collect();
        let bearer_tokens = (config.bearer_tokens.iter())
            .map(|t| Secret::new(t, full))
            .collect();
        Shared {
            pool: RwLock::new(pool),
            limiter: Mutex::new(RateLimiter::new(config.rate_per_sec, config.burst)),
            apply_limiter: Mutex::new(RateLimiter::new(
                config.apply_rate_per_sec,
                config.apply_burst,
            )),
            faults: Mutex::new(Faults::new(
                config.fail_rate,
                config.latency_ms,
                config.fault_seed,
                config.retry_after_secs,
            )),
            stats: Arc::new(StatsRecorder::default()),
            clock,
            tokens: TokenSigner::new(rand::random(), config.token_ttl_ms),
            webhooks: Webhooks::new(config.webhook_retries, config.webhook_retry_delay_ms),
            oauth: config.oauth.clone().map(|c| Mutex::new(OAuthState::new(c))),
            api_keys,
            bearer_tokens,
            config,
        }
    }

    /// Read access to the pool.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Pool> {
        self.pool.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the pool.
    pub(crate) fn pool_snapshot(&self) -> Pool {
        self.read().clone()
    }

    /// Runs a change at a fresh instant, then delivers its events.
    pub(crate) fn write<R>(
        &self,
        change: impl FnOnce(&mut Pool, i64) -> Result<(R, Vec<Event>), Error>,
    ) -> Result<R, Error> {
        let now = self.clock.tick();
        let (result, events) = {
            let mut pool = self.pool.write().unwrap_or_else(|p| p.into_inner());
            change(&mut pool, now)?
        };
        self.webhooks.dispatch(&events, now, &self.stats);
        Ok(result)
    }

    /// Applies a control op.
    pub(crate) fn apply(&self, op: MutateOp) -> Result<Value, Error> {
        self.write(|pool, now| mutate::apply(pool, op, now))
    }

    /// Changes faults and limits.
    pub(crate) fn set_faults(&self, update: &FaultUpdate) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(update);
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reconfigure(update.rate_per_sec, update.burst);
    }

    /// The request's credential and what it may see.
    fn authorized(&self, request: &Request) -> Option<(Credential, Access)> {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        authenticate(header, &self.api_keys, &self.bearer_tokens).or_else(|| {
            let token = header?.strip_prefix("Bearer ")?.trim();
            let oauth = oauth::lock(self.oauth.as_ref()?);
            let access = oauth.accepts(token, now_ms())?;
            Some((Credential::bearer(token), access))
        })
    }
}

fn unauthorized() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "UnauthorizedError",
        "Invalid API key or access token".into(),
    )
    .into_response()
}

/// Auth, forced answers, rate limit, fault dice, latency and counting for `/v1`.
async fn gate(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let arrived = now_ms().max(0) as u64;
    let Some((who, access)) = shared.authorized(&request) else {
        shared.stats.request(arrived, Outcome::Unauthorized);
        return unauthorized();
    };
    request.extensions_mut().insert(access);
    let (forced, latency, retry_after) = {
        let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        (
            faults.take_forced(),
            faults.latency_ms,
            faults.retry_after_secs,
        )
    };
    if let Some(status) = forced {
        let outcome = if status == 429 {
            Outcome::RateLimited
        } else {
            Outcome::Fault
        };
        shared.stats.request(arrived, outcome);
        return ApiError::status(status, retry_after).into_response();
    }
    let limiter = if is_application(&request) {
        &shared.apply_limiter
    } else {
        &shared.limiter
    };
    let allowed = limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .try_acquire(&who, Instant::now());
    if !allowed {
        shared.stats.request(arrived, Outcome::RateLimited);
        return ApiError::status(429, retry_after).into_response();
    }
    let verdict = shared
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .roll();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match verdict {
        Verdict::Fail(status) => {
            shared.stats.request(arrived, Outcome::Fault);
            ApiError::status(status, None).into_response()
        }
        Verdict::Pass => {
            shared.stats.request(arrived, Outcome::Served);
            next.run(request).await
        }
    }
}

/// Whether the request submits an application (`POST /postings/:id/apply`), which Lever holds
/// to its own 2 requests/second (section 3).
fn is_application(request: &Request) -> bool {
    let path = request.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    request.method() == Method::POST
        && matches!(segments[..], ["postings", id, "apply"] if !id.is_empty())
}

/// Auth only, for the control routes.
async fn control_gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match shared.authorized(&request) {
        Some(_) => next.run(request).await,
        None => unauthorized(),
    }
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "route not found".into(),
    )
    .into_response()
}

/// The whole app.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    use opportunities as o;
    use reference as r;
    use writes as w;
    let mut v1 = Router::new()
        .route("/opportunities", get(o::list))
        .route("/opportunities/deleted", get(o::deleted))
        .route("/opportunities/{id}", get(o::get_one))
        .route("/opportunities/{id}/resumes", get(o::resumes))
        .route("/opportunities/{id}/resumes/{rid}", get(o::resume))
        .route(
            "/opportunities/{id}/resumes/{rid}/download",
            get(o::download),
        )
        .route(
            "/opportunities/{id}/notes",
            get(o::notes).post(w::create_note),
        )
        .route(
            "/opportunities/{id}/notes/{nid}",
            get(o::note).delete(w::delete_note),
        )
        .route("/opportunities/{id}/feedback", get(o::feedback))
        .route("/opportunities/{id}/feedback/{fid}", get(o::feedback_one))
        .route("/opportunities/{id}/applications", get(o::applications))
        .route(
            "/opportunities/{id}/applications/{aid}",
            get(o::application),
        )
        .route("/opportunities/{id}/stage", put(w::put_stage))
        .route("/opportunities/{id}/archived", put(w::put_archived))
        .route("/opportunities/{id}/offers", get(o::offers))
        .route("/opportunities/{id}/interviews", get(o::interviews))
        .route("/opportunities/{id}/interviews/{iid}", get(o::interview));
    for child in ["referrals", "files", "panels", "forms", "file_actions"] {
        v1 = v1.route(
            &format!("/opportunities/{{id}}/{child}"),
            get(o::empty_child),
        );
    }
    for action in [
        "addTags",
        "removeTags",
        "addSources",
        "removeSources",
        "addLinks",
        "removeLinks",
    ] {
        v1 = v1.route(
            &format!("/opportunities/{{id}}/{action}"),
            post(w::list_action),
        );
    }
    let v1 = v1
        .route("/applications/deleted", get(r::applications_deleted))
        .route("/postings", get(r::postings))
        .route("/postings/deleted", get(r::postings_deleted))
        .route("/postings/{id}", get(r::posting))
        .route("/postings/{id}/apply", get(apply::form).post(apply::apply))
        .route("/stages", get(r::stages))
        .route("/stages/{id}", get(r::stage))
        .route("/archive_reasons", get(r::archive_reasons))
        .route("/archive_reasons/{id}", get(r::archive_reason))
        .route("/users", get(r::users))
        .route("/users/{id}", get(r::user))
        .route("/tags", get(r::tags))
        .route("/sources", get(r::sources))
        .route("/contacts/{id}", get(r::contact))
        .route(
            "/webhooks",
            get(webhook::list)
                .post(webhook::create)
                .put(webhook::update),
        )
        .route("/webhooks/{id}", axum::routing::delete(webhook::remove))
        .fallback(not_found)
        // Lever answers an unknown method on a known route as an unknown route (section 4).
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate));
    let control = Router::new()
        .route("/mutate", post(control::mutate))
        .route("/stats", get(control::stats))
        .route("/stats/reset", post(control::reset_stats))
        .route("/faults", post(control::faults))
        .route("/webhooks/ping", post(control::ping))
        .route("/oauth/expire", post(control::expire_tokens))
        .layer(middleware::from_fn_with_state(shared.clone(), control_gate));
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .nest("/v1", v1)
        .nest("/_mock", control)
        .fallback(not_found)
        .with_state(shared)
}
