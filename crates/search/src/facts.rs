//! What is known about one message during a search, loaded one stage at a time.

use std::io::Read;
use std::sync::Arc;

use postkeep_message::{Address, MessageSummary};
use postkeep_store::{MailStore, MessageRecord, StoreError};

use crate::content::{self, Content};
use crate::fold::fold;
use crate::headers::{self, Field};
use crate::query::Stage;
use crate::SearchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressField {
    From,
    To,
    Cc,
    Bcc,
}

/// The summary's searchable fields, folded (stage 2).
pub(crate) struct SummaryFacts {
    from: String,
    to: String,
    cc: String,
    bcc: String,
    pub(crate) subject: String,
    pub(crate) sent: Option<i64>,
    /// Wire offset where the top-level header ends (blank line included).
    header_end: u64,
}

impl SummaryFacts {
    fn new(summary: &MessageSummary) -> Self {
        let envelope = &summary.envelope;
        Self {
            from: address_text(&envelope.from),
            to: address_text(&envelope.to),
            cc: address_text(&envelope.cc),
            bcc: address_text(&envelope.bcc),
            subject: fold(summary.subject.as_deref().unwrap_or_default()),
            sent: summary.sent_date,
            header_end: summary.body.body_offset,
        }
    }

    pub(crate) fn address(&self, field: AddressField) -> &str {
        match field {
            AddressField::From => &self.from,
            AddressField::To => &self.to,
            AddressField::Cc => &self.cc,
            AddressField::Bcc => &self.bcc,
        }
    }
}

/// One line per address, `Name <mailbox@host>` (or just `<mailbox@host>`), and `group:` for a
/// group, folded: a search string matches the decoded name, the address, or both together, and
/// never spans two addresses.
fn address_text(addresses: &[Address]) -> String {
    let mut out = String::new();
    for address in addresses {
        if address.is_group_marker() {
            if let Some(group) = &address.mailbox {
                out.push_str(group);
                out.push_str(":\n");
            }
            continue;
        }
        if let Some(name) = address.name.as_deref().filter(|n| !n.is_empty()) {
            out.push_str(name);
            out.push(' ');
        }
        out.push('<');
        out.push_str(&addr_spec(address));
        out.push_str(">\n");
    }
    fold(&out)
}

/// `mailbox@host`, or the bare mailbox when the address had no domain.
pub(crate) fn addr_spec(address: &Address) -> String {
    let mailbox = address.mailbox.as_deref().unwrap_or_default();
    match address.host.as_deref() {
        Some(host) if !host.is_empty() => format!("{mailbox}@{host}"),
        _ => mailbox.to_string(),
    }
}

/// The stages loaded so far for one message; each is loaded at most once.
#[derive(Default)]
pub(crate) struct Facts {
    pub(crate) summary: Option<SummaryFacts>,
    header: Option<Vec<Field>>,
    pub(crate) content: Option<Content>,
}

impl Facts {
    /// The top-level header fields, from the header block or the parsed message.
    pub(crate) fn fields(&self) -> Option<&[Field]> {
        self.header
            .as_deref()
            .or(self.content.as_ref().map(|c| c.top_fields.as_slice()))
    }

    /// Loads `stage` (the header block first loads the summary, which says where the header
    /// ends). Every call fills a stage that was missing, so evaluation always progresses.
    /// CPU-bound (decrypt, decompress, parse): run it on a blocking thread, as the search's
    /// chunks are.
    pub(crate) async fn load(
        &mut self,
        store: &Arc<MailStore>,
        record: &MessageRecord,
        stage: Stage,
    ) -> Result<(), SearchError> {
        match (stage, &self.summary) {
            (Stage::Summary, _) | (Stage::Header, None) => {
                self.summary = Some(SummaryFacts::new(&store.summary(record).await?));
            }
            (Stage::Header, Some(summary)) => {
                let reader = store
                    .wire_reader(record, Some(0..summary.header_end))
                    .await?;
                self.header = Some(headers::decoded_fields(&read_all(reader, 0)?));
            }
            (Stage::Content, _) => {
                let reader = store.message_reader(record).await?;
                // The size is only a capacity hint: never preallocate more than this for it.
                let size = usize::try_from(record.size).map_or(0, |n| n.min(16 << 20));
                self.content = Some(content::extract(&read_all(reader, size)?));
            }
        }
        Ok(())
    }
}

/// Reads a stored message (decrypting as it goes); a failure there is a sealing problem.
fn read_all(mut reader: Box<dyn Read + Send>, capacity: usize) -> Result<Vec<u8>, StoreError> {
    let mut raw = Vec::with_capacity(capacity);
    reader
        .read_to_end(&mut raw)
        .map_err(|e| StoreError::Sealed(e.to_string()))?;
    Ok(raw)
}
