//! `service.peer.name` for remote addresses from the `service.peers` rules
//! (CIDR and/or port). A peer that is a process on this host is named by the
//! pipeline from its own identity before these rules are consulted.

use std::net::IpAddr;
use wirespan_config::{parse_cidr, PeerRule};

#[derive(Clone, Debug)]
struct CompiledRule {
    network: Option<(IpAddr, u8)>,
    port: Option<u16>,
    name: String,
}

/// The configured peer rules, first match wins.
#[derive(Clone, Debug, Default)]
pub struct PeerNames {
    rules: Vec<CompiledRule>,
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (canonical(ip), canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl PeerNames {
    /// Compiles the rules; the config crate has already validated every CIDR,
    /// so a rule that still fails to parse is skipped.
    pub fn new(rules: &[PeerRule]) -> Self {
        Self {
            rules: rules
                .iter()
                .filter_map(|r| {
                    let network = match &r.cidr {
                        Some(c) => Some(parse_cidr(c).ok()?),
                        None => None,
                    };
                    Some(CompiledRule {
                        network,
                        port: r.port,
                        name: r.name.clone(),
                    })
                })
                .collect(),
        }
    }

    pub fn lookup(&self, ip: IpAddr, port: u16) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| {
                r.network.is_none_or(|n| in_network(ip, n)) && r.port.is_none_or(|p| p == port)
            })
            .map(|r| r.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cidr: Option<&str>, port: Option<u16>, name: &str) -> PeerRule {
        PeerRule {
            cidr: cidr.map(str::to_string),
            port,
            name: name.to_string(),
        }
    }

    #[test]
    fn first_match_wins() {
        let p = PeerNames::new(&[
            rule(Some("10.1.0.0/16"), Some(5432), "postgres"),
            rule(Some("10.1.0.0/16"), None, "internal"),
            rule(None, Some(6379), "redis"),
            rule(Some("2001:db8::/32"), None, "v6net"),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(p.lookup(ip("10.1.2.3"), 5432), Some("postgres"));
        assert_eq!(p.lookup(ip("10.1.2.3"), 80), Some("internal"));
        assert_eq!(p.lookup(ip("::ffff:10.1.2.3"), 80), Some("internal"));
        assert_eq!(p.lookup(ip("10.2.0.1"), 6379), Some("redis"));
        assert_eq!(p.lookup(ip("10.2.0.1"), 80), None);
        assert_eq!(p.lookup(ip("2001:db8::1"), 1), Some("v6net"));
    }
}
