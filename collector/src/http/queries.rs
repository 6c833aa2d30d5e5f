//! The query API (admin token only): stored events, hosts and alerts, answered with the protocol's
//! [`EventsPage`], [`HostsPage`], [`HostSummary`] and [`AlertsPage`].
//!
//! `GET /v1/events` serves verified records only, unless `pending=true`. Query parameters left empty count
//! as absent. Times (`since`, `until`) are RFC 3339 (`Z` or a `±HH:MM`
//! offset) or integer nanoseconds since the Unix epoch. Pages are at most [`MAX_LIMIT`] long; `next` is the
//! cursor to pass as `after` for the following page, `null` on the last page.

use auditloop_protocol::api::{AlertKind, AlertsPage, EventsPage, HostSummary, HostsPage};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use crate::http::access::ViewAccess;
use crate::http::blocking::blocking;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::http::views::{alert_view, host_summary, record_view};
use crate::store::{AlertQuery, EventQuery, PathFilter, normalize_address};

/// Page length when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Longest page.
pub const MAX_LIMIT: u32 = 1000;

/// Parameters of `GET /v1/events` (all optional).
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct EventParams {
    host: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    pid: Option<String>,
    path: Option<String>,
    q: Option<String>,
    loginuid: Option<String>,
    local_address: Option<String>,
    local_port: Option<String>,
    remote_address: Option<String>,
    remote_port: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    pending: Option<String>,
}

