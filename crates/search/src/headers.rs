//! Header fields for HEADER and TEXT: split a header block into fields and decode their values
//! (unfolded, RFC 2047 encoded-words decoded).

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::fold::fold;

/// One header field: its name as written and its decoded, folded value.
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// Every field of the header block at the start of `raw` (up to the first empty line), values
/// decoded and folded.
pub(crate) fn decoded_fields(raw: &[u8]) -> Vec<Field> {
    raw_fields(raw)
        .into_iter()
        .map(|(name, value)| Field {
            name: String::from_utf8_lossy(name).into_owned(),
            value: fold(&decode_value(value)),
        })
        .collect()
}

/// Appends `name: value` lines for every field of the header block at the start of `raw`, for
/// TEXT, which searches the header text (field names included) as well as the body.
pub(crate) fn push_header_text(raw: &[u8], out: &mut String) {
    for (name, value) in raw_fields(raw) {
        out.push_str(&String::from_utf8_lossy(name));
        out.push_str(": ");
        out.push_str(&decode_value(value));
        out.push('\n');
    }
}

/// The fields of a header block as (name, raw value) pairs (RFC 5322 §2.2): a field runs from
/// its name to the end of its last continuation line (one starting with WSP). The block ends at
/// the first empty line. A line that is neither a field nor a continuation (an mbox `From `
/// line, junk) is skipped; whitespace before the colon (RFC 5322 §4.5 obsolete syntax) is
/// dropped from the name.
fn raw_fields(raw: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut fields = Vec::new();
    // (name, value start, value end) of the field being read.
    let mut open: Option<(&[u8], usize, usize)> = None;
    let mut start = 0;
    while start < raw.len() {
        let end = memchr::memchr(b'\n', &raw[start..]).map_or(raw.len(), |i| start + i);
        let line = raw[start..end]
            .strip_suffix(b"\r")
            .unwrap_or(&raw[start..end]);
        if line.is_empty() {
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some(field) = open.as_mut() {
                field.2 = end;
            }
        } else {
            fields.extend(open.take().map(|(name, from, to)| (name, &raw[from..to])));
            open = field_start(line).map(|(name, colon)| (name, start + colon + 1, end));
        }
        start = end + 1;
    }
    fields.extend(open.map(|(name, from, to)| (name, &raw[from..to])));
    fields
}

/// The name of a field starting on `line` and the position of its colon.
fn field_start(line: &[u8]) -> Option<(&[u8], usize)> {
    let colon = memchr::memchr(b':', line)?;
    let name = line[..colon].trim_ascii_end();
    // RFC 5322 §3.6.8: printable US-ASCII except colon (and so no space inside).
    let valid = !name.is_empty() && name.iter().all(|b| (33..=126).contains(b));
    valid.then_some((name, colon))
}

/// A raw field value unfolded and with RFC 2047 encoded-words decoded, wherever they appear
/// (also in structured fields, where only phrases may hold them: harmless for searching).
fn decode_value(value: &[u8]) -> String {
    // The unstructured parser reads up to a line break that does not continue the field.
    let mut line = Vec::with_capacity(value.len() + 1);
    line.extend_from_slice(value);
    line.push(b'\n');
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unfolded_decoded_and_stop_at_the_blank_line() {
        let raw = b"From junk line\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n  Berlin\r\n\
                    X-Empty:\r\nReceived : by host\r\n\r\nBody: not a field\r\n";
        let fields = decoded_fields(raw);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("Subject", "grüße aus berlin"),
                ("X-Empty", ""),
                ("Received", "by host"),
            ]
        );
    }

    #[test]
    fn a_header_without_a_final_line_break_keeps_its_last_field() {
        let fields = decoded_fields(b"A: 1\nB: two\n words");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1].value, "two words");
    }

    #[test]
    fn header_text_keeps_names_and_decoded_values() {
        let mut text = String::new();
        push_header_text(
            b"To: =?iso-8859-1?q?J=F6rg?= <j@example.org>\n\nbody",
            &mut text,
        );
        assert_eq!(text, "To: Jörg <j@example.org>\n");
    }
}
