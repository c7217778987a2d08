//! Tokens for tests: HS256 with the test secret (as `streamhouse token`
//! mints them), RS256/ES256 with the key pairs in `tests/keys`, and
//! hand-made malformed ones.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The HS256 secret test agents run with.
pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// The flags of an agent verifying [`SECRET`] tokens.
pub const JWT_FLAGS: &[&str] = &["--auth", "jwt", "--jwt-secret", SECRET];

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Claims for `tenant` with `scopes`, valid for `ttl` seconds.
pub fn claims(tenant: &str, scopes: &[&str], ttl: i64) -> Value {
    json!({
        "sub": "tester",
        "tenant": tenant,
        "scopes": scopes,
        "exp": now() + ttl,
        "jti": format!("jti-{}", uuid::Uuid::now_v7()),
    })
}

/// Signs `claims` with [`SECRET`] (HS256).
pub fn hs256(claims: &Value) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
}

/// A token for `tenant` with `scopes`, valid for an hour.
pub fn token(tenant: &str, scopes: &[&str]) -> String {
    hs256(&claims(tenant, scopes, 3600))
}

pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// Signs with the private key `tests/keys/<name>.key` (RS256 or ES256) as `kid`.
pub fn signed(alg: Algorithm, name: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(key_path(&format!("{name}.key"))).expect("test key");
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("private key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    sign(header, claims, key)
}

/// Signs HS256 with arbitrary secret bytes under `kid` (the key-confusion attack).
pub fn hs256_with(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_string);
    sign(
        header,
        claims,
        EncodingKey::from_secret(secret).expect("key"),
    )
}

fn sign(header: Header, claims: &Value, key: EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// An unsigned `alg: none` token.
pub fn alg_none(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}
