//! The local hybrid index: a tantivy keyword index and an HNSW vector index over every
//! opportunity, written as immutable generations under `DATA/index/` and reopened with mmaps.
//!
//! The index never reads the store: callers hand it [`Candidate`]s and [`ReferenceData`].
//! [`rebuild`] writes a generation from every candidate; [`update`] writes the next one from
//! the previous generation plus changed and deleted candidates. Both switch the `CURRENT`
//! pointer atomically, so readers never see half an index and a crash keeps the last good one.

pub mod analysis;
mod build;
pub mod cache;
pub mod chunk;
pub mod columns;
pub mod embed;
pub mod fused_model;
pub mod generation;
pub mod keyword;
pub mod matmul16;
pub mod model;
pub mod product_op;
mod progress;
mod protobuf;
pub mod rows;
pub mod vector;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use build::{COMPACT_RATIO, rebuild, try_rebuild, update};
pub use cache::VectorCache;
pub use chunk::ChunkKind;
pub use columns::{RowColumns, RowFacts, location_matches};
pub use embed::Embedder;
pub use generation::FORMAT_VERSION;
pub use keyword::{KeywordFields, KeywordIndex};
pub use model::{Manifest, Pooling};
pub use progress::{Progress, ProgressEvent};
pub use rows::CandidateRow;
pub use vector::{ChunkInfo, DEFAULT_EF, VectorHit, VectorIndex};

#[cfg(doc)]
use crate::domain::{Candidate, ReferenceData};

/// Errors of the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An IO error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model file is missing or unusable.
    #[error("model file {path}: {reason}")]
    Model {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ONNX Runtime library could not be loaded.
    #[error("onnx runtime {path}: {reason}; run models/fetch.sh or set ORT_DYLIB_PATH")]
    Runtime {
        /// The library path tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Tokenizing text failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Running the model failed.
    #[error("embedding inference: {0}")]
    Inference(String),
    /// There is no index yet.
    #[error("no index in {dir}; run `rediscover index` (or `rediscover sync`) first")]
    Missing {
        /// The index folder looked at.
        dir: PathBuf,
    },
    /// The index was written by an incompatible version of rediscover.
    #[error(
        "index format {found} is not the supported format {expected}; run `rediscover index` to rebuild it"
    )]
    VersionMismatch {
        /// Format found on disk.
        found: u32,
        /// Format this build reads.
        expected: u32,
    },
    /// The index was built with another embedding model than the one loaded.
    #[error(
        "index vectors come from model {index} but the loaded model is {loaded}; run `rediscover index` to rebuild it"
    )]
    ModelChanged {
        /// sha256 prefix of the index's model.
        index: String,
        /// sha256 prefix of the loaded model.
        loaded: String,
    },
    /// Lever's pipeline stages or archive reasons changed since the index was built, so its
    /// rows' stage positions or names are stale: a full rebuild is needed (the sync does it,
    /// reusing the vectors).
    #[error(
        "Lever's stages or archive reasons changed since the index was built; run `rediscover index` to rebuild it"
    )]
    StagesChanged,
    /// An index file is damaged.
    #[error("index file {path} is damaged: {reason}; run `rediscover index` to rebuild it")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tantivy failed.
    #[error("keyword index {path}: {reason}")]
    Keyword {
        /// The index directory.
        path: PathBuf,
        /// tantivy's message.
        reason: String,
    },
    /// hnsw_rs failed.
    #[error("vector index: {0}")]
    Vector(String),
    /// A boolean query could not be parsed.
    #[error("bad query: {reason}")]
    BadQuery {
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the candidates to index failed (e.g. the store).
    #[error("reading candidates to index: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Encoding an index file failed.
    #[error("encoding index data: {0}")]
    Encode(String),
}

impl Error {
    /// Whether the user can fix this error by changing their input or running a command.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::Missing { .. }
                | Error::VersionMismatch { .. }
                | Error::ModelChanged { .. }
                | Error::StagesChanged
                | Error::BadQuery { .. }
        )
    }
}

/// What an index generation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    /// Store generation the index was built from.
    pub generation: u64,
    /// Live (not deleted) candidates.
    pub candidates: u64,
    /// Vectors in the graph, tombstoned ones included.
    pub vectors: u64,
    /// Tombstoned vectors (never returned; removed by the next compaction or rebuild).
    pub tombstones: u64,
    /// Size of the generation directory.
    pub bytes_on_disk: u64,
}

/// The yes/no facts of a row that most queries filter on, packed in one byte per row so a
/// whole-pool filter compares bytes against masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFlags(u8);

impl RowFlags {
    /// Tombstoned: never returned.
    pub const DELETED: u8 = 1;
    /// Archived.
    pub const ARCHIVED: u8 = 2;
    /// Archived with a hired-type reason.
    pub const HIRED: u8 = 4;

    /// The flags of `row`.
    pub fn of(row: &CandidateRow) -> RowFlags {
        let bit = |on: bool, flag: u8| if on { flag } else { 0 };
        RowFlags(
            bit(row.deleted, Self::DELETED)
                | bit(row.archived, Self::ARCHIVED)
                | bit(row.hired, Self::HIRED),
        )
    }

    /// The flags as one byte.
    pub fn bits(self) -> u8 {
        self.0
    }
}

