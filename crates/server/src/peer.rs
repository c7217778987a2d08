//! Fresh chunks from the agent that wrote them. An agent that flushed an
//! object keeps it whole in memory for a while (its chunk cache), and its
//! commit announcement names the URL it is reached at; another agent whose
//! readers need a range of that object asks the writer first and falls
//! back to the object store on any failure. The store stays the one source
//! of truth: a writer serves only objects it stored itself (never fetching
//! for a peer), and every reader checks each chunk's CRC whatever served it.
//!
//! Everything between peers is keyed by the secret every agent of the
//! cluster shares (`--peer-secret`). A request is authorized by an
//! HMAC-SHA256 over the object, the range and an expiry:
//! `x-streamhouse-peer: <expiry ms>.<64 hex>`; a captured header reads that
//! one range, until it expires. The URL an announcement names is signed
//! too (`<64 hex>@<url>`), so whoever may send notifications on the
//! metadata store without the secret cannot point readers elsewhere.
//!
//! Rotating the secret refuses nothing with a second secret that is
//! accepted but never signs with (`--peer-secret-accept`): restart every
//! agent with the old secret accepting the new one, then every agent with
//! the new one accepting the old, then without the old.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The request header carrying a peer token.
pub const HEADER: &str = "x-streamhouse-peer";
/// The response header giving the whole object's size, so a short answer
/// (a range cut at the object's end) can be told from a truncated one.
pub const SIZE_HEADER: &str = "x-streamhouse-object-size";
/// How long a minted token stays valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The shortest secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest advertised URL (it travels in every announcement).
pub const MAX_URL_BYTES: usize = 512;
/// The longest range one peer request may ask for (a read fetches one
/// batch of at most 8 MiB per request; objects may be larger).
pub const MAX_RANGE_BYTES: u64 = 64 << 20;
/// How long after an announcement its writer is asked first: past this
/// the writer has likely evicted the object, and a miss costs a round trip.
pub const HINT_LIFETIME: Duration = Duration::from_secs(30);
/// How long a writer that did not answer is left alone.
pub const REST: Duration = Duration::from_secs(5);

/// This agent's place among its peers.
#[derive(Clone)]
pub struct PeerConfig {
    /// The base URL other agents reach this one at.
    pub url: Arc<str>,
    secret: Arc<[u8]>,
    /// A second secret whose signatures are believed too (rotation).
    accepted: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PeerConfig {
    /// Checks both settings: an `http` or `https` base URL of at most
    /// [`MAX_URL_BYTES`] with a host and nothing after its path (it travels
    /// in comma-separated announcements), and a secret of at least
    /// [`MIN_SECRET_BYTES`] (`file:PATH` reads it from a file).
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        let secret = read_peer_secret("peer-secret", secret)?;
        if url.len() > MAX_URL_BYTES {
            return Err(format!(
                "advertise-url must be at most {MAX_URL_BYTES} bytes"
            ));
        }
        let parsed =
            url::Url::parse(url).map_err(|e| format!("advertise-url {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || url.contains([',', ' '])
        {
            return Err(format!(
                "advertise-url {url:?} must be an http(s) base URL such as http://10.0.0.5:8080, without credentials, query, commas or spaces"
            ));
        }
        Ok(PeerConfig {
            url: url.trim_end_matches('/').into(),
            secret: secret.into(),
            accepted: None,
        })
    }

    /// Believes signatures made with `secret` too, without signing with
    /// it (the same rules as the secret's).
    pub fn accepting(mut self, secret: &str) -> Result<Self, String> {
        self.accepted = Some(read_peer_secret("peer-secret-accept", secret)?.into());
        Ok(self)
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        mac_with(&self.secret, message)
    }

    /// Whether `sig` signs `message` with the secret or the accepted one.
    fn signed(&self, message: &str, sig: &[u8]) -> bool {
        std::iter::once(&self.secret)
            .chain(&self.accepted)
            .any(|key| mac_with(key, message).verify_slice(sig).is_ok())
    }

    fn read_message(object: Uuid, range: &Range<u64>, expires_ms: i64) -> String {
        format!(
            "read:{}:{}:{}:{expires_ms}",
            object.simple(),
            range.start,
            range.end
        )
    }

    /// The header value authorizing a read of `range` of `object` until
    /// `expires_ms`.
    pub fn token(&self, object: Uuid, range: &Range<u64>, expires_ms: i64) -> String {
        let sig = self.mac(&Self::read_message(object, range, expires_ms));
        format!("{expires_ms}.{}", hex(&sig.finalize().into_bytes()))
    }

    /// This agent's URL, signed, as its announcements carry it.
    pub fn signed_origin(&self) -> Arc<str> {
        let sig = self.mac(&format!("origin:{}", self.url));
        format!("{}@{}", hex(&sig.finalize().into_bytes()), self.url).into()
    }

    /// The URL of a signed origin another agent announced, when its
    /// signature is this cluster's.
    pub fn origin_url<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (sig, url) = signed.split_once('@')?;
        let sig = unhex(sig)?;
        self.signed(&format!("origin:{url}"), &sig).then_some(url)
    }

    /// Whether `token` authorizes reading `range` of `object` at `now_ms`
    /// (compared in constant time; an expiry further ahead than a token's
    /// lifetime, plus skew, is refused too).
    pub fn verify(&self, token: &str, object: Uuid, range: &Range<u64>, now_ms: i64) -> bool {
        let Some((expires, hex)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires_ms) = expires.parse::<i64>() else {
            return false;
        };
        let skew = 2 * TOKEN_LIFETIME.as_millis() as i64;
        if expires_ms < now_ms || expires_ms > now_ms + skew {
            return false;
        }
        let Some(sig) = unhex(hex) else {
            return false;
        };
        self.signed(&Self::read_message(object, range, expires_ms), &sig)
    }
}

fn read_peer_secret(setting: &str, value: &str) -> Result<Vec<u8>, String> {
    let secret = crate::auth::read_secret(value)?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{setting} must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    Ok(secret)
}

fn mac_with(key: &[u8], message: &str) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out
}

