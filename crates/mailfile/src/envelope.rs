//! The mbox `From ` envelope line: `From sender asctime-date`.

use chrono::{DateTime, NaiveDateTime, Utc};

const PREFIX: &[u8] = b"From ";

/// Placeholder sender when the real one cannot be written as a single token.
const UNKNOWN_SENDER: &str = "MAILER-DAEMON";

pub(crate) fn starts_with_from(line: &[u8]) -> bool {
    line.starts_with(PREFIX)
}

/// Whether `line` separates messages in an mbox stream.
///
/// Body lines beginning with `From ` are escaped by every mbox writer, but sloppy tools
/// (and the SpamAssassin corpus) leave prose such as "From home recordings to ..." after a
/// blank line. So, like mutt's `is_from`, a separator must look like an envelope: the first
/// line of the stream, a line with a sender plus time and year, or a bare `From sender`
/// after a blank line.
pub(crate) fn is_separator(line: &[u8], first_line: bool, prev_blank: bool) -> bool {
    if !starts_with_from(line) {
        return false;
    }
    if first_line || looks_like_envelope(line) {
        return true;
    }
    prev_blank && tokens(line).count() == 1
}

/// Tokens after `From ` (sender first).
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.get(PREFIX.len()..)
        .unwrap_or_default()
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
}

/// A sender token followed by a date holding a time (`hh:mm`) and a year (4+ digits).
fn looks_like_envelope(line: &[u8]) -> bool {
    let mut toks = tokens(line);
    if toks.next().is_none() {
        return false;
    }
    let (mut time, mut year) = (false, false);
    for t in toks {
        time |= is_time(t);
        year |= is_year(t);
    }
    time && year
}

fn is_time(t: &[u8]) -> bool {
    let mut parts = t.split(|b| *b == b':');
    let ok = |p: Option<&[u8]>| {
        p.is_some_and(|p| (1..=2).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
    };
    let hour = parts.next();
    let minute = parts.next();
    ok(hour) && ok(minute) && parts.all(|p| ok(Some(p)))
}

fn is_year(t: &[u8]) -> bool {
    t.len() >= 4 && t.iter().all(u8::is_ascii_digit)
}

/// The date of an envelope line, if it is in a recognised form.
///
/// Accepts asctime (`Thu Aug 22 12:36:23 2002`, the traditional form, taken as UTC), with an
/// optional numeric zone anywhere after the sender, and RFC 5322 dates used by a few tools.
pub(crate) fn parse_date(line: &[u8]) -> Option<DateTime<Utc>> {
    let text = String::from_utf8_lossy(line.get(PREFIX.len()..)?);
    let mut words = text.split_whitespace();
    words.next()?; // sender
    let rest: Vec<&str> = words.collect();
    parse_asctime(&rest).or_else(|| {
        DateTime::parse_from_rfc2822(&rest.join(" "))
            .ok()
            .map(|d| d.with_timezone(&Utc))
    })
}

fn parse_asctime(words: &[&str]) -> Option<DateTime<Utc>> {
    let (zones, plain): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| is_zone(w));
    let stamp = plain.get(..5)?.join(" ");
    let naive = NaiveDateTime::parse_from_str(&stamp, "%a %b %d %H:%M:%S %Y")
        .or_else(|_| NaiveDateTime::parse_from_str(&stamp, "%a %b %d %H:%M %Y"))
        .ok()?;
    let offset_secs = zones.first().map_or(Some(0), |z| zone_seconds(z))?;
    let utc = naive.checked_sub_signed(chrono::TimeDelta::seconds(offset_secs))?;
    Some(utc.and_utc())
}

/// `+hhmm` / `-hhmm`.
fn is_zone(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 5
        && matches!(b.first(), Some(b'+' | b'-'))
        && b.get(1..).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

fn zone_seconds(w: &str) -> Option<i64> {
    let sign = if w.starts_with('-') { -1 } else { 1 };
    let hours: i64 = w.get(1..3)?.parse().ok()?;
    let minutes: i64 = w.get(3..5)?.parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// `From sender date\n`, the date in asctime form (day space-padded, as ctime(3) prints it).
pub(crate) fn format(sender: &str, date: DateTime<Utc>) -> String {
    format!(
        "From {} {}\n",
        sanitize_sender(sender),
        date.format("%a %b %e %H:%M:%S %Y")
    )
}

/// The envelope sender must be one token, or readers would misparse the date.
fn sanitize_sender(sender: &str) -> &str {
    let bad = sender.is_empty() || sender.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        UNKNOWN_SENDER
    } else {
        sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn asctime_date_is_parsed_as_utc() {
        let d = parse_date(b"From a@b  Thu Aug 22 12:36:23 2002\n");
        assert_eq!(d, Utc.with_ymd_and_hms(2002, 8, 22, 12, 36, 23).single());
    }

    #[test]
    fn space_padded_day_and_numeric_zone_are_understood() {
        let d = parse_date(b"From a@b Fri Aug  2 12:36:23 2002 +0200\r\n");
        assert_eq!(d, Utc.with_ymd_and_hms(2002, 8, 2, 10, 36, 23).single());
    }

    #[test]
    fn rfc5322_envelope_date_is_understood() {
        let d = parse_date(b"From a@b Sat, 1 Jan 2011 12:00:00 +0000\n");
        assert_eq!(d, Utc.with_ymd_and_hms(2011, 1, 1, 12, 0, 0).single());
    }

    #[test]
    fn garbage_date_gives_none() {
        assert_eq!(parse_date(b"From a@b yesterday\n"), None);
        assert_eq!(parse_date(b"From \n"), None);
    }

    #[test]
    fn formatted_envelope_parses_back() {
        let date = Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        let line = format("alice@example.org", date);
        assert_eq!(line, "From alice@example.org Tue Mar  5 07:08:09 2024\n");
        assert_eq!(parse_date(line.as_bytes()), Some(date));
        assert!(is_separator(line.as_bytes(), false, false));
    }

    #[test]
    fn sender_with_space_or_empty_becomes_placeholder() {
        let date = Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        assert!(format("", date).starts_with("From MAILER-DAEMON "));
        assert!(format("a b", date).starts_with("From MAILER-DAEMON "));
    }

    #[test]
    fn prose_after_blank_line_is_not_a_separator() {
        let line = b"From home studios to the stage, this box does it all\n";
        assert!(!is_separator(line, false, true));
    }

    #[test]
    fn bare_sender_after_blank_line_is_a_separator() {
        assert!(is_separator(b"From someone@example.org\n", false, true));
        assert!(!is_separator(b"From someone@example.org\n", false, false));
    }

    #[test]
    fn escaped_or_colon_lines_are_not_separators() {
        assert!(!is_separator(
            b">From a@b Thu Aug 22 12:36:23 2002\n",
            false,
            true
        ));
        assert!(!is_separator(b"From: a@b\n", true, true));
        assert!(!is_separator(b"From\n", true, true));
    }
}
