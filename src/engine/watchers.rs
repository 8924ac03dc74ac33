//! Who is still there for each waiting-room ticket (an open Watch stream, or a recent Join or read), and the wake-up
//! signals of each waiting room that has Watch streams. Observed, not state: the decision that a ticket went idle is
//! logged as an event, so replay does not depend on it.
//!
//! Two kinds of wake-up, so that a stream wakes for its own news at once and for everyone's at most once a second:
//!
//! - **A ticket's own signal** wakes its streams when a step admitted, expired or took back that ticket. A line that
//!   admits steps ten times a second; waking every stream of it at each step made 12,000 waiting streams read their
//!   ticket 120,000 times a second to send a countdown at most once a second each (a third of the server core in the
//!   opening moment's profile).
//! - **A line's signal** wakes all its streams once its change count moved: at once for the draw (everyone's place is
//!   news), otherwise at most once per [`LINE_WAKE_INTERVAL_MS`], which carries the countdown and the line's moving
//!   boundary (SOLD_OUT, or back in reach), and a booking made with the ticket's token.
//!
//! A line's streams are split into [`WAKE_GROUPS`] groups (by ticket number), one signal each, and a line's wake-up
//! goes to the groups one after another, yielding to the scheduler between two: at the draw every stream of a line
//! has news at once (20,000 in the opening moment), and waking them together put all 20,000 in the one run queue ahead
//! of every call that arrived meanwhile, each step of a Join then waiting behind the whole fan-out. A group at a time
//! lets the calls in between; the fan-out itself costs the same.
//!
//! Its own file so that the engine (which owns one) and its waiting-room side (which reads it) do not import each
//! other.

use crate::domain::{TicketId, Timestamp, WaitingRoomKey};
use crate::limits::WATCH_COUNTDOWN_INTERVAL_MS;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A line's streams are woken for the line's changes at most this often (the draw at once): the countdown's interval.
pub const LINE_WAKE_INTERVAL_MS: u64 = WATCH_COUNTDOWN_INTERVAL_MS;

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

/// A ticket's own wake-up signal: its value counts the steps that changed the ticket's state.
pub type TicketSignal = watch::Receiver<u64>;

#[derive(Default)]
pub(super) struct Table {
    /// Tickets whose holder was seen: when last, and how many Watch streams follow them now.
    pub(super) tickets: HashMap<TicketId, Seen>,
    /// Tickets no stream follows, by when they were last seen, oldest first: the idle check reads the front.
    pub(super) quiet: BTreeSet<(Timestamp, TicketId)>,
    /// The wake-up groups of each line with Watch streams.
    pub(super) signals: HashMap<WaitingRoomKey, LineSignals>,
    /// Each followed ticket's own signal.
    pub(super) ticket_signals: HashMap<TicketId, watch::Sender<u64>>,
    /// The tickets present at start-up have been registered.
    pub(super) adopted: bool,
    /// When to give freed memory back again: once the request ids of an ended waiting room's joins are forgotten.
    pub(super) trim_at: Option<Timestamp>,
}

/// One line's wake-up signals, one per group; shared so that a fan-out runs outside the table's lock.
pub(super) type LineGroups = Arc<[watch::Sender<u64>]>;

/// A line's wake-up groups and when they were last woken.
pub(super) struct LineSignals {
    groups: LineGroups,
    /// When the groups were last woken.
    woken_at: Option<Instant>,
    /// The streams were woken after the line's draw.
    draw_shown: bool,
}

impl LineSignals {
    fn new() -> LineSignals {
        LineSignals {
            groups: (0..WAKE_GROUPS).map(|_| watch::channel(0).0).collect(),
            woken_at: None,
            draw_shown: false,
        }
    }
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

    /// Forgets a ticket; its streams' own signal closes (they look at the ticket once more).
    pub(super) fn forget(&mut self, ticket_id: TicketId) {
        if let Some(seen) = self.tickets.remove(&ticket_id) {
            self.quiet.remove(&(seen.at, ticket_id));
        }
        self.ticket_signals.remove(&ticket_id);
    }

