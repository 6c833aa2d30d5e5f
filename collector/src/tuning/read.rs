//! Reading the stored events of chosen hosts within a window, a host at a time in sequence order, up to
//! an event budget.

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_model::Event;
use auditloop_protocol::api::rules::HostEvents;
use serde::Serialize;

use crate::store::{EventQuery, Store, StoreError};

/// Records fetched per store call.
const PAGE: u32 = 1000;

/// A window over event time (ns since the Unix epoch): `since` inclusive, `until` exclusive; either open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start, if any.
    pub since_ns: Option<u64>,
    /// End, if any.
    pub until_ns: Option<u64>,
}

/// What a read went through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Read {
    /// Each chosen host and its events read, in the order read (by name).
    pub hosts: Vec<HostEvents>,
    /// Events read, over all hosts.
    pub events: u64,
    /// The budget: events read at most.
    pub max_events: u64,
    /// Whether the budget ended the read before the last host's last event in the window (the hosts
    /// after it were not read at all: their `events` are 0).
    pub truncated: bool,
    /// Verified records whose payload did not decode as an event (skipped; a store holding any is damaged).
    pub undecodable: u64,
}

/// Calls `each` with every verified event of `hosts` (in that order, each host's in sequence order) whose
/// time is in `window`, at most `max_events` of them.
pub fn read_events(
    store: &dyn Store,
    hosts: &[String],
    window: Window,
    max_events: u64,
    mut each: impl FnMut(&str, &Event),
) -> Result<Read, StoreError> {
    let mut read = Read {
        max_events,
        ..Read::default()
    };
    for host in hosts {
        read.hosts.push(HostEvents {
            host: host.clone(),
            events: 0,
        });
    }
    'hosts: for (i, host) in hosts.iter().enumerate() {
        let mut after = None;
        loop {
            let page = store.records(&EventQuery {
                host: Some(host.clone()),
                since_ns: window.since_ns,
                until_ns: window.until_ns,
                after,
                limit: PAGE,
                ..EventQuery::default()
            })?;
            for record in &page {
                let Ok(Payload::Event(event)) = decode_payload(&record.payload) else {
                    read.undecodable += 1;
                    continue;
                };
                if read.events >= max_events {
                    read.truncated = true;
                    break 'hosts;
                }
                each(host, &event);
                read.events += 1;
                if let Some(h) = read.hosts.get_mut(i) {
                    h.events += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = Some(last.id),
                Some(_) | None => break,
            }
        }
    }
    Ok(read)
}
