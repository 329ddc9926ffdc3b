//! The opportunity write routes: notes (create, delete), tags/sources/links, stage and archive
//! state. Each answers like Lever (201 + note, 204, or the whole opportunity).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Access;
use super::mutate::{self, NewNote};
use super::opportunities::with_opportunity;
use super::query::Params;
use super::reply::{ApiError, ApiResult, json_response, single};
use super::server::Shared;

type S = State<Arc<Shared>>;

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid json: {e}")))
}

/// Refuses a write to an opportunity this key may not see (404 unknown, 403 confidential
/// without the grant, section 6.3) before anything changes.
fn writable(shared: &Shared, access: Access, id: &str) -> Result<(), ApiError> {
    with_opportunity(shared, access, id, |_, _| Ok(()))
}

/// The opportunity after a write, blanking contact fields if configured (as recorded).
fn mutation_response(shared: &Shared, access: Access, id: &str) -> ApiResult {
    with_opportunity(shared, access, id, |_, opp| {
        let mut value = opp.opportunity.clone();
        if shared.config.blank_contact_in_mutation_responses {
            value["name"] = json!("");
            value["headline"] = json!("");
            value["emails"] = json!([]);
            value["phones"] = json!([]);
        }
        Ok(single(value))
    })
}

/// `POST /opportunities/:id/notes`: 201 with the full note plus `noteId`.
pub(crate) async fn create_note(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    writable(&shared, access, &id)?;
    let params = Params::parse(raw.as_deref());
    let body = parse_body(&body)?;
    let value = body["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("value is required".into()))?;
    let score = match &body["score"] {
        Value::Null => None,
        v => Some(
            v.as_i64()
                .filter(|s| (1..=4).contains(s))
                .ok_or_else(|| ApiError::bad_request("score must be 1 to 4".into()))?,
        ),
    };
    let note = NewNote {
        value,
        user: params.first("perform_as"),
        secret: body["secret"].as_bool().unwrap_or(false),
        score,
        created_at: body["createdAt"].as_i64(),
        thread: params.first("note_id"),
        via_api: true,
    };
    let mut created =
        shared.write(|pool, now| Ok((mutate::add_note(pool, &id, &note, now)?, Vec::new())))?;
    created["noteId"] = created["id"].clone();
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"data": created}),
    ))
}

/// `DELETE /opportunities/:id/notes/:nid`: 204.
pub(crate) async fn delete_note(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path((id, nid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    writable(&shared, access, &id)?;
    shared.write(|pool, now| Ok((mutate::delete_note(pool, &id, &nid, now)?, Vec::new())))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /opportunities/:id/{addTags,removeTags,addSources,removeSources,addLinks,removeLinks}`.
pub(crate) async fn list_action(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> ApiResult {
    writable(&shared, access, &id)?;
    let action = uri.path().rsplit('/').next().unwrap_or("");
    let (add, field) = match action {
        "addTags" => (true, "tags"),
        "removeTags" => (false, "tags"),
        "addSources" => (true, "sources"),
        "removeSources" => (false, "sources"),
        "addLinks" => (true, "links"),
        _ => (false, "links"),
    };
    let body = parse_body(&body)?;
    let items: Vec<String> = body[field]
        .as_array()
        .ok_or_else(|| ApiError::bad_request(format!("{field} must be an array of strings")))?
        .iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                ApiError::bad_request(format!("{field} must be an array of strings"))
            })
        })
        .collect::<Result<_, _>>()?;
    shared.write(|pool, now| {
        Ok((
            mutate::change_list(pool, &id, field, add, &items, now)?,
            Vec::new(),
        ))
    })?;
    mutation_response(&shared, access, &id)
}

/// `PUT /opportunities/:id/stage` with `{"stage": id}`.
pub(crate) async fn put_stage(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    writable(&shared, access, &id)?;
    let params = Params::parse(raw.as_deref());
    let body = parse_body(&body)?;
    let stage = body["stage"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("stage is required".into()))?;
    let user = params.first("perform_as");
    shared.write(|pool, now| Ok(((), mutate::set_stage(pool, &id, stage, user, now)?)))?;
    mutation_response(&shared, access, &id)
}

/// `PUT /opportunities/:id/archived` with `{"reason": id | null}`.
pub(crate) async fn put_archived(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    writable(&shared, access, &id)?;
    let body = parse_body(&body)?;
    let reason = match body.get("reason") {
        Some(Value::String(r)) => Some(r.clone()),
        Some(Value::Null) => None,
        _ => {
            return Err(ApiError::bad_request(
                "reason is required (null unarchives)".into(),
            ));
        }
    };
    shared.write(|pool, now| Ok(((), mutate::set_archived(pool, &id, reason.as_deref(), now)?)))?;
    mutation_response(&shared, access, &id)
}
