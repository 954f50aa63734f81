//! `StreamingSummarizer` (which `summarize` wraps) against the oracle
//! `summarize_with_mail_parser` (the whole message through mail-parser): equal summaries on the
//! real-world corpora and on hand-made edge cases, for any chunking, with bounded memory.

mod common;

use std::time::{Duration, Instant};

use common::strip_mbox_from_line;
use postkeep_message::{
    summarize, summarize_with_mail_parser as oracle, MessageSummary, StreamingSummarizer,
};

fn streamed(raw: &[u8], chunk: usize) -> MessageSummary {
    let mut s = StreamingSummarizer::new();
    for piece in raw.chunks(chunk.max(1)) {
        s.feed(piece);
    }
    s.finish()
}

/// First differing field, for a readable failure report.
fn describe(expected: &MessageSummary, got: &MessageSummary) -> String {
    let e = format!("{expected:#?}");
    let g = format!("{got:#?}");
    let line = e
        .lines()
        .zip(g.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("line {i}: oracle `{}` vs stream `{}`", a.trim(), b.trim()))
        .unwrap_or_else(|| "lengths differ".into());
    line
}

#[test]
fn streaming_matches_summarize_on_the_corpus() {
    let files = common::corpus_files();
    let mut differ = Vec::new();
    let (mut oracle_time, mut stream_time) = (Duration::ZERO, Duration::ZERO);
    let mut sampled = 0;
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).expect("read corpus file");
        let raw = strip_mbox_from_line(&bytes);
        let t = Instant::now();
        let expected = oracle(raw);
        oracle_time += t.elapsed();
        let t = Instant::now();
        let got = streamed(raw, 4096);
        stream_time += t.elapsed();
        if got != expected {
            differ.push(format!(
                "{} (4096): {}",
                file.display(),
                describe(&expected, &got)
            ));
            continue;
        }
        if summarize(raw) != expected {
            differ.push(format!("{} (summarize)", file.display()));
        }
        // Chunking must not matter: a sample byte by byte and in odd-sized chunks.
        if i % 25 == 0 {
            sampled += 1;
            for chunk in [1, 7] {
                let got = streamed(raw, chunk);
                if got != expected {
                    differ.push(format!(
                        "{} ({chunk}): {}",
                        file.display(),
                        describe(&expected, &got)
                    ));
                }
            }
        }
    }
    println!(
        "corpus: {} messages, mail-parser oracle {:?}, streaming (4096-byte chunks) {:?}, {} sampled in 1/7-byte chunks",
        files.len(),
        oracle_time,
        stream_time,
        sampled
    );
    assert!(
        differ.is_empty(),
        "{} of {} corpus messages differ from the mail-parser oracle:\n{}",
        differ.len(),
        files.len(),
        differ.join("\n")
    );
}

