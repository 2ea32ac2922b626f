//! Revocation is immediate in every api process: a key retired with its honeycomb (under
//! `Retain` or `Delete`), or at the end of a rotation's grace, is 401 at once in every server
//! that had it cached; no report is ever stored into a retired honeycomb, and none gets a 5xx.

mod common;

use bichito_core::clock::Clock;
use bichito_core::spec::DeletionPolicy;
use common::*;
use serde_json::Value;

on_both_backends!(
    a_key_retired_under_retain_is_401_at_once_in_every_server,
    a_key_retired_under_delete_is_401_at_once_in_every_server,
    reports_racing_a_retirement_under_retain_are_stored_before_it_or_refused_after_it,
    reports_racing_a_retirement_under_delete_are_never_a_5xx,
    a_rotated_key_is_401_at_once_when_its_grace_ends,
);

async fn widget_info(app: &TestApp, key: &str) -> u16 {
    app.client
        .get(app.url("/api/v1/widget/info"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

/// Two servers on one database, each with the key and its honeycomb cached.
async fn two_warm_servers(backend: Backend) -> (TestApp, TestApp) {
    // Room for the races below: a retirement that takes a while (SQLite's single writer, a
    // loaded machine) must meet 201s and 401s, not the rate limit's 429.
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(100_000);
    spec.quotas.monthly_reports = Some(100_000);
    let first = TestApp::start_with(backend, spec).await;
    let second = first.another_server().await;
    for app in [&first, &second] {
        assert_eq!(app.post_report(&minimal_report()).await.status(), 201);
        assert_eq!(widget_info(app, &app.api_key).await, 200);
    }
    (first, second)
}

async fn retired_key_is_401_everywhere(backend: Backend, policy: DeletionPolicy) {
    let (first, second) = two_warm_servers(backend).await;
    let before = settings_versions(&[&first, &second]).await;
    first
        .store
        .retire_honeycomb("payments", "checkout-web", policy, first.clock.now())
        .await
        .expect("retire")
        .expect("it existed");
    // Reports check their key where they are stored: refused at once, notification or not.
    for app in [&first, &second] {
        let refused = app.post_report(&minimal_report()).await;
        expect_error(refused, 401).await;
    }
    settings_changed(&[&first, &second], &before).await;
    for app in [&first, &second] {
        assert_eq!(widget_info(app, &app.api_key).await, 401);
        expect_error(app.post_report(&minimal_report()).await, 401).await;
    }
    let stored = first
        .store
        .count_bichitos(first.honeycomb_id)
        .await
        .expect("count");
    let expected = if policy == DeletionPolicy::Retain {
        2
    } else {
        0
    };
    assert_eq!(stored, expected, "nothing stored after the retirement");
}

async fn a_key_retired_under_retain_is_401_at_once_in_every_server(backend: Backend) {
    retired_key_is_401_everywhere(backend, DeletionPolicy::Retain).await;
}

/// The example honeycomb is on the free plan: its reports are charged to a usage counter that
/// `Delete` removes with the honeycomb (a report racing it once answered 500).
async fn a_key_retired_under_delete_is_401_at_once_in_every_server(backend: Backend) {
    retired_key_is_401_everywhere(backend, DeletionPolicy::Delete).await;
}

/// Reports sent one after another to a server while the honeycomb is retired through the
/// other: each is 201 or 401, never a 5xx, and every report sent after the retirement returned
/// is 401. Answers whether each was sent after, and its status; the servers are returned too.
async fn race_a_retirement(
    backend: Backend,
    policy: DeletionPolicy,
) -> (Vec<(bool, u16)>, TestApp, TestApp) {
    let (first, second) = two_warm_servers(backend).await;
    let retired = std::sync::atomic::AtomicBool::new(false);
    let sender = async {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            let sent_after = retired.load(std::sync::atomic::Ordering::SeqCst);
            let status = second
                .post_report(&minimal_report())
                .await
                .status()
                .as_u16();
            statuses.push((sent_after, status));
        }
        statuses
    };
    let retire = async {
        // Let some reports through first.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        first
            .store
            .retire_honeycomb("payments", "checkout-web", policy, first.clock.now())
            .await
            .expect("retire");
        retired.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let (statuses, ()) = tokio::join!(sender, retire);
    assert!(
        statuses
            .iter()
            .all(|(_, status)| *status == 201 || *status == 401),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|(sent_after, _)| *sent_after)
            .all(|(_, status)| *status == 401),
        "nothing accepted after the retirement: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|(sent_after, _)| *sent_after),
        "the retirement happened while reports were sent"
    );
    (statuses, first, second)
}

async fn reports_racing_a_retirement_under_retain_are_stored_before_it_or_refused_after_it(
    backend: Backend,
) {
    let (statuses, first, _second) = race_a_retirement(backend, DeletionPolicy::Retain).await;
    let accepted = statuses.iter().filter(|(_, status)| *status == 201).count();
    let stored = first
        .store
        .count_bichitos(first.honeycomb_id)
        .await
        .expect("count");
    assert_eq!(
        usize::try_from(stored).expect("count"),
        accepted + 2,
        "every 201 stored (and the two warm-up reports), nothing else"
    );
}

/// The example honeycomb is on the free plan, whose usage counter goes with the honeycomb.
async fn reports_racing_a_retirement_under_delete_are_never_a_5xx(backend: Backend) {
    let (_statuses, first, _second) = race_a_retirement(backend, DeletionPolicy::Delete).await;
    assert_eq!(
        first
            .store
            .count_bichitos(first.honeycomb_id)
            .await
            .expect("count"),
        0
    );
}

async fn a_rotated_key_is_401_at_once_when_its_grace_ends(backend: Backend) {
    let (first, second) = two_warm_servers(backend).await;
    let old_key = first.api_key.clone();
    let mut spec = example_spec();
    spec.api_key.rotate = Some("2026-12-01".into());
    spec.api_key.grace_period = Some("0s".into());
    let before = settings_versions(&[&first, &second]).await;
    let new_key = first.reapply(&spec).await;
    for app in [&first, &second] {
        expect_error(
            app.post_report_with_key(&old_key, &minimal_report()).await,
            401,
        )
        .await;
    }
    settings_changed(&[&first, &second], &before).await;
    for app in [&first, &second] {
        assert_eq!(widget_info(app, &old_key).await, 401);
        let created = app.post_report_with_key(&new_key, &minimal_report()).await;
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.expect("json");
        assert_eq!(body["project_id"], first.honeycomb_id);
    }
}
