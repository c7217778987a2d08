//! The SSRF guard: which webhook targets an agent may call.
//!
//! `--webhook-allow` lists host patterns: `*` (any host), `*.example.com`
//! (subdomains), `hooks.example.com` (that host), `10.1.2.3` or
//! `10.0.0.0/8` (addresses). A target's host must match one. Addresses
//! that are not public (loopback, private, link-local, unique-local,
//! shared, documentation, multicast, unspecified) are refused unless an
//! address pattern contains them or the host is listed by its exact name:
//! a wildcard never opens them. The check runs on the URL when a
//! subscription is created, and on every address the resolver returns at
//! delivery (so DNS cannot swap in an internal address later); redirects
//! are not followed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// One `--webhook-allow` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
    Host(String),
    Net(IpAddr, u8),
}

/// The parsed allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    patterns: Vec<Pattern>,
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// True for addresses anyone on the internet could reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks).
            if s[..6].iter().all(|x| *x == 0) {
                return public_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64 (may reach inside)
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared (carrier NAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240)
}

impl Guard {
    /// Parses a comma-separated list; the error names the bad pattern.
    pub fn parse(list: &str) -> Result<Guard, String> {
        let mut patterns = Vec::new();
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let p = p.to_ascii_lowercase();
            patterns.push(if p == "*" {
                Pattern::Any
            } else if let Some(rest) = p.strip_prefix("*.") {
                Pattern::Suffix(format!(".{rest}"))
            } else if let Some((ip, bits)) = parse_net(&p) {
                Pattern::Net(ip, bits)
            } else if p.contains('/') || p.contains('*') {
                return Err(format!(
                    "--webhook-allow pattern {p:?} is not *, *.domain, a host, an address or a CIDR"
                ));
            } else {
                Pattern::Host(p)
            });
        }
        Ok(Guard { patterns })
    }

    fn host_matches(&self, host: &str) -> bool {
        let ip = host.parse::<IpAddr>().ok();
        self.patterns.iter().any(|p| match p {
            Pattern::Any => true,
            Pattern::Suffix(s) => host.ends_with(s.as_str()),
            Pattern::Host(h) => h == host,
            Pattern::Net(n, bits) => ip.is_some_and(|ip| contains(*n, *bits, ip)),
        })
    }

    /// Whether `ip`, an address of `host`, may be called.
    pub fn ip_allowed(&self, host: &str, ip: IpAddr) -> bool {
        if is_public(ip) {
            return true;
        }
        self.patterns.iter().any(|p| match p {
            Pattern::Net(n, bits) => contains(*n, *bits, ip),
            Pattern::Host(h) => h == host,
            _ => false,
        })
    }

    /// Checks a target URL: `http` or `https`, a host the list allows, no
    /// credentials, and (for an address) one [`Guard::ip_allowed`] passes.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("url is not a URL: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("url must not carry credentials (sign with the secret instead)".into());
        }
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("url has no host".into()),
        };
        if !self.host_matches(&host) {
            return Err(format!("url host {host} is not allowed by --webhook-allow"));
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.ip_allowed(&host, ip)
        {
            return Err(format!(
                "url address {ip} is private, loopback or reserved: list it in --webhook-allow to call it"
            ));
        }
        Ok(u)
    }
}

/// Resolves names for the webhook client, keeping only allowed addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.ip_allowed(&host, a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no address --webhook-allow permits (private addresses must be listed)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_do_not_open_private_addresses() {
        let g = Guard::parse("*").unwrap();
        assert!(g.check_url("https://hooks.example.com/x").is_ok());
        assert!(g.check_url("http://127.0.0.1:8080/x").is_err());
        assert!(g.check_url("http://10.1.2.3/x").is_err());
        assert!(g.check_url("http://[::1]/x").is_err());
        assert!(g.check_url("http://[::ffff:192.168.1.1]/x").is_err());
        assert!(g.check_url("http://[::127.0.0.1]/x").is_err());
        assert!(g.check_url("http://169.254.169.254/latest").is_err());
        assert!(g.check_url("ftp://example.com/").is_err());
        assert!(g.check_url("https://user:pw@example.com/").is_err());
        assert!(!g.ip_allowed("evil.example.com", "10.0.0.1".parse().unwrap()));
        assert!(g.ip_allowed("ok.example.com", "93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn listed_addresses_and_exact_hosts_open_them() {
        let g = Guard::parse("127.0.0.1, 10.0.0.0/8, internal.svc, *.example.com").unwrap();
        assert!(g.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(g.check_url("http://10.9.9.9/hook").is_ok());
        assert!(g.check_url("http://127.0.0.2/hook").is_err());
        assert!(g.check_url("https://other.org/").is_err(), "not listed");
        assert!(g.ip_allowed("internal.svc", "192.168.0.5".parse().unwrap()));
        assert!(!g.ip_allowed("a.example.com", "192.168.0.5".parse().unwrap()));
        assert!(Guard::parse("10.0.0.0/99").is_err());
        assert!(Guard::parse("a*b").is_err());
    }
}
