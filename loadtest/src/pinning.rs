//! CPU pinning: `--server-cpus` and `--client-cpus`, so that on a small machine the server and the load generator do
//! not take turns on the same cores and a ratio such as hold ÷ ping measures the server's cost per call.
//!
//! The load generator pins its main thread before the tokio runtime is built: every thread started afterwards (the
//! runtime's workers and blocking threads) inherits the mask. A spawned server is started from a short-lived thread
//! pinned to the server's CPUs, so the child inherits that mask from the moment it exists. Both go through
//! `sched_setaffinity` (rustix, no unsafe code), and what the kernel then allows is read back from `/proc` for the
//! report, so a report never claims a pinning that did not happen.
//!
//! This module owns CPU lists and affinity only; it must not start processes or talk to a server.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context as _, bail};
use rustix::thread::{CpuSet, sched_setaffinity};
use serde::Serialize;

/// A set of CPU numbers as `taskset -c` writes it: `1`, `0-1`, `0,2-3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList {
    cpus: Vec<usize>,
}

impl CpuList {
    fn cpu_set(&self) -> CpuSet {
        let mut set = CpuSet::new();
        for cpu in &self.cpus {
            set.set(*cpu);
        }
        set
    }
}

impl FromStr for CpuList {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<CpuList> {
        let mut cpus = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (first, last) = match part.split_once('-') {
                Some((first, last)) => (first.trim(), last.trim()),
                None => (part, part),
            };
            let parse = |number: &str| -> anyhow::Result<usize> {
                number.parse().with_context(|| format!("invalid CPU number {number:?} in {text:?}"))
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if first > last {
                bail!("CPU range {part:?} runs backwards");
            }
            if last >= CpuSet::MAX_CPU {
                bail!("CPU {last} is beyond the largest CPU number {}", CpuSet::MAX_CPU - 1);
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList { cpus })
    }
}

impl fmt::Display for CpuList {
    /// The shortest `taskset -c` form: runs of consecutive CPUs as ranges.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut index = 0;
        while index < self.cpus.len() {
            let first = self.cpus[index];
            let mut last = first;
            while index + 1 < self.cpus.len() && self.cpus[index + 1] == last + 1 {
                index += 1;
                last = self.cpus[index];
            }
            parts.push(if first == last { first.to_string() } else { format!("{first}-{last}") });
            index += 1;
        }
        formatter.write_str(&parts.join(","))
    }
}

/// Restricts the calling thread to `cpus`; threads and processes it starts afterwards inherit the restriction.
pub fn pin_current_thread(cpus: &CpuList) -> anyhow::Result<()> {
    sched_setaffinity(None, &cpus.cpu_set())
        .with_context(|| format!("cannot pin to CPUs {cpus} (are they online and allowed here?)"))
}

/// The CPUs process `pid` may run on, as the kernel reports them (`Cpus_allowed_list` in /proc/PID/status).
pub fn allowed_cpus(pid: u32) -> anyhow::Result<String> {
    proc_status_field(pid, "Cpus_allowed_list:")
}

/// The number of threads of process `pid` (`Threads` in /proc/PID/status).
pub fn thread_count(pid: u32) -> anyhow::Result<u64> {
    let text = proc_status_field(pid, "Threads:")?;
    text.parse().with_context(|| format!("bad Threads line {text:?}"))
}

fn proc_status_field(pid: u32, name: &str) -> anyhow::Result<String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let line = status.lines().find(|line| line.starts_with(name)).with_context(|| format!("no {name} in {path}"))?;
    Ok(line[name.len()..].trim().to_string())
}

/// How the run was pinned, as every report states it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pinning {
    /// `--server-cpus`, when given.
    pub server_cpus: Option<String>,
    /// `--client-cpus`, when given.
    pub client_cpus: Option<String>,
    /// The CPUs the spawned server may run on, read back from /proc once it started (none when not spawned).
    pub server_cpus_allowed: Option<String>,
    /// The CPUs the load generator may run on, read back from /proc.
    pub client_cpus_allowed: Option<String>,
    /// The tokio worker threads of the load generator.
    pub client_worker_threads: usize,
    /// Threads of the spawned server once it answered (none when not spawned).
    pub server_threads: Option<u64>,
}

impl Pinning {
    /// Whether neither side was pinned.
    pub fn is_unpinned(&self) -> bool {
        self.server_cpus.is_none() && self.client_cpus.is_none()
    }

    /// One line for the text report, e.g. `server cpus 1, client cpus 0, 1 tokio worker thread`.
    pub fn describe(&self) -> String {
        let side = |asked: &Option<String>, allowed: &Option<String>| match (asked, allowed) {
            (Some(asked), Some(allowed)) if asked != allowed => format!("{asked} (kernel allows {allowed})"),
            (Some(asked), _) => asked.clone(),
            (None, Some(allowed)) => format!("unpinned ({allowed})"),
            (None, None) => "unpinned".to_string(),
        };
        let mut text = if self.is_unpinned() {
            "unpinned".to_string()
        } else {
            format!(
                "server cpus {}, client cpus {}",
                side(&self.server_cpus, &self.server_cpus_allowed),
                side(&self.client_cpus, &self.client_cpus_allowed)
            )
        };
        let plural = if self.client_worker_threads == 1 { "" } else { "s" };
        text.push_str(&format!("; client: {} tokio worker thread{plural}", self.client_worker_threads));
        if let Some(threads) = self.server_threads {
            text.push_str(&format!("; server: {threads} threads"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_taskset() {
        let list = |text: &str| text.parse::<CpuList>().unwrap();
        assert_eq!(list("1").cpus, [1]);
        assert_eq!(list("0-1").cpus, [0, 1]);
        assert_eq!(list("3, 0-1,1").cpus, [0, 1, 3]);
        assert_eq!(list("0-2,5,7-8").to_string(), "0-2,5,7-8");
        assert_eq!(list("1").to_string(), "1");
        for bad in ["", "a", "2-1", "1-", "-1", "99999"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn this_process_can_be_read_back() {
        let allowed = allowed_cpus(std::process::id()).unwrap();
        assert!(!allowed.is_empty());
        assert!(thread_count(std::process::id()).unwrap() >= 1);
    }

    #[test]
    fn a_thread_pins_itself() {
        // A thread of its own, so the test runner's other threads keep their CPUs.
        let first = allowed_cpus(std::process::id()).unwrap();
        let first_cpu: usize = first.split([',', '-']).next().unwrap().parse().unwrap();
        let cpus: CpuList = first_cpu.to_string().parse().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&cpus).unwrap();
            let mask = rustix::thread::sched_getaffinity(None).unwrap();
            assert_eq!(mask.count(), 1);
            assert!(mask.is_set(first_cpu));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_report_line_names_both_sides() {
        let pinning = Pinning {
            server_cpus: Some("1".into()),
            client_cpus: Some("0".into()),
            server_cpus_allowed: Some("1".into()),
            client_cpus_allowed: Some("0".into()),
            client_worker_threads: 1,
            server_threads: Some(5),
        };
        assert_eq!(
            pinning.describe(),
            "server cpus 1, client cpus 0; client: 1 tokio worker thread; server: 5 threads"
        );
        let unpinned = Pinning { client_worker_threads: 2, ..Pinning::default() };
        assert_eq!(unpinned.describe(), "unpinned; client: 2 tokio worker threads");
    }
}
