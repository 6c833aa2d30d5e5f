//! `auditloop run`: start capture, print events until SIGINT/SIGTERM, shut down cleanly.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use auditloop_journal::RetentionFloor;
use auditloop_model::{ConfigLoaded, Event, EventBody, RulesLoaded, RulesRejected};

use crate::actions::ActionStage;
use crate::capture::{Capture, Settings};
use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::config::Config;
use crate::enforce;
use crate::journal::JournalStage;
use crate::output::write_event;
use crate::ship::{self, ShipSettings};

/// Events buffered between capture and output; when full, capture waits (and the kernel counts losses).
const EVENT_QUEUE: usize = 16 * 1024;

/// How long a stopping agent keeps shipping what is left in the journal.
const SHIP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The shipping settings, when a collector is configured.
fn ship_settings(config: &Config) -> anyhow::Result<Option<ShipSettings>> {
    let ship = &config.ship;
    let Some(collector) = &ship.collector else {
        return Ok(None);
    };
    let Some(token_file) = &ship.token_file else {
        bail!(
            "shipping to {collector} needs a token: pass --token-file FILE or set ship.token_file"
        );
    };
    let host_id = match &ship.host_id {
        Some(id) => id.clone(),
        None => ship::default_host_id()?,
    };
    Ok(Some(ShipSettings {
        collector: collector.clone(),
        token_file: token_file.clone(),
        host_id,
        ca_file: ship.ca_file.clone(),
        client_cert: ship.client_cert.clone(),
        batch_max_bytes: ship.batch_max_bytes,
        batch_max_wait: std::time::Duration::from_millis(ship.batch_max_ms),
        timeout: std::time::Duration::from_secs(ship.timeout_secs),
    }))
}

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
    if let Some(rules) = &args.rules {
        config.rules = rules.clone();
    }
    if let Some(url) = &args.collector {
        config.ship.collector = Some(url.clone());
    }
    if let Some(file) = &args.token_file {
        config.ship.token_file = Some(file.clone());
    }
    if let Some(id) = &args.host_id {
        config.ship.host_id = Some(id.clone());
    }
    config.ship.check(&args.config)?;
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
    let loaded = enforce::load(&config.rules)?;
    let ship_settings = ship_settings(&config)?;
    // The retention floor must hold from the first append: start from the persisted cursor.
    let cursor = match &ship_settings {
        Some(_) => Some(ship::cursor::AckCursor::load(&config.state_dir)?),
        None => None,
    };
    let acked = cursor
        .as_ref()
        .map(|c| RetentionFloor::acknowledged_up_to(c.acked()));
    let clock = Clock::measure();
    let (journal, recovered) = JournalStage::open(
        &config.journal,
        &config.state_dir,
        acked.clone(),
        clock.clone(),
    )
    .context("opening the journal")?;
    let (ship_stop_tx, ship_stop_rx) = watch::channel(None);
    let shipper = match (ship_settings, cursor, &acked) {
        (Some(settings), Some(cursor), Some(acked)) => {
            tracing::info!(collector = %settings.collector, host_id = %settings.host_id, "shipping the journal");
            Some(ship::spawn(
                settings,
                crate::journal::options(&config.journal, &config.state_dir).dir,
                cursor,
                acked.clone(),
                ship_stop_rx,
            )?)
        }
        _ => None,
    };
    let capture = Capture::start(&config, &loaded.kernel, clock.clone())
        .context("starting kernel capture")?;
    tracing::info!(
        ring_buffer_bytes = config.capture.ring_buffer_bytes,
        state_dir = %config.state_dir.display(),
        "capture started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel(Settings {
        capture: config.capture.clone(),
        exec_kill: loaded.kernel.clone(),
    });
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (agent_tx, agent_rx) = mpsc::channel(64);
    let startup: Vec<EventBody> = recovered
        .into_iter()
        .chain([
            config_loaded(&args.config, "start"),
            rules_loaded(&config.rules, &loaded, "start"),
        ])
        .collect();
    for body in startup {
        agent_tx
            .send(Control::Event(body))
            .await
            .context("queueing a startup event")?;
    }
    let mut actions = ActionStage::new(
        loaded.rules,
        loaded.kernel_names,
        &config.state_dir.join("content"),
    );
    if let Some(url) = &config.alerts.webhook {
        let hook = crate::actions::webhook::Webhook::new(url, std::time::Duration::from_secs(5))?;
        actions = actions.with_webhook(hook);
    }
    let capture_task = tokio::spawn(capture.run(event_tx, stop_rx, reload_rx));
    let consumer = tokio::spawn(consume(
        journal,
        actions,
        clock,
        event_rx,
        agent_rx,
        args.output,
    ));

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
            _ = sighup.recv() => {
                let capture = match Config::load(&args.config) {
                    Ok(new) => {
                        tracing::info!(config = %args.config.display(), "SIGHUP: config reloaded");
                        let _ = agent_tx.send(Control::Event(config_loaded(&args.config, "sighup"))).await;
                        new.capture
                    }
                    Err(err) => {
                        tracing::error!("SIGHUP: keeping the running config: {err}");
                        reload_tx.borrow().capture.clone()
                    }
                };
                match enforce::load(&config.rules) {
                    Ok(new) => {
                        tracing::info!(rules = %config.rules.display(), "SIGHUP: rules reloaded");
                        let _ = agent_tx.send(Control::Event(rules_loaded(&config.rules, &new, "reload"))).await;
                        reload_tx.send_replace(Settings { capture, exec_kill: new.kernel.clone() });
                        let _ = agent_tx.send(Control::Rules(Box::new(new))).await;
                    }
                    Err(errors) => {
                        tracing::error!("SIGHUP: keeping the running rules: {errors}");
                        let mut settings = reload_tx.borrow().clone();
                        settings.capture = capture;
                        reload_tx.send_replace(settings);
                        let body = EventBody::RulesRejected(RulesRejected {
                            path: config.rules.display().to_string(),
                            errors: errors.to_string(),
                        });
                        let _ = agent_tx.send(Control::Event(body)).await;
                    }
                }
            }
        }
    }
    stop_tx.send_replace(true);
    drop(agent_tx);
    let (stats, detacher) = capture_task
        .await
        .context("capture task panicked")?
        .context("capture failed")?;
    consumer.await.context("journal/output task panicked")??;
    // The journal is sealed: the shipper sends what is left (briefly) while the programs detach.
    ship_stop_tx.send_replace(Some(std::time::Instant::now() + SHIP_DRAIN));
    let detach = tokio::task::spawn_blocking(move || detacher.detach());
    if let Some(shipper) = shipper {
        tokio::task::spawn_blocking(move || shipper.join())
            .await
            .context("joining the shipper")?
            .context("shipping")?;
    }
    detach.await.context("detaching programs")?;
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
/// What the signal loop sends the journal/action task besides captured events.
enum Control {
    /// An agent event to journal.
    Event(EventBody),
    /// A new rule set to use from now on.
    Rules(Box<enforce::LoadedRules>),
}

