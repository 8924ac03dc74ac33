//! The state of a partition's NIK claims that the engine keeps beside its book ([`NikClaims`]): the bucket, the
//! hasher, and which claim keys holds are using now or used during the reconciler's pass, so that neither a release
//! nor the reconciler deletes a claim a hold relies on. The decisions of when to take and give back are in
//! `nik_claims.rs`; this file knows nothing of the engine.

use crate::cluster::{ClaimTaken, NikClaimBucket, NikHasher, OwnClaim};
use crate::metrics as names;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};

/// Claim keys remembered as used during a reconciler pass; past it, the pass gives nothing back.
const TOUCHED_KEYS_MAX: usize = 65_536;

/// Why a hold was refused before the book decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Another partition (another office) holds an applicant's claim: the NIK has active bookings there.
    HeldElsewhere,
    /// The claims bucket did not answer: nothing was booked.
    Unavailable {
        /// Why.
        detail: String,
    },
}

/// Holds and releases under way, for releases and the reconciler to leave their claims alone.
#[derive(Default)]
pub(super) struct Activity {
    /// Claim keys of holds under way, with how many.
    in_flight: HashMap<String, u32>,
    /// Claim keys that entered or left a hold since the reconciler's pass began.
    touched: HashSet<String>,
    /// `touched` hit [`TOUCHED_KEYS_MAX`] during this pass.
    touched_overflowed: bool,
}

impl Activity {
    fn touch(&mut self, key: &str) {
        if self.touched.len() >= TOUCHED_KEYS_MAX {
            self.touched_overflowed = true;
        } else {
            self.touched.insert(key.to_owned());
        }
    }

    fn enter(&mut self, keys: &[String]) {
        for key in keys {
            *self.in_flight.entry(key.clone()).or_default() += 1;
            self.touch(key);
        }
    }

    fn leave(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(count) = self.in_flight.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    self.in_flight.remove(key);
                }
            }
            // A hold that ends during a pass may have booked after the pass read the book: busy until the pass ends.
            self.touch(key);
        }
    }

    pub(super) fn begin_pass(&mut self) {
        self.touched.clear();
        self.touched_overflowed = false;
    }

    pub(super) fn busy(&self) -> Busy {
        if self.touched_overflowed {
            return Busy::All;
        }
        Busy::Keys(self.in_flight.keys().chain(self.touched.iter()).cloned().collect())
    }
}

/// The partition's NIK claims.
pub struct NikClaims {
    pub(super) bucket: NikClaimBucket,
    pub(super) hasher: NikHasher,
    partition: String,
    pub(super) activity: Mutex<Activity>,
}

/// Keys registered as a hold under way until dropped.
pub(super) struct InFlight<'claims> {
    claims: &'claims NikClaims,
    keys: Vec<String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.claims.activity.lock().leave(&self.keys);
    }
}

/// Which claim keys the reconciler must leave alone this pass.
#[derive(Debug)]
pub enum Busy {
    /// These (holds under way, or used since the pass began).
    Keys(HashSet<String>),
    /// Too many to remember: all of them.
    All,
}

/// The reconciler's decision: of this partition's `own` claims, those to give back, the ones whose key is no active
/// NIK of the book (`active`) and saw no hold during the pass.
#[must_use]
pub fn claims_to_give_back<'own>(own: &'own [OwnClaim], active: &HashSet<String>, busy: &Busy) -> Vec<&'own OwnClaim> {
    let Busy::Keys(busy) = busy else { return Vec::new() };
    own.iter().filter(|claim| !active.contains(&claim.key) && !busy.contains(&claim.key)).collect()
}

impl NikClaims {
    /// The claims of `partition` in `bucket`, named by `hasher`.
    #[must_use]
    pub fn new(bucket: NikClaimBucket, hasher: NikHasher, partition: String) -> NikClaims {
        NikClaims { bucket, hasher, partition, activity: Mutex::new(Activity::default()) }
    }

