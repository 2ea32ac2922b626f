//! The dashboard API: a team's list (filters, cursor pages, newest first), edits, comments and
//! deletion, each emitting its event into the outbox; bad input is a JSON error and changes nothing.

mod common;

use bichito_core::events::EventType;
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    the_team_list_pages_newest_first_and_filters,
    a_foreign_team_list_is_404_and_bad_filters_are_400,
    a_patch_changes_fields_and_emits_only_what_changed,
    bad_patches_are_rejected_with_every_field_named,
    comments_are_added_listed_and_announced,
    a_delete_is_204_then_404_and_announced,
);

async fn create(app: &TestApp, title: &str) -> i64 {
    let body = json!({"title": title, "description": "d"});
    app.post_report(&body)
        .await
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_i64()
        .expect("id")
}

async fn list(app: &TestApp, team: &str, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/teams/{team}/bugs{query}")))
        .bearer_auth(app.token(&["payments"]))
        .send()
        .await
        .expect("sent")
}

async fn patch(app: &TestApp, id: i64, body: &Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(app.token(&["payments"]))
        .json(body)
        .send()
        .await
        .expect("sent")
}

/// The payloads of the outbox events of one type, oldest first, published or not (the relay
/// publishes them as they come).
async fn events(app: &TestApp, event_type: EventType) -> Vec<Value> {
    let sql = "SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id";
    query_text(app, sql, event_type.as_str())
        .await
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("json"))
        .collect()
}

