//! `secretctl agent --config agent.toml [--once]`: log in, render
//! templates into files, and (without `--once`) keep them fresh.
//!
//! - `--once` is the init container: log in, render every file, save the
//!   token and leases to the state file, exit 0 — or exit with the code of
//!   what failed, after bounded retries, with the reason in the
//!   termination message.
//! - Without it, the sidecar: the same first render (continuing the init
//!   container's token and leases from the state file when they are still
//!   valid, so the application keeps the credentials it started with),
//!   then renewals, re-renders on change, notifications, `/readyz` once
//!   the first render is done, and `/metrics`.

mod config;
mod health;
mod render;
mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use secretd_client::{KeeperError, KeeperOptions, LeaseKeeper, SavedState, Snapshot, backoff};
use tokio::signal::unix::{SignalKind, signal};
use zeroize::Zeroizing;

use self::config::AgentConfig;
use self::health::AgentStatus;
use self::render::{RenderError, Renderer};
use crate::cli::Global;
use crate::inject::{self, EXIT_NOT_FOUND};
use crate::{EXIT_OK, Failure};

/// How many rounds one render may take to find the secrets it needs: one
/// finds every path it can reach; a path computed from another secret
/// takes one more round per step.
const MAX_DISCOVERY_ROUNDS: usize = 16;

/// What each template's file holds, as last written (or found) by this
/// agent: a file is rewritten, and its application told, only when this
/// changes, even if the agent cannot read the file back.
type Written = Vec<Zeroizing<String>>;

/// `agent`.
#[derive(Args)]
pub struct AgentArgs {
    /// The agent's configuration file (TOML; see docs/injection.md).
    #[arg(long, env = "SECRETD_AGENT_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Render every file once and exit (an init container).
    #[arg(long)]
    pub once: bool,
    /// Check the configuration and compile the templates, then exit
    /// (0, or 78 with the reason); nothing is read or written.
    #[arg(long, conflicts_with = "once")]
    pub check: bool,
}

/// One line on stderr.
pub fn log(message: std::fmt::Arguments<'_>) {
    eprintln!("secretctl agent: {message}");
}

/// `agent`: a failure before the first render is complete is also
/// written as the termination message.
pub async fn agent(global: &Global, a: AgentArgs) -> Result<u8, Failure> {
    let config = match AgentConfig::load(&a.config) {
        Ok(config) => config,
        Err(e) => {
            let failure = config_error(e);
            inject::write_termination_message(Path::new(inject::DEFAULT_TERMINATION_LOG), &failure);
            return Err(failure);
        }
    };
    if a.check {
        Renderer::new(&config.templates).map_err(config_error)?;
        config.auth.login(global)?;
        return Ok(EXIT_OK);
    }
    let status = Arc::new(AgentStatus::default());
    let (renderer, keeper, written) = match start(global, &a, &config, &status).await {
        Ok(started) => started,
        Err(failure) => {
            inject::write_termination_message(&config.termination_log, &failure);
            return Err(failure);
        }
    };
    if a.once {
        save_state(&config, &keeper).await;
        // The leases live on for the sidecar (or until they expire).
        keeper.stop(false).await;
        return Ok(EXIT_OK);
    }
    keep_fresh(&config, (renderer, keeper, written), &status).await
}

