//! SPF, DKIM, DMARC and ARC verification of inbound mail (mail-auth) and the RFC 8601
//! Authentication-Results header that records it.
//!
//! [`InboundAuth`] is a delivery [`Stage`]. For each message received as MX it
//!
//! 1. reads the message once, as received: the header section is kept (at most
//!    [`HEADER_MAX`]), the body streams through the DKIM body hashers, so a spooled 50 MB
//!    message is verified without being held whole;
//! 2. checks SPF (RFC 7208) of the client IP for MAIL FROM (HELO for a null sender), every
//!    DKIM signature (RFC 6376), the ARC chain (RFC 8617), then DMARC (RFC 7489) of the From:
//!    domain. DNS that does not answer gives temperror within a bounded time
//!    ([`InboundAuth::new`]);
//! 3. enforces DMARC: `p=reject` and a fail is refused at DATA (550 5.7.1); `p=quarantine`
//!    and a fail files every copy into Junk; temperror never enforces;
//! 4. prepends `Authentication-Results: <hostname>; ...` and removes every such field that
//!    already claims our authserv-id (RFC 8601 §5), and leaves the typed results in
//!    [`InboundMessage::authentication`] for the stages after it.
//!
//! Mail from an authenticated submission session is not verified ([`InboundAuth::applies_to`]).
#![forbid(unsafe_code)]

mod header;
mod read;
mod verify;

pub use header::{claims_authserv_id, render};
pub use read::HEADER_MAX;

use std::time::Duration;

use async_trait::async_trait;
use mail_auth::MessageAuthenticator;
use postkeep_delivery::{
    AuthResult, DmarcCheck, DmarcPolicy, InboundMessage, SenderAuthentication, Stage, Verdict,
};
use postkeep_net::dns::Resolver;
use postkeep_store::{MailboxRole, MessageBytes};

use crate::verify::Session;

/// Each round of checks (SPF, DKIM and ARC side by side; then DMARC) may take this many DNS
/// timeouts: an SPF record with includes needs several queries in a row.
const QUERIES_PER_ROUND: u32 = 3;

/// The sender-authentication stage (see the crate docs).
pub struct InboundAuth {
    dns: MessageAuthenticator,
    /// Our host name: the authserv-id of the fields we write and remove.
    authserv_id: String,
    budget: Duration,
}

impl InboundAuth {
    /// A stage writing `authserv_id` (the configured host name) into its header and asking
    /// `dns` (the `[dns]` resolver, whose cache it shares). Delivery waits at most
    /// `2 × 3 × dns.timeout()` for the checks.
    pub fn new(authserv_id: &str, dns: &Resolver) -> Self {
        InboundAuth {
            dns: MessageAuthenticator(dns.lookup().clone()),
            authserv_id: authserv_id.to_owned(),
            budget: dns.timeout().saturating_mul(QUERIES_PER_ROUND),
        }
    }

    /// Hook for authenticated submission (RFC 6409): mail a logged-in user hands in is ours
    /// to sign, not a stranger's to verify, so it skips this stage. The submission listener
    /// marks such mail with [`InboundMessage::submitted_by`].
    pub fn applies_to(message: &InboundMessage) -> bool {
        message.submitted_by.is_none()
    }

    /// Verifies `message` as received. An error means the message could not be read.
    async fn verify(&self, message: &InboundMessage) -> std::io::Result<SenderAuthentication> {
        let prepared = match &message.raw {
            MessageBytes::Memory(bytes) => read::prepare(&bytes[..])?,
            MessageBytes::Spooled { .. } => {
                let raw = message.raw.clone();
                tokio::task::spawn_blocking(move || read::prepare(raw.open()?))
                    .await
                    .map_err(std::io::Error::other)??
            }
        };
        let session = Session::new(&message.envelope, &self.authserv_id);
        let (dns, budget) = (self.dns.clone(), self.budget);
        // Its own task: a panic in the verifier on hostile input costs this message a retry
        // (451), never the connection task or a pass it did not earn.
        tokio::spawn(async move { verify::check(&dns, &session, prepared, budget).await })
            .await
            .map_err(std::io::Error::other)
    }
}

/// What DMARC asks of a message (RFC 7489 §6.3); only a definite fail is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Deliver,
    Quarantine,
    Reject,
}

fn disposition(dmarc: &DmarcCheck) -> Disposition {
    match (dmarc.result, dmarc.policy) {
        (AuthResult::Fail, Some(DmarcPolicy::Reject)) => Disposition::Reject,
        (AuthResult::Fail, Some(DmarcPolicy::Quarantine)) => Disposition::Quarantine,
        _ => Disposition::Deliver,
    }
}

