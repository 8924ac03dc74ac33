//! Anti-hoarding: how many slots one caller, one account of a caller, and one applicant may hold per time window, so
//! a broker ("calo") with one account or a list of identity numbers cannot sweep a session the minute it opens.
//!
//! Counting is in fixed windows of `window_seconds` (aligned to the Unix epoch): each key's count starts at zero when
//! a window starts. A burst at a window boundary can reach twice a limit; the limits are set well below what a
//! session holds, so that is acceptable. A hold reserves its counts before the engine decides and gives them back if
//! the hold is refused, so retrying a full session does not burn an applicant's budget.
//!
//! Memory is bounded: keys are 64-bit keyed hashes (the NIK itself is never stored here), at most
//! `tracked_keys_max` per window; when the table is full, holds by keys not yet seen in the window are refused with
//! scope `tracked_keys` until the window ends. Time is an argument, so tests need no clock.

use crate::domain::Nik;
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

/// `[anti_hoarding]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntiHoardingConfig {
    /// Length of a counting window, in seconds.
    pub window_seconds: u64,
    /// Most slots one caller (service) may hold per window; 0 means no limit.
    pub caller_holds_max: u32,
    /// Most slots one account of one caller may hold per window; 0 means no limit.
    pub account_holds_max: u32,
    /// Most holds naming one applicant (NIK) per window; 0 means no limit.
    pub applicant_holds_max: u32,
    /// Most keys (callers + accounts + applicants) counted in one window.
    pub tracked_keys_max: u32,
}

impl Default for AntiHoardingConfig {
    fn default() -> AntiHoardingConfig {
        AntiHoardingConfig {
            window_seconds: 3_600,
            caller_holds_max: 0,
            account_holds_max: 10,
            applicant_holds_max: 4,
            tracked_keys_max: 1_000_000,
        }
    }
}

/// Largest `tracked_keys_max`: about 64 MiB of counters.
pub const TRACKED_KEYS_LIMIT: u32 = 4_000_000;

impl AntiHoardingConfig {
    /// No limit at all: the local demo without configured callers.
    #[must_use]
    pub fn unlimited() -> AntiHoardingConfig {
        AntiHoardingConfig { caller_holds_max: 0, account_holds_max: 0, applicant_holds_max: 0, ..Self::default() }
    }

    /// Checks the section; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=7 * 86_400).contains(&self.window_seconds) {
            return Err(("anti_hoarding.window_seconds".into(), "must be between 1 and 604800".into()));
        }
        if !(1..=TRACKED_KEYS_LIMIT).contains(&self.tracked_keys_max) {
            let reason = format!("must be between 1 and {TRACKED_KEYS_LIMIT}");
            return Err(("anti_hoarding.tracked_keys_max".into(), reason));
        }
        Ok(())
    }
}

/// Which limit refused a hold; the `scope` label of `antrean_hoarding_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoardingScope {
    /// The caller (service) as a whole.
    Caller,
    /// One account of one caller.
    Account,
    /// One applicant.
    Applicant,
    /// The counter table is full for this window.
    TrackedKeys,
}

impl HoardingScope {
    /// The metric label and `ErrorInfo` metadata value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            HoardingScope::Caller => "caller",
            HoardingScope::Account => "account",
            HoardingScope::Applicant => "applicant",
            HoardingScope::TrackedKeys => "tracked_keys",
        }
    }
}

/// A refused hold: which limit, and how long until the window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoardingRefusal {
    /// The limit reached.
    pub scope: HoardingScope,
    /// Milliseconds until the counts start again.
    pub retry_after_ms: u64,
}

/// Counts given back when the hold they were reserved for is refused.
#[derive(Debug, Default)]
#[must_use = "give the reservation back if the hold is refused"]
pub struct Reservation {
    window: u64,
    keys: Vec<(u64, u32)>,
}

