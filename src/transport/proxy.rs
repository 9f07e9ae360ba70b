//! Which address a request comes from: the peer, or, when the peer is a trusted proxy
//! (`TRUSTED_PROXIES`), the client it names in `X-Forwarded-For`. Every per-address decision
//! (handshake rate, per-address slots) and log line uses this address; Node's `handshake.address`
//! stays the peer.

use http::HeaderMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network, `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip = canonical(
            addr.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?,
        );
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?,
        };
        // Host bits are cleared: 10.1.2.3/8 means 10.0.0.0/8.
        let net = match ip {
            IpAddr::V4(v) => IpAddr::V4((u32::from(v) & mask32(prefix)).into()),
            IpAddr::V6(v) => IpAddr::V6((u128::from(v) & mask128(prefix)).into()),
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`); empty trusts nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses a comma-separated list of networks (`127.0.0.1/32,10.0.0.0/8`); blank entries are skipped.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request from `peer`: the peer itself unless it is trusted; then the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (the leftmost when all
    /// are). A malformed header, or none, gives the peer.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut values = headers.get_all("x-forwarded-for").iter().peekable();
        if values.peek().is_none() {
            return peer;
        }
        // Several header lines form one list, in order; walk it from the right.
        let mut lines = Vec::new();
        for v in values {
            match v.to_str() {
                Ok(s) => lines.push(s),
                Err(_) => {
                    tracing::debug!(%peer, "X-Forwarded-For is not text; using the peer address");
                    return peer;
                }
            }
        }
        let mut found = peer;
        for entry in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
            let Some(ip) = parse_forwarded(entry.trim()) else {
                tracing::debug!(%peer, entry = %entry.trim(), "malformed X-Forwarded-For; using the peer address");
                return peer;
            };
            found = ip;
            if !self.contains(ip) {
                break;
            }
        }
        found
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        return ip.parse::<std::net::Ipv6Addr>().ok().map(|v| canonical(IpAddr::V6(v)));
    }
    let (ip, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack listener reports) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_match() {
        let t = TrustedProxies::parse(" 127.0.0.1/32, 10.1.2.3/8 ,,::1, 2001:db8::/32").unwrap();
        assert_eq!(t.to_string(), "127.0.0.1/32,10.0.0.0/8,::1/128,2001:db8::/32");
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("10.255.0.1")));
        assert!(t.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped counts as IPv4");
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("2001:db8:ffff::7")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(TrustedProxies::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "10.0.0.0/x", "nginx", "::1/129", "10.0.0/8"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let t = TrustedProxies::parse("127.0.0.1/32,10.0.0.0/8").unwrap();
        let peer = ip("127.0.0.1");
        assert_eq!(t.client_address(peer, &xff(&["203.0.113.7"])), ip("203.0.113.7"));
        // The rightmost untrusted entry: a client's own forged entries sit to its left.
        assert_eq!(
            t.client_address(peer, &xff(&["1.1.1.1, 203.0.113.7, 10.0.0.5"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client_address(peer, &xff(&["1.1.1.1", "203.0.113.7"])),
            ip("203.0.113.7"),
            "header lines join in order"
        );
        assert_eq!(
            t.client_address(peer, &xff(&["10.0.0.9, 10.0.0.5"])),
            ip("10.0.0.9"),
            "all trusted: the farthest"
        );
        assert_eq!(t.client_address(peer, &xff(&["203.0.113.7:4711"])), ip("203.0.113.7"));
        assert_eq!(t.client_address(peer, &xff(&["[2001:db8::1]:80"])), ip("2001:db8::1"));
        assert_eq!(t.client_address(peer, &xff(&["::ffff:203.0.113.7"])), ip("203.0.113.7"));
        // Untrusted peer, no header, malformed header: the peer.
        assert_eq!(
            t.client_address(ip("127.0.0.2"), &xff(&["203.0.113.7"])),
            ip("127.0.0.2")
        );
        assert_eq!(t.client_address(peer, &HeaderMap::new()), peer);
        for bad in [
            "",
            "unknown",
            "1.1.1.1, nonsense",
            "203.0.113.7:99999",
            "[::1",
            "1.2.3.4, ",
        ] {
            assert_eq!(t.client_address(peer, &xff(&[bad])), peer, "{bad:?}");
        }
        // Nobody trusted: the header is ignored.
        assert_eq!(
            TrustedProxies::default().client_address(peer, &xff(&["203.0.113.7"])),
            peer
        );
    }
}
