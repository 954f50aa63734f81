//! DKIM keys of hosted domains: sealing and opening their private keys. Key generation and
//! signing live in `postkeep-dkim`; the store only keeps the keys safe.
//!
//! A private key is sealed with the current data key of the domain's scope (`domain:<id>`, or
//! `deployment` when that is the configured scope: DKIM keys belong to a domain, never to one
//! account). Its associated data names the domain, the selector, the algorithm and the public
//! key, so a sealed key cannot be moved to another domain or selector, nor paired with another
//! public key, without opening failing.

use zeroize::Zeroizing;

use crate::model::{DkimAlgorithm, DkimKey, Domain};
use crate::{KeyScope, MailStore, StoreError};

/// A freshly generated key, before sealing.
pub struct NewDkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// See [`DkimKey::public_key`].
    pub public_key: Vec<u8>,
    /// PKCS#8 DER.
    pub private_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NewDkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NewDkimKey({} {})",
            self.selector,
            self.algorithm.as_str()
        )
    }
}

fn dkim_aad(domain: &str, selector: &str, algorithm: DkimAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let mut aad = format!(
        "postkeep dkim v1|{domain}|{selector}|{}|",
        algorithm.as_str()
    )
    .into_bytes();
    aad.extend_from_slice(public_key);
    aad
}

impl MailStore {
    fn dkim_scope(&self, domain: &Domain) -> String {
        let scope = match self.scope {
            KeyScope::Deployment => KeyScope::Deployment,
            KeyScope::Domain | KeyScope::Account => KeyScope::Domain,
        };
        // The account id is not part of a domain or deployment scope.
        scope.scope_for(domain.id, 0)
    }

    /// Seals `keys`; they sign from now, or with `staged` only once activated.
    async fn seal_dkim_keys(
        &self,
        domain: &Domain,
        keys: &[NewDkimKey],
        staged: bool,
    ) -> Result<Vec<DkimKey>, StoreError> {
        let data_key = self.keyring.current(&self.dkim_scope(domain)).await?;
        let created = chrono::Utc::now().timestamp();
        Ok(keys
            .iter()
            .map(|key| DkimKey {
                domain_id: domain.id,
                selector: key.selector.clone(),
                algorithm: key.algorithm,
                public_key: key.public_key.clone(),
                key_id: data_key.id().to_string(),
                sealed_private_key: data_key.seal(
                    &dkim_aad(&domain.name, &key.selector, key.algorithm, &key.public_key),
                    &key.private_key,
                ),
                created,
                activated: (!staged).then_some(created),
                retired: None,
            })
            .collect())
    }

    /// Every DKIM key of a domain, active and retired, oldest first.
    pub async fn dkim_keys(&self, domain: &Domain) -> Result<Vec<DkimKey>, StoreError> {
        self.meta.dkim_keys(domain.id).await
    }

    /// Seals and stores keys that sign from now: a domain's first keys. See
    /// [`crate::MetadataStore::add_dkim_keys`] for the `Conflict` when another process was
    /// first.
    pub async fn add_dkim_keys(
        &self,
        domain: &Domain,
        keys: &[NewDkimKey],
    ) -> Result<Vec<DkimKey>, StoreError> {
        let sealed = self.seal_dkim_keys(domain, keys, false).await?;
        self.meta.add_dkim_keys(&sealed).await?;
        Ok(sealed)
    }

    /// Seals and stores the next keys of a rotation: published, but signing only after
    /// [`MailStore::activate_dkim_keys`], once DNS has their records.
    pub async fn stage_dkim_keys(
        &self,
        domain: &Domain,
        keys: &[NewDkimKey],
    ) -> Result<Vec<DkimKey>, StoreError> {
        let sealed = self.seal_dkim_keys(domain, keys, true).await?;
        self.meta.add_dkim_keys(&sealed).await?;
        Ok(sealed)
    }

    /// The staged keys sign from now on; the keys they replace are retired (still published).
    pub async fn activate_dkim_keys(&self, domain: &Domain) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp();
        self.meta.activate_dkim_keys(domain.id, now).await
    }

    /// Deletes a retired or staged key (see [`crate::MetadataStore::remove_dkim_key`]).
    pub async fn remove_dkim_key(&self, domain: &Domain, selector: &str) -> Result<(), StoreError> {
        self.meta.remove_dkim_key(domain.id, selector).await
    }

    /// The private key (PKCS#8 DER) of one of `domain`'s keys, in a zeroizing buffer.
    pub async fn open_dkim_private_key(
        &self,
        domain: &Domain,
        key: &DkimKey,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if key.domain_id != domain.id {
            return Err(StoreError::Invalid(format!(
                "DKIM selector {} does not belong to {}",
                key.selector, domain.name
            )));
        }
        let data_key = self.keyring.key(&key.key_id).await?;
        let aad = dkim_aad(&domain.name, &key.selector, key.algorithm, &key.public_key);
        data_key
            .open(&aad, &key.sealed_private_key)
            .map(Zeroizing::new)
            .map_err(|e| StoreError::Sealed(format!("DKIM key {}: {e}", key.selector)))
    }
}
