//! Serde mirrors of Lever's JSON and their mapping to domain types. This is the only place Lever
//! field names appear. Every optional field is optional, nulls and odd scalar types are
//! tolerated, and unknown fields are ignored, because Lever adds fields over time.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use crate::domain::{
    ArchiveReason, ArchiveReasonType, Archived, Candidate, Feedback, FeedbackAnswer, Millis, Note,
    Position, Posting, Resume, School, Stage, StageChange, TextStatus, User, YearMonth,
};

/// `{"data": ..., "hasNext": bool, "next": "token"}`; `data` is kept raw so one bad record
/// does not lose the page.
#[derive(Debug, Deserialize)]
pub struct ListEnvelope {
    /// The records (normally an array).
    #[serde(default)]
    pub data: Value,
    /// Whether another page follows; missing means no.
    #[serde(default, rename = "hasNext", deserialize_with = "lenient_bool")]
    pub has_next: Option<bool>,
    /// The token for the next page; missing on the last page.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub next: Option<String>,
}

/// `{"data": {...}}` of single-object endpoints.
#[derive(Debug, Deserialize)]
pub struct Single<T> {
    /// The object.
    pub data: T,
}

/// Lever's error body `{code, message}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// PascalCase error name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub code: Option<String>,
    /// Human text.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub message: Option<String>,
}

/// A serde error described by shape only: serde messages can quote the offending value, which
/// may be personal data, so only the part naming what was expected is kept.
pub fn safe_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let core = text.split(" at line ").next().unwrap_or("");
    if let Some(idx) = core.find(", expected ") {
        // "invalid type: string \"<value>\", expected ..." keeps only the kind and the expectation.
        match core[..idx].split_once(':') {
            Some((kind, _)) => format!("{kind}{}", &core[idx..]),
            None => core.to_owned(),
        }
    } else if core.starts_with("missing field") || core.starts_with("duplicate field") {
        core.to_owned()
    } else {
        match e.classify() {
            serde_json::error::Category::Syntax => "not valid JSON".into(),
            serde_json::error::Category::Eof => "truncated JSON".into(),
            serde_json::error::Category::Io => "unreadable".into(),
            serde_json::error::Category::Data => "unexpected shape".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient field deserializers.

pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?).unwrap_or_default())
}

pub(crate) fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?).filter(|s| !s.is_empty()))
}

pub(crate) fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(value_to_string).collect(),
        Value::String(s) if !s.is_empty() => vec![s],
        _ => Vec::new(),
    })
}

pub(crate) fn lenient_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    Ok(value_to_millis(&Value::deserialize(d)?))
}

pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// An optional part whose shape the documentation leaves open: anything that does not parse as
/// `T` counts as absent rather than losing the whole record.
fn lenient_opt<'de, D: Deserializer<'de>, T: de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A list of parts whose shape the documentation leaves open: items that do not parse as `T`
/// are dropped rather than losing the whole record; a value that is not a list still fails.
fn lenient_items<'de, D: Deserializer<'de>, T: de::DeserializeOwned>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    match Option::<Vec<Value>>::deserialize(d)? {
        Some(items) => Ok(Some(
            items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
        )),
        None => Ok(None),
    }
}

/// [`lenient_items`] where a value that is not a list at all counts as absent too.
fn lenient_list<'de, D: Deserializer<'de>, T: de::DeserializeOwned>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// Lever ids must be non-empty strings: the one thing a record cannot do without.
fn required_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(de::Error::custom("invalid id, expected a non-empty string")),
    }
}

fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn value_to_millis(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id reference that `expand` may have replaced by an object with an `id`.
fn ref_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(map) => map.get("id").and_then(value_to_string),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Opportunities.

/// An opportunity (`GET /opportunities` item, section 8.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opportunity {
    /// Opportunity id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    name: String,
    #[serde(default)]
    contact: Value,
    #[serde(default, deserialize_with = "lenient_string")]
    headline: String,
    #[serde(default)]
    stage: Value,
    #[serde(default, deserialize_with = "lenient_items")]
    stage_changes: Option<Vec<WireStageChange>>,
    #[serde(default, deserialize_with = "lenient_string")]
    confidentiality: String,
    #[serde(default)]
    location: Value,
    #[serde(default)]
    phones: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient_strings")]
    emails: Vec<String>,
    #[serde(default, deserialize_with = "lenient_strings")]
    links: Vec<String>,
    #[serde(default)]
    archived: Option<WireArchived>,
    #[serde(default, deserialize_with = "lenient_strings")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient_strings")]
    sources: Vec<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    origin: String,
    #[serde(default)]
    applications: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_at: Option<Millis>,
    /// Lever's `updatedAt` (null on many old records).
    #[serde(default, deserialize_with = "lenient_millis")]
    pub updated_at: Option<Millis>,
    /// Lever's `lastInteractionAt`.
    #[serde(default, deserialize_with = "lenient_millis")]
    pub last_interaction_at: Option<Millis>,
    #[serde(default, deserialize_with = "lenient_millis")]
    last_advanced_at: Option<Millis>,
    #[serde(default, deserialize_with = "lenient_opt")]
    urls: Option<WireUrls>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStageChange {
    #[serde(default)]
    to_stage_id: Value,
    #[serde(default, deserialize_with = "lenient_millis")]
    to_stage_index: Option<i64>,
    #[serde(default, deserialize_with = "lenient_millis")]
    updated_at: Option<Millis>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireArchived {
    #[serde(default)]
    reason: Value,
    #[serde(default, deserialize_with = "lenient_millis")]
    archived_at: Option<Millis>,
}

#[derive(Debug, Clone, Deserialize)]
struct WireUrls {
    #[serde(default, deserialize_with = "lenient_string")]
    show: String,
}

impl Opportunity {
    /// The candidate record without children (resumes, notes and feedback are fetched apart).
    pub fn to_candidate(&self) -> Candidate {
        Candidate {
            id: self.id.clone(),
            contact_id: ref_id(&self.contact).unwrap_or_default(),
            name: self.name.clone(),
            headline: self.headline.clone(),
            emails: self.emails.clone(),
            phones: self
                .phones
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    Value::Object(map) => map.get("value").and_then(value_to_string),
                    other => value_to_string(other),
                })
                .filter(|p| !p.is_empty())
                .collect(),
            location: match &self.location {
                Value::Object(map) => map
                    .get("name")
                    .and_then(value_to_string)
                    .unwrap_or_default(),
                other => value_to_string(other).unwrap_or_default(),
            },
            links: self.links.clone(),
            tags: self.tags.clone(),
            sources: self.sources.clone(),
            origin: self.origin.clone(),
            stage_id: ref_id(&self.stage).unwrap_or_default(),
            stage_changes: self
                .stage_changes
                .iter()
                .flatten()
                .map(|c| StageChange {
                    to_stage_id: ref_id(&c.to_stage_id).unwrap_or_default(),
                    to_stage_index: c
                        .to_stage_index
                        .unwrap_or_default()
                        .clamp(0, u32::MAX as i64) as u32,
                    at: c.updated_at.unwrap_or_default(),
                })
                .collect(),
            // An archived object with a time but no reason is still archived (its reason
            // unknown); one with neither is treated as null.
            archived: self.archived.as_ref().and_then(|a| {
                let reason_id = ref_id(&a.reason);
                (reason_id.is_some() || a.archived_at.is_some()).then(|| Archived {
                    reason_id: reason_id.unwrap_or_default(),
                    archived_at: a.archived_at.unwrap_or_default(),
                })
            }),
            posting_ids: self.posting_ids(),
            created_at: self.created_at.unwrap_or_default(),
            updated_at: self.updated_at,
            last_interaction_at: self.last_interaction_at,
            last_advanced_at: self.last_advanced_at,
            profile_url: self
                .urls
                .as_ref()
                .map(|u| u.show.clone())
                .unwrap_or_default(),
            confidential: self.confidentiality == "confidential",
            resumes: Vec::new(),
            notes: Vec::new(),
            feedback: Vec::new(),
        }
    }

    /// Posting ids of the (expanded) applications, deduplicated, in order.
    fn posting_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for app in self.applications.iter().flatten() {
            let posting = match app {
                Value::Object(map) => map.get("posting").and_then(ref_id),
                _ => None,
            };
            if let Some(id) = posting
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }
}

/// An item of `GET /opportunities/deleted`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedOpportunity {
    /// The deleted opportunity's id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    /// When it was deleted.
    #[serde(default, deserialize_with = "lenient_millis")]
    pub deleted_at: Option<Millis>,
}

