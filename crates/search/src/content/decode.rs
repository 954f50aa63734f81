//! Lenient decoding of one MIME part's body, for the parts mail-parser gives up on (see
//! `content.rs`): mail-parser's decoders are strict and, on the first byte they do not expect,
//! hand back the part undecoded. These decode what can be decoded and never fail; the transfer
//! decoders are `postkeep-message`'s, shared with IMAP BINARY.

use std::borrow::Cow;

use mail_parser::decoders::charsets::map::charset_decoder;
use postkeep_message::{Base64Decoder, Base64Leniency, QuotedPrintableDecoder, TransferDecoder};

/// The text of a part's body: its Content-Transfer-Encoding undone (RFC 2045 §6; 7bit, 8bit,
/// binary and unknown encodings are taken as they are), then its charset decoded.
pub(super) fn body_text(
    body: &[u8],
    transfer_encoding: Option<&str>,
    charset: Option<&str>,
) -> String {
    let decoder = match transfer_encoding.map(str::trim) {
        // Lines after the base64 (a boundary the parser missed, a list footer) are not text.
        Some(name) if name.eq_ignore_ascii_case("base64") => Some(TransferDecoder::Base64(
            Base64Decoder::new(Base64Leniency::StopAtTextLine),
        )),
        Some(name) if name.eq_ignore_ascii_case("quoted-printable") => Some(
            TransferDecoder::QuotedPrintable(QuotedPrintableDecoder::default()),
        ),
        _ => None,
    };
    let bytes = match decoder {
        Some(decoder) => Cow::Owned(decoder.decode(body)),
        None => Cow::Borrowed(body),
    };
    charset_text(&bytes, charset)
}

/// `bytes` in `charset`, as mail-parser reads text parts: an unknown or missing charset is read
/// as UTF-8, invalid sequences replaced.
pub(super) fn charset_text(bytes: &[u8], charset: Option<&str>) -> String {
    match charset.and_then(|name| charset_decoder(name.trim().as_bytes())) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_text_undoes_the_transfer_encoding_then_the_charset() {
        assert_eq!(
            body_text(b"S+RzZQ==", Some(" Base64 "), Some("iso-8859-1")),
            "Käse"
        );
        assert_eq!(
            body_text(b"K=E4se", Some("quoted-printable"), Some("latin1")),
            "Käse"
        );
        assert_eq!(body_text(b"S+RzZQ==", Some("8bit"), None), "S+RzZQ==");
        assert_eq!(body_text(b"K\xc3\xa4se", None, Some("x-unknown")), "Käse");
    }
}
