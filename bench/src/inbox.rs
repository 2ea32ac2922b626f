//! The inbox in headless Chromium against its budgets: what a first load transfers, how long
//! a team with `--reports` bichitos takes to show, and whether `--rate` events a second into
//! an open inbox ever block the page (a long task, over 50 ms).
//!
//! The reference is the floor for the same rows: the first page of the team's reports as a
//! static HTML table (the inbox's own stylesheet, no script), served by this benchmark on
//! loopback and loaded in the same browser the same way. The browser side is
//! `bench/browser/inbox.cjs` (playwright-core, Debian's Chromium), driven line by line over
//! stdin and stdout.

use crate::Result;
use crate::server::{Server, bichito_binary};
use bichito_core::testing::TestDatabase;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

#[derive(Debug, Clone, Args)]
pub struct InboxArgs {
    /// Reports the team has before the page opens.
    #[arg(long, default_value_t = 1000)]
    pub reports: usize,
    /// Reports a second POSTed while the page is open (each one a `bug.created` event).
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// How long that lasts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// First loads measured, each in a fresh browser context (no cache).
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// The `bichito` binary (default: next to this one).
    #[arg(long)]
    pub bichito: Option<PathBuf>,
    /// The node_modules folder with playwright-core (default: where scripts/test.sh puts it).
    #[arg(long, env = "BICHITO_BROWSER_NODE_PATH")]
    pub node_path: Option<PathBuf>,
}

/// The budgets of the inbox's issue.
const BUDGET_BYTES: f64 = 60.0 * 1024.0;
const BUDGET_RENDER_MS: f64 = 300.0;
const LONG_TASK_MS: f64 = 50.0;

/// A widget's typical report, numbered.
fn report(n: usize) -> Value {
    let severity = ["low", "medium", "high", "critical"][n % 4];
    json!({
        "title": format!("Checkout total wrong after coupon #{n}"),
        "description": "Steps: add two items, apply SPRING10, open the cart. The total ignores the coupon.",
        "severity": severity,
        "environment": "production",
        "app_version": "1.4.2",
        "url": "https://shop.example.com/cart",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/17.4",
        "reporter_email": "user@example.com",
        "extra": {"viewport": "1440x900", "cart_items": 2}
    })
}

struct Browser {
    stdin: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    _child: tokio::process::Child,
}

impl Browser {
    async fn ask(&mut self, command: Value) -> Result<Value> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        let line = tokio::time::timeout(Duration::from_secs(120), self.answers.next_line())
            .await
            .map_err(|_| "the browser did not answer within 120 s")??
            .ok_or("the browser side ended (see its stderr)")?;
        let answer: Value = serde_json::from_str(&line)?;
        if let Some(error) = answer.get("error") {
            return Err(format!("the browser side failed: {error}").into());
        }
        Ok(answer)
    }
}

pub async fn run(args: InboxArgs) -> Result<()> {
    let binary = bichito_binary(args.bichito.clone())?;
    let db = TestDatabase::postgres().await;
    let key = crate::ingest::provisioned(&db).await?;
    let store = db.store().await;
    let server = Server::start(
        &binary,
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("JWT_SECRET", "bench-secret-bench-secret-bench-secret"),
            ("ATTACHMENTS_BACKEND", "disabled"),
        ],
        None,
    )
    .await?;
    let client = reqwest::Client::new();
    let post = |n: usize| {
        client
            .post(format!("{}/api/v1/bugs", server.base))
            .header("x-api-key", &key)
            .json(&report(n))
            .send()
    };
    for n in 0..args.reports {
        if post(n).await?.status() != 201 {
            return Err(format!("report {n} was not accepted").into());
        }
    }
    let reference = serve_reference(&server.base, &*store).await?;
    let link = sign_in_link(&*store, &server.base).await?;
    let mut browser = start_browser(&args, &link, &reference)?;

    let mut loads = Vec::new();
    for _ in 0..args.runs {
        loads.push(browser.ask(json!({"firstLoad": true})).await?);
    }
    let mut floors = Vec::new();
    for _ in 0..args.runs {
        floors.push(browser.ask(json!({"reference": true})).await?);
    }
    // The live part: the page open, `rate` reports a second from outside.
    browser.ask(json!({"open": true})).await?;
    let total = (f64::from(args.rate) * args.duration.as_secs_f64()).round() as usize;
    let started = Instant::now();
    let mut last = Value::Null;
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / f64::from(args.rate));
        tokio::time::sleep_until(due.into()).await;
        let response = post(args.reports + n).await?;
        if response.status() != 201 {
            return Err(format!("live report {n} was not accepted").into());
        }
        last = response.json::<Value>().await?["id"].clone();
    }
    let sent_for = started.elapsed();
    let live = browser.ask(json!({ "waitRow": last })).await?;
    if live["gapless"] != true {
        return Err(format!("the live rows skip a report: {live}").into());
    }
    browser.ask(json!({"quit": true})).await?;
    server.stop().await;

    print(&args, &loads, &floors, &live, total, sent_for);
    Ok(())
}

