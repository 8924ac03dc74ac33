//! The one place where the engine's refusals and overload become `tonic::Status`: an exhaustive match, so a new
//! rejection cannot ship without a status code, a stable reason and its details.
//!
//! Codes follow gRPC's definitions: INVALID_ARGUMENT for malformed requests (with a BadRequest listing every bad field),
//! NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION for business refusals (with an ErrorInfo reason and metadata), and
//! RESOURCE_EXHAUSTED only for overload and server limits (with a RetryInfo hint).
//!
//! Handlers turn a refusal into a status with `?` (through `From<Rejection>`), never by hand. Auth's refusals
//! (unknown caller, role, office, anti-hoarding) are built the same way in `auth/status.rs`, below this layer, because
//! the auth layer answers before any handler runs.

use crate::domain::Rejection;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use crate::auth::status::ERROR_DOMAIN;

/// How long a caller refused for overload should wait before retrying.
pub const OVERLOAD_RETRY_DELAY: Duration = Duration::from_millis(200);

/// How long a caller refused because a server limit is reached should wait.
pub const LIMIT_RETRY_DELAY: Duration = Duration::from_secs(5);

impl From<Rejection> for Status {
    fn from(rejection: Rejection) -> Status {
        rejection_status(&rejection)
    }
}

/// The status for a refusal: made once per thread for refusals many callers share (`refusal_cache.rs`).
#[must_use]
pub fn rejection_status(rejection: &Rejection) -> Status {
    super::refusal_cache::status_of(rejection, make_rejection_status)
}

