//! The database secrets engine (`type = "database"`), for PostgreSQL:
//! connections (`config/:name`) with root credentials kept sealed and
//! never returned, dynamic roles (`roles/:name`) whose `creds/:role`
//! create a PostgreSQL user that lives exactly as long as its lease, and
//! `rotate-root/:name` so that only secretd knows the root password.
//!
//! Every record is a sealed mount entry (`core/entries.rs`); a lease keeps
//! the user's name and role, sealed, for its renewal and revocation.

mod credentials;
mod postgres;
#[cfg(any(test, feature = "testing"))]
pub mod private_pg;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use zeroize::Zeroizing;

use self::credentials::{
    Values, check_username, expiration, generate_password, generate_username, statements,
};
use crate::core::leases::lease_ttl;
use crate::core::{Core, Error, Fields, LeaseGrant, Operation, Response};
use crate::engines::{Backend, BackendRequest, LeaseRequest, LeaseTerms};
use crate::storage::{MountRecord, UnixNanos};
use crate::time::{self as clock, now_nanos};

/// The only plugin secretd has.
const PLUGIN: &str = "postgresql-database-plugin";
const DEFAULT_RENEW: &str = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';";
const DEFAULT_ROTATE_ROOT: &str = "ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';";

/// `config/:name`: how to reach one database as its root user.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Connection {
    plugin_name: String,
    connection_url: String,
    username: String,
    password: Zeroizing<String>,
    allowed_roles: Vec<String>,
    verify_connection: bool,
    root_rotation_statements: Vec<String>,
    /// Which pool of sessions this connection uses (its mount and name).
    #[serde(skip)]
    pool_key: String,
}

impl Connection {
    fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// A session from this connection's pool.
    async fn connect(&self) -> Result<PoolConnection<Postgres>, Error> {
        postgres::connect(
            &self.pool_key,
            &self.connection_url,
            &self.username,
            &self.password,
        )
        .await
    }
}

/// `roles/:name`: a dynamic role.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Role {
    db_name: String,
    default_ttl: u64,
    max_ttl: u64,
    creation_statements: Vec<String>,
    revocation_statements: Vec<String>,
    rollback_statements: Vec<String>,
    renew_statements: Vec<String>,
    max_leases: u64,
}

/// `static-roles/:name`: an existing user whose password secretd rotates
/// every `rotation_period` and on demand.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct StaticRole {
    db_name: String,
    username: String,
    rotation_period: u64,
    rotation_statements: Vec<String>,
    password: Zeroizing<String>,
    last_rotation: UnixNanos,
}

/// Vault's floor on `rotation_period`.
const MIN_ROTATION_PERIOD: u64 = 5;
const DEFAULT_ROTATE_STATIC: &str = "ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';";

fn static_path(name: &str) -> String {
    format!("static-roles/{name}")
}

/// The scheduled job that rotates a static role.
fn rotation_job(name: &str) -> String {
    format!("static-role/{name}")
}

/// What a lease keeps, sealed, to renew and revoke its user.
#[derive(Serialize, Deserialize)]
struct LeaseInternal {
    db_name: String,
    role: String,
    username: String,
}

fn config_path(name: &str) -> String {
    format!("config/{name}")
}

fn role_path(name: &str) -> String {
    format!("roles/{name}")
}

/// A name in a path: one segment, not empty.
fn name_of(rest: &str) -> Result<&str, Error> {
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::UnsupportedPath);
    }
    Ok(rest)
}

pub struct DatabaseBackend;

