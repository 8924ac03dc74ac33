//! The waiting room in front of a release: everyone who arrives before the release instant is put in a random order
//! at the instant (the draw), later arrivals queue first come, first served, and tickets are admitted as slots can
//! absorb them. This folder holds all of it: tickets and the draw (`room`), which dates a waiting room gates and the
//! admission check on a hold (`admission`), deciding join and leave (`decide`) and a line's step (`step`), its log
//! events (`event`) and how they apply (`apply`), the quota book's operations on waiting rooms (`book`: join, leave,
//! read a ticket, move a waiting room on, end it), the verifiable draw's algorithm (`draw`), and what anyone may read
//! of a draw and how a line commits to its secret (`published`).

pub mod admission;
pub mod apply;
pub mod book;
pub mod decide;
pub mod draw;
pub mod event;
pub mod published;
pub mod room;
pub mod step;

#[cfg(test)]
mod tests;
