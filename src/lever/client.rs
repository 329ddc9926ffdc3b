//! The HTTP client: every request goes through the shared rate limiter, authenticates, retries
//! transient failures with exponential backoff and jitter, and lists are paged with Lever's opaque
//! `offset` tokens (restarting from page 1 when Lever rejects a stale token).

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::Credentials;
use super::ratelimit::RateLimiter;
use super::wire::{ErrorBody, ListEnvelope, safe_reason};
use super::{DEFAULT_BASE_URL, Error, LEVER_RATE_LIMIT, Result};

/// Characters left as they are in a path segment or a query value.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How many times a listing restarts from page 1 after `Invalid offset token` before failing.
const MAX_LISTING_RESTARTS: u32 = 3;

/// Client settings. `Default` gives Lever's production URL and a safe 8 requests/s.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base URL including `/v1`.
    pub base_url: String,
    /// Sustained requests per second for the whole run.
    pub rate: f64,
    /// Requests allowed back to back; `None` picks [`RateLimiter::default_burst`].
    pub burst: Option<u32>,
    /// Timeout of one JSON request.
    pub timeout: Duration,
    /// Timeout of one file download.
    pub download_timeout: Duration,
    /// Attempts per request for retryable failures other than 429 (the first try included).
    pub max_attempts: u32,
    /// 429 answers tolerated per request before giving up.
    pub max_rate_limited: u32,
    /// First backoff delay; doubled on every further attempt.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured.
    pub retry_after_max: Duration,
    /// Records per page (Lever allows 1 to 100).
    pub page_size: u32,
    /// Largest file downloaded, in bytes.
    pub max_download_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            rate: 8.0,
            burst: None,
            timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(120),
            max_attempts: 6,
            max_rate_limited: 20,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(120),
            page_size: 100,
            max_download_bytes: 25 * 1024 * 1024,
        }
    }
}

/// Counters of one client (shared by every clone of it).
#[derive(Debug, Default)]
struct Counters {
    api_calls: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    connection_errors: AtomicU64,
}

/// A snapshot of what the client did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt counts).
    pub api_calls: u64,
    /// Attempts that were retries of an earlier failure.
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// 500/502/503/504 answers received.
    pub server_errors: u64,
    /// Requests that failed below HTTP (connect, reset, timeout).
    pub connection_errors: u64,
}

/// A record of a list page that could not be read; reported by id (never by content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MalformedRecord {
    /// The API path listed.
    pub path: String,
    /// The record's id, when it had a readable one.
    pub id: Option<String>,
    /// What was wrong with it (shape only, never values).
    pub reason: String,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    /// The records that parsed.
    pub items: Vec<T>,
    /// The records (or the whole page's `data`) that did not.
    pub malformed: Vec<MalformedRecord>,
    /// Whether the listing restarted from page 1 before this page (stale token).
    pub restarted: bool,
}

/// A Lever API client. Cheap to clone; clones share the limiter, credentials and counters.
#[derive(Debug, Clone)]
pub struct LeverClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    limiter: RateLimiter,
    counters: Counters,
    config: ClientConfig,
}