/// Everything up to the first complete render.
async fn start(
    global: &Global,
    a: &AgentArgs,
    config: &AgentConfig,
    status: &Arc<AgentStatus>,
) -> Result<(Renderer, LeaseKeeper, Written), Failure> {
    let renderer = Renderer::new(&config.templates).map_err(config_error)?;
    let login = config.auth.login(global)?;
    let client = client(global, config)?;
    if let (false, Some(addr)) = (a.once, config.listen) {
        let bound = health::serve(addr, status.clone())
            .await
            .map_err(|e| config_error(format!("cannot listen on {addr}: {e}")))?;
        log(format_args!("health endpoints on http://{bound}"));
    }
    let options = KeeperOptions {
        poll_interval: config.kv_poll_interval,
        grace: config.grace,
        start_attempts: config.attempts.max(1),
        resume: read_state(config.state_file.as_deref()),
        ..KeeperOptions::default()
    };
    let retry = (options.retry_base, options.retry_max);
    let keeper = LeaseKeeper::start(client, login, &[], options)
        .await
        .map_err(|e| inject::keeper_failure(&e))?;
    *status.stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(keeper.stats());
    let mut attempt = 0;
    let outputs = loop {
        match render_all(&renderer, &keeper).await {
            Ok(outputs) => break outputs,
            Err(Failed::Keeper(e)) if e.is_transient() && attempt + 1 < config.attempts => {
                tokio::time::sleep(backoff(retry.0, retry.1, attempt)).await;
                attempt += 1;
            }
            Err(failed) => {
                keeper.stop(false).await;
                return Err(failed.into_failure());
            }
        }
    };
    for (t, content) in config.templates.iter().zip(&outputs.1) {
        if render::holds(&t.destination, content) {
            continue;
        }
        if let Err(e) = render::write_file(t, content) {
            keeper.stop(false).await;
            return Err(config_error(format!(
                "cannot write {}: {e}",
                t.destination.display()
            )));
        }
    }
    status.observe(&outputs.0);
    status.rendered();
    status.ready.store(true, Ordering::Relaxed);
    log(format_args!("rendered {} files", outputs.1.len()));
    Ok((renderer, keeper, outputs.1))
}

fn config_error(message: impl std::fmt::Display) -> Failure {
    inject::config(message)
}

/// The server's client: the config's address and CA, else the flags and
/// the environment.
fn client(global: &Global, config: &AgentConfig) -> Result<secretd_client::Client, Failure> {
    crate::client_builder(global, config.address.as_deref(), config.ca_cert.as_deref())
        .build()
        .map_err(config_error)
}

/// Why a render pass failed.
enum Failed {
    Keeper(KeeperError),
    Render(RenderError),
}

impl Failed {
    fn into_failure(self) -> Failure {
        match self {
            Failed::Keeper(e) => inject::keeper_failure(&e),
            Failed::Render(RenderError::Undefined(m)) => Failure {
                code: EXIT_NOT_FOUND,
                message: format!("secret not found: {m}"),
            },
            Failed::Render(e) => config_error(e),
        }
    }
}

/// Renders every template, reading the secrets they turn out to need.
async fn render_all(
    renderer: &Renderer,
    keeper: &LeaseKeeper,
) -> Result<(Arc<Snapshot>, Vec<Zeroizing<String>>), Failed> {
    for _ in 0..MAX_DISCOVERY_ROUNDS {
        let snapshot = keeper.snapshot();
        match renderer.render(&snapshot) {
            Ok(outputs) => return Ok((snapshot, outputs)),
            Err(RenderError::Missing(paths)) => keeper
                .add(paths.into_iter().collect())
                .await
                .map_err(Failed::Keeper)?,
            Err(e) => return Err(Failed::Render(e)),
        }
    }
    Err(Failed::Render(RenderError::Invalid(format!(
        "the templates still needed new secrets after {MAX_DISCOVERY_ROUNDS} rounds"
    ))))
}

/// The state file, if there is a usable one.
fn read_state(path: Option<&Path>) -> Option<SavedState> {
    let path = path?;
    let bytes = Zeroizing::new(std::fs::read(path).ok()?);
    match serde_json::from_slice(&bytes) {
        Ok(state) => Some(state),
        Err(e) => {
            log(format_args!(
                "ignoring the state file {}: {e}",
                path.display()
            ));
            None
        }
    }
}

