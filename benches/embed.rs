//! Embedding throughput: texts/s and tokens/s at 128 and 256 tokens for the Rust embedder, and
//! for the same model files run by Python onnxruntime in the same run (when a Python with
//! onnxruntime, tokenizers and numpy is available: `BENCH_PYTHON`, default `/tmp/venv/bin/python`),
//! with the ratio and the share of the machine's fp32 peak (measured here with an FMA loop on
//! every core: the clock under load is not the nominal one in /proc/cpuinfo). The Rust embedder
//! runs its fused graph with rounded products; the same fused graph with fp32 products is
//! measured beside it (`BENCH_BASELINE=shipped`: the model as shipped instead), so the gain of
//! the rewrite shows too. "% of peak" counts the model's FLOPs, whatever arithmetic ran them.
//!
//! Run: `cargo bench --bench embed` (env `BENCH_SECONDS`, default 10 per measurement;
//! `BENCH_ROUNDS`, default 3 rounds per length, reported with their medians; within a round the
//! contenders take turns, one pass over the texts each, so they share the host's drift).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rediscover::index::Embedder;
use rediscover::index::embed::Graph;

/// Texts per measured round (several batches, so every core has work).
const TEXTS: usize = 64;
/// Python batch size (the issue's measurement used 8).
const PYTHON_BATCH: usize = 8;

const WORDS: &[&str] = &[
    "designed",
    "distributed",
    "payments",
    "platform",
    "kubernetes",
    "migrated",
    "services",
    "mentored",
    "engineers",
    "patients",
    "clinical",
    "budget",
    "forecasting",
    "customers",
    "latency",
    "reduced",
    "by",
    "percent",
    "across",
    "teams",
    "led",
    "hiring",
    "roadmap",
    "python",
    "rust",
    "analytics",
    "warehouse",
    "logistics",
    "compliance",
    "audits",
    "sales",
    "pipeline",
    "quarterly",
    "targets",
    "exceeded",
    "nursing",
    "shifts",
    "certified",
    "safety",
];

fn main() {
    let models = std::env::var_os("REDISCOVER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let embedder = match Embedder::load(&models) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("embed bench: cannot load the model ({e}); run models/fetch.sh");
            std::process::exit(1);
        }
    };
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let sessions = rayon::current_num_threads().min(8);
    let (baseline_graph, baseline_label) = match std::env::var("BENCH_BASELINE").as_deref() {
        Ok("shipped") => (Graph::AsShipped, "as shipped"),
        _ => (Graph::FusedFp32, "fp32 products"),
    };
    let shipped = match Embedder::load_graph(&models, sessions, baseline_graph) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("embed bench: cannot load the model {baseline_label} ({e})");
            std::process::exit(1);
        }
    };
    let peak = fp32_peak_gflops();
    let fused = embedder.fused();
    println!(
        "embed bench: {} rayon threads, {sessions} sessions of 1 thread; fp32 peak {peak:.0} GFLOP/s measured; \
         fused graph: {} attention blocks, {} GELUs, {} rounded products; baseline: {baseline_label}",
        rayon::current_num_threads(),
        fused.attention,
        fused.gelu,
        fused.rounded_products
    );
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    for tokens in [128usize, 256] {
        let texts = texts_of(&embedder, tokens, TEXTS);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let budget = Duration::from_secs(seconds);
        let share = |texts_per_s: f64| {
            100.0 * texts_per_s * tokens as f64 * flops_per_token(tokens) / 1e9 / peak
        };
        // Interleaved passes: the machine's load drifts within seconds, so each round runs one
        // pass of each contender in turn until each has had about `budget`, and compares sums.
        let mut python = PythonPasses::start(&models, &texts);
        let mut fused_ratios = Vec::new();
        let mut python_ratios = Vec::new();
        for round in 1..=rounds {
            let (mut rust_s, mut base_s, mut python_s, mut passes) = (0.0, 0.0, 0.0, 0usize);
            let contenders = if python.is_some() { 3 } else { 2 };
            let start = Instant::now();
            while passes == 0 || start.elapsed() < budget * contenders {
                rust_s += timed(|| embedder.embed_passages(&refs).map(|_| ()));
                base_s += timed(|| shipped.embed_passages(&refs).map(|_| ()));
                if let Some(py) = python.as_mut() {
                    match py.pass() {
                        Some(seconds) => python_s += seconds,
                        None => python = None,
                    }
                }
                passes += 1;
            }
            let per_s = |seconds: f64| (passes * texts.len()) as f64 / seconds;
            let (rust, as_shipped) = (per_s(rust_s), per_s(base_s));
            fused_ratios.push(rust / as_shipped);
            println!(
                "{tokens:>3} tokens, round {round} ({passes} passes each): rust {rust:6.1} texts/s ({:6.0} tokens/s, {:.0}% of peak); \
                 {baseline_label} {as_shipped:6.1} ({:.0}%), rust/baseline {:.2}",
                rust * tokens as f64,
                share(rust),
                share(as_shipped),
                rust / as_shipped
            );
            if python.is_some() {
                let py = per_s(python_s);
                python_ratios.push(rust / py);
                println!(
                    "{tokens:>3} tokens, round {round}: python {py:6.1} texts/s ({:6.0} tokens/s, {:.0}% of peak), rust/python {:.2}",
                    py * tokens as f64,
                    share(py),
                    rust / py
                );
            } else {
                println!("python {tokens:>3} tokens: skipped (no python with onnxruntime)");
            }
        }
        println!(
            "{tokens:>3} tokens: median over {rounds} rounds: rust/baseline {:.2}, rust/python {}",
            median(&mut fused_ratios),
            if python_ratios.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", median(&mut python_ratios))
            }
        );
    }
    query_latency(&embedder, &models, peak);
}