/// The per-window hold counters.
pub struct HoldLimiter {
    config: AntiHoardingConfig,
    hasher: RandomState,
    state: Mutex<Window>,
}

struct Window {
    index: u64,
    counts: HashMap<u64, u32>,
}

/// What one hold asks for.
pub struct HoldRequestKeys<'a> {
    /// The caller's configured name.
    pub caller: &'a str,
    /// The account the caller books for.
    pub account: &'a str,
    /// The applicants held for.
    pub applicants: &'a [Nik],
}

impl HoldLimiter {
    /// Counters under `config` (validated).
    #[must_use]
    pub fn new(config: &AntiHoardingConfig) -> HoldLimiter {
        HoldLimiter {
            config: config.clone(),
            hasher: RandomState::new(),
            state: Mutex::new(Window { index: 0, counts: HashMap::new() }),
        }
    }

    /// Counts a hold of `keys.applicants.len()` slots at `now_ms` (Unix milliseconds), or refuses it if any limit
    /// would be passed; a refusal counts nothing.
    pub fn reserve(&self, keys: &HoldRequestKeys<'_>, now_ms: i64) -> Result<Reservation, HoardingRefusal> {
        let window_ms = self.config.window_seconds * 1_000;
        let now_ms = u64::try_from(now_ms).unwrap_or(0);
        let index = now_ms / window_ms;
        let retry_after_ms = window_ms - now_ms % window_ms;
        let slots = u32::try_from(keys.applicants.len()).unwrap_or(u32::MAX);
        let mut wanted: Vec<(u64, u32, u32, HoardingScope)> = Vec::with_capacity(2 + keys.applicants.len());
        let config = &self.config;
        wanted.push((self.key(0, keys.caller.as_bytes(), b""), slots, config.caller_holds_max, HoardingScope::Caller));
        let account = self.key(1, keys.caller.as_bytes(), keys.account.as_bytes());
        wanted.push((account, slots, config.account_holds_max, HoardingScope::Account));
        for nik in keys.applicants {
            let applicant = self.key(2, &nik.value().to_le_bytes(), b"");
            wanted.push((applicant, 1, config.applicant_holds_max, HoardingScope::Applicant));
        }
        wanted.retain(|(_, _, max, _)| *max > 0);
        let mut state = self.state.lock();
        if state.index != index {
            state.index = index;
            state.counts.clear();
        }
        let new_keys = wanted.iter().filter(|(key, ..)| !state.counts.contains_key(key)).count();
        if state.counts.len() + new_keys > config.tracked_keys_max as usize {
            return Err(HoardingRefusal { scope: HoardingScope::TrackedKeys, retry_after_ms });
        }
        for (key, add, max, scope) in &wanted {
            let used = state.counts.get(key).copied().unwrap_or(0);
            if used.saturating_add(*add) > *max {
                return Err(HoardingRefusal { scope: *scope, retry_after_ms });
            }
        }
        for (key, add, ..) in &wanted {
            *state.counts.entry(*key).or_insert(0) += add;
        }
        Ok(Reservation { window: index, keys: wanted.into_iter().map(|(key, add, ..)| (key, add)).collect() })
    }

    /// Gives back the counts of a hold that was refused (nothing if its window has ended since).
    pub fn release(&self, reservation: Reservation) {
        let mut state = self.state.lock();
        if state.index != reservation.window {
            return;
        }
        for (key, add) in reservation.keys {
            if let Some(count) = state.counts.get_mut(&key) {
                *count = count.saturating_sub(add);
            }
        }
    }

