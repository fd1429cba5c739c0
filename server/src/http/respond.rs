//! `core` answers and errors as Vault's JSON with the right status.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response as HttpResponse;
use secretd_client::wire::{Envelope, ErrorBody};
use serde_json::{Map, Value};

use crate::core::{Error, Response, ResponseStatus};
use crate::time::Throttle;

/// A JSON response with Vault's headers. The content type is exactly
/// `application/json`: hvac reads error messages only then.
pub fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A body-less response (204, or HEAD).
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = HttpResponse::new(Body::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn serialize(value: &impl serde::Serialize) -> Vec<u8> {
    // Our wire types always serialise; fall back to an error body if not.
    serde_json::to_vec(value).unwrap_or_else(|_| br#"{"errors":["internal error"]}"#.to_vec())
}

/// "Storage unavailable" is logged at most once per period: during an
/// outage every request fails, and a line each would flood the log
/// (perhaps onto the disk that is full).
static UNAVAILABLE_LOG: Throttle = Throttle::new(5);

/// The status and message of an error, logging internal ones once.
pub fn error_response(err: &Error) -> HttpResponse {
    let status = match err {
        Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        Error::PermissionDenied | Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound | Error::UnsupportedPath => StatusCode::NOT_FOUND,
        Error::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Upstream(_) => StatusCode::BAD_GATEWAY,
        Error::Sealed | Error::NotInitialized | Error::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Internal(_) | Error::AuditFailed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match err {
        Error::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
        Error::Unavailable(cause) => {
            if let Some(suppressed) = UNAVAILABLE_LOG.admit() {
                tracing::warn!(error = ?cause, suppressed, "storage unavailable");
            }
        }
        _ => {}
    }
    let errors = match err {
        Error::NotFound => Vec::new(),
        other => vec![other.to_string()],
    };
    json(status, serialize(&ErrorBody { errors }))
}

/// A handler's answer in Vault's envelope; 204 when there is nothing in it.
pub fn envelope(request_id: &str, mut response: Response, inject: bool) -> HttpResponse {
    if let Some(raw) = response.raw.take() {
        let mut answer = json(StatusCode::OK, raw.body);
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(raw.content_type),
        );
        return answer;
    }
    let status = match response.status {
        ResponseStatus::Ok if response.is_empty() => return empty(StatusCode::NO_CONTENT),
        ResponseStatus::Ok => StatusCode::OK,
        ResponseStatus::NotFound => StatusCode::NOT_FOUND,
    };
    let lease = response.lease.unwrap_or_default();
    let env = Envelope {
        request_id: request_id.to_owned(),
        lease_id: lease.id,
        renewable: lease.renewable,
        lease_duration: lease.duration,
        data: response.data,
        wrap_info: None,
        warnings: (!response.warnings.is_empty()).then_some(response.warnings),
        auth: response.auth,
    };
    if !inject {
        return json(status, serialize(&env));
    }
    // Old clients read sys answers at the top level: copy `data` up too.
    let mut top: Map<String, Value> = env
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if let Value::Object(fields) = serde_json::to_value(&env).unwrap_or(Value::Null) {
        top.extend(fields);
    }
    json(status, serialize(&top))
}

/// The `sys/` routes whose `data` Vault also copies to the top level.
pub fn injects_data_at_top_level(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("sys/") else {
        return false;
    };
    let exact = [
        "key-status",
        "rotate",
        "ha-status",
        "remount",
        "config/cors",
        "policy",
        "wrapping/wrap",
    ];
    let prefixed = [
        "audit",
        "auth",
        "mounts",
        "capabilities",
        "policy/",
        "rotate/",
    ];
    exact.contains(&rest.trim_end_matches('/')) || prefixed.iter().any(|p| rest.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_routes_match_vaults_list() {
        for yes in [
            "sys/mounts",
            "sys/mounts/secret",
            "sys/key-status",
            "sys/auth",
            "sys/policy",
            "sys/policy/x",
        ] {
            assert!(injects_data_at_top_level(yes), "{yes}");
        }
        for no in [
            "sys/policies/acl/x",
            "sys/health",
            "secret/data/x",
            "sys/internal/ui/mounts/x",
        ] {
            assert!(!injects_data_at_top_level(no), "{no}");
        }
    }
}
