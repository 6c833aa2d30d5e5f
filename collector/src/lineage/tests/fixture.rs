//! Test data for the lineage cases: hosts whose events are stored as ingest stores them (encoded payloads,
//! columns derived by `store::columns`), verified or pending, and processes that exec, fork, connect and
//! accept.

use auditloop_journal::record::encode_event;
use auditloop_model::{
    Ancestor, Event, EventBody, Exec, File, Fork, Net, NetOp, NetProtocol, Process, WallTime,
};
use auditloop_protocol::api::HostStatus;
use auditloop_protocol::api::lineage::{Lineage, LineageAnswer};
use sha2::Digest;
use tempfile::TempDir;

use crate::lineage::{LineageError, LineageOptions, lineage};
use crate::store::columns::of_event;
use crate::store::{Commit, Enrollment, NewRecord, RecordKind, SqliteStore, Store};

/// The time `ms` milliseconds into the cases' day (ns since the Unix epoch).
pub fn ms(ms: u64) -> u64 {
    1_700_000_000_000_000_000 + ms * 1_000_000
}

/// A store holding the events of several hosts.
pub struct World {
    pub store: SqliteStore,
    _dir: TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        World { store, _dir: dir }
    }

    /// Stores `events` of `host` (enrolling it first), verified; their seqs.
    pub fn ship(&self, host: &str, events: &[Event]) -> Vec<u64> {
        self.store_events(host, events, true)
    }

    /// Stores `events` of `host` (enrolling it first), pending; their seqs.
    pub fn ship_pending(&self, host: &str, events: &[Event]) -> Vec<u64> {
        self.store_events(host, events, false)
    }

    fn store_events(&self, host: &str, events: &[Event], verified: bool) -> Vec<u64> {
        if self.store.host_record(host).unwrap().is_none() {
            self.store
                .enroll(&Enrollment {
                    host,
                    genesis_key: [7; 32],
                    token_digest: sha2::Sha256::digest(host.as_bytes()).into(),
                    replace: false,
                    now_ns: 1,
                })
                .unwrap();
        }
        let record = self.store.host_record(host).unwrap().unwrap();
        let first = record.next_seq;
        let payloads: Vec<Vec<u8>> = events.iter().map(|e| encode_event(e).unwrap()).collect();
        let records: Vec<NewRecord<'_>> = events
            .iter()
            .zip(&payloads)
            .zip(first..)
            .map(|((event, payload), seq)| NewRecord {
                seq,
                hash: [seq as u8; 32],
                kind: RecordKind::Event(event.kind()),
                columns: of_event(event),
                payload,
            })
            .collect();
        let next_seq = first + events.len() as u64;
        let mut host_record = record;
        host_record.next_seq = next_seq;
        if verified {
            host_record.last_checkpoint_seq = next_seq - 1;
        }
        self.store
            .commit(&Commit {
                host,
                expected_next_seq: first,
                host_record,
                status: HostStatus::Verified,
                records: &records,
                duplicates: 0,
                replace_from: None,
                checkpoints: &[],
                alerts: &[],
                now_ns: 2,
            })
            .unwrap();
        (first..next_seq).collect()
    }

    /// Indexes every stored record now.
    pub fn index(&self) {
        self.store.index_pending(1).unwrap();
    }

    /// The answer for record `seq` of `host`.
    pub fn answer(
        &self,
        host: &str,
        seq: u64,
        pending: bool,
        options: &LineageOptions,
    ) -> Result<LineageAnswer, LineageError> {
        lineage(&self.store, host, seq, pending, options)
    }

    /// The lineage of verified record `seq` of `host`, with the default bounds.
    pub fn lineage(&self, host: &str, seq: u64) -> Lineage {
        self.answer(host, seq, false, &LineageOptions::default())
            .unwrap()
            .lineage
    }
}

/// A process: pid, start time and executable.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: u32,
    pub start_ns: u64,
    pub exe: String,
    pub ssh_client: Option<(String, u16)>,
}

