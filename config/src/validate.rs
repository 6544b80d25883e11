//! Semantic checks that the types alone cannot make: ranges, sizes, addresses.

use std::net::SocketAddr;
use std::time::Duration;

use crate::schema::{parse_cidr, Config, OPT_IN_ALL, OPT_IN_ATTRIBUTES};

/// One value refused by [`Config::validate`]: `KEY: REASON`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ValidationError {
    /// Dotted key such as `export.max_batch_size` or `service.rules[0]`.
    pub key: String,
    pub reason: String,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Smallest `export.max_request_bytes`: a few spans.
pub const MIN_REQUEST_BYTES: usize = 4 * KIB as usize;
/// Largest `export.max_request_bytes`.
pub const MAX_REQUEST_BYTES: usize = 256 * MIB as usize;
/// Smallest `export.max_queue_bytes`: room for spans with the largest heads
/// `http.max_header_bytes` allows.
pub const MIN_QUEUE_BYTES: usize = 4 * MIB as usize;
/// Largest `export.max_queue_bytes`.
pub const MAX_QUEUE_BYTES: usize = 16 * GIB as usize;
/// Largest `capture.per_call_cap_bytes`.
pub const MAX_PER_CALL_CAP_BYTES: u32 = 4 * MIB as u32;
/// Smallest `capture.ring_buffer_bytes`.
pub const MIN_RING_BUFFER_BYTES: u32 = 64 * KIB as u32;
/// Largest `capture.ring_buffer_bytes`.
pub const MAX_RING_BUFFER_BYTES: u32 = GIB as u32;
/// Smallest `connections.memory_limit_bytes`.
pub const MIN_MEMORY_LIMIT_BYTES: usize = MIB as usize;
/// Largest `export.max_concurrent_exports`.
pub const MAX_CONCURRENT_EXPORTS: usize = 64;
/// Smallest `http.max_header_bytes`.
pub const MIN_HEADER_BYTES: usize = 256;
/// Largest `http.max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = MIB as usize;

struct Checker {
    errors: Vec<ValidationError>,
}

impl Checker {
    fn check(&mut self, ok: bool, key: &str, reason: impl FnOnce() -> String) {
        if !ok {
            self.errors.push(ValidationError {
                key: key.to_string(),
                reason: reason(),
            });
        }
    }

    fn range<T: PartialOrd + std::fmt::Display + Copy>(&mut self, key: &str, v: T, min: T, max: T) {
        self.check(v >= min && v <= max, key, || {
            format!("{v} is out of range: must be {min} to {max}")
        });
    }

    fn at_least<T: PartialOrd + std::fmt::Display + Copy>(&mut self, key: &str, v: T, min: T) {
        self.check(v >= min, key, || {
            format!("{v} is too small: must be at least {min}")
        });
    }

    fn positive(&mut self, key: &str, d: Duration) {
        self.check(!d.is_zero(), key, || "must be longer than zero".to_string());
    }
}

impl Config {
    /// Checks every value against its documented range and syntax. Returns every
    /// problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut c = Checker { errors: Vec::new() };

        let cap = &self.capture;
        c.range(
            "capture.per_call_cap_bytes",
            cap.per_call_cap_bytes,
            1,
            MAX_PER_CALL_CAP_BYTES,
        );
        let rb = cap.ring_buffer_bytes;
        c.check(
            rb == 0 || rb.is_power_of_two(),
            "capture.ring_buffer_bytes",
            || {
                let below = 1u64 << (31 - rb.leading_zeros());
                format!(
                    "{rb} is not a power of two (the nearest are {below} and {})",
                    below * 2
                )
            },
        );
        c.range(
            "capture.ring_buffer_bytes",
            rb,
            MIN_RING_BUFFER_BYTES,
            MAX_RING_BUFFER_BYTES,
        );
        c.at_least("capture.max_sockets", cap.max_sockets, 1);
        for dir in &self.tls.debug_dirs {
            c.check(dir.is_absolute(), "tls.debug_dirs", || {
                format!(
                    "{} is a relative path (the agent's working directory is not a place to look): give an absolute one",
                    dir.display()
                )
            });
        }
        for (list, ports) in [
            ("capture.ports", &cap.ports),
            ("capture.exclude_ports", &cap.exclude_ports),
        ] {
            for (i, &port) in ports.iter().enumerate() {
                c.check(port != 0, &format!("{list}[{i}]"), || {
                    "port 0 matches no connection".to_string()
                });
            }
        }

