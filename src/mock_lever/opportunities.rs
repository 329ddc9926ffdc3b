//! `/v1/opportunities` and its children: the filtered, keyset-paged list, single records,
//! expand/include shaping and resume downloads (writes live in `writes`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::auth::Access;
use super::paging::SortKey;
use super::pool::{MockOpportunity, Pool, str_field};
use super::query::Params;
use super::render;
use super::reply::{ApiError, ApiResult, envelope, single};
use super::server::{Shared, now_ms};
use super::shape::{self, Expandable, Shape, user_json};

type S = State<Arc<Shared>>;

/// Pages `items` (already filtered and expanded) by their sort keys for the route in `scope`,
/// keeping only the `include`d fields, `id` and the `expanded` ones when `include` is given.
pub(crate) fn paged(
    shared: &Shared,
    scope: &str,
    params: &Params,
    mut items: Vec<(SortKey, Value)>,
    expanded: &[&str],
) -> ApiResult {
    let limit = params.limit()?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<SortKey> = items.iter().map(|(k, _)| k.clone()).collect();
    let scope = format!("{scope}?{}", params.canonical_filters());
    let page = shared
        .tokens
        .page(&keys, &scope, params.first("offset"), limit, now_ms())?;
    let shape = Shape::new(params);
    let data = items
        .drain(page.range)
        .map(|(_, v)| shape.select(v, expanded))
        .collect();
    Ok(envelope(data, page.next))
}

/// The contact (person) object of §8.16, from the person's first opportunity.
pub(crate) fn contact_json(opp: &MockOpportunity) -> Value {
    let o = &opp.opportunity;
    json!({
        "id": o["contact"], "name": o["name"], "headline": o["headline"], "isAnonymized": o["isAnonymized"],
        "location": {"name": o["location"]}, "emails": o["emails"], "phones": o["phones"],
    })
}

/// The opportunity as served, with `expand` applied.
fn render_opportunity(pool: &Pool, opp: &MockOpportunity, expand: &[&str]) -> Value {
    let mut v = opp.opportunity.clone();
    for field in expand {
        match *field {
            "applications" => v["applications"] = json!(opp.applications),
            "stage" => v["stage"] = shape::stage_json(pool, &opp.opportunity["stage"]),
            "owner" | "sourcedBy" => v[*field] = user_json(pool, &opp.opportunity[*field]),
            "followers" => {
                let followers = opp.opportunity["followers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                v["followers"] = followers.iter().map(|f| user_json(pool, f)).collect();
            }
            "contact" => v["contact"] = contact_json(opp),
            _ => {}
        }
    }
    v
}

/// Expandable on opportunities (section 6.2), as [`render_opportunity`] expands them.
const OPPORTUNITY_EXPANDS: [&str; 6] = [
    "applications",
    "stage",
    "owner",
    "sourcedBy",
    "followers",
    "contact",
];

fn shape(pool: &Pool, opp: &MockOpportunity, params: &Params) -> Value {
    let shape = Shape::new(params);
    let expanded = shape.expanded(OPPORTUNITY_EXPANDS);
    shape.select(render_opportunity(pool, opp, &expanded), &expanded)
}

/// Rank for list order: pipeline position of the current stage (unknown stages last).
fn sort_key(pool: &Pool, opp: &MockOpportunity) -> SortKey {
    let rank = pool
        .stage_index(str_field(&opp.opportunity, "stage"))
        .map_or(999, |i| i as i64);
    (
        rank,
        opp.opportunity["createdAt"].as_i64().unwrap_or(0),
        opp.id().to_owned(),
    )
}

/// An inclusive time range from `<prefix>_start` / `<prefix>_end`.
struct Range(Option<i64>, Option<i64>);

impl Range {
    fn parse(params: &Params, prefix: &str) -> Result<Self, ApiError> {
        Ok(Range(
            params.millis(&format!("{prefix}_start"))?,
            params.millis(&format!("{prefix}_end"))?,
        ))
    }

    fn active(&self) -> bool {
        self.0.is_some() || self.1.is_some()
    }

    /// Whether `value` is inside; a missing value is inside only when the range is open.
    fn admits(&self, value: Option<i64>) -> bool {
        if !self.active() {
            return true;
        }
        value.is_some_and(|v| self.0.is_none_or(|s| v >= s) && self.1.is_none_or(|e| v <= e))
    }
}

/// The filters of `GET /opportunities` (§8.1).
struct Filter<'a> {
    updated: Range,
    created: Range,
    advanced: Range,
    archived_at: Range,
    archived: Option<bool>,
    snoozed: Option<bool>,
    reasons: Vec<&'a str>,
    stages: Vec<&'a str>,
    postings: Vec<&'a str>,
    archived_postings: Vec<&'a str>,
    tags: Vec<&'a str>,
    sources: Vec<&'a str>,
    origins: Vec<&'a str>,
    contacts: Vec<&'a str>,
    locations: Vec<&'a str>,
    email: Option<String>,
    confidentiality: &'a str,
    exclude_null_updated: bool,
    now: i64,
}

