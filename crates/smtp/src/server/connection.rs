//! Drives one [`Session`] over a socket: reads with deadlines, writes replies, calls the
//! handler, upgrades to TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, warn};

use super::{Security, SmtpServer};
use crate::protocol::{Event, Phase, Session};
use crate::{DeliveryOutcome, MailHandler, MessageSink};

/// Read size per syscall; also bounds how much the session buffers beyond one command line.
const READ_CHUNK: usize = 16 * 1024;

/// How the command loop ended.
enum Next {
    Close,
    StartTls,
}

/// Result of waiting for client bytes.
enum Input {
    Bytes(usize),
    Eof,
    Timeout,
    Shutdown,
}

pub(super) struct Connection<H: MailHandler> {
    server: Arc<SmtpServer<H>>,
    peer: SocketAddr,
    session: Session,
    sink: Option<H::Sink>,
    shutdown: watch::Receiver<bool>,
    /// Deadline for the current command line or data block, and the session progress value it
    /// was set for: a new line/block gets a fresh *total* deadline (no slowloris resets).
    deadline: Option<(u64, Instant)>,
    buf: Vec<u8>,
}

impl<H: MailHandler> Connection<H> {
    pub(super) fn new(
        server: Arc<SmtpServer<H>>,
        peer: SocketAddr,
        security: Security,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let config = Arc::clone(&server.session_config);
        let session = match security {
            Security::StartTls => Session::new(config, peer),
            Security::ImplicitTls => Session::new_over_tls(config, peer),
        };
        Self {
            server,
            peer,
            session,
            sink: None,
            shutdown,
            deadline: None,
            buf: vec![0; READ_CHUNK],
        }
    }

    pub(super) async fn run(mut self, mut tcp: TcpStream) -> io::Result<()> {
        if self.session.is_tls() {
            // Implicit TLS: the handshake comes first; the greeting waits in the session.
            return self.run_tls(tcp, false).await;
        }
        let next = self.drive(&mut tcp).await?;
        if !matches!(next, Next::StartTls) {
            let _ = timeout(self.server.settings.command_timeout, tcp.shutdown()).await;
            return Ok(());
        }
        self.run_tls(tcp, true).await
    }

