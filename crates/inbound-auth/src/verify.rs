//! Running SPF, DKIM, ARC and DMARC with mail-auth, each within a time budget, and turning
//! its results into [`SenderAuthentication`].

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, DnsError,
    Error, MessageAuthenticator, SpfOutput, SpfResult,
};
use postkeep_delivery::{
    ArcCheck, AuthResult, DkimCheck, DmarcCheck, DmarcPolicy, SenderAuthentication, SpfCheck,
    SpfIdentity,
};
use postkeep_smtp::Envelope;

use crate::read::Prepared;

/// What the checks need to know about the SMTP session.
#[derive(Debug, Clone)]
pub struct Session {
    pub ip: IpAddr,
    pub helo: String,
    /// The reverse-path; empty for `MAIL FROM:<>`.
    pub mail_from: String,
    /// Our host name, for SPF's `%{r}` macro.
    pub hostname: String,
}

impl Session {
    pub fn new(envelope: &Envelope, hostname: &str) -> Self {
        Session {
            ip: envelope.peer.ip().to_canonical(),
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone(),
            hostname: hostname.to_owned(),
        }
    }

    /// The domain SPF vouches for: MAIL FROM's, or HELO's for a null sender (RFC 7208 §2.4),
    /// which DMARC aligns with the From: domain (RFC 7489 §3.1.2).
    fn spf_domain(&self) -> &str {
        match self.mail_from.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => &self.helo,
        }
    }
}

/// Runs every check on `prepared`. SPF, DKIM and ARC run side by side, then DMARC on their
/// results; each of the two rounds may take at most `budget`, so DNS that does not answer
/// delays delivery by at most twice that, and yields temperror.
pub async fn check(
    dns: &MessageAuthenticator,
    session: &Session,
    prepared: Prepared,
    budget: Duration,
) -> SenderAuthentication {
    let complete = prepared.complete;
    let mut message = AuthenticatedMessage::parse(&prepared.header).unwrap_or_default();
    if complete {
        // The header alone gave hashes of an empty body: these are of the streamed body.
        message.body_hashes = prepared.body_hashes;
    }
    let message = message;
    let spf = within(budget, spf(dns, session), || {
        SpfOutput::new(session.spf_domain().to_owned()).with_result(SpfResult::TempError)
    });
    let dkim = async {
        if !complete {
            return unverified(&message, too_large());
        }
        within(budget, dns.verify_dkim(&message), || {
            unverified(&message, timed_out())
        })
        .await
    };
    let arc = async {
        if !complete && !message.ams_headers.is_empty() {
            return ArcOutput::default().with_result(DkimResult::PermError(too_large()));
        }
        within(budget, dns.verify_arc(&message), || {
            ArcOutput::default().with_result(DkimResult::TempError(timed_out()))
        })
        .await
    };
    let (spf, dkim, arc) = tokio::join!(spf, dkim, arc);
    let mail_from_domain = session.spf_domain();
    let params = DmarcParameters::new(&message, &dkim, mail_from_domain, &spf);
    let dmarc = within(budget, dns.verify_dmarc(params), || {
        DmarcOutput::new(from_domain(&message)).with_spf_result(DmarcResult::TempError(timed_out()))
    })
    .await;
    SenderAuthentication {
        spf: spf_check(&spf, session),
        dkim: dkim.iter().map(dkim_check).collect(),
        arc: arc_check(&arc),
        dmarc: dmarc_check(&dmarc),
    }
}

/// The outcome of `work`, or `fallback()` when it takes longer than `budget`.
async fn within<T>(
    budget: Duration,
    work: impl Future<Output = T>,
    fallback: impl FnOnce() -> T,
) -> T {
    tokio::time::timeout(budget, work)
        .await
        .unwrap_or_else(|_| fallback())
}

