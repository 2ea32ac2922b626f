//! The real `bichito` binary as separate processes: two api processes sharing one Postgres,
//! graceful SIGTERM, secrets kept out of the logs, and `bichito dev` keeping its data and key.

mod common;

use common::process::*;
use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn two_api_processes_share_the_rate_limit_and_stop_cleanly_on_sigterm() {
    let (db, store, key) = provisioned_postgres().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET", JWT_SECRET),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info,bichito=debug"),
    ];
    let processes = [
        start(&["api", "--listen", "127.0.0.1:0"], &env),
        start(&["api", "--listen", "127.0.0.1:0"], &env),
    ];
    let client = reqwest::Client::new();
    let post = |base: &str| {
        client
            .post(format!("{base}/api/v1/bugs"))
            .header("x-api-key", &key)
            .json(&minimal_report())
            .send()
    };
    for turn in 0..60 {
        let response = post(&processes[turn % 2].base).await.expect("sent");
        assert_eq!(response.status(), 201, "report {turn}");
    }
    assert_eq!(post(&processes[0].base).await.expect("sent").status(), 429);
    assert_eq!(post(&processes[1].base).await.expect("sent").status(), 429);
    assert_eq!(store.count_bichitos(1).await.expect("count"), 60);

    let token = bichito::auth::mint_token(
        JWT_SECRET,
        "teams",
        "ana",
        &["payments".into()],
        Duration::from_secs(60),
    )
    .expect("token");
    let read = client
        .get(format!("{}/api/v1/bugs/1?token={token}", processes[0].base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 200);
    // A session and a stream ticket, whose secrets must not reach a log line either.
    let session = client
        .post(format!("{}/api/v1/session", processes[1].base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(session.status(), 201);
    let cookie = session.headers()["set-cookie"].to_str().expect("ascii");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let session_secret = cookie.split_once('=').expect("pair").1.to_owned();
    let ticket = json_of(
        client
            .post(format!(
                "{}/api/v1/teams/payments/stream/tickets",
                processes[1].base
            ))
            .header("cookie", &cookie)
            .header("origin", &processes[1].base),
    )
    .await;
    let ticket = ticket["ticket"].as_str().expect("ticket").to_owned();
    let used = client
        .get(format!(
            "{}/api/v1/teams/payments/stream?ticket={ticket}",
            processes[1].base
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(used.status(), 404, "the api alone serves no stream");

    for process in processes {
        let (status, logs) = process.terminate();
        assert!(status.success(), "exit status {status:?}");
        assert!(logs.contains("shutting down"), "{logs}");
        assert!(
            logs.contains("\"route\":\"/api/v1/bugs\""),
            "JSON access logs: {logs}"
        );
        assert!(!logs.contains(&key), "the API key never reaches a log line");
        assert!(!logs.contains(&token), "the token never reaches a log line");
        assert!(!logs.contains(&session_secret), "nor a session's secret");
        assert!(!logs.contains(&ticket), "nor a stream ticket");
        assert!(!logs.contains(&ticket[3..]), "nor any part of one");
    }
}

/// `per_process` reports sent at once to each of `count` api processes sharing one database,
/// against the default limit of 60 per minute: exactly 60 are accepted, the rest are 429, and
/// exactly 60 are stored.
async fn a_concurrent_burst_over_api_processes_is_limited_exactly(
    count: usize,
    per_process: usize,
) {
    let (db, store, key) = provisioned_postgres().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET", JWT_SECRET),
    ];
    let processes: Vec<Process> = (0..count)
        .map(|_| start(&["api", "--listen", "127.0.0.1:0"], &env))
        .collect();
    let client = reqwest::Client::new();
    let sends = processes.iter().flat_map(|process| {
        (0..per_process).map(|_| {
            client
                .post(format!("{}/api/v1/bugs", process.base))
                .header("x-api-key", &key)
                .json(&minimal_report())
                .send()
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|response| response.expect("answered").status().as_u16())
        .collect();
    let accepted = statuses.iter().filter(|status| **status == 201).count();
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(
        (accepted, limited),
        (60, count * per_process - 60),
        "exactly the limit over {count} processes"
    );
    assert_eq!(store.count_bichitos(1).await.expect("count"), 60);
}

#[tokio::test]
async fn a_burst_over_two_api_processes_is_limited_exactly() {
    a_concurrent_burst_over_api_processes_is_limited_exactly(2, 100).await;
}

#[tokio::test]
async fn a_burst_over_four_api_processes_is_limited_exactly() {
    a_concurrent_burst_over_api_processes_is_limited_exactly(4, 100).await;
}

#[tokio::test]
async fn bichito_dev_needs_nothing_and_keeps_its_data_and_key() {
    let data = std::env::temp_dir().join(format!("bichito-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_dir = data.to_str().expect("utf-8 path");
    let args = ["dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
    let line_value = |lines: &[String], label: &str| {
        lines
            .iter()
            .find_map(|line| {
                line.trim_start()
                    .strip_prefix(label)
                    .map(|rest| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("`{label}` line in {lines:?}"))
    };

    let first = start(&args, &[]);
    let key = line_value(&first.stdout_lines, "API key");
    let token = line_value(&first.stdout_lines, "JWT");
    assert!(key.starts_with("sk_live_"));
    assert!(
        first.stdout_lines.iter().any(|line| line.contains("curl")),
        "prints curl lines"
    );
    let client = reqwest::Client::new();
    // The printed API reference is the served OpenAPI document.
    let docs = line_value(&first.stdout_lines, "API docs");
    let docs_url = docs.split_whitespace().next().unwrap_or_default();
    assert_eq!(docs_url, format!("{}/api/v1/openapi.json", first.base));
    let document: serde_json::Value = client
        .get(docs_url)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("the document is JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let id = report_id(&client, &first.base, &key).await;
    assert!(id > 3, "demo reports came first");
    // The printed link signs in once, as `dev` on the honeycomb's team.
    let link = line_value(&first.stdout_lines, "sign in");
    assert!(
        link.starts_with(&format!("{}/login?code=", first.base)),
        "{link}"
    );
    assert_eq!(signed_in_as(&client, &first.base, &link).await, "dev");
    let again = client.get(&link).send().await.expect("sent");
    assert_eq!(again.status(), 401, "a sign-in link works once");
    let (status, _) = first.terminate();
    assert!(status.success());

    let second = start(&args, &[]);
    assert_eq!(
        line_value(&second.stdout_lines, "API key"),
        key,
        "the key survives a restart"
    );
    let fetched = client
        .get(format!("{}/api/v1/bugs/{id}", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(fetched.status(), 200, "the data survives a restart");
    let demo = client
        .get(format!("{}/api/v1/bugs/1", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        demo.json::<Value>().await.expect("json")["team_id"],
        "payments"
    );
    // Attachments work out of the box: a local folder, URLs served by the process itself.
    let attached = attach_png(&client, &second.base, &key, id).await;
    assert_eq!(attached["attachment"]["filename"], "shot.png");
    // `bichito token --link` mints another link for the same data folder.
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_bichito"))
        .args(["token", "--sub", "ana", "--team", "payments", "--link"])
        .args(["--public-url", &second.base, "--data-dir", data_dir])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run bichito token --link");
    assert!(minted.status.success(), "{minted:?}");
    let link = String::from_utf8(minted.stdout).expect("utf-8");
    assert_eq!(
        signed_in_as(&client, &second.base, link.trim()).await,
        "ana"
    );
    let stored = std::fs::read_dir(data.join("attachments/attachments"))
        .expect("the data folder holds the attachments")
        .count();
    assert_eq!(stored, 1);
    drop(second);
    let _ = std::fs::remove_dir_all(&data);
}

/// Follows a sign-in link; the user of the session its cookie opens.
async fn signed_in_as(client: &reqwest::Client, base: &str, link: &str) -> String {
    let page = client.get(link).send().await.expect("sent");
    assert_eq!(page.status(), 200, "{link}");
    let cookie = page.headers()["set-cookie"].to_str().expect("ascii");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let session = json_of(
        client
            .get(format!("{base}/api/v1/session"))
            .header("cookie", cookie),
    )
    .await;
    session["sub"].as_str().expect("sub").to_owned()
}

#[test]
fn bichito_apply_creates_keeps_and_rotates_keys_and_rejects_bad_files() {
    let data = std::env::temp_dir().join(format!("bichito-apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data dir");
    let example = include_str!("../../examples/honeycomb.yaml");
    let file = data.join("honeycomb.yaml");
    let apply = |yaml: &str| {
        std::fs::write(&file, yaml).expect("write yaml");
        let output = Command::new(env!("CARGO_BIN_EXE_bichito"))
            .args([
                "apply",
                "-f",
                file.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
            ])
            .env_remove("DATABASE_URL")
            .output()
            .expect("run bichito apply");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let key_file = data.join("secrets/payments/checkout-web-api-key");

    let (ok, stdout, stderr) = apply(example);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("payments/checkout-web applied") && stdout.contains("(new key)"),
        "{stdout}"
    );
    let key = std::fs::read_to_string(&key_file).expect("key file");
    assert!(key.starts_with("sk_live_"));
    assert!(
        !stdout.contains(&key),
        "apply prints the prefix, not the key"
    );

    let (ok, stdout, _) = apply(example);
    assert!(ok && stdout.contains("(key unchanged)"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key file"), key);

    let (ok, stdout, _) =
        apply(&example.replace("rotate: \"2026-11-01\"", "rotate: \"2026-12-01\""));
    assert!(ok && stdout.contains("(key rotated)"), "{stdout}");
    assert_ne!(std::fs::read_to_string(&key_file).expect("key file"), key);

    let (ok, _, stderr) = apply(&example.replace("plan: free", "plan: gold"));
    assert!(!ok, "an invalid file fails");
    assert!(
        stderr.contains("spec.plan"),
        "the error names the field: {stderr}"
    );
    let (ok, _, stderr) = apply(&example.replace("team: payments", "team: Payments!"));
    assert!(!ok && stderr.contains("team \"Payments!\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn api_and_sse_processes_share_only_nats_and_a_sigtermed_stream_resumes_elsewhere() {
    let (db, _store, key) = provisioned_postgres().await;
    let nats = common::unique_nats_settings();
    let _cleanup = StreamCleanup(nats.stream_name.clone());
    let bus_env = bus_env(&nats);
    let mut api_env = bus_env.clone();
    api_env.push(("DATABASE_URL", db.url.as_str()));
    let api = start(&["api", "--listen", "127.0.0.1:0"], &api_env);
    let first_sse = start(&["sse", "--listen", "127.0.0.1:0"], &bus_env);
    let second_sse = start(&["sse", "--listen", "127.0.0.1:0"], &bus_env);

    let client = reqwest::Client::new();
    let token = bichito::auth::mint_token(
        JWT_SECRET,
        "teams",
        "ana",
        &["payments".into()],
        Duration::from_secs(600),
    )
    .expect("token");
    let stream_url = |base: &str| format!("{base}/api/v1/teams/payments/stream?token={token}");
    let report = |title: String| {
        client
            .post(format!("{}/api/v1/bugs", api.base))
            .header("x-api-key", &key)
            .json(&serde_json::json!({"title": title, "description": "d"}))
            .send()
    };
    let no_stream_on_api = client
        .get(stream_url(&api.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        no_stream_on_api.status(),
        404,
        "the api process does not serve streams"
    );

    let mut events = sse_events(
        client
            .get(stream_url(&first_sse.base))
            .send()
            .await
            .expect("stream"),
    );
    assert_eq!(next_event(&mut events).await.expect("hello").event, "hello");
    let mut last_id = String::new();
    for n in 0..3 {
        assert_eq!(
            report(format!("before {n}")).await.expect("sent").status(),
            201
        );
        let event = next_event(&mut events)
            .await
            .expect("bug.created through NATS");
        assert_eq!(event.event, "bug.created");
        assert_eq!(
            serde_json::from_str::<Value>(&event.data).expect("json")["title"],
            format!("before {n}")
        );
        last_id = event.id;
    }

    let (status, _) = first_sse.terminate();
    assert!(status.success(), "the sse process exits cleanly on SIGTERM");
    assert!(next_event(&mut events).await.is_none(), "its stream ended");
    for n in 0..3 {
        assert_eq!(
            report(format!("during {n}")).await.expect("sent").status(),
            201
        );
    }

    let resumed = client
        .get(stream_url(&second_sse.base))
        .header("last-event-id", &last_id)
        .send()
        .await
        .expect("stream");
    let mut events = sse_events(resumed);
    assert_eq!(next_event(&mut events).await.expect("hello").event, "hello");
    let mut titles = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut events).await.expect("a missed event");
        titles.push(
            serde_json::from_str::<Value>(&event.data).expect("json")["title"]
                .as_str()
                .expect("title")
                .to_owned(),
        );
    }
    assert_eq!(
        titles,
        ["during 0", "during 1", "during 2"],
        "nothing lost, nothing twice"
    );
    assert_eq!(report("after".into()).await.expect("sent").status(), 201);
    let live = next_event(&mut events).await.expect("live event");
    assert_eq!(
        serde_json::from_str::<Value>(&live.data).expect("json")["title"],
        "after"
    );
    drop(api);
    drop(second_sse);
}

/// Sends a minimal report; its id.
async fn report_id(client: &reqwest::Client, base: &str, key: &str) -> i64 {
    let created: Value = client
        .post(format!("{base}/api/v1/bugs"))
        .header("x-api-key", key)
        .json(&minimal_report())
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    created["id"].as_i64().expect("id")
}

/// The attachment flow through a real process: ask, PUT to the returned URL, complete.
async fn attach_png(client: &reqwest::Client, base: &str, key: &str, id: i64) -> Value {
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    image.resize(1234, 7);
    attach_image(client, base, key, id, "shot.png", image).await
}

#[tokio::test]
async fn an_api_process_takes_its_s3_settings_and_credentials_from_the_environment() {
    let (db, _store, key) = provisioned_postgres().await;
    let s3 = s3_client().await;
    let bucket = format!("bichito-p-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the S3-compatible server (scripts/test.sh starts it)");
    let (access_key, secret_key) = s3_credentials();
    let endpoint = s3_url();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET", JWT_SECRET),
        ("ATTACHMENTS_BACKEND", "s3"),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_BUCKET", bucket.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret_key.as_str()),
    ];
    let api = start(&["api", "--listen", "127.0.0.1:0"], &env);
    let client = reqwest::Client::new();
    let id = report_id(&client, &api.base, &key).await;
    let bichito = attach_png(&client, &api.base, &key, id).await;
    assert_eq!(bichito["attachment"]["content_length"], 1234);
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list");
    assert!(
        listed
            .contents()
            .iter()
            .any(|object| object.key().is_some_and(|k| k.starts_with("attachments/"))),
        "the verified copy is in the bucket"
    );
    let (status, logs) = api.terminate();
    assert!(status.success(), "{logs}");
    assert!(
        !logs.contains(&secret_key),
        "the S3 secret never reaches a log line"
    );
    for object in listed.contents() {
        if let Some(name) = object.key() {
            let _ = s3.delete_object().bucket(&bucket).key(name).send().await;
        }
    }
    let _ = s3.delete_bucket().bucket(&bucket).send().await;
}

#[test]
fn s3_attachments_without_a_bucket_stop_the_process_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ATTACHMENTS_BACKEND", "s3")
        .env_remove("S3_BUCKET")
        .env(
            "BICHITO_DATA_DIR",
            std::env::temp_dir().join(format!("bichito-nob-{}", std::process::id())),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run bichito");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("S3_BUCKET"), "{stderr}");
}
