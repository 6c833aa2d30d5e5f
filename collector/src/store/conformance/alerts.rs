//! Conformance cases for alerts: stored by commits, rejections and silence, one per host and kind (a
//! repeat counts), and read back by host, kind, time and cursor.

use auditloop_protocol::api::AlertKind;

use crate::alerts::NewAlert;
use crate::store::backend::Store;
use crate::store::commit::{NewCheckpoint, Rejection};
use crate::store::conformance::fixture::{
    ALL, Batch, KEY, alert, all_alerts, execs, extend, stored_host, token_of,
};
use crate::store::error::StoreError;
use crate::store::host::Enrollment;
use crate::store::query::AlertQuery;

/// Raises `alert` for `host` at `now_ns` as a rejection does.
fn raise(store: &dyn Store, host: &str, alert: &NewAlert, now_ns: u64) -> Result<(), StoreError> {
    store.reject(&Rejection {
        host,
        alerts: std::slice::from_ref(alert),
        now_ns,
    })
}

/// Alerts of commits and rejections (for stored hosts and for hosts never stored) are kept with their host,
/// kind, sequence number, detail and the time of the write, oldest first.
pub fn alerts_are_stored_by_commits_and_rejections(store: &dyn Store) -> Result<(), StoreError> {
    let mut batch = Batch::new("a", 1, None, execs("a", 1..=2), 10);
    batch.alerts = vec![
        alert(AlertKind::UnexpectedRestart, Some(1), "first"),
        alert(AlertKind::SpoolOverflow, Some(2), "second"),
    ];
    batch.commit(store)?;
    let forgery = alert(AlertKind::Forgery, Some(3), "third");
    raise(store, "a", &forgery, 20)?;
    let gap = alert(AlertKind::Gap, Some(1), "fourth");
    raise(store, "unknown", &gap, 30)?;
    store.reject(&Rejection {
        host: "a",
        alerts: &[],
        now_ns: 40,
    })?;
    let alerts = all_alerts(store)?;
    let got: Vec<_> = alerts
        .iter()
        .map(|a| {
            let times = (a.time_ns, a.last_time_ns, a.count);
            (a.host.as_str(), a.kind, a.seq, times, a.detail.clone())
        })
        .collect();
    let expected = vec![
        (
            "a",
            AlertKind::UnexpectedRestart,
            Some(1),
            (10, 10, 1),
            batch.alerts[0].detail.clone(),
        ),
        (
            "a",
            AlertKind::SpoolOverflow,
            Some(2),
            (10, 10, 1),
            batch.alerts[1].detail.clone(),
        ),
        (
            "a",
            AlertKind::Forgery,
            Some(3),
            (20, 20, 1),
            forgery.detail.clone(),
        ),
        (
            "unknown",
            AlertKind::Gap,
            Some(1),
            (30, 30, 1),
            gap.detail.clone(),
        ),
    ];
    assert_eq!(got, expected);
    assert!(alerts.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.host("unknown")?, None, "a rejection creates no host");
    Ok(())
}

/// Raising an alert of a kind the host has already counts it in the one row: its first time stays, its
/// last time, sequence number and detail are the new one's, and it gets a new id above every other, so a
/// reader paging with `after` sees it again. Other hosts and kinds keep rows of their own.
pub fn repeated_alerts_collapse_per_host_and_kind(store: &dyn Store) -> Result<(), StoreError> {
    raise(store, "a", &alert(AlertKind::Forgery, Some(7), "one"), 10)?;
    raise(
        store,
        "b",
        &alert(AlertKind::Forgery, None, "other host"),
        11,
    )?;
    raise(
        store,
        "a",
        &alert(AlertKind::Gap, Some(1), "other kind"),
        12,
    )?;
    let before = all_alerts(store)?;
    let first_id = before[0].id;
    for (i, now) in [20u64, 30, 40].into_iter().enumerate() {
        let again = alert(
            AlertKind::Forgery,
            Some(8 + i as u64),
            &format!("again {i}"),
        );
        raise(store, "a", &again, now)?;
    }
    // Several of one kind in one commit count too.
    let mut batch = Batch::new("c", 1, None, execs("c", 1..=1), 50);
    batch.alerts = vec![
        alert(AlertKind::UnexpectedRestart, Some(1), "x"),
        alert(AlertKind::UnexpectedRestart, Some(1), "y"),
    ];
    batch.commit(store)?;

    let alerts = all_alerts(store)?;
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    let a: Vec<_> = alerts
        .iter()
        .filter(|x| x.host == "a" && x.kind == AlertKind::Forgery)
        .collect();
    assert_eq!(a.len(), 1);
    let a = a[0];
    assert_eq!((a.count, a.time_ns, a.last_time_ns), (4, 10, 40));
    assert_eq!(
        (a.seq, a.detail.clone()),
        (Some(10), alert(AlertKind::Forgery, None, "again 2").detail)
    );
    assert!(a.id > first_id && alerts.iter().all(|x| x.id <= a.id || x.host == "c"));
    let c = alerts.iter().find(|x| x.host == "c").map(|x| x.count);
    assert_eq!(c, Some(2));
    let b = alerts.iter().find(|x| x.host == "b").map(|x| x.count);
    assert_eq!(b, Some(1));
    let after_first = store.alerts(&AlertQuery {
        after: Some(first_id),
        limit: ALL,
        ..AlertQuery::default()
    })?;
    assert!(
        after_first.iter().any(|x| x.id == a.id),
        "a repeat is seen after the old id"
    );
    Ok(())
}

