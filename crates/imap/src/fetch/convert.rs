//! Flags and dates as imap-types values (RFC 9051 §7.5.2); the envelope and part tree are
//! converted by [`postkeep_imap_proto::model`].

use imap_types::core::Atom;
use imap_types::datetime::DateTime;
use imap_types::flag::{Flag, FlagFetch};
use postkeep_store::MessageEntry;

pub(super) use postkeep_imap_proto::model::{body_structure, envelope, saturate};

/// FLAGS: the system flags, then the keywords that are valid atoms (RFC 9051 §2.3.2).
pub(super) fn flags(entry: &MessageEntry) -> Vec<FlagFetch<'static>> {
    let system = postkeep_store::Flag::from_bits(entry.flags)
        .into_iter()
        .map(|flag| match flag {
            postkeep_store::Flag::Seen => Flag::Seen,
            postkeep_store::Flag::Answered => Flag::Answered,
            postkeep_store::Flag::Flagged => Flag::Flagged,
            postkeep_store::Flag::Deleted => Flag::Deleted,
            postkeep_store::Flag::Draft => Flag::Draft,
        });
    let keywords = entry
        .keywords
        .iter()
        .filter_map(|keyword| Atom::try_from(keyword.clone()).ok().map(Flag::keyword));
    system.chain(keywords).map(FlagFetch::Flag).collect()
}

/// A unix time as an IMAP date-time in UTC; the epoch for a time IMAP cannot express.
pub(super) fn date_time(secs: i64) -> DateTime {
    chrono::DateTime::from_timestamp(secs, 0)
        .and_then(|utc| DateTime::try_from(utc.fixed_offset()).ok())
        .unwrap_or_else(|| DateTime::unvalidated(chrono::DateTime::UNIX_EPOCH.fixed_offset()))
}

/// RFC 8514 §4 SAVEDATE text (the date-time format of INTERNALDATE, in UTC); `None` for a time
/// IMAP cannot express.
pub(super) fn save_date(secs: i64) -> Option<String> {
    let utc = chrono::DateTime::from_timestamp(secs, 0)?;
    let date = DateTime::try_from(utc.fixed_offset()).ok()?;
    Some(date.as_ref().format("%d-%b-%Y %H:%M:%S %z").to_string())
}
