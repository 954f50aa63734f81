//! The `Received:` trace header (RFC 5321 §4.4, RFC 5322 §3.6.7).

use std::net::IpAddr;

/// What goes into one `Received:` header.
#[derive(Debug, Clone)]
pub(crate) struct Trace<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub protocol: &'static str,
    pub id: &'a str,
    /// Only given when the transaction has exactly one recipient (privacy of the others).
    pub rcpt: Option<&'a str>,
    /// RFC 5322 date-time.
    pub date: &'a str,
    /// Whether UTF-8 may appear in headers (RFC 6532, only under SMTPUTF8).
    pub utf8: bool,
}

/// Renders the header with CRLF line endings and tab-folded continuation lines.
pub(crate) fn header(t: &Trace<'_>) -> String {
    let helo = clean(t.helo, t.utf8, is_domain_char);
    let mut h = format!(
        "Received: from {helo} ({})\r\n\tby {} (postkeep) with {} id {}",
        address_literal(t.peer),
        clean(t.hostname, t.utf8, is_domain_char),
        t.protocol,
        clean(t.id, false, is_domain_char),
    );
    if let Some(rcpt) = t.rcpt {
        h.push_str("\r\n\tfor <");
        h.push_str(&clean(rcpt, t.utf8, is_address_char));
        h.push('>');
    }
    h.push_str("; ");
    h.push_str(&clean(t.date, false, |c| c == ' ' || is_address_char(c)));
    h.push_str("\r\n");
    h
}

/// The `with` keyword: RFC 5321 §4.4, RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and
/// RFC 6531 §3.7.3 (UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA).
pub(crate) fn protocol(extended: bool, tls: bool, smtputf8: bool, auth: bool) -> &'static str {
    match (smtputf8, tls, auth, extended) {
        (true, true, true, _) => "UTF8SMTPSA",
        (true, true, false, _) => "UTF8SMTPS",
        (true, false, true, _) => "UTF8SMTPA",
        (true, false, false, _) => "UTF8SMTP",
        (false, true, true, _) => "ESMTPSA",
        (false, true, false, _) => "ESMTPS",
        (false, false, true, _) => "ESMTPA",
        (false, false, false, true) => "ESMTP",
        (false, false, false, false) => "SMTP",
    }
}

/// Address literal per RFC 5321 §4.1.3: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub(crate) fn address_literal(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
}

fn is_address_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '<' | '>' | '(' | ')' | ';' | '\\')
}

/// Replaces whatever could break the header's structure (client-supplied HELO names are often
/// junk); non-ASCII survives only when UTF-8 headers are allowed.
fn clean(s: &str, utf8: bool, allowed: fn(char) -> bool) -> String {
    s.chars()
        .map(|c| {
            if allowed(c) || (utf8 && !c.is_ascii() && !c.is_control() && !c.is_whitespace()) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn trace<'a>(helo: &'a str, rcpt: Option<&'a str>) -> Trace<'a> {
        Trace {
            helo,
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            hostname: "mx.example.org",
            protocol: "ESMTPS",
            id: "ABC123",
            rcpt,
            date: "Sat, 21 Nov 2026 10:00:00 +0000",
            utf8: false,
        }
    }

    #[test]
    fn received_with_one_recipient_names_it() {
        assert_eq!(
            header(&trace("client.example", Some("bob@example.org"))),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org (postkeep) \
             with ESMTPS id ABC123\r\n\tfor <bob@example.org>; Sat, 21 Nov 2026 10:00:00 +0000\r\n"
        );
    }

    #[test]
    fn received_without_single_recipient_has_no_for_clause() {
        let h = header(&trace("client.example", None));
        assert!(!h.contains("for <"));
        assert!(h.ends_with("id ABC123; Sat, 21 Nov 2026 10:00:00 +0000\r\n"));
    }

    #[test]
    fn junk_helo_cannot_break_the_header() {
        let h = header(&trace("evil\0(x);\u{e9}", None));
        assert!(
            h.starts_with("Received: from evil__x___ ([192.0.2.7])\r\n"),
            "{h}"
        );
    }

    #[test]
    fn ipv6_and_mapped_ipv4_literals() {
        assert_eq!(
            address_literal(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "[IPv6:::1]"
        );
        let mapped = Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped();
        assert_eq!(address_literal(IpAddr::V6(mapped)), "[198.51.100.1]");
    }

    #[test]
    fn with_keyword_follows_rfc3848_and_rfc6531() {
        assert_eq!(protocol(true, false, false, false), "ESMTP");
        assert_eq!(protocol(true, true, false, false), "ESMTPS");
        assert_eq!(protocol(true, false, true, false), "UTF8SMTP");
        assert_eq!(protocol(true, true, true, false), "UTF8SMTPS");
        assert_eq!(protocol(false, false, false, false), "SMTP");
        assert_eq!(protocol(true, true, false, true), "ESMTPSA");
        assert_eq!(protocol(true, false, false, true), "ESMTPA");
        assert_eq!(protocol(true, true, true, true), "UTF8SMTPSA");
    }
}
