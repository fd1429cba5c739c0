//! A service that keeps its database credentials and a KV secret fresh
//! with a [`LeaseKeeper`], and reconnects whenever they change.
//!
//! ```sh
//! secretd server --dev --dev-root-token-id root --dev-listen-address 127.0.0.1:8200 &
//! export SECRETD_ADDR=http://127.0.0.1:8200 SECRETD_TOKEN=root
//! secretctl put secret/app/config greeting=hello
//! # optional, for database/creds/app: see docs/database.md
//! cargo run -p secretd-client --example lease_keeper -- secret/app/config [database/creds/app]
//! ```
//!
//! In a pod, log in with the service account instead of a token:
//! `SECRETD_K8S_ROLE=app` (and the projected token at
//! `/var/run/secrets/secretd/token`). Stop it with Ctrl-C: it revokes its
//! leases on the way out.

use std::time::Duration;

use secretd_client::secrecy::{ExposeSecret, SecretString};
use secretd_client::{Client, KeeperOptions, LeaseKeeper, Login, Snapshot};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        return Err("give the secret paths to keep, e.g. secret/app/config".into());
    }
    let client = Client::builder()
        .address(std::env::var("SECRETD_ADDR").unwrap_or_else(|_| "http://127.0.0.1:8200".into()))
        .build()?;
    let login = match std::env::var("SECRETD_K8S_ROLE") {
        Ok(role) => Login::Kubernetes {
            mount: "kubernetes".into(),
            role,
            jwt_path: "/var/run/secrets/secretd/token".into(),
        },
        Err(_) => Login::Token(SecretString::from(std::env::var("SECRETD_TOKEN")?)),
    };
    let options = KeeperOptions {
        poll_interval: Duration::from_secs(10),
        ..KeeperOptions::default()
    };
    // Logs in and reads every path, retrying while the server is away.
    let keeper = LeaseKeeper::start(client, login, &paths, options).await?;
    let mut updates = keeper.subscribe();
    let mut seen = Snapshot::default().secrets;
    loop {
        let snapshot = updates.borrow_and_update().clone();
        for (path, secret) in &snapshot.secrets {
            let changed = seen
                .get(path)
                .is_none_or(|old| old.revision != secret.revision);
            if changed {
                // A real service would reconnect here with the new values;
                // we show only the keys, never a value.
                let keys: Vec<&String> = secret.data.expose_secret().0.keys().collect();
                let lease = secret.lease.as_ref().map(|l| l.id.as_str()).unwrap_or("-");
                println!(
                    "{path}: revision {} keys {keys:?} lease {lease}",
                    secret.revision
                );
            }
        }
        seen = snapshot.secrets.clone();
        tokio::select! {
            changed = updates.changed() => changed?,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    keeper.stop(true).await;
    println!("leases revoked; bye");
    Ok(())
}
