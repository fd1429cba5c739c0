//! The login check against real keys and an in-test HTTPS API server:
//! local validation (PEM keys, JWKS, OIDC discovery), TokenReview, and
//! every refusal, each with the reason the server logs.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use super::Refusal;
use super::claims::{Jwt, ServiceAccount};
use super::config::Config;
use super::login::authenticate;
use super::role::Role;
use super::testing::{
    API_AUDIENCE, ApiServer, ISSUER, Pki, ec_key, hmac_with_public_key, legacy, projected, rsa_key,
    rsa_key_2, unsigned,
};

const UID: &str = "6a1f0c8e-3b2d-4e5f-8a9b-0c1d2e3f4a5b";

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn config(v: Value) -> Config {
    Config::from_write(None, &object(v)).unwrap().0
}

fn role(v: Value) -> Role {
    Role::update(None, &object(v)).unwrap().0
}

/// A role for `prod/app` tokens meant for `vault`.
fn app_role() -> Role {
    role(json!({
        "bound_service_account_names": "app",
        "bound_service_account_namespaces": ["prod"],
        "audience": "vault",
        "token_policies": "app",
    }))
}

/// A fresh mount id, so JWKS caches of tests never meet.
fn mount() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn login(config: &Config, role: &Role, jwt: &str) -> Result<ServiceAccount, Refusal> {
    login_on(&mount(), config, role, jwt).await
}

async fn login_on(
    mount: &str,
    config: &Config,
    role: &Role,
    jwt: &str,
) -> Result<ServiceAccount, Refusal> {
    let token = Jwt::new(jwt.to_owned())?;
    authenticate(mount, config, role, &token).await
}

/// Refused, for a reason containing `why`, which never repeats the JWT.
async fn refused(config: &Config, role: &Role, jwt: &str, why: &str) {
    refused_on(&mount(), config, role, jwt, why).await;
}

async fn refused_on(mount: &str, config: &Config, role: &Role, jwt: &str, why: &str) {
    match login_on(mount, config, role, jwt).await {
        Ok(account) => panic!("logged in as {account:?}; expected a refusal: {why}"),
        Err(refusal) => {
            let reason = refusal.to_string();
            assert!(reason.contains(why), "{reason:?} does not say {why:?}");
            assert!(
                jwt.len() < 20 || !reason.contains(jwt),
                "the reason repeats the JWT"
            );
        }
    }
}

fn local_pem_config(pems: &[&str]) -> Config {
    config(json!({"pem_keys": pems, "issuer": ISSUER}))
}

#[tokio::test]
async fn local_keys_accept_rsa_and_ec_projected_tokens() {
    let p256 = ec_key(Algorithm::ES256, "p256");
    let p384 = ec_key(Algorithm::ES384, "p384");
    let rsa = rsa_key();
    let config = local_pem_config(&[&rsa.public_pem, &p256.public_pem, &p384.public_pem]);
    let claims = projected("prod", "app", UID, &["vault"]);
    for jwt in [
        rsa.sign(&claims),
        rsa.sign_as(Algorithm::RS512, &claims),
        rsa.sign_as(Algorithm::PS256, &claims),
        p256.sign(&claims),
        p384.sign(&claims),
    ] {
        let account = login(&config, &app_role(), &jwt).await.unwrap();
        assert_eq!(
            (account.namespace.as_str(), account.name.as_str()),
            ("prod", "app")
        );
        assert_eq!(account.uid, UID);
        assert_eq!(account.pod_name, "app-7d9c5b6f4-x2x8q");
    }
}

