//! The stored message model (`postkeep-message`'s envelope and part tree) as imap-types values
//! (RFC 9051 §7.5.2), with strings quoted, UTF-8 quoted or sent as literals as the session
//! allows; and [`RenderedEnvelope`], the ENVELOPE rendered once at ingest.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use imap_codec::encode::Encoder;
use imap_codec::ResponseCodec;
use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{IString, Literal, NString, Quoted, Vec1};
use imap_types::envelope;
use imap_types::extensions::utf8::QuotedUtf8;
use imap_types::fetch::MessageDataItem;
use imap_types::response::{Data, Response};
use postkeep_message::{Address, BodyPart, Envelope};

/// Octets of UTF-8 per RFC 2047 encoded-word: "=?UTF-8?B?" + 60 base64 characters + "?=" is
/// 72 characters, inside the 75 that RFC 2047 §2 allows.
const WORD_OCTETS: usize = 45;

/// RFC 9051 §7.5.2 ENVELOPE.
pub fn envelope(env: &Envelope, utf8: bool) -> envelope::Envelope<'static> {
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
pub fn body_structure(part: &BodyPart, extended: bool, utf8: bool) -> BodyStructure<'static> {
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
fn istring(text: &str, utf8: bool) -> IString<'static> {
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
pub fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// ENVELOPE (RFC 9051 §7.5.2) in IMAP syntax, rendered once at ingest and stored (sealed) next
/// to the summary, so that FETCH ENVELOPE writes stored bytes instead of opening the whole
/// summary, decoding it and encoding the envelope again. Dovecot's index cache keeps
/// `imap.envelope` pre-rendered for the same reason.
///
/// It holds both forms a session can need: without UTF8=ACCEPT (non-ASCII display names as
/// RFC 2047 encoded-words, other 8-bit strings as literals) and with it (RFC 6855 §3 UTF-8
/// quoted strings); the second is stored only when it differs.
///
/// Stored form: [`RenderedEnvelope::VERSION`], the plain form's length (u32, little-endian),
/// the plain form, then the UTF-8 form (nothing when it is the same as the plain form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEnvelope {
    stored: Vec<u8>,
    plain_end: usize,
}

impl RenderedEnvelope {
    /// The first byte of the stored form, so that a later format can be told apart.
    pub const VERSION: u8 = 1;
    const HEADER: usize = 5;

    /// The stored form of `env`; `None` if imap-codec's encoding did not have the expected
    /// shape (then FETCH converts the summary's envelope as before).
    pub fn render(env: &Envelope) -> Option<Vec<u8>> {
        let plain = encode_envelope(env, false)?;
        let utf8 = encode_envelope(env, true)?;
        let mut stored = Vec::with_capacity(Self::HEADER + plain.len() * 2);
        stored.push(Self::VERSION);
        stored.extend_from_slice(&u32::try_from(plain.len()).ok()?.to_le_bytes());
        stored.extend_from_slice(&plain);
        if utf8 != plain {
            stored.extend_from_slice(&utf8);
        }
        Some(stored)
    }

    /// Reads a stored form; `None` for bytes [`RenderedEnvelope::render`] did not write.
    pub fn from_stored(stored: Vec<u8>) -> Option<Self> {
        let (&version, rest) = stored.split_first()?;
        let length: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let plain_end =
            Self::HEADER.checked_add(usize::try_from(u32::from_le_bytes(length)).ok()?)?;
        (version == Self::VERSION && plain_end <= stored.len())
            .then_some(Self { stored, plain_end })
    }

    /// The envelope as a session writes it after `ENVELOPE `: `utf8` when UTF8=ACCEPT is
    /// enabled or the session is IMAP4rev2.
    pub fn for_session(&self, utf8: bool) -> &[u8] {
        let plain = &self.stored[Self::HEADER..self.plain_end];
        match &self.stored[self.plain_end..] {
            utf8_form if utf8 && !utf8_form.is_empty() => utf8_form,
            _ => plain,
        }
    }
}

/// imap-codec's encoding of the envelope alone, cut out of a FETCH response (imap-codec
/// encodes whole messages only).
fn encode_envelope(env: &Envelope, utf8: bool) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"* 1 FETCH (ENVELOPE ";
    const SUFFIX: &[u8] = b")\r\n";
    let response = Response::Data(Data::Fetch {
        seq: std::num::NonZeroU32::MIN,
        items: Vec1::from(MessageDataItem::Envelope(envelope(env, utf8))),
    });
    let wire = ResponseCodec::default().encode(&response).dump();
    let inner = wire.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    Some(inner.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_from(name: &str) -> Envelope {
        let from = vec![Address {
            name: Some(name.to_owned()),
            mailbox: Some("jose".to_owned()),
            host: Some("example.es".to_owned()),
            ..Address::default()
        }];
        Envelope {
            subject: Some("multi\r\nline".to_owned()),
            sender: from.clone(),
            reply_to: from.clone(),
            from,
            ..Envelope::default()
        }
    }

    #[test]
    fn rendered_envelope_is_what_imap_codec_writes_for_each_session() {
        let env = envelope_from("José");
        let stored = RenderedEnvelope::render(&env).expect("rendered");
        let rendered = RenderedEnvelope::from_stored(stored).expect("readable");
        for utf8 in [false, true] {
            let item = MessageDataItem::Envelope(envelope(&env, utf8));
            let response = Response::Data(Data::Fetch {
                seq: std::num::NonZeroU32::MIN,
                items: Vec1::from(item),
            });
            let mut expected = b"* 1 FETCH (ENVELOPE ".to_vec();
            expected.extend_from_slice(rendered.for_session(utf8));
            expected.extend_from_slice(b")\r\n");
            assert_eq!(ResponseCodec::default().encode(&response).dump(), expected);
        }
        assert_ne!(rendered.for_session(true), rendered.for_session(false));
    }

    #[test]
    fn an_ascii_envelope_stores_one_form_for_both_sessions() {
        let stored = RenderedEnvelope::render(&envelope_from("Jose")).expect("rendered");
        let rendered = RenderedEnvelope::from_stored(stored.clone()).expect("readable");
        assert_eq!(rendered.for_session(true), rendered.for_session(false));
        assert_eq!(
            stored.len(),
            RenderedEnvelope::HEADER + rendered.for_session(false).len()
        );
        // The literal for the subject's line break is part of the stored bytes.
        assert!(rendered
            .for_session(false)
            .starts_with(b"(NIL {11}\r\nmulti\r\nline "));
    }

    #[test]
    fn stored_forms_it_did_not_write_are_refused() {
        let stored = RenderedEnvelope::render(&envelope_from("Jose")).expect("rendered");
        let mut other_version = stored.clone();
        other_version[0] = 2;
        assert_eq!(RenderedEnvelope::from_stored(other_version), None);
        assert_eq!(RenderedEnvelope::from_stored(stored[..3].to_vec()), None);
        let mut too_long = stored;
        too_long[1] = 0xff;
        too_long[2] = 0xff;
        assert_eq!(RenderedEnvelope::from_stored(too_long), None);
        assert_eq!(RenderedEnvelope::from_stored(Vec::new()), None);
    }
}