impl LeverClient {
    /// Builds a client; warns when the rate exceeds Lever's documented 10 requests/s.
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Self> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base)
            .map_err(|_| Error::Config(format!("base URL {base:?} is not a URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!("base URL {base:?} is not http(s)")));
        }
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(Error::Config(format!(
                "rate must be a positive number, got {}",
                config.rate
            )));
        }
        if config.rate > LEVER_RATE_LIMIT {
            tracing::warn!(
                rate = config.rate,
                "the rate is above Lever's documented {LEVER_RATE_LIMIT} requests/s: only a mock Lever allows it"
            );
        }
        let burst = config
            .burst
            .unwrap_or_else(|| RateLimiter::default_burst(config.rate));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rediscover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::Config("could not build the HTTP client".into()))?;
        Ok(LeverClient {
            inner: Arc::new(Inner {
                http,
                base,
                credentials,
                limiter: RateLimiter::new(config.rate, burst),
                counters: Counters::default(),
                config,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// What the client did so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            api_calls: c.api_calls.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            connection_errors: c.connection_errors.load(Ordering::Relaxed),
        }
    }

    /// GETs a single-object endpoint (`{"data": {...}}`) and returns `data`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let body = self
            .fetch(path, query, None, self.inner.config.timeout)
            .await?;
        single(path, &body)
    }

    /// POSTs a JSON body to a create endpoint and returns the answer's `data`. Only a 429 is
    /// sent again: after any other failure Lever may have done the work already.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        let answer = self
            .send(
                Method::Post(body),
                path,
                &[],
                None,
                self.inner.config.timeout,
            )
            .await?;
        single(path, &answer)
    }

    /// Downloads a file (raw bytes), e.g. `/opportunities/ID/resumes/RID/download`.
    pub async fn download(&self, path: &str) -> Result<Vec<u8>> {
        self.fetch(path, &[], None, self.inner.config.download_timeout)
            .await
    }

    /// Starts paging through a list endpoint. `query` may repeat keys (`expand`).
    pub fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&'static str, String)>,
    ) -> Listing<T> {
        Listing {
            client: self.clone(),
            path: path.to_owned(),
            query,
            next: None,
            seen_tokens: HashSet::new(),
            done: false,
            restarts: 0,
            _records: PhantomData,
        }
    }

    /// Lists every page and returns all records (restarts are handled: no duplicates).
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<(Vec<T>, Vec<MalformedRecord>)> {
        let mut listing = self.list(path, query);
        let mut items = Vec::new();
        let mut malformed = Vec::new();
        while let Some(page) = listing.next_page().await? {
            if page.restarted {
                items.clear();
                malformed.clear();
            }
            items.extend(page.items);
            malformed.extend(page.malformed);
        }
        Ok((items, malformed))
    }

    /// Sends one GET with retries and returns the body of the 2xx answer.
    async fn fetch(
        &self,
        path: &str,
        query: &[(&str, String)],
        offset: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        self.send(Method::Get, path, query, offset, timeout).await
    }

    /// Sends one request with retries (a POST only after a 429) and returns the body of the
    /// 2xx answer.
    async fn send(
        &self,
        method: Method<'_>,
        path: &str,
        query: &[(&str, String)],
        offset: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let url = self.url(path, query, offset)?;
        let inner = &self.inner;
        let mut attempt = 0u32;
        // 429s are expected under load and get their own, larger budget.
        let (mut failed, mut throttled) = (0u32, 0u32);
        let mut refreshed_after_401 = false;
        loop {
            attempt += 1;
            inner.limiter.acquire().await;
            inner.counters.api_calls.fetch_add(1, Ordering::Relaxed);
            let (auth, generation) = inner.credentials.header().await?;
            let request = match method {
                Method::Get => inner.http.get(url.clone()),
                Method::Post(body) => inner.http.post(url.clone()).json(body),
            };
            let sent = request
                .header(AUTHORIZATION, auth)
                .timeout(timeout)
                .send()
                .await;
            let failure = match sent {
                Err(e) => {
                    inner
                        .counters
                        .connection_errors
                        .fetch_add(1, Ordering::Relaxed);
                    Retryable::new(transport_kind(&e), None)
                }
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        inner.limiter.succeeded();
                        match self.read_body(response).await {
                            Ok(body) => return Ok(body),
                            Err(BodyError::TooLarge) => {
                                return Err(Error::Malformed {
                                    path: path.to_owned(),
                                    reason: format!(
                                        "the body is larger than {} bytes",
                                        inner.config.max_download_bytes
                                    ),
                                });
                            }
                            Err(BodyError::Transport(kind)) => {
                                inner
                                    .counters
                                    .connection_errors
                                    .fetch_add(1, Ordering::Relaxed);
                                Retryable::new(kind, None)
                            }
                        }
                    } else if status == StatusCode::UNAUTHORIZED {
                        if !refreshed_after_401
                            && inner.credentials.recover_from_401(generation).await?
                        {
                            refreshed_after_401 = true;
                            continue;
                        }
                        return Err(Error::Unauthorized {
                            path: path.to_owned(),
                        });
                    } else if is_retryable(status) {
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        } else {
                            inner.counters.server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        let retry_after = retry_after(&response, inner.config.retry_after_max);
                        Retryable::status(status, retry_after)
                    } else {
                        return Err(self.client_error(path, status, response).await);
                    }
                }
            };
            if failure.rate_limited {
                throttled += 1;
            } else {
                failed += 1;
            }
            let post_may_have_run = matches!(method, Method::Post(_)) && !failure.rate_limited;
            if post_may_have_run
                || failed >= inner.config.max_attempts
                || throttled >= inner.config.max_rate_limited
            {
                return Err(Error::RetriesExhausted {
                    path: path.to_owned(),
                    attempts: attempt,
                    last: failure.what,
                });
            }
            let delay = failure.retry_after.unwrap_or_else(|| self.backoff(attempt));
            if failure.rate_limited {
                // Everyone using this credential backs off, not just this request, and goes on
                // at a lower rate.
                inner.limiter.throttled();
                inner.limiter.pause(delay);
            }
            tracing::debug!(path, attempt, delay_ms = delay.as_millis() as u64, what = %failure.what, "retrying");
            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
        let cap = self.inner.config.max_download_bytes;
        if response.content_length().is_some_and(|n| n as usize > cap) {
            return Err(BodyError::TooLarge);
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(BodyError::Transport(transport_kind(&e))),
            }
        }
    }

    /// Maps a non-retryable error status to an [`Error`], reading Lever's `{code, message}`.
    async fn client_error(
        &self,
        path: &str,
        status: StatusCode,
        response: reqwest::Response,
    ) -> Error {
        let path = path.to_owned();
        match status {
            StatusCode::FORBIDDEN => return Error::Forbidden { path },
            StatusCode::NOT_FOUND => return Error::NotFound { path },
            StatusCode::UNPROCESSABLE_ENTITY => return Error::Unprocessable { path },
            _ => {}
        }
        let body: Option<ErrorBody> = match self.read_body(response).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        let message = body
            .as_ref()
            .and_then(|b| b.message.as_deref())
            .unwrap_or("");
        if message.contains("Invalid offset token") {
            return Error::InvalidOffset { path };
        }
        Error::Status {
            status: status.as_u16(),
            path,
            code: body.and_then(|b| b.code),
        }
    }

    /// Exponential backoff with jitter: a random delay in [d/2, d], d = base * 2^(attempt-1).
    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(config.backoff_max);
        let factor: f64 = rand::thread_rng().gen_range(0.5..=1.0);
        exp.mul_f64(factor)
    }

    fn url(&self, path: &str, query: &[(&str, String)], offset: Option<&str>) -> Result<url::Url> {
        let mut raw = format!("{}{}", self.inner.base, path);
        let mut separator = '?';
        for (key, value) in query {
            raw.push(separator);
            raw.push_str(key);
            raw.push('=');
            raw.extend(utf8_percent_encode(value, UNRESERVED));
            separator = '&';
        }
        if let Some(token) = offset {
            raw.push(separator);
            raw.push_str("offset=");
            raw.push_str(&offset_query_value(token));
        }
        url::Url::parse(&raw).map_err(|_| Error::Config(format!("cannot build a URL for {path}")))
    }
}

