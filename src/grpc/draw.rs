//! `WaitingRoomService.GetDraw` on the wire: reading a line's published draw a page at a time and converting it.
//! The secret is in the answer only once the draw is made (the domain leaves it out before).

use super::convert::{self, Violations};
use crate::domain::{DrawEntry, PublishedDraw, Rejection, TicketId, Timestamp, WaitingRoomKey};
use crate::engine::Engine;
use crate::proto;
use tonic::Status;

/// Answers a GetDraw request from `engine`.
pub fn get_draw(engine: &Engine, request: &proto::GetDrawRequest) -> Result<proto::GetDrawResponse, Status> {
    let mut violations = Violations::default();
    let office_id = violations.office_id("office_id", &request.office_id);
    let release_at = violations.timestamp("release_at", request.release_at.as_ref());
    let page_size = convert::page_size(&mut violations, i32::try_from(request.page_size).unwrap_or(i32::MAX));
    let (office_id, release_at) = violations.finish(office_id.zip(release_at))?;
    let key = WaitingRoomKey { office_id: office_id.clone(), release_at };
    let draw =
        engine.book().published_draw(&key, request.offset, page_size).ok_or(Rejection::NoWaitingRoom(office_id))?;
    Ok(response(&draw))
}

fn response(draw: &PublishedDraw) -> proto::GetDrawResponse {
    let figures = &draw.figures;
    proto::GetDrawResponse {
        office_id: draw.key.office_id.to_string(),
        release_at: Some(convert::timestamp(draw.key.release_at)),
        algorithm_version: draw.algorithm_version,
        draw_commitment: draw.commitment.map(Vec::from).unwrap_or_default(),
        drawn: draw.drawn,
        secret: draw.secret.map(Vec::from).unwrap_or_default(),
        pre_open_total: draw.pre_open_total,
        pre_open: draw.pre_open.iter().map(entry).collect(),
        order: draw.order.iter().map(TicketId::to_string).collect(),
        later_total: draw.later_total,
        later_arrivals: draw.later.iter().map(entry).collect(),
        offset: draw.offset,
        figures: Some(proto::DrawFigures {
            slots_offered: figures
                .slots_offered
                .iter()
                .map(|(pool, slots)| proto::PoolSlots { pool: convert::pool(*pool), slots: *slots })
                .collect(),
            tickets_at_draw: figures.tickets_at_draw,
            sold_out_after: figures.sold_out_after_ms.map(duration),
            admitted: figures.admitted,
            booked: figures.booked,
            expired: figures.expired,
            left: figures.left,
            waiting: figures.waiting,
            told_sold_out: figures.told_sold_out,
        }),
    }
}

fn entry(entry: &DrawEntry) -> proto::DrawEntry {
    proto::DrawEntry {
        ticket_id: TicketId(entry.ticket_number).to_string(),
        receipt: entry.receipt.to_vec(),
        joined_at: Some(convert::timestamp(Timestamp(entry.joined_at_ms))),
    }
}

fn duration(milliseconds: i64) -> prost_types::Duration {
    let milliseconds = milliseconds.max(0);
    prost_types::Duration { seconds: milliseconds / 1000, nanos: ((milliseconds % 1000) * 1_000_000) as i32 }
}
