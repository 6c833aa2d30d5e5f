//! The bound on batches in progress ([`BatchLimit`]): at most `--max-concurrent-batches` batch bodies are
//! read, decompressed, verified and stored at once; beyond, the route answers 429 with `Retry-After: 1` at
//! once instead of queueing.
//!
//! A batch takes its place when its handler first reads the body, so requests refused before that (no
//! token, a wrong one) never take one, and keeps it until its handler has finished, even when the client
//! has gone away meanwhile: the handler runs to completion on a task of its own, so the bound holds for
//! the work a departed client left behind too.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::http::error::AppError;
use crate::metrics::{self, Refusal};

/// Default `--max-concurrent-batches`: four per core.
pub fn default_max_concurrent_batches() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 4
}

/// A tower layer bounding how many batches are in progress at once (see the module documentation).
#[derive(Clone, Debug)]
pub struct BatchLimit {
    places: Arc<Semaphore>,
    max: usize,
}

impl BatchLimit {
    /// At most `max` batches at once (at least one).
    pub fn new(max: usize) -> BatchLimit {
        let max = max.max(1);
        BatchLimit {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl<S> Layer<S> for BatchLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limit: self.clone(),
        }
    }
}

/// A service behind a [`BatchLimit`].
#[derive(Clone, Debug)]
pub struct Limited<S> {
    inner: S,
    limit: BatchLimit,
}

impl<S> Service<Request> for Limited<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let place = Arc::new(Place {
            places: Arc::clone(&self.limit.places),
            state: Mutex::new(PlaceState::NotYet),
        });
        let request = request.map(|body| {
            Body::new(GatedBody {
                inner: body,
                place: Arc::clone(&place),
                admitted: false,
            })
        });
        let handler = self.inner.call(request);
        let max = self.limit.max;
        // On a task of its own, so the place is held until the handler's work is done even when the
        // client leaves and hyper drops this future.
        let task = tokio::spawn(async move {
            let answer = handler.await;
            let refused = place.release();
            (answer, refused)
        });
        Box::pin(async move {
            match task.await {
                Ok((_, true)) => {
                    metrics::refused(Refusal::RateLimited);
                    Ok(too_many(max))
                }
                Ok((Ok(response), false)) => Ok(response),
                Ok((Err(never), false)) => match never {},
                Err(e) => Ok(AppError::Internal(format!("batch task: {e}")).into_response()),
            }
        })
    }
}

/// The 429 answer.
fn too_many(max: usize) -> Response {
    let mut response = AppError::Status(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{max} batches are in progress already; retry"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// One request's place among the batches in progress.
struct Place {
    places: Arc<Semaphore>,
    state: Mutex<PlaceState>,
}

enum PlaceState {
    /// The body has not been read yet.
    NotYet,
    /// Holding a place (given back when dropped).
    Held { _permit: OwnedSemaphorePermit },
    /// There was none: the answer is 429.
    Refused,
    /// The handler finished.
    Released,
}

impl Place {
    /// Takes a place if there is one; false if the bound is reached (or the handler finished).
    fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            PlaceState::NotYet => match Arc::clone(&self.places).try_acquire_owned() {
                Ok(permit) => {
                    *state = PlaceState::Held { _permit: permit };
                    true
                }
                Err(_) => {
                    *state = PlaceState::Refused;
                    false
                }
            },
            PlaceState::Held { .. } => true,
            PlaceState::Refused | PlaceState::Released => false,
        }
    }

    /// Gives the place back; true if the request was refused one.
    fn release(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let refused = matches!(*state, PlaceState::Refused);
        *state = PlaceState::Released;
        refused
    }
}

/// Why a body cannot be read: no place for it.
#[derive(Debug, thiserror::Error)]
#[error("too many batches in progress")]
struct NoPlace;

