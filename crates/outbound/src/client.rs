//! The SMTP client that hands a message to one remote host (RFC 5321), with opportunistic
//! STARTTLS (RFC 3207, RFC 7435): TLS whenever the server offers it, plaintext otherwise.
//!
//! The certificate is not verified: without MTA-STS (RFC 8461) or DANE (RFC 7672) nothing
//! says which name the MX certificate should carry, and refusing an unverifiable certificate
//! would only push the delivery to plaintext. Encryption still defeats passive eavesdropping;
//! handshake signatures are checked. When the handshake itself fails, the host is tried
//! again in plaintext, as RFC 7435 §3 suggests.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::envelope::Reply;
use crate::mx::Host;

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; servers send more).
const MAX_LINE: usize = 4096;
/// Most lines in one reply (a long EHLO list is about 20).
const MAX_LINES: usize = 100;
/// Waiting for the reply to QUIT: nothing depends on it.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The queued message, opened once per transaction (blocking reads).
#[async_trait]
pub trait MessageSource: Send + Sync {
    async fn open(&self) -> io::Result<Box<dyn Read + Send>>;
    /// Octets stored, for `SIZE=` (RFC 1870).
    fn len(&self) -> u64;
}

/// The envelope of one transaction with one host.
pub struct Transaction<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
}

/// What one host did with a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// The host decided about every recipient: one reply each, in order.
    Replied(Vec<Reply>),
    /// The host could not be used (no connection, refused greeting, temporary refusal of
    /// the sender, lost connection): the next host may be tried.
    Unusable(Reply),
}

/// Timeouts and identity of the client.
pub struct Client {
    pub helo: String,
    pub port: u16,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    tls: TlsConnector,
}

impl Client {
    pub fn new(helo: String, port: u16) -> Result<Self, rustls::Error> {
        Ok(Self {
            helo,
            port,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls: opportunistic_tls()?,
        })
    }

    /// Tries each address of `host` until one takes part in the transaction.
    pub async fn deliver(
        &self,
        host: &Host,
        tx: &Transaction<'_>,
        source: &dyn MessageSource,
    ) -> HostOutcome {
        let mut last = Reply::local(451, "4.4.1", format!("{} has no address", host.name));
        for &ip in &host.addrs {
            let addr = SocketAddr::new(ip, self.port);
            let outcome = match self.session(host, addr, tx, source, true).await {
                Err(Failure::Tls(reason)) => {
                    tracing::info!(host = %host.name, %addr, %reason,
                        "STARTTLS failed; trying again without TLS");
                    match self.session(host, addr, tx, source, false).await {
                        Ok(outcome) => outcome,
                        Err(failure) => HostOutcome::Unusable(failure.reply(host)),
                    }
                }
                Err(failure) => HostOutcome::Unusable(failure.reply(host)),
                Ok(outcome) => outcome,
            };
            match outcome {
                HostOutcome::Unusable(reply) => {
                    tracing::info!(host = %host.name, %addr, reply = %reply, "host unusable");
                    last = reply;
                }
                replied => return replied,
            }
        }
        HostOutcome::Unusable(last)
    }

