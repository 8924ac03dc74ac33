//! The persistent collections a shard is made of, so that a snapshot can take the state without copying it.
//!
//! A capture clones a shard's map roots (reference counts, not records). A write afterwards copies only the tree nodes
//! on the path to the key it changes, and the copied nodes hold `Arc`s to their values, so copying a node bumps
//! reference counts instead of cloning bookings: the request path never pays for the whole shard.
//!
//! Every map is a B-tree (`imbl::OrdMap`), not a hash trie (`imbl::HashMap`): a B-tree's nodes are mostly full
//! whatever the keys, while the trie's leaves at a shard's size (thousands of keys, 32 ways a level) held a few
//! entries in room for sixteen, about 120 bytes of node per entry against about 30 (measured with 100,000 bookings).
//! Ordered keys also make a map's iteration order its key order, and no key a client chooses can be crafted to
//! collide.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A persistent ordered map of small values (ids, counters, `Arc`s): values are copied when their tree node is.
pub type Map<K, V> = imbl::OrdMap<K, V>;

/// A persistent ordered set: the time indexes and a day's booking ids.
pub type OrdSet<A> = imbl::OrdSet<A>;

/// A persistent hash map whose values sit behind an `Arc` each: a tree node copied after a capture bumps reference
/// counts instead of cloning records, and a value is cloned only when it is itself written while a capture shares it.
pub struct SharedMap<K, V> {
    entries: Map<K, Arc<V>>,
}

impl<K, V> SharedMap<K, V>
where
    K: Ord + Clone,
{
    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    #[must_use]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.get(key).map(Arc::as_ref)
    }

    /// Whether `key` has a value.
    #[must_use]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// The value of `key`, for writing: cloned first if a capture still shares it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        self.entries.get_mut(key).map(Arc::make_mut)
    }

    /// The value of `key` for writing, made with `V::default()` if there is none.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Clone + Default,
    {
        Arc::make_mut(self.entries.entry(key).or_default())
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<Arc<V>> {
        self.entries.insert(key, Arc::new(value))
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.remove(key)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, value)| (key, value.as_ref()))
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// Every value, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(Arc::as_ref)
    }

    /// Whether `self` and `other` are the same tree (a capture and the map it was taken from, before any write).
    #[must_use]
    pub fn shares_root_with(&self, other: &SharedMap<K, V>) -> bool {
        self.entries.ptr_eq(&other.entries)
    }

    /// The `Arc` holding the value of `key`, to tell whether two maps still share that record.
    #[must_use]
    pub fn get_shared<Q>(&self, key: &Q) -> Option<&Arc<V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.get(key)
    }
}

impl<K, V> Default for SharedMap<K, V> {
    fn default() -> SharedMap<K, V> {
        SharedMap { entries: Map::default() }
    }
}

impl<K: Clone, V> Clone for SharedMap<K, V> {
    /// O(1): the root is shared until either side writes.
    fn clone(&self) -> SharedMap<K, V> {
        SharedMap { entries: self.entries.clone() }
    }
}

impl<K: Ord, V: PartialEq> PartialEq for SharedMap<K, V> {
    fn eq(&self, other: &SharedMap<K, V>) -> bool {
        self.entries == other.entries
    }
}

impl<K: Ord, V: Eq> Eq for SharedMap<K, V> {}

impl<K: Ord + fmt::Debug, V: fmt::Debug> fmt::Debug for SharedMap<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.entries.fmt(formatter)
    }
}

impl<K: Ord + Clone, V> FromIterator<(K, V)> for SharedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> SharedMap<K, V> {
        let mut map = SharedMap::default();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::SharedMap;
    use std::sync::Arc;

    #[test]
    fn a_clone_shares_every_value_until_one_is_written_and_then_only_that_one_is_copied() {
        let mut live: SharedMap<u32, String> = (0..1000).map(|key| (key, format!("record {key}"))).collect();
        let captured = live.clone();
        assert!(live.shares_root_with(&captured));
        live.get_mut(&7).expect("present").push_str(", changed");
        assert!(!live.shares_root_with(&captured), "the written path is copied");
        assert_eq!(captured.get(&7).map(String::as_str), Some("record 7"), "the clone keeps what it took");
        assert_eq!(live.get(&7).map(String::as_str), Some("record 7, changed"));
        let shared =
            (0..1000).filter(|key| Arc::ptr_eq(live.get_shared(key).unwrap(), captured.get_shared(key).unwrap()));
        assert_eq!(shared.count(), 999, "every other record is shared, not cloned");
    }
}
