//! The issuer's keys from a JWKS URL or an OIDC discovery document,
//! cached per mount.
//!
//! A mount's keys are fetched at its first login, again after
//! [`MAX_AGE`] (so a key the issuer dropped stops working on every node
//! within that bound), when its config names another source, and when a
//! token carries a `kid` the cache lacks (key rotation). That last refresh
//! happens at most once per [`KID_REFRESH_INTERVAL`], so a flood of tokens
//! with made-up `kid`s costs the issuer one request, not one each.
//!
//! When a fetch fails, the next try waits [`RETRY_AFTER`], and meanwhile
//! keys fetched from the same source within [`MAX_STALE`] still serve: an
//! issuer outage does not stop logins at once, and a dropped key works at
//! most that long.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::https::{self, Trust};
use super::keys::VerifyingKey;
use super::{Refusal, config::Config};

/// How long fetched keys are trusted without asking again.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// The least time between two refreshes caused by unknown `kid`s.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long after a failed fetch the next one may be tried.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// The oldest keys used while the issuer cannot be reached.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Where a mount's keys come from, as its config says.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    pub discovery: bool,
    pub ca_pem: String,
    /// The issuer a discovery document must name, when configured.
    pub issuer: String,
}

impl Source {
    pub fn of(config: &Config, url: &str, discovery: bool) -> Source {
        Source {
            url: url.to_owned(),
            discovery,
            ca_pem: config.jwks_ca_pem.clone(),
            issuer: config.issuer.clone(),
        }
    }
}

#[derive(Default)]
struct Cached {
    source: Option<Source>,
    keys: Arc<Vec<VerifyingKey>>,
    fetched: Option<Instant>,
    kid_refreshed: Option<Instant>,
    /// The last failed fetch, if none succeeded since.
    failed: Option<Instant>,
}

impl Cached {
    /// Keys from `source` young enough to use while it cannot be reached.
    fn stale_keys(&self, source: &Source, now: Instant) -> Option<Arc<Vec<VerifyingKey>>> {
        let same = self.source.as_ref() == Some(source);
        let young = self
            .fetched
            .is_some_and(|at| now.saturating_duration_since(at) < MAX_STALE);
        (same && young).then(|| Arc::clone(&self.keys))
    }
}

/// Per mount uuid; bounded, so unmounted mounts age out.
static CACHE: LazyLock<quick_cache::sync::Cache<String, Arc<Mutex<Cached>>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(256));

fn entry(mount_uuid: &str) -> Arc<Mutex<Cached>> {
    CACHE
        .get_or_insert_with(mount_uuid, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Cached::default())))
        })
        .unwrap_or_else(|never| match never {})
}

/// The mount's keys, fetched if the cache has none, they are too old, or
/// the source changed.
pub async fn keys(mount_uuid: &str, source: &Source) -> Result<Arc<Vec<VerifyingKey>>, Refusal> {
    let entry = entry(mount_uuid);
    let mut cached = entry.lock().await;
    let fresh = cached.source.as_ref() == Some(source)
        && cached.fetched.is_some_and(|at| at.elapsed() < MAX_AGE);
    if !fresh {
        refetch(&mut cached, source).await?;
    }
    Ok(Arc::clone(&cached.keys))
}

/// Fetches the keys again because a token named an unknown `kid`, unless
/// that was done less than [`KID_REFRESH_INTERVAL`] ago (then the cached
/// keys are the answer).
pub async fn refresh_for_kid(
    mount_uuid: &str,
    source: &Source,
) -> Result<Arc<Vec<VerifyingKey>>, Refusal> {
    let entry = entry(mount_uuid);
    let mut cached = entry.lock().await;
    let now = Instant::now();
    if may_refresh_for_kid(cached.kid_refreshed, now) {
        cached.kid_refreshed = Some(now);
        refetch(&mut cached, source).await?;
    }
    Ok(Arc::clone(&cached.keys))
}

/// The rate limit of kid-driven refreshes.
pub fn may_refresh_for_kid(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= KID_REFRESH_INTERVAL)
}

/// Whether a fetch may be tried again after the last failure.
pub fn may_retry(failed: Option<Instant>, now: Instant) -> bool {
    failed.is_none_or(|at| now.saturating_duration_since(at) >= RETRY_AFTER)
}