/// Saves the token and leases (mode 0600, atomically) for a later agent.
async fn save_state(config: &AgentConfig, keeper: &LeaseKeeper) {
    let Some(path) = &config.state_file else {
        return;
    };
    let result = async {
        let state = keeper.save().await.map_err(|e| e.to_string())?;
        let json = Zeroizing::new(serde_json::to_vec(&state).map_err(|e| e.to_string())?);
        write_private(path, &json).map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        log(format_args!(
            "cannot save the state file {}: {e}",
            path.display()
        ));
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("/"));
    // tempfile creates it with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".secretctl-state-")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The sidecar's loop: re-render on every change of the secrets (and
/// again, with backoff, after a failed render), write what changed,
/// notify, save the state; stop on SIGTERM or SIGINT.
async fn keep_fresh(
    config: &AgentConfig,
    (renderer, keeper, mut written): (Renderer, LeaseKeeper, Written),
    status: &Arc<AgentStatus>,
) -> Result<u8, Failure> {
    save_state(config, &keeper).await;
    let os = |e: std::io::Error| Failure::local(format!("cannot catch signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(os)?;
    let mut int = signal(SignalKind::interrupt()).map_err(os)?;
    let mut updates = keeper.subscribe();
    updates.borrow_and_update();
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
    let defaults = KeeperOptions::default();
    let ended = loop {
        let render_now = tokio::select! {
            _ = term.recv() => break None,
            _ = int.recv() => break None,
            changed = updates.changed() => {
                if changed.is_err() {
                    break Some(Failure {
                        code: inject::EXIT_UNREACHABLE,
                        message: "the lease keeper stopped: nothing is renewed any more".into(),
                    });
                }
                status.observe(&updates.borrow_and_update());
                true
            }
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(far)), if retry_at.is_some() => true,
        };
        if render_now {
            if rerender(config, &renderer, &keeper, &mut written, status).await {
                failures = 0;
                retry_at = None;
            } else {
                let wait = backoff(defaults.retry_base, defaults.retry_max, failures);
                failures = failures.saturating_add(1);
                retry_at = Some(tokio::time::Instant::now() + wait);
            }
            save_state(config, &keeper).await;
        }
    };
    if config.revoke_on_exit {
        keeper.stop(true).await;
        if let Some(path) = &config.state_file {
            let _ = std::fs::remove_file(path);
        }
        log(format_args!("stopped; leases revoked"));
    } else {
        save_state(config, &keeper).await;
        keeper.stop(false).await;
        log(format_args!("stopped"));
    }
    match ended {
        Some(failure) => Err(failure),
        None => Ok(EXIT_OK),
    }
}

/// One re-render: files whose text changed are replaced and their
/// notifications run; true when every file is as rendered. A failure keeps
/// the old files and is counted.
async fn rerender(
    config: &AgentConfig,
    renderer: &Renderer,
    keeper: &LeaseKeeper,
    written: &mut Written,
    status: &Arc<AgentStatus>,
) -> bool {
    let (_, outputs) = match render_all(renderer, keeper).await {
        Ok(rendered) => rendered,
        Err(failed) => {
            status.render_failures.fetch_add(1, Ordering::Relaxed);
            let failure = failed.into_failure();
            log(format_args!(
                "render failed; the files are unchanged: {}",
                failure.message
            ));
            return false;
        }
    };
    let mut complete = true;
    for ((t, content), last) in config.templates.iter().zip(outputs).zip(written.iter_mut()) {
        if *last == content {
            continue;
        }
        if let Err(e) = render::write_file(t, &content) {
            status.render_failures.fetch_add(1, Ordering::Relaxed);
            log(format_args!(
                "cannot write {}: {e}",
                t.destination.display()
            ));
            complete = false;
            continue;
        }
        *last = content;
        log(format_args!("{} changed", t.destination.display()));
        if !t.command.is_empty() || t.signal.is_some() {
            let t = t.clone();
            tokio::spawn(async move { render::notify(&t).await });
        }
    }
    if complete {
        status.rendered();
    }
    complete
}