    pub(super) fn count(&self, outcome: &'static str, by: u64) {
        metrics::counter!(names::CLUSTER_NIK_CLAIMS_TOTAL, "partition" => self.partition.clone(), "outcome" => outcome)
            .increment(by);
    }

    pub(super) fn enter(&self, keys: &[String]) -> InFlight<'_> {
        self.activity.lock().enter(keys);
        InFlight { claims: self, keys: keys.to_vec() }
    }

    pub(super) fn is_in_flight(&self, key: &str) -> bool {
        self.activity.lock().in_flight.contains_key(key)
    }

    /// Takes every key's claim, in order; stops at the first refusal.
    pub(super) async fn take_all(&self, keys: &[String]) -> Result<(), ClaimRefusal> {
        for key in keys {
            match self.bucket.take(key).await {
                Ok(ClaimTaken::Created) => self.count("created", 1),
                Ok(ClaimTaken::Ours) => {}
                Ok(ClaimTaken::Elsewhere) => {
                    self.count("refused", 1);
                    return Err(ClaimRefusal::HeldElsewhere);
                }
                Err(error) => {
                    self.count("unavailable", 1);
                    tracing::warn!(%error, partition = %self.partition, "nik claim not taken: hold refused");
                    return Err(ClaimRefusal::Unavailable { detail: error.to_string() });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str) -> OwnClaim {
        OwnClaim { key: key.to_owned(), revision: 7 }
    }

    fn keys(keys: &[&str]) -> HashSet<String> {
        keys.iter().map(|key| (*key).to_owned()).collect()
    }

    #[test]
    fn the_reconciler_gives_back_only_idle_claims_of_niks_without_an_active_booking() {
        let own = [claim("booked"), claim("idle"), claim("holding"), claim("just-used")];
        let active = keys(&["booked"]);
        let busy = Busy::Keys(keys(&["holding", "just-used"]));
        let given_back: Vec<&str> =
            claims_to_give_back(&own, &active, &busy).into_iter().map(|claim| claim.key.as_str()).collect();
        assert_eq!(given_back, ["idle"]);
    }

    #[test]
    fn the_reconciler_gives_back_nothing_when_it_lost_track_of_the_holds_during_its_pass() {
        let own = [claim("idle")];
        assert!(claims_to_give_back(&own, &HashSet::new(), &Busy::All).is_empty());
        assert_eq!(claims_to_give_back(&own, &HashSet::new(), &Busy::Keys(HashSet::new())).len(), 1);
    }

    #[test]
    fn a_hold_under_way_or_ended_during_the_pass_is_busy_until_the_next_pass() {
        let busy_keys = |activity: &Activity| match activity.busy() {
            Busy::Keys(keys) => {
                let mut keys: Vec<String> = keys.into_iter().collect();
                keys.sort();
                keys
            }
            Busy::All => panic!("not overflowed"),
        };
        let mut activity = Activity::default();
        let (before, during) = (vec!["before".to_owned()], vec!["during".to_owned()]);
        activity.enter(&before);
        activity.begin_pass();
        assert_eq!(busy_keys(&activity), ["before"], "under way");
        activity.leave(&before);
        assert_eq!(busy_keys(&activity), ["before"], "ended during the pass: it may have booked after the read");
        activity.enter(&during);
        activity.leave(&during);
        assert_eq!(busy_keys(&activity), ["before", "during"]);
        activity.begin_pass();
        assert!(busy_keys(&activity).is_empty(), "a new pass reads the book after both holds applied");
    }

    #[test]
    fn too_many_holds_in_one_pass_make_every_claim_busy() {
        let mut activity = Activity::default();
        for index in 0..=TOUCHED_KEYS_MAX {
            activity.touch(&index.to_string());
        }
        assert!(matches!(activity.busy(), Busy::All));
        activity.begin_pass();
        assert!(matches!(activity.busy(), Busy::Keys(keys) if keys.is_empty()));
    }
}
