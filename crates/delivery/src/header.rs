//! Editing the top-level header section of a message on its way through the pipeline: fields
//! prepended (trace-like fields such as `Authentication-Results:`, RFC 8601 §5) and fields
//! dropped, while `raw`, its lengths and every offset of the summary stay consistent.
//!
//! A spooled message is never loaded: the header section is scanned as a stream, and the
//! edited message is a new reader over the spool (the new fields, then the original bytes with
//! the dropped fields skipped), so every recipient's copy streams the edit from the spool.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use postkeep_message::wire::CrlfNormalizer;
use postkeep_message::{BodyPart, MessageSummary};
use postkeep_store::MessageBytes;

use crate::InboundMessage;

/// How much of one field a predicate sees; the rest of a longer field is still dropped or
/// kept with it.
pub const FIELD_PREFIX_MAX: usize = 16 * 1024;
/// Bytes read from the message at a time while scanning.
const SCAN_CHUNK: usize = 64 * 1024;

/// One field of the top-level header section, shown to a removal predicate.
#[derive(Debug, Clone, Copy)]
pub struct HeaderField<'a> {
    /// The field name as written (RFC 5322 §3.6.8 `ftext`), without the colon.
    pub name: &'a [u8],
    /// The field body after the colon, folding kept, final line end removed; at most
    /// [`FIELD_PREFIX_MAX`] bytes of it.
    pub value: &'a [u8],
    /// True when `value` was cut at [`FIELD_PREFIX_MAX`] bytes.
    pub truncated: bool,
}

/// A dropped field: its bytes in the raw message, and the length of their wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cut {
    raw: Range<u64>,
    wire_len: u64,
}

impl InboundMessage {
    /// Prepends `fields` to the top-level header and drops every field of it for which
    /// `remove` returns true, keeping `raw`, its lengths and the summary's offsets consistent.
    ///
    /// `fields` is zero or more complete header fields, each line ending in CRLF (folded lines
    /// start with a space or tab). Only the header section as the summary sees it is scanned;
    /// a spooled message is read as a stream on a blocking thread, never loaded.
    pub async fn edit_header<F>(&mut self, fields: &str, remove: F) -> io::Result<()>
    where
        F: Fn(&HeaderField<'_>) -> bool + Send + 'static,
    {
        check_fields(fields)?;
        let header_end = self.summary.body.body_offset;
        let cuts = match &self.raw {
            MessageBytes::Memory(bytes) => find_cuts(&bytes[..], header_end, &remove)?,
            MessageBytes::Spooled { .. } => {
                let raw = self.raw.clone();
                tokio::task::spawn_blocking(move || find_cuts(raw.open()?, header_end, &remove))
                    .await
                    .map_err(io::Error::other)??
            }
        };
        let prefix: Arc<[u8]> = Arc::from(fields.as_bytes());
        let removed_wire: u64 = cuts.iter().map(|cut| cut.wire_len).sum();
        // `fields` has CRLF line ends only, so its wire form is itself.
        let delta = i64::try_from(prefix.len())
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(removed_wire).unwrap_or(i64::MAX));
        self.raw = apply(&self.raw, prefix, cuts);
        shift_summary(&mut self.summary, delta);
        Ok(())
    }
}

/// Refuses anything that is not whole CRLF-terminated header fields: a bare CR or LF, an
/// empty line (which would end the header early) or a first line that is a continuation.
fn check_fields(fields: &str) -> io::Result<()> {
    let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
    if fields.is_empty() {
        return Ok(());
    }
    let Some(body) = fields.strip_suffix("\r\n") else {
        return invalid("header fields must end with CRLF");
    };
    if fields.starts_with([' ', '\t']) {
        return invalid("header fields must not start with a continuation line");
    }
    for line in body.split("\r\n") {
        if line.is_empty() {
            return invalid("header fields must not contain an empty line");
        }
        if line.contains(['\r', '\n']) {
            return invalid("header fields must not contain a bare CR or LF");
        }
        let continuation = line.starts_with([' ', '\t']);
        let named = line
            .split_once(':')
            .is_some_and(|(name, _)| is_field_name(name.as_bytes()));
        if !continuation && !named {
            return invalid("header field line without a field name");
        }
    }
    Ok(())
}

/// RFC 5322 §3.6.8 `field-name = 1*ftext` (printable US-ASCII except colon).
fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| (33..=126).contains(b) && *b != b':')
}

