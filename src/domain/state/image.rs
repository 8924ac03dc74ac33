//! The whole state as one value: what a snapshot stores, and what tests compare to prove that replay and snapshots
//! rebuild exactly the state that was running.
//!
//! The image is flat and sorted, independent of how many shards the running book has, so a snapshot taken by one
//! build loads in another with a different shard count.

use super::book::{Capture, QuotaBook};
use super::reads::{add_counters, refund_order};
use super::shard::{ApplicantRecord, DayKey, DayLedger, OfficeCounters, RequestRecord, Shard, ShardKey};
use crate::domain::bookings::booking::{Booking, BookingState, PurgedBooking};
use crate::domain::bookings::refund::Refund;
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Catalog, Office, OfficeSettings, ScheduleRule};
use crate::domain::values::ids::{BookingId, OfficeId, RequestDigest, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::Date;
use crate::domain::waiting_room::room::{DrawState, WaitingRoom, WaitingRoomKey, WaitingRooms};
use crate::limits::SHARD_COUNT;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the image layout inside a snapshot payload; bumped on any incompatible change. Version 7 keeps request
/// records under the digests of their request ids, not the ids' text (`RequestDigest`). Version 6 keeps in each
/// request record the ids of the bookings its answer names, not copies of them (`remembered.rs`); version 5 added to
/// every booking (in `bookings` and in remembered answers) its amendment count and last amendment time; version 4 added
/// each waiting room's draw (its secret and figures, [`Image::draws`]); version 3 added the bookings' owners and the
/// next ticket number, and dropped the next booking number (numbers are drawn at random, see `numbers.rs`). Versions
/// 6, 5, 4, 3 and 2 still load (`older_images.rs`).
pub const IMAGE_VERSION: u16 = 7;

/// An office in an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeImage {
    /// Settings.
    pub settings: OfficeSettings,
    /// Schedules in the order set.
    pub rules: Vec<ScheduleRule>,
    /// Closed dates.
    pub closed: Vec<(Date, String)>,
}

/// The whole state, flat and sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// [`IMAGE_VERSION`] when written.
    pub version: u16,
    /// Log position the image reflects.
    pub log_position: u64,
    /// Offices by id.
    pub offices: Vec<OfficeImage>,
    /// Day ledgers by key.
    pub days: Vec<(DayKey, DayLedger)>,
    /// Bookings by id.
    pub bookings: Vec<Booking>,
    /// Applicants by NIK.
    pub applicants: Vec<(Nik, ApplicantRecord)>,
    /// Request records by the digest of their request id.
    pub requests: Vec<(RequestDigest, RequestRecord)>,
    /// Refunds in the order recorded.
    pub refunds: Vec<Refund>,
    /// What is kept of purged bookings, by booking id.
    pub purged: Vec<PurgedBooking>,
    /// Running totals per office.
    pub counters: Vec<(OfficeId, OfficeCounters)>,
    /// Waiting rooms by line.
    pub rooms: Vec<WaitingRoom>,
    /// The caller that made each booking that has one, by booking id.
    pub owners: Vec<(BookingId, String)>,
    /// Next ticket number: waiting rooms that ended took their tickets with them, and their numbers stay used.
    pub next_ticket_id: u64,
    /// Each waiting room's draw, by line (in the order of `rooms`).
    pub draws: Vec<(WaitingRoomKey, DrawState)>,
}

