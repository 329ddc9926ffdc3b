//! Passage vectors computed ahead of an index build, looked up by the passage text: a sync embeds
//! what it fetches while it is still fetching, and the build that follows takes those vectors
//! instead of embedding the same text again.
//!
//! The cache lives in memory only and is dropped with the process, so nothing derived from a
//! candidate outlives the generation that indexed them. Vectors are tied to the model that made
//! them: a build with another model ignores the cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::embed::Embedder;
use super::vector::VectorIndex;
use super::{Error, generation};

/// Most vectors [`VectorCache::add_current_generation`] takes (about 1.5 GiB of 384-d vectors).
const MAX_REUSED_VECTORS: usize = 1_000_000;

/// A key per passage text: the first 16 bytes of its SHA-256.
type TextKey = [u8; 16];

/// Passage vectors by passage text, for one model.
#[derive(Debug)]
pub struct VectorCache {
    model_sha256: String,
    /// The embedder's [`Embedder::settings_sha256`], when known.
    settings_sha256: Option<String>,
    dimension: usize,
    entries: Mutex<HashMap<TextKey, Vec<f32>>>,
}

impl VectorCache {
    /// An empty cache for vectors of `embedder`'s model.
    pub fn new(embedder: &Embedder) -> VectorCache {
        VectorCache {
            settings_sha256: Some(embedder.settings_sha256().to_owned()),
            ..VectorCache::for_model(embedder.model_sha256(), embedder.dimension())
        }
    }

    /// An empty cache for vectors of the model with this sha256 and dimension.
    pub fn for_model(model_sha256: &str, dimension: usize) -> VectorCache {
        VectorCache {
            model_sha256: model_sha256.to_owned(),
            settings_sha256: None,
            dimension,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the cache's vectors were made by `embedder`'s model.
    pub fn serves(&self, embedder: &Embedder) -> bool {
        self.model_sha256 == embedder.model_sha256()
            && self.dimension == embedder.dimension()
            && self
                .settings_sha256
                .as_deref()
                .is_none_or(|s| s == embedder.settings_sha256())
    }

    /// Records the vector of a passage text. A vector of the wrong dimension is refused.
    pub fn insert(&self, text: &str, vector: Vec<f32>) -> Result<(), Error> {
        if vector.len() != self.dimension {
            return Err(Error::Inference(format!(
                "cached vector has dimension {}, the model {}",
                vector.len(),
                self.dimension
            )));
        }
        self.lock().insert(key(text), vector);
        Ok(())
    }

    /// Whether a vector for this passage text is cached.
    pub fn contains(&self, text: &str) -> bool {
        self.lock().contains_key(&key(text))
    }

    /// Passages cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the live passage vectors of the index generation now current in `data_dir`, when
    /// it was built by this cache's model, so a full rebuild (a new format, a compaction by
    /// hand) embeds only text it has not seen. Only the generation's vectors are opened, so a
    /// generation whose keyword index is of an older format still gives its vectors (see
    /// [`generation::OLDEST_REUSABLE_VECTORS_FORMAT`]). Returns how many were added; an index
    /// that cannot be read (missing, damaged, too old) simply adds none.
    pub fn add_current_generation(&self, data_dir: &Path) -> usize {
        let opened = (|| {
            let dir = generation::current_dir(data_dir)?.ok_or_else(|| Error::Missing {
                dir: generation::root(data_dir),
            })?;
            let meta =
                generation::read_meta_since(&dir, generation::OLDEST_REUSABLE_VECTORS_FORMAT)?;
            Ok::<_, Error>((meta, VectorIndex::open(&dir)?))
        })();
        let (meta, vectors) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!(error = %e, "no current vectors to reuse");
                return 0;
            }
        };
        let other_settings = match (&meta.embedding_settings, &self.settings_sha256) {
            (Some(index), Some(cache)) => index != cache,
            _ => false,
        };
        if meta.model_sha256 != self.model_sha256 || other_settings {
            return 0;
        }
        let mut entries = self.lock();
        let mut added = 0;
        for chunk in 0..vectors.len() as u32 {
            if added == MAX_REUSED_VECTORS {
                break;
            }
            if vectors.is_tombstoned(chunk) {
                continue;
            }
            if let Some(v) = vectors.vector(chunk).filter(|v| v.len() == self.dimension) {
                entries.insert(key(vectors.chunk_text(chunk)), v.to_vec());
                added += 1;
            }
        }
        added
    }

    /// Embeds the passages of `texts` that are not cached yet and caches them; returns how many
    /// were embedded.
    pub fn fill(&self, embedder: &Embedder, texts: &[&str]) -> Result<usize, Error> {
        if !self.serves(embedder) {
            return Ok(0);
        }
        let missing: Vec<&str> = {
            let entries = self.lock();
            let mut seen = std::collections::HashSet::new();
            texts
                .iter()
                .copied()
                .filter(|t| {
                    let k = key(t);
                    !entries.contains_key(&k) && seen.insert(k)
                })
                .collect()
        };
        let vectors = embedder.embed_passages(&missing)?;
        let mut entries = self.lock();
        for (text, vector) in missing.iter().zip(vectors) {
            entries.insert(key(text), vector);
        }
        Ok(missing.len())
    }

    /// The vectors of `texts`, in order: cached ones copied, the rest embedded by `embedder`.
    /// Returns the vectors and how many were cached.
    pub fn get_or_embed(
        &self,
        embedder: &Embedder,
        texts: &[&str],
    ) -> Result<(Vec<Vec<f32>>, usize), Error> {
        if !self.serves(embedder) {
            return Ok((embedder.embed_passages(texts)?, 0));
        }
        let mut out: Vec<Option<Vec<f32>>> = {
            let entries = self.lock();
            texts
                .iter()
                .map(|t| entries.get(&key(t)).cloned())
                .collect()
        };
        let hits = out.iter().filter(|v| v.is_some()).count();
        let missing: Vec<(usize, &str)> = texts
            .iter()
            .enumerate()
            .filter(|(i, _)| out[*i].is_none())
            .map(|(i, t)| (i, *t))
            .collect();
        if !missing.is_empty() {
            let refs: Vec<&str> = missing.iter().map(|(_, t)| *t).collect();
            let embedded = embedder.embed_passages(&refs)?;
            for ((i, _), vector) in missing.into_iter().zip(embedded) {
                out[i] = Some(vector);
            }
        }
        let vectors = out
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::Inference("a passage was not embedded".to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((vectors, hits))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TextKey, Vec<f32>>> {
        // Entries are written whole under the lock, so a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(text: &str) -> TextKey {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_dimension_is_refused() {
        let cache = VectorCache::for_model("abc", 3);
        assert!(cache.insert("x", vec![1.0, 0.0]).is_err());
        assert!(cache.insert("x", vec![1.0, 0.0, 0.0]).is_ok());
        assert!(cache.contains("x") && !cache.contains("y"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn keys_differ_by_text() {
        assert_ne!(key("Rust engineer"), key("Rust engineer "));
        assert_eq!(key("a"), key("a"));
    }
}