    /// Keys counted in the current window.
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().counts.len()
    }

    /// A keyed 64-bit hash of a scope tag and two parts, so keys of different scopes never collide by construction
    /// and the table holds no identity number.
    fn key(&self, scope: u8, first: &[u8], second: &[u8]) -> u64 {
        self.hasher.hash_one((scope, first, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    fn nik(serial: u32) -> Nik {
        Nik::parse(&format!("317101170885{serial:04}")).expect("valid nik")
    }

    fn limiter(caller: u32, account: u32, applicant: u32, keys: u32) -> HoldLimiter {
        HoldLimiter::new(&AntiHoardingConfig {
            window_seconds: 3_600,
            caller_holds_max: caller,
            account_holds_max: account,
            applicant_holds_max: applicant,
            tracked_keys_max: keys,
        })
    }

    /// Counts a hold and keeps it (never gives it back).
    fn hold(limiter: &HoldLimiter, account: &str, applicants: &[Nik], now_ms: i64) -> Result<(), HoardingScope> {
        let keys = HoldRequestKeys { caller: "app", account, applicants };
        limiter.reserve(&keys, now_ms).map(|_kept| ()).map_err(|refusal| refusal.scope)
    }

    #[test]
    fn an_account_is_limited_per_window_and_starts_again_after_it() {
        let limiter = limiter(0, 3, 0, 1000);
        let start = 100 * HOUR_MS;
        for serial in 0..3 {
            hold(&limiter, "acct", &[nik(serial)], start + i64::from(serial)).expect("under the limit");
        }
        assert_eq!(hold(&limiter, "acct", &[nik(9)], start + 10).expect_err("fourth"), HoardingScope::Account);
        hold(&limiter, "other", &[nik(9)], start + 10).expect("another account");
        hold(&limiter, "acct", &[nik(9)], start + HOUR_MS).expect("next window");
    }

    #[test]
    fn a_group_hold_counts_every_slot_and_every_applicant() {
        let limiter = limiter(0, 4, 1, 1000);
        let group = [nik(1), nik(2), nik(3)];
        hold(&limiter, "acct", &group, 0).expect("three slots");
        assert_eq!(hold(&limiter, "acct", &[nik(4), nik(5)], 0).expect_err("five slots"), HoardingScope::Account);
        assert_eq!(hold(&limiter, "other", &[nik(2)], 0).expect_err("same applicant"), HoardingScope::Applicant);
    }

    #[test]
    fn a_refused_hold_gives_its_counts_back() {
        let limiter = limiter(0, 1, 1, 1000);
        let keys = HoldRequestKeys { caller: "app", account: "acct", applicants: &[nik(1)] };
        let reservation = limiter.reserve(&keys, 0).expect("first");
        limiter.release(reservation);
        hold(&limiter, "acct", &[nik(1)], 0).expect("again, after the refusal gave it back");
    }

    #[test]
    fn the_caller_limit_spans_accounts() {
        let limiter = limiter(2, 0, 0, 1000);
        hold(&limiter, "a", &[nik(1)], 0).expect("first");
        hold(&limiter, "b", &[nik(2)], 0).expect("second");
        assert_eq!(hold(&limiter, "c", &[nik(3)], 0).expect_err("third"), HoardingScope::Caller);
    }

    #[test]
    fn memory_is_bounded_by_tracked_keys_max() {
        let limiter = limiter(0, 100, 100, 50);
        let mut refused = 0;
        for serial in 0..200 {
            if hold(&limiter, &format!("acct-{serial}"), &[nik(serial)], 0).is_err() {
                refused += 1;
            }
        }
        assert!(limiter.tracked_keys() <= 50);
        assert!(refused > 100);
        hold(&limiter, "acct-0", &[nik(0)], HOUR_MS).expect("a new window has room");
        assert_eq!(limiter.tracked_keys(), 2);
    }

    #[test]
    fn retry_hint_is_the_rest_of_the_window() {
        let limiter = limiter(0, 1, 0, 1000);
        hold(&limiter, "acct", &[nik(1)], 1_000).expect("first");
        let keys = HoldRequestKeys { caller: "app", account: "acct", applicants: &[nik(2)] };
        let refusal = limiter.reserve(&keys, 1_000).expect_err("second");
        assert_eq!(refusal.retry_after_ms, 3_600_000 - 1_000);
    }
}
