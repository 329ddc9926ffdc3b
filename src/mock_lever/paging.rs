//! Opaque, tamper-evident offset tokens and keyset pages.
//!
//! A token is the percent-encoded JSON array `[rank, timestamp, id, signature]`: the sort key of
//! the first record of the next page (as Lever's 2026 tokens are), and an HMAC-SHA256 over the
//! key, the route and its filters. A token altered, forged, used on another route or with other
//! filters, or older than the configured TTL is rejected with `400 Invalid offset token`.

use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::reply::ApiError;

/// Sort key of a listed record: (rank, timestamp, id), compared in that order.
pub(crate) type SortKey = (i64, i64, String);

/// Signs and checks tokens for one server.
pub(crate) struct TokenSigner {
    key: [u8; 32],
    ttl_ms: Option<u64>,
}

/// One page of a sorted list: the positions to return and the next token.
pub(crate) struct Page {
    pub(crate) range: std::ops::Range<usize>,
    pub(crate) next: Option<String>,
}

impl TokenSigner {
    pub(crate) fn new(key: [u8; 32], ttl_ms: Option<u64>) -> Self {
        TokenSigner { key, ttl_ms }
    }

    fn signature(&self, scope: &str, key: &SortKey, issued: i64) -> String {
        // PANICS: HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac key");
        mac.update(
            format!(
                "{scope}\u{0}{}\u{0}{}\u{0}{}\u{0}{issued}",
                key.0, key.1, key.2
            )
            .as_bytes(),
        );
        let bytes = mac.finalize().into_bytes();
        let hex: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{issued}.{hex}")
    }

    /// A token pointing at `key` for this scope (route + canonical filters).
    pub(crate) fn issue(&self, scope: &str, key: &SortKey, now_ms: i64) -> String {
        let array = json!([key.0, key.1, key.2, self.signature(scope, key, now_ms)]);
        utf8_percent_encode(&array.to_string(), NON_ALPHANUMERIC).to_string()
    }

    /// The sort key a token points at; accepts it raw, decoded once, or encoded twice.
    pub(crate) fn verify(
        &self,
        scope: &str,
        token: &str,
        now_ms: i64,
    ) -> Result<SortKey, ApiError> {
        let invalid = || ApiError::bad_request("Invalid offset token".into());
        let mut text = token.trim().to_owned();
        for _ in 0..3 {
            if text.starts_with('[') {
                break;
            }
            text = percent_decode_str(&text)
                .decode_utf8()
                .map_err(|_| invalid())?
                .into_owned();
        }
        let value: Value = serde_json::from_str(&text).map_err(|_| invalid())?;
        let (Some(rank), Some(ts), Some(id), Some(sig)) = (
            value[0].as_i64(),
            value[1].as_i64(),
            value[2].as_str(),
            value[3].as_str(),
        ) else {
            return Err(invalid());
        };
        if value.as_array().map(Vec::len) != Some(4) {
            return Err(invalid());
        }
        let issued: i64 = sig
            .split_once('.')
            .and_then(|(i, _)| i.parse().ok())
            .ok_or_else(invalid)?;
        let key = (rank, ts, id.to_owned());
        let expected = self.signature(scope, &key, issued);
        if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(invalid());
        }
        if let Some(ttl) = self.ttl_ms
            && now_ms.saturating_sub(issued) > ttl as i64
        {
            return Err(invalid());
        }
        Ok(key)
    }

    /// Cuts one page out of `keys` (sorted ascending).
    pub(crate) fn page(
        &self,
        keys: &[SortKey],
        scope: &str,
        offset: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Page, ApiError> {
        let start = match offset {
            None | Some("") => 0,
            Some(token) => {
                let key = self.verify(scope, token, now_ms)?;
                keys.partition_point(|k| *k < key)
            }
        };
        let end = (start + limit).min(keys.len());
        let next = (end < keys.len()).then(|| self.issue(scope, &keys[end], now_ms));
        Ok(Page {
            range: start..end,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<SortKey> {
        (0..n)
            .map(|i| ((i % 3) as i64, i as i64, format!("id{i:03}")))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn walk_every_key_once() {
        let signer = TokenSigner::new([7; 32], None);
        let keys = keys(25);
        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let page = signer.page(&keys, "s", offset.as_deref(), 10, 1).unwrap();
            seen.extend(keys[page.range.clone()].iter().cloned());
            match page.next {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, keys);
    }

    #[test]
    fn tampering_scope_and_encodings() {
        let signer = TokenSigner::new([7; 32], Some(1000));
        let key = (2, 5, "abc".to_owned());
        let token = signer.issue("scope", &key, 100);
        assert_eq!(signer.verify("scope", &token, 100).unwrap(), key);
        let decoded = percent_decode_str(&token)
            .decode_utf8()
            .unwrap()
            .into_owned();
        assert_eq!(signer.verify("scope", &decoded, 100).unwrap(), key);
        let twice = utf8_percent_encode(&token, NON_ALPHANUMERIC).to_string();
        assert_eq!(signer.verify("scope", &twice, 100).unwrap(), key);
        assert!(signer.verify("other", &token, 100).is_err());
        let altered = decoded.replace("\"abc\"", "\"abd\"");
        assert!(signer.verify("scope", &altered, 100).is_err());
        assert!(signer.verify("scope", "0.123.abc", 100).is_err());
        assert!(signer.verify("scope", &token, 5000).is_err(), "expired");
        let other = TokenSigner::new([8; 32], None);
        assert!(other.verify("scope", &token, 100).is_err());
    }
}
