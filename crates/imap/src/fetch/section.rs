//! Where a `BODY[section]` or `BINARY[section]` lives in the wire form (RFC 9051 §6.4.5), found
//! in the summary's part tree. Offsets in the summary are wire offsets (docs/imap-plan.md §2.3).

use std::num::NonZeroU32;
use std::ops::Range;

use imap_types::fetch::{Part, Section};
use postkeep_message::{BodyPart, MessageSummary};

/// What a section refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// These wire bytes, as they are.
    Bytes(Range<u64>),
    /// The fields of the header at `range` whose names are (or, with `exclude`, are not) in
    /// `names` (HEADER.FIELDS and HEADER.FIELDS.NOT).
    Fields {
        range: Range<u64>,
        names: Vec<Vec<u8>>,
        exclude: bool,
    },
    /// No such part: answered with an empty string, as Dovecot does.
    Missing,
}

/// The target of `BODY[section]`; `None` is the whole message.
pub(super) fn body(section: Option<&Section<'_>>, summary: &MessageSummary, size: u64) -> Target {
    let root = &summary.body;
    let bytes = |range: Option<Range<u64>>| range.map_or(Target::Missing, Target::Bytes);
    let Some(section) = section else {
        return Target::Bytes(0..size);
    };
    match section {
        Section::Part(part) => bytes(find(root, path(part)).map(|node| content(node, size))),
        Section::Mime(part) => bytes(find(root, path(part)).map(|node| header(node, size))),
        Section::Header(part) => bytes(message(root, part.as_ref()).map(|m| header(m, size))),
        Section::Text(part) => bytes(message(root, part.as_ref()).map(|m| content(m, size))),
        Section::HeaderFields(part, names) => {
            fields(root, part.as_ref(), names.as_ref(), false, size)
        }
        Section::HeaderFieldsNot(part, names) => {
            fields(root, part.as_ref(), names.as_ref(), true, size)
        }
    }
}

/// The target of `BINARY[section]` and the transfer encoding to undo (RFC 3516 §4.2); `None`
/// for a part that does not exist. The empty section is the whole message, not decoded.
pub(super) fn binary<'s>(
    section: &[NonZeroU32],
    summary: &'s MessageSummary,
    size: u64,
) -> Option<(Range<u64>, Option<&'s str>)> {
    if section.is_empty() {
        return Some((0..size, None));
    }
    let node = find(&summary.body, section)?;
    Some((content(node, size), Some(node.encoding.as_str())))
}

fn fields(
    root: &BodyPart,
    part: Option<&Part>,
    names: &[imap_types::core::AString<'_>],
    exclude: bool,
    size: u64,
) -> Target {
    match message(root, part) {
        Some(m) => Target::Fields {
            range: header(m, size),
            names: names.iter().map(|name| name.as_ref().to_vec()).collect(),
            exclude,
        },
        None => Target::Missing,
    }
}

fn path(part: &Part) -> &[NonZeroU32] {
    part.0.as_ref()
}

/// The message whose HEADER or TEXT a section means: the top-level message, or the message
/// inside the MESSAGE/RFC822 (or GLOBAL) part `part` (RFC 9051 §6.4.5).
fn message<'a>(root: &'a BodyPart, part: Option<&Part>) -> Option<&'a BodyPart> {
    match part {
        None => Some(root),
        Some(part) => find(root, path(part))?
            .embedded
            .as_ref()
            .map(|embedded| &embedded.body),
    }
}

/// The part a numeric part path names (RFC 9051 §6.4.5). Numbers index the parts of a
/// multipart; a non-multipart message has only part 1, its body; a MESSAGE/RFC822 part's
/// numbers continue into the message it holds.
fn find<'a>(root: &'a BodyPart, path: &[NonZeroU32]) -> Option<&'a BodyPart> {
    // The body of a message, whose part 1 is itself when it is not a multipart.
    let mut level: Option<(&BodyPart, bool)> = Some((root, true));
    let mut found = None;
    for number in path {
        let (parent, is_message) = level?;
        let index = usize::try_from(number.get() - 1).ok()?;
        let node = if parent.is_multipart() {
            parent.children.get(index)?
        } else if is_message && index == 0 {
            parent
        } else {
            return None;
        };
        level = match &node.embedded {
            Some(embedded) => Some((&embedded.body, true)),
            None if node.is_multipart() => Some((node, false)),
            None => None,
        };
        found = Some(node);
    }
    found
}

/// `header_offset..body_offset`, clamped to the message: a damaged summary must not make a
/// read run past the end.
fn header(node: &BodyPart, size: u64) -> Range<u64> {
    clamp(node.header_offset, node.body_offset, size)
}

fn content(node: &BodyPart, size: u64) -> Range<u64> {
    clamp(node.body_offset, node.end_offset, size)
}

fn clamp(start: u64, end: u64, size: u64) -> Range<u64> {
    let end = end.min(size);
    start.min(end)..end
}
