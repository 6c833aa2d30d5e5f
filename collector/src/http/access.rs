//! Who may call what: extractors that check the bearer token before a handler runs (and before a batch
//! body is read).
//!
//! | route | allowed | 403 | 401 |
//! |---|---|---|---|
//! | batches of `{host}` | `{host}`'s own token | admin, enrollment, another host's token (raises `forgery`) | none or unknown |
//! | `POST /v1/enroll` | enrollment or admin token | a host token | none or unknown |
//! | queries, console pages | admin, approver or viewer token, or a console session | enrollment or host token | none or unknown |
//! | alert states, hold verdicts | admin or approver (token or session) | viewer, enrollment or host token | none or unknown |
//! | `POST /v1/hosts` | admin token or an admin's session | any other token | none or unknown |
//!
//! A request made with a session cookie that changes anything must also carry the session's CSRF token
//! (`csrf.rs`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::header::COOKIE;
use axum::http::request::Parts;

use crate::alerts::Offender;
use crate::auth::{Identity, Role, TokenDigest, bearer, digest, same, valid_host_name};
use crate::http::blocking::blocking;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::metrics::{self, Refusal};
use crate::session::{self, Session};
use crate::store::Store;

/// A request carrying the token of the host in its path.
#[derive(Clone, Debug)]
pub struct HostAccess {
    /// The host.
    pub host: String,
    /// The peer address (`ip:port`, or `unknown`).
    pub peer: String,
}

/// How a batch request's token relates to the host in its path.
enum BatchToken {
    /// The host's own token.
    Own,
    /// A token of another identity.
    Foreign(Identity),
    /// No token the collector knows.
    Unknown,
}

impl FromRequestParts<AppState> for HostAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let access = host_access(parts, state).await;
        if let Err(error) = &access {
            count_refusal(error);
        }
        access
    }
}

/// Counts a batch request refused before its body is read.
fn count_refusal(error: &AppError) {
    match error {
        AppError::Unauthorized(_) => metrics::refused(Refusal::Unauthorized),
        AppError::Forbidden(_) => metrics::refused(Refusal::ForeignToken),
        AppError::Internal(_) => metrics::failed(),
        AppError::BadRequest(_)
        | AppError::NotFound(_)
        | AppError::TooLarge(_)
        | AppError::Gap { .. }
        | AppError::HostExists
        | AppError::Unprocessable { .. }
        | AppError::Status(..) => metrics::refused(Refusal::BadRequest),
    }
}

/// Checks that a batch request carries the token of the host in its path; refuses (and for another
/// identity's token, raises `forgery`) otherwise.
async fn host_access(parts: &mut Parts, state: &AppState) -> Result<HostAccess, AppError> {
    let Path(host) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let peer = peer(parts);
    let Some(presented) = bearer(&parts.headers).map(digest) else {
        return Err(unknown_token());
    };
    let tokens = state.tokens().clone();
    let lookup = host.clone();
    let token = blocking(state.store(), move |store| {
        if store
            .host_token(&lookup)?
            .is_some_and(|own| same(&own, &presented))
        {
            return Ok(BatchToken::Own);
        }
        Ok(match identify(&tokens, store, &presented)? {
            Some(identity) => BatchToken::Foreign(identity),
            None => BatchToken::Unknown,
        })
    })
    .await?;
    let identity = match token {
        BatchToken::Own => return Ok(HostAccess { host, peer }),
        BatchToken::Unknown => return Err(unknown_token()),
        BatchToken::Foreign(identity) => identity,
    };
    if !valid_host_name(&host) {
        return Err(AppError::BadRequest(format!(
            "invalid host name {host:?} (1 to 253 of A-Z a-z 0-9 . _ -)"
        )));
    }
    let ingest = state.clone();
    let target = host.clone();
    tokio::task::spawn_blocking(move || {
        let offender = Offender {
            token: identity.name(),
            role: identity.role(),
            peer: &peer,
        };
        ingest.ingest().refuse_foreign(&target, &offender)
    })
    .await
    .map_err(|e| AppError::Internal(format!("store task: {e}")))??;
    Err(AppError::Forbidden(format!(
        "this token may not ship batches for host {host}"
    )))
}

