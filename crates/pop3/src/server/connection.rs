//! Drives one [`Session`] over a TLS socket (from the first byte, or after STLS on a plaintext
//! one): reads lines with total deadlines, performs the session's actions against the store,
//! streams messages.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use postkeep_auth::login::LoginError;
use postkeep_message::wire::DotStuffer;
use postkeep_store::{MailboxRole, MessageRecord, RecordParts};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::limits::MaildropLock;
use super::{Pop3Server, Security};
use crate::protocol::{
    Action, DropMessage, Line, LineFramer, LoginFailure, Maildrop, Session, TopCutter,
};

const READ_CHUNK: usize = 8 * 1024;
/// Chunks of a message in flight between the blocking reader and the socket writer.
const STREAM_DEPTH: usize = 4;

/// The open maildrop of a logged-in session.
struct Open {
    mailbox: postkeep_store::MailboxId,
    records: HashMap<u32, MessageRecord>,
    _lock: MaildropLock,
}

/// Why [`Connection::drive`] returned.
enum End {
    Closed,
    /// The client asked for STLS and was told to go ahead.
    StartTls,
}

enum Input {
    Line(Line),
    Eof,
    Timeout,
    Shutdown,
}

pub(super) async fn run(
    server: Arc<Pop3Server>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    security: Security,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let limit = server.settings.command_timeout;
    let max_errors = server.settings.max_errors;
    let mut conn = Connection {
        session: match security {
            Security::ImplicitTls => Session::new(max_errors),
            Security::StartTls => Session::plaintext(max_errors),
        },
        server,
        peer,
        shutdown,
        framer: LineFramer::new(),
        open: None,
    };
    if security == Security::StartTls {
        match conn.greet_and_drive(&mut tcp).await {
            Ok(End::StartTls) => {}
            end => {
                let _ = timeout(limit, tcp.shutdown()).await;
                return end.map(|_| ());
            }
        }
    }
    // The same TLS configuration, and the same bounded handshake, as pop3s.
    let Some(mut tls) = postkeep_net::tls_handshake(&conn.server.tls, tcp, limit).await else {
        return Ok(());
    };
    let end = match security {
        Security::ImplicitTls => conn.greet_and_drive(&mut tls).await,
        Security::StartTls => {
            conn.session.tls_started();
            conn.drive(&mut tls).await
        }
    };
    let _ = timeout(limit, tls.shutdown()).await;
    // The session never asks for STLS twice (it refuses STLS over TLS), so any end is final.
    end.map(|_| ())
}

struct Connection {
    server: Arc<Pop3Server>,
    session: Session,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    framer: LineFramer,
    open: Option<Open>,
}

