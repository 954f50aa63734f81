//! Extension syntax that imap-codec 2.0.0-alpha.10 does not parse, lifted out of a command by
//! the shim (docs/imap-plan.md §1.2, §1.4) so the rest of the command can still go through
//! imap-codec. The server reads these next to the decoded `Command`.

use imap_types::command::Command;
use imap_types::status::StatusDataItemName;

/// A command as decoded, plus whatever extension syntax the shim lifted out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub command: Command<'static>,
    pub ext: Ext,
}

/// Extension data carried beside a decoded command. Empty (`Ext::default()`) when imap-codec
/// decoded the command as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ext {
    /// FETCH items of RFC 8474 (EMAILID, THREADID) and RFC 8514 (SAVEDATE), in request order.
    pub fetch: Vec<FetchExt>,
    /// STATUS items of RFC 8474 (MAILBOXID) and RFC 7889 (APPENDLIMIT).
    pub status: Vec<StatusExt>,
    /// RFC 4731 ESEARCH `RETURN (...)` of SEARCH; `Some(vec![])` for `RETURN ()`, which means ALL.
    pub search_return: Option<Vec<SearchReturn>>,
    /// RFC 5258 LIST-EXTENDED options and every pattern (the decoded LIST holds the first).
    pub list: Option<ListExt>,
    /// RFC 6154 §3 CREATE-SPECIAL-USE: the attributes of `CREATE name (USE (...))`, e.g. `\Sent`.
    pub create_use: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchExt {
    /// RFC 8474 §5.1
    EmailId,
    /// RFC 8474 §5.2
    ThreadId,
    /// RFC 8514 §4
    SaveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusExt {
    /// RFC 8474 §4.2
    MailboxId,
    /// RFC 7889 §4
    AppendLimit,
}

/// RFC 4731 §3.1 result options (plus RFC 5182 SAVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
}

/// RFC 5258 §3 LIST-EXTENDED, RFC 5819 LIST-STATUS and RFC 6154 SPECIAL-USE options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListExt {
    /// Every mailbox pattern, as sent (modified UTF-7 or UTF-8 bytes; not yet decoded).
    pub patterns: Vec<Vec<u8>>,
    pub select_subscribed: bool,
    pub select_remote: bool,
    pub select_recursive_match: bool,
    pub select_special_use: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    /// RFC 5819 `RETURN (STATUS (...))`: the standard items, then our extension items.
    pub return_status: Option<(Vec<StatusDataItemName>, Vec<StatusExt>)>,
}

/// Search keys imap-codec cannot parse (RFC 8474 §6 EMAILID/THREADID, RFC 8514 §5
/// SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED) are rewritten by the shim into
/// `HEADER "<marker>" "<argument>"`. A colon cannot occur in a real header field name
/// (RFC 5322 §3.6.8), so no genuine HEADER search is ever mistaken for one of these.
pub const EXT_KEY_PREFIX: &str = "postkeep:";

/// A search key carried through imap-codec as a marked `HEADER` key (see [`EXT_KEY_PREFIX`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtSearchKey {
    EmailId(String),
    ThreadId(String),
    /// Dates as IMAP `date` text, e.g. `1-Feb-2026`, validated by the shim.
    SavedBefore(String),
    SavedOn(String),
    SavedSince(String),
    SaveDateSupported,
}

impl ExtSearchKey {
    /// The marker header name and argument the shim writes for this key.
    pub fn to_header(&self) -> (String, String) {
        let (name, arg) = match self {
            ExtSearchKey::EmailId(id) => ("emailid", id.as_str()),
            ExtSearchKey::ThreadId(id) => ("threadid", id.as_str()),
            ExtSearchKey::SavedBefore(date) => ("savedbefore", date.as_str()),
            ExtSearchKey::SavedOn(date) => ("savedon", date.as_str()),
            ExtSearchKey::SavedSince(date) => ("savedsince", date.as_str()),
            ExtSearchKey::SaveDateSupported => ("savedatesupported", ""),
        };
        (format!("{EXT_KEY_PREFIX}{name}"), arg.to_owned())
    }

    /// Recognises a marked `HEADER` key; `None` for a genuine header search.
    pub fn from_header(name: &[u8], value: &[u8]) -> Option<Self> {
        let name = std::str::from_utf8(name).ok()?;
        let marker = name.strip_prefix(EXT_KEY_PREFIX)?;
        let arg = String::from_utf8(value.to_vec()).ok()?;
        Some(match marker {
            "emailid" => ExtSearchKey::EmailId(arg),
            "threadid" => ExtSearchKey::ThreadId(arg),
            "savedbefore" => ExtSearchKey::SavedBefore(arg),
            "savedon" => ExtSearchKey::SavedOn(arg),
            "savedsince" => ExtSearchKey::SavedSince(arg),
            "savedatesupported" => ExtSearchKey::SaveDateSupported,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_search_keys_round_trip_through_header_markers() {
        for key in [
            ExtSearchKey::EmailId("M1a2b".into()),
            ExtSearchKey::ThreadId("T9".into()),
            ExtSearchKey::SavedBefore("1-Feb-2026".into()),
            ExtSearchKey::SavedOn("1-Feb-2026".into()),
            ExtSearchKey::SavedSince("1-Feb-2026".into()),
            ExtSearchKey::SaveDateSupported,
        ] {
            let (name, arg) = key.to_header();
            assert_eq!(
                ExtSearchKey::from_header(name.as_bytes(), arg.as_bytes()),
                Some(key)
            );
        }
    }

    #[test]
    fn genuine_header_search_is_not_an_ext_key() {
        assert_eq!(ExtSearchKey::from_header(b"Subject", b"x"), None);
        assert_eq!(ExtSearchKey::from_header(b"postkeep:unknown", b"x"), None);
    }
}
