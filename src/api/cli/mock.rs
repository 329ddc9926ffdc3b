//! `rediscover mock-lever`: serve a local Lever-compatible API over a generated pool or a
//! fixture directory until Ctrl-C or SIGTERM, printing its base URL once it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::mock_lever::{MockConfig, MockLever, OAuthConfig, Pool, generate_pool};
use anyhow::Context;

/// Arguments of `rediscover mock-lever`.
#[derive(clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "\
The first line on stdout is the base URL (http://127.0.0.1:PORT/v1) once it listens; point
`rediscover sync --lever-url` at it. Besides Lever's routes it serves a control API for tests
and demos: POST /_mock/mutate (change the pool as Lever users would: {\"op\": \"delete\",
\"opportunity_id\": \"...\"}; the ops are add_note, move_stage, archive, delete,
delete_application, add_candidates, update_resume_text, add_tags), POST /_mock/faults
(fail_rate, latency_ms, rate_per_sec, burst, retry_after_secs, force_status, force_count) and
GET /_mock/stats; a bad body is answered with what it lacks.

Examples:
  # A generated pool of 300 candidates on a free port.
  rediscover mock-lever --api-key demo --candidates 300 --seed 7
  # A fixture folder on a fixed port, at Lever's own rate limit.
  rediscover mock-lever --api-key demo --fixture my-pool/ --listen 127.0.0.1:8900
  # Then, in another shell:
  LEVER_API_KEY=demo rediscover sync --lever-url http://127.0.0.1:8900/v1 --data index --rate 10"
)]
#[command(group(clap::ArgGroup::new("pool").required(true).args(["candidates", "fixture"])))]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// API key accepted as the Basic-auth username (repeat for several).
    #[arg(
        long = "api-key",
        env = "LEVER_API_KEY",
        required = true,
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// API key accepted without confidential access: confidential records stay hidden and
    /// asking for them is a 403 (repeat for several).
    #[arg(long = "api-key-without-confidential", hide_env_values = true)]
    pub api_keys_without_confidential: Vec<String>,
    /// OAuth access token accepted as `Bearer` (repeat for several).
    #[arg(long = "bearer-token", hide_env_values = true)]
    pub bearer_tokens: Vec<String>,
    /// Generate a pool of this many opportunities.
    #[arg(long)]
    pub candidates: Option<u32>,
    /// Seed of the generated pool (and of the fault dice).
    #[arg(long, default_value_t = 1, requires = "candidates")]
    pub seed: u64,
    /// Serve the pool in this fixture directory (`opportunities.jsonl`, `postings.jsonl`).
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Rate limit per credential, requests per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Token-bucket capacity per credential (0 counts as 1).
    #[arg(long, default_value_t = 20)]
    pub burst: u32,
    /// Share (0..=1) of requests answered 500 or 503.
    #[arg(long = "fail-rate", default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Latency added to every request, milliseconds.
    #[arg(long = "latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// Send `Retry-After: SECS` with 429 answers (0: no header, as Lever documents none).
    #[arg(long = "retry-after", default_value_t = 0)]
    pub retry_after: u64,
    /// Answer 404 (not an empty list) for opportunities without resumes, as Lever used to.
    #[arg(long = "legacy-resume-404")]
    pub legacy_resume_404: bool,
    /// Enable `POST /oauth/token` as `CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN` (access tokens
    /// live one hour; each refresh token works once and is replaced).
    #[arg(long, env = "MOCK_LEVER_OAUTH", hide_env_values = true)]
    pub oauth: Option<String>,
    /// Scopes granted to the `--oauth` client, space separated; its access tokens see
    /// confidential records only with `confidential:access:admin`.
    #[arg(long = "oauth-scope", default_value = OAuthConfig::DEFAULT_SCOPE, requires = "oauth")]
    pub oauth_scope: String,
    /// Delay before the first webhook redelivery, milliseconds (doubles each retry).
    #[arg(long = "webhook-retry-delay-ms", default_value_t = 1000)]
    pub webhook_retry_delay_ms: u64,
}

impl std::fmt::Debug for Args {
    // Keys and tokens never appear in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

/// Runs the mock until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fail_rate),
        "--fail-rate must be between 0 and 1"
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let pool = match (&args.fixture, args.candidates) {
        (Some(dir), _) => {
            Pool::load_fixture(dir).with_context(|| format!("loading fixture {}", dir.display()))?
        }
        (None, Some(n)) => generate_pool(n as usize, args.seed),
        (None, None) => anyhow::bail!("give --candidates N or --fixture DIR"),
    };
    let oauth = match args
        .oauth
        .as_deref()
        .map(|v| v.splitn(3, ':').collect::<Vec<_>>())
    {
        None => None,
        Some(parts) if parts.len() == 3 && parts.iter().all(|p| !p.is_empty()) => {
            Some(OAuthConfig {
                client_id: parts[0].to_owned(),
                client_secret: parts[1].to_owned(),
                refresh_token: parts[2].to_owned(),
                access_ttl_ms: 3_600_000,
                scope: args.oauth_scope.clone(),
            })
        }
        Some(_) => anyhow::bail!("--oauth must be CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN"),
    };
    let config = MockConfig {
        oauth,
        api_keys: args.api_keys,
        api_keys_without_confidential: args.api_keys_without_confidential,
        bearer_tokens: args.bearer_tokens,
        rate_per_sec: args.rate,
        burst: args.burst,
        fail_rate: args.fail_rate,
        latency_ms: args.latency_ms,
        fault_seed: args.seed,
        retry_after_secs: (args.retry_after > 0).then_some(args.retry_after),
        webhook_retry_delay_ms: args.webhook_retry_delay_ms,
        legacy_resume_404: args.legacy_resume_404,
        ..MockConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let opportunities = pool.opportunities().len();
        let mock = MockLever::start(args.listen, pool, config).await?;
        tracing::info!(opportunities, "mock lever ready");
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", mock.base_url())?;
        stdout.flush()?;
        drop(stdout);
        wait_for_signal().await?;
        tracing::info!("shutting down");
        mock.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
