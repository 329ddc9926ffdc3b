//! Who is calling: turns an `Authorization` header into the credential it names, or nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The credential a request authenticated with; the rate limiter keys its buckets on it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Credential(String);

impl Credential {
    /// The credential of a bearer token.
    pub(crate) fn bearer(token: &str) -> Self {
        Credential(format!("bearer:{token}"))
    }
}

/// Checks the header against the configured API keys (Basic, key as username, any password)
/// and bearer tokens.
pub(crate) fn authenticate(
    header: Option<&str>,
    api_keys: &[String],
    bearer_tokens: &[String],
) -> Option<Credential> {
    let header = header?.trim();
    let (scheme, value) = header.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(value).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user);
        api_keys
            .iter()
            .any(|k| constant_time_eq(k, user))
            .then(|| Credential(format!("key:{user}")))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        bearer_tokens
            .iter()
            .any(|t| constant_time_eq(t, value))
            .then(|| Credential::bearer(value))
    } else {
        None
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn basic_and_bearer() {
        let keys = vec!["k1".to_owned()];
        let tokens = vec!["t1".to_owned()];
        assert!(authenticate(Some(&basic("k1:")), &keys, &tokens).is_some());
        assert!(authenticate(Some(&basic("k1:pw")), &keys, &tokens).is_some());
        assert!(authenticate(Some(&basic("k2:")), &keys, &tokens).is_none());
        assert!(authenticate(Some("Bearer t1"), &keys, &tokens).is_some());
        assert!(authenticate(Some("Bearer k1"), &keys, &tokens).is_none());
        assert!(authenticate(Some("Basic !!!"), &keys, &tokens).is_none());
        assert!(authenticate(None, &keys, &tokens).is_none());
    }
}
