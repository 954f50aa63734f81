//! What sender authentication (SPF, DKIM, ARC, DMARC) found about a message.
//!
//! The inbound-auth stage fills `postkeep_delivery::InboundMessage::authentication`; later
//! stages (user rules) read it there instead of parsing the `Authentication-Results:` header,
//! which only records the same facts for mail clients. The delivery pipeline then seals it into
//! every stored copy's [`crate::MessageSummary::authentication`], so the organizer reads the
//! results of a stored message from its summary, again without parsing headers.
//!
//! Serialised compactly, as the rest of the summary: RFC 8601 keywords for the enums, empty
//! and `None` fields left out.
//!
//! How to use it: a DKIM `Pass` proves that `domain` signed the message; `dmarc.result ==
//! Pass` proves that the visible From: domain (`dmarc.from_domain`) sent it, so it is the
//! check to trust before treating mail as coming from a known sender. `TempError` means a DNS
//! problem here, not a fault of the sender.

use serde::{Deserialize, Serialize};

/// An RFC 8601 §2.7 result value, shared by every method.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    /// Nothing to check: no record, no signature, no From: domain.
    None,
    Pass,
    Fail,
    /// SPF `~all` (RFC 7208 §8.5).
    SoftFail,
    /// SPF `?all`; a DKIM signature that could not be processed.
    Neutral,
    /// A DNS failure here: retrying later may give another answer.
    TempError,
    /// The sender's records or signature are broken.
    PermError,
}

impl AuthResult {
    /// The keyword written in `Authentication-Results:`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::None => "none",
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// The identity SPF checked (RFC 7208 §2.3, §2.4), named in JSON as the RFC 8601 §2.7.2
/// property (`smtp.mailfrom`, `smtp.helo`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SpfIdentity {
    /// The `MAIL FROM` address.
    MailFrom(String),
    /// The HELO/EHLO name, checked when the reverse-path is null (`MAIL FROM:<>`).
    Helo(String),
}

/// SPF (RFC 7208) of the SMTP client's IP address for one identity.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    pub result: AuthResult,
    pub identity: SpfIdentity,
}

/// One DKIM-Signature (RFC 6376) and how it verified.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    pub result: AuthResult,
    /// The signing domain (`d=`); `None` when the signature could not be parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The key selector (`s=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Why it did not pass, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The ARC chain (RFC 8617 §5.2): `None` (no ARC sets), `Pass` or `Fail`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ArcCheck {
    pub result: AuthResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The policy a domain publishes in DMARC (RFC 7489 §6.3 `p=`), after `t=y` testing mode.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    /// The `p=` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

/// DMARC (RFC 7489) of the RFC5322.From domain: did an aligned SPF or DKIM pass vouch for it?
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DmarcCheck {
    pub result: AuthResult,
    /// The From: domain; `None` without one (or with several domains, RFC 7489 §6.6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_domain: Option<String>,
    /// What the domain asks receivers to do with failing mail; `None` when no DMARC record
    /// was found (or DNS failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DmarcPolicy>,
}

/// Everything sender authentication found about one message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SenderAuthentication {
    pub spf: SpfCheck,
    /// One entry per DKIM-Signature field, top to bottom; empty when the message has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dkim: Vec<DkimCheck>,
    pub arc: ArcCheck,
    pub dmarc: DmarcCheck,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageSummary;

    /// Every shape a field can take: a HELO identity, a DKIM signature that could not be
    /// parsed next to one that passed, reasons, a DMARC policy.
    fn mixed_results() -> SenderAuthentication {
        SenderAuthentication {
            spf: SpfCheck {
                result: AuthResult::SoftFail,
                identity: SpfIdentity::Helo("client.a.test".into()),
            },
            dkim: vec![
                DkimCheck {
                    result: AuthResult::Pass,
                    domain: Some("a.test".into()),
                    selector: Some("sel".into()),
                    reason: None,
                },
                DkimCheck {
                    result: AuthResult::PermError,
                    domain: None,
                    selector: None,
                    reason: Some("no d= tag".into()),
                },
            ],
            arc: ArcCheck {
                result: AuthResult::Fail,
                reason: Some("cv=fail".into()),
            },
            dmarc: DmarcCheck {
                result: AuthResult::Pass,
                from_domain: Some("a.test".into()),
                policy: Some(DmarcPolicy::Quarantine),
            },
        }
    }

    #[test]
    fn results_round_trip_through_the_stored_summary_json() {
        let summary = MessageSummary {
            subject: Some("hi".into()),
            authentication: Some(mixed_results()),
            ..MessageSummary::default()
        };
        let json = serde_json::to_string(&summary).unwrap();
        let back: MessageSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, summary);
    }

    /// The JSON is sealed into every stored message: pin it, so a renamed variant or field
    /// (which would make stored summaries unreadable) fails here, and so it stays compact.
    #[test]
    fn results_serialise_compactly_with_rfc8601_keywords() {
        assert_eq!(
            serde_json::to_string(&mixed_results()).unwrap(),
            concat!(
                r#"{"spf":{"result":"softfail","identity":{"helo":"client.a.test"}},"#,
                r#""dkim":[{"result":"pass","domain":"a.test","selector":"sel"},"#,
                r#"{"result":"permerror","reason":"no d= tag"}],"#,
                r#""arc":{"result":"fail","reason":"cv=fail"},"#,
                r#""dmarc":{"result":"pass","from_domain":"a.test","policy":"quarantine"}}"#
            )
        );
        for result in [
            AuthResult::None,
            AuthResult::Pass,
            AuthResult::Fail,
            AuthResult::SoftFail,
            AuthResult::Neutral,
            AuthResult::TempError,
            AuthResult::PermError,
        ] {
            assert_eq!(
                serde_json::to_value(result).unwrap(),
                result.as_str(),
                "{result:?}"
            );
        }
        for policy in [
            DmarcPolicy::None,
            DmarcPolicy::Quarantine,
            DmarcPolicy::Reject,
        ] {
            assert_eq!(serde_json::to_value(policy).unwrap(), policy.as_str());
        }
    }

    /// Summaries sealed before the results were stored have no `authentication` key; they
    /// must still open, and a summary without results must not grow one.
    #[test]
    fn summary_without_results_loads_and_is_written_without_the_key() {
        // What the store sealed for this message before the field existed.
        let raw = b"Subject: hi\r\n\r\nbody\r\n";
        let old = concat!(
            r#"{"envelope":{"subject":"hi"},"body":{"content_type":"TEXT","subtype":"PLAIN","#,
            r#""params":[["charset","us-ascii"]],"encoding":"7BIT","lines":1,"#,
            r#""header_offset":0,"body_offset":15,"end_offset":21},"#,
            r#""subject":"hi","thread_subject":"hi"}"#
        );
        let loaded: MessageSummary = serde_json::from_str(old).unwrap();
        assert_eq!(loaded.authentication, None);
        assert_eq!(loaded, crate::summarize(raw));
        assert_eq!(serde_json::to_string(&loaded).unwrap(), old);
    }
}