impl Capture {
    /// The captured state as an image (sorting copies of every record: run it off the request path).
    #[must_use]
    pub fn to_image(&self) -> Image {
        let shards = &self.shards;
        let mut days: Vec<(DayKey, DayLedger)> =
            shards.iter().flat_map(|shard| shard.days.iter().map(|(key, day)| (key.clone(), day.clone()))).collect();
        days.sort_by(|left, right| left.0.cmp(&right.0));
        let mut bookings: Vec<Booking> = shards.iter().flat_map(|shard| shard.bookings.values().cloned()).collect();
        bookings.sort_by_key(|booking| booking.booking_id);
        let mut applicants: Vec<(Nik, ApplicantRecord)> = shards
            .iter()
            .flat_map(|shard| shard.applicants.iter().map(|(nik, record)| (*nik, record.clone())))
            .collect();
        applicants.sort_by_key(|(nik, _)| *nik);
        let mut requests: Vec<(RequestDigest, RequestRecord)> = shards
            .iter()
            .flat_map(|shard| shard.requests.iter().map(|(request, record)| (*request, record.clone())))
            // The log position is not part of the state (replay and snapshots leave it 0): keep it out of the image
            // so a running book and its replay compare equal.
            .map(|(id, record)| (id, RequestRecord { log_position: 0, ..record }))
            .collect();
        requests.sort_by_key(|(request, _)| *request);
        let mut refunds: Vec<Refund> =
            shards.iter().flat_map(|shard| shard.refunds.values().flatten().cloned()).collect();
        refunds.sort_by(refund_order);
        let mut purged: Vec<PurgedBooking> = shards.iter().flat_map(|shard| shard.purged.values().cloned()).collect();
        purged.sort_by_key(|purged| purged.booking_id);
        let mut owners: Vec<(BookingId, String)> = shards
            .iter()
            .flat_map(|shard| shard.owners.iter().map(|(booking_id, owner)| (*booking_id, owner.to_string())))
            .collect();
        owners.sort();
        let mut counters: BTreeMap<OfficeId, OfficeCounters> = BTreeMap::new();
        for (office_id, more) in shards.iter().flat_map(|shard| shard.counters.iter()) {
            add_counters(counters.entry(office_id.clone()).or_default(), more);
        }
        Image {
            version: IMAGE_VERSION,
            log_position: self.log_position,
            offices: catalog_image(&self.catalog),
            days,
            bookings,
            applicants,
            requests,
            refunds,
            purged,
            counters: counters.into_iter().collect(),
            rooms: self.waiting_rooms.iter().map(|room| WaitingRoom::clone(room)).collect(),
            owners,
            next_ticket_id: self.next_ticket_id,
            draws: self.waiting_rooms.iter().map(|room| (room.key.clone(), room.draw.clone())).collect(),
        }
    }
}

/// The catalogue as an image holds it.
pub(super) fn catalog_image(catalog: &Catalog) -> Vec<OfficeImage> {
    catalog
        .offices
        .values()
        .map(|office| OfficeImage {
            settings: office.settings.clone(),
            rules: office.rules.clone(),
            closed: office.closed.iter().map(|(date, reason)| (*date, reason.clone())).collect(),
        })
        .collect()
}

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Written by a newer build.
    #[error("snapshot image version {found} is not supported (this build reads {IMAGE_VERSION})")]
    UnsupportedVersion {
        /// Version found.
        found: u16,
    },
    /// An office's time zone is unknown to this build's tz database.
    #[error("office {office_id} has unknown time zone {time_zone}")]
    UnknownTimeZone {
        /// The office.
        office_id: OfficeId,
        /// Its zone.
        time_zone: String,
    },
}

