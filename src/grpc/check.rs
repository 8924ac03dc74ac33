//! `CheckApplicant` on the wire: which hold request it carries, and what the book found, converted.

use super::convert;
use super::hold::{self, HoldParts};
use crate::domain::{HoldCheck, Rejection};
use crate::proto::{self, check_applicant_request::Hold};

/// The parts of the hold request a check carries, converted as `Hold` or `HoldGroup` convert theirs.
pub fn hold_parts(request: &proto::CheckApplicantRequest) -> Result<HoldParts<'_>, Rejection> {
    match &request.hold {
        Some(Hold::Single(single)) => Ok(hold::single(single)),
        Some(Hold::Group(group)) => Ok(hold::group(group)),
        None => Err(Rejection::invalid("hold", "is required: a HoldRequest (single) or a HoldGroupRequest (group)")),
    }
}

/// The response for what the book found. Unless `reveal_nik`, NIKs are masked as in bookings.
#[must_use]
pub fn response(found: &HoldCheck, reveal_nik: bool) -> proto::CheckApplicantResponse {
    let applicants = found
        .applicants
        .iter()
        .map(|finding| {
            let (ticket_id, ticket_state) = match finding.waiting_room_ticket {
                Some((ticket_id, state)) => (ticket_id.to_string(), convert::ticket_state(state) as i32),
                None => (String::new(), proto::TicketState::Unspecified as i32),
            };
            proto::ApplicantCheck {
                nik: if reveal_nik { finding.nik.to_string() } else { finding.nik.masked() },
                active_booking_ids: finding.active_bookings.iter().map(ToString::to_string).collect(),
                active_bookings_limit_reached: finding.at_active_bookings_limit,
                waiting_room_ticket_id: ticket_id,
                waiting_room_ticket_state: ticket_state,
            }
        })
        .collect();
    proto::CheckApplicantResponse {
        applicants,
        session_state: convert::session_state(found.slot_state),
        remaining: found.remaining,
        opens_at: Some(convert::timestamp(found.opens_at)),
        waiting_room_required: found.behind_waiting_room,
    }
}
