//! Writing generations: [`rebuild`] from every candidate, [`update`] from the previous
//! generation plus changes. Candidates are processed in batches so embedding sees many texts
//! at once (length bucketing, all cores) while memory stays bounded.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use super::cache::VectorCache;
use super::chunk::{self, Passage};
use super::generation::{self, Meta};
use super::keyword::{KeywordIndex, KeywordWriter};
use super::vector::VectorWriter;
use super::{CandidateRow, Embedder, Error, IndexStats, Progress, ProgressEvent, rows};
use sha2::{Digest, Sha256};

use crate::domain::{ArchiveReasonType, Candidate, ReferenceData};

/// Sub-directory of a generation holding the tantivy index.
pub(crate) const KEYWORD_DIR: &str = "keyword";
/// Candidates embedded together.
const BATCH: usize = 64;
/// `update` compacts the vector index when tombstones pass this share of all vectors.
pub const COMPACT_RATIO: f64 = 0.2;

/// Builds a new generation from every candidate and makes it current.
pub fn rebuild(
    data_dir: &Path,
    generation: u64,
    candidates: impl Iterator<Item = Candidate>,
    reference: &ReferenceData,
    embedder: &Embedder,
    progress: &Progress,
) -> Result<IndexStats, Error> {
    let candidates = candidates.map(Ok::<_, std::convert::Infallible>);
    try_rebuild(
        data_dir, generation, candidates, reference, embedder, None, progress,
    )
}

/// [`rebuild`] from a fallible source (such as the store): the first error aborts the build,
/// removes the partial generation and leaves the current one in place. Passages whose vector is
/// in `cache` (computed while a sync was fetching) are not embedded again.
pub fn try_rebuild<E>(
    data_dir: &Path,
    generation: u64,
    candidates: impl Iterator<Item = Result<Candidate, E>>,
    reference: &ReferenceData,
    embedder: &Embedder,
    cache: Option<&VectorCache>,
    progress: &Progress,
) -> Result<IndexStats, Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let (name, dir) = generation::create_dir(data_dir, generation)?;
    let written = (|| {
        let keyword_dir = make_dir(&dir.join(KEYWORD_DIR))?;
        let keyword = KeywordWriter::create(&keyword_dir)?;
        let hint = candidates.size_hint().0;
        let vectors = VectorWriter::create(&dir, hint.saturating_mul(4))?;
        let mut job = Job {
            rows: Vec::with_capacity(hint),
            keyword,
            vectors,
            reference,
            embedder,
            cache,
            progress,
            cached_vectors: 0,
        };
        progress.emit(ProgressEvent::Start {
            phase: "indexing",
            total: Some(hint as u64).filter(|&n| n > 0),
        });
        job.add_all(candidates)?;
        progress.emit(ProgressEvent::Finish);
        job.finish(&dir, generation)
    })();
    finish_generation(data_dir, &name, &dir, written)
}

