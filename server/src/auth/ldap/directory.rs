//! Talking to the directory: Vault's LDAP login flow over `ldap3`.
//!
//! 1. Dial the URLs in order (StartTLS on `ldap://` if set; `ldaps://`).
//! 2. Find the DN to bind as: search-then-bind with `binddn`/`bindpass`
//!    (or `discoverdn`), where exactly one entry must match; otherwise
//!    `user@upndomain` or `userattr=<user>,userdn`.
//! 3. Bind as the user with the password.
//! 4. Re-bind as `binddn`, find the user's DN (a UPN search), and search
//!    `groupdn` with `groupfilter` for `groupattr`; each value (or entry
//!    DN) gives a group name, its first CN.
//!
//! Every user-supplied value is escaped where it goes (see `escape`). A
//! failure says only what failed (the details go to the log), and a user
//! that is unknown, ambiguous or has a wrong password gets the same
//! answer, so logins cannot probe which users exist.

use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{
    DerefAliases, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use rustls::ClientConfig;
use tracing::{debug, warn};

/// The most entries one search may return (a user's groups, above all).
const MAX_ENTRIES: usize = 10_000;

use super::config::LdapConfig;
use super::escape;

/// Why a login did not get through the directory. The `Display` text is
/// what the caller is told; details were logged where they happened.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("ldap operation failed: failed to connect to LDAP server")]
    Connect,
    #[error("ldap operation failed: failed to bind as user")]
    UserBind,
    #[error("ldap operation failed: failed to bind as binddn")]
    ServiceBind,
    #[error("ldap operation failed: failed to find the user's DN")]
    UserDn,
    #[error("ldap operation failed: group search failed")]
    GroupSearch,
    #[error("ldap operation failed: the LDAP server did not answer within request_timeout")]
    Timeout,
    #[error("ldap operation failed: {0}")]
    Config(String),
}

/// A failed operation: a timeout says so, anything else is `otherwise`.
fn failure(err: &ldap3::LdapError, otherwise: DirectoryError) -> DirectoryError {
    if matches!(err, ldap3::LdapError::Timeout { .. }) {
        DirectoryError::Timeout
    } else {
        otherwise
    }
}

/// What the directory says about a user who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub user_dn: String,
    /// Group names (first CNs) in the order found, without repeats.
    pub groups: Vec<String>,
}

/// One connection with the request timeout applied to every operation.
struct Session {
    ldap: Ldap,
    timeout: Duration,
    deref: DerefAliases,
}

impl Session {
    async fn bind(&mut self, dn: &str, password: &str) -> Result<(), ldap3::LdapError> {
        self.ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await?
            .success()
            .map(|_| ())
    }

    /// A subtree search; `size_limit` 0 is none (but at most
    /// [`MAX_ENTRIES`] are read), `page_size` 0 unpaged.
    /// A size-limit answer still returns the entries that came.
    async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        size_limit: i32,
        page_size: i32,
    ) -> Result<Vec<SearchEntry>, ldap3::LdapError> {
        let opts = SearchOptions::new().deref(self.deref).sizelimit(size_limit);
        let mut adapters: Vec<Box<dyn Adapter<'static, String, Vec<String>>>> =
            vec![Box::new(EntriesOnly::new())];
        if page_size > 0 {
            adapters.push(Box::new(PagedResults::new(page_size)));
        }
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .with_search_options(opts)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
            .await?;
        let mut entries = Vec::new();
        while let Some(entry) = stream.next().await? {
            // ldap3 panics on a malformed entry; a broken or hostile
            // directory must fail the login, not the server.
            let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(entry)
            }))
            .map_err(|_| {
                ldap3::LdapError::from(std::io::Error::other(
                    "the directory sent a malformed search entry",
                ))
            })?;
            if entries.len() >= MAX_ENTRIES {
                return Err(ldap3::LdapError::from(std::io::Error::other(format!(
                    "the search returned more than {MAX_ENTRIES} entries"
                ))));
            }
            entries.push(entry);
        }
        let result = stream.finish().await;
        // 4: sizeLimitExceeded, which the caller judges by the count.
        if result.rc != 0 && result.rc != 4 {
            return Err(ldap3::LdapError::from(result));
        }
        Ok(entries)
    }

    async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

