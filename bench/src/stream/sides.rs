//! Starting and stopping the two sides: `bichito sse` with a private nats-server, and nginx
//! with nchan. Both bind free loopback ports; nginx keeps its files in the run's work folder,
//! nats-server in a folder of its own (`--nats-store`).

use crate::Result;
use crate::load::{cpu_time, rss_bytes};
use crate::server::{Server, bichito_binary};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The programs under test.
#[derive(Debug, Clone, Args)]
pub struct Programs {
    /// The `bichito` binary (default: next to this one).
    #[arg(long)]
    pub bichito: Option<PathBuf>,
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    pub nats_server: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    #[arg(long, default_value = "/usr/lib/nginx/modules/ngx_nchan_module.so")]
    pub nchan_module: PathBuf,
    /// Pin the servers (bichito, nats-server, nginx) to this CPU; run the bench itself under
    /// `taskset -c <another>` to keep the load generator off it.
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// Where the private nats-server keeps JetStream's files. Default: `/dev/shm` (memory),
    /// as nchan keeps its messages in nginx's shared memory; a folder on disk adds the disk's
    /// latency to bichito's side (see BENCHMARKS.md).
    #[arg(long)]
    pub nats_store: Option<PathBuf>,
}

impl Programs {
    fn nats_store(&self) -> PathBuf {
        self.nats_store.clone().unwrap_or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        })
    }
}

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";
/// bichito's default subject prefix: events go to `bichito.team.<team>.<type>`.
pub const SUBJECT_PREFIX: &str = "bichito";

/// `program` under `taskset -c cpu` when a CPU is given (taskset execs it: same pid).
fn command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpu.to_string()).arg(program);
            taskset
        }
        None => Command::new(program),
    }
}

pub struct BichitoSide {
    nats: Child,
    _nats_store: WorkFolder,
    nats_pid: String,
    pub nats_url: String,
    server: Server,
    /// `host:port` of `bichito sse`.
    pub address: String,
    token: String,
}

impl BichitoSide {
    /// nats-server with JetStream on a free port, then `bichito sse` reading from it, with a
    /// token for `teams`.
    pub async fn start(programs: &Programs, teams: &[String]) -> Result<Self> {
        let port = free_port()?;
        let store = WorkFolder::create_in(&programs.nats_store(), "nats")?;
        let mut nats = command(&programs.nats_server, programs.server_cpu);
        nats.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store.0);
        let (nats, nats_pid) = spawn_listening(&mut nats, port).await?;
        let nats_url = format!("nats://127.0.0.1:{port}");
        let server = Server::start(
            &bichito_binary(programs.bichito.clone())?,
            &["sse", "--listen", "127.0.0.1:0"],
            &[
                ("SSE_BACKEND", "nats"),
                ("NATS_URL", &nats_url),
                ("JWT_SECRET", JWT_SECRET),
            ],
            programs.server_cpu,
        )
        .await?;
        let token = bichito::auth::mint_token(
            JWT_SECRET,
            "teams",
            "bench",
            teams,
            Duration::from_secs(3600),
        )?;
        let address = server.base.trim_start_matches("http://").to_owned();
        Ok(Self {
            nats,
            _nats_store: store,
            nats_pid,
            nats_url,
            server,
            address,
            token,
        })
    }

    /// The raw HTTP request of a subscriber to `team`'s stream.
    pub fn request(&self, team: &str) -> String {
        format!(
            "GET /api/v1/teams/{team}/stream?token={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.token, self.address
        )
    }

    /// Resident memory of bichito and nats-server together.
    pub fn memory(&self) -> u64 {
        rss_bytes(&self.server.pid).unwrap_or(0) + rss_bytes(&self.nats_pid).unwrap_or(0)
    }

    /// CPU time of (bichito sse, nats-server).
    pub fn cpu(&self) -> (Duration, Duration) {
        (
            cpu_time(&self.server.pid).unwrap_or_default(),
            cpu_time(&self.nats_pid).unwrap_or_default(),
        )
    }

    pub async fn stop(mut self) {
        self.server.stop().await;
        let _ = self.nats.kill().await;
    }
}

pub struct NchanSide {
    nginx: Child,
    pid: String,
    /// `host:port` of nginx.
    pub address: String,
}

impl NchanSide {
    /// One nginx process with nchan on a free port, configured in `work/nginx`.
    pub async fn start(programs: &Programs, work: &Path) -> Result<Self> {
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
                module = programs.nchan_module.display(),
                prefix = prefix.display(),
            ),
        )?;
        let mut nginx = command(&programs.nginx, programs.server_cpu);
        nginx.arg("-p").arg(&prefix).arg("-c").arg(&config);
        let (nginx, pid) = spawn_listening(&mut nginx, port).await?;
        Ok(Self {
            nginx,
            pid,
            address: format!("127.0.0.1:{port}"),
        })
    }

    /// The raw HTTP request of a subscriber to `team`'s channel.
    pub fn request(&self, team: &str) -> String {
        format!(
            "GET /sub/{team} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.address
        )
    }

    pub fn memory(&self) -> u64 {
        rss_bytes(&self.pid).unwrap_or(0)
    }

    pub fn cpu(&self) -> Duration {
        cpu_time(&self.pid).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.nginx.kill().await;
    }
}

/// `team0`, `team1`, …
pub fn team_names(teams: usize) -> Vec<String> {
    (0..teams).map(|team| format!("team{team}")).collect()
}

/// A folder of this run's own, removed when dropped.
pub struct WorkFolder(pub PathBuf);

impl WorkFolder {
    pub fn create(name: &str) -> Result<Self> {
        Self::create_in(&std::env::temp_dir(), name)
    }

    pub fn create_in(parent: &Path, name: &str) -> Result<Self> {
        let path = parent.join(format!("bichito-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for WorkFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `command` (quiet, killed with its handle) and waits until it listens on `port`;
/// answers the child and its pid.
async fn spawn_listening(command: &mut Command, port: u16) -> Result<(Child, String)> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the server exited at once")?.to_string();
    wait_for_port(port).await?;
    Ok((child, pid))
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
