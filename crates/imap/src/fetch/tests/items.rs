//! Every FETCH item on one multipart/mixed message holding a text part, a forwarded
//! message/rfc822, a base64 attachment and a quoted-printable part.

use std::num::NonZeroU32;

use imap_codec::decode::Decoder;
use imap_codec::ResponseCodec;
use imap_types::fetch::MessageDataItem;
use imap_types::response::{Data, Response};
use postkeep_imap_proto::ext::FetchExt;
use postkeep_store::{EntryRecord, Flag, RecordParts};

use super::support::*;
use crate::fetch::FetchOptions;

/// Part offsets (wire = stored, all CRLF): header 0..232, text 232..849; part 1 header
/// 248..313, body 313..318; part 2 header 326..390, body 390..477 (its message's header
/// 390..467, text 467..477); part 3 header 485..710, body 710..718; part 4 header 726..814,
/// body 814..839.
pub(super) const MIXED: &str = "From: \"Alice Q. Example\" <alice@example.org>\r\n\
To: Bob <bob@example.net>\r\n\
Subject: Mixed test\r\n\
Date: Mon, 2 Feb 2026 10:00:00 +0000\r\n\
Message-ID: <mixed@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XX\"\r\n\
\r\n\
preamble\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Language: en\r\n\
\r\n\
Hello\r\n\
--XX\r\n\
Content-Type: message/rfc822\r\n\
Content-Description: forwarded\r\n\
\r\n\
From: Carol <carol@example.com>\r\n\
Subject: Inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
Inner body\r\n\
--XX\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"a.bin\"\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
Content-Location: http://example.org/a.bin\r\n\
\r\n\
AAECAwQ=\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 soft=\r\n \
break  \r\n\
--XX--\r\n";

const ALICE: &str = r#"(("Alice Q. Example" NIL "alice" "example.org"))"#;
const CAROL: &str = r#"(("Carol" NIL "carol" "example.com"))"#;

fn envelope() -> String {
    format!(
        r#"("Mon, 2 Feb 2026 10:00:00 +0000" "Mixed test" {ALICE} {ALICE} {ALICE} (("Bob" NIL "bob" "example.net")) NIL NIL NIL "<mixed@example.org>")"#
    )
}

fn inner_envelope() -> String {
    format!(r#"(NIL "Inner" {CAROL} {CAROL} {CAROL} NIL NIL NIL NIL NIL)"#)
}

async fn mixed(fx: &Fixture) -> EntryRecord {
    fx.append(
        MIXED.as_bytes(),
        &[Flag::Seen, Flag::Flagged],
        &["$Forwarded"],
    )
    .await
}

fn raw(range: std::ops::Range<usize>) -> &'static str {
    &MIXED[range]
}

#[tokio::test]
async fn flags_uid_internaldate_and_size() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert_eq!(
        fx.text(&item, "(FLAGS UID INTERNALDATE RFC822.SIZE)", plain())
            .await,
        "* 1 FETCH (FLAGS (\\Seen \\Flagged $Forwarded) UID 1 \
         INTERNALDATE \"02-Feb-2026 10:00:00 +0000\" RFC822.SIZE 849)\r\n"
    );
}

#[tokio::test]
async fn envelope_of_the_top_level_message() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert_eq!(
        fx.text(&item, "ENVELOPE", plain()).await,
        format!("* 1 FETCH (ENVELOPE {})\r\n", envelope())
    );
}

#[tokio::test]
async fn body_is_the_structure_without_extension_data() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let expected = format!(
        "* 1 FETCH (BODY (\
         (\"TEXT\" \"PLAIN\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 1)\
         (\"MESSAGE\" \"RFC822\" NIL NIL \"forwarded\" \"7BIT\" 87 {} \
         (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1) 5)\
         (\"APPLICATION\" \"OCTET-STREAM\" (\"name\" \"a.bin\") NIL NIL \"BASE64\" 8)\
         (\"TEXT\" \"PLAIN\" (\"charset\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 25 2) \
         \"MIXED\"))\r\n",
        inner_envelope()
    );
    assert_eq!(fx.text(&item, "BODY", plain()).await, expected);
}

fn bodystructure() -> String {
    format!(
        "(\
         (\"TEXT\" \"PLAIN\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 1 NIL NIL (\"en\") NIL)\
         (\"MESSAGE\" \"RFC822\" NIL NIL \"forwarded\" \"7BIT\" 87 {} \
         (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)\
         (\"APPLICATION\" \"OCTET-STREAM\" (\"name\" \"a.bin\") NIL NIL \"BASE64\" 8 \
         \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"a.bin\")) NIL \
         \"http://example.org/a.bin\")\
         (\"TEXT\" \"PLAIN\" (\"charset\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 25 2 NIL NIL NIL NIL) \
         \"MIXED\" (\"boundary\" \"XX\") NIL NIL NIL)",
        inner_envelope()
    )
}

