//! Streaming transformations of a section's bytes: undoing a transfer encoding for BINARY
//! (RFC 3516) and subsetting a header for HEADER.FIELDS (RFC 9051 §6.4.5). Each is fed chunks
//! and keeps only a few bytes of state, so a section is never needed whole.

/// Longest run of spaces and tabs a quoted-printable decoder holds back to see whether it ends
/// the line (and is dropped). RFC 5322 §2.1.1 lines are at most 998 octets; a longer run is
/// content.
const MAX_PENDING_SPACE: usize = 998;

/// Longest field name a header filter buffers before deciding about a line. No real field name
/// comes close; a line without a colon that long is kept or dropped as one unmatched field.
const MAX_FIELD_NAME: usize = 998;

/// One transformation, with its state.
#[derive(Debug, Clone)]
pub(super) enum Transform {
    /// 7BIT, 8BIT and BINARY: nothing to undo.
    Identity,
    Base64(Base64),
    QuotedPrintable(QuotedPrintable),
    Fields(FieldFilter),
}

impl Transform {
    /// The decoder for a Content-Transfer-Encoding (upper-case, RFC 2045 §6.1); `None` when it is
    /// not one we can undo (RFC 3516 §4.3 UNKNOWN-CTE).
    pub(super) fn for_encoding(encoding: &str) -> Option<Self> {
        match encoding {
            "7BIT" | "8BIT" | "BINARY" => Some(Transform::Identity),
            "BASE64" => Some(Transform::Base64(Base64::default())),
            "QUOTED-PRINTABLE" => Some(Transform::QuotedPrintable(QuotedPrintable::default())),
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
            Transform::Base64(decoder) => decoder.feed(input, out),
            Transform::QuotedPrintable(decoder) => input.iter().for_each(|&b| decoder.step(b, out)),
            Transform::Fields(filter) => input.iter().for_each(|&b| filter.step(b, out)),
        }
    }

    /// Ends the input, appending whatever was held back.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Transform::Identity | Transform::Base64(_) => {}
            Transform::QuotedPrintable(decoder) => decoder.finish(out),
            Transform::Fields(filter) => filter.finish(out),
        }
    }
}

/// RFC 2045 §6.8 base64, leniently: characters outside the alphabet (line breaks, stray
/// bytes) are skipped, `=` ends a quantum, a missing final padding is tolerated.
#[derive(Debug, Clone, Default)]
pub(super) struct Base64 {
    bits: u32,
    count: u32,
}

impl Base64 {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    // Padding: the bits left over from the quantum are not data.
                    *self = Base64::default();
                    continue;
                }
                _ => continue,
            };
            self.bits = (self.bits << 6) | u32::from(value);
            self.count += 6;
            if self.count >= 8 {
                self.count -= 8;
                out.push((self.bits >> self.count) as u8);
                self.bits &= (1 << self.count) - 1;
            }
        }
    }
}

/// RFC 2045 §6.7 quoted-printable: `=XX` escapes, soft line breaks (`=` at the end of a line,
/// also when transport added spaces after it), and trailing spaces dropped (rule 3: they were
/// added in transport). Malformed escapes are kept as they are.
#[derive(Debug, Clone, Default)]
pub(super) struct QuotedPrintable {
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

impl QuotedPrintable {
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
                b' ' | b'\t' if self.space.len() < MAX_PENDING_SPACE => self.space.push(byte),
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
                if self.space.len() >= MAX_PENDING_SPACE {
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

    fn finish(&mut self, out: &mut Vec<u8>) {
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
        *self = QuotedPrintable::default();
    }
}

fn hex(byte: u8) -> Option<u8> {
    // RFC 2045 §6.7 asks for upper case; lower case is common enough to accept.
    (byte as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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
