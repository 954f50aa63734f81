//! mboxrd quoting: `^>*From ` gains a `>` on write, `^>+From ` loses one on read.
//! Unlike mboxo this is reversible, which is what makes the round trip byte-exact.

/// `>*From ` at the start of a line.
fn is_quoted_from(line: &[u8]) -> bool {
    let unquoted = line.iter().position(|b| *b != b'>').unwrap_or(line.len());
    line.get(unquoted..)
        .is_some_and(|rest| rest.starts_with(b"From "))
}

/// Appends `raw` to `out`, quoting every `>*From ` line, including a final line without `\n`.
pub(crate) fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if is_quoted_from(line) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
}

/// Appends one read line to `out`, removing one level of quoting from `>+From ` lines.
pub(crate) fn unescape_line_into(line: &[u8], out: &mut Vec<u8>) {
    match line.split_first() {
        Some((b'>', rest)) if is_quoted_from(rest) => out.extend_from_slice(rest),
        _ => out.extend_from_slice(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        escape_into(raw, &mut out);
        out
    }

    fn unescape(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in raw.split_inclusive(|b| *b == b'\n') {
            unescape_line_into(line, &mut out);
        }
        out
    }

    #[test]
    fn from_lines_gain_one_quote_level() {
        let raw = b"From x\n>From y\r\n>>From z\nFrom\nxFrom w\n From v\nFrom ";
        let want = b">From x\n>>From y\r\n>>>From z\nFrom\nxFrom w\n From v\n>From ";
        assert_eq!(escape(raw), want.to_vec());
    }

    #[test]
    fn unescape_reverses_escape() {
        let raw = b"From x\n>From y\r\n>>From z\n>\n>>\nFrom\n>From";
        assert_eq!(unescape(&escape(raw)), raw.to_vec());
    }

    #[test]
    fn lone_quotes_are_left_alone_on_read() {
        assert_eq!(unescape(b">\n>>x\n>From\n"), b">\n>>x\n>From\n".to_vec());
    }
}
