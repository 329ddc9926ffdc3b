//! `rediscover demo`: the whole job on the embedded default, in one process: a mock Lever with a
//! generated talent pool on loopback, a sync into the data folder, the indexes, and the ranked
//! people for one of the pool's open postings.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::domain::Posting;
use crate::engine::Engine;
use crate::lever::{ApiKey, ClientConfig, Credentials};
use crate::mock_lever::{MockConfig, MockLever, generate_pool};
use crate::search::Query;
use crate::sync::SyncOptions;

/// The mock allows this many requests per second so the demo takes seconds, not minutes
/// (Lever itself allows 10; `sync` against real Lever keeps to 8 by default).
const DEMO_MOCK_RATE: f64 = 1000.0;
const DEMO_CLIENT_RATE: f64 = 500.0;
/// The demo's data folder by default.
const DEFAULT_DATA: &str = "index/demo";
/// The file in the data folder naming the generated pool its store was synced from.
const POOL_FILE: &str = "demo-pool";

/// Run the whole job on a generated pool: start a mock Lever, sync, index, match a posting.
///
/// Nothing leaves this machine: the mock Lever listens on 127.0.0.1 only and is stopped at the
/// end. Run it twice to see an incremental sync (nothing changed, nothing re-indexed).
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "\
Examples:
  rediscover demo
  rediscover demo --candidates 2000 --seed 3 --posting frontend --limit 5
  # Afterwards, query the demo's data folder yourself:
  rediscover match --data index/demo --text \"Site reliability engineer, Kubernetes\""
)]
pub struct Args {
    /// Candidates in the generated talent pool.
    #[arg(long, default_value_t = 300)]
    pub candidates: usize,
    /// Seed of the generated pool (the same seed gives the same pool).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Data folder for the demo's store and indexes.
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Match this posting (an id or a part of its title); default: the first open posting.
    #[arg(long)]
    pub posting: Option<String>,
    /// People to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Folder with the embedding model files (default ./models).
    #[arg(long, env = "REDISCOVER_MODELS")]
    pub models: Option<PathBuf>,
}

/// Runs `rediscover demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.candidates == 0 {
        bail!("--candidates must be at least 1");
    }
    if !(1..=crate::search::MAX_LIMIT).contains(&args.limit) {
        bail!(
            "--limit must be between 1 and {}, got {}",
            crate::search::MAX_LIMIT,
            args.limit
        );
    }
    let pool = generate_pool(args.candidates, args.seed);
    if let Some(wanted) = args.posting.as_deref()
        && !pool.postings().iter().any(|p| {
            let text = |key: &str| p.get(key).and_then(|v| v.as_str()).unwrap_or_default();
            posting_named(text("id"), text("text"), wanted)
        })
    {
        bail!("no posting of the generated pool has the id or a title containing {wanted:?}");
    }
    let pool_name = format!("{} candidates, seed {}\n", args.candidates, args.seed);
    let full = other_pool(&args.data, &pool_name)?;
    let embedder = super::matching::load_embedder(args.models.as_deref(), None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let prefetcher = super::index::start_prefetch(&embedder)?;
    let report = runtime.block_on(sync_from_mock(&args, pool, full, prefetcher.sender()))?;
    let marker = args.data.join(POOL_FILE);
    std::fs::write(&marker, &pool_name)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    super::sync::print_summary(&report);
    let outcome =
        super::index::after_sync(&args.data, &embedder, prefetcher, &report.commit, true)?;
    if outcome.generation.is_none() {
        bail!("nothing was indexed");
    }

    let engine = Engine::open(&args.data, Some(embedder))?;
    let postings = engine.postings()?;
    let posting = choose_posting(&postings, args.posting.as_deref())?;
    let mut query = Query::posting(posting.id.clone());
    query.limit = args.limit;
    let started = Instant::now();
    let response = engine.search(&query)?;
    let took = started.elapsed();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out)?;
    writeln!(
        out,
        "Rediscovered for the open posting \"{}\" ({}, {}; id {}):",
        posting.title, posting.team, posting.location, posting.id
    )?;
    super::matching::print_table(&mut out, &response, took)?;
    writeln!(
        out,
        "\nTry: rediscover match --data {} --text \"your job description\"",
        args.data.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `data` holds the store of another generated pool than `pool_name`: then the sync
/// lists everything again, which purges the other pool. A store the demo did not write (no
/// pool file) is refused unless it is in the default folder, where earlier demos left theirs.
fn other_pool(data: &Path, pool_name: &str) -> anyhow::Result<bool> {
    if !crate::store::Store::exists(data) {
        return Ok(false);
    }
    match std::fs::read_to_string(data.join(POOL_FILE)) {
        Ok(synced) if synced == pool_name => Ok(false),
        Ok(synced) => {
            println!(
                "{} holds the pool of {}: this sync lists everything and replaces it",
                data.display(),
                synced.trim()
            );
            Ok(true)
        }
        Err(_) if data == Path::new(DEFAULT_DATA) => Ok(true),
        Err(_) => bail!(
            "{} holds a store the demo did not write; pass another --data folder (the demo replaces its folder's pool)",
            data.display()
        ),
    }
}

async fn sync_from_mock(
    args: &Args,
    pool: crate::mock_lever::Pool,
    full: bool,
    fetched: std::sync::mpsc::SyncSender<crate::domain::Candidate>,
) -> anyhow::Result<crate::sync::SyncReport> {
    let started = Instant::now();
    let key = format!("demo-{:016x}", rand::random::<u64>());
    let config = MockConfig {
        api_keys: vec![key.clone()],
        rate_per_sec: DEMO_MOCK_RATE,
        burst: 100,
        ..MockConfig::default()
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mock = MockLever::start(loopback, pool, config)
        .await
        .context("cannot start the mock Lever")?;
    println!(
        "mock Lever: {} generated candidates (seed {}) at {} ({:.1} s)",
        args.candidates,
        args.seed,
        mock.base_url(),
        started.elapsed().as_secs_f64()
    );
    let client = ClientConfig {
        base_url: mock.base_url(),
        rate: DEMO_CLIENT_RATE,
        burst: Some(50),
        ..ClientConfig::default()
    };
    let credentials = Credentials::ApiKey(ApiKey::new(key).context("demo key is empty")?);
    let mut options = SyncOptions::new(&args.data, client, credentials);
    options.progress = true;
    options.fetched = Some(fetched);
    options.full = full;
    let report = crate::sync::run(options).await;
    mock.shutdown().await;
    report.with_context(|| format!("sync into {} failed", args.data.display()))
}

/// The posting named by `wanted` (id, or a case-insensitive part of its title), else the first
/// published one.
fn choose_posting<'p>(
    postings: &'p [Posting],
    wanted: Option<&str>,
) -> anyhow::Result<&'p Posting> {
    let found = match wanted {
        Some(wanted) => postings.iter().find(|p| p.id == wanted).or_else(|| {
            postings
                .iter()
                .find(|p| posting_named(&p.id, &p.title, wanted))
        }),
        None => postings
            .iter()
            .find(|p| p.state == "published")
            .or_else(|| postings.first()),
    };
    found.with_context(|| match wanted {
        Some(w) => format!("no synced posting has the id or a title containing {w:?}"),
        None => "the synced pool has no posting".to_string(),
    })
}

/// Whether `wanted` is the posting's id or a case-insensitive part of its title.
fn posting_named(id: &str, title: &str, wanted: &str) -> bool {
    id == wanted || title.to_lowercase().contains(&wanted.to_lowercase())
}