/// Alerts filtered by host, kind and time (last raised at or after `since`), paged with `after` and
/// `limit`.
pub fn alerts_filter_by_host_kind_since_and_after(store: &dyn Store) -> Result<(), StoreError> {
    let one = |host: &str, kind: AlertKind, now_ns: u64| {
        raise(store, host, &alert(kind, None, host), now_ns)
    };
    one("a", AlertKind::Gap, 1)?;
    one("b", AlertKind::Gap, 2)?;
    one("a", AlertKind::Forgery, 3)?;
    one("b", AlertKind::ChainFork, 4)?;
    one("a", AlertKind::SpoolOverflow, 5)?;
    let list = |q: AlertQuery| -> Result<Vec<(String, AlertKind, u64)>, StoreError> {
        let limit = if q.limit == 0 { ALL } else { q.limit };
        Ok(store
            .alerts(&AlertQuery { limit, ..q })?
            .into_iter()
            .map(|a| (a.host, a.kind, a.last_time_ns))
            .collect())
    };
    let row = |h: &str, k: AlertKind, t: u64| (h.to_owned(), k, t);
    let by_host = AlertQuery {
        host: Some("a".into()),
        ..AlertQuery::default()
    };
    assert_eq!(
        list(by_host)?,
        [
            row("a", AlertKind::Gap, 1),
            row("a", AlertKind::Forgery, 3),
            row("a", AlertKind::SpoolOverflow, 5)
        ]
    );
    let by_kind = AlertQuery {
        kind: Some(AlertKind::Gap),
        ..AlertQuery::default()
    };
    assert_eq!(
        list(by_kind)?,
        [row("a", AlertKind::Gap, 1), row("b", AlertKind::Gap, 2)]
    );
    let since = AlertQuery {
        since_ns: Some(3),
        ..AlertQuery::default()
    };
    assert_eq!(
        list(since.clone())?,
        [
            row("a", AlertKind::Forgery, 3),
            row("b", AlertKind::ChainFork, 4),
            row("a", AlertKind::SpoolOverflow, 5)
        ]
    );
    let combined = AlertQuery {
        host: Some("b".into()),
        kind: Some(AlertKind::Gap),
        since_ns: Some(2),
        ..AlertQuery::default()
    };
    assert_eq!(list(combined)?, [row("b", AlertKind::Gap, 2)]);
    let none = AlertQuery {
        kind: Some(AlertKind::Silence),
        ..AlertQuery::default()
    };
    assert_eq!(list(none)?, []);
    // A repeat of an old alert counts as raised at its last time.
    one("a", AlertKind::Gap, 6)?;
    assert_eq!(
        list(since)?,
        [
            row("a", AlertKind::Forgery, 3),
            row("b", AlertKind::ChainFork, 4),
            row("a", AlertKind::SpoolOverflow, 5),
            row("a", AlertKind::Gap, 6)
        ]
    );

    let all = all_alerts(store)?;
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.alerts(&AlertQuery {
            after,
            limit: 2,
            ..AlertQuery::default()
        })?;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let after_second = AlertQuery {
        host: Some("a".into()),
        after: Some(all[1].id),
        ..AlertQuery::default()
    };
    assert_eq!(
        (all[1].host.as_str(), all[1].kind),
        ("a", AlertKind::Forgery),
        "a's gap moved to the end when raised again"
    );
    assert_eq!(
        list(after_second)?,
        [
            row("a", AlertKind::SpoolOverflow, 5),
            row("a", AlertKind::Gap, 6)
        ]
    );
    Ok(())
}

