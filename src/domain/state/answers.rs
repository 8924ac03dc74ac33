//! Answers made from what request records remember: the first answer of a command, and the answer to a retry, with
//! the bookings read from the shards; and the purge's keeping whole of the remembered answers that name the bookings it
//! deletes.

use super::access::ShardAccess;
use super::remembered::{RememberedOutcome, RememberedReply};
use super::shard::ShardKey;
use crate::domain::bookings::booking::Booking;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::{Outcome, Reply};
use crate::domain::values::ids::BookingId;
use std::collections::HashMap;

/// The answer `remembered` names, with the bookings as `access` has them now. The shards of
/// [`RememberedReply::booking_ids`] must be locked. `Err` names a booking that is gone, which a purge never leaves
/// behind (it keeps such answers whole).
pub fn reply(remembered: &RememberedReply, access: &impl ShardAccess) -> Result<Reply, BookingId> {
    remembered.reply_with(|booking_id| access.shard(booking_id.shard_index()).bookings.get(&booking_id))
}

/// Keeps whole every remembered answer that names one of the `purged` bookings, with the bookings as they were when
/// purged (and the others it names as they are): called by the purge, with every shard locked, just before the
/// bookings go. Costs one look at every remembered answer, as the purge looks at every booking.
pub fn keep_answers_naming(access: &mut impl ShardAccess, purged: &HashMap<BookingId, Booking>) {
    if purged.is_empty() {
        return;
    }
    for index in 0..crate::limits::SHARD_COUNT {
        let kept: Vec<_> = access
            .shard(index)
            .requests
            .iter()
            .filter_map(|(request, record)| {
                let answer = record.outcome.as_ref().ok()?;
                if matches!(answer, RememberedReply::PaymentRepeated { .. }) {
                    return None;
                }
                if !answer.booking_ids().any(|booking_id| purged.contains_key(&booking_id)) {
                    return None;
                }
                let find = |booking_id: BookingId| {
                    purged.get(&booking_id).or_else(|| access.shard(booking_id.shard_index()).bookings.get(&booking_id))
                };
                // Every booking it names is there (it was answered with them); were one not, the answer stays as it
                // is and a retry is told the booking was purged.
                answer.reply_with(find).ok().map(|reply| (*request, reply))
            })
            .collect();
        if kept.is_empty() {
            // Not written, so not copied away from a snapshot that shares it.
            continue;
        }
        let requests = &mut access.shard_mut(index).requests;
        for (request, reply) in kept {
            let record = requests.get_mut(&request).expect("listed above");
            record.outcome = Ok(RememberedReply::Kept(Box::new(reply)));
        }
    }
}

/// The answer a first execution gives, made from what applying its event remembered: the bookings are read from
/// `access`, whose shards the command locked to apply it.
pub fn first_answer(remembered: &RememberedOutcome, access: &impl ShardAccess) -> Outcome {
    match remembered {
        Ok(answer) => Ok(reply(answer, access)
            .unwrap_or_else(|booking_id| panic!("booking {booking_id} was just applied and is gone"))),
        Err(rejection) => Err(Rejection::clone(rejection)),
    }
}
