//! The Lever API v1 client: authentication, the shared rate limiter, paging, retries, the wire
//! shapes and their mapping to domain types, and webhook signature checks.
//!
//! Lever's record shapes live in [`wire`] (webhook deliveries in [`webhook`], the OAuth answer
//! in [`auth`]); `sync` turns wire records into [`crate::domain`] types before they are stored.

pub mod auth;
pub mod client;
pub mod ratelimit;
pub mod webhook;
pub mod wire;

pub use auth::{ApiKey, Credentials, OAuthConfig, OAuthSession};
pub use client::{ClientConfig, ClientStats, LeverClient, Listing, MalformedRecord, Page};
pub use ratelimit::RateLimiter;

/// Lever's production API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.lever.co/v1";

/// Lever's documented sustained rate limit per credential, in requests per second.
pub const LEVER_RATE_LIMIT: f64 = 10.0;

/// Errors of the Lever client. Messages carry the API path and status, never secrets or
/// candidate data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Lever rejected the credentials (HTTP 401).
    #[error("lever rejected the credentials (HTTP 401 on {path}): check LEVER_API_KEY")]
    Unauthorized {
        /// The API path requested.
        path: String,
    },
    /// The credential lacks a permission (HTTP 403).
    #[error("lever denied access (HTTP 403 on {path}): the credential lacks a permission")]
    Forbidden {
        /// The API path requested.
        path: String,
    },
    /// The object does not exist or is not visible (HTTP 404).
    #[error("not found (HTTP 404 on {path})")]
    NotFound {
        /// The API path requested.
        path: String,
    },
    /// Lever could not process the file (HTTP 422).
    #[error("lever could not process the file (HTTP 422 on {path})")]
    Unprocessable {
        /// The API path requested.
        path: String,
    },
    /// The paging token was rejected; the listing must restart from page 1.
    #[error("lever rejected the paging token on {path}")]
    InvalidOffset {
        /// The API path requested.
        path: String,
    },
    /// Any other non-retryable HTTP status.
    #[error("HTTP {status} on {path}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: u16,
        /// The API path requested.
        path: String,
        /// Lever's error `code`, when the body had one.
        code: Option<String>,
    },
    /// A retryable failure persisted through every attempt.
    #[error("giving up on {path} after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The API path requested.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure, e.g. `HTTP 503` or `connection error`.
        last: String,
    },
    /// The response body was not the JSON shape expected.
    #[error("malformed response from {path}: {reason}")]
    Malformed {
        /// The API path requested.
        path: String,
        /// What was wrong (a serde message; never the body itself).
        reason: String,
    },
    /// The configuration is unusable (bad base URL, bad rate).
    #[error("invalid lever client configuration: {0}")]
    Config(String),
    /// The OAuth token exchange failed.
    #[error("oauth token refresh failed: {0}")]
    OAuth(String),
    /// Reading or writing the OAuth token file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the error means the credential itself is bad (the run cannot go on).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Unauthorized { .. } | Error::Forbidden { .. } | Error::OAuth(_)
        )
    }
}

/// Result with the Lever [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