#[async_trait]
impl Stage for InboundAuth {
    fn name(&self) -> &'static str {
        "inbound-auth"
    }

    async fn process(&self, message: &mut InboundMessage) -> Verdict {
        if !Self::applies_to(message) {
            return Verdict::Continue;
        }
        let auth = match self.verify(message).await {
            Ok(auth) => auth,
            Err(e) => {
                tracing::error!(error = %e, "sender verification could not read the message");
                return Verdict::Defer("message could not be verified; try again later".into());
            }
        };
        log(&auth);
        match disposition(&auth.dmarc) {
            Disposition::Reject => {
                let from = reply_safe(auth.dmarc.from_domain.as_deref().unwrap_or_default());
                return Verdict::Reject(
                    550,
                    "5.7.1",
                    format!("unauthenticated mail from {from} is refused by its DMARC policy"),
                );
            }
            Disposition::Quarantine => {
                for filing in &mut message.filings {
                    filing.mailbox = Some(MailboxRole::Junk);
                }
            }
            Disposition::Deliver => {}
        }
        let field = render(&self.authserv_id, &auth);
        let ours = self.authserv_id.clone();
        let edit = message
            .edit_header(&field, move |f| claims_authserv_id(f, &ours))
            .await;
        if let Err(e) = edit {
            tracing::error!(error = %e, "could not write Authentication-Results");
            return Verdict::Defer("message could not be verified; try again later".into());
        }
        message.authentication = Some(auth);
        Verdict::Continue
    }
}

