//! Anti-hoarding: how many slots one caller, one account of a caller, and one applicant may hold per time window, so
//! a broker ("calo") with one account or a list of identity numbers cannot sweep a session the minute it opens.
//!
//! Trust model: a booking caller is a back-end that speaks for many accounts and applicants, and antrean cannot check
//! the accounts it names. So the per-account and per-applicant limits stop a broker working through an honest
//! back-end, and two limits stop a back-end itself: `caller_holds_max` (off by default) and, when two or more callers
//! have the booking role, `caller_session_share_percent` (half by default): no one caller holds more than that share
//! of a session pool's slots in a window, however many accounts it names. With a single booking caller every
//! applicant comes through it, so that share is not applied.
//!
//! Counting is in fixed windows of `window_seconds` (aligned to the Unix epoch): each key's count starts at zero when
//! a window starts. A burst at a window boundary can reach twice a limit; the limits are set well below what a
//! session holds, so that is acceptable. A hold reserves its counts before the engine decides and gives them back if
//! the hold is refused, so retrying a full session does not burn an applicant's budget; a key whose count goes back
//! to zero leaves the table, so a refused hold leaves nothing behind.
//!
//! Memory is bounded: keys are 64-bit keyed hashes (the NIK itself is never stored here), at most
//! `tracked_keys_max` per window, and each booking caller may bring at most its share of them
//! (`tracked_keys_max` divided by the number of booking callers) into the table: a caller past its share, or a full
//! table, has holds with keys not yet seen refused with scope `tracked_keys` until the window ends, and the other
//! callers keep their shares. Time is an argument, so tests need no clock.

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
    /// Most keys (callers + accounts + applicants + callers' session pools) counted in one window.
    pub tracked_keys_max: u32,
    /// Most of one session pool's slots one caller may hold per window, in percent of the pool's capacity (rounded
    /// up, at least one slot), when two or more callers have the booking role; 0 means no limit.
    pub caller_session_share_percent: u32,
}

impl Default for AntiHoardingConfig {
    fn default() -> AntiHoardingConfig {
        AntiHoardingConfig {
            window_seconds: 3_600,
            caller_holds_max: 0,
            account_holds_max: 10,
            applicant_holds_max: 4,
            tracked_keys_max: 1_000_000,
            caller_session_share_percent: 50,
        }
    }
}

/// Largest `tracked_keys_max`: about 96 MiB of counters.
pub const TRACKED_KEYS_LIMIT: u32 = 4_000_000;

impl AntiHoardingConfig {
    /// No limit at all: the local demo without configured callers.
    #[must_use]
    pub fn unlimited() -> AntiHoardingConfig {
        AntiHoardingConfig {
            caller_holds_max: 0,
            account_holds_max: 0,
            applicant_holds_max: 0,
            caller_session_share_percent: 0,
            ..Self::default()
        }
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
        if self.caller_session_share_percent > 100 {
            return Err(("anti_hoarding.caller_session_share_percent".into(), "must be between 0 and 100".into()));
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
    /// The counter table, or the caller's share of it, is full for this window.
    TrackedKeys,
    /// The caller's share of one session pool.
    SessionShare,
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
            HoardingScope::SessionShare => "session_share",
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
    /// Callers with the booking role: they share the table, and the session share applies when there are two or more.
    booking_callers: u32,
    hasher: RandomState,
    state: Mutex<Window>,
}

struct Window {
    index: u64,
    counts: HashMap<u64, Count>,
    /// Keys each caller (by its key) brought into `counts` this window, for its share of `tracked_keys_max`.
    brought: HashMap<u64, u32>,
}

/// One key's count in the window, and the caller whose hold first counted it.
struct Count {
    used: u32,
    brought_by: u64,
}

/// The session pool a hold is for, for the caller's share of it.
pub struct SessionPool<'a> {
    /// Names the office, date, session and pool, e.g. `kanim-batam/2026-12-01/0800-1000/regular`.
    pub key: &'a str,
    /// The pool's capacity.
    pub capacity: u32,
}

/// What one hold asks for.
pub struct HoldRequestKeys<'a> {
    /// The caller's configured name.
    pub caller: &'a str,
    /// The account the caller books for.
    pub account: &'a str,
    /// The applicants held for.
    pub applicants: &'a [Nik],
    /// The session pool, when known (an unknown session is refused by the engine anyway).
    pub session: Option<SessionPool<'a>>,
}

