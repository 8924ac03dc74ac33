//! Who is still there for each waiting-room ticket (an open Watch stream, or a recent Join or read), and the wake-up
//! signals of each waiting room that has Watch streams. Observed, not state: the decision that a ticket went idle is
//! logged as an event, so replay does not depend on it.
//!
//! A line's streams are split into [`WAKE_GROUPS`] groups (by ticket number), one signal each, and a change wakes the
//! groups one after another, yielding to the scheduler between two: at the draw every stream of a line has news at
//! once (20,000 in the opening moment), and waking them together put all 20,000 in the one run queue ahead of every
//! call that arrived meanwhile, each step of a Join then waiting behind the whole fan-out. A group at a time lets the
//! calls in between; the fan-out itself costs the same.
//!
//! Its own file so that the engine (which owns one) and its waiting-room side (which reads it) do not import each
//! other.

use crate::domain::{TicketId, Timestamp, WaitingRoomKey};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::watch;

/// Wake-up groups per line: a change wakes one group of the line's streams at a time (a 20,000-stream line wakes about
/// 300 at once).
pub const WAKE_GROUPS: usize = 64;

/// Who is still there for each ticket, and the wake-up signals of each line that has Watch streams.
#[derive(Default)]
pub struct Watchers {
    pub(super) table: parking_lot::Mutex<Table>,
}

/// A line's wake-up signal: its value is the line's change count, so a stream wakes once per change.
pub type LineSignal = watch::Receiver<u64>;

#[derive(Default)]
pub(super) struct Table {
    /// Tickets whose holder was seen: when last, and how many Watch streams follow them now.
    pub(super) tickets: HashMap<TicketId, Seen>,
    /// Tickets no stream follows, by when they were last seen, oldest first: the idle check reads the front.
    pub(super) quiet: BTreeSet<(Timestamp, TicketId)>,
    /// The wake-up groups of each line with Watch streams.
    pub(super) signals: HashMap<WaitingRoomKey, LineGroups>,
    /// The tickets present at start-up have been registered.
    pub(super) adopted: bool,
    /// When to give freed memory back again: once the request ids of an ended waiting room's joins are forgotten.
    pub(super) trim_at: Option<Timestamp>,
}

/// One line's wake-up signals, one per group; shared so that a fan-out runs outside the table's lock.
pub(super) type LineGroups = Arc<[watch::Sender<u64>]>;

fn new_line_groups() -> LineGroups {
    (0..WAKE_GROUPS).map(|_| watch::channel(0).0).collect()
}

/// The wake-up group of a ticket's streams.
fn group_of(ticket_id: TicketId) -> usize {
    (ticket_id.0 % WAKE_GROUPS as u64) as usize
}

#[derive(Clone, Copy)]
pub(super) struct Seen {
    /// When last seen (while no stream follows it, also its key in `quiet`).
    pub(super) at: Timestamp,
    /// Watch streams following it.
    pub(super) streams: u32,
}

impl Table {
    pub(super) fn seen(&mut self, ticket_id: TicketId, now: Timestamp) {
        let seen = self.tickets.entry(ticket_id).or_insert(Seen { at: now, streams: 0 });
        if seen.streams == 0 {
            self.quiet.remove(&(seen.at, ticket_id));
            self.quiet.insert((now, ticket_id));
        }
        seen.at = now;
    }

    pub(super) fn forget(&mut self, ticket_id: TicketId) {
        if let Some(seen) = self.tickets.remove(&ticket_id) {
            self.quiet.remove(&(seen.at, ticket_id));
        }
    }

    pub(super) fn open_stream(&mut self, ticket_id: TicketId, now: Timestamp) {
        let seen = self.tickets.entry(ticket_id).or_insert(Seen { at: now, streams: 0 });
        if seen.streams == 0 {
            self.quiet.remove(&(seen.at, ticket_id));
        }
        seen.streams += 1;
        seen.at = now;
    }

    pub(super) fn close_stream(&mut self, ticket_id: TicketId, now: Timestamp) {
        let Some(seen) = self.tickets.get_mut(&ticket_id) else { return };
        seen.streams = seen.streams.saturating_sub(1);
        seen.at = now;
        if seen.streams == 0 {
            self.quiet.insert((now, ticket_id));
        }
    }

    /// Moves a quiet ticket's next idle check to `at` (as if last seen then).
    pub(super) fn check_again(&mut self, ticket_id: TicketId, at: Timestamp) {
        let Some(seen) = self.tickets.get_mut(&ticket_id).filter(|seen| seen.streams == 0) else { return };
        self.quiet.remove(&(seen.at, ticket_id));
        seen.at = at;
        self.quiet.insert((at, ticket_id));
    }
}

impl Watchers {
    /// Notes that the ticket's holder is still there.
    pub fn seen(&self, ticket_id: TicketId, now: Timestamp) {
        self.table.lock().seen(ticket_id, now);
    }

    /// The signal a stream of `ticket_id` in line `key` wakes on.
    pub(super) fn signal(&self, key: &WaitingRoomKey, ticket_id: TicketId) -> LineSignal {
        let mut table = self.table.lock();
        table.signals.entry(key.clone()).or_insert_with(new_line_groups)[group_of(ticket_id)].subscribe()
    }

