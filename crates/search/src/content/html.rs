//! text/html as the text a reader sees: mail-parser's `html_to_text` (tags, comments, the head,
//! style and script left out, entities decoded), on markup first repaired where mail-parser
//! reads it differently from a browser (HTML Living Standard §13.2, parsing) and would lose the
//! visible text that follows.

use std::borrow::Cow;

use mail_parser::decoders::html::html_to_text;
use memchr::memmem;

pub(super) fn html_text(html: &str) -> String {
    html_to_text(&body_ends_head(&comments_end_at_any_dashes(html)))
}

/// A comment ends at `>` after two or more dashes (§13.2.5.50, comment end state: a further
/// `-` keeps it there). mail-parser ends one only after exactly two, so `<!---- x ---->`,
/// common in newsletters, hid the whole rest of the document. Runs of dashes before `>` are
/// cut to two; outside comments that only shortens a `--->` arrow.
fn comments_end_at_any_dashes(html: &str) -> Cow<'_, str> {
    if memmem::find(html.as_bytes(), b"--->").is_none() {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut dashes = 0;
    for c in html.chars() {
        match c {
            '-' => dashes += 1,
            '>' => {
                push_dashes(&mut out, dashes.min(2));
                dashes = 0;
                out.push('>');
            }
            c => {
                push_dashes(&mut out, dashes);
                dashes = 0;
                out.push(c);
            }
        }
    }
    push_dashes(&mut out, dashes);
    Cow::Owned(out)
}

fn push_dashes(out: &mut String, count: usize) {
    out.extend(std::iter::repeat_n('-', count));
}

/// The head ends where the body starts (§13.2.6.4.4, "in head": a `body` start tag closes
/// it). mail-parser waits for `</head>`, so a document without one (phishing_pot
/// sample-4012) showed no text at all. A `</head>` goes before the first `<body`; where the
/// head was closed already, it changes nothing.
fn body_ends_head(html: &str) -> Cow<'_, str> {
    let Some(body) = find_body_tag(html.as_bytes()) else {
        return Cow::Borrowed(html);
    };
    let (before, after) = html.split_at(body);
    Cow::Owned(format!("{before}</head>{after}"))
}

/// Where the first `<body` start tag is (ASCII case-insensitive, followed by white space, `/`
/// or `>`).
fn find_body_tag(html: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = memmem::find(html.get(from..)?, b"<").map(|i| from + i) {
        let name = html.get(at + 1..at + 5);
        let next = html.get(at + 5);
        if name.is_some_and(|name| name.eq_ignore_ascii_case(b"body"))
            && next.is_some_and(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_closed_by_more_than_two_dashes_end_there() {
        let html = "<p>before</p><!------ section ------>after<!---->more<!--->last";
        let text = html_text(html);
        assert!(text.contains("before"), "{text:?}");
        assert!(text.contains("after"), "{text:?}");
        assert!(text.contains("more"), "{text:?}");
        assert!(text.contains("last"), "{text:?}");
        assert!(!text.contains("section"), "{text:?}");
        // Nothing to repair: the same text as mail-parser's.
        let plain = "<!-- note -->a -- b --> c";
        assert_eq!(html_text(plain), html_to_text(plain));
    }

    #[test]
    fn the_body_ends_an_unclosed_head() {
        let html = "<html><HEAD><title>hidden title</title><style>p{}</style>\
                    <BODY class=x><p>visible words</p></body></html>";
        let text = html_text(html);
        assert!(text.contains("visible words"), "{text:?}");
        assert!(!text.contains("hidden"), "{text:?}");
        assert!(!text.contains("p{}"), "{text:?}");
        // A closed head, and a tag that only starts with "body", are left alone.
        let closed = "<head><title>t</title></head><bodyguard>x</bodyguard><body>y";
        assert_eq!(find_body_tag(closed.as_bytes()), closed.find("<body>"));
        assert_eq!(html_text(closed), html_to_text(closed));
        assert_eq!(find_body_tag(b"<p>no body tag"), None);
    }
}
