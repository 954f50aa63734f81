//! Loopback tests: a real `TcpListener`, real sockets, an in-memory handler double.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Security;
use super::{SmtpServer, SmtpSettings};
use crate::{
    AuthRequest, AuthVerdict, Authenticated, DeliveryOutcome, Envelope, MailHandler, MessageSink,
    Mode, RcptVerdict, SenderVerdict,
};

/// Records delivered messages; accepts recipients at example.org.
#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

struct VecSink(Vec<u8>);

#[async_trait::async_trait]
impl MessageSink for VecSink {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[async_trait::async_trait]
impl MailHandler for Recorder {
    type Sink = VecSink;

    async fn check_recipient(&self, rcpt: &str) -> RcptVerdict {
        if rcpt.starts_with("unknown@") {
            RcptVerdict::UnknownUser
        } else if rcpt.ends_with("@example.org") {
            RcptVerdict::Accept
        } else {
            RcptVerdict::RelayDenied
        }
    }

    async fn authenticate(&self, request: AuthRequest, _: std::net::IpAddr) -> AuthVerdict {
        match request {
            AuthRequest::Plain(raw) if raw.as_slice() == b"\0alice@example.org\0secret" => {
                AuthVerdict::Success(Authenticated {
                    account_id: 1,
                    address: "alice@example.org".into(),
                })
            }
            _ => AuthVerdict::Invalid,
        }
    }

    async fn check_sender(&self, mail_from: &str, user: &Authenticated) -> SenderVerdict {
        if mail_from == user.address {
            SenderVerdict::Accept
        } else {
            SenderVerdict::Refuse(550, "5.7.1", "not yours".into())
        }
    }

    async fn begin_message(&self) -> std::io::Result<VecSink> {
        Ok(VecSink(Vec::new()))
    }

