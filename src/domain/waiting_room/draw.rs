//! The verifiable draw, version 1: a commitment to a secret published before the release instant, and at the instant
//! an order that is a fixed function of that secret and the closed list of pre-open tickets. Anyone can check it
//! afterwards with the secret revealed (docs/draw.md specifies every byte; `antrean
//! verify-draw` and `scripts/verify_draw.py` are two implementations of it).
//!
//! The secret comes in from outside (the engine draws it and logs it in a `DrawCommitted` event); everything here is
//! a pure function of its inputs. The secret's `Debug` is masked so a stray `{:?}` never prints it before the draw.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The version of the algorithm below, published with every draw. 0 names draws made by earlier builds, before there
/// was a commitment: those cannot be verified.
pub const DRAW_ALGORITHM_VERSION: u32 = 1;

/// Prefix of the commitment's hash input: the commitment can never be mistaken for any other SHA-256 the service
/// publishes.
pub const COMMITMENT_PREFIX: &[u8] = b"antrean/draw/v1/commitment\0";
/// Prefix of a receipt's hash input.
pub const RECEIPT_PREFIX: &[u8] = b"antrean/draw/v1/receipt\0";
/// Prefix of the seed's hash input.
pub const SEED_PREFIX: &[u8] = b"antrean/draw/v1/seed\0";

/// Bytes of a receipt: 128 bits, enough that nobody can find two tickets with the same one by chance.
pub const RECEIPT_BYTES: usize = 16;

/// A line's draw secret: 32 bytes from the operating system's random source, drawn by the engine. Kept in the log
/// and snapshots, revealed only once the draw is made.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawSecret(pub [u8; 32]);

impl fmt::Debug for DrawSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("DrawSecret(..)")
    }
}

impl DrawSecret {
    /// SHA-256(`COMMITMENT_PREFIX` || secret): what is published before the draw.
    #[must_use]
    pub fn commitment(&self) -> [u8; 32] {
        commitment(&self.0)
    }

    /// The public receipt of ticket number `ticket_number` in this line.
    #[must_use]
    pub fn receipt(&self, ticket_number: u64) -> [u8; RECEIPT_BYTES] {
        receipt(&self.0, ticket_number)
    }
}

/// SHA-256(`COMMITMENT_PREFIX` || `secret`).
#[must_use]
pub fn commitment(secret: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(COMMITMENT_PREFIX);
    hasher.update(secret);
    hasher.finalize().into()
}

/// The first 16 bytes of SHA-256(`RECEIPT_PREFIX` || `secret` || ticket number as u64 little-endian). The NIK is not an
/// input: a receipt names a ticket of a line, and without the secret nobody can even tell which ticket it names.
#[must_use]
pub fn receipt(secret: &[u8; 32], ticket_number: u64) -> [u8; RECEIPT_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(RECEIPT_PREFIX);
    hasher.update(secret);
    hasher.update(ticket_number.to_le_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut receipt = [0u8; RECEIPT_BYTES];
    receipt.copy_from_slice(&digest[..RECEIPT_BYTES]);
    receipt
}

/// One pre-open ticket as the draw sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawEntry {
    /// The ticket number (`TK` and ten digits on the wire).
    pub ticket_number: u64,
    /// Its receipt.
    pub receipt: [u8; RECEIPT_BYTES],
    /// When it joined, in milliseconds since the Unix epoch.
    pub joined_at_ms: i64,
}

/// SHA-256(`SEED_PREFIX` || secret || entry count as u64 LE || for each entry in canonical order (ascending ticket
/// number): ticket number u64 LE || receipt (16 bytes) || joined-at milliseconds i64 LE).
#[must_use]
pub fn seed(secret: &[u8; 32], entries: &[DrawEntry]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(SEED_PREFIX);
    hasher.update(secret);
    hasher.update((entries.len() as u64).to_le_bytes());
    for entry in entries {
        hasher.update(entry.ticket_number.to_le_bytes());
        hasher.update(entry.receipt);
        hasher.update(entry.joined_at_ms.to_le_bytes());
    }
    hasher.finalize().into()
}

