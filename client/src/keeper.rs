//! Keeping a token and the secrets read with it alive: [`LeaseKeeper`].
//!
//! A keeper logs in, reads the secrets it is asked for, and from then on,
//! in one background task:
//!
//! - renews the token at two thirds of its TTL, and logs in again when it
//!   can no longer be renewed (the Kubernetes token file and the LDAP
//!   password file are read again for that);
//! - renews each leased secret (database credentials) at two thirds of its
//!   lease; when the lease cannot be extended any more (its max TTL) or
//!   cannot be renewed at all, reads a new one two thirds of the way
//!   through the old one's remaining life, publishes it, and revokes the
//!   old lease after a grace period — so there is no moment at which the
//!   published credential is dead;
//! - reads KV secrets again every poll interval and publishes a new
//!   version when it changed.
//!
//! Every change is published as a new [`Snapshot`] on a
//! `tokio::sync::watch` channel ([`LeaseKeeper::subscribe`]). Secret values
//! sit in [`secrecy`] boxes that zero their memory when dropped and never
//! show in `Debug`.
//!
//! A keeper's token and leases can be saved ([`LeaseKeeper::save`]) and
//! resumed by another process ([`KeeperOptions::resume`]): that is how a
//! sidecar continues the leases of the init container before it instead
//! of reading a second set of credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zeroize::{Zeroize, Zeroizing};

use crate::login::read_small_file;
use crate::wire::UiMount;
use crate::{Client, Error, TokenAuth};

/// Never wait less than this between two attempts on the same thing.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// The version of [`SavedState`]'s format.
const SAVED_STATE_VERSION: u32 = 1;
/// Longer TTLs from the server are taken as this (ten years), so that no
/// answer can overflow a clock.
const MAX_TTL: u64 = 10 * 365 * 24 * 3600;
/// How long [`LeaseKeeper::stop`] waits for the revocations and the task.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a token file that still holds the same token is left before
/// it is read again.
const TOKEN_FILE_RECHECK: Duration = Duration::from_secs(10);

/// How a keeper gets (and gets again) its token.
#[derive(Clone)]
pub enum Login {
    /// A token given as it is: renewed while it can be, never replaced.
    Token(SecretString),
    /// A token read from a file, read again whenever a new token is needed
    /// (something else keeps the file fresh).
    TokenFile(PathBuf),
    /// The Kubernetes auth method at `auth/<mount>`, with the
    /// service-account token in `jwt_path` (read at every login, since
    /// the kubelet replaces projected tokens).
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
    /// The LDAP auth method at `auth/<mount>`, with the password in
    /// `password_file` (read at every login).
    Ldap {
        mount: String,
        username: String,
        password_file: PathBuf,
    },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Token(_) => f.write_str("Token(<redacted>)"),
            Login::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            Login::Kubernetes {
                mount,
                role,
                jwt_path,
            } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .field("jwt_path", jwt_path)
                .finish(),
            Login::Ldap {
                mount,
                username,
                password_file,
            } => f
                .debug_struct("Ldap")
                .field("mount", mount)
                .field("username", username)
                .field("password_file", password_file)
                .finish(),
        }
    }
}

impl Login {
    /// True when a new token can be had once this one ends.
    fn can_login_again(&self) -> bool {
        !matches!(self, Login::Token(_))
    }

    /// True when logging in makes a token of our own (ours to revoke), not
    /// one that someone else handed over.
    fn makes_own_token(&self) -> bool {
        matches!(self, Login::Kubernetes { .. } | Login::Ldap { .. })
    }

    /// Gets a token: the answer of a login, or the lookup of a given one.
    async fn login(&self, client: &Client) -> Result<TokenAuth, Error> {
        match self {
            Login::Token(token) => adopt(client, token.expose_secret()).await,
            Login::TokenFile(path) => {
                let token = read_small_file(path).await?;
                adopt(client, token.trim()).await
            }
            Login::Kubernetes {
                mount,
                role,
                jwt_path,
            } => client.login_kubernetes(mount, role, jwt_path).await,
            Login::Ldap {
                mount,
                username,
                password_file,
            } => {
                let password = read_small_file(password_file).await?;
                let password = password.strip_suffix('\n').unwrap_or(&password);
                client.login_ldap(mount, username, password).await
            }
        }
    }
}

/// A token that came from elsewhere: its terms from `lookup-self`.
async fn adopt(client: &Client, token: &str) -> Result<TokenAuth, Error> {
    if token.is_empty() {
        return Err(Error::Config("the token is empty".into()));
    }
    let lookup = client.with_token(token).token().lookup_self().await?;
    Ok(TokenAuth {
        client_token: Zeroizing::new(token.to_owned()),
        accessor: lookup.accessor,
        policies: lookup.policies,
        lease_duration: lookup.ttl,
        renewable: lookup.renewable,
        ..TokenAuth::default()
    })
}

/// The key/value data of a secret. Dropping it overwrites every string in
/// it; `Debug` shows only the keys.
#[derive(Clone, Default, PartialEq)]
pub struct SecretData(pub Map<String, Value>);

impl Zeroize for SecretData {
    fn zeroize(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
        self.0.clear();
    }
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The lease of a leased secret, as last renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub renewable: bool,
    /// When the lease ends unless renewed.
    pub expires_at: SystemTime,
}