/// A 32-byte signature from 64 hex digits.
fn unhex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut sig = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        sig[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(sig)
}

/// Which agent wrote each recently announced object: object key to that
/// agent's base URL, forgotten after [`HINT_LIFETIME`]; and the writers
/// resting after they did not answer.
#[derive(Debug)]
pub struct PeerHints {
    by_key: moka::sync::Cache<Arc<str>, Arc<str>>,
    resting: moka::sync::Cache<Arc<str>, ()>,
}

impl Default for PeerHints {
    fn default() -> Self {
        PeerHints {
            by_key: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(HINT_LIFETIME)
                .build(),
            resting: moka::sync::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(REST)
                .build(),
        }
    }
}

impl PeerHints {
    /// Notes that the agent at `url` wrote the object under `key`.
    pub fn learn(&self, key: Arc<str>, url: Arc<str>) {
        self.by_key.insert(key, url);
    }

    /// The writer of the object under `key`, when recently announced and
    /// not resting.
    pub fn writer_of(&self, key: &str) -> Option<Arc<str>> {
        self.by_key
            .get(key)
            .filter(|url| !self.resting.contains_key(url))
    }

    /// Leaves the writer at `url` alone for [`REST`]: it did not answer.
    pub fn rest(&self, url: Arc<str>) {
        self.resting.insert(url, ());
    }