#[async_trait]
impl Backend for DatabaseBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let (kind, rest) = req.path.split_once('/').unwrap_or((req.path, ""));
        match (kind, rest, req.operation) {
            ("config" | "roles" | "static-roles", "", List) => {
                list(core, req.mount, &format!("{kind}/")).await
            }
            ("static-roles", name, Write) => write_static_role(core, req, name_of(name)?).await,
            ("static-roles", name, Read) => read_static_role(core, req.mount, name_of(name)?).await,
            ("static-roles", name, Delete) => {
                let name = name_of(name)?;
                core.delete_entry(req.mount, &static_path(name)).await?;
                core.storage()
                    .unschedule(&req.mount.uuid, &rotation_job(name))
                    .await?;
                Ok(Response::empty())
            }
            ("static-creds", name, Read) => static_creds(core, req.mount, name_of(name)?).await,
            ("rotate-role", name, Write) => {
                let name = name_of(name)?;
                let _: StaticRole = core
                    .read_entry(req.mount, &static_path(name))
                    .await?
                    .ok_or_else(|| Error::invalid(format!("unknown static role: {name}")))?;
                core.run_job_now(&req.mount.uuid, &rotation_job(name))
                    .await?;
                Ok(Response::empty())
            }
            ("config", name, Write) => write_config(core, req, name_of(name)?).await,
            ("config", name, Read) => read_config(core, req.mount, name_of(name)?).await,
            ("config", name, Delete) => {
                core.delete_entry(req.mount, &config_path(name_of(name)?))
                    .await?;
                Ok(Response::empty())
            }
            ("reset", name, Write) => {
                connection(core, req.mount, name_of(name)?).await?;
                Ok(Response::empty())
            }
            ("rotate-root", name, Write) => rotate_root(core, req.mount, name_of(name)?).await,
            ("roles", name, Write) => write_role(core, req, name_of(name)?).await,
            ("roles", name, Read) => read_role(core, req.mount, name_of(name)?).await,
            ("roles", name, Delete) => {
                core.delete_entry(req.mount, &role_path(name_of(name)?))
                    .await?;
                Ok(Response::empty())
            }
            ("creds", name, Read) => creds(core, req, name_of(name)?).await,
            (
                "config" | "roles" | "reset" | "rotate-root" | "creds" | "static-roles"
                | "static-creds" | "rotate-role",
                _,
                _,
            ) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }

    async fn exists(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        let (kind, name) = req.path.split_once('/').unwrap_or((req.path, ""));
        if !matches!(kind, "config" | "roles" | "static-roles") || name.is_empty() {
            return Ok(None);
        }
        let found: Option<serde_json::Value> = core.read_entry(req.mount, req.path).await?;
        Ok(Some(found.is_some()))
    }

    async fn run_scheduled(
        &self,
        core: &Core,
        mount: &MountRecord,
        job: &str,
    ) -> Result<Option<UnixNanos>, Error> {
        let Some(name) = job.strip_prefix("static-role/") else {
            return Err(Error::invalid(format!("no scheduled job named {job}")));
        };
        rotate_static(core, mount, name).await
    }

    async fn lease_terms(&self, core: &Core, req: &LeaseRequest<'_>) -> Result<LeaseTerms, Error> {
        let internal = lease_internal(req.internal)?;
        let role: Role = core
            .read_entry(req.mount, &role_path(&internal.role))
            .await?
            .ok_or_else(|| {
                Error::invalid(format!(
                    "role {:?} no longer exists; its leases cannot be renewed",
                    internal.role
                ))
            })?;
        Ok(LeaseTerms {
            ttl: role.default_ttl,
            max_ttl: role.max_ttl,
        })
    }

    async fn renew_secret(
        &self,
        core: &Core,
        req: &LeaseRequest<'_>,
        expire_at: UnixNanos,
    ) -> Result<(), Error> {
        let internal = lease_internal(req.internal)?;
        let db = connection(core, req.mount, &internal.db_name).await?;
        let role: Option<Role> = core
            .read_entry(req.mount, &role_path(&internal.role))
            .await?;
        let renew = role
            .map(|r| r.renew_statements)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec![DEFAULT_RENEW.to_owned()]);
        let until = expiration(expire_at);
        let mut conn = db.connect().await?;
        postgres::run(
            &mut conn,
            &renew,
            &Values {
                name: &internal.username,
                expiration: &until,
                ..Values::default()
            },
        )
        .await
    }

    async fn revoke_secret(&self, core: &Core, req: &LeaseRequest<'_>) -> Result<(), Error> {
        let internal = lease_internal(req.internal)?;
        let db = connection(core, req.mount, &internal.db_name).await?;
        let role: Option<Role> = core
            .read_entry(req.mount, &role_path(&internal.role))
            .await?;
        let mut conn = db.connect().await?;
        match role
            .map(|r| r.revocation_statements)
            .filter(|s| !s.is_empty())
        {
            // The operator's statements run as written, as Vault's; they
            // must take a second run calmly (`DROP ROLE IF EXISTS`), since
            // after a crash a lease may be revoked twice.
            Some(statements) => {
                postgres::run(
                    &mut conn,
                    &statements,
                    &Values {
                        name: &internal.username,
                        ..Values::default()
                    },
                )
                .await
            }
            None => postgres::drop_user(&mut conn, &internal.username).await,
        }
    }
}