/// One secret as the keeper last read it.
#[derive(Debug)]
pub struct Secret {
    /// The path it was asked for (`secret/app/db`, `database/creds/app`).
    pub path: String,
    /// The values: `data.expose_secret().0["password"]`.
    pub data: SecretBox<SecretData>,
    /// The KV version, for a KV version 2 secret.
    pub version: Option<u64>,
    /// The lease, for a leased (dynamic) secret.
    pub lease: Option<Lease>,
    /// Grows by one each time the values change (a new KV version, new
    /// credentials); a lease renewal does not change it.
    pub revision: u64,
}

impl Secret {
    /// One value as text: a string as it is, anything else as JSON.
    pub fn field(&self, key: &str) -> Option<SecretString> {
        self.data
            .expose_secret()
            .0
            .get(key)
            .map(|value| match value {
                Value::String(s) => SecretString::from(s.clone()),
                other => SecretString::from(other.to_string()),
            })
    }
}

/// What the keeper holds now, published on every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Grows by one with every snapshot.
    pub generation: u64,
    /// By the path they were asked for.
    pub secrets: BTreeMap<String, Arc<Secret>>,
    /// When the token ends unless renewed; `None` if it never does.
    pub token_expires_at: Option<SystemTime>,
}

/// Counters of what the keeper did, for metrics.
#[derive(Debug, Default)]
pub struct KeeperStats {
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub renewals: AtomicU64,
    pub renewal_failures: AtomicU64,
    pub reads: AtomicU64,
    pub read_failures: AtomicU64,
    /// Leased secrets replaced by new ones.
    pub replacements: AtomicU64,
    pub revocations: AtomicU64,
    /// Revocations the server refused or did not answer (the lease then
    /// ends at its expiry).
    pub revocation_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Settings of a [`LeaseKeeper`].
#[derive(Debug, Clone)]
pub struct KeeperOptions {
    /// How often KV secrets (and other secrets without a lease) are read
    /// again to notice a change.
    pub poll_interval: Duration,
    /// How long a replaced lease lives on before it is revoked, so the
    /// application has time to switch to the new credentials.
    pub grace: Duration,
    /// How many times [`LeaseKeeper::start`] tries when the server cannot
    /// be reached or is unavailable (1: no retry).
    pub start_attempts: u32,
    /// The first wait between two attempts; it doubles up to
    /// `retry_max`, with full jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A token and leases saved by another keeper, to continue.
    pub resume: Option<SavedState>,
}

impl Default for KeeperOptions {
    fn default() -> Self {
        KeeperOptions {
            poll_interval: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            start_attempts: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            resume: None,
        }
    }
}

/// Why a keeper could not start or add a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The login failed (or the given token is not valid).
    #[error("logging in: {0}")]
    Login(Error),
    /// A secret could not be read.
    #[error("reading {path}: {error}")]
    Read { path: String, error: Error },
    /// The keeper's task is gone.
    #[error("the lease keeper has stopped")]
    Stopped,
}

impl KeeperError {
    /// The client error underneath, if any.
    pub fn error(&self) -> Option<&Error> {
        match self {
            KeeperError::Login(error) | KeeperError::Read { error, .. } => Some(error),
            KeeperError::Stopped => None,
        }
    }

    /// True when trying again later may succeed: the server could not be
    /// reached, was sealed or overloaded, or failed on its side.
    pub fn is_transient(&self) -> bool {
        self.error().is_some_and(is_transient)
    }
}

/// True for errors worth another try: no answer, 429, or 5xx.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Http(_) => true,
        Error::Api { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// A keeper's token and leased secrets, saved so another process can
/// continue them. It holds the token and secret values: keep it only in
/// memory-backed storage readable by its owner alone. `Debug` shows
/// neither.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedState {
    version: u32,
    address: String,
    token: Zeroizing<String>,
    token_ttl: u64,
    /// The token came from our own login (ours to revoke).
    #[serde(default)]
    ours: bool,
    secrets: Vec<SavedSecret>,
}

#[derive(Clone, Serialize, Deserialize)]
struct SavedSecret {
    path: String,
    data: Map<String, Value>,
    lease_id: String,
    renewable: bool,
    lease_ttl: u64,
}

impl Drop for SavedSecret {
    fn drop(&mut self) {
        SecretData(std::mem::take(&mut self.data)).zeroize();
    }
}

