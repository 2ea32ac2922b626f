//! The reconciler against a mocked Kubernetes API server (kube-rs's tower-test pattern, as in
//! controller-rs) and a real Postgres database: every request the controller sends is checked
//! in order, answered, and nothing else may be sent.

use base64::Engine as _;
use bichito_core::clock::ManualClock;
use bichito_core::keys;
use bichito_core::model::{NewBichito, Severity};
use bichito_core::spec::{DeletionPolicy, Honeycomb, HoneycombStatus};
use bichito_core::store::{Inserted, Store};
use bichito_core::testing::{TestDatabase, example_honeycomb};
use bichito_operator::metrics::Metrics;
use bichito_operator::reconcile::{Context, error_policy, reconcile};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::FutureExt as _;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const HONEYCOMB_PATH: &str =
    "/apis/bichito.dev/v1alpha1/namespaces/payments/honeycombs/checkout-web";
const STATUS_PATH: &str =
    "/apis/bichito.dev/v1alpha1/namespaces/payments/honeycombs/checkout-web/status";
const SECRETS_PATH: &str = "/api/v1/namespaces/payments/secrets";
const SECRET_PATH: &str = "/api/v1/namespaces/payments/secrets/checkout-web-api-key";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/payments/events";
const RESYNC: Duration = Duration::from_secs(600);
const CONFLICT_RETRY: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// What the API server answers a status write with: the whole object (its content is unused).
fn stored() -> Value {
    serde_json::to_value(finalized(example_honeycomb())).expect("json")
}

fn finalized(mut honeycomb: Honeycomb) -> Honeycomb {
    honeycomb.metadata.finalizers = Some(vec!["bichito.dev/cleanup".into()]);
    honeycomb
}

fn deleted(mut honeycomb: Honeycomb) -> Honeycomb {
    honeycomb.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-11-23T13:00:00Z")).expect("a timestamp"));
    honeycomb
}

fn not_found(kind: &str, name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404
    })
}

/// One reconciliation's world: a mocked API server, a real database, a fixed clock.
struct World {
    server: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    ctx: Arc<Context>,
}

/// What the controller sent in one request.
struct Sent {
    query: String,
    body: Value,
}