impl Proc {
    /// Process `pid` started at `ms(start_ms)` running `exe`.
    pub fn new(pid: u32, start_ms: u64, exe: &str) -> Proc {
        Proc {
            pid,
            start_ns: ms(start_ms),
            exe: exe.to_owned(),
            ssh_client: None,
        }
    }

    /// The same process carrying the SSH client end `address:port`.
    pub fn with_ssh_client(mut self, address: &str, port: u16) -> Proc {
        self.ssh_client = Some((address.to_owned(), port));
        self
    }

    /// Its task name: its executable's basename.
    pub fn comm(&self) -> String {
        self.exe.rsplit('/').next().unwrap_or_default().to_owned()
    }

    fn process(&self) -> Process {
        Process {
            pid: self.pid,
            tid: self.pid,
            comm: self.comm(),
            exe: self.exe.clone(),
            start: Some(WallTime(self.start_ns)),
            ssh_client_address: self.ssh_client.clone().unwrap_or_default().0,
            ssh_client_port: self.ssh_client.as_ref().map(|c| c.1),
            ..Process::default()
        }
    }

    fn event(&self, time_ns: u64, body: EventBody) -> Event {
        Event {
            seq: 0,
            time: WallTime(time_ns),
            mono_ns: 0,
            process: self.process(),
            event: body,
        }
    }

    /// It as an ancestor in a compact chain.
    pub fn ancestor(&self) -> Ancestor {
        Ancestor {
            pid: self.pid,
            start: Some(WallTime(self.start_ns)),
            exe: self.exe.clone(),
            comm: self.comm(),
            argv: Vec::new(),
            unknown: false,
        }
    }

    /// A successful exec of its executable at `ms(at_ms)` with `argv`, its compact chain `ancestors`.
    pub fn exec(&self, at_ms: u64, argv: &[&str], ancestors: &[&Proc]) -> Event {
        self.event(
            ms(at_ms),
            EventBody::Exec(Exec {
                filename: self.exe.clone(),
                argv: argv.iter().map(|a| (*a).to_owned()).collect(),
                success: true,
                ret: Some(0),
                ancestors: ancestors.iter().map(|a| a.ancestor()).collect(),
                ..Exec::default()
            }),
        )
    }

    /// The fork of `child` (at its start time).
    pub fn fork(&self, child: &Proc) -> Event {
        self.event(
            child.start_ns,
            EventBody::Fork(Fork {
                child_pid: child.pid,
                ..Fork::default()
            }),
        )
    }

    /// A TCP `op` at `time_ns` from `local` to `remote`.
    pub fn tcp(&self, op: NetOp, time_ns: u64, local: (&str, u16), remote: (&str, u16)) -> Event {
        self.event(
            time_ns,
            EventBody::Net(Net {
                op,
                family: "inet".into(),
                address: remote.0.into(),
                port: remote.1,
                ret: Some(0),
                success: true,
                protocol: NetProtocol::Tcp,
                local_address: local.0.into(),
                local_port: local.1,
                remote_address: remote.0.into(),
                remote_port: remote.1,
                ..Net::default()
            }),
        )
    }

    /// A connect at `ms(at_ms)` from `local` to `remote`.
    pub fn connect(&self, at_ms: u64, local: (&str, u16), remote: (&str, u16)) -> Event {
        self.tcp(NetOp::Connect, ms(at_ms), local, remote)
    }

    /// An accept at `ms(at_ms)` on `local` from `remote`.
    pub fn accept(&self, at_ms: u64, local: (&str, u16), remote: (&str, u16)) -> Event {
        self.tcp(NetOp::Accept, ms(at_ms), local, remote)
    }

    /// A file write at `ms(at_ms)`.
    pub fn file(&self, at_ms: u64, path: &str) -> Event {
        self.event(
            ms(at_ms),
            EventBody::File(File {
                path: path.into(),
                ..File::default()
            }),
        )
    }
}
