//! BODYSTRUCTURE (RFC 9051 §7.5.2) tree from mail-parser's flat part list, with the depth and
//! part-count caps that keep hostile MIME from costing unbounded stack or memory.

use std::ops::Range;

use mail_parser::{ContentType, Header, HeaderName, HeaderValue, Message, PartType};

use crate::model::{BodyPart, EmbeddedMessage};
use crate::{envelope, raw};

/// Deepest BodyPart level that may still have children or an embedded message (the root is
/// level 0). Deeper structure is reported as an APPLICATION/OCTET-STREAM leaf.
pub const MAX_DEPTH: usize = 32;

/// Most BodyParts one summary holds; parts past it are left out of their parent's children.
pub const MAX_PARTS: usize = 1000;

/// What a part without a usable Content-Type is taken to be.
#[derive(Clone, Copy)]
pub(crate) enum DefaultType {
    /// RFC 2045 §5.2: text/plain; charset=us-ascii.
    Text,
    /// RFC 2046 §5.1.5: message/rfc822 inside multipart/digest.
    Message,
}

/// Walks one message's parts, spending a shared part budget.
pub struct TreeBuilder<'r> {
    raw: &'r [u8],
    lines: raw::LineIndex<'r>,
    budget: usize,
}

impl<'r> TreeBuilder<'r> {
    pub fn new(raw: &'r [u8]) -> Self {
        TreeBuilder {
            raw,
            lines: raw::LineIndex::new(raw),
            budget: MAX_PARTS,
        }
    }

    /// The BODYSTRUCTURE of a parsed message, rooted at its first part.
    pub fn message_body(&mut self, msg: &Message<'_>) -> Option<BodyPart> {
        self.part(msg, 0, 0, DefaultType::Text, 0..self.raw.len())
    }

    fn part(
        &mut self,
        msg: &Message<'_>,
        id: usize,
        depth: usize,
        default: DefaultType,
        bounds: Range<usize>,
    ) -> Option<BodyPart> {
        let part = msg.parts.get(id)?;
        self.budget = self.budget.checked_sub(1)?;
        let (header, body, end) = clamp_offsets(
            [part.offset_header, part.offset_body, part.offset_end],
            bounds,
        );
        let mut node = leaf(self.raw, &part.headers, default);
        node.header_offset = header as u64;
        node.body_offset = body as u64;
        node.end_offset = end as u64;

        let exposed = match &part.body {
            PartType::Multipart(ids) => {
                depth < MAX_DEPTH && self.children(msg, ids, depth, &mut node, body..end)
            }
            PartType::Message(inner) => {
                depth < MAX_DEPTH && self.embed(inner, depth, &mut node, body..end)
            }
            _ => !is_multipart(&node) && !is_message(&node),
        };
        if !exposed {
            make_opaque(&mut node);
        }
        if node.content_type == "TEXT" || node.embedded.is_some() {
            node.lines = Some(self.lines.lines(body, end));
        }
        Some(node)
    }

    /// Fills `node.children`; false when none could be produced.
    fn children(
        &mut self,
        msg: &Message<'_>,
        ids: &[u32],
        depth: usize,
        node: &mut BodyPart,
        bounds: Range<usize>,
    ) -> bool {
        let default = if node.subtype == "DIGEST" {
            DefaultType::Message
        } else {
            DefaultType::Text
        };
        for &id in ids {
            if self.budget == 0 {
                break;
            }
            let Ok(id) = usize::try_from(id) else {
                continue;
            };
            if let Some(child) = self.part(msg, id, depth + 1, default, bounds.clone()) {
                node.children.push(child);
            }
        }
        if node.children.is_empty() {
            return false;
        }
        if node.content_type != "MULTIPART" {
            // mail-parser split it, so it is one; RFC 2046 §5.1.7 treats unknown as mixed.
            node.content_type = "MULTIPART".into();
            node.subtype = "MIXED".into();
        }
        true
    }

    /// Fills `node.embedded`; false when the nested message has no usable root.
    fn embed(
        &mut self,
        inner: &Message<'_>,
        depth: usize,
        node: &mut BodyPart,
        bounds: Range<usize>,
    ) -> bool {
        let Some(root) = inner.parts.first() else {
            return false;
        };
        // Transfer-encoded message/rfc822 (forbidden by RFC 2046 §5.2.1) is parsed by
        // mail-parser from decoded bytes, so its offsets do not point into `raw`.
        if !is_identity_encoding(&node.encoding) {
            return false;
        }
        let Some(body) = self.part(inner, 0, depth + 1, DefaultType::Text, bounds) else {
            return false;
        };
        if !is_message(node) {
            node.content_type = "MESSAGE".into();
            node.subtype = "RFC822".into();
        }
        node.embedded = Some(Box::new(EmbeddedMessage {
            envelope: envelope::envelope(self.raw, &root.headers),
            body,
        }));
        true
    }
}