impl World {
    fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, now: DateTime<Utc>) -> Self {
        let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let mut ctx = Context::new(
            client,
            store,
            metrics,
            Arc::new(ManualClock::new(now)),
            "bichito-operator-0",
        );
        ctx.resync_interval = RESYNC;
        ctx.conflict_retry_interval = CONFLICT_RETRY;
        Self {
            server,
            ctx: Arc::new(ctx),
        }
    }

    /// Starts reconciling `honeycomb` in the background; answer its requests with `expect`.
    fn reconcile(
        &self,
        honeycomb: Honeycomb,
    ) -> tokio::task::JoinHandle<bichito_operator::Result<Action>> {
        tokio::spawn(reconcile(Arc::new(honeycomb), self.ctx.clone()))
    }

    /// The next request must be `method path`; it is answered with `status` and `response`
    /// (`Null`: the request's own body).
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        status: StatusCode,
        response: Value,
    ) -> Sent {
        let (request, reply) =
            tokio::time::timeout(Duration::from_secs(10), self.server.next_request())
                .await
                .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
                .unwrap_or_else(|| panic!("the client is gone; expected {method} {path}"));
        assert_eq!(
            (request.method().clone(), request.uri().path().to_owned()),
            (method, path.to_owned()),
            "unexpected request"
        );
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("read the request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        // Null answers with the object as sent, as the API server does for creates and applies.
        let response = if response.is_null() { &body } else { &response };
        let response = Response::builder()
            .status(status)
            .body(Body::from(
                serde_json::to_vec(response).expect("serialise the response"),
            ))
            .expect("a response");
        reply.send_response(response);
        Sent { query, body }
    }

    /// The Secret lookup, answered 404.
    async fn secret_absent(&mut self, path: &str) {
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        self.expect(
            Method::GET,
            path,
            StatusCode::NOT_FOUND,
            not_found("secrets", &name),
        )
        .await;
    }

    /// The Secret lookup, answered with `secret`.
    async fn secret_found(&mut self, path: &str, secret: &Value) {
        self.expect(Method::GET, path, StatusCode::OK, secret.clone())
            .await;
    }

    /// The status write (server-side apply by the operator's field manager); its body.
    async fn status_written(&mut self) -> Value {
        let sent = self
            .expect(Method::PATCH, STATUS_PATH, StatusCode::OK, stored())
            .await;
        assert!(sent.query.contains("fieldManager=bichito-operator"));
        assert!(sent.query.contains("force=true"));
        sent.body
    }

    /// An Event published about the Honeycomb; its body.
    async fn event_published(&mut self) -> Value {
        let sent = self
            .expect(Method::POST, EVENTS_PATH, StatusCode::CREATED, Value::Null)
            .await;
        assert_eq!(sent.body["regarding"]["name"], "checkout-web");
        assert_eq!(sent.body["regarding"]["kind"], "Honeycomb");
        sent.body
    }

    /// The finalizer helper's JSON patch of the Honeycomb, answered with `honeycomb`; the patch.
    async fn finalizers_patched(&mut self, honeycomb: Honeycomb) -> Value {
        let answer = serde_json::to_value(honeycomb).expect("json");
        self.expect(Method::PATCH, HONEYCOMB_PATH, StatusCode::OK, answer)
            .await
            .body
    }

    /// A Secret created; the Secret sent.
    async fn secret_created(&mut self) -> Value {
        let sent = self
            .expect(Method::POST, SECRETS_PATH, StatusCode::CREATED, Value::Null)
            .await;
        assert!(sent.query.contains("fieldManager=bichito-operator"));
        sent.body
    }

    /// The reconciliation's result, after which the controller must send nothing more. Every
    /// request it sent was answered before it finished, so one still queued is an extra one.
    async fn finish(
        mut self,
        task: tokio::task::JoinHandle<bichito_operator::Result<Action>>,
    ) -> bichito_operator::Result<Action> {
        let mut task = task;
        let result = tokio::select! {
            result = &mut task => result.expect("the reconciliation task"),
            request = self.server.next_request() => match request {
                Some((request, _)) => panic!(
                    "an unexpected extra request: {} {}",
                    request.method(),
                    request.uri()
                ),
                None => task.await.expect("the reconciliation task"),
            },
        };
        if let Some(Some((request, _))) = self.server.next_request().now_or_never() {
            panic!(
                "an unexpected extra request: {} {}",
                request.method(),
                request.uri()
            );
        }
        result
    }
}

fn decoded_key(secret: &Value) -> String {
    let encoded = secret["data"]["api-key"]
        .as_str()
        .expect("the Secret holds api-key");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8 key")
}

fn with_status(mut honeycomb: Honeycomb, status_patch: &Value) -> Honeycomb {
    let status: HoneycombStatus =
        serde_json::from_value(status_patch["status"].clone()).expect("a status");
    honeycomb.status = Some(status);
    honeycomb
}

fn condition<'a>(status_patch: &'a Value, type_: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|condition| condition["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status_patch}"))
}

/// A Honeycomb the operator has provisioned: as it stands afterwards, with its Secret and key.
struct Provisioned {
    honeycomb: Honeycomb,
    secret: Value,
    api_key: String,
}