/// Scans the header section (wire offsets `0..header_end`) of `reader` for fields to drop.
fn find_cuts(
    mut reader: impl Read,
    header_end: u64,
    remove: &dyn Fn(&HeaderField<'_>) -> bool,
) -> io::Result<Vec<Cut>> {
    let mut scanner = Scanner::new(header_end, remove);
    let mut chunk = vec![0u8; SCAN_CHUNK];
    while !scanner.done {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scanner.feed(chunk.get(..n).unwrap_or_default());
    }
    Ok(scanner.finish())
}

/// The field being read: where it started, and the first bytes of it.
struct OpenField {
    raw_start: u64,
    wire_start: u64,
    bytes: Vec<u8>,
    truncated: bool,
}

/// Splits a byte stream into header fields (a line not starting with SP/HT starts a field;
/// RFC 5322 §2.2.3) up to the end of the header section.
struct Scanner<'p> {
    remove: &'p dyn Fn(&HeaderField<'_>) -> bool,
    header_end: u64,
    raw_pos: u64,
    wire_pos: u64,
    normalizer: CrlfNormalizer,
    at_line_start: bool,
    field: Option<OpenField>,
    cuts: Vec<Cut>,
    done: bool,
}

impl<'p> Scanner<'p> {
    fn new(header_end: u64, remove: &'p dyn Fn(&HeaderField<'_>) -> bool) -> Self {
        Scanner {
            remove,
            header_end,
            raw_pos: 0,
            wire_pos: 0,
            normalizer: CrlfNormalizer::new(),
            at_line_start: true,
            field: None,
            cuts: Vec::new(),
            done: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() && !self.done {
            if self.at_line_start {
                self.at_line_start = false;
                if self.wire_pos >= self.header_end {
                    self.close_field();
                    self.done = true;
                    return;
                }
                if !matches!(rest.first(), Some(b' ' | b'\t')) {
                    self.close_field();
                    self.field = Some(OpenField {
                        raw_start: self.raw_pos,
                        wire_start: self.wire_pos,
                        bytes: Vec::new(),
                        truncated: false,
                    });
                }
            }
            let line_end = rest.iter().position(|b| *b == b'\n').map(|at| at + 1);
            let (segment, after) = rest.split_at(line_end.unwrap_or(rest.len()));
            self.consume(segment);
            self.at_line_start = line_end.is_some();
            rest = after;
        }
    }

    fn consume(&mut self, segment: &[u8]) {
        if let Some(field) = self.field.as_mut() {
            let room = FIELD_PREFIX_MAX.saturating_sub(field.bytes.len());
            let kept = segment.get(..room).unwrap_or(segment);
            field.bytes.extend_from_slice(kept);
            field.truncated |= kept.len() < segment.len();
        }
        self.raw_pos += segment.len() as u64;
        self.wire_pos += self.normalizer.count(segment);
    }

    /// Decides about the field that just ended (at the current position).
    fn close_field(&mut self) {
        let Some(field) = self.field.take() else {
            return;
        };
        // A line the summary counted as body is never touched.
        if self.wire_pos > self.header_end {
            return;
        }
        let Some(colon) = field.bytes.iter().position(|b| *b == b':') else {
            return;
        };
        let (name, value) = field.bytes.split_at(colon);
        if !is_field_name(name) {
            return;
        }
        let mut value = value.get(1..).unwrap_or_default();
        if !field.truncated {
            value = value.strip_suffix(b"\n").unwrap_or(value);
            value = value.strip_suffix(b"\r").unwrap_or(value);
        }
        let shown = HeaderField {
            name,
            value,
            truncated: field.truncated,
        };
        if (self.remove)(&shown) {
            self.cuts.push(Cut {
                raw: field.raw_start..self.raw_pos,
                wire_len: self.wire_pos - field.wire_start,
            });
        }
    }

    fn finish(mut self) -> Vec<Cut> {
        if !self.done {
            self.close_field();
        }
        self.cuts
    }
}

/// The message with `prefix` in front and the `cuts` left out.
fn apply(raw: &MessageBytes, prefix: Arc<[u8]>, cuts: Vec<Cut>) -> MessageBytes {
    let removed_raw: u64 = cuts.iter().map(|cut| cut.raw.end - cut.raw.start).sum();
    let removed_wire: u64 = cuts.iter().map(|cut| cut.wire_len).sum();
    let ranges: Arc<[Range<u64>]> = cuts.into_iter().map(|cut| cut.raw).collect();
    match raw {
        MessageBytes::Memory(bytes) => {
            let mut edited = Vec::with_capacity(bytes.len() + prefix.len());
            edited.extend_from_slice(&prefix);
            let mut at = 0usize;
            for range in ranges.iter() {
                let (start, end) = (to_usize(range.start), to_usize(range.end));
                edited.extend_from_slice(bytes.get(at..start).unwrap_or_default());
                at = end;
            }
            edited.extend_from_slice(bytes.get(at..).unwrap_or_default());
            MessageBytes::Memory(Arc::new(edited))
        }
        MessageBytes::Spooled {
            len,
            wire_len,
            open,
        } => {
            let inner = Arc::clone(open);
            let added = prefix.len() as u64;
            MessageBytes::Spooled {
                len: (len + added).saturating_sub(removed_raw),
                wire_len: (wire_len + added).saturating_sub(removed_wire),
                open: Arc::new(move || {
                    let head = io::Cursor::new(Arc::clone(&prefix));
                    let tail = Excised::new(inner()?, Arc::clone(&ranges));
                    Ok(Box::new(head.chain(tail)) as Box<dyn Read + Send>)
                }),
            }
        }
    }
}

fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// A reader that leaves out sorted, non-overlapping byte ranges of another.
struct Excised<R> {
    inner: R,
    ranges: Arc<[Range<u64>]>,
    next: usize,
    pos: u64,
}

impl<R: Read> Excised<R> {
    fn new(inner: R, ranges: Arc<[Range<u64>]>) -> Self {
        Excised {
            inner,
            ranges,
            next: 0,
            pos: 0,
        }
    }
}

impl<R: Read> Read for Excised<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut limit = u64::MAX;
        while let Some(range) = self.ranges.get(self.next) {
            if self.pos < range.start {
                limit = range.start - self.pos;
                break;
            }
            let want = range.end.saturating_sub(self.pos);
            let skipped = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
            self.pos += skipped;
            if skipped < want {
                return Ok(0);
            }
            self.next += 1;
        }
        let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Moves every offset behind the top-level header by `delta`; the header itself still starts
/// at 0 (the prepended fields belong to it).
fn shift_summary(summary: &mut MessageSummary, delta: i64) {
    let root = &mut summary.body;
    root.body_offset = root.body_offset.saturating_add_signed(delta);
    root.end_offset = root.end_offset.saturating_add_signed(delta);
    shift_inner(root, delta);
}

fn shift_inner(part: &mut BodyPart, delta: i64) {
    let children = part
        .children
        .iter_mut()
        .chain(part.embedded.as_mut().map(|embedded| &mut embedded.body));
    for child in children {
        child.header_offset = child.header_offset.saturating_add_signed(delta);
        child.body_offset = child.body_offset.saturating_add_signed(delta);
        child.end_offset = child.end_offset.saturating_add_signed(delta);
        shift_inner(child, delta);
    }
}

#[cfg(test)]
mod tests {
    use postkeep_message::wire;

    use super::*;

    const AR: &str = "Authentication-Results: mx.example.org; spf=pass\r\n";

    fn is_ar(field: &HeaderField<'_>) -> bool {
        field.name.eq_ignore_ascii_case(b"authentication-results")
    }

    fn message(raw: &[u8]) -> InboundMessage {
        InboundMessage {
            envelope: postkeep_smtp::Envelope {
                mail_from: "x@remote.test".into(),
                rcpt_to: vec!["a@example.org".into()],
                peer: "127.0.0.1:1".parse().expect("literal address"),
                helo: "remote.test".into(),
                tls: false,
                smtputf8: false,
                authenticated: None,
            },
            raw: MessageBytes::Memory(Arc::new(raw.to_vec())),
            summary: wire::summarize_wire(raw),
            filings: Vec::new(),
            authentication: None,
            submitted_by: None,
        }
    }

    /// The same bytes behind a spool-like reader, as a message over 1 MiB would be.
    fn spooled(raw: &[u8]) -> InboundMessage {
        let mut m = message(raw);
        let data = Arc::new(raw.to_vec());
        m.raw = MessageBytes::Spooled {
            len: raw.len() as u64,
            wire_len: wire::wire_len(raw),
            open: Arc::new(move || {
                Ok(Box::new(io::Cursor::new(data.to_vec())) as Box<dyn Read + Send>)
            }),
        };
        m
    }

    fn read_all(bytes: &MessageBytes) -> Vec<u8> {
        let mut out = Vec::new();
        bytes
            .open()
            .expect("open")
            .read_to_end(&mut out)
            .expect("read");
        out
    }

    /// Edits both ways and checks bytes, lengths and the summary against a fresh parse.
    async fn edit_and_check(raw: &[u8], fields: &str, expected: &[u8]) {
        for mut m in [message(raw), spooled(raw)] {
            m.edit_header(fields, is_ar).await.expect("edit");
            let edited = read_all(&m.raw);
            assert_eq!(
                String::from_utf8_lossy(&edited),
                String::from_utf8_lossy(expected)
            );
            assert_eq!(m.raw.len(), expected.len() as u64, "{:?}", m.raw);
            assert_eq!(m.raw.wire_len(), wire::wire_len(expected), "{:?}", m.raw);
            assert_eq!(m.summary, wire::summarize_wire(expected), "{:?}", m.raw);
        }
    }

