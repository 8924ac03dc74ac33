//! `AmendBooking` on the wire: the request becomes a [`Command::AmendBooking`], every bad field reported at once. The
//! name is validated by the code that validates a hold's applicant name.

use super::convert::Violations;
use crate::domain::{Amendment, Command, Nik, Rejection, RequestId};
use crate::proto;

/// The command of an amendment request, or every violation: a field set to a malformed value, an empty amendment.
/// A NIK that parses is passed on: whether it is the booking's own is for the book to say.
pub fn amend_command(request: &proto::AmendBookingRequest) -> Result<(RequestId, Command), Rejection> {
    let mut violations = Violations::default();
    let request_id = violations.request_id(&request.request_id);
    let booking_id = violations.booking_id(&request.booking_id);
    let full_name = match &request.full_name {
        Some(name) => violations.full_name("full_name", name).map(Some),
        None => Some(None),
    };
    let service = match request.service {
        0 => Some(None),
        value => violations.service("service", value).map(Some),
    };
    let nik = match request.nik.as_str() {
        "" => Some(None),
        text => Nik::parse(text).map_err(|problem| violations.add("nik", problem.description())).ok().map(Some),
    };
    // A request that sets only a NIK is passed on, so that the book refuses it with the reason a NIK cannot change.
    if request.full_name.is_none() && request.has_disability.is_none() && request.service == 0 && request.nik.is_empty()
    {
        violations.add("full_name", "nothing to amend: set full_name, has_disability or service");
    }
    let command = (|| {
        let amendment = Amendment { full_name: full_name?, has_disability: request.has_disability, service: service? };
        Some(Command::AmendBooking { booking_id: booking_id?, amendment, nik: nik? })
    })();
    violations.finish(request_id.zip(command))
}