fn lease_internal(bytes: &[u8]) -> Result<LeaseInternal, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(anyhow::anyhow!("a database lease's record: {e}")))
}

async fn connection(core: &Core, mount: &MountRecord, name: &str) -> Result<Connection, Error> {
    let mut db: Connection = core
        .read_entry(mount, &config_path(name))
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "no database connection named {name:?} (config/{name})"
            ))
        })?;
    db.pool_key = pool_key(mount, name);
    Ok(db)
}

fn pool_key(mount: &MountRecord, name: &str) -> String {
    format!("{}/{name}", mount.uuid)
}

async fn list(core: &Core, mount: &MountRecord, prefix: &str) -> Result<Response, Error> {
    let keys = core.list_entries(mount, prefix).await?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

async fn write_config(
    core: &Core,
    req: &BackendRequest<'_>,
    name: &str,
) -> Result<Response, Error> {
    let path = config_path(name);
    let existing: Option<Connection> = core.read_entry(req.mount, &path).await?;
    let creating = existing.is_none();
    let mut db = existing.unwrap_or(Connection {
        verify_connection: true,
        ..Connection::default()
    });
    let mut fields = Fields::new(req.data);
    if let Some(plugin) = fields.string("plugin_name")? {
        db.plugin_name = plugin;
    }
    if db.plugin_name != PLUGIN {
        return Err(Error::invalid(format!(
            "plugin_name must be {PLUGIN:?}: secretd manages PostgreSQL only"
        )));
    }
    if let Some(url) = fields.string("connection_url")? {
        postgres::check_url(&url)?;
        db.connection_url = url;
    }
    if db.connection_url.is_empty() {
        return Err(Error::invalid("connection_url is required"));
    }
    if let Some(username) = fields.string("username")? {
        check_username(&username)?;
        db.username = username;
    }
    if let Some(password) = fields.string("password")? {
        db.password = Zeroizing::new(password);
    }
    if let Some(roles) = fields.string_list("allowed_roles")? {
        db.allowed_roles = roles;
    }
    if let Some(verify) = fields.bool("verify_connection")? {
        db.verify_connection = verify;
    }
    if let Some(list) = statements(&mut fields, "root_rotation_statements")? {
        db.root_rotation_statements = list;
    }
    for unsupported in ["password_policy", "username_template"] {
        if fields.string(unsupported)?.is_some_and(|v| !v.is_empty()) {
            return Err(Error::invalid(format!(
                "{unsupported} is not supported by secretd yet"
            )));
        }
    }
    if fields.bool("disable_escaping")? == Some(true) {
        return Err(Error::invalid(
            "disable_escaping is not supported by secretd",
        ));
    }
    // Pool settings of Vault's plugin: secretd connects per operation.
    let _ = fields.u64("max_open_connections")?;
    let _ = fields.u64("max_idle_connections")?;
    let _ = fields.duration("max_connection_lifetime")?;
    let _ = fields.string("password_authentication")?;
    let _ = fields.string("plugin_version")?;
    fields.refuse_unrecognized()?;
    db.pool_key = pool_key(req.mount, name);
    if db.verify_connection {
        let mut conn = postgres::connect_once(&db.connection_url, &db.username, &db.password)
            .await
            .map_err(|e| Error::invalid(format!("could not verify the connection: {e}")))?;
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| Error::invalid(format!("could not verify the connection: {e}")))?;
        let _ = sqlx::Connection::close(conn).await;
    }
    core.write_entry(req.mount, &path, &db).await?;
    tracing::info!(mount = %req.mount.path, connection = name, created = creating, "wrote a database connection");
    Ok(Response::empty())
}

