//! Conformance cases for fleet alerts: rule alerts listed from the `alert` events a commit carries, joined
//! to the actions of their trigger; chain alerts listed beside them and reopened when raised again; states
//! changed with who, when and why, every change in the hash-chained audit log; the live feed by revision.

use auditloop_model::{EventKind, Severity};
use auditloop_protocol::api::AlertKind;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};
use serde_json::json;

use crate::store::backend::Store;
use crate::store::commit::{Rejection, SearchColumns};
use crate::store::conformance::fixture::{ALL, Batch, Rec, alert, extend};
use crate::store::error::StoreError;
use crate::store::fleet::{
    Finding, FleetAlert, FleetQuery, NewAuditEntry, StateChange, audit_hash,
};

/// An `alert` event at `seq` of `host` for `rule`, triggered by `trigger`.
fn rule_alert(host: &str, seq: u64, rule: &str, severity: Severity, trigger: u64) -> Rec {
    Rec::event(host, seq, EventKind::Alert).with(SearchColumns {
        time_ns: Some(1_000 + seq),
        finding: Some(Finding::Alert {
            rule: rule.into(),
            severity,
            tags: vec!["T1059".into(), rule.into()],
            output: format!("{rule} fired on {trigger}"),
            trigger_seq: trigger,
        }),
        ..SearchColumns::default()
    })
}

/// An `action` event at `seq` of `host` for `rule` and `trigger`.
fn action(host: &str, seq: u64, rule: &str, kind: &str, trigger: u64, ok: bool) -> Rec {
    Rec::event(host, seq, EventKind::Action).with(SearchColumns {
        time_ns: Some(1_000 + seq),
        finding: Some(Finding::Action {
            rule: rule.into(),
            action: kind.into(),
            trigger_seq: trigger,
            ok,
            detail: format!("{kind} {ok}"),
        }),
        ..SearchColumns::default()
    })
}

/// Fleet alerts matching `query` (with a page longer than anything stored).
fn list(store: &dyn Store, query: FleetQuery) -> Result<Vec<FleetAlert>, StoreError> {
    store.fleet_alerts(&FleetQuery {
        limit: ALL,
        ..query
    })
}

