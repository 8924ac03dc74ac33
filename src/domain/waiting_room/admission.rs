//! Which dates a waiting room gates, and whether a hold's admission token lets it through.

use super::room::{TicketId, TicketState, WaitingRoomKey, WaitingRooms};
use crate::domain::bookings::booking::SlotRef;
use crate::domain::catalogue::office::{Catalog, Office, Pool};
use crate::domain::messages::command::HoldCommand;
use crate::domain::messages::rejection::Rejection;
use crate::domain::values::time::{Date, Timestamp};

/// The waiting room that `slot` is behind, if any. The priority pool is not behind the line: it is a quota of its own
/// for applicants over 60, under 5 or with a disability, and the crowd in the line could not use it anyway.
#[must_use]
pub fn waiting_room_for(catalog: &Catalog, slot: &SlotRef) -> Option<WaitingRoomKey> {
    if slot.pool == Pool::Priority {
        return None;
    }
    let plan = catalog.office(&slot.office_id)?.plan(slot.date)?;
    plan.waiting_room.then(|| WaitingRoomKey { office_id: slot.office_id.clone(), release_at: plan.release_at })
}

/// Whether someone in line waits for `slot`: it is behind a waiting room in which a ticket is admitted or waiting. A
/// slot freed there belongs to the line; a late payment must not take it back from under them.
#[must_use]
pub fn line_waits_for(catalog: &Catalog, rooms: Option<&WaitingRooms>, slot: &SlotRef) -> bool {
    let Some(key) = waiting_room_for(catalog, slot) else { return false };
    rooms.and_then(|rooms| rooms.get(&key)).is_some_and(|room| !room.admitted.is_empty() || room.waiting() > 0)
}

/// Whether the line `key` gates a date of `office` from `first` to `last`, looking only at dates from `from` on (the
/// dates before it are past). The range is a line's own dates, so the walk is bounded by the schedules.
#[must_use]
pub fn gates_any_date(office: &Office, key: &WaitingRoomKey, first: Date, last: Date, from: Date) -> bool {
    let start = first.max(from);
    (0..=last.days_since(start))
        .map(|offset| start.plus_days(offset))
        .any(|date| office.plan(date).is_some_and(|plan| plan.waiting_room && plan.release_at == key.release_at))
}

/// Checks the hold's admission token against the waiting room: admitted, unexpired, unused, issued to one of the
/// applicants, and for no more applicants than the admission's party.
pub fn check_admission(
    rooms: Option<&WaitingRooms>,
    key: &WaitingRoomKey,
    hold: &HoldCommand,
    now: Timestamp,
) -> Result<TicketId, Rejection> {
    let token = hold.admission_token.ok_or(Rejection::AdmissionRequired)?;
    let room = rooms.and_then(|rooms| rooms.get(key)).ok_or(Rejection::AdmissionRequired)?;
    let ticket = room.by_token.get(&token).and_then(|ticket_id| room.tickets.get(ticket_id));
    let valid = ticket.is_some_and(|ticket| {
        ticket.state == TicketState::Admitted
            && now < ticket.admission_expires_at
            && hold.applicants.iter().any(|applicant| applicant.nik == ticket.nik)
    });
    match ticket {
        Some(ticket) if valid && hold.applicants.len() > usize::from(ticket.admitted_party) => {
            let description = format!("the admission token covers at most {} applicant(s)", ticket.admitted_party);
            Err(Rejection::invalid("applicants", description))
        }
        Some(ticket) if valid => Ok(ticket.ticket_id),
        _ => Err(Rejection::AdmissionRequired),
    }
}
