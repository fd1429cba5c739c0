//! What a service-account JWT says about who holds it.
//!
//! kube-apiserver writes two forms. Projected tokens (the default since
//! Kubernetes 1.24) nest the facts under `kubernetes.io`:
//! `{"kubernetes.io": {"namespace", "pod": {name, uid}, "serviceaccount":
//! {name, uid}}}`. Legacy secret-based tokens use flat keys
//! `kubernetes.io/serviceaccount/{namespace, secret.name,
//! service-account.name, service-account.uid}`. The projected form wins
//! when both are present, as in Vault.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::Refusal;

/// The longest JWT a login may carry. Real service-account tokens are
/// about 1 KiB; anything near this is an attack on the parser.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// A JWT as a client sent it: zeroized on drop, never printed.
pub struct Jwt(Zeroizing<String>);

impl Jwt {
    /// Takes the token, refusing one longer than [`MAX_JWT_LEN`] before
    /// anything parses it.
    pub fn new(token: String) -> Result<Jwt, Refusal> {
        let token = Zeroizing::new(token);
        if token.len() > MAX_JWT_LEN {
            return Err(Refusal::new(format!(
                "the JWT is {} bytes long; the limit is {MAX_JWT_LEN}",
                token.len()
            )));
        }
        Ok(Jwt(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Jwt(<redacted>)")
    }
}

/// The claims secretd reads. Unknown claims are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default, rename = "kubernetes.io")]
    projected: Option<Projected>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/namespace")]
    legacy_namespace: Option<String>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/secret.name")]
    legacy_secret_name: Option<String>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/service-account.name")]
    legacy_name: Option<String>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/service-account.uid")]
    legacy_uid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Projected {
    namespace: String,
    #[serde(default)]
    pod: Option<ObjectRef>,
    serviceaccount: ObjectRef,
}

#[derive(Debug, Deserialize)]
struct ObjectRef {
    name: String,
    #[serde(default)]
    uid: String,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(a)) => vec![a],
        Some(Aud::Many(a)) => a,
    })
}

/// The service account a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Legacy tokens only: the secret that held the token.
    pub secret_name: String,
    /// Projected tokens bound to a pod.
    pub pod_name: String,
}

impl ServiceAccount {
    /// The `system:serviceaccount:<ns>:<name>` user Kubernetes knows.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

impl Claims {
    /// Reads the claims without checking the signature: only for the
    /// TokenReview path, where the API server is the judge.
    pub fn unverified(jwt: &Jwt) -> Result<Claims, Refusal> {
        jsonwebtoken::dangerous::insecure_decode_claims(jwt.expose())
            .map_err(|e| Refusal::new(format!("the JWT cannot be parsed: {e}")))
    }

    /// The service account, from the projected or the legacy claims. `sub`,
    /// when present, must name the same account.
    pub fn service_account(&self) -> Result<ServiceAccount, Refusal> {
        let account = match &self.projected {
            Some(p) => ServiceAccount {
                name: p.serviceaccount.name.clone(),
                namespace: p.namespace.clone(),
                uid: p.serviceaccount.uid.clone(),
                secret_name: String::new(),
                pod_name: p.pod.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            },
            None => ServiceAccount {
                name: self.legacy_name.clone().unwrap_or_default(),
                namespace: self.legacy_namespace.clone().unwrap_or_default(),
                uid: self.legacy_uid.clone().unwrap_or_default(),
                secret_name: self.legacy_secret_name.clone().unwrap_or_default(),
                pod_name: String::new(),
            },
        };
        if account.name.is_empty() || account.namespace.is_empty() {
            return Err(Refusal::new(
                "the JWT names no service account (no kubernetes.io claims)",
            ));
        }
        if let Some(sub) = &self.sub
            && *sub != account.username()
        {
            return Err(Refusal::new(format!(
                "the JWT's sub {sub:?} does not match its kubernetes.io claims"
            )));
        }
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> Claims {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn projected_claims_name_the_account_and_pod() {
        let c = claims(json!({
            "aud": ["https://kubernetes.default.svc"], "exp": 2, "iat": 1, "nbf": 1,
            "iss": "https://kubernetes.default.svc", "jti": "x",
            "kubernetes.io": {"namespace": "prod", "node": {"name": "n", "uid": "nu"},
                "pod": {"name": "web-1", "uid": "pu"},
                "serviceaccount": {"name": "web", "uid": "su"}},
            "sub": "system:serviceaccount:prod:web"
        }));
        let sa = c.service_account().unwrap();
        assert_eq!(
            (sa.name.as_str(), sa.namespace.as_str(), sa.uid.as_str()),
            ("web", "prod", "su")
        );
        assert_eq!(
            (sa.pod_name.as_str(), sa.secret_name.as_str()),
            ("web-1", "")
        );
        assert_eq!(c.aud, vec!["https://kubernetes.default.svc"]);
    }

    #[test]
    fn legacy_claims_name_the_account_and_secret() {
        let c = claims(json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/secret.name": "app-token-x7k2p",
            "kubernetes.io/serviceaccount/service-account.name": "app",
            "kubernetes.io/serviceaccount/service-account.uid": "u-1",
            "sub": "system:serviceaccount:default:app"
        }));
        let sa = c.service_account().unwrap();
        assert_eq!(sa.username(), "system:serviceaccount:default:app");
        assert_eq!(
            (sa.secret_name.as_str(), sa.uid.as_str()),
            ("app-token-x7k2p", "u-1")
        );
        assert!(c.aud.is_empty() && c.exp.is_none());
    }

    #[test]
    fn a_single_audience_string_is_a_list_of_one() {
        assert_eq!(claims(json!({"aud": "vault"})).aud, vec!["vault"]);
    }

    #[test]
    fn tokens_without_an_account_or_with_a_foreign_sub_are_refused() {
        assert!(claims(json!({"sub": "x"})).service_account().is_err());
        let c = claims(json!({
            "kubernetes.io": {"namespace": "a", "serviceaccount": {"name": "b", "uid": "u"}},
            "sub": "system:serviceaccount:other:b"
        }));
        assert!(c.service_account().is_err());
    }

    #[test]
    fn jwts_are_capped_and_never_printed() {
        let jwt = Jwt::new("eyJ.secret.sig".into()).unwrap();
        assert!(!format!("{jwt:?}").contains("secret"));
        assert!(Jwt::new("a".repeat(MAX_JWT_LEN + 1)).is_err());
    }
}
