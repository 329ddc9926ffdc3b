//! Keeps the indexes in step with the store: after a sync commit they are updated in place of
//! the changed and deleted candidates, or rebuilt when they are missing, were built with another
//! model, or fell more than one generation behind (say, after a crash between the two steps).
//!
//! While a sync is fetching, a [`Prefetcher`] embeds the passages of what it fetched, so the
//! index step after the commit mostly takes vectors that are already computed: embedding
//! overlaps fetching, which Lever's rate limit leaves mostly idle.
//!
//! This is the only place where store and index meet; neither imports the other.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::domain::Candidate;
use crate::index::{
    self, Embedder, IndexStats, Indexes, Progress, ProgressEvent, VectorCache, chunk,
};
use crate::store::{Commit, Store};

/// Candidates waiting to be embedded ahead; beyond this a fetched candidate is left to the
/// index step (the sync never waits for the embedder).
const PREFETCH_QUEUE: usize = 4096;
/// Candidates embedded together by the prefetcher.
const PREFETCH_BATCH: usize = 32;

/// What bringing the indexes up to date did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexAction {
    /// The indexes already described the store's generation.
    UpToDate,
    /// Only the changed and deleted candidates were replaced or tombstoned.
    Updated,
    /// The indexes were built from the whole store.
    Rebuilt,
    /// The store is empty and was never committed: there is nothing to index.
    Empty,
}

/// The outcome of [`bring_up_to_date`].
#[derive(Debug, Clone)]
pub struct IndexOutcome {
    /// What was done.
    pub action: IndexAction,
    /// The index generation now current.
    pub generation: Option<u64>,
    /// The new generation's statistics, when one was written.
    pub stats: Option<IndexStats>,
    /// Wall time spent.
    pub seconds: f64,
}

/// Held while the indexes of a data folder are being written, so two builds (a `sync` and an
/// `index`, say) never race to switch generations.
struct IndexLock {
    _file: std::fs::File,
}

