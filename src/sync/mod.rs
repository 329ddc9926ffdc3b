//! The sync job: copy the Lever talent pool into the local store, fully the first time and
//! incrementally after, pipelined under the shared rate limiter, resumable after a crash.
//!
//! One run = one store [`Batch`]: reference data, then deletions (incremental runs), then the
//! opportunities named by deleted applications or webhook notices ([`inbox`]), then the
//! opportunity listing, whose records fan out into bounded concurrent child fetches (resumes,
//! notes, feedback). Every finished opportunity is journaled at once, so a killed run resumes
//! where it stopped; only [`Batch::commit`] makes the run's work visible. The notices acted on
//! leave the inbox when the caller has brought the indexes up to date too
//! ([`SyncReport::release_notices`]), so a deletion stays hidden from answers until the index
//! no longer holds it. An opportunity the run could not bring up to date keeps its stored
//! version and is queued in the inbox for the next run, so the incremental window advances
//! whenever the listings were read in full.

mod children;
mod extracting;
pub use extracting::skipped_resume_files;
pub mod inbox;
mod progress;
mod reference;
pub mod replay;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::domain::{Candidate, Millis};
use crate::lever::client::path_segment;
use crate::lever::wire::{DeletedApplication, DeletedOpportunity, Opportunity};
use crate::lever::{ClientConfig, Credentials, LeverClient, MalformedRecord};
use crate::store::{Batch, Commit, LeverTimes, Store, SyncState};

use children::ChildOutcome;
use inbox::{Inbox, Notice, Pending};
use progress::Progress;

/// Checkpoint key holding the start time of the run in progress (kept across a resume).
const CHECKPOINT_RUN_STARTED_AT: &str = "run_started_at";

/// At most this many malformed records are listed by id in a report (all are counted).
const MAX_REPORTED_MALFORMED: usize = 100;

/// Errors that stop a sync run. The store is left as it was (a started batch keeps its journal
/// so the next run resumes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Lever refused or failed in a way that stops the run.
    #[error("{0}")]
    Lever(#[from] crate::lever::Error),
    /// The local store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
    /// The webhook inbox could not be read.
    #[error(transparent)]
    Inbox(#[from] inbox::Error),
    /// A worker task panicked or was cancelled.
    #[error("sync worker failed: {0}")]
    Worker(String),
}

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The data folder (the store lives in `DATA/store`).
    pub data_dir: PathBuf,
    /// Lever client settings (base URL, rate, retries).
    pub client: ClientConfig,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Opportunities whose children are fetched at the same time.
    pub concurrency: usize,
    /// Overlap subtracted from the last run's start for the incremental window.
    pub overlap: Duration,
    /// Show a progress bar (on a terminal) or periodic log lines.
    pub progress: bool,
    /// Every candidate fetched from Lever in this run is offered here as soon as it is staged,
    /// so its passages can be embedded while the sync goes on. Never blocks: when the receiver
    /// is behind, the candidate is simply not offered (the index build embeds it later).
    pub fetched: Option<std::sync::mpsc::SyncSender<Candidate>>,
    /// List every opportunity, as a first run does, even when an earlier run set an
    /// incremental window: catches records the window cannot see (Lever leaves some
    /// `updatedAt` null) and purges what Lever no longer has.
    pub full: bool,
    /// Where resume files are turned into text: the `rediscover` binary uses a child process
    /// per file ([`crate::extract::Isolation::Process`]), so a hostile file cannot take the
    /// sync down; the default is a thread of this process.
    pub extraction: crate::extract::Isolation,
}

impl SyncOptions {
    /// Defaults: 32 opportunities in flight, 5 minutes of overlap, progress on, incremental
    /// after the first run.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        client: ClientConfig,
        credentials: Credentials,
    ) -> Self {
        SyncOptions {
            data_dir: data_dir.into(),
            client,
            credentials,
            concurrency: 32,
            overlap: Duration::from_secs(5 * 60),
            progress: true,
            fetched: None,
            full: false,
            extraction: crate::extract::Isolation::default(),
        }
    }
}

/// Whether the run listed everything or only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Every opportunity, no `updated_at` filter (first run, `--full`, or after an incomplete
    /// first run).
    Full,
    /// Opportunities updated since the last successful run's start minus the overlap.
    Incremental,
}

