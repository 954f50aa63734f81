//! Sans-I/O SMTP server session (RFC 5321): bytes in, replies and [`Event`]s out.
//!
//! The driver feeds received bytes with [`Session::feed`] and then calls [`Session::next_event`]
//! until it returns [`Event::NeedInput`], answering the events that need the outside world
//! (recipient checks, the message sink, delivery, TLS). Replies accumulate in an output buffer
//! ([`Session::output`]) that the driver writes out before every blocking read, which gives
//! PIPELINING (RFC 2920) batching for free.
//!
//! Policy choices worth knowing:
//! - Command lines may end in CRLF or a bare LF; a CR inside a command line is a syntax error.
//! - In DATA the only end is `<CRLF>.<CRLF>`; any bare CR or LF makes the message refused with
//!   554 5.6.11 at the real end (anti SMTP smuggling). BDAT is not checked for bare CR/LF: its
//!   octet count leaves no end-of-data ambiguity, and BINARYMIME content may hold any byte.
//! - Errors counted toward `max_errors`: 500/501/502/503/553/555 replies and rejected recipients
//!   (550), which also throttles address harvesting. `max_errors == 0` disables the limit.
//! - A BDAT line whose size cannot be parsed closes the connection: the octets that follow
//!   cannot be told apart from commands.
//! - Submission mode (RFC 6409): AUTH is advertised and accepted only under TLS (538 5.7.11
//!   before it), MAIL needs STARTTLS and AUTH first (530 5.7.0), and the handler approves the
//!   sender for the authenticated user. Failed AUTH attempts count toward `max_errors`. MX mode
//!   answers AUTH with 502, as a server that offers none.

mod auth;
mod data;
mod received;
pub(crate) mod reply;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use smtp_proto::{
    Error as ParseError, MailFrom, RcptTo, Request, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME,
    MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8,
};
use tracing::{debug, info};

use crate::{
    AuthRequest, AuthVerdict, Authenticated, DeliveryOutcome, Envelope, Mode, RcptVerdict,
    SenderVerdict,
};
use auth::{Exchange, Mechanism, ResponseError};
use data::DataDecoder;
use reply::Canned;

/// RFC 5321 §4.5.3.1.4: servers must accept command lines of at least 512 octets.
pub const MIN_COMMAND_LINE: usize = 512;

/// Static settings for sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our name, used in the greeting, EHLO and `Received:`.
    pub hostname: String,
    /// Maximum body size in octets (0 = no limit, advertised as `SIZE 0` per RFC 1870).
    pub max_message_size: u64,
    /// Maximum accepted recipients per transaction.
    pub max_recipients: usize,
    /// Maximum command line length including CRLF (raised to [`MIN_COMMAND_LINE`]).
    pub max_command_line: usize,
    /// Errors before the session is closed with 421 (0 = unlimited).
    pub max_errors: u32,
    /// Whether STARTTLS can be offered.
    pub tls_available: bool,
    /// MX or submission rules.
    pub mode: Mode,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Event<'a> {
    /// Write [`Session::output`], then read more bytes and [`Session::feed`] them (or report
    /// EOF with [`Session::input_closed`]).
    NeedInput,
    /// Ask the handler about this forward-path, answer with [`Session::recipient_checked`].
    CheckRecipient(String),
    /// Submission: check these AUTH credentials, answer with [`Session::auth_checked`].
    Authenticate(AuthRequest),
    /// Submission: ask whether the authenticated user ([`Session::authenticated`]) may use this
    /// reverse-path, answer with [`Session::sender_checked`].
    CheckSender(String),
    /// Open a message sink, then call [`Session::message_begun`] or
    /// [`Session::message_begin_failed`].
    BeginMessage,
    /// Append these bytes to the open sink; on failure call [`Session::sink_failed`].
    Body(&'a [u8]),
    /// Hand the sink and this envelope to the handler; answer with [`Session::delivered`].
    Deliver(Envelope),
    /// Drop the open sink: the message will not be delivered.
    AbortMessage,
    /// Write [`Session::output`], run the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Write [`Session::output`] and close the connection.
    Close,
}

/// Which timeout applies to the next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a command line.
    Command,
    /// Inside a DATA body or BDAT chunk.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    SevenBit,
    EightBit,
    Binary,
}

#[derive(Debug)]
struct Helo {
    name: String,
    extended: bool,
}

#[derive(Debug)]
struct Transaction {
    mail_from: String,
    smtputf8: bool,
    body: BodyType,
    rcpts: Vec<String>,
    /// Present once a sink was requested for this transaction's message.
    message: Option<Message>,
}

#[derive(Debug)]
struct Message {
    id: String,
    size: u64,
    too_big: bool,
    sink_ok: bool,
}

#[derive(Debug, Clone, Copy)]
enum Transfer {
    Data,
    Bdat { size: u64, last: bool },
}