fn deref(cfg: &LdapConfig) -> DerefAliases {
    match cfg.dereference_aliases.as_str() {
        "finding" => DerefAliases::Finding,
        "searching" => DerefAliases::Searching,
        "always" => DerefAliases::Always,
        _ => DerefAliases::Never,
    }
}

fn uses_tls(cfg: &LdapConfig) -> bool {
    cfg.starttls
        || cfg
            .urls()
            .any(|u| u.to_ascii_lowercase().starts_with("ldaps://"))
}

/// Connects to the first URL that answers.
async fn dial(cfg: &LdapConfig) -> Result<Session, DirectoryError> {
    let tls: Option<Arc<ClientConfig>> = if uses_tls(cfg) {
        Some(super::tls::client_config(cfg).map_err(DirectoryError::Config)?)
    } else {
        None
    };
    if cfg.insecure_tls && tls.is_some() {
        warn!(
            ldap.url = %cfg.url,
            "insecure_tls is set: the LDAP server's certificate is not verified"
        );
    }
    for url in cfg.urls() {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(cfg.connection_timeout))
            .set_starttls(cfg.starttls && url.to_ascii_lowercase().starts_with("ldap://"));
        if let Some(tls) = &tls {
            settings = settings.set_config(tls.clone());
        }
        match LdapConnAsync::with_settings(settings, url).await {
            Ok((conn, ldap)) => {
                tokio::spawn(async move {
                    if let Err(err) = conn.drive().await {
                        debug!(error = %err, "LDAP connection ended with an error");
                    }
                });
                return Ok(Session {
                    ldap,
                    timeout: Duration::from_secs(cfg.request_timeout),
                    deref: deref(cfg),
                });
            }
            Err(err) => warn!(ldap.url = url, error = %err, "cannot connect to the LDAP server"),
        }
    }
    Err(DirectoryError::Connect)
}

