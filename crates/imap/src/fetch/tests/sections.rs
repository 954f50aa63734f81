//! Section addressing, partial fetches, line endings, BINARY and header subsets on messages
//! shaped to hit the edges.

use postkeep_store::Flag;

use super::items::MIXED;
use super::support::*;
use crate::fetch::FetchError;

#[tokio::test]
async fn partials_past_the_end_are_truncated_or_empty() {
    let fx = Fixture::new().await;
    let item = fx.append(MIXED.as_bytes(), &[], &[]).await;
    // "Subject: Mixed test\r\n\r\n" is 23 octets: <22.5> is its last LF, <23.5> nothing.
    let items = "(BODY.PEEK[]<900.10> BODY.PEEK[1]<5.1> BODY.PEEK[1]<4.10> BINARY.PEEK[3]<4.10> \
                 BINARY.PEEK[3]<10.1> BODY.PEEK[HEADER.FIELDS (Subject)]<22.5> \
                 BODY.PEEK[HEADER.FIELDS (Subject)]<23.5>)";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        "* 1 FETCH (BODY[]<900> \"\" BODY[1]<5> \"\" BODY[1]<4> {1}\r\no \
         BINARY[3]<4> {1}\r\n\x04 BINARY[3]<10> \"\" \
         BODY[HEADER.FIELDS (Subject)]<22> {1}\r\n\n \
         BODY[HEADER.FIELDS (Subject)]<23> \"\")\r\n"
    );
    // RFC 9051 §6.4.5: BODY[]<0.2048> of a shorter message is BODY[]<0> with all of it.
    let whole = fx.text(&item, "BODY.PEEK[]<0.2048>", plain()).await;
    assert_eq!(
        whole,
        format!("* 1 FETCH (BODY[]<0> {{849}}\r\n{MIXED})\r\n")
    );
}

/// Stored with bare LFs (and one bare CR, which is not a line break and stays).
const BARE_LF: &str = "From: lf@example.org\n\
Subject: bare\rLF\n\
Content-Type: multipart/mixed; boundary=B\n\
\n\
--B\n\
Content-Type: text/plain\n\
\n\
line1\n\
line2\n\
--B--\n";

#[tokio::test]
async fn bare_lf_message_is_served_as_crlf_with_consistent_sizes() {
    let fx = Fixture::new().await;
    let item = fx.append(BARE_LF.as_bytes(), &[], &[]).await;
    let wire = BARE_LF.replace('\n', "\r\n");
    assert_eq!(item.record.size, BARE_LF.len() as u64);
    assert_eq!(item.record.wire_size, wire.len() as u64);
    let header_end = wire.find("\r\n\r\n").unwrap() + 4;
    let out = fx
        .text(
            &item,
            "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] \
             BODY.PEEK[1.MIME] BODYSTRUCTURE)",
            plain(),
        )
        .await;
    assert_eq!(
        out,
        format!(
            "* 1 FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n{wire} BODY[HEADER] {{{header_end}}}\r\n{} \
             BODY[TEXT] {{{}}}\r\n{} BODY[1] {{12}}\r\nline1\r\nline2 \
             BODY[1.MIME] {{28}}\r\nContent-Type: text/plain\r\n\r\n \
             BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 12 2 NIL NIL NIL NIL) \
             \"MIXED\" (\"boundary\" \"B\") NIL NIL NIL))\r\n",
            wire.len(),
            wire.len(),
            &wire[..header_end],
            wire.len() - header_end,
            &wire[header_end..],
        )
    );
}

const SINGLE_BASE64: &str = "From: a@example.org\r\n\
Content-Type: application/pdf\r\n\
Content-Transfer-Encoding: Base64\r\n\
\r\n\
SGVsbG8s\r\n\
IHdvcmxk\r\n\
IQ\r\n";

#[tokio::test]
async fn binary_of_a_single_part_message_decodes_its_body() {
    let fx = Fixture::new().await;
    let item = fx.append(SINGLE_BASE64.as_bytes(), &[], &[]).await;
    // Part 1 of a non-multipart message is its body; the missing padding is tolerated.
    assert_eq!(
        fx.text(
            &item,
            "(BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[1] BINARY.SIZE[])",
            plain()
        )
        .await,
        format!(
            "* 1 FETCH (BINARY[1] {{13}}\r\nHello, world! BINARY.SIZE[1] 13 \
             BODY[1] {{24}}\r\nSGVsbG8s\r\nIHdvcmxk\r\nIQ\r\n BINARY.SIZE[] {})\r\n",
            SINGLE_BASE64.len()
        )
    );
}

const QUOTED_PRINTABLE: &str = "From: a@example.org\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
r=C3=a9sum=C3=A9 =3D ok   \r\n\
soft=   \r\n\
break, bad =ZZ and =4\r\n\
end=";

