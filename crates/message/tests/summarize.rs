//! Hand-written messages with exact expected summaries, and hostile-input guards.

mod common;

use postkeep_message::{
    summarize, Address, BodyPart, EmbeddedMessage, Envelope, MessageSummary, MAX_DEPTH, MAX_PARTS,
};

/// Offset of the first occurrence of `needle`: expected offsets are located in the raw text
/// independently of the parser.
fn pos(raw: &[u8], needle: &str) -> u64 {
    raw.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle:?} not in message")) as u64
}

fn end_of(raw: &[u8], needle: &str) -> u64 {
    pos(raw, needle) + needle.len() as u64
}

/// Asserts the part's MIME header and content are exactly these bytes.
fn assert_span(raw: &[u8], part: &BodyPart, header: &str, body: &str) {
    assert_eq!(
        String::from_utf8_lossy(part.header_bytes(raw).unwrap()),
        header,
        "header of {}/{}",
        part.content_type,
        part.subtype
    );
    assert_eq!(
        String::from_utf8_lossy(part.body_bytes(raw).unwrap()),
        body,
        "body of {}/{}",
        part.content_type,
        part.subtype
    );
}

fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
    Address {
        name: name.map(Into::into),
        adl: None,
        mailbox: Some(mailbox.into()),
        host: Some(host.into()),
    }
}

fn part(ctype: &str, subtype: &str, params: &[(&str, &str)]) -> BodyPart {
    BodyPart {
        content_type: ctype.into(),
        subtype: subtype.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        encoding: "7BIT".into(),
        ..BodyPart::default()
    }
}

fn spans(mut p: BodyPart, header: u64, body: u64, end: u64) -> BodyPart {
    p.header_offset = header;
    p.body_offset = body;
    p.end_offset = end;
    p
}

fn summarize_checked(raw: &[u8]) -> MessageSummary {
    let s = summarize(raw);
    if let Err(e) = common::check_summary(raw, &s) {
        panic!("invariant broken: {e}\n{s:#?}");
    }
    s
}

const SIMPLE: &str = concat!(
    "From: \"Alice Example\" <alice@example.com>\r\n",
    "To: bob@example.org\r\n",
    "Subject: Hello\r\n",
    " world\r\n",
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n",
    "Message-ID: <1234@local.machine.example>\r\n",
    "\r\n",
    "Hi Bob,\r\n",
    "How are you?\r\n",
);

#[test]
fn simple_text_message_summary_is_exact() {
    let raw = SIMPLE.as_bytes();
    let alice = addr(Some("Alice Example"), "alice", "example.com");
    let mut body = part("TEXT", "PLAIN", &[("charset", "us-ascii")]);
    body.lines = Some(2);
    let expected = MessageSummary {
        envelope: Envelope {
            date: Some("Mon, 7 Feb 1994 21:52:25 -0800".into()),
            subject: Some("Hello world".into()),
            from: vec![alice.clone()],
            sender: vec![alice.clone()],
            reply_to: vec![alice],
            to: vec![addr(None, "bob", "example.org")],
            cc: vec![],
            bcc: vec![],
            in_reply_to: None,
            message_id: Some("<1234@local.machine.example>".into()),
        },
        body: spans(body, 0, pos(raw, "Hi Bob"), raw.len() as u64),
        message_id: Some("1234@local.machine.example".into()),
        in_reply_to: vec![],
        references: vec![],
        // 1994-02-08T05:52:25Z
        sent_date: Some(760_686_745),
        subject: Some("Hello world".into()),
        thread_subject: "Hello world".into(),
        authentication: None,
    };
    assert_eq!(summarize_checked(raw), expected);
}

const ALTERNATIVE: &str = concat!(
    "From: a@example.com\r\n",
    "Subject: alt\r\n",
    "MIME-Version: 1.0\r\n",
    "Content-Type: multipart/alternative; boundary=\"XX\"\r\n",
    "\r\n",
    "--XX\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "\r\n",
    "Caf=C3=A9\r\n",
    "--XX\r\n",
    "Content-Type: text/html; charset=utf-8\r\n",
    "\r\n",
    "<p>Caf&eacute;</p>\r\n",
    "\r\n",
    "--XX--\r\n",
);

