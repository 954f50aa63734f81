use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth::{ResolverCache, Txt};
use postkeep_crypto::MasterKey;
use postkeep_store::{DkimAlgorithm, KeyScope, MailStore, MasterLoader};

use crate::dns::{self, MailHost, ZoneRequest};
use crate::{DomainKeys, Signers};

const DOMAIN: &str = "example.org";

/// A data directory that can be reopened with the same master key.
struct Fixture {
    dir: tempfile::TempDir,
    master_hex: String,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            master_hex: MasterKey::generate().to_hex().to_string(),
        }
    }

    async fn open(&self) -> MailStore {
        let hex = self.master_hex.clone();
        let loader: MasterLoader = Arc::new(move || MasterKey::from_hex(&hex, "test"));
        MailStore::open_embedded(self.dir.path(), KeyScope::Account, loader)
            .await
            .unwrap()
    }

    async fn with_domain(&self) -> MailStore {
        let store = self.open().await;
        store.add_domain(DOMAIN).await.unwrap();
        store
    }
}

fn host() -> MailHost {
    MailHost {
        hostname: "mail.example.org".into(),
        submission: Some(587),
        submissions: Some(465),
        imap: None,
        imaps: Some(993),
        pop3: Some(110),
        pop3s: Some(995),
        https: Some(443),
    }
}

fn zone_of(keys: &DomainKeys) -> String {
    dns::zone(&ZoneRequest {
        domain: keys.domain(),
        host: &host(),
        dkim_keys: keys.keys(),
        report_address: "postmaster@example.org",
        report_address_exists: true,
    })
}

/// `(owner, type, data)` of every record line of a zone.
fn records(zone: &str) -> Vec<(String, String, String)> {
    zone.lines()
        .filter(|line| !line.is_empty() && !line.starts_with(';'))
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            assert_eq!(fields.len(), 5, "not `owner ttl IN type data`: {line:?}");
            assert_eq!((fields[1], fields[2]), ("3600", "IN"), "{line:?}");
            (fields[0].into(), fields[3].into(), fields[4].into())
        })
        .collect()
}

/// The text of TXT record data: its quoted strings, concatenated (RFC 6376 §3.6.2.2).
fn unquote(data: &str) -> String {
    data.split('"').skip(1).step_by(2).collect()
}

/// What a resolver would answer for every DKIM record in `zone`.
fn dkim_records(zone: &str) -> HashMap<String, String> {
    records(zone)
        .into_iter()
        .filter(|(owner, rtype, _)| rtype == "TXT" && owner.contains("._domainkey."))
        .map(|(owner, _, data)| (owner, unquote(&data)))
        .collect()
}

#[derive(Default)]
struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// mail-auth's verifier on `signed`, with DNS answered from the printed zone only.
async fn verify(zone: &str, signed: &[u8]) -> Vec<DkimResult> {
    let cache = TxtCache::default();
    for (owner, text) in dkim_records(zone) {
        let key = DomainKey::parse(text.as_bytes()).unwrap();
        cache.insert(owner.into(), key.into(), std::time::Instant::now());
    }
    // Never queried: every lookup is answered by the cache.
    let resolver = MessageAuthenticator::new_cloudflare().unwrap();
    let message = AuthenticatedMessage::parse(signed).unwrap();
    resolver
        .verify_dkim(Parameters::new(&message).with_txt_cache(&cache))
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

fn message() -> Vec<u8> {
    b"From: Alice <alice@example.org>\r\n\
      To: bob@remote.test\r\n\
      Subject: Quarterly  report\r\n\
      Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\
      Message-ID: <q1@example.org>\r\n\
      MIME-Version: 1.0\r\n\
      Content-Type: text/plain; charset=utf-8\r\n\
      \r\n\
      Numbers   attached.\r\n\r\n"
        .to_vec()
}

fn signed(signers: &Signers, message: &[u8]) -> Vec<u8> {
    [signers.sign(message).unwrap().as_bytes(), message].concat()
}

fn month() -> String {
    chrono::Utc::now().format("%Y%m").to_string()
}

/// Asserts `selector` is `pk<yyyymm><letter>` for a month of `months` (taken around the
/// operation, so a month boundary cannot make the test flaky).
fn assert_selector(selector: &str, months: &[String], letter: char) {
    assert!(
        months.iter().any(|m| selector == format!("pk{m}{letter}")),
        "{selector} is not pk<{months:?}>{letter}"
    );
}

#[tokio::test]
async fn domain_gets_an_ed25519_and_an_rsa_2048_key_with_month_selectors() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let before = month();
    let keys = DomainKeys::ensure(&store, "Example.ORG")
        .await
        .unwrap()
        .unwrap();
    let months = [before, month()];
    assert!(keys.created());
    let active: Vec<_> = keys.signing().collect();
    assert_eq!(active.len(), 2);
    assert_eq!(active[0].algorithm, DkimAlgorithm::Ed25519);
    assert_selector(&active[0].selector, &months, 'e');
    assert_eq!(active[0].public_key.len(), 32, "raw ed25519 key (RFC 8463)");
    assert_eq!(active[1].algorithm, DkimAlgorithm::Rsa);
    assert_selector(&active[1].selector, &months, 'r');

    let records = dkim_records(&zone_of(&keys));
    let rsa = &records[&format!("{}._domainkey.example.org.", active[1].selector)];
    assert!(rsa.starts_with("v=DKIM1; k=rsa; p=MIIB"), "{rsa}");
    let rsa = DomainKey::parse(rsa.as_bytes()).unwrap();
    assert_eq!(rsa.p.public_key_bits(), 2048);
    let ed = &records[&format!("{}._domainkey.example.org.", active[0].selector)];
    assert!(ed.starts_with("v=DKIM1; k=ed25519; p="), "{ed}");
}

