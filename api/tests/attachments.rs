//! Attachments (seed 002's two-step flow), the same contract on a real S3-compatible server
//! (the one `scripts/test.sh` starts; a bucket per test) and on the local folder whose signed
//! URLs the api serves itself, each read from outside: an HTTP client for the api and for the
//! upload URL, an SSE client for the team stream, and the storage listed directly.

mod common;

use bichito_core::clock::{Clock, truncate_to_millis};
use chrono::TimeDelta;
use common::*;
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use std::pin::Pin;
use std::time::Duration;

macro_rules! on_every_storage {
    ($($name:ident),* $(,)?) => {
        mod s3_postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres, super::StorageKind::S3).await })*
        }
        mod local_sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite, super::StorageKind::Local).await })*
        }
        mod local_postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres, super::StorageKind::Local).await })*
        }
    };
}

on_every_storage!(
    the_round_trip_stamps_the_attachment_announces_it_and_serves_it_to_dashboards,
    a_type_other_than_png_jpeg_or_webp_is_400_and_nothing_is_recorded,
    more_than_2_mb_is_400,
    a_body_of_another_length_than_declared_is_refused_by_the_store,
    a_type_other_than_the_signed_one_is_refused_by_the_store,
    an_expired_upload_url_is_refused_by_the_store,
    bytes_that_are_not_the_declared_image_are_rejected_and_may_be_retried,
    a_second_attachment_is_409,
    deleting_the_bichito_deletes_its_objects,
    an_upload_is_stamped_without_the_completion_call_when_a_dashboard_reads_it,
    an_upload_url_that_expires_unused_is_rejected_by_the_sweeper,
    only_the_bichitos_own_key_may_attach,
    an_upload_url_reused_after_the_check_cannot_change_the_attachment,
    an_object_written_behind_the_urls_back_is_checked_all_the_same,
);

const TEAM: &str = "payments";

/// A PNG signature padded to `len` bytes: enough for the checks, which read only the head.
fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len, 0x42);
    bytes
}

async fn start(backend: Backend, storage: StorageKind) -> (TestApp, i64) {
    let app = TestApp::start_with_storage(backend, storage).await;
    let created: Value = app
        .post_report(&minimal_report())
        .await
        .json()
        .await
        .expect("report JSON");
    let id = created["id"].as_i64().expect("id");
    (app, id)
}

async fn ask_with_key(app: &TestApp, key: &str, id: i64, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/bugs/{id}/attachments")))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn ask(app: &TestApp, id: i64, body: &Value) -> reqwest::Response {
    ask_with_key(app, &app.api_key, id, body).await
}

fn upload_spec(len: usize) -> Value {
    json!({"filename": "Screen shot 1.png", "content_type": "image/png", "content_length": len})
}

/// An upload ticket for a PNG of `len` bytes.
async fn upload_ticket(app: &TestApp, id: i64, len: usize) -> Value {
    let response = ask(app, id, &upload_spec(len)).await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("ticket JSON")
}

/// PUTs `bytes` to the ticket's URL with `content_type`; the client sets the real length.
async fn put_as(app: &TestApp, ticket: &Value, content_type: &str, bytes: Vec<u8>) -> u16 {
    assert_eq!(ticket["method"], "PUT");
    app.client
        .put(ticket["url"].as_str().expect("url"))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("upload sent")
        .status()
        .as_u16()
}

async fn put(app: &TestApp, ticket: &Value, bytes: Vec<u8>) -> u16 {
    let content_type = ticket["headers"]["content-type"]
        .as_str()
        .expect("signed content type")
        .to_owned();
    put_as(app, ticket, &content_type, bytes).await
}

async fn complete(app: &TestApp, id: i64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/bugs/{id}/attachments/complete")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .expect("request sent")
}

async fn dashboard_view(app: &TestApp, id: i64) -> Value {
    let response = app.get_bug(id, &app.token(&[TEAM])).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("bichito JSON")
}

