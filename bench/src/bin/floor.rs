//! `bench-floor`: the floor for the secretd benchmark.
//!
//! Answers every GET with a KV v2 read answer carrying a value of
//! `--value-size` bytes (the same shape and size as secretd's answer for the
//! benchmark's secrets) and every POST/PUT whose body is JSON with a KV v2
//! write answer. No storage, no crypto, no auth: what is left is HTTP, JSON
//! and the runtime, the least any server on this stack can spend.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use secretd_bench::payload;

#[derive(Parser)]
#[command(
    name = "bench-floor",
    about = "A Vault-shaped HTTP server that does no work"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8299")]
    listen: SocketAddr,
    /// Size of the value in each read answer, in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
}

struct Floor {
    value: String,
    requests: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let floor = Arc::new(Floor {
        value: payload::value(0, args.value_size),
        requests: AtomicU64::new(0),
    });
    let app = Router::new().fallback(answer).with_state(floor);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("bench-floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn answer(State(floor): State<Arc<Floor>>, method: Method, body: Bytes) -> Response {
    let n = floor.requests.fetch_add(1, Ordering::Relaxed);
    // A request id of the same length as a UUID.
    let request_id = format!("00000000-0000-4000-8000-{n:012x}");
    let body = match method {
        Method::GET | Method::HEAD => payload::read_answer(&request_id, &floor.value, 1),
        Method::POST | Method::PUT => {
            if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                return StatusCode::BAD_REQUEST.into_response();
            }
            payload::write_answer(&request_id, n + 1)
        }
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
