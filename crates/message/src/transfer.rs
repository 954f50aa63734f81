//! Lenient, streaming decoders for the RFC 2045 §6 transfer encodings: base64 (§6.8) and
//! quoted-printable (§6.7). Each is fed chunks and keeps only a few bytes of state (a bounded
//! run of spaces, at most one held-back line), so a part is never needed whole, and its output
//! does not depend on where the input is cut. They never fail: what cannot be decoded is kept
//! (quoted-printable) or dropped (base64).
//!
//! Used by IMAP FETCH BINARY (RFC 3516) and by SEARCH for the parts mail-parser gives up on.

/// Longest run of octets a decoder holds back to decide about a line: RFC 5322 §2.1.1 lines are
/// at most 998 octets. Past it, a quoted-printable run of spaces is content and a base64 line is
/// judged in pieces of this length.
const MAX_LINE: usize = 998;

/// A transfer-encoding decoder, with its state.
#[derive(Debug, Clone)]
pub enum TransferDecoder {
    Base64(Base64Decoder),
    QuotedPrintable(QuotedPrintableDecoder),
}

impl TransferDecoder {
    /// Decodes the next chunk, appending the output to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            TransferDecoder::Base64(decoder) => decoder.feed(input, out),
            TransferDecoder::QuotedPrintable(decoder) => decoder.feed(input, out),
        }
    }

    /// Ends the input, appending whatever was held back, and makes the decoder ready for new
    /// input.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            TransferDecoder::Base64(decoder) => decoder.finish(out),
            TransferDecoder::QuotedPrintable(decoder) => decoder.finish(out),
        }
    }

    /// Decodes `input` as the whole of a part.
    pub fn decode(mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        self.feed(input, &mut out);
        self.finish(&mut out);
        out
    }
}

/// What a [`Base64Decoder`] makes of text that is not base64. Well-formed base64 (alphabet
/// characters, `=` padding, line breaks) decodes the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Leniency {
    /// Skips every byte outside the alphabet, wherever it stands: RFC 2045 §6.8 "Any characters
    /// outside of the base64 alphabet are to be ignored". For IMAP BINARY (RFC 3516): the client
    /// asked for the part's content, and a stray byte in one line must not cut an attachment
    /// short.
    SkipStrayBytes,
    /// Ends the data at the first line holding anything but alphabet characters, `=` and white
    /// space. For SEARCH over parts mail-parser gave up on: those often run into a boundary
    /// delimiter the parser did not find or a footer a mailing list appended, and decoding such
    /// lines would only add noise bytes to match against; the text is all in the lines before.
    StopAtTextLine,
}

/// RFC 2045 §6.8 base64, leniently: line breaks are skipped, `=` padding ends a quantum and
/// whatever follows starts afresh (concatenated encodings), a missing final padding is
/// tolerated; other bytes as the [`Base64Leniency`] says.
#[derive(Debug, Clone)]
pub struct Base64Decoder {
    leniency: Base64Leniency,
    quantum: Quantum,
    /// [`Base64Leniency::StopAtTextLine`]: the decoded bytes of the current line, held back
    /// until the line turns out to be base64.
    line: Vec<u8>,
    /// Octets of the current line read so far (up to [`MAX_LINE`]).
    line_len: usize,
    /// [`Base64Leniency::StopAtTextLine`]: a line that is not base64 was met; the rest is not
    /// data.
    ended: bool,
}

/// Bits read but not yet emitted as a byte: `count` of them, right-aligned in `bits`.
#[derive(Debug, Clone, Copy, Default)]
struct Quantum {
    bits: u32,
    count: u32,
}

impl Quantum {
    /// Takes one alphabet character's value or padding.
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) {
        if byte == b'=' {
            // The bits left over in a padded quantum are not data (RFC 4648 §3.5).
            *self = Quantum::default();
        } else if let Some(value) = sextet(byte) {
            self.bits = (self.bits << 6) | u32::from(value);
            self.count += 6;
            if self.count >= 8 {
                self.count -= 8;
                // Truncation intended: the byte is the 8 bits above the remaining ones.
                out.push((self.bits >> self.count) as u8);
                self.bits &= (1 << self.count) - 1;
            }
        }
    }
}

