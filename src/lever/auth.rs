//! Lever credentials: an API key sent as the Basic-auth username with a blank password, or an
//! OAuth access token whose single-use refresh token rotates and is persisted atomically (0600).
//!
//! Several processes (a nightly `sync`, a `webhooks subscribe`) may share one token file: a
//! refresh holds an exclusive lock on `lever-oauth.json.lock` and first reads the file again,
//! so a process whose refresh token another one has already spent adopts that one's tokens
//! instead of spending a dead token.
//!
//! Secrets never appear in Debug output, logs or errors.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Lever's production OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://auth.lever.co/oauth/token";

/// Name of the file, under the data directory, that holds the rotating OAuth tokens.
pub const TOKEN_FILE_NAME: &str = "lever-oauth.json";

/// Refresh an access token this long before Lever says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// A Lever API key. Its Debug output is redacted.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` when it is empty or only whitespace.
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into().trim().to_owned();
        (!key.is_empty()).then_some(ApiKey(key))
    }

    /// The `Authorization` header value: Basic with the key as user and a blank password.
    fn header(&self) -> Result<HeaderValue> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.0));
        sensitive_header(&format!("Basic {encoded}"))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where and how to refresh OAuth tokens.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The token endpoint (default [`DEFAULT_TOKEN_URL`]).
    pub token_url: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret (redacted in Debug).
    pub client_secret: String,
    /// The file holding the current tokens, e.g. `DATA/lever-oauth.json`.
    pub token_file: PathBuf,
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The persisted token state.
#[derive(Clone, Serialize, Deserialize, Default)]
struct Tokens {
    #[serde(default)]
    access_token: Option<String>,
    refresh_token: String,
    /// Milliseconds since the epoch when the access token expires.
    #[serde(default)]
    expires_at: Option<i64>,
    /// [`fingerprint`] of the last `LEVER_OAUTH_REFRESH_TOKEN` tried after a refusal, so it is
    /// never sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement_tried: Option<String>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

struct TokenState {
    tokens: Tokens,
    /// Bumped on every refresh so concurrent 401s trigger one refresh, not many.
    generation: u64,
}

/// A live OAuth session: hands out bearer tokens and refreshes them (rotation persisted).
pub struct OAuthSession {
    config: OAuthConfig,
    http: reqwest::Client,
    state: tokio::sync::Mutex<TokenState>,
    /// A refresh token to try once when the token endpoint refuses the stored one (what
    /// `LEVER_OAUTH_REFRESH_TOKEN` holds after the first run); redacted in Debug.
    replacement: Option<String>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OAuthSession {
    /// Loads the tokens from `config.token_file`.
    pub fn load(config: OAuthConfig) -> Result<Self> {
        let tokens = read_tokens(&config.token_file)?;
        Ok(Self::with_tokens(config, tokens))
    }

    /// Starts from a refresh token (first use), persisting it to `config.token_file` at once.
    pub fn seed(config: OAuthConfig, refresh_token: &str) -> Result<Self> {
        let tokens = Tokens {
            access_token: None,
            refresh_token: refresh_token.trim().to_owned(),
            expires_at: None,
            replacement_tried: None,
        };
        write_tokens(&config.token_file, &tokens)?;
        Ok(Self::with_tokens(config, tokens))
    }

    fn with_tokens(config: OAuthConfig, tokens: Tokens) -> Self {
        OAuthSession {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            state: tokio::sync::Mutex::new(TokenState {
                tokens,
                generation: 0,
            }),
            replacement: None,
        }
    }

    /// Tries `refresh_token` (when given and not blank) once if the token endpoint refuses the
    /// stored refresh token: a token that died unused for months, or a data folder copied
    /// after another process rotated it, is then fixed by setting a new one in the environment.
    pub fn with_replacement(mut self, refresh_token: Option<String>) -> Self {
        self.replacement = refresh_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        self
    }

    /// The current bearer header and its generation, refreshing first when needed.
    async fn header(&self) -> Result<(HeaderValue, u64)> {
        let mut state = self.state.lock().await;
        if expiring(&state.tokens) {
            self.refresh_locked(&mut state).await?;
        }
        let token = state.tokens.access_token.as_deref().unwrap_or_default();
        Ok((
            sensitive_header(&format!("Bearer {token}"))?,
            state.generation,
        ))
    }

    /// Refreshes after a 401 unless another task already did since `generation` was handed out.
    async fn refresh_after(&self, generation: u64) -> Result<()> {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            self.refresh_locked(&mut state).await?;
        }
        Ok(())
    }

