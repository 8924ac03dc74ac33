//! What a call is routed by: the office it names, the booking or ticket it names (whose partition is found by asking
//! the owners in turn), or nothing (the answer gathers every partition's). Read from the method's path and its
//! decoded request message; pure, no I/O.

use crate::proto;
use prost::Message;

/// How a call finds the node that answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKey {
    /// The partition that serves this office answers.
    Office(String),
    /// The call creates or replaces this office: refused when no partition serves it.
    NewOffice(String),
    /// The partition that holds this booking (or waiting-room ticket) answers: the owners are asked in turn.
    Held(String),
    /// Every partition answers; the answers are merged.
    Gathered(Gathering),
    /// A call about every office that has no merged form (`ListRefunds` without an office): one partition only.
    Unscoped,
    /// This node answers (health, reflection, a method or message it does not know: the handler says what is wrong).
    Local,
}

/// The calls whose answer gathers every partition's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gathering {
    /// `ListOffices`: the offices of every partition.
    Offices,
    /// `FindBookings`: an applicant's bookings in every partition.
    Bookings,
    /// `PurgeBookings`: every partition purges; the counts add up.
    Purge,
}

/// The route of a call to `path` with the (uncompressed) request `message`.
#[must_use]
pub fn route_key(path: &str, message: &[u8]) -> RouteKey {
    let Some((service, method)) = path.strip_prefix('/').and_then(|path| path.split_once('/')) else {
        return RouteKey::Local;
    };
    let key = match service {
        "antrean.v1.BookingService" => booking_route(method, message),
        "antrean.v1.AdminService" => admin_route(method, message),
        "antrean.v1.WaitingRoomService" => waiting_room_route(method, message),
        _ => None,
    };
    key.unwrap_or(RouteKey::Local)
}

fn office<M: Message + Default>(message: &[u8], field: impl FnOnce(M) -> String) -> Option<RouteKey> {
    M::decode(message).ok().map(field).map(RouteKey::Office)
}

fn held<M: Message + Default>(message: &[u8], field: impl FnOnce(M) -> String) -> Option<RouteKey> {
    M::decode(message).ok().map(field).map(RouteKey::Held)
}

fn booking_route(method: &str, message: &[u8]) -> Option<RouteKey> {
    match method {
        "ListOffices" => Some(RouteKey::Gathered(Gathering::Offices)),
        "FindBookings" => Some(RouteKey::Gathered(Gathering::Bookings)),
        "GetAvailability" => office(message, |request: proto::GetAvailabilityRequest| request.office_id),
        "Hold" => office(message, |request: proto::HoldRequest| request.office_id),
        "HoldGroup" => office(message, |request: proto::HoldGroupRequest| request.office_id),
        "ListBookings" => office(message, |request: proto::ListBookingsRequest| request.office_id),
        "CheckApplicant" => {
            let request = proto::CheckApplicantRequest::decode(message).ok()?;
            match request.hold? {
                proto::check_applicant_request::Hold::Single(hold) => Some(RouteKey::Office(hold.office_id)),
                proto::check_applicant_request::Hold::Group(hold) => Some(RouteKey::Office(hold.office_id)),
            }
        }
        "ConfirmPayment" => held(message, |request: proto::ConfirmPaymentRequest| request.booking_id),
        "Cancel" => held(message, |request: proto::CancelRequest| request.booking_id),
        "Reschedule" => held(message, |request: proto::RescheduleRequest| request.booking_id),
        "CheckIn" => held(message, |request: proto::CheckInRequest| request.booking_id),
        "GetBooking" => held(message, |request: proto::GetBookingRequest| request.booking_id),
        "AmendBooking" => held(message, |request: proto::AmendBookingRequest| request.booking_id),
        _ => None,
    }
}

