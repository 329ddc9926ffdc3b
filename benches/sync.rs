//! Sync throughput against the in-process mock Lever: how close a run gets to Lever's rate limit
//! (the physical limit of a real sync) and how fast the client itself is when the limit is lifted.
//!
//! Then a sync followed by indexing, with and without embedding while fetching (the
//! `pipeline::Prefetcher`), in the same run.
//!
//! Webhook intake: signed deliveries per second into the inbox through `serve`'s route, each
//! on disk before its answer.
//!
//! `cargo bench --bench sync` (release). Sizes: `SYNC_BENCH_CANDIDATES` (default 2000) for the
//! rate-limited run, `SYNC_BENCH_FAST_CANDIDATES` (default 2000) for the unthrottled run,
//! `SYNC_BENCH_WEBHOOKS` (default 2000) deliveries from 4 senders,
//! `SYNC_BENCH_INDEX_CANDIDATES` (default 400) at `SYNC_BENCH_INDEX_RATE` calls/s (default 40)
//! for sync + index (needs the model files).

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use rediscover::api::http::{AppState, app};
use rediscover::domain::Candidate;
use rediscover::engine::Engine;
use rediscover::extract::{Isolation, Worker};
use rediscover::index::{Embedder, Progress};
use rediscover::lever::{ApiKey, ClientConfig, Credentials};
use rediscover::mock_lever::{MockConfig, MockLever, generate_pool};
use rediscover::pipeline::{self, Prefetcher};
use rediscover::store::Store;
use rediscover::sync::inbox::{Inbox, TOKENS_FILE};
use rediscover::sync::{SyncOptions, SyncReport, run};