/// A number below `bound` (> 0) from `random`, without bias: 64-bit words at or above the largest multiple of `bound`
/// that fits in 2^64 are drawn again; the rest are taken modulo `bound`.
pub fn bounded(random: &mut ChaCha8Rng, bound: u64) -> u64 {
    assert!(bound > 0, "a bound of 0 has no number below it");
    // 2^64 mod bound, computed without 128-bit arithmetic.
    let rejected = (u64::MAX % bound + 1) % bound;
    loop {
        let word = random.next_u64();
        if word <= u64::MAX - rejected {
            return word % bound;
        }
    }
}

/// The order of `entries` (given in canonical order): `result[k]` is the index into `entries` of the ticket at place
/// `k + 1`. Fisher-Yates over ChaCha8 keyed by [`seed`]: start from the identity, then for `i` from `n - 1` down to 1
/// swap places `i` and `bounded(i + 1)`.
#[must_use]
pub fn draw_order(secret: &[u8; 32], entries: &[DrawEntry]) -> Vec<usize> {
    let mut random = ChaCha8Rng::from_seed(seed(secret, entries));
    let mut order: Vec<usize> = (0..entries.len()).collect();
    for last in (1..order.len()).rev() {
        let pick = bounded(&mut random, last as u64 + 1) as usize;
        order.swap(last, pick);
    }
    order
}

/// What is wrong with a published draw.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DrawMismatch {
    /// The secret does not hash to the commitment published before the draw.
    #[error("the secret does not match the commitment")]
    Commitment,
    /// The list is not in canonical order (ascending ticket number, each ticket once).
    #[error("the list is not in canonical order at entry {index}")]
    ListOrder {
        /// 0-based entry.
        index: usize,
    },
    /// A receipt is not the one the secret gives its ticket.
    #[error("the receipt of ticket {ticket_number} does not match the secret")]
    Receipt {
        /// The ticket.
        ticket_number: u64,
    },
    /// The order does not recompute from the secret and the list.
    #[error("the order does not recompute: place {place} should be ticket {expected}, found {found}")]
    Order {
        /// 1-based place.
        place: usize,
        /// Ticket number recomputed there.
        expected: u64,
        /// Ticket number published there (0 when missing).
        found: u64,
    },
    /// The order lists a different number of tickets than the list.
    #[error("the order has {found} places, the list {expected} tickets")]
    OrderLength {
        /// Tickets in the list.
        expected: usize,
        /// Places in the order.
        found: usize,
    },
}

