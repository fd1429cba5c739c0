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

/// What a server needs to start.
pub struct ServerOptions {
    pub storage_url: String,
    pub storage: StorageOptions,
    pub seal: SealSettings,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

/// A server accepting requests.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub core: Arc<Core>,
    pub tls: bool,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Opens storage, starts the core and serves on `listener` (already bound,
/// so the address is known and no other process can take it meanwhile).
pub async fn start(options: ServerOptions, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let storage = Storage::connect(&options.storage_url, &options.storage)
        .await
        .context("opening storage")?;
    let core = Core::new(storage, options.seal);
    core.start().await?;
    let addr = listener.local_addr()?;
    let app = http::router(core.clone(), options.limits)
        .into_make_service_with_connect_info::<SocketAddr>();
    let handle = Handle::new();
    let tls = options.tls.is_some();
    let task = match options.tls {
        Some(files) => {
            let config = RustlsConfig::from_config(Arc::new(tls_config(&files)?));
            let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle.clone());
            limit_connections(server.http_builder());
            tokio::spawn(server.serve(app))
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle.clone());
            limit_connections(server.http_builder());
            tokio::spawn(server.serve(app))
        }
    };
    Ok(RunningServer {
        addr,
        core,
        tls,
        handle,
        task,
    })
}

impl RunningServer {
    /// `http://` or `https://` and the address.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, stops background
    /// jobs and closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(DRAIN_TIMEOUT));
        let served = self.task.await.context("the server task failed")?;
        self.core.stop();
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

/// rustls with ring, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1.
fn tls_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading tls_cert_file {}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("reading tls_key_file {}", files.key.display()))?;
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
    let mut config = rustls::ServerConfig::builder_with_provider(crate::barrier::tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
