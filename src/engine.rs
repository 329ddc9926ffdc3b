//! (skeleton) composition root: opens the store, the indexes and the embedder for the API layer.
