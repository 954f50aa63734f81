//! Delivery status notifications (RFC 3464): the report to a sender that mail failed or is
//! delayed. A `multipart/report` (RFC 6522) of a human-readable part, the machine-readable
//! `message/delivery-status`, and the original header (`text/rfc822-headers`). Sent with the
//! null reverse-path, so it is never itself reported on (RFC 3464 §2).

use std::fmt::Write;

use crate::envelope::RecipientState;

/// Longest text taken over from a remote reply or an address into the report.
const MAX_FIELD: usize = 900;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The recipients failed for good.
    Failed,
    /// Still being retried until the given Unix time.
    Delayed { retry_until: i64 },
}

/// Everything one report says.
pub struct Report<'a> {
    pub kind: Kind,
    /// Our host name (`Reporting-MTA`, the `From:` domain).
    pub reporting_mta: &'a str,
    /// Who is told: the original reverse-path.
    pub sender: &'a str,
    pub arrival: i64,
    pub now: i64,
    pub recipients: Vec<&'a RecipientState>,
    /// The original message's header, as queued.
    pub original_headers: &'a [u8],
}

/// Renders the whole report message, CRLF line ends.
pub fn render(report: &Report<'_>) -> Vec<u8> {
    let boundary = format!("=_postkeep_{}", postkeep_crypto::random_id());
    let mut out = String::with_capacity(4096);
    let subject = match report.kind {
        Kind::Failed => "Undelivered Mail Returned to Sender",
        Kind::Delayed { .. } => "Delayed Mail (still being retried)",
    };
    let host = clean(report.reporting_mta);
    // `write!` into a String cannot fail; ignoring the Ok keeps this panic-free.
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Content-Description: Notification\r\n\
         \r\n",
        to = clean(report.sender),
        date = date(report.now),
        id = postkeep_crypto::random_id(),
    );
    human_part(&mut out, report);
    let _ = write!(
        out,
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         Content-Description: Delivery report\r\n\
         \r\n"
    );
    status_part(&mut out, report);
    let _ = write!(
        out,
        "--{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Description: Undelivered message headers\r\n\
         \r\n"
    );
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&crlf_header(report.original_headers));
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

fn human_part(out: &mut String, report: &Report<'_>) {
    let host = clean(report.reporting_mta);
    let _ = match report.kind {
        Kind::Failed => write!(
            out,
            "This is the mail system at {host}.\r\n\r\n\
             Your message could not be delivered to one or more recipients.\r\n\
             It is attached below (header only).\r\n\r\n"
        ),
        Kind::Delayed { retry_until } => write!(
            out,
            "This is the mail system at {host}.\r\n\r\n\
             Your message has not been delivered yet to the recipients below.\r\n\
             The mail system keeps trying until {}.\r\n\
             You do not need to send it again.\r\n\r\n",
            date(retry_until)
        ),
    };
    for recipient in &report.recipients {
        let reason = recipient
            .reply
            .as_ref()
            .map(|reply| clean(&reply.to_string()))
            .unwrap_or_else(|| "no reason recorded".to_string());
        let _ = write!(out, "<{}>: {reason}\r\n", clean(&recipient.address));
    }
}

/// RFC 3464 §2.2 per-message fields, then §2.3 per-recipient fields, each group ended by an
/// empty line.
fn status_part(out: &mut String, report: &Report<'_>) {
    let _ = write!(
        out,
        "Reporting-MTA: dns; {}\r\nArrival-Date: {}\r\n\r\n",
        clean(report.reporting_mta),
        date(report.arrival)
    );
    for recipient in &report.recipients {
        let reply = recipient.reply.as_ref();
        let (action, fallback) = match report.kind {
            Kind::Failed => ("failed", "5.0.0"),
            Kind::Delayed { .. } => ("delayed", "4.0.0"),
        };
        let status = reply
            .map(|r| r.status.as_str())
            .filter(|s| valid_status(s))
            .unwrap_or(fallback);
        let _ = write!(
            out,
            "Final-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {status}\r\n",
            clean(&recipient.address)
        );
        if let Some((remote, reply)) = reply.and_then(|r| r.remote.as_deref().map(|m| (m, r))) {
            let _ = write!(
                out,
                "Remote-MTA: dns; {}\r\nDiagnostic-Code: smtp; {}\r\n",
                clean(remote),
                clean(&reply.to_string())
            );
        }
        let _ = write!(out, "Last-Attempt-Date: {}\r\n", date(report.now));
        if let Kind::Delayed { retry_until } = report.kind {
            let _ = write!(out, "Will-Retry-Until: {}\r\n", date(retry_until));
        }
        out.push_str("\r\n");
    }
}

/// RFC 3463 §2: `class.subject.detail`, class 2, 4 or 5, up to 3 digits each after it.
fn valid_status(status: &str) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    matches!(parts.as_slice(), [class, subject, detail]
        if matches!(*class, "2" | "4" | "5")
            && [subject, detail]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())))
}

/// Text from elsewhere (remote replies, addresses) made safe inside one header line: control
/// characters (CR and LF above all) become spaces, and it is cut at a sane length.
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_FIELD {
        let mut cut = MAX_FIELD;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// RFC 5322 §3.3 date-time.
fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc2822()
}

/// The header of a message (up to, not including, the empty line), every line CRLF-ended.
pub fn header_of(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while let Some(len) = message.get(start..).and_then(|rest| {
        rest.iter()
            .position(|&b| b == b'\n')
            .map(|newline| newline + 1)
    }) {
        let line = message.get(start..start + len).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            return message.get(..start).unwrap_or_default();
        }
        start += len;
    }
    message
}

