//! The CRLF wire form (docs/imap-plan.md §2.3): IMAP/POP3 read `crlf(stored)` through
//! `wire_reader`, at the summary's offsets; export still reads the stored bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postkeep_message::wire::to_wire;
use postkeep_message::BodyPart;

use super::tests::{large_body, store_with_account, Fixture};
use super::*;

async fn read_wire(
    store: &MailStore,
    record: &MessageRecord,
    range: Option<Range<u64>>,
) -> Vec<u8> {
    let mut reader = store.wire_reader(record, range).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

fn all_parts<'a>(part: &'a BodyPart, out: &mut Vec<&'a BodyPart>) {
    out.push(part);
    for child in &part.children {
        all_parts(child, out);
    }
    if let Some(embedded) = &part.embedded {
        all_parts(&embedded.body, out);
    }
}

/// Appends `raw` and checks everything IMAP and export will rely on; returns the part count.
async fn check_round_trip(store: &MailStore, account: &Account, raw: &[u8], what: &str) -> usize {
    store
        .append(account.id, MailboxRole::Inbox, raw.to_vec(), 0, &[])
        .await
        .unwrap();
    let record = store
        .account_messages(account.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let wire = to_wire(raw);
    let n = wire.len() as u64;
    assert_eq!(record.size, raw.len() as u64, "{what}: size");
    assert_eq!(record.wire_size, n, "{what}: wire_size");
    assert!(
        read_wire(store, &record, None).await == wire,
        "{what}: BODY[] is not to_wire(raw)"
    );
    assert!(
        store.message_bytes(&record).await.unwrap() == raw,
        "{what}: export is not raw"
    );

    let summary = store.summary(&record).await.unwrap();
    assert_eq!(
        summary.body.end_offset, n,
        "{what}: summary spans the wire form"
    );
    let mut parts = Vec::new();
    all_parts(&summary.body, &mut parts);
    for part in &parts {
        let (h, b, e) = (part.header_offset, part.body_offset, part.end_offset);
        for range in [h..b, b..e, b + 1..e.min(b + 50), e.saturating_sub(3)..e + 2] {
            let got = read_wire(store, &record, Some(range.clone())).await;
            let want = &wire[range.start.min(n) as usize..range.end.clamp(range.start, n) as usize];
            assert!(
                got == want,
                "{what}: part range {range:?} differs from to_wire(raw)"
            );
        }
    }
    parts.len()
}

#[tokio::test]
async fn lf_only_message_is_served_as_crlf_and_exported_raw() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = b"From: Bob <bob@remote.test>\nSubject: lf\nContent-Type: multipart/mixed; \
                boundary=xy\n\n--xy\nContent-Type: text/plain\n\none\ntwo\n--xy\n\
                Content-Type: text/plain\n\nbare\rcr\r\n.dot\n--xy--\n";
    let parts = check_round_trip(&store, &account, raw, "small lf").await;
    assert_eq!(parts, 3);
    let summary = store
        .summary(&store.account_messages(account.id).await.unwrap()[0])
        .await
        .unwrap();
    // Line counts are of the wire form too: "one\r\ntwo\r\n".
    assert_eq!(summary.body.children[0].lines, Some(2));
    let inbox = store
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let counts = store.meta().mailbox_counts(inbox.id).await.unwrap();
    assert_eq!(
        counts.size,
        to_wire(raw).len() as u64,
        "STATUS SIZE counts wire octets"
    );
}

#[tokio::test]
async fn large_lf_message_in_the_blob_store_is_served_as_crlf() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let body = large_body().replace("xxxxxxxxxx", "xxxxxxxxx\n");
    let raw = format!("Subject: big\n\n{body}\n").into_bytes();
    assert!(raw.len() as u64 > INLINE_MAX);
    check_round_trip(&store, &account, &raw, "large lf").await;
    let record = &store.account_messages(account.id).await.unwrap()[0];
    assert!(!record.inline, "the blob-store path must be exercised");
}

#[tokio::test]
async fn crlf_message_ranges_are_plain_reads_of_the_stored_bytes() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = b"Subject: crlf\r\n\r\nalready\r\nwire form\r\n";
    check_round_trip(&store, &account, raw, "crlf").await;
    let record = &store.account_messages(account.id).await.unwrap()[0];
    assert_eq!(record.wire_size, record.size);
    let n = raw.len() as u64;
    for (start, end) in [
        (0, 0),
        (0, n),
        (3, 9),
        (n - 1, n + 5),
        (n, n + 1),
        (n + 4, n + 9),
        (9, 3),
    ] {
        let want = &raw[start.min(n) as usize..end.clamp(start.min(n), n) as usize];
        let got = read_wire(&store, record, Some(start..end)).await;
        assert_eq!(got, want, "{start}..{end}");
    }
}

#[tokio::test]
async fn spooled_message_takes_the_producers_wire_length() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = Arc::new(b"Subject: spooled\n\nbody\nlines\n".to_vec());
    let source = Arc::clone(&raw);
    let open: OpenSpool = Arc::new(move || {
        Ok(Box::new(std::io::Cursor::new(source.to_vec())) as Box<dyn Read + Send>)
    });
    let bytes = MessageBytes::Spooled {
        len: raw.len() as u64,
        wire_len: to_wire(&raw).len() as u64,
        open,
    };
    let summary = MailStore::summarize(Arc::clone(&raw)).await.unwrap();
    let inbox = store
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let prepared = store
        .prepare(account.id, inbox.id, &bytes, &summary, 0, &[])
        .await
        .unwrap();
    store.commit(vec![prepared]).await.unwrap();
    let record = &store.account_messages(account.id).await.unwrap()[0];
    assert_eq!(record.wire_size, to_wire(&raw).len() as u64);
    assert_eq!(read_wire(&store, record, None).await, to_wire(&raw));
    assert_eq!(store.message_bytes(record).await.unwrap(), *raw);
}

fn spamassassin_files(dir: &str, count: usize) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/spamassassin");
    let dir = root.join(dir);
    let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "test corpus missing: {} ({e}; see /work/shared/data/README.md)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = listing.map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files.truncate(count);
    assert_eq!(files.len(), count, "too few files in {}", dir.display());
    files
}

#[tokio::test]
async fn spamassassin_lf_messages_are_served_as_crlf_at_summary_offsets() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let files = [
        spamassassin_files("easy_ham", 6),
        spamassassin_files("spam_2", 10),
    ]
    .concat();
    let (mut lf_only, mut multipart_parts) = (0, 0);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // Ingest strips the mbox "From " line the corpus files start with.
        let start = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let raw = &bytes[start..];
        lf_only += usize::from(!raw.contains(&b'\r'));
        let parts = check_round_trip(&store, &account, raw, &file.display().to_string()).await;
        multipart_parts += usize::from(parts > 1);
    }
    // The point of the corpus: real LF-only mail, some of it with structure.
    assert!(lf_only >= 10, "only {lf_only} LF-only messages");
    assert!(
        multipart_parts >= 1,
        "no multipart message among {} files",
        files.len()
    );
}
