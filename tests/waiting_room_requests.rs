//! Join and Leave are idempotent by their request id, black-box: a retried Join (the answer was lost with the network)
//! returns the first ticket, a retried Leave its first answer, and the same id with another body is refused.

mod common;

use antrean::proto::waiting_room_service_client::WaitingRoomServiceClient;
use antrean::proto::{self, TicketState};
use common::{Server, applicant, create_office, jakarta_date, reason, request_id, test_office};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

const OFFICE: &str = "kanim-retry";

fn join(request_id: &str, serial: u32) -> proto::JoinRequest {
    proto::JoinRequest {
        request_id: request_id.to_owned(),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        nik: applicant(serial).nik,
        ..proto::JoinRequest::default()
    }
}

fn leave(request_id: &str, ticket_id: &str) -> proto::LeaveRequest {
    proto::LeaveRequest { request_id: request_id.to_owned(), ticket_id: ticket_id.to_owned() }
}

#[tokio::test]
async fn join_and_leave_return_their_first_answer_to_a_retry() {
    let server = Server::start();
    let (_, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 10, 7200)).await;
    // A release a minute away: the waiting room is open (it opens 15 minutes ahead) and nobody is admitted yet.
    let release = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970") + Duration::from_secs(60);
    let tomorrow = jakarta_date(1);
    admin
        .set_schedule(proto::SetScheduleRequest {
            request_id: request_id("schedule"),
            office_id: OFFICE.into(),
            first_date: Some(tomorrow),
            last_date: Some(tomorrow),
            release_at: Some(prost_types::Timestamp { seconds: release.as_secs() as i64, nanos: 0 }),
            sessions: Vec::new(),
            waiting_room: true,
        })
        .await
        .expect("schedule");
    let mut line = WaitingRoomServiceClient::new(server.channel().await);

    let join_id = request_id("join");
    let first = line.join(join(&join_id, 1)).await.expect("joins").into_inner().ticket.expect("ticket");
    let retried = line.join(join(&join_id, 1)).await.expect("retry").into_inner().ticket.expect("ticket");
    assert_eq!(retried.ticket_id, first.ticket_id, "a retried Join returns the first ticket");
    let reused = line.join(join(&join_id, 2)).await.expect_err("same request id, another applicant");
    assert_eq!((reused.code(), reason(&reused).as_deref()), (Code::InvalidArgument, Some("REQUEST_ID_REUSED")));

    let leave_id = request_id("leave");
    let left = line.leave(leave(&leave_id, &first.ticket_id)).await.expect("leaves").into_inner().ticket.expect("t");
    assert_eq!(left.state, TicketState::Left as i32);
    let again = line.leave(leave(&leave_id, &first.ticket_id)).await.expect("retry").into_inner().ticket.expect("t");
    assert_eq!((again.ticket_id, again.state), (first.ticket_id.clone(), TicketState::Left as i32));
    let other = line.join(join(&request_id("join"), 3)).await.expect("joins").into_inner().ticket.expect("ticket");
    let reused = line.leave(leave(&leave_id, &other.ticket_id)).await.expect_err("same request id, another ticket");
    assert_eq!((reused.code(), reason(&reused).as_deref()), (Code::InvalidArgument, Some("REQUEST_ID_REUSED")));
}