/// Fetches the keys into the cache; on failure (or while waiting to
/// retry one) leaves it as it was, serving stale keys of the same source
/// if they are young enough.
async fn refetch(cached: &mut Cached, source: &Source) -> Result<(), Refusal> {
    let now = Instant::now();
    let same_source = cached.source.as_ref() == Some(source);
    if same_source && !may_retry(cached.failed, now) {
        return match cached.stale_keys(source, now) {
            Some(_) => Ok(()),
            None => Err(Refusal::unavailable(
                "the issuer's keys could not be fetched a moment ago; not trying again yet",
            )),
        };
    }
    match fetch(source).await {
        Ok(keys) => {
            tracing::info!(
                jwks.url = %source.url,
                jwks.keys = keys.len(),
                "fetched the issuer's signing keys"
            );
            cached.source = Some(source.clone());
            cached.keys = Arc::new(keys);
            cached.fetched = Some(Instant::now());
            cached.failed = None;
            Ok(())
        }
        Err(e) => {
            if !same_source {
                // Keys of another source are of no use any more.
                *cached = Cached {
                    source: Some(source.clone()),
                    ..Cached::default()
                };
            }
            cached.failed = Some(now);
            match cached.stale_keys(source, now) {
                Some(_) => {
                    tracing::warn!(
                        jwks.url = %source.url,
                        error = %e,
                        "cannot fetch the issuer's signing keys; using the ones fetched before"
                    );
                    Ok(())
                }
                None => Err(Refusal::unavailable(format!(
                    "cannot fetch the issuer's keys: {e}"
                ))),
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Value>,
}

async fn fetch(source: &Source) -> Result<Vec<VerifyingKey>, String> {
    let trust = if source.ca_pem.is_empty() {
        Trust::System
    } else {
        Trust::Pem(&source.ca_pem)
    };
    let client = https::client(trust)?;
    let jwks_url = if source.discovery {
        let url = if source.url.ends_with(DISCOVERY_PATH) {
            source.url.clone()
        } else {
            format!("{}{DISCOVERY_PATH}", source.url)
        };
        let doc: Discovery = get_json(&client, &url).await?;
        if !source.issuer.is_empty() && doc.issuer != source.issuer {
            return Err(format!(
                "the discovery document's issuer {:?} is not the configured issuer {:?}",
                doc.issuer, source.issuer
            ));
        }
        https::check_url("jwks_uri", &doc.jwks_uri).map_err(|e| e.to_string())?;
        doc.jwks_uri
    } else {
        source.url.clone()
    };
    let set: KeySet = get_json(&client, &jwks_url).await?;
    // Keys of kinds secretd cannot use are skipped, not fatal.
    let keys: Vec<VerifyingKey> = set
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value(k).ok())
        .filter_map(|jwk| VerifyingKey::from_jwk(&jwk))
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "{jwks_url} holds no RSA or P-256/P-384 signing key"
        ));
    }
    Ok(keys)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", https::describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let body = https::read_limited(response).await?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_refreshes_are_rate_limited() {
        let t0 = Instant::now();
        assert!(may_refresh_for_kid(None, t0), "the first one is free");
        assert!(!may_refresh_for_kid(Some(t0), t0));
        assert!(!may_refresh_for_kid(
            Some(t0),
            t0 + KID_REFRESH_INTERVAL - Duration::from_millis(1)
        ));
        assert!(may_refresh_for_kid(Some(t0), t0 + KID_REFRESH_INTERVAL));
    }

    #[test]
    fn failed_fetches_are_retried_after_a_pause() {
        let t0 = Instant::now();
        assert!(may_retry(None, t0));
        assert!(!may_retry(
            Some(t0),
            t0 + RETRY_AFTER - Duration::from_millis(1)
        ));
        assert!(may_retry(Some(t0), t0 + RETRY_AFTER));
    }

    #[test]
    fn stale_keys_serve_only_for_their_source_and_not_for_ever() {
        let source = |url: &str| Source {
            url: url.to_owned(),
            discovery: false,
            ca_pem: String::new(),
            issuer: String::new(),
        };
        let t0 = Instant::now();
        let cached = Cached {
            source: Some(source("https://a/keys")),
            fetched: Some(t0),
            ..Cached::default()
        };
        assert!(
            cached
                .stale_keys(&source("https://a/keys"), t0 + MAX_AGE)
                .is_some()
        );
        assert!(cached.stale_keys(&source("https://b/keys"), t0).is_none());
        assert!(
            cached
                .stale_keys(&source("https://a/keys"), t0 + MAX_STALE)
                .is_none()
        );
    }
}