/// Builds the next generation from the current one: `changed` candidates (new or modified)
/// replace their previous rows, `deleted` opportunity ids are removed. Without a current
/// generation this is a rebuild from `changed`.
///
/// Replaced and deleted rows stay as emptied tombstones ([`CandidateRow::tombstone`]: the
/// ordinal is kept, nothing about the person); their vectors are tombstoned and never
/// returned, and their passage texts blanked. Their keyword documents are deleted and the
/// segments that held them merged, so no deleted document stays in the keyword index. When
/// tombstones pass [`COMPACT_RATIO`] of all vectors the live vectors are copied into a fresh
/// graph (no re-embedding). Passages whose vector is in `cache` are not
/// embedded again.
#[allow(clippy::too_many_arguments)]
pub fn update(
    data_dir: &Path,
    generation: u64,
    changed: impl Iterator<Item = Candidate>,
    deleted: &[String],
    reference: &ReferenceData,
    embedder: &Embedder,
    cache: Option<&VectorCache>,
    progress: &Progress,
) -> Result<IndexStats, Error> {
    let Some(prev) = generation::current_dir(data_dir)? else {
        let changed = changed.map(Ok::<_, std::convert::Infallible>);
        return try_rebuild(
            data_dir, generation, changed, reference, embedder, cache, progress,
        );
    };
    let meta = generation::read_meta(&prev)?;
    // The next generation links the previous one's segment files: a damaged one would be
    // carried into every later generation. Opening them all finds it (`Error::Corrupt`, which
    // the caller answers with a rebuild).
    KeywordIndex::open(&prev.join(KEYWORD_DIR))?;
    if !meta.made_by(embedder) {
        let short = |sha: &str| sha.chars().take(12).collect::<String>();
        let loaded = if meta.model_sha256 == embedder.model_sha256() {
            format!(
                "{} with another tokenizer or settings",
                short(embedder.model_sha256())
            )
        } else {
            short(embedder.model_sha256())
        };
        return Err(Error::ModelChanged {
            index: short(&meta.model_sha256),
            loaded,
        });
    }
    // Rows keep their furthest stage as a position in Lever's stage list: once the list
    // changes, the positions of unchanged rows no longer compare with new ones.
    if meta.stage_ids.as_deref() != Some(stage_ids(reference).as_slice()) {
        return Err(Error::StagesChanged);
    }
    // Unchanged rows and documents keep the stage and archive reason names (and the hired
    // flag) of the list they were built with: a renamed stage or reason would be found only
    // in the candidates that changed since.
    if meta
        .reference_names
        .as_deref()
        .is_some_and(|names| names != reference_names(reference))
    {
        return Err(Error::StagesChanged);
    }
    // Last version wins when a candidate appears twice.
    let mut changed: Vec<Candidate> = changed.collect();
    let mut seen = HashSet::new();
    changed.reverse();
    changed.retain(|c| seen.insert(c.id.clone()));
    changed.reverse();
    let mut old_rows = rows::read(&prev)?;
    let gone: HashSet<&str> = changed
        .iter()
        .map(|c| c.id.as_str())
        .chain(deleted.iter().map(String::as_str))
        .collect();
    let mut dropped: HashSet<u32> = HashSet::new();
    for (ordinal, row) in old_rows.iter_mut().enumerate() {
        if !row.deleted && gone.contains(row.opportunity_id.as_str()) {
            dropped.insert(ordinal as u32);
            *row = CandidateRow::tombstone();
        } else if row.deleted && *row != CandidateRow::tombstone() {
            // A tombstone written before tombstones were emptied.
            *row = CandidateRow::tombstone();
        }
    }

    let (name, dir) = generation::create_dir(data_dir, generation)?;
    let written = (|| {
        let keyword_dir = make_dir(&dir.join(KEYWORD_DIR))?;
        link_files(&prev.join(KEYWORD_DIR), &keyword_dir)?;
        let keyword = KeywordWriter::continue_in(&keyword_dir)?;
        for &ordinal in &dropped {
            keyword.delete(ordinal);
        }
        let (vectors, compacted) =
            VectorWriter::continue_from(&prev, &dir, &|o| dropped.contains(&o), COMPACT_RATIO)?;
        tracing::info!(
            changed = changed.len(),
            deleted = dropped.len(),
            compacted,
            "updating the index"
        );
        let mut job = Job {
            rows: old_rows,
            keyword,
            vectors,
            reference,
            embedder,
            cache,
            progress,
            cached_vectors: 0,
        };
        progress.emit(ProgressEvent::Start {
            phase: "updating",
            total: Some(changed.len() as u64),
        });
        job.add_all(changed.into_iter().map(Ok::<_, std::convert::Infallible>))?;
        progress.emit(ProgressEvent::Finish);
        job.finish(&dir, generation)
    })();
    finish_generation(data_dir, &name, &dir, written)
}

/// The ids of Lever's pipeline stages, in order.
fn stage_ids(reference: &ReferenceData) -> Vec<String> {
    reference.stages.iter().map(|s| s.id.clone()).collect()
}

