//! The sans-I/O POP3 core: line framing, the RFC 1939 state machine and the TOP cutter. It
//! never touches a socket or the store; the server performs the [`Action`]s it returns.

mod framer;
#[cfg(test)]
mod tests;
mod top;

pub use framer::{Line, LineFramer};
pub use top::TopCutter;

use zeroize::Zeroizing;

/// RFC 2449 §4: a command line is at most 255 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 255;
/// RFC 5034 §4 lets a SASL response line exceed the command limit; PLAIN needs little more.
pub const MAX_SASL_LINE: usize = 4096;

/// One message of the snapshot taken at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropMessage {
    pub uid: u32,
    /// Octets of the CRLF wire form (RFC 1939 §5 LIST counts what RETR sends, unstuffed).
    pub size: u64,
}

/// The maildrop as seen by one session: fixed at login (message numbers never shift).
#[derive(Debug, Clone)]
pub struct Maildrop {
    pub uid_validity: u32,
    pub messages: Vec<DropMessage>,
}

/// Why a login did not open the maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong credentials or unknown account: never say which.
    Invalid,
    /// Too many failures from this address or for this account.
    Throttled,
    /// Another session holds the maildrop (RFC 2449 §8.1.2).
    InUse,
    /// The store could not be reached.
    Unavailable,
}

/// What the server must do next.
#[derive(Debug)]
pub enum Action {
    /// Send these bytes, then read the next line.
    Reply(String),
    /// Check the credentials, lock and snapshot the maildrop, then call
    /// [`Session::logged_in`] or [`Session::login_failed`].
    Login {
        user: String,
        secret: Zeroizing<String>,
    },
    /// Send `status`, then the wire form of message `uid` (all of it, or the header and
    /// `body_lines` body lines for TOP), dot-stuffed and terminated by ".CRLF".
    Send {
        status: String,
        uid: u32,
        body_lines: Option<u64>,
    },
    /// RFC 1939 §6 UPDATE: remove these UIDs in one transaction (may be empty), then call
    /// [`Session::updated`] and close.
    Update { expunge: Vec<u32> },
    /// Send these bytes and close the connection without touching the maildrop.
    Close(String),
    /// RFC 2595 §4 STLS: send these bytes, discard whatever the client sent after the STLS
    /// line, negotiate TLS and call [`Session::tls_started`]; close if the handshake fails.
    StartTls(String),
}

#[derive(Debug)]
enum State {
    Authorization {
        user: Option<String>,
    },
    /// `AUTH PLAIN` without an initial response: the next line is the response.
    SaslPlain,
    Transaction(Transaction),
    Closed,
}

#[derive(Debug)]
struct Transaction {
    drop: Maildrop,
    deleted: Vec<bool>,
}

/// One POP3 session.
#[derive(Debug)]
pub struct Session {
    state: State,
    /// False on the plain `pop3` listener until STLS succeeds: no login is allowed then.
    tls: bool,
    errors: u32,
    max_errors: u32,
}

impl Session {
    /// A session over TLS (`pop3s`). `max_errors`: bad commands and failed logins before the
    /// session is closed (0 = no cap).
    pub fn new(max_errors: u32) -> Self {
        Self {
            state: State::Authorization { user: None },
            tls: true,
            errors: 0,
            max_errors,
        }
    }

    /// A session on the plain `pop3` listener: until STLS, every way of logging in is refused
    /// (as Dovecot's `disable_plaintext_auth`), so no password ever crosses the wire in clear.
    pub fn plaintext(max_errors: u32) -> Self {
        Self {
            tls: false,
            ..Self::new(max_errors)
        }
    }

