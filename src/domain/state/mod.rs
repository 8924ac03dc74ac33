//! The state and the machine that changes it: lock shards (`shard`, `access`) made of persistent collections
//! (`shared_map`), the quota book that decides and applies each command under the locks of the shards it touches
//! (`book`), where booking numbers come from (`numbers`), the one applier (`apply`, `applied`), what a request record
//! remembers of its answer (`remembered`, booking ids) and the answers made of it (`answers`), reads (`reads`, and
//! `check` for checking a hold before it is made), the whole state as a value for snapshots (`image`, encoded straight from a capture by
//! `streamed_image`, with the layouts older builds wrote in `older_images`) and its invariant checks (`invariants`).

pub mod access;
pub mod answers;
pub mod applied;
pub mod apply;
pub mod book;
pub mod check;
pub mod image;
pub mod invariants;
pub mod numbers;
pub mod older_images;
pub mod reads;
pub mod remembered;
pub mod shard;
pub mod shared_map;
pub mod streamed_image;
