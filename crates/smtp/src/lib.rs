//! SMTP for postkeep: a sans-I/O protocol core and a tokio server on top, in two modes.
//!
//! - [`Mode::Mx`]: inbound mail (RFC 5321) for our own domains; no AUTH, never a relay.
//! - [`Mode::Submission`]: message submission (RFC 6409) on `submission` (587, STARTTLS) and
//!   `submissions` (465, implicit TLS, RFC 8314): AUTH PLAIN/LOGIN (RFC 4954) is offered only
//!   under TLS and required before MAIL.
//!
//! The server knows nothing about storage: it asks a [`MailHandler`] whether a recipient exists
//! (and, in submission mode, about credentials and the sender), streams the message body into a
//! [`MessageSink`] the handler supplies, and only answers "250" once [`MailHandler::deliver`]
//! reports the message durably stored.
#![forbid(unsafe_code)]

pub mod protocol;
mod server;

pub use server::{Security, SmtpServer, SmtpSettings};

use std::io;
use std::net::{IpAddr, SocketAddr};

use zeroize::Zeroizing;

/// What a server is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Mail exchanger: accepts mail for local recipients from anyone, no AUTH.
    #[default]
    Mx,
    /// Message submission (RFC 6409): authenticated users only, recipients anywhere.
    Submission,
}

/// The account a submission session authenticated as (RFC 4954).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The handler's id of the account.
    pub account_id: i64,
    /// The account's address, as the handler knows it.
    pub address: String,
}

/// What the server learnt about one transaction, handed to the handler with the message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Reverse-path without angle brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// Accepted forward-paths in the order given (already approved by `check_recipient`).
    pub rcpt_to: Vec<String>,
    /// Peer address of the connection.
    pub peer: SocketAddr,
    /// Name given in HELO/EHLO.
    pub helo: String,
    /// True when the session ran under TLS (STARTTLS or implicit).
    pub tls: bool,
    /// True when the client asked for SMTPUTF8 (RFC 6531) in MAIL FROM.
    pub smtputf8: bool,
    /// The submission session's user; always `None` in MX mode.
    pub authenticated: Option<Authenticated>,
}

/// The client's credentials from AUTH, base64-decoded. Secrets are wiped on drop and never
/// printed by `Debug`.
pub enum AuthRequest {
    /// A SASL PLAIN message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`, unparsed.
    Plain(Zeroizing<Vec<u8>>),
    /// The LOGIN mechanism (draft-murchison-sasl-login): user name, then password.
    Login {
        username: String,
        password: Zeroizing<String>,
    },
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthRequest::Plain(_) => f.write_str("Plain(<redacted>)"),
            AuthRequest::Login { username, .. } => f
                .debug_struct("Login")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Answer to [`MailHandler::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// 235 2.7.0
    Success(Authenticated),
    /// 535 5.7.8: wrong user name or password (the same answer for unknown users).
    Invalid,
    /// 501 5.5.2: the SASL message could not be parsed.
    Malformed,
    /// 454 4.7.0: too many failures from this client or for this account; try later.
    Throttled,
    /// 454 4.7.0: the credential store is unavailable.
    Unavailable,
}

/// Answer to [`MailHandler::check_sender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderVerdict {
    /// 250 2.1.0
    Accept,
    /// Refusal with an SMTP code (4xx or 5xx), enhanced status code and text.
    Refuse(u16, &'static str, String),
}

/// Answer to RCPT TO from the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    /// 250 2.1.5
    Accept,
    /// 550 5.1.1: no such user here.
    UnknownUser,
    /// 550 5.7.1: not a domain we accept mail for (we are not an open relay).
    RelayDenied,
    /// 451 4.3.0: try later (e.g. storage unavailable).
    TempFail,
}

/// Outcome of handing a finished message to the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every recipient's copy is durably stored: the server may say 250.
    Stored,
    /// Permanent refusal with an SMTP code, enhanced code and text, e.g. (554, "5.6.0", "...").
    Rejected(u16, &'static str, String),
    /// Temporary failure: nothing stored, the client should retry (451 4.3.0).
    TempFail(String),
}

/// Where the body of one message is streamed while it arrives, so a 50 MB message never has to
/// be held in memory. Created by [`MailHandler::begin_message`], consumed by
/// [`MailHandler::deliver`] or dropped (which must discard whatever was written).
#[async_trait::async_trait]
pub trait MessageSink: Send {
    /// Appends message bytes (already dot-unstuffed, CRLF line endings as received).
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// The storage side of the SMTP server.
#[async_trait::async_trait]
pub trait MailHandler: Send + Sync + 'static {
    type Sink: MessageSink;

    /// Decides RCPT TO for one forward-path (without angle brackets). In submission mode this
    /// is only asked after an authenticated MAIL FROM.
    async fn check_recipient(&self, rcpt: &str) -> RcptVerdict;

    /// Checks AUTH credentials; asked in submission mode only, under TLS. Fails closed for
    /// handlers that do not take part in submission.
    async fn authenticate(&self, request: AuthRequest, peer: IpAddr) -> AuthVerdict {
        let _ = (request, peer);
        AuthVerdict::Unavailable
    }

    /// Decides MAIL FROM (without angle brackets, `""` for `<>`) of an authenticated
    /// submission session. Fails closed for handlers that do not take part in submission.
    async fn check_sender(&self, mail_from: &str, user: &Authenticated) -> SenderVerdict {
        let _ = (mail_from, user);
        SenderVerdict::Refuse(550, "5.7.1", "Submission is not available here".to_string())
    }

    /// Opens a sink for the next message body.
    async fn begin_message(&self) -> io::Result<Self::Sink>;

    /// Stores the message for every recipient in `envelope`. Must not return `Stored` before
    /// the data is on disk (fsync'd) and its metadata committed.
    async fn deliver(&self, sink: Self::Sink, envelope: &Envelope) -> DeliveryOutcome;
}
