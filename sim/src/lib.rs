//! A deterministic simulator of the antrean engine, in the manner of FoundationDB's simulator and TigerBeetle's
//! VOPR: one seed makes a history of client requests, time passing, background work and faults (crashes, EIO on
//! fsync, short writes, bit flips in the log and in snapshots, snapshots interrupted mid-write, time jumps); the
//! history runs against the real engine on real files, and a checker holds every answer and every recovery to the
//! promises of ARCHITECTURE.md. The same seed replays the same trace, byte for byte.
//!
//! Layout:
//! - `rng.rs`: the one seeded random source, and the trace digest.
//! - `world.rs`: the offices, applicants and rules every history starts from, and the simulated clock.
//! - `history.rs`: the steps and how a seed makes them.
//! - `run.rs`: runs a history and checks it as it goes.
//! - `damage.rs`: disk damage between a crash and the restart, and what recovery must then do.
//! - `check.rs`: facts acknowledged answers established, and checks over a state.
//! - `shrink.rs`: cutting a failing history down to the steps its failure needs.
//!
//! The disk is real files under `/dev/shm` (memory-backed: fsync is free, and a seeded run needs no device), written
//! through the log's fault-injecting file seam (`storage::FaultyFileOpener`), which knows how much of each file is
//! durable, fails the fsync or write the history says, and cuts files back to their durable length (plus a torn
//! part) when the simulated power fails. Snapshots are real files too; their faults are made between the crash and the
//! restart (a partial temporary file, a flipped bit).

pub mod check;
pub mod damage;
pub mod history;
pub mod rng;
pub mod run;
pub mod shrink;
pub mod world;

pub use history::{Step, fault_mix, generate};
pub use run::{Failure, Finished, Stats, run};
pub use shrink::shrink;

/// Steps in one seeded history.
pub const HISTORY_STEPS: usize = 250;

/// Runs the history of `seed`.
pub fn run_seed(seed: u64) -> Result<Finished, Failure> {
    run(&generate(seed, HISTORY_STEPS))
}
