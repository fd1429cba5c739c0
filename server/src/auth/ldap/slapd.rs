//! A throw-away OpenLDAP `slapd` for tests (server unit tests and the
//! end-to-end crate, through the `testing` feature).
//!
//! [`Slapd::start`] writes a `slapd.conf` into a temporary directory
//! (the Debian schemas, an mdb database, the `memberof` overlay so user
//! entries carry `memberOf`), starts slapd in the foreground on a free
//! port of 127.0.0.1 (plus `ldaps://` and StartTLS when given a
//! certificate), waits until it answers and seeds [`USERS`] and the
//! groups below over LDAP. Dropping it kills the process and waits for it;
//! the directory goes with the temporary directory.
//!
//! Without slapd (the Debian package `slapd`) the tests skip with a
//! message, unless `SECRETD_REQUIRE_SERVICES` is set (as in CI): then a
//! missing slapd fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step fails the test

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod};

use crate::storage::testing::REQUIRE_SERVICES_VAR;

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
/// A service account for search-then-bind.
pub const READER_DN: &str = "cn=reader,ou=service,dc=example,dc=org";
pub const READER_PASSWORD: &str = "reader-password";

/// Seeded users: `uid`, `cn`, password. `sam1` and `sam2` share a `cn`
/// (a search by `cn` is ambiguous); `admin` exists so injections aimed at
/// it have a target.
pub const USERS: &[(&str, &str, &str)] = &[
    ("alice", "Alice Liddell", "alice-password"),
    ("bob", "Bob Builder", "bob-password"),
    ("carol", "Carol Danvers", "carol-password"),
    ("sam1", "Sam", "sam1-password"),
    ("sam2", "Sam", "sam2-password"),
    ("zoë", "Zoë Ünicode", "zoë-password"),
    ("admin", "Admin User", "admin-password"),
];

/// Seeded groups below [`GROUPS`]: `groupOfNames` with `member` DNs.
pub const MEMBER_GROUPS: &[(&str, &[&str])] = &[
    ("devs", &["alice"]),
    ("Admins", &["carol"]),
    ("staff", &["alice", "bob", "carol"]),
    ("intl", &["zoë"]),
];

/// Seeded `posixGroup`s below [`GROUPS`] with `memberUid` names (IA5:
/// ASCII only).
pub const POSIX_GROUPS: &[(&str, &[&str])] = &[("ops", &["bob"])];

/// The PEM certificate (chain) and key slapd serves for TLS, and the CA
/// client certificates must come from, if it demands them.
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

pub struct Slapd {
    child: Child,
    port: u16,
    ldaps_port: Option<u16>,
    dir: tempfile::TempDir,
}

fn find_slapd() -> Option<PathBuf> {
    let candidates = [
        "/usr/sbin/slapd",
        "/usr/local/sbin/slapd",
        "/usr/local/libexec/slapd",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("slapd"))
                    .find(|p| p.exists())
            })
        })
}

