//! Tests only: an auth method of type `test-login` that exercises what
//! core does for every method (the login path, the token it issues, the
//! renewal hook, the sealed records) without an outside service.
//!
//! `login {user, password, policy}` succeeds with a password that starts
//! with `right`;
//! `config {deny_renewal, ttl}` is a sealed record renewal consults.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::core::{Core, Error, Fields, Login, LoginTerms, Operation, Response};
use crate::engines::{Backend, BackendRequest, LoginRequest, RenewLogin};

pub const TYPE: &str = "test-login";

pub struct TestLoginBackend;

#[derive(Default, Serialize, Deserialize)]
struct Config {
    deny_renewal: bool,
    ttl: u64,
}

#[async_trait]
impl Backend for TestLoginBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        match (req.path, req.operation) {
            ("config", Operation::Write) => {
                let mut fields = Fields::new(req.data);
                let config = Config {
                    deny_renewal: fields.bool("deny_renewal")?.unwrap_or(false),
                    ttl: fields.duration("ttl")?.unwrap_or(60),
                };
                fields.refuse_unrecognized()?;
                core.write_entry(req.mount, "config", &config).await?;
                Ok(Response::empty())
            }
            ("config", Operation::Read) => {
                let config: Config = core
                    .read_entry(req.mount, "config")
                    .await?
                    .ok_or(Error::NotFound)?;
                Ok(Response::data(serde_json::json!({
                    "deny_renewal": config.deny_renewal, "ttl": config.ttl
                })))
            }
            _ => Err(Error::UnsupportedPath),
        }
    }

    fn is_login_path(&self, path: &str) -> bool {
        path == "login"
    }

    async fn login(&self, core: &Core, req: &LoginRequest<'_>) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let user = fields.string("user")?.unwrap_or_default();
        let password = Zeroizing::new(fields.string("password")?.unwrap_or_default());
        let policy = fields.string("policy")?.unwrap_or_default();
        if !password.starts_with("right") {
            return Err(Error::PermissionDenied);
        }
        let config: Config = core
            .read_entry(req.mount, "config")
            .await?
            .unwrap_or(Config {
                deny_renewal: false,
                ttl: 60,
            });
        Ok(Response::login(Login {
            policies: vec![policy],
            metadata: [("user".to_owned(), user.clone())].into(),
            display_name: format!("test-{user}"),
            terms: LoginTerms {
                ttl: config.ttl,
                max_ttl: 3600,
                ..LoginTerms::default()
            },
            internal: Some(Zeroizing::new(password.as_bytes().to_vec())),
        }))
    }

    async fn renew_login(&self, core: &Core, req: &RenewLogin<'_>) -> Result<LoginTerms, Error> {
        if !req.internal.is_some_and(|p| p.starts_with(b"right")) {
            return Err(Error::invalid("the kept password did not come back"));
        }
        let config: Config = core
            .read_entry(req.mount, "config")
            .await?
            .unwrap_or_default();
        if config.deny_renewal {
            return Err(Error::invalid("renewal denied by the test method"));
        }
        Ok(LoginTerms {
            ttl: config.ttl.max(1),
            max_ttl: 3600,
            ..LoginTerms::default()
        })
    }
}
