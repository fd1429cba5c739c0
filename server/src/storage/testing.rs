//! Throw-away databases for tests: a SQLite file in a temporary directory,
//! or a fresh PostgreSQL database created on the server named by
//! `SECRETD_TEST_POSTGRES_URL` and dropped afterwards.
//!
//! PostgreSQL tests skip when the variable is unset, unless
//! `SECRETD_REQUIRE_SERVICES` is set (as CI does): then a missing server
//! fails the test instead of letting it pass unseen.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::{Storage, StorageOptions};

/// The variable naming the PostgreSQL server tests may use (an admin URL).
pub const POSTGRES_URL_VAR: &str = "SECRETD_TEST_POSTGRES_URL";
/// Set in CI: tests that need a service fail rather than skip without it.
pub const REQUIRE_SERVICES_VAR: &str = "SECRETD_REQUIRE_SERVICES";

/// A database that exists for one test.
pub struct TestDatabase {
    /// The URL a server or `Storage::connect` uses.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
    Done,
}

impl TestDatabase {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("secretd-test-")
            .tempdir()
            .expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("secretd.db").display());
        TestDatabase {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new empty PostgreSQL database, or `None` when no server is
    /// configured and services are not required.
    pub async fn postgres() -> Option<TestDatabase> {
        let admin_url = match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var_os(REQUIRE_SERVICES_VAR).is_none(),
                    "{REQUIRE_SERVICES_VAR} is set but {POSTGRES_URL_VAR} is not: \
                     the PostgreSQL tests cannot run"
                );
                eprintln!("skipping: {POSTGRES_URL_VAR} is not set");
                return None;
            }
        };
        let name = format!("secretd_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(TestDatabase {
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Opens storage on this database.
    pub async fn open(&self) -> Storage {
        Storage::connect(&self.url, &StorageOptions::default())
            .await
            .expect("opening the test database")
    }

    /// Drops a PostgreSQL database (SQLite files go with their directory).
    pub async fn remove(mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            drop_postgres(admin_url, name).await;
        }
        self.cleanup = Cleanup::Done;
    }
}

impl Drop for TestDatabase {
    /// A test that panicked never reached `remove`: drop its database here,
    /// on a thread of its own (we may be inside an async runtime).
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_postgres(&admin_url, &name));
                }
            })
            .join();
        }
    }
}

async fn drop_postgres(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
}

/// `admin_url` with its database name replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
