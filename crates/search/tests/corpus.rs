//! BODY over real mail (the SpamAssassin corpus) against a naive reference: decrypt each
//! message, parse it with mail-parser, lowercase, look for the substring.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MessageParser, PartType};
use postkeep_search::{search, Query};

use common::Mailbox;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/spamassassin")
}

/// The first `count` files of a corpus directory, by name.
fn files(dir: &str, count: usize) -> Vec<PathBuf> {
    let dir = corpus().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files.truncate(count);
    files
}

/// The texts the reference searches: every text/* part, html as its text, at any depth.
fn texts<'a>(message: &'a Message<'a>, out: &mut Vec<String>) {
    for part in &message.parts {
        match &part.body {
            PartType::Text(text) => out.push(text.to_string()),
            PartType::Html(html) => out.push(html_to_text(html)),
            PartType::Message(inner) => texts(inner, out),
            _ => {}
        }
    }
}

fn reference_body_contains(raw: &[u8], word: &str) -> bool {
    let Some(message) = MessageParser::default().parse(raw) else {
        return false;
    };
    let mut found = Vec::new();
    texts(&message, &mut found);
    let word = word.to_lowercase();
    found.iter().any(|text| text.to_lowercase().contains(&word))
}

async fn fill(mailbox: &Mailbox, paths: &[PathBuf]) {
    for path in paths {
        let bytes = std::fs::read(path).expect("read corpus file");
        // Each file starts with an mbox "From " line, which ingest strips.
        let start = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        mailbox.append(bytes[start..].to_vec(), 0, &[]).await;
    }
}

/// Compares `search` with the reference for each word; returns the matches per word.
async fn compare(mailbox: &Mailbox, words: &[&str]) -> Vec<usize> {
    let items = mailbox.items().await;
    let mut reference: Vec<Vec<u8>> = Vec::new();
    for item in &items {
        reference.push(
            mailbox
                .store
                .message_bytes(&item.record)
                .await
                .expect("decrypt"),
        );
    }
    let cancel = AtomicBool::new(false);
    let mut counts = Vec::new();
    for word in words {
        let expected: Vec<usize> = reference
            .iter()
            .enumerate()
            .filter(|(_, raw)| reference_body_contains(raw, word))
            .map(|(i, _)| i)
            .collect();
        let started = Instant::now();
        let found = search(
            &mailbox.store,
            &items,
            &Query::Body(word.to_string()),
            &cancel,
        )
        .await
        .expect("search");
        eprintln!(
            "BODY {word:?} over {} messages: {} matches in {:?} (debug build)",
            items.len(),
            found.len(),
            started.elapsed()
        );
        assert_eq!(found, expected, "BODY {word:?}");
        counts.push(found.len());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_search_over_300_corpus_messages_equals_the_naive_reference() {
    require_corpus();
    let mailbox = Mailbox::new().await;
    let paths = files("easy_ham", 300);
    assert_eq!(paths.len(), 300);
    fill(&mailbox, &paths).await;
    let counts = compare(&mailbox, &["please", "linux", "Razor", "the list"]).await;
    // Common words: the comparison is only meaningful if they match some and miss some.
    assert!(counts.iter().all(|&n| n > 0 && n < 300), "{counts:?}");

    let items = mailbox.items().await;
    let started = Instant::now();
    let from = search(
        &mailbox.store,
        &items,
        &Query::From("spamassassin".into()),
        &AtomicBool::new(false),
    )
    .await
    .expect("search");
    eprintln!(
        "FROM (summary stage) over {} messages: {} matches in {:?} (debug build)",
        items.len(),
        from.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_search_over_html_and_spam_corpus_messages_equals_the_naive_reference() {
    require_corpus();
    let mailbox = Mailbox::new().await;
    let paths = [files("hard_ham", 100), files("spam_2", 100)].concat();
    fill(&mailbox, &paths).await;
    let counts = compare(&mailbox, &["click", "free", "unsubscribe"]).await;
    assert!(counts.iter().all(|&n| n > 0 && n < 200), "{counts:?}");
}

/// The shared data set is part of the test environment (../shared/data/README.md): a missing
/// corpus fails loudly instead of passing silently.
fn require_corpus() {
    assert!(
        corpus().is_dir(),
        "SpamAssassin corpus missing at {} (see ../shared/data/README.md)",
        corpus().display()
    );
}