    /// Wakes the streams of every line whose change count moved, a group at a time with a yield to the scheduler
    /// between two groups that had streams; drops the signals of lines that are gone (their streams wake with an error
    /// and look for their ticket again) or that nobody follows.
    pub(super) async fn notify(&self, changes: &[(WaitingRoomKey, u64)]) {
        let counts: HashMap<&WaitingRoomKey, u64> = changes.iter().map(|(key, count)| (key, *count)).collect();
        let waking: Vec<(LineGroups, u64)> = {
            let mut table = self.table.lock();
            table.signals.retain(|key, groups| {
                counts.contains_key(key) && groups.iter().any(|sender| sender.receiver_count() > 0)
            });
            table.signals.iter().map(|(key, groups)| (Arc::clone(groups), counts[key])).collect()
        };
        for (groups, count) in waking {
            for sender in groups.iter() {
                let woke = sender.send_if_modified(|shown| std::mem::replace(shown, count) != count);
                if woke && sender.receiver_count() > 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OfficeId;

    fn quiet(table: &Table) -> Vec<(i64, u64)> {
        table.quiet.iter().map(|(at, ticket_id)| (at.0, ticket_id.0)).collect()
    }

    #[test]
    fn the_table_knows_who_is_there_and_loses_tickets_that_ended() {
        let mut table = Table::default();
        table.seen(TicketId(1), Timestamp(10));
        table.seen(TicketId(2), Timestamp(20));
        table.seen(TicketId(1), Timestamp(30));
        assert_eq!(quiet(&table), vec![(20, 2), (30, 1)], "one entry per ticket, by when last seen");
        // A stream follows ticket 2: it is not quiet while the stream is open, however long.
        table.open_stream(TicketId(2), Timestamp(40));
        table.open_stream(TicketId(2), Timestamp(41));
        assert_eq!(quiet(&table), vec![(30, 1)]);
        table.close_stream(TicketId(2), Timestamp(50));
        assert_eq!(quiet(&table), vec![(30, 1)], "one stream is still open");
        table.close_stream(TicketId(2), Timestamp(60));
        assert_eq!(quiet(&table), vec![(30, 1), (60, 2)]);
        table.check_again(TicketId(1), Timestamp(70));
        assert_eq!(quiet(&table), vec![(60, 2), (70, 1)]);
        table.forget(TicketId(1));
        table.forget(TicketId(2));
        assert!(table.tickets.is_empty() && table.quiet.is_empty(), "nothing left behind");
    }

    fn line() -> WaitingRoomKey {
        WaitingRoomKey { office_id: OfficeId::parse("kanim-test").expect("id"), release_at: Timestamp(1) }
    }

    #[tokio::test]
    async fn a_line_signal_wakes_once_per_change_and_goes_when_its_line_does() {
        let watchers = Watchers::default();
        let key = line();
        let mut signal = watchers.signal(&key, TicketId(7));
        watchers.notify(&[(key.clone(), 0)]).await;
        assert!(!signal.has_changed().expect("open"), "no change, no wake-up");
        watchers.notify(&[(key.clone(), 3)]).await;
        watchers.notify(&[(key.clone(), 3)]).await;
        assert!(signal.has_changed().expect("open"));
        signal.changed().await.expect("woken");
        assert!(!signal.has_changed().expect("open"), "one wake-up for one change");
        watchers.notify(&[]).await;
        assert!(signal.changed().await.is_err(), "the line is gone: the stream looks for its ticket again");
        assert!(watchers.table.lock().signals.is_empty());
        drop(watchers.signal(&key, TicketId(7)));
        watchers.notify(&[(key, 4)]).await;
        assert!(watchers.table.lock().signals.is_empty(), "nobody follows the line: its signal goes");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_change_wakes_a_line_a_group_at_a_time_letting_other_tasks_run_between() {
        let watchers = Arc::new(Watchers::default());
        let key = line();
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        // A call that arrives while the fan-out goes on: the first stream to wake lets it in.
        let arrival = Arc::new(tokio::sync::Notify::new());
        let mut streams = Vec::new();
        for ticket in 0..WAKE_GROUPS as u64 {
            let mut signal = watchers.signal(&key, TicketId(ticket));
            let (order, arrival) = (Arc::clone(&order), Arc::clone(&arrival));
            streams.push(tokio::spawn(async move {
                signal.changed().await.expect("woken");
                order.lock().push("stream");
                arrival.notify_one();
            }));
        }
        let (call_order, call_arrival) = (Arc::clone(&order), Arc::clone(&arrival));
        let call = tokio::spawn(async move {
            call_arrival.notified().await;
            call_order.lock().push("call");
        });
        tokio::task::yield_now().await;
        watchers.notify(&[(key, 1)]).await;
        call.await.expect("call");
        for stream in streams {
            stream.await.expect("stream");
        }
        let order = order.lock();
        let call_at = order.iter().position(|what| *what == "call").expect("the call ran");
        assert!(call_at < WAKE_GROUPS / 2, "the call waited for the whole fan-out: it ran after {call_at} streams");
        assert_eq!(order.len(), WAKE_GROUPS + 1, "every stream woke once");
    }
}