/// What a run did. Ids only, never personal data.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Full or incremental.
    pub mode: SyncMode,
    /// Whether the run resumed an interrupted one.
    pub resumed: bool,
    /// The store generation after the commit.
    pub generation: u64,
    /// Opportunities in the store after the run.
    pub opportunities_total: u64,
    /// Opportunities the listing returned.
    pub opportunities_listed: u64,
    /// Opportunities whose children were fetched.
    pub opportunities_fetched: u64,
    /// Listed opportunities that had not changed, so their stored children were kept.
    pub opportunities_unchanged: u64,
    /// Opportunities already staged by the interrupted run this one resumed.
    pub opportunities_resumed: u64,
    /// Opportunities new or changed in the store (from the commit).
    pub opportunities_changed: u64,
    /// Opportunities removed from the store (from the commit).
    pub opportunities_deleted: u64,
    /// Webhook notices this run acted on (their opportunities were fetched again or purged).
    pub webhook_notices: u64,
    /// Opportunities that could not be synced this run (kept as they were; retried next run).
    pub opportunities_failed: u64,
    /// Ids of the failed opportunities.
    pub failed_ids: Vec<String>,
    /// Opportunities this credential may not see (HTTP 403 on the opportunity itself, e.g. a
    /// confidential one named by a webhook notice without confidential access): purged.
    pub opportunities_not_visible: u64,
    /// Whether the listings were read in full; when not, the incremental window did not
    /// advance and a full run purged nothing.
    pub listing_complete: bool,
    /// Records (or pages) Lever sent that could not be read and were skipped. One with an id
    /// counts its opportunity as failed; one without, or an unreadable page, leaves its listing
    /// incomplete (the window does not advance, a full run purges nothing).
    pub malformed_records: u64,
    /// The first of them, by path and id.
    pub malformed: Vec<MalformedRecord>,
    /// Resume files downloaded.
    pub resumes_downloaded: u64,
    /// Resume files whose text could not be extracted (recorded on the resume).
    pub resume_text_failed: u64,
    /// HTTP requests sent.
    pub api_calls: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Wall time of the run.
    pub wall_seconds: f64,
    /// What the commit changed (for the indexes).
    #[serde(skip)]
    pub commit: Commit,
    /// The webhook notices this run read from the inbox.
    #[serde(skip)]
    pub notices: Pending,
}

impl SyncReport {
    /// Removes from the inbox of `data_dir` the notices this run acted on (those of
    /// opportunities that failed stay for the next run). Call it once the indexes are up to
    /// date with this run: until then a deleted candidate must stay hidden from answers.
    pub fn release_notices(&self, data_dir: &std::path::Path) -> Result<(), inbox::Error> {
        let failed: HashSet<&str> = self.failed_ids.iter().map(String::as_str).collect();
        Inbox::new(data_dir).consume(&self.notices, |n| {
            failed.contains(n.opportunity_id.as_str())
        })
    }
}

/// Runs one sync: see the module docs. Returns the report after the commit.
pub async fn run(options: SyncOptions) -> Result<SyncReport, Error> {
    let client = LeverClient::new(options.client.clone(), options.credentials.clone())?;
    run_with_client(&options, &client).await
}