#[tokio::test]
async fn binary_undoes_quoted_printable() {
    let fx = Fixture::new().await;
    let item = fx.append(QUOTED_PRINTABLE.as_bytes(), &[], &[]).await;
    // Lower-case hex is accepted, trailing spaces go, "=" plus spaces ends a soft line break,
    // malformed escapes stay as written, and a final "=" is a soft break into nothing.
    let decoded = "résumé = ok\r\nsoftbreak, bad =ZZ and =4\r\nend";
    assert_eq!(
        fx.text(&item, "(BINARY.PEEK[1] BINARY.SIZE[1])", plain())
            .await,
        format!(
            "* 1 FETCH (BINARY[1] {{{}}}\r\n{decoded} BINARY.SIZE[1] {})\r\n",
            decoded.len(),
            decoded.len()
        )
    );
}

const UUENCODED: &str = "From: a@example.org\r\n\
Content-Type: multipart/mixed; boundary=U\r\n\
\r\n\
--U\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\
\r\n\
begin 644 a\r\n\
--U--\r\n";

#[tokio::test]
async fn binary_of_an_unknown_encoding_is_unknown_cte_before_any_output() {
    let fx = Fixture::new().await;
    let item = fx.append(UUENCODED.as_bytes(), &[], &[]).await;
    for items in [
        "BINARY.PEEK[1]",
        "(UID BODY.PEEK[] BINARY.SIZE[1])",
        "(BODY.PEEK[1] BINARY[1]<0.5>)",
    ] {
        let mut out = Vec::new();
        let req = request(items, Vec::new());
        let summary = fx.summary(&item).await;
        let result = fetch_into(&mut out, &fx.store, &item, &summary, &req, &plain()).await;
        assert!(matches!(result, Err(FetchError::UnknownCte)), "{items}");
        assert!(out.is_empty(), "{items}: wrote {out:?}");
    }
    // The undecoded part is still available.
    assert_eq!(
        fx.text(&item, "BODY.PEEK[1]", plain()).await,
        "* 1 FETCH (BODY[1] {11}\r\nbegin 644 a)\r\n"
    );
}

const FOLDED: &str = "Subject: a folded\r\n \
subject line\r\n\
X-Long: one\r\n\
\ttwo\r\n\
\tthree\r\n\
to: lower@example.org\r\n\
Received : obsolete space\r\n\
From: x@example.org\r\n\
\r\n\
body\r\n";

#[tokio::test]
async fn header_fields_keep_folded_lines_and_end_with_the_blank_line() {
    let fx = Fixture::new().await;
    let item = fx.append(FOLDED.as_bytes(), &[], &[]).await;
    let items = "(BODY.PEEK[HEADER.FIELDS (SUBJECT x-long)] \
                 BODY.PEEK[HEADER.FIELDS.NOT (subject X-LONG)] \
                 BODY.PEEK[HEADER.FIELDS (received TO)] BODY.PEEK[HEADER.FIELDS (X-None)])";
    let fields = "Subject: a folded\r\n subject line\r\nX-Long: one\r\n\ttwo\r\n\tthree\r\n\r\n";
    let not = "to: lower@example.org\r\nReceived : obsolete space\r\nFrom: x@example.org\r\n\r\n";
    let received = "to: lower@example.org\r\nReceived : obsolete space\r\n\r\n";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        format!(
            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT x-long)] {{{}}}\r\n{fields} \
             BODY[HEADER.FIELDS.NOT (subject X-LONG)] {{{}}}\r\n{not} \
             BODY[HEADER.FIELDS (received TO)] {{{}}}\r\n{received} \
             BODY[HEADER.FIELDS (X-None)] {{2}}\r\n\r\n)\r\n",
            fields.len(),
            not.len(),
            received.len()
        )
    );
}

#[tokio::test]
async fn header_fields_of_a_message_without_body_have_no_blank_line() {
    let fx = Fixture::new().await;
    let item = fx
        .append(b"Subject: only\r\nFrom: x@example.org\r\n", &[], &[])
        .await;
    assert_eq!(
        fx.text(&item, "BODY.PEEK[HEADER.FIELDS (From)]", plain())
            .await,
        "* 1 FETCH (BODY[HEADER.FIELDS (From)] {21}\r\nFrom: x@example.org\r\n)\r\n"
    );
}