/// One opened index generation: read-only, `Send + Sync`.
#[derive(Debug)]
pub struct Indexes {
    dir: PathBuf,
    meta: generation::Meta,
    rows: Vec<CandidateRow>,
    /// [`RowFlags::bits`] of each row, packed densely so whole-pool filters scan 1 byte a row.
    flag_bits: Vec<u8>,
    /// Locations, tags and numeric facts as columns for filters, built at the first filter
    /// that needs them.
    columns: std::sync::OnceLock<RowColumns>,
    by_id: HashMap<String, u32>,
    keyword: KeywordIndex,
    vectors: VectorIndex,
    bytes_on_disk: u64,
}

impl Indexes {
    /// Opens the current generation under `data_dir/index` ([`Error::Missing`] if none).
    pub fn open(data_dir: &Path) -> Result<Indexes, Error> {
        let Some(dir) = generation::current_dir(data_dir)? else {
            return Err(Error::Missing {
                dir: generation::root(data_dir),
            });
        };
        let meta = generation::read_meta(&dir)?;
        let rows = rows::read(&dir)?;
        let keyword = KeywordIndex::open(&dir.join(build::KEYWORD_DIR))?;
        let vectors = VectorIndex::open(&dir)?;
        let by_id = live_ordinals(&rows);
        let flag_bits = rows.iter().map(|r| RowFlags::of(r).bits()).collect();
        let bytes_on_disk = dir_size(&dir);
        Ok(Indexes {
            dir,
            meta,
            rows,
            flag_bits,
            columns: std::sync::OnceLock::new(),
            by_id,
            keyword,
            vectors,
            bytes_on_disk,
        })
    }

    /// The [`RowFlags::bits`] of every row, by ordinal (same length as [`Indexes::rows`]).
    pub fn row_flag_bits(&self) -> &[u8] {
        &self.flag_bits
    }

    /// The rows' locations, tags and numeric facts as columns (built on first use).
    pub fn row_columns(&self) -> &RowColumns {
        self.columns.get_or_init(|| RowColumns::build(&self.rows))
    }

    /// The store generation this index was built from.
    pub fn generation(&self) -> u64 {
        self.meta.generation
    }

    /// The generation `CURRENT` points at, without opening it (cheap: for hot reload).
    pub fn current_generation(data_dir: &Path) -> Result<Option<u64>, Error> {
        Ok(generation::current_dir_name(data_dir)?
            .and_then(|name| generation::generation_of(&name)))
    }

    /// Lever's stage ids, in order, that this generation's rows hold positions in (`None` for
    /// a generation written before they were recorded).
    pub fn stage_ids(&self) -> Option<&[String]> {
        self.meta.stage_ids.as_deref()
    }

    /// The directory name `CURRENT` points at, without opening it (cheap: for hot reload; a
    /// rebuild of the same generation gets a new name).
    pub fn current_dir_name(data_dir: &Path) -> Result<Option<String>, Error> {
        generation::current_dir_name(data_dir)
    }

    /// Counts and size of this generation.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            generation: self.meta.generation,
            candidates: self.by_id.len() as u64,
            vectors: self.vectors.len() as u64,
            tombstones: self.vectors.tombstones() as u64,
            bytes_on_disk: self.bytes_on_disk,
        }
    }

    /// Every row by ordinal, tombstoned ones included (check `deleted`).
    pub fn rows(&self) -> &[CandidateRow] {
        &self.rows
    }

    /// The live row of an opportunity.
    pub fn ordinal(&self, opportunity_id: &str) -> Option<u32> {
        self.by_id.get(opportunity_id).copied()
    }

    /// The keyword index.
    pub fn keyword(&self) -> &KeywordIndex {
        &self.keyword
    }

    /// The vector index.
    pub fn vectors(&self) -> &VectorIndex {
        &self.vectors
    }

    /// sha256 of the model the vectors came from: queries must use the same model.
    pub fn model_sha256(&self) -> &str {
        &self.meta.model_sha256
    }

    /// The [`Embedder::settings_sha256`] the vectors were made with (`None` for a generation
    /// written before it was recorded).
    pub fn embedding_settings(&self) -> Option<&str> {
        self.meta.embedding_settings.as_deref()
    }

    /// Whether the vectors were made by `embedder`'s model file, tokenizer and settings
    /// ([`generation::Meta::made_by`]).
    pub fn made_by(&self, embedder: &Embedder) -> bool {
        self.meta.made_by(embedder)
    }

    /// The generation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Counts and size of the current generation, after opening all of it (for `rediscover
/// status`); `None` when there is no index yet.
pub fn current_stats(data_dir: &Path) -> Result<Option<IndexStats>, Error> {
    // Opened whole (every segment, row and vector file), so damage shows here as it would
    // in a query.
    match Indexes::open(data_dir) {
        Ok(indexes) => Ok(Some(indexes.stats())),
        Err(Error::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opportunity id -> ordinal of its live row.
fn live_ordinals(rows: &[CandidateRow]) -> HashMap<String, u32> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| !r.deleted)
        .map(|(i, r)| (r.opportunity_id.clone(), i as u32))
        .collect()
}

/// Total size of the files under `dir` (0 for what cannot be read).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
