//! Putting a server together: storage, core, HTTP listener, TLS, and an
//! orderly shutdown.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use tokio::task::JoinHandle;

use crate::config::TlsFiles;
use crate::core::{Core, SealSettings};
use crate::http::{self, Limits};
use crate::storage::{Storage, StorageOptions};

/// How long in-flight requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the TLS files are read to notice a renewed certificate.
const TLS_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// What a server needs to start.
pub struct ServerOptions {
    pub storage_url: String,
    pub storage: StorageOptions,
    pub seal: SealSettings,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    /// Where clients reach this node (`sys/ha-status`); by default the
    /// listener's address.
    pub api_addr: Option<String>,
}

/// `https://ADDRESS` (plain `http` without TLS). A listener on every
/// interface is named by the host's name instead.
fn default_api_address(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    if addr.ip().is_unspecified() {
        format!(
            "{scheme}://{}:{}",
            crate::core::nodes::hostname(),
            addr.port()
        )
    } else {
        format!("{scheme}://{addr}")
    }
}

/// A server accepting requests.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub core: Arc<Core>,
    pub tls: bool,
    /// The live TLS configuration and where it comes from, for reloads.
    tls_reload: Option<Arc<TlsReloader>>,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    watcher: Option<JoinHandle<()>>,
}

/// Replaces the listener's certificate (and client CAs) when the files
/// change: new connections get the new ones, open connections keep theirs.
struct TlsReloader {
    files: TlsFiles,
    live: RustlsConfig,
    /// The bytes the live configuration was built from.
    loaded: std::sync::Mutex<Vec<u8>>,
}

impl TlsReloader {
    /// Rebuilds from the files if they changed; true when it did. A broken
    /// new file is an error and the old configuration stays.
    fn reload(&self) -> anyhow::Result<bool> {
        let (bytes, config) = tls_config(&self.files)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded == bytes {
            return Ok(false);
        }
        self.live.reload_from_config(Arc::new(config));
        *loaded = bytes;
        Ok(true)
    }
}

/// Opens storage, starts the core and serves on `listener` (already bound,
/// so the address is known and no other process can take it meanwhile).
pub async fn start(options: ServerOptions, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let storage = Storage::connect(&options.storage_url, &options.storage)
        .await
        .context("opening storage")?;
    let addr = listener.local_addr()?;
    let tls = options.tls.is_some();
    let core = Core::new(storage, options.seal);
    core.set_api_address(
        options
            .api_addr
            .clone()
            .unwrap_or_else(|| default_api_address(addr, tls)),
    );
    core.start().await?;
    let app = http::router(core.clone(), options.limits)
        .into_make_service_with_connect_info::<SocketAddr>();
    let handle = Handle::new();
    let mut tls_reload = None;
    let task = match options.tls {
        Some(files) => {
            let (bytes, config) = tls_config(&files)?;
            let live = RustlsConfig::from_config(Arc::new(config));
            let mut server =
                axum_server::from_tcp_rustls(listener, live.clone())?.handle(handle.clone());
            limit_connections(server.http_builder());
            tls_reload = Some(Arc::new(TlsReloader {
                files,
                live,
                loaded: std::sync::Mutex::new(bytes),
            }));
            tokio::spawn(server.serve(app))
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle.clone());
            limit_connections(server.http_builder());
            tokio::spawn(server.serve(app))
        }
    };
    let watcher = tls_reload.clone().map(|reloader| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TLS_CHECK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                log_reload(reloader.reload(), "the TLS files changed");
            }
        })
    });
    Ok(RunningServer {
        addr,
        core,
        tls,
        tls_reload,
        handle,
        task,
        watcher,
    })
}

fn log_reload(result: anyhow::Result<bool>, why: &str) {
    match result {
        Ok(true) => tracing::info!("{why}: new TLS connections use the new certificate"),
        Ok(false) => {}
        Err(err) => tracing::error!(
            error = format!("{err:#}"),
            "cannot load the TLS files; still serving the previous certificate"
        ),
    }
}

impl RunningServer {
    /// `http://` or `https://` and the address.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Reads the TLS files again (SIGHUP): a changed certificate, key or
    /// client CA file is used for new connections; open ones keep theirs.
    pub fn reload_tls(&self) {
        if let Some(reloader) = &self.tls_reload {
            log_reload(reloader.reload(), "SIGHUP");
        }
    }

    /// Stops accepting, lets in-flight requests finish, stops background
    /// jobs and closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
        self.handle.graceful_shutdown(Some(DRAIN_TIMEOUT));
        let served = self.task.await.context("the server task failed")?;
        self.core.stop();
        self.core.leave_registry().await;
        self.core.storage().close().await;
        served.context("serving")
    }

    /// Resolves when the server stops on its own (it should not).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        (&mut self.task)
            .await
            .context("the server task failed")?
            .context("serving")
    }
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of headers (HTTP/1.1 read buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Bounds what one connection can make the server hold: headers that
/// trickle in are cut off, oversized ones refused (431).
fn limit_connections(builder: &mut Builder<TokioExecutor>) {
    builder
        .http1()
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256);
}

/// rustls with ring, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1, and with a
/// client CA file, client certificates required. Also returns the bytes
/// it was built from, to tell a changed file from an unchanged one.
fn tls_config(files: &TlsFiles) -> anyhow::Result<(Vec<u8>, rustls::ServerConfig)> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading tls_cert_file {}", files.cert.display()))?;
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(&files.key)
            .with_context(|| format!("reading tls_key_file {}", files.key.display()))?,
    );
    let client_ca_pem = match &files.client_ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading tls_client_ca_file {}", path.display()))?,
        ),
        None => None,
    };
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing tls_cert_file {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls_cert_file {} holds no certificate",
            files.cert.display()
        );
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing tls_key_file {}", files.key.display()))?
        .with_context(|| format!("tls_key_file {} holds no private key", files.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(crate::barrier::tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?;
    let builder = match (&files.client_ca, &client_ca_pem) {
        (Some(path), Some(pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.with_context(|| format!("parsing tls_client_ca_file {}", path.display()))?;
                roots.add(cert).with_context(|| {
                    format!("a certificate in tls_client_ca_file {}", path.display())
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!("tls_client_ca_file {} holds no certificate", path.display());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::barrier::tls_provider(),
            )
            .build()
            .context("setting up client certificate verification")?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // What the configuration was built from: a digest, not the key itself.
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for part in [
        &cert_pem[..],
        &key_pem[..],
        client_ca_pem.as_deref().unwrap_or_default(),
    ] {
        sha2::Digest::update(&mut hasher, (part.len() as u64).to_le_bytes());
        sha2::Digest::update(&mut hasher, part);
    }
    Ok((sha2::Digest::finalize(hasher).to_vec(), config))
}