/// Latency of one 230-token query (a posting): the multi-threaded query session against a
/// single-threaded one, and the floor set by the FLOPs at the machine's peak.
fn query_latency(embedder: &Embedder, models: &std::path::Path, peak: f64) {
    const TOKENS: usize = 230;
    const RUNS: usize = 30;
    let single = match Embedder::load_with_sessions(models, 1) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("embed bench: cannot load a single-session embedder ({e})");
            return;
        }
    };
    let texts = texts_of(embedder, TOKENS - 2, RUNS);
    let floor_ms = TOKENS as f64 * flops_per_token(TOKENS) / (peak * 1e9) * 1e3;
    for (label, e) in [("all cores", embedder), ("one thread", &single)] {
        let _ = e.embed_query(&texts[0]);
        let mut ms: Vec<f64> = texts
            .iter()
            .map(|t| {
                let start = Instant::now();
                let _ = e.embed_query(t);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "query of {TOKENS} tokens, {label:<10}: p50 {:6.1} ms, p90 {:6.1} ms (floor at peak {floor_ms:.1} ms)",
            ms[RUNS / 2],
            ms[RUNS * 9 / 10]
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Seconds one call of `f` takes (a failed call counts as forever, so it cannot look fast).
fn timed<E>(f: impl FnOnce() -> Result<(), E>) -> f64 {
    let start = Instant::now();
    match f() {
        Ok(()) => start.elapsed().as_secs_f64(),
        Err(_) => f64::INFINITY,
    }
}

/// `n` different texts of exactly `tokens` tokens ([CLS]/[SEP] included).
fn texts_of(embedder: &Embedder, tokens: usize, n: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(tokens as u64);
    (0..n)
        .map(|_| {
            let mut words: Vec<&str> = Vec::new();
            loop {
                let mut shuffled = WORDS.to_vec();
                shuffled.shuffle(&mut rng);
                for w in shuffled {
                    words.push(w);
                    let text = words.join(" ");
                    if embedder.count_tokens(&text).unwrap_or(usize::MAX) >= tokens {
                        return text;
                    }
                }
            }
        })
        .collect()
}

/// Forward-pass FLOPs per token of a 6-layer, 384-wide BERT (MiniLM-L6) at `seq` tokens:
/// 2 x weights (QKV, output, 2 feed-forward) plus attention scores and mixing.
fn flops_per_token(seq: usize) -> f64 {
    let (d, ff, layers) = (384.0, 1536.0, 6.0);
    let weights = 4.0 * d * d + 2.0 * d * ff;
    layers * (2.0 * weights + 4.0 * seq as f64 * d)
}

/// The machine's fp32 peak in GFLOP/s: independent AVX2 fused multiply-adds on every core at
/// once, so the clock is the one the cores hold under load (3.2 GHz here against 2.45 nominal).
fn fp32_peak_gflops() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core: Vec<f64> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..cores)
            .map(|_| scope.spawn(fma_gflops_one_core))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap_or(0.0)).collect()
    });
    per_core.iter().sum()
}

