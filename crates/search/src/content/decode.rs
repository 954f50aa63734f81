//! Lenient decoding of one MIME part's body, for the parts mail-parser gives up on (see
//! `content.rs`): mail-parser's decoders are strict and, on the first byte they do not expect,
//! hand back the part undecoded. These decode what can be decoded and never fail.
//!
//! TODO: `imap/src/fetch/decode.rs` has streaming decoders for IMAP BINARY with another
//! leniency (base64 skips stray bytes instead of stopping at a line that is not base64); both
//! should become one streaming decoder in `postkeep-message` with the leniency as a parameter.

use std::borrow::Cow;

use mail_parser::decoders::charsets::map::charset_decoder;

/// The text of a part's body: its Content-Transfer-Encoding undone (RFC 2045 §6; 7bit, 8bit,
/// binary and unknown encodings are taken as they are), then its charset decoded.
pub(super) fn body_text(
    body: &[u8],
    transfer_encoding: Option<&str>,
    charset: Option<&str>,
) -> String {
    let bytes = match transfer_encoding.map(str::trim) {
        Some(name) if name.eq_ignore_ascii_case("base64") => Cow::Owned(base64(body)),
        Some(name) if name.eq_ignore_ascii_case("quoted-printable") => {
            Cow::Owned(quoted_printable(body))
        }
        _ => Cow::Borrowed(body),
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

/// RFC 2045 §6.8 base64, read up to the end of the base64 text: the first line holding anything
/// but alphabet characters, `=` and white space (a boundary delimiter the parser did not find, a
/// footer a mailing list appended) ends it, so that no such line is decoded into noise. `=`
/// padding ends a 4-character group: whatever follows starts afresh (concatenated encodings).
fn base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    // Bits read but not yet emitted as a byte: `bits` of them, right-aligned in `pending`.
    let (mut pending, mut bits) = (0u32, 0u32);
    for line in body.split(|&b| b == b'\n') {
        let is_base64 = line
            .iter()
            .all(|&b| sextet(b).is_some() || b == b'=' || b.is_ascii_whitespace());
        if !is_base64 {
            break;
        }
        for &b in line {
            if let Some(value) = sextet(b) {
                pending = (pending << 6) | value;
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    // Truncation intended: the byte is the 8 bits above the remaining ones.
                    out.push((pending >> bits) as u8);
                    pending &= (1 << bits) - 1;
                }
            } else if b == b'=' {
                // The bits left over in a padded group are padding (RFC 4648 §3.5).
                (pending, bits) = (0, 0);
            }
        }
    }
    out
}

/// The value of a base64 alphabet character (RFC 2045 Table 1).
fn sextet(b: u8) -> Option<u32> {
    let value = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// RFC 2045 §6.7 quoted-printable: `=XX` (either case) is a byte, `=` before the end of a line
/// (trailing white space allowed) a soft line break; any other `=` is kept as written, as
/// §6.7 note (2) suggests for robust decoders.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'=' {
            out.push(b);
            continue;
        }
        let blanks = tail
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        let after_blanks = tail.get(blanks..).unwrap_or_default();
        if let Some(next_line) = after_blanks
            .strip_prefix(b"\r\n")
            .or_else(|| after_blanks.strip_prefix(b"\n"))
        {
            rest = next_line;
        } else if after_blanks.is_empty() {
            rest = after_blanks;
        } else if let [high, low, after @ ..] = tail {
            match (hex(*high), hex(*low)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    rest = after;
                }
                _ => out.push(b'='),
            }
        } else {
            out.push(b'=');
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_stops_at_the_first_line_that_is_not_base64() {
        // "Hello, world" then a boundary delimiter the parser never matched and a list footer.
        let body = b"SGVsbG8s\r\nIHdvcmxk\r\n\r\n------=_NextPart_000\r\nfooter words\r\n";
        assert_eq!(base64(body), b"Hello, world");
    }

    #[test]
    fn base64_padding_ends_a_group_and_decoding_goes_on() {
        // "ab" padded, then "cd" padded: two encodings one after the other.
        assert_eq!(base64(b"YWI=\nY2Q=\n"), b"abcd");
        assert_eq!(base64(b"YQ==Yg=="), b"ab");
        assert_eq!(base64(b""), b"");
    }

    #[test]
    fn quoted_printable_decodes_escapes_and_soft_breaks_and_keeps_stray_equals() {
        assert_eq!(
            quoted_printable(b"K=E4se mort=\r\ngage"),
            b"K\xe4se mortgage"
        );
        assert_eq!(quoted_printable(b"soft = \t\nbreak=\n"), b"soft break");
        // An underline of `=` (hard_ham/00005…): its last `=` is a soft line break.
        assert_eq!(quoted_printable(b"====\n=ZZ 1=3"), b"====ZZ 1=3");
        assert_eq!(quoted_printable(b"=3d=3D"), b"==");
    }

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
