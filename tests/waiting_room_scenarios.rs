//! The waiting room never locks anyone out, never leaks a slot, and answers everyone honestly and early: the ten
//! scenarios of issue 11, black-box (the real server, the generated client), one test each.
//!
//! | scenario | test |
//! | --- | --- |
//! | 1. rejoin after a ticket ends | `rejoining_after_a_ticket_ended_gives_a_new_place_at_the_back` |
//! | 2. reschedule inside its own release | `a_confirmed_booking_moves_within_its_own_release` |
//! | 3. a finished appointment does not block | `an_applicant_whose_appointment_is_over_may_queue_again` |
//! | 4. freed slots on an older release | `freed_slots_on_an_older_release_stay_sellable` |
//! | 5. supply is what can be booked | `the_line_counts_only_slots_that_can_be_booked` |
//! | 6. a moved release, a closure for a moment | `moving_the_release_or_closing_a_date_does_not_sell_the_line_out` |
//! | 7. one admission, one party | `one_admission_is_for_one_party` |
//! | 8. early SOLD_OUT by position | `tickets_no_slot_can_reach_are_told_sold_out_at_the_draw` |
//! | 9. Watch pushes | `watch_pushes_each_step_to_every_stream_at_once` |
//! | 10. ended lines are dropped | `a_line_that_is_over_is_dropped_with_its_tickets` |

mod common;

use antrean::proto::admin_service_client::AdminServiceClient;
use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::waiting_room_service_client::WaitingRoomServiceClient;
use antrean::proto::{self, Date, TicketState};
use common::{Options, Server, applicant, create_office, jakarta_date, reason, request_id, test_office};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;
use tonic::{Code, Status};

type Line = WaitingRoomServiceClient<Channel>;
type Booking = BookingServiceClient<Channel>;
type Admin = AdminServiceClient<Channel>;

/// A server with the given `[booking]` settings and its three clients.
struct Scene {
    _server: Server,
    admin: Admin,
    booking: Booking,
    line: Line,
}

async fn scene(booking: &[(&str, &str)]) -> Scene {
    // Holds lapse at their payment deadline here: the settlement grace has tests of its own (tests/payments.rs).
    let mut config =
        String::from("[booking]\nwaiting_room_pre_open_seconds = 600\npayment_settlement_grace_seconds = 0\n");
    for (key, value) in booking {
        config.push_str(&format!("{key} = {value}\n"));
    }
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    let channel = server.channel().await;
    Scene {
        admin: AdminServiceClient::new(channel.clone()),
        booking: BookingServiceClient::new(channel.clone()),
        line: WaitingRoomServiceClient::new(channel),
        _server: server,
    }
}

/// An office like the harness's test office (regular slots `capacity` in each of the sessions 1300-1500 and
/// 1500-1700; two priority slots, which are not behind a line), with a payment window of `payment_window_seconds`.
async fn office(admin: &mut Admin, office_id: &str, capacity: u32, payment_window_seconds: i64) {
    create_office(admin, test_office(office_id, capacity, payment_window_seconds)).await;
}

/// The instant `after` from now, on the wire.
fn instant_in(after: Duration) -> prost_types::Timestamp {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970") + after;
    prost_types::Timestamp { seconds: at.as_secs() as i64, nanos: at.subsec_nanos() as i32 }
}

fn unix_ms(at: &prost_types::Timestamp) -> i64 {
    at.seconds * 1000 + i64::from(at.nanos / 1_000_000)
}

/// Puts `first..=last` of `office_id` behind a line (or not) released at `release_at`.
async fn schedule(
    admin: &mut Admin,
    office_id: &str,
    first: Date,
    last: Date,
    release_at: prost_types::Timestamp,
    waiting_room: bool,
) {
    let request = proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: office_id.into(),
        first_date: Some(first),
        last_date: Some(last),
        release_at: Some(release_at),
        sessions: Vec::new(),
        waiting_room,
    };
    admin.set_schedule(request).await.expect("schedule");
}

async fn close(admin: &mut Admin, office_id: &str, date: Date, reopen: bool) {
    let request = proto::CloseDateRequest {
        request_id: request_id("close"),
        office_id: office_id.into(),
        date: Some(date),
        reason: "pemadaman listrik".into(),
        reopen,
    };
    admin.close_date(request).await.expect("close date");
}

