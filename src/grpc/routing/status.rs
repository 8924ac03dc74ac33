//! The statuses routing answers with (the one place they are built, beside `grpc/status.rs` for the rest): nobody
//! owns the partition now, its owner cannot be reached, the office is in no partition or in another one, a gathered
//! answer is incomplete. Every transient one is UNAVAILABLE with a RetryInfo, so clients retry with the same request
//! id.

use crate::grpc::status::ERROR_DOMAIN;
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How long a client should wait before retrying a call no owner could answer: about one lease renewal period, the
/// time a standby needs to notice a free lease and a directory to hear of the new owner.
const NO_OWNER_RETRY_DELAY: Duration = Duration::from_secs(1);

fn unavailable(reason: &str, message: String, metadata: &[(&str, &str)]) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(NO_OWNER_RETRY_DELAY));
    let metadata: HashMap<String, String> =
        metadata.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(Code::Unavailable, message, details)
}

/// No node owns `partition` now (its owner died and no standby took over yet, or none was ever started): `NO_OWNER`.
#[must_use]
pub fn no_owner_status(partition: &str) -> Status {
    let message = format!("no node owns partition {partition} now: retry shortly");
    unavailable("NO_OWNER", message, &[("partition", partition)])
}

/// This node has not read the cluster's directory yet (just started, or NATS unreachable): `DIRECTORY_NOT_LOADED`.
#[must_use]
pub fn directory_not_loaded_status() -> Status {
    let message = "this node does not know the cluster's partitions yet: retry shortly".to_owned();
    unavailable("DIRECTORY_NOT_LOADED", message, &[])
}

/// The owner of `partition`, `node`, did not answer a forwarded call: `OWNER_UNREACHABLE` (nothing was done, or the
/// outcome is unknown: retry with the same request id).
#[must_use]
pub fn owner_unreachable_status(partition: &str, node: &str) -> Status {
    let message = format!("the owner of partition {partition} ({node}) could not be reached: retry shortly");
    unavailable("OWNER_UNREACHABLE", message, &[("partition", partition), ("node", node)])
}

/// A forwarded call reached a node that does not serve `partition` (the owner changed on the way): it is not
/// forwarded again, so the client retries: `PARTITION_NOT_SERVED`.
#[must_use]
pub fn forwarded_elsewhere_status(partition: &str) -> Status {
    let message =
        format!("this node does not serve partition {partition} now (a forwarded call is not forwarded again)");
    unavailable("PARTITION_NOT_SERVED", message, &[("partition", partition)])
}

/// A gathered answer misses `partition`'s part: UNAVAILABLE `GATHER_INCOMPLETE`, never a silently partial list.
#[must_use]
pub fn gather_incomplete_status(partition: &str, why: &str) -> Status {
    let message = format!("partition {partition} could not answer ({why}): the answer would be incomplete, retry");
    unavailable("GATHER_INCOMPLETE", message, &[("partition", partition)])
}

/// The office is in no partition's `cluster.offices`: FAILED_PRECONDITION `OFFICE_NOT_IN_CLUSTER` (configure a node
/// for it first).
#[must_use]
pub fn office_not_in_cluster_status(office: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info("OFFICE_NOT_IN_CLUSTER", ERROR_DOMAIN, HashMap::from([("office_id".into(), office.into())]));
    let message = format!("no partition of the cluster serves office {office}: add it to a node's cluster.offices");
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// The office belongs to another partition and this node does not forward (`cluster.forward_calls = false`):
/// FAILED_PRECONDITION `OFFICE_NOT_IN_PARTITION`, naming the partition and, when known, its owner's address.
#[must_use]
pub fn office_elsewhere_status(office: &str, partition: &str, owner_address: Option<&str>) -> Status {
    let mut metadata =
        HashMap::from([("office_id".to_owned(), office.to_owned()), ("partition".into(), partition.into())]);
    if let Some(address) = owner_address {
        metadata.insert("owner_address".into(), address.into());
    }
    let mut details = ErrorDetails::new();
    details.set_error_info("OFFICE_NOT_IN_PARTITION", ERROR_DOMAIN, metadata);
    let message = format!("office {office} is served by partition {partition}, not by this node: ask its owner");
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// `ListRefunds` without an office in a cluster of several partitions: INVALID_ARGUMENT on `office_id` (a list over
/// several partitions cannot be paged with one token).
#[must_use]
pub fn office_required_status() -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("office_id", "is required in a cluster of several partitions");
    Status::with_error_details(Code::InvalidArgument, "invalid request: office_id", details)
}

/// The caller's deadline passed while a forwarded call was on its way.
#[must_use]
pub fn forward_deadline_status() -> Status {
    Status::deadline_exceeded("the deadline passed while the call was forwarded to its partition's owner")
}

/// A gathered answer whose bytes are not the method's message.
#[must_use]
pub fn gather_undecodable_status(partition: &str) -> Status {
    gather_incomplete_status(partition, "its answer did not decode")
}

/// The reason in a status's ErrorInfo, if any.
#[must_use]
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// The request body could not be read whole (the caller went away mid-message): CANCELLED.
#[must_use]
pub fn request_unreadable_status() -> Status {
    Status::cancelled("the request body could not be read")
}
