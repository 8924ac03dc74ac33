//! How events and state images become bytes for the log and snapshots.
//!
//! Format: the storage layer frames each log record (length, crc32c, position) and each snapshot (magic, version,
//! crc32c); inside a frame, the payload is the [postcard](https://postcard.jamesmunns.com/wire-format) encoding of an
//! [`Event`] (log) or an [`Image`] (snapshot): varint integers, length-prefixed strings and sequences, enum variants by
//! index. Variant order is part of the format: new variants are appended, never inserted. Every decoded value is checked
//! again by the domain when applied (pair assertions).

use crate::domain::{Capture, Event, Image, ImageV2, ImageV3, ImageV4, ImageV5, ImageV6};

/// A payload that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {source}")]
pub struct DecodeError {
    /// Event or image.
    what: &'static str,
    /// The decoder's reason.
    source: postcard::Error,
}

/// Encodes a log event. Encoded into a scratch buffer the thread keeps, then copied into a vector of the exact size:
/// one allocation per event, where growing a fresh vector took several.
#[must_use]
pub fn encode_event(event: &Event) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let encoded = postcard::to_extend(event, std::mem::take(scratch));
        *scratch = encoded.expect("events encode: no maps with non-string keys, no unsupported types");
        let payload = scratch.as_slice().to_vec();
        // A rare large event (an admin command's) is not kept: the scratch stays the size of a usual one.
        if scratch.capacity() > SCRATCH_BYTES_KEPT_MAX {
            *scratch = Vec::new();
        }
        payload
    })
}

/// The most scratch capacity [`encode_event`] keeps between events.
const SCRATCH_BYTES_KEPT_MAX: usize = 16 * 1024;

/// Decodes a log event.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    postcard::from_bytes(bytes).map_err(|source| DecodeError { what: "log event", source })
}

/// Encodes a snapshot image.
#[must_use]
pub fn encode_image(image: &Image) -> Vec<u8> {
    postcard::to_stdvec(image).expect("images encode")
}

/// Encodes a captured state as a snapshot image: the bytes [`encode_image`] makes of its `to_image`, written from the
/// shards as they are (`domain::state::streamed_image`).
#[must_use]
pub fn encode_capture(capture: &Capture) -> Vec<u8> {
    postcard::to_stdvec(&capture.streamed()).expect("images encode")
}