    /// TLS is now active after STLS; RFC 2595 §4: the session stays in AUTHORIZATION and
    /// forgets anything learned before (nothing can have been, logins being refused).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.state = State::Authorization { user: None };
    }

    pub fn greeting() -> String {
        "+OK postkeep POP3 ready\r\n".to_string()
    }

    /// Longest line the framer should accept now.
    pub fn max_line(&self) -> usize {
        match self.state {
            State::SaslPlain => MAX_SASL_LINE,
            _ => MAX_COMMAND_LINE,
        }
    }

    pub fn in_transaction(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// A line that exceeded [`Session::max_line`].
    pub fn line_too_long(&mut self) -> Action {
        if matches!(self.state, State::SaslPlain) {
            self.state = State::Authorization { user: None };
        }
        self.error("-ERR Line too long")
    }

    /// The server is stopping: RFC 1939 §6 says no UPDATE happens unless the client QUITs.
    pub fn shutdown(&mut self) -> Action {
        self.state = State::Closed;
        Action::Close("-ERR [SYS/TEMP] Server shutting down\r\n".to_string())
    }

    /// RFC 1939 §3 autologout: the idle timer ran out; the maildrop is left untouched.
    pub fn timed_out(&mut self) -> Action {
        self.state = State::Closed;
        Action::Close("-ERR Autologout; idle for too long\r\n".to_string())
    }

    /// Handles one line without its CRLF.
    pub fn line(&mut self, line: &[u8]) -> Action {
        if matches!(self.state, State::Closed) {
            return Action::Close(String::new());
        }
        if matches!(self.state, State::SaslPlain) {
            return self.sasl_response(line);
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return self.error("-ERR Command is not UTF-8");
        };
        let (verb, args) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "CAPA" => self.reply(self.capabilities()),
            "QUIT" => self.quit(),
            "STLS" => self.stls(args),
            _ if matches!(self.state, State::Transaction(_)) => self.transaction(&verb, args),
            // RFC 3206 §4 AUTH: the credentials were refused, here before being looked at.
            "USER" | "PASS" | "AUTH" | "APOP" if !self.tls => {
                self.error("-ERR [AUTH] Plaintext login is disabled: use STLS to start TLS first")
            }
            "USER" => self.user(args),
            "PASS" => self.pass(args),
            "AUTH" => self.auth(args),
            _ => self.error("-ERR Unknown command or not allowed in this state"),
        }
    }

    /// The login succeeded and the maildrop is locked and snapshotted.
    pub fn logged_in(&mut self, drop: Maildrop) -> Action {
        let count = drop.messages.len();
        let octets: u64 = drop.messages.iter().map(|m| m.size).sum();
        self.state = State::Transaction(Transaction {
            deleted: vec![false; count],
            drop,
        });
        self.reply(format!(
            "+OK Logged in, {count} messages ({octets} octets)\r\n"
        ))
    }

    /// RFC 2449 §8.1 / RFC 3206 response codes; the text never reveals whether the account
    /// exists.
    pub fn login_failed(&mut self, failure: LoginFailure) -> Action {
        self.state = State::Authorization { user: None };
        let text = match failure {
            LoginFailure::Invalid => "-ERR [AUTH] Authentication failed",
            LoginFailure::Throttled => "-ERR [SYS/TEMP] Too many failed logins, try again later",
            LoginFailure::InUse => "-ERR [IN-USE] Maildrop is locked by another session",
            LoginFailure::Unavailable => "-ERR [SYS/TEMP] Maildrop temporarily unavailable",
        };
        self.error(text)
    }

    /// Outcome of the UPDATE state's expunge.
    pub fn updated(&mut self, ok: bool) -> Action {
        self.state = State::Closed;
        Action::Close(if ok {
            "+OK Bye\r\n".to_string()
        } else {
            // RFC 1939 §6: the QUIT reply is negative when messages could not be removed.
            "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n".to_string()
        })
    }

    /// RFC 2449 §5. Before TLS, STLS replaces USER and SASL: logging in is refused then.
    fn capabilities(&self) -> String {
        let mut caps = String::from("+OK Capability list follows\r\n");
        caps.push_str("TOP\r\nUIDL\r\n");
        if !self.tls {
            caps.push_str("STLS\r\n");
        } else if !self.in_transaction() {
            caps.push_str("USER\r\nSASL PLAIN\r\n");
        }
        caps.push_str("RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n");
        caps
    }

    fn reply(&mut self, text: String) -> Action {
        Action::Reply(text)
    }

    /// A negative reply that counts towards the error cap.
    fn error(&mut self, text: &str) -> Action {
        self.errors = self.errors.saturating_add(1);
        if self.max_errors > 0 && self.errors >= self.max_errors {
            self.state = State::Closed;
            return Action::Close(format!("{text}\r\n-ERR Too many errors, closing\r\n"));
        }
        Action::Reply(format!("{text}\r\n"))
    }

    fn quit(&mut self) -> Action {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Transaction(tx) => Action::Update {
                expunge: tx
                    .drop
                    .messages
                    .iter()
                    .zip(&tx.deleted)
                    .filter(|(_, deleted)| **deleted)
                    .map(|(m, _)| m.uid)
                    .collect(),
            },
            _ => Action::Close("+OK Bye\r\n".to_string()),
        }
    }

    // ---------------------------------------------------------------- AUTHORIZATION

    /// RFC 2595 §4: STLS takes no argument and is only valid in AUTHORIZATION, once.
    fn stls(&mut self, args: &str) -> Action {
        if !matches!(self.state, State::Authorization { .. }) {
            return self.error("-ERR STLS is only allowed in the AUTHORIZATION state");
        }
        if self.tls {
            return self.error("-ERR TLS is already active");
        }
        if let Err(text) = no_args(args) {
            return self.error(text);
        }
        Action::StartTls("+OK Begin TLS negotiation\r\n".to_string())
    }

    fn user(&mut self, args: &str) -> Action {
        let name = args.trim();
        if name.is_empty() {
            return self.error("-ERR Missing user name");
        }
        self.state = State::Authorization {
            user: Some(name.to_string()),
        };
        // Always positive: a negative reply would reveal that the account does not exist.
        self.reply("+OK Send your password\r\n".to_string())
    }

    fn pass(&mut self, args: &str) -> Action {
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            _ => None,
        };
        let Some(user) = user else {
            return self.error("-ERR USER first");
        };
        if args.is_empty() {
            return self.error("-ERR [AUTH] Authentication failed");
        }
        // RFC 1939 §7: the password is the rest of the line, spaces included.
        Action::Login {
            user,
            secret: Zeroizing::new(args.to_string()),
        }
    }

    /// RFC 5034: `AUTH mechanism [initial-response]`; only PLAIN (RFC 4616).
    fn auth(&mut self, args: &str) -> Action {
        let mut parts = args.split(' ');
        let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next();
        if parts.next().is_some() {
            return self.error("-ERR Syntax: AUTH mechanism [initial-response]");
        }
        match (mechanism.as_str(), initial) {
            // Widely used (pre-RFC 5034) probe for the mechanism list.
            ("", None) => self.reply("+OK\r\nPLAIN\r\n.\r\n".to_string()),
            ("PLAIN", None) => {
                self.state = State::SaslPlain;
                // RFC 5034 §4: an empty challenge is "+ " with nothing after it.
                self.reply("+ \r\n".to_string())
            }
            ("PLAIN", Some(response)) => self.sasl_plain(response),
            _ => self.error("-ERR Unsupported authentication mechanism"),
        }
    }

    fn sasl_response(&mut self, line: &[u8]) -> Action {
        self.state = State::Authorization { user: None };
        match std::str::from_utf8(line) {
            // RFC 5034 §4: "*" cancels the exchange.
            Ok("*") => self.error("-ERR Authentication cancelled"),
            Ok(response) => self.sasl_plain(response),
            Err(_) => self.error("-ERR [AUTH] Authentication failed"),
        }
    }

    fn sasl_plain(&mut self, response: &str) -> Action {
        self.state = State::Authorization { user: None };
        // RFC 5034 §4: "=" is an empty initial response, which PLAIN cannot accept.
        let Ok(plain) = postkeep_auth::decode_sasl_plain(response) else {
            return self.error("-ERR [AUTH] Authentication failed");
        };
        // Acting as someone else (RFC 4616 authzid) is not supported.
        if let Some(authzid) = &plain.authzid {
            if !authzid.eq_ignore_ascii_case(&plain.authcid) {
                return self.error("-ERR [AUTH] Authentication failed");
            }
        }
        Action::Login {
            user: plain.authcid,
            secret: plain.password,
        }
    }

    // ---------------------------------------------------------------- TRANSACTION

    fn transaction(&mut self, verb: &str, args: &str) -> Action {
        let State::Transaction(tx) = &mut self.state else {
            return self.error("-ERR Not logged in");
        };
        let result = match verb {
            "STAT" => no_args(args).map(|()| Action::Reply(stat(tx))),
            "LIST" => listing(tx, args, |_, m| m.size.to_string()),
            "UIDL" => listing(tx, args, |tx, m| {
                format!("{:08x}{:08x}", tx.drop.uid_validity, m.uid)
            }),
            "RETR" => retrieve(tx, args, false),
            "TOP" => retrieve(tx, args, true),
            "DELE" => delete(tx, args),
            "NOOP" => no_args(args).map(|()| Action::Reply("+OK\r\n".to_string())),
            "RSET" => no_args(args).map(|()| {
                tx.deleted.iter_mut().for_each(|d| *d = false);
                Action::Reply(format!("+OK {}", stat(tx).trim_start_matches("+OK ")))
            }),
            _ => Err("-ERR Unknown command or not allowed in this state"),
        };
        result.unwrap_or_else(|text| self.error(text))
    }
}

