//! `sys/metrics` through the API: who may read it, the text it answers,
//! and that the requests, logins and leases before it show up in it by
//! mount, method and role, and nothing secret does.

use axum::http::StatusCode;
use serde_json::json;

use super::{App, ROOT, errors};

impl App {
    /// `GET sys/metrics?format=prometheus` as `token`: the text.
    async fn metrics_text(&self, token: &str) -> String {
        let r = self
            .with_token(token, "GET", "/v1/sys/metrics?format=prometheus", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(
            r.headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        String::from_utf8(r.raw).unwrap()
    }
}

/// The value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_need_read_on_sys_metrics() {
    let app = App::dev().await;
    let plain = app.token(ROOT, json!({"policies": ["default"]})).await;
    let r = app
        .with_token(&plain, "GET", "/v1/sys/metrics?format=prometheus", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = app
        .send("GET", "/v1/sys/metrics?format=prometheus", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");

    app.policy(
        "scraper",
        r#"path "sys/metrics" { capabilities = ["read"] }"#,
    )
    .await;
    let scraper = app.token(ROOT, json!({"policies": ["scraper"]})).await;
    let text = app.metrics_text(&scraper).await;
    assert!(text.contains("# TYPE secretd_sealed gauge\nsecretd_sealed 0\n"));
    assert_eq!(value(&text, "secretd_initialized"), Some(1.0));

    // Vault's JSON dump is not served; a clear 400 says what is.
    let r = app.root("GET", "/v1/sys/metrics", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(errors(&r)[0].contains("?format=prometheus"), "{:?}", r.body);
    let r = app.root("GET", "/v1/sys/metrics?format=json", None).await;
    assert_eq!(errors(&r), vec![r#"metric response format "json" unknown"#]);
}

#[tokio::test]
async fn requests_logins_and_leases_show_up_by_mount_and_nothing_secret_does() {
    const VALUE: &str = "s3cret-value-never-in-metrics";
    const PASSWORD: &str = "right-horse-battery-staple";
    let app = App::dev().await;
    let r = app
        .root(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"password": VALUE}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for _ in 0..3 {
        let r = app.root("GET", "/v1/secret/data/app/db", None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = app.root("GET", "/v1/secret/data/app/missing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.root("GET", "/v1/nowhere/at/all", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.send("BREW", "/v1/secret/data/app/db", None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // A failed and a successful login through the test method.
    app.policy(
        "reader",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let r = app
        .root(
            "POST",
            "/v1/sys/auth/test",
            Some(json!({"type": "test-login"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let login = |password: &'static str| {
        let app = &app;
        async move {
            app.send(
                "POST",
                "/v1/auth/test/login",
                Some(json!({"user": "alice", "password": password, "policy": "reader"})),
                &[],
            )
            .await
        }
    };
    assert_eq!(login("wrong").await.status, StatusCode::FORBIDDEN);
    let r = login(PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let user_token = r.body["auth"]["client_token"].as_str().unwrap().to_owned();
    let accessor = r.body["auth"]["accessor"].as_str().unwrap().to_owned();

    // Two leases of role `ro` at dyn/.
    app.lease_engine("dyn", json!({"ttl": "1h"})).await;
    let (lease_a, credential) = app.creds(ROOT, "dyn").await;
    let (lease_b, _) = app.creds(ROOT, "dyn").await;

    let text = app.metrics_text(ROOT).await;
    let reads = r#"secretd_http_requests_total{route="secret/",method="GET",status="200"}"#;
    assert_eq!(value(&text, reads), Some(3.0), "{text}");
    for series in [
        r#"secretd_http_requests_total{route="secret/",method="POST",status="200"}"#,
        r#"secretd_http_requests_total{route="secret/",method="GET",status="404"}"#,
        r#"secretd_http_requests_total{route="unknown",method="GET",status="404"}"#,
        r#"secretd_http_requests_total{route="secret/",method="other",status="405"}"#,
        r#"secretd_http_requests_total{route="auth/test/",method="POST",status="403"}"#,
        r#"secretd_login_failures_total{method="test-login"}"#,
        r#"secretd_logins_total{method="test-login"}"#,
    ] {
        assert_eq!(value(&text, series), Some(1.0), "{series} in\n{text}");
    }
    assert_eq!(
        value(
            &text,
            r#"secretd_http_request_duration_seconds_count{route="secret/"}"#
        ),
        Some(6.0)
    );
    assert_eq!(
        value(&text, r#"secretd_leases{mount="dyn/",role="ro"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, "secretd_lease_expiry_lag_seconds"), Some(0.0));
    assert!(value(&text, "secretd_storage_connections_max").unwrap() >= 1.0);
    assert!(!text.contains("leases_irrevocable{"), "none yet");

    for secret in [
        VALUE,
        PASSWORD,
        ROOT,
        &user_token,
        &accessor,
        &lease_a,
        &lease_b,
        &credential,
        "app/db",
        "nowhere",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the metrics");
    }
}

#[tokio::test]
async fn revocation_failures_count_and_lease_counts_are_cached() {
    let app = App::dev().await;
    app.lease_engine("dyn", json!({"ttl": "1h"})).await;
    let (id, _) = app.creds(ROOT, "dyn").await;
    let leases = r#"secretd_leases{mount="dyn/",role="ro"}"#;
    let failures = r#"secretd_lease_revocation_failures_total{mount="dyn/"}"#;
    let lag = "secretd_lease_expiry_lag_seconds";
    let text = app.metrics_text(ROOT).await;
    assert_eq!(value(&text, leases), Some(1.0));
    assert_eq!(value(&text, failures), None);

    let r = app
        .root("POST", "/v1/dyn/fail", Some(json!({"count": 100})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let revoke = || async {
        let r = app
            .root(
                "PUT",
                "/v1/sys/leases/revoke",
                Some(json!({"lease_id": id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    };
    revoke().await;
    let _ = app.creds(ROOT, "dyn").await;
    // Counters move at once; lease counts are read again only after
    // LEASE_CACHE, so scrapes cannot load the database.
    let text = app.metrics_text(ROOT).await;
    assert_eq!(value(&text, failures), Some(1.0));
    assert_eq!(value(&text, leases), Some(1.0), "cached");
    assert_eq!(value(&text, lag), Some(0.0), "cached");

    // The failed lease is overdue since its claim ended its validity.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.core.metrics().forget_lease_counts().await;
    let text = app.metrics_text(ROOT).await;
    assert_eq!(value(&text, leases), Some(2.0));
    assert!(value(&text, lag).unwrap() >= 0.02, "{text}");

    // Given up on, it is irrevocable: counted as such, and no longer late.
    for _ in 1..crate::core::leases::MAX_ATTEMPTS {
        revoke().await;
    }
    app.core.metrics().forget_lease_counts().await;
    let text = app.metrics_text(ROOT).await;
    let max = f64::from(crate::core::leases::MAX_ATTEMPTS);
    assert_eq!(value(&text, failures), Some(max));
    assert_eq!(
        value(
            &text,
            r#"secretd_leases_irrevocable{mount="dyn/",role="ro"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, lag), Some(0.0));
}
