//! The store's test suite, run against both backends: every test exists once per backend.

use super::*;
use crate::model::{NewBichito, Severity};
use crate::on_both_backends;
use crate::provision::{KeyAction, provision};
use crate::testing::{Backend, TestDatabase, example_spec};
use chrono::{TimeDelta, TimeZone};

on_both_backends!(
    writes_that_add_events_wake_the_outbox_and_reads_do_not,
    provisioning_creates_then_keeps_the_key,
    rotation_keeps_the_old_key_for_the_grace_period,
    a_lost_key_is_replaced_and_the_old_one_expires,
    a_stored_bichito_reads_back_identically,
    the_monthly_cap_refuses_without_storing,
    a_claimed_idempotency_key_replays_instead_of_storing,
    rate_windows_grant_up_to_the_limit_and_restart,
    phantom_ids_are_fresh_ids,
    migrations_can_run_twice,
    reports_stored_together_each_get_their_own_id_and_event,
    a_report_the_database_refuses_does_not_take_the_others_with_it,
    sessions_read_back_and_are_revoked_once,
    a_sign_in_is_taken_once_even_by_concurrent_takers,
    deleting_a_teams_last_honeycomb_removes_the_team_with_an_event,
);

fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn report(honeycomb_id: i64, title: &str) -> NewBichito {
    NewBichito {
        honeycomb_id,
        api_key_id: None,
        team_id: "payments".into(),
        title: title.into(),
        description: "Steps: click. Nothing happens.".into(),
        severity: Severity::High,
        environment: Some("production".into()),
        app_version: Some("1.4.2".into()),
        stack_trace: None,
        url: Some("https://example.com/login".into()),
        user_agent: Some("Mozilla/5.0".into()),
        reporter_email: Some("user@example.com".into()),
        reporter_identifier: Some("user_42".into()),
        extra: Some(
            serde_json::value::RawValue::from_string(r#"{"b": 1, "a": [1.50, "x"]}"#.into())
                .expect("json"),
        ),
        created_at: t0(),
    }
}

/// Inserts every report at once, from tasks spawned together: on the tests' one-threaded
/// runtime they are all queued before a Postgres writer runs, so they go as one batch.
async fn insert_together(
    store: &Arc<dyn Store>,
    reports: &[NewBichito],
) -> Vec<crate::Result<Inserted>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, report) in reports.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move { (index, store.insert_bichito(&report, None, None).await) });
    }
    let mut results: Vec<Option<crate::Result<Inserted>>> = reports.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.expect("insert task");
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|result| result.expect("every insert answered"))
        .collect()
}

fn stored_bichito(result: crate::Result<Inserted>) -> crate::model::Bichito {
    match result {
        Ok(Inserted::Stored(bichito)) => *bichito,
        other => panic!("expected a stored report, got {other:?}"),
    }
}

/// Closes every connection of the database but the one doing it, as a database restart would.
async fn cut_connections(db: &TestDatabase) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&crate::testing::postgres_admin_url())
        .await
        .expect("admin connection");
    let database = db.url.rsplit_once('/').map(|(_, name)| name).expect("name");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert!(!cut.is_empty(), "the store had connections to cut");
}

/// A batch writer keeps its connection between batches (Postgres only). When the database
/// closes it (here as an administrator or a restart would, with a FATAL message), the batch in
/// flight is stored report by report on pooled connections, and the writer does not keep the
/// dead connection: the batches after it are stored too.
#[tokio::test]
async fn reports_are_stored_after_postgres_closed_the_writers_connection() {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let insert = |title: &'static str| {
        let store = store.clone();
        async move {
            store
                .insert_bichito(&report(honeycomb_id, title), None, None)
                .await
        }
    };
    stored_bichito(insert("before").await);
    cut_connections(&db).await;
    stored_bichito(insert("right after").await);
    stored_bichito(insert("after").await);
    stored_bichito(insert("later").await);
    let titles: Vec<String> = store
        .unpublished_events(10)
        .await
        .expect("events")
        .iter()
        .map(|event| {
            serde_json::from_str::<serde_json::Value>(&event.payload).expect("json")["title"]
                .as_str()
                .expect("title")
                .to_owned()
        })
        .collect();
    assert_eq!(titles, ["before", "right after", "after", "later"]);
}

/// Reports wait for the batch writers in a bounded queue (Postgres only): while the writer is
/// stuck, reports queue up to the limit, the next one is refused at once as overloaded with
/// nothing stored, and the queued ones are stored once the writer moves again.
#[tokio::test]
async fn a_full_insert_queue_refuses_reports_without_storing_them() {
    use sqlx::Connection as _;
    use std::task::Poll;
    let db = TestDatabase::postgres().await;
    let settings = PoolSettings {
        // One batch writer (a quarter of the pool), and room for two waiting reports.
        max_connections: 4,
        timeout: std::time::Duration::from_secs(60),
        insert_queue: 2,
    };
    let store = connect(&db.url, settings).await.expect("connect");
    store.migrate().await.expect("migrate");
    let (honeycomb_id, _) = provisioned(&*store).await;

    // The writer's next batch waits for this lock.
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE bichitos IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .expect("lock");
    let first = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .insert_bichito(&report(honeycomb_id, "taken"), None, None)
                .await
        }
    });
    wait_for_a_statement_waiting_on_a_lock(&db).await;

    // Each polled once: that queues it.
    let second_report = report(honeycomb_id, "queued 1");
    let third_report = report(honeycomb_id, "queued 2");
    let mut second = store.insert_bichito(&second_report, None, None);
    let mut third = store.insert_bichito(&third_report, None, None);
    for queued in [&mut second, &mut third] {
        std::future::poll_fn(|cx| {
            assert!(
                queued.as_mut().poll(cx).is_pending(),
                "queued, not answered"
            );
            Poll::Ready(())
        })
        .await;
    }
    let refused = store
        .insert_bichito(&report(honeycomb_id, "refused"), None, None)
        .await;
    assert!(
        matches!(refused, Err(crate::Error::Overloaded)),
        "a full queue refuses: {refused:?}"
    );
    assert!(refused.is_err_and(|err| err.is_unavailable()));

    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("rollback");
    stored_bichito(first.await.expect("task"));
    stored_bichito(second.await);
    stored_bichito(third.await);
    assert_eq!(store.count_bichitos(honeycomb_id).await.expect("count"), 3);
}

