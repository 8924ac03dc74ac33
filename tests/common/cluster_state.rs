//! What a partition's log says against what its live owner serves: the partition's newest snapshot is loaded from the
//! object store and the subject read back from JetStream after it (from its start when there is no snapshot), replayed
//! into a fresh quota book (as a new owner would), and that book's answers, turned into protobuf by the
//! server's own conversions, must equal the live owner's answers to the same reads: every booking of the dates (all
//! fields), the office's figures (capacity, remaining, holds, confirmed, running totals) and the sessions'
//! availability. A change the owner applied but did not log, or logged but did not apply, shows as a difference.
//!
//! Declare it beside the harness with `#[path = "common/cluster_state.rs"] mod cluster_state;`.

#![allow(dead_code)]

use crate::common::jakarta_date;
use antrean::cluster::{ClusterConfig, OfficeLog, SnapshotBucket, connect, read_records_after};
use antrean::domain::{Date, OfficeId, QuotaBook, ServiceType, Timestamp};
use antrean::grpc::convert;
use antrean::proto::{self, admin_service_client::AdminServiceClient, booking_service_client::BookingServiceClient};
use antrean::storage::{LogPosition, unframe_snapshot};
use tonic::transport::Channel;

/// The partition's state as a new owner would rebuild it, with the default rules: its newest snapshot (none: an empty
/// book) and the subject's records after it, checked to follow on. Returns the book and the log position it is at
/// (the number of records it covers).
pub async fn replayed_partition(config: &ClusterConfig) -> (QuotaBook, usize) {
    let connection = connect(&config.connect_options()).await.expect("connect to NATS");
    let log = OfficeLog::new(&connection, config.log_options());
    let partition = config.partition_id().expect("partition");
    let bucket = SnapshotBucket::open(&connection, config.replicas as usize).await.expect("the snapshot bucket");
    let newest = bucket.list(&partition).await.expect("list the snapshots").pop();
    let framed = match &newest {
        Some(snapshot) => Some(bucket.load(snapshot).await.expect("read the newest snapshot")),
        None => None,
    };
    let snapshot = newest.as_ref().zip(framed.as_deref()).map(|(stored, framed)| {
        let (position, image) = unframe_snapshot(&stored.name, framed).expect("a valid snapshot");
        assert_eq!(position, stored.position, "the object's name and frame agree");
        (position, image)
    });
    let (after, from_sequence) =
        newest.as_ref().map_or((LogPosition(0), 1), |stored| (stored.position, stored.replay_from_stream_sequence));
    let read = read_records_after(&log, &partition, after, from_sequence).await.expect("read the subject");
    let count = after.0 as usize + read.records.len();
    let rules = antrean::config::Config::default().book_rules();
    let (book, _) = antrean::engine::recovery::replay_records_after(rules, snapshot, read.records)
        .expect("replay the subject after the snapshot");
    (book, count)
}

/// Asserts that the live owner behind `booking` and `admin` answers about `office` on the dates `days` from today
/// exactly as `replayed` does.
pub async fn assert_live_state_is_the_replay(
    replayed: &QuotaBook,
    booking: &mut BookingServiceClient<Channel>,
    admin: &mut AdminServiceClient<Channel>,
    office: &str,
    days: std::ops::RangeInclusive<i32>,
) {
    let office_id = OfficeId::parse(office).expect("office id");
    for day in days.clone() {
        let date = domain_date(jakarta_date(day));
        let (bookings, more) = replayed.list_bookings(&office_id, date, None, 1_000).expect("replayed bookings");
        assert!(!more, "more than a page of bookings");
        let replayed_bookings: Vec<proto::Booking> =
            bookings.iter().map(|booking| convert::booking(booking, true)).collect();
        let live = booking
            .list_bookings(proto::ListBookingsRequest {
                office_id: office.to_owned(),
                date: Some(jakarta_date(day)),
                page_size: 1_000,
                page_token: String::new(),
            })
            .await
            .expect("live bookings")
            .into_inner();
        assert!(live.next_page_token.is_empty(), "more than a page of bookings");
        assert_eq!(live.bookings, replayed_bookings, "bookings of day +{day}: live owner against the replayed log");
    }

    let stats = replayed.office_stats(&office_id).expect("replayed figures");
    let replayed_stats = convert::office_stats(&office_id, &stats);
    let live_stats = admin
        .get_office_stats(proto::GetOfficeStatsRequest { office_id: office.to_owned() })
        .await
        .expect("live figures")
        .into_inner();
    assert_eq!(live_stats, replayed_stats, "office figures: live owner against the replayed log");

    let (first, last) = (*days.start(), *days.end());
    let now = Timestamp(jiff::Timestamp::now().as_millisecond());
    let replayed_sessions: Vec<proto::SessionAvailability> = replayed
        .availability(
            &office_id,
            ServiceType::NewPassport,
            domain_date(jakarta_date(first)),
            domain_date(jakarta_date(last)),
            now,
        )
        .expect("replayed availability")
        .iter()
        .map(convert::availability)
        .collect();
    let live_sessions = booking
        .get_availability(proto::GetAvailabilityRequest {
            office_id: office.to_owned(),
            service: proto::ServiceType::NewPassport as i32,
            first_date: Some(jakarta_date(first)),
            last_date: Some(jakarta_date(last)),
        })
        .await
        .expect("live availability")
        .into_inner()
        .sessions;
    assert_eq!(live_sessions, replayed_sessions, "availability: live owner against the replayed log");
}

fn domain_date(date: proto::Date) -> Date {
    Date::new(date.year, date.month, date.day).expect("a valid date")
}
