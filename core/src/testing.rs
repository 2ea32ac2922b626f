//! Fresh databases for tests: every test gets its own Postgres database or SQLite file, so
//! tests run in parallel and never see each other's rows.
//!
//! Postgres is reached through `BICHITO_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a test that cannot reach it fails.

pub mod postgres_pair;

use crate::store::{self, Store};
use rand::RngExt;
use rand::distr::Alphanumeric;
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Runs each named test once per backend: `name::postgres` and `name::sqlite`; each test is an
/// `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::testing::Backend::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::testing::Backend::Sqlite).await })*
        }
    };
}

/// Sends SIGTERM to process `pid` (by pid, never by name).
pub fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "SIGTERM to {pid}");
}

/// Runs async cleanup from `Drop`, which runs inside a test's runtime and cannot block on it:
/// the work gets a thread and a small runtime of its own, and is waited for.
pub fn run_cleanup<F>(cleanup: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let worker = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(cleanup());
        }
    });
    let _ = worker.join();
}

/// A database that exists for one test and is dropped with it.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { path: PathBuf },
}

pub fn postgres_admin_url() -> String {
    std::env::var("BICHITO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn unique_suffix() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("bichito_t_{}", unique_suffix());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("Postgres must be reachable at {admin_url} for tests: {err}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.clone(),
                name,
            },
        }
    }

    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("bichito-test-{}.db", unique_suffix()));
        Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Sqlite { path },
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Arc<dyn Store> {
        let settings = store::PoolSettings {
            max_connections: 5,
            ..store::PoolSettings::default()
        };
        let store = store::connect(&self.url, settings)
            .await
            .expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                run_cleanup(move || async move {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                            .execute(&mut admin)
                            .await;
                    }
                });
            }
        }
    }
}

/// Runs `promtool check metrics` on a Prometheus text exposition and panics with its findings
/// unless it is clean. promtool comes from `BICHITO_PROMTOOL` (set by `scripts/test.sh`) or PATH.
pub fn assert_promtool_clean(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = std::env::var("BICHITO_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("promtool ({promtool}) must be installed; scripts/test.sh provides it: {err}")
        });
    check
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("write metrics to promtool");
    let output = check.wait_with_output().expect("promtool ran");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {findings}"
    );
}

/// The spec of `examples/honeycomb.yaml`.
pub fn example_spec() -> crate::spec::HoneycombSpec {
    example_honeycomb().spec
}

/// `examples/honeycomb.yaml` as the Kubernetes API server hands it over: namespace `payments`,
/// a uid, generation 1, resourceVersion `100`, no finalizer and no status yet.
pub fn example_honeycomb() -> crate::spec::Honeycomb {
    let document = crate::spec::parse_documents(include_str!("../../examples/honeycomb.yaml"))
        .expect("the example parses")
        .remove(0);
    let mut honeycomb = crate::spec::Honeycomb::new("checkout-web", document.spec);
    honeycomb.metadata.namespace = Some("payments".into());
    honeycomb.metadata.uid = Some("6f1c2a7e-0000-4000-8000-000000000001".into());
    honeycomb.metadata.generation = Some(1);
    honeycomb.metadata.resource_version = Some("100".into());
    honeycomb
}