impl IndexLock {
    fn acquire(data_dir: &Path) -> crate::Result<IndexLock> {
        let path = data_dir.join("index.lock");
        let io = |source| crate::Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let file = std::fs::File::create(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(IndexLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(crate::Error::Busy(format!(
                "{}: the indexes are being built by another rediscover process",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// Embeds the passages of candidates as a sync fetches them, into a [`VectorCache`] that the
/// index step after the commit reads.
///
/// Hand [`Prefetcher::sender`] to [`SyncOptions::fetched`](crate::sync::SyncOptions::fetched);
/// [`Prefetcher::finish`] stops it and returns the cache. Failures only cost the head start:
/// the index step embeds whatever is missing and reports errors itself.
#[derive(Debug)]
pub struct Prefetcher {
    sender: SyncSender<Candidate>,
    /// [`Prefetcher::finish_with`] hands the worker its progress sink here, which tells it to
    /// embed what is queued and stop.
    finishing: Sender<Progress>,
    worker: JoinHandle<()>,
    cache: Arc<VectorCache>,
}

impl Prefetcher {
    /// Starts the background embedding thread.
    pub fn start(embedder: Arc<Embedder>) -> std::io::Result<Prefetcher> {
        Prefetcher::start_reusing(embedder, None)
    }

    /// Starts the background embedding thread, which first takes in the vectors of the
    /// current index generation under `reuse` (if any, and of the same model), so a run that
    /// fetches many unchanged candidates again (`sync --full`) does not embed them again.
    pub fn start_reusing(
        embedder: Arc<Embedder>,
        reuse: Option<PathBuf>,
    ) -> std::io::Result<Prefetcher> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(PREFETCH_QUEUE);
        let (finishing, finish_signal) = std::sync::mpsc::channel();
        let cache = Arc::new(VectorCache::new(&embedder));
        let worker = {
            let cache = Arc::clone(&cache);
            std::thread::Builder::new()
                .name("prefetch-embed".into())
                .spawn(move || {
                    if let Some(data_dir) = reuse {
                        reuse_current_vectors(&data_dir, &cache);
                    }
                    prefetch(&embedder, &receiver, &finish_signal, &cache)
                })?
        };
        Ok(Prefetcher {
            sender,
            finishing,
            worker,
            cache,
        })
    }

    /// Where the sync offers what it fetched.
    pub fn sender(&self) -> SyncSender<Candidate> {
        self.sender.clone()
    }

    /// Embeds what is still queued, stops and returns the cache. (The queue drains at the same
    /// speed the index step would embed it.)
    pub fn finish(self) -> Arc<VectorCache> {
        self.finish_with(Progress::none())
    }

    /// As [`Prefetcher::finish`], reporting on `progress` (phase `embedding`) how many of the
    /// candidates received in this run are embedded, while what is still queued is embedded
    /// (which can take a while when the sync fetched faster than the embedder kept up).
    pub fn finish_with(self, progress: Progress) -> Arc<VectorCache> {
        // Sent first: when the worker sees the queue closed, its signal is already there.
        let _ = self.finishing.send(progress);
        drop(self.sender);
        if self.worker.join().is_err() {
            tracing::warn!(
                "the prefetch embedder stopped abnormally; the index step embeds everything"
            );
        }
        self.cache
    }
}

/// The prefetcher's loop: a batch of queued candidates at a time until told to finish (or
/// dropped, or failing).
fn prefetch(
    embedder: &Embedder,
    receiver: &Receiver<Candidate>,
    finish_signal: &Receiver<Progress>,
    cache: &VectorCache,
) {
    let mut received = 0u64;
    let mut embedded = 0usize;
    loop {
        match finish_signal.try_recv() {
            Ok(progress) => {
                embedded += drain(embedder, receiver, cache, received, &progress);
                break;
            }
            // The prefetcher was dropped without finishing.
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        let first = match receiver.recv_timeout(Duration::from_millis(50)) {
            Ok(candidate) => candidate,
            // Closed: the finish signal (sent before the close) is read next turn.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => continue,
        };
        let mut batch = vec![first];
        while batch.len() < PREFETCH_BATCH {
            match receiver.try_recv() {
                Ok(candidate) => batch.push(candidate),
                Err(_) => break,
            }
        }
        received += batch.len() as u64;
        match embed_ahead(embedder, &batch, cache) {
            Ok(n) => embedded += n,
            Err(e) => {
                tracing::warn!(error = %e, "embedding ahead failed; the index step embeds the rest");
                break;
            }
        }
    }
    tracing::debug!(passages = embedded, "embedded ahead of the index step");
}

/// Embeds what is still queued once the sync is over, reporting progress over every candidate
/// received in the run (`received` of them already embedded). Returns the passages embedded.
fn drain(
    embedder: &Embedder,
    receiver: &Receiver<Candidate>,
    cache: &VectorCache,
    received: u64,
    progress: &Progress,
) -> usize {
    let rest: Vec<Candidate> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();
    let total = received + rest.len() as u64;
    if total == 0 {
        return 0;
    }
    if !rest.is_empty() {
        tracing::info!(
            candidates = rest.len(),
            "embedding the last fetched candidates before indexing"
        );
    }
    progress.emit(ProgressEvent::Start {
        phase: "embedding",
        total: Some(total),
    });
    progress.emit(ProgressEvent::Advance(received));
    let mut embedded = 0;
    for batch in rest.chunks(PREFETCH_BATCH) {
        match embed_ahead(embedder, batch, cache) {
            Ok(n) => embedded += n,
            Err(e) => {
                tracing::warn!(error = %e, "embedding ahead failed; the index step embeds the rest");
                break;
            }
        }
        progress.emit(ProgressEvent::Advance(batch.len() as u64));
    }
    progress.emit(ProgressEvent::Finish);
    embedded
}

/// Embeds the passages of `batch` into `cache`; returns how many were embedded.
fn embed_ahead(
    embedder: &Embedder,
    batch: &[Candidate],
    cache: &VectorCache,
) -> crate::Result<usize> {
    let passages: Vec<_> = batch
        .iter()
        .map(|c| chunk::passages(c, embedder))
        .collect::<Result<_, _>>()?;
    let texts: Vec<&str> = passages.iter().flatten().map(|p| p.text.as_str()).collect();
    Ok(cache.fill(embedder, &texts)?)
}

/// Rebuilds the indexes from the whole store, whatever generation they describe. Passages
/// whose text the current generation already embedded with the same model are not embedded
/// again.
pub fn rebuild(
    data_dir: &Path,
    store: &Store,
    embedder: &Embedder,
    progress: &Progress,
) -> crate::Result<IndexStats> {
    let _lock = IndexLock::acquire(data_dir)?;
    let latest = latest_store(data_dir, store)?;
    let store = latest.as_ref().unwrap_or(store);
    let cache = VectorCache::new(embedder);
    reuse_current_vectors(data_dir, &cache);
    Ok(index::try_rebuild(
        data_dir,
        store.generation(),
        readable_candidates(store),
        store.reference(),
        embedder,
        Some(&cache),
        progress,
    )?)
}

/// The store as committed now, when a sync committed after `store` was opened (call with the
/// index lock held). Indexing the older `store` would publish a generation behind the store,
/// bringing back what the newer commit purged.
fn latest_store(data_dir: &Path, store: &Store) -> crate::Result<Option<Store>> {
    if Store::committed_generation(data_dir)? == store.generation() {
        return Ok(None);
    }
    let latest = Store::open(data_dir)?;
    tracing::info!(
        opened = store.generation(),
        committed = latest.generation(),
        "the store moved on since this run opened it: indexing the committed generation"
    );
    Ok(Some(latest))
}

/// The store's candidates for a rebuild, without the records that no longer read back (a failed
/// checksum, a truncated segment): those are left out with a warning, and the next sync drops
/// them from the store and fetches them again. Any other error stops the rebuild.
fn readable_candidates(
    store: &Store,
) -> impl Iterator<Item = Result<Candidate, crate::store::Error>> + '_ {
    store.candidates().filter(|record| match record {
        Err(crate::store::Error::Corrupt { .. }) => {
            tracing::warn!("a stored record is unreadable; the index is built without it");
            false
        }
        _ => true,
    })
}

/// Adds the current generation's vectors to `cache` before a full rebuild.
fn reuse_current_vectors(data_dir: &Path, cache: &VectorCache) {
    let reused = cache.add_current_generation(data_dir);
    if reused > 0 {
        tracing::info!(
            vectors = reused,
            "reusing the vectors of the current index for unchanged text"
        );
    }
}

/// Brings the indexes of `data_dir` to the store's generation.
///
/// `commit` is the commit the caller just made, if any: when it made the store's generation
/// from the one the indexes hold, only its changes are applied; otherwise (the indexes lag
/// further, or the commit changed nothing) the indexes are rebuilt, reusing their vectors.
/// Vectors in `cache` (from a [`Prefetcher`]) are used instead of embedding their passages
/// again.
pub fn bring_up_to_date(
    data_dir: &Path,
    store: &Store,
    commit: Option<&Commit>,
    embedder: &Embedder,
    cache: Option<&VectorCache>,
    progress: &Progress,
) -> crate::Result<IndexOutcome> {
    let started = Instant::now();
    let _lock = IndexLock::acquire(data_dir)?;
    let latest = latest_store(data_dir, store)?;
    let store = latest.as_ref().unwrap_or(store);
    let target = store.generation();
    // A damaged index is rebuilt from the store, which holds everything it was made of.
    let mut rebuild_reason = None;
    let current = match Indexes::current_generation(data_dir) {
        Ok(current) => current,
        Err(index::Error::Corrupt { .. }) => {
            rebuild_reason = Some("the index is damaged");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let done = |action, stats: Option<IndexStats>| IndexOutcome {
        action,
        generation: stats.as_ref().map(|s| s.generation).or(current),
        stats,
        seconds: started.elapsed().as_secs_f64(),
    };
    if current == Some(target) {
        match Indexes::open(data_dir) {
            Ok(indexes) if indexes.made_by(embedder) => {
                return Ok(done(IndexAction::UpToDate, None));
            }
            Ok(_) => {
                rebuild_reason = Some("the embedding model changed since the last build");
            }
            Err(index::Error::VersionMismatch { .. }) => {
                rebuild_reason = Some("the index was written by another version of rediscover");
            }
            Err(index::Error::Corrupt { .. }) => rebuild_reason = Some("the index is damaged"),
            Err(e) => return Err(e.into()),
        }
    }
    if target == 0 && current.is_none() && rebuild_reason.is_none() {
        return Ok(done(IndexAction::Empty, None));
    }
    // Only a commit that made `target` from the generation the indexes hold lists what
    // changed between them: an empty commit names no change, even with the indexes behind.
    let incremental = commit.filter(|c| {
        c.generation == target
            && c.base_generation + 1 == target
            && current == Some(c.base_generation)
    });
    if let Some(commit) = incremental {
        let changed: Vec<Candidate> = commit
            .changed
            .iter()
            .filter_map(|id| store.get(id).transpose())
            .collect::<Result<_, _>>()?;
        match index::update(
            data_dir,
            target,
            changed.into_iter(),
            &commit.deleted,
            store.reference(),
            embedder,
            cache,
            progress,
        ) {
            Ok(stats) => return Ok(done(IndexAction::Updated, Some(stats))),
            Err(index::Error::ModelChanged { .. }) => {
                rebuild_reason = Some("the embedding model changed since the last build");
            }
            Err(index::Error::StagesChanged) => {
                rebuild_reason =
                    Some("Lever's stages or archive reasons changed since the last build");
            }
            Err(index::Error::VersionMismatch { .. }) => {
                rebuild_reason = Some("the index was written by another version of rediscover");
            }
            Err(index::Error::Corrupt { .. }) => rebuild_reason = Some("the index is damaged"),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(reason) = rebuild_reason {
        tracing::info!("{reason}: rebuilding the indexes");
    }
    let own_cache;
    let cache = match cache {
        Some(cache) => cache,
        None => {
            own_cache = VectorCache::new(embedder);
            &own_cache
        }
    };
    reuse_current_vectors(data_dir, cache);
    let stats = index::try_rebuild(
        data_dir,
        target,
        readable_candidates(store),
        store.reference(),
        embedder,
        Some(cache),
        progress,
    )?;
    Ok(done(IndexAction::Rebuilt, Some(stats)))
}