/// Like [`run`], with a client the caller made (to read its stats or share its limiter).
pub async fn run_with_client(
    options: &SyncOptions,
    client: &LeverClient,
) -> Result<SyncReport, Error> {
    let started = Instant::now();
    let now = now_millis();
    let calls_before = client.stats();
    let mut tally = Tally::default();

    // Reference data first: it also proves the credential before the store is touched.
    let (reference, confidential_access) = reference::fetch(client, &mut tally.malformed).await?;

    let mut batch = Store::begin(&options.data_dir)?;
    // Read with the store's lock held: no other sync is extracting now.
    let extractions = std::sync::Arc::new(extracting::Extractions::open(
        &options.data_dir,
        options.extraction.clone(),
    ));
    let resumed = batch.resumed();
    let run_started_at = match batch
        .checkpoint(CHECKPOINT_RUN_STARTED_AT)
        .and_then(|v| v.parse::<Millis>().ok())
    {
        Some(t) => t,
        None => {
            batch.set_checkpoint(CHECKPOINT_RUN_STARTED_AT, now.to_string())?;
            now
        }
    };
    let previous = batch.base().sync_state().clone();
    let overlap = options.overlap.as_millis() as Millis;
    let mode = match previous.last_run_started_at {
        Some(_) if !options.full => SyncMode::Incremental,
        _ => SyncMode::Full,
    };
    tracing::info!(?mode, resumed, stored = batch.base().len(), "sync started");
    batch.set_reference(reference)?;

    let mut named = Vec::new();
    if mode == SyncMode::Incremental {
        let since = previous
            .deleted_checkpoint
            .or(previous.last_run_started_at.map(|t| t - overlap))
            .unwrap_or(0);
        named = purge_deleted(client, &mut batch, since, &mut tally).await?;
    }

    let mut query: Vec<(&'static str, String)> = vec![
        ("expand", "applications".into()),
        ("expand", "stage".into()),
    ];
    if confidential_access {
        query.push(("confidentiality", "all".into()));
    }
    let notices = Inbox::new(&options.data_dir).read()?;
    named.extend(notices.opportunity_ids());
    let named = fetch_named(client, &mut batch, named, &query, &mut tally).await?;
    let lookup_query = query.clone();
    if let (SyncMode::Incremental, Some(last)) = (mode, previous.last_run_started_at) {
        query.push(("updated_at_start", (last - overlap).to_string()));
    }

    let mut progress = Progress::new(options.progress);
    let listing_complete = sync_opportunities(
        client,
        &mut batch,
        named,
        query,
        &extractions,
        options.concurrency,
        options.fetched.as_ref(),
        &mut tally,
        &mut progress,
    )
    .await?;
    progress.finish();

    let listing_complete = listing_complete && !tally.incomplete;
    if mode == SyncMode::Full && listing_complete {
        // Whatever the store holds that a complete listing no longer shows is gone, and so is
        // what the interrupted run this one resumes staged before Lever deleted it.
        let gone: BTreeSet<String> = batch
            .base()
            .ids()
            .chain(batch.staged_upserts())
            .filter(|id| !tally.seen.contains(*id) && !tally.unreadable.contains(*id))
            .map(str::to_owned)
            .collect();
        // Lever pages by (stage, creation time, id): an opportunity moved back in that order
        // while the run read the list was never listed, yet is not gone. Each one is asked for
        // by id: a 404 or a 403 purges it; one Lever still has keeps its stored version and is
        // fetched by id next run.
        let still_there = fetch_named(
            client,
            &mut batch,
            gone.into_iter().collect(),
            &lookup_query,
            &mut tally,
        )
        .await?;
        for opportunity in still_there {
            tracing::info!(id = %opportunity.id, "an opportunity the listing skipped is still in Lever; it is fetched by id next run");
            tally.fetch_again.push(opportunity.id);
        }
    }

    // Opportunities that failed are fetched by id next run (their stored versions stay as they
    // are until then), so one that keeps failing never holds the window for all the others.
    let retry: Vec<&String> = {
        let queued: HashSet<&str> = notices
            .notices
            .iter()
            .map(|n| n.opportunity_id.as_str())
            .collect();
        tally
            .failed_ids
            .iter()
            .chain(&tally.fetch_again)
            .filter(|id| !queued.contains(id.as_str()))
            .collect()
    };
    let inbox = Inbox::new(&options.data_dir);
    for id in retry {
        inbox.append(&Notice {
            event: inbox::RETRY_EVENT.to_owned(),
            opportunity_id: id.clone(),
            triggered_at: Some(now),
        })?;
    }
    // Advance the incremental window only when the listings were read in full: whatever
    // failed in them is queued above.
    let clean = listing_complete;
    let sync_state = SyncState {
        last_run_started_at: if clean {
            Some(run_started_at)
        } else {
            previous.last_run_started_at
        },
        last_success_at: Some(now_millis()),
        deleted_checkpoint: if clean {
            Some(run_started_at - overlap)
        } else {
            previous.deleted_checkpoint
        },
        runs: previous.runs + 1,
    };
    let deleting: HashSet<String> = batch.staged_deletes().map(str::to_owned).collect();
    let commit = batch.commit(sync_state)?;
    // A stored record that failed its checksum while the commit rewrote its segment was dropped
    // instead of copied: fetch it by id next run.
    for id in commit.deleted.iter().filter(|id| !deleting.contains(*id)) {
        tracing::warn!(id = %id, "an unreadable stored record was dropped; it is fetched again next run");
        let retry = Notice {
            event: inbox::RETRY_EVENT.to_owned(),
            opportunity_id: id.clone(),
            triggered_at: Some(now),
        };
        // The run is published: a failure here must not report it failed.
        if let Err(e) = inbox.append(&retry) {
            tracing::warn!(id = %id, error = %e, "could not queue an opportunity to fetch again");
        }
    }
    let total = Store::open(&options.data_dir)?.len() as u64;

    let stats = client.stats();
    let report = SyncReport {
        mode,
        resumed,
        generation: commit.generation,
        opportunities_total: total,
        opportunities_listed: tally.seen.len() as u64,
        opportunities_fetched: tally.fetched,
        opportunities_unchanged: tally.unchanged,
        opportunities_resumed: tally.resumed,
        opportunities_changed: commit.changed.len() as u64,
        opportunities_deleted: commit.deleted.len() as u64,
        webhook_notices: notices.notices.len() as u64,
        opportunities_failed: tally.failed_ids.len() as u64,
        failed_ids: tally.failed_ids,
        opportunities_not_visible: tally.not_visible,
        listing_complete,
        malformed_records: tally.malformed.len() as u64,
        malformed: tally
            .malformed
            .into_iter()
            .take(MAX_REPORTED_MALFORMED)
            .collect(),
        resumes_downloaded: tally.resumes_downloaded,
        resume_text_failed: tally.resume_text_failed,
        api_calls: stats.api_calls - calls_before.api_calls,
        retries: stats.retries - calls_before.retries,
        rate_limited: stats.rate_limited - calls_before.rate_limited,
        server_errors: stats.server_errors - calls_before.server_errors,
        wall_seconds: started.elapsed().as_secs_f64(),
        commit,
        notices,
    };
    tracing::info!(
        generation = report.generation,
        total = report.opportunities_total,
        changed = report.opportunities_changed,
        deleted = report.opportunities_deleted,
        failed = report.opportunities_failed,
        not_visible = report.opportunities_not_visible,
        malformed = report.malformed_records,
        complete = listing_complete,
        api_calls = report.api_calls,
        wall_seconds = format!("{:.1}", report.wall_seconds),
        "sync finished"
    );
    Ok(report)
}