/// An item of `GET /applications/deleted`. Its fields are unverified (section 8.8 assumes
/// `opportunityId`), so the opportunity is also read from `opportunity` (an id or an expanded
/// object, like `posting` on an application) and from `candidateId` (which equals the
/// opportunity id everywhere); it may still be missing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedApplication {
    /// The deleted application's id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default)]
    opportunity_id: Value,
    #[serde(default)]
    opportunity: Value,
    #[serde(default)]
    candidate_id: Value,
    /// When it was deleted.
    #[serde(default, deserialize_with = "lenient_millis")]
    pub deleted_at: Option<Millis>,
}

impl DeletedApplication {
    /// The opportunity the application belonged to, if the item names it.
    pub fn opportunity_id(&self) -> Option<String> {
        [&self.opportunity_id, &self.opportunity, &self.candidate_id]
            .into_iter()
            .find_map(|v| ref_id(v).filter(|id| !id.trim().is_empty()))
    }
}

/// A webhook subscription (`GET /webhooks` item, `POST /webhooks` answer, section 8.17).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The subscription's id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    /// The event it delivers.
    #[serde(default, deserialize_with = "lenient_string")]
    pub event: String,
    /// Where Lever delivers it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: String,
    /// Its configuration; the signature token appears only in the answer to the create call.
    #[serde(default)]
    pub configuration: WebhookConfiguration,
}

/// `configuration` of a [`Webhook`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// The key of the deliveries' HMAC signatures (a secret).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub signature_token: Option<String>,
}

/// The `data` of the answer to `POST /webhooks`: the webhook, or, in the shape Lever's
/// documentation shows (section 8.17), an object whose own `data` is the webhook.
pub fn created_webhook(data: Value) -> Result<Webhook, serde_json::Error> {
    match data {
        Value::Object(mut map) if !map.contains_key("id") && map.contains_key("data") => {
            serde_json::from_value(map.remove("data").unwrap_or_default())
        }
        other => serde_json::from_value(other),
    }
}

/// The body of `POST /webhooks`: deliver `event` to `url`.
pub fn new_webhook(url: &str, event: &str) -> Value {
    serde_json::json!({"url": url, "event": event})
}

// ---------------------------------------------------------------------------------------------
// Resumes.

/// A resume (`GET /opportunities/:id/resumes` item, section 8.5).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireResume {
    /// Resume id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_at: Option<Millis>,
    /// The uploaded file, when there is one.
    #[serde(default)]
    pub file: Option<WireFile>,
    /// Loosely specified (every leaf optional; other clients keep it opaque).
    #[serde(default, deserialize_with = "lenient_opt")]
    parsed_data: Option<WireParsedData>,
}

/// A resume's file metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFile {
    /// File name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// Extension such as `pdf`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub ext: Option<String>,
    /// `processing`, `processed`, `unsupported`, `error` or null.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient_millis")]
    pub size: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WireParsedData {
    #[serde(default, deserialize_with = "lenient_list")]
    positions: Option<Vec<WirePosition>>,
    #[serde(default, deserialize_with = "lenient_list")]
    schools: Option<Vec<WireSchool>>,
}

#[derive(Debug, Clone, Deserialize)]
struct WirePosition {
    #[serde(default, deserialize_with = "lenient_string")]
    org: String,
    #[serde(default, deserialize_with = "lenient_string")]
    title: String,
    #[serde(default, deserialize_with = "lenient_string")]
    summary: String,
    #[serde(default, deserialize_with = "lenient_string")]
    location: String,
    #[serde(default)]
    start: Value,
    #[serde(default)]
    end: Value,
}

#[derive(Debug, Clone, Deserialize)]
struct WireSchool {
    #[serde(default, deserialize_with = "lenient_string")]
    org: String,
    #[serde(default, deserialize_with = "lenient_string")]
    degree: String,
    #[serde(default, deserialize_with = "lenient_string")]
    field: String,
    #[serde(default, deserialize_with = "lenient_string")]
    summary: String,
    #[serde(default)]
    start: Value,
    #[serde(default)]
    end: Value,
}

fn year_month(v: &Value) -> Option<YearMonth> {
    let map = v.as_object()?;
    let year = map.get("year").and_then(value_to_millis)?;
    let month = map
        .get("month")
        .and_then(value_to_millis)
        .filter(|m| (1..=12).contains(m))
        .map(|m| m as u8);
    Some(YearMonth {
        year: i32::try_from(year).ok()?,
        month,
    })
}

