//! `GET /v1/lineage?host=&seq=&pending=` ([`LINEAGE`](super::LINEAGE)): where a stored event's process came
//! from, across hosts ([`LineageAnswer`]).
//!
//! An event's [`Lineage`] is its process, that process's ancestors (from the exec events' compact chains,
//! followed through the ancestors' own exec and fork events, matched by pid and start time), and its
//! [`Arrival`]s: the connections the process or an ancestor accepted before the next process down the chain
//! started. Each arrival is joined to the connect on the host that dialled it ([`Join`]): one connect is
//! [`Join::Matched`] (with that process's own lineage, a hop further), several are [`Join::Ambiguous`] (all
//! listed, none chosen), none is [`Join::Unmatched`] (with the reason). The rules are in
//! `docs/collector.md`, "Lineage".

use serde::{Deserialize, Serialize};

/// The answer of `GET /v1/lineage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageAnswer {
    /// How far apart (ns) a connect and its accept may be: the collector's `--lineage-window-ms`.
    pub window_ns: u64,
    /// How many connections deep the walk follows at most.
    pub max_hops: u32,
    /// How many candidates a join lists at most (more are cut, and said so).
    pub max_candidates: u32,
    /// The event's lineage.
    pub lineage: Lineage,
}

/// Where one stored event's process came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The event's host.
    pub host: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its kind (`exec`, `net`, …).
    pub kind: String,
    /// Its time (ns since the Unix epoch).
    pub time_ns: u64,
    /// Whether a verified checkpoint covers it.
    pub verified: bool,
    /// The event's process.
    pub process: LineageProcess,
    /// Its ancestors, parent first.
    pub ancestors: Vec<LineageProcess>,
    /// Why the ancestors end where they do.
    pub ancestry_end: AncestryEnd,
    /// The connections the process or its ancestors came in over, nearest process first.
    pub arrivals: Vec<Arrival>,
}

/// One process of a lineage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageProcess {
    /// Process id.
    pub pid: u32,
    /// When it started (ns since the Unix epoch); `None` when unknown.
    pub start_ns: Option<u64>,
    /// Executable path; empty when unknown.
    pub exe: String,
    /// Task name; empty when unknown.
    pub comm: String,
    /// argv of the exec that ran it, when that exec event was found; empty otherwise.
    pub argv: Vec<String>,
    /// The sequence number of that exec event (on the lineage's host), when found.
    pub exec_seq: Option<u64>,
    /// Only the pid is known (the agent could not know the process); nothing else is guessed.
    pub unknown: bool,
}

/// Why a lineage's ancestors end where they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AncestryEnd {
    /// The last process is init (pid 1) or kthreadd (pid 2): the chain is whole.
    Root,
    /// The agent could not know the next ancestor: the chain ends with an `unknown` one.
    Unknown,
    /// Neither an exec nor the fork of the last process is stored (it started before the agent, or its
    /// records are not shipped or not verified yet), so its ancestors are not known.
    NotFound,
    /// The last process's start time is unknown, so its records cannot be told from a reused pid's.
    NoStart,
    /// The stored records name a process as its own ancestor (records that contradict each other).
    Cycle,
    /// The walk's bound on ancestors was reached.
    Limit,
}

/// How a connection arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Accepted by an sshd (its executable's name is `sshd` or `sshd-session`), or known from the SSH
    /// client end the process carries.
    Ssh,
    /// Accepted by any other process.
    Tcp,
}

/// A connection a process of the lineage came in over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// The process that accepted: 0 is the event's process, `n` is `ancestors[n - 1]`.
    pub depth: u32,
    /// Its pid.
    pub pid: u32,
    /// Over SSH or plain TCP.
    pub via: Via,
    /// The accept event's sequence number (on the lineage's host); `None` when the arrival is known only
    /// from the SSH client end the process carries (`process.ssh_client_address`).
    pub accept_seq: Option<u64>,
    /// When it was accepted (ns since the Unix epoch); `None` without an accept event.
    pub time_ns: Option<u64>,
    /// This host's end; `None` without an accept event.
    pub local: Option<EndpointView>,
    /// The peer (the client end), when known.
    pub remote: Option<EndpointView>,
    /// Other connections the same process accepted between its start and this one, counted up to the
    /// candidate limit: a server that accepts many gives the latest before the next process started, which
    /// may not be the one that led to it.
    pub earlier_accepts: u32,
    /// The connect on the other side.
    pub join: Join,
}

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    /// IP address (normalized: an IPv4-mapped IPv6 address is shown as the IPv4 address).
    pub address: String,
    /// Port.
    pub port: u16,
}

