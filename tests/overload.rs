//! Overload, black-box: with at most 8 calls in flight, a burst of 2,000 heavy reads is answered, never left to time
//! out. Calls over the limit are refused at once with RESOURCE_EXHAUSTED and a RetryInfo hint, the server is usable as
//! soon as the burst ends, and its memory stays bounded.

mod common;

use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::{self, ServiceType};
use common::{Options, Server, jakarta_date};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const IN_FLIGHT_MAX: &str = "8";
const CALLS: usize = 2_000;
const CHANNELS: usize = 8;
/// A demo office (the embedded configuration seeds it).
const OFFICE: &str = "kanim-batam";
/// The widest date range GetAvailability allows: 62 dates, the last 61 days after the first.
const LAST_DAY: i32 = 61;
/// No call may take longer than this, refused or not.
const CALL_LIMIT: Duration = Duration::from_secs(20);
/// A refusal comes back within this long.
const REFUSAL_LIMIT: Duration = Duration::from_secs(5);
/// Resident memory must stay under this.
const RESIDENT_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// One call's outcome and how long it took.
struct Answer {
    outcome: Result<usize, tonic::Status>,
    took: Duration,
}

fn availability_request() -> proto::GetAvailabilityRequest {
    proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: ServiceType::NewPassport as i32,
        first_date: Some(jakarta_date(0)),
        last_date: Some(jakarta_date(LAST_DAY)),
    }
}

async fn availability(mut client: BookingServiceClient<Channel>) -> Answer {
    let started = Instant::now();
    let call = client.get_availability(availability_request());
    let outcome = match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(outcome) => outcome.map(|response| response.into_inner().sessions.len()),
        Err(_) => panic!("a call got no answer within {CALL_LIMIT:?}"),
    };
    Answer { outcome, took: started.elapsed() }
}

/// The server's resident set size, from /proc.
fn resident_bytes(server: &Server) -> u64 {
    let pid = server.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).expect("value").parse().expect("a number of KiB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_in_flight_limit_is_refused_at_once_and_the_server_recovers() {
    let options = Options { args: vec!["--in-flight-requests-max".into(), IN_FLIGHT_MAX.into()], config: None };
    let server = Server::start_with(options);
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(BookingServiceClient::new(server.channel().await));
    }
    let sessions = availability(clients[0].clone()).await.outcome.expect("a call alone is served");
    assert!(sessions > 60, "a 62-date range lists every session: {sessions}");
    let resident_before = resident_bytes(&server);

    let burst_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..CALLS {
        tasks.spawn(availability(clients[index % CHANNELS].clone()));
    }
    let mut served = Vec::new();
    let mut refused = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.expect("call task");
        match answer.outcome {
            Ok(_) => served.push(answer.took),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "only overload refusals: {status:?}");
                let details = status.get_error_details();
                let retry = details.retry_info().unwrap_or_else(|| panic!("no RetryInfo in {status:?}"));
                let delay = retry.retry_delay.unwrap_or_else(|| panic!("RetryInfo without a delay: {status:?}"));
                assert!(delay > Duration::ZERO && delay <= Duration::from_secs(60), "retry hint {delay:?}");
                assert_eq!(common::reason(&status).as_deref(), Some("OVERLOADED"), "{status:?}");
                refused.push(answer.took);
            }
        }
    }
    let burst = burst_started.elapsed();
    let after_burst = availability(clients[0].clone()).await;
    let resident_after = resident_bytes(&server);

    refused.sort_unstable();
    served.sort_unstable();
    let median = |took: &[Duration]| took.get(took.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "overload: {} served (median {:?}, slowest {:?}), {} refused (median {:?}, slowest {:?}) in {burst:?}; \
         resident {} MiB before, {} MiB after",
        served.len(),
        median(&served),
        served.last(),
        refused.len(),
        median(&refused),
        refused.last(),
        resident_before >> 20,
        resident_after >> 20,
    );
    assert!(served.len() >= 8, "calls are served during the burst: {}", served.len());
    assert!(!refused.is_empty(), "the burst goes over the limit");
    // Refusals do not wait for a place: none is slow, though the client and the server share two busy cores.
    assert!(refused.last().is_none_or(|slowest| *slowest < REFUSAL_LIMIT), "a refusal took {:?}", refused.last());
    assert!(after_burst.outcome.is_ok(), "the first call after the burst is served: {:?}", after_burst.outcome);
    assert!(resident_before < RESIDENT_BYTES_MAX && resident_after < RESIDENT_BYTES_MAX, "resident memory");
}