/// Every alert event a commit carries is a rule alert, newest first, with its rule, severity, tags,
/// output, host, sequence numbers and event time, state `open`, and the actions of its trigger and rule
/// (not another rule's); filters by host, rule, source, severity, state and time.
pub fn rule_alerts_are_listed_with_their_actions(store: &dyn Store) -> Result<(), StoreError> {
    Batch::new(
        "a",
        1,
        None,
        vec![
            Rec::exec("a", 1),
            rule_alert("a", 2, "shell", Severity::Critical, 1),
            action("a", 3, "shell", "kill", 1, true),
            rule_alert("a", 4, "noisy", Severity::Notice, 1),
            action("a", 5, "shell", "rollback", 7, false),
        ],
        10,
    )
    .commit(store)?;
    Batch::new(
        "b",
        1,
        None,
        vec![rule_alert("b", 1, "shell", Severity::Warning, 9)],
        10,
    )
    .commit(store)?;
    let all = list(store, FleetQuery::default())?;
    let got: Vec<_> = all
        .iter()
        .map(|a| (a.host.as_str(), a.rule.as_str(), a.seq, a.trigger_seq))
        .collect();
    assert_eq!(
        got,
        [
            ("b", "shell", Some(1), Some(9)),
            ("a", "noisy", Some(4), Some(1)),
            ("a", "shell", Some(2), Some(1)),
        ],
        "newest first"
    );
    let shell = &all[2];
    assert_eq!(shell.source, AlertSource::Rule);
    assert_eq!(shell.severity, Severity::Critical);
    assert_eq!(shell.tags, ["T1059", "shell"]);
    assert_eq!(shell.output, "shell fired on 1");
    assert_eq!(
        (shell.time_ns, shell.last_time_ns, shell.count),
        (1_002, 1_002, 1)
    );
    assert_eq!(shell.state, AlertState::Open);
    assert_eq!((shell.state_by.as_deref(), shell.state_ns), (None, None));
    let actions: Vec<_> = shell
        .actions
        .iter()
        .map(|a| (a.seq, a.action.as_str(), a.ok, a.detail.as_str()))
        .collect();
    assert_eq!(
        actions,
        [(3, "kill", true, "kill true")],
        "only its own trigger and rule"
    );
    assert!(
        all[1].actions.is_empty(),
        "another rule's actions are not joined"
    );
    let rules = |q: FleetQuery| -> Result<Vec<(String, String)>, StoreError> {
        Ok(list(store, q)?
            .into_iter()
            .map(|a| (a.host, a.rule))
            .collect())
    };
    let pair = |h: &str, r: &str| (h.to_owned(), r.to_owned());
    assert_eq!(
        rules(FleetQuery {
            host: Some("a".into()),
            ..FleetQuery::default()
        })?,
        [pair("a", "noisy"), pair("a", "shell")]
    );
    assert_eq!(
        rules(FleetQuery {
            rule: Some("shell".into()),
            ..FleetQuery::default()
        })?,
        [pair("b", "shell"), pair("a", "shell")]
    );
    assert_eq!(
        rules(FleetQuery {
            min_severity: Some(Severity::Warning),
            ..FleetQuery::default()
        })?,
        [pair("b", "shell"), pair("a", "shell")],
        "warning and more severe"
    );
    assert_eq!(
        rules(FleetQuery {
            since_ns: Some(1_002),
            until_ns: Some(1_004),
            ..FleetQuery::default()
        })?,
        [pair("a", "shell")],
        "since inclusive, until exclusive"
    );
    assert_eq!(
        rules(FleetQuery {
            source: Some(AlertSource::Chain),
            ..FleetQuery::default()
        })?,
        []
    );
    assert_eq!(
        rules(FleetQuery {
            before: Some(all[1].id),
            limit: 1,
            ..FleetQuery::default()
        })?,
        [pair("a", "shell")],
        "paging before an id"
    );
    assert_eq!(store.fleet_alert(shell.id)?.as_ref(), Some(shell));
    assert_eq!(store.fleet_alert(i64::MAX)?, None);
    Ok(())
}

/// Chain alerts (of commits, rejections and silence) are listed with source `chain`, their kind as rule
/// and a severity by kind, one per host and kind: raising one again counts it, gives it a new revision and
/// reopens it when resolved, keeping its id.
pub fn chain_alerts_join_the_fleet_list_and_reopen(store: &dyn Store) -> Result<(), StoreError> {
    let mut batch = Batch::new("a", 1, None, vec![Rec::exec("a", 1)], 10);
    batch.alerts = vec![alert(AlertKind::Gap, Some(1), "gap")];
    batch.commit(store)?;
    let forgery = alert(AlertKind::Forgery, Some(2), "forged");
    store.reject(&Rejection {
        host: "a",
        alerts: std::slice::from_ref(&forgery),
        now_ns: 20,
    })?;
    let chain = list(
        store,
        FleetQuery {
            source: Some(AlertSource::Chain),
            ..FleetQuery::default()
        },
    )?;
    let got: Vec<_> = chain
        .iter()
        .map(|a| {
            (
                a.rule.as_str(),
                a.severity,
                a.seq,
                a.time_ns,
                a.count,
                a.state,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "forgery",
                Severity::Critical,
                Some(2),
                20,
                1,
                AlertState::Open
            ),
            ("gap", Severity::Warning, Some(1), 10, 1, AlertState::Open),
        ]
    );
    assert!(chain[0].output.contains("forged"), "{}", chain[0].output);
    let id = chain[0].id;
    let resolved = store.set_alert_state(&StateChange {
        id,
        state: AlertState::Resolved,
        by: "admin",
        comment: "rotated the token",
        now_ns: 30,
    })?;
    assert_eq!(resolved.map(|a| a.state), Some(AlertState::Resolved));
    store.reject(&Rejection {
        host: "a",
        alerts: std::slice::from_ref(&forgery),
        now_ns: 40,
    })?;
    let again = store.fleet_alert(id)?;
    assert!(again.is_some(), "the same alert, by id");
    let again = again.unwrap_or_else(|| chain[0].clone());
    assert_eq!(
        (again.count, again.time_ns, again.last_time_ns, again.state),
        (2, 20, 40, AlertState::Open),
        "counted and reopened"
    );
    assert!(again.rev > chain[0].rev, "a new revision");
    Ok(())
}

