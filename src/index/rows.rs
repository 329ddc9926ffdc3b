//! The compact per-opportunity table the query layer filters and groups on, indexed by ordinal,
//! and its file (`rows.bin`, bincode).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;
use super::generation::{read_file, write_file};
use crate::domain::{Candidate, ReferenceData};

/// Compact per-opportunity row, indexed by ordinal (u32) = position in `Indexes::rows()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRow {
    /// Lever opportunity id.
    pub opportunity_id: String,
    /// Lever contact id (the person; group results by it).
    pub contact_id: String,
    /// Whether the opportunity is archived.
    pub archived: bool,
    /// Archived with a hired-type reason.
    pub hired: bool,
    /// Archive reason id, when archived.
    pub archive_reason_id: Option<String>,
    /// Location, as filters compare it: NFC, lowercase, accents folded (`zurich`).
    pub location: String,
    /// Tags, lowercase.
    pub tags: Vec<String>,
    /// Pipeline order of the furthest stage reached.
    pub furthest_stage_order: Option<u32>,
    /// Last interaction, ms since the epoch.
    pub last_interaction_at: Option<i64>,
    /// Best overall feedback rating, 1 to 4.
    pub best_rating: Option<u8>,
    /// Tombstone: the opportunity was deleted or replaced by a newer row; never return it.
    /// Every other field of a tombstoned row is empty ([`CandidateRow::tombstone`]).
    pub deleted: bool,
}

impl CandidateRow {
    /// The key that groups this row with the person's other opportunities: the contact id,
    /// or the opportunity's own id when Lever gave none (an opportunity without a contact is
    /// a person of its own, never one with every other such opportunity).
    pub fn person_key(&self) -> &str {
        if self.contact_id.is_empty() {
            &self.opportunity_id
        } else {
            &self.contact_id
        }
    }
}

impl CandidateRow {
    /// The row of one candidate.
    pub fn new(candidate: &Candidate, reference: &ReferenceData) -> CandidateRow {
        CandidateRow {
            opportunity_id: candidate.id.clone(),
            contact_id: candidate.contact_id.clone(),
            archived: candidate.archived.is_some(),
            hired: candidate.is_hired(reference),
            archive_reason_id: candidate.archived.as_ref().map(|a| a.reason_id.clone()),
            location: super::analysis::fold(candidate.location.trim()),
            tags: candidate
                .tags
                .iter()
                .map(|t| t.trim().to_lowercase())
                .collect(),
            furthest_stage_order: candidate
                .furthest_stage(reference)
                .and_then(|s| reference.stage_order(&s.id))
                .map(|o| o as u32),
            last_interaction_at: candidate.last_interaction_at,
            best_rating: candidate.best_rating(),
            deleted: false,
        }
    }
}

impl CandidateRow {
    /// The row left at the ordinal of a deleted or replaced opportunity: only the ordinal and
    /// the `deleted` flag remain, with empty ids, so it holds nothing about the person and
    /// matches no lookup by opportunity or contact id (readers skip `deleted` rows anyway).
    pub fn tombstone() -> CandidateRow {
        CandidateRow {
            opportunity_id: String::new(),
            contact_id: String::new(),
            archived: false,
            hired: false,
            archive_reason_id: None,
            location: String::new(),
            tags: Vec::new(),
            furthest_stage_order: None,
            last_interaction_at: None,
            best_rating: None,
            deleted: true,
        }
    }
}

/// File name of the row table inside a generation directory.
pub const FILE: &str = "rows.bin";

/// Writes the row table.
pub fn write(dir: &Path, rows: &[CandidateRow]) -> Result<(), Error> {
    let bytes = bincode::serde::encode_to_vec(rows, bincode::config::standard())
        .map_err(|e| Error::Encode(e.to_string()))?;
    write_file(&dir.join(FILE), &bytes)
}

/// Reads the row table.
pub fn read(dir: &Path) -> Result<Vec<CandidateRow>, Error> {
    let path = dir.join(FILE);
    let bytes = read_file(&path)?;
    let (rows, _) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .map_err(|e| Error::Corrupt {
            path,
            reason: e.to_string(),
        })?;
    Ok(rows)
}
