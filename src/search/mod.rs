//! (skeleton) owned by a helper; see ARCHITECTURE.md.

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
