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
use super::nik_claim_state::{ClaimRefusal, NikClaims, claims_to_give_back};
use crate::cluster::{ClaimTaken, ClusterError, NikHasher};
use crate::domain::{BookingState, Command, Nik, Outcome, QuotaBook, Reply, RequestId};
use crate::limits::SHARD_COUNT;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Claim keys the reconciler reads per pass (one KV read each).
pub const RECONCILE_KEYS_PER_PASS_MAX: usize = 1_024;

/// Whether `nik` has an active booking in `book`.
fn has_active_booking(book: &QuotaBook, nik: Nik) -> bool {
    book.find_bookings(nik).iter().any(|booking| booking.state.is_active())
}

/// The claim keys of every NIK with an active booking in `book` (one hash per such applicant).
fn active_claim_keys(book: &QuotaBook, hasher: &NikHasher) -> HashSet<String> {
    let mut keys = HashSet::new();
    for index in 0..SHARD_COUNT {
        let niks: Vec<Nik> = book.read_shard(index, |shard| {
            shard.applicants.iter().filter(|(_, record)| !record.active().is_empty()).map(|(nik, _)| *nik).collect()
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
    pub async fn reconcile_nik_claims(
        &self,
        cursor: &mut usize,
        still_owner: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, ClusterError> {
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
            if !still_owner() {
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

/// Runs reconciler passes every `every` (the first at once) while the engine lives and `deposed()` is false, each
/// only while `still_owner()`.
pub async fn keep_reconciling(
    engine: Weak<Engine>,
    still_owner: impl Fn() -> bool + Send + Sync + 'static,
    deposed: impl Fn() -> bool + Send + 'static,
    every: Duration,
) {
    let mut cursor = 0;
    loop {
        if deposed() {
            return;
        }
        let Some(engine) = engine.upgrade() else { return };
        if still_owner() {
            match engine.reconcile_nik_claims(&mut cursor, &still_owner).await {
                Ok(0) => {}
                Ok(given_back) => tracing::info!(given_back, "nik claims without an active booking given back"),
                Err(error) => tracing::warn!(%error, "nik claim reconciliation failed; trying again next pass"),
            }
        }
        drop(engine);
        tokio::time::sleep(every).await;
    }
}