async fn the_team_list_pages_newest_first_and_filters(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create(&app, &format!("report {n}")).await);
    }
    let first: Value = list(&app, "payments", "?limit=2")
        .await
        .json()
        .await
        .expect("json");
    let page_ids = |page: &Value| {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["id"].as_i64().expect("id"))
            .collect::<Vec<_>>()
    };
    assert_eq!(page_ids(&first), [ids[4], ids[3]]);
    let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
    let second: Value = list(&app, "payments", &format!("?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page_ids(&second), [ids[2], ids[1]]);
    let cursor = second["next_cursor"].as_str().expect("cursor").to_owned();
    let last: Value = list(&app, "payments", &format!("?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page_ids(&last), [ids[0]]);
    assert_eq!(last["next_cursor"], Value::Null);

    assert_eq!(
        patch(
            &app,
            ids[2],
            &json!({"severity": "critical", "labels": ["ios"]})
        )
        .await
        .status(),
        200
    );
    let critical: Value = list(&app, "payments", "?severity=critical")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page_ids(&critical), [ids[2]]);
    let labelled: Value = list(
        &app,
        "payments",
        &format!("?label=ios&project_id={}", app.honeycomb_id),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(page_ids(&labelled), [ids[2]]);
    assert_eq!(labelled["items"][0]["labels"], json!(["ios"]));
    // Text in the title, whatever its case, with the cursor as above.
    let found: Value = list(&app, "payments", "?q=REPORT%203")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page_ids(&found), [ids[3]]);
    let wildcard: Value = list(&app, "payments", "?q=report%25")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page_ids(&wildcard), Vec::<i64>::new(), "% is only text");
    let paged: Value = list(
        &app,
        "payments",
        &format!("?q=report&limit=2&cursor={}", ids[2]),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(page_ids(&paged), [ids[1], ids[0]]);
    assert!(
        first["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|item| item["comment_count"] == 0),
        "{first}"
    );
}

async fn a_foreign_team_list_is_404_and_bad_filters_are_400(backend: Backend) {
    let app = TestApp::start(backend).await;
    create(&app, "secret").await;
    expect_error(list(&app, "marketing", "").await, 404).await;
    let anonymous = app
        .client
        .get(app.url("/api/v1/teams/payments/bugs"))
        .send()
        .await
        .expect("sent");
    expect_error(anonymous, 401).await;
    let body = expect_error(
        list(
            &app,
            "payments",
            &format!(
                "?status=done&limit=0&cursor=x&severity=meh&q={}",
                "x".repeat(201)
            ),
        )
        .await,
        400,
    )
    .await;
    let fields = sorted_fields(&body);
    assert_eq!(fields, ["cursor", "limit", "q", "severity", "status"]);
}

async fn a_patch_changes_fields_and_emits_only_what_changed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = create(&app, "Login").await;
    let original = create(&app, "Login (first report)").await;
    let response = patch(
        &app,
        id,
        &json!({
            "status": "in_progress", "severity": "medium", "assignee": "ana",
            "labels": ["safari", "login", "safari"], "duplicate_of": original
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(
        (
            &updated["status"],
            &updated["assignee"],
            &updated["duplicate_of"]
        ),
        (&json!("in_progress"), &json!("ana"), &json!(original))
    );
    assert_eq!(
        updated["labels"],
        json!(["safari", "login"]),
        "duplicates dropped, order kept"
    );
    let fetched = app
        .get_bug(id, &app.token(&["payments"]))
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(fetched, updated);

    let unassign = patch(&app, id, &json!({"assignee": null, "labels": ["login"]})).await;
    assert_eq!(
        unassign.json::<Value>().await.expect("json")["assignee"],
        Value::Null
    );
    let nothing = patch(&app, id, &json!({"status": "in_progress"})).await;
    assert_eq!(nothing.status(), 200);

    let updates = events(&app, EventType::BugUpdated).await;
    assert_eq!(
        updates,
        [
            json!({"bug_id": id, "project_id": app.honeycomb_id, "changes": {
                "status": "in_progress", "assignee": "ana", "labels": ["safari", "login"], "duplicate_of": original}}),
            json!({"bug_id": id, "project_id": app.honeycomb_id, "changes": {"assignee": null, "labels": ["login"]}}),
        ],
        "only changed fields; severity was already medium; a patch that changes nothing emits nothing"
    );
}

async fn bad_patches_are_rejected_with_every_field_named(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = create(&app, "Login").await;
    let bad = json!({
        "status": "done", "severity": 3, "assignee": "", "labels": "ios", "duplicate_of": -1, "title": "x"
    });
    let body = expect_error(patch(&app, id, &bad).await, 400).await;
    let fields = sorted_fields(&body);
    assert_eq!(
        fields,
        [
            "assignee",
            "duplicate_of",
            "labels",
            "severity",
            "status",
            "title"
        ]
    );
    let too_many: Vec<String> = (0..21).map(|n| format!("l{n}")).collect();
    expect_error(patch(&app, id, &json!({"labels": too_many})).await, 400).await;
    expect_error(patch(&app, id, &json!({"duplicate_of": id})).await, 400).await;
    expect_error(
        patch(&app, id, &json!({"duplicate_of": id + 1000})).await,
        400,
    )
    .await;

    let raw = |content_type: &'static str, body: &'static str| {
        app.client
            .patch(app.url(&format!("/api/v1/bugs/{id}")))
            .bearer_auth(app.token(&["payments"]))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_error(
        raw("application/json", "{\"status\": ")
            .await
            .expect("sent"),
        400,
    )
    .await;
    expect_error(raw("text/plain", "{}").await.expect("sent"), 415).await;
    let huge = app
        .client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(app.token(&["payments"]))
        .json(&json!({"assignee": "a".repeat(100 * 1024)}))
        .send()
        .await
        .expect("sent");
    expect_error(huge, 413).await;
    let foreign = app
        .client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(app.token(&["marketing"]))
        .json(&json!({"status": "closed"}))
        .send()
        .await
        .expect("sent");
    expect_error(foreign, 404).await;

    let unchanged = app
        .get_bug(id, &app.token(&["payments"]))
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(unchanged["status"], "open");
    assert!(events(&app, EventType::BugUpdated).await.is_empty());
}

async fn comments_are_added_listed_and_announced(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = create(&app, "Login").await;
    let comment = |body: Value| {
        app.client
            .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
            .bearer_auth(app.token(&["payments"]))
            .json(&body)
            .send()
    };
    let created = comment(json!({"body": "Reproduced on 17.1"}))
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(
        (&created["bug_id"], &created["author_id"], &created["body"]),
        (&json!(id), &json!("user-1"), &json!("Reproduced on 17.1"))
    );
    for bad in [
        json!({"body": "  "}),
        json!({}),
        json!({"body": "x".repeat(10_001)}),
    ] {
        let response = comment(bad).await.expect("sent");
        assert_eq!(rejected_fields(response).await, ["body"]);
    }
    let listed: Value = app
        .client
        .get(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .bearer_auth(app.token(&["payments"]))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"], json!([created]));
    let counted: Value = app
        .get_bug(id, &app.token(&["payments"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(counted["comment_count"], 1, "the report counts it");
    let foreign = app
        .client
        .get(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .bearer_auth(app.token(&["x"]))
        .send()
        .await
        .expect("sent");
    expect_error(foreign, 404).await;
    assert_eq!(
        events(&app, EventType::BugCommented).await,
        [
            json!({"bug_id": id, "project_id": app.honeycomb_id, "comment_id": created["id"], "author_id": "user-1"})
        ]
    );
}

async fn a_delete_is_204_then_404_and_announced(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = create(&app, "Login").await;
    let delete = |teams: &'static [&'static str]| {
        app.client
            .delete(app.url(&format!("/api/v1/bugs/{id}")))
            .bearer_auth(app.token(teams))
            .send()
    };
    expect_error(delete(&["marketing"]).await.expect("sent"), 404).await;
    assert_eq!(delete(&["payments"]).await.expect("sent").status(), 204);
    expect_error(delete(&["payments"]).await.expect("sent"), 404).await;
    expect_error(app.get_bug(id, &app.token(&["payments"])).await, 404).await;
    assert_eq!(
        events(&app, EventType::BugDeleted).await,
        [json!({"bug_id": id, "project_id": app.honeycomb_id})]
    );
    assert_eq!(events(&app, EventType::BugCreated).await.len(), 1);
}
