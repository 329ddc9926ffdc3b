//! `rediscover sync`: copy the Lever talent pool into the local store (full first, then
//! incremental), print a summary, or one JSON object as the last stdout line with `--json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use crate::lever::auth::{DEFAULT_TOKEN_URL, TOKEN_FILE_NAME};
use crate::lever::{
    ApiKey, ClientConfig, Credentials, DEFAULT_BASE_URL, OAuthConfig, OAuthSession,
};
use crate::sync::{SyncOptions, SyncReport};

use super::render::count;

/// Copy the Lever talent pool into the local store.
///
/// Authenticates with `LEVER_API_KEY` (Basic, blank password), or with OAuth when
/// `LEVER_OAUTH_CLIENT_ID` and `LEVER_OAUTH_CLIENT_SECRET` are set (the rotating refresh token
/// lives in DATA/lever-oauth.json; seed it once with `LEVER_OAUTH_REFRESH_TOKEN`).
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "\
Authentication, from the environment:
  LEVER_API_KEY               an API key (Settings > Integrations and API)
  or, for OAuth instead:
  LEVER_OAUTH_CLIENT_ID       the OAuth app's client id
  LEVER_OAUTH_CLIENT_SECRET   its client secret
  LEVER_OAUTH_REFRESH_TOKEN   the first refresh token; Lever rotates it, and the current one
                              is kept in DATA/lever-oauth.json (owner-only) from then on;
                              a new one set here is tried when Lever refuses the stored one
  LEVER_OAUTH_TOKEN_URL       the token endpoint, when not Lever's own

Examples:
  # First run: a full backfill; the same command afterwards syncs what changed.
  LEVER_API_KEY=... rediscover sync --data index
  # Nightly from cron: one JSON report line, plain-text logs.
  rediscover sync --data index --json >> sync.log 2>&1
  # Weekly: list everything again (what changed is fetched, what is gone is purged).
  rediscover sync --data index --full
  # Only the store now; `rediscover index --data index` builds the indexes later.
  rediscover sync --data index --no-index
  # Against a local mock Lever (`rediscover mock-lever` prints its URL).
  LEVER_API_KEY=demo rediscover sync --lever-url http://127.0.0.1:8900/v1 --data index --rate 10"
)]
pub struct Args {
    /// Lever API base URL, including /v1.
    #[arg(long, env = "LEVER_URL", default_value = DEFAULT_BASE_URL)]
    pub lever_url: String,
    /// Data folder (the store lives in DATA/store).
    #[arg(long, default_value = "index", env = "REDISCOVER_DATA")]
    pub data: PathBuf,
    /// Requests per second for the whole run (Lever allows 10; more only against a mock).
    #[arg(long, default_value_t = 8.0)]
    pub rate: f64,
    /// Requests allowed back to back (at least 1; default: a quarter second's worth of
    /// --rate, kept between 1 and 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
    /// Opportunities whose resumes, notes and feedback are fetched at the same time (at least 1).
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    pub concurrency: usize,
    /// Print one JSON object (the run's report) as the last line.
    #[arg(long)]
    pub json: bool,
    /// Only update the store; leave the indexes as they are (`rediscover index` catches up).
    #[arg(long)]
    pub no_index: bool,
    /// List every opportunity again, as the first run does, instead of those changed since
    /// the last run: finds the changes Lever's `updatedAt` does not show, and purges what
    /// Lever no longer has (a weekly run is plenty).
    #[arg(long)]
    pub full: bool,
    /// Folder with the embedding model files (default ./models).
    #[arg(long, env = "REDISCOVER_MODELS")]
    pub models: Option<PathBuf>,
}

