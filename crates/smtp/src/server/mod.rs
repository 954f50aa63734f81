//! The tokio side: accept loop, connection limits, graceful shutdown. Each connection is driven
//! by [`connection::Connection`] over the sans-I/O [`crate::protocol::Session`].

mod connection;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, Instrument};

use crate::protocol::{reply, SessionConfig};
use crate::{MailHandler, Mode};
use postkeep_net::ConnectionLimits;
pub use postkeep_net::Security;

/// Settings of the inbound SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Name in the greeting, EHLO reply and `Received:` headers.
    pub hostname: String,
    /// Maximum message body size in octets (0 = unlimited).
    pub max_message_size: u64,
    /// Maximum recipients per transaction.
    pub max_recipients: usize,
    /// Maximum command line length including CRLF (at least 512 is used, RFC 5321 §4.5.3.1.4).
    pub max_command_line: usize,
    /// Maximum simultaneous connections (0 = unlimited).
    pub max_connections: usize,
    /// Maximum simultaneous connections from one IP address (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// Total time allowed for one command line to arrive.
    pub command_timeout: Duration,
    /// Total time allowed for one DATA body or BDAT chunk to arrive.
    pub data_timeout: Duration,
    /// Errors before a session is closed with 421 (0 = unlimited).
    pub max_errors: u32,
    /// MX or submission rules.
    pub mode: Mode,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 4096,
            max_connections: 1000,
            max_connections_per_ip: 20,
            // RFC 5321 §4.5.3.2 suggests 5 min per command and 10 min for the data phase.
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_errors: 20,
            mode: Mode::Mx,
        }
    }
}

/// SMTP server: one connection cap and one set of per-IP limits for every listener it serves.
pub struct SmtpServer<H: MailHandler> {
    settings: SmtpSettings,
    session_config: Arc<SessionConfig>,
    handler: Arc<H>,
    tls: Option<TlsAcceptor>,
    limits: Arc<ConnectionLimits>,
}

impl<H: MailHandler> SmtpServer<H> {
    /// `tls` enables STARTTLS and implicit TLS; the binary builds it (and picks the versions).
    pub fn new(
        settings: SmtpSettings,
        handler: Arc<H>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let session_config = Arc::new(SessionConfig {
            hostname: settings.hostname.clone(),
            max_message_size: settings.max_message_size,
            max_recipients: settings.max_recipients,
            max_command_line: settings.max_command_line,
            max_errors: settings.max_errors,
            tls_available: tls.is_some(),
            mode: settings.mode,
        });
        let limits = Arc::new(ConnectionLimits::new(
            settings.max_connections,
            settings.max_connections_per_ip,
        ));
        Self {
            settings,
            session_config,
            handler,
            tls: tls.map(TlsAcceptor::from),
            limits,
        }
    }

    /// Accepts connections until `shutdown` becomes true (or its sender is dropped), then stops
    /// accepting, lets sessions finish their current command (they answer 421 4.3.2) and
    /// returns once they are gone or a grace period (command + data timeout) ran out.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        self.serve_with(listener, Security::StartTls, shutdown)
            .await
    }

    /// [`SmtpServer::serve`] for a listener of the given kind; implicit TLS needs the server's
    /// TLS configuration.
    pub async fn serve_with(
        self: Arc<Self>,
        listener: TcpListener,
        security: Security,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        if security == Security::ImplicitTls && self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "implicit TLS needs a TLS configuration",
            ));
        }
        info!(addr = ?listener.local_addr().ok(), ?security, mode = ?self.settings.mode, "SMTP server listening");
        let watcher = shutdown.clone();
        let tasks =
            postkeep_net::accept_until_shutdown(listener, &mut shutdown, |stream, peer, tasks| {
                self.clone().admit(stream, peer, security, &watcher, tasks)
            })
            .await;
        info!(sessions = tasks.len(), "SMTP server shutting down");
        let grace = self
            .settings
            .command_timeout
            .saturating_add(self.settings.data_timeout);
        postkeep_net::drain_sessions(tasks, grace).await;
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
        let ip = peer.ip().to_canonical();
        let span = tracing::info_span!("smtp", peer = %ip);
        match self.limits.try_acquire(ip) {
            Some(permit) => {
                let shutdown = shutdown.clone();
                tasks.spawn(
                    async move {
                        let _permit = permit;
                        self.run_connection(stream, peer, security, shutdown).await;
                    }
                    .instrument(span),
                );
            }
            None if security == Security::ImplicitTls => {
                // No TLS yet, so no reply can be read: just close.
                info!("connection refused: too many connections");
            }
            None => {
                let write_timeout = self.settings.command_timeout;
                tasks.spawn(
                    async move {
                        info!("connection refused: too many connections");
                        let mut stream = stream;
                        let bytes = reply::render(reply::TOO_MANY_CONNECTIONS);
                        let _ = tokio::time::timeout(write_timeout, async {
                            stream.write_all(&bytes).await?;
                            stream.shutdown().await
                        })
                        .await;
                    }
                    .instrument(span),
                );
            }
        }
    }

    async fn run_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        security: Security,
        shutdown: watch::Receiver<bool>,
    ) {
        if let Err(err) = stream.set_nodelay(true) {
            debug!(error = %err, "set_nodelay failed");
        }
        info!("connection opened");
        let connection = connection::Connection::new(self, peer, security, shutdown);
        match connection.run(stream).await {
            Ok(()) => info!("connection closed"),
            Err(err) => info!(error = %err, "connection ended with error"),
        }
    }
}
