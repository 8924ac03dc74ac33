//! Moving bookings on with time, and executing a change when the caller needs more than the answer.
//!
//! The ticker calls [`Engine::release_due_bookings`] on every tick: holds past their payment deadline enter their
//! settlement grace, holds past the grace expire, and confirmed bookings whose session ended without a check-in become
//! no-shows. Each is a logged event stamped with the instant it happened (deadline, end of grace, end of session), so a
//! restart after downtime gives the same result as a service that never stopped.

use super::Engine;
use crate::domain::{BookingState, Command, Execution, RequestId, Timestamp};
use crate::limits::{EXPIRIES_PER_TICK_MAX, NO_SHOWS_PER_TICK_MAX};
use crate::metrics as names;

impl Engine {
    /// Moves on every booking that time has caught up with at `now` (at most a bounded number of each kind per call),
    /// then waits until those changes are durable. Returns how many holds expired.
    pub async fn release_due_bookings(&self, now: Timestamp) -> usize {
        let log = self.events();
        let mut last_position = None;
        let mut expired = 0;
        let mut ended = Vec::new();
        for booking_id in self.book.due_expiries(now, EXPIRIES_PER_TICK_MAX) {
            if let Some((booking, position)) = self.book.expire(booking_id, now, &log) {
                last_position = Some(position);
                ended.push((booking.applicant.nik, booking.state));
                // Otherwise the hold only entered its settlement grace: its slot is still reserved.
                if booking.state == BookingState::Expired {
                    let office = booking.slot.office_id.to_string();
                    metrics::counter!(names::EXPIRIES_TOTAL, "office" => office).increment(1);
                    expired += 1;
                }
            }
        }
        for booking_id in self.book.due_no_shows(now, NO_SHOWS_PER_TICK_MAX) {
            if let Some((booking, position)) = self.book.mark_no_show(booking_id, now, &log) {
                last_position = Some(position);
                ended.push((booking.applicant.nik, booking.state));
                let office = booking.slot.office_id.to_string();
                metrics::counter!(names::NO_SHOWS_TOTAL, "office" => office).increment(1);
            }
        }
        if let Some(position) = last_position {
            self.await_durable(position).await;
            self.release_claims_of(&ended).await;
        }
        expired
    }

    /// Like [`Engine::execute`], but returns the whole execution: whether the answer was logged by this call or is a
    /// remembered one. For counting effects exactly once (a refund recorded, not its retries).
    pub async fn execute_detailed(&self, request_id: &RequestId, command: &Command) -> Execution {
        let now = self.clock.now();
        let execution = self.book.execute(request_id, command, now, &self.events());
        if let Some(position) = self.durable_before_answering(&execution) {
            self.await_durable(position).await;
        }
        tracing::debug!(command = command.name(), request_id = %request_id, repeated = execution.repeated,
            outcome = match &execution.outcome { Ok(_) => "ok", Err(rejection) => rejection.reason() }, "executed");
        self.release_ended_claims(&execution.outcome).await;
        execution
    }
}