/// Runs `rediscover sync`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let credentials = credentials(&args.data)?;
    let client = ClientConfig {
        base_url: args.lever_url.clone(),
        rate: args.rate,
        burst: args.burst,
        ..ClientConfig::default()
    };
    let mut options = SyncOptions::new(&args.data, client, credentials);
    options.concurrency = args.concurrency;
    options.progress = !args.json;
    options.full = args.full;
    options.extraction = super::extraction_in_child();
    // Loaded first, so a missing model stops the run before it syncs, and so what is fetched
    // can be embedded while the sync waits on Lever's rate limit.
    let indexing = if args.no_index {
        None
    } else {
        let embedder = super::index::load_for_sync(args.models.as_deref())?;
        let reuse = args.full.then_some(args.data.as_path());
        let prefetcher = super::index::start_prefetch(&embedder, reuse)?;
        options.fetched = Some(prefetcher.sender());
        Some((embedder, prefetcher))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(crate::sync::run(options))
        .map_err(|err| match err {
            crate::sync::Error::Lever(err) => with_url_hint(err, &args.lever_url, "/stages"),
            err => err.into(),
        })
        .with_context(|| format!("sync into {} failed", args.data.display()))?;
    if !args.json {
        print_summary(&report);
    }
    let indexed = match indexing {
        None => Ok(None),
        Some((embedder, prefetcher)) => super::index::after_sync(
            &args.data,
            &embedder,
            prefetcher,
            &report.commit,
            !args.json,
        )
        .map(|outcome| {
            // The indexes now show what the webhook notices asked for: they can go. (With
            // --no-index they stay, and keep deleted candidates hidden, until a sync indexes.)
            if let Err(e) = report.release_notices(&args.data) {
                tracing::warn!(error = %e, "webhook notices stay in the inbox; the next sync acts on them again");
            }
            Some(outcome)
        }),
    };
    if args.json {
        // The report line comes even when the index step failed: the store was committed. It
        // is the last line: the error line goes out first, and the run exits 2 after it.
        if let Err(e) = &indexed {
            eprintln!("rediscover: {}", super::error_line(e));
        }
        let mut value = report_json(&report);
        if let Some(map) = value.as_object_mut() {
            match &indexed {
                Ok(Some(outcome)) => {
                    map.insert("index_action".into(), json!(outcome.action));
                    map.insert("index_generation".into(), json!(outcome.generation));
                    map.insert("index_seconds".into(), json!(outcome.seconds));
                }
                Ok(None) => {}
                Err(e) => {
                    map.insert("index_error".into(), json!(super::error_line(e)));
                }
            }
        }
        say!("{value}");
        if indexed.is_err() {
            return Ok(ExitCode::from(2));
        }
    }
    indexed?;
    Ok(if report.opportunities_failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A count that must be at least 1.
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A 404 on `first_path`, the first call a command makes, from a Lever URL whose path does not
/// end in `/v1` almost always means the `/v1` was left out: the error says so.
pub(super) fn with_url_hint(
    err: crate::lever::Error,
    lever_url: &str,
    first_path: &str,
) -> anyhow::Error {
    let missing_v1 =
        url::Url::parse(lever_url).is_ok_and(|u| !u.path().trim_end_matches('/').ends_with("/v1"));
    match &err {
        crate::lever::Error::NotFound { path } if path == first_path && missing_v1 => {
            let hint = format!(
                "{err}: the Lever URL {lever_url} lacks the API's /v1; try --lever-url {}/v1",
                lever_url.trim_end_matches('/')
            );
            anyhow::Error::new(err).context(hint)
        }
        _ => err.into(),
    }
}

/// The Lever credential from the environment: `LEVER_API_KEY`, else OAuth (its rotating
/// refresh token kept in `data`).
pub(super) fn credentials(data: &Path) -> anyhow::Result<Credentials> {
    if let Some(key) = std::env::var("LEVER_API_KEY").ok().and_then(ApiKey::new) {
        return Ok(Credentials::ApiKey(key));
    }
    let client_id = std::env::var("LEVER_OAUTH_CLIENT_ID").ok();
    let client_secret = std::env::var("LEVER_OAUTH_CLIENT_SECRET").ok();
    let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
        bail!(
            "LEVER_API_KEY is not set: export your Lever API key (Settings > Integrations and API > API Credentials), or set LEVER_OAUTH_CLIENT_ID and LEVER_OAUTH_CLIENT_SECRET"
        );
    };
    let config = OAuthConfig {
        token_url: std::env::var("LEVER_OAUTH_TOKEN_URL")
            .unwrap_or_else(|_| DEFAULT_TOKEN_URL.into()),
        client_id,
        client_secret,
        token_file: data.join(TOKEN_FILE_NAME),
    };
    let session = if config.token_file.exists() {
        OAuthSession::load(config)?
            .with_replacement(std::env::var("LEVER_OAUTH_REFRESH_TOKEN").ok())
    } else {
        let Ok(refresh) = std::env::var("LEVER_OAUTH_REFRESH_TOKEN") else {
            bail!(
                "no OAuth token file at {}: set LEVER_OAUTH_REFRESH_TOKEN once to create it",
                config.token_file.display()
            );
        };
        OAuthSession::seed(config, &refresh)?
    };
    Ok(Credentials::OAuth(std::sync::Arc::new(session)))
}

/// The report as JSON: counts, plus the ids of the opportunities that failed (few, and worth
/// acting on). The ids of every changed or deleted opportunity are left out: after a backfill
/// they would make one line of megabytes in a cron log.
fn report_json(report: &SyncReport) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_else(|_| json!({}))
}

pub(super) fn print_summary(r: &SyncReport) {
    let mode = match r.mode {
        crate::sync::SyncMode::Full => "full",
        crate::sync::SyncMode::Incremental => "incremental",
    };
    say!(
        "{mode} sync{} done in {:.1}s: {} stored (generation {})",
        if r.resumed { " (resumed)" } else { "" },
        r.wall_seconds,
        count(r.opportunities_total, "opportunity", "opportunities"),
        r.generation
    );
    say!(
        "  listed {}, fetched {}, unchanged {}, changed {}, deleted {}",
        r.opportunities_listed,
        r.opportunities_fetched,
        r.opportunities_unchanged,
        r.opportunities_changed,
        r.opportunities_deleted
    );
    say!(
        "  {} ({:.1}/s), {}, {} rate limited, {}",
        count(r.api_calls, "API call", "API calls"),
        r.api_calls as f64 / r.wall_seconds.max(1e-3),
        count(r.retries, "retry", "retries"),
        r.rate_limited,
        count(r.server_errors, "server error", "server errors")
    );
    say!(
        "  {} downloaded, {} could not be read",
        count(r.resumes_downloaded, "resume file", "resume files"),
        r.resume_text_failed
    );
    if r.webhook_notices > 0 {
        say!("  webhook notices acted on: {}", r.webhook_notices);
    }
    if r.malformed_records > 0 {
        say!(
            "  {} skipped:",
            count(r.malformed_records, "malformed record", "malformed records")
        );
        for m in &r.malformed {
            say!(
                "    {} {} ({})",
                m.path,
                m.id.as_deref().unwrap_or("-"),
                m.reason
            );
        }
    }
    if r.opportunities_not_visible > 0 {
        say!(
            "  {} not visible to this credential (HTTP 403) purged",
            count(r.opportunities_not_visible, "opportunity", "opportunities")
        );
    }
    if !r.listing_complete {
        say!(
            "  Lever's listing could not be read in full: the next run lists the same window again"
        );
    }
    if r.opportunities_failed > 0 {
        say!(
            "  {} failed and will be retried next run: {}",
            count(r.opportunities_failed, "opportunity", "opportunities"),
            r.failed_ids.join(", ")
        );
    }
}