#[tokio::test]
async fn a_second_pair_in_a_month_gets_numbered_selectors_never_reused() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let keys = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    let mut existing = keys.keys().to_vec();
    existing[0].selector = "pk202611e".into();
    existing[1].selector = "pk202611r".into();
    let base = |month: &str, existing: &[postkeep_store::DkimKey]| {
        crate::keys::free_selector_base(month, existing)
    };
    assert_eq!(base("202612", &existing), "pk202612");
    assert_eq!(base("202611", &existing), "pk202611-2");
    // One selector of a pair taken is enough to move on: both share the base.
    existing[0].selector = "pk202611-2e".into();
    assert_eq!(base("202611", &existing), "pk202611-3");
}

#[test]
fn signers_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Signers>();
    shareable::<DomainKeys>();
}

#[tokio::test]
async fn ensure_is_idempotent_and_knows_only_our_domains() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let first = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    let again = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    assert!(!again.created());
    assert_eq!(first.keys(), again.keys());
    assert!(DomainKeys::ensure(&store, "foreign.test")
        .await
        .unwrap()
        .is_none());
    assert!(Signers::load(&store, "foreign.test")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn concurrent_first_uses_create_one_pair() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let (a, b) = tokio::join!(
        DomainKeys::ensure(&store, DOMAIN),
        DomainKeys::ensure(&store, DOMAIN)
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.keys(), b.keys());
    assert_eq!(a.keys().len(), 2);
}

#[tokio::test]
async fn both_signatures_verify_against_the_printed_dns_records() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let signers = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    let keys = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    let headers = signers.sign(&message()).unwrap();

    let unfolded = headers.replace("\r\n\t", " ");
    let lines: Vec<&str> = unfolded.lines().collect();
    assert_eq!(lines.len(), 2, "{headers}");
    assert!(lines[0].starts_with("DKIM-Signature: v=1; a=rsa-sha256; "));
    assert!(lines[1].starts_with("DKIM-Signature: v=1; a=ed25519-sha256; "));
    for line in &lines {
        assert!(
            line.contains("; d=example.org; c=relaxed/relaxed;"),
            "{line}"
        );
        let h: String = tag(line, "h").split_whitespace().collect();
        let from = h.split(':').filter(|f| *f == "From").count();
        // One more than the message has: oversigned (RFC 6376 §8.15).
        assert_eq!(from, 2, "{line}");
        assert!(
            !h.contains("List-Id"),
            "absent list fields are not signed: {line}"
        );
    }

    let results = verify(&zone_of(&keys), &signed(&signers, &message())).await;
    assert_eq!(results, [DkimResult::Pass, DkimResult::Pass]);
}

