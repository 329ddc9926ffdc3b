//! One opportunity's children: resumes (parsed data kept, file text extracted), notes and
//! feedback (soft-deleted ones dropped), fetched concurrently under the shared limiter.
//! Secret notes are dropped too: Lever shows them only to users with sensitive-information
//! rights, and whoever can query rediscover would see them.

use crate::domain::{Candidate, Resume, TextStatus};
use crate::extract::{self, Format};
use crate::lever::client::path_segment;
use crate::lever::wire::{WireFeedback, WireNote, WireResume};
use crate::lever::{Error, LeverClient, MalformedRecord};

use super::extracting::Extractions;

/// What fetching one opportunity's children gave.
#[derive(Debug)]
pub(super) enum ChildOutcome {
    /// The full candidate record.
    Synced {
        candidate: Box<Candidate>,
        stats: ChildStats,
    },
    /// Lever no longer knows the opportunity (404 on its notes or feedback).
    Gone,
    /// This credential may not see the opportunity (403 on a child list and on the
    /// opportunity itself, e.g. it became confidential).
    NotVisible,
}

/// Counters of one opportunity's fetch.
#[derive(Debug, Default)]
pub(super) struct ChildStats {
    pub resumes_downloaded: u64,
    pub resume_text_failed: u64,
    /// Resume files whose text this run could not have for a passing reason: Lever kept
    /// failing to send them (a 5xx or a network error after every retry), no thread could be
    /// started to extract them, or their extraction ran past its deadline for the first time.
    /// Their opportunity is fetched again next run.
    pub resumes_to_retry: u64,
    pub malformed: Vec<MalformedRecord>,
}

