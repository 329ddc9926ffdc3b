//! Applying to a posting on a candidate's behalf (section 8.8): `POST /postings/:id/apply`
//! creates an opportunity with its application (on the contact that owns the email, or a new
//! one) and fires `applicationCreated`; `GET /postings/:id/apply` is the form it follows.
//! Applications have their own 2 requests/second bucket (section 3), taken in `server`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Error;
use super::auth::Access;
use super::mutate::{Event, change_list, event};
use super::opportunities::is_email;
use super::pool::{MockOpportunity, Pool, str_field};
use super::reply::{ApiError, ApiResult, json_response, single};
use super::server::Shared;

type S = State<Arc<Shared>>;

/// Posting states that take applications: published and unlisted (`internal`).
const OPEN_STATES: [&str; 2] = ["published", "internal"];

/// The `personalInformation` questions of every posting's form: `(name, text, type, required)`.
const PERSONAL_INFORMATION: [(&str, &str, &str, bool); 7] = [
    ("fullName", "Full name", "text", true),
    ("email", "Email", "text", true),
    ("currentCompany", "Current company", "text", false),
    ("currentLocation", "Current location", "text", false),
    ("phone", "Phone", "text", false),
    ("resume", "Resume", "file-upload", false),
    (
        "additionalInformation",
        "Additional information",
        "textarea",
        false,
    ),
];

/// The link questions of every posting's form.
const URL_QUESTIONS: [&str; 3] = ["LinkedIn", "GitHub", "Other Website"];

/// The posting `id` as the caller may see it: 404 when unknown, 403 when confidential without
/// confidential access.
fn visible_posting<'a>(pool: &'a Pool, access: Access, id: &str) -> Result<&'a Value, ApiError> {
    let posting = pool
        .postings
        .iter()
        .find(|p| str_field(p, "id") == id)
        .ok_or_else(|| ApiError::not_found("postings", id))?;
    if str_field(posting, "confidentiality") == "confidential" && !access.confidential {
        return Err(ApiError::confidential());
    }
    Ok(posting)
}

