//! The Prometheus endpoint after a scripted session: counters move by exactly the expected amounts, histograms have
//! observations, and no label carries a booking id or a NIK.

mod common;

use antrean::proto;
use common::{Options, Server, applicant, create_office, hold_request, test_office};
use std::time::{Duration, Instant};

const OFFICE: &str = "kanim-metrics";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to /metrics");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

/// The value of the sample whose name and labels match `selector` exactly, e.g. `name{a="b",c="d"}`.
fn sample(text: &str, selector: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (series == selector).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn counters_move_by_exactly_what_happened() {
    let port = free_port();
    let server = Server::start_with(Options { args: vec![format!("--metrics-listen=127.0.0.1:{port}")], config: None });
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 2, 7200)).await;

    let first =
        booking.hold(hold_request(OFFICE, 1, applicant(1))).await.expect("hold").into_inner().booking.expect("b");
    let second =
        booking.hold(hold_request(OFFICE, 1, applicant(2))).await.expect("hold").into_inner().booking.expect("b");
    let full = booking.hold(hold_request(OFFICE, 1, applicant(3))).await.expect_err("the session is full");
    assert_eq!(common::reason(&full).as_deref(), Some("SESSION_FULL"));
    booking
        .confirm_payment(proto::ConfirmPaymentRequest {
            request_id: common::request_id("pay"),
            booking_id: first.booking_id.clone(),
            payment_reference: "REF-1".into(),
            paid_at: None,
        })
        .await
        .expect("pay");
    // A second, different payment for the paid booking is refused and recorded for refund; its retry (same request id)
    // gets the remembered answer and records nothing more.
    let duplicate = proto::ConfirmPaymentRequest {
        request_id: common::request_id("pay-again"),
        booking_id: first.booking_id.clone(),
        payment_reference: "REF-2".into(),
        paid_at: None,
    };
    for _attempt in 0..2 {
        let refused = booking.confirm_payment(duplicate.clone()).await.expect_err("already paid");
        assert_eq!(common::reason(&refused).as_deref(), Some("ALREADY_PAID"));
    }
    booking
        .cancel(proto::CancelRequest {
            request_id: common::request_id("cancel"),
            booking_id: second.booking_id.clone(),
        })
        .await
        .expect("cancel");

    // Gauges are published every few seconds; counters at once. Poll until a gauge pass after the cancellation shows,
    // with a deadline: a pass that ran before the first hold already published the gauge (0: no day booked yet).
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = scrape(port).await;
        if sample(&text, &format!("antrean_slots_remaining{{office=\"{OFFICE}\"}}")) == Some(5.0)
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let office = |name: &str, extra: &str| format!("{name}{{office=\"{OFFICE}\"{extra}}}");
    assert_eq!(sample(&text, &office("antrean_holds_total", ",outcome=\"held\"")), Some(2.0), "{text}");
    assert_eq!(sample(&text, &office("antrean_holds_total", ",outcome=\"session_full\"")), Some(1.0));
    assert_eq!(sample(&text, &office("antrean_payments_total", ",outcome=\"confirmed\"")), Some(1.0));
    assert_eq!(sample(&text, &office("antrean_cancellations_total", "")), Some(1.0));
    assert_eq!(sample(&text, &office("antrean_refunds_recorded_total", ",reason=\"duplicate_payment\"")), Some(1.0));
    assert_eq!(sample(&text, "antrean_grpc_requests_total{method=\"Hold\",code=\"OK\"}"), Some(2.0));
    assert_eq!(sample(&text, "antrean_grpc_requests_total{method=\"Hold\",code=\"FAILED_PRECONDITION\"}"), Some(1.0));
    assert_eq!(sample(&text, "antrean_grpc_request_duration_seconds_count{method=\"Hold\"}"), Some(3.0));
    assert!(sample(&text, "antrean_wal_append_seconds_count").unwrap_or(0.0) >= 4.0, "office + 2 holds + pay + cancel");
    assert!(sample(&text, "antrean_wal_fsync_seconds_count").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "antrean_wal_batch_records_count").unwrap_or(0.0) >= 1.0);
    // The day has 2 + 2 (priority) slots at 13:00 and 2 at 15:00; one is confirmed, the cancelled one is back.
    assert_eq!(sample(&text, &office("antrean_slots_remaining", "")), Some(5.0));
    assert_eq!(sample(&text, &office("antrean_holds_active", "")), Some(0.0));
    assert_eq!(sample(&text, "antrean_ready"), Some(1.0));
    // The background passes and the all-shard locks are timed: creating the office locked every shard once, and the
    // ticker and the gauge pass have run by the time the gauges show (the first gauge pass, at start, already counted).
    assert!(sample(&text, "antrean_all_shards_locked_seconds_count{operation=\"admin\"}").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "antrean_background_pass_seconds_count{pass=\"tick\"}").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "antrean_background_pass_seconds_count{pass=\"gauges\"}").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "antrean_build_info{version=\"0.1.0\"}").is_some());
    for private in [first.booking_id.as_str(), "3171011708850001", "170885"] {
        assert!(!text.contains(private), "metrics must not carry {private}");
    }
}
