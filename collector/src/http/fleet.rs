//! The fleet-alert and hold API: `GET /v1/fleet/alerts`, `GET /v1/fleet/alerts/{id}`,
//! `POST /v1/fleet/alerts/{id}/state`, `GET /v1/holds`, `POST /v1/holds/{host}/{id}/verdict` for people,
//! and `GET /v1/hosts/{host}/verdicts` for agents (their own host token; long-poll with `wait_ms`).

use std::time::Duration;

use auditloop_model::Severity;
use auditloop_protocol::api::fleet::{
    ActionView, AlertSource, AlertState, FleetAlertDetail, FleetAlertView, FleetAlertsPage,
    StateChangeView, StateRequest,
};
use auditloop_protocol::api::holds::{
    Decision, MAX_WAIT_MS, Verdict, VerdictRequest, VerdictsPage,
};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::http::access::{HostAccess, Person, ViewAccess};
use crate::http::blocking::blocking;
use crate::http::error::AppError;
use crate::http::queries::{MAX_LIMIT, given, limit, number, time};
use crate::http::state::AppState;
use crate::http::views::record_view;
use crate::store::{
    FleetAlert, FleetQuery, HoldQuery, NewVerdict, StateChange, StoredHold, VerdictOutcome,
};

/// How often a long poll looks for a verdict.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The view of a stored fleet alert.
pub(crate) fn fleet_view(a: FleetAlert) -> FleetAlertView {
    FleetAlertView {
        id: a.id,
        source: a.source,
        host: a.host,
        rule: a.rule,
        severity: a.severity.as_str().to_owned(),
        tags: a.tags,
        output: a.output,
        seq: a.seq,
        trigger_seq: a.trigger_seq,
        time_ns: a.time_ns,
        time: auditloop_model::WallTime(a.time_ns).to_string(),
        last_time_ns: a.last_time_ns,
        count: a.count,
        state: a.state,
        state_by: a.state_by,
        state_ns: a.state_ns,
        state_comment: a.state_comment,
        actions: a
            .actions
            .into_iter()
            .map(|x| ActionView {
                seq: x.seq,
                action: x.action,
                ok: x.ok,
                detail: x.detail,
            })
            .collect(),
    }
}

/// Parameters of `GET /v1/fleet/alerts`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct FleetParams {
    host: Option<String>,
    rule: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

fn parsed<T>(
    name: &str,
    value: Option<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, AppError> {
    given(value)
        .map(|v| {
            parse(&v).ok_or_else(|| AppError::BadRequest(format!("{name}: unknown value {v:?}")))
        })
        .transpose()
}

/// `GET /v1/fleet/alerts`.
pub(super) async fn alerts(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Result<Json<FleetAlertsPage>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = limit(p.limit.as_deref())?;
    let query = FleetQuery {
        host: given(p.host),
        rule: given(p.rule),
        source: parsed("source", p.source, AlertSource::parse)?,
        min_severity: parsed("severity", p.severity, |s| s.parse::<Severity>().ok())?,
        state: parsed("state", p.state, AlertState::parse)?,
        trigger_seq: None,
        since_ns: time("since", p.since.as_deref())?,
        until_ns: time("until", p.until.as_deref())?,
        before: number("before", p.before.as_deref())?,
        after: number("after", p.after.as_deref())?,
        limit: limit + 1,
    };
    let mut rows = blocking(state.store(), move |s| s.fleet_alerts(&query)).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|a| a.id)
    } else {
        None
    };
    Ok(Json(FleetAlertsPage {
        alerts: rows.into_iter().map(fleet_view).collect(),
        next,
    }))
}