impl std::fmt::Debug for SavedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedState")
            .field("address", &self.address)
            .field(
                "secrets",
                &self.secrets.iter().map(|s| &s.path).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

enum Command {
    Add(Vec<String>, oneshot::Sender<Result<(), KeeperError>>),
    Save(oneshot::Sender<SavedState>),
    Stop(bool, oneshot::Sender<()>),
}

/// Keeps a token and the secrets read with it alive in a background task
/// and publishes them on a watch channel: renewal at two thirds of each
/// TTL, a new login when the token cannot be renewed, new credentials
/// before a lease's max TTL with the old lease revoked after a grace
/// period, and KV secrets read again every poll interval.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use secrecy::ExposeSecret;
/// use secretd_client::{Client, KeeperOptions, LeaseKeeper, Login};
///
/// let client = Client::builder().address("https://secretd:8200").build()?;
/// let login = Login::Kubernetes {
///     mount: "kubernetes".into(),
///     role: "app".into(),
///     jwt_path: "/var/run/secrets/secretd/token".into(),
/// };
/// let paths = vec!["database/creds/app".to_string()];
/// let keeper = LeaseKeeper::start(client, login, &paths, KeeperOptions::default()).await?;
/// let mut updates = keeper.subscribe();
/// loop {
///     let snapshot = updates.borrow_and_update().clone();
///     let creds = &snapshot.secrets["database/creds/app"];
///     let username = creds.field("username").expect("a username");
///     println!("connecting as {}", username.expose_secret());
///     updates.changed().await?;
/// }
/// # }
/// ```
pub struct LeaseKeeper {
    commands: mpsc::Sender<Command>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stats: Arc<KeeperStats>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("generation", &self.snapshots.borrow().generation)
            .finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Logs in (or resumes a saved state), reads every path in `paths`,
    /// and starts keeping them. Errors the server may get over (no
    /// answer, sealed, 5xx, 429) are retried `start_attempts` times with
    /// backoff and jitter; any other error is returned at once.
    ///
    /// A path is read as KV version 2 when its mount is one (as `vault kv`
    /// finds out, through `sys/internal/ui/mounts`), else with a plain
    /// read (`database/creds/app`).
    pub async fn start(
        client: Client,
        login: Login,
        paths: &[String],
        mut options: KeeperOptions,
    ) -> Result<LeaseKeeper, KeeperError> {
        let stats = Arc::new(KeeperStats::default());
        let resume = options.resume.take();
        let mut attempt = 0;
        let worker = loop {
            attempt += 1;
            match Worker::begin(&client, &login, paths, &options, &stats, resume.as_ref()).await {
                Ok(worker) => break worker,
                Err(err) if err.is_transient() && attempt < options.start_attempts.max(1) => {
                    let wait = backoff(options.retry_base, options.retry_max, attempt - 1);
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err),
            }
        };
        let (commands, inbox) = mpsc::channel(16);
        let snapshots = worker.published.subscribe();
        let task = tokio::spawn(worker.run(inbox));
        Ok(LeaseKeeper {
            commands,
            snapshots,
            stats,
            task,
        })
    }

    /// The current snapshot and every later one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// What the keeper has done so far (shared: it keeps counting).
    pub fn stats(&self) -> Arc<KeeperStats> {
        self.stats.clone()
    }

    /// Reads more paths and keeps them too. Returns once they are in the
    /// snapshot, or with the first error (nothing is added then).
    pub async fn add(&self, paths: Vec<String>) -> Result<(), KeeperError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Add(paths, reply))
            .await
            .map_err(|_| KeeperError::Stopped)?;
        answer.await.map_err(|_| KeeperError::Stopped)?
    }

    /// The token and leases now held, for another process to resume.
    pub async fn save(&self) -> Result<SavedState, KeeperError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Save(reply))
            .await
            .map_err(|_| KeeperError::Stopped)?;
        answer.await.map_err(|_| KeeperError::Stopped)
    }

    /// Stops the keeper. With `revoke`, first revokes every lease it holds
    /// and its token (when it got the token by logging in); failures are
    /// left to the server's expiry.
    ///
    /// Gives up after ten seconds (a pass of renewals against a server
    /// that does not answer can take longer): the task is then aborted.
    pub async fn stop(self, revoke: bool) {
        let LeaseKeeper { commands, task, .. } = self;
        let abort = task.abort_handle();
        let stopping = async move {
            let (reply, answer) = oneshot::channel();
            if commands.send(Command::Stop(revoke, reply)).await.is_ok() {
                let _ = answer.await;
            }
            let _ = task.await;
        };
        if tokio::time::timeout(STOP_TIMEOUT, stopping).await.is_err() {
            abort.abort();
        }
    }
}

/// The wait before attempt `n + 1` (n counted from 0): full jitter over
/// `base * 2^n`, capped at `max`, never under a second.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << n.min(16)).min(max);
    // Without randomness the full wait is as good a choice as any.
    let fraction = random_fraction().unwrap_or(1.0);
    ceiling.mul_f64(fraction).max(MIN_WAIT.min(ceiling))
}

/// A random duration in `[0, max)`: splay so replicas do not act together.
pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    max.mul_f64(random_fraction().unwrap_or(0.5))
}

/// A uniform random number in `[0, 1)` from the system's RNG.
fn random_fraction() -> Option<f64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).ok()?;
    Some((u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64)
}

/// True when two reads of a (non-KV) secret hold the same values. A
/// static role's `ttl` counts down from one read to the next: that alone
/// is no change.
fn same_values(a: &SecretData, b: &SecretData) -> bool {
    let keys = |d: &SecretData| d.0.keys().filter(|k| *k != "ttl").count();
    keys(a) == keys(b) && a.0.iter().all(|(k, v)| k == "ttl" || b.0.get(k) == Some(v))
}

/// Two thirds of `secs` from `now`, at least [`MIN_WAIT`].
fn two_thirds(now: Instant, secs: u64) -> Instant {
    now + Duration::from_secs(secs.min(MAX_TTL))
        .mul_f64(2.0 / 3.0)
        .max(MIN_WAIT)
}