/// A leaf node with the part's MIME fields (RFC 2045, RFC 2183, RFC 3282, RFC 2557).
pub(crate) fn leaf(raw: &[u8], headers: &[Header<'_>], default: DefaultType) -> BodyPart {
    let (content_type, subtype, params) = media_type(headers, default);
    let encoding = raw::last_value(raw, headers, &HeaderName::ContentTransferEncoding)
        .filter(|e| !e.is_empty())
        .map_or_else(|| "7BIT".to_string(), |e| e.to_ascii_uppercase());
    BodyPart {
        content_type,
        subtype,
        params,
        id: raw::last_value(raw, headers, &HeaderName::ContentId),
        description: raw::last_value(raw, headers, &HeaderName::ContentDescription),
        encoding,
        md5: raw::last_value(raw, headers, &HeaderName::ContentMd5),
        disposition: disposition(headers),
        language: language(headers),
        location: raw::last_value(raw, headers, &HeaderName::ContentLocation),
        ..BodyPart::default()
    }
}

type MediaType = (String, String, Vec<(String, String)>);

fn media_type(headers: &[Header<'_>], default: DefaultType) -> MediaType {
    let ct = match raw::last(headers, &HeaderName::ContentType).map(|h| &h.value) {
        Some(HeaderValue::ContentType(ct)) if is_token(&ct.c_type) => ct,
        _ => return default_media_type(default),
    };
    let ctype = ct.c_type.to_ascii_uppercase();
    let subtype = match ct.c_subtype.as_deref().filter(|s| is_token(s)) {
        Some(s) => s.to_ascii_uppercase(),
        // RFC 2046 §5.1.7: an unknown multipart subtype is treated as mixed.
        None if ctype == "MULTIPART" => "MIXED".into(),
        // RFC 2045 §5.2: a syntactically invalid Content-Type means the default.
        None => return default_media_type(default),
    };
    (ctype, subtype, params(ct))
}

fn default_media_type(default: DefaultType) -> MediaType {
    match default {
        DefaultType::Text => (
            "TEXT".into(),
            "PLAIN".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
        DefaultType::Message => ("MESSAGE".into(), "RFC822".into(), Vec::new()),
    }
}

/// Parameters in order. mail-parser reports an RFC 2231 language tag as an extra
/// "<name>-language" attribute; that never appeared in the message, so it is dropped.
fn params(ct: &ContentType<'_>) -> Vec<(String, String)> {
    let attrs = ct.attributes().unwrap_or_default();
    let is_language_tag = |name: &str| {
        name.strip_suffix("-language")
            .is_some_and(|base| attrs.iter().any(|a| a.name == base))
    };
    attrs
        .iter()
        .filter(|a| !is_language_tag(&a.name))
        .map(|a| (a.name.to_string(), a.value.to_string()))
        .collect()
}

fn disposition(headers: &[Header<'_>]) -> Option<(String, Vec<(String, String)>)> {
    match raw::last(headers, &HeaderName::ContentDisposition).map(|h| &h.value) {
        Some(HeaderValue::ContentType(cd)) if is_token(&cd.c_type) => {
            Some((cd.c_type.to_string(), params(cd)))
        }
        _ => None,
    }
}

fn language(headers: &[Header<'_>]) -> Vec<String> {
    match raw::last(headers, &HeaderName::ContentLanguage).map(|h| &h.value) {
        Some(HeaderValue::Text(tag)) => vec![tag.trim().to_string()],
        Some(HeaderValue::TextList(tags)) => tags.iter().map(|t| t.trim().to_string()).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|t| !t.is_empty())
    .collect()
}

/// RFC 2045 §5.1 token: printable ASCII without specials.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// RFC 2045 §6.1: 7bit, 8bit and binary leave the bytes as they are.
pub(crate) fn is_identity_encoding(encoding: &str) -> bool {
    matches!(encoding, "7BIT" | "8BIT" | "BINARY")
}

pub(crate) fn is_multipart(node: &BodyPart) -> bool {
    node.content_type == "MULTIPART"
}

pub(crate) fn is_message(node: &BodyPart) -> bool {
    node.content_type == "MESSAGE" && matches!(node.subtype.as_str(), "RFC822" | "GLOBAL")
}

/// Structure we cannot or will not expose: an opaque leaf over the same bytes, so the
/// MULTIPART/children and MESSAGE/embedded invariants of [`BodyPart`] hold.
pub(crate) fn make_opaque(node: &mut BodyPart) {
    node.content_type = "APPLICATION".into();
    node.subtype = "OCTET-STREAM".into();
    node.children.clear();
    node.embedded = None;
}

/// Offsets made monotonic and kept inside the parent's range.
fn clamp_offsets(offsets: [u32; 3], bounds: Range<usize>) -> (usize, usize, usize) {
    let clamp = |v: u32, lo: usize| {
        usize::try_from(v)
            .unwrap_or(usize::MAX)
            .clamp(lo, bounds.end.max(lo))
    };
    let [h, b, e] = offsets;
    let header = clamp(h, bounds.start);
    let body = clamp(b, header);
    let end = clamp(e, body);
    (header, body, end)
}