/// Waits (at most 10 s) until a statement of the test's database waits for a lock.
async fn wait_for_a_statement_waiting_on_a_lock(db: &TestDatabase) {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&crate::testing::postgres_admin_url())
        .await
        .expect("admin connection");
    let database = db.url.rsplit_once('/').map(|(_, name)| name).expect("name");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no statement waited for the lock within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn reports_stored_together_each_get_their_own_id_and_event(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let reports: Vec<NewBichito> = (0..40)
        .map(|n| report(honeycomb_id, &format!("report {n}")))
        .collect();

    let mut ids = std::collections::HashSet::new();
    let mut answered = std::collections::HashMap::new();
    for (report, result) in reports.iter().zip(insert_together(&store, &reports).await) {
        let bichito = stored_bichito(result);
        assert_eq!(
            bichito.title, report.title,
            "each answer is its own report's"
        );
        assert!(ids.insert(bichito.id), "ids are distinct");
        let read = store
            .bichito(bichito.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(read.title, report.title, "each id holds its own report");
        answered.insert(bichito.id, bichito);
    }

    // One `bug.created` per report, with the stored report's exact payload, in id order.
    let events = store.unpublished_events(100).await.expect("events");
    assert_eq!(events.len(), reports.len());
    let mut last_id = 0;
    for event in &events {
        assert_eq!(event.event_type, crate::events::EventType::BugCreated);
        let payload: serde_json::Value = serde_json::from_str(&event.payload).expect("json");
        let id = payload["id"].as_i64().expect("an id");
        assert!(id > last_id, "events follow the ids: {id} after {last_id}");
        last_id = id;
        let bichito = answered.get(&id).expect("the event of an answered report");
        assert_eq!(event.payload, serde_json::to_string(bichito).expect("json"));
    }
}

async fn a_report_the_database_refuses_does_not_take_the_others_with_it(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let mut reports: Vec<NewBichito> = (0..5)
        .map(|n| report(honeycomb_id, &format!("good {n}")))
        .collect();
    // No such honeycomb: the foreign key refuses this one.
    reports.insert(2, report(honeycomb_id + 1000, "orphan"));

    let results = insert_together(&store, &reports).await;
    let mut stored = 0;
    for (report, result) in reports.iter().zip(results) {
        if report.title == "orphan" {
            assert!(
                matches!(result, Err(crate::Error::Database(_))),
                "the orphan is refused: {result:?}"
            );
            continue;
        }
        let bichito = stored_bichito(result);
        let read = store
            .bichito(bichito.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(read.title, report.title);
        stored += 1;
    }
    assert_eq!(stored, 5);
    assert_eq!(
        store.unpublished_events(100).await.expect("events").len(),
        5
    );
}

async fn provisioned(store: &dyn Store) -> (i64, String) {
    let done = provision(
        store,
        "payments",
        "checkout-web",
        &example_spec(),
        None,
        t0(),
    )
    .await
    .expect("provision");
    (done.honeycomb_id, done.api_key)
}

async fn provisioning_creates_then_keeps_the_key(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let first = provision(
        &*store,
        "payments",
        "checkout-web",
        &example_spec(),
        None,
        t0(),
    )
    .await
    .expect("first");
    assert_eq!(first.key_action, KeyAction::Created);
    let again = provision(
        &*store,
        "payments",
        "checkout-web",
        &example_spec(),
        Some(&first.api_key),
        t0(),
    )
    .await
    .expect("again");
    assert_eq!(again.key_action, KeyAction::Kept);
    assert_eq!(
        (again.honeycomb_id, &again.api_key),
        (first.honeycomb_id, &first.api_key)
    );

    let honeycomb = store
        .honeycomb(first.honeycomb_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(honeycomb.team_id, "payments");
    assert_eq!(honeycomb.reports_per_minute, Some(60));
    assert_eq!(honeycomb.monthly_cap(), Some(1000));
    assert_eq!(honeycomb.blocklist.len(), 2);
    assert!(honeycomb.allows_origin("https://checkout.example.com"));
    assert!(!honeycomb.allows_origin("https://evil.example"));

    let record = store
        .api_key_by_prefix(&first.key_prefix)
        .await
        .expect("lookup")
        .expect("key stored");
    assert_ne!(record.hash, first.api_key, "only the hash is stored");
    assert!(crate::keys::verify(&first.api_key, &record.hash));
    assert_eq!(store.all_allowed_origins().await.expect("origins").len(), 2);
}

async fn rotation_keeps_the_old_key_for_the_grace_period(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (_, old_key) = provisioned(&*store).await;
    let mut spec = example_spec();
    spec.api_key.rotate = Some("2026-12-01".into());
    let later = t0() + TimeDelta::hours(1);
    let rotated = provision(
        &*store,
        "payments",
        "checkout-web",
        &spec,
        Some(&old_key),
        later,
    )
    .await
    .expect("rotate");
    assert_eq!(rotated.key_action, KeyAction::Rotated);
    assert_ne!(rotated.api_key, old_key);

    let old = store
        .api_key_by_prefix(crate::keys::prefix_of(&old_key).expect("prefix"))
        .await
        .expect("lookup")
        .expect("old key still stored");
    assert_eq!(old.expires_at, Some(later + TimeDelta::hours(24)));
    assert!(old.is_valid_at(later + TimeDelta::hours(23)));
    assert!(!old.is_valid_at(later + TimeDelta::hours(24)));
    let new = store
        .api_key_by_prefix(&rotated.key_prefix)
        .await
        .expect("lookup")
        .expect("new key");
    assert_eq!(new.expires_at, None);

    let again = provision(
        &*store,
        "payments",
        "checkout-web",
        &spec,
        Some(&rotated.api_key),
        later,
    )
    .await
    .expect("again");
    assert_eq!(
        again.key_action,
        KeyAction::Kept,
        "the same rotate value does not rotate twice"
    );
}

async fn a_lost_key_is_replaced_and_the_old_one_expires(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (_, old_key) = provisioned(&*store).await;
    let replaced = provision(
        &*store,
        "payments",
        "checkout-web",
        &example_spec(),
        None,
        t0(),
    )
    .await
    .expect("replace");
    assert_eq!(replaced.key_action, KeyAction::Created);
    let old = store
        .api_key_by_prefix(crate::keys::prefix_of(&old_key).expect("prefix"))
        .await
        .expect("lookup")
        .expect("old key");
    assert_eq!(old.expires_at, Some(t0() + TimeDelta::hours(24)));
}

async fn a_stored_bichito_reads_back_identically(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let Inserted::Stored(created) = store
        .insert_bichito(&report(honeycomb_id, "Login"), None, None)
        .await
        .expect("insert")
    else {
        panic!("expected the report to be stored");
    };
    let read = store
        .bichito(created.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.comment_count, Some(0));
    assert_eq!(
        serde_json::to_string(&read).expect("json"),
        serde_json::to_string(&created).expect("json")
    );
    assert_eq!(
        read.extra.as_ref().map(|extra| extra.get()),
        Some(r#"{"b": 1, "a": [1.50, "x"]}"#)
    );
    assert!(
        store
            .bichito(created.id + 1000)
            .await
            .expect("read")
            .is_none()
    );
}

async fn the_monthly_cap_refuses_without_storing(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    for title in ["one", "two"] {
        let outcome = store
            .insert_bichito(&report(honeycomb_id, title), Some(2), None)
            .await
            .expect("insert");
        assert!(matches!(outcome, Inserted::Stored(_)));
    }
    let third = store
        .insert_bichito(&report(honeycomb_id, "three"), Some(2), None)
        .await
        .expect("insert");
    assert!(matches!(third, Inserted::OverCap));
    assert_eq!(store.count_bichitos(honeycomb_id).await.expect("count"), 2);
    assert_eq!(
        store
            .monthly_usage(honeycomb_id, "2026-11")
            .await
            .expect("usage"),
        2
    );
}

async fn a_claimed_idempotency_key_replays_instead_of_storing(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let claim = IdempotencyClaim {
        honeycomb_id,
        key: "retry-1".into(),
        request_hash: "h1".into(),
        created_at: t0(),
        not_before: t0() - TimeDelta::hours(24),
    };
    let Inserted::Stored(first) = store
        .insert_bichito(&report(honeycomb_id, "a"), Some(1000), Some(&claim))
        .await
        .expect("insert")
    else {
        panic!("first insert stores");
    };
    let Inserted::Replay(replay) = store
        .insert_bichito(&report(honeycomb_id, "a"), Some(1000), Some(&claim))
        .await
        .expect("insert")
    else {
        panic!("second insert replays");
    };
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body, serde_json::to_string(&first).expect("json"));
    assert_eq!(store.count_bichitos(honeycomb_id).await.expect("count"), 1);
    assert_eq!(
        store
            .monthly_usage(honeycomb_id, "2026-11")
            .await
            .expect("usage"),
        1,
        "a replay is not charged"
    );

    let expired = IdempotencyClaim {
        created_at: t0() + TimeDelta::hours(25),
        not_before: t0() + TimeDelta::hours(1),
        ..claim
    };
    assert!(matches!(
        store
            .insert_bichito(&report(honeycomb_id, "a"), None, Some(&expired))
            .await
            .expect("insert"),
        Inserted::Stored(_)
    ));
    assert_eq!(
        store
            .purge_idempotency(t0() + TimeDelta::hours(26))
            .await
            .expect("purge"),
        1
    );
}

async fn rate_windows_grant_up_to_the_limit_and_restart(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let start = 1_000_000;
    let take = |bucket: &'static str, want: i64, limit: i64, at: i64| {
        let store = store.clone();
        async move {
            store
                .take_rate(bucket, want, limit, at, 60_000)
                .await
                .expect("take")
        }
    };
    assert_eq!(
        take("key:1", 4, 10, start).await,
        RateGrant {
            started_ms: start,
            granted: 4,
            hits: 4
        },
        "the first take opens the window"
    );
    assert_eq!(take("key:1", 4, 10, start + 10).await.granted, 4);
    assert_eq!(
        take("key:1", 4, 10, start + 20).await,
        RateGrant {
            started_ms: start,
            granted: 2,
            hits: 10
        },
        "never past the limit"
    );
    assert_eq!(take("key:1", 1, 10, start + 30).await.granted, 0);
    assert_eq!(
        take("key:2", 3, 10, start).await.hits,
        3,
        "buckets are independent"
    );
    store
        .return_rate("key:1", start, 3)
        .await
        .expect("give back");
    assert_eq!(
        take("key:1", 5, 10, start + 40).await.granted,
        3,
        "what was given back is taken again"
    );
    assert_eq!(
        take("key:1", 5, 20, start + 50).await.granted,
        5,
        "a higher limit grants more in the same window"
    );
    store
        .return_rate("key:1", start - 1, 5)
        .await
        .expect("give back to an ended window");
    assert_eq!(
        take("key:1", 0, 20, start + 60).await.hits,
        15,
        "hits of another window are not given back to this one"
    );
    assert_eq!(
        take("key:1", 30, 20, start + 60_000).await,
        RateGrant {
            started_ms: start + 60_000,
            granted: 20,
            hits: 20
        },
        "a new window starts with what it grants"
    );
}

async fn phantom_ids_are_fresh_ids(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let first_phantom = store.reserve_phantom_id().await.expect("phantom");
    let Inserted::Stored(stored) = store
        .insert_bichito(&report(honeycomb_id, "x"), None, None)
        .await
        .expect("insert")
    else {
        panic!("stored");
    };
    let second_phantom = store.reserve_phantom_id().await.expect("phantom");
    assert!(
        stored.id > first_phantom,
        "a phantom id is never reused by a real report"
    );
    assert!(second_phantom > stored.id);
}

async fn migrations_can_run_twice(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    store
        .migrate()
        .await
        .expect("second migration run is a no-op");
    store.ping().await.expect("ping");
    assert_eq!(
        store.backend(),
        match backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    );
}

mod dashboard {
    use super::*;
    use crate::events::{self, EventType};
    use crate::model::{BichitoPatch, BichitoQuery, Status};
    use serde_json::{Value, json};

    on_both_backends!(
        every_change_writes_its_event_in_the_outbox,
        a_patch_that_changes_nothing_writes_no_event,
        lists_filter_and_page_newest_first,
        retiring_under_retain_revokes_keys_and_keeps_bichitos,
        retiring_under_delete_removes_everything_with_an_event_per_bichito,
        retiring_an_unknown_honeycomb_is_a_no_op,
    );

    pub(super) async fn stored(
        store: &dyn Store,
        honeycomb_id: i64,
        title: &str,
    ) -> crate::model::Bichito {
        match store
            .insert_bichito(&report(honeycomb_id, title), None, None)
            .await
            .expect("insert")
        {
            Inserted::Stored(bichito) => *bichito,
            other => panic!("expected a stored report, got {other:?}"),
        }
    }

    fn payloads(events: &[crate::events::OutboxEvent]) -> Vec<(EventType, Value)> {
        events
            .iter()
            .map(|event| {
                (
                    event.event_type,
                    serde_json::from_str(&event.payload).expect("json"),
                )
            })
            .collect()
    }

    async fn every_change_writes_its_event_in_the_outbox(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, _) = provisioned(&*store).await;
        let bichito = stored(&*store, honeycomb_id, "Login").await;
        let patch = BichitoPatch {
            status: Some(Status::Resolved),
            severity: Some(bichito.severity),
            labels: Some(vec!["safari".into(), "login".into()]),
            assignee: Some(Some("ana".into())),
            duplicate_of: None,
        };
        let later = t0() + TimeDelta::minutes(5);
        let updated = store
            .update_bichito(bichito.id, &patch, later)
            .await
            .expect("update")
            .expect("exists");
        assert_eq!(updated.status, Status::Resolved);
        assert_eq!(updated.labels, ["safari", "login"]);
        assert_eq!(updated.updated_at, later);
        let read = store
            .bichito(bichito.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            serde_json::to_string(&read).expect("json"),
            serde_json::to_string(&updated).expect("json")
        );

        let comment = store
            .add_comment(&updated, "ana", "Fixed in 1.4.3", later)
            .await
            .expect("comment");
        assert_eq!(
            store.comments(bichito.id).await.expect("comments"),
            std::slice::from_ref(&comment)
        );
        assert!(store.delete_bichito(&updated, later).await.expect("delete"));
        assert!(
            !store
                .delete_bichito(&updated, later)
                .await
                .expect("delete again"),
            "already gone"
        );
        assert!(store.bichito(bichito.id).await.expect("read").is_none());

        let events = store.unpublished_events(100).await.expect("events");
        assert_eq!(store.outbox_backlog().await.expect("backlog"), 4);
        store
            .mark_published(&[events[0].id, events[1].id], later)
            .await
            .expect("mark");
        assert_eq!(
            store.unpublished_events(100).await.expect("events"),
            events[2..]
        );
        assert_eq!(store.outbox_backlog().await.expect("backlog"), 2);
        assert_eq!(
            store.purge_published_events(later).await.expect("purge"),
            0,
            "published at `later`, not before"
        );
        assert_eq!(
            store
                .purge_published_events(later + TimeDelta::seconds(1))
                .await
                .expect("purge"),
            2
        );
        assert_eq!(
            store.outbox_backlog().await.expect("backlog"),
            2,
            "unpublished events are kept"
        );
        assert!(events.iter().all(|event| event.team_id == "payments"));
        assert!(
            events.windows(2).all(|pair| pair[0].id < pair[1].id),
            "in order"
        );
        let (id, project) = (bichito.id, honeycomb_id);
        assert_eq!(
            payloads(&events),
            [
                (
                    EventType::BugCreated,
                    serde_json::to_value(&bichito).expect("json")
                ),
                (
                    EventType::BugUpdated,
                    json!({"bug_id": id, "project_id": project,
                    "changes": {"status": "resolved", "assignee": "ana", "labels": ["safari", "login"]}})
                ),
                (
                    EventType::BugCommented,
                    json!({"bug_id": id, "project_id": project, "comment_id": comment.id, "author_id": "ana"})
                ),
                (
                    EventType::BugDeleted,
                    json!({"bug_id": id, "project_id": project})
                ),
            ]
        );
    }

    async fn a_patch_that_changes_nothing_writes_no_event(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, _) = provisioned(&*store).await;
        let bichito = stored(&*store, honeycomb_id, "Login").await;
        let same = BichitoPatch {
            status: Some(Status::Open),
            labels: Some(vec![]),
            assignee: Some(None),
            ..BichitoPatch::default()
        };
        let unchanged = store
            .update_bichito(bichito.id, &same, t0() + TimeDelta::hours(1))
            .await
            .expect("update")
            .expect("exists");
        assert_eq!(unchanged.updated_at, bichito.updated_at);
        assert_eq!(
            store.unpublished_events(100).await.expect("events").len(),
            1,
            "only bug.created"
        );
        assert!(
            store
                .update_bichito(bichito.id + 99, &same, t0())
                .await
                .expect("update")
                .is_none()
        );
    }

    async fn lists_filter_and_page_newest_first(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, _) = provisioned(&*store).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                stored(&*store, honeycomb_id, &format!("report {n}"))
                    .await
                    .id,
            );
        }
        let tag = BichitoPatch {
            labels: Some(vec!["ios".into()]),
            status: Some(Status::InProgress),
            ..BichitoPatch::default()
        };
        store
            .update_bichito(ids[1], &tag, t0())
            .await
            .expect("update");
        store
            .update_bichito(ids[3], &tag, t0())
            .await
            .expect("update");

        let query = |before_id, limit| BichitoQuery {
            team_id: "payments".into(),
            before_id,
            limit,
            ..BichitoQuery::default()
        };
        let page =
            |items: Vec<crate::model::Bichito>| items.iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(
            page(store.list_bichitos(&query(None, 2)).await.expect("list")),
            [ids[4], ids[3]]
        );
        assert_eq!(
            page(
                store
                    .list_bichitos(&query(Some(ids[3]), 2))
                    .await
                    .expect("list")
            ),
            [ids[2], ids[1]]
        );
        assert_eq!(
            page(
                store
                    .list_bichitos(&query(Some(ids[1]), 2))
                    .await
                    .expect("list")
            ),
            [ids[0]]
        );

        let labelled = store
            .list_bichitos(&BichitoQuery {
                label: Some("ios".into()),
                ..query(None, 10)
            })
            .await
            .expect("list");
        assert_eq!(page(labelled.clone()), [ids[3], ids[1]]);
        assert!(labelled.iter().all(|b| b.labels == ["ios"]));
        let in_progress = BichitoQuery {
            status: Some(Status::InProgress),
            ..query(None, 10)
        };
        assert_eq!(
            store.list_bichitos(&in_progress).await.expect("list").len(),
            2
        );
        // Text in the title, ignoring case; LIKE's wildcards are only text.
        let search = |text: &str| BichitoQuery {
            title_contains: Some(text.into()),
            ..query(None, 10)
        };
        assert_eq!(
            page(
                store
                    .list_bichitos(&search("REPORT 3"))
                    .await
                    .expect("list")
            ),
            [ids[3]]
        );
        assert_eq!(
            page(store.list_bichitos(&search("report")).await.expect("list")).len(),
            5
        );
        for wildcard in ["%", "_", "report_", "\\"] {
            assert!(
                store
                    .list_bichitos(&search(wildcard))
                    .await
                    .expect("list")
                    .is_empty(),
                "{wildcard}"
            );
        }
        // Every listed report says how many comments it has.
        let commented = store.bichito(ids[2]).await.expect("read").expect("exists");
        for body in ["one", "two"] {
            store
                .add_comment(&commented, "ana", body, t0())
                .await
                .expect("comment");
        }
        let counts: Vec<_> = store
            .list_bichitos(&query(None, 10))
            .await
            .expect("list")
            .iter()
            .map(|b| b.comment_count)
            .collect();
        assert_eq!(counts, [Some(0), Some(0), Some(2), Some(0), Some(0)]);
        let other_team = BichitoQuery {
            team_id: "marketing".into(),
            ..query(None, 10)
        };
        assert!(
            store
                .list_bichitos(&other_team)
                .await
                .expect("list")
                .is_empty()
        );
    }

    async fn retire(
        store: &dyn Store,
        policy: crate::spec::DeletionPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Retired> {
        store
            .retire_honeycomb("payments", "checkout-web", policy, now)
            .await
            .expect("retire")
    }

    async fn retiring_under_retain_revokes_keys_and_keeps_bichitos(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, key) = provisioned(&*store).await;
        let bichito = stored(&*store, honeycomb_id, "Login").await;
        let prefix = crate::keys::prefix_of(&key).expect("prefix").to_owned();
        let later = t0() + TimeDelta::minutes(5);

        let retired = retire(&*store, crate::spec::DeletionPolicy::Retain, later)
            .await
            .expect("the honeycomb exists");
        assert_eq!(
            retired,
            Retired {
                honeycomb_id,
                revoked_keys: 1,
                deleted_bichitos: 0,
                team_removed: false,
            }
        );
        let record = store
            .api_key_by_prefix(&prefix)
            .await
            .expect("lookup")
            .expect("the key record stays, revoked");
        assert!(!record.is_valid_at(later), "the key no longer works");
        assert!(store.bichito(bichito.id).await.expect("read").is_some());
        assert!(store.honeycomb(honeycomb_id).await.expect("read").is_some());
        let events = store.unpublished_events(100).await.expect("events");
        assert!(
            events
                .iter()
                .all(|event| event.event_type != EventType::BugDeleted),
            "Retain deletes nothing"
        );
        let again = retire(&*store, crate::spec::DeletionPolicy::Retain, later)
            .await
            .expect("still there");
        assert_eq!(again.revoked_keys, 0, "retiring is idempotent");
    }

    async fn retiring_under_delete_removes_everything_with_an_event_per_bichito(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, key) = provisioned(&*store).await;
        let first = stored(&*store, honeycomb_id, "Login").await;
        let second = stored(&*store, honeycomb_id, "Checkout").await;
        let already_published: Vec<i64> = store
            .unpublished_events(100)
            .await
            .expect("events")
            .iter()
            .map(|event| event.id)
            .collect();
        store
            .mark_published(&already_published, t0())
            .await
            .expect("mark");

        let retired = retire(&*store, crate::spec::DeletionPolicy::Delete, t0())
            .await
            .expect("the honeycomb exists");
        assert_eq!(retired.deleted_bichitos, 2);
        assert!(store.bichito(first.id).await.expect("read").is_none());
        assert!(store.bichito(second.id).await.expect("read").is_none());
        assert!(store.honeycomb(honeycomb_id).await.expect("read").is_none());
        let prefix = crate::keys::prefix_of(&key).expect("prefix");
        assert!(
            store
                .api_key_by_prefix(prefix)
                .await
                .expect("lookup")
                .is_none(),
            "keys go with the honeycomb"
        );
        let events = store.unpublished_events(100).await.expect("events");
        assert!(events.iter().all(|event| event.team_id == "payments"));
        let raw: Vec<(EventType, &str)> = events
            .iter()
            .map(|event| (event.event_type, event.payload.as_str()))
            .collect();
        let expected = [
            events::deleted_payload(&first),
            events::deleted_payload(&second),
            events::team_removed_payload("payments"),
        ];
        assert_eq!(
            raw,
            vec![
                (EventType::BugDeleted, expected[0].as_str()),
                (EventType::BugDeleted, expected[1].as_str()),
                // The team's only honeycomb went: the team goes too, after its reports.
                (EventType::TeamRemoved, expected[2].as_str()),
            ],
            "byte for byte the payload the dashboard's own deletes write"
        );
        assert!(retired.team_removed);
        assert!(
            retire(&*store, crate::spec::DeletionPolicy::Delete, t0())
                .await
                .is_none(),
            "nothing left to retire"
        );
    }

    async fn retiring_an_unknown_honeycomb_is_a_no_op(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let retired = store
            .retire_honeycomb(
                "payments",
                "never-applied",
                crate::spec::DeletionPolicy::Delete,
                t0(),
            )
            .await
            .expect("retire");
        assert_eq!(retired, None);
    }
}

