//! NATS servers a test owns: one server, or a cluster of several, on free loopback ports with
//! store folders of their own. Stopping them never touches the machine's shared server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn nats_server_binary() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists())
    .expect("nats-server must be installed (scripts/test.sh installs it)")
}

fn free_port() -> u16 {
    super::proxy::free_port()
}

/// Waits (up to 10 s) until `port` accepts connections.
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on port {port}");
}

/// Waits (up to 10 s) until `port` accepts connections, without blocking the runtime.
async fn port_open(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on port {port}");
}

/// A nats-server with JetStream that this test owns.
pub struct PrivateNats {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let store =
            std::env::temp_dir().join(format!("bichito-nats-{}-{port}", std::process::id()));
        let mut nats = Self {
            port,
            store,
            child: None,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store folder, and waits until it accepts clients.
    pub fn resume(&mut self) {
        let child = Command::new(nats_server_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_for_port(self.port, "the private nats-server");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// How a cluster node is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, as Kubernetes stops a pod: nats-server hands its leaderships over first.
    Graceful,
    /// SIGKILL: a crash, the node gone without a word.
    Crash,
}

struct Node {
    name: String,
    client_port: u16,
    /// The monitoring port (`/healthz`).
    http_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of nats-servers on loopback, named `n0`, `n1`, ...
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until JetStream answers on each.
    pub async fn start(size: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bichito-nats-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster folder");
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = route_ports
            .iter()
            .enumerate()
            .map(|(index, route_port)| {
                let name = format!("n{index}");
                let client_port = free_port();
                let http_port = free_port();
                let config = dir.join(format!("{name}.conf"));
                let store = dir.join(&name);
                std::fs::write(
                    &config,
                    format!(
                        "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                         http: 127.0.0.1:{http_port}\n\
                         jetstream {{ store_dir: {store:?} }}\n\
                         cluster {{\n  name: bichito-test\n  listen: 127.0.0.1:{route_port}\n  \
                         routes: [{routes}]\n}}\n"
                    ),
                )
                .expect("node config");
                Node {
                    name,
                    client_port,
                    http_port,
                    config,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self { dir, nodes };
        for index in 0..size {
            cluster.spawn(index).await;
        }
        for index in 0..size {
            cluster.wait_until_healthy(index).await;
        }
        cluster
    }

    /// Every node's client URL, comma-separated, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        (0..self.nodes.len())
            .map(|index| self.node_url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node_url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    pub fn node_name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    async fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        node.child = Some(child);
        port_open(node.client_port, &node.name).await;
    }

    /// Stops node `index`, and waits until its process is gone.
    pub async fn stop(&mut self, index: usize, how: Stop) {
        let Some(mut child) = self.nodes[index].child.take() else {
            return;
        };
        match how {
            Stop::Crash => {
                let _ = child.kill();
            }
            Stop::Graceful => bichito_core::testing::sigterm(child.id()),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts node `index` again (same name, ports and store) and waits until it is healthy.
    pub async fn restart(&mut self, index: usize) {
        self.spawn(index).await;
        self.wait_until_healthy(index).await;
    }

    /// Waits (up to 30 s) until node `index`'s `/healthz` answers 200: JetStream runs and has
    /// caught up with the cluster's metadata and every stream it holds. NATS's Helm chart
    /// probes the same before a rolling restart moves to the next node.
    async fn wait_until_healthy(&self, index: usize) {
        let node = &self.nodes[index];
        let url = format!("http://127.0.0.1:{}/healthz", node.http_port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become healthy within 30 s",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A JetStream context on a node that runs.
    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let index = self
            .nodes
            .iter()
            .position(|node| node.child.is_some())
            .expect("a node that runs");
        let client = async_nats::connect(self.node_url(index))
            .await
            .expect("connect to the cluster");
        async_nats::jetstream::new(client)
    }

    /// The stream's cluster info, once it has a leader (waits up to 30 s).
    pub async fn stream_cluster(&self, stream: &str) -> async_nats::jetstream::stream::ClusterInfo {
        let jetstream = self.jetstream().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut handle) = jetstream.get_stream(stream).await
                && let Ok(info) = handle.info().await
                && let Some(cluster) = info.cluster.clone()
                && cluster.leader.is_some()
            {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "{stream} has no leader after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The replica count the stream is configured with.
    pub async fn stream_replicas(&self, stream: &str) -> usize {
        let jetstream = self.jetstream().await;
        let mut handle = jetstream.get_stream(stream).await.expect("the stream");
        handle
            .info()
            .await
            .expect("stream info")
            .config
            .num_replicas
    }

    /// How many messages the stream holds.
    pub async fn stream_messages(&self, stream: &str) -> u64 {
        let jetstream = self.jetstream().await;
        let mut handle = jetstream.get_stream(stream).await.expect("the stream");
        handle.info().await.expect("stream info").state.messages
    }

    /// Waits (up to 30 s) until the stream has a leader and every other replica is current:
    /// a node restarted has caught up, and the next may go.
    pub async fn wait_until_replicated(&self, stream: &str, replicas: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let cluster = self.stream_cluster(stream).await;
            let current = cluster
                .replicas
                .iter()
                .filter(|peer| peer.current && !peer.offline)
                .count();
            if current + 1 == replicas {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{stream} did not get its {replicas} replicas current within 30 s: {cluster:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