#[tokio::test]
async fn local_keys_refuse_forgeries_and_bad_claims() {
    let rsa = rsa_key();
    let p256 = ec_key(Algorithm::ES256, "p256");
    let stranger = ec_key(Algorithm::ES256, "p256");
    let config = local_pem_config(&[&rsa.public_pem, &p256.public_pem]);
    let role = app_role();
    let good = projected("prod", "app", UID, &["vault"]);
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in object(patch) {
            claims[k] = v;
        }
        claims
    };
    let now = chrono::Utc::now().timestamp();

    refused(&config, &role, &unsigned(&good), "header").await;
    refused(&config, &role, &hmac_with_public_key(rsa, &good), "HS256").await;
    refused(&config, &role, &stranger.sign(&good), "signature").await;
    // An ES384 header on a P-256 key: the key decides the algorithm.
    let es256 = p256.sign(&good);
    let relabelled = with_header(&es256, &json!({"alg": "ES384", "kid": "p256"}));
    refused(&config, &role, &relabelled, "ES384").await;
    let tampered = {
        let jwt = rsa.sign(&good);
        let parts: Vec<&str> = jwt.split('.').collect();
        let evil = with(json!({"kubernetes.io": {"namespace": "prod",
            "serviceaccount": {"name": "admin", "uid": UID}}, "sub": "system:serviceaccount:prod:admin"}));
        let body = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            evil.to_string(),
        );
        format!("{}.{body}.{}", parts[0], parts[2])
    };
    refused(&config, &role, &tampered, "signature").await;
    refused(
        &config,
        &role,
        &rsa.sign(&with(json!({"aud": ["other"]}))),
        "audience",
    )
    .await;
    refused(
        &config,
        &role,
        &rsa.sign(&with(
            json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}),
        )),
        "expired",
    )
    .await;
    refused(
        &config,
        &role,
        &rsa.sign(&with(json!({"nbf": now + 3600, "exp": now + 7200}))),
        "not valid yet",
    )
    .await;
    refused(
        &config,
        &role,
        &rsa.sign(&with(json!({"iss": "https://evil.example"}))),
        "iss",
    )
    .await;
    // Local-only mode needs an expiry: a legacy token has none.
    let any_audience = role_for("app", "prod");
    refused(
        &config,
        &any_audience,
        &rsa.sign(
            &json!({"iss": ISSUER, "kubernetes.io": {"namespace": "prod",
            "serviceaccount": {"name": "app", "uid": UID}}}),
        ),
        "exp",
    )
    .await;
    for garbage in [
        "abc",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
        "....",
    ] {
        refused(&config, &role, garbage, "").await;
    }
    let huge = format!("{}.{}.sig", "eyJhbGciOiJSUzI1NiJ9", "A".repeat(1024 * 1024));
    refused(&config, &role, &huge, "limit is 16384").await;
}

/// The JWT with another header and the same payload and signature.
fn with_header(jwt: &str, header: &Value) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        header.to_string(),
    );
    format!("{header}.{}.{}", parts[1], parts[2])
}

fn role_for(names: &str, namespaces: &str) -> Role {
    role(json!({
        "bound_service_account_names": names,
        "bound_service_account_namespaces": namespaces,
    }))
}

#[tokio::test]
async fn bound_names_and_namespaces_take_globs() {
    let rsa = rsa_key();
    let config = local_pem_config(&[&rsa.public_pem]);
    let jwt = |ns: &str, name: &str| rsa.sign(&projected(ns, name, UID, &[API_AUDIENCE]));
    for (names, namespaces, ns, name) in [
        ("*", "*", "any", "thing"),
        ("app", "prod", "prod", "app"),
        ("app-*", "team-*-prod", "team-a-prod", "app-web"),
        ("web,app", "dev,prod", "prod", "app"),
    ] {
        login(&config, &role_for(names, namespaces), &jwt(ns, name))
            .await
            .unwrap_or_else(|r| panic!("{names} {namespaces} {ns}/{name}: {r}"));
    }
    let role = role_for("app-*", "team-*");
    refused(
        &config,
        &role,
        &jwt("team-a", "web"),
        "service account name not authorized",
    )
    .await;
    refused(
        &config,
        &role,
        &jwt("prod", "app-web"),
        "namespace not authorized",
    )
    .await;
}

