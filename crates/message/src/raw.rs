//! Small helpers over the raw message bytes.

use mail_parser::{Header, HeaderName};

/// First header with this name: RFC 5322 allows each envelope field once, and IMAP servers
/// conventionally report the first when a message repeats one.
pub fn first<'h, 'x>(headers: &'h [Header<'x>], name: &HeaderName<'_>) -> Option<&'h Header<'x>> {
    headers.iter().find(|h| &h.name == name)
}

/// Last header with this name: mail-parser splits MIME parts by the last Content-Type, so the
/// MIME fields follow the same rule to keep the reported type and the real structure in step.
pub fn last<'h, 'x>(headers: &'h [Header<'x>], name: &HeaderName<'_>) -> Option<&'h Header<'x>> {
    headers.iter().rev().find(|h| &h.name == name)
}

/// The header's value as written, unfolded (RFC 5322 §2.2.3: drop the CRLF of each folded
/// line) and trimmed. Bytes that are not UTF-8 become U+FFFD.
pub fn value(raw: &[u8], header: &Header<'_>) -> Option<String> {
    let start = usize::try_from(header.offset_start).ok()?;
    let end = usize::try_from(header.offset_end).ok()?;
    let bytes = raw.get(start..end)?;
    let unfolded: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    let text = String::from_utf8_lossy(&unfolded);
    Some(text.trim_matches(|c| c == ' ' || c == '\t').to_string())
}

/// Raw value of the first header with this name.
pub fn first_value(raw: &[u8], headers: &[Header<'_>], name: &HeaderName<'_>) -> Option<String> {
    first(headers, name).and_then(|h| value(raw, h))
}

/// Raw value of the last header with this name.
pub fn last_value(raw: &[u8], headers: &[Header<'_>], name: &HeaderName<'_>) -> Option<String> {
    last(headers, name).and_then(|h| value(raw, h))
}

/// RFC 9051 §7.5.2 body-fld-lines: LFs, plus one for a last line without a line ending.
pub fn count_lines(content: &[u8]) -> u64 {
    let lfs = count_lf(content);
    match content.last() {
        Some(b'\n') | None => lfs,
        Some(_) => lfs + 1,
    }
}

/// Answers [`count_lines`] for any range in time independent of its length, so nested
/// message/rfc822 parts (up to [`crate::MAX_DEPTH`] of them over the same bytes) do not rescan
/// the message once per level.
pub struct LineIndex<'r> {
    raw: &'r [u8],
    /// `lf_before[i]` = number of LFs in `raw[..i * BLOCK]`.
    lf_before: Vec<u64>,
}

const BLOCK: usize = 4096;

impl<'r> LineIndex<'r> {
    pub fn new(raw: &'r [u8]) -> Self {
        let mut lf_before = Vec::with_capacity(raw.len() / BLOCK + 1);
        let mut total = 0;
        lf_before.push(0);
        for block in raw.chunks(BLOCK) {
            total += count_lf(block);
            lf_before.push(total);
        }
        LineIndex { raw, lf_before }
    }

    /// [`count_lines`] of `raw[start..end]`; 0 for an out-of-range span.
    pub fn lines(&self, start: usize, end: usize) -> u64 {
        let Some(content) = self.raw.get(start..end) else {
            return 0;
        };
        let lfs = self.lfs_before(end).saturating_sub(self.lfs_before(start));
        match content.last() {
            Some(b'\n') | None => lfs,
            Some(_) => lfs + 1,
        }
    }

    fn lfs_before(&self, pos: usize) -> u64 {
        let block = pos / BLOCK;
        let whole = self.lf_before.get(block).copied().unwrap_or(0);
        whole + count_lf(self.raw.get(block * BLOCK..pos).unwrap_or_default())
    }
}

fn count_lf(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// Offset just past the blank line that ends the header block (RFC 5322 §2.1), or the end of
/// the input when there is none (then everything is header). Accepts LF-only line endings.
pub fn header_end(raw: &[u8]) -> usize {
    let mut line_start = 0;
    for (i, b) in raw.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        let line = raw.get(line_start..i).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            return i + 1;
        }
        line_start = i + 1;
    }
    raw.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_lines_counts_a_final_unterminated_line() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 2);
        assert_eq!(count_lines(b"a\nb\n\n"), 3);
    }

    #[test]
    fn line_index_agrees_with_count_lines_across_blocks() {
        let mut raw = Vec::new();
        for i in 0..3000 {
            raw.extend_from_slice(if i % 3 == 0 { b"abc\r\n" } else { b"x\n" });
        }
        let index = LineIndex::new(&raw);
        for (start, end) in [
            (0, 0),
            (0, raw.len()),
            (5, 4097),
            (4095, 8200),
            (4096, 4096),
            (1, 9000),
        ] {
            assert_eq!(
                index.lines(start, end),
                count_lines(&raw[start..end]),
                "{start}..{end}"
            );
        }
        assert_eq!(index.lines(10, raw.len() + 1), 0);
    }

    #[test]
    fn header_end_finds_crlf_and_lf_blank_lines() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"\r\nbody"), 2);
        assert_eq!(header_end(b"A: b\r\nC: d"), 10);
        assert_eq!(header_end(b""), 0);
    }
}
