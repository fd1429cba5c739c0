//! Local JWT validation: the signature against the cluster's public keys
//! (`pem_keys` or a JWKS) and the registered claims, with `jsonwebtoken`.
//!
//! The algorithm comes from the key: an RSA key verifies RS256/384/512 and
//! PS256/384/512, a P-256 key ES256, a P-384 key ES384, and a JWK that
//! names its `alg` only that one. A token's header only picks among what
//! its key allows, so `alg: none` and an HS256 token "signed" with the
//! public key as an HMAC secret never verify.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

use super::Refusal;
use super::claims::{Claims, Jwt};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl KeyKind {
    fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyKind::P256 => &[ES256],
            KeyKind::P384 => &[ES384],
        }
    }
}

/// A public key a token may be signed with.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The one algorithm a JWK allows, when it names one.
    only: Option<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An RSA or EC (P-256, P-384) public key or certificate in PEM.
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, String> {
        // jsonwebtoken would take a private key too; it must not end up in
        // a config that reads show.
        if pem.contains("PRIVATE KEY-----") {
            return Err("this is a private key: give the public key".to_owned());
        }
        let pem = pem.trim().as_bytes();
        let (kind, key) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (KeyKind::Rsa, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            // The key is the uncompressed point 04 || x || y.
            let kind = match key.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => KeyKind::P256,
                Ok(97) => KeyKind::P384,
                _ => return Err("only P-256 and P-384 EC keys are supported".to_owned()),
            };
            (kind, key)
        } else {
            return Err(
                "not an RSA or EC public key in PEM (-----BEGIN PUBLIC KEY-----)".to_owned(),
            );
        };
        Ok(VerifyingKey {
            kid: None,
            kind,
            only: None,
            key,
        })
    }

    /// A signing key of a JWKS; `None` for keys that cannot sign a
    /// service-account token (encryption keys, HMAC, other curves).
    pub fn from_jwk(jwk: &Jwk) -> Option<VerifyingKey> {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => return None,
            },
            _ => return None,
        };
        let only = match jwk.common.key_algorithm {
            None => None,
            Some(alg) => {
                let alg = key_algorithm(alg)?;
                if !kind.algorithms().contains(&alg) {
                    return None;
                }
                Some(alg)
            }
        };
        Some(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            kind,
            only,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    fn allows(&self, alg: Algorithm) -> bool {
        match self.only {
            Some(only) => only == alg,
            None => self.kind.algorithms().contains(&alg),
        }
    }
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match alg {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        _ => return None,
    })
}

/// What a token's claims must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// `iss` must equal this.
    pub issuer: Option<String>,
    /// `aud` must contain this.
    pub audience: Option<String>,
    /// `exp` must be present (local-only mode: nothing else bounds a
    /// token's life).
    pub require_exp: bool,
}

impl Rules {
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required: Vec<&str> = Vec::new();
        if self.require_exp {
            required.push("exp");
        }
        if let Some(issuer) = &self.issuer {
            v.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                v.set_audience(&[audience]);
                required.push("aud");
            }
            // Any audience will do: the role asks for none.
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// The same checks for claims read without a signature check (the
    /// TokenReview-only path, where the API server checks the rest).
    pub fn check_unverified(&self, claims: &Claims, now: i64) -> Result<(), Refusal> {
        let leeway = LEEWAY as i64;
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(Refusal::new(format!(
                "the JWT's iss {:?} is not {issuer:?}",
                claims.iss
            )));
        }
        if let Some(audience) = &self.audience
            && !claims.aud.contains(audience)
        {
            return Err(audience_refusal(audience));
        }
        match claims.exp {
            Some(exp) if exp.saturating_add(leeway) < now => {
                Err(Refusal::new("the JWT has expired"))
            }
            None if self.require_exp => Err(Refusal::new("the JWT has no exp claim")),
            _ => Ok(()),
        }?;
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(Refusal::new("the JWT is not valid yet (nbf)"));
        }
        Ok(())
    }
}

fn audience_refusal(audience: &str) -> Refusal {
    Refusal::new(format!(
        "the JWT's aud does not contain the role's audience {audience:?}"
    ))
}

