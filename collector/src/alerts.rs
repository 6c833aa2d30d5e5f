//! Alerts: what the collector tells operators about a host's chain, its restarts and its silence.
//!
//! The kinds are [`AlertKind`] of the HTTP contract, defined once in `auditloop_protocol::api`; this module
//! gives each kind its meaning ([`describe`]) and builds every alert the collector raises ([`gap`],
//! [`forgery`], [`unexpected_restart`], [`spool_overflow`], [`silence`]). Ingest raises the first four,
//! the silence watcher the last. Every alert is stored (one per host and kind, counted) and logged with
//! `tracing` at `warn` and counted in the metrics ([`log`]). [`chain_fork`] and [`tamper`] describe alerts that collectors before
//! enrollment raised; refusals are `forgery` now.
//!
//! This module only describes alerts: it never stores, verifies or serves anything, and imports nothing
//! else of the collector but [`metrics`](crate::metrics).

use std::time::Duration;

use auditloop_journal::Damage;
use auditloop_model::{Event, EventBody, LossStage, WallTime};
use auditloop_protocol::api::{AlertKind, DAMAGE_CHAIN_FORK, DAMAGE_WRONG_KEY};
use serde_json::json;

/// An alert to store (the host and time are added when it is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// Kind.
    pub kind: AlertKind,
    /// The sequence number concerned, if any.
    pub seq: Option<u64>,
    /// Details (a JSON object whose keys depend on the kind).
    pub detail: serde_json::Value,
}

/// What an alert of `kind` means, in one sentence.
pub fn describe(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::ChainFork => {
            "a replayed record differs from the stored one: the host's journal was rewritten"
        }
        AlertKind::Gap => "a batch started after the next expected sequence number",
        AlertKind::Tamper => "a record failed verification",
        AlertKind::UnexpectedRestart => {
            "an agent generation began without the previous one logging agent_stop, or generations were skipped"
        }
        AlertKind::Silence => "a host that shipped before has not shipped for the silence period",
        AlertKind::SpoolOverflow => "the agent's spool overflowed and it dropped events",
        AlertKind::Forgery => {
            "a batch for the host was refused: another identity's token, or a chain that does not verify \
             against the host's stored chain and enrolled key"
        }
    }
}

/// Who sent a refused batch: the identity of its token and the peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offender<'a> {
    /// The token's name: the host id it belongs to, `enrollment` or `admin`.
    pub token: &'a str,
    /// The token's role: `host`, `enrollment` or `admin`.
    pub role: &'a str,
    /// The peer address (`ip:port`, or `unknown`).
    pub peer: &'a str,
}

/// Why a batch was refused as a forgery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The token is not the host's own.
    ForeignToken,
    /// A replayed record differs from the stored one.
    ChainFork,
    /// A record breaks the chain rules.
    Damage(Damage),
    /// The host's first batch does not start from its enrolled key.
    WrongKey,
    /// Replayed records differ from the host's pending (unsigned) records: either they are refused until a
    /// checkpoint of the host covers them, or they replaced the pending ones, which nobody signed.
    PendingFork,
}

impl Refused {
    /// The name in the alert's `refused` (and in a 422's `damage`): `foreign_token`, `chain_fork`,
    /// `wrong_key`, `pending_fork` or the kind of damage as `auditloop verify --json` prints it.
    pub fn name(self) -> String {
        match self {
            Refused::ForeignToken => "foreign_token".into(),
            Refused::ChainFork => DAMAGE_CHAIN_FORK.into(),
            Refused::WrongKey => DAMAGE_WRONG_KEY.into(),
            Refused::PendingFork => "pending_fork".into(),
            Refused::Damage(damage) => damage_name(damage),
        }
    }
}

/// The snake_case name of a kind of damage, as `auditloop verify --json` prints it.
pub fn damage_name(damage: Damage) -> String {
    serde_json::to_value(damage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{damage:?}"))
}

/// Logs an alert of `host` and counts it (`auditloop_collector_alerts_total`).
pub fn log(host: &str, alert: &NewAlert) {
    crate::metrics::alert_raised(alert.kind);
    tracing::warn!(
        host,
        alert = alert.kind.as_str(),
        seq = alert.seq,
        detail = %alert.detail,
        "alert: {}",
        describe(alert.kind)
    );
}

/// The `gap` of a batch that starts after `expected_seq`.
pub fn gap(expected_seq: u64, error: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::Gap,
        seq: Some(expected_seq),
        detail: json!({ "expected_seq": expected_seq, "error": error }),
    }
}

/// The `forgery` of a batch refused for `why`, sent by `offender` (`seq`: where it failed, if known).
pub fn forgery(offender: &Offender<'_>, why: Refused, seq: Option<u64>, error: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::Forgery,
        seq,
        detail: json!({
            "token": offender.token,
            "role": offender.role,
            "peer": offender.peer,
            "refused": why.name(),
            "error": error,
        }),
    }
}

/// The `chain_fork` of a replayed record `seq` that differs from the stored one (as collectors before
/// enrollment raised it).
pub fn chain_fork(seq: u64, error: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::ChainFork,
        seq: Some(seq),
        detail: json!({ "error": error }),
    }
}

