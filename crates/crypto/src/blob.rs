//! Streaming compress-then-seal for message blobs, so a 50 MB message never needs 50 MB of RAM.
//!
//! Layout (all of it is ciphertext except the 12-byte header):
//! ```text
//! header  = "PKB1" || compression (1 = zstd) || nonce prefix (7 random bytes)
//! chunk*  = length (u32 LE; top bit = last chunk) || AES-256-GCM(chunk of the zstd stream) || tag
//! ```
//! Chunk `i` uses nonce `prefix || i (u32 BE) || last-flag`, and the caller's associated data
//! followed by the header. The counter stops chunks being reordered, the last-flag stops
//! truncation at a chunk boundary (the STREAM construction of Hoang, Reyhanitabar, Rogaway and
//! Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015).
//! Compression comes first because ciphertext does not compress; the compressed length leaks
//! only what the stored size already does.

use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};

use crate::decompress::FrameDecoder;
use crate::DataKey;

/// Plaintext bytes (of the compressed stream) per sealed chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"PKB1";
const COMPRESSION_ZSTD: u8 = 1;
const PREFIX_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + 1 + PREFIX_LEN;
const TAG_LEN: usize = 16;
const LAST_FLAG: u32 = 1 << 31;
/// zstd level 3 is zstd's default: most of the ratio at several hundred MB/s per core.
const ZSTD_LEVEL: i32 = 3;

static SEAL_NANOS: AtomicU64 = AtomicU64::new(0);
static OPEN_NANOS: AtomicU64 = AtomicU64::new(0);

/// Cumulative time this process spent compressing+sealing and opening+decompressing blobs,
/// for the ingest benchmark's "share of time in crypto" figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobTimings {
    pub seal_nanos: u64,
    pub open_nanos: u64,
}

pub fn timings() -> BlobTimings {
    BlobTimings {
        seal_nanos: SEAL_NANOS.load(Ordering::Relaxed),
        open_nanos: OPEN_NANOS.load(Ordering::Relaxed),
    }
}

fn record(counter: &AtomicU64, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// Compresses and seals everything written to it into `out`. Call [`BlobWriter::finish`]; a
/// writer dropped without it leaves a blob that fails to open (no final chunk).
pub struct BlobWriter<W: Write> {
    encoder: zstd::stream::write::Encoder<'static, ChunkSealer<W>>,
}

impl<W: Write> BlobWriter<W> {
    /// Starts a blob sealed with `key`; `aad` binds it to its identity (e.g. account + blob id).
    pub fn new(key: &DataKey, aad: &[u8], mut out: W) -> io::Result<Self> {
        let mut prefix = [0u8; PREFIX_LEN];
        crate::random_bytes(&mut prefix);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(COMPRESSION_ZSTD);
        header.extend_from_slice(&prefix);
        out.write_all(&header)?;
        let sealer = ChunkSealer {
            out,
            key: key.aead_key(),
            aad: [aad, &header].concat(),
            prefix,
            counter: 0,
            buf: Vec::with_capacity(CHUNK_LEN + TAG_LEN),
        };
        let encoder = zstd::stream::write::Encoder::new(sealer, ZSTD_LEVEL)?;
        Ok(Self { encoder })
    }

    /// Flushes the compressor, seals the final chunk and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        let start = Instant::now();
        let sealer = self.encoder.finish()?;
        let out = sealer.finish();
        record(&SEAL_NANOS, start);
        out
    }
}

impl<W: Write> Write for BlobWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let start = Instant::now();
        let written = self.encoder.write(data);
        record(&SEAL_NANOS, start);
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        // Sealing happens per full chunk; a flush must not emit a short non-final chunk.
        Ok(())
    }
}

struct ChunkSealer<W: Write> {
    out: W,
    key: LessSafeKey,
    aad: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    buf: Vec<u8>,
}

fn chunk_nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

impl<W: Write> ChunkSealer<W> {
    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let nonce = chunk_nonce(&self.prefix, self.counter, last);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), &mut self.buf)
            .map_err(|_| io::Error::other("AES-GCM seal failed"))?;
        self.buf.extend_from_slice(tag.as_ref());
        let len = u32::try_from(self.buf.len()).map_err(io::Error::other)?;
        // The flag in the length is only a hint for the reader: the nonce authenticates it.
        let framed = if last { len | LAST_FLAG } else { len };
        self.out.write_all(&framed.to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("blob too large: chunk counter exhausted"))?;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ChunkSealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Seal a full chunk only when more data arrives, so the final chunk is never empty
        // unless the whole stream is.
        if self.buf.len() == CHUNK_LEN {
            self.seal_chunk(false)?;
        }
        let take = data.len().min(CHUNK_LEN - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens and decompresses a blob written by [`BlobWriter`]. Any tampering, truncation,
/// reordering or wrong key/context surfaces as an `InvalidData` I/O error.
pub struct BlobReader<R: Read> {
    decoder: FrameDecoder<ChunkOpener<R>>,
}

impl<R: Read> BlobReader<R> {
    pub fn new(key: &DataKey, aad: &[u8], mut input: R) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        input.read_exact(&mut header).map_err(|_| corrupt())?;
        if &header[..MAGIC.len()] != MAGIC || header[MAGIC.len()] != COMPRESSION_ZSTD {
            return Err(corrupt());
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&header[MAGIC.len() + 1..]);
        let opener = ChunkOpener {
            input,
            key: key.aead_key(),
            aad: [aad, &header].concat(),
            prefix,
            counter: 0,
            plain: Vec::new(),
            pos: 0,
            done: false,
        };
        Ok(Self {
            decoder: FrameDecoder::new(opener),
        })
    }
}