fn find_modules() -> Option<PathBuf> {
    [
        "/usr/lib/ldap",
        "/usr/lib64/openldap",
        "/usr/lib/openldap",
        "/usr/local/lib/openldap",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|d| d.join("back_mdb.so").exists() || d.join("back_mdb.la").exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn user_dn(uid: &str) -> String {
    format!("uid={},{PEOPLE}", super::escape::dn_value(uid))
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={},{GROUPS}", super::escape::dn_value(cn))
}

impl Slapd {
    /// A plain `ldap://` server, or `None` (with a message) when slapd is
    /// not installed and services are not required.
    pub async fn start() -> Option<Slapd> {
        Slapd::launch(None).await
    }

    /// Also serves `ldaps://` and StartTLS with this certificate.
    pub async fn start_with_tls(tls: TlsFiles) -> Option<Slapd> {
        Slapd::launch(Some(tls)).await
    }

    async fn launch(tls: Option<TlsFiles>) -> Option<Slapd> {
        let (Some(slapd), Some(modules)) = (find_slapd(), find_modules()) else {
            assert!(
                std::env::var_os(REQUIRE_SERVICES_VAR).is_none(),
                "{REQUIRE_SERVICES_VAR} is set but slapd is not installed \
                 (apt-get install slapd ldap-utils): the LDAP tests cannot run"
            );
            eprintln!("skipping: slapd is not installed (apt-get install slapd)");
            return None;
        };
        // A port taken between our probe and slapd's bind makes slapd
        // exit at once: try again with new ports.
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("secretd-slapd-")
                .tempdir()
                .expect("a temporary directory");
            let port = free_port();
            let ldaps_port = tls.as_ref().map(|_| free_port());
            write_config(dir.path(), &modules, tls.as_ref());
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(p) = ldaps_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
            }
            let log = std::fs::File::create(dir.path().join("slapd.log")).unwrap();
            let child = Command::new(&slapd)
                .arg("-d")
                .arg("0")
                .arg("-f")
                .arg(dir.path().join("slapd.conf"))
                .arg("-h")
                .arg(&urls)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting slapd");
            let mut server = Slapd {
                child,
                port,
                ldaps_port,
                dir,
            };
            if server.wait_ready().await {
                server.seed().await;
                return Some(server);
            }
            last_log =
                std::fs::read_to_string(server.dir.path().join("slapd.log")).unwrap_or_default();
        }
        panic!("slapd did not start:\n{last_log}");
    }

    /// Waits until the root DN can bind; false if slapd exited.
    async fn wait_ready(&mut self) -> bool {
        for _ in 0..200 {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(mut ldap) = self.connect().await {
                let bound = ldap
                    .simple_bind(ADMIN_DN, ADMIN_PASSWORD)
                    .await
                    .is_ok_and(|r| r.rc == 0);
                let _ = ldap.unbind().await;
                if bound {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn connect(&self) -> Result<Ldap, ldap3::LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url()).await?;
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        Ok(ldap)
    }

    /// A connection bound as the root DN, to change the directory.
    pub async fn admin(&self) -> Ldap {
        let mut ldap = self.connect().await.expect("connecting to slapd");
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
            .await
            .unwrap()
            .success()
            .expect("binding as the root DN");
        ldap
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS too when started with TLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`; panics without TLS.
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.ldaps_port.expect("slapd was started without TLS")
        )
    }

    async fn seed(&self) {
        let mut ldap = self.admin().await;
        add(
            &mut ldap,
            SUFFIX.into(),
            vec![
                ("objectClass", vec!["dcObject", "organization"]),
                ("dc", vec!["example"]),
                ("o", vec!["Example"]),
            ],
        )
        .await;
        for ou in ["people", "groups", "service"] {
            add(
                &mut ldap,
                format!("ou={ou},{SUFFIX}"),
                vec![
                    ("objectClass", vec!["organizationalUnit"]),
                    ("ou", vec![ou]),
                ],
            )
            .await;
        }
        add(
            &mut ldap,
            READER_DN.into(),
            vec![
                (
                    "objectClass",
                    vec!["organizationalRole", "simpleSecurityObject"],
                ),
                ("cn", vec!["reader"]),
                ("userPassword", vec![READER_PASSWORD]),
            ],
        )
        .await;
        for (uid, cn, password) in USERS {
            let sn = cn.rsplit(' ').next().unwrap_or(cn);
            add(
                &mut ldap,
                user_dn(uid),
                vec![
                    ("objectClass", vec!["inetOrgPerson"]),
                    ("uid", vec![uid]),
                    ("cn", vec![cn]),
                    ("sn", vec![sn]),
                    ("userPassword", vec![password]),
                ],
            )
            .await;
        }
        for (cn, members) in MEMBER_GROUPS {
            let dns: Vec<String> = members.iter().map(|m| user_dn(m)).collect();
            add(
                &mut ldap,
                group_dn(cn),
                vec![
                    ("objectClass", vec!["groupOfNames"]),
                    ("cn", vec![cn]),
                    ("member", dns.iter().map(String::as_str).collect()),
                ],
            )
            .await;
        }
        for (i, (cn, members)) in POSIX_GROUPS.iter().enumerate() {
            let gid = (5000 + i).to_string();
            add(
                &mut ldap,
                group_dn(cn),
                vec![
                    ("objectClass", vec!["posixGroup"]),
                    ("cn", vec![cn]),
                    ("gidNumber", vec![gid.as_str()]),
                    ("memberUid", members.to_vec()),
                ],
            )
            .await;
        }
        let _ = ldap.unbind().await;
    }

    /// Changes a user's password.
    pub async fn set_password(&self, uid: &str, password: &str) {
        self.modify(
            &user_dn(uid),
            vec![Mod::Replace("userPassword", HashSet::from([password]))],
        )
        .await;
    }

    /// Removes a `member` (by uid) from a `groupOfNames`.
    pub async fn remove_member(&self, group: &str, uid: &str) {
        let dn = user_dn(uid);
        self.modify(
            &group_dn(group),
            vec![Mod::Delete("member", HashSet::from([dn.as_str()]))],
        )
        .await;
    }

    /// Adds a `member` (by uid) to a `groupOfNames`.
    pub async fn add_member(&self, group: &str, uid: &str) {
        let dn = user_dn(uid);
        self.modify(
            &group_dn(group),
            vec![Mod::Add("member", HashSet::from([dn.as_str()]))],
        )
        .await;
    }

    async fn modify(&self, dn: &str, mods: Vec<Mod<&str>>) {
        let mut ldap = self.admin().await;
        ldap.modify(dn, mods)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("modifying {dn}: {e}"));
        let _ = ldap.unbind().await;
    }
}

async fn add(ldap: &mut Ldap, dn: String, attrs: Vec<(&str, Vec<&str>)>) {
    let attrs: Vec<(&str, HashSet<&str>)> = attrs
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    ldap.add(&dn, attrs)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, modules: &Path, tls: Option<&TlsFiles>) {
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let schemas = ["core", "cosine", "inetorgperson", "nis"]
        .iter()
        .map(|s| format!("include /etc/ldap/schema/{s}.schema\n"))
        .collect::<String>();
    let mut conf = format!(
        "{schemas}\
         modulepath {modules}\n\
         moduleload back_mdb\n\
         moduleload memberof\n\
         pidfile {pid}\n\
         argsfile {args}\n",
        modules = modules.display(),
        pid = dir.join("slapd.pid").display(),
        args = dir.join("slapd.args").display(),
    );
    if let Some(tls) = tls {
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        std::fs::write(&cert, &tls.cert_pem).unwrap();
        std::fs::write(&key, &tls.key_pem).unwrap();
        conf.push_str(&format!(
            "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            cert.display(),
            key.display()
        ));
        if let Some(client_ca) = &tls.client_ca_pem {
            let ca = dir.join("client-ca.pem");
            std::fs::write(&ca, client_ca).unwrap();
            conf.push_str(&format!(
                "TLSCACertificateFile {}\nTLSVerifyClient demand\n",
                ca.display()
            ));
        }
    }
    // The root password in clear is fine for a throw-away server.
    conf.push_str(&format!(
        "database mdb\n\
         maxsize 67108864\n\
         suffix \"{SUFFIX}\"\n\
         rootdn \"{ADMIN_DN}\"\n\
         rootpw {ADMIN_PASSWORD}\n\
         directory {db}\n\
         overlay memberof\n",
        db = db.display(),
    ));
    std::fs::write(dir.join("slapd.conf"), conf).unwrap();
}
