//! API keys: `sk_live_` + 40 base62 characters (about 238 random bits).
//!
//! Only a SHA-256 hash is stored. A key is found by its prefix (`sk_live_` + 8 characters, also
//! shown in statuses and logs) and then compared in constant time. A fast hash is enough here
//! because the keys are long random strings, not passwords.

use rand::RngExt;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_SCHEME: &str = "sk_live_";

/// The expiry of a key revoked at once (its honeycomb retired, a rotation without grace): the
/// Unix epoch, before any report's time whatever the clocks of the processes involved (an
/// expiry of "now" by the operator's clock would leave the key valid for as long as an api
/// process's clock runs behind).
pub fn revoked() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH
}
const RANDOM_CHARS: usize = 40;
const PREFIX_RANDOM_CHARS: usize = 8;

/// A freshly generated key: the plaintext goes to the caller once, the rest to the database.
#[derive(Clone)]
pub struct GeneratedKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub fn generate() -> GeneratedKey {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let plaintext = format!("{KEY_SCHEME}{random}");
    GeneratedKey {
        prefix: prefix_of(&plaintext).unwrap_or_default().to_owned(),
        hash: hash(&plaintext),
        plaintext,
    }
}

/// The lookup prefix of a well-formed key, or `None` when the string cannot be one of ours.
pub fn prefix_of(key: &str) -> Option<&str> {
    let random = key.strip_prefix(KEY_SCHEME)?;
    if random.len() != RANDOM_CHARS || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&key[..KEY_SCHEME.len() + PREFIX_RANDOM_CHARS])
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Constant-time comparison of a presented key with a stored hash.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_have_a_lookup_prefix() {
        let key = generate();
        assert!(key.plaintext.starts_with("sk_live_"));
        assert_eq!(key.plaintext.len(), 48);
        assert_eq!(prefix_of(&key.plaintext), Some(key.prefix.as_str()));
        assert_eq!(key.prefix.len(), 16);
        assert!(verify(&key.plaintext, &key.hash));
        assert!(!verify(&generate().plaintext, &key.hash));
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(generate().plaintext, generate().plaintext);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        assert_eq!(prefix_of("sk_live_short"), None);
        assert_eq!(
            prefix_of("pk_live_0123456789012345678901234567890123456789"),
            None
        );
        assert_eq!(
            prefix_of("sk_live_01234567890123456789012345678901234567-9"),
            None
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = generate();
        assert!(!format!("{key:?}").contains(&key.plaintext));
    }
}
