//! The team stream against nginx with nchan: idle connections held and memory per connection.
//!
//! bichito's side is `bichito sse` fed by a NATS JetStream server of its own, and both
//! processes' memory counts. nchan's side is one nginx process (`master_process off`) with the
//! nchan module: an EventSource subscriber location, a 64-message buffer, a 30 s ping. The
//! client opens raw TCP connections (a process may hold at most 20,000 files here), each an
//! SSE request for one of `--teams` teams, and counts a connection once its response headers
//! say 200.

use crate::Result;
use crate::load::rss_bytes;
use crate::server::{Server, bichito_binary};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connection counts to measure at, rising; connections stay open from one to the next.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000, 10000, 18000])]
    pub counts: Vec<usize>,
    /// Teams the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub teams: usize,
    /// The `bichito` binary (default: next to this one).
    #[arg(long)]
    pub bichito: Option<PathBuf>,
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    pub nats_server: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    #[arg(long, default_value = "/usr/lib/nginx/modules/ngx_nchan_module.so")]
    pub nchan_module: PathBuf,
}

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";

/// Memory at each connection count, for one side.
struct Ramp {
    baseline: u64,
    at: Vec<(usize, u64)>,
}

pub async fn idle(args: IdleArgs) -> Result<()> {
    let work = std::env::temp_dir().join(format!("bichito-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let ours = bichito_ramp(&args, &work).await;
    let theirs = nchan_ramp(&args, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    let (ours, theirs) = (ours?, theirs?);
    println!(
        "idle SSE connections over {} teams: resident memory growth per connection",
        args.teams
    );
    println!();
    println!(
        "| connections | bichito sse + NATS MiB | per connection KiB | nginx + nchan MiB | per connection KiB | ratio bichito/nchan |"
    );
    println!("|---|---|---|---|---|---|");
    for ((count, our_rss), (_, their_rss)) in ours.at.iter().zip(&theirs.at) {
        let per = |rss: u64, base: u64| (rss.saturating_sub(base)) as f64 / *count as f64 / 1024.0;
        let our_per = per(*our_rss, ours.baseline);
        let their_per = per(*their_rss, theirs.baseline);
        println!(
            "| {count} | {:.1} | {our_per:.2} | {:.1} | {their_per:.2} | {:.2} |",
            *our_rss as f64 / 1048576.0,
            *their_rss as f64 / 1048576.0,
            our_per / their_per.max(f64::EPSILON)
        );
    }
    Ok(())
}

async fn bichito_ramp(args: &IdleArgs, work: &Path) -> Result<Ramp> {
    let port = free_port()?;
    let store = work.join("nats");
    let mut nats = Command::new(&args.nats_server)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let nats_pid = nats.id().ok_or("nats-server exited")?.to_string();
    wait_for_port(port).await?;
    let url = format!("nats://127.0.0.1:{port}");
    let server = Server::start(
        &bichito_binary(args.bichito.clone())?,
        &["sse", "--listen", "127.0.0.1:0"],
        &[
            ("SSE_BACKEND", "nats"),
            ("NATS_URL", &url),
            ("JWT_SECRET", JWT_SECRET),
        ],
        None,
    )
    .await?;
    let teams: Vec<String> = (0..args.teams).map(|team| format!("team{team}")).collect();
    let token = bichito::auth::mint_token(
        JWT_SECRET,
        "teams",
        "bench",
        &teams,
        Duration::from_secs(3600),
    )?;
    let address = server.base.trim_start_matches("http://").to_owned();
    let requests: Vec<String> = teams
        .iter()
        .map(|team| {
            format!(
                "GET /api/v1/teams/{team}/stream?token={token} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
            )
        })
        .collect();
    let memory = || rss_bytes(&server.pid).unwrap_or(0) + rss_bytes(&nats_pid).unwrap_or(0);
    let ramp = ramp(&address, &requests, &args.counts, memory).await;
    server.stop().await;
    let _ = nats.kill().await;
    ramp
}

async fn nchan_ramp(args: &IdleArgs, work: &Path) -> Result<Ramp> {
    let port = free_port()?;
    let prefix = work.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let config = prefix.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "load_module {module};
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_message_buffer_length 64;
            nchan_eventsource_ping_interval 30;
        }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 64;
        }}
    }}
}}
",
            module = args.nchan_module.display(),
            prefix = prefix.display(),
        ),
    )?;
    let mut nginx: Child = Command::new(&args.nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = nginx.id().ok_or("nginx exited")?.to_string();
    wait_for_port(port).await?;
    let address = format!("127.0.0.1:{port}");
    let requests: Vec<String> = (0..args.teams)
        .map(|team| {
            format!("GET /sub/team{team} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n")
        })
        .collect();
    let ramp = ramp(&address, &requests, &args.counts, || {
        rss_bytes(&pid).unwrap_or(0)
    })
    .await;
    let _ = nginx.kill().await;
    ramp
}

/// Opens connections up to each count in turn, measuring `memory` after each step.
async fn ramp(
    address: &str,
    requests: &[String],
    counts: &[usize],
    memory: impl Fn() -> u64,
) -> Result<Ramp> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = memory();
    let mut open: Vec<TcpStream> = Vec::new();
    let mut at = Vec::new();
    for &count in counts {
        while open.len() < count {
            let batch = (count - open.len()).min(200);
            let mut opening = Vec::with_capacity(batch);
            for index in open.len()..open.len() + batch {
                let request = requests[index % requests.len()].clone();
                let address = address.to_owned();
                opening.push(tokio::spawn(
                    async move { subscribe(&address, &request).await },
                ));
            }
            for task in opening {
                open.push(task.await??);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        at.push((count, memory()));
    }
    drop(open);
    Ok(Ramp { baseline, at })
}

/// One SSE subscriber: connects, sends the request, waits for a 200 status line.
async fn subscribe(address: &str, request: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .map_err(|_| "no response headers within 30 s")??;
        if read == 0 {
            return Err("the server closed the connection".into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!("subscription refused: {}", String::from_utf8_lossy(&head)).into());
    }
    Ok(stream)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16) -> Result<()> {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing listens on port {port} after 5 s").into())
}