/// The value of a base64 alphabet character (RFC 2045 §6.8 Table 1).
fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

impl Base64Decoder {
    pub fn new(leniency: Base64Leniency) -> Self {
        Base64Decoder {
            leniency,
            quantum: Quantum::default(),
            line: Vec::new(),
            line_len: 0,
            ended: false,
        }
    }

    /// Decodes the next chunk, appending the output to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self.leniency {
            Base64Leniency::SkipStrayBytes => {
                for &byte in input {
                    self.quantum.push(byte, out);
                }
            }
            Base64Leniency::StopAtTextLine => {
                for &byte in input {
                    if self.ended {
                        return;
                    }
                    self.line_step(byte, out);
                }
            }
        }
    }

    fn line_step(&mut self, byte: u8, out: &mut Vec<u8>) {
        if byte == b'\n' {
            out.append(&mut self.line);
            self.line_len = 0;
        } else if sextet(byte).is_some() || byte == b'=' || byte.is_ascii_whitespace() {
            if self.line_len == MAX_LINE {
                // Longer than a line may be: what was read of it so far is decided on.
                out.append(&mut self.line);
                self.line_len = 0;
            }
            self.line_len += 1;
            self.quantum.push(byte, &mut self.line);
        } else {
            self.line.clear();
            self.ended = true;
        }
    }

    /// Ends the input, appending whatever was held back, and makes the decoder ready for new
    /// input.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        // The end of the data ends the last line. A lone leftover character is not data.
        out.append(&mut self.line);
        *self = Base64Decoder::new(self.leniency);
    }
}

/// RFC 2045 §6.7 quoted-printable: `=XX` escapes (lower-case hex accepted), soft line breaks
/// (`=` at the end of a line, also when transport added spaces after it), and trailing spaces
/// and tabs dropped (rule 3: they were added in transport; mail-parser drops them too).
/// Malformed escapes are kept as written, as §6.7 note (2) suggests for robust decoders.
#[derive(Debug, Clone, Default)]
pub struct QuotedPrintableDecoder {
    state: QpState,
    /// Spaces and tabs held back: dropped if the line ends here.
    space: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum QpState {
    #[default]
    Text,
    /// After a CR (held back with the spaces before it).
    Cr,
    /// After `=`.
    Eq,
    /// After `=` and one hex digit (kept as written).
    EqHex(u8),
    /// After `=` and spaces or tabs (in `space`).
    EqSpace,
    /// After `=`, maybe spaces, and CR.
    EqCr,
}

impl QuotedPrintableDecoder {
    /// Decodes the next chunk, appending the output to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            self.step(byte, out);
        }
    }

    fn step(&mut self, byte: u8, out: &mut Vec<u8>) {
        match self.state {
            QpState::Text => self.text(byte, out),
            QpState::Cr => {
                self.state = QpState::Text;
                if byte == b'\n' {
                    self.space.clear();
                    out.extend_from_slice(b"\r\n");
                } else {
                    self.flush_space(out);
                    out.push(b'\r');
                    self.text(byte, out);
                }
            }
            QpState::Eq => match byte {
                b' ' | b'\t' => {
                    self.space.push(byte);
                    self.state = QpState::EqSpace;
                }
                b'\r' => self.state = QpState::EqCr,
                b'\n' => self.state = QpState::Text,
                _ if hex(byte).is_some() => self.state = QpState::EqHex(byte),
                _ => {
                    self.state = QpState::Text;
                    out.push(b'=');
                    self.text(byte, out);
                }
            },
            QpState::EqHex(first) => {
                self.state = QpState::Text;
                match (hex(first), hex(byte)) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => {
                        out.extend_from_slice(&[b'=', first]);
                        self.text(byte, out);
                    }
                }
            }
            QpState::EqSpace => match byte {
                b' ' | b'\t' if self.space.len() < MAX_LINE => self.space.push(byte),
                b'\r' => self.state = QpState::EqCr,
                b'\n' => self.soft_break(),
                _ => self.broken_soft_break(&[], byte, out),
            },
            QpState::EqCr => match byte {
                b'\n' => self.soft_break(),
                _ => self.broken_soft_break(b"\r", byte, out),
            },
        }
    }

    fn text(&mut self, byte: u8, out: &mut Vec<u8>) {
        match byte {
            b' ' | b'\t' => {
                if self.space.len() >= MAX_LINE {
                    self.flush_space(out);
                }
                self.space.push(byte);
            }
            b'\r' => self.state = QpState::Cr,
            b'\n' => {
                self.space.clear();
                out.push(b'\n');
            }
            b'=' => {
                self.flush_space(out);
                self.state = QpState::Eq;
            }
            _ => {
                self.flush_space(out);
                out.push(byte);
            }
        }
    }

    fn soft_break(&mut self) {
        self.space.clear();
        self.state = QpState::Text;
    }

    /// `=`, spaces and `tail` that turned out not to end the line: kept as written.
    fn broken_soft_break(&mut self, tail: &[u8], byte: u8, out: &mut Vec<u8>) {
        out.push(b'=');
        self.flush_space(out);
        out.extend_from_slice(tail);
        self.state = QpState::Text;
        self.text(byte, out);
    }

    fn flush_space(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.space);
    }

    /// Ends the input, appending whatever was held back, and makes the decoder ready for new
    /// input.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.state {
            // The end of the data ends the last line: its trailing spaces go, and so does a
            // final soft line break.
            QpState::Text | QpState::Eq | QpState::EqSpace | QpState::EqCr => {}
            QpState::Cr => {
                self.flush_space(out);
                out.push(b'\r');
            }
            QpState::EqHex(first) => out.extend_from_slice(&[b'=', first]),
        }
        *self = QuotedPrintableDecoder::default();
    }
}