/// Waits until the storage holds exactly `expected` (the sweeper works in the background).
async fn objects_become(app: &TestApp, expected: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names = app.objects.names().await;
        if names == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "storage holds {names:?}, expected {expected:?}"
        );
        app.state.attachments.wake_sweeper();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key_of(ticket: &Value) -> String {
    let url = ticket["url"].as_str().expect("url");
    let path = url.split('?').next().expect("path");
    path.rsplit('/').next().expect("key").to_owned()
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn open_stream(app: &TestApp) -> Events {
    let url = app.stream_url(&format!(
        "/api/v1/teams/{TEAM}/stream?token={}&types=bug.updated",
        app.token(&[TEAM])
    ));
    let response = app.client.get(url).send().await.expect("stream request");
    assert_eq!(response.status(), 200);
    let mut events: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.expect("well-formed SSE")),
    );
    assert_eq!(next_event(&mut events).await.event, "hello");
    events
}

async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
}

async fn the_round_trip_stamps_the_attachment_announces_it_and_serves_it_to_dashboards(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let mut events = open_stream(&app).await;
    let image = png(70_000);
    let ticket = upload_ticket(&app, id, image.len()).await;
    assert_eq!(ticket["headers"]["content-type"], "image/png");
    assert_eq!(ticket["headers"]["content-length"], "70000");
    assert_eq!(
        ticket["complete_url"],
        format!("/api/v1/bugs/{id}/attachments/complete")
    );
    let expires_at: chrono::DateTime<chrono::Utc> = ticket["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    assert_eq!(
        expires_at - truncate_to_millis(app.clock.now()),
        TimeDelta::minutes(15)
    );
    assert!(
        dashboard_view(&app, id).await["attachment"].is_null(),
        "nothing is shown before the upload"
    );

    assert_eq!(put(&app, &ticket, image.clone()).await, 200);
    let response = complete(&app, id).await;
    assert_eq!(response.status(), 200);
    let completed: Value = response.json().await.expect("bichito JSON");
    let attachment = &completed["attachment"];
    assert_eq!(attachment["filename"], "Screen shot 1.png");
    assert_eq!(attachment["content_type"], "image/png");
    assert_eq!(attachment["content_length"], 70_000);
    assert!(attachment["uploaded_at"].is_string());
    assert!(
        attachment.get("download").is_none(),
        "the reporter's key gets no download URL"
    );
    assert_eq!(completed["updated_at"], attachment["uploaded_at"]);

    let event = next_event(&mut events).await;
    assert_eq!(event.event, "bug.updated");
    let data: Value = serde_json::from_str(&event.data).expect("event JSON");
    assert_eq!(
        data,
        json!({"bug_id": id, "project_id": app.honeycomb_id, "changes": {"attachment": attachment}})
    );

    let view = dashboard_view(&app, id).await;
    let download = &view["attachment"]["download"];
    let url = download["url"]
        .as_str()
        .expect("a download URL for dashboards");
    let expires: chrono::DateTime<chrono::Utc> = download["expires_at"]
        .as_str()
        .expect("download expiry")
        .parse()
        .expect("RFC 3339");
    assert_eq!(
        expires - truncate_to_millis(app.clock.now()),
        TimeDelta::minutes(5)
    );
    let fetched = app.client.get(url).send().await.expect("download");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    let disposition = fetched.headers()["content-disposition"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''Screen%20shot%201%2Epng"),
        "{disposition}"
    );
    assert_eq!(fetched.bytes().await.expect("bytes").to_vec(), image);

    let list: Value = app
        .client
        .get(app.url(&format!("/api/v1/teams/{TEAM}/bugs")))
        .bearer_auth(app.token(&[TEAM]))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("page JSON");
    assert!(list["items"][0]["attachment"]["download"]["url"].is_string());
    assert!(
        app.state
            .metrics
            .render()
            .contains("bichito_attachments_total{outcome=\"uploaded\"} 1")
    );

    // The stored copy stays; the upload object goes once its URL is dead.
    let key = key_of(&ticket);
    app.clock.advance(TimeDelta::minutes(16));
    objects_become(&app, &[format!("attachments/{key}")]).await;
    if storage == StorageKind::Local {
        // S3 judges expiry by its own clock, which the test cannot move.
        let stale = app.client.get(url).send().await.expect("download");
        expect_error(stale, 403).await;
    }
    // Back to real time, which S3 signatures are checked against.
    app.clock.advance(TimeDelta::minutes(-16));
    let fresh = dashboard_view(&app, id).await["attachment"]["download"]["url"]
        .as_str()
        .expect("a new download URL")
        .to_owned();
    let again = app.client.get(&fresh).send().await.expect("download");
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.expect("bytes").to_vec(), image);
}