async fn read_config(core: &Core, mount: &MountRecord, name: &str) -> Result<Response, Error> {
    let db: Connection = core
        .read_entry(mount, &config_path(name))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "plugin_name": db.plugin_name,
        "plugin_version": "",
        "connection_details": {
            "connection_url": db.connection_url,
            "username": db.username,
        },
        "allowed_roles": db.allowed_roles,
        "password_policy": "",
        "root_credentials_rotate_statements": db.root_rotation_statements,
        "verify_connection": db.verify_connection,
    })))
}

/// `rotate-root/:name`: a new root password that only secretd knows. It
/// is stored before the database is told, so a crash between the two
/// leaves the new one on record (the next rotation, by the old one that
/// still works, sets it again) rather than a password nobody knows.
async fn rotate_root(core: &Core, mount: &MountRecord, name: &str) -> Result<Response, Error> {
    let path = config_path(name);
    let mut db = connection(core, mount, name).await?;
    if db.username.is_empty() {
        return Err(Error::invalid(
            "the connection has no username to rotate the password of",
        ));
    }
    let mut conn = db.connect().await?;
    let password = generate_password()?;
    let statements = if db.root_rotation_statements.is_empty() {
        vec![DEFAULT_ROTATE_ROOT.to_owned()]
    } else {
        db.root_rotation_statements.clone()
    };
    postgres::run(
        &mut conn,
        &statements,
        &Values {
            name: &db.username,
            password: &password,
            ..Values::default()
        },
    )
    .await?;
    db.password = password;
    core.write_entry(mount, &path, &db).await?;
    tracing::info!(mount = %mount.path, connection = name, "rotated a database root password");
    Ok(Response::empty())
}

async fn write_role(core: &Core, req: &BackendRequest<'_>, name: &str) -> Result<Response, Error> {
    let path = role_path(name);
    let mut role: Role = core.read_entry(req.mount, &path).await?.unwrap_or_default();
    let mut fields = Fields::new(req.data);
    if let Some(db) = fields.string("db_name")? {
        role.db_name = db;
    }
    if role.db_name.is_empty() {
        return Err(Error::invalid("db_name is required"));
    }
    if let Some(ttl) = fields.duration("default_ttl")? {
        role.default_ttl = ttl;
    }
    if let Some(ttl) = fields.duration("max_ttl")? {
        role.max_ttl = ttl;
    }
    if role.max_ttl > 0 && role.default_ttl > role.max_ttl {
        return Err(Error::invalid("default_ttl cannot be greater than max_ttl"));
    }
    for (field, list) in [
        ("creation_statements", &mut role.creation_statements),
        ("revocation_statements", &mut role.revocation_statements),
        ("rollback_statements", &mut role.rollback_statements),
        ("renew_statements", &mut role.renew_statements),
    ] {
        if let Some(given) = statements(&mut fields, field)? {
            *list = given;
        }
    }
    if role.creation_statements.is_empty() {
        return Err(Error::invalid("creation_statements are required"));
    }
    if let Some(max) = fields.u64("max_leases")? {
        role.max_leases = max;
    }
    match fields.string("credential_type")?.as_deref() {
        None | Some("" | "password") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "credential_type {other:?} is not supported; use \"password\""
            )));
        }
    }
    let _ = fields.object("credential_config")?;
    fields.refuse_unrecognized()?;
    core.write_entry(req.mount, &path, &role).await?;
    Ok(Response::empty())
}

async fn read_role(core: &Core, mount: &MountRecord, name: &str) -> Result<Response, Error> {
    let role: Role = core
        .read_entry(mount, &role_path(name))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "db_name": role.db_name,
        "default_ttl": role.default_ttl,
        "max_ttl": role.max_ttl,
        "creation_statements": role.creation_statements,
        "revocation_statements": role.revocation_statements,
        "rollback_statements": role.rollback_statements,
        "renew_statements": role.renew_statements,
        "credential_type": "password",
        "credential_config": {},
        "max_leases": role.max_leases,
    })))
}

