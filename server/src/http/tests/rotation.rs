//! `sys/rotate/config`: the key-encryption key rotated on a schedule.

use axum::http::StatusCode;
use serde_json::json;

use super::{App, errors};

async fn term(app: &App) -> u64 {
    let r = app.root("GET", "/v1/sys/key-status", None).await;
    r.body["data"]["term"].as_u64().unwrap()
}

#[tokio::test]
async fn the_key_is_rotated_by_use_and_the_config_follows_vault() {
    let app = App::dev().await;
    let r = app.root("GET", "/v1/sys/rotate/config", None).await;
    assert_eq!(
        r.body["data"],
        json!({"enabled": true, "interval": 0, "max_operations": 3_865_470_566u64})
    );
    let r = app
        .root(
            "POST",
            "/v1/sys/rotate/config",
            Some(json!({"interval": "1h"})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["interval must be greater or equal to 24h0m0s"]
    );
    let r = app
        .root(
            "POST",
            "/v1/sys/rotate/config",
            Some(json!({"intervall": "48h"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a misspelt setting is refused"
    );

    let r = app
        .root(
            "POST",
            "/v1/secret/data/a",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let before = term(&app).await;
    // Nothing is due by default.
    app.core.run_due_jobs().await.unwrap();
    assert_eq!(term(&app).await, before);
    // One data key on the active term reaches a maximum of one.
    let r = app
        .root(
            "POST",
            "/v1/sys/rotate/config",
            Some(json!({"max_operations": 1, "interval": "48h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.root("GET", "/v1/sys/rotate/config", None).await;
    assert_eq!(r.body["data"]["interval"], "48h0m0s");
    assert!(app.core.run_due_jobs().await.unwrap() >= 1);
    assert_eq!(term(&app).await, before + 1);
    // Disabled: no rotation, however used.
    let r = app
        .root(
            "POST",
            "/v1/sys/rotate/config",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.core.run_due_jobs().await.unwrap();
    assert_eq!(term(&app).await, before + 1);
}
