//! What sender authentication (SPF, DKIM, ARC, DMARC) found about a message.
//!
//! The inbound-auth stage fills [`crate::InboundMessage::authentication`]; later stages (the
//! organizer, user rules) read it instead of parsing the `Authentication-Results:` header,
//! which only records the same facts for mail clients. The store keeps no copy: the header in
//! the stored message is the durable record.
//!
//! How to use it: a DKIM `Pass` proves that `domain` signed the message; `dmarc.result ==
//! Pass` proves that the visible From: domain (`dmarc.from_domain`) sent it, so it is the
//! check to trust before treating mail as coming from a known sender. `TempError` means a DNS
//! problem here, not a fault of the sender.

/// An RFC 8601 §2.7 result value, shared by every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The identity SPF checked (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfIdentity {
    /// The `MAIL FROM` address.
    MailFrom(String),
    /// The HELO/EHLO name, checked when the reverse-path is null (`MAIL FROM:<>`).
    Helo(String),
}

/// SPF (RFC 7208) of the SMTP client's IP address for one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    pub result: AuthResult,
    pub identity: SpfIdentity,
}

/// One DKIM-Signature (RFC 6376) and how it verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    pub result: AuthResult,
    /// The signing domain (`d=`); `None` when the signature could not be parsed.
    pub domain: Option<String>,
    /// The key selector (`s=`).
    pub selector: Option<String>,
    /// Why it did not pass, in words.
    pub reason: Option<String>,
}

/// The ARC chain (RFC 8617 §5.2): `None` (no ARC sets), `Pass` or `Fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcCheck {
    pub result: AuthResult,
    pub reason: Option<String>,
}

/// The policy a domain publishes in DMARC (RFC 7489 §6.3 `p=`), after `t=y` testing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcCheck {
    pub result: AuthResult,
    /// The From: domain; `None` without one (or with several domains, RFC 7489 §6.6.1).
    pub from_domain: Option<String>,
    /// What the domain asks receivers to do with failing mail; `None` when no DMARC record
    /// was found (or DNS failed).
    pub policy: Option<DmarcPolicy>,
}

/// Everything sender authentication found about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAuthentication {
    pub spf: SpfCheck,
    /// One entry per DKIM-Signature field, top to bottom; empty when the message has none.
    pub dkim: Vec<DkimCheck>,
    pub arc: ArcCheck,
    pub dmarc: DmarcCheck,
}
