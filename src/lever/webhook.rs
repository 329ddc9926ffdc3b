//! Webhooks: subscriptions through the API (section 8.17), and deliveries: signature
//! verification (HMAC-SHA256 over `token` followed by the decimal `triggeredAt`, keyed by the
//! subscription's signature token) and lenient event parsing, which are pure.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::wire::{Webhook, created_webhook, new_webhook, safe_reason};
use super::{Error, LeverClient};

/// Longest opportunity id a delivery may name (Lever's are 36-character UUIDs).
pub const MAX_ID_BYTES: usize = 200;

/// Whether `id` can be an opportunity id: Lever's are UUIDs, so an empty one, one longer than
/// [`MAX_ID_BYTES`] or one holding a control character is not queued. A huge one would make
/// every later sync ask Lever for an address too long to serve, and never leave the inbox.
pub fn plausible_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

/// The candidate events worth a sync's attention, in the order they are subscribed.
pub const CANDIDATE_EVENTS: &[&str] = &[
    "candidateStageChange",
    "candidateArchiveChange",
    "candidateHired",
    "candidateDeleted",
    "applicationCreated",
];

/// Creates a webhook delivering `event` to `url`; the answer holds its signature token.
pub async fn subscribe(client: &LeverClient, url: &str, event: &str) -> Result<Webhook, Error> {
    let data: serde_json::Value = client.post("/webhooks", &new_webhook(url, event)).await?;
    created_webhook(data).map_err(|e| Error::Malformed {
        path: "/webhooks".into(),
        reason: safe_reason(&e),
    })
}

/// The account's webhooks created through the API.
pub async fn subscriptions(client: &LeverClient) -> Result<Vec<Webhook>, Error> {
    let (webhooks, _malformed) = client.list_all::<Webhook>("/webhooks", Vec::new()).await?;
    Ok(webhooks)
}

/// A webhook delivery. Every field is optional except the event name, so a test ping with
/// `data: {}` parses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Event name, e.g. `candidateStageChange`.
    #[serde(default, deserialize_with = "super::wire::lenient_string")]
    pub event: String,
    /// When Lever triggered it (ms).
    #[serde(default, deserialize_with = "super::wire::lenient_millis")]
    pub triggered_at: Option<i64>,
    /// Random per-delivery token (also the dedupe key).
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub token: Option<String>,
    /// Hex HMAC signature, when the subscription has a signing token.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub signature: Option<String>,
    /// Event-specific data.
    #[serde(default, deserialize_with = "lenient_data")]
    pub data: WebhookData,
}

/// The ids a delivery can carry; all optional, unknown keys ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookData {
    /// The opportunity concerned.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub opportunity_id: Option<String>,
    /// Deprecated duplicate of the opportunity id.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub candidate_id: Option<String>,
    /// The person concerned.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub contact_id: Option<String>,
    /// For `applicationCreated`.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub application_id: Option<String>,
    /// For `candidateStageChange`.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub from_stage_id: Option<String>,
    /// For `candidateStageChange`.
    #[serde(default, deserialize_with = "super::wire::lenient_opt_string")]
    pub to_stage_id: Option<String>,
}

impl WebhookEvent {
    /// The opportunity the event is about (`opportunityId`, else `candidateId`).
    ///
    /// An id that cannot be Lever's is `None` (see [`plausible_id`]).
    pub fn opportunity_id(&self) -> Option<&str> {
        [&self.data.opportunity_id, &self.data.candidate_id]
            .into_iter()
            .find_map(|id| id.as_deref().filter(|id| plausible_id(id)))
    }

    /// Whether the delivery cannot be Lever's: an event name that is not a short word
    /// (Lever's are camelCase names), or an opportunity or candidate id given but not
    /// [`plausible_id`]. Such a delivery is not queued: it would sit in the inbox and the logs
    /// at whatever size its sender chose.
    pub fn is_malformed(&self) -> bool {
        let event_ok = !self.event.is_empty()
            && self.event.len() <= 64
            && self
                .event
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        let names_an_id = [&self.data.opportunity_id, &self.data.candidate_id]
            .iter()
            .any(|id| id.as_deref().is_some_and(|id| !id.trim().is_empty()));
        !event_ok || (names_an_id && self.opportunity_id().is_none())
    }

    /// Whether the delivery is signed with `signature_token`.
    pub fn verify(&self, signature_token: &str) -> bool {
        match (&self.token, self.triggered_at, &self.signature) {
            (Some(token), Some(at), Some(signature)) => {
                verify_signature(signature_token, token, at, signature)
            }
            _ => false,
        }
    }
}