/// The first reconciliation of a finalized `honeycomb`, every request checked: the Secret is
/// looked up and created, the status says Ready, a KeyCreated Event is published.
async fn provision_through_the_api(
    store: &Arc<dyn Store>,
    metrics: &Arc<Metrics>,
    honeycomb: Honeycomb,
) -> Provisioned {
    let mut world = World::new(store.clone(), metrics.clone(), t0());
    let task = world.reconcile(honeycomb.clone());
    world.secret_absent(SECRET_PATH).await;
    let mut secret = world.secret_created().await;
    let status_patch = world.status_written().await;
    let event = world.event_published().await;
    assert_eq!(event["reason"], "KeyCreated");
    assert_eq!(event["type"], "Normal");
    let action = world
        .finish(task)
        .await
        .expect("the reconciliation succeeds");
    assert_eq!(action, Action::requeue(RESYNC));
    let api_key = decoded_key(&secret);
    secret["metadata"]["resourceVersion"] = json!("200");
    Provisioned {
        honeycomb: with_status(honeycomb, &status_patch),
        secret,
        api_key,
    }
}

async fn setup() -> (TestDatabase, Arc<dyn Store>, Arc<Metrics>) {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    (db, store, Arc::new(Metrics::new()))
}

#[tokio::test]
async fn a_new_honeycomb_first_gets_the_finalizer_and_nothing_else() {
    let (_db, store, metrics) = setup().await;
    let mut world = World::new(store.clone(), metrics, t0());
    let task = world.reconcile(example_honeycomb());
    let patch = world
        .finalizers_patched(finalized(example_honeycomb()))
        .await;
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["bichito.dev/cleanup"]}
        ])
    );
    let action = world.finish(task).await.expect("the finalizer is added");
    assert_eq!(action, Action::await_change());
    assert!(
        key_state(&*store).await.is_none(),
        "no database state before the finalizer guards it"
    );
}

/// Another installation's Honeycomb, even one being deleted: no request at all, no database
/// state, and no finalizer of ours.
#[tokio::test]
async fn a_honeycomb_of_another_installation_is_never_touched() {
    let (_db, store, metrics) = setup().await;
    for honeycomb in [example_honeycomb(), deleted(finalized(example_honeycomb()))] {
        let world = World::new(store.clone(), metrics.clone(), t0());
        let mut foreign = honeycomb;
        foreign.spec.installation = Some("staging".into());
        let task = world.reconcile(foreign);
        let action = world.finish(task).await.expect("nothing to do");
        assert_eq!(action, Action::await_change());
    }
    assert!(key_state(&*store).await.is_none());
    assert!(
        bichito_operator::controller::of_installation(
            &Ok(kube::runtime::watcher::Event::Apply(example_honeycomb())),
            "default"
        ),
        "no installation named means the default one"
    );
    let mut foreign = example_honeycomb();
    foreign.spec.installation = Some("staging".into());
    assert!(!bichito_operator::controller::of_installation(
        &Ok(kube::runtime::watcher::Event::InitApply(foreign)),
        "default"
    ));
}

#[tokio::test]
async fn the_example_yields_a_secret_a_database_row_and_a_ready_status() {
    let (_db, store, metrics) = setup().await;
    let done = provision_through_the_api(&store, &metrics, finalized(example_honeycomb())).await;

    let secret = &done.secret;
    assert_eq!(secret["metadata"]["name"], "checkout-web-api-key");
    assert_eq!(secret["metadata"]["namespace"], "payments");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "bichito-operator"
    );
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Honeycomb");
    assert_eq!(owner["uid"], "6f1c2a7e-0000-4000-8000-000000000001");
    assert_eq!(owner["controller"], true);
    assert!(done.api_key.starts_with("sk_live_"));

    let status = done.honeycomb.status.as_ref().expect("a status");
    let prefix = keys::prefix_of(&done.api_key).expect("a prefix");
    assert_eq!(status.key_prefix.as_deref(), Some(prefix));
    assert_eq!(status.secret_name.as_deref(), Some("checkout-web-api-key"));
    assert_eq!(status.observed_generation, Some(1));
    let ready: Vec<(&str, &str, &str)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        ready,
        [
            ("Ready", "True", "Ready"),
            ("KeyProvisioned", "True", "KeyCreated"),
            ("Synced", "True", "Synced")
        ]
    );

    let record = store
        .api_key_by_prefix(prefix)
        .await
        .expect("lookup")
        .expect("the key is in the database");
    assert_ne!(record.hash, done.api_key, "stored only as a hash");
    assert!(keys::verify(&done.api_key, &record.hash));
    assert_eq!(Some(record.honeycomb_id), status.honeycomb_id);
    let row = store
        .honeycomb(record.honeycomb_id)
        .await
        .expect("read")
        .expect("the honeycomb row");
    assert_eq!(
        (
            row.team_id.as_str(),
            row.reports_per_minute,
            row.blocklist.len()
        ),
        ("payments", Some(60), 2)
    );
    assert!(row.allows_origin("https://checkout.example.com"));
    assert_eq!(metrics.reconciliations(), 1);
}

