//! Hybrid search: keyword and semantic retrieval, fusion, grouping by person and reasons.

pub mod fusion;
pub mod terms;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An IO error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the user can fix this error by changing their input.
    pub fn is_user_error(&self) -> bool {
        false
    }
}
