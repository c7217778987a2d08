//! The `serve` flags of authentication and browser safety.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum AuthMode {
    /// Nobody: every caller is the default tenant with every right.
    #[default]
    None,
    /// A bearer JWT on every request names the caller, tenant and scopes.
    Jwt,
}

/// Who may reach the agent, and from where.
#[derive(Clone, Default, Args)]
pub struct AuthArgs {
    /// `none` (default; loopback only unless --allow-unauthenticated) or `jwt`.
    #[arg(long, env = "STREAMHOUSE_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,
    /// Serve without authentication on a non-loopback address.
    #[arg(long, env = "STREAMHOUSE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// HS256 secret (at least 32 bytes): the value, or `file:PATH`.
    #[arg(long, env = "STREAMHOUSE_JWT_SECRET")]
    pub jwt_secret: Option<String>,
    /// Public keys: a JWKS JSON file, a PEM file, or a directory of `<kid>.pem`
    /// files; re-read when it changes.
    #[arg(long, env = "STREAMHOUSE_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
    /// Required `iss` of tokens.
    #[arg(long, env = "STREAMHOUSE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens.
    #[arg(long, env = "STREAMHOUSE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Browser origins allowed cross-origin requests and WebSocket upgrades
    /// (comma list, e.g. `https://app.example.com`); none by default.
    #[arg(long, env = "STREAMHOUSE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// `Host` names the agent answers (comma list; `*` for any), and the
    /// `--advertise-url` host. Default: loopback names with --auth none,
    /// any with --auth jwt.
    #[arg(long, env = "STREAMHOUSE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// TOML file of per-tenant quotas (produce bytes/s, requests/s, open streams).
    #[arg(long, env = "STREAMHOUSE_TENANT_QUOTAS")]
    pub tenant_quotas: Option<PathBuf>,
}

impl fmt::Debug for AuthArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthArgs")
            .field("auth", &self.auth)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_keys", &self.jwt_public_keys)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("cors_origins", &self.cors_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("tenant_quotas", &self.tenant_quotas)
            .finish()
    }
}

impl AuthArgs {
    /// Checks the combination against the address the agent listens on.
    pub fn validate(&self, listen: SocketAddr) -> Result<(), String> {
        match self.auth {
            AuthMode::None => {
                if !listen.ip().is_loopback() && !self.allow_unauthenticated {
                    return Err(format!(
                        "refusing to listen on {listen} without authentication: anyone who can reach it could read, \
                         produce and delete every topic. Use --auth jwt with --jwt-secret or --jwt-public-keys, \
                         listen on a loopback address, or pass --allow-unauthenticated if a trusted network \
                         or proxy guards it"
                    ));
                }
                if self.jwt_secret.is_some() || self.jwt_public_keys.is_some() {
                    return Err("jwt keys are given but --auth is none; add --auth jwt".into());
                }
            }
            AuthMode::Jwt => {
                if self.jwt_secret.is_none() && self.jwt_public_keys.is_none() {
                    return Err("--auth jwt needs --jwt-secret or --jwt-public-keys".into());
                }
            }
        }
        for o in &self.cors_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "cors-origins entry {o:?} must be an origin like https://app.example.com"
                ));
            }
            if o == "*" && self.auth == AuthMode::None {
                return Err(
                    "cors-origins \"*\" without authentication would let any web page use the agent"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The `Host` names the agent answers; `None` answers any.
    pub fn host_allowlist(&self) -> Option<Vec<String>> {
        if self.allowed_hosts.iter().any(|h| h == "*") {
            return None;
        }
        if !self.allowed_hosts.is_empty() {
            return Some(
                self.allowed_hosts
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            );
        }
        match self.auth {
            AuthMode::None if !self.allow_unauthenticated => Some(
                ["localhost", "127.0.0.1", "[::1]", "::1"]
                    .map(String::from)
                    .to_vec(),
            ),
            _ => None,
        }
    }
}

/// `streamhouse token`: mint an HS256 token (development and tests).
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The agent's --jwt-secret: the value, or `file:PATH`.
    #[arg(long, env = "STREAMHOUSE_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The caller's name (`sub`).
    #[arg(long, default_value = "dev")]
    pub sub: String,
    /// The tenant (virtual cluster) the token belongs to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// A scope, `<action>:<glob>` (produce, consume, commit, admin); repeat for more.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// How long the token lives.
    #[arg(long, default_value = "1h")]
    pub ttl: crate::config::HumanDuration,
    /// The token id (`jti`), for revocation; a fresh UUID by default.
    #[arg(long)]
    pub jti: Option<String>,
    /// `iss` claim.
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` claim.
    #[arg(long)]
    pub audience: Option<String>,
}

impl TokenArgs {
    /// The signed token.
    pub fn mint(&self) -> Result<String, String> {
        let secret = super::read_secret(&self.secret)?;
        super::Scopes::parse(&self.scopes)?;
        if !super::valid_tenant(&self.tenant) {
            return Err(format!(
                "tenant must be 1 to {} of A-Z a-z 0-9 . _ -",
                super::MAX_TENANT_LEN
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let claims = super::Claims {
            sub: self.sub.clone(),
            exp: now + self.ttl.0.as_secs() as i64,
            nbf: None,
            iat: Some(now),
            jti: Some(
                self.jti
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            ),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            tenant: Some(self.tenant.clone()),
            scopes: self.scopes.clone(),
        };
        super::mint(&secret, &claims)
    }
}
