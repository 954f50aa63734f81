//! Generating, storing and rotating a domain's DKIM keys.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use postkeep_store::{DkimAlgorithm, DkimKey, Domain, MailStore, NewDkimKey, StoreError};
use zeroize::Zeroizing;

use crate::sign::Signers;
use crate::DkimError;

/// The DKIM keys of one hosted domain: the signing pair (one key per algorithm, both signing
/// every message), the pair of a staged rotation if any, and retired keys still published.
#[derive(Debug, Clone)]
pub struct DomainKeys {
    domain: Domain,
    keys: Vec<DkimKey>,
    created: bool,
}

impl DomainKeys {
    /// The domain's keys, creating whatever signing key is missing: `domain add` calls it, and
    /// domains added before DKIM existed get their keys on first use. `Ok(None)`: not one of
    /// our domains. Safe against a concurrent first use (the store keeps one signing key per
    /// algorithm; the loser reads the winner's).
    pub async fn ensure(store: &MailStore, domain: &str) -> Result<Option<Self>, DkimError> {
        let Some(domain) = find_domain(store, domain).await? else {
            return Ok(None);
        };
        let keys = store.dkim_keys(&domain).await?;
        let missing: Vec<DkimAlgorithm> = DkimAlgorithm::ALL
            .into_iter()
            .filter(|alg| !keys.iter().any(|k| k.algorithm == *alg && k.signing()))
            .collect();
        if missing.is_empty() {
            return Ok(Some(Self {
                domain,
                keys,
                created: false,
            }));
        }
        let new = generate_keys(&missing, &keys).await?;
        let created = match store.add_dkim_keys(&domain, &new).await {
            Ok(_) => true,
            Err(StoreError::Conflict(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let keys = store.dkim_keys(&domain).await?;
        Ok(Some(Self {
            domain,
            keys,
            created,
        }))
    }

    /// Stages a new pair under new selectors: published by `domain dns` at once, signing only
    /// after [`DomainKeys::activate`], so no message is signed before DNS has its records.
    pub async fn rotate(store: &MailStore, domain: &str) -> Result<Self, DkimError> {
        let domain = known_domain(store, domain).await?;
        let existing = store.dkim_keys(&domain).await?;
        if existing.iter().any(DkimKey::pending) {
            return Err(DkimError::RotationPending(domain.name));
        }
        let new = generate_keys(&DkimAlgorithm::ALL, &existing).await?;
        store.stage_dkim_keys(&domain, &new).await?;
        Self::reload(store, domain, true).await
    }

    /// Completes a rotation: the staged keys sign from now on; the keys they replace are
    /// retired but stay published, so mail they signed keeps verifying, until
    /// [`DomainKeys::remove`].
    pub async fn activate(store: &MailStore, domain: &str) -> Result<Self, DkimError> {
        let domain = known_domain(store, domain).await?;
        store.activate_dkim_keys(&domain).await?;
        Self::reload(store, domain, false).await
    }

    async fn reload(store: &MailStore, domain: Domain, created: bool) -> Result<Self, DkimError> {
        let keys = store.dkim_keys(&domain).await?;
        Ok(Self {
            domain,
            keys,
            created,
        })
    }

    /// Deletes a retired key (its DNS record can go too) or a staged one (cancelling the
    /// rotation).
    pub async fn remove(store: &MailStore, domain: &str, selector: &str) -> Result<(), DkimError> {
        let domain = known_domain(store, domain).await?;
        store.remove_dkim_key(&domain, selector).await?;
        Ok(())
    }

    pub fn domain(&self) -> &str {
        &self.domain.name
    }

    /// Every key, signing, staged and retired, oldest first: all of them are published.
    pub fn keys(&self) -> &[DkimKey] {
        &self.keys
    }

    /// The signing keys, ed25519 then RSA.
    pub fn signing(&self) -> impl Iterator<Item = &DkimKey> {
        self.of_algorithms(DkimKey::signing)
    }

    /// The keys of a staged rotation, ed25519 then RSA.
    pub fn pending(&self) -> impl Iterator<Item = &DkimKey> {
        self.of_algorithms(DkimKey::pending)
    }

    fn of_algorithms(&self, which: fn(&DkimKey) -> bool) -> impl Iterator<Item = &DkimKey> {
        DkimAlgorithm::ALL
            .into_iter()
            .filter_map(move |alg| self.keys.iter().find(|k| k.algorithm == alg && which(k)))
    }

    /// Whether this call created keys (so they still have to be published).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Opens the signing private keys into signers.
    pub async fn signers(&self, store: &MailStore) -> Result<Signers, DkimError> {
        Signers::open(store, &self.domain, &self.keys).await
    }
}

/// The name of a key's DNS record, without the final dot: `<selector>._domainkey.<domain>`
/// (RFC 6376 §3.6.2.1).
pub fn record_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The text of a key's DNS record (RFC 6376 §3.6.1; `k=ed25519`: RFC 8463 §4.2), before it
/// is split into strings of at most 255 bytes.
pub fn record_text(key: &DkimKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm.as_str(),
        base64::engine::general_purpose::STANDARD.encode(&key.public_key)
    )
}

async fn find_domain(store: &MailStore, domain: &str) -> Result<Option<Domain>, DkimError> {
    let name = postkeep_store::normalize_domain(domain)?;
    Ok(store.meta().find_domain(&name).await?)
}

async fn known_domain(store: &MailStore, domain: &str) -> Result<Domain, DkimError> {
    find_domain(store, domain)
        .await?
        .ok_or_else(|| DkimError::UnknownDomain(domain.to_string()))
}

/// New keys for `algorithms`, under selectors not used in `existing`. RSA key generation
/// takes a noticeable fraction of a second, so it runs off the async threads.
async fn generate_keys(
    algorithms: &[DkimAlgorithm],
    existing: &[DkimKey],
) -> Result<Vec<NewDkimKey>, DkimError> {
    let base = free_selector_base(&chrono::Utc::now().format("%Y%m").to_string(), existing);
    let algorithms = algorithms.to_vec();
    tokio::task::spawn_blocking(move || {
        algorithms
            .into_iter()
            .map(|alg| generate(alg, selector(&base, alg)))
            .collect()
    })
    .await
    .map_err(|e| DkimError::Generate(e.to_string()))?
}

/// Selectors are `pk<yyyymm>e` (ed25519) and `pk<yyyymm>r` (RSA): the month says how old a
/// key is, the letter which algorithm. A second key set in the same month gets `-2`, `-3`,
/// ... after the month, so a selector is never reused (a resolver may still cache its old
/// record).
pub(crate) fn free_selector_base(month: &str, existing: &[DkimKey]) -> String {
    let taken = |base: &str| {
        DkimAlgorithm::ALL
            .into_iter()
            .any(|alg| existing.iter().any(|k| k.selector == selector(base, alg)))
    };
    let mut base = format!("pk{month}");
    let mut n = 2;
    while taken(&base) {
        base = format!("pk{month}-{n}");
        n += 1;
    }
    base
}

fn selector(base: &str, algorithm: DkimAlgorithm) -> String {
    let letter = match algorithm {
        DkimAlgorithm::Ed25519 => 'e',
        DkimAlgorithm::Rsa => 'r',
    };
    format!("{base}{letter}")
}

/// RSA keys are 2048 bits: RFC 8301 §3.2 requires at least 1024 and recommends 2048, which
/// every verifier and DNS host handles (longer keys strain some DNS control panels).
const RSA_KEY_SIZE: KeySize = KeySize::Rsa2048;

/// One new key: its private half as PKCS#8 DER (zeroized on drop), its public half as the
/// DNS record publishes it.
pub(crate) fn generate(
    algorithm: DkimAlgorithm,
    selector: String,
) -> Result<NewDkimKey, DkimError> {
    let fail = |what: &str| DkimError::Generate(format!("{} {what}", algorithm.as_str()));
    let (public_key, private_key) = match algorithm {
        DkimAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(|_| fail("key generation"))?;
            let pkcs8 = pair.to_pkcs8().map_err(|_| fail("key encoding"))?;
            (
                pair.public_key().as_ref().to_vec(),
                Zeroizing::new(pkcs8.as_ref().to_vec()),
            )
        }
        DkimAlgorithm::Rsa => {
            let pair = RsaKeyPair::generate(RSA_KEY_SIZE).map_err(|_| fail("key generation"))?;
            let pkcs8 = pair.as_der().map_err(|_| fail("key encoding"))?;
            let public = pair
                .public_key()
                .as_der()
                .map_err(|_| fail("public key encoding"))?;
            (
                public.as_ref().to_vec(),
                Zeroizing::new(pkcs8.as_ref().to_vec()),
            )
        }
    };
    Ok(NewDkimKey {
        selector,
        algorithm,
        public_key,
        private_key,
    })
}
