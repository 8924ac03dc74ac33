//! Bearer tokens: how a token becomes the hash kept in the configuration, and how a presented token is compared with
//! every configured hash in constant time.
//!
//! Tokens are long random secrets (generate them with `openssl rand -hex 32`), so one round of SHA-256 is enough: a
//! stolen configuration file does not reveal them, and there is nothing to brute-force. The server never stores or
//! logs a token, only its hash.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Longest bearer token accepted, in bytes; longer ones are refused before hashing.
pub const TOKEN_BYTES_MAX: usize = 512;

/// Shortest token `antrean hash-token` accepts without complaint, in bytes: 128 bits of hex.
pub const TOKEN_BYTES_MIN: usize = 32;

/// The SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only a prefix: enough to tell two apart in a test failure, never the whole value in a log.
        write!(formatter, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl TokenHash {
    /// Parses 64 hexadecimal digits (either case).
    #[must_use]
    pub fn parse_hex(text: &str) -> Option<TokenHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(TokenHash(bytes))
    }

    /// The hash as 64 lowercase hexadecimal digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The hash of `token`, as `antrean hash-token` prints it.
#[must_use]
pub fn hash_token(token: &[u8]) -> TokenHash {
    TokenHash(Sha256::digest(token).into())
}

/// The index in `known` of the hash equal to `presented`'s, compared in constant time: every entry is compared and
/// the time taken does not depend on which one matches, nor on how many leading bytes of a wrong token are right.
#[must_use]
pub fn find_token(known: &[TokenHash], presented: &[u8]) -> Option<usize> {
    let presented = hash_token(presented);
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (position, candidate) in known.iter().enumerate() {
        let equal = candidate.0.ct_eq(&presented.0);
        index = u64::conditional_select(&index, &(position as u64), equal);
        found |= equal;
    }
    bool::from(found).then_some(index as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_sha256_and_round_trips_hex() {
        let hash = hash_token(b"abc");
        assert_eq!(hash.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(TokenHash::parse_hex(&hash.to_hex().to_uppercase()), Some(hash));
        assert_eq!(TokenHash::parse_hex("abc"), None);
        assert_eq!(TokenHash::parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn finds_the_matching_entry_only() {
        let known = [hash_token(b"first"), hash_token(b"second"), hash_token(b"third")];
        assert_eq!(find_token(&known, b"second"), Some(1));
        assert_eq!(find_token(&known, b"third"), Some(2));
        assert_eq!(find_token(&known, b"first"), Some(0));
        assert_eq!(find_token(&known, b"fourth"), None);
        assert_eq!(find_token(&[], b"first"), None);
    }

    #[test]
    fn debug_never_shows_the_whole_hash() {
        let hash = hash_token(b"secret");
        assert!(!format!("{hash:?}").contains(&hash.to_hex()));
    }
}
