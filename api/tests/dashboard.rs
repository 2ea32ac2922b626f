//! `GET /api/v1/bugs/{id}` with dashboard JWTs: team scoping and every token rejection.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

on_both_backends!(
    a_member_reads_a_bichito_of_its_team,
    a_bichito_of_another_team_is_404_like_a_missing_one,
    bad_tokens_are_401,
);

async fn created_id(app: &TestApp) -> i64 {
    app.post_report(&minimal_report())
        .await
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_i64()
        .expect("id")
}

async fn a_member_reads_a_bichito_of_its_team(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = created_id(&app).await;
    let response = app.get_bug(id, &app.token(&["other", "payments"])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json")["id"], id);
}

async fn a_bichito_of_another_team_is_404_like_a_missing_one(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = created_id(&app).await;
    let foreign = expect_error(app.get_bug(id, &app.token(&["marketing"])).await, 404).await;
    let missing = expect_error(app.get_bug(id + 1000, &app.token(&["payments"])).await, 404).await;
    assert_eq!(foreign, missing, "existence does not leak");
    expect_error(app.get_bug(id, &app.token(&[])).await, 404).await;
    let not_a_number = app
        .client
        .get(app.url("/api/v1/bugs/abc"))
        .bearer_auth(app.token(&["payments"]))
        .send()
        .await
        .expect("sent");
    expect_error(not_a_number, 404).await;
}

fn claims(exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "user-1", "teams": ["payments"], "iat": now, "exp": now + exp_offset})
}

/// Valid claims whose `nbf` lies `seconds` ahead.
fn not_yet_valid(seconds: i64) -> Value {
    let mut claims = claims(600);
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + seconds);
    claims
}

fn sign(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

async fn bad_tokens_are_401(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = created_id(&app).await;
    assert_eq!(
        app.get_bug(id, &sign(Algorithm::HS256, JWT_SECRET, &claims(600)))
            .await
            .status(),
        200,
        "control"
    );
    assert_eq!(
        app.get_bug(id, &sign(Algorithm::HS256, JWT_SECRET, &not_yet_valid(10)))
            .await
            .status(),
        200,
        "an `nbf` within the 30 s clock-skew leeway is accepted"
    );

    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(600).to_string())
    );
    let rsa_signed = encode(
        &Header::new(Algorithm::RS256),
        &claims(600),
        &EncodingKey::from_rsa_pem(include_bytes!("fixtures/jwt/rsa_private.pem"))
            .expect("rsa key"),
    )
    .expect("sign");
    let mut no_sub = claims(600);
    no_sub.as_object_mut().expect("object").remove("sub");
    let cases = [
        (
            "expired",
            sign(Algorithm::HS256, JWT_SECRET, &claims(-3600)),
        ),
        ("alg none", unsigned),
        (
            "wrong algorithm (HS512)",
            sign(Algorithm::HS512, JWT_SECRET, &claims(600)),
        ),
        ("wrong algorithm (RS256)", rsa_signed),
        (
            "wrong key",
            sign(
                Algorithm::HS256,
                "another-secret-another-secret-another",
                &claims(600),
            ),
        ),
        ("no sub", sign(Algorithm::HS256, JWT_SECRET, &no_sub)),
        (
            "not valid before a minute from now",
            sign(Algorithm::HS256, JWT_SECRET, &not_yet_valid(60)),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, token) in cases {
        let response = app.get_bug(id, &token).await;
        assert_eq!(response.status(), 401, "{case}");
        expect_error(response, 401).await;
    }
    let anonymous = app
        .client
        .get(app.url(&format!("/api/v1/bugs/{id}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    expect_error(anonymous, 401).await;
    let basic = app
        .client
        .get(app.url(&format!("/api/v1/bugs/{id}")))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .expect("sent");
    expect_error(basic, 401).await;
}