mod attachments {
    use super::*;
    use crate::attachment::{AttachmentRecord, AttachmentState, ImageType};
    use crate::events::EventType;

    on_both_backends!(
        a_record_goes_from_pending_to_uploaded_once_with_its_event,
        one_record_per_bichito_and_only_the_named_one_is_replaced,
        a_rejection_schedules_both_objects,
        deleting_schedules_the_image_at_once_and_a_live_upload_at_its_expiry,
        retiring_under_delete_schedules_every_attachment_object,
    );

    fn record(bichito_id: i64, key: &str) -> AttachmentRecord {
        AttachmentRecord {
            bichito_id,
            key: key.into(),
            filename: "shot.png".into(),
            content_type: ImageType::Png,
            content_length: 100,
            created_at: t0(),
            upload_expires_at: t0() + TimeDelta::minutes(15),
            uploaded_at: None,
            rejection: None,
        }
    }

    async fn start(store: &dyn Store, bichito_id: i64, key: &str) -> bool {
        store
            .start_attachment(&record(bichito_id, key), None, t0())
            .await
            .expect("start")
    }

    async fn with_bichito(backend: Backend) -> (TestDatabase, Arc<dyn Store>, i64) {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let (honeycomb_id, _) = provisioned(&*store).await;
        let id = super::dashboard::stored(&*store, honeycomb_id, "Login")
            .await
            .id;
        (db, store, id)
    }