impl<'a> Filter<'a> {
    fn parse(params: &'a Params, shared: &Shared, access: Access) -> Result<Self, ApiError> {
        let confidentiality = params
            .first("confidentiality")
            .unwrap_or("non-confidential");
        if !matches!(confidentiality, "non-confidential" | "confidential" | "all") {
            return Err(ApiError::bad_request(
                "confidentiality must be non-confidential, confidential or all".into(),
            ));
        }
        if confidentiality != "non-confidential" && !access.confidential {
            return Err(ApiError::confidential());
        }
        let email = match params.first("email") {
            Some(e) if is_email(e) => Some(e.trim().to_lowercase()),
            Some(e) => {
                return Err(ApiError::bad_request(format!(
                    "{e} is not a valid email address"
                )));
            }
            None => None,
        };
        Ok(Filter {
            updated: Range::parse(params, "updated_at")?,
            created: Range::parse(params, "created_at")?,
            advanced: Range::parse(params, "advanced_at")?,
            archived_at: Range::parse(params, "archived_at")?,
            archived: params.boolean("archived")?,
            snoozed: params.boolean("snoozed")?,
            reasons: params.all("archive_reason_id"),
            stages: params.all("stage_id"),
            postings: params.all("posting_id"),
            archived_postings: params.all("archived_posting_id"),
            tags: params.all("tag"),
            sources: params.all("source"),
            origins: params.all("origin"),
            contacts: params.all("contact_id"),
            locations: params.all("location"),
            email,
            confidentiality,
            exclude_null_updated: shared.config.exclude_null_updated_at,
            now: now_ms(),
        })
    }