    /// Refreshes under the cross-process lock of the token file. When the file holds another
    /// refresh token than this session (another process refreshed since), this session adopts
    /// the file's tokens, and only refreshes if their access token is missing or expiring.
    async fn refresh_locked(&self, state: &mut TokenState) -> Result<()> {
        let _lock = lock_token_file(&self.config.token_file).await?;
        let on_disk = match read_tokens(&self.config.token_file) {
            Ok(tokens) => Some(tokens),
            Err(e) => {
                // Ours are the tokens to go on with; the refresh writes the file anew.
                tracing::warn!(error = %e, "could not read the lever oauth token file again");
                None
            }
        };
        if let Some(on_disk) = on_disk.filter(|t| t.refresh_token != state.tokens.refresh_token) {
            state.tokens = on_disk;
            state.generation += 1;
            if !expiring(&state.tokens) {
                tracing::info!(
                    generation = state.generation,
                    "adopted the lever oauth token another process refreshed"
                );
                return Ok(());
            }
        }
        self.refresh_with_endpoint(state).await
    }

    async fn refresh_with_endpoint(&self, state: &mut TokenState) -> Result<()> {
        let stored = state.tokens.refresh_token.clone();
        let (used, body) = match self.exchange(&stored).await? {
            Ok(body) => (stored, body),
            // A refused refresh token (invalid_grant); a 401 is the client's credentials.
            Err(status @ (400 | 403)) => {
                let untried = self.replacement.as_deref().filter(|r| {
                    *r != stored
                        && state.tokens.replacement_tried.as_deref() != Some(&fingerprint(r))
                });
                let Some(replacement) = untried else {
                    return Err(self.refused(status));
                };
                tracing::warn!(
                    "the token endpoint refused the stored lever oauth refresh token; trying LEVER_OAUTH_REFRESH_TOKEN"
                );
                // Never sent twice, whatever the answer: a spent refresh token presented again
                // can make the provider revoke every token of its family.
                state.tokens.replacement_tried = Some(fingerprint(replacement));
                write_tokens(&self.config.token_file, &state.tokens)?;
                match self.exchange(replacement).await? {
                    Ok(body) => (replacement.to_owned(), body),
                    Err(status) => return Err(self.refused(status)),
                }
            }
            Err(status) => {
                return Err(Error::OAuth(format!(
                    "token endpoint answered HTTP {status}"
                )));
            }
        };
        let tokens = Tokens {
            access_token: Some(body.access_token),
            refresh_token: body.refresh_token.unwrap_or(used),
            expires_at: body.expires_in.map(|s| expiry(now_millis(), s)),
            replacement_tried: state.tokens.replacement_tried.clone(),
        };
        // The old refresh token is now spent: persist the new one before using anything.
        write_tokens(&self.config.token_file, &tokens)?;
        state.tokens = tokens;
        state.generation += 1;
        tracing::info!(
            generation = state.generation,
            "refreshed the lever oauth token"
        );
        Ok(())
    }

    /// Asks the token endpoint for tokens with `refresh_token`: its answer, or the HTTP status
    /// of a refusal.
    async fn exchange(
        &self,
        refresh_token: &str,
    ) -> Result<std::result::Result<TokenResponse, u16>> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
            ("refresh_token", refresh_token),
        ];
        let response = self
            .http
            .post(&self.config.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                Error::OAuth(format!(
                    "token endpoint unreachable: {}",
                    transport_kind(&e)
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Err(status.as_u16()));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|_| Error::OAuth("token endpoint answered malformed JSON".into()))?;
        Ok(Ok(body))
    }

    fn refused(&self, status: u16) -> Error {
        Error::OAuth(format!(
            "token endpoint answered HTTP {status}: it refused the refresh token in {}; set LEVER_OAUTH_REFRESH_TOKEN to a new one from Lever (a new one is tried once when the stored one is refused)",
            self.config.token_file.display()
        ))
    }
}

