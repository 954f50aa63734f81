//! `[listen]` values: `"host:port"` strings turned into socket addresses.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use serde::de::{self, Deserializer, Visitor};

/// Deserializes an optional listener address (the field is `None` when the key is absent).
pub(crate) fn deserialize<'de, D>(deserializer: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_str(AddrVisitor).map(Some)
}

struct AddrVisitor;

impl Visitor<'_> for AddrVisitor {
    type Value = SocketAddr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a \"host:port\" string such as \"127.0.0.1:25\" or \"[::1]:25\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
        parse_listen_addr(v).map_err(E::custom)
    }
}

/// Parses `"ip:port"` / `"[ipv6]:port"` directly, and resolves `"name:port"` with the system
/// resolver (first result wins), which is what `localhost:25` needs.
pub(crate) fn parse_listen_addr(v: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Reject shapes that cannot be host:port before asking the resolver, so a typo never turns
    // into a DNS query.
    let has_port = v
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid socket address \"{v}\": expected \"host:port\", e.g. \"127.0.0.1:25\" or \"[::1]:25\""
        ));
    }
    let mut addrs = v
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{v}\": {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("cannot resolve \"{v}\": no addresses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_ipv6_and_wildcard_forms_parse() {
        assert_eq!(
            parse_listen_addr("0.0.0.0:25"),
            Ok("0.0.0.0:25".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::1]:25"),
            Ok("[::1]:25".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::]:587"),
            Ok("[::]:587".parse().unwrap())
        );
    }

    #[test]
    fn missing_or_bad_port_is_rejected_without_resolving() {
        for bad in [
            "127.0.0.1",
            "localhost",
            ":25",
            "host:99999",
            "host:port",
            "a b:25",
            "",
        ] {
            let err = parse_listen_addr(bad).unwrap_err();
            assert!(err.contains("invalid socket address"), "{bad}: {err}");
        }
    }
}
