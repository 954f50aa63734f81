//! Writing responses. Status responses (tagged, untagged, BYE) go through imap-codec's encoder.
//! Data responses whose items imap-types cannot express (ESEARCH, MAILBOXID, APPENDLIMIT,
//! CHILDINFO, codes like AUTHENTICATIONFAILED) are written by the session from [`astring`],
//! which picks a quoted string or a literal as RFC 9051 §4.3 allows, and [`number_set`].

use imap_codec::encode::Encoder;
use imap_codec::ResponseCodec;
use imap_types::core::{Tag, Text};
use imap_types::response::{Bye, Code, Response, Status, StatusBody, StatusKind, Tagged};

fn status(out: &mut Vec<u8>, status: Status<'_>) {
    out.extend(
        ResponseCodec::default()
            .encode(&Response::Status(status))
            .dump(),
    );
}

/// Response text must be non-empty printable ASCII without CR/LF (RFC 9051 `text`); ours
/// always is, and anything else is replaced rather than producing an invalid line.
fn text(message: &str) -> Text<'static> {
    let clean: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    Text::try_from(clean).unwrap_or_else(|_| Text::unvalidated("completed"))
}

/// A tagged OK/NO/BAD; `tag` None writes an untagged status.
pub fn tagged(
    out: &mut Vec<u8>,
    tag: Option<&Tag<'_>>,
    kind: StatusKind,
    code: Option<Code<'_>>,
    message: &str,
) {
    let body = StatusBody {
        kind,
        code,
        text: text(message),
    };
    match tag {
        Some(tag) => status(
            out,
            Status::Tagged(Tagged {
                tag: tag.clone(),
                body,
            }),
        ),
        None => status(out, Status::Untagged(body)),
    }
}

pub fn ok(out: &mut Vec<u8>, tag: &Tag<'_>, code: Option<Code<'_>>, message: &str) {
    tagged(out, Some(tag), StatusKind::Ok, code, message);
}

pub fn bad(out: &mut Vec<u8>, tag: Option<&Tag<'_>>, message: &str) {
    tagged(out, tag, StatusKind::Bad, None, message);
}

pub fn untagged_ok(out: &mut Vec<u8>, code: Option<Code<'_>>, message: &str) {
    tagged(out, None, StatusKind::Ok, code, message);
}

pub fn bye(out: &mut Vec<u8>, message: &str) {
    status(
        out,
        Status::Bye(Bye {
            code: None,
            text: text(message),
        }),
    );
}

/// A response code imap-types has no variant for, e.g. `[MAILBOXID (x)]` or
/// `[AUTHENTICATIONFAILED]`, written as text: `* OK [CODE] message`.
pub fn line_with_code(
    out: &mut Vec<u8>,
    tag: Option<&Tag<'_>>,
    kind: &str,
    code: &str,
    message: &str,
) {
    match tag {
        Some(tag) => out.extend_from_slice(tag.as_ref().as_bytes()),
        None => out.push(b'*'),
    }
    out.extend_from_slice(format!(" {kind} [{code}] {message}\r\n").as_bytes());
}

/// An RFC 9051 astring: an atom-safe or quoted string when possible, else a literal.
pub fn astring(out: &mut Vec<u8>, value: &[u8]) {
    let quotable = value
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || (b >= 0x80 && std::str::from_utf8(value).is_ok()))
        && value.len() < 1024;
    if quotable {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
        out.extend_from_slice(value);
    }
}

/// A compact sequence set (`1:3,7,9:10`) of ascending numbers, for ESEARCH, VANISHED and
/// COPYUID written by hand.
pub fn number_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_set_compacts_runs() {
        assert_eq!(number_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(number_set(&[5]), "5");
        assert_eq!(number_set(&[]), "");
    }

    #[test]
    fn astring_quotes_escapes_and_falls_back_to_literals() {
        let mut out = Vec::new();
        astring(&mut out, b"a \"b\" \\c");
        assert_eq!(out, b"\"a \\\"b\\\" \\\\c\"");
        out.clear();
        astring(&mut out, b"line\r\nbreak");
        assert_eq!(out, b"{11}\r\nline\r\nbreak");
    }

    #[test]
    fn tagged_status_is_encoded_by_the_codec() {
        let mut out = Vec::new();
        let tag = Tag::try_from("A1").unwrap();
        ok(&mut out, &tag, Some(Code::ReadWrite), "SELECT completed");
        assert_eq!(out, b"A1 OK [READ-WRITE] SELECT completed\r\n");
    }
}
