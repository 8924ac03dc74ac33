//! A release spike through the waiting room, black-box: about two thousand applicants join a line around the release
//! instant, watch their tickets, hold with their admission token when admitted and pay. Exactly the quota is booked,
//! no session is oversold, admissions go to the lowest places in line, everyone else is told SOLD_OUT, and every
//! post-release joiner is served in arrival order.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::waiting_room_service_client::WaitingRoomServiceClient;
use antrean::proto::{self, TicketState};
use common::{Options, Server, applicant, create_office, jakarta_date, request_id, test_office};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, timeout};
use tonic::Code;
use tonic::transport::Channel;

const OFFICE: &str = "kanim-spike";
/// Regular slots in each of the two sessions: the quota is twice this.
const SESSION_CAPACITY: u32 = 30;
const QUOTA: usize = 2 * SESSION_CAPACITY as usize;
const SESSIONS: [&str; 2] = ["1300-1500", "1500-1700"];
/// Applicants joining before the release instant, then after it.
const EARLY: u32 = 1_000;
const LATE: u32 = 1_000;
/// Admitted applicants who give up their turn (Leave) instead of holding: the line must pass it on.
const DECLINERS: usize = 5;
const CHANNELS: usize = 16;
/// From server start to the release instant: time to create the office and for the early joiners to join.
const RELEASE_IN: Duration = Duration::from_secs(5);
/// Every applicant is done within this long after the release instant.
const APPLICANT_LIMIT: Duration = Duration::from_secs(40);

/// What happened to one applicant.
#[derive(Debug, Default)]
struct Journey {
    serial: u32,
    /// When the Join call was sent and answered, relative to the test's start.
    join_sent: Duration,
    join_answered: Duration,
    /// The position the Join answer carried (0 before the draw).
    joined_position: u64,
    /// The position, when the ticket was admitted, and when the admission was seen.
    admitted_position: Option<u64>,
    admitted_seen: Option<Duration>,
    /// Gave up the turn.
    declined: bool,
    /// The booking made with the token, and the session.
    booked: Option<(String, String)>,
    /// The ticket's last state.
    final_state: Option<TicketState>,
    final_position: u64,
}

/// The demo configuration with fast admissions: tokens last 30 s, tickets never go idle during the test, the room opens
/// ten minutes ahead.
fn spike_config() -> String {
    let mut config = antrean::config::DEMO_CONFIG.to_owned();
    for (key, value) in
        [("admission_ttl_seconds", "30"), ("ticket_idle_ttl_seconds", "600"), ("waiting_room_pre_open_seconds", "600")]
    {
        config = set_booking_key(&config, key, value);
    }
    config
}

