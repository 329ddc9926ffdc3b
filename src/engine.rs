//! Composition root for queries: holds the store, the opened indexes and the embedder, and
//! swaps in a new index generation (with its store) when a sync or `index` run publishes one.
//!
//! The API layer holds one `Engine` and never touches tantivy, hnsw_rs or the store directly.
//! A query works on one [`Snapshot`] from start to end, so a reload never mixes generations.
//! Opportunities that a webhook reported deleted are hidden from every answer for as long as
//! the notice is in the inbox: from its arrival until a sync has purged them from the indexes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::domain::{Candidate, Posting};
use crate::index::{Embedder, Indexes};
use crate::search::{self, Context, People, Query, QueryEmbedder, SearchResponse, TermCache};
use crate::store::Store;
use crate::sync::inbox::Inbox;

/// How many query vectors the engine remembers.
const QUERY_CACHE: usize = 512;
/// How often, at most, the engine looks for a new index generation.
const DEFAULT_RELOAD_CHECK: Duration = Duration::from_secs(2);

/// One consistent view: an index generation, the store and the per-person map.
pub struct Snapshot {
    /// The opened indexes.
    pub indexes: Indexes,
    /// The store.
    pub store: Store,
    /// Every opportunity of each person in the index.
    pub people: People,
    /// The terms chosen for recent postings in this generation.
    pub term_cache: TermCache,
}

impl Snapshot {
    fn open(data_dir: &Path) -> crate::Result<Snapshot> {
        let indexes = Indexes::open(data_dir)?;
        let store = Store::open(data_dir)?;
        let people = People::build(indexes.rows());
        Ok(Snapshot {
            indexes,
            store,
            people,
            term_cache: TermCache::default(),
        })
    }

    /// The index generation of this snapshot.
    pub fn generation(&self) -> u64 {
        self.indexes.generation()
    }
}

/// A candidate as shown by the API: the stored record and its history.
#[derive(Debug, Clone)]
pub struct CandidateDetails {
    /// The stored opportunity.
    pub candidate: Candidate,
    /// Its history with names resolved.
    pub history: search::History,
    /// The person's other opportunities in the pool.
    pub other_opportunity_ids: Vec<String>,
}

/// Opportunity ids of the `candidateDeleted` notices in the inbox, and the inbox file's stamp
/// when they were read.
///
/// A notice leaves the inbox once a sync has published a generation without its opportunity,
/// but a query may still run on an older snapshot (a reload in progress, a new generation that
/// failed to open). So an id that left stays hidden, in `leaving`, from every snapshot older
/// than the generation published when it left.
#[derive(Default)]
struct PendingDeletions {
    stamp: Option<(u64, SystemTime)>,
    ids: Arc<HashSet<String>>,
    /// Ids gone from the inbox, with the generation published when they went.
    leaving: Arc<HashMap<String, u64>>,
}

impl PendingDeletions {
    /// Whether `id` is to be hidden from a snapshot of `generation`.
    fn hides(&self, id: &str, generation: u64) -> bool {
        self.ids.contains(id) || self.leaving.get(id).is_some_and(|&g| generation < g)
    }
}

/// The query side of rediscover, shared by the CLI and the HTTP server.
pub struct Engine {
    data_dir: PathBuf,
    embedder: Option<QueryEmbedder>,
    current: RwLock<Option<Arc<Snapshot>>>,
    last_check: Mutex<Option<Instant>>,
    check_every: Duration,
    inbox: Inbox,
    pending_deletions: Mutex<PendingDeletions>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the data folder. A missing index is not an error here: queries report it until
    /// an index appears. `embedder` is `None` to run keyword-only (degraded) queries.
    pub fn open(data_dir: &Path, embedder: Option<Arc<Embedder>>) -> crate::Result<Engine> {
        let engine = Engine {
            data_dir: data_dir.to_owned(),
            embedder: embedder.map(|e| QueryEmbedder::new(e, QUERY_CACHE)),
            current: RwLock::new(None),
            last_check: Mutex::new(None),
            check_every: DEFAULT_RELOAD_CHECK,
            inbox: Inbox::new(data_dir),
            pending_deletions: Mutex::new(PendingDeletions::default()),
        };
        engine.reload_if_changed(true)?;
        Ok(engine)
    }

