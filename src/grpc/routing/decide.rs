//! Who answers a call, decided from its [`RouteKey`], the directory and whether this node serves its partition now.
//! Pure (the directory is read, nothing is sent), so every rule is tested here.
//!
//! The rules: a deposed node answers everything itself (with its refusal: it forwards nothing until restarted); a
//! forwarded call is never forwarded again (a node that does not serve the call's partition answers UNAVAILABLE with a
//! retry hint); an office's calls go to its partition's owner (here when that is this node); calls naming a booking
//! or ticket ask every partition's owner in turn, this node first (for a booking, the partition its number is
//! marked with before it: `cluster::partition_mark`); lists gather every partition's answer. With
//! `cluster.forward_calls` off, nothing is forwarded: a call for another partition's office is refused with where to
//! go instead, and everything else is answered here, as before routing existed.

use super::key::{Gathering, RouteKey};
use super::status::{
    directory_not_loaded_status, forwarded_elsewhere_status, no_owner_status, office_elsewhere_status,
    office_not_in_cluster_status, office_required_status,
};
use crate::cluster::{Directory, NodeCard, partition_mark};
use crate::domain::{BookingId, OfficeId};
use tonic::Status;

/// What this node knows about itself when it routes a call.
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    /// This node owns its partition and may answer for it now.
    pub serving: bool,
    /// This node was deposed: it answers nothing until restarted.
    pub deposed: bool,
    /// `cluster.forward_calls`.
    pub forward_calls: bool,
    /// The call was forwarded here by another node.
    pub forwarded: bool,
}

/// A node that answers part of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Here,
    /// Another node, by its card.
    Owner(NodeCard),
}

/// Who answers a call.
#[derive(Debug)]
pub enum Decision {
    /// This node, by its own services.
    Here,
    /// The owner of `partition`, by forwarding.
    Forward {
        /// The partition.
        partition: String,
        /// Its owner.
        owner: NodeCard,
    },
    /// Each target in turn until one knows the booking or ticket; `unowned` partitions could not be asked.
    AskInTurn {
        /// Partitions and who answers for them, this node first.
        targets: Vec<(String, Target)>,
        /// Partitions with no owner now.
        unowned: Vec<String>,
    },
    /// Every target, answers merged.
    Gather {
        /// What is gathered.
        gathering: Gathering,
        /// Partitions and who answers for them.
        targets: Vec<(String, Target)>,
    },
    /// Nobody: this status.
    Refuse(Box<Status>),
}

fn refuse(status: Status) -> Decision {
    Decision::Refuse(Box::new(status))
}

/// Who answers a call routed by `key`.
#[must_use]
pub fn decide(key: &RouteKey, standing: Standing, directory: &Directory) -> Decision {
    if standing.deposed || *key == RouteKey::Local {
        return Decision::Here;
    }
    let own = directory.own();
    if standing.forwarded {
        return forwarded_here(key, standing, directory);
    }
    match key {
        RouteKey::Office(office) | RouteKey::NewOffice(office) => {
            let new = matches!(key, RouteKey::NewOffice(_));
            let Some(partition) = OfficeId::parse(office).and_then(|office| directory.partition_of(&office)) else {
                // An office no partition serves: a new one is refused; for anything else, it exists nowhere, and the
                // handler here says so (or says what else is wrong with the call). Unless the directory is not
                // loaded yet: then the office's partition may be one this node has not heard of.
                return match (directory.is_loaded(), new) {
                    (false, _) => refuse(directory_not_loaded_status()),
                    (true, true) => refuse(office_not_in_cluster_status(office)),
                    (true, false) => Decision::Here,
                };
            };
            if partition == own.partition && (standing.serving || !standing.forward_calls) {
                return Decision::Here;
            }
            if !standing.forward_calls {
                let owner = directory.owner(&partition);
                return refuse(office_elsewhere_status(
                    office,
                    &partition,
                    owner.as_ref().map(|card| card.address.as_str()),
                ));
            }
            to_owner(partition, own, directory)
        }
        _ if !standing.forward_calls => Decision::Here,
        _ if !directory.is_loaded() => refuse(directory_not_loaded_status()),
        RouteKey::Held(id) => {
            let (mut targets, unowned) = targets(standing, directory);
            if let Some(prefix) = BookingId::parse(id).map(BookingId::prefix) {
                // The partition whose mark the number carries drew it (unless the number is older than marks, or
                // two partitions share the mark): ask it first. Stable, so this node stays first among equals.
                targets.sort_by_key(|(partition, _)| partition_mark(partition) != prefix);
            }
            Decision::AskInTurn { targets, unowned }
        }
        RouteKey::Gathered(gathering) => match targets(standing, directory) {
            (targets, unowned) if unowned.is_empty() => Decision::Gather { gathering: *gathering, targets },
            (_, unowned) => refuse(no_owner_status(&unowned[0])),
        },
        RouteKey::Unscoped => match directory.partitions().as_slice() {
            [only] if *only == own.partition && standing.serving => Decision::Here,
            [only] => to_owner(only.clone(), own, directory),
            _ => refuse(office_required_status()),
        },
        RouteKey::Local => Decision::Here,
    }
}

