//! Command line and environment configuration (clap). Every option has an env var.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "bichito",
    version,
    about = "Bug reports in, live team streams out."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process with embedded defaults (SQLite, local files) and demo data.
    Dev(DevArgs),
    /// Run the api and the stream in one process, with whatever backends are configured.
    Serve(ServerArgs),
    /// Run the api alone (ingest and dashboard API).
    Api(ServerArgs),
    /// Run the team stream alone: no database, events from NATS (`SSE_BACKEND=nats`).
    Sse(SseArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Apply Honeycomb documents from a YAML file without Kubernetes.
    Apply(ApplyArgs),
    /// Mint a dashboard JWT for a user and its teams, signed with the configured HS256 secret.
    Token(TokenArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /api/v1/openapi.json` serves).
    Openapi,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,bichito=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    /// Folder for embedded-mode state: the SQLite file, key files, the development JWT secret.
    #[arg(
        long,
        env = "BICHITO_DATA_DIR",
        default_value = "bichito-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://user@host/db` or `sqlite:path`; defaults to `bichito.db` in the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Most database connections this process opens.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,
    /// The longest a database operation may take (waiting for a connection included): past
    /// it, requests answer 503 with `Retry-After`, and the connection is dropped.
    #[arg(long, env = "DATABASE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub database_timeout: Duration,
    /// Most reports waiting to be stored together (Postgres): past it, a report answers 503
    /// with `Retry-After` instead of waiting in memory.
    #[arg(long, env = "DATABASE_INSERT_QUEUE", default_value_t = bichito_core::store::DEFAULT_INSERT_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), global = true)]
    pub database_insert_queue: usize,
}

impl GlobalArgs {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("bichito.db").display()))
    }

    pub fn pool_settings(&self) -> bichito_core::store::PoolSettings {
        bichito_core::store::PoolSettings {
            max_connections: self.database_max_connections,
            timeout: self.database_timeout,
            insert_queue: self.database_insert_queue,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "BICHITO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub attachments: AttachmentArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cors: CorsArgs,
    #[command(flatten)]
    pub sessions: SessionArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SseArgs {
    /// Address to listen on.
    #[arg(long, env = "BICHITO_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cors: CorsArgs,
}

/// Which browser origins may call this server, besides its own.
#[derive(Debug, Clone, Args)]
pub struct CorsArgs {
    /// How long browsers may cache a CORS preflight answer.
    #[arg(long, env = "CORS_MAX_AGE", default_value = "2h", value_parser = humantime::parse_duration)]
    pub cors_max_age: Duration,
    /// Origins of dashboards served from elsewhere (`https://bugs.example.com`, comma-separated)
    /// that may call the dashboard API and open team streams from a browser. None by default:
    /// only pages of bichito's own origin may.
    #[arg(long, env = "DASHBOARD_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub dashboard_origins: Vec<String>,
}

impl Default for CorsArgs {
    fn default() -> Self {
        Self {
            cors_max_age: Duration::from_secs(7200),
            dashboard_origins: Vec::new(),
        }
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, lowercase, nothing after.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let uri: axum::http::Uri = origin
        .parse()
        .map_err(|err| format!("{text:?} is not an origin: {err}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri.path_and_query().is_none_or(|path| path.as_str() == "/");
    if !scheme_ok || uri.authority().is_none() || !bare {
        return Err(format!(
            "{text:?} is not an origin like https://bugs.example.com (scheme, host, port only)"
        ));
    }
    Ok(origin)
}

/// How long connections may take, and how long a shutdown may.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// A new connection must send its first request head within this (else 408 and closed):
    /// clients that send half a head cannot hold connections open.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_read_timeout: Duration,
    /// A kept-alive connection must send its next request head within this; keep it longer
    /// than the idle timeout of any proxy in front (60 s on most).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,
    /// On SIGTERM, requests in flight get this long to finish; then every connection is closed
    /// and the process exits. Keep it below Kubernetes' `terminationGracePeriodSeconds`.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            http_header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Interval of the `: heartbeat` comment on idle streams.
    #[arg(long, env = "SSE_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub sse_heartbeat_interval: Duration,
    /// Events queued per stream subscriber; a slower one loses its oldest and gets `stream.gap`.
    #[arg(long, env = "SSE_QUEUE_SIZE", default_value_t = 64)]
    pub sse_queue_size: usize,
    /// How far back `Last-Event-ID` can resume (older ids get `stream.reset`).
    #[arg(long, env = "REPLAY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub replay_window: Duration,
    /// Most events the in-process bus keeps for resuming.
    #[arg(long, env = "REPLAY_CAPACITY", default_value_t = 100_000)]
    pub replay_capacity: usize,
    /// The event bus: `memory` (one process) or `nats` (JetStream, for several processes).
    #[arg(long, env = "SSE_BACKEND", value_enum, default_value_t = BusBackend::Memory)]
    pub sse_backend: BusBackend,
    /// NATS server, or a cluster's servers comma-separated, for `SSE_BACKEND=nats`.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// JetStream stream holding the events (created or updated at start).
    #[arg(long, env = "NATS_STREAM", default_value = "BICHITO")]
    pub nats_stream: String,
    /// First token of the event subjects: `<prefix>.team.<team_id>.<event type>`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "bichito")]
    pub nats_subject_prefix: String,
    /// Copies JetStream keeps of the event stream and of the session and ticket buckets: 1 on a
    /// single server, 3 on a 3-node cluster (a node may then go down without pausing streams).
    /// Applied at start to what already exists, so raising it moves a running install.
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=5))]
    pub nats_stream_replicas: usize,
    /// Whether a stream may be opened with `?token=<JWT>` (seed 000). Tokens in URLs end up in
    /// proxies' access logs: `refuse` leaves the session cookie, `Authorization` and tickets.
    #[arg(long, env = "STREAM_URL_TOKENS", value_enum, default_value_t = UrlTokens::Allow)]
    pub stream_url_tokens: UrlTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UrlTokens {
    Allow,
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusBackend {
    Memory,
    Nats,
}

impl Default for StreamArgs {
    fn default() -> Self {
        Self {
            sse_heartbeat_interval: Duration::from_secs(30),
            sse_queue_size: 64,
            replay_window: Duration::from_secs(24 * 3600),
            replay_capacity: 100_000,
            sse_backend: BusBackend::Memory,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_stream: "BICHITO".into(),
            nats_subject_prefix: "bichito".into(),
            nats_stream_replicas: 1,
            stream_url_tokens: UrlTokens::Allow,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct AttachmentArgs {
    /// Where attachments are kept: `local` (a folder; this process signs and serves the upload
    /// and download URLs), `s3` (an S3-compatible store; presigned URLs), or `disabled`.
    #[arg(long, env = "ATTACHMENTS_BACKEND", value_enum, default_value_t = AttachmentBackend::Local)]
    pub attachments_backend: AttachmentBackend,
    /// Folder of the `local` backend; defaults to `attachments` in the data folder.
    #[arg(long, env = "ATTACHMENTS_DIR")]
    pub attachments_dir: Option<PathBuf>,
    /// Key signing the `local` backend's URLs; defaults to a random key kept in the data folder.
    #[arg(long, env = "ATTACHMENTS_SIGNING_KEY", hide_env_values = true)]
    pub attachments_signing_key: Option<String>,
    /// Base URL clients reach this process at, for the `local` backend's signed URLs;
    /// defaults to `http://<listen address>`.
    #[arg(long, env = "BICHITO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long an upload URL stays valid (at most 7 days).
    #[arg(long, env = "ATTACHMENT_UPLOAD_EXPIRY", default_value = "15m", value_parser = humantime::parse_duration)]
    pub attachment_upload_expiry: Duration,
    /// How long a download URL handed to a dashboard stays valid (at most 7 days).
    #[arg(long, env = "ATTACHMENT_DOWNLOAD_EXPIRY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub attachment_download_expiry: Duration,
    /// S3 endpoint, for S3-compatible stores (MinIO, R2, Ceph...); AWS's own when unset.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (R2 takes `auto`).
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Bucket holding the attachments (it must exist).
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (most self-hosted stores).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", action = clap::ArgAction::Set, default_value_t = false)]
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachmentBackend {
    Local,
    S3,
    Disabled,
}

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest request body accepted on the ingest API, in bytes (413 beyond).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 256 * 1024)]
    pub body_limit_bytes: usize,
    /// Reports per minute per API key when the honeycomb sets no quota.
    #[arg(long, env = "DEFAULT_REPORTS_PER_MINUTE", default_value_t = 60)]
    pub default_reports_per_minute: u32,
    /// The longest an api process trusts its cached copy of a honeycomb's settings (changes
    /// are announced to every process at once; this bounds a missed announcement).
    #[arg(long, env = "HONEYCOMB_CACHE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub honeycomb_cache_ttl: Duration,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            body_limit_bytes: 256 * 1024,
            default_reports_per_minute: 60,
            honeycomb_cache_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// HS256 shared secret for dashboard JWTs (development and small installs).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key verifying dashboard JWTs (RSA, EC or Ed25519), for production.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Accepted algorithm: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA.
    /// Defaults to HS256 with a secret and RS256 with a public key.
    #[arg(long, env = "JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    /// Claim listing the teams a user may act on.
    #[arg(long, env = "JWT_TEAMS_CLAIM", default_value = "teams")]
    pub jwt_teams_claim: String,
    /// Required `iss`, when set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud`, when set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// URL of the JSON Web Key Set an identity provider publishes (instead of a secret or a
    /// key file): keys are fetched, kept, and fetched again for a key id not seen before.
    #[arg(long, env = "JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// How long a fetched key set is trusted before it is fetched again (a key the provider
    /// removed stops verifying within this).
    #[arg(long, env = "JWT_JWKS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwt_jwks_refresh: Duration,
}

impl Default for JwtArgs {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_algorithm: None,
            jwt_teams_claim: "teams".into(),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_jwks_url: None,
            jwt_jwks_refresh: Duration::from_secs(300),
        }
    }
}

/// Sign-in: sessions, and the OpenID Connect provider people sign in with.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// The longest a session lasts (one opened with a token ends at the token's expiry when
    /// that comes first). At most 30 days.
    #[arg(long, env = "SESSION_MAX_AGE", default_value = "12h", value_parser = parse_session_age)]
    pub session_max_age: Duration,
    /// Where people land after signing in (a path of this server).
    #[arg(long, env = "DASHBOARD_PATH", default_value = "/inbox")]
    pub dashboard_path: String,
    /// Issuer URL of the OpenID Connect provider people sign in with (its discovery document
    /// is `<issuer>/.well-known/openid-configuration`). Sign-in is off when unset.
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// This server's client id at the provider.
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// This server's client secret at the provider (none for a public client: PKCE alone).
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Scopes asked for, space-separated.
    #[arg(long, env = "OIDC_SCOPES", default_value = "openid profile email")]
    pub oidc_scopes: String,
    /// The ID token claim listing the user's teams (a list, or a space- or comma-separated
    /// string).
    #[arg(long, env = "OIDC_TEAMS_CLAIM", default_value = "groups")]
    pub oidc_teams_claim: String,
}

impl Default for SessionArgs {
    fn default() -> Self {
        Self {
            session_max_age: Duration::from_secs(12 * 3600),
            dashboard_path: "/inbox".into(),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_scopes: "openid profile email".into(),
            oidc_teams_claim: "groups".into(),
        }
    }
}

/// Sessions last from a minute to 30 days (the bucket that shares them with stream processes
/// keeps entries that long).
pub const MAX_SESSION_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

fn parse_session_age(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if age < Duration::from_secs(60) || age > MAX_SESSION_AGE {
        return Err("a session lasts from 1m to 30days".into());
    }
    Ok(age)
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Honeycomb file to apply at start (defaults to the bundled examples/honeycomb.yaml).
    #[arg(long, env = "BICHITO_DEV_HONEYCOMB")]
    pub honeycomb: Option<PathBuf>,
    /// Do not add demo reports to an empty honeycomb.
    #[arg(long)]
    pub no_demo_data: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// YAML file with one or more Honeycomb documents.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user (`sub`).
    #[arg(long)]
    pub sub: String,
    /// A team the user may act on; repeat for several.
    #[arg(long = "team", required = true)]
    pub teams: Vec<String>,
    /// Lifetime of the token.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Print a one-time sign-in link instead (single use, valid 10 minutes, stored in the
    /// database): opened in a browser, it signs the user in and opens the dashboard.
    #[arg(long)]
    pub link: bool,
    /// Base URL the link points at.
    #[arg(
        long,
        env = "BICHITO_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_queue_reaches_the_pool_settings_and_must_hold_a_report() {
        let cli = Cli::try_parse_from(["bichito", "--database-insert-queue", "64", "migrate"])
            .expect("parses");
        assert_eq!(cli.global.pool_settings().insert_queue, 64);
        let default = Cli::try_parse_from(["bichito", "migrate"]).expect("parses");
        assert_eq!(
            default.global.pool_settings().insert_queue,
            bichito_core::store::DEFAULT_INSERT_QUEUE
        );
        let zero = Cli::try_parse_from(["bichito", "--database-insert-queue", "0", "migrate"])
            .expect_err("a queue of no report is refused");
        assert!(
            zero.to_string().contains("--database-insert-queue"),
            "{zero}"
        );
    }

    #[test]
    fn stream_replicas_take_one_to_five_and_name_themselves_otherwise() {
        let cli =
            Cli::try_parse_from(["bichito", "api", "--nats-stream-replicas", "3"]).expect("parses");
        let Command::Api(args) = cli.command else {
            panic!("the api subcommand")
        };
        assert_eq!(args.stream.nats_stream_replicas, 3);
        for bad in ["0", "6", "three"] {
            let refused = Cli::try_parse_from(["bichito", "api", "--nats-stream-replicas", bad])
                .expect_err("refused");
            assert!(
                refused.to_string().contains("--nats-stream-replicas"),
                "{bad}: {refused}"
            );
        }
    }
}
