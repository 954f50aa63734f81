//! RFC 4978 COMPRESS=DEFLATE: raw DEFLATE (RFC 1951, no zlib header) in both directions, with
//! a sync flush whenever the session flushes so the client never waits on a half-sent block.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed output waiting for the socket beyond which writers wait (backpressure).
const HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 4 * 1024;

pub(crate) struct DeflateStream<S> {
    inner: S,
    inflater: Decompress,
    deflater: Compress,
    /// Compressed input not yet inflated.
    input: Vec<u8>,
    input_pos: usize,
    /// Compressed output not yet written.
    output: Vec<u8>,
    output_pos: usize,
    /// Data was compressed since the last sync flush.
    unsynced: bool,
}

impl<S> DeflateStream<S> {
    /// `already_read`: bytes received after the COMPRESS command, already compressed.
    pub(crate) fn new(inner: S, already_read: Vec<u8>) -> Self {
        Self {
            inner,
            inflater: Decompress::new(false),
            // Level 1: mail compresses well even at the fastest level, and CPU is the cost.
            deflater: Compress::new(Compression::fast(), false),
            input: already_read,
            input_pos: 0,
            output: Vec::new(),
            output_pos: 0,
            unsynced: false,
        }
    }

    fn pending_output(&self) -> usize {
        self.output.len() - self.output_pos
    }

    /// Inflates buffered input into `buf`; true when it produced bytes or hit the end.
    fn inflate_into(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<bool> {
        if self.input_pos == self.input.len() || buf.remaining() == 0 {
            return Ok(buf.remaining() == 0);
        }
        let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
        let status = self
            .inflater
            .decompress(
                &self.input[self.input_pos..],
                buf.initialize_unfilled(),
                FlushDecompress::Sync,
            )
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        let consumed = usize::try_from(self.inflater.total_in() - before_in).unwrap_or(0);
        let produced = usize::try_from(self.inflater.total_out() - before_out).unwrap_or(0);
        self.input_pos += consumed;
        buf.advance(produced);
        if self.input_pos == self.input.len() {
            self.input.clear();
            self.input_pos = 0;
        }
        Ok(produced > 0 || status == Status::StreamEnd)
    }

    fn deflate(&mut self, mut data: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.output.reserve(data.len() / 2 + 64);
            let before_in = self.deflater.total_in();
            let spare_before = self.output.capacity() - self.output.len();
            self.deflater
                .compress_vec(data, &mut self.output, flush)
                .map_err(io::Error::other)?;
            let consumed = usize::try_from(self.deflater.total_in() - before_in).unwrap_or(0);
            data = &data[consumed..];
            let filled_all_space = self.output.capacity() == self.output.len() && spare_before > 0;
            if data.is_empty() && !filled_all_space {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> DeflateStream<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.output_pos < self.output.len() {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.output_pos..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.output_pos += written;
        }
        self.output.clear();
        self.output_pos = 0;
        if self.output.capacity() > 4 * HIGH_WATER {
            self.output.shrink_to(HIGH_WATER);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeflateStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.inflate_into(buf)? {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut raw = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            if raw.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.input.extend_from_slice(raw.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeflateStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending_output() > HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.deflate(data, FlushCompress::None)?;
        this.unsynced = true;
        if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unsynced {
            this.deflate(&[], FlushCompress::Sync)?;
            this.unsynced = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn output_is_raw_deflate_with_sync_flushes() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut stream = DeflateStream::new(server, Vec::new());
        let text = b"* 1 FETCH (FLAGS (\\Seen))\r\n".repeat(1000);
        stream.write_all(&text).await.unwrap();
        stream.flush().await.unwrap();
        drop(stream);
        let mut compressed = Vec::new();
        let mut client = client;
        client.read_to_end(&mut compressed).await.unwrap();
        assert!(compressed.len() < text.len() / 10);
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&compressed[..])
            .read_to_end(&mut inflated)
            .unwrap_or_default();
        assert_eq!(inflated, text);
    }

    #[tokio::test]
    async fn input_already_buffered_at_compress_is_inflated_first() {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(b"a NOOP\r\nb NOOP\r\n").unwrap();
        encoder.flush().unwrap();
        let compressed = encoder.get_ref().clone();
        let (head, tail) = compressed.split_at(compressed.len() / 2);
        let (mut client, server) = tokio::io::duplex(1024);
        let mut stream = DeflateStream::new(server, head.to_vec());
        client.write_all(tail).await.unwrap();
        let mut got = vec![0u8; 16];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"a NOOP\r\nb NOOP\r\n");
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_not_a_panic() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut stream = DeflateStream::new(server, Vec::new());
        client.write_all(&[0xff; 64]).await.unwrap();
        let mut got = [0u8; 16];
        assert!(stream.read(&mut got).await.is_err());
    }
}