/// A state change records who, when and why on the alert and appends one audit entry (action
/// `alert_state`, target `alert:<id>`, from and to states and the comment) chained to the previous entry;
/// changing an unknown alert changes and logs nothing.
pub fn state_changes_are_audited(store: &dyn Store) -> Result<(), StoreError> {
    Batch::new(
        "a",
        1,
        None,
        vec![rule_alert("a", 1, "shell", Severity::Error, 1)],
        10,
    )
    .commit(store)?;
    let id = list(store, FleetQuery::default())?[0].id;
    let first = store.audit(&NewAuditEntry {
        time_ns: 15,
        who: "admin",
        action: "verify",
        target: "host:a",
        detail: json!({ "ok": true }),
    })?;
    assert_eq!(
        first.hash,
        audit_hash(
            "",
            &NewAuditEntry {
                time_ns: 15,
                who: "admin",
                action: "verify",
                target: "host:a",
                detail: json!({ "ok": true }),
            }
        )
    );
    let changed = store.set_alert_state(&StateChange {
        id,
        state: AlertState::Acknowledged,
        by: "approver",
        comment: "looking into it",
        now_ns: 20,
    })?;
    let changed = changed.map(|a| (a.state, a.state_by, a.state_ns, a.state_comment));
    assert_eq!(
        changed,
        Some((
            AlertState::Acknowledged,
            Some("approver".into()),
            Some(20),
            Some("looking into it".into())
        ))
    );
    assert_eq!(
        store.set_alert_state(&StateChange {
            id: id + 1_000,
            state: AlertState::Resolved,
            by: "approver",
            comment: "",
            now_ns: 25,
        })?,
        None
    );
    let log = store.audit_log(None)?;
    assert_eq!(log.len(), 2, "{log:?}");
    let entry = &log[1];
    let target = format!("alert:{id}");
    assert_eq!(
        (
            entry.time_ns,
            entry.who.as_str(),
            entry.action.as_str(),
            entry.target.as_str()
        ),
        (20, "approver", "alert_state", target.as_str())
    );
    assert_eq!(
        entry.detail,
        json!({ "from": "open", "to": "acknowledged", "comment": "looking into it" })
    );
    let expected = audit_hash(
        &log[0].hash,
        &NewAuditEntry {
            time_ns: entry.time_ns,
            who: &entry.who,
            action: &entry.action,
            target: &entry.target,
            detail: entry.detail.clone(),
        },
    );
    assert_eq!(entry.hash, expected, "chained to the previous entry");
    assert_eq!(store.audit_log(Some(&target))?, std::slice::from_ref(entry));
    Ok(())
}