fn expected_alternative(raw: &[u8]) -> BodyPart {
    let mut plain = part("TEXT", "PLAIN", &[("charset", "utf-8")]);
    plain.encoding = "QUOTED-PRINTABLE".into();
    plain.lines = Some(1);
    let plain_hdr = pos(raw, "Content-Type: text/plain");
    let plain_body = pos(raw, "Caf=C3=A9");
    let plain_end = end_of(raw, "Caf=C3=A9");
    let mut html = part("TEXT", "HTML", &[("charset", "utf-8")]);
    // The content is "<p>..</p>" CRLF: the blank line's CRLF belongs to the boundary.
    html.lines = Some(1);
    let html_hdr = pos(raw, "Content-Type: text/html");
    let html_body = pos(raw, "<p>");
    let html_end = end_of(raw, "</p>\r\n");
    let mut root = part("MULTIPART", "ALTERNATIVE", &[("boundary", "XX")]);
    root.children = vec![
        spans(plain, plain_hdr, plain_body, plain_end),
        spans(html, html_hdr, html_body, html_end),
    ];
    spans(root, 0, pos(raw, "--XX"), raw.len() as u64)
}

#[test]
fn multipart_alternative_offsets_match_rfc2046_boundaries() {
    let raw = ALTERNATIVE.as_bytes();
    let s = summarize_checked(raw);
    assert_eq!(s.body, expected_alternative(raw));
    let [plain, html] = &s.body.children[..] else {
        panic!("two parts expected")
    };
    assert_span(
        raw,
        plain,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        "Caf=C3=A9",
    );
    assert_span(
        raw,
        html,
        "Content-Type: text/html; charset=utf-8\r\n\r\n",
        "<p>Caf&eacute;</p>\r\n",
    );
    assert_eq!(s.subject.as_deref(), Some("alt"));
}

#[test]
fn lf_only_line_endings_give_the_same_structure() {
    let text = ALTERNATIVE.replace("\r\n", "\n");
    let raw = text.as_bytes();
    let s = summarize_checked(raw);
    let [plain, html] = &s.body.children[..] else {
        panic!("two parts expected")
    };
    assert_span(
        raw,
        plain,
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n",
        "Caf=C3=A9",
    );
    assert_span(
        raw,
        html,
        "Content-Type: text/html; charset=utf-8\n\n",
        "<p>Caf&eacute;</p>\n",
    );
    assert_eq!((plain.lines, html.lines), (Some(1), Some(1)));
    assert_eq!(s.body.body_offset, pos(raw, "--XX"));
    assert_eq!(s.body.end_offset, raw.len() as u64);
    assert_eq!(s.envelope.from, vec![addr(None, "a", "example.com")]);
}

const MIXED: &str = concat!(
    "From: Bob <bob@example.org>\r\n",
    "Reply-To: list@example.org\r\n",
    "Subject: report\r\n",
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n",
    "\r\n",
    "preamble\r\n",
    "--outer\r\n",
    "Content-Type: text/plain\r\n",
    "\r\n",
    "see attached\r\n",
    "--outer\r\n",
    "Content-Type: application/pdf; name=\"a.pdf\"\r\n",
    "Content-Disposition: attachment; filename*=UTF-8''%C3%A9t%C3%A9.pdf\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-ID: <part2@example.org>\r\n",
    "Content-Description: the\r\n",
    " report\r\n",
    "Content-Language: en, fr\r\n",
    "\r\n",
    "JVBERi0xLjQK\r\n",
    "--outer\r\n",
    "Content-Type: message/rfc822\r\n",
    "\r\n",
    "From: Carol <carol@example.net>\r\n",
    "Subject: inner\r\n",
    "Message-ID: <inner@example.net>\r\n",
    "\r\n",
    "Inner body\r\n",
    "--outer--\r\n",
    "epilogue\r\n",
);

