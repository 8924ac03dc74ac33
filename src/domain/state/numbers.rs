//! Where booking numbers come from: a keyed stream, so that ids cannot be guessed from one another.
//!
//! Draw `n` is the first word of ChaCha8's stream `n` under a 256-bit key, cut to [`BookingId::NUMBER_END`]: without
//! the key, one number says nothing about the next. The key is an input like a clock reading: the engine draws it from
//! the operating system when it opens the book, and a book nobody keyed (domain tests) uses a fixed one, so tests stay
//! deterministic. A number is not unique by construction: the book checks that the numbers it drew are free under the
//! locks it takes and draws again if not (about once in 1.7 million holds with 20 million bookings). Replay never
//! draws: the log records every number, so the key need not be kept.
//!
//! A book may also be given a prefix (an input like the key): its numbers then carry it in their top 8 bits
//! ([`BookingId::prefix`]) and are drawn from the 37 bits below. A cluster partition prefixes its numbers with a mark
//! of its name, so that a node routing a call by booking id asks that partition first (`grpc/routing/decide.rs`);
//! 2^37 numbers a partition still make a guessed id exist with a chance of about one in 6,900 at 20 million bookings,
//! and it belongs to another caller anyway.

use crate::domain::values::ids::BookingId;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The source of booking numbers.
#[derive(Debug, Default)]
pub struct BookingNumbers {
    key: OnceLock<[u8; 32]>,
    prefix: OnceLock<u8>,
    draws: AtomicU64,
}

impl BookingNumbers {
    /// Keys the stream, once, before the first hold.
    ///
    /// # Panics
    /// If it was keyed already: a second key is a wiring mistake.
    pub fn set_key(&self, key: [u8; 32]) {
        assert!(self.key.set(key).is_ok(), "booking numbers are keyed once");
    }

    /// Prefixes every number drawn from now on with `prefix` (in its top 8 bits), once, before the first hold.
    ///
    /// # Panics
    /// If it was prefixed already: a second prefix is a wiring mistake.
    pub fn set_prefix(&self, prefix: u8) {
        assert!(self.prefix.set(prefix).is_ok(), "booking numbers are prefixed once");
    }

    /// The first of `count` consecutive numbers (a group hold's bookings), all below [`BookingId::NUMBER_END`] and
    /// none 0.
    ///
    /// # Panics
    /// If `count` is 0 or not far below `NUMBER_END` (holds name at most a handful of applicants).
    pub fn draw(&self, count: u64) -> BookingId {
        assert!((1..=1024).contains(&count), "a hold names 1 to a few applicants, not {count}");
        let key = self.key.get().copied().unwrap_or_default();
        let (base, end) = match self.prefix.get() {
            Some(prefix) => (u64::from(*prefix) << BookingId::PREFIX_SHIFT, 1 << BookingId::PREFIX_SHIFT),
            None => (0, BookingId::NUMBER_END),
        };
        loop {
            let mut stream = ChaCha8Rng::from_seed(key);
            stream.set_stream(self.draws.fetch_add(1, Ordering::Relaxed));
            // A group's numbers all carry the prefix: the group ends below `end`.
            let offset = stream.next_u64() % end;
            if base + offset != 0 && offset + count <= end {
                return BookingId(base + offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_are_spread_over_the_whole_range_and_depend_on_the_key() {
        let unkeyed = BookingNumbers::default();
        let drawn: Vec<u64> = (0..1000).map(|_| unkeyed.draw(1).0).collect();
        assert_eq!(drawn.iter().collect::<HashSet<_>>().len(), 1000);
        assert!(drawn.iter().all(|number| (1..BookingId::NUMBER_END).contains(number)));
        let neighbours = drawn.windows(2).filter(|pair| pair[0].abs_diff(pair[1]) < 1_000_000).count();
        assert_eq!(neighbours, 0, "consecutive draws are unrelated");
        let again = BookingNumbers::default();
        assert_eq!(again.draw(1).0, drawn[0], "the same key gives the same numbers: replay-free tests stay exact");
        let keyed = BookingNumbers::default();
        keyed.set_key([7; 32]);
        assert_ne!(keyed.draw(1).0, drawn[0]);
        let group = keyed.draw(5).0;
        assert!(group + 5 <= BookingId::NUMBER_END);
    }

    #[test]
    fn a_prefixed_book_draws_numbers_that_carry_its_prefix_and_are_random_below_it() {
        for prefix in [0, 1, 0x5a, 0xff] {
            let numbers = BookingNumbers::default();
            numbers.set_prefix(prefix);
            let drawn: Vec<BookingId> = (0..1000).map(|_| numbers.draw(5)).collect();
            assert!(drawn.iter().all(|id| id.prefix() == prefix && id.0 != 0), "prefix {prefix}");
            assert!(drawn.iter().all(|id| BookingId(id.0 + 4).prefix() == prefix), "a group keeps the prefix");
            assert!(drawn.iter().all(|id| id.0 < BookingId::NUMBER_END));
            assert_eq!(drawn.iter().collect::<HashSet<_>>().len(), 1000, "prefix {prefix}");
            let low = |id: &BookingId| id.0 & ((1 << BookingId::PREFIX_SHIFT) - 1);
            assert!(drawn.iter().any(|id| low(id) >= 1 << (BookingId::PREFIX_SHIFT - 1)), "the low bits are spread");
        }
        let unprefixed = BookingNumbers::default();
        let prefixes: HashSet<u8> = (0..1000).map(|_| unprefixed.draw(1).prefix()).collect();
        assert!(prefixes.len() > 200, "an unprefixed book's numbers are random in the top bits too");
    }
}
