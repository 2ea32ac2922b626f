//! Test harness: a real bichito api server on port 0, on a fresh Postgres database or SQLite
//! file, with the example honeycomb applied and a clock the test moves.
#![allow(dead_code)]

pub mod browser;
pub mod nats;
pub mod process;
pub mod proxy;

use bichito::attachments::{Attachments, LocalStorage, S3Settings, S3Storage, Storage};
use bichito::auth::{JwtVerifier, mint_token};
use bichito::bus::Bus;
use bichito::bus::memory::MemoryBus;
use bichito::bus::nats::{NatsBus, NatsSettings};
use bichito::commands::jwt_args_with_secret;
use bichito::config::{CorsArgs, HttpArgs, LimitArgs, SessionArgs, StreamArgs};
use bichito::grants::Grants;
use bichito::grants::local::LocalGrants;
use bichito::grants::nats::NatsGrants;
use bichito::metrics::Metrics;
use bichito::server::Role;
use bichito::state::{AppState, Settings, StreamState};
use bichito_core::clock::{Clock, ManualClock};
// Not every test file runs on both backends.
#[allow(unused_imports)]
pub use bichito_core::on_both_backends;
use bichito_core::provision::provision;
use bichito_core::spec::HoneycombSpec;
use bichito_core::store::Store;
pub use bichito_core::testing::{Backend, TestDatabase, example_spec};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

/// Runs each named `async fn(Backend, BusKind)` on the in-process bus (with either database)
/// and on NATS JetStream (with Postgres), as one test each.
#[macro_export]
macro_rules! on_every_bus {
    ($($name:ident),* $(,)?) => {
        mod memory_postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres, super::BusKind::Memory).await })*
        }
        mod memory_sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite, super::BusKind::Memory).await })*
        }
        mod nats_postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres, super::BusKind::Nats).await })*
        }
    };
}

/// A stream's SSE events, read with a real SSE client library.
pub type Events =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>;

/// The events of a stream's response; a malformed event fails the test.
pub fn events_of(response: reqwest::Response) -> Events {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.expect("well-formed SSE")),
    )
}

/// The next event, within 10 s, of a stream that stays open.
pub async fn next(events: &mut Events) -> eventsource_stream::Event {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
}

/// The npm packages of the browser tests (`NODE_PATH`), after checking that `packages` are
/// there (`scripts/test.sh` installs them into the tools cache).
pub fn browser_node_path(packages: &[&str]) -> std::path::PathBuf {
    let tools = match std::env::var_os("BICHITO_TOOLS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/bichito-tools"),
    };
    let path = tools.join("browser/node_modules");
    for package in packages {
        assert!(
            path.join(package).exists(),
            "{package} must be installed in {} (scripts/test.sh installs it)",
            path.display()
        );
    }
    path
}

/// A request's JSON answer.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("a JSON answer")
}

/// Which event bus a test server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusKind {
    Memory,
    /// The machine's NATS server (`BICHITO_TEST_NATS_URL`).
    Nats,
    /// A NATS server (or cluster, `url` listing its servers) of the test's own, keeping
    /// `replicas` copies of the stream and buckets.
    NatsAt {
        url: String,
        replicas: usize,
    },
}

/// NATS settings with a stream and subjects of their own, so tests never share events.
pub fn unique_nats_settings() -> NatsSettings {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let unique = format!(
        "t{}x{nanos}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    NatsSettings {
        url: nats_url(),
        stream_name: format!("BICHITO_{unique}"),
        subject_prefix: format!("test_{unique}"),
        replicas: 1,
        retention: std::time::Duration::from_secs(600),
        queue_size: 64,
    }
}

