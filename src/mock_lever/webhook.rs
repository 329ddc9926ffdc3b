//! Webhook subscriptions (`/v1/webhooks`, §8.17) and signed deliveries (§9): envelope with a
//! 48-character token, HMAC-SHA256 hex signature over `token + triggeredAt`, `User-Agent:
//! Lever-Webhooks`, redelivery with doubling delays on anything but 2xx (3xx included).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Value, json};
use sha2::Sha256;

use super::mutate::Event;
use super::reply::{ApiError, ApiResult, json_response};
use super::server::Shared;
use super::stats::StatsRecorder;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Event names Lever accepts for subscriptions.
pub(crate) const EVENTS: &[&str] = &[
    "applicationCreated",
    "candidateHired",
    "candidateStageChange",
    "candidateArchiveChange",
    "candidateDeleted",
    "interviewCreated",
    "interviewUpdated",
    "interviewDeleted",
    "contactCreated",
    "contactUpdated",
];

/// Events whose deliveries honour `conditions.origins`.
const ORIGIN_FILTERED: &[&str] = &[
    "applicationCreated",
    "candidateArchiveChange",
    "candidateHired",
    "candidateStageChange",
];

/// `hex(HMAC_SHA256(key = signature_token, message = token ‖ triggered_at))`, as Lever signs
/// webhook bodies (§9.3).
pub fn webhook_signature(signature_token: &str, token: &str, triggered_at: i64) -> String {
    // PANICS: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(signature_token.as_bytes()).expect("hmac key");
    mac.update(token.as_bytes());
    mac.update(triggered_at.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One subscription.
#[derive(Clone)]
pub(crate) struct Subscription {
    pub(crate) id: String,
    pub(crate) event: String,
    pub(crate) url: String,
    pub(crate) conditions: Option<Value>,
    pub(crate) signature_token: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl Subscription {
    /// The subscription as `GET /webhooks` shows it (no signature token).
    pub(crate) fn to_json(&self) -> Value {
        let mut configuration = json!({});
        if let Some(conditions) = &self.conditions {
            configuration["conditions"] = conditions.clone();
        }
        json!({"id": self.id, "event": self.event, "url": self.url, "configuration": configuration,
               "createdAt": self.created_at, "updatedAt": self.updated_at})
    }

    fn accepts(&self, event: &Event) -> bool {
        if self.event != event.name {
            return false;
        }
        if !ORIGIN_FILTERED.contains(&event.name) {
            return true;
        }
        match self
            .conditions
            .as_ref()
            .and_then(|c| c.get("origins"))
            .and_then(Value::as_array)
        {
            Some(origins) => origins
                .iter()
                .any(|o| o.as_str() == Some(event.origin.as_str())),
            None => true,
        }
    }
}

/// Subscriptions plus what deliveries need.
pub(crate) struct Webhooks {
    pub(crate) subscriptions: Mutex<Vec<Subscription>>,
    client: reqwest::Client,
    retries: u32,
    retry_delay: Duration,
}

/// A random 48-character alphanumeric token.
pub(crate) fn random_token() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

impl Webhooks {
    pub(crate) fn new(retries: u32, retry_delay_ms: u64) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent("Lever-Webhooks")
            .build()
            .unwrap_or_default();
        Webhooks {
            subscriptions: Mutex::new(Vec::new()),
            client,
            retries,
            retry_delay: Duration::from_millis(retry_delay_ms),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscription>> {
        self.subscriptions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers each event to every matching subscription in the background.
    pub(crate) fn dispatch(&self, events: &[Event], now: i64, stats: &Arc<StatsRecorder>) {
        if events.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                events = events.len(),
                "no async runtime: webhook deliveries skipped"
            );
            return;
        };
        let subscriptions = self.lock().clone();
        for event in events {
            for subscription in subscriptions.iter().filter(|s| s.accepts(event)) {
                let body = envelope(
                    event.name,
                    event.data.clone(),
                    now,
                    &subscription.signature_token,
                );
                runtime.spawn(deliver(
                    self.client.clone(),
                    subscription.url.clone(),
                    body,
                    self.retries,
                    self.retry_delay,
                    stats.clone(),
                ));
            }
        }
    }

    /// A test delivery (`candidateHired` with empty data) to every subscription.
    pub(crate) fn ping(&self, now: i64, stats: &Arc<StatsRecorder>) -> usize {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return 0;
        };
        let subscriptions = self.lock().clone();
        for subscription in &subscriptions {
            let body = envelope(
                "candidateHired",
                json!({}),
                now,
                &subscription.signature_token,
            );
            runtime.spawn(deliver(
                self.client.clone(),
                subscription.url.clone(),
                body,
                self.retries,
                self.retry_delay,
                stats.clone(),
            ));
        }
        subscriptions.len()
    }
}

fn envelope(event: &str, data: Value, triggered_at: i64, signature_token: &str) -> Value {
    let token = random_token();
    let signature = webhook_signature(signature_token, &token, triggered_at);
    json!({"id": uuid::Uuid::new_v4().to_string(), "triggeredAt": triggered_at, "event": event,
           "data": data, "token": token, "signature": signature})
}

async fn deliver(
    client: reqwest::Client,
    url: String,
    body: Value,
    retries: u32,
    delay: Duration,
    stats: Arc<StatsRecorder>,
) {
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(delay * 2u32.saturating_pow(attempt - 1)).await;
        }
        let ok = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        stats.webhook(ok, attempt == retries);
        if ok {
            return;
        }
    }
    tracing::warn!(attempts = retries + 1, "webhook delivery failed");
}

