//! The messages of the state machine: what callers ask for (commands), what the quota book records (events), and what
//! it answers (replies and rejections).

pub mod command;
pub mod event;
pub mod rejection;
pub mod reply;