#[derive(Debug)]
enum State {
    Command,
    /// Skipping the rest of an over-long command line.
    DiscardLine,
    AwaitRecipient(String),
    /// MAIL FROM waiting for the handler's sender check.
    AwaitSender(Transaction),
    /// Waiting for the client's next line of an AUTH exchange.
    Sasl(Exchange),
    /// Credentials complete, to be handed to the handler.
    AwaitAuth(AuthRequest),
    /// The handler is checking credentials.
    AuthPending,
    AwaitBegin(Transfer),
    Data(DataDecoder),
    DataEnd {
        bare_line_ending: bool,
    },
    Bdat {
        remaining: u64,
        size: u64,
        last: bool,
    },
    BdatEnd {
        size: u64,
        last: bool,
    },
    /// Consuming a BDAT chunk that will be refused with `reply` (RFC 3030 §2: the octets must
    /// still be read, or they would be taken for commands).
    BdatDiscard {
        remaining: u64,
        reply: Canned,
    },
    AwaitDelivery,
    StartTls,
    Closed,
}

/// Internal, borrow-free form of [`Event`].
enum Signal {
    NeedInput,
    CheckRecipient(String),
    Authenticate(AuthRequest),
    CheckSender(String),
    BeginMessage,
    Body,
    Deliver,
    AbortMessage,
    StartTls,
    Close,
}

enum Step {
    Continue,
    Yield(Signal),
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    peer: SocketAddr,
    tls: bool,
    helo: Option<Helo>,
    authenticated: Option<Authenticated>,
    tx: Option<Transaction>,
    state: State,
    errors: u32,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    body_out: Vec<u8>,
    header_ready: bool,
    abort_pending: bool,
    progress: u64,
}

impl Session {
    /// Starts a session; the greeting is already in [`Session::output`].
    pub fn new(config: Arc<SessionConfig>, peer: SocketAddr) -> Self {
        let mut session = Self {
            config,
            peer,
            tls: false,
            helo: None,
            authenticated: None,
            tx: None,
            state: State::Command,
            errors: 0,
            inbuf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            body_out: Vec::new(),
            header_ready: false,
            abort_pending: false,
            progress: 0,
        };
        let greeting = format!("{} ESMTP postkeep", session.config.hostname);
        reply::write(&mut session.out, 220, "", &greeting);
        session
    }

    /// Starts a session on a connection that is TLS from its first byte (RFC 8314 implicit
    /// TLS); the greeting is in [`Session::output`], to be sent after the handshake.
    pub fn new_over_tls(config: Arc<SessionConfig>, peer: SocketAddr) -> Self {
        let mut session = Self::new(config, peer);
        session.tls = true;
        session
    }

