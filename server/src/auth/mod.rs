//! Authentication: the token store, mounted at `auth/token/`, and what
//! the auth methods that log callers in share.

pub mod kubernetes;
pub mod ldap;
pub mod method;
#[cfg(test)]
pub mod test_method;
pub mod token;
mod token_store;
pub mod ttl;

pub use self::token_store::TokenBackend;
