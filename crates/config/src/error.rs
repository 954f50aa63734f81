//! Configuration errors and their conversion from toml / serde errors into
//! `file:line: key `a.b`: message` form.

use std::io;
use std::path::{Path, PathBuf};

use crate::Listen;

/// Anything wrong with `postkeep.toml`. `Display` is meant to be shown to the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {}", path.display(), io_reason(source))]
    Read { path: PathBuf, source: io::Error },
    /// The file could not be created or written.
    #[error("cannot write {}: {}", path.display(), io_reason(source))]
    Write { path: PathBuf, source: io::Error },
    /// The text is not valid TOML.
    #[error("{}:{line}: {}TOML syntax error: {message}", path.display(), key_prefix(key.as_deref()))]
    Syntax {
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// The dotted key written on that line, when the line has one.
        key: Option<String>,
        message: String,
    },
    /// Valid TOML, but a key is unknown, missing, mistyped or out of range.
    #[error("{}: key `{key}`: {message}", location(path, *line))]
    Invalid {
        path: PathBuf,
        /// 1-based; `None` when the problem has no place in the file (a missing key).
        line: Option<usize>,
        /// Dotted path, e.g. `smtp.max_recipients`.
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. } => Some(*line),
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Read { .. } | ConfigError::Write { .. } => None,
        }
    }

    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Syntax { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// The OS message without std's ` (os error N)` suffix, which means nothing to an operator.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text.get(..cut).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// 1-based line containing byte `offset` of `text` (offsets past the end count as the last line).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|b| **b == b'\n').count() + 1
}

/// A TOML syntax error.
pub(crate) fn syntax(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map_or(1, |span| line_of(text, span.start));
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        key: key_on_line(text, line),
        message: e.message().trim_end().to_owned(),
    }
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|key| format!("key `{key}`: ")).unwrap_or_default()
}

/// The dotted key a broken line assigns (`max_errors = = 10` under `[smtp]` gives
/// `smtp.max_errors`), found textually because the document did not parse.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if index + 1 == line {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim().trim_matches('"');
            let bare = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            return bare.then(|| match &table {
                Some(table) => format!("{table}.{key}"),
                None => key.to_string(),
            });
        }
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = Some(header.trim().to_string());
        }
    }
    None
}

/// An error found while mapping the TOML document onto [`crate::Config`].
pub(crate) fn data(
    text: &str,
    path: &Path,
    e: &serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let mut key = key_path(e.path());
    let inner = e.inner();
    let mut line = inner.span().map(|span| line_of(text, span.start));
    let mut message = inner.message().trim_end().to_owned();

    if let Some(field) = quoted_after(&message, "missing field ") {
        // The span of a missing key is its whole enclosing table: no useful line.
        key = join_key(&key, &field);
        line = None;
        message = "required key is missing".to_owned();
    } else if let Some(field) = quoted_after(&message, "unknown field ") {
        if !key.ends_with(&field) {
            key = join_key(&key, &field);
        }
        message = unknown_key_message(&key, &message);
    }

    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        message,
    }
}

/// `a.b.c` from serde_path_to_error's path; empty (not ".") at the document root.
fn key_path(path: &serde_path_to_error::Path) -> String {
    let shown = path.to_string();
    if shown == "." {
        String::new()
    } else {
        shown
    }
}

fn join_key(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// The backquoted name in serde's "missing field `x`" / "unknown field `x`, expected ..." texts.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    let end = rest.find('`')?;
    rest.get(..end).map(str::to_owned)
}

/// Rewords serde's "unknown field `x`, expected one of `a`, `b`" for operators.
fn unknown_key_message(key: &str, serde_message: &str) -> String {
    if key.starts_with("listen.") {
        return format!(
            "unknown listener; expected one of {}",
            Listen::NAMES.join(", ")
        );
    }
    let expected = serde_message
        .split_once(", expected ")
        .map(|(_, rest)| rest.replace('`', ""));
    match expected {
        Some(list) => format!("unknown key; expected {list}"),
        None => "unknown key".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_newlines_before_offset() {
        let text = "a = 1\nb = 2\nc = 3\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, 12), 3);
        assert_eq!(line_of(text, 10_000), 4);
    }

    #[test]
    fn io_reason_drops_os_error_suffix() {
        let e = io::Error::from_raw_os_error(2);
        let reason = io_reason(&e);
        assert!(!reason.contains("os error"), "{reason}");
        assert!(!reason.is_empty());
    }
}
