//! Ship stage: forwards the journal to the collector (one URL, or the replicas of one collector over a
//! shared database: see [`failover`]).
//!
//! The journal is the spool: the shipper follows the journal files from the persisted [`AckCursor`], cuts
//! batches of durable records (at most `batch_max_bytes`, or whatever arrived within `batch_max_ms`),
//! compresses them with zstd and POSTs them. The cursor moves only on a 200 (or to the collector's expected
//! sequence number on a 409), and the journal never deletes records above it. Network errors, 429 and 5xx
//! move to the next collector URL at once; once every URL failed in a row they are retried with full-jitter
//! exponential backoff capped at 30 s (honouring `Retry-After`); 413 halves the batch; 400/401/403/422 are
//! logged and not retried until the token file changes. The shipper runs on its own thread so compression
//! and HTTP never slow the event path, and it never drops or rewrites a record.
//! While holds wait, the same thread pulls the collector's verdicts on them ([`verdicts`]), and a new
//! hold is shipped at once rather than at the end of the batch interval.

mod ack;
pub mod backoff;
pub mod client;
pub mod cursor;
mod error;
pub mod failover;
pub mod transport;
pub mod verdicts;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop_journal::ladder::KeyLadder;
use auditloop_journal::tail::{Tail, retained_start};
use auditloop_journal::{JournalError, RetentionFloor};
use auditloop_protocol::batch::{Batch, BatchAnchor};
use tokio::sync::watch;

pub use ack::check_ack;
pub use error::ShipError;

use backoff::Backoff;
use client::{ClientTls, CollectorClient, Outcome};
use cursor::AckCursor;
use failover::{Collectors, Failover};

/// Largest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// First retry delay ceiling.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// How often the journal's head is polled while idle.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How often a rejected shipper looks for a new token.
const REJECTED_POLL: Duration = Duration::from_secs(2);
/// zstd level for batches (fast; event records compress well even at low levels).
const ZSTD_LEVEL: i32 = 1;

/// Where and how to ship.
#[derive(Clone, Debug)]
pub struct ShipSettings {
    /// Collector base URLs, in order of preference (at least one): replicas of one collector, any of which
    /// takes any batch.
    pub collectors: Vec<String>,
    /// File holding the bearer token.
    pub token_file: PathBuf,
    /// This host's id in the collector.
    pub host_id: String,
    /// Extra CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Largest batch (uncompressed frames), bytes.
    pub batch_max_bytes: usize,
    /// Longest a durable record waits for its batch to fill.
    pub batch_max_wait: Duration,
    /// HTTP request timeout.
    pub timeout: Duration,
    /// Allow plain HTTP to a collector that is not on loopback.
    pub insecure_http: bool,
}

/// How the shipper is told to stop: `None` while running; `Some(deadline)` to ship what is durable until
/// caught up or the deadline passes, then return.
pub type StopSignal = watch::Receiver<Option<Instant>>;

/// The running shipper's handle.
pub struct ShipperHandle {
    thread: std::thread::JoinHandle<Result<(), ShipError>>,
}

impl ShipperHandle {
    /// Whether the shipper thread has ended (before a stop, only by a panic or a start failure).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the shipper thread to finish.
    pub fn join(self) -> Result<(), ShipError> {
        self.thread.join().map_err(|_| ShipError::Panicked)?
    }
}

/// Reads a token file: the first line, trimmed; empty is an error naming the file.
pub fn read_token(path: &Path) -> Result<String, ShipError> {
    let text = std::fs::read_to_string(path).map_err(|source| ShipError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(ShipError::EmptyToken(path.to_owned()));
    }
    Ok(token)
}

/// This host's default id: `/etc/machine-id`.
pub fn default_host_id() -> Result<String, ShipError> {
    let id = std::fs::read_to_string("/etc/machine-id").map_err(ShipError::MachineId)?;
    Ok(id.trim().to_owned())
}

/// Checks a host id is usable in the collector's URL path.
pub fn check_host_id(id: &str) -> Result<(), ShipError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(ShipError::BadHostId(id.to_owned()));
    }
    Ok(())
}

