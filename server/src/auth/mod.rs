//! Authentication: the token store, mounted at `auth/token/`.

pub mod token;

use async_trait::async_trait;

use crate::core::{Core, Error, Operation, Response};
use crate::engines::{Backend, BackendRequest};
use crate::time::now_nanos;

/// `auth/token/*`.
pub struct TokenBackend;

#[async_trait]
impl Backend for TokenBackend {
    async fn handle(&self, _core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        match (req.path, req.operation) {
            ("lookup-self", Operation::Read | Operation::Write) => {
                let id = req
                    .request
                    .token
                    .as_ref()
                    .map(|t| t.expose())
                    .unwrap_or_default();
                Ok(Response::data(req.token.lookup_data(id, now_nanos())))
            }
            ("lookup-self", _) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }
}
