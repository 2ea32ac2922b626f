//! The subcommands: `dev`, `serve`, `api`, `sse`, `migrate`, `apply`, `token`.

use crate::attachments::{Attachments, LocalStorage, S3Settings, S3Storage, Storage};
use crate::auth::{JwtConfigError, JwtVerifier, mint_token};
use crate::config::{
    ApplyArgs, AttachmentBackend, BusBackend, Cli, Command, DevArgs, GlobalArgs, JwtArgs,
    ServerArgs, SseArgs, TokenArgs,
};
use crate::http::SIGN_IN_LIFETIME;
use crate::metrics::Metrics;
use crate::server::{Role, serve_role, serve_streams, shutdown_signal};
use crate::state::{AppState, Settings, StreamState};
use bichito_core::clock::{Clock, SystemClock};
use bichito_core::model::{NewBichito, Severity};
use bichito_core::provision::{KeyAction, provision};
use bichito_core::session::{SignIn, new_secret, secret_hash};
use bichito_core::spec::parse_documents;
use bichito_core::store::{self, Store};
use chrono::TimeDelta;
use rand::RngExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const EXAMPLE_HONEYCOMB: &str = include_str!("../../examples/honeycomb.yaml");
/// SigV4 presigned URLs live at most a week; the local backend keeps to the same bound.
const MAX_SIGNED_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
const DEV_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Store(#[from] bichito_core::Error),
    #[error(transparent)]
    Jwt(#[from] JwtConfigError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("cannot mint a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
    let context = context.into();
    move |source| CommandError::Io { context, source }
}

pub async fn run(cli: Cli) -> Result<(), CommandError> {
    let global = &cli.global;
    match cli.command {
        Command::Dev(args) => dev(global, args).await,
        Command::Serve(args) => server(global, args, Role::All).await,
        Command::Api(args) => server(global, args, Role::Api).await,
        Command::Sse(args) => sse(args).await,
        Command::Migrate => {
            let store = open_store(global).await?;
            println!("migrations applied to the {} database", store.backend());
            Ok(())
        }
        Command::Apply(args) => apply(global, args).await,
        Command::Token(args) => token(global, args).await,
        Command::Openapi => {
            print!("{}", crate::http::openapi::json());
            Ok(())
        }
    }
}

async fn open_store(global: &GlobalArgs) -> Result<Arc<dyn Store>, CommandError> {
    let url = global.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&global.data_dir)
            .map_err(io(format!("cannot create {}", global.data_dir.display())))?;
    }
    let store = store::connect(&url, global.pool_settings()).await?;
    store.migrate().await?;
    Ok(store)
}

async fn server(global: &GlobalArgs, args: ServerArgs, role: Role) -> Result<(), CommandError> {
    let store = open_store(global).await?;
    // `serve` (the all-in-one) may use the data folder's development secret; `api` may not.
    let allow_dev_secret = role == Role::All;
    let dev_secret = if allow_dev_secret
        && args.jwt.jwt_secret.is_none()
        && args.jwt.jwt_public_key_file.is_none()
    {
        Some(dev_secret(&global.data_dir)?)
    } else {
        None
    };
    let jwt = JwtVerifier::from_args(&args.jwt, dev_secret.as_deref())?;
    let listener = bind(&args).await?;
    run_server(global, listener, store, jwt, args, role).await
}

async fn bind(args: &ServerArgs) -> Result<TcpListener, CommandError> {
    bind_address(args.listen).await
}

async fn bind_address(address: std::net::SocketAddr) -> Result<TcpListener, CommandError> {
    TcpListener::bind(address)
        .await
        .map_err(io(format!("cannot listen on {address}")))
}

fn announce(listener: &TcpListener) -> Result<(), CommandError> {
    let address = listener.local_addr().map_err(io("no local address"))?;
    println!("listening on http://{address}");
    tracing::info!(%address, "listening");
    Ok(())
}