/// Starts shipping `journal_dir` from `cursor`. `acked` is moved to the acknowledged sequence number (the
/// journal's retention follows it).
pub fn spawn(
    settings: ShipSettings,
    journal_dir: PathBuf,
    cursor: AckCursor,
    acked: RetentionFloor,
    stop: StopSignal,
    telemetry: crate::telemetry::Telemetry,
    holds: Option<verdicts::HoldLink>,
) -> Result<ShipperHandle, ShipError> {
    check_host_id(&settings.host_id)?;
    if settings.collectors.is_empty() {
        return Err(ShipError::NoCollector);
    }
    let token = read_token(&settings.token_file)?;
    let tls = ClientTls {
        ca_file: settings.ca_file.as_deref(),
        client_cert: settings.client_cert.as_deref(),
        insecure_http: settings.insecure_http,
    };
    let clients = settings
        .collectors
        .iter()
        .map(|url| {
            CollectorClient::new(
                url,
                &settings.host_id,
                token.clone(),
                &tls,
                settings.timeout,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    acked.acknowledge(cursor.verified());
    telemetry.ship_configured(&settings.collectors, &settings.host_id, cursor.acked());
    let collectors = Collectors::new("shipping", &settings.collectors);
    let pull = holds
        .clone()
        .map(|link| verdicts::pull(settings.clone(), link, stop.clone()));
    let shipper = Shipper {
        telemetry,
        holds,
        settings,
        journal_dir,
        cursor,
        acked,
        collectors,
        clients,
        backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP),
        stop,
    };
    let thread = std::thread::Builder::new()
        .name("auditloop-ship".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ShipError::Start)?;
            let mut shipper = shipper;
            if let Some(pull) = pull {
                runtime.spawn(pull);
            }
            loop {
                match runtime.block_on(shipper.run()) {
                    Ok(()) => return Ok(()),
                    Err(err) => {
                        tracing::error!(
                            error = %error_chain(&err),
                            "shipping stopped; records stay spooled, retrying in 30 s"
                        );
                        shipper.telemetry.ship_failed(&error_chain(&err));
                        if runtime.block_on(shipper.wait_or_stop(BACKOFF_CAP)) {
                            return Err(err);
                        }
                    }
                }
            }
        })
        .map_err(ShipError::Start)?;
    Ok(ShipperHandle { thread })
}

/// A batch being filled.
struct Pending {
    frames: Vec<u8>,
    first_seq: u64,
    last_seq: u64,
    since: Option<Instant>,
}

struct Shipper {
    telemetry: crate::telemetry::Telemetry,
    holds: Option<verdicts::HoldLink>,
    settings: ShipSettings,
    journal_dir: PathBuf,
    cursor: AckCursor,
    acked: RetentionFloor,
    /// Which collector is in use.
    collectors: Collectors,
    /// One client per collector URL, in the same order.
    clients: Vec<CollectorClient>,
    backoff: Backoff,
    stop: StopSignal,
}

/// What to do after an attempt to send.
enum Next {
    /// Build the next batch.
    Continue,
    /// Resume reading at this sequence number.
    Reposition(u64),
    /// Stop shipping (told to).
    Stop,
}

impl Shipper {
    async fn run(&mut self) -> Result<(), ShipError> {
        // A new journal creates its first segment with its first record: wait for it.
        while auditloop_journal::files::list_segments(&self.journal_dir)?.is_empty() {
            if self.stop.borrow().is_some() {
                return Ok(());
            }
            let _ = tokio::time::timeout(IDLE_POLL * 5, self.stop.changed()).await;
        }
        let mut tail = self.open_tail(self.cursor.acked() + 1).await?;
        let mut max_bytes = self.settings.batch_max_bytes;
        let mut pending = Pending {
            frames: Vec::with_capacity(max_bytes),
            first_seq: tail.next_seq(),
            last_seq: 0,
            since: None,
        };
        loop {
            let head = tail.durable_seq()?;
            if pending.frames.is_empty() {
                pending.first_seq = tail.next_seq();
            }
            let added = tail.read(head, max_bytes, &mut pending.frames)?;
            if added > 0 {
                pending.last_seq = tail.next_seq() - 1;
                pending.since.get_or_insert_with(Instant::now);
            }
            let draining = *self.stop.borrow();
            let full = pending.frames.len() >= max_bytes || tail.next_seq() <= head;
            let due = pending
                .since
                .is_some_and(|t| t.elapsed() >= self.settings.batch_max_wait)
                || self
                    .holds
                    .as_ref()
                    .is_some_and(verdicts::HoldLink::flushing);
            if !pending.frames.is_empty() && (full || due || draining.is_some()) {
                match self.send(&pending, &mut max_bytes, head).await? {
                    Next::Continue => {}
                    Next::Reposition(seq) => tail = self.open_tail(seq).await?,
                    Next::Stop => return Ok(()),
                }
                pending.frames.clear();
                pending.since = None;
                continue;
            }
            if let Some(deadline) = draining
                && (pending.frames.is_empty() || Instant::now() >= deadline)
            {
                return Ok(());
            }
            let _ = tokio::time::timeout(IDLE_POLL, self.stop.changed()).await;
        }
    }

