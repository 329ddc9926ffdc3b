//! `rediscover webhooks`: subscribe `serve`'s webhook route to Lever's candidate events (the
//! signature tokens Lever returns are kept in `DATA/webhook-tokens`), or list the subscriptions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::lever::webhook::{CANDIDATE_EVENTS, subscribe, subscriptions};
use crate::lever::{ClientConfig, DEFAULT_BASE_URL, LeverClient};
use crate::sync::inbox::{TOKENS_FILE, has_token_for_webhook, save_signature_token};

/// Subscribe to Lever's webhooks, or list them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// The `webhooks` actions.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create one Lever webhook per candidate event (stage change, archive change, hired,
    /// deleted, application created), delivering to URL, and keep each signature token in
    /// DATA/webhook-tokens, where `rediscover serve` checks deliveries against them.
    ///
    /// URL is where Lever reaches `rediscover serve`'s `/webhooks/lever` route; Lever delivers
    /// only over HTTPS with a CA-signed certificate, so it is usually a TLS proxy or tunnel.
    /// Events already delivered to URL are left as they are, provided DATA/webhook-tokens
    /// holds their token (Lever shows it only once, at creation); one whose token was lost is
    /// reported, with what to do, and the command fails. Authenticates like `rediscover sync`.
    #[command(after_help = "\
Examples:
  LEVER_API_KEY=... rediscover webhooks subscribe --data index \\
    --url https://rediscover.example.com/webhooks/lever
  LEVER_API_KEY=... rediscover webhooks subscribe --data index \\
    --url https://rediscover.example.com/webhooks/lever --events candidateDeleted,candidateHired
  # Then, behind the TLS proxy or tunnel that serves that URL:
  rediscover serve --data index")]
    Subscribe {
        /// The address Lever delivers to, e.g. https://rediscover.example.com/webhooks/lever.
        #[arg(long)]
        url: String,
        /// Events to subscribe to, comma-separated (default: all of them).
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(CANDIDATE_EVENTS))]
        events: Vec<String>,
        /// Lever API base URL, including /v1.
        #[arg(long, env = "LEVER_URL", default_value = DEFAULT_BASE_URL)]
        lever_url: String,
        /// Data folder (the tokens go to DATA/webhook-tokens).
        #[arg(long, default_value = "index", env = "REDISCOVER_DATA")]
        data: PathBuf,
    },
    /// List the account's webhooks created through the API (id, event, URL).
    List {
        /// Lever API base URL, including /v1.
        #[arg(long, env = "LEVER_URL", default_value = DEFAULT_BASE_URL)]
        lever_url: String,
        /// Data folder (only read for an OAuth token).
        #[arg(long, default_value = "index", env = "REDISCOVER_DATA")]
        data: PathBuf,
    },
}

/// Runs `rediscover webhooks`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.action {
        Action::Subscribe {
            url,
            events,
            lever_url,
            data,
        } => runtime.block_on(run_subscribe(&url, events, &lever_url, &data)),
        Action::List { lever_url, data } => runtime.block_on(run_list(&lever_url, &data)),
    }
}

fn client(lever_url: &str, data: &std::path::Path) -> anyhow::Result<LeverClient> {
    let config = ClientConfig {
        base_url: lever_url.to_owned(),
        ..ClientConfig::default()
    };
    Ok(LeverClient::new(config, super::sync::credentials(data)?)?)
}

async fn run_subscribe(
    url: &str,
    events: Vec<String>,
    lever_url: &str,
    data: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let parsed = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" => eprintln!(
            "note: Lever delivers only to https addresses; {url} only suits a local mock Lever"
        ),
        other => bail!("--url must be an https address, not {other}:"),
    }
    let events = if events.is_empty() {
        CANDIDATE_EVENTS.iter().map(|e| (*e).to_owned()).collect()
    } else {
        events
    };
    let client = client(lever_url, data)?;
    let existing = subscriptions(&client)
        .await
        .map_err(|e| super::sync::with_url_hint(e, lever_url, "/webhooks"))
        .context("listing the webhooks")?;
    let tokens_path = data.join(TOKENS_FILE);
    let mut without_token = Vec::new();
    for event in &events {
        if let Some(webhook) = existing.iter().find(|w| w.url == url && &w.event == event) {
            // Lever shows a signature token only when the webhook is created.
            if has_token_for_webhook(data, &webhook.id)? {
                say!(
                    "already subscribed {event}: webhook {} (its token is kept)",
                    webhook.id
                );
            } else {
                eprintln!(
                    "{event}: webhook {} exists but {} holds no signature token for it \
                     (Lever shows the token only when a webhook is created), so its \
                     deliveries would be rejected",
                    webhook.id,
                    tokens_path.display()
                );
                without_token.push(webhook.id.clone());
            }
            continue;
        }
        let webhook = subscribe(&client, url, event).await.with_context(|| {
            format!(
                "subscribing to {event} (Lever may have created the webhook anyway: \
                 rerun to check)"
            )
        })?;
        let Some(token) = webhook.configuration.signature_token.as_deref() else {
            bail!(
                "Lever created webhook {} for {event} without a signature token; delete it in Lever",
                webhook.id
            );
        };
        save_signature_token(data, token, &format!("{event} webhook {}", webhook.id))
            .with_context(|| {
                format!(
                    "keeping the signature token of webhook {} for {event}; delete that \
                     webhook in Lever and rerun",
                    webhook.id
                )
            })?;
        say!("subscribed {event}: webhook {}", webhook.id);
    }
    if !without_token.is_empty() {
        bail!(
            "no signature token kept for webhook(s) {}: delete them in Lever (Settings > \
             Integrations and API, or DELETE /webhooks/ID) and run `rediscover webhooks \
             subscribe` again; if you saved a token by hand, put a line `# webhook ID` above it \
             in {}",
            without_token.join(", "),
            tokens_path.display()
        );
    }
    say!(
        "signature tokens kept in {}; run `rediscover serve` where {url} reaches it",
        tokens_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_list(lever_url: &str, data: &std::path::Path) -> anyhow::Result<ExitCode> {
    let client = client(lever_url, data)?;
    let webhooks = subscriptions(&client)
        .await
        .map_err(|e| super::sync::with_url_hint(e, lever_url, "/webhooks"))
        .context("listing the webhooks")?;
    if webhooks.is_empty() {
        // On stderr: stdout stays rows only, for scripts.
        eprintln!(
            "no webhooks were created through the API (`rediscover webhooks subscribe` creates them)"
        );
    }
    for webhook in webhooks {
        say!("{}\t{}\t{}", webhook.id, webhook.event, webhook.url);
    }
    Ok(ExitCode::SUCCESS)
}
