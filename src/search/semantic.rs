//! The semantic side of a query: embed the posting (chunked when long, cached when repeated),
//! search the passage vectors and score each opportunity by its best passage.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::index::{Embedder, VectorHit, VectorIndex};

use super::allowed::Allowed;
use super::lru::Lru;

/// At most this many chunks of a long posting are embedded; the rest is left to the keyword side.
const MAX_QUERY_CHUNKS: usize = 8;
/// Tokens kept free in each chunk for the special tokens the model adds.
const SPECIAL_TOKENS: usize = 2;
/// The smallest HNSW `ef` used for a search.
const MIN_EF: usize = 64;
/// Allowed passages up to which the semantic side scores each of them instead of searching
/// the graph (about 0.2 ms of dot products at 384 dimensions).
const EXACT_PASSAGES: usize = 4_096;
/// Passages asked of HNSW per opportunity wanted (with no filter): a candidate has a profile
/// vector and passages, and several of one candidate's often rank close together. At 100k
/// candidates, 2 per opportunity still yields the wanted number in one search for the bench
/// postings, and costs a third less than 3.
pub const PASSAGES_PER_OPPORTUNITY: usize = 2;

/// Embeds query texts, remembering the last few so a repeated posting is not embedded again.
pub struct QueryEmbedder {
    embedder: Arc<Embedder>,
    cache: Mutex<Lru<Arc<Vec<f32>>>>,
}

impl std::fmt::Debug for QueryEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEmbedder").finish_non_exhaustive()
    }
}

/// A query vector and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct QueryVector {
    /// The unit-length query vector.
    pub vector: Arc<Vec<f32>>,
    /// True when the vector was cached from an earlier query.
    pub cached: bool,
    /// How many chunks the text was embedded in.
    pub chunks: usize,
}

impl QueryEmbedder {
    /// Wraps an embedder with a cache of `capacity` query vectors.
    pub fn new(embedder: Arc<Embedder>, capacity: usize) -> QueryEmbedder {
        QueryEmbedder {
            embedder,
            cache: Mutex::new(Lru::new(capacity)),
        }
    }

