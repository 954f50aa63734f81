//! Scripted byte-stream tests of the sans-I/O session.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

const DATE: &str = "Sat, 21 Nov 2026 10:00:00 +0000";

fn config(tls: bool) -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.org".into(),
        max_message_size: 1000,
        max_recipients: 3,
        max_command_line: 512,
        max_errors: 5,
        tls_available: tls,
        mode: Mode::Mx,
    }
}

/// Plays the driver: answers events like a handler would and records what was delivered.
struct Harness {
    session: Session,
    sink: Option<Vec<u8>>,
    delivered: Vec<(Envelope, Vec<u8>)>,
    aborted: usize,
    closed: bool,
    starttls: bool,
    outcome: DeliveryOutcome,
    begin_fails: bool,
    sink_fails: bool,
    next_id: u32,
}

impl Harness {
    fn new() -> Self {
        Self::with(config(false))
    }

    fn with(config: SessionConfig) -> Self {
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000);
        Self {
            session: Session::new(Arc::new(config), peer),
            sink: None,
            delivered: Vec::new(),
            aborted: 0,
            closed: false,
            starttls: false,
            outcome: DeliveryOutcome::Stored,
            begin_fails: false,
            sink_fails: false,
            next_id: 0,
        }
    }

    /// A session that is TLS from the start (implicit TLS), as the `submissions` port runs.
    fn over_tls(config: SessionConfig) -> Self {
        let mut h = Self::with(config);
        let peer = h.session.peer;
        h.session = Session::new_over_tls(Arc::clone(&h.session.config), peer);
        h
    }

    /// alice@example.org / "secret" is valid; a user named "throttled" is locked out.
    fn auth_verdict(request: &AuthRequest) -> AuthVerdict {
        let (user, password) = match request {
            AuthRequest::Plain(raw) => {
                let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
                let [_, user, password] = parts.as_slice() else {
                    return AuthVerdict::Malformed;
                };
                (
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(password).into_owned(),
                )
            }
            AuthRequest::Login { username, password } => {
                (username.clone(), password.as_str().to_owned())
            }
        };
        if user.starts_with("throttled") {
            AuthVerdict::Throttled
        } else if user == "alice@example.org" && password == "secret" {
            AuthVerdict::Success(Authenticated {
                account_id: 7,
                address: user,
            })
        } else {
            AuthVerdict::Invalid
        }
    }

    fn verdict(rcpt: &str) -> RcptVerdict {
        if rcpt.starts_with("unknown") {
            RcptVerdict::UnknownUser
        } else if rcpt.starts_with("temp") {
            RcptVerdict::TempFail
        } else if rcpt.ends_with("@example.org") || rcpt == "postmaster" {
            RcptVerdict::Accept
        } else {
            RcptVerdict::RelayDenied
        }
    }

    /// Feeds `input` in one piece and returns the replies produced.
    fn send(&mut self, input: &[u8]) -> String {
        self.send_in_pieces(input, input.len().max(1))
    }

    /// Feeds `input` in pieces of `size` bytes, processing events after each piece.
    fn send_in_pieces(&mut self, input: &[u8], size: usize) -> String {
        let mut replies = self.take_output();
        for piece in input.chunks(size.max(1)) {
            self.session.feed(piece);
            self.pump();
            replies.push_str(&self.take_output());
        }
        replies
    }

    fn take_output(&mut self) -> String {
        let out = String::from_utf8_lossy(self.session.output()).into_owned();
        self.session.clear_output();
        out
    }

    fn pump(&mut self) {
        loop {
            match self.session.next_event() {
                Event::NeedInput => return,
                Event::CheckRecipient(rcpt) => {
                    let verdict = Self::verdict(&rcpt);
                    self.session.recipient_checked(verdict);
                }
                Event::Authenticate(request) => {
                    let verdict = Self::auth_verdict(&request);
                    self.session.auth_checked(verdict);
                }
                Event::CheckSender(from) => {
                    let verdict = if from.ends_with("@example.org") {
                        SenderVerdict::Accept
                    } else {
                        SenderVerdict::Refuse(550, "5.7.1", format!("<{from}>: not yours"))
                    };
                    self.session.sender_checked(verdict);
                }
                Event::BeginMessage => {
                    if self.begin_fails {
                        self.session.message_begin_failed();
                    } else {
                        self.next_id += 1;
                        self.sink = Some(Vec::new());
                        let id = format!("ID{}", self.next_id);
                        self.session.message_begun(&id, DATE);
                    }
                }
                Event::Body(bytes) => {
                    if self.sink_fails {
                        self.sink = None;
                        self.session.sink_failed();
                    } else if let Some(sink) = self.sink.as_mut() {
                        sink.extend_from_slice(bytes);
                    }
                }
                Event::Deliver(envelope) => {
                    let body = self.sink.take().expect("deliver without a sink");
                    self.delivered.push((envelope, body));
                    self.session.delivered(self.outcome.clone());
                }
                Event::AbortMessage => {
                    self.aborted += 1;
                    self.sink = None;
                }
                Event::StartTls => {
                    self.starttls = true;
                    return;
                }
                Event::Close => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Body of the only delivered message without its `Received:` header.
    fn only_body(&self) -> Vec<u8> {
        assert_eq!(self.delivered.len(), 1, "expected exactly one delivery");
        let body = &self.delivered[0].1;
        let text = String::from_utf8_lossy(body);
        let end = text
            .find(&format!("; {DATE}\r\n"))
            .expect("Received header")
            + DATE.len()
            + 4;
        body[end..].to_vec()
    }
}

fn ehlo(h: &mut Harness) {
    h.take_output();
    let replies = h.send(b"EHLO client.example\r\n");
    assert!(replies.starts_with("250-mx.example.org\r\n"), "{replies}");
}

fn codes(replies: &str) -> Vec<&str> {
    replies
        .lines()
        .filter(|l| l.len() >= 4 && &l[3..4] == " ")
        .map(|l| &l[..3])
        .collect()
}

const TX: &[u8] = b"MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n";

#[test]
fn greeting_names_host() {
    let mut h = Harness::new();
    assert_eq!(h.take_output(), "220 mx.example.org ESMTP postkeep\r\n");
}

#[test]
fn ehlo_advertises_exactly_the_supported_extensions() {
    let mut h = Harness::new();
    h.take_output();
    assert_eq!(
        h.send(b"EHLO client.example\r\n"),
        "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
         250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
    );
    let mut tls = Harness::with(config(true));
    tls.take_output();
    assert!(tls
        .send(b"EHLO client.example\r\n")
        .ends_with("250-CHUNKING\r\n250 STARTTLS\r\n"));
}

#[test]
fn helo_then_transaction_uses_smtp_protocol_keyword() {
    let mut h = Harness::new();
    h.take_output();
    assert_eq!(h.send(b"HELO client.example\r\n"), "250 mx.example.org\r\n");
    let replies = h.send(TX);
    assert!(replies.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
    h.send(b"hi\r\n.\r\n");
    let body = String::from_utf8_lossy(&h.delivered[0].1).into_owned();
    assert!(body.contains(" with SMTP id ID1"), "{body}");
}

#[test]
fn normal_transaction_delivers_body_with_received_header() {
    let mut h = Harness::new();
    ehlo(&mut h);
    assert_eq!(
        h.send(TX),
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    assert_eq!(
        h.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n"),
        "250 2.0.0 Ok: queued as ID1\r\n"
    );
    let (envelope, body) = &h.delivered[0];
    assert_eq!(envelope.mail_from, "alice@remote.example");
    assert_eq!(envelope.rcpt_to, vec!["bob@example.org".to_string()]);
    assert_eq!(envelope.helo, "client.example");
    assert!(!envelope.tls && !envelope.smtputf8);
    let expected = format!(
        "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org (postkeep) with ESMTP \
         id ID1\r\n\tfor <bob@example.org>; {DATE}\r\nSubject: hi\r\n\r\nbody\r\n"
    );
    assert_eq!(String::from_utf8_lossy(body), expected);
    // The transaction is over: a new one can start.
    assert_eq!(h.send(b"MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n");
}

#[test]
fn pipelined_transaction_answers_every_command_in_order() {
    let script: &[u8] = b"EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\n\
        RCPT TO:<bob@example.org>\r\nRCPT TO:<unknown@example.org>\r\nRCPT TO:<carol@example.org>\r\n\
        DATA\r\nline\r\n.\r\nMAIL FROM:<b@remote.example>\r\nRCPT TO:<bob@example.org>\r\n\
        BDAT 3 LAST\r\nxyzQUIT\r\n";
    for piece in [script.len(), 7, 1] {
        let mut h = Harness::new();
        h.take_output();
        let replies = h.send_in_pieces(script, piece);
        assert_eq!(
            codes(&replies),
            ["250", "250", "250", "550", "250", "354", "250", "250", "250", "250", "221"],
            "piece size {piece}: {replies}"
        );
        assert!(h.closed);
        assert_eq!(h.delivered.len(), 2);
        assert_eq!(
            h.delivered[0].0.rcpt_to,
            ["bob@example.org", "carol@example.org"]
        );
        // Two recipients: no `for` clause in the trace header.
        assert!(!String::from_utf8_lossy(&h.delivered[0].1).contains("for <"));
        assert!(h.delivered[1].1.ends_with(b"xyz"));
    }
}

/// Each smuggling variant is followed by a would-be second transaction; none of it may run.
#[test]
fn smuggled_end_of_data_variants_are_content_and_message_is_refused() {
    let variants: [&[u8]; 5] = [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"];
    for variant in variants {
        let mut h = Harness::new();
        ehlo(&mut h);
        h.send(TX);
        let mut data = b"Subject: ok\r\n\r\nhello".to_vec();
        data.extend_from_slice(variant);
        data.extend_from_slice(
            b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nforged\r\n.\r\n",
        );
        let replies = h.send(&data);
        assert_eq!(
            replies,
            "554 5.6.11 Bare CR or LF in message data is not allowed (RFC 5321 §2.3.8)\r\n",
            "variant {variant:?}"
        );
        assert!(h.delivered.is_empty(), "variant {variant:?} delivered");
        assert_eq!(h.aborted, 1);
        // The session continues normally afterwards.
        assert_eq!(h.send(b"NOOP\r\n"), "250 2.0.0 Ok\r\n");
    }
}

#[test]
fn bare_lf_is_refused_even_when_split_across_reads() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(TX);
    let replies = h.send_in_pieces(b"a\nb\r\n.\r\n", 1);
    assert!(replies.starts_with("554 5.6.11 "), "{replies}");
    assert!(h.delivered.is_empty());
}

#[test]
fn dot_unstuffing_in_data() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(TX);
    h.send(b"..leading\r\n...\r\nmid.dle\r\n.\r\n");
    assert_eq!(h.only_body(), b".leading\r\n..\r\nmid.dle\r\n");
}

#[test]
fn empty_data_body_is_delivered() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(TX);
    assert_eq!(h.send(b".\r\n"), "250 2.0.0 Ok: queued as ID1\r\n");
    assert!(h.only_body().is_empty());
}

#[test]
fn long_command_line_is_refused_without_buffering_and_session_survives() {
    let mut h = Harness::new();
    ehlo(&mut h);
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10 * 1024));
    line.extend_from_slice(b"\r\nNOOP\r\n");
    for piece in [line.len(), 1000] {
        let mut max_buffered = 0;
        let mut replies = String::new();
        for chunk in line.chunks(piece) {
            h.session.feed(chunk);
            h.pump();
            max_buffered = max_buffered.max(h.session.inbuf.len());
            replies.push_str(&h.take_output());
        }
        assert_eq!(replies, "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
        if piece == 1000 {
            assert!(max_buffered <= 1512, "buffered {max_buffered} bytes");
        }
    }
    assert!(!h.closed);
}

#[test]
fn too_many_errors_closes_with_421() {
    let mut h = Harness::new();
    h.take_output();
    let replies = h.send(b"FOO\r\nBAR\r\nRCPT TO:<a@b.example>\r\nMAIL\r\nDATA\r\nNOOP\r\n");
    assert_eq!(
        codes(&replies),
        ["500", "500", "503", "501", "503", "421"],
        "{replies}"
    );
    assert!(replies.ends_with("421 4.7.0 Too many errors\r\n"));
    assert!(h.closed);
}

#[test]
fn bdat_chunks_are_exact_and_binary_safe() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example> BODY=BINARYMIME\r\nRCPT TO:<bob@example.org>\r\n");
    let replies = h.send_in_pieces(b"BDAT 5\r\na\nb\r.BDAT 5 LAST\r\n\r\n.\r\n", 3);
    assert_eq!(
        replies,
        "250 2.0.0 5 octets received\r\n250 2.0.0 Ok: queued as ID1\r\n"
    );
    assert_eq!(h.only_body(), b"a\nb\r.\r\n.\r\n");
}

#[test]
fn bdat_zero_last_delivers_what_was_sent() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.org>\r\n");
    assert_eq!(
        h.send(b"BDAT 4\r\nabcdBDAT 0 LAST\r\n"),
        "250 2.0.0 4 octets received\r\n250 2.0.0 Ok: queued as ID1\r\n"
    );
    assert_eq!(h.only_body(), b"abcd");

    let mut alone = Harness::new();
    ehlo(&mut alone);
    alone.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.org>\r\n");
    assert_eq!(
        alone.send(b"BDAT 0 LAST\r\n"),
        "250 2.0.0 Ok: queued as ID1\r\n"
    );
    assert!(alone.only_body().is_empty());
}

