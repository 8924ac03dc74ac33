//! Snapshot images written by older builds, as they were laid out: read, then made a current [`Image`]. The log needs
//! no such thing (events only gain variants at the end), but an image is one value whose layout changes with the
//! types it holds.
//!
//! Versions 6 to 2 keep request records under their request ids' text; they are kept under the ids' digests now
//! ([`crate::domain::RequestDigest`]). Versions 5 to 2 keep each remembered answer whole, with copies of its bookings; they become answers by booking id
//! ([`RememberedReply::of_stored`]), kept whole only where a booking they name is no longer in the image. Version 4
//! (before amendments), version 3 (also before waiting rooms had a draw secret) and version 2 (also before bookings had
//! owners) hold bookings without an amendment count, in `bookings` and inside remembered answers; those bookings were
//! never amended.

use super::image::{IMAGE_VERSION, Image, OfficeImage};
use super::remembered::RememberedReply;
use super::shard::{ApplicantRecord, DayKey, DayLedger, OfficeCounters, RequestRecord};
use crate::domain::bookings::booking::{Booking, BookingState, PurgedBooking, SlotRef};
use crate::domain::bookings::refund::Refund;
use crate::domain::catalogue::office::ServiceType;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::{Outcome, Reply};
use crate::domain::values::ids::{AccountId, BookingId, GroupId, OfficeId, PaymentReference, RequestDigest, RequestId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::Timestamp;
use crate::domain::waiting_room::room::{DrawState, TicketId, WaitingRoom, WaitingRoomKey};
use serde::{Deserialize, Serialize};

/// A booking as versions 2 to 4 stored it: [`Booking`] without `amendments_used` and `last_amended_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingV3 {
    /// See [`Booking::booking_id`].
    pub booking_id: BookingId,
    /// See [`Booking::state`].
    pub state: BookingState,
    /// See [`Booking::slot`].
    pub slot: SlotRef,
    /// See [`Booking::service`].
    pub service: ServiceType,
    /// See [`Booking::applicant`].
    pub applicant: crate::domain::bookings::booking::Applicant,
    /// See [`Booking::account_id`].
    pub account_id: AccountId,
    /// See [`Booking::payment_deadline`].
    pub payment_deadline: Timestamp,
    /// See [`Booking::payment_code`].
    pub payment_code: u64,
    /// See [`Booking::payment_reference`].
    pub payment_reference: Option<PaymentReference>,
    /// See [`Booking::created_at`].
    pub created_at: Timestamp,
    /// See [`Booking::updated_at`].
    pub updated_at: Timestamp,
    /// See [`Booking::reschedules_used`].
    pub reschedules_used: u32,
    /// See [`Booking::group_id`].
    pub group_id: Option<GroupId>,
    /// See [`Booking::session_starts_at`].
    pub session_starts_at: Timestamp,
    /// See [`Booking::session_ends_at`].
    pub session_ends_at: Timestamp,
    /// See [`Booking::settlement_deadline`].
    pub settlement_deadline: Option<Timestamp>,
}

impl From<BookingV3> for Booking {
    fn from(old: BookingV3) -> Booking {
        Booking {
            booking_id: old.booking_id,
            state: old.state,
            slot: old.slot,
            service: old.service,
            applicant: old.applicant,
            account_id: old.account_id,
            payment_deadline: old.payment_deadline,
            payment_reference: old.payment_reference,
            created_at: old.created_at,
            updated_at: old.updated_at,
            reschedules_used: old.reschedules_used,
            group_id: old.group_id,
            session_starts_at: old.session_starts_at,
            session_ends_at: old.session_ends_at,
            settlement_deadline: old.settlement_deadline,
            amendments_used: 0,
            last_amended_at: None,
        }
    }
}

impl From<&Booking> for BookingV3 {
    /// The older layout of a booking (for tests that write older images).
    fn from(booking: &Booking) -> BookingV3 {
        BookingV3 {
            booking_id: booking.booking_id,
            state: booking.state,
            slot: booking.slot.clone(),
            service: booking.service,
            applicant: booking.applicant.clone(),
            account_id: booking.account_id.clone(),
            payment_deadline: booking.payment_deadline,
            payment_code: booking.payment_code(),
            payment_reference: booking.payment_reference.clone(),
            created_at: booking.created_at,
            updated_at: booking.updated_at,
            reschedules_used: booking.reschedules_used,
            group_id: booking.group_id,
            session_starts_at: booking.session_starts_at,
            session_ends_at: booking.session_ends_at,
            settlement_deadline: booking.settlement_deadline,
        }
    }
}

