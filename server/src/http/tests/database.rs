//! The database engine against the real PostgreSQL: connections with
//! sealed root credentials, dynamic users that can do exactly what their
//! role grants and stop existing (sessions and all) when their lease ends,
//! renewal moving `VALID UNTIL`, root rotation.
//!
//! The machine's PostgreSQL trusts local connections, so most of these
//! tests show that a revoked user cannot connect by the role being gone;
//! the last one runs a private cluster that checks passwords.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use super::{App, errors};
use crate::storage::testing::TestDatabase;

/// A target database with a table `items` owned by a fresh `CREATEROLE`
/// (not superuser) root user, as an operator would set up.
struct Target {
    db: TestDatabase,
    admin: PgConnection,
    root_user: String,
    name: String,
    /// Other users the test made, dropped by `remove`.
    users: Vec<String>,
}

impl Target {
    async fn new() -> Option<Target> {
        let db = TestDatabase::postgres().await?;
        let mut admin = PgConnection::connect(&db.url).await.unwrap();
        let root_user = format!("secretd_root_{}", uuid::Uuid::new_v4().simple());
        for sql in [
            format!("CREATE ROLE {root_user} LOGIN CREATEROLE PASSWORD 'initial-root-pw'"),
            format!("GRANT ALL ON SCHEMA public TO {root_user}"),
            "CREATE TABLE items (id int)".to_owned(),
            "INSERT INTO items VALUES (1), (2)".to_owned(),
            format!("ALTER TABLE items OWNER TO {root_user}"),
        ] {
            sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
        }
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        Some(Target {
            db,
            admin,
            root_user,
            name,
            users: Vec::new(),
        })
    }

    fn connection_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{}",
            self.name
        )
    }

    async fn role_exists(&mut self, user: &str) -> bool {
        sqlx::query("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(user)
            .fetch_optional(&mut self.admin)
            .await
            .unwrap()
            .is_some()
    }

    /// Seconds from now until the user's `VALID UNTIL`.
    async fn valid_for(&mut self, user: &str) -> i64 {
        let (secs,): (f64,) = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM rolvaliduntil - now())::float8 FROM pg_roles WHERE rolname = $1",
        )
        .bind(user)
        .fetch_one(&mut self.admin)
        .await
        .unwrap();
        secs.round() as i64
    }

    /// The stored hash of the root user's password.
    async fn password_hash(&mut self) -> Option<String> {
        let user = self.root_user.clone();
        self.hash_of(&user).await
    }

    /// The stored hash of a user's password.
    async fn hash_of(&mut self, user: &str) -> Option<String> {
        let (hash,): (Option<String>,) =
            sqlx::query_as("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(user)
                .fetch_one(&mut self.admin)
                .await
                .unwrap();
        hash
    }

    /// A connection as `user` (trusted locally, whatever the password).
    async fn connect_as(&self, user: &str) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect(&format!("postgres://{user}@127.0.0.1:5432/{}", self.name)).await
    }

    async fn remove(mut self) {
        // Users this test made (roles are cluster-wide: never match other
        // tests' users by name), then the database, then root.
        let mut left: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT grantee::text FROM information_schema.role_table_grants \
             WHERE table_name = 'items' AND grantee::text <> $1",
        )
        .bind(&self.root_user)
        .fetch_all(&mut self.admin)
        .await
        .unwrap_or_default();
        left.extend(self.users.drain(..).map(|u| (u,)));
        for (user,) in left {
            let _ = sqlx::raw_sql(&format!("DROP OWNED BY \"{user}\"; DROP ROLE \"{user}\""))
                .execute(&mut self.admin)
                .await;
        }
        let _ = sqlx::raw_sql(&format!("DROP OWNED BY {}", self.root_user))
            .execute(&mut self.admin)
            .await;
        let _ = self.admin.close().await;
        let root_user = self.root_user.clone();
        let admin_url = std::env::var("SECRETD_TEST_POSTGRES_URL").unwrap();
        self.db.remove().await;
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {root_user}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
const GRANT: &str = "GRANT SELECT ON items TO \"{{name}}\";";

