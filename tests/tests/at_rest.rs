//! What an attacker with a copy of the database sees: no plaintext of any
//! stored value or token, and ciphertexts that cannot be moved between rows.

use secretd_tests::{Api, Db, Server, on_both_databases, sqlite_file};
use serde_json::json;
use sqlx::Connection;

on_both_databases!(
    no_plaintext_reaches_the_database,
    moved_ciphertexts_fail_cleanly
);

const ROOT: &str = "hvs.rootCanaryToken4f1d";

async fn no_plaintext_reaches_the_database(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let canaries = [
        format!("value-canary-{tag}"),
        format!("key-canary-{tag}"),
        format!("meta-canary-{tag}"),
        format!("patch-canary-{tag}"),
        ROOT.to_owned(),
    ];
    let (status, _) = api
        .call(
            "POST",
            "secret/data/app/db",
            Some(json!({"data": {canaries[1].clone(): canaries[0].clone()}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            "POST",
            "secret/metadata/app/db",
            Some(json!({"custom_metadata": {"owner": canaries[2].clone()}})),
        )
        .await;
    assert_eq!(status, 204);
    api.call("POST", "sys/rotate", None).await;
    let (status, _) = api
        .call(
            "POST",
            "secret/data/app/db",
            Some(json!({"data": {"other": canaries[3].clone()}})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, read) = api.call("GET", "secret/data/app/db?version=1", None).await;
    assert_eq!(
        read["data"]["data"][&canaries[1]], canaries[0],
        "the value must still be readable"
    );

    let dump = match db {
        Db::Sqlite => sqlite_files(&database.url),
        Db::Postgres => postgres_dump(&database.url).await,
    };
    assert!(dump.len() > 1000, "the dump looks empty");
    for canary in &canaries {
        let hex = canary
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert!(
            !contains(&dump, canary.as_bytes()) && !contains(&dump, hex.as_bytes()),
            "{canary:?} is stored in plaintext"
        );
    }
    drop(server);
    database.remove().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database file and its WAL, byte for byte.
fn sqlite_files(url: &str) -> Vec<u8> {
    let file = sqlite_file(url);
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        if let Ok(bytes) = std::fs::read(&path) {
            all.extend(bytes);
        }
    }
    all
}

/// Every row of every table, as PostgreSQL renders it (bytea as hex).
async fn postgres_dump(url: &str) -> Vec<u8> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut all = Vec::new();
    for (table,) in tables {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM \"{table}\" t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for (row,) in rows {
            all.extend(row.into_bytes());
        }
    }
    all
}

/// Swapping two rows' ciphertexts (with or without their data keys) in the
/// database yields an error, never the other secret. The server is stopped
/// while the rows are tampered with, as an attacker with the disk would.
async fn moved_ciphertexts_fail_cleanly(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seal = secretd_tests::static_seal_config(&dir);
    let server = Server::with_config(&database.url, &seal);
    let root = secretd_tests::initialize_static(&server).await;
    let api = Api::new(&server.url, &root);
    api.call(
        "POST",
        "secret/data/alpha",
        Some(json!({"data": {"v": "alpha-secret"}})),
    )
    .await;
    api.call(
        "POST",
        "secret/data/bravo",
        Some(json!({"data": {"v": "bravo-secret"}})),
    )
    .await;
    assert!(server.stop().success());

    swap_rows(db, &database.url, "ciphertext").await;
    let server = Server::with_config(&database.url, &seal);
    let api = Api::new(&server.url, &root);
    let (status, body) = api.call("GET", "secret/data/alpha", None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body, json!({"errors": ["internal error"]}));
    assert!(!body.to_string().contains("bravo"));
    assert!(
        server.log().contains("failed to decrypt"),
        "the integrity failure is logged"
    );
    assert!(server.stop().success());

    // Moving the data key along with the ciphertext does not help either:
    // the value is bound to its path and version.
    swap_rows(db, &database.url, "dek").await;
    let server = Server::with_config(&database.url, &seal);
    let api = Api::new(&server.url, &root);
    let (status, body) = api.call("GET", "secret/data/alpha", None).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = api.call("GET", "secret/data/bravo", None).await;
    assert_eq!(status, 500, "{body}");
    drop(server);
    database.remove().await;
}

async fn swap_rows(db: Db, url: &str, column: &str) {
    let select = format!("SELECT {column} FROM kv_versions WHERE path = $1");
    let update = format!("UPDATE kv_versions SET {column} = $1 WHERE path = $2");
    macro_rules! swap {
        ($conn:expr) => {{
            let mut conn = $conn;
            let (a,): (Vec<u8>,) = sqlx::query_as(&select)
                .bind("alpha")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let (b,): (Vec<u8>,) = sqlx::query_as(&select)
                .bind("bravo")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_ne!(a, b);
            sqlx::query(&update)
                .bind(&b)
                .bind("alpha")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(&update)
                .bind(&a)
                .bind("bravo")
                .execute(&mut conn)
                .await
                .unwrap();
        }};
    }
    match db {
        Db::Sqlite => swap!(sqlx::SqliteConnection::connect(url).await.unwrap()),
        Db::Postgres => swap!(sqlx::PgConnection::connect(url).await.unwrap()),
    }
}
