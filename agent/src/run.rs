//! `auditloop run`: start capture, print events until SIGINT/SIGTERM, shut down cleanly.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use agent_common::model::{ConfigLoaded, Event, EventBody, WallTime};

use crate::capture::Capture;
use crate::cli::RunArgs;
use crate::config::Config;
use crate::journal::JournalStage;
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

/// `config_loaded` for the file at `path` (absent = defaults).
fn config_loaded(path: &std::path::Path, reason: &str) -> EventBody {
    let sha256 = std::fs::read(path).ok().map(|bytes| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    });
    EventBody::ConfigLoaded(ConfigLoaded {
        path: path.display().to_string(),
        sha256,
        reason: reason.into(),
    })
}

async fn serve(args: RunArgs, config: Config) -> anyhow::Result<ExitCode> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let (journal, recovered) =
        JournalStage::open(&config.journal, &config.state_dir).context("opening the journal")?;
    let capture = Capture::start(&config).context("starting kernel capture")?;
    tracing::info!(
        ring_buffer_bytes = config.capture.ring_buffer_bytes,
        state_dir = %config.state_dir.display(),
        "capture started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel(config.capture.clone());
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (agent_tx, agent_rx) = mpsc::channel(64);
    let startup: Vec<EventBody> = recovered
        .into_iter()
        .chain([config_loaded(&args.config, "start")])
        .collect();
    for body in startup {
        agent_tx
            .send(body)
            .await
            .context("queueing a startup event")?;
    }
    let capture_task = tokio::spawn(capture.run(event_tx, stop_rx, reload_rx));
    let consumer = tokio::spawn(consume(journal, event_rx, agent_rx, args.output));

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
                    let _ = agent_tx.send(config_loaded(&args.config, "sighup")).await;
                }
                Err(err) => tracing::error!("SIGHUP: keeping the running config: {err}"),
            },
        }
    }
    stop_tx.send_replace(true);
    drop(agent_tx);
    let (stats, detacher) = capture_task
        .await
        .context("capture task panicked")?
        .context("capture failed")?;
    consumer.await.context("journal/output task panicked")??;
    tokio::task::spawn_blocking(move || detacher.detach())
        .await
        .context("detaching programs")?;
    tracing::info!(
        records = stats.records,
        events = stats.events,
        kernel_lost = stats.kernel_lost,
        decode_errors = stats.decode_errors,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Appends every event to the journal (which numbers it), then prints it. Agent events (config loaded,
/// journal recovered) are journaled as they come. Returns when capture's channel closes, after sealing the
/// journal.
async fn consume(
    mut journal: JournalStage,
    mut events: mpsc::Receiver<Event>,
    mut agent: mpsc::Receiver<EventBody>,
    format: crate::output::Format,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let mut agent_open = true;
    loop {
        let mut event = tokio::select! {
            biased;
            body = agent.recv(), if agent_open => match body {
                Some(body) => agent_event(body),
                None => {
                    agent_open = false;
                    continue;
                }
            },
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = tick.tick() => {
                journal.tick().context("journal")?;
                continue;
            }
        };
        journal
            .append(&mut event)
            .context("appending to the journal")?;
        write_event(&mut out, format, &event).context("writing events to stdout")?;
        if events.is_empty() {
            out.flush().context("writing events to stdout")?;
            journal.tick().context("journal")?;
        }
    }
    out.flush().context("writing events to stdout")?;
    journal.close().context("sealing the journal")?;
    Ok(())
}

fn agent_event(body: EventBody) -> Event {
    let mono_ns = crate::capture::monotonic_ns();
    Event {
        seq: 0,
        time: WallTime::now(),
        mono_ns,
        process: crate::capture::agent_process(),
        event: body,
    }
}
