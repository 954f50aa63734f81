//! The summary's envelope and part tree, flags and dates as imap-types values
//! (RFC 9051 §7.5.2), with strings quoted, UTF-8 quoted or sent as literals as the session allows.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{Atom, IString, Literal, NString, Quoted, Vec1};
use imap_types::datetime::DateTime;
use imap_types::envelope;
use imap_types::extensions::utf8::QuotedUtf8;
use imap_types::flag::{Flag, FlagFetch};
use postkeep_message::{Address, BodyPart, Envelope};
use postkeep_store::MessageEntry;

/// Octets of UTF-8 per RFC 2047 encoded-word: "=?UTF-8?B?" + 60 base64 characters + "?=" is
/// 72 characters, inside the 75 that RFC 2047 §2 allows.
const WORD_OCTETS: usize = 45;

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

/// RFC 9051 §7.5.2 ENVELOPE.
pub(super) fn envelope(env: &Envelope, utf8: bool) -> envelope::Envelope<'static> {
    let list = |addresses: &[Address]| addresses.iter().map(|a| address(a, utf8)).collect();
    envelope::Envelope {
        date: nstring(env.date.as_deref(), utf8),
        subject: nstring(env.subject.as_deref(), utf8),
        from: list(&env.from),
        sender: list(&env.sender),
        reply_to: list(&env.reply_to),
        to: list(&env.to),
        cc: list(&env.cc),
        bcc: list(&env.bcc),
        in_reply_to: nstring(env.in_reply_to.as_deref(), utf8),
        message_id: nstring(env.message_id.as_deref(), utf8),
    }
}

fn address(address: &Address, utf8: bool) -> envelope::Address<'static> {
    let phrase = |text: Option<&str>| NString(text.map(|text| phrase(text, utf8)));
    envelope::Address {
        name: phrase(address.name.as_deref()),
        adl: nstring(address.adl.as_deref(), utf8),
        // A group start marker carries the group's display name in the mailbox field.
        mailbox: if address.is_group_marker() {
            phrase(address.mailbox.as_deref())
        } else {
            nstring(address.mailbox.as_deref(), utf8)
        },
        host: nstring(address.host.as_deref(), utf8),
    }
}

/// RFC 9051 §7.5.2 BODYSTRUCTURE (`extended`) or BODY of a part and everything inside it.
pub(super) fn body_structure(
    part: &BodyPart,
    extended: bool,
    utf8: bool,
) -> BodyStructure<'static> {
    let children: Vec<_> = part
        .children
        .iter()
        .map(|child| body_structure(child, extended, utf8))
        .collect();
    if let Ok(bodies) = Vec1::try_from(children) {
        return BodyStructure::Multi {
            bodies,
            subtype: istring(&part.subtype, utf8),
            extension_data: extended.then(|| MultiPartExtensionData {
                parameter_list: params(&part.params, utf8),
                tail: Some(disposition(part, utf8)),
            }),
        };
    }
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: params(&part.params, utf8),
                id: nstring(part.id.as_deref(), utf8),
                description: nstring(part.description.as_deref(), utf8),
                content_transfer_encoding: istring(&part.encoding, utf8),
                size: saturate(part.size()),
            },
            specific: specific(part, extended, utf8),
        },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring(part.md5.as_deref(), utf8),
            tail: Some(disposition(part, utf8)),
        }),
    }
}

fn specific(part: &BodyPart, extended: bool, utf8: bool) -> SpecificFields<'static> {
    let lines = saturate(part.lines.unwrap_or(0));
    match (part.content_type.as_str(), &part.embedded) {
        ("TEXT", _) => SpecificFields::Text {
            subtype: istring(&part.subtype, utf8),
            number_of_lines: lines,
        },
        // imap-codec writes body-type-msg as "MESSAGE" "RFC822" only, so a MESSAGE/GLOBAL
        // (RFC 6532) part is described as a basic part; its sections still resolve inside it.
        ("MESSAGE", Some(embedded)) if part.subtype == "RFC822" => SpecificFields::Message {
            envelope: Box::new(envelope(&embedded.envelope, utf8)),
            body_structure: Box::new(body_structure(&embedded.body, extended, utf8)),
            number_of_lines: lines,
        },
        _ => SpecificFields::Basic {
            r#type: istring(&part.content_type, utf8),
            subtype: istring(&part.subtype, utf8),
        },
    }
}

/// body-fld-dsp, body-fld-lang and body-fld-loc (RFC 9051 §9), always all three, as Dovecot
/// writes them.
fn disposition(part: &BodyPart, utf8: bool) -> Disposition<'static> {
    Disposition {
        disposition: part
            .disposition
            .as_ref()
            .map(|(kind, list)| (istring(kind, utf8), params(list, utf8))),
        tail: Some(Language {
            language: part.language.iter().map(|tag| istring(tag, utf8)).collect(),
            tail: Some(Location {
                location: nstring(part.location.as_deref(), utf8),
                extensions: Vec::new(),
            }),
        }),
    }
}

fn params(list: &[(String, String)], utf8: bool) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter()
        .map(|(name, value)| (istring(name, utf8), istring(value, utf8)))
        .collect()
}

fn nstring(text: Option<&str>, utf8: bool) -> NString<'static> {
    NString(text.map(|text| istring(text, utf8)))
}

/// A quoted string when the text allows one (RFC 9051 §4.3; with `utf8`, RFC 6855 §3 UTF-8
/// quoted strings), else a literal. NUL cannot be sent in either and is dropped.
pub(super) fn istring(text: &str, utf8: bool) -> IString<'static> {
    if let Ok(quoted) = Quoted::try_from(text.to_owned()) {
        return IString::Quoted(quoted);
    }
    if utf8 {
        if let Ok(quoted) = QuotedUtf8::try_from(text.to_owned()) {
            return IString::QuotedUtf8(quoted);
        }
    }
    let bytes: Vec<u8> = text.bytes().filter(|&byte| byte != 0).collect();
    match Literal::try_from(bytes) {
        Ok(literal) => IString::Literal(literal),
        Err(_) => IString::Quoted(Quoted::unvalidated("")),
    }
}

/// A display name, which the summary holds decoded. Without UTF-8 in quoted strings a
/// non-ASCII name goes back to RFC 2047 encoded-words, as a 7-bit header would carry it (RFC
/// 9051 §7.5.2 passes header text on as it is).
fn phrase(text: &str, utf8: bool) -> IString<'static> {
    if utf8 || text.is_ascii() {
        istring(text, utf8)
    } else {
        istring(&encoded_words(text), false)
    }
}

/// `text` as RFC 2047 "B" encoded-words in UTF-8, split between characters (§5: an
/// encoded-word holds whole characters) and separated by spaces, which decoders drop (§6.2).
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    for (at, ch) in text.char_indices() {
        if at + ch.len_utf8() - start > WORD_OCTETS {
            words.push(text.get(start..at).unwrap_or_default());
            start = at;
        }
    }
    words.push(text.get(start..).unwrap_or_default());
    words
        .iter()
        .map(|word| format!("=?UTF-8?B?{}?=", BASE64.encode(word)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// IMAP numbers are 32-bit (RFC 9051 §4.2); messages are far smaller than that.
pub(super) fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
