//! Scripted sessions against the sans-I/O core.

use super::*;

fn drop_of(sizes: &[(u32, u64)]) -> Maildrop {
    Maildrop {
        uid_validity: 0x1234_5678,
        messages: sizes
            .iter()
            .map(|&(uid, size)| DropMessage { uid, size })
            .collect(),
    }
}

fn reply(action: Action) -> String {
    match action {
        Action::Reply(text) => text,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// A session logged in over USER/PASS with messages of UIDs 3, 5, 9.
fn logged_in() -> Session {
    let mut s = Session::new(0);
    assert!(reply(s.line(b"USER alice@example.org")).starts_with("+OK"));
    match s.line(b"PASS pass with spaces") {
        Action::Login { user, secret } => {
            assert_eq!(user, "alice@example.org");
            assert_eq!(secret.as_str(), "pass with spaces");
        }
        other => panic!("expected Login, got {other:?}"),
    }
    let ok = reply(s.logged_in(drop_of(&[(3, 100), (5, 20), (9, 7)])));
    assert_eq!(ok, "+OK Logged in, 3 messages (127 octets)\r\n");
    s
}

#[test]
fn stat_list_uidl_use_wire_sizes_and_validity_uid() {
    let mut s = logged_in();
    assert_eq!(reply(s.line(b"STAT")), "+OK 3 127\r\n");
    assert_eq!(
        reply(s.line(b"LIST")),
        "+OK\r\n1 100\r\n2 20\r\n3 7\r\n.\r\n"
    );
    assert_eq!(reply(s.line(b"list 2")), "+OK 2 20\r\n");
    assert_eq!(reply(s.line(b"UIDL 3")), "+OK 3 1234567800000009\r\n");
    assert!(reply(s.line(b"UIDL")).contains("1 1234567800000003\r\n"));
    assert!(reply(s.line(b"LIST 4")).starts_with("-ERR"));
    assert!(reply(s.line(b"LIST 0")).starts_with("-ERR"));
    assert!(reply(s.line(b"LIST x")).starts_with("-ERR"));
}

#[test]
fn dele_hides_message_rset_restores_and_quit_expunges_marked_uids() {
    let mut s = logged_in();
    assert!(reply(s.line(b"DELE 2")).starts_with("+OK"));
    assert!(reply(s.line(b"DELE 2")).starts_with("-ERR"));
    assert!(reply(s.line(b"RETR 2")).starts_with("-ERR"));
    assert_eq!(reply(s.line(b"STAT")), "+OK 2 107\r\n");
    assert!(reply(s.line(b"RSET")).starts_with("+OK"));
    assert_eq!(reply(s.line(b"STAT")), "+OK 3 127\r\n");
    assert!(reply(s.line(b"DELE 1")).starts_with("+OK"));
    assert!(reply(s.line(b"DELE 3")).starts_with("+OK"));
    match s.line(b"QUIT") {
        Action::Update { expunge } => assert_eq!(expunge, vec![3, 9]),
        other => panic!("expected Update, got {other:?}"),
    }
    assert!(matches!(s.updated(true), Action::Close(t) if t.starts_with("+OK")));
}

#[test]
fn quit_in_authorization_does_not_update() {
    let mut s = Session::new(0);
    assert!(matches!(s.line(b"QUIT"), Action::Close(t) if t.starts_with("+OK")));
}

#[test]
fn retr_and_top_ask_for_the_right_message() {
    let mut s = logged_in();
    match s.line(b"RETR 2") {
        Action::Send {
            status,
            uid,
            body_lines,
        } => {
            assert_eq!(status, "+OK 20 octets\r\n");
            assert_eq!((uid, body_lines), (5, None));
        }
        other => panic!("expected Send, got {other:?}"),
    }
    assert!(matches!(
        s.line(b"TOP 3 0"),
        Action::Send {
            uid: 9,
            body_lines: Some(0),
            ..
        }
    ));
    assert!(reply(s.line(b"TOP 3")).starts_with("-ERR"));
    assert!(reply(s.line(b"TOP 3 -1")).starts_with("-ERR"));
}

#[test]
fn transaction_commands_are_refused_before_login() {
    let mut s = Session::new(0);
    for cmd in [
        &b"STAT"[..],
        b"LIST",
        b"RETR 1",
        b"DELE 1",
        b"NOOP",
        b"PASS x",
    ] {
        assert!(reply(s.line(cmd)).starts_with("-ERR"), "{cmd:?}");
    }
}

#[test]
fn login_failures_use_rfc_2449_response_codes() {
    let mut s = Session::new(0);
    let cases = [
        (LoginFailure::Invalid, "-ERR [AUTH] "),
        (LoginFailure::Throttled, "-ERR [SYS/TEMP] "),
        (LoginFailure::InUse, "-ERR [IN-USE] "),
        (LoginFailure::Unavailable, "-ERR [SYS/TEMP] "),
    ];
    for (failure, prefix) in cases {
        assert!(reply(s.login_failed(failure)).starts_with(prefix));
    }
    // Back in AUTHORIZATION: PASS needs a new USER.
    assert!(reply(s.line(b"PASS x")).contains("USER first"));
}

#[test]
fn auth_plain_with_initial_response_and_with_continuation() {
    // "\0alice@example.org\0secret"
    let encoded = b"AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==";
    let mut s = Session::new(0);
    let mut line = b"AUTH PLAIN ".to_vec();
    line.extend_from_slice(encoded);
    assert!(matches!(s.line(&line), Action::Login { user, .. } if user == "alice@example.org"));

    let mut s = Session::new(0);
    assert_eq!(reply(s.line(b"auth plain")), "+ \r\n");
    assert_eq!(s.max_line(), MAX_SASL_LINE);
    match s.line(encoded) {
        Action::Login { user, secret } => {
            assert_eq!(user, "alice@example.org");
            assert_eq!(secret.as_str(), "secret");
        }
        other => panic!("expected Login, got {other:?}"),
    }
}

#[test]
fn auth_plain_cancel_garbage_and_foreign_authzid_fail() {
    let mut s = Session::new(0);
    assert_eq!(reply(s.line(b"AUTH PLAIN")), "+ \r\n");
    assert!(reply(s.line(b"*")).starts_with("-ERR"));
    assert_eq!(s.max_line(), MAX_COMMAND_LINE);
    assert!(reply(s.line(b"AUTH PLAIN !!!")).starts_with("-ERR [AUTH]"));
    assert!(reply(s.line(b"AUTH PLAIN =")).starts_with("-ERR [AUTH]"));
    // "bob\0alice\0secret": acting as another user.
    assert!(reply(s.line(b"AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==")).starts_with("-ERR [AUTH]"));
    assert!(reply(s.line(b"AUTH CRAM-MD5")).starts_with("-ERR"));
}

#[test]
fn capa_lists_rfc_2449_capabilities_and_drops_login_ones_after_login() {
    let mut s = Session::new(0);
    let caps = reply(s.line(b"CAPA"));
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
    ] {
        assert!(
            caps.contains(&format!("\r\n{cap}\r\n")),
            "{cap} missing: {caps}"
        );
    }
    assert!(caps.ends_with("\r\n.\r\n"));
    let mut s = logged_in();
    let caps = reply(s.line(b"CAPA"));
    assert!(!caps.contains("USER") && caps.contains("UIDL"));
}

/// The capability lines of a CAPA reply, without the status line and the terminator.
fn capa(s: &mut Session) -> Vec<String> {
    let text = reply(s.line(b"CAPA"));
    let body = text
        .strip_prefix("+OK Capability list follows\r\n")
        .and_then(|t| t.strip_suffix(".\r\n"))
        .unwrap_or_else(|| panic!("malformed CAPA reply: {text:?}"));
    body.lines().map(str::to_string).collect()
}

#[test]
fn capa_offers_stls_instead_of_logins_before_tls_and_logins_after() {
    let mut s = Session::plaintext(0);
    let before = capa(&mut s);
    assert!(before.contains(&"STLS".to_string()), "{before:?}");
    // As Dovecot with disable_plaintext_auth: no login is offered where none is allowed.
    assert!(
        !before.iter().any(|c| c == "USER" || c.starts_with("SASL")),
        "{before:?}"
    );
    assert!(matches!(s.line(b"STLS"), Action::StartTls(t) if t.starts_with("+OK")));
    s.tls_started();
    let after = capa(&mut s);
    assert!(!after.contains(&"STLS".to_string()), "{after:?}");
    assert!(after.contains(&"USER".to_string()) && after.contains(&"SASL PLAIN".to_string()));
    // Implicit TLS never offers STLS.
    assert!(!capa(&mut Session::new(0)).contains(&"STLS".to_string()));
}

#[test]
fn every_login_command_before_stls_is_refused_with_the_auth_code() {
    let mut s = Session::plaintext(0);
    for cmd in [
        &b"USER alice@example.org"[..],
        b"PASS secret",
        b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==",
        b"AUTH PLAIN",
        b"AUTH",
        b"apop alice@example.org c4c9334bac560ecc979e58001b3e22fb",
    ] {
        let text = reply(s.line(cmd));
        assert!(
            text.starts_with("-ERR [AUTH] ") && text.contains("STLS"),
            "{cmd:?}: {text}"
        );
    }
    // Nothing was remembered from the refused USER: after TLS, PASS still needs USER.
    assert!(matches!(s.line(b"STLS"), Action::StartTls(_)));
    s.tls_started();
    assert!(reply(s.line(b"PASS secret")).contains("USER first"));
    assert!(reply(s.line(b"USER alice@example.org")).starts_with("+OK"));
    assert!(
        matches!(s.line(b"PASS secret"), Action::Login { user, .. } if user == "alice@example.org")
    );
}

#[test]
fn refused_plaintext_logins_count_towards_the_error_cap() {
    let mut s = Session::plaintext(2);
    assert!(reply(s.line(b"USER a")).starts_with("-ERR [AUTH]"));
    assert!(matches!(s.line(b"PASS b"), Action::Close(_)));
    assert!(s.is_closed());
}

#[test]
fn stls_is_refused_once_tls_is_active_and_with_arguments() {
    let mut s = Session::plaintext(0);
    assert!(reply(s.line(b"STLS now")).starts_with("-ERR"));
    assert!(matches!(s.line(b"stls"), Action::StartTls(_)));
    s.tls_started();
    assert_eq!(reply(s.line(b"STLS")), "-ERR TLS is already active\r\n");
    assert_eq!(
        reply(Session::new(0).line(b"STLS")),
        "-ERR TLS is already active\r\n"
    );
}

#[test]
fn stls_in_transaction_state_is_refused_and_the_session_goes_on() {
    let mut s = logged_in();
    assert_eq!(
        reply(s.line(b"STLS")),
        "-ERR STLS is only allowed in the AUTHORIZATION state\r\n"
    );
    assert!(s.in_transaction());
    assert_eq!(reply(s.line(b"STAT")), "+OK 3 127\r\n");
}

#[test]
fn non_utf8_and_unknown_commands_get_err_and_error_cap_closes() {
    let mut s = Session::new(3);
    assert!(reply(s.line(b"\xff\xfe")).starts_with("-ERR"));
    assert!(reply(s.line(b"FROB")).starts_with("-ERR"));
    assert!(matches!(s.line(b"FROB"), Action::Close(_)));
    assert!(s.is_closed());
}

#[test]
fn framer_splits_pipelined_lines_and_rejects_overlong_ones() {
    let mut f = LineFramer::new();
    f.push(b"STAT\r\nLIST\nNO");
    assert_eq!(f.next_line(255), Some(Line::Complete(b"STAT".to_vec())));
    assert_eq!(f.next_line(255), Some(Line::Complete(b"LIST".to_vec())));
    assert_eq!(f.next_line(255), None);
    f.push(b"OP\r\n");
    assert_eq!(f.next_line(255), Some(Line::Complete(b"NOOP".to_vec())));

    f.push(&[b'a'; 300]);
    assert_eq!(f.next_line(255), Some(Line::TooLong));
    f.push(&[b'a'; 300]);
    assert_eq!(f.next_line(255), None);
    f.push(b"aaa\r\nQUIT\r\n");
    assert_eq!(f.next_line(255), Some(Line::Complete(b"QUIT".to_vec())));

    // Exactly at the limit (253 + CRLF = 255) passes; one more does not.
    let mut ok = vec![b'x'; 253];
    ok.extend_from_slice(b"\r\n");
    f.push(&ok);
    assert!(matches!(f.next_line(255), Some(Line::Complete(l)) if l.len() == 253));
    let mut long = vec![b'x'; 254];
    long.extend_from_slice(b"\r\n");
    f.push(&long);
    assert_eq!(f.next_line(255), Some(Line::TooLong));
}

#[test]
fn framer_discard_drops_pipelined_bytes_and_a_pending_overlong_line() {
    let mut f = LineFramer::new();
    f.push(b"STLS\r\nCAPA\r\nUSER x");
    assert_eq!(f.next_line(255), Some(Line::Complete(b"STLS".to_vec())));
    assert_eq!(f.discard(), b"CAPA\r\nUSER x".len());
    assert!(f.is_empty());
    assert_eq!(f.next_line(255), None);

    f.push(&[b'a'; 300]);
    assert_eq!(f.next_line(255), Some(Line::TooLong));
    f.discard();
    // The next bytes start a fresh line, not the tail of the discarded one.
    f.push(b"CAPA\r\n");
    assert_eq!(f.next_line(255), Some(Line::Complete(b"CAPA".to_vec())));
}

fn top_of(message: &[u8], lines: u64, chunk: usize) -> Vec<u8> {
    let mut cutter = TopCutter::new(lines);
    let mut out = Vec::new();
    for piece in message.chunks(chunk) {
        let n = cutter.take(piece);
        out.extend_from_slice(&piece[..n]);
        if cutter.is_done() {
            break;
        }
    }
    out
}

#[test]
fn top_sends_header_blank_line_and_n_body_lines_across_chunk_boundaries() {
    let msg = b"A: 1\r\nB: 2\r\n\r\nline1\r\nline2\r\nline3\r\n";
    for chunk in [1, 2, 3, 7, 100] {
        assert_eq!(
            top_of(msg, 0, chunk),
            b"A: 1\r\nB: 2\r\n\r\n",
            "chunk {chunk}"
        );
        assert_eq!(
            top_of(msg, 2, chunk),
            b"A: 1\r\nB: 2\r\n\r\nline1\r\nline2\r\n"
        );
        assert_eq!(top_of(msg, 10, chunk), msg.to_vec());
    }
    // No body separator at all: the whole (header-only) message.
    assert_eq!(top_of(b"A: 1\r\nB: 2", 0, 3), b"A: 1\r\nB: 2");
}