/// Checks a published draw: the secret matches the commitment, the list is canonical and its receipts are the
/// secret's, and `order` (ticket numbers by place) is what the algorithm gives.
pub fn verify(
    commitment_published: &[u8; 32],
    secret: &[u8; 32],
    entries: &[DrawEntry],
    order: &[u64],
) -> Result<(), DrawMismatch> {
    if commitment(secret) != *commitment_published {
        return Err(DrawMismatch::Commitment);
    }
    for (index, pair) in entries.windows(2).enumerate() {
        if pair[0].ticket_number >= pair[1].ticket_number {
            return Err(DrawMismatch::ListOrder { index: index + 1 });
        }
    }
    if let Some(entry) = entries.iter().find(|entry| receipt(secret, entry.ticket_number) != entry.receipt) {
        return Err(DrawMismatch::Receipt { ticket_number: entry.ticket_number });
    }
    if order.len() != entries.len() {
        return Err(DrawMismatch::OrderLength { expected: entries.len(), found: order.len() });
    }
    for (place, index) in draw_order(secret, entries).into_iter().enumerate() {
        let expected = entries[index].ticket_number;
        if order[place] != expected {
            return Err(DrawMismatch::Order { place: place + 1, expected, found: order[place] });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(secret: &[u8; 32], count: u64) -> Vec<DrawEntry> {
        (1..=count)
            .map(|number| DrawEntry {
                ticket_number: number,
                receipt: receipt(secret, number),
                joined_at_ms: 1_700_000_000_000 + number as i64,
            })
            .collect()
    }

    fn published(secret: &[u8; 32], entries: &[DrawEntry]) -> Vec<u64> {
        draw_order(secret, entries).into_iter().map(|index| entries[index].ticket_number).collect()
    }

    #[test]
    fn a_draw_verifies_and_any_change_is_refused() {
        let secret = [7u8; 32];
        let list = entries(&secret, 50);
        let order = published(&secret, &list);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=50).collect::<Vec<u64>>(), "a permutation of the list");
        assert_ne!(order, sorted, "shuffled");
        let committed = commitment(&secret);
        assert_eq!(verify(&committed, &secret, &list, &order), Ok(()));

        let mut other = secret;
        other[0] ^= 1;
        assert_eq!(verify(&committed, &other, &list, &order), Err(DrawMismatch::Commitment));
        let mut moved = list.clone();
        moved[3].joined_at_ms += 1;
        assert!(matches!(verify(&committed, &secret, &moved, &order), Err(DrawMismatch::Order { .. })));
        let mut forged = list.clone();
        forged[3].receipt[0] ^= 1;
        assert_eq!(verify(&committed, &secret, &forged, &order), Err(DrawMismatch::Receipt { ticket_number: 4 }));
        let mut swapped = order.clone();
        swapped.swap(0, 1);
        assert!(matches!(verify(&committed, &secret, &list, &swapped), Err(DrawMismatch::Order { place: 1, .. })));
        let mut unsorted = list.clone();
        unsorted.swap(0, 1);
        assert_eq!(verify(&committed, &secret, &unsorted, &order), Err(DrawMismatch::ListOrder { index: 1 }));
    }

    #[test]
    fn the_order_depends_on_the_secret_and_on_every_entry() {
        let secret = [1u8; 32];
        let list = entries(&secret, 20);
        let mut other_secret = secret;
        other_secret[31] = 2;
        assert_ne!(draw_order(&secret, &list), draw_order(&other_secret, &list));
        assert_ne!(seed(&secret, &list), seed(&secret, &list[..19]));
        assert_eq!(draw_order(&secret, &list), draw_order(&secret, &list), "a function of its inputs");
        assert!(draw_order(&secret, &[]).is_empty());
    }

    #[test]
    fn bounded_numbers_stay_below_their_bound_and_reject_the_biased_tail() {
        let mut random = ChaCha8Rng::from_seed([3u8; 32]);
        for bound in [1u64, 2, 3, 7, 1000, u64::MAX / 2 + 2, u64::MAX] {
            for _ in 0..100 {
                assert!(bounded(&mut random, bound) < bound);
            }
        }
    }

    /// Pinned values, so a change of the algorithm (or of a dependency under it) cannot pass unnoticed; the Python
    /// verifier gives the same (`scripts/verify_draw.py`, see `tests/draw.rs`).
    #[test]
    fn the_algorithm_gives_the_pinned_values() {
        let secret: [u8; 32] = std::array::from_fn(|index| index as u8);
        assert_eq!(hex::encode(commitment(&secret)), PINNED_COMMITMENT);
        let list = entries(&secret, 10);
        assert_eq!(published(&secret, &list), PINNED_ORDER);
    }

    const PINNED_COMMITMENT: &str = "2a16a8608e3deb5da68793832316d07f1533f1622eadd0400747bd7ce87f499d";
    const PINNED_ORDER: [u64; 10] = [5, 1, 9, 3, 6, 7, 8, 10, 4, 2];

    /// The stream is ChaCha8 as published: with an all-zero key and nonce its keystream begins 3e 00 ef 2f 89 5f 40
    /// d6, read as one little-endian 64-bit word.
    #[test]
    fn the_stream_is_chacha8_read_as_little_endian_words() {
        let mut random = ChaCha8Rng::from_seed([0u8; 32]);
        assert_eq!(random.next_u64(), 0xd640_5f89_2fef_003e);
    }
}
