//! The minimal sanity check that tells a message from a stray file.

/// How much of a rejected first line to quote in the error.
const PREVIEW_CHARS: usize = 60;

/// `Err(reason)` unless `raw` is non-empty and starts with a header field.
pub(crate) fn check_message(raw: &[u8]) -> Result<(), String> {
    if raw.is_empty() {
        return Err("empty message".to_owned());
    }
    let first = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    if is_header_field_start(first) {
        Ok(())
    } else {
        Err(format!(
            "first line is not a header field: \"{}\"",
            preview(first)
        ))
    }
}

/// RFC 5322 §3.6.8: `field-name ":"`, field-name = 1*ftext (printable US-ASCII except `:`).
/// Whitespace before the colon is tolerated, as the obsolete syntax allows (§4.5).
fn is_header_field_start(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = line.get(..colon).unwrap_or_default();
    let name = trim_end_wsp(name);
    !name.is_empty() && name.iter().all(|b| (33..=126).contains(b))
}

fn trim_end_wsp(mut s: &[u8]) -> &[u8] {
    while let Some((last, rest)) = s.split_last() {
        if *last != b' ' && *last != b'\t' {
            break;
        }
        s = rest;
    }
    s
}

fn preview(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let mut short: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        short.push('…');
    }
    short.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_first_line_is_accepted() {
        assert!(check_message(b"Return-Path: <a@b>\r\nSubject: x\r\n\r\nbody").is_ok());
        assert!(check_message(b"X-Odd-Name~!: v\n").is_ok());
        assert!(check_message(b"Subject : obsolete space\n").is_ok());
    }

    #[test]
    fn empty_message_is_rejected() {
        assert_eq!(check_message(b""), Err("empty message".to_owned()));
    }

    #[test]
    fn tsv_first_line_is_rejected() {
        let err = check_message(b"file\tlist_id\nx\ty\n").unwrap_err();
        assert!(err.contains("file\\tlist_id"), "{err}");
    }

    #[test]
    fn blank_or_spaced_or_nonascii_names_are_rejected() {
        assert!(check_message(b"\nSubject: x\n").is_err());
        assert!(check_message(b"two words: x\n").is_err());
        assert!(check_message(b": x\n").is_err());
        assert!(check_message("Sübject: x\n".as_bytes()).is_err());
        assert!(check_message(b" Subject: x\n").is_err());
    }
}