/// A one-time sign-in link for user `bench` of team `bench`.
async fn sign_in_link(store: &dyn bichito_core::store::Store, base: &str) -> Result<String> {
    let code = bichito_core::session::new_secret("");
    let link = bichito_core::session::SignIn::Link {
        user_id: "bench".into(),
        teams: vec!["bench".into()],
        return_to: "/inbox".into(),
        expires_at: chrono::Utc::now() + chrono::TimeDelta::minutes(10),
    };
    store
        .insert_sign_in(&bichito_core::session::secret_hash(&code), &link)
        .await?;
    Ok(format!("{base}/login?code={code}"))
}

/// Serves the reference page (the first page of the team's reports as a static table, the
/// inbox's stylesheet inline) on a loopback port of its own; its URL.
async fn serve_reference(base: &str, store: &dyn bichito_core::store::Store) -> Result<String> {
    let page = store
        .list_bichitos(&bichito_core::model::BichitoQuery {
            team_id: "bench".into(),
            limit: 100,
            ..Default::default()
        })
        .await?;
    let css = reqwest::get(format!("{base}/inbox/inbox.css"))
        .await?
        .text()
        .await?;
    let mut rows = String::new();
    for bug in &page {
        rows.push_str(&format!(
            "<tr><td class=\"pick\"><input type=\"checkbox\"></td><td>{}</td><td class=\"title\">{}</td>\
             <td class=\"severity\">{}</td><td class=\"status\">{}</td><td class=\"wide\"></td>\
             <td class=\"comments\"></td><td class=\"reported wide\">{}</td></tr>",
            bug.id,
            escape(&bug.title),
            bug.severity.as_str(),
            bug.status.as_str(),
            bug.created_at.format("%H:%M"),
        ));
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>reference</title>\
         <style>{css}</style></head><body><main><table id=\"bugs\" class=\"bugs\"><tbody>{rows}\
         </tbody></table></main></body></html>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}/"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn start_browser(args: &InboxArgs, link: &str, reference: &str) -> Result<Browser> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/inbox.cjs");
    // Where scripts/test.sh installs it (`BICHITO_TOOLS_DIR`, or ~/.cache/bichito-tools).
    let node_path = match &args.node_path {
        Some(path) => path.clone(),
        None => match std::env::var_os("BICHITO_TOOLS_DIR") {
            Some(tools) => PathBuf::from(tools),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/bichito-tools"),
        }
        .join("browser/node_modules"),
    };
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(link)
        .arg(reference)
        .env("NODE_PATH", node_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("node: {err} (scripts/test.sh installs Node.js)"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let answers = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    Ok(Browser {
        stdin,
        answers,
        _child: child,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn spread(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({low:.0}–{high:.0})", median(values.to_vec()))
}

fn figures(answers: &[Value], field: &str) -> Vec<f64> {
    answers
        .iter()
        .filter_map(|answer| answer[field].as_f64())
        .collect()
}

fn print(
    args: &InboxArgs,
    loads: &[Value],
    floors: &[Value],
    live: &Value,
    total: usize,
    sent_for: Duration,
) {
    let bytes = figures(loads, "bytes");
    let raw = figures(loads, "decodedBytes");
    let render = figures(loads, "renderMs");
    let floor = figures(floors, "renderMs");
    println!(
        "inbox: {} reports in the team, first page of {}; {} first loads each\n",
        args.reports,
        args.reports.min(100),
        args.runs
    );
    println!(
        "| side | transferred KB | uncompressed KB | requests | shown after ms, median (lowest–highest) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| inbox | {:.1} | {:.1} | {} | {} |",
        median(bytes.clone()) / 1024.0,
        median(raw) / 1024.0,
        loads
            .first()
            .map_or(Value::Null, |load| load["requests"].clone()),
        spread(&render),
    );
    println!(
        "| reference: the same rows as a static table | {:.1} | – | 1 | {} |",
        floors
            .first()
            .and_then(|floor| floor["bytes"].as_f64())
            .unwrap_or(f64::NAN)
            / 1024.0,
        spread(&floor),
    );
    println!(
        "\nratio inbox/reference (shown after): {:.2}",
        median(render.clone()) / median(floor)
    );
    let long_tasks = live["longTasks"].as_array().cloned().unwrap_or_default();
    let longest = long_tasks
        .iter()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    println!(
        "\nlive: {total} reports in {:.1} s ({:.0}/s) into the open inbox: the last shown {:.0} ms after it was sent, {} rows drawn without a gap; \
         long tasks (over {LONG_TASK_MS:.0} ms) meanwhile: {} (longest {longest:.0} ms); longest gap between frames {:.0} ms",
        sent_for.as_secs_f64(),
        total as f64 / sent_for.as_secs_f64(),
        live["lagMs"].as_f64().unwrap_or(f64::NAN),
        live["rows"],
        long_tasks.len(),
        live["longestFrameGapMs"].as_f64().unwrap_or(f64::NAN),
    );
    println!("\nbudgets:");
    println!(
        "- first load ≤ {:.0} KB transferred: {}",
        BUDGET_BYTES / 1024.0,
        verdict(median(bytes) <= BUDGET_BYTES)
    );
    println!(
        "- shown < {BUDGET_RENDER_MS:.0} ms: {}",
        verdict(median(render) < BUDGET_RENDER_MS)
    );
    println!(
        "- no long task over {LONG_TASK_MS:.0} ms at {} events/s: {}",
        args.rate,
        verdict(long_tasks.is_empty())
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
