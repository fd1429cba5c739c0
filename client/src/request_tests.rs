//! What the client puts on the wire and how it reads answers, checked
//! against [`FakeServer`].
#![cfg(feature = "http")]

use serde_json::json;

use crate::Error;
use crate::fake_server::FakeServer;
use crate::wire::{
    AuditDeviceInput, KvMetadataWrite, MountInput, MountTuneInput, TokenCreateRequest,
};

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

const AUTH_ANSWER: &str = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
  "data":null,"wrap_info":null,"warnings":["Policy \"reader\" does not exist"],
  "auth":{"client_token":"hvs.child-secret","accessor":"acc1","policies":["default","reader"],
  "token_policies":["default","reader"],"metadata":{"team":"a"},"lease_duration":3600,
  "renewable":true,"entity_id":"","token_type":"service","orphan":false,"num_uses":0}}"#;

const LOOKUP_ANSWER: &str = r#"{"data":{"accessor":"acc1","creation_time":1,"creation_ttl":3600,
  "display_name":"token","expire_time":null,"id":"hvs.child-secret","policies":["default"],
  "ttl":3500,"type":"service"}}"#;

fn seen(server: &FakeServer) -> Vec<(String, String)> {
    server
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, t)| ((*m).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn token_create_sends_only_what_was_set_and_zeroizes_the_answer() {
    let server = FakeServer::start(vec![(200, AUTH_ANSWER), (200, AUTH_ANSWER)]).await;
    let tokens = server.client().token();
    let request = TokenCreateRequest {
        policies: vec!["reader".into()],
        meta: [("team".to_owned(), "a".to_owned())].into(),
        ttl: Some("1h".into()),
        num_uses: Some(3),
        renewable: Some(false),
        no_default_policy: true,
        display_name: Some("ci".into()),
        ..TokenCreateRequest::default()
    };
    let auth = tokens.create(&request).await.unwrap();
    assert_eq!(auth.client_token.as_str(), "hvs.child-secret");
    assert_eq!(auth.accessor, "acc1");
    assert_eq!(auth.lease_duration, 3600);
    assert_eq!(auth.metadata["team"], "a");
    assert_eq!(auth.warnings, [r#"Policy "reader" does not exist"#]);
    let shown = format!("{auth:?}");
    assert!(!shown.contains("child-secret"), "{shown}");

    tokens
        .create_orphan(&TokenCreateRequest::default())
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(
        seen(&server),
        pairs(&[
            ("POST", "/v1/auth/token/create"),
            ("POST", "/v1/auth/token/create-orphan")
        ])
    );
    assert_eq!(
        reqs[0].json(),
        json!({"policies": ["reader"], "meta": {"team": "a"}, "ttl": "1h", "num_uses": 3,
               "renewable": false, "no_default_policy": true, "display_name": "ci"})
    );
    assert_eq!(reqs[1].json(), json!({}));
}

#[tokio::test]
async fn token_lookups_put_the_token_in_the_body_never_the_url() {
    let server = FakeServer::start(vec![
        (200, LOOKUP_ANSWER),
        (200, LOOKUP_ANSWER),
        (200, LOOKUP_ANSWER),
    ])
    .await;
    let tokens = server.client().token();
    let lookup = tokens.lookup("hvs.child-secret").await.unwrap();
    assert_eq!(lookup.accessor, "acc1");
    assert!(!format!("{lookup:?}").contains("child-secret"));
    tokens.lookup_accessor("acc1").await.unwrap();
    tokens.lookup_self().await.unwrap();
    assert_eq!(
        seen(&server),
        pairs(&[
            ("POST", "/v1/auth/token/lookup"),
            ("POST", "/v1/auth/token/lookup-accessor"),
            ("GET", "/v1/auth/token/lookup-self"),
        ])
    );
    let reqs = server.requests();
    assert_eq!(reqs[0].json(), json!({"token": "hvs.child-secret"}));
    assert_eq!(reqs[1].json(), json!({"accessor": "acc1"}));
    assert!(
        tokens.lookup(" ").await.is_err(),
        "an empty token is refused"
    );
}

#[tokio::test]
async fn token_renewals_and_revocations() {
    let server = FakeServer::start(vec![
        (200, AUTH_ANSWER),
        (200, AUTH_ANSWER),
        (200, AUTH_ANSWER),
        (204, ""),
        (204, ""),
        (
            200,
            r#"{"data":null,"warnings":["No token found with this accessor"]}"#,
        ),
        (204, ""),
        (200, r#"{"data":{"keys":["acc1","acc2"]}}"#),
        (404, r#"{"errors":[]}"#),
    ])
    .await;
    let tokens = server.client().token();
    let renewed = tokens.renew_self(Some(7200)).await.unwrap();
    assert!(renewed.renewable);
    tokens.renew("hvs.other", None).await.unwrap();
    tokens.renew_accessor("acc1", Some(60)).await.unwrap();
    tokens.revoke("hvs.other").await.unwrap();
    tokens.revoke_self().await.unwrap();
    tokens.revoke_accessor("acc1").await.unwrap();
    tokens.revoke_orphan("hvs.other").await.unwrap();
    assert_eq!(tokens.list_accessors().await.unwrap(), ["acc1", "acc2"]);
    assert!(tokens.list_accessors().await.unwrap().is_empty());
    assert_eq!(
        seen(&server),
        pairs(&[
            ("PUT", "/v1/auth/token/renew-self"),
            ("PUT", "/v1/auth/token/renew"),
            ("POST", "/v1/auth/token/renew-accessor"),
            ("PUT", "/v1/auth/token/revoke"),
            ("PUT", "/v1/auth/token/revoke-self"),
            ("POST", "/v1/auth/token/revoke-accessor"),
            ("PUT", "/v1/auth/token/revoke-orphan"),
            ("LIST", "/v1/auth/token/accessors/"),
            ("LIST", "/v1/auth/token/accessors/"),
        ])
    );
    let reqs = server.requests();
    assert_eq!(reqs[0].json(), json!({"increment": 7200}));
    assert_eq!(reqs[1].json(), json!({"token": "hvs.other"}));
    assert_eq!(reqs[2].json(), json!({"accessor": "acc1", "increment": 60}));
    assert_eq!(reqs[3].json(), json!({"token": "hvs.other"}));
    assert!(reqs[4].body.is_empty());
    assert_eq!(reqs[5].json(), json!({"accessor": "acc1"}));
    assert_eq!(reqs[6].json(), json!({"token": "hvs.other"}));
}

#[tokio::test]
async fn a_token_answer_without_auth_is_a_decode_error() {
    let server = FakeServer::start(vec![(204, "")]).await;
    let err = server
        .client()
        .token()
        .create(&TokenCreateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn policy_calls() {
    let server = FakeServer::start(vec![
        (
            200,
            r#"{"data":{"keys":["default","reader"]},"keys":["default","reader"]}"#,
        ),
        (
            200,
            r#"{"data":{"name":"reader","policy":"path \"a\" {}","version":2}}"#,
        ),
        (204, ""),
        (204, ""),
    ])
    .await;
    let sys = server.client().sys();
    assert_eq!(sys.policies().await.unwrap(), ["default", "reader"]);
    let policy = sys.read_policy("reader").await.unwrap();
    assert_eq!(policy.policy, "path \"a\" {}");
    assert_eq!(policy.version, Some(2));
    sys.write_policy("reader", "path \"b\" {}").await.unwrap();
    sys.delete_policy("reader").await.unwrap();
    assert_eq!(
        seen(&server),
        pairs(&[
            ("LIST", "/v1/sys/policies/acl/"),
            ("GET", "/v1/sys/policies/acl/reader"),
            ("PUT", "/v1/sys/policies/acl/reader"),
            ("DELETE", "/v1/sys/policies/acl/reader"),
        ])
    );
    assert_eq!(
        server.requests()[2].json(),
        json!({"policy": "path \"b\" {}"})
    );
    for bad in ["", "a/b"] {
        assert!(matches!(
            sys.delete_policy(bad).await,
            Err(Error::InvalidInput(_))
        ));
    }
}

#[tokio::test]
async fn audit_device_calls() {
    let listed = r#"{"data":{"file/":{"type":"file","description":"main","options":{"file_path":"/var/log/a.log"},
        "local":false,"path":"file/"},"other/":{"type":"file","options":null}},
        "file/":{"type":"file"}}"#;
    let server = FakeServer::start(vec![(204, ""), (200, listed), (204, "")]).await;
    let sys = server.client().sys();
    let input = AuditDeviceInput {
        device_type: "file".into(),
        description: "main".into(),
        options: [
            ("file_path".to_owned(), "/var/log/a.log".to_owned()),
            ("mode".to_owned(), "0600".to_owned()),
        ]
        .into(),
        local: false,
    };
    sys.enable_audit_device("/file/", &input).await.unwrap();
    let devices = sys.audit_devices().await.unwrap();
    assert_eq!(devices["file/"].options["file_path"], "/var/log/a.log");
    assert_eq!(devices["file/"].path, "file/");
    assert!(
        devices["other/"].options.is_empty(),
        "null options read as none"
    );
    sys.disable_audit_device("file").await.unwrap();
    assert_eq!(
        seen(&server),
        pairs(&[
            ("PUT", "/v1/sys/audit/file"),
            ("GET", "/v1/sys/audit"),
            ("DELETE", "/v1/sys/audit/file"),
        ])
    );
    assert_eq!(
        server.requests()[0].json(),
        json!({"type": "file", "description": "main",
               "options": {"file_path": "/var/log/a.log", "mode": "0600"}})
    );
}

#[tokio::test]
async fn auth_method_and_tune_calls() {
    let listed = r#"{"data":{"token/":{"type":"token","accessor":"auth_token_1",
        "config":{"default_lease_ttl":0,"max_lease_ttl":0}}}}"#;
    let server = FakeServer::start(vec![(204, ""), (200, listed), (204, ""), (204, "")]).await;
    let sys = server.client().sys();
    let input = MountInput {
        mount_type: "kubernetes".into(),
        description: "k8s".into(),
        ..MountInput::default()
    };
    sys.enable_auth_method("k8s", &input).await.unwrap();
    let methods = sys.auth_methods().await.unwrap();
    assert_eq!(methods["token/"].mount_type, "token");
    sys.disable_auth_method("k8s/").await.unwrap();
    let tune = MountTuneInput {
        default_lease_ttl: Some("1h".into()),
        max_lease_ttl: Some("system".into()),
        description: None,
    };
    sys.tune_secrets_engine("secret/", &tune).await.unwrap();
    assert_eq!(
        seen(&server),
        pairs(&[
            ("POST", "/v1/sys/auth/k8s"),
            ("GET", "/v1/sys/auth"),
            ("DELETE", "/v1/sys/auth/k8s"),
            ("POST", "/v1/sys/mounts/secret/tune"),
        ])
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].json(),
        json!({"type": "kubernetes", "description": "k8s"})
    );
    assert_eq!(
        reqs[3].json(),
        json!({"default_lease_ttl": "1h", "max_lease_ttl": "system"})
    );
}

