//! Reply formatting: RFC 5321 §4.2 reply lines with RFC 3463 enhanced status codes (RFC 2034).

/// A single-line reply whose text is fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Canned {
    pub code: u16,
    pub esc: &'static str,
    pub text: &'static str,
}

pub(crate) const fn canned(code: u16, esc: &'static str, text: &'static str) -> Canned {
    Canned { code, esc, text }
}

pub(crate) const SIZE_EXCEEDED: Canned = canned(
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
);
pub(crate) const BARE_LINE_ENDING: Canned = canned(
    554,
    "5.6.11",
    "Bare CR or LF in message data is not allowed (RFC 5321 §2.3.8)",
);
pub(crate) const STORAGE_TEMPFAIL: Canned =
    canned(451, "4.3.0", "Temporary storage failure, try again later");
pub(crate) const NEED_HELO: Canned = canned(503, "5.5.1", "Error: send HELO/EHLO first");
pub(crate) const NEED_MAIL: Canned = canned(503, "5.5.1", "Error: need MAIL command");
pub(crate) const NEED_RCPT: Canned = canned(503, "5.5.1", "Error: need RCPT command");
pub(crate) const TOO_MANY_ERRORS: Canned = canned(421, "4.7.0", "Too many errors");
pub(crate) const TIMEOUT: Canned = canned(421, "4.4.2", "Timeout");
pub(crate) const SHUTTING_DOWN: Canned = canned(421, "4.3.2", "Shutting down");
pub(crate) const TOO_MANY_CONNECTIONS: Canned = canned(421, "4.7.0", "Too many connections");

/// Appends `<code> <esc> <text>CRLF`; `esc` may be empty (greeting, 354).
pub(crate) fn write(out: &mut Vec<u8>, code: u16, esc: &str, text: &str) {
    write_line(out, code, ' ', esc, text);
}

/// Appends a multi-line reply (RFC 5321 §4.2.1): `code-` on all lines but the last.
pub(crate) fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        write_line(out, code, sep, "", line);
    }
}

/// Renders a canned reply as bytes (for the server's out-of-session replies).
pub(crate) fn render(reply: Canned) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, reply.code, reply.esc, reply.text);
    out
}

fn write_line(out: &mut Vec<u8>, code: u16, sep: char, esc: &str, text: &str) {
    let mut line = String::with_capacity(text.len() + 16);
    line.push_str(&code.to_string());
    line.push(sep);
    if !esc.is_empty() {
        line.push_str(esc);
        line.push(' ');
    }
    // Text may echo client input (addresses, parameter names): never let it break the framing.
    line.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_cannot_inject_lines() {
        let mut out = Vec::new();
        write(&mut out, 550, "5.1.1", "<a\r\n250 ok@x>");
        assert_eq!(out, b"550 5.1.1 <a??250 ok@x>\r\n");
    }

    #[test]
    fn multiline_uses_dash_until_last_line() {
        let mut out = Vec::new();
        write_multiline(&mut out, 250, &["mx".into(), "PIPELINING".into()]);
        assert_eq!(out, b"250-mx\r\n250 PIPELINING\r\n");
    }
}