/// A count a hold asks for: the key, how much it adds, the most allowed, and the limit's scope.
struct Wanted {
    key: u64,
    add: u32,
    max: u32,
    scope: HoardingScope,
}

impl HoldLimiter {
    /// Counters under `config` (validated), for one booking caller.
    #[must_use]
    pub fn new(config: &AntiHoardingConfig) -> HoldLimiter {
        HoldLimiter {
            config: config.clone(),
            booking_callers: 1,
            hasher: RandomState::new(),
            state: Mutex::new(Window { index: 0, counts: HashMap::new(), brought: HashMap::new() }),
        }
    }

    /// The same counters shared by `booking_callers` callers with the booking role: each may bring
    /// `tracked_keys_max / booking_callers` keys into the table, and with two or more the session share applies.
    #[must_use]
    pub fn shared_by(mut self, booking_callers: usize) -> HoldLimiter {
        self.booking_callers = u32::try_from(booking_callers).unwrap_or(u32::MAX).max(1);
        self
    }

    /// Counts a hold of `keys.applicants.len()` slots at `now_ms` (Unix milliseconds), or refuses it if any limit
    /// would be passed; a refusal counts nothing.
    pub fn reserve(&self, keys: &HoldRequestKeys<'_>, now_ms: i64) -> Result<Reservation, HoardingRefusal> {
        let window_ms = self.config.window_seconds * 1_000;
        let now_ms = u64::try_from(now_ms).unwrap_or(0);
        let index = now_ms / window_ms;
        let retry_after_ms = window_ms - now_ms % window_ms;
        let refusal = |scope| HoardingRefusal { scope, retry_after_ms };
        let caller = self.key(0, keys.caller.as_bytes(), b"");
        let wanted = self.wanted(keys, caller);
        let mut state = self.state.lock();
        if state.index != index {
            state.index = index;
            state.counts.clear();
            state.brought.clear();
        }
        let new_keys = wanted.iter().filter(|each| !state.counts.contains_key(&each.key)).count() as u32;
        let caller_share = self.config.tracked_keys_max / self.booking_callers;
        let brought = state.brought.get(&caller).copied().unwrap_or(0);
        let table_full = state.counts.len() + new_keys as usize > self.config.tracked_keys_max as usize;
        if new_keys > 0 && (table_full || brought + new_keys > caller_share) {
            return Err(refusal(HoardingScope::TrackedKeys));
        }
        for each in &wanted {
            let used = state.counts.get(&each.key).map_or(0, |count| count.used);
            if used.saturating_add(each.add) > each.max {
                return Err(refusal(each.scope));
            }
        }
        for each in &wanted {
            let count = state.counts.entry(each.key).or_insert(Count { used: 0, brought_by: caller });
            count.used += each.add;
            if count.used.saturating_mul(5) >= each.max.saturating_mul(4) {
                let scope = each.scope.label();
                metrics::counter!(crate::metrics::HOARDING_NEAR_LIMIT_TOTAL, "scope" => scope).increment(1);
            }
        }
        if new_keys > 0 {
            *state.brought.entry(caller).or_insert(0) += new_keys;
        }
        Ok(Reservation { window: index, keys: wanted.into_iter().map(|each| (each.key, each.add)).collect() })
    }

