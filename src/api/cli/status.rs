//! `rediscover status`: what the local store and the indexes hold, for people or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::index;
use crate::store::Store;
use crate::sync::inbox::{self, Inbox};
use anyhow::Context;
use serde_json::json;

use super::render;

/// Show what the local store and the indexes hold.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rediscover status --data index
  rediscover status --data index --json")]
pub struct Args {
    /// Data folder (the store and the indexes live inside it).
    #[arg(long, default_value = "index", env = "REDISCOVER_DATA")]
    pub data: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `rediscover status`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::require_store(&args.data)?;
    let store = Store::open(&args.data)
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let counts = store.counts();
    let sync = store.sync_state();
    // A damaged index is reported with the rest, not instead of it.
    let (index, index_error) = match index::current_stats(&args.data) {
        Ok(index) => (index, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let pending = Inbox::new(&args.data)
        .read()
        .context("cannot read the webhook inbox")?;
    let retries = pending
        .notices
        .iter()
        .filter(|n| n.event == inbox::RETRY_EVENT)
        .count();
    let notices = pending.notices.len() - retries;
    let skipped_files = crate::sync::skipped_resume_files(&args.data);
    if args.json {
        let value = json!({
            "data": args.data,
            "store_generation": store.generation(),
            "opportunities": counts.opportunities,
            "contacts": counts.contacts,
            "resumes_with_text": counts.resumes_with_text,
            "notes": counts.notes,
            "feedback": counts.feedback,
            "postings": counts.postings,
            "last_sync_started_at": sync.last_run_started_at,
            "last_sync_at": sync.last_success_at,
            "sync_runs": sync.runs,
            "webhook_notices_waiting": notices,
            "retries_waiting": retries,
            "resume_files_skipped": skipped_files,
            "index": index,
            "index_behind_store": index.is_none_or(|i| i.generation != store.generation()),
            "index_error": index_error,
        });
        say!("{value}");
    } else {
        say!("data folder        {}", args.data.display());
        say!("store generation   {}", store.generation());
        say!("opportunities      {}", counts.opportunities);
        say!("people (contacts)  {}", counts.contacts);
        say!("resumes with text  {}", counts.resumes_with_text);
        say!("notes              {}", counts.notes);
        say!("feedback forms     {}", counts.feedback);
        say!("postings           {}", counts.postings);
        say!(
            "last sync          {}",
            render::utc_or_never(sync.last_success_at)
        );
        say!("sync runs          {}", sync.runs);
        say!("webhook notices    {notices} waiting for the next sync");
        if retries > 0 {
            say!(
                "retries            {retries} opportunities a sync could not update, queued to be fetched again (the queue empties after a sync that indexes)"
            );
        }
        if skipped_files > 0 {
            say!(
                "resume files       {skipped_files} skipped: their text extraction died or ran past its deadline in two syncs (with {} removed, each is tried again when its opportunity next changes)",
                args.data.join("extracting").display()
            );
        }
        match (index, &index_error) {
            (_, Some(error)) => say!("index              unreadable: {error}"),
            (Some(i), None) => {
                say!("index generation   {}", i.generation);
                say!("indexed candidates {}", i.candidates);
                say!(
                    "vectors            {} ({})",
                    i.vectors,
                    render::count(i.tombstones, "tombstone", "tombstones")
                );
                say!("index size         {}", render::bytes(i.bytes_on_disk));
                if i.generation != store.generation() {
                    say!("note: the index is behind the store; run `rediscover index`");
                }
            }
            (None, None) => {
                say!("index              none yet (run `rediscover sync` or `rediscover index`)")
            }
        }
    }
    // Everything is shown; a damaged index still makes the exit status say something is wrong.
    Ok(if index_error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