async fn setup(app: &App, target: &Target) {
    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/db",
            Some(json!({"type": "database"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .root(
            "POST",
            "/v1/db/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": target.connection_url(),
                "username": target.root_user,
                "password": "initial-root-pw",
                "allowed_roles": "ro,short,app",
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    for (role, ttl) in [("ro", "1h"), ("short", "1s"), ("rw", "1h")] {
        let r = app
            .root(
                "POST",
                &format!("/v1/db/roles/{role}"),
                Some(json!({
                    "db_name": "pg",
                    "creation_statements": [CREATE, GRANT],
                    "default_ttl": ttl,
                    "max_ttl": "2h",
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }
}

#[tokio::test]
async fn dynamic_users_live_exactly_as_long_as_their_lease() {
    let Some(mut target) = Target::new().await else {
        return;
    };
    let app = App::dev().await;
    setup(&app, &target).await;

    // The root password is never shown.
    let r = app.root("GET", "/v1/db/config/pg", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["data"]["connection_details"]["username"],
        target.root_user.as_str()
    );
    assert!(!String::from_utf8_lossy(&r.raw).contains("initial-root-pw"));
    let r = app.root("GET", "/v1/db/roles/ro", None).await;
    assert_eq!(
        (&r.body["data"]["default_ttl"], &r.body["data"]["max_ttl"]),
        (&json!(3600), &json!(7200))
    );

    let r = app.root("GET", "/v1/db/creds/ro", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let user = r.body["data"]["username"].as_str().unwrap().to_owned();
    let lease = r.body["lease_id"].as_str().unwrap().to_owned();
    assert!(user.starts_with("v-root-ro-"), "{user}");
    assert!(lease.starts_with("db/creds/ro/"), "{lease}");
    assert_eq!(r.body["lease_duration"], 3600);
    assert!((3500..=3600).contains(&target.valid_for(&user).await));

    // It can do what its role grants, and nothing else.
    let mut session = target.connect_as(&user).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM items")
        .fetch_one(&mut session)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let insert = sqlx::query("INSERT INTO items VALUES (3)")
        .execute(&mut session)
        .await;
    assert!(insert.is_err(), "the read-only user wrote");

    // Renewal moves VALID UNTIL.
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/renew",
            Some(json!({"lease_id": lease, "increment": 1800})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!((1700..=1800).contains(&target.valid_for(&user).await));

    // Revocation ends its open session and removes it.
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!target.role_exists(&user).await);
    let after = sqlx::query("SELECT count(*) FROM items")
        .execute(&mut session)
        .await;
    assert!(after.is_err(), "a session of the revoked user went on");
    assert!(
        target.connect_as(&user).await.is_err(),
        "the revoked user connected"
    );

    // A role the connection does not allow gets nothing.
    let r = app.root("GET", "/v1/db/creds/rw", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        errors(&r)[0].contains("not an allowed role"),
        "{:?}",
        errors(&r)
    );

    // Expiry: the worker drops a user whose lease ran out.
    let r = app.root("GET", "/v1/db/creds/short", None).await;
    let short = r.body["data"]["username"].as_str().unwrap().to_owned();
    assert!(target.role_exists(&short).await);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.core.expire_due_leases().await.unwrap(), 1);
    assert!(!target.role_exists(&short).await);

    // Creation statements that fail: an error, and the lease stored ahead
    // of the user stays until its reservation ends (a timed-out COMMIT
    // could still land); revoking it finds no user and succeeds.
    let r = app
        .root(
            "POST",
            "/v1/db/roles/app",
            Some(json!({"db_name": "pg", "creation_statements": ["SELECT no_such_function()"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.root("GET", "/v1/db/creds/app", None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(r.body["data"].is_null(), "{:?}", r.body);
    let listed = async |app: &App| {
        app.root("LIST", "/v1/sys/leases/lookup/db/creds/app/", None)
            .await
            .body["data"]["keys"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(listed(&app).await, 1);
    assert_eq!(
        app.core.expire_due_leases().await.unwrap(),
        0,
        "not due yet"
    );
    let r = app
        .root("PUT", "/v1/sys/leases/revoke-prefix/db/creds/app", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(listed(&app).await, 0);

    drop(session);
    drop(app);
    target.remove().await;
}

#[tokio::test]
async fn rotating_the_root_password_leaves_only_secretd_knowing_it() {
    let Some(mut target) = Target::new().await else {
        return;
    };
    let app = App::dev().await;
    setup(&app, &target).await;
    let before = target.password_hash().await;
    let r = app.root("POST", "/v1/db/rotate-root/pg", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let after = target.password_hash().await;
    assert_ne!(before, after, "the root password did not change");
    // secretd goes on working with the password only it knows.
    let r = app.root("GET", "/v1/db/creds/ro", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease = r.body["lease_id"].as_str().unwrap().to_owned();
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    // Bad configurations are refused with the reason.
    let r = app
        .root(
            "POST",
            "/v1/db/config/other",
            Some(json!({"plugin_name": "mysql-database-plugin"})),
        )
        .await;
    assert!(
        errors(&r)[0].contains("PostgreSQL only"),
        "{:?}",
        errors(&r)
    );
    let r = app
        .root(
            "POST",
            "/v1/db/config/other",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "username": "u", "password": "p",
            })),
        )
        .await;
    assert!(
        errors(&r)[0].contains("could not verify the connection"),
        "{:?}",
        errors(&r)
    );
    drop(app);
    target.remove().await;
}

#[tokio::test]
async fn a_static_role_is_rotated_at_once_on_demand_and_on_schedule() {
    let Some(mut target) = Target::new().await else {
        return;
    };
    let app = App::dev().await;
    setup(&app, &target).await;
    let user = format!("static_app_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'known-to-the-dba'"
    ))
    .execute(&mut target.admin)
    .await
    .unwrap();
    target.users.push(user.clone());
    let initial = target.hash_of(&user).await;

    let r = app
        .root(
            "POST",
            "/v1/db/static-roles/app",
            Some(json!({"db_name": "pg", "username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let first = target.hash_of(&user).await;
    assert_ne!(
        first, initial,
        "creating the role did not rotate the password"
    );

    let r = app.root("GET", "/v1/db/static-creds/app", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let data = &r.body["data"];
    assert_eq!(data["username"], user.as_str());
    assert_eq!(data["rotation_period"], 3600);
    assert!((3590..=3600).contains(&data["ttl"].as_u64().unwrap()));
    assert!(data["last_vault_rotation"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.body["lease_id"], "", "static credentials have no lease");
    let password = data["password"].as_str().unwrap().to_owned();
    let r = app.root("GET", "/v1/db/static-roles/app", None).await;
    assert!(r.body["data"].get("password").is_none());

    // On demand.
    let r = app.root("POST", "/v1/db/rotate-role/app", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_ne!(target.hash_of(&user).await, first);
    let r = app.root("GET", "/v1/db/static-creds/app", None).await;
    assert_ne!(r.body["data"]["password"].as_str().unwrap(), password);

    // On schedule: a shorter period moves the next rotation.
    let r = app
        .root(
            "POST",
            "/v1/db/static-roles/app",
            Some(json!({"rotation_period": "5s"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let mount = app.core.secret_mount("db").unwrap().uuid;
    let job = app
        .core
        .storage()
        .scheduled(&mount, "static-role/app")
        .await
        .unwrap()
        .unwrap();
    let r = app.root("GET", "/v1/db/static-roles/app", None).await;
    assert!(r.body["data"]["ttl"].as_u64().unwrap() <= 5);
    let before = target.hash_of(&user).await;
    tokio::time::sleep(std::time::Duration::from_nanos(
        (job.due_at - crate::time::now_nanos()).max(0) as u64 + 50_000_000,
    ))
    .await;
    assert_eq!(app.core.run_due_jobs().await.unwrap(), 1);
    assert_ne!(target.hash_of(&user).await, before, "not rotated when due");

    // Bad input, and deleting the role leaves the user alone.
    let r = app
        .root(
            "POST",
            "/v1/db/static-roles/other",
            Some(json!({"db_name": "pg", "username": user, "rotation_period": 1})),
        )
        .await;
    assert!(
        errors(&r)[0].contains("at least 5 seconds"),
        "{:?}",
        errors(&r)
    );
    let r = app
        .root(
            "POST",
            "/v1/db/static-roles/app",
            Some(json!({"username": "someone_else"})),
        )
        .await;
    assert!(
        errors(&r)[0].contains("cannot be changed"),
        "{:?}",
        errors(&r)
    );
    let r = app.root("DELETE", "/v1/db/static-roles/app", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(target.role_exists(&user).await);
    assert!(
        app.core
            .storage()
            .scheduled(&mount, "static-role/app")
            .await
            .unwrap()
            .is_none()
    );

    drop(app);
    target.remove().await;
}

/// On a cluster that checks passwords: a dynamic user's password works
/// until its lease is revoked, then nothing does; a static role's old
/// password stops working when it is rotated.
#[tokio::test]
async fn passwords_stop_working_when_revoked_or_rotated() {
    use crate::engines::database::private_pg::{PrivatePostgres, SUPERUSER_PASSWORD};
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let app = App::dev().await;
    let connect = |user: &str, password: &str| {
        let url = pg.url(user, password);
        async move { PgConnection::connect(&url).await }
    };
    let mut admin = connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    sqlx::raw_sql("CREATE ROLE app_static LOGIN PASSWORD 'dba-knows-this'")
        .execute(&mut admin)
        .await
        .unwrap();
    for (path, body) in [
        ("/v1/sys/mounts/db", json!({"type": "database"})),
        (
            "/v1/db/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres", pg.port
                ),
                "username": "postgres", "password": SUPERUSER_PASSWORD, "allowed_roles": "*",
            }),
        ),
        (
            "/v1/db/roles/ro",
            json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h"}),
        ),
        (
            "/v1/db/static-roles/app",
            json!({"db_name": "pg", "username": "app_static", "rotation_period": "1h"}),
        ),
    ] {
        let r = app.root("POST", path, Some(body)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}: {:?}", r.body);
    }

    // A dynamic user: its password works, a wrong one does not; after
    // revocation, nothing does.
    let r = app.root("GET", "/v1/db/creds/ro", None).await;
    let user = r.body["data"]["username"].as_str().unwrap().to_owned();
    let password = r.body["data"]["password"].as_str().unwrap().to_owned();
    let lease = r.body["lease_id"].as_str().unwrap().to_owned();
    assert!(connect(&user, &password).await.is_ok());
    assert!(connect(&user, "not-the-password").await.is_err());
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(
        connect(&user, &password).await.is_err(),
        "a revoked password worked"
    );

    // A static role: the DBA's password stopped working at creation, and
    // each rotation retires the one before.
    assert!(connect("app_static", "dba-knows-this").await.is_err());
    let r = app.root("GET", "/v1/db/static-creds/app", None).await;
    let first = r.body["data"]["password"].as_str().unwrap().to_owned();
    assert!(connect("app_static", &first).await.is_ok());
    let r = app.root("POST", "/v1/db/rotate-role/app", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.root("GET", "/v1/db/static-creds/app", None).await;
    let second = r.body["data"]["password"].as_str().unwrap().to_owned();
    assert!(
        connect("app_static", &first).await.is_err(),
        "the old password still worked"
    );
    assert!(connect("app_static", &second).await.is_ok());

    // Root rotation: the configured password stops working too.
    let r = app.root("POST", "/v1/db/rotate-root/pg", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(connect("postgres", SUPERUSER_PASSWORD).await.is_err());
    let r = app.root("GET", "/v1/db/creds/ro", None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "secretd still connects: {:?}",
        r.body
    );
}