#[tokio::test]
async fn an_up_to_date_honeycomb_costs_one_get_and_writes_nothing() {
    let (_db, store, metrics) = setup().await;
    let done = provision_through_the_api(&store, &metrics, finalized(example_honeycomb())).await;

    let mut world = World::new(store.clone(), metrics, t0() + TimeDelta::minutes(10));
    let task = world.reconcile(done.honeycomb.clone());
    world.secret_found(SECRET_PATH, &done.secret).await;
    let action = world.finish(task).await.expect("nothing to do");
    assert_eq!(action, Action::requeue(RESYNC), "no status write, no Event");
}

#[tokio::test]
async fn a_spec_change_is_in_force_without_touching_the_key() {
    let (_db, store, metrics) = setup().await;
    let done = provision_through_the_api(&store, &metrics, finalized(example_honeycomb())).await;
    let mut changed = done.honeycomb.clone();
    changed.metadata.generation = Some(2);
    changed.spec.quotas.reports_per_minute = Some(5);
    changed.spec.plan = bichito_core::spec::Plan::Pro;
    changed.spec.blocklist.clear();
    changed.spec.allowed_origins = vec!["https://shop.example.com".into()];

    let mut world = World::new(store.clone(), metrics, t0() + TimeDelta::minutes(10));
    let task = world.reconcile(changed);
    world.secret_found(SECRET_PATH, &done.secret).await;
    let status_patch = world.status_written().await;
    assert_eq!(status_patch["status"]["observedGeneration"], 2);
    assert_eq!(
        condition(&status_patch, "KeyProvisioned")["reason"],
        "KeyCreated",
        "the key is still the one created"
    );
    assert_eq!(
        condition(&status_patch, "Ready")["lastTransitionTime"],
        "2026-11-23T12:00:00Z",
        "Ready stayed True: its transition time stays"
    );
    let event = world.event_published().await;
    assert_eq!(event["reason"], "Synced");
    world.finish(task).await.expect("synced");

    let state = key_state(&*store).await.expect("exists");
    assert_eq!(state.keys.len(), 1, "no new key");
    let row = store.honeycomb(state.id).await.expect("read").expect("row");
    assert_eq!(row.reports_per_minute, Some(5));
    assert_eq!(row.plan, bichito_core::spec::Plan::Pro);
    assert!(row.blocklist.is_empty());
    assert!(row.allows_origin("https://shop.example.com"));
    assert!(!row.allows_origin("https://checkout.example.com"));
}