/// What a request sends.
#[derive(Clone, Copy)]
enum Method<'a> {
    Get,
    /// A JSON body.
    Post(&'a serde_json::Value),
}

/// The `data` of a single-object answer (`{"data": {...}}`).
fn single<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    let envelope: super::wire::Single<T> =
        serde_json::from_slice(body).map_err(|e| Error::Malformed {
            path: path.to_owned(),
            reason: safe_reason(&e),
        })?;
    Ok(envelope.data)
}

/// Encodes one id as a URL path segment.
pub fn path_segment(id: &str) -> String {
    utf8_percent_encode(id, UNRESERVED).to_string()
}

/// The paging token goes back exactly as Lever sent it when it is already URL-safe (Lever's
/// 2026 tokens arrive percent-encoded); anything else is percent-encoded once.
fn offset_query_value(token: &str) -> String {
    let url_safe = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%'));
    if url_safe {
        token.to_owned()
    } else {
        utf8_percent_encode(token, UNRESERVED).to_string()
    }
}

enum BodyError {
    TooLarge,
    Transport(&'static str),
}

struct Retryable {
    what: String,
    retry_after: Option<Duration>,
    rate_limited: bool,
}

impl Retryable {
    fn new(what: &str, retry_after: Option<Duration>) -> Self {
        Retryable {
            what: what.to_owned(),
            retry_after,
            rate_limited: false,
        }
    }