/// Sets `key = value` in the `[booking]` table: replaces the line if the key is there, else adds it under the header.
fn set_booking_key(config: &str, key: &str, value: &str) -> String {
    let mut in_booking = false;
    let mut replaced = false;
    let mut lines: Vec<String> = Vec::new();
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_booking = trimmed.starts_with("[booking]");
        }
        let is_key = trimmed.split('=').next().is_some_and(|name| name.trim() == key);
        if in_booking && is_key && !trimmed.starts_with('#') {
            lines.push(format!("{key} = {value}"));
            replaced = true;
        } else {
            lines.push(line.to_owned());
        }
    }
    if !replaced {
        let header = lines.iter().position(|line| line.trim_start().starts_with("[booking]"));
        let header = header.expect("the demo configuration has a [booking] table");
        lines.insert(header + 1, format!("{key} = {value}"));
    }
    lines.join("\n") + "\n"
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_spike_books_exactly_the_quota_in_line_order() {
    let server = Server::start_with(Options { config: Some(spike_config()), ..Options::default() });
    let started = Instant::now();
    let release_at = started + RELEASE_IN;
    let release_unix = unix_now() + RELEASE_IN;
    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(server.channel().await);
    }
    let (_, mut admin) = server.clients().await;
    // Applicants born in 1985 may not use the priority pool, and a line counts every pool's slots: keep only regular
    // slots so the quota is exactly what these applicants can book.
    let mut office = test_office(OFFICE, SESSION_CAPACITY, 7200);
    for session in &mut office.sessions {
        session.capacities.retain(|capacity| capacity.pool == proto::Pool::Regular as i32);
    }
    create_office(&mut admin, office).await;
    let tomorrow = jakarta_date(1);
    let schedule = proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: OFFICE.into(),
        first_date: Some(tomorrow),
        last_date: Some(tomorrow),
        release_at: Some(prost_types::Timestamp {
            seconds: release_unix.as_secs() as i64,
            nanos: release_unix.subsec_nanos() as i32,
        }),
        sessions: Vec::new(),
        waiting_room: true,
    };
    admin.set_schedule(schedule).await.expect("schedule");
    assert!(Instant::now() + Duration::from_secs(2) < release_at, "setup took too long for the early joins");

    let declined = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let early_window = release_at - Duration::from_millis(1_000) - Instant::now();
    for serial in 0..EARLY + LATE {
        let join_at = if serial < EARLY {
            Instant::now() + early_window.mul_f64(f64::from(serial) / f64::from(EARLY))
        } else {
            release_at + Duration::from_millis(500) + Duration::from_millis(u64::from(serial - EARLY) * 2)
        };
        let channel = channels[serial as usize % CHANNELS].clone();
        let declined = Arc::clone(&declined);
        tasks.spawn(async move {
            sleep_until(join_at.into()).await;
            let journey = Journey { serial, ..Journey::default() };
            let deadline = release_at + APPLICANT_LIMIT;
            match timeout(
                deadline.saturating_duration_since(Instant::now()),
                apply(channel, journey, started, tomorrow, declined),
            )
            .await
            {
                Ok(journey) => journey,
                Err(_) => panic!("applicant {serial} did not finish within {APPLICANT_LIMIT:?} of the release"),
            }
        });
    }
    let mut journeys = Vec::new();
    while let Some(journey) = tasks.join_next().await {
        journeys.push(journey.expect("applicant task"));
    }
    let elapsed = started.elapsed();
    check_bookings(&journeys);
    check_line_order(&journeys, release_at - started);
    check_sessions(&channels[0], tomorrow, &journeys).await;
    eprintln!("spike: {} applicants done {elapsed:?} after start", journeys.len());
}

/// One applicant: joins, watches until admitted or done, then holds and pays (or gives up the turn).
async fn apply(
    channel: Channel,
    mut journey: Journey,
    started: Instant,
    date: proto::Date,
    declined: Arc<AtomicUsize>,
) -> Journey {
    let mut line = WaitingRoomServiceClient::new(channel.clone());
    let person = applicant(journey.serial);
    journey.join_sent = started.elapsed();
    let join = proto::JoinRequest {
        request_id: request_id("join"),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        nik: person.nik.clone(),
        first_date: None,
        last_date: None,
        party_size: 1,
    };
    let ticket = retry(|| {
        let mut line = line.clone();
        let join = join.clone();
        async move { line.join(join).await.map(|response| response.into_inner().ticket.expect("ticket")) }
    })
    .await
    .expect("join");
    journey.join_answered = started.elapsed();
    journey.joined_position = ticket.position;
    let ticket_id = ticket.ticket_id.clone();
    let mut current = ticket;
    let mut stream = if state(&current).is_some_and(is_terminal) {
        None
    } else {
        let watch = proto::WatchRequest { ticket_id: ticket_id.clone() };
        Some(line.watch(watch).await.expect("watch").into_inner())
    };
    while let Some(watching) = stream.as_mut() {
        // ADMITTED: go and hold. SOLD_OUT is the answer for everyone no slot can reach: this applicant stops
        // watching (the ticket would keep its place, and come back, only while watched).
        if matches!(state(&current), Some(TicketState::Admitted | TicketState::SoldOut)) {
            break;
        }
        match watching.message().await.expect("watch message") {
            Some(update) => current = update.ticket.expect("ticket"),
            None => stream = None,
        }
    }
    drop(stream);
    if state(&current) == Some(TicketState::Admitted) {
        journey.admitted_position = Some(current.position);
        journey.admitted_seen = Some(started.elapsed());
        if declined.fetch_add(1, Ordering::Relaxed) < DECLINERS {
            journey.declined = true;
            let leave = proto::LeaveRequest { request_id: request_id("leave"), ticket_id: ticket_id.clone() };
            current = line.leave(leave).await.expect("leave").into_inner().ticket.expect("ticket");
        } else {
            journey.booked = Some(book(channel, &journey, &person, &current.admission_token, date).await);
            current = watch_to_end(&mut line, &ticket_id).await;
        }
    }
    journey.final_state = state(&current);
    journey.final_position = current.position;
    journey
}

