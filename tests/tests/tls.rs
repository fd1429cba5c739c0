//! TLS with a certificate from a private CA: secretctl and the client
//! library verify it with `--ca-cert`/`ca_cert_file`, refuse it without,
//! and plain HTTP to the TLS listener gets nowhere.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use secretd_client::Client;
use secretd_tests::{Server, TestDatabase, secretctl};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a server certificate for 127.0.0.1 and localhost.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
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
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_verify_the_server_certificate() {
    let pki = Pki::new();
    let database = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\
         [storage]\nurl = \"{}\"\n",
        pki.path("server.pem"),
        pki.path("server.key"),
        database.url
    );
    let config_path = dir.path().join("secretd.toml");
    std::fs::write(&config_path, config).unwrap();
    let server = Server::from_config_file(&config_path);
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
