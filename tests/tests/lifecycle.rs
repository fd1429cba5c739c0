//! The first thing a user does, with the real binaries on both databases:
//! `secretctl operator init` → unseal → `secrets enable` → `put` → restart
//! → sealed → unseal → `get`; and the same through the client library.

use secretd_client::Client;
use secretd_tests::{Db, Server, on_both_databases, secretctl, secretctl_with_stdin};
use serde_json::{Value, json};

on_both_databases!(
    init_unseal_put_restart_unseal_get,
    client_library_round_trip
);

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn expect_ok(output: &std::process::Output) -> String {
    secretd_tests::ok(output)
}

async fn init_unseal_put_restart_unseal_get(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::with_config(&database.url, "");

    let status = secretctl(&server.url, "", &["status"]);
    assert_eq!(status.status.code(), Some(2), "status exits 2 while sealed");
    let init: Value = serde_json::from_str(&expect_ok(&secretctl(
        &server.url,
        "",
        &[
            "operator",
            "init",
            "--key-shares",
            "3",
            "--key-threshold",
            "2",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let keys: Vec<String> = serde_json::from_value(init["keys"].clone()).unwrap();
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert_eq!(keys.len(), 3);

    // Sealed: KV answers 503, which secretctl reports as a remote error.
    let sealed_put = secretctl(&server.url, &root, &["put", "secret/app/db", "password=x"]);
    assert_eq!(sealed_put.status.code(), Some(2));
    expect_ok(&secretctl(
        &server.url,
        "",
        &["operator", "unseal", &keys[0]],
    ));
    // The second share comes on stdin, as from a pipe.
    let unsealed = secretctl_with_stdin(
        &server.url,
        "",
        &["operator", "unseal"],
        Some(&format!("{}\n", keys[2])),
    );
    expect_ok(&unsealed);
    expect_ok(&secretctl(&server.url, &root, &["status"]));

    expect_ok(&secretctl(
        &server.url,
        &root,
        &["secrets", "enable", "--path", "secret", "kv-v2"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    expect_ok(&secretctl(
        &server.url,
        &root,
        &[
            "put",
            "secret/app/db",
            "password=hunter2",
            &format!("cert=@{}", cert.display()),
        ],
    ));
    let piped = secretctl_with_stdin(
        &server.url,
        &root,
        &["patch", "secret/app/db", "api_key=-"],
        Some("from-stdin"),
    );
    expect_ok(&piped);

    let status = server.stop();
    assert!(status.success(), "secretd exited with {status}");
    let server = Server::with_config(&database.url, "");
    let status = secretctl(&server.url, &root, &["status"]);
    assert_eq!(
        status.status.code(),
        Some(2),
        "a restarted shamir server is sealed"
    );
    let sealed_get = secretctl(&server.url, &root, &["get", "secret/app/db"]);
    assert_eq!(sealed_get.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&sealed_get.stderr).contains("sealed"));

    expect_ok(&secretctl(
        &server.url,
        "",
        &["operator", "unseal", &keys[1]],
    ));
    expect_ok(&secretctl(
        &server.url,
        "",
        &["operator", "unseal", &keys[2]],
    ));
    let password = expect_ok(&secretctl(
        &server.url,
        &root,
        &["get", "--field", "password", "secret/app/db"],
    ));
    assert_eq!(password.trim_end(), "hunter2");
    let full: Value = serde_json::from_str(&expect_ok(&secretctl(
        &server.url,
        &root,
        &["get", "--format", "json", "secret/app/db"],
    )))
    .unwrap();
    assert_eq!(
        full["data"]["cert"],
        std::fs::read_to_string(&cert).unwrap()
    );
    assert_eq!(full["data"]["api_key"], "from-stdin");
    assert_eq!(full["metadata"]["version"], 2);
    let table = stdout(&secretctl(&server.url, &root, &["get", "secret/app/db"]));
    assert!(
        table.contains("hunter2") && table.contains("version"),
        "{table}"
    );

    let wrong_token = secretctl(&server.url, "hvs.notatoken", &["get", "secret/app/db"]);
    assert_eq!(wrong_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong_token.stderr).contains("permission denied"));
    drop(server);
    database.remove().await;
}

async fn client_library_round_trip(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::with_config(&database.url, "");
    let anonymous = Client::builder().address(&server.url).build().unwrap();
    let init = anonymous.sys().init(1, 1).await.unwrap();
    let status = anonymous.sys().unseal(&init.keys_base64[0]).await.unwrap();
    assert!(!status.sealed);
    let client = anonymous.with_token(init.root_token.clone());
    client
        .sys()
        .enable_secrets_engine(
            "kv",
            &secretd_client::wire::MountInput {
                mount_type: "kv-v2".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kv = client.kv2("kv");
    kv.put("team/db", &json!({"user": "app", "password": "p1"}))
        .await
        .unwrap();
    kv.put_cas("team/db", &json!({"user": "app", "password": "p2"}), 1)
        .await
        .unwrap();
    let stale = kv
        .put_cas("team/db", &json!({"password": "p3"}), 1)
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(400));
    kv.patch("team/db", &json!({"user": null})).await.unwrap();
    let secret = kv.get("team/db").await.unwrap();
    assert_eq!(secret.data, json!({"password": "p2"}).as_object().cloned());
    assert_eq!(secret.metadata.version, 3);
    assert_eq!(kv.list("team").await.unwrap(), vec!["db"]);
    assert!(kv.list("nothing").await.unwrap().is_empty());
    kv.delete("team/db").await.unwrap();
    assert!(kv.get("team/db").await.unwrap().is_deleted());
    kv.undelete("team/db", &[3]).await.unwrap();
    kv.destroy("team/db", &[1]).await.unwrap();
    assert!(kv.get_version("team/db", 1).await.unwrap().is_destroyed());
    assert!(
        kv.get_version("team/db", 7)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let meta = kv.metadata("team/db").await.unwrap();
    assert_eq!((meta.current_version, meta.versions.len()), (3, 3));
    client.sys().rotate().await.unwrap();
    assert_eq!(client.sys().key_status().await.unwrap().term, 2);
    let health = client.sys().health().await.unwrap();
    assert!(!health.sealed);
    client.sys().seal().await.unwrap();
    let sealed = kv.get("team/db").await.unwrap_err();
    assert!(sealed.is_sealed(), "{sealed}");
    assert!(
        client.sys().health().await.unwrap().sealed,
        "health parses the 503 body"
    );
    drop(server);
    database.remove().await;
}