    fn matches(&self, opp: &MockOpportunity) -> bool {
        let o = &opp.opportunity;
        let ms = |key: &str| o.get(key).and_then(Value::as_i64);
        let strings = |key: &str| -> Vec<&str> {
            o[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let any_of = |wanted: &[&str], have: &[&str]| {
            wanted.is_empty() || wanted.iter().any(|w| have.contains(w))
        };
        let updated_ok = match ms("updatedAt") {
            None if self.updated.active() && !self.exclude_null_updated => true,
            value => self.updated.admits(value),
        };
        let archived = &o["archived"];
        let archived_at = archived.get("archivedAt").and_then(Value::as_i64);
        let conf = str_field(o, "confidentiality");
        let conf_ok = match self.confidentiality {
            "all" => true,
            "confidential" => conf == "confidential",
            _ => conf != "confidential",
        };
        let snoozed = ms("snoozedUntil").is_some_and(|t| t > self.now);
        let posting_ids: Vec<&str> = opp
            .applications
            .iter()
            .filter_map(|a| a["posting"].as_str())
            .collect();
        let archived_posting_ids: Vec<&str> = opp
            .applications
            .iter()
            .filter(|a| !a["archived"].is_null())
            .filter_map(|a| a["posting"].as_str())
            .collect();
        let location = o
            .get("opportunityLocation")
            .and_then(Value::as_str)
            .unwrap_or("unspecified");
        updated_ok
            && conf_ok
            && self.created.admits(ms("createdAt"))
            && self.advanced.admits(ms("lastAdvancedAt"))
            && self.archived_at.admits(archived_at)
            && self.archived.is_none_or(|want| want != archived.is_null())
            && self.snoozed.is_none_or(|want| want == snoozed)
            && any_of(&self.reasons, &[str_field(archived, "reason")])
            && any_of(&self.stages, &[str_field(o, "stage")])
            && any_of(&self.postings, &posting_ids)
            && any_of(&self.archived_postings, &archived_posting_ids)
            && any_of(&self.tags, &strings("tags"))
            && any_of(&self.sources, &strings("sources"))
            && any_of(&self.origins, &[str_field(o, "origin")])
            && any_of(&self.contacts, &[opp.contact_id()])
            && any_of(&self.locations, &[location])
            && self.email.as_ref().is_none_or(|e| {
                strings("emails")
                    .iter()
                    .any(|have| have.to_lowercase() == *e)
            })
    }
}

/// Whether `value` looks like an email address (Lever answers 400 for one that does not).
pub(crate) fn is_email(value: &str) -> bool {
    let value = value.trim();
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !value.contains(' ')
    })
}

/// `GET /opportunities`.
pub(crate) async fn list(
    State(shared): S,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let filter = Filter::parse(&params, &shared, access)?;
    let limit = params.limit()?;
    let pool = shared.read();
    let mut keyed: Vec<(SortKey, usize)> = pool
        .opportunities
        .iter()
        .enumerate()
        .filter(|(_, o)| filter.matches(o))
        .map(|(i, o)| (sort_key(&pool, o), i))
        .collect();
    keyed.sort();
    let keys: Vec<SortKey> = keyed.iter().map(|(k, _)| k.clone()).collect();
    let scope = format!("/v1/opportunities?{}", params.canonical_filters());
    let page = shared
        .tokens
        .page(&keys, &scope, params.first("offset"), limit, now_ms())?;
    let data = keyed[page.range]
        .iter()
        .map(|(_, i)| shape(&pool, &pool.opportunities[*i], &params))
        .collect();
    Ok(envelope(data, page.next))
}

/// `GET /opportunities/deleted`.
pub(crate) async fn deleted(State(shared): S, RawQuery(raw): RawQuery) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let range = Range::parse(&params, "deleted_at")?;
    let items = shared
        .read()
        .deleted
        .iter()
        .filter(|d| range.admits(d["deletedAt"].as_i64()))
        .map(|d| {
            (
                (
                    0,
                    d["deletedAt"].as_i64().unwrap_or(0),
                    str_field(d, "id").to_owned(),
                ),
                d.clone(),
            )
        })
        .collect();
    paged(&shared, "/v1/opportunities/deleted", &params, items, &[])
}

/// Runs `f` on opportunity `id`: 404 when unknown, 403 when confidential and the calling
/// credential has no confidential access.
pub(crate) fn with_opportunity<R>(
    shared: &Shared,
    access: Access,
    id: &str,
    f: impl FnOnce(&Pool, &MockOpportunity) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let pool = shared.read();
    let opp = pool
        .opportunity(id)
        .ok_or_else(|| ApiError::not_found("opportunities", id))?;
    if str_field(&opp.opportunity, "confidentiality") == "confidential" && !access.confidential {
        // Asking for a confidential record by id without the grant (section 6.3).
        return Err(ApiError::confidential());
    }
    f(&pool, opp)
}

/// `GET /opportunities/:id`.
pub(crate) async fn get_one(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    with_opportunity(&shared, access, &id, |pool, opp| {
        Ok(single(shape(pool, opp, &params)))
    })
}

