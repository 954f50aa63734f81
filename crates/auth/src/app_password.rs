//! App passwords: random per-client secrets, checked with a keyed hash.
//!
//! They carry 160 random bits, so a fast keyed hash (HMAC-SHA256 under a server-side key) is
//! enough: a slow password hash only helps against guessable, low-entropy secrets, and a stolen
//! digest table is useless without the key.

use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

use crate::AuthError;

/// Entropy of a generated app password.
pub const APP_PASSWORD_BITS: usize = 160;
const RAW_LEN: usize = APP_PASSWORD_BITS / 8;
// At least 128 bits, and whole bytes that map onto whole base32 symbols (40-bit blocks).
const _: () = assert!(APP_PASSWORD_BITS >= 128 && APP_PASSWORD_BITS.is_multiple_of(40));
const GROUP_LEN: usize = 8;
/// RFC 4648 §6 base32 alphabet, lowercased: no 0/1/8/9, so nothing to confuse with o/l/b/g.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const KEY_LEN: usize = 32;

/// Generates an app password: 160 random bits as 32 base32 characters in four dash-separated
/// groups of eight, e.g. `abcdefgh-ijklmnop-qrstuvwx-yz234567`.
pub fn generate_app_password() -> Result<Zeroizing<String>, AuthError> {
    let mut raw = Zeroizing::new([0u8; RAW_LEN]);
    aws_lc_rs::rand::fill(raw.as_mut()).map_err(|_| AuthError::Random)?;
    Ok(group(&base32(raw.as_ref())))
}

/// Unpadded base32 (RFC 4648 §6). 160 bits is a whole number of 5-bit symbols.
fn base32(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 8 / 5 + 1));
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8 | u32::from(b)) & 0xFFF; // at most 12 live bits
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(acc >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(acc << (5 - bits)));
    }
    zeroize::Zeroize::zeroize(&mut acc);
    out
}

fn symbol(v: u32) -> char {
    char::from(BASE32[(v & 31) as usize])
}

fn group(symbols: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(
        symbols.len() + symbols.len() / GROUP_LEN,
    ));
    for (i, c) in symbols.chars().enumerate() {
        if i > 0 && i % GROUP_LEN == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Users retype app passwords: ignore dashes, whitespace and case.
fn normalise(app_password: &str) -> Zeroizing<String> {
    // Full capacity up front so the secret is never reallocated (which would leave a copy behind).
    let mut out = Zeroizing::new(String::with_capacity(app_password.len()));
    out.extend(
        app_password
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase()),
    );
    out
}

/// Server-side HMAC key for app-password digests. The caller keeps the bytes encrypted at rest.
pub struct AppPasswordKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl AppPasswordKey {
    pub fn new(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self { key }
    }

    /// From decrypted key bytes, which must be exactly 32 long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AuthError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| AuthError::KeyLength {
            expected: KEY_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self::new(Zeroizing::new(key)))
    }

    /// HMAC-SHA256(key, normalised app password): what the caller stores per app password.
    pub fn digest(&self, app_password: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref());
        let tag = hmac::sign(&key, normalise(app_password).as_bytes());
        let mut out = [0u8; 32];
        // SHA-256 tags are always 32 bytes; `zip` keeps this panic-free regardless.
        for (dst, src) in out.iter_mut().zip(tag.as_ref()) {
            *dst = *src;
        }
        out
    }

    /// Constant-time check of `app_password` against a stored digest.
    pub fn verify(&self, app_password: &str, expected: &[u8; 32]) -> bool {
        constant_time::verify_slices_are_equal(&self.digest(app_password), expected).is_ok()
    }
}

impl std::fmt::Debug for AppPasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppPasswordKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AppPasswordKey {
        AppPasswordKey::new(Zeroizing::new([byte; 32]))
    }

    #[test]
    fn generated_format_is_four_groups_of_eight_base32() {
        let pw = generate_app_password().expect("rng");
        let groups: Vec<&str> = pw.split('-').collect();
        assert_eq!(groups.len(), 4, "{}", pw.as_str());
        for g in groups {
            assert_eq!(g.len(), 8);
            assert!(g.bytes().all(|b| BASE32.contains(&b)), "{g}");
        }
    }

    #[test]
    fn generated_passwords_carry_160_bits() {
        // 32 symbols of 5 bits each.
        let pw = generate_app_password().expect("rng");
        assert_eq!(normalise(&pw).len() * 5, APP_PASSWORD_BITS);
        let others: Vec<_> = (0..32)
            .map(|_| generate_app_password().expect("rng"))
            .collect();
        assert!(others.iter().all(|o| o.as_str() != pw.as_str()));
    }

    #[test]
    fn base32_matches_rfc4648_test_vectors() {
        // RFC 4648 §10, lowercased and unpadded.
        assert_eq!(base32(b"f").as_str(), "my");
        assert_eq!(base32(b"fooba").as_str(), "mzxw6ytb");
        assert_eq!(base32(b"foobar").as_str(), "mzxw6ytboi");
    }

    #[test]
    fn verify_accepts_right_and_rejects_wrong() {
        let k = key(1);
        let pw = generate_app_password().expect("rng");
        let stored = k.digest(&pw);
        assert!(k.verify(&pw, &stored));
        let other = generate_app_password().expect("rng");
        assert!(!k.verify(&other, &stored));
        assert!(!k.verify("", &stored));
    }

    #[test]
    fn verify_ignores_dashes_spaces_and_case() {
        let k = key(2);
        let stored = k.digest("abcdefgh-ijklmnop-qrstuvwx-yz234567");
        assert!(k.verify("ABCDEFGH IJKLMNOP qrstuvwx yz234567", &stored));
        assert!(k.verify("abcdefghijklmnopqrstuvwxyz234567", &stored));
        assert!(!k.verify("abcdefghijklmnopqrstuvwxyz234566", &stored));
    }

    #[test]
    fn digest_depends_on_the_key() {
        assert_ne!(key(3).digest("same"), key(4).digest("same"));
        assert!(!key(4).verify("same", &key(3).digest("same")));
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(AppPasswordKey::from_slice(&[0u8; 32]).is_ok());
        assert_eq!(
            AppPasswordKey::from_slice(&[0u8; 31]).err(),
            Some(AuthError::KeyLength {
                expected: 32,
                actual: 31
            })
        );
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        assert!(!format!("{:?}", key(0x41)).contains("65"));
    }
}
