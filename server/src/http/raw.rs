//! The seal lifecycle endpoints: unauthenticated, unaudited, and answered
//! with raw JSON (no envelope), as Vault does: `sys/init`, `sys/unseal`,
//! `sys/seal-status`, `sys/health`, `sys/leader`.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response as HttpResponse;
use secretd_client::wire::{Health, InitRequest, InitStatus, Leader, UnsealRequest};

use super::body;
use super::respond::{empty, error_response, json, serialize};
use super::{AppState, status};
use crate::core::Error;

const LIFECYCLE_PATHS: &[&str] = &[
    "sys/init",
    "sys/unseal",
    "sys/seal-status",
    "sys/health",
    "sys/leader",
];

pub fn is_lifecycle_path(path: &str) -> bool {
    LIFECYCLE_PATHS.contains(&path)
}

/// Answers a lifecycle endpoint (see [`is_lifecycle_path`]).
pub async fn handle(
    app: &AppState,
    method: &Method,
    path: &str,
    query: &str,
    request_body: Body,
) -> HttpResponse {
    let core = &app.core;
    let is_write = *method == Method::PUT || *method == Method::POST;
    let result = match (path, method.as_str()) {
        ("sys/init", "GET") => core
            .is_initialized()
            .await
            .map(|initialized| ok(&InitStatus { initialized })),
        ("sys/init", _) if is_write => match read_json::<InitRequest>(app, request_body).await {
            Ok(req) => core.initialize(&req).await.map(|r| ok(&r)),
            Err(err) => Err(err),
        },
        ("sys/unseal", _) if is_write => {
            match read_json::<UnsealRequest>(app, request_body).await {
                Ok(req) => core.unseal(&req).await.map(|s| ok(&s)),
                Err(err) => Err(err),
            }
        }
        ("sys/seal-status", "GET") => core.seal_status().await.map(|s| ok(&s)),
        ("sys/health", "GET" | "HEAD") => health(app, query, *method == Method::HEAD).await,
        ("sys/leader", "GET") => Ok(ok(&Leader {
            ha_enabled: false,
            ..Leader::default()
        })),
        _ => Err(Error::UnsupportedOperation),
    };
    result.unwrap_or_else(|err| error_response(&err))
}

fn ok(value: &impl serde::Serialize) -> HttpResponse {
    json(StatusCode::OK, serialize(value))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    app: &AppState,
    request_body: Body,
) -> Result<T, Error> {
    let bytes = body::read(request_body, app.limits.max_request_size).await?;
    let map = body::parse_json_object(&bytes, app.limits.json)?;
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| Error::invalid(format!("failed to decode JSON input: {e}")))
}

/// `sys/health`: the status code says the state, so load balancers and
/// probes need not read the body. Codes can be overridden per query.
async fn health(app: &AppState, query: &str, head: bool) -> Result<HttpResponse, Error> {
    let state = app.core.health().await?;
    let params = body::parse_query(query);
    let code = |name: &str, default: u16| -> Result<u16, Error> {
        match params.get(name).and_then(|v| v.as_str()) {
            None => Ok(default),
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| Error::invalid(format!("bad code value {v:?} for {name}"))),
        }
    };
    let standby_ok = body::query_flag(query, "standbyok");
    let chosen = if !state.initialized {
        code("uninitcode", 501)?
    } else if state.sealed {
        code("sealedcode", 503)?
    } else if state.standby && !standby_ok {
        code("standbycode", 429)?
    } else {
        code("activecode", 200)?
    };
    if head {
        return Ok(empty(status(chosen)));
    }
    let replication = if state.sealed { "unknown" } else { "disabled" };
    let body = Health {
        initialized: state.initialized,
        sealed: state.sealed,
        standby: state.standby,
        performance_standby: false,
        replication_performance_mode: replication.to_owned(),
        replication_dr_mode: replication.to_owned(),
        server_time_utc: chrono::Utc::now().timestamp(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cluster_name: state.cluster_name,
        cluster_id: state.cluster_id,
        audit_failures: app.core.audit().failures(),
    };
    Ok(json(status(chosen), serialize(&body)))
}
