//! The cluster's directory, as one node knows it: which partition serves which office, and which node owns each
//! partition now. Pure bookkeeping, no I/O: `directory_watch.rs` feeds it from two KV buckets, the node cards in
//! [`NODES_BUCKET`] (one per node: its partition, the address it is reached at, the offices its partition serves) and
//! the leases in `antrean_leases` (one per partition: the owner's node name).
//!
//! An office belongs to the partition whose office list names it; failing that, to the partition configured with
//! `"all"`; when several qualify, to the first by name, so every node that knows the same cards decides alike. A lease
//! counts as held while its last write is younger than the lease TTL: a holder killed without giving it back drops
//! out of the directory by itself when its lease could have expired (the bucket's `max_age` removes the key without
//! telling watchers).

use super::settings::OwnedOffices;
use crate::domain::OfficeId;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The KV bucket of node cards, one key per node name.
pub const NODES_BUCKET: &str = "antrean_nodes";
/// Largest encoded node card: room for about a thousand office ids.
pub const NODE_CARD_BYTES_MAX: usize = 64 * 1024;
/// Most node cards and leases a directory keeps; cards beyond it are ignored (and logged by the watcher).
pub const DIRECTORY_ENTRIES_MAX: usize = 1024;

/// What a node tells the cluster about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCard {
    /// The node's name (`cluster.node_name`).
    pub node_name: String,
    /// The partition it serves or stands by for (`cluster.partition`).
    pub partition: String,
    /// The gRPC address other nodes forward calls to (`cluster.advertise_address`).
    pub address: String,
    /// The offices its partition serves: `None` for all (those no other partition lists).
    pub offices: Option<Vec<String>>,
}

impl NodeCard {
    /// The card of a node configured with `offices`.
    #[must_use]
    pub fn new(node_name: &str, partition: &str, address: &str, offices: &OwnedOffices) -> NodeCard {
        let offices = match offices {
            OwnedOffices::All => None,
            OwnedOffices::Only(ids) => Some(ids.iter().map(ToString::to_string).collect()),
        };
        NodeCard {
            node_name: node_name.to_owned(),
            partition: partition.to_owned(),
            address: address.to_owned(),
            offices,
        }
    }

