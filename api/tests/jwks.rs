//! `JWT_JWKS_URL`: tokens verified with the keys an identity provider publishes, fetched again
//! for a key id not seen before, so the provider rotates keys without a restart: tokens of the
//! new key verify at once, and tokens of a key it removed stop verifying.

use axum::Json;
use axum::extract::State;
use bichito::auth::JwtVerifier;
use bichito::config::JwtArgs;
use bichito::error::ApiError;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .expect("fixture")
}

/// A signing key of the provider: its private half and its public JWK, under `kid`.
struct ProviderKey {
    kid: &'static str,
    algorithm: Algorithm,
    private: EncodingKey,
}

impl ProviderKey {
    fn rsa(kid: &'static str) -> Self {
        Self {
            kid,
            algorithm: Algorithm::RS256,
            private: EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("rsa"),
        }
    }

    fn ec(kid: &'static str) -> Self {
        Self {
            kid,
            algorithm: Algorithm::ES256,
            private: EncodingKey::from_ec_pem(&pem("ec_private.pem")).expect("ec"),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.private, self.algorithm).expect("public jwk");
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }

    fn token(&self, sub: &str) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.into());
        let claims =
            json!({"sub": sub, "teams": ["payments"], "exp": chrono::Utc::now().timestamp() + 600});
        encode(&header, &claims, &self.private).expect("sign")
    }
}

/// The provider's key-set endpoint: serves whatever set the test puts, counting fetches.
struct KeySet {
    set: Mutex<JwkSet>,
    fetches: AtomicUsize,
}

async fn serve_keys(keys: Arc<KeySet>) -> String {
    async fn jwks(State(keys): State<Arc<KeySet>>) -> Json<Value> {
        keys.fetches.fetch_add(1, Ordering::SeqCst);
        let set = keys.set.lock().expect("lock").clone();
        Json(serde_json::to_value(set).expect("json"))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("address")
    );
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", axum::routing::get(jwks))
        .with_state(keys);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn verifier(url: &str) -> JwtVerifier {
    let args = JwtArgs {
        jwt_jwks_url: Some(url.into()),
        ..JwtArgs::default()
    };
    JwtVerifier::from_args(&args, None).expect("JWKS config")
}

/// Verifies `token`, retrying for up to 3 s: a new key id fetches the set at most once a
/// second.
async fn eventually_verifies(verifier: &JwtVerifier, token: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match verifier.verify(token).await {
            Ok(caller) => return caller.user_id,
            Err(err) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the new key never verified: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_removed_one_refused_without_a_restart() {
    let old = ProviderKey::rsa("2026-11-old");
    let new = ProviderKey::ec("2026-12-new");
    let keys = Arc::new(KeySet {
        set: Mutex::new(JwkSet {
            keys: vec![old.jwk()],
        }),
        fetches: AtomicUsize::new(0),
    });
    let verifier = verifier(&serve_keys(keys.clone()).await);

    assert_eq!(
        verifier
            .verify(&old.token("ana"))
            .await
            .expect("old key")
            .user_id,
        "ana"
    );
    assert_eq!(
        verifier
            .verify(&old.token("bo"))
            .await
            .expect("cached")
            .user_id,
        "bo"
    );
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1, "the set is kept");

    // The provider rotates: the new key replaces the old one.
    keys.set.lock().expect("lock").keys = vec![new.jwk()];
    assert_eq!(eventually_verifies(&verifier, &new.token("cy")).await, "cy");
    let refused = verifier.verify(&old.token("ana")).await;
    assert!(
        matches!(refused, Err(ApiError::Unauthorized(_))),
        "a removed key verifies nothing: {refused:?}"
    );
}

#[tokio::test]
async fn made_up_key_ids_and_borrowed_kids_verify_nothing_and_cannot_flood_the_provider() {
    let real = ProviderKey::rsa("real");
    let keys = Arc::new(KeySet {
        set: Mutex::new(JwkSet {
            keys: vec![real.jwk()],
        }),
        fetches: AtomicUsize::new(0),
    });
    let verifier = verifier(&serve_keys(keys.clone()).await);
    assert!(verifier.verify(&real.token("ana")).await.is_ok());
    let before = keys.fetches.load(Ordering::SeqCst);
    for attempt in 0..50 {
        let impostor = ProviderKey::ec(Box::leak(format!("kid-{attempt}").into_boxed_str()));
        assert!(verifier.verify(&impostor.token("mallory")).await.is_err());
    }
    let fetched = keys.fetches.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2,
        "50 unknown kids fetched the set {fetched} times"
    );

    // Another key signing under the real key's id, and a token signed with the public key as
    // an HMAC secret: both refused.
    let borrowed = ProviderKey {
        kid: "real",
        ..ProviderKey::ec("x")
    };
    assert!(verifier.verify(&borrowed.token("mallory")).await.is_err());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("real".into());
    let claims = json!({"sub": "mallory", "teams": ["payments"], "exp": chrono::Utc::now().timestamp() + 600});
    let hmac = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(&pem("rsa_public.pem")),
    )
    .expect("sign");
    assert!(verifier.verify(&hmac).await.is_err());
}

#[tokio::test]
async fn an_unreachable_provider_is_503_not_401_and_its_kept_keys_still_verify() {
    // Nothing listens on this port: the set cannot be fetched.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/jwks.json",
        listener.local_addr().expect("address")
    );
    drop(listener);
    let verifier = verifier(&url);
    let key = ProviderKey::rsa("k");
    let answer = verifier.verify(&key.token("ana")).await;
    assert!(
        matches!(answer, Err(ApiError::Unavailable)),
        "the provider is down, not the token bad: {answer:?}"
    );
}