pub fn nats_url() -> String {
    std::env::var("BICHITO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Deletes a test's JetStream stream and the buckets named after it (from a thread of its
/// own: `Drop` cannot await).
pub fn delete_nats_stream(name: String) {
    bichito_core::testing::run_cleanup(move || async move {
        if let Ok(client) = async_nats::connect(nats_url()).await {
            let jetstream = async_nats::jetstream::new(client);
            let _ = jetstream.delete_stream(&name).await;
            for bucket in ["SESSIONS", "TICKETS"] {
                let _ = jetstream.delete_key_value(format!("{name}_{bucket}")).await;
            }
        }
    });
}

/// What a test server is set up with, besides its database and bus.
#[derive(Clone, Default)]
pub struct Setup {
    pub storage: Option<StorageKind>,
    pub cors: CorsArgs,
    pub sessions: SessionArgs,
    /// Stream settings; [`test_stream_args`] when `None`.
    pub stream: Option<StreamArgs>,
    /// Where clients reach the server (`BICHITO_PUBLIC_URL`), when not directly.
    pub public_url: Option<String>,
}

/// A server; the database stays alive as long as the `TestApp` that created it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub api_key: String,
    pub honeycomb_id: i64,
    pub db: Option<TestDatabase>,
    /// Where streams are served (the api itself, or on NATS a separate stream server).
    pub stream_base: String,
    pub streams: StreamState,
    stream_shutdown: Option<oneshot::Sender<()>>,
    /// How the stream server was set up (on NATS), to start others alike.
    stream_setup: Option<(NatsSettings, StreamArgs, CorsArgs)>,
    /// Other stream servers; each stops when its sender is dropped.
    other_stream_servers: Vec<oneshot::Sender<()>>,
    nats_stream: Option<String>,
    /// Where the server keeps attachments, to look at from outside.
    pub objects: TestObjects,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, example_spec()).await
    }

    /// A server whose honeycomb `payments/checkout-web` has `spec`.
    pub async fn start_with(backend: Backend, spec: HoneycombSpec) -> Self {
        Self::start_full(backend, BusKind::Memory, spec).await
    }

    pub async fn start_on(backend: Backend, bus: BusKind) -> Self {
        Self::start_full(backend, bus, example_spec()).await
    }

    /// A server on the NATS server `url` (a private one, for fault tests).
    pub async fn start_on_nats_at(backend: Backend, url: &str) -> Self {
        Self::start_on_nats_cluster(backend, url, 1, example_spec()).await
    }

    /// A server whose honeycomb has `spec`, on a private NATS cluster whose servers `url`
    /// lists, the stream and buckets kept in `replicas` copies.
    pub async fn start_on_nats_cluster(
        backend: Backend,
        url: &str,
        replicas: usize,
        spec: HoneycombSpec,
    ) -> Self {
        let bus = BusKind::NatsAt {
            url: url.to_owned(),
            replicas,
        };
        // Room for the events of a several-second pause, which come at once after it.
        let setup = Setup {
            stream: Some(StreamArgs {
                sse_queue_size: 1024,
                ..test_stream_args()
            }),
            ..Setup::default()
        };
        Self::start_full_with(backend, bus, spec, setup).await
    }

    /// A server keeping attachments in `storage`.
    pub async fn start_with_storage(backend: Backend, storage: StorageKind) -> Self {
        let setup = Setup {
            storage: Some(storage),
            ..Setup::default()
        };
        Self::start_full_with(backend, BusKind::Memory, example_spec(), setup).await
    }

    /// A server (and on NATS a separate stream server) that dashboards hosted at
    /// `dashboard_origins` may call from a browser.
    pub async fn start_for_dashboards(
        backend: Backend,
        bus: BusKind,
        dashboard_origins: Vec<String>,
    ) -> Self {
        let setup = Setup {
            cors: CorsArgs {
                dashboard_origins,
                ..CorsArgs::default()
            },
            ..Setup::default()
        };
        Self::start_full_with(backend, bus, example_spec(), setup).await
    }

    /// A server (and on NATS a separate stream server) set up as `setup` says.
    pub async fn start_setup(backend: Backend, bus: BusKind, setup: Setup) -> Self {
        Self::start_full_with(backend, bus, example_spec(), setup).await
    }

    async fn start_full(backend: Backend, bus_kind: BusKind, spec: HoneycombSpec) -> Self {
        Self::start_full_with(backend, bus_kind, spec, Setup::default()).await
    }

    async fn start_full_with(
        backend: Backend,
        bus_kind: BusKind,
        spec: HoneycombSpec,
        setup: Setup,
    ) -> Self {
        let Setup {
            storage,
            cors,
            sessions,
            stream,
            public_url,
        } = setup;
        let storage = storage.unwrap_or(StorageKind::Disabled);
        let stream = stream.unwrap_or_else(test_stream_args);
        let bus_kind_for_stream = bus_kind.clone();
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let done = provision(
            &*store,
            "payments",
            "checkout-web",
            &spec,
            None,
            clock.now(),
        )
        .await
        .expect("provision");
        let (bus, nats_stream): (BusParts, Option<String>) = match bus_kind {
            BusKind::Memory => (memory_bus(&stream, store.clone()), None),
            BusKind::Nats | BusKind::NatsAt { .. } => {
                let mut settings = unique_nats_settings();
                if let BusKind::NatsAt { url, replicas } = bus_kind {
                    settings.url = url;
                    settings.replicas = replicas;
                }
                settings.queue_size = stream.sse_queue_size;
                let name = settings.stream_name.clone();
                (nats_parts(settings).await, Some(name))
            }
        };
        let separate_stream_server = nats_stream.is_some();
        let role = if separate_stream_server {
            Role::Api
        } else {
            Role::All
        };
        let mut app = Self::serve(
            store,
            bus,
            clock.clone(),
            LimitArgs::default(),
            (stream.clone(), cors.clone(), sessions, public_url),
            role,
            storage,
        )
        .await;
        if let (true, Some(name)) = (separate_stream_server, &nats_stream) {
            // The stream runs as a server of its own that shares nothing with the api but NATS.
            let mut settings = unique_nats_settings();
            settings.stream_name = name.clone();
            settings.subject_prefix = format!("test_{}", name.trim_start_matches("BICHITO_"));
            if let BusKind::NatsAt { url, replicas } = &bus_kind_for_stream {
                settings.url = url.clone();
                settings.replicas = *replicas;
            }
            settings.queue_size = stream.sse_queue_size;
            app.start_stream_server(settings, clock, stream, cors).await;
        }
        app.api_key = done.api_key;
        app.honeycomb_id = done.honeycomb_id;
        app.db = Some(db);
        app.nats_stream = nats_stream;
        app
    }

    /// A second server on the same database (its own caches and limiter, like another process).
    pub async fn another_server(&self) -> Self {
        let store = self.db.as_ref().expect("owns the database").store().await;
        let stream = test_stream_args();
        let mut app = Self::serve(
            store.clone(),
            memory_bus(&stream, store),
            self.clock.clone(),
            LimitArgs::default(),
            (stream, CorsArgs::default(), SessionArgs::default(), None),
            Role::All,
            StorageKind::Disabled,
        )
        .await;
        app.api_key = self.api_key.clone();
        app.honeycomb_id = self.honeycomb_id;
        app
    }

    async fn serve(
        store: Arc<dyn Store>,
        bus: BusParts,
        clock: Arc<ManualClock>,
        limits: LimitArgs,
        (stream, cors, sessions, public_url): (StreamArgs, CorsArgs, SessionArgs, Option<String>),
        role: Role,
        storage: StorageKind,
    ) -> Self {
        let jwt =
            JwtVerifier::from_args(&jwt_args_with_secret(JWT_SECRET), None).expect("jwt config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (attachments, objects) = test_attachments(storage, &base).await;
        let state = AppState::new(
            store.clone(),
            bus,
            jwt,
            clock.clone(),
            Settings {
                limits,
                stream,
                cors,
                sessions,
                public_url: Some(public_url.unwrap_or_else(|| base.clone())),
            },
            attachments,
        );
        let (tx, rx) = oneshot::channel::<()>();
        let server_state = state.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            bichito::server::serve_role(
                listener,
                server_state,
                role,
                HttpArgs::default(),
                shutdown,
            )
            .await
            .expect("server runs");
        });
        Self {
            stream_base: base.clone(),
            streams: state.streams.clone(),
            stream_shutdown: None,
            stream_setup: None,
            other_stream_servers: Vec::new(),
            base,
            client: reqwest::Client::new(),
            store,
            clock,
            state,
            api_key: String::new(),
            honeycomb_id: 0,
            db: None,
            nats_stream: None,
            objects,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of a stream route: on NATS, on the separate stream server.
    pub fn stream_url(&self, path: &str) -> String {
        format!("{}{path}", self.stream_base)
    }

    /// The metrics of whichever server serves the streams.
    pub fn stream_metrics(&self) -> String {
        self.streams.metrics.render()
    }

    async fn start_stream_server(
        &mut self,
        settings: NatsSettings,
        clock: Arc<ManualClock>,
        stream: StreamArgs,
        cors: CorsArgs,
    ) {
        self.stream_setup = Some((settings.clone(), stream.clone(), cors.clone()));
        let (base, streams, shutdown) = spawn_stream_server(settings, clock, stream, cors).await;
        self.stream_base = base;
        self.streams = streams;
        self.stream_shutdown = Some(shutdown);
    }

    /// Another stream server on the same NATS stream and buckets, like another `bichito sse`
    /// process: its base URL. It stops with the app.
    pub async fn another_stream_server(&mut self) -> String {
        let (settings, stream, cors) = self.stream_setup.clone().expect("a server on NATS");
        let (base, _, shutdown) =
            spawn_stream_server(settings, self.clock.clone(), stream, cors).await;
        self.other_stream_servers.push(shutdown);
        base
    }

    /// A one-time sign-in link for `user` on `teams`, valid until `expires_in` from now (what
    /// `bichito token --link` stores): its URL.
    pub async fn sign_in_link(
        &self,
        user: &str,
        teams: &[&str],
        expires_in: chrono::TimeDelta,
    ) -> String {
        let code = bichito_core::session::new_secret("");
        let link = bichito_core::session::SignIn::Link {
            user_id: user.into(),
            teams: teams.iter().map(|team| (*team).to_owned()).collect(),
            return_to: "/inbox".into(),
            expires_at: self.clock.now() + expires_in,
        };
        self.store
            .insert_sign_in(&bichito_core::session::secret_hash(&code), &link)
            .await
            .expect("a sign-in link");
        self.url(&format!("/login?code={code}"))
    }

    /// Re-applies the honeycomb with `spec`, handing over the current key; returns the new key.
    pub async fn reapply(&self, spec: &HoneycombSpec) -> String {
        let done = provision(
            &*self.store,
            "payments",
            "checkout-web",
            spec,
            Some(&self.api_key),
            self.clock.now(),
        )
        .await
        .expect("re-apply");
        done.api_key
    }

    /// Team `payments`'s stream, past its `hello`.
    pub async fn team_events(&self) -> Events {
        let mut events = events_of(
            self.client
                .get(self.stream_url("/api/v1/teams/payments/stream"))
                .bearer_auth(self.token(&["payments"]))
                .send()
                .await
                .expect("stream"),
        );
        assert_eq!(next(&mut events).await.event, "hello");
        events
    }

    /// The JetStream stream of a server on NATS.
    pub fn nats_stream(&self) -> &str {
        self.nats_stream.as_deref().expect("a server on NATS")
    }

    pub fn token(&self, teams: &[&str]) -> String {
        team_token(teams)
    }

    pub async fn post_report(&self, body: &Value) -> reqwest::Response {
        self.post_report_with_key(&self.api_key, body).await
    }

    /// Posts a minimal report that must be accepted; its payload.
    pub async fn created_report(&self) -> Value {
        let response = self.post_report(&minimal_report()).await;
        assert_eq!(response.status(), 201, "the report is accepted");
        response.json().await.expect("a JSON payload")
    }

    pub async fn post_report_with_key(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/bugs"))
            .header("x-api-key", key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_bug(&self, id: i64, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/bugs/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn stored_count(&self) -> i64 {
        self.store
            .count_bichitos(self.honeycomb_id)
            .await
            .expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.stream_shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = self.nats_stream.take() {
            delete_nats_stream(name);
        }
        self.objects.remove();
    }
}

/// Where a test server keeps attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Disabled,
    /// A temporary folder, with URLs signed and served by the server.
    Local,
    /// A bucket of its own on the S3-compatible server (`BICHITO_TEST_S3_URL`).
    S3,
}

/// Attaches a PNG to report `id` the widget's way (ticket, upload, complete) with API key
/// `key`; the report as the completion answers it.
pub async fn attach_image(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: i64,
    filename: &str,
    image: Vec<u8>,
) -> Value {
    let ticket: Value = client
        .post(format!("{base}/api/v1/bugs/{id}/attachments"))
        .header("x-api-key", key)
        .json(&json!({"filename": filename, "content_type": "image/png", "content_length": image.len()}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("ticket JSON");
    let url = ticket["url"]
        .as_str()
        .unwrap_or_else(|| panic!("a ticket: {ticket}"));
    let put = client
        .put(url)
        .header("content-type", "image/png")
        .body(image)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(put.status(), 200, "upload to {url}");
    let completed = client
        .post(format!(
            "{base}{}",
            ticket["complete_url"].as_str().expect("complete_url")
        ))
        .header("x-api-key", key)
        .send()
        .await
        .expect("sent");
    assert_eq!(completed.status(), 200);
    completed.json().await.expect("bichito JSON")
}

pub fn s3_url() -> String {
    std::env::var("BICHITO_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9100".into())
}

/// The credentials `scripts/test.sh` starts the S3-compatible server with.
pub fn s3_credentials() -> (String, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    (
        var("BICHITO_TEST_S3_ACCESS_KEY", "bichito-test"),
        var("BICHITO_TEST_S3_SECRET_KEY", "bichito-test-secret"),
    )
}

pub fn s3_settings(bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(s3_url()),
        region: "us-east-1".into(),
        bucket: bucket.to_owned(),
        force_path_style: true,
        credentials: Some(s3_credentials()),
    }
}

/// A plain S3 client for the test server, to look at buckets from outside bichito.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let (id, secret) = s3_credentials();
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(s3_url())
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            id, secret, None, None, "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test's attachment storage, seen from outside the server.
#[derive(Clone)]
pub enum TestObjects {
    None,
    Local(std::path::PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
}

impl TestObjects {
    /// Every object name in the storage, sorted.
    pub async fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        match self {
            TestObjects::None => {}
            TestObjects::Local(dir) => {
                for folder in ["uploads", "attachments"] {
                    let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        names.push(format!("{folder}/{}", entry.file_name().to_string_lossy()));
                    }
                }
            }
            TestObjects::S3 { client, bucket } => {
                let listed = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .send()
                    .await
                    .expect("list the test bucket");
                names.extend(
                    listed
                        .contents()
                        .iter()
                        .filter_map(|object| object.key().map(str::to_owned)),
                );
            }
        }
        names.sort();
        names
    }

    /// Writes an object straight into the storage, behind bichito's back.
    pub async fn put(&self, object: &str, bytes: Vec<u8>, content_type: &str) {
        match self {
            TestObjects::None => panic!("no storage"),
            TestObjects::Local(dir) => std::fs::write(dir.join(object), bytes).expect("write"),
            TestObjects::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(object)
                    .content_type(content_type)
                    .body(bytes.into())
                    .send()
                    .await
                    .expect("put an object");
            }
        }
    }

    fn remove(&self) {
        match self.clone() {
            TestObjects::None => {}
            TestObjects::Local(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestObjects::S3 { bucket, .. } => {
                // A client of the cleanup's own runtime: the test's pooled connections belong
                // to the test's runtime, which waits for this cleanup.
                bichito_core::testing::run_cleanup(move || async move {
                    let client = s3_client().await;
                    if let Ok(listed) = client.list_objects_v2().bucket(&bucket).send().await {
                        for object in listed.contents() {
                            if let Some(key) = object.key() {
                                let _ =
                                    client.delete_object().bucket(&bucket).key(key).send().await;
                            }
                        }
                    }
                    let _ = client.delete_bucket().bucket(&bucket).send().await;
                });
            }
        }
    }
}

async fn test_attachments(kind: StorageKind, base: &str) -> (Attachments, TestObjects) {
    let expiry = |minutes| chrono::TimeDelta::minutes(minutes);
    match kind {
        StorageKind::Disabled => (Attachments::disabled(), TestObjects::None),
        StorageKind::Local => {
            let dir = std::env::temp_dir().join(unique_name("bichito-attachments"));
            let local = LocalStorage::new(dir.clone(), base, b"test-signing-key")
                .expect("create the attachments folder");
            (
                Attachments::new(Some(Storage::Local(local)), expiry(15), expiry(5)),
                TestObjects::Local(dir),
            )
        }
        StorageKind::S3 => {
            let bucket = unique_name("bichito-t");
            let client = s3_client().await;
            client
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "the S3-compatible server must be reachable at {} for tests \
                         (scripts/test.sh starts one): {err:?}",
                        s3_url()
                    )
                });
            let storage = S3Storage::connect(&s3_settings(&bucket)).await;
            (
                Attachments::new(Some(Storage::S3(storage)), expiry(15), expiry(5)),
                TestObjects::S3 { client, bucket },
            )
        }
    }
}