    /// The card as stored in [`NODES_BUCKET`] (JSON).
    ///
    /// # Panics
    /// Never: a card always encodes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a node card encodes")
    }

    /// A stored card, or `None` when the bytes are not one (or too large).
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<NodeCard> {
        if bytes.len() > NODE_CARD_BYTES_MAX {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    fn lists(&self, office: &str) -> bool {
        self.offices.as_ref().is_some_and(|offices| offices.iter().any(|listed| listed == office))
    }
}

/// A lease as the directory last saw it.
#[derive(Clone, Debug)]
struct SeenLease {
    holder: String,
    written_at: Instant,
}

#[derive(Default)]
struct Entries {
    cards: HashMap<String, NodeCard>,
    leases: HashMap<String, SeenLease>,
}

/// Offices to partitions to owners, as this node last heard (shared by the routing layer and the watcher).
pub struct Directory {
    own: NodeCard,
    lease_ttl: Duration,
    entries: RwLock<Entries>,
    /// Set once the buckets were read whole for the first time: before that, an office no card names may be one
    /// whose card has not arrived yet.
    loaded: AtomicBool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Directory").field("own", &self.own).finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory that knows only this node's own card.
    #[must_use]
    pub fn new(own: NodeCard, lease_ttl: Duration) -> Directory {
        let mut entries = Entries::default();
        entries.cards.insert(own.node_name.clone(), own.clone());
        Directory { own, lease_ttl, entries: RwLock::new(entries), loaded: AtomicBool::new(false) }
    }

    /// Whether the directory has read every card and lease once (it may still lag behind changes since).
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Marks the directory as having read every card and lease once.
    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// This node's card.
    #[must_use]
    pub fn own(&self) -> &NodeCard {
        &self.own
    }

    /// Records a node's card (this node's own card never changes); false when the directory is full.
    pub fn put_card(&self, card: NodeCard) -> bool {
        if card.node_name == self.own.node_name {
            return true;
        }
        let mut entries = self.entries.write();
        if !entries.cards.contains_key(&card.node_name) && entries.cards.len() >= DIRECTORY_ENTRIES_MAX {
            return false;
        }
        entries.cards.insert(card.node_name.clone(), card);
        true
    }

    /// Forgets a node's card (deleted from the bucket).
    pub fn remove_card(&self, node_name: &str) {
        if node_name != self.own.node_name {
            self.entries.write().cards.remove(node_name);
        }
    }

    /// Records that `holder` wrote `partition`'s lease at `written_at`; false when the directory is full.
    pub fn put_lease(&self, partition: &str, holder: &str, written_at: Instant) -> bool {
        let mut entries = self.entries.write();
        if !entries.leases.contains_key(partition) && entries.leases.len() >= DIRECTORY_ENTRIES_MAX {
            return false;
        }
        entries.leases.insert(partition.to_owned(), SeenLease { holder: holder.to_owned(), written_at });
        true
    }

    /// Forgets `partition`'s lease (given back, or taken away).
    pub fn remove_lease(&self, partition: &str) {
        self.entries.write().leases.remove(partition);
    }

    /// The partition that serves `office`, if any partition's offices include it.
    #[must_use]
    pub fn partition_of(&self, office: &OfficeId) -> Option<String> {
        let now = Instant::now();
        let entries = self.entries.read();
        let cards = self.partition_cards(&entries, now);
        let office = office.as_str();
        let listed = cards.iter().find(|(_, card)| card.lists(office));
        let all = || cards.iter().find(|(_, card)| card.offices.is_none());
        listed.or_else(all).map(|(partition, _)| (*partition).clone())
    }

    /// The card of the node that owns `partition` now, if its lease is known and younger than the TTL.
    #[must_use]
    pub fn owner(&self, partition: &str) -> Option<NodeCard> {
        let now = Instant::now();
        let entries = self.entries.read();
        self.live_holder(&entries, partition, now).and_then(|holder| entries.cards.get(holder)).cloned()
    }

    /// Every partition some node card names, by name.
    #[must_use]
    pub fn partitions(&self) -> Vec<String> {
        let entries = self.entries.read();
        let mut partitions: Vec<String> = entries.cards.values().map(|card| card.partition.clone()).collect();
        partitions.sort_unstable();
        partitions.dedup();
        partitions
    }

    /// How many node cards, partitions, and partitions with a live owner the directory holds (for the gauges).
    #[must_use]
    pub fn size(&self) -> (usize, usize, usize) {
        let now = Instant::now();
        let partitions = self.partitions();
        let entries = self.entries.read();
        let owned = partitions.iter().filter(|partition| self.live_holder(&entries, partition, now).is_some()).count();
        (entries.cards.len(), partitions.len(), owned)
    }

    fn live_holder<'a>(&self, entries: &'a Entries, partition: &str, now: Instant) -> Option<&'a str> {
        let lease = entries.leases.get(partition)?;
        let fresh = now.saturating_duration_since(lease.written_at) < self.lease_ttl;
        fresh.then_some(lease.holder.as_str())
    }

    /// One card per partition, by partition name: this node's for its own partition (its configuration is what it
    /// enforces), else the owner's, else the first by node name.
    fn partition_cards<'a>(&'a self, entries: &'a Entries, now: Instant) -> BTreeMap<&'a String, &'a NodeCard> {
        let mut chosen: BTreeMap<&String, &NodeCard> = BTreeMap::new();
        for card in entries.cards.values() {
            let better = match chosen.get(&card.partition) {
                None => true,
                Some(current) => {
                    let owner = self.live_holder(entries, &card.partition, now);
                    let rank = |candidate: &NodeCard| {
                        (candidate.node_name != self.own.node_name, Some(candidate.node_name.as_str()) != owner)
                    };
                    (rank(card), &card.node_name) < (rank(current), &current.node_name)
                }
            };
            if better {
                chosen.insert(&card.partition, card);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn card(node: &str, partition: &str, offices: Option<&[&str]>) -> NodeCard {
        let offices = offices.map(|ids| ids.iter().map(|id| (*id).to_owned()).collect());
        NodeCard { node_name: node.into(), partition: partition.into(), address: format!("{node}:50051"), offices }
    }

    fn office(id: &str) -> OfficeId {
        OfficeId::parse(id).expect("valid office id")
    }

    #[test]
    fn an_office_belongs_to_the_partition_that_lists_it_else_to_the_catch_all() {
        let directory = Directory::new(card("a1", "west", Some(&["kanim-batam"])), TTL);
        assert!(!directory.is_loaded(), "nothing read yet");
        directory.mark_loaded();
        assert!(directory.is_loaded());
        assert_eq!(directory.partition_of(&office("kanim-batam")).as_deref(), Some("west"));
        assert_eq!(directory.partition_of(&office("kanim-medan")), None, "no partition serves it");

        directory.put_card(card("b1", "east", None));
        assert_eq!(directory.partition_of(&office("kanim-medan")).as_deref(), Some("east"), "the catch-all");
        assert_eq!(directory.partition_of(&office("kanim-batam")).as_deref(), Some("west"), "a list wins over all");
        assert_eq!(directory.partitions(), vec!["east".to_owned(), "west".to_owned()]);

        directory.remove_card("b1");
        assert_eq!(directory.partition_of(&office("kanim-medan")), None);
    }

    #[test]
    fn an_owner_is_known_only_while_its_lease_is_younger_than_the_ttl() {
        let directory = Directory::new(card("a1", "west", None), TTL);
        directory.put_card(card("b1", "east", Some(&["kanim-medan"])));
        assert_eq!(directory.owner("east"), None, "no lease seen yet");

        directory.put_lease("east", "b1", Instant::now());
        assert_eq!(directory.owner("east").map(|owner| owner.address), Some("b1:50051".to_owned()));
        assert_eq!(directory.size(), (2, 2, 1));

        let long_ago = Instant::now().checked_sub(TTL + Duration::from_secs(1)).expect("an instant in the past");
        directory.put_lease("east", "b1", long_ago);
        assert_eq!(directory.owner("east"), None, "an expired lease names nobody");

        directory.put_lease("east", "b2", Instant::now());
        assert_eq!(directory.owner("east"), None, "a holder without a card cannot be reached");
        directory.remove_lease("east");
        assert_eq!(directory.owner("east"), None);
    }

    #[test]
    fn the_owners_card_says_which_offices_a_partition_serves_and_a_nodes_own_card_never_changes() {
        let own = card("a1", "west", Some(&["kanim-batam"]));
        let directory = Directory::new(own.clone(), TTL);
        directory.put_card(card("a1", "west", Some(&["kanim-medan"])));
        assert_eq!(directory.own(), &own);
        assert_eq!(directory.partition_of(&office("kanim-batam")).as_deref(), Some("west"));

        directory.put_card(card("b1", "east", Some(&["kanim-medan"])));
        directory.put_card(card("b2", "east", Some(&["kanim-medan", "kanim-ambon"])));
        directory.put_lease("east", "b2", Instant::now());
        assert_eq!(directory.partition_of(&office("kanim-ambon")).as_deref(), Some("east"), "b2 owns east");
        directory.put_lease("east", "b1", Instant::now());
        assert_eq!(directory.partition_of(&office("kanim-ambon")), None, "b1 owns east now");
    }

    #[test]
    fn cards_round_trip_and_foreign_bytes_are_not_cards() {
        let listed = NodeCard::new("a1", "west", "10.0.0.1:50051", &OwnedOffices::Only(vec![office("kanim-batam")]));
        assert_eq!(NodeCard::decode(&listed.encode()), Some(listed));
        let all = NodeCard::new("a1", "west", "10.0.0.1:50051", &OwnedOffices::All);
        assert_eq!(NodeCard::decode(&all.encode()).and_then(|card| card.offices), None);
        assert_eq!(NodeCard::decode(b"node-1"), None, "a lease value is not a card");
        assert_eq!(NodeCard::decode(&vec![b' '; NODE_CARD_BYTES_MAX + 1]), None);
    }

    #[test]
    fn a_full_directory_refuses_new_entries_but_updates_known_ones() {
        let directory = Directory::new(card("a1", "west", None), TTL);
        for index in 1..DIRECTORY_ENTRIES_MAX {
            assert!(directory.put_card(card(&format!("n{index}"), "west", None)));
        }
        assert!(!directory.put_card(card("late", "west", None)));
        assert!(directory.put_card(card("n1", "east", None)), "a known node may change its card");
    }
}