#[tokio::test]
async fn a_jwks_is_fetched_cached_and_refreshed_for_a_new_kid() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    let config = config(json!({
        "jwks_url": format!("{}/openid/v1/jwks", server.url),
        "jwks_ca_pem": server.pki.ca_pem,
        "issuer": ISSUER,
    }));
    let role = app_role();
    let mount = mount();
    let claims = projected("prod", "app", UID, &["vault"]);
    login_on(&mount, &config, &role, &rsa.sign(&claims))
        .await
        .unwrap();
    login_on(&mount, &config, &role, &rsa.sign(&claims))
        .await
        .unwrap();
    assert_eq!(
        server
            .jwks_fetches
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // The issuer rotates: a token with the new kid makes one refresh.
    let next = rsa_key_2();
    server.cluster().jwks.push(next.jwk());
    login_on(&mount, &config, &role, &next.sign(&claims))
        .await
        .unwrap();
    assert_eq!(
        server
            .jwks_fetches
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    // Made-up kids are refused without hammering the issuer.
    for i in 0..20 {
        let jwt = rsa.sign_with_kid(&format!("made-up-{i}"), &claims);
        refused_on(&mount, &config, &role, &jwt, "kid").await;
    }
    let fetches = server
        .jwks_fetches
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(fetches < 20, "{fetches} fetches for 20 unknown kids");
    // The algorithm still comes from the key: HS256 over the JWK is no key.
    refused_on(
        &mount,
        &config,
        &role,
        &hmac_with_public_key(rsa, &claims),
        "HS256",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_issuer_is_not_hammered() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[]).await;
    let config = config(json!({
        "jwks_url": format!("{}/openid/v1/jwks", server.url),
        "jwks_ca_pem": server.pki.ca_pem,
        "issuer": ISSUER,
    }));
    let role = app_role();
    let claims = projected("prod", "app", UID, &["vault"]);
    let (known, fresh) = (mount(), mount());
    login_on(&known, &config, &role, &rsa.sign(&claims))
        .await
        .unwrap();
    server.stop();
    // Keys fetched before still serve; a new kid cannot be looked up.
    login_on(&known, &config, &role, &rsa.sign(&claims))
        .await
        .unwrap();
    let new_kid = rsa.sign_with_kid("rotated", &claims);
    refused_on(&known, &config, &role, &new_kid, "kid").await;
    // A mount with nothing cached fails (and waits before trying again:
    // `jwks::may_retry`).
    refused_on(&fresh, &config, &role, &rsa.sign(&claims), "cannot fetch").await;
    refused_on(
        &fresh,
        &config,
        &role,
        &rsa.sign(&claims),
        "the issuer's keys",
    )
    .await;
    // No fault of the caller's: the login answers 502, not 403.
    let refusal = login_on(&fresh, &config, &role, &rsa.sign(&claims))
        .await
        .unwrap_err();
    assert!(refusal.is_unavailable(), "{refusal}");
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[]).await;
    let discovered = config(json!({
        "oidc_discovery_url": server.url,
        "jwks_ca_pem": server.pki.ca_pem,
        "issuer": server.url,
    }));
    let mut claims = projected("prod", "app", UID, &["vault"]);
    claims["iss"] = json!(server.url);
    login(&discovered, &app_role(), &rsa.sign(&claims))
        .await
        .unwrap();
    // The document must name the configured issuer.
    let other = config(json!({
        "oidc_discovery_url": server.url,
        "jwks_ca_pem": server.pki.ca_pem,
        "issuer": "https://someone.else",
    }));
    refused(&other, &app_role(), &rsa.sign(&claims), "issuer").await;
    // A JWKS behind a certificate the configured CA did not sign.
    let wrong_ca = config(json!({
        "oidc_discovery_url": server.url,
        "jwks_ca_pem": Pki::new().ca_pem,
        "issuer": server.url,
    }));
    refused(&wrong_ca, &app_role(), &rsa.sign(&claims), "cannot fetch").await;
}

fn review_config(server: &ApiServer, extra: Value) -> Config {
    let mut v = json!({
        "kubernetes_host": server.url,
        "kubernetes_ca_cert": server.pki.ca_pem,
        "disable_local_ca_jwt": true,
    });
    for (k, val) in object(extra) {
        v[k] = val;
    }
    config(v)
}

