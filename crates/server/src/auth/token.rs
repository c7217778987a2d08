//! Tokens: the claims StreamHouse reads, how one is verified (the key its
//! `kid` selects, that key's one algorithm, `exp` and `sub` required, `iss`
//! and `aud` when configured, 30 s leeway), and how `streamhouse token`
//! mints one for development and tests.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeySet;
use super::scopes::Scopes;
use super::{AuthError, Caller};
use crate::model::Tenant;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// Longest tenant name.
pub const MAX_TENANT_LEN: usize = 64;

/// The claims of a StreamHouse token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// A tenant name is 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TENANT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Verifies `token` with `keys` and returns who it speaks for.
pub(super) fn verify(token: &str, keys: &KeySet, expect: &Expect) -> Result<Caller, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::InvalidAlgorithmName => AuthError::invalid("the token's alg is not accepted"),
        _ => AuthError::invalid("the token is not a well-formed JWT"),
    })?;
    let key = keys
        .select(header.kid.as_deref())
        .ok_or_else(|| AuthError::invalid("no key matches the token's kid"))?;
    let mut v = Validation::new(key.alg);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "sub"]);
    match &expect.issuer {
        Some(iss) => {
            v.set_issuer(&[iss]);
            v.required_spec_claims.insert("iss".into());
        }
        None => v.iss = None,
    }
    match &expect.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            v.required_spec_claims.insert("aud".into());
        }
        None => v.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<Claims>(token, &key.key, &v).map_err(|e| {
        AuthError::invalid(match e.kind() {
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
            ErrorKind::InvalidSignature => "the token's signature does not verify",
            ErrorKind::InvalidAlgorithm => "the token's alg does not match its key",
            ErrorKind::InvalidIssuer => "the token's iss is not accepted",
            ErrorKind::InvalidAudience => "the token's aud is not accepted",
            ErrorKind::MissingRequiredClaim(c) if c == "sub" => "the token has no sub",
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => "the token has no exp",
            ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (iss, aud)",
            _ => "the token's claims are malformed",
        })
    })?;
    caller_of(data.claims)
}

fn caller_of(c: Claims) -> Result<Caller, AuthError> {
    if c.sub.is_empty() {
        return Err(AuthError::invalid("the token's sub is empty"));
    }
    let tenant = c
        .tenant
        .unwrap_or_else(|| Tenant::default().as_str().into());
    if !valid_tenant(&tenant) {
        return Err(AuthError::invalid(format!(
            "the token's tenant must be 1 to {MAX_TENANT_LEN} of A-Z a-z 0-9 . _ -"
        )));
    }
    let scopes = Scopes::parse(&c.scopes).map_err(AuthError::invalid)?;
    Ok(Caller {
        tenant: Tenant::new(tenant),
        subject: c.sub.into(),
        scopes: Some(Arc::new(scopes)),
        expires_at: Some(c.exp),
        jti: c.jti.map(Into::into),
    })
}

/// An HS256 secret as given: the value, or `file:PATH` (trimmed).
pub fn read_secret(given: &str) -> Result<Vec<u8>, String> {
    match given.strip_prefix("file:") {
        Some(path) => Ok(std::fs::read(path)
            .map_err(|e| format!("secret file {path}: {e}"))?
            .trim_ascii()
            .to_vec()),
        None => Ok(given.as_bytes().to_vec()),
    }
}

/// Signs `claims` with an HS256 `secret` (`streamhouse token`, tests).
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, String> {
    let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| e.to_string())
}
