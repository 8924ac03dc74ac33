//! A capture encoded as an [`super::image::Image`] without building one: [`Capture::streamed`] serializes field by field, in the
//! image's order and layout, reading the records in place from the captured shards. Each shard's maps are B-trees,
//! already sorted by key, so the image's sorted sequences are merges of the shards' iterators: no copy of a booking,
//! no sort of a million keys, and no second copy of the state beside the encoded bytes while a snapshot is taken.
//!
//! Its encoding is byte for byte that of [`Capture::to_image`] (a test below compares them), so snapshots load as
//! before. Only the small parts (offices, counters summed over shards, refunds, waiting rooms) are copied.

use super::book::Capture;
use super::image::IMAGE_VERSION;
use super::reads::{add_counters, refund_order};
use crate::domain::bookings::refund::Refund;
use crate::domain::values::ids::OfficeId;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

impl Capture {
    /// The captured state, serializable exactly as its [`Capture::to_image`] is.
    #[must_use]
    pub fn streamed(&self) -> StreamedImage<'_> {
        StreamedImage { capture: self }
    }
}

/// See [`Capture::streamed`].
pub struct StreamedImage<'capture> {
    capture: &'capture Capture,
}

impl Serialize for StreamedImage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let capture = self.capture;
        let shards = &capture.shards;
        let total = |count: fn(&super::shard::Shard) -> usize| shards.iter().map(|shard| count(shard)).sum::<usize>();
        // Small and not kept sorted across shards: made as `to_image` makes them.
        let mut refunds: Vec<&Refund> = shards.iter().flat_map(|shard| shard.refunds.values().flatten()).collect();
        refunds.sort_by(|left, right| refund_order(left, right));
        let mut counters: BTreeMap<&OfficeId, super::shard::OfficeCounters> = BTreeMap::new();
        for (office_id, more) in shards.iter().flat_map(|shard| shard.counters.iter()) {
            add_counters(counters.entry(office_id).or_default(), more);
        }
        let offices = super::image::catalog_image(&capture.catalog);
        // The field names are those of `Image`; postcard writes none of them, only the values in this order.
        let mut image = serializer.serialize_struct("Image", 14)?;
        image.serialize_field("version", &IMAGE_VERSION)?;
        image.serialize_field("log_position", &capture.log_position)?;
        image.serialize_field("offices", &offices)?;
        let days = merged(shards.iter().map(|shard| shard.days.iter()));
        image.serialize_field("days", &Sequence::new(total(|shard| shard.days.len()), days))?;
        let bookings = merged(shards.iter().map(|shard| shard.bookings.iter())).map(|(_, booking)| booking);
        image.serialize_field("bookings", &Sequence::new(total(|shard| shard.bookings.len()), bookings))?;
        let applicants = merged(shards.iter().map(|shard| shard.applicants.iter()));
        image.serialize_field("applicants", &Sequence::new(total(|shard| shard.applicants.len()), applicants))?;
        // A record's log position is not encoded (`#[serde(skip)]`), as `to_image` leaves it out.
        let requests = merged(shards.iter().map(|shard| shard.requests.iter()));
        image.serialize_field("requests", &Sequence::new(total(|shard| shard.requests.len()), requests))?;
        image.serialize_field("refunds", &refunds)?;
        let purged = merged(shards.iter().map(|shard| shard.purged.iter())).map(|(_, purged)| purged);
        image.serialize_field("purged", &Sequence::new(total(|shard| shard.purged.len()), purged))?;
        image.serialize_field("counters", &Sequence::new(counters.len(), counters.iter()))?;
        let rooms = capture.waiting_rooms.iter().map(|room| &**room);
        image.serialize_field("rooms", &Sequence::new(capture.waiting_rooms.len(), rooms))?;
        let owners = merged(shards.iter().map(|shard| shard.owners.iter())).map(|(id, owner)| (id, owner.as_str()));
        image.serialize_field("owners", &Sequence::new(total(|shard| shard.owners.len()), owners))?;
        image.serialize_field("next_ticket_id", &capture.next_ticket_id)?;
        let draws = capture.waiting_rooms.iter().map(|room| (&room.key, &room.draw));
        image.serialize_field("draws", &Sequence::new(capture.waiting_rooms.len(), draws))?;
        image.end()
    }
}