fn hex(byte: u8) -> Option<u8> {
    // RFC 2045 §6.7 asks for upper case; lower case is common enough to accept.
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Base64Leniency::{SkipStrayBytes, StopAtTextLine};

    fn run(mut decoder: TransferDecoder, input: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            decoder.feed(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    /// The output of `decoder` over `input` fed whole, after checking that every piece size
    /// (so every cut inside an `=XX` escape, a base64 quantum or a line) gives the same.
    fn decode(decoder: TransferDecoder, input: &[u8]) -> Vec<u8> {
        let whole = decoder.clone().decode(input);
        for piece in 1..input.len() {
            assert_eq!(
                run(decoder.clone(), input, piece),
                whole,
                "pieces of {piece} octets of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        whole
    }

    fn base64(leniency: Base64Leniency) -> TransferDecoder {
        TransferDecoder::Base64(Base64Decoder::new(leniency))
    }

    fn qp() -> TransferDecoder {
        TransferDecoder::QuotedPrintable(QuotedPrintableDecoder::default())
    }

    #[test]
    fn base64_well_formed_input_decodes_the_same_under_either_leniency() {
        let input = b"SGVsbG8s\r\nIHdvcmxk\r\nIQ==\r\n";
        for leniency in [SkipStrayBytes, StopAtTextLine] {
            assert_eq!(decode(base64(leniency), input), b"Hello, world!");
        }
    }

    #[test]
    fn base64_skipping_stray_bytes_ignores_them_anywhere() {
        assert_eq!(
            decode(base64(SkipStrayBytes), b"SGVs\r\nbG8s\r\n IHdv*cmxk"),
            b"Hello, world"
        );
    }

    #[test]
    fn base64_stopping_at_text_ends_at_the_first_line_that_is_not_base64() {
        // "Hello, world" then a boundary delimiter the parser never matched and a list footer.
        let body = b"SGVsbG8s\r\nIHdvcmxk\r\n\r\n------=_NextPart_000\r\nfooter words\r\n";
        assert_eq!(decode(base64(StopAtTextLine), body), b"Hello, world");
        // Nothing of the text line is decoded, not even its base64-looking start.
        assert_eq!(
            decode(base64(StopAtTextLine), b"SGVs\r\nbG8s IHdv*cmxk\r\nIQ=="),
            b"Hel"
        );
        // The last line needs no line break to count.
        assert_eq!(decode(base64(StopAtTextLine), b"SGVs\r\nbG8s"), b"Hello,");
    }

    #[test]
    fn base64_stopping_at_text_holds_back_at_most_one_line_of_998_octets() {
        // A line longer than RFC 5322 allows is decided on in pieces, so memory stays bounded:
        // the first 998 characters (748 bytes) are out before the stray byte ends the data, and
        // only the rest of the line (152 bytes) is held back.
        let mut decoder = Base64Decoder::new(StopAtTextLine);
        let mut out = Vec::new();
        decoder.feed(&[b'A'; 1200], &mut out);
        assert_eq!((out.len(), decoder.line.len()), (748, 152));
        decoder.feed(b"*AAAA\n", &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, vec![0; 748]);
    }

    #[test]
    fn base64_padding_ends_a_quantum_and_decoding_goes_on() {
        for leniency in [SkipStrayBytes, StopAtTextLine] {
            // Concatenated encodings, on lines of their own or not.
            assert_eq!(decode(base64(leniency), b"YWI=\nY2Q=\n"), b"abcd");
            assert_eq!(decode(base64(leniency), b"YQ==Yg=="), b"ab");
            assert_eq!(decode(base64(leniency), b"QQ==QkM="), b"ABC");
            assert_eq!(decode(base64(leniency), b""), b"");
        }
    }

    #[test]
    fn base64_missing_final_padding_is_tolerated_but_a_lone_character_is_not_data() {
        for leniency in [SkipStrayBytes, StopAtTextLine] {
            assert_eq!(decode(base64(leniency), b"QUJDRA"), b"ABCD");
            assert_eq!(decode(base64(leniency), b"QUJDR"), b"ABC");
        }
    }

    #[test]
    fn quoted_printable_decodes_escapes_in_either_case_and_soft_line_breaks() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"K=E4se mort=\r\ngage", b"K\xe4se mortgage"),
            (b"a=\r\nb", b"ab"),
            (b"=41=4a=4A", b"AJJ"),
            (b"=3d=3D", b"=="),
            // Transport may add spaces after a soft line break's `=`.
            (b"soft = \t\nbreak=\n", b"soft break"),
            // The end of the data ends the last line.
            (b"end= ", b"end"),
        ];
        for (input, output) in cases {
            assert_eq!(decode(qp(), input), output, "{input:?}");
        }
    }

    #[test]
    fn quoted_printable_drops_trailing_white_space_but_not_encoded_space() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"a \t\r\nb  ", b"a\r\nb"),
            (b"a  =20\r\n", b"a   \r\n"),
            (b"lf only \nx", b"lf only\nx"),
            (b"bare\rcr \r", b"bare\rcr \r"),
        ];
        for (input, output) in cases {
            assert_eq!(decode(qp(), input), output, "{input:?}");
        }
    }

    #[test]
    fn quoted_printable_keeps_malformed_escapes_as_written() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"x=4", b"x=4"),
            (b"x=G1", b"x=G1"),
            (b"x=\rb", b"x=\rb"),
            (b"x=  y", b"x=  y"),
            (b"=A=41", b"=AA"),
            // An underline of `=` (hard_ham/00005…): its last `=` is a soft line break.
            (b"====\n=ZZ 1=3", b"====ZZ 1=3"),
        ];
        for (input, output) in cases {
            assert_eq!(decode(qp(), input), output, "{input:?}");
        }
    }

    #[test]
    fn quoted_printable_holds_back_a_bounded_run_of_spaces() {
        // Spaces beyond what a line can hold are content; the last ones still end the line.
        let mut input = vec![b' '; 1000];
        input.extend_from_slice(b"\r\nx");
        let mut output = vec![b' '; 998];
        output.extend_from_slice(b"\r\nx");
        assert_eq!(decode(qp(), &input), output);
    }
}