async fn a_type_other_than_png_jpeg_or_webp_is_400_and_nothing_is_recorded(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    for content_type in [
        "image/gif",
        "image/svg+xml",
        "text/plain",
        "application/pdf",
    ] {
        let response = ask(
            &app,
            id,
            &json!({"filename": "x", "content_type": content_type, "content_length": 10}),
        )
        .await;
        let body = expect_error(response, 400).await;
        assert_eq!(sorted_fields(&body), ["content_type"], "{content_type}");
    }
    for content_type in ["image/png", "image/jpeg", "image/webp"] {
        let response = ask(
            &app,
            id,
            &json!({"filename": "x", "content_type": content_type, "content_length": 10}),
        )
        .await;
        assert_eq!(response.status(), 201, "{content_type} is allowed");
    }
    let response = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/attachments")))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    expect_error(response, 400).await;
    assert!(app.objects.names().await.is_empty());
}

async fn more_than_2_mb_is_400(backend: Backend, storage: StorageKind) {
    let (app, id) = start(backend, storage).await;
    let body = expect_error(ask(&app, id, &upload_spec(2 * 1024 * 1024 + 1)).await, 400).await;
    assert_eq!(sorted_fields(&body), ["content_length"]);
    let body = expect_error(ask(&app, id, &upload_spec(0)).await, 400).await;
    assert_eq!(sorted_fields(&body), ["content_length"]);
    assert!(app.store.attachment(id).await.expect("read").is_none());

    // Exactly 2 MB is allowed, and goes all the way.
    let image = png(2 * 1024 * 1024);
    let ticket = upload_ticket(&app, id, image.len()).await;
    assert_eq!(put(&app, &ticket, image).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
}

async fn a_body_of_another_length_than_declared_is_refused_by_the_store(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let ticket = upload_ticket(&app, id, 1000).await;
    assert_eq!(put(&app, &ticket, png(1001)).await, 403);
    assert_eq!(put(&app, &ticket, png(999)).await, 403);
    assert!(app.objects.names().await.is_empty(), "nothing was stored");
    let body = expect_error(complete(&app, id).await, 409).await;
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("nothing has been uploaded"),
        "{body}"
    );
    assert!(dashboard_view(&app, id).await["attachment"].is_null());

    // The same URL still takes the declared length.
    assert_eq!(put(&app, &ticket, png(1000)).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
}

async fn a_type_other_than_the_signed_one_is_refused_by_the_store(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put_as(&app, &ticket, "image/jpeg", png(100)).await, 403);
    assert!(app.objects.names().await.is_empty());
}

async fn an_expired_upload_url_is_refused_by_the_store(backend: Backend, storage: StorageKind) {
    let (app, id) = start(backend, storage).await;
    // A URL signed an hour ago, valid for 15 minutes.
    app.clock.advance(TimeDelta::hours(-1));
    let ticket = upload_ticket(&app, id, 100).await;
    app.clock.advance(TimeDelta::hours(1));
    assert_eq!(put(&app, &ticket, png(100)).await, 403);
    assert!(app.objects.names().await.is_empty());
    let body = expect_error(complete(&app, id).await, 422).await;
    assert!(
        body["error"].as_str().expect("message").contains("expired"),
        "{body}"
    );
    // A new URL works.
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put(&app, &ticket, png(100)).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
}

