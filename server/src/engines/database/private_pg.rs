//! Tests only: a throw-away PostgreSQL cluster that checks passwords
//! (scram-sha-256), in a temp dir on a free port. The machine's own
//! cluster trusts local connections, so only this one can show that a
//! revoked user's password, or a static role's old one, is refused.
//!
//! Needs the Debian PostgreSQL binaries and, when run as root, the
//! `postgres` user (initdb refuses to run as root). Without them the
//! tests skip, unless `SECRETD_REQUIRE_SERVICES` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUPERUSER_PASSWORD: &str = "private-cluster-super-password";

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// `-c` settings beyond the port and socket directory.
    settings: &'static str,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Runs a PostgreSQL binary as the `postgres` user when we are root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let tool = bin.join(tool);
    if is_root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&tool)
            .args(args)
            .output()
    } else {
        Command::new(&tool).args(args).output()
    }
}

fn skip(why: &str) -> Option<PrivatePostgres> {
    assert!(
        std::env::var_os("SECRETD_REQUIRE_SERVICES").is_none(),
        "SECRETD_REQUIRE_SERVICES is set but a private PostgreSQL cannot start: {why}"
    );
    eprintln!("skipping: {why}");
    None
}

impl PrivatePostgres {
    pub fn start() -> Option<PrivatePostgres> {
        Self::start_with(None)
    }

    /// A cluster that takes only TLS connections over TCP (`hostssl` in
    /// pg_hba.conf), with this certificate chain and key (PEM).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Option<PrivatePostgres> {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<PrivatePostgres> {
        let Some(bin) = bin_dir() else {
            return skip("no PostgreSQL binaries under /usr/lib/postgresql");
        };
        let dir = tempfile::Builder::new()
            .prefix("secretd-private-pg-")
            .tempdir()
            .ok()?;
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).ok()?;
        // The cluster belongs to `postgres` when we are root.
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            l.local_addr().ok()?.port()
        };
        let init = run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str()?,
                "--auth=scram-sha-256",
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str()?,
                "-N",
            ],
        );
        if !init.as_ref().is_ok_and(|o| o.status.success()) {
            return skip(&format!("initdb failed: {init:?}"));
        }
        let settings = match tls {
            None => "",
            Some((cert, key)) => {
                std::fs::write(data.join("server.crt"), cert).ok()?;
                std::fs::write(data.join("server.key"), key).ok()?;
                std::fs::write(
                    data.join("pg_hba.conf"),
                    "local all all scram-sha-256\n\
                     hostssl all all 127.0.0.1/32 scram-sha-256\n",
                )
                .ok()?;
                let _ = Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(&data)
                    .status();
                let _ = Command::new("chmod")
                    .arg("600")
                    .arg(data.join("server.key"))
                    .status();
                " -c ssl=on"
            }
        };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{settings}",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let start = run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str()?,
                "-o",
                &options,
                "-l",
                log.to_str()?,
                "-w",
                "start",
            ],
        );
        if !start.as_ref().is_ok_and(|o| o.status.success()) {
            return skip(&format!("pg_ctl start failed: {start:?}"));
        }
        Some(PrivatePostgres {
            dir,
            bin,
            port,
            settings,
        })
    }

    /// A URL for `user` with `password` to the `postgres` database.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }
}

impl PrivatePostgres {
    fn pg_ctl(&self, args: &[&str]) -> bool {
        let data = self.dir.path().join("data");
        let Some(data) = data.to_str() else {
            return false;
        };
        let mut all = vec!["-D", data];
        all.extend_from_slice(args);
        run(&self.bin, "pg_ctl", &all).is_ok_and(|o| o.status.success())
    }

    /// Stops the cluster at once (as a crash would), for fault tests.
    pub fn stop(&self) {
        assert!(
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop failed"
        );
    }

    /// Starts it again on the same port after [`PrivatePostgres::stop`].
    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("log");
        let log = log.to_str().unwrap_or_default().to_owned();
        assert!(
            self.pg_ctl(&["-o", &options, "-l", &log, "-w", "start"]),
            "pg_ctl start failed"
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        if let Some(data) = data.to_str() {
            let _ = run(
                &self.bin,
                "pg_ctl",
                &["-D", data, "-m", "immediate", "stop"],
            );
        }
    }
}