type S = State<Arc<Shared>>;

fn parse(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid json: {e}")))
}

fn conditions_of(configuration: &Value) -> Result<Option<Value>, ApiError> {
    match configuration.get("conditions") {
        None | Some(Value::Null) => Ok(None),
        Some(conditions) => {
            let valid = [
                "applied",
                "sourced",
                "referred",
                "university",
                "agency",
                "internal",
            ];
            let origins = conditions.get("origins").and_then(Value::as_array);
            if origins.is_some_and(|o| {
                o.iter()
                    .all(|x| x.as_str().is_some_and(|x| valid.contains(&x)))
            }) {
                Ok(Some(conditions.clone()))
            } else {
                Err(ApiError::bad_request(
                    "conditions.origins must list valid origins".into(),
                ))
            }
        }
    }
}

/// `GET /webhooks`: `{"data": [...]}` without `hasNext`, as recorded.
pub(crate) async fn list(State(shared): S) -> ApiResult {
    let data: Vec<Value> = shared
        .webhooks
        .lock()
        .iter()
        .map(Subscription::to_json)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data})))
}

/// `POST /webhooks`: 201 with `configuration.signatureToken` (only here).
pub(crate) async fn create(State(shared): S, body: Bytes) -> ApiResult {
    let body = parse(&body)?;
    let event = body["event"]
        .as_str()
        .filter(|e| EVENTS.contains(e))
        .ok_or_else(|| ApiError::bad_request("event must be a webhook event name".into()))?;
    let url = body["url"]
        .as_str()
        .filter(|u| u.starts_with("http"))
        .ok_or_else(|| ApiError::bad_request("url must be an http(s) URL".into()))?;
    let conditions = conditions_of(&body["configuration"])?;
    let now = shared.clock.tick();
    let subscription = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        event: event.to_owned(),
        url: url.to_owned(),
        conditions,
        signature_token: random_token(),
        created_at: now,
        updated_at: now,
    };
    let mut value = subscription.to_json();
    value["configuration"]["signatureToken"] = json!(subscription.signature_token);
    shared.webhooks.lock().push(subscription);
    Ok(json_response(StatusCode::CREATED, &json!({"data": value})))
}

/// `PUT /webhooks` with `{"data": [{id, url?, configuration?}]}`.
pub(crate) async fn update(State(shared): S, body: Bytes) -> ApiResult {
    let body = parse(&body)?;
    let changes = body["data"]
        .as_array()
        .ok_or_else(|| ApiError::bad_request("data must be an array".into()))?;
    let now = shared.clock.tick();
    let mut subscriptions = shared.webhooks.lock();
    let mut updated = Vec::new();
    for change in changes {
        let id = change["id"].as_str().unwrap_or("");
        let subscription = subscriptions
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| ApiError::not_found("webhooks", id))?;
        if let Some(url) = change["url"].as_str() {
            subscription.url = url.to_owned();
        }
        if change.get("configuration").is_some() {
            subscription.conditions = conditions_of(&change["configuration"])?;
        }
        subscription.updated_at = now;
        updated.push(subscription.to_json());
    }
    Ok(json_response(StatusCode::OK, &json!({"data": updated})))
}

/// `DELETE /webhooks/:id`: 204.
pub(crate) async fn remove(State(shared): S, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut subscriptions = shared.webhooks.lock();
    let before = subscriptions.len();
    subscriptions.retain(|s| s.id != id);
    if subscriptions.len() == before {
        return Err(ApiError::not_found("webhooks", &id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_test_vector() {
        let signature = webhook_signature(
            "3f1c9a7e52b84d06a1e7c2f95d3b60a8e4f17c2b9d05a6e3",
            "9b2e7d41c6a05f38e1d4b7a29c60f5e83d1a7b4c2e9f6d05",
            1_718_000_000_123,
        );
        assert_eq!(
            signature,
            "dd17f87dfcebca2ccde9220e232e96dcb3711e3035116083d6440cae03585a1d"
        );
    }

    #[test]
    fn origins_condition_filters_candidate_events() {
        let sub = Subscription {
            id: "w".into(),
            event: "candidateStageChange".into(),
            url: "u".into(),
            conditions: Some(json!({"origins": ["applied"]})),
            signature_token: "t".into(),
            created_at: 0,
            updated_at: 0,
        };
        let event = |origin: &str| Event {
            name: "candidateStageChange",
            origin: origin.into(),
            data: json!({}),
        };
        assert!(sub.accepts(&event("applied")));
        assert!(!sub.accepts(&event("sourced")));
        assert_eq!(random_token().len(), 48);
    }
}