/// A silence alert is raised only for a stored host that was seen, last before the given time, and has no
/// open silence alert; the next commit with a checkpoint closes it (a commit without one, and a
/// rejection, do not), and the next quiet spell raises it again (counted in the same alert). A host
/// never seen and a replaced host are never silent.
pub fn silence_is_raised_once_per_quiet_spell(store: &dyn Store) -> Result<(), StoreError> {
    let checkpoint = |seq: u64| {
        vec![NewCheckpoint {
            seq,
            epoch: 0,
            head_seq: seq - 1,
        }]
    };
    let mut first = Batch::new("a", 1, None, execs("a", 1..=2), 100);
    first.checkpoints = checkpoint(2);
    first.commit(store)?;
    let silence = |tag: &str| alert(AlertKind::Silence, None, tag);
    let silences = || -> Result<Vec<u64>, StoreError> {
        Ok(store
            .alerts(&AlertQuery {
                kind: Some(AlertKind::Silence),
                limit: ALL,
                ..AlertQuery::default()
            })?
            .into_iter()
            .map(|a| a.count)
            .collect())
    };
    assert!(
        !store.raise_silence("a", 100, &silence("not yet"), 150)?,
        "last seen at 100 is not before 100"
    );
    assert!(!stored_host(store, "a")?.silent);
    assert!(store.raise_silence("a", 101, &silence("quiet"), 160)?);
    let host = stored_host(store, "a")?;
    assert!(host.silent);
    assert_eq!(host.last_seen_ns, 100, "raising silence is no contact");
    assert!(!store.raise_silence("a", 500, &silence("again"), 170)?);
    assert_eq!(silences()?, [1]);
    let raised = &all_alerts(store)?[0];
    assert_eq!(
        (
            raised.host.as_str(),
            raised.kind,
            raised.seq,
            raised.time_ns
        ),
        ("a", AlertKind::Silence, None, 160)
    );
    assert_eq!(raised.detail, silence("quiet").detail);

    extend(store, "a", execs("a", 3..=3), 300)?;
    store.reject(&Rejection {
        host: "a",
        alerts: &[],
        now_ns: 310,
    })?;
    let host = stored_host(store, "a")?;
    assert!(
        host.silent,
        "neither a commit without checkpoint nor a rejection closes it"
    );
    assert_eq!(host.last_seen_ns, 100);
    let mut heartbeat = Batch::new(
        "a",
        1,
        Some(4),
        vec![super::fixture::Rec::checkpoint("a", 4)],
        400,
    );
    heartbeat.checkpoints = checkpoint(4);
    heartbeat.commit(store)?;
    let host = stored_host(store, "a")?;
    assert!(!host.silent, "a new checkpoint closes it");
    assert_eq!(host.last_seen_ns, 400);
    assert!(!store.raise_silence("a", 400, &silence("seen at 400"), 410)?);
    assert!(store.raise_silence("a", 401, &silence("second spell"), 420)?);
    assert_eq!(
        silences()?,
        [2],
        "the second spell counts in the same alert"
    );

    assert!(!store.raise_silence("never", u64::MAX >> 1, &silence("no host"), 500)?);
    super::fixture::enroll(store, "idle", 500)?;
    assert!(
        !store.raise_silence("idle", u64::MAX >> 1, &silence("never seen"), 510)?,
        "an enrolled host that never shipped a checkpoint is not silent"
    );
    store.enroll(&Enrollment {
        host: "a",
        genesis_key: KEY,
        token_digest: token_of("renewed"),
        replace: true,
        now_ns: 600,
    })?;
    let old = crate::store::replaced_name("a", 600);
    assert!(!store.raise_silence(&old, u64::MAX >> 1, &silence("replaced"), 610)?);
    assert_eq!(silences()?, [2]);
    Ok(())
}
