//! SEARCH, SORT and THREAD over a real (encrypted) store holding crafted messages.

mod common;

use std::sync::atomic::AtomicBool;

use chrono::{NaiveDate, TimeZone, Utc};
use postkeep_search::{
    search, sort, thread, DateCmp, Query, SearchError, SortCriterion, SortKey, ThreadAlgorithm,
    ThreadNode,
};
use postkeep_store::{EntryRecord, Flag, FlagChange, FlagOp, RecordParts};

use common::Mailbox;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// Unix seconds at noon UTC of a day.
fn noon(y: i32, m: u32, d: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid time")
        .timestamp()
}

fn crlf(lines: &[&str]) -> Vec<u8> {
    let mut raw = lines.join("\r\n");
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// The fixture messages, in sequence order (index = sequence number - 1), with their internal
/// date and flags. Comments say what each one is for.
fn fixtures() -> Vec<(Vec<u8>, i64, Vec<Flag>)> {
    let big_body = "lorem ipsum dolor sit amet\r\n".repeat(2800) + "needleinlarge\r\n";
    vec![
        // 0: plain text; the root of a thread.
        (
            crlf(&[
                "From: Alice Example <alice@example.com>",
                "To: bob@example.org",
                "Cc: Zed <zed@example.net>",
                "Subject: Quarterly report",
                "Date: Mon, 1 Jan 2024 10:00:00 +0000",
                "Message-ID: <m0@test>",
                "",
                "The quarterly numbers look fine.",
            ]),
            noon(2024, 1, 2),
            vec![Flag::Seen],
        ),
        // 1: multipart/alternative, base64 UTF-8 text and QP html; encoded-word subject and
        // names.
        (
            crlf(&[
                "From: =?iso-8859-1?q?J=F6rg_M=FCller?= <joerg@example.de>",
                "To: =?utf-8?q?=C3=84nne?= <anne@example.org>",
                "Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=",
                "Date: Sat, 10 Feb 2024 08:00:00 +0100",
                "MIME-Version: 1.0",
                "Content-Type: multipart/alternative; boundary=\"alt\"",
                "",
                "--alt",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: base64",
                "",
                "V2lyIGVzc2VuIMOEcGZlbCB1bmQgQmlybmVuIGltIFN0cmHDn2VuY2Fmw6kuDQo=",
                "--alt",
                "Content-Type: text/html; charset=utf-8",
                "Content-Transfer-Encoding: quoted-printable",
                "",
                "<p>Gr=C3=BC=C3=9Fe aus <i>K=C3=B6ln</i></p>",
                "--alt--",
            ]),
            noon(2024, 2, 11),
            vec![Flag::Seen, Flag::Flagged],
        ),
        // 2: multipart/mixed, QP ISO-8859-1 text and a binary attachment; Date west of UTC.
        (
            crlf(&[
                "From: carol@example.net",
                "To: Bob Builder <bob@example.org>",
                "Subject: =?iso-8859-1?q?Caf=E9_menu?=",
                "Date: Sun, 3 Mar 2024 23:30:00 -0200",
                "MIME-Version: 1.0",
                "Content-Type: multipart/mixed; boundary=mix",
                "",
                "--mix",
                "Content-Type: text/plain; charset=iso-8859-1",
                "Content-Transfer-Encoding: quoted-printable",
                "",
                "Caf=E9 cr=E8me br=FBl=E9e",
                "--mix",
                "Content-Type: application/octet-stream; name=blob.bin",
                "Content-Transfer-Encoding: base64",
                "",
                "AAFzZWNyZXRhdHRhY2htZW50d29yZAID",
                "--mix--",
            ]),
            noon(2024, 3, 5),
            vec![Flag::Deleted],
        ),
        // 3: html only; arrived long after it was sent.
        (
            crlf(&[
                "From: News <news@shop.example>",
                "To: alice@example.com",
                "Subject: Newsletter",
                "Date: Mon, 15 Jan 2024 09:00:00 +0000",
                "Content-Type: text/html; charset=utf-8",
                "",
                "<html><head><style>.hidden { color: red }</style></head>",
                "<body><p>Visit our <b>SpecialOffer</b> today</p></body></html>",
            ]),
            noon(2024, 6, 1),
            vec![],
        ),
        // 4: no Date field.
        (
            crlf(&[
                "From: dave@example.net",
                "To: alice@example.com",
                "Subject: No date here",
                "",
                "Undated words.",
            ]),
            noon(2023, 12, 31),
            vec![],
        ),
        // 5: groups, one empty.
        (
            crlf(&[
                "From: Zoe Bob <bob@example.org>",
                "To: Undisclosed recipients:;",
                "Cc: Team: carol@example.net, dave@example.net;",
                "Subject: Team update",
                "Date: Sat, 20 Jan 2024 10:00:00 +0000",
                "",
                "Status.",
            ]),
            noon(2024, 1, 21),
            vec![],
        ),
        // 6: Bcc.
        (
            crlf(&[
                "From: alice@example.com",
                "To: bob@example.org",
                "Bcc: Eve Secret <eve@example.com>",
                "Subject: Surprise party",
                "Date: Thu, 25 Jan 2024 10:00:00 +0000",
                "",
                "Do not tell Eve.",
            ]),
            noon(2024, 1, 26),
            vec![],
        ),
        // 7: a reply to 0.
        (
            crlf(&[
                "From: Bob <bob@example.org>",
                "To: alice@example.com",
                "Subject: Re: Quarterly report",
                "Date: Wed, 3 Jan 2024 10:00:00 +0000",
                "Message-ID: <m7@test>",
                "In-Reply-To: <m0@test>",
                "References: <m0@test>",
                "",
                "Agreed.",
            ]),
            noon(2024, 1, 3),
            vec![],
        ),
        // 8: custom fields, one encoded, one repeated.
        (
            crlf(&[
                "From: frank@example.com",
                "To: alice@example.com",
                "Subject: Headers",
                "Date: Fri, 5 Jan 2024 10:00:00 +0000",
                "X-Custom-Header: =?utf-8?q?Sch=C3=B6n?= value",
                "X-Tag: one",
                "X-Tag: two",
                "",
                "Plain.",
            ]),
            noon(2024, 1, 5),
            vec![],
        ),
        // 9: large enough to live in the blob store, not the row.
        (
            format!(
                "From: grace@example.com\r\nTo: alice@example.com\r\nSubject: Big one\r\n\
                 Date: Sat, 6 Jan 2024 10:00:00 +0000\r\n\r\n{big_body}"
            )
            .into_bytes(),
            noon(2024, 1, 6),
            vec![],
        ),
        // 10: a forwarded message/rfc822.
        (
            crlf(&[
                "From: heidi@example.com",
                "To: alice@example.com",
                "Subject: Fwd: inner",
                "Date: Sun, 7 Jan 2024 10:00:00 +0000",
                "MIME-Version: 1.0",
                "Content-Type: multipart/mixed; boundary=outer",
                "",
                "--outer",
                "Content-Type: text/plain",
                "",
                "See below.",
                "--outer",
                "Content-Type: message/rfc822",
                "",
                "From: someone@else.example",
                "Subject: inner subject",
                "X-Inner-Field: deepvalue",
                "",
                "The innerbodyword is here.",
                "--outer--",
            ]),
            noon(2024, 1, 7),
            vec![],
        ),
        // 11: a reply to 0 through a parent that is not in the mailbox.
        (
            crlf(&[
                "From: ivan@example.com",
                "To: alice@example.com",
                "Subject: Re: Quarterly report",
                "Date: Thu, 4 Jan 2024 10:00:00 +0000",
                "Message-ID: <m11@test>",
                "In-Reply-To: <missing@test>",
                "References: <m0@test> <missing@test>",
                "",
                "Late reply.",
            ]),
            noon(2024, 1, 4),
            vec![],
        ),
        // 12: bare LF line ends; same base subject as 13 and 14.
        (
            b"From: judy@example.com\nTo: alice@example.com\nSubject: Lunch plans\n\
              Date: Mon, 8 Jan 2024 10:00:00 +0000\n\nNoon at the \xc3\xa4pfelhof?\n"
                .to_vec(),
            noon(2024, 1, 8),
            vec![],
        ),
        // 13: a forward of 12 by subject only.
        (
            crlf(&[
                "From: ken@example.com",
                "To: alice@example.com",
                "Subject: Fwd: Lunch plans",
                "Date: Tue, 9 Jan 2024 10:00:00 +0000",
                "",
                "Forwarding.",
            ]),
            noon(2024, 1, 9),
            vec![],
        ),
        // 14: same base subject behind a list tag, not a reply.
        (
            crlf(&[
                "From: leo@example.com",
                "To: alice@example.com",
                "Subject: [team] lunch plans",
                "Date: Wed, 10 Jan 2024 10:00:00 +0000",
                "",
                "Me too. \u{039f}\u{0394}\u{039f}\u{03a3}",
            ]),
            noon(2024, 1, 10),
            vec![],
        ),
    ]
}

async fn add_keyword(mailbox: &Mailbox, uid: u32, keyword: &str) {
    mailbox
        .store
        .update_flags(&FlagChange {
            mailbox_id: mailbox.mailbox_id,
            uids: &[uid],
            op: FlagOp::Add,
            flags: 0,
            keywords: &[keyword.to_string()],
            unchanged_since: None,
        })
        .await
        .expect("store keyword");
}

struct Fixture {
    mailbox: Mailbox,
    items: Vec<EntryRecord>,
}

impl Fixture {
    async fn new() -> Self {
        let mailbox = Mailbox::new().await;
        for (raw, date, flags) in fixtures() {
            mailbox.append(raw, date, &flags).await;
        }
        let items = mailbox.items().await;
        add_keyword(&mailbox, items[3].entry.uid, "$Forwarded").await;
        add_keyword(&mailbox, items[4].entry.uid, "Project-X").await;
        let items = mailbox.items().await;
        assert_eq!(items.len(), 15);
        Self { mailbox, items }
    }

    async fn search(&self, query: &Query) -> Vec<usize> {
        let cancel = AtomicBool::new(false);
        search(&self.mailbox.store, &self.items, query, &cancel)
            .await
            .unwrap_or_else(|e| panic!("{query:?}: {e}"))
    }

    async fn sort(&self, matched: &[usize], key: SortKey, reverse: bool) -> Vec<usize> {
        sort(
            &self.mailbox.store,
            &self.items,
            matched,
            &[SortCriterion { key, reverse }],
        )
        .await
        .expect("sort")
    }

    async fn thread(&self, algorithm: ThreadAlgorithm) -> Vec<ThreadNode> {
        let all: Vec<usize> = (0..self.items.len()).collect();
        thread(&self.mailbox.store, &self.items, &all, algorithm)
            .await
            .expect("thread")
    }
}

fn s(text: &str) -> String {
    text.to_string()
}

fn not(query: Query) -> Query {
    Query::Not(Box::new(query))
}

fn or(a: Query, b: Query) -> Query {
    Query::Or(Box::new(a), Box::new(b))
}

/// Every index except the given ones.
fn all_but(except: &[usize]) -> Vec<usize> {
    (0..15).filter(|i| !except.contains(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_key_matches_what_rfc_9051_says() {
    let fx = Fixture::new().await;
    let uid = |i: usize| fx.items[i].entry.uid;
    let cases: Vec<(Query, Vec<usize>)> = vec![
        (Query::All, all_but(&[])),
        (
            Query::Uids(vec![uid(2)..=uid(4), uid(9)..=uid(9)]),
            vec![2, 3, 4, 9],
        ),
        (Query::Uids(vec![]), vec![]),
        (Query::HasFlags(Flag::Seen.bit()), vec![0, 1]),
        (
            Query::HasFlags(Flag::Seen.bit() | Flag::Flagged.bit()),
            vec![1],
        ),
        (Query::LacksFlags(Flag::Seen.bit()), all_but(&[0, 1])),
        (Query::HasFlags(Flag::Deleted.bit()), vec![2]),
        // Keywords compare case-insensitively (RFC 9051 §2.3.2).
        (Query::Keyword(s("$forwarded")), vec![3]),
        (Query::Keyword(s("PROJECT-x")), vec![4]),
        (Query::NoKeyword(s("$Forwarded")), all_but(&[3])),
        (Query::Received(DateCmp::Before(day(2024, 1, 2))), vec![4]),
        (Query::Received(DateCmp::On(day(2024, 1, 2))), vec![0]),
        (Query::Received(DateCmp::Since(day(2024, 3, 5))), vec![2, 3]),
        // The Date of 2 is 3 March at -0200: 4 March in UTC.
        (Query::Sent(DateCmp::On(day(2024, 3, 4))), vec![2]),
        (Query::Sent(DateCmp::On(day(2024, 3, 3))), vec![]),
        (Query::Sent(DateCmp::Since(day(2024, 2, 10))), vec![1, 2]),
        // Without a Date field, 4 matches no SENT* key.
        (Query::Sent(DateCmp::Before(day(2024, 1, 2))), vec![0]),
        (
            not(or(
                Query::Sent(DateCmp::Before(day(2100, 1, 1))),
                Query::Sent(DateCmp::Since(day(1970, 1, 1))),
            )),
            vec![4],
        ),
        (Query::Larger(60_000), vec![9]),
        (Query::Smaller(60_000), all_but(&[9])),
        (Query::EmailId(fx.items[6].record.id.clone()), vec![6]),
        (Query::EmailId(s("nope")), vec![]),
        (
            Query::ThreadId(fx.items[0].record.thread_id.clone()),
            vec![0, 7, 11],
        ),
        // Address fields: decoded names, addresses, groups; non-ASCII case-insensitive.
        (Query::From(s("alice")), vec![0, 6]),
        (Query::From(s("EXAMPLE.NET")), vec![2, 4]),
        (Query::From(s("MÜLLER")), vec![1]),
        (Query::From(s("ö")), vec![1]),
        (Query::From(s("example <alice@")), vec![0]),
        (Query::To(s("änne")), vec![1]),
        (Query::To(s("undisclosed")), vec![5]),
        (Query::Cc(s("dave@example.net")), vec![5]),
        (Query::Cc(s("zed")), vec![0]),
        (Query::Bcc(s("eve secret")), vec![6]),
        (Query::Bcc(s("alice")), vec![]),
        // SUBJECT: decoded, substring inside a word.
        (Query::Subject(s("arterly")), vec![0, 7, 11]),
        (Query::Subject(s("KÖLN")), vec![1]),
        (Query::Subject(s("café")), vec![2]),
        (Query::Subject(s("re: ")), vec![7, 11]),
        // HEADER: decoded values, every occurrence, "" = the field exists.
        (Query::Header(s("x-custom-header"), s("SCHÖN")), vec![8]),
        (Query::Header(s("X-Tag"), s("two")), vec![8]),
        (Query::Header(s("X-Tag"), s("")), vec![8]),
        (Query::Header(s("In-Reply-To"), s("")), vec![7, 11]),
        (Query::Header(s("Message-ID"), s("m1")), vec![11]),
        (Query::Header(s("Subject"), s("köln")), vec![1]),
        // The embedded message's header is not the message's header.
        (Query::Header(s("X-Inner-Field"), s("")), vec![]),
        // BODY: base64 UTF-8, QP Latin-1, html as text, embedded message, large blob.
        (Query::Body(s("ÄPFEL")), vec![1, 12]),
        (Query::Body(s("straßencafé")), vec![1]),
        (Query::Body(s("crème brûlée")), vec![2]),
        (Query::Body(s("rème")), vec![2]),
        (Query::Body(s("secretattachmentword")), vec![]),
        (Query::Body(s("specialoffer today")), vec![3]),
        (Query::Body(s("<b>")), vec![]),
        (Query::Body(s("hidden")), vec![]),
        (Query::Body(s("innerbodyword")), vec![10]),
        (Query::Body(s("needleinlarge")), vec![9]),
        (Query::Body(s("quarterly report")), vec![]),
        (Query::Body(s("οδοσ")), vec![14]),
        (Query::Body(s("")), all_but(&[])),
        // TEXT: header text (names too, MIME and embedded headers) and body.
        (Query::Text(s("quarterly report")), vec![0, 7, 11]),
        (Query::Text(s("x-custom-header: schön")), vec![8]),
        (Query::Text(s("deepvalue")), vec![10]),
        (Query::Text(s("quoted-printable")), vec![1, 2]),
        (Query::Text(s("specialoffer")), vec![3]),
        // Nesting.
        (
            Query::And(vec![
                Query::HasFlags(Flag::Seen.bit()),
                Query::LacksFlags(Flag::Flagged.bit()),
            ]),
            vec![0],
        ),
        (
            or(Query::Body(s("äpfel")), Query::From(s("alice"))),
            vec![0, 1, 6, 12],
        ),
        (
            not(or(Query::Body(s("äpfel")), Query::From(s("alice")))),
            all_but(&[0, 1, 6, 12]),
        ),
        (
            Query::And(vec![
                Query::Body(s("äpfel")),
                not(Query::HasFlags(Flag::Seen.bit())),
            ]),
            vec![12],
        ),
        (
            Query::And(vec![
                Query::Subject(s("lunch")),
                or(
                    Query::From(s("ken")),
                    Query::Header(s("Subject"), s("[team]")),
                ),
                not(Query::Text(s("forwarding"))),
            ]),
            vec![14],
        ),
        (Query::And(vec![]), all_but(&[])),
    ];
    for (query, expected) in cases {
        assert_eq!(fx.search(&query).await, expected, "{query:?}");
    }
}

#[tokio::test]
async fn saved_and_modseq_keys_use_the_entry() {
    let fx = Fixture::new().await;
    let today = Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    assert_eq!(
        fx.search(&Query::Saved(DateCmp::Since(yesterday))).await,
        all_but(&[])
    );
    assert_eq!(
        fx.search(&Query::Saved(DateCmp::Before(yesterday))).await,
        Vec::<usize>::new()
    );
    assert_eq!(
        fx.search(&Query::Saved(DateCmp::Before(tomorrow.succ_opt().unwrap())))
            .await,
        all_but(&[])
    );
    // The keywords were stored after the appends: those two entries have the highest MODSEQs.
    let highest = fx.items.iter().map(|i| i.entry.modseq).max().unwrap();
    let second = fx.items[3].entry.modseq.min(fx.items[4].entry.modseq);
    assert!(second > fx.items[14].entry.modseq);
    assert_eq!(fx.search(&Query::ModSeqAtLeast(second)).await, vec![3, 4]);
    assert!(fx
        .search(&Query::ModSeqAtLeast(highest + 1))
        .await
        .is_empty());
}

#[tokio::test]
async fn database_keys_decide_before_any_summary_is_opened() {
    let fx = Fixture::new().await;
    // Rows without their sealed summary: opening one fails, so any success below proves the
    // row alone decided (cheapest first, And/Or short-circuit).
    let all: [std::ops::RangeInclusive<u32>; 1] = [1..=u32::MAX];
    let bare = fx
        .mailbox
        .store
        .entry_records(fx.mailbox.mailbox_id, &all, RecordParts::METADATA)
        .await
        .unwrap();
    let cancel = AtomicBool::new(false);
    let run = |query: Query| {
        let (store, bare, cancel) = (&fx.mailbox.store, &bare, &cancel);
        async move { search(store, bare, &query, cancel).await }
    };
    let seen = Query::HasFlags(Flag::Seen.bit());
    let decided = [
        (
            Query::And(vec![Query::Uids(vec![]), Query::Body(s("x"))]),
            vec![],
        ),
        (or(Query::All, Query::From(s("x"))), all_but(&[])),
        (
            Query::And(vec![seen.clone(), or(seen.clone(), Query::Text(s("x")))]),
            vec![0, 1],
        ),
    ];
    for (query, expected) in decided {
        assert_eq!(run(query.clone()).await.unwrap(), expected, "{query:?}");
    }
    let opened = run(Query::And(vec![seen, Query::From(s("x"))])).await;
    assert!(matches!(opened, Err(SearchError::Store(_))), "{opened:?}");
}

#[tokio::test]
async fn a_set_cancel_flag_stops_the_search() {
    let fx = Fixture::new().await;
    let cancel = AtomicBool::new(true);
    for query in [Query::All, Query::Body(s("words"))] {
        let outcome = search(&fx.mailbox.store, &fx.items, &query, &cancel).await;
        assert!(
            matches!(outcome, Err(SearchError::Cancelled)),
            "{outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_from_another_task_stops_a_running_body_search() {
    let mailbox = Mailbox::new().await;
    let body = "word ".repeat(200_000);
    for n in 0..40 {
        let raw = format!("Subject: {n}\r\n\r\n{body}\r\n").into_bytes();
        mailbox.append(raw, 0, &[]).await;
    }
    let items = mailbox.items().await;
    let query = Query::Body(s("absent"));
    // Calibrate: how long the whole search takes here, then cancel a quarter of the way in.
    let started = std::time::Instant::now();
    let uncancelled = search(&mailbox.store, &items, &query, &AtomicBool::new(false)).await;
    assert!(uncancelled.unwrap().is_empty());
    let whole = started.elapsed();
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&cancel);
    tokio::spawn(async move {
        tokio::time::sleep(whole / 4).await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let outcome = search(&mailbox.store, &items, &query, &cancel).await;
    assert!(
        matches!(outcome, Err(SearchError::Cancelled)),
        "{outcome:?} (whole search: {whole:?})"
    );
}

#[tokio::test]
async fn an_expunged_message_simply_does_not_match() {
    let fx = Fixture::new().await;
    // 9 lives in the blob store; expunge it after `items` was read, as another session might.
    let uid = fx.items[9].entry.uid;
    let gone = fx
        .mailbox
        .store
        .expunge(fx.mailbox.mailbox_id, Some(&[uid][..]), false)
        .await
        .unwrap();
    assert_eq!(gone.uids, vec![uid]);
    assert!(fx.search(&Query::Body(s("lorem"))).await.is_empty());
    assert_eq!(
        fx.search(&not(Query::Body(s("lorem")))).await,
        all_but(&[9])
    );
}

#[tokio::test]
async fn sort_orders_by_each_key_both_ways_with_sequence_order_for_ties() {
    let fx = Fixture::new().await;
    let some = [0, 1, 2, 3, 4, 5];
    let reversed = |v: &[usize]| v.iter().rev().copied().collect::<Vec<_>>();
    // Keys whose values are all distinct on `some`: REVERSE is the exact reverse.
    let distinct = [
        (SortKey::Arrival, vec![4, 0, 5, 1, 2, 3]),
        // 4 has no Date: its INTERNALDATE stands in. 3 was sent long before it arrived.
        (SortKey::Date, vec![4, 0, 3, 5, 1, 2]),
        (SortKey::From, vec![0, 5, 2, 4, 1, 3]),
        (SortKey::Subject, vec![2, 1, 3, 4, 0, 5]),
        (SortKey::DisplayFrom, vec![0, 2, 4, 1, 3, 5]),
    ];
    for (key, expected) in distinct {
        assert_eq!(fx.sort(&some, key, false).await, expected, "{key:?}");
        assert_eq!(
            fx.sort(&some, key, true).await,
            reversed(&expected),
            "{key:?} reverse"
        );
    }
    // Ties (equal or missing values) stay in sequence order both ways.
    assert_eq!(
        fx.sort(&some, SortKey::To, false).await,
        vec![5, 3, 4, 1, 0, 2]
    );
    assert_eq!(
        fx.sort(&some, SortKey::To, true).await,
        vec![0, 2, 1, 3, 4, 5]
    );
    assert_eq!(
        fx.sort(&some, SortKey::Cc, false).await,
        vec![1, 2, 3, 4, 5, 0]
    );
    assert_eq!(
        fx.sort(&some, SortKey::Cc, true).await,
        vec![0, 5, 1, 2, 3, 4]
    );
    assert_eq!(
        fx.sort(&some, SortKey::DisplayTo, false).await,
        vec![5, 3, 4, 2, 0, 1]
    );
    assert_eq!(
        fx.sort(&some, SortKey::DisplayTo, true).await,
        vec![1, 0, 2, 3, 4, 5]
    );
    // SIZE against the stored wire sizes.
    let mut by_size = some.to_vec();
    by_size.sort_by_key(|&i| fx.items[i].record.wire_size);
    assert_eq!(fx.sort(&some, SortKey::Size, false).await, by_size);
    assert_eq!(
        fx.sort(&some, SortKey::Size, true).await,
        reversed(&by_size)
    );
    // The bare-LF message sorts by its wire (CRLF) size, RFC822.SIZE.
    let lf = &fx.items[12].record;
    assert!(lf.wire_size > lf.size);
}

#[tokio::test]
async fn sort_by_several_criteria_and_out_of_range_indices() {
    let fx = Fixture::new().await;
    let criteria = [
        SortCriterion {
            key: SortKey::To,
            reverse: false,
        },
        SortCriterion {
            key: SortKey::Arrival,
            reverse: true,
        },
    ];
    let sorted = sort(&fx.mailbox.store, &fx.items, &[0, 1, 2, 3, 4, 5], &criteria)
        .await
        .unwrap();
    assert_eq!(sorted, vec![5, 3, 4, 1, 2, 0]);
    assert_eq!(
        sort(&fx.mailbox.store, &fx.items, &[2, 0, 1], &[])
            .await
            .unwrap(),
        vec![0, 1, 2]
    );
    let bad = sort(&fx.mailbox.store, &fx.items, &[0, 99], &criteria).await;
    assert!(
        matches!(bad, Err(SearchError::IndexOutOfRange(99))),
        "{bad:?}"
    );
}

fn leaf(item: usize) -> ThreadNode {
    ThreadNode {
        item: Some(item),
        children: Vec::new(),
    }
}

fn node(item: Option<usize>, children: Vec<ThreadNode>) -> ThreadNode {
    ThreadNode { item, children }
}

#[tokio::test]
async fn thread_references_follows_rfc_5256_over_stored_messages() {
    let fx = Fixture::new().await;
    let threads = fx.thread(ThreadAlgorithm::References).await;
    assert_eq!(
        threads,
        vec![
            leaf(4),
            // 11's parent is missing: its dummy is pruned and 11 goes under 0.
            node(Some(0), vec![leaf(7), leaf(11)]),
            leaf(8),
            leaf(9),
            leaf(10),
            // Subject merging: 13 forwards 12; 14 is no reply, so a dummy joins them.
            node(None, vec![node(Some(12), vec![leaf(13)]), leaf(14)]),
            leaf(3),
            leaf(5),
            leaf(6),
            leaf(1),
            leaf(2),
        ]
    );
}

#[tokio::test]
async fn thread_orderedsubject_groups_by_base_subject() {
    let fx = Fixture::new().await;
    let threads = fx.thread(ThreadAlgorithm::OrderedSubject).await;
    assert_eq!(
        threads,
        vec![
            leaf(4),
            node(Some(0), vec![leaf(7), leaf(11)]),
            leaf(8),
            leaf(9),
            leaf(10),
            node(Some(12), vec![leaf(13), leaf(14)]),
            leaf(3),
            leaf(5),
            leaf(6),
            leaf(1),
            leaf(2),
        ]
    );
    // Only the matched messages take part.
    let some = thread(
        &fx.mailbox.store,
        &fx.items,
        &[11, 7],
        ThreadAlgorithm::References,
    )
    .await
    .unwrap();
    assert_eq!(some, vec![node(None, vec![leaf(7), leaf(11)])]);
}