/// sha256 of a token, hex: what the token file keeps of a replacement it tried.
fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An API key (Basic auth, blank password).
    ApiKey(ApiKey),
    /// An OAuth session (Bearer, refreshed on expiry and once after a 401).
    OAuth(Arc<OAuthSession>),
}

impl Credentials {
    /// The `Authorization` header for the next request and the token generation it used.
    pub(crate) async fn header(&self) -> Result<(HeaderValue, u64)> {
        match self {
            Credentials::ApiKey(key) => Ok((key.header()?, 0)),
            Credentials::OAuth(session) => session.header().await,
        }
    }

    /// After a 401: refresh the OAuth token and say whether a retry makes sense.
    pub(crate) async fn recover_from_401(&self, generation: u64) -> Result<bool> {
        match self {
            Credentials::ApiKey(_) => Ok(false),
            Credentials::OAuth(session) => {
                session.refresh_after(generation).await?;
                Ok(true)
            }
        }
    }
}

/// When a token given `now` (ms) and valid for `expires_in` seconds expires. Saturating: a
/// huge `expires_in` from the token endpoint must not wrap into a time in the past, which
/// would refresh the token before every request.
fn expiry(now: i64, expires_in: i64) -> i64 {
    now.saturating_add(expires_in.max(0).saturating_mul(1000))
}

/// Whether the access token is missing or expires within [`EXPIRY_MARGIN`].
fn expiring(tokens: &Tokens) -> bool {
    match (&tokens.access_token, tokens.expires_at) {
        (None, _) => true,
        (Some(_), Some(at)) => at.saturating_sub(EXPIRY_MARGIN.as_millis() as i64) <= now_millis(),
        (Some(_), None) => false,
    }
}

/// Reads the token file.
fn read_tokens(path: &Path) -> Result<Tokens> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::OAuth(format!(
            "{} is not a token file: {}",
            path.display(),
            super::wire::safe_reason(&e)
        ))
    })
}

/// Takes the exclusive lock that every process refreshing from `token_file` holds around the
/// refresh (`lever-oauth.json.lock` beside it); released when the returned file is dropped.
/// Waits on a blocking thread, so a refresh in another process never stalls the runtime.
async fn lock_token_file(token_file: &Path) -> Result<std::fs::File> {
    let mut name = token_file
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_else(|| TOKEN_FILE_NAME.into());
    name.push(".lock");
    let path = token_file.with_file_name(name);
    let lock = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
    };
    match lock.await {
        Ok(locked) => locked.map_err(|source| Error::Io { path, source }),
        Err(e) => Err(Error::OAuth(format!(
            "could not wait for the token file lock: {e}"
        ))),
    }
}

