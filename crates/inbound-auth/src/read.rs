//! Reading a message for verification without holding it whole: the header section is kept
//! (bounded), the body streams through one DKIM body hasher (RFC 6376 §3.7) per distinct
//! canonicalization and hash that a DKIM or ARC signature asks for.

use std::io::{self, Read};

use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha1, Sha256};
use mail_auth::dkim::canonicalize::BodyHasher;
use mail_auth::dkim::Canonicalization;
use mail_auth::AuthenticatedMessage;

/// Largest header section verified. Beyond it DKIM and ARC are not checked (permerror) and
/// DMARC sees no DKIM pass; the message is never held whole either way.
pub const HEADER_MAX: usize = 1024 * 1024;
/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// Which body hash a signature needs: canonicalization, algorithm and `l=` (0: whole body),
/// with its value, as in [`AuthenticatedMessage::body_hashes`].
pub type BodyHash = (Canonicalization, HashAlgorithm, u64, Vec<u8>);

/// A message ready to verify.
pub struct Prepared {
    /// The header section with its blank line, or as much of it as [`HEADER_MAX`] allows
    /// (cut after a whole line).
    pub header: Vec<u8>,
    /// False when the header section was longer than [`HEADER_MAX`].
    pub complete: bool,
    /// Every body hash the signatures in `header` ask for, over the real body.
    pub body_hashes: Vec<BodyHash>,
}