#[tokio::test]
async fn token_review_decides_when_a_host_is_set() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    server.cluster().reviewers.insert("reviewer-1".into());
    let config = review_config(&server, json!({"token_reviewer_jwt": "reviewer-1"}));
    let claims = projected("prod", "app", UID, &["vault"]);
    let account = login(&config, &app_role(), &rsa.sign(&claims))
        .await
        .unwrap();
    assert_eq!(account.uid, UID);

    // Legacy tokens: no audience, no expiry; the cluster vouches for them.
    let legacy_jwt = rsa.sign(&legacy("prod", "app", UID));
    let account = login(&config, &role_for("app", "prod"), &legacy_jwt)
        .await
        .unwrap();
    assert_eq!(account.secret_name, "app-token-x7k2p");
    // Without a role audience, the token's own audience is asked for.
    let api = rsa.sign(&projected("prod", "app", UID, &[API_AUDIENCE]));
    login(&config, &role_for("app", "prod"), &api)
        .await
        .unwrap();

    // authenticated: false with status.error: a key the cluster does not use,
    // a deleted (or recreated) service account.
    let stranger = ec_key(Algorithm::ES256, "x");
    refused(
        &config,
        &app_role(),
        &stranger.sign(&claims),
        "invalid bearer token",
    )
    .await;
    let recreated = rsa.sign(&projected("prod", "app", "old-uid", &["vault"]));
    refused(&config, &app_role(), &recreated, "has been deleted").await;
    // The role's audience is checked before the cluster is asked.
    let before = server.reviews.load(std::sync::atomic::Ordering::SeqCst);
    let other = rsa.sign(&projected("prod", "app", UID, &["other"]));
    refused(&config, &app_role(), &other, "audience").await;
    assert_eq!(
        server.reviews.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    // alg none and garbage get nowhere either.
    refused(&config, &app_role(), &unsigned(&claims), "").await;
    refused(&config, &app_role(), "abc", "").await;

    // HTTP 401: the reviewer token is not (or no longer) valid.
    let stale = review_config(&server, json!({"token_reviewer_jwt": "revoked"}));
    refused(
        &stale,
        &app_role(),
        &rsa.sign(&claims),
        "service account unauthorized",
    )
    .await;
}

#[tokio::test]
async fn an_api_server_that_cannot_be_asked_is_unavailable_not_a_refusal() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    server.cluster().reviewers.insert("reviewer-1".into());
    let config = review_config(&server, json!({"token_reviewer_jwt": "reviewer-1"}));
    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    // A refusal by the cluster is the caller's problem...
    let stale = review_config(&server, json!({"token_reviewer_jwt": "revoked"}));
    let refusal = login(&stale, &app_role(), &jwt).await.unwrap_err();
    assert!(!refusal.is_unavailable(), "{refusal}");
    // ...a cluster that cannot be reached is not.
    server.stop();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let refusal = login(&config, &app_role(), &jwt).await.unwrap_err();
    assert!(refusal.is_unavailable(), "{refusal}");
    assert!(refusal.to_string().contains("TokenReview at"), "{refusal}");
}

#[tokio::test]
async fn without_a_reviewer_the_login_jwt_reviews_itself() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    let config = review_config(&server, json!({}));
    let jwt = rsa.sign(&projected("prod", "app", UID, &[API_AUDIENCE, "vault"]));
    refused(&config, &app_role(), &jwt, "system:auth-delegator").await;
    server.cluster().delegators.insert("prod/app".into());
    login(&config, &app_role(), &jwt).await.unwrap();
}

#[tokio::test]
async fn the_reviewer_token_file_is_read_at_each_login() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    // Projected tokens of secretd's own service account, as kubelet
    // writes them; the cluster accepts the current one only.
    let reviewer = |n: u32| {
        rsa.sign(&projected(
            "secretd",
            &format!("reviewer-{n}"),
            UID,
            &[API_AUDIENCE],
        ))
    };
    let (first, second) = (reviewer(1), reviewer(2));
    server.cluster().reviewers.insert(first.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let config = review_config(
        &server,
        json!({"token_reviewer_jwt_file": file.display().to_string()}),
    );
    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    login(&config, &app_role(), &jwt).await.unwrap();

    // kubelet rotates the token: the old one stops working at once.
    {
        let mut cluster = server.cluster();
        cluster.reviewers.clear();
        cluster.reviewers.insert(second.clone());
    }
    refused(&config, &app_role(), &jwt, "service account unauthorized").await;
    std::fs::write(&file, format!("{second}\n")).unwrap();
    login(&config, &app_role(), &jwt).await.unwrap();
    // Whatever else the file comes to hold is never sent.
    std::fs::write(&file, "not a token\n").unwrap();
    refused(&config, &app_role(), &jwt, "does not hold a JWT").await;
}