    /// Opens the journal at `seq`; when the collector wants records the journal no longer has, says so and
    /// waits (retrying) rather than skipping them.
    async fn open_tail(&mut self, seq: u64) -> Result<Tail, ShipError> {
        loop {
            let start = retained_start(&self.journal_dir)?;
            let from = if seq < start.seq && self.cursor.acked() == 0 {
                // Nothing shipped yet and the oldest records are gone: start at the anchor.
                start.seq
            } else {
                seq
            };
            if from >= start.seq {
                return Tail::open(&self.journal_dir, from).map_err(Into::into);
            }
            tracing::error!(
                wanted = seq,
                retained_from = start.seq,
                "the collector expects records this journal no longer holds; not skipping them"
            );
            tokio::time::sleep(BACKOFF_CAP).await;
            if self.stop.borrow().is_some() {
                return Tail::open(&self.journal_dir, start.seq).map_err(Into::into);
            }
        }
    }

    /// Sends `pending` until an answer moves shipping on. `head` is the journal's durable head: the
    /// collector cannot hold a record beyond it, so an answer claiming one is not believed.
    async fn send(
        &mut self,
        pending: &Pending,
        max_bytes: &mut usize,
        head: u64,
    ) -> Result<Next, ShipError> {
        let start = retained_start(&self.journal_dir)?;
        let anchor = if pending.first_seq == start.seq && start.seq != 1 {
            Some(BatchAnchor {
                prev_hash: start.prev_hash,
                epoch: start.epoch,
                public_key: start.public_key,
                ladder: self.ladder()?,
            })
        } else {
            None
        };
        let batch = Batch {
            first_seq: pending.first_seq,
            last_seq: pending.last_seq,
            anchor,
            frames: pending.frames.clone(),
        };
        let body = batch.encode_binary(ZSTD_LEVEL).map_err(ShipError::Encode)?;
        let mut logged_rejection = false;
        loop {
            // One client per URL, and the index stays below their count: the `else` is never taken.
            let Some(client) = self.clients.get(self.collectors.index()) else {
                return Ok(Next::Stop);
            };
            let outcome = client.send(body.clone()).await;
            let elsewhere = outcome.fails_over();
            if !elsewhere {
                self.collectors.answered();
            }
            let outcome = match check_ack(outcome, &batch, head) {
                Ok(outcome) => outcome,
                Err(why) => {
                    // Not an acknowledgement this agent can believe: the cursor and retention stay put.
                    self.telemetry
                        .ship_failed(&format!("collector answer refused: {why}"));
                    if elsewhere && self.fail_over(&why) == Failover::TryNext {
                        continue;
                    }
                    let delay = self.backoff.next_delay();
                    tracing::error!(
                        first = batch.first_seq,
                        last = batch.last_seq,
                        journal_head = head,
                        anomaly = %why,
                        retry_in_ms = delay.as_millis() as u64,
                        "collector answer refused; nothing acknowledged, records kept, retrying"
                    );
                    if self.wait_or_stop(delay).await {
                        return Ok(Next::Stop);
                    }
                    continue;
                }
            };
            match outcome {
                Outcome::Stored {
                    next_seq,
                    verified_through,
                } => {
                    let acked = (next_seq - 1).max(self.cursor.acked());
                    // Retention keeps what the collector holds only as pending: it may ask for it again.
                    let verified = verified_through
                        .unwrap_or(next_seq - 1)
                        .max(self.cursor.verified());
                    self.cursor.store(acked, verified)?;
                    self.acked.acknowledge(self.cursor.verified());
                    self.backoff.reset();
                    self.telemetry.ship_acked(acked, body.len() as u64);
                    tracing::debug!(
                        first = batch.first_seq,
                        last = batch.last_seq,
                        next_seq,
                        bytes = body.len(),
                        "batch stored"
                    );
                    if next_seq <= batch.last_seq {
                        // Stored only in part: resend the rest, after a pause so a collector that keeps
                        // doing so is not hammered.
                        tracing::warn!(next_seq, last = batch.last_seq, "batch stored in part");
                        let delay = self.backoff.next_delay();
                        if self.wait_or_stop(delay).await {
                            return Ok(Next::Stop);
                        }
                        return Ok(Next::Reposition(next_seq));
                    }
                    return Ok(Next::Continue);
                }
                Outcome::Gap { expected_seq } => {
                    tracing::warn!(
                        sent = batch.first_seq,
                        expected_seq,
                        "collector expects another sequence number; resending from there"
                    );
                    let acked = expected_seq.saturating_sub(1);
                    let verified = self.cursor.verified().min(acked);
                    self.cursor.store(acked, verified)?;
                    self.acked.acknowledge(verified);
                    return Ok(Next::Reposition(expected_seq.max(1)));
                }
                Outcome::TooLarge if batch.len() > 1 => {
                    *max_bytes = (*max_bytes / 2).max(1);
                    tracing::warn!(
                        max_bytes = *max_bytes,
                        "collector refused the batch as too large (413); halving the batch size"
                    );
                    return Ok(Next::Reposition(batch.first_seq));
                }
                Outcome::Retry { after, why } => {
                    self.telemetry.ship_failed(&why.to_string());
                    if self.fail_over(&why) == Failover::TryNext {
                        continue;
                    }
                    let delay = after.unwrap_or_else(|| self.backoff.next_delay());
                    tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "shipping failed; will retry");
                    if self.wait_or_stop(delay).await {
                        return Ok(Next::Stop);
                    }
                }
                Outcome::BadReceipt { .. } => {
                    // check_ack refuses these; wait as for a refused answer all the same.
                    let delay = self.backoff.next_delay();
                    if self.wait_or_stop(delay).await {
                        return Ok(Next::Stop);
                    }
                }
                Outcome::TooLarge | Outcome::Rejected { .. } => {
                    if !logged_rejection {
                        let why = match &outcome {
                            Outcome::Rejected { status, why } => format!("HTTP {status}: {why}"),
                            _ => "HTTP 413: one record is larger than the collector accepts".into(),
                        };
                        self.telemetry
                            .ship_failed(&format!("collector rejected the batch: {why}"));
                        tracing::error!(
                            first = batch.first_seq,
                            error = %why,
                            "collector rejected the batch; records stay spooled in the journal and \
                             shipping waits until the token file changes"
                        );
                        logged_rejection = true;
                    }
                    if self.wait_for_new_token().await {
                        return Ok(Next::Stop);
                    }
                }
            }
        }
    }

    /// The collector in use failed for `why` in a way another may not: moves to the next one (and tells
    /// the status file); says whether to try it at once or back off first.
    fn fail_over(&mut self, why: &str) -> Failover {
        let step = self.collectors.failed(why);
        self.telemetry
            .ship_collector(self.collectors.current(), self.collectors.switches());
        step
    }

    /// The key ladder from the genesis key to the retained start, for an anchored batch. A journal written
    /// before ladders existed has none: the batch goes without, and the collector refuses to take the
    /// anchor's key on trust (an admin re-enrolls such a host).
    fn ladder(&self) -> Result<KeyLadder, ShipError> {
        match auditloop_journal::files::read_ladder(&self.journal_dir) {
            Ok(ladder) => Ok(ladder),
            Err(e @ JournalError::Untraceable { .. }) => {
                tracing::warn!(
                    error = %e,
                    "the retained start cannot be traced to the genesis key; the collector will refuse                      this anchor unless an admin re-enrolls the host"
                );
                Ok(KeyLadder::default())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sleeps `delay`; returns true when a stop deadline has passed meanwhile.
    async fn wait_or_stop(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if let Some(deadline) = *self.stop.borrow()
                && Instant::now() >= deadline
            {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            let _ = tokio::time::timeout(until - now, self.stop.changed()).await;
            if self.stop.has_changed().is_err() {
                tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
            }
        }
    }

    /// Waits until the token file holds a new token (and uses it); returns true when told to stop.
    async fn wait_for_new_token(&mut self) -> bool {
        let current = read_token(&self.settings.token_file).ok();
        loop {
            if self.stop.borrow().is_some() || self.wait_or_stop(REJECTED_POLL).await {
                return true;
            }
            if let Ok(token) = read_token(&self.settings.token_file)
                && Some(&token) != current.as_ref()
            {
                tracing::info!(file = %self.settings.token_file.display(), "token changed; retrying");
                for client in &mut self.clients {
                    client.set_token(token.clone());
                }
                return false;
            }
        }
    }
}

pub use crate::errtext::error_chain;