/// GFLOP/s of one core running 12 independent 8-lane FMA chains (enough to cover the latency
/// of two FMA units) for about half a second.
fn fma_gflops_one_core() -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        const ROUNDS: u64 = 250_000_000;
        let start = Instant::now();
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        let sink = unsafe { fma_chains(ROUNDS) };
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        return (ROUNDS * 12 * 8 * 2) as f64 / seconds / 1e9;
    }
    // Without AVX2: four SSE lanes, one FMA-less multiply-add per cycle at 2.5 GHz (a guess).
    4.0 * 2.0 * 2.5
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    let b = _mm256_set1_ps(1.000_000_1);
    let c = _mm256_set1_ps(0.999_999_9);
    let mut acc = [_mm256_set1_ps(0.5); 12];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut lanes = [0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    // SAFETY: `lanes` holds 8 f32s.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// Python onnxruntime on the same files: loads the model, warms up, says `ready`, then runs one
/// pass over the texts (batches of `batch`) for each `run` line and answers its seconds.
const PYTHON_SCRIPT: &str = r#"
import json, sys, time
import numpy as np, onnxruntime
from tokenizers import Tokenizer
models, texts_path, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = json.load(open(texts_path))
m = json.load(open(f"{models}/manifest.json"))
tok = Tokenizer.from_file(f"{models}/{m['tokenizer']}")
tok.no_padding(); tok.enable_truncation(max_length=m["max_tokens"]); tok.enable_padding()
sess = onnxruntime.InferenceSession(f"{models}/{m['model']}", providers=["CPUExecutionProvider"])
names = {i.name for i in sess.get_inputs()}
def run():
    for i in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[i:i + batch])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names: feeds["token_type_ids"] = np.zeros_like(ids)
        h = sess.run(["last_hidden_state"], feeds)[0]
        w = mask[:, :, None].astype(np.float32)
        v = (h * w).sum(1) / w.sum(1)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
run()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    start = time.perf_counter(); run()
    print(time.perf_counter() - start, flush=True)
"#;

/// A Python onnxruntime process that runs passes on demand (see [`PYTHON_SCRIPT`]).
struct PythonPasses {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    _dir: tempfile::TempDir,
}

impl PythonPasses {
    /// Starts it on `texts`, if a Python with onnxruntime is available.
    fn start(models: &std::path::Path, texts: &[String]) -> Option<PythonPasses> {
        use std::io::BufRead;
        let python =
            std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "/tmp/venv/bin/python".into());
        let dir = tempfile::tempdir().ok()?;
        let texts_path = dir.path().join("texts.json");
        let script_path = dir.path().join("bench.py");
        std::fs::write(&texts_path, serde_json::to_vec(texts).ok()?).ok()?;
        std::fs::File::create(&script_path)
            .and_then(|mut f| f.write_all(PYTHON_SCRIPT.as_bytes()))
            .ok()?;
        let mut child = Command::new(python)
            .arg(&script_path)
            .arg(models)
            .arg(&texts_path)
            .arg(PYTHON_BATCH.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let mut stdout = std::io::BufReader::new(child.stdout.take()?);
        let mut line = String::new();
        if stdout.read_line(&mut line).ok()? == 0 || line.trim() != "ready" {
            eprintln!("python bench did not start (see its error above)");
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(PythonPasses {
            child,
            stdin,
            stdout,
            _dir: dir,
        })
    }

    /// Seconds of one pass over the texts.
    fn pass(&mut self) -> Option<f64> {
        use std::io::BufRead;
        writeln!(self.stdin, "run").ok()?;
        self.stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        line.trim().parse().ok()
    }
}

impl Drop for PythonPasses {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
