//! Response shaping (section 6): `expand` replaces the ids a record names with the objects
//! they stand for, `include` keeps only the listed fields, `id` and whatever was expanded.
//! Both take repeated, `name[]=` and comma-joined values.

use serde_json::{Value, json};

use super::auth::Access;
use super::pool::{MockOpportunity, Pool, str_field};
use super::query::Params;

/// What a request asks of the records it gets back: `include`d fields, `expand`ed references.
pub(crate) struct Shape<'a> {
    include: Vec<&'a str>,
    expand: Vec<&'a str>,
}

impl<'a> Shape<'a> {
    /// The `include` and `expand` values of a request.
    pub(crate) fn new(params: &'a Params) -> Self {
        Shape {
            include: params.list("include"),
            expand: params.list("expand"),
        }
    }

    /// The asked-for expansions among the fields a kind of record can expand.
    pub(crate) fn expanded(
        &self,
        expandable: impl IntoIterator<Item = &'static str>,
    ) -> Vec<&'static str> {
        expandable
            .into_iter()
            .filter(|field| self.expand.contains(field))
            .collect()
    }

    /// [`Shape::expanded`] for a kind described by an [`Expandable`] list.
    pub(crate) fn expanded_in(&self, expandable: &[Expandable]) -> Vec<&'static str> {
        self.expanded(expandable.iter().map(|(field, _)| *field))
    }

    /// Keeps only `id`, the included fields and the `expanded` ones (section 6.2: expanded
    /// fields stay even when `include` leaves them out); the whole record without `include`.
    pub(crate) fn select(&self, value: Value, expanded: &[&str]) -> Value {
        match value {
            Value::Object(map) if !self.include.is_empty() => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| {
                        let k = k.as_str();
                        k == "id" || self.include.contains(&k) || expanded.contains(&k)
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// What an id field expands to.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    /// One user id → the user object (`null` when unknown).
    User,
    /// An array of user ids → user objects.
    Users,
    /// A stage id → `{id, text}`.
    Stage,
    /// A posting id → the posting object (`null` when unknown).
    Posting,
    /// An array of posting ids → posting objects.
    Postings,
    /// An array of feedback-form ids → the forms, from the same opportunity.
    FeedbackForms,
}

/// A field a kind of record can expand, and what it becomes.
pub(crate) type Expandable = (&'static str, Target);

/// Expandable on postings (section 8.12).
pub(crate) const POSTING: &[Expandable] = &[
    ("user", Target::User),
    ("owner", Target::User),
    ("hiringManager", Target::User),
    ("followers", Target::Users),
];

/// Expandable on applications (section 6.2).
pub(crate) const APPLICATION: &[Expandable] = &[
    ("posting", Target::Posting),
    ("postingOwner", Target::User),
    ("postingHiringManager", Target::User),
    ("user", Target::User),
];

/// Expandable on notes and feedback forms (section 6.2).
pub(crate) const AUTHORED: &[Expandable] = &[("user", Target::User)];

/// Expandable on offers (sections 6.2 and 8.9).
pub(crate) const OFFER: &[Expandable] = &[("creator", Target::User)];

/// Expandable on interviews (section 6.2).
pub(crate) const INTERVIEW: &[Expandable] = &[
    ("user", Target::User),
    ("stage", Target::Stage),
    ("feedbackForms", Target::FeedbackForms),
    ("postings", Target::Postings),
];

/// Nothing to expand (resumes, referrals and the other children).
pub(crate) const NONE: &[Expandable] = &[];

/// `record` with each of `fields` (from its kind's [`Expandable`] list) expanded; `opp` is the
/// opportunity a child record belongs to (feedback forms are looked up there). A confidential
/// posting expands to `null` for a caller without confidential access (section 6.3).
pub(crate) fn expand(
    pool: &Pool,
    access: Access,
    opp: Option<&MockOpportunity>,
    record: &Value,
    expandable: &[Expandable],
    fields: &[&str],
) -> Value {
    let mut value = record.clone();
    for (field, target) in expandable.iter().filter(|(f, _)| fields.contains(f)) {
        let ids = &record[*field];
        value[*field] = match target {
            Target::User => user_json(pool, ids),
            Target::Users => each(ids, |id| user_json(pool, id)),
            Target::Stage => stage_json(pool, ids),
            Target::Posting => posting_json(pool, access, ids),
            Target::Postings => each(ids, |id| posting_json(pool, access, id)),
            Target::FeedbackForms => each(ids, |id| {
                opp.and_then(|o| o.feedback.iter().find(|f| f["id"] == *id))
                    .cloned()
                    .unwrap_or(Value::Null)
            }),
        };
    }
    value
}

/// An array of ids mapped one by one (an absent or non-array field becomes `[]`).
fn each(ids: &Value, f: impl Fn(&Value) -> Value) -> Value {
    ids.as_array()
        .map(|ids| ids.iter().map(f).collect())
        .unwrap_or_else(|| Value::Array(Vec::new()))
}

/// `{id, text}` of a stage id (`text` null when unknown).
pub(crate) fn stage_json(pool: &Pool, id: &Value) -> Value {
    let text = id
        .as_str()
        .and_then(|id| pool.stages.iter().find(|s| str_field(s, "id") == id))
        .map_or(Value::Null, |s| s["text"].clone());
    json!({"id": id, "text": text})
}

/// The posting object for a posting id, `null` when unknown, absent or hidden from `access`.
fn posting_json(pool: &Pool, access: Access, id: &Value) -> Value {
    id.as_str()
        .and_then(|id| pool.postings.iter().find(|p| str_field(p, "id") == id))
        .filter(|p| access.confidential || str_field(p, "confidentiality") != "confidential")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The user object for a user id, `null` when unknown or absent.
pub(crate) fn user_json(pool: &Pool, id: &Value) -> Value {
    id.as_str()
        .and_then(|id| pool.users.iter().find(|u| str_field(u, "id") == id))
        .cloned()
        .unwrap_or(Value::Null)
}