/// `creds/:role`: a new user, valid until its lease ends.
async fn creds(core: &Core, req: &BackendRequest<'_>, name: &str) -> Result<Response, Error> {
    let role: Role = core
        .read_entry(req.mount, &role_path(name))
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown role: {name}")))?;
    let db = connection(core, req.mount, &role.db_name).await?;
    if !db.allows(name) {
        return Err(Error::invalid(format!(
            "{name:?} is not an allowed role of connection {:?}",
            role.db_name
        )));
    }
    // Cheap early refusal; the exact count is taken with the lease.
    if role.max_leases > 0
        && core
            .storage()
            .role_lease_count(&req.mount.uuid, name)
            .await?
            >= role.max_leases
    {
        return Err(Error::TooManyRequests(format!(
            "role {name:?} holds {} leases, its max_leases; revoke some or wait for them to expire",
            role.max_leases
        )));
    }
    let now = now_nanos();
    let ttl = lease_ttl(req.mount, role.default_ttl, role.max_ttl, now)?;
    let until = expiration(clock::add_seconds(now, ttl.seconds));
    let username = generate_username(&req.token.record.display_name, name, now)?;
    let password = generate_password()?;
    let values = Values {
        name: &username,
        password: &password,
        expiration: &until,
    };
    let internal = serde_json::to_vec(&LeaseInternal {
        db_name: role.db_name.clone(),
        role: name.to_owned(),
        username: username.clone(),
    })
    .map_err(Error::internal)?;
    let mut grant = LeaseGrant {
        role: name.to_owned(),
        ttl: role.default_ttl,
        max_ttl: role.max_ttl,
        renewable: true,
        max_leases: role.max_leases,
        internal: Zeroizing::new(internal),
        reserved: None,
    };
    // The lease is stored before the user is made: if this node dies in
    // between, the lease still revokes the user.
    let reserved = core.reserve_lease(req, &grant).await?;
    let mut conn = match db.connect().await {
        Ok(conn) => conn,
        Err(err) => {
            // Nothing was made.
            core.release_lease(reserved).await;
            return Err(err);
        }
    };
    if let Err(err) = postgres::run(&mut conn, &role.creation_statements, &values).await {
        if !role.rollback_statements.is_empty()
            && let Err(rollback) =
                postgres::run(&mut conn, &role.rollback_statements, &values).await
        {
            tracing::warn!(role = name, error = %rollback, "the rollback statements failed too");
        }
        // The reservation stays: a timeout may have cut off a COMMIT that
        // still lands, and statements outside the transaction are undone
        // only by rollback statements that may have failed. When the
        // reservation ends the lease's revocation drops whatever exists
        // (the default checks pg_roles; custom statements use IF EXISTS).
        return Err(err);
    }
    grant.reserved = Some(reserved);
    let mut response = Response::data(json!({
        "username": username,
        "password": password.as_str(),
    }));
    response.secret = Some(grant);
    Ok(response)
}

