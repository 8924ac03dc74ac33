//! Merging the answers of every partition into one: `ListOffices` (each office once, from the partition that serves
//! it, by id), `FindBookings` (every partition's bookings of the applicant, by booking id) and `PurgeBookings` (the
//! counts add up). Pure: the answers arrive decoded from the wire, the merged answer leaves encoded.

use super::key::Gathering;
use super::status::gather_undecodable_status;
use crate::cluster::Directory;
use crate::domain::OfficeId;
use crate::proto;
use bytes::Bytes;
use prost::Message;
use tonic::Status;

/// The merged answer of `gathering`, from each partition's encoded answer.
pub fn merge(gathering: Gathering, answers: &[(String, Bytes)], directory: &Directory) -> Result<Vec<u8>, Status> {
    match gathering {
        Gathering::Offices => {
            let mut offices: Vec<proto::Office> = Vec::new();
            for (partition, answer) in answers {
                let decoded = decode::<proto::ListOfficesResponse>(partition, answer)?;
                // A catch-all partition may also hold an office another partition lists (seeded before the list
                // existed): only the partition that serves an office speaks for it.
                let serves = |office: &proto::Office| {
                    let served_by = OfficeId::parse(&office.office_id).and_then(|id| directory.partition_of(&id));
                    served_by.is_none_or(|served_by| served_by == *partition)
                };
                offices.extend(decoded.offices.into_iter().filter(serves));
            }
            offices.sort_by(|left, right| left.office_id.cmp(&right.office_id));
            offices.dedup_by(|later, earlier| later.office_id == earlier.office_id);
            Ok(proto::ListOfficesResponse { offices }.encode_to_vec())
        }
        Gathering::Bookings => {
            let mut bookings = Vec::new();
            for (partition, answer) in answers {
                bookings.extend(decode::<proto::FindBookingsResponse>(partition, answer)?.bookings);
            }
            bookings.sort_by(|left, right| left.booking_id.cmp(&right.booking_id));
            Ok(proto::FindBookingsResponse { bookings }.encode_to_vec())
        }
        Gathering::Purge => {
            let mut bookings_purged = 0u64;
            for (partition, answer) in answers {
                let decoded = decode::<proto::PurgeBookingsResponse>(partition, answer)?;
                bookings_purged = bookings_purged.saturating_add(decoded.bookings_purged);
            }
            Ok(proto::PurgeBookingsResponse { bookings_purged }.encode_to_vec())
        }
    }
}

fn decode<M: Message + Default>(partition: &str, answer: &Bytes) -> Result<M, Status> {
    M::decode(answer.clone()).map_err(|_| gather_undecodable_status(partition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeCard;
    use std::time::Duration;

    fn offices(ids: &[&str]) -> Bytes {
        let offices = ids.iter().map(|id| proto::Office { office_id: (*id).into(), ..Default::default() }).collect();
        proto::ListOfficesResponse { offices }.encode_to_vec().into()
    }

    fn directory() -> Directory {
        let own = NodeCard { node_name: "a1".into(), partition: "west".into(), address: "a1:1".into(), offices: None };
        let directory = Directory::new(own, Duration::from_secs(10));
        directory.put_card(NodeCard {
            node_name: "b1".into(),
            partition: "east".into(),
            address: "b1:1".into(),
            offices: Some(vec!["kanim-medan".into()]),
        });
        directory
    }

    #[test]
    fn offices_are_listed_once_from_the_partition_that_serves_them() {
        let answers = vec![
            ("west".to_owned(), offices(&["kanim-batam", "kanim-medan"])),
            ("east".to_owned(), offices(&["kanim-medan"])),
        ];
        let merged = merge(Gathering::Offices, &answers, &directory()).expect("merged");
        let merged = proto::ListOfficesResponse::decode(&merged[..]).expect("decodes");
        let ids: Vec<&str> = merged.offices.iter().map(|office| office.office_id.as_str()).collect();
        assert_eq!(ids, ["kanim-batam", "kanim-medan"]);
    }

    #[test]
    fn bookings_and_purge_counts_add_up_and_a_garbled_answer_fails_the_whole() {
        let booking = |id: &str| proto::Booking { booking_id: id.into(), ..Default::default() };
        let found = |ids: &[&str]| -> Bytes {
            proto::FindBookingsResponse { bookings: ids.iter().map(|id| booking(id)).collect() }.encode_to_vec().into()
        };
        let answers = vec![("west".to_owned(), found(&["BK2"])), ("east".to_owned(), found(&["BK1", "BK3"]))];
        let merged = merge(Gathering::Bookings, &answers, &directory()).expect("merged");
        assert_eq!(proto::FindBookingsResponse::decode(&merged[..]).expect("decodes").bookings.len(), 3);

        let purged =
            |count| -> Bytes { proto::PurgeBookingsResponse { bookings_purged: count }.encode_to_vec().into() };
        let answers = vec![("west".to_owned(), purged(2)), ("east".to_owned(), purged(5))];
        let merged = merge(Gathering::Purge, &answers, &directory()).expect("merged");
        assert_eq!(proto::PurgeBookingsResponse::decode(&merged[..]).expect("decodes").bookings_purged, 7);

        let garbled = vec![("east".to_owned(), Bytes::from_static(&[0xff, 0xff, 0xff]))];
        let status = merge(Gathering::Offices, &garbled, &directory()).expect_err("garbled");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }
}
