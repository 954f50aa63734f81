//! Runs `summarize` over the public real-world corpora in ../shared/data (see its README):
//! no panics, every offset in bounds and properly nested, summaries survive a JSON round trip.

mod common;

use std::path::{Path, PathBuf};

use postkeep_message::summarize;

fn data_dir() -> PathBuf {
    // The project root is two levels above this crate; the data sits beside the project.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// Every regular file under `dir`, recursively, except the corpus metadata (.tsv etc.).
fn message_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus directory {} unreadable: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            message_files(&path, out);
        } else if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("tsv" | "csv" | "json" | "md" | "txt")
        ) {
            out.push(path);
        }
    }
}

/// The SpamAssassin files start with an mbox "From " line, which ingest would strip.
fn strip_mbox_from_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        let next = raw
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |i| i + 1);
        &raw[next..]
    } else {
        raw
    }
}

#[test]
fn corpus_messages_summarise_within_bounds() {
    let root = data_dir();
    let sets = [root.join("spamassassin"), root.join("phishing_pot")];
    for set in &sets {
        assert!(
            set.is_dir(),
            "test corpus missing: {} (see /work/shared/data/README.md)",
            set.display()
        );
    }

    let mut files = Vec::new();
    message_files(&sets[0], &mut files);
    files.retain(|f| f.parent() != Some(sets[0].as_path()));
    message_files(&sets[1], &mut files);
    assert!(
        files.len() > 6000,
        "only {} corpus files found",
        files.len()
    );

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
