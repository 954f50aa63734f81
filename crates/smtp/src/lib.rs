//! Inbound SMTP (RFC 5321) for postkeep: a sans-I/O protocol core and a tokio server on top.
//!
//! The server knows nothing about storage: it asks a [`MailHandler`] whether a recipient exists,
//! streams the message body into a [`MessageSink`] the handler supplies, and only answers
//! "250" once [`MailHandler::deliver`] reports the message durably stored.
#![forbid(unsafe_code)]

pub mod protocol;
mod server;

pub use server::{SmtpServer, SmtpSettings};

use std::io;
use std::net::SocketAddr;

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

    /// Decides RCPT TO for one forward-path (without angle brackets).
    async fn check_recipient(&self, rcpt: &str) -> RcptVerdict;

    /// Opens a sink for the next message body.
    async fn begin_message(&self) -> io::Result<Self::Sink>;

    /// Stores the message for every recipient in `envelope`. Must not return `Stored` before
    /// the data is on disk (fsync'd) and its metadata committed.
    async fn deliver(&self, sink: Self::Sink, envelope: &Envelope) -> DeliveryOutcome;
}
