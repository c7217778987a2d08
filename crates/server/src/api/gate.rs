//! The rules every request passes before it is routed, and the header
//! every answer gets, as plain checks in one service around the router.
//!
//! In order: the head's size (431, [`bare::head_refusal`]), the `Host`
//! allowlist (421), CORS when origins are configured (tower-http's layer,
//! between the two stages, as before), shutdown (503: new work is refused,
//! probes still answer) and the content-type rule (415). Every answer from
//! behind CORS carries `X-Content-Type-Options: nosniff`, refusals too;
//! without CORS that is every answer.
//!
//! They were `from_fn` middleware layered on the router, which wraps each
//! route: per request and per layer, the service stack below was cloned
//! into a box and its future boxed. `/healthz` on one agent answered about
//! a quarter more requests a second once they were one service (README,
//! Performance).

use std::any::Any;
use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{Either, Map, Ready, ready};
use tower::util::Either as Branch;
use tower::{Layer, Service};
use tower_http::catch_panic::{CatchPanic, CatchPanicLayer};
use tower_http::cors::Cors;

use super::error::{ApiError, ErrorCode};
use super::{AppState, Services, bare, browser, paths};

/// One check: `Some` is the answer instead of routing the request.
type Check = fn(&Services, &Request) -> Option<Response>;

type Answer = Result<Response, Infallible>;

/// The checks in front of CORS.
pub(super) const OUTER: &[Check] = &[head, host];
/// The checks behind CORS.
pub(super) const INNER: &[Check] = &[draining, content_type];
/// All of them, when there is no CORS layer between.
pub(super) const ALL: &[Check] = &[head, host, draining, content_type];

fn head(_: &Services, req: &Request) -> Option<Response> {
    bare::head_refusal(req)
}

fn host(services: &Services, req: &Request) -> Option<Response> {
    browser::host_refusal(&services.access, req)
}

fn content_type(_: &Services, req: &Request) -> Option<Response> {
    browser::content_type_refusal(req)
}

/// Refuses new work once shutdown has begun; probes still answer.
fn draining(services: &Services, req: &Request) -> Option<Response> {
    if !services.draining.is_cancelled() {
        return None;
    }
    let path = req.uri().path();
    if path == paths::HEALTHZ || path == paths::READYZ || path == paths::METRICS {
        return None;
    }
    let refusal = ApiError::new(
        ErrorCode::ShuttingDown,
        "the agent is shutting down; retry on another agent",
    );
    Some(refusal.into_response())
}

fn nosniff(answer: Answer) -> Answer {
    let Ok(mut response) = answer;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

type PanicAnswer = fn(Box<dyn Any + Send + 'static>) -> Response;

fn panic_answer(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}

/// What the outer gate passes requests to: CORS and the inner gate, or
/// the router itself.
type Behind = Branch<Cors<Gate<Router>>, Router>;

/// The API as each connection runs it: a handler that panics answers 500,
/// the rules in front, then the router.
#[derive(Clone)]
pub struct App(CatchPanic<Gate<Behind>, PanicAnswer>);

impl App {
    pub(super) fn new(router: Router, state: AppState) -> App {
        let gate = match state.access.cors() {
            Some(cors) => {
                let inner = Gate::answering(router, state.clone(), INNER);
                Gate::checking(Branch::Left(cors.layer(inner)), state, OUTER)
            }
            None => Gate::answering(Branch::Right(router), state, ALL),
        };
        App(CatchPanicLayer::custom(panic_answer as PanicAnswer).layer(gate))
    }
}

impl<B> Service<axum::http::Request<B>> for App
where
    CatchPanic<Gate<Behind>, PanicAnswer>: Service<axum::http::Request<B>>,
{
    type Response =
        <CatchPanic<Gate<Behind>, PanicAnswer> as Service<axum::http::Request<B>>>::Response;
    type Error = <CatchPanic<Gate<Behind>, PanicAnswer> as Service<axum::http::Request<B>>>::Error;
    type Future =
        <CatchPanic<Gate<Behind>, PanicAnswer> as Service<axum::http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        self.0.call(req)
    }
}

/// Runs `checks` on each request, then `inner` when none answered; `finish`
/// is applied to every answer.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: AppState,
    checks: &'static [Check],
    finish: fn(Answer) -> Answer,
}

impl<S> Gate<S> {
    /// A gate whose answers carry `nosniff` (the one nearest the router).
    pub(super) fn answering(inner: S, state: AppState, checks: &'static [Check]) -> Self {
        Gate {
            inner,
            state,
            checks,
            finish: nosniff,
        }
    }

    /// A gate that leaves answers as they are.
    pub(super) fn checking(inner: S, state: AppState, checks: &'static [Check]) -> Self {
        Gate {
            inner,
            state,
            checks,
            finish: std::convert::identity,
        }
    }
}

impl<S, B> Service<axum::http::Request<B>> for Gate<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Answer>, Map<S::Future, fn(Answer) -> Answer>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let req = req.map(Body::new);
        for check in self.checks {
            if let Some(refusal) = check(&self.state, &req) {
                return Either::Left(ready((self.finish)(Ok(refusal))));
            }
        }
        Either::Right(self.inner.call(req).map(self.finish))
    }
}