    async fn deliver(&self, sink: VecSink, envelope: &Envelope) -> DeliveryOutcome {
        let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        delivered.push((envelope.clone(), sink.0));
        DeliveryOutcome::Stored
    }
}

impl Recorder {
    fn take(&self) -> Vec<(Envelope, Vec<u8>)> {
        std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Running {
    addr: SocketAddr,
    handler: Arc<Recorder>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

fn settings() -> SmtpSettings {
    SmtpSettings {
        hostname: "mx.test".into(),
        max_message_size: 10_000,
        max_recipients: 10,
        max_command_line: 512,
        max_connections: 10,
        max_connections_per_ip: 5,
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(10),
        max_errors: 10,
        mode: Mode::Mx,
    }
}

async fn start(settings: SmtpSettings, tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    start_with(settings, tls, Security::StartTls).await
}

async fn start_with(
    settings: SmtpSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    security: Security,
) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = Arc::new(Recorder::default());
    let server = Arc::new(SmtpServer::new(settings, Arc::clone(&handler), tls));
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(server.serve_with(listener, security, rx));
    Running {
        addr,
        handler,
        shutdown,
        task,
    }
}

/// Reads one complete (possibly multi-line) reply, byte by byte so nothing is over-read.
async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> String {
    let mut reply = Vec::new();
    let mut line_start = 0;
    loop {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), r.read(&mut byte))
            .await
            .expect("reply timed out")
            .expect("read");
        if n == 0 {
            break;
        }
        reply.push(byte[0]);
        if byte[0] == b'\n' {
            let line = &reply[line_start..];
            if line.get(3) == Some(&b' ') {
                break;
            }
            line_start = reply.len();
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) {
    w.write_all(bytes).await.expect("write");
    w.flush().await.expect("flush");
}

#[tokio::test]
async fn loopback_pipelined_transaction_is_stored() {
    let server = start(settings(), None).await;
    let mut c = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(read_reply(&mut c).await, "220 mx.test ESMTP postkeep\r\n");
    send(&mut c, b"EHLO client.test\r\n").await;
    assert!(read_reply(&mut c).await.ends_with("250 CHUNKING\r\n"));
    send(
        &mut c,
        b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<unknown@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
    )
    .await;
    assert_eq!(read_reply(&mut c).await, "250 2.1.0 Ok\r\n");
    assert!(read_reply(&mut c)
        .await
        .starts_with("550 5.1.1 <unknown@example.org>"));
    assert_eq!(read_reply(&mut c).await, "250 2.1.5 Ok\r\n");
    assert!(read_reply(&mut c).await.starts_with("354 "));
    send(&mut c, b"Subject: t\r\n\r\n..dot\r\n.\r\nQUIT\r\n").await;
    let queued = read_reply(&mut c).await;
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(read_reply(&mut c).await, "221 2.0.0 Bye\r\n");
    assert_eq!(read_reply(&mut c).await, "", "server must close after QUIT");

    let delivered = server.handler.take();
    assert_eq!(delivered.len(), 1);
    let (envelope, body) = &delivered[0];
    assert_eq!(envelope.rcpt_to, ["bob@example.org"]);
    assert_eq!(envelope.peer.ip(), server.addr.ip());
    let body = String::from_utf8_lossy(body);
    let id = queued.trim_end().rsplit(' ').next().unwrap_or_default();
    assert!(body.starts_with(
        "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (postkeep) with ESMTP id "
    ));
    assert!(
        body.contains(&format!(" id {id}\r\n\tfor <bob@example.org>; ")),
        "{body}"
    );
    assert!(body.ends_with("\r\nSubject: t\r\n\r\n.dot\r\n"));
}

fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// CVE-2011-0411 class: plaintext pipelined after STARTTLS must not be executed inside TLS.
#[tokio::test]
async fn starttls_ignores_plaintext_injected_before_handshake() {
    let (server_tls, client_tls) = tls_configs();
    let server = start(settings(), Some(server_tls)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    read_reply(&mut tcp).await;
    send(&mut tcp, b"EHLO client.test\r\n").await;
    assert!(read_reply(&mut tcp).await.ends_with("250 STARTTLS\r\n"));
    send(
        &mut tcp,
        b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n",
    )
    .await;
    assert_eq!(
        read_reply(&mut tcp).await,
        "220 2.0.0 Ready to start TLS\r\n"
    );

    let connector = tokio_rustls::TlsConnector::from(client_tls);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    // Had the injected MAIL run, this EHLO would come after its reply.
    send(&mut tls, b"EHLO client.test\r\n").await;
    let ehlo = read_reply(&mut tls).await;
    assert!(ehlo.starts_with("250-mx.test\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"));
    send(&mut tls, b"MAIL FROM:<a@remote.test>\r\n").await;
    assert_eq!(read_reply(&mut tls).await, "250 2.1.0 Ok\r\n");
    send(
        &mut tls,
        b"RCPT TO:<bob@example.org>\r\nBDAT 4 LAST\r\nab\r\n",
    )
    .await;
    assert_eq!(read_reply(&mut tls).await, "250 2.1.5 Ok\r\n");
    assert!(read_reply(&mut tls)
        .await
        .starts_with("250 2.0.0 Ok: queued as "));

    let delivered = server.handler.take();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].0.tls);
    assert_eq!(delivered[0].0.mail_from, "a@remote.test");
    assert!(String::from_utf8_lossy(&delivered[0].1).contains(" with ESMTPS id "));
}

/// RFC 8314 implicit TLS: the greeting comes inside TLS, AUTH is offered at once and the
/// delivered envelope names the user.
#[tokio::test]
async fn implicit_tls_submission_authenticates_and_delivers() {
    let (server_tls, client_tls) = tls_configs();
    let server = start_with(
        SmtpSettings {
            mode: Mode::Submission,
            ..settings()
        },
        Some(server_tls),
        Security::ImplicitTls,
    )
    .await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(client_tls);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    assert_eq!(read_reply(&mut tls).await, "220 mx.test ESMTP postkeep\r\n");
    send(&mut tls, b"EHLO client.test\r\n").await;
    let ehlo = read_reply(&mut tls).await;
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    send(&mut tls, b"MAIL FROM:<alice@example.org>\r\n").await;
    assert!(read_reply(&mut tls).await.starts_with("530 5.7.0 "));
    send(
        &mut tls,
        b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n",
    )
    .await;
    assert_eq!(
        read_reply(&mut tls).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    send(&mut tls, b"MAIL FROM:<bob@example.org>\r\n").await;
    assert_eq!(read_reply(&mut tls).await, "550 5.7.1 not yours\r\n");
    send(
        &mut tls,
        b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT 4 LAST\r\nab\r\n",
    )
    .await;
    assert_eq!(read_reply(&mut tls).await, "250 2.1.0 Ok\r\n");
    assert_eq!(read_reply(&mut tls).await, "250 2.1.5 Ok\r\n");
    assert!(read_reply(&mut tls)
        .await
        .starts_with("250 2.0.0 Ok: queued as "));

    let delivered = server.handler.take();
    assert_eq!(delivered.len(), 1);
    let user = delivered[0].0.authenticated.as_ref().expect("user");
    assert_eq!(user.address, "alice@example.org");
    assert!(String::from_utf8_lossy(&delivered[0].1).contains(" with ESMTPSA id "));
}

#[tokio::test]
async fn implicit_tls_without_a_tls_configuration_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = Arc::new(SmtpServer::new(
        settings(),
        Arc::new(Recorder::default()),
        None,
    ));
    let (_shutdown, rx) = watch::channel(false);
    let served = server.serve_with(listener, Security::ImplicitTls, rx).await;
    assert!(served.is_err());
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_get_421() {
    let server = start(
        SmtpSettings {
            max_connections_per_ip: 1,
            ..settings()
        },
        None,
    )
    .await;
    let mut first = TcpStream::connect(server.addr).await.expect("connect");
    assert!(read_reply(&mut first).await.starts_with("220 "));
    let mut second = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(
        read_reply(&mut second).await,
        "421 4.7.0 Too many connections\r\n"
    );
    assert_eq!(
        read_reply(&mut second).await,
        "",
        "refused connection must be closed"
    );
    // Once the first leaves, a new connection is admitted again.
    send(&mut first, b"QUIT\r\n").await;
    read_reply(&mut first).await;
    read_reply(&mut first).await;
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    assert!(read_reply(&mut third).await.starts_with("220 "));
}

/// A client trickling bytes must be cut off by the total per-line deadline.
#[tokio::test]
async fn slowloris_command_line_hits_total_deadline() {
    let server = start(
        SmtpSettings {
            command_timeout: Duration::from_millis(600),
            ..settings()
        },
        None,
    )
    .await;
    let mut c = TcpStream::connect(server.addr).await.expect("connect");
    read_reply(&mut c).await;
    let started = tokio::time::Instant::now();
    let (mut reader, mut writer) = c.split();
    let trickle = async {
        for _ in 0..40 {
            if writer.write_all(b"N").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reply = tokio::select! {
        reply = read_reply(&mut reader) => reply,
        () = trickle => String::from("trickle finished without a timeout"),
    };
    assert_eq!(reply, "421 4.4.2 Timeout\r\n");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn shutdown_says_421_and_serve_returns() {
    let server = start(settings(), None).await;
    let mut c = TcpStream::connect(server.addr).await.expect("connect");
    read_reply(&mut c).await;
    send(&mut c, b"EHLO client.test\r\n").await;
    read_reply(&mut c).await;
    server.shutdown.send(true).expect("signal");
    assert_eq!(read_reply(&mut c).await, "421 4.3.2 Shutting down\r\n");
    let served = tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve must return after shutdown");
    assert!(matches!(served, Ok(Ok(()))));
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener must be closed"
    );
}
