//! Write batches: one per sync run, journaled record by record so a killed run resumes.
//!
//! The journal of a batch is the segment file the commit will publish (`seg-N.dat` with
//! N = the manifest's `next_segment`); until a manifest names it, no reader looks at it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::format::{self, HEADER_LEN, Op, decode_op, encode_op, encode_record, fingerprint};
use super::{
    CatalogEntry, Commit, Error, LOCK, Publication, Result, Store, SyncState, publish,
    segment_path, store_dir,
};
use crate::domain::{Candidate, ReferenceData};

/// Rewritten segments are cut at about this size, so purging a record later rewrites a bounded
/// amount of its neighbours (a record bigger than this gets a segment of its own).
const SEGMENT_TARGET: u64 = 8 << 20;

enum Staged {
    /// Where the record is, and Lever's times of the version staged.
    Upsert(CatalogEntry, LeverTimes),
    Delete,
}

/// Lever's update and last-interaction times of a staged opportunity: a resumed run compares
/// them with the listing to tell what Lever changed since the interrupted run fetched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeverTimes {
    /// The opportunity's `updatedAt`.
    pub updated_at: Option<crate::domain::Millis>,
    /// The opportunity's `lastInteractionAt`.
    pub last_interaction_at: Option<crate::domain::Millis>,
}

impl LeverTimes {
    /// The times of `candidate`.
    pub fn of(candidate: &Candidate) -> LeverTimes {
        LeverTimes {
            updated_at: candidate.updated_at,
            last_interaction_at: candidate.last_interaction_at,
        }
    }
}

/// The writes of one sync run: staged in a journal, published all at once by [`Batch::commit`].
///
/// Dropping a batch without committing keeps its journal: the next [`Store::begin`] replays it
/// and the run resumes. [`Batch::discard`] throws it away instead.
pub struct Batch {
    dir: PathBuf,
    _lock: File,
    base: Store,
    segment: u64,
    journal: File,
    journal_len: u64,
    staged: BTreeMap<String, Staged>,
    reference: Option<ReferenceData>,
    checkpoints: HashMap<String, String>,
    resumed: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("dir", &self.dir)
            .field("segment", &self.segment)
            .field("staged", &self.staged.len())
            .field("resumed", &self.resumed)
            .finish()
    }
}

impl Batch {
    pub(super) fn begin(data_dir: &Path) -> Result<Batch> {
        let dir = store_dir(data_dir);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        keep_private(data_dir)?;
        let lock_path = dir.join(LOCK);
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let base = Store::open(data_dir)?;
        let segment = base.manifest.next_segment.max(1);
        let path = segment_path(&dir, segment);
        let mut batch = Batch {
            journal: OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?,
            dir,
            _lock: lock,
            base,
            segment,
            journal_len: 0,
            staged: BTreeMap::new(),
            reference: None,
            checkpoints: HashMap::new(),
            resumed: false,
        };
        batch.replay()?;
        Ok(batch)
    }

    /// Replays what a crashed run left in the journal and cuts off a torn tail.
    fn replay(&mut self) -> Result<()> {
        let path = self.journal_path();
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let mut at = 0;
        while let Some((payload, next)) = format::next_record(&bytes, at) {
            let Ok(op) = decode_op(payload) else { break };
            self.apply(op, at as u64, payload);
            at = next;
        }
        self.resumed = at > 0;
        if at < bytes.len() {
            self.journal
                .set_len(at as u64)
                .map_err(|e| Error::io(&path, e))?;
        }
        self.journal_len = at as u64;
        use std::io::Seek;
        self.journal
            .seek(std::io::SeekFrom::Start(self.journal_len))
            .map_err(|e| Error::io(&path, e))?;
        Ok(())
    }

