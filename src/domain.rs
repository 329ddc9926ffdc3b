//! Plain data that flows from sync through the store to the indexes: no IO, no Lever JSON shapes.
//!
//! These types are what the local store persists (with bincode) and what the index and search
//! layers read. They are deliberately flat and owned so every layer can use them without
//! borrowing from another. Lever's wire shapes live only in `lever::wire`; the mock Lever builds
//! its JSON independently.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), Lever's timestamp unit.
pub type Millis = i64;

/// One opportunity (a candidacy of one person) with everything rediscovery needs about it.
///
/// The opportunity id is the record key; `contact_id` is the person key shared by all of the
/// person's opportunities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Candidate {
    /// Lever opportunity id.
    pub id: String,
    /// Lever contact id: the same person across opportunities.
    pub contact_id: String,
    /// Full name (display only; never searched or logged).
    pub name: String,
    /// Free-text headline (previous companies and schools).
    pub headline: String,
    /// Email addresses (display only; never searched or logged).
    pub emails: Vec<String>,
    /// Phone numbers (display only; never searched or logged).
    pub phones: Vec<String>,
    /// The contact's location as entered, often empty.
    pub location: String,
    /// Links as entered (LinkedIn, GitHub...).
    pub links: Vec<String>,
    /// Tags on the opportunity.
    pub tags: Vec<String>,
    /// Sources (LinkedIn, Referral...).
    pub sources: Vec<String>,
    /// Origin (`sourced`, `applied`, `referred`...).
    pub origin: String,
    /// Current stage id (a UUID or a slug such as `lead-new`).
    pub stage_id: String,
    /// Every stage move, oldest first as Lever returned them.
    pub stage_changes: Vec<StageChange>,
    /// Archive state; `None` while the opportunity is active.
    pub archived: Option<Archived>,
    /// Postings this opportunity applied to (from its applications).
    pub posting_ids: Vec<String>,
    /// When the opportunity was created.
    pub created_at: Millis,
    /// Lever's `updatedAt`; `None` for the many old records where Lever reports null.
    pub updated_at: Option<Millis>,
    /// Last activity on the profile.
    pub last_interaction_at: Option<Millis>,
    /// When it entered its current stage.
    pub last_advanced_at: Option<Millis>,
    /// Lever UI link to the profile (`urls.show`).
    pub profile_url: String,
    /// Whether Lever marks the opportunity confidential.
    pub confidential: bool,
    /// Resumes with their extracted text and parsed data.
    pub resumes: Vec<Resume>,
    /// Notes that are not deleted.
    pub notes: Vec<Note>,
    /// Feedback forms that are not deleted.
    pub feedback: Vec<Feedback>,
}

/// One entry of an opportunity's stage history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StageChange {
    /// Stage moved to.
    pub to_stage_id: String,
    /// Index of that stage in the account's pipeline order.
    pub to_stage_index: u32,
    /// When the move happened.
    pub at: Millis,
}

/// Why and when an opportunity was archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Archived {
    /// Archive reason id (look up its text and type in [`ReferenceData`]).
    pub reason_id: String,
    /// When it was archived.
    pub archived_at: Millis,
}

/// What happened when sync tried to get a resume file's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TextStatus {
    /// The text was extracted from the file.
    Extracted,
    /// The resume has no file (e.g. built from a profile).
    #[default]
    NoFile,
    /// Lever answered 422: it could not process the file.
    Unprocessable,
    /// Lever answered 404 for the download.
    Missing,
    /// The file was downloaded but its text could not be extracted; the reason is kept.
    Failed(String),
    /// The file type is not one rediscover extracts (only PDF, DOCX and TXT are).
    Unsupported(String),
}

/// A resume: its file's plain text when it could be extracted, plus Lever's parsed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resume {
    /// Lever resume id.
    pub id: String,
    /// When the resume was created.
    pub created_at: Millis,
    /// The uploaded file's name, when there is a file.
    pub file_name: Option<String>,
    /// The file's extension (`pdf`, `docx`, `txt`...), lowercase.
    pub file_ext: Option<String>,
    /// Plain text extracted from the file.
    pub text: Option<String>,
    /// How the text extraction went.
    pub text_status: TextStatus,
    /// Positions from Lever's `parsedData`.
    pub positions: Vec<Position>,
    /// Schools from Lever's `parsedData`.
    pub schools: Vec<School>,
}

/// A year and an optional month, as Lever's parsed resume data gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct YearMonth {
    /// Calendar year.
    pub year: i32,
    /// Month 1 to 12, when known.
    pub month: Option<u8>,
}

/// A job held, from a resume's parsed data. Missing strings are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Position {
    /// Employer.
    pub org: String,
    /// Job title.
    pub title: String,
    /// Free-text summary.
    pub summary: String,
    /// Location.
    pub location: String,
    /// Start date, when known.
    pub start: Option<YearMonth>,
    /// End date; `None` for a current role or when unknown.
    pub end: Option<YearMonth>,
}

/// A school attended, from a resume's parsed data. Missing strings are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct School {
    /// School name.
    pub org: String,
    /// Degree.
    pub degree: String,
    /// Field of study.
    pub field: String,
    /// Free-text summary.
    pub summary: String,
    /// Start date, when known.
    pub start: Option<YearMonth>,
    /// End date, when known.
    pub end: Option<YearMonth>,
}

