//! What the client puts on the wire and how it reads answers, checked
//! against [`FakeServer`].
#![cfg(feature = "http")]

use serde_json::json;

use crate::Error;
use crate::fake_server::FakeServer;
use crate::wire::{KvMetadataWrite, MountInput};

const WRITE_ANSWER: &str = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
  "data":{"created_time":"2026-01-01T00:00:00Z","custom_metadata":null,"deletion_time":"",
  "destroyed":false,"version":4},"wrap_info":null,"warnings":null,"auth":null}"#;

#[tokio::test]
async fn put_sends_token_request_header_and_cas() {
    let server = FakeServer::start(vec![(200, WRITE_ANSWER)]).await;
    let kv = server.client().kv2("secret");
    let meta = kv
        .put_cas("app/db", json!({"password": "x"}), 3)
        .await
        .unwrap();
    assert_eq!(meta.version, 4);
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/v1/secret/data/app/db");
    assert_eq!(req.header("x-vault-token"), Some("test-token"));
    assert_eq!(req.header("x-vault-request"), Some("true"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"data": {"password": "x"}, "options": {"cas": 3}})
    );
}

#[tokio::test]
async fn patch_is_a_real_merge_patch() {
    let server = FakeServer::start(vec![(200, WRITE_ANSWER)]).await;
    server
        .client()
        .kv2("secret")
        .patch("app/db", json!({"user": "u"}))
        .await
        .unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.method, "PATCH");
    assert_eq!(
        req.header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(req.json(), json!({"data": {"user": "u"}}));
}

#[tokio::test]
async fn list_uses_the_list_method_and_empty_is_an_empty_vec() {
    let server = FakeServer::start(vec![
        (200, r#"{"data":{"keys":["a","b/"]}}"#),
        (404, r#"{"errors":[]}"#),
        (404, r#"{"errors":["unsupported path"]}"#),
    ])
    .await;
    let kv = server.client().kv2("secret");
    assert_eq!(kv.list("app").await.unwrap(), vec!["a", "b/"]);
    assert!(kv.list("empty/").await.unwrap().is_empty());
    let err = kv.list("").await.unwrap_err();
    assert!(err.is_not_found());
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "LIST");
    assert_eq!(reqs[0].target, "/v1/secret/metadata/app/");
    assert_eq!(reqs[1].target, "/v1/secret/metadata/empty/");
    assert_eq!(reqs[2].target, "/v1/secret/metadata/");
}

#[tokio::test]
async fn get_version_deleted_and_missing() {
    let deleted = r#"{"data":{"data":null,"metadata":{"created_time":"t",
        "deletion_time":"2026-01-01T00:00:00Z","destroyed":false,"version":2}}}"#;
    let server = FakeServer::start(vec![(404, deleted), (404, r#"{"errors":[]}"#)]).await;
    let kv = server.client().kv2("secret");
    let secret = kv.get_version("app/db", 2).await.unwrap();
    assert!(secret.is_deleted());
    let err = kv.get("app/nope").await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        server.requests()[0].target,
        "/v1/secret/data/app/db?version=2"
    );
}

#[tokio::test]
async fn version_calls_and_204s() {
    let server =
        FakeServer::start(vec![(204, ""), (204, ""), (204, ""), (204, ""), (204, "")]).await;
    let kv = server.client().kv2("secret");
    kv.delete("a").await.unwrap();
    kv.delete_versions("a", &[1, 2]).await.unwrap();
    kv.undelete("a", &[1]).await.unwrap();
    kv.destroy("a", &[2]).await.unwrap();
    let meta = KvMetadataWrite {
        max_versions: Some(5),
        ..KvMetadataWrite::default()
    };
    kv.put_metadata("a", &meta).await.unwrap();
    let reqs = server.requests();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("DELETE", "/v1/secret/data/a"),
            ("POST", "/v1/secret/delete/a"),
            ("POST", "/v1/secret/undelete/a"),
            ("PUT", "/v1/secret/destroy/a"),
            ("POST", "/v1/secret/metadata/a"),
        ]
    );
    assert_eq!(reqs[1].json(), json!({"versions": [1, 2]}));
    assert_eq!(reqs[4].json(), json!({"max_versions": 5}));
}

#[tokio::test]
async fn health_returns_the_body_for_every_status() {
    let sealed = r#"{"initialized":true,"sealed":true,"standby":true,"version":"0.1.0"}"#;
    let uninit = r#"{"initialized":false,"sealed":true,"standby":true}"#;
    let standby = r#"{"initialized":true,"sealed":false,"standby":true}"#;
    let server = FakeServer::start(vec![
        (503, sealed),
        (501, uninit),
        (429, standby),
        (502, "<html>bad gateway</html>"),
    ])
    .await;
    let sys = server.client().sys();
    assert!(sys.health().await.unwrap().sealed);
    assert!(!sys.health().await.unwrap().initialized);
    assert!(sys.health().await.unwrap().standby);
    let err = sys.health().await.unwrap_err();
    assert_eq!(err.status(), Some(502));
}

#[tokio::test]
async fn api_errors_carry_status_and_messages() {
    let server = FakeServer::start(vec![(503, r#"{"errors":["Vault is sealed"]}"#)]).await;
    let err = server.client().sys().key_status().await.unwrap_err();
    assert!(err.is_sealed());
    assert_eq!(err.errors(), ["Vault is sealed"]);
    assert!(!err.to_string().contains("test-token"));
}

#[tokio::test]
async fn mounts_and_sys_calls() {
    let server = FakeServer::start(vec![
        (204, ""),
        (204, ""),
        (
            200,
            r#"{"data":{"secret/":{"type":"kv","options":{"version":"2"}}},"secret/":{"type":"kv"}}"#,
        ),
        (200, r#"{"sealed":false,"initialized":true,"t":1,"n":1,"progress":0,"nonce":"","type":"shamir"}"#),
    ])
    .await;
    let sys = server.client().sys();
    let input = MountInput {
        mount_type: "kv".into(),
        ..MountInput::default()
    };
    sys.enable_secrets_engine("kv2/", &input).await.unwrap();
    sys.disable_secrets_engine("kv2").await.unwrap();
    let mounts = sys.mounts().await.unwrap();
    assert_eq!(mounts["secret/"].mount_type, "kv");
    let status = sys.unseal("abcd").await.unwrap();
    assert!(!status.sealed);
    let reqs = server.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("POST", "/v1/sys/mounts/kv2")
    );
    assert_eq!(reqs[0].json(), json!({"type": "kv"}));
    assert_eq!(reqs[1].method, "DELETE");
    assert_eq!(
        (reqs[3].method.as_str(), reqs[3].target.as_str()),
        ("PUT", "/v1/sys/unseal")
    );
    assert_eq!(reqs[3].json()["key"], "abcd");
}

#[tokio::test]
async fn no_token_means_no_token_header() {
    let server = FakeServer::start(vec![(200, r#"{"ha_enabled":false}"#)]).await;
    let client = crate::Client::builder()
        .address(&server.address)
        .build()
        .unwrap();
    assert!(!client.sys().leader().await.unwrap().ha_enabled);
    assert_eq!(server.requests()[0].header("x-vault-token"), None);
}

#[tokio::test]
async fn an_unreachable_server_is_an_http_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = crate::Client::builder()
        .address(&address)
        .token("tok-secret")
        .build()
        .unwrap();
    let err = client.sys().seal_status().await.unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("cannot talk to the server"), "{msg}");
    assert!(!msg.contains("tok-secret"));
}
