//! The one error type of request handling.
//!
//! Variants are named for what the caller can do about them; the HTTP layer
//! maps each to a status and Vault's `{"errors": [...]}`. An internal error
//! carries its cause for the server log and tells the client only
//! "internal error".

use crate::barrier::BarrierError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong; the message says how (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// Missing, unknown or expired token, or not allowed (403).
    #[error("permission denied")]
    PermissionDenied,
    /// Refused with a message Vault gives in this place (403), such as
    /// "bad token" for a lookup of an unknown token.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this path (404 with an empty error list).
    #[error("not found")]
    NotFound,
    /// No handler for this path (404).
    #[error("unsupported path")]
    UnsupportedPath,
    /// The path exists but not for this method (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The body is larger than the configured limit (413).
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The client took too long to send its request (408).
    #[error("the request body did not arrive within {0} seconds")]
    RequestTimeout(u64),
    /// PATCH without a merge-patch body (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A service behind a backend (a managed database) failed (502).
    #[error("{0}")]
    Upstream(String),
    /// Over a quota, such as a role's lease count (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The barrier is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// The server has not been initialised (503).
    #[error("Vault is not initialized")]
    NotInitialized,
    /// The database cannot be reached right now (503).
    #[error("storage is unavailable; try again")]
    Unavailable(#[source] StorageError),
    /// No audit device could record the request, so it is refused (500).
    /// The reasons are in the server log and in `sys/health`.
    #[error("internal error: no audit device could record the request")]
    AuditFailed,
    /// A bug or corrupt data; logged, never described to the client (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Error::Internal(err.into())
    }
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::MountGone => Error::UnsupportedPath,
            StorageError::Unavailable(_) | StorageError::CommitFailed(_) | StorageError::Closed => {
                Error::Unavailable(err)
            }
            other => Error::Internal(other.into()),
        }
    }
}

impl From<BarrierError> for Error {
    fn from(err: BarrierError) -> Self {
        match err {
            BarrierError::Sealed => Error::Sealed,
            BarrierError::NotInitialized => Error::NotInitialized,
            BarrierError::AlreadyInitialized => Error::invalid("Vault is already initialized"),
            BarrierError::Invalid(message) => Error::InvalidRequest(message),
            BarrierError::Storage(storage) => storage.into(),
            // A value that fails to open was tampered with or moved: that
            // is an integrity failure to log, not something to explain.
            BarrierError::Decrypt => Error::Internal(BarrierError::Decrypt.into()),
        }
    }
}
