//! The per-RPC metrics of the overload layer as handles resolved once per method and code, not per call.
//!
//! `metrics::counter!(name, "method" => m, "code" => c)` builds a key (a vector of labels) and looks it up in the
//! recorder's registry on every call; with the Prometheus exporter that is a hash of the name and labels and a read
//! of a shared map, several times per call. Methods and codes are closed sets, so each handle is resolved the first
//! time it is needed and kept. The recorder is installed before the server starts (`main.rs`), so the first call
//! already resolves against it.
//!
//! Architecture invariant: metric names and labels are those of `metrics.rs`, as `counter!` would have made them.

use crate::metrics as names;
use metrics::{Counter, Gauge, Histogram};
use std::sync::OnceLock;
use tonic::Code;

/// Method names used as metric labels: a closed set, so an unknown path cannot grow the label space.
const KNOWN_METHODS: &[&str] = &[
    "ListOffices",
    "GetAvailability",
    "Hold",
    "HoldGroup",
    "ConfirmPayment",
    "Cancel",
    "Reschedule",
    "CheckIn",
    "GetBooking",
    "ListBookings",
    "FindBookings",
    "UpsertOffice",
    "SetSchedule",
    "CloseDate",
    "GetOfficeStats",
    "ListRefunds",
    "Check",
    "Watch",
    "ServerReflectionInfo",
    "Join",
    "Leave",
    "GetDraw",
];

/// The label of every method not in [`KNOWN_METHODS`].
const OTHER_METHOD: &str = "other";

/// Labels a method can have: the known ones and `other`.
const METHODS: usize = KNOWN_METHODS.len() + 1;

/// gRPC status codes, 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: usize = 17;

/// A method's metric label, as an index into the handle tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method(usize);

impl Method {
    /// The method of a request path (`/package.Service/Method`); `other` for one not in the closed set.
    #[must_use]
    pub fn of_path(path: &str) -> Method {
        let method = path.rsplit('/').next().unwrap_or_default();
        Method(KNOWN_METHODS.iter().position(|known| *known == method).unwrap_or(KNOWN_METHODS.len()))
    }

    /// The label.
    #[must_use]
    pub fn label(self) -> &'static str {
        KNOWN_METHODS.get(self.0).copied().unwrap_or(OTHER_METHOD)
    }
}

/// `GRPC_REQUESTS_TOTAL{method, code}`.
pub fn requests_total(method: Method, code: Code) -> &'static Counter {
    static HANDLES: [[OnceLock<Counter>; CODES]; METHODS] = [const { [const { OnceLock::new() }; CODES] }; METHODS];
    let code_index = (code as usize).min(CODES - 1);
    HANDLES[method.0][code_index].get_or_init(
        || metrics::counter!(names::GRPC_REQUESTS_TOTAL, "method" => method.label(), "code" => code_name(code)),
    )
}

/// `GRPC_REQUEST_DURATION_SECONDS{method}`.
pub fn request_duration(method: Method) -> &'static Histogram {
    static HANDLES: [OnceLock<Histogram>; METHODS] = [const { OnceLock::new() }; METHODS];
    HANDLES[method.0]
        .get_or_init(|| metrics::histogram!(names::GRPC_REQUEST_DURATION_SECONDS, "method" => method.label()))
}

/// `GRPC_IN_FLIGHT_REQUESTS`.
pub fn in_flight() -> &'static Gauge {
    static HANDLE: OnceLock<Gauge> = OnceLock::new();
    HANDLE.get_or_init(|| metrics::gauge!(names::GRPC_IN_FLIGHT_REQUESTS))
}

/// The code's label, as gRPC spells it.
#[must_use]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(Method::of_path("/antrean.v1.BookingService/Hold").label(), "Hold");
        assert_eq!(Method::of_path("/antrean.v1.BookingService/Hold2").label(), "other");
        assert_eq!(Method::of_path("/x/y/z/aaaaaaaaaaaaaaaaaaaaa").label(), "other");
        assert_eq!(Method::of_path("/antrean.v1.WaitingRoomService/GetDraw").label(), "GetDraw");
    }

    #[test]
    fn every_code_has_its_own_handle_and_label() {
        let mut labels = std::collections::HashSet::new();
        for value in 0..CODES as i32 {
            let code = Code::from_i32(value);
            assert_eq!(code as usize, value as usize, "codes are numbered as the table is indexed");
            assert!(labels.insert(code_name(code)), "{value} has a label of its own");
        }
        assert_eq!(Code::from_i32(CODES as i32), Code::Unknown, "no code beyond the table");
    }
}