#[tokio::test]
async fn rotation_stores_a_new_key_and_the_old_one_works_for_the_grace_period() {
    let (_db, store, metrics) = setup().await;
    let done = provision_through_the_api(&store, &metrics, finalized(example_honeycomb())).await;
    let mut rotated = done.honeycomb.clone();
    rotated.metadata.generation = Some(2);
    rotated.spec.api_key.rotate = Some("2026-12-01".into());
    let now = t0() + TimeDelta::hours(1);

    let mut world = World::new(store.clone(), metrics, now);
    let task = world.reconcile(rotated);
    world.secret_found(SECRET_PATH, &done.secret).await;
    let applied = world
        .expect(Method::PATCH, SECRET_PATH, StatusCode::OK, Value::Null)
        .await;
    assert!(applied.query.contains("fieldManager=bichito-operator"));
    assert!(applied.query.contains("force=true"));
    let new_key = decoded_key(&applied.body);
    assert_ne!(new_key, done.api_key);
    let status_patch = world.status_written().await;
    assert_eq!(
        status_patch["status"]["keyPrefix"],
        keys::prefix_of(&new_key).expect("prefix")
    );
    assert_eq!(
        condition(&status_patch, "KeyProvisioned")["reason"],
        "KeyRotated"
    );
    let event = world.event_published().await;
    assert_eq!(event["reason"], "KeyRotated");
    world.finish(task).await.expect("rotated");

    let valid_at = |key: String, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let record = store
                .api_key_by_prefix(keys::prefix_of(&key).expect("prefix"))
                .await
                .expect("lookup")
                .expect("stored");
            keys::verify(&key, &record.hash) && record.is_valid_at(at)
        }
    };
    // gracePeriod is 24h in the example.
    assert!(valid_at(done.api_key.clone(), now + TimeDelta::hours(23)).await);
    assert!(!valid_at(done.api_key.clone(), now + TimeDelta::hours(25)).await);
    assert!(valid_at(new_key.clone(), now + TimeDelta::days(365)).await);
}

#[tokio::test]
async fn a_foreign_secret_is_left_untouched_and_the_status_says_so() {
    let (_db, store, metrics) = setup().await;
    let foreign = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "checkout-web-api-key", "namespace": "payments", "resourceVersion": "5"},
        "data": {"api-key": "aGFuZC1tYWRl"}
    });
    let mut world = World::new(store.clone(), metrics, t0());
    let task = world.reconcile(finalized(example_honeycomb()));
    world.secret_found(SECRET_PATH, &foreign).await;
    let status_patch = world.status_written().await;
    let ready = condition(&status_patch, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("SecretConflict"))
    );
    assert!(
        ready["message"]
            .as_str()
            .expect("a message")
            .contains("left untouched")
    );
    assert_eq!(
        condition(&status_patch, "KeyProvisioned")["status"],
        "False"
    );
    let event = world.event_published().await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("SecretConflict"))
    );
    let action = world
        .finish(task)
        .await
        .expect("a conflict is not an error");
    assert_eq!(action, Action::requeue(CONFLICT_RETRY));
    assert!(
        key_state(&*store).await.is_none(),
        "no key was made that could not be stored"
    );
}

#[tokio::test]
async fn a_secret_created_meanwhile_is_not_taken_over() {
    let (_db, store, metrics) = setup().await;
    let mut world = World::new(store.clone(), metrics.clone(), t0());
    let task = world.reconcile(finalized(example_honeycomb()));
    world.secret_absent(SECRET_PATH).await;
    world
        .expect(
            Method::POST,
            SECRETS_PATH,
            StatusCode::CONFLICT,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists",
                   "message": "secrets \"checkout-web-api-key\" already exists", "code": 409}),
        )
        .await;
    let ctx = world.ctx.clone();
    let error = world
        .finish(task)
        .await
        .expect_err("a create that conflicts fails the reconciliation");
    assert_eq!(error.metric_label(), "kube_conflict");
    let action = error_policy(Arc::new(finalized(example_honeycomb())), &error, ctx);
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    assert_eq!(metrics.failures("kube_conflict"), 1);
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_waits_for_a_change() {
    let (_db, store, metrics) = setup().await;
    let mut invalid = finalized(example_honeycomb());
    // The CRD schema refuses this; an older CRD or a direct write might not.
    invalid.spec.team = "Payments Team".into();
    invalid.spec.api_key.grace_period = Some("a while".into());
    let mut world = World::new(store.clone(), metrics, t0());
    let task = world.reconcile(invalid);
    world.secret_absent(SECRET_PATH).await;
    let status_patch = world.status_written().await;
    let synced = condition(&status_patch, "Synced");
    assert_eq!(synced["reason"], "InvalidSpec");
    let message = synced["message"].as_str().expect("a message");
    assert!(message.contains("team"), "{message}");
    assert!(
        message.contains("gracePeriod"),
        "every problem is listed: {message}"
    );
    let event = world.event_published().await;
    assert_eq!(event["reason"], "InvalidSpec");
    let action = world.finish(task).await.expect("reported, not failed");
    assert_eq!(action, Action::await_change());
    assert!(key_state(&*store).await.is_none());
}