    /// Objects whose deletion is due at `at`, sorted.
    async fn due(store: &dyn Store, at: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let mut objects: Vec<String> = store
            .due_object_deletions(at, 100)
            .await
            .expect("due")
            .into_iter()
            .map(|deletion| deletion.object)
            .collect();
        objects.sort();
        objects.dedup();
        objects
    }

    async fn a_record_goes_from_pending_to_uploaded_once_with_its_event(backend: Backend) {
        let (_db, store, id) = with_bichito(backend).await;
        assert!(start(&*store, id, "1-a").await);
        let pending = store.attachment(id).await.expect("read").expect("record");
        assert_eq!(pending, record(id, "1-a"));
        assert_eq!(pending.state(), AttachmentState::Pending);
        assert!(
            store
                .bichito(id)
                .await
                .expect("read")
                .expect("bichito")
                .attachment
                .is_none()
        );

        let at = t0() + TimeDelta::minutes(1);
        let stamped = store
            .stamp_attachment(id, "1-a", at)
            .await
            .expect("stamp")
            .expect("it was pending");
        let attachment = stamped.attachment.clone().expect("shown once uploaded");
        assert_eq!(attachment.uploaded_at, at);
        assert_eq!(stamped.updated_at, at);
        assert_eq!(
            store
                .bichito(id)
                .await
                .expect("read")
                .expect("bichito")
                .attachment,
            Some(attachment)
        );
        assert!(
            store
                .stamp_attachment(id, "1-a", at)
                .await
                .expect("stamp")
                .is_none()
        );
        assert!(
            !store
                .reject_attachment(id, "1-a", "late", at)
                .await
                .expect("reject")
        );

        let events = store.unpublished_events(100).await.expect("events");
        let last = events.last().expect("an event");
        assert_eq!(last.event_type, EventType::BugUpdated);
        assert_eq!(last.payload, crate::events::attached_payload(&stamped));
        // Only the upload object goes, and only once its URL is dead.
        assert!(due(&*store, at).await.is_empty());
        assert_eq!(
            due(&*store, t0() + TimeDelta::minutes(15)).await,
            ["uploads/1-a"]
        );
        assert_eq!(
            store
                .attachment_by_key("1-a")
                .await
                .expect("read")
                .map(|r| r.state()),
            Some(AttachmentState::Uploaded)
        );
    }