impl WireResume {
    /// The file extension to extract by: the declared one, else the file name's, lowercase.
    pub fn file_ext(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        file.ext
            .clone()
            .or_else(|| {
                let name = file.name.as_deref()?;
                let (_, ext) = name.rsplit_once('.')?;
                Some(ext.to_owned())
            })
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
    }

    /// The domain resume with no text yet; the caller fills `text` and `text_status`.
    pub fn to_resume(&self) -> Resume {
        let parsed = self.parsed_data.clone().unwrap_or_default();
        Resume {
            id: self.id.clone(),
            created_at: self.created_at.unwrap_or_default(),
            file_name: self.file.as_ref().and_then(|f| f.name.clone()),
            file_ext: self.file_ext(),
            text: None,
            text_status: TextStatus::NoFile,
            positions: parsed
                .positions
                .unwrap_or_default()
                .into_iter()
                .map(|p| Position {
                    org: p.org,
                    title: p.title,
                    summary: p.summary,
                    location: p.location,
                    start: year_month(&p.start),
                    end: year_month(&p.end),
                })
                .collect(),
            schools: parsed
                .schools
                .unwrap_or_default()
                .into_iter()
                .map(|s| School {
                    org: s.org,
                    degree: s.degree,
                    field: s.field,
                    summary: s.summary,
                    start: year_month(&s.start),
                    end: year_month(&s.end),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Notes and feedback.

/// A note thread (`GET /opportunities/:id/notes` item, section 8.6).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireNote {
    /// Note id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_at: Option<Millis>,
    #[serde(default)]
    user: Value,
    #[serde(default, deserialize_with = "lenient_items")]
    fields: Option<Vec<WireNoteField>>,
    #[serde(default)]
    deleted_at: Value,
    /// Visible in Lever only to users with sensitive-information rights (section 8.6).
    #[serde(default)]
    secret: Value,
}

#[derive(Debug, Clone, Deserialize)]
struct WireNoteField {
    #[serde(default)]
    value: Value,
    #[serde(default)]
    score: Value,
}

impl WireNote {
    /// Whether Lever soft-deleted the note.
    pub fn is_deleted(&self) -> bool {
        !self.deleted_at.is_null()
    }

    /// Whether the note is secret (visible in Lever only to users with sensitive-information
    /// rights). A missing or null `secret` means not secret; a value that is neither a boolean
    /// nor `"true"`/`"false"` counts as secret, so an odd value never exposes a note.
    pub fn is_secret(&self) -> bool {
        match &self.secret {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) if s == "false" => false,
            _ => true,
        }
    }

    /// The domain note: each comment's text, and the thread's score if one was given.
    pub fn to_note(&self) -> Note {
        let fields = self.fields.as_deref().unwrap_or_default();
        Note {
            id: self.id.clone(),
            created_at: self.created_at.unwrap_or_default(),
            author_id: ref_id(&self.user),
            comments: fields
                .iter()
                .filter_map(|f| value_to_string(&f.value))
                .filter(|c| !c.trim().is_empty())
                .collect(),
            score: fields.iter().find_map(|f| rating(&f.score)),
        }
    }
}

/// A feedback form (`GET /opportunities/:id/feedback` item, section 8.7).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFeedback {
    /// Feedback id.
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: String,
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
    #[serde(default)]
    user: Value,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_at: Option<Millis>,
    #[serde(default, deserialize_with = "lenient_millis")]
    completed_at: Option<Millis>,
    #[serde(default)]
    deleted_at: Value,
    /// Values are typed by each field's `type`, which varies: odd fields are dropped.
    #[serde(default, deserialize_with = "lenient_items")]
    fields: Option<Vec<WireFeedbackField>>,
}

#[derive(Debug, Clone, Deserialize)]
struct WireFeedbackField {
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: String,
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
    #[serde(default)]
    value: Value,
    #[serde(default, deserialize_with = "lenient_bool")]
    overall: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    scores: Option<Vec<Value>>,
}

/// A rating 1..=4 (or any small positive integer): an int, or the leading integer of a string
/// such as `"3 - Hire"`.
fn rating(v: &Value) -> Option<u8> {
    let n = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => {
            let digits: String = s
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()?
        }
        _ => return None,
    };
    u8::try_from(n).ok().filter(|n| *n > 0)
}

impl WireFeedback {
    /// Whether Lever soft-deleted the form.
    pub fn is_deleted(&self) -> bool {
        !self.deleted_at.is_null()
    }

