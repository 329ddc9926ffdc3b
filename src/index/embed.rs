//! Text to unit vectors on the CPU: a tokenizer plus one single-threaded ONNX Runtime session per
//! worker, fed length-bucketed batches under rayon so every core works and little padding is
//! computed.
//!
//! The model is described by `models/manifest.json` ([`Manifest`]); nothing here is specific to
//! MiniLM except the defaults in that file. The sessions run the graph as
//! [`fused_model`] rewrites it at load, with its products with int8 weights rounded to 16-bit
//! activations ([`super::matmul16`]) on a CPU with AVX2. Text is never logged.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::Error;
use super::fused_model::{self, Fused};
use super::model::{Manifest, Pooling};
use super::{matmul16, product_op};

/// Most texts in one batch.
const MAX_BATCH: usize = 32;
/// Most padded tokens in one batch (batch size times longest text): 4 texts of 256 tokens,
/// 8 of 128, 16 of 64. Attention cost grows with the square of the length, so long texts go in
/// small batches. Batches of 1,024 tokens ran 2 to 3% faster per core than batches of 2,048.
const BATCH_TOKEN_BUDGET: usize = 1024;
/// Most sessions (each holds its own graph; their prepacked weights are shared).
const MAX_SESSIONS: usize = 8;
/// The model input holding the attention mask.
const MASK_INPUT: &str = "attention_mask";
/// ONNX Runtime optimisers left off: its fused `SkipLayerNormalization` kernel took 54 ms of a
/// 640 ms batch (8 x 256 tokens) where the `Add` and `LayerNormalization` it replaces take 8.
const DISABLED_OPTIMIZERS: &str = "SkipLayerNormFusion";

/// Which graph the sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    /// The model's graph with its attention blocks and GELUs fused for ONNX Runtime's kernels
    /// and, on a CPU with AVX2, its other products with int8 weights run with activations
    /// rounded to 16 bits (see [`fused_model`] and [`super::matmul16`]), where they match; the
    /// default.
    Fused,
    /// The same fused graph with every product in fp32 by ONNX Runtime: what benchmarks and
    /// tests compare the rounded products against.
    FusedFp32,
    /// The model file's graph as it is, with ONNX Runtime's default optimisers: the baseline
    /// benchmarks and tests compare the fused graph against.
    AsShipped,
}

/// The process-wide ONNX Runtime environment. ONNX Runtime allows one per process and `ort`
/// refuses to build a second one even after the first is dropped, so it is created once and
/// shared by every [`Embedder`]; the runtime library of the first load stays in use.
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// The model inputs this embedder feeds, by name.
#[derive(Debug, Clone)]
struct ModelInputs {
    ids: String,
    mask: String,
    type_ids: Option<String>,
}

