//! The local store: the synced talent pool on disk, the seam between sync and indexing.
//!
//! Layout under `DATA/store/`:
//! - `MANIFEST`: JSON naming the committed generation, its catalog, reference data and segments.
//!   It is replaced atomically (write, fsync, rename), so a reader sees a whole generation or the
//!   previous one, never a half-written one.
//! - `seg-N.dat`: segment files of length-prefixed, checksummed bincode records, never modified
//!   once published.
//! - `catalog-G.bin`: for generation G, every opportunity id with the segment and offset of its
//!   current record, its content fingerprint and a few counts.
//! - `reference-G.bin`: stages, archive reasons, postings, users and tags of generation G.
//! - the staging journal of the run in progress is the next segment in the making, `seg-N.dat`
//!   with N the manifest's `next_segment`: a commit publishes it by pointing a new catalog at it.
//!   A run killed at any moment leaves a journal that the next [`Store::begin`] replays, so the
//!   run resumes where it stopped; records torn by the kill fail their checksum and are dropped.
//!
//! Invariants: only a committed MANIFEST makes data visible; a record's bytes never change once
//! written; one writer at a time (a lock file). A published segment holds only records its
//! catalog points to: a commit that deletes or replaces records rewrites the segments that held
//! them (live records only) before it publishes, and the old files are removed after the switch,
//! so no deleted or superseded version of a candidate stays on disk. The store knows nothing of
//! Lever or of indexes.

mod format;
mod journal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::domain::{Candidate, Millis, ReferenceData};
use format::{Op, decode_op, encode_record};
pub use journal::{Batch, LeverTimes};

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST: &str = "MANIFEST";
const LOCK: &str = "LOCK";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the store does not hold what it should.
    #[error("{path}: store file is corrupt: {reason}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process is writing to the store.
    #[error("{path}: the store is being written by another rediscover process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The store was written by an incompatible version of rediscover.
    #[error(
        "store format version {found} is not supported (this build reads version {expected}); run a full sync into a new data folder"
    )]
    VersionMismatch {
        /// The version on disk.
        found: u32,
        /// The version this build supports.
        expected: u32,
    },
    /// A record could not be encoded.
    #[error("cannot encode a store record: {0}")]
    Encode(String),
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Result with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where sync stands: what the next incremental run starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Start of the last successful run: the base of the next incremental window.
    pub last_run_started_at: Option<Millis>,
    /// End of the last successful run.
    pub last_success_at: Option<Millis>,
    /// `deleted_at_start` for the next `/opportunities/deleted` call.
    pub deleted_checkpoint: Option<Millis>,
    /// Successful runs so far.
    pub runs: u64,
}

/// What a generation of the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// Opportunities (candidacies).
    pub opportunities: u64,
    /// Distinct people (contacts).
    pub contacts: u64,
    /// Resumes whose file text was extracted.
    pub resumes_with_text: u64,
    /// Notes (not deleted).
    pub notes: u64,
    /// Feedback forms (not deleted).
    pub feedback: u64,
    /// Postings in the reference data.
    pub postings: u64,
}

/// What a commit changed, for the indexes to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// The generation the commit made visible.
    pub generation: u64,
    /// The generation the commit was made on: one less than `generation` when the commit
    /// changed content, equal to it when it did not (then `changed` and `deleted` are empty,
    /// and say nothing of how `generation` differs from older ones).
    pub base_generation: u64,
    /// Opportunities that are new or whose content changed.
    pub changed: Vec<String>,
    /// Opportunities that existed and were removed.
    pub deleted: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    generation: u64,
    /// Segment ids the catalog points into.
    segments: Vec<u64>,
    /// The id the next journal (and so the next segment) takes.
    next_segment: u64,
    catalog: Option<String>,
    reference: Option<String>,
    counts: StoreCounts,
    sync: SyncState,
}

/// Where an opportunity's current record lives, and what it holds in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CatalogEntry {
    id: String,
    contact_id: String,
    segment: u64,
    offset: u64,
    len: u32,
    fingerprint: u64,
    resumes_with_text: u32,
    notes: u32,
    feedback: u32,
}

impl CatalogEntry {
    fn describe(candidate: &Candidate, segment: u64, offset: u64, len: u32, fp: u64) -> Self {
        CatalogEntry {
            id: candidate.id.clone(),
            contact_id: candidate.contact_id.clone(),
            segment,
            offset,
            len,
            fingerprint: fp,
            resumes_with_text: candidate
                .resumes
                .iter()
                .filter(|r| r.text.as_deref().is_some_and(|t| !t.is_empty()))
                .count() as u32,
            notes: candidate.notes.len() as u32,
            feedback: candidate.feedback.len() as u32,
        }
    }
}