    async fn one_record_per_bichito_and_only_the_named_one_is_replaced(backend: Backend) {
        let (_db, store, id) = with_bichito(backend).await;
        assert!(start(&*store, id, "1-a").await);
        assert!(!start(&*store, id, "1-b").await);
        assert!(
            !store
                .start_attachment(&record(id, "1-b"), Some("1-x"), t0())
                .await
                .expect("start"),
            "another record than the named one stays"
        );
        assert!(
            !store
                .start_attachment(&record(id + 1, "2-a"), None, t0())
                .await
                .expect("start"),
            "no record for a bichito that does not exist"
        );
        let later = t0() + TimeDelta::minutes(20);
        assert!(
            store
                .start_attachment(&record(id, "1-b"), Some("1-a"), later)
                .await
                .expect("replace")
        );
        assert_eq!(
            store
                .attachment(id)
                .await
                .expect("read")
                .expect("record")
                .key,
            "1-b"
        );
        assert_eq!(
            due(&*store, later).await,
            ["attachments/1-a", "uploads/1-a"]
        );

        store
            .stamp_attachment(id, "1-b", later)
            .await
            .expect("stamp")
            .expect("pending");
        assert!(
            !store
                .start_attachment(&record(id, "1-c"), Some("1-b"), later)
                .await
                .expect("start"),
            "an uploaded attachment is never replaced"
        );
    }