/// A dashboard JWT (signed with [`JWT_SECRET`]) for `teams`, valid for an hour.
pub fn team_token(teams: &[&str]) -> String {
    let teams: Vec<String> = teams.iter().map(|team| (*team).to_owned()).collect();
    mint_token(
        JWT_SECRET,
        "teams",
        "user-1",
        &teams,
        std::time::Duration::from_secs(3600),
    )
    .expect("mint")
}

/// Stream settings for tests: a heartbeat short enough to observe.
pub fn test_stream_args() -> StreamArgs {
    StreamArgs {
        sse_heartbeat_interval: std::time::Duration::from_millis(300),
        ..StreamArgs::default()
    }
}

async fn nats_bus(settings: NatsSettings) -> NatsBus {
    NatsBus::connect(settings)
        .await
        .expect("NATS with JetStream must be reachable for tests")
}

/// `bichito sse` in this process: its base URL, state, and the sender that stops it.
async fn spawn_stream_server(
    settings: NatsSettings,
    clock: Arc<ManualClock>,
    stream: StreamArgs,
    cors: CorsArgs,
) -> (String, StreamState, oneshot::Sender<()>) {
    let jwt = JwtVerifier::from_args(&jwt_args_with_secret(JWT_SECRET), None).expect("jwt config");
    let (bus, grants) = nats_parts(settings).await;
    let streams = StreamState::new(
        bus,
        grants,
        Arc::new(jwt),
        Arc::new(Metrics::new()),
        clock,
        stream,
        cors,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (tx, rx) = oneshot::channel::<()>();
    let served = streams.clone();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        bichito::server::serve_streams(listener, served, HttpArgs::default(), shutdown)
            .await
            .expect("stream server runs");
    });
    (base, streams, tx)
}