    const MULTIPART: &[u8] = b"Received: from x\r\n\tby y\r\nAuthentication-Results: mx.example.org;\r\n\tdkim=pass\r\nFrom: a@b.test\r\nSubject: hi\r\nauthentication-results: other.test; spf=fail\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nAuthentication-Results: mx.example.org; spf=pass\r\n\r\ninner body\r\n--b--\r\n";

    #[tokio::test]
    async fn forged_fields_are_dropped_and_offsets_shift_with_the_new_field() {
        let body = MULTIPART.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let expected = [
            AR.as_bytes(),
            b"Received: from x\r\n\tby y\r\nFrom: a@b.test\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
            &MULTIPART[body..],
        ]
        .concat();
        edit_and_check(MULTIPART, AR, &expected).await;
    }

    #[tokio::test]
    async fn fields_in_the_body_or_a_nested_message_are_never_touched() {
        let raw = b"Subject: x\r\n\r\nAuthentication-Results: mx.example.org; spf=pass\r\n";
        let expected = [AR.as_bytes(), raw].concat();
        edit_and_check(raw, AR, &expected).await;
    }

    #[tokio::test]
    async fn lf_only_message_keeps_wire_offsets_right() {
        let raw = b"Subject: lf\nAuthentication-Results: mx.example.org;\n spf=pass\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nbody\n--q--\n";
        let expected = [
            AR.as_bytes(),
            b"Subject: lf\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nbody\n--q--\n",
        ]
        .concat();
        edit_and_check(raw, AR, &expected).await;
    }

    #[tokio::test]
    async fn removing_more_than_is_added_shifts_offsets_back() {
        let raw = b"Authentication-Results: mx.example.org; a very long forged field\r\nSubject: s\r\nContent-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\n\r\nx\r\n--z--\r\n";
        let expected = &raw[raw.iter().position(|b| *b == b'\n').unwrap() + 1..];
        edit_and_check(raw, "", expected).await;
        let short = "X-A: b\r\n";
        edit_and_check(raw, short, &[short.as_bytes(), expected].concat()).await;
    }

    #[tokio::test]
    async fn header_only_message_without_blank_line_is_edited() {
        let raw = b"Subject: s\r\nAuthentication-Results: mx.example.org; none\r\n";
        edit_and_check(raw, AR, &[AR.as_bytes(), b"Subject: s\r\n"].concat()).await;
    }

    #[tokio::test]
    async fn long_field_is_shown_truncated_and_dropped_whole() {
        let long = format!(
            "Authentication-Results: {}mx.example.org; spf=pass\r\n",
            "(x) ".repeat(FIELD_PREFIX_MAX)
        );
        let raw = [long.as_bytes(), b"Subject: s\r\n\r\nbody\r\n"].concat();
        let mut m = message(&raw);
        m.edit_header(AR, |field| {
            let forged = is_ar(field);
            assert_eq!(field.truncated, forged);
            assert!(field.value.len() < FIELD_PREFIX_MAX);
            forged
        })
        .await
        .expect("edit");
        assert_eq!(
            read_all(&m.raw),
            [AR.as_bytes(), b"Subject: s\r\n\r\nbody\r\n"].concat()
        );
    }

    #[tokio::test]
    async fn predicate_sees_name_and_unfolded_value_without_line_end() {
        let raw = b"Authentication-Results: mx.example.org;\r\n\tspf=pass\r\n\r\n";
        let mut m = message(raw);
        m.edit_header("", |field| {
            assert_eq!(field.name, b"Authentication-Results");
            assert_eq!(field.value, b" mx.example.org;\r\n\tspf=pass");
            assert!(!field.truncated);
            false
        })
        .await
        .expect("edit");
        assert_eq!(read_all(&m.raw), raw);
    }

    #[tokio::test]
    async fn malformed_new_fields_are_refused_before_anything_changes() {
        for bad in [
            "X-A: b",
            "X-A: b\n",
            "X-A: b\r\n\r\n",
            " folded: b\r\n",
            "no colon\r\n",
            "X-A: b\rc\r\n",
            "X-A: b\nX-B: c\r\n",
        ] {
            let mut m = message(MULTIPART);
            let err = m.edit_header(bad, is_ar).await.expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(read_all(&m.raw), MULTIPART, "{bad:?}");
        }
    }

    #[test]
    fn excised_reader_skips_ranges_across_small_reads() {
        let ranges: Arc<[Range<u64>]> = vec![0..2, 5..7, 9..10].into();
        let mut reader = Excised::new(&b"abcdefghij"[..], ranges);
        let mut out = Vec::new();
        let mut buf = [0u8; 1];
        loop {
            match reader.read(&mut buf).expect("read") {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(out, b"cdehi");
    }
}