/// What the join of an arrival found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Join {
    /// Exactly one connect matches.
    Matched {
        /// It, and its own lineage.
        origin: Box<Origin>,
    },
    /// Several connects match (a 4-tuple reused within the window, or hosts claiming the same
    /// connection): none is chosen. (For a loopback connection, the accepting host's own connects are
    /// the candidates when it recorded any; other hosts' only when it recorded none.)
    Ambiguous {
        /// The candidates, oldest first.
        candidates: Vec<Candidate>,
        /// More matched than are listed.
        truncated: bool,
    },
    /// No connect matches.
    Unmatched {
        /// Why.
        reason: Unmatched,
        /// The same, for a person.
        detail: String,
    },
}

/// Why an arrival joined no connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// The accept does not name both ends of the connection (an address or port unknown).
    UnknownEnds,
    /// No verified connect from the client end (to the server end) within the window: the address was
    /// rewritten on the way (NAT, a proxy or load balancer), the dialling host is not enrolled, its agent
    /// did not capture or has not shipped the connect, or the clocks differ by more than the window.
    NoConnect,
    /// Only pending records match (ask again with `pending=true`, or once a checkpoint covers them).
    Pending,
}

/// A connect that matches an arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The host that recorded it.
    pub host: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its time (ns since the Unix epoch).
    pub time_ns: u64,
    /// Whether a verified checkpoint covers it.
    pub verified: bool,
    /// The connecting process.
    pub pid: u32,
    /// When that process started, if known.
    pub start_ns: Option<u64>,
    /// Its executable.
    pub exe: String,
    /// Its task name.
    pub comm: String,
    /// The connect's local end (the client end).
    pub local: EndpointView,
    /// The connect's remote end (the server end it dialled).
    pub remote: EndpointView,
}

/// The one connect an arrival joined, and where its process came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The connect.
    pub connect: Candidate,
    /// The connect's own lineage (on its host); `None` when the walk stopped here (`stopped`).
    pub lineage: Option<Lineage>,
    /// Why the walk did not follow the connect further.
    pub stopped: Option<Stopped>,
}

/// Why the walk did not follow a matched connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Its lineage is already part of this answer (connections that arrive at each other).
    Cycle,
    /// The bound on hops (or on lineages in one answer) was reached.
    Limit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_are_tagged_by_status_and_round_trip() {
        let unmatched = Join::Unmatched {
            reason: Unmatched::NoConnect,
            detail: "no connect".into(),
        };
        assert_eq!(
            serde_json::to_value(&unmatched).unwrap(),
            serde_json::json!({"status": "unmatched", "reason": "no_connect", "detail": "no connect"})
        );
        let end = |port| EndpointView {
            address: "10.0.0.1".into(),
            port,
        };
        let candidate = Candidate {
            host: "a".into(),
            seq: 9,
            time_ns: 1,
            verified: true,
            pid: 100,
            start_ns: None,
            exe: "/usr/bin/curl".into(),
            comm: "curl".into(),
            local: end(40000),
            remote: end(22),
        };
        let answer = LineageAnswer {
            window_ns: 5,
            max_hops: 8,
            max_candidates: 16,
            lineage: Lineage {
                host: "b".into(),
                seq: 3,
                kind: "net".into(),
                time_ns: 2,
                verified: true,
                process: LineageProcess::default(),
                ancestors: vec![LineageProcess {
                    unknown: true,
                    ..LineageProcess::default()
                }],
                ancestry_end: AncestryEnd::Unknown,
                arrivals: vec![Arrival {
                    depth: 0,
                    pid: 10,
                    via: Via::Ssh,
                    accept_seq: Some(3),
                    time_ns: Some(2),
                    local: Some(end(22)),
                    remote: Some(end(40000)),
                    earlier_accepts: 0,
                    join: Join::Matched {
                        origin: Box::new(Origin {
                            connect: candidate.clone(),
                            lineage: None,
                            stopped: Some(Stopped::Cycle),
                        }),
                    },
                }],
            },
        };
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["lineage"]["arrivals"][0]["join"]["status"], "matched");
        assert_eq!(json["lineage"]["arrivals"][0]["via"], "ssh");
        assert_eq!(json["lineage"]["ancestry_end"], "unknown");
        let back: LineageAnswer = serde_json::from_value(json).unwrap();
        assert_eq!(back, answer);
        let ambiguous = Join::Ambiguous {
            candidates: vec![candidate],
            truncated: true,
        };
        let json = serde_json::to_value(&ambiguous).unwrap();
        assert_eq!(json["status"], "ambiguous");
        assert_eq!(json["truncated"], true);
    }
}
