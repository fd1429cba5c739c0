//! Closed-loop HTTP/1.1 load over keep-alive connections.
//!
//! Each of N workers owns one TCP connection and sends one request at a time:
//! send, wait for the whole answer, send the next. All workers share one
//! cursor over the request list, so the keys are visited round-robin. Only
//! requests that start after the warm-up and finish before the end are
//! counted; latency is measured per request from just before sending to the
//! last byte of the body (a closed loop: when the server stalls, the clients
//! stall with it, so the percentiles are service times, not what an open-loop
//! arrival stream would see).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest latency the histogram holds, in microseconds (one minute).
const MAX_LATENCY_US: u64 = 60_000_000;
/// A request taking longer than this counts as an error and drops its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the requests go and how they authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    host: HeaderValue,
    token: HeaderValue,
}

impl Target {
    /// Accepts `host:port` or `http://host:port[/]`.
    pub fn parse(addr: &str, token: &str) -> anyhow::Result<Self> {
        if addr.starts_with("https://") {
            bail!("only plain HTTP targets are supported, not {addr}");
        }
        let authority = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if authority.is_empty() || authority.contains('/') {
            bail!("--addr must be host:port or http://host:port, not {addr}");
        }
        Ok(Target {
            host: HeaderValue::from_str(&authority)?,
            token: HeaderValue::from_str(token).context("the token is not a valid header value")?,
            authority,
        })
    }
}

/// One request to send (many times).
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
}

/// What a set of requests got back.
pub struct Outcome {
    /// Latencies of the successful (2xx) answers, in microseconds.
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    /// Failed requests by status code, or by `transport`/`timeout`/`connect`.
    pub errors: BTreeMap<String, u64>,
    pub response_bytes: u64,
    /// New connections made after the first one (server closed keep-alive or an error).
    pub reconnects: u64,
}

impl Outcome {
    fn new() -> anyhow::Result<Self> {
        Ok(Outcome {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            ok: 0,
            errors: BTreeMap::new(),
            response_bytes: 0,
            reconnects: 0,
        })
    }

    fn merge(&mut self, other: Outcome) -> anyhow::Result<()> {
        self.latency_us.add(&other.latency_us)?;
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.response_bytes += other.response_bytes;
        self.reconnects += other.reconnects;
        Ok(())
    }

    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The timing of a run: warm up until `measure_from`, stop at `end`.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub measure_from: Instant,
    pub end: Instant,
}

impl Phases {
    pub fn starting_now(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Phases {
            measure_from,
            end: measure_from + duration,
        }
    }
}

/// Drives `connections` workers over `requests` (round-robin) for the
/// given phases and merges what they saw.
pub async fn run(
    target: &Target,
    requests: Arc<Vec<RequestSpec>>,
    connections: usize,
    phases: Phases,
) -> anyhow::Result<Outcome> {
    if requests.is_empty() {
        bail!("no requests to send");
    }
    let target = Arc::new(target.clone());
    let cursor = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let worker = Worker {
                target: Arc::clone(&target),
                requests: Arc::clone(&requests),
                cursor: Arc::clone(&cursor),
                phases,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let mut total = Outcome::new()?;
    for worker in workers {
        total.merge(worker.await.context("a load worker panicked")??)?;
    }
    Ok(total)
}

/// Sends each request once, `parallel` at a time, and fails on the first
/// answer that is not a success (a wrong token or mount shows up here).
pub async fn send_each_once(
    target: &Target,
    requests: Vec<RequestSpec>,
    parallel: usize,
) -> anyhow::Result<()> {
    let parallel = parallel.clamp(1, requests.len().max(1));
    let mut chunks: Vec<Vec<RequestSpec>> = vec![Vec::new(); parallel];
    for (i, spec) in requests.into_iter().enumerate() {
        chunks[i % parallel].push(spec);
    }
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut conn = connect(&target.authority).await?;
                for spec in &chunk {
                    conn.ready().await?;
                    let response = conn.send_request(build(&target, spec)?).await?;
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    if !status.is_success() {
                        bail!(
                            "{} {} answered {status}: {}",
                            spec.method,
                            spec.path,
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a seeding task panicked")??;
    }
    Ok(())
}

struct Worker {
    target: Arc<Target>,
    requests: Arc<Vec<RequestSpec>>,
    cursor: Arc<AtomicUsize>,
    phases: Phases,
}

impl Worker {
    async fn run(self) -> anyhow::Result<Outcome> {
        let mut out = Outcome::new()?;
        let mut conn: Option<SendRequest<Full<Bytes>>> = None;
        let mut connected_once = false;
        loop {
            let start = Instant::now();
            if start >= self.phases.end {
                break;
            }
            let sender = match conn.as_mut() {
                Some(sender) => sender,
                None => match connect(&self.target.authority).await {
                    Ok(sender) => {
                        if connected_once {
                            out.reconnects += 1;
                        }
                        connected_once = true;
                        conn.insert(sender)
                    }
                    Err(_) => {
                        if start >= self.phases.measure_from {
                            out.error("connect");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            if sender.ready().await.is_err() {
                // The server closed the idle connection: open a new one.
                conn = None;
                continue;
            }
            let index = self.cursor.fetch_add(1, Ordering::Relaxed) % self.requests.len();
            let request = build(&self.target, &self.requests[index])?;
            let start = Instant::now();
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange(sender, request)).await;
            let done = Instant::now();
            let counted = start >= self.phases.measure_from && done <= self.phases.end;
            match answer {
                Ok(Ok((status, len))) => {
                    if !counted {
                        continue;
                    }
                    if status.is_success() {
                        out.ok += 1;
                        out.response_bytes += len as u64;
                        let micros = u64::try_from(done.duration_since(start).as_micros())
                            .unwrap_or(u64::MAX);
                        out.latency_us.saturating_record(micros.max(1));
                    } else {
                        out.error(status.as_str());
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    if counted {
                        out.error(if answer.is_err() {
                            "timeout"
                        } else {
                            "transport"
                        });
                    }
                    conn = None;
                }
            }
        }
        Ok(out)
    }
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

fn build(target: &Target, spec: &RequestSpec) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut builder = Request::builder()
        .method(spec.method.clone())
        .uri(spec.path.as_str())
        .header(header::HOST, target.host.clone())
        .header("X-Vault-Token", target.token.clone());
    if !spec.body.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    Ok(builder.body(Full::new(spec.body.clone()))?)
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, usize)> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_host_port_or_http_urls() {
        assert_eq!(
            Target::parse("127.0.0.1:8200", "t").unwrap().authority,
            "127.0.0.1:8200"
        );
        assert_eq!(
            Target::parse("http://localhost:8200/", "t")
                .unwrap()
                .authority,
            "localhost:8200"
        );
        assert!(Target::parse("https://x:1", "t").is_err());
        assert!(Target::parse("http://x:1/v1", "t").is_err());
    }
}
