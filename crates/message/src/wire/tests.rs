use std::io::{Read, Write};

use super::*;

/// The oracle: the definition of the wire form, applied to the whole buffer at once.
fn naive_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &byte) in raw.iter().enumerate() {
        if byte == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}

/// A source that returns at most `step` bytes per read, so chunk boundaries fall everywhere.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Reads everything through buffers of `buf_len` bytes.
fn read_all(mut reader: impl Read, buf_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; buf_len];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Deterministic pseudo-random bytes over an alphabet rich in line-break trouble.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"a\r\n.\n\rb"[(state >> 59) as usize % 7]
        })
        .collect()
}

fn tricky_inputs() -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = [
        &b""[..],
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\r",
        b"a\r\nb\r\n",
        b"a\nb\nc",
        b"Subject: x\n\nbody\n",
        b"Subject: x\r\n\r\nbody\nmore\r\nend\n",
        b"bare\rcr\rhere\r",
        b"\r\r\n\n\r\n\n\r",
        b"\n\n\n",
        b"trailing lf\n",
        b"\nleading lf",
        b".dot\n..two\r\n.",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    inputs.push(noise(40, 1));
    inputs.push(noise(57, 2));
    inputs
}

const CHUNK_SIZES: [usize; 5] = [1, 2, 3, 7, 4096];

#[test]
fn normalizer_matches_whole_buffer_conversion_at_every_chunking() {
    for raw in tricky_inputs() {
        let expected = naive_crlf(&raw);
        assert_eq!(to_wire(&raw), expected, "to_wire {raw:?}");
        assert_eq!(wire_len(&raw), expected.len() as u64, "wire_len {raw:?}");
        for step in CHUNK_SIZES {
            let (mut pushed, mut normalized, mut counted) = (Vec::new(), Vec::new(), 0);
            let (mut a, mut b, mut c) = (
                CrlfNormalizer::new(),
                CrlfNormalizer::new(),
                CrlfNormalizer::new(),
            );
            let mut scratch = Vec::new();
            for chunk in raw.chunks(step) {
                a.push(chunk, &mut pushed);
                normalized.extend_from_slice(b.normalize(chunk, &mut scratch));
                counted += c.count(chunk);
            }
            assert_eq!(pushed, expected, "push, step {step}, {raw:?}");
            assert_eq!(normalized, expected, "normalize, step {step}, {raw:?}");
            assert_eq!(
                counted,
                expected.len() as u64,
                "count, step {step}, {raw:?}"
            );
        }
    }
}

#[test]
fn wire_reader_serves_every_range_of_the_whole_buffer_conversion() {
    for raw in tricky_inputs() {
        let expected = naive_crlf(&raw);
        let n = expected.len() as u64;
        for step in CHUNK_SIZES {
            let whole = read_all(WireReader::new(Trickle { data: &raw, step }), 3);
            assert_eq!(whole, expected, "whole, step {step}, {raw:?}");
            // Starts and ends up to two bytes past the end: a range beyond it reads short.
            for start in 0..=n + 2 {
                for end in start..=n + 2 {
                    let reader = WireReader::with_range(Trickle { data: &raw, step }, start..end);
                    let got = read_all(reader, 2);
                    let want = &expected[start.min(n) as usize..end.min(n) as usize];
                    assert_eq!(got, want, "{start}..{end}, step {step}, {raw:?}");
                }
            }
        }
    }
}

#[test]
fn wire_reader_skips_and_limits_across_large_chunks() {
    // Larger than the reader's own chunk, so whole chunks are skipped uncopied.
    let raw = noise(3 * CHUNK + 123, 7);
    let expected = naive_crlf(&raw);
    let n = expected.len() as u64;
    let points = [
        0,
        1,
        CHUNK as u64 - 1,
        CHUNK as u64,
        CHUNK as u64 + 1,
        2 * CHUNK as u64 + 5,
        n - 1,
        n,
    ];
    for &start in &points {
        for &end in points.iter().filter(|&&end| end >= start) {
            for step in [CHUNK, 1000] {
                let reader = WireReader::with_range(Trickle { data: &raw, step }, start..end);
                let got = read_all(reader, 5000);
                assert_eq!(
                    got,
                    &expected[start as usize..end as usize],
                    "{start}..{end}, step {step}"
                );
            }
        }
    }
}

#[test]
fn wire_reader_passes_source_errors_through() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("tampered"))
        }
    }
    let err = WireReader::new(Broken).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.to_string(), "tampered");
}

#[test]
fn summarize_wire_offsets_point_into_the_wire_form() {
    let raw = b"Subject: hi\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nline one\nline two\n--b--\n";
    let wire = naive_crlf(raw);
    let summary = summarize_wire(raw);
    assert_eq!(summary, crate::summarize(&wire));
    assert_eq!(summary.body.end_offset, wire.len() as u64);
    let part = &summary.body.children[0];
    assert_eq!(part.lines, Some(2));
    let text = &wire[part.body_offset as usize..part.end_offset as usize];
    assert!(
        text.starts_with(b"line one\r\nline two"),
        "{:?}",
        String::from_utf8_lossy(text)
    );
}

fn stuffed(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut stuffer = DotStuffer::new(Vec::new());
    for chunk in chunks {
        stuffer.write_all(chunk).unwrap();
    }
    let at_start = stuffer.at_line_start();
    (stuffer.into_inner(), at_start)
}

#[test]
fn dot_stuffer_doubles_leading_dots_only() {
    // RFC 1939 §3: only a "." that begins a line is stuffed.
    let (out, at_start) = stuffed(&[b".first\r\nmid.dle\r\n..two\r\n.\r\nend.\r\n"]);
    assert_eq!(out, b"..first\r\nmid.dle\r\n...two\r\n..\r\nend.\r\n");
    assert!(at_start);
}

#[test]
fn dot_stuffer_keeps_line_state_across_writes() {
    let (out, at_start) = stuffed(&[b"a\r", b"\n", b".", b"b\r\n", b"", b".c"]);
    assert_eq!(out, b"a\r\n..b\r\n..c");
    assert!(!at_start, "the caller must add CRLF before the terminator");
}

#[test]
fn dot_stuffer_leaves_text_without_dots_untouched() {
    let (out, at_start) = stuffed(&[b"plain\r\ntext\r\n"]);
    assert_eq!(out, b"plain\r\ntext\r\n");
    assert!(at_start);
    let (out, at_start) = stuffed(&[]);
    assert!(out.is_empty() && at_start);
}
