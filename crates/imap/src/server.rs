//! The tokio side: listeners for `imaps` (implicit TLS, TLS 1.3 only) and `imap` (STARTTLS),
//! connection caps shared by both, graceful shutdown. Each connection is one task running a
//! [`crate::session`]: no thread per connection, a few tens of KiB per idle one.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postkeep_auth::login::Authenticator;
use postkeep_net::ConnectionLimits;
pub use postkeep_net::Security;
use postkeep_store::MailStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::info;

/// Settings of the IMAP server.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// Maximum simultaneous connections (0 = unlimited).
    pub max_connections: usize,
    /// Maximum simultaneous connections from one IP address (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// Autologout of an authenticated session (RFC 9051 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    /// Time to finish TLS and log in.
    pub login_timeout: Duration,
    /// BAD responses before the session is closed (0 = unlimited).
    pub max_errors: u32,
    /// RFC 7889 APPENDLIMIT: the largest message APPEND accepts, in octets.
    pub append_limit: u64,
}

impl Default for ImapSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 50,
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: crate::session::DEFAULT_LOGIN_TIMEOUT,
            max_errors: 20,
            append_limit: 50 * 1024 * 1024,
        }
    }
}

/// IMAP over one store; serve it on any number of listeners.
pub struct ImapServer {
    pub(crate) settings: ImapSettings,
    pub(crate) store: Arc<MailStore>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) tls: TlsAcceptor,
    limits: Arc<ConnectionLimits>,
}

impl ImapServer {
    /// `tls`: the configuration for both implicit TLS and STARTTLS (the binary builds it TLS
    /// 1.3 only).
    pub fn new(
        settings: ImapSettings,
        store: Arc<MailStore>,
        auth: Arc<Authenticator>,
        tls: Arc<rustls::ServerConfig>,
    ) -> Self {
        let limits = Arc::new(ConnectionLimits::new(
            settings.max_connections,
            settings.max_connections_per_ip,
        ));
        Self {
            settings,
            store,
            auth,
            tls: TlsAcceptor::from(tls),
            limits,
        }
    }

    /// Accepts connections until `shutdown` becomes true; sessions then get a BYE after their
    /// current command.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        security: Security,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        info!(addr = ?listener.local_addr().ok(), ?security, "IMAP server listening");
        let watcher = shutdown.clone();
        let tasks =
            postkeep_net::accept_until_shutdown(listener, &mut shutdown, |stream, peer, tasks| {
                self.clone().admit(stream, peer, security, &watcher, tasks)
            })
            .await;
        postkeep_net::drain_sessions(tasks, self.settings.login_timeout).await;
        Ok(())
    }

    fn admit(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        security: Security,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        let span = tracing::info_span!("imap", peer = %peer.ip().to_canonical());
        let shutdown = shutdown.clone();
        let implicit = security == Security::ImplicitTls;
        // RFC 9051 §7.1.5: a BYE greeting refuses the connection; RFC 5530 UNAVAILABLE says
        // the refusal is temporary.
        let refusal: &'static [u8] = b"* BYE [UNAVAILABLE] Too many connections\r\n";
        let limits = Arc::clone(&self.limits);
        postkeep_net::spawn_session(
            &limits,
            stream,
            peer,
            span,
            tasks,
            (!implicit).then_some(refusal),
            move |stream| crate::session::run(self, stream, peer, implicit, shutdown),
        );
    }
}
