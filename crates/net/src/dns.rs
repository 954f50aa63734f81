//! The DNS resolver of `[dns]`, shared by everything that looks names up: the outbound queue
//! (MX and address records) and inbound sender authentication (SPF, DKIM, DMARC, ARC).
//! Built once per process; its clones share one answer cache and one connection pool.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
pub use hickory_resolver::TokioResolver;

/// Where lookups go and how long one may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Nameservers as `ip:port`; empty means the system resolver (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Time one query may take before it is retried or given up.
    pub timeout: Duration,
}

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read the system DNS configuration (/etc/resolv.conf): {0}")]
    SystemConfig(String),
    #[error("cannot set up the DNS resolver: {0}")]
    Build(String),
}

/// A resolver per [`DnsSettings`]; cheap to clone, clones share its cache.
#[derive(Clone)]
pub struct Resolver {
    lookup: TokioResolver,
    timeout: Duration,
}

impl Resolver {
    /// The system resolver, or the given nameservers, each query bounded by `timeout`.
    pub fn new(settings: &DnsSettings) -> Result<Self, ResolverError> {
        let (config, mut options) = if settings.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ResolverError::SystemConfig(e.to_string()))?
        } else {
            let servers = settings.nameservers.iter().map(nameserver).collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        options.timeout = settings.timeout;
        let lookup = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| ResolverError::Build(e.to_string()))?;
        Ok(Self {
            lookup,
            timeout: settings.timeout,
        })
    }

    /// The hickory resolver, for lookups (or to hand to mail-auth).
    pub fn lookup(&self) -> &TokioResolver {
        &self.lookup
    }

    /// The time one query may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// UDP, and TCP for truncated answers (long TXT records: DKIM keys, SPF; long MX or address
/// sets), on the given port.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queries_go_to_the_configured_nameserver_and_port() {
        // A nameserver that never answers: the query must arrive there, and the lookup must
        // give up instead of falling back to the system resolver.
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let resolver = Resolver::new(&DnsSettings {
            nameservers: vec![socket.local_addr().unwrap()],
            timeout: Duration::from_millis(200),
        })
        .unwrap();
        assert_eq!(resolver.timeout(), Duration::from_millis(200));
        let lookup = tokio::spawn({
            let resolver = resolver.clone();
            async move { resolver.lookup().mx_lookup("example.org.").await }
        });
        let mut query = [0u8; 512];
        tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut query))
            .await
            .expect("the query reaches the configured port")
            .unwrap();
        assert!(lookup.await.unwrap().is_err(), "nobody answered");
    }
}
