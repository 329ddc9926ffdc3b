//! Who is calling: turns an `Authorization` header into the credential it names and what that
//! credential may see, or nothing.

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

/// What the calling credential may see, handed to the `/v1` handlers as a request extension.
/// Lever grants confidential access per API key, at creation, and per OAuth grant with the
/// `confidential:access:admin` scope (section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Access {
    /// Whether confidential postings and opportunities are visible.
    pub(crate) confidential: bool,
}

/// A configured secret (API key or bearer token) and what it may see.
pub(crate) struct Secret {
    pub(crate) value: String,
    pub(crate) access: Access,
}

impl Secret {
    pub(crate) fn new(value: &str, confidential: bool) -> Self {
        Secret {
            value: value.to_owned(),
            access: Access { confidential },
        }
    }
}

/// Checks the header against the configured API keys (Basic, key as username, any password)
/// and bearer tokens.
pub(crate) fn authenticate(
    header: Option<&str>,
    api_keys: &[Secret],
    bearer_tokens: &[Secret],
) -> Option<(Credential, Access)> {
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
            .find(|k| constant_time_eq(&k.value, user))
            .map(|k| (Credential(format!("key:{user}")), k.access))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        bearer_tokens
            .iter()
            .find(|t| constant_time_eq(&t.value, value))
            .map(|t| (Credential::bearer(value), t.access))
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
        let keys = vec![Secret::new("k1", true), Secret::new("k2", false)];
        let tokens = vec![Secret::new("t1", true)];
        let access = |header: &str| authenticate(Some(header), &keys, &tokens).map(|(_, a)| a);
        let full = Some(Access { confidential: true });
        assert_eq!(access(&basic("k1:")), full);
        assert_eq!(access(&basic("k1:pw")), full);
        assert_eq!(
            access(&basic("k2:")),
            Some(Access {
                confidential: false
            })
        );
        assert_eq!(access(&basic("k3:")), None);
        assert_eq!(access("Bearer t1"), full);
        assert_eq!(access("Bearer k1"), None);
        assert_eq!(access("Basic !!!"), None);
        assert!(authenticate(None, &keys, &tokens).is_none());
    }
}