#[tokio::test]
async fn logical_requests_reach_any_path() {
    let server = FakeServer::start(vec![
        (
            200,
            r#"{"data":{"secret/":{"type":"kv"}},"secret/":{"type":"kv"}}"#,
        ),
        (404, r#"{"errors":[]}"#),
        (204, ""),
        (200, AUTH_ANSWER),
        (200, r#"{"data":{"keys":["default"]}}"#),
        (404, r#"{"errors":[]}"#),
        (204, ""),
        (
            403,
            r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
        ),
    ])
    .await;
    let logical = server.client().logical();
    let mounts = logical.read("sys/mounts").await.unwrap().unwrap();
    assert_eq!(mounts.data.unwrap()["secret/"]["type"], "kv");
    assert!(
        logical
            .read_with("secret/data/x", &[("version", "2")])
            .await
            .unwrap()
            .is_none()
    );
    let written = logical
        .write("sys/policies/acl/x", &json!({"policy": "path \"a\" {}"}))
        .await
        .unwrap();
    assert!(written.is_none());
    let created = logical
        .write("auth/token/create", &json!({"policies": "reader"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.auth.unwrap().accessor, "acc1");
    let listed = logical.list("sys/policies/acl").await.unwrap().unwrap();
    assert_eq!(listed.keys(), ["default"]);
    assert!(logical.list("secret/metadata/").await.unwrap().is_none());
    assert!(
        logical
            .delete_with("secret/data/x", &[("versions", "1")])
            .await
            .unwrap()
            .is_none()
    );
    let err = logical.delete("sys/policies/acl/x").await.unwrap_err();
    assert!(err.is_permission_denied());
    assert_eq!(
        seen(&server),
        pairs(&[
            ("GET", "/v1/sys/mounts"),
            ("GET", "/v1/secret/data/x?version=2"),
            ("PUT", "/v1/sys/policies/acl/x"),
            ("PUT", "/v1/auth/token/create"),
            ("LIST", "/v1/sys/policies/acl/"),
            ("LIST", "/v1/secret/metadata/"),
            ("DELETE", "/v1/secret/data/x?versions=1"),
            ("DELETE", "/v1/sys/policies/acl/x"),
        ])
    );
    assert_eq!(server.requests()[3].json(), json!({"policies": "reader"}));
}

const LOGIN_ANSWER: &str = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
  "data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"hvs.new","accessor":"acc",
  "policies":["default","dev"],"token_policies":["default","dev"],"metadata":{"role":"dev"},
  "lease_duration":3600,"renewable":true,"entity_id":"","token_type":"service","orphan":true,
  "mfa_requirement":null,"num_uses":0}}"#;

#[tokio::test]
async fn kubernetes_login_reads_the_token_file_at_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("token");
    std::fs::write(&jwt, "eyJ.first\n").unwrap();
    let server = FakeServer::start(vec![(200, LOGIN_ANSWER), (200, LOGIN_ANSWER)]).await;
    let client = server.client();
    let auth = client.login_kubernetes("/k8s/", "dev", &jwt).await.unwrap();
    assert_eq!(auth.client_token.as_str(), "hvs.new");
    assert_eq!(auth.metadata["role"], "dev");
    assert_eq!(auth.lease_duration, 3600);
    // The kubelet replaced the projected token: the next login sends it.
    std::fs::write(&jwt, "eyJ.second").unwrap();
    client.login_kubernetes("k8s", "dev", &jwt).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].target, "/v1/auth/k8s/login");
    assert_eq!(
        requests[0].json(),
        json!({"role": "dev", "jwt": "eyJ.first"})
    );
    assert_eq!(
        requests[1].json(),
        json!({"role": "dev", "jwt": "eyJ.second"})
    );

    let missing = client
        .login_kubernetes("k8s", "dev", dir.path().join("nope"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Config(_)), "{missing:?}");
}

