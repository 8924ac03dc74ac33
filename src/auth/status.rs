//! Auth's refusals as `tonic::Status`: UNAUTHENTICATED or PERMISSION_DENIED for a caller that is not known or not
//! allowed, RESOURCE_EXHAUSTED with a retry hint for a hold over an anti-hoarding limit.
//!
//! They are built here rather than in `grpc/status.rs` because the auth layer answers before any handler runs and
//! sits below the gRPC layer; they follow the same conventions (an `ErrorInfo` with a stable reason in
//! [`ERROR_DOMAIN`], a `RetryInfo` where waiting helps). Every other refusal becomes a `Status` in `grpc/status.rs`.
//!
//! Architecture invariant: a message or detail never echoes a token, a token hash or a NIK.

use super::{AuthRefusal, HoardingRefusal};
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error antrean sends (`grpc/status.rs` uses it too).
pub const ERROR_DOMAIN: &str = "antrean";

/// The status for a call refused by authentication or authorization: UNAUTHENTICATED when the caller is not known,
/// PERMISSION_DENIED when it is known but not allowed. The message never echoes a token or a NIK.
#[must_use]
pub fn auth_status(refusal: AuthRefusal) -> Status {
    let (code, reason, message) = match refusal {
        AuthRefusal::MissingCredentials => (
            Code::Unauthenticated,
            "CREDENTIALS_MISSING",
            "send `authorization: Bearer TOKEN` or a client certificate of a configured caller",
        ),
        AuthRefusal::InvalidToken => (Code::Unauthenticated, "TOKEN_INVALID", "the bearer token is not valid"),
        AuthRefusal::UnknownCertificate => (
            Code::Unauthenticated,
            "CERTIFICATE_UNKNOWN",
            "the client certificate does not name exactly one configured caller",
        ),
        AuthRefusal::Role => {
            (Code::PermissionDenied, "ROLE_NOT_ALLOWED", "the caller's roles do not allow this method")
        }
        AuthRefusal::Office => {
            (Code::PermissionDenied, "OFFICE_NOT_ALLOWED", "the caller may act only on its own offices")
        }
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

impl From<AuthRefusal> for Status {
    fn from(refusal: AuthRefusal) -> Status {
        auth_status(refusal)
    }
}

/// The status for a hold refused by an anti-hoarding limit: RESOURCE_EXHAUSTED with the time until the window ends
/// as the retry hint, and the limit's scope (`caller`, `account`, `applicant`, `tracked_keys`) in the metadata.
#[must_use]
pub fn hoarding_status(refusal: &HoardingRefusal) -> Status {
    let scope = refusal.scope.label();
    let mut details = ErrorDetails::with_retry_info(Some(Duration::from_millis(refusal.retry_after_ms)));
    details.set_error_info("HOLD_RATE_LIMITED", ERROR_DOMAIN, HashMap::from([("scope".to_owned(), scope.to_owned())]));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("too many holds for this {scope} in the current window; retry later"),
        details,
    )
}
