//! `auditloop run`: start capture, print events until SIGINT/SIGTERM, shut down cleanly.

use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use auditloop_journal::RetentionFloor;
use auditloop_model::{
    ConfigLoaded, Event, EventBody, LossStage, RulesLoaded, RulesRejected, Tamper,
};

use crate::actions::ActionStage;
use crate::capture::{Capture, Settings};
use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::config::Config;
use crate::enforce::{self, Decisions, ExecGuard};
use crate::holdctl::{self, HoldCommand};
use crate::hygiene::{self, Kind};
use crate::journal::JournalStage;
use crate::loss::LossCounter;
use crate::protect::{Protected, SelfProtect};
use crate::ship::{self, ShipSettings};
use crate::status::StatusWriter;
use crate::stdout::StdoutStage;
use crate::telemetry::Telemetry;

/// Events buffered between capture and output; when full, capture waits (and the kernel counts losses).
const EVENT_QUEUE: usize = 16 * 1024;

/// How long a stopping agent keeps shipping what is left in the journal.
const SHIP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The shipping settings, when a collector is configured.
fn ship_settings(config: &Config) -> anyhow::Result<Option<ShipSettings>> {
    let ship = &config.ship;
    let collectors = ship.collectors();
    if collectors.is_empty() {
        return Ok(None);
    }
    let Some(token_file) = &ship.token_file else {
        bail!(
            "shipping to {} needs a token: pass --token-file FILE or set ship.token_file",
            collectors.join(", ")
        );
    };
    let host_id = match &ship.host_id {
        Some(id) => id.clone(),
        None => ship::default_host_id()?,
    };
    Ok(Some(ShipSettings {
        collectors: collectors.to_vec(),
        token_file: token_file.clone(),
        host_id,
        ca_file: ship.ca_file.clone(),
        client_cert: ship.client_cert.clone(),
        batch_max_bytes: ship.batch_max_bytes,
        batch_max_wait: std::time::Duration::from_millis(ship.batch_max_ms),
        timeout: std::time::Duration::from_secs(ship.timeout_secs),
        insecure_http: ship.insecure_http,
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
    if !args.no_strict_modes {
        hygiene::check(&args.config, "config file", Kind::Trusted)?;
    }
    let mut config = Config::load(&args.config)?;
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    if let Some(rules) = &args.rules {
        config.rules = rules.clone();
    }
    if !args.collector.is_empty() {
        config.ship.collector = Some(args.collector.clone());
    }
    if let Some(file) = &args.token_file {
        config.ship.token_file = Some(file.clone());
    }
    if let Some(id) = &args.host_id {
        config.ship.host_id = Some(id.clone());
    }
    config.ship.check(&args.config)?;
    if !args.no_strict_modes {
        strict_modes(&config)?;
    }
    // The agent's own config is always watched.
    config.watch.paths.push(args.config.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config))
}

/// Refuses what someone other than root could have changed: rules, token, TLS files, the state directory.
fn strict_modes(config: &Config) -> Result<(), hygiene::HygieneError> {
    hygiene::check_dir_files(&config.rules, "rules")?;
    hygiene::check(&config.state_dir, "state directory", Kind::Trusted)?;
    if let Some(token) = &config.ship.token_file {
        hygiene::check(token, "token file", Kind::Secret)?;
    }
    if let Some(ca) = &config.ship.ca_file {
        hygiene::check(ca, "CA file", Kind::Trusted)?;
    }
    if let Some(cert) = &config.ship.client_cert {
        hygiene::check(cert, "client certificate and key", Kind::Secret)?;
    }
    Ok(())
}

/// Starts the exec guard when rules need it; without fanotify, says once what that costs.
fn start_guard(rules: &[enforce::GuardRule], decisions: &Decisions) -> Option<ExecGuard> {
    if rules.is_empty() {
        return None;
    }
    match ExecGuard::start(rules.to_vec(), decisions.clone()) {
        Ok(guard) => {
            tracing::info!(rules = rules.len(), "exec guard started (fanotify)");
            Some(guard)
        }
        Err(err) => {
            tracing::warn!(
                error = %ship::error_chain(&err),
                "exec guard unavailable: kill and deny rules on execs are enforced only for canonical \
                 filenames in the kernel, other spellings are killed after the exec"
            );
            None
        }
    }
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
    let features = crate::capture::features::Features::probe();
    let tier = features
        .tier(config.capture.mode)
        .map_err(|why| anyhow::anyhow!("{}: {why}", args.config.display()))?;
    tracing::info!(
        kernel = %features.kernel,
        tier = tier.as_str(),
        features = %features.summary(),
        "enforcement tier chosen"
    );
    let loaded = enforce::load(&config.rules, tier)?;
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
    let telemetry = Telemetry::default();
    let unclean = StatusWriter::unclean_previous(&config.state_dir);
    let (mut journal, recovered) = JournalStage::open(
        &config.journal,
        &config.state_dir,
        acked.clone(),
        clock.clone(),
    )
    .context("opening the journal")?;
    journal.set_telemetry(telemetry.clone());
    if let Some(addr) = config.metrics.listen {
        crate::metrics::start(addr)?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the metrics endpoint is unauthenticated and not on loopback");
        }
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    let (ship_stop_tx, ship_stop_rx) = watch::channel(None);
    // Holds: decisions from the local socket and the collector go to the journal task, which owns them.
    let (hold_tx, hold_rx) = mpsc::channel::<HoldCommand>(64);
    let (waiting_tx, waiting_rx) = watch::channel(Vec::new());
    let hold_link = ship::verdicts::HoldLink {
        flush_until_ms: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        waiting: waiting_rx,
        commands: hold_tx.clone(),
    };
    let shipper = match (ship_settings, cursor, &acked) {
        (Some(settings), Some(cursor), Some(acked)) => {
            tracing::info!(collector = %settings.collectors.join(", "), host_id = %settings.host_id, "shipping the journal");
            Some(ship::spawn(
                settings,
                crate::journal::options(&config.journal, &config.state_dir).dir,
                cursor,
                acked.clone(),
                ship_stop_rx,
                telemetry.clone(),
                Some(hold_link.clone()),
            )?)
        }
        _ => None,
    };
    let decisions = Decisions::default();
    let mut capture = Capture::start(
        &config,
        &loaded,
        &features,
        clock.clone(),
        decisions.clone(),
    )
    .context("starting kernel capture")?;
    // Files staged by drill overlays: added and removed by the journal task, watched by capture.
    let staged_paths = crate::watch::StagedPaths::default();
    capture.set_staged_paths(staged_paths.clone());
    let own = capture.own_objects();
    capture.set_telemetry(telemetry.clone());
    let mut guard = start_guard(&loaded.guard, &decisions);
    telemetry.set_exec_guard(guard.is_some());
    let mut status = StatusWriter::new(
        &config.state_dir,
        &args.config,
        config.metrics.listen.map(|a| a.to_string()),
    );
    tracing::info!(
        ring_buffer_bytes = config.capture.ring_buffer_bytes,
        state_dir = %config.state_dir.display(),
        "capture started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let control = match holdctl::bind(&config.state_dir) {
        Ok(listener) => Some(tokio::spawn(holdctl::serve(
            listener,
            hold_tx.clone(),
            stop_rx.clone(),
        ))),
        Err(err) => {
            tracing::warn!(
                error = %ship::error_chain(&err),
                "`auditloop holds` cannot reach this agent: holds end by timeout or the collector's verdict"
            );
            None
        }
    };
    drop(hold_tx);
    let (reload_tx, reload_rx) = watch::channel(Settings {
        capture: config.capture.clone(),
        exec_kill: loaded.kernel.clone(),
        deny: (loaded.deny.clone(), loaded.deny_names.clone()),
        acting: loaded.acting.clone(),
    });
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (agent_tx, agent_rx) = mpsc::channel(64);
    let startup: Vec<EventBody> = recovered
        .into_iter()
        .chain(unclean.map(unclean_stop))
        .chain([
            config_loaded(&args.config, "start"),
            rules_loaded(&config.rules, &loaded, "start"),
        ])
        .collect();
    for body in startup {
        agent_tx
            .send(Control::Event(Box::new(body)))
            .await
            .context("queueing a startup event")?;
    }
    let mut actions = ActionStage::new(
        loaded.rules,
        loaded.kernel_names,
        &config.state_dir.join("content"),
    )
    .with_staged_paths(staged_paths);
    let mut webhook = None;
    if let Some(url) = &config.alerts.webhook {
        let hook = crate::actions::webhook::Webhook::new(url, std::time::Duration::from_secs(5))?;
        actions = actions.with_webhook(hook.clone());
        status.with_webhook(hook.deliveries());
        webhook = Some(hook);
    }
    let stdout = StdoutStage::start(args.output).context("starting the stdout stage")?;
    let mut capture_task = tokio::spawn(capture.run(event_tx, stop_rx, reload_rx));
    let mut consumer = tokio::spawn(consume(
        journal,
        Sinks {
            actions,
            stdout,
            webhook,
            webhook_lost: LossCounter::new(LossStage::Webhook, "alert"),
            protect: SelfProtect::new(&protected(&args.config, &config), own),
        },
        clock,
        event_rx,
        agent_rx,
        Holds {
            commands: hold_rx,
            waiting: waiting_tx,
            link: hold_link,
        },
    ));
    let mut capture_done = None;
    let mut consumer_done = None;
    let mut health = tokio::time::interval(STAGE_CHECK);

    // Runs until a signal says stop, or a stage ends on its own (a failure: named, and the exit is not 0).
    let failed: Option<String> = loop {
        tokio::select! {
            _ = sigint.recv() => {
                tracing::info!("SIGINT received, shutting down");
                break None;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM received, shutting down");
                break None;
            }
            done = &mut capture_task, if capture_done.is_none() => {
                let why = stage_end(&done, |e| ship::error_chain(e));
                capture_done = Some(done);
                break Some(format!("the capture stage stopped: {why}"));
            }
            done = &mut consumer, if consumer_done.is_none() => {
                let why = stage_end(&done, |e| format!("{e:#}"));
                consumer_done = Some(done);
                break Some(format!("the journal stage stopped: {why}"));
            }
            _ = health.tick() => {
                let snapshot = telemetry.snapshot();
                if config.metrics.listen.is_some() {
                    crate::metrics::publish(&snapshot);
                }
                if let Err(err) = status.write(snapshot, false) {
                    tracing::warn!("writing the status file: {err}");
                }
                if shipper.as_ref().is_some_and(ship::ShipperHandle::is_finished) {
                    break Some("the ship stage stopped: its thread ended".into());
                }
                if guard.as_ref().is_some_and(ExecGuard::is_finished) {
                    break Some("the exec guard stage stopped: its thread ended".into());
                }
            }
            _ = sighup.recv() => {
                if !args.no_strict_modes {
                    let checked = hygiene::check(&args.config, "config file", Kind::Trusted)
                        .and_then(|()| hygiene::check_dir_files(&config.rules, "rules"));
                    if let Err(err) = checked {
                        tracing::error!("SIGHUP: keeping the running config and rules: {err}");
                        continue;
                    }
                }
                let capture = match Config::load(&args.config) {
                    Ok(new) => {
                        tracing::info!(config = %args.config.display(), "SIGHUP: config reloaded");
                        let _ = agent_tx.send(Control::Event(Box::new(config_loaded(&args.config, "sighup")))).await;
                        new.capture
                    }
                    Err(err) => {
                        tracing::error!("SIGHUP: keeping the running config: {err}");
                        reload_tx.borrow().capture.clone()
                    }
                };
                match enforce::load(&config.rules, tier) {
                    Ok(new) => {
                        tracing::info!(rules = %config.rules.display(), "SIGHUP: rules reloaded");
                        let _ = agent_tx.send(Control::Event(Box::new(rules_loaded(&config.rules, &new, "reload")))).await;
                        reload_tx.send_replace(Settings { capture, exec_kill: new.kernel.clone(), deny: (new.deny.clone(), new.deny_names.clone()), acting: new.acting.clone() });
                        match &guard {
                            Some(running) => running.replace(new.guard.clone()),
                            None => guard = start_guard(&new.guard, &decisions),
                        }
                        telemetry.set_exec_guard(guard.is_some());
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
                        let _ = agent_tx.send(Control::Event(Box::new(body))).await;
                    }
                }
            }
        }
    };
    if let Some(why) = &failed {
        tracing::error!("{why}; stopping the agent");
    }
    stop_tx.send_replace(true);
    drop(agent_tx);
    if let Some(control) = control {
        let _ = control.await;
    }
    let _ = std::fs::remove_file(holdctl::socket_path(&config.state_dir));
    let captured = match capture_done {
        Some(done) => done,
        None => capture_task.await,
    };
    let consumed = match consumer_done {
        Some(done) => done,
        None => consumer.await,
    };
    // The journal is sealed: the shipper sends what is left (briefly) while the programs detach.
    ship_stop_tx.send_replace(Some(std::time::Instant::now() + SHIP_DRAIN));
    if let Some(guard) = guard {
        tokio::task::spawn_blocking(move || guard.stop())
            .await
            .context("stopping the exec guard")?;
    }
    let stats = match captured {
        Ok(Ok((stats, detacher))) => {
            tokio::task::spawn_blocking(move || detacher.detach())
                .await
                .context("detaching programs")?;
            Some(stats)
        }
        Ok(Err(_)) | Err(_) => None,
    };
    if let Some(shipper) = shipper {
        let shipped = tokio::task::spawn_blocking(move || shipper.join())
            .await
            .context("joining the shipper")?;
        if let (Err(err), None) = (shipped, &failed) {
            return Err(anyhow::Error::new(err).context("the ship stage stopped"));
        }
    }
    if let Some(why) = failed {
        bail!("{why}");
    }
    consumed
        .context("the journal stage panicked")?
        .context("the journal stage stopped")?;
    if let Err(err) = status.write(telemetry.snapshot(), true) {
        tracing::warn!("writing the status file: {err}");
    }
    if let Some(stats) = stats {
        tracing::info!(
            records = stats.records,
            events = stats.events,
            kernel_lost = stats.kernel_lost,
            decode_errors = stats.decode_errors,
            "stopped"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How often the stages running in threads are checked for an unexpected end.
const STAGE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a stage's task ended: its error, its panic, or that it ended without either.
fn stage_end<T, E>(
    done: &Result<Result<T, E>, tokio::task::JoinError>,
    describe: impl Fn(&E) -> String,
) -> String {
    match done {
        Ok(Ok(_)) => "it ended".into(),
        Ok(Err(err)) => describe(err),
        Err(err) => format!("it panicked: {err}"),
    }
}

/// What the signal loop sends the journal/action task besides captured events.
enum Control {
    /// An agent event to journal.
    Event(Box<EventBody>),
    /// A new rule set to use from now on.
    Rules(Box<enforce::LoadedRules>),
}

fn rules_loaded(path: &std::path::Path, loaded: &enforce::LoadedRules, reason: &str) -> EventBody {
    EventBody::RulesLoaded(RulesLoaded {
        path: path.display().to_string(),
        rules: u32::try_from(loaded.rules.rules().len()).unwrap_or(u32::MAX),
        kernel_rules: u32::try_from(loaded.kernel_names.len()).unwrap_or(u32::MAX),
        reason: reason.into(),
        names: loaded
            .rules
            .rules()
            .iter()
            .map(|r| r.name().to_owned())
            .collect(),
    })
}

/// Where a journaled event goes next: self-protection, the rules and their actions, stdout, and the
/// webhook's loss count.
struct Sinks {
    actions: ActionStage,
    stdout: StdoutStage,
    webhook: Option<crate::actions::webhook::Webhook>,
    webhook_lost: LossCounter,
    protect: SelfProtect,
}

/// The agent's files: its config, its rules, its state directory (journal, keys, cursor, content store)
/// and the shipping token and certificates.
fn protected(config_path: &std::path::Path, config: &Config) -> Protected {
    let mut p = Protected {
        files: vec![config_path.to_owned()],
        dirs: vec![config.state_dir.clone()],
    };
    if config.rules.is_dir() {
        p.dirs.push(config.rules.clone());
    } else {
        p.files.push(config.rules.clone());
    }
    let ship = &config.ship;
    p.files.extend(
        [&ship.token_file, &ship.ca_file, &ship.client_cert]
            .into_iter()
            .flatten()
            .cloned(),
    );
    p
}

/// The `tamper` body for a previous run whose status file still said `running`.
fn unclean_stop(previous: crate::status::Report) -> EventBody {
    EventBody::Tamper(Tamper {
        what: "unclean_stop".into(),
        target: format!("pid {}", previous.pid),
        detail: format!(
            "the previous run (pid {}, version {}) ended without a clean stop; it was last seen {}",
            previous.pid,
            previous.version,
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(previous.updated_ms)
            )
        ),
        trigger_seq: 0,
    })
}

/// Appends every event to the journal (which numbers it), then hands it to the rules and stdout. Agent
/// events (config loaded, journal recovered) are journaled as they come; losses other stages count (stdout,
/// webhook) are journaled once a second while they last. Returns when capture's channel closes, after
/// sealing the journal; returns an error only when the journal must halt (`journal.on_error: halt`).
async fn consume(
    mut journal: JournalStage,
    mut sinks: Sinks,
    clock: Clock,
    mut events: mpsc::Receiver<Event>,
    mut agent: mpsc::Receiver<Control>,
    mut holds: Holds,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let mut agent_open = true;
    let mut holds_open = true;
    // Hold timeouts are checked on the idle tick and, under a steady flow of events (when the tick
    // would not run), at least this often.
    let mut expired_at = std::time::Instant::now();
    let result = loop {
        let mut event = tokio::select! {
            biased;
            command = holds.commands.recv(), if holds_open => {
                match command {
                    Some(command) => {
                        if let Err(err) = hold_command(&mut journal, &mut sinks, &clock, &holds, command) {
                            break Err(err);
                        }
                    }
                    None => holds_open = false,
                }
                continue;
            }
            control = agent.recv(), if agent_open => match control {
                Some(Control::Event(body)) => clock.agent_event(*body),
                Some(Control::Rules(loaded)) => {
                    let loaded = *loaded;
                    sinks.actions.replace(loaded.rules, loaded.kernel_names);
                    continue;
                }
                None => {
                    agent_open = false;
                    continue;
                }
            },
            event = events.recv() => match event {
                Some(event) => event,
                None => break Ok(()),
            },
            _ = tick.tick() => {
                expired_at = std::time::Instant::now();
                let expired = sinks.actions.expire_holds();
                if let Err(err) = journal_holds(&mut journal, &mut sinks, &clock, &holds, expired) {
                    break Err(err);
                }
                let ended = sinks.actions.expire_overlays();
                if let Err(err) = ended
                    .into_iter()
                    .try_for_each(|body| journal_agent(&mut journal, &mut sinks, &clock, body))
                {
                    break Err(err);
                }
                if let Err(err) = idle(&mut journal, &mut sinks) {
                    break Err(err);
                }
                continue;
            }
        };
        if let Err(err) = handle(&mut journal, &mut sinks, &clock, &mut event) {
            break Err(err);
        }
        if sinks.actions.take_hold_requested() {
            holds.changed(&sinks.actions);
        }
        if expired_at.elapsed() >= HOLD_CHECK {
            expired_at = std::time::Instant::now();
            let expired = sinks.actions.expire_holds();
            if let Err(err) = journal_holds(&mut journal, &mut sinks, &clock, &holds, expired) {
                break Err(err);
            }
        }
        for reported in journal.take_reported() {
            sinks.stdout.print(&reported);
        }
        if events.is_empty()
            && let Err(err) = idle(&mut journal, &mut sinks)
        {
            break Err(err);
        }
    };
    // A held process must not outlive the agent that would decide it: the defaults apply now.
    let left = sinks.actions.shutdown_holds();
    let _ = journal_holds(&mut journal, &mut sinks, &clock, &holds, left);
    // Seal the journal with what stdout could not print, also after a halt (into the journal's reserve).
    if let Some(loss) = sinks.stdout.finish() {
        let _ = journal.record_loss(loss);
    }
    if let Some(hook) = &sinks.webhook {
        sinks.webhook_lost.count(hook.take_dropped());
    }
    if let Some(loss) = sinks.webhook_lost.take() {
        let _ = journal.record_loss(loss);
    }
    let sealed = journal.close();
    result.context("journal.on_error is halt")?;
    sealed.context("sealing the journal")?;
    Ok(())
}

/// Longest time between two checks of hold timeouts while events keep arriving.
const HOLD_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// The journal task's side of holds: decisions to apply, and what it tells the shipper.
struct Holds {
    commands: mpsc::Receiver<HoldCommand>,
    waiting: watch::Sender<Vec<u64>>,
    link: ship::verdicts::HoldLink,
}

impl Holds {
    /// Publishes the waiting holds (the verdict puller follows them) and asks the shipper to send the new
    /// `hold` events at once.
    fn changed(&self, actions: &ActionStage) {
        self.waiting.send_replace(actions.hold_ids());
        self.link.flush_soon();
    }
}

/// Journals hold outcomes (no rules run on them).
fn journal_holds(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
    clock: &Clock,
    holds: &Holds,
    bodies: Vec<EventBody>,
) -> Result<(), auditloop_journal::JournalError> {
    if bodies.is_empty() {
        return Ok(());
    }
    for body in bodies {
        let mut event = clock.agent_event(body);
        if journal.append(&mut event)? {
            sinks.stdout.print(&event);
        }
    }
    holds.changed(&sinks.actions);
    Ok(())
}

/// Carries out one hold command: a list, or a decision (journaled, its outcome sent back).
fn hold_command(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
    clock: &Clock,
    holds: &Holds,
    command: HoldCommand,
) -> Result<(), auditloop_journal::JournalError> {
    match command {
        HoldCommand::List { reply } => {
            let _ = reply.send(sinks.actions.list_holds());
            Ok(())
        }
        HoldCommand::StageOverlay { request, reply } => {
            let staged = sinks.actions.stage_overlay(&request);
            let answer = match staged {
                Ok((staged, body)) => {
                    tracing::info!(file = %request.file.display(), rules = ?staged.rules, "drill overlay staged");
                    journal_agent(journal, sinks, clock, body)?;
                    Ok(staged)
                }
                Err(err) => {
                    tracing::warn!(file = %request.file.display(), "drill overlay: {err}");
                    Err(err.to_string())
                }
            };
            let _ = reply.send(answer);
            Ok(())
        }
        HoldCommand::RemoveOverlay { id, reply } => {
            let answer = match sinks.actions.remove_overlay(id) {
                Ok(body) => {
                    journal_agent(journal, sinks, clock, body)?;
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            };
            let _ = reply.send(answer);
            Ok(())
        }
        HoldCommand::Decide {
            id,
            decision,
            by,
            comment,
            reply,
        } => match sinks.actions.decide_hold(id, decision, &by, &comment) {
            Ok(outcome) => {
                journal_holds(
                    journal,
                    sinks,
                    clock,
                    holds,
                    vec![EventBody::Hold(outcome.clone())],
                )?;
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(outcome));
                }
                Ok(())
            }
            Err(err) => {
                if reply.is_none() {
                    tracing::info!(id, by = %by, "verdict ignored: {err}");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(err.to_string()));
                }
                Ok(())
            }
        },
    }
}

/// Journals an agent record (no rules run on it) and prints it.
fn journal_agent(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
    clock: &Clock,
    body: EventBody,
) -> Result<(), auditloop_journal::JournalError> {
    let mut event = clock.agent_event(body);
    if journal.append(&mut event)? {
        sinks.stdout.print(&event);
    }
    Ok(())
}

/// Journals `event`, prints it, and runs the rules on it; their alerts and actions follow it.
fn handle(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
    clock: &Clock,
    event: &mut Event,
) -> Result<(), auditloop_journal::JournalError> {
    // Rules see the event only once it is journaled; an event that could not be journaled is counted.
    if !journal.append(event)? {
        return Ok(());
    }
    sinks.stdout.print(event);
    if let Some(tamper) = sinks.protect.check(event) {
        tracing::warn!(
            what = %tamper.what,
            target = %tamper.target,
            pid = event.process.pid,
            exe = %event.process.exe,
            "tamper: {}",
            tamper.detail
        );
        let mut follow = Event {
            seq: 0,
            time: event.time,
            mono_ns: event.mono_ns,
            process: event.process.clone(),
            event: EventBody::Tamper(tamper),
        };
        if journal.append(&mut follow)? {
            sinks.stdout.print(&follow);
            run_rules(journal, sinks, clock, &follow)?;
        }
    }
    run_rules(journal, sinks, clock, event)
}

/// Runs the rules on a journaled `event`; their alerts and actions are journaled after it.
fn run_rules(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
    clock: &Clock,
    event: &Event,
) -> Result<(), auditloop_journal::JournalError> {
    for body in sinks.actions.on_event(event) {
        let mut follow = clock.agent_event(body);
        if journal.append(&mut follow)? {
            sinks.stdout.print(&follow);
        }
    }
    Ok(())
}

/// What runs when no event is waiting: stdout's batch is handed over, counted losses are journaled, and
/// the journal commits, checkpoints and retries.
fn idle(
    journal: &mut JournalStage,
    sinks: &mut Sinks,
) -> Result<(), auditloop_journal::JournalError> {
    sinks.stdout.flush();
    if let Some(loss) = sinks.stdout.take_loss() {
        tracing::warn!(
            dropped = loss.count,
            total = loss.total,
            "stdout is behind: printed copies were dropped (the events are journaled)"
        );
        journal.record_loss(loss)?;
    }
    if let Some(hook) = &sinks.webhook {
        sinks.webhook_lost.count(hook.take_dropped());
    }
    if let Some(loss) = sinks.webhook_lost.take_due() {
        tracing::warn!(
            dropped = loss.count,
            total = loss.total,
            "the webhook is behind: alert deliveries were dropped (the alerts are journaled)"
        );
        journal.record_loss(loss)?;
    }
    let ticked = journal.tick();
    for reported in journal.take_reported() {
        sinks.stdout.print(&reported);
    }
    ticked
}