/// A note thread on an opportunity (deleted notes are never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Note {
    /// Lever note id.
    pub id: String,
    /// When the thread was started.
    pub created_at: Millis,
    /// Lever user who started it, when known.
    pub author_id: Option<String>,
    /// The thread's comments, in order.
    pub comments: Vec<String>,
    /// Score 1 (strong no) to 4 (strong yes), when given.
    pub score: Option<u8>,
}

/// An interview feedback form (deleted forms are never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Feedback {
    /// Lever feedback id.
    pub id: String,
    /// `interview`, `assignment` or `share`.
    pub kind: String,
    /// Form title, e.g. `Onsite - Systems Design`.
    pub title: String,
    /// Lever user who wrote it.
    pub author_id: Option<String>,
    /// When it was created.
    pub created_at: Millis,
    /// When it was completed, when known.
    pub completed_at: Option<Millis>,
    /// Overall rating 1 (strong no hire) to 4 (strong hire), when given.
    pub rating: Option<u8>,
    /// Text answers, question then answer; scorecard comments are included as answers.
    pub answers: Vec<FeedbackAnswer>,
}

/// One answered question of a feedback form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FeedbackAnswer {
    /// The question or field label.
    pub question: String,
    /// The answer as text.
    pub answer: String,
}

/// Account-level data synced every run: it gives meaning to the ids on candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReferenceData {
    /// Pipeline stages in pipeline order.
    pub stages: Vec<Stage>,
    /// Archive reasons, active and inactive.
    pub archive_reasons: Vec<ArchiveReason>,
    /// Job postings with their content.
    pub postings: Vec<Posting>,
    /// Lever users (recruiters, interviewers), including deactivated ones.
    pub users: Vec<User>,
    /// Tag names in use.
    pub tags: Vec<String>,
}

/// A pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Stage {
    /// Stage id (UUID or slug).
    pub id: String,
    /// Display name.
    pub text: String,
}

/// Whether an archive reason means the person was hired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ArchiveReasonType {
    /// Archived because they were hired.
    Hired,
    /// Archived for any other reason.
    #[default]
    NonHired,
}

/// An archive reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ArchiveReason {
    /// Archive reason id.
    pub id: String,
    /// Display text, e.g. `Timing` or `Underqualified`.
    pub text: String,
    /// Hired or not.
    pub reason_type: ArchiveReasonType,
    /// Whether the reason can still be chosen (inactive ones remain on old records).
    pub active: bool,
}

/// A job posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Posting {
    /// Posting id.
    pub id: String,
    /// Title, e.g. `Senior Backend Engineer (Rust)`.
    pub title: String,
    /// `published`, `internal`, `closed`, `draft`...
    pub state: String,
    /// Team category.
    pub team: String,
    /// Department category.
    pub department: String,
    /// Location category.
    pub location: String,
    /// Commitment category (`Full-time`...).
    pub commitment: String,
    /// Plain-text body: description, then each list heading and its items, then closing.
    pub description: String,
    /// Posting tags.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Millis,
    /// When it was last updated, when known.
    pub updated_at: Option<Millis>,
}

/// A Lever user, kept only to name note and feedback authors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct User {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl ReferenceData {
    /// Looks up a stage by id.
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Position of a stage in the pipeline order, if the stage is known.
    pub fn stage_order(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    /// Looks up an archive reason by id.
    pub fn archive_reason(&self, id: &str) -> Option<&ArchiveReason> {
        self.archive_reasons.iter().find(|r| r.id == id)
    }

    /// Looks up a posting by id.
    pub fn posting(&self, id: &str) -> Option<&Posting> {
        self.postings.iter().find(|p| p.id == id)
    }
}

impl Candidate {
    /// The furthest pipeline stage this opportunity ever reached, by pipeline order.
    ///
    /// Stages unknown to the reference data count by their recorded `to_stage_index`.
    pub fn furthest_stage<'r>(&self, reference: &'r ReferenceData) -> Option<&'r Stage> {
        let mut best: Option<usize> = reference.stage_order(&self.stage_id);
        for change in &self.stage_changes {
            let order = reference
                .stage_order(&change.to_stage_id)
                .or(Some(change.to_stage_index as usize));
            best = best.max(order);
        }
        best.and_then(|i| reference.stages.get(i))
    }

    /// The best overall feedback rating this opportunity received (1 to 4).
    pub fn best_rating(&self) -> Option<u8> {
        self.feedback.iter().filter_map(|f| f.rating).max()
    }

    /// Whether this opportunity was archived with a hired-type reason.
    pub fn is_hired(&self, reference: &ReferenceData) -> bool {
        self.archived
            .as_ref()
            .and_then(|a| reference.archive_reason(&a.reason_id))
            .is_some_and(|r| r.reason_type == ArchiveReasonType::Hired)
    }

    /// The plain text of the resume most worth indexing: the newest one with extracted text.
    pub fn resume_text(&self) -> Option<&str> {
        self.resumes
            .iter()
            .filter(|r| r.text.as_deref().is_some_and(|t| !t.trim().is_empty()))
            .max_by_key(|r| r.created_at)
            .and_then(|r| r.text.as_deref())
    }
}