/// A kind of child record: its route segment (also its 404 kind) and what it can expand.
struct Child {
    kind: &'static str,
    expandable: &'static [Expandable],
}

const RESUMES: Child = Child {
    kind: "resumes",
    expandable: shape::NONE,
};
const NOTES: Child = Child {
    kind: "notes",
    expandable: shape::AUTHORED,
};
const FEEDBACK: Child = Child {
    kind: "feedback",
    expandable: shape::AUTHORED,
};
const APPLICATIONS: Child = Child {
    kind: "applications",
    expandable: shape::APPLICATION,
};
const OFFERS: Child = Child {
    kind: "offers",
    expandable: shape::OFFER,
};
const INTERVIEWS: Child = Child {
    kind: "interviews",
    expandable: shape::INTERVIEW,
};
const UNMODELLED: Child = Child {
    kind: "child",
    expandable: shape::NONE,
};

/// A paged list of an opportunity's children, `expand` and `include` applied.
fn child_list(
    shared: &Shared,
    access: Access,
    id: &str,
    raw: Option<&str>,
    child: Child,
    pick: impl Fn(&MockOpportunity, &Params) -> Result<Vec<Value>, ApiError>,
) -> ApiResult {
    let params = Params::parse(raw);
    let expanded = Shape::new(&params).expanded_in(child.expandable);
    let items = with_opportunity(shared, access, id, |pool, opp| {
        Ok(pick(opp, &params)?
            .iter()
            .map(|v| shape::expand(pool, access, Some(opp), v, child.expandable, &expanded))
            .collect::<Vec<_>>())
    })?;
    let keyed = items
        .into_iter()
        .map(|v| {
            (
                (
                    0,
                    v["createdAt"].as_i64().unwrap_or(0),
                    str_field(&v, "id").to_owned(),
                ),
                v,
            )
        })
        .collect();
    paged(
        shared,
        &format!("/v1/opportunities/{id}/{}", child.kind),
        &params,
        keyed,
        &expanded,
    )
}

/// One child record by id, `expand` and `include` applied.
fn child_one(
    shared: &Shared,
    access: Access,
    (id, child_id): (&str, &str),
    raw: Option<&str>,
    child: Child,
    pick: impl Fn(&MockOpportunity) -> &[Value],
) -> ApiResult {
    let params = Params::parse(raw);
    let shape = Shape::new(&params);
    let expanded = shape.expanded_in(child.expandable);
    with_opportunity(shared, access, id, |pool, opp| {
        let record = pick(opp)
            .iter()
            .find(|v| str_field(v, "id") == child_id)
            .ok_or_else(|| ApiError::not_found(child.kind, child_id))?;
        let value = shape::expand(pool, access, Some(opp), record, child.expandable, &expanded);
        Ok(single(shape.select(value, &expanded)))
    })
}

/// `GET /opportunities/:id/resumes` (`uploaded_at_*` on `file.uploadedAt`, else `createdAt`).
pub(crate) async fn resumes(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let legacy_404 = shared.config.legacy_resume_404;
    child_list(
        &shared,
        access,
        &id,
        raw.as_deref(),
        RESUMES,
        |opp, params| {
            if legacy_404 && opp.resumes.is_empty() {
                return Err(ApiError::not_found("resumes for opportunity", opp.id()));
            }
            let range = Range::parse(params, "uploaded_at")?;
            Ok(opp
                .resumes
                .iter()
                .filter(|r| {
                    range.admits(
                        r.resume["file"]["uploadedAt"]
                            .as_i64()
                            .or(r.resume["createdAt"].as_i64()),
                    )
                })
                .map(|r| r.resume.clone())
                .collect())
        },
    )
}

