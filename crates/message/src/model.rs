//! The stored summary types.
//!
//! Serialisation note: empty and `None` fields are omitted (`skip_serializing_if`) and come
//! back through `#[serde(default)]`, so store these with a self-describing format (JSON, CBOR,
//! MessagePack with field names). Positional formats such as bincode or postcard cannot skip
//! fields and would misread the data.

use serde::{Deserialize, Serialize};

use crate::authentication::SenderAuthentication;

/// Everything IMAP and threading need about one message, computed once at ingest.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct MessageSummary {
    /// RFC 9051 §7.5.2 ENVELOPE of the top-level message.
    pub envelope: Envelope,
    /// RFC 9051 §7.5.2 BODYSTRUCTURE tree; the root covers the whole message.
    pub body: BodyPart,
    /// First Message-ID, without the angle brackets (RFC 5322 §3.6.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Message-IDs from the first In-Reply-To field, without angle brackets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_reply_to: Vec<String>,
    /// Message-IDs from the first References field, oldest first, without angle brackets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// The Date field as unix seconds (UTC); `None` when absent or not a real date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_date: Option<i64>,
    /// The first Subject field, RFC 2047 decoded to UTF-8, for display and search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 5256 §2.1 base subject (case preserved; compare it case-insensitively).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thread_subject: String,
    /// What SPF, DKIM, ARC and DMARC found when the message arrived as MX, so the organizer
    /// reads the results of a stored message without parsing its `Authentication-Results:`.
    /// Never parsed from the message: the delivery pipeline sets it from the inbound-auth
    /// stage just before storing. `None` for mail that was not verified (submission, APPEND,
    /// imports, inbound-auth off) and for summaries stored before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<SenderAuthentication>,
}

/// RFC 9051 §7.5.2 ENVELOPE, ready to be written out field by field.
///
/// String fields hold the raw header value, unfolded (RFC 5322 §2.2.3) and trimmed, as IMAP
/// wants it; 8-bit bytes that are not UTF-8 are replaced (U+FFFD). Only the first occurrence
/// of each field is used.
///
/// `sender` and `reply_to` already default to `from` when absent or empty, as RFC 9051
/// §7.5.2 requires, so the IMAP layer prints them as they are.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Envelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sender: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Address>,
    /// Raw In-Reply-To value (angle brackets kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// Raw Message-ID value (angle brackets kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// One RFC 9051 §7.5.2 address structure: (name adl mailbox host).
///
/// - An ordinary address always has `host: Some(..)` (an empty string when the address had no
///   domain), because a NIL host means group syntax.
/// - Group start marker: `mailbox` = group name, everything else `None`.
/// - Group end marker: all four `None`.
///
/// `name` is RFC 2047 decoded UTF-8 (mail-parser decodes it); for a client that has not enabled
/// UTF8=ACCEPT (RFC 9051 §6.3.1 / RFC 6855) the IMAP layer re-encodes non-ASCII names as
/// RFC 2047 encoded-words. `adl` (obsolete source route, RFC 5322 §4.4) is always `None`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Address {
    /// RFC 9051 §7.5.2 group start marker.
    pub fn group_start(name: impl Into<String>) -> Self {
        Address {
            mailbox: Some(name.into()),
            ..Address::default()
        }
    }

    /// RFC 9051 §7.5.2 group end marker.
    pub fn group_end() -> Self {
        Address::default()
    }

    /// True for either group marker (host NIL).
    pub fn is_group_marker(&self) -> bool {
        self.host.is_none()
    }
}

