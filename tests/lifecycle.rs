//! The booking lifecycle through the real server: hold, pay, cancel, and a retried hold.

mod common;

use antrean::proto;
use common::{Server, applicant, create_office, hold_request, test_office};

#[tokio::test]
async fn hold_confirm_cancel_and_retry() {
    let server = Server::start();
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office("kanim-test", 5, 7200)).await;

    let request = hold_request("kanim-test", 1, applicant(1));
    let held = booking.hold(request.clone()).await.expect("hold").into_inner().booking.expect("booking");
    assert_eq!(held.state, proto::BookingState::AwaitingPayment as i32);
    assert_eq!(held.payment_code.len(), 15);

    let retried = booking.hold(request).await.expect("retry").into_inner().booking.expect("booking");
    assert_eq!(retried, held, "a retry returns the first answer");

    let paid = booking
        .confirm_payment(proto::ConfirmPaymentRequest {
            request_id: common::request_id("pay"),
            booking_id: held.booking_id.clone(),
            payment_reference: "SIMPONI-1".into(),
            paid_at: None,
        })
        .await
        .expect("pay")
        .into_inner();
    assert_eq!(paid.booking.expect("booking").state, proto::BookingState::Confirmed as i32);

    let cancelled = booking
        .cancel(proto::CancelRequest { request_id: common::request_id("cancel"), booking_id: held.booking_id.clone() })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.booking.expect("booking").state, proto::BookingState::Cancelled as i32);
}