    /// Whether no limit is on (every maximum off, and no session share among fewer than two booking callers): a
    /// hold then has nothing to count, and callers may skip [`HoldLimiter::reserve`].
    #[must_use]
    pub fn limits_nothing(&self) -> bool {
        let config = &self.config;
        config.caller_holds_max == 0
            && config.account_holds_max == 0
            && config.applicant_holds_max == 0
            && !self.counts_session_shares()
    }

    /// Whether a hold's [`SessionPool`] is counted (a share is set and two or more callers book): callers may leave
    /// it out, and skip naming it, otherwise.
    #[must_use]
    pub fn counts_session_shares(&self) -> bool {
        self.booking_callers >= 2 && self.config.caller_session_share_percent > 0
    }

    /// The counts a hold asks for under the limits that are on.
    fn wanted(&self, keys: &HoldRequestKeys<'_>, caller: u64) -> Vec<Wanted> {
        let config = &self.config;
        let slots = u32::try_from(keys.applicants.len()).unwrap_or(u32::MAX);
        let mut wanted = Vec::with_capacity(3 + keys.applicants.len());
        wanted.push(Wanted { key: caller, add: slots, max: config.caller_holds_max, scope: HoardingScope::Caller });
        let account = self.key(1, keys.caller.as_bytes(), keys.account.as_bytes());
        wanted.push(Wanted { key: account, add: slots, max: config.account_holds_max, scope: HoardingScope::Account });
        for nik in keys.applicants {
            let applicant = self.key(2, &nik.value().to_le_bytes(), b"");
            wanted.push(Wanted {
                key: applicant,
                add: 1,
                max: config.applicant_holds_max,
                scope: HoardingScope::Applicant,
            });
        }
        if let Some(session) = keys.session.as_ref().filter(|_| self.booking_callers >= 2) {
            let share = u64::from(session.capacity) * u64::from(config.caller_session_share_percent);
            let max = if config.caller_session_share_percent == 0 { 0 } else { share.div_ceil(100).max(1) };
            let key = self.key(3, keys.caller.as_bytes(), session.key.as_bytes());
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            wanted.push(Wanted { key, add: slots, max, scope: HoardingScope::SessionShare });
        }
        wanted.retain(|each| each.max > 0);
        wanted
    }

    /// Gives back the counts of a hold that was refused (nothing if its window has ended since). A key whose count
    /// goes back to zero leaves the table and stops counting against the share of the caller that brought it.
    pub fn release(&self, reservation: Reservation) {
        let mut state = self.state.lock();
        if state.index != reservation.window {
            return;
        }
        for (key, add) in reservation.keys {
            let Some(count) = state.counts.get_mut(&key) else { continue };
            count.used = count.used.saturating_sub(add);
            if count.used > 0 {
                continue;
            }
            let brought_by = count.brought_by;
            state.counts.remove(&key);
            if let Some(brought) = state.brought.get_mut(&brought_by) {
                *brought = brought.saturating_sub(1);
                if *brought == 0 {
                    state.brought.remove(&brought_by);
                }
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
            caller_session_share_percent: 50,
        })
    }

    /// Counts a hold by "app" and keeps it (never gives it back).
    fn hold(limiter: &HoldLimiter, account: &str, applicants: &[Nik], now_ms: i64) -> Result<(), HoardingScope> {
        hold_by(limiter, "app", account, applicants, None, now_ms)
    }

