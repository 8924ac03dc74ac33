//! Cluster mode: routing every call to the node that can answer it, so any node serves the whole API.
//!
//! A call names an office (its partition's owner answers: here, or forwarded over gRPC), a booking or a waiting-room
//! ticket (each partition's owner is asked in turn, this node first), or nothing (lists: every partition answers,
//! the answers are merged). Who owns what comes from the cluster's [`crate::cluster::Directory`]. A forwarded call
//! carries the `antrean-forwarded-by` header and is never forwarded again.
//!
//! # Layout
//!
//! - `key.rs`: what a call is routed by, from its method and message.
//! - `decide.rs`: who answers, from the key, the directory and this node's standing (pure, tested rule by rule).
//! - `forward.rs`: forwarding over cached channels, with the caller's headers and deadline; the forwarded-call metric.
//! - `frames.rs`: the gRPC wire format routing reads and writes.
//! - `gather.rs`: merging every partition's answer into one.
//! - `status.rs`: routing's statuses (NO_OWNER, OWNER_UNREACHABLE, GATHER_INCOMPLETE, ...).
//! - `layer.rs`: [`Route`], the tower layer that ties them together.

pub mod decide;
pub mod forward;
pub mod frames;
pub mod gather;
pub mod key;
pub mod layer;
pub mod status;

pub use layer::Route;
