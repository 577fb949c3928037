//! The one rule every network call in this crate follows: the peer is on this machine.
//! The RVPS API is plaintext and unauthenticated and the OCI push is plain HTTP, so a
//! non-loopback host is refused before any connection is made.

use std::net::IpAddr;

/// Whether `host` (a host name or IP literal, with or without `[]`, no port) is loopback:
/// `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Splits `host:port` or `[v6]:port` (or a bare host) and returns the host part.
pub(crate) fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in ["127.0.0.1:5000", "localhost", "[::1]:50003", "127.1.2.3"] {
            assert!(is_loopback_host(host_of(ok)), "{ok} should be loopback");
        }
        for bad in [
            "10.0.0.1:5000",
            "registry.example.org",
            "[::2]:1",
            "0.0.0.0:5000",
        ] {
            assert!(
                !is_loopback_host(host_of(bad)),
                "{bad} should not be loopback"
            );
        }
    }
}
