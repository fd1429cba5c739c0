//! `auth/ldap` through the API against a real slapd: config, local groups
//! and users, logins whose tokens read what their groups' policies allow,
//! and renewal that re-checks the directory.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{App, errors};
use crate::auth::ldap::slapd::{self, Slapd};

const DEV_READ: &str = r#"
path "secret/data/dev/*" {
  capabilities = ["read"]
}
"#;

const OPS_READ: &str = r#"
path "secret/data/ops/*" {
  capabilities = ["read"]
}
"#;

const BINDPASS: &str = slapd::READER_PASSWORD;

/// A dev server with `auth/ldap` enabled and configured for `server`
/// (search-then-bind as the reader), two policies and two secrets.
async fn app_with_ldap(server: &Slapd) -> App {
    let app = App::dev().await;
    let r = app
        .root("POST", "/v1/sys/auth/ldap", Some(json!({"type": "ldap"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    configure(&app, json!({})).await;
    app.policy("dev-read", DEV_READ).await;
    app.policy("ops-read", OPS_READ).await;
    for path in ["dev/app", "ops/app"] {
        let r = app
            .root(
                "POST",
                &format!("/v1/secret/data/{path}"),
                Some(json!({"data": {"k": path}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let url = server.url();
    configure(
        &app,
        json!({
            "url": url,
            "binddn": slapd::READER_DN,
            "bindpass": BINDPASS,
            "userdn": slapd::PEOPLE,
            "userattr": "uid",
            "groupdn": slapd::GROUPS,
        }),
    )
    .await;
    app
}

async fn configure(app: &App, body: Value) {
    let r = app.root("POST", "/v1/auth/ldap/config", Some(body)).await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

async fn write(app: &App, path: &str, body: Value) {
    let r = app
        .root("POST", &format!("/v1/auth/ldap/{path}"), Some(body))
        .await;
    assert!(r.status.is_success(), "{path}: {:?}", r.body);
}

async fn login(app: &App, user: &str, password: &str) -> super::Reply {
    app.send(
        "POST",
        &format!("/v1/auth/ldap/login/{user}"),
        Some(json!({ "password": password })),
        &[],
    )
    .await
}

/// Logs in and answers the token, checking the login's answer.
async fn token(app: &App, user: &str, password: &str) -> (String, Value) {
    let r = login(app, user, password).await;
    assert_eq!(r.status, StatusCode::OK, "{user}: {:?}", r.body);
    let auth = r.body["auth"].clone();
    (auth["client_token"].as_str().unwrap().to_owned(), r.body)
}

async fn read_status(app: &App, token: &str, path: &str) -> StatusCode {
    app.with_token(token, "GET", &format!("/v1/secret/data/{path}"), None)
        .await
        .status
}

#[tokio::test]
async fn config_groups_and_users_are_managed_like_vaults() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    let r = app.root("GET", "/v1/auth/ldap/config", None).await;
    let data = &r.body["data"];
    assert_eq!(data["binddn"], slapd::READER_DN);
    assert_eq!(data["userattr"], "uid");
    assert_eq!(data["deny_null_bind"], true);
    assert_eq!(data["request_timeout"], 90);
    assert!(data.get("bindpass").is_none(), "{data}");
    assert!(
        !r.raw
            .windows(BINDPASS.len())
            .any(|w| w == BINDPASS.as_bytes())
    );
    // What a read shows can be written back as it is (and keeps bindpass).
    let r = app
        .root("POST", "/v1/auth/ldap/config", Some(data.clone()))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let (_, body) = token(&app, "alice", "alice-password").await;
    assert_eq!(body["auth"]["metadata"]["username"], "alice");

    write(
        &app,
        "groups/Devs",
        json!({"policies": "dev-read, Ops-Read"}),
    )
    .await;
    let r = app.root("GET", "/v1/auth/ldap/groups/devs", None).await;
    assert_eq!(
        r.body["data"],
        json!({"policies": ["dev-read", "ops-read"]})
    );
    write(
        &app,
        "users/Alice",
        json!({"policies": ["x"], "groups": "Admins,devs"}),
    )
    .await;
    let r = app.root("GET", "/v1/auth/ldap/users/alice", None).await;
    assert_eq!(
        r.body["data"],
        json!({"groups": "admins,devs", "policies": ["x"]}),
        "groups is a CSV string, policies a list"
    );
    let r = app.root("LIST", "/v1/auth/ldap/groups", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["devs"]));
    let r = app.root("LIST", "/v1/auth/ldap/users", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["alice"]));
    let r = app.root("DELETE", "/v1/auth/ldap/users/alice", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/auth/ldap/users/alice", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.root("LIST", "/v1/auth/ldap/users", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .root(
            "POST",
            "/v1/auth/ldap/config",
            Some(json!({"userfilter": "(uid={{.User}})"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        errors(&r)[0].contains("unknown placeholder"),
        "{:?}",
        r.body
    );
    // A second mount has its own config and groups.
    let r = app
        .root("POST", "/v1/sys/auth/corp", Some(json!({"type": "ldap"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.root("GET", "/v1/auth/corp/config", None).await;
    assert_eq!(r.body["data"]["url"], "ldap://127.0.0.1");
    let r = app.root("LIST", "/v1/auth/corp/groups", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .send(
            "POST",
            "/v1/auth/corp/login/alice",
            Some(json!({"password": "alice-password"})),
            &[],
        )
        .await;
    assert_eq!(errors(&r), ["ldap backend not configured"]);
    // Unknown config fields are refused, not ignored.
    let r = app
        .root(
            "POST",
            "/v1/auth/corp/config",
            Some(json!({"startls": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(errors(&r), ["unknown parameters: [startls]"]);

    // Config and local entries are not for just anyone.
    let other = app
        .token(super::ROOT, json!({"policies": ["dev-read"]}))
        .await;
    let r = app
        .with_token(&other, "GET", "/v1/auth/ldap/config", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_bind_password_is_sealed_at_rest() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    let path = app._db.url.strip_prefix("sqlite://").unwrap().to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes
                    .windows(BINDPASS.len())
                    .any(|w| w == BINDPASS.as_bytes()),
                "the bind password is in {file} in clear"
            );
        }
    }
}

#[tokio::test]
async fn login_tokens_read_what_their_groups_allow() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    write(&app, "groups/devs", json!({"policies": "dev-read"})).await;
    write(&app, "groups/ops", json!({"policies": "ops-read"})).await;

    // alice: devs by `member`.
    let (alice, body) = token(&app, "alice", "alice-password").await;
    let auth = &body["auth"];
    assert_eq!(auth["policies"], json!(["default", "dev-read"]));
    assert_eq!(auth["metadata"], json!({"username": "alice"}));
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], true);
    assert_eq!(read_status(&app, &alice, "dev/app").await, StatusCode::OK);
    assert_eq!(
        read_status(&app, &alice, "ops/app").await,
        StatusCode::FORBIDDEN
    );
    let r = app
        .with_token(&alice, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(r.body["data"]["display_name"], "ldap-alice");
    assert_eq!(r.body["data"]["path"], "auth/ldap/login/alice");

    // bob: ops by `memberUid`.
    let (bob, _) = token(&app, "bob", "bob-password").await;
    assert_eq!(read_status(&app, &bob, "ops/app").await, StatusCode::OK);
    assert_eq!(
        read_status(&app, &bob, "dev/app").await,
        StatusCode::FORBIDDEN
    );

    // carol: no mapped LDAP group, but local groups and policies.
    let (carol, _) = token(&app, "carol", "carol-password").await;
    assert_eq!(
        read_status(&app, &carol, "dev/app").await,
        StatusCode::FORBIDDEN
    );
    write(
        &app,
        "users/carol",
        json!({"groups": "devs", "policies": "ops-read"}),
    )
    .await;
    let (carol, body) = token(&app, "carol", "carol-password").await;
    assert_eq!(
        body["auth"]["policies"],
        json!(["default", "dev-read", "ops-read"])
    );
    assert_eq!(read_status(&app, &carol, "dev/app").await, StatusCode::OK);

    // token_policies are added to everyone's.
    configure(&app, json!({"token_policies": "ops-read"})).await;
    let (alice, _) = token(&app, "alice", "alice-password").await;
    assert_eq!(read_status(&app, &alice, "ops/app").await, StatusCode::OK);

    // Users with no LDAP group get a warning.
    configure(&app, json!({"groupdn": "ou=service,dc=example,dc=org"})).await;
    let (_, body) = token(&app, "alice", "alice-password").await;
    assert_eq!(
        body["warnings"],
        json!([
            "no LDAP groups found in groupDN \"ou=service,dc=example,dc=org\"; \
             only policies from locally-defined groups available"
        ])
    );
}

#[tokio::test]
async fn bad_credentials_and_injections_are_refused_with_400() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    write(&app, "groups/devs", json!({"policies": "dev-read"})).await;
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-password"),
        ("%2A", "alice-password"),
        ("%29%28uid%3D%2A%29", "alice-password"),
        ("admin%29%28%7C%28uid%3D%2A", "admin-password"),
        ("%2A%29%28objectClass%3D%2A", "alice-password"),
        ("%5C", "alice-password"),
    ] {
        let r = login(&app, user, password).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{user}: {:?}", r.body);
        assert_eq!(
            errors(&r),
            ["ldap operation failed: failed to bind as user"],
            "{user}"
        );
    }
    let r = login(&app, "alice", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        errors(&r),
        ["password cannot be of zero length when passwordless binds are being denied"]
    );
    let r = app
        .send("POST", "/v1/auth/ldap/login/alice", Some(json!({})), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // With deny_null_bind off an empty password still does not log in:
    // slapd refuses the unauthenticated bind it would be.
    configure(&app, json!({"deny_null_bind": false})).await;
    let r = login(&app, "alice", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
}

#[tokio::test]
async fn local_names_follow_case_sensitive_names() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    // The directory says "Admins"; the local group is written "ADMINS"
    // and stored as "admins".
    write(&app, "groups/ADMINS", json!({"policies": "ops-read"})).await;
    let (carol, body) = token(&app, "CAROL", "carol-password").await;
    assert_eq!(body["auth"]["metadata"]["username"], "carol");
    assert_eq!(read_status(&app, &carol, "ops/app").await, StatusCode::OK);

    configure(&app, json!({"case_sensitive_names": true})).await;
    let (carol, _) = token(&app, "carol", "carol-password").await;
    assert_eq!(
        read_status(&app, &carol, "ops/app").await,
        StatusCode::FORBIDDEN,
        "\"admins\" no longer matches \"Admins\""
    );
    write(&app, "groups/Admins", json!({"policies": "ops-read"})).await;
    let r = app.root("LIST", "/v1/auth/ldap/groups", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["Admins", "admins"]));
    let (carol, _) = token(&app, "carol", "carol-password").await;
    assert_eq!(read_status(&app, &carol, "ops/app").await, StatusCode::OK);
}

#[tokio::test]
async fn renewal_rechecks_the_password_and_the_groups() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let app = app_with_ldap(&server).await;
    // staff has other members, so alice can leave it.
    write(&app, "groups/staff", json!({"policies": "dev-read"})).await;
    configure(&app, json!({"token_ttl": "1h", "token_max_ttl": "4h"})).await;
    let renew = |token: String| {
        let app = &app;
        async move {
            app.with_token(&token, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
                .await
        }
    };

    let (alice, body) = token(&app, "alice", "alice-password").await;
    assert_eq!(body["auth"]["lease_duration"], 3600);
    let r = renew(alice.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["lease_duration"], 3600);

    // A new password in the directory: the old one no longer renews.
    server.set_password("alice", "alice-new-password").await;
    let r = renew(alice.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(
        errors(&r),
        ["ldap operation failed: failed to bind as user"]
    );

    // Out of a mapped group: the policies differ, so no renewal.
    let (alice, _) = token(&app, "alice", "alice-new-password").await;
    assert_eq!(renew(alice.clone()).await.status, StatusCode::OK);
    server.remove_member("staff", "alice").await;
    let r = renew(alice.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(errors(&r), ["policies have changed, not renewing"]);
    // Back in the group: the same policies, renewal works again.
    server.add_member("staff", "alice").await;
    assert_eq!(renew(alice.clone()).await.status, StatusCode::OK);
    // A local change of policies counts the same.
    write(
        &app,
        "groups/staff",
        json!({"policies": "dev-read,ops-read"}),
    )
    .await;
    let r = renew(alice).await;
    assert_eq!(errors(&r), ["policies have changed, not renewing"]);
}
