//! The simulator's runner: `--seed N` replays one history and prints its trace digest (`--trace` prints the trace),
//! `--seeds A..B` runs a range, `--minutes M` runs seeds from a random start until the time is up. A failure prints
//! its seed, the check that failed and a shrunk trace, and exits 1.

use sim::{HISTORY_STEPS, generate, run, shrink};
use std::process::ExitCode;
use std::time::{Duration, Instant};

enum Mode {
    One { seed: u64, trace: bool },
    Range { first: u64, end: u64 },
    Minutes { minutes: f64, first: u64 },
}

fn usage() -> ExitCode {
    eprintln!("usage: sim --seed N [--trace] | --seeds A..B | --minutes M [--from N]");
    eprintln!("fault mix: {}", sim::fault_mix());
    ExitCode::from(2)
}

fn parse(arguments: &[String]) -> Option<Mode> {
    let value =
        |flag: &str| arguments.iter().position(|argument| argument == flag).and_then(|at| arguments.get(at + 1));
    if let Some(seed) = value("--seed") {
        return Some(Mode::One {
            seed: seed.parse().ok()?,
            trace: arguments.iter().any(|argument| argument == "--trace"),
        });
    }
    if let Some(range) = value("--seeds") {
        let (first, end) = range.split_once("..")?;
        return Some(Mode::Range { first: first.parse().ok()?, end: end.parse().ok()? });
    }
    if let Some(minutes) = value("--minutes") {
        let first = match value("--from") {
            Some(from) => from.parse().ok()?,
            None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() << 20,
        };
        return Some(Mode::Minutes { minutes: minutes.parse().ok()?, first });
    }
    None
}

/// Runs `seed`; on failure prints it with a shrunk trace and returns false.
fn check_seed(seed: u64) -> bool {
    let steps = generate(seed, HISTORY_STEPS);
    match run(&steps) {
        Ok(_) => true,
        Err(failure) => {
            println!("FAILED seed {seed} at step {}: {}", failure.step, failure.message);
            let (shrunk, failure) = shrink(&steps, failure, 300);
            println!("minimal trace ({} of {} steps; replay with --seed {seed}):", shrunk.len(), steps.len());
            for line in &failure.trace {
                println!("  {line}");
            }
            println!("failing check: {}", failure.message);
            false
        }
    }
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = parse(&arguments) else { return usage() };
    match mode {
        Mode::One { seed, trace } => match run(&generate(seed, HISTORY_STEPS)) {
            Ok(finished) => {
                if trace {
                    finished.trace.iter().for_each(|line| println!("{line}"));
                }
                println!("seed {seed}: ok, trace digest {:016x}, {:?}", finished.digest, finished.stats);
                ExitCode::SUCCESS
            }
            Err(_) if !check_seed(seed) => ExitCode::FAILURE,
            Err(_) => ExitCode::SUCCESS,
        },
        Mode::Range { first, end } => {
            let started = Instant::now();
            let failed = (first..end).filter(|seed| !check_seed(*seed)).count();
            println!("{} seeds, {failed} failed, in {:.1} s", end - first, started.elapsed().as_secs_f64());
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Mode::Minutes { minutes, first } => {
            let started = Instant::now();
            let budget = Duration::from_secs_f64(minutes * 60.0);
            let (mut seed, mut failed) = (first, 0);
            while started.elapsed() < budget {
                failed += usize::from(!check_seed(seed));
                seed += 1;
            }
            let seconds = started.elapsed().as_secs_f64();
            let ran = seed - first;
            println!(
                "seeds {first}..{seed}: {ran} histories of {HISTORY_STEPS} steps, {failed} failed, {:.0} seeds per minute",
                ran as f64 * 60.0 / seconds
            );
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
