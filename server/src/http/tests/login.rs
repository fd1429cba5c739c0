//! What core does for every auth method, through the API, with the
//! tests-only `test-login` method: logins without a token, the token they
//! issue, renewal through the method, sealed records, disabling.

use axum::http::StatusCode;
use serde_json::json;

use super::{App, errors};

const PASSWORD: &str = "right-horse-battery-staple";

const READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

impl App {
    async fn enable_test_method(&self, path: &str) {
        let r = self
            .root(
                "POST",
                &format!("/v1/sys/auth/{path}"),
                Some(json!({"type": "test-login"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }

    async fn test_login(&self, mount: &str, password: &str, policy: &str) -> super::Reply {
        self.send(
            "POST",
            &format!("/v1/auth/{mount}/login"),
            Some(json!({"user": "alice", "password": password, "policy": policy})),
            &[],
        )
        .await
    }
}

#[tokio::test]
async fn a_login_issues_a_token_its_method_renews() {
    let app = App::dev().await;
    app.policy("reader", READER).await;
    app.enable_test_method("test").await;
    let r = app.root("GET", "/v1/sys/auth", None).await;
    assert_eq!(r.body["data"]["test/"]["type"], "test-login");

    let r = app
        .root("POST", "/v1/auth/test/config", Some(json!({"ttl": "90s"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .root("POST", "/v1/auth/test/config", Some(json!({"tll": "90s"})))
        .await;
    assert_eq!(errors(&r), vec!["unknown parameters: [tll]"]);

    // A wrong password: 403, and no token is needed to try.
    let r = app.test_login("test", "wrong", "reader").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app.test_login("test", PASSWORD, "reader").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let auth = &r.body["auth"];
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["token_policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"], json!({"user": "alice"}));
    assert_eq!(auth["lease_duration"], 90);
    assert_eq!(
        (&auth["renewable"], &auth["orphan"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(auth["token_type"], "service");
    let token = auth["client_token"].as_str().unwrap().to_owned();

    // A token sent along with a login is ignored, even a bad one.
    let r = app
        .send(
            "POST",
            "/v1/auth/test/login",
            Some(json!({"password": PASSWORD, "policy": "reader"})),
            &[("X-Vault-Token", "hvs.not-a-token")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // The token does what its policy says, and no more.
    let r = app
        .root(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .with_token(&token, "GET", "/v1/secret/data/app/db", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .with_token(&token, "GET", "/v1/auth/test/config", None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "config is not a login path"
    );
    let r = app
        .with_token(&token, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    let data = &r.body["data"];
    assert_eq!(data["path"], "auth/test/login");
    assert_eq!(data["display_name"], "test-alice");
    assert_eq!(data["meta"], json!({"user": "alice"}));
    assert_eq!(data["orphan"], true);

    // Renewal goes through the method, which keeps its secret sealed.
    let r = app
        .with_token(
            &token,
            "PUT",
            "/v1/auth/token/renew-self",
            Some(json!({"increment": 30})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["lease_duration"], 30);
    let r = app
        .root(
            "POST",
            "/v1/auth/test/config",
            Some(json!({"deny_renewal": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .with_token(&token, "PUT", "/v1/auth/token/renew-self", None)
        .await;
    assert_eq!(errors(&r), vec!["renewal denied by the test method"]);
    let r = app
        .root(
            "POST",
            "/v1/auth/token/renew",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "root renews through the method too"
    );

    // No auth method hands out root.
    let r = app.test_login("test", PASSWORD, "root").await;
    assert_eq!(errors(&r), vec!["auth methods cannot create root tokens"]);

    // Nothing the login kept or the method stored is on disk in clear.
    let path = app._db.url.trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "the password is in {file} in clear"
            );
        }
    }

    // Disabling the method revokes its tokens at once and drops its records.
    let r = app.root("DELETE", "/v1/sys/auth/test", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .with_token(&token, "GET", "/v1/secret/data/app/db", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.enable_test_method("test").await;
    let r = app.root("GET", "/v1/auth/test/config", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mounts_of_one_method_are_independent() {
    let app = App::dev().await;
    app.enable_test_method("one").await;
    app.enable_test_method("two").await;
    let r = app
        .root("POST", "/v1/auth/one/config", Some(json!({"ttl": 100})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.test_login("one", PASSWORD, "reader").await;
    assert_eq!(r.body["auth"]["lease_duration"], 100);
    let r = app.test_login("two", PASSWORD, "reader").await;
    assert_eq!(r.body["auth"]["lease_duration"], 60);
    let r = app.root("GET", "/v1/auth/two/config", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The mount's TTLs cap the method's.
    let r = app
        .root(
            "POST",
            "/v1/sys/auth/one/tune",
            Some(json!({"max_lease_ttl": "50s"})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = app.test_login("one", PASSWORD, "reader").await;
    assert_eq!(r.body["auth"]["lease_duration"], 50, "{:?}", r.body);

    // Types that do not exist, and the token method, are refused.
    let r = app
        .root("POST", "/v1/sys/auth/x", Some(json!({"type": "nope"})))
        .await;
    assert_eq!(errors(&r), vec!["unknown auth method type: nope"]);
    let r = app
        .root(
            "POST",
            "/v1/sys/auth/one",
            Some(json!({"type": "test-login"})),
        )
        .await;
    assert_eq!(errors(&r), vec!["path is already in use at auth/one/"]);
}
