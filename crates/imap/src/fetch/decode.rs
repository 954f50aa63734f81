//! Streaming transformations of a section's bytes: undoing a transfer encoding for BINARY
//! (RFC 3516) and subsetting a header for HEADER.FIELDS (RFC 9051 §6.4.5). Each is fed chunks
//! and keeps only a few bytes of state, so a section is never needed whole. The decoders are
//! `postkeep-message`'s, shared with SEARCH.

use postkeep_message::{Base64Decoder, Base64Leniency, QuotedPrintableDecoder, TransferDecoder};

/// Longest field name a header filter buffers before deciding about a line. No real field name
/// comes close; a line without a colon that long is kept or dropped as one unmatched field.
const MAX_FIELD_NAME: usize = 998;

/// One transformation, with its state.
#[derive(Debug, Clone)]
pub(super) enum Transform {
    /// 7BIT, 8BIT and BINARY: nothing to undo.
    Identity,
    Decode(TransferDecoder),
    Fields(FieldFilter),
}

impl Transform {
    /// The decoder for a Content-Transfer-Encoding (upper-case, RFC 2045 §6.1); `None` when it is
    /// not one we can undo (RFC 3516 §4.3 UNKNOWN-CTE).
    pub(super) fn for_encoding(encoding: &str) -> Option<Self> {
        match encoding {
            "7BIT" | "8BIT" | "BINARY" => Some(Transform::Identity),
            // BINARY serves the part's content: a stray byte must not cut it short.
            "BASE64" => Some(Transform::Decode(TransferDecoder::Base64(
                Base64Decoder::new(Base64Leniency::SkipStrayBytes),
            ))),
            "QUOTED-PRINTABLE" => Some(Transform::Decode(TransferDecoder::QuotedPrintable(
                QuotedPrintableDecoder::default(),
            ))),
            _ => None,
        }
    }

    pub(super) fn fields(names: Vec<Vec<u8>>, exclude: bool) -> Self {
        Transform::Fields(FieldFilter::new(names, exclude))
    }

    /// Transforms the next chunk, appending the output to `out`.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            Transform::Identity => out.extend_from_slice(input),
            Transform::Decode(decoder) => decoder.feed(input, out),
            Transform::Fields(filter) => input.iter().for_each(|&b| filter.step(b, out)),
        }
    }

    /// Ends the input, appending whatever was held back.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Transform::Identity => {}
            Transform::Decode(decoder) => decoder.finish(out),
            Transform::Fields(filter) => filter.finish(out),
        }
    }
}

/// HEADER.FIELDS / HEADER.FIELDS.NOT (RFC 9051 §6.4.5): keeps the fields whose names match
/// (case-insensitively) or, with `exclude`, those that do not, each with its folded
/// continuation lines, and the blank line that ends the header.
#[derive(Debug, Clone)]
pub(super) struct FieldFilter {
    names: Vec<Vec<u8>>,
    exclude: bool,
    state: FieldState,
    /// Whether the current field is kept.
    keep: bool,
    /// The start of a field line, until its name is known.
    name: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    LineStart,
    /// A CR at the start of a line: the blank line, if an LF follows.
    LineStartCr,
    /// Reading a field name into `name`.
    Name,
    /// In the rest of a field line.
    Field,
    /// Past the blank line: the header is over.
    Done,
}

impl FieldFilter {
    fn new(names: Vec<Vec<u8>>, exclude: bool) -> Self {
        FieldFilter {
            names,
            exclude,
            state: FieldState::LineStart,
            // A continuation line before any field belongs to no listed field.
            keep: exclude,
            name: Vec::new(),
        }
    }

    fn step(&mut self, byte: u8, out: &mut Vec<u8>) {
        match self.state {
            FieldState::LineStart => self.line_start(byte, out),
            FieldState::LineStartCr => {
                if byte == b'\n' {
                    out.extend_from_slice(b"\r\n");
                    self.state = FieldState::Done;
                } else {
                    // A stray CR starting a line: part of a (malformed) field name.
                    self.name.push(b'\r');
                    self.state = FieldState::Name;
                    self.step(byte, out);
                }
            }
            FieldState::Name => {
                self.name.push(byte);
                if byte == b':' || byte == b'\n' || self.name.len() >= MAX_FIELD_NAME {
                    self.decide();
                    if self.keep {
                        out.extend_from_slice(&self.name);
                    }
                    self.name.clear();
                    self.state = if byte == b'\n' {
                        FieldState::LineStart
                    } else {
                        FieldState::Field
                    };
                }
            }
            FieldState::Field => {
                if self.keep {
                    out.push(byte);
                }
                if byte == b'\n' {
                    self.state = FieldState::LineStart;
                }
            }
            FieldState::Done => {}
        }
    }

    fn line_start(&mut self, byte: u8, out: &mut Vec<u8>) {
        match byte {
            // RFC 5322 §2.2.3: a line starting with white space continues the field.
            b' ' | b'\t' => {
                self.state = FieldState::Field;
                if self.keep {
                    out.push(byte);
                }
            }
            b'\r' => self.state = FieldState::LineStartCr,
            b'\n' => {
                out.push(b'\n');
                self.state = FieldState::Done;
            }
            _ => {
                self.name.push(byte);
                self.state = FieldState::Name;
            }
        }
    }

    /// Decides whether the field whose line starts with `name` is kept.
    fn decide(&mut self) {
        let name = self.name.strip_suffix(b":").unwrap_or(&self.name);
        // RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
        let name = name.trim_ascii_end();
        let listed = self
            .names
            .iter()
            .any(|wanted| wanted.eq_ignore_ascii_case(name));
        self.keep = listed != self.exclude;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == FieldState::Name {
            self.decide();
            if self.keep {
                out.extend_from_slice(&self.name);
            }
        }
        self.name.clear();
        self.state = FieldState::Done;
    }
}