    /// Sets how often the engine looks for a new index generation (tests use zero).
    pub fn with_reload_check(mut self, every: Duration) -> Engine {
        self.check_every = every;
        self
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether an embedding model is loaded.
    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    /// The current snapshot, reloading first if a new generation was published.
    pub fn snapshot(&self) -> crate::Result<Arc<Snapshot>> {
        self.reload_if_changed(false)?;
        self.read_current().ok_or_else(|| self.no_index())
    }

    fn no_index(&self) -> crate::Error {
        search::Error::NoIndex {
            data_dir: self.data_dir.clone(),
        }
        .into()
    }

    fn read_current(&self) -> Option<Arc<Snapshot>> {
        // A poisoned lock only means a reload panicked; the stored snapshot is still whole.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rereads the deletions reported by webhooks if the inbox changed (the webhook route
    /// calls this after each notice; queries do, with new generations, every `check_every`).
    /// An unreadable inbox (or generation pointer) keeps the last ids read, and is logged.
    pub fn refresh_pending_deletions(&self) {
        let stamp = self.inbox.stamp();
        let mut pending = self
            .pending_deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.stamp == stamp {
            return;
        }
        let read = match self.inbox.read() {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(error = %err, "webhook inbox unreadable");
                return;
            }
        };
        // Read after the inbox: a notice is released only once its generation is published.
        let published = match Indexes::current_generation(&self.data_dir) {
            Ok(published) => published.unwrap_or(0),
            Err(err) => {
                tracing::warn!(error = %err, "index generation unreadable");
                return;
            }
        };
        let ids = read.deleted_ids();
        let mut leaving = HashMap::clone(&pending.leaving);
        leaving.retain(|id, _| !ids.contains(id));
        for id in pending.ids.iter().filter(|id| !ids.contains(*id)) {
            leaving.insert(id.clone(), published);
        }
        pending.ids = Arc::new(ids);
        pending.leaving = Arc::new(leaving);
        pending.stamp = stamp;
    }

    /// Rows of `snapshot` hidden by deletion notices: those still in the webhook inbox, and
    /// those released by a generation newer than `snapshot`.
    fn hidden_rows(&self, snapshot: &Snapshot) -> Vec<u32> {
        let pending = self
            .pending_deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let generation = snapshot.generation();
        pending
            .ids
            .iter()
            .chain(pending.leaving.keys())
            .filter(|id| pending.hides(id, generation))
            .filter_map(|id| snapshot.indexes.ordinal(id))
            .collect()
    }

    /// Forgets released deletions that no snapshot from `generation` on needs hidden (called
    /// with the generation being replaced, which queries already running may still use).
    fn forget_released(&self, generation: u64) {
        let mut pending = self
            .pending_deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.leaving.values().any(|&g| g <= generation) {
            let mut leaving = HashMap::clone(&pending.leaving);
            leaving.retain(|_, g| *g > generation);
            pending.leaving = Arc::new(leaving);
        }
    }

    /// Looks for a new index generation, a new store generation and new webhook deletions (at
    /// most every `check_every`), so a long-running server drops the maps of replaced files
    /// even when no query comes (`serve` calls this on a timer).
    pub fn refresh(&self) -> crate::Result<()> {
        self.reload_if_changed(false)
    }

    /// Looks for a new index or store generation and new webhook deletions (at most every
    /// `check_every`) and opens them.
    ///
    /// If opening the new generation fails, the previous snapshot keeps serving and the error
    /// is logged; with no previous snapshot the error is returned.
    fn reload_if_changed(&self, force: bool) -> crate::Result<()> {
        {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.is_some_and(|at| at.elapsed() < self.check_every) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.refresh_pending_deletions();
        // By directory, not generation number: `rediscover index` rebuilds the same generation
        // into a new directory and removes the one being served.
        let current = self.read_current();
        let published = match Indexes::current_dir_name(&self.data_dir) {
            Ok(published) => published,
            // A damaged pointer while a generation is loaded: keep serving it (its files stay
            // mapped) and say so; the next sync or `rediscover index` writes a good pointer.
            Err(err) if current.is_some() => {
                tracing::warn!(error = %err, "index pointer unreadable; the loaded generation keeps serving");
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        let loaded = current.as_ref().map(|s| s.generation());
        let loaded_dir = current
            .as_ref()
            .and_then(|s| s.indexes.dir().file_name())
            .map(|name| name.to_string_lossy().into_owned());
        // The store can move without a new index (`sync --no-index`, a failed index step):
        // a snapshot on the older store would still show what that commit purged.
        let store_moved =
            current
                .as_ref()
                .is_some_and(|s| match Store::committed_generation(&self.data_dir) {
                    Ok(committed) => committed != s.store.generation(),
                    Err(err) => {
                        tracing::warn!(error = %err, "store manifest unreadable");
                        false
                    }
                });
        if published.is_none() || (published == loaded_dir && !store_moved) {
            return Ok(());
        }
        match Snapshot::open(&self.data_dir) {
            Ok(snapshot) => {
                if let Some(replaced) = loaded {
                    self.forget_released(replaced);
                }
                // A replaced generation is news in a long-running `serve`; the first load is
                // what every one-shot command does.
                if loaded.is_some() {
                    tracing::info!(
                        generation = snapshot.generation(),
                        rows = snapshot.indexes.rows().len(),
                        "index generation loaded"
                    );
                } else {
                    tracing::debug!(
                        generation = snapshot.generation(),
                        rows = snapshot.indexes.rows().len(),
                        "index generation loaded"
                    );
                }
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snapshot));
                Ok(())
            }
            Err(err) if current.is_some() => {
                tracing::warn!(error = %err, "new index generation could not be opened; serving the previous one");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Answers a query on the current snapshot.
    pub fn search(&self, query: &Query) -> crate::Result<SearchResponse> {
        let snapshot = self.snapshot()?;
        let hidden = self.hidden_rows(&snapshot);
        let ctx = Context {
            indexes: &snapshot.indexes,
            store: &snapshot.store,
            embedder: self.embedder.as_ref(),
            people: Some(&snapshot.people),
            term_cache: Some(&snapshot.term_cache),
            hidden: &hidden,
        };
        Ok(search::search(ctx, query)?)
    }

    /// The synced postings.
    pub fn postings(&self) -> crate::Result<Vec<Posting>> {
        Ok(self.snapshot()?.store.reference().postings.clone())
    }

    /// One opportunity with its history, or an error if no live opportunity has this id.
    pub fn candidate(&self, opportunity_id: &str) -> crate::Result<CandidateDetails> {
        let snapshot = self.snapshot()?;
        let unknown = || search::Error::UnknownOpportunity {
            id: opportunity_id.to_owned(),
        };
        let ordinal = snapshot
            .indexes
            .ordinal(opportunity_id)
            .ok_or_else(unknown)?;
        let hidden = self.hidden_rows(&snapshot);
        let rows = snapshot.indexes.rows();
        let row = rows
            .get(ordinal as usize)
            .filter(|r| !r.deleted && !hidden.contains(&ordinal))
            .ok_or_else(unknown)?;
        let candidate = snapshot.store.get(opportunity_id)?.ok_or_else(unknown)?;
        let history = search::explain::history(&candidate, snapshot.store.reference());
        let other_opportunity_ids = snapshot
            .people
            .opportunities(row.person_key())
            .iter()
            .filter(|&&o| o != ordinal && !hidden.contains(&o))
            .filter_map(|&o| rows.get(o as usize).map(|r| r.opportunity_id.clone()))
            .collect();
        Ok(CandidateDetails {
            candidate,
            history,
            other_opportunity_ids,
        })
    }
}
