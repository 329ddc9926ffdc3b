//! Response shaping (section 6): `expand` replaces the ids a record names with the objects
//! they stand for, `include` keeps only the listed fields, `id` and whatever was expanded.
//! Both take repeated, `name[]=` and comma-joined values.

use serde_json::Value;

use super::pool::{Pool, str_field};
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

/// `record` with each of `fields` (from its kind's [`Expandable`] list) expanded.
pub(crate) fn expand(
    pool: &Pool,
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

/// The user object for a user id, `null` when unknown or absent.
pub(crate) fn user_json(pool: &Pool, id: &Value) -> Value {
    id.as_str()
        .and_then(|id| pool.users.iter().find(|u| str_field(u, "id") == id))
        .cloned()
        .unwrap_or(Value::Null)
}