/// Reads `reader` once: keeps the header, hashes the body.
pub fn prepare(mut reader: impl Read) -> io::Result<Prepared> {
    let (mut header, leftover) = read_header(&mut reader)?;
    let Some(leftover) = leftover else {
        // Cut after the last whole line, so no field is parsed half.
        header.truncate(HEADER_MAX);
        let keep = header
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        header.truncate(keep);
        return Ok(Prepared {
            header,
            complete: false,
            body_hashes: Vec::new(),
        });
    };
    // Which hashes the signatures ask for, and where mail-auth's header parser ends: any
    // header bytes after that are body to it.
    let Some((mut hashers, body_offset)) = AuthenticatedMessage::parse(&header).map(|parsed| {
        let hashers: Vec<Hasher> = parsed
            .body_hashes
            .iter()
            .map(|(cb, ha, l, _)| Hasher::new(*cb, *ha, *l))
            .collect();
        (hashers, parsed.body_offset())
    }) else {
        return Ok(Prepared {
            header,
            complete: true,
            body_hashes: Vec::new(),
        });
    };
    feed(&mut hashers, header.get(body_offset..).unwrap_or_default());
    feed(&mut hashers, &leftover);
    let mut chunk = vec![0u8; CHUNK];
    if !hashers.is_empty() {
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => feed(&mut hashers, chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let body_hashes = hashers.into_iter().map(Hasher::finish).collect();
    Ok(Prepared {
        header,
        complete: true,
        body_hashes,
    })
}

/// The header section (up to and including the blank line that ends it, or the whole
/// message if it has none) and the body bytes read past it; `None` for those when the header
/// section is longer than [`HEADER_MAX`] (the first part of it is returned).
fn read_header(reader: &mut impl Read) -> io::Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut searched = 0usize;
    loop {
        match header_end(&buf, searched) {
            Some(end) if end <= HEADER_MAX => {
                let body = buf.split_off(end);
                return Ok((buf, Some(body)));
            }
            Some(_) => return Ok((buf, None)),
            None if buf.len() > HEADER_MAX => return Ok((buf, None)),
            None => {}
        }
        // A blank line may straddle the chunk boundary: look back over its two bytes.
        searched = buf.len().saturating_sub(2);
        match reader.read(&mut chunk) {
            Ok(0) => return Ok((buf, Some(Vec::new()))),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// End (exclusive) of the blank line that ends the header section (RFC 5322 §2.1), CRLF or a
/// bare LF, looking at line breaks from `from` on.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if buf.starts_with(b"\r\n") {
            return Some(2);
        }
        if buf.starts_with(b"\n") {
            return Some(1);
        }
    }
    let tail = buf.get(from..)?;
    tail.iter().enumerate().find_map(|(i, b)| {
        let after = tail.get(i + 1..)?;
        if *b != b'\n' {
            None
        } else if after.starts_with(b"\r\n") {
            Some(from + i + 3)
        } else if after.starts_with(b"\n") {
            Some(from + i + 2)
        } else {
            None
        }
    })
}

fn feed(hashers: &mut [Hasher], bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for hasher in hashers {
        hasher.write(bytes);
    }
}

/// One body hash being computed.
struct Hasher {
    key: (Canonicalization, HashAlgorithm, u64),
    state: HasherState,
}

enum HasherState {
    Sha1(BodyHasher<<Sha1 as HashImpl>::Context>),
    Sha256(BodyHasher<<Sha256 as HashImpl>::Context>),
}

impl Hasher {
    fn new(cb: Canonicalization, ha: HashAlgorithm, l: u64) -> Self {
        let state = match ha {
            HashAlgorithm::Sha1 => HasherState::Sha1(BodyHasher::new(Sha1::hasher(), cb, l)),
            HashAlgorithm::Sha256 => HasherState::Sha256(BodyHasher::new(Sha256::hasher(), cb, l)),
        };
        Hasher {
            key: (cb, ha, l),
            state,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha1(h) => h.write(bytes),
            HasherState::Sha256(h) => h.write(bytes),
        }
    }

    fn finish(self) -> BodyHash {
        let digest = match self.state {
            HasherState::Sha1(h) => h.finish().0.complete().as_ref().to_vec(),
            HasherState::Sha256(h) => h.finish().0.complete().as_ref().to_vec(),
        };
        let (cb, ha, l) = self.key;
        (cb, ha, l, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to cross every boundary.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    const SIGNED: &[u8] = b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=a.test; s=s;\r\n\th=from; bh=AAAA; b=AAAA\r\nDKIM-Signature: v=1; a=rsa-sha1; c=simple/relaxed; d=a.test; s=t;\r\n\th=from; bh=AAAA; b=AAAA\r\nFrom: x@a.test\r\n\r\nHello  world \r\n\r\n\r\nsecond   line\r\n\r\n";

    #[test]
    fn streamed_body_hashes_equal_mail_auths_whole_message_hashes() {
        let whole = AuthenticatedMessage::parse(SIGNED).unwrap();
        assert_eq!(whole.body_hashes.len(), 2);
        for step in [1, 2, 3, 7, 64, SIGNED.len()] {
            let prepared = prepare(Trickle { data: SIGNED, step }).unwrap();
            assert!(prepared.complete);
            assert_eq!(prepared.body_hashes, whole.body_hashes, "step {step}");
            assert!(SIGNED.starts_with(&prepared.header));
            assert!(prepared.header.ends_with(b"x@a.test\r\n\r\n"));
        }
    }

    #[test]
    fn lf_only_and_headerless_messages_split_where_mail_auth_does() {
        let lf = b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; s=s; h=from; bh=AAAA; b=AAAA\nFrom: x@a.test\n\nbody\n";
        let prepared = prepare(Trickle { data: lf, step: 5 }).unwrap();
        assert_eq!(
            prepared.body_hashes,
            AuthenticatedMessage::parse(lf).unwrap().body_hashes
        );
        assert_eq!(header_end(b"\r\nbody", 0), Some(2));
        assert_eq!(header_end(b"A: b\r\n\r\n", 0), Some(8));
        assert_eq!(header_end(b"A: b\n\nx", 0), Some(6));
        assert_eq!(header_end(b"A: b\r\nC: d\r\n", 0), None);
    }

    #[test]
    fn oversized_header_is_cut_at_a_line_and_not_hashed() {
        let mut raw = Vec::new();
        while raw.len() <= HEADER_MAX {
            raw.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        raw.extend_from_slice(b"From: x@a.test\r\n\r\nbody\r\n");
        let prepared = prepare(&raw[..]).unwrap();
        assert!(!prepared.complete);
        assert!(prepared.header.len() <= HEADER_MAX);
        assert!(prepared.header.ends_with(b"\r\n"));
        assert!(prepared.body_hashes.is_empty());
    }
}
