//! A Vault client we did not write, `vaultrs`, drives secretd unchanged:
//! init, unseal, health, mounts and the whole KV v2 API.

use std::collections::HashMap;

use secretd_tests::{Db, Server, install_crypto_provider, on_both_databases};
use serde_json::{Value, json};
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::sys::ServerStatus;
use vaultrs::{kv2, sys};

on_both_databases!(vaultrs_runs_the_lifecycle_and_kv_v2);

fn client(url: &str, token: &str) -> VaultClient {
    install_crypto_provider();
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(url)
            .token(token)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn status_of(err: &ClientError) -> Option<u16> {
    match err {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

async fn vaultrs_runs_the_lifecycle_and_kv_v2(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::with_config(&database.url, "");
    let anonymous = client(&server.url, "");
    assert!(matches!(
        sys::status(&anonymous).await.unwrap(),
        ServerStatus::UNINITIALIZED
    ));

    let init = sys::start_initialization(&anonymous, 3, 2, None)
        .await
        .unwrap();
    assert!(matches!(
        sys::status(&anonymous).await.unwrap(),
        ServerStatus::SEALED
    ));
    let first = sys::unseal(&anonymous, Some(init.keys[0].clone()), None, None)
        .await
        .unwrap();
    assert!(first.sealed);
    assert_eq!((first.threshold, first.n_shares, first.progress), (2, 3, 1));
    let second = sys::unseal(&anonymous, Some(init.keys_base64[2].clone()), None, None)
        .await
        .unwrap();
    assert!(!second.sealed);
    assert!(matches!(
        sys::status(&anonymous).await.unwrap(),
        ServerStatus::OK
    ));
    let health = sys::health(&anonymous).await.unwrap();
    assert!(health.initialized && !health.sealed && !health.standby);

    let vault = client(&server.url, &init.root_token);
    sys::mount::enable(&vault, "secret", "kv-v2", None)
        .await
        .unwrap();
    let mounts = sys::mount::list(&vault).await.unwrap();
    assert_eq!(mounts["secret/"].mount_type, "kv");

    let mut data = HashMap::new();
    data.insert("password", "hunter2");
    let written = kv2::set(&vault, "secret", "app/db", &data).await.unwrap();
    assert_eq!(written.version, 1);
    let read: HashMap<String, String> = kv2::read(&vault, "secret", "app/db").await.unwrap();
    assert_eq!(read["password"], "hunter2");

    data.insert("password", "rotated");
    let cas = kv2::set_with_options(
        &vault,
        "secret",
        "app/db",
        &data,
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .unwrap();
    assert_eq!(cas.version, 2);
    let stale = kv2::set_with_options(
        &vault,
        "secret",
        "app/db",
        &data,
        SetSecretRequestOptions { cas: 1 },
    )
    .await;
    assert_eq!(stale.as_ref().err().and_then(status_of), Some(400));
    let v1: HashMap<String, String> = kv2::read_version(&vault, "secret", "app/db", 1)
        .await
        .unwrap();
    assert_eq!(v1["password"], "hunter2");

    kv2::set(&vault, "secret", "app/web", &json!({"tls": {"cert": "c"}}))
        .await
        .unwrap();
    assert_eq!(
        kv2::list(&vault, "secret", "app").await.unwrap(),
        vec!["db", "web"]
    );
    assert_eq!(kv2::list(&vault, "secret", "").await.unwrap(), vec!["app/"]);

    let mut custom = HashMap::new();
    custom.insert("owner".to_owned(), "team-a".to_owned());
    kv2::set_metadata(
        &vault,
        "secret",
        "app/db",
        Some(
            SetSecretMetadataRequest::builder()
                .max_versions(5u64)
                .custom_metadata(custom),
        ),
    )
    .await
    .unwrap();
    let meta = kv2::read_metadata(&vault, "secret", "app/db")
        .await
        .unwrap();
    assert_eq!(
        (meta.current_version, meta.oldest_version, meta.max_versions),
        (2, 1, 5)
    );
    assert_eq!(meta.custom_metadata.unwrap()["owner"], "team-a");
    assert_eq!(meta.versions.len(), 2);

    kv2::delete_latest(&vault, "secret", "app/db")
        .await
        .unwrap();
    // Vault answers a deleted version with 404 and the envelope (not an
    // error body), which vaultrs reports as a plain 404 response.
    let deleted = kv2::read::<Value>(&vault, "secret", "app/db").await;
    assert_eq!(deleted.as_ref().err().and_then(status_of), Some(404));
    kv2::undelete_versions(&vault, "secret", "app/db", vec![2])
        .await
        .unwrap();
    let back: HashMap<String, String> = kv2::read(&vault, "secret", "app/db").await.unwrap();
    assert_eq!(back["password"], "rotated");
    kv2::delete_versions(&vault, "secret", "app/db", vec![1])
        .await
        .unwrap();
    kv2::destroy_versions(&vault, "secret", "app/db", vec![1])
        .await
        .unwrap();
    let meta = kv2::read_metadata(&vault, "secret", "app/db")
        .await
        .unwrap();
    assert!(meta.versions["1"].destroyed);
    kv2::delete_metadata(&vault, "secret", "app/db")
        .await
        .unwrap();
    let gone = kv2::read_metadata(&vault, "secret", "app/db").await;
    assert_eq!(gone.as_ref().err().and_then(status_of), Some(404));

    sys::seal(&vault).await.unwrap();
    assert!(matches!(
        sys::status(&anonymous).await.unwrap(),
        ServerStatus::SEALED
    ));
    drop(server);
    database.remove().await;
}