#[test]
fn multipart_mixed_with_attachment_and_message_rfc822_is_exact() {
    let raw = MIXED.as_bytes();
    let s = summarize_checked(raw);

    let mut text = part("TEXT", "PLAIN", &[]);
    text.lines = Some(1);
    let text = spans(
        text,
        pos(raw, "Content-Type: text/plain"),
        pos(raw, "see attached"),
        end_of(raw, "see attached"),
    );

    let mut pdf = part("APPLICATION", "PDF", &[("name", "a.pdf")]);
    pdf.encoding = "BASE64".into();
    pdf.id = Some("<part2@example.org>".into());
    pdf.description = Some("the report".into());
    pdf.language = vec!["en".into(), "fr".into()];
    pdf.disposition = Some((
        "attachment".into(),
        vec![("filename".into(), "été.pdf".into())],
    ));
    let pdf = spans(
        pdf,
        pos(raw, "Content-Type: application/pdf"),
        pos(raw, "JVBERi0xLjQK"),
        end_of(raw, "JVBERi0xLjQK"),
    );

    let carol = addr(Some("Carol"), "carol", "example.net");
    let mut inner_body = part("TEXT", "PLAIN", &[("charset", "us-ascii")]);
    inner_body.lines = Some(1);
    let inner_body = spans(
        inner_body,
        pos(raw, "From: Carol"),
        pos(raw, "Inner body"),
        end_of(raw, "Inner body"),
    );
    let mut message = part("MESSAGE", "RFC822", &[]);
    // From, Subject, Message-ID, blank line, "Inner body".
    message.lines = Some(5);
    message.embedded = Some(Box::new(EmbeddedMessage {
        envelope: Envelope {
            subject: Some("inner".into()),
            from: vec![carol.clone()],
            sender: vec![carol.clone()],
            reply_to: vec![carol],
            message_id: Some("<inner@example.net>".into()),
            ..Envelope::default()
        },
        body: inner_body,
    }));
    let message = spans(
        message,
        pos(raw, "Content-Type: message/rfc822"),
        pos(raw, "From: Carol"),
        end_of(raw, "Inner body"),
    );

    let mut root = part("MULTIPART", "MIXED", &[("boundary", "outer")]);
    root.children = vec![text, pdf, message];
    let root = spans(root, 0, pos(raw, "preamble"), raw.len() as u64);
    assert_eq!(s.body, root);

    let bob = addr(Some("Bob"), "bob", "example.org");
    assert_eq!(s.envelope.from, vec![bob.clone()]);
    assert_eq!(
        s.envelope.sender,
        vec![bob],
        "absent Sender defaults to From"
    );
    assert_eq!(
        s.envelope.reply_to,
        vec![addr(None, "list", "example.org")],
        "a present Reply-To is kept"
    );

    let embedded = &s.body.children[2];
    assert_span(
        raw,
        embedded,
        "Content-Type: message/rfc822\r\n\r\n",
        "From: Carol <carol@example.net>\r\nSubject: inner\r\nMessage-ID: <inner@example.net>\r\n\r\nInner body",
    );
    let inner = &embedded.embedded.as_ref().unwrap().body;
    assert_span(
        raw,
        inner,
        "From: Carol <carol@example.net>\r\nSubject: inner\r\nMessage-ID: <inner@example.net>\r\n\r\n",
        "Inner body",
    );
}

#[test]
fn group_addresses_use_imap_group_markers() {
    let raw = concat!(
        "From: a@example.com\r\n",
        "To: A Group: a@x.com, B <b@y.org>;, c@z.net\r\n",
        "Cc: Undisclosed recipients:;\r\n",
        "Bcc: postmaster\r\n",
        "\r\n",
        "x\r\n",
    )
    .as_bytes();
    let e = summarize_checked(raw).envelope;
    assert_eq!(
        e.to,
        vec![
            Address::group_start("A Group"),
            addr(None, "a", "x.com"),
            addr(Some("B"), "b", "y.org"),
            Address::group_end(),
            addr(None, "c", "z.net"),
        ]
    );
    assert_eq!(
        e.cc,
        vec![
            Address::group_start("Undisclosed recipients"),
            Address::group_end()
        ]
    );
    // A lone word is a local part without domain; the host stays non-NIL (NIL = group).
    assert_eq!(e.bcc, vec![addr(None, "postmaster", "")]);
}

