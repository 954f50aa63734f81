//! Checks shared by the hand-written and corpus tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use postkeep_message::{BodyPart, MessageSummary, MAX_DEPTH, MAX_PARTS};

pub fn data_dir() -> PathBuf {
    // The project root is two levels above this crate; the data sits beside the project.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// Every regular file under `dir`, recursively, except the corpus metadata (.tsv etc.).
pub fn message_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub fn strip_mbox_from_line(raw: &[u8]) -> &[u8] {
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

/// The message files of the SpamAssassin and phishing_pot corpora (not the top-level
/// metadata); panics with a clear message when the corpus is missing.
pub fn corpus_files() -> Vec<PathBuf> {
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
    files
}

/// Every structural promise `BodyPart` documents, checked against the raw bytes.
/// Returns the number of parts, or a description of the first violation.
pub fn check_summary(raw: &[u8], summary: &MessageSummary) -> Result<usize, String> {
    let root = &summary.body;
    if root.header_offset != 0 || root.end_offset != raw.len() as u64 {
        return Err(format!(
            "root spans {}..{}, message is 0..{}",
            root.header_offset,
            root.end_offset,
            raw.len()
        ));
    }
    let mut parts = 0;
    check_part(raw, root, 0, raw.len() as u64, 0, &mut parts)?;
    if parts > MAX_PARTS {
        return Err(format!("{parts} parts exceed MAX_PARTS"));
    }
    let json = serde_json::to_string(summary).map_err(|e| format!("serialise: {e}"))?;
    let back: MessageSummary =
        serde_json::from_str(&json).map_err(|e| format!("deserialise: {e}"))?;
    if &back != summary {
        return Err("JSON round trip changed the summary".into());
    }
    Ok(parts)
}

fn check_part(
    raw: &[u8],
    part: &BodyPart,
    lo: u64,
    hi: u64,
    depth: usize,
    parts: &mut usize,
) -> Result<(), String> {
    *parts += 1;
    let (h, b, e) = (part.header_offset, part.body_offset, part.end_offset);
    let at = format!("part at {h}..{b}..{e} (depth {depth})");
    if !(lo <= h && h <= b && b <= e && e <= hi) {
        return Err(format!("{at} is outside {lo}..{hi} or not ordered"));
    }
    if part.header_bytes(raw).is_none() || part.body_bytes(raw).is_none() {
        return Err(format!("{at}: slices out of bounds"));
    }
    if depth > MAX_DEPTH {
        return Err(format!("{at} deeper than MAX_DEPTH"));
    }
    for (name, v) in [("type", &part.content_type), ("subtype", &part.subtype)] {
        if v.is_empty() || v.to_ascii_uppercase() != *v {
            return Err(format!("{at}: {name} {v:?} is not upper-case"));
        }
    }
    if (part.content_type == "MULTIPART") == part.children.is_empty() {
        return Err(format!("{at}: MULTIPART iff children broken"));
    }
    let is_message =
        part.content_type == "MESSAGE" && (part.subtype == "RFC822" || part.subtype == "GLOBAL");
    if is_message != part.embedded.is_some() {
        return Err(format!("{at}: MESSAGE/RFC822 iff embedded broken"));
    }
    if (part.content_type == "TEXT" || is_message) != part.lines.is_some() {
        return Err(format!("{at}: lines only for TEXT and MESSAGE/RFC822"));
    }
    let mut floor = b;
    for child in &part.children {
        if child.header_offset < floor {
            return Err(format!("{at}: children overlap or are out of order"));
        }
        check_part(raw, child, b, e, depth + 1, parts)?;
        floor = child.end_offset;
    }
    if let Some(inner) = &part.embedded {
        if inner.body.header_offset != b {
            return Err(format!("{at}: embedded message does not start at the body"));
        }
        check_part(raw, &inner.body, b, e, depth + 1, parts)?;
    }
    Ok(())
}

/// Number of BodyPart levels below and including `part`.
pub fn levels(part: &BodyPart) -> usize {
    let below = part
        .children
        .iter()
        .map(levels)
        .chain(part.embedded.iter().map(|m| levels(&m.body)))
        .max()
        .unwrap_or(0);
    below + 1
}