type Reply = Result<Action, &'static str>;

fn no_args(args: &str) -> Result<(), &'static str> {
    if args.trim().is_empty() {
        Ok(())
    } else {
        Err("-ERR This command takes no arguments")
    }
}

/// RFC 1939 §5 STAT: deleted messages are not counted.
fn stat(tx: &Transaction) -> String {
    let (count, octets) = live(tx).fold((0u64, 0u64), |(n, o), (_, m)| (n + 1, o + m.size));
    format!("+OK {count} {octets}\r\n")
}

/// `(message number, message)` of every message not marked deleted.
fn live(tx: &Transaction) -> impl Iterator<Item = (usize, &DropMessage)> {
    tx.drop
        .messages
        .iter()
        .zip(&tx.deleted)
        .enumerate()
        .filter(|(_, (_, deleted))| !**deleted)
        .map(|(i, (m, _))| (i + 1, m))
}

/// Parses a message number (RFC 1939 §3: 1-based, decimal) and finds a live message.
fn message<'a>(tx: &'a Transaction, arg: &str) -> Result<(usize, &'a DropMessage), &'static str> {
    let number: usize = parse_number(arg).ok_or("-ERR Invalid message number")?;
    let index = number.checked_sub(1).ok_or("-ERR No such message")?;
    let message = tx.drop.messages.get(index).ok_or("-ERR No such message")?;
    if tx.deleted.get(index).copied().unwrap_or(true) {
        return Err("-ERR Message is deleted");
    }
    Ok((number, message))
}

fn parse_number<T: std::str::FromStr>(arg: &str) -> Option<T> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    arg.parse().ok()
}

