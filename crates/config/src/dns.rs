//! `[dns]` and `[inbound_auth]`: the resolver that inbound authentication (SPF, DKIM, DMARC,
//! ARC) and the outbound queue's MX lookups ask, and whether inbound authentication runs.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// DNS used to verify senders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Nameservers to ask, in order; empty means the system resolver (`/etc/resolv.conf`).
    #[serde(deserialize_with = "deserialize_nameservers")]
    pub nameservers: Vec<SocketAddr>,
    /// Time one query may take; a slower answer counts as a temporary error.
    pub timeout_secs: u64,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            nameservers: Vec::new(),
            timeout_secs: 5,
        }
    }
}

impl Dns {
    /// [`Dns::timeout_secs`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Sender authentication of mail arriving on the `smtp` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundAuth {
    /// Verify SPF, DKIM, ARC and DMARC, record them in an `Authentication-Results:` header and
    /// apply the sender's DMARC policy (reject, or file into Junk).
    pub enabled: bool,
}

impl Default for InboundAuth {
    fn default() -> Self {
        InboundAuth { enabled: true }
    }
}

fn deserialize_nameservers<'de, D>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_seq(NameserversVisitor)
}

struct NameserversVisitor;

impl<'de> Visitor<'de> for NameserversVisitor {
    type Value = Vec<SocketAddr>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of \"ip:port\" strings such as [\"127.0.0.1:53\"]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Nameserver(addr)) = seq.next_element()? {
            out.push(addr);
        }
        Ok(out)
    }
}

/// One `"ip:port"` entry. Names are refused: resolving a nameserver's name would need DNS.
struct Nameserver(SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameserverVisitor)
    }
}

struct NameserverVisitor;

impl Visitor<'_> for NameserverVisitor {
    type Value = Nameserver;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an \"ip:port\" string such as \"127.0.0.1:53\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Nameserver, E> {
        v.parse().map(Nameserver).map_err(|_| {
            E::custom(format!(
                "invalid nameserver \"{v}\": expected \"ip:port\", e.g. \"127.0.0.1:53\" or \"[::1]:53\""
            ))
        })
    }
}
