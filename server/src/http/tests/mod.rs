//! The API in process: each test builds a server on a fresh SQLite file
//! and sends it requests with `tower::ServiceExt::oneshot`, checking the
//! status codes and JSON shapes Vault clients depend on.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request as HttpRequest, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Limits, router};
use crate::core::{Core, SealSettings};
use crate::storage::testing::TestDatabase;

struct App {
    core: Arc<Core>,
    limits: Limits,
    _db: TestDatabase,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

const ROOT: &str = "root-token-for-tests";

impl App {
    /// An uninitialised server.
    async fn new() -> App {
        let db = TestDatabase::sqlite();
        let core = Core::new(db.open().await, SealSettings::Shamir);
        core.start().await.unwrap();
        App {
            core,
            limits: Limits::default(),
            _db: db,
        }
    }

    /// A dev server: unsealed, KV v2 at secret/, root token [`ROOT`].
    async fn dev() -> App {
        let app = App::new().await;
        app.core.initialize_dev(Some(ROOT)).await.unwrap();
        app
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = HttpRequest::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send_raw(req.body(body).unwrap()).await
    }

    async fn send_raw(&self, req: HttpRequest<Body>) -> Reply {
        let response = router(self.core.clone(), self.limits)
            .oneshot(req)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            raw,
        }
    }

    async fn root(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, body, &[("X-Vault-Token", ROOT)])
            .await
    }
}

mod access;
mod audit;
mod database;
mod kubernetes;
mod ldap;
mod leases;
mod login;
mod metrics;
mod nodes;
mod rotation;