/// Fetches resumes, notes and feedback of `candidate` (built from the listing) and fills them
/// in. Resume files are downloaded again: Lever gives no content hash to tell a changed file.
pub(super) async fn fetch(
    client: &LeverClient,
    mut candidate: Candidate,
    extractions: &Extractions,
) -> Result<ChildOutcome, Error> {
    let base = format!("/opportunities/{}", path_segment(&candidate.id));
    let resumes_path = format!("{base}/resumes");
    let notes_path = format!("{base}/notes");
    let feedback_path = format!("{base}/feedback");
    let (resumes, notes, feedback) = tokio::join!(
        client.list_all::<WireResume>(&resumes_path, Vec::new()),
        client.list_all::<WireNote>(&notes_path, Vec::new()),
        client.list_all::<WireFeedback>(&feedback_path, Vec::new()),
    );
    let forbidden = [
        resumes.as_ref().err(),
        notes.as_ref().err(),
        feedback.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    .find_map(|e| match e {
        Error::Forbidden { path } => Some(path.clone()),
        _ => None,
    });
    if let Some(path) = forbidden {
        return visible_or_forbidden(client, &base, path).await;
    }
    let (notes, notes_malformed) = match notes {
        Err(Error::NotFound { .. }) => return Ok(ChildOutcome::Gone),
        other => other?,
    };
    let (feedback, feedback_malformed) = match feedback {
        Err(Error::NotFound { .. }) => return Ok(ChildOutcome::Gone),
        other => other?,
    };
    // Lever used to answer 404 for an empty resume list.
    let (resumes, resumes_malformed) = match resumes {
        Err(Error::NotFound { .. }) => (Vec::new(), Vec::new()),
        other => other?,
    };

    let mut stats = ChildStats::default();
    stats.malformed.extend(resumes_malformed);
    stats.malformed.extend(notes_malformed);
    stats.malformed.extend(feedback_malformed);

    let mut synced = Vec::with_capacity(resumes.len());
    for wire in &resumes {
        synced.push(resume_with_text(client, &base, wire, extractions, &mut stats).await?);
    }
    candidate.resumes = synced;
    candidate.notes = notes
        .iter()
        .filter(|n| !n.is_deleted() && !n.is_secret())
        .map(WireNote::to_note)
        .collect();
    candidate.feedback = feedback
        .iter()
        .filter(|f| !f.is_deleted())
        .map(WireFeedback::to_feedback)
        .collect();
    Ok(ChildOutcome::Synced {
        candidate: Box::new(candidate),
        stats,
    })
}

/// After a 403 on a child list: a 403 on the opportunity too means this credential may not see
/// it; if the opportunity itself can be read, the credential lacks a permission on the child
/// lists, for every opportunity alike, and the run stops on the 403.
async fn visible_or_forbidden(
    client: &LeverClient,
    base: &str,
    forbidden_path: String,
) -> Result<ChildOutcome, Error> {
    match client.get::<serde_json::Value>(base, &[]).await {
        Err(Error::Forbidden { .. }) => Ok(ChildOutcome::NotVisible),
        Err(Error::NotFound { .. }) => Ok(ChildOutcome::Gone),
        Err(e) => Err(e),
        Ok(_) => Err(Error::Forbidden {
            path: forbidden_path,
        }),
    }
}

/// The resume with its file's text, or the reason why there is none.
async fn resume_with_text(
    client: &LeverClient,
    base: &str,
    wire: &WireResume,
    extractions: &Extractions,
    stats: &mut ChildStats,
) -> Result<Resume, Error> {
    let mut resume = wire.to_resume();
    let Some(file) = &wire.file else {
        resume.text_status = TextStatus::NoFile;
        return Ok(resume);
    };
    let ext = resume.file_ext.clone().unwrap_or_default();
    let Some(format) = Format::from_ext(&ext) else {
        resume.text_status = TextStatus::Unsupported(ext);
        return Ok(resume);
    };
    if file.status.as_deref() == Some("error") {
        // Lever answers 422 for these downloads; spare the request.
        resume.text_status = TextStatus::Unprocessable;
        return Ok(resume);
    }
    if extractions.unfinished(&resume.id) {
        stats.resume_text_failed += 1;
        resume.text_status = TextStatus::Failed(
            "two earlier extractions of this file died or ran past the deadline; it is not tried again"
                .to_owned(),
        );
        return Ok(resume);
    }
    let path = format!("{base}/resumes/{}/download", path_segment(&resume.id));
    let bytes = match client.download(&path).await {
        Ok(bytes) => bytes,
        Err(Error::NotFound { .. }) => {
            resume.text_status = TextStatus::Missing;
            return Ok(resume);
        }
        Err(Error::Unprocessable { .. }) => {
            resume.text_status = TextStatus::Unprocessable;
            return Ok(resume);
        }
        Err(Error::Malformed { reason, .. }) => {
            stats.resume_text_failed += 1;
            resume.text_status = TextStatus::Failed(reason);
            return Ok(resume);
        }
        Err(e) if e.is_auth() => return Err(e),
        Err(e) => {
            // The caller decides: a stored version stays, a new opportunity is stored without
            // this text; either way it is fetched again next run.
            tracing::warn!(resume = %resume.id, error = %e, "could not download a resume file");
            stats.resume_text_failed += 1;
            stats.resumes_to_retry += 1;
            resume.text_status = TextStatus::Failed(format!("the download failed: {e}"));
            return Ok(resume);
        }
    };
    stats.resumes_downloaded += 1;
    // As many extractions at once as cores, so the deadline measures one file's work, not a
    // queue's; the wait for a slot is not counted. A file on its second try runs alone: if
    // the process dies again, the strike falls on that file only, not on its neighbours.
    let (slots, all) = extraction_slots();
    let wanted = if extractions.strikes(&resume.id) > 0 {
        *all
    } else {
        1
    };
    let _slots = slots.acquire_many(wanted).await;
    let marker = extractions.begin(&resume.id);
    let extracted = extractions
        .isolation()
        .extract(format, bytes, extract::EXTRACTION_DEADLINE)
        .await;
    let passing = matches!(
        extracted,
        Err(extract::Error::TimedOut { .. }
            | extract::Error::Crashed(_)
            | extract::Error::NoThread
            | extract::Error::NoWorker(_))
    );
    if matches!(
        extracted,
        Err(extract::Error::TimedOut { .. } | extract::Error::Crashed(_))
    ) {
        // A thread past its deadline may loop until the process ends; a child that died did
        // what would have killed this process. One strike, like a process that died in it:
        // the file is tried once more next run, and skipped after a second.
        marker.keep();
    } else {
        drop(marker);
    }
    match extracted {
        Ok(text) => {
            resume.text = Some(text);
            resume.text_status = TextStatus::Extracted;
        }
        Err(e) => {
            stats.resume_text_failed += 1;
            if passing {
                stats.resumes_to_retry += 1;
            }
            tracing::warn!(resume = %resume.id, error = %e, "could not extract resume text");
            resume.text_status = TextStatus::Failed(e.to_string());
        }
    }
    Ok(resume)
}

/// The slots for resume extractions of this process, one per core, and how many there are.
fn extraction_slots() -> &'static (tokio::sync::Semaphore, u32) {
    static SLOTS: std::sync::OnceLock<(tokio::sync::Semaphore, u32)> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores =
            std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(2));
        (tokio::sync::Semaphore::new(cores as usize), cores)
    })
}
