//! The DNS resolver the checks use: the system's, or given nameservers (tests, split DNS).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::MessageAuthenticator;

use crate::Error;

/// Where and how long to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Nameservers as `ip:port`; empty means the system resolver (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Time one query may take before it is retried or given up.
    pub timeout: Duration,
}

/// A resolver (with its answer cache, shared by every message) per `settings`.
pub fn authenticator(settings: &DnsSettings) -> Result<MessageAuthenticator, Error> {
    let (config, mut options) = if settings.nameservers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| Error::SystemResolver(e.to_string()))?
    } else {
        let servers = settings.nameservers.iter().map(nameserver).collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    options.timeout = settings.timeout;
    MessageAuthenticator::new(config, options).map_err(|e| Error::Resolver(e.to_string()))
}

/// UDP, and TCP for truncated answers (long TXT records: DKIM keys, SPF), on the given port.
fn nameserver(addr: &SocketAddr) -> NameServerConfig {
    let on_port = |mut connection: ConnectionConfig| {
        connection.port = addr.port();
        connection
    };
    NameServerConfig::new(
        addr.ip(),
        true,
        vec![
            on_port(ConnectionConfig::udp()),
            on_port(ConnectionConfig::tcp()),
        ],
    )
}
