//! Policies, ACL enforcement and the token store, through the API.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{App, ROOT, errors};

const READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
"#;

#[tokio::test]
async fn policies_are_managed_like_vaults() {
    let app = App::dev().await;
    let r = app.root("LIST", "/v1/sys/policies/acl", None).await;
    assert_eq!(r.body["data"]["keys"], json!(["default", "root"]));
    let r = app
        .root(
            "PUT",
            "/v1/sys/policies/acl/Reader",
            Some(json!({"policy": READER})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["policy names are lower case without spaces: use \"reader\""],
        "Vault folds the case; secretd asks for the stored name"
    );
    app.policy("reader", READER).await;
    let r = app.root("GET", "/v1/sys/policies/acl/reader", None).await;
    assert_eq!(r.body["data"]["name"], "reader");
    assert_eq!(r.body["data"]["policy"], READER);
    let r = app.root("GET", "/v1/sys/policy", None).await;
    assert_eq!(
        r.body["data"]["policies"],
        json!(["default", "reader", "root"])
    );
    assert_eq!(
        r.body["keys"],
        json!(["default", "reader", "root"]),
        "legacy answers are injected"
    );
    let r = app.root("GET", "/v1/sys/policy/reader", None).await;
    assert_eq!(r.body["data"]["rules"], READER);
    let r = app.root("GET", "/v1/sys/policies/acl/root", None).await;
    assert_eq!(r.body["data"]["policy"], "");

    for (method, path, body, message) in [
        (
            "DELETE",
            "/v1/sys/policies/acl/default",
            None,
            "cannot delete default policy",
        ),
        (
            "DELETE",
            "/v1/sys/policies/acl/root",
            None,
            "cannot delete \"root\" policy",
        ),
        (
            "PUT",
            "/v1/sys/policies/acl/root",
            Some(json!({"policy": READER})),
            "cannot update \"root\" policy",
        ),
        (
            "PUT",
            "/v1/sys/policies/acl/bad",
            Some(json!({"policy": "path \"a\" { capabilities = [\"reed\"] }"})),
            "reed",
        ),
        (
            "PUT",
            "/v1/sys/policies/acl/bad",
            Some(json!({})),
            "'policy' parameter",
        ),
    ] {
        let r = app.root(method, path, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {path}");
        assert!(
            errors(&r)[0].contains(message),
            "{method} {path}: {:?}",
            errors(&r)
        );
    }
    let r = app.root("GET", "/v1/sys/policies/acl/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .root("DELETE", "/v1/sys/policies/acl/reader", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/sys/policies/acl/reader", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_read_only_token_reads_and_nothing_more() {
    let app = App::dev().await;
    app.root(
        "POST",
        "/v1/secret/data/app/db",
        Some(json!({"data": {"p": "x"}})),
    )
    .await;
    app.root(
        "POST",
        "/v1/secret/data/other",
        Some(json!({"data": {"p": "y"}})),
    )
    .await;
    app.root(
        "POST",
        "/v1/sys/mounts/other",
        Some(json!({"type": "kv-v2"})),
    )
    .await;
    app.policy("reader", READER).await;
    let token = app.token(ROOT, json!({"policies": ["reader"]})).await;
    let call = |method: &'static str, path: &'static str, body: Option<Value>| {
        let (app, token) = (&app, token.clone());
        async move { app.with_token(&token, method, path, body).await.status }
    };
    assert_eq!(
        call("GET", "/v1/secret/data/app/db", None).await,
        StatusCode::OK
    );
    assert_eq!(
        call("LIST", "/v1/secret/metadata/app/", None).await,
        StatusCode::OK
    );
    for (method, path, body) in [
        ("POST", "/v1/secret/data/app/db", Some(json!({"data": {}}))),
        ("DELETE", "/v1/secret/data/app/db", None),
        ("GET", "/v1/secret/data/other", None),
        ("LIST", "/v1/secret/metadata/", None),
        ("GET", "/v1/secret/metadata/app/db", None),
        ("GET", "/v1/sys/mounts", None),
        ("POST", "/v1/sys/mounts/x", Some(json!({"type": "kv-v2"}))),
        ("LIST", "/v1/sys/policies/acl", None),
        ("POST", "/v1/auth/token/create", Some(json!({}))),
        ("GET", "/v1/nothing/here", None),
    ] {
        assert_eq!(
            call(method, path, body).await,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    // The default policy: a token may look itself up and check its capabilities.
    assert_eq!(
        call("GET", "/v1/auth/token/lookup-self", None).await,
        StatusCode::OK
    );
    let r = app
        .with_token(
            &token,
            "POST",
            "/v1/sys/capabilities-self",
            Some(json!({"paths": ["secret/data/app/db", "sys/mounts"]})),
        )
        .await;
    assert_eq!(r.body["data"]["secret/data/app/db"], json!(["read"]));
    assert_eq!(r.body["data"]["sys/mounts"], json!(["deny"]));
    // vault kv needs the mount preflight for any mount it can reach.
    assert_eq!(
        call("GET", "/v1/sys/internal/ui/mounts/secret/app/db", None).await,
        StatusCode::OK
    );
    let r = app
        .with_token(&token, "GET", "/v1/sys/internal/ui/mounts", None)
        .await;
    assert!(r.body["data"]["secret"]["secret/"].is_object());
    assert!(
        r.body["data"]["secret"].get("other/").is_none(),
        "mounts it cannot reach are hidden"
    );
    // A policy change takes effect on the next request.
    app.policy(
        "reader",
        "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    assert_eq!(
        call("GET", "/v1/secret/data/other", None).await,
        StatusCode::OK
    );
    app.root("DELETE", "/v1/sys/policies/acl/reader", None)
        .await;
    assert_eq!(
        call("GET", "/v1/secret/data/app/db", None).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn create_and_update_follow_existence_and_sudo_guards_root_paths() {
    let app = App::dev().await;
    app.root(
        "POST",
        "/v1/secret/data/exists",
        Some(json!({"data": {"a": 1}})),
    )
    .await;
    app.policy("creator", "path \"secret/data/*\" {\n  capabilities = [\"create\"]\n}\npath \"sys/rotate\" {\n  capabilities = [\"update\"]\n}\n").await;
    app.policy("updater", "path \"secret/data/*\" {\n  capabilities = [\"update\"]\n}\npath \"sys/rotate\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n").await;
    let creator = app.token(ROOT, json!({"policies": ["creator"]})).await;
    let updater = app.token(ROOT, json!({"policies": ["updater"]})).await;
    let write = |token: &str, path: &str| {
        let (app, token, path) = (&app, token.to_owned(), path.to_owned());
        async move {
            app.with_token(&token, "POST", &path, Some(json!({"data": {"b": 2}})))
                .await
                .status
        }
    };
    assert_eq!(write(&creator, "/v1/secret/data/new").await, StatusCode::OK);
    assert_eq!(
        write(&creator, "/v1/secret/data/exists").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        write(&updater, "/v1/secret/data/exists").await,
        StatusCode::OK
    );
    assert_eq!(
        write(&updater, "/v1/secret/data/fresh").await,
        StatusCode::FORBIDDEN
    );
    // sys/rotate is root-protected: update alone is not enough.
    assert_eq!(
        app.with_token(&creator, "POST", "/v1/sys/rotate", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.with_token(&updater, "POST", "/v1/sys/rotate", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn tokens_are_created_within_their_parents_powers() {
    let app = App::dev().await;
    app.policy("reader", READER).await;
    app.policy(
        "creator",
        "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n",
    )
    .await;
    let parent = app
        .token(
            ROOT,
            json!({"policies": ["reader", "creator"], "meta": {"team": "a"}, "display_name": "CI"}),
        )
        .await;
    let r = app
        .with_token(&parent, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    let data = &r.body["data"];
    assert_eq!(data["policies"], json!(["creator", "default", "reader"]));
    assert_eq!(data["display_name"], "token-CI");
    assert_eq!(data["meta"], json!({"team": "a"}));
    assert_eq!(data["type"], "service");
    assert_eq!(data["orphan"], false);
    assert!(
        data["ttl"].as_u64().unwrap() > 2_764_000,
        "the 768h default"
    );
    assert!(data["expire_time"].as_str().unwrap().ends_with('Z'));

    let r = app
        .with_token(
            &parent,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["reader"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["auth"]["policies"], json!(["default", "reader"]));
    for (body, message) in [
        (
            json!({"policies": ["admin"]}),
            "child policies must be subset of parent",
        ),
        (
            json!({"policies": ["root"]}),
            "root tokens may not be created without parent token being root",
        ),
        (
            json!({"no_parent": true}),
            "root or sudo privileges required to create orphan token",
        ),
        (
            json!({"period": "1h"}),
            "root or sudo privileges required to create periodic token",
        ),
        (
            json!({"id": "chosen"}),
            "root privileges required to specify token id",
        ),
        (json!({"type": "batch"}), "not supported"),
        (json!({"num_uses": -1}), "number of uses cannot be negative"),
        (json!({"ttl": "-5s"}), "ttl"),
    ] {
        let r = app
            .with_token(&parent, "POST", "/v1/auth/token/create", Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(errors(&r)[0].contains(message), "{body}: {:?}", errors(&r));
    }
    let r = app
        .with_token(
            &parent,
            "POST",
            "/v1/auth/token/create-orphan",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "no capability on create-orphan"
    );
    // With update on create-orphan, no sudo is needed (as in Vault).
    app.policy(
        "orphaner",
        "path \"auth/token/create-orphan\" {\n  capabilities = [\"update\"]\n}\n",
    )
    .await;
    let orphaner = app.token(ROOT, json!({"policies": ["orphaner"]})).await;
    let r = app
        .with_token(
            &orphaner,
            "POST",
            "/v1/auth/token/create-orphan",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["auth"]["orphan"], true, "{:?}", r.body);

    // Root's options, and Vault's warnings.
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["nonexistent"], "ttl": "1000h"})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 768 * 3600);
    let warnings = r.body["warnings"].to_string();
    assert!(
        warnings.contains("Policy \\\"nonexistent\\\" does not exist"),
        "{warnings}"
    );
    assert!(
        warnings.contains("exceeded the effective max_ttl of \\\"768h\\\""),
        "{warnings}"
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(
        (
            r.body["auth"]["policies"].clone(),
            r.body["auth"]["lease_duration"].clone()
        ),
        (json!(["root"]), json!(0))
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create-orphan",
            Some(json!({"no_default_policy": true, "policies": ["reader"]})),
        )
        .await;
    assert_eq!(r.body["auth"]["orphan"], true);
    assert_eq!(r.body["auth"]["policies"], json!(["reader"]));
    let chosen = app.token(ROOT, json!({"id": "my-chosen-token"})).await;
    assert_eq!(chosen, "my-chosen-token");
}

#[tokio::test]
async fn ttls_follow_vaults_rules_on_create_and_renew() {
    let app = App::dev().await;
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"ttl": "1h", "explicit_max_ttl": "30m"})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 1800);
    assert_eq!(
        r.body["warnings"],
        json!([
            "TTL of \"1h\" exceeded the effective max_ttl of \"30m\"; TTL value is capped accordingly"
        ])
    );
    let capped = app
        .token(ROOT, json!({"ttl": "10m", "explicit_max_ttl": "1h"}))
        .await;
    let r = app
        .with_token(
            &capped,
            "PUT",
            "/v1/auth/token/renew-self",
            Some(json!({"increment": "2h"})),
        )
        .await;
    let ttl = r.body["auth"]["lease_duration"].as_u64().unwrap();
    assert!(
        (3590..=3600).contains(&ttl),
        "capped at what is left of the hour: {ttl}"
    );
    assert!(
        r.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("exceeded the effective max_ttl")
    );
    let r = app
        .with_token(
            &capped,
            "PUT",
            "/v1/auth/token/renew-self",
            Some(json!({"increment": 60})),
        )
        .await;
    assert_eq!(
        r.body["auth"]["lease_duration"], 60,
        "the increment counts from now"
    );
    // Without an increment a token gets its last TTL again (as OpenBao).
    let r = app
        .with_token(&capped, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 60);
    assert!(r.body["warnings"].is_null(), "{:?}", r.body["warnings"]);
    let r = app
        .with_token(&capped, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert!(r.body["data"]["last_renewal"].is_string());

    let periodic = app.token(ROOT, json!({"period": "1h"})).await;
    let r = app
        .with_token(
            &periodic,
            "PUT",
            "/v1/auth/token/renew-self",
            Some(json!({"increment": "5h"})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 3600);
    let fixed = app
        .token(ROOT, json!({"renewable": false, "ttl": "10m"}))
        .await;
    let r = app
        .with_token(&fixed, "PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(
        (r.status, errors(&r)),
        (
            StatusCode::BAD_REQUEST,
            vec!["lease is not renewable".to_owned()]
        )
    );
    let r = app
        .root("PUT", "/v1/auth/token/renew-self", Some(json!({})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "the root token is not renewable"
    );
}

#[tokio::test]
async fn lookups_renewals_and_revocations_by_token_and_accessor() {
    let app = App::dev().await;
    let r = app
        .root("POST", "/v1/auth/token/create", Some(json!({"ttl": "1h"})))
        .await;
    let (token, accessor) = (
        r.body["auth"]["client_token"].as_str().unwrap().to_owned(),
        r.body["auth"]["accessor"].as_str().unwrap().to_owned(),
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/lookup",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.body["data"]["id"], token.as_str());
    let r = app
        .root(
            "POST",
            "/v1/auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(
        (
            r.body["data"]["id"].clone(),
            r.body["data"]["accessor"].clone()
        ),
        (json!(""), json!(accessor))
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/renew-accessor",
            Some(json!({"accessor": accessor, "increment": 120})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 120);
    assert_eq!(r.body["auth"]["client_token"], "");
    let r = app
        .root(
            "POST",
            "/v1/auth/token/renew",
            Some(json!({"token": token, "increment": 300})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 300);
    let r = app.root("LIST", "/v1/auth/token/accessors", None).await;
    assert!(
        r.body["data"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!(accessor))
    );

    let r = app
        .root(
            "POST",
            "/v1/auth/token/lookup",
            Some(json!({"token": "hvs.unknown"})),
        )
        .await;
    assert_eq!(
        (r.status, errors(&r)),
        (StatusCode::FORBIDDEN, vec!["bad token".to_owned()])
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/lookup-accessor",
            Some(json!({"accessor": "unknown"})),
        )
        .await;
    assert_eq!(
        (r.status, errors(&r)),
        (StatusCode::BAD_REQUEST, vec!["invalid accessor".to_owned()])
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/revoke-accessor",
            Some(json!({"accessor": "unknown"})),
        )
        .await;
    assert_eq!(
        r.body["warnings"],
        json!(["No token found with this accessor"])
    );
    let r = app
        .root(
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": "hvs.unknown"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = app
        .root(
            "POST",
            "/v1/auth/token/revoke-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .with_token(&token, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let own = app.token(ROOT, json!({})).await;
    let r = app
        .with_token(&own, "PUT", "/v1/auth/token/revoke-self", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.with_token(&own, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn revoking_a_token_revokes_its_tree_and_revoke_orphan_keeps_it() {
    let app = App::dev().await;
    let parent = app.token(ROOT, json!({})).await;
    let child = app.token(&parent, json!({})).await;
    let grandchild = app.token(&child, json!({})).await;
    let sibling = app.token(ROOT, json!({})).await;
    app.root(
        "POST",
        "/v1/auth/token/revoke",
        Some(json!({"token": parent})),
    )
    .await;
    for gone in [&parent, &child, &grandchild] {
        assert_eq!(
            app.with_token(gone, "GET", "/v1/auth/token/lookup-self", None)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        app.with_token(&sibling, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::OK
    );

    let parent = app.token(ROOT, json!({})).await;
    let child = app.token(&parent, json!({})).await;
    let r = app
        .root(
            "POST",
            "/v1/auth/token/revoke-orphan",
            Some(json!({"token": parent})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.with_token(&parent, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .with_token(&child, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(
        (r.status, r.body["data"]["orphan"].clone()),
        (StatusCode::OK, json!(true))
    );
    // revoke-orphan and listing accessors are root-protected.
    let plain = app.token(ROOT, json!({"policies": ["default"]})).await;
    app.policy(
        "revoker",
        "path \"auth/token/*\" {\n  capabilities = [\"update\", \"list\"]\n}\n",
    )
    .await;
    let revoker = app.token(ROOT, json!({"policies": ["revoker"]})).await;
    let r = app
        .with_token(
            &revoker,
            "POST",
            "/v1/auth/token/revoke-orphan",
            Some(json!({"token": plain})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.with_token(&revoker, "LIST", "/v1/auth/token/accessors", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Once the cleanup has run, revoked tokens are gone from storage.
    app.core.clean_up_tokens().await.unwrap();
    assert!(
        app.core
            .storage()
            .token_by_accessor("x")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_use_limit_runs_out_exactly() {
    let app = App::dev().await;
    let limited = app.token(ROOT, json!({"num_uses": 3})).await;
    for _ in 0..3 {
        assert_eq!(
            app.with_token(&limited, "GET", "/v1/auth/token/lookup-self", None)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.with_token(&limited, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let limited = app.token(ROOT, json!({"num_uses": 2})).await;
    let r = app
        .with_token(&limited, "POST", "/v1/auth/token/create", Some(json!({})))
        .await;
    assert!(errors(&r)[0].contains("use limit"), "{:?}", errors(&r));
}

#[tokio::test]
async fn expired_tokens_are_refused_at_once() {
    let app = App::dev().await;
    let short = app.token(ROOT, json!({"ttl": "1s"})).await;
    assert_eq!(
        app.with_token(&short, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        app.with_token(&short, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn mounts_can_be_tuned_and_auth_methods_listed() {
    let app = App::dev().await;
    let r = app.root("GET", "/v1/sys/mounts/secret/tune", None).await;
    assert_eq!(
        (
            r.body["data"]["default_lease_ttl"].clone(),
            r.body["data"]["max_lease_ttl"].clone()
        ),
        (json!(2_764_800), json!(2_764_800))
    );
    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/secret/tune",
            Some(json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h", "description": "tuned"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.root("GET", "/v1/sys/mounts/secret/tune", None).await;
    assert_eq!(
        (
            r.body["data"]["default_lease_ttl"].clone(),
            r.body["data"]["description"].clone()
        ),
        (json!(3600), json!("tuned"))
    );
    let r = app.root("GET", "/v1/sys/mounts", None).await;
    assert_eq!(r.body["data"]["secret/"]["config"]["max_lease_ttl"], 7200);
    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/secret/tune",
            Some(json!({"default_lease_ttl": "3h"})),
        )
        .await;
    assert!(errors(&r)[0].contains("default lease TTL greater than max lease TTL"));
    let r = app
        .root(
            "POST",
            "/v1/sys/mounts/secret/tune",
            Some(json!({"max_lease_ttl": "1000h"})),
        )
        .await;
    assert!(errors(&r)[0].contains("system max"));

    let r = app.root("GET", "/v1/sys/auth", None).await;
    assert_eq!(r.body["data"]["token/"]["type"], "token");
    assert_eq!(r.body["token/"]["type"], "token");
    let r = app.root("DELETE", "/v1/sys/auth/token", None).await;
    assert_eq!(
        errors(&r),
        vec!["token credential backend cannot be disabled"]
    );
    let r = app
        .root(
            "POST",
            "/v1/sys/auth/other",
            Some(json!({"type": "nosuch"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The token mount's tune sets the TTLs of new tokens.
    app.root(
        "POST",
        "/v1/sys/auth/token/tune",
        Some(json!({"default_lease_ttl": "20m", "max_lease_ttl": "1h"})),
    )
    .await;
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 1200);
    // Root tokens are exempt from the default TTL, as in Vault.
    let r = app
        .root("POST", "/v1/auth/token/create", Some(json!({})))
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 0);
}

/// Findings of the issue-3 security review, each pinned down.
#[tokio::test]
async fn sudo_cannot_mint_root_and_expiring_root_cannot_mint_permanent_root() {
    let app = App::dev().await;
    app.policy(
        "token-admin",
        "path \"auth/token/create*\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n",
    )
    .await;
    let admin = app.token(ROOT, json!({"policies": ["token-admin"]})).await;
    for path in ["/v1/auth/token/create", "/v1/auth/token/create-orphan"] {
        let r = app
            .with_token(
                &admin,
                "POST",
                path,
                Some(json!({"policies": ["root"], "no_parent": true})),
            )
            .await;
        assert_eq!(
            errors(&r),
            vec!["root tokens may not be created without parent token being root"],
            "{path}"
        );
    }
    // sudo still allows policies the parent lacks, as in Vault.
    let r = app
        .with_token(
            &admin,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["other"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let break_glass = app
        .token(ROOT, json!({"policies": ["root"], "ttl": "1h"}))
        .await;
    let r = app
        .with_token(
            &break_glass,
            "POST",
            "/v1/auth/token/create-orphan",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(
        errors(&r),
        vec!["expiring root tokens cannot create non-expiring root tokens"]
    );
    let r = app
        .with_token(
            &break_glass,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["root"], "ttl": "10m"})),
        )
        .await;
    assert_eq!(r.body["auth"]["lease_duration"], 600);

    // A token that never expires is not renewable.
    let r = app
        .root("POST", "/v1/auth/token/create", Some(json!({})))
        .await;
    assert_eq!(
        (
            r.body["auth"]["lease_duration"].clone(),
            r.body["auth"]["renewable"].clone()
        ),
        (json!(0), json!(false))
    );
    let forever = r.body["auth"]["client_token"].as_str().unwrap().to_owned();
    let r = app
        .with_token(
            &forever,
            "POST",
            "/v1/auth/token/renew-self",
            Some(json!({})),
        )
        .await;
    assert_eq!(errors(&r), vec!["lease is not renewable"]);
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"num_uses": u64::MAX})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn children_get_default_only_where_their_parent_has_it() {
    let app = App::dev().await;
    app.policy(
        "creator",
        "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n",
    )
    .await;
    let without = app
        .token(
            ROOT,
            json!({"policies": ["creator"], "no_default_policy": true}),
        )
        .await;
    let with = app.token(ROOT, json!({"policies": ["creator"]})).await;
    // Checked against OpenBao 2.6.2.
    for (parent, body, expected) in [
        (
            &without,
            json!({"policies": ["creator"]}),
            json!(["creator"]),
        ),
        (&without, json!({}), json!(["creator"])),
        (
            &without,
            json!({"policies": ["creator", "default"]}),
            json!("child policies must be subset of parent"),
        ),
        (
            &with,
            json!({"policies": ["creator"]}),
            json!(["creator", "default"]),
        ),
        (&with, json!({}), json!(["creator", "default"])),
        (
            &with,
            json!({"no_default_policy": true}),
            json!(["creator"]),
        ),
    ] {
        let r = app
            .with_token(parent, "POST", "/v1/auth/token/create", Some(body.clone()))
            .await;
        let got = match r.status {
            StatusCode::OK => r.body["auth"]["policies"].clone(),
            _ => json!(errors(&r)[0]),
        };
        assert_eq!(got, expected, "{body}");
    }
}

#[tokio::test]
async fn policy_names_in_paths_are_taken_exactly_as_the_acl_saw_them() {
    let app = App::dev().await;
    app.policy(
        "admin",
        "path \"*\" {\n  capabilities = [\"sudo\", \"update\"]\n}\n",
    )
    .await;
    app.policy(
        "delegate",
        "path \"sys/policies/*\" {\n  capabilities = [\"create\", \"update\", \"read\"]\n}\n\
         path \"sys/policies/acl/admin\" {\n  capabilities = [\"deny\"]\n}\n",
    )
    .await;
    let delegate = app.token(ROOT, json!({"policies": ["delegate"]})).await;
    let evil = json!({"policy": "path \"*\" {\n  capabilities = [\"read\"]\n}\n"});
    let r = app
        .with_token(
            &delegate,
            "PUT",
            "/v1/sys/policies/acl/admin",
            Some(evil.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for path in [
        "/v1/sys/policies/acl/ADMIN",
        "/v1/sys/policies/acl/%20admin",
    ] {
        let r = app
            .with_token(&delegate, "PUT", path, Some(evil.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            errors(&r)[0].contains("lower case"),
            "{path}: {:?}",
            errors(&r)
        );
    }
    let r = app
        .with_token(&delegate, "PUT", "/v1/sys/policies/acladmin", Some(evil))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no such path");
    let r = app.root("GET", "/v1/sys/policies/acl/admin", None).await;
    assert!(r.body["data"]["policy"].as_str().unwrap().contains("sudo"));
}

#[tokio::test]
async fn an_expired_token_cannot_be_renewed_back_by_its_accessor() {
    let app = App::dev().await;
    let r = app
        .root(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "1s"})),
        )
        .await;
    let accessor = r.body["auth"]["accessor"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for path in [
        "/v1/auth/token/renew-accessor",
        "/v1/auth/token/lookup-accessor",
    ] {
        let r = app
            .root("POST", path, Some(json!({"accessor": accessor})))
            .await;
        assert_eq!(errors(&r), vec!["invalid accessor"], "{path}");
    }
}
