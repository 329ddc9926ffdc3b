//! Shared test helpers: temporary directories, the CLI binary, model availability.
