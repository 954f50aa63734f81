//! Maildir (cr.yp.to/proto/maildir.html): flags in the `:2,FLAGS` file-name suffix,
//! delivery through `tmp/` then rename.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::Flag;

/// Per-process counter: with pid and time it keeps names unique across writers and processes.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Flags encoded in a Maildir file name. Dovecot on some filesystems uses `!` for `:`.
pub(crate) fn flags_from_name(name: &str) -> Vec<Flag> {
    let info = name
        .rsplit_once(":2,")
        .or_else(|| name.rsplit_once("!2,"))
        .map_or("", |(_, info)| info);
    let mut flags: Vec<Flag> = info.chars().filter_map(Flag::from_maildir_char).collect();
    flags.sort_unstable();
    flags.dedup();
    flags
}

/// The `2,` info letters, sorted by ASCII value as the Maildir spec requires.
fn info_letters(flags: &[Flag]) -> String {
    let mut letters: Vec<char> = flags.iter().map(|f| f.maildir_char()).collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{:06}P{}Q{}.postkeep",
        now.as_secs(),
        now.subsec_micros(), // zero-padded so names sort by time within a second
        std::process::id(),
        DELIVERIES.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes messages into a Maildir, creating `cur/ new/ tmp/` as needed.
#[derive(Debug, Clone)]
pub struct MaildirWriter {
    root: PathBuf,
}

impl MaildirWriter {
    /// Creates `root` and its `cur/ new/ tmp/` subdirectories if missing.
    pub fn create(root: &Path) -> io::Result<Self> {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(sub))?;
        }
        Ok(MaildirWriter {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes one message as `cur/<unique>:2,<FLAGS>` and returns its path. The file's mtime
    /// is set to `internal_date` when given (the Maildir convention for INTERNALDATE).
    pub fn write_message(
        &self,
        raw: &[u8],
        flags: &[Flag],
        internal_date: Option<DateTime<Utc>>,
    ) -> io::Result<PathBuf> {
        let name = unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let dest = self
            .root
            .join("cur")
            .join(format!("{name}:2,{}", info_letters(flags)));
        let result = write_file(&tmp, raw, internal_date).and_then(|()| fs::rename(&tmp, &dest));
        if result.is_err() {
            // Best effort: a half-written file in tmp/ is garbage either way.
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| dest)
    }
}

fn write_file(path: &Path, raw: &[u8], mtime: Option<DateTime<Utc>>) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    file.write_all(raw)?;
    if let Some(date) = mtime {
        // After the last write, or the write would bump mtime again.
        file.set_modified(SystemTime::from(date))?;
    }
    // The spec asks for the data to be on disk before the rename publishes it.
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_info_suffix() {
        assert_eq!(
            flags_from_name("123.M1P2.host:2,TSRFD"),
            vec![
                Flag::Seen,
                Flag::Answered,
                Flag::Flagged,
                Flag::Deleted,
                Flag::Draft
            ]
        );
        assert_eq!(flags_from_name("123.host:2,Sa"), vec![Flag::Seen]);
        assert_eq!(flags_from_name("123.host!2,F"), vec![Flag::Flagged]);
        assert!(flags_from_name("123.host").is_empty());
        assert!(flags_from_name("123.host:2,").is_empty());
    }

    #[test]
    fn info_letters_are_ascii_sorted() {
        let all = [
            Flag::Seen,
            Flag::Deleted,
            Flag::Draft,
            Flag::Answered,
            Flag::Flagged,
        ];
        assert_eq!(info_letters(&all), "DFRST");
        assert_eq!(info_letters(&[Flag::Seen, Flag::Seen]), "S");
    }

    #[test]
    fn unique_names_differ_within_one_process() {
        assert_ne!(unique_name(), unique_name());
    }
}