#[tokio::test]
async fn bodystructure_has_extension_data_and_the_embedded_message() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert_eq!(
        fx.text(&item, "BODYSTRUCTURE", plain()).await,
        format!("* 1 FETCH (BODYSTRUCTURE {})\r\n", bodystructure())
    );
}

#[tokio::test]
async fn bodystructure_reparses_with_imap_codec() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let out = fx
        .fetch(&item, "(BODYSTRUCTURE ENVELOPE)", plain())
        .await
        .unwrap();
    let (rest, response) = ResponseCodec::default()
        .decode(&out)
        .expect("a valid response");
    assert!(rest.is_empty());
    let Response::Data(Data::Fetch { seq, items }) = response else {
        panic!("not a FETCH: {response:?}");
    };
    assert_eq!(seq, NonZeroU32::MIN);
    let items = items.into_inner();
    assert_eq!(items.len(), 2);
    let MessageDataItem::BodyStructure(structure) = &items[0] else {
        panic!("not a BODYSTRUCTURE: {:?}", items[0]);
    };
    // Encoding what was decoded gives the same bytes: nothing was lost or misread.
    let again = imap_codec::encode::Encoder::encode(
        &ResponseCodec::default(),
        &Response::Data(Data::Fetch {
            seq,
            items: vec![MessageDataItem::BodyStructure(structure.clone())]
                .try_into()
                .unwrap(),
        }),
    )
    .dump();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        format!("* 1 FETCH (BODYSTRUCTURE {})\r\n", bodystructure())
    );
}

#[tokio::test]
async fn whole_message_header_and_text() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert_eq!(
        fx.text(
            &item,
            "(BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
            plain()
        )
        .await,
        format!(
            "* 1 FETCH (BODY[] {{849}}\r\n{MIXED} BODY[HEADER] {{232}}\r\n{} \
             BODY[TEXT] {{617}}\r\n{})\r\n",
            raw(0..232),
            raw(232..849)
        )
    );
    assert_eq!(
        fx.text(&item, "(RFC822 RFC822.HEADER RFC822.TEXT)", plain())
            .await,
        format!(
            "* 1 FETCH (RFC822 {{849}}\r\n{MIXED} RFC822.HEADER {{232}}\r\n{} \
             RFC822.TEXT {{617}}\r\n{})\r\n",
            raw(0..232),
            raw(232..849)
        )
    );
}

#[tokio::test]
async fn numeric_sections_mime_and_the_embedded_message() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let items = "(BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.MIME] \
                 BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[3] BODY.PEEK[4])";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        format!(
            "* 1 FETCH (BODY[1] {{5}}\r\nHello BODY[1.MIME] {{65}}\r\n{} \
             BODY[2] {{87}}\r\n{} BODY[2.MIME] {{64}}\r\n{} BODY[2.HEADER] {{77}}\r\n{} \
             BODY[2.TEXT] {{10}}\r\nInner body BODY[2.1] {{10}}\r\nInner body \
             BODY[3] {{8}}\r\nAAECAwQ= BODY[4] {{25}}\r\n{})\r\n",
            raw(248..313),
            raw(390..477),
            raw(326..390),
            raw(390..467),
            raw(814..839),
        )
    );
}

#[tokio::test]
async fn sections_that_do_not_exist_are_empty_strings() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    // No part 5; part 1 is not a message (no HEADER/TEXT) and has no subparts; 2.2 does not
    // exist inside the single-part forwarded message.
    let items = "(BODY.PEEK[5] BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1.1] \
                 BODY.PEEK[2.2] BODY.PEEK[3.HEADER.FIELDS (From)] BINARY.PEEK[9] BINARY.SIZE[9])";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        "* 1 FETCH (BODY[5] \"\" BODY[1.HEADER] \"\" BODY[1.TEXT] \"\" BODY[1.1] \"\" \
         BODY[2.2] \"\" BODY[3.HEADER.FIELDS (From)] \"\" BINARY[9] \"\" BINARY.SIZE[9] 0)\r\n"
    );
}