        let conn = &self.connections;
        c.at_least("connections.max_connections", conn.max_connections, 1);
        c.positive("connections.idle_timeout", conn.idle_timeout);
        c.at_least(
            "connections.memory_limit_bytes",
            conn.memory_limit_bytes,
            MIN_MEMORY_LIMIT_BYTES,
        );

        let http = &self.http;
        c.range(
            "http.max_header_bytes",
            http.max_header_bytes,
            MIN_HEADER_BYTES,
            MAX_HEADER_BYTES,
        );
        c.at_least("http.max_pending_requests", http.max_pending_requests, 1);
        for (i, route) in http.routes.iter().enumerate() {
            c.check(route.starts_with('/'), &format!("http.routes[{i}]"), || {
                format!("{route:?} must start with `/`")
            });
        }
        for (i, name) in http.opt_in_attributes.iter().enumerate() {
            c.check(
                name == OPT_IN_ALL || OPT_IN_ATTRIBUTES.contains(&name.as_str()),
                &format!("http.opt_in_attributes[{i}]"),
                || {
                    format!(
                        "{name:?} is not an Opt-In attribute the agent sets (known: {OPT_IN_ALL}, {})",
                        OPT_IN_ATTRIBUTES.join(", ")
                    )
                },
            );
        }

        for (i, rule) in self.service.rules.iter().enumerate() {
            let key = format!("service.rules[{i}]");
            c.check(
                rule.exe_name.is_some() || rule.exe_path_prefix.is_some(),
                &key,
                || "needs at least one matcher: exe_name or exe_path_prefix".to_string(),
            );
            if let Some(exe) = &rule.exe_name {
                c.check(!exe.is_empty(), &format!("{key}.exe_name"), || {
                    "is empty".to_string()
                });
            }
            if let Some(prefix) = &rule.exe_path_prefix {
                c.check(
                    prefix.starts_with('/'),
                    &format!("{key}.exe_path_prefix"),
                    || format!("{prefix:?} must be an absolute path (start with `/`)"),
                );
            }
            c.check(!rule.name.trim().is_empty(), &format!("{key}.name"), || {
                "is empty".to_string()
            });
        }
        for (i, peer) in self.service.peers.iter().enumerate() {
            let key = format!("service.peers[{i}]");
            c.check(peer.cidr.is_some() || peer.port.is_some(), &key, || {
                "needs at least one matcher: cidr or port".to_string()
            });
            if let Some(cidr) = &peer.cidr {
                if let Err(reason) = parse_cidr(cidr) {
                    c.check(false, &format!("{key}.cidr"), || reason);
                }
            }
            if let Some(port) = peer.port {
                c.check(port != 0, &format!("{key}.port"), || {
                    "port 0 matches no connection".to_string()
                });
            }
            c.check(!peer.name.trim().is_empty(), &format!("{key}.name"), || {
                "is empty".to_string()
            });
        }
        let kube = &self.kubernetes;
        c.check(
            matches!(kube.watch_scope.as_str(), "cluster" | "node"),
            "kubernetes.watch_scope",
            || format!("{:?} is neither `cluster` nor `node`", kube.watch_scope),
        );
        c.at_least("kubernetes.max_objects", kube.max_objects, 1);
        if let Some(url) = &kube.api_url {
            c.check(
                url.starts_with("http://") || url.starts_with("https://"),
                "kubernetes.api_url",
                || format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        let rdns = &self.service.reverse_dns;
        c.at_least("service.reverse_dns.max_entries", rdns.max_entries, 1);
        c.at_least("service.reverse_dns.max_in_flight", rdns.max_in_flight, 1);
        c.positive("service.reverse_dns.lookup_timeout", rdns.lookup_timeout);

        let export = &self.export;
        if let Some(otlp) = &export.otlp {
            if let Err(reason) = check_endpoint(&otlp.endpoint) {
                c.check(false, "export.otlp.endpoint", || reason);
            }
            c.positive("export.otlp.timeout", otlp.timeout);
            for name in otlp.headers.keys() {
                let ok = !name.is_empty() && name.bytes().all(is_header_name_byte);
                c.check(ok, &format!("export.otlp.headers.{name}"), || {
                    format!("{name:?} is not a valid HTTP header name")
                });
            }
        }
        c.at_least("export.queue_size", export.queue_size, 1);
        c.range(
            "export.max_queue_bytes",
            export.max_queue_bytes,
            MIN_QUEUE_BYTES,
            MAX_QUEUE_BYTES,
        );
        c.check(
            export.max_batch_size >= 1 && export.max_batch_size <= export.queue_size.max(1),
            "export.max_batch_size",
            || {
                format!(
                    "{} is out of range: must be 1 to export.queue_size ({})",
                    export.max_batch_size, export.queue_size
                )
            },
        );
        c.range(
            "export.max_request_bytes",
            export.max_request_bytes,
            MIN_REQUEST_BYTES,
            MAX_REQUEST_BYTES,
        );
        c.positive("export.batch_timeout", export.batch_timeout);
        c.range(
            "export.max_concurrent_exports",
            export.max_concurrent_exports,
            1,
            MAX_CONCURRENT_EXPORTS,
        );
        c.check(
            (0.0..=1.0).contains(&export.sample_ratio),
            "export.sample_ratio",
            || {
                format!(
                    "{} is out of range: must be 0.0 to 1.0",
                    export.sample_ratio
                )
            },
        );

        if let Err(e) = self.metrics.listen.parse::<SocketAddr>() {
            let listen = &self.metrics.listen;
            c.check(false, "metrics.listen", || {
                format!("{listen:?} is not an IP address and port such as 127.0.0.1:9464 or [::1]:9464 ({e})")
            });
        }

        c.check(!self.log.level.trim().is_empty(), "log.level", || {
            "is empty: use a filter such as `info`".to_string()
        });

        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(c.errors)
        }
    }
}

