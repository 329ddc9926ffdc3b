//! Sync throughput against the in-process mock Lever: how close a run gets to Lever's rate limit
//! (the physical limit of a real sync) and how fast the client itself is when the limit is lifted.
//!
//! `cargo bench --bench sync` (release). Sizes: `SYNC_BENCH_CANDIDATES` (default 2000) for the
//! rate-limited run, `SYNC_BENCH_FAST_CANDIDATES` (default 2000) for the unthrottled run.

use std::time::Duration;

use rediscover::lever::{ApiKey, ClientConfig, Credentials};
use rediscover::mock_lever::{MockConfig, MockLever, generate_pool};
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
) -> (SyncReport, u64) {
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
    let report = match run(options).await {
        Ok(report) => report,
        Err(e) => panic!("sync failed: {e}"),
    };
    let mock_429 = lever.stats().rate_limited;
    lever.shutdown().await;
    (report, mock_429)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let limited = env_usize("SYNC_BENCH_CANDIDATES", 2000);
    let fast = env_usize("SYNC_BENCH_FAST_CANDIDATES", 2000);

    if limited > 0 {
        let (report, mock_429) = runtime.block_on(sync_once(limited, 10.0, 20, 10.0));
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
        let (report, _) = runtime.block_on(sync_once(fast, 1000.0, 1000, 1000.0));
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
}
