//! TLS with a certificate from a private CA: secretctl and the client
//! library verify it with `--ca-cert`/`ca_cert_file`, refuse it without
//! (unless told `--tls-skip-verify`, which warns), and plain HTTP to the
//! TLS listener gets nowhere. A renewed certificate is served after SIGHUP
//! or once the files change, without dropping open connections; with
//! `tls_client_ca_file`, clients must show a certificate. Connections to
//! PostgreSQL (storage and the database engine) with `sslmode=verify-full`
//! verify the server against `sslrootcert` and refuse another CA's.

use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use secretd::engines::database::private_pg::{PrivatePostgres, SUPERUSER_PASSWORD};
use secretd_client::Client;
use secretd_tests::{
    Api, Server, TestDatabase, binary, config_file, initialize_static, secretctl, secretctl_env,
    signal, static_seal_config,
};
use serde_json::json;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a server certificate for 127.0.0.1 and localhost.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        Pki::issue(dir.path(), "");
        Pki { dir }
    }

    /// Writes `{prefix}ca.pem`, `{prefix}server.pem`, `{prefix}server.key`
    /// and a client certificate (`{prefix}client.pem` with its key) of a
    /// new CA into `dir`.
    fn issue(dir: &std::path::Path, prefix: &str) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "secretd test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["app".to_owned()]).unwrap();
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(format!("{prefix}{name}")), text).unwrap();
        };
        write("ca.pem", ca_cert.pem());
        write("server.pem", server_cert.pem());
        write("server.key", server_key.serialize_pem());
        write(
            "client.pem",
            format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A TLS server with the PKI's certificate and `extra` listener lines.
fn tls_server(pki: &Pki, database: &TestDatabase, extra: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{extra}\
         [storage]\nurl = \"{}\"\n",
        pki.path("server.pem"),
        pki.path("server.key"),
        database.url
    );
    let config_path = dir.path().join("secretd.toml");
    std::fs::write(&config_path, config).unwrap();
    (Server::from_config_file(&config_path), dir)
}

/// An HTTP client trusting `ca`, optionally showing a client certificate.
fn https_client(ca: &str, identity: Option<&str>) -> reqwest::Client {
    secretd_tests::install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .pool_idle_timeout(Duration::from_secs(120));
    if let Some(pem) = identity {
        builder =
            builder.identity(reqwest::Identity::from_pem(&std::fs::read(pem).unwrap()).unwrap());
    }
    builder.build().unwrap()
}