#[tokio::test]
async fn binary_decodes_base64_to_literal8_and_quoted_printable() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let out = fx
        .fetch(
            &item,
            "(BINARY.PEEK[3] BINARY.SIZE[3] BINARY.PEEK[4] BINARY.SIZE[4] BINARY.PEEK[4]<2.3> \
             BINARY.SIZE[2] BINARY.PEEK[1])",
            plain(),
        )
        .await
        .unwrap();
    // The base64 part decodes to bytes 0..=4: NUL, so a literal8 (RFC 3516 §4.3). The
    // quoted-printable line "caf=C3=A9 soft=" + " break  " loses its soft break and the
    // trailing spaces.
    let mut expected =
        b"* 1 FETCH (BINARY[3] ~{5}\r\n\x00\x01\x02\x03\x04 BINARY.SIZE[3] 5 ".to_vec();
    expected.extend_from_slice(
        "BINARY[4] {16}\r\ncafé soft break BINARY.SIZE[4] 16 BINARY[4]<2> {3}\r\nfé \
         BINARY.SIZE[2] 87 BINARY[1] {5}\r\nHello)\r\n"
            .as_bytes(),
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(out, expected);
}

#[tokio::test]
async fn header_fields_and_not_match_names_case_insensitively() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let items = "(BODY.PEEK[HEADER.FIELDS (subject FROM)] \
                 BODY.PEEK[HEADER.FIELDS.NOT (subject From content-type MESSAGE-ID)] \
                 BODY.PEEK[2.HEADER.FIELDS (SUBJECT)])";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        "* 1 FETCH (BODY[HEADER.FIELDS (subject FROM)] {69}\r\n\
         From: \"Alice Q. Example\" <alice@example.org>\r\nSubject: Mixed test\r\n\r\n \
         BODY[HEADER.FIELDS.NOT (subject From content-type MESSAGE-ID)] {86}\r\n\
         To: Bob <bob@example.net>\r\nDate: Mon, 2 Feb 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\r\n \
         BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Inner\r\n\r\n)\r\n"
    );
}

#[tokio::test]
async fn partial_fetches_report_their_origin() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let items = "(BODY.PEEK[]<0.4> BODY.PEEK[1]<1.3> BODY.PEEK[HEADER.FIELDS (To)]<4.100>)";
    assert_eq!(
        fx.text(&item, items, plain()).await,
        "* 1 FETCH (BODY[]<0> {4}\r\nFrom BODY[1]<1> {3}\r\nell \
         BODY[HEADER.FIELDS (To)]<4> {25}\r\nBob <bob@example.net>\r\n\r\n)\r\n"
    );
}

#[tokio::test]
async fn modseq_and_uid_are_added_when_the_session_needs_them() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let opts = FetchOptions {
        uid: true,
        modseq: true,
        utf8: false,
    };
    let modseq = item.entry.modseq;
    assert!(modseq > 0);
    assert_eq!(
        fx.text(&item, "FLAGS", opts).await,
        format!("* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged $Forwarded) MODSEQ ({modseq}))\r\n")
    );
    // Requested explicitly: not repeated, and kept where the client put them.
    assert_eq!(
        fx.text(&item, "(MODSEQ UID)", opts).await,
        format!("* 1 FETCH (MODSEQ ({modseq}) UID 1)\r\n")
    );
}

#[tokio::test]
async fn emailid_threadid_and_savedate_are_spliced_in() {
    let fx = Fixture::new().await;
    let mut item = mixed(&fx).await;
    item.entry.save_date = super::support::INTERNAL_DATE + 61;
    let ext = vec![FetchExt::EmailId, FetchExt::ThreadId, FetchExt::SaveDate];
    let out = fx
        .fetch_ext(&item, "(UID BODY.PEEK[1])", ext.clone(), plain())
        .await
        .unwrap();
    let id = &item.record.id;
    // A message that starts its own thread has its own id as the thread id.
    assert_eq!(item.record.thread_id, *id);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "* 1 FETCH (UID 1 BODY[1] {{5}}\r\nHello EMAILID ({id}) THREADID ({id}) \
             SAVEDATE \"02-Feb-2026 10:01:01 +0000\")\r\n"
        )
    );
    item.record.thread_id.clear();
    assert_eq!(
        String::from_utf8(fx.fetch_ext(&item, "()", ext, plain()).await.unwrap()).unwrap(),
        format!(
            "* 1 FETCH (EMAILID ({id}) THREADID NIL SAVEDATE \"02-Feb-2026 10:01:01 +0000\")\r\n"
        )
    );
}

