//! The sidecar's HTTP endpoints: `/healthz` (alive), `/readyz` (every file
//! rendered once: a native sidecar's startupProbe) and `/metrics`
//! (Prometheus text).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use secretd_client::{KeeperStats, Snapshot};

/// What the endpoints report; the agent's loop updates it.
#[derive(Default)]
pub struct AgentStatus {
    pub ready: AtomicBool,
    pub renders: AtomicU64,
    pub render_failures: AtomicU64,
    pub last_render: Mutex<Option<SystemTime>>,
    pub snapshot: Mutex<Arc<Snapshot>>,
    pub stats: Mutex<Option<Arc<KeeperStats>>>,
}

impl AgentStatus {
    /// Records what the keeper holds now (lease and token expiries).
    pub fn observe(&self, snapshot: &Arc<Snapshot>) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot.clone();
    }

    /// Records a successful render.
    pub fn rendered(&self) {
        self.renders.fetch_add(1, Ordering::Relaxed);
        *self.last_render.lock().unwrap_or_else(|p| p.into_inner()) = Some(SystemTime::now());
    }
}

/// Binds `addr` and serves in the background.
pub async fn serve(addr: SocketAddr, status: Arc<AgentStatus>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            super::log(format_args!("the health endpoint stopped: {e}"));
        }
    });
    Ok(bound)
}

async fn readyz(State(status): State<Arc<AgentStatus>>) -> impl IntoResponse {
    if status.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not rendered yet\n")
    }
}

async fn metrics(State(status): State<Arc<AgentStatus>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&status, SystemTime::now()),
    )
}

/// Seconds from `now` to `then` (negative once past).
fn seconds_until(then: SystemTime, now: SystemTime) -> f64 {
    match then.duration_since(now) {
        Ok(left) => left.as_secs_f64(),
        Err(past) => -past.duration().as_secs_f64(),
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The Prometheus text exposition.
pub fn render_metrics(status: &AgentStatus, now: SystemTime) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "secretctl_agent_ready",
        "gauge",
        "1 once every file has been rendered.",
    );
    let ready = u8::from(status.ready.load(Ordering::Relaxed));
    let _ = writeln!(out, "secretctl_agent_ready {ready}");

    let snapshot = status
        .snapshot
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    family(
        &mut out,
        "secretctl_agent_lease_expiry_seconds",
        "gauge",
        "Seconds until each lease ends unless renewed.",
    );
    for (path, secret) in &snapshot.secrets {
        if let Some(lease) = &secret.lease {
            let left = seconds_until(lease.expires_at, now);
            let _ = writeln!(
                out,
                "secretctl_agent_lease_expiry_seconds{{path=\"{}\"}} {left:.0}",
                label(path)
            );
        }
    }
    if let Some(end) = snapshot.token_expires_at {
        family(
            &mut out,
            "secretctl_agent_token_expiry_seconds",
            "gauge",
            "Seconds until the token ends unless renewed.",
        );
        let _ = writeln!(
            out,
            "secretctl_agent_token_expiry_seconds {:.0}",
            seconds_until(end, now)
        );
    }
    let last = *status.last_render.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(last) = last {
        family(
            &mut out,
            "secretctl_agent_seconds_since_last_render",
            "gauge",
            "Seconds since the files were last rendered successfully.",
        );
        let _ = writeln!(
            out,
            "secretctl_agent_seconds_since_last_render {:.3}",
            -seconds_until(last, now)
        );
    }
    let counters = [
        ("renders", "Successful renders.", &status.renders),
        (
            "render_failures",
            "Renders that failed.",
            &status.render_failures,
        ),
    ];
    for (name, help, value) in counters {
        let name = format!("secretctl_agent_{name}_total");
        family(&mut out, &name, "counter", help);
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    let stats = status
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(stats) = stats {
        let counters = [
            ("logins", "Logins.", &stats.logins),
            (
                "login_failures",
                "Logins that failed.",
                &stats.login_failures,
            ),
            ("renewals", "Token and lease renewals.", &stats.renewals),
            (
                "renewal_failures",
                "Renewals that failed.",
                &stats.renewal_failures,
            ),
            ("reads", "Secret reads.", &stats.reads),
            (
                "read_failures",
                "Secret reads that failed.",
                &stats.read_failures,
            ),
            (
                "replacements",
                "Leased secrets replaced by new ones.",
                &stats.replacements,
            ),
            (
                "revocations",
                "Replaced leases revoked.",
                &stats.revocations,
            ),
        ];
        for (name, help, value) in counters {
            let name = format!("secretctl_agent_{name}_total");
            family(&mut out, &name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secretd_client::secrecy::SecretBox;
    use secretd_client::{Lease, Secret, SecretData};

    use super::*;

    #[test]
    fn metrics_report_leases_token_and_renders() {
        let now = SystemTime::now();
        let status = AgentStatus::default();
        let secret = Secret {
            path: "db/creds/a\"b".into(),
            data: SecretBox::new(Box::new(SecretData(
                serde_json::from_str(r#"{"password":"hunter2"}"#).unwrap(),
            ))),
            version: None,
            lease: Some(Lease {
                id: "db/creds/x/1".into(),
                renewable: true,
                expires_at: now + Duration::from_secs(120),
            }),
            revision: 1,
        };
        let snapshot = Arc::new(Snapshot {
            generation: 1,
            secrets: [("db/creds/a\"b".to_string(), Arc::new(secret))].into(),
            token_expires_at: Some(now + Duration::from_secs(600)),
        });
        status.observe(&snapshot);
        status.rendered();
        status.ready.store(true, Ordering::Relaxed);
        let text = render_metrics(&status, now);
        assert!(text.contains("secretctl_agent_ready 1\n"), "{text}");
        assert!(
            text.contains("secretctl_agent_lease_expiry_seconds{path=\"db/creds/a\\\"b\"} 120\n"),
            "{text}"
        );
        assert!(
            text.contains("secretctl_agent_token_expiry_seconds 600\n"),
            "{text}"
        );
        assert!(text.contains("secretctl_agent_renders_total 1\n"), "{text}");
        assert!(!text.contains("hunter2"));
        // Every sample line belongs to a family declared before it.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }
}