/// A remembered answer as versions 2 to 4 stored it: [`Reply`]'s variants of then, with [`BookingV3`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyV3 {
    /// See [`Reply::Held`].
    Held {
        /// The bookings.
        bookings: Vec<BookingV3>,
        /// The group.
        group_id: Option<GroupId>,
    },
    /// See [`Reply::Paid`].
    Paid {
        /// The booking.
        booking: BookingV3,
        /// Revived.
        revived: bool,
        /// Honoured within the settlement grace.
        in_grace: bool,
    },
    /// See [`Reply::Booking`].
    Booking(BookingV3),
    /// See [`Reply::OfficeUpserted`].
    OfficeUpserted {
        /// Created.
        created: bool,
    },
    /// See [`Reply::ScheduleSet`].
    ScheduleSet {
        /// Working days covered.
        dates_scheduled: i32,
    },
    /// See [`Reply::DateClosed`].
    DateClosed {
        /// Active bookings on the date.
        bookings_affected: i32,
    },
    /// See [`Reply::Purged`].
    Purged {
        /// How many.
        bookings_purged: u64,
    },
    /// See [`Reply::Ticket`].
    Ticket {
        /// The ticket.
        ticket_id: TicketId,
    },
    /// See [`Reply::PaymentRepeated`].
    PaymentRepeated {
        /// The booking.
        booking: Option<BookingV3>,
    },
}

impl From<ReplyV3> for Reply {
    fn from(old: ReplyV3) -> Reply {
        match old {
            ReplyV3::Held { bookings, group_id } => {
                Reply::Held { bookings: bookings.into_iter().map(Booking::from).collect(), group_id }
            }
            ReplyV3::Paid { booking, revived, in_grace } => Reply::Paid { booking: booking.into(), revived, in_grace },
            ReplyV3::Booking(booking) => Reply::Booking(booking.into()),
            ReplyV3::OfficeUpserted { created } => Reply::OfficeUpserted { created },
            ReplyV3::ScheduleSet { dates_scheduled } => Reply::ScheduleSet { dates_scheduled },
            ReplyV3::DateClosed { bookings_affected } => Reply::DateClosed { bookings_affected },
            ReplyV3::Purged { bookings_purged } => Reply::Purged { bookings_purged },
            ReplyV3::Ticket { ticket_id } => Reply::Ticket { ticket_id },
            ReplyV3::PaymentRepeated { booking } => Reply::PaymentRepeated { booking: booking.map(Booking::from) },
        }
    }
}

/// A request record as versions 2 to 4 stored it (the log position was never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecordV3 {
    /// See [`RequestRecord::fingerprint`].
    pub fingerprint: u64,
    /// See [`RequestRecord::recorded_at`].
    pub recorded_at: Timestamp,
    /// See [`RequestRecord::outcome`].
    pub outcome: Result<ReplyV3, Rejection>,
}

impl From<RequestRecordV3> for RequestRecordV5 {
    fn from(old: RequestRecordV3) -> RequestRecordV5 {
        RequestRecordV5 {
            fingerprint: old.fingerprint,
            recorded_at: old.recorded_at,
            outcome: old.outcome.map(Reply::from),
        }
    }
}

/// A request record as version 5 stored it: the whole answer, with copies of its bookings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecordV5 {
    /// See [`RequestRecord::fingerprint`].
    pub fingerprint: u64,
    /// See [`RequestRecord::recorded_at`].
    pub recorded_at: Timestamp,
    /// The whole answer.
    pub outcome: Outcome,
}

fn bookings(old: Vec<BookingV3>) -> Vec<Booking> {
    old.into_iter().map(Booking::from).collect()
}

fn requests(old: Vec<(RequestId, RequestRecordV3)>, bookings: &[Booking]) -> Vec<(RequestDigest, RequestRecord)> {
    by_booking_id(old.into_iter().map(|(request_id, record)| (request_id, record.into())).collect(), bookings)
}

/// Request records of whole answers made records of booking ids. `bookings` are the image's, sorted by id.
fn by_booking_id(old: Vec<(RequestId, RequestRecordV5)>, bookings: &[Booking]) -> Vec<(RequestDigest, RequestRecord)> {
    let present = |booking_id| bookings.binary_search_by_key(&booking_id, |booking| booking.booking_id).is_ok();
    by_digest(
        old.into_iter()
            .map(|(request_id, record)| {
                let outcome = record.outcome.map(|reply| RememberedReply::of_stored(reply, present)).map_err(Box::new);
                let record = RequestRecord {
                    fingerprint: record.fingerprint,
                    recorded_at: record.recorded_at,
                    outcome,
                    log_position: 0,
                };
                (request_id, record)
            })
            .collect(),
    )
}

/// Request records by request id made records by digest, in the digest order of a current image.
fn by_digest(old: Vec<(RequestId, RequestRecord)>) -> Vec<(RequestDigest, RequestRecord)> {
    let mut requests: Vec<(RequestDigest, RequestRecord)> =
        old.into_iter().map(|(request_id, record)| (request_id.digest(), record)).collect();
    requests.sort_by_key(|(request, _)| *request);
    requests
}

/// A version 6 image: [`Image`] whose request records are kept under their request ids' text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageV6 {
    /// 6.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<Booking>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by id.
    pub requests: Vec<(RequestId, RequestRecord)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
    /// The caller that made each booking that has one, by booking id.
    pub owners: Vec<(BookingId, String)>,
    /// Next ticket number.
    pub next_ticket_id: u64,
    /// Each waiting room's draw, by line.
    pub draws: Vec<(WaitingRoomKey, DrawState)>,
}

