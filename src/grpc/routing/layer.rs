//! The tower layer that routes every `antrean.v1` call in cluster mode: reads the request message (bounded by the
//! message limit), decides who answers ([`decide`]) and answers here, forwards, asks the owners in turn, or gathers.
//! Health and reflection always answer here.

use super::decide::{Decision, Standing, Target, decide};
use super::forward::{FORWARDED_BY, Forwarder, deadline_of};
use super::frames::{PREFIX_BYTES, header_status, message_of, read_unary, unary_response};
use super::gather::merge;
use super::key::{Gathering, route_key};
use super::status::{gather_incomplete_status, no_owner_status, reason_of, request_unreadable_status};
use crate::call_layer::{AroundCall, CallFuture, CallLayer, Next};
use crate::cluster::Directory;
use crate::engine::partition::ServingGate;
use crate::grpc::EngineHandle;
use crate::grpc::status::message_too_large_status;
use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::Instant;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::Service;

/// Most partitions asked at once by one gathering call.
pub const GATHER_CONCURRENCY_MAX: usize = 16;

/// What routing needs, shared by every call.
pub struct Routing {
    directory: Arc<Directory>,
    gate: Arc<ServingGate>,
    handle: EngineHandle,
    forwarder: Forwarder,
    forward_calls: bool,
}

/// Routes calls in cluster mode; clones share one directory, forwarder and engine handle.
#[derive(Clone)]
pub struct Route {
    routing: Arc<Routing>,
}

impl Route {
    /// The tower layer for a node whose directory is `directory`, whose partition's gate is `gate` and whose engine
    /// (once it owns its partition) is in `handle`; `forward_calls` as configured.
    #[must_use]
    pub fn layer(
        directory: Arc<Directory>,
        gate: Arc<ServingGate>,
        handle: EngineHandle,
        forward_calls: bool,
    ) -> CallLayer<Route> {
        let forwarder = Forwarder::new(&directory.own().node_name);
        CallLayer(Route { routing: Arc::new(Routing { directory, gate, handle, forwarder, forward_calls }) })
    }
}

type Answer<E> = Result<http::Response<Body>, E>;

impl AroundCall for Route {
    fn call<S: Next>(&self, request: http::Request<Body>, next: S) -> CallFuture<S::Error> {
        Box::pin(route(Arc::clone(&self.routing), next, request))
    }
}

/// A call read whole: its head and request body, and when its caller's deadline passes.
struct Call {
    head: http::request::Parts,
    body: Bytes,
    deadline: Option<Instant>,
}

impl Call {
    fn request(&self) -> http::Request<Body> {
        let mut request = http::Request::new(Body::new(Full::new(self.body.clone())));
        *request.method_mut() = self.head.method.clone();
        *request.uri_mut() = self.head.uri.clone();
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers.clone();
        *request.extensions_mut() = self.head.extensions.clone();
        request
    }
}

async fn route<S: Next>(routing: Arc<Routing>, mut inner: S, request: http::Request<Body>) -> Answer<S::Error> {
    if !request.uri().path().starts_with("/antrean.v1.") {
        return inner.call(request).await;
    }
    let received_at = Instant::now();
    let (head, body) = request.into_parts();
    let body = match Limited::new(body, GRPC_MESSAGE_BYTES_MAX + PREFIX_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Ok(message_too_large_status(GRPC_MESSAGE_BYTES_MAX).into_http());
        }
        Err(_) => return Ok(request_unreadable_status().into_http()),
    };
    let key = message_of(&body).map_or(super::key::RouteKey::Local, |message| route_key(head.uri.path(), message));
    let standing = Standing {
        // Serving means answering: the lease is held and the take-over (replay, OwnerChanged) is done.
        serving: routing.gate.may_serve() && routing.handle.is_ready(),
        deposed: routing.gate.is_deposed(),
        forward_calls: routing.forward_calls,
        forwarded: head.headers.contains_key(FORWARDED_BY),
    };
    let deadline = deadline_of(&head.headers, received_at);
    let call = Call { head, body, deadline };
    match decide(&key, standing, &routing.directory) {
        Decision::Here => inner.call(call.request()).await,
        Decision::Refuse(status) => Ok(status.into_http()),
        Decision::Forward { partition, owner } => {
            let forwarded =
                routing.forwarder.forward(&owner, &partition, &call.head, call.body.clone(), deadline).await;
            Ok(forwarded.unwrap_or_else(Status::into_http))
        }
        Decision::AskInTurn { targets, unowned } => ask_in_turn(&routing, inner, &call, targets, unowned).await,
        Decision::Gather { gathering, targets } => gather(&routing, inner, &call, gathering, targets).await,
    }
}