#[tokio::test]
async fn ldap_login_puts_the_user_in_the_path_and_the_password_in_the_body() {
    let server = FakeServer::start(vec![
        (200, LOGIN_ANSWER),
        (
            400,
            r#"{"errors":["ldap operation failed: failed to bind as user"]}"#,
        ),
    ])
    .await;
    let client = server.client();
    let auth = client.login_ldap("ldap", "alice", "pw").await.unwrap();
    assert_eq!(auth.policies, vec!["default", "dev"]);
    let bad = client
        .login_ldap("ldap", "alice", "wrong")
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(400));
    let requests = server.requests();
    assert_eq!(requests[0].target, "/v1/auth/ldap/login/alice");
    assert_eq!(requests[0].json(), json!({"password": "pw"}));
    assert!(client.login_ldap("ldap", "a/b", "pw").await.is_err());
    assert!(client.login_ldap("ldap", "", "pw").await.is_err());
    assert_eq!(
        server.requests().len(),
        2,
        "bad user names never leave the client"
    );
}

#[tokio::test]
async fn lease_calls_speak_sys_leases() {
    let lookup = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
      "data":{"id":"db/creds/ro/abc","issue_time":"2026-01-01T00:00:00Z",
      "expire_time":"2026-01-01T01:00:00Z","last_renewal":null,"renewable":true,"ttl":3599},
      "wrap_info":null,"warnings":null,"auth":null}"#;
    let renew = r#"{"request_id":"r","lease_id":"db/creds/ro/abc","renewable":true,
      "lease_duration":600,"data":null,"wrap_info":null,"warnings":["capped"],"auth":null}"#;
    let server = FakeServer::start(vec![
        (200, lookup),
        (200, renew),
        (204, ""),
        (204, ""),
        (404, r#"{"errors":[]}"#),
    ])
    .await;
    let leases = server.client().lease();
    let found = leases.lookup("db/creds/ro/abc").await.unwrap();
    assert_eq!((found.ttl, found.renewable), (3599, true));
    let renewed = leases.renew("db/creds/ro/abc", Some(600)).await.unwrap();
    assert_eq!(renewed.lease_duration, 600);
    assert_eq!(renewed.warnings, vec!["capped"]);
    leases.revoke("db/creds/ro/abc").await.unwrap();
    leases.revoke_prefix("/db/creds/").await.unwrap();
    assert!(leases.list("db/creds").await.unwrap().is_empty());
    let requests = server.requests();
    assert_eq!(requests[0].target, "/v1/sys/leases/lookup");
    assert_eq!(requests[0].json(), json!({"lease_id": "db/creds/ro/abc"}));
    assert_eq!(
        requests[1].json(),
        json!({"lease_id": "db/creds/ro/abc", "increment": 600})
    );
    assert_eq!(
        requests[2].json(),
        json!({"lease_id": "db/creds/ro/abc", "sync": true})
    );
    assert_eq!(requests[3].target, "/v1/sys/leases/revoke-prefix/db/creds");
    assert_eq!(
        (requests[4].method.as_str(), requests[4].target.as_str()),
        ("LIST", "/v1/sys/leases/lookup/db/creds/")
    );
}

