//! Runs `summarize` over the public real-world corpora in ../shared/data (see its README):
//! no panics, every offset in bounds and properly nested, summaries survive a JSON round trip.

mod common;

use common::strip_mbox_from_line;
use postkeep_message::summarize;

#[test]
fn corpus_messages_summarise_within_bounds() {
    let files = common::corpus_files();

    let mut failures = Vec::new();
    let (mut with_from, mut multipart, mut embedded) = (0, 0, 0);
    for file in &files {
        let bytes = std::fs::read(file).expect("read corpus file");
        // As stored on disk (mbox line and all), then as ingest would see it.
        if let Err(e) = common::check_summary(&bytes, &summarize(&bytes)) {
            failures.push(format!("{} (as is): {e}", file.display()));
        }
        let raw = strip_mbox_from_line(&bytes);
        let summary = summarize(raw);
        if let Err(e) = common::check_summary(raw, &summary) {
            failures.push(format!("{}: {e}", file.display()));
        }
        with_from += usize::from(!summary.envelope.from.is_empty());
        multipart += usize::from(summary.body.is_multipart());
        embedded += usize::from(has_embedded(&summary.body));
    }

    assert!(
        failures.is_empty(),
        "{} of {} messages broke invariants:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    // Sanity: real mail has senders and structure; a parser that returned empty summaries
    // would pass the bounds checks above.
    assert!(
        with_from * 100 >= files.len() * 99,
        "only {with_from} have a From"
    );
    assert!(multipart > 900, "only {multipart} multipart messages");
    assert!(
        embedded >= 3,
        "only {embedded} messages with message/rfc822"
    );
}

fn has_embedded(part: &postkeep_message::BodyPart) -> bool {
    part.embedded.is_some() || part.children.iter().any(has_embedded)
}