/// Turns text into unit vectors with a local ONNX sentence-embedding model.
///
/// `Send + Sync`: share one behind an `Arc`; concurrent callers use different sessions.
pub struct Embedder {
    manifest: Manifest,
    model_sha256: String,
    /// sha256 of what else decides a vector: the tokenizer file and the manifest's settings.
    settings_sha256: String,
    /// Truncates to `max_tokens`; never pads (batches are padded here, to their longest text).
    tokenizer: Tokenizer,
    /// Neither truncates nor pads: for counting tokens and chunking long text.
    counting_tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    /// One session whose operators use every core, for a single query's latency; `None` on a
    /// single core.
    query_session: Option<Mutex<Session>>,
    inputs: ModelInputs,
    fused: Fused,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.manifest.name)
            .field("dimension", &self.manifest.dimension)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Embedder {
    /// Loads the model described by `models_dir/manifest.json`, with one session per rayon
    /// worker (at most 8). `ORT_DYLIB_PATH` overrides the runtime library path.
    pub fn load(models_dir: &Path) -> Result<Embedder, Error> {
        let workers = rayon::current_num_threads().clamp(1, MAX_SESSIONS);
        Self::load_with_sessions(models_dir, workers)
    }

    /// Loads the model with exactly `sessions` single-threaded sessions (at least one), plus,
    /// when there are several, one session that spreads a single query over as many threads.
    pub fn load_with_sessions(models_dir: &Path, sessions: usize) -> Result<Embedder, Error> {
        Self::load_graph(models_dir, sessions, Graph::Fused)
    }

    /// Loads the model with `sessions` sessions (as [`Embedder::load_with_sessions`]) running
    /// the chosen [`Graph`].
    pub fn load_graph(models_dir: &Path, sessions: usize, graph: Graph) -> Result<Embedder, Error> {
        let manifest = Manifest::load(models_dir)?;
        let model_path = manifest.model_path(models_dir);
        let model_bytes = read_model_file(&model_path)?;
        // The checksum names the model file, whichever graph runs: their vectors differ by at most
        // 5e-5 (tests hold it), close enough to share an index.
        let model_sha256 = hex(&Sha256::digest(&model_bytes));
        let (tokenizer, counting_tokenizer) = load_tokenizers(&manifest, models_dir)?;
        let settings_sha256 = settings_sha256(&manifest, models_dir)?;
        let environment = environment(&manifest.runtime_path(models_dir))?;
        let (graph_bytes, fused) = match graph {
            Graph::Fused => fused_graph(&model_bytes, &manifest, matmul16::simd_available()),
            Graph::FusedFp32 => fused_graph(&model_bytes, &manifest, false),
            Graph::AsShipped => (Cow::Borrowed(model_bytes.as_slice()), Fused::default()),
        };
        // The tuned sessions share one copy of their prepacked weights.
        let shared = (graph != Graph::AsShipped).then(PrepackedWeights::new);
        let threads = sessions.max(1);
        let session = |threads| {
            new_session(
                &environment,
                &graph_bytes,
                &model_path,
                threads,
                shared.as_ref(),
                fused.rounded_products > 0,
            )
            .map(Mutex::new)
        };
        let sessions = (0..threads)
            .map(|_| session(1))
            .collect::<Result<Vec<_>, _>>()?;
        let query_session = if threads > 1 {
            Some(session(threads)?)
        } else {
            None
        };
        // PANICS: the collect above made at least one session.
        let inputs = model_inputs(&sessions[0], &model_path)?;
        check_output(&sessions[0], &manifest.output, &model_path)?;
        Ok(Embedder {
            manifest,
            model_sha256,
            settings_sha256,
            tokenizer,
            counting_tokenizer,
            sessions,
            query_session,
            inputs,
            fused,
        })
    }

    /// What the load-time rewrite fused in the graph the sessions run.
    pub fn fused(&self) -> Fused {
        self.fused
    }

    /// `$REDISCOVER_MODELS` when set, else `./models` under the current directory.
    pub fn default_models_dir() -> PathBuf {
        match std::env::var_os("REDISCOVER_MODELS") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from("models"),
        }
    }

    /// Embedding dimension (384 for MiniLM).
    pub fn dimension(&self) -> usize {
        self.manifest.dimension
    }

    /// Truncation length in tokens, special tokens included (256).
    pub fn max_tokens(&self) -> usize {
        self.manifest.max_tokens
    }

    /// sha256 (hex) of what decides a vector besides the model file: the tokenizer file and the
    /// manifest's dimension, length limit, pooling, normalisation, output and prefixes. Indexes
    /// record it, so a change of any of them rebuilds rather than mixes vectors.
    pub fn settings_sha256(&self) -> &str {
        &self.settings_sha256
    }

    /// The manifest this embedder was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// sha256 of the model file (hex): indexes record it so vectors of two models never mix.
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// Embeds one query (with the manifest's query prefix) as a unit vector, on every core
    /// when the multi-threaded session is free.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, Error> {
        let text = prefixed(&self.manifest.query_prefix, text);
        let encoding = self
            .tokenizer
            .encode(text.as_ref(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let free = self.query_session.as_ref().and_then(|s| s.try_lock().ok());
        let mut vectors = match free {
            Some(mut session) => self.run_batch(&mut session, &[&encoding])?,
            None => self.with_session(|s| self.run_batch(s, &[&encoding]))?,
        };
        vectors
            .pop()
            .ok_or_else(|| Error::Inference("no vector for the query".to_owned()))
    }

    /// Embeds passages (with the manifest's passage prefix) as unit vectors, in input order.
    ///
    /// Texts are sorted by token count and cut into batches of similar length, which run in
    /// parallel on the rayon pool, one session per worker.
    pub fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<Cow<'_, str>> = texts
            .iter()
            .map(|t| prefixed(&self.manifest.passage_prefix, t))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs.iter().map(|t| t.as_ref()).collect::<Vec<_>>(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let batches = if encodings.len() <= self.sessions.len() {
            // Fewer texts than sessions (a query's chunks, a small update): one text per
            // session, so every core works instead of one running a batch of all of them.
            (0..encodings.len()).map(|i| vec![i]).collect()
        } else {
            length_buckets(&encodings)
        };
        let results: Vec<(Vec<usize>, Vec<Vec<f32>>)> = batches
            .into_par_iter()
            .map(|batch| {
                let refs: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
                let vectors = self.with_session(|s| self.run_batch(s, &refs))?;
                Ok((batch, vectors))
            })
            .collect::<Result<_, Error>>()?;
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, vectors) in results {
            for (i, v) in batch.into_iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Tokens the model would see for `text` without truncation, `[CLS]` and `[SEP]` included.
    pub fn count_tokens(&self, text: &str) -> Result<usize, Error> {
        let encoding = self
            .counting_tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.len())
    }

    /// Byte spans `(start, end)` in `text` of each content token (special tokens excluded),
    /// untruncated: what [`chunk`](super::chunk) cuts into model-sized windows.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>, Error> {
        let encoding = self
            .counting_tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_offsets().to_vec())
    }

    /// Runs `f` with a free session: the current rayon worker's own when free, else any free
    /// one, else waits for the worker's own.
    fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let n = self.sessions.len();
        let start = rayon::current_thread_index().unwrap_or(0) % n;
        for i in 0..n {
            if let Ok(mut session) = self.sessions[(start + i) % n].try_lock() {
                return f(&mut session);
            }
        }
        let mut session = self.sessions[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut session)
    }

    /// Pads one batch to its longest text, runs the model and pools each row.
    fn run_batch(
        &self,
        session: &mut Session,
        encodings: &[&Encoding],
    ) -> Result<Vec<Vec<f32>>, Error> {
        let rows = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        for (r, e) in encodings.iter().enumerate() {
            for (t, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[r * seq + t] = i64::from(id);
                mask[r * seq + t] = i64::from(m);
            }
        }
        let shape = vec![rows as i64, seq as i64];
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (
                Cow::from(self.inputs.ids.as_str()),
                tensor(shape.clone(), ids)?.into(),
            ),
            (
                Cow::from(self.inputs.mask.as_str()),
                tensor(shape.clone(), mask.clone())?.into(),
            ),
        ];
        if let Some(name) = &self.inputs.type_ids {
            feeds.push((
                Cow::from(name.as_str()),
                tensor(shape, vec![0i64; rows * seq])?.into(),
            ));
        }
        let outputs = session
            .run(feeds)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let output = outputs.get(&self.manifest.output).ok_or_else(|| {
            Error::Inference(format!("model has no output {}", self.manifest.output))
        })?;
        let (out_shape, hidden) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        let dim = self.manifest.dimension;
        if out_shape.len() != 3
            || out_shape[0] != rows as i64
            || out_shape[1] != seq as i64
            || out_shape[2] != dim as i64
        {
            return Err(Error::Inference(format!(
                "output {} has shape {:?}, expected [{rows}, {seq}, {dim}]",
                self.manifest.output,
                &out_shape[..]
            )));
        }
        Ok((0..rows)
            .map(|r| {
                let hidden = &hidden[r * seq * dim..(r + 1) * seq * dim];
                let mask = &mask[r * seq..(r + 1) * seq];
                let mut v = pool(self.manifest.pooling, hidden, mask, dim);
                if self.manifest.normalize {
                    normalize(&mut v);
                }
                v
            })
            .collect())
    }
}

