//! The lease manager through the API, with the tests-only `test-leases`
//! engine: leases on dynamic secrets, lookup, renewal under the role's
//! caps, revocation (by id, prefix, token, unmount, expiry), failures that
//! become irrevocable, revoke-force, and the role quota.

use axum::http::StatusCode;
use serde_json::json;

use super::{App, errors};
use crate::engines::test_leases;

impl App {
    /// Mounts a `test-leases` engine at `path/` with role `ro`; answers
    /// the mount's uuid.
    pub(super) async fn lease_engine(&self, path: &str, role: serde_json::Value) -> String {
        let r = self
            .root(
                "POST",
                &format!("/v1/sys/mounts/{path}"),
                Some(json!({"type": "test-leases"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let r = self
            .root("POST", &format!("/v1/{path}/roles/ro"), Some(role))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        self.core.secret_mount(path).unwrap().uuid
    }

    /// Reads credentials as `token`: (lease id, credential).
    pub(super) async fn creds(&self, token: &str, path: &str) -> (String, String) {
        let r = self
            .with_token(token, "GET", &format!("/v1/{path}/creds/ro"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        (
            r.body["lease_id"].as_str().unwrap().to_owned(),
            r.body["data"]["username"].as_str().unwrap().to_owned(),
        )
    }
}

const ROOT: &str = super::ROOT;

#[tokio::test]
async fn a_lease_is_looked_up_renewed_under_its_caps_and_revoked() {
    let app = App::dev().await;
    let mount = app
        .lease_engine("dyn", json!({"ttl": "1h", "max_ttl": "2h"}))
        .await;
    let r = app.root("GET", "/v1/dyn/creds/ro", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["lease_id"].as_str().unwrap().to_owned();
    let credential = r.body["data"]["username"].as_str().unwrap().to_owned();
    let random = id.strip_prefix("dyn/creds/ro/").expect("<path>/<random>");
    assert_eq!(random.len(), 24);
    assert_eq!(r.body["lease_duration"], 3600);
    assert_eq!(r.body["renewable"], true);
    assert!(test_leases::live(&mount).contains(&credential));

    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/lookup",
            Some(json!({"lease_id": id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let data = &r.body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["renewable"], true);
    assert_eq!(data["last_renewal"], json!(null));
    assert!(data["ttl"].as_u64().unwrap() > 3590);
    assert!(data["issue_time"].as_str().unwrap().ends_with('Z'));

    // Renewal: an increment from now, capped by the role's max with
    // Vault's warning; the backend hears of the new expiry.
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/renew",
            Some(json!({"lease_id": id, "increment": 600})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["lease_id"].as_str(), &r.body["lease_duration"]),
        (Some(id.as_str()), &json!(600))
    );
    assert!(test_leases::renewed_to(&credential).is_some());
    let r = app
        .root(
            "PUT",
            &format!("/v1/sys/leases/renew/{id}"),
            Some(json!({"increment": "5h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let capped = r.body["lease_duration"].as_u64().unwrap();
    assert!((7190..=7200).contains(&capped), "{capped}");
    assert!(r.body["warnings"][0].as_str().unwrap().contains("capped"));

    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/renew",
            Some(json!({"lease_id": "dyn/creds/ro/nope"})),
        )
        .await;
    assert_eq!(errors(&r), vec!["lease not found"]);
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/renew",
            Some(json!({"lease_id": "auth/token/create/x"})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["tokens cannot be renewed through this endpoint"]
    );

    // LIST folds ids below a prefix; it needs sudo.
    let r = app
        .root("LIST", "/v1/sys/leases/lookup/dyn/creds/", None)
        .await;
    assert_eq!(r.body["data"]["keys"], json!(["ro/"]));
    let r = app
        .root("LIST", "/v1/sys/leases/lookup/dyn/creds/ro/", None)
        .await;
    assert_eq!(r.body["data"]["keys"], json!([random]));

    // Revoking: the backend takes the credential back, the lease is gone.
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!test_leases::live(&mount).contains(&credential));
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/lookup",
            Some(json!({"lease_id": id})),
        )
        .await;
    assert_eq!(errors(&r), vec!["invalid lease"]);
    let r = app
        .root(
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": id})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "revoking what is gone is fine"
    );
    let r = app
        .root("PUT", "/v1/sys/leases/revoke", Some(json!({})))
        .await;
    assert_eq!(errors(&r), vec!["lease_id must be specified"]);
}

#[tokio::test]
async fn leases_die_with_their_token_their_prefix_their_mount_and_their_ttl() {
    let app = App::dev().await;
    let mount = app.lease_engine("dyn", json!({"ttl": "1h"})).await;
    app.policy("creds", r#"path "dyn/creds/*" { capabilities = ["read"] }"#)
        .await;
    let token = app.token(ROOT, json!({"policies": ["creds"]})).await;
    let (_, of_token) = app.creds(&token, "dyn").await;
    let (_, of_root) = app.creds(ROOT, "dyn").await;

    // Revoking a token revokes its leases (the cleanup makes them due,
    // the expiry worker revokes them).
    let r = app
        .root(
            "PUT",
            "/v1/auth/token/revoke",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.core.clean_up_tokens().await.unwrap();
    app.core.expire_due_leases().await.unwrap();
    assert!(!test_leases::live(&mount).contains(&of_token));
    assert!(test_leases::live(&mount).contains(&of_root));

    // revoke-prefix needs sudo, then revokes everything below it.
    app.policy(
        "leases",
        r#"path "sys/leases/*" { capabilities = ["update"] }"#,
    )
    .await;
    let operator = app.token(ROOT, json!({"policies": ["leases"]})).await;
    let r = app
        .with_token(
            &operator,
            "PUT",
            "/v1/sys/leases/revoke-prefix/dyn/creds",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, second) = app.creds(ROOT, "dyn").await;
    let r = app
        .root("PUT", "/v1/sys/leases/revoke-prefix/dyn/creds", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        test_leases::live(&mount).is_empty(),
        "{:?}",
        test_leases::live(&mount)
    );
    assert_eq!(test_leases::revocations(&second), 1);

    // Expiry: a lease of one second is revoked once it is due.
    let r = app
        .root("POST", "/v1/dyn/roles/ro", Some(json!({"ttl": 1})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, short) = app.creds(ROOT, "dyn").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(app.core.expire_due_leases().await.unwrap() >= 1);
    assert!(!test_leases::live(&mount).contains(&short));
    assert_eq!(test_leases::revocations(&short), 1, "revoked exactly once");

    // Unmounting revokes the mount's leases first.
    let r = app
        .root("POST", "/v1/dyn/roles/ro", Some(json!({"ttl": "1h"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, last) = app.creds(ROOT, "dyn").await;
    let r = app.root("DELETE", "/v1/sys/mounts/dyn", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!test_leases::live(&mount).contains(&last));
}

#[tokio::test]
async fn failed_revocations_become_irrevocable_until_forced() {
    let app = App::dev().await;
    let mount = app.lease_engine("dyn", json!({"ttl": "1h"})).await;
    let (id, credential) = app.creds(ROOT, "dyn").await;
    let r = app
        .root("POST", "/v1/dyn/fail", Some(json!({"count": 100})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for attempt in 1..=crate::core::leases::MAX_ATTEMPTS {
        let r = app
            .root(
                "PUT",
                "/v1/sys/leases/revoke",
                Some(json!({"lease_id": id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "attempt {attempt}");
        assert!(errors(&r)[0].contains("the test backend refuses to revoke"));
    }
    let r = app
        .root("GET", "/v1/sys/leases/count?type=irrevocable", None)
        .await;
    assert_eq!(r.body["data"]["lease_count"], 1, "{:?}", r.body);
    let r = app
        .root("GET", "/v1/sys/leases?type=irrevocable", None)
        .await;
    assert_eq!(r.body["data"]["leases"][0]["lease_id"], id.as_str());
    assert_eq!(
        r.body["data"]["leases"][0]["error"],
        "the test backend refuses to revoke"
    );
    let r = app.root("GET", "/v1/sys/leases/count", None).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "only type=irrevocable, as OpenBao"
    );
    // The worker leaves it alone, and an unmount will not forget it.
    app.core.expire_due_leases().await.unwrap();
    assert!(test_leases::live(&mount).contains(&credential));
    let r = app.root("DELETE", "/v1/sys/mounts/dyn", None).await;
    assert_eq!(errors(&r).len(), 1, "{:?}", r.body);
    assert!(errors(&r)[0].contains("irrevocable"), "{:?}", errors(&r));
    // revoke-force is the explicit way: the lease is forgotten, the
    // credential is not revoked (the operator cleans it up by hand).
    let r = app
        .root("PUT", &format!("/v1/sys/leases/revoke-force/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("DELETE", "/v1/sys/mounts/dyn", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(test_leases::live(&mount).contains(&credential));

    // A revocation that fails during an unmount blocks it too.
    let mount = app.lease_engine("dyn2", json!({"ttl": "1h"})).await;
    let (_, credential) = app.creds(ROOT, "dyn2").await;
    let r = app
        .root("POST", "/v1/dyn2/fail", Some(json!({"count": 1})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("DELETE", "/v1/sys/mounts/dyn2", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(errors(&r)[0].contains("revoke-force"), "{:?}", errors(&r));
    // The next try (the lease's retry time set aside) succeeds.
    let r = app
        .root("PUT", "/v1/sys/leases/revoke-prefix/dyn2", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        test_leases::live(&mount).is_empty(),
        "{credential} lives on"
    );
    let r = app.root("DELETE", "/v1/sys/mounts/dyn2", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
}

#[tokio::test]
async fn a_role_quota_answers_429_and_takes_back_the_extra_secret() {
    let app = App::dev().await;
    let mount = app
        .lease_engine("dyn", json!({"ttl": "1h", "max_leases": 2}))
        .await;
    app.creds(ROOT, "dyn").await;
    app.creds(ROOT, "dyn").await;
    let r = app.root("GET", "/v1/dyn/creds/ro", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(errors(&r)[0].contains("max_leases"), "{:?}", errors(&r));
    assert_eq!(
        test_leases::live(&mount).len(),
        2,
        "the refused secret was taken back"
    );
}
