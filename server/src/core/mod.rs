//! The request pipeline: `Request` → token → ACL → mount → backend →
//! `Response`, and the server lifecycle around it (init, unseal, seal,
//! background jobs).
//!
//! `core` owns the order of checks so that every backend gets them without
//! writing them. It knows nothing of HTTP; the `http` layer translates.

mod audit;
mod entries;
mod error;
mod fields;
pub mod leases;
pub mod mounts;
pub mod nodes;
pub mod path;
mod policies;
mod request;
mod schedules;
mod seal;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

pub use self::error::Error;
pub use self::fields::Fields;
pub use self::mounts::MountTable;
pub use self::request::{
    ClientToken, LeaseGrant, LeaseInfo, Login, LoginTerms, Operation, RawBody, Request, Response,
    ResponseStatus, to_object,
};
/// How `sys/unseal` reads a share, for the fuzzers (`fuzz/`).
#[cfg(feature = "testing")]
pub use self::seal::decode_share;
pub use self::seal::{HealthState, SealSettings};
use crate::audit::Event;
use crate::auth::token;
use crate::barrier::{Barrier, Key, SealType};
use crate::engines::{Backend, BackendRequest};
use crate::policy::Capabilities;
use crate::storage::Storage;
use crate::time::now_nanos;

/// How often a node on shared storage reads the change counters, to pick
/// up what other nodes changed (mounts, policies, audit devices, keys).
const CHANGE_POLL: Duration = Duration::from_millis(250);
/// How often every cached table is read again anyway.
const FULL_REFRESH: Duration = Duration::from_secs(60);
/// How often the rewrap job looks for stale data keys without being asked.
const REWRAP_INTERVAL: Duration = Duration::from_secs(30);
/// Data keys rewrapped per transaction.
const REWRAP_BATCH: u32 = 500;
/// How often expired tokens are revoked and revoked ones deleted.
const TOKEN_CLEANUP_INTERVAL: Duration = Duration::from_secs(5);
/// Tokens revoked or deleted per transaction by the cleanup.
const TOKEN_CLEANUP_BATCH: u32 = 1000;

/// A caller [`Core::authenticate`] let in; the only way to call
/// [`Core::handle`]. One per request, moved once: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Caller {
    /// A live token.
    Token(token::TokenEntry),
    /// Anyone, on an auth method's login path.
    Login,
}

/// The server's state, shared by every request.
pub struct Core {
    storage: Storage,
    barrier: Arc<Barrier>,
    mounts: ArcSwap<MountTable>,
    seal_type: SealType,
    /// The static seal's key until it has been used (see `core/seal.rs`).
    static_key: Mutex<Option<Key>>,
    acls: policies::AclCache,
    audit: crate::audit::Broker,
    metrics: crate::metrics::Metrics,
    node: nodes::NodeIdentity,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the ACL let a request do: the backend call, ready to make.
struct Grant<'a> {
    backend: &'a dyn Backend,
    request: BackendRequest<'a>,
    /// Vault's name for the operation (`create` or `update` for a write).
    operation: &'static str,
}