/// Holds with the admission token in the applicant's preferred session, or the other one when it is full, and pays.
async fn book(
    channel: Channel,
    journey: &Journey,
    person: &proto::Applicant,
    token: &str,
    date: proto::Date,
) -> (String, String) {
    let mut booking = BookingServiceClient::new(channel);
    let first = journey.serial as usize % 2;
    for session_id in [SESSIONS[first], SESSIONS[1 - first]] {
        let hold = proto::HoldRequest {
            request_id: request_id("hold"),
            office_id: OFFICE.into(),
            service: proto::ServiceType::NewPassport as i32,
            date: Some(date),
            session_id: session_id.into(),
            pool: proto::Pool::Regular as i32,
            applicant: Some(person.clone()),
            account_id: format!("account-{}", journey.serial),
            admission_token: token.to_owned(),
        };
        let held = retry(|| {
            let mut booking = booking.clone();
            let hold = hold.clone();
            async move { booking.hold(hold).await }
        })
        .await;
        match held {
            Ok(response) => {
                let booking_id = response.into_inner().booking.expect("booking").booking_id;
                let reference = format!("spike-{}", journey.serial);
                let paid = api::pay(&mut booking, &booking_id, &reference).await.expect("payment");
                let paid = paid.booking.expect("booking");
                assert_eq!(paid.state, proto::BookingState::Confirmed as i32, "paid at once");
                return (booking_id, session_id.to_owned());
            }
            Err(status) if common::reason(&status).as_deref() == Some("SESSION_FULL") => {}
            Err(status) => panic!("hold refused: {status:?}"),
        }
    }
    panic!("applicant {} was admitted but found both sessions full", journey.serial)
}

/// Watches a ticket until it reaches a terminal state (a booked ticket ends at once).
async fn watch_to_end(line: &mut WaitingRoomServiceClient<Channel>, ticket_id: &str) -> proto::Ticket {
    let watch = proto::WatchRequest { ticket_id: ticket_id.to_owned() };
    let mut stream = line.watch(watch).await.expect("watch").into_inner();
    let mut last = None;
    while let Some(update) = stream.message().await.expect("watch message") {
        last = update.ticket;
    }
    last.expect("at least one update")
}

/// Retries a call refused for overload (RESOURCE_EXHAUSTED) after a short pause; any other outcome is returned.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    loop {
        match call().await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            outcome => return outcome,
        }
    }
}

fn state(ticket: &proto::Ticket) -> Option<TicketState> {
    TicketState::try_from(ticket.state).ok()
}

fn is_terminal(state: TicketState) -> bool {
    !matches!(state, TicketState::Waiting | TicketState::Admitted | TicketState::Unspecified)
}

/// Exactly the quota booked, by admitted applicants; everyone else who stayed is SOLD_OUT.
fn check_bookings(journeys: &[Journey]) {
    let booked: Vec<&Journey> = journeys.iter().filter(|journey| journey.booked.is_some()).collect();
    assert_eq!(booked.len(), QUOTA, "bookings made");
    let ids: BTreeSet<&str> =
        booked.iter().filter_map(|journey| journey.booked.as_ref()).map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), QUOTA, "distinct bookings");
    let declined = journeys.iter().filter(|journey| journey.declined).count();
    assert_eq!(declined, DECLINERS);
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for journey in journeys {
        let expected = if journey.booked.is_some() {
            TicketState::Booked
        } else if journey.declined {
            TicketState::Left
        } else {
            TicketState::SoldOut
        };
        *ends.entry(format!("{:?}", journey.final_state)).or_default() += 1;
        assert_eq!(journey.final_state, Some(expected), "applicant {} ended wrong: {journey:?}", journey.serial);
    }
    eprintln!("spike: ticket ends {ends:?}");
}

