//! The crate-wide error: each layer's own error folds in here, and `is_user_error` splits
//! mistakes the user can fix (bad input, unknown ids) from faults of the machine or of Lever.

/// Any error rediscover can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// Talking to Lever failed.
    #[error(transparent)]
    Lever(#[from] crate::lever::Error),
    /// A sync run failed.
    #[error(transparent)]
    Sync(#[from] crate::sync::Error),
    /// Building or opening an index failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// A query failed.
    #[error(transparent)]
    Search(#[from] crate::search::Error),
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds what this one needs (a lock).
    #[error("{0}")]
    Busy(String),
    /// The mock Lever server failed.
    #[error(transparent)]
    MockLever(#[from] crate::mock_lever::Error),
}

impl Error {
    /// Whether the user can fix this by changing their input (maps to HTTP 4xx).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Search(e) => e.is_user_error(),
            Error::Index(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// Result with the crate [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