fn admin_route(method: &str, message: &[u8]) -> Option<RouteKey> {
    match method {
        "UpsertOffice" => {
            let request = proto::UpsertOfficeRequest::decode(message).ok()?;
            Some(RouteKey::NewOffice(request.office?.office_id))
        }
        "SetSchedule" => office(message, |request: proto::SetScheduleRequest| request.office_id),
        "CloseDate" => office(message, |request: proto::CloseDateRequest| request.office_id),
        "GetOfficeStats" => office(message, |request: proto::GetOfficeStatsRequest| request.office_id),
        "ListRefunds" => {
            let request = proto::ListRefundsRequest::decode(message).ok()?;
            Some(if request.office_id.is_empty() { RouteKey::Unscoped } else { RouteKey::Office(request.office_id) })
        }
        "PurgeBookings" => Some(RouteKey::Gathered(Gathering::Purge)),
        _ => None,
    }
}

fn waiting_room_route(method: &str, message: &[u8]) -> Option<RouteKey> {
    match method {
        "Join" => office(message, |request: proto::JoinRequest| request.office_id),
        "GetDraw" => office(message, |request: proto::GetDrawRequest| request.office_id),
        "Watch" => held(message, |request: proto::WatchRequest| request.ticket_id),
        "Leave" => held(message, |request: proto::LeaveRequest| request.ticket_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, message: &impl Message) -> RouteKey {
        route_key(path, &message.encode_to_vec())
    }

    #[test]
    fn office_calls_route_by_their_office() {
        let hold = proto::HoldRequest { office_id: "kanim-batam".into(), ..Default::default() };
        assert_eq!(key("/antrean.v1.BookingService/Hold", &hold), RouteKey::Office("kanim-batam".into()));
        let check = proto::CheckApplicantRequest {
            hold: Some(proto::check_applicant_request::Hold::Group(proto::HoldGroupRequest {
                office_id: "kanim-medan".into(),
                ..Default::default()
            })),
        };
        assert_eq!(key("/antrean.v1.BookingService/CheckApplicant", &check), RouteKey::Office("kanim-medan".into()));
        let join = proto::JoinRequest { office_id: "kanim-ambon".into(), ..Default::default() };
        assert_eq!(key("/antrean.v1.WaitingRoomService/Join", &join), RouteKey::Office("kanim-ambon".into()));
        let upsert = proto::UpsertOfficeRequest {
            office: Some(proto::Office { office_id: "kanim-baru".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(key("/antrean.v1.AdminService/UpsertOffice", &upsert), RouteKey::NewOffice("kanim-baru".into()));
    }

    #[test]
    fn booking_and_ticket_calls_route_by_what_they_name_and_lists_gather() {
        let pay = proto::ConfirmPaymentRequest { booking_id: "BK7MFRSRBJBZ".into(), ..Default::default() };
        assert_eq!(key("/antrean.v1.BookingService/ConfirmPayment", &pay), RouteKey::Held("BK7MFRSRBJBZ".into()));
        let watch = proto::WatchRequest { ticket_id: "TK0000000042".into() };
        assert_eq!(key("/antrean.v1.WaitingRoomService/Watch", &watch), RouteKey::Held("TK0000000042".into()));
        let list = proto::ListOfficesRequest {};
        assert_eq!(key("/antrean.v1.BookingService/ListOffices", &list), RouteKey::Gathered(Gathering::Offices));
        let refunds = proto::ListRefundsRequest::default();
        assert_eq!(key("/antrean.v1.AdminService/ListRefunds", &refunds), RouteKey::Unscoped);
    }

    #[test]
    fn what_routing_does_not_know_is_answered_here() {
        assert_eq!(route_key("/grpc.health.v1.Health/Check", &[]), RouteKey::Local);
        assert_eq!(route_key("/antrean.v1.BookingService/NoSuchMethod", &[]), RouteKey::Local);
        assert_eq!(route_key("/antrean.v1.BookingService/Hold", &[0xff, 0xff]), RouteKey::Local, "undecodable");
        assert_eq!(route_key("nonsense", &[]), RouteKey::Local);
    }
}
