//! Named maxima, and the fixed periods of the background work, in one place, with the relationships between them
//! checked at compile time.
//!
//! Every queue, map and message in antrean has a bound; hitting one is an answer to the caller (RESOURCE_EXHAUSTED
//! with a retry hint), never unbounded growth.

/// Lock shards of the quota book. A power of two so a hash maps to a shard with a mask; 64 keeps the chance that two
/// unrelated commands share a lock small on machines with tens of cores, while a lock-everything admin command stays
/// cheap.
pub const SHARD_COUNT: usize = 64;

/// Most applicants in one group hold (one account books for a family).
pub const GROUP_APPLICANTS_MAX: usize = 5;

/// The highest `booking.amendments_max` the configuration accepts: corrections of typing mistakes are few, and a
/// booking amended more often than this is being used for something else.
pub const AMENDMENTS_MAX: u32 = 10;

/// Most days one availability query may span.
pub const AVAILABILITY_DAYS_MAX: i32 = 62;

/// Most days one schedule may span.
pub const SCHEDULE_DAYS_MAX: i32 = 366;

/// Most sessions in one office's day.
pub const SESSIONS_PER_DAY_MAX: usize = 24;

/// Most slots in one pool of one session.
pub const POOL_CAPACITY_MAX: u32 = 100_000;

/// Most characters of an applicant's full name.
pub const FULL_NAME_CHARS_MAX: usize = 100;

/// Most characters of display texts (office name, city, province, closure reason).
pub const DISPLAY_TEXT_CHARS_MAX: usize = 200;

/// Most offices.
pub const OFFICES_MAX: usize = 1_000;

/// Most schedules one office keeps.
pub const SCHEDULES_PER_OFFICE_MAX: usize = 1_000;

/// Most results in one page of a list.
pub const PAGE_SIZE_MAX: usize = 1_000;

/// Page size when the caller does not choose.
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// Largest gRPC message accepted or sent, in bytes: a group hold is well under 4 KiB; a full page of bookings is
/// about 400 KiB.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// Largest log record, in bytes: a group hold of the most applicants with the longest names is about 2 KiB; admin
/// records with many sessions stay well under this.
pub const LOG_RECORD_BYTES_MAX: u32 = 256 * 1024;

/// Most expiries applied in one tick of the expiry ticker, so a backlog after downtime does not starve callers.
pub const EXPIRIES_PER_TICK_MAX: usize = 10_000;

/// Most confirmed bookings marked no-show per ticker run (the rest wait for the next run, a tick later).
pub const NO_SHOWS_PER_TICK_MAX: usize = 10_000;

/// How long what is kept of a purged booking (office, date, accepted payment) and its refund records stay, counted in
/// days from the appointment date back from a later purge's cut-off: a payment notification more than a year after
/// the appointment is answered `BOOKING_NOT_FOUND`. About 100 bytes per purged booking.
pub const PURGED_BOOKINGS_KEPT_DAYS: i32 = 366;

/// How far ahead of the server's clock a payment's `paid_at` may be (clock skew between the payment network and this
/// server) before it is refused as being in the future.
pub const PAID_AT_AHEAD_MS_MAX: i64 = 30_000;

/// Most tickets admitted or expired in one step of a waiting room, so a step stays short under the waiting-rooms lock
/// (a step is one log record; 2,000 ticket ids keep it far below `LOG_RECORD_BYTES_MAX`).
pub const WAITING_ROOM_STEP_TICKETS_MAX: usize = 2_000;

/// The largest `booking.admissions_per_second_max` accepted: ten steps a second (the default tick) of
/// [`WAITING_ROOM_STEP_TICKETS_MAX`] each.
pub const WAITING_ROOM_ADMISSIONS_PER_SECOND_MAX: u32 = 10 * WAITING_ROOM_STEP_TICKETS_MAX as u32;

