//! `auditloop-collector`: wires the command line to the collector library.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use auditloop_collector::cli::Args;
use auditloop_collector::{AppState, SqliteStore, config, server};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auditloop-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let tokens = config::load_tokens(
        &args.agent_token_file,
        &args.admin_token_file,
        args.config.as_deref(),
    )
    .context("loading tokens")?;
    let listen = args.listen_options().context("setting up TLS")?;
    let store = SqliteStore::open(&args.db).context("opening the database")?;
    let state = AppState::new(Arc::new(store), tokens, args.max_body_bytes)
        .with_max_concurrent_batches(args.max_concurrent_batches());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {addr}").context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        }
        let tls = listen.tls.is_some();
        tracing::info!(%addr, tls, db = %args.db.display(), "collector started");
        server::serve(listener, listen, state, args.silence(), shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
