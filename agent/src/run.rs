//! `auditloop run`: start capture, print events until SIGINT/SIGTERM, shut down cleanly.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::capture::Capture;
use crate::cli::RunArgs;
use crate::config::Config;
use crate::output::write_event;

/// Events buffered between capture and output; when full, capture waits (and the kernel counts losses).
const EVENT_QUEUE: usize = 16 * 1024;

/// Runs the agent until a termination signal.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "auditloop run must run as root: loading tracepoint programs needs CAP_BPF, CAP_PERFMON \
             and CAP_SYS_ADMIN (try: sudo auditloop run)"
        );
    }
    let mut config = Config::load(&args.config)?;
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    // The agent's own config is always watched.
    config.watch.paths.push(args.config.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: RunArgs, config: Config) -> anyhow::Result<ExitCode> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let capture = Capture::start(&config).context("starting kernel capture")?;
    tracing::info!(
        ring_buffer_bytes = config.capture.ring_buffer_bytes,
        "capture started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel(config.capture.clone());
    let (event_tx, mut event_rx) = mpsc::channel(EVENT_QUEUE);
    let capture_task = tokio::spawn(capture.run(event_tx, stop_rx, reload_rx));
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let format = args.output;
    let printer = tokio::spawn(async move {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        while let Some(event) = event_rx.recv().await {
            write_event(&mut out, format, &event)?;
            if event_rx.is_empty() {
                out.flush()?;
            }
        }
        out.flush()
    });

    loop {
        tokio::select! {
            _ = sigint.recv() => {
                tracing::info!("SIGINT received, shutting down");
                break;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM received, shutting down");
                break;
            }
            _ = sighup.recv() => match Config::load(&args.config) {
                Ok(new) => {
                    tracing::info!(config = %args.config.display(), "SIGHUP: config reloaded");
                    reload_tx.send_replace(new.capture);
                }
                Err(err) => tracing::error!("SIGHUP: keeping the running config: {err}"),
            },
        }
    }
    stop_tx.send_replace(true);
    let stats = capture_task
        .await
        .context("capture task panicked")?
        .context("capture failed")?;
    printer
        .await
        .context("output task panicked")?
        .context("writing events to stdout")?;
    tracing::info!(
        records = stats.records,
        events = stats.events,
        kernel_lost = stats.kernel_lost,
        decode_errors = stats.decode_errors,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}