const KEY: &str = "bench-key";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn sync_once(
    candidates: usize,
    mock_rate: f64,
    mock_burst: u32,
    client_rate: f64,
    fetched: Option<SyncSender<Candidate>>,
) -> (SyncReport, u64, tempfile::TempDir) {
    let config = MockConfig {
        api_keys: vec![KEY.into()],
        rate_per_sec: mock_rate,
        burst: mock_burst,
        ..MockConfig::default()
    };
    let pool = generate_pool(candidates, 42);
    let lever = match MockLever::start("127.0.0.1:0".parse().expect("addr"), pool, config).await {
        Ok(lever) => lever,
        Err(e) => panic!("cannot start the mock lever: {e}"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let client = ClientConfig {
        base_url: lever.base_url(),
        rate: client_rate,
        backoff_base: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    let key = ApiKey::new(KEY).expect("key");
    let mut options = SyncOptions::new(dir.path(), client, Credentials::ApiKey(key));
    options.progress = false;
    options.concurrency = 64;
    options.fetched = fetched;
    // Resume files are extracted in child processes of the binary, as `rediscover sync` does.
    options.extraction = Isolation::Process(Worker::new(env!("CARGO_BIN_EXE_rediscover")));
    let report = match run(options).await {
        Ok(report) => report,
        Err(e) => panic!("sync failed: {e}"),
    };
    let mock_429 = lever.stats().rate_limited;
    lever.shutdown().await;
    (report, mock_429, dir)
}

/// Sync `candidates` at `rate` calls/s, then index; with `ahead`, embedding runs during the
/// sync. Returns (sync seconds, index seconds, whole seconds).
fn sync_and_index(
    runtime: &tokio::runtime::Runtime,
    embedder: &Arc<Embedder>,
    candidates: usize,
    rate: f64,
    ahead: bool,
) -> (f64, f64, f64) {
    let started = Instant::now();
    let prefetcher = ahead.then(|| Prefetcher::start(Arc::clone(embedder)).expect("prefetcher"));
    let sender = prefetcher.as_ref().map(Prefetcher::sender);
    let (report, _, dir) = runtime.block_on(sync_once(candidates, rate, rate as u32, rate, sender));
    let synced = started.elapsed().as_secs_f64();
    let cache = prefetcher.map(Prefetcher::finish);
    let store = Store::open(dir.path()).expect("store");
    let outcome = pipeline::bring_up_to_date(
        dir.path(),
        &store,
        Some(&report.commit),
        embedder,
        cache.as_deref(),
        &Progress::none(),
    )
    .expect("index");
    assert!(
        outcome
            .stats
            .is_some_and(|s| s.candidates as usize == candidates)
    );
    let whole = started.elapsed().as_secs_f64();
    (synced, whole - synced, whole)
}

/// `deliveries` signed Lever deliveries from `senders` concurrent clients to `/webhooks/lever`
/// of a server on loopback; returns deliveries/s and each delivery's latency in ms.
async fn webhook_intake(deliveries: usize, senders: usize) -> (f64, Vec<f64>) {
    const SIGNATURE_TOKEN: &str = "bench-signature-token";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(TOKENS_FILE), SIGNATURE_TOKEN).expect("tokens");
    let engine = Engine::open(dir.path(), None).expect("engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/lever",
        listener.local_addr().expect("addr")
    );
    let server = tokio::spawn(
        axum::serve(listener, app(AppState::new(Arc::new(engine), None))).into_future(),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|sender| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in (sender..deliveries).step_by(senders) {
                    let token = format!("{i:048}");
                    let at = rediscover::index::generation::now_ms() - 60_000 + i as i64;
                    let body = serde_json::json!({
                        "event": "candidateStageChange", "triggeredAt": at, "token": token,
                        "signature": rediscover::lever::webhook::sign(SIGNATURE_TOKEN, &token, at),
                        "data": {"opportunityId": format!("opportunity-{i}")}});
                    let sent = Instant::now();
                    let response = client.post(&url).json(&body).send().await.expect("post");
                    assert!(response.status().is_success(), "{}", response.status());
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("sender"));
    }
    let per_second = deliveries as f64 / started.elapsed().as_secs_f64();
    server.abort();
    let kept = Inbox::new(dir.path()).read().expect("inbox").notices.len();
    assert_eq!(kept, deliveries, "every delivery is in the inbox");
    (per_second, latencies)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let limited = env_usize("SYNC_BENCH_CANDIDATES", 2000);
    let fast = env_usize("SYNC_BENCH_FAST_CANDIDATES", 2000);

    if limited > 0 {
        let (report, mock_429, _) = runtime.block_on(sync_once(limited, 10.0, 20, 10.0, None));
        let floor = report.api_calls as f64 / 10.0;
        println!("sync/rate-limited: mock 10/s (burst 20), limiter 10/s, {limited} candidates");
        println!("  api calls           {}", report.api_calls);
        println!(
            "  calls per candidate {:.2}",
            report.api_calls as f64 / limited as f64
        );
        println!("  wall seconds        {:.1}", report.wall_seconds);
        println!("  calls / 10 per s    {floor:.1}");
        println!(
            "  ratio               {:.3} (target <= 1.10)",
            report.wall_seconds / floor
        );
        println!(
            "  429s                {mock_429} (client retries {})",
            report.retries
        );
    }
    if fast > 0 {
        let (report, _, _) = runtime.block_on(sync_once(fast, 1000.0, 1000, 1000.0, None));
        println!("sync/unthrottled: mock 1000/s, limiter 1000/s, {fast} candidates");
        println!("  api calls           {}", report.api_calls);
        println!("  wall seconds        {:.2}", report.wall_seconds);
        println!(
            "  candidates per s    {:.0}",
            fast as f64 / report.wall_seconds
        );
        println!(
            "  calls per s         {:.0}",
            report.api_calls as f64 / report.wall_seconds
        );
    }
    let deliveries = env_usize("SYNC_BENCH_WEBHOOKS", 2000);
    if deliveries > 0 {
        let (per_second, mut latencies) = runtime.block_on(webhook_intake(deliveries, 4));
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "webhooks: {deliveries} signed deliveries from 4 senders, each synced to the inbox before its 200"
        );
        println!("  deliveries per s    {per_second:.0}");
        println!("  latency p50 / p99   {:.2} / {:.2} ms", at(0.5), at(0.99));
    }
    let indexed = env_usize("SYNC_BENCH_INDEX_CANDIDATES", 400);
    if indexed > 0 {
        let rate = env_usize("SYNC_BENCH_INDEX_RATE", 40) as f64;
        let models = Embedder::default_models_dir();
        let embedder = match Embedder::load(&models) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                println!(
                    "sync+index: skipped, no model in {} ({e})",
                    models.display()
                );
                return;
            }
        };
        println!("sync+index: {indexed} candidates, mock and limiter at {rate}/s");
        for ahead in [false, true] {
            let (sync, index, whole) = sync_and_index(&runtime, &embedder, indexed, rate, ahead);
            let label = if ahead {
                "embedding while fetching"
            } else {
                "sync, then index"
            };
            println!("  {label:<25} sync {sync:6.1} s + index {index:6.1} s = {whole:6.1} s");
        }
    }
}