#[test]
fn refused_bdat_chunk_is_consumed_not_executed() {
    let mut h = Harness::new();
    ehlo(&mut h);
    // No MAIL: the chunk is refused, but its octets ("QUIT\r\n") must not run as a command.
    let replies = h.send(b"BDAT 6\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(
        replies,
        "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n"
    );
    assert!(!h.closed);
}

#[test]
fn bdat_with_unparseable_size_closes_the_connection() {
    let mut h = Harness::new();
    ehlo(&mut h);
    let replies = h.send(b"BDAT 99999999999999999999999\r\nQUIT\r\n");
    assert_eq!(replies, "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
    assert!(h.closed);
}

#[test]
fn data_after_bdat_is_a_sequencing_error() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.org>\r\nBDAT 2\r\nab");
    assert_eq!(
        h.send(b"DATA\r\n"),
        "503 5.5.1 Error: DATA not allowed after BDAT\r\n"
    );
    // RSET drops the half-sent message.
    assert_eq!(h.send(b"RSET\r\n"), "250 2.0.0 Ok\r\n");
    assert_eq!(h.aborted, 1);
    assert!(h.delivered.is_empty());
}

#[test]
fn binarymime_requires_bdat() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example> BODY=BINARYMIME\r\nRCPT TO:<bob@example.org>\r\n");
    assert!(h.send(b"DATA\r\n").starts_with("503 5.5.1 "));
}

