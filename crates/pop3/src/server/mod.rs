//! The tokio side: listeners for `pop3s` (implicit TLS) and `pop3` (STLS), connection caps
//! shared by both, graceful shutdown. Each connection is driven by [`connection::Connection`]
//! over the sans-I/O [`crate::protocol::Session`].

mod connection;
mod limits;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postkeep_auth::login::Authenticator;
use postkeep_store::MailStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::info;

use limits::MaildropLocks;
use postkeep_net::ConnectionLimits;
pub use postkeep_net::Security;

/// Settings of the POP3 server.
#[derive(Debug, Clone)]
pub struct Pop3Settings {
    /// Maximum simultaneous connections (0 = unlimited).
    pub max_connections: usize,
    /// Maximum simultaneous connections from one IP address (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// Total time for one command line to arrive (RFC 1939 §3: autologout after ≥ 10 min).
    pub command_timeout: Duration,
    /// Bad commands and failed logins before the session is closed (0 = unlimited).
    pub max_errors: u32,
}

impl Default for Pop3Settings {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_ip: 20,
            command_timeout: Duration::from_secs(600),
            max_errors: 10,
        }
    }
}

/// POP3 over one store; serve it on any number of listeners.
pub struct Pop3Server {
    settings: Pop3Settings,
    store: Arc<MailStore>,
    auth: Arc<Authenticator>,
    tls: TlsAcceptor,
    limits: Arc<ConnectionLimits>,
    locks: Arc<MaildropLocks>,
}

impl Pop3Server {
    /// `tls`: the configuration for both implicit TLS and STLS (the binary builds it TLS 1.3
    /// only).
    pub fn new(
        settings: Pop3Settings,
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
            locks: Arc::default(),
        }
    }

    /// Accepts connections until `shutdown` becomes true (or its sender is dropped); sessions
    /// then end after their current command without an UPDATE (RFC 1939 §6).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        security: Security,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        info!(addr = ?listener.local_addr().ok(), ?security, "POP3 server listening");
        let watcher = shutdown.clone();
        let tasks =
            postkeep_net::accept_until_shutdown(listener, &mut shutdown, |stream, peer, tasks| {
                self.clone().admit(stream, peer, security, &watcher, tasks)
            })
            .await;
        postkeep_net::drain_sessions(tasks, self.settings.command_timeout).await;
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
        let span = tracing::info_span!("pop3", peer = %peer.ip().to_canonical());
        let shutdown = shutdown.clone();
        // RFC 3206 §4 SYS/TEMP: a temporary refusal, worth retrying later.
        let refusal: &'static [u8] = b"-ERR [SYS/TEMP] Too many connections\r\n";
        let limits = Arc::clone(&self.limits);
        postkeep_net::spawn_session(
            &limits,
            stream,
            peer,
            span,
            tasks,
            (security == Security::StartTls).then_some(refusal),
            move |stream| connection::run(self, stream, peer, security, shutdown),
        );
    }
}