    fn status(status: StatusCode, retry_after: Option<Duration>) -> Self {
        Retryable {
            what: format!("HTTP {}", status.as_u16()),
            retry_after,
            rate_limited: status == StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds, at most `max` (HTTP dates are not used by Lever and are ignored).
fn retry_after(response: &reqwest::Response, max: Duration) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, max)
}

/// A `Retry-After` value in seconds, clamped to `max`; a negative or non-numeric one is ignored.
/// A huge one is clamped before it becomes a `Duration`, which would overflow.
fn parse_retry_after(value: &str, max: Duration) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if seconds.is_nan() || seconds < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).map_or(max, |d| d.min(max)))
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection error"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "transport error"
    }
}

/// A paged listing in progress; see [`LeverClient::list`].
#[derive(Debug)]
pub struct Listing<T> {
    client: LeverClient,
    path: String,
    query: Vec<(&'static str, String)>,
    next: Option<String>,
    /// Every paging token this pass of the listing was given: one given again means Lever's
    /// pages loop, and following them would never end.
    seen_tokens: HashSet<String>,
    done: bool,
    restarts: u32,
    _records: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Listing<T> {
    /// The next page, or `None` after the last one. Malformed records are skipped and
    /// reported in the page; a stale paging token restarts the listing from page 1.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>> {
        if self.done {
            return Ok(None);
        }
        let mut restarted = false;
        loop {
            let mut query: Vec<(&str, String)> = self.query.clone();
            query.push(("limit", self.client.inner.config.page_size.to_string()));
            let timeout = self.client.inner.config.timeout;
            let body = match self
                .client
                .fetch(&self.path, &query, self.next.as_deref(), timeout)
                .await
            {
                Ok(body) => body,
                Err(Error::InvalidOffset { .. })
                    if self.next.is_some() && self.restarts < MAX_LISTING_RESTARTS =>
                {
                    self.restarts += 1;
                    self.next = None;
                    self.seen_tokens.clear();
                    restarted = true;
                    tracing::warn!(path = %self.path, "lever rejected the paging token; restarting the listing from page 1");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let envelope: ListEnvelope =
                serde_json::from_slice(&body).map_err(|e| Error::Malformed {
                    path: self.path.clone(),
                    reason: safe_reason(&e),
                })?;
            if envelope.data.is_null() {
                // A page without records cannot be told from a cut-short listing.
                return Err(self.malformed("the page has no data"));
            }
            let next = envelope.next.filter(|n| !n.is_empty());
            match (envelope.has_next.unwrap_or(false), next) {
                (true, Some(next)) => {
                    if self.next.as_deref() == Some(next.as_str()) {
                        return Err(self.malformed("the paging token did not advance"));
                    }
                    if !self.seen_tokens.insert(next.clone()) {
                        return Err(self.malformed("a paging token came back, so the pages loop"));
                    }
                    self.next = Some(next);
                }
                (true, None) => {
                    // More pages that cannot be asked for: the listing is not complete.
                    return Err(self.malformed("hasNext is true but there is no next token"));
                }
                (false, _) => self.done = true,
            }
            return Ok(Some(self.parse_records(envelope.data, restarted)));
        }
    }

    fn malformed(&self, reason: &str) -> Error {
        Error::Malformed {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }

    fn parse_records(&self, data: serde_json::Value, restarted: bool) -> Page<T> {
        let mut items = Vec::new();
        let mut malformed = Vec::new();
        match data {
            serde_json::Value::Array(records) => {
                for record in records {
                    let id = record.get("id").and_then(|v| v.as_str()).map(str::to_owned);
                    match serde_json::from_value::<T>(record) {
                        Ok(item) => items.push(item),
                        Err(e) => malformed.push(MalformedRecord {
                            path: self.path.clone(),
                            id,
                            reason: safe_reason(&e),
                        }),
                    }
                }
            }
            _ => malformed.push(MalformedRecord {
                path: self.path.clone(),
                id: None,
                reason: "the page's data is not a list".into(),
            }),
        }
        Page {
            items,
            malformed,
            restarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_tokens_go_back_verbatim_when_url_safe() {
        assert_eq!(
            offset_query_value("%5B3%2C1491435120000%2C%22abc%22%5D"),
            "%5B3%2C1491435120000%2C%22abc%22%5D"
        );
        assert_eq!(
            offset_query_value("0.14148.a6070140-33db"),
            "0.14148.a6070140-33db"
        );
        assert_eq!(offset_query_value("[3,\"a b\"]"), "%5B3%2C%22a%20b%22%5D");
    }

    #[test]
    fn a_huge_retry_after_is_clamped_not_a_panic() {
        let max = Duration::from_secs(120);
        assert_eq!(parse_retry_after("1e20", max), Some(max));
        assert_eq!(parse_retry_after("inf", max), Some(max));
        assert_eq!(
            parse_retry_after(" 2.5 ", max),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_retry_after("0", max), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", max), None);
        assert_eq!(parse_retry_after("NaN", max), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", max),
            None
        );
    }

    /// Serves `pages` (raw bodies) in turn for every request on 127.0.0.1 port 0.
    async fn serve_pages(pages: Vec<&'static str>) -> String {
        use std::sync::atomic::AtomicUsize;
        let served = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().fallback(move || {
            let n = served.fetch_add(1, Ordering::SeqCst);
            let body = pages.get(n).copied().unwrap_or("{}");
            async move {
                axum::response::Response::builder()
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn list_pages(pages: Vec<&'static str>) -> Result<(Vec<serde_json::Value>, usize)> {
        let config = ClientConfig {
            base_url: serve_pages(pages).await,
            rate: 1000.0,
            ..ClientConfig::default()
        };
        let key = super::super::ApiKey::new("k").expect("key");
        let client = LeverClient::new(config, Credentials::ApiKey(key)).expect("client");
        let (items, malformed) = client
            .list_all::<serde_json::Value>("/opportunities", Vec::new())
            .await?;
        Ok((items, malformed.len()))
    }

    #[tokio::test]
    async fn a_cut_short_listing_is_malformed_not_complete() {
        let first = r#"{"data": [{"id": "a"}], "hasNext": true, "next": "t1"}"#;
        for last in [
            r#"{"hasNext": false}"#,
            r#"{"data": null, "hasNext": false}"#,
            r#"{"data": [{"id": "b"}], "hasNext": true}"#,
            r#"{"data": [{"id": "b"}], "hasNext": true, "next": ""}"#,
        ] {
            let result = list_pages(vec![first, last]).await;
            assert!(
                matches!(result, Err(Error::Malformed { .. })),
                "{last}: {result:?}"
            );
        }
        let (items, malformed) = list_pages(vec![first, r#"{"data": [{"id": "b"}]}"#])
            .await
            .expect("a missing hasNext ends the listing");
        assert_eq!((items.len(), malformed), (2, 0));
        let (items, malformed) = list_pages(vec![r#"{"data": {"id": "x"}, "hasNext": false}"#])
            .await
            .expect("a data object is reported");
        assert_eq!((items.len(), malformed), (0, 1));
    }

    #[tokio::test]
    async fn a_listing_whose_tokens_loop_fails_instead_of_running_forever() {
        let a = r#"{"data": [{"id": "a"}], "hasNext": true, "next": "A"}"#;
        let b = r#"{"data": [{"id": "b"}], "hasNext": true, "next": "B"}"#;
        // Page 1 says A, A says B, B says A again: an endless loop of two pages.
        let result = list_pages(vec![a, b, a, b, a, b, a, b]).await;
        match result {
            Err(Error::Malformed { reason, .. }) => assert!(reason.contains("loop"), "{reason}"),
            other => panic!("expected a malformed listing, got {other:?}"),
        }
        // Distinct tokens still page through.
        let c = r#"{"data": [{"id": "c"}], "hasNext": false}"#;
        let (items, _) = list_pages(vec![a, b, c]).await.expect("three pages");
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("lead-new"), "lead-new");
        assert_eq!(path_segment("a/b?c"), "a%2Fb%3Fc");
    }
}
