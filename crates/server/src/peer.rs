//! Fresh chunks from the agent that wrote them. An agent that flushed an
//! object keeps it whole in memory for a while (its chunk cache), and its
//! commit announcement names the URL it is reached at; another agent whose
//! readers need a range of that object asks the writer first and falls
//! back to the object store on any failure. The store stays the one source
//! of truth: a peer only ever serves bytes the store also holds, and every
//! reader checks each chunk's CRC whatever served it.
//!
//! A peer request is authorized by an HMAC-SHA256 over the object, the
//! range and an expiry, keyed by the secret every agent of the cluster
//! shares (`--peer-secret`): `x-streamhouse-peer: <expiry ms>.<64 hex>`.
//! A captured header reads that one range, until it expires.

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
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PeerConfig {
    /// Checks both settings: an `http` or `https` base URL with a host and
    /// nothing after its path (it travels in comma-separated
    /// announcements), and a secret of at least [`MIN_SECRET_BYTES`].
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "peer-secret must be at least {MIN_SECRET_BYTES} bytes"
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
            secret: secret.as_bytes().into(),
        })
    }

    fn mac(&self, object: Uuid, range: &Range<u64>, expires_ms: i64) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(
            format!(
                "{}:{}:{}:{expires_ms}",
                object.simple(),
                range.start,
                range.end
            )
            .as_bytes(),
        );
        mac
    }

    /// The header value authorizing a read of `range` of `object` until
    /// `expires_ms`.
    pub fn token(&self, object: Uuid, range: &Range<u64>, expires_ms: i64) -> String {
        let digest = self.mac(object, range, expires_ms).finalize().into_bytes();
        let mut out = format!("{expires_ms}.");
        for b in digest {
            out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        out
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
        if expires_ms < now_ms || expires_ms > now_ms + skew || hex.len() != 64 {
            return false;
        }
        let mut sig = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => sig[i] = (h * 16 + l) as u8,
                _ => return false,
            }
        }
        self.mac(object, range, expires_ms)
            .verify_slice(&sig)
            .is_ok()
    }
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
        assert!(
            !format!("{:?}", config()).contains("sss"),
            "no secret in logs"
        );
    }
}