fn rules_loaded(path: &std::path::Path, loaded: &enforce::LoadedRules, reason: &str) -> EventBody {
    EventBody::RulesLoaded(RulesLoaded {
        path: path.display().to_string(),
        rules: u32::try_from(loaded.rules.rules().len()).unwrap_or(u32::MAX),
        kernel_rules: u32::try_from(loaded.kernel_names.len()).unwrap_or(u32::MAX),
        reason: reason.into(),
    })
}

async fn consume(
    mut journal: JournalStage,
    mut actions: ActionStage,
    clock: Clock,
    mut events: mpsc::Receiver<Event>,
    mut agent: mpsc::Receiver<Control>,
    format: crate::output::Format,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let mut agent_open = true;
    loop {
        let mut event = tokio::select! {
            biased;
            control = agent.recv(), if agent_open => match control {
                Some(Control::Event(body)) => clock.agent_event(body),
                Some(Control::Rules(loaded)) => {
                    let loaded = *loaded;
                    actions.replace(loaded.rules, loaded.kernel_names);
                    continue;
                }
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
        // Rules see the event only once it is journaled; their alerts and actions are journaled too.
        for body in actions.on_event(&event) {
            let mut follow = clock.agent_event(body);
            journal
                .append(&mut follow)
                .context("appending to the journal")?;
            write_event(&mut out, format, &follow).context("writing events to stdout")?;
        }
        if events.is_empty() {
            out.flush().context("writing events to stdout")?;
            journal.tick().context("journal")?;
        }
    }
    out.flush().context("writing events to stdout")?;
    journal.close().context("sealing the journal")?;
    Ok(())
}