async fn try_join(
    line: &mut Line,
    office_id: &str,
    serial: u32,
    party_size: u32,
    dates: Option<(Date, Date)>,
) -> Result<proto::Ticket, Status> {
    let request = proto::JoinRequest {
        request_id: request_id("join"),
        office_id: office_id.into(),
        service: proto::ServiceType::NewPassport as i32,
        nik: applicant(serial).nik,
        first_date: dates.map(|(first, _)| first),
        last_date: dates.map(|(_, last)| last),
        party_size,
    };
    line.join(request).await.map(|response| response.into_inner().ticket.expect("ticket"))
}

async fn join(line: &mut Line, office_id: &str, serial: u32) -> proto::Ticket {
    try_join(line, office_id, serial, 1, None).await.expect("join")
}

async fn leave(line: &mut Line, ticket_id: &str) -> Result<proto::Ticket, Status> {
    let request = proto::LeaveRequest { request_id: request_id("leave"), ticket_id: ticket_id.into() };
    line.leave(request).await.map(|response| response.into_inner().ticket.expect("ticket"))
}

fn state(ticket: &proto::Ticket) -> TicketState {
    TicketState::try_from(ticket.state).expect("a known state")
}

/// A ticket followed on a Watch stream.
struct Watched {
    stream: tonic::Streaming<proto::WatchResponse>,
    last: proto::Ticket,
}

async fn watch(line: &mut Line, ticket_id: &str) -> Watched {
    let request = proto::WatchRequest { ticket_id: ticket_id.into() };
    let mut stream = line.watch(request).await.expect("watch").into_inner();
    let first = stream.message().await.expect("first message").expect("a message").ticket.expect("ticket");
    Watched { stream, last: first }
}

impl Watched {
    /// Reads the stream until `wanted` holds for the ticket, at most `limit`; returns it and when it arrived.
    async fn until(&mut self, limit: Duration, wanted: impl Fn(&proto::Ticket) -> bool) -> (proto::Ticket, Instant) {
        let deadline = Instant::now() + limit;
        while !wanted(&self.last) {
            let message = tokio::time::timeout_at(deadline.into(), self.stream.message()).await;
            let message = message.unwrap_or_else(|_| panic!("timed out; last seen {:?}", self.last));
            self.last = message.expect("stream").expect("stream still open").ticket.expect("ticket");
        }
        (self.last.clone(), Instant::now())
    }

    async fn until_state(&mut self, wanted: TicketState, limit: Duration) -> proto::Ticket {
        self.until(limit, |ticket| state(ticket) == wanted).await.0
    }
}

/// Holds `session_id` on `date` for `applicants` with `token` (HoldGroup for more than one).
async fn hold(
    booking: &mut Booking,
    office_id: &str,
    date: Date,
    session_id: &str,
    applicants: Vec<proto::Applicant>,
    token: &str,
) -> Result<Vec<proto::Booking>, Status> {
    if applicants.len() == 1 {
        let request = proto::HoldRequest {
            request_id: request_id("hold"),
            office_id: office_id.into(),
            service: proto::ServiceType::NewPassport as i32,
            date: Some(date),
            session_id: session_id.into(),
            pool: proto::Pool::Regular as i32,
            applicant: applicants.into_iter().next(),
            account_id: "account-1".into(),
            admission_token: token.into(),
        };
        return booking.hold(request).await.map(|response| vec![response.into_inner().booking.expect("booking")]);
    }
    let request = proto::HoldGroupRequest {
        request_id: request_id("hold-group"),
        office_id: office_id.into(),
        service: proto::ServiceType::NewPassport as i32,
        date: Some(date),
        session_id: session_id.into(),
        pool: proto::Pool::Regular as i32,
        applicants,
        account_id: "account-family".into(),
        admission_token: token.into(),
    };
    booking.hold_group(request).await.map(|response| response.into_inner().bookings)
}

async fn pay(booking: &mut Booking, booking_id: &str) {
    let request = proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: booking_id.into(),
        payment_reference: format!("SIMPONI-{booking_id}"),
        paid_at: None,
    };
    let paid = booking.confirm_payment(request).await.expect("pay").into_inner().booking.expect("booking");
    assert_eq!(paid.state, proto::BookingState::Confirmed as i32);
}

async fn reschedule(booking: &mut Booking, booking_id: &str, date: Date, session_id: &str) -> Result<(), Status> {
    let request = proto::RescheduleRequest {
        request_id: request_id("reschedule"),
        booking_id: booking_id.into(),
        date: Some(date),
        session_id: session_id.into(),
    };
    booking.reschedule(request).await.map(|_| ())
}

