//! Talking to a PostgreSQL server a database mount manages: connecting
//! with the configured root credentials, running templated statements in
//! a transaction, and the default revocation.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, Postgres};

use super::credentials::{Values, render};
use crate::core::Error;

/// How long connecting, or one block of statements, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The connection URL with the credentials filled in (URL-encoded).
fn url(template: &str, username: &str, password: &str) -> String {
    template
        .replace(
            "{{username}}",
            &utf8_percent_encode(username, NON_ALPHANUMERIC).to_string(),
        )
        .replace(
            "{{password}}",
            &utf8_percent_encode(password, NON_ALPHANUMERIC).to_string(),
        )
}

/// Checks a connection URL's form without connecting; the error never
/// repeats the URL (it may hold a password).
pub fn check_url(template: &str) -> Result<(), Error> {
    let refused = || {
        Error::invalid(
            "connection_url is not a PostgreSQL URL (postgresql://{{username}}:{{password}}@host:5432/db)",
        )
    };
    if !(template.starts_with("postgresql://") || template.starts_with("postgres://")) {
        return Err(refused());
    }
    PgConnectOptions::from_str(&url(template, "u", "p"))
        .map(|_| ())
        .map_err(|_| refused())
}

/// Connections kept per database connection config, so a request does
/// not pay for a new PostgreSQL session. Keyed by what the connection is
/// (mount, name) and checked against a digest of how to make it (URL and
/// credentials), so a changed config or a rotated root password gets a
/// new pool (sessions of the old one end as they idle out).
static POOLS: LazyLock<Mutex<HashMap<String, KeptPool>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A pool and the digest of the URL and credentials it was made with.
type KeptPool = (Vec<u8>, PgPool);
/// Sessions per pool, and how long an unused one stays open.
const POOL_SIZE: u32 = 4;
const POOL_IDLE: Duration = Duration::from_secs(60);
/// How long a request waits for a session (the pool retries connecting
/// meanwhile): a database that is down fails requests quickly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A session as `username` from the pool of connection `key`.
pub async fn connect(
    key: &str,
    template: &str,
    username: &str,
    password: &str,
) -> Result<PoolConnection<Postgres>, Error> {
    let digest = {
        let mut hasher = Sha256::new();
        for part in [template, username, password] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().to_vec()
    };
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        match pools.get(key) {
            Some((known, pool)) if *known == digest => pool.clone(),
            _ => {
                let options = PgConnectOptions::from_str(&url(template, username, password))
                    .map_err(|_| Error::invalid("connection_url is not a PostgreSQL URL"))?
                    .application_name("secretd");
                let pool = PgPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(POOL_IDLE)
                    .connect_lazy_with(options);
                pools.insert(key.to_owned(), (digest, pool.clone()));
                pool
            }
        }
    };
    pool.acquire()
        .await
        .map_err(|err| Error::Upstream(format!("cannot connect to the database: {err}")))
}

/// A new session, outside any pool: to check a configuration, whose
/// errors should come at once and say what failed.
pub async fn connect_once(
    template: &str,
    username: &str,
    password: &str,
) -> Result<PgConnection, Error> {
    let options = PgConnectOptions::from_str(&url(template, username, password))
        .map_err(|_| Error::invalid("connection_url is not a PostgreSQL URL"))?
        .application_name("secretd");
    match tokio::time::timeout(TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => Err(Error::Upstream(format!(
            "cannot connect to the database: {err}"
        ))),
        Err(_) => Err(Error::Upstream(format!(
            "cannot connect to the database within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// Runs statement blocks, templated with `values`, in one transaction.
pub async fn run(
    conn: &mut PgConnection,
    statements: &[String],
    values: &Values<'_>,
) -> Result<(), Error> {
    let work = async {
        let mut tx = conn.begin().await?;
        for statement in statements {
            let sql = render(statement, values);
            tx.execute(sqlx::raw_sql(&sql)).await?;
        }
        tx.commit().await
    };
    match tokio::time::timeout(TIMEOUT, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Error::Upstream(format!(
            "the database refused a statement: {}",
            describe(&err)
        ))),
        Err(_) => Err(Error::Upstream(format!(
            "the statements did not finish within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// A database error without the statement (which may hold a password).
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// `"name"`, with quotes inside doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a role of this name exists.
pub async fn role_exists(conn: &mut PgConnection, name: &str) -> Result<bool, Error> {
    let found: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| Error::Upstream(describe(&e)))?;
    Ok(found.is_some())
}

/// The default revocation of a dynamic user: no new logins; the root
/// user made a member of it, which lets a `CREATEROLE` root (not only a
/// superuser) end its sessions and take over what it owns; its sessions
/// ended; what it owns handed to the root user and its privileges
/// dropped; then the role itself. A role that is already gone is not an
/// error (a second revocation after a crash).
pub async fn drop_user(conn: &mut PgConnection, name: &str) -> Result<(), Error> {
    if !role_exists(conn, name).await? {
        return Ok(());
    }
    let ident = quote_ident(name);
    let work = async {
        conn.execute(sqlx::raw_sql(&format!(
            "ALTER ROLE {ident} NOLOGIN; GRANT {ident} TO CURRENT_USER"
        )))
        .await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut *conn)
        .await?;
        let mut tx = conn.begin().await?;
        tx.execute(sqlx::raw_sql(&format!(
            "REASSIGN OWNED BY {ident} TO CURRENT_USER; DROP OWNED BY {ident}; DROP ROLE {ident}"
        )))
        .await?;
        tx.commit().await
    };
    match tokio::time::timeout(TIMEOUT, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Error::Upstream(format!(
            "could not drop role {name}: {}",
            describe(&err)
        ))),
        Err(_) => Err(Error::Upstream(format!(
            "dropping role {name} did not finish within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_url_encoded_into_the_url() {
        assert_eq!(
            url(
                "postgresql://{{username}}:{{password}}@db/app",
                "a b",
                "p@ss/w:rd"
            ),
            "postgresql://a%20b:p%40ss%2Fw%3Ard@db/app"
        );
        assert!(check_url("postgresql://{{username}}:{{password}}@db:5432/app").is_ok());
        let err = check_url("mysql://root:hunter2@db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("v-a"), "\"v-a\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
