//! The *wire form* of a stored message (docs/imap-plan.md §2.3): the stored bytes with every LF
//! not preceded by CR turned into CRLF. IMAP and POP3 serve it (RFC 9051 sizes are of CRLF
//! text; POP3 is line-based, RFC 1939 §3); export serves the stored bytes. A bare CR stays as
//! it is: it is not a line break and adding an LF would invent one.
//!
//! Everything here streams: state carries across chunk boundaries, so a message is never
//! needed whole.

use std::io::{self, Read, Write};
use std::ops::Range;

use crate::{MessageSummary, StreamingSummarizer};

/// Raw bytes read from the source at a time by [`WireReader`] and [`summarize_wire`].
const CHUNK: usize = 64 * 1024;

/// LF→CRLF conversion of a byte stream fed in chunks. The only state is whether the last byte
/// seen was a CR, so a CRLF split across two chunks is left alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrlfNormalizer {
    prev_cr: bool,
}

impl CrlfNormalizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `emit` with consecutive pieces of the wire form of `chunk`: runs of input and the
    /// inserted CRs, in order. Nothing is copied.
    fn each_piece(&mut self, chunk: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut start = 0;
        for lf in memchr::memchr_iter(b'\n', chunk) {
            if !self.cr_before(chunk, lf) {
                emit(chunk.get(start..lf).unwrap_or_default());
                emit(b"\r");
                start = lf;
            }
        }
        emit(chunk.get(start..).unwrap_or_default());
        self.advance(chunk);
    }

    /// Whether the byte before `chunk[at]` is a CR (the last byte of the previous chunk when
    /// `at` is 0).
    fn cr_before(&self, chunk: &[u8], at: usize) -> bool {
        match at.checked_sub(1) {
            Some(before) => chunk.get(before) == Some(&b'\r'),
            None => self.prev_cr,
        }
    }

    fn advance(&mut self, chunk: &[u8]) {
        if let Some(&last) = chunk.last() {
            self.prev_cr = last == b'\r';
        }
    }

    /// Appends the wire form of `chunk` to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.each_piece(chunk, |piece| out.extend_from_slice(piece));
    }

    /// The wire form of `chunk`: `chunk` itself when it needs no change (the common case:
    /// SMTP mail is CRLF already), else `scratch`, overwritten.
    pub fn normalize<'a>(&mut self, chunk: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let mut probe = *self;
        if probe.count(chunk) == chunk.len() as u64 {
            *self = probe;
            return chunk;
        }
        scratch.clear();
        self.push(chunk, scratch);
        scratch
    }

    /// Length of the wire form of `chunk`, advancing the state as [`CrlfNormalizer::push`]
    /// would.
    pub fn count(&mut self, chunk: &[u8]) -> u64 {
        let bare_lfs = memchr::memchr_iter(b'\n', chunk)
            .filter(|&lf| !self.cr_before(chunk, lf))
            .count() as u64;
        self.advance(chunk);
        chunk.len() as u64 + bare_lfs
    }
}

/// Length of the wire form of a whole message.
pub fn wire_len(raw: &[u8]) -> u64 {
    CrlfNormalizer::new().count(raw)
}

/// The wire form of a whole message, in memory.
pub fn to_wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    CrlfNormalizer::new().push(raw, &mut out);
    out
}

/// [`crate::summarize`] of the wire form, so every offset, size and line count in the summary
/// is what IMAP serves. Converts a chunk at a time: no copy of the whole message.
pub fn summarize_wire(raw: &[u8]) -> MessageSummary {
    let mut summarizer = StreamingSummarizer::new();
    let mut normalizer = CrlfNormalizer::new();
    let mut scratch = Vec::new();
    for chunk in raw.chunks(CHUNK) {
        summarizer.feed(normalizer.normalize(chunk, &mut scratch));
    }
    summarizer.finish()
}

/// Reads the wire form of a raw stream, optionally only a range of wire offsets (IMAP
/// `BODY[...]<start.len>`, RFC 9051 §6.4.5). One pass: the bytes before the range are counted
/// and dropped a chunk at a time, never buffered, and reading stops at the range's end.
pub struct WireReader<R> {
    inner: R,
    normalizer: CrlfNormalizer,
    raw: Vec<u8>,
    /// Wire bytes converted but not yet returned: `out[at..]`.
    out: Vec<u8>,
    at: usize,
    /// Wire bytes still to drop before the range starts.
    skip: u64,
    /// Wire bytes still to return (`None`: to the end).
    left: Option<u64>,
}

impl<R: Read> WireReader<R> {
    /// The whole wire form.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            normalizer: CrlfNormalizer::new(),
            raw: Vec::new(),
            out: Vec::new(),
            at: 0,
            skip: 0,
            left: None,
        }
    }

    /// Wire offsets `range` only; a range past the end reads what there is (nothing if it
    /// starts past the end, as an IMAP partial fetch must, RFC 9051 §6.4.5).
    pub fn with_range(inner: R, range: Range<u64>) -> Self {
        Self {
            skip: range.start,
            left: Some(range.end.saturating_sub(range.start)),
            ..Self::new(inner)
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Converts the next raw chunk into `out`, dropping what lies before the range. Returns
    /// false at the end of the input.
    fn refill(&mut self) -> io::Result<bool> {
        loop {
            if self.raw.is_empty() {
                self.raw = vec![0; CHUNK];
            }
            let n = match self.inner.read(&mut self.raw) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = self.raw.get(..n).unwrap_or_default();
            if chunk.is_empty() {
                return Ok(false);
            }
            self.out.clear();
            self.at = 0;
            if self.skip > 0 {
                let mut probe = self.normalizer;
                let wire = probe.count(chunk);
                if self.skip >= wire {
                    self.normalizer = probe;
                    self.skip -= wire;
                    continue;
                }
            }
            self.normalizer.push(chunk, &mut self.out);
            // skip < out.len() here, so it fits in usize.
            self.at = usize::try_from(self.skip).unwrap_or(self.out.len());
            self.skip = 0;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for WireReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.left == Some(0) {
            return Ok(0);
        }
        if self.at >= self.out.len() && !self.refill()? {
            return Ok(0);
        }
        let ready = self.out.get(self.at..).unwrap_or_default();
        let mut n = ready.len().min(buf.len());
        if let Some(left) = self.left {
            n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let (Some(dst), Some(src)) = (buf.get_mut(..n), ready.get(..n)) else {
            return Ok(0);
        };
        dst.copy_from_slice(src);
        self.at += n;
        if let Some(left) = self.left.as_mut() {
            *left -= n as u64;
        }
        Ok(n)
    }
}

/// POP3 byte-stuffing of wire-form text (RFC 1939 §3): a line that starts with "." is sent
/// with one more ".". The caller sends the terminating ".CRLF", preceded by a CRLF when
/// [`DotStuffer::at_line_start`] is false (the message did not end with a line break).
pub struct DotStuffer<W> {
    inner: W,
    line_start: bool,
}

impl<W: Write> DotStuffer<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            line_start: true,
        }
    }

    /// True when the next byte would begin a line: at the start, or after an LF.
    pub fn at_line_start(&self) -> bool {
        self.line_start
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for DotStuffer<W> {
    /// Writes all of `buf` (stuffing included) before returning, so a short count never
    /// splits a line start from its state.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.line_start && rest.first() == Some(&b'.') {
                self.inner.write_all(b".")?;
            }
            let line_end = rest.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let (line, after) = rest.split_at(line_end.unwrap_or(rest.len()));
            self.inner.write_all(line)?;
            self.line_start = line_end.is_some();
            rest = after;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