/// `GET /postings/:id/apply`: the application form (no custom or EEO questions).
pub(crate) async fn form(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> ApiResult {
    let pool = shared.read();
    let posting = visible_posting(&pool, access, &id)?;
    let question = |name: &str, text: &str, kind: &str, required: bool| json!({"text": text, "name": name, "type": kind, "required": required, "value": null});
    let mut personal: Vec<Value> = PERSONAL_INFORMATION
        .iter()
        .map(|(name, text, kind, required)| question(name, text, kind, *required))
        .collect();
    let locations = posting["categories"]["allLocations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if locations.len() > 1 {
        let mut choice = question(
            "preferredPostingLocation",
            "Which location are you applying for?",
            "dropdown",
            false,
        );
        choice["options"] = locations.iter().map(|l| json!({"text": l})).collect();
        personal.push(choice);
    }
    let urls: Vec<Value> = URL_QUESTIONS
        .iter()
        .map(|name| question(name, name, "text", false))
        .collect();
    Ok(single(json!({
        "id": id, "text": posting["text"], "customQuestions": [],
        "personalInformation": personal, "urls": urls,
    })))
}

/// What an application says about the candidate.
struct Applicant {
    name: String,
    email: String,
    phone: Option<String>,
    company: Option<String>,
    location: Option<String>,
    preferred_location: Option<String>,
    comments: Option<String>,
    links: Vec<String>,
    custom_questions: Value,
    ip_address: Option<String>,
    source: Option<String>,
    origin: &'static str,
}

impl Applicant {
    /// Reads the body of `POST /postings/:id/apply`; 400 when a required answer is missing or
    /// malformed. Answers the form does not ask for are ignored.
    fn parse(body: &Value) -> Result<Self, ApiError> {
        let answers = |key: &str| -> Result<Vec<(String, Option<String>)>, ApiError> {
            let invalid = || ApiError::bad_request(format!("{key} must be [{{name, value}}]"));
            match body.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let name = item["name"].as_str().ok_or_else(invalid)?;
                        let value = item["value"].as_str().map(str::trim);
                        let value = value.filter(|v| !v.is_empty()).map(str::to_owned);
                        Ok((name.to_owned(), value))
                    })
                    .collect(),
                Some(_) => Err(invalid()),
            }
        };
        let personal = answers("personalInformation")?;
        let answer = |name: &str| {
            personal
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        };
        let required = |name: &str| {
            answer(name).ok_or_else(|| {
                ApiError::bad_request(format!("personalInformation {name} is required"))
            })
        };
        let name = required("fullName")?;
        let email = required("email")?;
        if !is_email(&email) {
            return Err(ApiError::bad_request(format!(
                "{email} is not a valid email address"
            )));
        }
        let origin = match body.get("origin").and_then(Value::as_str) {
            None | Some("applied") => "applied",
            Some("internal") => "internal",
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "origin must be applied or internal, not {other}"
                )));
            }
        };
        let mut links: Vec<String> = Vec::new();
        for (_, link) in answers("urls")? {
            if let Some(link) = link.filter(|l| !links.contains(l)) {
                links.push(link);
            }
        }
        Ok(Applicant {
            name,
            email,
            phone: answer("phone"),
            company: answer("currentCompany"),
            location: answer("currentLocation"),
            preferred_location: answer("preferredPostingLocation"),
            comments: answer("additionalInformation"),
            links,
            custom_questions: match &body["customQuestions"] {
                Value::Array(questions) => Value::Array(questions.clone()),
                _ => json!([]),
            },
            ip_address: body["ipAddress"].as_str().map(str::to_owned),
            source: body["source"].as_str().map(str::to_owned),
            origin,
        })
    }
}

/// `POST /postings/:id/apply`: 201 `{"data": {"applicationId": ...}}`.
pub(crate) async fn apply(
    State(shared): S,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    {
        let pool = shared.read();
        let posting = visible_posting(&pool, access, &id)?;
        if !OPEN_STATES.contains(&str_field(posting, "state")) {
            return Err(ApiError::bad_request(format!(
                "postings {id} is not published or unlisted and takes no applications"
            )));
        }
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid json: {e}")))?;
    let applicant = Applicant::parse(&body)?;
    let application = shared.write(|pool, now| create(pool, &id, &applicant, now))?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"data": {"applicationId": application}}),
    ))
}

