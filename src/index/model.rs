//! The model manifest (`models/manifest.json`): which files make up an embedding model and how
//! to turn its output into one vector per text, so another sentence-transformers ONNX export can
//! be dropped in without code changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;

/// How token embeddings become one text embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the token embeddings, weighted by the attention mask.
    Mean,
    /// The first token's (`[CLS]`) embedding.
    Cls,
}

/// The contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Human-readable model name (for status output).
    #[serde(default)]
    pub name: String,
    /// ONNX model file name, relative to the models folder.
    pub model: String,
    /// `tokenizer.json` file name, relative to the models folder.
    pub tokenizer: String,
    /// ONNX Runtime shared library file name, relative to the models folder.
    pub runtime_library: String,
    /// Embedding dimension.
    pub dimension: usize,
    /// Truncation length in tokens, special tokens included.
    pub max_tokens: usize,
    /// Pooling of token embeddings.
    pub pooling: Pooling,
    /// Whether to L2-normalise the pooled vector.
    pub normalize: bool,
    /// Name of the model output holding token embeddings `[batch, seq, dimension]`.
    #[serde(default = "default_output")]
    pub output: String,
    /// Text prepended to queries.
    #[serde(default)]
    pub query_prefix: String,
    /// Text prepended to passages.
    #[serde(default)]
    pub passage_prefix: String,
    /// Attention heads per layer. When given, each self-attention block of a BERT-style graph
    /// runs as one fused ONNX Runtime `Attention` operator (see `index::fused_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_heads: Option<usize>,
}

fn default_output() -> String {
    "last_hidden_state".to_owned()
}

impl Manifest {
    /// File name of the manifest inside a models folder.
    pub const FILE: &'static str = "manifest.json";

    /// Reads and checks `models_dir/manifest.json`.
    pub fn load(models_dir: &Path) -> Result<Manifest, Error> {
        let path = models_dir.join(Self::FILE);
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::Model {
                    path: path.clone(),
                    reason: "not found; run models/fetch.sh or pass --models".to_owned(),
                }
            } else {
                Error::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Model {
            path: path.clone(),
            reason: format!("invalid manifest: {e}"),
        })?;
        if manifest.dimension == 0 || manifest.max_tokens < 8 {
            return Err(Error::Model {
                path,
                reason: "dimension must be positive and max_tokens at least 8".to_owned(),
            });
        }
        Ok(manifest)
    }

    /// Path of the model file.
    pub fn model_path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.model)
    }

    /// Path of the tokenizer file.
    pub fn tokenizer_path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.tokenizer)
    }

    /// Path of the runtime library: `ORT_DYLIB_PATH` when set, else the manifest's file.
    pub fn runtime_path(&self, models_dir: &Path) -> PathBuf {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => models_dir.join(&self.runtime_library),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_committed_manifest() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m.dimension, 384);
        assert_eq!(m.max_tokens, 256);
        assert_eq!(m.pooling, Pooling::Mean);
        assert!(m.normalize);
        assert_eq!(m.output, "last_hidden_state");
    }

    #[test]
    fn missing_manifest_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("fetch.sh"), "{err}");
    }
}
