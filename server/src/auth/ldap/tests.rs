//! The login flow against a real slapd (see `slapd`): binds, searches,
//! groups, escaping, TLS. Policy mapping, renewal and the API are tested
//! through the HTTP layer in `http/tests/ldap.rs`.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::config::{LdapConfig, Secret};
use super::directory::{self, DirectoryError, DirectoryUser};
use super::slapd::{self, Slapd, TlsFiles};

/// Search-free config: `uid=<user>,ou=people,...` binds directly.
fn direct(server: &Slapd) -> LdapConfig {
    LdapConfig {
        url: server.url(),
        userdn: slapd::PEOPLE.into(),
        userattr: "uid".into(),
        groupdn: slapd::GROUPS.into(),
        ..LdapConfig::default()
    }
}

/// Search-then-bind as the reader service account.
fn searching(server: &Slapd) -> LdapConfig {
    LdapConfig {
        binddn: slapd::READER_DN.into(),
        bindpass: Secret::new(slapd::READER_PASSWORD.into()),
        ..direct(server)
    }
}

fn groups(found: Result<DirectoryUser, DirectoryError>) -> Vec<String> {
    let mut groups = found.expect("a successful login").groups;
    groups.sort();
    groups
}

const INJECTIONS: &[&str] = &[
    "*",
    ")(uid=*)",
    "admin)(|(uid=*",
    "\\",
    "\0",
    "*)(objectClass=*",
    "alice)(uid=*",
    "alice*",
    "*lice",
    "alice,ou=people,dc=example,dc=org",
    "admin,ou=people",
    "alice\0",
];

#[tokio::test]
async fn passwords_are_checked_by_binding_as_the_user() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    for cfg in [direct(&server), searching(&server)] {
        let found = directory::authenticate(&cfg, "alice", "alice-password").await;
        assert_eq!(
            found.as_ref().map(|u| u.user_dn.clone()).ok(),
            Some(slapd::user_dn("alice"))
        );
        // `member` (groupOfNames) for alice, `memberUid` (posixGroup) for bob.
        assert_eq!(groups(found), ["devs", "staff"]);
        assert_eq!(
            groups(directory::authenticate(&cfg, "bob", "bob-password").await),
            ["ops", "staff"]
        );
        for (user, password) in [
            ("alice", "wrong"),
            ("alice", "bob-password"),
            ("nobody", "alice-password"),
            ("alice", ""),
        ] {
            let err = directory::authenticate(&cfg, user, password)
                .await
                .unwrap_err();
            assert!(
                matches!(err, DirectoryError::UserBind),
                "{user}/{password}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                "ldap operation failed: failed to bind as user"
            );
        }
    }
}

#[tokio::test]
async fn search_then_bind_needs_exactly_one_entry_and_a_working_service_account() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let by_cn = LdapConfig {
        userattr: "cn".into(),
        ..searching(&server)
    };
    let found = directory::authenticate(&by_cn, "Alice Liddell", "alice-password").await;
    assert_eq!(found.unwrap().user_dn, slapd::user_dn("alice"));
    // Two entries have cn=Sam: neither may log in by that name.
    for password in ["sam1-password", "sam2-password"] {
        assert!(matches!(
            directory::authenticate(&by_cn, "Sam", password).await,
            Err(DirectoryError::UserBind)
        ));
    }
    let bad_service = LdapConfig {
        bindpass: Secret::new("not-the-reader-password".into()),
        ..searching(&server)
    };
    assert!(matches!(
        directory::authenticate(&bad_service, "alice", "alice-password").await,
        Err(DirectoryError::UserBind)
    ));
    // discoverdn without a bindpass searches anonymously (slapd allows it).
    let anonymous = LdapConfig {
        discoverdn: true,
        binddn: String::new(),
        ..direct(&server)
    };
    assert!(
        directory::authenticate(&anonymous, "alice", "alice-password")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn injection_strings_log_nobody_in() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let passwords: Vec<&str> = slapd::USERS.iter().map(|(_, _, p)| *p).collect();
    let by_cn = LdapConfig {
        userattr: "cn".into(),
        ..searching(&server)
    };
    for cfg in [direct(&server), searching(&server), by_cn] {
        for name in INJECTIONS {
            for password in &passwords {
                let result = directory::authenticate(&cfg, name, password).await;
                assert!(
                    matches!(result, Err(DirectoryError::UserBind)),
                    "{name:?} with {password:?} ({}): {result:?}",
                    cfg.userattr
                );
            }
        }
    }
    // The rendered filter carries the name as a literal value.
    let cfg = searching(&server);
    assert_eq!(
        directory::user_filter(&cfg, "admin)(|(uid=*").unwrap(),
        "(uid=admin\\29\\28|\\28uid=\\2a)"
    );
    assert_eq!(
        directory::direct_bind_dn(&cfg, "a,b=c"),
        format!("uid=a\\,b\\=c,{}", slapd::PEOPLE)
    );
    assert_eq!(
        directory::group_filter(&cfg, "*", "uid=x)(cn=*,dc=y").unwrap(),
        "(|(memberUid=\\2a)(member=uid=x\\29\\28cn=\\2a,dc=y)(uniqueMember=uid=x\\29\\28cn=\\2a,dc=y))"
    );
}