    async fn a_rejection_schedules_both_objects(backend: Backend) {
        let (_db, store, id) = with_bichito(backend).await;
        start(&*store, id, "1-a").await;
        assert!(
            store
                .reject_attachment(id, "1-a", "not a PNG", t0())
                .await
                .expect("reject")
        );
        let rejected = store.attachment(id).await.expect("read").expect("record");
        assert_eq!(rejected.state(), AttachmentState::Rejected);
        assert_eq!(rejected.rejection.as_deref(), Some("not a PNG"));
        assert!(
            store
                .stamp_attachment(id, "1-a", t0())
                .await
                .expect("stamp")
                .is_none()
        );
        assert_eq!(due(&*store, t0()).await, ["attachments/1-a"]);
        let expired = t0() + TimeDelta::minutes(15);
        assert_eq!(
            due(&*store, expired).await,
            ["attachments/1-a", "uploads/1-a"]
        );
        let ids: Vec<i64> = store
            .due_object_deletions(expired, 100)
            .await
            .expect("due")
            .iter()
            .map(|deletion| deletion.id)
            .collect();
        store.forget_object_deletions(&ids).await.expect("forget");
        assert!(due(&*store, expired).await.is_empty());
        assert_eq!(
            store
                .expired_uploads(expired + TimeDelta::days(1), 10)
                .await
                .expect("expired")
                .len(),
            0,
            "a rejected record is settled"
        );
    }

