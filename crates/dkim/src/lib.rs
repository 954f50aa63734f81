//! DKIM keys of hosted domains (ed25519 and RSA-2048, RFC 6376 / RFC 8463), sealed at rest, and
//! the DNS records a domain must publish.
//!
//! * [`DomainKeys`]: every domain has one signing key per algorithm; both sign every outgoing
//!   message. `postkeep domain add` creates them ([`DomainKeys::ensure`]), and a domain without
//!   keys (added before DKIM existed) gets them on first use. Selectors are `pk<yyyymm>e`
//!   (ed25519) and `pk<yyyymm>r` (RSA), `pk<yyyymm>-2e` and so on for a second pair in a month.
//!   Rotation has two steps, so nothing is signed with a key DNS does not know yet:
//!   [`DomainKeys::rotate`] stages a new pair (published, not signing), [`DomainKeys::activate`]
//!   makes it sign and retires the old pair, which stays published until
//!   [`DomainKeys::remove`].
//! * Private keys are PKCS#8 DER, sealed by the store with the domain's data key (associated
//!   data: domain, selector, algorithm, public key), held in zeroizing buffers while opened, and
//!   never printed or logged. Public keys are stored in clear: DNS publishes them anyway.
//! * [`Signers`]: what the outbound queue uses.
//!
//! ```no_run
//! # async fn send(store: &postkeep_store::MailStore, message: &[u8]) -> Result<(), postkeep_dkim::DkimError> {
//! if let Some(signers) = postkeep_dkim::Signers::load(store, "example.org").await? {
//!     let headers = signers.sign(message)?; // "DKIM-Signature: ...\r\nDKIM-Signature: ...\r\n"
//!     let signed = [headers.as_bytes(), message].concat();
//! #   let _ = signed;
//! }
//! # Ok(()) }
//! ```
//!
//! * [`dns`]: the zone-file lines of `postkeep domain dns`.
#![forbid(unsafe_code)]

pub mod dns;
mod keys;
mod sign;

pub use keys::{record_name, record_text, DomainKeys};
pub use sign::Signers;

use postkeep_store::StoreError;

/// Errors from key management and signing. None carries key material.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} is not a domain of this server")]
    UnknownDomain(String),
    #[error(
        "a DKIM key rotation of {0} is already staged: activate it first (or remove its keys)"
    )]
    RotationPending(String),
    #[error("{domain} has no signing {algorithm} DKIM key")]
    NoSigningKey {
        domain: String,
        algorithm: &'static str,
    },
    #[error("DKIM key {selector} cannot be used: {reason}")]
    BadKey { selector: String, reason: String },
    #[error("cannot generate a DKIM key: {0}")]
    Generate(String),
    #[error("cannot DKIM-sign the message: {0}")]
    Sign(String),
}

#[cfg(test)]
mod tests;