    /// Forgets a writer that failed to answer, so the next read of its
    /// object goes straight to the store.
    pub fn forget(&self, key: &str) {
        self.by_key.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PeerConfig {
        PeerConfig::new("http://10.0.0.5:8080/", "s".repeat(32).as_str()).unwrap()
    }

    #[test]
    fn a_token_reads_only_its_range_until_it_expires() {
        let c = config();
        assert_eq!(&*c.url, "http://10.0.0.5:8080");
        let o = Uuid::now_v7();
        let t = c.token(o, &(10..20), 1_000_000);
        assert!(c.verify(&t, o, &(10..20), 999_000));
        assert!(!c.verify(&t, o, &(10..21), 999_000), "another range");
        assert!(!c.verify(&t, Uuid::now_v7(), &(10..20), 999_000));
        assert!(!c.verify(&t, o, &(10..20), 1_000_001), "expired");
        let far = c.token(o, &(10..20), 10_000_000);
        assert!(!c.verify(&far, o, &(10..20), 999_000), "lives too long");
        let other = PeerConfig::new("http://x:1", "t".repeat(32).as_str()).unwrap();
        assert!(!other.verify(&t, o, &(10..20), 999_000), "another secret");
        let mut tampered = t.clone();
        tampered.replace_range(t.len() - 1.., if t.ends_with('0') { "1" } else { "0" });
        assert!(!c.verify(&tampered, o, &(10..20), 999_000));
        for bad in ["", "1", "x.y", "1000000.zz", &t[..t.len() - 2]] {
            assert!(!c.verify(bad, o, &(10..20), 999_000), "{bad:?}");
        }
    }

    #[test]
    fn a_rotation_with_an_accepted_secret_refuses_no_peer_at_any_step() {
        let (old, new) = ("o".repeat(32), "n".repeat(32));
        let at = |secret: &str, accept: Option<&str>| {
            let c = PeerConfig::new("http://10.0.0.5:8080", secret).unwrap();
            match accept {
                Some(a) => c.accepting(a).unwrap(),
                None => c,
            }
        };
        // Before, step 1 (old accepting new), step 2 (new accepting old),
        // after: each step runs next to the one before it.
        let steps = [
            at(&old, None),
            at(&old, Some(&new)),
            at(&new, Some(&old)),
            at(&new, None),
        ];
        let o = Uuid::now_v7();
        for pair in steps.windows(2) {
            for (a, b) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
                let t = a.token(o, &(0..10), 1_000_000);
                assert!(b.verify(&t, o, &(0..10), 999_000));
                assert!(b.origin_url(&a.signed_origin()).is_some());
            }
        }
        // Two steps apart is another secret.
        let t = steps[0].token(o, &(0..10), 1_000_000);
        assert!(!steps[3].verify(&t, o, &(0..10), 999_000));
        assert!(steps[3].origin_url(&steps[0].signed_origin()).is_none());
        let short = PeerConfig::new("http://10.0.0.5:8080", &old)
            .unwrap()
            .accepting("short");
        assert!(short.unwrap_err().contains("peer-secret-accept"));
    }

    #[test]
    fn only_origins_signed_with_the_cluster_secret_are_believed() {
        let c = config();
        let signed = c.signed_origin();
        assert_eq!(c.origin_url(&signed), Some("http://10.0.0.5:8080"));
        let other = PeerConfig::new("http://evil:1", "t".repeat(32).as_str()).unwrap();
        assert_eq!(c.origin_url(&other.signed_origin()), None, "another secret");
        let (sig, _) = signed.split_once('@').unwrap();
        assert_eq!(c.origin_url(&format!("{sig}@http://evil:1")), None);
        for bad in ["", "http://10.0.0.5:8080", "zz@http://10.0.0.5:8080"] {
            assert_eq!(c.origin_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_writer_that_did_not_answer_rests() {
        let hints = PeerHints::default();
        let url: Arc<str> = "http://a:1".into();
        hints.learn("objects/1".into(), url.clone());
        hints.learn("objects/2".into(), url.clone());
        hints.learn("objects/3".into(), "http://b:1".into());
        assert_eq!(hints.writer_of("objects/1"), Some(url.clone()));
        hints.forget("objects/1");
        assert_eq!(hints.writer_of("objects/1"), None);
        hints.rest(url);
        assert_eq!(hints.writer_of("objects/2"), None, "resting");
        assert_eq!(hints.writer_of("objects/3").as_deref(), Some("http://b:1"));
    }

    #[test]
    fn settings_are_checked() {
        let ok = "k".repeat(32);
        assert!(
            PeerConfig::new("http://a:1", &ok[..31]).is_err(),
            "short secret"
        );
        for bad in [
            "a:1",
            "ftp://a:1",
            "http://a:1/?q",
            "http://u:p@a:1",
            "http://a:1/x,y",
        ] {
            assert!(PeerConfig::new(bad, &ok).is_err(), "{bad}");
        }
        assert!(PeerConfig::new("https://agent-2.internal:8443", &ok).is_ok());
        let long = format!("http://a:1/{}", "p".repeat(MAX_URL_BYTES));
        assert!(PeerConfig::new(&long, &ok).is_err(), "long URL");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{ok}\n")).unwrap();
        let from_file = PeerConfig::new("http://a:1", &format!("file:{}", file.display()));
        assert!(from_file.is_ok(), "read from a file, trimmed");
        assert!(
            !format!("{:?}", config()).contains("sss"),
            "no secret in logs"
        );
    }
}
