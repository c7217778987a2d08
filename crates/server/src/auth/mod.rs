//! Who is calling, and what they may do. With `--auth none` every caller
//! is the default tenant with every right (and the agent refuses to listen
//! beyond loopback unless told to). With `--auth jwt` a bearer token names
//! the caller (`sub`), its tenant (a virtual cluster: its own topics,
//! groups and keys) and its scopes; verified tokens are cached until they
//! expire, and revoked ones (`jti`) are refused on every agent.
//!
//! The API layer extracts the token from a request and asks [`Auth`] for a
//! [`Caller`]; handlers then ask the caller for the right they need.

mod args;
mod keys;
mod quotas;
mod revoked;
mod scopes;
mod token;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::model::Tenant;

pub use args::{AuthArgs, AuthMode, TokenArgs};
pub use keys::Keys;
pub use quotas::{OverQuota, Quota, QuotaKind, Quotas, StreamSlot};
pub use revoked::{Revoked, SessionEnd};
pub use scopes::{Action, Scope, Scopes, glob_matches};
pub use token::{Claims, Expect, LEEWAY_SECS, MAX_TENANT_LEN, mint, read_secret, valid_tenant};

/// Who a request speaks for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    /// The token's `sub`; `anonymous` without authentication.
    pub subject: Arc<str>,
    /// What the caller may do; `None` is everything (no authentication).
    pub scopes: Option<Arc<Scopes>>,
    /// The token's `exp` (seconds since the epoch).
    pub expires_at: Option<i64>,
    pub jti: Option<Arc<str>>,
}

impl Caller {
    /// The caller of an agent without authentication: the default tenant, every right.
    pub fn anonymous() -> Caller {
        Caller {
            tenant: Tenant::default(),
            subject: "anonymous".into(),
            scopes: None,
            expires_at: None,
            jti: None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.scopes.is_some()
    }

    /// Whether the caller may do `action` to `name`.
    pub fn may(&self, action: Action, name: &str) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.allows(action, name))
    }

    /// Whether the caller may see `topic` at all (list, describe).
    pub fn may_see(&self, topic: &str) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.allows_any(topic))
    }

    /// Whether the caller holds `admin:*` (revokes tokens).
    pub fn is_tenant_admin(&self) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.is_tenant_admin())
    }
}

/// Why a token was refused (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

impl AuthError {
    pub fn invalid(msg: impl Into<String>) -> AuthError {
        AuthError(msg.into())
    }
}

/// Most verified tokens kept decoded (each entry is a 32-byte digest and
/// the caller, about 200 bytes).
const VERIFIED_CACHE_ENTRIES: u64 = 100_000;

/// What the verified-token cache is keyed by: the token's SHA-256, so a
/// long token costs no more memory than a short one.
type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

/// The agent's authentication: its mode, keys, the verified-token cache
/// and the set of revoked tokens.
#[derive(Debug)]
pub struct Auth {
    mode: AuthMode,
    keys: Option<Arc<Keys>>,
    expect: Expect,
    /// Token digest → the caller it verified as, until it expires.
    verified: moka::sync::Cache<TokenDigest, Caller>,
    pub revoked: Arc<Revoked>,
    /// Every caller without authentication (cloned, not rebuilt, per request).
    anonymous: Caller,
    clock: SharedClock,
}

impl Auth {
    /// Builds the agent's authentication from its flags.
    pub fn from_args(args: &AuthArgs, clock: SharedClock) -> Result<Auth, String> {
        let keys = match args.auth {
            AuthMode::None => None,
            AuthMode::Jwt => Some(Arc::new(Keys::load(
                args.jwt_secret.as_deref(),
                args.jwt_public_keys.as_deref(),
            )?)),
        };
        Ok(Auth {
            mode: args.auth,
            keys,
            expect: Expect {
                issuer: args.jwt_issuer.clone(),
                audience: args.jwt_audience.clone(),
            },
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE_ENTRIES)
                .time_to_idle(Duration::from_secs(300))
                .build(),
            revoked: Arc::new(Revoked::default()),
            anonymous: Caller::anonymous(),
            clock,
        })
    }

    /// No authentication: every caller is anonymous.
    pub fn none(clock: SharedClock) -> Auth {
        Auth::from_args(&AuthArgs::default(), clock).expect("no keys to load")
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    /// The caller a request's bearer token (if any) speaks for.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let Some(keys) = &self.keys else {
            return Ok(self.anonymous.clone());
        };
        let token = token.ok_or_else(|| {
            AuthError::invalid("a bearer token is required (Authorization: Bearer …)")
        })?;
        let key = digest(token);
        let caller = match self.verified.get(&key) {
            Some(c) => {
                // Cached tokens still expire on time (with the same leeway).
                if c.expires_at
                    .is_some_and(|exp| exp + LEEWAY_SECS as i64 <= self.now_secs())
                {
                    self.verified.invalidate(&key);
                    return Err(AuthError::invalid("the token has expired"));
                }
                c
            }
            None => {
                let c = token::verify(token, &keys.current(), &self.expect)?;
                self.verified.insert(key, c.clone());
                c
            }
        };
        if self.revoked.contains(&caller) {
            return Err(AuthError::invalid("the token has been revoked"));
        }
        Ok(caller)
    }

    /// Resolves when `caller`'s session must end: its token expired or was
    /// revoked. Never, without authentication.
    pub async fn session_end(&self, caller: &Caller) -> SessionEnd {
        self.revoked.session_end(caller, self.clock.now_ms()).await
    }

    /// Background work: reloads changed public keys (dropping tokens
    /// verified with the old ones).
    pub fn spawn_background(
        self: &Arc<Self>,
        tracker: &tokio_util::task::TaskTracker,
        cancel: CancellationToken,
    ) {
        if let Some(keys) = &self.keys {
            let auth = self.clone();
            tracker.spawn(keys.clone().watch(
                Duration::from_secs(1),
                move || auth.verified.invalidate_all(),
                cancel,
            ));
        }
    }
}