/// The `tamper` of a record that failed verification at `seq` (as collectors before enrollment raised it).
pub fn tamper(seq: u64, damage: Damage, error: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::Tamper,
        seq: Some(seq),
        detail: json!({ "damage": damage, "error": error }),
    }
}

/// The `unexpected_restart` a segment start of `generation` raises, given the host's previous generation
/// and whether that generation logged `agent_stop`: when the previous generation did not stop cleanly, or
/// generations were skipped. A segment start of the same generation (a rotation) raises nothing.
pub fn unexpected_restart(
    previous: Option<u64>,
    clean_stop: bool,
    generation: u64,
    seq: u64,
) -> Option<NewAlert> {
    let previous = previous?;
    if generation == previous {
        return None;
    }
    let why = if Some(generation) != previous.checked_add(1) {
        format!("generation {generation} follows generation {previous}")
    } else if !clean_stop {
        format!("generation {previous} ended without agent_stop")
    } else {
        return None;
    };
    Some(NewAlert {
        kind: AlertKind::UnexpectedRestart,
        seq: Some(seq),
        detail: json!({ "previous_generation": previous, "generation": generation, "why": why }),
    })
}

/// The `spool_overflow` of a `loss` event of that stage (ingest raises it only for the first of a run of
/// them: the agent repeats the event every second while its spool is full).
pub fn spool_overflow(event: &Event, seq: u64) -> Option<NewAlert> {
    let EventBody::Loss(loss) = &event.event else {
        return None;
    };
    (loss.stage == LossStage::SpoolOverflow).then(|| NewAlert {
        kind: AlertKind::SpoolOverflow,
        seq: Some(seq),
        detail: json!({ "record": loss.record, "count": loss.count, "total": loss.total }),
    })
}

/// The `silence` of a host last heard from at `last_seen_ns`, quiet for longer than `silence`.
pub fn silence(last_seen_ns: u64, silence: Duration) -> NewAlert {
    NewAlert {
        kind: AlertKind::Silence,
        seq: None,
        detail: json!({
            "last_seen_ns": last_seen_ns,
            "last_seen": WallTime(last_seen_ns).to_string(),
            "silence_secs": silence.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use std::time::Duration;

    use auditloop_journal::Damage;
    use auditloop_protocol::api::AlertKind;
    use serde_json::json;

    use super::{
        Offender, Refused, chain_fork, damage_name, describe, forgery, gap, silence, tamper,
        unexpected_restart,
    };

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in AlertKind::all() {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(AlertKind::parse("nope"), None);
    }

    #[test]
    fn every_kind_has_its_own_description() {
        let descriptions: HashSet<_> = AlertKind::all().map(describe).collect();
        assert_eq!(descriptions.len(), AlertKind::all().count());
        assert!(descriptions.iter().all(|d| !d.is_empty()));
    }

    #[test]
    fn refusals_carry_their_details() {
        let g = gap(7, "late");
        assert_eq!((g.kind, g.seq), (AlertKind::Gap, Some(7)));
        assert_eq!(g.detail, json!({ "expected_seq": 7, "error": "late" }));
        let f = chain_fork(3, "differs");
        assert_eq!(
            (f.kind, f.detail),
            (AlertKind::ChainFork, json!({ "error": "differs" }))
        );
        let t = tamper(9, Damage::HashMismatch, "bad");
        assert_eq!(t.kind, AlertKind::Tamper);
        assert_eq!(
            t.detail,
            json!({ "damage": "hash_mismatch", "error": "bad" })
        );
        let offender = Offender {
            token: "enrollment",
            role: "enrollment",
            peer: "10.0.0.9:4711",
        };
        let x = forgery(&offender, Refused::ForeignToken, None, "foreign");
        assert_eq!((x.kind, x.seq), (AlertKind::Forgery, None));
        assert_eq!(
            x.detail,
            json!({ "token": "enrollment", "role": "enrollment", "peer": "10.0.0.9:4711",
                    "refused": "foreign_token", "error": "foreign" })
        );
        let d = forgery(&offender, Refused::Damage(Damage::BrokenLink), Some(4), "x");
        assert_eq!(
            (d.seq, &d.detail["refused"]),
            (Some(4), &json!("broken_link"))
        );
        assert_eq!(Refused::ChainFork.name(), "chain_fork");
        assert_eq!(Refused::WrongKey.name(), "wrong_key");
        assert_eq!(damage_name(Damage::BadSignature), "bad_signature");
        let s = silence(5, Duration::from_secs(300));
        assert_eq!((s.kind, s.seq), (AlertKind::Silence, None));
        assert_eq!(s.detail["silence_secs"], 300);
        assert_eq!(s.detail["last_seen_ns"], 5);
    }

    #[test]
    fn restarts_follow_generations_and_clean_stops() {
        assert_eq!(unexpected_restart(None, false, 1, 1), None);
        assert_eq!(unexpected_restart(Some(2), false, 2, 9), None);
        assert_eq!(unexpected_restart(Some(2), true, 3, 9), None);
        let crash = unexpected_restart(Some(2), false, 3, 9).unwrap();
        assert_eq!(crash.detail["why"], "generation 2 ended without agent_stop");
        let jump = unexpected_restart(Some(2), true, 5, 9).unwrap();
        assert_eq!(jump.detail["why"], "generation 5 follows generation 2");
        assert!(unexpected_restart(Some(u64::MAX), true, 0, 9).is_some());
    }
}
