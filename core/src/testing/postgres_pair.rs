//! A Postgres primary and its streaming replica of the test's own (Debian's Postgres binaries:
//! `initdb`, `pg_basebackup`, `pg_ctl`), on free loopback ports, and a TCP proxy standing in
//! for the Kubernetes Service that CloudNativePG moves to the new primary (`<cluster>-rw`).
//! Never the machine's Postgres.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The newest Postgres server binaries installed (`/usr/lib/postgresql/<major>/bin`).
fn bin_dir() -> PathBuf {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries in /usr/lib/postgresql (scripts/test.sh installs them)")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort_unstable();
    let major = majors.last().expect("a Postgres major version installed");
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

/// Postgres refuses to run as root: as root, its commands run as the `postgres` user.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn postgres_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot run: {err}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One Postgres server: its data folder and port.
pub struct PgServer {
    data: PathBuf,
    pub port: u16,
    running: bool,
}

impl PgServer {
    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn start(&mut self, settings: &[&str]) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.display()
        );
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let mut command = postgres_command("pg_ctl");
        command
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.with_extension("log"))
            .args(["-o", &options]);
        run(command, "pg_ctl start");
        self.running = true;
    }

    /// Stops it at once, as a crash or a lost node does (`pg_ctl stop -m immediate`).
    pub fn crash(&mut self) {
        if self.running {
            let mut command = postgres_command("pg_ctl");
            command
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&self.data);
            let _ = command.stdin(Stdio::null()).output();
            self.running = false;
        }
    }

    /// Makes a replica the primary (`pg_ctl promote`), waiting until it accepts writes.
    pub fn promote(&self) {
        let mut command = postgres_command("pg_ctl");
        command
            .args(["promote", "-w", "-t", "60", "-D"])
            .arg(&self.data);
        run(command, "pg_ctl promote");
    }
}

/// A primary and its streaming replica, in a folder of the test's own.
pub struct PgPair {
    dir: PathBuf,
    pub primary: PgServer,
    pub replica: PgServer,
}

impl PgPair {
    /// A primary and a replica made from it by `pg_basebackup`, streaming from it.
    /// `synchronous`: the primary's commits wait until the replica has flushed them
    /// (`synchronous_standby_names = '*'`), else replication is asynchronous.
    pub fn start(synchronous: bool) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bichito-pg-pair-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("the pair's folder");
        if running_as_root() {
            run(
                {
                    let mut command = Command::new("chown");
                    command.arg("postgres:postgres").arg(&dir);
                    command
                },
                "chown the pair's folder to postgres",
            );
        }
        let mut primary = PgServer {
            data: dir.join("primary"),
            port: free_port(),
            running: false,
        };
        let mut command = postgres_command("initdb");
        command
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&primary.data);
        run(command, "initdb");
        let sync = if synchronous {
            "synchronous_standby_names='*'"
        } else {
            "synchronous_standby_names=''"
        };
        primary.start(&[sync]);

        let mut replica = PgServer {
            data: dir.join("replica"),
            port: free_port(),
            running: false,
        };
        let mut command = postgres_command("pg_basebackup");
        command
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-R", "-c", "fast", "-D"])
            .arg(&replica.data);
        run(command, "pg_basebackup");
        replica.start(&[]);
        Self {
            dir,
            primary,
            replica,
        }
    }

    /// Creates the database `name` on the primary (the replica gets it by replication).
    pub async fn create_database(&self, name: &str) {
        let mut admin =
            <sqlx::PgConnection as sqlx::Connection>::connect(&self.primary.url("postgres"))
                .await
                .expect("the primary answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the database");
    }

    /// Waits (up to 30 s) until the replica streams from the primary (in sync when asked).
    pub async fn wait_until_streaming(&self) {
        let url = self.primary.url("postgres");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(mut connection) =
                <sqlx::PgConnection as sqlx::Connection>::connect(&url).await
            {
                let streaming: Option<i64> = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                )
                .fetch_one(&mut connection)
                .await
                .ok();
                if streaming == Some(1) {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica did not stream from the primary within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        self.primary.crash();
        self.replica.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to one upstream at a time, as a Kubernetes Service is to the pod its selector
/// picks: moving it cuts the connections to the old upstream.
pub struct ServiceProxy {
    pub address: String,
    upstream: watch::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (upstream, watching) = watch::channel(upstream);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(Self::forward(client, watching.clone()));
            }
        });
        Self {
            address,
            upstream,
            task,
        }
    }

    /// Sends new connections to `upstream` and cuts those to the old one.
    pub fn move_to(&self, upstream: String) {
        self.upstream.send_replace(upstream);
    }

    async fn forward(mut client: TcpStream, mut upstream: watch::Receiver<String>) {
        let target = upstream.borrow_and_update().clone();
        let Ok(mut server) = TcpStream::connect(&target).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            _ = upstream.changed() => {}
        }
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
