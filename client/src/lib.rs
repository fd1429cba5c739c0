//! Client for secretd and the Vault-compatible API subset it speaks.
#![forbid(unsafe_code)]

pub mod duration;
pub mod wire;