    /// Replies waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Marks [`Session::output`] as written.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::StartTls | State::Closed) {
            // RFC 3207 §5: plaintext sent after STARTTLS must never reach the TLS session.
            return;
        }
        if self.pos > 0 {
            self.inbuf.drain(..self.pos.min(self.inbuf.len()));
            self.pos = 0;
        }
        self.inbuf.extend_from_slice(bytes);
    }

    /// The client closed its side: abandon any message in progress.
    pub fn input_closed(&mut self) {
        if matches!(self.state, State::Data(_) | State::Bdat { .. }) {
            info!("connection lost during message transfer");
        }
        self.reset_transaction();
        self.state = State::Closed;
    }

    /// Which read timeout applies now.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Data(_) | State::Bdat { .. } | State::BdatDiscard { .. } => Phase::Data,
            _ => Phase::Command,
        }
    }

    /// Counter that moves whenever a command line or data block completes; the driver restarts
    /// its per-line/per-block deadline when it changes.
    pub fn progress(&self) -> u64 {
        self.progress
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user this submission session authenticated as, if any.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// Next thing for the driver to do.
    pub fn next_event(&mut self) -> Event<'_> {
        match self.next_signal() {
            Signal::NeedInput => Event::NeedInput,
            Signal::CheckRecipient(rcpt) => Event::CheckRecipient(rcpt),
            Signal::Authenticate(request) => Event::Authenticate(request),
            Signal::CheckSender(from) => Event::CheckSender(from),
            Signal::BeginMessage => Event::BeginMessage,
            Signal::Body => Event::Body(&self.body_out),
            Signal::Deliver => match self.envelope() {
                Some(envelope) => Event::Deliver(envelope),
                None => Event::Close,
            },
            Signal::AbortMessage => Event::AbortMessage,
            Signal::StartTls => Event::StartTls,
            Signal::Close => Event::Close,
        }
    }

    /// Answer to [`Event::CheckRecipient`].
    pub fn recipient_checked(&mut self, verdict: RcptVerdict) {
        let State::AwaitRecipient(rcpt) = std::mem::replace(&mut self.state, State::Command) else {
            return;
        };
        debug!(rcpt = %rcpt, verdict = ?verdict, "RCPT TO");
        match verdict {
            RcptVerdict::Accept => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(rcpt);
                }
                self.reply(250, "2.1.5", "Ok");
            }
            RcptVerdict::UnknownUser => {
                let text = format!("<{rcpt}>: Recipient address rejected: User unknown");
                self.error(550, "5.1.1", &text);
            }
            RcptVerdict::RelayDenied => {
                let text = format!("<{rcpt}>: Relay access denied");
                self.error(550, "5.7.1", &text);
            }
            RcptVerdict::TempFail => {
                let text = format!("<{rcpt}>: Temporary failure, try again later");
                self.reply(451, "4.3.0", &text);
            }
        }
    }

    /// Answer to [`Event::CheckSender`].
    pub fn sender_checked(&mut self, verdict: SenderVerdict) {
        let State::AwaitSender(tx) = std::mem::replace(&mut self.state, State::Command) else {
            return;
        };
        debug!(from = %tx.mail_from, verdict = ?verdict, "MAIL FROM (submission)");
        match verdict {
            SenderVerdict::Accept => {
                self.tx = Some(tx);
                self.reply(250, "2.1.0", "Ok");
            }
            SenderVerdict::Refuse(code, esc, text) => {
                let (code, esc) = if (400..=599).contains(&code) {
                    (code, esc)
                } else {
                    (550, "5.7.1")
                };
                self.error(code, esc, &text);
            }
        }
    }

    /// Answer to [`Event::Authenticate`] (RFC 4954 §6 replies).
    pub fn auth_checked(&mut self, verdict: AuthVerdict) {
        if !matches!(self.state, State::AuthPending) {
            return;
        }
        self.state = State::Command;
        match verdict {
            AuthVerdict::Success(user) => {
                info!(user = %user.address, "authenticated");
                self.authenticated = Some(user);
                self.reply(235, "2.7.0", "Authentication successful");
            }
            AuthVerdict::Invalid => {
                info!("authentication failed");
                self.error(535, "5.7.8", "Authentication credentials invalid");
            }
            AuthVerdict::Malformed => {
                self.error(501, "5.5.2", "Malformed authentication response");
            }
            AuthVerdict::Throttled => {
                info!("authentication throttled");
                self.error(
                    454,
                    "4.7.0",
                    "Too many failed authentication attempts, try again later",
                );
            }
            AuthVerdict::Unavailable => {
                self.reply(454, "4.7.0", "Temporary authentication failure");
            }
        }
    }

    /// The sink for [`Event::BeginMessage`] is open. `id` names the message (queue id, trace
    /// header); `date` is the RFC 5322 date-time for the `Received:` header.
    pub fn message_begun(&mut self, id: &str, date: &str) {
        let State::AwaitBegin(transfer) = self.state else {
            return;
        };
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Command;
            return;
        };
        tx.message = Some(Message {
            id: id.to_string(),
            size: 0,
            too_big: false,
            sink_ok: true,
        });
        let extended = self.helo.as_ref().is_some_and(|h| h.extended);
        let header = received::header(&received::Trace {
            helo: self.helo.as_ref().map_or("", |h| h.name.as_str()),
            peer: self.peer.ip(),
            hostname: &self.config.hostname,
            protocol: received::protocol(
                extended,
                self.tls,
                tx.smtputf8,
                self.authenticated.is_some(),
            ),
            id,
            rcpt: match tx.rcpts.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            },
            date,
            utf8: tx.smtputf8,
        });
        self.body_out.clear();
        self.body_out.extend_from_slice(header.as_bytes());
        self.header_ready = true;
        self.start_transfer(transfer);
    }

    /// The sink for [`Event::BeginMessage`] could not be opened.
    pub fn message_begin_failed(&mut self) {
        let State::AwaitBegin(transfer) = self.state else {
            return;
        };
        match transfer {
            Transfer::Data => {
                self.reset_transaction();
                self.state = State::Command;
                self.reply_canned(reply::STORAGE_TEMPFAIL);
            }
            Transfer::Bdat { .. } => {
                // The chunk's octets still have to be consumed; refuse at its end.
                if let Some(tx) = self.tx.as_mut() {
                    tx.message = Some(Message {
                        id: String::new(),
                        size: 0,
                        too_big: false,
                        sink_ok: false,
                    });
                }
                self.start_transfer(transfer);
            }
        }
    }

    /// Writing to the sink failed: the message will be refused with 451 at its end.
    pub fn sink_failed(&mut self) {
        if let Some(msg) = self.tx.as_mut().and_then(|tx| tx.message.as_mut()) {
            msg.sink_ok = false;
        }
    }

    /// Answer to [`Event::Deliver`].
    pub fn delivered(&mut self, outcome: DeliveryOutcome) {
        if !matches!(self.state, State::AwaitDelivery) {
            return;
        }
        self.state = State::Command;
        // The sink was consumed by the handler: forget the message without asking for an abort.
        let tx = self.tx.take();
        let msg = tx.as_ref().and_then(|tx| tx.message.as_ref());
        let (id, size) = msg.map_or(("", 0), |m| (m.id.as_str(), m.size));
        let rcpts = tx.as_ref().map_or(0, |tx| tx.rcpts.len());
        match outcome {
            DeliveryOutcome::Stored => {
                info!(id, rcpts, size, "message stored");
                let text = format!("Ok: queued as {id}");
                self.reply(250, "2.0.0", &text);
            }
            DeliveryOutcome::Rejected(code, esc, text) => {
                info!(id, rcpts, size, code, "message rejected by handler");
                let (code, esc) = if (400..=599).contains(&code) {
                    (code, esc)
                } else {
                    (554, "5.0.0")
                };
                self.reply(code, esc, &text);
            }
            DeliveryOutcome::TempFail(text) => {
                info!(id, rcpts, size, "message delivery failed temporarily");
                let text = if text.trim().is_empty() {
                    reply::STORAGE_TEMPFAIL.text.to_string()
                } else {
                    text
                };
                self.reply(451, "4.3.0", &text);
            }
        }
    }

    /// The TLS handshake after STARTTLS succeeded: start over (RFC 3207 §4.2).
    pub fn tls_established(&mut self) {
        if !matches!(self.state, State::StartTls) {
            return;
        }
        self.tls = true;
        self.helo = None;
        // RFC 3207 §4.2: forget everything learnt before the handshake.
        self.authenticated = None;
        self.tx = None;
        self.inbuf.clear();
        self.pos = 0;
        self.state = State::Command;
        self.progress += 1;
    }

    /// The server is shutting down: say so and close.
    pub fn shutdown(&mut self) {
        self.close_with(reply::SHUTTING_DOWN);
    }

    /// A read deadline passed: say so and close.
    pub fn timed_out(&mut self) {
        info!(phase = ?self.phase(), "session timed out");
        self.close_with(reply::TIMEOUT);
    }

    fn close_with(&mut self, canned: Canned) {
        self.reset_transaction();
        self.reply_canned(canned);
        self.state = State::Closed;
    }

    fn envelope(&self) -> Option<Envelope> {
        let tx = self.tx.as_ref()?;
        Some(Envelope {
            mail_from: tx.mail_from.clone(),
            rcpt_to: tx.rcpts.clone(),
            peer: self.peer,
            helo: self
                .helo
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_default(),
            tls: self.tls,
            smtputf8: tx.smtputf8,
            authenticated: self.authenticated.clone(),
        })
    }

    fn next_signal(&mut self) -> Signal {
        if self.header_ready {
            self.header_ready = false;
            return Signal::Body;
        }
        loop {
            if self.abort_pending {
                self.abort_pending = false;
                return Signal::AbortMessage;
            }
            let step = match self.state {
                State::Closed => return Signal::Close,
                State::StartTls => return Signal::StartTls,
                State::AwaitRecipient(ref rcpt) => return Signal::CheckRecipient(rcpt.clone()),
                State::AwaitSender(ref tx) => return Signal::CheckSender(tx.mail_from.clone()),
                State::AwaitAuth(_) => {
                    let State::AwaitAuth(request) =
                        std::mem::replace(&mut self.state, State::AuthPending)
                    else {
                        continue;
                    };
                    return Signal::Authenticate(request);
                }
                State::AuthPending => return Signal::NeedInput,
                State::AwaitBegin(_) => return Signal::BeginMessage,
                State::AwaitDelivery => return Signal::Deliver,
                State::Command | State::Sasl(_) => self.step_command(),
                State::DiscardLine => self.step_discard_line(),
                State::Data(_) => self.step_data(),
                State::DataEnd { bare_line_ending } => self.finish_data(bare_line_ending),
                State::Bdat {
                    remaining,
                    size,
                    last,
                } => self.step_bdat(remaining, size, last),
                State::BdatEnd { size, last } => self.finish_bdat(size, last),
                State::BdatDiscard { remaining, reply } => self.step_bdat_discard(remaining, reply),
            };
            if let Step::Yield(signal) = step {
                return signal;
            }
        }
    }

    fn pending_input(&self) -> &[u8] {
        self.inbuf.get(self.pos..).unwrap_or_default()
    }

    fn step_command(&mut self) -> Step {
        let max = self.config.max_command_line.max(MIN_COMMAND_LINE);
        let pending = self.pending_input();
        let Some(lf) = pending.iter().position(|&b| b == b'\n') else {
            if pending.len() >= max {
                // Too long already: drop what we have and skip to the next LF without buffering.
                self.pos = self.inbuf.len();
                self.state = State::DiscardLine;
                return self.error(500, "5.5.2", "Line too long");
            }
            return Step::Yield(Signal::NeedInput);
        };
        let line = pending.get(..=lf).unwrap_or_default().to_vec();
        self.pos += line.len();
        self.progress += 1;
        if line.len() > max {
            // Also ends an AUTH exchange in progress.
            self.state = State::Command;
            return self.error(500, "5.5.2", "Line too long");
        }
        match std::mem::replace(&mut self.state, State::Command) {
            State::Sasl(exchange) => self.sasl_response(exchange, &line),
            state => {
                self.state = state;
                self.handle_line(&line)
            }
        }
    }

    fn step_discard_line(&mut self) -> Step {
        match self.pending_input().iter().position(|&b| b == b'\n') {
            Some(lf) => {
                self.pos += lf + 1;
                self.progress += 1;
                self.state = State::Command;
                Step::Continue
            }
            None => {
                self.pos = self.inbuf.len();
                Step::Yield(Signal::NeedInput)
            }
        }
    }

    fn handle_line(&mut self, line: &[u8]) -> Step {
        if std::str::from_utf8(line).is_err() {
            return self.error(501, "5.5.4", "Syntax error: invalid UTF-8");
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.contains(&b'\r') {
            return self.error(501, "5.5.4", "Syntax error: bare CR in command");
        }
        if self.config.mode == Mode::Submission {
            if let Some(args) = auth_arguments(content) {
                return self.cmd_auth(args);
            }
        }
        match Request::parse(&mut line.iter()) {
            Ok(request) => self.dispatch(request, line),
            Err(err) => self.parse_error(err, line),
        }
    }

    fn parse_error(&mut self, err: ParseError, line: &[u8]) -> Step {
        let is_bdat = line
            .get(..5)
            .is_some_and(|verb| verb.eq_ignore_ascii_case(b"BDAT "));
        match err {
            ParseError::SyntaxError { syntax } if is_bdat => {
                self.reply(501, "5.5.4", &format!("Syntax: {syntax}"));
                self.close_unsynchronised()
            }
            ParseError::UnknownCommand => self.error(500, "5.5.1", "Error: command not recognized"),
            ParseError::InvalidSenderAddress => {
                self.error(501, "5.1.7", "Bad sender address syntax")
            }
            ParseError::InvalidRecipientAddress => {
                self.error(501, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => {
                self.error(501, "5.5.4", &format!("Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                self.error(501, "5.5.4", &format!("Invalid {param} parameter"))
            }
            ParseError::UnsupportedParameter { param } => {
                self.error(555, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            _ => self.error(501, "5.5.4", "Syntax error"),
        }
    }

    fn close_unsynchronised(&mut self) -> Step {
        self.reset_transaction();
        self.state = State::Closed;
        Step::Continue
    }

    fn dispatch(&mut self, request: Request<Cow<'_, str>>, line: &[u8]) -> Step {
        match request {
            Request::Ehlo { host } => self.cmd_helo(&host, true),
            Request::Helo { host } => self.cmd_helo(&host, false),
            Request::Mail { from } => self.cmd_mail(from, line),
            Request::Rcpt { to } => self.cmd_rcpt(to, line),
            Request::Data => self.cmd_data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.cmd_bdat(chunk_size, is_last, line),
            Request::Rset => {
                self.reset_transaction();
                self.reply(250, "2.0.0", "Ok")
            }
            Request::Noop { .. } => self.reply(250, "2.0.0", "Ok"),
            Request::Quit => {
                self.reset_transaction();
                self.reply(221, "2.0.0", "Bye");
                self.state = State::Closed;
                Step::Continue
            }
            Request::Vrfy { .. } => self.reply(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Request::Help { .. } => self.reply(
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
            ),
            Request::StartTls => self.cmd_starttls(),
            Request::Lhlo { .. } => self.error(500, "5.5.1", "Error: command not recognized"),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Auth { .. } => self.error(502, "5.5.1", "Error: command not implemented"),
        }
    }

    fn cmd_helo(&mut self, host: &str, extended: bool) -> Step {
        // RFC 5321 §4.1.4: EHLO/HELO in the middle of a transaction resets it.
        self.reset_transaction();
        self.helo = Some(Helo {
            name: host.to_string(),
            extended,
        });
        let hostname = self.config.hostname.clone();
        if !extended {
            reply::write(&mut self.out, 250, "", &hostname);
            return Step::Continue;
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.config.tls_available && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.config.mode == Mode::Submission && self.tls {
            // RFC 4954 §4; never before TLS, so no password crosses the wire in clear.
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        reply::write_multiline(&mut self.out, 250, &lines);
        Step::Continue
    }

    fn cmd_mail(&mut self, from: MailFrom<Cow<'_, str>>, line: &[u8]) -> Step {
        let Some(helo) = self.helo.as_ref() else {
            return self.error_canned(reply::NEED_HELO);
        };
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "Error: nested MAIL command");
        }
        let submission = self.config.mode == Mode::Submission;
        if submission && !self.tls {
            // RFC 3207 §4
            return self.error(530, "5.7.0", "Must issue a STARTTLS command first");
        }
        if submission && self.authenticated.is_none() {
            // RFC 4954 §6
            return self.error(530, "5.7.0", "Authentication required");
        }
        // RFC 4954 §5: AUTH= is accepted once AUTH is offered; we trust no relayed identity, so
        // its value is not used.
        if let Some(problem) = unsupported_mail_params(&from, helo.extended, submission) {
            return self.error(555, "5.5.4", problem);
        }
        let Some(body) = body_type(from.flags) else {
            return self.error(501, "5.5.4", "Conflicting BODY parameters");
        };
        let declared = u64::try_from(from.size).unwrap_or(u64::MAX);
        if self.size_exceeded(declared) {
            return self.reply_canned(reply::SIZE_EXCEEDED);
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let address = resolve_postmaster(from.address, line);
        if !smtputf8 && !address.is_ascii() {
            // RFC 6531 §3.4: non-ASCII paths only with SMTPUTF8.
            return self.error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        let tx = Transaction {
            mail_from: address,
            smtputf8,
            body,
            rcpts: Vec::new(),
            message: None,
        };
        if submission {
            self.state = State::AwaitSender(tx);
            return Step::Continue;
        }
        debug!(from = %tx.mail_from, "MAIL FROM");
        self.tx = Some(tx);
        self.reply(250, "2.1.0", "Ok")
    }

    /// `AUTH mechanism [initial-response]` in submission mode (RFC 4954 §4).
    fn cmd_auth(&mut self, args: &str) -> Step {
        if self.helo.is_none() {
            return self.error_canned(reply::NEED_HELO);
        }
        if !self.tls {
            // RFC 4954 §6: no mechanism we offer may run without TLS.
            return self.error(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        if self.authenticated.is_some() {
            return self.error(503, "5.5.1", "Error: already authenticated");
        }
        if self.tx.is_some() {
            return self.error(
                503,
                "5.5.1",
                "Error: AUTH not permitted during a transaction",
            );
        }
        let Some(command) = auth::parse_command(args) else {
            return self.error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        };
        let Some(mechanism) = command.mechanism else {
            return self.error(504, "5.5.4", "Unrecognized authentication type");
        };
        match (mechanism, command.initial_response) {
            (Mechanism::Plain, None) => self.challenge(Exchange::PlainMessage, ""),
            (Mechanism::Login, None) => {
                self.challenge(Exchange::LoginUsername, auth::LOGIN_USERNAME)
            }
            (_, Some(initial)) => {
                let exchange = match mechanism {
                    Mechanism::Plain => Exchange::PlainMessage,
                    Mechanism::Login => Exchange::LoginUsername,
                };
                self.sasl_step(exchange, initial)
            }
        }
    }

    /// Sends a `334` challenge and waits for the client's answer.
    fn challenge(&mut self, exchange: Exchange, text: &str) -> Step {
        reply::write(&mut self.out, 334, "", text);
        self.state = State::Sasl(exchange);
        Step::Continue
    }

    /// One client line of an AUTH exchange.
    fn sasl_response(&mut self, exchange: Exchange, line: &[u8]) -> Step {
        let Ok(text) = std::str::from_utf8(line) else {
            return self.sasl_failed(ResponseError::Undecodable);
        };
        self.sasl_step(exchange, text.trim_end_matches(['\r', '\n']))
    }

    fn sasl_step(&mut self, exchange: Exchange, response: &str) -> Step {
        match exchange {
            Exchange::PlainMessage => match auth::decode(response) {
                Ok(message) => self.submit_credentials(AuthRequest::Plain(message)),
                Err(e) => self.sasl_failed(e),
            },
            Exchange::LoginUsername => match auth::decode_text(response) {
                Ok(username) => self.challenge(
                    Exchange::LoginPassword {
                        username: username.to_string(),
                    },
                    auth::LOGIN_PASSWORD,
                ),
                Err(e) => self.sasl_failed(e),
            },
            Exchange::LoginPassword { username } => match auth::decode_text(response) {
                Ok(password) => self.submit_credentials(AuthRequest::Login { username, password }),
                Err(e) => self.sasl_failed(e),
            },
        }
    }

    fn submit_credentials(&mut self, request: AuthRequest) -> Step {
        self.state = State::AwaitAuth(request);
        Step::Continue
    }

    fn sasl_failed(&mut self, error: ResponseError) -> Step {
        self.state = State::Command;
        match error {
            ResponseError::Cancelled => self.error(501, "5.0.0", "Authentication cancelled"),
            ResponseError::Undecodable => self.error(501, "5.5.2", "Cannot decode response"),
        }
    }

    fn cmd_rcpt(&mut self, to: RcptTo<Cow<'_, str>>, line: &[u8]) -> Step {
        let Some(tx) = self.tx.as_ref() else {
            return self.error_canned(reply::NEED_MAIL);
        };
        if tx.message.is_some() {
            return self.error(503, "5.5.1", "Error: RCPT not allowed during BDAT");
        }
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            return self.error(555, "5.5.4", "Unsupported RCPT parameter");
        }
        let address = resolve_postmaster(to.address, line);
        if address.is_empty() {
            return self.error(501, "5.1.3", "Bad recipient address syntax");
        }
        if !tx.smtputf8 && !address.is_ascii() {
            return self.error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        if tx.rcpts.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
            // Already accepted: answer again, but deliver once.
            return self.reply(250, "2.1.5", "Ok");
        }
        if tx.rcpts.len() >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10
            return self.reply(452, "4.5.3", "Too many recipients");
        }
        self.state = State::AwaitRecipient(address);
        Step::Continue
    }

    fn cmd_data(&mut self) -> Step {
        if let Some(refusal) = self.transfer_refusal() {
            return self.error_canned(refusal);
        }
        let Some(tx) = self.tx.as_ref() else {
            return self.error_canned(reply::NEED_MAIL);
        };
        if tx.message.is_some() {
            return self.error(503, "5.5.1", "Error: DATA not allowed after BDAT");
        }
        if tx.body == BodyType::Binary {
            // RFC 3030 §3: BINARYMIME content can only be sent with BDAT.
            return self.error(503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT");
        }
        self.state = State::AwaitBegin(Transfer::Data);
        Step::Continue
    }

    fn cmd_bdat(&mut self, parsed: usize, last: bool, line: &[u8]) -> Step {
        // smtp-proto wraps oversized numbers around; only trust a size we can re-read exactly.
        let size = bdat_size(line).filter(|&s| u64::try_from(parsed).ok() == Some(s));
        let Some(size) = size else {
            self.reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
            return self.close_unsynchronised();
        };
        if let Some(refusal) = self.transfer_refusal() {
            self.state = State::BdatDiscard {
                remaining: size,
                reply: refusal,
            };
            return Step::Continue;
        }
        let started = self.tx.as_ref().is_some_and(|tx| tx.message.is_some());
        let transfer = Transfer::Bdat { size, last };
        if started {
            self.start_transfer(transfer);
        } else {
            self.state = State::AwaitBegin(transfer);
        }
        Step::Continue
    }

    /// Why DATA/BDAT cannot start now, if it cannot.
    fn transfer_refusal(&self) -> Option<Canned> {
        if self.helo.is_none() {
            return Some(reply::NEED_HELO);
        }
        match self.tx.as_ref() {
            None => Some(reply::NEED_MAIL),
            Some(tx) if tx.rcpts.is_empty() => Some(reply::NEED_RCPT),
            Some(_) => None,
        }
    }

    fn start_transfer(&mut self, transfer: Transfer) {
        match transfer {
            Transfer::Data => {
                reply::write(&mut self.out, 354, "", "End data with <CR><LF>.<CR><LF>");
                self.state = State::Data(DataDecoder::new());
            }
            Transfer::Bdat { size, last } => {
                self.state = State::Bdat {
                    remaining: size,
                    size,
                    last,
                };
            }
        }
    }

    fn cmd_starttls(&mut self) -> Step {
        if self.tls {
            return self.error(503, "5.5.1", "Error: TLS already active");
        }
        if !self.config.tls_available {
            return self.error(502, "5.5.1", "Error: command not implemented");
        }
        self.reset_transaction();
        self.helo = None;
        self.reply(220, "2.0.0", "Ready to start TLS");
        let dropped = self.pending_input().len();
        if dropped > 0 {
            info!(
                bytes = dropped,
                "discarding plaintext pipelined after STARTTLS"
            );
        }
        self.inbuf.clear();
        self.pos = 0;
        self.state = State::StartTls;
        Step::Continue
    }

    fn step_data(&mut self) -> Step {
        let State::Data(decoder) = &mut self.state else {
            return Step::Continue;
        };
        let input = self.inbuf.get(self.pos..).unwrap_or_default();
        if input.is_empty() {
            return Step::Yield(Signal::NeedInput);
        }
        self.body_out.clear();
        let decoded = decoder.decode(input, &mut self.body_out);
        let bare = decoder.bare_line_ending();
        self.pos += decoded.consumed;
        let produced = u64::try_from(self.body_out.len()).unwrap_or(u64::MAX);
        if !self.account_body(produced) || bare {
            self.body_out.clear();
        }
        if decoded.finished {
            self.state = State::DataEnd {
                bare_line_ending: bare,
            };
        }
        self.body_step()
    }

    fn step_bdat(&mut self, remaining: u64, size: u64, last: bool) -> Step {
        if remaining == 0 {
            self.state = State::BdatEnd { size, last };
            return Step::Continue;
        }
        let input = self.inbuf.get(self.pos..).unwrap_or_default();
        if input.is_empty() {
            return Step::Yield(Signal::NeedInput);
        }
        let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = input.get(..take).unwrap_or_default();
        self.body_out.clear();
        self.body_out.extend_from_slice(chunk);
        self.pos += take;
        let taken = u64::try_from(take).unwrap_or(u64::MAX);
        if !self.account_body(taken) {
            self.body_out.clear();
        }
        self.state = State::Bdat {
            remaining: remaining.saturating_sub(taken),
            size,
            last,
        };
        self.body_step()
    }

    fn step_bdat_discard(&mut self, remaining: u64, refusal: Canned) -> Step {
        if remaining == 0 {
            self.progress += 1;
            self.state = State::Command;
            return self.error_canned(refusal);
        }
        let available = self.pending_input().len();
        if available == 0 {
            return Step::Yield(Signal::NeedInput);
        }
        let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
        self.pos += take;
        self.state = State::BdatDiscard {
            remaining: remaining.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX)),
            reply: refusal,
        };
        Step::Continue
    }

    /// Emits decoded body bytes if there are any.
    fn body_step(&self) -> Step {
        if self.body_out.is_empty() {
            Step::Continue
        } else {
            Step::Yield(Signal::Body)
        }
    }

    /// Counts `n` body octets; returns whether they should still go to the sink.
    fn account_body(&mut self, n: u64) -> bool {
        let max = self.config.max_message_size;
        let Some(msg) = self.tx.as_mut().and_then(|tx| tx.message.as_mut()) else {
            return false;
        };
        msg.size = msg.size.saturating_add(n);
        if max > 0 && msg.size > max {
            msg.too_big = true;
        }
        msg.sink_ok && !msg.too_big
    }

    fn size_exceeded(&self, size: u64) -> bool {
        self.config.max_message_size > 0 && size > self.config.max_message_size
    }

    /// Whether the finished message may be delivered, or the reply refusing it.
    fn message_refusal(&self, bare_line_ending: bool) -> Option<Canned> {
        let Some(msg) = self.tx.as_ref().and_then(|tx| tx.message.as_ref()) else {
            return Some(reply::STORAGE_TEMPFAIL);
        };
        if !msg.sink_ok {
            Some(reply::STORAGE_TEMPFAIL)
        } else if msg.too_big {
            Some(reply::SIZE_EXCEEDED)
        } else if bare_line_ending {
            Some(reply::BARE_LINE_ENDING)
        } else {
            None
        }
    }

    fn finish_data(&mut self, bare_line_ending: bool) -> Step {
        self.progress += 1;
        match self.message_refusal(bare_line_ending) {
            Some(refusal) => self.refuse_message(refusal),
            None => self.state = State::AwaitDelivery,
        }
        Step::Continue
    }

    fn finish_bdat(&mut self, size: u64, last: bool) -> Step {
        self.progress += 1;
        match self.message_refusal(false) {
            Some(refusal) => self.refuse_message(refusal),
            None if last => self.state = State::AwaitDelivery,
            None => {
                self.state = State::Command;
                self.reply(250, "2.0.0", &format!("{size} octets received"));
            }
        }
        Step::Continue
    }

    fn refuse_message(&mut self, refusal: Canned) {
        info!(
            code = refusal.code,
            reason = refusal.text,
            "message refused"
        );
        self.reset_transaction();
        self.state = State::Command;
        self.reply_canned(refusal);
    }

    /// Drops the transaction; an open sink must then be dropped by the driver.
    fn reset_transaction(&mut self) {
        if let Some(tx) = self.tx.take() {
            if tx.message.is_some() {
                self.abort_pending = true;
            }
        }
    }

    fn reply(&mut self, code: u16, esc: &str, text: &str) -> Step {
        reply::write(&mut self.out, code, esc, text);
        Step::Continue
    }

    fn reply_canned(&mut self, canned: Canned) -> Step {
        self.reply(canned.code, canned.esc, canned.text)
    }

    fn error_canned(&mut self, canned: Canned) -> Step {
        self.error(canned.code, canned.esc, canned.text)
    }

    /// Replies with an error and closes the session once `max_errors` is reached.
    fn error(&mut self, code: u16, esc: &str, text: &str) -> Step {
        self.reply(code, esc, text);
        self.errors = self.errors.saturating_add(1);
        if self.config.max_errors > 0 && self.errors >= self.config.max_errors {
            info!(errors = self.errors, "too many errors, closing");
            self.close_with(reply::TOO_MANY_ERRORS);
        }
        Step::Continue
    }
}

/// ESMTP parameters we did not advertise (DSN, AUTH, DELIVERBY, ...) are refused (RFC 5321
/// §4.1.1.11 via 555), and parameters at all need EHLO.
fn unsupported_mail_params(
    from: &MailFrom<Cow<'_, str>>,
    extended: bool,
    auth_offered: bool,
) -> Option<&'static str> {
    const KNOWN: u64 = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_BODY_BINARYMIME | MAIL_SMTPUTF8;
    let has_unknown = from.flags & !KNOWN != 0
        || from.trans_id.is_some()
        || from.by != 0
        || from.env_id.is_some()
        || from.solicit.is_some()
        || from.mtrk.is_some()
        || (from.auth.is_some() && !auth_offered)
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mt_priority != 0;
    if has_unknown {
        Some("Unsupported MAIL parameter")
    } else if !extended && (from.flags != 0 || from.size != 0) {
        Some("MAIL parameters require EHLO")
    } else {
        None
    }
}

/// RFC 1652 / RFC 3030 BODY parameter; `None` when several were given.
fn body_type(flags: u64) -> Option<BodyType> {
    let seven = flags & MAIL_BODY_7BIT != 0;
    let eight = flags & MAIL_BODY_8BITMIME != 0;
    let binary = flags & MAIL_BODY_BINARYMIME != 0;
    match (seven, eight, binary) {
        (_, false, false) => Some(BodyType::SevenBit),
        (false, true, false) => Some(BodyType::EightBit),
        (false, false, true) => Some(BodyType::Binary),
        _ => None,
    }
}

/// smtp-proto reports `<postmaster>` as the empty path; RFC 5321 §4.5.1 requires accepting it
/// as a recipient, so give it back its name.
fn resolve_postmaster(address: Cow<'_, str>, line: &[u8]) -> String {
    let is_postmaster = address.is_empty()
        && line
            .windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"<postmaster>"));
    if is_postmaster {
        "postmaster".to_string()
    } else {
        address.into_owned()
    }
}

/// The arguments of an `AUTH` command line (without line ending), `None` for other verbs.
fn auth_arguments(content: &[u8]) -> Option<&str> {
    let verb = content.get(..4)?;
    if !verb.eq_ignore_ascii_case(b"AUTH") {
        return None;
    }
    let rest = std::str::from_utf8(content.get(4..)?).ok()?;
    match rest.chars().next() {
        None => Some(""),
        Some(' ') => Some(rest.trim_start_matches(' ')),
        Some(_) => None,
    }
}

/// Re-reads the chunk size of `BDAT <size> [LAST]` without overflow.
fn bdat_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}