/// A bus and the sessions and tickets shared the same way.
pub type BusParts = (Arc<dyn Bus>, Arc<dyn Grants>);

fn memory_bus(stream: &StreamArgs, store: Arc<dyn Store>) -> BusParts {
    let bus = MemoryBus::new(
        stream.sse_queue_size,
        stream.replay_capacity,
        stream.replay_window,
    );
    (Arc::new(bus), Arc::new(LocalGrants::new(store)))
}

/// A NATS bus and the buckets of its stream.
pub async fn nats_parts(settings: NatsSettings) -> BusParts {
    let name = settings.stream_name.clone();
    let replicas = settings.replicas;
    let bus = nats_bus(settings).await;
    let grants = NatsGrants::connect(bus.jetstream(), &name, replicas)
        .await
        .expect("NATS key-value buckets for sessions and tickets");
    (Arc::new(bus), Arc::new(grants))
}

pub fn minimal_report() -> Value {
    json!({"title": "Login button broken", "description": "Nothing happens on click."})
}

/// The error body's rejected field names.
pub async fn rejected_fields(response: reqwest::Response) -> Vec<String> {
    let body: Value = response.json().await.expect("JSON error body");
    assert!(
        body["error"].is_string(),
        "error bodies carry a message: {body}"
    );
    body["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|field| field["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `field` names of an error body, sorted.
pub fn sorted_fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| field["field"].as_str().expect("field name").to_owned())
        .collect();
    fields.sort_unstable();
    fields
}

