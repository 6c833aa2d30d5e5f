//! Cases about holds: what hosts report of held processes, and verdicts recorded once and pulled by id.

use auditloop_model::EventKind;
use auditloop_protocol::api::holds::Decision;

use crate::store::backend::Store;
use crate::store::commit::SearchColumns;
use crate::store::conformance::fixture::{Rec, extend, start};
use crate::store::error::StoreError;
use crate::store::fleet::Finding;
use crate::store::holds::{HoldQuery, HoldReport, NewVerdict, VerdictOutcome};

/// A `hold` event of `host` at `seq` reporting hold `hold` in `state`.
fn hold_event(host: &str, seq: u64, hold: u64, state: &str, decided_by: &str) -> Rec {
    Rec::event(host, seq, EventKind::Hold).with(SearchColumns {
        time_ns: Some(1_000 + seq),
        finding: Some(Finding::Hold(HoldReport {
            hold,
            rule: "hold-shells".into(),
            pid: 4242,
            comm: "sh".into(),
            exe: "/usr/bin/sh".into(),
            state: state.into(),
            stopped_by: "kernel".into(),
            timeout_ms: 60_000,
            default: "deny".into(),
            decided_by: decided_by.into(),
            latency_us: (state != "requested").then_some(77),
            detail: format!("{state} {hold}"),
        })),
        ..SearchColumns::default()
    })
}

fn verdict<'a>(host: &'a str, hold: u64, decision: Decision, by: &'a str) -> NewVerdict<'a> {
    NewVerdict {
        host,
        hold,
        decision,
        by,
        comment: "checked",
        now_ns: 50,
    }
}

/// A hold is listed from its request on with the latest state its host reported; a verdict is recorded
/// once for a waiting hold (with an audit entry), a second one is refused naming the first, a hold the host
/// closed or that does not exist takes none, and hosts pull their own verdicts after an id.
pub fn holds_are_kept_and_decided_once(store: &dyn Store) -> Result<(), StoreError> {
    start(
        store,
        "a",
        vec![
            Rec::exec("a", 1),
            hold_event("a", 2, 1, "requested", ""),
            hold_event("a", 3, 2, "requested", ""),
        ],
        10,
    )?;
    start(store, "b", vec![hold_event("b", 1, 1, "requested", "")], 11)?;
    let waiting = store.holds(&HoldQuery {
        waiting: true,
        limit: 100,
        ..HoldQuery::default()
    })?;
    assert_eq!(waiting.len(), 3);
    let recorded = store.record_verdict(&verdict("a", 1, Decision::Approve, "alice"))?;
    let VerdictOutcome::Recorded(first) = recorded else {
        return Err(StoreError::Corrupt(format!(
            "a's hold 1: not recorded: {recorded:?}"
        )));
    };
    assert_eq!((first.host.as_str(), first.hold), ("a", 1));
    let again = store.record_verdict(&verdict("a", 1, Decision::Deny, "bob"))?;
    assert_eq!(again, VerdictOutcome::AlreadyDecided(first.clone()));
    assert_eq!(
        store.record_verdict(&verdict("a", 9, Decision::Deny, "bob"))?,
        VerdictOutcome::Unknown
    );
    // Host a reports hold 2 timed out: it takes no verdict any more.
    extend(
        store,
        "a",
        vec![hold_event("a", 4, 2, "timed_out", "timeout")],
        12,
    )?;
    assert_eq!(
        store.record_verdict(&verdict("a", 2, Decision::Approve, "bob"))?,
        VerdictOutcome::Closed("timed_out".into())
    );
    let VerdictOutcome::Recorded(second) =
        store.record_verdict(&verdict("b", 1, Decision::Deny, "carol"))?
    else {
        return Err(StoreError::Corrupt("b's hold 1: not recorded".into()));
    };
    assert!(second.id > first.id, "verdict ids increase");
    assert_eq!(store.verdicts("a", 0)?, vec![first.clone()]);
    assert_eq!(store.verdicts("a", first.id)?, Vec::new());
    assert_eq!(store.verdicts("b", 0)?, vec![second]);
    let listed = store.holds(&HoldQuery {
        host: Some("a".into()),
        limit: 100,
        ..HoldQuery::default()
    })?;
    let states: Vec<(u64, &str, bool)> = listed
        .iter()
        .map(|h| (h.hold, h.state.as_str(), h.verdict.is_some()))
        .collect();
    assert_eq!(states, [(2, "timed_out", false), (1, "requested", true)]);
    assert_eq!(listed[0].decided_by, "timeout");
    assert_eq!(listed[0].latency_us, Some(77));
    let audit = store.audit_log(Some("hold:a:1"))?;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].who, "alice");
    Ok(())
}
