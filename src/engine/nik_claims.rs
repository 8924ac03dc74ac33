//! Cluster mode: the one cross-partition rule. The quota book enforces "at most N active bookings per NIK" inside one
//! partition; [`NikClaims`] makes every NIK's active bookings live in one partition, the one holding its claim in
//! `antrean_nik_claims` (see `cluster/nik_claims.rs`), so the book's own check is the whole rule.
//!
//! - A hold ([`Engine::execute_hold`]) takes the claim of each applicant's NIK before the book decides; a claim another
//!   partition has refuses the hold (`APPLICANT_HAS_BOOKING`), a bucket that does not answer refuses it UNAVAILABLE:
//!   nothing is ever booked without its claim. A request id the book remembers skips the claims, so a retry gets its
//!   first answer.
//! - A claim is given back when its NIK has no active booking here any more: at once after a cancellation (or a
//!   refused hold, or a hold refused by the claims themselves), and by the reconciler ([`keep_reconciling`]) for the
//!   rest (expiry, no-show, completion, a crash between claim and append), at take-over and every
//!   `nik_claim_reconcile_every_ms`, a bounded page of the bucket per pass.
//! - A release deletes with the revision it read, and only after reading it checks that no hold for the NIK is under
//!   way here and that the book has no active booking: a hold touches its claim (a new revision) after it registers,
//!   so either the release sees the hold or the hold's touch makes the delete fail.
//!
//! Hashing and KV work live in `cluster/`; this file decides when. Single-node mode never gets here.

use super::Engine;
use super::partition::ServingGate;
use crate::cluster::{ClaimTaken, ClusterError, NikClaimBucket, NikHasher, OwnClaim};
use crate::domain::{BookingState, Command, Nik, Outcome, QuotaBook, Reply, RequestId};
use crate::limits::SHARD_COUNT;
use crate::metrics as names;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Claim keys the reconciler reads per pass (one KV read each).
pub const RECONCILE_KEYS_PER_PASS_MAX: usize = 1_024;
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
struct Activity {
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

    fn begin_pass(&mut self) {
        self.touched.clear();
        self.touched_overflowed = false;
    }

    fn busy(&self) -> Busy {
        if self.touched_overflowed {
            return Busy::All;
        }
        Busy::Keys(self.in_flight.keys().chain(self.touched.iter()).cloned().collect())
    }
}

/// The partition's NIK claims.
pub struct NikClaims {
    bucket: NikClaimBucket,
    hasher: NikHasher,
    partition: String,
    activity: Mutex<Activity>,
}

