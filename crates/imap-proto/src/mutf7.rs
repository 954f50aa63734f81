//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), as IMAP4rev1 clients send and expect them.
//!
//! Decoding is strict: every name has exactly one valid encoding, so two different wire names
//! can never decode to the same mailbox.

use thiserror::Error;

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Mutf7Error {
    #[error("byte outside US-ASCII")]
    NonAscii,
    #[error("control character")]
    Control,
    #[error("'&' without a closing '-'")]
    Unterminated,
    #[error("invalid modified base64 character")]
    BadBase64,
    #[error("modified base64 run is not minimal")]
    NotMinimal,
    #[error("encoded printable US-ASCII character")]
    EncodedPrintable,
    #[error("invalid UTF-16 in modified base64 run")]
    InvalidUtf16,
}

/// RFC 3501 §5.1.3: modified BASE64 uses "," instead of "/".
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Printable US-ASCII represents itself (RFC 3501 §5.1.3).
fn is_direct(c: u32) -> bool {
    (0x20..=0x7e).contains(&c)
}

/// Encodes a UTF-8 mailbox name as modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if is_direct(u32::from(ch)) {
            flush_run(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut units));
        }
    }
    flush_run(&mut pending, &mut out);
    out
}

/// Writes the pending UTF-16 units as one `&...-` run, unpadded.
fn flush_run(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for unit in units.drain(..) {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

/// Decodes a modified UTF-7 mailbox name to UTF-8.
pub fn decode(name: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::with_capacity(name.len());
    // Where the previous encoded run ended: a run right after another is not minimal.
    let mut last_run_end = None;
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        match b {
            b'&' => {
                let len = name[i + 1..]
                    .iter()
                    .position(|&c| c == b'-')
                    .ok_or(Mutf7Error::Unterminated)?;
                let run = &name[i + 1..i + 1 + len];
                if run.is_empty() {
                    out.push('&');
                } else {
                    if last_run_end == Some(i) {
                        return Err(Mutf7Error::NotMinimal);
                    }
                    decode_run(run, &mut out)?;
                    last_run_end = Some(i + len + 2);
                }
                i += len + 2;
            }
            0x20..=0x7e => {
                out.push(char::from(b));
                i += 1;
            }
            0x80.. => return Err(Mutf7Error::NonAscii),
            _ => return Err(Mutf7Error::Control),
        }
    }
    Ok(out)
}

/// Decodes the modified BASE64 between `&` and `-`.
fn decode_run(run: &[u8], out: &mut String) -> Result<(), Mutf7Error> {
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in run {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(Mutf7Error::BadBase64)?;
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // A whole leftover character or non-zero padding bits mean another encoding of the same
    // name exists.
    if bits >= 6 || acc != 0 {
        return Err(Mutf7Error::NotMinimal);
    }
    for ch in char::decode_utf16(units) {
        let ch = ch.map_err(|_| Mutf7Error::InvalidUtf16)?;
        if is_direct(u32::from(ch)) {
            return Err(Mutf7Error::EncodedPrintable);
        }
        out.push(ch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example_round_trips() {
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let name = "~peter/mail/台北/日本語";
        assert_eq!(decode(wire.as_bytes()).as_deref(), Ok(name));
        assert_eq!(encode(name), wire);
    }

    #[test]
    fn ampersand_is_escaped_as_amp_dash() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode(b"Tom &- Jerry").as_deref(), Ok("Tom & Jerry"));
        assert_eq!(decode(b"&-&-").as_deref(), Ok("&&"));
    }

    #[test]
    fn plain_ascii_is_unchanged() {
        assert_eq!(encode("INBOX/Sent Items"), "INBOX/Sent Items");
        assert_eq!(
            decode(b"INBOX/Sent Items").as_deref(),
            Ok("INBOX/Sent Items")
        );
        assert_eq!(encode(""), "");
        assert_eq!(decode(b"").as_deref(), Ok(""));
    }

    #[test]
    fn bmp_and_supplementary_samples_round_trip() {
        let samples = [
            "é",
            "Entwürfe",
            "Éléments envoyés",
            "Корзина",
            "送信済み",
            "😀",
            "a😀b",
            "𝄞 music",
            "\u{80}",
            "\u{7f}",
            "\u{1}tab\t",
            "\u{ffff}",
            "\u{10ffff}",
            "\u{d7ff}\u{e000}",
            "&é&",
            "é&é",
            "ab€cd€€€€ef",
        ];
        for sample in samples {
            let wire = encode(sample);
            assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{wire}");
            assert_eq!(decode(wire.as_bytes()).as_deref(), Ok(sample), "{wire}");
        }
    }

    #[test]
    fn every_bmp_scalar_round_trips() {
        for code in (0x80..0xd800u32).chain(0xe000..=0xffff) {
            let ch = char::from_u32(code).expect("BMP scalar outside the surrogate range");
            let name = format!("x{ch}y{ch}{ch}");
            assert_eq!(decode(encode(&name).as_bytes()), Ok(name));
        }
    }

    #[test]
    fn supplementary_planes_round_trip() {
        for code in (0x10000..=0x10ffffu32).step_by(97) {
            let ch = char::from_u32(code).expect("supplementary scalar");
            let name = format!("{ch}/{ch}é");
            assert_eq!(decode(encode(&name).as_bytes()), Ok(name));
        }
    }

    #[test]
    fn rejects_malformed_names() {
        let cases: &[(&[u8], Mutf7Error)] = &[
            ("台北".as_bytes(), Mutf7Error::NonAscii),
            (b"a\x00b", Mutf7Error::Control),
            (b"a\tb", Mutf7Error::Control),
            (b"a\x7fb", Mutf7Error::Control),
            (b"&", Mutf7Error::Unterminated),
            (b"a&U,BTFw", Mutf7Error::Unterminated),
            (b"&U/BTFw-", Mutf7Error::BadBase64),
            (b"&U,BT=w-", Mutf7Error::BadBase64),
            (b"&U,BT Fw-", Mutf7Error::BadBase64),
            // "A" encodes only printable ASCII ("&AEE-").
            (b"&AEE-", Mutf7Error::EncodedPrintable),
            // "&" itself must be written "&-".
            (b"&ACY-", Mutf7Error::EncodedPrintable),
            // A whole character of padding.
            (b"&AOkA-", Mutf7Error::NotMinimal),
            // Non-zero padding bits.
            (b"&AOl-", Mutf7Error::NotMinimal),
            // Too short to hold one UTF-16 unit.
            (b"&AO-", Mutf7Error::NotMinimal),
            (b"&A-", Mutf7Error::NotMinimal),
            // Two adjacent runs must be one.
            (b"&AOk-&AOk-", Mutf7Error::NotMinimal),
        ];
        for (wire, err) in cases {
            assert_eq!(decode(wire), Err(*err), "{}", String::from_utf8_lossy(wire));
        }
    }

    /// A run holding exactly these UTF-16 units, well-formed or not.
    fn run_of(units: &[u16]) -> String {
        let mut out = String::new();
        flush_run(&mut units.to_vec(), &mut out);
        out
    }

    #[test]
    fn rejects_invalid_utf16_runs() {
        assert_eq!(
            decode(run_of(&[0xd83d]).as_bytes()),
            Err(Mutf7Error::InvalidUtf16)
        );
        assert_eq!(
            decode(run_of(&[0xdc00]).as_bytes()),
            Err(Mutf7Error::InvalidUtf16)
        );
        let high_then_bmp = run_of(&[0xd83d, 0x00e9]);
        assert_eq!(
            decode(high_then_bmp.as_bytes()),
            Err(Mutf7Error::InvalidUtf16)
        );
        let pair = run_of(&[0xd83d, 0xde00]);
        assert_eq!(decode(pair.as_bytes()).as_deref(), Ok("😀"));
    }

    #[test]
    fn rejects_runs_encoding_printable_ascii() {
        assert_eq!(
            decode(run_of(&[0x41]).as_bytes()),
            Err(Mutf7Error::EncodedPrintable)
        );
        let mixed = run_of(&[0xe9, 0x20, 0xe9]);
        assert_eq!(decode(mixed.as_bytes()), Err(Mutf7Error::EncodedPrintable));
        // Control characters cannot represent themselves, so encoding them is required.
        assert_eq!(decode(run_of(&[0x09]).as_bytes()).as_deref(), Ok("\t"));
    }

    #[test]
    fn runs_separated_by_ascii_are_fine() {
        assert_eq!(decode(b"&AOk-a&AOk-").as_deref(), Ok("éaé"));
        assert_eq!(decode(b"&AOk-&-&AOk-").as_deref(), Ok("é&é"));
    }
}
