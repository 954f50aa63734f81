use std::path::PathBuf;

/// Errors that stop [`crate::open`] before any message is read.
#[derive(Debug, thiserror::Error)]
pub enum MailfileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file or directory", path.display())]
    Unsupported { path: PathBuf },
}

impl MailfileError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| MailfileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