/// `GET /v1/fleet/alerts/{id}`.
pub(super) async fn alert(
    _: ViewAccess,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<FleetAlertDetail>, AppError> {
    let found = blocking(state.store(), move |s| {
        let Some(a) = s.fleet_alert(id)? else {
            return Ok(None);
        };
        let trigger = match a.trigger_seq {
            Some(t) => s.record(&a.host, t)?,
            None => None,
        };
        let history = s.audit_log(Some(&format!("alert:{id}")))?;
        Ok(Some((a, trigger, history)))
    })
    .await?;
    let Some((a, trigger, history)) = found else {
        return Err(AppError::NotFound(format!("no fleet alert {id}")));
    };
    Ok(Json(FleetAlertDetail {
        alert: fleet_view(a),
        trigger: trigger.map(record_view),
        history: history
            .into_iter()
            .map(|e| StateChangeView {
                time_ns: e.time_ns,
                who: e.who,
                state: e.detail["to"].as_str().unwrap_or_default().to_owned(),
                comment: e.detail["comment"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
    }))
}

/// `POST /v1/fleet/alerts/{id}/state` (approver or admin).
pub(super) async fn set_state(
    person: Person,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<StateRequest>,
) -> Result<Json<FleetAlertView>, AppError> {
    person.require(Role::Approver, "changing an alert's state")?;
    let by = person.name().to_owned();
    let now = auditloop_model::WallTime::now().0;
    let changed = blocking(state.store(), move |s| {
        s.set_alert_state(&StateChange {
            id,
            state: body.state,
            by: &by,
            comment: &body.comment,
            now_ns: now,
        })
    })
    .await?;
    changed
        .map(|a| Json(fleet_view(a)))
        .ok_or_else(|| AppError::NotFound(format!("no fleet alert {id}")))
}

/// One hold, as `GET /v1/holds` lists it.
#[derive(Clone, Debug, Serialize)]
pub(super) struct HoldView {
    host: String,
    hold: u64,
    rule: String,
    pid: u32,
    comm: String,
    exe: String,
    state: String,
    stopped_by: String,
    requested_ns: u64,
    timeout_ms: u64,
    default: String,
    decided_by: String,
    latency_us: Option<u64>,
    detail: String,
    verdict: Option<Verdict>,
}

impl From<StoredHold> for HoldView {
    fn from(h: StoredHold) -> HoldView {
        HoldView {
            host: h.host,
            hold: h.hold,
            rule: h.rule,
            pid: h.pid,
            comm: h.comm,
            exe: h.exe,
            state: h.state,
            stopped_by: h.stopped_by,
            requested_ns: h.requested_ns,
            timeout_ms: h.timeout_ms,
            default: h.default,
            decided_by: h.decided_by,
            latency_us: h.latency_us,
            detail: h.detail,
            verdict: h.verdict,
        }
    }
}

/// Parameters of `GET /v1/holds`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct HoldParams {
    host: Option<String>,
    state: Option<String>,
}

/// `GET /v1/holds` (`state=waiting` for the waiting ones).
pub(super) async fn holds(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<HoldParams>, QueryRejection>,
) -> Result<Json<Vec<HoldView>>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let waiting = match given(p.state).as_deref() {
        None => false,
        Some("waiting") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "state: unknown value {other:?} (waiting)"
            )));
        }
    };
    let query = HoldQuery {
        host: given(p.host),
        waiting,
        limit: MAX_LIMIT,
    };
    let rows = blocking(state.store(), move |s| s.holds(&query)).await?;
    Ok(Json(rows.into_iter().map(HoldView::from).collect()))
}

/// `POST /v1/holds/{host}/{id}/verdict` (approver or admin).
pub(super) async fn verdict(
    person: Person,
    State(state): State<AppState>,
    Path((host, hold)): Path<(String, u64)>,
    Json(body): Json<VerdictRequest>,
) -> Result<(StatusCode, Json<Verdict>), AppError> {
    let v = decide_hold(&state, &person, host, hold, body.decision, body.comment).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Parameters of `GET /v1/hosts/{host}/verdicts`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct VerdictParams {
    after: Option<String>,
    wait_ms: Option<String>,
}

/// `GET /v1/hosts/{host}/verdicts` (the host's own token).
pub(super) async fn host_verdicts(
    access: HostAccess,
    State(state): State<AppState>,
    params: Result<Query<VerdictParams>, QueryRejection>,
) -> Result<Json<VerdictsPage>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let after = number::<i64>("after", p.after.as_deref())?.unwrap_or(0);
    let wait = number::<u64>("wait_ms", p.wait_ms.as_deref())?
        .unwrap_or(0)
        .min(MAX_WAIT_MS);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
    let mut wait = crate::changes::ChangeWait::new(state.store().as_ref(), POLL_EVERY);
    loop {
        let host = access.host.clone();
        let verdicts = blocking(state.store(), move |s| s.verdicts(&host, after)).await?;
        if !verdicts.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(VerdictsPage { verdicts }));
        }
        wait.next(Some(deadline)).await;
    }
}

/// Records a verdict for `person`; the error says why not.
pub async fn decide_hold(
    state: &AppState,
    person: &Person,
    host: String,
    hold: u64,
    decision: Decision,
    comment: String,
) -> Result<auditloop_protocol::api::holds::Verdict, AppError> {
    person.require(crate::auth::Role::Approver, "deciding a hold")?;
    let by = person.name().to_owned();
    let now = auditloop_model::WallTime::now().0;
    let h = host.clone();
    let outcome = blocking(state.store(), move |s| {
        s.record_verdict(&NewVerdict {
            host: &h,
            hold,
            decision,
            by: &by,
            comment: &comment,
            now_ns: now,
        })
    })
    .await?;
    match outcome {
        VerdictOutcome::Recorded(v) => {
            tracing::info!(
                host,
                hold,
                decision = decision.as_str(),
                by = v.by,
                "hold verdict recorded"
            );
            Ok(v)
        }
        VerdictOutcome::AlreadyDecided(v) => Err(AppError::Status(
            axum::http::StatusCode::CONFLICT,
            format!(
                "hold {hold} of {host} was decided already ({} by {})",
                v.decision, v.by
            ),
        )),
        VerdictOutcome::Closed(state) => Err(AppError::Status(
            axum::http::StatusCode::CONFLICT,
            format!("hold {hold} of {host} is over already ({state})"),
        )),
        VerdictOutcome::Unknown => {
            Err(AppError::NotFound(format!("no hold {hold} of host {host}")))
        }
    }
}
