//! Test support: signing keys, service-account JWTs with the claims
//! kube-apiserver writes, and an in-test Kubernetes API server over HTTPS
//! that answers `authentication.k8s.io/v1` TokenReviews and serves the
//! issuer's OIDC discovery document and JWKS.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

/// The issuer the test cluster signs with.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The API server's own audience: what a token requested without one is for.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// A signing key with its public half.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: String,
    pub private_pem: String,
    pub public_pem: String,
}

impl SigningKey {
    fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap()
            }
            _ => EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap(),
        }
    }

    /// The key as a JWKS entry (with its `kid`, `use: sig`, `alg`).
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).unwrap()
    }

    /// Signs `claims` as kube-apiserver does: `{"alg", "kid"}`, no `typ`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }

    /// Signs with another algorithm of the same key family (RS256 vs PS512).
    pub fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding()).unwrap()
    }

    /// Signs with `kid` in the header instead of the key's own.
    pub fn sign_with_kid(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.typ = None;
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding()).unwrap()
    }
}

/// A 2048-bit RSA key, made once per test process (it takes a while).
pub fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| make_rsa("rsa-1"))
}

/// A second RSA key, for rotation.
pub fn rsa_key_2() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| make_rsa("rsa-2"))
}

fn make_rsa(kid: &str) -> SigningKey {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    SigningKey {
        alg: Algorithm::RS256,
        kid: kid.to_owned(),
        private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

/// A new P-256 (ES256) or P-384 (ES384) key.
pub fn ec_key(alg: Algorithm, kid: &str) -> SigningKey {
    let curve = match alg {
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        other => panic!("not an EC algorithm: {other:?}"),
    };
    let pair = KeyPair::generate_for(curve).unwrap();
    SigningKey {
        alg,
        kid: kid.to_owned(),
        private_pem: pair.serialize_pem(),
        public_pem: pair.public_key_pem(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a projected token as kube-apiserver writes them, valid
/// from now for an hour.
pub fn projected(namespace: &str, name: &str, uid: &str, aud: &[&str]) -> Value {
    let now = now();
    json!({
        "aud": aud,
        "exp": now + 3600,
        "iat": now,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "5f0c3c52-7a4e-4c1e-9d62-0c4f4b1f0a01"},
            "pod": {"name": format!("{name}-7d9c5b6f4-x2x8q"), "uid": "1b7f6c0e-2d5a-4b8e-9a3c-6e2f1d0c9b87"},
            "serviceaccount": {"name": name, "uid": uid}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}")
    })
}

/// The claims of a legacy secret-based token: no audience, no expiry.
pub fn legacy(namespace: &str, name: &str, uid: &str) -> Value {
    json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token-x7k2p"),
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": format!("system:serviceaccount:{namespace}:{name}")
    })
}

/// `alg: none`, unsigned.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rsa-1"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// HS256 "signed" with the public key's PEM as the HMAC secret: the
/// algorithm-confusion attack.
pub fn hmac_with_public_key(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .unwrap()
}

/// A test CA and its PEM, and a server certificate for 127.0.0.1.
pub struct Pki {
    pub ca_pem: String,
    server: rustls::ServerConfig,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "test kubernetes CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = crate::barrier::tls_provider();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            server,
        }
    }
}

/// What the test cluster knows and how it answers.
#[derive(Default)]
pub struct Cluster {
    /// Bearer tokens allowed to create TokenReviews (static tokens).
    pub reviewers: BTreeSet<String>,
    /// Service accounts (`ns/name`) bound to `system:auth-delegator`, whose
    /// own JWTs may call TokenReview.
    pub delegators: BTreeSet<String>,
    /// Service accounts (`ns/name`) that exist, with their uid.
    pub accounts: BTreeMap<String, String>,
    /// The keys the API server signs with (and trusts).
    pub keys: Vec<(String, String, Algorithm)>,
    /// The keys its JWKS endpoint publishes.
    pub jwks: Vec<Value>,
}

/// An HTTPS Kubernetes API server on 127.0.0.1.
pub struct ApiServer {
    pub url: String,
    pub cluster: Arc<Mutex<Cluster>>,
    pub reviews: Arc<AtomicUsize>,
    pub jwks_fetches: Arc<AtomicUsize>,
    pub pki: Pki,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

#[derive(Clone)]
struct Shared {
    cluster: Arc<Mutex<Cluster>>,
    reviews: Arc<AtomicUsize>,
    jwks_fetches: Arc<AtomicUsize>,
    issuer: String,
}

impl ApiServer {
    /// Starts a server whose cluster signs with `key` and knows `accounts`.
    pub async fn start(key: &SigningKey, accounts: &[(&str, &str)]) -> ApiServer {
        let pki = Pki::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("https://{addr}");
        let cluster = Arc::new(Mutex::new(Cluster {
            accounts: accounts
                .iter()
                .map(|(a, uid)| ((*a).to_owned(), (*uid).to_owned()))
                .collect(),
            keys: vec![(key.kid.clone(), key.public_pem.clone(), key.alg)],
            jwks: vec![key.jwk()],
            ..Cluster::default()
        }));
        let shared = Shared {
            cluster: Arc::clone(&cluster),
            reviews: Arc::new(AtomicUsize::new(0)),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            issuer: url.clone(),
        };
        let app = Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/openid/v1/jwks", get(jwks))
            .with_state(shared.clone());
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(pki.server.clone()));
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .handle(handle.clone());
        tokio::spawn(server.serve(app.into_make_service()));
        ApiServer {
            url,
            cluster,
            reviews: shared.reviews,
            jwks_fetches: shared.jwks_fetches,
            pki,
            handle,
        }
    }