/// Pools one row's token embeddings `[seq, dim]` into one vector.
fn pool(pooling: Pooling, hidden: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    match pooling {
        Pooling::Cls => hidden[..dim].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for (t, &m) in mask.iter().enumerate() {
                if m != 0 {
                    count += 1.0;
                    for (s, h) in sum.iter_mut().zip(&hidden[t * dim..(t + 1) * dim]) {
                        *s += h;
                    }
                }
            }
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        }
    }
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Groups text indices into batches of similar token counts within the batch budget.
fn length_buckets(encodings: &[Encoding]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = encodings[i].len().max(1);
        let longest_if_added = longest.max(len);
        if !current.is_empty()
            && (current.len() == MAX_BATCH
                || (current.len() + 1) * longest_if_added > BATCH_TOKEN_BUDGET)
        {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

fn prefixed<'a>(prefix: &str, text: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{prefix}{text}"))
    }
}

fn tensor(shape: Vec<i64>, data: Vec<i64>) -> Result<Tensor<i64>, Error> {
    Tensor::from_array((shape, data)).map_err(|e| Error::Inference(e.to_string()))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn missing(path: &Path) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        reason: "not found; run models/fetch.sh (or pass --models DIR)".to_owned(),
    }
}

fn read_model_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            missing(path)
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// The tokenizer as the model needs it (truncated to `max_tokens`, unpadded) and an unbounded
/// copy for counting. The shipped `tokenizer.json` bakes in truncation 128 and fixed padding 128.
/// See [`Embedder::settings_sha256`].
fn settings_sha256(manifest: &Manifest, dir: &Path) -> Result<String, Error> {
    let path = manifest.tokenizer_path(dir);
    let tokenizer = std::fs::read(&path).map_err(|e| Error::Model {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(&tokenizer));
    let pooling = match manifest.pooling {
        Pooling::Mean => "mean",
        Pooling::Cls => "cls",
    };
    for part in [
        manifest.dimension.to_string().as_str(),
        manifest.max_tokens.to_string().as_str(),
        pooling,
        if manifest.normalize {
            "normalize"
        } else {
            "raw"
        },
        manifest.output.as_str(),
        manifest.query_prefix.as_str(),
        manifest.passage_prefix.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    Ok(hex(&hasher.finalize()))
}

fn load_tokenizers(manifest: &Manifest, dir: &Path) -> Result<(Tokenizer, Tokenizer), Error> {
    let path = manifest.tokenizer_path(dir);
    if !path.exists() {
        return Err(missing(&path));
    }
    let mut base = Tokenizer::from_file(&path).map_err(|e| Error::Model {
        path: path.clone(),
        reason: format!("invalid tokenizer: {e}"),
    })?;
    base.with_padding(None);
    let mut counting = base.clone();
    counting
        .with_truncation(None)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    base.with_truncation(Some(TruncationParams {
        max_length: manifest.max_tokens,
        ..TruncationParams::default()
    }))
    .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok((base, counting))
}

/// The shared runtime environment, loading the runtime library on first use.
fn environment(runtime: &Path) -> Result<Environment, Error> {
    let mut guard = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    // Absolute, so `ort` never resolves it against the executable's directory.
    let absolute = std::path::absolute(runtime).map_err(|source| Error::Io {
        path: runtime.to_path_buf(),
        source,
    })?;
    if !absolute.exists() {
        return Err(missing(&absolute));
    }
    let runtime_error = |reason: String| Error::Runtime {
        path: absolute.clone(),
        reason,
    };
    let env = ort::init_from(&absolute)
        .map_err(|e| runtime_error(e.to_string()))?
        .with_name("rediscover")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(e.to_string()))?;
    *guard = Some(env.clone());
    Ok(env)
}

/// The model with its attention blocks and GELUs fused, or as it is where nothing matches (a
/// model ONNX Runtime cannot read is reported when the session is built).
fn fused_graph<'a>(
    model: &'a [u8],
    manifest: &Manifest,
    round_products: bool,
) -> (Cow<'a, [u8]>, Fused) {
    match fused_model::rewrite(model, manifest.attention_heads, MASK_INPUT, round_products) {
        Ok(Some((bytes, fused))) => {
            tracing::debug!(
                attention = fused.attention,
                gelu = fused.gelu,
                rounded_products = fused.rounded_products,
                "model graph fused"
            );
            (Cow::Owned(bytes), fused)
        }
        Ok(None) | Err(_) => (Cow::Borrowed(model), Fused::default()),
    }
}