#[tokio::test]
async fn non_ascii_names_are_escaped_and_still_found() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    for cfg in [direct(&server), searching(&server)] {
        let found = directory::authenticate(&cfg, "zoë", "zoë-password").await;
        assert_eq!(groups(found), ["intl"]);
    }
}

#[tokio::test]
async fn groups_come_from_member_of_with_groupattr() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let cfg = LdapConfig {
        groupdn: slapd::PEOPLE.into(),
        groupfilter: "(&(objectClass=inetOrgPerson)(uid={{.Username}}))".into(),
        groupattr: "memberOf".into(),
        ..searching(&server)
    };
    assert_eq!(
        groups(directory::authenticate(&cfg, "alice", "alice-password").await),
        ["devs", "staff"]
    );
    assert_eq!(
        groups(directory::authenticate(&cfg, "carol", "carol-password").await),
        ["Admins", "staff"]
    );
    // Paged group searches find the same.
    let paged = LdapConfig {
        max_page_size: 1,
        ..searching(&server)
    };
    assert_eq!(
        groups(directory::authenticate(&paged, "carol", "carol-password").await),
        ["Admins", "staff"]
    );
    // No groupdn: no group search, and no groups.
    let none = LdapConfig {
        groupdn: String::new(),
        ..searching(&server)
    };
    assert!(groups(directory::authenticate(&none, "alice", "alice-password").await).is_empty());
    // A group search anonymous instead of as binddn.
    let anonymous = LdapConfig {
        anonymous_group_search: true,
        ..direct(&server)
    };
    assert_eq!(
        groups(directory::authenticate(&anonymous, "alice", "alice-password").await),
        ["devs", "staff"]
    );
}

#[tokio::test]
async fn urls_are_tried_in_order() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("ldap://127.0.0.1:{port}")
    };
    let cfg = LdapConfig {
        url: format!("{dead},{}", server.url()),
        ..direct(&server)
    };
    assert!(
        directory::authenticate(&cfg, "alice", "alice-password")
            .await
            .is_ok()
    );
    let cfg = LdapConfig {
        url: dead,
        ..direct(&server)
    };
    assert!(matches!(
        directory::authenticate(&cfg, "alice", "alice-password").await,
        Err(DirectoryError::Connect)
    ));
}

/// Everything logged on this thread while the guard lives.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_show_the_filters_and_groups_but_never_a_password() {
    let Some(server) = Slapd::start().await else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: every task of this test logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let cfg = searching(&server);
    directory::authenticate(&cfg, "alice", "alice-password")
        .await
        .unwrap();
    let _ = directory::authenticate(&cfg, "alice", "a-wrong-password").await;
    let bad_service = LdapConfig {
        bindpass: Secret::new("a-wrong-bindpass".into()),
        ..searching(&server)
    };
    let _ = directory::authenticate(&bad_service, "alice", "alice-password").await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in [
        "alice-password",
        "a-wrong-password",
        slapd::READER_PASSWORD,
        "a-wrong-bindpass",
    ] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
    assert!(
        log.contains("(|(memberUid=alice)(member=uid=alice,ou=people,dc=example,dc=org)"),
        "the rendered group filter is logged:\n{log}"
    );
    assert!(log.contains(r#"ldap.groups=["devs", "staff"]"#), "{log}");
}

#[tokio::test]
async fn a_silent_server_runs_into_the_timeouts() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let silent = LdapConfig {
        url: format!("ldap://127.0.0.1:{port}"),
        userdn: slapd::PEOPLE.into(),
        connection_timeout: 1,
        request_timeout: 1,
        ..LdapConfig::default()
    };
    // The TCP connection succeeds; the bind never gets an answer.
    assert!(matches!(
        directory::authenticate(&silent, "alice", "alice-password").await,
        Err(DirectoryError::Timeout)
    ));
    // StartTLS and ldaps never finish connecting.
    let with_ca = LdapConfig {
        certificate: pki("unused CA").ca_pem,
        ..silent.clone()
    };
    for cfg in [
        LdapConfig {
            starttls: true,
            ..with_ca.clone()
        },
        LdapConfig {
            url: format!("ldaps://127.0.0.1:{port}"),
            ..with_ca.clone()
        },
    ] {
        assert!(matches!(
            directory::authenticate(&cfg, "alice", "alice-password").await,
            Err(DirectoryError::Connect)
        ));
    }
    holder.abort();
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
struct Pki {
    ca_pem: String,
    tls: TlsFiles,
    issuer: Issuer<'static, KeyPair>,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        tls: TlsFiles {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_ca_pem: None,
        },
        issuer,
    }
}