/// A read-only view of the last committed generation of the store.
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
    catalog: Vec<CatalogEntry>,
    by_id: HashMap<String, usize>,
    segments: HashMap<u64, Mmap>,
    reference: ReferenceData,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("generation", &self.manifest.generation)
            .field("opportunities", &self.catalog.len())
            .finish()
    }
}

/// The store's own folder inside a data folder.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

impl Store {
    /// Opens the last committed generation under `data_dir/store`.
    ///
    /// A data folder with no store yet opens as an empty store of generation 0 (nothing is
    /// created on disk).
    pub fn open(data_dir: &Path) -> Result<Store> {
        let dir = store_dir(data_dir);
        let manifest_path = dir.join(MANIFEST);
        if !manifest_path.exists() {
            return Ok(Store {
                dir,
                manifest: Manifest {
                    format_version: FORMAT_VERSION,
                    next_segment: 1,
                    ..Manifest::default()
                },
                catalog: Vec::new(),
                by_id: HashMap::new(),
                segments: HashMap::new(),
                reference: ReferenceData::default(),
            });
        }
        let manifest = read_manifest(&manifest_path)?;
        let catalog: Vec<CatalogEntry> = match &manifest.catalog {
            Some(name) => read_bincode(&dir.join(name))?,
            None => Vec::new(),
        };
        let reference: ReferenceData = match &manifest.reference {
            Some(name) => read_bincode(&dir.join(name))?,
            None => ReferenceData::default(),
        };
        let mut segments = HashMap::new();
        for &segment in &manifest.segments {
            let path = segment_path(&dir, segment);
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: segment files are never modified after they are published; they are only
            // deleted once no manifest names them, which leaves existing maps valid on Unix.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
            segments.insert(segment, map);
        }
        let by_id = catalog
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        let store = Store {
            dir,
            manifest,
            catalog,
            by_id,
            segments,
            reference,
        };
        store.check_catalog();
        Ok(store)
    }

    /// Whether a generation was ever committed under `data_dir/store` (without one,
    /// [`Store::open`] opens an empty store).
    pub fn exists(data_dir: &Path) -> bool {
        store_dir(data_dir).join(MANIFEST).is_file()
    }

    /// The generation last committed under `data_dir/store`, read from disk now (0 when none
    /// was): tells a process holding an older [`Store`] that a sync committed since it opened.
    pub fn committed_generation(data_dir: &Path) -> Result<u64> {
        let path = store_dir(data_dir).join(MANIFEST);
        if !path.exists() {
            return Ok(0);
        }
        Ok(read_manifest(&path)?.generation)
    }

    /// Starts a write batch (one sync run); see [`Batch`].
    pub fn begin(data_dir: &Path) -> Result<Batch> {
        Batch::begin(data_dir)
    }

    /// The committed generation: 0 for a store that was never committed.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// What this generation holds.
    pub fn counts(&self) -> &StoreCounts {
        &self.manifest.counts
    }

    /// Where sync stands.
    pub fn sync_state(&self) -> &SyncState {
        &self.manifest.sync
    }

    /// Stages, archive reasons, postings, users and tags.
    pub fn reference(&self) -> &ReferenceData {
        &self.reference
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of opportunities.
    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    /// Whether the store holds no opportunity.
    pub fn is_empty(&self) -> bool {
        self.catalog.is_empty()
    }

    /// Every opportunity id, in id order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.catalog.iter().map(|e| e.id.as_str())
    }

    /// Whether the store holds an opportunity (a map lookup).
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The content fingerprint of an opportunity's stored record.
    pub fn fingerprint(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).map(|&i| self.catalog[i].fingerprint)
    }

    /// The contact (person) an opportunity belongs to.
    pub fn contact_of(&self, id: &str) -> Option<&str> {
        self.by_id
            .get(id)
            .map(|&i| self.catalog[i].contact_id.as_str())
    }

    /// Reads one opportunity: a map lookup and the decoding of one record.
    pub fn get(&self, id: &str) -> Result<Option<Candidate>> {
        match self.by_id.get(id) {
            Some(&i) => self.read(&self.catalog[i]).map(Some),
            None => Ok(None),
        }
    }

    /// Every opportunity, in id order.
    pub fn candidates(&self) -> impl Iterator<Item = Result<Candidate>> + '_ {
        self.catalog.iter().map(|e| self.read(e))
    }

    fn read(&self, entry: &CatalogEntry) -> Result<Candidate> {
        let path = segment_path(&self.dir, entry.segment);
        let map = self
            .segments
            .get(&entry.segment)
            .ok_or_else(|| Error::corrupt(&path, "segment named by the catalog is not open"))?;
        let start = entry.offset as usize;
        let payload = format::record_payload(map, start, entry.len as usize)
            .map_err(|reason| Error::corrupt(&path, format!("at offset {start}: {reason}")))?;
        match decode_op(payload) {
            Ok(Op::Upsert(candidate)) => Ok(*candidate),
            Ok(_) => Err(Error::corrupt(
                &path,
                format!("at offset {start}: not a candidate record"),
            )),
            Err(reason) => Err(Error::corrupt(
                &path,
                format!("at offset {start}: {reason}"),
            )),
        }
    }

    /// Warns about records the catalog places beyond the end of their segment (a truncated
    /// file: a full disk, an interrupted copy). They are not an error for the store: each reads
    /// as corrupt, like a record whose checksum fails, so answers leave that person out and the
    /// next sync replaces or drops the record while every other record stays readable.
    fn check_catalog(&self) {
        let outside = self
            .catalog
            .iter()
            .filter(|entry| {
                let map = self.segments.get(&entry.segment);
                !map.is_some_and(|m| {
                    (entry.offset as usize)
                        .checked_add(format::HEADER_LEN + entry.len as usize)
                        .is_some_and(|end| end <= m.len())
                })
            })
            .count();
        if outside > 0 {
            tracing::warn!(
                records = outside,
                store = %self.dir.display(),
                "store records lie beyond the end of a truncated segment; they read as corrupt and the next sync fetches them again"
            );
        }
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("seg-{segment}.dat"))
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(path, e.to_string()))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(Error::VersionMismatch {
            found: manifest.format_version,
            expected: FORMAT_VERSION,
        });
    }
    Ok(manifest)
}

