//! Rule tuning across the fleet (any console role): a host group's baseline and the rules it proposes
//! ([`RULES_LEARN`], [`RULES_LEARN_YAML`]), a rule change replayed over stored events ([`RULES_DIFF`]), and
//! the per-rule hit statistics ([`RULES_STATS`], [`RULES_STATS_CSV`]).
//!
//! Learning and diffing read up to a million stored events each, so they run on the blocking pool, at
//! most [`MAX_REPLAYS`](crate::http::state::MAX_REPLAYS) at once (past that: 503 at once, retry), and each
//! within its event budget (`max_events`; past it the answer says `truncated`). Rule files come in the
//! body (at most [`MAX_DIFF_BODY`] bytes) and are compiled as the agent would (without resolving paths on
//! the collector's own disk): an error is a 400 naming `old.yaml:line:col` or `new.yaml:line:col`. Hosts
//! are chosen as [`crate::groups`] says; none chosen is a 404, an unknown group a 404 naming the groups
//! there are.
//!
//! [`RULES_LEARN`]: auditloop_protocol::api::rules::RULES_LEARN
//! [`RULES_LEARN_YAML`]: auditloop_protocol::api::rules::RULES_LEARN_YAML
//! [`RULES_DIFF`]: auditloop_protocol::api::rules::RULES_DIFF
//! [`RULES_STATS`]: auditloop_protocol::api::rules::RULES_STATS
//! [`RULES_STATS_CSV`]: auditloop_protocol::api::rules::RULES_STATS_CSV

use auditloop_learn::{DiffReport, Options, Proposal};
use auditloop_protocol::api::rules::{
    DEFAULT_EXAMPLES, DEFAULT_MAX_EVENTS, DiffRequest, HostEvents, MAX_DIFF_BODY, MAX_EVENTS,
    MAX_EXAMPLES,
};
use auditloop_rules::{RuleErrors, RuleSet};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::auth::valid_host_name;
use crate::groups::{GroupError, Selection};
use crate::http::access::ViewAccess;
use crate::http::blocking::{blocking, blocking_work};
use crate::http::error::AppError;
use crate::http::queries::{given, number, time};
use crate::http::state::AppState;
use crate::store::Store;
use crate::tuning::{self, BaselineSummary, Read, RuleStats, Window};

/// Rule errors quoted in a 400 at most.
const MAX_QUOTED_ERRORS: usize = 20;

/// Parameters of a learn (all optional but a group or a pattern).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LearnParams {
    /// Host group.
    pub group: Option<String>,
    /// Host-name glob pattern.
    pub hosts: Option<String>,
    /// Window start.
    pub since: Option<String>,
    /// Window end.
    pub until: Option<String>,
    /// Events read at most.
    pub max_events: Option<String>,
    /// Config paths, comma-separated (default `/etc/`).
    pub config_paths: Option<String>,
}

/// Parameters of the statistics (all optional).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StatsParams {
    /// Host group.
    pub group: Option<String>,
    /// Host-name glob pattern.
    pub hosts: Option<String>,
    /// Alerts raised at or after.
    pub since: Option<String>,
    /// Alerts raised before.
    pub until: Option<String>,
}

/// The answer of a learn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LearnAnswer {
    /// The hosts chosen, in words.
    pub selection: String,
    /// Each chosen host and its events read.
    pub hosts: Vec<HostEvents>,
    /// Events read.
    pub events: u64,
    /// The event budget.
    pub max_events: u64,
    /// Whether the budget ended the read early.
    pub truncated: bool,
    /// Stored records that did not decode (skipped).
    pub undecodable: u64,
    /// The baseline, in counts.
    pub baseline: BaselineSummary,
    /// The proposal: `yaml` (the rules file, headed by where it was learned), `rules`, `skipped`.
    #[serde(flatten)]
    pub proposal: Proposal,
}

/// The answer of a diff: the read, and the report's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffAnswer {
    /// The hosts chosen, in words.
    pub selection: String,
    /// Each chosen host and its events replayed.
    pub hosts: Vec<HostEvents>,
    /// The event budget.
    pub max_events: u64,
    /// Whether the budget ended the replay early.
    pub truncated: bool,
    /// Stored records that did not decode (skipped).
    pub undecodable: u64,
    /// `events`, `added`, `removed`, `unchanged` and `rules` (each example with its `host`).
    #[serde(flatten)]
    pub report: DiffReport,
}

/// `GET /v1/rules/learn`.
pub(super) async fn learn(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<LearnParams>, QueryRejection>,
) -> Result<Json<LearnAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    Ok(Json(run_learn(&state, p).await?))
}

/// `GET /v1/rules/learn.yaml`.
pub(super) async fn learn_yaml(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<LearnParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let answer = run_learn(&state, p).await?;
    Ok(yaml_download(answer.proposal.yaml))
}

