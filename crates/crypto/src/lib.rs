//! postkeep's key hierarchy and sealing, in one small crate everything else uses.
//!
//! * [`MasterKey`]: the key-encryption key. Lives in a 0600 file (or an environment variable),
//!   never in the database. It only wraps and unwraps [`DataKey`]s.
//! * [`DataKey`]: AES-256-GCM data keys, one per scope (deployment, domain or account), stored
//!   only wrapped by the master key. They seal database columns ([`DataKey::seal`]) and message
//!   blobs ([`blob`]).
//!
//! Every ciphertext is bound to what it is by associated data (the caller passes e.g. the
//! account and row id), so a ciphertext moved to another row or account fails to open.
//! Nonces are 96-bit random per seal (column values) or a random per-blob prefix plus a chunk
//! counter (blobs); with at most a few billion seals per key the random-nonce collision bound
//! stays far below 2^-32 (NIST SP 800-38D §8.3).
#![forbid(unsafe_code)]

pub mod blob;
mod decompress;
mod keys;

pub use keys::{DataKey, KeyError, MasterKey, KEY_LEN};

/// Failure to open sealed data: wrong key, wrong associated data, truncation or tampering.
/// Deliberately carries no detail, so nothing about the plaintext or key leaks through errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sealed data failed authentication (wrong key, wrong context, or corrupted)")]
pub struct OpenError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    // aws-lc's RNG only fails if the OS entropy source is broken; continuing then would mean
    // predictable keys and nonces, so aborting is the only safe answer.
    aws_lc_rs::rand::fill(buf).expect("operating system random number generator failed");
}

/// A fresh random 128-bit identifier as 32 lowercase hex characters.
pub fn random_id() -> String {
    let mut id = [0u8; 16];
    random_bytes(&mut id);
    hex::encode(id)
}
