//! Shrinking a failing history: the shortest prefix that still fails, then every step dropped that the failure does
//! not need, so the trace printed is small enough to read.

use crate::history::Step;
use crate::run::{Failure, run};

/// A smaller history that still fails, and its failure. `budget` bounds the runs tried.
#[must_use]
pub fn shrink(steps: &[Step], failure: Failure, budget: usize) -> (Vec<Step>, Failure) {
    let mut runs = 0;
    let mut best: Vec<Step> = steps[..(failure.step + 1).min(steps.len())].to_vec();
    let mut best_failure = failure;
    // Prefixes: the failure happened at `failure.step`, so later steps are not needed; try shorter prefixes by halving.
    let mut length = best.len() / 2;
    while length > 0 && runs < budget {
        runs += 1;
        match run(&best[..length]) {
            Err(failure) => {
                best = best[..(failure.step + 1).min(length)].to_vec();
                best_failure = failure;
                length = best.len() / 2;
            }
            Ok(_) => break,
        }
    }
    // Drop single steps, from the end backwards, keeping each drop that still fails.
    let mut index = best.len();
    while index > 0 && runs < budget {
        index -= 1;
        let mut candidate = best.clone();
        candidate.remove(index);
        runs += 1;
        if let Err(failure) = run(&candidate) {
            candidate.truncate((failure.step + 1).min(candidate.len()));
            index = index.min(candidate.len());
            best = candidate;
            best_failure = failure;
        }
    }
    (best, best_failure)
}