#[tokio::test]
async fn a_renamed_secret_carries_the_same_key_and_the_old_one_is_deleted() {
    let (_db, store, metrics) = setup().await;
    let done = provision_through_the_api(&store, &metrics, finalized(example_honeycomb())).await;
    let mut renamed = done.honeycomb.clone();
    renamed.metadata.generation = Some(2);
    renamed.spec.api_key.secret_name = "checkout-web-key-v2".into();

    let mut world = World::new(store.clone(), metrics, t0() + TimeDelta::minutes(10));
    let task = world.reconcile(renamed);
    world
        .secret_absent("/api/v1/namespaces/payments/secrets/checkout-web-key-v2")
        .await;
    world.secret_found(SECRET_PATH, &done.secret).await;
    let created = world.secret_created().await;
    assert_eq!(created["metadata"]["name"], "checkout-web-key-v2");
    assert_eq!(decoded_key(&created), done.api_key, "the same key");
    world
        .expect(
            Method::DELETE,
            SECRET_PATH,
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        )
        .await;
    let status_patch = world.status_written().await;
    assert_eq!(status_patch["status"]["secretName"], "checkout-web-key-v2");
    let event = world.event_published().await;
    assert_eq!(event["reason"], "Synced");
    world.finish(task).await.expect("renamed");
}

async fn store_a_bichito(store: &Arc<dyn Store>, honeycomb_id: i64) -> i64 {
    let report = NewBichito {
        honeycomb_id,
        api_key_id: None,
        team_id: "payments".into(),
        title: "Checkout button does nothing".into(),
        description: "Click; nothing happens.".into(),
        severity: Severity::High,
        environment: None,
        app_version: None,
        stack_trace: None,
        url: None,
        user_agent: None,
        reporter_email: None,
        reporter_identifier: None,
        extra: None,
        created_at: t0(),
    };
    match store
        .insert_bichito(&report, None, None)
        .await
        .expect("insert")
    {
        Inserted::Stored(bichito) => bichito.id,
        other => panic!("not stored: {other:?}"),
    }
}

/// Deletes the provisioned Honeycomb under `policy`: the database is retired, a Retired Event
/// is published, the finalizer is removed (the Secret goes by garbage collection).
async fn delete_under(policy: DeletionPolicy) -> (Arc<dyn Store>, TestDatabase, Provisioned, i64) {
    let (db, store, metrics) = setup().await;
    let mut honeycomb = finalized(example_honeycomb());
    honeycomb.spec.deletion_policy = policy;
    let done = provision_through_the_api(&store, &metrics, honeycomb).await;
    let honeycomb_id = done
        .honeycomb
        .status
        .as_ref()
        .and_then(|status| status.honeycomb_id)
        .expect("an id");
    let bichito_id = store_a_bichito(&store, honeycomb_id).await;

    let mut world = World::new(store.clone(), metrics, t0() + TimeDelta::hours(1));
    let task = world.reconcile(deleted(done.honeycomb.clone()));
    let event = world.event_published().await;
    assert_eq!(event["reason"], "Retired");
    let unfinalize = world.finalizers_patched(deleted(example_honeycomb())).await;
    assert_eq!(
        unfinalize,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "bichito.dev/cleanup"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ])
    );
    let action = world.finish(task).await.expect("cleaned up");
    assert_eq!(action, Action::await_change());
    (store, db, done, bichito_id)
}