/// What to do with a lease just granted `granted` seconds when `asked`
/// were asked for: when to look at it next, and whether to replace it
/// then. A lease that got what it asked for is renewed at two thirds of
/// it. One that did not (its max TTL is near) or cannot be renewed is
/// replaced early enough that the old credentials outlive the grace
/// period: at least a third of what is left, and the grace plus two
/// seconds, stay between the replacement and the end — but never sooner
/// than a third of the way, so a lease shorter than the grace is not
/// replaced over and over.
fn lease_plan(granted: u64, asked: u64, renewable: bool, grace: Duration) -> (Duration, bool) {
    let granted_for = Duration::from_secs(granted.min(MAX_TTL));
    if renewable && granted >= asked {
        return (granted_for.mul_f64(2.0 / 3.0).max(MIN_WAIT), false);
    }
    (replace_in(granted_for, grace), true)
}

/// When to replace something that ends in `left` (a capped lease, a
/// token at its max TTL), so that it outlives the grace period if it can.
fn replace_in(left: Duration, grace: Duration) -> Duration {
    let keep = (left / 3).max(grace + 2 * MIN_WAIT);
    left.saturating_sub(keep).max((left / 3).max(MIN_WAIT))
}

fn expires_at(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs.min(MAX_TTL))
}

/// How a path is read.
#[derive(Debug, Clone)]
enum Source {
    /// KV version 2: `kv2(mount).get(key)`.
    Kv { mount: String, key: String },
    /// A plain read of the path.
    Plain,
}

/// What the worker knows about one secret besides what it published.
struct Entry {
    source: Source,
    secret: Arc<Secret>,
    /// The TTL the lease was issued with (what renewals ask for).
    lease_ttl: u64,
    /// When to look at it next.
    next: Instant,
    /// The lease can no longer be extended: replace it at `next`.
    replace: bool,
    failures: u32,
}

struct TokenState {
    /// A client that sends the token.
    client: Client,
    token: Zeroizing<String>,
    /// The TTL it was issued with; renewals ask for it.
    ttl: u64,
    renewable: bool,
    expires_at: Option<SystemTime>,
    /// When to renew it or log in again; `None` for a token that never
    /// expires.
    next: Option<Instant>,
    /// Log in again at `next` instead of renewing.
    relogin: bool,
    failures: u32,
    /// Came from a login (so it is ours to revoke).
    ours: bool,
}

impl TokenState {
    fn new(base: &Client, auth: &TokenAuth, ours: bool) -> TokenState {
        let ttl = auth.lease_duration;
        TokenState {
            client: base.with_token(auth.client_token.as_str()),
            token: auth.client_token.clone(),
            ttl,
            renewable: auth.renewable,
            expires_at: (ttl > 0).then(|| expires_at(ttl)),
            next: (ttl > 0).then(|| two_thirds(Instant::now(), ttl)),
            relogin: false,
            failures: 0,
            ours,
        }
    }
}

struct Worker {
    base: Client,
    login: Login,
    options: KeeperOptions,
    stats: Arc<KeeperStats>,
    token: TokenState,
    entries: BTreeMap<String, Entry>,
    /// Replaced leases to revoke, and when.
    doomed: Vec<(Instant, String)>,
    /// Replaced tokens of our own to revoke, and when.
    doomed_tokens: Vec<(Instant, Client)>,
    published: watch::Sender<Arc<Snapshot>>,
    generation: u64,
}

impl Worker {
    async fn begin(
        base: &Client,
        login: &Login,
        paths: &[String],
        options: &KeeperOptions,
        stats: &Arc<KeeperStats>,
        resume: Option<&SavedState>,
    ) -> Result<Worker, KeeperError> {
        let resumed = match resume {
            Some(saved) => Self::resume_token(base, saved).await,
            None => None,
        };
        let token = match resumed {
            Some(token) => token,
            None => {
                bump(&stats.logins);
                let auth = login.login(base).await.map_err(|err| {
                    bump(&stats.login_failures);
                    KeeperError::Login(err)
                })?;
                TokenState::new(base, &auth, login.makes_own_token())
            }
        };
        let (published, _) = watch::channel(Arc::new(Snapshot::default()));
        let mut worker = Worker {
            base: base.clone(),
            login: login.clone(),
            options: options.clone(),
            stats: stats.clone(),
            token,
            entries: BTreeMap::new(),
            doomed: Vec::new(),
            doomed_tokens: Vec::new(),
            published,
            generation: 0,
        };
        if let Some(saved) = resume {
            worker.resume_leases(saved).await;
        }
        if let Err(err) = worker.add(paths).await {
            // Nothing of this attempt outlives it: the next one starts over.
            worker.revoke_all().await;
            return Err(err);
        }
        worker.publish();
        Ok(worker)
    }

    /// The saved token, if the server still takes it.
    async fn resume_token(base: &Client, saved: &SavedState) -> Option<TokenState> {
        if saved.version != SAVED_STATE_VERSION || saved.address != base.address() {
            return None;
        }
        let client = base.with_token(saved.token.as_str());
        let lookup = client.token().lookup_self().await.ok()?;
        let auth = TokenAuth {
            client_token: saved.token.clone(),
            lease_duration: lookup.ttl,
            renewable: lookup.renewable,
            ..TokenAuth::default()
        };
        let mut state = TokenState::new(base, &auth, saved.ours);
        state.ttl = saved.token_ttl.max(lookup.ttl);
        Some(state)
    }

