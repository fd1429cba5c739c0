//! `auth/<mount>/config`: how to reach the directory and find users and
//! groups, with Vault's field names and defaults.
//!
//! The config is one sealed entry (`config`); `bindpass` and
//! `client_tls_key` are kept in zeroizing strings, never printed and never
//! returned by a read. A write changes only the fields it carries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::escape;
use crate::auth::method::TokenSettings;
use crate::core::{Error, Fields};

pub const DEFAULT_URL: &str = "ldap://127.0.0.1";
pub const DEFAULT_USERATTR: &str = "cn";
pub const DEFAULT_USERFILTER: &str = "({{.UserAttr}}={{.Username}})";
pub const DEFAULT_GROUPFILTER: &str =
    "(|(memberUid={{.Username}})(member={{.UserDN}})(uniqueMember={{.UserDN}}))";
pub const DEFAULT_GROUPATTR: &str = "cn";
pub const DEFAULT_CONNECTION_TIMEOUT: u64 = 30;
pub const DEFAULT_REQUEST_TIMEOUT: u64 = 90;
pub const DEFAULT_TLS_VERSION: &str = "tls12";

/// A secret string: zeroized on drop, `Debug` prints no content, and it
/// serialises only into the sealed config entry.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<empty>)"
        } else {
            "Secret(<redacted>)"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// The TLS versions Vault names; rustls speaks only 1.2 and 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn parse(name: &str, field: &str) -> Result<TlsVersion, Error> {
        match name {
            "tls10" => Ok(TlsVersion::Tls10),
            "tls11" => Ok(TlsVersion::Tls11),
            "tls12" => Ok(TlsVersion::Tls12),
            "tls13" => Ok(TlsVersion::Tls13),
            other => Err(Error::invalid(format!(
                "invalid '{field}' {other:?}: use tls10, tls11, tls12 or tls13"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    pub url: String,
    pub starttls: bool,
    pub insecure_tls: bool,
    pub certificate: String,
    pub client_tls_cert: String,
    pub client_tls_key: Secret,
    pub tls_min_version: String,
    pub tls_max_version: String,
    pub connection_timeout: u64,
    pub request_timeout: u64,
    pub binddn: String,
    pub bindpass: Secret,
    pub userdn: String,
    pub userattr: String,
    pub userfilter: String,
    pub upndomain: String,
    pub discoverdn: bool,
    pub deny_null_bind: bool,
    pub groupdn: String,
    pub groupfilter: String,
    pub groupattr: String,
    pub anonymous_group_search: bool,
    pub case_sensitive_names: bool,
    pub username_as_alias: bool,
    pub dereference_aliases: String,
    pub max_page_size: u32,
    pub use_pre111_group_cn_behavior: bool,
    pub token: TokenSettings,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: DEFAULT_URL.to_owned(),
            starttls: false,
            insecure_tls: false,
            certificate: String::new(),
            client_tls_cert: String::new(),
            client_tls_key: Secret::default(),
            tls_min_version: DEFAULT_TLS_VERSION.to_owned(),
            tls_max_version: DEFAULT_TLS_VERSION.to_owned(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            binddn: String::new(),
            bindpass: Secret::default(),
            userdn: String::new(),
            userattr: DEFAULT_USERATTR.to_owned(),
            userfilter: DEFAULT_USERFILTER.to_owned(),
            upndomain: String::new(),
            discoverdn: false,
            deny_null_bind: true,
            groupdn: String::new(),
            groupfilter: DEFAULT_GROUPFILTER.to_owned(),
            groupattr: DEFAULT_GROUPATTR.to_owned(),
            anonymous_group_search: false,
            case_sensitive_names: false,
            username_as_alias: false,
            dereference_aliases: "never".to_owned(),
            max_page_size: 0,
            use_pre111_group_cn_behavior: false,
            token: TokenSettings::default(),
        }
    }
}

impl LdapConfig {
    /// The URLs to try, in order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    /// Applies a `config` write over the current values and checks the
    /// result. Answers the warnings the write earns.
    pub fn update(&mut self, fields: &mut Fields<'_>) -> Result<Vec<String>, Error> {
        macro_rules! set {
            ($name:ident, string) => {
                if let Some(v) = fields.string(stringify!($name))? {
                    self.$name = v.trim().to_owned();
                }
            };
            ($name:ident, bool) => {
                if let Some(v) = fields.bool(stringify!($name))? {
                    self.$name = v;
                }
            };
        }
        if let Some(urls) = fields.string_list("url")? {
            self.url = urls.join(",");
        }
        set!(starttls, bool);
        set!(insecure_tls, bool);
        if let Some(v) = fields.string("certificate")? {
            self.certificate = v;
        }
        if let Some(v) = fields.string("client_tls_cert")? {
            self.client_tls_cert = v;
        }
        if let Some(v) = fields.string("client_tls_key")? {
            self.client_tls_key = Secret::new(v);
        }
        set!(tls_min_version, string);
        set!(tls_max_version, string);
        if let Some(v) = fields.duration("connection_timeout")? {
            self.connection_timeout = if v == 0 {
                DEFAULT_CONNECTION_TIMEOUT
            } else {
                v
            };
        }
        if let Some(v) = fields.duration("request_timeout")? {
            self.request_timeout = if v == 0 { DEFAULT_REQUEST_TIMEOUT } else { v };
        }
        set!(binddn, string);
        if let Some(v) = fields.string("bindpass")? {
            self.bindpass = Secret::new(v);
        }
        set!(userdn, string);
        set!(userattr, string);
        set!(userfilter, string);
        set!(upndomain, string);
        set!(discoverdn, bool);
        set!(deny_null_bind, bool);
        set!(groupdn, string);
        set!(groupfilter, string);
        set!(groupattr, string);
        set!(anonymous_group_search, bool);
        set!(case_sensitive_names, bool);
        set!(username_as_alias, bool);
        set!(dereference_aliases, string);
        set!(use_pre111_group_cn_behavior, bool);
        if let Some(v) = fields.u32("max_page_size")? {
            self.max_page_size = v.min(i32::MAX as u32);
        }
        if fields.bool("use_token_groups")? == Some(true) {
            return Err(Error::invalid(
                "use_token_groups is not supported; for nested Active Directory groups use \
                 groupfilter=(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={{.UserDN}}))",
            ));
        }
        self.token.update(fields)?;
        // A misspelt security setting (`startls`) must not be ignored.
        fields.refuse_unrecognized()?;
        if self.userattr.is_empty() {
            self.userattr = DEFAULT_USERATTR.to_owned();
        }
        if self.userfilter.is_empty() {
            self.userfilter = DEFAULT_USERFILTER.to_owned();
        }
        if self.url.is_empty() {
            self.url = DEFAULT_URL.to_owned();
        }
        self.validate()
    }

    /// Checks the config as a whole; answers warnings for what is allowed
    /// but weakened.
    pub fn validate(&self) -> Result<Vec<String>, Error> {
        let mut warnings = Vec::new();
        for url in self.urls() {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("ldap" | "ldaps")) {
                return Err(Error::invalid(format!(
                    "invalid url {url:?}: use ldap://host[:port] or ldaps://host[:port]"
                )));
            }
        }
        let min = TlsVersion::parse(&self.tls_min_version, "tls_min_version")?;
        let max = TlsVersion::parse(&self.tls_max_version, "tls_max_version")?;
        if max < min {
            return Err(Error::invalid(
                "'tls_max_version' must be greater than or equal to 'tls_min_version'",
            ));
        }
        if max < TlsVersion::Tls12 {
            return Err(Error::invalid(
                "TLS 1.0 and 1.1 are not supported: tls_max_version must be tls12 or tls13",
            ));
        }
        if min < TlsVersion::Tls12 {
            warnings.push(
                "TLS 1.0 and 1.1 are not supported: connections use TLS 1.2 or later".to_owned(),
            );
        }
        if self.client_tls_cert.is_empty() != self.client_tls_key.is_empty() {
            return Err(Error::invalid(
                "both client_tls_cert and client_tls_key must be set",
            ));
        }
        super::tls::check_pem(self).map_err(Error::invalid)?;
        if self.insecure_tls {
            warnings.push(
                "insecure_tls is set: the LDAP server's certificate will not be verified"
                    .to_owned(),
            );
        }
        let sample = [("UserAttr", "uid"), ("Username", "alice")];
        let filter = escape::render(&self.userfilter, &sample).map_err(Error::invalid)?;
        check_filter("userfilter", &filter)?;
        if !self.groupfilter.is_empty() {
            let sample = [("UserDN", "uid=alice,dc=example"), ("Username", "alice")];
            let filter = escape::render(&self.groupfilter, &sample).map_err(Error::invalid)?;
            check_filter("groupfilter", &filter)?;
        }
        if !matches!(
            self.dereference_aliases.as_str(),
            "never" | "finding" | "searching" | "always"
        ) {
            return Err(Error::invalid(
                "dereference_aliases must be never, finding, searching or always",
            ));
        }
        Ok(warnings)
    }

    /// The `data` of a read: every field but the secrets, as Vault shows it.
    pub fn output(&self) -> Map<String, Value> {
        let mut data = Map::new();
        let mut put = |k: &str, v: Value| {
            data.insert(k.to_owned(), v);
        };
        put("url", self.url.clone().into());
        put("starttls", self.starttls.into());
        put("insecure_tls", self.insecure_tls.into());
        put("certificate", self.certificate.clone().into());
        if !self.client_tls_cert.is_empty() {
            put("client_tls_cert", self.client_tls_cert.clone().into());
        }
        put("tls_min_version", self.tls_min_version.clone().into());
        put("tls_max_version", self.tls_max_version.clone().into());
        put("connection_timeout", self.connection_timeout.into());
        put("request_timeout", self.request_timeout.into());
        put("binddn", self.binddn.clone().into());
        put("userdn", self.userdn.clone().into());
        put("userattr", self.userattr.clone().into());
        put("userfilter", self.userfilter.clone().into());
        put("upndomain", self.upndomain.clone().into());
        put("discoverdn", self.discoverdn.into());
        put("deny_null_bind", self.deny_null_bind.into());
        put("groupdn", self.groupdn.clone().into());
        put("groupfilter", self.groupfilter.clone().into());
        put("groupattr", self.groupattr.clone().into());
        put("use_token_groups", false.into());
        put("anonymous_group_search", self.anonymous_group_search.into());
        put("case_sensitive_names", self.case_sensitive_names.into());
        put("username_as_alias", self.username_as_alias.into());
        put(
            "dereference_aliases",
            self.dereference_aliases.clone().into(),
        );
        put("max_page_size", self.max_page_size.into());
        put(
            "use_pre111_group_cn_behavior",
            self.use_pre111_group_cn_behavior.into(),
        );
        self.token.output(&mut data);
        data
    }

    /// A username or local name as it is matched: lower-cased unless
    /// `case_sensitive_names`.
    pub fn canonical(&self, name: &str) -> String {
        if self.case_sensitive_names {
            name.to_owned()
        } else {
            name.to_lowercase()
        }
    }
}

fn check_filter(field: &str, filter: &str) -> Result<(), Error> {
    ldap3::parse_filter(filter)
        .map(|_| ())
        .map_err(|()| Error::invalid(format!("{field} is not a valid LDAP filter: {filter:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn write(cfg: &mut LdapConfig, body: Value) -> Result<Vec<String>, Error> {
        let data = map(body);
        cfg.update(&mut Fields::new(&data))
    }

    #[test]
    fn defaults_are_vaults() {
        let out = LdapConfig::default().output();
        assert_eq!(out["url"], "ldap://127.0.0.1");
        assert_eq!(out["userattr"], "cn");
        assert_eq!(out["deny_null_bind"], true);
        assert_eq!(out["connection_timeout"], 30);
        assert_eq!(out["request_timeout"], 90);
        assert_eq!(out["tls_min_version"], "tls12");
        assert_eq!(out["groupfilter"], DEFAULT_GROUPFILTER);
        assert_eq!(out["dereference_aliases"], "never");
        assert!(!out.contains_key("bindpass") && !out.contains_key("client_tls_key"));
    }

    #[test]
    fn writes_merge_and_secrets_never_show() {
        let mut cfg = LdapConfig::default();
        write(
            &mut cfg,
            json!({"url": "ldap://a:389,ldaps://b", "binddn": "cn=r", "bindpass": "s3cret-pw"}),
        )
        .unwrap();
        write(&mut cfg, json!({"userattr": "uid"})).unwrap();
        assert_eq!(
            cfg.urls().collect::<Vec<_>>(),
            ["ldap://a:389", "ldaps://b"]
        );
        assert_eq!(cfg.bindpass.expose(), "s3cret-pw");
        let shown = Value::Object(cfg.output()).to_string();
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(!format!("{cfg:?}").contains("s3cret-pw"));
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        let cases = [
            (json!({"url": "http://x"}), "invalid url"),
            (
                json!({"tls_max_version": "tls11", "tls_min_version": "tls10"}),
                "not supported",
            ),
            (json!({"tls_min_version": "tls13"}), "greater than or equal"),
            (json!({"tls_min_version": "ssl3"}), "tls_min_version"),
            (json!({"client_tls_key": "x"}), "both client_tls_cert"),
            (
                json!({"userfilter": "(uid={{.Nope}})"}),
                "unknown placeholder",
            ),
            (
                json!({"groupfilter": "(member={{.UserDN}}"}),
                "not a valid LDAP filter",
            ),
            (
                json!({"dereference_aliases": "sometimes"}),
                "dereference_aliases",
            ),
            (json!({"use_token_groups": true}), "use_token_groups"),
            (json!({"certificate": "not a pem"}), "certificate"),
        ];
        for (body, expected) in cases {
            let err = write(&mut LdapConfig::default(), body.clone()).unwrap_err();
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
        let warnings = write(
            &mut LdapConfig::default(),
            json!({"tls_min_version": "tls10"}),
        )
        .unwrap();
        assert!(warnings[0].contains("TLS 1.2 or later"));
    }
}