    async fn session(
        &self,
        host: &Host,
        addr: SocketAddr,
        tx: &Transaction<'_>,
        source: &dyn MessageSource,
        try_tls: bool,
    ) -> Result<HostOutcome, Failure> {
        let tcp = timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Failure::Connect("connection timed out".into()))?
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let mut conn = Conn::new(Box::new(tcp), &host.name, self.command_timeout);
        let greeting = conn.reply().await?;
        if greeting.code != 220 {
            return Ok(HostOutcome::Unusable(greeting));
        }
        let Some(mut caps) = conn.hello(&self.helo).await? else {
            return Ok(HostOutcome::Unusable(conn.last.clone()));
        };
        let mut tls = None;
        if try_tls && caps.starttls {
            conn.command("STARTTLS").await?;
            if conn.last.code == 220 {
                let (upgraded, version) = conn.starttls(&self.tls, host, addr.ip()).await?;
                conn = upgraded;
                tls = Some(version);
                // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
                caps = match conn.hello(&self.helo).await? {
                    Some(caps) => caps,
                    None => return Ok(HostOutcome::Unusable(conn.last.clone())),
                };
            }
        }
        tracing::debug!(host = %host.name, %addr, tls = tls.as_deref().unwrap_or("no"),
            "connected");
        let outcome = self.transaction(&mut conn, &caps, tx, source).await?;
        conn.quit().await;
        if let HostOutcome::Replied(replies) = &outcome {
            let accepted = replies.iter().filter(|r| r.code / 100 == 2).count();
            tracing::info!(host = %host.name, %addr, tls = tls.as_deref().unwrap_or("no"),
                recipients = replies.len(), accepted, "transaction done");
        }
        Ok(outcome)
    }

    async fn transaction(
        &self,
        conn: &mut Conn,
        caps: &Capabilities,
        tx: &Transaction<'_>,
        source: &dyn MessageSource,
    ) -> Result<HostOutcome, Failure> {
        let all = |reply: Reply| HostOutcome::Replied(vec![reply; tx.recipients.len()]);
        let utf8 = !tx.sender.is_ascii() || tx.recipients.iter().any(|r| !r.is_ascii());
        if utf8 && !caps.smtputf8 {
            // RFC 6531 §3.2: a non-ASCII envelope needs SMTPUTF8 all the way.
            return Ok(all(conn.ours(
                553,
                "5.6.7",
                "the recipient's server does not support internationalized addresses",
            )));
        }
        if caps.size > 0 && source.len() > caps.size {
            return Ok(all(conn.ours(
                552,
                "5.3.4",
                &format!(
                    "message too big for the recipient's server (limit {})",
                    caps.size
                ),
            )));
        }
        let mut mail = format!("MAIL FROM:<{}>", tx.sender);
        if caps.size > 0 {
            mail.push_str(&format!(" SIZE={}", source.len()));
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        conn.command(&mail).await?;
        match conn.last.code / 100 {
            2 => {}
            // RFC 5321 §4.5.4.1: a temporary refusal here is the host's; try another.
            4 => return Ok(HostOutcome::Unusable(conn.last.clone())),
            _ => return Ok(all(conn.last.clone())),
        }
        let mut replies = Vec::with_capacity(tx.recipients.len());
        for rcpt in tx.recipients {
            conn.command(&format!("RCPT TO:<{rcpt}>")).await?;
            replies.push(conn.last.clone());
        }
        if !replies.iter().any(|r| r.code / 100 == 2) {
            return Ok(HostOutcome::Replied(replies));
        }
        conn.command("DATA").await?;
        let final_reply = if conn.last.code == 354 {
            let body = source
                .open()
                .await
                .map_err(|e| Failure::Source(e.to_string()))?;
            conn.send_body(body).await?;
            conn.reply_within(self.data_timeout).await?
        } else {
            conn.last.clone()
        };
        for reply in replies.iter_mut().filter(|r| r.code / 100 == 2) {
            *reply = final_reply.clone();
        }
        Ok(HostOutcome::Replied(replies))
    }
}

/// Why a session ended early.
#[derive(Debug)]
enum Failure {
    Connect(String),
    /// The TLS handshake failed: the host may be tried without TLS.
    Tls(String),
    /// The connection broke, timed out or spoke nonsense.
    Protocol(String),
    /// The queued message could not be read.
    Source(String),
}