    fn apply(&mut self, op: Op, offset: u64, payload: &[u8]) {
        match op {
            Op::Upsert(candidate) => {
                let entry = CatalogEntry::describe(
                    &candidate,
                    self.segment,
                    offset,
                    payload.len() as u32,
                    fingerprint(payload),
                );
                let times = LeverTimes::of(&candidate);
                self.staged
                    .insert(candidate.id.clone(), Staged::Upsert(entry, times));
            }
            Op::Delete(id) => {
                self.staged.insert(id, Staged::Delete);
            }
            Op::Reference(reference) => self.reference = Some(reference),
            Op::Checkpoint { key, value } => {
                self.checkpoints.insert(key, value);
            }
        }
    }

    fn journal_path(&self) -> PathBuf {
        segment_path(&self.dir, self.segment)
    }

    /// Appends one operation to the journal (it survives a kill from here on) and applies it.
    fn log(&mut self, op: Op) -> Result<()> {
        let payload = encode_op(&op).map_err(Error::Encode)?;
        let record = encode_record(&payload);
        let offset = self.journal_len;
        let path = self.journal_path();
        self.journal
            .write_all(&record)
            .map_err(|e| Error::io(&path, e))?;
        self.journal_len += record.len() as u64;
        self.apply(op, offset, &payload);
        Ok(())
    }

    /// Whether a previous run of this batch was interrupted and its work replayed.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The committed store this batch writes on top of.
    pub fn base(&self) -> &Store {
        &self.base
    }

    /// Whether this run already upserted or deleted the opportunity (skip it on resume).
    pub fn is_staged(&self, id: &str) -> bool {
        self.staged.contains_key(id)
    }

    /// Lever's times of the version of `id` this run (or the interrupted run it resumes)
    /// upserted, unless it deleted it after.
    pub fn staged_times(&self, id: &str) -> Option<LeverTimes> {
        match self.staged.get(id) {
            Some(Staged::Upsert(_, times)) => Some(*times),
            _ => None,
        }
    }

    /// The opportunities this run (or the interrupted run it resumes) upserted so far and did
    /// not delete after, in id order.
    pub fn staged_upserts(&self) -> impl Iterator<Item = &str> {
        self.staged
            .iter()
            .filter(|(_, staged)| matches!(staged, Staged::Upsert(..)))
            .map(|(id, _)| id.as_str())
    }

    /// The opportunities this run (or the interrupted run it resumes) deleted so far and did
    /// not upsert after, in id order.
    pub fn staged_deletes(&self) -> impl Iterator<Item = &str> {
        self.staged
            .iter()
            .filter(|(_, staged)| matches!(staged, Staged::Delete))
            .map(|(id, _)| id.as_str())
    }

    /// How many opportunities this run upserted or deleted so far.
    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// A free-form resume value this run recorded.
    pub fn checkpoint(&self, key: &str) -> Option<&str> {
        self.checkpoints.get(key).map(String::as_str)
    }

    /// Records a free-form resume value for this run.
    pub fn set_checkpoint(&mut self, key: &str, value: String) -> Result<()> {
        self.log(Op::Checkpoint {
            key: key.to_string(),
            value,
        })
    }

    /// Inserts or replaces an opportunity; the last write of a run wins.
    pub fn upsert(&mut self, candidate: Candidate) -> Result<()> {
        self.log(Op::Upsert(Box::new(candidate)))
    }

