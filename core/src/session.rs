//! Dashboard sessions and the one-time sign-ins that open them. A session is named by a
//! random secret that only its holder's cookie carries; the store keeps the secret's SHA-256
//! ([`secret_hash`]), so reading the database, the logs or the bus signs no one in.

use chrono::{DateTime, Utc};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// A signed-in person: who, on which teams, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie's secret.
    pub id_hash: String,
    pub user_id: String,
    pub teams: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SessionRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A sign-in in flight, used once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A development link (`/login?code=…`): whom it signs in.
    Link {
        user_id: String,
        teams: Vec<String>,
        return_to: String,
        expires_at: DateTime<Utc>,
    },
    /// An OpenID Connect login between the redirect to the provider and its callback.
    Oidc {
        verifier: String,
        nonce: String,
        return_to: String,
        expires_at: DateTime<Utc>,
    },
}

impl SignIn {
    pub fn expires_at(&self) -> DateTime<Utc> {
        match self {
            SignIn::Link { expires_at, .. } | SignIn::Oidc { expires_at, .. } => *expires_at,
        }
    }
}

/// A new random secret (256 bits, URL-safe): a session's, a link's code, a stream ticket.
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// How a secret is stored and looked up: its SHA-256, in hex. The secrets are random 256-bit
/// values, so a plain hash is enough (nothing to guess, nothing to stretch).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_stored_only_as_their_hash() {
        let one = new_secret("s_");
        let two = new_secret("s_");
        assert_ne!(one, two);
        assert!(one.starts_with("s_") && one.len() == 66, "{one}");
        let hash = secret_hash(&one);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&one[2..]));
        assert_eq!(hash, secret_hash(&one));
    }
}
