//! The keys tokens are verified with, each pinned to one algorithm: an
//! HS256 secret, and public keys from PEM files or a JWKS file, selected
//! by the token's `kid`. The public-key file is re-read when it changes
//! (a key rotation needs no restart); a file that no longer parses leaves
//! the previous keys in force.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio_util::sync::CancellationToken;

/// One verification key and the one algorithm it accepts.
#[derive(Clone)]
pub struct PinnedKey {
    pub key: DecodingKey,
    pub alg: Algorithm,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedKey({:?})", self.alg)
    }
}

/// The keys in force at one moment.
#[derive(Debug, Default)]
pub struct KeySet {
    /// The HS256 secret, used for tokens without a `kid` (or whose `kid`
    /// names no public key).
    secret: Option<PinnedKey>,
    by_kid: HashMap<String, PinnedKey>,
}

impl KeySet {
    /// The key a token with this `kid` is verified with, if any.
    pub fn select(&self, kid: Option<&str>) -> Option<&PinnedKey> {
        if let Some(k) = kid.and_then(|k| self.by_kid.get(k)) {
            return Some(k);
        }
        if self.secret.is_some() {
            return self.secret.as_ref();
        }
        // One public key and no `kid`: that key.
        match (kid, self.by_kid.len()) {
            (None, 1) => self.by_kid.values().next(),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secret.is_none() && self.by_kid.is_empty()
    }
}

/// Where keys come from, and the set now in force.
#[derive(Debug)]
pub struct Keys {
    secret: Option<PinnedKey>,
    public: Option<PathBuf>,
    current: RwLock<Arc<KeySet>>,
    stamp: RwLock<Option<Stamp>>,
}

/// What tells a changed key file from an unchanged one.
type Stamp = Vec<(PathBuf, SystemTime, u64)>;

impl Keys {
    /// Loads the secret (`file:PATH` reads it from a file) and the public
    /// keys at `public` (a JWKS JSON file, a PEM file, or a directory of
    /// `.pem` files named by their `kid`).
    pub fn load(secret: Option<&str>, public: Option<&Path>) -> Result<Keys, String> {
        let secret = match secret {
            None => None,
            Some(s) => {
                let bytes = super::token::read_secret(s)?;
                if bytes.len() < 32 {
                    tracing::warn!(
                        bytes = bytes.len(),
                        "jwt-secret is shorter than 32 bytes: tokens are only as safe as the secret; use 32 or more random bytes"
                    );
                }
                Some(PinnedKey {
                    key: DecodingKey::from_secret(&bytes).map_err(|e| e.to_string())?,
                    alg: Algorithm::HS256,
                })
            }
        };
        let keys = Keys {
            secret,
            public: public.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(KeySet::default())),
            stamp: RwLock::new(None),
        };
        keys.reload()?;
        if keys.current().is_empty() {
            return Err("--auth jwt needs --jwt-secret or --jwt-public-keys".into());
        }
        Ok(keys)
    }

    /// The keys in force.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Re-reads the public keys if their files changed; returns whether
    /// the set changed. A file that fails to parse is an error and changes
    /// nothing.
    pub fn reload(&self) -> Result<bool, String> {
        let stamp = match &self.public {
            Some(p) => Some(stamp_of(p)?),
            None => None,
        };
        if stamp.is_some() && *self.stamp.read().map_err(|e| e.to_string())? == stamp {
            return Ok(false);
        }
        let by_kid = match &self.public {
            Some(p) => load_public(p)?,
            None => HashMap::new(),
        };
        let set = KeySet {
            secret: self.secret.clone(),
            by_kid,
        };
        if let Ok(mut c) = self.current.write() {
            *c = Arc::new(set);
        }
        if let Ok(mut s) = self.stamp.write() {
            *s = stamp;
        }
        Ok(true)
    }

    /// Checks the public-key file every `interval` and reloads it when it
    /// changed, calling `changed` after each reload.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        changed: impl Fn() + Send,
        cancel: CancellationToken,
    ) {
        if self.public.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let keys = self.clone();
            match tokio::task::spawn_blocking(move || keys.reload()).await {
                Ok(Ok(true)) => {
                    tracing::info!("jwt public keys reloaded");
                    changed();
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "jwt public keys not reloaded; the previous keys stay in force")
                }
                Err(e) => tracing::warn!(error = %e, "jwt key reload failed"),
            }
        }
    }
}

fn stamp_of(path: &Path) -> Result<Stamp, String> {
    let mut out = Vec::new();
    for f in key_files(path)? {
        let m = std::fs::metadata(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        out.push((f, m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    }
    Ok(out)
}

/// The files a public-key path names: itself, or a directory's `.pem` and `.json` files.
fn key_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "pem" || x == "json" || x == "jwks")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn load_public(path: &Path) -> Result<HashMap<String, PinnedKey>, String> {
    let mut out = HashMap::new();
    for file in key_files(path)? {
        let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file.display().to_string();
        if text.trim_ascii_start().starts_with(b"{") {
            for (kid, key) in jwks(&text).map_err(|e| format!("{name}: {e}"))? {
                out.insert(kid, key);
            }
        } else {
            let kid = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.insert(kid, pem(&text).map_err(|e| format!("{name}: {e}"))?);
        }
    }
    Ok(out)
}

/// A PEM public key, pinned by its type: RSA → RS256, EC → ES256, Ed25519 → EdDSA.
fn pem(text: &[u8]) -> Result<PinnedKey, String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(text) {
        return Ok(PinnedKey {
            key,
            alg: Algorithm::RS256,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(text) {
        return Ok(PinnedKey {
            key,
            alg: Algorithm::ES256,
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(text) {
        return Ok(PinnedKey {
            key,
            alg: Algorithm::EdDSA,
        });
    }
    Err("not an RSA, EC or Ed25519 public key in PEM".into())
}

/// The keys of a JWKS document by `kid`, each pinned to its `alg` (or the
/// one its key type implies). Symmetric (`oct`) keys are refused: a
/// public-key file holds public keys.
fn jwks(text: &[u8]) -> Result<Vec<(String, PinnedKey)>, String> {
    let set: JwkSet = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let single = set.keys.len() == 1;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let kid = match (&jwk.common.key_id, single) {
            (Some(k), _) => k.clone(),
            (None, true) => String::new(),
            (None, false) => return Err("every key of a JWKS with several keys needs a kid".into()),
        };
        let implied = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(format!("key {kid:?}: unsupported curve")),
            },
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => {
                return Err(format!(
                    "key {kid:?}: only RSA, EC and OKP public keys are accepted"
                ));
            }
        };
        let alg = match jwk.common.key_algorithm {
            Some(a) => a
                .to_string()
                .parse::<Algorithm>()
                .map_err(|e| format!("key {kid:?}: {e}"))?,
            None => implied,
        };
        if alg.family() != implied.family() {
            return Err(format!(
                "key {kid:?}: alg {alg:?} does not fit its key type"
            ));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
        out.push((kid, PinnedKey { key, alg }));
    }
    Ok(out)
}