/// `data` of an unexpected shape (e.g. a list) counts as empty rather than failing the event.
fn lenient_data<'de, D: serde::Deserializer<'de>>(d: D) -> Result<WebhookData, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// Why a delivery body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed webhook delivery: {0}")]
pub struct ParseError(String);

/// Parses a delivery body leniently (unknown fields ignored; `data` may be empty).
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError(super::wire::safe_reason(&e)))?;
    if !value.is_object() {
        return Err(ParseError("the body is not a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| ParseError(super::wire::safe_reason(&e)))
}

/// The lowercase hex signature Lever computes for a delivery.
pub fn sign(signature_token: &str, token: &str, triggered_at: i64) -> String {
    // PANICS: HMAC-SHA256 accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(signature_token.as_bytes())
        .expect("hmac accepts any key length");
    mac.update(token.as_bytes());
    mac.update(triggered_at.to_string().as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Checks a delivery's signature in constant time.
pub fn verify_signature(
    signature_token: &str,
    token: &str,
    triggered_at: i64,
    signature: &str,
) -> bool {
    let expected = sign(signature_token, token, triggered_at);
    let given = signature.trim().to_ascii_lowercase();
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3f1c9a7e52b84d06a1e7c2f95d3b60a8e4f17c2b9d05a6e3";
    const TOKEN: &str = "9b2e7d41c6a05f38e1d4b7a29c60f5e83d1a7b4c2e9f6d05";
    const SIGNATURE: &str = "dd17f87dfcebca2ccde9220e232e96dcb3711e3035116083d6440cae03585a1d";

    #[test]
    fn documented_test_vector() {
        assert_eq!(sign(KEY, TOKEN, 1718000000123), SIGNATURE);
        assert!(verify_signature(KEY, TOKEN, 1718000000123, SIGNATURE));
        assert!(!verify_signature(KEY, TOKEN, 1718000000124, SIGNATURE));
        assert!(!verify_signature("other", TOKEN, 1718000000123, SIGNATURE));
        assert!(!verify_signature(KEY, TOKEN, 1718000000123, "dd17"));
    }

    #[test]
    fn parses_a_stage_change_and_verifies_it() {
        let body = format!(
            r#"{{"triggeredAt": 1718000000123, "event": "candidateStageChange",
                "data": {{"opportunityId": "o1", "candidateId": "o1", "contactId": "c1",
                          "fromStageId": "lead-new", "toStageId": "offer", "extra": 1}},
                "token": "{TOKEN}", "signature": "{SIGNATURE}"}}"#
        );
        let event = parse_event(body.as_bytes()).expect("parse");
        assert_eq!(event.event, "candidateStageChange");
        assert_eq!(event.opportunity_id(), Some("o1"));
        assert_eq!(event.data.to_stage_id.as_deref(), Some("offer"));
        assert!(event.verify(KEY));
        assert!(!event.verify("wrong"));
    }

    #[test]
    fn an_id_that_cannot_be_levers_is_not_named() {
        let id_of = |id: &str| {
            let body =
                serde_json::json!({"event": "candidateStageChange", "data": {"opportunityId": id}});
            parse_event(body.to_string().as_bytes())
                .expect("parse")
                .opportunity_id()
                .map(str::to_owned)
        };
        let uuid = "7a1e3c52-9b04-4d8f-a6e2-1c5b9d0f3e47";
        assert_eq!(id_of(uuid).as_deref(), Some(uuid));
        assert_eq!(id_of(&"a".repeat(250_000)), None);
        assert_eq!(id_of("o1\nforged"), None);
        assert_eq!(id_of("  "), None);
        // An implausible opportunityId falls back to candidateId, which Lever sets alike.
        let body = serde_json::json!({"event": "candidateHired",
            "data": {"opportunityId": "o1\nforged", "candidateId": uuid}});
        let event = parse_event(body.to_string().as_bytes()).expect("parse");
        assert_eq!(event.opportunity_id(), Some(uuid));
    }

    #[test]
    fn test_ping_with_empty_data_parses() {
        let event = parse_event(br#"{"event": "candidateHired", "triggeredAt": "5", "data": {}}"#)
            .expect("parse");
        assert_eq!(event.triggered_at, Some(5));
        assert_eq!(event.opportunity_id(), None);
        assert!(!event.verify(KEY));
        assert!(parse_event(b"[1]").is_err());
        assert!(parse_event(b"not json").is_err());
    }
}