/// Decodes a snapshot image of the current version, or of version 6 (made current: its request records are kept under
/// their ids' digests), 5 (also: its remembered answers become
/// answers by booking id), 4 (also: its bookings were never amended), 3 (also: its waiting rooms committed to no draw
/// secret) or 2 (also: its bookings have no owners). The version is the image's first field, so it is read first to
/// pick the layout.
pub fn decode_image(bytes: &[u8]) -> Result<Image, DecodeError> {
    let error = |source| DecodeError { what: "snapshot image", source };
    let (version, _) = postcard::take_from_bytes::<u16>(bytes).map_err(error)?;
    match version {
        2 => postcard::from_bytes::<ImageV2>(bytes).map(Image::from).map_err(error),
        3 => postcard::from_bytes::<ImageV3>(bytes).map(Image::from).map_err(error),
        4 => postcard::from_bytes::<ImageV4>(bytes).map(Image::from).map_err(error),
        5 => postcard::from_bytes::<ImageV5>(bytes).map(Image::from).map_err(error),
        6 => postcard::from_bytes::<ImageV6>(bytes).map(Image::from).map_err(error),
        _ => postcard::from_bytes(bytes).map_err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_as_postcard_does_whatever_came_before_on_the_thread() {
        let closed = |reason: String| Event::DateClosed {
            stamp: crate::domain::Stamp {
                request_id: crate::domain::RequestId::parse("close-1").expect("request id"),
                fingerprint: 7,
                at: crate::domain::Timestamp(1_800_000_000_000),
            },
            office_id: crate::domain::OfficeId::parse("kanim-batam").expect("office id"),
            date: crate::domain::Date::new(2027, 1, 4).expect("date"),
            reason,
            reopen: false,
        };
        let events = [
            Event::RequestsForgotten { recorded_before: crate::domain::Timestamp(5) },
            closed("x".repeat(SCRATCH_BYTES_KEPT_MAX * 2)),
            closed("renovation".to_owned()),
            Event::RequestsForgotten { recorded_before: crate::domain::Timestamp(-1) },
        ];
        for event in &events {
            let encoded = encode_event(event);
            assert_eq!(encoded, postcard::to_stdvec(event).expect("encodes"));
            assert_eq!(encoded.capacity(), encoded.len(), "one exact allocation");
            assert_eq!(&decode_event(&encoded).expect("decodes"), event);
        }
    }

    use crate::domain::{BookingV3, RememberedReply, ReplyV3, RequestRecordV3, RequestRecordV5};

    /// A book with one amended-never booking and a remembered answer naming it, as an image of the current version.
    fn image_with_a_booking() -> Image {
        let mut image = crate::domain::QuotaBook::new(crate::domain::BookRules::default()).image(7);
        let booking = a_booking();
        image.requests = vec![(
            crate::domain::RequestId::parse("hold-1").expect("id").digest(),
            crate::domain::state::shard::RequestRecord {
                fingerprint: 9,
                recorded_at: booking.created_at,
                outcome: Ok(RememberedReply::Booking(booking.booking_id)),
                log_position: 0,
            },
        )];
        image.bookings = vec![booking];
        image
    }

    fn a_booking() -> crate::domain::Booking {
        use crate::domain::{Applicant, Booking, BookingId, BookingState, Date, Nik, Pool, ServiceType, SlotRef};
        let birth_date = Date::new(1985, 8, 17).expect("date");
        Booking {
            booking_id: BookingId(42),
            state: BookingState::Confirmed,
            slot: SlotRef {
                office_id: crate::domain::OfficeId::parse("kanim-batam").expect("id"),
                date: Date::new(2030, 1, 7).expect("date"),
                session_id: crate::domain::SessionId::parse("0800-1000").expect("id"),
                pool: Pool::Regular,
            },
            service: ServiceType::NewPassport,
            applicant: Applicant {
                nik: Nik::parse_matching("3171011708850001", birth_date).expect("nik"),
                full_name: "Budi Santoso".into(),
                birth_date,
                has_disability: false,
            },
            account_id: crate::domain::AccountId::parse("account-1").expect("id"),
            payment_deadline: crate::domain::Timestamp(1_000),
            payment_reference: None,
            created_at: crate::domain::Timestamp(500),
            updated_at: crate::domain::Timestamp(600),
            reschedules_used: 1,
            group_id: None,
            session_starts_at: crate::domain::Timestamp(9_000),
            session_ends_at: crate::domain::Timestamp(10_000),
            settlement_deadline: None,
            amendments_used: 0,
            last_amended_at: None,
        }
    }

    #[test]
    fn a_booking_encodes_as_it_did_when_it_kept_its_payment_code() {
        let at = Some(crate::domain::Timestamp(700));
        let booking = crate::domain::Booking { amendments_used: 2, last_amended_at: at, ..a_booking() };
        let with_code = |old: &BookingV3| {
            let mut bytes = postcard::to_stdvec(old).expect("encodes");
            bytes.extend(postcard::to_stdvec(&(2u32, at)).expect("encodes"));
            bytes
        };
        let old = BookingV3::from(&booking);
        assert_eq!(old.payment_code, 800_000_000_000_000 + 42 * 48_271_371_313);
        assert_eq!(postcard::to_stdvec(&booking).expect("encodes"), with_code(&old), "the layout of version 5 on");
        assert_eq!(postcard::from_bytes::<crate::domain::Booking>(&with_code(&old)).expect("decodes"), booking);
        let foreign_code = BookingV3 { payment_code: old.payment_code + 1, ..old };
        assert!(postcard::from_bytes::<crate::domain::Booking>(&with_code(&foreign_code)).is_err(), "pair assertion");
    }

    /// The request records of `image` as versions 2 to 4 stored them: whole answers, with a copy of the booking.
    fn older_requests(image: &Image) -> Vec<(crate::domain::RequestId, RequestRecordV3)> {
        let booking = BookingV3::from(&image.bookings[0]);
        let (_, record) = &image.requests[0];
        let outcome = Ok(ReplyV3::Booking(booking));
        vec![(
            crate::domain::RequestId::parse("hold-1").expect("id"),
            RequestRecordV3 { fingerprint: record.fingerprint, recorded_at: record.recorded_at, outcome },
        )]
    }

    #[test]
    fn a_version_2_snapshot_image_still_loads() {
        let image = image_with_a_booking();
        let old = ImageV2 {
            version: 2,
            log_position: image.log_position,
            next_booking_id: 42,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.iter().map(BookingV3::from).collect(),
            applicants: image.applicants.clone(),
            requests: older_requests(&image),
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
        };
        let bytes = postcard::to_stdvec(&old).expect("encode");
        assert_eq!(decode_image(&bytes).expect("a version 2 image"), image);
        assert_eq!(decode_image(&encode_image(&image)).expect("a current image"), image);
        assert!(decode_image(&[0x80]).is_err(), "a truncated version");
    }

    #[test]
    fn a_version_6_snapshot_image_still_loads_with_its_requests_kept_by_digest() {
        let image = image_with_a_booking();
        let request = |id: &str| crate::domain::RequestId::parse(id).expect("id");
        let record = image.requests[0].1.clone();
        let old = ImageV6 {
            version: 6,
            log_position: image.log_position,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.clone(),
            applicants: image.applicants.clone(),
            requests: vec![(request("hold-1"), record.clone()), (request("hold-2"), record.clone())],
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
            owners: image.owners.clone(),
            next_ticket_id: image.next_ticket_id,
            draws: image.draws.clone(),
        };
        let loaded = decode_image(&postcard::to_stdvec(&old).expect("encode")).expect("a version 6 image");
        let mut requests = vec![(request("hold-1").digest(), record.clone()), (request("hold-2").digest(), record)];
        requests.sort_by_key(|(digest, _)| *digest);
        assert_eq!(loaded, Image { requests, ..image.clone() }, "records under their ids' digests, in digest order");
        let book = crate::domain::QuotaBook::from_image(crate::domain::BookRules::default(), loaded).expect("loads");
        assert!(book.remembers(&request("hold-2"), record_time(&image)), "a retry finds its record by id");
        assert!(!book.remembers(&request("hold-3"), record_time(&image)));
    }

    fn record_time(image: &Image) -> crate::domain::Timestamp {
        image.requests[0].1.recorded_at
    }

    #[test]
    fn a_version_5_snapshot_image_still_loads_with_its_answers_kept_by_booking_id() {
        let image = image_with_a_booking();
        let booking = image.bookings[0].clone();
        let purged = crate::domain::Booking { booking_id: crate::domain::BookingId(77), ..booking.clone() };
        let whole = |reply: crate::domain::Reply| RequestRecordV5 {
            fingerprint: 9,
            recorded_at: booking.created_at,
            outcome: Ok(reply),
        };
        let request = |id: &str| crate::domain::RequestId::parse(id).expect("id");
        let old = ImageV5 {
            version: 5,
            log_position: image.log_position,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.clone(),
            applicants: image.applicants.clone(),
            requests: vec![
                (request("hold-1"), whole(crate::domain::Reply::Booking(booking.clone()))),
                (request("hold-2"), whole(crate::domain::Reply::Booking(purged.clone()))),
            ],
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
            owners: image.owners.clone(),
            next_ticket_id: image.next_ticket_id,
            draws: image.draws.clone(),
        };
        let loaded = decode_image(&postcard::to_stdvec(&old).expect("encode")).expect("a version 5 image");
        assert_eq!(loaded.version, crate::domain::state::image::IMAGE_VERSION);
        let loaded_record = |id: &str| {
            let digest = request(id).digest();
            loaded.requests.iter().find(|(each, _)| *each == digest).map(|(_, record)| record).expect("loaded")
        };
        assert_eq!(loaded_record("hold-1"), &image.requests[0].1, "an answer whose booking is there keeps only its id");
        // A booking purged before the upgrade: its answer is kept whole, so a retry still gets it.
        let kept = &loaded_record("hold-2").outcome;
        assert_eq!(kept, &Ok(RememberedReply::Kept(Box::new(crate::domain::Reply::Booking(purged)))));
        assert_eq!(loaded.bookings, image.bookings);
    }

    #[test]
    fn a_version_4_snapshot_image_still_loads_with_bookings_never_amended() {
        let image = image_with_a_booking();
        let old = ImageV4 {
            version: 4,
            log_position: image.log_position,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.iter().map(BookingV3::from).collect(),
            applicants: image.applicants.clone(),
            requests: older_requests(&image),
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
            owners: image.owners.clone(),
            next_ticket_id: image.next_ticket_id,
            draws: image.draws.clone(),
        };
        let bytes = postcard::to_stdvec(&old).expect("encode");
        assert_eq!(decode_image(&bytes).expect("a version 4 image"), image);
        // The layout of version 5 is not the older one: a booking gained fields, so an image of version 5 read as
        // version 4 would be garbage (that is why the version was bumped).
        assert_ne!(
            postcard::to_stdvec(&image.bookings[0]).expect("encode"),
            postcard::to_stdvec(&old.bookings[0]).expect("encode")
        );
    }

    #[test]
    fn a_version_3_snapshot_image_still_loads_with_bookings_never_amended() {
        let image = image_with_a_booking();
        let old = ImageV3 {
            version: 3,
            log_position: image.log_position,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.iter().map(BookingV3::from).collect(),
            applicants: image.applicants.clone(),
            requests: older_requests(&image),
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
            owners: vec![(image.bookings[0].booking_id, "app".to_owned())],
            next_ticket_id: 5,
        };
        let bytes = postcard::to_stdvec(&old).expect("encode");
        let loaded = decode_image(&bytes).expect("a version 3 image");
        assert_eq!(loaded.bookings, image.bookings);
        assert_eq!(loaded.requests, image.requests);
        assert_eq!(loaded.owners, old.owners);
        assert_eq!(loaded.version, crate::domain::state::image::IMAGE_VERSION);
        assert!(loaded.draws.is_empty(), "version 3 lines committed to no draw secret");
    }
}