    /// Removes an opportunity; removing an unknown one is not an error.
    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.log(Op::Delete(id.to_string()))
    }

    /// Replaces the reference data at commit.
    pub fn set_reference(&mut self, reference: ReferenceData) -> Result<()> {
        self.log(Op::Reference(reference))
    }

    /// Throws this run's journal away: nothing of it is kept.
    pub fn discard(self) -> Result<()> {
        let path = self.journal_path();
        drop(self.journal);
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// Publishes this run atomically as the next generation.
    ///
    /// Records identical to the stored ones are not changes, unless the stored copy no longer
    /// reads back (its checksum fails): then the new copy replaces it. When nothing changed,
    /// the generation stays and only the sync state is updated.
    ///
    /// A record that fails its checksum while its segment is rewritten is dropped, never
    /// copied forward: the commit reports it deleted (so the indexes forget it too) and the
    /// caller can fetch it again ([`Batch::staged_deletes`] tells its own deletions apart).
    pub fn commit(self, sync: SyncState) -> Result<Commit> {
        let journal_path = self.journal_path();
        self.journal
            .sync_all()
            .map_err(|e| Error::io(&journal_path, e))?;
        let mut catalog: BTreeMap<String, CatalogEntry> = self
            .base
            .catalog
            .iter()
            .map(|e| (e.id.clone(), e.clone()))
            .collect();
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        for (id, staged) in self.staged {
            match staged {
                Staged::Upsert(entry, _) => {
                    if self.base.fingerprint(&id) != Some(entry.fingerprint)
                        || !stored_intact(&self.base, &id)
                    {
                        catalog.insert(id.clone(), entry);
                        changed.push(id);
                    }
                }
                Staged::Delete => {
                    if catalog.remove(&id).is_some() {
                        deleted.push(id);
                    }
                }
            }
        }
        let reference = self.reference.filter(|r| r != self.base.reference());
        let content_changed = !changed.is_empty() || !deleted.is_empty() || reference.is_some();
        let mut next_segment = self.segment + 1;
        // Without a content change the catalog keeps its records (and the generation its
        // catalog file), so there is nothing new to purge.
        let (rewritten, unreadable) = if content_changed {
            purge_dead_records(
                &self.dir,
                &self.base,
                (self.segment, &journal_path, self.journal_len),
                &mut next_segment,
                &mut catalog,
            )?
        } else {
            (0, Vec::new())
        };
        for id in unreadable {
            changed.retain(|c| *c != id);
            if self.base.contains(&id) {
                deleted.push(id);
            }
        }
        if rewritten > 0 {
            tracing::info!(
                segments = rewritten,
                deleted = deleted.len(),
                "store segments rewritten without their dead records"
            );
        }
        let generation = self.base.generation() + u64::from(content_changed);
        publish(
            &self.dir,
            &self.base,
            Publication {
                generation,
                catalog,
                reference: reference.as_ref(),
                sync,
                next_segment,
            },
        )?;
        Ok(Commit {
            generation,
            base_generation: self.base.generation(),
            changed,
            deleted,
        })
    }
}

