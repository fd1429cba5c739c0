//! HTTP: Vault's wire protocol in, `core` calls, Vault's wire protocol out.
//!
//! This layer only translates: method + path + headers + body become a
//! `core::Request`, and a `core::Response` or `core::Error` becomes Vault's
//! JSON envelope with the right status. Every path is handled by one
//! fallback handler, because Vault clients send the non-standard `LIST`
//! method that axum's method router does not know, and because which paths
//! exist is decided by the mount table at run time.

mod body;
pub mod ratelimit;
mod raw;
mod respond;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request as HttpRequest, StatusCode, header};
use axum::response::Response as HttpResponse;
use percent_encoding::percent_decode_str;

use crate::core::{Caller, ClientToken, Core, Error, Operation, Request};
use crate::metrics;
use ratelimit::RateLimits;
pub use ratelimit::{Rate, RateLimitSettings};

pub use self::respond::error_response;

pub use self::body::JsonLimits;
/// The body and query parsers, for the fuzzers (`fuzz/`).
#[cfg(feature = "testing")]
pub use self::body::{parse_json_object, parse_query, query_flag};

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes (413 beyond).
    pub max_request_size: usize,
    /// Nesting, object keys and array elements accepted in a JSON body
    /// (400 beyond).
    pub json: JsonLimits,
    /// Requests per client address and token, and logins per address
    /// (429 beyond).
    pub rate: RateLimitSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_size: 1024 * 1024,
            json: JsonLimits::default(),
            rate: RateLimitSettings::default(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    limits: Limits,
    rates: Arc<RateLimits>,
}

/// The whole API as an axum router. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so handlers know
/// the client's address.
pub fn router(core: Arc<Core>, limits: Limits) -> Router {
    let rates = Arc::new(RateLimits::new(limits.rate));
    Router::new().fallback(handle).with_state(AppState {
        core,
        limits,
        rates,
    })
}

