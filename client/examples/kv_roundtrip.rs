//! Walks the KV v2 and sys API of a running server, printing what it sees.
//!
//! ```sh
//! secretd server --dev --dev-root-token-id root --dev-listen-address 127.0.0.1:8200 &
//! SECRETD_ADDR=http://127.0.0.1:8200 SECRETD_TOKEN=root \
//!     cargo run -p secretd-client --example kv_roundtrip
//! ```
//!
//! It writes under `secret/example/` and deletes what it wrote at the end.

use secretd_client::wire::{KvConfigWrite, KvMetadataWrite};
use secretd_client::{Client, Error};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Db {
    user: String,
    port: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let client = Client::from_env()?;
    println!("client: {client:?}");

    let sys = client.sys();
    let health = sys.health().await?;
    println!(
        "health: initialized={} sealed={} version={}",
        health.initialized, health.sealed, health.version
    );
    let me = client.token().lookup_self().await?;
    println!("token: policies={:?} ttl={}", me.policies, me.ttl);

    let kv = client.kv2("secret");
    let path = "example/db";
    let v1 = kv
        .put_cas(path, json!({"user": "app", "port": "5432"}), 0)
        .await?;
    println!("put (cas 0): version {}", v1.version);
    match kv.put_cas(path, json!({"user": "x"}), 0).await {
        Err(err) => println!("put (cas 0 again): {err}"),
        Ok(_) => println!("put (cas 0 again): unexpectedly accepted"),
    }
    let v2 = kv.patch(path, json!({"port": "6432"})).await?;
    println!("patch: version {}", v2.version);
    let db: Option<Db> = kv
        .get(path)
        .await?
        .data_as()
        .map_err(|error| Error::Decode {
            path: path.into(),
            error,
        })?;
    match db {
        Some(db) => println!("get: user={} port={}", db.user, db.port),
        None => println!("get: the latest version is deleted"),
    }
    println!("list example/: {:?}", kv.list("example").await?);
    println!("list nothing/: {:?}", kv.list("nothing").await?);

    kv.delete(path).await?;
    let deleted = kv.get(path).await?;
    println!(
        "after delete: deleted={} version={} deletion_time={}",
        deleted.is_deleted(),
        deleted.metadata.version,
        deleted.metadata.deletion_time
    );
    kv.undelete(path, &[v2.version]).await?;
    println!(
        "after undelete: data present={}",
        kv.get(path).await?.data.is_some()
    );
    kv.destroy(path, &[v1.version]).await?;
    let destroyed = kv.get_version(path, v1.version).await?;
    println!(
        "version 1 after destroy: destroyed={}",
        destroyed.is_destroyed()
    );
    match kv.get_version(path, 99).await {
        Err(err) if err.is_not_found() => println!("version 99: not found ({err})"),
        other => println!("version 99: unexpected {other:?}"),
    }

    let meta = KvMetadataWrite {
        max_versions: Some(4),
        custom_metadata: Some([("owner".to_owned(), "example".to_owned())].into()),
        ..KvMetadataWrite::default()
    };
    kv.put_metadata(path, &meta).await?;
    let m = kv.metadata(path).await?;
    println!(
        "metadata: current={} max_versions={} custom={:?} versions={:?}",
        m.current_version,
        m.max_versions,
        m.custom_metadata,
        m.versions.keys().collect::<Vec<_>>()
    );
    let config = kv.read_config().await?;
    println!("config: {config:?}");
    kv.write_config(&KvConfigWrite {
        max_versions: Some(config.max_versions),
        ..KvConfigWrite::default()
    })
    .await?;

    kv.delete_metadata(path).await?;
    match kv.get(path).await {
        Err(err) if err.is_not_found() => println!("after delete_metadata: not found"),
        other => println!("after delete_metadata: unexpected {other:?}"),
    }

    let keys = sys.key_status().await?;
    println!(
        "key status: term={} rewrap_pending={}",
        keys.term, keys.rewrap_pending
    );
    let mounts = sys.mounts().await?;
    println!("mounts: {:?}", mounts.keys().collect::<Vec<_>>());
    println!("leader: {:?}", sys.leader().await?);
    Ok(())
}