/// Rewrites, live records only, every segment that would be published holding a record no
/// catalog entry points to: a deleted opportunity, a replaced version, an unchanged copy, or the
/// journal's checkpoints and reference data (and a journal bigger than [`SEGMENT_TARGET`]). The
/// dead bytes go when the old files are removed after the manifest switch, so no published
/// segment keeps a deleted or superseded record.
///
/// Live records of those segments are copied into new segments of about [`SEGMENT_TARGET`]
/// bytes each, numbered from `next_segment` (advanced past them), fsynced with their folder
/// before the caller publishes. Until then no manifest names them: a crash leaves the previous
/// generation and the journal as they were. A record that fails its checksum is not copied:
/// it leaves the catalog. Returns how many segments were rewritten and the ids of the records
/// dropped that way.
fn purge_dead_records(
    dir: &Path,
    base: &Store,
    (journal_segment, journal_path, journal_len): (u64, &Path, u64),
    next_segment: &mut u64,
    catalog: &mut BTreeMap<String, CatalogEntry>,
) -> Result<(usize, Vec<String>)> {
    let mut live: HashMap<u64, u64> = HashMap::new();
    for entry in catalog.values() {
        *live.entry(entry.segment).or_default() += HEADER_LEN as u64 + u64::from(entry.len);
    }
    let size_of = |segment: u64| {
        if segment == journal_segment {
            Some(journal_len)
        } else {
            base.segments.get(&segment).map(|m| m.len() as u64)
        }
    };
    // A journal bigger than a segment is cut too, so a later purge stays bounded.
    let dirty: HashSet<u64> = live
        .iter()
        .filter(|&(&segment, &bytes)| {
            size_of(segment).is_none_or(|size| size != bytes)
                || (segment == journal_segment && bytes > SEGMENT_TARGET)
        })
        .map(|(&segment, _)| segment)
        .collect();
    if dirty.is_empty() {
        return Ok((0, Vec::new()));
    }
    let journal = if dirty.contains(&journal_segment) {
        let file = File::open(journal_path).map_err(|e| Error::io(journal_path, e))?;
        // SAFETY: the journal was fsynced and nothing writes it any more.
        Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(journal_path, e))?)
    } else {
        None
    };
    let mut out: Option<(PathBuf, std::io::BufWriter<File>)> = None;
    let mut out_segment = *next_segment;
    let mut offset = 0u64;
    let mut unreadable = Vec::new();
    for entry in catalog.values_mut().filter(|e| dirty.contains(&e.segment)) {
        let source_path = segment_path(dir, entry.segment);
        let source: &[u8] = if entry.segment == journal_segment {
            journal.as_deref().unwrap_or_default()
        } else {
            base.segments
                .get(&entry.segment)
                .map(|m| &m[..])
                .ok_or_else(|| Error::corrupt(&source_path, "segment to rewrite is not open"))?
        };
        let start = entry.offset as usize;
        let end = start.saturating_add(HEADER_LEN + entry.len as usize);
        // A record past the end of a truncated segment is unreadable like one whose checksum
        // fails: dropped, reported deleted, and fetched again.
        let record = source
            .get(start..end)
            .ok_or_else(|| {
                "the record lies past the end of its segment (a truncated file)".to_owned()
            })
            .and_then(|record| {
                format::record_payload(record, 0, entry.len as usize).map(|_| record)
            });
        let record = match record {
            Ok(record) => record,
            Err(reason) => {
                // Ids are not personal data; the record's bytes are not logged.
                tracing::warn!(id = %entry.id, segment = entry.segment, offset = start, %reason, "a stored record is unreadable; it is dropped instead of copied");
                unreadable.push(entry.id.clone());
                continue;
            }
        };
        if offset > 0 && offset + record.len() as u64 > SEGMENT_TARGET {
            if let Some((path, writer)) = out.take() {
                finish_segment(&path, writer)?;
            }
            out_segment += 1;
            offset = 0;
        }
        let (path, writer) = match &mut out {
            Some(open) => open,
            None => {
                let path = segment_path(dir, out_segment);
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                out.insert((path, std::io::BufWriter::new(file)))
            }
        };
        writer.write_all(record).map_err(|e| Error::io(path, e))?;
        entry.segment = out_segment;
        entry.offset = offset;
        offset += record.len() as u64;
    }
    if let Some((path, writer)) = out.take() {
        finish_segment(&path, writer)?;
        *next_segment = out_segment + 1;
    }
    for id in &unreadable {
        catalog.remove(id);
    }
    super::sync_dir(dir)?;
    Ok((dirty.len(), unreadable))
}

/// Whether the stored record of `id` still reads back (its checksum holds); `true` when the
/// store has none.
fn stored_intact(base: &Store, id: &str) -> bool {
    let Some(entry) = base.by_id.get(id).map(|&i| &base.catalog[i]) else {
        return true;
    };
    base.segments.get(&entry.segment).is_some_and(|map| {
        format::record_payload(map, entry.offset as usize, entry.len as usize).is_ok()
    })
}

/// Flushes and fsyncs one rewritten segment.
fn finish_segment(path: &Path, writer: std::io::BufWriter<File>) -> Result<()> {
    let file = writer
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Takes group and other users' access away from the data folder: it holds candidate data
/// (resumes, notes, feedback), and the files inside are created with the process's umask.
#[cfg(unix)]
fn keep_private(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(data_dir, fs::Permissions::from_mode(mode & !0o077))
            .map_err(|e| Error::io(data_dir, e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_private(_data_dir: &Path) -> Result<()> {
    Ok(())
}