/// Keys registered as a hold under way until dropped.
struct InFlight<'claims> {
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

    fn count(&self, outcome: &'static str, by: u64) {
        metrics::counter!(names::CLUSTER_NIK_CLAIMS_TOTAL, "partition" => self.partition.clone(), "outcome" => outcome)
            .increment(by);
    }

    fn enter(&self, keys: &[String]) -> InFlight<'_> {
        self.activity.lock().enter(keys);
        InFlight { claims: self, keys: keys.to_vec() }
    }

    fn is_in_flight(&self, key: &str) -> bool {
        self.activity.lock().in_flight.contains_key(key)
    }

    /// Takes every key's claim, in order; stops at the first refusal.
    async fn take_all(&self, keys: &[String]) -> Result<(), ClaimRefusal> {
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

/// Whether `nik` has an active booking in `book`.
fn has_active_booking(book: &QuotaBook, nik: Nik) -> bool {
    book.find_bookings(nik).iter().any(|booking| booking.state.is_active())
}

/// The claim keys of every NIK with an active booking in `book` (one hash per such applicant).
fn active_claim_keys(book: &QuotaBook, hasher: &NikHasher) -> HashSet<String> {
    let mut keys = HashSet::new();
    for index in 0..SHARD_COUNT {
        let niks: Vec<Nik> = book.read_shard(index, |shard| {
            shard.applicants.iter().filter(|(_, record)| !record.active.is_empty()).map(|(nik, _)| *nik).collect()
        });
        keys.extend(niks.into_iter().map(|nik| hasher.claim_key(nik)));
    }
    keys
}

impl Engine {
    /// Makes this engine keep the cluster's NIK rule with `claims` (cluster mode; called once, at take-over).
    pub fn attach_nik_claims(&self, claims: Arc<NikClaims>) {
        if self.nik_claims.set(claims).is_err() {
            panic!("nik claims attached twice");
        }
    }

    /// Executes a hold as [`Engine::execute`] does, after taking its applicants' NIK claims when the engine keeps them
    /// (cluster mode). Any other command, or a request id the book remembers, goes straight to the book.
    pub async fn execute_hold(&self, request_id: &RequestId, command: &Command) -> Result<Outcome, ClaimRefusal> {
        let (Some(claims), Command::Hold(hold)) = (self.nik_claims.get(), command) else {
            return Ok(self.execute(request_id, command).await);
        };
        if self.book.remembers(request_id, self.now()) {
            return Ok(self.execute(request_id, command).await);
        }
        let niks: Vec<Nik> = hold.applicants.iter().map(|applicant| applicant.nik).collect();
        let keys: Vec<String> = niks.iter().map(|nik| claims.hasher.claim_key(*nik)).collect();
        let in_flight = claims.enter(&keys);
        let answer = match claims.take_all(&keys).await {
            Ok(()) => Ok(self.execute(request_id, command).await),
            Err(refusal) => Err(refusal),
        };
        drop(in_flight);
        if !matches!(answer, Ok(Ok(_))) {
            self.release_idle_claims(claims, &niks).await;
        }
        answer
    }

    /// After a change: gives back the claim of each NIK whose booking it ended, if that NIK has no active booking left;
    /// takes the claim of a booking a late payment revived (the book let it come back without asking the claims, so
    /// this is after the fact: a claim found elsewhere is logged and counted `conflict`, for an operator to resolve).
    pub(super) async fn release_ended_claims(&self, outcome: &Outcome) {
        let Some(claims) = self.nik_claims.get() else { return };
        match outcome {
            Ok(Reply::Paid { booking, revived: true, .. }) if booking.state.is_active() => {
                let key = claims.hasher.claim_key(booking.applicant.nik);
                match claims.bucket.take(&key).await {
                    Ok(ClaimTaken::Created) => claims.count("created", 1),
                    Ok(ClaimTaken::Ours) => {}
                    Ok(ClaimTaken::Elsewhere) => {
                        claims.count("conflict", 1);
                        tracing::error!(booking_id = %booking.booking_id,
                            "a late payment revived a booking whose applicant has active bookings in another partition");
                    }
                    Err(error) => tracing::warn!(%error, "nik claim of a revived booking not taken"),
                }
            }
            Ok(Reply::Booking(booking) | Reply::Paid { booking, .. }) if !booking.state.is_active() => {
                self.release_idle_claims(claims, &[booking.applicant.nik]).await;
            }
            _ => {}
        }
    }

    /// After bookings ended with time: as [`Engine::release_ended_claims`] for each of `ended`.
    pub(super) async fn release_claims_of(&self, ended: &[(Nik, BookingState)]) {
        let Some(claims) = self.nik_claims.get() else { return };
        let niks: Vec<Nik> = ended.iter().filter(|(_, state)| !state.is_active()).map(|(nik, _)| *nik).collect();
        self.release_idle_claims(claims, &niks).await;
    }

    /// Deletes the claims of `niks` that are this partition's, unused by a hold under way, and whose NIK has no active
    /// booking here. Best effort: what fails is left to the reconciler.
    async fn release_idle_claims(&self, claims: &NikClaims, niks: &[Nik]) {
        for nik in niks {
            let key = claims.hasher.claim_key(*nik);
            // The revision first, then the checks: a hold that touches the claim after this read makes the delete fail.
            let own = match claims.bucket.own(&key).await {
                Ok(Some(own)) => own,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "nik claim not released; the reconciler will");
                    continue;
                }
            };
            if claims.is_in_flight(&key) || has_active_booking(&self.book, *nik) {
                continue;
            }
            match claims.bucket.release(&own).await {
                Ok(true) => claims.count("released", 1),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "nik claim not released; the reconciler will"),
            }
        }
    }

    /// One reconciler pass over a page of the bucket from `cursor` (moved on, back to 0 at the end): gives back this
    /// partition's claims whose NIK has no active booking here, while `gate` says this node still owns the partition.
    /// Returns how many it gave back.
    pub async fn reconcile_nik_claims(&self, cursor: &mut usize, gate: &ServingGate) -> Result<usize, ClusterError> {
        let Some(claims) = self.nik_claims.get() else { return Ok(0) };
        claims.activity.lock().begin_pass();
        let (keys, at_end) = claims.bucket.keys_page(*cursor, RECONCILE_KEYS_PER_PASS_MAX).await?;
        *cursor = if at_end { 0 } else { *cursor + keys.len() };
        let mut own = Vec::new();
        for key in &keys {
            own.extend(claims.bucket.own(key).await?);
        }
        if own.is_empty() {
            return Ok(0);
        }
        let active = active_claim_keys(&self.book, &claims.hasher);
        let busy = claims.activity.lock().busy();
        let mut given_back = 0;
        for claim in claims_to_give_back(&own, &active, &busy) {
            if !gate.may_serve() {
                break;
            }
            if claims.bucket.release(claim).await? {
                given_back += 1;
            }
        }
        claims.count("reconciled", given_back as u64);
        Ok(given_back)
    }
}

/// Runs reconciler passes every `every` (the first at once) while the engine lives and `gate` is not deposed.
pub async fn keep_reconciling(engine: Weak<Engine>, gate: Arc<ServingGate>, every: Duration) {
    let mut cursor = 0;
    loop {
        if gate.is_deposed() {
            return;
        }
        let Some(engine) = engine.upgrade() else { return };
        if gate.may_serve() {
            match engine.reconcile_nik_claims(&mut cursor, &gate).await {
                Ok(0) => {}
                Ok(given_back) => tracing::info!(given_back, "nik claims without an active booking given back"),
                Err(error) => tracing::warn!(%error, "nik claim reconciliation failed; trying again next pass"),
            }
        }
        drop(engine);
        tokio::time::sleep(every).await;
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
