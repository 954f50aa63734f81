//! TOP (RFC 1939 §7): where the header and the first n body lines of a wire form end.

/// What the current line holds so far; only "" and "\r" make a blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineSoFar {
    Empty,
    Cr,
    Text,
}

/// Fed the wire form chunk by chunk, says how much of each chunk belongs to the TOP output.
#[derive(Debug)]
pub struct TopCutter {
    in_body: bool,
    line: LineSoFar,
    lines_left: u64,
    done: bool,
}

impl TopCutter {
    pub fn new(body_lines: u64) -> Self {
        Self {
            in_body: false,
            line: LineSoFar::Empty,
            lines_left: body_lines,
            done: false,
        }
    }

    /// True once the output is complete: the reader can stop.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The length of the prefix of `chunk` to send.
    pub fn take(&mut self, chunk: &[u8]) -> usize {
        if self.done {
            return 0;
        }
        for (i, &byte) in chunk.iter().enumerate() {
            if byte != b'\n' {
                self.line = match (self.line, byte) {
                    (LineSoFar::Empty, b'\r') => LineSoFar::Cr,
                    _ => LineSoFar::Text,
                };
                continue;
            }
            let blank = self.line != LineSoFar::Text;
            self.line = LineSoFar::Empty;
            if self.in_body {
                self.lines_left = self.lines_left.saturating_sub(1);
            } else if blank {
                // The empty line ending the header (RFC 5322 §2.1) is sent with it.
                self.in_body = true;
            } else {
                continue;
            }
            if self.lines_left == 0 {
                self.done = true;
                return i + 1;
            }
        }
        chunk.len()
    }
}