/// Counts and ids gathered during a run.
#[derive(Default)]
struct Tally {
    seen: HashSet<String>,
    /// Opportunities named by webhook notices or deleted applications: their children are
    /// fetched even when Lever's timestamps say nothing changed.
    forced: HashSet<String>,
    /// Listed records that could not be read (never purged because of that).
    unreadable: HashSet<String>,
    /// A listing (opportunities or deleted opportunities) was not read in full: a page or a
    /// record without an id could not be read.
    incomplete: bool,
    fetched: u64,
    unchanged: u64,
    resumed: u64,
    not_visible: u64,
    failed_ids: Vec<String>,
    /// Opportunities fetched by id next run though this one did not fail them: those a
    /// complete full listing skipped that Lever still has (kept as stored), and new ones stored
    /// without the text of a resume whose download kept failing.
    fetch_again: Vec<String>,
    malformed: Vec<MalformedRecord>,
    resumes_downloaded: u64,
    resume_text_failed: u64,
}

impl Tally {
    /// Counts `id` as failed once: kept as stored, its notices kept, retried next run.
    fn fail(&mut self, id: String) {
        if !self.failed_ids.contains(&id) {
            self.failed_ids.push(id);
        }
    }

    /// A record of a listing that could not be read: with an id, that opportunity failed (what
    /// the store has is kept); without one, the listing is incomplete.
    fn unreadable_record(&mut self, record: MalformedRecord) {
        tracing::warn!(path = %record.path, id = record.id.as_deref().unwrap_or("-"), reason = %record.reason, "skipped a malformed record");
        match &record.id {
            Some(id) => {
                self.unreadable.insert(id.clone());
                self.fail(id.clone());
            }
            None => self.incomplete = true,
        }
        self.malformed.push(record);
    }
}

