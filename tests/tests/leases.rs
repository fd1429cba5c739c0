//! Leases with real server processes on one PostgreSQL: two nodes share
//! the expiry of thousands of short leases on database credentials, and
//! when one is killed with SIGKILL mid-way the other takes its claims
//! over: every lease is revoked, and revoked once, except the few the
//! killed node was revoking at that moment (at least once: revocations
//! must take a second run calmly).
//!
//! The "database" here is a table: the role's statements record each
//! credential issued and each revocation, so the test can count them.
//! The same goes for a static role's rotations on two nodes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secretd_tests::{
    Api, Server, TestDatabase, count, counting_engine, counting_target, initialize_static,
    secretctl, static_seal_config,
};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// Leases to create; the issue asks for ten thousand.
const LEASES: usize = 10_000;
/// At most this many leases can be in a killed node's hands (its claim).
const IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_revoke_every_lease_once_even_when_one_is_killed() {
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let (target, mut db, target_name) = counting_target().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let a = Server::with_config(&storage.url, &seal);
    let root = initialize_static(&a).await;
    let api_a = Api::new(&a.url, &root);
    counting_engine(&api_a, &target_name, "short", "3s", "").await;
    let b = Server::with_config(&storage.url, &seal);
    let api_b = Api::new(&b.url, &root);

    // Credentials from both nodes, 32 requests at a time.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let api = if worker % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..LEASES / 32 + 1 {
                let (status, body) = api.call("GET", "db/creds/short", None).await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let issued = count(&mut db, "SELECT count(*) FROM issued").await as usize;
    assert!(issued >= LEASES);
    eprintln!("{issued} leases issued in {:?}", started.elapsed());

    // Once the revocations are well under way, node B dies mid-stride.
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&mut db, "SELECT count(*) FROM revoked").await < (issued / 4) as i64 {
        assert!(Instant::now() < deadline, "revocation never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill();

    // Node A finishes, taking B's claims over when they run out.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut storage_conn = PgConnection::connect(&storage.url).await.unwrap();
    loop {
        let left = count(&mut storage_conn, "SELECT count(*) FROM leases").await;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} leases never revoked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("all revoked {:?} after the start", started.elapsed());

    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, count(*) FROM revoked GROUP BY name")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let revoked: HashMap<String, i64> = rows.into_iter().collect();
    let issued_names: Vec<(String,)> = sqlx::query_as("SELECT name FROM issued")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for (name,) in &issued_names {
        assert!(revoked.contains_key(name), "{name} was never revoked");
    }
    let twice = revoked.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= IN_FLIGHT && revoked.values().all(|&n| n <= 2),
        "{twice} leases revoked more than once"
    );
    assert_eq!(revoked.len(), issued_names.len());

    drop(a);
    drop(db);
    drop(storage_conn);
    storage.remove().await;
    target.remove().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_over_a_hundred_thousand_leases_serves_at_once_and_still_revokes() {
    const STORED: i64 = 100_000;
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let (target, mut db, target_name) = counting_target().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let server = Server::with_config(&storage.url, &seal);
    let root = initialize_static(&server).await;
    let api = Api::new(&server.url, &root);
    counting_engine(&api, &target_name, "r", "20s", "").await;
    let (status, body) = api.call("GET", "db/creds/r", None).await;
    assert_eq!(status, 200, "{body}");
    let lease = body["lease_id"].as_str().unwrap().to_owned();

    // A hundred thousand more leases, due in an hour, written straight
    // into the table (copies of the real one's row).
    let mut storage_conn = PgConnection::connect(&storage.url).await.unwrap();
    sqlx::query(
        "INSERT INTO leases (id, mount_uuid, role, token_hash, issued_at, expire_at, \
         last_renewal, renewable, dek, secret, due_at, attempts, irrevocable, last_error) \
         SELECT 'db/creds/r/bulk' || g, mount_uuid, role, token_hash, issued_at, \
         expire_at + 3600000000000, NULL, renewable, dek, secret, due_at + 3600000000000, 0, \
         FALSE, NULL FROM leases, generate_series(1, $2) AS g WHERE id = $1",
    )
    .bind(&lease)
    .bind(STORED)
    .execute(&mut storage_conn)
    .await
    .unwrap();
    assert_eq!(
        count(&mut storage_conn, "SELECT count(*) FROM leases").await,
        STORED + 1
    );

    // Restart: serving and unsealed as soon as it listens.
    server.stop();
    let started = Instant::now();
    let server = Server::with_config(&storage.url, &seal);
    let (status, health) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    let ready = started.elapsed();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["sealed"], false);
    eprintln!("restart over {STORED} leases: unsealed and healthy after {ready:?}");

    // The real lease is still revoked when it falls due.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&mut db, "SELECT count(*) FROM revoked").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the lease was not revoked after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = Api::new(&server.url, &root)
        .call("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})))
        .await;
    assert_eq!(status, 400, "the revoked lease is gone");

    server.stop();
    drop(db);
    drop(storage_conn);
    storage.remove().await;
    target.remove().await;
}

/// A static role on two nodes: set up with `secretctl write`, read with
/// `secretctl read`, and rotated once per period although both nodes'
/// workers look for due rotations every second.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_rotate_a_static_role_once_per_period() {
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let target = TestDatabase::postgres().await.unwrap();
    let mut db = PgConnection::connect(&target.url).await.unwrap();
    let user = format!("static_app_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE TABLE rotations (at timestamptz); CREATE ROLE {user} LOGIN PASSWORD 'dba'"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    let target_name = target.url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let a = Server::with_config(&storage.url, &seal);
    let root = initialize_static(&a).await;

    let cli = |url: &str, args: &[&str]| {
        let out = secretctl(url, &root, args);
        assert!(
            out.status.success(),
            "secretctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&a.url, &["secrets", "enable", "--path", "db", "database"]);
    // (A node learns of a mount made on another within 5 s for now; this
    // one starts after it.)
    let b = Server::with_config(&storage.url, &seal);
    let url = format!(
        "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{target_name}"
    );
    cli(
        &a.url,
        &[
            "write",
            "db/config/pg",
            "plugin_name=postgresql-database-plugin",
            &url,
            "username=postgres",
            "password=unused-locally",
            "allowed_roles=app",
        ],
    );
    let rotate = "rotation_statements=INSERT INTO rotations VALUES (now()); \
         ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';";
    let started = Instant::now();
    cli(
        &b.url,
        &[
            "write",
            "db/static-roles/app",
            "db_name=pg",
            &format!("username={user}"),
            "rotation_period=5s",
            rotate,
        ],
    );
    // Both nodes see the role; let their workers race for 12 seconds.
    let first = cli(
        &a.url,
        &["read", "db/static-creds/app", "--field", "password"],
    );
    assert_eq!(
        first,
        cli(
            &b.url,
            &["read", "db/static-creds/app", "--field", "password"]
        )
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    let elapsed = started.elapsed().as_secs() as i64;
    let rotations = count(&mut db, "SELECT count(*) FROM rotations").await;
    // The creation's rotation, then one per 5 s period: at most one each.
    assert!(
        (2..=elapsed / 5 + 2).contains(&rotations),
        "{rotations} rotations in {elapsed} s with a period of 5 s"
    );
    let now = cli(
        &b.url,
        &["read", "db/static-creds/app", "--field", "password"],
    );
    assert_ne!(first, now, "the password was not rotated on schedule");

    drop(a);
    drop(b);
    sqlx::raw_sql(&format!("DROP TABLE rotations; DROP ROLE {user}"))
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    storage.remove().await;
    target.remove().await;
}
