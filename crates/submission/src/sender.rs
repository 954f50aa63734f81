//! The author fields of a submitted message (RFC 5322 §3.6.2 From and Sender), which must name
//! the authenticated user (RFC 6409 §8.1 lets the MSA enforce this).

use std::io::Read;

use mail_parser::{HeaderName, MessageParser};
use postkeep_store::MessageBytes;

/// Longest header section read; a larger one is refused rather than buffered.
pub const MAX_HEADER: usize = 256 * 1024;

/// What the author fields say.
#[derive(Debug, PartialEq, Eq)]
pub enum Authors {
    /// Every address of every From and Sender field, lowercase. Each From field named at
    /// least one address.
    Addresses(Vec<String>),
    /// No From field at all (RFC 5322 §3.6 requires one).
    NoFrom,
    /// A From or Sender field without a usable address (group syntax, garbage).
    Unparsable,
    /// The header section is longer than [`MAX_HEADER`].
    HeaderTooLarge,
}

/// Reads the header section of `raw` (blocking: run it off the async threads).
pub fn read_header(raw: &MessageBytes) -> std::io::Result<Option<Vec<u8>>> {
    let mut reader = raw.open()?;
    let mut header = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        if let Some(end) = header_end(&header) {
            header.truncate(end);
            return Ok(Some(header));
        }
        if header.len() > MAX_HEADER {
            return Ok(None);
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            // A message of header fields only: the whole of it is the header.
            return Ok(Some(header));
        }
        header.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Offset just past the blank line ending the header section (CRLF or bare LF lines).
fn header_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The addresses of every From and Sender field in `header` (not only the first: a second
/// From field must not smuggle in someone else's address).
pub fn authors(header: Option<&[u8]>) -> Authors {
    let Some(header) = header else {
        return Authors::HeaderTooLarge;
    };
    let Some(message) = MessageParser::new().parse_headers(header) else {
        return Authors::NoFrom;
    };
    let mut addresses = Vec::new();
    let mut from_fields = 0;
    for field in message.headers() {
        let is_from = field.name == HeaderName::From;
        if !is_from && field.name != HeaderName::Sender {
            continue;
        }
        from_fields += usize::from(is_from);
        let found: Vec<String> = field
            .value
            .as_address()
            .into_iter()
            .flat_map(|list| list.iter())
            .filter_map(|addr| addr.address())
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
            .collect();
        if found.is_empty() {
            return Authors::Unparsable;
        }
        addresses.extend(found);
    }
    if from_fields == 0 {
        Authors::NoFrom
    } else {
        Authors::Addresses(addresses)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn of(header: &str) -> Authors {
        authors(Some(header.as_bytes()))
    }

    #[test]
    fn every_from_and_sender_address_is_listed() {
        assert_eq!(
            of("From: Alice <Alice@Example.org>, bob@example.org\r\nSender: c@example.org\r\n\r\n"),
            Authors::Addresses(vec![
                "alice@example.org".into(),
                "bob@example.org".into(),
                "c@example.org".into()
            ])
        );
        // A second From field is checked too.
        assert_eq!(
            of("From: a@example.org\r\nFrom: ceo@victim.test\r\n\r\n"),
            Authors::Addresses(vec!["a@example.org".into(), "ceo@victim.test".into()])
        );
    }

    #[test]
    fn missing_or_addressless_from_is_reported() {
        assert_eq!(of("Subject: x\r\n\r\n"), Authors::NoFrom);
        assert_eq!(of("From: undisclosed:;\r\n\r\n"), Authors::Unparsable);
        assert_eq!(authors(None), Authors::HeaderTooLarge);
    }

    #[test]
    fn header_is_read_up_to_the_blank_line_and_bounded() {
        let raw = MessageBytes::Memory(Arc::new(b"From: a@b.c\r\n\r\nFrom: body\r\n".to_vec()));
        assert_eq!(read_header(&raw).unwrap().unwrap(), b"From: a@b.c\r\n\r\n");
        let only_header = MessageBytes::Memory(Arc::new(b"From: a@b.c\n".to_vec()));
        assert_eq!(
            read_header(&only_header).unwrap().unwrap(),
            b"From: a@b.c\n"
        );
        let mut huge = b"From: a@b.c\r\n".to_vec();
        while huge.len() <= MAX_HEADER + 16 * 1024 {
            huge.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        let huge = MessageBytes::Memory(Arc::new(huge));
        assert!(read_header(&huge).unwrap().is_none());
    }
}