#[tokio::test]
async fn single_part_message_has_only_part_one() {
    let fx = Fixture::new().await;
    let raw = "Subject: one\r\nContent-Type: text/plain\r\n\r\nJust text\r\n";
    let item = fx.append(raw.as_bytes(), &[], &[]).await;
    assert_eq!(
        fx.text(
            &item,
            "(BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[1.1] BODY.PEEK[TEXT])",
            plain()
        )
        .await,
        "* 1 FETCH (BODY[1] {11}\r\nJust text\r\n \
         BODY[1.MIME] {42}\r\nSubject: one\r\nContent-Type: text/plain\r\n\r\n \
         BODY[2] \"\" BODY[1.1] \"\" BODY[TEXT] {11}\r\nJust text\r\n)\r\n"
    );
}

const NESTED: &str = "Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=O\r\n\
\r\n\
--O\r\n\
Content-Type: text/plain\r\n\
\r\n\
first\r\n\
--O\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=I\r\n\
\r\n\
--I\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain\r\n\
--I\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>html</b>\r\n\
--I--\r\n\
--O--\r\n";

#[tokio::test]
async fn parts_inside_a_forwarded_multipart_are_numbered_through_it() {
    let fx = Fixture::new().await;
    let item = fx.append(NESTED.as_bytes(), &[], &[]).await;
    let items = "(BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.2.MIME] BODY.PEEK[2.3] \
                 BODY.PEEK[2.HEADER.FIELDS (subject)] BODY.PEEK[2.1.1])";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        "* 1 FETCH (BODY[2.1] {5}\r\nplain BODY[2.2] {11}\r\n<b>html</b> \
         BODY[2.2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n BODY[2.3] \"\" \
         BODY[2.HEADER.FIELDS (subject)] {18}\r\nSubject: inner\r\n\r\n BODY[2.1.1] \"\")\r\n"
    );
}

#[tokio::test]
async fn a_top_level_message_rfc822_nests_through_part_one() {
    let fx = Fixture::new().await;
    let raw = "Subject: wrapper\r\nContent-Type: message/rfc822\r\n\r\n\
               Subject: wrapped\r\n\r\nwrapped body\r\n";
    let item = fx.append(raw.as_bytes(), &[], &[]).await;
    assert_eq!(
        fx.text(
            &item,
            "(BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1.1])",
            plain()
        )
        .await,
        "* 1 FETCH (BODY[1.HEADER] {20}\r\nSubject: wrapped\r\n\r\n \
         BODY[1.TEXT] {14}\r\nwrapped body\r\n BODY[1.1] {14}\r\nwrapped body\r\n)\r\n"
    );
}

#[tokio::test]
async fn nul_is_replaced_in_body_literals_and_kept_in_binary_literal8() {
    let fx = Fixture::new().await;
    let raw = b"Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n";
    let item = fx.append(raw, &[Flag::Seen], &[]).await;
    let out = fx
        .fetch(&item, "(BODY.PEEK[TEXT] BINARY.PEEK[1])", plain())
        .await
        .unwrap();
    assert_eq!(
        out,
        b"* 1 FETCH (BODY[TEXT] {5}\r\na\x80b\r\n BINARY[1] ~{5}\r\na\x00b\r\n)\r\n"
    );
}

const GLOBAL: &str = "Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=G\r\n\
\r\n\
--G\r\n\
Content-Type: message/global\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner text\r\n\
--G--\r\n";

#[tokio::test]
async fn message_global_is_a_basic_part_whose_message_is_still_addressable() {
    let fx = Fixture::new().await;
    let item = fx.append(GLOBAL.as_bytes(), &[], &[]).await;
    // imap-codec can only write MESSAGE/RFC822 with an envelope; MESSAGE/GLOBAL goes out as a
    // basic part, and its sections resolve inside it all the same.
    assert_eq!(
        fx.text(
            &item,
            "(BODYSTRUCTURE BODY.PEEK[1.HEADER] BODY.PEEK[1.1])",
            plain()
        )
        .await,
        "* 1 FETCH (BODYSTRUCTURE ((\"MESSAGE\" \"GLOBAL\" NIL NIL NIL \"7BIT\" 28 \
         NIL NIL NIL NIL) \"MIXED\" (\"boundary\" \"G\") NIL NIL NIL) \
         BODY[1.HEADER] {18}\r\nSubject: inner\r\n\r\n BODY[1.1] {10}\r\ninner text)\r\n"
    );
}

#[tokio::test]
async fn a_message_that_cannot_be_read_fails_before_any_output() {
    let fx = Fixture::new().await;
    let mut item = fx.append(MIXED.as_bytes(), &[], &[]).await;
    let summary = fx.summary(&item).await;
    // As if the message had been expunged and its row removed since the FETCH began.
    item.record.id = "gone".into();
    let mut out = Vec::new();
    let req = request("(UID FLAGS BODY.PEEK[1])", Vec::new());
    let result = fetch_into(&mut out, &fx.store, &item, &summary, &req, &plain()).await;
    assert!(matches!(result, Err(FetchError::Store(_))), "{result:?}");
    assert!(out.is_empty());
}