/// The value of `name=` in a DKIM-Signature field.
fn tag<'a>(field: &'a str, name: &str) -> &'a str {
    field
        .split(';')
        .filter_map(|t| t.trim().split_once('='))
        .find(|(n, _)| n.trim_start_matches("DKIM-Signature: ") == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_changed_body_or_an_added_from_header_fails_verification() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let signers = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    let zone = zone_of(&DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap());
    let good = signed(&signers, &message());

    let text = String::from_utf8(good.clone()).unwrap();
    let tampered = text.replace("Numbers", "Payment");
    let results = verify(&zone, tampered.as_bytes()).await;
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| *r != DkimResult::Pass),
        "{results:?}"
    );

    let spoofed = text.replace(
        "From: Alice",
        "From: Mallory <boss@example.org>\r\nFrom: Alice",
    );
    let results = verify(&zone, spoofed.as_bytes()).await;
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| *r != DkimResult::Pass),
        "{results:?}"
    );

    // A header nobody signed (a list's footer fields) may be added.
    let listed = format!("List-Id: <team.example.org>\r\n{text}");
    let results = verify(&zone, listed.as_bytes()).await;
    assert_eq!(results, [DkimResult::Pass, DkimResult::Pass]);
}

#[tokio::test]
async fn sealed_keys_sign_after_reopening_and_never_reach_the_disk_in_clear() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let keys = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    let domain = store.meta().find_domain(DOMAIN).await.unwrap().unwrap();
    let mut secrets = Vec::new();
    for key in keys.keys() {
        secrets.push(store.open_dkim_private_key(&domain, key).await.unwrap());
    }
    drop(store);

    let store = fx.open().await;
    let signers = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    let results = verify(&zone_of(&keys), &signed(&signers, &message())).await;
    assert_eq!(results, [DkimResult::Pass, DkimResult::Pass]);
    drop(store);

    for secret in &secrets {
        // The last 32 bytes of PKCS#8 are private (RSA: the CRT coefficient; ed25519 v2: the
        // public key follows the seed, so take the seed's window instead).
        let window = if secret.len() > 100 {
            &secret[secret.len() - 32..]
        } else {
            &secret[16..48]
        };
        assert_not_in_dir(fx.dir.path(), window);
    }
}

