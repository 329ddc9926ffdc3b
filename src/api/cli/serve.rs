//! `rediscover serve`: the HTTP query API on a local address, with bearer-token auth from
//! `REDISCOVER_TOKEN`, hot reload of new index generations, Lever's webhook deliveries
//! (`POST /webhooks/lever`) and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::api::http::{AppState, app};
use crate::engine::Engine;

/// The environment variable holding the API token.
const TOKEN_VAR: &str = "REDISCOVER_TOKEN";
/// How often `serve` looks for a new index or store generation while no query comes.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Arguments of `rediscover serve`. The token comes only from `REDISCOVER_TOKEN`, so it never
/// shows in the process list.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # On this machine only (no token needed on loopback): http://127.0.0.1:7700
  rediscover serve --data index
  # For the team: a token is required off loopback.
  REDISCOVER_TOKEN=secret rediscover serve --data index --listen 0.0.0.0:7700
  curl -s -H 'Authorization: Bearer secret' -H 'Content-Type: application/json' \\
    -d '{\"text\": \"Senior backend engineer, Rust\", \"limit\": 5}' http://127.0.0.1:7700/v1/match

The API is described at /openapi.json.")]
pub struct Args {
    /// The data folder (store and indexes).
    #[arg(long, env = "REDISCOVER_DATA", default_value = "index")]
    pub data: PathBuf,
    /// The model folder (default: $REDISCOVER_MODELS, else ./models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Address to listen on; a non-loopback address needs REDISCOVER_TOKEN.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: String,
    /// Serve keyword-only results without loading the embedding model.
    #[arg(long)]
    pub no_model: bool,
}

/// Runs `rediscover serve` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = std::env::var(TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, token))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args, token: Option<String>) -> anyhow::Result<()> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&args.listen)
        .await
        .with_context(|| format!("resolving listen address {}", args.listen))?
        .collect();
    let Some(&addr) = addrs.first() else {
        bail!("listen address {} resolves to nothing", args.listen)
    };
    if token.is_none() && !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!(
            "refusing to listen on non-loopback address {} without a token: set {TOKEN_VAR}",
            args.listen
        );
    }
    // Before the first index is built `serve` starts (and answers 503), but only on a store.
    super::require_store(&args.data)?;
    let embedder = if args.no_model {
        None
    } else {
        Some(super::matching::load_embedder(
            args.models.as_deref(),
            Some("--no-model"),
        )?)
    };
    let data = args.data.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::open(&data, embedder))
        .await
        .context("opening the engine")??;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    // The first line on stdout names the bound address (port 0 picks a free one).
    say!("listening on http://{local}");
    let generation = engine.snapshot().ok().map(|s| s.generation());
    tracing::info!(%local, auth = token.is_some(), index_generation = ?generation, "serving the query API");
    let engine = Arc::new(engine);
    tokio::spawn(refresh_periodically(Arc::clone(&engine)));
    let router = app(AppState::new(engine, token));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("server stopped");
    Ok(())
}

/// Looks for new generations while no query comes, so a replaced index or store (which may
/// hold candidates a sync purged) is unmapped soon after the sync, not at the next query.
async fn refresh_periodically(engine: Arc<Engine>) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let engine = Arc::clone(&engine);
        match tokio::task::spawn_blocking(move || engine.refresh()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "looking for a new generation failed"),
            // A panic's message could quote data: it is not logged.
            Err(_) => tracing::warn!("looking for a new generation panicked"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