/// A checksum (hex sha256) of the names of the stages and of the archive reasons with their
/// types: what rows and keyword documents copy from the reference data.
fn reference_names(reference: &ReferenceData) -> String {
    let mut hasher = Sha256::new();
    for stage in &reference.stages {
        for part in [stage.id.as_str(), stage.text.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    hasher.update([1]);
    for reason in &reference.archive_reasons {
        let kind = match reason.reason_type {
            ArchiveReasonType::Hired => "hired",
            ArchiveReasonType::NonHired => "non-hired",
        };
        for part in [reason.id.as_str(), reason.text.as_str(), kind] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    super::embed::hex(&hasher.finalize())
}

/// Switches to a fully written generation, or removes a failed one.
fn finish_generation(
    data_dir: &Path,
    name: &str,
    dir: &Path,
    written: Result<IndexStats, Error>,
) -> Result<IndexStats, Error> {
    match written {
        Ok(mut stats) => {
            generation::switch_to(data_dir, name)?;
            stats.bytes_on_disk = super::dir_size(dir);
            Ok(stats)
        }
        Err(e) => {
            if let Err(cleanup) = std::fs::remove_dir_all(dir) {
                tracing::warn!(error = %cleanup, "could not remove a failed index generation");
            }
            Err(e)
        }
    }
}

/// One generation being written.
struct Job<'a> {
    rows: Vec<CandidateRow>,
    keyword: KeywordWriter,
    vectors: VectorWriter,
    reference: &'a ReferenceData,
    embedder: &'a Embedder,
    cache: Option<&'a VectorCache>,
    progress: &'a Progress,
    /// Vectors taken from `cache` instead of embedded.
    cached_vectors: u64,
}

impl Job<'_> {
    fn add_all<E>(
        &mut self,
        candidates: impl Iterator<Item = Result<Candidate, E>>,
    ) -> Result<(), Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut batch = Vec::with_capacity(BATCH);
        for candidate in candidates {
            batch.push(candidate.map_err(|e| Error::Source(Box::new(e)))?);
            if batch.len() == BATCH {
                self.add_batch(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.add_batch(&batch)?;
        }
        Ok(())
    }

    /// Adds a batch: rows and keyword documents, then all passages embedded in one call.
    fn add_batch(&mut self, batch: &[Candidate]) -> Result<(), Error> {
        let passages: Vec<Vec<Passage>> = batch
            .par_iter()
            .map(|c| chunk::passages(c, self.embedder))
            .collect::<Result<_, _>>()?;
        let texts: Vec<&str> = passages.iter().flatten().map(|p| p.text.as_str()).collect();
        let vectors = match self.cache {
            Some(cache) => {
                let (vectors, hits) = cache.get_or_embed(self.embedder, &texts)?;
                self.cached_vectors += hits as u64;
                vectors
            }
            None => self.embedder.embed_passages(&texts)?,
        };
        let mut vectors = vectors.into_iter();
        for (candidate, passages) in batch.iter().zip(&passages) {
            let ordinal = self.rows.len() as u32;
            let row = CandidateRow::new(candidate, self.reference);
            self.keyword.add(ordinal, candidate, self.reference, &row)?;
            self.rows.push(row);
            let own: Vec<Vec<f32>> = vectors.by_ref().take(passages.len()).collect();
            self.vectors.add(ordinal, passages, own)?;
        }
        self.progress
            .emit(ProgressEvent::Advance(batch.len() as u64));
        Ok(())
    }

    /// Commits every part and writes `meta.json` last.
    fn finish(self, dir: &Path, generation: u64) -> Result<IndexStats, Error> {
        if self.cache.is_some() {
            tracing::info!(
                cached = self.cached_vectors,
                "passage vectors taken from the cache instead of embedded"
            );
        }
        self.keyword.finish()?;
        let vectors = self.vectors.len() as u64;
        let tombstones = self.vectors.tombstones() as u64;
        self.vectors.finish()?;
        rows::write(dir, &self.rows)?;
        let candidates = self.rows.iter().filter(|r| !r.deleted).count() as u64;
        generation::write_meta(
            dir,
            &Meta {
                format_version: generation::FORMAT_VERSION,
                generation,
                model_sha256: self.embedder.model_sha256().to_owned(),
                dimension: self.embedder.dimension(),
                rows: self.rows.len() as u64,
                candidates,
                vectors,
                tombstones,
                hnsw_basename: None,
                written_at: generation::now_ms(),
                stage_ids: Some(stage_ids(self.reference)),
                reference_names: Some(reference_names(self.reference)),
                embedding_settings: Some(self.embedder.settings_sha256().to_owned()),
            },
        )?;
        generation::sync_dir(dir)?;
        Ok(IndexStats {
            generation,
            candidates,
            vectors,
            tombstones,
            bytes_on_disk: 0,
        })
    }
}

fn make_dir(dir: &Path) -> Result<std::path::PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(dir.to_path_buf())
}

/// Hard-links (or copies, across file systems) every file of `from` into `to`, lock files
/// excepted. tantivy never modifies a file in place, so sharing inodes between generations is
/// safe.
fn link_files(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".lock") || !entry.path().is_file() {
            continue;
        }
        let target = to.join(&name);
        if std::fs::hard_link(entry.path(), &target).is_err() {
            // A copy is a new file: it must be on disk before the generation is published.
            std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io(&target))?;
        }
    }
    Ok(())
}
