//! The one error type of the HTTP API ([`AppError`]) and its answers.
//!
//! Every error is answered with an [`ErrorBody`]: `error` (a human-readable reason), plus `expected_seq` on
//! a 409 and `damage` and `seq` on a 422; a 401 also carries `WWW-Authenticate: Bearer`.

use auditloop_journal::Damage;
use auditloop_protocol::api::{DAMAGE_CHAIN_FORK, ErrorBody};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
    /// 409: the batch does not continue the stored chain.
    #[error("{error}")]
    Gap {
        /// Reason.
        error: String,
        /// The sequence number expected next.
        expected_seq: u64,
    },
    /// 422: the batch failed verification; nothing of it was stored.
    #[error("{error}")]
    Unprocessable {
        /// Reason.
        error: String,
        /// Kind of damage (`hash_mismatch`, `broken_link`, … or `chain_fork`).
        damage: String,
        /// The sequence number concerned.
        seq: u64,
    },
    /// Other status codes from the HTTP layer (such as a body that could not be read).
    #[error("{1}")]
    Status(StatusCode, String),
    /// 500.
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
            AppError::Gap { .. } => StatusCode::CONFLICT,
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
            AppError::Unprocessable { error, damage, seq } => ErrorBody {
                error: error.clone(),
                damage: Some(damage.clone()),
                seq: Some(*seq),
                ..ErrorBody::default()
            },
            AppError::Unauthorized(_)
            | AppError::Forbidden(_)
            | AppError::BadRequest(_)
            | AppError::NotFound(_)
            | AppError::TooLarge(_)
            | AppError::Status(..)
            | AppError::Internal(_) => ErrorBody {
                error: self.to_string(),
                ..ErrorBody::default()
            },
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

impl From<Reject> for AppError {
    fn from(reject: Reject) -> AppError {
        let error = reject.to_string();
        match reject {
            Reject::Malformed(_) => AppError::BadRequest(error),
            Reject::Gap { expected_seq, .. } => AppError::Gap {
                error,
                expected_seq,
            },
            Reject::Fork { seq, .. } => AppError::Unprocessable {
                error: format!("chain fork: {error}"),
                damage: DAMAGE_CHAIN_FORK.into(),
                seq,
            },
            Reject::Damaged { seq, damage, .. } => AppError::Unprocessable {
                error,
                damage: damage_name(damage),
                seq,
            },
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        AppError::Internal(e.to_string())
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> AppError {
        match e {
            IngestError::Decode(e) => AppError::BadRequest(e.to_string()),
            IngestError::Rejected(reject) => reject.into(),
            // A concurrent writer moved the host on: the shipper retries (503 is retried).
            IngestError::Store(StoreError::Conflict(host)) => AppError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("host {host}: batch raced another writer; retry"),
            ),
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

    use super::{AppError, damage_name};
    use crate::ingest::Reject;

    #[test]
    fn damage_names_are_snake_case() {
        assert_eq!(damage_name(Damage::HashMismatch), "hash_mismatch");
        assert_eq!(damage_name(Damage::BadSignature), "bad_signature");
    }

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
        assert!(
            matches!(fork, AppError::Unprocessable { ref damage, seq: 3, .. } if damage == "chain_fork")
        );
        let bad: AppError = Reject::Malformed("m".into()).into();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn bodies_carry_the_fields_of_their_status() {
        let value = |e: AppError| serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            value(AppError::Gap {
                error: "g".into(),
                expected_seq: 4
            }),
            json!({ "error": "g", "expected_seq": 4 })
        );
        assert_eq!(
            value(AppError::Unprocessable {
                error: "u".into(),
                damage: "torn".into(),
                seq: 9
            }),
            json!({ "error": "u", "damage": "torn", "seq": 9 })
        );
        assert_eq!(
            value(AppError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "s".into()
            )),
            json!({ "error": "s" })
        );
    }
}
