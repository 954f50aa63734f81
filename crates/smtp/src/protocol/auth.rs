//! SMTP AUTH (RFC 4954) wire details for submission sessions: the command's arguments, the
//! 334 challenges of PLAIN (RFC 4616) and LOGIN, and the base64 of the client's responses.
//! What the credentials mean is the handler's business.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use zeroize::Zeroizing;

/// RFC 4648 §4 base64; padding optional, since some LOGIN clients leave it off.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `334` text asking for the LOGIN user name ("Username:").
pub(crate) const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
/// `334` text asking for the LOGIN password ("Password:").
pub(crate) const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// The mechanisms offered (`AUTH PLAIN LOGIN` in EHLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
}

/// The SASL exchange in progress: which client line the session waits for.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// After `334 ` for PLAIN without an initial response.
    PlainMessage,
    /// After the LOGIN user-name challenge.
    LoginUsername,
    /// After the LOGIN password challenge.
    LoginPassword { username: String },
}

/// A parsed `AUTH mechanism [initial-response]` line (RFC 4954 §4).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AuthCommand<'a> {
    /// `None` for a mechanism we do not offer.
    pub mechanism: Option<Mechanism>,
    pub initial_response: Option<&'a str>,
}

/// Splits the arguments after `AUTH`; `None` when there is no mechanism or too much.
pub(crate) fn parse_command(args: &str) -> Option<AuthCommand<'_>> {
    let mut words = args.split_ascii_whitespace();
    let mechanism = words.next()?;
    let initial_response = words.next();
    if words.next().is_some() {
        return None;
    }
    let mechanism = if mechanism.eq_ignore_ascii_case("PLAIN") {
        Some(Mechanism::Plain)
    } else if mechanism.eq_ignore_ascii_case("LOGIN") {
        Some(Mechanism::Login)
    } else {
        None
    };
    Some(AuthCommand {
        mechanism,
        initial_response,
    })
}

/// Why a client response could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResponseError {
    /// `*`: the client gave up (RFC 4954 §4).
    Cancelled,
    /// Not base64 (or, for LOGIN, not UTF-8).
    Undecodable,
}

/// Decodes one response line (without its line ending). A lone `=` is the empty response
/// (RFC 4954 §4).
pub(crate) fn decode(response: &str) -> Result<Zeroizing<Vec<u8>>, ResponseError> {
    let response = response.trim();
    if response == "*" {
        return Err(ResponseError::Cancelled);
    }
    if response == "=" {
        return Ok(Zeroizing::new(Vec::new()));
    }
    BASE64
        .decode(response)
        .map(Zeroizing::new)
        .map_err(|_| ResponseError::Undecodable)
}

/// [`decode`] for LOGIN, whose user name and password are text.
pub(crate) fn decode_text(response: &str) -> Result<Zeroizing<String>, ResponseError> {
    let bytes = decode(response)?;
    std::str::from_utf8(&bytes)
        .map(|text| Zeroizing::new(text.to_owned()))
        .map_err(|_| ResponseError::Undecodable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_arguments_name_mechanism_and_optional_initial_response() {
        assert_eq!(
            parse_command("plain AGEAYg=="),
            Some(AuthCommand {
                mechanism: Some(Mechanism::Plain),
                initial_response: Some("AGEAYg=="),
            })
        );
        assert_eq!(
            parse_command("LOGIN"),
            Some(AuthCommand {
                mechanism: Some(Mechanism::Login),
                initial_response: None,
            })
        );
        assert_eq!(
            parse_command("CRAM-MD5"),
            Some(AuthCommand {
                mechanism: None,
                initial_response: None,
            })
        );
        assert_eq!(parse_command(""), None);
        assert_eq!(parse_command("PLAIN a b"), None);
    }

    #[test]
    fn responses_decode_with_or_without_padding_and_star_cancels() {
        assert_eq!(decode("dXNlcg==").unwrap().as_slice(), b"user");
        assert_eq!(decode("dXNlcg").unwrap().as_slice(), b"user");
        assert!(decode("=").unwrap().is_empty());
        assert_eq!(decode("*"), Err(ResponseError::Cancelled));
        assert_eq!(decode("not base64!"), Err(ResponseError::Undecodable));
        assert_eq!(decode_text("/w=="), Err(ResponseError::Undecodable));
        assert_eq!(
            BASE64.decode(LOGIN_USERNAME).unwrap().as_slice(),
            b"Username:"
        );
        assert_eq!(
            BASE64.decode(LOGIN_PASSWORD).unwrap().as_slice(),
            b"Password:"
        );
    }
}
