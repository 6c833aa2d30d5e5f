//! The one error type of the HTTP API ([`AppError`]) and its answers.
//!
//! Every error is answered with an [`ErrorBody`]: `error` (a human-readable reason), plus `expected_seq` on
//! a 409 to a batch and `damage` on a 422; a 401 also carries `WWW-Authenticate: Bearer`.
//!
//! No answer ever carries a stored hash, payload or other stored value: a refused batch is told only
//! `refused` and the kind of damage (the details go to the `forgery` alert and the log), a 409 to a batch
//! names only the authenticated host's own next sequence number, a 409 to an enrollment only
//! `host_exists`, and a 500 only that the collector failed (the cause is logged).

use auditloop_protocol::api::{
    DAMAGE_CHAIN_FORK, DAMAGE_WRONG_KEY, ERROR_HOST_EXISTS, ERROR_REFUSED, ErrorBody,
};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::alerts::damage_name;
use crate::ingest::{IngestError, Reject};
use crate::store::StoreError;

/// An HTTP error answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// 401: no token, or an unknown one.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token that does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 400: a malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body exceeds the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 409: the batch does not continue the stored chain of the authenticated host.
    #[error("{error}")]
    Gap {
        /// Reason (naming only the batch's and the host's own sequence numbers).
        error: String,
        /// The sequence number expected next.
        expected_seq: u64,
    },
    /// 409: the host id to enroll is taken.
    #[error("host_exists")]
    HostExists,
    /// 422: the batch failed verification; nothing of it was stored and the host is unchanged.
    #[error("refused: {damage}")]
    Unprocessable {
        /// Kind of damage (`hash_mismatch`, `broken_link`, …, `chain_fork` or `wrong_key`).
        damage: String,
    },
    /// Other status codes from the HTTP layer (such as a body that could not be read).
    #[error("{1}")]
    Status(StatusCode, String),
    /// 500; the reason is logged, not answered.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Gap { .. } | AppError::HostExists => StatusCode::CONFLICT,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Status(status, _) => *status,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer's body.
    pub fn body(&self) -> ErrorBody {
        match self {
            AppError::Gap {
                error,
                expected_seq,
            } => ErrorBody {
                error: error.clone(),
                expected_seq: Some(*expected_seq),
                ..ErrorBody::default()
            },
            AppError::HostExists => ErrorBody {
                error: ERROR_HOST_EXISTS.into(),
                ..ErrorBody::default()
            },
            AppError::Unprocessable { damage } => ErrorBody {
                error: ERROR_REFUSED.into(),
                damage: Some(damage.clone()),
                ..ErrorBody::default()
            },
            AppError::Internal(_) => ErrorBody {
                error: "internal error (see the collector's log)".into(),
                ..ErrorBody::default()
            },
            AppError::Unauthorized(_)
            | AppError::Forbidden(_)
            | AppError::BadRequest(_)
            | AppError::NotFound(_)
            | AppError::TooLarge(_)
            | AppError::Status(..) => ErrorBody {
                error: self.to_string(),
                ..ErrorBody::default()
            },
        }
    }
}

impl From<Reject> for AppError {
    fn from(reject: Reject) -> AppError {
        match reject {
            Reject::Malformed(error) => AppError::BadRequest(error),
            Reject::Gap {
                expected_seq,
                detail,
            } => AppError::Gap {
                error: format!("gap: {detail}"),
                expected_seq,
            },
            Reject::Fork { .. } => AppError::Unprocessable {
                damage: DAMAGE_CHAIN_FORK.into(),
            },
            Reject::Damaged { damage, .. } => AppError::Unprocessable {
                damage: damage_name(damage),
            },
            Reject::Untrusted { .. } => AppError::Unprocessable {
                damage: DAMAGE_WRONG_KEY.into(),
            },
            Reject::PendingFork { expected_seq, .. } => AppError::Gap {
                error: format!(
                    "gap: replayed records differ from pending records; resend from seq {expected_seq} \
                     with a checkpoint"
                ),
                expected_seq,
            },
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::HostExists(_) => AppError::HostExists,
            // A concurrent writer moved the host on: the shipper retries (503 is retried).
            StoreError::Conflict(host) => AppError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("host {host}: batch raced another writer; retry"),
            ),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> AppError {
        match e {
            IngestError::Decode(e) => AppError::BadRequest(e.to_string()),
            IngestError::Rejected(reject) => reject.into(),
            IngestError::NotEnrolled(host) => {
                AppError::Forbidden(format!("this token may not ship batches for host {host}"))
            }
            IngestError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use auditloop_journal::Damage;
    use axum::http::StatusCode;

    use super::AppError;
    use crate::ingest::Reject;
    use crate::store::StoreError;

    #[test]
    fn rejects_map_to_statuses() {
        let gap: AppError = Reject::Gap {
            expected_seq: 7,
            detail: "x".into(),
        }
        .into();
        assert_eq!(gap.status(), StatusCode::CONFLICT);
        let fork: AppError = Reject::Fork {
            seq: 3,
            detail: "x".into(),
        }
        .into();
        assert!(matches!(fork, AppError::Unprocessable { ref damage } if damage == "chain_fork"));
        let untrusted: AppError = Reject::Untrusted { detail: "k".into() }.into();
        assert!(
            matches!(untrusted, AppError::Unprocessable { ref damage } if damage == "wrong_key")
        );
        let bad: AppError = Reject::Malformed("m".into()).into();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let exists: AppError = StoreError::HostExists("web".into()).into();
        assert_eq!(exists.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn bodies_carry_the_fields_of_their_status_and_nothing_stored() {
        let value = |e: AppError| serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            value(AppError::Gap {
                error: "g".into(),
                expected_seq: 4
            }),
            json!({ "error": "g", "expected_seq": 4 })
        );
        let stored = "ab".repeat(32);
        let damaged: AppError = Reject::Damaged {
            seq: 9,
            damage: Damage::Torn,
            detail: format!("prev_hash is not {stored}"),
        }
        .into();
        assert_eq!(
            value(damaged),
            json!({ "error": "refused", "damage": "torn" })
        );
        let fork: AppError = Reject::Fork {
            seq: 2,
            detail: format!("stored hash {stored}"),
        }
        .into();
        assert!(!value(fork).to_string().contains(&stored));
        assert_eq!(
            value(StoreError::HostExists("web".into()).into()),
            json!({ "error": "host_exists" })
        );
        let internal: AppError = StoreError::Corrupt(format!("hash {stored}")).into();
        assert!(!value(internal).to_string().contains(&stored));
        assert_eq!(
            value(AppError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "s".into()
            )),
            json!({ "error": "s" })
        );
    }
}
