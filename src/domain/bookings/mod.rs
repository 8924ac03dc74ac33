//! Bookings: a booking through its life (awaiting payment, confirmed, checked in, cancelled, expired), refunds, the
//! policy knobs that bound them, and deciding the commands that act on them (hold, pay, cancel, reschedule, check in;
//! amendments in `amend.rs`).

pub mod amend;
pub mod booking;
pub mod decide;
pub mod refund;
pub mod rules;
