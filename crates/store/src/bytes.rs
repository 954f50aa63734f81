//! The bytes of a message on its way into the store: in memory (most mail), or spooled
//! elsewhere and re-readable as a stream, so a large message is never held whole.

use std::io::{self, Read};
use std::sync::Arc;

/// Opens a fresh reader over a spooled message (called once per recipient copy).
pub type OpenSpool = Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

#[derive(Clone)]
pub enum MessageBytes {
    Memory(Arc<Vec<u8>>),
    Spooled { len: u64, open: OpenSpool },
}

impl MessageBytes {
    pub fn len(&self) -> u64 {
        match self {
            MessageBytes::Memory(raw) => raw.len() as u64,
            MessageBytes::Spooled { len, .. } => *len,
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
            MessageBytes::Spooled { len, .. } => write!(f, "MessageBytes::Spooled({len} bytes)"),
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