fn sensitive_header(value: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::Config("the credential contains characters not allowed in a header".into())
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused"
    } else {
        "transport error"
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Writes the token file atomically (temp file with 0600, fsync, rename, fsync directory).
fn write_tokens(path: &Path, tokens: &Tokens) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(tokens)
        .map_err(|_| Error::OAuth("could not encode the token file".into()))?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        file.write_all(&body).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn huge_or_negative_lifetimes_neither_wrap_nor_panic() {
        let now = 1_700_000_000_000;
        assert_eq!(expiry(now, 3600), now + 3_600_000);
        assert_eq!(expiry(now, 9_223_372_036_854_775), i64::MAX);
        assert_eq!(expiry(now, i64::MAX), i64::MAX);
        assert_eq!(expiry(now, -5), now);
        let tokens = |expires_at| Tokens {
            access_token: Some("t".into()),
            refresh_token: "r".into(),
            expires_at: Some(expires_at),
            replacement_tried: None,
        };
        assert!(!expiring(&tokens(i64::MAX)));
        // A token file edited to an absurd past time is simply expired.
        assert!(expiring(&tokens(i64::MIN)));
    }

    #[test]
    fn api_key_header_is_basic_with_blank_password_and_debug_is_redacted() {
        let key = ApiKey::new("secret-key").expect("key");
        let header = key.header().expect("header");
        let expected = base64::engine::general_purpose::STANDARD.encode("secret-key:");
        assert_eq!(header.to_str().expect("ascii"), format!("Basic {expected}"));
        assert!(header.is_sensitive());
        let creds = Credentials::ApiKey(key);
        assert!(!format!("{creds:?}").contains("secret-key"));
        assert!(ApiKey::new("  ").is_none());
    }

    /// Serves `app` as the token endpoint on 127.0.0.1 port 0; a config for it keeping its
    /// tokens in `dir`.
    async fn token_endpoint(app: axum::Router, dir: &Path, secret: &str) -> OAuthConfig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        OAuthConfig {
            token_url: format!("http://{addr}/oauth/token"),
            client_id: "client".into(),
            client_secret: secret.into(),
            token_file: dir.join(TOKEN_FILE_NAME),
        }
    }

    #[tokio::test]
    async fn a_refused_stored_token_gives_way_to_the_one_in_the_environment() {
        use axum::{Form, Json, Router, http::StatusCode, response::IntoResponse, routing::post};
        use std::collections::HashMap;
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/oauth/token",
            post(
                move |Form(form): Form<HashMap<String, String>>| async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if form.get("refresh_token").map(String::as_str) == Some("rt-new") {
                        Json(serde_json::json!({
                            "access_token": "at-new", "refresh_token": "rt-next", "expires_in": 3600
                        }))
                        .into_response()
                    } else {
                        StatusCode::FORBIDDEN.into_response()
                    }
                },
            ),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = token_endpoint(app, dir.path(), "secret").await;
        OAuthSession::seed(config.clone(), "rt-dead").expect("seed");
        // Without a replacement the error says how to fix it.
        let stuck = OAuthSession::load(config.clone()).expect("load");
        let err = stuck.header().await.expect_err("refused");
        assert!(
            err.to_string().contains("LEVER_OAUTH_REFRESH_TOKEN"),
            "{err}"
        );
        // The same refused token in the environment changes nothing; a new one is used.
        let same = OAuthSession::load(config.clone())
            .expect("load")
            .with_replacement(Some("rt-dead".into()));
        assert!(same.header().await.is_err());
        // A replacement the endpoint refused once is never sent again.
        let spent = OAuthSession::load(config.clone())
            .expect("load")
            .with_replacement(Some("rt-spent".into()));
        assert!(spent.header().await.is_err());
        let calls_before = calls.load(Ordering::SeqCst);
        let again = OAuthSession::load(config.clone())
            .expect("load")
            .with_replacement(Some("rt-spent".into()));
        assert!(again.header().await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            calls_before + 1,
            "only the stored token"
        );
        let fixed = OAuthSession::load(config.clone())
            .expect("load")
            .with_replacement(Some(" rt-new ".into()));
        let (header, _) = fixed.header().await.expect("header");
        assert_eq!(header.to_str().expect("ascii"), "Bearer at-new");
        assert_eq!(
            read_tokens(&config.token_file).expect("file").refresh_token,
            "rt-next"
        );
    }

    #[tokio::test]
    async fn oauth_refresh_rotates_and_persists_the_refresh_token() {
        use axum::{Form, Json, Router, routing::post};
        use std::collections::HashMap;
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/oauth/token",
            post(move |Form(form): Form<HashMap<String, String>>| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    assert_eq!(
                        form.get("grant_type").map(String::as_str),
                        Some("refresh_token")
                    );
                    assert_eq!(
                        form.get("refresh_token").cloned(),
                        Some(format!("rt-{}", n - 1))
                    );
                    Json(serde_json::json!({
                        "access_token": format!("at-{n}"),
                        "refresh_token": format!("rt-{n}"),
                        "token_type": "Bearer",
                        "expires_in": 3600
                    }))
                }
            }),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = token_endpoint(app, dir.path(), "very-secret").await;
        assert!(!format!("{config:?}").contains("very-secret"));
        let session = OAuthSession::seed(config.clone(), "rt-0").expect("seed");
        let (header, generation) = session.header().await.expect("header");
        assert_eq!(header.to_str().expect("ascii"), "Bearer at-1");
        // A 401 with the current generation refreshes once; a stale generation does not.
        session.refresh_after(generation).await.expect("refresh");
        session
            .refresh_after(generation)
            .await
            .expect("no second refresh");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let reloaded = OAuthSession::load(config.clone()).expect("load");
        let (header, _) = reloaded.header().await.expect("header");
        assert_eq!(header.to_str().expect("ascii"), "Bearer at-2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config.token_file)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
