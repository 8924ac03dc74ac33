//! The simulator in CI: every seed in `regressions.txt`, then a fixed budget of seeds (one to three minutes in a
//! debug build on the 2-core machine, with its load). A failure names the seed; `cargo run -p sim -- --seed N` replays
//! and shrinks it.

use std::path::Path;

/// Seeds run on every `cargo test --workspace`: 0 to this, split over two threads.
const CI_SEEDS: u64 = 800;

fn check(seeds: impl Iterator<Item = u64>) -> Vec<String> {
    seeds
        .filter_map(|seed| {
            sim::run_seed(seed).err().map(|failure| {
                format!(
                    "seed {seed} failed at step {}: {} (replay: cargo run -p sim -- --seed {seed})",
                    failure.step, failure.message
                )
            })
        })
        .collect()
}

#[test]
fn regression_seeds_still_pass() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions.txt")).unwrap();
    let seeds: Vec<u64> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split_whitespace().next().unwrap().parse().expect("a seed first on each line"))
        .collect();
    assert!(seeds.len() >= 2, "the regression file lists its seeds");
    let failures = check(seeds.into_iter());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_fixed_budget_of_seeds_passes() {
    let half = CI_SEEDS / 2;
    let other = std::thread::spawn(move || check(half..CI_SEEDS));
    let mut failures = check(0..half);
    failures.extend(other.join().unwrap());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_seed_replays_byte_for_byte() {
    let first = sim::run_seed(7).unwrap();
    let second = sim::run_seed(7).unwrap();
    assert_eq!(first.trace, second.trace);
    assert_eq!(first.digest, second.digest);
    assert_ne!(first.digest, sim::run_seed(8).unwrap().digest);
}