/// The status for a refusal, made afresh.
#[must_use]
pub fn make_rejection_status(rejection: &Rejection) -> Status {
    let reason = rejection.reason();
    let info = |code: Code, message: String, metadata: Vec<(&str, String)>| {
        let metadata: HashMap<String, String> =
            metadata.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, ERROR_DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    };
    match rejection {
        Rejection::Invalid(violations) => {
            let mut details = ErrorDetails::new();
            for violation in violations {
                details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
            }
            let fields: Vec<&str> = violations.iter().map(|violation| violation.field.as_str()).collect();
            Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid request: {}", fields.join(", ")),
                details,
            )
        }
        Rejection::RequestIdReused => {
            let mut details = ErrorDetails::new();
            details.add_bad_request_violation("request_id", "was already used for a different request");
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(
                Code::InvalidArgument,
                "request_id was already used for a different request",
                details,
            )
        }
        Rejection::OfficeNotFound(office_id) => {
            info(Code::NotFound, format!("office {office_id} not found"), vec![("office_id", office_id.to_string())])
        }
        Rejection::SessionNotFound { date, session_id } => info(
            Code::NotFound,
            format!("no session {session_id} on {date}"),
            vec![("date", date.to_string()), ("session_id", session_id.to_string())],
        ),
        Rejection::BookingNotFound(booking_id) => info(
            Code::NotFound,
            format!("booking {booking_id} not found"),
            vec![("booking_id", booking_id.to_string())],
        ),
        Rejection::ApplicantHasBooking { booking_id } => info(
            Code::AlreadyExists,
            format!("the applicant already has an active booking {booking_id}"),
            vec![("booking_id", booking_id.to_string())],
        ),
        Rejection::NotYetOpen { opens_at } => info(
            Code::FailedPrecondition,
            format!("slots for this date open at {opens_at}"),
            vec![("opens_at", opens_at.to_string())],
        ),
        Rejection::SessionFull { remaining } => info(
            Code::FailedPrecondition,
            format!("not enough slots left in this session's pool ({remaining} remaining)"),
            vec![("remaining", remaining.to_string())],
        ),
        Rejection::DateClosed { reason: why } => info(
            Code::FailedPrecondition,
            format!("the office is closed on this date: {why}"),
            vec![("closure", why.clone())],
        ),
        Rejection::PaymentExpired { booking_id } => info(
            Code::FailedPrecondition,
            format!("payment for {booking_id} came after its deadline and the slot is gone; recorded for refund"),
            vec![("booking_id", booking_id.to_string()), ("refund_recorded", "true".into())],
        ),
        Rejection::AlreadyPaid { booking_id } => info(
            Code::FailedPrecondition,
            format!("{booking_id} was already paid with another payment; this one is recorded for refund"),
            vec![("booking_id", booking_id.to_string()), ("refund_recorded", "true".into())],
        ),
        Rejection::RescheduleNotAllowed { why } => {
            info(Code::FailedPrecondition, format!("reschedule not allowed: {why}"), vec![("why", why.clone())])
        }
        Rejection::InvalidState { state, action } => info(
            Code::FailedPrecondition,
            format!("cannot {action}: booking is {}", state.name()),
            vec![("state", state.name().into())],
        ),
        Rejection::AdmissionRequired => info(
            Code::FailedPrecondition,
            "this date is behind a waiting room: join it and hold with the admission token".into(),
            vec![],
        ),
        Rejection::NoWaitingRoom(office_id) => info(
            Code::NotFound,
            format!("office {office_id} has no waiting room open or scheduled"),
            vec![("office_id", office_id.to_string())],
        ),
        Rejection::TicketNotFound(ticket_id) => {
            info(Code::NotFound, format!("ticket {ticket_id} not found"), vec![("ticket_id", ticket_id.to_string())])
        }
        Rejection::PaidAfterCancellation { booking_id } => info(
            Code::FailedPrecondition,
            format!("cannot pay for {booking_id}: booking is CANCELLED; the payment is recorded for refund"),
            vec![
                ("state", "CANCELLED".into()),
                ("booking_id", booking_id.to_string()),
                ("refund_recorded", "true".into()),
            ],
        ),
        Rejection::BookingPurged { booking_id } => info(
            Code::FailedPrecondition,
            format!("{booking_id} was purged after its appointment; the payment is recorded for refund"),
            vec![("booking_id", booking_id.to_string()), ("refund_recorded", "true".into())],
        ),
        Rejection::SessionsHaveBookings { bookings } => info(
            Code::FailedPrecondition,
            format!(
                "the new plan would move the start or end of sessions with {bookings} booking(s) still to come: \
                 cancel or reschedule them first"
            ),
            vec![("bookings_affected", bookings.to_string())],
        ),
        Rejection::AmendmentNotAllowed { why } => {
            info(Code::FailedPrecondition, format!("amendment not allowed: {why}"), vec![("why", why.clone())])
        }
        Rejection::AmendmentPoolFull { pool } => {
            let pool = crate::grpc::convert::pool_name(*pool);
            info(
                Code::FailedPrecondition,
                format!(
                    "the amended applicant is no longer eligible for the priority pool and {pool} has no free slot in \
                     this session: nothing changed"
                ),
                vec![("pool", pool.to_owned())],
            )
        }
        Rejection::LimitReached { limit } => {
            let mut details = ErrorDetails::with_retry_info(Some(LIMIT_RETRY_DELAY));
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::from([("limit".to_owned(), limit.clone())]));
            Status::with_error_details(Code::ResourceExhausted, format!("server limit {limit} reached"), details)
        }
    }
}

/// The status for a request shed before any work because the server is at capacity, `why` being the shed reason
/// (`in_flight`, `rate_limit`). Shedding must be cheap, so the statuses of both reasons are made once.
#[must_use]
pub fn overload_status(why: &str) -> Status {
    static IN_FLIGHT: LazyLock<Status> = LazyLock::new(|| make_overload_status("in_flight"));
    static RATE_LIMIT: LazyLock<Status> = LazyLock::new(|| make_overload_status("rate_limit"));
    match why {
        "in_flight" => IN_FLIGHT.clone(),
        "rate_limit" => RATE_LIMIT.clone(),
        other => make_overload_status(other),
    }
}

