//! (skeleton) axum HTTP query API.