#[tokio::test]
async fn database_credentials_come_with_their_lease() {
    let creds = r#"{"request_id":"r","lease_id":"database/creds/ro/abc","renewable":true,
      "lease_duration":3600,"data":{"username":"v-token-ro-x","password":"s3cret-Pw"},
      "wrap_info":null,"warnings":null,"auth":null}"#;
    let fixed = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
      "data":{"username":"app","password":"rotated-1","ttl":120,"rotation_period":3600,
      "last_vault_rotation":"2026-01-01T00:00:00Z"},"wrap_info":null,"warnings":null,"auth":null}"#;
    let server = FakeServer::start(vec![(200, creds), (200, fixed)]).await;
    let db = server.client().database("/database/");
    let got = db.creds("ro").await.unwrap();
    assert_eq!(got.username, "v-token-ro-x");
    assert_eq!(got.password.as_str(), "s3cret-Pw");
    assert_eq!(
        (got.lease_id.as_str(), got.lease_duration),
        ("database/creds/ro/abc", 3600)
    );
    assert!(!format!("{got:?}").contains("s3cret"));
    let fixed = db.static_creds("app").await.unwrap();
    assert_eq!((fixed.password.as_str(), fixed.ttl), ("rotated-1", 120));
    let requests = server.requests();
    assert_eq!(requests[0].target, "/v1/database/creds/ro");
    assert_eq!(requests[1].target, "/v1/database/static-creds/app");
}