#[test]
fn data_over_size_limit_is_read_to_the_end_then_refused() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(TX);
    let mut body = Vec::new();
    for _ in 0..30 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    body.extend_from_slice(b".\r\nNOOP\r\n");
    let replies = h.send_in_pieces(&body, 100);
    assert_eq!(
        replies,
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"
    );
    assert!(h.delivered.is_empty());
    assert_eq!(h.aborted, 1);
}

#[test]
fn bdat_size_limit_applies_across_chunks() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.org>\r\n");
    let mut script = b"BDAT 600\r\n".to_vec();
    script.extend(std::iter::repeat_n(b'a', 600));
    script.extend_from_slice(b"BDAT 600 LAST\r\n");
    script.extend(std::iter::repeat_n(b'b', 600));
    let replies = h.send(&script);
    assert_eq!(
        replies,
        "250 2.0.0 600 octets received\r\n\
         552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert!(h.delivered.is_empty());
}

#[test]
fn declared_size_over_limit_is_refused_at_mail() {
    let mut h = Harness::new();
    ehlo(&mut h);
    assert_eq!(
        h.send(b"MAIL FROM:<a@remote.example> SIZE=1001\r\n"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(
        h.send(b"MAIL FROM:<a@remote.example> SIZE=1000\r\n"),
        "250 2.1.0 Ok\r\n"
    );
}

#[test]
fn sequencing_errors_are_503() {
    let mut h = Harness::with(SessionConfig {
        max_errors: 0,
        ..config(false)
    });
    h.take_output();
    assert_eq!(
        h.send(b"MAIL FROM:<a@remote.example>\r\n"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    ehlo(&mut h);
    assert!(h
        .send(b"RCPT TO:<bob@example.org>\r\n")
        .starts_with("503 5.5.1 "));
    assert!(h.send(b"DATA\r\n").starts_with("503 5.5.1 "));
    h.send(b"MAIL FROM:<a@remote.example>\r\n");
    assert!(h
        .send(b"MAIL FROM:<a@remote.example>\r\n")
        .starts_with("503 5.5.1 "));
    assert_eq!(
        h.send(b"DATA\r\n"),
        "503 5.5.1 Error: need RCPT command\r\n"
    );
}

#[test]
fn unknown_command_and_syntax_errors() {
    let mut h = Harness::new();
    h.take_output();
    assert_eq!(
        h.send(b"XYZZY\r\n"),
        "500 5.5.1 Error: command not recognized\r\n"
    );
    assert!(h.send(b"EHLO\r\n").starts_with("501 5.5.4 "));
    assert!(h
        .send(b"EHLO a\r\nMAIL FROM:bob\r\n")
        .ends_with("\r\n501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]\r\n"));
}

#[test]
fn invalid_utf8_and_bare_cr_in_commands_are_501() {
    let mut h = Harness::new();
    h.take_output();
    assert!(h.send(b"EHLO \xff\xfe\r\n").starts_with("501 5.5.4 "));
    assert!(h.send(b"NOOP\rQUIT\r\n").starts_with("501 5.5.4 "));
    assert!(!h.closed);
}

#[test]
fn recipient_verdicts_map_to_replies() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example>\r\n");
    assert_eq!(
        h.send(b"RCPT TO:<unknown@example.org>\r\n"),
        "550 5.1.1 <unknown@example.org>: Recipient address rejected: User unknown\r\n"
    );
    assert!(h
        .send(b"RCPT TO:<someone@elsewhere.example>\r\n")
        .starts_with("550 5.7.1 "));
    assert!(h
        .send(b"RCPT TO:<temp@example.org>\r\n")
        .starts_with("451 4.3.0 "));
    assert_eq!(h.send(b"RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Ok\r\n");
}

#[test]
fn recipients_beyond_the_limit_get_452() {
    let mut h = Harness::new();
    ehlo(&mut h);
    let replies = h.send(
        b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n\
          RCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\nRCPT TO:<a@example.org>\r\n",
    );
    assert!(
        replies.ends_with("452 4.5.3 Too many recipients\r\n250 2.1.5 Ok\r\n"),
        "{replies}"
    );
}

#[test]
fn source_route_is_accepted_and_ignored() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(b"MAIL FROM:<@relay.example:a@remote.example>\r\n");
    h.send(b"RCPT TO:<@one.example,@two.example:bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(h.delivered[0].0.mail_from, "a@remote.example");
    assert_eq!(h.delivered[0].0.rcpt_to, ["bob@example.org"]);
}

#[test]
fn non_ascii_address_needs_smtputf8() {
    let mut h = Harness::new();
    ehlo(&mut h);
    assert!(h
        .send("MAIL FROM:<jörg@remote.example>\r\n".as_bytes())
        .starts_with("553 5.6.7 "));
    assert_eq!(
        h.send("MAIL FROM:<jörg@remote.example> SMTPUTF8\r\n".as_bytes()),
        "250 2.1.0 Ok\r\n"
    );
    h.send("RCPT TO:<bøb@example.org>\r\nDATA\r\nx\r\n.\r\n".as_bytes());
    let (envelope, body) = &h.delivered[0];
    assert!(envelope.smtputf8);
    let body = String::from_utf8_lossy(body);
    assert!(body.contains("with UTF8SMTP id") && body.contains("for <bøb@example.org>"));
}

#[test]
fn unadvertised_parameters_are_refused() {
    let mut h = Harness::new();
    ehlo(&mut h);
    assert!(h
        .send(b"MAIL FROM:<a@remote.example> RET=FULL\r\n")
        .starts_with("555 5.5.4 "));
    h.send(b"MAIL FROM:<a@remote.example>\r\n");
    assert!(h
        .send(b"RCPT TO:<bob@example.org> NOTIFY=NEVER\r\n")
        .starts_with("555 5.5.4 "));
}

#[test]
fn misc_commands() {
    let mut h = Harness::new();
    h.take_output();
    assert!(h.send(b"NOOP\r\n").starts_with("250 2.0.0 "));
    assert!(h.send(b"VRFY bob\r\n").starts_with("252 2.5.0 "));
    assert!(h.send(b"HELP\r\n").starts_with("214 2.0.0 "));
    assert!(h.send(b"EXPN list\r\n").starts_with("502 5.5.1 "));
    assert!(h.send(b"STARTTLS\r\n").starts_with("502 5.5.1 "));
    // MX mode offers no AUTH, not even under TLS: no password is ever taken here.
    assert!(h
        .send(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n")
        .starts_with("502 5.5.1 "));
    assert_eq!(h.send(b"QUIT\r\nNOOP\r\n"), "221 2.0.0 Bye\r\n");
    assert!(h.closed);
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets_state() {
    let mut h = Harness::with(config(true));
    ehlo(&mut h);
    h.send(b"MAIL FROM:<a@remote.example>\r\n");
    let replies =
        h.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\nRCPT TO:<bob@example.org>\r\n");
    assert_eq!(replies, "220 2.0.0 Ready to start TLS\r\n");
    assert!(h.starttls);
    // Bytes arriving before the handshake completes are dropped too.
    h.session.feed(b"NOOP\r\n");
    h.session.tls_established();
    h.pump();
    assert_eq!(
        h.take_output(),
        "",
        "injected commands must not be answered"
    );
    // The session starts over: EHLO is required, STARTTLS no longer offered.
    assert!(h
        .send(b"MAIL FROM:<a@remote.example>\r\n")
        .starts_with("503 5.5.1 Error: send HELO/EHLO"));
    let ehlo_reply = h.send(b"EHLO client.example\r\n");
    assert!(!ehlo_reply.contains("STARTTLS"));
    h.send(TX);
    h.send(b"x\r\n.\r\n");
    let (envelope, body) = &h.delivered[0];
    assert!(envelope.tls);
    assert!(String::from_utf8_lossy(body).contains("with ESMTPS id"));
    assert!(h.send(b"STARTTLS\r\n").starts_with("503 5.5.1 "));
}

#[test]
fn handler_outcomes_become_replies_and_reset_the_transaction() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.outcome = DeliveryOutcome::Rejected(554, "5.6.0", "Malformed message".into());
    h.send(TX);
    assert_eq!(h.send(b"x\r\n.\r\n"), "554 5.6.0 Malformed message\r\n");
    h.outcome = DeliveryOutcome::TempFail("disk full".into());
    h.send(TX);
    assert_eq!(h.send(b"x\r\n.\r\n"), "451 4.3.0 disk full\r\n");
    assert!(h.send(b"RCPT TO:<bob@example.org>\r\n").starts_with("503 "));
}

#[test]
fn storage_failures_give_451() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.begin_fails = true;
    assert!(h
        .send(TX)
        .ends_with("451 4.3.0 Temporary storage failure, try again later\r\n"));

    let mut w = Harness::new();
    ehlo(&mut w);
    w.sink_fails = true;
    w.send(TX);
    assert_eq!(
        w.send(b"x\r\n.\r\n"),
        "451 4.3.0 Temporary storage failure, try again later\r\n"
    );
    assert!(w.delivered.is_empty());
}

#[test]
fn eof_during_data_aborts_the_message() {
    let mut h = Harness::new();
    ehlo(&mut h);
    h.send(TX);
    h.send(b"partial");
    h.session.input_closed();
    h.pump();
    assert_eq!(h.aborted, 1);
    assert!(h.closed && h.delivered.is_empty());
}

#[test]
fn phase_and_progress_track_lines_and_blocks() {
    let mut h = Harness::new();
    ehlo(&mut h);
    let before = h.session.progress();
    h.send(TX);
    assert_eq!(h.session.phase(), Phase::Data);
    assert!(h.session.progress() > before);
    let in_data = h.session.progress();
    h.send(b"abc");
    assert_eq!(
        h.session.progress(),
        in_data,
        "partial data must not renew the deadline"
    );
    h.send(b"\r\n.\r\n");
    assert_eq!(h.session.phase(), Phase::Command);
    assert!(h.session.progress() > in_data);
}

#[test]
fn timeout_and_shutdown_replies() {
    let mut h = Harness::new();
    h.take_output();
    h.session.timed_out();
    h.pump();
    assert_eq!(h.take_output(), "421 4.4.2 Timeout\r\n");
    assert!(h.closed);
    let mut s = Harness::new();
    s.take_output();
    s.session.shutdown();
    s.pump();
    assert_eq!(s.take_output(), "421 4.3.2 Shutting down\r\n");
    assert!(s.closed);
}

// ---- submission mode (RFC 6409, RFC 4954) ----

/// `\0alice@example.org\0secret`
const PLAIN_ALICE: &str = "AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==";

fn submission(tls_available: bool) -> SessionConfig {
    SessionConfig {
        mode: Mode::Submission,
        ..config(tls_available)
    }
}

/// An implicit-TLS submission session after EHLO.
fn submission_over_tls() -> Harness {
    let mut h = Harness::over_tls(submission(true));
    ehlo(&mut h);
    h
}

fn authenticated() -> Harness {
    let mut h = submission_over_tls();
    let reply = h.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes());
    assert_eq!(reply, "235 2.7.0 Authentication successful\r\n");
    h
}

#[test]
fn auth_is_advertised_only_under_tls_and_never_in_mx_mode() {
    let mut plain = Harness::with(submission(true));
    plain.take_output();
    let ehlo = plain.send(b"EHLO client.example\r\n");
    assert!(ehlo.ends_with("250 STARTTLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");

    plain.send(b"STARTTLS\r\n");
    assert!(plain.starttls);
    plain.session.tls_established();
    let ehlo = plain.send(b"EHLO client.example\r\n");
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");

    let mut implicit = Harness::over_tls(submission(true));
    assert!(implicit
        .send(b"EHLO client.example\r\n")
        .ends_with("250 AUTH PLAIN LOGIN\r\n"));

    let mut mx = Harness::over_tls(config(true));
    assert!(!mx.send(b"EHLO client.example\r\n").contains("AUTH"));
}

#[test]
fn auth_and_mail_before_starttls_are_refused() {
    let mut h = Harness::with(submission(true));
    ehlo(&mut h);
    assert_eq!(
        h.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes()),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        h.send(b"AUTH LOGIN\r\n"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        h.send(b"MAIL FROM:<alice@example.org>\r\n"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    assert!(h.session.authenticated().is_none());
}

#[test]
fn mail_before_auth_is_530_and_nothing_can_be_relayed() {
    let mut h = submission_over_tls();
    let replies =
        h.send(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n");
    assert_eq!(codes(&replies), ["530", "503", "503"], "{replies}");
    assert!(replies.starts_with("530 5.7.0 Authentication required\r\n"));
    assert!(h.delivered.is_empty());
}

#[test]
fn auth_plain_with_initial_response_then_a_transaction_carries_the_user() {
    let mut h = authenticated();
    let replies = h.send(
        b"MAIL FROM:<alice@example.org> AUTH=<>\r\nRCPT TO:<x@remote.example>\r\n\
          RCPT TO:<bob@example.org>\r\nDATA\r\n",
    );
    // The handler decides recipients; this one relays nothing.
    assert_eq!(codes(&replies), ["250", "550", "250", "354"], "{replies}");
    h.send(b"Subject: s\r\n\r\nbody\r\n.\r\n");
    let (envelope, body) = &h.delivered[0];
    assert_eq!(
        envelope.authenticated,
        Some(Authenticated {
            account_id: 7,
            address: "alice@example.org".into(),
        })
    );
    let body = String::from_utf8_lossy(body);
    assert!(body.contains(" with ESMTPSA id ID1"), "{body}");
}

#[test]
fn auth_plain_without_initial_response_gets_an_empty_challenge() {
    let mut h = submission_over_tls();
    assert_eq!(h.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(
        h.send(format!("{PLAIN_ALICE}\r\n").as_bytes()),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert!(h.session.authenticated().is_some());
}

#[test]
fn auth_login_asks_for_user_then_password() {
    let mut h = submission_over_tls();
    assert_eq!(h.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        h.send(b"YWxpY2VAZXhhbXBsZS5vcmc=\r\n"),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        h.send(b"c2VjcmV0\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );

    // The user name may come as an initial response.
    let mut h = submission_over_tls();
    assert_eq!(
        h.send(b"AUTH login YWxpY2VAZXhhbXBsZS5vcmc=\r\n"),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        h.send(b"c2VjcmV0\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );
}

#[test]
fn wrong_credentials_are_535_and_count_toward_the_error_limit() {
    let mut h = submission_over_tls();
    // `\0alice@example.org\0wrong`
    let wrong = b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n\r\n";
    for _ in 0..4 {
        assert_eq!(
            h.send(wrong),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
    }
    let last = h.send(wrong);
    assert!(last.ends_with("421 4.7.0 Too many errors\r\n"), "{last}");
    assert!(h.closed);
    assert!(h.session.authenticated().is_none());
}

#[test]
fn throttled_and_malformed_credentials_have_their_own_replies() {
    let mut h = submission_over_tls();
    // LOGIN "throttled" / "x"
    h.send(b"AUTH LOGIN dGhyb3R0bGVk\r\n");
    assert!(h.send(b"eA==\r\n").starts_with("454 4.7.0 "));
    // PLAIN without the NUL separators.
    assert!(h.send(b"AUTH PLAIN YWxpY2U=\r\n").starts_with("501 5.5.2 "));
    assert!(h.session.authenticated().is_none());
}

#[test]
fn auth_exchange_can_be_cancelled_and_rejects_bad_base64() {
    let mut h = submission_over_tls();
    assert_eq!(h.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.send(b"*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(h.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(h.send(b"%%%\r\n"), "501 5.5.2 Cannot decode response\r\n");
    // Back in command state: the next line is a command again.
    assert_eq!(h.send(b"NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

#[test]
fn unknown_mechanism_repeated_auth_and_auth_in_a_transaction_are_refused() {
    let mut h = submission_over_tls();
    assert_eq!(
        h.send(b"AUTH CRAM-MD5\r\n"),
        "504 5.5.4 Unrecognized authentication type\r\n"
    );
    assert!(h.send(b"AUTH\r\n").starts_with("501 5.5.4 "));
    let mut h = authenticated();
    assert!(h
        .send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes())
        .starts_with("503 5.5.1 "));
    h.send(b"MAIL FROM:<alice@example.org>\r\n");
    assert!(h.send(b"AUTH LOGIN\r\n").starts_with("503 5.5.1 "));
}

#[test]
fn sender_refused_by_the_handler_opens_no_transaction() {
    let mut h = authenticated();
    assert_eq!(
        h.send(b"MAIL FROM:<ceo@other.example>\r\n"),
        "550 5.7.1 <ceo@other.example>: not yours\r\n"
    );
    assert!(h
        .send(b"RCPT TO:<bob@example.org>\r\n")
        .starts_with("503 5.5.1 "));
    assert_eq!(
        h.send(b"MAIL FROM:<alice@example.org>\r\n"),
        "250 2.1.0 Ok\r\n"
    );
}

#[test]
fn auth_parameter_of_mail_is_refused_where_auth_is_not_offered() {
    let mut h = Harness::new();
    ehlo(&mut h);
    assert!(h
        .send(b"MAIL FROM:<a@remote.example> AUTH=<>\r\n")
        .starts_with("555 5.5.4 "));
}
