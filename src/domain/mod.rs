//! The allocation core: offices, sessions, pools, holds and bookings, as a deterministic state machine.
//!
//! Architecture invariant: nothing here does I/O, reads a clock or draws randomness. No tokio, tonic, prost, `std::fs`
//! or `metrics` (a test greps for them). Time comes in as `now`; events go out through [`book::EventLog`].
//!
//! Layout:
//! - [`time`], [`ids`], [`nik`]: values and their validation.
//! - [`office`]: the catalogue (offices, plans, release instants, closures).
//! - [`booking`], [`command`]: bookings, commands, events, replies and rejections.
//! - [`shard`], [`access`]: the lock-sharded state and how a command reaches it.
//! - [`decide`], [`admin`], [`apply`]: deciding a command, then applying its event (the only writer).
//! - [`book`]: the quota book that ties them together; [`reads`] its queries.
//! - [`image`], [`invariants`]: the whole state as a value, and the checks on it.

pub mod access;
pub mod admin;
pub mod apply;
pub mod book;
pub mod booking;
pub mod command;
pub mod decide;
pub mod ids;
pub mod image;
pub mod invariants;
pub mod lines;
pub mod nik;
pub mod office;
pub mod reads;
pub mod shard;
pub mod time;
pub mod waiting_room;

#[cfg(test)]
mod book_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod waiting_room_tests;
