//! Authentication: the token store, mounted at `auth/token/`.

pub mod token;
mod token_store;
pub mod ttl;

pub use self::token_store::TokenBackend;
