//! [`NikHasher`]: the name of a NIK's claim in the claims bucket, a keyed hash (HMAC-SHA256) of the NIK, so the bucket
//! never holds a NIK in clear and a reader of the bucket without the key cannot test guesses (a NIK has few enough
//! plausible values, region, birth date and serial, that an unkeyed hash could be reversed by trying them all).
//!
//! The key is the cluster's NIK claim secret (see `nik_claims.rs` for where it comes from); every node of a cluster
//! must use the same one, or two nodes would name the same NIK's claim differently and the rule would not hold.

use crate::domain::Nik;
use sha2::{Digest, Sha256};

/// Bytes of the NIK claim secret every node must share.
pub const NIK_CLAIM_SECRET_BYTES: usize = 32;

/// SHA-256's block size, for HMAC.
const SHA256_BLOCK_BYTES: usize = 64;

/// Names claims: `HMAC-SHA256(secret, "antrean-nik-claim-v1" || NIK as 16 ASCII digits)`, in lowercase hex.
#[derive(Clone)]
pub struct NikHasher {
    secret: [u8; NIK_CLAIM_SECRET_BYTES],
}

impl std::fmt::Debug for NikHasher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("NikHasher { secret: <redacted> }")
    }
}

impl NikHasher {
    /// A hasher keyed with `secret`.
    #[must_use]
    pub fn new(secret: [u8; NIK_CLAIM_SECRET_BYTES]) -> NikHasher {
        NikHasher { secret }
    }

    /// The claim key of `nik`: 64 lowercase hex digits, a valid KV key.
    #[must_use]
    pub fn claim_key(&self, nik: Nik) -> String {
        let message = format!("antrean-nik-claim-v1{:016}", nik.value());
        hex::encode(hmac_sha256(&self.secret, message.as_bytes()))
    }
}

/// HMAC-SHA256 (RFC 2104) with a key no longer than a block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    assert!(key.len() <= SHA256_BLOCK_BYTES, "the claim secret is shorter than a SHA-256 block");
    let mut padded = [0u8; SHA256_BLOCK_BYTES];
    padded[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| padded.map(|key_byte| key_byte ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nik(text: &str) -> Nik {
        Nik::parse(text).expect("a valid NIK")
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_claim_key_is_stable_keyed_and_never_the_nik_in_clear() {
        let applicant = nik("3171014101900001");
        let hasher = NikHasher::new([7; NIK_CLAIM_SECRET_BYTES]);
        let key = hasher.claim_key(applicant);
        assert_eq!(key, NikHasher::new([7; NIK_CLAIM_SECRET_BYTES]).claim_key(applicant), "stable across nodes");
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()), "{key}");
        assert!(!key.contains("3171014101900001") && !key.contains("900001"), "{key}");
        let unkeyed = hex::encode(Sha256::digest(format!("antrean-nik-claim-v1{:016}", applicant.value())));
        assert_ne!(key, unkeyed, "keyed, not a plain hash anyone can recompute");
        assert_ne!(key, NikHasher::new([8; NIK_CLAIM_SECRET_BYTES]).claim_key(applicant), "another secret");
        assert_ne!(key, hasher.claim_key(nik("3171014101900002")), "another NIK");
        assert!(!format!("{hasher:?}").contains('7'), "the secret is never printed");
    }
}