#[tokio::test]
async fn macros_expand_to_their_items() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let fast = "* 1 FETCH (FLAGS (\\Seen \\Flagged $Forwarded) \
                INTERNALDATE \"02-Feb-2026 10:00:00 +0000\" RFC822.SIZE 849";
    assert_eq!(
        fx.text(&item, "FAST", plain()).await,
        format!("{fast})\r\n")
    );
    assert_eq!(
        fx.text(&item, "ALL", plain()).await,
        format!("{fast} ENVELOPE {})\r\n", envelope())
    );
    let full = fx.text(&item, "FULL", plain()).await;
    assert!(full.starts_with(&format!("{fast} ENVELOPE {} BODY ((\"TEXT\"", envelope())));
}

#[test]
fn request_classifies_its_items() {
    let req = request("(FLAGS BODY.PEEK[] BINARY.SIZE[] RFC822.SIZE)", Vec::new());
    assert!(!req.needs_summary() && !req.sets_seen() && req.has_flags());
    let req = request("(BODY[])", Vec::new());
    assert!(!req.needs_summary() && req.sets_seen() && !req.has_flags());
    assert!(req.with_flags().has_flags());
    for summary_item in [
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "BODY.PEEK[TEXT]",
        "RFC822.HEADER",
        "BINARY.SIZE[1]",
    ] {
        assert!(
            request(summary_item, Vec::new()).needs_summary(),
            "{summary_item}"
        );
    }
    for seen_item in ["RFC822", "RFC822.TEXT", "BODY[1]", "BINARY[1]"] {
        assert!(request(seen_item, Vec::new()).sets_seen(), "{seen_item}");
    }
    for peek_item in [
        "RFC822.HEADER",
        "BODY.PEEK[1]",
        "BINARY.PEEK[1]",
        "BINARY.SIZE[1]",
    ] {
        assert!(!request(peek_item, Vec::new()).sets_seen(), "{peek_item}");
    }
}

#[tokio::test]
async fn duplicate_items_are_answered_once() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert_eq!(
        fx.text(&item, "(UID BODY[1] UID BODY.PEEK[1] RFC822.SIZE)", plain())
            .await,
        "* 1 FETCH (UID 1 BODY[1] {5}\r\nHello RFC822.SIZE 849)\r\n"
    );
}

#[tokio::test]
async fn responses_with_patched_literals_reparse_with_imap_codec() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    let out = fx
        .fetch(
            &item,
            "(UID BODY.PEEK[1] BODY.PEEK[5] BINARY.PEEK[3] BINARY.PEEK[4] RFC822.SIZE)",
            plain(),
        )
        .await
        .unwrap();
    let (rest, response) = ResponseCodec::default()
        .decode(&out)
        .expect("a valid response");
    assert!(rest.is_empty());
    let Response::Data(Data::Fetch { items, .. }) = response else {
        panic!("not a FETCH: {response:?}");
    };
    let data: Vec<Vec<u8>> = items
        .into_inner()
        .into_iter()
        .filter_map(|item| match item {
            MessageDataItem::BodyExt { data, .. } => data.into_option().map(|d| d.into_owned()),
            MessageDataItem::Binary { value, .. } => Some(match value {
                imap_types::core::NString8::NString(s) => s.into_option()?.into_owned(),
                imap_types::core::NString8::Literal8(l) => l.data.into_owned(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        data,
        [
            b"Hello".to_vec(),
            Vec::new(),
            vec![0, 1, 2, 3, 4],
            "café soft break".as_bytes().to_vec()
        ]
    );
}

#[tokio::test]
async fn an_empty_item_list_writes_nothing() {
    let fx = Fixture::new().await;
    let item = mixed(&fx).await;
    assert!(fx.fetch(&item, "()", plain()).await.unwrap().is_empty());
}

#[test]
fn request_loads_only_what_its_items_read() {
    let envelope_list = request("(FLAGS ENVELOPE)", Vec::new());
    assert!(envelope_list.needs_only_envelope());
    assert_eq!(
        envelope_list.record_parts(),
        RecordParts {
            summary: false,
            envelope: true,
            inline_blob: false
        }
    );
    for item in [
        "(ENVELOPE BODYSTRUCTURE)",
        "(ENVELOPE BODY.PEEK[1])",
        "(FLAGS)",
    ] {
        assert!(!request(item, Vec::new()).needs_only_envelope(), "{item}");
    }
    for item in ["BODY.PEEK[]", "RFC822", "BINARY.SIZE[]", "RFC822.HEADER"] {
        assert!(
            request(item, Vec::new()).record_parts().inline_blob,
            "{item}"
        );
    }
    for item in ["(FLAGS ENVELOPE)", "BODYSTRUCTURE", "(UID RFC822.SIZE)"] {
        assert!(
            !request(item, Vec::new()).record_parts().inline_blob,
            "{item}"
        );
    }
}
