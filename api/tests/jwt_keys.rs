//! Production JWT verification with public keys: RS256, ES256 and EdDSA, the teams claim name,
//! issuer and audience.

use bichito::auth::JwtVerifier;
use bichito::config::JwtArgs;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn args(public_key: &str, algorithm: &str) -> JwtArgs {
    JwtArgs {
        jwt_public_key_file: Some(fixture(public_key)),
        jwt_algorithm: Some(algorithm.to_owned()),
        jwt_teams_claim: "teams".into(),
        ..JwtArgs::default()
    }
}

fn claims() -> Value {
    json!({"sub": "ana", "teams": ["payments", "web"], "exp": chrono::Utc::now().timestamp() + 600})
}

fn sign(algorithm: Algorithm, key: EncodingKey, claims: &Value) -> String {
    encode(&Header::new(algorithm), claims, &key).expect("sign")
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_their_public_keys() {
    let pem = |name: &str| std::fs::read(fixture(name)).expect("fixture");
    let cases = [
        (
            "rsa_public.pem",
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("rsa"),
        ),
        (
            "ec_public.pem",
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec_private.pem")).expect("ec"),
        ),
        (
            "ed_public.pem",
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed_private.pem")).expect("ed"),
        ),
    ];
    for (public, name, algorithm, private) in cases {
        let verifier = JwtVerifier::from_args(&args(public, name), None).expect("verifier");
        let caller = verifier
            .verify(&sign(algorithm, private, &claims()))
            .await
            .expect(name);
        assert_eq!(caller.user_id, "ana");
        assert_eq!(caller.teams, ["payments", "web"]);
        let forged = sign(
            Algorithm::HS256,
            EncodingKey::from_secret(b"guess"),
            &claims(),
        );
        assert!(
            verifier.verify(&forged).await.is_err(),
            "{name} verifier refuses HS256"
        );
    }
}

#[tokio::test]
async fn the_teams_claim_name_issuer_and_audience_are_configurable() {
    let secret = "shared-secret-shared-secret-shared";
    let verifier = JwtVerifier::from_args(
        &JwtArgs {
            jwt_secret: Some(secret.into()),
            jwt_teams_claim: "https://bichito.dev/teams".into(),
            jwt_issuer: Some("https://id.example".into()),
            jwt_audience: Some("bichito".into()),
            ..JwtArgs::default()
        },
        None,
    )
    .expect("verifier");
    let key = || EncodingKey::from_secret(secret.as_bytes());
    let exp = chrono::Utc::now().timestamp() + 600;
    let good = json!({"sub": "ana", "https://bichito.dev/teams": ["ops"], "iss": "https://id.example", "aud": "bichito", "exp": exp});
    assert_eq!(
        verifier
            .verify(&sign(Algorithm::HS256, key(), &good))
            .await
            .expect("valid")
            .teams,
        ["ops"]
    );
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://evil.example");
    assert!(
        verifier
            .verify(&sign(Algorithm::HS256, key(), &wrong_issuer))
            .await
            .is_err()
    );
    let mut wrong_audience = good;
    wrong_audience["aud"] = json!("other");
    assert!(
        verifier
            .verify(&sign(Algorithm::HS256, key(), &wrong_audience))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_mismatched_key_and_algorithm_is_a_configuration_error() {
    assert!(JwtVerifier::from_args(&args("rsa_public.pem", "HS256"), None).is_err());
    assert!(JwtVerifier::from_args(&args("rsa_public.pem", "XX999"), None).is_err());
    assert!(
        JwtVerifier::from_args(&JwtArgs::default(), None).is_err(),
        "no key at all"
    );
}
