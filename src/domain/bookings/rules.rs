//! The policy knobs of the quota book: limits and windows that come from configuration and shape every decision.

/// Policy knobs of the quota book (from configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookRules {
    /// Most active bookings one applicant may have across all offices.
    pub applicant_active_bookings_max: u32,
    /// How long a hold's slot stays reserved after its payment deadline for a payment made before the deadline but
    /// notified late (bank to payment network to here), in milliseconds. 0: the slot returns at the deadline.
    pub payment_settlement_grace_ms: i64,
    /// Most times a booking may be rescheduled.
    pub reschedules_max: u32,
    /// A reschedule must happen at least this many days before the appointment.
    pub reschedule_days_before_min: i32,
    /// Most times a booking's applicant data or service may be amended.
    pub amendments_max: u32,
    /// How long request ids are remembered, in milliseconds.
    pub request_retention_ms: i64,
    /// Most request records kept; beyond it new mutations are refused until old ones are forgotten.
    pub requests_max: u64,
    /// Most bookings kept.
    pub bookings_max: u64,
    /// A waiting room opens this long before its release instant; joiners before the instant are drawn in random
    /// order.
    pub waiting_room_pre_open_ms: i64,
    /// An admitted ticket must hold within this long.
    pub admission_ttl_ms: i64,
    /// Admitted-and-not-yet-booked tickets are kept at most at remaining slots times this percentage.
    pub admission_factor_percent: u32,
    /// A waiting ticket nobody watches for this long expires.
    pub ticket_idle_ttl_ms: i64,
    /// Most tickets in one waiting room.
    pub tickets_per_room_max: u64,
    /// Most tickets one waiting room admits per second, paced over its steps (see `waiting_room::step`).
    pub admissions_per_second_max: u32,
}

impl Default for BookRules {
    fn default() -> BookRules {
        BookRules {
            applicant_active_bookings_max: 1,
            payment_settlement_grace_ms: 15 * 60_000,
            reschedules_max: 1,
            reschedule_days_before_min: 1,
            amendments_max: 2,
            request_retention_ms: 24 * 3_600_000,
            requests_max: 5_000_000,
            bookings_max: 20_000_000,
            waiting_room_pre_open_ms: 15 * 60_000,
            admission_ttl_ms: 5 * 60_000,
            admission_factor_percent: 100,
            ticket_idle_ttl_ms: 2 * 60_000,
            tickets_per_room_max: 2_000_000,
            admissions_per_second_max: 1_000,
        }
    }
}
