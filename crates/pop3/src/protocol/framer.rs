//! Splits the client byte stream into lines, bounding how much one line may buffer.

/// One framed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its CRLF (a bare LF is tolerated as the terminator).
    Complete(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to and including the LF.
    TooLong,
}

/// Buffers input until a line ends; at most `max` octets of one line are kept.
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Inside an overlong line: drop bytes until its LF.
    discarding: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends client bytes (whatever was read; may hold several pipelined lines).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next line if one is complete or known to be too long; `max` includes the CRLF.
    pub fn next_line(&mut self, max: usize) -> Option<Line> {
        loop {
            let Some(lf) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() >= max || self.discarding {
                    self.buf.clear();
                    if !self.discarding {
                        self.discarding = true;
                        return Some(Line::TooLong);
                    }
                }
                return None;
            };
            let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
            if self.discarding {
                // The tail of a line already answered with TooLong.
                self.discarding = false;
                continue;
            }
            if line.len() > max {
                return Some(Line::TooLong);
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(Line::Complete(line));
        }
    }

    /// Drops every buffered byte not framed yet; returns how many there were.
    pub fn discard(&mut self) -> usize {
        self.discarding = false;
        std::mem::take(&mut self.buf).len()
    }

    /// True when no unprocessed bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
