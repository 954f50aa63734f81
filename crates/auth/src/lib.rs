#![forbid(unsafe_code)]
//! Credential checks shared by every protocol front end (SMTP AUTH, IMAP, POP3, web).
//!
//! Pure logic: the caller loads and stores hashes, digests and keys. A login is expected to run
//! [`Throttle::check`] first, then [`verify_password`] / [`AppPasswordKey::verify`], then
//! [`Throttle::record_failure`] or [`Throttle::record_success`]. [`login::Authenticator`] does
//! exactly that against the store, and is what the protocol servers call.

mod app_password;
mod error;
pub mod login;
mod password;
mod sasl;
mod throttle;

pub use app_password::{generate_app_password, AppPasswordKey, APP_PASSWORD_BITS};
pub use error::AuthError;
pub use password::{
    hash_password, hash_password_async, verify_password, verify_password_async, Verification,
};
pub use sasl::{decode_sasl_plain, parse_sasl_plain, SaslPlain};
pub use throttle::{Throttle, ThrottleConfig};