async fn write_static_role(
    core: &Core,
    req: &BackendRequest<'_>,
    name: &str,
) -> Result<Response, Error> {
    let path = static_path(name);
    let existing: Option<StaticRole> = core.read_entry(req.mount, &path).await?;
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_default();
    let old_period = role.rotation_period;
    let mut fields = Fields::new(req.data);
    if let Some(db) = fields.string("db_name")? {
        role.db_name = db;
    }
    if let Some(username) = fields.string("username")? {
        if !creating && username != role.username {
            return Err(Error::invalid(
                "username of a static role cannot be changed",
            ));
        }
        check_username(&username)?;
        role.username = username;
    }
    if let Some(period) = fields.duration("rotation_period")? {
        role.rotation_period = period;
    }
    if let Some(list) = statements(&mut fields, "rotation_statements")? {
        role.rotation_statements = list;
    }
    for unsupported in ["rotation_schedule", "rotation_window"] {
        if fields.string(unsupported)?.is_some_and(|v| !v.is_empty()) {
            return Err(Error::invalid(format!(
                "{unsupported} is not supported by secretd yet; use rotation_period"
            )));
        }
    }
    let _ = fields.string("credential_type")?;
    fields.refuse_unrecognized()?;
    if role.db_name.is_empty() || role.username.is_empty() {
        return Err(Error::invalid("db_name and username are required"));
    }
    if role.rotation_period < MIN_ROTATION_PERIOD {
        return Err(Error::invalid(format!(
            "rotation_period must be at least {MIN_ROTATION_PERIOD} seconds"
        )));
    }
    let db = connection(core, req.mount, &role.db_name).await?;
    if !db.allows(name) {
        return Err(Error::invalid(format!(
            "{name:?} is not an allowed role of connection {:?}",
            role.db_name
        )));
    }
    let job = rotation_job(name);
    core.write_entry(req.mount, &path, &role).await?;
    if creating {
        // The password is rotated at once: from now on only secretd knows it.
        core.storage()
            .schedule(&req.mount.uuid, &job, now_nanos())
            .await?;
        if let Err(err) = core.run_job_now(&req.mount.uuid, &job).await {
            core.delete_entry(req.mount, &path).await?;
            core.storage().unschedule(&req.mount.uuid, &job).await?;
            return Err(err);
        }
    } else if role.rotation_period != old_period {
        core.storage()
            .schedule(
                &req.mount.uuid,
                &job,
                clock::add_seconds(role.last_rotation, role.rotation_period),
            )
            .await?;
    }
    Ok(Response::empty())
}

/// Seconds until a static role's next rotation.
fn next_rotation_in(role: &StaticRole) -> u64 {
    clock::seconds_between(
        now_nanos(),
        clock::add_seconds(role.last_rotation, role.rotation_period),
    )
}

async fn read_static_role(core: &Core, mount: &MountRecord, name: &str) -> Result<Response, Error> {
    let role: StaticRole = core
        .read_entry(mount, &static_path(name))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "db_name": role.db_name,
        "username": role.username,
        "rotation_period": role.rotation_period,
        "rotation_statements": role.rotation_statements,
        "last_vault_rotation": crate::time::rfc3339(role.last_rotation),
        "ttl": next_rotation_in(&role),
        "credential_type": "password",
    })))
}

/// `static-creds/:name`: the current password, no lease.
async fn static_creds(core: &Core, mount: &MountRecord, name: &str) -> Result<Response, Error> {
    let role: StaticRole = core
        .read_entry(mount, &static_path(name))
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown static role: {name}")))?;
    Ok(Response::data(json!({
        "username": role.username,
        "password": role.password.as_str(),
        "last_vault_rotation": crate::time::rfc3339(role.last_rotation),
        "rotation_period": role.rotation_period,
        "ttl": next_rotation_in(&role),
    })))
}

/// Sets a new password for a static role's user and records it; answers
/// when the next rotation is due (`None`: the role is gone). A crash
/// between the database's change and the record leaves the old password
/// on record until the retry (at the claim's deadline) sets yet another.
async fn rotate_static(
    core: &Core,
    mount: &MountRecord,
    name: &str,
) -> Result<Option<UnixNanos>, Error> {
    let path = static_path(name);
    let Some(mut role) = core.read_entry::<StaticRole>(mount, &path).await? else {
        return Ok(None);
    };
    let db = connection(core, mount, &role.db_name).await?;
    let password = generate_password()?;
    let statements = if role.rotation_statements.is_empty() {
        vec![DEFAULT_ROTATE_STATIC.to_owned()]
    } else {
        role.rotation_statements.clone()
    };
    let mut conn = db.connect().await?;
    postgres::run(
        &mut conn,
        &statements,
        &Values {
            name: &role.username,
            password: &password,
            ..Values::default()
        },
    )
    .await?;
    let now = now_nanos();
    role.password = password;
    role.last_rotation = now;
    core.write_entry(mount, &path, &role).await?;
    tracing::info!(mount = %mount.path, role = name, "rotated a static role's password");
    Ok(Some(clock::add_seconds(now, role.rotation_period)))
}
