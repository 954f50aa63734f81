//! Format detection and the uniform message stream.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek};
use std::path::Path;

use crate::files::{self, Entry, Layout};
use crate::{envelope, BadMessage, ImportedMessage, MailfileError, MboxReader};

/// What [`open`] detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory with `cur/` and/or `new/`.
    Maildir,
    /// Any other directory: every regular non-hidden file below it is one message.
    Folder,
    /// A file holding several messages separated by `From ` lines.
    Mbox,
    /// A file holding one message.
    SingleFile,
}

enum Inner {
    Files(std::vec::IntoIter<Entry>),
    Mbox(MboxReader<Box<dyn BufRead + Send>>),
}

/// A stream of messages. Bad messages are yielded as `Err(BadMessage)` and the stream goes on.
pub struct Source {
    kind: SourceKind,
    len_hint: Option<usize>,
    inner: Inner,
}

impl Source {
    /// Reads an mbox from any buffered reader (e.g. stdin).
    pub fn from_mbox_reader(reader: impl BufRead + Send + 'static) -> Source {
        Source {
            kind: SourceKind::Mbox,
            len_hint: None,
            inner: Inner::Mbox(MboxReader::new(Box::new(reader))),
        }
    }

    fn from_entries(kind: SourceKind, entries: Vec<Entry>) -> Source {
        Source {
            kind,
            len_hint: Some(entries.len()),
            inner: Inner::Files(entries.into_iter()),
        }
    }

    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Number of items the stream will yield (files, including bad ones), or `None` for an
    /// mbox, whose count is only known at the end.
    pub fn len_hint(&self) -> Option<usize> {
        self.len_hint
    }

    pub fn next_message(&mut self) -> Option<Result<ImportedMessage, BadMessage>> {
        match &mut self.inner {
            Inner::Files(entries) => entries.next().map(Entry::load),
            Inner::Mbox(reader) => reader.next(),
        }
    }
}

impl Iterator for Source {
    type Item = Result<ImportedMessage, BadMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message()
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("kind", &self.kind)
            .field("len_hint", &self.len_hint)
            .finish_non_exhaustive()
    }
}

/// Opens `path`, detecting Maildir, a folder of message files, an mbox or a single message.
pub fn open(path: &Path) -> Result<Source, MailfileError> {
    let meta = fs::metadata(path).map_err(MailfileError::io(path))?;
    if meta.is_dir() {
        return open_dir(path);
    }
    if !meta.is_file() {
        return Err(MailfileError::Unsupported {
            path: path.to_path_buf(),
        });
    }
    let mut reader = BufReader::new(File::open(path).map_err(MailfileError::io(path))?);
    let is_mbox = holds_several_messages(&mut reader).map_err(MailfileError::io(path))?;
    if !is_mbox {
        let entry = Entry::File(path.to_path_buf(), Layout::Plain);
        return Ok(Source::from_entries(SourceKind::SingleFile, vec![entry]));
    }
    reader.rewind().map_err(MailfileError::io(path))?;
    Ok(Source::from_mbox_reader(reader))
}

/// Opens `path` as an mbox whatever it holds; useful for a one-message mbox, which
/// [`open`] reads as a single message file (keeping quoting and the framing newline).
pub fn open_mbox(path: &Path) -> Result<Source, MailfileError> {
    let file = File::open(path).map_err(MailfileError::io(path))?;
    Ok(Source::from_mbox_reader(BufReader::new(file)))
}

fn open_dir(path: &Path) -> Result<Source, MailfileError> {
    if files::is_maildir(path) {
        return Ok(Source::from_entries(
            SourceKind::Maildir,
            files::list_maildir(path),
        ));
    }
    let entries = files::walk_folder(path).map_err(MailfileError::io(path))?;
    Ok(Source::from_entries(SourceKind::Folder, entries))
}

/// True when the stream starts with `From ` and holds a second separator line (by the
/// reader's own rule). Stops at the second separator, so a large mbox is not read through.
fn holds_several_messages(reader: &mut impl BufRead) -> io::Result<bool> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 || !envelope::starts_with_from(&line) {
        return Ok(false);
    }
    let mut prev_blank = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        if envelope::is_separator(&line, false, prev_blank) {
            return Ok(true);
        }
        prev_blank = line == b"\n" || line == b"\r\n";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn several(data: &[u8]) -> bool {
        holds_several_messages(&mut &data[..]).unwrap()
    }

    #[test]
    fn source_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Source>();
    }

    #[test]
    fn detection_needs_a_leading_from_and_a_second_separator() {
        assert!(several(
            b"From a Thu Aug 22 12:36:23 2002\nS: 1\n\nFrom b Thu Aug 22 12:36:23 2002\nS: 2\n"
        ));
        assert!(!several(b"From a Thu Aug 22 12:36:23 2002\nS: 1\n\nbody\n"));
        assert!(!several(b"S: 1\n\nFrom b Thu Aug 22 12:36:23 2002\nS: 2\n"));
        assert!(!several(b""));
    }

    #[test]
    fn prose_from_line_in_single_message_does_not_make_it_an_mbox() {
        let data =
            b"From a Thu Aug 22 12:36:23 2002\nS: 1\n\nintro\n\nFrom home studios to the stage\n";
        assert!(!several(data));
    }
}
