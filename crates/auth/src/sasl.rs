//! SASL PLAIN (RFC 4616) initial-response decoding, shared by SMTP AUTH, IMAP and POP3.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::AuthError;

/// A decoded SASL PLAIN message.
pub struct SaslPlain {
    /// Identity to act as; `None` when empty (act as `authcid`).
    pub authzid: Option<String>,
    /// Identity whose password is given.
    pub authcid: String,
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for SaslPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslPlain")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes a base64 (RFC 4648 §4, padded) SASL PLAIN message:
/// `[authzid] NUL authcid NUL passwd` (RFC 4616 §2), all UTF-8, authcid and passwd non-empty.
pub fn decode_sasl_plain(encoded: &str) -> Result<SaslPlain, AuthError> {
    let raw = Zeroizing::new(
        STANDARD
            .decode(encoded.trim())
            .map_err(|_| AuthError::SaslPlain("invalid base64"))?,
    );
    parse_sasl_plain(&raw)
}

/// Parses an already base64-decoded SASL PLAIN message (IMAP's codec decodes it).
pub fn parse_sasl_plain(raw: &[u8]) -> Result<SaslPlain, AuthError> {
    let mut parts = raw.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::SaslPlain("expected exactly two NUL separators"));
    };
    if authcid.is_empty() || passwd.is_empty() {
        return Err(AuthError::SaslPlain("empty authcid or password"));
    }
    let text = |bytes| std::str::from_utf8(bytes).map_err(|_| AuthError::SaslPlain("not UTF-8"));
    let authzid = text(authzid)?;
    Ok(SaslPlain {
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        authcid: text(authcid)?.to_owned(),
        password: Zeroizing::new(text(passwd)?.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(raw: &[u8]) -> String {
        STANDARD.encode(raw)
    }

    #[test]
    fn decodes_rfc4616_example() {
        // RFC 4616 §4 example: authcid "tim", passwd "tanstaaftanstaaf".
        let m = decode_sasl_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").expect("valid");
        assert_eq!(m.authzid, None);
        assert_eq!(m.authcid, "tim");
        assert_eq!(m.password.as_str(), "tanstaaftanstaaf");
    }

    #[test]
    fn keeps_authzid_when_present() {
        let m = decode_sasl_plain(&enc(b"Ursel\0Kurt\0xipj3plmq")).expect("valid");
        assert_eq!(m.authzid.as_deref(), Some("Ursel"));
        assert_eq!(m.authcid, "Kurt");
    }

    #[test]
    fn rejects_malformed_messages() {
        for bad in [
            "not base64!".to_owned(),
            enc(b"user\0"),
            enc(b"\0user"),
            enc(b"\0\0pw"),
            enc(b"\0user\0"),
            enc(b"a\0user\0pw\0extra"),
            enc(b"\0us\xffer\0pw"),
        ] {
            assert!(decode_sasl_plain(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_password() {
        let m = decode_sasl_plain(&enc(b"\0u\0secretpw")).expect("valid");
        assert!(!format!("{m:?}").contains("secretpw"));
    }
}
