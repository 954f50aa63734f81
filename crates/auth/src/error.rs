/// Errors from this crate. Verification itself never errors: it answers valid or invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// Argon2 refused to hash (should not happen with the fixed parameters).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// A blocking hashing task was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
    /// Key material of the wrong length.
    #[error("key must be {expected} bytes, got {actual}")]
    KeyLength { expected: usize, actual: usize },
    /// A SASL PLAIN message that does not follow RFC 4616.
    #[error("malformed SASL PLAIN message: {0}")]
    SaslPlain(&'static str),
}