    /// Takes over the saved leases that are still alive and ours.
    async fn resume_leases(&mut self, saved: &SavedState) {
        if saved.token != self.token.token {
            return; // A new token: the saved leases die with the old one.
        }
        let now = Instant::now();
        for s in &saved.secrets {
            let Ok(lookup) = self.token.client.lease().lookup(&s.lease_id).await else {
                continue;
            };
            if lookup.ttl == 0 {
                continue;
            }
            // Part of its TTL has passed: renew it at two thirds of what
            // is left (the renewal tells whether its max TTL is near).
            let (wait, replace) =
                lease_plan(lookup.ttl, lookup.ttl, lookup.renewable, self.options.grace);
            let secret = Secret {
                path: s.path.clone(),
                data: SecretBox::new(Box::new(SecretData(s.data.clone()))),
                version: None,
                lease: Some(Lease {
                    id: s.lease_id.clone(),
                    renewable: lookup.renewable,
                    expires_at: expires_at(lookup.ttl),
                }),
                revision: 1,
            };
            self.entries.insert(
                s.path.clone(),
                Entry {
                    source: Source::Plain,
                    secret: Arc::new(secret),
                    lease_ttl: s.lease_ttl.max(lookup.ttl),
                    next: now + wait,
                    replace,
                    failures: 0,
                },
            );
        }
    }

    /// Reads the paths not held yet, and keeps what it read even when a
    /// later path fails (its leases are ours to renew and revoke).
    async fn add(&mut self, paths: &[String]) -> Result<(), KeeperError> {
        for path in paths {
            let path = path.trim_matches('/');
            if self.entries.contains_key(path) {
                continue;
            }
            let entry = self.read(path, 1).await?;
            self.entries.insert(path.to_owned(), entry);
        }
        Ok(())
    }

    /// Reads one path: finds how (KV or not), then reads it.
    async fn read(&self, path: &str, revision: u64) -> Result<Entry, KeeperError> {
        let source = self.source(path).await.map_err(|error| {
            bump(&self.stats.read_failures);
            KeeperError::Read {
                path: path.to_owned(),
                error,
            }
        })?;
        self.read_from(path, source, revision).await
    }

    /// How to read `path`; an error only when the server could not say
    /// (unreachable, sealed, failing), so that a KV path is never read as
    /// a plain one by mistake.
    async fn source(&self, path: &str) -> Result<Source, Error> {
        let found = self
            .token
            .client
            .get_data::<UiMount>(&format!("sys/internal/ui/mounts/{path}"), &[])
            .await;
        Ok(match found {
            Err(err) if is_transient(&err) => return Err(err),
            Ok(m)
                if m.mount.mount_type == "kv"
                    && m.mount.options.as_ref().and_then(|o| o.get("version"))
                        == Some(&"2".to_string()) =>
            {
                let mount = m.path.trim_matches('/').to_owned();
                let key = path
                    .strip_prefix(m.path.as_str())
                    .unwrap_or(path)
                    .trim_matches('/')
                    .to_owned();
                Source::Kv { mount, key }
            }
            // Not KV, or the token may not ask: read the path as it is.
            _ => Source::Plain,
        })
    }