async fn run_server(
    global: &GlobalArgs,
    listener: TcpListener,
    store: Arc<dyn Store>,
    jwt: JwtVerifier,
    args: ServerArgs,
    role: Role,
) -> Result<(), CommandError> {
    let stream = args.stream.clone();
    let bus = crate::bus::connect(&stream, Some(store.clone())).await?;
    let address = listener.local_addr().map_err(io("no local address"))?;
    let attachments = open_attachments(global, &args, address).await?;
    check_sign_in(&args.sessions)?;
    let public_url = public_url(&args, address);
    let state = AppState::new(
        store,
        bus,
        jwt,
        Arc::new(SystemClock),
        Settings {
            limits: args.limits,
            stream,
            cors: args.cors,
            sessions: args.sessions,
            public_url: Some(public_url),
        },
        attachments,
    );
    let jwt = state.jwt.clone();
    tokio::spawn(async move { jwt.prefetch().await });
    announce(&listener)?;
    serve_role(listener, state, role, args.http, shutdown_signal())
        .await
        .map_err(io("server failed"))
}

/// `bichito sse`: the team stream alone, fed by NATS.
async fn sse(args: SseArgs) -> Result<(), CommandError> {
    if args.stream.sse_backend != BusBackend::Nats {
        return Err(CommandError::Usage(
            "bichito sse gets its events from NATS: set SSE_BACKEND=nats (use `bichito serve` for one process)".into(),
        ));
    }
    let jwt = Arc::new(JwtVerifier::from_args(&args.jwt, None)?);
    let (bus, grants) = crate::bus::connect(&args.stream, None).await?;
    let state = StreamState::new(
        bus,
        grants,
        jwt.clone(),
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
        args.stream,
        args.cors,
    );
    tokio::spawn(async move { jwt.prefetch().await });
    let listener = bind_address(args.listen).await?;
    announce(&listener)?;
    serve_streams(listener, state, args.http, shutdown_signal())
        .await
        .map_err(io("server failed"))
}

async fn dev(global: &GlobalArgs, args: DevArgs) -> Result<(), CommandError> {
    let store = open_store(global).await?;
    let secret = dev_secret(&global.data_dir)?;
    let yaml = match &args.honeycomb {
        Some(path) => {
            std::fs::read_to_string(path).map_err(io(format!("cannot read {}", path.display())))?
        }
        None => EXAMPLE_HONEYCOMB.to_owned(),
    };
    let listener = bind(&args.server).await?;
    let address = listener.local_addr().map_err(io("no local address"))?;
    let base = public_url(&args.server, address);
    // The widget's demo page (/widget/demo) is on this server's own origin: allowed, in dev.
    let mut documents = parse_documents(&yaml)?;
    if let Some(origin) = origin_of(&base) {
        for document in &mut documents {
            if !document.spec.allowed_origins.contains(&origin) {
                document.spec.allowed_origins.push(origin.clone());
            }
        }
    }
    let applied = apply_parsed(&*store, documents, &global.data_dir.join("secrets")).await?;
    let first = applied
        .first()
        .ok_or_else(|| CommandError::Usage("the honeycomb file has no Honeycomb".into()))?;
    if !args.no_demo_data {
        add_demo_reports(&*store, first).await?;
    }
    let token = mint_token(
        &secret,
        &args.server.jwt.jwt_teams_claim,
        "dev",
        std::slice::from_ref(&first.team),
        DEV_TOKEN_TTL,
    )?;
    let jwt = JwtVerifier::from_args(&args.server.jwt, Some(&secret))?;
    let link = sign_in_link(
        &*store,
        &base,
        "dev",
        std::slice::from_ref(&first.team),
        &args.server.sessions.dashboard_path,
    )
    .await?;
    print_welcome(global, &base, first, &token, &link);
    run_server(global, listener, store, jwt, args.server, Role::All).await
}