/// A session whose operators run on `threads` threads (which do not spin while idle, so an
/// idle multi-threaded session never takes a core from the others). A tuned session (given
/// `shared` prepacked weights) leaves off the optimisers in [`DISABLED_OPTIMIZERS`] and keeps
/// its prepacked weights in `shared`.
fn new_session(
    env: &Environment,
    model: &[u8],
    path: &Path,
    threads: usize,
    shared: Option<&PrepackedWeights>,
    rounded_products: bool,
) -> Result<Session, Error> {
    let model_error = |e: String| Error::Model {
        path: path.to_path_buf(),
        reason: e,
    };
    let builder = Session::builder(env).map_err(|e| model_error(e.to_string()))?;
    let builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| model_error(e.to_string()))?;
    let builder = builder
        .with_intra_threads(threads)
        .map_err(|e| model_error(e.to_string()))?;
    let builder = builder
        .with_intra_op_spinning(false)
        .map_err(|e| model_error(e.to_string()))?;
    let builder = builder
        .with_inter_threads(1)
        .map_err(|e| model_error(e.to_string()))?;
    let builder = match shared {
        Some(weights) => builder
            .with_disabled_optimizers(DISABLED_OPTIMIZERS)
            .map_err(|e| model_error(e.to_string()))?
            .with_prepacked_weights(weights)
            .map_err(|e| model_error(e.to_string()))?,
        None => builder,
    };
    let mut builder = if rounded_products {
        let domain = product_op::domain().map_err(|e| model_error(e.to_string()))?;
        builder
            .with_operators(domain)
            .map_err(|e| model_error(e.to_string()))?
    } else {
        builder
    };
    builder
        .commit_from_memory(model)
        .map_err(|e| model_error(e.to_string()))
}

/// Finds the model's input names: token ids, attention mask and (optionally) token types.
fn model_inputs(session: &Mutex<Session>, path: &Path) -> Result<ModelInputs, Error> {
    let session = session.lock().unwrap_or_else(PoisonError::into_inner);
    let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let find = |wanted: &str| names.iter().find(|n| **n == wanted).map(|n| n.to_string());
    let required = |wanted: &str| {
        find(wanted).ok_or_else(|| Error::Model {
            path: path.to_path_buf(),
            reason: format!("model has no input {wanted} (inputs: {})", names.join(", ")),
        })
    };
    Ok(ModelInputs {
        ids: required("input_ids")?,
        mask: required(MASK_INPUT)?,
        type_ids: find("token_type_ids"),
    })
}

fn check_output(session: &Mutex<Session>, output: &str, path: &Path) -> Result<(), Error> {
    let session = session.lock().unwrap_or_else(PoisonError::into_inner);
    if session.outputs().iter().any(|o| o.name() == output) {
        Ok(())
    } else {
        Err(Error::Model {
            path: path.to_path_buf(),
            reason: format!("model has no output {output}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let v = pool(Pooling::Mean, &hidden, &[1, 1, 0], 2);
        assert_eq!(v, vec![2.0, 3.0]);
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
