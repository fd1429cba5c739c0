//! Faults of the services a login asks, under a real server: an LDAP
//! directory that is slow or accepts connections and never answers (a
//! proxy in front of a real slapd), and a Kubernetes API server whose
//! TokenReview hangs or is slow (an in-test HTTPS server, behind the same
//! proxy). A login then fails with a clear error within a bound set by
//! the method's timeouts, other requests are not held up meanwhile, and
//! logins work again as soon as the service does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secretd::auth::ldap::slapd::{self, Slapd};
use secretd_tests::{
    Api, K8S_ISSUER as ISSUER, K8S_SERVICE_ACCOUNT_UID, Server, TestDatabase, projected_claims,
    sign_jwt,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROOT: &str = "upstream-faults-root-token";

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Each chunk, either way, waits this long.
    Delay(Duration),
    /// Connections are accepted and nothing is ever forwarded.
    Blackhole,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. The fault is looked
/// up for every chunk, so it also hits connections already open.
struct Proxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = Arc::clone(&fault);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, Arc::clone(&fault)),
                        pump(server_read, client_write, fault),
                    );
                });
            }
        });
        Proxy {
            port,
            fault,
            accept,
        }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies one direction of a connection, applying the fault of the moment.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = *fault.lock().unwrap();
        match now {
            Fault::None => {}
            Fault::Delay(delay) => tokio::time::sleep(delay).await,
            // Hold both sockets open, answer nothing, until the test ends.
            Fault::Blackhole => std::future::pending::<()>().await,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Calls that must not be held up by a login in trouble: a KV read and a
/// token lookup each answer within `bound`, again and again, for `for_`.
async fn others_keep_answering(api: &Api, bound: Duration, for_: Duration) -> u32 {
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < for_ {
        for (method, path) in [
            ("GET", "secret/data/app"),
            ("GET", "auth/token/lookup-self"),
        ] {
            let t = Instant::now();
            let (status, body) = api.call(method, path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert!(
                t.elapsed() < bound,
                "{path} took {:?} while a login waited",
                t.elapsed()
            );
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answered
}

/// Waits for a login, failing the test (rather than hanging it) after
/// `bound`.
async fn within<T>(
    bound: Duration,
    login: tokio::task::JoinHandle<T>,
    what: impl std::fmt::Debug,
) -> T {
    match tokio::time::timeout(bound, login).await {
        Ok(answer) => answer.unwrap(),
        Err(_) => panic!("{what:?}: no answer within {bound:?}"),
    }
}

/// A series' value in `sys/metrics`.
async fn metric(api_url: &str, series: &str) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(format!("{api_url}/v1/sys/metrics?format=prometheus"))
        .header("X-Vault-Token", ROOT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn setup(api: &Api, calls: &[(&str, Value)]) {
    for (path, body) in calls {
        let (status, reply) = api.call("POST", path, Some(body.clone())).await;
        assert!((200..300).contains(&status), "{path}: {status} {reply}");
    }
}

// --- LDAP -----------------------------------------------------------------

/// The LDAP auth method's `request_timeout` in the test, in seconds.
const LDAP_TIMEOUT: u64 = 3;

async fn ldap_login(api: &Api) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (status, body) = api
        .call(
            "POST",
            "auth/ldap/login/alice",
            Some(json!({"password": "alice-password"})),
        )
        .await;
    (status, body, t.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_or_silent_ldap_server_fails_logins_in_bounded_time_and_nothing_else() {
    let Some(directory) = Slapd::start().await else {
        return;
    };
    let port: u16 = directory.url().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let database = TestDatabase::sqlite();
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    setup(
        &api,
        &[
            ("sys/auth/ldap", json!({"type": "ldap"})),
            (
                "auth/ldap/config",
                json!({
                    "url": format!("ldap://127.0.0.1:{}", proxy.port),
                    "binddn": slapd::READER_DN,
                    "bindpass": slapd::READER_PASSWORD,
                    "userdn": slapd::PEOPLE,
                    "userattr": "uid",
                    "groupdn": slapd::GROUPS,
                    "request_timeout": LDAP_TIMEOUT,
                    "connection_timeout": LDAP_TIMEOUT,
                }),
            ),
            ("auth/ldap/groups/devs", json!({"policies": "default"})),
            ("secret/data/app", json!({"data": {"k": "v"}})),
        ],
    )
    .await;
    let anonymous = Api::new(&server.url, "");
    let (status, body, _) = ldap_login(&anonymous).await;
    assert_eq!(status, 200, "{body}");

    // Liveness bound of a failing login: a few timeouts and slack.
    let bound = Duration::from_secs(3 * LDAP_TIMEOUT + 5);
    let timed_out = "ldap operation failed: the LDAP server did not answer within request_timeout";

    // Slow, but within the timeout: the login is slower, and works.
    proxy.set(Fault::Delay(Duration::from_millis(200)));
    let (status, body, took) = ldap_login(&anonymous).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < bound, "took {took:?}");

    for fault in [
        Fault::Delay(Duration::from_secs(2 * LDAP_TIMEOUT)),
        Fault::Blackhole,
    ] {
        proxy.set(fault);
        let login = tokio::spawn({
            let anonymous = anonymous.clone();
            async move { ldap_login(&anonymous).await }
        });
        let answered =
            others_keep_answering(&api, Duration::from_secs(2), Duration::from_secs(2)).await;
        assert!(answered > 0);
        let (status, body, took) = within(bound, login, fault).await;
        eprintln!("{fault:?}: the login failed after {took:?}");
        assert_eq!(status, 400, "{fault:?}: {body}");
        assert_eq!(body["errors"][0], timed_out, "{fault:?}: {body}");
        assert!(
            took >= Duration::from_secs(LDAP_TIMEOUT) && took < bound,
            "{fault:?}: the login took {took:?}"
        );
    }

    // Operators see why, and count the failures.
    let log = server.log();
    assert!(log.contains("LDAP bind as binddn failed"), "{log}");
    assert!(log.contains("timeout"), "{log}");
    let failures = metric(
        &server.url,
        r#"secretd_login_failures_total{method="ldap"}"#,
    )
    .await;
    assert_eq!(failures, Some(2.0));

    // The directory answers again: so do logins, on the same server.
    proxy.set(Fault::None);
    let (status, body, _) = ldap_login(&anonymous).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["auth"]["client_token"].is_string());
}

// --- Kubernetes -----------------------------------------------------------

/// How the in-test API server answers a TokenReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Review {
    Answer,
    /// Reads the request, waits this long, then answers.
    Slow(Duration),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

/// An HTTPS Kubernetes API server on 127.0.0.1 that says yes to every
/// TokenReview of `prod/app`: a thread per connection, HTTP/1.1, one
/// request per connection.
struct ApiServer {
    addr: SocketAddr,
    ca_pem: String,
    review: Arc<Mutex<Review>>,
}

impl ApiServer {
    fn start() -> ApiServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key_der)
                .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let review = Arc::new(Mutex::new(Review::Answer));
        let shared = Arc::clone(&review);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tls = Arc::clone(&tls);
                let review = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let _ = serve_review(rustls::StreamOwned::new(conn, stream), &review);
                });
            }
        });
        ApiServer {
            addr,
            ca_pem: ca_cert.pem(),
            review,
        }
    }

    fn set(&self, review: Review) {
        *self.review.lock().unwrap() = review;
    }
}