/// Replacing pending records drops their rule alerts and actions; the replacing records' own are listed.
pub fn replaced_pending_findings_are_dropped(store: &dyn Store) -> Result<(), StoreError> {
    let mut first = Batch::new(
        "a",
        1,
        None,
        vec![
            Rec::exec("a", 1),
            rule_alert("a", 2, "old", Severity::Warning, 1),
            action("a", 3, "old", "kill", 1, true),
        ],
        10,
    );
    first.host_record.last_checkpoint_seq = 1;
    first.commit(store)?;
    let mut replacing = Batch::new(
        "a",
        1,
        Some(4),
        vec![
            rule_alert("a", 2, "new", Severity::Warning, 1),
            action("a", 3, "new", "rollback", 1, true),
        ],
        20,
    );
    replacing.replace_from = Some(2);
    replacing.commit(store)?;
    let all = list(store, FleetQuery::default())?;
    let got: Vec<_> = all
        .iter()
        .map(|a| {
            let actions: Vec<_> = a.actions.iter().map(|x| x.action.clone()).collect();
            (a.rule.clone(), actions)
        })
        .collect();
    assert_eq!(got, [("new".to_owned(), vec!["rollback".to_owned()])]);
    extend(store, "a", vec![Rec::exec("a", 4)], 30)?;
    assert_eq!(list(store, FleetQuery::default())?.len(), 1);
    Ok(())
}

/// With `after`, the list holds every alert written after that revision, oldest write first: new alerts,
/// repeats and state changes alike.
pub fn the_live_feed_follows_revisions(store: &dyn Store) -> Result<(), StoreError> {
    Batch::new(
        "a",
        1,
        None,
        vec![
            rule_alert("a", 1, "one", Severity::Warning, 1),
            rule_alert("a", 2, "two", Severity::Warning, 1),
        ],
        10,
    )
    .commit(store)?;
    let all = list(store, FleetQuery::default())?;
    let latest = all.iter().map(|a| a.rev).max().unwrap_or(0);
    let feed = |after: i64| -> Result<Vec<String>, StoreError> {
        Ok(list(
            store,
            FleetQuery {
                after: Some(after),
                ..FleetQuery::default()
            },
        )?
        .into_iter()
        .map(|a| a.rule)
        .collect())
    };
    assert_eq!(feed(0)?, ["one", "two"], "oldest write first");
    assert!(feed(latest)?.is_empty());
    let one = all.iter().find(|a| a.rule == "one").map_or(0, |a| a.id);
    store.set_alert_state(&StateChange {
        id: one,
        state: AlertState::Acknowledged,
        by: "admin",
        comment: "",
        now_ns: 20,
    })?;
    store.reject(&Rejection {
        host: "a",
        alerts: &[alert(AlertKind::Gap, Some(3), "gap")],
        now_ns: 30,
    })?;
    assert_eq!(
        feed(latest)?,
        ["one", "gap"],
        "the change, then the new alert"
    );
    Ok(())
}

/// A store that offers [`Store::changes`] moves it for every write a live feed shows (a batch raising an
/// alert, a state change), and not for a batch that changes nothing a feed shows; one written by another
/// replica counts the same (backend tests check that part). A store without it makes feeds poll.
pub fn live_feeds_are_told_of_changes(store: &dyn Store) -> Result<(), StoreError> {
    let Some(mut changes) = store.changes() else {
        return Ok(());
    };
    let wait = |changes: &mut tokio::sync::watch::Receiver<u64>, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !changes.has_changed().unwrap_or(false) {
            assert!(std::time::Instant::now() < deadline, "{what}: no change");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        changes.borrow_and_update();
    };
    // A backend may count a change when it starts following them.
    std::thread::sleep(std::time::Duration::from_millis(200));
    changes.borrow_and_update();
    let mut batch = Batch::new("c", 1, None, vec![Rec::exec("c", 1)], 10);
    batch.alerts = vec![alert(AlertKind::Gap, Some(1), "c")];
    batch.commit(store)?;
    wait(&mut changes, "a batch raising an alert");
    extend(store, "c", vec![Rec::exec("c", 2)], 11)?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !changes.has_changed().unwrap_or(true),
        "a batch with nothing for a feed"
    );
    let id = store.fleet_alerts(&FleetQuery {
        limit: ALL,
        ..FleetQuery::default()
    })?[0]
        .id;
    store.set_alert_state(&StateChange {
        id,
        state: AlertState::Acknowledged,
        by: "admin",
        comment: "seen",
        now_ns: 12,
    })?;
    wait(&mut changes, "a state change");
    Ok(())
}
