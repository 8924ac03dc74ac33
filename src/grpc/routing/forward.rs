//! Forwarding a call to another node over gRPC: one cached tonic `Channel` per address, the caller's headers (auth,
//! request ids, `grpc-timeout` shortened by the time already spent) and the [`FORWARDED_BY`] mark, so the receiving
//! node never forwards it again. Counts every forwarded call by target node and outcome.

use super::status::{forward_deadline_status, owner_unreachable_status};
use crate::cluster::NodeCard;
use crate::metrics as names;
use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

/// The header that marks a forwarded call, naming the node that forwarded it.
pub const FORWARDED_BY: &str = "antrean-forwarded-by";
/// Most cached channels (one per owner address); past it the cache starts over.
pub const FORWARD_CHANNELS_MAX: usize = 256;
/// Longest wait to connect to an owner: a dead owner's calls fail over this fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Forwards calls to other nodes.
pub struct Forwarder {
    own_node: http::HeaderValue,
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Forwarder").field("own_node", &self.own_node).finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder that marks calls as forwarded by `own_node` (a validated node name, a valid header value).
    ///
    /// # Panics
    /// If `own_node` is not a valid header value (node names are validated to letters, digits, `-` and `_`).
    #[must_use]
    pub fn new(own_node: &str) -> Forwarder {
        let own_node = http::HeaderValue::from_str(own_node).expect("a node name is a valid header value");
        Forwarder { own_node, channels: Mutex::new(HashMap::new()) }
    }

    /// Sends the call (`head`, with the request `body` as received) to `owner`, which owns `partition`, within
    /// `deadline`; its answer as it comes, or UNAVAILABLE `OWNER_UNREACHABLE` when it could not be asked.
    pub async fn forward(
        &self,
        owner: &NodeCard,
        partition: &str,
        head: &http::request::Parts,
        body: Bytes,
        deadline: Option<Instant>,
    ) -> Result<http::Response<Body>, Status> {
        let outcome = self.send(owner, partition, head, body, deadline).await;
        let label = match &outcome {
            Ok(response) => super::frames::header_status(response).map_or("ok", |status| code_name(status.code())),
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => "deadline",
            Err(_) => "unreachable",
        };
        metrics::counter!(names::CLUSTER_FORWARDED_CALLS_TOTAL, "target" => owner.node_name.clone(), "outcome" => label)
            .increment(1);
        outcome
    }

    async fn send(
        &self,
        owner: &NodeCard,
        partition: &str,
        head: &http::request::Parts,
        body: Bytes,
        deadline: Option<Instant>,
    ) -> Result<http::Response<Body>, Status> {
        let unreachable = || owner_unreachable_status(partition, &owner.node_name);
        let channel = self.channel(&owner.address).ok_or_else(unreachable)?;
        let mut request = http::Request::new(Body::new(Full::new(body)));
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.uri.clone();
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers.clone();
        request.headers_mut().insert(FORWARDED_BY, self.own_node.clone());
        let Some(deadline) = deadline else {
            return channel.oneshot(request).await.map_err(|_| unreachable());
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(forward_deadline_status());
        }
        let timeout = http::HeaderValue::from_str(&format!("{}m", remaining.as_millis().max(1)))
            .expect("digits and a unit are a valid header value");
        request.headers_mut().insert("grpc-timeout", timeout);
        match tokio::time::timeout(remaining, channel.oneshot(request)).await {
            Ok(answer) => answer.map_err(|_| unreachable()),
            Err(_) => Err(forward_deadline_status()),
        }
    }

    /// The channel to `address`, made on first use (connecting lazily); `None` for an address that is not one.
    fn channel(&self, address: &str) -> Option<Channel> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(address) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}")).ok()?;
        let channel = endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).connect_lazy();
        if channels.len() >= FORWARD_CHANNELS_MAX {
            channels.clear();
        }
        channels.insert(address.to_owned(), channel.clone());
        Some(channel)
    }
}

/// When the caller's deadline passes: `grpc-timeout` (digits and a unit, H M S m u n) counted from `received_at`.
#[must_use]
pub fn deadline_of(headers: &http::HeaderMap, received_at: Instant) -> Option<Instant> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    received_at.checked_add(timeout)
}

/// A closed set of labels for gRPC codes.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::NotFound => "not_found",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline",
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists | Code::OutOfRange => "refused",
        Code::Unauthenticated | Code::PermissionDenied => "denied",
        Code::ResourceExhausted => "exhausted",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_str(value).expect("header"));
        let now = Instant::now();
        deadline_of(&headers, now).map(|deadline| deadline - now)
    }

    #[test]
    fn the_callers_grpc_timeout_gives_the_deadline() {
        assert_eq!(timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("250u"), Some(Duration::from_micros(250)));
        for bad in ["", "m", "12", "12x", "-1m", "123456789m"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(deadline_of(&http::HeaderMap::new(), Instant::now()), None, "no deadline");
    }

    #[tokio::test]
    async fn a_call_to_an_owner_nobody_listens_for_is_unavailable_with_a_retry_hint() {
        let forwarder = Forwarder::new("node-b");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let owner = NodeCard { node_name: "node-a".into(), partition: "west".into(), address, offices: None };
        let (head, ()) =
            http::Request::post("/antrean.v1.BookingService/GetBooking").body(()).expect("request").into_parts();
        let status = forwarder.forward(&owner, "west", &head, Bytes::new(), None).await.expect_err("nobody there");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(super::super::status::reason_of(&status).as_deref(), Some("OWNER_UNREACHABLE"));
        use tonic_types::StatusExt;
        assert!(status.get_details_retry_info().is_some(), "with a retry hint");
    }
}