/// The proposed rules file as an attachment.
pub(crate) fn yaml_download(yaml: String) -> Response {
    (
        [
            (CONTENT_TYPE, "application/yaml; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"learned.yaml\""),
        ],
        yaml,
    )
        .into_response()
}

/// `POST /v1/rules/diff`.
pub(super) async fn diff(
    _: ViewAccess,
    State(state): State<AppState>,
    body: Result<Json<DiffRequest>, JsonRejection>,
) -> Result<Json<DiffAnswer>, AppError> {
    let Json(request) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::TooLarge(format!("body exceeds {MAX_DIFF_BODY} bytes"))
        }
        _ => AppError::BadRequest(e.body_text()),
    })?;
    Ok(Json(run_diff(&state, request).await?))
}

/// `GET /v1/rules/stats`.
pub(super) async fn stats(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<RuleStats>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    Ok(Json(run_stats(&state, p).await?))
}

/// `GET /v1/rules/stats.csv`.
pub(super) async fn stats_csv(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let stats = run_stats(&state, p).await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"rule-stats.csv\"",
            ),
        ],
        stats.csv(),
    )
        .into_response())
}

/// Learns a baseline from the hosts `p` chooses and proposes rules from it.
pub(crate) async fn run_learn(state: &AppState, p: LearnParams) -> Result<LearnAnswer, AppError> {
    let selection = select(state, p.group, p.hosts)?;
    let window = window(p.since.as_deref(), p.until.as_deref())?;
    let max_events = max_events(p.max_events.as_deref())?;
    let options = Options {
        config_paths: config_paths(p.config_paths)?,
        ..Options::default()
    };
    let turn = replay_turn(state)?;
    blocking_work(state.store(), move |store| {
        let _turn = turn;
        let hosts = chosen(store, &selection)?;
        let learned = tuning::learn(store, &hosts, window, max_events, &options)?;
        if let Err(errors) = learned.proposal.compile("learned.yaml") {
            return Err(AppError::Internal(format!(
                "the proposal does not compile: {errors}"
            )));
        }
        let mut proposal = learned.proposal;
        proposal.yaml = format!(
            "{}{}",
            header(&selection, window, &learned.read),
            proposal.yaml
        );
        let read = learned.read;
        Ok(LearnAnswer {
            selection: selection.describe(),
            hosts: read.hosts,
            events: read.events,
            max_events: read.max_events,
            truncated: read.truncated,
            undecodable: read.undecodable,
            baseline: learned.baseline,
            proposal,
        })
    })
    .await
}

/// Replays the hosts `request` chooses through its two rule sets.
pub(crate) async fn run_diff(
    state: &AppState,
    request: DiffRequest,
) -> Result<DiffAnswer, AppError> {
    let selection = select(state, request.group, request.hosts)?;
    let window = window(request.since.as_deref(), request.until.as_deref())?;
    let max_events = match request.max_events {
        Some(n) => checked_max_events(n)?,
        None => DEFAULT_MAX_EVENTS,
    };
    let examples = request.examples.unwrap_or(DEFAULT_EXAMPLES);
    if examples > MAX_EXAMPLES {
        return Err(AppError::BadRequest(format!(
            "examples={examples}: at most {MAX_EXAMPLES}"
        )));
    }
    let (old_text, new_text) = (request.old, request.new);
    let turn = replay_turn(state)?;
    blocking_work(state.store(), move |store| {
        let _turn = turn;
        let old = compile("old.yaml", &old_text)?;
        let new = compile("new.yaml", &new_text)?;
        let hosts = chosen(store, &selection)?;
        let diffed = tuning::diff(store, &hosts, window, max_events, &old, &new, examples)?;
        Ok(DiffAnswer {
            selection: selection.describe(),
            hosts: diffed.read.hosts,
            max_events: diffed.read.max_events,
            truncated: diffed.read.truncated,
            undecodable: diffed.read.undecodable,
            report: diffed.report,
        })
    })
    .await
}

/// The rule statistics over the alerts `p` chooses.
pub(crate) async fn run_stats(state: &AppState, p: StatsParams) -> Result<RuleStats, AppError> {
    let selection = match (given(p.group), given(p.hosts)) {
        (None, None) => None,
        (group, hosts) => Some(
            state
                .groups()
                .selection(group.as_deref(), hosts.as_deref())
                .map_err(group_error)?,
        ),
    };
    let window = window(p.since.as_deref(), p.until.as_deref())?;
    let now = auditloop_model::WallTime::now().0;
    blocking(state.store(), move |s| {
        tuning::statistics(s, now, window, selection.as_ref())
    })
    .await
}

