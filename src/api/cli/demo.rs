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
    /// People to show (1 to 200).
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
    let pool_name = format!("{} candidates, seed {}", args.candidates, args.seed);
    let full = PoolMarker::check(&args.data, &pool_name)?;
    let embedder = super::matching::load_embedder(args.models.as_deref(), None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let prefetcher = super::index::start_prefetch(&embedder, full.then_some(args.data.as_path()))?;
    let report = runtime.block_on(sync_from_mock(&args, pool, full, prefetcher.sender()))?;
    // The store now holds exactly this pool when the run read every listing (a full run
    // purged the rest; an incremental one started from a complete store of this pool).
    PoolMarker {
        pool: pool_name,
        sync_runs: sync_runs(&args.data)?,
        complete: report.listing_complete,
    }
    .write(&args.data)?;
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
        super::matching::terminal_safe(&posting.title),
        super::matching::terminal_safe(&posting.team),
        super::matching::terminal_safe(&posting.location),
        super::matching::terminal_safe(&posting.id)
    )?;
    super::matching::print_table(&mut out, &response, took)?;
    writeln!(
        out,
        "\nTry: rediscover match --data {} --text \"your job description\"",
        args.data.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What `DATA/demo-pool` records: the generated pool the demo last synced into the folder,
/// tied to the store by its count of successful syncs, so a store any other sync touched
/// since is never taken for the demo's.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PoolMarker {
    /// `N candidates, seed S`.
    pool: String,
    /// The store's `sync_runs` when the demo wrote this.
    sync_runs: u64,
    /// Whether the store held exactly this pool then (false while a replacement is under way).
    complete: bool,
}

impl PoolMarker {
    /// Whether the sync into `data` must list everything (the store holds another pool, or a
    /// replacement was interrupted); refuses a store the demo did not write, or that another
    /// sync changed since. Before an existing store is synced, the marker says a sync of
    /// `pool` is under way, so an interrupted one is finished by a full run next time.
    fn check(data: &Path, pool: &str) -> anyhow::Result<bool> {
        if !crate::store::Store::exists(data) {
            return Ok(false);
        }
        let runs = sync_runs(data)?;
        let marker = std::fs::read(data.join(POOL_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<PoolMarker>(&bytes).ok())
            .filter(|m| m.sync_runs == runs);
        let Some(marker) = marker else {
            bail!(
                "{} holds a store the demo did not write, or that another sync changed since; pass another --data folder",
                data.display()
            );
        };
        let full = !(marker.complete && marker.pool == pool);
        if marker.pool != pool {
            say!(
                "{} holds the pool of {}: this sync lists everything and replaces it",
                data.display(),
                marker.pool
            );
        }
        PoolMarker {
            pool: pool.to_owned(),
            sync_runs: runs,
            complete: false,
        }
        .write(data)?;
        Ok(full)
    }

    /// Writes the marker (a temporary file renamed over the old one).
    fn write(&self, data: &Path) -> anyhow::Result<()> {
        let path = data.join(POOL_FILE);
        let temporary = data.join(format!("{POOL_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).context("cannot encode the demo pool marker")?;
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// How many syncs the store in `data` has committed.
fn sync_runs(data: &Path) -> anyhow::Result<u64> {
    let store = crate::store::Store::open(data)
        .with_context(|| format!("cannot open the store in {}", data.display()))?;
    Ok(store.sync_state().runs)
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
    say!(
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
    options.extraction = super::extraction_in_child();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, SyncState};

    fn marker(data: &Path) -> PoolMarker {
        serde_json::from_slice(&std::fs::read(data.join(POOL_FILE)).unwrap()).unwrap()
    }

    #[test]
    fn the_pool_marker_decides_full_runs_and_refuses_other_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        assert!(!PoolMarker::check(data, "A").unwrap(), "no store yet");
        let batch = Store::begin(data).unwrap();
        batch
            .commit(SyncState {
                runs: 1,
                ..SyncState::default()
            })
            .unwrap();
        assert!(
            PoolMarker::check(data, "A").is_err(),
            "no marker: not the demo's"
        );

        let complete = |pool: &str, sync_runs| PoolMarker {
            pool: pool.into(),
            sync_runs,
            complete: true,
        };
        complete("A", 1).write(data).unwrap();
        assert!(
            !PoolMarker::check(data, "A").unwrap(),
            "same pool: incremental"
        );
        assert!(
            !marker(data).complete,
            "under way until the sync says otherwise"
        );
        assert!(
            PoolMarker::check(data, "A").unwrap(),
            "a sync that never finished is finished by a full run"
        );

        complete("B", 1).write(data).unwrap();
        assert!(PoolMarker::check(data, "A").unwrap(), "another pool: full");
        assert_eq!(marker(data).pool, "A");

        complete("A", 0).write(data).unwrap();
        let err = PoolMarker::check(data, "A").unwrap_err();
        assert!(err.to_string().contains("another sync changed"), "{err}");
    }
}
