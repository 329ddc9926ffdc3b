//! The talent pool the mock serves, held as Lever-shaped JSON, plus the account-level reference
//! data (stages, archive reasons, users) every pool shares.
//!
//! Records are kept as `serde_json::Value` built from `lever-api.md`, never from the sync
//! client's structs, so a wrong client type cannot agree with itself in tests.

use std::fmt;

use serde_json::{Value, json};

/// One resume of an opportunity: the Lever resume object (§8.5) and the plain text of its file.
#[derive(Clone, PartialEq)]
pub struct MockResume {
    /// The resume object as `GET /opportunities/:id/resumes` lists it (`id`, `createdAt`,
    /// `file` or null, `parsedData`).
    pub resume: Value,
    /// Plain text of the file; what a download renders (empty when the resume has no file).
    pub text: String,
}

impl MockResume {
    /// The resume id.
    pub fn id(&self) -> &str {
        str_field(&self.resume, "id")
    }

    /// `file.status` (`processed`, `error`...), or `None` when the resume has no file.
    pub fn file_status(&self) -> Option<&str> {
        self.resume.get("file")?.get("status")?.as_str()
    }

    /// `file.ext` (`pdf`, `docx`, `txt`), or `None` when the resume has no file.
    pub fn file_ext(&self) -> Option<&str> {
        self.resume.get("file")?.get("ext")?.as_str()
    }
}

impl fmt::Debug for MockResume {
    // Resume text is personal data: Debug shows the id and the size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockResume")
            .field("id", &self.id())
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

/// One opportunity with its child records.
#[derive(Clone, PartialEq)]
pub struct MockOpportunity {
    /// The opportunity object (§8.3) with `applications` as a list of ids.
    pub opportunity: Value,
    /// Full application objects (§8.8), what `expand=applications` shows (0 or 1).
    pub applications: Vec<Value>,
    /// Resumes, oldest first.
    pub resumes: Vec<MockResume>,
    /// Note objects (§8.6), including soft-deleted ones (`deletedAt` set).
    pub notes: Vec<Value>,
    /// Feedback forms (§8.7), including soft-deleted ones.
    pub feedback: Vec<Value>,
    /// Offers (§8.9); generated pools have none, fixtures may.
    pub offers: Vec<Value>,
    /// Interviews (§8.10); generated pools have none, fixtures may.
    pub interviews: Vec<Value>,
    /// Ids of the notes created through `POST /opportunities/:id/notes`: the only ones the API
    /// may delete (§8.6).
    pub api_notes: Vec<String>,
}

impl MockOpportunity {
    /// The opportunity id.
    pub fn id(&self) -> &str {
        str_field(&self.opportunity, "id")
    }

    /// The contact (person) id.
    pub fn contact_id(&self) -> &str {
        str_field(&self.opportunity, "contact")
    }

    /// `updatedAt`, `None` when Lever reports null.
    pub fn updated_at(&self) -> Option<i64> {
        self.opportunity.get("updatedAt").and_then(Value::as_i64)
    }
}

impl fmt::Debug for MockOpportunity {
    // Names, emails and texts are personal data: Debug shows ids and counts only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockOpportunity")
            .field("id", &self.id())
            .field("resumes", &self.resumes.len())
            .field("notes", &self.notes.len())
            .field("feedback", &self.feedback.len())
            .field("offers", &self.offers.len())
            .field("interviews", &self.interviews.len())
            .finish()
    }
}

/// A whole Lever account as the mock serves it.
#[derive(Clone, PartialEq, Default)]
pub struct Pool {
    pub(crate) opportunities: Vec<MockOpportunity>,
    pub(crate) postings: Vec<Value>,
    pub(crate) stages: Vec<Value>,
    pub(crate) archive_reasons: Vec<Value>,
    pub(crate) users: Vec<Value>,
    pub(crate) deleted: Vec<Value>,
    /// Applications deleted from live opportunities: `{id, deletedAt, opportunityId, postingId}`.
    pub(crate) deleted_applications: Vec<Value>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("opportunities", &self.opportunities.len())
            .field("postings", &self.postings.len())
            .field("stages", &self.stages.len())
            .field("archive_reasons", &self.archive_reasons.len())
            .field("users", &self.users.len())
            .field("deleted", &self.deleted.len())
            .field("deleted_applications", &self.deleted_applications.len())
            .finish()
    }
}

impl Pool {
    /// Live (not deleted) opportunities in insertion order.
    pub fn opportunities(&self) -> &[MockOpportunity] {
        &self.opportunities
    }

    /// Posting objects (§8.12) with their `content`.
    pub fn postings(&self) -> &[Value] {
        &self.postings
    }

    /// Pipeline stages `{id, text}` in pipeline order.
    pub fn stages(&self) -> &[Value] {
        &self.stages
    }

    /// Archive reasons `{id, text, status, type}`.
    pub fn archive_reasons(&self) -> &[Value] {
        &self.archive_reasons
    }

    /// Users (§8.15), deactivated ones included.
    pub fn users(&self) -> &[Value] {
        &self.users
    }

    /// Deleted opportunities: the last opportunity object plus `deletedAt` and `deletedBy`.
    pub fn deleted(&self) -> &[Value] {
        &self.deleted
    }

    /// The live opportunity with this id.
    pub fn opportunity(&self, id: &str) -> Option<&MockOpportunity> {
        self.opportunities.iter().find(|o| o.id() == id)
    }