    async fn deleting_schedules_the_image_at_once_and_a_live_upload_at_its_expiry(
        backend: Backend,
    ) {
        let (_db, store, id) = with_bichito(backend).await;
        start(&*store, id, "1-a").await;
        assert_eq!(
            store
                .expired_uploads(t0() + TimeDelta::minutes(16), 10)
                .await
                .expect("expired"),
            [record(id, "1-a")]
        );
        let bichito = store.bichito(id).await.expect("read").expect("bichito");
        assert!(store.delete_bichito(&bichito, t0()).await.expect("delete"));
        assert!(
            store.attachment(id).await.expect("read").is_none(),
            "the record goes too"
        );
        assert_eq!(due(&*store, t0()).await, ["attachments/1-a"]);
        assert_eq!(
            due(&*store, t0() + TimeDelta::minutes(15)).await,
            ["attachments/1-a", "uploads/1-a"]
        );
    }

    async fn retiring_under_delete_schedules_every_attachment_object(backend: Backend) {
        let (_db, store, first) = with_bichito(backend).await;
        let honeycomb_id = store
            .bichito(first)
            .await
            .expect("read")
            .expect("b")
            .honeycomb_id;
        let second = super::dashboard::stored(&*store, honeycomb_id, "Checkout")
            .await
            .id;
        start(&*store, first, "1-a").await;
        store
            .stamp_attachment(first, "1-a", t0())
            .await
            .expect("stamp")
            .expect("pending");
        start(&*store, second, "2-a").await;
        store
            .retire_honeycomb(
                "payments",
                "checkout-web",
                crate::spec::DeletionPolicy::Delete,
                t0(),
            )
            .await
            .expect("retire")
            .expect("retired");
        assert_eq!(
            due(&*store, t0()).await,
            ["attachments/1-a", "attachments/2-a"]
        );
        assert_eq!(
            due(&*store, t0() + TimeDelta::minutes(15)).await,
            [
                "attachments/1-a",
                "attachments/2-a",
                "uploads/1-a",
                "uploads/2-a"
            ]
        );
    }
}