async fn bytes_that_are_not_the_declared_image_are_rejected_and_may_be_retried(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let mut text = b"<svg onload=alert(1)>".to_vec();
    text.resize(500, b' ');
    let first = upload_ticket(&app, id, 500).await;
    assert_eq!(
        put(&app, &first, text).await,
        200,
        "the store takes any bytes"
    );
    let body = expect_error(complete(&app, id).await, 422).await;
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("not a PNG image"),
        "{body}"
    );
    assert!(dashboard_view(&app, id).await["attachment"].is_null());
    // Asking again answers the same.
    expect_error(complete(&app, id).await, 422).await;

    // A JPEG declared as a PNG is refused too.
    let second = upload_ticket(&app, id, 200).await;
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(200, 0);
    assert_eq!(put(&app, &second, jpeg).await, 200);
    expect_error(complete(&app, id).await, 422).await;

    let third = upload_ticket(&app, id, 300).await;
    assert_eq!(put(&app, &third, png(300)).await, 200);
    let done: Value = complete(&app, id).await.json().await.expect("JSON");
    assert_eq!(done["attachment"]["content_length"], 300);
    assert!(
        app.state
            .metrics
            .render()
            .contains("bichito_attachments_total{outcome=\"rejected\"} 2")
    );

    // Refused uploads leave nothing behind once their URLs are dead.
    app.clock.advance(TimeDelta::minutes(16));
    objects_become(&app, &[format!("attachments/{}", key_of(&third))]).await;
}

async fn a_second_attachment_is_409(backend: Backend, storage: StorageKind) {
    let (app, id) = start(backend, storage).await;
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put(&app, &ticket, png(100)).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
    let body = expect_error(ask(&app, id, &upload_spec(100)).await, 409).await;
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("already has an attachment"),
        "{body}"
    );
    // Completing again is harmless: the same bichito.
    assert_eq!(complete(&app, id).await.status(), 200);
}

async fn deleting_the_bichito_deletes_its_objects(backend: Backend, storage: StorageKind) {
    let (app, id) = start(backend, storage).await;
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put(&app, &ticket, png(100)).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
    let key = key_of(&ticket);
    assert_eq!(
        app.objects.names().await,
        [format!("attachments/{key}"), format!("uploads/{key}")]
    );
    let download = dashboard_view(&app, id).await["attachment"]["download"]["url"]
        .as_str()
        .expect("url")
        .to_owned();

    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(app.token(&[TEAM]))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    // The image goes at once; the upload object when its URL can no longer write it.
    objects_become(&app, &[format!("uploads/{key}")]).await;
    assert_eq!(
        app.client
            .get(&download)
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
    app.clock.advance(TimeDelta::minutes(16));
    objects_become(&app, &[]).await;
}

async fn an_upload_is_stamped_without_the_completion_call_when_a_dashboard_reads_it(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let mut events = open_stream(&app).await;
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put(&app, &ticket, png(100)).await, 200);
    let view = dashboard_view(&app, id).await;
    assert_eq!(view["attachment"]["content_length"], 100);
    assert!(view["attachment"]["download"]["url"].is_string());
    let event = next_event(&mut events).await;
    assert_eq!(event.event, "bug.updated");
    assert!(event.data.contains("\"attachment\""));
}

