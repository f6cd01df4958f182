//! Bearer tokens: 256 random bits, shown once, kept only as a SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes a clawnet token recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "cn_";

/// A fresh token: `cn_` and 64 hex digits (256 bits from the OS generator).
pub fn generate() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{TOKEN_PREFIX}{}", hex::encode(b))
}

/// A short random id naming one token of an agent (for revocation).
pub fn new_token_id() -> String {
    let mut b = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("tok_{}", hex::encode(b))
}

/// The stored form of a token. Lookups go by this hash, so the raw token never
/// needs to be compared, and a leaked store does not leak usable tokens.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two secrets.
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(equal(&a, &a.clone()));
        assert!(!equal(&a, &b));
    }
}