#[tokio::test]
async fn token_review_needs_the_right_ca() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    server.cluster().reviewers.insert("reviewer-1".into());
    let mut config = review_config(&server, json!({"token_reviewer_jwt": "reviewer-1"}));
    config.kubernetes_ca_cert = Pki::new().ca_pem;
    let jwt = rsa.sign(&projected("prod", "app", UID, &["vault"]));
    refused(&config, &app_role(), &jwt, "TokenReview at").await;
    assert_eq!(server.reviews.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn pem_keys_and_token_review_both_check() {
    let rsa = rsa_key();
    let server = ApiServer::start(rsa, &[("prod/app", UID)]).await;
    server.cluster().reviewers.insert("reviewer-1".into());
    let config = review_config(
        &server,
        json!({"token_reviewer_jwt": "reviewer-1", "pem_keys": [rsa.public_pem]}),
    );
    let claims = projected("prod", "app", UID, &["vault"]);
    login(&config, &app_role(), &rsa.sign(&claims))
        .await
        .unwrap();
    assert_eq!(server.reviews.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stranger = ec_key(Algorithm::ES256, "x");
    refused(&config, &app_role(), &stranger.sign(&claims), "ES256").await;
    assert_eq!(
        server.reviews.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a bad signature never reaches the cluster"
    );
}

#[test]
fn configs_are_checked_when_written() {
    let write = |v: Value| {
        Config::from_write(None, &object(v))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let rsa_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----";
    for (body, message) in [
        (json!({}), "kubernetes_host is required"),
        (json!({"kubernetes_host": "http://10.0.0.1"}), "https"),
        (
            json!({"kubernetes_host": "https://10.0.0.1", "disable_local_ca_jwt": true}),
            "kubernetes_ca_cert is required",
        ),
        (
            json!({"kubernetes_host": "https://10.0.0.1", "kubernetes_ca_cert": "junk"}),
            "kubernetes_ca_cert",
        ),
        (
            json!({"pem_keys": [rsa_pem], "issuer": ISSUER}),
            "pem_keys[0]",
        ),
        (json!({"jwks_url": "https://x/keys"}), "issuer is required"),
        (
            json!({"jwks_url": "https://x/keys", "issuer": "i", "disable_iss_validation": true}),
            "always checks iss",
        ),
        (
            json!({"jwks_url": "https://x/keys", "oidc_discovery_url": "https://x", "issuer": "i"}),
            "not several",
        ),
        (
            json!({"jwks_url": "https://x/keys", "issuer": "i", "token_reviewer_jwt": "t"}),
            "only used with kubernetes_host",
        ),
        (
            json!({"kubernetes_host": "https://10.0.0.1", "kubernetes_ca_cert": "x", "kubernets_ca_cert": "typo"}),
            "unknown parameters: [kubernets_ca_cert]",
        ),
        (
            json!({"jwks_url": "https://x/keys", "issuer": "i",
            "use_annotations_as_alias_metadata": true}),
            "not supported",
        ),
        (
            json!({"kubernetes_host": "https://h", "kubernetes_ca_cert": Pki::new().ca_pem,
            "token_reviewer_jwt_file": "relative/path"}),
            "absolute",
        ),
    ] {
        let error = write(body.clone());
        assert!(error.contains(message), "{body}: {error:?}");
    }
}

#[test]
fn roles_are_checked_when_written() {
    let write = |v: Value| {
        Role::update(None, &object(v))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    for (body, message) in [
        (
            json!({"bound_service_account_namespaces": "a"}),
            "\"bound_service_account_names\" can not be empty",
        ),
        (
            json!({"bound_service_account_names": "a"}),
            "\"bound_service_account_namespaces\" can not be empty",
        ),
        (
            json!({"bound_service_account_names": "*,a", "bound_service_account_namespaces": "a"}),
            "can not mix",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "a",
            "alias_name_source": "pod"}),
            "alias_name_source",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "a",
            "bound_service_account_namespace_selector": "{}"}),
            "not supported",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "a",
            "bound_service_account_namespace_selector": "", "bound_service_acount_names": "b"}),
            "unknown parameters: [bound_service_acount_names]",
        ),
    ] {
        let error = write(body.clone());
        assert!(error.contains(message), "{body}: {error:?}");
    }
    let (_, warnings) = Role::update(
        None,
        &object(
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b"}),
        ),
    )
    .unwrap();
    assert!(warnings[0].contains("no audience"), "{warnings:?}");
}