    /// Index of a stage in the pipeline, `None` for unknown stage ids.
    pub fn stage_index(&self, stage_id: &str) -> Option<usize> {
        self.stages
            .iter()
            .position(|s| str_field(s, "id") == stage_id)
    }

    /// The archive reason with this id.
    pub fn archive_reason(&self, id: &str) -> Option<&Value> {
        self.archive_reasons
            .iter()
            .find(|r| str_field(r, "id") == id)
    }

    /// The largest timestamp anywhere in the pool's opportunities (0 for an empty pool).
    pub(crate) fn max_timestamp(&self) -> i64 {
        let keys = [
            "createdAt",
            "updatedAt",
            "lastInteractionAt",
            "lastAdvancedAt",
        ];
        self.opportunities
            .iter()
            .flat_map(|o| {
                keys.iter()
                    .filter_map(|k| o.opportunity.get(*k).and_then(Value::as_i64))
            })
            .chain(
                self.deleted
                    .iter()
                    .chain(&self.deleted_applications)
                    .filter_map(|d| d.get("deletedAt").and_then(Value::as_i64)),
            )
            .max()
            .unwrap_or(0)
    }
}

/// A string field of a JSON object, `""` when absent or not a string.
pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Stage id of the recruiter screen (a UUID, as custom stages are in real accounts).
pub(crate) const STAGE_SCREEN: &str = "5b7c1d3e-8f2a-4c6b-9d0e-1a2b3c4d5e01";
/// Index in [`default_stages`] of the first stage where interviews (and feedback) happen.
pub(crate) const FIRST_INTERVIEW_STAGE: usize = 5;

/// The pipeline of every generated account, in order: slugs and UUIDs mixed as in real accounts.
pub(crate) fn default_stages() -> Vec<Value> {
    [
        ("lead-new", "New lead"),
        ("lead-reached-out", "Reached out"),
        ("lead-responded", "Responded"),
        ("applicant-new", "New applicant"),
        (STAGE_SCREEN, "Recruiter screen"),
        ("5b7c1d3e-8f2a-4c6b-9d0e-1a2b3c4d5e02", "Phone interview"),
        ("5b7c1d3e-8f2a-4c6b-9d0e-1a2b3c4d5e03", "On-site interview"),
        ("5b7c1d3e-8f2a-4c6b-9d0e-1a2b3c4d5e04", "Reference check"),
        ("offer", "Offer"),
    ]
    .iter()
    .map(|(id, text)| json!({"id": id, "text": text}))
    .collect()
}

/// Archive reasons of every generated account: both `hired` and `non-hired`, one inactive.
pub(crate) fn default_archive_reasons() -> Vec<Value> {
    [
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e01",
            "Underqualified",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e02",
            "Timing",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e03",
            "Withdrew",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e04",
            "Position filled",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e05",
            "Compensation",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e06",
            "Unresponsive",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e07",
            "Overqualified",
            "active",
            "non-hired",
        ),
        (
            "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e08",
            "Went with another candidate",
            "inactive",
            "non-hired",
        ),
        (
            "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c01",
            "Hired",
            "active",
            "hired",
        ),
        (
            "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c02",
            "Hired - internal transfer",
            "active",
            "hired",
        ),
    ]
    .iter()
    .map(|(id, text, status, kind)| json!({"id": id, "text": text, "status": status, "type": kind}))
    .collect()
}

/// Users of every generated account (recruiters, hiring managers, one deactivated).
pub(crate) fn default_users() -> Vec<Value> {
    [
        ("Riley Chen", "riley", "super admin", "Head of Talent", None),
        (
            "Jordan Alvarez",
            "jordan",
            "admin",
            "Senior Recruiter",
            None,
        ),
        (
            "Sam Whitfield",
            "sam",
            "team member",
            "Technical Recruiter",
            None,
        ),
        (
            "Morgan Lee",
            "morgan",
            "team member",
            "Engineering Manager",
            None,
        ),
        (
            "Casey Brooks",
            "casey",
            "limited team member",
            "Nursing Director",
            None,
        ),
        ("Taylor Ng", "taylor", "interviewer", "Staff Engineer", None),
        (
            "Avery Quinn",
            "avery",
            "team member",
            "Sales Director",
            None,
        ),
        (
            "Jamie Rowe",
            "jamie",
            "team member",
            "Recruiter",
            Some(1_690_000_000_000_i64),
        ),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, username, role, job, deactivated))| {
        json!({
            "id": format!("a1b2c3d4-0000-4000-8000-{:012}", i + 1),
            "name": name,
            "username": username,
            "email": format!("{username}@example.com"),
            "accessRole": role,
            "photo": null,
            "createdAt": 1_600_000_000_000_i64 + i as i64 * 86_400_000,
            "deactivatedAt": deactivated,
            "externalDirectoryId": null,
            "linkedContactIds": null,
            "jobTitle": job,
            "managerId": null,
        })
    })
    .collect()
}

/// A placeholder user for an id a fixture references but does not define.
pub(crate) fn placeholder_user(id: &str, n: usize) -> Value {
    json!({
        "id": id, "name": format!("User {n}"), "username": format!("user{n}"),
        "email": format!("user{n}@example.com"), "accessRole": "team member", "photo": null,
        "createdAt": 1_600_000_000_000_i64, "deactivatedAt": null, "externalDirectoryId": null,
        "linkedContactIds": null, "jobTitle": null, "managerId": null,
    })
}