impl From<ImageV6> for Image {
    fn from(old: ImageV6) -> Image {
        Image {
            version: IMAGE_VERSION,
            log_position: old.log_position,
            offices: old.offices,
            days: old.days,
            bookings: old.bookings,
            applicants: old.applicants,
            requests: by_digest(old.requests),
            refunds: old.refunds,
            purged: old.purged,
            counters: old.counters,
            rooms: old.rooms,
            owners: old.owners,
            next_ticket_id: old.next_ticket_id,
            draws: old.draws,
        }
    }
}

/// A version 5 image: [`Image`] whose request records keep whole answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageV5 {
    /// 5.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<Booking>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by id.
    pub requests: Vec<(RequestId, RequestRecordV5)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
    /// The caller that made each booking that has one, by booking id.
    pub owners: Vec<(BookingId, String)>,
    /// Next ticket number.
    pub next_ticket_id: u64,
    /// Each waiting room's draw, by line.
    pub draws: Vec<(WaitingRoomKey, DrawState)>,
}

impl From<ImageV5> for Image {
    fn from(old: ImageV5) -> Image {
        Image {
            version: IMAGE_VERSION,
            log_position: old.log_position,
            offices: old.offices,
            days: old.days,
            requests: by_booking_id(old.requests, &old.bookings),
            bookings: old.bookings,
            applicants: old.applicants,
            refunds: old.refunds,
            purged: old.purged,
            counters: old.counters,
            rooms: old.rooms,
            owners: old.owners,
            next_ticket_id: old.next_ticket_id,
            draws: old.draws,
        }
    }
}

/// A version 4 image: [`Image`] with bookings of the older layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageV4 {
    /// 4.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<BookingV3>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by id.
    pub requests: Vec<(RequestId, RequestRecordV3)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
    /// The caller that made each booking that has one, by booking id.
    pub owners: Vec<(BookingId, String)>,
    /// Next ticket number.
    pub next_ticket_id: u64,
    /// Each waiting room's draw, by line.
    pub draws: Vec<(WaitingRoomKey, DrawState)>,
}

impl From<ImageV4> for Image {
    fn from(old: ImageV4) -> Image {
        let bookings = bookings(old.bookings);
        Image {
            version: IMAGE_VERSION,
            log_position: old.log_position,
            offices: old.offices,
            days: old.days,
            requests: requests(old.requests, &bookings),
            bookings,
            applicants: old.applicants,
            refunds: old.refunds,
            purged: old.purged,
            counters: old.counters,
            rooms: old.rooms,
            owners: old.owners,
            next_ticket_id: old.next_ticket_id,
            draws: old.draws,
        }
    }
}

/// A version 3 image (before waiting rooms had a draw secret): read, then made a current [`Image`] whose rooms commit
/// to no secret (those not drawn yet get one at the engine's next tick), with bookings of the older layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageV3 {
    /// 3.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<BookingV3>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by id.
    pub requests: Vec<(RequestId, RequestRecordV3)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
    /// The caller that made each booking that has one, by booking id.
    pub owners: Vec<(BookingId, String)>,
    /// Next ticket number.
    pub next_ticket_id: u64,
}

impl From<ImageV3> for Image {
    fn from(old: ImageV3) -> Image {
        let bookings = bookings(old.bookings);
        Image {
            version: IMAGE_VERSION,
            log_position: old.log_position,
            offices: old.offices,
            days: old.days,
            requests: requests(old.requests, &bookings),
            bookings,
            applicants: old.applicants,
            refunds: old.refunds,
            purged: old.purged,
            counters: old.counters,
            rooms: old.rooms,
            owners: old.owners,
            next_ticket_id: old.next_ticket_id,
            draws: Vec::new(),
        }
    }
}

/// A version 2 image (before bookings had owners), as older builds wrote it: read, then made a current [`Image`] with
/// no owners (those bookings belong to no booking caller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageV2 {
    /// 2.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Next booking number (not needed since numbers are drawn).
    pub next_booking_id: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<BookingV3>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by id.
    pub requests: Vec<(RequestId, RequestRecordV3)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
}

impl From<ImageV2> for Image {
    fn from(old: ImageV2) -> Image {
        let bookings = bookings(old.bookings);
        Image {
            version: IMAGE_VERSION,
            log_position: old.log_position,
            offices: old.offices,
            days: old.days,
            requests: requests(old.requests, &bookings),
            bookings,
            applicants: old.applicants,
            refunds: old.refunds,
            purged: old.purged,
            counters: old.counters,
            rooms: old.rooms,
            owners: Vec::new(),
            // Version 2 kept no ticket counter: start where a new book does; loading takes the highest ticket of the
            // waiting rooms into account too.
            next_ticket_id: 1,
            draws: Vec::new(),
        }
    }
}
