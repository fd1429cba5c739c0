//! The secretd benchmark: a load generator for the KV v2 API and a floor
//! server to compare it with.
//!
//! `payload` makes the secret values and the wire bodies (shared by the load
//! generator and the floor so both speak the same sizes), `load` drives keep-
//! alive connections and records latencies, `report` prints the results, `cpu` tells whether the load generator itself
//! was the limit.
#![forbid(unsafe_code)]

pub mod cpu;
pub mod load;
pub mod payload;
pub mod report;