async fn seal_status(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    Ok(client
        .get(format!("{url}/v1/sys/seal-status"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_verify_the_server_certificate() {
    let pki = Pki::new();
    let database = TestDatabase::sqlite();
    let (server, _dir) = tls_server(&pki, &database, "");
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let ca = pki.path("ca.pem");
    let verified = secretctl(&server.url, "", &["--ca-cert", &ca, "status"]);
    assert_eq!(
        verified.status.code(),
        Some(2),
        "reachable and sealed: {verified:?}"
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Sealed"));
    let unverified = secretctl(&server.url, "", &["status"]);
    assert_eq!(
        unverified.status.code(),
        Some(1),
        "an unknown issuer is refused"
    );
    assert!(
        String::from_utf8_lossy(&unverified.stderr)
            .to_lowercase()
            .contains("certificate")
    );

    let client = Client::builder()
        .address(&server.url)
        .ca_cert_file(&ca)
        .build()
        .unwrap();
    let status = client.sys().seal_status().await.unwrap();
    assert!(!status.initialized);
    let stranger = Client::builder().address(&server.url).build().unwrap();
    assert!(stranger.sys().seal_status().await.is_err());

    let plain = server.url.replace("https://", "http://");
    let over_http = Client::builder().address(&plain).build().unwrap();
    assert!(
        over_http.sys().seal_status().await.is_err(),
        "plain HTTP gets no answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skipping_verification_is_possible_only_when_asked_and_warned_about() {
    let pki = Pki::new();
    let database = TestDatabase::sqlite();
    let (server, _dir) = tls_server(&pki, &database, "");
    let refused = secretctl(&server.url, "", &["status"]);
    assert_eq!(refused.status.code(), Some(1));
    for (env, args) in [
        (vec![], vec!["--tls-skip-verify", "status"]),
        (vec![("SECRETD_SKIP_VERIFY", "1")], vec!["status"]),
        (vec![("VAULT_SKIP_VERIFY", "true")], vec!["status"]),
    ] {
        let out = secretctl_env(&server.url, "", &env, &args, None);
        assert_eq!(out.status.code(), Some(2), "reachable and sealed: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("WARNING: TLS certificate checks are off"),
            "{stderr}"
        );
    }
    let off = secretctl_env(
        &server.url,
        "",
        &[("SECRETD_SKIP_VERIFY", "0")],
        &["status"],
        None,
    );
    assert_eq!(off.status.code(), Some(1), "0 means no");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_without_dropping_connections() {
    let pki = Pki::new();
    // The renewal comes from another CA, so it is plain which one is served.
    Pki::issue(pki.dir.path(), "new-");
    let database = TestDatabase::sqlite();
    let (server, _dir) = tls_server(&pki, &database, "");
    let old_client = https_client(&pki.path("ca.pem"), None);
    assert_eq!(seal_status(&old_client, &server.url).await.unwrap(), 200);
    let new_client = https_client(&pki.path("new-ca.pem"), None);
    assert!(seal_status(&new_client, &server.url).await.is_err());

    // cert-manager (or an operator) replaces the files; SIGHUP.
    for name in ["server.pem", "server.key"] {
        std::fs::copy(pki.path(&format!("new-{name}")), pki.path(name)).unwrap();
    }
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while seal_status(&new_client, &server.url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate is never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the renewal still works; a new one
    // trusting only the old CA does not.
    assert_eq!(seal_status(&old_client, &server.url).await.unwrap(), 200);
    let fresh_old = https_client(&pki.path("ca.pem"), None);
    assert!(seal_status(&fresh_old, &server.url).await.is_err());

    // A third renewal, this time without a signal: the
    // server notices the files changed.
    Pki::issue(pki.dir.path(), "third-");
    for name in ["server.pem", "server.key"] {
        std::fs::copy(pki.path(&format!("third-{name}")), pki.path(name)).unwrap();
    }
    let third_client = https_client(&pki.path("third-ca.pem"), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seal_status(&third_client, &server.url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the changed files are never noticed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file is refused; the last good certificate stays.
    std::fs::write(pki.path("server.pem"), "not a certificate").unwrap();
    signal(server.pid(), "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = https_client(&pki.path("third-ca.pem"), None);
    assert_eq!(seal_status(&again, &server.url).await.unwrap(), 200);
    assert!(
        server
            .log()
            .contains("still serving the previous certificate")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_client_ca_every_client_shows_a_certificate() {
    let pki = Pki::new();
    Pki::issue(pki.dir.path(), "other-");
    let database = TestDatabase::sqlite();
    let extra = format!("tls_client_ca_file = \"{}\"\n", pki.path("ca.pem"));
    let (server, _dir) = tls_server(&pki, &database, &extra);
    let ca = pki.path("ca.pem");
    let anonymous = https_client(&ca, None);
    assert!(seal_status(&anonymous, &server.url).await.is_err());
    let stranger = https_client(&ca, Some(&pki.path("other-client.pem")));
    assert!(seal_status(&stranger, &server.url).await.is_err());
    let known = https_client(&ca, Some(&pki.path("client.pem")));
    assert_eq!(seal_status(&known, &server.url).await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_connections_verify_the_server_certificate() {
    let pki = Pki::new();
    Pki::issue(pki.dir.path(), "wrong-");
    let read = |name: &str| std::fs::read_to_string(pki.path(name)).unwrap();
    // This cluster takes TCP connections only over TLS (hostssl).
    let Some(pg) = PrivatePostgres::start_with_tls(&read("server.pem"), &read("server.key")) else {
        return;
    };
    let base = pg.url("postgres", SUPERUSER_PASSWORD);
    let verified = |ca: &str| format!("{base}?sslmode=verify-full&sslrootcert={}", pki.path(ca));
    let config = |url: &str| {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("connect_timeout = 5\n\n{}", static_seal_config(&dir));
        let path = config_file(dir.path(), url, &extra);
        (dir, path)
    };

    // Storage: another CA's server, or no TLS at all, and secretd does not
    // start, saying why.
    for (url, says) in [
        (verified("wrong-ca.pem"), "certificate"),
        (format!("{base}?sslmode=disable"), "no encryption"),
    ] {
        let (_dir, path) = config(&url);
        let mut child = std::process::Command::new(binary("secretd"))
            .arg("server")
            .arg("--config")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "secretd kept running with {url}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{url}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains(SUPERUSER_PASSWORD), "{stderr}");
    }

    // The right CA: secretd serves from it.
    let (_dir, path) = config(&verified("ca.pem"));
    let server = Server::from_config_file(&path);
    let root = initialize_static(&server).await;
    let api = Api::new(&server.url, &root);
    let (code, _) = api
        .call("PUT", "secret/data/x", Some(json!({"data": {"v": 1}})))
        .await;
    assert_eq!(code, 200);

    // The database engine's connection URL: refused with another CA's
    // root, accepted and used with the right one.
    assert_eq!(
        api.call(
            "POST",
            "sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .await
        .0,
        204
    );
    let templated = format!(
        "postgres://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
        pg.port
    );
    let engine_config = |ca: &str| {
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("{templated}?sslmode=verify-full&sslrootcert={}", pki.path(ca)),
            "username": "postgres",
            "password": SUPERUSER_PASSWORD,
            "allowed_roles": "app",
        })
    };
    let (code, body) = api
        .call(
            "POST",
            "database/config/pg",
            Some(engine_config("wrong-ca.pem")),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("certificate"), "{body}");
    let (code, body) = api
        .call("POST", "database/config/pg", Some(engine_config("ca.pem")))
        .await;
    assert!(code == 200 || code == 204, "{code} {body}");
    let role = json!({
        "db_name": "pg",
        "default_ttl": "1h",
        "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
    });
    assert_eq!(
        api.call("POST", "database/roles/app", Some(role)).await.0,
        204
    );
    let (code, creds) = api.call("GET", "database/creds/app", None).await;
    assert_eq!(code, 200, "{creds}");
    assert!(creds["data"]["username"].is_string());
}
