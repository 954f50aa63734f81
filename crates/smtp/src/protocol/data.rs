//! DATA body decoding: end-of-data detection (RFC 5321 §4.1.1.4), dot-unstuffing (§4.5.2) and
//! line-ending policing (§2.3.8).
//!
//! SMTP smuggling relies on the receiver accepting an end-of-data sequence the sender did not
//! consider one (`<LF>.<LF>`, `<CR>.<CR>`, ...). Here the only terminator is `<CRLF>.<CRLF>`;
//! every other combination is content, and any CR or LF that is not part of a CRLF pair is
//! recorded so the session can refuse the message once the real end arrives.

/// Where the decoder stands relative to line structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Just after a CRLF (or at the start of the body: the DATA line's CRLF counts).
    LineStart,
    /// Inside a line.
    Mid,
    /// Saw a CR inside a line; it is held back until we know whether LF follows.
    Cr,
    /// Saw `.` at a line start; the dot is dropped unless it turns out to end the data.
    Dot,
    /// Saw `.` CR at a line start.
    DotCr,
}

/// Incremental DATA decoder: feed raw bytes, get the unstuffed body out.
#[derive(Debug, Clone)]
pub(crate) struct DataDecoder {
    pos: Pos,
    bare_line_ending: bool,
}

/// Result of one [`DataDecoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes used; when `finished`, the bytes after them belong to the next command.
    pub consumed: usize,
    /// The `<CRLF>.<CRLF>` terminator was seen.
    pub finished: bool,
}

impl DataDecoder {
    pub(crate) fn new() -> Self {
        Self {
            pos: Pos::LineStart,
            bare_line_ending: false,
        }
    }

    /// True once a CR or LF outside a CRLF pair has been seen (RFC 5321 §2.3.8).
    pub(crate) fn bare_line_ending(&self) -> bool {
        self.bare_line_ending
    }

    /// Decodes as much of `input` as possible, appending body bytes (CRLF kept) to `out`.
    /// Stops right after the terminator, so pipelined commands after it stay unconsumed.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        let mut used = 0;
        while let Some(mut rest) = input.get(used..).filter(|r| !r.is_empty()) {
            if self.pos == Pos::Mid {
                // Fast path: copy plain line content in bulk up to the next CR or LF.
                let run = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                out.extend_from_slice(rest.get(..run).unwrap_or_default());
                used += run;
                rest = rest.get(run..).unwrap_or_default();
            }
            let Some(&byte) = rest.first() else { break };
            used += 1;
            if self.step(byte, out) {
                return Decoded {
                    consumed: used,
                    finished: true,
                };
            }
        }
        Decoded {
            consumed: used,
            finished: false,
        }
    }

    /// Handles one byte outside the fast path; returns true at end-of-data.
    fn step(&mut self, byte: u8, out: &mut Vec<u8>) -> bool {
        match (self.pos, byte) {
            (Pos::LineStart, b'.') => self.pos = Pos::Dot,
            (Pos::Dot, b'\r') => self.pos = Pos::DotCr,
            (Pos::DotCr, b'\n') => return true,
            (Pos::Cr, b'\n') => {
                out.extend_from_slice(b"\r\n");
                self.pos = Pos::LineStart;
            }
            // A held-back CR not followed by LF is bare; the byte after it is ordinary content.
            // For `.` CR x the leading dot was stuffing and stays dropped.
            (Pos::Cr | Pos::DotCr, _) => {
                self.bare_line_ending = true;
                out.push(b'\r');
                self.in_line(byte, out);
            }
            // In `Dot` the leading dot is dropped (RFC 5321 §4.5.2) and the byte is content.
            (Pos::LineStart | Pos::Mid | Pos::Dot, _) => self.in_line(byte, out),
        }
        false
    }

    /// Handles a byte that is part of a line's content.
    fn in_line(&mut self, byte: u8, out: &mut Vec<u8>) {
        match byte {
            b'\r' => self.pos = Pos::Cr,
            b'\n' => {
                // A bare LF never starts a new line for end-of-data purposes.
                self.bare_line_ending = true;
                out.push(b'\n');
                self.pos = Pos::Mid;
            }
            _ => {
                out.push(byte);
                self.pos = Pos::Mid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (body, bytes consumed, finished, bare).
    fn run(input: &[u8], step: usize) -> (Vec<u8>, usize, bool, bool) {
        let mut decoder = DataDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let d = decoder.decode(piece, &mut out);
            used += d.consumed;
            if d.finished {
                return (out, used, true, decoder.bare_line_ending());
            }
        }
        (out, used, false, decoder.bare_line_ending())
    }

    #[test]
    fn crlf_dot_crlf_ends_data_and_keeps_last_crlf() {
        for step in [1, 2, 3, 100] {
            let (body, used, done, bare) = run(b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n", step);
            assert!(done);
            assert!(!bare);
            assert_eq!(body, b"Subject: x\r\n\r\nhi\r\n");
            assert_eq!(
                used, 21,
                "bytes after the terminator must stay for the next command"
            );
        }
    }

    #[test]
    fn empty_body_is_just_the_terminator() {
        let (body, used, done, _) = run(b".\r\n", 1);
        assert!(done);
        assert!(body.is_empty());
        assert_eq!(used, 3);
    }

    #[test]
    fn dot_unstuffing_removes_one_leading_dot() {
        let (body, _, done, bare) = run(b"..\r\n...x\r\na.b\r\n.\r\n", 1);
        assert!(done && !bare);
        assert_eq!(body, b".\r\n..x\r\na.b\r\n");
    }

    #[test]
    fn smuggling_sequences_are_content_not_end_of_data() {
        let variants: [&[u8]; 6] = [
            b"a\n.\nMAIL FROM:<x@y>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\rMAIL FROM:<x@y>\r\n",
            b"a\r.\rMAIL FROM:<x@y>\r\n",
        ];
        for v in variants {
            for step in [1, 4, 1000] {
                let (_, used, done, bare) = run(v, step);
                assert!(
                    !done,
                    "{:?} must not end the data",
                    String::from_utf8_lossy(v)
                );
                assert_eq!(used, v.len());
                assert!(bare, "{:?} must be flagged", String::from_utf8_lossy(v));
            }
        }
    }

    #[test]
    fn bare_cr_before_crlf_is_flagged_and_kept() {
        let (body, _, done, bare) = run(b"a\r\r\n.\r\n", 1);
        assert!(done && bare);
        assert_eq!(body, b"a\r\r\n");
    }

    #[test]
    fn clean_binary_ish_content_is_not_flagged() {
        let (body, _, done, bare) = run(b"\x00\xff\x7f\t\r\n.\r\n", 1);
        assert!(done && !bare);
        assert_eq!(body, b"\x00\xff\x7f\t\r\n");
    }
}
