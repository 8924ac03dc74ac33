//! Deterministic, stateless randomness: every choice is a pure function of the run's seed and an index, so a run
//! with the same `--seed` makes the same choices whatever order its tasks run in.

/// A well-mixed 64-bit value for `(seed, stream, index)` (SplitMix64 finaliser).
pub fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` for `(seed, stream, index)`.
pub fn unit(seed: u64, stream: u64, index: u64) -> f64 {
    (mix(seed, stream, index) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform value in `[0, bound)` for `(seed, stream, index)`; `bound` must be positive.
pub fn below(seed: u64, stream: u64, index: u64, bound: u64) -> u64 {
    assert!(bound > 0, "below() needs a positive bound");
    ((mix(seed, stream, index) as u128 * bound as u128) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_in_range() {
        assert_eq!(mix(1, 2, 3), mix(1, 2, 3));
        assert_ne!(mix(1, 2, 3), mix(1, 2, 4));
        for index in 0..10_000 {
            let value = unit(7, 0, index);
            assert!((0.0..1.0).contains(&value));
            assert!(below(7, 1, index, 10) < 10);
        }
    }
}