/// Runs the login flow for `username` (already in its canonical case)
/// with `password`. The caller has refused an empty password when
/// `deny_null_bind` is set.
pub async fn authenticate(
    cfg: &LdapConfig,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, DirectoryError> {
    let mut session = dial(cfg).await?;
    let result = run(&mut session, cfg, username, password).await;
    session.close().await;
    result
}

async fn run(
    session: &mut Session,
    cfg: &LdapConfig,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, DirectoryError> {
    let bind_dn = bind_dn(session, cfg, username).await?;
    if let Err(err) = session.bind(&bind_dn, password).await {
        debug!(ldap.bind_dn = %bind_dn, error = %err, "LDAP bind as the user failed");
        return Err(failure(&err, DirectoryError::UserBind));
    }
    if !cfg.binddn.is_empty()
        && !cfg.bindpass.is_empty()
        && let Err(err) = session.bind(&cfg.binddn, cfg.bindpass.expose()).await
    {
        warn!(ldap.binddn = %cfg.binddn, error = %err, "LDAP re-bind as binddn failed");
        return Err(failure(&err, DirectoryError::ServiceBind));
    }
    let user_dn = user_dn(session, cfg, username, &bind_dn).await?;
    let groups = if cfg.anonymous_group_search {
        let mut anonymous = dial(cfg).await?;
        let groups = groups(&mut anonymous, cfg, username, &user_dn).await;
        anonymous.close().await;
        groups?
    } else {
        groups(session, cfg, username, &user_dn).await?
    };
    Ok(DirectoryUser { user_dn, groups })
}

/// The `{{.UserAttr}}` and `{{.Username}}` of the user search filter.
pub fn user_filter(cfg: &LdapConfig, username: &str) -> Result<String, DirectoryError> {
    let (attr, name) = if cfg.upndomain.is_empty() {
        (
            escape::filter_value(&cfg.userattr),
            escape::filter_value(username),
        )
    } else {
        (
            "userPrincipalName".to_owned(),
            format!(
                "{}@{}",
                escape::filter_value(username),
                escape::filter_value(&cfg.upndomain)
            ),
        )
    };
    escape::render(&cfg.userfilter, &[("UserAttr", &attr), ("Username", &name)])
        .map_err(DirectoryError::Config)
}

/// The DN built from the username without a search.
pub fn direct_bind_dn(cfg: &LdapConfig, username: &str) -> String {
    if cfg.upndomain.is_empty() {
        format!(
            "{}={},{}",
            cfg.userattr,
            escape::dn_value(username),
            cfg.userdn
        )
    } else {
        format!("{}@{}", escape::dn_value(username), cfg.upndomain)
    }
}

async fn bind_dn(
    session: &mut Session,
    cfg: &LdapConfig,
    username: &str,
) -> Result<String, DirectoryError> {
    if !(cfg.discoverdn || (!cfg.binddn.is_empty() && !cfg.bindpass.is_empty())) {
        return Ok(direct_bind_dn(cfg, username));
    }
    // Without bindpass this is an anonymous (unauthenticated) bind.
    if let Err(err) = session.bind(&cfg.binddn, cfg.bindpass.expose()).await {
        warn!(ldap.binddn = %cfg.binddn, error = %err, "LDAP bind as binddn failed");
        return Err(failure(&err, DirectoryError::UserBind));
    }
    let filter = user_filter(cfg, username)?;
    debug!(ldap.filter = %filter, ldap.base = %cfg.userdn, "searching for the user's DN");
    let entries = session
        .search(&cfg.userdn, &filter, vec!["1.1".to_owned()], 2, 0)
        .await
        .map_err(|err| {
            warn!(ldap.base = %cfg.userdn, error = %err, "LDAP user search failed");
            failure(&err, DirectoryError::UserBind)
        })?;
    match entries.as_slice() {
        [entry] => Ok(entry.dn.clone()),
        other => {
            debug!(
                ldap.entries = other.len(),
                "the user search did not find exactly one entry"
            );
            Err(DirectoryError::UserBind)
        }
    }
}

async fn user_dn(
    session: &mut Session,
    cfg: &LdapConfig,
    username: &str,
    bind_dn: &str,
) -> Result<String, DirectoryError> {
    if cfg.upndomain.is_empty() {
        return Ok(bind_dn.to_owned());
    }
    let filter = format!(
        "(userPrincipalName={}@{})",
        escape::filter_value(username),
        escape::filter_value(&cfg.upndomain)
    );
    let entries = session
        .search(&cfg.userdn, &filter, vec!["1.1".to_owned()], 2, 0)
        .await
        .map_err(|err| {
            warn!(ldap.base = %cfg.userdn, error = %err, "LDAP UPN search failed");
            failure(&err, DirectoryError::UserDn)
        })?;
    match entries.as_slice() {
        [entry] => Ok(entry.dn.clone()),
        other => {
            warn!(
                ldap.entries = other.len(),
                "the UPN search did not find exactly one entry"
            );
            Err(DirectoryError::UserDn)
        }
    }
}

/// The group filter for this user, the values escaped.
pub fn group_filter(
    cfg: &LdapConfig,
    username: &str,
    user_dn: &str,
) -> Result<String, DirectoryError> {
    escape::render(
        &cfg.groupfilter,
        &[
            ("UserDN", &escape::filter_value(user_dn)),
            ("Username", &escape::filter_value(username)),
        ],
    )
    .map_err(DirectoryError::Config)
}

async fn groups(
    session: &mut Session,
    cfg: &LdapConfig,
    username: &str,
    user_dn: &str,
) -> Result<Vec<String>, DirectoryError> {
    if cfg.groupdn.is_empty() || cfg.groupfilter.is_empty() {
        return Ok(Vec::new());
    }
    let filter = group_filter(cfg, username, user_dn)?;
    let page_size = i32::try_from(cfg.max_page_size).unwrap_or(i32::MAX);
    let entries = session
        .search(&cfg.groupdn, &filter, vec![cfg.groupattr.clone()], 0, page_size)
        .await
        .map_err(|err| {
            warn!(ldap.base = %cfg.groupdn, ldap.filter = %filter, error = %err, "LDAP group search failed");
            failure(&err, DirectoryError::GroupSearch)
        })?;
    let mut names: Vec<String> = Vec::new();
    for entry in &entries {
        let values = entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&cfg.groupattr))
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default();
        let found: Vec<String> = if values.is_empty() {
            vec![escape::first_cn(
                &entry.dn,
                cfg.use_pre111_group_cn_behavior,
            )]
        } else {
            values
                .iter()
                .map(|v| escape::first_cn(v, cfg.use_pre111_group_cn_behavior))
                .collect()
        };
        for name in found {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    debug!(
        ldap.base = %cfg.groupdn,
        ldap.filter = %filter,
        ldap.groups = ?names,
        "LDAP groups found"
    );
    Ok(names)
}
