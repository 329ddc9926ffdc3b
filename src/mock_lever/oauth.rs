//! A stand-in for Lever's OAuth token endpoint (`POST /oauth/token`, refresh-token grant):
//! access tokens that expire, single-use refresh tokens that rotate on every refresh, and the
//! granted scope, which decides confidential access (`confidential:access:admin`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Access;
use super::reply::json_response;
use super::server::{Shared, now_ms};
use super::webhook::random_token;

/// OAuth client settings of the mock.
#[derive(Clone)]
pub struct OAuthConfig {
    /// Accepted `client_id`.
    pub client_id: String,
    /// Accepted `client_secret`.
    pub client_secret: String,
    /// The refresh token valid at start (single use, like every later one).
    pub refresh_token: String,
    /// Lifetime of issued access tokens, milliseconds (Lever: one hour).
    pub access_ttl_ms: u64,
    /// The scopes granted to the client, space separated, echoed in every token answer. Its
    /// access tokens see confidential records only when this lists `confidential:access:admin`.
    pub scope: String,
}

impl OAuthConfig {
    /// The scopes a talent-pool sync asks for, confidential access and `offline_access`
    /// included.
    pub const DEFAULT_SCOPE: &'static str = "offline_access opportunities:read:admin \
        opportunities:write:admin resumes:read:admin notes:read:admin notes:write:admin \
        feedback:read:admin applications:read:admin postings:read:admin stages:read:admin \
        archive_reasons:read:admin users:read:admin tags:read:admin webhooks:read:admin \
        webhooks:write:admin confidential:access:admin";

    /// What the access tokens of this grant may see.
    fn access(&self) -> Access {
        Access {
            confidential: self
                .scope
                .split_whitespace()
                .any(|s| s == "confidential:access:admin"),
        }
    }
}

/// Live tokens.
pub(crate) struct OAuthState {
    config: OAuthConfig,
    refresh_tokens: Vec<String>,
    access_tokens: HashMap<String, i64>,
}

impl OAuthState {
    pub(crate) fn new(config: OAuthConfig) -> Self {
        OAuthState {
            refresh_tokens: vec![config.refresh_token.clone()],
            config,
            access_tokens: HashMap::new(),
        }
    }

    /// What `token` may see, when it is an issued, unexpired access token.
    pub(crate) fn accepts(&self, token: &str, now: i64) -> Option<Access> {
        self.access_tokens
            .get(token)
            .is_some_and(|expires| *expires > now)
            .then(|| self.config.access())
    }

    /// Makes every issued access token expire now (to exercise refresh-on-401).
    pub(crate) fn expire_access_tokens(&mut self) {
        self.access_tokens
            .values_mut()
            .for_each(|expires| *expires = 0);
    }

    fn refresh(
        &mut self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        now: i64,
    ) -> Option<(String, String)> {
        if client_id != self.config.client_id || client_secret != self.config.client_secret {
            return None;
        }
        let position = self
            .refresh_tokens
            .iter()
            .position(|t| t == refresh_token)?;
        self.refresh_tokens.remove(position);
        let access = random_token();
        let refresh = random_token();
        self.access_tokens
            .insert(access.clone(), now + self.config.access_ttl_ms as i64);
        self.refresh_tokens.push(refresh.clone());
        Some((access, refresh))
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// `POST /oauth/token` with a form-encoded `grant_type=refresh_token` body.
pub(crate) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(oauth) = shared.oauth.as_ref() else {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "oauth is not enabled on this mock",
        );
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only refresh_token is supported",
        );
    }
    let mut state = lock(oauth);
    match state.refresh(
        field("client_id"),
        field("client_secret"),
        field("refresh_token"),
        now_ms(),
    ) {
        Some((access, refresh)) => json_response(
            StatusCode::OK,
            &json!({
                "access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "scope": state.config.scope, "expires_in": state.config.access_ttl_ms / 1000,
            }),
        ),
        None => oauth_error(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "unknown, used or revoked refresh token",
        ),
    }
    .into_response()
}

/// Locks the OAuth state, recovering from poisoning.
pub(crate) fn lock(oauth: &Mutex<OAuthState>) -> std::sync::MutexGuard<'_, OAuthState> {
    oauth.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_rotate_and_are_single_use() {
        let mut state = OAuthState::new(OAuthConfig {
            client_id: "c".into(),
            client_secret: "s".into(),
            refresh_token: "r0".into(),
            access_ttl_ms: 1000,
            scope: "offline_access".into(),
        });
        assert!(state.refresh("c", "wrong", "r0", 0).is_none());
        let (access, r1) = state.refresh("c", "s", "r0", 0).unwrap();
        assert!(state.refresh("c", "s", "r0", 0).is_none(), "r0 was used");
        assert_eq!(
            state.accepts(&access, 999),
            Some(Access {
                confidential: false
            })
        );
        assert!(state.accepts(&access, 1000).is_none());
        let (second, _) = state.refresh("c", "s", &r1, 0).unwrap();
        state.expire_access_tokens();
        assert!(state.accepts(&second, 1).is_none());
    }
}
