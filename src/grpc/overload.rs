//! Two tower layers in front of every service.
//!
//! [`Overload`], the outermost: refuses a call at once with RESOURCE_EXHAUSTED and a retry hint when the in-flight
//! limit is reached (instead of queueing it until it times out), and records per-RPC metrics: count by method and code,
//! latency, in-flight, and calls shed.
//!
//! [`CallerRate`], inside the auth layer: a token bucket per caller. It runs after authentication so that it
//! counts the caller the auth layer identified (the `Access` in the request's extensions), not the bytes of a header a
//! client can spell in many ways; calls without an identified caller (health checks, the open demo) are counted per
//! peer address.

use super::call_metrics::{self, Method};
use super::status::overload_status;
use crate::auth::Access;
use crate::call_layer::{AroundCall, CallFuture, CallLayer, Next};
use crate::metrics as names;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Most callers whose request rate is tracked at once; beyond it idle callers are forgotten first.
const CALLERS_TRACKED_MAX: usize = 65_536;

/// The outermost layer's work: the in-flight limit and the per-RPC metrics; clones share one in-flight counter.
#[derive(Clone)]
pub struct Overload {
    in_flight: Arc<AtomicUsize>,
    in_flight_max: usize,
}

impl Overload {
    /// The tower layer that allows at most `in_flight_max` calls at once.
    #[must_use]
    pub fn layer(in_flight_max: usize) -> CallLayer<Overload> {
        CallLayer(Overload { in_flight: Arc::new(AtomicUsize::new(0)), in_flight_max })
    }
}

/// The per-caller rate limit; clones share one set of buckets. Put it inside the auth layer.
#[derive(Clone)]
pub struct CallerRate {
    rates: Arc<CallerRates>,
}

impl CallerRate {
    /// The tower layer that allows each caller at most `caller_requests_per_second_max` calls a second (with a burst
    /// of one second's worth).
    #[must_use]
    pub fn layer(caller_requests_per_second_max: u32) -> CallLayer<CallerRate> {
        CallLayer(CallerRate { rates: Arc::new(CallerRates::new(f64::from(caller_requests_per_second_max))) })
    }
}

/// Token buckets per caller: the caller the auth layer identified, else the peer's IP address. Bounded: at most
/// `CALLERS_TRACKED_MAX` (65,536) callers.
pub struct CallerRates {
    per_second: f64,
    buckets: parking_lot::Mutex<std::collections::HashMap<u64, (f64, Instant)>>,
}

impl CallerRates {
    fn new(per_second: f64) -> CallerRates {
        CallerRates { per_second, buckets: parking_lot::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Takes one token for `caller`; false when the caller is over its rate.
    fn admit(&self, caller: u64, now: Instant) -> bool {
        let mut buckets = self.buckets.lock();
        if buckets.len() >= CALLERS_TRACKED_MAX && !buckets.contains_key(&caller) {
            // Forget callers whose bucket has refilled: they lose nothing by being forgotten.
            let per_second = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_second < per_second);
            if buckets.len() >= CALLERS_TRACKED_MAX {
                return false;
            }
        }
        let (tokens, at) = buckets.entry(caller).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.per_second);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The bucket of a call: its identified caller's name, or its peer's IP address when no caller was identified (or
/// the auth layer did not run). A client cannot move itself to a fresh bucket by changing a header.
fn caller_key<B>(request: &http::Request<B>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    match request.extensions().get::<Access>() {
        Some(access) if access.authenticated => ("caller", &*access.caller).hash(&mut hasher),
        _ => ("peer", peer_ip(request)).hash(&mut hasher),
    }
    hasher.finish()
}

/// The peer's IP address, over plain TCP or TLS.
fn peer_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    let plain = extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr);
    let tls = || extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|info| info.get_ref().remote_addr());
    plain.or_else(tls).map(|address| address.ip())
}

/// Releases an in-flight place when the call ends, however it ends (including when the caller gives up and the
/// future is dropped).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::AcqRel) - 1;
        call_metrics::in_flight().set(now as f64);
    }
}

/// The code of a response: errors of unary calls are sent "trailers-only", so the status is in the headers; a
/// response without one is OK.
fn response_code(response: &http::Response<tonic::body::Body>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

impl AroundCall for Overload {
    fn call<S: Next>(&self, request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
        let method = Method::of_path(request.uri().path());
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let place = InFlight(Arc::clone(&self.in_flight));
        if previous >= self.in_flight_max {
            drop(place);
            let reason = "in_flight";
            metrics::counter!(names::GRPC_REQUESTS_SHED_TOTAL, "method" => method.label(), "reason" => reason)
                .increment(1);
            call_metrics::requests_total(method, tonic::Code::ResourceExhausted).increment(1);
            return Box::pin(std::future::ready(Ok(overload_status(reason).into_http())));
        }
        call_metrics::in_flight().set((previous + 1) as f64);
        let started = Instant::now();
        Box::pin(async move {
            let _place = place;
            let response = next.call(request).await;
            let code = response.as_ref().map_or(tonic::Code::Unknown, response_code);
            call_metrics::requests_total(method, code).increment(1);
            call_metrics::request_duration(method).record(started.elapsed().as_secs_f64());
            response
        })
    }
}

impl AroundCall for CallerRate {
    fn call<S: Next>(&self, request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
        if !self.rates.admit(caller_key(&request), Instant::now()) {
            let (method, reason) = (Method::of_path(request.uri().path()).label(), "rate_limit");
            // Counted in GRPC_REQUESTS_TOTAL by the overload layer outside, like every answer.
            metrics::counter!(names::GRPC_REQUESTS_SHED_TOTAL, "method" => method, "reason" => reason).increment(1);
            return Box::pin(std::future::ready(Ok(overload_status(reason).into_http())));
        }
        Box::pin(async move { next.call(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_over_its_rate_is_refused_until_its_bucket_refills() {
        let rates = CallerRates::new(10.0);
        let start = Instant::now();
        assert!((0..10).all(|_| rates.admit(1, start)), "a second's worth of burst");
        assert!(!rates.admit(1, start), "the eleventh call in the same instant");
        assert!(rates.admit(2, start), "another caller has its own bucket");
        assert!(rates.admit(1, start + std::time::Duration::from_millis(150)), "refilled by one token");
    }

    #[test]
    fn the_bucket_is_the_identified_caller_whatever_the_headers_say() {
        let request = |authorization: &str, access: Option<Access>| {
            let mut request =
                http::Request::builder().header("authorization", authorization).body(()).expect("request");
            if let Some(access) = access {
                request.extensions_mut().insert(access);
            }
            request
        };
        let caller = |name: &str| Access { caller: Arc::from(name), authenticated: true, ..Access::none() };
        let app = caller_key(&request("Bearer t", Some(caller("app"))));
        assert_eq!(app, caller_key(&request("bEaReR t", Some(caller("app")))));
        assert_ne!(app, caller_key(&request("Bearer t", Some(caller("bank")))));
        let anonymous = caller_key(&request("junk-1", Some(Access::none())));
        assert_eq!(anonymous, caller_key(&request("junk-2", None)), "no caller: the peer address");
        assert_eq!(anonymous, caller_key(&request("junk-3", Some(Access::open()))), "the open demo names no caller");
    }
}