#[test]
fn rfc2047_subject_is_decoded_but_envelope_keeps_raw_text() {
    let raw = concat!(
        "From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.fr>\r\n",
        "Subject: Re: [list] =?UTF-8?Q?Caf=C3=A9?=\r\n",
        " =?ISO-8859-1?Q?_cr=E8me?=\r\n",
        "In-Reply-To: <a@example.fr>\r\n",
        "References: <root@example.fr>\r\n",
        " <a@example.fr>\r\n",
        "\r\n",
        "x\r\n",
    )
    .as_bytes();
    let s = summarize_checked(raw);
    assert_eq!(s.subject.as_deref(), Some("Re: [list] Café crème"));
    assert_eq!(s.thread_subject, "Café crème");
    assert_eq!(
        s.envelope.subject.as_deref(),
        Some("Re: [list] =?UTF-8?Q?Caf=C3=A9?= =?ISO-8859-1?Q?_cr=E8me?=")
    );
    assert_eq!(
        s.envelope.from,
        vec![addr(Some("René"), "rene", "example.fr")]
    );
    assert_eq!(s.in_reply_to, vec!["a@example.fr".to_string()]);
    assert_eq!(
        s.references,
        vec!["root@example.fr".to_string(), "a@example.fr".to_string()]
    );
    assert_eq!(s.envelope.in_reply_to.as_deref(), Some("<a@example.fr>"));
}

#[test]
fn missing_headers_give_an_empty_envelope_and_default_type() {
    let raw = b"X-Mailer: test\r\n\r\nbody\r\n";
    let s = summarize_checked(raw);
    let mut body = part("TEXT", "PLAIN", &[("charset", "us-ascii")]);
    body.lines = Some(1);
    let expected = MessageSummary {
        body: spans(body, 0, pos(raw, "body"), raw.len() as u64),
        ..MessageSummary::default()
    };
    assert_eq!(s, expected);
}

#[test]
fn message_without_body_has_an_empty_body_span() {
    for raw in [
        &b"From: a@b.example\r\nSubject: x\r\n"[..],
        &b"From: a@b.example\r\nSubject: x\r\n\r\n"[..],
    ] {
        let s = summarize_checked(raw);
        let b = &s.body;
        assert_eq!(
            (b.header_offset, b.body_offset, b.end_offset),
            (0, raw.len() as u64, raw.len() as u64)
        );
        assert_eq!(b.lines, Some(0));
        assert_eq!(s.envelope.subject.as_deref(), Some("x"));
    }
}

#[test]
fn impossible_date_is_kept_raw_but_has_no_timestamp() {
    let raw = b"Date: Mon, 31 Feb 2020 10:00:00 +0000\r\n\r\nx\r\n";
    let s = summarize_checked(raw);
    assert_eq!(s.sent_date, None);
    assert_eq!(
        s.envelope.date.as_deref(),
        Some("Mon, 31 Feb 2020 10:00:00 +0000")
    );
}

#[test]
fn digest_parts_default_to_message_rfc822() {
    let raw = concat!(
        "Content-Type: multipart/digest; boundary=d\r\n",
        "\r\n",
        "--d\r\n",
        "\r\n",
        "Subject: one\r\n",
        "\r\n",
        "first\r\n",
        "--d--\r\n",
    )
    .as_bytes();
    let s = summarize_checked(raw);
    let digest = &s.body.children[0];
    assert_eq!(
        (digest.content_type.as_str(), digest.subtype.as_str()),
        ("MESSAGE", "RFC822")
    );
    let inner = digest.embedded.as_ref().expect("embedded message");
    assert_eq!(inner.envelope.subject.as_deref(), Some("one"));
    assert_span(raw, &inner.body, "Subject: one\r\n\r\n", "first");
}