/// A sequence of known length, serialized as it is iterated (once).
struct Sequence<I> {
    len: usize,
    items: std::cell::Cell<Option<I>>,
}

impl<I> Sequence<I> {
    fn new(len: usize, items: I) -> Sequence<I> {
        Sequence { len, items: std::cell::Cell::new(Some(items)) }
    }
}

impl<I> Serialize for Sequence<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.items.take().expect("a sequence is serialized once");
        let mut sequence = serializer.serialize_seq(Some(self.len))?;
        let mut written = 0;
        for item in items {
            sequence.serialize_element(&item)?;
            written += 1;
        }
        assert_eq!(written, self.len, "the length written first is the number of items");
        sequence.end()
    }
}

/// The entries of maps each sorted by key, merged into one sequence sorted by key. A key is in at most one shard.
fn merged<'map, K, V, I>(sorted: impl Iterator<Item = I>) -> impl Iterator<Item = (&'map K, &'map V)>
where
    K: Ord + 'map,
    V: 'map,
    I: Iterator<Item = (&'map K, &'map V)>,
{
    let mut sources: Vec<I> = sorted.collect();
    // The next entry of every source, smallest key first; the source's index says where to take the one after.
    let mut heads: BinaryHeap<Reverse<Head<'map, K, V>>> = BinaryHeap::with_capacity(sources.len());
    for (source, entries) in sources.iter_mut().enumerate() {
        if let Some((key, value)) = entries.next() {
            heads.push(Reverse(Head { key, value, source }));
        }
    }
    std::iter::from_fn(move || {
        let Reverse(Head { key, value, source }) = heads.pop()?;
        if let Some((next_key, next_value)) = sources[source].next() {
            debug_assert!(next_key > key, "each source is sorted by key");
            heads.push(Reverse(Head { key: next_key, value: next_value, source }));
        }
        Some((key, value))
    })
}

/// The next entry of one source of [`merged`], ordered by key.
struct Head<'map, K, V> {
    key: &'map K,
    value: &'map V,
    source: usize,
}

impl<K: Ord, V> PartialEq for Head<'_, K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Ord, V> Eq for Head<'_, K, V> {}

impl<K: Ord, V> PartialOrd for Head<'_, K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, V> Ord for Head<'_, K, V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(other.key)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::testkit::{Capacities, Fixture, adult, hold_group, monday, morning, now, pay, rules, slot};
    use crate::domain::{Pool, Reply};

    #[test]
    fn a_streamed_capture_encodes_as_its_image_does() {
        let fixture = Fixture::with(rules(), Capacities { regular: 100, priority: 0 });
        for serial in 1..=40 {
            let booking = fixture.held(slot(monday(), morning(), Pool::Regular), adult(serial), now());
            if serial % 3 == 0 {
                fixture.run(&pay(booking.booking_id, &format!("pay-{serial}")), now());
            }
        }
        let group =
            fixture.run(&hold_group(slot(monday(), morning(), Pool::Regular), vec![adult(41), adult(42)]), now());
        assert!(matches!(group.outcome, Ok(Reply::Held { .. })), "{group:?}");
        let capture = fixture.book.capture(|| 17);
        assert!(capture.shards.iter().filter(|shard| !shard.bookings.is_empty()).count() > 4, "spread over shards");
        let streamed = postcard::to_stdvec(&capture.streamed()).expect("encodes");
        assert_eq!(streamed, postcard::to_stdvec(&capture.to_image()).expect("encodes"));
    }
}
