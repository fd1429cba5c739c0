//! Client for secretd and the Vault-compatible API subset it speaks.
//!
//! With the default `http` feature this crate is an async HTTP client
//! ([`Client`]) for the KV version 2 engine ([`Kv2`]), the `sys/` API
//! ([`Sys`]: seal lifecycle, mounts, policies, auth methods, audit
//! devices), the token API ([`TokenApi`]), logins with the Kubernetes and
//! LDAP auth methods ([`Client::login_kubernetes`], [`Client::login_ldap`])
//! and any other path ([`Logical`]). It works against secretd, HashiCorp Vault and OpenBao
//! alike. Without the feature it is only the JSON wire types ([`wire`]),
//! Go-style durations ([`duration`]) and the audit hash chain
//! ([`audit`]), which the server shares.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! use secretd_client::Client;
//! use serde_json::json;
//!
//! # #[cfg(feature = "http")]
//! # async fn demo() -> Result<(), secretd_client::Error> {
//! // SECRETD_ADDR / SECRETD_TOKEN / SECRETD_CACERT (or the VAULT_* names).
//! let client = Client::from_env()?;
//! let kv = client.kv2("secret");
//!
//! let written = kv.put("app/db", json!({"username": "app", "password": "s3cret"})).await?;
//! println!("wrote version {}", written.version);
//!
//! let secret = kv.get("app/db").await?;
//! match secret.get("password") {
//!     Some(password) => println!("password has {} bytes", password.to_string().len()),
//!     None if secret.is_deleted() => println!("the latest version is deleted"),
//!     None => println!("no password field"),
//! }
//!
//! match kv.get("app/missing").await {
//!     Err(err) if err.is_not_found() => println!("no such secret"),
//!     other => println!("{:?}", other.map(|s| s.metadata.version)),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # TLS
//!
//! HTTPS uses rustls with the `ring` provider, configured by this crate
//! (no process-wide default provider is needed). The server is trusted
//! through the system's roots, or only through the CA certificates of the
//! PEM file given with [`ClientBuilder::ca_cert_file`] / `SECRETD_CACERT`.
//!
//! # Errors
//!
//! Every call returns [`Error`]. The server's own errors are
//! [`Error::Api`] with the status and Vault's `errors` messages; branch on
//! [`Error::status`], [`Error::is_not_found`] and friends. A KV version
//! that is deleted or destroyed is not an error: see [`KvSecret`].
//!
//! # Secrets in memory
//!
//! The client's token, and the tokens the token API hands out
//! ([`TokenAuth`]), live in zeroizing buffers and are never printed by
//! `Debug` or in an error message. `Debug` of [`KvSecret`] and of the wire types
//! that carry secrets shows no values.
#![forbid(unsafe_code)]

pub mod audit;
pub mod duration;
pub mod wire;

#[cfg(feature = "http")]
mod access;
#[cfg(feature = "http")]
mod builder;
#[cfg(feature = "http")]
mod client;
#[cfg(feature = "http")]
mod database;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
mod keeper;
#[cfg(feature = "http")]
mod kv2;
#[cfg(feature = "http")]
mod lease;
#[cfg(feature = "http")]
mod logical;
#[cfg(feature = "http")]
mod login;
#[cfg(feature = "http")]
mod sys;
#[cfg(feature = "http")]
mod tls;
#[cfg(feature = "http")]
mod token;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod request_tests;

#[cfg(feature = "http")]
pub use builder::{
    ClientBuilder, DEFAULT_ADDRESS, DEFAULT_TIMEOUT, ENV_ADDRESS, ENV_CA_CERT, ENV_SKIP_VERIFY,
    ENV_TOKEN,
};
#[cfg(feature = "http")]
pub use client::Client;
#[cfg(feature = "http")]
pub use database::{Database, DatabaseCredentials, StaticCredentials};
#[cfg(feature = "http")]
pub use error::Error;
#[cfg(feature = "http")]
pub use keeper::{
    KeeperError, KeeperOptions, KeeperStats, Lease, LeaseKeeper, Login, SavedState, Secret,
    SecretData, Snapshot, backoff, is_transient, jitter,
};
#[cfg(feature = "http")]
pub use kv2::{Kv2, KvSecret};
#[cfg(feature = "http")]
pub use lease::{LeaseApi, LeaseRenewal};
#[cfg(feature = "http")]
pub use logical::{Logical, LogicalResponse};
#[cfg(feature = "http")]
pub use secrecy;
#[cfg(feature = "http")]
pub use sys::Sys;
#[cfg(feature = "http")]
pub use token::{TokenApi, TokenAuth};
