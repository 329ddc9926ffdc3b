//! `rediscover mock-lever`: serve a local Lever-compatible API over a generated pool or a
//! fixture directory until Ctrl-C or SIGTERM, printing its base URL once it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::mock_lever::{MockConfig, MockLever, Pool, generate_pool};
use anyhow::Context;

/// Arguments of `rediscover mock-lever`.
#[derive(clap::Args)]
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
    /// OAuth access token accepted as `Bearer` (repeat for several).
    #[arg(long = "bearer-token", hide_env_values = true)]
    pub bearer_tokens: Vec<String>,
    /// Generate a pool of this many opportunities.
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Seed of the generated pool.
    #[arg(long, default_value_t = 1, requires = "candidates")]
    pub seed: u64,
    /// Serve the pool in this fixture directory (`opportunities.jsonl`, `postings.jsonl`).
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Rate limit per credential, requests per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Token-bucket capacity per credential.
    #[arg(long, default_value_t = 20)]
    pub burst: u32,
    /// Share (0..=1) of requests answered 500 or 503.
    #[arg(long = "fail-rate", default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Latency added to every request, milliseconds.
    #[arg(long = "latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the fault dice.
    #[arg(long = "fault-seed", default_value_t = 0)]
    pub fault_seed: u64,
    /// Send `Retry-After: SECS` with 429 answers.
    #[arg(long = "retry-after")]
    pub retry_after: Option<u64>,
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
        (None, Some(n)) => generate_pool(n, args.seed),
        (None, None) => anyhow::bail!("give --candidates N or --fixture DIR"),
    };
    let config = MockConfig {
        api_keys: args.api_keys,
        bearer_tokens: args.bearer_tokens,
        rate_per_sec: args.rate,
        burst: args.burst,
        fail_rate: args.fail_rate,
        latency_ms: args.latency_ms,
        fault_seed: args.fault_seed,
        retry_after_secs: args.retry_after,
        webhook_retry_delay_ms: args.webhook_retry_delay_ms,
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