#[tokio::test]
async fn deleting_under_retain_revokes_the_key_and_keeps_the_bichitos() {
    let (store, _db, done, bichito_id) = delete_under(DeletionPolicy::Retain).await;
    let record = store
        .api_key_by_prefix(keys::prefix_of(&done.api_key).expect("prefix"))
        .await
        .expect("lookup")
        .expect("the revoked key record stays");
    assert!(!record.is_valid_at(t0() + TimeDelta::hours(1)));
    assert!(store.bichito(bichito_id).await.expect("read").is_some());
}

#[tokio::test]
async fn deleting_under_delete_removes_the_bichitos_and_tells_the_team() {
    let (store, _db, done, bichito_id) = delete_under(DeletionPolicy::Delete).await;
    assert!(store.bichito(bichito_id).await.expect("read").is_none());
    assert!(
        store
            .api_key_by_prefix(keys::prefix_of(&done.api_key).expect("prefix"))
            .await
            .expect("lookup")
            .is_none()
    );
    let deleted: Vec<String> = store
        .unpublished_events(100)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|event| event.event_type.as_str() == "bug.deleted")
        .map(|event| event.payload)
        .collect();
    assert_eq!(deleted.len(), 1);
    let payload: Value = serde_json::from_str(&deleted[0]).expect("json");
    assert_eq!(payload["bug_id"], bichito_id);
}

fn unavailable() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "InternalError", "message": "etcdserver: request timed out", "code": 500})
}

#[tokio::test]
async fn an_api_error_fails_the_reconciliation_and_is_counted() {
    let (_db, store, metrics) = setup().await;
    let mut world = World::new(store.clone(), metrics.clone(), t0());
    let action = fail_once(&mut world, &finalized(example_honeycomb())).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    assert_eq!(metrics.failures("kube_api"), 1);
    assert!(
        metrics
            .render()
            .contains("bichito_operator_reconcile_failures_total{reason=\"kube_api\"} 1")
    );
    assert!(
        key_state(&*store).await.is_none(),
        "nothing was provisioned"
    );
}

/// One reconciliation that fails on its first request; the delay `error_policy` chooses.
async fn fail_once(world: &mut World, honeycomb: &Honeycomb) -> Action {
    let task = world.reconcile(honeycomb.clone());
    world
        .expect(
            Method::GET,
            SECRET_PATH,
            StatusCode::INTERNAL_SERVER_ERROR,
            unavailable(),
        )
        .await;
    let error = task.await.expect("task").expect_err("failed");
    error_policy(Arc::new(honeycomb.clone()), &error, world.ctx.clone())
}

#[tokio::test]
async fn repeated_failures_double_the_delay_and_a_success_resets_it() {
    let (_db, store, metrics) = setup().await;
    let mut world = World::new(store.clone(), metrics, t0());
    let honeycomb = finalized(example_honeycomb());
    let mut delays = Vec::new();
    for _ in 0..3 {
        delays.push(fail_once(&mut world, &honeycomb).await);
    }
    assert_eq!(
        delays,
        [1, 2, 4].map(|secs| Action::requeue(Duration::from_secs(secs)))
    );

    let task = world.reconcile(honeycomb.clone());
    world.secret_absent(SECRET_PATH).await;
    world.secret_created().await;
    world.status_written().await;
    world.event_published().await;
    task.await.expect("task").expect("succeeded");

    assert_eq!(
        fail_once(&mut world, &honeycomb).await,
        Action::requeue(Duration::from_secs(1)),
        "a success forgets the failures"
    );
}

/// What the database holds for the example Honeycomb (`None`: nothing was provisioned).
async fn key_state(
    store: &dyn bichito_core::store::Store,
) -> Option<bichito_core::store::HoneycombKeyState> {
    store
        .honeycomb_key_state("payments", "checkout-web")
        .await
        .expect("read")
}