fn print_welcome(global: &GlobalArgs, base: &str, honeycomb: &Applied, token: &str, link: &str) {
    let key = &honeycomb.api_key;
    println!(
        "\nbichito dev: embedded mode, data in {data}\n\
         \n  sign in    {link}\
         \n             (open it in a browser: one use, 10 minutes; `bichito token --sub dev --team {team} --link` mints another)\
         \n\n  honeycomb  {name} (team {team}, project_id {id})\
         \n  API key    {key}\
         \n  JWT        {token}\
         \n             (user `dev`, team `{team}`, valid 30 days; mint others with `bichito token`)\
         \n  widget     {base}/widget/demo#key={key}\
         \n             (a demo page with the widget; on your site: <script src=\"{base}/widget.js\" data-key=\"{key}\" async></script>)\
         \n  API docs   {base}/api/v1/openapi.json (OpenAPI 3.1; `bichito openapi` prints it)\
         \n\nTry it:\
         \n  curl -i -X POST {base}/api/v1/bugs -H 'x-api-key: {key}' -H 'content-type: application/json' \\\
         \n       -d '{{\"title\": \"Login button broken on Safari 17\", \"description\": \"Click Sign in: nothing happens.\", \"severity\": \"high\"}}'\
         \n  curl -s {base}/api/v1/bugs/1 -H 'authorization: Bearer {token}'\
         \n  curl -s {base}/api/v1/widget/info -H 'x-api-key: {key}'\
         \n  curl -s -X POST {base}/api/v1/bugs/1/attachments -H 'x-api-key: {key}' -H 'content-type: application/json' \\\
         \n       -d '{{\"filename\": \"shot.png\", \"content_type\": \"image/png\", \"content_length\": 1234}}'\
         \n       (then PUT the 1234-byte PNG to the returned url with its headers, and POST its complete_url)\
         \n  curl -s {base}/metrics\n",
        data = global.data_dir.display(),
        name = honeycomb.name,
        team = honeycomb.team,
        id = honeycomb.honeycomb_id,
    );
}

async fn add_demo_reports(store: &dyn Store, honeycomb: &Applied) -> Result<(), CommandError> {
    if store.count_bichitos(honeycomb.honeycomb_id).await? > 0 {
        return Ok(());
    }
    let now = bichito_core::clock::truncate_to_millis(SystemClock.now());
    let demo = [
        (
            "Login button broken on Safari 17",
            "Steps: visit /login, click Sign in. Nothing happens. No console errors.",
            Severity::High,
        ),
        (
            "Checkout total ignores the discount code",
            "Apply SAVE10, the total stays the same until reload.",
            Severity::Critical,
        ),
        (
            "Typo on the receipt page",
            "\"Recieved\" should be \"Received\".",
            Severity::Low,
        ),
    ];
    for (title, description, severity) in demo {
        let report = NewBichito {
            honeycomb_id: honeycomb.honeycomb_id,
            api_key_id: None,
            team_id: honeycomb.team.clone(),
            title: title.into(),
            description: description.into(),
            severity,
            environment: Some("production".into()),
            app_version: Some("1.4.2".into()),
            stack_trace: None,
            url: Some("https://checkout.example.com/login".into()),
            user_agent: None,
            reporter_email: None,
            reporter_identifier: Some("demo".into()),
            extra: None,
            created_at: now,
        };
        store.insert_bichito(&report, None, None).await?;
    }
    Ok(())
}

async fn apply(global: &GlobalArgs, args: ApplyArgs) -> Result<(), CommandError> {
    let yaml = std::fs::read_to_string(&args.file)
        .map_err(io(format!("cannot read {}", args.file.display())))?;
    let store = open_store(global).await?;
    let secrets = global.data_dir.join("secrets");
    for applied in apply_documents(&*store, &yaml, &secrets).await? {
        let action = match applied.action {
            KeyAction::Kept => "key unchanged",
            KeyAction::Created => "new key",
            KeyAction::Rotated => "key rotated",
        };
        println!(
            "honeycomb {} applied: project_id {}, key {}… ({action}) in {}",
            applied.name,
            applied.honeycomb_id,
            applied.key_prefix,
            applied.key_file.display()
        );
    }
    Ok(())
}