fn assert_not_in_dir(dir: &Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_not_in_dir(&path, needle);
        } else {
            let data = std::fs::read(&path).unwrap();
            assert!(
                !data.windows(needle.len()).any(|w| w == needle),
                "private key bytes in clear in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn rotation_signs_with_new_selectors_only_once_activated_and_old_mail_still_verifies() {
    let fx = Fixture::new();
    let store = fx.with_domain().await;
    let before = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    let old: Vec<String> = before.selectors().map(str::to_string).collect();
    let old_mail = signed(&before, &message());

    let staged = DomainKeys::rotate(&store, DOMAIN).await.unwrap();
    let new: Vec<String> = staged.pending().map(|k| k.selector.clone()).collect();
    assert_eq!(new.len(), 2);
    assert!(
        new.iter().all(|s| !old.contains(s)),
        "{new:?} reuses {old:?}"
    );
    assert_eq!(
        dkim_records(&zone_of(&staged)).len(),
        4,
        "staged keys are published"
    );
    let still = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    assert_eq!(
        still.selectors().collect::<Vec<_>>(),
        old,
        "staged keys must not sign"
    );
    assert!(matches!(
        DomainKeys::rotate(&store, DOMAIN).await,
        Err(crate::DkimError::RotationPending(_))
    ));

    let active = DomainKeys::activate(&store, DOMAIN).await.unwrap();
    let after = Signers::load(&store, DOMAIN).await.unwrap().unwrap();
    let mut signing: Vec<&str> = after.selectors().collect();
    signing.sort_unstable();
    let mut expected: Vec<&str> = new.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(signing, expected);
    let zone = zone_of(&active);
    assert_eq!(
        verify(&zone, &old_mail).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
    assert_eq!(
        verify(&zone, &signed(&after, &message())).await,
        [DkimResult::Pass, DkimResult::Pass]
    );

    for selector in &old {
        DomainKeys::remove(&store, DOMAIN, selector).await.unwrap();
    }
    let keys = DomainKeys::ensure(&store, DOMAIN).await.unwrap().unwrap();
    assert_eq!(dkim_records(&zone_of(&keys)).len(), 2);
    assert!(DomainKeys::remove(&store, DOMAIN, &new[0]).await.is_err());
}

#[test]
fn txt_data_splits_long_text_into_255_byte_strings_and_escapes_quotes() {
    let long = "a".repeat(600);
    let data = dns::txt_data(&long);
    let strings: Vec<&str> = data.split(' ').collect();
    assert_eq!(strings.len(), 3);
    assert!(strings.iter().all(|s| s.len() <= 255 + 2));
    assert_eq!(unquote(&data), long);
    assert_eq!(dns::txt_data(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
}

#[test]
fn zone_has_every_record_with_the_configured_ports() {
    let zone = dns::zone(&ZoneRequest {
        domain: DOMAIN,
        host: &host(),
        dkim_keys: &[],
        report_address: "postmaster@example.org",
        report_address_exists: false,
    });
    let all = records(&zone);
    let find = |owner: &str, rtype: &str| -> Vec<String> {
        all.iter()
            .filter(|(o, t, _)| o == owner && t == rtype)
            .map(|(_, _, d)| d.clone())
            .collect()
    };
    assert_eq!(find("example.org.", "MX"), ["10 mail.example.org."]);
    assert_eq!(find("example.org.", "TXT"), ["\"v=spf1 mx -all\""]);
    assert_eq!(
        find("_dmarc.example.org.", "TXT"),
        ["\"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\""]
    );
    assert_eq!(
        find("_smtp._tls.example.org.", "TXT"),
        ["\"v=TLSRPTv1; rua=mailto:postmaster@example.org\""]
    );
    let sts = find("_mta-sts.example.org.", "TXT");
    assert!(sts[0].starts_with("\"v=STSv1; id="), "{sts:?}");
    assert!(zone.contains("https://mta-sts.example.org/.well-known/mta-sts.txt"));
    assert!(zone.contains("postmaster@example.org does not exist"));
    let srv = |service: &str| find(&format!("{service}._tcp.example.org."), "SRV");
    assert_eq!(srv("_submissions"), ["0 1 465 mail.example.org."]);
    assert_eq!(srv("_submission"), ["10 1 587 mail.example.org."]);
    assert_eq!(srv("_imaps"), ["0 1 993 mail.example.org."]);
    assert_eq!(srv("_imap"), ["0 0 0 ."], "imap is off: not offered");
    assert_eq!(srv("_pop3s"), ["20 1 995 mail.example.org."]);
    assert_eq!(srv("_pop3"), ["30 1 110 mail.example.org."]);
    assert_eq!(
        find("autoconfig.example.org.", "CNAME"),
        ["mail.example.org."]
    );
    assert_eq!(
        find("autodiscover.example.org.", "CNAME"),
        ["mail.example.org."]
    );
}

/// A service whose listener is off is published with the target "." (RFC 2782: "decidedly
/// not available"), so clients do not guess; here the POP3 pair (IMAP: the test above).
#[test]
fn pop3_listeners_that_are_off_are_published_as_not_offered() {
    let host = MailHost {
        pop3: None,
        pop3s: None,
        ..host()
    };
    let zone = dns::zone(&ZoneRequest {
        domain: DOMAIN,
        host: &host,
        dkim_keys: &[],
        report_address: "postmaster@example.org",
        report_address_exists: true,
    });
    let srv = |service: &str| -> Vec<String> {
        let owner = format!("{service}._tcp.example.org.");
        records(&zone)
            .into_iter()
            .filter(|(o, t, _)| *o == owner && t == "SRV")
            .map(|(_, _, data)| data)
            .collect()
    };
    assert_eq!(srv("_pop3"), ["0 0 0 ."]);
    assert_eq!(srv("_pop3s"), ["0 0 0 ."]);
    assert_eq!(srv("_imaps"), ["0 1 993 mail.example.org."]);
}

#[test]
fn a_server_named_like_its_domain_gets_one_spf_record() {
    let host = MailHost {
        hostname: DOMAIN.into(),
        ..host()
    };
    let zone = dns::zone(&ZoneRequest {
        domain: DOMAIN,
        host: &host,
        dkim_keys: &[],
        report_address: "postmaster@example.org",
        report_address_exists: true,
    });
    let spf: Vec<_> = records(&zone)
        .into_iter()
        .filter(|(_, rtype, data)| rtype == "TXT" && data.contains("v=spf1"))
        .collect();
    // RFC 7208 §3.2: two SPF records on one name make evaluation fail.
    assert_eq!(spf.len(), 1, "{spf:?}");
    assert!(!zone.contains("does not exist"));
}

#[test]
fn mta_sts_id_follows_the_policy() {
    let a = dns::mta_sts_policy("mail.example.org");
    let b = dns::mta_sts_policy("mx.example.org");
    assert!(a.contains("\r\nmx: mail.example.org\r\n"), "{a:?}");
    assert_eq!(dns::mta_sts_id(&a), dns::mta_sts_id(&a));
    assert_ne!(dns::mta_sts_id(&a), dns::mta_sts_id(&b));
    // RFC 8461 §3.1: 1 to 32 letters and digits.
    let id = dns::mta_sts_id(&a);
    assert!(id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()));
}