impl QuotaBook {
    /// Rebuilds a book from an image.
    pub fn from_image(rules: BookRules, image: Image) -> Result<QuotaBook, ImageError> {
        if image.version != IMAGE_VERSION {
            return Err(ImageError::UnsupportedVersion { found: image.version });
        }
        let mut catalog = Catalog::default();
        for office_image in image.offices {
            let settings = office_image.settings;
            let Some(mut office) = Office::new(settings.clone()) else {
                return Err(ImageError::UnknownTimeZone {
                    office_id: settings.office_id,
                    time_zone: settings.time_zone,
                });
            };
            office.rules = office_image.rules;
            office.closed = office_image.closed.into_iter().collect();
            catalog.offices.insert(settings.office_id, office);
        }
        let mut shards: Vec<Shard> = (0..SHARD_COUNT).map(|_| Shard::default()).collect();
        for (key, day) in image.days {
            shards[key.shard_index()].days.insert(key, day);
        }
        // Decoding gave every booking its own copy of its office and session ids: share one per slot instead, as the
        // running book shares the catalogue's (two allocations a booking fewer after a restart).
        let mut slot_ids: BTreeMap<(OfficeId, SessionId), (OfficeId, SessionId)> = BTreeMap::new();
        for mut booking in image.bookings {
            let slot = &mut booking.slot;
            let key = (slot.office_id.clone(), slot.session_id.clone());
            let (office_id, session_id) = slot_ids.entry(key).or_insert_with_key(|key| key.clone());
            slot.office_id.clone_from(office_id);
            slot.session_id.clone_from(session_id);
            let shard = &mut shards[booking.booking_id.shard_index()];
            match booking.state {
                BookingState::AwaitingPayment => {
                    shard.deadlines.insert((booking.hold_due_at(), booking.booking_id));
                }
                BookingState::Confirmed => {
                    shard.session_ends.insert((booking.session_ends_at, booking.booking_id));
                }
                _ => {}
            }
            shard.bookings.insert(booking.booking_id, booking);
        }
        for (booking_id, owner) in image.owners {
            shards[booking_id.shard_index()].set_owner(booking_id, &owner);
        }
        for (nik, record) in image.applicants {
            shards[nik.shard_index()].applicants.insert(nik, record);
        }
        for (request, record) in image.requests {
            shards[request.shard_index()].remember_request(request, record);
        }
        for refund in image.refunds {
            shards[refund.booking_id.shard_index()].refunds.get_or_default(refund.booking_id).push(refund);
        }
        for purged in image.purged {
            shards[purged.booking_id.shard_index()].purged.insert(purged.booking_id, purged);
        }
        // Totals are summed over shards when read, so one shard can carry each office's whole total.
        shards[0].counters = image.counters.into_iter().collect();
        let mut rooms = WaitingRooms::new();
        let mut draws: BTreeMap<WaitingRoomKey, DrawState> = image.draws.into_iter().collect();
        for mut room in image.rooms {
            room.reindex();
            room.draw = draws.remove(&room.key).unwrap_or_default();
            rooms.insert(room.key.clone(), std::sync::Arc::new(room));
        }
        Ok(QuotaBook::from_parts(rules, shards, catalog, rooms, image.next_ticket_id))
    }

    /// The current state as an image at `log_position` (for tests and tools; snapshots use [`QuotaBook::capture`]).
    #[must_use]
    pub fn image(&self, log_position: u64) -> Image {
        self.capture(|| log_position).to_image()
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::testkit::{Capacities, Fixture, adult, monday, morning, now, rules, slot};
    use crate::domain::{BookingId, Pool, QuotaBook};

    #[test]
    fn bookings_loaded_from_an_image_share_their_slots_ids() {
        let fixture = Fixture::with(rules(), Capacities { regular: 10, priority: 0 });
        let held: Vec<BookingId> = (1..=3)
            .map(|serial| fixture.held(slot(monday(), morning(), Pool::Regular), adult(serial), now()).booking_id)
            .collect();
        let bytes = postcard::to_stdvec(&fixture.book.image(0)).expect("encodes");
        let image = postcard::from_bytes(&bytes).expect("decodes");
        let loaded = QuotaBook::from_image(rules(), image).expect("loads");
        let bookings: Vec<_> = held.iter().map(|booking_id| loaded.booking(*booking_id).expect("loaded")).collect();
        for booking in &bookings[1..] {
            assert_eq!(booking.slot.office_id.as_str().as_ptr(), bookings[0].slot.office_id.as_str().as_ptr());
            assert_eq!(booking.slot.session_id.as_str().as_ptr(), bookings[0].slot.session_id.as_str().as_ptr());
        }
    }
}