/// Stores a one-time sign-in link for `user_id` and `teams`; its URL under `base`.
async fn sign_in_link(
    store: &dyn Store,
    base: &str,
    user_id: &str,
    teams: &[String],
    return_to: &str,
) -> Result<String, CommandError> {
    let code = new_secret("");
    store
        .insert_sign_in(
            &secret_hash(&code),
            &SignIn::Link {
                user_id: user_id.to_owned(),
                teams: teams.to_vec(),
                return_to: return_to.to_owned(),
                expires_at: SystemClock.now() + SIGN_IN_LIFETIME,
            },
        )
        .await?;
    Ok(format!("{}/login?code={code}", base.trim_end_matches('/')))
}

/// The base URL clients reach this server at: `BICHITO_PUBLIC_URL`, else the listen address.
fn public_url(args: &ServerArgs, address: std::net::SocketAddr) -> String {
    args.attachments
        .public_url
        .clone()
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{address}"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
}

/// Sign-in with a provider needs both its issuer and this server's client id.
fn check_sign_in(args: &crate::config::SessionArgs) -> Result<(), CommandError> {
    if args.oidc_issuer.is_some() != args.oidc_client_id.is_some() {
        return Err(CommandError::Usage(
            "sign-in with OpenID Connect needs both OIDC_ISSUER and OIDC_CLIENT_ID".into(),
        ));
    }
    if !args.dashboard_path.starts_with('/') || args.dashboard_path.starts_with("//") {
        return Err(CommandError::Usage(
            "DASHBOARD_PATH must be a path of this server, like /inbox".into(),
        ));
    }
    Ok(())
}

async fn token(global: &GlobalArgs, args: TokenArgs) -> Result<(), CommandError> {
    if args.link {
        let store = open_store(global).await?;
        let link = sign_in_link(
            &*store,
            &args.public_url,
            &args.sub,
            &args.teams,
            &crate::config::SessionArgs::default().dashboard_path,
        )
        .await?;
        println!("{link}");
        return Ok(());
    }
    let secret = match &args.jwt.jwt_secret {
        Some(secret) => secret.clone(),
        None => dev_secret(&global.data_dir)?,
    };
    println!(
        "{}",
        mint_token(
            &secret,
            &args.jwt.jwt_teams_claim,
            &args.sub,
            &args.teams,
            args.ttl
        )?
    );
    Ok(())
}

/// One applied honeycomb, as `dev` and `apply` report it.
pub struct Applied {
    pub name: String,
    pub team: String,
    pub honeycomb_id: i64,
    pub api_key: String,
    pub key_prefix: String,
    pub action: KeyAction,
    pub key_file: PathBuf,
}

/// Applies every Honeycomb in `yaml`. Each key lives in `secrets/<namespace>/<secretName>`,
/// the embedded stand-in for the Kubernetes Secret: read back on the next apply, so the key
/// survives restarts and is only replaced on rotation.
pub async fn apply_documents(
    store: &dyn Store,
    yaml: &str,
    secrets: &Path,
) -> Result<Vec<Applied>, CommandError> {
    apply_parsed(store, parse_documents(yaml)?, secrets).await
}

async fn apply_parsed(
    store: &dyn Store,
    documents: Vec<bichito_core::spec::HoneycombDocument>,
    secrets: &Path,
) -> Result<Vec<Applied>, CommandError> {
    let mut applied = Vec::new();
    for document in documents {
        let namespace = document.namespace().to_owned();
        let key_file = secrets
            .join(&namespace)
            .join(&document.spec.api_key.secret_name);
        let current = std::fs::read_to_string(&key_file)
            .ok()
            .map(|key| key.trim().to_owned());
        let done = provision(
            store,
            &namespace,
            &document.metadata.name,
            &document.spec,
            current.as_deref(),
            SystemClock.now(),
        )
        .await?;
        if done.key_action != KeyAction::Kept {
            write_private(&key_file, &done.api_key)?;
        }
        applied.push(Applied {
            name: format!("{namespace}/{}", document.metadata.name),
            team: document.spec.team.clone(),
            honeycomb_id: done.honeycomb_id,
            key_prefix: done.key_prefix.clone(),
            api_key: done.api_key,
            action: done.key_action,
            key_file,
        });
    }
    Ok(applied)
}