impl<R: Read> Read for BlobReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        let n = self.decoder.read(buf);
        record(&OPEN_NANOS, start);
        n
    }
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, crate::OpenError)
}

struct ChunkOpener<R: Read> {
    input: R,
    key: LessSafeKey,
    aad: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> ChunkOpener<R> {
    /// Reads and opens the next chunk into `plain`. Returns false at the authenticated end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.done {
            return self.expect_end();
        }
        let mut framed = [0u8; 4];
        self.input.read_exact(&mut framed).map_err(|_| corrupt())?;
        let framed = u32::from_le_bytes(framed);
        let last = framed & LAST_FLAG != 0;
        let len = (framed & !LAST_FLAG) as usize;
        if !(TAG_LEN..=CHUNK_LEN + TAG_LEN).contains(&len) {
            return Err(corrupt());
        }
        self.plain.resize(len, 0);
        self.input
            .read_exact(&mut self.plain)
            .map_err(|_| corrupt())?;
        let nonce = chunk_nonce(&self.prefix, self.counter, last);
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(&self.aad), &mut self.plain)
            .map_err(|_| corrupt())?
            .len();
        self.plain.truncate(opened);
        self.pos = 0;
        self.counter = self.counter.checked_add(1).ok_or_else(corrupt)?;
        self.done = last;
        Ok(true)
    }

    /// After the last chunk the input must end: appended bytes mean tampering.
    fn expect_end(&mut self) -> io::Result<bool> {
        let mut probe = [0u8; 1];
        match self.input.read(&mut probe)? {
            0 => Ok(false),
            _ => Err(corrupt()),
        }
    }
}

impl<R: Read> Read for ChunkOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The opened chunk is the buffer: zstd reads from it directly, with no second buffer in
/// between.
impl<R: Read> BufRead for ChunkOpener<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.plain.len() {
            if !self.next_chunk()? {
                break;
            }
        }
        Ok(&self.plain[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.plain.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &DataKey, aad: &[u8], data: &[u8]) -> Vec<u8> {
        let mut w = BlobWriter::new(key, aad, Vec::new()).unwrap();
        // Odd write sizes exercise chunk boundaries.
        for piece in data.chunks(7919) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(key: &DataKey, aad: &[u8], sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        BlobReader::new(key, aad, sealed)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Incompressible bytes so the sealed stream spans several chunks.
    fn noise(len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        crate::random_bytes(&mut data);
        data
    }

    #[test]
    fn roundtrip_of_various_sizes() {
        let key = DataKey::generate("k");
        for len in [
            0,
            1,
            100,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            5 * CHUNK_LEN,
        ] {
            let data = noise(len);
            assert_eq!(
                open(&key, b"blob:1", &seal(&key, b"blob:1", &data)).unwrap(),
                data
            );
        }
    }

    #[test]
    fn plaintext_is_not_visible_and_text_compresses() {
        let key = DataKey::generate("k");
        let text = b"canary-7f3a9 Subject: hello world\r\n".repeat(2000);
        let sealed = seal(&key, b"b", &text);
        assert!(sealed.len() < text.len() / 4, "compressed before sealing");
        assert!(!sealed.windows(12).any(|w| w == b"canary-7f3a9"));
    }

    #[test]
    fn wrong_context_or_key_fails() {
        let key = DataKey::generate("k");
        let sealed = seal(&key, b"account:1:blob:9", b"secret");
        assert!(open(&key, b"account:2:blob:9", &sealed).is_err());
        assert!(open(&DataKey::generate("k"), b"account:1:blob:9", &sealed).is_err());
    }

    #[test]
    fn truncation_at_chunk_boundary_is_detected() {
        let key = DataKey::generate("k");
        let sealed = seal(&key, b"b", &noise(3 * CHUNK_LEN));
        let first_chunk_end = HEADER_LEN + 4 + CHUNK_LEN + TAG_LEN;
        assert!(open(&key, b"b", &sealed[..first_chunk_end]).is_err());
        // Forging the last flag on a truncated stream fails authentication too.
        let mut forged = sealed[..first_chunk_end].to_vec();
        forged[HEADER_LEN + 3] |= 0x80;
        assert!(open(&key, b"b", &forged).is_err());
    }

    #[test]
    fn appended_or_flipped_bytes_are_detected() {
        let key = DataKey::generate("k");
        let mut sealed = seal(&key, b"b", b"hello");
        sealed.push(0);
        assert!(open(&key, b"b", &sealed).is_err());
        sealed.pop();
        let mid = sealed.len() / 2 + 4;
        sealed[mid] ^= 0x40;
        assert!(open(&key, b"b", &sealed).is_err());
    }

    #[test]
    fn reordered_chunks_are_detected() {
        let key = DataKey::generate("k");
        let sealed = seal(&key, b"b", &noise(3 * CHUNK_LEN));
        let chunk = 4 + CHUNK_LEN + TAG_LEN;
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let mut swapped = header.to_vec();
        swapped.extend_from_slice(&rest[chunk..2 * chunk]);
        swapped.extend_from_slice(&rest[..chunk]);
        swapped.extend_from_slice(&rest[2 * chunk..]);
        assert!(open(&key, b"b", &swapped).is_err());
    }

    #[test]
    fn timings_accumulate() {
        let before = timings();
        let key = DataKey::generate("k");
        let sealed = seal(&key, b"b", &noise(CHUNK_LEN));
        open(&key, b"b", &sealed).unwrap();
        let after = timings();
        assert!(after.seal_nanos > before.seal_nanos);
        assert!(after.open_nanos > before.open_nanos);
    }
}