/// LIST and UIDL: one message with an argument, a multi-line listing without.
fn listing(
    tx: &Transaction,
    args: &str,
    value: impl Fn(&Transaction, &DropMessage) -> String,
) -> Reply {
    let args = args.trim();
    if !args.is_empty() {
        let (number, m) = message(tx, args)?;
        return Ok(Action::Reply(format!("+OK {number} {}\r\n", value(tx, m))));
    }
    let mut out = String::from("+OK\r\n");
    for (number, m) in live(tx) {
        out.push_str(&format!("{number} {}\r\n", value(tx, m)));
    }
    out.push_str(".\r\n");
    Ok(Action::Reply(out))
}

/// RETR n, TOP n lines (RFC 1939 §7).
fn retrieve(tx: &Transaction, args: &str, top: bool) -> Reply {
    let mut parts = args.split(' ');
    let number = parts.next().unwrap_or("");
    let body_lines = if top {
        let lines = parts.next().unwrap_or("");
        Some(parse_number::<u64>(lines).ok_or("-ERR Syntax: TOP message lines")?)
    } else {
        None
    };
    if parts.next().is_some() {
        return Err("-ERR Too many arguments");
    }
    let (_, m) = message(tx, number)?;
    let status = if top {
        "+OK Top of message follows\r\n".to_string()
    } else {
        format!("+OK {} octets\r\n", m.size)
    };
    Ok(Action::Send {
        status,
        uid: m.uid,
        body_lines,
    })
}

fn delete(tx: &mut Transaction, args: &str) -> Reply {
    let (number, _) = message(tx, args.trim())?;
    if let Some(flag) = tx.deleted.get_mut(number.saturating_sub(1)) {
        *flag = true;
    }
    Ok(Action::Reply(format!("+OK Message {number} deleted\r\n")))
}