/// Adds the applicant's opportunity and application for posting `posting_id`; returns the
/// application id and the `applicationCreated` event.
fn create(
    pool: &mut Pool,
    posting_id: &str,
    applicant: &Applicant,
    now: i64,
) -> Result<(String, Vec<Event>), Error> {
    let posting = pool
        .postings
        .iter()
        .find(|p| str_field(p, "id") == posting_id)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            kind: "postings",
            id: posting_id.to_owned(),
        })?;
    // Like `POST /opportunities` (section 8.11, dedupe by email), an application with a known
    // email goes to the contact that owns it; its opportunity is new either way.
    let email = applicant.email.to_lowercase();
    let known = pool.opportunities.iter().find(|o| {
        o.opportunity["emails"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e.as_str().is_some_and(|e| e.to_lowercase() == email))
        })
    });
    let contact = known.map_or_else(
        || uuid::Uuid::new_v4().to_string(),
        |o| o.contact_id().to_owned(),
    );
    let mut links: Vec<String> = known
        .and_then(|o| o.opportunity["links"].as_array())
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let new_links = applicant.links.iter().any(|l| !links.contains(l));
    for link in &applicant.links {
        if !links.contains(link) {
            links.push(link.clone());
        }
    }
    let sibling = known.map(|o| o.id().to_owned());
    // The person's details belong to the contact (section 7): a known contact keeps its own.
    let from_contact = |key: &str| known.map(|o| o.opportunity[key].clone());

    let id = uuid::Uuid::new_v4().to_string();
    let application_id = uuid::Uuid::new_v4().to_string();
    let stage = if pool.stage_index("applicant-new").is_some() {
        "applicant-new".to_owned()
    } else {
        pool.stages
            .first()
            .map_or("applicant-new", |s| str_field(s, "id"))
            .to_owned()
    };
    let stage_index = pool.stage_index(&stage).unwrap_or(0);
    let categories = &posting["categories"];
    let mut tags: Vec<Value> = Vec::new();
    for tag in ["team", "department", "location", "commitment"]
        .iter()
        .map(|k| &categories[*k])
        .chain([&posting["text"]])
    {
        if tag.is_string() && !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    let phone = applicant
        .phone
        .as_ref()
        .map(|p| json!({"type": null, "value": p}));
    let owner = &posting["owner"];
    let mut opportunity = json!({
        "id": id, "contact": contact,
        "name": from_contact("name").unwrap_or_else(|| json!(applicant.name)),
        "headline": from_contact("headline")
            .unwrap_or_else(|| json!(applicant.company.as_deref().unwrap_or(""))),
        "stage": stage, "confidentiality": str_field(&posting, "confidentiality"),
        "location": from_contact("location")
            .unwrap_or_else(|| json!(applicant.location.as_deref().unwrap_or(""))),
        "phones": from_contact("phones").unwrap_or_else(|| json!(phone.iter().collect::<Vec<_>>())),
        "emails": from_contact("emails").unwrap_or_else(|| json!([applicant.email])),
        "links": links,
        "archived": null, "tags": tags,
        "sources": applicant.source.iter().collect::<Vec<_>>(),
        "stageChanges": [{"toStageId": stage, "toStageIndex": stage_index, "updatedAt": now}],
        "origin": applicant.origin, "sourcedBy": null, "owner": owner,
        "followers": if owner.is_string() { json!([owner]) } else { json!([]) },
        "applications": [application_id], "createdAt": now, "updatedAt": now,
        "lastInteractionAt": now, "lastAdvancedAt": now, "snoozedUntil": null,
        "urls": {"list": "https://hire.lever.co/candidates",
                 "show": format!("https://hire.lever.co/candidates/{id}")},
        "isAnonymized": false, "dataProtection": null,
    });
    let location =
        (applicant.preferred_location.as_deref()).or_else(|| categories["location"].as_str());
    if let Some(location) = location {
        opportunity["opportunityLocation"] = json!(location);
    }
    let application = json!({
        "id": application_id, "type": "posting", "candidateId": id, "opportunityId": id,
        "posting": posting_id, "postingHiringManager": posting["hiringManager"],
        "postingOwner": owner, "name": applicant.name, "company": applicant.company,
        "phone": phone, "email": applicant.email, "links": applicant.links,
        "comments": applicant.comments, "user": null,
        "customQuestions": applicant.custom_questions, "createdAt": now, "archived": null,
        "requisitionForHire": null, "ipAddress": applicant.ip_address, "referer": null,
        "userAgent": null, "acceptLanguage": null, "timezone": null,
    });
    let opp = MockOpportunity {
        opportunity,
        applications: vec![application],
        resumes: Vec::new(),
        notes: Vec::new(),
        feedback: Vec::new(),
        offers: Vec::new(),
        interviews: Vec::new(),
        api_notes: Vec::new(),
    };
    let created = event(
        "applicationCreated",
        &opp,
        json!({"applicationId": application_id, "postingId": posting_id}),
    );
    pool.opportunities.push(opp);
    // Links live on the contact: the new ones show on its other opportunities too.
    if let (Some(sibling), true) = (sibling, new_links) {
        change_list(pool, &sibling, "links", true, &applicant.links, now)?;
    }
    Ok((application_id, vec![created]))
}