/// Whoever publishes the outbox waits on `outbox_written`: every write that adds an event
/// notifies it, reads do not.
async fn writes_that_add_events_wake_the_outbox_and_reads_do_not(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let (honeycomb_id, _) = provisioned(&*store).await;
    let outbox = store
        .outbox_written()
        .expect("the store connect returns signals");
    let woken = || async {
        tokio::time::timeout(std::time::Duration::from_millis(200), outbox.notified())
            .await
            .is_ok()
    };
    let Inserted::Stored(bichito) = store
        .insert_bichito(&report(honeycomb_id, "x"), None, None)
        .await
        .expect("insert")
    else {
        panic!("stored");
    };
    assert!(woken().await, "a new report");
    store.bichito(bichito.id).await.expect("read");
    assert!(!woken().await, "a read");
    store
        .add_comment(&bichito, "ana", "seen", t0())
        .await
        .expect("comment");
    assert!(woken().await, "a comment");
    assert!(store.delete_bichito(&bichito, t0()).await.expect("delete"));
    assert!(woken().await, "a deletion");
}

async fn sessions_read_back_and_are_revoked_once(backend: Backend) {
    use crate::session::SessionRecord;
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let session = SessionRecord {
        id_hash: "ab".repeat(32),
        user_id: "ana".into(),
        teams: vec!["payments".into(), "checkout web".into()],
        created_at: t0(),
        expires_at: t0() + TimeDelta::hours(1),
        revoked_at: None,
    };
    store.insert_session(&session).await.expect("insert");
    let read = store.session(&session.id_hash).await.expect("read");
    assert_eq!(read.as_ref(), Some(&session));
    assert!(session.is_live_at(t0()));
    assert!(!session.is_live_at(t0() + TimeDelta::hours(1)));
    assert_eq!(store.session(&"cd".repeat(32)).await.expect("read"), None);

    let at = t0() + TimeDelta::minutes(5);
    assert!(
        store
            .revoke_session(&session.id_hash, at)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_session(&session.id_hash, at)
            .await
            .expect("again")
    );
    let revoked = store
        .session(&session.id_hash)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(revoked.revoked_at, Some(at));
    assert!(!revoked.is_live_at(at));

    let purged = store
        .purge_sessions(t0() + TimeDelta::hours(2))
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(store.session(&session.id_hash).await.expect("read"), None);
}

async fn a_sign_in_is_taken_once_even_by_concurrent_takers(backend: Backend) {
    use crate::session::SignIn;
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let link = SignIn::Link {
        user_id: "dev".into(),
        teams: vec!["payments".into()],
        return_to: "/inbox".into(),
        expires_at: t0() + TimeDelta::minutes(10),
    };
    let login = SignIn::Oidc {
        verifier: "v".repeat(43),
        nonce: "n1".into(),
        return_to: "/inbox?team=payments".into(),
        expires_at: t0() + TimeDelta::minutes(10),
    };
    store
        .insert_sign_in("link", &link)
        .await
        .expect("insert link");
    store
        .insert_sign_in("login", &login)
        .await
        .expect("insert login");

    let takers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_sign_in("link").await })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        if let Some(sign_in) = taker.await.expect("task").expect("take") {
            taken.push(sign_in);
        }
    }
    assert_eq!(taken, vec![link]);
    assert_eq!(
        store.take_sign_in("login").await.expect("take"),
        Some(login)
    );
    assert_eq!(store.take_sign_in("login").await.expect("again"), None);
}

async fn deleting_a_teams_last_honeycomb_removes_the_team_with_an_event(backend: Backend) {
    use crate::events::{EventType, OutboxEvent};
    use crate::spec::DeletionPolicy;
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let spec = example_spec();
    for name in ["checkout-web", "checkout-ios"] {
        provision(&*store, "payments", name, &spec, None, t0())
            .await
            .expect("provision");
    }
    let team_events = |events: Vec<OutboxEvent>| -> Vec<OutboxEvent> {
        events
            .into_iter()
            .filter(|event| event.event_type == EventType::TeamRemoved)
            .collect()
    };
    // Another honeycomb of the team remains: the team stays.
    let first = store
        .retire_honeycomb("payments", "checkout-web", DeletionPolicy::Delete, t0())
        .await
        .expect("retire")
        .expect("existed");
    assert!(!first.team_removed);
    assert!(team_events(store.unpublished_events(100).await.expect("outbox")).is_empty());
    // Retained, the last one keeps its team (its reports are still there to read).
    let retained = store
        .retire_honeycomb("payments", "checkout-ios", DeletionPolicy::Retain, t0())
        .await
        .expect("retire")
        .expect("existed");
    assert!(!retained.team_removed);
    // Deleted, it takes the team with it, announced once.
    let last = store
        .retire_honeycomb("payments", "checkout-ios", DeletionPolicy::Delete, t0())
        .await
        .expect("retire")
        .expect("existed");
    assert!(last.team_removed);
    let removed = team_events(store.unpublished_events(100).await.expect("outbox"));
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].team_id, "payments");
    assert_eq!(removed[0].payload, r#"{"team_id":"payments"}"#);
    // The team can come back.
    provision(&*store, "payments", "checkout-web", &spec, None, t0())
        .await
        .expect("provision again");
}
