//! The walk's view of the store: what it may read ([`Ctx`]: the store, the bounds, whether pending records
//! count) and the lookups it makes, each answering stored records decoded as events ([`Found`]).
//!
//! Every lookup goes through the [`Store`] trait's indexed queries (`record`, `process_records`,
//! `flow_records`); nothing here knows the database behind it.

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_model::Event;

use crate::lineage::LineageOptions;
use crate::store::{
    Endpoint, FlowQuery, FlowSide, LineageRole, ProcessQuery, Store, StoreError, StoredRecord,
};

/// A stored event the walk read.
#[derive(Clone, Debug)]
pub(super) struct Found {
    /// Its host.
    pub(super) host: String,
    /// Its sequence number.
    pub(super) seq: u64,
    /// Whether a verified checkpoint covers it.
    pub(super) verified: bool,
    /// Its kind's name.
    pub(super) kind: String,
    /// The event, decoded from the stored payload.
    pub(super) event: Event,
}

impl Found {
    /// `record` decoded; `None` when its payload is not an event.
    pub(super) fn decode(record: StoredRecord) -> Option<Found> {
        match decode_payload(&record.payload) {
            Ok(Payload::Event(event)) => Some(Found {
                host: record.host,
                seq: record.seq,
                verified: record.verified,
                kind: record.kind,
                event,
            }),
            Ok(Payload::SegmentStart(_) | Payload::Checkpoint(_)) | Err(_) => None,
        }
    }

    /// The event's time (ns since the Unix epoch).
    pub(super) fn time_ns(&self) -> u64 {
        self.event.time.0
    }
}

/// What one walk reads with.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    /// The store.
    pub(super) store: &'a dyn Store,
    /// The walk's window and bounds.
    pub(super) options: &'a LineageOptions,
    /// Whether pending records take part.
    pub(super) pending: bool,
}

/// A lookup of one process's records (see [`Ctx::process`]).
pub(super) struct OfProcess<'q> {
    /// The host.
    pub(super) host: &'q str,
    /// The process id.
    pub(super) pid: u32,
    /// The role its records play.
    pub(super) role: LineageRole,
    /// Its start time, from and to (ns since the Unix epoch).
    pub(super) start_ns: (u64, u64),
    /// Event times, from and to, inclusive.
    pub(super) time_ns: (Option<u64>, Option<u64>),
    /// At most this many.
    pub(super) limit: u32,
}

impl Ctx<'_> {
    /// The records of one process playing one role, newest first.
    pub(super) fn process(&self, q: &OfProcess<'_>) -> Result<Vec<Found>, StoreError> {
        let records = self.store.process_records(&ProcessQuery {
            host: q.host.to_owned(),
            pid: q.pid,
            role: q.role,
            start_from_ns: q.start_ns.0,
            start_to_ns: q.start_ns.1,
            since_ns: q.time_ns.0,
            through_ns: q.time_ns.1,
            pending: self.pending,
            limit: q.limit,
        })?;
        Ok(records.into_iter().filter_map(Found::decode).collect())
    }

    /// The latest successful exec of process `pid` of `host` started at `start_ns`, at or before
    /// `through_ns`.
    pub(super) fn latest_exec(
        &self,
        host: &str,
        pid: u32,
        start_ns: u64,
        through_ns: u64,
    ) -> Result<Option<Found>, StoreError> {
        Ok(self
            .process(&OfProcess {
                host,
                pid,
                role: LineageRole::Exec,
                start_ns: (start_ns, start_ns),
                time_ns: (Some(start_ns), Some(through_ns)),
                limit: 1,
            })?
            .pop())
    }

    /// The connects of `host` (of every host, when `None`) from `client` (to `server`, when given) within
    /// `since_ns..=through_ns`, oldest first; `pending` says whether pending records count; at most
    /// `limit`.
    pub(super) fn connects(
        &self,
        host: Option<&str>,
        client: &Endpoint,
        server: Option<&Endpoint>,
        (since_ns, through_ns): (u64, u64),
        pending: bool,
        limit: u32,
    ) -> Result<Vec<Found>, StoreError> {
        let records = self.store.flow_records(&FlowQuery {
            side: FlowSide::Connect,
            host: host.map(str::to_owned),
            client: client.clone(),
            server: server.cloned(),
            since_ns,
            through_ns,
            pending,
            limit,
        })?;
        Ok(records.into_iter().filter_map(Found::decode).collect())
    }
}
