//! Markers of resume files being turned into text, so a file that kills or hangs the process
//! (a PDF whose drawing recurses without end, a compression bomb: no `catch_unwind` contains a
//! stack overflow, a failed allocation or an endless loop) costs two runs, not every run.
//!
//! Invariants:
//! - A marker (`DATA/extracting/<resume id>`) exists while its file is extracted and is removed
//!   when the extraction returns, whatever it returned, unless it ran past its deadline.
//! - A marker holds how many extractions of its file never finished. One found when a run
//!   starts (with the store's lock held, so no other sync is running) is of an extraction an
//!   earlier process never finished. Once is not enough to blame the file (the process may have
//!   been stopped, or killed for memory, while it read a good resume): the file is tried once
//!   more. After [`STRIKES`] unfinished extractions (one that ran past its deadline counts) it
//!   is not extracted again; its marker stays, so later runs skip it too. With the folder
//!   removed, the file is tried again when its opportunity is next fetched.
//! - A marker's name is a resume id or its sha256 (no personal data); it holds a number.
//! - With [`Isolation::Process`], an extraction whose child dies (memory limit, stack, crash)
//!   is unfinished too, but only the child died: the sync goes on and the marker stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::extract::Isolation;

/// The folder of markers inside a data folder.
const FOLDER: &str = "extracting";
/// Unfinished extractions after which a file is not extracted again.
pub(crate) const STRIKES: u32 = 2;

/// How many resume files syncs into `data_dir` no longer extract (their markers hold every
/// strike): shown by `rediscover status`.
pub fn skipped_resume_files(data_dir: &Path) -> usize {
    Extractions::open_quietly(data_dir).skipped()
}

/// How one sync run extracts resume text: where, and the markers of unfinished extractions.
#[derive(Debug)]
pub(crate) struct Extractions {
    isolation: Isolation,
    dir: PathBuf,
    /// Marker names of extractions earlier processes started and never finished, with how
    /// many times that happened.
    unfinished: HashMap<String, u32>,
}

impl Extractions {
    /// Reads the markers earlier processes left in `data_dir`; files are extracted as
    /// `isolation` says. Call with the store's lock held.
    pub(crate) fn open(data_dir: &Path, isolation: Isolation) -> Extractions {
        let mut extractions = Self::open_quietly(data_dir);
        extractions.isolation = isolation;
        let skipped = extractions.skipped();
        if skipped > 0 {
            tracing::warn!(
                resumes = skipped,
                folder = %extractions.dir.display(),
                "resume files whose text extraction died or ran past its deadline in two earlier runs are skipped"
            );
        }
        extractions
    }

    /// [`Extractions::open`] without its warning.
    fn open_quietly(data_dir: &Path) -> Extractions {
        let dir = data_dir.join(FOLDER);
        let unfinished: HashMap<String, u32> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_owned();
                    Some((name, strikes_in(&e.path())))
                })
                .collect(),
            Err(_) => HashMap::new(),
        };
        Extractions {
            isolation: Isolation::default(),
            dir,
            unfinished,
        }
    }

    /// Where this run extracts files.
    pub(crate) fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// How many files have every strike.
    fn skipped(&self) -> usize {
        self.unfinished.values().filter(|&&n| n >= STRIKES).count()
    }

    /// Whether this resume's file is not to be extracted: earlier processes died, hung or gave
    /// up at the deadline [`STRIKES`] times while extracting it.
    pub(crate) fn unfinished(&self, resume_id: &str) -> bool {
        self.strikes(resume_id) >= STRIKES
    }

    /// How many extractions of this resume's file earlier processes never finished.
    pub(crate) fn strikes(&self, resume_id: &str) -> u32 {
        self.unfinished
            .get(&marker_name(resume_id))
            .copied()
            .unwrap_or(0)
    }

    /// Marks this resume's file as being extracted until the returned marker is dropped. A
    /// marker that cannot be written only costs that protection (logged).
    pub(crate) fn begin(&self, resume_id: &str) -> Marker {
        let strikes = self.strikes(resume_id) + 1;
        let path = self.dir.join(marker_name(resume_id));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&path, strikes.to_string()));
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
    /// Leaves the marker in place, as a process that died in the extraction would: an
    /// extraction that ran past its deadline is one strike (on a loaded machine a large good
    /// file may be slow once; a looping one is slow every time).
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

/// The strikes a marker file holds. An empty or unreadable one (written by an older version,
/// or cut short by a power loss) counts as one.
fn strikes_in(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
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
    fn a_marker_lives_while_its_extraction_runs_and_a_file_gets_two_strikes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Extractions::open(dir.path(), Isolation::Thread);
        {
            let _marker = run.begin("r-1");
            assert!(dir.path().join(FOLDER).join("r-1").exists());
        }
        assert!(!dir.path().join(FOLDER).join("r-1").exists());
        // A process that dies mid-extraction leaves its marker: one strike, tried again.
        std::mem::forget(run.begin("r-2"));
        std::mem::forget(run.begin("../odd id"));
        let second = Extractions::open(dir.path(), Isolation::Thread);
        assert!(!second.unfinished("r-2") && !second.unfinished("../odd id"));
        assert!(!second.unfinished("r-1"));
        // The odd id's marker stays inside the folder.
        assert_eq!(
            std::fs::read_dir(dir.path().join(FOLDER)).unwrap().count(),
            2
        );
        // The second try finishes for one file and dies again on the other.
        drop(second.begin("../odd id"));
        std::mem::forget(second.begin("r-2"));
        let third = Extractions::open(dir.path(), Isolation::Thread);
        assert!(third.unfinished("r-2"), "two strikes");
        assert!(!third.unfinished("../odd id"), "finished on its second try");
        // An empty marker (an earlier version's, or one cut short by a power loss) is one
        // strike.
        std::fs::write(dir.path().join(FOLDER).join("r-old"), b"").expect("write");
        assert!(!Extractions::open(dir.path(), Isolation::Thread).unfinished("r-old"));
    }

    #[test]
    fn a_kept_marker_stays_and_long_ids_sharing_a_beginning_get_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Extractions::open(dir.path(), Isolation::Thread);
        run.begin("r-3").keep();
        let second = Extractions::open(dir.path(), Isolation::Thread);
        assert!(!second.unfinished("r-3"), "one deadline is one strike");
        second.begin("r-3").keep();
        assert!(Extractions::open(dir.path(), Isolation::Thread).unfinished("r-3"));
        let long = "é".repeat(150);
        let (a, b) = (format!("{long}a"), format!("{long}b"));
        assert_ne!(marker_name(&a), marker_name(&b));
        run.begin(&a).keep();
        Extractions::open(dir.path(), Isolation::Thread)
            .begin(&a)
            .keep();
        let next = Extractions::open(dir.path(), Isolation::Thread);
        assert!(next.unfinished(&a) && !next.unfinished(&b));
    }
}
