//! One-message-per-file sources: Maildir, a folder of message files, a single file.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::{envelope, header, maildir, BadMessage, ImportedMessage};

/// How a listed file is turned into a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Flags from the file name, internal date from mtime.
    Maildir,
    /// Internal date from a leading `From ` line, if any.
    Plain,
}

/// One item of a file listing: a file to read, or a directory that could not be listed.
#[derive(Debug)]
pub(crate) enum Entry {
    File(PathBuf, Layout),
    Unreadable { origin: String, reason: String },
}

impl Entry {
    fn unreadable(path: &Path, err: &std::io::Error) -> Entry {
        Entry::Unreadable {
            origin: path.display().to_string(),
            reason: format!("cannot list directory: {err}"),
        }
    }

    pub(crate) fn load(self) -> Result<ImportedMessage, BadMessage> {
        match self {
            Entry::File(path, layout) => load_file(&path, layout),
            Entry::Unreadable { origin, reason } => Err(BadMessage { origin, reason }),
        }
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Regular (or symlinked-to-regular) non-hidden files, and the subdirectories, of `dir`,
/// each list sorted by name. Symlinked directories are not followed (no cycles).
fn list_dir(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if is_hidden(&entry.file_name()) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            dirs.push(path);
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// Every message file under `root`, recursively, in sorted path order.
pub(crate) fn walk_folder(root: &Path) -> std::io::Result<Vec<Entry>> {
    let (files, dirs) = list_dir(root)?;
    let mut out = Vec::new();
    merge_walk(files, dirs, &mut out);
    Ok(out)
}

/// Path order interleaves files and subdirectories by name, so merge the two sorted lists.
fn merge_walk(files: Vec<PathBuf>, dirs: Vec<PathBuf>, out: &mut Vec<Entry>) {
    let mut files = files.into_iter().peekable();
    let mut dirs = dirs.into_iter().peekable();
    loop {
        let take_file = match (files.peek(), dirs.peek()) {
            (Some(f), Some(d)) => f < d,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return,
        };
        if take_file {
            out.extend(files.next().map(|f| Entry::File(f, Layout::Plain)));
        } else if let Some(dir) = dirs.next() {
            match list_dir(&dir) {
                Ok((f, d)) => merge_walk(f, d, out),
                Err(e) => out.push(Entry::unreadable(&dir, &e)),
            }
        }
    }
}

/// Whether `dir` is a Maildir: it has `cur/` or `new/`.
pub(crate) fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Files of `cur/` and `new/` together, sorted by file name (names start with the delivery
/// time, so this is roughly arrival order).
pub(crate) fn list_maildir(root: &Path) -> Vec<Entry> {
    let mut files = Vec::new();
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let dir = root.join(sub);
        if !dir.is_dir() {
            continue;
        }
        match list_dir(&dir) {
            Ok((f, _)) => files.extend(f),
            Err(e) => out.push(Entry::unreadable(&dir, &e)),
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    out.extend(files.into_iter().map(|f| Entry::File(f, Layout::Maildir)));
    out
}

fn load_file(path: &Path, layout: Layout) -> Result<ImportedMessage, BadMessage> {
    let origin = path.display().to_string();
    let bad = |reason: String| BadMessage {
        origin: origin.clone(),
        reason,
    };
    let mut raw = fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let envelope = take_envelope(&mut raw);
    header::check_message(&raw).map_err(bad)?;
    let (flags, internal_date) = match layout {
        Layout::Maildir => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            (maildir::flags_from_name(&name), mtime(path))
        }
        Layout::Plain => (
            Vec::new(),
            envelope.as_deref().and_then(envelope::parse_date),
        ),
    };
    Ok(ImportedMessage {
        raw,
        flags,
        internal_date,
        origin,
    })
}

/// Removes a leading mbox `From ` line (never a header: a header has a colon right after
/// its name) and returns it.
fn take_envelope(raw: &mut Vec<u8>) -> Option<Vec<u8>> {
    if !envelope::starts_with_from(raw) {
        return None;
    }
    let end = raw
        .iter()
        .position(|b| *b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    Some(raw.drain(..end).collect())
}

fn mtime(path: &Path) -> Option<DateTime<Utc>> {
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(DateTime::<Utc>::from(modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_from_line_is_removed_with_its_newline() {
        let mut raw = b"From a@b Thu Aug 22 12:36:23 2002\r\nSubject: x\r\n".to_vec();
        let env = take_envelope(&mut raw);
        assert_eq!(raw, b"Subject: x\r\n".to_vec());
        assert_eq!(
            env.unwrap(),
            b"From a@b Thu Aug 22 12:36:23 2002\r\n".to_vec()
        );
        let mut plain = b"Subject: From x\n".to_vec();
        assert_eq!(take_envelope(&mut plain), None);
        assert_eq!(plain, b"Subject: From x\n".to_vec());
    }

    #[test]
    fn walk_is_in_sorted_path_order_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in ["b", "a/z", "a-file", "a/y/x", ".hidden", ".git/c", "c"] {
            let path = root.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "Subject: x\n").unwrap();
        }
        let got: Vec<PathBuf> = walk_folder(root)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Entry::File(p, _) => p.strip_prefix(root).unwrap().to_path_buf(),
                Entry::Unreadable { origin, .. } => panic!("unreadable {origin}"),
            })
            .collect();
        let mut want: Vec<PathBuf> = ["a/y/x", "a/z", "a-file", "b", "c"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
        want.sort();
        assert_eq!(got, want, "walk order must equal sorted path order");
    }
}
