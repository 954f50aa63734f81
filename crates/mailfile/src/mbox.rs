//! mboxrd reading and writing (the "From " quoting scheme of
//! <https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml>).
//!
//! Framing: `From sender date\n`, the quoted message, then exactly one `\n`. The reader drops
//! exactly one trailing `\n` per message, so any message (CRLF or LF, with or without a final
//! newline) comes back byte for byte.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};

use crate::{envelope, escape, header, BadMessage, ImportedMessage};

/// Streams messages out of an mbox, one at a time (never the whole file in memory).
pub struct MboxReader<R> {
    reader: R,
    /// Reused line buffer.
    line: Vec<u8>,
    /// Separator line already read that opens the next message.
    next_envelope: Option<Vec<u8>>,
    lines_read: u64,
    messages: usize,
    done: bool,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(reader: R) -> Self {
        MboxReader {
            reader,
            line: Vec::new(),
            next_envelope: None,
            lines_read: 0,
            messages: 0,
            done: false,
        }
    }

    /// Number of messages (good or bad) yielded so far.
    pub fn messages_read(&self) -> usize {
        self.messages
    }

    /// Reads up to the next separator or EOF. `Err` only for an I/O error.
    fn read_chunk(&mut self) -> io::Result<(Option<Vec<u8>>, Vec<u8>)> {
        let mut envelope = self.next_envelope.take();
        let mut body = Vec::new();
        let mut prev_blank = false;
        loop {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                self.done = true;
                break;
            }
            let first_line = self.lines_read == 0;
            self.lines_read += 1;
            if envelope::is_separator(&self.line, first_line, prev_blank) {
                if first_line {
                    envelope = Some(self.line.clone());
                    continue;
                }
                self.next_envelope = Some(self.line.clone());
                break;
            }
            prev_blank = self.line == b"\n" || self.line == b"\r\n";
            escape::unescape_line_into(&self.line, &mut body);
        }
        // The writer's framing newline (or the blank line before the next `From `).
        if body.last() == Some(&b'\n') {
            body.pop();
        }
        Ok((envelope, body))
    }

    fn origin(&self) -> String {
        format!("mbox #{}", self.messages)
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = Result<ImportedMessage, BadMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let (envelope, raw) = match self.read_chunk() {
                Ok(chunk) => chunk,
                Err(e) => {
                    // A failing reader may fail forever: report once and stop.
                    self.done = true;
                    self.messages += 1;
                    return Some(Err(BadMessage {
                        origin: self.origin(),
                        reason: format!("read error: {e}"),
                    }));
                }
            };
            // Blank lines before the first envelope are not a message.
            if envelope.is_none() && raw.iter().all(|b| matches!(b, b'\n' | b'\r')) {
                continue;
            }
            self.messages += 1;
            let origin = self.origin();
            return Some(match header::check_message(&raw) {
                Ok(()) => Ok(ImportedMessage {
                    raw,
                    flags: Vec::new(),
                    internal_date: envelope.as_deref().and_then(envelope::parse_date),
                    origin,
                }),
                Err(reason) => Err(BadMessage { origin, reason }),
            });
        }
    }
}

/// Writes messages in mboxrd form. Each message is assembled in memory and written with a
/// single `write_all`, so wrapping `W` in a `BufWriter` is optional.
pub struct MboxWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> MboxWriter<W> {
    pub fn new(inner: W) -> Self {
        MboxWriter {
            inner,
            buf: Vec::new(),
        }
    }

    /// Appends one message. `sender` goes into the envelope line (a placeholder is used if it
    /// is empty or contains whitespace); `date` is usually the internal date.
    pub fn write_message(
        &mut self,
        raw: &[u8],
        sender: &str,
        date: DateTime<Utc>,
    ) -> io::Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(envelope::format(sender, date).as_bytes());
        escape::escape_into(raw, &mut self.buf);
        self.buf.push(b'\n');
        self.inner.write_all(&self.buf)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn read_all(data: &[u8]) -> Vec<Result<ImportedMessage, BadMessage>> {
        MboxReader::new(data).collect()
    }

    #[test]
    fn foreign_mbox_with_blank_line_separators_splits_and_keeps_one_newline() {
        let data = b"From a@b Thu Aug 22 12:36:23 2002\nSubject: 1\n\nbody one\n\n\
From c@d Fri Aug 23 01:02:03 2002\nSubject: 2\n\nbody two\n";
        let got = read_all(data);
        assert_eq!(got.len(), 2);
        let one = got[0].as_ref().unwrap();
        assert_eq!(one.raw, b"Subject: 1\n\nbody one\n".to_vec());
        assert_eq!(one.origin, "mbox #1");
        assert_eq!(
            one.internal_date,
            Utc.with_ymd_and_hms(2002, 8, 22, 12, 36, 23).single()
        );
        let two = got[1].as_ref().unwrap();
        assert_eq!(two.raw, b"Subject: 2\n\nbody two".to_vec());
        assert_eq!(two.origin, "mbox #2");
    }

    #[test]
    fn bad_message_in_the_middle_does_not_stop_reading() {
        let data = b"From a Thu Aug 22 12:36:23 2002\nSubject: 1\n\nx\n\n\
From b Thu Aug 22 12:36:23 2002\nnot a header\n\n\
From c Thu Aug 22 12:36:23 2002\n\n\
From d Thu Aug 22 12:36:23 2002\nSubject: 4\n\ny\n";
        let got = read_all(data);
        assert_eq!(got.len(), 4);
        assert!(got[0].is_ok());
        assert_eq!(got[1].as_ref().unwrap_err().origin, "mbox #2");
        assert_eq!(got[2].as_ref().unwrap_err().reason, "empty message");
        assert!(got[3].is_ok());
    }

    #[test]
    fn empty_stream_yields_nothing() {
        assert!(read_all(b"").is_empty());
        assert!(read_all(b"\n\n").is_empty());
    }

    #[test]
    fn io_error_is_reported_once_then_iteration_ends() {
        struct Failing;
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let got: Vec<_> = MboxReader::new(io::BufReader::new(Failing)).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().reason.contains("disk on fire"));
    }

    #[test]
    fn writer_output_has_envelope_quoting_and_one_framing_newline() {
        let date = Utc.with_ymd_and_hms(2002, 8, 22, 12, 36, 23).unwrap();
        let mut w = MboxWriter::new(Vec::new());
        w.write_message(b"Subject: x\n\nFrom here\n>From there", "a@b", date)
            .unwrap();
        assert_eq!(
            w.into_inner(),
            b"From a@b Thu Aug 22 12:36:23 2002\nSubject: x\n\n>From here\n>>From there\n".to_vec()
        );
    }
}
