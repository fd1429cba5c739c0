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

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
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
}

impl Connection {
    fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    async fn connect(&self) -> Result<sqlx::PgConnection, Error> {
        postgres::connect(&self.connection_url, &self.username, &self.password).await
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
            ("config" | "roles", "", List) => list(core, req.mount, &format!("{kind}/")).await,
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
            ("config" | "roles" | "reset" | "rotate-root" | "creds", _, _) => {
                Err(Error::UnsupportedOperation)
            }
            _ => Err(Error::UnsupportedPath),
        }
    }

    async fn exists(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        let (kind, name) = req.path.split_once('/').unwrap_or((req.path, ""));
        if !matches!(kind, "config" | "roles") || name.is_empty() {
            return Ok(None);
        }
        let found: Option<serde_json::Value> = core.read_entry(req.mount, req.path).await?;
        Ok(Some(found.is_some()))
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
            Some(statements) => {
                // A second call after a crash: the user is already gone.
                if !postgres::role_exists(&mut conn, &internal.username).await? {
                    return Ok(());
                }
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
    core.read_entry(mount, &config_path(name))
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "no database connection named {name:?} (config/{name})"
            ))
        })
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
    if db.verify_connection {
        let mut conn = db
            .connect()
            .await
            .map_err(|e| Error::invalid(format!("could not verify the connection: {e}")))?;
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| Error::invalid(format!("could not verify the connection: {e}")))?;
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
    let mut conn = db.connect().await?;
    if let Err(err) = postgres::run(&mut conn, &role.creation_statements, &values).await {
        if !role.rollback_statements.is_empty()
            && let Err(rollback) =
                postgres::run(&mut conn, &role.rollback_statements, &values).await
        {
            tracing::warn!(role = name, error = %rollback, "the rollback statements failed too");
        }
        return Err(err);
    }
    let internal = serde_json::to_vec(&LeaseInternal {
        db_name: role.db_name.clone(),
        role: name.to_owned(),
        username: username.clone(),
    })
    .map_err(Error::internal)?;
    let mut response = Response::data(json!({
        "username": username,
        "password": password.as_str(),
    }));
    response.secret = Some(LeaseGrant {
        role: name.to_owned(),
        ttl: role.default_ttl,
        max_ttl: role.max_ttl,
        renewable: true,
        max_leases: role.max_leases,
        internal: Zeroizing::new(internal),
    });
    Ok(response)
}
