//! Conversions between the wire types of `antrean.v1` and the core's types. Request conversions validate every field
//! and collect every violation, so a caller fixes all of them in one round trip.

use crate::domain::{
    AccountId, Applicant, Booking, BookingId, BookingState, Date, FieldViolation, Nik, Office, OfficeId,
    OfficeSettings, OfficeStats, PaymentReference, Pool, Refund, RefundReason, Rejection, RequestId, ServiceType,
    SessionId, SessionState, SessionTemplate, TicketState, TimeOfDay, Timestamp, is_plain_text,
};
use crate::limits::FULL_NAME_CHARS_MAX;
use crate::proto;

/// Collects field violations while converting a request.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records several.
    pub fn extend(&mut self, violations: Vec<FieldViolation>) {
        self.0.extend(violations);
    }

    /// `value` if no violation was recorded, else every violation.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Rejection> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(Rejection::Invalid(self.0)),
        }
    }

    /// Parses an id, recording a violation when it is malformed.
    pub fn id<T>(&mut self, field: &str, text: &str, parse: fn(&str) -> Option<T>, rule: &str) -> Option<T> {
        let parsed = parse(text);
        if parsed.is_none() {
            self.add(field, if text.is_empty() { "is required".to_owned() } else { format!("must be {rule}") });
        }
        parsed
    }

    /// A request id.
    pub fn request_id(&mut self, text: &str) -> Option<RequestId> {
        self.id("request_id", text, RequestId::parse, RequestId::RULE)
    }

    /// An office id.
    pub fn office_id(&mut self, field: &str, text: &str) -> Option<OfficeId> {
        self.id(field, text, OfficeId::parse, OfficeId::RULE)
    }

    /// A session id.
    pub fn session_id(&mut self, field: &str, text: &str) -> Option<SessionId> {
        self.id(field, text, SessionId::parse, SessionId::RULE)
    }

    /// A booking id.
    pub fn booking_id(&mut self, text: &str) -> Option<BookingId> {
        self.id("booking_id", text, BookingId::parse, BookingId::RULE)
    }

    /// An account id.
    pub fn account_id(&mut self, text: &str) -> Option<AccountId> {
        self.id("account_id", text, AccountId::parse, AccountId::RULE)
    }

    /// A payment reference.
    pub fn payment_reference(&mut self, text: &str) -> Option<PaymentReference> {
        self.id("payment_reference", text, PaymentReference::parse, PaymentReference::RULE)
    }

    /// A date that exists.
    pub fn date(&mut self, field: &str, date: Option<&proto::Date>) -> Option<Date> {
        parse_date(date).map_err(|problem| self.add(field, problem)).ok()
    }

    /// An instant between 1970 and the end of 9999, with nanoseconds in range; sub-millisecond parts are dropped.
    pub fn timestamp(&mut self, field: &str, at: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
        const SECONDS_MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let parsed = at.filter(|at| (0..=SECONDS_MAX).contains(&at.seconds) && (0..1_000_000_000).contains(&at.nanos));
        let parsed = parsed.map(|at| Timestamp(at.seconds * 1000 + i64::from(at.nanos / 1_000_000)));
        if parsed.is_none() {
            self.add(field, if at.is_none() { "is required" } else { "must be a time between 1970 and 9999" });
        }
        parsed
    }

    /// An optional instant: `None` when absent, else checked like [`Violations::timestamp`].
    pub fn optional_timestamp(
        &mut self,
        field: &str,
        at: Option<&prost_types::Timestamp>,
    ) -> Option<Option<Timestamp>> {
        match at {
            None => Some(None),
            Some(at) => self.timestamp(field, Some(at)).map(Some),
        }
    }

    /// A time of day.
    pub fn time_of_day(&mut self, field: &str, time: Option<&proto::TimeOfDay>) -> Option<TimeOfDay> {
        let parsed = time.and_then(|time| TimeOfDay::new(time.hours, time.minutes));
        if parsed.is_none() {
            self.add(field, "must be a time of day, 00:00 to 23:59");
        }
        parsed
    }

    /// A service type.
    pub fn service(&mut self, field: &str, value: i32) -> Option<ServiceType> {
        let parsed = match proto::ServiceType::try_from(value) {
            Ok(proto::ServiceType::NewPassport) => Some(ServiceType::NewPassport),
            Ok(proto::ServiceType::Replacement) => Some(ServiceType::Replacement),
            _ => None,
        };
        if parsed.is_none() {
            self.add(field, "must be SERVICE_TYPE_NEW_PASSPORT or SERVICE_TYPE_REPLACEMENT");
        }
        parsed
    }

    /// A pool.
    pub fn pool(&mut self, field: &str, value: i32) -> Option<Pool> {
        let parsed = match proto::Pool::try_from(value) {
            Ok(proto::Pool::Regular) => Some(Pool::Regular),
            Ok(proto::Pool::Express) => Some(Pool::Express),
            Ok(proto::Pool::Priority) => Some(Pool::Priority),
            _ => None,
        };
        if parsed.is_none() {
            self.add(field, "must be POOL_REGULAR, POOL_EXPRESS or POOL_PRIORITY");
        }
        parsed
    }

    /// A full name, trimmed: 1 to [`FULL_NAME_CHARS_MAX`] characters of plain text (holds and amendments alike).
    pub fn full_name(&mut self, field: &str, text: &str) -> Option<String> {
        let name = parse_full_name(text);
        if name.is_none() {
            self.add(field, full_name_rule());
        }
        name
    }

    /// An applicant: NIK that encodes the given birth date, a name, a birth date not after `today`.
    pub fn applicant(&mut self, field: &str, applicant: Option<&proto::Applicant>, today: Date) -> Option<Applicant> {
        let Some(applicant) = applicant else {
            self.add(field, "is required");
            return None;
        };
        // Field paths are spelled only for a violation: a valid applicant (every hold has one) allocates no text.
        let path = |leaf: &str| format!("{field}.{leaf}");
        let birth_date =
            parse_date(applicant.birth_date.as_ref()).map_err(|problem| self.add(path("birth_date"), problem)).ok();
        if birth_date.is_some_and(|birth| birth > today || today.days_since(birth) > 130 * 366) {
            self.add(path("birth_date"), "must be a past date within a human lifetime");
        }
        let nik = match birth_date {
            Some(birth) => Nik::parse_matching(&applicant.nik, birth),
            None => Nik::parse(&applicant.nik),
        };
        let nik = nik.map_err(|problem| self.add(path("nik"), problem.description())).ok();
        let full_name = parse_full_name(&applicant.full_name);
        if full_name.is_none() {
            self.add(path("full_name"), full_name_rule());
        }
        Some(Applicant {
            nik: nik?,
            full_name: full_name?.into(),
            birth_date: birth_date?,
            has_disability: applicant.has_disability,
        })
    }

    /// Sessions of an office or a schedule.
    pub fn sessions(&mut self, field: &str, sessions: &[proto::SessionTemplate]) -> Option<Vec<SessionTemplate>> {
        let mut templates = Vec::with_capacity(sessions.len());
        for (index, session) in sessions.iter().enumerate() {
            let path = format!("{field}[{index}]");
            let session_id = self.session_id(&format!("{path}.session_id"), &session.session_id);
            let starts_at = self.time_of_day(&format!("{path}.starts_at"), session.starts_at.as_ref());
            let ends_at = self.time_of_day(&format!("{path}.ends_at"), session.ends_at.as_ref());
            let mut capacities: Vec<(Pool, u32)> = Vec::new();
            for (slot, capacity) in session.capacities.iter().enumerate() {
                let pool = self.pool(&format!("{path}.capacities[{slot}].pool"), capacity.pool);
                if let Some(pool) = pool.filter(|pool| capacities.iter().any(|(seen, _)| seen == pool)) {
                    self.add(format!("{path}.capacities[{slot}].pool"), format!("{} listed twice", pool.name()));
                }
                capacities.extend(pool.map(|pool| (pool, capacity.capacity)));
            }
            if let (Some(session_id), Some(starts_at), Some(ends_at)) = (session_id, starts_at, ends_at) {
                templates.push(SessionTemplate { session_id, starts_at, ends_at, capacities });
            }
        }
        templates.sort_by_key(|template| template.starts_at);
        self.extend(crate::domain::validate_sessions(&templates, field));
        Some(templates)
    }

    /// An office's settings.
    pub fn office(&mut self, office: Option<&proto::Office>) -> Option<OfficeSettings> {
        let Some(office) = office else {
            self.add("office", "is required");
            return None;
        };
        let office_id = self.office_id("office.office_id", &office.office_id);
        let services: Vec<ServiceType> = office
            .services
            .iter()
            .enumerate()
            .filter_map(|(index, service)| self.service(&format!("office.services[{index}]"), *service))
            .collect();
        let sessions = self.sessions("office.sessions", &office.sessions)?;
        let release_time = self.time_of_day("office.release_time", office.release_time.as_ref());
        let working_weekdays = office.working_weekdays.iter().map(|day| (*day).clamp(0, 8) as i8).collect();
        let settings = OfficeSettings {
            office_id: office_id?,
            display_name: office.display_name.clone(),
            time_zone: office.time_zone.clone(),
            city: office.city.clone(),
            province: office.province.clone(),
            services,
            sessions,
            working_weekdays,
            payment_window_ms: if office.payment_window_seconds == 0 {
                7_200_000
            } else {
                office.payment_window_seconds.saturating_mul(1000)
            },
            booking_horizon_days: office.booking_horizon_days,
            release_days_before: office.release_days_before,
            release_time: release_time?,
        };
        self.extend(crate::domain::validate_settings(&settings, "office."));
        Some(settings)
    }
}

