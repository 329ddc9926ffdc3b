//! The local hybrid index: a tantivy keyword index and an HNSW vector index over every
//! opportunity, written as immutable generations under `DATA/index/` and reopened with mmaps.
//!
//! The index never reads the store: callers hand it [`Candidate`](crate::domain::Candidate)s and
//! [`ReferenceData`](crate::domain::ReferenceData). See `INDEX_API.md` for the contract the
//! search layer relies on.

pub mod embed;
pub mod model;

pub use embed::Embedder;
pub use model::{Manifest, Pooling};

use std::path::PathBuf;

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
}

impl Error {
    /// Whether the user can fix this error by changing their input.
    pub fn is_user_error(&self) -> bool {
        false
    }
}