    /// The wrapped embedder.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Embeds a posting's title and body as one unit vector.
    ///
    /// A text longer than the model's window is split at sentence ends into chunks (each led by
    /// the title), and the chunk vectors are averaged and renormalised. Errors are returned as
    /// text, since the caller degrades to keyword results rather than failing.
    pub fn embed(&self, title: &str, body: &str) -> Result<QueryVector, String> {
        let key = cache_key(title, body);
        if let Some(vector) = self.lock().get(key) {
            return Ok(QueryVector {
                vector,
                cached: true,
                chunks: 0,
            });
        }
        let chunks = self.chunk(title, body).map_err(|e| e.to_string())?;
        let manifest = self.embedder.manifest();
        let vectors = if chunks.len() > 1 && manifest.query_prefix == manifest.passage_prefix {
            // Same prefix: one batched call embeds every chunk exactly as `embed_query` would.
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            self.embedder
                .embed_passages(&refs)
                .map_err(|e| e.to_string())?
        } else {
            chunks
                .iter()
                .map(|c| self.embedder.embed_query(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?
        };
        let mut sum: Vec<f32> = vec![0.0; vectors.first().map_or(0, Vec::len)];
        for v in &vectors {
            sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
        }
        normalize(&mut sum);
        let vector = Arc::new(sum);
        self.lock().put(key, Arc::clone(&vector));
        Ok(QueryVector {
            vector,
            cached: false,
            chunks: chunks.len(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<Arc<Vec<f32>>>> {
        // A poisoned cache only means another query panicked mid-update; its content is still a
        // set of valid vectors.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn chunk(&self, title: &str, body: &str) -> Result<Vec<String>, crate::index::Error> {
        let whole = join(title, body);
        let window = self
            .embedder
            .max_tokens()
            .saturating_sub(SPECIAL_TOKENS)
            .max(16);
        if self.embedder.count_tokens(&whole)? <= window {
            return Ok(vec![whole]);
        }
        let title_tokens = if title.trim().is_empty() {
            0
        } else {
            self.embedder.count_tokens(title)?
        };
        let budget = window.saturating_sub(title_tokens).max(window / 2);
        let mut chunks = Vec::new();
        let mut current = String::new();
        let mut used = 0;
        for sentence in sentences(body) {
            let tokens = self.embedder.count_tokens(sentence)?;
            if used + tokens > budget && !current.is_empty() {
                chunks.push(join(title, &current));
                current.clear();
                used = 0;
                if chunks.len() == MAX_QUERY_CHUNKS {
                    break;
                }
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(sentence);
            used += tokens;
        }
        if !current.is_empty() && chunks.len() < MAX_QUERY_CHUNKS {
            chunks.push(join(title, &current));
        }
        if chunks.is_empty() {
            chunks.push(whole);
        }
        Ok(chunks)
    }
}

fn join(title: &str, body: &str) -> String {
    match (title.trim().is_empty(), body.trim().is_empty()) {
        (true, _) => body.trim().to_owned(),
        (false, true) => title.trim().to_owned(),
        (false, false) => format!("{}\n{}", title.trim(), body.trim()),
    }
}

/// Splits text after sentence ends and line breaks; pieces keep their punctuation.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut pieces = Vec::new();
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ends = b == b'\n'
            || ((b == b'.' || b == b'!' || b == b'?' || b == b';')
                && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()));
        if ends {
            pieces.push(&text[start..=i]);
            start = i + 1;
        }
    }
    pieces.push(&text[start..]);
    pieces.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn cache_key(title: &str, body: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    title.hash(&mut hasher);
    body.hash(&mut hasher);
    hasher.finish()
}

/// One opportunity found by the semantic side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticHit {
    /// Row ordinal of the opportunity.
    pub ordinal: u32,
    /// Cosine similarity of its best passage.
    pub similarity: f32,
    /// The best passage's chunk id.
    pub chunk: u32,
}

/// Searches the passages and returns the `depth` best allowed opportunities, best first.
///
/// Each opportunity is scored by its best passage. When the filters leave few passages, each
/// of them is scored exactly. Otherwise the number of passages asked of HNSW starts at a few
/// per wanted opportunity (more when the filters are restrictive) and doubles until `depth`
/// opportunities survive the filters or the whole index has been asked.
pub fn search(
    vectors: &VectorIndex,
    query: &[f32],
    allowed: &Allowed,
    depth: usize,
) -> Vec<SemanticHit> {
    let total = vectors.len();
    if total == 0 || depth == 0 || allowed.is_empty() {
        return Vec::new();
    }
    // Fewer allowed opportunities than wanted: the search ends once it has them all.
    let depth = depth.min(allowed.len());
    let selectivity = allowed.fraction().max(1e-3);
    let mut k = ((depth as f64 * PASSAGES_PER_OPPORTUNITY as f64 / selectivity).ceil() as usize)
        .max(depth)
        .min(total);
    // The allowed rows' passages, estimated from the average per row.
    let allowed_passages = (total as f64 * allowed.fraction()).ceil() as usize;
    if !allowed.is_everything() && allowed_passages <= k.max(MIN_EF).max(EXACT_PASSAGES) {
        // Filtered to a few rows: a graph search wide enough to find them among the others
        // would compute more similarities than scoring each of their passages, and be less
        // exact.
        let hits = vectors.similarities_of(query, allowed.iter());
        return best_per_opportunity(vectors, &hits, allowed, depth);
    }
    loop {
        let hits = vectors.search(query, k, k.max(MIN_EF));
        let best = best_per_opportunity(vectors, &hits, allowed, usize::MAX);
        if best.len() >= depth || k >= total || hits.len() < k {
            let mut ranked = best;
            ranked.truncate(depth);
            return ranked;
        }
        tracing::debug!(target: "search::semantic", k, found = best.len(), "too few opportunities: asking for more passages");
        k = (k * 2).min(total);
    }
}

/// The allowed opportunities of `hits`, each scored by its best passage, best first (ties by
/// ordinal), at most `depth` of them.
fn best_per_opportunity(
    vectors: &VectorIndex,
    hits: &[VectorHit],
    allowed: &Allowed,
    depth: usize,
) -> Vec<SemanticHit> {
    let mut best: HashMap<u32, SemanticHit> = HashMap::with_capacity(hits.len().min(4096));
    for hit in hits {
        let ordinal = vectors.chunk(hit.chunk).ordinal;
        if !allowed.contains(ordinal) {
            continue;
        }
        best.entry(ordinal)
            .and_modify(|b| {
                if hit.similarity > b.similarity {
                    b.similarity = hit.similarity;
                    b.chunk = hit.chunk;
                }
            })
            .or_insert(SemanticHit {
                ordinal,
                similarity: hit.similarity,
                chunk: hit.chunk,
            });
    }
    let mut ranked: Vec<SemanticHit> = best.into_values().collect();
    ranked.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| a.ordinal.cmp(&b.ordinal))
    });
    ranked.truncate(depth);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_ends_and_lines() {
        let parts: Vec<&str> =
            sentences("Build APIs. Use Rust!\nVersion 1.5 is fine; ok").collect();
        assert_eq!(
            parts,
            vec!["Build APIs.", "Use Rust!", "Version 1.5 is fine;", "ok"]
        );
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn cache_key_separates_title_from_body() {
        assert_ne!(cache_key("ab", "c"), cache_key("a", "bc"));
        assert_eq!(cache_key("a", "b"), cache_key("a", "b"));
    }
}
