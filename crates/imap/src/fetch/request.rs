//! The data items of one FETCH command, expanded and classified once per command.

use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use postkeep_imap_proto::ext::FetchExt;
use postkeep_store::RecordParts;

/// What a FETCH command asked for: the standard items, macros expanded and duplicates dropped,
/// plus the extension items imap-codec cannot parse (lifted out by the shim).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRequest {
    items: Vec<MessageDataItemName<'static>>,
    ext: Vec<FetchExt>,
}

impl FetchRequest {
    /// Expands ALL, FAST and FULL (RFC 9051 §6.4.5) and drops items that would produce the same
    /// response item twice (`BODY[1]` and `BODY.PEEK[1]` both answer as `BODY[1]`).
    pub fn new(items: MacroOrMessageDataItemNames<'static>, ext: Vec<FetchExt>) -> Self {
        let names = match items {
            MacroOrMessageDataItemNames::Macro(m) => m.expand().iter().filter_map(owned).collect(),
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
        };
        let mut request = FetchRequest {
            items: Vec::with_capacity(names.len()),
            ext: Vec::with_capacity(ext.len()),
        };
        for name in names {
            if !request.items.iter().any(|seen| same_response(seen, &name)) {
                request.items.push(name);
            }
        }
        for item in ext {
            if !request.ext.contains(&item) {
                request.ext.push(item);
            }
        }
        request
    }

    /// The same request with FLAGS added, for the messages whose `\Seen` this FETCH just set
    /// (RFC 9051 §6.4.5: the changed flags SHOULD be included). Build it once per command.
    pub fn with_flags(&self) -> Self {
        let mut request = self.clone();
        if !request.has_flags() {
            request.items.push(MessageDataItemName::Flags);
        }
        request
    }

    /// True when an item reads the message summary: ENVELOPE, BODY, BODYSTRUCTURE, and every
    /// section other than the whole message (`BODY[]`, `RFC822`, `BINARY[]`, `BINARY.SIZE[]`).
    pub fn needs_summary(&self) -> bool {
        self.items.iter().any(Self::reads_summary)
    }

    fn reads_summary(item: &MessageDataItemName<'_>) -> bool {
        match item {
            MessageDataItemName::Body
            | MessageDataItemName::BodyStructure
            | MessageDataItemName::Envelope
            | MessageDataItemName::Rfc822Header
            | MessageDataItemName::Rfc822Text => true,
            MessageDataItemName::BodyExt { section, .. } => section.is_some(),
            MessageDataItemName::Binary { section, .. }
            | MessageDataItemName::BinarySize { section } => !section.is_empty(),
            _ => false,
        }
    }

    /// True when ENVELOPE is the one item that reads the summary: its other fields need not be
    /// decoded.
    pub fn needs_only_envelope(&self) -> bool {
        self.has(&MessageDataItemName::Envelope)
            && self
                .items
                .iter()
                .filter(|item| **item != MessageDataItemName::Envelope)
                .all(|item| !Self::reads_summary(item))
    }

    /// What the store loads with each message: the summary when [`Self::needs_summary`] (only
    /// the envelope rendered at ingest when [`Self::needs_only_envelope`]), and small messages'
    /// sealed bodies when an item reads message content.
    pub fn record_parts(&self) -> RecordParts {
        let reads_content = self.items.iter().any(|item| {
            matches!(
                item,
                MessageDataItemName::BodyExt { .. }
                    | MessageDataItemName::Binary { .. }
                    | MessageDataItemName::BinarySize { .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Header
                    | MessageDataItemName::Rfc822Text
            )
        });
        let envelope = self.needs_only_envelope();
        RecordParts {
            summary: self.needs_summary() && !envelope,
            envelope,
            inline_blob: reads_content,
        }
    }

    /// True when fetching implicitly sets `\Seen` (RFC 9051 §6.4.5; RFC 3516 §4.2 for BINARY).
    pub fn sets_seen(&self) -> bool {
        self.items.iter().any(|item| match item {
            MessageDataItemName::BodyExt { peek, .. }
            | MessageDataItemName::Binary { peek, .. } => !peek,
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
            _ => false,
        })
    }

    /// True when FLAGS was requested.
    pub fn has_flags(&self) -> bool {
        self.has(&MessageDataItemName::Flags)
    }

    pub(super) fn has(&self, name: &MessageDataItemName<'_>) -> bool {
        self.items.contains(name)
    }

    pub(super) fn items(&self) -> &[MessageDataItemName<'static>] {
        &self.items
    }

    pub(super) fn ext(&self) -> &[FetchExt] {
        &self.ext
    }
}

/// The items a macro expands to carry no data; this turns the borrowed expansion into owned
/// items.
fn owned(name: &MessageDataItemName<'_>) -> Option<MessageDataItemName<'static>> {
    use MessageDataItemName as N;
    Some(match name {
        N::Flags => N::Flags,
        N::InternalDate => N::InternalDate,
        N::Rfc822Size => N::Rfc822Size,
        N::Envelope => N::Envelope,
        N::Body => N::Body,
        _ => return None,
    })
}

/// True when both items are answered by the same response item (`.PEEK` is not echoed).
fn same_response(a: &MessageDataItemName<'_>, b: &MessageDataItemName<'_>) -> bool {
    use MessageDataItemName as N;
    match (a, b) {
        (
            N::BodyExt {
                section: s1,
                partial: p1,
                ..
            },
            N::BodyExt {
                section: s2,
                partial: p2,
                ..
            },
        ) => s1 == s2 && p1 == p2,
        (
            N::Binary {
                section: s1,
                partial: p1,
                ..
            },
            N::Binary {
                section: s2,
                partial: p2,
                ..
            },
        ) => s1 == s2 && p1 == p2,
        _ => a == b,
    }
}