fn crlf_header(header: &[u8]) -> Vec<u8> {
    let mut wire = postkeep_message::wire::to_wire(header);
    if !wire.is_empty() && !wire.ends_with(b"\r\n") {
        wire.extend_from_slice(b"\r\n");
    }
    wire
}

#[cfg(test)]
mod tests {
    use mail_parser::{MessageParser, MimeHeaders};

    use super::*;
    use crate::envelope::{Reply, Status};

    fn recipient(address: &str, reply: Reply) -> RecipientState {
        RecipientState {
            address: address.into(),
            status: Status::Failed,
            reply: Some(reply),
            notified: false,
        }
    }

    const ORIGINAL: &[u8] = b"DKIM-Signature: v=1; d=example.org\r\nFrom: alice@example.org\r\n\
        To: bob@remote.test\r\nSubject: lunch\r\nMessage-ID: <m1@example.org>\r\n\r\nbody text\r\n";

    fn report<'a>(kind: Kind, recipients: Vec<&'a RecipientState>) -> Report<'a> {
        Report {
            kind,
            reporting_mta: "mx.example.org",
            sender: "alice@example.org",
            arrival: 1_700_000_000,
            now: 1_700_000_600,
            recipients,
            original_headers: header_of(ORIGINAL),
        }
    }

    #[test]
    fn failure_report_is_a_multipart_report_with_status_and_headers() {
        let bob = recipient(
            "bob@remote.test",
            Reply {
                code: 550,
                status: "5.1.1".into(),
                text: "<bob@remote.test>: Recipient address rejected".into(),
                remote: Some("mx.remote.test".into()),
            },
        );
        let raw = render(&report(Kind::Failed, vec![&bob]));
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        let content_type = message.content_type().unwrap();
        assert_eq!(content_type.ctype(), "multipart");
        assert_eq!(content_type.subtype(), Some("report"));
        assert_eq!(
            content_type.attribute("report-type"),
            Some("delivery-status")
        );
        assert_eq!(message.parts.len(), 4, "the report and its three parts");

        let status = &message.parts[2];
        assert_eq!(
            status.content_type().unwrap().subtype(),
            Some("delivery-status")
        );
        let text = String::from_utf8_lossy(status.contents());
        for field in [
            "Reporting-MTA: dns; mx.example.org\r\n",
            "Final-Recipient: rfc822; bob@remote.test\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.remote.test\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: Recipient address rejected\r\n",
        ] {
            assert!(text.contains(field), "{field:?} missing in {text}");
        }

        let headers = &message.parts[3];
        assert_eq!(
            headers.content_type().unwrap().subtype(),
            Some("rfc822-headers")
        );
        let original = String::from_utf8_lossy(headers.contents()).into_owned();
        assert!(original.contains("Subject: lunch"), "{original}");
        assert!(
            !original.contains("body text"),
            "only the header is returned"
        );
        let human = message.body_text(0).unwrap();
        assert!(human.contains("<bob@remote.test>: 550 5.1.1"), "{human}");
    }

    #[test]
    fn delay_report_says_delayed_and_until_when() {
        let carol = RecipientState {
            address: "carol@remote.test".into(),
            status: Status::Pending,
            reply: Some(Reply::local(451, "4.4.1", "connection refused")),
            notified: false,
        };
        let raw = render(&report(
            Kind::Delayed {
                retry_until: 1_700_432_000,
            },
            vec![&carol],
        ));
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.subject(),
            Some("Delayed Mail (still being retried)")
        );
        let text = String::from_utf8_lossy(message.parts[2].contents()).into_owned();
        assert!(
            text.contains("Action: delayed\r\nStatus: 4.4.1\r\n"),
            "{text}"
        );
        assert!(text.contains("Will-Retry-Until: "), "{text}");
        assert!(!text.contains("Remote-MTA"), "no server answered: {text}");
    }

    #[test]
    fn remote_text_cannot_inject_fields_or_lines() {
        let evil = recipient(
            "x@remote.test\r\nBcc: victim@example.org",
            Reply {
                code: 550,
                status: "5.1.1\r\nX-Evil: 1".into(),
                text: "no\r\n\r\n--boundary\r\nInjected: yes".into(),
                remote: Some("mx\r\nX-Evil: 2".into()),
            },
        );
        let raw = render(&report(Kind::Failed, vec![&evil]));
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(!text.contains("\r\nX-Evil"), "{text}");
        assert!(!text.contains("\r\nInjected"), "{text}");
        assert!(
            text.contains("Status: 5.0.0\r\n"),
            "invalid status replaced: {text}"
        );
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(message.parts.len(), 4);
    }

    #[test]
    fn header_of_stops_at_the_empty_line_with_either_line_end() {
        assert_eq!(header_of(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_of(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(header_of(b"A: 1\r\nno body"), b"A: 1\r\nno body");
        assert_eq!(header_of(b""), b"");
        assert_eq!(crlf_header(b"A: 1\nB: 2"), b"A: 1\r\nB: 2\r\n");
    }

    #[test]
    fn status_codes_are_checked() {
        assert!(valid_status("5.1.1"));
        assert!(valid_status("4.4.7"));
        assert!(valid_status("2.0.0"));
        assert!(valid_status("5.7.26"));
        assert!(!valid_status("3.0.0"));
        assert!(!valid_status("5.1"));
        assert!(!valid_status("5.1.1.1"));
        assert!(!valid_status("5.a.1"));
        assert!(!valid_status(""));
    }
}