fn read_bincode<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let payload = format::record_payload(&bytes, 0, bytes.len().saturating_sub(format::HEADER_LEN))
        .map_err(|reason| Error::corrupt(path, reason))?;
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| Error::corrupt(path, e.to_string()))
}

/// Writes `value` as one checksummed record to `path` atomically (tmp file, fsync, rename).
fn write_bincode_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Encode(e.to_string()))?;
    write_atomic(path, &encode_record(&payload))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Computes the counts of a catalog.
fn count(catalog: &[CatalogEntry], reference: &ReferenceData) -> StoreCounts {
    let contacts: HashSet<&str> = catalog.iter().map(|e| e.contact_id.as_str()).collect();
    StoreCounts {
        opportunities: catalog.len() as u64,
        contacts: contacts.len() as u64,
        resumes_with_text: catalog.iter().map(|e| u64::from(e.resumes_with_text)).sum(),
        notes: catalog.iter().map(|e| u64::from(e.notes)).sum(),
        feedback: catalog.iter().map(|e| u64::from(e.feedback)).sum(),
        postings: reference.postings.len() as u64,
    }
}

/// What a commit publishes.
struct Publication<'a> {
    generation: u64,
    catalog: BTreeMap<String, CatalogEntry>,
    /// New reference data, or `None` to keep the base's.
    reference: Option<&'a ReferenceData>,
    sync: SyncState,
    next_segment: u64,
}

/// Publishes a generation: the caller has fsynced every segment the catalog points into.
fn publish(dir: &Path, base: &Store, publication: Publication<'_>) -> Result<()> {
    let Publication {
        generation,
        catalog,
        reference,
        sync,
        next_segment,
    } = publication;
    let previous = &base.manifest;
    let catalog: Vec<CatalogEntry> = catalog.into_values().collect();
    let catalog_name = format!("catalog-{generation}.bin");
    write_bincode_atomic(&dir.join(&catalog_name), &catalog)?;
    let reference_name = match reference {
        Some(reference) => {
            let name = format!("reference-{generation}.bin");
            write_bincode_atomic(&dir.join(&name), reference)?;
            Some(name)
        }
        None => previous.reference.clone(),
    };
    let mut segments: Vec<u64> = catalog.iter().map(|e| e.segment).collect();
    segments.sort_unstable();
    segments.dedup();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        generation,
        segments,
        next_segment,
        catalog: Some(catalog_name),
        reference: reference_name,
        counts: count(&catalog, reference.unwrap_or(&base.reference)),
        sync,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Encode(e.to_string()))?;
    write_atomic(&dir.join(MANIFEST), &json)?;
    sync_dir(dir)?;
    collect_garbage(dir, &manifest);
    Ok(())
}

/// Removes files no manifest names any more, among them the segments that held deleted or
/// replaced records. A failure leaves the file behind (logged); the next commit tries again.
fn collect_garbage(dir: &Path, manifest: &Manifest) {
    let keep: HashSet<String> = manifest
        .segments
        .iter()
        .map(|s| format!("seg-{s}.dat"))
        .chain(manifest.catalog.clone())
        .chain(manifest.reference.clone())
        .chain([MANIFEST.to_string(), LOCK.to_string()])
        .collect();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("seg-")
            || name.starts_with("catalog-")
            || name.starts_with("reference-")
            || name.ends_with(".tmp");
        if ours
            && !keep.contains(&name)
            && let Err(e) = fs::remove_file(entry.path())
        {
            tracing::warn!(file = %name, error = %e, "could not remove an unused store file");
        }
    }
}

#[cfg(test)]
mod tests;