    /// A Watch stream of `ticket_id` opened: the ticket is not quiet while it is open. Returns the ticket's own signal.
    pub(super) fn open_stream(&mut self, ticket_id: TicketId, now: Timestamp) -> TicketSignal {
        let seen = self.tickets.entry(ticket_id).or_insert(Seen { at: now, streams: 0 });
        if seen.streams == 0 {
            self.quiet.remove(&(seen.at, ticket_id));
        }
        seen.streams += 1;
        seen.at = now;
        self.ticket_signals.entry(ticket_id).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    pub(super) fn close_stream(&mut self, ticket_id: TicketId, now: Timestamp) {
        let Some(seen) = self.tickets.get_mut(&ticket_id) else { return };
        seen.streams = seen.streams.saturating_sub(1);
        seen.at = now;
        if seen.streams == 0 {
            self.quiet.insert((now, ticket_id));
            self.ticket_signals.remove(&ticket_id);
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

    /// The line signal a stream of `ticket_id` in line `key` wakes on.
    pub(super) fn signal(&self, key: &WaitingRoomKey, ticket_id: TicketId) -> LineSignal {
        let mut table = self.table.lock();
        table.signals.entry(key.clone()).or_insert_with(LineSignals::new).groups[group_of(ticket_id)].subscribe()
    }

    /// Wakes the streams of each of `ticket_ids` (a step changed their state).
    pub(super) fn wake_tickets(&self, ticket_ids: &[TicketId]) {
        let table = self.table.lock();
        for ticket_id in ticket_ids {
            if let Some(sender) = table.ticket_signals.get(ticket_id) {
                sender.send_modify(|count| *count += 1);
            }
        }
    }

    /// Wakes the streams of every line whose change count (`changes`: line, count, drawn) moved: at once when the
    /// line's draw was not shown yet, otherwise once [`LINE_WAKE_INTERVAL_MS`] passed since the line's last wake-up
    /// (a change that must wait is woken for by a later call, as the count still differs). A line's groups are woken
    /// one at a time with a yield to the scheduler between two that had streams. Drops the signals of lines that are
    /// gone (their streams wake with an error and look for their ticket again) or that nobody follows.
    pub(super) async fn notify(&self, changes: &[(WaitingRoomKey, u64, bool)]) {
        let lines: HashMap<&WaitingRoomKey, (u64, bool)> =
            changes.iter().map(|(key, count, drawn)| (key, (*count, *drawn))).collect();
        let now = Instant::now();
        let interval = Duration::from_millis(LINE_WAKE_INTERVAL_MS);
        let waking: Vec<(LineGroups, u64)> = {
            let mut table = self.table.lock();
            table.signals.retain(|key, line| {
                lines.contains_key(key) && line.groups.iter().any(|sender| sender.receiver_count() > 0)
            });
            let mut waking = Vec::new();
            for (key, line) in &mut table.signals {
                let (count, drawn) = lines[key];
                let moved = *line.groups[0].borrow() != count;
                let draw_news = drawn && !line.draw_shown;
                let due = line.woken_at.is_none_or(|at| now.duration_since(at) >= interval);
                if moved && (draw_news || due) {
                    (line.woken_at, line.draw_shown) = (Some(now), line.draw_shown || drawn);
                    waking.push((Arc::clone(&line.groups), count));
                }
            }
            waking
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
        watchers.notify(&[(key.clone(), 0, false)]).await;
        assert!(!signal.has_changed().expect("open"), "no change, no wake-up");
        watchers.notify(&[(key.clone(), 3, false)]).await;
        watchers.notify(&[(key.clone(), 3, false)]).await;
        assert!(signal.has_changed().expect("open"));
        signal.changed().await.expect("woken");
        assert!(!signal.has_changed().expect("open"), "one wake-up for one change");
        watchers.notify(&[]).await;
        assert!(signal.changed().await.is_err(), "the line is gone: the stream looks for its ticket again");
        assert!(watchers.table.lock().signals.is_empty());
        drop(watchers.signal(&key, TicketId(7)));
        watchers.notify(&[(key, 4, false)]).await;
        assert!(watchers.table.lock().signals.is_empty(), "nobody follows the line: its signal goes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_wakes_at_once_for_its_draw_then_at_most_once_a_second_and_a_ticket_at_once_for_its_own_news() {
        let watchers = Watchers::default();
        let key = line();
        let mut signal = watchers.signal(&key, TicketId(7));
        let mut own = watchers.table.lock().open_stream(TicketId(7), Timestamp(0));
        watchers.notify(&[(key.clone(), 1, false)]).await;
        assert!(signal.has_changed().expect("open"), "the line's first change (a leave before the draw): at once");
        signal.borrow_and_update();
        watchers.notify(&[(key.clone(), 2, true)]).await;
        assert!(signal.has_changed().expect("open"), "the draw: at once");
        signal.borrow_and_update();
        watchers.notify(&[(key.clone(), 3, true)]).await;
        assert!(!signal.has_changed().expect("open"), "a step right after: held back");
        watchers.wake_tickets(&[TicketId(7), TicketId(8)]);
        assert!(own.has_changed().expect("open"), "the ticket's own news (admitted): at once");
        own.borrow_and_update();
        tokio::time::advance(Duration::from_millis(LINE_WAKE_INTERVAL_MS - 1)).await;
        watchers.notify(&[(key.clone(), 4, true)]).await;
        assert!(!signal.has_changed().expect("open"), "not yet a second since the draw's wake-up");
        tokio::time::advance(Duration::from_millis(1)).await;
        watchers.notify(&[(key.clone(), 4, true)]).await;
        assert_eq!(*signal.borrow_and_update(), 4, "a second on, the held-back changes wake the line once");
        watchers.table.lock().close_stream(TicketId(7), Timestamp(1));
        assert!(own.changed().await.is_err(), "the ticket's last stream closed: its signal goes");
    }

    #[test]
    fn a_line_wake_up_goes_a_group_at_a_time_yielding_between_groups() {
        let watchers = Watchers::default();
        let key = line();
        let signals: Vec<LineSignal> =
            (0..WAKE_GROUPS as u64).map(|ticket| watchers.signal(&key, TicketId(ticket))).collect();
        let woken = || signals.iter().filter(|signal| signal.has_changed().expect("open")).count();
        let changes = [(key, 1, false)];
        let mut notify = std::pin::pin!(watchers.notify(&changes));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        // Each poll wakes one group and yields, so the tasks queued meanwhile run before the next group is woken.
        let mut polls = 0;
        while notify.as_mut().poll(&mut context).is_pending() {
            polls += 1;
            assert_eq!(woken(), polls, "one group more at each turn");
        }
        assert_eq!(polls, WAKE_GROUPS, "a yield after each group");
        assert_eq!(woken(), WAKE_GROUPS, "every group woken once");
    }
}
