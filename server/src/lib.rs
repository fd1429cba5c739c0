//! secretd: a secrets management server that speaks the matching subset of
//! the HashiCorp Vault / OpenBao HTTP API.
//!
//! The layers, outermost first (see `ARCHITECTURE.md`):
//!
//! - [`http`]: Vault's wire protocol in and out; no policy, crypto or SQL.
//! - [`core`]: the request pipeline (token → ACL → mount → backend) and the
//!   server lifecycle (init, unseal, seal, background jobs).
//! - [`engines`] and [`auth`]: the backends behind mount points.
//! - [`barrier`]: envelope encryption and the seal; the only user of `ring`.
//! - [`storage`]: the only place that speaks SQL (SQLite and PostgreSQL).
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod barrier;
pub mod config;
pub mod core;
pub mod engines;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod serve;
pub mod storage;
pub mod time;