impl Connection {
    async fn greet_and_drive<S>(&mut self, io: &mut S) -> io::Result<End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.write(io, Session::greeting().as_bytes()).await?;
        self.drive(io).await
    }

    /// Serves commands until the session closes or STLS hands the stream over for TLS.
    async fn drive<S>(&mut self, io: &mut S) -> io::Result<End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let action = match self.next_input(io).await? {
                Input::Line(Line::Complete(line)) => self.session.line(&line),
                Input::Line(Line::TooLong) => self.session.line_too_long(),
                // A dropped connection never reaches UPDATE (RFC 1939 §6).
                Input::Eof => return Ok(End::Closed),
                Input::Timeout => self.session.timed_out(),
                Input::Shutdown => self.session.shutdown(),
            };
            if let Some(end) = self.perform(io, action).await? {
                return Ok(end);
            }
        }
    }

    /// Performs one action (and the follow-ups it leads to); `Some` once the session closed
    /// or must go on over TLS.
    async fn perform<S>(&mut self, io: &mut S, mut action: Action) -> io::Result<Option<End>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            action = match action {
                Action::Reply(text) => {
                    self.write(io, text.as_bytes()).await?;
                    return Ok(None);
                }
                Action::Close(text) => {
                    self.write(io, text.as_bytes()).await?;
                    return Ok(Some(End::Closed));
                }
                Action::StartTls(text) => {
                    // CVE-2011-0411: plaintext pipelined behind STLS may have been injected
                    // by a man in the middle; it must never run as if it came over TLS.
                    let injected = self.framer.discard();
                    if injected > 0 {
                        info!(
                            octets = injected,
                            "discarded plaintext pipelined after STLS"
                        );
                    }
                    self.write(io, text.as_bytes()).await?;
                    return Ok(Some(End::StartTls));
                }
                Action::Login { user, secret } => self.login(&user, secret).await,
                Action::Send {
                    status,
                    uid,
                    body_lines,
                } => {
                    self.send_message(io, status, uid, body_lines).await?;
                    return Ok(None);
                }
                Action::Update { expunge } => {
                    let ok = self.update(&expunge).await;
                    self.open = None;
                    self.session.updated(ok)
                }
            };
        }
    }

    async fn login(&mut self, user: &str, secret: Zeroizing<String>) -> Action {
        let ip = self.peer.ip().to_canonical();
        let account = match self.server.auth.login(user, secret, ip).await {
            Ok(account) => account,
            Err(err) => {
                info!(user, error = %err, "login failed");
                return self.session.login_failed(match err {
                    LoginError::Invalid => LoginFailure::Invalid,
                    LoginError::Throttled(_) => LoginFailure::Throttled,
                    LoginError::Unavailable(_) => LoginFailure::Unavailable,
                });
            }
        };
        match self.open_maildrop(account.id).await {
            Ok(Some((open, drop))) => {
                info!(account = %account.address, messages = drop.messages.len(), "logged in");
                self.open = Some(open);
                self.session.logged_in(drop)
            }
            Ok(None) => self.session.login_failed(LoginFailure::InUse),
            Err(err) => {
                warn!(error = %err, "cannot open the maildrop");
                self.session.login_failed(LoginFailure::Unavailable)
            }
        }
    }

    /// Locks INBOX, then snapshots it (in this order, so no other session changes it between).
    async fn open_maildrop(
        &self,
        account: postkeep_store::AccountId,
    ) -> Result<Option<(Open, Maildrop)>, postkeep_store::StoreError> {
        let store = &self.server.store;
        let inbox = store.role_mailbox(account, MailboxRole::Inbox).await?;
        let Some(lock) = self.server.locks.try_lock(inbox.id) else {
            return Ok(None);
        };
        let mut entries = store
            .entry_records(inbox.id, &[1..=u32::MAX], RecordParts::METADATA)
            .await?;
        entries.sort_by_key(|e| e.entry.uid);
        let messages = entries
            .iter()
            .map(|e| DropMessage {
                uid: e.entry.uid,
                size: e.record.wire_size,
            })
            .collect();
        let records = entries
            .into_iter()
            .map(|e| (e.entry.uid, e.record))
            .collect();
        let open = Open {
            mailbox: inbox.id,
            records,
            _lock: lock,
        };
        let drop = Maildrop {
            uid_validity: inbox.uid_validity,
            messages,
        };
        Ok(Some((open, drop)))
    }

    /// RFC 1939 §6 UPDATE: every marked message in one `expunge` transaction.
    async fn update(&self, uids: &[u32]) -> bool {
        let Some(open) = &self.open else {
            return true;
        };
        if uids.is_empty() {
            return true;
        }
        match self
            .server
            .store
            .expunge(open.mailbox, Some(uids), false)
            .await
        {
            Ok(done) => {
                info!(removed = done.uids.len(), "maildrop updated");
                true
            }
            Err(err) => {
                warn!(error = %err, "expunge at QUIT failed");
                false
            }
        }
    }

    /// RETR/TOP: status line, then the dot-stuffed wire form streamed from a blocking reader.
    async fn send_message<S>(
        &mut self,
        io: &mut S,
        status: String,
        uid: u32,
        body_lines: Option<u64>,
    ) -> io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        let record = self
            .open
            .as_ref()
            .and_then(|open| open.records.get(&uid))
            .cloned();
        let reader = match record {
            Some(record) => self.server.store.wire_reader(&record, None).await,
            None => Err(postkeep_store::StoreError::NotFound(format!("uid {uid}"))),
        };
        let reader = match reader {
            Ok(reader) => reader,
            Err(err) => {
                // Possibly expunged by IMAP since login: RFC 1939 lets RETR fail with -ERR.
                warn!(uid, error = %err, "cannot open message");
                return self
                    .write(io, b"-ERR [SYS/TEMP] Message unavailable\r\n")
                    .await;
            }
        };
        self.write(io, status.as_bytes()).await?;
        let (tx, mut rx) = mpsc::channel::<io::Result<Vec<u8>>>(STREAM_DEPTH);
        let producer = tokio::task::spawn_blocking(move || stream_stuffed(reader, body_lines, &tx));
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Ok(bytes) => self.write(io, &bytes).await?,
                Err(err) => {
                    // The +OK is out: the only honest end is to drop the connection.
                    warn!(uid, error = %err, "message read failed mid-stream");
                    return Err(err);
                }
            }
        }
        let _ = producer.await;
        Ok(())
    }

    async fn next_input<S>(&mut self, io: &mut S) -> io::Result<Input>
    where
        S: AsyncRead + Unpin,
    {
        // A fresh *total* deadline per line: trickling bytes does not extend it.
        let deadline = Instant::now() + self.server.settings.command_timeout;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if let Some(line) = self.framer.next_line(self.session.max_line()) {
                return Ok(Input::Line(line));
            }
            // Shutdown only between commands, and never with pipelined commands pending.
            if *self.shutdown.borrow() && self.framer.is_empty() {
                return Ok(Input::Shutdown);
            }
            tokio::select! {
                read = timeout_at(deadline, io.read(&mut buf)) => match read {
                    Err(_) => return Ok(Input::Timeout),
                    Ok(Ok(0)) => return Ok(Input::Eof),
                    Ok(Ok(n)) => self.framer.push(buf.get(..n).unwrap_or_default()),
                    // Clients commonly close without a TLS close_notify: an ordinary EOF.
                    Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        return Ok(Input::Eof)
                    }
                    Ok(Err(err)) => return Err(err),
                },
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(Input::Shutdown);
                    }
                }
            }
        }
    }

    /// Writes and flushes; a client that does not read is cut off by the command timeout.
    async fn write<S>(&mut self, io: &mut S, bytes: &[u8]) -> io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match timeout(self.server.settings.command_timeout, write).await {
            Ok(result) => result,
            Err(_) => {
                debug!("write timed out");
                Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
            }
        }
    }
}

