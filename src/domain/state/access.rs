//! Access to the shards a command needs: locked guards on the live path, plain `&mut` during replay.
//!
//! Deciding and applying are written once against [`ShardAccess`], so the live path and replay cannot drift apart.

use super::shard::Shard;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;

/// Read and write access to shards by index.
pub trait ShardAccess {
    /// The shard, for reading. Panics if the shard was not locked: a programmer error in a lock set.
    fn shard(&self, index: usize) -> &Shard;
    /// The shard, for writing (copied first if a snapshot still shares it).
    fn shard_mut(&mut self, index: usize) -> &mut Shard;
}

/// The locks one command holds, taken in ascending shard order so two commands can never deadlock.
pub struct Guards<'book> {
    held: Vec<(usize, MutexGuard<'book, Arc<Shard>>)>,
}

impl<'book> Guards<'book> {
    /// Locks `indices` (sorted and deduplicated here) in ascending order.
    pub fn lock(shards: &'book [Mutex<Arc<Shard>>], mut indices: Vec<usize>) -> Guards<'book> {
        indices.sort_unstable();
        indices.dedup();
        let held = indices.into_iter().map(|index| (index, shards[index].lock())).collect();
        Guards { held }
    }

    fn slot(&self, index: usize) -> usize {
        match self.held.binary_search_by_key(&index, |(held, _)| *held) {
            Ok(position) => position,
            Err(_) => panic!("shard {index} used without being locked"),
        }
    }
}

impl ShardAccess for Guards<'_> {
    fn shard(&self, index: usize) -> &Shard {
        &self.held[self.slot(index)].1
    }

    fn shard_mut(&mut self, index: usize) -> &mut Shard {
        let position = self.slot(index);
        Arc::make_mut(&mut self.held[position].1)
    }
}

/// Every shard, owned exclusively: used while replaying the log before serving, so no lock is taken.
pub struct Exclusive<'book> {
    shards: Vec<&'book mut Arc<Shard>>,
}

impl<'book> Exclusive<'book> {
    /// Exclusive access to `shards`.
    pub fn new(shards: &'book mut [Mutex<Arc<Shard>>]) -> Exclusive<'book> {
        Exclusive { shards: shards.iter_mut().map(Mutex::get_mut).collect() }
    }
}

impl ShardAccess for Exclusive<'_> {
    fn shard(&self, index: usize) -> &Shard {
        self.shards[index]
    }

    fn shard_mut(&mut self, index: usize) -> &mut Shard {
        Arc::make_mut(self.shards[index])
    }
}
