//! zstd decompression of one frame with reused contexts. Creating a fresh `DCtx` for every
//! message (what `zstd::stream::read::Decoder::new` does) cost more CPU than decompressing a
//! typical small message: a tenth of the server's CPU when fetching message bodies.

use std::io::{self, BufRead, Read};
use std::sync::Mutex;

use zstd::zstd_safe::{get_error_name, DCtx, InBuffer, OutBuffer, ResetDirective};

/// Contexts kept for reuse. Readers beyond this many at once create and drop their own.
const POOL_MAX: usize = 16;

/// A context that decompressed more than this keeps a window buffer as large: it is dropped
/// instead of pooled, so the pool never holds more than a few MiB.
const POOLED_OUTPUT_MAX: u64 = 256 * 1024;

static POOL: Mutex<Vec<DCtx<'static>>> = Mutex::new(Vec::new());

/// Decompresses exactly one zstd frame from `input`; data after the frame is an error.
pub(crate) struct FrameDecoder<R: BufRead> {
    input: R,
    context: Option<DCtx<'static>>,
    produced: u64,
    finished: bool,
}

impl<R: BufRead> FrameDecoder<R> {
    pub(crate) fn new(input: R) -> Self {
        let pooled = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
        Self {
            input,
            context: Some(pooled.unwrap_or_else(DCtx::create)),
            produced: 0,
            finished: false,
        }
    }
}

impl<R: BufRead> Read for FrameDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(context) = self.context.as_mut() else {
            return Err(invalid("decompression context missing"));
        };
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.input.fill_buf()?;
            if self.finished {
                return match input.is_empty() {
                    true => Ok(0),
                    false => Err(invalid("data after the compressed frame")),
                };
            }
            let at_end = input.is_empty();
            let mut src = InBuffer::around(input);
            let mut dst = OutBuffer::around(&mut *buf);
            let hint = context
                .decompress_stream(&mut dst, &mut src)
                .map_err(|code| invalid(get_error_name(code)))?;
            let (consumed, produced) = (src.pos(), dst.pos());
            self.input.consume(consumed);
            self.produced += produced as u64;
            // RFC 8878 §3.1.1: 0 means the frame is complete and fully flushed.
            self.finished = hint == 0;
            if produced > 0 {
                return Ok(produced);
            }
            if at_end && !self.finished {
                return Err(invalid("compressed frame truncated"));
            }
            if consumed == 0 && !self.finished {
                return Err(invalid("compressed frame makes no progress"));
            }
        }
    }
}

impl<R: BufRead> Drop for FrameDecoder<R> {
    fn drop(&mut self) {
        let Some(mut context) = self.context.take() else {
            return;
        };
        // A reader dropped mid-frame must not hand its state to the next one.
        if self.produced > POOLED_OUTPUT_MAX || context.reset(ResetDirective::SessionOnly).is_err()
        {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(context);
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressed(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    fn decode(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        FrameDecoder::new(input).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn reused_contexts_decode_every_frame_alike() {
        let texts: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("message {i} ").repeat(i * 50 + 1).into_bytes())
            .collect();
        for text in &texts {
            assert_eq!(&decode(&compressed(text)).unwrap(), text);
        }
    }

    #[test]
    fn a_reader_dropped_mid_frame_leaves_no_state_behind() {
        let long = b"abcdefgh".repeat(100_000);
        let frame = compressed(&long);
        let mut partial = FrameDecoder::new(&frame[..]);
        let mut some = [0u8; 1000];
        partial.read_exact(&mut some).unwrap();
        drop(partial);
        let short = b"short and sweet".to_vec();
        assert_eq!(decode(&compressed(&short)).unwrap(), short);
    }

    #[test]
    fn truncated_trailing_and_garbage_input_are_errors() {
        let frame = compressed(&b"some text to compress ".repeat(200));
        assert!(decode(&frame[..frame.len() - 3]).is_err());
        let mut trailing = frame.clone();
        trailing.extend_from_slice(&frame);
        assert!(decode(&trailing).is_err());
        assert!(decode(b"not zstd at all").is_err());
        assert!(decode(b"").is_err());
    }
}
