//! The bytes of a message on its way into the store: in memory (most mail), or spooled
//! elsewhere and re-readable as a stream, so a large message is never held whole.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

/// Opens a fresh reader over a spooled message (called once per recipient copy).
pub type OpenSpool = Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

#[derive(Clone)]
pub enum MessageBytes {
    Memory(Arc<Vec<u8>>),
    /// `wire_len`: length of the CRLF wire form ([`postkeep_message::wire`]), computed by the
    /// producer while it streamed the bytes, so the spool is not read again to measure it.
    Spooled {
        len: u64,
        wire_len: u64,
        open: OpenSpool,
    },
}

impl MessageBytes {
    pub fn len(&self) -> u64 {
        match self {
            MessageBytes::Memory(raw) => raw.len() as u64,
            MessageBytes::Spooled { len, .. } => *len,
        }
    }

    /// Length of the wire form (docs/imap-plan.md §2.3): RFC822.SIZE as IMAP reports it.
    pub fn wire_len(&self) -> u64 {
        match self {
            MessageBytes::Memory(raw) => postkeep_message::wire::wire_len(raw),
            MessageBytes::Spooled { wire_len, .. } => *wire_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the whole message (blocking I/O for spooled bytes).
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            MessageBytes::Memory(raw) => {
                Ok(Box::new(io::Cursor::new(SharedBytes(Arc::clone(raw)))))
            }
            MessageBytes::Spooled { open, .. } => open(),
        }
    }
}

impl std::fmt::Debug for MessageBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageBytes::Memory(raw) => write!(f, "MessageBytes::Memory({} bytes)", raw.len()),
            MessageBytes::Spooled { len, wire_len, .. } => {
                write!(
                    f,
                    "MessageBytes::Spooled({len} bytes, {wire_len} on the wire)"
                )
            }
        }
    }
}

/// Lets a `Cursor` read shared bytes without copying them.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A byte range of a reader whose offsets need no conversion: skips `start` bytes on the first
/// read (lazily, so opening stays cheap and non-blocking), then stops at `end`.
pub(crate) struct Ranged<R> {
    inner: R,
    skip: u64,
    left: u64,
}

impl<R: Read> Ranged<R> {
    pub(crate) fn new(inner: R, range: Range<u64>) -> Self {
        Self {
            inner,
            skip: range.start,
            left: range.end.saturating_sub(range.start),
        }
    }
}

impl<R: Read> Read for Ranged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.skip > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(self.skip), &mut io::sink())?;
            // A short skip means the range starts past the end: nothing to read.
            self.left = if skipped < self.skip { 0 } else { self.left };
            self.skip = 0;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let Some(dst) = buf.get_mut(..want).filter(|dst| !dst.is_empty()) else {
            return Ok(0);
        };
        let n = self.inner.read(dst)?;
        self.left -= n as u64;
        Ok(n)
    }
}