/// A protobuf timestamp.
#[must_use]
pub fn timestamp(instant: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.0.div_euclid(1000),
        nanos: (instant.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf date.
#[must_use]
pub fn date(date: Date) -> proto::Date {
    proto::Date { year: i32::from(date.year), month: i32::from(date.month), day: i32::from(date.day) }
}

fn time_of_day(time: TimeOfDay) -> proto::TimeOfDay {
    proto::TimeOfDay { hours: i32::from(time.hours), minutes: i32::from(time.minutes) }
}

/// A service on the wire.
#[must_use]
pub fn service(service: ServiceType) -> i32 {
    match service {
        ServiceType::NewPassport => proto::ServiceType::NewPassport as i32,
        ServiceType::Replacement => proto::ServiceType::Replacement as i32,
    }
}

/// A pool on the wire.
pub fn pool(pool: Pool) -> i32 {
    match pool {
        Pool::Regular => proto::Pool::Regular as i32,
        Pool::Express => proto::Pool::Express as i32,
        Pool::Priority => proto::Pool::Priority as i32,
    }
}

/// A pool's name on the wire (`POOL_REGULAR`), for error metadata.
#[must_use]
pub fn pool_name(pool: Pool) -> &'static str {
    match pool {
        Pool::Regular => "POOL_REGULAR",
        Pool::Express => "POOL_EXPRESS",
        Pool::Priority => "POOL_PRIORITY",
    }
}

fn booking_state(state: BookingState) -> i32 {
    let wire = match state {
        BookingState::AwaitingPayment => proto::BookingState::AwaitingPayment,
        BookingState::Confirmed => proto::BookingState::Confirmed,
        BookingState::CheckedIn => proto::BookingState::CheckedIn,
        BookingState::Cancelled => proto::BookingState::Cancelled,
        BookingState::Expired => proto::BookingState::Expired,
        BookingState::NoShow => proto::BookingState::NoShow,
    };
    wire as i32
}

/// A booking on the wire. Unless `reveal_nik`, the NIK is masked and the birth date left out: digits 7 to 12 of a
/// NIK are the birth date, so sending it beside the masked NIK would give all but the last four digits back.
#[must_use]
pub fn booking(booking: &Booking, reveal_nik: bool) -> proto::Booking {
    let nik = if reveal_nik { booking.applicant.nik.to_string() } else { booking.applicant.nik.masked() };
    let birth_date = reveal_nik.then(|| date(booking.applicant.birth_date));
    proto::Booking {
        booking_id: booking.booking_id.to_string(),
        state: booking_state(booking.state),
        office_id: booking.slot.office_id.to_string(),
        service: service(booking.service),
        date: Some(date(booking.slot.date)),
        session_id: booking.slot.session_id.to_string(),
        pool: pool(booking.slot.pool),
        applicant: Some(proto::Applicant {
            nik,
            full_name: booking.applicant.full_name.to_string(),
            birth_date,
            has_disability: booking.applicant.has_disability,
        }),
        account_id: booking.account_id.to_string(),
        payment_deadline: Some(timestamp(booking.payment_deadline)),
        payment_code: booking.payment_code_text(),
        payment_reference: booking.payment_reference.as_ref().map(ToString::to_string).unwrap_or_default(),
        created_at: Some(timestamp(booking.created_at)),
        updated_at: Some(timestamp(booking.updated_at)),
        reschedules_used: booking.reschedules_used,
        group_id: booking.group_id.map(|group| group.to_string()).unwrap_or_default(),
        session_starts_at: Some(timestamp(booking.session_starts_at)),
        settlement_deadline: booking.settlement_deadline.map(timestamp),
        amendments_used: u32::from(booking.amendments_used),
        last_amended_at: booking.last_amended_at.map(timestamp),
    }
}

/// Session templates on the wire.
#[must_use]
pub fn sessions(templates: &[SessionTemplate]) -> Vec<proto::SessionTemplate> {
    templates
        .iter()
        .map(|template| proto::SessionTemplate {
            session_id: template.session_id.to_string(),
            starts_at: Some(time_of_day(template.starts_at)),
            ends_at: Some(time_of_day(template.ends_at)),
            capacities: template
                .capacities
                .iter()
                .map(|(each, capacity)| proto::PoolCapacity { pool: pool(*each), capacity: *capacity })
                .collect(),
        })
        .collect()
}

/// An office's figures as `GetOfficeStats` answers them.
#[must_use]
pub fn office_stats(office_id: &OfficeId, stats: &OfficeStats) -> proto::GetOfficeStatsResponse {
    let counters = &stats.counters;
    proto::GetOfficeStatsResponse {
        office_id: office_id.to_string(),
        capacity: stats.capacity,
        remaining: stats.remaining,
        active_holds: stats.active_holds,
        confirmed: stats.confirmed,
        checked_in: stats.checked_in,
        holds_total: counters.holds_total,
        cancellations_total: counters.cancellations_total,
        expiries_total: counters.expiries_total,
        revivals_total: counters.revivals_total,
        refunds_total: counters.refunds_total,
        reschedules_total: counters.reschedules_total,
        no_shows_total: counters.no_shows_total,
    }
}

/// An office on the wire.
#[must_use]
pub fn office(office: &Office) -> proto::Office {
    let settings = &office.settings;
    proto::Office {
        office_id: settings.office_id.to_string(),
        display_name: settings.display_name.clone(),
        time_zone: settings.time_zone.clone(),
        services: settings.services.iter().map(|each| service(*each)).collect(),
        sessions: sessions(&settings.sessions),
        working_weekdays: settings.working_weekdays.iter().map(|day| i32::from(*day)).collect(),
        payment_window_seconds: settings.payment_window_ms / 1000,
        booking_horizon_days: settings.booking_horizon_days,
        release_days_before: settings.release_days_before,
        release_time: Some(time_of_day(settings.release_time)),
        city: settings.city.clone(),
        province: settings.province.clone(),
    }
}

/// Whether a pool can be booked now, on the wire.
#[must_use]
pub fn session_state(state: SessionState) -> i32 {
    let wire = match state {
        SessionState::NotYetOpen => proto::SessionState::NotYetOpen,
        SessionState::Open => proto::SessionState::Open,
        SessionState::Full => proto::SessionState::Full,
        SessionState::Closed => proto::SessionState::Closed,
    };
    wire as i32
}

/// A ticket's state on the wire.
#[must_use]
pub fn ticket_state(state: TicketState) -> proto::TicketState {
    match state {
        TicketState::Waiting => proto::TicketState::Waiting,
        TicketState::Admitted => proto::TicketState::Admitted,
        TicketState::SoldOut => proto::TicketState::SoldOut,
        TicketState::Expired => proto::TicketState::Expired,
        TicketState::Booked => proto::TicketState::Booked,
        TicketState::Left => proto::TicketState::Left,
    }
}

/// Availability on the wire.
#[must_use]
pub fn availability(session: &crate::domain::SessionAvailability) -> proto::SessionAvailability {
    proto::SessionAvailability {
        date: Some(date(session.date)),
        session_id: session.session_id.to_string(),
        starts_at: Some(time_of_day(session.starts_at)),
        ends_at: Some(time_of_day(session.ends_at)),
        release_at: Some(timestamp(session.release_at)),
        pools: session
            .pools
            .iter()
            .map(|each| proto::PoolAvailability {
                pool: pool(each.pool),
                capacity: each.capacity,
                remaining: each.remaining,
                state: session_state(each.state),
            })
            .collect(),
        closed: session.closed,
        draw_commitment: session.draw_commitment.map(Vec::from).unwrap_or_default(),
    }
}

/// A refund on the wire.
#[must_use]
pub fn refund(refund: &Refund) -> proto::Refund {
    proto::Refund {
        booking_id: refund.booking_id.to_string(),
        office_id: refund.office_id.to_string(),
        payment_reference: refund.payment_reference.to_string(),
        reason: match refund.reason {
            RefundReason::PaymentExpired => proto::RefundReason::PaymentExpired,
            RefundReason::DuplicatePayment => proto::RefundReason::DuplicatePayment,
            RefundReason::Cancelled => proto::RefundReason::Cancelled,
            RefundReason::BookingPurged => proto::RefundReason::BookingPurged,
        } as i32,
        recorded_at: Some(timestamp(refund.recorded_at)),
    }
}

/// A page size: 0 means the default; otherwise 1 to the most.
pub fn page_size(violations: &mut Violations, requested: i32) -> usize {
    use crate::limits::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
    match requested {
        0 => PAGE_SIZE_DEFAULT,
        size if (1..=PAGE_SIZE_MAX as i32).contains(&size) => size as usize,
        _ => {
            violations.add("page_size", format!("must be 0 (default) or 1 to {PAGE_SIZE_MAX}"));
            PAGE_SIZE_DEFAULT
        }
    }
}

/// A date that exists, or why not.
fn parse_date(date: Option<&proto::Date>) -> Result<Date, &'static str> {
    let date = date.ok_or("is required")?;
    Date::new(date.year, date.month, date.day).ok_or("must be a real calendar date")
}

/// A full name, trimmed, if it is 1 to [`FULL_NAME_CHARS_MAX`] characters of plain text.
fn parse_full_name(text: &str) -> Option<String> {
    let name = text.trim();
    let valid = !name.is_empty() && name.chars().count() <= FULL_NAME_CHARS_MAX && is_plain_text(name);
    valid.then(|| name.to_owned())
}

/// What a full name must be.
fn full_name_rule() -> String {
    format!("must be 1 to {FULL_NAME_CHARS_MAX} printable characters")
}