    /// Counts a hold by `caller`, in `session` if given, and keeps it.
    fn hold_by(
        limiter: &HoldLimiter,
        caller: &str,
        account: &str,
        applicants: &[Nik],
        session: Option<SessionPool<'_>>,
        now_ms: i64,
    ) -> Result<(), HoardingScope> {
        let keys = HoldRequestKeys { caller, account, applicants, session };
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
        let keys = HoldRequestKeys { caller: "app", account: "acct", applicants: &[nik(1)], session: None };
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
    fn a_refused_hold_leaves_no_key_behind() {
        let limiter = limiter(0, 10, 10, 100);
        hold(&limiter, "first", &[nik(1)], 0).expect("the applicant's booking");
        let tracked = limiter.tracked_keys();
        for round in 0..500 {
            let account = format!("account-{round}");
            let keys = HoldRequestKeys { caller: "app", account: &account, applicants: &[nik(1)], session: None };
            limiter.release(limiter.reserve(&keys, 0).expect("reserved, then refused by the engine"));
        }
        assert_eq!(limiter.tracked_keys(), tracked, "each refusal gave its new account key back");
        hold_by(&limiter, "bank", "other", &[nik(2)], None, 0).expect("room for everyone else");
    }

    #[test]
    fn each_booking_caller_brings_at_most_its_share_of_keys() {
        let limiter = limiter(0, 10, 10, 40).shared_by(2);
        let mut held = 0;
        while hold_by(&limiter, "app", &format!("a-{held}"), &[nik(held)], None, 0).is_ok() {
            held += 1;
        }
        assert_eq!(held, 10, "two new keys a hold, twenty keys a caller");
        assert_eq!(hold_by(&limiter, "app", "a-x", &[nik(99)], None, 0).err(), Some(HoardingScope::TrackedKeys));
        for serial in 100..110 {
            hold_by(&limiter, "partner", &format!("p-{serial}"), &[nik(serial)], None, 0).expect("the other share");
        }
        assert!(limiter.tracked_keys() <= 40);
    }

    #[test]
    fn with_two_booking_callers_one_takes_at_most_its_share_of_a_session_pool() {
        let session = || Some(SessionPool { key: "kanim-batam/2026-12-01/0800-1000/regular", capacity: 17 });
        let alone = limiter(0, 10, 10, 1000);
        for serial in 0..17 {
            hold_by(&alone, "app", &format!("a-{serial}"), &[nik(serial)], session(), 0).expect("the only back-end");
        }
        let shared = limiter(0, 10, 10, 1000).shared_by(2);
        for serial in 0..9 {
            hold_by(&shared, "app", &format!("a-{serial}"), &[nik(serial)], session(), 0).expect("half, rounded up");
        }
        let refused = hold_by(&shared, "app", "a-x", &[nik(50)], session(), 0).err();
        assert_eq!(refused, Some(HoardingScope::SessionShare));
        hold_by(&shared, "partner", "p", &[nik(60)], session(), 0).expect("the other back-end");
        let other = Some(SessionPool { key: "kanim-batam/2026-12-01/1000-1200/regular", capacity: 17 });
        hold_by(&shared, "app", "a-y", &[nik(70)], other, 0).expect("another session");
        hold_by(&shared, "app", "a-z", &[nik(80)], session(), HOUR_MS).expect("the next window");
    }

    #[test]
    fn a_limiter_with_every_limit_off_counts_nothing() {
        assert!(HoldLimiter::new(&AntiHoardingConfig::unlimited()).limits_nothing());
        assert!(HoldLimiter::new(&AntiHoardingConfig::unlimited()).shared_by(3).limits_nothing(), "no share set");
        assert!(!limiter(0, 0, 1, 1000).limits_nothing());
        assert!(limiter(0, 0, 0, 1000).limits_nothing(), "a share among one booking caller is off");
        assert!(!limiter(0, 0, 0, 1000).counts_session_shares());
        let shared = limiter(0, 0, 0, 1000).shared_by(2);
        assert!(shared.counts_session_shares() && !shared.limits_nothing());
    }

    #[test]
    fn retry_hint_is_the_rest_of_the_window() {
        let limiter = limiter(0, 1, 0, 1000);
        hold(&limiter, "acct", &[nik(1)], 1_000).expect("first");
        let keys = HoldRequestKeys { caller: "app", account: "acct", applicants: &[nik(2)], session: None };
        let refusal = limiter.reserve(&keys, 1_000).expect_err("second");
        assert_eq!(refusal.retry_after_ms, 3_600_000 - 1_000);
    }
}