    /// Handshakes, then runs the session under TLS until it closes.
    async fn run_tls(mut self, tcp: TcpStream, starttls: bool) -> io::Result<()> {
        let Some(acceptor) = self.server.tls.clone() else {
            return Ok(());
        };
        let limit = self.server.settings.command_timeout;
        let Some(mut tls) = postkeep_net::tls_handshake(&acceptor, tcp, limit).await else {
            return Ok(());
        };
        {
            let (_, conn) = tls.get_ref();
            debug!(version = ?conn.protocol_version(), suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()), "TLS established");
        }
        if starttls {
            self.session.tls_established();
        }
        self.deadline = None;
        // A second STARTTLS is refused by the session, so this can only end in Close.
        self.drive(&mut tls).await?;
        let _ = timeout(self.server.settings.command_timeout, tls.shutdown()).await;
        Ok(())
    }

    /// Runs the session until it wants to close or switch to TLS.
    async fn drive<S>(&mut self, io: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self.session.next_event() {
                Event::NeedInput => {
                    self.flush(io).await?;
                    match self.read_input(io).await? {
                        Input::Bytes(n) => {
                            let bytes = self.buf.get(..n).unwrap_or_default();
                            self.session.feed(bytes);
                        }
                        Input::Eof => self.session.input_closed(),
                        Input::Timeout => self.session.timed_out(),
                        Input::Shutdown => self.session.shutdown(),
                    }
                }
                Event::CheckRecipient(rcpt) => {
                    let verdict = self.server.handler.check_recipient(&rcpt).await;
                    self.session.recipient_checked(verdict);
                }
                Event::Authenticate(request) => {
                    let ip = self.peer.ip().to_canonical();
                    let verdict = self.server.handler.authenticate(request, ip).await;
                    self.session.auth_checked(verdict);
                }
                Event::CheckSender(from) => {
                    let verdict = match self.session.authenticated().cloned() {
                        Some(user) => self.server.handler.check_sender(&from, &user).await,
                        // The session asks only after AUTH; refuse if that ever changes.
                        None => crate::SenderVerdict::Refuse(
                            530,
                            "5.7.0",
                            "Authentication required".to_string(),
                        ),
                    };
                    self.session.sender_checked(verdict);
                }
                Event::BeginMessage => self.begin_message().await,
                Event::Body(bytes) => {
                    let failed = match self.sink.as_mut() {
                        Some(sink) => sink.write(bytes).await.err(),
                        None => None,
                    };
                    if let Some(err) = failed {
                        warn!(error = %err, "message sink write failed");
                        self.sink = None;
                        self.session.sink_failed();
                    }
                }
                Event::Deliver(envelope) => {
                    let outcome = match self.sink.take() {
                        Some(sink) => self.server.handler.deliver(sink, &envelope).await,
                        None => DeliveryOutcome::TempFail(String::new()),
                    };
                    self.session.delivered(outcome);
                }
                Event::AbortMessage => self.sink = None,
                Event::StartTls => {
                    self.flush(io).await?;
                    return Ok(Next::StartTls);
                }
                Event::Close => {
                    self.sink = None;
                    self.flush(io).await?;
                    return Ok(Next::Close);
                }
            }
        }
    }

    async fn begin_message(&mut self) {
        match self.server.handler.begin_message().await {
            Ok(sink) => {
                self.sink = Some(sink);
                let id = message_id();
                let date = chrono::Local::now().to_rfc2822();
                debug!(id, "message started");
                self.session.message_begun(&id, &date);
            }
            Err(err) => {
                warn!(error = %err, "cannot open message sink");
                self.session.message_begin_failed();
            }
        }
    }

    /// Writes pending replies; a client that does not read them is cut off by the timeout.
    async fn flush<S>(&mut self, io: &mut S) -> io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        if self.session.output().is_empty() {
            return Ok(());
        }
        let write = async {
            io.write_all(self.session.output()).await?;
            io.flush().await
        };
        match timeout(self.server.settings.command_timeout, write).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
        self.session.clear_output();
        Ok(())
    }

    async fn read_input<S>(&mut self, io: &mut S) -> io::Result<Input>
    where
        S: AsyncRead + Unpin,
    {
        let phase = self.session.phase();
        let deadline = self.current_deadline(phase);
        // Shutdown only interrupts between commands; a DATA/BDAT block in flight may finish.
        let mut watch_shutdown = phase == Phase::Command;
        loop {
            if watch_shutdown && *self.shutdown.borrow() {
                return Ok(Input::Shutdown);
            }
            tokio::select! {
                read = timeout_at(deadline, io.read(&mut self.buf)) => {
                    return match read {
                        Err(_) => Ok(Input::Timeout),
                        Ok(Ok(0)) => Ok(Input::Eof),
                        Ok(Ok(n)) => Ok(Input::Bytes(n)),
                        Ok(Err(err)) => Err(err),
                    };
                }
                changed = self.shutdown.changed(), if watch_shutdown => {
                    if changed.is_err() {
                        // Sender gone: treated as shutdown, like in the accept loop.
                        return Ok(Input::Shutdown);
                    }
                    watch_shutdown = phase == Phase::Command;
                }
            }
        }
    }

    fn current_deadline(&mut self, phase: Phase) -> Instant {
        let progress = self.session.progress();
        match self.deadline {
            Some((at, deadline)) if at == progress => deadline,
            _ => {
                let settings = &self.server.settings;
                let limit = match phase {
                    Phase::Command => settings.command_timeout,
                    Phase::Data => settings.data_timeout,
                };
                let deadline = Instant::now() + limit;
                self.deadline = Some((progress, deadline));
                deadline
            }
        }
    }
}

/// Queue id: 80 random bits in Crockford base32 (16 characters).
fn message_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 10];
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    if random.fill(&mut bytes).is_err() {
        // Never expected; a clock-derived id is still unique enough for a queue id.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(nanos.to_le_bytes().get(..10).unwrap_or(&[0; 10]));
    }
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    (0..16)
        .rev()
        .map(|i| {
            let index = usize::try_from((bits >> (i * 5)) & 31).unwrap_or(0);
            char::from(ALPHABET.get(index).copied().unwrap_or(b'0'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_ids_are_16_base32_chars_and_differ() {
        let a = message_id();
        let b = message_id();
        assert_eq!(a.len(), 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
