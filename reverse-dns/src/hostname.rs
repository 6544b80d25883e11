//! Which resolver answers become a `service.peer.name`: a hostname, with one
//! trailing dot removed. Anything else (spaces, control characters, an address
//! written as text, over-long labels) is rejected and counted as `invalid`.

use std::net::IpAddr;

/// The longest name in presentation form without the trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// The longest label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// The name to use for `raw`, or `None` when `raw` is not a hostname.
///
/// Labels are letters, digits, `-` (not first or last) and `_`. The underscore
/// is not valid in RFC 1123 hostnames, but real PTR records and
/// `/etc/hosts` entries use it (systemd-resolved answers `_gateway`), and it is
/// harmless in a span attribute. Case is kept as the resolver returned it.
pub(crate) fn normalize(raw: &str) -> Option<&str> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    // An address in text form is not a name (a hosts file can map an address
    // to "10.0.0.1"); reporting it as one would be misleading.
    if name.parse::<IpAddr>().is_ok() {
        return None;
    }
    name.split('.').all(valid_label).then_some(name)
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_hostnames_and_strips_one_trailing_dot() {
        assert_eq!(normalize("localhost"), Some("localhost"));
        assert_eq!(
            normalize("db-1.prod.example.com."),
            Some("db-1.prod.example.com")
        );
        assert_eq!(normalize("_gateway"), Some("_gateway"));
        assert_eq!(normalize("Host7.Example"), Some("Host7.Example"));
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest.len(), 253);
        assert_eq!(normalize(&longest), Some(longest.as_str()));
    }

    #[test]
    fn rejects_what_is_not_a_hostname() {
        for bad in [
            "",
            ".",
            "a..b",
            "host.example..",
            "has space",
            "tab\there",
            "new\nline",
            "-lead.example",
            "trail-.example",
            "caf\u{e9}.example",
            "semi;colon",
            "10.0.0.1",
            "::1",
            "fe80::1%eth0",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert_eq!(normalize(&"a".repeat(64)), None);
        let too_long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        assert_eq!(normalize(&too_long), None);
    }
}
