//! Who is still there for each waiting-room ticket (an open Watch stream, or a recent Join or read), and one wake-up
//! signal per waiting room that has Watch streams. Observed, not state: the decision that a ticket went idle is
//! logged as an event, so replay does not depend on it.
//!
//! Its own file so that the engine (which owns one) and its waiting-room side (which reads it) do not import each
//! other.

use crate::domain::{TicketId, Timestamp, WaitingRoomKey};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::watch;

/// Who is still there for each ticket, and one wake-up signal per line that has Watch streams.
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
    /// One signal per line with Watch streams.
    pub(super) signals: HashMap<WaitingRoomKey, watch::Sender<u64>>,
    /// The tickets present at start-up have been registered.
    pub(super) adopted: bool,
    /// When to give freed memory back again: once the request ids of an ended waiting room's joins are forgotten.
    pub(super) trim_at: Option<Timestamp>,
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

    pub(super) fn signal(&self, key: &WaitingRoomKey) -> LineSignal {
        let mut table = self.table.lock();
        table.signals.entry(key.clone()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes the streams of every line whose change count moved; drops the signals of lines that are gone (their
    /// streams wake with an error and look for their ticket again) or that nobody follows.
    pub(super) fn notify(&self, changes: &[(WaitingRoomKey, u64)]) {
        let counts: HashMap<&WaitingRoomKey, u64> = changes.iter().map(|(key, count)| (key, *count)).collect();
        let mut table = self.table.lock();
        table.signals.retain(|key, sender| match counts.get(key) {
            Some(count) if sender.receiver_count() > 0 => {
                sender.send_if_modified(|shown| std::mem::replace(shown, *count) != *count);
                true
            }
            _ => false,
        });
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

    #[tokio::test]
    async fn a_line_signal_wakes_once_per_change_and_goes_when_its_line_does() {
        let watchers = Watchers::default();
        let key = WaitingRoomKey { office_id: OfficeId::parse("kanim-test").expect("id"), release_at: Timestamp(1) };
        let mut signal = watchers.signal(&key);
        watchers.notify(&[(key.clone(), 0)]);
        assert!(!signal.has_changed().expect("open"), "no change, no wake-up");
        watchers.notify(&[(key.clone(), 3)]);
        watchers.notify(&[(key.clone(), 3)]);
        assert!(signal.has_changed().expect("open"));
        signal.changed().await.expect("woken");
        assert!(!signal.has_changed().expect("open"), "one wake-up for one change");
        watchers.notify(&[]);
        assert!(signal.changed().await.is_err(), "the line is gone: the stream looks for its ticket again");
        assert!(watchers.table.lock().signals.is_empty());
        drop(watchers.signal(&key));
        watchers.notify(&[(key, 4)]);
        assert!(watchers.table.lock().signals.is_empty(), "nobody follows the line: its signal goes");
    }
}