/// The hosts a request chose, from its group and pattern.
fn select(
    state: &AppState,
    group: Option<String>,
    hosts: Option<String>,
) -> Result<Selection, AppError> {
    let (group, hosts) = (given(group), given(hosts));
    state
        .groups()
        .selection(group.as_deref(), hosts.as_deref())
        .map_err(group_error)
}

fn group_error(e: GroupError) -> AppError {
    match e {
        GroupError::UnknownGroup { .. } => AppError::NotFound(e.to_string()),
        GroupError::BadName(_)
        | GroupError::BadPattern { .. }
        | GroupError::Empty(_)
        | GroupError::NoSelection => AppError::BadRequest(e.to_string()),
    }
}

/// The stored hosts `selection` chooses (replaced enrollments never); a 404 when there are none.
fn chosen(store: &dyn Store, selection: &Selection) -> Result<Vec<String>, AppError> {
    let hosts = store.hosts()?;
    let names = hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|n| valid_host_name(n));
    let chosen = selection.choose(names);
    if chosen.is_empty() {
        return Err(AppError::NotFound(format!(
            "no stored host matches {}",
            selection.describe()
        )));
    }
    Ok(chosen)
}

fn replay_turn(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
    state.replay_turn().ok_or_else(|| {
        AppError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            "other learns or rules diffs are running; retry shortly".into(),
        )
    })
}

fn window(since: Option<&str>, until: Option<&str>) -> Result<Window, AppError> {
    let window = Window {
        since_ns: time("since", since)?,
        until_ns: time("until", until)?,
    };
    if let (Some(s), Some(u)) = (window.since_ns, window.until_ns)
        && s >= u
    {
        return Err(AppError::BadRequest(format!(
            "since ({}) is not before until ({})",
            auditloop_model::WallTime(s),
            auditloop_model::WallTime(u)
        )));
    }
    Ok(window)
}

fn max_events(value: Option<&str>) -> Result<u64, AppError> {
    match number::<u64>("max_events", value)? {
        Some(n) => checked_max_events(n),
        None => Ok(DEFAULT_MAX_EVENTS),
    }
}

fn checked_max_events(n: u64) -> Result<u64, AppError> {
    if (1..=MAX_EVENTS).contains(&n) {
        Ok(n)
    } else {
        Err(AppError::BadRequest(format!(
            "max_events={n}: 1 to {MAX_EVENTS}"
        )))
    }
}

fn config_paths(value: Option<String>) -> Result<Vec<String>, AppError> {
    let Some(value) = given(value) else {
        return Ok(Options::default().config_paths);
    };
    let mut paths = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !p.starts_with('/') || p.chars().any(char::is_control) {
            return Err(AppError::BadRequest(format!(
                "config_paths: {p:?} is not an absolute path"
            )));
        }
        paths.push(p.to_owned());
    }
    if paths.is_empty() {
        return Err(AppError::BadRequest(
            "config_paths: give at least one absolute path".into(),
        ));
    }
    Ok(paths)
}

/// Compiles one rules file of a diff; a 400 quoting its errors (the first few) with `file:line:col`.
fn compile(name: &str, text: &str) -> Result<RuleSet, AppError> {
    RuleSet::parse(name, text).map_err(|errors| AppError::BadRequest(quoted(&errors)))
}

fn quoted(errors: &RuleErrors) -> String {
    let all = errors.errors();
    if all.len() <= MAX_QUOTED_ERRORS {
        return errors.to_string();
    }
    let first = RuleErrors(all[..MAX_QUOTED_ERRORS].to_vec()).to_string();
    format!(
        "{first}\n\n{} errors in rules (the first {MAX_QUOTED_ERRORS} shown)",
        all.len()
    )
}

/// The comment heading a proposal made here: which hosts, which window, and what the budget cut.
fn header(selection: &Selection, window: Window, read: &Read) -> String {
    let bound = |ns: Option<u64>| {
        ns.map_or_else(
            || "open".to_owned(),
            |n| auditloop_model::WallTime(n).to_string(),
        )
    };
    let hosts: Vec<&str> = read.hosts.iter().map(|h| h.host.as_str()).collect();
    let mut out = format!(
        "# Learned by auditloop-collector from the stored events of {} ({} hosts: {}),\n\
         # window {} .. {}; {} events read.\n",
        selection.describe(),
        hosts.len(),
        hosts.join(", "),
        bound(window.since_ns),
        bound(window.until_ns),
        read.events,
    );
    if read.truncated {
        let unread: Vec<&str> = read
            .hosts
            .iter()
            .filter(|h| h.events == 0)
            .map(|h| h.host.as_str())
            .collect();
        out.push_str(&format!(
            "# TRUNCATED at max_events={}: later events were not read (hosts not read: {}).\n",
            read.max_events,
            if unread.is_empty() {
                "none".to_owned()
            } else {
                unread.join(", ")
            }
        ));
    }
    out
}

#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;