/// A client certificate from `pki`'s CA: (certificate PEM, key PEM).
fn client_certificate(pki: &Pki) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "secretd");
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_server_with_the_configured_ca() {
    let right = pki("secretd LDAP test CA");
    let wrong = pki("some other CA");
    let Some(server) = Slapd::start_with_tls(right.tls).await else {
        return;
    };
    let only_tls13 = LdapConfig {
        url: server.ldaps_url(),
        certificate: right.ca_pem.clone(),
        tls_min_version: "tls13".into(),
        tls_max_version: "tls13".into(),
        ..searching(&server)
    };
    assert!(
        directory::authenticate(&only_tls13, "alice", "alice-password")
            .await
            .is_ok()
    );
    let ldaps = LdapConfig {
        url: server.ldaps_url(),
        certificate: right.ca_pem.clone(),
        ..searching(&server)
    };
    let starttls = LdapConfig {
        url: server.url(),
        starttls: true,
        certificate: right.ca_pem.clone(),
        ..searching(&server)
    };
    for cfg in [&ldaps, &starttls] {
        let found = directory::authenticate(cfg, "alice", "alice-password").await;
        assert_eq!(groups(found), ["devs", "staff"], "{}", cfg.url);
        let refused = directory::authenticate(cfg, "alice", "wrong").await;
        assert!(matches!(refused, Err(DirectoryError::UserBind)));
        // TLS 1.3 allowed as well.
        let tls13 = LdapConfig {
            tls_max_version: "tls13".into(),
            ..cfg.clone()
        };
        assert!(
            directory::authenticate(&tls13, "alice", "alice-password")
                .await
                .is_ok()
        );

        // Another CA: no connection, whatever the password.
        let other_ca = LdapConfig {
            certificate: wrong.ca_pem.clone(),
            ..cfg.clone()
        };
        assert!(matches!(
            directory::authenticate(&other_ca, "alice", "alice-password").await,
            Err(DirectoryError::Connect)
        ));
        // ...unless verification is switched off on purpose.
        let insecure = LdapConfig {
            insecure_tls: true,
            ..other_ca
        };
        assert!(
            directory::authenticate(&insecure, "alice", "alice-password")
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn a_server_that_demands_a_client_certificate_gets_the_configured_one() {
    let mut server_pki = pki("secretd LDAP server CA");
    let client_pki = pki("secretd LDAP client CA");
    server_pki.tls.client_ca_pem = Some(client_pki.ca_pem.clone());
    let (client_cert, client_key) = client_certificate(&client_pki);
    let Some(server) = Slapd::start_with_tls(server_pki.tls).await else {
        return;
    };
    let without = LdapConfig {
        url: server.ldaps_url(),
        certificate: server_pki.ca_pem.clone(),
        ..searching(&server)
    };
    assert!(matches!(
        directory::authenticate(&without, "alice", "alice-password").await,
        Err(DirectoryError::Connect | DirectoryError::UserBind)
    ));
    let with = LdapConfig {
        client_tls_cert: client_cert,
        client_tls_key: Secret::new(client_key),
        ..without
    };
    with.validate().unwrap();
    assert_eq!(
        groups(directory::authenticate(&with, "alice", "alice-password").await),
        ["devs", "staff"]
    );
}

#[test]
fn upn_logins_bind_as_user_at_domain_and_search_by_upn() {
    let cfg = LdapConfig {
        upndomain: "corp.example.com".into(),
        userdn: "dc=corp,dc=example,dc=com".into(),
        ..LdapConfig::default()
    };
    assert_eq!(
        directory::direct_bind_dn(&cfg, "alice"),
        "alice@corp.example.com"
    );
    assert_eq!(
        directory::direct_bind_dn(&cfg, "a,b"),
        "a\\,b@corp.example.com"
    );
    assert_eq!(
        directory::user_filter(&cfg, "al*ce").unwrap(),
        "(userPrincipalName=al\\2ace@corp.example.com)"
    );
}
