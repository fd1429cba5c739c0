//! The TokenReview call: the cluster says whether a JWT is valid now
//! (signature, expiry, and that the service account, and the pod or secret
//! it is bound to, still exist).
//!
//! `POST {host}/apis/authentication.k8s.io/v1/tokenreviews` with the
//! reviewer's bearer token; the reviewer needs the `system:auth-delegator`
//! cluster role.

use serde::{Deserialize, Serialize};

use super::Refusal;
use super::claims::{Jwt, ServiceAccount};
use super::https::{self, Trust};

const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// One review to ask for.
pub struct Review<'a> {
    pub host: &'a str,
    pub ca_pem: &'a str,
    /// The reviewer's token, or the JWT under review when there is none.
    pub bearer: &'a str,
    pub jwt: &'a Jwt,
    /// What the token must be meant for; empty leaves it to the API
    /// server's own audiences.
    pub audiences: &'a [String],
}

#[derive(Serialize)]
struct TokenReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Spec<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    audiences: &'a [String],
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    authenticated: bool,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    username: String,
    #[serde(default)]
    uid: String,
}

/// Asks the cluster about the token and checks that its answer is about
/// `account`, as the JWT's claims named it.
pub async fn check(review: &Review<'_>, account: &ServiceAccount) -> Result<(), Refusal> {
    let client = https::client(Trust::Pem(review.ca_pem))
        .map_err(|e| Refusal::new(format!("kubernetes_ca_cert: {e}")))?;
    let body = TokenReview {
        api_version: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: Spec {
            token: review.jwt.expose(),
            audiences: review.audiences,
        },
    };
    let url = format!("{}{PATH}", review.host);
    let response = client
        .post(&url)
        .bearer_auth(review.bearer)
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            Refusal::unavailable(format!(
                "TokenReview at {url} failed: {}",
                https::describe(&e)
            ))
        })?;
    let status = response.status();
    let text = https::read_limited(response)
        .await
        .map_err(|e| Refusal::unavailable(format!("TokenReview at {url}: {e}")))?;
    match status.as_u16() {
        200..=299 => {}
        401 => {
            return Err(Refusal::new(
                "service account unauthorized; this could mean it has been deleted or \
                 recreated with a new token (the API server refused the TokenReview \
                 bearer: the reviewer JWT, or the login's own JWT when none is set)",
            ));
        }
        403 => {
            return Err(Refusal::new(format!(
                "the TokenReview bearer may not create tokenreviews (HTTP 403: give its \
                 service account the system:auth-delegator cluster role): {}",
                excerpt(&text)
            )));
        }
        _ => {
            return Err(other_answer(
                status,
                format!(
                    "TokenReview at {url} answered HTTP {status}: {}",
                    excerpt(&text)
                ),
            ));
        }
    }
    let answer: Answer = serde_json::from_slice(&text)
        .map_err(|e| Refusal::new(format!("TokenReview answer is not a TokenReview: {e}")))?;
    judge(answer.status.unwrap_or_default(), review.audiences, account)
}

/// An answer other than 2xx, 401 or 403: a failing or overloaded API
/// server may answer when asked again, anything else will not.
fn other_answer(status: reqwest::StatusCode, reason: String) -> Refusal {
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Refusal::unavailable(reason)
    } else {
        Refusal::new(reason)
    }
}

/// The checks of the answer, as Vault makes them.
fn judge(status: Status, requested: &[String], account: &ServiceAccount) -> Result<(), Refusal> {
    if let Some(error) = status.error.filter(|e| !e.is_empty()) {
        return Err(Refusal::new(format!("TokenReview error: {error}")));
    }
    if !status.authenticated {
        return Err(Refusal::new("TokenReview: the token is not authenticated"));
    }
    if !requested.is_empty() {
        let granted = status.audiences.unwrap_or_default();
        if !granted.iter().any(|a| requested.contains(a)) {
            return Err(Refusal::new(format!(
                "TokenReview: the token is for {granted:?}, not {requested:?}"
            )));
        }
    }
    let user = status.user.unwrap_or_default();
    let parts: Vec<&str> = user.username.split(':').collect();
    let [system, kind, namespace, name] = parts.as_slice() else {
        return Err(Refusal::new(format!(
            "TokenReview: the user {:?} is not a service account",
            user.username
        )));
    };
    if (*system, *kind) != ("system", "serviceaccount") {
        return Err(Refusal::new(format!(
            "TokenReview: the user {:?} is not a service account",
            user.username
        )));
    }
    if (*namespace, *name) != (account.namespace.as_str(), account.name.as_str()) {
        return Err(Refusal::new(format!(
            "TokenReview: the token belongs to {}/{}, not {}/{} as its claims say",
            namespace, name, account.namespace, account.name
        )));
    }
    if !account.uid.is_empty() && user.uid != account.uid {
        return Err(Refusal::new(format!(
            "TokenReview: the service account's uid is {:?}, the claims say {:?}",
            user.uid, account.uid
        )));
    }
    Ok(())
}

/// The start of an error body, for the log.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> ServiceAccount {
        ServiceAccount {
            name: "web".into(),
            namespace: "prod".into(),
            uid: "u-1".into(),
            secret_name: String::new(),
            pod_name: String::new(),
        }
    }

    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value::<Answer>(json!({ "status": v }))
            .unwrap()
            .status
            .unwrap()
    }

    #[test]
    fn failing_and_overloaded_api_servers_are_unavailable() {
        for code in [500, 502, 503, 504, 429] {
            let status = reqwest::StatusCode::from_u16(code).unwrap();
            assert!(
                other_answer(status, String::new()).is_unavailable(),
                "{code}"
            );
        }
        for code in [400, 404, 422] {
            let status = reqwest::StatusCode::from_u16(code).unwrap();
            assert!(
                !other_answer(status, String::new()).is_unavailable(),
                "{code}"
            );
        }
    }

    #[test]
    fn answers_are_judged_like_vault() {
        let ok = json!({"authenticated": true, "audiences": ["vault"],
            "user": {"username": "system:serviceaccount:prod:web", "uid": "u-1"}});
        let want = ["vault".to_owned()];
        assert!(judge(status(ok.clone()), &want, &account()).is_ok());
        assert!(judge(status(ok.clone()), &[], &account()).is_ok());
        for (bad, why) in [
            (json!({"authenticated": false}), "not authenticated"),
            (
                json!({"authenticated": true, "error": "boom",
                "user": {"username": "system:serviceaccount:prod:web", "uid": "u-1"}}),
                "error",
            ),
            (
                json!({"authenticated": true, "audiences": ["other"],
                "user": {"username": "system:serviceaccount:prod:web", "uid": "u-1"}}),
                "audience",
            ),
            (
                json!({"authenticated": true, "audiences": ["vault"],
                "user": {"username": "system:serviceaccount:prod:web:x", "uid": "u-1"}}),
                "5 parts",
            ),
            (
                json!({"authenticated": true, "audiences": ["vault"],
                "user": {"username": "system:node:prod:web", "uid": "u-1"}}),
                "not an sa",
            ),
            (
                json!({"authenticated": true, "audiences": ["vault"],
                "user": {"username": "system:serviceaccount:dev:web", "uid": "u-1"}}),
                "namespace",
            ),
            (
                json!({"authenticated": true, "audiences": ["vault"],
                "user": {"username": "system:serviceaccount:prod:web", "uid": "u-2"}}),
                "uid",
            ),
        ] {
            assert!(judge(status(bad), &want, &account()).is_err(), "{why}");
        }
    }
}