/// The verdict of a local check.
pub enum Outcome {
    Valid(Box<Claims>),
    /// The token names a `kid` none of the keys has: worth one refresh of
    /// a JWKS.
    UnknownKid(String),
    Refused(Refusal),
}

/// Checks the signature and the claims. PEM keys have no `kid`, so each
/// one that allows the token's algorithm is tried.
pub fn verify(jwt: &Jwt, keys: &[VerifyingKey], rules: &Rules) -> Outcome {
    let header = match jsonwebtoken::decode_header(jwt.expose()) {
        Ok(header) => header,
        Err(e) => {
            return Outcome::Refused(Refusal::new(format!("the JWT header cannot be used: {e}")));
        }
    };
    let alg = header.alg;
    let by_kid: Vec<&VerifyingKey> = match &header.kid {
        Some(kid) if keys.iter().any(|k| k.kid.is_some()) => {
            let found: Vec<_> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect();
            if found.is_empty() {
                return Outcome::UnknownKid(kid.clone());
            }
            found
        }
        _ => keys.iter().collect(),
    };
    let candidates: Vec<&VerifyingKey> = by_kid.into_iter().filter(|k| k.allows(alg)).collect();
    if candidates.is_empty() {
        return Outcome::Refused(Refusal::new(format!(
            "the JWT's algorithm {alg:?} fits none of the keys"
        )));
    }
    for key in candidates {
        match jsonwebtoken::decode::<Claims>(jwt.expose(), &key.key, &rules.validation(alg)) {
            Ok(data) => return Outcome::Valid(Box::new(data.claims)),
            Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
            Err(e) => return Outcome::Refused(claims_refusal(e.kind(), rules)),
        }
    }
    Outcome::Refused(Refusal::new("the JWT's signature matches none of the keys"))
}

fn claims_refusal(kind: &ErrorKind, rules: &Rules) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal::new("the JWT has expired"),
        ErrorKind::ImmatureSignature => Refusal::new("the JWT is not valid yet (nbf)"),
        ErrorKind::InvalidIssuer => Refusal::new(format!(
            "the JWT's iss is not {:?}",
            rules.issuer.as_deref().unwrap_or_default()
        )),
        ErrorKind::InvalidAudience => {
            audience_refusal(rules.audience.as_deref().unwrap_or_default())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            Refusal::new(format!("the JWT has no {claim} claim"))
        }
        other => Refusal::new(format!("the JWT cannot be used: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_keys_are_classified_by_type() {
        let rsa = super::super::testing::rsa_key();
        assert_eq!(
            VerifyingKey::from_pem(&rsa.public_pem).unwrap().kind,
            KeyKind::Rsa
        );
        for (alg, kind) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::P256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::P384),
        ] {
            let pair = rcgen::KeyPair::generate_for(alg).unwrap();
            assert_eq!(
                VerifyingKey::from_pem(&pair.public_key_pem()).unwrap().kind,
                kind
            );
            // A certificate carries its key too.
            let cert = rcgen::CertificateParams::new(vec!["x".to_owned()])
                .unwrap()
                .self_signed(&pair)
                .unwrap();
            assert_eq!(VerifyingKey::from_pem(&cert.pem()).unwrap().kind, kind);
        }
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(VerifyingKey::from_pem(&ed.public_key_pem()).is_err());
        assert!(VerifyingKey::from_pem("not a key").is_err());
        // A private key is not a public key.
        assert!(VerifyingKey::from_pem(&rsa.private_pem).is_err());
    }

    #[test]
    fn a_jwk_allows_only_its_own_algorithm() {
        let rsa = super::super::testing::rsa_key();
        let mut jwk: Jwk = serde_json::from_value(rsa.jwk()).unwrap();
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert!(key.allows(Algorithm::RS256) && !key.allows(Algorithm::PS256));
        jwk.common.key_algorithm = None;
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert!(key.allows(Algorithm::PS512) && !key.allows(Algorithm::HS256));
        jwk.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(VerifyingKey::from_jwk(&jwk).is_none());
    }
}