/// Places and admissions follow the line: early joiners are drawn, later ones queue in arrival order, and the
/// admitted tickets are exactly the first places.
fn check_line_order(journeys: &[Journey], release: Duration) {
    let early: Vec<&Journey> = journeys.iter().filter(|journey| journey.join_answered < release).collect();
    let late: Vec<&Journey> = journeys.iter().filter(|journey| journey.join_sent >= release).collect();
    assert!(early.len() > QUOTA + DECLINERS, "only {} joined before the release instant", early.len());
    assert!(late.len() >= 500, "only {} joined after the release instant", late.len());
    assert!(early.iter().all(|journey| journey.joined_position == 0), "no place before the draw");
    let drawn_max = early.len() as u64;
    for journey in &early {
        assert!((1..=drawn_max).contains(&journey.final_position), "drawn place of {journey:?}");
    }
    let mut positions: Vec<u64> = journeys.iter().map(|journey| journey.final_position).collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), journeys.len(), "every ticket has its own place");
    // Later joiners queue behind the draw, first come first served: a join answered before another was sent has the
    // earlier place.
    let mut by_answer: Vec<&Journey> = late.clone();
    by_answer.sort_by_key(|journey| journey.join_answered);
    let mut by_sent: Vec<&Journey> = late.clone();
    by_sent.sort_by_key(|journey| journey.join_sent);
    let mut highest_before = 0;
    let mut answered = by_answer.iter().peekable();
    for journey in by_sent {
        assert!(journey.joined_position > drawn_max, "a late joiner is placed behind the draw: {journey:?}");
        assert_eq!(journey.joined_position, journey.final_position, "places do not change");
        while let Some(earlier) = answered.next_if(|earlier| earlier.join_answered < journey.join_sent) {
            highest_before = highest_before.max(earlier.joined_position);
        }
        assert!(journey.joined_position > highest_before, "joined after a later place was given: {journey:?}");
    }
    // Admissions go to the first places, in order: everyone admitted holds one of the first places, and an admission
    // seen well after another never has the earlier place.
    let mut admitted: Vec<&Journey> = journeys.iter().filter(|journey| journey.admitted_position.is_some()).collect();
    assert_eq!(admitted.len(), QUOTA + DECLINERS, "admissions: the quota plus the turns given up");
    let places: BTreeSet<u64> = admitted.iter().filter_map(|journey| journey.admitted_position).collect();
    assert_eq!(places, (1..=(QUOTA + DECLINERS) as u64).collect(), "admitted places are the first ones");
    admitted.sort_by_key(|journey| journey.admitted_seen);
    for (index, later) in admitted.iter().enumerate() {
        for earlier in &admitted[..index] {
            let apart = later.admitted_seen.unwrap_or_default() - earlier.admitted_seen.unwrap_or_default();
            if apart > Duration::from_millis(1_500) {
                assert!(earlier.admitted_position < later.admitted_position, "{earlier:?} before {later:?}");
            }
        }
    }
}

/// The server agrees: no slot left, and its bookings per session are exactly the ones the applicants made.
async fn check_sessions(channel: &Channel, date: proto::Date, journeys: &[Journey]) {
    let mut booking = BookingServiceClient::new(channel.clone());
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request =
            proto::ListBookingsRequest { office_id: OFFICE.into(), date: Some(date), page_size: 1000, page_token };
        let page = booking.list_bookings(request).await.expect("list bookings").into_inner();
        for each in page.bookings {
            assert_eq!(each.state, proto::BookingState::Confirmed as i32, "{each:?}");
            listed.entry(each.session_id).or_default().insert(each.booking_id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut made: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (booking_id, session_id) in journeys.iter().filter_map(|journey| journey.booked.clone()) {
        made.entry(session_id).or_default().insert(booking_id);
    }
    assert_eq!(listed, made, "ListBookings lists exactly the bookings made");
    for session_id in SESSIONS {
        assert_eq!(listed[session_id].len(), SESSION_CAPACITY as usize, "session {session_id} is full, not over");
        let pool = api::pool_availability(&mut booking, OFFICE, date, session_id, proto::Pool::Regular).await;
        assert_eq!((pool.remaining, pool.state), (0, proto::SessionState::Full as i32), "{session_id}");
    }
}