/// Reads the wire form chunk by chunk (on a blocking thread), cuts it for TOP, dot-stuffs it
/// (RFC 1939 §3) and sends it on, ending with the terminating ".CRLF".
fn stream_stuffed(
    mut reader: Box<dyn Read + Send>,
    body_lines: Option<u64>,
    tx: &mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let mut top = body_lines.map(TopCutter::new);
    let mut stuffer = DotStuffer::new(Vec::with_capacity(READ_CHUNK + 64));
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        };
        let chunk = buf.get(..n).unwrap_or_default();
        let keep = top.as_mut().map_or(n, |t| t.take(chunk));
        // Writing into a Vec cannot fail.
        let _ = stuffer.write_all(chunk.get(..keep).unwrap_or_default());
        let out = std::mem::take(stuffer.get_mut());
        if !out.is_empty() && tx.blocking_send(Ok(out)).is_err() {
            return; // the connection is gone
        }
        if top.as_ref().is_some_and(TopCutter::is_done) {
            break;
        }
    }
    let ending: &[u8] = if stuffer.at_line_start() {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    };
    let _ = tx.blocking_send(Ok(ending.to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(message: &'static [u8], body_lines: Option<u64>) -> Vec<u8> {
        let (tx, mut rx) = mpsc::channel(STREAM_DEPTH);
        let reader: Box<dyn Read + Send> = Box::new(message);
        let producer = std::thread::spawn(move || stream_stuffed(reader, body_lines, &tx));
        let mut out = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            out.extend(chunk.unwrap());
        }
        producer.join().unwrap();
        out
    }

    #[test]
    fn retr_stream_is_dot_stuffed_and_terminated() {
        let msg = b"S: x\r\n\r\n.dot\r\nplain\r\n";
        assert_eq!(streamed(msg, None), b"S: x\r\n\r\n..dot\r\nplain\r\n.\r\n");
        // No final line break: the terminator gets its own line.
        assert_eq!(
            streamed(b"S: x\r\n\r\nend", None),
            b"S: x\r\n\r\nend\r\n.\r\n"
        );
        assert_eq!(streamed(b"", None), b".\r\n");
    }

    #[test]
    fn top_stream_stops_after_requested_body_lines() {
        let msg = b"S: x\r\n\r\n.one\r\ntwo\r\nthree\r\n";
        assert_eq!(streamed(msg, Some(0)), b"S: x\r\n\r\n.\r\n");
        assert_eq!(streamed(msg, Some(1)), b"S: x\r\n\r\n..one\r\n.\r\n");
    }
}
