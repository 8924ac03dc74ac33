//! Connections to the server and the small conversions every scenario needs: a pool of tonic channels (one HTTP/2
//! connection each, many calls multiplexed on each), typed clients taken round-robin from it, and the mapping of a
//! `tonic::Status` to an [`Outcome`].
//!
//! This module must not decide what to call; scenarios do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::calendar::CivilDate;
use crate::proto;
use crate::proto::admin_service_client::AdminServiceClient;
use crate::proto::booking_service_client::BookingServiceClient;
use crate::proto::waiting_room_service_client::WaitingRoomServiceClient;
use crate::recorder::Outcome;

/// Requests a channel queues before callers wait; large so the client is not the bottleneck.
const CHANNEL_BUFFER_MAX: usize = 16_384;
/// Long-lived streams (Watch) carried by one connection of the stream pool: below the server's 1,024 concurrent
/// streams per connection, so opening a stream never waits for another one to end.
pub const STREAMS_PER_CONNECTION: usize = 1_000;

/// The transport under every client: a channel that adds the bearer token, if any.
pub type Transport = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer TOKEN` to every call when a token was given.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl BearerToken {
    /// A token for the `authorization` header; `None` sends none.
    pub fn new(token: Option<&str>) -> anyhow::Result<BearerToken> {
        let value = token
            .map(|token| MetadataValue::try_from(format!("Bearer {token}")))
            .transpose()
            .context("the token is not a valid header value")?;
        Ok(BearerToken(value))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A fixed pool of channels to one server, and a second pool for long-lived streams.
///
/// Watch streams stay open for a whole wait. On the unary pool they would take the connections' HTTP/2 stream
/// places (at most 1,024 each on the server), and every unary call behind them would queue in the client until a
/// stream ended: a stall of the load generator, not of the server (a crowd of phones has a connection each). So
/// streams get their own connections, enough for all of them.
pub struct Clients {
    channels: Vec<Channel>,
    next: AtomicUsize,
    stream_channels: Vec<Channel>,
    next_stream: AtomicUsize,
    token: BearerToken,
}

impl Clients {
    /// Opens `connections` HTTP/2 connections to `uri` for calls, and enough more to carry `streams` long-lived
    /// streams at [`STREAMS_PER_CONNECTION`] each; every call made through them gets `call_timeout` and `token`.
    pub async fn connect(
        uri: &str,
        connections: usize,
        streams: usize,
        call_timeout: Duration,
        token: BearerToken,
    ) -> anyhow::Result<Clients> {
        let endpoint = Endpoint::from_shared(uri.to_string())
            .with_context(|| format!("invalid server address {uri:?}"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(call_timeout)
            .tcp_nodelay(true)
            .buffer_size(CHANNEL_BUFFER_MAX);
        let mut channels = Vec::with_capacity(connections);
        for _ in 0..connections {
            channels.push(endpoint.connect().await.with_context(|| format!("cannot connect to {uri}"))?);
        }
        let mut stream_channels = Vec::with_capacity(streams.div_ceil(STREAMS_PER_CONNECTION));
        for _ in 0..streams.div_ceil(STREAMS_PER_CONNECTION) {
            stream_channels.push(endpoint.connect().await.with_context(|| format!("cannot connect to {uri}"))?);
        }
        Ok(Clients { channels, next: AtomicUsize::new(0), stream_channels, next_stream: AtomicUsize::new(0), token })
    }

    /// Connections of the stream pool.
    pub fn stream_connections(&self) -> usize {
        self.stream_channels.len()
    }

    /// A waiting-room client for a long-lived stream: on the stream pool, round-robin, or on the call pool when
    /// there is no stream pool.
    pub fn waiting_room_stream(&self) -> WaitingRoomServiceClient<Transport> {
        if self.stream_channels.is_empty() {
            return self.waiting_room();
        }
        let index = self.next_stream.fetch_add(1, Ordering::Relaxed) % self.stream_channels.len();
        WaitingRoomServiceClient::new(InterceptedService::new(self.stream_channels[index].clone(), self.token.clone()))
    }

    /// The next channel, round-robin, with the token.
    pub fn channel(&self) -> Transport {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        InterceptedService::new(self.channels[index].clone(), self.token.clone())
    }

    /// A booking client on the next channel.
    pub fn booking(&self) -> BookingServiceClient<Transport> {
        BookingServiceClient::new(self.channel())
    }

    /// An admin client on the next channel.
    pub fn admin(&self) -> AdminServiceClient<Transport> {
        AdminServiceClient::new(self.channel())
    }

    /// A waiting-room client on the next channel.
    pub fn waiting_room(&self) -> WaitingRoomServiceClient<Transport> {
        WaitingRoomServiceClient::new(self.channel())
    }

    /// A health client on the next channel.
    pub fn health(&self) -> HealthClient<Transport> {
        HealthClient::new(self.channel())
    }
}

/// The outcome of a failed call: its code name and the reason from `google.rpc.ErrorInfo`, or else an
/// `UPPER_SNAKE_CASE` word in the message.
pub fn outcome_of(status: &Status) -> Outcome {
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .filter(|reason| !reason.is_empty())
        .or_else(|| reason_in_message(status.message()));
    Outcome { code: code_name(status.code()), reason }
}

/// Whether a failure leaves it unknown if the server applied the call (so its effect cannot be checked).
pub fn is_ambiguous(code: Code) -> bool {
    matches!(code, Code::DeadlineExceeded | Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Internal)
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The first word of at least two `_`-joined upper-case parts, e.g. `SESSION_FULL`.
fn reason_in_message(message: &str) -> Option<String> {
    message
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .find(|word| word.len() >= 4 && word.contains('_') && word.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_string)
}

/// A calendar date as the API's `Date`.
pub fn proto_date(date: CivilDate) -> proto::Date {
    proto::Date { year: date.year, month: date.month as i32, day: date.day as i32 }
}

/// The API's `Date` as a calendar date.
pub fn civil_date(date: &proto::Date) -> CivilDate {
    CivilDate { year: date.year, month: date.month.max(0) as u32, day: date.day.max(0) as u32 }
}

/// A wall-clock instant as a protobuf timestamp.
pub fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 }
}

/// A protobuf timestamp as a wall-clock instant (the epoch when unset).
pub fn system_time(timestamp: Option<&prost_types::Timestamp>) -> SystemTime {
    timestamp.map_or(UNIX_EPOCH, |timestamp| {
        UNIX_EPOCH + Duration::new(timestamp.seconds.max(0) as u64, timestamp.nanos.max(0) as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_message_when_no_details() {
        let status = Status::failed_precondition("session full: SESSION_FULL (office x)");
        let outcome = outcome_of(&status);
        assert_eq!(outcome.code, "FAILED_PRECONDITION");
        assert_eq!(outcome.reason.as_deref(), Some("SESSION_FULL"));
        assert_eq!(outcome_of(&Status::not_found("no such booking")).reason, None);
    }

    #[test]
    fn timestamps_round_trip() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000);
        assert_eq!(system_time(Some(&timestamp(time))), time);
    }
}