#[test]
fn structure_that_cannot_be_exposed_becomes_octet_stream() {
    // Boundary never appears: no parts to report.
    let raw = b"Content-Type: multipart/mixed; boundary=nope\r\n\r\njust text\r\n";
    let s = summarize_checked(raw);
    assert_eq!(
        (s.body.content_type.as_str(), s.body.subtype.as_str()),
        ("APPLICATION", "OCTET-STREAM")
    );
    assert_eq!(s.body.body_bytes(raw), Some(&b"just text\r\n"[..]));

    // Base64 message/rfc822 (RFC 2046 §5.2.1 forbids it): offsets would not be raw offsets.
    let raw = concat!(
        "Content-Type: multipart/mixed; boundary=b\r\n",
        "\r\n",
        "--b\r\n",
        "Content-Type: message/rfc822\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        "\r\n",
        "U3ViamVjdDogeA0KDQp5DQo=\r\n",
        "--b--\r\n",
    )
    .as_bytes();
    let s = summarize_checked(raw);
    let p = &s.body.children[0];
    assert_eq!(
        (p.content_type.as_str(), p.subtype.as_str()),
        ("APPLICATION", "OCTET-STREAM")
    );
    assert!(p.embedded.is_none());
    assert_eq!(p.encoding, "BASE64");
}

fn nested_multipart_bomb(levels: usize) -> Vec<u8> {
    let mut raw = b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n".to_vec();
    for i in 1..levels {
        raw.extend_from_slice(
            format!(
                "--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n",
                i - 1
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(format!("--b{}\r\n\r\nleaf\r\n", levels - 1).as_bytes());
    for i in (0..levels).rev() {
        raw.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    raw
}

#[test]
fn deep_multipart_bomb_is_flattened_at_max_depth() {
    let raw = nested_multipart_bomb(1000);
    let s = summarize_checked(&raw);
    assert_eq!(common::levels(&s.body), MAX_DEPTH + 1);
    let mut node = &s.body;
    while let Some(child) = node.children.first() {
        node = child;
    }
    assert_eq!(
        (node.content_type.as_str(), node.subtype.as_str()),
        ("APPLICATION", "OCTET-STREAM"),
        "the multipart at MAX_DEPTH becomes an opaque leaf"
    );
}

#[test]
fn deep_message_rfc822_chain_does_not_overflow_the_stack() {
    // ~4.7 MB, 100 000 nested messages: freeing mail-parser's tree recursively would overflow
    // a test thread's 2 MiB stack.
    let level = "Subject: level\r\nContent-Type: message/rfc822\r\n\r\n";
    let mut raw = level.repeat(100_000).into_bytes();
    raw.extend_from_slice(b"Subject: leaf\r\n\r\nbody\r\n");
    let s = summarize_checked(&raw);
    assert_eq!(common::levels(&s.body), MAX_DEPTH + 1);
    assert_eq!(s.envelope.subject.as_deref(), Some("level"));
}

#[test]
fn part_count_is_capped() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n".to_vec();
    for i in 0..3000 {
        raw.extend_from_slice(format!("--p\r\n\r\npart {i}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"--p--\r\n");
    let s = summarize_checked(&raw);
    assert_eq!(s.body.children.len(), MAX_PARTS - 1);
    let last = s.body.children.last().unwrap();
    assert_eq!(
        last.body_bytes(&raw),
        Some(format!("part {}", MAX_PARTS - 2).as_bytes())
    );
}

#[test]
fn garbage_input_never_panics() {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\r\n\r\n",
        b":\r\n",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\n--a",
        b"From: <@>\r\nTo: ,,,;;;:::\r\nDate: 99 Xyz 99999 99:99:99 +9999\r\n\r\n",
        b"\xff\xfe\x00Subject: \xc3\x28\r\n\r\n\x00",
    ];
    for raw in inputs {
        summarize_checked(raw);
    }
}