impl Core {
    pub fn new(storage: Storage, seal_settings: SealSettings) -> Arc<Core> {
        let seal_type = seal_settings.seal_type();
        let static_key = match seal_settings {
            SealSettings::Static(key) => Some(key),
            SealSettings::Shamir => None,
        };
        let metrics = crate::metrics::Metrics::new();
        Arc::new(Core {
            barrier: Arc::new(Barrier::new(storage.clone())),
            storage,
            mounts: ArcSwap::from_pointee(MountTable::default()),
            seal_type,
            static_key: Mutex::new(static_key),
            acls: policies::AclCache::default(),
            audit: crate::audit::Broker::new(metrics.audit_failures()),
            metrics,
            node: nodes::NodeIdentity::new(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    /// A shared handle on the barrier, for work that outlives a borrow
    /// (storage seals a KV value inside its write transaction).
    pub fn barrier_handle(&self) -> Arc<Barrier> {
        Arc::clone(&self.barrier)
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The path of the mount a request path goes to (`secret/`), for the
    /// request metrics; `None` if it goes to none.
    pub fn mount_path_of(&self, path: &str) -> Option<String> {
        self.mounts
            .load()
            .route(path)
            .map(|(mount, _)| mount.record.path.clone())
    }

    pub fn mount_table(&self) -> Arc<MountTable> {
        self.mounts.load_full()
    }

    /// Re-reads the mount table from storage.
    pub async fn reload_mounts(&self) -> Result<(), Error> {
        let records = self.storage.mounts().await?;
        self.mounts.store(Arc::new(MountTable::build(records)));
        Ok(())
    }

    /// Checks the seal configuration against storage, unseals a static
    /// seal, and starts the background jobs.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        self.check_seal_config().await?;
        self.auto_unseal().await?;
        let core = Arc::clone(self);
        let rewrap = tokio::spawn(async move { core.run_rewrap().await });
        let core = Arc::clone(self);
        let refresh = tokio::spawn(async move { core.run_change_watch().await });
        let core = Arc::clone(self);
        let cleanup = tokio::spawn(async move { core.run_token_cleanup().await });
        let core = Arc::clone(self);
        let expiry = tokio::spawn(async move { core.run_lease_expiry().await });
        let core = Arc::clone(self);
        let schedules = tokio::spawn(async move { core.run_schedules().await });
        let core = Arc::clone(self);
        let heartbeat = tokio::spawn(async move { core.run_heartbeat().await });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.extend([rewrap, refresh, cleanup, expiry, schedules, heartbeat]);
        }
        Ok(())
    }

    /// Stops the background jobs (a batch in flight rolls back).
    pub fn stop(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// Checks the path and the caller's token, before anything else about
    /// the request (its body above all) is read. A refused token is
    /// audited here, since the request goes no further.
    pub async fn authenticate(
        &self,
        path: &str,
        operation: Operation,
        token: Option<&ClientToken>,
        remote_addr: Option<SocketAddr>,
    ) -> Result<Caller, Error> {
        path::validate(path)?;
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        if self.is_login_path(path) {
            // A token sent along is ignored, as Vault does.
            return Ok(Caller::Login);
        }
        let entry = match token {
            Some(token) => token::lookup(&self.storage, &self.barrier, token).await?,
            None => None,
        };
        match entry {
            Some(entry) => Ok(Caller::Token(entry)),
            None => {
                let err = Error::PermissionDenied;
                let table = self.mount_table();
                let route = table.route(path);
                let id = uuid::Uuid::new_v4().to_string();
                let event = Event {
                    id: &id,
                    operation: operation.as_str(),
                    path,
                    data: None,
                    client_token: token.map(ClientToken::expose),
                    token: None,
                    mount: route.as_ref().map(|(m, _)| &m.record),
                    remote_addr,
                };
                self.audit.log_request(&event, Some(&err)).await?;
                self.audit.log_response(&event, Err(&err)).await?;
                Err(err)
            }
        }
    }

    /// Handles one API request from a caller [`Core::authenticate`] let in:
    /// ACL, audit of the request, the backend, audit of the response.
    pub async fn handle(&self, req: Request, caller: Caller) -> Result<Response, Error> {
        path::validate(&req.path)?;
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let entry = match caller {
            Caller::Token(entry) => entry,
            Caller::Login => return self.login(req).await,
        };
        let table = self.mount_table();
        let route = table.route(&req.path);
        let acl = self.acl_for(&entry.record.policies).await?;
        let grant = match &route {
            Some((mount, rest)) => {
                self.authorize(&req, &entry, &acl, &*mount.backend, &mount.record, rest)
                    .await
            }
            // Only a caller allowed here learns that the path does not exist.
            None => Err(
                match acl
                    .capabilities(&req.path, req.operation == Operation::List)
                    .effective()
                {
                    c if c.is_empty() || c == Capabilities::DENY => Error::PermissionDenied,
                    _ => Error::UnsupportedPath,
                },
            ),
        };
        let mut event = Event {
            id: &req.id,
            operation: req.operation.as_str(),
            path: &req.path,
            data: Some(&req.data),
            client_token: req.token.as_ref().map(ClientToken::expose),
            token: Some(&entry.record),
            mount: route.as_ref().map(|(m, _)| &m.record),
            remote_addr: req.remote_addr,
        };
        if let Ok(grant) = &grant {
            event.operation = grant.operation;
        }
        self.audit.log_request(&event, grant.as_ref().err()).await?;
        let result = match grant {
            Ok(grant) => self.carry_out(&grant, &entry).await,
            Err(err) => Err(err),
        };
        self.audit.log_response(&event, result.as_ref()).await?;
        result
    }

    fn is_login_path(&self, path: &str) -> bool {
        self.mount_table()
            .route(path)
            .is_some_and(|(mount, rest)| mount.backend.is_login_path(rest))
    }

    /// A login: no token and no ACL; the auth method decides, and core
    /// issues the token of a success. Audited like any request.
    async fn login(&self, req: Request) -> Result<Response, Error> {
        let table = self.mount_table();
        let route = table
            .route(&req.path)
            .filter(|(mount, rest)| mount.backend.is_login_path(rest));
        let event = Event {
            id: &req.id,
            operation: req.operation.as_str(),
            path: &req.path,
            data: Some(&req.data),
            client_token: None,
            token: None,
            mount: route.as_ref().map(|(m, _)| &m.record),
            remote_addr: req.remote_addr,
        };
        // The mount went away since `authenticate`: as for no token.
        let refusal = route.is_none().then_some(Error::PermissionDenied);
        self.audit.log_request(&event, refusal.as_ref()).await?;
        let result = match (&route, refusal) {
            (Some((mount, rest)), None) => self.log_in(&req, mount, rest).await,
            (_, err) => Err(err.unwrap_or(Error::PermissionDenied)),
        };
        let method = route
            .as_ref()
            .map_or(crate::metrics::UNKNOWN_ROUTE, |(m, _)| {
                m.record.mount_type.as_str()
            });
        self.metrics.observe_login(method, result.is_ok());
        self.audit.log_response(&event, result.as_ref()).await?;
        result
    }

    async fn log_in(
        &self,
        req: &Request,
        mount: &mounts::Mount,
        rest: &str,
    ) -> Result<Response, Error> {
        let login_request = crate::engines::LoginRequest {
            operation: req.operation,
            path: rest,
            data: &req.data,
            mount: &mount.record,
            request: req,
        };
        let mut response = mount.backend.login(self, &login_request).await?;
        if let Some(login) = response.login.take() {
            let (auth, warnings) =
                crate::auth::method::issue_token(self, &mount.record, &req.path, login).await?;
            response.auth = Some(auth);
            response.warnings.extend(warnings);
        }
        Ok(response)
    }

    /// The ACL's verdict on a request to a backend.
    async fn authorize<'a>(
        &self,
        req: &'a Request,
        entry: &'a token::TokenEntry,
        acl: &'a crate::policy::Acl,
        backend: &'a dyn Backend,
        mount: &'a crate::storage::MountRecord,
        rest: &'a str,
    ) -> Result<Grant<'a>, Error> {
        let request = BackendRequest {
            operation: req.operation,
            path: rest,
            data: &req.data,
            mount,
            token: entry,
            acl,
            request: req,
        };
        let mut operation = req.operation.as_str();
        if !backend.checks_own_access(rest) {
            let capabilities = acl.capabilities(&req.path, req.operation == Operation::List);
            if backend.requires_sudo(rest) && !capabilities.contains(Capabilities::SUDO) {
                return Err(Error::PermissionDenied);
            }
            let needed = match req.operation {
                Operation::Read => Capabilities::READ,
                Operation::List => Capabilities::LIST,
                Operation::Patch => Capabilities::PATCH,
                Operation::Delete => Capabilities::DELETE,
                Operation::Write => {
                    self.create_or_update(capabilities, backend, &request)
                        .await?
                }
            };
            if !capabilities.contains(needed) {
                return Err(Error::PermissionDenied);
            }
            if needed == Capabilities::CREATE {
                operation = "create";
            }
        }
        Ok(Grant {
            backend,
            request,
            operation,
        })
    }

    /// Counts the token's use and calls the backend.
    async fn carry_out(
        &self,
        grant: &Grant<'_>,
        entry: &token::TokenEntry,
    ) -> Result<Response, Error> {
        let last_use = self.count_use(&entry.record).await?;
        let result = match grant.backend.handle(self, &grant.request).await {
            Ok(mut response) => match response.secret.take() {
                Some(secret) => self.lease_answer(grant, entry, response, secret).await,
                None => Ok(response),
            },
            Err(err) => Err(err),
        };
        if last_use {
            // The token's last permitted use: revoke it (and its tree) now.
            if let Err(err) = self.storage.revoke_token(&entry.record.hash, false).await {
                tracing::error!(error = %err, "could not revoke a token after its last use");
            }
        }
        result
    }

    /// Puts the dynamic secret of an answer under a lease of the caller's
    /// token, and says so in the answer.
    async fn lease_answer(
        &self,
        grant: &Grant<'_>,
        entry: &token::TokenEntry,
        mut response: Response,
        secret: request::LeaseGrant,
    ) -> Result<Response, Error> {
        let table = self.mount_table();
        let mount = table
            .by_uuid(&grant.request.mount.uuid)
            .ok_or(Error::UnsupportedPath)?;
        let (lease, warnings) = self
            .grant_lease(&mount, &grant.request.request.path, &entry.record, secret)
            .await?;
        response.lease = Some(lease);
        response.warnings.extend(warnings);
        Ok(response)
    }

    /// A write needs `create` where nothing exists yet and `update` where
    /// something does; the backend says which, when the ACL cares.
    async fn create_or_update(
        &self,
        capabilities: Capabilities,
        backend: &dyn Backend,
        req: &BackendRequest<'_>,
    ) -> Result<Capabilities, Error> {
        let (create, update) = (
            capabilities.contains(Capabilities::CREATE),
            capabilities.contains(Capabilities::UPDATE),
        );
        if create == update {
            // Both or neither: the answer does not depend on existence.
            return Ok(Capabilities::UPDATE);
        }
        Ok(match backend.exists(self, req).await? {
            Some(false) => Capabilities::CREATE,
            Some(true) | None => Capabilities::UPDATE,
        })
    }

    /// Counts a use of a token with a use limit, in the database so that
    /// concurrent requests cannot overspend it. Returns whether this was
    /// its last use; refuses a token with none left.
    async fn count_use(&self, token: &crate::storage::TokenRecord) -> Result<bool, Error> {
        if token.num_uses == 0 {
            return Ok(false);
        }
        match self.storage.use_token(&token.hash).await? {
            None => Err(Error::PermissionDenied),
            Some(left) => Ok(left == 0),
        }
    }

    /// Revokes expired tokens and deletes revoked ones, in batches.
    async fn run_token_cleanup(&self) {
        let mut tick = tokio::time::interval(TOKEN_CLEANUP_INTERVAL);
        loop {
            tick.tick().await;
            if self.barrier.is_sealed() {
                continue;
            }
            if let Err(err) = self.clean_up_tokens().await {
                tracing::warn!(error = %err, "token cleanup failed; will retry");
            }
        }
    }

    pub(crate) async fn clean_up_tokens(&self) -> Result<(), Error> {
        let batch = TOKEN_CLEANUP_BATCH;
        let mut expired = 0;
        loop {
            let n = self
                .storage
                .revoke_expired_tokens(now_nanos(), batch)
                .await?;
            expired += n;
            if n < u64::from(batch) {
                break;
            }
        }
        while self.storage.cascade_revocations(batch).await? > 0 {}
        // A revoked token's leases fall due now; the token is deleted only
        // once they are gone.
        while self
            .storage
            .expire_leases_of_revoked_tokens(now_nanos(), batch)
            .await?
            >= u64::from(batch)
        {}
        let mut deleted = 0;
        loop {
            let n = self.storage.sweep_revoked_tokens(batch).await?;
            deleted += n;
            if n < u64::from(batch) {
                break;
            }
        }
        if expired > 0 || deleted > 0 {
            tracing::debug!(
                tokens.expired = expired,
                tokens.deleted = deleted,
                "token cleanup"
            );
        }
        Ok(())
    }

    /// Keeps this node's caches (mount table, audit devices, compiled
    /// ACLs, keyring) in step with storage. On PostgreSQL it reads the
    /// change counters every [`CHANGE_POLL`] and reloads the topics another
    /// node changed; everywhere, it reloads everything every
    /// [`FULL_REFRESH`] and after each unseal.
    async fn run_change_watch(&self) {
        let mut tick = tokio::time::interval(CHANGE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Versions whose changes are loaded; none: load everything.
        let mut loaded: Option<BTreeMap<String, u64>> = None;
        let mut last_full = std::time::Instant::now();
        let mut failing = false;
        loop {
            tick.tick().await;
            if self.barrier.is_sealed() {
                loaded = None;
                self.unseal_once_initialized().await;
                continue;
            }
            if last_full.elapsed() >= FULL_REFRESH {
                loaded = None;
                last_full = std::time::Instant::now();
            }
            if !self.storage.is_shared() && loaded.is_some() {
                continue;
            }
            let counters: BTreeMap<String, u64> = if self.storage.is_shared() {
                match self.storage.change_counters().await {
                    Ok(counters) => counters.into_iter().collect(),
                    Err(err) => {
                        if !failing {
                            tracing::warn!(error = %err, "cannot read the change counters; will retry");
                        }
                        failing = true;
                        continue;
                    }
                }
            } else {
                BTreeMap::new()
            };
            let mut now_loaded = loaded.clone().unwrap_or_default();
            let mut ok = true;
            for topic in ["mounts", "audit", "policies", "keyring"] {
                let version = counters.get(topic).copied().unwrap_or(0);
                let current = loaded.as_ref().and_then(|l| l.get(topic)) == Some(&version);
                if current {
                    continue;
                }
                match self.reload_topic(topic).await {
                    Ok(()) => {
                        now_loaded.insert(topic.to_owned(), version);
                    }
                    Err(err) => {
                        ok = false;
                        if !failing {
                            tracing::warn!(topic, error = %err, "cannot reload what another node changed; will retry");
                        }
                    }
                }
            }
            failing = !ok;
            loaded = Some(now_loaded);
        }
    }

    /// Reloads one cached topic from storage.
    async fn reload_topic(&self, topic: &str) -> Result<(), Error> {
        match topic {
            "mounts" => self.reload_mounts().await,
            "audit" => self.reload_audit().await,
            "policies" => {
                self.acls.clear();
                Ok(())
            }
            _ => Ok(self.barrier.reload_keyring().await?),
        }
    }

    /// Rewraps data keys to the newest key term whenever a rotation or an
    /// unseal asks for it, and every little while in case another node
    /// rotated.
    async fn run_rewrap(&self) {
        loop {
            let _ = tokio::time::timeout(REWRAP_INTERVAL, self.barrier.rewrap_wanted()).await;
            if self.barrier.is_sealed() {
                continue;
            }
            if let Err(err) = self.barrier.reload_keyring().await {
                tracing::warn!(error = %err, "could not reload the keyring");
                continue;
            }
            match self.barrier.rewrap_pass(REWRAP_BATCH).await {
                Ok(report) if report.rewrapped > 0 || report.unreadable > 0 => tracing::info!(
                    rewrapped = report.rewrapped,
                    unreadable = report.unreadable,
                    "rewrapped data keys to the active key term"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "rewrapping data keys failed; will retry"),
            }
        }
    }
}