#[track_caller]
fn assert_refused(outcome: Result<impl std::fmt::Debug, Status>, code: Code, wanted: &str) {
    let status = outcome.expect_err("refused");
    assert_eq!((status.code(), reason(&status).as_deref()), (code, Some(wanted)), "{status:?}");
}

/// Checks that `outcome` is INVALID_ARGUMENT naming `field`.
#[track_caller]
fn assert_invalid(outcome: Result<impl std::fmt::Debug, Status>, field: &str) {
    use tonic_types::StatusExt;
    let status = outcome.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let fields: Vec<String> = details
        .bad_request()
        .map_or(Vec::new(), |bad| bad.field_violations.iter().map(|violation| violation.field.clone()).collect());
    assert!(fields.iter().any(|named| named == field), "{field} not in {fields:?}");
}

const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------------------------
// Nobody is locked out.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoining_after_a_ticket_ended_gives_a_new_place_at_the_back() {
    let Scene { mut admin, mut booking, mut line, _server } =
        scene(&[("admission_ttl_seconds", "1"), ("ticket_idle_seconds", "1")]).await;
    let office_id = "kanim-rejoin";
    office(&mut admin, office_id, 1, 1).await;
    let tomorrow = jakarta_date(1);
    schedule(&mut admin, office_id, tomorrow, tomorrow, instant_in(Duration::from_secs(2)), true).await;

    // Join, Leave, Join: a new ticket in line, not the dead one.
    let first = join(&mut line, office_id, 1).await;
    let left = leave(&mut line, &first.ticket_id).await.expect("leave");
    assert_eq!(state(&left), TicketState::Left);
    let again = join(&mut line, office_id, 1).await;
    assert_ne!(again.ticket_id, first.ticket_id, "a new ticket");
    assert_eq!(state(&again), TicketState::Waiting);
    // A second applicant joins and stops watching (the app crashed): idle, then expired.
    let quiet = join(&mut line, office_id, 2).await;

    // Applicant 1 is admitted, does not hold in time: the admission lapses.
    let mut watched = watch(&mut line, &again.ticket_id).await;
    watched.until_state(TicketState::Admitted, WAIT).await;
    watched.until_state(TicketState::Expired, WAIT).await;
    let third = join(&mut line, office_id, 1).await;
    assert_ne!(third.ticket_id, again.ticket_id, "a lapsed admission does not lock the applicant out");
    let mut watched = watch(&mut line, &third.ticket_id).await;
    let admitted = watched.until_state(TicketState::Admitted, WAIT).await;
    assert!(admitted.position > again.position, "at the back of the line");

    let mut quiet_watch = watch(&mut line, &quiet.ticket_id).await;
    quiet_watch.until_state(TicketState::Expired, WAIT).await;
    let back = join(&mut line, office_id, 2).await;
    assert_ne!(back.ticket_id, quiet.ticket_id, "an idle expiry does not lock the applicant out");
    assert!(matches!(state(&back), TicketState::Waiting | TicketState::Admitted), "{back:?}");

    // Applicant 1 holds and does not pay: while the hold is active there is nothing to queue for; once it lapsed,
    // a new ticket, and a new hold.
    let held = hold(&mut booking, office_id, tomorrow, "1300-1500", vec![applicant(1)], &admitted.admission_token)
        .await
        .expect("hold");
    assert_refused(try_join(&mut line, office_id, 1, 1, None).await, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");
    let deadline = Instant::now() + WAIT;
    let fourth = loop {
        match try_join(&mut line, office_id, 1, 1, None).await {
            Ok(ticket) => break ticket,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(status) => panic!("the lapsed hold {} still blocks: {status:?}", held[0].booking_id),
        }
    };
    let mut watched = watch(&mut line, &fourth.ticket_id).await;
    let admitted = watched.until_state(TicketState::Admitted, WAIT).await;
    hold(&mut booking, office_id, tomorrow, "1300-1500", vec![applicant(1)], &admitted.admission_token)
        .await
        .expect("holds again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_booking_moves_within_its_own_release() {
    let Scene { mut admin, mut booking, mut line, _server } = scene(&[]).await;
    let office_id = "kanim-move";
    office(&mut admin, office_id, 2, 7200).await;
    let (first, second) = (jakarta_date(2), jakarta_date(3));
    schedule(&mut admin, office_id, first, second, instant_in(Duration::from_millis(1500)), true).await;
    let ticket = join(&mut line, office_id, 1).await;
    let admitted = watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    let held = hold(&mut booking, office_id, first, "1300-1500", vec![applicant(1)], &admitted.admission_token)
        .await
        .expect("hold");
    pay(&mut booking, &held[0].booking_id).await;

    reschedule(&mut booking, &held[0].booking_id, second, "1300-1500").await.expect("moving one's own slot");
    // The office closes the new date: the booking moves back although its one reschedule is used.
    close(&mut admin, office_id, second, false).await;
    reschedule(&mut booking, &held[0].booking_id, first, "1500-1700").await.expect("off a closed date");

    // A booking from outside the line still cannot move in: that would skip the line.
    let outside = jakarta_date(5);
    let direct = hold(&mut booking, office_id, outside, "1300-1500", vec![applicant(2)], "").await.expect("direct");
    assert_refused(
        reschedule(&mut booking, &direct[0].booking_id, first, "1300-1500").await,
        Code::FailedPrecondition,
        "ADMISSION_REQUIRED",
    );
}

/// An IANA zone (`Etc/GMT±N`) where it is now between 02:00 and 10:00, so that today's 13:00 session is still to
/// come; and today's date there.
fn morning_zone() -> (String, Date) {
    let utc_hour = i32::from(jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).hour());
    let mut offset = 6 - utc_hour;
    if offset < -12 {
        offset += 24;
    }
    // Etc/GMT signs are inverted: Etc/GMT-7 is seven hours ahead of UTC.
    let name = match offset {
        0 => "Etc/GMT".to_owned(),
        ahead if ahead > 0 => format!("Etc/GMT-{ahead}"),
        behind => format!("Etc/GMT+{}", -behind),
    };
    let zone = jiff::tz::TimeZone::get(&name).expect("a bundled zone");
    let today = jiff::Timestamp::now().to_zoned(zone).date();
    (name, Date { year: i32::from(today.year()), month: i32::from(today.month()), day: i32::from(today.day()) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_whose_appointment_is_over_may_queue_again() {
    let Scene { mut admin, mut booking, mut line, _server } = scene(&[]).await;
    let office_id = "kanim-again";
    let (zone, today) = morning_zone();
    let mut settings = test_office(office_id, 2, 7200);
    settings.time_zone = zone;
    create_office(&mut admin, settings).await;
    schedule(&mut admin, office_id, today, today, instant_in(Duration::from_millis(1500)), true).await;

    // Applicant 1 books through the line, pays and comes: the appointment is over.
    let ticket = join(&mut line, office_id, 1).await;
    let admitted = watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    let held = hold(&mut booking, office_id, today, "1300-1500", vec![applicant(1)], &admitted.admission_token)
        .await
        .expect("hold");
    pay(&mut booking, &held[0].booking_id).await;
    let request = proto::CheckInRequest { request_id: request_id("check-in"), booking_id: held[0].booking_id.clone() };
    booking.check_in(request).await.expect("check in");
    let again = try_join(&mut line, office_id, 1, 1, None).await.expect("the line accepts them again");
    assert_ne!(again.ticket_id, ticket.ticket_id, "a new ticket, not the BOOKED one");
    let admitted = watch(&mut line, &again.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    hold(&mut booking, office_id, today, "1500-1700", vec![applicant(1)], &admitted.admission_token)
        .await
        .expect("a second appointment");

    // Applicant 2 books and cancels: nothing blocks a new place in line either.
    let ticket = join(&mut line, office_id, 2).await;
    let admitted = watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    let held = hold(&mut booking, office_id, today, "1300-1500", vec![applicant(2)], &admitted.admission_token)
        .await
        .expect("hold");
    let request = proto::CancelRequest { request_id: request_id("cancel"), booking_id: held[0].booking_id.clone() };
    booking.cancel(request).await.expect("cancel");
    let again = try_join(&mut line, office_id, 2, 1, None).await.expect("accepted again after cancelling");
    assert_ne!(again.ticket_id, ticket.ticket_id);
}

// ---------------------------------------------------------------------------------------------------------------
// No slot leaks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freed_slots_on_an_older_release_stay_sellable() {
    let Scene { mut admin, mut booking, mut line, _server } = scene(&[]).await;
    let office_id = "kanim-older";
    office(&mut admin, office_id, 1, 7200).await;
    let (older, newer) = (jakarta_date(2), jakarta_date(9));
    let older_release = instant_in(Duration::from_millis(1500));
    schedule(&mut admin, office_id, older, older, older_release, true).await;
    let mut bookings = Vec::new();
    for (serial, session_id) in [(1, "1300-1500"), (2, "1500-1700")] {
        let ticket = join(&mut line, office_id, serial).await;
        let admitted = watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
        let held = hold(&mut booking, office_id, older, session_id, vec![applicant(serial)], &admitted.admission_token)
            .await
            .expect("hold");
        pay(&mut booking, &held[0].booking_id).await;
        bookings.push(held[0].booking_id.clone());
    }
    // A newer release opens; then a booking on the older date is cancelled.
    schedule(&mut admin, office_id, newer, newer, instant_in(Duration::from_millis(500)), true).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let request = proto::CancelRequest { request_id: request_id("cancel"), booking_id: bookings[0].clone() };
    booking.cancel(request).await.expect("cancel");

    let ticket = try_join(&mut line, office_id, 3, 1, Some((older, older))).await.expect("joins the older line");
    assert_eq!(ticket.release_at.as_ref().map(unix_ms), Some(unix_ms(&older_release)), "the line gating that date");
    let admitted = watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    hold(&mut booking, office_id, older, "1300-1500", vec![applicant(3)], &admitted.admission_token)
        .await
        .expect("the freed slot is sold again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_counts_only_slots_that_can_be_booked() {
    let Scene { mut admin, mut line, _server, .. } = scene(&[]).await;
    let office_id = "kanim-count";
    office(&mut admin, office_id, 1, 7200).await;
    // One line over yesterday (past), tomorrow (bookable) and a date beyond the 30-day booking window.
    let release = instant_in(Duration::from_millis(1500));
    for date in [jakarta_date(-1), jakarta_date(1), jakarta_date(40)] {
        schedule(&mut admin, office_id, date, date, release, true).await;
    }
    let mut tickets = Vec::new();
    for serial in 1..=8 {
        tickets.push(join(&mut line, office_id, serial).await);
    }
    let mut settled = Vec::new();
    for ticket in &tickets {
        let mut watched = watch(&mut line, &ticket.ticket_id).await;
        settled.push(watched.until(WAIT, |ticket| ticket.position > 0).await.0);
    }
    let count = |wanted: TicketState| settled.iter().filter(|ticket| state(ticket) == wanted).count();
    // Tomorrow's two regular slots are all a hold can take now: two admitted. The far date's two may come later:
    // the next four keep waiting for them; the last two cannot be reached.
    assert_eq!(count(TicketState::Admitted), 2, "{settled:#?}");
    assert_eq!(count(TicketState::Waiting), 4, "{settled:#?}");
    assert_eq!(count(TicketState::SoldOut), 2, "{settled:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_release_or_closing_a_date_does_not_sell_the_line_out() {
    let Scene { mut admin, mut line, _server, .. } = scene(&[]).await;
    let tomorrow = jakarta_date(1);

    // The release moves two seconds later before it comes: tickets follow it and keep their places.
    let moved = "kanim-moved";
    office(&mut admin, moved, 1, 7200).await;
    let first_release = Instant::now() + Duration::from_secs(3);
    schedule(&mut admin, moved, tomorrow, tomorrow, instant_in(Duration::from_secs(3)), true).await;
    let tickets = [join(&mut line, moved, 1).await, join(&mut line, moved, 2).await];
    let later = instant_in(Duration::from_secs(6));
    schedule(&mut admin, moved, tomorrow, tomorrow, later, true).await;
    assert!(Instant::now() < first_release, "setup took longer than the first release instant");
    tokio::time::sleep_until((first_release + Duration::from_secs(1)).into()).await;
    for ticket in &tickets {
        let now = watch(&mut line, &ticket.ticket_id).await.last;
        assert_eq!((state(&now), now.position), (TicketState::Waiting, 0), "not sold out at the old instant: {now:?}");
        assert_eq!(now.release_at.as_ref().map(unix_ms), Some(unix_ms(&later)), "Watch shows the new instant");
    }
    for ticket in &tickets {
        watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    }

    // The date is closed over the release instant, then reopened: the line waits, then admits.
    let closed = "kanim-closed";
    office(&mut admin, closed, 1, 7200).await;
    schedule(&mut admin, closed, tomorrow, tomorrow, instant_in(Duration::from_millis(1500)), true).await;
    let tickets = [join(&mut line, closed, 3).await, join(&mut line, closed, 4).await];
    close(&mut admin, closed, tomorrow, false).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for ticket in &tickets {
        let now = watch(&mut line, &ticket.ticket_id).await.last;
        assert_eq!(state(&now), TicketState::Waiting, "a closure is not a sell-out: {now:?}");
    }
    close(&mut admin, closed, tomorrow, true).await;
    for ticket in &tickets {
        watch(&mut line, &ticket.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_admission_is_for_one_party() {
    let Scene { mut admin, mut booking, mut line, _server } = scene(&[]).await;
    let office_id = "kanim-party";
    office(&mut admin, office_id, 3, 7200).await;
    let tomorrow = jakarta_date(1);
    schedule(&mut admin, office_id, tomorrow, tomorrow, instant_in(Duration::from_millis(1500)), true).await;
    assert_invalid(try_join(&mut line, office_id, 9, 6, None).await, "party_size");

    // A pair first, then a family of five, then one: six slots.
    let pair = try_join(&mut line, office_id, 1, 2, None).await.expect("a pair");
    assert_eq!(pair.party_size, 2);
    let mut pair_watch = watch(&mut line, &pair.ticket_id).await;
    let pair = pair_watch.until_state(TicketState::Admitted, WAIT).await;
    assert_eq!(pair.admitted_party_size, 2);
    let family = try_join(&mut line, office_id, 2, 5, None).await.expect("a family");
    let single = try_join(&mut line, office_id, 3, 1, None).await.expect("one");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Four slots are left for a family of five: nobody behind it is admitted ahead of it.
    for ticket in [&family, &single] {
        let now = watch(&mut line, &ticket.ticket_id).await.last;
        assert_eq!(state(&now), TicketState::Waiting, "{now:?}");
    }

    // The pair's token holds two, not three.
    let trio = vec![applicant(1), applicant(101), applicant(102)];
    assert_invalid(
        hold(&mut booking, office_id, tomorrow, "1300-1500", trio.clone(), &pair.admission_token).await,
        "applicants",
    );
    hold(&mut booking, office_id, tomorrow, "1300-1500", trio[..2].to_vec(), &pair.admission_token)
        .await
        .expect("the pair holds");
    // Four slots left, the family of five at the front with nobody admitted: it takes the four.
    let family = watch(&mut line, &family.ticket_id).await.until_state(TicketState::Admitted, WAIT).await;
    assert_eq!((family.party_size, family.admitted_party_size), (5, 4));
}

// ---------------------------------------------------------------------------------------------------------------
// Honest answers, early.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_no_slot_can_reach_are_told_sold_out_at_the_draw() {
    use TicketState::{Admitted, SoldOut, Waiting};
    let Scene { mut admin, mut booking, mut line, _server } = scene(&[]).await;
    let office_id = "kanim-early";
    office(&mut admin, office_id, 1, 7200).await;
    let tomorrow = jakarta_date(1);
    let release = instant_in(Duration::from_secs(3));
    schedule(&mut admin, office_id, tomorrow, tomorrow, release, true).await;
    let mut watched = Vec::new();
    for serial in 1..=8 {
        let ticket = join(&mut line, office_id, serial).await;
        watched.push((serial, watch(&mut line, &ticket.ticket_id).await));
    }
    // Two slots: at the draw, two admitted, the next two wait (they get a slot should an admission go unused), the
    // last four are told SOLD_OUT with their places, within a tick or two of the draw.
    for (_, each) in &mut watched {
        each.until(WAIT, |ticket| ticket.position > 0).await;
    }
    let told = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    let release_unix = Duration::from_millis(unix_ms(&release) as u64);
    assert!(told < release_unix + Duration::from_secs(2), "told {:?} after the release", told - release_unix);
    watched.sort_by_key(|(_, each)| each.last.position);
    let states: Vec<TicketState> = watched.iter().map(|(_, each)| state(&each.last)).collect();
    assert_eq!(states, vec![Admitted, Admitted, Waiting, Waiting, SoldOut, SoldOut, SoldOut, SoldOut]);
    let positions: Vec<u64> = watched.iter().map(|(_, each)| each.last.position).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>(), "every ticket knows its place");

    // Both admitted hold and pay: nothing can come back, the two waiting are told too.
    for ((serial, each), session_id) in watched[..2].iter().zip(["1300-1500", "1500-1700"]) {
        let token = &each.last.admission_token;
        let held =
            hold(&mut booking, office_id, tomorrow, session_id, vec![applicant(*serial)], token).await.expect("hold");
        pay(&mut booking, &held[0].booking_id).await;
    }
    for (_, each) in &mut watched[2..4] {
        each.until_state(SoldOut, WAIT).await;
    }
    // A cancellation brings one slot back: the earliest ticket in line is admitted, SOLD_OUT as it was, never a
    // newcomer who joined after it.
    let newcomer = join(&mut line, office_id, 50).await;
    assert_eq!(state(&newcomer), SoldOut, "joining a sold-out line is answered at once");
    let listing = proto::ListBookingsRequest {
        office_id: office_id.into(),
        date: Some(tomorrow),
        page_size: 10,
        page_token: String::new(),
    };
    let listed = booking.list_bookings(listing).await.expect("list").into_inner().bookings;
    let request = proto::CancelRequest { request_id: request_id("cancel"), booking_id: listed[0].booking_id.clone() };
    booking.cancel(request).await.expect("cancel");
    let back = watched[2].1.until_state(Admitted, WAIT).await;
    assert_eq!(back.position, 3, "the earliest in line");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let newcomer = watch(&mut line, &newcomer.ticket_id).await.last;
    assert_eq!(state(&newcomer), SoldOut, "not a newcomer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_pushes_each_step_to_every_stream_at_once() {
    let Scene { mut admin, mut line, _server, .. } = scene(&[("expiry_tick_ms", "20")]).await;
    let office_id = "kanim-push";
    office(&mut admin, office_id, 20, 7200).await;
    let tomorrow = jakarta_date(1);
    schedule(&mut admin, office_id, tomorrow, tomorrow, instant_in(Duration::from_secs(3)), true).await;
    // Thirty streams, opened a few milliseconds apart over a quarter of a second (a poller's phase would spread its
    // answers over its whole interval).
    let mut watched = Vec::new();
    for serial in 1..=30 {
        let ticket = join(&mut line, office_id, serial).await;
        watched.push(watch(&mut line, &ticket.ticket_id).await);
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut each in watched {
        tasks.spawn(async move { each.until(WAIT, |ticket| state(ticket) == TicketState::Admitted).await.1 });
    }
    let mut seen = Vec::new();
    while let Some(at) = tasks.join_next().await {
        seen.push(at.expect("watcher"));
    }
    let (first, last) = (seen.iter().min().expect("seen"), seen.iter().max().expect("seen"));
    // Forty slots: all thirty are admitted in one step, and every stream hears of it at once.
    assert!(*last - *first < Duration::from_millis(150), "admissions reached the streams over {:?}", *last - *first);
}

// ---------------------------------------------------------------------------------------------------------------
// Bounded, like everything else.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_over_is_dropped_with_its_tickets() {
    let Scene { mut admin, mut line, _server, .. } = scene(&[]).await;
    let office_id = "kanim-over";
    office(&mut admin, office_id, 1, 7200).await;
    // A line whose only date has passed is over: nobody joins it.
    let yesterday = jakarta_date(-1);
    schedule(&mut admin, office_id, yesterday, yesterday, instant_in(Duration::from_secs(60)), true).await;
    assert_refused(try_join(&mut line, office_id, 1, 1, None).await, Code::NotFound, "NO_WAITING_ROOM");

    // A line whose dates the office opens without a waiting room is over too: its tickets go with it.
    let tomorrow = jakarta_date(1);
    schedule(&mut admin, office_id, tomorrow, tomorrow, instant_in(Duration::from_secs(60)), true).await;
    let tickets = [join(&mut line, office_id, 1).await, join(&mut line, office_id, 2).await];
    let mut watched = watch(&mut line, &tickets[0].ticket_id).await;
    schedule(&mut admin, office_id, tomorrow, tomorrow, instant_in(Duration::from_secs(60)), false).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match watched.stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect("ends with a status");
    assert_eq!((status.code(), reason(&status).as_deref()), (Code::NotFound, Some("TICKET_NOT_FOUND")));
    assert_refused(leave(&mut line, &tickets[1].ticket_id).await, Code::NotFound, "TICKET_NOT_FOUND");
    assert_refused(try_join(&mut line, office_id, 3, 1, None).await, Code::NotFound, "NO_WAITING_ROOM");
}