/// Deletes what `/opportunities/deleted` lists since `since`, and returns the live
/// opportunities whose applications `/applications/deleted` lists since then: an application
/// can go without its opportunity's `updatedAt` moving. An account without that newer list
/// (404) has nothing there. An unreadable item or page of the deleted opportunities leaves the
/// run incomplete, so the deletion window does not move past it; the deleted applications,
/// whose shape is unverified, are only reported.
async fn purge_deleted(
    client: &LeverClient,
    batch: &mut Batch,
    since: Millis,
    tally: &mut Tally,
) -> Result<Vec<String>, Error> {
    let window = vec![("deleted_at_start", since.max(0).to_string())];
    let deleted = match client
        .list_all::<DeletedOpportunity>("/opportunities/deleted", window.clone())
        .await
    {
        Ok((deleted, malformed)) => {
            for record in malformed {
                // Not an opportunity that failed: a deletion that must be read again.
                tracing::warn!(path = %record.path, id = record.id.as_deref().unwrap_or("-"), reason = %record.reason, "skipped a malformed deleted opportunity");
                tally.incomplete = true;
                tally.malformed.push(record);
            }
            deleted
        }
        Err(crate::lever::Error::Malformed { path, reason }) => {
            tally.unreadable_record(MalformedRecord {
                path,
                id: None,
                reason,
            });
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let applications = match client
        .list_all::<DeletedApplication>("/applications/deleted", window)
        .await
    {
        Ok((applications, malformed)) => {
            tally.malformed.extend(malformed);
            applications
        }
        Err(crate::lever::Error::NotFound { .. }) => Vec::new(),
        // Its shape is unverified: an unreadable page is reported, not fatal.
        Err(crate::lever::Error::Malformed { path, reason }) => {
            tally.malformed.push(MalformedRecord {
                path,
                id: None,
                reason,
            });
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let gone: HashSet<String> = deleted.into_iter().map(|d| d.id).collect();
    for id in &gone {
        batch.delete(id)?;
    }
    let mut named = Vec::new();
    for application in applications {
        match application.opportunity_id() {
            Some(id) if gone.contains(&id) => {}
            Some(id) => named.push(id),
            None => {
                tracing::warn!(application = %application.id, "a deleted application names no opportunity");
                tally.malformed.push(MalformedRecord {
                    path: "/applications/deleted".into(),
                    id: Some(application.id),
                    reason: "no opportunity id".into(),
                });
            }
        }
    }
    Ok(named)
}

/// Fetches opportunities by id (named by a deleted application or a webhook notice, or missing
/// from a complete full listing), all at once under the shared limiter: a 404 purges one, and
/// so does a 403 (this credential may not see it, e.g. a confidential opportunity without
/// confidential access); the others are returned (marked forced, so their children are fetched
/// again when the listing dispatches them). Failures are counted, keep their stored versions
/// and their notices, and are fetched again next run.
async fn fetch_named(
    client: &LeverClient,
    batch: &mut Batch,
    ids: Vec<String>,
    query: &[(&'static str, String)],
    tally: &mut Tally,
) -> Result<Vec<Opportunity>, Error> {
    let query: Vec<(&'static str, String)> = query.to_vec();
    let mut asked = HashSet::new();
    let mut fetches = JoinSet::new();
    for id in ids {
        if !asked.insert(id.clone()) {
            continue;
        }
        let (client, query) = (client.clone(), query.clone());
        fetches.spawn(async move {
            let path = format!("/opportunities/{}", path_segment(&id));
            let result = client.get::<Opportunity>(&path, &query).await;
            (id, result)
        });
    }
    let mut found = Vec::new();
    while let Some(joined) = fetches.join_next().await {
        let (id, result) = joined.map_err(|e| Error::Worker(e.to_string()))?;
        match result {
            Ok(opp) => {
                tally.forced.insert(opp.id.clone());
                found.push(opp);
            }
            Err(crate::lever::Error::NotFound { .. }) => batch.delete(&id)?,
            Err(crate::lever::Error::Forbidden { .. }) => purge_not_visible(batch, tally, &id)?,
            Err(e) if e.is_auth() => return Err(Error::Lever(e)),
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "could not fetch an opportunity by id; it is retried next run");
                tally.fail(id);
            }
        }
    }
    Ok(found)
}

/// Messages from the listing task to the writer.
enum Listed {
    Opportunity(Box<Opportunity>),
    Malformed(MalformedRecord),
    /// The listing restarted from page 1 (stale token): already-seen ids will come again.
    Restarted,
}

/// Lists opportunities (own task, one page ahead, after the `first` ones) and fans their child
/// fetches out to at most `concurrency` tasks; this task alone writes the batch. Returns
/// whether the listing was read to the end (an unreadable page ends it early; one that could
/// be skipped, or a record without an id, marks the tally incomplete).
#[allow(clippy::too_many_arguments)]
async fn sync_opportunities(
    client: &LeverClient,
    batch: &mut Batch,
    first: Vec<Opportunity>,
    query: Vec<(&'static str, String)>,
    extractions: &std::sync::Arc<extracting::Extractions>,
    concurrency: usize,
    fetched: Option<&std::sync::mpsc::SyncSender<Candidate>>,
    tally: &mut Tally,
    progress: &mut Progress,
) -> Result<bool, Error> {
    let (sender, mut receiver) = mpsc::channel::<Listed>(256);
    let lister_client = client.clone();
    let mut lister = tokio::spawn(async move {
        for opp in first {
            if sender
                .send(Listed::Opportunity(Box::new(opp)))
                .await
                .is_err()
            {
                return Ok(false);
            }
        }
        let mut listing = lister_client.list::<Opportunity>("/opportunities", query);
        loop {
            let page = match listing.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(true),
                Err(crate::lever::Error::Malformed { path, reason }) => {
                    let _ = sender
                        .send(Listed::Malformed(MalformedRecord {
                            path,
                            id: None,
                            reason,
                        }))
                        .await;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            if page.restarted && sender.send(Listed::Restarted).await.is_err() {
                return Ok(false);
            }
            for record in page.malformed {
                if sender.send(Listed::Malformed(record)).await.is_err() {
                    return Ok(false);
                }
            }
            for opp in page.items {
                if sender
                    .send(Listed::Opportunity(Box::new(opp)))
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }
    });

    let mut in_flight: JoinSet<(String, Result<ChildOutcome, crate::lever::Error>)> =
        JoinSet::new();
    let mut listing_open = true;
    let concurrency = concurrency.max(1);
    let outcome = loop {
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                let (id, result) = joined.map_err(|e| Error::Worker(e.to_string()))?;
                if let Err(e) = record_outcome(batch, id, result, fetched, tally) {
                    break Err(e);
                }
                progress.update(tally.seen.len(), tally.fetched + tally.unchanged + tally.resumed, client.stats().api_calls);
            }
            listed = receiver.recv(), if listing_open && in_flight.len() < concurrency => {
                match listed {
                    None => listing_open = false,
                    Some(Listed::Restarted) => {}
                    Some(Listed::Malformed(record)) => tally.unreadable_record(record),
                    Some(Listed::Opportunity(opp)) => {
                        if let Err(e) = dispatch(client, batch, *opp, extractions, tally, &mut in_flight) {
                            break Err(e);
                        }
                    }
                }
            }
            else => break Ok(()),
        }
    };
    if let Err(e) = outcome {
        in_flight.abort_all();
        lister.abort();
        return Err(e);
    }
    let complete = (&mut lister)
        .await
        .map_err(|e| Error::Worker(e.to_string()))??;
    Ok(complete)
}

/// Decides what to do with one listed opportunity: skip (already staged or seen), keep its
/// stored children (unchanged), or fetch its children in a new task. A forced one (named by a
/// webhook or a deleted application) is always fetched once.
fn dispatch(
    client: &LeverClient,
    batch: &mut Batch,
    opp: Opportunity,
    extractions: &std::sync::Arc<extracting::Extractions>,
    tally: &mut Tally,
    in_flight: &mut JoinSet<(String, Result<ChildOutcome, crate::lever::Error>)>,
) -> Result<(), Error> {
    if !tally.seen.insert(opp.id.clone()) {
        return Ok(());
    }
    let forced = tally.forced.contains(&opp.id);
    let mut candidate = opp.to_candidate();
    // What the interrupted run this one resumes already fetched is kept, unless Lever changed
    // it since: then the staged version would be published a night late.
    let staged_current = batch
        .staged_times(&opp.id)
        .is_some_and(|staged| unchanged(staged, &candidate));
    if staged_current && !forced {
        tally.resumed += 1;
        return Ok(());
    }
    let stored = match batch.base().get(&opp.id) {
        Ok(stored) => stored,
        // An unreadable stored record (a failed checksum) is fetched again and replaced.
        Err(e @ crate::store::Error::Corrupt { .. }) => {
            tracing::warn!(id = %opp.id, error = %e, "the stored record of an opportunity is unreadable; it is fetched again");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(stored) = stored
        .as_ref()
        .filter(|s| !forced && unchanged(LeverTimes::of(s), &candidate))
    {
        candidate.resumes = stored.resumes.clone();
        candidate.notes = stored.notes.clone();
        candidate.feedback = stored.feedback.clone();
        tally.unchanged += 1;
        batch.upsert(candidate)?;
        return Ok(());
    }
    let client = client.clone();
    let extractions = std::sync::Arc::clone(extractions);
    in_flight.spawn(async move {
        let id = candidate.id.clone();
        let result = children::fetch(&client, candidate, &extractions).await;
        (id, result)
    });
    Ok(())
}

/// A stored (or staged) version can be kept when Lever says the opportunity did not change since
/// it was fetched (same non-null `updatedAt`) and no new activity happened on it
/// (`lastInteractionAt`).
fn unchanged(stored: LeverTimes, listed: &Candidate) -> bool {
    listed.updated_at.is_some()
        && stored.updated_at == listed.updated_at
        && stored.last_interaction_at >= listed.last_interaction_at
}

/// Purges an opportunity Lever answers 403 for: this credential may not see it (a confidential
/// one without confidential access).
fn purge_not_visible(batch: &mut Batch, tally: &mut Tally, id: &str) -> Result<(), Error> {
    tracing::info!(id = %id, "an opportunity is not visible to this credential; purged");
    tally.not_visible += 1;
    batch.delete(id)?;
    Ok(())
}

/// Journals one finished child fetch; a credential error stops the run, any other failure
/// (a malformed child record included) is counted and the opportunity is left as stored.
fn record_outcome(
    batch: &mut Batch,
    id: String,
    result: Result<ChildOutcome, crate::lever::Error>,
    fetched: Option<&std::sync::mpsc::SyncSender<Candidate>>,
    tally: &mut Tally,
) -> Result<(), Error> {
    match result {
        Ok(ChildOutcome::Synced { stats, .. }) if !stats.malformed.is_empty() => {
            // Without that note or feedback form the record would be stored incomplete, and
            // judged unchanged by later runs: keep the stored version and try again next run.
            tracing::warn!(id = %id, malformed = stats.malformed.len(), "an opportunity has unreadable notes, feedback or resumes; it is retried next run");
            tally.malformed.extend(stats.malformed);
            tally.fail(id);
        }
        Ok(ChildOutcome::Synced { stats, .. })
            if stats.resumes_to_retry > 0
                && (batch.base().contains(&id) || batch.is_staged(&id)) =>
        {
            // The stored version may hold that resume's text: keep it, try again next run.
            tracing::warn!(id = %id, "a resume of an opportunity could not be downloaded or extracted this run; the stored version stays and it is retried next run");
            tally.fail(id);
        }
        Ok(ChildOutcome::Synced { candidate, stats }) => {
            if stats.resumes_to_retry > 0 {
                // A new opportunity: stored without that text rather than not at all, and
                // fetched again next run.
                tracing::warn!(id = %id, "a resume of a new opportunity could not be downloaded or extracted this run; it is stored without that text and fetched again next run");
                tally.fetch_again.push(id.clone());
            }
            tally.fetched += 1;
            tally.resumes_downloaded += stats.resumes_downloaded;
            tally.resume_text_failed += stats.resume_text_failed;
            if let Some(fetched) = fetched {
                // Full or gone receiver: the index build embeds this candidate itself.
                let _ = fetched.try_send(candidate.as_ref().clone());
            }
            batch.upsert(*candidate)?;
        }
        Ok(ChildOutcome::Gone) => {
            tally.fetched += 1;
            batch.delete(&id)?;
        }
        Ok(ChildOutcome::NotVisible) => purge_not_visible(batch, tally, &id)?,
        Err(e) if e.is_auth() => return Err(Error::Lever(e)),
        Err(e) => {
            tracing::warn!(id = %id, error = %e, "could not sync an opportunity; it is retried next run");
            if let crate::lever::Error::Malformed { path, reason } = e {
                tally.malformed.push(MalformedRecord {
                    path,
                    id: Some(id.clone()),
                    reason,
                });
            }
            tally.fail(id);
        }
    }
    Ok(())
}

fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}