/// The From: domain as it may appear in an SMTP reply: it comes from the message, so anything
/// but domain characters is replaced.
fn reply_safe(domain: &str) -> String {
    domain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn log(auth: &SenderAuthentication) {
    let dkim: Vec<&str> = auth.dkim.iter().map(|d| d.result.as_str()).collect();
    tracing::info!(
        spf = auth.spf.result.as_str(),
        dkim = ?dkim,
        arc = auth.arc.result.as_str(),
        dmarc = auth.dmarc.result.as_str(),
        from_domain = ?auth.dmarc.from_domain,
        policy = auth.dmarc.policy.map_or("", DmarcPolicy::as_str),
        "sender verified"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use postkeep_delivery::{AuthResult, Deliverer, Filing, SpfIdentity};
    use postkeep_net::dns::DnsSettings;
    use postkeep_smtp::{DeliveryOutcome, Envelope};

    use super::*;

    const HOST: &str = "mx.example.org";

    fn message(raw: &[u8], mail_from: &str) -> InboundMessage {
        InboundMessage {
            envelope: Envelope {
                mail_from: mail_from.into(),
                rcpt_to: vec!["a@example.org".into()],
                peer: "192.0.2.1:4000".parse().unwrap(),
                helo: "client.a.test".into(),
                tls: false,
                smtputf8: false,
                authenticated: None,
            },
            raw: MessageBytes::Memory(Arc::new(raw.to_vec())),
            summary: postkeep_message::wire::summarize_wire(raw),
            filings: vec![Filing {
                account_id: 1,
                mailbox: None,
                flags: Vec::new(),
            }],
            authentication: None,
            submitted_by: None,
        }
    }

    /// A nameserver that receives queries and never answers.
    fn silent_nameserver() -> (std::net::UdpSocket, Resolver) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let resolver = Resolver::new(&DnsSettings {
            nameservers: vec![socket.local_addr().unwrap()],
            timeout: Duration::from_millis(200),
        })
        .unwrap();
        (socket, resolver)
    }

    const SIGNED: &[u8] = b"Authentication-Results: mx.example.org; dkim=pass header.d=a.test\r\n\
        Authentication-Results: relay.other.test; spf=pass\r\n\
        DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; s=sel;\r\n\
        \th=from:subject; bh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=; b=AAAA\r\n\
        From: ceo@a.test\r\nSubject: hi\r\n\r\nbody\r\n";

    /// The results for [`SIGNED`] from `ceo@a.test` when DNS never answers.
    fn assert_dns_temperror(auth: &SenderAuthentication) {
        assert_eq!(auth.spf.result, AuthResult::TempError);
        assert_eq!(
            auth.spf.identity,
            SpfIdentity::MailFrom("ceo@a.test".into())
        );
        assert_eq!(auth.dkim.len(), 1);
        assert_eq!(auth.dkim[0].result, AuthResult::TempError);
        assert_eq!(auth.dkim[0].domain.as_deref(), Some("a.test"));
        assert_eq!(auth.arc.result, AuthResult::None);
        assert_eq!(auth.dmarc.result, AuthResult::TempError);
        assert_eq!(auth.dmarc.from_domain.as_deref(), Some("a.test"));
        assert_eq!(auth.dmarc.policy, None, "no record was seen");
    }

    #[tokio::test]
    async fn dns_that_never_answers_gives_temperror_in_bounded_time_and_delivers() {
        let (_socket, dns) = silent_nameserver();
        let stage = InboundAuth::new(HOST, &dns);
        let mut m = message(SIGNED, "ceo@a.test");
        let started = Instant::now();
        assert_eq!(stage.process(&mut m).await, Verdict::Continue);
        // Two rounds of at most three timeouts each.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        assert_dns_temperror(&m.authentication.expect("results kept on the message"));
        assert_eq!(m.filings[0].mailbox, None, "temperror never quarantines");

        let mut stored = Vec::new();
        std::io::Read::read_to_end(&mut m.raw.open().unwrap(), &mut stored).unwrap();
        let stored = String::from_utf8(stored).unwrap();
        assert!(
            stored.starts_with(&format!(
                "Authentication-Results: {HOST};\r\n\tspf=temperror smtp.mailfrom=ceo@a.test;"
            )),
            "{stored}"
        );
        // The forged field claiming our authserv-id is gone; the relay's stays.
        assert_eq!(
            stored
                .matches("Authentication-Results: mx.example.org;")
                .count(),
            1
        );
        assert!(stored.contains("Authentication-Results: relay.other.test; spf=pass\r\n"));
        assert!(stored.ends_with("From: ceo@a.test\r\nSubject: hi\r\n\r\nbody\r\n"));
        assert_eq!(
            m.summary,
            postkeep_message::wire::summarize_wire(stored.as_bytes())
        );
    }

    /// The organizer reads the results of a stored message from its sealed summary.
    #[tokio::test]
    async fn every_stored_copy_keeps_the_results_in_its_summary() {
        let (_socket, dns) = silent_nameserver();
        let dir = tempfile::tempdir().unwrap();
        let store = postkeep_store::testing::store_with_domain(dir.path(), "example.org").await;
        let recipients = ["a@example.org", "b@example.org"];
        for address in recipients {
            store.create_account(address, None).await.unwrap();
        }
        let stage = InboundAuth::new(HOST, &dns);
        let deliverer = Deliverer::new(Arc::clone(&store), vec![Arc::new(stage)]);
        let mut envelope = message(SIGNED, "ceo@a.test").envelope;
        envelope.rcpt_to = recipients.map(String::from).to_vec();
        assert_eq!(
            deliverer.deliver_raw(&envelope, SIGNED.to_vec()).await,
            DeliveryOutcome::Stored
        );

        for address in recipients {
            let account = store.find_account(address).await.unwrap().unwrap();
            let records = store.account_messages(account.id).await.unwrap();
            assert_eq!(records.len(), 1, "{address}");
            let summary = store.summary(&records[0]).await.unwrap();
            assert_dns_temperror(&summary.authentication.expect("results stored"));
        }
    }

    #[tokio::test]
    async fn null_sender_is_checked_by_helo() {
        let (_socket, dns) = silent_nameserver();
        let stage = InboundAuth::new(HOST, &dns);
        let mut m = message(b"From: x@a.test\r\n\r\nbounce\r\n", "");
        assert_eq!(stage.process(&mut m).await, Verdict::Continue);
        let auth = m.authentication.unwrap();
        assert_eq!(auth.spf.identity, SpfIdentity::Helo("client.a.test".into()));
        assert!(auth.dkim.is_empty());
    }

    #[tokio::test]
    async fn submitted_mail_is_not_verified() {
        let (_socket, dns) = silent_nameserver();
        let stage = InboundAuth::new(HOST, &dns);
        let mut m = message(SIGNED, "ceo@a.test");
        m.submitted_by = Some(1);
        assert_eq!(stage.process(&mut m).await, Verdict::Continue);
        assert!(m.authentication.is_none());
        assert!(matches!(&m.raw, MessageBytes::Memory(raw) if **raw == SIGNED));
    }

    #[test]
    fn from_domain_cannot_break_the_smtp_reply() {
        assert_eq!(reply_safe("a.test"), "a.test");
        assert_eq!(reply_safe("a.test\r\n250 ok"), "a.test??250?ok");
    }

    #[test]
    fn only_a_definite_dmarc_fail_is_enforced() {
        let check = |result, policy| DmarcCheck {
            result,
            from_domain: Some("a.test".into()),
            policy: Some(policy),
        };
        use AuthResult::*;
        use DmarcPolicy as P;
        assert_eq!(disposition(&check(Fail, P::Reject)), Disposition::Reject);
        assert_eq!(
            disposition(&check(Fail, P::Quarantine)),
            Disposition::Quarantine
        );
        for (result, policy) in [
            (Fail, P::None),
            (TempError, P::Reject),
            (PermError, P::Reject),
            (Pass, P::Reject),
            (None, P::Quarantine),
        ] {
            assert_eq!(
                disposition(&check(result, policy)),
                Disposition::Deliver,
                "{result:?}"
            );
        }
        let no_record = DmarcCheck {
            result: Fail,
            from_domain: Some("a.test".into()),
            policy: Option::None,
        };
        assert_eq!(disposition(&no_record), Disposition::Deliver);
    }
}
