//! Account-level lists: postings, stages, archive reasons, users, tags, sources, contacts and
//! the deleted-applications/postings lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};

use super::auth::Access;
use super::opportunities::{contact_json, paged};
use super::pool::str_field;
use super::query::Params;
use super::reply::{ApiError, ApiResult, single};
use super::server::Shared;
use super::shape::{self, Shape};

type S = State<Arc<Shared>>;

/// Items keyed by their position, so lists keep their natural order.
fn in_order(items: impl IntoIterator<Item = Value>) -> Vec<((i64, i64, String), Value)> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| ((i as i64, 0, str_field(&v, "id").to_owned()), v))
        .collect()
}

fn find(items: &[Value], id: &str, kind: &str) -> ApiResult {
    items
        .iter()
        .find(|v| str_field(v, "id") == id)
        .map(|v| single(v.clone()))
        .ok_or_else(|| ApiError::not_found(kind, id))
}

/// `GET /postings` with §8.12 filters; `include` keeps only the listed fields (`content`,
/// `followers`...), `id` and the expanded ones, as on every list (section 6.1).
pub(crate) async fn postings(
    State(shared): S,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let updated = (
        params.millis("updated_at_start")?,
        params.millis("updated_at_end")?,
    );
    let filters = [
        "state",
        "distributionChannel",
        "team",
        "department",
        "location",
        "commitment",
        "level",
        "tag",
        "group",
    ];
    if (updated.0.is_some() || updated.1.is_some()) && filters.iter().any(|f| params.has(f)) {
        return Err(ApiError::bad_request(
            "updated_at filters can only be combined with confidentiality".into(),
        ));
    }
    let confidentiality = params
        .first("confidentiality")
        .unwrap_or("non-confidential");
    if confidentiality != "non-confidential" && !access.confidential {
        return Err(ApiError::confidential());
    }
    let states = params.all("state");
    let channels = params.all("distributionChannel");
    let tags = params.all("tag");
    let category = |p: &Value, key: &str| -> bool {
        let wanted = params.all(key);
        wanted.is_empty() || wanted.contains(&str_field(&p["categories"], key))
    };
    let shape = Shape::new(&params);
    let expanded = shape.expanded_in(shape::POSTING);
    let pool = shared.read();
    let items = pool
        .postings
        .iter()
        .filter(|p| {
            let conf = str_field(p, "confidentiality");
            let conf_ok = match confidentiality {
                "all" => true,
                "confidential" => conf == "confidential",
                _ => conf != "confidential",
            };
            let state = str_field(p, "state");
            let have_channels: Vec<&str> = p["distributionChannels"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            // A published-only query lists only public postings unless both channels are asked for.
            let channel_ok = if channels.is_empty() {
                states != ["published"] || have_channels.contains(&"public")
            } else {
                channels.iter().any(|c| have_channels.contains(c))
            };
            let have_tags: Vec<&str> = p["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let updated_at = p["updatedAt"].as_i64();
            conf_ok
                && (states.is_empty() || states.contains(&state))
                && channel_ok
                && (tags.is_empty() || tags.iter().any(|t| have_tags.contains(t)))
                && ["team", "department", "location", "commitment", "level"]
                    .iter()
                    .all(|k| category(p, k))
                && updated.0.is_none_or(|s| updated_at.is_some_and(|u| u >= s))
                && updated.1.is_none_or(|e| updated_at.is_some_and(|u| u <= e))
        })
        .map(|p| {
            (
                (
                    0,
                    p["createdAt"].as_i64().unwrap_or(0),
                    str_field(p, "id").to_owned(),
                ),
                shape::expand(&pool, access, None, p, shape::POSTING, &expanded),
            )
        })
        .collect();
    drop(pool);
    paged(&shared, "/v1/postings", &params, items, &expanded)
}

/// `GET /postings/:id` (`expand` and `include` as on the list); 403 for a confidential posting
/// without confidential access.
pub(crate) async fn posting(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let pool = shared.read();
    let posting = pool
        .postings
        .iter()
        .find(|p| str_field(p, "id") == id)
        .ok_or_else(|| ApiError::not_found("postings", &id))?;
    if str_field(posting, "confidentiality") == "confidential" && !access.confidential {
        return Err(ApiError::confidential());
    }
    let shape = Shape::new(&params);
    let expanded = shape.expanded_in(shape::POSTING);
    let value = shape::expand(&pool, access, None, posting, shape::POSTING, &expanded);
    Ok(single(shape.select(value, &expanded)))
}

/// `GET /postings/deleted`: the mock never deletes postings.
pub(crate) async fn postings_deleted(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    params.millis("deleted_at_start")?;
    params.millis("deleted_at_end")?;
    paged(&shared, "/v1/postings/deleted", &params, Vec::new(), &[])
}

/// `GET /applications/deleted`: applications of deleted opportunities, and applications
/// deleted on their own.
pub(crate) async fn applications_deleted(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let start = params.millis("deleted_at_start")?;
    let end = params.millis("deleted_at_end")?;
    let pool = shared.read();
    let with_opportunities = pool.deleted.iter().flat_map(|d| {
        let at = d["deletedAt"].as_i64().unwrap_or(0);
        let opp = str_field(d, "id").to_owned();
        d["applications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(move |a| {
                let id = a.as_str()?.to_owned();
                Some((
                    (0, at, id.clone()),
                    json!({"id": id, "deletedAt": at, "opportunityId": opp}),
                ))
            })
    });
    let alone = pool.deleted_applications.iter().map(|d| {
        let at = d["deletedAt"].as_i64().unwrap_or(0);
        ((0, at, str_field(d, "id").to_owned()), d.clone())
    });
    let items = with_opportunities
        .chain(alone)
        .filter(|((_, at, _), _)| start.is_none_or(|s| *at >= s) && end.is_none_or(|e| *at < e))
        .collect();
    drop(pool);
    paged(&shared, "/v1/applications/deleted", &params, items, &[])
}

/// `GET /stages` in pipeline order.
pub(crate) async fn stages(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let items = in_order(shared.read().stages.clone());
    paged(&shared, "/v1/stages", &params, items, &[])
}

/// `GET /stages/:id`.
pub(crate) async fn stage(State(shared): S, Path(id): Path<String>) -> ApiResult {
    find(&shared.read().stages, &id, "stages")
}

/// `GET /archive_reasons` (`type=hired|non-hired`).
pub(crate) async fn archive_reasons(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let kind = params.first("type");
    if kind.is_some_and(|k| k != "hired" && k != "non-hired") {
        return Err(ApiError::bad_request(
            "type must be hired or non-hired".into(),
        ));
    }
    let reasons: Vec<Value> = shared
        .read()
        .archive_reasons
        .iter()
        .filter(|r| kind.is_none_or(|k| str_field(r, "type") == k))
        .cloned()
        .collect();
    paged(
        &shared,
        "/v1/archive_reasons",
        &params,
        in_order(reasons),
        &[],
    )
}

/// `GET /archive_reasons/:id`.
pub(crate) async fn archive_reason(State(shared): S, Path(id): Path<String>) -> ApiResult {
    find(&shared.read().archive_reasons, &id, "archive_reasons")
}

/// `GET /users` (`includeDeactivated`, `email`, `accessRole`, `external_directory_id`).
pub(crate) async fn users(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let include_deactivated = params.boolean("includeDeactivated")?.unwrap_or(false);
    let email = params.first("email").map(str::to_lowercase);
    let roles = params.all("accessRole");
    let directory = params.first("external_directory_id");
    let users: Vec<Value> = shared
        .read()
        .users
        .iter()
        .filter(|u| include_deactivated || u["deactivatedAt"].is_null())
        .filter(|u| {
            email
                .as_ref()
                .is_none_or(|e| str_field(u, "email").to_lowercase() == *e)
        })
        .filter(|u| roles.is_empty() || roles.contains(&str_field(u, "accessRole")))
        .filter(|u| directory.is_none_or(|d| str_field(u, "externalDirectoryId") == d))
        .cloned()
        .collect();
    paged(&shared, "/v1/users", &params, in_order(users), &[])
}

/// `GET /users/:id` (deactivated users too).
pub(crate) async fn user(State(shared): S, Path(id): Path<String>) -> ApiResult {
    find(&shared.read().users, &id, "users")
}

fn counted(shared: &Shared, field: &str) -> Vec<((i64, i64, String), Value)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for opp in &shared.read().opportunities {
        for value in opp.opportunity[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            *counts.entry(value.to_owned()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(text, count)| ((0, 0, text.clone()), json!({"text": text, "count": count})))
        .collect()
}

/// `GET /tags` with per-tag opportunity counts.
pub(crate) async fn tags(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let items = counted(&shared, "tags");
    paged(&shared, "/v1/tags", &params, items, &[])
}

/// `GET /sources` with per-source opportunity counts.
pub(crate) async fn sources(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let items = counted(&shared, "sources");
    paged(&shared, "/v1/sources", &params, items, &[])
}

/// `GET /contacts/:id`.
pub(crate) async fn contact(State(shared): S, Path(id): Path<String>) -> ApiResult {
    let pool = shared.read();
    pool.opportunities
        .iter()
        .find(|o| o.contact_id() == id)
        .map(|o| single(contact_json(o)))
        .ok_or_else(|| ApiError::not_found("contacts", &id))
}
