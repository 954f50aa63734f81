//! ENVELOPE strings: NIL fields, groups, quoted specials, and non-ASCII with and without
//! UTF8=ACCEPT.

use postkeep_imap_proto::ext::FetchExt;
use postkeep_store::StoreError;

use super::support::*;
use crate::fetch::FetchError;

#[tokio::test]
async fn absent_fields_are_nil_and_sender_defaults_to_from() {
    let fx = Fixture::new().await;
    let item = fx
        .append(b"From: solo@example.org\r\n\r\nbody\r\n", &[], &[])
        .await;
    let from = r#"((NIL NIL "solo" "example.org"))"#;
    assert_eq!(
        fx.text(&item, "ENVELOPE", plain()).await,
        format!("* 1 FETCH (ENVELOPE (NIL NIL {from} {from} {from} NIL NIL NIL NIL NIL))\r\n")
    );
}

const GROUPS: &str = "From: \"Doe, \\\"JD\\\" \\\\ Jr.\" <john@example.com>\r\n\
To: Friends: anne@example.com, \"B. B.\" <bb@example.net>;, solo@example.org\r\n\
Cc: undisclosed-recipients:;\r\n\
Subject: \"quoted\" \\ subject\r\n\
In-Reply-To: <parent@example.com>\r\n\
Message-ID: <child@example.com>\r\n\
\r\n\
body\r\n";

#[tokio::test]
async fn groups_and_quoted_specials() {
    let fx = Fixture::new().await;
    let item = fx.append(GROUPS.as_bytes(), &[], &[]).await;
    // The display name `Doe, "JD" \ Jr.` needs its quotes and backslash escaped again.
    let from = r#"(("Doe, \"JD\" \\ Jr." NIL "john" "example.com"))"#;
    let to = r#"((NIL NIL "Friends" NIL)(NIL NIL "anne" "example.com")("B. B." NIL "bb" "example.net")(NIL NIL NIL NIL)(NIL NIL "solo" "example.org"))"#;
    let cc = r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))"#;
    assert_eq!(
        fx.text(&item, "ENVELOPE", plain()).await,
        format!(
            "* 1 FETCH (ENVELOPE (NIL \"\\\"quoted\\\" \\\\ subject\" {from} {from} {from} {to} \
             {cc} NIL \"<parent@example.com>\" \"<child@example.com>\"))\r\n"
        )
    );
}

const NON_ASCII: &str = "From: =?UTF-8?Q?Jos=C3=A9_M=C3=BCller?= <jose@example.es>\r\n\
To: Plain <plain@example.org>\r\n\
Subject: Grüße\r\n\
\r\n\
body\r\n";

#[tokio::test]
async fn non_ascii_names_are_utf8_when_accepted_else_encoded_words() {
    let fx = Fixture::new().await;
    let item = fx.append(NON_ASCII.as_bytes(), &[], &[]).await;
    let to = r#"(("Plain" NIL "plain" "example.org"))"#;
    // UTF8=ACCEPT: UTF-8 in quoted strings (RFC 6855 §3).
    let jose = r#"(("José Müller" NIL "jose" "example.es"))"#;
    assert_eq!(
        fx.text(&item, "ENVELOPE", utf8()).await,
        format!(
            "* 1 FETCH (ENVELOPE (NIL \"Grüße\" {jose} {jose} {jose} {to} NIL NIL NIL NIL))\r\n"
        )
    );
    // Without it: the name as an RFC 2047 encoded-word, the raw 8-bit subject in a literal.
    let jose = r#"(("=?UTF-8?B?Sm9zw6kgTcO8bGxlcg==?=" NIL "jose" "example.es"))"#;
    assert_eq!(
        fx.text(&item, "ENVELOPE", plain()).await,
        format!(
            "* 1 FETCH (ENVELOPE (NIL {{7}}\r\nGrüße {jose} {jose} {jose} {to} NIL NIL NIL NIL))\r\n"
        )
    );
}

#[tokio::test]
async fn long_non_ascii_names_split_into_several_encoded_words() {
    let fx = Fixture::new().await;
    // 30 two-octet characters: 60 octets, more than one encoded-word holds.
    let name = "é".repeat(30);
    let raw = format!("From: \"{name}\" <long@example.org>\r\n\r\nbody\r\n");
    let item = fx.append(raw.as_bytes(), &[], &[]).await;
    let out = fx.text(&item, "ENVELOPE", plain()).await;
    let first = format!("=?UTF-8?B?{}?=", base64_of(&"é".repeat(22)));
    let second = format!("=?UTF-8?B?{}?=", base64_of(&"é".repeat(8)));
    assert!(first.len() <= 75, "RFC 2047 §2 limit");
    let from = format!(r#"(("{first} {second}" NIL "long" "example.org"))"#);
    assert_eq!(
        out,
        format!("* 1 FETCH (ENVELOPE (NIL NIL {from} {from} {from} NIL NIL NIL NIL NIL))\r\n")
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn envelope_rendered_at_ingest_is_what_the_summary_gives_messages_stored_before_it() {
    let fx = Fixture::new().await;
    let long_name = format!(
        "From: \"{}\" <long@example.org>\r\n\r\nbody\r\n",
        "é".repeat(30)
    );
    for raw in [GROUPS, NON_ASCII, long_name.as_str(), "Subject: x\r\n\r\n"] {
        let item = fx.append(raw.as_bytes(), &[], &[]).await;
        assert!(item.record.sealed_envelope.is_some(), "rendered at ingest");
        let mut stored_before = item.clone();
        stored_before.record.sealed_envelope = None;
        for opts in [plain(), utf8()] {
            assert_eq!(
                fx.text(&item, "ENVELOPE", opts).await,
                fx.text(&stored_before, "ENVELOPE", opts).await,
                "{raw}"
            );
        }
    }
}

#[tokio::test]
async fn rendered_envelope_goes_with_the_other_items_of_the_response() {
    let fx = Fixture::new().await;
    let item = fx.append(NON_ASCII.as_bytes(), &[], &[]).await;
    let out = fx
        .fetch_ext(&item, "(FLAGS ENVELOPE)", vec![FetchExt::EmailId], plain())
        .await
        .expect("fetch");
    let jose = r#"(("=?UTF-8?B?Sm9zw6kgTcO8bGxlcg==?=" NIL "jose" "example.es"))"#;
    let to = r#"(("Plain" NIL "plain" "example.org"))"#;
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!(
            "* 1 FETCH (FLAGS () ENVELOPE (NIL {{7}}\r\nGrüße {jose} {jose} {jose} {to} NIL NIL \
             NIL NIL) EMAILID ({}))\r\n",
            item.record.id
        )
    );
}

#[tokio::test]
async fn rendered_envelope_of_another_message_is_refused() {
    let fx = Fixture::new().await;
    let first = fx.append(GROUPS.as_bytes(), &[], &[]).await;
    let mut second = fx.append(NON_ASCII.as_bytes(), &[], &[]).await;
    // Sealed for the first message: opening it as the second's fails authentication.
    second.record.sealed_envelope = first.record.sealed_envelope.clone();
    assert!(matches!(
        fx.fetch(&second, "ENVELOPE", plain()).await,
        Err(FetchError::Store(StoreError::Sealed(_)))
    ));
}
