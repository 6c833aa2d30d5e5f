//! Conformance cases for alerts: stored by commits, rejections and silence, and read back by host, kind,
//! time and cursor.

use auditloop_protocol::api::{AlertKind, HostStatus};

use crate::store::backend::Store;
use crate::store::commit::Rejection;
use crate::store::conformance::fixture::{
    ALL, Batch, alert, all_alerts, execs, extend, start, stored_host,
};
use crate::store::error::StoreError;
use crate::store::query::AlertQuery;

/// Alerts of commits and rejections (for stored hosts and for hosts never stored) are kept with their host,
/// kind, sequence number, detail and the time of the write, oldest first.
pub fn alerts_are_stored_by_commits_and_rejections(store: &dyn Store) -> Result<(), StoreError> {
    let mut batch = Batch::new("a", 1, None, execs("a", 1..=2), 10);
    batch.alerts = vec![
        alert(AlertKind::UnexpectedRestart, Some(1), "first"),
        alert(AlertKind::SpoolOverflow, Some(2), "second"),
    ];
    batch.commit(store)?;
    let tamper = alert(AlertKind::Tamper, Some(3), "third");
    store.reject(&Rejection {
        host: "a",
        status: Some(HostStatus::Tampered),
        alerts: std::slice::from_ref(&tamper),
        now_ns: 20,
    })?;
    let gap = alert(AlertKind::Gap, Some(1), "fourth");
    store.reject(&Rejection {
        host: "unknown",
        status: None,
        alerts: std::slice::from_ref(&gap),
        now_ns: 30,
    })?;
    store.reject(&Rejection {
        host: "a",
        status: None,
        alerts: &[],
        now_ns: 40,
    })?;
    let alerts = all_alerts(store)?;
    let got: Vec<_> = alerts
        .iter()
        .map(|a| (a.host.as_str(), a.kind, a.seq, a.time_ns, a.detail.clone()))
        .collect();
    let expected = vec![
        (
            "a",
            AlertKind::UnexpectedRestart,
            Some(1),
            10,
            batch.alerts[0].detail.clone(),
        ),
        (
            "a",
            AlertKind::SpoolOverflow,
            Some(2),
            10,
            batch.alerts[1].detail.clone(),
        ),
        ("a", AlertKind::Tamper, Some(3), 20, tamper.detail.clone()),
        ("unknown", AlertKind::Gap, Some(1), 30, gap.detail.clone()),
    ];
    assert_eq!(got, expected);
    assert!(alerts.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.host("unknown")?, None, "a rejection creates no host");
    Ok(())
}

/// Alerts filtered by host, kind and time (at or after `since`), paged with `after` and `limit`.
pub fn alerts_filter_by_host_kind_since_and_after(store: &dyn Store) -> Result<(), StoreError> {
    let raise = |host: &str, kind: AlertKind, now_ns: u64| {
        let alert = alert(kind, None, host);
        store.reject(&Rejection {
            host,
            status: None,
            alerts: std::slice::from_ref(&alert),
            now_ns,
        })
    };
    raise("a", AlertKind::Gap, 1)?;
    raise("b", AlertKind::Gap, 2)?;
    raise("a", AlertKind::Tamper, 3)?;
    raise("b", AlertKind::ChainFork, 4)?;
    raise("a", AlertKind::Gap, 5)?;
    let list = |q: AlertQuery| -> Result<Vec<(String, AlertKind, u64)>, StoreError> {
        let limit = if q.limit == 0 { ALL } else { q.limit };
        Ok(store
            .alerts(&AlertQuery { limit, ..q })?
            .into_iter()
            .map(|a| (a.host, a.kind, a.time_ns))
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
            row("a", AlertKind::Tamper, 3),
            row("a", AlertKind::Gap, 5)
        ]
    );
    let by_kind = AlertQuery {
        kind: Some(AlertKind::Gap),
        ..AlertQuery::default()
    };
    assert_eq!(
        list(by_kind)?,
        [
            row("a", AlertKind::Gap, 1),
            row("b", AlertKind::Gap, 2),
            row("a", AlertKind::Gap, 5)
        ]
    );
    let since = AlertQuery {
        since_ns: Some(3),
        ..AlertQuery::default()
    };
    assert_eq!(
        list(since)?,
        [
            row("a", AlertKind::Tamper, 3),
            row("b", AlertKind::ChainFork, 4),
            row("a", AlertKind::Gap, 5)
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
        list(after_second)?,
        [row("a", AlertKind::Tamper, 3), row("a", AlertKind::Gap, 5)]
    );
    Ok(())
}

/// A silence alert is raised only for a stored host last seen before the given time and without an open
/// silence alert; the next commit or rejection closes it, and the next quiet spell raises it again.
pub fn silence_is_raised_once_per_quiet_spell(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=2), 100)?;
    let silence = |tag: &str| alert(AlertKind::Silence, None, tag);
    let silences = || -> Result<usize, StoreError> {
        Ok(store
            .alerts(&AlertQuery {
                kind: Some(AlertKind::Silence),
                limit: ALL,
                ..AlertQuery::default()
            })?
            .len())
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
    assert_eq!(silences()?, 1);
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
    assert!(!stored_host(store, "a")?.silent, "a commit closes it");
    assert!(store.raise_silence("a", 301, &silence("second spell"), 310)?);
    assert!(stored_host(store, "a")?.silent);
    store.reject(&Rejection {
        host: "a",
        status: None,
        alerts: &[],
        now_ns: 400,
    })?;
    assert!(!stored_host(store, "a")?.silent, "a rejection closes it");
    assert!(!store.raise_silence("a", 400, &silence("seen at 400"), 410)?);
    assert!(store.raise_silence("a", 401, &silence("third spell"), 420)?);
    assert_eq!(silences()?, 3);

    assert!(!store.raise_silence("never", u64::MAX >> 1, &silence("no host"), 500)?);
    assert_eq!(silences()?, 3, "no alert for a host never stored");
    Ok(())
}