impl Failure {
    fn reply(self, host: &Host) -> Reply {
        let (status, text) = match self {
            // RFC 3463 X.4.1: no answer from host; X.4.2: bad connection.
            Failure::Connect(e) => ("4.4.1", format!("cannot connect to {}: {e}", host.name)),
            Failure::Tls(e) => ("4.4.2", format!("TLS with {} failed: {e}", host.name)),
            Failure::Protocol(e) => (
                "4.4.2",
                format!("conversation with {} failed: {e}", host.name),
            ),
            Failure::Source(e) => ("4.3.0", format!("cannot read the queued message: {e}")),
        };
        Reply::local(451, status, text)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Protocol(e.to_string())
    }
}

/// What EHLO told us (RFC 5321 §4.1.1.1 and the extensions we use).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Capabilities {
    starttls: bool,
    smtputf8: bool,
    /// RFC 1870 SIZE limit; 0: none given.
    size: u64,
}

impl Capabilities {
    fn parse(lines: &[String]) -> Self {
        let mut caps = Self::default();
        // The first line is the server's name and greeting, not a keyword.
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).unwrap_or(0),
                _ => {}
            }
        }
        caps
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection: buffered reply reading, command writing.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    host: String,
    timeout: Duration,
    /// The latest reply.
    last: Reply,
    /// The text lines of the latest reply (EHLO keywords).
    lines: Vec<String>,
}

impl Conn {
    fn new(io: Box<dyn Io>, host: &str, timeout: Duration) -> Self {
        Self {
            io,
            buf: Vec::new(),
            host: host.to_string(),
            timeout,
            last: Reply::local(0, "4.0.0", ""),
            lines: Vec::new(),
        }
    }

    /// A verdict of ours about this host's recipients, naming the host.
    fn ours(&self, code: u16, status: &str, text: &str) -> Reply {
        Reply {
            remote: Some(self.host.clone()),
            ..Reply::local(code, status, text)
        }
    }

    async fn command(&mut self, line: &str) -> Result<(), Failure> {
        if line.contains(['\r', '\n']) {
            // Addresses come from our own users; still, never let one end a command early.
            return Err(Failure::Protocol("line break inside a command".into()));
        }
        let wire = format!("{line}\r\n");
        timeout(self.timeout, async {
            self.io.write_all(wire.as_bytes()).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| Failure::Protocol("timed out sending a command".into()))??;
        self.reply().await.map(|_| ())
    }

    async fn reply(&mut self) -> Result<Reply, Failure> {
        self.reply_within(self.timeout).await
    }

    async fn reply_within(&mut self, limit: Duration) -> Result<Reply, Failure> {
        let (code, lines) = timeout(limit, self.read_reply())
            .await
            .map_err(|_| Failure::Protocol("timed out waiting for a reply".into()))??;
        self.last = reply_from(code, &lines, &self.host);
        self.lines = lines;
        Ok(self.last.clone())
    }

    /// RFC 5321 §4.2: `code-text` lines then one `code text` line, all with one code.
    async fn read_reply(&mut self) -> Result<(u16, Vec<String>), Failure> {
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let line = self.read_line().await?;
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let bad = || Failure::Protocol(format!("malformed reply line {line:?}"));
            let digits = line
                .get(..3)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            let this: u16 = digits.and_then(|d| d.parse().ok()).ok_or_else(bad)?;
            if !(200..600).contains(&this) || code.is_some_and(|c| c != this) {
                return Err(bad());
            }
            code = Some(this);
            let last = line.get(3..4).is_none_or(|sep| sep != "-");
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if last {
                return Ok((this, lines));
            }
            if lines.len() >= MAX_LINES {
                return Err(Failure::Protocol("reply has too many lines".into()));
            }
        }
    }