/// RFC 9110 token characters.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Accepts `http://` or `https://` URLs with a host and, optionally, a port and path.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("{endpoint:?} must be an http:// or https:// URL such as http://localhost:4317")
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{endpoint:?}: put credentials in export.otlp.headers, not in the URL"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("{endpoint:?}: unclosed `[` in the IPv6 address"))?;
        let host = &v6[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{endpoint:?}: {host:?} is not an IPv6 address"));
        }
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(format!(
                    "{endpoint:?}: unexpected {after:?} after the IPv6 address"
                ))
            }
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{endpoint:?} has no host"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(format!("{endpoint:?}: {host:?} is not a valid host name"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p != 0 => {}
            _ => return Err(format!("{endpoint:?}: {port:?} is not a port (1 to 65535)")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(check_endpoint("http://localhost:4317"), Ok(()));
        assert_eq!(check_endpoint("https://[2001:db8::1]/v1"), Ok(()));
        assert!(check_endpoint("http://[2001:db8::1]x").is_err());
        assert!(check_endpoint("http://[zz]:1").is_err());
        assert!(check_endpoint("http://h:0").is_err());
        assert!(check_endpoint("ftp://h").is_err());
    }

    #[test]
    fn cidrs() {
        use std::net::IpAddr;
        let v4: IpAddr = "10.1.0.0".parse().expect("ip");
        assert_eq!(parse_cidr("10.1.0.0/16"), Ok((v4, 16)));
        assert_eq!(parse_cidr("10.1.0.0"), Ok((v4, 32)));
        assert_eq!(parse_cidr("::1").map(|(_, n)| n), Ok(128));
        assert!(parse_cidr("10.1.0.0/").is_err());
        assert!(parse_cidr("10.1.0.0/-1").is_err());
        assert!(parse_cidr("/8").is_err());
    }
}
