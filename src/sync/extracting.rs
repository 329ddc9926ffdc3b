//! Markers of resume files being turned into text, so a file that kills or hangs the process
//! (a PDF whose drawing recurses without end, a compression bomb: no `catch_unwind` contains a
//! stack overflow, a failed allocation or an endless loop) costs one run, not every run.
//!
//! Invariants:
//! - A marker (`DATA/extracting/<resume id>`) exists while its file is extracted and is removed
//!   when the extraction returns, whatever it returned, unless it ran past its deadline.
//! - Markers found when a run starts (with the store's lock held, so no other sync is running)
//!   are of extractions an earlier process never finished: those files are not extracted again.
//!   Their markers stay, so later runs skip them too; removing the folder tries them again.
//! - A marker's name is a resume id (no personal data) and it is empty.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The folder of markers inside a data folder.
const FOLDER: &str = "extracting";

/// The markers of one sync run.
#[derive(Debug)]
pub(crate) struct Extractions {
    dir: PathBuf,
    /// Resume ids whose extraction an earlier process started and never finished.
    unfinished: HashSet<String>,
}

impl Extractions {
    /// Reads the markers earlier processes left in `data_dir`. Call with the store's lock held.
    pub(crate) fn open(data_dir: &Path) -> Extractions {
        let dir = data_dir.join(FOLDER);
        let unfinished: HashSet<String> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect(),
            Err(_) => HashSet::new(),
        };
        if !unfinished.is_empty() {
            tracing::warn!(
                resumes = unfinished.len(),
                folder = %dir.display(),
                "resume files whose text extraction an earlier run never finished are skipped"
            );
        }
        Extractions { dir, unfinished }
    }

    /// Whether an earlier process died or hung while extracting this resume's file.
    pub(crate) fn unfinished(&self, resume_id: &str) -> bool {
        self.unfinished.contains(&marker_name(resume_id))
    }

    /// Marks this resume's file as being extracted until the returned marker is dropped. A
    /// marker that cannot be written only costs that protection (logged).
    pub(crate) fn begin(&self, resume_id: &str) -> Marker {
        let path = self.dir.join(marker_name(resume_id));
        let written = std::fs::create_dir_all(&self.dir).and_then(|()| std::fs::write(&path, b""));
        match written {
            Ok(()) => Marker { path: Some(path) },
            Err(e) => {
                tracing::warn!(resume = %resume_id, error = %e, "could not mark a resume extraction");
                Marker { path: None }
            }
        }
    }
}

/// A resume file being extracted; dropping it removes its marker.
#[derive(Debug)]
pub(crate) struct Marker {
    path: Option<PathBuf>,
}

impl Marker {
    /// Leaves the marker in place: an extraction that never ended, so later runs skip the
    /// file as they skip one an earlier process died on.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A file name for a resume id: Lever's ids are UUIDs; anything else is named by its sha256, so
/// two long ids that share a beginning never share a marker.
fn marker_name(resume_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let plain = !resume_id.is_empty()
        && resume_id.len() <= 100
        && resume_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        resume_id.to_owned()
    } else {
        let digest = Sha256::digest(resume_id.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("x{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_lives_while_its_extraction_runs_and_one_left_behind_is_unfinished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Extractions::open(dir.path());
        {
            let _marker = run.begin("r-1");
            assert!(dir.path().join(FOLDER).join("r-1").exists());
        }
        assert!(!dir.path().join(FOLDER).join("r-1").exists());
        // A process that dies mid-extraction leaves its marker.
        std::mem::forget(run.begin("r-2"));
        std::mem::forget(run.begin("../odd id"));
        let next = Extractions::open(dir.path());
        assert!(next.unfinished("r-2") && next.unfinished("../odd id"));
        assert!(!next.unfinished("r-1"));
        // The odd id's marker stays inside the folder.
        assert_eq!(
            std::fs::read_dir(dir.path().join(FOLDER)).unwrap().count(),
            2
        );
    }

    #[test]
    fn a_kept_marker_stays_and_long_ids_sharing_a_beginning_get_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Extractions::open(dir.path());
        run.begin("r-3").keep();
        assert!(Extractions::open(dir.path()).unfinished("r-3"));
        let long = "é".repeat(150);
        let (a, b) = (format!("{long}a"), format!("{long}b"));
        assert_ne!(marker_name(&a), marker_name(&b));
        std::mem::forget(run.begin(&a));
        let next = Extractions::open(dir.path());
        assert!(next.unfinished(&a) && !next.unfinished(&b));
    }
}