/// The development JWT secret of a data folder, created on first use.
/// The attachment storage `args` configure (for `local`: a folder whose URLs this process signs
/// and serves, at the public URL or else at the listen address).
async fn open_attachments(
    global: &GlobalArgs,
    args: &ServerArgs,
    address: std::net::SocketAddr,
) -> Result<Attachments, CommandError> {
    let settings = &args.attachments;
    let expiry = |name: &str, value: Duration| {
        if value < Duration::from_secs(1) || value > MAX_SIGNED_URL_LIFETIME {
            return Err(CommandError::Usage(format!(
                "{name} must be between 1s and 7 days (a presigned URL's longest life)"
            )));
        }
        TimeDelta::from_std(value).map_err(|err| CommandError::Usage(format!("{name}: {err}")))
    };
    let upload_expiry = expiry(
        "ATTACHMENT_UPLOAD_EXPIRY",
        settings.attachment_upload_expiry,
    )?;
    let download_expiry = expiry(
        "ATTACHMENT_DOWNLOAD_EXPIRY",
        settings.attachment_download_expiry,
    )?;
    let storage = match settings.attachments_backend {
        AttachmentBackend::Disabled => None,
        AttachmentBackend::Local => {
            let root = settings
                .attachments_dir
                .clone()
                .unwrap_or_else(|| global.data_dir.join("attachments"));
            let key = match &settings.attachments_signing_key {
                Some(key) => key.clone(),
                None => private_random(&global.data_dir.join("attachments-signing-key"))?,
            };
            let public_url = settings
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{address}"));
            let local = LocalStorage::new(root.clone(), &public_url, key.as_bytes())
                .map_err(io(format!("cannot create {}", root.display())))?;
            Some(Storage::Local(local))
        }
        AttachmentBackend::S3 => {
            let bucket = settings.s3_bucket.clone().ok_or_else(|| {
                CommandError::Usage("ATTACHMENTS_BACKEND=s3 needs S3_BUCKET".into())
            })?;
            let s3 = S3Storage::connect(&S3Settings {
                endpoint: settings.s3_endpoint.clone(),
                region: settings.s3_region.clone(),
                bucket,
                force_path_style: settings.s3_force_path_style,
                credentials: None,
            })
            .await;
            Some(Storage::S3(s3))
        }
    };
    if let Some(storage) = &storage {
        tracing::info!(backend = storage.backend(), "attachments enabled");
    }
    Ok(Attachments::new(storage, upload_expiry, download_expiry))
}

fn dev_secret(data_dir: &Path) -> Result<String, CommandError> {
    private_random(&data_dir.join("jwt-secret"))
}

/// A random secret kept in `path`, created on first use.
fn private_random(path: &Path) -> Result<String, CommandError> {
    if let Ok(secret) = std::fs::read_to_string(path) {
        return Ok(secret.trim().to_owned());
    }
    let bytes: [u8; 32] = rand::rng().random();
    let secret = hex::encode(bytes);
    write_private(path, &secret)?;
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> Result<(), CommandError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create {}", parent.display())))?;
    }
    std::fs::write(path, contents).map_err(io(format!("cannot write {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("cannot protect {}", path.display())))?;
    }
    Ok(())
}

/// Used by tests that start servers without the CLI.
pub fn jwt_args_with_secret(secret: &str) -> JwtArgs {
    JwtArgs {
        jwt_secret: Some(secret.to_owned()),
        jwt_teams_claim: "teams".into(),
        ..JwtArgs::default()
    }
}