    async fn read_from(
        &self,
        path: &str,
        source: Source,
        revision: u64,
    ) -> Result<Entry, KeeperError> {
        bump(&self.stats.reads);
        let failed = |error: Error| {
            bump(&self.stats.read_failures);
            KeeperError::Read {
                path: path.to_owned(),
                error,
            }
        };
        let not_found = || Error::Api {
            status: 404,
            errors: vec!["no secret at this path".into()],
        };
        let client = &self.token.client;
        let now = Instant::now();
        let (data, version, lease, lease_ttl) = match &source {
            Source::Kv { mount, key } => {
                let secret = client.kv2(mount).get(key).await.map_err(failed)?;
                let version = secret.metadata.version;
                let data = secret.data.clone().ok_or_else(|| failed(not_found()))?;
                (data, Some(version), None, 0)
            }
            Source::Plain => {
                let answer = client
                    .logical()
                    .read(path)
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| failed(not_found()))?;
                let lease = (!answer.lease_id.is_empty()).then(|| Lease {
                    id: answer.lease_id.clone(),
                    renewable: answer.renewable,
                    expires_at: expires_at(answer.lease_duration),
                });
                let data = answer.data.clone().unwrap_or_default();
                (data, None, lease, answer.lease_duration)
            }
        };
        let (next, replace) = match &lease {
            None if matches!(source, Source::Kv { .. }) => {
                (now + self.options.poll_interval.max(MIN_WAIT), false)
            }
            Some(l) => {
                let (wait, replace) =
                    lease_plan(lease_ttl, lease_ttl, l.renewable, self.options.grace);
                (now + wait, replace)
            }
            None => (now + self.poll_after(&data), false),
        };
        Ok(Entry {
            source,
            secret: Arc::new(Secret {
                path: path.to_owned(),
                data: SecretBox::new(Box::new(SecretData(data))),
                version,
                lease,
                revision,
            }),
            lease_ttl,
            next,
            replace,
            failures: 0,
        })
    }

    /// When to read an unleased, non-KV secret again: the poll interval,
    /// or just after the `ttl` it states (a static role's next rotation).
    fn poll_after(&self, data: &Map<String, Value>) -> Duration {
        let poll = self.options.poll_interval.max(MIN_WAIT);
        match data.get("ttl").and_then(Value::as_u64) {
            Some(ttl) => poll.min(Duration::from_secs(ttl.min(MAX_TTL)) + MIN_WAIT),
            None => poll,
        }
    }

    fn publish(&mut self) {
        self.generation += 1;
        let snapshot = Snapshot {
            generation: self.generation,
            secrets: self
                .entries
                .iter()
                .map(|(path, entry)| (path.clone(), entry.secret.clone()))
                .collect(),
            token_expires_at: self.token.expires_at,
        };
        self.published.send_replace(Arc::new(snapshot));
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let entries = self.entries.values().map(|e| e.next);
        let doomed = self.doomed.iter().map(|(at, _)| *at);
        let doomed_tokens = self.doomed_tokens.iter().map(|(at, _)| *at);
        entries
            .chain(doomed)
            .chain(doomed_tokens)
            .chain(self.token.next)
            .min()
            .unwrap_or(far)
            .min(far)
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                command = inbox.recv() => match command {
                    None => return,
                    Some(Command::Add(paths, reply)) => {
                        let result = self.add(&paths).await;
                        if result.is_ok() {
                            self.publish();
                        }
                        let _ = reply.send(result);
                    }
                    Some(Command::Save(reply)) => {
                        let _ = reply.send(self.save());
                    }
                    Some(Command::Stop(revoke, reply)) => {
                        if revoke {
                            self.revoke_all().await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                },
                () = tokio::time::sleep_until(wake) => self.tend().await,
            }
        }
    }

    /// Does whatever is due.
    async fn tend(&mut self) {
        let now = Instant::now();
        if self.token.next.is_some_and(|at| at <= now) {
            self.tend_token().await;
        }
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.next <= now)
            .map(|(path, _)| path.clone())
            .collect();
        let mut changed = false;
        for path in due {
            changed |= self.tend_entry(&path).await;
        }
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.doomed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.doomed = later;
        for (_, lease_id) in ready {
            self.revoke_lease(&lease_id).await;
        }
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.doomed_tokens)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.doomed_tokens = later;
        for (_, client) in ready {
            if client.token().revoke_self().await.is_ok() {
                bump(&self.stats.revocations);
            }
        }
        if changed {
            self.publish();
        }
    }

    async fn revoke_lease(&self, lease_id: &str) {
        // On failure it ends at its expiry anyway (a token needs `update`
        // on sys/leases/revoke to revoke its replaced leases).
        match self.token.client.lease().revoke(lease_id).await {
            Ok(()) => bump(&self.stats.revocations),
            Err(_) => bump(&self.stats.revocation_failures),
        }
    }

    async fn tend_token(&mut self) {
        if !self.token.relogin && self.token.renewable {
            bump(&self.stats.renewals);
            match self
                .token
                .client
                .token()
                .renew_self(Some(self.token.ttl))
                .await
            {
                Ok(auth) => {
                    let granted = auth.lease_duration;
                    let now = Instant::now();
                    self.token.failures = 0;
                    self.token.expires_at = Some(expires_at(granted));
                    self.token.next = Some(two_thirds(now, granted));
                    // Capped by its max TTL: log in again early enough that
                    // this token, and the leases read with it, outlive the
                    // grace period after the new ones are out.
                    if granted < self.token.ttl && self.login.can_login_again() {
                        self.token.relogin = true;
                        let left = Duration::from_secs(granted.min(MAX_TTL));
                        self.token.next = Some(now + replace_in(left, self.options.grace));
                    }
                    self.publish();
                    return;
                }
                Err(err) if is_transient(&err) => {
                    bump(&self.stats.renewal_failures);
                    self.token.failures += 1;
                    self.token.next = Some(self.retry_at(self.token.failures));
                    return;
                }
                Err(_) => bump(&self.stats.renewal_failures),
            }
        }
        if !self.login.can_login_again() {
            // Nothing more can be done: the token ends at its expiry.
            self.token.next = None;
            return;
        }
        bump(&self.stats.logins);
        match self.login.login(&self.base).await {
            Ok(auth) if auth.client_token == self.token.token => {
                // A token file that still holds the same token: nothing new
                // to use yet; look at the file again a little later.
                self.token.expires_at =
                    (auth.lease_duration > 0).then(|| expires_at(auth.lease_duration));
                self.token.renewable = false;
                self.token.next = Some(Instant::now() + TOKEN_FILE_RECHECK);
                self.publish();
            }
            Ok(auth) => {
                let old = std::mem::replace(
                    &mut self.token,
                    TokenState::new(&self.base, &auth, self.login.makes_own_token()),
                );
                // Leases belong to the token that read them and end with
                // it: read every leased secret again with the new one. The
                // old token (with its leases) is revoked after the grace.
                let now = Instant::now();
                for entry in self.entries.values_mut() {
                    if entry.secret.lease.is_some() {
                        entry.replace = true;
                        entry.next = now;
                    }
                }
                if old.ours {
                    self.doomed_tokens
                        .push((now + self.options.grace, old.client));
                }
                self.publish();
            }
            Err(_) => {
                bump(&self.stats.login_failures);
                self.token.failures += 1;
                self.token.relogin = true;
                self.token.next = Some(self.retry_at(self.token.failures));
            }
        }
    }

    /// The next attempt after `failures` failures in a row.
    fn retry_at(&self, failures: u32) -> Instant {
        let wait = backoff(
            self.options.retry_base,
            self.options.retry_max,
            failures.saturating_sub(1),
        );
        Instant::now() + wait
    }

    /// Renews, replaces or re-reads one entry; true when its values
    /// changed (a new snapshot is due).
    async fn tend_entry(&mut self, path: &str) -> bool {
        let Some(entry) = self.entries.get(path) else {
            return false;
        };
        match entry.secret.lease.clone() {
            None => self.reread(path).await,
            Some(lease) if entry.replace || !lease.renewable => self.replace(path, lease).await,
            Some(lease) => self.renew(path, lease).await,
        }
    }

    /// Re-reads an unleased secret; true when it changed.
    async fn reread(&mut self, path: &str) -> bool {
        let Some(entry) = self.entries.get(path) else {
            return false;
        };
        let (source, revision) = (entry.source.clone(), entry.secret.revision);
        match self.read_from(path, source, revision + 1).await {
            Ok(fresh) => {
                let Some(entry) = self.entries.get_mut(path) else {
                    return false;
                };
                let (old, new) = (
                    entry.secret.data.expose_secret(),
                    fresh.secret.data.expose_secret(),
                );
                let same = match fresh.source {
                    Source::Kv { .. } => entry.secret.version == fresh.secret.version && old == new,
                    Source::Plain => same_values(old, new),
                };
                if same {
                    entry.next = fresh.next;
                    entry.failures = 0;
                    return false;
                }
                *entry = fresh;
                true
            }
            Err(_) => {
                let failures = self.entries[path].failures + 1;
                let retry = self.retry_at(failures);
                if let Some(entry) = self.entries.get_mut(path) {
                    entry.failures = failures;
                    entry.next = retry;
                }
                false
            }
        }
    }

    async fn renew(&mut self, path: &str, lease: Lease) -> bool {
        let asked = self.entries[path].lease_ttl;
        bump(&self.stats.renewals);
        let result = self
            .token
            .client
            .lease()
            .renew(&lease.id, Some(asked))
            .await;
        let now = Instant::now();
        let Some(entry) = self.entries.get_mut(path) else {
            return false;
        };
        match result {
            Ok(renewed) => {
                let granted = renewed.lease_duration;
                let secret = Secret {
                    path: entry.secret.path.clone(),
                    data: SecretBox::new(Box::new(entry.secret.data.expose_secret().clone())),
                    version: None,
                    lease: Some(Lease {
                        expires_at: expires_at(granted),
                        renewable: renewed.renewable,
                        ..lease
                    }),
                    revision: entry.secret.revision,
                };
                entry.secret = Arc::new(secret);
                entry.failures = 0;
                let (wait, replace) =
                    lease_plan(granted, asked, renewed.renewable, self.options.grace);
                entry.next = now + wait;
                entry.replace = replace;
                true
            }
            Err(err) => {
                bump(&self.stats.renewal_failures);
                entry.failures += 1;
                if is_transient(&err) {
                    let failures = entry.failures;
                    let retry = self.retry_at(failures);
                    if let Some(entry) = self.entries.get_mut(path) {
                        entry.next = retry;
                    }
                } else {
                    // The server will not renew it (gone, or refused):
                    // read a new one now.
                    entry.replace = true;
                    entry.next = now;
                }
                false
            }
        }
    }

    /// Reads new credentials for a leased secret, and dooms the old lease
    /// to be revoked after the grace period; true when replaced.
    async fn replace(&mut self, path: &str, old: Lease) -> bool {
        let revision = self.entries[path].secret.revision + 1;
        match self.read(path, revision).await {
            Ok(fresh) => {
                bump(&self.stats.replacements);
                let left = old
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                if left > MIN_WAIT {
                    let at = Instant::now() + self.options.grace.min(left - MIN_WAIT);
                    self.doomed.push((at, old.id));
                }
                self.entries.insert(path.to_owned(), fresh);
                true
            }
            Err(_) => {
                let failures = self.entries[path].failures + 1;
                let retry = self.retry_at(failures);
                if let Some(entry) = self.entries.get_mut(path) {
                    entry.failures = failures;
                    entry.next = retry;
                }
                false
            }
        }
    }

    fn save(&self) -> SavedState {
        let secrets = self
            .entries
            .values()
            .filter_map(|entry| {
                let lease = entry.secret.lease.as_ref()?;
                Some(SavedSecret {
                    path: entry.secret.path.clone(),
                    data: entry.secret.data.expose_secret().0.clone(),
                    lease_id: lease.id.clone(),
                    renewable: lease.renewable,
                    lease_ttl: entry.lease_ttl,
                })
            })
            .collect();
        SavedState {
            version: SAVED_STATE_VERSION,
            address: self.base.address().to_owned(),
            token: self.token.token.clone(),
            token_ttl: self.token.ttl,
            ours: self.token.ours,
            secrets,
        }
    }

    async fn revoke_all(&mut self) {
        let leases: Vec<String> = self
            .entries
            .values()
            .filter_map(|e| e.secret.lease.as_ref().map(|l| l.id.clone()))
            .chain(self.doomed.drain(..).map(|(_, id)| id))
            .collect();
        for lease_id in leases {
            self.revoke_lease(&lease_id).await;
        }
        for (_, client) in self.doomed_tokens.drain(..) {
            let _ = client.token().revoke_self().await;
        }
        if self.token.ours {
            let _ = self.token.client.token().revoke_self().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_bounds() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        for n in 0..40 {
            let wait = backoff(base, max, n);
            let ceiling = base.saturating_mul(1 << n.min(16)).min(max);
            assert!(wait <= ceiling, "attempt {n}: {wait:?} > {ceiling:?}");
            assert!(wait >= MIN_WAIT, "attempt {n}: {wait:?}");
        }
        // A ceiling under a second is kept.
        let short = backoff(Duration::from_millis(10), Duration::from_millis(50), 3);
        assert!(short <= Duration::from_millis(50));
    }

    #[test]
    fn jitter_spreads_below_its_bound() {
        let max = Duration::from_secs(10);
        let waits: Vec<_> = (0..64).map(|_| jitter(max)).collect();
        assert!(waits.iter().all(|w| *w < max));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 32, "jitter is not random: {waits:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn transient_errors_are_unreachable_overloaded_or_server_side() {
        let api = |status| Error::Api {
            status,
            errors: vec![],
        };
        assert!(is_transient(&api(503)));
        assert!(is_transient(&api(500)));
        assert!(is_transient(&api(429)));
        assert!(!is_transient(&api(403)));
        assert!(!is_transient(&api(404)));
        assert!(!is_transient(&api(400)));
        assert!(!is_transient(&Error::Config("x".into())));
    }

    #[test]
    fn secret_data_is_wiped_and_never_shown() {
        let mut data = SecretData(
            serde_json::from_str(r#"{"password":"hunter2","nested":{"k":["hunter3"]}}"#).unwrap(),
        );
        let shown = format!("{data:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter"),
            "{shown}"
        );
        data.zeroize();
        assert!(data.0.is_empty());

        let secret = Secret {
            path: "secret/app".into(),
            data: SecretBox::new(Box::new(SecretData(
                serde_json::from_str(r#"{"password":"hunter2","port":5432}"#).unwrap(),
            ))),
            version: Some(3),
            lease: None,
            revision: 1,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.field("password").unwrap().expose_secret(), "hunter2");
        assert_eq!(secret.field("port").unwrap().expose_secret(), "5432");
        assert!(secret.field("missing").is_none());
    }

    #[test]
    fn saved_state_and_login_do_not_show_secrets() {
        let state = SavedState {
            version: SAVED_STATE_VERSION,
            address: "https://secretd:8200".into(),
            token: Zeroizing::new("s.hunter2".into()),
            token_ttl: 60,
            ours: true,
            secrets: vec![SavedSecret {
                path: "database/creds/app".into(),
                data: serde_json::from_str(r#"{"password":"hunter3"}"#).unwrap(),
                lease_id: "database/creds/app/x".into(),
                renewable: true,
                lease_ttl: 60,
            }],
        };
        let shown = format!("{state:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("database/creds/app"));
        let login = Login::Token(SecretString::from("s.hunter2"));
        assert!(!format!("{login:?}").contains("hunter"));
    }

    #[test]
    fn leases_are_renewed_at_two_thirds_and_replaced_before_the_grace_runs_out() {
        let grace = Duration::from_secs(30);
        let secs = Duration::from_secs;
        // Got what it asked: renew at two thirds.
        assert_eq!(lease_plan(3600, 3600, true, grace), (secs(2400), false));
        // Capped near the max TTL: replace with a third left.
        assert_eq!(lease_plan(600, 3600, true, grace), (secs(400), true));
        // Little left: the grace (plus 2 s) stays before the end.
        assert_eq!(lease_plan(96, 3600, true, grace), (secs(64), true));
        assert_eq!(lease_plan(60, 3600, true, grace), (secs(28), true));
        // Less left than the grace: a third of the way, never at once.
        assert_eq!(lease_plan(21, 3600, true, grace), (secs(7), true));
        assert_eq!(lease_plan(2, 3600, true, grace), (secs(1), true));
        // Not renewable: replaced like a capped one, and a short one is
        // not replaced over and over.
        assert_eq!(lease_plan(3600, 3600, false, grace), (secs(2400), true));
        assert_eq!(lease_plan(30, 30, false, grace), (secs(10), true));
        assert_eq!(lease_plan(0, 0, false, grace), (secs(1), true));
        // A TTL no clock can hold is capped, not a panic.
        assert!(lease_plan(u64::MAX, u64::MAX, true, grace).0 > secs(3600));
        let _ = expires_at(u64::MAX);
        let _ = two_thirds(Instant::now(), u64::MAX);
    }

    #[test]
    fn a_static_roles_ttl_counting_down_is_no_change() {
        let data = |json: &str| SecretData(serde_json::from_str(json).unwrap());
        let a = data(r#"{"username":"app","password":"p1","ttl":3600}"#);
        assert!(same_values(
            &a,
            &data(r#"{"username":"app","password":"p1","ttl":3599}"#)
        ));
        assert!(same_values(
            &a,
            &data(r#"{"username":"app","password":"p1"}"#)
        ));
        assert!(!same_values(
            &a,
            &data(r#"{"username":"app","password":"p2","ttl":3599}"#)
        ));
        assert!(!same_values(&a, &data(r#"{"username":"app","ttl":3600}"#)));
        assert!(!same_values(
            &a,
            &data(r#"{"username":"app","password":"p1","x":1}"#)
        ));
    }

    #[test]
    fn two_thirds_never_comes_sooner_than_a_second() {
        let now = Instant::now();
        assert_eq!(two_thirds(now, 0), now + MIN_WAIT);
        assert_eq!(two_thirds(now, 30), now + Duration::from_secs(20));
    }
}
