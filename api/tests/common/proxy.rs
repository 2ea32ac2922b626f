//! A private nginx (Debian's, as most deployments put in front) on a port of the test's own:
//! started with its own prefix folder, killed by pid when dropped. Never the machine's nginx.

use std::time::Duration;

/// A free loopback port (for a server that is not ours to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Everything to `upstream` (`host:port`), unbuffered (the stream), with nginx's default
/// `Host` (the upstream's).
pub fn everything_to(upstream: &str) -> String {
    format!("location / {{ proxy_pass http://{upstream}; {UNBUFFERED} }}")
}

/// What every proxied location needs for a stream to flow and live.
pub const UNBUFFERED: &str = "proxy_http_version 1.1; proxy_buffering off; proxy_read_timeout 1h;";

/// nginx on `port` with `routes` (`upstream` blocks go in `http`, `location`s in the server):
/// its access log file, and the process.
pub async fn start(port: u16, routes: &str) -> (std::path::PathBuf, tokio::process::Child) {
    start_with(port, "", routes).await
}

/// [`start`] with `upstreams` (nginx `upstream` blocks) beside the server.
pub async fn start_with(
    port: u16,
    upstreams: &str,
    routes: &str,
) -> (std::path::PathBuf, tokio::process::Child) {
    let prefix = std::env::temp_dir().join(format!("bichito-proxy-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&prefix).expect("proxy folder");
    let log = prefix.join("access.log");
    let config = prefix.join("nginx.conf");
    let p = prefix.display();
    std::fs::write(
        &config,
        format!(
            "daemon off;
master_process off;
worker_processes 1;
error_log {p}/error.log warn;
pid {p}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    {upstreams}
    server {{
        listen 127.0.0.1:{port};
        {routes}
    }}
}}
"
        ),
    )
    .expect("proxy config");
    let child = tokio::process::Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx runs (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx listens within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (log, child)
}