    async fn read_line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=end).collect());
            }
            if self.buf.len() > MAX_LINE {
                return Err(Failure::Protocol("reply line too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Err(Failure::Protocol("connection closed by the server".into()));
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// EHLO, falling back to HELO (RFC 5321 §3.2). `None` when both were refused.
    async fn hello(&mut self, name: &str) -> Result<Option<Capabilities>, Failure> {
        self.command(&format!("EHLO {name}")).await?;
        if self.last.code == 250 {
            return Ok(Some(Capabilities::parse(&self.lines)));
        }
        self.command(&format!("HELO {name}")).await?;
        Ok((self.last.code == 250).then(Capabilities::default))
    }

    /// The TLS handshake after `220` to STARTTLS; returns the new connection and the
    /// protocol version.
    async fn starttls(
        self,
        connector: &TlsConnector,
        host: &Host,
        ip: IpAddr,
    ) -> Result<(Conn, String), Failure> {
        if !self.buf.is_empty() {
            // Bytes sent before the handshake would be read as if protected (CVE-2011-0411).
            return Err(Failure::Protocol("data after the STARTTLS reply".into()));
        }
        let name = ServerName::try_from(host.name.clone()).unwrap_or(ServerName::from(ip));
        let stream = timeout(self.timeout, connector.connect(name, self.io))
            .await
            .map_err(|_| Failure::Tls("handshake timed out".into()))?
            .map_err(|e| Failure::Tls(e.to_string()))?;
        let version = stream
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "TLS".into());
        Ok((
            Conn::new(Box::new(stream), &self.host, self.timeout),
            version,
        ))
    }

    /// Streams the message with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2), then the
    /// final `.`; the message is read on a blocking thread, never held whole.
    async fn send_body(&mut self, source: Box<dyn Read + Send>) -> Result<(), Failure> {
        let (chunks, mut incoming) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let mut source = source;
            loop {
                let mut chunk = vec![0u8; 64 * 1024];
                let result = match source.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) => Err(e),
                };
                let failed = result.is_err();
                if chunks.blocking_send(result).is_err() || failed {
                    return;
                }
            }
        });
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(70 * 1024);
        while let Some(chunk) = incoming.recv().await {
            let chunk = chunk.map_err(|e| Failure::Source(e.to_string()))?;
            out.clear();
            stuffer.feed(&chunk, &mut out);
            self.write(&out).await?;
        }
        // The reader ended (its sender dropped); a panic there is a failed read.
        reader.await.map_err(|e| Failure::Source(e.to_string()))?;
        out.clear();
        stuffer.finish(&mut out);
        self.write(&out).await?;
        timeout(self.timeout, self.io.flush())
            .await
            .map_err(|_| Failure::Protocol("timed out sending the message".into()))??;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        // RFC 5321 §4.5.3.2.5: 3 minutes per data block; the command timeout is longer.
        timeout(self.timeout, self.io.write_all(bytes))
            .await
            .map_err(|_| Failure::Protocol("timed out sending the message".into()))?
            .map_err(Failure::from)
    }

    async fn quit(mut self) {
        let _ = timeout(QUIT_TIMEOUT, async {
            self.io.write_all(b"QUIT\r\n").await?;
            self.io.flush().await?;
            let _ = self.read_line().await;
            self.io.shutdown().await
        })
        .await;
    }
}

/// A reply from its code and text lines: RFC 3463 enhanced status taken from the first line
/// when the server gave one (RFC 2034), otherwise made from the code's class.
fn reply_from(code: u16, lines: &[String], host: &str) -> Reply {
    let first = lines.first().map(String::as_str).unwrap_or_default();
    let class = code / 100;
    let (status, _) = first.split_once(' ').unwrap_or((first, ""));
    let given = status.split('.').count() == 3
        && status.starts_with(char::from(b'0' + (class as u8 % 10)))
        && status.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let status = if given {
        status.to_string()
    } else {
        format!("{class}.0.0")
    };
    let strip = |line: &str| -> String {
        if given {
            line.strip_prefix(status.as_str())
                .map(|rest| rest.trim_start().to_string())
                .unwrap_or_else(|| line.to_string())
        } else {
            line.to_string()
        }
    };
    let text = lines
        .iter()
        .map(|line| strip(line))
        .collect::<Vec<_>>()
        .join(" ");
    Reply {
        code,
        status,
        text,
        remote: Some(host.to_string()),
    }
}