fn assert_same_for_all_chunkings(raw: &[u8]) {
    let expected = oracle(raw);
    for chunk in [1, 7, 64 * 1024] {
        let got = streamed(raw, chunk);
        assert_eq!(
            got,
            expected,
            "chunk {chunk} differs on {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
    }
}

#[test]
fn streaming_matches_summarize_on_edge_cases() {
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\r\n\r\n".to_vec(),
        b":\r\n".to_vec(),
        b"just some words\r\nno header here\r\n".to_vec(),
        b"From: a@b.example\r\nSubject: x\r\n".to_vec(),
        b"From: a@b.example\r\nSubject: x\r\n\r\n".to_vec(),
        b"Subject: folded\r\n \r\n\r\nbody".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n".to_vec(),
        b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\n--a".to_vec(),
        b"Content-Type: multipart/mixed; boundary=nope\r\n\r\njust text\r\n".to_vec(),
        // Boundary mid-line, prefix of a longer word, ancestor delimiter closing inner parts.
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\npre--b\r\n\r\nx--bogus\r\n--b--\r\n".to_vec(),
        concat!(
            "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n",
            "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nin\r\n",
            "--o\r\nContent-Type: text/plain\r\n\r\nafter\r\n--o--\r\nepilogue\r\n"
        )
        .as_bytes()
        .to_vec(),
        // A nested multipart whose boundary only appears after the parent's delimiter.
        concat!(
            "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n",
            "Content-Type: multipart/mixed; boundary=late\r\n\r\nx\r\n--o\r\n\r\ny\r\n",
            "--late\r\n\r\nz\r\n--late--\r\n--o--\r\n"
        )
        .as_bytes()
        .to_vec(),
        // message/rfc822 inside message/rfc822 inside a multipart, then a sibling.
        concat!(
            "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n",
            "Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
            "Subject: deep\r\n\r\nbody\r\n--o\r\n\r\nsibling\r\n--o--\r\n"
        )
        .as_bytes()
        .to_vec(),
        // Digest defaults, base64 message/rfc822, LF-only endings.
        concat!(
            "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nfirst\n",
            "--d\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n",
            "U3ViamVjdDogeA0KDQp5DQo=\n--d--\n"
        )
        .as_bytes()
        .to_vec(),
        b"\xff\xfe\x00Subject: \xc3\x28\r\n\r\n\x00".to_vec(),
        b"From: <@>\r\nTo: ,,,;;;:::\r\nDate: 99 Xyz 99999 99:99:99 +9999\r\n\r\n".to_vec(),
    ];
    for raw in &cases {
        assert_same_for_all_chunkings(raw);
    }
}

#[test]
fn streaming_matches_summarize_on_nesting_bombs() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n".to_vec();
    for i in 1..300 {
        raw.extend_from_slice(
            format!(
                "--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n",
                i - 1
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"--b299\r\n\r\nleaf\r\n");
    for i in (0..300).rev() {
        raw.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    assert_eq!(streamed(&raw, 64 * 1024), oracle(&raw));

    let level = "Subject: level\r\nContent-Type: message/rfc822\r\n\r\n";
    let mut raw = level.repeat(2000).into_bytes();
    raw.extend_from_slice(b"Subject: leaf\r\n\r\nbody\r\n");
    assert_eq!(streamed(&raw, 7), oracle(&raw));

    let mut raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n".to_vec();
    for i in 0..3000 {
        raw.extend_from_slice(format!("--p\r\n\r\npart {i}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"--p--\r\n");
    assert_eq!(streamed(&raw, 4096), oracle(&raw));
}

/// Product requirement: ingesting a 60 MB message must not need memory proportional to it.
#[test]
fn sixty_megabyte_attachment_is_summarised_with_small_buffers() {
    let head = concat!(
        "From: a@example.com\r\nSubject: big\r\n",
        "Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n",
        "--big\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n",
        "--big\r\nContent-Type: application/octet-stream\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\n"
    );
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
    let lines_per_chunk = 64 * 1024 / line.len();
    let chunk = line.repeat(lines_per_chunk);
    let chunks = 60 * 1024 * 1024 / chunk.len() + 1;

    let mut s = StreamingSummarizer::new();
    s.feed(head.as_bytes());
    let mut peak = s.retained_bytes();
    for _ in 0..chunks {
        s.feed(chunk.as_bytes());
        peak = peak.max(s.retained_bytes());
    }
    s.feed(b"--big--\r\n");
    peak = peak.max(s.retained_bytes());
    let total = head.len() + chunks * chunk.len() + b"--big--\r\n".len();
    let summary = s.finish();

    assert!(total > 60 * 1024 * 1024);
    assert!(peak < 1024 * 1024, "retained {peak} bytes");
    let [text, attachment] = &summary.body.children[..] else {
        panic!("two parts expected: {summary:#?}")
    };
    assert_eq!(text.lines, Some(1));
    assert_eq!(attachment.encoding, "BASE64");
    // The attachment's content excludes the CRLF before the closing delimiter.
    assert_eq!(attachment.size(), (chunks * chunk.len() - 2) as u64);
    assert_eq!(summary.body.end_offset, total as u64);
}