    /// Stops serving: open connections are closed, new ones refused.
    pub fn stop(&self) {
        self.handle.shutdown();
    }

    pub fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap()
    }
}

/// A JSON answer (axum is built here without its `json` feature).
fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The Status kube-apiserver sends with a 401 or 403.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()
    });
    json_response(code, &body)
}

/// Who a token is, if it is a valid service-account token for one of
/// `audiences` (the API server's own when empty), as kube-apiserver's
/// authenticator decides.
fn authenticate(
    cluster: &Cluster,
    token: &str,
    audiences: &[String],
) -> Result<(String, String, String, Vec<String>), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "invalid bearer token")?;
    let audiences = if audiences.is_empty() {
        vec![API_AUDIENCE.to_owned()]
    } else {
        audiences.to_vec()
    };
    for (_, pem, alg) in &cluster.keys {
        if *alg != header.alg {
            continue;
        }
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
            _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let mut validation = Validation::new(*alg);
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        validation.leeway = 0;
        let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &validation) else {
            continue;
        };
        let claims = data.claims;
        let (ns, name, uid) = match claims.get("kubernetes.io") {
            Some(k) => (
                k["namespace"].as_str().unwrap_or_default(),
                k["serviceaccount"]["name"].as_str().unwrap_or_default(),
                k["serviceaccount"]["uid"].as_str().unwrap_or_default(),
            ),
            None => (
                claims["kubernetes.io/serviceaccount/namespace"]
                    .as_str()
                    .unwrap_or_default(),
                claims["kubernetes.io/serviceaccount/service-account.name"]
                    .as_str()
                    .unwrap_or_default(),
                claims["kubernetes.io/serviceaccount/service-account.uid"]
                    .as_str()
                    .unwrap_or_default(),
            ),
        };
        // Legacy tokens carry no audience and are accepted for any.
        let token_aud: Vec<String> = match &claims["aud"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => audiences.clone(),
        };
        let granted: Vec<String> = audiences
            .iter()
            .filter(|a| token_aud.contains(a))
            .cloned()
            .collect();
        if granted.is_empty() {
            return Err(format!(
                "[invalid bearer token, token audiences {token_aud:?} is invalid for the target audiences {audiences:?}]"
            ));
        }
        let account = format!("{ns}/{name}");
        return match cluster.accounts.get(&account) {
            Some(known) if known == uid => {
                Ok((ns.to_owned(), name.to_owned(), uid.to_owned(), granted))
            }
            _ => Err(format!(
                "[invalid bearer token, service account {account} has been deleted]"
            )),
        };
    }
    Err("[invalid bearer token, square/go-jose: error in cryptographic primitive]".to_owned())
}

async fn token_review(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
    };
    shared.reviews.fetch_add(1, Ordering::SeqCst);
    let cluster = shared.cluster.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !cluster.reviewers.contains(bearer) {
        match authenticate(&cluster, bearer, &[]) {
            Err(_) => return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
            Ok((ns, name, ..)) if !cluster.delegators.contains(&format!("{ns}/{name}")) => {
                return status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    &format!(
                        "tokenreviews.authentication.k8s.io is forbidden: User \
                         \"system:serviceaccount:{ns}:{name}\" cannot create resource \
                         \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
                    ),
                );
            }
            Ok(_) => {}
        }
    }
    if review["apiVersion"] != "authentication.k8s.io/v1" || review["kind"] != "TokenReview" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "not a v1 TokenReview",
        );
    }
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let audiences: Vec<String> =
        serde_json::from_value(review["spec"]["audiences"].clone()).unwrap_or_default();
    let answer = match authenticate(&cluster, token, &audiences) {
        Ok((ns, name, uid, granted)) => json!({
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{ns}:{name}"),
                "uid": uid,
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["pod"]}
            },
            "audiences": granted
        }),
        Err(error) => json!({"user": {}, "error": error}),
    };
    let mut out = review.clone();
    out["metadata"] = json!({"creationTimestamp": null});
    out["status"] = answer;
    json_response(StatusCode::CREATED, &out)
}

async fn discovery(State(shared): State<Shared>) -> Response {
    let doc = json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/openid/v1/jwks", shared.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"]
    });
    json_response(StatusCode::OK, &doc)
}

async fn jwks(State(shared): State<Shared>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = shared.cluster.lock().unwrap().jwks.clone();
    json_response(StatusCode::OK, &json!({ "keys": keys }))
}
