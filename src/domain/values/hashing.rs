//! The one fixed hash of the domain: FNV-1a, for shard indexes, command fingerprints and draw entropy. It must give
//! the same value in every build and process (no per-process random keys), because its results are logged.

/// FNV-1a, 64-bit: a fixed, documented hash (no per-process random keys).
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a continued over more bytes from an earlier `hash`.
#[must_use]
pub fn fnv1a_continue(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