impl App {
    /// A request with the given token.
    async fn with_token(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, body, &[("X-Vault-Token", token)])
            .await
    }

    /// Writes a policy as root.
    async fn policy(&self, name: &str, text: &str) {
        let r = self
            .root(
                "PUT",
                &format!("/v1/sys/policies/acl/{name}"),
                Some(json!({ "policy": text })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }

    /// Creates a token as `parent` and returns it.
    async fn token(&self, parent: &str, body: Value) -> String {
        let r = self
            .with_token(parent, "POST", "/v1/auth/token/create", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

fn errors(reply: &Reply) -> Vec<String> {
    serde_json::from_value(reply.body["errors"].clone()).unwrap_or_default()
}

#[tokio::test]
async fn init_unseal_and_health_speak_vaults_raw_formats() {
    let app = App::new().await;
    let r = app.send("GET", "/v1/sys/init", None, &[]).await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({"initialized": false}))
    );
    let r = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert_eq!(r.status.as_u16(), 501);
    assert_eq!(r.body["initialized"], false);
    let r = app.send("GET", "/v1/sys/seal-status", None, &[]).await;
    assert_eq!(
        (r.body["initialized"].clone(), r.body["sealed"].clone()),
        (json!(false), json!(true))
    );
    // Requests other than the lifecycle ones: 503 sealed.
    let r = app.root("GET", "/v1/secret/data/x", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(errors(&r), vec!["Vault is sealed"]);

    let r = app
        .send(
            "PUT",
            "/v1/sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let keys: Vec<String> = serde_json::from_value(r.body["keys"].clone()).unwrap();
    let keys_b64: Vec<String> = serde_json::from_value(r.body["keys_base64"].clone()).unwrap();
    assert_eq!((keys.len(), keys_b64.len()), (3, 3));
    let root = r.body["root_token"].as_str().unwrap().to_owned();
    assert!(root.starts_with("hvs."));
    let r = app
        .send(
            "PUT",
            "/v1/sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, errors(&r)),
        (
            StatusCode::BAD_REQUEST,
            vec!["Vault is already initialized".to_owned()]
        )
    );

    let r = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(
        r.body["standby"], true,
        "a sealed node reports standby, as OpenBao does"
    );
    let r = app
        .send(
            "GET",
            "/v1/sys/health?sealedcode=299&uninitcode=298",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 299);
    let r = app
        .send("GET", "/v1/sys/health?sealedcode=abc", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app
        .send("PUT", "/v1/sys/unseal", Some(json!({})), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(errors(&r)[0].contains("'key' must be specified"));
    let r = app
        .send(
            "PUT",
            "/v1/sys/unseal",
            Some(json!({"key": "not a key!"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send("PUT", "/v1/sys/unseal", Some(json!({"key": keys[0]})), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (
            r.body["sealed"].clone(),
            r.body["progress"].clone(),
            r.body["t"].clone(),
            r.body["n"].clone()
        ),
        (json!(true), json!(1), json!(2), json!(3))
    );
    let r = app
        .send("PUT", "/v1/sys/unseal", Some(json!({"reset": true})), &[])
        .await;
    assert_eq!(r.body["progress"], 0);
    app.send(
        "PUT",
        "/v1/sys/unseal",
        Some(json!({"key": keys_b64[2]})),
        &[],
    )
    .await;
    let r = app
        .send("PUT", "/v1/sys/unseal", Some(json!({"key": keys[1]})), &[])
        .await;
    assert_eq!(
        (r.body["sealed"].clone(), r.body["progress"].clone()),
        (json!(false), json!(0))
    );
    assert!(r.body["cluster_id"].is_string());

    let r = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["sealed"], false);
    let r = app.send("HEAD", "/v1/sys/health", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.raw.is_empty());
    let r = app.send("GET", "/v1/sys/leader", None, &[]).await;
    assert_eq!(r.body, json!({"ha_enabled": false}));
    let r = app
        .send(
            "GET",
            "/v1/auth/token/lookup-self",
            None,
            &[("X-Vault-Token", &root)],
        )
        .await;
    assert_eq!(r.body["data"]["policies"], json!(["root"]));

    let r = app
        .send("PUT", "/v1/sys/seal", None, &[("X-Vault-Token", &root)])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.send("GET", "/v1/sys/seal-status", None, &[]).await;
    assert_eq!(r.body["sealed"], true);
    assert!(r.body.get("cluster_id").is_none());
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let app = App::dev().await;
    let r = app.send("GET", "/v1/secret/data/x", None, &[]).await;
    assert_eq!(
        (r.status, errors(&r)),
        (StatusCode::FORBIDDEN, vec!["permission denied".to_owned()])
    );
    // Without a token the body is never read: garbage or huge, it is a 403.
    let req = HttpRequest::builder()
        .method("POST")
        .uri("/v1/secret/data/x")
        .body(Body::from("x".repeat(2 * 1024 * 1024)))
        .unwrap();
    assert_eq!(app.send_raw(req).await.status, StatusCode::FORBIDDEN);
    let r = app
        .send(
            "GET",
            "/v1/secret/data/x",
            None,
            &[("X-Vault-Token", "hvs.wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bearer = format!("Bearer {ROOT}");
    let r = app
        .send(
            "GET",
            "/v1/auth/token/lookup-self",
            None,
            &[("Authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"]["id"], ROOT);
    assert_eq!(r.body["data"]["type"], "service");
    assert_eq!(r.body["data"]["ttl"], 0);
    assert_eq!(r.body["data"]["expire_time"], Value::Null);
    // X-Vault-Token wins over Authorization.
    let r = app
        .send(
            "GET",
            "/v1/auth/token/lookup-self",
            None,
            &[("Authorization", &bearer), ("X-Vault-Token", "bad")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn kv_v2_answers_like_vault() {
    let app = App::dev().await;
    let r = app
        .root(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"password": "hunter2"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(r.body.get(key).is_some(), "envelope lacks {key}");
    }
    assert_eq!(r.body["data"]["version"], 1);
    assert_eq!(r.body["data"]["deletion_time"], "");
    assert_eq!(r.body["data"]["custom_metadata"], Value::Null);

    let r = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(r.body["data"]["data"], json!({"password": "hunter2"}));
    assert_eq!(r.body["data"]["metadata"]["version"], 1);

    // CAS.
    let r = app
        .root(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"options": {"cas": 0}, "data": {"a": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        errors(&r),
        vec!["check-and-set parameter did not match the current version"]
    );
    let r = app
        .root(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"options": {"cas": 1}, "data": {"password": "v2", "user": "u"}})),
        )
        .await;
    assert_eq!(r.body["data"]["version"], 2);

    // PATCH needs merge-patch, then merges.
    let r = app
        .root(
            "PATCH",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"user": null}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .send(
            "PATCH",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"user": null, "port": 5432}})),
            &[
                ("X-Vault-Token", ROOT),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.body["data"]["version"], 3, "{:?}", r.body);
    let r = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(
        r.body["data"]["data"],
        json!({"password": "v2", "port": 5432})
    );
    let r = app
        .send(
            "PATCH",
            "/v1/secret/data/nope",
            Some(json!({"data": {"a": 1}})),
            &[
                ("X-Vault-Token", ROOT),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Old versions, missing versions.
    let r = app
        .root("GET", "/v1/secret/data/app/db?version=1", None)
        .await;
    assert_eq!(r.body["data"]["data"], json!({"password": "hunter2"}));
    let r = app
        .root("GET", "/v1/secret/data/app/db?version=9", None)
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );
    let r = app
        .root("GET", "/v1/secret/data/app/db?version=x", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Soft delete: 404 with the envelope and metadata.
    let r = app.root("DELETE", "/v1/secret/data/app/db", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["data"]["data"], Value::Null);
    assert_ne!(r.body["data"]["metadata"]["deletion_time"], "");
    assert!(r.body.get("errors").is_none());
    app.root(
        "POST",
        "/v1/secret/undelete/app/db",
        Some(json!({"versions": [3]})),
    )
    .await;
    let r = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(r.status, StatusCode::OK);

    // Destroy: 404 with destroyed=true and no deletion time.
    let r = app
        .root(
            "PUT",
            "/v1/secret/destroy/app/db",
            Some(json!({"versions": [1]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .root("GET", "/v1/secret/data/app/db?version=1", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["data"]["metadata"]["destroyed"], true);
    assert_eq!(r.body["data"]["metadata"]["deletion_time"], "");
    let r = app
        .root("POST", "/v1/secret/destroy/app/db", Some(json!({})))
        .await;
    assert_eq!(
        (r.status, errors(&r)),
        (
            StatusCode::BAD_REQUEST,
            vec!["no version number provided".to_owned()]
        )
    );

    // Metadata and subkeys.
    let r = app.root("GET", "/v1/secret/metadata/app/db", None).await;
    assert_eq!(r.body["data"]["current_version"], 3);
    assert_eq!(r.body["data"]["versions"]["1"]["destroyed"], true);
    assert_eq!(r.body["data"]["max_versions"], 0);
    assert_eq!(r.body["data"]["delete_version_after"], "0s");
    let r = app
        .root(
            "POST",
            "/v1/secret/metadata/app/db",
            Some(json!({"max_versions": 5, "custom_metadata": {"owner": "team-a"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(
        r.body["data"]["metadata"]["custom_metadata"],
        json!({"owner": "team-a"})
    );
    let r = app.root("GET", "/v1/secret/subkeys/app/db", None).await;
    assert_eq!(
        r.body["data"]["subkeys"],
        json!({"password": null, "port": null})
    );
    let big = json!({"custom_metadata": {"k": "x".repeat(513)}});
    let r = app
        .root("POST", "/v1/secret/metadata/app/db", Some(big))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(errors(&r)[0].contains("custom_metadata validation failed"));

    // Listing by verb and by ?list=true; empty is 404.
    app.root(
        "POST",
        "/v1/secret/data/app/web",
        Some(json!({"data": {"a": "b"}})),
    )
    .await;
    let r = app.root("LIST", "/v1/secret/metadata/app", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["db", "web"]));
    let r = app
        .root("GET", "/v1/secret/metadata/?list=true", None)
        .await;
    assert_eq!(r.body["data"]["keys"], json!(["app/"]));
    let r = app.root("LIST", "/v1/secret/metadata/none/", None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );

    // Unknown parameters are ignored with Vault's warning; wrong paths get Vault's hint.
    let r = app
        .root(
            "POST",
            "/v1/secret/data/w",
            Some(json!({"data": {"a": 1}, "foo": 1})),
        )
        .await;
    assert_eq!(
        r.body["warnings"],
        json!(["Endpoint ignored these unrecognized parameters: [foo]"])
    );
    let r = app.root("GET", "/v1/secret/app/db", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("Invalid path for a versioned K/V")
    );
    let r = app
        .root("POST", "/v1/secret/data/dir/", Some(json!({"data": {}})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Config.
    let r = app
        .root(
            "POST",
            "/v1/secret/config",
            Some(json!({"cas_required": true, "delete_version_after": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/secret/config", None).await;
    assert_eq!(
        r.body["data"],
        json!({"cas_required": true, "delete_version_after": "1h0m0s", "max_versions": 0})
    );
    let r = app
        .root(
            "POST",
            "/v1/secret/data/new",
            Some(json!({"data": {"a": 1}})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["check-and-set parameter required for this call"]
    );
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_answers() {
    let mut app = App::dev().await;
    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("POST", "/v1/secret/data/x", Some("{\"data\":"), 400),
        ("POST", "/v1/secret/data/x", Some("[1,2]"), 400),
        ("POST", "/v1/secret/data/x", Some("not json"), 400),
        ("POST", "/v1/secret/data/x", Some(""), 400),
        (
            "POST",
            "/v1/secret/data/x",
            Some("{\"data\": \"str\"}"),
            400,
        ),
        (
            "POST",
            "/v1/secret/data/x",
            Some("{\"options\": {\"cas\": -1}, \"data\": {}}"),
            400,
        ),
        ("GET", "/v1/secret/data/a/../b", None, 400),
        ("GET", "/v1/secret/data/a/%2e%2e/b", None, 400),
        ("GET", "/v1/secret//data/x", None, 400),
        ("GET", "/v1/secret/data/a%00b", None, 400),
        ("GET", "/v1/secret/data/a%0Ab", None, 400),
        ("GET", "/v1/secret/data/%ff", None, 400),
        ("GET", "/v1/nothing/here", None, 404),
        ("GET", "/not-v1", None, 404),
        ("FOO", "/v1/secret/data/x", None, 405),
        ("HEAD", "/v1/secret/data/x", None, 405),
        ("PUT", "/v1/sys/leader", None, 405),
        ("DELETE", "/v1/secret/config", None, 405),
    ];
    for (method, path, body, want) in cases {
        let req = HttpRequest::builder()
            .method(method)
            .uri(path)
            .header("X-Vault-Token", ROOT)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let r = app.send_raw(req).await;
        assert_eq!(
            r.status.as_u16(),
            want,
            "{method} {path} {body:?}: {:?}",
            r.body
        );
        if want != 404 && method != "HEAD" {
            assert!(!errors(&r).is_empty(), "{method} {path}: no error message");
        }
    }
    let r = app
        .send(
            "GET",
            "/v1/secret/data/x",
            None,
            &[("X-Vault-Token", ROOT), ("X-Vault-Wrap-TTL", "5m")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "wrapping is refused, not silently skipped"
    );
    let long = format!("/v1/secret/data/{}", "a".repeat(2000));
    let r = app.root("GET", &long, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let deep = format!("{{\"data\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let req = HttpRequest::builder()
        .method("POST")
        .uri("/v1/secret/data/deep")
        .header("X-Vault-Token", ROOT)
        .body(Body::from(deep))
        .unwrap();
    assert_eq!(app.send_raw(req).await.status, StatusCode::BAD_REQUEST);

    // Too many keys in a secret, or elements in an array: 400, saying so.
    let fields: serde_json::Map<String, Value> =
        (0..10_001).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = app
        .root("PUT", "/v1/secret/data/wide", Some(json!({"data": fields})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        errors(&r),
        ["failed to decode JSON input: an object has 10001 keys, more than the 10000 allowed"]
    );
    let long_list = json!({"data": {"v": vec![0; 10_001]}});
    let r = app
        .root("PUT", "/v1/secret/data/wide", Some(long_list))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        errors(&r)[0].contains("an array has 10001 elements"),
        "{:?}",
        r.body
    );
    let r = app
        .root(
            "PUT",
            "/v1/sys/policies/acl/wide",
            Some(json!({"policy": "", "x": vec![0; 10_001]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "every path, not only KV");
    // A key's history is bounded: more than 1000 versions is refused.
    for (path, body) in [
        ("/v1/secret/config", json!({"max_versions": 1001})),
        (
            "/v1/secret/metadata/wide",
            json!({"max_versions": 1_000_000}),
        ),
    ] {
        let r = app.root("POST", path, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            errors(&r)[0].contains("at most 1000 versions"),
            "{:?}",
            r.body
        );
    }
    let r = app
        .root(
            "POST",
            "/v1/secret/config",
            Some(json!({"max_versions": 1000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/secret/config", None).await;
    assert_eq!(r.body["data"]["max_versions"], 1000);
    let r = app
        .root(
            "POST",
            "/v1/secret/config",
            Some(json!({"max_versions": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    app.limits.max_request_size = 4096;
    let huge = json!({"data": {"v": "x".repeat(5000)}});
    let r = app.root("POST", "/v1/secret/data/huge", Some(huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(errors(&r)[0].contains("4096"));
    // Nothing above was stored.
    let r = app.root("LIST", "/v1/secret/metadata/", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mounts_can_be_listed_enabled_and_disabled() {
    let app = App::dev().await;
    let r = app.root("GET", "/v1/sys/mounts", None).await;
    assert_eq!(r.body["data"]["secret/"]["type"], "kv");
    assert_eq!(
        r.body["data"]["secret/"]["options"],
        json!({"version": "2"})
    );
    assert_eq!(
        r.body["secret/"]["type"], "kv",
        "sys answers are injected at the top level"
    );
    assert_eq!(r.body["data"]["sys/"]["type"], "system");

    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/team",
            Some(json!({"type": "kv-v2", "description": "team"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for (path, body, message) in [
        (
            "team",
            json!({"type": "kv-v2"}),
            "path is already in use at team/",
        ),
        (
            "team/nested",
            json!({"type": "kv-v2"}),
            "path is already in use at team/",
        ),
        (
            "kv1",
            json!({"type": "kv"}),
            "version 2 of the KV engine only",
        ),
        (
            "bogus",
            json!({"type": "bogus"}),
            "plugin not found in the catalog: bogus",
        ),
        ("sys/x", json!({"type": "kv-v2"}), "reserved"),
        ("notype", json!({}), "type"),
    ] {
        let r = app
            .root("POST", &format!("/v1/sys/mounts/{path}"), Some(body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(errors(&r)[0].contains(message), "{path}: {:?}", errors(&r));
    }
    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/kv2",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.root("POST", "/v1/team/data/x", Some(json!({"data": {"a": "b"}})))
        .await;
    let r = app
        .root("GET", "/v1/sys/internal/ui/mounts/team/data/x", None)
        .await;
    assert_eq!(r.body["data"]["path"], "team/");
    assert_eq!(r.body["data"]["type"], "kv");
    assert_eq!(r.body["data"]["options"]["version"], "2");
    let r = app
        .root("GET", "/v1/sys/internal/ui/mounts/nowhere/x", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.root("GET", "/v1/sys/mounts/team", None).await;
    assert_eq!(r.body["data"]["description"], "team");

    let r = app.root("DELETE", "/v1/sys/mounts/team", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/team/data/x", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Mounting again starts empty: unmounting deleted the data.
    app.root(
        "POST",
        "/v1/sys/mounts/team",
        Some(json!({"type": "kv-v2"})),
    )
    .await;
    let r = app.root("GET", "/v1/team/data/x", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .root("DELETE", "/v1/sys/mounts/never-mounted", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("DELETE", "/v1/sys/mounts/sys", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rotation_is_reported_by_key_status() {
    let app = App::dev().await;
    app.root(
        "POST",
        "/v1/secret/data/a",
        Some(json!({"data": {"a": "1"}})),
    )
    .await;
    let r = app.root("GET", "/v1/sys/key-status", None).await;
    assert_eq!(r.body["data"]["term"], 1);
    assert_eq!(r.body["term"], 1);
    assert_eq!(r.body["data"]["encryptions"], 1);
    let r = app.root("POST", "/v1/sys/rotate", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/sys/key-status", None).await;
    assert_eq!(r.body["data"]["term"], 2);
    assert!(
        r.body["data"]["install_time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    app.core.barrier().rewrap_pass(100).await.unwrap();
    let r = app.root("GET", "/v1/sys/key-status", None).await;
    assert_eq!(r.body["data"]["rewrap_pending"], 0);
    assert_eq!(r.body["data"]["encryptions"], 1);
    let r = app.root("GET", "/v1/secret/data/a", None).await;
    assert_eq!(r.body["data"]["data"], json!({"a": "1"}));
}
