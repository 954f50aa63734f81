//! What every listener shares, whatever its protocol (SMTP, POP3, IMAP): admission control by
//! connection counts (with a refusal line on plaintext listeners), the accept loop, and a
//! bounded TLS handshake. Also the one DNS resolver of `[dns]` ([`dns`]) for the crates that
//! look names up.
#![forbid(unsafe_code)]

pub mod dns;

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Instrument};

/// How a listener's connections start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314: `submissions`, `imaps`, `pop3s`).
    ImplicitTls,
    /// Plaintext until the protocol's upgrade command (SMTP STARTTLS, RFC 3207; IMAP
    /// STARTTLS, RFC 9051 §6.2.1; POP3 STLS, RFC 2595 §4).
    StartTls,
}

/// Accepts connections until `shutdown` becomes true (or its sender is dropped), handing each
/// to `admit`, which spawns its session into the set. Returns the sessions still running, for
/// the caller to drain with its own grace period. The listener is closed on return.
pub async fn accept_until_shutdown<F>(
    listener: TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    mut admit: F,
) -> JoinSet<()>
where
    F: FnMut(TcpStream, SocketAddr, &mut JoinSet<()>),
{
    let mut tasks = JoinSet::new();
    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &mut tasks),
                Err(err) => {
                    // Usually EMFILE/ENFILE: back off instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(joined),
        }
    }
    tasks
}

/// Starts the session of an accepted connection: counted against `limits`, run under `span`
/// with its outcome logged. `session` builds the session's future from the stream.
///
/// A connection over the limits is closed with a log line. `refusal` is the line it is told
/// first on a plaintext listener (e.g. an IMAP `* BYE`); implicit-TLS listeners pass `None`:
/// before a handshake there is no channel to say why, and a handshake for a refused
/// connection would be work an attacker could make the server do.
pub fn spawn_session<F>(
    limits: &Arc<ConnectionLimits>,
    stream: TcpStream,
    peer: SocketAddr,
    span: tracing::Span,
    tasks: &mut JoinSet<()>,
    refusal: Option<&'static [u8]>,
    session: impl FnOnce(TcpStream) -> F,
) where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let Some(permit) = limits.try_acquire(peer.ip().to_canonical()) else {
        info!(parent: &span, "connection refused: too many connections");
        if let Some(line) = refusal {
            refuse(stream, line);
        }
        return;
    };
    let _ = stream.set_nodelay(true);
    let session = session(stream);
    tasks.spawn(
        async move {
            let _permit = permit;
            match session.await {
                Ok(()) => info!("connection closed"),
                Err(err) => info!(error = %err, "connection ended with error"),
            }
        }
        .instrument(span),
    );
}

/// Writes `line` to a refused connection and closes it, in one non-blocking write: the send
/// buffer of a just-accepted socket takes a short line whole, so this never waits on the
/// client, never stalls the accept loop, and holds no task, timer or descriptor afterwards
/// (a flood of refused connections costs nothing more than their accept).
fn refuse(stream: TcpStream, line: &[u8]) {
    // `into_std` keeps the socket non-blocking; a failure here only loses the courtesy line.
    match stream.into_std() {
        Ok(stream) => {
            if let Err(err) = (&stream).write(line) {
                debug!(error = %err, "cannot tell a refused connection why");
            }
        }
        Err(err) => debug!(error = %err, "cannot tell a refused connection why"),
    }
}

/// Waits up to `grace` for the sessions to end, then aborts the rest.
pub async fn drain_sessions(mut tasks: JoinSet<()>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            sessions = tasks.len(),
            "aborting sessions still running after grace period"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        if err.is_panic() {
            warn!(error = %err, "session task panicked");
        }
    }
}

/// A TLS handshake that must finish within `limit`; failures are logged, not returned, since
/// the only answer to either is closing the connection.
pub async fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    limit: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            info!(error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!("TLS handshake timed out");
            None
        }
    }
}

/// A total cap and a per-IP cap on open connections; a [`Permit`] releases its slot on drop.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held for the lifetime of an admitted connection.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Zero means "no limit" for either cap.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        }
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut counts = self.lock();
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        let over_total = self.max_total > 0 && counts.total >= self.max_total;
        let over_ip = self.max_per_ip > 0 && from_ip >= self.max_per_ip;
        if over_total || over_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Some(Permit {
            limits: Arc::clone(self),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }

    /// A panic elsewhere must not wedge admission: the counts stay consistent under poisoning
    /// because every critical section is a few plain integer updates.
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn per_ip_cap_counts_each_address_separately_and_releases() {
        let limits = Arc::new(ConnectionLimits::new(10, 2));
        let a1 = limits.try_acquire(A);
        let _a2 = limits.try_acquire(A);
        assert!(a1.is_some());
        assert!(limits.try_acquire(A).is_none());
        assert!(limits.try_acquire(B).is_some());
        drop(a1);
        assert!(limits.try_acquire(A).is_some());
    }

    /// What a client over the cap reads before the server closes: `refusal`'s line, then EOF.
    async fn read_by_connection_over_cap(refusal: Option<&'static [u8]>) -> Vec<u8> {
        use tokio::io::AsyncReadExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Arc::new(ConnectionLimits::new(1, 0));
        let _held = limits.try_acquire(A).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let mut tasks = JoinSet::new();
        spawn_session(
            &limits,
            stream,
            peer,
            tracing::Span::none(),
            &mut tasks,
            refusal,
            |_| async { panic!("a session was started over the cap") },
        );
        assert!(
            tasks.is_empty(),
            "a refused connection must not hold a task"
        );
        let mut read = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut read))
            .await
            .expect("the refused connection was not closed")
            .unwrap();
        read
    }

    #[tokio::test]
    async fn connection_over_cap_is_told_the_refusal_line_then_closed() {
        let line = b"* BYE [UNAVAILABLE] Too many connections\r\n";
        assert_eq!(read_by_connection_over_cap(Some(line)).await, line);
    }

    #[tokio::test]
    async fn connection_over_cap_without_refusal_line_is_closed_silently() {
        assert_eq!(read_by_connection_over_cap(None).await, b"");
    }

    #[test]
    fn total_cap_applies_across_addresses() {
        let limits = Arc::new(ConnectionLimits::new(1, 0));
        let first = limits.try_acquire(A);
        assert!(first.is_some());
        assert!(limits.try_acquire(B).is_none());
        drop(first);
        assert!(limits.try_acquire(B).is_some());
    }
}