/// Reads one TokenReview request and answers it as the mode says.
fn serve_review(
    stream: rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    review: &Mutex<Review>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mode = *review.lock().unwrap();
    match mode {
        Review::Answer => {}
        Review::Slow(delay) => std::thread::sleep(delay),
        Review::Hang => loop {
            // Keeps the connection open; the client gives up first.
            std::thread::sleep(Duration::from_secs(60));
        },
    }
    let mut answer = request.clone();
    answer["status"] = json!({
        "authenticated": true,
        "user": {"username": "system:serviceaccount:prod:app", "uid": K8S_SERVICE_ACCOUNT_UID},
        "audiences": request["spec"]["audiences"],
    });
    let answer = answer.to_string();
    let stream = reader.get_mut();
    write!(
        stream,
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    stream.flush()?;
    stream.conn.send_close_notify();
    stream.flush()
}

/// A service-account JWT for `prod/app`, as kube-apiserver projects it
/// (its signature is for the API server to check).
fn service_account_jwt() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    sign_jwt(&key, &projected_claims("prod", "app", "secretd"))
}

/// secretd's limit on a whole TokenReview call (`auth/kubernetes/https.rs`).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

async fn k8s_login(api: &Api, jwt: &str) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (status, body) = api
        .call(
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": "app", "jwt": jwt})),
        )
        .await;
    (status, body, t.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_kubernetes_api_fails_logins_in_bounded_time_and_nothing_else() {
    secretd_tests::install_crypto_provider();
    let cluster = ApiServer::start();
    let proxy = Proxy::start(cluster.addr).await;
    let database = TestDatabase::sqlite();
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    setup(
        &api,
        &[
            ("sys/auth/kubernetes", json!({"type": "kubernetes"})),
            (
                "auth/kubernetes/config",
                json!({
                    "kubernetes_host": format!("https://127.0.0.1:{}", proxy.port),
                    "kubernetes_ca_cert": cluster.ca_pem,
                    "issuer": ISSUER,
                    "disable_local_ca_jwt": true,
                }),
            ),
            (
                "auth/kubernetes/role/app",
                json!({
                    "bound_service_account_names": "app",
                    "bound_service_account_namespaces": "prod",
                    "audience": "secretd",
                    "token_policies": "default",
                }),
            ),
            ("secret/data/app", json!({"data": {"k": "v"}})),
        ],
    )
    .await;
    let anonymous = Api::new(&server.url, "");
    let jwt = service_account_jwt();
    let (status, body, _) = k8s_login(&anonymous, &jwt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["metadata"]["service_account_name"], "app");

    let bound = 3 * REVIEW_TIMEOUT + Duration::from_secs(5);
    // Slow, within the timeout: slower logins that work.
    cluster.set(Review::Slow(Duration::from_secs(1)));
    let (status, body, took) = k8s_login(&anonymous, &jwt).await;
    assert_eq!(status, 200, "{body}");
    assert!(took >= Duration::from_secs(1) && took < bound, "{took:?}");

    // The API server accepts connections and says nothing (not even TLS),
    // or takes the request and never answers.
    for (name, set) in [
        (
            "silent",
            Box::new(|| proxy.set(Fault::Blackhole)) as Box<dyn Fn()>,
        ),
        (
            "hanging",
            Box::new(|| {
                proxy.set(Fault::None);
                cluster.set(Review::Hang);
            }),
        ),
    ] {
        set();
        let login = tokio::spawn({
            let (anonymous, jwt) = (anonymous.clone(), jwt.clone());
            async move { k8s_login(&anonymous, &jwt).await }
        });
        let answered =
            others_keep_answering(&api, Duration::from_secs(2), Duration::from_secs(3)).await;
        assert!(answered > 0);
        let (status, body, took) = within(bound, login, name).await;
        eprintln!("{name}: the login failed after {took:?}");
        assert_eq!(status, 502, "{name}: {body}");
        let message = body["errors"][0].as_str().unwrap_or_default();
        assert!(
            message.contains("Kubernetes API server") && message.contains("try again"),
            "{name}: {body}"
        );
        assert!(took < bound, "{name}: the login took {took:?}");
    }
    let log = server.log();
    assert!(log.contains("kubernetes login refused"), "{log}");
    assert!(log.contains("timed out"), "the log says why: {log}");
    assert!(!log.contains(&jwt), "a JWT reached the log");
    let failures = metric(
        &server.url,
        r#"secretd_login_failures_total{method="kubernetes"}"#,
    )
    .await;
    assert_eq!(failures, Some(2.0));
    let bad_gateway = metric(
        &server.url,
        r#"secretd_http_requests_total{route="auth/kubernetes/",method="POST",status="502"}"#,
    )
    .await;
    assert_eq!(bad_gateway, Some(2.0));

    // The API server answers again: so do logins, on the same server.
    cluster.set(Review::Answer);
    let (status, body, _) = k8s_login(&anonymous, &jwt).await;
    assert_eq!(status, 200, "{body}");
}
