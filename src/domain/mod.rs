//! The allocation core: offices, sessions, pools, holds, bookings and waiting rooms, as a deterministic state machine.
//!
//! Architecture invariant: nothing here does I/O, reads a clock or draws randomness. No tokio, tonic, prost, `std::fs`
//! or `metrics` (`tests/architecture.rs` reads every file of this folder to check it). Time comes in as `now`; events
//! go out through [`EventLog`].
//!
//! Layout (each folder has a module doc of its own):
//! - [`values`]: ids, NIKs, dates and instants, the fixed hash, field violations. Depends on nothing else here.
//! - [`catalogue`]: offices, their session plans, release instants and closures, and deciding admin commands.
//! - [`bookings`]: a booking through its life, refunds, the policy knobs, and deciding booking commands.
//! - [`messages`]: what callers ask (commands), what the log records (events), what the book answers (replies and
//!   rejections).
//! - [`waiting_room`]: the waiting room in front of a release: tickets, the draw, admissions, its events and the
//!   book's operations on it.
//! - [`state`]: the lock-sharded state, the quota book that decides and applies under shard locks, reads, the state
//!   as a value (image) and its invariant checks.
//!
//! Files inside the domain import each other by their full path (`crate::domain::state::shard::DayKey`), never through
//! the re-exports below, so the file graph stays free of cycles (checked by `tests/architecture.rs`). The re-exports
//! are the domain's vocabulary for the layers above.

pub mod bookings;
pub mod catalogue;
pub mod messages;
pub mod state;
pub mod values;
pub mod waiting_room;

#[cfg(test)]
mod book_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod testkit;

pub use bookings::booking::{Applicant, Booking, BookingState, PurgedBooking, SlotRef};
pub use bookings::refund::{Refund, RefundReason};
pub use bookings::rules::BookRules;
pub use catalogue::office::{
    Catalog, Office, OfficeSettings, Pool, ScheduleRule, ServiceType, SessionTemplate, validate_sessions,
    validate_settings,
};
pub use messages::command::{Amendment, Command, HoldCommand};
pub use messages::event::{Event, Stamp};
pub use messages::rejection::Rejection;
pub use messages::reply::{Outcome, Reply};
pub use state::book::{Capture, EventLog, Execution, QuotaBook};
pub use state::check::{ApplicantFinding, HoldCheck};
pub use state::image::{Image, ImageError};
pub use state::older_images::{
    BookingV3, ImageV2, ImageV3, ImageV4, ImageV5, ImageV6, ReplyV3, RequestRecordV3, RequestRecordV5,
};
pub use state::reads::{OfficeStats, PoolAvailability, SessionAvailability, SessionState};
pub use state::remembered::{RememberedOutcome, RememberedReply};
pub use values::ids::{AccountId, BookingId, GroupId, OfficeId, PaymentReference, RequestDigest, RequestId, SessionId};
pub use values::nik::{Nik, NikProblem};
pub use values::text::is_plain_text;
pub use values::time::{Date, TimeOfDay, Timestamp, Zone};
pub use values::violation::FieldViolation;
pub use waiting_room::book::{Advanced, Presence, TicketView};
pub use waiting_room::decide::JoinWish;
pub use waiting_room::draw::{DRAW_ALGORITHM_VERSION, DrawEntry, DrawMismatch, DrawSecret};
pub use waiting_room::event::WaitingRoomEvent;
pub use waiting_room::published::{DrawFigures, PublishedDraw};
pub use waiting_room::room::{TicketId, TicketState, WaitingRoomKey, parse_token};
pub use waiting_room::step::Supply;