/// Asks each target in turn for the booking or ticket the call names; the first answer other than "not found" is the
/// answer. Asking a partition that does not hold it changes nothing there (a refusal is not logged or remembered).
/// Not found anywhere: NOT_FOUND, unless a partition could not be asked (then UNAVAILABLE: it may be there).
async fn ask_in_turn<S>(
    routing: &Routing,
    mut inner: S,
    call: &Call,
    targets: Vec<(String, Target)>,
    mut unowned: Vec<String>,
) -> Answer<S::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
{
    let mut not_found = None;
    for (partition, target) in targets {
        let answer = match target {
            Target::Here => inner.call(call.request()).await?,
            Target::Owner(owner) => {
                match routing.forwarder.forward(&owner, &partition, &call.head, call.body.clone(), call.deadline).await
                {
                    Ok(answer) => answer,
                    Err(status) if status.code() == Code::DeadlineExceeded => return Ok(status.into_http()),
                    Err(_) => {
                        unowned.push(partition);
                        continue;
                    }
                }
            }
        };
        if is_not_held(&answer) {
            not_found = Some(answer);
            continue;
        }
        return Ok(answer);
    }
    match (unowned.first(), not_found) {
        (Some(partition), _) => Ok(no_owner_status(partition).into_http()),
        (None, Some(answer)) => Ok(answer),
        (None, None) => inner.call(call.request()).await,
    }
}

/// Whether an answer says the booking or ticket is not in that partition.
fn is_not_held(answer: &http::Response<Body>) -> bool {
    header_status(answer).is_some_and(|status| {
        status.code() == Code::NotFound
            && matches!(reason_of(&status).as_deref(), Some("BOOKING_NOT_FOUND" | "TICKET_NOT_FOUND"))
    })
}

/// Asks every target at once (at most [`GATHER_CONCURRENCY_MAX`] at a time) and merges the answers; any part
/// missing fails the whole call (UNAVAILABLE `GATHER_INCOMPLETE`, or the part's own refusal when it is not
/// transient, such as PERMISSION_DENIED).
async fn gather<S>(
    routing: &Arc<Routing>,
    mut inner: S,
    call: &Call,
    gathering: Gathering,
    targets: Vec<(String, Target)>,
) -> Answer<S::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(GATHER_CONCURRENCY_MAX));
    let mut asking = tokio::task::JoinSet::new();
    for (partition, target) in targets {
        let limit = Arc::clone(&limit);
        let routing = Arc::clone(routing);
        let (head, body, deadline) = (call.head.clone(), call.body.clone(), call.deadline);
        let local = matches!(target, Target::Here).then(|| inner.call(call.request()));
        asking.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let answer = match (target, local) {
                (_, Some(local)) => local.await.map_err(Err)?,
                (Target::Owner(owner), None) => {
                    let forwarded = routing.forwarder.forward(&owner, &partition, &head, body, deadline).await;
                    forwarded.map_err(|status| Ok(part_failed(&partition, status)))?
                }
                (Target::Here, None) => unreachable!("a local target always has its call"),
            };
            let broken = |why: &str| gather_incomplete_status(&partition, why);
            match read_unary(answer, broken).await {
                Ok(message) => Ok((partition, message)),
                Err(status) => Err(Ok(part_failed(&partition, status))),
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asking.join_next().await {
        match joined {
            Ok(Ok(answer)) => answers.push(answer),
            Ok(Err(Ok(status))) => return Ok(status.into_http()),
            Ok(Err(Err(error))) => return Err(error),
            Err(_) => return Ok(gather_incomplete_status("?", "its task failed").into_http()),
        }
    }
    answers.sort_by(|left, right| left.0.cmp(&right.0));
    match merge(gathering, &answers, &routing.directory) {
        Ok(message) => Ok(unary_response(&message)),
        Err(status) => Ok(status.into_http()),
    }
}

/// The status a gathered call fails with when one partition's part failed with `status`.
fn part_failed(partition: &str, status: Status) -> Status {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal => {
            gather_incomplete_status(partition, status.message())
        }
        _ => status,
    }
}