/// Whether reading a body failed because it got no place (the answer is then 429, not the handler's).
pub(super) fn refused_a_place(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<NoPlace>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The request body, which takes a place when first read.
struct GatedBody {
    inner: Body,
    place: Arc<Place>,
    admitted: bool,
}

impl http_body::Body for GatedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if !self.admitted {
            if !self.place.take() {
                return Poll::Ready(Some(Err(NoPlace.into())));
            }
            self.admitted = true;
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::time::Duration;

    use auditloop_protocol::api::ErrorBody;
    use axum::Router;
    use axum::body::{Body, Bytes, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use axum::response::Response;
    use axum::routing::post;
    use tokio::sync::Notify;
    use tokio::task::JoinHandle;
    use tower::ServiceExt;

    use super::BatchLimit;

    /// Signals between a test and its slow handler.
    #[derive(Clone, Default)]
    struct Signals {
        entered: Arc<Notify>,
        release: Arc<Notify>,
    }

    /// `/slow` reads its body, signals `entered` and answers after `release`; `/refuse` answers 401
    /// without reading its body. Both behind `limit`.
    fn app(limit: &BatchLimit, signals: &Signals) -> Router {
        let slow = {
            let signals = signals.clone();
            move |body: Bytes| async move {
                signals.entered.notify_one();
                signals.release.notified().await;
                body.len().to_string()
            }
        };
        Router::new()
            .route("/slow", post(slow).layer(limit.clone()))
            .route(
                "/refuse",
                post(|| async { StatusCode::UNAUTHORIZED }).layer(limit.clone()),
            )
    }

    fn post_to(path: &str) -> Request<Body> {
        Request::post(path).body(Body::from("batch")).unwrap()
    }

    async fn call(app: &Router, path: &str) -> Response {
        tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(post_to(path)))
            .await
            .expect("an answer at once")
            .unwrap()
    }

    /// Starts a `/slow` request and waits until its handler holds the place.
    async fn hold(app: &Router, signals: &Signals) -> JoinHandle<Result<Response, Infallible>> {
        let request = tokio::spawn(app.clone().oneshot(post_to("/slow")));
        tokio::time::timeout(Duration::from_secs(5), signals.entered.notified())
            .await
            .expect("the handler runs");
        request
    }

    async fn answer(request: JoinHandle<Result<Response, Infallible>>) -> Response {
        let Ok(response) = request.await.unwrap();
        response
    }

    async fn assert_too_many(response: Response, max: usize) {
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body.error,
            format!("{max} batches are in progress already; retry")
        );
    }

    #[tokio::test]
    async fn beyond_the_bound_the_answer_is_429_at_once() {
        let limit = BatchLimit::new(2);
        let signals = Signals::default();
        let app = app(&limit, &signals);
        let first = hold(&app, &signals).await;
        let second = hold(&app, &signals).await;
        assert_too_many(call(&app, "/slow").await, 2).await;
        signals.release.notify_waiters();
        for held in [first, second] {
            let response = answer(held).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(to_bytes(response.into_body(), 64).await.unwrap(), "5");
        }
        // The places are back.
        let third = hold(&app, &signals).await;
        signals.release.notify_one();
        assert_eq!(answer(third).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_refused_before_its_body_is_read_takes_no_place() {
        let limit = BatchLimit::new(1);
        let signals = Signals::default();
        let app = app(&limit, &signals);
        let held = hold(&app, &signals).await;
        assert_eq!(
            call(&app, "/refuse").await.status(),
            StatusCode::UNAUTHORIZED
        );
        signals.release.notify_one();
        assert_eq!(answer(held).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_place_is_held_until_the_handler_ends_even_if_the_client_left() {
        let limit = BatchLimit::new(1);
        let signals = Signals::default();
        let app = app(&limit, &signals);
        let held = hold(&app, &signals).await;
        // The client goes away: its answer is dropped, the handler keeps running.
        held.abort();
        let _ = held.await;
        assert_too_many(call(&app, "/slow").await, 1).await;
        signals.release.notify_one();
        // Once the handler has ended, a new batch gets the place.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::spawn(app.clone().oneshot(post_to("/slow")));
            let entered =
                tokio::time::timeout(Duration::from_millis(100), signals.entered.notified()).await;
            if entered.is_ok() {
                signals.release.notify_one();
                assert_eq!(answer(next).await.status(), StatusCode::OK);
                break;
            }
            assert_too_many(answer(next).await, 1).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the place never came back"
            );
        }
    }
}