/// Answers a request and counts it, by the mount it went to, in the
/// request metrics.
async fn handle(State(app): State<AppState>, request: HttpRequest<Body>) -> HttpResponse {
    let started = Instant::now();
    let method = metrics::method_label(request.method().as_str());
    let route = api_path(request.uri().path())
        .ok()
        .and_then(|p| app.core.mount_path_of(&p));
    let response = answer(&app, request).await;
    app.core.metrics().observe_request(
        route.unwrap_or_else(|| metrics::UNKNOWN_ROUTE.to_owned()),
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The API path of a URI path: after `/v1/`, percent-decoded.
fn api_path(uri_path: &str) -> Result<String, Error> {
    let raw_path = uri_path
        .strip_prefix("/v1/")
        .ok_or(Error::UnsupportedPath)?;
    percent_decode_str(raw_path)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| Error::invalid("the path is not valid UTF-8"))
}

async fn answer(app: &AppState, request: HttpRequest<Body>) -> HttpResponse {
    let remote_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = request.into_parts();
    let client_ip = remote_addr.map(|a| a.ip());
    let token = client_token(&parts.headers);
    if let Err(limited) = app
        .rates
        .check(client_ip, token.as_ref().map(ClientToken::expose))
    {
        return too_many(&limited);
    }
    let query = parts.uri.query().unwrap_or("");
    let (path, operation) = match parse_target(&parts.method, parts.uri.path(), query) {
        Ok(Target::Lifecycle(path)) => {
            return raw::handle(app, &parts.method, &path, query, body).await;
        }
        Ok(Target::Api { path, operation }) => (path, operation),
        Err(err) => return error_response(&err),
    };
    if wants_wrapping(&parts.headers) {
        return error_response(&Error::invalid(
            "response wrapping (X-Vault-Wrap-TTL) is not supported by secretd",
        ));
    }
    if operation == Operation::Patch
        && let Err(err) = check_merge_patch(&parts.headers)
    {
        return error_response(&err);
    }
    // Who is asking is settled before the body is read, so an anonymous
    // client cannot make the server buffer and parse anything.
    let caller = match app
        .core
        .authenticate(&path, operation, token.as_ref(), remote_addr)
        .await
    {
        Ok(caller) => caller,
        Err(err) => return error_response(&err),
    };
    if matches!(caller, Caller::Login)
        && let Err(limited) = app.rates.check_login(client_ip)
    {
        return too_many(&limited);
    }
    let data = match operation {
        Operation::Write | Operation::Patch => {
            match body::read(body, app.limits.max_request_size).await {
                Ok(bytes) => body::parse_json_object(&bytes, app.limits.json),
                Err(err) => Err(err),
            }
        }
        Operation::Read | Operation::Delete | Operation::List => Ok(body::parse_query(query)),
    };
    let data = match data {
        Ok(d) => d,
        Err(err) => return error_response(&err),
    };
    let mut path = path;
    if operation == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let request = Request {
        id: uuid::Uuid::new_v4().to_string(),
        operation,
        path,
        data,
        token,
        remote_addr,
    };
    let request_id = request.id.clone();
    let inject = respond::injects_data_at_top_level(&request.path);
    match app.core.handle(request, caller).await {
        Ok(response) => respond::envelope(&request_id, response, inject),
        Err(err) => error_response(&err),
    }
}

/// 429 with `Retry-After` (whole seconds).
fn too_many(limited: &ratelimit::Limited) -> HttpResponse {
    let seconds = ratelimit::retry_after_seconds(limited);
    let mut response = error_response(&Error::TooManyRequests(format!(
        "rate limit ({} limit) exceeded; retry in {seconds}s",
        limited.which
    )));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

/// What a request line asks for, before anything else is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A seal lifecycle endpoint (`sys/init`, `sys/unseal`, ...), answered
    /// raw by any method.
    Lifecycle(String),
    /// Any other API path, percent-decoded and without `/v1/`, and the
    /// operation on it. The path is not validated yet: `core` does that
    /// ([`crate::core::path::validate`]).
    Api { path: String, operation: Operation },
}

/// Parses a request line: strips `/v1/`, percent-decodes the path, and maps
/// the method (and `?list=true`) to an operation. Pure, so the fuzzer
/// (`fuzz/`) calls exactly what [`router`] does.
pub fn parse_target(method: &Method, uri_path: &str, query: &str) -> Result<Target, Error> {
    let path = api_path(uri_path)?;
    if raw::is_lifecycle_path(&path) {
        return Ok(Target::Lifecycle(path));
    }
    let operation = operation(method, query)?;
    Ok(Target::Api { path, operation })
}

/// GET is a read (a list with `?list=true`), POST and PUT are writes.
fn operation(method: &Method, query: &str) -> Result<Operation, Error> {
    match method.as_str() {
        "GET" if body::query_flag(query, "list") => Ok(Operation::List),
        "GET" => Ok(Operation::Read),
        "POST" | "PUT" => Ok(Operation::Write),
        "PATCH" => Ok(Operation::Patch),
        "DELETE" => Ok(Operation::Delete),
        "LIST" => Ok(Operation::List),
        _ => Err(Error::UnsupportedOperation),
    }
}

fn check_merge_patch(headers: &HeaderMap) -> Result<(), Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/merge-patch+json") {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(format!(
            "PATCH requires Content-Type of application/merge-patch+json, provided {content_type}"
        )))
    }
}

/// Whether the client asked for a wrapped response, which we do not do:
/// answering unwrapped instead would hand the secret to whoever expected
/// only a wrapping token.
fn wants_wrapping(headers: &HeaderMap) -> bool {
    headers
        .get("x-vault-wrap-ttl")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

/// `X-Vault-Token`, or else `Authorization: Bearer`.
fn client_token(headers: &HeaderMap) -> Option<ClientToken> {
    let from_vault_header = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let from_bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    from_vault_header
        .or_else(from_bearer)
        .map(|t| ClientToken::new(t.to_owned()))
}

/// A status code from a number, if it is one.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests;
