//! The Kubernetes auth method through the API: enable it, configure it,
//! log a pod in, and use the token it gets.

use axum::http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::{App, Reply, errors};
use crate::auth::kubernetes::testing::{ApiServer, ISSUER, Pki, ec_key, projected, rsa_key};

const UID: &str = "0f6b3c5e-9d1a-4f2b-8c7d-6e5f4a3b2c1d";

const APP_READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

impl App {
    async fn enable_kubernetes(&self, path: &str) {
        let r = self
            .root(
                "POST",
                &format!("/v1/sys/auth/{path}"),
                Some(json!({"type": "kubernetes"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }

    async fn write_ok(&self, path: &str, body: Value) {
        let r = self.root("POST", path, Some(body)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}: {:?}", r.body);
    }

    async fn k8s_login(&self, mount: &str, role: &str, jwt: &str) -> Reply {
        self.send(
            "POST",
            &format!("/v1/auth/{mount}/login"),
            Some(json!({"role": role, "jwt": jwt})),
            &[],
        )
        .await
    }
}

/// A role for `prod/app` tokens meant for `vault`, with `app-reader`.
fn app_role() -> Value {
    json!({
        "bound_service_account_names": "app",
        "bound_service_account_namespaces": "prod",
        "audience": "vault",
        "token_policies": "app-reader",
        "token_ttl": "1h",
    })
}

#[tokio::test]
async fn a_pod_logs_in_and_reads_what_its_role_allows() {
    let app = App::dev().await;
    app.policy("app-reader", APP_READER).await;
    app.enable_kubernetes("kubernetes").await;
    let rsa = rsa_key();
    app.write_ok(
        "/v1/auth/kubernetes/config",
        json!({"pem_keys": [rsa.public_pem], "issuer": ISSUER}),
    )
    .await;
    app.write_ok("/v1/auth/kubernetes/role/app", app_role())
        .await;
    let r = app.root("GET", "/v1/auth/kubernetes/role/app", None).await;
    assert_eq!(
        r.body["data"]["bound_service_account_names"],
        json!(["app"])
    );
    assert_eq!(r.body["data"]["audience"], "vault");
    assert_eq!(r.body["data"]["alias_name_source"], "serviceaccount_uid");
    assert_eq!(r.body["data"]["token_policies"], json!(["app-reader"]));
    assert_eq!(r.body["data"]["token_ttl"], 3600);
    let r = app.root("LIST", "/v1/auth/kubernetes/role", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["app"]));

    for (path, value) in [("app/db", "app-secret"), ("other/db", "other-secret")] {
        let r = app
            .root(
                "POST",
                &format!("/v1/secret/data/{path}"),
                Some(json!({"data": {"v": value}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }

    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    let r = app.k8s_login("kubernetes", "app", &jwt).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let auth = &r.body["auth"];
    assert_eq!(auth["policies"], json!(["app-reader", "default"]));
    assert_eq!(
        auth["metadata"],
        json!({
            "role": "app",
            "service_account_name": "app",
            "service_account_namespace": "prod",
            "service_account_secret_name": "",
            "service_account_uid": UID,
        })
    );
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    let token = auth["client_token"].as_str().unwrap().to_owned();

    let r = app
        .with_token(&token, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert!(
        r.body["data"]["display_name"]
            .as_str()
            .unwrap()
            .contains("kubernetes-prod-app"),
        "{:?}",
        r.body["data"]
    );
    assert_eq!(r.body["data"]["path"], "auth/kubernetes/login");
    let r = app
        .with_token(&token, "GET", "/v1/secret/data/app/db", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"]["data"]["v"], "app-secret");
    let r = app
        .with_token(&token, "GET", "/v1/secret/data/other/db", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Renewal asks the role again, not the cluster; a deleted role ends it.
    let r = app
        .with_token(&token, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["lease_duration"], 3600);
    let r = app
        .root("DELETE", "/v1/auth/kubernetes/role/app", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .with_token(&token, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(errors(&r)[0].contains("no longer exists"), "{:?}", r.body);
    let r = app.root("LIST", "/v1/auth/kubernetes/role", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn logins_fail_like_vaults() {
    let app = App::dev().await;
    app.enable_kubernetes("kubernetes").await;
    let rsa = rsa_key();
    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));

    // Not configured yet: the role is looked up first.
    let r = app.k8s_login("kubernetes", "app", &jwt).await;
    assert_eq!(
        (r.status, errors(&r)),
        (
            StatusCode::BAD_REQUEST,
            vec!["invalid role name \"app\"".to_owned()]
        )
    );
    app.write_ok(
        "/v1/auth/kubernetes/config",
        json!({"pem_keys": [rsa.public_pem], "issuer": ISSUER}),
    )
    .await;
    app.write_ok("/v1/auth/kubernetes/role/app", app_role())
        .await;

    for (body, message) in [
        (json!({"jwt": jwt}), "missing role"),
        (json!({"role": "", "jwt": jwt}), "missing role"),
        (json!({"role": "app"}), "missing jwt"),
        (
            json!({"role": "nope", "jwt": jwt}),
            "invalid role name \"nope\"",
        ),
        (
            json!({"role": "app", "jwt": jwt, "audience": "x"}),
            "unknown parameters: [audience]",
        ),
    ] {
        let r = app
            .send("POST", "/v1/auth/kubernetes/login", Some(body.clone()), &[])
            .await;
        assert_eq!(
            (r.status, errors(&r)),
            (StatusCode::BAD_REQUEST, vec![message.to_owned()]),
            "{body}"
        );
    }
    let other_key = ec_key(Algorithm::ES256, "other");
    // Far over the 16 KiB cap, under the request size limit.
    let huge = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "A".repeat(512 * 1024));
    for bad in [
        other_key.sign(&projected("prod", "app", UID, &["vault"])),
        rsa.sign(&projected("prod", "app", UID, &["someone-else"])),
        rsa.sign(&projected("dev", "app", UID, &["vault"])),
        "garbage".to_owned(),
        huge,
    ] {
        let r = app.k8s_login("kubernetes", "app", &bad).await;
        assert_eq!(
            (r.status, errors(&r)),
            (StatusCode::FORBIDDEN, vec!["permission denied".to_owned()])
        );
    }
    // A 1 MB JWT does not even reach the method: the body is too large.
    let mega = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "A".repeat(1024 * 1024));
    let r = app.k8s_login("kubernetes", "app", &mega).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = app
        .send("GET", "/v1/auth/kubernetes/login", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn config_and_roles_are_checked_and_the_reviewer_jwt_never_shown() {
    let app = App::dev().await;
    app.enable_kubernetes("kubernetes").await;
    let r = app.root("GET", "/v1/auth/kubernetes/config", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let ca = Pki::new().ca_pem;
    let r = app
        .root(
            "POST",
            "/v1/auth/kubernetes/config",
            Some(json!({"kubernetes_host": "https://10.96.0.1:443",
                "kubernetes_ca_cert": ca, "token_reviewer_jwt": "reviewer-secret",
                "disable_local_ca_jwt": true, "kubernetes_ca_crt": "typo"})),
        )
        .await;
    assert_eq!(errors(&r), vec!["unknown parameters: [kubernetes_ca_crt]"]);
    app.write_ok(
        "/v1/auth/kubernetes/config",
        json!({"kubernetes_host": "https://10.96.0.1:443", "kubernetes_ca_cert": ca,
            "token_reviewer_jwt": "reviewer-secret", "disable_local_ca_jwt": true,
            "use_annotations_as_alias_metadata": false}),
    )
    .await;
    let r = app.root("GET", "/v1/auth/kubernetes/config", None).await;
    let data = &r.body["data"];
    assert_eq!(data["kubernetes_host"], "https://10.96.0.1:443");
    assert_eq!(data["kubernetes_ca_cert"], json!(ca));
    assert_eq!(data["token_reviewer_jwt_set"], true);
    assert_eq!(data["disable_iss_validation"], true);
    assert!(data.get("token_reviewer_jwt").is_none());
    assert!(!r.body.to_string().contains("reviewer-secret"));
    // What a read shows can be written back: the stored JWT stays.
    let shown = data.clone();
    app.write_ok("/v1/auth/kubernetes/config", shown.clone())
        .await;
    let r = app.root("GET", "/v1/auth/kubernetes/config", None).await;
    assert_eq!(r.body["data"], shown);
    let mut without = shown.clone();
    without["token_reviewer_jwt_set"] = json!(false);
    let r = app
        .root("POST", "/v1/auth/kubernetes/config", Some(without))
        .await;
    assert!(
        r.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("system:auth-delegator"),
        "{:?}",
        r.body
    );
    let r = app.root("GET", "/v1/auth/kubernetes/config", None).await;
    assert_eq!(r.body["data"]["token_reviewer_jwt_set"], false);

    let r = app
        .root(
            "POST",
            "/v1/auth/kubernetes/role/web",
            Some(json!({"bound_service_account_names": "web"})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["\"bound_service_account_namespaces\" can not be empty"]
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/kubernetes/role/web",
            Some(json!({"bound_service_account_names": "web",
                "bound_service_account_namespaces": "prod"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "a warning, not a failure");
    assert!(
        r.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no audience")
    );
    // An update changes only what it names.
    app.write_ok(
        "/v1/auth/kubernetes/role/web",
        // Empty settings secretd lacks are accepted, as Terraform sends them.
        json!({"audience": "vault", "policies": "web", "token_bound_cidrs": [],
            "bound_service_account_namespace_selector": ""}),
    )
    .await;
    let r = app.root("GET", "/v1/auth/kubernetes/role/web", None).await;
    assert_eq!(
        r.body["data"]["bound_service_account_names"],
        json!(["web"])
    );
    assert_eq!(r.body["data"]["token_policies"], json!(["web"]));
    let r = app.root("GET", "/v1/auth/kubernetes/role/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .root("POST", "/v1/auth/kubernetes/role/a%20b", Some(app_role()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn two_mounts_keep_their_own_config_and_roles() {
    let app = App::dev().await;
    app.policy("app-reader", APP_READER).await;
    app.enable_kubernetes("kubernetes").await;
    app.enable_kubernetes("other-cluster").await;
    let rsa = rsa_key();
    let ec = ec_key(Algorithm::ES256, "ec");
    app.write_ok(
        "/v1/auth/kubernetes/config",
        json!({"pem_keys": [rsa.public_pem], "issuer": ISSUER}),
    )
    .await;
    app.write_ok(
        "/v1/auth/other-cluster/config",
        json!({"pem_keys": [ec.public_pem], "issuer": "https://other.example"}),
    )
    .await;
    app.write_ok("/v1/auth/kubernetes/role/app", app_role())
        .await;
    let mut other_role = app_role();
    other_role["bound_service_account_names"] = json!("worker");
    app.write_ok("/v1/auth/other-cluster/role/worker", other_role)
        .await;

    let here = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    let mut claims = projected("prod", "worker", UID, &["vault"]);
    claims["iss"] = json!("https://other.example");
    let there = ec.sign(&claims);
    assert_eq!(
        app.k8s_login("kubernetes", "app", &here).await.status,
        StatusCode::OK
    );
    let r = app.k8s_login("other-cluster", "worker", &there).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["metadata"]["service_account_name"], "worker");
    // Neither mount knows the other's roles or trusts its keys.
    let r = app.k8s_login("kubernetes", "worker", &there).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.k8s_login("other-cluster", "app", &here).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut app_there = app_role();
    app_there["bound_service_account_names"] = json!("app");
    app.write_ok("/v1/auth/other-cluster/role/app", app_there)
        .await;
    let r = app.k8s_login("other-cluster", "app", &here).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Disabling one mount leaves the other working.
    let r = app.root("DELETE", "/v1/sys/auth/kubernetes", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.k8s_login("other-cluster", "worker", &there).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn token_review_mode_through_the_api() {
    let app = App::dev().await;
    app.policy("app-reader", APP_READER).await;
    app.enable_kubernetes("kubernetes").await;
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    server.cluster().reviewers.insert("reviewer-1".into());
    app.write_ok(
        "/v1/auth/kubernetes/config",
        json!({"kubernetes_host": server.url, "kubernetes_ca_cert": server.pki.ca_pem,
            "token_reviewer_jwt": "reviewer-1", "disable_local_ca_jwt": true}),
    )
    .await;
    app.write_ok("/v1/auth/kubernetes/role/app", app_role())
        .await;
    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    let r = app.k8s_login("kubernetes", "app", &jwt).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let token = r.body["auth"]["client_token"].as_str().unwrap().to_owned();
    let reviews = server.reviews.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reviews, 1);
    // Renewal does not ask the cluster again.
    let r = app
        .with_token(&token, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(server.reviews.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The service account is deleted: the cluster says no, and so do we.
    server.cluster().accounts.clear();
    let r = app.k8s_login("kubernetes", "app", &jwt).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
