//! The control API under `/_mock`: mutations, request statistics, fault settings, webhook pings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::faults::FaultUpdate;
use super::mutate::MutateOp;
use super::reply::{ApiError, ApiResult, json_response, single};
use super::server::Shared;

type S = State<Arc<Shared>>;

/// `POST /_mock/mutate`: one op or an array of ops, applied in order.
pub(crate) async fn mutate(State(shared): S, body: Bytes) -> ApiResult {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json: {e}")))?;
    let ops: Vec<MutateOp> = match value {
        Value::Array(items) => items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>(),
        other => serde_json::from_value(other).map(|op| vec![op]),
    }
    .map_err(|e| ApiError::bad_request(format!("invalid mutation: {e}")))?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(shared.apply(op)?);
    }
    Ok(json_response(StatusCode::OK, &json!({"data": results})))
}

/// `GET /_mock/stats`.
pub(crate) async fn stats(State(shared): S) -> ApiResult {
    let stats = shared.stats.snapshot();
    let mut value = serde_json::to_value(&stats).unwrap_or(Value::Null);
    value["max_per_second"] = json!(stats.max_per_second());
    value["max_in_any_second"] = json!(stats.max_in_window(1000));
    Ok(single(value))
}

/// `POST /_mock/stats/reset`.
pub(crate) async fn reset_stats(State(shared): S) -> ApiResult {
    shared.stats.reset();
    Ok(single(json!({"reset": true})))
}

/// `POST /_mock/faults` with a [`FaultUpdate`].
pub(crate) async fn faults(State(shared): S, body: Bytes) -> ApiResult {
    let update: FaultUpdate = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid fault update: {e}")))?;
    shared.set_faults(&update);
    Ok(single(json!({"applied": true})))
}

/// `POST /_mock/webhooks/ping`: a test delivery to every subscription.
pub(crate) async fn ping(State(shared): S) -> ApiResult {
    let now = shared.clock.tick();
    let sent = shared.webhooks.ping(now, &shared.stats);
    Ok(single(json!({"deliveries": sent})))
}

/// `POST /_mock/oauth/expire`: every issued access token expires now.
pub(crate) async fn expire_tokens(State(shared): S) -> ApiResult {
    let enabled = shared
        .oauth
        .as_ref()
        .map(|oauth| super::oauth::lock(oauth).expire_access_tokens())
        .is_some();
    Ok(single(json!({"expired": enabled})))
}