/// `GET /opportunities/:id/resumes/:rid`.
pub(crate) async fn resume(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path((id, rid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = Params::parse(raw.as_deref());
    let shape = Shape::new(&params);
    with_opportunity(&shared, access, &id, |_, opp| {
        opp.resumes
            .iter()
            .find(|r| r.id() == rid)
            .map(|r| single(shape.select(r.resume.clone(), &[])))
            .ok_or_else(|| ApiError::not_found("resumes", &rid))
    })
}

/// `GET /opportunities/:id/resumes/:rid/download`: the rendered file, 422 for `error` files.
pub(crate) async fn download(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult {
    let (ext, name, text) = with_opportunity(&shared, access, &id, |_, opp| {
        let resume = opp
            .resumes
            .iter()
            .find(|r| r.id() == rid)
            .ok_or_else(|| ApiError::not_found("resumes", &rid))?;
        match resume.file_status() {
            None if resume.resume["file"].is_null() => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("resume {rid} has no file"),
            )),
            Some("error") | Some("unsupported") => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UnprocessableEntity",
                format!("resume {rid} could not be processed"),
            )),
            _ => Ok((
                resume.file_ext().unwrap_or("txt").to_owned(),
                str_field(&resume.resume["file"], "name").to_owned(),
                resume.text.clone(),
            )),
        }
    })?;
    let (content_type, bytes) = tokio::task::spawn_blocking(move || render::render(&ext, &text))
        .await
        .map_err(|_| ApiError::status(500, None))?
        .map_err(ApiError::from)?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace('"', "")
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /opportunities/:id/notes` (deleted notes included, with `deletedAt`).
pub(crate) async fn notes(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(&shared, access, &id, raw.as_deref(), NOTES, |opp, _| {
        Ok(opp.notes.clone())
    })
}

/// `GET /opportunities/:id/notes/:nid`.
pub(crate) async fn note(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let ids = (ids.0.as_str(), ids.1.as_str());
    child_one(&shared, access, ids, raw.as_deref(), NOTES, |opp| {
        &opp.notes
    })
}

/// `GET /opportunities/:id/feedback` (deleted forms included, with `deletedAt`).
pub(crate) async fn feedback(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(&shared, access, &id, raw.as_deref(), FEEDBACK, |opp, _| {
        Ok(opp.feedback.clone())
    })
}

/// `GET /opportunities/:id/feedback/:fid`.
pub(crate) async fn feedback_one(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let ids = (ids.0.as_str(), ids.1.as_str());
    child_one(&shared, access, ids, raw.as_deref(), FEEDBACK, |opp| {
        &opp.feedback
    })
}

/// `GET /opportunities/:id/applications`.
pub(crate) async fn applications(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(
        &shared,
        access,
        &id,
        raw.as_deref(),
        APPLICATIONS,
        |opp, _| Ok(opp.applications.clone()),
    )
}

/// `GET /opportunities/:id/applications/:aid`.
pub(crate) async fn application(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let ids = (ids.0.as_str(), ids.1.as_str());
    child_one(&shared, access, ids, raw.as_deref(), APPLICATIONS, |opp| {
        &opp.applications
    })
}

/// `GET /opportunities/:id/offers` (`expand=creator`).
pub(crate) async fn offers(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(&shared, access, &id, raw.as_deref(), OFFERS, |opp, _| {
        Ok(opp.offers.clone())
    })
}

/// `GET /opportunities/:id/interviews` (`expand` of `user`, `stage`, `feedbackForms`,
/// `postings`).
pub(crate) async fn interviews(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(
        &shared,
        access,
        &id,
        raw.as_deref(),
        INTERVIEWS,
        |opp, _| Ok(opp.interviews.clone()),
    )
}

/// `GET /opportunities/:id/interviews/:iid`.
pub(crate) async fn interview(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(ids): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let ids = (ids.0.as_str(), ids.1.as_str());
    child_one(&shared, access, ids, raw.as_deref(), INTERVIEWS, |opp| {
        &opp.interviews
    })
}

/// Children the mock does not model (referrals, files, panels, ...): an empty list.
pub(crate) async fn empty_child(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    child_list(&shared, access, &id, raw.as_deref(), UNMODELLED, |_, _| {
        Ok(Vec::new())
    })
}