/// CRLF line ends and a second dot before every line starting with one (RFC 5321 §4.5.2).
#[derive(Debug)]
struct DotStuffer {
    line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self {
            line_start: true,
            pending_cr: false,
        }
    }
}

impl DotStuffer {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if std::mem::take(&mut self.pending_cr) {
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.line_start = false;
                }
            }
        }
    }

    /// Ends the last line if needed and writes the terminating `.`.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) || !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.line_start = true;
    }
}

/// rustls with aws-lc-rs, accepting any certificate (see the module comment) but checking
/// that the server holds its key.
fn opportunistic_tls() -> Result<TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Opportunistic {
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct Opportunistic {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Opportunistic TLS (RFC 7435): no policy says which certificate to expect.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffer.feed(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_across_chunk_boundaries() {
        assert_eq!(
            stuff(&[b".hidden\r\n", b"a.b\r\n.", b"\r\n"]),
            b"..hidden\r\na.b\r\n..\r\n.\r\n"
        );
        assert_eq!(stuff(&[b"x\r", b"\n.y"]), b"x\r\n..y\r\n.\r\n");
    }

    #[test]
    fn bare_line_ends_become_crlf_and_the_last_line_is_ended() {
        assert_eq!(stuff(&[b"a\nb\rc"]), b"a\r\nb\r\nc\r\n.\r\n");
        assert_eq!(stuff(&[b"end\r"]), b"end\r\n.\r\n");
        assert_eq!(stuff(&[b""]), b".\r\n");
        // A smuggled end of data inside the message stays data.
        assert_eq!(
            stuff(&[b"a\r\n.\r\nMAIL FROM:<x>\r\n"]),
            b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"
        );
    }

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn enhanced_status_is_taken_from_the_reply_or_made_from_its_class() {
        let r = reply_from(
            550,
            &lines(&["5.1.1 <bob@remote.test>: Recipient address rejected"]),
            "mx",
        );
        assert_eq!(r.status, "5.1.1");
        assert_eq!(r.text, "<bob@remote.test>: Recipient address rejected");
        assert_eq!(r.remote.as_deref(), Some("mx"));
        let r = reply_from(451, &lines(&["try later", "really"]), "mx");
        assert_eq!(
            (r.status.as_str(), r.text.as_str()),
            ("4.0.0", "try later really")
        );
        // A status of the wrong class is text, not a status.
        let r = reply_from(250, &lines(&["5.0.0 odd"]), "mx");
        assert_eq!(r.status, "2.0.0");
    }

    #[test]
    fn ehlo_keywords_are_found_case_insensitively() {
        let caps = Capabilities::parse(&lines(&[
            "mx.remote.test greets you",
            "PIPELINING",
            "size 10240000",
            "starttls",
            "SMTPUTF8",
        ]));
        assert_eq!(
            caps,
            Capabilities {
                starttls: true,
                smtputf8: true,
                size: 10_240_000
            }
        );
        // The greeting line never counts as a keyword.
        assert!(!Capabilities::parse(&lines(&["STARTTLS"])).starttls);
    }

    /// A scripted server: sends `script` lines in order as replies to each line received.
    async fn scripted(script: Vec<&'static str>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = String::new();
            let mut script = script.into_iter();
            let greeting = script.next().unwrap();
            socket.write_all(greeting.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 65536];
            let mut in_data = false;
            for reply in script {
                loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return seen;
                    }
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    let done = if in_data {
                        seen.ends_with("\r\n.\r\n")
                    } else {
                        seen.ends_with("\r\n")
                    };
                    if done {
                        break;
                    }
                }
                in_data = reply.starts_with("354");
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    struct Bytes(&'static [u8]);

    #[async_trait]
    impl MessageSource for Bytes {
        async fn open(&self) -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(self.0))
        }
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
    }

    #[tokio::test]
    async fn per_recipient_replies_are_kept_and_rejected_ones_get_no_data_reply() {
        let (addr, server) = scripted(vec![
            "220 mx.remote.test ESMTP\r\n",
            "250-mx.remote.test\r\n250 SIZE 1000\r\n",
            "250 2.1.0 ok\r\n",
            "250 2.1.5 ok\r\n",
            "550 5.1.1 no such user\r\n",
            "452 4.2.2 mailbox full\r\n",
            "354 go ahead\r\n",
            "250 2.0.0 queued as X\r\n",
            "221 bye\r\n",
        ])
        .await;
        let client = Client::new("mx.example.org".into(), addr.port()).unwrap();
        let host = Host {
            name: "mx.remote.test".into(),
            addrs: vec![addr.ip()],
        };
        let recipients = vec![
            "a@remote.test".to_string(),
            "b@remote.test".to_string(),
            "c@remote.test".to_string(),
        ];
        let tx = Transaction {
            sender: "alice@example.org",
            recipients: &recipients,
        };
        let outcome = client
            .deliver(&host, &tx, &Bytes(b"Subject: x\r\n\r\n.dot\r\n"))
            .await;
        let HostOutcome::Replied(replies) = outcome else {
            panic!("{outcome:?}");
        };
        let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
        assert_eq!(codes, [250, 550, 452]);
        assert_eq!(replies[0].text, "queued as X");
        let seen = server.await.unwrap();
        assert!(
            seen.contains("MAIL FROM:<alice@example.org> SIZE=20\r\n"),
            "{seen}"
        );
        assert!(seen.contains("\r\n\r\n..dot\r\n.\r\n"), "{seen}");
    }

    #[tokio::test]
    async fn a_temporary_refusal_of_the_sender_makes_the_host_unusable() {
        let (addr, _server) =
            scripted(vec!["220 mx\r\n", "250 mx\r\n", "421 4.7.0 too busy\r\n"]).await;
        let client = Client::new("h".into(), addr.port()).unwrap();
        let host = Host {
            name: "mx".into(),
            addrs: vec![addr.ip()],
        };
        let rcpts = vec!["a@remote.test".to_string()];
        let tx = Transaction {
            sender: "s@example.org",
            recipients: &rcpts,
        };
        let outcome = client.deliver(&host, &tx, &Bytes(b"x\r\n")).await;
        assert!(
            matches!(&outcome, HostOutcome::Unusable(r) if r.code == 421 && r.status == "4.7.0"),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_temporary_host_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = Client::new("h".into(), port).unwrap();
        let host = Host {
            name: "gone".into(),
            addrs: vec!["127.0.0.1".parse().unwrap()],
        };
        let rcpts = vec!["a@remote.test".to_string()];
        let tx = Transaction {
            sender: "",
            recipients: &rcpts,
        };
        match client.deliver(&host, &tx, &Bytes(b"x\r\n")).await {
            HostOutcome::Unusable(reply) => {
                assert_eq!((reply.code, reply.status.as_str()), (451, "4.4.1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_replies_end_the_session_without_panicking() {
        for garbage in ["hello\r\n", "99 x\r\n", "250-a\r\n251 b\r\n", "\r\n"] {
            let (addr, _server) = scripted(vec![garbage]).await;
            let client = Client::new("h".into(), addr.port()).unwrap();
            let host = Host {
                name: "mx".into(),
                addrs: vec![addr.ip()],
            };
            let rcpts = vec!["a@remote.test".to_string()];
            let tx = Transaction {
                sender: "s@example.org",
                recipients: &rcpts,
            };
            let outcome = client.deliver(&host, &tx, &Bytes(b"x\r\n")).await;
            assert!(
                matches!(&outcome, HostOutcome::Unusable(r) if r.code == 451),
                "{garbage:?}: {outcome:?}"
            );
        }
    }
}
