//! The login check: from a JWT to the service account it proves, or the
//! reason it proves nothing.
//!
//! 1. The JWT's length is capped before anything parses it.
//! 2. Its claims are read: with a signature check when the config has keys
//!    (`pem_keys`, `jwks_url`, `oidc_discovery_url`), else unverified, for
//!    TokenReview to judge. `iss` (when checked), `aud` (when the role
//!    names an audience), `exp` and `nbf` (60 s leeway) are checked.
//! 3. The service account must be within the role's bounds.
//! 4. With `kubernetes_host`, TokenReview must agree (see `review.rs`).

use super::Refusal;
use super::claims::{Claims, Jwt, ServiceAccount};
use super::config::{Config, KeySource};
use super::jwks::{self, Source};
use super::keys::{Outcome, Rules, VerifyingKey, verify};
use super::review::{self, Review};
use super::role::Role;

pub async fn authenticate(
    mount_uuid: &str,
    config: &Config,
    role: &Role,
    jwt: &Jwt,
) -> Result<ServiceAccount, Refusal> {
    let local_only = !config.uses_token_review();
    let rules = Rules {
        issuer: if local_only {
            Some(config.issuer.clone())
        } else {
            config.checked_issuer().map(str::to_owned)
        },
        audience: (!role.audience.is_empty()).then(|| role.audience.clone()),
        require_exp: local_only,
    };
    let claims = match config.key_source() {
        KeySource::None => {
            let claims = Claims::unverified(jwt)?;
            rules.check_unverified(&claims, chrono::Utc::now().timestamp())?;
            claims
        }
        KeySource::Pem(pems) => {
            // Checked when the config was written.
            let keys: Vec<VerifyingKey> = pems
                .iter()
                .filter_map(|pem| VerifyingKey::from_pem(pem).ok())
                .collect();
            verdict(verify(jwt, &keys, &rules))?
        }
        KeySource::Remote { url, discovery } => {
            let source = Source::of(config, url, discovery);
            let keys = jwks::keys(mount_uuid, &source).await?;
            match verify(jwt, &keys, &rules) {
                Outcome::UnknownKid(_) => {
                    let keys = jwks::refresh_for_kid(mount_uuid, &source).await?;
                    verdict(verify(jwt, &keys, &rules))?
                }
                outcome => verdict(outcome)?,
            }
        }
    };
    let account = claims.service_account()?;
    role.admits(&account)?;
    if config.uses_token_review() {
        let ca_pem = config.api_ca()?;
        let reviewer = config.reviewer_jwt()?;
        let audiences = if role.audience.is_empty() {
            claims.aud.clone()
        } else {
            vec![role.audience.clone()]
        };
        let review = Review {
            host: &config.kubernetes_host,
            ca_pem: &ca_pem,
            bearer: reviewer.as_deref().map_or(jwt.expose(), String::as_str),
            jwt,
            audiences: &audiences,
        };
        review::check(&review, &account).await?;
    }
    Ok(account)
}

fn verdict(outcome: Outcome) -> Result<Claims, Refusal> {
    match outcome {
        Outcome::Valid(claims) => Ok(*claims),
        Outcome::UnknownKid(kid) => Err(Refusal::new(format!(
            "the JWT's kid {kid:?} is none of the issuer's keys"
        ))),
        Outcome::Refused(refusal) => Err(refusal),
    }
}