/// A request made by a person: with the admin, approver or viewer token as bearer, or with a console
/// session cookie ([`session`](crate::session)).
#[derive(Clone, Debug)]
pub struct Person {
    /// Their role.
    pub role: Role,
    /// The session cookie's value, when the request was made with one (its CSRF token is checked by
    /// [`csrf_guard`](crate::http::csrf_guard)).
    pub session: Option<String>,
}

impl Person {
    /// Who they are in records: their role's name.
    pub fn name(&self) -> &'static str {
        self.role.as_str()
    }

    /// Refuses (403) unless they have at least `role`.
    pub fn require(&self, role: Role, what: &str) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{what} needs the {} role (this is {})",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Person {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if bearer(&parts.headers).is_some() {
            return match presented_identity(parts, state).await? {
                Some(identity) => match Role::of(&identity) {
                    Some(role) => Ok(Person {
                        role,
                        session: None,
                    }),
                    None => Err(AppError::Forbidden(format!(
                        "the {} token is not a person's token (admin, approver or viewer)",
                        identity.role()
                    ))),
                },
                None => Err(unknown_token()),
            };
        }
        match session_of(parts, state) {
            Some((value, s)) => Ok(Person {
                role: s.role,
                session: Some(value),
            }),
            None => Err(unknown_token()),
        }
    }
}

/// The valid session cookie of a request, if any.
pub(crate) fn session_of(parts: &Parts, state: &AppState) -> Option<(String, Session)> {
    let header = parts.headers.get(COOKIE)?.to_str().ok()?;
    let value = session::cookie(header, session::COOKIE)?;
    let s = session::check(
        &state.session_key(),
        value,
        auditloop_model::WallTime::now().0,
    )?;
    Some((value.to_owned(), s))
}

/// A request by a person who may read: any of the three roles.
#[derive(Clone, Debug)]
pub struct ViewAccess(pub Person);

impl FromRequestParts<AppState> for ViewAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Ok(ViewAccess(Person::from_request_parts(parts, state).await?))
    }
}

/// A request carrying the admin token (or an admin's session).
#[derive(Clone, Copy, Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if bearer(&parts.headers).is_some() {
            match presented_identity(parts, state).await? {
                Some(Identity::Admin) => return Ok(AdminAccess),
                Some(_) => {
                    return Err(AppError::Forbidden(
                        "host administration needs the admin token".into(),
                    ));
                }
                None => return Err(unknown_token()),
            }
        }
        let person = Person::from_request_parts(parts, state).await?;
        person.require(Role::Admin, "host administration")?;
        Ok(AdminAccess)
    }
}

/// A request carrying the enrollment token or the admin token.
#[derive(Clone, Debug)]
pub struct EnrollAccess(pub Identity);

impl FromRequestParts<AppState> for EnrollAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match presented_identity(parts, state).await? {
            Some(identity @ (Identity::Admin | Identity::Enrollment)) => Ok(EnrollAccess(identity)),
            Some(Identity::Host(_) | Identity::Approver | Identity::Viewer) => {
                Err(AppError::Forbidden(
                    "enrolling needs the enrollment token or the admin token".into(),
                ))
            }
            None => Err(unknown_token()),
        }
    }
}

/// Whose token the request carries (the admin and enrollment tokens are known without the store).
async fn presented_identity(parts: &Parts, state: &AppState) -> Result<Option<Identity>, AppError> {
    let Some(presented) = bearer(&parts.headers).map(digest) else {
        return Ok(None);
    };
    if let Some(identity) = state.tokens().identify(&presented) {
        return Ok(Some(identity));
    }
    blocking(state.store(), move |store| {
        Ok(store.token_owner(&presented)?.map(Identity::Host))
    })
    .await
}

/// The identity of `presented`: the admin or enrollment token, or a host's.
fn identify(
    tokens: &crate::auth::Tokens,
    store: &dyn Store,
    presented: &TokenDigest,
) -> Result<Option<Identity>, crate::store::StoreError> {
    match tokens.identify(presented) {
        Some(identity) => Ok(Some(identity)),
        None => Ok(store.token_owner(presented)?.map(Identity::Host)),
    }
}

/// The peer address of the connection, if the server recorded it.
fn peer(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string())
}

fn unknown_token() -> AppError {
    AppError::Unauthorized("missing or unknown bearer token".into())
}