async fn spf(dns: &MessageAuthenticator, session: &Session) -> SpfOutput {
    let params = if session.mail_from.is_empty() {
        SpfParameters::verify_ehlo(session.ip, &session.helo, &session.hostname)
    } else {
        SpfParameters::verify_mail_from(
            session.ip,
            &session.helo,
            &session.hostname,
            &session.mail_from,
        )
    };
    dns.verify_spf(params).await
}

fn timed_out() -> Error {
    Error::Dns(DnsError::Resolver("DNS did not answer in time".to_owned()))
}

fn too_large() -> Error {
    Error::Io("header section too large to verify".to_owned())
}

/// One result per signature when the signatures could not be checked; a temporary `error`
/// keeps DMARC from failing on them, a permanent one counts as no DKIM pass.
fn unverified<'x>(message: &'x AuthenticatedMessage<'x>, error: Error) -> Vec<DkimOutput<'x>> {
    let temporary = matches!(error, Error::Dns(_));
    message
        .dkim_headers
        .iter()
        .map(|header| {
            let output = if temporary {
                DkimOutput::temp_err(error.clone())
            } else {
                DkimOutput::perm_err(error.clone())
            };
            output.with_signature(&header.header)
        })
        .collect()
}

/// The From: domain DMARC would have checked (for the record when DMARC timed out).
fn from_domain(message: &AuthenticatedMessage<'_>) -> String {
    message
        .from
        .first()
        .and_then(|from| from.rsplit_once('@'))
        .map(|(_, domain)| domain.to_owned())
        .unwrap_or_default()
}

fn spf_check(spf: &SpfOutput, session: &Session) -> SpfCheck {
    let result = match spf.result() {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
    };
    let identity = if session.mail_from.is_empty() {
        SpfIdentity::Helo(session.helo.clone())
    } else {
        SpfIdentity::MailFrom(session.mail_from.clone())
    };
    SpfCheck { result, identity }
}

fn dkim_check(output: &DkimOutput<'_>) -> DkimCheck {
    let (result, reason) = match output.result() {
        DkimResult::Pass => (AuthResult::Pass, None),
        DkimResult::None => (AuthResult::None, None),
        // RFC 6376 §6.1.3: a body hash that does not match is a failure (mail-auth says
        // neutral).
        DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (AuthResult::Fail, Some(e.to_string()))
        }
        DkimResult::Neutral(e) => (AuthResult::Neutral, Some(e.to_string())),
        DkimResult::Fail(e) => (AuthResult::Fail, Some(e.to_string())),
        DkimResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
        DkimResult::PermError(e) => (AuthResult::PermError, Some(e.to_string())),
    };
    DkimCheck {
        result,
        domain: output.signature().map(|s| s.d.clone()),
        selector: output.signature().map(|s| s.s.clone()),
        reason,
    }
}

fn arc_check(output: &ArcOutput<'_>) -> ArcCheck {
    let (result, reason) = match output.result() {
        DkimResult::Pass => (AuthResult::Pass, None),
        DkimResult::None => (AuthResult::None, None),
        DkimResult::Fail(e) | DkimResult::Neutral(e) => (AuthResult::Fail, Some(e.to_string())),
        DkimResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
        DkimResult::PermError(e) => (AuthResult::PermError, Some(e.to_string())),
    };
    ArcCheck { result, reason }
}

fn dmarc_check(output: &DmarcOutput) -> DmarcCheck {
    let result = match output.result() {
        DmarcResult::Pass => AuthResult::Pass,
        DmarcResult::Fail(_) => AuthResult::Fail,
        DmarcResult::TempError(_) => AuthResult::TempError,
        DmarcResult::PermError(_) => AuthResult::PermError,
        DmarcResult::None => AuthResult::None,
    };
    let policy = output.dmarc_record().map(|_| match output.policy() {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    });
    let domain = output.domain();
    DmarcCheck {
        result,
        from_domain: (!domain.is_empty()).then(|| domain.to_owned()),
        policy,
    }
}