/// One node of the RFC 9051 §7.5.2 BODYSTRUCTURE tree.
///
/// Invariants the IMAP layer may rely on:
/// - `content_type` and `subtype` are upper-case ASCII.
/// - `content_type == "MULTIPART"` exactly when `children` is non-empty.
/// - `content_type/subtype == MESSAGE/RFC822 or MESSAGE/GLOBAL` exactly when `embedded` is
///   `Some`.
/// - Structure that cannot be (or, past the depth/part caps, will not be) exposed is reported as
///   an `APPLICATION/OCTET-STREAM` leaf over the same bytes: a multipart whose boundary never
///   appears, a transfer-encoded or unparsable message/rfc822, anything nested deeper than
///   [`crate::MAX_DEPTH`].
/// - Offsets are byte offsets into the raw message given to [`crate::summarize`]:
///   `header_offset <= body_offset <= end_offset <= raw.len()`, and every child lies inside
///   its parent's body range. `raw[header_offset..body_offset]` is the part's MIME header
///   including the blank line (BODY\[n.MIME\], or BODY\[HEADER\] for a message root),
///   `raw[body_offset..end_offset]` its content (BODY\[n\] / BODY\[TEXT\]); for a part inside
///   a multipart the content excludes the CRLF that precedes the next boundary (RFC 2046 §5.1.1).
/// - Sizes and line counts are of the bytes as stored. Normalise line endings to CRLF before
///   calling [`crate::summarize`] if IMAP will serve the message, or sizes will not match.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BodyPart {
    /// Media type, e.g. `TEXT` (RFC 2045 §5; default TEXT/PLAIN, or MESSAGE/RFC822 inside
    /// multipart/digest per RFC 2046 §5.1.5).
    pub content_type: String,
    /// Media subtype, e.g. `PLAIN`.
    pub subtype: String,
    /// Content-Type parameters: names lower-case, values with quotes removed and RFC 2231
    /// continuations/charsets decoded to UTF-8. When the part has no (valid) Content-Type this
    /// is the RFC 2045 §5.2 default `charset=us-ascii`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
    /// Raw Content-ID (RFC 2045 §7), angle brackets kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Raw Content-Description (RFC 2045 §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Content-Transfer-Encoding upper-cased (RFC 2045 §6), `7BIT` when absent.
    pub encoding: String,
    /// Number of lines of the content as stored, for TEXT/* and MESSAGE/RFC822|GLOBAL: the
    /// number of LFs, plus one for a final line without LF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// Raw Content-MD5 (RFC 1864).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Content-Disposition (RFC 2183): type as written, lower-cased, and its parameters
    /// (same rules as `params`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<(String, Vec<(String, String)>)>,
    /// Content-Language tags (RFC 3282).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    /// Raw Content-Location (RFC 2557).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub header_offset: u64,
    pub body_offset: u64,
    pub end_offset: u64,
    /// Parts of a multipart, in order (IMAP part numbers 1, 2, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<BodyPart>,
    /// The message inside a MESSAGE/RFC822 or MESSAGE/GLOBAL part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<Box<EmbeddedMessage>>,
}

impl BodyPart {
    /// RFC 9051 §7.5.2 body size: octets of the content in its transfer encoding.
    pub fn size(&self) -> u64 {
        self.end_offset.saturating_sub(self.body_offset)
    }

    /// The MIME header of this part (BODY\[n.MIME\]), blank line included.
    pub fn header_bytes<'a>(&self, raw: &'a [u8]) -> Option<&'a [u8]> {
        slice(raw, self.header_offset, self.body_offset)
    }

    /// The content of this part (BODY\[n\]); for a message/rfc822 part, the whole embedded
    /// message.
    pub fn body_bytes<'a>(&self, raw: &'a [u8]) -> Option<&'a [u8]> {
        slice(raw, self.body_offset, self.end_offset)
    }

    /// True when this part is MULTIPART/* with at least one child.
    pub fn is_multipart(&self) -> bool {
        !self.children.is_empty()
    }
}

/// The envelope and structure of a message nested in a MESSAGE/RFC822 (or GLOBAL) part.
///
/// `body.header_offset..body.body_offset` is the nested message's header (BODY\[n.HEADER\]) and
/// `body.body_offset..body.end_offset` its text (BODY\[n.TEXT\]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct EmbeddedMessage {
    pub envelope: Envelope,
    pub body: BodyPart,
}

fn slice(raw: &[u8], start: u64, end: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = usize::try_from(end).ok()?;
    raw.get(start..end)
}