/// Most tickets checked for idleness per pass (about once a second, each a look-up under the rooms lock), so one pass
/// stays short however many tickets went quiet at once; the rest are checked on later passes. Ten lines' steps worth.
pub const IDLE_CHECK_TICKETS_MAX: usize = 10 * WAITING_ROOM_STEP_TICKETS_MAX;

/// Most tickets one applicant takes in one waiting room: a join after a ticket ended (left, went idle, let the
/// admission lapse, or booked and the booking ended) gives a new ticket at the back of the line, this many times at
/// most. Each ticket costs a few hundred bytes until the line ends; holds are bounded by the anti-hoarding limits.
pub const JOINS_PER_APPLICANT_PER_ROOM_MAX: usize = 10;

// A step's ticket ids (8 bytes each, postcard uses at most 10, and one byte of party size) in its three lists fit in
// one log record.
const _: () = assert!(WAITING_ROOM_STEP_TICKETS_MAX * 11 * 3 < LOG_RECORD_BYTES_MAX as usize);
const _: () = assert!(JOINS_PER_APPLICANT_PER_ROOM_MAX <= u8::MAX as usize);
const _: () = assert!(GROUP_APPLICANTS_MAX <= u8::MAX as usize);

const _: () = assert!(SHARD_COUNT.is_power_of_two());
const _: () = assert!(PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX);
const _: () = assert!(GROUP_APPLICANTS_MAX >= 1);
// A page of the largest bookings must fit in one message: about 400 bytes encoded per booking.
const _: () = assert!(PAGE_SIZE_MAX * 400 < GRPC_MESSAGE_BYTES_MAX);

/// Most Watch streams open at once; each costs a task and a small channel (a few KiB).
pub const WATCH_STREAMS_MAX: usize = 50_000;

/// Most gRPC calls one HTTP/2 connection may have open at once. A client multiplexes its calls over one connection;
/// 1024 is far more than one client needs to keep the server busy, and it bounds what one connection can open before
/// `server.in_flight_requests_max` refuses (each open stream costs buffers even before a handler runs).
pub const HTTP2_STREAMS_PER_CONNECTION_MAX: u32 = 1024;

/// How often an idle HTTP/2 connection is pinged, in seconds: often enough that a dead peer or a load balancer that
/// dropped the connection is noticed within a minute, rare enough to cost nothing.
pub const HTTP2_KEEPALIVE_INTERVAL_SECONDS: u64 = 30;

/// How often the gauges (free slots, active holds, waiting-room depths, disk space, uptime) are published, in
/// seconds. Publishing walks every office and waiting room; Prometheus scrapes every 15 s or so, so 5 s keeps the
/// gauges fresh for each scrape without the walk showing in a profile.
pub const GAUGE_PERIOD_SECONDS: u64 = 5;

/// How often the snapshot thread asks whether a snapshot is due, in milliseconds. Snapshots are due after minutes or a
/// million records, so a quarter of a second is precise enough and costs one atomic read and one lock.
pub const SNAPSHOT_POLL_MS: u64 = 250;

/// How often the tick looks for request ids past their retention, in seconds. It walks every remembered request;
/// retention is measured in hours, so every 10 seconds is plenty.
pub const STALE_REQUEST_SCAN_SECONDS: u64 = 10;

/// How often the tick looks for waiting tickets nobody watches, in seconds. It walks every waiting ticket; idle times
/// are minutes, so once a second is precise enough.
pub const IDLE_TICKET_SCAN_SECONDS: u64 = 1;

const _: () = assert!(HTTP2_STREAMS_PER_CONNECTION_MAX >= 1);
const _: () = assert!(GAUGE_PERIOD_SECONDS >= 1 && SNAPSHOT_POLL_MS >= 1);

/// Shortest time between two Watch messages that only move `ahead` and `estimated_wait`, in milliseconds: a change
/// of state, place or admission is sent at once, the countdown at most this often.
pub const WATCH_COUNTDOWN_INTERVAL_MS: u64 = 1_000;
