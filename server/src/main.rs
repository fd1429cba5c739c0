//! `secretd server`: flags → configuration → serve until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use secretd::config::{self, LogConfig, LogFormat};
use secretd::core::SealSettings;
use secretd::http::Limits;
use secretd::serve::{self, RunningServer, ServerOptions};
use secretd::storage::StorageOptions;

#[derive(Parser)]
#[command(
    name = "secretd",
    version,
    about = "secretd: secrets management server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Server(ServerArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// The configuration file (TOML). SECRETD_* variables override it.
    #[arg(long, value_name = "FILE", conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Development mode: SQLite in a temporary directory, already
    /// initialised and unsealed, KV v2 at secret/, plain HTTP on loopback.
    /// Never for real secrets.
    #[arg(long)]
    dev: bool,
    /// Dev mode: use this storage URL instead of a temporary SQLite file.
    /// The database must be empty.
    #[arg(long, value_name = "URL", requires = "dev")]
    dev_storage: Option<String>,
    /// Dev mode: the address to listen on (loopback only).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8200",
        requires = "dev"
    )]
    dev_listen_address: String,
    /// Dev mode: the root token to create instead of a random one.
    #[arg(
        long,
        value_name = "ID",
        env = "SECRETD_DEV_ROOT_TOKEN_ID",
        requires = "dev",
        hide_env_values = true
    )]
    dev_root_token_id: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Server(args) = cli.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("secretd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("secretd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServerArgs) -> anyhow::Result<()> {
    if args.dev {
        return run_dev(args).await;
    }
    let Some(path) = args.config else {
        bail!("give --config FILE to run a server, or --dev for a throw-away development server");
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = config::load(Some(&path), &env)?.validate(&env)?;
    init_logging(&settings.log)?;
    if settings.tls.is_none() {
        if settings.address.ip().is_loopback() {
            tracing::warn!("TLS is disabled (tls_disable = true): serving plain HTTP on loopback");
        } else {
            tracing::warn!(
                listener.address = %settings.address,
                "TLS is disabled (tls_disable = true): secrets and tokens cross the network in clear"
            );
        }
    }
    let listener = bind(settings.address)?;
    let server = serve::start(
        ServerOptions {
            storage_url: settings.storage_url.to_string(),
            storage: settings.storage,
            seal: settings.seal,
            tls: settings.tls,
            limits: settings.limits,
            api_addr: settings.api_addr,
        },
        listener,
    )
    .await?;
    println!("secretd listening on {}", server.url());
    tracing::info!(listener.url = %server.url(), "serving");
    serve_until_signal(server).await
}

async fn run_dev(args: ServerArgs) -> anyhow::Result<()> {
    init_logging(&LogConfig::default())?;
    let addr: SocketAddr = args.dev_listen_address.parse().with_context(|| {
        format!(
            "--dev-listen-address {:?} is not an address",
            args.dev_listen_address
        )
    })?;
    if !addr.ip().is_loopback() {
        bail!(
            "dev mode serves plain HTTP and listens on loopback only; {addr} is not a loopback address"
        );
    }
    let temp_dir;
    let storage_url = match args.dev_storage {
        Some(url) => url,
        None => {
            temp_dir = tempfile::Builder::new().prefix("secretd-dev-").tempdir()?;
            format!("sqlite://{}", temp_dir.path().join("secretd.db").display())
        }
    };
    let listener = bind(addr)?;
    let server = serve::start(
        ServerOptions {
            storage_url: storage_url.clone(),
            storage: StorageOptions::default(),
            seal: SealSettings::Shamir,
            tls: None,
            // Dev mode is for one person and benchmarks: no rate limits.
            limits: Limits {
                rate: secretd::http::RateLimitSettings::off(),
                ..Limits::default()
            },
            api_addr: None,
        },
        listener,
    )
    .await?;
    let dev = match server
        .core
        .initialize_dev(args.dev_root_token_id.as_deref())
        .await
    {
        Ok(dev) => dev,
        Err(err) => {
            let _ = server.shutdown().await;
            bail!("dev mode needs empty storage: {err}");
        }
    };
    println!(
        "secretd dev server: in-memory root key, storage {storage}, already unsealed.\n\
         WARNING: dev mode is for development only. Do not keep real secrets in it.\n\n\
         Unseal Key: {unseal}\nRoot Token: {root}\n\n\
         export SECRETD_ADDR='{url}'\nexport SECRETD_TOKEN='{root}'\n",
        storage = redact_url(&storage_url),
        unseal = dev.unseal_key.as_str(),
        root = dev.root_token.as_str(),
        url = server.url(),
    );
    println!("secretd listening on {}", server.url());
    serve_until_signal(server).await
}

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

async fn serve_until_signal(mut server: RunningServer) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reopening audit files, reloading the TLS files");
                server.core.audit().reopen();
                server.reload_tls();
                continue;
            }
            result = server.stopped() => return result,
        }
        break;
    }
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// A storage URL without its password, for printing.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn init_logging(log: &LogConfig) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .with_context(|| format!("log.level {:?} is not a valid level or filter", log.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}
