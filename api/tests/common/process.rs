//! The real `bichito` binary as a child process of a test: started with its own environment,
//! waited for until it listens, stopped with SIGTERM (by pid) or killed when dropped.

use super::*;
use bichito_core::provision::provision;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Process {
    pub child: Child,
    pub base: String,
    pub stdout_lines: Vec<String>,
    /// Drains stderr as it comes, so a chatty server never blocks on a full pipe.
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// Starts `bichito ARGS…` and waits for its `listening on` line.
pub fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
    start_command(Command::new(env!("CARGO_BIN_EXE_bichito")), args, env)
}

/// Starts `bichito ARGS…` allowed at most `files` open file descriptors (util-linux's
/// `prlimit`, so that the process's own limit, not the machine's, is what runs out).
pub fn start_with_open_files(files: u32, args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={files}:{files}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_bichito"));
    start_command(command, args, env)
}

fn start_command(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Process {
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start bichito");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut logs = String::new();
            let _ = stderr.read_to_string(&mut logs);
            logs
        })
    });
    // Owned from here on, so the child is killed and reaped even if the wait below fails.
    let mut process = Process {
        child,
        base: String::new(),
        stdout_lines: Vec::new(),
        stderr,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("bichito prints `listening on` within a minute");
        if let Some(base) = line.strip_prefix("listening on ") {
            process.base = base.to_owned();
            process.stdout_lines.push(line);
            return process;
        }
        process.stdout_lines.push(line);
    }
}

impl Process {
    /// The address it listens on (`127.0.0.1:port`).
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Sends SIGTERM (by pid).
    pub fn sigterm(&self) {
        bichito_core::testing::sigterm(self.child.id());
    }

    /// Waits up to `limit` for the process to exit: its status, or `None` if it still runs.
    pub fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far and until it exits (call once it has).
    pub fn logs(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }

    /// Sends SIGTERM and returns the exit status and everything logged.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.sigterm();
        let status = self.child.wait().expect("wait");
        let logs = self
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        (status, logs)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh Postgres database with the example honeycomb applied, and its API key.
pub async fn provisioned_postgres() -> (
    TestDatabase,
    std::sync::Arc<dyn bichito_core::store::Store>,
    String,
) {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    let done = provision(
        &*store,
        "payments",
        "checkout-web",
        &example_spec(),
        None,
        chrono::Utc::now(),
    )
    .await
    .expect("provision");
    (db, store, done.api_key)
}

/// Reads SSE events from a response body with a real SSE client library.
pub fn sse_events(
    response: reqwest::Response,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>> {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .take_while(|event| std::future::ready(event.is_ok()))
            .filter_map(|event| std::future::ready(event.ok())),
    )
}

pub async fn next_event(
    events: &mut std::pin::Pin<
        Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>,
    >,
) -> Option<eventsource_stream::Event> {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .ok()
        .flatten()
}

/// The environment of an `api` or `sse` process that shares `nats` (and the tests' JWT
/// secret) with the others.
pub fn bus_env(nats: &bichito::bus::nats::NatsSettings) -> Vec<(&'static str, &str)> {
    vec![
        ("SSE_BACKEND", "nats"),
        ("NATS_URL", nats.url.as_str()),
        ("NATS_STREAM", nats.stream_name.as_str()),
        ("NATS_SUBJECT_PREFIX", nats.subject_prefix.as_str()),
        ("JWT_SECRET", JWT_SECRET),
    ]
}

/// Deletes a test's JetStream stream when dropped.
pub struct StreamCleanup(pub String);

impl Drop for StreamCleanup {
    fn drop(&mut self) {
        delete_nats_stream(self.0.clone());
    }
}
