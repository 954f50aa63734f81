//! ENVELOPE (RFC 9051 §7.5.2) and the threading fields, from a message's top-level headers.

use chrono::NaiveDate;
use mail_parser::{Addr, Header, HeaderName, HeaderValue};

use crate::model::{Address, Envelope};
use crate::raw;

/// Builds the IMAP ENVELOPE from a message's header block.
pub fn envelope(raw: &[u8], headers: &[Header<'_>]) -> Envelope {
    let from = addresses(headers, &HeaderName::From);
    // RFC 9051 §7.5.2: absent or empty Sender / Reply-To take the value of From.
    let or_from = |list: Vec<Address>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: raw::first_value(raw, headers, &HeaderName::Date),
        subject: raw::first_value(raw, headers, &HeaderName::Subject),
        sender: or_from(addresses(headers, &HeaderName::Sender)),
        reply_to: or_from(addresses(headers, &HeaderName::ReplyTo)),
        to: addresses(headers, &HeaderName::To),
        cc: addresses(headers, &HeaderName::Cc),
        bcc: addresses(headers, &HeaderName::Bcc),
        in_reply_to: raw::first_value(raw, headers, &HeaderName::InReplyTo),
        message_id: raw::first_value(raw, headers, &HeaderName::MessageId),
        from,
    }
}

/// Message-IDs (without angle brackets) of the first field with this name.
pub fn ids(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<String> {
    match raw::first(headers, name).map(|h| &h.value) {
        Some(HeaderValue::Text(id)) => non_empty(id).into_iter().collect(),
        Some(HeaderValue::TextList(list)) => list.iter().filter_map(|id| non_empty(id)).collect(),
        _ => Vec::new(),
    }
}

/// The decoded (RFC 2047) first Subject.
pub fn decoded_subject(headers: &[Header<'_>]) -> Option<String> {
    match raw::first(headers, &HeaderName::Subject).map(|h| &h.value) {
        Some(HeaderValue::Text(text)) => Some(text.to_string()),
        Some(HeaderValue::TextList(list)) => Some(list.join(", ")),
        _ => None,
    }
}

/// The first Date as unix seconds; `None` for dates that do not exist (RFC 5322 §3.3).
pub fn sent_date(headers: &[Header<'_>]) -> Option<i64> {
    let dt = match raw::first(headers, &HeaderName::Date).map(|h| &h.value) {
        Some(HeaderValue::DateTime(dt)) => dt,
        _ => return None,
    };
    // chrono validates the calendar (no 31 February) where mail-parser only checks ranges.
    let local = NaiveDate::from_ymd_opt(i32::from(dt.year), dt.month.into(), dt.day.into())?
        .and_hms_opt(dt.hour.into(), dt.minute.into(), dt.second.into())?
        .and_utc()
        .timestamp();
    if dt.tz_hour > 23 || dt.tz_minute > 59 {
        return None;
    }
    let offset = i64::from(dt.tz_hour) * 3600 + i64::from(dt.tz_minute) * 60;
    // A zone before GMT ("-0500") means local time is behind UTC: add the offset back.
    Some(if dt.tz_before_gmt {
        local + offset
    } else {
        local - offset
    })
}

fn non_empty(id: &str) -> Option<String> {
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The first field's addresses as RFC 9051 §7.5.2 address structures, groups bracketed by
/// start/end markers.
fn addresses(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<Address> {
    let Some(HeaderValue::Address(value)) = raw::first(headers, name).map(|h| &h.value) else {
        return Vec::new();
    };
    match value {
        mail_parser::Address::List(list) => list.iter().map(address).collect(),
        mail_parser::Address::Group(groups) => {
            let mut out = Vec::new();
            for group in groups {
                match &group.name {
                    // mail-parser puts addresses outside any group in unnamed groups.
                    None => out.extend(group.addresses.iter().map(address)),
                    Some(group_name) => {
                        out.push(Address::group_start(group_name.as_ref()));
                        out.extend(group.addresses.iter().map(address));
                        out.push(Address::group_end());
                    }
                }
            }
            out
        }
    }
}

fn address(addr: &Addr<'_>) -> Address {
    let mut name = addr
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let mut spec = addr.address.as_deref().map(str::trim);
    // mail-parser reports a lone word ("To: postmaster") as a name; RFC 822 read it as a
    // local part without domain, which is also how clients expect to see it.
    if spec.is_none() && name.is_some_and(|n| !n.contains(char::is_whitespace)) {
        spec = name.take();
    }
    let name = name.map(str::to_string);
    let (mailbox, host) = match spec {
        // The domain cannot contain "@", a quoted local part can: split at the last one.
        Some(a) => match a.rsplit_once('@') {
            Some((local, domain)) => (local.to_string(), domain.to_string()),
            None => (a.to_string(), String::new()),
        },
        None => (String::new(), String::new()),
    };
    Address {
        name,
        adl: None,
        mailbox: Some(mailbox),
        // Never NIL: a NIL host would turn this into a group marker.
        host: Some(host),
    }
}