/// Runs a query returning one text column on the test's own database (either backend).
pub async fn query_text(app: &TestApp, sql: &'static str, bind: &str) -> Vec<String> {
    use sqlx::Row;
    let url = &app.db.as_ref().expect("the app owns its database").url;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let rows = sqlx::query(sql)
            .bind(bind)
            .fetch_all(&pool)
            .await
            .expect("query");
        rows.iter().map(|row| row.get(0)).collect()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let rows = sqlx::query(sql)
            .bind(bind)
            .fetch_all(&pool)
            .await
            .expect("query");
        rows.iter().map(|row| row.get(0)).collect()
    }
}

/// The settings version each server's store is at.
pub async fn settings_versions(apps: &[&TestApp]) -> Vec<u64> {
    let mut versions = Vec::new();
    for app in apps {
        versions.push(
            app.store
                .settings_version()
                .await
                .expect("settings version"),
        );
    }
    versions
}

/// Waits until every server has heard of a settings change made after `before` was read: at
/// once on SQLite, on Postgres when its notification arrives (milliseconds; 2 s at most).
pub async fn settings_changed(apps: &[&TestApp], before: &[u64]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for (app, before) in apps.iter().zip(before) {
        while app
            .store
            .settings_version()
            .await
            .expect("settings version")
            == *before
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the change never reached a server"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Asserts a JSON error with `status`, and returns its body.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json")),
        "errors are JSON"
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "error message: {body}"
    );
    body
}
