//! DKIM signing of outgoing mail with a domain's signing keys (RFC 6376 §5, RFC 8463).

use std::fmt;

use mail_auth::common::crypto::{
    Algorithm, DkimKey as AuthKey, Ed25519Key, RsaKey, Sha256, SigningKey,
};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use postkeep_store::{DkimAlgorithm, DkimKey, Domain, MailStore};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::keys::DomainKeys;
use crate::DkimError;

/// Header fields signed and oversigned (RFC 6376 §8.15): the signature covers one instance
/// more than the message has, so an instance added later (a second From, a Reply-To, a
/// Cc) breaks it.
const OVERSIGNED: [&str; 5] = ["From", "Reply-To", "Subject", "To", "Cc"];

/// Header fields signed when present (RFC 6376 §5.4.1's list with the threading and MIME
/// fields). Not oversigned: a mailing list may add its `List-*` fields without breaking the
/// signature.
const SIGNED_IF_PRESENT: [&str; 23] = [
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Sender",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Autocrypt",
];

/// The signing keys of one domain, opened and ready to sign. The private keys live in
/// aws-lc structures, which cleanse them when dropped; nothing here prints them.
pub struct Signers {
    domain: String,
    /// RSA first: its signature becomes the topmost header, for verifiers that look at the
    /// first signature only and may not know ed25519.
    signers: Vec<Signer>,
}

struct Signer {
    selector: String,
    key: AuthKey,
}

impl fmt::Debug for Signers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let selectors: Vec<&str> = self.signers.iter().map(|s| s.selector.as_str()).collect();
        write!(f, "Signers({} {selectors:?})", self.domain)
    }
}

impl Signers {
    /// Signers for a hosted domain, creating its keys on first use (see
    /// [`DomainKeys::ensure`]). `Ok(None)`: not one of our domains, so nothing to sign with.
    pub async fn load(store: &MailStore, domain: &str) -> Result<Option<Self>, DkimError> {
        match DomainKeys::ensure(store, domain).await? {
            Some(keys) => Ok(Some(keys.signers(store).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn open(
        store: &MailStore,
        domain: &Domain,
        keys: &[DkimKey],
    ) -> Result<Self, DkimError> {
        let mut signers = Vec::with_capacity(2);
        for algorithm in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
            let key = keys
                .iter()
                .find(|k| k.algorithm == algorithm && k.signing())
                .ok_or_else(|| DkimError::NoSigningKey {
                    domain: domain.name.clone(),
                    algorithm: algorithm.as_str(),
                })?;
            let pkcs8 = store.open_dkim_private_key(domain, key).await?;
            let bad = |reason: String| DkimError::BadKey {
                selector: key.selector.clone(),
                reason,
            };
            let opened = match algorithm {
                DkimAlgorithm::Rsa => AuthKey::Rsa(
                    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        pkcs8.as_slice(),
                    )))
                    .map_err(|e| bad(e.to_string()))?,
                ),
                DkimAlgorithm::Ed25519 => AuthKey::Ed25519(
                    Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| bad(e.to_string()))?,
                ),
            };
            signers.push(Signer {
                selector: key.selector.clone(),
                key: opened,
            });
        }
        Ok(Self {
            domain: domain.name.clone(),
            signers,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selectors that sign, RSA first.
    pub fn selectors(&self) -> impl Iterator<Item = &str> {
        self.signers.iter().map(|s| s.selector.as_str())
    }

    /// Signs a whole message (CRLF line ends, as it will be sent) with every signing key:
    /// relaxed/relaxed canonicalization (RFC 6376 §3.4), `d=` the domain. Returns the
    /// `DKIM-Signature:` header fields, folded and CRLF-terminated, RSA first, to put in front
    /// of the message unchanged.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let headers = signed_headers(message);
        let mut out = String::with_capacity(1024);
        for signer in &self.signers {
            let signature = DkimSigner::from_key(Borrowed(&signer.key))
                .domain(self.domain.as_str())
                .selector(signer.selector.as_str())
                .headers(headers.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message)
                .map_err(|e| DkimError::Sign(e.to_string()))?;
            out.push_str(&signature.to_header());
        }
        Ok(out)
    }
}

/// The `h=` list for one message. mail-auth signs every occurrence of a listed name and adds
/// each listed entry that matched nothing as an empty instance; so a present field listed
/// twice is oversigned once, and an absent one listed once is oversigned too.
fn signed_headers(message: &[u8]) -> Vec<&'static str> {
    let present: Vec<&[u8]> = header_names(message).collect();
    let has = |field: &str| {
        present
            .iter()
            .any(|name| name.eq_ignore_ascii_case(field.as_bytes()))
    };
    let mut list = Vec::with_capacity(OVERSIGNED.len() * 2 + SIGNED_IF_PRESENT.len());
    for field in OVERSIGNED {
        list.push(field);
        if has(field) {
            list.push(field);
        }
    }
    list.extend(SIGNED_IF_PRESENT.into_iter().filter(|field| has(field)));
    list
}

/// The field names of a message's header (RFC 5322 §2.2), up to the first empty line; a
/// name is what precedes the colon, as mail-auth matches it. Continuation lines start with
/// white space and carry no name.
fn header_names(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| !matches!(line.first(), Some(b' ' | b'\t')))
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            line.get(..colon)
        })
}

/// A borrowed key: mail-auth's signer owns its key, but the `h=` list differs per message,
/// so each message gets a signer around a borrow of the long-lived key.
struct Borrowed<'a>(&'a AuthKey);

impl SigningKey for Borrowed<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}
