//! The catalogue: offices, their session plans and pools, release instants (schedules) and closures, and deciding the
//! admin commands that change them.

pub mod admin;
pub mod office;
