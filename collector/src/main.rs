//! `auditloop-collector`: wires the command line to the collector library.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use auditloop_collector::cli::{self, Args, Invocation, IssueHostTokens};
use auditloop_collector::host_tokens::issue_host_tokens;
use auditloop_collector::metrics::Exporter;
use auditloop_collector::scrape::MetricsEndpoint;
use auditloop_collector::settings::Settings;
use auditloop_collector::{AppState, config, server, store};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let invocation = match cli::parse_from(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match invocation {
        Invocation::Serve(args) => serve(&args),
        Invocation::IssueHostTokens(cmd) => issue(&cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auditloop-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(args)?;
    let tokens = config::load_all_tokens(
        &settings.admin_token_file,
        settings.enroll_token_file.as_deref(),
        settings.approver_token_file.as_deref(),
        settings.viewer_token_file.as_deref(),
    )
    .context("loading tokens")?;
    let listen = settings.listen_options().context("setting up TLS")?;
    let store = open_store(&settings)?;
    let state = AppState::new(store, tokens, settings.max_body_bytes)
        .with_max_concurrent_batches(settings.max_concurrent_batches)
        .with_lineage(settings.lineage())
        .with_groups(settings.groups.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let metrics = match &settings.metrics_listen {
            Some(at) => Some(metrics_endpoint(at).await?),
            None => None,
        };
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {addr}").context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        }
        let tls = listen.tls.is_some();
        tracing::info!(%addr, tls, db = %store::shown(&settings.db), "collector started");
        server::serve(
            listener,
            listen,
            state,
            settings.silence(),
            metrics,
            shutdown,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Opens the database, and for PostgreSQL with retention on, starts dropping the days past it.
fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn store::Store>> {
    let shown = store::shown(&settings.db);
    let url = settings.db.to_str().filter(|db| store::is_postgres_url(db));
    match (url, settings.retention_days) {
        (Some(url), retention) => {
            let pg = Arc::new(
                store::PgStore::connect(url)
                    .with_context(|| format!("opening the database {shown}"))?,
            );
            if let Some(days) = retention {
                auditloop_collector::retention::start(Arc::clone(&pg), days)
                    .context("starting retention")?;
            }
            Ok(pg)
        }
        (None, Some(_)) => anyhow::bail!(
            "retention_days needs a PostgreSQL database (--db postgres://...): {shown} is a SQLite file"
        ),
        (None, None) => Ok(Arc::new(
            store::SqliteStore::open(&settings.db)
                .with_context(|| format!("opening the database {shown}"))?,
        )),
    }
}

/// Binds the metrics listener at `at` and installs the recorder.
async fn metrics_endpoint(at: &str) -> anyhow::Result<MetricsEndpoint> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("metrics: listening on {at}"))?;
    let addr = listener
        .local_addr()
        .context("metrics: reading the bound address")?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the metrics endpoint has no authentication and is not on loopback");
    }
    let exporter = Exporter::install().context("metrics")?;
    tracing::info!(%addr, path = auditloop_collector::scrape::METRICS_PATH, "serving metrics");
    Ok(MetricsEndpoint { listener, exporter })
}

fn issue(cmd: &IssueHostTokens) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        cmd.db.to_str().is_some_and(store::is_postgres_url) || cmd.db.is_file(),
        "{}: no such database (give the collector's --db file)",
        cmd.db.display()
    );
    let store = store::open(&cmd.db)
        .with_context(|| format!("opening the database {}", store::shown(&cmd.db)))?;
    let issued = issue_host_tokens(store.as_ref(), &cmd.out, cmd.host.as_deref())
        .context("issuing host tokens")?;
    let mut out = std::io::stdout().lock();
    for i in &issued {
        writeln!(out, "{}: {}", i.host, i.file.display()).context("writing to stdout")?;
    }
    if issued.is_empty() {
        writeln!(
            out,
            "every host has a token already (give --host to replace one)"
        )
        .context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