async fn an_upload_url_that_expires_unused_is_rejected_by_the_sweeper(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    // A URL signed an hour ago, valid for 15 minutes: the store's clock is the real one.
    app.clock.advance(TimeDelta::hours(-1));
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(
        expect_error(complete(&app, id).await, 409).await["error"]
            .as_str()
            .map(|m| m.contains("nothing has been uploaded")),
        Some(true),
        "pending while the URL lives"
    );
    app.clock.advance(TimeDelta::hours(1));
    bichito::attachments::sweeper::sweep(&app.state.settling())
        .await
        .expect("sweep");
    let record = app
        .store
        .attachment(id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(
        record.rejection.as_deref(),
        Some("no upload arrived before the upload URL expired")
    );
    expect_error(complete(&app, id).await, 422).await;
    assert_eq!(put(&app, &ticket, png(100)).await, 403, "the URL is dead");
}

async fn only_the_bichitos_own_key_may_attach(backend: Backend, storage: StorageKind) {
    let (app, id) = start(backend, storage).await;
    let mut spec = example_spec();
    spec.display_name = Some("Other".into());
    let other = bichito_core::provision::provision(
        &*app.store,
        "payments",
        "other-web",
        &spec,
        None,
        app.clock.now(),
    )
    .await
    .expect("provision another honeycomb");
    expect_error(
        ask_with_key(&app, &other.api_key, id, &upload_spec(10)).await,
        404,
    )
    .await;
    expect_error(ask(&app, id + 1000, &upload_spec(10)).await, 404).await;
    expect_error(
        ask_with_key(&app, "sk_nope", id, &upload_spec(10)).await,
        401,
    )
    .await;
    let unauthenticated = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/attachments")))
        .json(&upload_spec(10))
        .send()
        .await
        .expect("sent");
    expect_error(unauthenticated, 401).await;
    assert!(app.store.attachment(id).await.expect("read").is_none());
}

async fn an_upload_url_reused_after_the_check_cannot_change_the_attachment(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let image = png(100);
    let ticket = upload_ticket(&app, id, 100).await;
    assert_eq!(put(&app, &ticket, image.clone()).await, 200);
    assert_eq!(complete(&app, id).await.status(), 200);
    let mut other = b"\x89PNG\r\n\x1a\nother".to_vec();
    other.resize(100, b'!');
    assert_eq!(put(&app, &ticket, other).await, 200, "the URL lives on");
    let url = dashboard_view(&app, id).await["attachment"]["download"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let served = app.client.get(&url).send().await.expect("download");
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), image);
}

async fn an_object_written_behind_the_urls_back_is_checked_all_the_same(
    backend: Backend,
    storage: StorageKind,
) {
    let (app, id) = start(backend, storage).await;
    let ticket = upload_ticket(&app, id, 100).await;
    let object = format!("uploads/{}", key_of(&ticket));
    app.objects.put(&object, png(150), "image/png").await;
    let body = expect_error(complete(&app, id).await, 422).await;
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("the upload is 150 bytes, not the 100 declared"),
        "{body}"
    );
    if storage == StorageKind::S3 {
        // Only S3 records a content type; the local URL refuses any other at the door.
        let ticket = upload_ticket(&app, id, 100).await;
        let object = format!("uploads/{}", key_of(&ticket));
        app.objects.put(&object, png(100), "image/gif").await;
        let body = expect_error(complete(&app, id).await, 422).await;
        assert!(
            body["error"]
                .as_str()
                .expect("message")
                .contains("content type is image/gif"),
            "{body}"
        );
    }
}

/// A widget uploads from the browser: the local backend's upload URL answers the preflight of a
/// cross-origin PUT from the honeycomb's origins, and only those.
#[tokio::test]
async fn the_local_upload_url_answers_a_browser_preflight() {
    let (app, id) = start(Backend::Sqlite, StorageKind::Local).await;
    let ticket = upload_ticket(&app, id, 100).await;
    let url = ticket["url"].as_str().expect("url");
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://checkout.example.com")
        .await
        .expect("sent");
    assert_eq!(allowed.status(), 204);
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ASCII");
    assert!(methods.contains("PUT"), "{methods}");
    expect_error(preflight("https://evil.example").await.expect("sent"), 403).await;
}