/// A forwarded call: answered here if this node serves the partition it is for, else refused (never sent on).
fn forwarded_here(key: &RouteKey, standing: Standing, directory: &Directory) -> Decision {
    let own = &directory.own().partition;
    let partition = match key {
        RouteKey::Office(office) | RouteKey::NewOffice(office) => {
            match OfficeId::parse(office).and_then(|office| directory.partition_of(&office)) {
                Some(partition) => partition,
                None if matches!(key, RouteKey::NewOffice(_)) => return refuse(office_not_in_cluster_status(office)),
                None => own.clone(),
            }
        }
        _ => own.clone(),
    };
    if partition == *own && standing.serving { Decision::Here } else { refuse(forwarded_elsewhere_status(&partition)) }
}

/// The owner of `partition` (forwarded to), this node (which owns it, but is not serving yet: the handler answers
/// UNAVAILABLE), or nobody.
fn to_owner(partition: String, own: &NodeCard, directory: &Directory) -> Decision {
    match directory.owner(&partition) {
        Some(owner) if owner.node_name != own.node_name => Decision::Forward { partition, owner },
        Some(_) => Decision::Here,
        None => refuse(no_owner_status(&partition)),
    }
}

/// Who answers for each known partition, this node's first; and the partitions nobody owns now.
fn targets(standing: Standing, directory: &Directory) -> (Vec<(String, Target)>, Vec<String>) {
    let own = directory.own();
    let mut targets = Vec::new();
    let mut unowned = Vec::new();
    for partition in directory.partitions() {
        if partition == own.partition && standing.serving {
            targets.insert(0, (partition, Target::Here));
            continue;
        }
        match directory.owner(&partition) {
            Some(owner) if owner.node_name != own.node_name => targets.push((partition, Target::Owner(owner))),
            _ => unowned.push(partition),
        }
    }
    (targets, unowned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::routing::status::reason_of;
    use std::time::{Duration, Instant};

    const SERVING: Standing = Standing { serving: true, deposed: false, forward_calls: true, forwarded: false };

    fn card(node: &str, partition: &str, offices: &[&str]) -> NodeCard {
        let offices = Some(offices.iter().map(|id| (*id).to_owned()).collect());
        NodeCard { node_name: node.into(), partition: partition.into(), address: format!("{node}:1"), offices }
    }

    /// Node a1 owns "west" (kanim-batam); b1 owns "east" (kanim-medan); a2 stands by for "west".
    fn cluster(own: NodeCard) -> Directory {
        let directory = Directory::new(own, Duration::from_secs(10));
        directory.put_card(card("a1", "west", &["kanim-batam"]));
        directory.put_card(card("a2", "west", &["kanim-batam"]));
        directory.put_card(card("b1", "east", &["kanim-medan"]));
        directory.put_lease("west", "a1", Instant::now());
        directory.put_lease("east", "b1", Instant::now());
        directory.mark_loaded();
        directory
    }

    fn office(id: &str) -> RouteKey {
        RouteKey::Office(id.into())
    }

    fn forwarded_to(decision: &Decision) -> Option<(&str, &str)> {
        match decision {
            Decision::Forward { partition, owner } => Some((partition.as_str(), owner.node_name.as_str())),
            _ => None,
        }
    }

    fn refused(decision: Decision) -> (tonic::Code, String) {
        match decision {
            Decision::Refuse(status) => (status.code(), reason_of(&status).unwrap_or_default()),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_offices_calls_are_answered_by_its_partitions_owner() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        assert!(matches!(decide(&office("kanim-batam"), SERVING, &west), Decision::Here));
        assert_eq!(forwarded_to(&decide(&office("kanim-medan"), SERVING, &west)), Some(("east", "b1")));

        let standby = cluster(card("a2", "west", &["kanim-batam"]));
        let waiting = Standing { serving: false, ..SERVING };
        assert_eq!(forwarded_to(&decide(&office("kanim-batam"), waiting, &standby)), Some(("west", "a1")), "a standby");

        standby.remove_lease("west");
        let (code, reason) = refused(decide(&office("kanim-batam"), waiting, &standby));
        assert_eq!((code, reason.as_str()), (tonic::Code::Unavailable, "NO_OWNER"));
    }

    #[test]
    fn a_new_office_must_be_in_some_partition_and_an_unknown_office_is_answered_here() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        let (code, reason) = refused(decide(&RouteKey::NewOffice("kanim-baru".into()), SERVING, &west));
        assert_eq!((code, reason.as_str()), (tonic::Code::FailedPrecondition, "OFFICE_NOT_IN_CLUSTER"));
        assert_eq!(
            forwarded_to(&decide(&RouteKey::NewOffice("kanim-medan".into()), SERVING, &west)),
            Some(("east", "b1"))
        );
        assert!(matches!(decide(&office("kanim-baru"), SERVING, &west), Decision::Here));
    }

    #[test]
    fn until_the_directory_is_loaded_only_this_nodes_own_offices_are_answered() {
        let fresh = Directory::new(card("a1", "west", &["kanim-batam"]), Duration::from_secs(10));
        assert!(matches!(decide(&office("kanim-batam"), SERVING, &fresh), Decision::Here));
        for key in [office("kanim-medan"), RouteKey::NewOffice("kanim-medan".into()), RouteKey::Held("BK1".into())] {
            let (code, reason) = refused(decide(&key, SERVING, &fresh));
            assert_eq!((code, reason.as_str()), (tonic::Code::Unavailable, "DIRECTORY_NOT_LOADED"), "{key:?}");
        }
    }

    #[test]
    fn a_forwarded_call_is_never_forwarded_again() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        let forwarded = Standing { forwarded: true, ..SERVING };
        assert!(matches!(decide(&office("kanim-batam"), forwarded, &west), Decision::Here));
        let (code, reason) = refused(decide(&office("kanim-medan"), forwarded, &west));
        assert_eq!((code, reason.as_str()), (tonic::Code::Unavailable, "PARTITION_NOT_SERVED"));
        let not_serving = Standing { serving: false, ..forwarded };
        let (code, _) = refused(decide(&RouteKey::Held("BK7MFRSRBJBZ".into()), not_serving, &west));
        assert_eq!(code, tonic::Code::Unavailable);
        assert!(matches!(decide(&RouteKey::Gathered(Gathering::Offices), forwarded, &west), Decision::Here));
    }

    #[test]
    fn bookings_are_looked_for_here_first_then_at_each_owner_and_lists_gather_every_partition() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        let Decision::AskInTurn { targets, unowned } = decide(&RouteKey::Held("BK7MFRSRBJBZ".into()), SERVING, &west)
        else {
            panic!("asks in turn");
        };
        let order: Vec<&str> = targets.iter().map(|(partition, _)| partition.as_str()).collect();
        assert_eq!(order, ["west", "east"]);
        assert_eq!(targets[0].1, Target::Here);
        assert!(unowned.is_empty());

        let Decision::Gather { targets, .. } = decide(&RouteKey::Gathered(Gathering::Offices), SERVING, &west) else {
            panic!("gathers");
        };
        assert_eq!(targets.len(), 2);
        west.remove_lease("east");
        let (code, reason) = refused(decide(&RouteKey::Gathered(Gathering::Offices), SERVING, &west));
        assert_eq!((code, reason.as_str()), (tonic::Code::Unavailable, "NO_OWNER"), "never a partial list");
        let (code, _) = refused(decide(&RouteKey::Unscoped, SERVING, &west));
        assert_eq!(code, tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_booking_is_looked_for_first_in_the_partition_its_number_is_marked_with() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        let order = |id: BookingId| {
            let Decision::AskInTurn { targets, .. } = decide(&RouteKey::Held(id.to_string()), SERVING, &west) else {
                panic!("asks in turn");
            };
            targets.into_iter().map(|(partition, _)| partition).collect::<Vec<_>>()
        };
        let marked =
            |partition: &str| BookingId((u64::from(partition_mark(partition)) << BookingId::PREFIX_SHIFT) | 4242);
        assert_ne!(partition_mark("east"), partition_mark("west"), "the test needs two marks");
        assert_eq!(order(marked("east")), ["east", "west"], "east drew it: asked before this node");
        assert_eq!(order(marked("west")), ["west", "east"]);
        let unmarked = (0..=u8::MAX).find(|mark| ![partition_mark("east"), partition_mark("west")].contains(mark));
        let unmarked = BookingId((u64::from(unmarked.expect("a free mark")) << BookingId::PREFIX_SHIFT) | 7);
        assert_eq!(order(unmarked), ["west", "east"], "no partition's mark: this node first, as before");
    }

    #[test]
    fn without_forwarding_or_once_deposed_nothing_leaves_this_node() {
        let west = cluster(card("a1", "west", &["kanim-batam"]));
        let local = Standing { forward_calls: false, ..SERVING };
        let (code, reason) = refused(decide(&office("kanim-medan"), local, &west));
        assert_eq!((code, reason.as_str()), (tonic::Code::FailedPrecondition, "OFFICE_NOT_IN_PARTITION"));
        assert!(matches!(decide(&RouteKey::Held("BK7MFRSRBJBZ".into()), local, &west), Decision::Here));
        let standby = Standing { serving: false, ..local };
        assert!(matches!(decide(&office("kanim-batam"), standby, &west), Decision::Here), "the handler refuses");
        let deposed = Standing { deposed: true, serving: false, ..SERVING };
        assert!(matches!(decide(&office("kanim-medan"), deposed, &west), Decision::Here));
    }
}
