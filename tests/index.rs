//! Integration tests: index. The embedder against independent reference vectors, and the
//! keyword + vector index through build, search, incremental update, reopen and crash recovery.

use std::path::PathBuf;
use std::sync::OnceLock;

use rediscover::index::Embedder;

/// The models folder of this checkout; CI runs `models/fetch.sh` before the tests.
fn models_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(
        dir.join("model.onnx").exists() && dir.join("libonnxruntime.so.1.31.1").exists(),
        "model files missing in {}: run models/fetch.sh first",
        dir.display()
    );
    dir
}

/// One embedder shared by every test of this binary (loading takes a moment).
fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| match Embedder::load(&models_dir()) {
        Ok(e) => e,
        Err(e) => panic!("cannot load the embedder ({e}): run models/fetch.sh"),
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[derive(serde::Deserialize)]
struct Reference {
    model_sha256: String,
    texts: Vec<String>,
    tokens: Vec<usize>,
    vectors: Vec<Vec<f32>>,
}

#[test]
fn embeddings_match_python_onnxruntime_reference() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embeddings/reference.json");
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let e = embedder();
    assert_eq!(
        e.model_sha256(),
        reference.model_sha256,
        "model file differs"
    );
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let got = e.embed_passages(&texts).unwrap();
    assert!(reference.tokens.iter().any(|&t| t == e.max_tokens()));
    for (i, (g, r)) in got.iter().zip(&reference.vectors).enumerate() {
        assert_eq!(g.len(), r.len());
        let diff = g
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "text {i}: max abs diff {diff}");
    }
    // The query path (single text, no batching) agrees with the batched path.
    let q = e.embed_query(texts[2]).unwrap();
    let diff = q
        .iter()
        .zip(&got[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4, "query vs passage diff {diff}");
}

#[test]
fn embeddings_are_semantically_sane() {
    let e = embedder();
    let v = e
        .embed_passages(&["software engineer", "programmer", "registered nurse"])
        .unwrap();
    for x in &v {
        let norm = cosine(x, x).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
}

#[test]
fn token_counts_include_special_tokens_and_are_not_truncated() {
    let e = embedder();
    assert_eq!(e.count_tokens("software engineer").unwrap(), 4);
    let long = "word ".repeat(600);
    assert_eq!(e.count_tokens(&long).unwrap(), 602);
}