/// Parameters of `GET /v1/alerts` (all optional).
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct AlertParams {
    host: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /v1/events`.
pub(super) async fn events(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<EventsPage>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = limit(p.limit.as_deref())?;
    let query = EventQuery {
        host: given(p.host),
        kind: given(p.kind),
        since_ns: time("since", p.since.as_deref())?,
        until_ns: time("until", p.until.as_deref())?,
        pid: number("pid", p.pid.as_deref())?,
        path: given(p.path).map(|path| match path.strip_suffix('*') {
            Some(prefix) => PathFilter::Prefix(prefix.to_owned()),
            None => PathFilter::Exact(path),
        }),
        text: given(p.q),
        loginuid: number("loginuid", p.loginuid.as_deref())?,
        local_address: address("local_address", p.local_address.as_deref())?,
        local_port: port("local_port", p.local_port.as_deref())?,
        remote_address: address("remote_address", p.remote_address.as_deref())?,
        remote_port: port("remote_port", p.remote_port.as_deref())?,
        after: number("after", p.after.as_deref())?,
        pending: flag("pending", p.pending.as_deref())?,
        limit: limit + 1,
    };
    let mut rows = blocking(state.store(), move |s| s.records(&query)).await?;
    let next = page_end(&mut rows, limit).map(|r| r.id);
    Ok(Json(EventsPage {
        events: rows.into_iter().map(record_view).collect(),
        next,
    }))
}

/// `GET /v1/hosts`.
pub(super) async fn hosts(
    _: ViewAccess,
    State(state): State<AppState>,
) -> Result<Json<HostsPage>, AppError> {
    let hosts = blocking(state.store(), |s| s.hosts()).await?;
    Ok(Json(HostsPage {
        hosts: hosts.into_iter().map(host_summary).collect(),
    }))
}

/// `GET /v1/hosts/{host}`.
pub(super) async fn host(
    _: ViewAccess,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HostSummary>, AppError> {
    let lookup = name.clone();
    blocking(state.store(), move |s| s.host(&lookup))
        .await?
        .map(|host| Json(host_summary(host)))
        .ok_or_else(|| AppError::NotFound(format!("unknown host {name}")))
}

/// `GET /v1/alerts`.
pub(super) async fn alerts(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<AlertsPage>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = limit(p.limit.as_deref())?;
    let kind = match given(p.kind) {
        Some(k) => Some(AlertKind::parse(&k).ok_or_else(|| {
            let known: Vec<_> = AlertKind::all().map(AlertKind::as_str).collect();
            AppError::BadRequest(format!(
                "unknown alert kind {k:?} (one of {})",
                known.join(", ")
            ))
        })?),
        None => None,
    };
    let query = AlertQuery {
        host: given(p.host),
        kind,
        since_ns: time("since", p.since.as_deref())?,
        after: number("after", p.after.as_deref())?,
        limit: limit + 1,
    };
    let mut rows = blocking(state.store(), move |s| s.alerts(&query)).await?;
    let next = page_end(&mut rows, limit).map(|a| a.id);
    Ok(Json(AlertsPage {
        alerts: rows.into_iter().map(alert_view).collect(),
        next,
    }))
}

/// Cuts `rows` (fetched with one extra row) to `limit`; returns the last kept row when more follow.
fn page_end<T>(rows: &mut Vec<T>, limit: u32) -> Option<&T> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
    } else {
        None
    }
}

pub(super) fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub(super) fn number<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, AppError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| AppError::BadRequest(format!("{name}={v:?} is not a valid number"))),
    }
}

/// A port parameter: 1 to 65535.
pub(super) fn port(name: &str, value: Option<&str>) -> Result<Option<u16>, AppError> {
    match number::<u16>(name, value)? {
        Some(0) => Err(AppError::BadRequest(format!(
            "{name}=0: a port is 1 to 65535 (0 means unknown and is never stored)"
        ))),
        other => Ok(other),
    }
}

/// An address parameter: an IP address (normalized as stored: `::ffff:10.0.0.1` is `10.0.0.1`) or a unix
/// socket path (`/…`, or `@…` for an abstract one).
pub(super) fn address(name: &str, value: Option<&str>) -> Result<Option<String>, AppError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.parse::<std::net::IpAddr>().is_ok() || v.starts_with(['/', '@']) => {
            Ok(Some(normalize_address(v)))
        }
        Some(v) => Err(AppError::BadRequest(format!(
            "{name}={v:?} is neither an IP address nor a unix socket path"
        ))),
    }
}

pub(super) fn flag(name: &str, value: Option<&str>) -> Result<bool, AppError> {
    match value.filter(|v| !v.is_empty()) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(AppError::BadRequest(format!(
            "{name}={v:?} is neither true nor false"
        ))),
    }
}

pub(super) fn limit(value: Option<&str>) -> Result<u32, AppError> {
    Ok(number::<u32>("limit", value)?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT))
}

/// Parses a time parameter: integer nanoseconds since the Unix epoch, or RFC 3339.
pub fn parse_time(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| format!("{e}"));
    }
    let bad = |e: &dyn std::fmt::Display| format!("not RFC 3339 or nanoseconds: {e}");
    let (base, offset_secs) = split_offset(text);
    let utc = humantime::parse_rfc3339_weak(base).map_err(|e| bad(&e))?;
    let ns = auditloop_model::WallTime::from(utc).0;
    let offset_ns = offset_secs.unsigned_abs() * 1_000_000_000;
    let adjusted = if offset_secs >= 0 {
        ns.checked_sub(offset_ns)
    } else {
        ns.checked_add(offset_ns)
    };
    adjusted.ok_or_else(|| bad(&"out of range"))
}

/// Splits a trailing `Z` or `±HH:MM` offset from an RFC 3339 time; returns the offset in seconds east of
/// UTC.
fn split_offset(text: &str) -> (&str, i64) {
    if let Some(base) = text.strip_suffix(['Z', 'z']) {
        return (base, 0);
    }
    let n = text.len();
    if n > 6 && text.is_char_boundary(n - 6) {
        let (base, tz) = text.split_at(n - 6);
        let b = tz.as_bytes();
        if matches!(b[0], b'+' | b'-') && b[3] == b':' {
            let hours: Option<i64> = tz[1..3].parse().ok();
            let minutes: Option<i64> = tz[4..6].parse().ok();
            if let (Some(h), Some(m)) = (hours, minutes) {
                let secs = h * 3600 + m * 60;
                return (base, if b[0] == b'-' { -secs } else { secs });
            }
        }
    }
    (text, 0)
}

pub(super) fn time(name: &str, value: Option<&str>) -> Result<Option<u64>, AppError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_time(v)
            .map(Some)
            .map_err(|e| AppError::BadRequest(format!("{name}={v:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests;