fn make_overload_status(why: &str) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(OVERLOAD_RETRY_DELAY));
    details.set_error_info("OVERLOADED", ERROR_DOMAIN, HashMap::from([("why".to_owned(), why.to_owned())]));
    Status::with_error_details(Code::ResourceExhausted, format!("server overloaded ({why}): retry later"), details)
}

/// How long a client should wait before asking a node that does not serve the partition (yet, or any more) again.
const NOT_SERVING_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The status for a call to a cluster node that does not serve its partition now (standing by, taking over, or deposed
/// because its lease was lost or an append was fenced): UNAVAILABLE with a retry hint, nothing done.
#[must_use]
pub fn partition_not_served_status() -> Status {
    // Every call to a deposed node gets it: made once.
    static NOT_SERVED: LazyLock<Status> = LazyLock::new(make_partition_not_served_status);
    NOT_SERVED.clone()
}

fn make_partition_not_served_status() -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(NOT_SERVING_RETRY_DELAY));
    details.set_error_info("PARTITION_NOT_SERVED", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(
        Code::Unavailable,
        "this node does not serve the partition now (its lease is elsewhere or lost): retry, or ask its owner",
        details,
    )
}

/// The status for a request whose bytes are not a valid message of its method: INVALID_ARGUMENT, the client's fault
/// (tonic-prost would answer INTERNAL). The message names prost's reason, never the bytes.
#[must_use]
pub fn undecodable_status(error: &prost::DecodeError) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info("MESSAGE_UNDECODABLE", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("the request is not a valid protobuf message of this method: {error}"),
        details,
    )
}

/// The status for a request message over the size limit: RESOURCE_EXHAUSTED with the limit in the metadata (tonic
/// would answer OUT_OF_RANGE). No retry hint: the same message will never fit.
#[must_use]
pub fn message_too_large_status(bytes_max: usize) -> Status {
    let mut details = ErrorDetails::new();
    let metadata = HashMap::from([("bytes_max".to_owned(), bytes_max.to_string())]);
    details.set_error_info("MESSAGE_TOO_LARGE", ERROR_DOMAIN, metadata);
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("the request message is larger than {bytes_max} bytes"),
        details,
    )
}

/// Asserts that `made_once` says what `fresh` says: code, message, metadata and every detail, decoded (the order of
/// an `ErrorInfo`'s metadata entries on the wire follows a hash map's, so equal statuses may differ in bytes).
#[cfg(test)]
pub(crate) fn assert_same_status(made_once: &Status, fresh: &Status) {
    use std::collections::BTreeMap;
    let said = |status: &Status| {
        let details = status.get_error_details();
        let info = details.error_info().map(|info| {
            let metadata: BTreeMap<String, String> = info.metadata.clone().into_iter().collect();
            (info.reason.clone(), info.domain.clone(), metadata)
        });
        let retry = details.retry_info().map(|retry| retry.retry_delay);
        let violations = details.bad_request().map(|bad| {
            bad.field_violations
                .iter()
                .map(|violation| (violation.field.clone(), violation.description.clone()))
                .collect::<Vec<_>>()
        });
        (status.code(), status.message().to_owned(), status.metadata().clone().into_headers(), info, retry, violations)
    };
    assert_eq!(said(made_once), said(fresh));
    assert_eq!(made_once.details().len(), fresh.details().len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_made_once_are_the_fresh_ones() {
        for why in ["in_flight", "rate_limit"] {
            let shed = overload_status(why);
            assert_same_status(&shed, &make_overload_status(why));
            let info = shed.get_details_error_info().expect("error info");
            assert_eq!((info.reason.as_str(), info.metadata["why"].as_str()), ("OVERLOADED", why));
            assert_eq!(shed.get_details_retry_info().and_then(|retry| retry.retry_delay), Some(OVERLOAD_RETRY_DELAY));
        }
        assert_same_status(&overload_status("other"), &make_overload_status("other"));
        assert_same_status(&partition_not_served_status(), &make_partition_not_served_status());
    }
}