    /// The domain feedback: overall rating, text answers and scorecard comments.
    pub fn to_feedback(&self) -> Feedback {
        let fields = self.fields.as_deref().unwrap_or_default();
        let rating = fields
            .iter()
            .filter(|f| f.kind == "score-system" || f.overall == Some(true))
            .find_map(|f| rating(&f.value));
        let mut answers = Vec::new();
        for field in fields {
            if field.kind == "score-system" || field.overall == Some(true) {
                continue;
            }
            match (&field.value, field.kind.as_str()) {
                (Value::Array(items), "scorecard") => {
                    for (i, item) in items.iter().enumerate() {
                        let comment = item
                            .get("comment")
                            .and_then(value_to_string)
                            .unwrap_or_default();
                        if comment.trim().is_empty() {
                            continue;
                        }
                        let label = field
                            .scores
                            .as_ref()
                            .and_then(|s| s.get(i))
                            .and_then(|s| s.get("text"))
                            .and_then(value_to_string)
                            .unwrap_or_default();
                        let question = if label.is_empty() {
                            field.text.clone()
                        } else {
                            format!("{}: {label}", field.text)
                        };
                        answers.push(FeedbackAnswer {
                            question,
                            answer: comment,
                        });
                    }
                }
                (Value::Array(items), _) => {
                    let joined: Vec<String> = items.iter().filter_map(value_to_string).collect();
                    if !joined.is_empty() {
                        answers.push(FeedbackAnswer {
                            question: field.text.clone(),
                            answer: joined.join(", "),
                        });
                    }
                }
                (Value::String(s), _) if !s.trim().is_empty() => answers.push(FeedbackAnswer {
                    question: field.text.clone(),
                    answer: s.clone(),
                }),
                _ => {}
            }
        }
        Feedback {
            id: self.id.clone(),
            kind: self.kind.clone(),
            title: self.text.clone(),
            author_id: ref_id(&self.user),
            created_at: self.created_at.unwrap_or_default(),
            completed_at: self.completed_at,
            rating,
            answers,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference data.

/// A stage (`GET /stages` item).
#[derive(Debug, Clone, Deserialize)]
pub struct WireStage {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
}

impl From<WireStage> for Stage {
    fn from(s: WireStage) -> Self {
        Stage {
            id: s.id,
            text: s.text,
        }
    }
}

/// An archive reason (`GET /archive_reasons` item).
#[derive(Debug, Clone, Deserialize)]
pub struct WireArchiveReason {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
    #[serde(default, deserialize_with = "lenient_string")]
    status: String,
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: String,
}

impl From<WireArchiveReason> for ArchiveReason {
    fn from(r: WireArchiveReason) -> Self {
        ArchiveReason {
            id: r.id,
            text: r.text,
            reason_type: if r.kind == "hired" {
                ArchiveReasonType::Hired
            } else {
                ArchiveReasonType::NonHired
            },
            active: r.status != "inactive",
        }
    }
}

/// A user (`GET /users` item).
#[derive(Debug, Clone, Deserialize)]
pub struct WireUser {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    name: String,
}

impl From<WireUser> for User {
    fn from(u: WireUser) -> Self {
        User {
            id: u.id,
            name: u.name,
        }
    }
}

/// A tag (`GET /tags` item).
#[derive(Debug, Clone, Deserialize)]
pub struct WireTag {
    /// The tag text.
    #[serde(default, deserialize_with = "lenient_string")]
    pub text: String,
}

/// A posting (`GET /postings` item, section 8.12).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePosting {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
    #[serde(default, deserialize_with = "lenient_string")]
    state: String,
    #[serde(default)]
    categories: Option<WireCategories>,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default, deserialize_with = "lenient_strings")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_at: Option<Millis>,
    #[serde(default, deserialize_with = "lenient_millis")]
    updated_at: Option<Millis>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WireCategories {
    #[serde(default, deserialize_with = "lenient_string")]
    team: String,
    #[serde(default, deserialize_with = "lenient_string")]
    department: String,
    #[serde(default, deserialize_with = "lenient_string")]
    location: String,
    #[serde(default, deserialize_with = "lenient_string")]
    commitment: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContent {
    #[serde(default, deserialize_with = "lenient_string")]
    description: String,
    #[serde(default, deserialize_with = "lenient_string")]
    description_html: String,
    #[serde(default)]
    lists: Option<Vec<WireContentList>>,
    #[serde(default, deserialize_with = "lenient_string")]
    closing: String,
    #[serde(default, deserialize_with = "lenient_string")]
    closing_html: String,
}

#[derive(Debug, Clone, Deserialize)]
struct WireContentList {
    #[serde(default, deserialize_with = "lenient_string")]
    text: String,
    #[serde(default, deserialize_with = "lenient_string")]
    content: String,
}

impl From<WirePosting> for Posting {
    fn from(p: WirePosting) -> Self {
        let categories = p.categories.unwrap_or_default();
        let content = p.content.unwrap_or_default();
        let mut parts: Vec<String> = Vec::new();
        let description = if content.description.trim().is_empty() {
            html_to_text(&content.description_html)
        } else {
            content.description.trim().to_owned()
        };
        parts.push(description);
        for list in content.lists.unwrap_or_default() {
            let items = html_to_text(&list.content);
            parts.push(format!("{}\n{}", list.text.trim(), items).trim().to_owned());
        }
        let closing = if content.closing.trim().is_empty() {
            html_to_text(&content.closing_html)
        } else {
            content.closing.trim().to_owned()
        };
        parts.push(closing);
        parts.retain(|p| !p.is_empty());
        Posting {
            id: p.id,
            title: p.text,
            state: p.state,
            team: categories.team,
            department: categories.department,
            location: categories.location,
            commitment: categories.commitment,
            description: parts.join("\n\n"),
            tags: p.tags,
            created_at: p.created_at.unwrap_or_default(),
            updated_at: p.updated_at,
        }
    }
}

/// Plain text of Lever's simple posting HTML: list items become `- ` lines, block ends become
/// line breaks, other tags are dropped, and the common entities are decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        match (tag.starts_with('/'), name) {
            (false, "li") => out.push_str("\n- "),
            (_, "br") | (true, "p" | "div" | "ul" | "ol" | "li" | "h1" | "h2" | "h3" | "h4") => {
                out.push('\n')
            }
            _ => {}
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "-")
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn opportunity_maps_expanded_and_plain_shapes() {
        let opp: Opportunity = serde_json::from_value(json!({
            "id": "o1", "name": "N", "contact": "c1", "headline": "h",
            "stage": {"id": "lead-new", "text": "New lead"},
            "stageChanges": [{"toStageId": "lead-new", "toStageIndex": 0, "updatedAt": 5}],
            "confidentiality": "non-confidential", "location": "Boston",
            "phones": [{"type": null, "value": "123"}], "emails": ["a@example.org", null],
            "links": null, "archived": {"reason": "r1", "archivedAt": 9},
            "tags": ["t"], "sources": ["LinkedIn"], "origin": "sourced",
            "applications": [{"id": "a1", "posting": "p1"}, {"id": "a2", "posting": {"id": "p1"}}],
            "createdAt": 1, "updatedAt": null, "lastInteractionAt": "7",
            "urls": {"show": "https://hire.lever.co/candidates/o1"},
            "someNewField": {"x": 1}
        }))
        .expect("parse");
        let c = opp.to_candidate();
        assert_eq!(c.stage_id, "lead-new");
        assert_eq!(c.emails, vec!["a@example.org"]);
        assert_eq!(c.phones, vec!["123"]);
        assert_eq!(c.posting_ids, vec!["p1"]);
        assert_eq!(c.archived.as_ref().map(|a| a.archived_at), Some(9));
        assert_eq!(c.updated_at, None);
        assert_eq!(c.last_interaction_at, Some(7));
        assert_eq!(c.stage_changes[0].at, 5);
    }

    #[test]
    fn an_archived_object_without_a_reason_is_still_archived() {
        let archived = |value: Value| {
            let opp: Opportunity =
                serde_json::from_value(json!({"id": "o1", "archived": value})).expect("parse");
            opp.to_candidate().archived
        };
        let a = archived(json!({"reason": null, "archivedAt": 9})).expect("archived");
        assert_eq!((a.reason_id.as_str(), a.archived_at), ("", 9));
        assert_eq!(
            archived(json!({"reason": "r1"})).map(|a| a.reason_id),
            Some("r1".into())
        );
        assert!(archived(json!({"reason": null, "archivedAt": null})).is_none());
        assert!(archived(Value::Null).is_none());
    }

    #[test]
    fn records_without_an_id_are_rejected_without_quoting_values() {
        let err = serde_json::from_value::<Opportunity>(json!({"name": "Secret Person"}))
            .expect_err("no id");
        let reason = safe_reason(&err);
        assert!(!reason.contains("Secret"), "{reason}");
        let err = serde_json::from_value::<Opportunity>(json!({"id": ""})).expect_err("empty id");
        assert_eq!(safe_reason(&err), "invalid id, expected a non-empty string");
        let err =
            serde_json::from_value::<Opportunity>(json!({"id": "x", "stageChanges": "Secret"}))
                .expect_err("bad shape");
        let reason = safe_reason(&err);
        assert!(!reason.contains("Secret"), "{reason}");
        assert!(reason.contains("expected"), "{reason}");
    }

    #[test]
    fn feedback_rating_is_parsed_defensively() {
        let score_system: WireFeedback = serde_json::from_value(json!({
            "id": "f1", "type": "interview", "text": "Onsite", "deletedAt": null,
            "fields": [
                {"type": "score-system", "text": "Overall", "value": "3 - Hire"},
                {"type": "scorecard", "text": "Skills", "scores": [{"text": "Rust"}, {"text": "Talk"}],
                 "value": [{"score": 4, "comment": "clear"}, {"score": 3, "comment": ""}]},
                {"type": "textarea", "text": "Notes", "value": "good fit"},
                {"type": "multiple-select", "text": "Areas", "value": ["a", "b"]},
                {"type": "date", "text": "When", "value": 1700000000000_i64}
            ]
        }))
        .expect("parse");
        let f = score_system.to_feedback();
        assert_eq!(f.rating, Some(3));
        assert_eq!(
            f.answers,
            vec![
                FeedbackAnswer {
                    question: "Skills: Rust".into(),
                    answer: "clear".into()
                },
                FeedbackAnswer {
                    question: "Notes".into(),
                    answer: "good fit".into()
                },
                FeedbackAnswer {
                    question: "Areas".into(),
                    answer: "a, b".into()
                },
            ]
        );
        let overall: WireFeedback = serde_json::from_value(json!({
            "id": "f2", "fields": [{"type": "score", "overall": true, "value": 4}],
            "deletedAt": 123
        }))
        .expect("parse");
        assert_eq!(overall.to_feedback().rating, Some(4));
        assert!(overall.is_deleted());
        assert_eq!(rating(&json!("no rating")), None);
        assert_eq!(rating(&json!(null)), None);
    }

    #[test]
    fn notes_keep_comments_and_score() {
        let note: WireNote = serde_json::from_value(json!({
            "id": "n1", "text": "Note", "user": null, "createdAt": 3, "deletedAt": null,
            "fields": [{"type": "note", "value": "first", "score": null},
                       {"type": "note", "value": "second", "score": 2}]
        }))
        .expect("parse");
        let n = note.to_note();
        assert_eq!(n.comments, vec!["first", "second"]);
        assert_eq!(n.score, Some(2));
        assert_eq!(n.author_id, None);
        assert!(!note.is_deleted());
        assert!(!note.is_secret());
    }

    #[test]
    fn a_note_is_secret_when_lever_says_so_or_says_something_odd() {
        let secret = |value: Value| {
            serde_json::from_value::<WireNote>(json!({"id": "n1", "secret": value}))
                .expect("parse")
                .is_secret()
        };
        assert!(secret(json!(true)));
        assert!(secret(json!("true")));
        assert!(secret(json!(1)));
        assert!(!secret(json!(false)));
        assert!(!secret(json!("false")));
        assert!(!secret(Value::Null));
    }

    #[test]
    fn resume_parsed_data_tolerates_missing_leaves() {
        let r: WireResume = serde_json::from_value(json!({
            "id": "r1", "createdAt": 1,
            "file": {"name": "CV.PDF", "ext": null, "status": "processed"},
            "parsedData": {"positions": [{"org": "Acme", "title": null, "start": {"year": 2019}}],
                           "schools": null}
        }))
        .expect("parse");
        assert_eq!(r.file_ext().as_deref(), Some("pdf"));
        let resume = r.to_resume();
        assert_eq!(
            resume.positions[0].start,
            Some(YearMonth {
                year: 2019,
                month: None
            })
        );
        assert_eq!(resume.positions[0].title, "");
        assert!(resume.schools.is_empty());
    }

    #[test]
    fn posting_description_flattens_lists() {
        let p: WirePosting = serde_json::from_value(json!({
            "id": "p1", "text": "Platform Engineer", "state": "published",
            "categories": {"team": "Infra", "location": null},
            "content": {"description": "Own our platform.",
                        "lists": [{"text": "What you bring", "content": "<li>Rust</li><li>K8s &amp; Go</li>"}],
                        "closing": "Thanks."}
        }))
        .expect("parse");
        let posting = Posting::from(p);
        assert_eq!(
            posting.description,
            "Own our platform.\n\nWhat you bring\n- Rust\n- K8s & Go\n\nThanks."
        );
        assert_eq!(posting.location, "");
    }

    #[test]
    fn one_odd_part_does_not_lose_the_record() {
        let opp: Opportunity = serde_json::from_value(json!({
            "id": "o1", "urls": "not an object",
            "stageChanges": [{"toStageId": "lead-new", "toStageIndex": "2", "updatedAt": 5}, "odd"]
        }))
        .expect("parse");
        let c = opp.to_candidate();
        assert_eq!(c.stage_changes.len(), 1);
        assert_eq!(c.stage_changes[0].to_stage_index, 2);
        assert_eq!(c.profile_url, "");
        let r: WireResume = serde_json::from_value(json!({
            "id": "r1", "parsedData": {"positions": [{"org": "Acme"}, 7], "schools": "odd"}
        }))
        .expect("parse");
        assert_eq!(r.to_resume().positions.len(), 1);
        let r: WireResume =
            serde_json::from_value(json!({"id": "r2", "parsedData": [1]})).expect("parse");
        assert!(r.to_resume().positions.is_empty());
        let note: WireNote = serde_json::from_value(json!({
            "id": "n1", "fields": [{"value": "kept"}, "odd", null]
        }))
        .expect("parse");
        assert_eq!(note.to_note().comments, vec!["kept"]);
        let feedback: WireFeedback = serde_json::from_value(json!({
            "id": "f1", "fields": [{"type": "score-system", "value": "3 - Hire"}, 1,
                                   {"type": "scorecard", "text": "S", "scores": "odd",
                                    "value": [{"comment": "ok"}]}]
        }))
        .expect("parse");
        let f = feedback.to_feedback();
        assert_eq!(f.rating, Some(3));
        assert_eq!(f.answers.len(), 1);
        // A list field that is not a list at all is still a malformed record.
        assert!(serde_json::from_value::<WireNote>(json!({"id": "n2", "fields": "odd"})).is_err());
    }

    #[test]
    fn deleted_applications_name_their_opportunity_several_ways() {
        let opp = |v: Value| {
            serde_json::from_value::<DeletedApplication>(v)
                .expect("parse")
                .opportunity_id()
        };
        assert_eq!(
            opp(json!({"id": "a", "opportunityId": "o1"})).as_deref(),
            Some("o1")
        );
        assert_eq!(
            opp(json!({"id": "a", "opportunity": "o2"})).as_deref(),
            Some("o2")
        );
        assert_eq!(
            opp(json!({"id": "a", "opportunity": {"id": "o3"}})).as_deref(),
            Some("o3")
        );
        assert_eq!(
            opp(json!({"id": "a", "candidateId": "o4"})).as_deref(),
            Some("o4")
        );
        assert_eq!(
            opp(json!({"id": "a", "opportunityId": null, "opportunity": "o5"})).as_deref(),
            Some("o5")
        );
        assert_eq!(
            opp(json!({"id": "a", "opportunityId": " ", "postingId": "p"})),
            None
        );
    }

    #[test]
    fn a_created_webhook_is_read_from_either_documented_shape() {
        let webhook = json!({"id": "w1", "event": "candidateHired", "url": "https://x/y",
                             "configuration": {"signatureToken": "t"}});
        for data in [webhook.clone(), json!({"data": webhook})] {
            let created = created_webhook(data).expect("parse");
            assert_eq!(created.id, "w1");
            assert_eq!(created.configuration.signature_token.as_deref(), Some("t"));
        }
        assert!(created_webhook(json!({"data": {"event": "x"}})).is_err());
    }

    #[test]
    fn envelope_tolerates_missing_has_next() {
        let env: ListEnvelope = serde_json::from_str(r#"{"data": []}"#).expect("parse");
        assert_eq!(env.has_next, None);
        assert_eq!(env.next, None);
    }
}
